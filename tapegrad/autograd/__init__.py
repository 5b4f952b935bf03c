"""``tapegrad.autograd``: grad mode, ``backward`` and ``grad`` with PyTorch's signatures."""

from __future__ import annotations

from . import anomaly_mode, functional
from .anomaly_mode import detect_anomaly, set_detect_anomaly
from .function import Function, FunctionCtx, once_differentiable
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .gradients import backward, grad
from .graph import Node


def Variable(data, requires_grad: bool = False, volatile: bool = False):  # noqa: N802 - PyTorch's name
    """A new leaf sharing ``data``'s memory, requiring grad as asked (``data`` itself is left as
    it is, and an intermediate is cut from its graph); follows ``torch.autograd.Variable``,
    which PyTorch 0.4 merged into Tensor and keeps as this."""
    leaf = data.detach()
    if requires_grad:
        leaf.requires_grad_(True)
    return leaf


__all__ = [
    "Function",
    "FunctionCtx",
    "GradcheckError",
    "Node",
    "Variable",
    "anomaly_mode",
    "backward",
    "detect_anomaly",
    "enable_grad",
    "functional",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "inference_mode",
    "is_grad_enabled",
    "no_grad",
    "once_differentiable",
    "set_detect_anomaly",
    "set_grad_enabled",
]
