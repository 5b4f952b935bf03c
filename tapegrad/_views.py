"""View ops: reshape, transpose, permute, (un)squeeze, expand and basic indexing.

The forward is numpy's view of the input's array (so storage is shared, as in PyTorch). The row
records where each output element sits in the input laid out contiguously: an offset and one
stride per output dimension in the tape's aux table. A single backward rule then scatters the
gradient through those strides for every view op, broadcasting included (stride 0).
"""

from __future__ import annotations

import math
import operator
import warnings
from weakref import WeakSet

import numpy as np

from . import _dtypes
from ._grad_mode import recordings_active as _recordings_active
from ._grad_mode import special_modes as _special_modes
from ._grad_mode import state as _grad_state
from ._indexing import _positions, _scatter_rows
from ._indexing import byte_masks as _byte_masks
from ._indexing import index as _index_by_tensor
from ._indexing import pick as _pick
from ._indexing import sequence_as_tuple as _sequence_as_tuple
from ._indexing import split_key as _split_key
from ._ops import BY_NAME, OPCODE
from ._pending_views import PendingView, pending_view
from ._record import (
    MULTI_OUTPUT,
    NO_GRAD_MODE,
    _input_row,
    _into_recording,
    _opcode,
    _operand_row,
    _short_tape,
    _target,
    copied_by_reshape,
)
from ._shapes import broadcast_strides, contiguous_strides, is_size, size_arguments
from ._tape import ROW_BYTES, _pack_row, exclusive, resolve
from .tensor import Tensor, _guard, _normalize_dim, _recorded, _wrap, install


@exclusive
def _record_view(name: str, x: Tensor, out: np.ndarray, offset: int, strides, onto=None) -> Tensor:
    """The view ``out`` of ``x`` (its storage from ``offset`` at ``strides``, in elements),
    recorded as op ``name``. ``onto``: the tape to record a view of a leaf on, instead of a new
    one (``transpose_onto``); without it, a view of a leaf waits for the op that reads it
    (``_pending_views``)."""
    if (
        onto is None
        and _special_modes[0] == 0
        and x._requires_grad
        and x._base is None
        and x._tape is None  # (after ``_base``: a pending view's would record it)
        and (out.base is not None or out is x._data)
        and BY_NAME[name].is_view
    ):
        return pending_view(name, x, out, offset, strides)
    if onto is not None and x._tape is None and _special_modes[0] == 0 and x._requires_grad:
        tape = onto
    else:
        tape = _short_tape(x, None) if _special_modes[0] == 0 and x._requires_grad else None
    if tape is not None:  # eager: the short path of ``_record``
        row_x, requires = (x._row if x._tape is not None else tape.register(x)), True
    else:
        tape, requires = _target((x,))
        if tape is not None:
            row_x = _input_row(tape, x)
    if tape is None:
        result = _wrap(out)
    else:
        aux = tape.add_aux((offset, *strides))
        row = tape.append(_opcode(name, requires), row_x, -1, aux, tape.layout(out.dtype, out.shape), 0.0)
        result = _recorded(out, tape, row, requires)
    # A view shares the storage's version counter; reshape's copy (unsafe_view: numpy's copy has
    # a base too, its own buffer) has a counter of its own, or changing the source afterwards
    # made a backward through the copy raise PyTorch's "modified by an inplace operation".
    if (out.base is not None or out is x._data) and name != "unsafe_view":
        counter = x._version_counter
        if counter is None:
            counter = x._version_counter = [0]
        result._version_counter = counter
        if BY_NAME[name].is_view:  # ... and remembers its root, for in-place changes to reach it
            base = x._base
            root = result._base = base if base is not None else x
            result._seen_version = counter[0]
            if not root._requires_grad:  # it may gain a gradient in place: the view must follow
                views = root._views
                if views is None:
                    views = root._views = WeakSet()
                views.add(result)
            if not _grad_state.enabled:
                result._view_meta = _NO_GRAD_VIEW
            elif base is not None and x._view_meta is not None:  # PyTorch's propagate_creation_meta
                # (named by this op: PyTorch's view of a no_grad view has a node, ours may not)
                result._view_meta = (x._view_meta[0], 0, _node(name, result))
    return result


