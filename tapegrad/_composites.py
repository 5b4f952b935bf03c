"""PyTorch functions tapegrad builds from its table's ops: ``tril``/``triu``, ``diag``, ``topk``,
``sort``, ``meshgrid``, ``vstack``/``hstack``, ``dist``.

Their gradients are those of the ops they are made of (each checked by the op table's tests:
central differences, PyTorch parity, replay), so they replay and nest under ``create_graph`` as
those do. What differs from PyTorch is the node names: ``tril(x).grad_fn`` is the ``WhereBackward0``
of a select by a constant mask, not ``TrilBackward0``.
"""

from __future__ import annotations

import math

import numpy as np

from . import _dtypes, _factories, return_types
from ._grad_mode import no_grad
from ._grad_mode import state as _grad_state
from ._indexing import gather, index_select, repeat, scatter
from ._linalg import check_addmm_dtypes
from ._record import _bump_version, _check_in_place, broadcast_shape, name_node, with_out
from ._selection import _result_type, where
from ._tape import exclusive
from ._views import cat, expand, permute, reshape, stack, transpose
from ._views import diagonal as _diagonal
from .tensor import Tensor, _normalize_dim, _wrap, as_tensor, floating_kernel, guard_reads, install, on_tape


def _triangle(x: Tensor, diagonal_offset: int, lower: bool, name: str) -> Tensor:
    if x._data.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
    rows, columns = x._data.shape[-2:]
    keep = (
        np.tri(rows, columns, diagonal_offset, dtype=bool)
        if lower
        else ~np.tri(rows, columns, diagonal_offset - 1, dtype=bool)
    )
    if not on_tape(x):  # (inside tapegrad.record, a value without grad is recorded too)
        return _wrap(np.where(keep, x._data, np.zeros((), x._data.dtype)))
    # A select, not a product with a 0/1 mask: inf * 0 and NaN * 0 are NaN, and the zeroed part
    # must be exact zeros (a causal mask is ``full(-inf).triu(1)``). Its gradient is the upstream
    # gradient inside the triangle and exactly 0 outside, whatever x holds there.
    return name_node(where(_wrap(keep), x, 0), "TrilBackward0" if lower else "TriuBackward0")


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
    ``diagonal``-th diagonal as a new 1-D tensor (not a view); follows ``torch.diag``. Raises ``RuntimeError``
    for other ranks."""
    ndim = input._data.ndim
    if ndim == 2:  # a copy, as PyTorch's (``diagonal`` is the view): writing into it leaves input
        return name_node(_diagonal(input, diagonal).clone(), "DiagonalBackward0_copy")
    if ndim != 1:
        raise RuntimeError("diag(): Supports 1D or 2D tensors. Got " + f"{ndim}D")
    count = input._data.shape[0]
    n = count + abs(diagonal)
    # Element k goes to row k + max(0, -diagonal), column row + diagonal; every other position
    # picks the zero appended after the input: one gather, whose gradient is a scatter back
    # (a one-hot placement matrix took n**3 memory).
    rows = np.arange(count) + max(0, -diagonal)
    picks = np.full(n * n, count, np.int64)
    picks[rows * n + rows + diagonal] = np.arange(count)
    padded = cat([input, _wrap(np.zeros(1, input._data.dtype))], 0)
    return reshape(index_select(padded, 0, _wrap(picks)), (n, n))


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """The ``k`` largest (``largest=False``: smallest) values along ``dim`` and their indices,
    as ``(values, indices)``; follows ``torch.topk``. Values gather from the input, so the
    gradient goes to the chosen elements. Raises ``RuntimeError`` when ``k`` is out of range."""
    dim = _normalize_dim(dim, max(input._data.ndim, 1))
    extent = input._data.shape[dim] if input._data.ndim else 1
    if input._data.dtype.kind == "b":
        raise RuntimeError("topk does not support bool dtypes on CPU")
    if not 0 <= k <= extent:
        raise RuntimeError("selected index k out of range")
    # Positions computed in numpy from recorded values are constants of a recording: the values
    # are reads (stricter than the positions need: any change of them fails the guard).
    guard_reads("topk()", input)
    if not input._data.ndim:  # a 0-d tensor is its own top 1 (k is 0 or 1 here)
        indices = np.zeros((), np.int64) if k else np.zeros(0, np.int64)
        return return_types.topk(
            gather(input, 0, indices) if k else _wrap(np.zeros(0, input._data.dtype)), _wrap(indices)
        )
    order = _order(input._data, dim, descending=largest)
    indices = np.take(order, np.arange(k), axis=dim)
    return return_types.topk(name_node(gather(input, dim, indices), "TopkBackward0"), _wrap(indices))


def sort(input: Tensor, dim: int = -1, descending: bool = False, *, stable: bool = False):  # noqa: A002
    """Values along ``dim`` in order, and where each came from, as ``(values, indices)``; ties
    keep their order (stable); follows ``torch.sort``."""
    dim = _normalize_dim(dim, max(input._data.ndim, 1))
    guard_reads("sort()", input)
    indices = _order(input._data, dim, descending)
    return return_types.sort(name_node(gather(input, dim, indices), "SortBackward0"), _wrap(indices))


def _order(values: np.ndarray, dim: int, descending: bool) -> np.ndarray:
    """A stable argsort along ``dim``, NaN counted as the largest value, as PyTorch orders them."""
    if values.ndim == 0:
        return np.zeros((), np.int64)
    if not descending:
        return np.argsort(values, axis=dim, kind="stable").astype(np.int64)
    if values.dtype.kind != "f":
        # Bitwise not reverses the order of bool, unsigned and signed integers without the
        # wrap-around of negation (-x of uint8, or of int64's minimum, is out of range).
        return np.argsort(~values, axis=dim, kind="stable").astype(np.int64)
    # NaN first when descending, then the rest largest first: a NaN key cannot rank below -inf,
    # so NaN-ness is the primary key.
    return np.lexsort((-values, ~np.isnan(values)), axis=dim).astype(np.int64)


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
    """Rows stacked: each tensor made at least 2-D (a 0-d one a 1x1 matrix, a 1-D one a row),
    then joined along dimension 0; follows ``torch.vstack``."""
    tensors = _nonempty("vstack", tensors)
    return cat([reshape(t, (1,) * (2 - t._data.ndim) + t._data.shape) if t._data.ndim < 2 else t for t in tensors], 0)


def hstack(tensors) -> Tensor:
    """Each tensor made at least 1-D, then joined along dimension 1, or along dimension 0 when
    the first is 1-D (PyTorch looks at the first only); follows ``torch.hstack``."""
    tensors = [reshape(t, (1,)) if t._data.ndim == 0 else t for t in _nonempty("hstack", tensors)]
    return cat(tensors, 0 if tensors[0]._data.ndim == 1 else 1)


def _nonempty(name: str, tensors) -> list:
    if isinstance(tensors, Tensor):  # (iterated, a matrix was taken for a list of its rows)
        raise TypeError(f"{name}(): argument 'tensors' (position 1) must be tuple of Tensors, not Tensor")
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise RuntimeError(f"{name} expects a non-empty TensorList")
    return tensors


def dist(input: Tensor, other, p: float = 2) -> Tensor:  # noqa: A002
    """The ``p``-norm of ``input - other``; follows ``torch.dist``."""
    difference = input - as_tensor(other)
    if difference._data.dtype.kind != "f":
        raise RuntimeError(
            f"norm(): input dtype should be either floating point or complex. Got {difference.dtype.type_name} instead."
        )
    return difference.norm(p)


def column_stack(tensors) -> Tensor:
    """0-d and 1-D tensors as columns, others joined along dimension 1; follows
    ``torch.column_stack``."""
    tensors = _nonempty("column_stack", tensors)
    return cat([reshape(t, (t._data.size, 1)) if t._data.ndim < 2 else t for t in tensors], 1)


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


# -- issue 16: the census's next most-used names ---------------------------------------------------


def _dims_tuple(dims) -> tuple:
    return tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)


def ceil(input: Tensor) -> Tensor:  # noqa: A002
    """The smallest integer not below each element (integers unchanged); follows ``torch.ceil``.
    Its gradient is zero, as PyTorch's. Raises ``NotImplementedError`` for booleans."""
    if input._data.dtype.kind == "b":
        raise NotImplementedError("\"ceil_vml_cpu\" not implemented for 'Bool'")
    if input._data.dtype.kind != "f":
        return input.clone()
    return -((-input).floor())


