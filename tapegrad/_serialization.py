"""``tapegrad.save`` / ``tapegrad.load``: tensors, state dicts and checkpoints in numpy's ``.npz``
format.

Unlike ``torch.save`` this never pickles arbitrary objects, so loading a file cannot run code: a
checkpoint (``{"epoch": 3, "model": model.state_dict(), "optimizer": optimizer.state_dict()}``)
is its arrays plus a JSON description of the containers and numbers around them, as much as
``torch.load(weights_only=True)`` accepts.

Tensors that share memory (``x``, ``x.t()``, ``x[1:, ::2]``) are saved as one block of bytes
with each tensor's place in it, and load sharing it again with their strides, as ``torch.load``
gives them back ("saving and loading tensors preserves views"). The block is the bytes they
span, not the whole array they are views of (``torch.save`` writes the whole storage): a row of
a large array saved alone saves its own values, not its neighbours'.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict

import numpy as np

from . import _device, _dtypes
from .nn.modules import Parameter
from .tensor import Tensor, _wrap, guard_reads

_SINGLE = "__tensor__"
_TENSOR_DTYPES = {d.numpy for d in _dtypes.ALL}
_STRUCTURE = "__structure__"


def _encode(value, arrays: list, seen: dict, tensors: list, depth: int = 0):
    """A JSON description of ``value``; its arrays appended to ``arrays`` and its tensors to
    ``tensors`` as ``(node, data)``, the node's place filled in by ``_place_tensors``; each
    once (``seen``: by identity, so that tied weights stay one tensor, as ``torch.load`` keeps
    them)."""
    if depth > _DEPTH:
        raise ValueError(f"cannot save containers nested more than {_DEPTH} deep")
    if isinstance(value, (Tensor, np.ndarray, np.generic)):
        data = value._data if isinstance(value, Tensor) else np.asarray(value)
        guard_reads("tapegrad.save()", value)  # inside tapegrad.record: saved values are constants
        if data.dtype.hasobject:
            raise TypeError("cannot save an array of Python objects: tapegrad.save writes no pickle")
        kind = (
            _tensor_kind(value) if isinstance(value, Tensor) else "scalar" if isinstance(value, np.generic) else "array"
        )
        key = (id(value), kind)
        if key not in seen:
            if isinstance(value, Tensor):
                node = {kind: None}
                tensors.append((node, data))
            else:
                node = {kind: len(arrays)}
                arrays.append(data)
            seen[key] = (node, value)  # (the value held: its id stays its own)
        return seen[key][0]
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    if isinstance(value, (list, tuple)):  # subclasses (a Size, a namedtuple) as plain ones
        items = [_encode(v, arrays, seen, tensors, depth + 1) for v in value]
        return {"tuple" if isinstance(value, tuple) else "list": items}
    if isinstance(value, dict):
        items = [
            [_encode(k, arrays, seen, tensors, depth + 1), _encode(v, arrays, seen, tensors, depth + 1)]
            for k, v in value.items()
        ]
        return {"ordered" if isinstance(value, OrderedDict) else "dict": items}
    raise TypeError(
        f"cannot save {type(value).__name__}: tapegrad.save writes tensors, arrays, numbers, strings and None, "
        "in dicts, lists and tuples (never a pickle, so that loading cannot run code)"
    )


_DEPTH = 200  # containers nested deeper are refused on save and reported damaged on load


def _owner(data: np.ndarray) -> np.ndarray | None:
    """The array whose memory ``data`` views, as flat bytes; None where that memory is not one
    contiguous block (then ``data`` is saved as a copy of its own)."""
    owner = data
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if not (owner.flags.c_contiguous or owner.flags.f_contiguous):
        return None
    return owner.reshape(-1, order="A").view(np.uint8)  # (no copy: contiguous in one order or the other)


def _address(data: np.ndarray) -> int:
    return data.__array_interface__["data"][0]


def _bytes_spanned(start: int, shape, strides, itemsize: int) -> tuple:
    """The bytes ``[first, stop)`` the elements of a non-empty array lie in, its first element
    at byte ``start``: in Python's integers, which do not wrap (save's grouping and load's
    bounds check both read it)."""
    first = start + sum((extent - 1) * stride for extent, stride in zip(shape, strides) if stride < 0)
    last = start + sum((extent - 1) * stride for extent, stride in zip(shape, strides) if stride > 0)
    return first, last + itemsize


def _span(data: np.ndarray) -> tuple:
    return _bytes_spanned(_address(data), data.shape, data.strides, data.itemsize)


def _aligned(data: np.ndarray, start: int) -> bool:
    """Whether ``data`` lies at whole elements from ``start``, with strides of whole elements
    (what a load accepts: a block's tensors aligned as the block is)."""
    size = data.itemsize
    return (_address(data) - start) % size == 0 and all(stride % size == 0 for stride in data.strides)


def _alone_as_copy(data: np.ndarray) -> bool:
    """Whether a tensor sharing memory with no other saved one is saved as a copy of its values:
    when C-contiguous, or when the bytes it spans are more than twice its own (a column of a
    large matrix: its strides are not worth the rows around it). A transposed or permuted one
    keeps its strides, as ``torch.load`` gives them."""
    if data.flags.c_contiguous:
        return True
    start, stop = _span(data)
    return stop - start > 2 * data.nbytes


def _place_tensors(tensors: list, arrays: list) -> None:
    """Fill in each tensor node of ``_encode``: ``{kind: array index}`` for a contiguous tensor
    sharing memory with no other saved one (a copy of its values), else ``{"view": [number,
    storage index, kind, dtype, byte offset, shape, byte strides]}``, its memory saved once with
    that of the others sharing it, as the bytes they span together."""
    groups: dict = {}
    views = 0
    for node, data in tensors:
        owner = _owner(data) if data.size else None
        key = ("own", id(node)) if owner is None else ("owner", _address(owner), owner.size)
        groups.setdefault(key, (owner, []))[1].append((node, data))

    def as_copies(members: list) -> None:
        for node, data in members:
            node[next(iter(node))] = len(arrays)
            arrays.append(data)

    for owner, members in groups.values():
        if owner is None or (len(members) == 1 and _alone_as_copy(members[0][1])):
            as_copies(members)
            continue
        spans = [_span(data) for _, data in members]
        start, stop = min(a for a, _ in spans), max(b for _, b in spans)
        base = _address(owner)
        if (
            start < base
            or stop > base + owner.size  # (two arrays over one foreign buffer)
            or not all(_aligned(data, start) for _, data in members)  # (a field of a structured array)
        ):
            as_copies(members)  # (a load could not place them)
            continue
        storage = len(arrays)
        arrays.append(owner[start - base : stop - base])
        for node, data in members:
            ((kind, _),) = node.items()
            node.clear()
            # Numbered: two tensors of one geometry load as two, one saved twice as one.
            views += 1
            offset = _address(data) - start
            node["view"] = [views, storage, kind, data.dtype.str, offset, list(data.shape), list(data.strides)]


# A tensor's kind in the file: what ``torch.load`` gives back besides its values. A checkpoint's
# tensors that required grad loaded without it, and its Parameters as plain tensors, so that
# optimizing them after a resume silently computed no gradients.
_TENSOR_KINDS = {
    "tensor": (False, False),  # (requires grad, nn.Parameter)
    "grad_tensor": (True, False),
    "parameter": (True, True),
    "frozen_parameter": (False, True),
}


def _tensor_kind(tensor: Tensor) -> str:
    flags = (tensor.requires_grad, isinstance(tensor, Parameter))
    return next(kind for kind, kind_flags in _TENSOR_KINDS.items() if kind_flags == flags)


def _tensor_of(data: np.ndarray, kind: str) -> Tensor:
    requires_grad, parameter = _TENSOR_KINDS[kind]
    if parameter:
        return Parameter(_wrap(data), requires_grad=requires_grad)
    tensor = _wrap(data)
    return tensor.requires_grad_() if requires_grad else tensor


def _tensor_data(data: np.ndarray, check: bool = True) -> np.ndarray:
    """A tensor's values read from a file: a copy, in this machine's byte order (numpy writes
    big-endian arrays as they are, and the kernels take native ones only: a tensor of them
    failed in numba's typing or gave KeyError in a backward). ``check``: ``ValueError`` for a
    dtype no tensor has (the files of the first versions, a plain ``.npz`` of arrays, leave the
    conversion to the tensor instead)."""
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    if check and data.dtype not in _TENSOR_DTYPES:
        raise ValueError(f"not a file tapegrad.save wrote: a tensor of dtype {data.dtype}")
    return data.copy()


def _decode(node, archive, loaded: dict, depth: int = 0):
    """The value ``node`` describes; each array read once (``loaded``), however often the file
    names it, so that a file cannot make ``load`` hold more than it holds."""
    if depth > _DEPTH or not isinstance(node, dict) or len(node) != 1:
        raise ValueError("not a file tapegrad.save wrote: its structure is damaged")
    ((kind, content),) = node.items()
    if kind in _TENSOR_KINDS or kind in ("array", "scalar"):
        name = str(content)
        if type(content) is not int or name not in archive.files:
            raise ValueError("not a file tapegrad.save wrote: it names an array it does not hold")
        key = (name, kind)
        if key not in loaded:
            data = archive[name]
            if kind in _TENSOR_KINDS:
                data = _tensor_data(data)
                if _TENSOR_KINDS[kind][0] and data.dtype.kind not in "fc":
                    raise ValueError(f"not a file tapegrad.save wrote: a tensor of dtype {data.dtype}")
                loaded[key] = _tensor_of(data, kind)
            else:
                loaded[key] = data if kind == "array" else data[()]
        return loaded[key]
    if kind == "view":
        key = ("view", _view_number(content))
        if key not in loaded:
            loaded[key] = _view(content, archive, loaded)
        return loaded[key]
    if kind == "value" and (content is None or isinstance(content, (bool, int, float, str))):
        return content
    if kind in ("list", "tuple") and isinstance(content, list):
        items = [_decode(item, archive, loaded, depth + 1) for item in content]
        return items if kind == "list" else tuple(items)
    if kind in ("dict", "ordered") and isinstance(content, list):
        pairs = []
        for pair in content:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError("not a file tapegrad.save wrote: its structure is damaged")
            key = _decode(pair[0], archive, loaded, depth + 1)
            try:
                hash(key)
            except TypeError:
                raise ValueError("not a file tapegrad.save wrote: a key that cannot be one") from None
            pairs.append((key, _decode(pair[1], archive, loaded, depth + 1)))
        return OrderedDict(pairs) if kind == "ordered" else dict(pairs)
    raise ValueError(f"not a file tapegrad.save wrote: unknown entry {kind!r}")


def _view_number(content) -> int:
    if not isinstance(content, list) or len(content) != 7 or type(content[0]) is not int:
        raise ValueError("not a file tapegrad.save wrote: its structure is damaged")
    return content[0]


def _view(content: list, archive, loaded: dict) -> Tensor:
    """A tensor ``_place_tensors`` saved as a place in a block of bytes, sharing that block with
    the others loaded from it (read once). Every field is checked, its bounds in Python's exact
    integers (numpy's own check multiplies in 64 bits, and a stride of 2**61 wrapped past it): a
    file cannot make a tensor reach past its block, nor have a dtype no tensor has."""
    _, storage, kind, dtype, offset, shape, strides = content
    name = str(storage)
    if (
        type(storage) is not int
        or name not in archive.files
        or not isinstance(kind, str)
        or kind not in _TENSOR_KINDS
        or not isinstance(dtype, str)
        or type(offset) is not int
        or not isinstance(shape, list)
        or not isinstance(strides, list)
        or len(shape) != len(strides)
        or len(shape) > 64
        or not all(type(v) is int for v in shape + strides)
        or any(extent < 0 for extent in shape)
    ):
        raise ValueError("not a file tapegrad.save wrote: its structure is damaged")
    dtype = _VIEW_DTYPES.get(dtype)
    if dtype is None or (_TENSOR_KINDS[kind][0] and dtype.kind not in "fc"):
        raise ValueError(f"not a file tapegrad.save wrote: a tensor of dtype {content[3]}")
    key = (name, "storage")
    if key not in loaded:
        block = archive[name]
        if block.dtype != np.uint8 or block.ndim != 1:
            raise ValueError("not a file tapegrad.save wrote: a block of bytes that is not one")
        loaded[key] = block.copy()
    block = loaded[key]
    if offset % dtype.itemsize or any(stride % dtype.itemsize for stride in strides):
        raise ValueError("not a file tapegrad.save wrote: its structure is damaged")  # (misaligned)
    numel = math.prod(shape)
    if numel:
        first, stop = _bytes_spanned(offset, shape, strides, dtype.itemsize)
        if first < 0 or stop > len(block) or numel >= 1 << 62:
            raise ValueError("not a file tapegrad.save wrote: a tensor reaching past its bytes")
    elif not 0 <= offset <= len(block):
        raise ValueError("not a file tapegrad.save wrote: a tensor reaching past its bytes")
    data = np.ndarray(tuple(shape), dtype, buffer=block, offset=offset, strides=tuple(strides))
    if not dtype.isnative:  # (a file from a machine of the other byte order: a copy of its own)
        data = data.astype(dtype.newbyteorder("="))
    elif any(stride == 0 and extent > 1 for extent, stride in zip(shape, strides)):
        data.flags.writeable = False  # an expanded tensor, which refuses changes in place (``expand``)
    return _tensor_of(data, kind)


# The dtypes a view's entry may name, in either byte order, by the string ``dtype.str`` gives.
_VIEW_DTYPES = {dtype.newbyteorder(order).str: dtype.newbyteorder(order) for dtype in _TENSOR_DTYPES for order in "<>"}


def save(obj, f) -> None:
    """Save ``obj`` to ``f`` (a path or a binary file); follows ``torch.save``.

    ``obj`` is a tensor, a state dict, or any nesting (up to 200 deep) of dicts, lists and
    tuples of tensors, numpy arrays, numbers, strings and None: a training checkpoint. A tensor
    saved twice (tied weights) loads as one, and tensors sharing memory (views of one another)
    load sharing it, with their strides; a tensor that requires grad loads as a leaf that does,
    and an ``nn.Parameter`` as one, as with ``torch.load``. Raises ``TypeError`` for anything
    else (a module, a function, an array of objects): it would need a pickle, which tapegrad
    never writes."""
    if isinstance(obj, Tensor) and _tensor_kind(obj) == "tensor" and _alone_as_copy(obj._data):
        guard_reads("tapegrad.save()", obj)
        arrays = {_SINGLE: obj._data}
    else:
        listed: list = []
        tensors: list = []
        tree = _encode(obj, listed, {}, tensors)
        _place_tensors(tensors, listed)
        structure = json.dumps(tree)
        arrays = {str(index): array for index, array in enumerate(listed)}
        arrays[_STRUCTURE] = np.array(structure)
    if isinstance(f, (str, os.PathLike)) and not os.fspath(f).endswith(".npz"):
        with open(f, "wb") as handle:  # keep the caller's file name exactly (numpy would add .npz)
            np.savez(handle, **arrays)
    else:
        np.savez(f, **arrays)


def load(f, map_location=None, pickle_module=None, *, weights_only: bool = True, mmap=None, **pickle_load_args):
    """What ``tapegrad.save`` wrote: a tensor, an ``OrderedDict`` of tensors (a state dict), or
    the checkpoint's dicts, lists, tuples, numbers and strings, with tensors where tensors were
    saved and numpy arrays where arrays were; follows ``torch.load``. Only arrays and JSON are
    ever read (no pickle), so ``weights_only`` is always in effect; ``map_location`` may name the
    CPU (another device raises as ``tapegrad.device`` checks). Raises ``ValueError`` for a
    damaged file."""
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        _device.check(map_location)
    try:
        with np.load(f, allow_pickle=False) as archive:
            if archive.files == [_SINGLE]:
                return _wrap(_tensor_data(archive[_SINGLE], check=False))
            structure = archive[_STRUCTURE] if _STRUCTURE in archive.files else None
            if structure is not None and structure.dtype.kind == "U" and structure.ndim == 0:
                try:
                    tree = json.loads(str(structure))
                except (json.JSONDecodeError, RecursionError):
                    raise ValueError("not a file tapegrad.save wrote: its structure is damaged") from None
                return _decode(tree, archive, {})
            # The first versions' format: a state dict, one array per name.
            state = OrderedDict()
            for name in archive.files:
                data = archive[name]
                if not isinstance(data, np.ndarray):  # a member that is not numpy's (torch.save's zip)
                    raise ValueError(f"not a file tapegrad.save wrote: {name!r} is not an array")
                state[name] = _wrap(_tensor_data(data, check=False))
            return state
    except RecursionError:
        raise ValueError("not a file tapegrad.save wrote: its structure is damaged") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise  # (torch.load's: the file is not there to read)
    except (OSError, EOFError, KeyError) as error:
        raise ValueError(f"not a file tapegrad.save wrote (torch.save's files need torch.load): {error}") from None
