"""Ops that place values into a copy of a tensor, composed of recorded ops (item assignment,
``where``, products with constant selections), so that gradients, replay and ``create_graph``
follow from theirs: ``index_copy``, ``masked_scatter``, ``index_put_``, ``fill_diagonal_``,
``diag_embed``, and the in-place ``triu_``/``tril_``."""

from __future__ import annotations

import numpy as np

from . import _dtypes
from ._composites import tril, triu
from ._indexing import check_put_dtype, index_add
from ._record import in_place, name_node
from ._selection import where
from .tensor import Tensor, _normalize_dim, _wrap, as_tensor, guard_reads, install


def index_copy(input: Tensor, dim: int, index, source: Tensor) -> Tensor:  # noqa: A002
    """A copy of ``input`` whose slices ``index[i]`` along ``dim`` are ``source``'s slices ``i``
    (``index`` a 1-D integer tensor, one per slice of ``source``); the gradient goes to
    ``source`` where it was written and to ``input`` elsewhere. Follows ``torch.index_copy``
    (``IndexCopyBackward0``); raises ``IndexError`` for an index outside the dimension."""
    index = as_tensor(index)
    if index._data.dtype.kind not in "iu":
        raise RuntimeError("index_copy_(): Expected a long tensor for index, but got " + index.dtype.type_name)
    ndim = max(input.dim(), 1)
    dim = _normalize_dim(dim, ndim)
    guard_reads("index_copy()", index)  # which slices are written: a replay must not reuse them
    extent = (input.shape or (1,))[dim]
    positions = index._data.reshape(-1).astype(np.int64)
    outside = positions[(positions < -extent) | (positions >= extent)]
    if outside.size:
        raise IndexError(f"index_copy_(): index {outside[0]} is out of bounds for dimension {dim} with size {extent}")
    result = input.clone()  # (the slices written by item assignment, as masked_scatter's)
    result[(slice(None),) * dim + (index,)] = source.to(input.dtype)
    return name_node(result, "IndexCopyBackward0")


def masked_scatter(input: Tensor, mask, source: Tensor) -> Tensor:  # noqa: A002
    """A copy of ``input`` whose elements where ``mask`` (boolean, broadcast to ``input``) is
    True are the first elements of ``source``, in row-major order; follows
    ``torch.masked_scatter`` (``MaskedScatterBackward0``). Raises ``RuntimeError`` for a mask
    that is not boolean or a ``source`` with too few elements."""
    mask = as_tensor(mask)
    if mask._data.dtype != np.bool_:
        raise RuntimeError(
            f"masked_scatter_ only supports boolean masks, but got mask with dtype {mask.dtype.type_name}"
        )
    guard_reads("masked_scatter()", mask)
    full = np.broadcast_to(mask._data, input.shape)
    count = int(full.sum())
    if count > source.numel():
        raise RuntimeError("Number of elements of source < number of ones in mask")
    result = input.clone()
    if count:
        result[_wrap(full)] = source.reshape(-1)[:count].to(input.dtype)
    return name_node(result, "MaskedScatterBackward0")


def _index_put_(self, indices, values, accumulate: bool = False) -> Tensor:
    """``self[indices] = values`` in place (``accumulate``: added, repeated positions adding
    up); follows ``torch.Tensor.index_put_``, and raises its ``RuntimeError`` for ``values`` of
    another dtype (but for one boolean mask and a one-element value, without ``accumulate``: a
    ``masked_fill_``, which casts, as PyTorch's)."""
    indices = tuple(indices)
    check_put_dtype(self, values, None if accumulate else indices)
    if not accumulate:
        self[indices] = values
        return self
    positions = np.arange(self.numel()).reshape(tuple(self.shape))[tuple(as_tensor(i)._data for i in indices)]
    guard_reads("index_put_()", *indices)
    values = as_tensor(values).to(self.dtype).expand(positions.shape).reshape(-1)
    flat = _wrap(positions.reshape(-1).astype(np.int64))
    return in_place(self, lambda t: index_add(t.reshape(-1), 0, flat, values).reshape(tuple(t.shape)), "IndexPut")


def _fill_diagonal_(self, fill_value, wrap: bool = False) -> Tensor:
    """The main diagonal (all indices equal) set to ``fill_value`` in place; for a tall matrix,
    ``wrap`` starts it again every ``columns + 1`` rows. Follows ``torch.Tensor.fill_diagonal_``;
    raises PyTorch's ``RuntimeError`` for fewer than 2 dimensions or unequal ones beyond 2."""
    shape = tuple(self.shape)
    if len(shape) < 2:
        raise RuntimeError("dimensions must larger than 1")
    if len(shape) > 2 and len(set(shape)) != 1:
        raise RuntimeError("all dimensions of input must be of equal length")
    mask = np.zeros(shape, np.bool_)
    if len(shape) > 2:
        mask[(np.arange(shape[0]),) * len(shape)] = True
    else:
        rows, columns = shape
        step = columns + 1
        flat = np.arange(0, rows * columns if wrap else min(rows, columns) * columns, step)
        mask.reshape(-1)[flat[flat < rows * columns]] = True
    value = _dtypes.fill_value(fill_value, self._data.dtype)
    return in_place(self, lambda t: where(_wrap(mask), _wrap(np.asarray(value, self._data.dtype)), t), "FillDiagonal")


def diag_embed(input: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:  # noqa: A002
    """A tensor whose diagonals (``offset`` above the main one) in the planes of ``dim1`` and
    ``dim2`` of the result hold ``input``'s last dimension (n), zeros elsewhere: shape
    ``input.shape[:-1]`` with two dimensions of ``n + |offset|`` inserted. Follows
    ``torch.diag_embed``; raises ``RuntimeError`` for equal dimensions."""
    n = input.shape[-1] if input.dim() else 1
    size = n + abs(offset)
    out_ndim = input.dim() + 1
    d1, d2 = _normalize_dim(dim1, out_ndim), _normalize_dim(dim2, out_ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    selection = np.zeros((n, size, size), input._data.dtype)  # element i to its place on the diagonal
    rows = np.arange(n) + max(-offset, 0)
    selection[np.arange(n), rows, rows + offset] = 1
    # (..., n) times (n, size, size): each output element is one input element times 1, or 0
    planes = (input.unsqueeze(-1).unsqueeze(-1) * _wrap(selection)).sum(-3)
    order = list(range(out_ndim - 2))
    for target, source in sorted(((d1, out_ndim - 2), (d2, out_ndim - 1))):
        order.insert(target, source)
    return name_node(planes.permute(order), "DiagEmbedBackward0")


def _triu_(self, diagonal: int = 0) -> Tensor:
    return in_place(self, lambda t: triu(t, diagonal), "Triu")


def _tril_(self, diagonal: int = 0) -> Tensor:
    return in_place(self, lambda t: tril(t, diagonal), "Tril")


install(
    {
        "index_copy": index_copy,
        "index_copy_": lambda self, dim, index, source: in_place(
            self, lambda t: index_copy(t, dim, index, source), "IndexCopy"
        ),
        "masked_scatter": masked_scatter,
        "masked_scatter_": lambda self, mask, source: in_place(
            self, lambda t: masked_scatter(t, mask, source), "MaskedScatter"
        ),
        "index_put_": _index_put_,
        "index_put": lambda self, indices, values, accumulate=False: _index_put_(
            self.clone(), indices, values, accumulate
        ),
        "fill_diagonal_": _fill_diagonal_,
        "diag_embed": diag_embed,
        "triu_": _triu_,
        "tril_": _tril_,
    }
)

__all__ = ["diag_embed", "index_copy", "masked_scatter"]