@with_out("nonzero")
def nonzero(input: Tensor, *, out=None, as_tuple: bool = False):  # noqa: A002
    """The indices of the nonzero elements, one row per element (int64, shape ``(n, ndim)``), or
    with ``as_tuple=True`` one 1-D tensor per dimension; follows ``torch.nonzero``."""
    if not isinstance(as_tuple, bool):
        raise TypeError(f"nonzero(): argument 'as_tuple' must be bool, not {type(as_tuple).__name__}")
    guard_reads("nonzero()", input)
    data = input._data
    if as_tuple:
        return tuple(_wrap(i.astype(np.int64)) for i in np.nonzero(np.atleast_1d(data)))
    if data.ndim == 0:
        return _wrap(np.zeros((int(data != 0), 0), np.int64))
    return _wrap(np.argwhere(data).astype(np.int64).reshape(-1, data.ndim))


def argwhere(input: Tensor) -> Tensor:  # noqa: A002
    """``nonzero(input)``: the indices of the nonzero elements, one row per element (int64,
    ``(n, ndim)``); follows ``torch.argwhere``."""
    return nonzero(input)


def msort(input: Tensor) -> Tensor:  # noqa: A002
    """``sort(input, dim=0).values``, differentiable (``SortBackward0``); follows ``torch.msort``."""
    return sort(input, 0).values


def unravel_index(indices, shape) -> tuple:
    """The coordinates in ``shape`` of the flat ``indices`` (an integer tensor, taken modulo the
    number of elements, as PyTorch's): one int64 tensor of ``indices``' shape per dimension.
    Follows ``torch.unravel_index``; raises its ``TypeError`` for non-integer indices and
    ``ValueError`` for a negative extent."""
    guard_reads("unravel_index()", indices)  # coordinates computed in numpy
    data = indices._data if isinstance(indices, Tensor) else np.asarray(indices)
    if data.dtype.kind not in "iu":
        name = indices.dtype if isinstance(indices, Tensor) else data.dtype
        raise TypeError(f"expected 'indices' to be integer dtype, but got {name}")
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(extent) for extent in shape)
    if any(extent < 0 for extent in shape):
        raise ValueError(f"'shape' cannot have negative values, but got {shape}")
    count = math.prod(shape)
    flat = np.mod(data.astype(np.int64), count) if count else data.astype(np.int64)
    return tuple(_wrap(np.asarray(c, np.int64)) for c in np.unravel_index(flat, shape)) if shape else ()


def _flat_index(x: Tensor, positions: np.ndarray) -> Tensor:
    """The elements of ``x`` (flattened) at ``positions``: differentiable (an ``index_select``)."""
    return index_select(reshape(x, (-1,)), 0, _wrap(np.asarray(positions, np.int64).reshape(-1)))


def masked_select(input: Tensor, mask: Tensor) -> Tensor:  # noqa: A002
    """The elements of ``input`` where the boolean ``mask`` (broadcast with it) is True, as a
    1-D tensor; follows ``torch.masked_select``. Raises ``RuntimeError`` for a non-boolean mask."""
    mask = as_tensor(mask)
    if mask._data.dtype.kind != "b":
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    shape = broadcast_shape(mask._data.shape, input._data.shape)
    guard_reads("masked_select()", mask)
    x = input if input._data.shape == shape else expand(input, shape)
    return name_node(_flat_index(x, np.flatnonzero(np.broadcast_to(mask._data, shape))), "MaskedSelectBackward0")


