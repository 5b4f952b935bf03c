"""masked_fill with a tensor value, scatter's gradients with repeated indices, and Python ints
out of a small integer type's range: each case runs on both libraries, which must agree on
values, dtypes, gradients (float64 leaves) and exceptions (type and message)."""

from __future__ import annotations

import operator

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")


def _dtype_name(dtype) -> str:
    return str(dtype).split(".")[-1]


def _outcome(module, case):
    """What ``case(module)`` gives: ("value", dtype name, values, grad_fn name, gradients) or
    ("raises", exception type name, message)."""
    try:
        result, leaves = case(module)
    except Exception as error:  # noqa: BLE001 - the exception itself is what is compared
        return ("raises", type(error).__name__, str(error))
    node = type(result.grad_fn).__name__ if result.grad_fn is not None else None
    gradients = []
    if leaves:
        weights = np.linspace(0.5, 1.5, num=max(result.numel(), 1)).reshape(tuple(result.shape))
        (result * module.tensor(weights, dtype=result.dtype)).sum().backward()
        gradients = [(_dtype_name(leaf.grad.dtype), leaf.grad.tolist()) for leaf in leaves]
    return ("value", _dtype_name(result.dtype), result.tolist(), node, gradients)


def _leaves(module, *arrays):
    return [module.tensor(array, dtype=module.float64, requires_grad=True) for array in arrays]


# -- masked_fill: the value takes self's dtype -------------------------------------------------


def _masked_fill(self_values, self_dtype, value, in_place=False):
    def case(module):
        mask = module.tensor([True, False, True])
        fill = value(module) if callable(value) else value
        x = module.tensor(self_values, dtype=getattr(module, self_dtype))
        return (x.masked_fill_(mask, fill) if in_place else x.masked_fill(mask, fill)), []

    return case


def _masked_fill_gradient(in_place: bool, value_dtype: str):
    """float64 ``self``, a 0-d ``value`` leaf (cast into float64; its gradient back)."""

    def case(module):
        (x,) = _leaves(module, [1.0, 2.0, 3.0])
        value = module.tensor(0.5, dtype=getattr(module, value_dtype), requires_grad=True)
        mask = module.tensor([True, False, True])
        y = x * 1.0
        return (y.masked_fill_(mask, value) if in_place else y.masked_fill(mask, value)), [x, value]

    return case


MASKED_FILL = {
    "int64 self, 0-d float value": _masked_fill([1, 2, 3], "int64", lambda m: m.tensor(2.5)),
    "int64 self, 0-d float value, in place": _masked_fill([1, 2, 3], "int64", lambda m: m.tensor(2.5), True),
    "bool self, 0-d int value": _masked_fill([True, False, False], "bool", lambda m: m.tensor(2)),
    "0-d float32 self, 0-d float64 value": lambda m: (
        m.tensor(1.0).masked_fill(m.tensor(True), m.tensor(0.1, dtype=m.float64)),
        [],
    ),
    "uint8 self, 0-d int 300": _masked_fill([1, 2, 3], "uint8", lambda m: m.tensor(300)),
    "uint8 self, int 300": _masked_fill([1, 2, 3], "uint8", 300),
    "1-d value": _masked_fill([1.0, 2.0, 3.0], "float32", lambda m: m.tensor([2.5])),
    "gradient, float64 value": _masked_fill_gradient(False, "float64"),
    "gradient, float32 value, in place": _masked_fill_gradient(True, "float32"),
    "fill_ uint8 with -3": lambda m: (m.tensor([1, 2, 3], dtype=m.uint8).fill_(-3), []),
    "fill_ uint8 with 300": lambda m: (m.tensor([1, 2, 3], dtype=m.uint8).fill_(300), []),
}


# -- scatter: every src entry takes the gradient where it was written ---------------------------


def _scatter(form: str):
    def case(module):
        x, src = _leaves(module, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]])
        index = module.tensor([[0, 0, 2], [1, 1, 1]])  # repeated targets in both rows
        if form == "src":
            return x.scatter(1, index, src), [x, src]
        if form == "value":
            return x.scatter(1, index, 9.0), [x]
        if form == "src, in place":
            return (x * 1.0).scatter_(1, index, src), [x, src]
        return (x * 1.0).scatter_(1, index, value=9.0), [x]

    return case


def _scatter_error(call):
    return lambda module: (call(module), [])


