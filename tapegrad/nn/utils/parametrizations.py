"""``torch.nn.utils.parametrizations``: ready-made parametrizations (``parametrize``)."""

from __future__ import annotations

from ...tensor import Tensor, _normalize_dim
from ..modules import Module
from . import parametrize


def _norm_except_dim(v: Tensor, dim: int) -> Tensor:
    """The 2-norm of ``v`` over every dim but ``dim``, kept as size-1 dims (``dim == -1``: over
    all of ``v``, a 0-d tensor), as ``torch.norm_except_dim``."""
    if dim == -1:
        return v.norm()
    dim = _normalize_dim(dim, v.dim())  # (PyTorch's IndexError for a dim out of range)
    dims = tuple(d for d in range(v.dim()) if d != dim)
    if not dims:  # (a 1-d tensor along its dim: each element its own norm; sum(dim=()) sums all)
        return v.abs()
    return (v * v).sum(dim=dims, keepdim=True).sqrt()


class _WeightNorm(Module):
    def __init__(self, dim: int | None = 0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g: Tensor, weight_v: Tensor) -> Tensor:
        return weight_v * (weight_g / _norm_except_dim(weight_v, self.dim))

    def right_inverse(self, weight: Tensor):
        return _norm_except_dim(weight, self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Parametrize ``module.<name>`` as ``g * v / ||v||``, its magnitude ``g``
    (``parametrizations.<name>.original0``, the norms over every dim but ``dim``, kept as size-1
    dims; ``dim=None``: one norm of the whole tensor) apart from its direction ``v``
    (``original1``). Returns ``module``; follows ``torch.nn.utils.parametrizations.weight_norm``."""
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)
    return module