def repeat_interleave(input: Tensor, repeats=None, dim=None, *, output_size=None) -> Tensor:  # noqa: A002
    """Each element repeated ``repeats`` times (an int, or one count per element along ``dim``),
    of the flattened input when ``dim`` is None; ``repeat_interleave(counts)`` repeats the indices
    ``0 .. len(counts)-1``. Follows ``torch.repeat_interleave``; gradients add up over the copies."""
    # The counts are read in numpy: inside tapegrad.record, a replay at other counts must fail
    # its guard (or record again), not repeat the recording's counts.
    guard_reads("repeat_interleave()", input if repeats is None else repeats)
    if repeats is None:  # torch.repeat_interleave(repeats)
        counts = input._data.reshape(-1).astype(np.int64)
        if (counts < 0).any():
            raise RuntimeError("repeats must be non-negative")
        return _wrap(np.repeat(np.arange(counts.size, dtype=np.int64), counts))
    if dim is None:
        input, dim = reshape(input, (-1,)), 0  # noqa: A001
    dim = _normalize_dim(dim, max(input._data.ndim, 1))
    if input._data.ndim == 0:
        input = reshape(input, (1,))  # noqa: A001
    extent = input._data.shape[dim]
    counts = repeats._data if isinstance(repeats, Tensor) else np.asarray(repeats)
    counts = counts.astype(np.int64).reshape(-1)
    if (counts < 0).any():
        raise RuntimeError("Repeats must be non-negative" if counts.size == 1 else "repeats must be non-negative")
    if counts.size == 1:
        counts = np.broadcast_to(counts, (extent,))
    elif counts.size != extent:
        raise RuntimeError(
            "repeats must have the same size as input along dim, but got repeats.size(0) = "
            f"{counts.size} and input.size({dim}) = {extent}"
        )
    return index_select(input, dim, _wrap(np.repeat(np.arange(extent, dtype=np.int64), counts)))


def movedim(input: Tensor, source, destination) -> Tensor:  # noqa: A002
    """The dimensions ``source`` moved to the positions ``destination``, the others keeping their
    order (a view); follows ``torch.movedim``."""
    ndim = input._data.ndim
    source, destination = _dims_tuple(source), _dims_tuple(destination)
    if len(source) != len(destination):
        raise RuntimeError(
            "movedim: Invalid source or destination dims: source "
            f"({list(source)} dims) should contain the same number of dims as destination ({list(destination)} dims)"
        )
    src = [_normalize_dim(d, ndim) for d in source]
    dst = [_normalize_dim(d, ndim) for d in destination]
    if len(set(src)) != len(src):
        raise RuntimeError(f"movedim: repeated dim in `source` ({list(source)})")
    if len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in `destination` ({list(destination)})")
    if ndim == 0:  # (dims 0 and -1 of a 0-d tensor: nothing moves; a view, as PyTorch's alias)
        return reshape(input, ())
    order = [-1] * ndim
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(d for d in range(ndim) if d not in src)
    return permute(input, tuple(d if d >= 0 else next(rest) for d in order))


def swapaxes(input: Tensor, axis0: int, axis1: int) -> Tensor:  # noqa: A002
    """``transpose(input, axis0, axis1)``; follows ``torch.swapaxes``."""
    return transpose(input, axis0, axis1)


def swapdims(input: Tensor, dim0: int, dim1: int) -> Tensor:  # noqa: A002
    """``transpose(input, dim0, dim1)``; follows ``torch.swapdims``."""
    return transpose(input, dim0, dim1)


def tile(input: Tensor, dims) -> Tensor:  # noqa: A002
    """The input repeated ``dims[i]`` times along each dimension, ``dims`` padded with leading
    ones to the input's rank (and the input with leading size-1 dimensions to ``dims``'s); follows
    ``torch.tile``."""
    dims = tuple(int(d) for d in _dims_tuple(dims))
    dims = (1,) * (input._data.ndim - len(dims)) + dims
    return repeat(input, *dims)


def roll(input: Tensor, shifts, dims=None) -> Tensor:  # noqa: A002
    """Elements shifted ``shifts`` places along ``dims`` (the flattened input when None), wrapping
    around; follows ``torch.roll``."""
    shifts = _dims_tuple(shifts)
    if not shifts:
        raise RuntimeError("`shifts` required")
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
        return name_node(reshape(roll(reshape(input, (-1,)), shifts, 0), input._data.shape), "RollBackward0")
    dims = _dims_tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    if input._data.ndim == 0:  # (PyTorch's roll has no dimension of a scalar to shift along)
        raise IndexError(f"Dimension specified as {dims[0]} but tensor has no dimensions")
    out = input
    for shift, dim in zip(shifts, dims):
        dim = _normalize_dim(dim, input._data.ndim)
        extent = input._data.shape[dim] if input._data.ndim else 1
        order = (np.arange(extent) - int(shift)) % max(extent, 1)
        out = index_select(out, dim, _wrap(order.astype(np.int64)))
    return name_node(out, "RollBackward0")


def argsort(input: Tensor, dim: int = -1, descending: bool = False, *, stable: bool = False) -> Tensor:  # noqa: A002
    """The indices that sort ``input`` along ``dim`` (int64); follows ``torch.argsort``."""
    dim = _normalize_dim(dim, max(input._data.ndim, 1))
    guard_reads("argsort()", input)
    return _wrap(_order(input._data, dim, descending))


@with_out("searchsorted")
def searchsorted(sorted_sequence, values, *, out_int32=False, right=False, side=None, out=None, sorter=None):
    """Where each of ``values`` would be inserted in the innermost dimension of
    ``sorted_sequence`` to keep it sorted (``right``/``side="right"``: after equal elements);
    int64 (int32 with ``out_int32``); follows ``torch.searchsorted``."""
    guard_reads("searchsorted()", sorted_sequence, values, sorter)
    boundaries = as_tensor(sorted_sequence)._data
    scalar = not isinstance(values, Tensor)
    queries = np.asarray(values._data if not scalar else values)
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
        if right and side == "left":
            raise RuntimeError(
                "torch.searchsorted(): side and right can't be set to opposites, got side of left while right was True"
            )
        right = side == "right"
    if sorter is not None:
        boundaries = np.take_along_axis(boundaries, as_tensor(sorter)._data, -1)
    mode = "right" if right else "left"
    if boundaries.ndim == 1:
        result = np.searchsorted(boundaries, queries, side=mode)
    else:
        if scalar or queries.shape[:-1] != boundaries.shape[:-1]:
            raise RuntimeError(
                "torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 dimensions of "
                "boundaries tensor and input value tensor must match, but we got boundaries tensor "
                f"{list(boundaries.shape)} and input value tensor {list(queries.shape)}"
            )
        flat_b = boundaries.reshape(-1, boundaries.shape[-1])
        flat_q = queries.reshape(-1, queries.shape[-1])
        result = np.stack([np.searchsorted(b, q, side=mode) for b, q in zip(flat_b, flat_q)]).reshape(queries.shape)
    return _wrap(np.asarray(result, np.int32 if out_int32 else np.int64))


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False, dim=None):  # noqa: A002
    """The distinct elements (sorted), or distinct slices along ``dim``, with optionally where each
    element went (``return_inverse``) and how often each occurs (``return_counts``); follows
    ``torch.unique``."""
    guard_reads("unique()", input)
    data = input._data
    if dim is not None:
        dim = _normalize_dim(dim, max(data.ndim, 1))
    # each NaN distinct, as PyTorch's (numpy merges them by default)
    options = {"equal_nan": False} if dim is None else {}
    values, inverse, counts = np.unique(data, return_inverse=True, return_counts=True, axis=dim, **options)
    results = [_wrap(values)]
    if return_inverse:
        results.append(_wrap(inverse.reshape(data.shape if dim is None else (-1,)).astype(np.int64)))
    if return_counts:
        results.append(_wrap(counts.astype(np.int64)))
    return results[0] if len(results) == 1 else tuple(results)


