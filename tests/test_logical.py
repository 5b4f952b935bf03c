"""``& | ^ ~``, ``logical_*``, ``bitwise_*``, ``//`` and ``%``: PyTorch's values, dtypes and errors;
masks combined inside ``tapegrad.record`` replay; what is not supported yet raises."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

from .outcomes import outcomes, values_and_dtype

A, B = [True, False, True], [True, True, False]

# (name, function of the module) -> PyTorch's result, or the exception raised
CASES = [
    ("and", lambda m: m.tensor(A) & m.tensor(B)),
    ("or", lambda m: m.tensor(A) | m.tensor(B)),
    ("xor", lambda m: m.tensor(A) ^ m.tensor(B)),
    ("not", lambda m: ~m.tensor(A)),
    ("and a Python bool", lambda m: m.tensor(A) & True),
    ("a Python bool or", lambda m: False | m.tensor(A)),
    ("integers and", lambda m: m.tensor([6, 3]) & 5),
    ("integers not", lambda m: ~m.tensor([1, 2])),
    ("int32 or", lambda m: m.tensor([1, 2], dtype=m.int32) | 4),
    ("bool and int64", lambda m: m.tensor(A) & m.tensor([1, 0, 1])),
    ("floats and", lambda m: m.tensor([1.0]) & m.tensor([1.0])),
    ("floats not", lambda m: ~m.tensor([1.0])),
    ("logical_and of floats", lambda m: m.logical_and(m.tensor([0.0, 2.0]), m.tensor([1.0, 0.0]))),
    ("logical_not of integers", lambda m: m.logical_not(m.tensor([0, 3]))),
    ("logical_xor", lambda m: m.logical_xor(m.tensor([0, 3]), m.tensor([True, True]))),
    ("integers //", lambda m: m.tensor([5, -5]) // 2),
    ("integers %", lambda m: m.tensor([5, -5]) % 3),
    ("floats % a number", lambda m: m.tensor([5.0, -5.0]) % 3),
    ("a number % floats", lambda m: 7 % m.tensor([2.0, -3.0])),
    ("a number // integers", lambda m: 7 // m.tensor([2, -3])),
    ("floats // floats", lambda m: m.tensor([1.0, 0.3]) // m.tensor([0.1, 0.1])),
    ("floats % floats", lambda m: m.tensor([1.0, 0.3]) % m.tensor([0.1, 0.1])),
    ("integers // 0", lambda m: m.tensor([5]) // 0),
    ("floats // 0", lambda m: m.tensor([5.0, -1.0, 0.0]) // 0),
    ("remainder", lambda m: m.remainder(m.tensor([5, 7]), 3)),
    ("floor_divide", lambda m: m.floor_divide(m.tensor([5.0, 7.0]), 2)),
]


def _outcome(m, function):
    try:
        result = function(m)
    except Exception as error:  # noqa: BLE001 - the class and message are what is compared
        return type(error).__name__, str(error)
    return result.tolist(), str(result.dtype).split(".")[-1]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("function", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_values_dtypes_and_errors_match_pytorch(function):
    torch = pytest.importorskip("torch")
    ours, theirs = _outcome(tg, function), _outcome(torch, function)
    assert ours[0] == theirs[0] or (  # NaN == NaN
        isinstance(ours[0], list) and np.array_equal(ours[0], theirs[0], equal_nan=True)
    )
    assert ours[1] == theirs[1]


def test_exact_values():
    assert (tg.tensor(A) & tg.tensor(B)).tolist() == [True, False, False]
    assert (tg.tensor(A) | tg.tensor(B)).tolist() == [True, True, True]
    assert (~tg.tensor(A)).tolist() == [False, True, False]
    assert (tg.tensor([5, -5]) // 2).tolist() == [2, -3]
    assert (tg.tensor([5.0, -5.0]) % 3).tolist() == [2.0, 1.0]
    assert (tg.tensor([1.0]) % tg.tensor([0.1])).item() == pytest.approx(0.1, rel=1e-6)  # fmod's, not 1 - 10 * 0.1
    with pytest.raises(TypeError, match="only implemented on integer and Boolean-type tensors"):
        ~tg.tensor([1.0])


def test_masks_combined_inside_a_recording_replay_as_eager():
    def f(x, y):
        mask = (x > 0) & (y < 1) | ~(x > 2)
        return (x * mask.double()).sum() + (x * ((x > 0) ^ (y > 0)).double()).sum()

    tape = tg.record(f, np.array([1.0, -1.0, 3.0]), np.array([0.5, 2.0, 0.0]))
    rng = np.random.default_rng(0)
    for _ in range(10):
        xs, ys = rng.uniform(-3, 4, 3), rng.uniform(-1, 2, 3)
        assert tape(xs, ys).item() == f(tg.tensor(xs), tg.tensor(ys)).item()


def test_rounded_divisions_replay_at_other_inputs():
    def f(x, y):
        return (x * (x // y)).sum() + (x % y).sum() + x.fmod(-y).sum() + (x * y).trunc().sum()

    tape = tg.record(f, np.array([1.5, -1.0, 3.0]), np.array([0.5, 2.0, 0.7]))
    rng = np.random.default_rng(1)
    for _ in range(10):
        xs, ys = rng.uniform(-3, 4, 3), rng.uniform(0.3, 2, 3)
        value, (gx, gy) = tape.value_and_grad(xs, ys)
        x, y = tg.tensor(xs, requires_grad=True), tg.tensor(ys, requires_grad=True)
        eager = f(x, y)
        eager.backward()
        assert value.item() == eager.item()
        np.testing.assert_array_equal(gx.numpy(), x.grad.numpy())
        np.testing.assert_array_equal(gy.numpy(), y.grad.numpy())


def test_rounded_divisions_of_integers_are_exact():
    x = tg.tensor([7, -7, 7, -7, 0])
    y = tg.tensor([2, 2, -2, -2, 3])
    assert tg.div(x, y, rounding_mode="trunc").tolist() == [3, -3, -3, 3, 0]
    assert tg.div(x, y, rounding_mode="floor").tolist() == [3, -4, -4, 3, 0]
    assert (x % y).tolist() == [1, 1, -1, -1, 0]
    assert tg.fmod(x, y).tolist() == [1, -1, 1, -1, 0]
    assert x.trunc().tolist() == x.tolist()
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        tg.div(x, tg.zeros_like(x), rounding_mode="trunc")
    with pytest.raises(RuntimeError, match="div expected rounding_mode to be one of None, 'trunc', or 'floor'"):
        tg.div(x, y, rounding_mode="round")


def test_what_is_not_supported_yet_raises():
    # integers computed from a recording's inputs are guarded: a replay at other values refuses
    with pytest.raises(tg.replay.GuardError):
        tg.record(lambda x: x * (x.long() // 2), np.ones(2))(np.full(2, 5.0))
    with pytest.raises(NotImplementedError, match="bitwise and of integer tensors is not recorded"):
        tg.record(lambda x: x * ((x > 0).long() & 1).double(), np.ones(2))


@pytest.mark.parametrize("op", ["%", "//", "fmod"])
def test_float64_remainders_are_pytorch_bits(op):
    """The remainders are made of table ops yet exact: where the rounded quotient crossed an
    integer (``1.0 // 0.1``), the exact remainder tells, as PyTorch's fmod-based kernels."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    a = rng.standard_normal(5000) * rng.choice([1e-3, 1.0, 10.0, 1e4], 5000)
    b = rng.standard_normal(5000) * rng.choice([1e-2, 0.1, 1.0, 3.0], 5000)
    a[:3], b[:3] = [1.0, 0.3, -1.0], [0.1, 0.1, 0.1]

    def run(m):
        x, y = m.tensor(a, requires_grad=True), m.tensor(b, requires_grad=True)
        out = {"%": lambda: x % y, "//": lambda: m.div(x, y, rounding_mode="floor"), "fmod": lambda: m.fmod(x, y)}[op]()
        return out.detach().numpy()

    np.testing.assert_array_equal(run(tg), run(torch))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_remainders_gradient_for_the_divisor_is_minus_the_floor_quotient(dtype):
    """PyTorch's: ``-a.div(b, rounding_mode="floor")``, the quotient ``//`` gives. Taken as
    ``floor(a / b)`` of the rounded division, 1.0 % 0.1 gave b the gradient -10 where 1.0 // 0.1
    is 9: a quarter of the decimal multiples in float64."""
    rng = np.random.default_rng(3)
    b = rng.choice([0.1, 0.3, 0.7, -0.1, 0.9, 1.1, 2.5], 3000)
    a = b * rng.integers(-40, 40, 3000) * rng.choice([1.0, 1.0 + 1e-7, 1.0 - 1e-7], 3000)
    x, y = tg.tensor(a.astype(dtype), requires_grad=True), tg.tensor(b.astype(dtype), requires_grad=True)
    (x % y).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), -(x.detach() // y.detach()).numpy())
    np.testing.assert_array_equal(x.grad.numpy(), np.ones_like(a, dtype))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", ["%", "fmod"])
def test_remainder_gradients_are_pytorchs(op, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    b = rng.choice([0.1, 0.2, 0.3, 0.7, -0.3, 1.1, 2.5, 1e-3], 3000)
    a = b * rng.integers(-50, 50, 3000) * rng.choice([1.0, 1.0 + 1e-7, 1.0 - 1e-7], 3000)
    a, b = np.append(a, [1.0, -2.7, np.inf, 0.0]), np.append(b, [0.1, 0.9, 2.0, 0.0])

    def gradients(m):
        x, y = m.tensor(a.astype(dtype), requires_grad=True), m.tensor(b.astype(dtype), requires_grad=True)
        (x % y if op == "%" else m.fmod(x, y)).sum().backward()
        return x.grad.numpy(), y.grad.numpy()

    for got, expected in zip(gradients(tg), gradients(torch)):
        np.testing.assert_array_equal(got, expected)


def test_comparison_with_none_or_a_list_is_python_s():
    """``t == None`` is False and ``t != None`` True, as PyTorch's (not an elementwise tensor,
    whose truth raised in ``if mask != None:``); ``t < None`` a TypeError."""
    t = tg.tensor([1.0, 3.0])
    assert (t == None) is False and (t != None) is True  # noqa: E711
    assert (t == [1.0, 3.0]) is False
    with pytest.raises(TypeError):
        t < None  # noqa: B015
    assert (t == 1).tolist() == [True, False]


LARGE_AND_INFINITE = (
    [1e10, -1e10, 2.0**40, 1e30, 3e38, 1.0, 5.0, -5.0, 0.0, np.inf, -np.inf, 7.5],
    [3.0, 3.0, 1.5, 7.0, 0.5, 1e-30, np.inf, np.inf, -np.inf, -4.0, 3.0, -np.inf],
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_remainders_of_large_quotients_and_infinities_are_exact(dtype):
    """C's fmod is exact; the remainder of a quotient beyond float32's or float64's integers
    (1e10 % 3 in float32, 2**60 % 3) took one rounding too many (256 for 1), an infinite
    divisor gave NaN. numpy's fmod and remainder are the exact references, as PyTorch's."""
    a, b = (np.array(values, dtype) for values in LARGE_AND_INFINITE)
    x, y = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_array_equal((x % y).detach().numpy(), np.remainder(a, b))
        np.testing.assert_array_equal(tg.fmod(x, y).detach().numpy(), np.fmod(a, b))
        floors = np.floor_divide(a[5:], b[5:])  # (numpy's own beyond float32's integers differs)
        np.testing.assert_array_equal((x // y).detach().numpy()[5:], floors)
    assert (tg.tensor([2.0**60], dtype=tg.float64) % 3.0).item() == 1.0
    # Replayed at other inputs too (the remainders are table ops, not numpy's)
    tape = tg.record(lambda u, v: u % v, np.ones(len(a), dtype), np.ones(len(a), dtype))
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(tape(a, b).numpy(), np.remainder(a, b))


def test_large_remainders_match_pytorch():
    torch = pytest.importorskip("torch")
    for dtype in ("float32", "float64"):
        results = []
        for m in (tg, torch):
            a, b = (m.tensor(values, dtype=getattr(m, dtype)) for values in LARGE_AND_INFINITE)
            results.append([(a % b).numpy(), m.fmod(a, b).numpy(), (a // b).numpy()[5:]])
        for ours, theirs in zip(*results):
            np.testing.assert_array_equal(ours, theirs)


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 2.5, -7.5, 3.0]


def _special_remainders(m, dtype):
    a, b = (values.ravel() for values in np.meshgrid(SPECIAL, SPECIAL))
    x = m.tensor(a, dtype=getattr(m, dtype), requires_grad=True)
    y = m.tensor(b, dtype=getattr(m, dtype), requires_grad=True)
    results = [m.floor_divide(x.detach(), y.detach()), m.div(x.detach(), y.detach(), rounding_mode="floor")]
    for op in (m.remainder, m.fmod):
        out = op(x, y)
        x.grad = y.grad = None
        out.sum().backward()
        results += [out, x.grad, y.grad]
    return [r.detach().numpy() for r in results]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_remainders_at_nan_infinities_zeros_and_tiny_values_follow_pytorch(dtype):
    """NaN with an infinite divisor gave a number, inf // 0 NaN (PyTorch: inf), remainder(1e-30,
    -7.5) 0 (PyTorch's kernel: fmod plus b, rounded once: -7.5), a zero remainder of a negative
    dividend +0.0, and a zero divisor NaN gradients (PyTorch: 1, and -floor(a / b))."""
    torch = pytest.importorskip("torch")
    with np.errstate(all="ignore"):
        ours = _special_remainders(tg, dtype)
    finite_b = np.isfinite(np.meshgrid(SPECIAL, SPECIAL)[1].ravel())
    for step, (a, b) in enumerate(zip(ours, _special_remainders(torch, dtype))):
        if step in (4, 7):  # the divisors' gradients: lost where the divisor is infinite
            a, b = a[finite_b], b[finite_b]
        np.testing.assert_array_equal(a, b, err_msg=f"result {step}")
        if step in (0, 1, 2, 5):  # the values' signed zeros (a gradient's 0 may be -0.0 in PyTorch)
            numbers = ~np.isnan(b)
            np.testing.assert_array_equal(np.signbit(a[numbers]), np.signbit(b[numbers]), err_msg=f"signs of {step}")


def test_remainder_gradient_where_the_divisor_is_zero():
    x = tg.tensor([-2.0, 1.0], dtype=tg.float64, requires_grad=True)
    y = tg.tensor([0.0, 0.0], dtype=tg.float64, requires_grad=True)
    (tg.remainder(x, y) + tg.fmod(x, y)).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]  # 1 each, as where the divisor is not 0
    assert y.grad.tolist() == [np.inf, -np.inf]  # -floor(a / 0) - trunc(a / 0)


def _boolean_arithmetic(m):
    b = m.tensor([True, False])
    calls = [
        lambda: m.floor_divide(b, True), lambda: m.remainder(b, True), lambda: m.fmod(b, b), lambda: b**b,
        lambda: b // b, lambda: b % b, lambda: m.div(b, b, rounding_mode="trunc"), lambda: m.argmax(b),
        lambda: m.argmin(b), lambda: b.abs(), lambda: m.relu(b), lambda: b**2, lambda: b * b, lambda: b + 1,
    ]  # fmt: skip
    return outcomes(calls, values_and_dtype)


def test_boolean_arithmetic_pytorch_refuses_raises():
    # numpy's loops gave numbers (bool ** bool was their and, abs the identity)
    ours = _boolean_arithmetic(tg)
    assert ours[0] == ("NotImplementedError", "\"div_floor_cpu\" not implemented for 'Bool'")
    torch = pytest.importorskip("torch")
    assert ours == _boolean_arithmetic(torch)


def test_integer_division_reads_operands_in_the_result_type():
    # A 0-d int64 -9 with a uint8 tensor is a uint8 247 to PyTorch; the division was signed
    x = tg.tensor([3, 200], dtype=tg.uint8)
    s = tg.tensor(-9)
    assert tg.floor_divide(x, s).tolist() == [0, 0]
    assert tg.remainder(x, s).tolist() == [3, 200] and tg.fmod(x, s).tolist() == [3, 200]
    assert tg.floor_divide(s, x).tolist() == [82, 1]


def test_remainders_of_any_quotient_eagerly_and_guarded_in_a_replay():
    # Two exact rounds hold below quotients of 2**106: fmod(1e40, 3) was -33554429 in float64
    for dtype, (a, b, fmod, remainder) in [
        (tg.float64, (1e40, 3.0, 1.0, 1.0)), (tg.float64, (-1e300, 7.0, -1.0, 6.0)), (tg.float32, (1e35, 3.0, 1.0, 1.0)),
        (tg.float64, (1.0, 1e-45, np.fmod(1.0, 1e-45), np.fmod(1.0, 1e-45))),
    ]:  # fmt: skip
        x, y = tg.tensor(a, dtype=dtype), tg.tensor(b, dtype=dtype)
        assert tg.fmod(x, y).item() == fmod and tg.remainder(x, y).item() == remainder
    tape = tg.record(lambda u, v: u % v, np.array([5.0]), np.array([3.0]))
    assert tape(np.array([7.0]), np.array([2.0])).item() == 1.0
    with pytest.raises(tg.GuardError):  # a replay computes table ops, exact below 2**100 only
        tape(np.array([1e40]), np.array([3.0]))


@pytest.mark.parametrize("dtype", [tg.uint8, tg.int16, tg.int32])
def test_alpha_scales_an_integer_operand_in_the_result_type(dtype):
    # alpha * other was computed in other's own dtype, which wrapped: add(x, uint8 200, alpha=2)
    # gave 145 where PyTorch gives 401, silently.
    big = {tg.uint8: 200, tg.int16: 20000, tg.int32: 2**31 - 1}[dtype]
    other = tg.tensor([big, 1], dtype=dtype)
    assert tg.add(tg.tensor([1.0, 2.0], dtype=tg.float64), other, alpha=2).tolist() == [1.0 + 2 * big, 4.0]
    assert tg.sub(tg.tensor([1.0, 2.0], dtype=tg.float64), other, alpha=2).tolist() == [1.0 - 2 * big, 0.0]
    x = tg.tensor([1.0, 2.0], dtype=tg.float64)
    x.add_(other, alpha=2)
    assert x.tolist() == [1.0 + 2 * big, 4.0]
    assert tg.add(tg.tensor([0, 0]), other, alpha=2).tolist() == [2 * big, 2]  # int64


def test_div_of_a_python_number_by_a_tensor():
    t = tg.tensor([2.0, 4.0])
    assert tg.div(7, t, rounding_mode="floor").tolist() == [3.0, 1.0]
    assert tg.div(7, t, rounding_mode="trunc").tolist() == [3.0, 1.0]
    assert tg.true_divide(7, t).tolist() == [3.5, 1.75]
    assert tg.div(-7, tg.tensor([2, 4]), rounding_mode="floor").tolist() == [-4, -2]


def test_integer_tensors_take_float_scales_as_integers():
    # PyTorch converts beta, alpha (and index_add's alpha) to the integer type; the product
    # scaled by a float came out float32 (37.5 where PyTorch gives 36), index_add added 1.5 times.
    a = tg.ones(2, 2, dtype=tg.int64) * 3
    b = tg.ones(1, 2, 2, dtype=tg.int64)
    out = tg.addmm(a, a, a, beta=0.5, alpha=2.0)
    assert out.dtype == tg.int64 and out.tolist() == [[36, 36], [36, 36]]
    assert tg.baddbmm(b, b, b, beta=0.5, alpha=2.0).tolist() == [[[4, 4], [4, 4]]]
    assert tg.addbmm(a, b, b, beta=0.5, alpha=2.0).tolist() == [[4, 4], [4, 4]]
    assert a.index_add(0, tg.tensor([0]), a[:1], alpha=1.5).tolist() == [[6, 6], [3, 3]]
    small = tg.ones(3, 2, 2, dtype=tg.int32)  # (its sum over the batch promoted to int64)
    assert tg.addbmm(tg.ones(2, 2, dtype=tg.int32), small, small).dtype == tg.int32


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.add(m.tensor([1, 2]), 3, alpha=2.5),
        lambda m: m.sub(m.tensor([10, 20], dtype=m.uint8), 3, alpha=0.5),
        lambda m: m.add(m.tensor([True, False]), m.tensor([True, True]), alpha=2.5),
    ],
)
def test_a_float_alpha_with_an_integer_result_raises(call):
    with pytest.raises(RuntimeError, match="For integral input tensors, argument alpha must not be a floating point"):
        call(tg)


def test_alpha_of_a_boolean_result_is_a_boolean():
    out = tg.add(tg.tensor([True, False]), True, alpha=2)  # int64 [3, 2] and [2, 1] before
    assert out.dtype == tg.bool and out.tolist() == [True, True]
    assert tg.add(tg.tensor([1.0, 2.0]), 3, alpha=2.5).tolist() == [8.5, 9.5]
