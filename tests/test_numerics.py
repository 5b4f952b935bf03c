"""Accuracy where formulas cancel, overflow or underflow: each against the exact value (long
double or a closed form), the digits a float32 or float64 result must keep."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

F = tg.nn.functional
LOGITS = np.array([-30, -25, -12, -8, -1, 0, 1, 8, 12, 25, 30], np.float64)


def _softplus(z):
    return np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _relative(got, exact):
    return np.max(np.abs(got - exact) / np.maximum(np.abs(exact), np.finfo(np.float64).tiny))


@pytest.mark.parametrize("target", [0.0, 1.0, 0.3])
@pytest.mark.parametrize("pos_weight", [None, 2.0])
def test_bce_with_logits_keeps_its_digits_where_the_prediction_is_confident(target, pos_weight):
    # x + softplus(-x) for t = 0 kept three float32 digits at x = -8, and its gradient as few
    x = tg.tensor(LOGITS.astype(np.float32), requires_grad=True)
    weight = None if pos_weight is None else tg.tensor([pos_weight])
    loss = F.binary_cross_entropy_with_logits(x, tg.full_like(x, target), reduction="none", pos_weight=weight)
    loss.sum().backward()
    z = LOGITS.astype(np.longdouble)
    w = 1.0 if pos_weight is None else pos_weight
    tolerance = 3e-7 if target in (0.0, 1.0) else 1e-6  # (a soft target's gradient is a difference)
    assert _relative(loss.detach().numpy(), (1 - target) * _softplus(z) + w * target * _softplus(-z)) < tolerance
    assert _relative(x.grad.numpy(), (1 - target) * _sigmoid(z) - w * target * _sigmoid(-z)) < tolerance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_of_a_small_probability_takes_log1p(dtype):
    p = tg.tensor(np.array([3e-7, 1e-5], dtype))
    loss = F.binary_cross_entropy(p, tg.zeros_like(p), reduction="none")
    exact = -np.log1p(-np.array([3e-7, 1e-5], np.longdouble))
    assert _relative(loss.numpy(), exact) < 4 * np.finfo(dtype).eps


def test_softplus_with_a_threshold_above_twenty_is_exact_there():
    x = tg.tensor([21.0, 22.0, 30.0], dtype=tg.float64, requires_grad=True)
    y = F.softplus(x, threshold=40.0)
    y.sum().backward()
    z = np.array([21.0, 22.0, 30.0], np.longdouble)
    assert _relative(y.detach().numpy(), z + np.log1p(np.exp(-z))) < 4e-16  # the cut at 20 was 1.3e-11 off at 22
    assert _relative(x.grad.numpy(), _sigmoid(z)) < 4e-16


def test_hypot_neither_overflows_nor_underflows_in_float32():
    x = tg.tensor([3e19, 3e-25, 3.0, float("inf")], requires_grad=True)
    y = tg.tensor([4e19, 4e-25, 4.0, float("nan")], requires_grad=True)
    h = tg.hypot(x, y)
    h[:3].sum().backward()
    np.testing.assert_allclose(h.detach().numpy(), [5e19, 5e-25, 5.0, np.inf], rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy()[:3], [0.6] * 3, rtol=1e-6)
    np.testing.assert_allclose(y.grad.numpy()[:3], [0.8] * 3, rtol=1e-6)


def test_sinc_of_a_huge_argument_has_a_finite_gradient():
    x = tg.tensor([1e19, -3e20, 0.5], requires_grad=True)
    tg.sinc(x).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    exact = (np.cos(np.pi * 0.5) * np.pi * 0.5 - np.sin(np.pi * 0.5)) / (np.pi * 0.5**2)
    np.testing.assert_allclose(x.grad.numpy()[2], exact, rtol=1e-6)


def _offset_data(shape, dtype=np.float32, offset=1e4, seed=0):
    return (offset + np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def test_var_gradient_of_offset_data_keeps_its_digits():
    # the mean was summed in float32: every element of a 10^6 gradient was -2.6e-4 (exact 7e-7)
    data = _offset_data(200_000)
    x = tg.tensor(data, requires_grad=True)
    x.var().backward()
    exact = 2 * (data.astype(np.float64) - data.astype(np.float64).mean()) / (data.size - 1)
    assert np.linalg.norm(x.grad.numpy() - exact) / np.linalg.norm(exact) < 1e-6


@pytest.mark.parametrize("keepdim", [False, True])
def test_float32_sums_over_leading_dimensions_and_their_gradients(keepdim):
    data = _offset_data((200_000, 4))
    exact = data.astype(np.float64).mean(0, keepdims=keepdim)
    np.testing.assert_allclose(tg.tensor(data).mean(0, keepdim=keepdim).numpy(), exact, rtol=2e-7)
    np.testing.assert_allclose(tg.tensor(data).sum((0,)).numpy(), data.astype(np.float64).sum(0), rtol=2e-7)
    middle = data.reshape(1000, 200, 4)  # over the first and last: numpy in float64
    np.testing.assert_allclose(tg.tensor(middle).sum((0, 2)).numpy(), middle.astype(np.float64).sum((0, 2)), rtol=2e-7)
    np.testing.assert_allclose(
        tg.tensor(data).logsumexp(0).numpy(),
        np.log(np.exp(data - data.max(0)).astype(np.float64).sum(0)) + data.max(0),
        rtol=2e-7,
    )
    # a bias's gradient: the sum of the rows of the gradient reaching it
    upstream = _offset_data((200_000, 4), offset=1.0, seed=1)
    bias = tg.zeros(4, requires_grad=True)
    ((tg.tensor(data) + bias) * tg.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(bias.grad.numpy(), upstream.astype(np.float64).sum(0), rtol=2e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_replayed_sums_are_as_accurate_as_eager(dtype):
    data = _offset_data((4, 250_000), dtype, offset=1.0)
    other = _offset_data(250_000, dtype, offset=1.0, seed=1)
    functions = {
        "sum(1)": lambda x, y: x.sum(1),
        "sum(0)": lambda x, y: x.sum(0),
        "dot": lambda x, y: tg.dot(x[0], y).reshape(1),
        "logsumexp(1)": lambda x, y: x.logsumexp(1),
    }
    wide = data.astype(np.longdouble)
    exact = {
        "sum(1)": wide.sum(1),
        "sum(0)": wide.sum(0),
        "dot": np.array([(wide[0] * other.astype(np.longdouble)).sum()]),
        "logsumexp(1)": np.log(np.exp(wide).sum(1)),
    }
    eps = np.finfo(dtype).eps
    for name, function in functions.items():
        replayed = tg.record(function, data, other)(data, other)
        eager = function(tg.tensor(data), tg.tensor(other)).numpy()
        error, eager_error = _relative(np.asarray(replayed), exact[name]), _relative(eager, exact[name])
        assert error <= max(4 * eager_error, 8 * eps), name


def test_a_quotients_gradient_in_its_divisor_divides_twice():
    # -g a / (b * b): b * b under- or overflowed first
    a = tg.tensor([1.24348e-20, 1e30])
    b = tg.tensor([8.46102e-25, 1e20], requires_grad=True)
    (a / b).sum().backward()
    np.testing.assert_allclose(
        b.grad.numpy(), -(np.array([1.24348e-20, 1e30]) / [8.46102e-25, 1e20]) / [8.46102e-25, 1e20], rtol=1e-6
    )


def test_softplus_with_a_large_threshold_has_no_nan_gradient_far_below():
    x = tg.tensor([-800.0, -100.0, 22.0], dtype=tg.float64, requires_grad=True)
    F.softplus(x, 1.0, 30.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), _sigmoid(np.array([-800.0, -100.0, 22.0])), rtol=1e-12)


@pytest.mark.parametrize("name", ["sum", "logsumexp"])
def test_replayed_compensated_sums_keep_an_infinity(name):
    data = np.array([np.inf] + [1.0] * 200)
    function = (lambda x: x.sum()) if name == "sum" else (lambda x: x.logsumexp(0))
    assert float(tg.record(function, data)(data)) == np.inf


def test_hypot_keeps_pytorchs_dtype_and_replays_at_other_scales():
    assert tg.hypot(tg.tensor([3.0]), tg.tensor(4.0, dtype=tg.float64)).dtype == tg.float32
    tape = tg.record(tg.hypot, np.array([1e-30, 2e-30], np.float32), np.array([1e-30, 2e-30], np.float32))
    np.testing.assert_allclose(tape(np.array([3.0, 6.0], np.float32), np.array([4.0, 8.0], np.float32)), [5.0, 10.0])


def test_hypot_recorded_scales_each_replay_by_its_own_values():
    # Inside tapegrad.record (and vmap, which records) the plain formula squared a replay's
    # values: 3e20 and 4e20 gave inf, 3e-25 and 4e-25 gave 0, with gradients inf and 0.
    rows = np.array([[3e20, 4e20], [3e-25, 4e-25], [0.0, 0.0], [np.inf, 1.0], [-3.0, 4.0]], np.float32)
    out = tg.func.vmap(lambda u: tg.hypot(u[0], u[1]))(tg.tensor(rows))
    np.testing.assert_allclose(out.numpy(), [5e20, 5e-25, 0.0, np.inf, 5.0], rtol=1e-6)
    grads = tg.func.vmap(tg.func.grad(lambda u: tg.hypot(u[0], u[1])))(tg.tensor(rows[[0, 1, 4]]))
    np.testing.assert_allclose(grads.numpy(), [[0.6, 0.8], [0.6, 0.8], [-0.6, 0.8]], rtol=1e-6)
    tape = tg.record(lambda a, b: tg.hypot(a, b), np.float32([1.0]), np.float32([2.0]))
    value, (ga, gb) = tape.value_and_grad(np.float32([3e20]), np.float32([4e20]))
    np.testing.assert_allclose([value.item(), ga.item(), gb.item()], [5e20, 0.6, 0.8], rtol=1e-6)


def test_a_softmax_has_one_result_wherever_numpy_put_its_arrays():
    """The compiled softmax's sum once shared a loop with its stores: LLVM's run-time overlap
    check of input and output then chose the vector path (a reassociated sum) or the scalar one
    by the arrays' addresses, and the same softmax came out 1-2 ulp apart from call to call
    (eager and its bit-for-bit replay disagreed in about one run of the suite in six)."""
    from tapegrad._kernels import load

    normalization = load("normalization")
    values = np.frombuffer(bytes.fromhex("ae47e17a14aeff3fb5797073653fff3f1f85eb51b81e1940dc4603780b240840"))
    rng = np.random.default_rng(0)
    for row in (values, rng.uniform(-3.0, 3.0, 37)):
        n = len(row)
        results = set()
        for start in (0, 8, 40):
            for offset in range(-start, 48):
                if abs(offset) < n:  # (not the same memory)
                    continue
                buffer = np.zeros(256)
                x, out = buffer[64 + start : 64 + start + n], buffer[64 + start + offset : 64 + start + offset + n]
                x[:] = row
                normalization.softmax_groups(x, out, n, False)
                results.add(out.tobytes())
        assert len(results) == 1, n
