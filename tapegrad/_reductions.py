"""Reductions: sum and mean (over everything or over dimensions), norms, products, variances,
logsumexp, cumulative sums, and max/min with their indices.

Apart from sum and mean, a row reduces along one dimension (its integer slot; -1: all elements).
A reduction over several dimensions first moves them to the end and merges them into one with a
view, so gradients still flow by the view rule."""

from __future__ import annotations

import math
import warnings
from contextlib import nullcontext

import numpy as np

from . import _dtypes, return_types
from ._grad_mode import state as _grad_state
from ._kernels import load as load_kernels
from ._ops import BY_NAME, OPCODE
from ._record import _bypass, _input_row, _opcode, _target, _transposed_source, c_ordered, name_node, transposed
from ._record import record as _record_op
from ._tape import NO_GRAD, exclusive
from .tensor import Tensor, _guard, _normalize_dim, _recorded, _wrap, install, on_tape


def record(name: str, inputs: tuple, out: np.ndarray, **slots) -> Tensor:
    """Record a reduction with a C-contiguous result, as PyTorch's are (numpy keeps a transposed
    input's memory order, and ``contiguous()`` would then copy where PyTorch does not)."""
    return _record_op(name, inputs, _c_order(out), **slots)


def _c_order(out: np.ndarray) -> np.ndarray:
    return out if out.flags.c_contiguous else np.array(out, order="C")


def _dims(x: Tensor, dim) -> tuple:
    if type(dim) is int:  # the common case, without the list and the sort (2-3 us)
        ndim = x._data.ndim
        if -ndim <= dim < ndim:
            return (dim % ndim,)
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    return unique_dims([_normalize_dim(int(d), x._data.ndim) for d in dims])


def unique_dims(dims: list) -> tuple:
    """Sorted, with PyTorch's error for a dimension listed twice."""
    for k, d in enumerate(dims):
        if d in dims[:k]:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    return tuple(sorted(dims))


def _prepared(x: Tensor, dtype, integer_to: _dtypes.dtype | None):
    data = x._data
    if dtype is not None:
        data = data.astype(_dtypes.as_dtype(dtype).numpy)
    elif data.dtype.kind in "biu" and integer_to is not None:
        data = data.astype(integer_to.numpy)
    return data


def _as_operand(x: Tensor, data: np.ndarray) -> Tensor:
    """The reduction's operand for ``data``, ``x`` cast to another dtype: a recorded cast when
    ``x`` is on a tape (differentiable, or any value inside ``tapegrad.record``), else a tensor
    of ``data``. The row must have the dtype the reduction reads: a float32 sum recorded
    straight on an integer row (which the replay keeps in float64) read the other arena at its
    offset, garbage, and past the arena's end for a large row."""
    if on_tape(x):
        return x.to(_dtypes.from_numpy_dtype(data.dtype))
    return _wrap(data)


def _numpy_aliases(dim, keepdim: bool, axis, keepdims) -> tuple:
    """numpy's spellings ``axis=`` and ``keepdims=``, which PyTorch accepts too."""
    return (dim if axis is None else axis), (keepdim if keepdims is None else keepdims)


# From this size a float32 sum or mean of every element, or over the last dimension, is summed by
# a compiled loop, in float64 in any order (vectorized): 512x1024 elements in 38 us, where numpy's
# pairwise float32 sum took 84-110 us (0.9 us against 1.9 at 4,096; by rows, 44 against 109).
# Its error is below numpy's, and a total beyond float32's range still comes out inf; a total
# within it is exact even where float32 partial sums overflow (numpy's and PyTorch's give NaN
# there). Not float64: there the lanes' running sums (of a sixteenth of the elements each) lose
# more digits than numpy's pairwise sum.
COMPILED_TOTAL_SIZE = 1 << 12


def _sums_compiled(data: np.ndarray) -> bool:
    """Whether ``data``'s sums take the compiled float64 loop (``COMPILED_TOTAL_SIZE``)."""
    return data.size >= COMPILED_TOTAL_SIZE and data.dtype == np.float32 and data.flags.c_contiguous


