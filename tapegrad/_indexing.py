"""Picking rows or elements by integer indices: ``x[index_tensor]``, ``x[mask]``, ``embedding``,
and element by element ``gather``, ``index_select``, ``repeat`` and ``flip``.

The indices are data of the row (kept in the tape's aux table), not an input: a gradient flows to
the rows picked, scatter-added, so a repeated index accumulates. Element-wise picks are rows one
element wide: their indices are flat positions in the input laid out contiguously.
"""

from __future__ import annotations

import math
import operator
import warnings

import numpy as np

from . import _dtypes, _record
from ._grad_mode import set_grad_enabled
from ._grad_mode import special_modes as _special_modes
from ._grad_mode import state as _grad_state
from ._pending_views import PendingView
from ._record import _input_row, _opcode, _short_tape, _target, writable
from ._shapes import expands_to, size_arguments
from ._tape import exclusive, resolve
from .tensor import Tensor, _guard, _normalize_dim, _recorded, _wrap, as_tensor, install, on_tape


def gather_rows(name: str, x: Tensor, indices) -> Tensor:
    """Rows ``indices`` (any shape) of ``x`` along its first dimension."""
    if isinstance(indices, Tensor):
        _guard(indices, "indexing")  # inside tapegrad.record, computed indices are frozen: guard them
        indices = indices._data
    elif isinstance(indices, list) and not indices:
        indices = np.zeros(0, np.int64)  # x[[]]: PyTorch reads an empty list as integer indices
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    extent = x._data.shape[0] if x._data.ndim else 0
    if name == "embedding":  # PyTorch's embedding takes no negative index; x[index] wraps them
        if indices.size and (indices.max() >= extent or indices.min() < 0):
            raise IndexError("index out of range in self")
    elif indices.size and (indices.max() >= extent or indices.min() < -extent):
        bad = indices.max() if indices.max() >= extent else indices.min()
        raise IndexError(f"index {bad} is out of bounds for dimension 0 with size {extent}")
    indices = np.where(indices < 0, indices + extent, indices).astype(np.int64)
    # np.take along the first axis copies whole rows; x[indices] with a 2-D index took numpy's
    # element-wise path, 10x slower (45 against 4.8 ms for a convolution's 56K rows of 64).
    out = np.take(x._data, indices, axis=0) if x._data.ndim else x._data[indices]
    return _record_gather(name, x, out, indices)


@exclusive
def _record_gather(name: str, x: Tensor, out: np.ndarray, indices: np.ndarray) -> Tensor:
    """One gather row: ``out`` is ``x``'s rows (or, one element wide, elements) ``indices``,
    kept in aux after their count."""
    tape = _short_tape(x, None) if _special_modes[0] == 0 and x._requires_grad else None
    if tape is not None:  # eager: the short path of ``_record``
        row_x, requires = (x._row if x._tape is not None else tape.register(x)), True
    else:
        tape, requires = _target((x,))
        if tape is None:
            return _wrap(out)
        row_x = _input_row(tape, x)
    aux = tape.add_aux((indices.size,))
    tape.add_aux(indices.reshape(-1))
    row = tape.append(_opcode(name, requires), row_x, -1, aux, tape.layout(out.dtype, out.shape), 0.0)
    return _recorded(out, tape, row, requires)


def index(x: Tensor, key) -> Tensor:
    """``x[key]`` for one integer or boolean tensor, array or list (advanced indexing)."""
    key_data = key._data if isinstance(key, Tensor) else np.asarray(key)
    if key_data.dtype == np.bool_:
        if key_data.shape != x._data.shape[: key_data.ndim]:
            raise IndexError(
                f"The shape of the mask {list(key_data.shape)} at index 0 does not match the shape of the indexed "
                f"tensor {list(x._data.shape)} at index 0"
            )
        if isinstance(key, Tensor):
            _guard(key, "mask")
        flat = x.reshape(-1, *x._data.shape[key_data.ndim :]) if key_data.ndim != 1 else x
        return gather_rows("index", flat, np.flatnonzero(key_data))
    return gather_rows("index", x, key)


_BYTE_INDEX_WARNING = "indexing with dtype torch.uint8 is now deprecated, please use a dtype torch.bool instead."


def byte_masks(key):
    """``key`` with each uint8 index tensor or array read as a boolean mask, as PyTorch reads
    it (with its ``UserWarning``): ``x[t.byte()]`` picks where ``t`` is nonzero, never rows 0
    and 1."""
    parts = key if isinstance(key, tuple) else (key,)
    for part in parts:  # (every x[...] passes here: a plain loop, no generator)
        if isinstance(part, (Tensor, np.ndarray)) and _data_of(part).dtype == np.uint8:
            break
    else:
        return key
    warnings.warn(_BYTE_INDEX_WARNING, UserWarning, stacklevel=3)
    parts = tuple(_as_mask(part) if _is_bytes(part) else part for part in parts)
    return parts if isinstance(key, tuple) else parts[0]


def _is_bytes(part) -> bool:
    return isinstance(part, (Tensor, np.ndarray)) and _data_of(part).dtype == np.uint8


def _as_mask(part):
    if isinstance(part, Tensor):
        _guard(part, "mask")
        return _wrap(part._data != 0)
    return part != 0