@with_out("std_mean")
def std_mean(input: Tensor, dim=None, *, correction=1, keepdim: bool = False, out=None) -> tuple:  # noqa: A002
    """``(std, mean)`` over ``dim`` (all dimensions when None) with ``correction`` degrees of
    freedom removed; follows ``torch.std_mean``."""
    std, mean = input.std(dim, keepdim=keepdim, correction=correction), input.mean(dim, keepdim=keepdim)
    return name_node(std, "StdMeanBackward0"), name_node(mean, "StdMeanBackward0")  # (one node in PyTorch)


@with_out("linalg_cross")
def cross(input: Tensor, other: Tensor, dim=None, *, out=None) -> Tensor:  # noqa: A002
    """The cross product of 3-vectors along ``dim`` (None: the first dimension of size 3);
    follows ``torch.cross``. Raises ``RuntimeError`` when the dimension is not of length 3."""
    other = as_tensor(other)
    if dim is None:
        sizes = broadcast_shape(input._data.shape, other._data.shape)
        found = [d for d, extent in enumerate(sizes) if extent == 3]
        if not found:
            raise RuntimeError("no dimension of size 3 in input")
        dim = found[0]
    return _cross(input, other, dim)


def _cross(a: Tensor, b: Tensor, dim: int) -> Tensor:
    if a._data.ndim != b._data.ndim:  # (torch.cross and linalg.cross alike)
        raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
    shape = broadcast_shape(a._data.shape, b._data.shape)
    dim = _normalize_dim(dim, len(shape))
    if a._data.shape[dim] != 3 or b._data.shape[dim] != 3:
        raise RuntimeError(
            f"linalg.cross: inputs dimension {dim} must have length 3. "
            f"Got {a._data.shape[dim]} and {b._data.shape[dim]}"
        )
    a, b = expand(a, shape), expand(b, shape)

    def part(x, i):
        return index_select(x, dim, _wrap(np.array([i], np.int64)))

    return cat(
        [
            part(a, 1) * part(b, 2) - part(a, 2) * part(b, 1),
            part(a, 2) * part(b, 0) - part(a, 0) * part(b, 2),
            part(a, 0) * part(b, 1) - part(a, 1) * part(b, 0),
        ],
        dim,
    )


@with_out("bernoulli")
def bernoulli(input: Tensor, p=None, *, generator=None, out=None) -> Tensor:  # noqa: A002
    """0 or 1 (the input's dtype) with probability ``input`` (or ``p``) of 1, elementwise, from
    numpy's Generator; follows ``torch.bernoulli``. Raises ``RuntimeError`` for probabilities
    outside [0, 1]."""
    floating_kernel(input, "bernoulli_tensor_cpu_p_")
    probabilities = input._data if p is None else np.full(input._data.shape, p)
    if not ((probabilities >= 0) & (probabilities <= 1)).all():
        raise RuntimeError(
            "Expected p_in >= 0 && p_in <= 1 to be true, but got false.  (Could this error message be improved?  "
            "If so, please report an enhancement request to PyTorch.)"
        )
    rng = _factories.numpy_generator(generator)
    return _wrap((rng.random(input._data.shape) < probabilities).astype(input._data.dtype))


def promote_types(type1, type2):
    """The dtype PyTorch's promotion gives two tensors of these dtypes; follows
    ``torch.promote_types``. Raises ``TypeError`` for a non-dtype."""
    for position, (name, value) in enumerate((("type1", type1), ("type2", type2)), 1):
        if not isinstance(value, _dtypes.dtype):
            raise TypeError(
                f"promote_types(): argument '{name}' (position {position}) must be torch.dtype, "
                f"not {type(value).__name__}"
            )
    return _dtypes.result_type(type1, 1, type2, 1)


def is_floating_point(input: Tensor) -> bool:  # noqa: A002
    """Whether ``input``'s dtype is a floating one; follows ``torch.is_floating_point``."""
    return input.is_floating_point()


def _uniform_(self, *args, generator=None, **kwargs) -> Tensor:
    """Fill in place with uniform samples in [from, to) from numpy's Generator and return self;
    follows ``torch.Tensor.uniform_(from=0, to=1, *, generator=None)``."""
    bounds = dict(zip(("from", "to"), args))
    unknown = set(kwargs) - {"from", "to"}
    if unknown or len(args) > 2 or set(bounds) & set(kwargs):
        raise TypeError("uniform_() received an invalid combination of arguments")
    bounds.update(kwargs)
    low, high = bounds.get("from", 0.0), bounds.get("to", 1.0)
    floating_kernel(self, "check_uniform_bounds")
    if low > high:
        raise RuntimeError(f"uniform_ expects to return a [from, to) range, but found from={low} > to={high}")
    values = _factories.numpy_generator(generator).uniform(low, high, self._data.shape)
    return _fill_in_place(self, values)


def _normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    """Fill in place with normal samples from numpy's Generator and return self; follows
    ``torch.Tensor.normal_``."""
    floating_kernel(self, "normal_kernel_cpu")
    if std < 0:
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _fill_in_place(self, _factories.numpy_generator(generator).normal(mean, std, self._data.shape))


def _fill_in_place(self: Tensor, values: np.ndarray) -> Tensor:
    from ._selection import _overwrite

    return _overwrite(self, _wrap(values.astype(self._data.dtype)), "Copy")


def _bernoulli_method(self, p=None, *, generator=None) -> Tensor:
    return bernoulli(self, p, generator=generator)