_NO_GRAD_VIEW = (NO_GRAD_MODE, 0, None)


def _node(name: str, view: Tensor) -> str | None:
    """The node PyTorch's error names for ``view`` (made by op ``name``): none where its root
    does not require grad (the view has no grad_fn there)."""
    return BY_NAME[name].grad_fn if view._base._requires_grad else None


def _multi_output(name: str, pieces: list) -> tuple:
    """The views of a function returning several (unbind, split): PyTorch refuses to change
    them in place (``MULTI_OUTPUT_NODE``), since one node's backward would have to follow it."""
    if _grad_state.enabled:
        for number, piece in enumerate(pieces):
            if piece._base is not None:
                piece._view_meta = (MULTI_OUTPUT, number, _node(name, piece))
    return tuple(pieces)


def _shape_argument(shape) -> tuple:
    return tuple(operator.index(extent) for extent in size_arguments(shape))


def reshape(x: Tensor, shape, name: str | None = None) -> Tensor:
    """``x`` in another shape, named as PyTorch names it: a view of a contiguous tensor
    (``ViewBackward0``), of a non-contiguous one that allows it (``ReshapeAliasBackward0``), or
    a copy (``UnsafeViewBackward0``)."""
    out = _reshaped(x, shape)
    if name is None and _is_view_of(out, x._data) and copied_by_reshape(x._data):
        # unfold's windows, a copy here, are PyTorch's view that no reshape can view: its
        # reshape copies, and a change of that copy is the caller's to make (STFT frames
        # scaled by a window in place).
        out, name = out.copy(), "unsafe_view"
    if name is None:
        if x._data.flags.c_contiguous:
            name = "view"
        else:
            name = "reshape_alias" if _is_view_of(out, x._data) else "unsafe_view"
    return _record_view(name, x, out, 0, contiguous_strides(out.shape))


def view(x: Tensor, shape) -> Tensor:
    """``x`` in another shape without a copy; PyTorch's error where that is impossible."""
    out = _reshaped(x, shape)
    if out.size and not _is_view_of(out, x._data):
        raise RuntimeError(
            "view size is not compatible with input tensor's size and stride (at least one dimension spans across "
            "two contiguous subspaces). Use .reshape(...) instead."
        )
    return _record_view("view", x, out, 0, contiguous_strides(out.shape))


def _reshaped(x: Tensor, shape) -> np.ndarray:
    shape = _shape_argument(shape)
    if list(shape).count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    try:
        return x._data.reshape(shape)
    except ValueError:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {x._data.size}") from None


def _is_view_of(out: np.ndarray, data: np.ndarray) -> bool:
    return out is data or (out.base is not None and np.may_share_memory(out, data))


def transpose(x: Tensor, dim0: int, dim1: int, name: str = "transpose") -> Tensor:
    """A view with dimensions ``dim0`` and ``dim1`` swapped; follows ``torch.transpose``."""
    ndim = x._data.ndim
    order = list(range(ndim))
    if ndim:
        dim0, dim1 = _normalize_dim(dim0, ndim), _normalize_dim(dim1, ndim)
        order[dim0], order[dim1] = order[dim1], order[dim0]
    return _permuted(name, x, tuple(order))


def t(x: Tensor) -> Tensor:
    if x._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x._data.ndim}D")
    return transpose(x, 0, -1, "t") if x._data.ndim == 2 else _permuted("t", x, tuple(range(x._data.ndim)))


def transpose_onto(x: Tensor, other: Tensor) -> Tensor:
    """``x.t()`` of a 2-D ``x``, recorded on ``other``'s tape when ``x`` is a leaf and ``other``
    is recorded: ``F.linear``'s weight, whose transpose on a tape of its own was merged into the
    input's at the product (a new tape and a merge: a quarter of a small layer's recording)."""
    onto = resolve(other) if other._tape is not None and other._requires_grad else None
    return _permuted("t", x, (1, 0), onto)