def split_key(key, ndim: int) -> tuple:
    """``x[key]`` as PyTorch applies it (``applySlicing`` in python_variable_indexing.cpp): two
    numpy keys, ``basic`` then ``advanced`` (None when ``key`` has no index tensor), for
    ``data[basic][advanced]``.

    PyTorch walks the key once: an integer (a 0-d integer tensor too) is a ``select``, a slice a
    ``slice``, None an ``unsqueeze``, a bool an ``unsqueeze`` indexed by ``[0]`` (``[]`` for
    False), all on the tensor so far; index tensors and masks are kept with the dimension they
    reach and applied last, in one ``index``. So integers never count among the advanced indices
    when their broadcast dimensions move to the front (index tensors not next to each other):
    ``x[0, :, [1, 2]]`` of a (2, 3, 4) ``x`` is (3, 2), where numpy makes it (2, 3). ``basic`` does
    the selects, slices and new dimensions (a view: it ends with an Ellipsis); ``advanced`` holds
    the index arrays, numpy's rule then placing their dimensions as PyTorch's does. Tensors in
    ``key`` are guarded (inside ``tapegrad.record``, their values are read here). ``ndim``: the
    indexed tensor's, which says how many dimensions an Ellipsis stands for."""
    basic, advanced, indexed = [], [], False
    consumed = 0  # the indexed tensor's dimensions the parts other than an Ellipsis take
    for part in key if isinstance(key, tuple) else (key,):
        if isinstance(part, Tensor):
            _guard(part, "indexing")
            part = part._data
        if isinstance(part, np.ndarray) and part.ndim == 0 and part.dtype.kind in "biu":
            part = part.item()  # a 0-d tensor indexes as the number it holds
        if isinstance(part, (bool, np.bool_)):
            basic.append(None)
            advanced.append(np.zeros(int(part), np.int64))
            indexed = True
        elif isinstance(part, (int, np.integer)):
            basic.append(int(part))
            consumed += 1
        elif isinstance(part, (np.ndarray, list, tuple, range)):
            # Any other sequence is an index tensor to PyTorch (``sequenceToVariable``). Left to
            # numpy among the basic parts, a tuple or range made it copy, and the view's
            # offset and strides were read off the copy: gradients sent to the wrong elements,
            # or past the end of the gradient's buffer (a crash).
            array = np.asarray(part)
            if array.size == 0 and array.dtype.kind == "f":
                array = array.astype(np.int64)  # x[[]]: PyTorch makes an empty list integer indices
            dims = array.ndim if array.dtype == np.bool_ else 1
            basic.extend([slice(None)] * dims)
            consumed += dims
            advanced.append(array)
            indexed = True
        else:  # a slice, None, Ellipsis (or something numpy rejects, in words _index_error translates)
            step = _step(part.step) if isinstance(part, slice) and part.step is not None else 1
            if step <= 0:  # PyTorch's messages: no reversed views
                raise ValueError("slice step cannot be zero" if step == 0 else "step must be greater than zero")
            basic.append(part)
            advanced.append(Ellipsis if part is Ellipsis else slice(None))
            consumed += part is not None and part is not Ellipsis
    if not any(part is Ellipsis for part in basic):
        basic.append(Ellipsis)  # so that an all-integer key gives a 0-d view, not a scalar copy
    if indexed and any(part is Ellipsis for part in advanced) and ndim >= consumed:
        # The Ellipsis as the slices it stands for: one of no dimensions does not part the index
        # arrays around it, whose dimensions then stay in place, as PyTorch's (numpy moves them
        # to the front: ``x[:, [0, 1], ..., [1, 2]]`` of a (5, 3, 4) ``x`` came out (2, 5)).
        at = next(k for k, part in enumerate(advanced) if part is Ellipsis)
        advanced[at : at + 1] = [slice(None)] * (ndim - consumed)
    return tuple(basic), (tuple(advanced) if indexed else None)


def _step(step) -> int:
    if isinstance(step, Tensor):
        _guard(step, "indexing")
        step = step._data
    try:
        return operator.index(step)
    except TypeError:
        return 1  # not an integer: numpy's error, in PyTorch's words, comes later (_index_error)


def _positions(x: Tensor) -> np.ndarray:
    """Each element's flat position in ``x`` laid out contiguously, in ``x``'s shape."""
    return np.arange(x._data.size, dtype=np.int64).reshape(x._data.shape)


def _index_data(index, kind: str) -> np.ndarray:
    if isinstance(index, Tensor):
        _guard(index, "indexing")
        index = index._data
    index = np.asarray(index)
    if index.dtype.kind not in "iu":
        expected = "int32/int64" if kind == "gather" else "int32 or int64"
        raise RuntimeError(f"{kind}(): Expected dtype {expected} for index")
    return index.astype(np.int64, copy=False)


def pick(name: str, x: Tensor, positions: np.ndarray) -> Tensor:
    """The elements of ``x`` at flat ``positions`` (any shape): one gather row, one element wide."""
    positions = np.asarray(positions, dtype=np.int64)  # not ascontiguousarray: it makes 0-d 1-d
    out = x._data.reshape(-1)[positions] if x._data.size else np.zeros(positions.shape, x._data.dtype)
    if type(out) is not np.ndarray:  # (0-d positions index out a numpy scalar, which nothing can write into)
        out = np.array(out)
    return _record_gather(name, x, out, positions)