def select(input: Tensor, dim: int, index: int) -> Tensor:  # noqa: A002
    """The slice at ``index`` along ``dim``, that dimension removed (a view); follows
    ``torch.select``. Raises ``IndexError`` with PyTorch's messages for ``dim`` or ``index`` out
    of range."""
    ndim = input._data.ndim
    dim = _normalize_dim(dim, ndim)
    extent = input._data.shape[dim]
    if not -extent <= index < extent:
        raise IndexError(
            f"select(): index {index} out of range for tensor of size {list(input._data.shape)} at dimension {dim}"
        )
    return input[(slice(None),) * dim + (index,)]


def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:  # noqa: A002
    """``length`` elements from ``start`` along ``dim`` (a view); follows ``torch.narrow``.
    Raises PyTorch's ``IndexError`` for ``start`` out of range and ``RuntimeError`` for a 0-d
    input, a negative ``length`` or one past the end."""
    ndim = input._data.ndim
    if ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    dim = _normalize_dim(dim, ndim)
    extent = input._data.shape[dim]
    if not -extent <= start <= extent:
        raise IndexError(f"start out of range (expected to be in range of [{-extent}, {extent}], but got {start})")
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    start = start % extent if start < 0 else start
    if start + length > extent:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({extent}).")
    return input[(slice(None),) * dim + (slice(start, start + length),)]


def broadcast_to(input: Tensor, size) -> Tensor:  # noqa: A002
    """``input`` broadcast to ``size`` (a view, -1 keeping a size); follows ``torch.broadcast_to``."""
    return expand(input, tuple(size))


def addmm(input: Tensor, mat1: Tensor, mat2: Tensor, *, beta=1, alpha=1) -> Tensor:  # noqa: A002
    """``beta * input + alpha * (mat1 @ mat2)``, ``input`` broadcast to (n, p); follows
    ``torch.addmm`` (with ``beta`` 0, ``input``'s values are ignored: its NaN and inf do not
    propagate, and its gradient is zeros, as PyTorch's).
    Raises PyTorch's ``RuntimeError`` for shapes that do not multiply."""
    if mat1.dim() != 2 or mat2.dim() != 2:
        raise RuntimeError(
            f"mat1 must be a matrix, got {mat1.dim()}-D tensor"
            if mat1.dim() != 2
            else f"mat2 must be a matrix, got {mat2.dim()}-D tensor"
        )
    if mat1.shape[1] != mat2.shape[0]:
        raise RuntimeError(
            f"mat1 and mat2 shapes cannot be multiplied ({mat1.shape[0]}x{mat1.shape[1]} and "
            f"{mat2.shape[0]}x{mat2.shape[1]})"
        )
    if isinstance(input, Tensor):
        check_addmm_dtypes(input, mat1, mat2)
    return _scaled_sum(input, mat1 @ mat2, beta, alpha, "AddmmBackward0")


def _scaled_sum(input, product: Tensor, beta, alpha, node: str) -> Tensor:  # noqa: A002
    """``beta * input + alpha * product``, ``input`` expanded to the product's shape (PyTorch's
    error where it does not expand), shown as ``node``: the addmm family's last step. With
    ``beta`` 0, ``input``'s values are ignored: its NaN and inf do not propagate, and its
    gradient is zeros, as PyTorch's. For integer tensors ``beta`` and ``alpha`` are converted to
    integers first, as PyTorch converts them (``beta=0.5`` is 0; the product scaled by a float
    came out float32)."""
    input = as_tensor(input)  # noqa: A001
    if input._data.dtype.kind in "iu":
        beta, alpha = (_dtypes.integer_scale(scale, product._data.dtype) for scale in (beta, alpha))
    product = product if alpha == 1 else product * alpha
    if beta != 0:
        with no_grad():  # PyTorch's error where it does not expand; the sum broadcasts it, and
            input.expand(product.shape)  # the node's inputs are PyTorch's (no ExpandBackward0)
        return name_node((input if beta == 1 else input * beta) + product, node)
    input = input.expand(product.shape)  # noqa: A001
    if not (input.requires_grad or on_tape(input)):
        return product
    # The product's values, with input's gradient zeros (it was None): a select, which passes
    # no NaN of input on, as ``input * 0`` would.
    chosen = where(_wrap(np.ones(product.shape, np.bool_)), product, input)
    return name_node(chosen, node)


def addmv(input: Tensor, mat: Tensor, vec: Tensor, *, beta=1, alpha=1) -> Tensor:  # noqa: A002
    """``beta * input + alpha * (mat @ vec)``: ``mat`` (n, m), ``vec`` (m,), ``input``
    broadcast to (n,); follows ``torch.addmv`` (``beta`` 0 as in ``addmm``). Raises PyTorch's
    ``RuntimeError`` for other shapes."""
    if mat.dim() == 2 and vec.dim() == 1 and input.dim() <= 1 and mat.shape[1] == vec.shape[0]:
        if input.dim() == 1 and input.shape[0] not in (1, mat.shape[0]):
            raise RuntimeError(
                f"size mismatch, got input ({input.shape[0]}), mat ({mat.shape[0]}x{mat.shape[1]}), vec ({vec.shape[0]})"
            )
    return _scaled_sum(input, mv(mat, vec), beta, alpha, "AddmvBackward0")


def _batched_product(batch1: Tensor, batch2: Tensor) -> Tensor:
    for name, batch in (("batch1", batch1), ("batch2", batch2)):
        if batch.dim() != 3:
            raise RuntimeError(f"{name} must be a 3D tensor")
    count, rows, inner = batch1.shape
    if tuple(batch2.shape[:2]) != (count, inner):
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: [{count}, {inner}] but got: "
            f"[{batch2.shape[0]}, {batch2.shape[1]}]."
        )
    return batch1 @ batch2


def baddbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:  # noqa: A002
    """``beta * input + alpha * (batch1 @ batch2)``: ``batch1`` (b, n, m), ``batch2`` (b, m, p),
    ``input`` broadcast to (b, n, p); follows ``torch.baddbmm`` (``beta`` 0 as in ``addmm``: the
    attention scores' ``baddbmm(empty, q, k, beta=0)``). Raises PyTorch's ``RuntimeError`` for
    other shapes and dtypes."""
    if isinstance(input, Tensor) and not input._data.dtype == batch1._data.dtype == batch2._data.dtype:
        raise RuntimeError(
            f"Input dtypes must be the same, got: input {input.dtype.c_name}, batch1: {batch1.dtype.c_name}, "
            f"batch2: {batch2.dtype.c_name}"
        )
    return _scaled_sum(input, _batched_product(batch1, batch2), beta, alpha, "BaddbmmBackward0")


def addbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta=1, alpha=1) -> Tensor:  # noqa: A002
    """``beta * input + alpha * (batch1 @ batch2).sum(0)``: the batch's products summed, (n, p);
    follows ``torch.addbmm`` (``beta`` 0 as in ``addmm``). Raises PyTorch's ``RuntimeError`` for
    other shapes."""
    product = _batched_product(batch1, batch2)
    # (the sum in the product's dtype: an integer sum promotes to int64, PyTorch's addbmm keeps it)
    return _scaled_sum(input, product.sum(0, dtype=product.dtype), beta, alpha, "AddbmmBackward0")


def addr(input: Tensor, vec1: Tensor, vec2: Tensor, *, beta=1, alpha=1) -> Tensor:  # noqa: A002
    """``beta * input + alpha * outer(vec1, vec2)``: ``vec1`` (n,), ``vec2`` (m,), ``input``
    broadcast to (n, m); the three tensors' promoted dtype, ``input`` counted as broadcast (for
    bools, ``beta and input or alpha and outer``). Follows ``torch.addr`` (``AddrBackward0``;
    ``beta`` 0 as in ``addmm``). Raises its ``RuntimeError`` for vectors that are not 1-D, an
    ``input`` that does not broadcast, a bool ``beta``/``alpha`` for a result that is not bool,
    or a float one for an integer result."""
    for name, vector in (("vec1", vec1), ("vec2", vec2)):
        if vector.dim() != 1:
            raise RuntimeError(f"addr: Expected 1-D argument {name}, but got {vector.dim()}-D")
    input = as_tensor(input)  # noqa: A001
    with no_grad():  # PyTorch's error where input does not expand, before its scalars' errors
        expanded = input.expand((vec1.shape[0], vec2.shape[0]))
    # promoted as expanded: a 0-d float64 input makes a float64 result, unlike in ``input + x``
    dtype = _dtypes.from_numpy_dtype(_result_type(expanded, vec1, vec2))
    for name, scale in (("beta", beta), ("alpha", alpha)):
        if isinstance(scale, (bool, np.bool_)) and dtype != _dtypes.bool:
            raise RuntimeError(f"Boolean {name} only supported for Boolean results.")
        if isinstance(scale, (float, np.floating)) and not dtype.is_floating_point:
            raise RuntimeError(f"For integral input tensors, argument {name} must not be a floating point number.")
    vec1, vec2, input = vec1.to(dtype), vec2.to(dtype), input.to(dtype)  # noqa: A001
    if dtype == _dtypes.bool:  # (a product and sum of bools is their logical and, or)
        kept = input.expand((vec1.shape[0], vec2.shape[0])) & bool(beta)
        return kept | (vec1.reshape(-1, 1) & vec2.reshape(1, -1) & bool(alpha))
    return _scaled_sum(input, vec1.reshape(-1, 1) * vec2, beta, alpha, "AddrBackward0")


def tensor_split(input: Tensor, indices_or_sections, dim: int = 0) -> tuple:  # noqa: A002
    """Views of ``input`` along ``dim``: ``sections`` (an int, or a 0-d integer tensor) pieces
    as equal as can be (the first ``size % sections`` one longer), or the pieces between the
    ``indices`` (a list or a 1-D tensor; clipped to the size). Follows ``torch.tensor_split``
    (each a ``SliceBackward0``); raises PyTorch's ``RuntimeError`` for fewer than one section."""
    if input.dim() == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a tensor with 0 dims")
    if isinstance(indices_or_sections, Tensor):
        values = indices_or_sections._data
        if values.dtype.kind not in "iu" or values.ndim > 1:
            raise RuntimeError(
                "tensor_split expected tensor_indices_or_sections to be a zero-dimensional or one-dimensional "
                f"tensor, but got a tensor with {values.ndim} dims"
                if values.ndim > 1
                else "tensor_split expected tensor_indices_or_sections to have dtype of long, but got "
                + indices_or_sections.dtype.type_name
            )
        guard_reads("tensor_split()", indices_or_sections)  # the pieces are a replay's constants
        indices_or_sections = values.tolist()
    dim = _normalize_dim(dim, input.dim())
    extent = input.shape[dim]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {sections}")
        size, longer = divmod(extent, sections)
        bounds = [k * size + min(k, longer) for k in range(sections + 1)]
    else:
        # (indices as slices read them: negative from the end, clipped to the size)
        cuts = [int(index) + extent if int(index) < 0 else int(index) for index in indices_or_sections]
        bounds = [0, *(min(max(cut, 0), extent) for cut in cuts), extent]
    key = [slice(None)] * input.dim()
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        key[dim] = slice(start, max(start, stop))
        pieces.append(input[tuple(key)])
    return tuple(pieces)


def addcmul(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value=1) -> Tensor:  # noqa: A002
    """``input + value * tensor1 * tensor2``, broadcast, in the three tensors' promoted dtype
    (integer factors multiplied in it: two uint8 do not wrap at 256); follows ``torch.addcmul``."""
    tensor1, tensor2 = _promoted(input, tensor1, tensor2)
    if tensor1._data.dtype.kind in "biu" and not isinstance(value, bool):
        value = int(value)  # an integer result takes value's integer part, as PyTorch's (not a float)
    product = tensor1 * tensor2
    return name_node(input + (product if value == 1 else product * value), "AddcmulBackward0")


def _promoted(input, tensor1, tensor2) -> tuple:  # noqa: A002
    """``tensor1`` and ``tensor2`` in the dtype the three promote to."""
    dtype = _dtypes.from_numpy_dtype(_result_type(input, tensor1, tensor2))
    return tuple(t.to(dtype) if t.dtype != dtype else t for t in (as_tensor(tensor1), as_tensor(tensor2)))


def addcdiv(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value=1) -> Tensor:  # noqa: A002
    """``input + value * tensor1 / tensor2``, broadcast; follows ``torch.addcdiv``. Raises
    ``RuntimeError`` (PyTorch's message) when both factors are integers."""
    tensor1, tensor2 = as_tensor(tensor1), as_tensor(tensor2)
    if tensor1._data.dtype.kind in "biu" and tensor2._data.dtype.kind in "biu":
        raise RuntimeError(
            "Integer division with addcdiv is no longer supported, and in a future release addcdiv will perform a "
            "true division of tensor1 and tensor2. The historic addcdiv behavior can be implemented as "
            "(input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for integer inputs and as (input + "
            "value * tensor1 / tensor2) for float inputs. The future addcdiv behavior is just the latter "
            "implementation: (input + value * tensor1 / tensor2), for all dtypes."
        )
    quotient = tensor1 / tensor2
    return name_node(input + (quotient if value == 1 else quotient * value), "AddcdivBackward0")