def permute(x: Tensor, dims) -> Tensor:
    """A view with the dimensions in the order ``dims``; follows ``torch.permute``."""
    ndim = x._data.ndim
    dims = tuple(_normalize_dim(int(d), ndim) for d in dims)
    if len(dims) == ndim and len(set(dims)) != ndim:  # (PyTorch's messages, sparse_coo in one of them)
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    if sorted(dims) != list(range(ndim)):
        raise RuntimeError(
            f"permute(sparse_coo): number of dimensions in the tensor input does not match the length of "
            f"the desired ordering of dimensions i.e. input.dim() = {ndim} is not equal to len(dims) = {len(dims)}"
        )
    return _permuted("permute", x, dims)


def _permuted(name: str, x: Tensor, order: tuple, onto=None) -> Tensor:
    own = contiguous_strides(x._data.shape)
    return _record_view(name, x, x._data.transpose(order), 0, tuple(own[k] for k in order), onto)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    dim = _normalize_dim(dim, x._data.ndim + 1)
    out = np.expand_dims(x._data, dim)
    return _record_view("unsqueeze", x, out, 0, contiguous_strides(out.shape))


def squeeze(x: Tensor, dim=None) -> Tensor:
    if dim is None:
        out = x._data.reshape(tuple(extent for extent in x._data.shape if extent != 1))
        name = "squeeze"
    else:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        dims = {_normalize_dim(d, x._data.ndim) for d in dims}
        out = x._data.reshape(tuple(e for k, e in enumerate(x._data.shape) if not (k in dims and e == 1)))
        name = "squeeze_dim" if isinstance(dim, int) else "squeeze_dims"
    return _record_view(name, x, out, 0, contiguous_strides(out.shape))


def expand(x: Tensor, sizes, name: str = "expand") -> Tensor:
    sizes = tuple(operator.index(s) for s in sizes)
    lead = len(sizes) - x._data.ndim
    if lead < 0:
        raise RuntimeError(
            f"expand(torch.FloatTensor{{{list(x._data.shape)}}}, size={list(sizes)}): the number of sizes provided "
            f"({len(sizes)}) must be greater or equal to the number of dimensions in the tensor ({x._data.ndim})"
        )
    target = tuple(x._data.shape[k - lead] if s == -1 else s for k, s in enumerate(sizes))
    for k, extent in enumerate(x._data.shape):
        if extent != 1 and extent != target[lead + k]:
            raise RuntimeError(
                f"The expanded size of the tensor ({target[lead + k]}) must match the existing size ({extent}) at "
                f"non-singleton dimension {lead + k}.  Target sizes: {list(sizes)}.  Tensor sizes: {list(x._data.shape)}"
            )
    offset, strides = broadcast_strides(x._data.shape, target)
    out = np.broadcast_to(x._data, target)  # read-only: writing it would write an element many times
    if x._data.flags.writeable and target[lead:] == x._data.shape and all(extent == 1 for extent in target[:lead]):
        out = x._data.reshape(target)  # nothing broadcast (unit dimensions at most): a view to write, as PyTorch's
    return _record_view(name, x, out, offset, strides)


def _index_name(key: tuple, shape: tuple) -> str:
    """The PyTorch node an index expression ends with: that of its last component, skipping
    slices that keep a whole dimension (PyTorch applies no op for them)."""
    named = [part for part in key if part is not None and part is not Ellipsis]
    ellipsis_dims = len(shape) - len(named)
    dim = 0
    last = "alias"
    for part in key:
        if part is None:
            last = "unsqueeze"
        elif part is Ellipsis:
            dim += ellipsis_dims
        else:
            if isinstance(part, slice):
                if not _keeps_everything(part, shape[dim]):
                    last = "slice"
            else:
                last = "select"
            dim += 1
    return last


def _keeps_everything(part: slice, extent: int) -> bool:
    """PyTorch's test, on the slice as written: start 0, step 1, stop at or past the end (so
    ``-1:`` of one element is still a slice)."""
    start = 0 if part.start is None else part.start
    stop = extent if part.stop is None else part.stop
    return start == 0 and part.step in (None, 1) and stop >= extent


