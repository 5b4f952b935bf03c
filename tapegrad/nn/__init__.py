"""``tapegrad.nn``: modules, functional forms and initialisers with PyTorch's names."""

from . import functional, init, utils
from .modules import (
    ELU,
    GELU,
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    Flatten,
    HuberLoss,
    Identity,
    L1Loss,
    LayerNorm,
    LazyLinear,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Module,
    ModuleDict,
    ModuleList,
    MSELoss,
    NLLLoss,
    Parameter,
    ParameterList,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    SmoothL1Loss,
    Softmax,
    Softplus,
    Tanh,
    UninitializedParameter,
)

__all__ = [
    "functional", "init", "utils", "Module", "ModuleList", "ModuleDict", "ParameterList", "Parameter", "Linear", "Sequential", "ReLU", "Tanh", "Sigmoid",
    "Softplus", "GELU", "Identity", "Dropout", "Embedding", "LayerNorm", "MSELoss", "CrossEntropyLoss",
    "SiLU", "LeakyReLU", "ELU", "Softmax", "LogSoftmax", "Flatten", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
    "LazyLinear", "SmoothL1Loss", "UninitializedParameter", "L1Loss", "HuberLoss",
]  # fmt: skip
