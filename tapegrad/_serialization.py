"""``tapegrad.save`` / ``tapegrad.load``: tensors and state dicts in numpy's ``.npz`` format.

Unlike ``torch.save`` this never pickles arbitrary objects, so loading a file cannot run code.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

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
    if isinstance(f, str) and not f.endswith(".npz"):
        with open(f, "wb") as handle:  # keep the caller's file name exactly
            np.savez(handle, **arrays)
    else:
        np.savez(f, **arrays)


def load(f):
    """The tensor or ``OrderedDict`` of tensors written by ``tapegrad.save``."""
    with np.load(f, allow_pickle=False) as archive:
        if archive.files == [_SINGLE]:
            return _wrap(archive[_SINGLE].copy())
        return OrderedDict((name, _wrap(archive[name].copy())) for name in archive.files)