def _select(x: Tensor, index: int) -> Tensor:
    """``x[i]``, without the probe."""
    shape = x._data.shape
    if not shape:
        raise IndexError(
            "invalid index of a 0-dim tensor. Use `tensor.item()` in Python or `tensor.item<T>()` in C++ to convert a 0-dim tensor to a number"
        )
    if not -shape[0] <= index < shape[0]:
        raise IndexError(f"index {index} is out of bounds for dimension 0 with size {shape[0]}")
    index %= shape[0]
    step, strides = _row_geometry(shape)
    return _record_view("select", x, x._data[index, ...], index * step, strides)


def _row_geometry(shape: tuple) -> tuple:
    """(the offset from one row of ``shape`` to the next, a row's strides)."""
    inner = contiguous_strides(shape)
    return inner[0], inner[1:]


def _iterate(x: Tensor):
    """``iter(x)``: ``x.unbind(0)``, as PyTorch's, the geometry worked out once (Python's
    ``list(x)`` and ``extend(x)`` over scalar graphs' softmaxes). Raises ``TypeError`` for a
    0-d tensor, as PyTorch does."""
    shape = x._data.shape
    if not shape:
        raise TypeError("iteration over a 0-d tensor")
    (step, strides), data = _row_geometry(shape), x._data
    if x._requires_grad and x._base is None and _grad_state.enabled:
        if _special_modes[0] == 0:
            tape = _short_tape(x, None)
            if tape is not None:
                return iter(_unbound_rows(x, tape, data, step, strides))
        elif _into_recording(x):  # a result of this thread's recording: recorded the same way
            return iter(_unbound_rows(x, x._tape, data, step, strides))
    return iter(unbind(x, 0))


# Per (count, step, strides): the aux entries of unbind's rows, offset then strides per piece.
# Bounded like ``_BASIC_VIEWS``.
_UNBIND_AUX: dict = {}
_UNBIND_AUX_LIMIT = 1024


@exclusive
def _unbound_rows(x: Tensor, tape, data: np.ndarray, step: int, strides: tuple) -> list:
    """``unbind(x, 0)`` (what PyTorch's ``__iter__`` returns: ``UnbindBackward0`` views that
    refuse in-place changes), each row as ``_record_view`` records it, with the row's layout,
    aux block and view bookkeeping worked out once: iterating the softmaxes of a scalar graph
    made 10,000 views, a tenth of its recording. ``tape.append`` and ``_recorded`` are inlined:
    their calls were a third of it."""
    row_x = x._row if x._tape is not None else tape.register(x)
    count = data.shape[0]
    width = 1 + len(strides)
    key = (count, step, strides)
    entries = _UNBIND_AUX.get(key)
    if entries is None:
        if len(_UNBIND_AUX) >= _UNBIND_AUX_LIMIT:
            _UNBIND_AUX.clear()
        entries = _UNBIND_AUX[key] = tuple(value for index in range(count) for value in (index * step, *strides))
    aux = tape.add_aux(entries)
    layout = tape.layout(data.dtype, data.shape[1:])
    opcode = OPCODE["unbind"]
    counter = x._version_counter
    if counter is None:
        counter = x._version_counter = [0]
    seen = counter[0]
    first = tape.n
    if first + count > tape.capacity:
        tape._reserve(first + count)
    rows, hold_from, new = tape.rows, tape.hold_from, Tensor.__new__
    views = []
    for index in range(count):
        row = first + index
        _pack_row(rows, row * ROW_BYTES, opcode, row_x, -1, aux + index * width, layout, 0.0)
        # ``_recorded``'s fields (no anomaly mode here: its special mode keeps this path off)
        view = new(Tensor)
        view._data, view._tape, view._row, view._requires_grad = data[index, ...], tape, row, True
        if row >= hold_from:
            tape.hold(row, view)
        view._version_counter, view._base, view._seen_version = counter, x, seen
        view._view_meta = (MULTI_OUTPUT, index, "UnbindBackward0")
        views.append(view)
    tape.n = first + count
    return views


# Basic keys (ints, slices of ints, None, Ellipsis) by the shape they index: where the view
# starts and its strides (in elements, whatever the dtype), its op name and the key numpy
# takes. Working them out (the key split as PyTorch reads it, a probe array, two
# ``__array_interface__`` reads) took 5 of a slice's 8 us. Bounded like ``_BROADCAST_AUX``.
_BASIC_VIEWS: dict = {}
_BASIC_VIEWS_LIMIT = 1024
_NONE = type(None)