def _first_outside(index: np.ndarray, extent: int):
    """The first index (in memory order, as PyTorch's messages name it) outside ``[0, extent)``,
    or None."""
    outside = (index < 0) | (index >= extent)
    return index.reshape(-1)[np.argmax(outside.reshape(-1))] if outside.any() else None


def gather(x: Tensor, dim: int, index) -> Tensor:
    """``out[i][j] = x[i][index[i][j]]`` for ``dim`` 1, and so on (``GatherBackward0``).

    Raises PyTorch's ``RuntimeError`` for an index outside ``[0, size)``: gather, unlike
    ``x[index]``, takes no negative index."""
    index = _index_data(index, "gather")
    ndim = x._data.ndim
    dim = _normalize_dim(dim, ndim)
    if index.ndim != ndim and not (ndim == 0 and index.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    extent = x._data.shape[dim] if ndim else 1
    bad = _first_outside(index, extent)
    if bad is not None:
        raise RuntimeError(f"index {bad} is out of bounds for dimension {dim} with size {extent}")
    if ndim == 0:
        return pick("gather", x, np.zeros(index.shape, np.int64))
    for k in range(ndim):
        if k != dim and index.shape[k] > x._data.shape[k]:
            raise RuntimeError(
                f"Size does not match at dimension {k} expected index {list(index.shape)} to be no larger than "
                f"self {list(x._data.shape)} apart from dimension {dim}"
            )
    coordinates = list(np.indices(index.shape, dtype=np.int64))
    coordinates[dim] = index
    return pick("gather", x, np.ravel_multi_index(tuple(coordinates), x._data.shape))


def index_select(x: Tensor, dim: int, index) -> Tensor:
    """The slices ``index`` (a 1-D tensor) along ``dim`` (``IndexSelectBackward0``).

    An index outside ``[0, size)``, negative ones included, raises what PyTorch's CPU kernel
    (``index_select_out_cpu_``) raises: ``IndexError("index out of range in self")``, except on
    its paths for ``dim`` 1 and an empty input of 2 or more dimensions, which raise a
    ``RuntimeError`` naming the first bad index."""
    index = _index_data(index, "index_select")
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    dim = _normalize_dim(dim, x._data.ndim)
    extent = x._data.shape[dim] if x._data.ndim else 1
    bad = _first_outside(index, extent)
    if bad is not None:
        if x._data.ndim > 1 and (dim == 1 or x._data.size == 0):
            if extent == 0:
                raise RuntimeError("index_select(): self indexing axis dim should be positive")
            raise RuntimeError(f"INDICES element is out of DATA bounds, id={bad} axis_dim={extent}")
        raise IndexError("index out of range in self")
    return pick("index_select", x, np.take(_positions(x), index.reshape(-1), axis=dim if x._data.ndim else None))


def repeat(x: Tensor, *sizes) -> Tensor:
    """``x`` tiled ``sizes`` times along each dimension (``RepeatBackward0``)."""
    sizes = size_arguments(sizes)
    if len(sizes) < x._data.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    sizes = tuple(int(s) for s in sizes)
    shape = (1,) * (len(sizes) - x._data.ndim) + x._data.shape
    result = [extent * size for extent, size in zip(shape, sizes)]
    for extent in result:
        if extent < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {extent}: {result}")
    return pick("repeat", x, np.tile(_positions(x), sizes))


def flip(x: Tensor, dims) -> Tensor:
    """``x`` reversed along ``dims`` (``FlipBackward0``)."""
    from ._reductions import unique_dims

    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    dims = unique_dims([_normalize_dim(int(d), x._data.ndim) for d in dims])
    return pick("flip", x, np.flip(_positions(x), dims) if x._data.ndim else _positions(x))


def assign(x: Tensor, key, value) -> Tensor:
    """``x`` with ``x[key] = value`` applied, out of place (``CopySlices``): the elements of ``x``
    and of ``value`` (broadcast to ``x[key]``) joined, then picked into ``x``'s shape. A gradient
    reaches ``x`` where it was not overwritten and every element of ``value`` from where it was
    written (the last write wins for a repeated index, as in numpy; the values it overwrote still
    take the gradient there, as in PyTorch). ``key`` is read as PyTorch reads it (``split_key``)."""
    if _grad_state.recording is not None and _is_full_mask(x, key) and np.ndim(_data_of(value)) == 0:
        # Inside tapegrad.record, x[mask] = number is where(mask, number, x): the replay recomputes
        # the mask, where a pick by the mask's positions would freeze them. The number is cast to
        # x's dtype first, as the assignment casts it (where would promote: int x, 0.5 -> float).
        from ._selection import _filled

        return _filled(key, value, x)
    basic, advanced = split_key(key, x._data.ndim)
    written = _positions(x)[basic]
    if advanced is not None:
        written = written[advanced]
    value = value if isinstance(value, Tensor) else Tensor(np.asarray(value, dtype=x._data.dtype))
    if value._data.dtype != x._data.dtype:
        value = value.to(x.dtype)
    if value._data.shape != written.shape:
        extra = value._data.ndim - written.ndim
        if extra > 0 and all(extent == 1 for extent in value._data.shape[:extra]):
            # PyTorch drops a value's leading ones first (``slicePrefix1sSize``): a (1, 5) row
            # into ``b[1]``, which ``expand`` refuses
            value = value.reshape(value._data.shape[extra:])
        value = value.expand(written.shape)
    if advanced is None:
        return put("copy_slices", x, written, value)
    if value._requires_grad:
        value = _tied_to_the_kept(value, written, x._data.size)
    return put("index_put", x, written, value)


def _tied_to_the_kept(value: Tensor, written: np.ndarray, size: int) -> Tensor:
    """``value`` (of ``written``'s shape) with every value that a later write to the same position
    overwrites tied to the value kept there: the same numbers, but each value takes the gradient
    at its position, as ``index_put``'s backward gathers it (``grad.index(indices)`` in PyTorch),
    not only the kept one; by its position, whatever it holds.

    An overwritten v enters the kept value as an exact +0 that passes the gradient to -v
    (``_valued_as``), subtracted: the kept value is unchanged (a kept -0 stays -0) and v takes
    the gradient 1. Tied by arithmetic (``v - v.detach()``), an infinite or NaN v gave NaN, and
    took no gradient when masked out."""
    from ._selection import _valued_as

    flat = written.reshape(-1)
    kept = np.empty(size, np.int64)
    kept[flat] = np.arange(flat.size)  # the last write wins, as in put, which assigns the same way
    keeper = kept[flat]
    overwritten = np.flatnonzero(keeper != np.arange(flat.size))
    if not overwritten.size:
        return value
    values = value.reshape(-1)
    lost = -gather_rows("index", values, overwritten)
    zeros = _valued_as(lost, _wrap(np.zeros(lost._data.shape, lost._data.dtype)))
    return (values - _scatter_rows(zeros, keeper[overwritten], flat.size)).reshape(value.shape)


def scatter(input: Tensor, dim: int, index, src=None, *, value=None, reduce=None) -> Tensor:  # noqa: A002
    """A copy of ``input`` with ``src[i][j]`` (or ``value``) written at ``[index[i][j]][j]`` (for
    ``dim`` 0; likewise for other dims); follows ``torch.scatter`` (``ScatterBackward0``; with a
    number, ``ScatterBackward1``). Where several entries go to one position, the last written
    stays. The gradient reaches ``input`` where nothing was written, and every entry of ``src``
    from the position it was written to, overwritten later or not (PyTorch's
    ``grad.gather(dim, index)``).

    >>> import tapegrad
    >>> x = tapegrad.zeros(1, 2).scatter(1, tapegrad.tensor([[0, 0]]), tapegrad.tensor([[1.0, 2.0]]))
    >>> x.tolist()
    [[2.0, 0.0]]"""
    if reduce == "add" and src is not None:  # (PyTorch's deprecated spelling of scatter_add)
        return scatter_add(input, dim, index, src)  # (PyTorch gives this one no derivative)
    if reduce is not None:
        raise NotImplementedError("scatter: reduce= is not supported yet")
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter() missing 1 required positional argument: 'src'")
    index, is_tensor, written, entries = _scatter_places(input, dim, index, src)
    if is_tensor:
        refused = src._requires_grad and not expands_to(src._data.shape, index._data.shape)
        values = src if written.shape == (src._data.shape or (1,)) and not refused else pick("gather", src, entries)
        if refused and values._requires_grad:
            _refuse_gradient(values, index._data.shape, src._data.shape)
    else:
        src = _dtypes.fill_value(src, input._data.dtype)  # -3 into uint8: 253, as PyTorch
        values = _wrap(np.full(written.shape, np.asarray(src).astype(input._data.dtype)))
    if values._requires_grad:
        values = _tied_to_the_kept(values, written, input._data.size)
    result = put("index_put", input, written, values)
    return _record.name_node(result, "ScatterBackward0" if is_tensor else "ScatterBackward1")


def _scatter_places(input: Tensor, dim: int, index, src) -> tuple:  # noqa: A002
    """scatter's checks, with PyTorch's messages; ``(index, src is a tensor, written, entries)``:
    the flat positions in ``input`` each index entry writes to, and the flat positions in
    ``src`` of the entries written (None for a number)."""
    index = index if isinstance(index, Tensor) else _wrap(np.asarray(index))
    if index._data.dtype.kind not in "iu":
        raise RuntimeError("scatter(): Expected dtype int32/int64 for index")
    _guard(index, "scatter()")  # positions computed in numpy: a replay must not reuse them
    is_tensor = isinstance(src, Tensor)
    if is_tensor and src._data.dtype != input._data.dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    shape = input._data.shape or (1,)
    ndim = len(shape)
    dim = _normalize_dim(dim, ndim)
    idx = index._data.reshape(index._data.shape or (1,))
    src_shape = (src._data.shape or (1,)) if is_tensor else None
    if idx.ndim != ndim or (is_tensor and len(src_shape) != ndim):
        other = "self" if idx.ndim != ndim else "src"
        raise RuntimeError(f"Index tensor must have the same number of dimensions as {other} tensor")
    if any(k != dim and idx.shape[k] > shape[k] for k in range(ndim)) or (
        is_tensor and any(size > extent for size, extent in zip(idx.shape, src_shape))
    ):
        message = f"Expected index {list(idx.shape)} to be no larger than self {list(shape)} apart from dimension {dim}"
        raise RuntimeError(message + (f" and to be no larger size than src {list(src_shape)}" if is_tensor else ""))
    bad = _first_outside(idx, shape[dim])
    if bad is not None:
        raise RuntimeError(f"index {bad} is out of bounds for dimension {dim} with size {shape[dim]}")
    coordinates = list(np.indices(idx.shape, dtype=np.int64))
    entries = np.ravel_multi_index(tuple(coordinates), src_shape) if is_tensor else None
    coordinates[dim] = idx
    return index, is_tensor, np.ravel_multi_index(tuple(coordinates), shape), entries


def scatter_add(input: Tensor, dim: int, index, src: Tensor) -> Tensor:  # noqa: A002
    """A copy of ``input`` with each ``src[i][j]`` added at ``[index[i][j]][j]`` (for ``dim`` 0;
    likewise for other dims), same shape and dtype; entries sent to one position add up. Follows
    ``torch.scatter_add`` (``ScatterAddBackward0``): the gradient is ``grad`` for ``input`` and
    ``grad.gather(dim, index)`` for ``src``. ``index`` is an integer tensor of ``input``'s rank,
    no larger than ``src``; raises PyTorch's ``RuntimeError`` otherwise, or for an index out of
    range or a ``src`` of another dtype."""
    index, _, written, entries = _scatter_places(input, dim, index, as_tensor(src))
    src = as_tensor(src)
    values = src if written.shape == (src._data.shape or (1,)) else pick("gather", src, entries)
    added = _scatter_rows(values.reshape(-1, 1), written.reshape(-1), input._data.size)
    return _record.name_node(_in_dtype_of(input, input + added.reshape(input._data.shape)), "ScatterAddBackward0")


def index_add(input: Tensor, dim: int, index, source: Tensor, *, alpha=1) -> Tensor:  # noqa: A002
    """A copy of ``input`` with ``alpha * source`` added along ``dim`` at the positions ``index``
    (a 1-D integer tensor, one per slice of ``source`` along ``dim``): slice ``i`` of ``source``
    goes to slice ``index[i]``, repeated ones adding up. Follows ``torch.index_add``
    (``IndexAddBackward0``): the gradient is ``grad`` for ``input`` and ``alpha *
    grad.index_select(dim, index)`` for ``source``. Raises PyTorch's errors (``IndexError`` for an
    index that is not a vector, ``RuntimeError`` for a count, dtype or range mismatch)."""
    source = as_tensor(source)
    index = index if isinstance(index, Tensor) else _wrap(np.asarray(index))
    if index._data.dtype.kind not in "iu":
        kind = _dtypes.from_numpy_dtype(index._data.dtype).type_name
        raise RuntimeError(f"index_add_(): Expected dtype int32/int64 for index but got: {kind}")
    if index._data.ndim > 1:
        raise IndexError(
            f"index_add_(): Index is supposed to be a vector, but got dim: {index._data.ndim} with type: Long and "
            f"size: {list(index._data.shape)}"
        )
    _guard(index, "index_add()")  # positions computed in numpy: a replay must not reuse them
    ndim = max(input._data.ndim, 1)
    dim = _normalize_dim(dim, ndim)
    targets = index._data.reshape(-1).astype(np.int64)
    count = (source._data.shape or (1,))[dim] if source._data.ndim else 1
    if targets.size != count:
        raise RuntimeError(
            f"index_add_(): Number of indices ({targets.size}) should be equal to source.size(dim): ({count}), "
            f"for dim: {dim}"
        )
    if source._data.dtype != input._data.dtype:
        have, want = (_dtypes.from_numpy_dtype(x._data.dtype).type_name for x in (input, source))
        raise RuntimeError(f"index_add_(): self ({have}) and source ({want}) must have the same scalar type")
    alpha = _dtypes.integer_scale(alpha, input._data.dtype)
    extent = (input._data.shape or (1,))[dim]
    bad = _first_outside(targets, extent)
    if bad is not None:
        if input._data.ndim <= 1:  # (PyTorch's kernel for vectors says it otherwise)
            raise IndexError("index out of range in self")
        raise RuntimeError(f"index {bad} is out of bounds for dimension {dim} with size {extent}")
    if not targets.size:  # nothing to add (a graph without edges): input as it is, a new tensor
        if source.requires_grad:  # on the source's graph still, as PyTorch's (its gradient: zeros)
            return _record.name_node(input + source.sum().to(input.dtype), "IndexAddBackward0")
        return _record.name_node(input.clone(), "IndexAddBackward0")
    moved = source.movedim(dim, 0) if source._data.ndim else source.reshape(1)
    rest = moved._data.shape[1:]
    # (the width spelled out: -1 cannot be inferred where another dimension is 0, an empty batch)
    added = _scatter_rows(moved.reshape(count, math.prod(rest)), targets, extent).reshape((extent, *rest))
    added = added.movedim(0, dim) if input._data.ndim else added.reshape(())
    return _record.name_node(_in_dtype_of(input, input + (added if alpha == 1 else added * alpha)), "IndexAddBackward0")


def _in_dtype_of(input: Tensor, result: Tensor) -> Tensor:  # noqa: A002
    """``result`` in ``input``'s dtype: the sums of integers and booleans are int64 (as
    ``sum``'s), where PyTorch's scatters add in the input's type (uint8 wraps, bool is an or)."""
    if result._data.dtype == input._data.dtype:
        return result
    return _wrap(result._data.astype(input._data.dtype))


def _index_add_(self, dim: int, index, source, *, alpha=1) -> Tensor:
    return _record.in_place(self, lambda t: index_add(t, dim, index, source, alpha=alpha), "IndexAdd")


def _scatter_add_(self, dim: int, index, src) -> Tensor:
    return _record.in_place(self, lambda t: scatter_add(t, dim, index, src), "ScatterAdd")


def _refuse_gradient(values: Tensor, index_shape: tuple, src_shape: tuple) -> None:
    """scatter's ``src`` gradient is ``grad.gather(dim, index)``, of the index's shape: PyTorch's
    engine refuses it when ``src``'s shape does not expand to that (an index smaller than ``src``
    along a dimension), in the backward, and only when a gradient reaches ``src``. ``values``,
    the entries of ``src`` picked (a row of their own), raise that error when their gradient
    arrives, through a hook; zeros for the entries left out were a gradient PyTorch never gives.

    Not inside ``tapegrad.record`` (and so ``func.vmap``): a replay runs no Python, and every
    input of a recording requires grad, so refusing when recorded refused programs PyTorch runs
    (a forward, or a gradient for ``input`` alone). There ``src`` keeps zeros for the entries
    left out (README, Supported API)."""
    if _grad_state.recording is not None:
        return
    message = (
        f"Function ScatterBackward0 returned an invalid gradient at index 1 - got {list(index_shape)} but expected "
        f"shape compatible with {list(src_shape)}"
    )

    def refuse(gradient):
        raise RuntimeError(message)

    values.register_hook(refuse)


def put(name: str, x: Tensor, written: np.ndarray, value: Tensor) -> Tensor:
    """``x`` with its elements at flat positions ``written`` replaced by ``value`` (of
    ``written``'s shape): the elements of both joined, then picked into ``x``'s shape."""
    from ._views import cat

    source = np.arange(x._data.size, dtype=np.int64)
    source[written.reshape(-1)] = x._data.size + np.arange(written.size)
    joined = cat([x.reshape(-1), value.reshape(-1)])
    return pick(name, joined, source.reshape(x._data.shape))


def positions_in(root: Tensor, view: Tensor) -> np.ndarray:
    """Where each element of ``view`` sits in ``root`` laid out contiguously, found from the
    arrays' addresses and strides (so any chain of views works)."""
    data = root._data
    itemsize = data.itemsize
    start = (view._data.__array_interface__["data"][0] - data.__array_interface__["data"][0]) // itemsize
    if data.flags.c_contiguous:
        probe = np.arange(data.size, dtype=np.int64)
    else:
        # A root laid out otherwise (a result that kept its operand's transposed strides): the
        # memory it spans, each element marked with its index in the root's own order
        low = sum((n - 1) * step for n, step in zip(data.shape, data.strides) if step < 0) // itemsize
        high = sum((n - 1) * step for n, step in zip(data.shape, data.strides) if step > 0) // itemsize
        memory = np.zeros(high - low + 1, np.int64)
        marks = tuple(step // itemsize * memory.itemsize for step in data.strides)
        as_strided = np.lib.stride_tricks.as_strided
        as_strided(memory[-low:], data.shape, marks)[...] = np.arange(data.size).reshape(data.shape)
        probe, start = memory, start - low
    strides = tuple(stride // itemsize * probe.itemsize for stride in view._data.strides)
    return np.lib.stride_tricks.as_strided(probe[start:], view._data.shape, strides).copy()


def change_view(view: Tensor, result: Tensor, label: str) -> Tensor:
    """``view`` (of ``view._base``) takes the values of ``result``, computed from it out of place:
    the root moves to a row that is the old root with those elements replaced (``CopySlices``),
    and the view to a pick from that row (``AsStridedBackward0``), as PyTorch rebases them. Other
    views of the root are refreshed when next used (``refresh_view``)."""
    from ._record import _bump_version

    root = view._base
    positions = positions_in(root, view)
    if np.unique(positions).size != positions.size:
        raise RuntimeError(
            "unsupported operation: more than one element of the written-to tensor refers to a single memory "
            "location. Please clone() the tensor before performing the operation."
        )
    changed = put("copy_slices", root, positions, result)
    if not changed._requires_grad and root._requires_grad:  # inside tapegrad.record, under no_grad
        changed = _record.assigned(changed._tape, root, changed)
    writable(view._data)[...] = result._data
    _bump_version(view, label)
    if result._tape is not None:
        _record.checks_follow(view, result)  # (``v.exp_()`` then a change of v: exp's check fails)
    requires_grad = changed._requires_grad  # a captured constant changed under no_grad stays one
    gained = requires_grad and not root._requires_grad
    root._tape, root._row, root._requires_grad, root._grad_fn = changed._tape, changed._row, requires_grad, None
    if root._tape is not None:
        root._tape.hold(root._row, root)
    _rebase(view, root, positions)
    if gained:
        views_follow(root)
    return view


def views_follow(root: Tensor) -> None:
    """``root``, which did not require grad, now holds values that do (a change in place): the
    views of it made before read from its new row and require grad, as PyTorch's views follow
    their base. Left as they were, they read as constants and their gradient was lost
    (``v = b.t(); b.copy_(w); (v * v).sum()`` gave ``w`` none of it)."""
    views = root._views
    root._views = None
    for view in list(views or ()):
        if not view._requires_grad and view._base is root:
            _rebase(view, root, positions_in(root, view))


def refresh_view(view: Tensor, by_an_op: bool = True) -> None:
    """A view whose storage changed in place since its row was recorded (through its root or
    another view) reads its values from the root's current row again, so gradients follow the
    change, as PyTorch regenerates a view's grad_fn. ``by_an_op``: an op about to read it, which
    PyTorch refuses under grad mode for one of several views (its grad_fn is then <Invalid>)."""
    root = view._base
    meta = view._view_meta
    if (
        by_an_op
        and meta is not None
        and meta[0] in (_record.MULTI_OUTPUT, _record.CUSTOM_FUNCTION)
        and view._requires_grad
        and _grad_state.enabled
    ):
        _record.refuse_view_change(view, rebased=True)
    if meta is not None and meta[0] == _record.CUSTOM_FUNCTION:
        # (its row is the Function's output: read from the root again, it would bypass the
        # custom backward; PyTorch refuses an op on it, and grad_fn stays the Function's)
        view._seen_version = view._version_counter[0]
        return
    if root._tape is None:
        # A view of a leaf reads the leaf's row, which holds its values now; a copy its row
        # saved (a transpose, a column: ``Tape.save``) holds the old ones, which a new reader
        # must not get (the old readers' version checks refuse them anyway).
        if type(view) is not PendingView and view._tape is not None:  # (a pending view has no row yet)
            resolve(view).forget_saved(view._row)
        view._seen_version = view._version_counter[0]
        return
    _rebase(view, root, positions_in(root, view))


def fresh_view(view: Tensor) -> Tensor:
    """A new tensor of ``view``'s elements picked from its base's current row: the same values,
    with a gradient that reaches the base without passing ``view``'s row (``_record.
    _past_hooked_view``)."""
    root = view._base
    with set_grad_enabled(view._requires_grad):
        return pick("as_strided", root, positions_in(root, view))


def _rebase(view: Tensor, root: Tensor, positions: np.ndarray) -> None:
    # Not in the current grad mode: a view of a tensor that requires grad, changed or read under
    # no_grad, still requires grad (as in PyTorch, where its grad_fn is regenerated); rebased
    # under no_grad, it lost its gradient for good. And a view of a tensor that did not require
    # grad until a change in place gave it values that do (``buf[1].copy_(w)``: the view
    # changed, or another view of ``buf``) requires grad from then on, as PyTorch's views
    # follow their base.
    with set_grad_enabled(view._requires_grad or root._requires_grad):
        fresh = pick("as_strided", root, positions)
    view._tape, view._row, view._requires_grad, view._grad_fn = fresh._tape, fresh._row, fresh._requires_grad, None
    if view._tape is not None:
        view._tape.hold(view._row, view)
    view._seen_version = view._version_counter[0]


def _reads_the_tape(key) -> bool:
    """Whether an index is a value of ``tapegrad.record``'s tape (an integer input, a computed
    mask): a write at it is recorded (its positions guarded), even into a constant. Written in
    numpy, the recording's positions were frozen into the tape, silently."""
    if _grad_state.recording is None:
        return False
    parts = key if isinstance(key, tuple) else (key,)
    return any(isinstance(part, Tensor) and on_tape(part) for part in parts)


def _data_of(value):
    return value._data if isinstance(value, Tensor) else value


def _is_full_mask(x: Tensor, key) -> bool:
    return isinstance(key, Tensor) and key._data.dtype == np.bool_ and key._data.shape == x._data.shape


def sequence_as_tuple(key):
    """A list key holding a sequence, slice, tensor, None or Ellipsis (``x[[rows, cols]]``) is
    read as a tuple of them, with PyTorch's deprecation warning (``treatSequenceAsTuple``,
    numpy's old rule, for lists shorter than 32); any other key as it is."""
    if type(key) is not list or len(key) >= 32:
        return key
    for part in key:
        if isinstance(part, (Tensor, list, tuple, range, slice, np.ndarray)) or part is None or part is Ellipsis:
            warnings.warn(
                "Using a non-tuple sequence for multidimensional indexing is deprecated and will be changed in "
                "pytorch 2.9; use x[tuple(seq)] instead of x[seq]. In pytorch 2.9 this will be interpreted as tensor "
                "index, x[torch.tensor(seq)], which will result either in an error or a different result",
                UserWarning,
                stacklevel=3,
            )
            return tuple(key)
    return key


def _setitem(self, key, value) -> None:
    if self._requires_grad and self._tape is None and self._base is None and _grad_state.enabled:
        # (PyTorch writes through a view of the leaf: its message says so)
        raise RuntimeError("a view of " + _record.LEAF_IN_PLACE)
    _record._check_in_place(self)
    key = byte_masks(sequence_as_tuple(key))
    if isinstance(value, Tensor) and value.dtype != self.dtype:
        check_put_dtype(self, value, key)
    if _record.records_in_place(self, value) or _reads_the_tape(key):
        _record.in_place(self, lambda t: assign(t, key, value), "CopySlices")
        return
    basic, advanced = split_key(key, self._data.ndim)
    value = value._data if isinstance(value, Tensor) else _dtypes.fill_value(value, self._data.dtype)
    target = self._data[basic] if advanced is None else self._data[basic][advanced]
    _check_expands(np.shape(value), np.shape(target))
    if advanced is None:
        self._data[basic] = value
    else:
        self._data[basic][advanced] = value  # basic indexing gives a view: the write reaches self
    _record._bump_version(self)


def check_put_dtype(self: Tensor, values, key=None) -> None:
    """PyTorch's ``RuntimeError`` for tensor ``values`` of another dtype put at index tensors
    (``index_put_``; ``self[key] = values`` with index tensors or lists in ``key``), which it
    does not cast: a basic index's copy does, and Python numbers are cast everywhere. As
    PyTorch's ``index_put_``, one boolean mask and a one-element value are a ``masked_fill_``,
    which casts. Reads no index's values (inside ``tapegrad.record`` they would be guarded)."""
    if key is not None:
        arrays = [part for part in (key if isinstance(key, tuple) else (key,)) if _is_index_array(part)]
        if not arrays:
            return
        if len(arrays) == 1 and _dtype_kind(arrays[0]) == "b" and np.ndim(arrays[0]) and values.numel() == 1:
            return
    if isinstance(values, Tensor) and values.dtype != self.dtype:
        raise RuntimeError(
            "Index put requires the source and destination dtypes match, got "
            f"{self.dtype.type_name} for the destination and {values.dtype.type_name} for the source."
        )


def _is_index_array(part) -> bool:
    """Whether a part of a key is applied as an index array (a 0-d integer tensor is a number)."""
    if isinstance(part, (list, tuple, range)):
        return True
    if isinstance(part, (Tensor, np.ndarray)):
        return np.ndim(part._data if isinstance(part, Tensor) else part) > 0 or _dtype_kind(part) == "b"
    return False


def _dtype_kind(part) -> str:
    return (part._data if isinstance(part, Tensor) else np.asarray(part)).dtype.kind


def _check_expands(shape: tuple, target: tuple) -> None:
    """PyTorch's ``RuntimeError`` for a value of ``shape`` that does not expand to ``target``
    (numpy's ValueError named no dimension)."""
    lead = len(target) - len(shape)
    for k in range(len(shape) - 1, -1, -1):
        at = k + lead
        if shape[k] != 1 and (at < 0 or shape[k] != target[at]):
            raise RuntimeError(
                f"The expanded size of the tensor ({target[at] if at >= 0 else 1}) must match the existing size "
                f"({shape[k]}) at non-singleton dimension {max(at, 0)}.  Target sizes: {list(target)}.  Tensor sizes: "
                f"{list(shape)}"
            )


install(
    {
        "__setitem__": _setitem,
        "gather": gather,
        "index_select": index_select,
        "scatter_add": scatter_add,
        "scatter_add_": _scatter_add_,
        "index_add": index_add,
        "index_add_": _index_add_,
        "repeat": repeat,
        "flip": lambda self, *dims: flip(self, dims[0] if len(dims) == 1 else dims),
    }
)


# -- create_graph formulas: the vector-Jacobian product of each rule as tapegrad ops ------
# ``row`` is the tape row as autograd/higher_order.py's ``_Row`` shows it (its saved values
# as tensors at their own rows, so the formula records edges into the original graph).


def _gather_rows(row, g: Tensor) -> Tensor:
    """aux: count, then the picked rows of the input seen as rows of ``numel / count`` elements
    (element-wise picks: one element wide, at flat positions)."""
    count = row.aux(0, 1)[0]
    numel = math.prod(row.input_shape)
    if count == 0 or g.numel() == 0:
        return row.zeros()
    width = g.numel() // count
    picked = np.asarray(row.aux(1, count), np.int64)
    return _scatter_rows(g.reshape(count, width), picked, numel // width).reshape(row.input_shape)


def _scatter_rows(rows: Tensor, targets: np.ndarray, extent: int) -> Tensor:
    """``extent`` rows, row t the sum of the ``rows`` sent to target t (a constant zero row where
    none is): the adjoint of picking rows, made of differentiable picks and sums. The rows sent
    to one target are picked into a group, padded with the zero row to a power of two, and the
    groups of each width summed together: a few picks and sums however often a target repeats,
    with at most twice the elements. (A round of picks per repetition took 2 s to scatter 16,000
    values into 10 places; masked by multiplying with 0, a target with none left took
    inf * 0 = NaN from an infinite row picked in its place.)"""
    from ._views import cat

    rest = tuple(rows.shape[1:])
    zero = _wrap(np.zeros((1, *rest), rows._data.dtype))
    if not targets.size:
        return _wrap(np.zeros((extent, *rest), rows._data.dtype))
    order = np.argsort(targets, kind="stable")
    ordered = targets[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, ordered.size])
    if counts.max() == 1:  # each target once (a view's positions): one pick
        source = np.full(extent, targets.size, np.int64)
        source[targets] = np.arange(targets.size)
        return gather_rows("index", rows if targets.size == extent else cat([rows, zero]), source)
    padded = cat([rows, zero])  # its last row: the padding, a constant
    widths = np.left_shift(1, np.ceil(np.log2(counts)).astype(np.int64))
    parts, sent = [], []
    for width in np.unique(widths).tolist():
        groups = np.flatnonzero(widths == width)
        offsets = np.arange(width)
        inside = offsets < counts[groups, None]
        ranks = np.minimum(starts[groups, None] + offsets, ordered.size - 1)
        picked = gather_rows("index", padded, np.where(inside, order[ranks], targets.size))
        parts.append(picked.sum(dim=1) if width > 1 else picked.reshape((len(groups), *rest)))
        sent.append(ordered[starts[groups]])
    totals = cat([*parts, zero])
    source = np.full(extent, totals.shape[0] - 1, np.int64)
    source[np.concatenate(sent)] = np.arange(totals.shape[0] - 1)
    return gather_rows("index", totals, source)


VJP = {
    "gather_rows": (_gather_rows,),
}