def _reduce(name: str, x: Tensor, dim, keepdim: bool, data: np.ndarray, mean: bool) -> Tensor:
    if isinstance(dim, (tuple, list)) and not dim:  # dim=[] or (): every dimension, as PyTorch
        dim = None
    if x._base is not None and data is x._data and on_tape(x):
        source = _transposed_source(x)
        if source is not None:  # a sum of a transpose: of its source (numpy's bits, both orders)
            if dim is None:
                result = _reduce(name, source, None, keepdim, source._data, mean)
                _bypass(x, reader=result)
                return result
            dims = tuple(1 - d for d in _dims(x, dim))
            result = _reduce(name, source, dims, keepdim, source._data, mean)
            _bypass(x, reader=result)
            if keepdim and len(dims) == 1:  # (1, n) of the source is (n, 1) of the transpose
                return transposed(result, BY_NAME[name + "_dim"].grad_fn)
            return result
    if dim is None:
        # (a transposed result, F-ordered, too: the elements in memory order, which the float64
        # accumulation rounds to the float32 a C-ordered walk gives)
        if _sums_compiled(data) or (_sums_compiled(data.T) and data.ndim == 2):
            total = np.asarray(load_kernels("normalization").total(data.reshape(-1, order="A")), dtype=data.dtype)
        else:
            total = np.asarray(np.add.reduce(data, axis=None, dtype=data.dtype))
        count = data.size
        out = np.asarray(total / count, dtype=data.dtype) if mean else total
        if keepdim:
            out = out.reshape((1,) * data.ndim)
        return record(name, (x,), out, param=(1.0 / count if count else float("nan")) if mean else 1.0)
    dims = _dims(x, dim)
    if data.ndim == 0:  # dim 0 or -1 of a 0-d tensor: the element itself, as PyTorch allows
        return record(name + "_dim", (x,), data.copy(), iparam=0, param=1.0)
    count = math.prod(data.shape[d] for d in dims)  # np.prod of a list took 5 us
    if dims == (data.ndim - 1,) and _sums_compiled(data):  # each row's sum, as a sum of every element
        out = np.empty(data.shape[:-1] + ((1,) if keepdim else ()), data.dtype)
        load_kernels("normalization").row_totals(data.reshape(-1), data.shape[-1], out.reshape(-1))
    elif data.dtype == np.float32 and dims != (data.ndim - 1,):
        # numpy's pairwise sum runs along the last dimension only; over others it adds row after
        # row in float32, 10-100x PyTorch's error at a batch's size: in float64 instead.
        if dims == tuple(range(len(dims))) and data.flags.c_contiguous:  # the leading ones
            width = data.size // count if count else 0
            out = np.empty(data.shape[len(dims) :], data.dtype)
            if width and count:
                load_kernels("normalization").column_totals(data.reshape(-1), width, out.reshape(-1))
            else:
                out[...] = 0
            if keepdim:
                out = out.reshape((1,) * len(dims) + out.shape)
        else:
            out = np.add.reduce(data, axis=dims, keepdims=keepdim, dtype=np.float64).astype(data.dtype)
    else:
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
        param=(1.0 / count if count else float("nan")) if mean else 1.0,
    )


def sum(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None, axis=None, keepdims=None) -> Tensor:  # noqa: A001
    """Sum of all elements, or over ``dim`` (an int or a tuple), like ``torch.sum``."""
    dim, keepdim = _numpy_aliases(dim, keepdim, axis, keepdims)
    data = _prepared(x, dtype, _dtypes.int64)
    if data is not x._data and data.dtype != x._data.dtype:
        x = _as_operand(x, data)
    return _reduce("sum", x, dim, keepdim, data, mean=False)


def mean(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None, axis=None, keepdims=None) -> Tensor:
    dim, keepdim = _numpy_aliases(dim, keepdim, axis, keepdims)
    if dtype is None and x._data.dtype.kind != "f":
        raise RuntimeError(
            "mean(): could not infer output dtype. Input dtype must be either a floating point or complex "
            f"dtype. Got: {x.dtype.name.capitalize().replace('Int64', 'Long')}"
        )
    data = _prepared(x, dtype, None)
    if data is not x._data:
        x = _as_operand(x, data)
    return _reduce("mean", x, dim, keepdim, data, mean=True)


def _float_data(x: Tensor) -> np.ndarray:
    return x._data if x._data.dtype.kind == "f" else x._data.astype(_dtypes.DEFAULT_FLOAT.numpy)


def _along_one(x: Tensor, dim, keepdim: bool, reduce) -> Tensor:
    """``reduce(tensor, dim, shape)`` where ``dim`` is one dimension or -1 (all) and ``shape`` the
    result's, for ``dim`` given as None, an int, or a tuple (merged into one trailing dimension
    by a view first)."""
    shape = x._data.shape
    ndim = len(shape)
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        return reduce(x, -1, (1,) * ndim if keepdim else ())
    if isinstance(dim, (int, np.integer)):
        d = _normalize_dim(int(dim), ndim)
        if not ndim:
            return reduce(x, -1, ())
        return reduce(x, d, shape[:d] + ((1,) if keepdim else ()) + shape[d + 1 :])
    dims = _dims(x, dim)
    if len(dims) == 1:
        return _along_one(x, dims[0], keepdim, reduce)
    kept = [d for d in range(ndim) if d not in dims]
    # (the merged extent spelled out: -1 is ambiguous where a kept dimension is empty)
    merged = x.permute(*kept, *dims).reshape(*[shape[d] for d in kept], math.prod(shape[d] for d in dims))
    # The row only needs the result's element count, so keepdim's shape costs no extra view.
    if keepdim:
        return reduce(merged, len(kept), tuple(1 if d in dims else shape[d] for d in range(ndim)))
    return reduce(merged, len(kept), tuple(shape[d] for d in kept))


def _axis(dim: int):
    return None if dim < 0 else dim


