"""``tapegrad.save`` / ``tapegrad.load``: tensors, state dicts and checkpoints in numpy's ``.npz``
format.

Unlike ``torch.save`` this never pickles arbitrary objects, so loading a file cannot run code: a
checkpoint (``{"epoch": 3, "model": model.state_dict(), "optimizer": optimizer.state_dict()}``)
is its arrays plus a JSON description of the containers and numbers around them, as much as
``torch.load(weights_only=True)`` accepts.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict

import numpy as np

from . import _device, _dtypes
from .nn.modules import Parameter
from .tensor import Tensor, _wrap, guard_reads

_SINGLE = "__tensor__"
_TENSOR_DTYPES = {d.numpy for d in _dtypes.ALL}
_STRUCTURE = "__structure__"


def _encode(value, arrays: list, seen: dict, depth: int = 0):
    """A JSON description of ``value``; its tensors and arrays appended to ``arrays``, each once
    (``seen``: by identity, so that tied weights stay one tensor, as ``torch.load`` keeps them)."""
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
            seen[key] = (len(arrays), value)  # (the value held: its id stays its own)
            arrays.append(data)
        return {kind: seen[key][0]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    if isinstance(value, (list, tuple)):  # subclasses (a Size, a namedtuple) as plain ones
        return {"tuple" if isinstance(value, tuple) else "list": [_encode(v, arrays, seen, depth + 1) for v in value]}
    if isinstance(value, dict):
        items = [[_encode(k, arrays, seen, depth + 1), _encode(v, arrays, seen, depth + 1)] for k, v in value.items()]
        return {"ordered" if isinstance(value, OrderedDict) else "dict": items}
    raise TypeError(
        f"cannot save {type(value).__name__}: tapegrad.save writes tensors, arrays, numbers, strings and None, "
        "in dicts, lists and tuples (never a pickle, so that loading cannot run code)"
    )


_DEPTH = 200  # containers nested deeper are refused on save and reported damaged on load

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


def save(obj, f) -> None:
    """Save ``obj`` to ``f`` (a path or a binary file); follows ``torch.save``.

    ``obj`` is a tensor, a state dict, or any nesting (up to 200 deep) of dicts, lists and
    tuples of tensors, numpy arrays, numbers, strings and None: a training checkpoint. A tensor
    saved twice (tied weights) loads as one; a tensor that requires grad loads as a leaf that
    does, and an ``nn.Parameter`` as one, as with ``torch.load``. Raises ``TypeError`` for anything else (a module, a
    function, an array of objects): it would need a pickle, which tapegrad never writes."""
    if isinstance(obj, Tensor) and _tensor_kind(obj) == "tensor":
        guard_reads("tapegrad.save()", obj)
        arrays = {_SINGLE: obj._data}
    else:
        listed: list = []
        structure = json.dumps(_encode(obj, listed, {}))
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