SCATTER = {form: _scatter(form) for form in ("src", "value", "src, in place", "value, in place")} | {
    "int value into uint8": _scatter_error(lambda m: m.tensor([[1, 2]], dtype=m.uint8).scatter(1, m.tensor([[0]]), -3)),
    "out-of-range value": _scatter_error(lambda m: m.tensor([[1, 2]], dtype=m.uint8).scatter(1, m.tensor([[0]]), 300)),
    "negative index": _scatter_error(lambda m: m.tensor([[1.0, 2.0]]).scatter(1, m.tensor([[-1]]), 5.0)),
    "src of another dtype": _scatter_error(
        lambda m: m.tensor([[1.0, 2.0]]).scatter(1, m.tensor([[0]]), m.tensor([[1.0]], dtype=m.float64))
    ),
    "0-d src, 2-d index": _scatter_error(lambda m: m.tensor([[1.0, 2.0]]).scatter(1, m.tensor([[0]]), m.tensor(3.0))),
    "index larger than src": _scatter_error(lambda m: m.zeros(1, 2).scatter(1, m.tensor([[0, 0, 0]]), m.ones(1, 2))),
}


# -- Python ints out of an integer type's range: wrapped as PyTorch converts them --------------

ARITHMETIC = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "//": operator.floordiv,
    "%": operator.mod,
    "&": operator.and_,
    "r-": lambda a, b: b - a,
    "r%": lambda a, b: b % a,
    "r**": lambda a, b: b**a,
}
COMPARISONS = {"<": operator.lt, ">": operator.gt}
# Per dtype: ints out of its range, and (for the comparisons) those whose wrapped value lies on
# the other side of the tensor's values [1, 2, 3]; ``**`` takes the non-negative ones (a
# negative integer exponent raises in both). 2**64 + 5 is past what PyTorch can read.
SCALARS = {
    "uint8": (-3, -300, 300, 100000, 2**63, 2**64 + 5),
    "int16": (100000, -100000, 2**40),
    "int32": (2**31, -(2**31) - 1, 2**63 - 1),
    "int64": (2**63,),
}
FLIPPED = {"uint8": (-3, -300, 2**63), "int16": (100000, -100000), "int32": (2**31, -(2**31) - 1), "int64": (2**63,)}


def _scalar_case(operation, dtype: str, scalar: int):
    def case(module):
        return operation(module.tensor([1, 2, 3], dtype=getattr(module, dtype)), scalar), []

    return case


def _in_place(method: str, scalar: int):
    return lambda m: (getattr(m.tensor([1, 2, 3], dtype=m.uint8), method)(scalar), [])


WRAPPED = {
    f"{dtype} {name} {scalar}": _scalar_case(operation, dtype, scalar)
    for dtype, scalars in SCALARS.items()
    for scalar in scalars
    for name, operation in ARITHMETIC.items()
}
WRAPPED |= {
    f"{dtype} {name} {scalar}": _scalar_case(operation, dtype, scalar)
    for dtype, scalars in FLIPPED.items()
    for scalar in scalars
    for name, operation in COMPARISONS.items()
}
WRAPPED |= {
    f"{dtype} ** {scalar}": _scalar_case(operator.pow, dtype, scalar)
    for dtype, scalars in SCALARS.items()
    for scalar in scalars
    if scalar >= 0
} | {
    "uint8 += -3": _in_place("__iadd__", -3),
    "uint8 -= 300": _in_place("__isub__", 300),
    "uint8 add_(-3)": _in_place("add_", -3),
    "uint8 mul_(-1)": _in_place("mul_", -1),
    "uint8 add(1, alpha=-3)": lambda m: (m.tensor([1, 2, 3], dtype=m.uint8).add(1, alpha=-3), []),
    "uint8 0-d < -3": lambda m: (m.tensor(1, dtype=m.uint8) < -3, []),
    "uint8 < 0-d int64 tensor(-3)": lambda m: (m.tensor([1, 2, 3], dtype=m.uint8) < m.tensor(-3), []),
    "uint8 == 0-d int64 tensor(257)": lambda m: (m.tensor([1, 2, 3], dtype=m.uint8) == m.tensor(257), []),
    "int16 < 0-d int64 tensor(100000)": lambda m: (m.tensor([1, 2], dtype=m.int16) < m.tensor(100000), []),
    "float32 == 0-d float64 tensor(0.1)": lambda m: (m.tensor([0.1, 0.2]) == m.tensor(0.1, dtype=m.float64), []),
    "uint8 clamp(min=-3)": lambda m: (m.tensor([1, 2, 3], dtype=m.uint8).clamp(min=-3), []),
    "uint8 clamp(max=300)": lambda m: (m.tensor([1, 2, 3], dtype=m.uint8).clamp(max=300), []),
}

CASES = {f"masked_fill: {k}": v for k, v in MASKED_FILL.items()}
CASES |= {f"scatter: {k}": v for k, v in SCATTER.items()}
CASES |= {f"wrapped int: {k}": v for k, v in WRAPPED.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_pytorch(name):
    case = CASES[name]
    assert _outcome(tg, case) == _outcome(torch, case)