def lerp(input: Tensor, end: Tensor, weight) -> Tensor:  # noqa: A002
    """``input + weight * (end - input)``, ``weight`` a number or a tensor; follows
    ``torch.lerp``. Raises PyTorch's ``RuntimeError`` for a ``weight`` tensor of another dtype."""
    if isinstance(weight, Tensor) and weight.dtype != input.dtype and weight.dim() == 0:
        weight = weight.to(input.dtype)  # a 0-d weight is cast, as PyTorch's (one with dimensions raises)
    if isinstance(weight, Tensor) and weight.dtype != input.dtype:
        raise RuntimeError(f"expected dtype {input.dtype.c_name} for `weight` but got dtype {weight.dtype.c_name}")
    return name_node(
        input + weight * (end - input), "LerpBackward0" if not isinstance(weight, Tensor) else "LerpBackward1"
    )


def trace(input: Tensor) -> Tensor:  # noqa: A002
    """The sum of the main diagonal of a matrix; follows ``torch.trace``. Raises PyTorch's
    ``RuntimeError`` for another number of dimensions."""
    if input.dim() != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.dim()}")
    return name_node(_diagonal(input).sum(), "TraceBackward0")


def mv(input: Tensor, vec: Tensor) -> Tensor:  # noqa: A002
    """Matrix (n, m) times vector (m,): (n,); follows ``torch.mv``. Raises PyTorch's
    ``RuntimeError`` for other dimensions or sizes."""
    if input.dim() != 2 or vec.dim() != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got 1, {input.dim()}, {vec.dim()}")
    if input.shape[1] != vec.shape[0]:
        raise RuntimeError(
            f"size mismatch, got input ({input.shape[0]}), mat ({input.shape[0]}x{input.shape[1]}), vec ({vec.shape[0]})"
        )
    return input @ vec


