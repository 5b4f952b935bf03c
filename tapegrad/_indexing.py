"""Picking rows by integer indices: ``x[index_tensor]``, ``x[mask]`` and ``embedding``.

The indices are data of the row (kept in the tape's aux table), not an input: a gradient flows to
the rows picked, scatter-added, so a repeated index accumulates.
"""

from __future__ import annotations

import numpy as np

from ._record import _input_row, _opcode, _target
from .tensor import Tensor, _guard, _recorded, _wrap


def gather_rows(name: str, x: Tensor, indices) -> Tensor:
    """Rows ``indices`` (any shape) of ``x`` along its first dimension."""
    if isinstance(indices, Tensor):
        _guard(indices, "indexing")  # inside tapegrad.record, computed indices are frozen: guard them
        indices = indices._data
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    extent = x._data.shape[0] if x._data.ndim else 0
    if indices.size and (indices.max() >= extent or indices.min() < -extent):
        bad = indices.max() if indices.max() >= extent else indices.min()
        if name == "embedding":
            raise IndexError("index out of range in self")
        raise IndexError(f"index {bad} is out of bounds for dimension 0 with size {extent}")
    indices = np.where(indices < 0, indices + extent, indices).astype(np.int64)
    out = x._data[indices]
    tape, requires = _target((x,))
    if tape is None:
        return _wrap(out)
    row_x = _input_row(tape, x)
    aux = tape.add_aux((indices.size, *indices.reshape(-1).tolist()))
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
