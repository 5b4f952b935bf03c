"""Ops that choose, element by element, where a value (and so its gradient) comes from:
``maximum``/``minimum``, ``clamp`` and ``where``."""

from __future__ import annotations

import numbers

import numpy as np

from . import _dtypes, _record
from ._grad_mode import no_grad as _no_grad
from ._grad_mode import refuses_gradient
from ._grad_mode import state as _grad_state
from ._ops import OPCODE
from ._record import _SCALAR_OPS, _binary, _input_row, _opcode, _operand_row, _scalar, _target, broadcast_error
from ._shapes import expands_to
from ._tape import NO_GRAD, exclusive
from .tensor import Tensor, _recorded, _wrap, as_tensor, guard_reads, install, on_tape


def maximum(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002 - PyTorch's names
    """The larger of two tensors, element by element (``MaximumBackward0``; ties split evenly)."""
    return _binary("maximum", input, as_tensor(other))


def minimum(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    return _binary("minimum", input, as_tensor(other))


def clamp(input: Tensor, min=None, max=None) -> Tensor:  # noqa: A001, A002
    """``input`` limited to [min, max], broadcast (``ClampBackward1``; with a tensor bound
    ``ClampBackward0``); the gradient passes where the input is inside the bounds (bounds
    included). A tensor bound gets the gradient where it decides the value: see
    ``_clamp_tensors``. Raises ``RuntimeError`` without bounds, or for bounds that do not
    broadcast with ``input``; follows ``torch.clamp``."""
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    # numpy scalars are numbers to PyTorch (np.float64(0.5) keeps a float32 tensor float32)
    min, max = _dtypes.scalar(min), _dtypes.scalar(max)  # noqa: A001
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        return _record.name_node(_clamp_tensors(input, min, max), "ClampBackward0")
    if max is None:
        return _scalar(_SCALAR_OPS["clamp_min"], input, min)
    if min is None:
        return _scalar(_SCALAR_OPS["clamp_max"], input, max)
    return _scalar(_SCALAR_OPS["clamp_max"], _scalar(_SCALAR_OPS["clamp_lower"], input, min), max)


def _clamp_tensors(x: Tensor, low, high) -> Tensor:
    """clamp with a tensor bound (the other a tensor, a Python number or None), in the result
    type of all three (``torch.result_type``), at their broadcast shape.

    PyTorch's rule (``clamp_backward``, ``clamp_backward_min_max``): ``x`` gets the gradient
    where ``low <= x <= high``, ``low`` where ``x < low < high``, ``high`` where ``x > high``
    or ``high < low`` (an empty range is ``high`` everywhere); each comparison is false at a
    NaN, and where none holds (a NaN; ``x < low == high``) nothing gets it. (Not
    maximum/minimum: they split a tie evenly, as ``torch.maximum`` does, where clamp gives it
    to ``x``.)

    Recorded as ``where``s on those conditions (comparisons, recorded inside
    ``tapegrad.record`` so that a replay recomputes them), choosing among ``x``, the bounds and
    the value itself computed without gradient; a NaN in any of the three makes the value NaN,
    as PyTorch's kernel does."""
    result = _result_type(x, low, high)
    low, high = (_as_operand(bound, result) for bound in (low, high))
    with _no_grad():  # the values; the wheres below decide where the gradient goes
        value = x if low is None else maximum(x, low)
        value = value if high is None else minimum(value, high)
        if value._data.dtype != result:  # promoted pairwise: bool, int32 0-d, int64 0-d is int32
            value = value.to(_dtypes.from_numpy_dtype(result))
    if high is None:
        return where(x >= low, x, where(x < low, low, value))
    if low is None:
        return where(x <= high, x, where(x > high, high, value))
    # (``&`` and ``|`` are ``_logical``'s: recorded as comparisons inside tapegrad.record)
    inside = (x >= low) & (x <= high)
    below = (x < low) & (low < high)
    above = (x > high) | (high < low)
    if result.kind == "f" and (_replayed(value) or np.isnan(value._data).any()):
        # ``high`` is chosen where x > high with a NaN low, or high < low with a NaN x, where the
        # value is NaN: ``high`` plus that NaN (plus -0.0, which changes no value, elsewhere)
        # still passes the gradient to ``high``.
        high = high + where(isnan(value), value, -0.0)
    return where(inside, x, where(below, low, where(above, high, value)))


clip = clamp


@exclusive
def where(condition, input=None, other=None) -> Tensor:  # noqa: A002
    """``input`` where ``condition`` holds, else ``other`` (``WhereBackward0``), at the shape all
    three broadcast to; either may be a Python number. The result type is
    ``torch.result_type(input, other)`` (``_result_type``: ``where(i > 0, i, 0.5)`` of an int64
    ``i`` is float32). The gradient goes to the side that was chosen. ``where(condition)``:
    the indices where it holds, one int64 tensor per dimension. Raises ``TypeError`` for an
    input without an other (or the reverse), ``RuntimeError`` for a condition that is not
    boolean, or shapes that do not broadcast (PyTorch's message: the condition's shape against
    ``input``'s, then theirs against ``other``'s); follows ``torch.where``."""
    condition = as_tensor(condition)
    if input is None and other is None:  # torch.where(condition): the indices where it holds
        guard_reads("where()", condition)
        return tuple(_wrap(np.asarray(index, np.int64)) for index in np.nonzero(condition._data))
    if input is None or other is None:
        raise TypeError("where() takes a condition alone, or a condition, an input and an other")
    if type(input) is not Tensor:  # (numpy scalars as numbers; tensors, the common case, as they are)
        input = _dtypes.scalar(input)  # noqa: A001
    if type(other) is not Tensor:
        other = _dtypes.scalar(other)
    if condition._data.dtype != np.bool_:
        raise RuntimeError(
            "where expected condition to be a boolean tensor, but got a tensor with dtype " + condition.dtype.type_name
        )
    if isinstance(input, Tensor) and isinstance(other, Tensor) and input._data.dtype == other._data.dtype:
        result = input._data.dtype  # the common case, without the promotion's lookups
    else:
        result = _result_type(input, other)
    a, b = _as_operand(input, result), _as_operand(other, result)
    data_a = a._data if a._data.dtype == result else a._data.astype(result)
    data_b = b._data if b._data.dtype == result else b._data.astype(result)
    try:
        shape = np.broadcast_shapes(condition._data.shape, data_a.shape, data_b.shape)
    except ValueError:
        shape = condition._data.shape
        for data in (data_a, data_b):  # PyTorch's order, for its message
            try:
                shape = np.broadcast_shapes(shape, data.shape)
            except ValueError:
                raise broadcast_error(shape, data.shape) from None
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


@exclusive
def _valued_as(carrier: Tensor, values: Tensor) -> Tensor:
    """``values`` (of ``carrier``'s shape and dtype, computed without gradient) with the gradient
    passed to ``carrier`` as if it held them: an ``assign`` row, whose value is in1's and whose
    backward hands the gradient to in0 unchanged, whatever either holds.

    For a gradient no arithmetic on the values gives: 1 to an infinite or NaN value that must
    leave no trace in the result (an overwritten value of ``index_put``: ``v - v.detach()`` is
    NaN there), or an infinite one to a target whose loss stays finite (``binary_cross_entropy``
    at p = 0 or 1: ``t * inf`` is NaN at t = 0)."""
    tape, requires = _target((carrier,))
    if tape is None:
        return _wrap(values._data)
    layout = tape.layout(values._data.dtype, values._data.shape)
    row = tape.append(_opcode("assign", requires), _input_row(tape, carrier), _input_row(tape, values), 0, layout, 0.0)
    return _recorded(values._data, tape, row, requires)


def _result_type(*operands) -> np.dtype:
    """``torch.result_type`` of tensors, Python numbers and Nones (skipped), as a numpy dtype.

    As PyTorch: tensors with dimensions decide, then 0-d tensors, then numbers (a float as the
    default float32, an int as int64); a later group counts only when of a higher category
    (bool < integer < floating) than the groups before, so ``int32 tensor`` with ``2`` stays
    int32, with ``0.5`` is float32, and a bool tensor with ``2`` is int64."""
    dimensioned = zero_dim = number = None
    for operand in operands:
        if operand is None:
            continue
        if isinstance(operand, numbers.Number):
            if isinstance(operand, bool):
                kind = _dtypes.bool
            elif isinstance(operand, numbers.Integral):
                kind = _dtypes.int64
            else:
                kind = _dtypes.DEFAULT_FLOAT
            number = kind if number is None else _dtypes._wider(number, kind)
            continue
        operand = as_tensor(operand)
        kind = _dtypes.from_numpy_dtype(operand._data.dtype)
        if operand._data.ndim:
            dimensioned = kind if dimensioned is None else _dtypes._wider(dimensioned, kind)
        else:
            zero_dim = kind if zero_dim is None else _dtypes._wider(zero_dim, kind)
    return _above(dimensioned, _above(zero_dim, number)).numpy


def _above(higher, lower):
    """PyTorch's ``combine_categories``: the type of a group of operands (``higher``) and a group
    that decides only what the first leaves open (``lower``); either may be None (no operands)."""
    if higher is None:
        return lower
    if lower is None or higher.category == _dtypes.FLOATING:
        return higher
    if higher.category == _dtypes.BOOLEAN or lower.category == _dtypes.FLOATING:
        return _dtypes._wider(higher, lower)
    return higher


def _as_operand(value, result: np.dtype):
    """An operand as a tensor: a Python number as a 0-d constant of ``result`` (wrapping as
    PyTorch does: -3 as uint8 is 253), a tensor as it is, None as None."""
    if value is None or isinstance(value, Tensor):
        return value
    if isinstance(value, numbers.Number):
        return Tensor(np.asarray(value).astype(result), dtype=result)
    return as_tensor(value)


# -- Tensor methods ------------------------------------------------------------------------


# PyTorch's nodes for zero_, fill_ (of a number; of a tensor: FillBackward3) and copy_
_OVERWRITE_NODES = {"Zero": "ZeroBackward0", "Fill": "FillBackward2", "Copy": "CopyBackwards"}


def _overwrite(self, value, label: str) -> Tensor:
    """zero_/fill_/copy_. On a tensor of a graph, or from a tensor that requires grad, the new
    values are recorded (as where(everywhere, value, self)): gradients no longer reach the old
    values, and reach ``value``; otherwise a plain write."""
    _record._check_in_place(self)
    if _record.records_in_place(self, value):
        if isinstance(value, Tensor) and value._data.dtype != self._data.dtype:
            value = value.to(self.dtype)
        everywhere = _wrap(np.ones(self._data.shape, np.bool_))
        node = _OVERWRITE_NODES[label] if label != "Fill" or not isinstance(value, Tensor) else "FillBackward3"
        return _record.in_place(self, lambda t: _record.name_node(_filled(everywhere, value, t), node), label)
    value = _dtypes.fill_value(value, self._data.dtype)  # -3 into uint8: 253, as PyTorch
    if isinstance(value, Tensor) and not expands_to(value._data.shape, self._data.shape):
        raise _record.broadcast_error(self._data.shape, value._data.shape)
    self._data[...] = value._data if isinstance(value, Tensor) else value
    _record._bump_version(self)
    return self


def _clamp_(self, min=None, max=None):  # noqa: A002 - PyTorch's names
    return _record.in_place(self, lambda t: clamp(t, min, max), "Clamp")


def _filled(mask, value, tensor: Tensor) -> Tensor:
    """``where(mask, value, tensor)`` as masked_fill, fill_, zero_ and copy_ compute it: ``value``
    (a Python number or a tensor) takes ``tensor``'s dtype, ``where`` would promote: masked_fill
    of an int64 tensor with 0.5, or with ``tensor(2.5)``, is int64 (2), of a float32 one with a
    float64 ``tensor(0.1)`` float32. An int into an integer type is converted as PyTorch
    converts a fill value (``_dtypes.checked_int``: -3 into uint8 is 253, 300 raises)."""
    dtype = tensor._data.dtype
    if isinstance(value, Tensor):
        if value._data.dtype != dtype:
            if dtype.kind in "iu" and value._data.dtype.kind in "iu" and value._data.ndim == 0:
                _dtypes.checked_int(int(value._data), dtype)
            value = value.to(_dtypes.from_numpy_dtype(dtype))
    elif isinstance(value, numbers.Number):
        value = _as_operand(_dtypes.fill_value(value, dtype), dtype)
    return where(mask, value, tensor)


def _masked_fill(self, mask, value) -> Tensor:
    """``self`` with ``value`` (a number or a 0-d tensor, cast to ``self``'s dtype) where the
    boolean ``mask`` holds (``MaskedFillBackward0``; ``MaskedFillBackward1`` for a tensor value,
    which takes the sum of the gradient where the mask holds); follows ``torch.masked_fill``.
    Raises PyTorch's ``RuntimeError`` for an integer or boolean ``self`` and a value that
    requires grad (with grad mode on)."""
    value = _dtypes.scalar(value)
    result = _masked_filled(self, mask, value)
    if self._data.dtype.kind != "f" and isinstance(value, Tensor) and refuses_gradient(value):
        # PyTorch gives the result the value's gradient, then refuses an integer or boolean one
        # (``set_history``), after checking the arguments. The cast to self's dtype had dropped
        # the gradient: no error, and no gradient.
        raise RuntimeError(f"Autograd not support dtype: {_dtypes.from_numpy_dtype(self._data.dtype).type_name}")
    return result


def _masked_filled(self, mask, value) -> Tensor:
    """masked_fill, and masked_fill_ out of place. (PyTorch's masked_fill_ of an integer tensor
    with a value that requires grad makes the tensor require grad, and its backward raise: a
    tapegrad integer tensor cannot require grad, and takes none.)"""
    mask = as_tensor(mask)
    if mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype {mask.dtype.c_name}")
    if isinstance(value, Tensor) and value._data.ndim:
        raise RuntimeError(
            "masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
            f"{value._data.ndim} dimension(s)."
        )
    grad_fn = "MaskedFillBackward1" if isinstance(value, Tensor) else "MaskedFillBackward0"
    return _record.name_node(_filled(mask, value, self), grad_fn)


def _masked_fill_(self, mask, value):
    mask = as_tensor(mask)
    # PyTorch checks the mask against this tensor first: its message names them in this order.
    _record.broadcast_shape(self._data.shape, mask._data.shape)
    return _record.in_place(self, lambda t: _masked_filled(t, mask, value), "MaskedFill")


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
        # (dim None with keepdim: every dim kept as 1, as PyTorch's)
        out = function(values, axis=dim, keepdims=keepdim)
        # uint8 in, uint8 out, as PyTorch keeps it (its masks of old); bool for the rest
        return _wrap(np.asarray(out, np.uint8 if input._data.dtype == np.uint8 else np.bool_))

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
        "masked_fill": _masked_fill,
        "masked_fill_": _masked_fill_,
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
    """maximum/minimum: how much of the gradient goes to input ``side``, as the kernel sends it:
    all of it unless that side loses, half on a tie; a NaN on either side loses neither."""
    x, y = (row.a_data, row.b_data) if side == 0 else (row.b_data, row.a_data)
    loses = x < y if row.op.rule == "maximum" else x > y
    return np.where(x == y, 0.5, np.where(loses, 0.0, 1.0))


def _condition(row) -> np.ndarray:
    """where's condition, as 0/1: the ``mask`` row ``iparam`` rows above."""
    return row.walk.array(row.index - row.iparam, row.op.name) != 0


def _passed(row, g: Tensor, share) -> Tensor:
    """``g`` scaled by ``share`` (a mask, or maximum's halves) where it is not 0, and exactly 0
    where it is: selected, not multiplied, so that an infinite or NaN ``g`` at a position the
    gradient does not reach gives 0 there, as the first-order kernels give it (``inf * 0`` was
    NaN, and a first-order gradient changed with ``create_graph``)."""
    share = np.asarray(share, dtype=row.dtype)
    scaled = g if np.all((share == 1) | (share == 0)) else g * row.constant(share)
    return where(_wrap(share != 0), scaled, 0.0)


VJP = {
    "clamp_min": (lambda row, g: _passed(row, g, row.a_data >= row.param),),
    "clamp_max": (lambda row, g: _passed(row, g, row.a_data <= row.param),),
    "maximum": (lambda row, g: _passed(row, g, _share(row, 0)), lambda row, g: _passed(row, g, _share(row, 1))),
    "minimum": (lambda row, g: _passed(row, g, _share(row, 0)), lambda row, g: _passed(row, g, _share(row, 1))),
    "where": (lambda row, g: _passed(row, g, _condition(row)), lambda row, g: _passed(row, g, ~_condition(row))),
}
