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

from . import _device
from .tensor import Tensor, _wrap

_SINGLE = "__tensor__"
_STRUCTURE = "__structure__"


def _flat_state(obj) -> bool:
    """A mapping of names to tensors or arrays: stored as one array per name (the format of
    the first versions, which every version reads)."""
    return isinstance(obj, dict) and all(
        isinstance(name, str) and name not in (_SINGLE, _STRUCTURE) and isinstance(value, (Tensor, np.ndarray))
        for name, value in obj.items()
    )


def _encode(value, arrays: list):
    """A JSON description of ``value``; its tensors and arrays appended to ``arrays``."""
    if isinstance(value, (Tensor, np.ndarray, np.generic)):
        data = value._data if isinstance(value, Tensor) else np.asarray(value)
        if data.dtype == object:
            raise TypeError("cannot save an array of Python objects: tapegrad.save writes no pickle")
        arrays.append(data)
        kind = "tensor" if isinstance(value, Tensor) else "scalar" if isinstance(value, np.generic) else "array"
        return {kind: len(arrays) - 1}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [_encode(item, arrays) for item in value]}
    if isinstance(value, dict):
        items = [[_encode(key, arrays), _encode(item, arrays)] for key, item in value.items()]
        return {"ordered" if isinstance(value, OrderedDict) else "dict": items}
    raise TypeError(
        f"cannot save {type(value).__name__}: tapegrad.save writes tensors, arrays, numbers, strings and None, "
        "in dicts, lists and tuples (never a pickle, so that loading cannot run code)"
    )


def _decode(node, archive):
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError("not a file tapegrad.save wrote: its structure is damaged")
    ((kind, content),) = node.items()
    if kind in ("tensor", "array", "scalar"):
        name = str(content)
        if name not in archive.files:
            raise ValueError("not a file tapegrad.save wrote: it names an array it does not hold")
        data = archive[name].copy()
        return _wrap(data) if kind == "tensor" else data if kind == "array" else data[()]
    if kind == "value":
        return content
    if kind in ("list", "tuple"):
        items = [_decode(item, archive) for item in content]
        return items if kind == "list" else tuple(items)
    if kind in ("dict", "ordered"):
        pairs = ((_decode(key, archive), _decode(item, archive)) for key, item in content)
        return OrderedDict(pairs) if kind == "ordered" else dict(pairs)
    raise ValueError(f"not a file tapegrad.save wrote: unknown entry {kind!r}")


def save(obj, f) -> None:
    """Save ``obj`` to ``f`` (a path or a binary file); follows ``torch.save``.

    ``obj`` is a tensor, a state dict, or any nesting of dicts, lists and tuples of tensors,
    numpy arrays, numbers, strings and None (a training checkpoint). Raises ``TypeError`` for
    anything else (a module, a function): it would need a pickle, which tapegrad never writes."""
    if isinstance(obj, Tensor):
        arrays = {_SINGLE: obj._data}
    elif _flat_state(obj):
        arrays = {name: value._data if isinstance(value, Tensor) else value for name, value in obj.items()}
        if any(array.dtype == object for array in arrays.values()):
            raise TypeError("cannot save an array of Python objects: tapegrad.save writes no pickle")
    else:
        listed: list = []
        structure = json.dumps(_encode(obj, listed))
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
    with np.load(f, allow_pickle=False) as archive:
        if archive.files == [_SINGLE]:
            return _wrap(archive[_SINGLE].copy())
        if _STRUCTURE in archive.files:
            try:
                structure = json.loads(str(archive[_STRUCTURE]))
            except json.JSONDecodeError:
                raise ValueError("not a file tapegrad.save wrote: its structure is damaged") from None
            return _decode(structure, archive)
        return OrderedDict((name, _wrap(archive[name].copy())) for name in archive.files)
