"""PyTorch functions tapegrad builds from its table's ops: ``tril``/``triu``, ``diag``, ``topk``,
``sort``, ``meshgrid``, ``vstack``/``hstack``, ``dist``.

Their gradients are those of the ops they are made of (each checked by the op table's tests:
central differences, PyTorch parity, replay), so they replay and nest under ``create_graph`` as
those do. What differs from PyTorch is the node names: ``tril(x).grad_fn`` is the ``MulBackward0``
of a multiplication by a constant mask, not ``TrilBackward0``.
"""

from __future__ import annotations

import numpy as np

from . import return_types
from ._indexing import gather
from ._linalg import matmul
from ._views import cat, expand, reshape, stack, unsqueeze
from ._views import diagonal as _diagonal
from .tensor import Tensor, _normalize_dim, _wrap, as_tensor, install


def _triangle(x: Tensor, diagonal_offset: int, lower: bool, name: str) -> Tensor:
    if x._data.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
    rows, columns = x._data.shape[-2:]
    keep = (
        np.tri(rows, columns, diagonal_offset, dtype=bool)
        if lower
        else ~np.tri(rows, columns, diagonal_offset - 1, dtype=bool)
    )
    if not x._requires_grad:
        return _wrap(np.where(keep, x._data, np.zeros((), x._data.dtype)))
    return x * _wrap(keep.astype(x._data.dtype))


def tril(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002 - PyTorch's names
    """The lower triangle of the last two dimensions (below ``diagonal``, included), zeros above;
    follows ``torch.tril``. Raises ``RuntimeError`` for fewer than 2 dimensions."""
    return _triangle(input, diagonal, True, "tril")


def triu(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002
    """The upper triangle of the last two dimensions (from ``diagonal`` up), zeros below; follows
    ``torch.triu``. Raises ``RuntimeError`` for fewer than 2 dimensions."""
    return _triangle(input, diagonal, False, "triu")


def diag(input: Tensor, diagonal: int = 0) -> Tensor:  # noqa: A002
    """A 1-D input as the ``diagonal``-th diagonal of a square matrix; a 2-D input's
    ``diagonal``-th diagonal as a 1-D tensor; follows ``torch.diag``. Raises ``RuntimeError``
    for other ranks."""
    ndim = input._data.ndim
    if ndim == 2:
        return _diagonal(input, diagonal)
    if ndim != 1:
        raise RuntimeError("diag(): Supports 1D or 2D tensors. Got " + f"{ndim}D")
    n = input._data.shape[0] + abs(diagonal)
    # Row i of the result holds input[i - max(0, -diagonal)] at column i + diagonal: a one-hot
    # placement (a constant) times the values, summed: the gradient is the placement's transpose.
    placement = np.zeros((n * n, input._data.shape[0]), input._data.dtype)
    for k in range(input._data.shape[0]):
        row = k + max(0, -diagonal)
        placement[row * n + row + diagonal, k] = 1
    return reshape(matmul(_wrap(placement), input), (n, n))


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """The ``k`` largest (``largest=False``: smallest) values along ``dim`` and their indices,
    as ``(values, indices)``; follows ``torch.topk``. Values gather from the input, so the
    gradient goes to the chosen elements. Raises ``RuntimeError`` when ``k`` is out of range."""
    dim = _normalize_dim(dim, max(input._data.ndim, 1))
    extent = input._data.shape[dim] if input._data.ndim else 1
    if not 0 <= k <= extent:
        raise RuntimeError("selected index k out of range")
    order = _order(input._data, dim, descending=largest)
    indices = np.take(order, np.arange(k), axis=dim) if input._data.ndim else order[:k]
    return return_types.topk(gather(input, dim, indices), _wrap(indices))


def sort(input: Tensor, dim: int = -1, descending: bool = False, *, stable: bool = False):  # noqa: A002
    """Values along ``dim`` in order, and where each came from, as ``(values, indices)``; ties
    keep their order (stable); follows ``torch.sort``."""
    dim = _normalize_dim(dim, max(input._data.ndim, 1))
    indices = _order(input._data, dim, descending)
    return return_types.sort(gather(input, dim, indices), _wrap(indices))


def _order(values: np.ndarray, dim: int, descending: bool) -> np.ndarray:
    """A stable argsort along ``dim``, NaN counted as the largest value, as PyTorch orders them."""
    if values.ndim == 0:
        return np.zeros((), np.int64)
    key = -values if descending and values.dtype.kind != "b" else values
    if descending and values.dtype.kind == "f":
        key = np.where(np.isnan(values), -np.inf, key)  # NaN first when descending
    return np.argsort(key, axis=dim, kind="stable").astype(np.int64)


def meshgrid(*tensors, indexing: str = "ij") -> tuple:
    """Coordinate grids of 1-D tensors (``indexing="ij"``: matrix order; ``"xy"``: the first two
    swapped), each an expanded view that gradients flow back through; follows ``torch.meshgrid``."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f'torch.meshgrid: indexing must be one of "xy" or "ij", but received: {indexing}')
    tensors = [as_tensor(t) for t in tensors]
    shape = [t._data.size for t in tensors]
    if indexing == "xy" and len(shape) >= 2:
        shape[0], shape[1] = shape[1], shape[0]
    grids = []
    for position, t in enumerate(tensors):
        axis = position if indexing == "ij" or len(tensors) < 2 else {0: 1, 1: 0}.get(position, position)
        view = [1] * len(shape)
        view[axis] = t._data.size
        grids.append(expand(reshape(t, tuple(view)), tuple(shape)))
    return tuple(grids)


def vstack(tensors) -> Tensor:
    """Rows stacked: 1-D tensors as rows of a matrix, others joined along dimension 0; follows
    ``torch.vstack``."""
    return cat([unsqueeze(t, 0) if t._data.ndim < 2 else t for t in map(as_tensor, tensors)], 0)


def hstack(tensors) -> Tensor:
    """Joined along dimension 1 (dimension 0 for 1-D tensors); follows ``torch.hstack``."""
    tensors = [as_tensor(t) for t in tensors]
    return cat(tensors, 0 if all(t._data.ndim == 1 for t in tensors) else 1)


def dist(input: Tensor, other, p: float = 2) -> Tensor:  # noqa: A002
    """The ``p``-norm of ``input - other``; follows ``torch.dist``."""
    return (input - as_tensor(other)).norm(p)


def column_stack(tensors) -> Tensor:
    """1-D tensors as columns, others joined along dimension 1; follows ``torch.column_stack``."""
    return cat([unsqueeze(t, 1) if t._data.ndim < 2 else t for t in map(as_tensor, tensors)], 1)


install(
    {
        "tril": tril,
        "triu": triu,
        "diag": diag,
        "topk": topk,
        "sort": sort,
        "dist": dist,
    }
)

__all__ = ["column_stack", "diag", "dist", "hstack", "meshgrid", "sort", "stack", "topk", "tril", "triu", "vstack"]