def _basic_key(key) -> tuple | None:
    """A hashable spelling of a key made only of ints, int-or-None slices, None and Ellipsis
    (a bare slice marked as such: ``x[:]`` is a ``slice`` node); None for any other key."""
    bare = type(key) is slice
    parts = [bare]
    for part in (key,) if bare else key:
        kind = type(part)
        if kind is slice:
            start, stop, step = part.start, part.stop, part.step
            if not (type(start) in _SLICE_FIELDS and type(stop) in _SLICE_FIELDS and type(step) in _SLICE_FIELDS):
                return None
            parts.append((start, stop, step))
        elif kind is int or part is None or part is Ellipsis:
            parts.append(part)
        else:
            return None
    return tuple(parts)


_SLICE_FIELDS = (int, _NONE)


def getitem(x: Tensor, key) -> Tensor:
    if type(key) is int:
        return _select(x, key)
    if key is None or key is Ellipsis:  # ``x[None]`` is ``x[None,]``: then a cached basic view
        key = (key,)  # (it took the general path, probing numpy's view: 9.4 against 4.5 us)
    shape = x._data.shape
    basic = _basic_key(key) if type(key) is tuple or type(key) is slice else None
    if basic is not None:
        cached = _BASIC_VIEWS.get((shape, basic))
        if cached is not None:
            numpy_key, offset, strides, name = cached
            return _record_view(name, x, x._data[numpy_key], offset, strides)
    if type(key) is list:
        key = _sequence_as_tuple(key)
    if type(key) is not slice:
        key = _byte_masks(key)
    if isinstance(key, Tensor) and key._data.ndim == 0 and key._data.dtype.kind in "iu":
        _guard(key, "indexing")  # a 0-d integer tensor indexes like an int, as in PyTorch
        return _select(x, int(key._data))
    if isinstance(key, (Tensor, np.ndarray, list, range)):  # (a range is an index tensor too)
        return _index_by_tensor(x, key)
    bare_slice = isinstance(key, slice)  # x[:] is a SliceBackward0 even when it keeps everything
    # Read as PyTorch reads it: the selects, slices and new dimensions first, then any index
    # tensors (split_key guards them: positions computed in numpy, a replay must not reuse them).
    key, advanced = _split_key(key, x._data.ndim)
    if advanced is not None:  # x[rows, labels], x[:, idx], x[mask, 0], x[0, :, idx]
        recorded = _target((x,))[0] is not None
        try:
            # Off every tape, numpy's own indexing; on one, the flat positions it picks (the
            # gradient scatters back to them), as a one-element-wide gather row.
            picked = (_positions(x) if recorded else x._data)[key][advanced]
        except IndexError as error:
            raise _index_error(error) from None
        if not picked.flags.c_contiguous:  # (numpy's ``x[:, [0, 2]]`` is not; PyTorch's index is)
            picked = picked.copy()
        return _pick("index", x, picked) if recorded else _wrap(picked)
    try:
        out = x._data[key]
        if out.size and not _is_view_of(out, x._data):
            # numpy read a part of the key as an index array and copied (``split_key`` knows
            # every such part PyTorch takes): the positions it picked, never a view's offset
            # and strides measured on a copy (gradients sent elsewhere, or past the buffer).
            recorded = _target((x,))[0] is not None
            return _pick("index", x, _positions(x)[key]) if recorded else _wrap(out)
        # Where each output element sits in the input, measured on a same-shaped byte array.
        probe = np.empty(x._data.shape, np.uint8)
        probe_view = probe[key]
    except IndexError as error:
        raise _index_error(error) from None
    offset = probe_view.__array_interface__["data"][0] - probe.__array_interface__["data"][0]
    name = "slice" if bare_slice else _index_name(key, x._data.shape)
    if basic is not None:
        if len(_BASIC_VIEWS) >= _BASIC_VIEWS_LIMIT:
            _BASIC_VIEWS.clear()
        _BASIC_VIEWS[(shape, basic)] = (key, offset, probe_view.strides, name)
    return _record_view(name, x, out, offset, probe_view.strides)


