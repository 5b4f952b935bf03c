"""``tapegrad.nn``: modules, functional forms and initialisers with PyTorch's names."""

from . import functional, init
from .modules import (
    ELU,
    GELU,
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Module,
    MSELoss,
    NLLLoss,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)

__all__ = [
    "functional", "init", "Module", "Parameter", "Linear", "Sequential", "ReLU", "Tanh", "Sigmoid",
    "Softplus", "GELU", "Identity", "Dropout", "Embedding", "LayerNorm", "MSELoss", "CrossEntropyLoss",
    "SiLU", "LeakyReLU", "ELU", "Softmax", "LogSoftmax", "Flatten", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
]  # fmt: skip
