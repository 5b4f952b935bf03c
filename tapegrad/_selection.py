"""Ops that choose, element by element, where a value (and so its gradient) comes from:
``maximum``/``minimum``, ``clamp`` and ``where``."""

from __future__ import annotations

import numbers

import numpy as np

from . import _dtypes, _record
from ._grad_mode import state as _grad_state
from ._ops import OPCODE
from ._record import _SCALAR_OPS, _binary, _opcode, _operand_row, _scalar, _target, broadcast_error
from ._tape import NO_GRAD
from .tensor import Tensor, _recorded, _wrap, as_tensor, guard_reads, install, on_tape


def maximum(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002 - PyTorch's names
    """The larger of two tensors, element by element (``MaximumBackward0``; ties split evenly)."""
    return _binary("maximum", input, as_tensor(other))


def minimum(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    return _binary("minimum", input, as_tensor(other))


def clamp(input: Tensor, min=None, max=None) -> Tensor:  # noqa: A001, A002
    """``input`` limited to [min, max] (``ClampBackward1``); the gradient passes where the input
    is inside the bounds (bounds included). Tensor bounds go through maximum/minimum."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = input if min is None else maximum(input, min)
        return out if max is None else minimum(out, max)
    if max is None:
        return _scalar(_SCALAR_OPS["clamp_min"], input, min)
    if min is None:
        return _scalar(_SCALAR_OPS["clamp_max"], input, max)
    return _scalar(_SCALAR_OPS["clamp_max"], _scalar(_SCALAR_OPS["clamp_lower"], input, min), max)


clip = clamp


def where(condition, input=None, other=None) -> Tensor:  # noqa: A002
    """``input`` where ``condition`` holds, else ``other`` (``WhereBackward0``); either may be a
    Python number. The gradient goes to the side that was chosen."""
    condition = as_tensor(condition)
    if input is None and other is None:  # torch.where(condition): the indices where it holds
        return tuple(_wrap(np.asarray(index, np.int64)) for index in np.nonzero(condition._data))
    if condition._data.dtype != np.bool_:
        raise RuntimeError(
            "where expected condition to be a boolean tensor, but got a tensor with dtype " + condition.dtype.type_name
        )
    a, b = _operands(input, other)
    result = _dtypes.result_type(a.dtype, a._data.ndim, b.dtype, b._data.ndim).numpy
    data_a = a._data if a._data.dtype == result else a._data.astype(result)
    data_b = b._data if b._data.dtype == result else b._data.astype(result)
    try:
        shape = np.broadcast_shapes(condition._data.shape, data_a.shape, data_b.shape)
    except ValueError:
        raise broadcast_error(data_a.shape, data_b.shape) from None
    out = np.where(condition._data, data_a, data_b).astype(result, copy=False)
    tape, requires = _target((a, b))
    if tape is None:
        return _wrap(out)
    replaying = tape is _grad_state.recording
    row_a = _operand_row(tape, a, data_a, out, False, replaying)
    row_b = _operand_row(tape, b, data_b, out, False, replaying)
    layout = tape.layout(out.dtype, shape)
    # The condition, as 0/1 in the result's dtype: a replay recomputes it from its own row.
    source = -1
    if replaying:
        boolean = np.broadcast_to(condition._data, shape)
        source = _operand_row(tape, condition, condition._data, boolean, False, True)
    mask = tape.append(OPCODE["mask"] | NO_GRAD, source, -1, 0, layout, 0.0)
    tape.save(mask, np.ascontiguousarray(np.broadcast_to(condition._data, shape), dtype=out.dtype))
    row = tape.append(_opcode("where", requires), row_a, row_b, tape.n - mask, layout, 0.0)
    return _recorded(out, tape, row, requires)


def _operands(first, second) -> tuple:
    """Both sides as tensors; a Python number takes the other side's dtype, as in PyTorch."""
    if isinstance(first, numbers.Number) and isinstance(second, numbers.Number):
        return as_tensor(first), as_tensor(second)
    if isinstance(first, numbers.Number):
        second = as_tensor(second)
        return Tensor(np.asarray(first, dtype=second._data.dtype)), second
    first = as_tensor(first)
    if isinstance(second, numbers.Number):
        return first, Tensor(np.asarray(second, dtype=first._data.dtype))
    return first, as_tensor(second)


# -- Tensor methods ------------------------------------------------------------------------


def _overwrite(self, value, label: str) -> Tensor:
    """zero_/fill_/copy_. On a tensor of a graph, or from a tensor that requires grad, the new
    values are recorded (as where(everywhere, value, self)): gradients no longer reach the old
    values, and reach ``value``; otherwise a plain write."""
    _record._check_in_place(self)
    if _record.records_in_place(self, value):
        if isinstance(value, Tensor) and value._data.dtype != self._data.dtype:
            value = value.to(self.dtype)
        everywhere = _wrap(np.ones(self._data.shape, np.bool_))
        return _record.in_place(self, lambda t: where(everywhere, value, t), label)
    self._data[...] = value._data if isinstance(value, Tensor) else value
    _record._bump_version(self)
    return self


def _clamp_(self, min=None, max=None):  # noqa: A002 - PyTorch's names
    return _record.in_place(self, lambda t: clamp(t, min, max), "Clamp")


def _replayed(tensor: Tensor) -> bool:
    """Whether ``tensor`` is a value of the function ``tapegrad.record`` is recording: a test of
    its elements must then be recorded ops (``if tg.isnan(loss).any():`` as a guard on the whole
    of ``loss`` made every replay at new inputs fail)."""
    return _grad_state.recording is not None and on_tape(tensor)


def isnan(input: Tensor) -> Tensor:  # noqa: A002
    """Boolean tensor: where ``input`` is NaN; follows ``torch.isnan``."""
    if _replayed(input):
        return input != input  # NaN is the one value unequal to itself
    return _wrap(np.isnan(input._data))


def isinf(input: Tensor) -> Tensor:  # noqa: A002
    """Boolean tensor: where ``input`` is +-inf; follows ``torch.isinf``."""
    if _replayed(input):
        return input.abs() == float("inf")
    return _wrap(np.isinf(input._data))


def isfinite(input: Tensor) -> Tensor:  # noqa: A002
    """Boolean tensor: where ``input`` is neither NaN nor +-inf; follows ``torch.isfinite``."""
    if _replayed(input):
        return (input - input) == 0  # inf - inf and NaN - NaN are NaN
    return _wrap(np.isfinite(input._data))


def isclose(input: Tensor, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:  # noqa: A002
    """Boolean tensor: ``|input - other| <= atol + rtol * |other|``, broadcast; follows ``torch.isclose``."""
    guard_reads("isclose()", input, other)
    return _wrap(np.isclose(input._data, as_tensor(other)._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(input: Tensor, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:  # noqa: A002
    """Whether every element is close (``isclose``); a Python bool; follows ``torch.allclose``."""
    guard_reads("allclose()", input, other)
    return bool(np.allclose(input._data, as_tensor(other)._data, rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input: Tensor, other: Tensor) -> bool:  # noqa: A002
    """Whether both have the same shape and values; follows ``torch.equal``."""
    guard_reads("equal()", input, other)
    return input._data.shape == other._data.shape and bool(np.array_equal(input._data, other._data))


def _logical_reduction(function):
    def reduce(input: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A002
        guard_reads(f"{function.__name__}()", input)  # ``if (x > 0).all():``
        values = input._data.astype(bool)
        if dim is None:
            return _wrap(np.asarray(function(values)))
        return _wrap(np.asarray(function(values, axis=dim, keepdims=keepdim)))

    return reduce


all = _logical_reduction(np.all)  # noqa: A001 - PyTorch's name
all.__name__ = all.__qualname__ = "all"
all.__doc__ = "Boolean tensor: whether every element (along ``dim``) is nonzero; follows ``torch.all``."
any = _logical_reduction(np.any)  # noqa: A001
any.__name__ = any.__qualname__ = "any"
any.__doc__ = "Boolean tensor: whether some element (along ``dim``) is nonzero; follows ``torch.any``."


install(
    {
        "isnan": isnan,
        "isinf": isinf,
        "isfinite": isfinite,
        "isclose": isclose,
        "allclose": allclose,
        "equal": equal,
        "all": all,
        "any": any,
        "clamp": clamp,
        "clip": clamp,
        "clamp_min": lambda self, min: clamp(self, min=min),  # noqa: A006
        "clamp_max": lambda self, max: clamp(self, max=max),  # noqa: A006
        "maximum": maximum,
        "minimum": minimum,
        "where": lambda self, condition, other: where(condition, self, other),
        "masked_fill": lambda self, mask, value: _record.name_node(where(mask, value, self), "MaskedFillBackward0"),
        "masked_fill_": lambda self, mask, value: _record.in_place(
            self, lambda t: _record.name_node(where(mask, value, t), "MaskedFillBackward0"), "MaskedFill"
        ),
        "clamp_": _clamp_,
        "clip_": _clamp_,
        "pow_": lambda self, exponent: _record.in_place(self, lambda t: t**exponent, "Pow"),
        "zero_": lambda self: _overwrite(self, 0, "Zero"),
        "fill_": lambda self, value: _overwrite(self, value, "Fill"),
        "copy_": lambda self, source: _overwrite(self, source, "Copy"),
    }
)


# -- create_graph formulas: the vector-Jacobian product of each rule as tapegrad ops ------
# ``row`` is the tape row as autograd/higher_order.py's ``_Row`` shows it (its saved values
# as tensors at their own rows, so the formula records edges into the original graph).


def _share(row, side: int) -> np.ndarray:
    """maximum/minimum: how much of the gradient goes to input ``side``. A tie splits evenly; a
    NaN on either side sends nothing to either, as the kernel does."""
    x, y = (row.a_data, row.b_data) if side == 0 else (row.b_data, row.a_data)
    wins = x > y if row.op.rule == "maximum" else x < y
    return np.where(x == y, 0.5, wins)


def _condition(row) -> np.ndarray:
    """where's condition, as 0/1: the ``mask`` row ``iparam`` rows above."""
    return row.walk.array(row.index - row.iparam, row.op.name) != 0


VJP = {
    "clamp_min": (lambda row, g: g * row.constant(row.a_data >= row.param),),
    "clamp_max": (lambda row, g: g * row.constant(row.a_data <= row.param),),
    "maximum": (lambda row, g: g * row.constant(_share(row, 0)), lambda row, g: g * row.constant(_share(row, 1))),
    "minimum": (lambda row, g: g * row.constant(_share(row, 0)), lambda row, g: g * row.constant(_share(row, 1))),
    "where": (lambda row, g: g * row.constant(_condition(row)), lambda row, g: g * row.constant(~_condition(row))),
}