def norm(x: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """The vector p-norm of all elements or along ``dim`` (``LinalgVectorNormBackward0``):
    p = 2 ("fro"), 1, inf, 0, any positive number, or a negative one (``_negative_norm``).
    ``dtype``: ``x`` is cast to it first (a recorded cast, so the gradient comes back in ``x``'s
    dtype), as PyTorch computes in it."""
    if x._data.dtype.kind != "f":  # (numpy took it in float64, where PyTorch refuses, dtype or not)
        raise RuntimeError(
            f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got {x.dtype.type_name}"
        )
    if p == "fro":
        p = 2.0
    if isinstance(p, str):
        raise NotImplementedError(f"norm with p={p!r} is not supported yet (p must be 'fro' or a number)")
    p = float(p)
    if p < 0:
        return _negative_norm(x, p, dim, keepdim, dtype)
    if p == math.inf and x._data.size == 0:
        _check_inf_norm_of_nothing(x, dim)
    if dtype is not None:
        x = _norm_operand(x, _dtypes.as_dtype(dtype))
    return _along_one(x, dim, keepdim, lambda t, d, shape: _norm(t, p, d, shape))


def _negative_norm(x: Tensor, p: float, dim, keepdim: bool, dtype) -> Tensor:
    """A norm of negative order, as PyTorch's: ``(sum |x|^p)^(1/p)``, 0 where an element is 0; for
    -inf the smallest magnitude. Composed of recorded ops (its gradient theirs: PyTorch's formula
    ``x |x|^(p-2) / norm^(p-1)`` away from zeros)."""
    from ._selection import where  # (as below: the selection ops are built on these)

    if p == -math.inf and x._data.size == 0:
        _check_inf_norm_of_nothing(x, dim)
    if dtype is not None:
        x = _norm_operand(x, _dtypes.as_dtype(dtype))

    def reduce(t: Tensor, d: int, shape: tuple) -> Tensor:
        magnitudes = t.abs()
        if p == -math.inf:
            smallest = magnitudes.amin() if d == -1 else magnitudes.amin(d)
            return smallest.reshape(shape)
        # An element 0 makes the norm 0 and, as PyTorch's, passes no gradient: its |x|^p is
        # taken of 1 instead (inf there made the gradient NaN)
        zero = magnitudes == 0
        powers = where(zero, 1.0, magnitudes) ** p
        total, some_zero = (powers.sum(), zero.any()) if d == -1 else (powers.sum(d), zero.any(d))
        return where(some_zero, 0.0, total ** (1.0 / p)).reshape(shape)

    return name_node(_along_one(x, dim, keepdim, reduce), "LinalgVectorNormBackward0")


def _check_inf_norm_of_nothing(x: Tensor, dim) -> None:
    """PyTorch's errors for the inf norm (a max) of no elements, which has no value."""
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        raise RuntimeError(
            "linalg.vector_norm cannot compute the inf norm on an empty tensor because the operation does not "
            "have an identity"
        )
    for d in (dim,) if isinstance(dim, int) else dim:
        if x._data.shape[_normalize_dim(d, x._data.ndim)] == 0:
            raise RuntimeError(
                f"linalg.vector_norm cannot compute the inf norm on the dimension {d}because this dimension is "
                "empty and the operation does not have an identity"
            )


def _norm_operand(x: Tensor, dtype: _dtypes.dtype) -> Tensor:
    """``x`` cast to a norm's ``dtype=``, with PyTorch's checks (``linalg.vector_norm``'s
    messages, which ``torch.norm`` raises too)."""
    if x._data.dtype.kind != "f":
        raise RuntimeError(
            f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got {x.dtype.type_name}"
        )
    if not dtype.is_floating_point:
        raise RuntimeError(f"linalg.vector_norm: dtype should be floating point or complex, but got {dtype.type_name}")
    if dtype.itemsize < x.dtype.itemsize:
        raise RuntimeError(
            f"linalg.vector_norm: the dtype of the input ({x.dtype.type_name}) should be convertible "
            f"without narrowing to the specified dtype ({dtype.type_name})"
        )
    return x.to(dtype)


def _norm(x: Tensor, p: float, dim: int, shape: tuple) -> Tensor:
    data = _float_data(x)
    flat = data.reshape(-1) if dim < 0 else data
    axis = 0 if dim < 0 else dim
    if p == 2.0:
        out = np.sqrt(np.dot(flat, flat)) if dim < 0 else np.sqrt(np.sum(flat * flat, axis=axis))
    elif p == np.inf:
        out = np.abs(flat).max(axis=axis, initial=0)
    elif p == 0.0:
        out = np.count_nonzero(flat, axis=axis)
    elif p == 1.0:
        out = np.abs(flat).sum(axis=axis)
    else:
        out = (np.abs(flat) ** p).sum(axis=axis) ** (1.0 / p)
    out = np.asarray(out, dtype=data.dtype).reshape(shape)
    return record("norm", (x,), out, saved=(data,), iparam=dim, param=p)


def prod(x: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Product of all elements (``ProdBackward0``) or along one ``dim`` (``ProdBackward1``)."""
    data = _prepared(x, dtype, _dtypes.int64)
    if data is not x._data and data.dtype != x._data.dtype:
        x = _as_operand(x, data)

    def reduce(t, d, shape):
        out = np.asarray(np.prod(t._data.astype(data.dtype, copy=False), axis=_axis(d)), dtype=data.dtype).reshape(
            shape
        )
        name = "prod" if dim is None else "prod_dim"  # a dim of a 0-d tensor is still ProdBackward1
        return record(name, (t,), out, saved=(t._data,), iparam=d)

    if dim is None:
        return _along_one(x, None, keepdim, reduce)
    return _along_one(x, int(dim), keepdim, reduce)


def logsumexp(x: Tensor, dim, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) along ``dim`` (an int or tuple), computed without overflow."""

    def reduce(t, d, shape):
        data = _float_data(t)
        largest = np.max(data, axis=_axis(d), keepdims=True) if data.size else np.zeros((1,) * data.ndim, data.dtype)
        largest = np.where(np.isinf(largest), 0, largest)
        # float32 summed in float64 along any but the last dimension (numpy's pairwise sum runs
        # along that one only: over 10^6 rows the float32 total was 6e-3 off)
        wide = data.dtype == np.float32 and d != -1 and d != data.ndim - 1
        total = np.sum(np.exp(data - largest), axis=_axis(d), keepdims=True, dtype=np.float64 if wide else None)
        out = np.log(total).astype(data.dtype) + largest
        out = out.reshape(shape)
        return record("logsumexp", (t,), np.asarray(out, dtype=data.dtype), saved=(data,), iparam=d)

    return _along_one(x, dim, keepdim, reduce)


def _correction(unbiased, correction) -> float:
    if correction is not None:
        return float(correction)
    return 1.0 if unbiased is None or unbiased else 0.0


def var(
    x: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None, axis=None, keepdims=None
) -> Tensor:
    """Variance (``VarBackward0``) with Bessel's correction unless ``correction``/``unbiased`` say
    otherwise; ``x.var(False)`` is the legacy spelling of ``unbiased=False``."""
    dim, keepdim = _numpy_aliases(dim, keepdim, axis, keepdims)
    return _spread("var", x, dim, unbiased, keepdim, correction)


def std(
    x: Tensor, dim=None, unbiased=None, keepdim: bool = False, *, correction=None, axis=None, keepdims=None
) -> Tensor:
    """Standard deviation (``StdBackward0``); arguments as ``var``."""
    dim, keepdim = _numpy_aliases(dim, keepdim, axis, keepdims)
    return _spread("std", x, dim, unbiased, keepdim, correction)


def _spread(name: str, x: Tensor, dim, unbiased, keepdim: bool, correction) -> Tensor:
    if x._data.dtype.kind != "f":
        raise RuntimeError("std and var only support floating point and complex dtypes")
    if isinstance(dim, bool):  # x.var(False): the legacy unbiased flag in dim's place
        dim, unbiased = None, dim
    ddof = _correction(unbiased, correction)

    def reduce(t, d, shape):
        data = _float_data(t)
        none_left = (data.size if d < 0 else data.shape[d]) - ddof <= 0
        if none_left:  # PyTorch's warning, in the caller's line (numpy's pointed inside numpy)
            warnings.warn(
                f"{name}(): degrees of freedom is <= 0. Correction should be strictly less than the reduction "
                "factor (input numel divided by output numel).",
                UserWarning,
                stacklevel=5,
            )
        quiet = warnings.catch_warnings(action="ignore", category=RuntimeWarning) if none_left else nullcontext()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"), quiet:
            # float32 in float64, PyTorch's accumulation type: its squares reach float32's
            # overflow from values of 2e19, where the standard deviation is still finite.
            wide = np.float64 if data.dtype == np.float32 else None
            out = np.var(data, axis=_axis(d), ddof=ddof, dtype=wide)
            if data.size:  # equal values: exactly 0, as PyTorch (the mean's rounding gives ~1e-17)
                out = np.where(np.ptp(data, axis=_axis(d)) == 0, out * 0, out)
            if name == "std":
                out = np.sqrt(out)
        out = np.asarray(out, dtype=data.dtype).reshape(shape)
        return record(name, (t,), out, saved=(data,), iparam=d, param=ddof)

    return _along_one(x, dim, keepdim, reduce)


def cumsum(x: Tensor, dim: int, *, dtype=None) -> Tensor:
    """Running sums along ``dim`` (``CumsumBackward0``)."""
    data = _prepared(x, dtype, _dtypes.int64)
    if data is not x._data and data.dtype != x._data.dtype:
        x = _as_operand(x, data)  # a row of the dtype the running sums read, as sum's
    dim = _normalize_dim(dim, data.ndim)
    # float32 summed in float64, as PyTorch's CPU kernel (its accumulation type), and the kernels
    total_dtype = np.float64 if data.dtype == np.float32 else data.dtype
    out = np.cumsum(data, axis=dim if data.ndim else None, dtype=total_dtype).astype(data.dtype, copy=False)
    return record("cumsum", (x,), out.reshape(data.shape), iparam=dim)


# max/min along a dimension return both, like PyTorch's torch.return_types.max.
MaxResult, MinResult = return_types.max, return_types.min


def _extreme(x: Tensor, dim, keepdim: bool, largest: bool, name: str):
    """max/min/amax/amin. Weights (saved, and recomputed by a replay) send the gradient to the
    first extreme for max/min along a dimension, and share it among ties otherwise."""
    _check_not_empty(name.removesuffix("_dim"), x, dim)
    first = name in ("max_dim", "min_dim")
    # max() and min() of all elements share a NaN extreme's gradient among the NaNs (PyTorch's
    # evenly_distribute_backward); amax and amin give NaN everywhere, as PyTorch's do.
    nans_share = name in ("max", "min")
    sign = 1 if largest else -1

    def reduce(t, d, shape):
        values = t._data
        flat = values.reshape(-1) if d < 0 else values
        axis = 0 if d < 0 else d
        best = flat.max(axis=axis) if largest else flat.min(axis=axis)
        out = np.asarray(best, dtype=values.dtype).reshape(shape)
        mode = sign * (2 if first else 3 if nans_share else 1)
        return _record_extreme(name, t, out, d, mode, lambda: _weights(flat, axis, largest, first, nans_share))

    return _along_one(x, dim, keepdim, reduce)


def _check_not_empty(label: str, x: Tensor, dim) -> None:
    """PyTorch's errors for max/min/argmax of nothing."""
    shape = x._data.shape
    everything = dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0)
    if everything and x._data.size == 0:
        message = f"{label}(): Expected reduction dim to be specified for input.numel() == 0."
        if label.startswith("arg"):
            raise IndexError(message)
        raise RuntimeError(message + " Specify the reduction dim with the 'dim' argument.")
    for d in () if everything else _dims(x, dim):
        if shape and shape[d] == 0:
            raise IndexError(f"{label}(): Expected reduction dim {d} to have non-zero size.")


def _weights(flat: np.ndarray, axis: int, largest: bool, first: bool, nans_share: bool = False) -> np.ndarray:
    """Where the gradient of each group's extreme goes: all to the first extreme (``first``), or
    shared by ties; a NaN extreme shares it among the NaNs (``nans_share``) or makes it NaN."""
    dtype = flat.dtype if flat.dtype.kind == "f" else np.dtype(np.float64)
    if flat.ndim == 0:
        return np.ones((), dtype)
    if first:
        index = np.argmax(flat, axis=axis) if largest else np.argmin(flat, axis=axis)
        weights = np.zeros(flat.shape, dtype)
        np.put_along_axis(weights, np.expand_dims(index, axis), 1, axis=axis)
        return weights
    best = flat.max(axis=axis, keepdims=True) if largest else flat.min(axis=axis, keepdims=True)
    chosen = flat == best
    if nans_share:
        chosen = np.where(np.isnan(best), np.isnan(flat), chosen)
    chosen = chosen.astype(dtype)
    with np.errstate(invalid="ignore", divide="ignore"):  # a NaN extreme: no ties, NaN weights, as PyTorch
        return chosen / chosen.sum(axis=axis, keepdims=True)


@exclusive
def _record_extreme(name: str, x: Tensor, out: np.ndarray, dim: int, mode: int, weights_of) -> Tensor:
    """``weights_of()`` computes the weights row's values, only when a row is recorded (an
    evaluation's ``max`` needs none)."""
    out = _c_order(out)
    tape, requires = _target((x,))
    if tape is None:
        return _wrap(out)
    row_x = _input_row(tape, x)
    shape = x._data.shape
    weights = weights_of()
    weights_row = tape.append(
        OPCODE["reduce_weights"] | NO_GRAD, row_x, -1, dim, tape.layout(weights.dtype, shape), float(mode)
    )
    tape.save(weights_row, np.ascontiguousarray(weights.reshape(shape)))
    row = tape.append(
        _opcode(name, requires), row_x, weights_row, dim, tape.layout(out.dtype, out.shape), mode / abs(mode)
    )
    return _recorded(out, tape, row, requires)


@exclusive
def _arg_extreme(x: Tensor, dim, keepdim: bool, largest: bool) -> Tensor:
    """argmax/argmin: the first index of the extreme (flat when ``dim`` is None)."""
    _check_not_empty("argmax" if largest else "argmin", x, dim)
    data = x._data
    if dim is None:
        out = np.asarray(np.argmax(data) if largest else np.argmin(data), dtype=np.int64)
        slot = -1
        if keepdim:
            out = out.reshape((1,) * data.ndim)
    else:
        slot = _normalize_dim(int(dim), data.ndim)
        axis = slot if data.ndim else None
        out = np.argmax(data, axis=axis, keepdims=keepdim) if largest else np.argmin(data, axis=axis, keepdims=keepdim)
        out = np.asarray(out, dtype=np.int64)
    tape = _grad_state.recording
    if tape is None:
        return _wrap(out)
    source = _input_row(tape, x)
    row = tape.append(
        OPCODE["argmax"] | NO_GRAD, source, -1, slot, tape.layout(out.dtype, out.shape), 1.0 if largest else -1.0
    )
    return _recorded(out, tape, row, False)


def max(x: Tensor, dim=None, keepdim: bool = False):  # noqa: A001 - PyTorch's name
    """``x.max()`` (gradient shared by ties), ``x.max(dim)`` -> (values, indices), or
    ``x.max(other)``, the elementwise maximum."""
    return _max_or_min(x, dim, keepdim, largest=True)


def min(x: Tensor, dim=None, keepdim: bool = False):  # noqa: A001
    return _max_or_min(x, dim, keepdim, largest=False)


def _max_or_min(x: Tensor, dim, keepdim: bool, largest: bool):
    if isinstance(dim, Tensor):
        from ._selection import maximum, minimum

        return maximum(x, dim) if largest else minimum(x, dim)
    if dim is None:
        return _extreme(x, None, False, largest, "max" if largest else "min")
    values = _extreme(x, int(dim), keepdim, largest, "max_dim" if largest else "min_dim")
    indices = _arg_extreme(x, dim, keepdim, largest)
    return (MaxResult if largest else MinResult)(values, indices)


def amax(x: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """Largest values over ``dim`` (an int or tuple; () means all); ties share the gradient."""
    return _extreme(x, dim, keepdim, True, "amax")


def amin(x: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    return _extreme(x, dim, keepdim, False, "amin")


def argmax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    if x._data.dtype.kind == "b":  # (PyTorch's refusal)
        raise RuntimeError("argmax(): does not support bool input")
    return _arg_extreme(x, dim, keepdim, True)


def argmin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    if x._data.dtype.kind == "b":
        raise RuntimeError("argmin(): does not support bool input")
    return _arg_extreme(x, dim, keepdim, False)


def _normalized_exponential(name: str, x: Tensor, dim: int, dtype, log: bool) -> Tensor:
    if dtype is None and x._data.dtype.kind in "biu":  # PyTorch's kernels have no integer version
        last = x._data.ndim == 0 or _normalize_dim(dim, x._data.ndim) == x._data.ndim - 1
        raise NotImplementedError(
            f"\"{name}{'_lastdim' if last else ''}_kernel_impl\" not implemented for '{x.dtype.type_name}'"
        )
    data = _prepared(x, dtype, _dtypes.float32)
    if data is not x._data and data.dtype != x._data.dtype:
        # ``dtype=`` (or an integer input): the row reads a cast row of that dtype. Recorded
        # straight on ``x``, its backward wrote the other dtype's gradient arena: zeros, or
        # garbage for a large row.
        x = _as_operand(x, data)
    dim = _normalize_dim(dim, data.ndim)
    if data.ndim == 0:  # 0 (log) or 1, NaN for a NaN or infinite input (x - x), as PyTorch's
        with np.errstate(invalid="ignore"):
            out = data - data if log else np.exp(data - data)
    elif not data.size:  # nothing to normalise: an empty result, as PyTorch's
        out = data.copy()
    elif dim == data.ndim - 1 and data.dtype.kind == "f":
        normalization = load_kernels("normalization")
        out = np.empty(data.shape, data.dtype)
        group = data.shape[-1]
        normalization.softmax_groups(c_ordered(data).reshape(-1), out.reshape(-1), group, log)
    else:
        shifted = data - data.max(axis=dim, keepdims=True)  # stable: exp never overflows
        total = np.exp(shifted).sum(axis=dim, keepdims=True)
        out = shifted - np.log(total) if log else np.exp(shifted) / total
    return record(name, (x,), np.asarray(out, dtype=data.dtype), iparam=dim)


def layer_norm(x: Tensor, normalized_shape: tuple, eps: float) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the trailing ``normalized_shape`` (biased variance), one
    row (``NativeLayerNormBackward0``); ``nn.functional.layer_norm`` adds the weight and bias."""
    shape = x._data.shape
    if not normalized_shape or shape[len(shape) - len(normalized_shape) :] != normalized_shape:
        listed = ", ".join(str(extent) for extent in normalized_shape)
        raise RuntimeError(
            f"Given normalized_shape=[{listed}], expected input with shape [*, {listed}], but got input of "
            f"size{list(shape)}"
        )
    data = _float_data(x)
    group = math.prod(normalized_shape)
    out = np.empty(data.shape, data.dtype)
    if data.size:
        load_kernels("normalization").layer_norm(c_ordered(data).reshape(-1), out.reshape(-1), group, float(eps))
    return record("layer_norm", (x,), out, saved=(data,), iparam=group, param=float(eps))


def batch_norm(x: Tensor, weight: Tensor | None, eps: float) -> tuple:
    """``(x - mean) / sqrt(var + eps) * weight`` per channel (dimension 1 of an (N, C, ...) ``x``,
    float32 or float64), over the batch and the other dimensions (biased variance); ``weight``
    (C,) of ``x``'s dtype, or None. One row (``NativeBatchNormBackward0``), and the batch's
    ``(mean, biased variance)``, (C,) float64 arrays for the running statistics.
    ``nn.functional.batch_norm`` adds the bias."""
    data = _float_data(x)
    channels = data.shape[1]
    # (``nn.functional.batch_norm`` checks these; the kernels read by them, unchecked)
    if weight is not None and (weight._data.shape != (channels,) or weight._data.dtype != data.dtype):
        raise RuntimeError(f"batch_norm: a weight of {channels} elements of the input's dtype, not {weight.shape}")
    out = np.empty(data.shape, data.dtype)
    stats = np.zeros(2 * channels, np.float64)
    w = weight._data if weight is not None else data[:0].reshape(-1)
    if data.size:
        inner = data.size // (data.shape[0] * channels)
        load_kernels("normalization").batch_norm(
            c_ordered(data).reshape(-1), w, out.reshape(-1), data.shape[0], channels, inner, float(eps), stats
        )
    inputs, saved = ((x,), (data,)) if weight is None else ((x, weight), (data, w))
    return record("batch_norm", inputs, out, saved=saved, param=float(eps)), stats[:channels], stats[channels:]


def lstm_cell(gates: Tensor, c: Tensor) -> Tensor:
    """One step of ``nn.LSTM`` as one row: ``gates`` (n, 4 * hidden), the input's and the hidden
    state's projections summed, in PyTorch's gate order (input, forget, cell, output); ``c``
    (n, hidden), the cell state. Returns (2, n, hidden): h = o * tanh(c'), then c' = f * c + i *
    g, where i, f, o are sigmoids and g a tanh of the gates. Both of one floating dtype (the
    layer checks it). ``LstmCellBackward0`` (PyTorch's CPU layer is one ``MkldnnRnnLayerBackward0``)."""
    gates_data, c_data = c_ordered(gates._data), c_ordered(c._data)
    if gates_data.dtype != c_data.dtype or gates_data.dtype.kind != "f":  # (the layer never passes one)
        raise RuntimeError(f"lstm_cell: gates of {gates_data.dtype} and a cell state of {c_data.dtype}")
    n, hidden = c_data.shape
    out = np.empty((2, n, hidden), c_data.dtype)
    if out.size:
        load_kernels("normalization").lstm_cell(gates_data.reshape(-1), c_data.reshape(-1), out.reshape(-1), hidden)
    return _record_op("lstm_cell", (gates, c), out, saved=(gates_data, c_data), iparam=hidden)


def log_softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """x - log(sum(exp(x))) along ``dim`` (``LogSoftmaxBackward0``)."""
    return _normalized_exponential("log_softmax", x, dim, dtype, log=True)


def softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (``SoftmaxBackward0``)."""
    return _normalized_exponential("softmax", x, dim, dtype, log=False)


install(
    {
        "sum": sum,
        "mean": mean,
        "norm": norm,
        "max": max,
        "min": min,
        "amax": amax,
        "amin": amin,
        "argmax": argmax,
        "argmin": argmin,
        "prod": prod,
        "logsumexp": logsumexp,
        "var": var,
        "std": std,
        "cumsum": cumsum,
        "softmax": softmax,
        "log_softmax": log_softmax,
    }
)


# -- create_graph formulas: the vector-Jacobian product of each rule as tapegrad ops ------
# ``row`` is the tape row as autograd/higher_order.py's ``_Row`` shows it (its saved values
# as tensors at their own rows, so the formula records edges into the original graph).


def _reduced_axis(row) -> tuple:
    """The numpy axis a one-dimension reduction works on (``iparam``; -1: all, None here), and
    its result's shape with that dimension kept as 1."""
    shape, dim = row.input_shape, row.iparam
    if dim < 0:
        return None, (1,) * len(shape)
    return dim, shape[:dim] + (1,) + shape[dim + 1 :]


def _spread_group(row, reduced: Tensor) -> Tensor:
    """One value per group of a reduction along ``iparam``, repeated over its group."""
    return reduced.reshape(_reduced_axis(row)[1]).expand(row.input_shape)


def _chosen(row, g: Tensor) -> Tensor:
    """max/min/amax/amin: the gradient to the extremes by their weights, exactly 0 to the
    others (selected: an infinite g times a weight of 0 was NaN there, as in the kernel)."""
    from ._selection import where  # (the selection ops are built on these: imported when used)

    weights = row.b
    return where(weights != 0, _spread_group(row, g) * weights, 0.0)


def _sum_all(row, g: Tensor) -> Tensor:
    return (g if row.param == 1.0 else g * row.param).expand(row.input_shape)


def _sum_dim(row, g: Tensor) -> Tensor:
    kept = tuple(1 if row.iparam >> d & 1 else extent for d, extent in enumerate(row.input_shape))
    return (g if row.param == 1.0 else g * row.param).reshape(kept).expand(row.input_shape)


def _norm_vjp(row, g: Tensor) -> Tensor:
    """Of order ``param``; the kernel sends nothing to a group whose norm is 0, and none at all
    for order 0 (None: no gradient, as PyTorch's)."""
    p, x = row.param, row.a_data
    if p == 0:
        return None
    if p == 1:
        return _spread_group(row, g) * row.constant(np.sign(x))
    if p == math.inf:  # shared by the elements of largest magnitude
        axis, kept = _reduced_axis(row)
        largest = np.abs(x) == row.out_data.reshape(kept)
        count = np.maximum(largest.sum(axis=axis, keepdims=True), 1)
        return _spread_group(row, g) * row.constant(np.sign(x) * largest / count)
    zero = row.out_data == 0
    safe = row.out + row.constant(zero)  # 1 where the norm is 0, whose groups get nothing
    scale = g * row.constant(~zero) / (safe if p == 2 else safe ** (p - 1))
    if p == 2:
        return _spread_group(row, scale) * row.a
    return _spread_group(row, scale) * row.constant(np.sign(x)) * row.a.abs() ** (p - 1)


def _prod(row, g: Tensor) -> Tensor:
    """d prod / d x_k is the product of the others: prod / x_k when no element is zero, else
    the product of each element's group with that element replaced by 1."""
    if np.all(row.a_data != 0):
        return _spread_group(row, g * row.out) / row.a
    dim = row.iparam
    grouped = row.a.reshape(-1) if dim < 0 else row.a.transpose(dim, -1)  # the group last
    extent = grouped.shape[-1]
    eye = np.eye(extent)
    square = grouped.unsqueeze(-2).expand(*grouped.shape[:-1], extent, extent)
    others = (square * row.constant(1 - eye) + row.constant(eye)).prod(-1)
    others = others.reshape(row.input_shape) if dim < 0 else others.transpose(dim, -1)
    return _spread_group(row, g) * others


def _centered(row) -> tuple:
    """The input minus its group's mean, and the degrees of freedom (``param``: the correction)."""
    x = row.a
    axis, _ = _reduced_axis(row)
    extent = math.prod(row.input_shape) if axis is None else row.input_shape[axis]
    # A correction above the element count leaves no degrees of freedom, not negative ones
    # (spelled out: ``max`` in this module is the op)
    dof = extent - row.param if extent > row.param else 0.0
    return x - _spread_group(row, x.mean() if axis is None else x.mean(axis)), dof


def _per_dof(value: float, dof) -> float:
    """``value / dof``, inf or NaN where the degrees of freedom are none (a variance of one
    element): IEEE's, as PyTorch's tensors divide (Python's float division raised)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(value) / np.float64(dof))


def _var(row, g: Tensor) -> Tensor:
    centered, dof = _centered(row)
    return _spread_group(row, g * _per_dof(2.0, dof)) * centered


def _std(row, g: Tensor) -> Tensor:
    """As PyTorch: zero where the std is zero (rather than 0/0)."""
    centered, dof = _centered(row)
    zero = row.out_data == 0
    return _spread_group(row, g / (row.out + row.constant(zero)) * row.constant(~zero) * _per_dof(1.0, dof)) * centered


def _cumsum(row, g: Tensor) -> Tensor:
    """The reversed cumulative sum of g: its total, minus the running sum before each element."""
    if not row.input_shape:
        return g
    return g.sum(row.iparam, keepdim=True) - g.cumsum(row.iparam) + g


def _softmax(row, g: Tensor) -> Tensor:
    weighted = g * row.out
    return row.out * (g - (weighted.sum(row.iparam, keepdim=True) if row.shape else weighted))


def _log_softmax(row, g: Tensor) -> Tensor:
    return g - row.out.exp() * (g.sum(row.iparam, keepdim=True) if row.shape else g)


def _layer_norm(row, g: Tensor) -> Tensor:
    """rstd * (g - mean(g) - xhat * mean(g * xhat)) per group, as the kernel computes it."""
    group, eps = row.iparam, row.param
    x = row.a.reshape(-1, group)
    g = g.reshape(-1, group)
    centered = x - x.mean(1, keepdim=True)
    rstd = ((centered * centered).mean(1, keepdim=True) + eps).rsqrt()
    xhat = centered * rstd
    return (rstd * (g - g.mean(1, keepdim=True) - xhat * (g * xhat).mean(1, keepdim=True))).reshape(row.input_shape)


def _batch_normalized(row) -> tuple:
    """``(xhat, rstd, the dimensions reduced)`` of a batch_norm row, as the kernel computes them."""
    dims = [0, *range(2, len(row.input_shape))]
    centered = row.a - row.a.mean(dims, keepdim=True)
    rstd = ((centered * centered).mean(dims, keepdim=True) + row.param).rsqrt()
    return centered * rstd, rstd, dims


def _batch_norm(row, g: Tensor) -> Tensor:
    """w * rstd * (g - mean(g) - xhat * mean(g * xhat)) per channel."""
    xhat, rstd, dims = _batch_normalized(row)
    if row.in1 >= 0:  # the weight
        rstd = rstd * row.b.reshape((1, -1) + (1,) * (len(dims) - 1))
    return rstd * (g - g.mean(dims, keepdim=True) - xhat * (g * xhat).mean(dims, keepdim=True))


def _batch_norm_weight(row, g: Tensor) -> Tensor:
    """sum(g * xhat) per channel."""
    xhat, _, dims = _batch_normalized(row)
    return (g * xhat).sum(dims)


def _lstm_cell_vjp(row, g: Tensor) -> tuple:
    """(gradient of the gates, of the cell state), as ``normalization.lstm_cell_backward``."""
    from ._views import cat  # (a view module's import, as the create_graph walk runs: after both loaded)

    hidden = row.iparam
    gates, c = row.a, row.b
    i, f = gates[:, :hidden].sigmoid(), gates[:, hidden : 2 * hidden].sigmoid()
    cell, o = gates[:, 2 * hidden : 3 * hidden].tanh(), gates[:, 3 * hidden :].sigmoid()
    squashed = row.out[1].tanh()  # (the new c, saved, as the kernel reads it)
    g_h, g_c = g[0], g[1]
    g_state = g_c + g_h * o * (1.0 - squashed * squashed)
    g_gates = (
        g_state * cell * i * (1.0 - i),
        g_state * c * f * (1.0 - f),
        g_state * i * (1.0 - cell * cell),
        g_h * squashed * o * (1.0 - o),
    )
    return cat(g_gates, 1), g_state * f


def nll_targets(input: Tensor, target: Tensor, labels: np.ndarray, ignore_index: int, mean: bool) -> Tensor:  # noqa: A002
    """``nll_loss`` (no class weights, reduced by mean or sum) inside ``tapegrad.record`` of
    ``target`` (``labels``: its values, checked in range by the caller) computed or taken as an
    input by the tape: one ``nll_targets`` row reading the targets of each replay, and a guard
    that they are in range (a replay with one out of range raises ``GuardError``; vmap records
    that slice again, and the recording raises PyTorch's ``IndexError``).

    The value is the picks summed in order in float64, as the replay kernel sums them, then
    negated (and divided by the count of kept targets, NaN for none) and rounded once."""
    dtype = input._data.dtype
    classes = input._data.shape[-1]
    targets = _record_op("mask", (target,), labels.astype(dtype))  # the labels in the input's dtype
    bad = _record_op("nll_bad", (targets,), np.zeros((), dtype), iparam=ignore_index, param=float(classes))
    _guard(bad, "nll_loss(): the count of targets out of bounds", False)  # 0 when recorded
    flat = labels.reshape(-1)
    kept = np.flatnonzero(flat != ignore_index)
    picked = input._data.reshape(-1, classes)[kept, flat[kept]].astype(np.float64)
    total = float(np.cumsum(picked)[-1]) if len(kept) else 0.0  # (cumsum: in order, as the kernel)
    value = -total if not mean else -(total / len(kept)) if len(kept) else np.nan
    return _record_op(
        "nll_targets", (input, targets), np.asarray(value, dtype), saved=(None, targets._data),
        iparam=ignore_index, param=1.0 if mean else 0.0,
    )  # fmt: skip


VJP = {
    "sum_all": (_sum_all,),
    "sum_dim": (_sum_dim,),
    "norm": (_norm_vjp,),
    "prod": (_prod,),
    "var": (_var,),
    "std": (_std,),
    "logsumexp": (lambda row, g: _spread_group(row, g) * (row.a - _spread_group(row, row.out)).exp(),),
    "cumsum": (_cumsum,),
    # max, min, amax, amin: in1 holds weights saying which elements won and how ties share.
    "select_reduce": (_chosen,),
    "softmax": (_softmax,),
    "log_softmax": (_log_softmax,),
    "layer_norm": (_layer_norm,),
    "batch_norm": (_batch_norm, _batch_norm_weight),
    "lstm_cell": (lambda row, g: _lstm_cell_vjp(row, g)[0], lambda row, g: _lstm_cell_vjp(row, g)[1]),
}
