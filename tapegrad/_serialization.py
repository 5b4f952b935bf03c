"""``tapegrad.save`` / ``tapegrad.load``: tensors and state dicts in numpy's ``.npz`` format.

Unlike ``torch.save`` this never pickles arbitrary objects, so loading a file cannot run code.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from . import _device
from .tensor import Tensor, _wrap

_SINGLE = "__tensor__"


def save(obj, f) -> None:
    """Save a tensor, or a mapping of names to tensors/arrays (a ``state_dict``)."""
    if isinstance(obj, Tensor):
        arrays = {_SINGLE: obj._data}
    elif isinstance(obj, dict):
        arrays = {}
        for name, value in obj.items():
            if not isinstance(name, str) or name == _SINGLE:
                raise TypeError(f"state dict keys must be strings, got {name!r}")
            arrays[name] = value._data if isinstance(value, Tensor) else np.asarray(value)
            if arrays[name].dtype == object:
                raise TypeError(f"cannot save {type(value).__name__} under {name!r}: only tensors and arrays")
    else:
        raise TypeError(f"tapegrad.save takes a Tensor or a dict of tensors, got {type(obj).__name__}")
    if isinstance(f, (str, os.PathLike)) and not os.fspath(f).endswith(".npz"):
        with open(f, "wb") as handle:  # keep the caller's file name exactly (numpy would add .npz)
            np.savez(handle, **arrays)
    else:
        np.savez(f, **arrays)


def load(f, map_location=None, pickle_module=None, *, weights_only: bool = True, mmap=None, **pickle_load_args):
    """The tensor or ``OrderedDict`` of tensors written by ``tapegrad.save``; follows
    ``torch.load``. Only arrays are ever read (no pickle), so ``weights_only`` is always in
    effect; ``map_location`` may name the CPU (another device raises as ``tapegrad.device``
    checks)."""
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        _device.check(map_location)
    with np.load(f, allow_pickle=False) as archive:
        if archive.files == [_SINGLE]:
            return _wrap(archive[_SINGLE].copy())
        return OrderedDict((name, _wrap(archive[name].copy())) for name in archive.files)