def logaddexp(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    """``log(exp(input) + exp(other))`` without overflow, broadcast: the larger plus
    ``log1p(exp(-|input - other|))``, in recorded ops only, so that a replay computes it anew at
    other inputs; follows ``torch.logaddexp``."""
    input, other = as_tensor(input), as_tensor(other)  # noqa: A001
    promoted = _dtypes.from_numpy_dtype(_result_type(input, other))
    if promoted.is_floating_point and (input.dtype != promoted or other.dtype != promoted):
        input, other = input.to(promoted), other.to(promoted)  # noqa: A001 - a bool other: 0 or 1, as PyTorch's
    # Two equal infinities differ by 0, not by inf - inf
    difference = where((input == other) & input.isinf(), 0.0, input - other)
    # The larger input plus log1p(exp(-|difference|)), each side whole: where input >= other,
    # input + log1p(exp(other - input)), which is logaddexp itself there, so that its
    # derivatives of every order are logaddexp's up to a tie. Through maximum and abs, which
    # split a tie, the second derivative there came out 0 (sign(0) squared) instead of 1/4.
    larger = input >= other
    below = where(larger, -difference, difference)  # -|difference|, the side's sign even at a tie
    return name_node(where(larger, input, other) + below.exp().log1p(), "LogaddexpBackward0")


def atan2(input, other) -> Tensor:  # noqa: A002
    """The angle of the point (``other``, ``input``) in radians, in [-pi, pi], broadcast, in the
    promoted float dtype (integers: the default one); follows ``torch.atan2`` (``arctan2``).
    Its gradient is ``other / r**2`` for ``input`` and ``-input / r**2`` for ``other``
    (``r**2 = input**2 + other**2``).

    Made of table ops, so that it differentiates and replays: ``atan`` of the smaller coordinate
    over the larger, turned into the right quadrant, every choice a recorded comparison; values
    to an ulp of PyTorch's, with its signed zeros and infinities, and a zero gradient at the
    origin, as its."""
    y, x = as_tensor(input), as_tensor(other)
    result = _dtypes.from_numpy_dtype(_result_type(y, x))  # a 0-d float64 other leaves float32 as it is
    dtype = result if result.is_floating_point else _dtypes.DEFAULT_FLOAT
    y, x = y.to(dtype), x.to(dtype)
    x_major = x.abs() >= y.abs()
    larger, smaller = where(x_major, x, y), where(x_major, y, x)
    # At the origin atan(+-0 / 1), with no gradient (PyTorch's is 0 there); two infinities make
    # +-1 (inf / inf is NaN), so that the angle is a diagonal's.
    at_origin = larger == 0
    infinite = (larger.abs() == math.inf) & (smaller.abs() == math.inf)
    ratio = where(at_origin, smaller * 0.0, smaller / where(at_origin, 1.0, larger))
    ratio = where(infinite, where((smaller > 0) == (larger > 0), 1.0, -1.0), ratio)
    turn = ratio.atan()  # in [-pi/4, pi/4]
    # The x-major angle is turn, or turn +-pi left of the y axis; the y-major one +-pi/2 - turn.
    # -0.0 counts as left of the y axis and below the x axis, as in C's atan2 (1 / -0.0 < 0).
    pi = _wrap(np.asarray(math.pi, y._data.dtype))
    left = (x < 0) | (x.reciprocal() < 0)
    below = (y < 0) | (y.reciprocal() < 0)
    beside = where(left, turn + where(below, -pi, pi), turn)  # (turn itself: -0.0 + 0 was +0.0)
    up = where(y > 0, pi / 2, -pi / 2)
    return name_node(where(x_major, beside, up - turn), "Atan2Backward0")


def _view_in_place(method: str, grad_fn):
    """``x.t_()`` and the other in-place views, following PyTorch's: ``x`` becomes ``x.t()``
    (the same storage, another shape and strides), recorded as that view, and its version counts
    one change, so that a backward through an op that saved ``x`` before fails as PyTorch's
    does. ``grad_fn``: the node name PyTorch shows after the change ("TBackward1"), or a
    function of the arguments giving it.

    Raises ``RuntimeError`` as PyTorch does for a leaf that requires grad, or a view of one,
    in grad mode; and under ``no_grad`` for a tensor with a ``grad_fn``, whose backward would
    read the old shape (PyTorch's backward then fails with "returned an invalid gradient")."""

    def in_place(self, *args, **kwargs):
        view = getattr(Tensor, method[:-1])
        try:
            with no_grad():  # the arguments' errors first, with nothing changed or recorded
                view(self, *args, **kwargs)
        except RuntimeError as error:  # "t_() expects...", as PyTorch names the method
            raise RuntimeError(str(error).replace(f"{method[:-1]}()", f"{method}()", 1)) from None
        _check_in_place(self, writes=False)
        if self._tape is not None and self._requires_grad and not _grad_state.enabled:
            raise RuntimeError(
                f"{method}() of a tensor with a grad_fn under no_grad is not supported: its backward would "
                f"read the shape it had before (use x = x.{method[:-1]}(...) instead)"
            )
        name = grad_fn if isinstance(grad_fn, str) else grad_fn(*args, **kwargs)
        _bump_version(self, name.replace("Backward", ""))  # "T1", as PyTorch's message says
        result = view(self, *args, **kwargs)
        self._data = result._data
        if result._tape is not None:
            self._tape, self._row, self._grad_fn = result._tape, result._row, None
            self._tape.hold(self._row, self)
            name_node(self, name)
        if self._base is not None:  # a view stays a view of its root, as seen now
            self._seen_version = result._seen_version
        return self

    in_place.__name__ = method
    in_place.__doc__ = f"``{method[:-1]}`` in place: follows ``torch.Tensor.{method}``. {_view_in_place.__doc__}"
    return exclusive(in_place)


def _squeeze_name(dim=None) -> str:
    if dim is None:
        return "SqueezeBackward3"
    return "SqueezeBackward5" if isinstance(dim, (tuple, list)) else "SqueezeBackward4"


def _byte(self, memory_format=None) -> Tensor:
    """A uint8 copy (values wrapped modulo 256, as a C cast); follows ``torch.Tensor.byte``."""
    guard_reads("byte()", self)
    return _wrap(
        self._data.astype(np.int64).astype(np.uint8) if self._data.dtype.kind == "f" else self._data.astype(np.uint8)
    )


def _short(self, memory_format=None) -> Tensor:
    """An int16 copy; follows ``torch.Tensor.short``."""
    guard_reads("short()", self)
    return _wrap(self._data.astype(np.int16))


def _scatter_(self, dim: int, index, src=None, *, value=None, reduce=None) -> Tensor:
    from ._record import in_place

    return in_place(self, lambda t: scatter(t, dim, index, src, value=value, reduce=reduce), "Scatter")


install(
    {
        "ceil": ceil,
        "nonzero": lambda self, *, as_tuple=False: nonzero(self, as_tuple=as_tuple),
        "argwhere": argwhere,
        "msort": msort,
        "masked_select": masked_select,
        "repeat_interleave": repeat_interleave,
        "movedim": movedim,
        "moveaxis": movedim,
        "swapaxes": swapaxes,
        "swapdims": swapdims,
        "tile": tile,
        "roll": roll,
        "argsort": argsort,
        "unique": unique,
        "cross": lambda self, other, dim=None: cross(self, other, dim),
        "bernoulli": _bernoulli_method,
        "uniform_": _uniform_,
        "normal_": _normal_,
        "select": select,
        "narrow": narrow,
        "addmm": lambda self, mat1, mat2, *, beta=1, alpha=1: addmm(self, mat1, mat2, beta=beta, alpha=alpha),
        "addmv": lambda self, mat, vec, *, beta=1, alpha=1: addmv(self, mat, vec, beta=beta, alpha=alpha),
        "baddbmm": lambda self, b1, b2, *, beta=1, alpha=1: baddbmm(self, b1, b2, beta=beta, alpha=alpha),
        "addbmm": lambda self, b1, b2, *, beta=1, alpha=1: addbmm(self, b1, b2, beta=beta, alpha=alpha),
        "addr": lambda self, vec1, vec2, *, beta=1, alpha=1: addr(self, vec1, vec2, beta=beta, alpha=alpha),
        "addr_": lambda self, vec1, vec2, *, beta=1, alpha=1: _in_place(
            self, lambda t: addr(t, vec1, vec2, beta=beta, alpha=alpha), "Addr"
        ),
        "tensor_split": tensor_split,
        "atan2": atan2,
        "arctan2": atan2,
        "atan2_": lambda self, other: _in_place(self, lambda t: atan2(t, other), "Atan2"),
        "arctan2_": lambda self, other: _in_place(self, lambda t: atan2(t, other), "Atan2"),
        "addcmul": lambda self, tensor1, tensor2, *, value=1: addcmul(self, tensor1, tensor2, value=value),
        "addcdiv": lambda self, tensor1, tensor2, *, value=1: addcdiv(self, tensor1, tensor2, value=value),
        "lerp": lerp,
        "trace": trace,
        "mv": mv,
        "logaddexp": logaddexp,
        "unsqueeze_": _view_in_place("unsqueeze_", "UnsqueezeBackward1"),
        "squeeze_": _view_in_place("squeeze_", _squeeze_name),
        "t_": _view_in_place("t_", "TBackward1"),
        "transpose_": _view_in_place("transpose_", "TransposeBackward1"),
        "swapdims_": _view_in_place("swapdims_", "TransposeBackward1"),
        "swapaxes_": _view_in_place("swapaxes_", "TransposeBackward1"),
        "byte": _byte,
        "short": _short,
        "scatter": scatter,
        "scatter_": _scatter_,
    }
)

__all__ = [
    "select", "narrow", "broadcast_to", "atan2", "addmm", "addmv", "baddbmm", "addbmm", "tensor_split", "addcmul", "addcdiv", "lerp", "trace", "mv", "logaddexp",
    "argsort", "bernoulli", "ceil", "column_stack", "cross", "diag", "dist", "hstack", "is_floating_point",
    "masked_select", "meshgrid", "movedim", "nonzero", "promote_types", "repeat_interleave", "roll", "scatter",
    "searchsorted", "sort", "stack", "std_mean", "swapaxes", "swapdims", "tile", "topk", "tril", "triu", "unique",
    "vstack", "addr",
]  # fmt: skip


def _in_place(self: Tensor, compute, label: str) -> Tensor:
    from ._record import in_place

    return in_place(self, compute, label)
