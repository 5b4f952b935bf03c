"""``torch.nn.utils``: gradient clipping and flattening parameters to a vector."""

from __future__ import annotations

import warnings

import numpy as np

from ... import _factories
from ...tensor import Tensor, typename


def _gradients(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(
    parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None
) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their joint ``norm_type``-norm is
    at most ``max_norm`` (by ``max_norm / (norm + 1e-6)``, as PyTorch); returns the norm before
    clipping, a 0-d tensor of the gradients' (promoted) dtype. Raises ``RuntimeError`` with PyTorch's
    message when the norm is not finite and ``error_if_nonfinite``. Follows
    ``torch.nn.utils.clip_grad_norm_``."""
    grads = _gradients(parameters)
    if not grads:
        return _factories.tensor(0.0)
    for g in grads:  # (an integer scale of an integer gradient had truncated it to 0)
        if g._data.dtype.kind not in "fc":
            raise RuntimeError(
                f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got {g.dtype.type_name}"
            )
    norm_type = float(norm_type)
    # The norms of the gradients joined in their promoted dtype, as PyTorch stacks them (the
    # first gradient's dtype rounded a float64 model's norm to float32 behind a float32 one)
    dtype = np.result_type(*[g._data.dtype for g in grads])
    if norm_type == np.inf:
        if any(g._data.size == 0 for g in grads):
            raise RuntimeError(
                "_foreach_norm cannot compute the infinity norm on an empty tensor because the operation does not "
                "have an identity"
            )
        norms = [np.max(np.abs(g._data)) for g in grads]
        total = np.max(norms)
    else:
        norms = [np.linalg.norm(g._data.ravel(), norm_type) for g in grads]
        total = np.linalg.norm(np.asarray(norms, dtype), norm_type)
    total = dtype.type(total)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    coefficient = min(dtype.type(max_norm) / (total + dtype.type(1e-6)), dtype.type(1.0))
    for g in grads:
        g._data *= g._data.dtype.type(coefficient)
    return _factories.tensor(total)


def clip_grad_norm(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None):
    """``clip_grad_norm_`` under its deprecated name, with PyTorch's FutureWarning; follows
    ``torch.nn.utils.clip_grad_norm``."""
    warnings.warn(
        "`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
        FutureWarning,
        stacklevel=2,
    )
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient of ``parameters`` to ``[-clip_value, clip_value]`` in place; follows
    ``torch.nn.utils.clip_grad_value_``."""
    for g in _gradients(parameters):
        if g._data.dtype.kind in "biu":  # (PyTorch clamps by float(clip_value), whatever its value)
            raise RuntimeError(f"result type Float can't be cast to the desired output type {g.dtype.c_name}")
        np.clip(g._data, -clip_value, clip_value, out=g._data)


def parameters_to_vector(parameters) -> Tensor:
    """The parameters' values flattened and joined into one 1-D tensor (recorded: gradients flow
    back); follows ``torch.nn.utils.parameters_to_vector``."""
    from ..._views import cat

    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of ``vec`` into the parameters' values; follows
    ``torch.nn.utils.vector_to_parameters``."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {typename(vec)}")
    position = 0
    for p in parameters:
        size = p._data.size
        # As PyTorch: ``p.data =`` a view of the vector (they share memory after), which a
        # recording follows (a write into p's array was invisible to it: a replay kept the old).
        p.data = vec[position : position + size].view(p.shape).data
        position += size


from . import parametrizations, parametrize  # noqa: E402, F401 - they import the modules this package serves
