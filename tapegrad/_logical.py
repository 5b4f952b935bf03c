"""Logical and bitwise operators of boolean and integer tensors (``& | ^ ~``, ``logical_*``,
``bitwise_*``), and the rounded divisions and remainders (``//``, ``%``, ``fmod``, ``trunc``,
``div(rounding_mode=...)``), as PyTorch computes them. Only the remainders have a gradient.

Eagerly they are numpy's. Inside ``tapegrad.record`` the logical ones of booleans (masks) are
recorded as comparisons, which a replay recomputes: ``a & b`` as ``a * b != 0``, ``a | b`` as
``a + b != 0``, ``a ^ b`` as ``a != b`` and ``~a`` as ``a == 0``. Integer bitwise ops and integer
``//`` and ``%`` of recorded values raise ``NotImplementedError`` rather than give a replay a
constant. Floating-point divisions and remainders are made of table ops, which differentiate
and replay: ``a // b`` is ``floor(a / b)``, ``a % b`` is ``a - b * floor(a / b)``, ``fmod(a, b)``
is ``a - b * trunc(a / b)``, each remainder computed exactly (PyTorch's gradients: 1 for ``a``,
``-floor(a / b)`` or ``-trunc(a / b)`` for ``b``; its values: see ``_differentiable``).
One definition, with a gradient or without, so that a value never depends on requires_grad."""

from __future__ import annotations

import numbers

import numpy as np

from . import _dtypes
from ._grad_mode import state as _grad_state
from ._record import name_node, record
from ._replay_hooks import compare
from ._selection import _result_type
from ._selection import where as _where
from .tensor import Tensor, _wrap, as_tensor, holds, install, on_tape