def _index_error(error: IndexError) -> IndexError:
    """numpy's indexing error in PyTorch's words."""
    message = str(error).replace(" axis ", " dimension ")
    if "must be of integer" in message:
        message = "tensors used as indices must be long, int, byte or bool tensors"
    return IndexError(message)


def _common_dtype(tensors) -> list:
    """The tensors' arrays, promoted to one dtype as PyTorch's cat and stack do."""
    first = tensors[0]._data.dtype
    datas = [t._data for t in tensors]
    for data in datas:
        if data.dtype is not first:
            break
    else:  # (a loop: ``all`` of a generator cost 1 us of a scalar graph's 5 us stack)
        return datas
    result = tensors[0].dtype
    for tensor in tensors[1:]:
        result = _dtypes.result_type(result, 1, tensor.dtype, 1)
    return [t._data if t._data.dtype == result.numpy else t._data.astype(result.numpy) for t in tensors]


def _results_of_one_tape(tensors: list, datas: list):
    """The tape when every one of ``tensors`` is a result on it that requires grad, read as it
    is (``datas[i] is tensors[i]._data``), not a view changed in place since, and the op may
    take the short path there (``_short_tape``, ``_into_recording``): the join then needs
    only their rows. Else None. (A scalar graph's stacks, 10,000 a recording: the general
    path's ``_target`` and ``_operand_row`` per input were half of one.)"""
    if type(tensors[0]) is PendingView:
        return None
    tape = tensors[0]._tape
    if tape is None or tape.merged_into is not None or not _grad_state.enabled:
        return None
    if _special_modes[0] == 0:
        if tape.n >= tape.collect_at:  # (the general path collects first)
            return None
    elif _special_modes[0] != _recordings_active[0] or _grad_state.recording is not tape:
        return None
    for tensor, data in zip(tensors, datas):
        if (
            type(tensor) is PendingView
            or tensor._tape is not tape
            or not tensor._requires_grad
            or data is not tensor._data
            or (tensor._base is not None and tensor._version_counter[0] != tensor._seen_version)
        ):
            return None
    return tape


@exclusive
def _join(name: str, tensors: list, datas: list, out: np.ndarray, dim: int, extents: list) -> Tensor:
    """Record ``stack``/``cat``: one row listing its inputs (as row deltas) and their extents
    along ``dim``, the layout the concat rule walks."""
    tape = _results_of_one_tape(tensors, datas)
    if tape is not None:
        rows, requires = [tensor._row for tensor in tensors], True
    else:
        tape, requires = _target(tensors)
        if tape is None:
            return _wrap(out)
        replaying = tape is _grad_state.recording
        rows = [_operand_row(tape, t, data, data, False, replaying) for t, data in zip(tensors, datas)]
    row = tape.n
    deltas = [row - source if source >= 0 else 0 for source in rows]
    aux = tape.add_aux((len(tensors), dim, *deltas, *extents))
    tape.append(_opcode(name, requires), -1, -1, aux, tape.layout(out.dtype, out.shape), 0.0)
    return _recorded(out, tape, row, requires)


