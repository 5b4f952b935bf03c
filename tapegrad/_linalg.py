"""Matrix products. ``matmul`` follows torch.matmul's cases; each records dot, mv, mm or bmm
(the rows whose backward calls BLAS), plus the views PyTorch itself inserts."""

from __future__ import annotations

import numpy as np

from . import _dtypes
from ._record import broadcast_error, record
from ._views import expand, reshape, squeeze, unsqueeze
from .tensor import Tensor, as_tensor

_TYPE_NAMES = {"float32": "float", "float64": "double", "int64": "long", "int32": "int", "bool": "bool"}


def _check_same_dtype(a: Tensor, b: Tensor) -> None:
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(
            f"expected m1 and m2 to have the same dtype, but got: "
            f"{_TYPE_NAMES[a.dtype.name]} != {_TYPE_NAMES[b.dtype.name]}"
        )


def _mm(a: Tensor, b: Tensor) -> Tensor:
    (m, k), (k2, n) = a._data.shape, b._data.shape
    if k != k2:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({m}x{k} and {k2}x{n})")
    out = np.matmul(a._data, b._data)
    return record("mm", (a, b), out, saved=(a._data, b._data))


def matmul(a: Tensor, b) -> Tensor:
    """``a @ b`` with PyTorch's rules for 1-D, 2-D and batched (broadcast) operands."""
    b = as_tensor(b)
    if a._data.ndim == 0 or b._data.ndim == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {a._data.ndim}D and {b._data.ndim}D"
        )
    _check_same_dtype(a, b)
    ndim_a, ndim_b = a._data.ndim, b._data.ndim
    if ndim_a == 1 and ndim_b == 1:
        if a._data.shape != b._data.shape:
            n_a, n_b = a._data.shape[0], b._data.shape[0]
            raise RuntimeError(
                f"inconsistent tensor size, expected tensor [{n_a}] and src [{n_b}] to have the same number of "
                f"elements, but got {n_a} and {n_b} elements respectively"
            )
        return record("dot", (a, b), np.asarray(np.dot(a._data, b._data)), saved=(a._data, b._data))
    if ndim_a == 2 and ndim_b == 1:
        (m, k), (n,) = a._data.shape, b._data.shape
        if k != n:
            raise RuntimeError(f"size mismatch, got input ({m}), mat ({m}x{k}), vec ({n})")
        return record("mv", (a, b), np.matmul(a._data, b._data), saved=(a._data, b._data))
    if ndim_a == 1 and ndim_b == 2:
        return reshape(_mm(unsqueeze(a, 0), b), (b._data.shape[1],), "squeeze_matmul")
    if ndim_a == 2 and ndim_b == 2:
        return _mm(a, b)
    return _batched(a, b)


def _batched(a: Tensor, b: Tensor) -> Tensor:
    squeeze_last = b._data.ndim == 1
    squeeze_first = a._data.ndim == 1
    if squeeze_last:
        b = unsqueeze(b, -1)
    if squeeze_first:
        a = unsqueeze(a, 0)
    (m, k), (k2, n) = a._data.shape[-2:], b._data.shape[-2:]
    if k != k2:
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: [{b._data.shape[0] if b._data.ndim > 2 else 1}, {k}] "
            f"but got: [{b._data.shape[0] if b._data.ndim > 2 else 1}, {k2}]."
        )
    try:
        batch = np.broadcast_shapes(a._data.shape[:-2], b._data.shape[:-2])
    except ValueError:
        raise broadcast_error(a._data.shape[:-2], b._data.shape[:-2]) from None
    count = int(np.prod(batch, dtype=np.int64))
    a3 = _as_batch(a, batch + (m, k), (count, m, k))
    b3 = _as_batch(b, batch + (k, n), (count, k, n))
    out3 = np.matmul(a3._data, b3._data)
    result = record("bmm", (a3, b3), out3, saved=(a3._data, b3._data))
    result = reshape(result, batch + (m, n), "unsafe_view")
    if squeeze_last:
        result = squeeze(result, -1)
    if squeeze_first:
        result = squeeze(result, -2)
    return result


def _as_batch(x: Tensor, full_shape: tuple, batch_shape: tuple) -> Tensor:
    if x._data.shape != full_shape:
        x = expand(x, full_shape, "broadcast")
    if not x._data.flags.c_contiguous:
        x = x.contiguous()
    return reshape(x, batch_shape, "matmul_view")


def mm(a: Tensor, b: Tensor) -> Tensor:
    _check_same_dtype(a, b)
    return _mm(a, b)


def dot(a: Tensor, b: Tensor) -> Tensor:
    if a._data.ndim != 1 or b._data.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a._data.ndim}D and {b._data.ndim}D tensors")
    return matmul(a, b)


__all__ = ["matmul", "mm", "dot", "_dtypes"]
