"""Reductions: sum and mean (over everything or over dimensions) and the vector norm."""

from __future__ import annotations

import numpy as np

from . import _dtypes
from ._record import record
from .tensor import Tensor, _normalize_dim


def _dims(x: Tensor, dim) -> tuple:
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    return tuple(sorted({_normalize_dim(int(d), x._data.ndim) for d in dims}))


def _prepared(x: Tensor, dtype, integer_to: _dtypes.dtype | None):
    data = x._data
    if dtype is not None:
        data = data.astype(_dtypes.as_dtype(dtype).numpy)
    elif data.dtype.kind in "biu" and integer_to is not None:
        data = data.astype(integer_to.numpy)
    return data


def _reduce(name: str, x: Tensor, dim, keepdim: bool, data: np.ndarray, mean: bool) -> Tensor:
    if dim is None:
        total = np.asarray(np.add.reduce(data, axis=None, dtype=data.dtype))
        count = data.size
        out = np.asarray(total / count, dtype=data.dtype) if mean else total
        if keepdim:
            out = out.reshape((1,) * data.ndim)
        return record(name, (x,), out, param=1.0 / count if mean and count else 1.0)
    dims = _dims(x, dim)
    count = int(np.prod([data.shape[d] for d in dims], dtype=np.int64))
    out = np.add.reduce(data, axis=dims, keepdims=keepdim, dtype=data.dtype)
    if mean:
        out = out / data.dtype.type(count) if count else out * data.dtype.type(np.nan)
    mask = 0
    for d in dims:
        mask |= 1 << d
    return record(
        name + "_dim",
        (x,),
        np.asarray(out, dtype=data.dtype),
        iparam=mask,
        param=1.0 / count if mean and count else 1.0,
    )


def sum(x: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:  # noqa: A001
    """Sum of all elements, or over ``dim`` (an int or a tuple), like ``torch.sum``."""
    data = _prepared(x, dtype, _dtypes.int64)
    if data is not x._data and x._requires_grad and data.dtype != x._data.dtype:
        x = x.to(_dtypes.from_numpy_dtype(data.dtype))
    return _reduce("sum", x, dim, keepdim, data, mean=False)


def mean(x: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    if dtype is None and x._data.dtype.kind != "f":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
            f"dtype. Got: {x.dtype.name.capitalize().replace('Int64', 'Long')}"
        )
    data = _prepared(x, dtype, None)
    if data is not x._data and x._requires_grad:
        x = x.to(_dtypes.from_numpy_dtype(data.dtype))
    return _reduce("mean", x, dim, keepdim, data, mean=True)


def norm(x: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """The 2-norm of all elements (``x.norm()``); other orders and ``dim`` are not supported yet."""
    if p not in ("fro", 2, 2.0) or dim is not None:
        raise NotImplementedError("norm supports p=2 over all elements so far")
    data = x._data if x._data.dtype.kind == "f" else x._data.astype(np.float32)
    flat = data.reshape(-1)
    out = np.asarray(np.sqrt(np.dot(flat, flat)), dtype=data.dtype)
    if keepdim:
        out = out.reshape((1,) * data.ndim)
    return record("norm", (x,), out, saved=(data,))


def _normalized_exponential(name: str, x: Tensor, dim: int, dtype, log: bool) -> Tensor:
    data = _prepared(x, dtype, _dtypes.float32)
    dim = _normalize_dim(dim, data.ndim)
    if data.ndim == 0:
        out = np.zeros_like(data) if log else np.ones_like(data)
    else:
        shifted = data - data.max(axis=dim, keepdims=True)  # stable: exp never overflows
        total = np.exp(shifted).sum(axis=dim, keepdims=True)
        out = shifted - np.log(total) if log else np.exp(shifted) / total
    return record(name, (x,), np.asarray(out, dtype=data.dtype), iparam=dim)


def log_softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """x - log(sum(exp(x))) along ``dim`` (``LogSoftmaxBackward0``)."""
    return _normalized_exponential("log_softmax", x, dim, dtype, log=True)


def softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (``SoftmaxBackward0``)."""
    return _normalized_exponential("softmax", x, dim, dtype, log=False)
