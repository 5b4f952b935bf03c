"""``tapegrad.nn``: modules, functional forms and initialisers with PyTorch's names."""

from . import functional, init
from .modules import (
    CrossEntropyLoss,
    Dropout,
    Identity,
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
    "Softplus", "Identity", "Dropout", "MSELoss", "CrossEntropyLoss",
]  # fmt: skip
