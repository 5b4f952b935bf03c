"""Grad mode, as ``torch.autograd.grad_mode``: ``no_grad``, ``enable_grad``,
``set_grad_enabled``, ``is_grad_enabled``, ``inference_mode``. The state lives in ``tapegrad._grad_mode``, at the
bottom of the package, so that recording reads it without importing the autograd package."""

from __future__ import annotations

from .._grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["enable_grad", "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled"]