def stack(tensors, dim: int = 0) -> Tensor:
    """Join tensors of one shape along a new dimension ``dim`` (``StackBackward0``)."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    shape = tensors[0]._data.shape
    for index, tensor in enumerate(tensors):
        if tensor._data.shape != shape:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {list(shape)} at entry 0 and "
                f"{list(tensor._data.shape)} at entry {index}"
            )
    dim = _normalize_dim(dim, len(shape) + 1)
    datas = _common_dtype(tensors)
    # Along a new first dimension, np.array of the equal-shaped arrays is np.stack's result
    # without its Python (0.25 against 2.2 us for four scalars: stack(...) of scalar graphs).
    out = np.array(datas) if dim == 0 else np.stack(datas, axis=dim)
    return _join("stack", tensors, datas, out, dim, [1] * len(tensors))


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension ``dim`` (``CatBackward0``)."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    for index, tensor in enumerate(tensors):
        if tensor._data.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {index}) cannot be concatenated")
    # PyTorch skips 1-D empty tensors among others (``out = torch.cat([out, batch])`` from
    # ``out = torch.empty(0)``): here each joins as an empty block of the others' shape, so that
    # it still takes its (empty) gradient.
    reference = next((t for t in tensors if t._data.shape != (0,)), None)
    if reference is not None and reference._data.ndim != 1:
        empty = list(reference._data.shape)
        empty[_normalize_dim(dim, len(empty))] = 0
        tensors = [t.reshape(empty) if t._data.shape == (0,) else t for t in tensors]
    shape = tensors[0]._data.shape
    dim = _normalize_dim(dim, len(shape))
    for index, tensor in enumerate(tensors):
        other = tensor._data.shape
        if len(other) != len(shape):
            raise RuntimeError(f"Tensors must have same number of dimensions: got {len(shape)} and {len(other)}")
        for k, (want, got) in enumerate(zip(shape, other)):
            if k != dim and want != got:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {dim}. Expected size {want} but got size "
                    f"{got} for tensor number {index} in the list."
                )
    datas = _common_dtype(tensors)
    out = np.concatenate(datas, axis=dim)
    return _join("cat", tensors, datas, out, dim, [t._data.shape[dim] for t in tensors])


concat = concatenate = cat


def _pieces(name: str, x: Tensor, dim: int, bounds: list) -> tuple:
    """Views of ``x`` between consecutive ``bounds`` along ``dim``, each its own row."""
    strides = contiguous_strides(x._data.shape)
    index = [slice(None)] * x._data.ndim
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        index[dim] = slice(start, stop)
        pieces.append(_record_view(name, x, x._data[tuple(index)], start * strides[dim], strides))
    return _multi_output(name, pieces)


def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the sizes listed."""
    if x._data.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    dim = _normalize_dim(dim, x._data.ndim)
    extent = x._data.shape[dim]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size < 0:
            raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
        if size == 0 and extent:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {extent}")
        bounds = list(range(0, extent, size)) + [extent] if extent else [0, 0]
        return _pieces("split", x, dim, bounds)
    sizes = [int(size) for size in split_size_or_sections]
    if any(size < 0 for size in sizes):
        raise RuntimeError(
            f"split_with_sizes expects split_sizes have only non-negative entries, but got split_sizes={sizes}"
        )
    if sum(sizes) != extent:
        raise RuntimeError(
            f"split_with_sizes expects split_sizes to sum exactly to {extent} (input tensor's size at dimension "
            f"{dim}), but got split_sizes={sizes}"
        )
    return _pieces("split_with_sizes", x, dim, [0, *np.cumsum(sizes).tolist()])


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple:
    """At most ``chunks`` pieces of equal size along ``dim`` (``SplitBackward0``); exactly
    ``chunks`` empty pieces of an empty ``dim`` (``SplitWithSizesBackward0``), as PyTorch gives."""
    if x._data.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
    extent = x._data.shape[_normalize_dim(dim, x._data.ndim)]
    if extent == 0:  # split(x, 0) is one piece: any number of empty pieces adds up to 0
        return split(x, [0] * chunks, dim)
    return split(x, -(-extent // chunks), dim)


def unbind(x: Tensor, dim: int = 0) -> tuple:
    """The slices along ``dim``, without it (``UnbindBackward0``)."""
    if x._data.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    dim = _normalize_dim(dim, x._data.ndim)
    strides = contiguous_strides(x._data.shape)
    inner = strides[:dim] + strides[dim + 1 :]
    pieces = []
    for k in range(x._data.shape[dim]):
        # (the Ellipsis: of a 1-D tensor, ``data[k]`` is a numpy scalar, a copy; ``data[k, ...]`` a view)
        index = (slice(None),) * dim + (k, Ellipsis)
        pieces.append(_record_view("unbind", x, x._data[index], k * strides[dim], inner))
    return _multi_output("unbind", pieces)


def diagonal(x: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of ``dim1`` and ``dim2`` (shifted by ``offset``) as a last dimension: a view
    (``DiagonalBackward0``)."""
    ndim = x._data.ndim
    dim1, dim2 = _normalize_dim(dim1, ndim), _normalize_dim(dim2, ndim)
    if dim1 == dim2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    out = np.diagonal(x._data, offset, dim1, dim2)
    if x._data.flags.writeable:  # numpy's diagonal is read-only; PyTorch's is a view to write through
        out.flags.writeable = True
    probe = np.empty(x._data.shape, np.uint8)
    probe_view = np.diagonal(probe, offset, dim1, dim2)
    start = probe_view.__array_interface__["data"][0] - probe.__array_interface__["data"][0]
    return _record_view("diagonal", x, out, start, probe_view.strides)


def _reversed(x: Tensor) -> Tensor:
    """``x.T``: the dimensions reversed, with PyTorch's deprecation warning unless ``x`` is 2-d."""
    if x._data.ndim != 2:
        warnings.warn(
            "Tensor.T is deprecated on 0-D tensors. This function is the identity in these cases."
            if x._data.ndim == 0
            else "The use of `x.T` on tensors of dimension other than 2 to reverse their shape is deprecated and it "
            "will throw an error in a future release. Consider `x.mT` to transpose batches of matrices or "
            "`x.permute(*torch.arange(x.ndim - 1, -1, -1))` to reverse the dimensions of a tensor.",
            stacklevel=3,
        )
    return permute(x, tuple(range(x._data.ndim - 1, -1, -1)))


def _varargs(values: tuple):
    """``x.permute(1, 0)`` and ``x.permute((1, 0))`` alike."""
    return values[0] if len(values) == 1 and not is_size(values[0]) else values


install(
    {
        "__getitem__": getitem,
        "__iter__": _iterate,
        "reshape": lambda self, *shape: reshape(self, shape),
        "ravel": lambda self: reshape(self, (-1,)),
        "view": lambda self, *shape: view(self, shape),
        "transpose": lambda self, dim0, dim1: transpose(self, dim0, dim1),
        "t": t,
        "T": property(_reversed),
        "permute": lambda self, *dims: permute(self, _varargs(dims)),
        "unsqueeze": unsqueeze,
        "squeeze": squeeze,
        "expand": lambda self, *sizes: expand(self, _varargs(sizes)),
        "split": lambda self, split_size, dim=0: split(self, split_size, dim),
        "chunk": chunk,
        "unbind": unbind,
        "diagonal": diagonal,
    }
)


# -- create_graph formulas: the vector-Jacobian product of each rule as tapegrad ops ------
# ``row`` is the tape row as autograd/higher_order.py's ``_Row`` shows it (its saved values
# as tensors at their own rows, so the formula records edges into the original graph).


def _view(row, g: Tensor) -> Tensor:
    """The adjoint of a view: each output element's gradient goes back to the input element it
    reads (aux: offset, then a stride per output dimension, in the input laid out contiguously).
    Broadcast dimensions (stride 0) are summed first; then a reshape maps back as a reshape, and
    anything else (transposes, slices, selects) scatters through differentiable picks."""
    shape = row.shape
    offset, *strides = row.aux(0, 1 + len(shape))
    broadcast = tuple(d for d, (extent, stride) in enumerate(zip(shape, strides)) if stride == 0 and extent != 1)
    if broadcast:
        g = g.sum(broadcast)
        shape = tuple(extent for d, extent in enumerate(shape) if d not in broadcast)
        strides = [stride for d, stride in enumerate(strides) if d not in broadcast]
    grids = np.indices(shape, dtype=np.int64)
    positions = np.asarray(offset + sum(grid * stride for grid, stride in zip(grids, strides)), np.int64).reshape(-1)
    numel = math.prod(row.input_shape)
    if np.array_equal(positions, np.arange(numel)):
        return g.reshape(row.input_shape)
    return _scatter_rows(g.reshape(-1), positions, numel).reshape(row.input_shape)


def _concat(row) -> list:
    """stack and cat (aux: count, dim, distances back, then each input's extent along dim): an
    input's gradient is its slice of g, reshaped (a stacked input lacks that dimension)."""
    count, dim = row.aux(0, 2)
    formulas = []
    start = 0
    for source, extent in zip(row.inputs, row.aux(2 + count, count)):
        key = (slice(None),) * dim + (slice(start, start + extent),)
        shape = row.walk.shape(source) if source >= 0 else None
        formulas.append(lambda _, g, key=key, shape=shape: g[key].reshape(shape))
        start += extent
    return formulas


VJP = {
    "view": (_view,),
    "concat": _concat,
}
