"""``tapegrad.nn``: modules, functional forms and initialisers with PyTorch's names."""

from . import functional, init
from .modules import (
    GELU,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    Identity,
    LayerNorm,
    Linear,
    Module,
    MSELoss,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Softplus,
    Tanh,
)

__all__ = [
    "functional", "init", "Module", "Parameter", "Linear", "Sequential", "ReLU", "Tanh", "Sigmoid",
    "Softplus", "GELU", "Identity", "Dropout", "Embedding", "LayerNorm", "MSELoss", "CrossEntropyLoss",
]  # fmt: skip