_BITWISE = {"and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}


def _recording(*operands) -> bool:
    return _grad_state.recording is not None and any(isinstance(x, Tensor) and on_tape(x) for x in operands)


def _bitwise(name: str, a, b) -> Tensor:
    """``a & b``, ``a | b``, ``a ^ b`` of boolean or integer tensors (and Python bools or ints):
    ``torch.bitwise_and`` and its relatives, with PyTorch's result dtype."""
    if isinstance(a, Tensor) and isinstance(b, Tensor) and a._data.dtype == b._data.dtype:
        result = a._data.dtype  # the common case (two masks), without the promotion's lookups
    else:
        result = _result_type(a, b)
    if result.kind not in "biu":
        raise NotImplementedError(
            f"\"bitwise_{name}_cpu\" not implemented for '{_dtypes.from_numpy_dtype(result).type_name}'"
        )
    if _recording(a, b):
        if result.kind != "b":
            raise NotImplementedError(f"tapegrad.record: bitwise {name} of integer tensors is not recorded yet")
        return _logical_recorded(name, as_tensor(a), as_tensor(b))
    values = [x._data if isinstance(x, Tensor) else _as_number(x, result) for x in (a, b)]
    return _wrap(np.asarray(_BITWISE[name](*values), dtype=result))


def _logical_recorded(name: str, a: Tensor, b: Tensor) -> Tensor:
    """Booleans on a recording's tape, combined by comparisons of recorded values (a replay holds
    booleans as 0 and 1)."""
    if name == "xor":
        return compare(a.double(), b.double(), "ne")
    combined = a.double() * b.double() if name == "and" else a.double() + b.double()
    return compare(combined, 0.0, "ne")


def bitwise_not(x: Tensor) -> Tensor:
    """``~x`` of a boolean or integer tensor; follows ``torch.bitwise_not``. Raises PyTorch's
    ``TypeError`` for a floating-point one."""
    kind = x._data.dtype.kind
    if kind not in "biu":
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    if _recording(x):
        if kind != "b":
            raise NotImplementedError("tapegrad.record: bitwise not of integer tensors is not recorded yet")
        return compare(x.double(), 0.0, "eq")
    return _wrap(np.invert(x._data))


def _logical(name: str, a, b=None) -> Tensor:
    """``torch.logical_and/or/xor/not``: each operand true where it is not zero; a bool result."""
    operands = (a,) if name == "not" else (a, b)
    truths = [x if isinstance(x, Tensor) and x._data.dtype.kind == "b" else _truth(as_tensor(x)) for x in operands]
    if name == "not":
        return bitwise_not(truths[0])
    return _bitwise(name, truths[0], truths[1])


def _truth(x: Tensor) -> Tensor:
    return compare(x, 0, "ne") if x._data.dtype.kind != "b" else x


_NUMPY = {"floor_divide": np.floor_divide, "remainder": np.remainder, "fmod": np.fmod, "trunc_divide": None}
# PyTorch's nodes, by whether the other operand is a tensor or a number (two overloads)
_NODES = {
    "floor_divide": ("DivBackward2", "DivBackward2"),  # (div with a rounding mode: one node either way)
    "trunc_divide": ("DivBackward2", "DivBackward2"),
    "remainder": ("RemainderBackward1", "RemainderBackward0"),
    "fmod": ("FmodBackward1", "FmodBackward0"),
}


def _division(name: str, a, b) -> Tensor:
    """``a // b`` (``floor_divide``), ``a % b`` (``remainder``, the sign of ``b``), ``fmod(a, b)``
    (the sign of ``a``) or ``div(a, b, rounding_mode="trunc")`` (``trunc_divide``), with
    PyTorch's result dtype: numpy's where no gradient is taken, else made of table ops."""
    a, b = _dtypes.scalar(a), _dtypes.scalar(b)
    result = _result_type(a, b)
    if result.kind == "f":  # (one definition with a gradient or without: the same bits either way)
        return _differentiable(name, a, b, result)
    if result.kind == "b":  # PyTorch's kernels have no boolean version (numpy's gave numbers)
        kernel = {"floor_divide": "div_floor", "trunc_divide": "div_trunc"}.get(name, name)
        raise NotImplementedError(f"\"{kernel}_cpu\" not implemented for 'Bool'")
    if _recording(a, b):
        return _recorded_integer_division(name, a, b, result)
    # Tensors in the result type first, as PyTorch's kernels read them (uint8 // a 0-d -9 is // 247)
    values = [x._data.astype(result, copy=False) if isinstance(x, Tensor) else _as_number(x, result) for x in (a, b)]
    if result.kind in "biu" and np.any(np.asarray(values[1]) == 0):
        raise RuntimeError("ZeroDivisionError")  # PyTorch's, for an integer division by zero
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "trunc_divide":
            out = _trunc_divide(*values, result)
        else:
            out = _NUMPY[name](*values)
    return _wrap(np.asarray(out, dtype=result))


def _recorded_integer_division(name: str, a, b, result: np.dtype) -> Tensor:
    """``_division`` of integers inside ``tapegrad.record`` (``x[i % n]``): the float rows in
    float64, which holds the integers exactly as the replay does (its integer checks guard the
    range), cast to the result type. A divisor of 0 raises PyTorch's error here and fails a
    guard in a replay: float64 would give inf or NaN, cast to some integer silently."""
    divisor = b if isinstance(b, Tensor) else _wrap(np.asarray(_as_number(b, result)))
    if not holds(f"{name}()'s divisor", divisor, lambda v: v != 0):
        raise RuntimeError("ZeroDivisionError")

    def wide(x):
        return x.double() if isinstance(x, Tensor) else float(_as_number(x, result))

    quotient = _differentiable(name, wide(a), wide(b), np.dtype(np.float64))
    # Its values are integers, which the replay holds as they are: a copy row, where a cast of
    # floats in general truncates and guards each value it read
    return record("mask", (quotient,), quotient._data.astype(result))


def _trunc_divide(a, b, result: np.dtype):
    """The integer quotient rounded toward zero: floor division, corrected where the signs
    differ and something remains."""
    a, b = np.asarray(a, result), np.asarray(b, result)
    quotient = np.floor_divide(a, b)
    return quotient + ((np.remainder(a, b) != 0) & ((a < 0) != (b < 0)))


def _differentiable(name: str, a, b, result: np.dtype) -> Tensor:
    """The rounded quotient or the remainder of floats, of table ops, as PyTorch's
    ``fmod``-based kernels give them:

    - ``fmod``: C's exact ``fmod`` (``_fmod``), in float64 whatever the dtype (a float32
      remainder is a float32 number); ``remainder``: that, plus ``b`` where the signs of the two
      differ, rounded once, as PyTorch's kernel (``remainder(1e-30, -7.5)`` is -7.5).
    - ``floor_divide``: ``floor(a / b)``, one less where the rounded quotient crossed an integer
      the true one had not reached (``1.0 // 0.1`` is 9, not 10: bit for bit in float64; in
      float32, not beyond 2**24, which float32 cannot count); ``a / b`` where ``b`` is 0.
    - ``div(rounding_mode="trunc")``: PyTorch's ``trunc(a / b)`` as it comes.

    An infinite ``b`` leaves a finite ``a`` (``remainder``: ``b`` where the signs differ; the
    quotient 0 or -1); a NaN, an infinite ``a`` (or, for the remainders, a zero ``b``) gives
    NaN. The remainders' gradient is PyTorch's: 1 for ``a``, ``-floor(a / b)`` (``remainder``)
    or ``-trunc(a / b)`` (``fmod``) for ``b``."""
    a = a.to(_dtypes.from_numpy_dtype(result)) if isinstance(a, Tensor) and a._data.dtype != result else a
    b = b.to(_dtypes.from_numpy_dtype(result)) if isinstance(b, Tensor) and b._data.dtype != result else b
    if not isinstance(a, Tensor):  # a number (``7.0 % t``): the quotient's operators are the tensor's
        a = _wrap(np.asarray(a, result))
    node = _NODES[name][0 if isinstance(b, Tensor) else 1]
    if not isinstance(b, Tensor):
        b = _wrap(np.asarray(b, result))
    floor = name in ("floor_divide", "remainder")

    def rounded(quotient):
        return quotient.floor() if floor else trunc(quotient)

    if name == "trunc_divide":  # PyTorch's is trunc(a / b) as it comes, its gradient 0
        out = rounded(a.detach() / b.detach())  # (through a / b, 0 / 0: NaN where b is 0)
        if a._requires_grad or b._requires_grad or _recording(a, b):
            out = out - (0.0 - _zero_gradient(a, a.detach(), b, b.detach()))
        return name_node(out, node)
    wide = result != np.float64
    a64, b64 = (a.double(), b.double()) if wide else (a, b)
    # The value from the operands' values alone (detached, still recorded: a replay computes
    # it anew), its gradient from ``carrier`` below: the quotient's zero derivative, taken
    # through a / b, gave 0 / 0 = NaN gradients where b is 0.
    a_value, b_value = a64.detach(), b64.detach()
    infinite_b = b_value.abs() == np.inf
    undefined = a_value.isnan() | b_value.isnan() | (a_value.abs() == np.inf)
    if name == "floor_divide":
        out = _floor_quotient(a_value, b_value)
        differs = (a_value != 0) & ((a_value < 0) != (b_value < 0))  # the signs, where b is infinite
        # (0 of the sign of a / b, as PyTorch's, where the quotient is 0)
        out = _where(infinite_b, _where(differs, -1.0, a_value / b_value), out)
        out = _where(b_value == 0, a_value / b_value, _where(undefined, np.nan, out))  # PyTorch's a / 0
        if a64._requires_grad or b64._requires_grad or _recording(a64, b64):  # on the graph, a zero gradient
            out = out - (0.0 - _zero_gradient(a64, a_value, b64, b_value))  # (keeps a -0.0 of out)
        return name_node(out.to(_dtypes.from_numpy_dtype(result)) if wide else out, node)
    if _recording(a64, b64):
        remainder = _fmod(a_value, b_value)  # table ops, which a replay computes anew
        # Exact below quotients of 2**106 (and where Dekker's split does not overflow, below
        # 2**996); beyond, the result is no remainder: |r| >= |b|, or NaN. A truth guard on it,
        # so that a replay there raises GuardError rather than answer wrongly (vmap records that
        # slice again, and runs it eagerly, exact).
        finite = a_value.isfinite() & b_value.isfinite() & (b_value != 0)
        if not bool(((remainder.abs() < b_value.abs()) | ~finite).all()):
            raise NotImplementedError(f"{name} of a quotient beyond 2**106 inside tapegrad.record")
    else:  # C's fmod, exact at any quotient (the table ops' two rounds are exact below 2**106)
        with np.errstate(invalid="ignore", divide="ignore"):
            remainder = _wrap(np.fmod(a_value._data, b_value._data))
    if floor:  # PyTorch's remainder: fmod, plus b where their signs differ (one rounding)
        remainder = _where((remainder != 0) & ((remainder < 0) != (b_value < 0)), remainder + b_value, remainder)
    out = _where(undefined | (b_value == 0), np.nan, remainder)
    # The gradient, PyTorch's: 1 for a, -floor(a / b) (remainder) or -trunc(a / b) (fmod) for b.
    # The carrier's value is 0, of either sign (NaN only where the
    # value is NaN already); out - (0 - carrier) keeps a -0.0 result, as out + carrier did not.
    if a64._requires_grad or b64._requires_grad or _recording(a64, b64):
        step = _where(infinite_b, 0.0, b64 - b_value)  # (its gradient is lost where b is infinite)
        if floor:  # PyTorch's floor division, as ``//``: NaN for an infinite a, but a / 0 by 0
            # (``floor(a / b)`` as rounded: 1.0 % 0.1 took -10 for b, where 1.0 // 0.1 is 9)
            quotient = _where((a_value.abs() == np.inf) & (b_value != 0), np.nan, _floor_quotient(a_value, b_value))
        else:  # PyTorch's ``trunc(a / b)``, divided in the operands' dtype (float32's 2 / 0.1 is 20)
            quotient = rounded(a_value / b_value)
            if wide:  # (float64's where float32's overflows: the carrier's 0 * inf was a NaN value,
                # and the float64 gradient, cast back, is float32's inf all the same)
                narrow = rounded((a.detach() / b.detach()).double())
                quotient = _where(narrow.abs() == np.inf, quotient, narrow)
        out = out - (0.0 - ((a64 - a_value) - step * quotient))
    return name_node(out.to(_dtypes.from_numpy_dtype(result)) if wide else out, node)


def _floor_quotient(a_value: Tensor, b_value: Tensor) -> Tensor:
    """PyTorch's floor division of float64 values: ``floor(a / b)``, one less where the rounded
    quotient crossed an integer the true one had not reached (the exact remainder then has the
    other sign than b's): ``1.0 // 0.1`` is 9, not 10."""
    quotient = (a_value / b_value).floor()
    remainder = _exact_remainder(a_value, b_value, quotient, np.dtype(np.float64))
    return _where((remainder != 0) & ((remainder < 0) != (b_value < 0)), quotient - 1.0, quotient)


def _zero_gradient(a: Tensor, a_value: Tensor, b: Tensor, b_value: Tensor) -> Tensor:
    """Zeros on the graph of ``a`` and ``b`` (their detached values given), with a zero
    gradient in both, NaN-free where they are infinite: a rounded quotient's."""
    return sum(_where(v.isfinite(), (w - v) * 0.0, 0.0) for w, v in ((a, a_value), (b, b_value)))


def _fmod(a: Tensor, b: Tensor) -> Tensor:
    """C's ``fmod`` of finite float64 ``a`` and nonzero ``b``, exactly (of the sign of ``a``, -0.0
    for a zero remainder of a negative ``a``): ``a - b * q`` for ``q = trunc(a / b)`` without
    rounding (``_exact_remainder``), twice: the rounded quotient is off by up to its ulp, whose
    multiple of ``b`` the second round takes away. Exact while the quotient is below 2**106
    (float32's 1e30 % 7 included); then, where the remainder has the wrong sign (the quotient
    overshot), ``|b|`` of ``a``'s sign is added back. An infinite ``b`` leaves ``a``."""
    float64 = np.dtype(np.float64)
    remainder = _exact_remainder(a, b, trunc(a / b), float64)
    remainder = _exact_remainder(remainder, b, trunc(remainder / b), float64)
    overshot = (remainder != 0) & ((remainder < 0) != (a < 0))
    remainder = _where(overshot, remainder + _where((a < 0) == (b < 0), b, -b), remainder)
    remainder = _where(remainder == 0, a * 0.0, remainder)  # the zero of a's sign
    return _where(b.abs() == np.inf, a, remainder)


# Dekker's splitting constants, 2**ceil(p/2) + 1 for a p-bit significand: a number times it,
# less that less the number, keeps its high half (``_exact_remainder``).
_SPLIT = {np.dtype(np.float64): 134217729.0, np.dtype(np.float32): 4097.0}


def _exact_remainder(a: Tensor, b: Tensor, q: Tensor, result: np.dtype) -> Tensor:
    """``a - b * q`` without rounding (for an integer ``q`` near ``a / b``, where the remainder
    is a float): the product is its rounded value plus an error computed exactly from the
    factors' halves (Dekker's two-product), and ``a`` less the rounded product is exact
    (Sterbenz: the two are within a factor of two, or the product is 0). Its gradient is that
    of ``a - b * q``: the halves' derivatives sum to the factor's."""
    split = _SPLIT[result]

    def halves(v):
        scaled = v * split
        high = scaled - (scaled - v)
        return high, v - high

    product = b * q
    (b_high, b_low), (q_high, q_low) = halves(b), halves(q)
    error = ((b_high * q_high - product) + b_high * q_low + b_low * q_high) + b_low * q_low
    return (a - product) - error


def trunc(input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's names
    """Each element rounded toward zero (integers unchanged), same shape and dtype; its
    gradient is zero. Follows ``torch.trunc`` (and ``torch.fix``); raises
    ``NotImplementedError`` for booleans, as PyTorch."""
    if input._data.dtype.kind == "b":
        raise NotImplementedError("\"trunc_vml_cpu\" not implemented for 'Bool'")
    if input._data.dtype.kind != "f":
        return input.clone()
    if not (input._requires_grad or _recording(input)):
        return _wrap(np.trunc(input._data))
    # floor above zero, ceil below: -0.5 gives -0.0 as np.trunc does
    return name_node(_where(input < 0, -((-input).floor()), input.floor()), "TruncBackward0")


def _as_number(value, result: np.dtype):
    """A Python int operand as PyTorch converts it into an integer result type: wrapped (``uint8
    % -2`` is ``% 254``, ``uint8 // 256`` a division by zero); numpy raised ``OverflowError``."""
    return _dtypes.wrapped_int(value, result) if type(value) is int and result.kind in "iu" else value


def _swap(function):
    return lambda self, other: function(other, self)


def _operand_check(function):
    """A Python operator with something that is not a tensor, number or array: NotImplemented,
    so that Python tries the other operand's method, as PyTorch's operators do."""

    def operator(self, other):
        other = _dtypes.scalar(other)  # (numpy's own operator would take a numpy bool)
        if not isinstance(other, (Tensor, numbers.Number, np.ndarray, list, tuple)):
            return NotImplemented
        return function(self, other)

    return operator


def floor_divide(a, b) -> Tensor:
    """``a // b``, rounded toward minus infinity; follows ``torch.floor_divide`` (for tensors
    that take no gradient: ``NotImplementedError`` otherwise)."""
    return _division("floor_divide", as_tensor(a) if not isinstance(a, numbers.Number) else a, b)


def remainder(a, b) -> Tensor:
    """``a % b``, of the sign of ``b``; follows ``torch.remainder``. Its gradient is 1 for ``a``
    and ``-floor(a / b)`` for ``b``."""
    return _division("remainder", as_tensor(a) if not isinstance(a, numbers.Number) else a, b)


def fmod(input, other) -> Tensor:  # noqa: A002
    """``input - other * trunc(input / other)``: the remainder of the sign of ``input`` (C's
    ``fmod``); follows ``torch.fmod``. Its gradient is 1 for ``input`` and
    ``-trunc(input / other)`` for ``other``."""
    return _division("fmod", as_tensor(input), other)


_ROUNDING_MODES = {"floor": "floor_divide", "trunc": "trunc_divide"}


def div(input, other, *, rounding_mode=None) -> Tensor:  # noqa: A002
    """``input / other``: true division (``rounding_mode=None``; an integer quotient in the
    default float dtype), or rounded toward zero (``"trunc"``) or down (``"floor"``) in the
    operands' promoted dtype, with a zero gradient. Follows ``torch.div``; raises PyTorch's
    ``RuntimeError`` for another mode, and for an integer division by zero."""
    # A number stays one for the promotion (as a 0-d int64 tensor, 7 // an int32 came out int64)
    if not (isinstance(input, numbers.Number) and isinstance(other, Tensor)):
        input = as_tensor(input)  # noqa: A001
    if rounding_mode is None:
        return input / other
    if rounding_mode not in _ROUNDING_MODES:
        raise RuntimeError(
            f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'"
        )
    return _division(_ROUNDING_MODES[rounding_mode], input, other)


def _div_(self, other, *, rounding_mode=None) -> Tensor:
    from ._record import in_place

    return in_place(self, lambda t: div(t, other, rounding_mode=rounding_mode), "Div")


def _public(name: str, function, follows: str):
    function.__name__ = function.__qualname__ = name
    function.__doc__ = (
        f"Elementwise, broadcast; follows ``torch.{follows}``: a bool tensor for the logical ones, PyTorch's "
        "result dtype for the bitwise ones (booleans and integers; ``NotImplementedError`` with PyTorch's "
        "message for floats). No gradient."
    )
    return function


logical_and = _public("logical_and", lambda a, b: _logical("and", a, b), "logical_and")
logical_or = _public("logical_or", lambda a, b: _logical("or", a, b), "logical_or")
logical_xor = _public("logical_xor", lambda a, b: _logical("xor", a, b), "logical_xor")
logical_not = _public("logical_not", lambda a: _logical("not", a), "logical_not")
bitwise_and = _public("bitwise_and", lambda a, b: _bitwise("and", a, b), "bitwise_and")
bitwise_or = _public("bitwise_or", lambda a, b: _bitwise("or", a, b), "bitwise_or")
bitwise_xor = _public("bitwise_xor", lambda a, b: _bitwise("xor", a, b), "bitwise_xor")


install(
    {
        "__and__": _operand_check(bitwise_and),
        "__rand__": _operand_check(_swap(bitwise_and)),
        "__or__": _operand_check(bitwise_or),
        "__ror__": _operand_check(_swap(bitwise_or)),
        "__xor__": _operand_check(bitwise_xor),
        "__rxor__": _operand_check(_swap(bitwise_xor)),
        "__invert__": bitwise_not,
        "__floordiv__": _operand_check(floor_divide),
        "__rfloordiv__": _operand_check(_swap(floor_divide)),
        "__mod__": _operand_check(remainder),
        "__rmod__": _operand_check(_swap(remainder)),
        "bitwise_and": bitwise_and,
        "bitwise_or": bitwise_or,
        "bitwise_xor": bitwise_xor,
        "bitwise_not": bitwise_not,
        "logical_and": logical_and,
        "logical_or": logical_or,
        "logical_xor": logical_xor,
        "logical_not": logical_not,
        "floor_divide": floor_divide,
        "remainder": remainder,
        "fmod": fmod,
        "trunc": trunc,
        "fix": trunc,
        "div": div,
        "divide": div,
        "div_": _div_,
        "divide_": _div_,
        "fmod_": lambda self, other: _in_place(self, fmod, other, "Fmod"),
        "trunc_": lambda self: _in_place(self, lambda t, _: trunc(t), None, "Trunc"),
        "fix_": lambda self: _in_place(self, lambda t, _: trunc(t), None, "Trunc"),
    }
)


def _in_place(self, function, other, label: str) -> Tensor:
    from ._record import in_place

    return in_place(self, lambda t: function(t, other), label)
