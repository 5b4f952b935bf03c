"""Logical and bitwise operators of boolean and integer tensors (``& | ^ ~``, ``logical_*``,
``bitwise_*``), and floor division and remainder (``//``, ``%``) of tensors that take no
gradient, as PyTorch computes them. None of them has a gradient.

Eagerly they are numpy's. Inside ``tapegrad.record`` the logical ones of booleans (masks) are
recorded as comparisons, which a replay recomputes: ``a & b`` as ``a * b != 0``, ``a | b`` as
``a + b != 0``, ``a ^ b`` as ``a != b`` and ``~a`` as ``a == 0``. Integer bitwise ops, ``//`` and
``%`` of recorded values, and ``//`` and ``%`` of tensors that require grad raise
``NotImplementedError`` rather than give a replay a constant or a gradient PyTorch does not."""

from __future__ import annotations

import numbers

import numpy as np

from . import _dtypes
from ._grad_mode import state as _grad_state
from ._replay_hooks import compare
from ._selection import _result_type
from .tensor import Tensor, _wrap, as_tensor, install, on_tape

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


def _division(name: str, a, b) -> Tensor:
    """``a // b`` (``torch.floor_divide``) or ``a % b`` (``torch.remainder``, the sign of ``b``),
    with PyTorch's result dtype, for tensors that take no gradient."""
    if any(isinstance(x, Tensor) and x._requires_grad for x in (a, b)) or _recording(a, b):
        raise NotImplementedError(
            f"{'floor_divide' if name == 'floor_divide' else 'remainder'} of tensors that require grad (or inside "
            "tapegrad.record) is not supported yet"
        )
    result = _result_type(a, b)
    values = [x._data if isinstance(x, Tensor) else _as_number(x, result) for x in (a, b)]
    if result.kind in "biu" and np.any(np.asarray(values[1]) == 0):
        raise RuntimeError("ZeroDivisionError")  # PyTorch's, for an integer division by zero
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (np.floor_divide if name == "floor_divide" else np.remainder)(*values)
    return _wrap(np.asarray(out, dtype=result))


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
        if not isinstance(other, (Tensor, numbers.Number, np.ndarray, list, tuple)):
            return NotImplemented
        return function(self, other)

    return operator


def floor_divide(a, b) -> Tensor:
    """``a // b``, rounded toward minus infinity; follows ``torch.floor_divide`` (for tensors
    that take no gradient: ``NotImplementedError`` otherwise)."""
    return _division("floor_divide", as_tensor(a) if not isinstance(a, numbers.Number) else a, b)


def remainder(a, b) -> Tensor:
    """``a % b``, of the sign of ``b``; follows ``torch.remainder`` (for tensors that take no
    gradient: ``NotImplementedError`` otherwise)."""
    return _division("remainder", as_tensor(a) if not isinstance(a, numbers.Number) else a, b)


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
    }
)
