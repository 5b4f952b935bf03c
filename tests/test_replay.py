"""Replay: a recorded tape run again at new inputs agrees with eager evaluation."""

from __future__ import annotations

import gc
import pickle
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from tapegrad import _ops
from tapegrad._examples import CASES

from .gradcheck import sample


def _eager(call, arrays, dtype):
    inputs = [tg.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = call(*inputs)
    weights = np.linspace(0.5, 1.5, num=max(out.numel(), 1)).reshape(tuple(out.shape)).astype(out._data.dtype)
    (out * tg.from_numpy(weights)).sum().backward()
    return out.detach().numpy(), [x.grad.numpy() if x.grad is not None else np.zeros(x.shape) for x in inputs], weights


@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_replay_equals_eager_at_new_inputs(case, dtype_name):
    dtype = getattr(tg, dtype_name)
    rng = np.random.default_rng(5)
    recorded_at = [a.astype(dtype.numpy) for a in sample(rng, case.shapes, case.domain)]
    replayed_at = [a.astype(dtype.numpy) for a in sample(rng, case.shapes, case.domain)]
    tape = tg.record(case.call, *recorded_at)
    if "reads-values" in case.tags:
        # positions picked from the values (an order statistic): guarded, so a replay at other
        # values refuses; at the recording's own inputs it replays as eager
        with pytest.raises(tg.GuardError):
            tape.value_and_grad(*replayed_at)
        replayed_at = recorded_at
    expected_out, expected_grads, weights = _eager(case.call, replayed_at, dtype)
    out, grads = tape.value_and_grad(*replayed_at, grad_outputs=weights)
    # Exact where both sides run the same arithmetic; libm against numpy's SIMD functions and
    # summation order differ by a few ulp.
    tolerance = 1e-12 if dtype_name == "float64" else 2e-6
    np.testing.assert_allclose(out.numpy(), expected_out, rtol=tolerance, atol=tolerance)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got.numpy(), want, rtol=tolerance * 10, atol=tolerance * 10)


def test_a_large_elementwise_run_replays_as_eager():
    """Consecutive large elementwise rows replay, forward and backward, a block at a time
    (tapegrad/_kernels/fused.py), here also as plain Python (the NUMBA_DISABLE_JIT pass)."""
    from tapegrad._kernels import fused

    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, fused.BACKWARD_SMALLEST + 3))
    tape = tg.record(lambda x, y: ((x * y).sin() + y).sum(), x, y)
    at = x[::-1].copy(), y
    value, (gx, gy) = tape.value_and_grad(*at)
    assert tape._fused is not None and len(tape._fused.groups) == 1
    assert len(tape._plans[tape._all_positions]["fused"].groups) == 1  # and its backward
    xt, yt = (tg.tensor(a, requires_grad=True) for a in at)
    eager = ((xt * yt).sin() + yt).sum()
    eager.backward()
    assert value.item() == pytest.approx(eager.item(), rel=1e-13)
    np.testing.assert_allclose(gx.numpy(), xt.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(gy.numpy(), yt.grad.numpy(), rtol=1e-13)


def test_every_replay_rule_is_defined():
    from tapegrad._kernels.forward import RULES

    _ops.replay_arrays(RULES)  # raises NotImplementedError naming a missing rule


def _tutorial_loop(x):
    y = x * 2
    while y.data.norm() < 1000:
        y = y * 2
    return y


def test_tutorial_loop_replays_while_the_branch_holds():
    tape = tg.record(_tutorial_loop, np.array([-0.9332, 1.9616, 0.1739], np.float32))
    assert len(tape.guards) == 9  # eight trips round the loop and the exit
    x = np.array([-0.9, 1.9, 0.2], np.float32)
    v = np.array([0.1, 1.0, 0.0001], np.float32)
    out, (grad,) = tape.value_and_grad(x, grad_outputs=v)
    eager = tg.tensor(x, requires_grad=True)
    _tutorial_loop(eager).backward(tg.tensor(v))
    np.testing.assert_array_equal(out.numpy(), _tutorial_loop(tg.tensor(x)).numpy())
    np.testing.assert_array_equal(grad.numpy(), eager.grad.numpy())


def test_a_guard_that_changes_raises_naming_it():
    tape = tg.record(_tutorial_loop, np.array([-0.9332, 1.9616, 0.1739], np.float32))
    with pytest.raises(tg.GuardError) as raised:
        tape(np.array([-93.0, 196.0, 17.0], np.float32))
    message = str(raised.value)
    assert isinstance(raised.value, RuntimeError)
    assert "bool()" in message and "test_replay.py" in message and "while y.data.norm() < 1000" in message


def test_rerecord_on_guard_failure_gives_the_eager_answer():
    tape = tg.record(_tutorial_loop, np.array([-0.9332, 1.9616, 0.1739], np.float32), rerecord=True)
    x = np.array([-93.0, 196.0, 17.0], np.float32)
    np.testing.assert_array_equal(tape(x).numpy(), _tutorial_loop(tg.tensor(x)).numpy())


def test_item_and_float_reads_are_guards():
    def scaled(x):
        return x * float(x.sum())

    tape = tg.record(scaled, np.array([1.0, 2.0]))
    np.testing.assert_array_equal(tape(np.array([1.0, 2.0])).numpy(), [3.0, 6.0])
    with pytest.raises(tg.GuardError, match=r"float\(\)"):
        tape(np.array([1.0, 3.0]))


# What Python reads, after arithmetic whose replay kernel may round otherwise than eager numpy.
_READS = {
    "sum": lambda x: float(x.sum()),
    "mean": lambda x: x.mean().item(),
    "tanh mean": lambda x: float(x.tanh().mean()),
    "exp sum": lambda x: float(x.exp().sum()),
    "log_softmax": lambda x: float(F.log_softmax(x, 0)[0]),
    "matmul": lambda x: float((x[:8].reshape(-1, 1) @ x[:8].reshape(1, -1)).sum()),
    "sum > 0": lambda x: bool(x.sum() > 0),
}


def _assert_as_eager(fn, x, value, grad, rtol):
    """A replay's value and gradient at ``x`` against ``fn`` evaluated eagerly there."""
    eager = tg.tensor(x, requires_grad=True)
    expected = fn(eager)
    expected.backward()
    np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=rtol)
    np.testing.assert_array_equal(grad.numpy(), eager.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
@pytest.mark.parametrize("read", list(_READS), ids=str)
def test_a_guard_holds_at_the_inputs_it_was_recorded_at(read, dtype):
    # The guard once compared the replay's value with eager's: a last-bit difference (a sum in
    # another order, vectorized tanh) failed it at its own inputs, for about half of these.
    def branch(x):
        return (x * 2.0).sum() if _READS[read](x) > 0 else (-x).sum()

    rng = np.random.default_rng(11)
    for n in (8, 100, 1000, 5003):
        for _ in range(3):
            x = rng.standard_normal(n).astype(dtype)
            value, (grad,) = tg.record(branch, x).value_and_grad(x)
            _assert_as_eager(branch, x, value, grad, rtol=1e-5)


def test_rerecord_at_inputs_whose_read_differs_gives_the_eager_answer():
    # Re-recording once ran the new tape's guards against eager values again and, failing them
    # by a last bit, recorded again until RecursionError.
    def branch(x):
        return (x * 2.0).sum() if float(x.tanh().mean()) > 0 else (-x).sum()

    rng = np.random.default_rng(12)
    tape = tg.record(branch, rng.standard_normal(1000), rerecord=True)
    for _ in range(5):
        x = rng.standard_normal(1000)
        value, (grad,) = tape.value_and_grad(x)
        _assert_as_eager(branch, x, value, grad, rtol=1e-12)


def test_guards_are_calibrated_from_the_inputs_as_given():
    # The function changes its copy of the input in place: calibrating from the changed slot
    # once made the guard fail at the recording's inputs and pass where the branch changes.
    def f(x):
        with tg.no_grad():
            x.mul_(-1)
        return (x * 3).sum() if float(x.sum()) > 0 else (x * 5).sum()

    x0 = np.array([1.0, 2.0, 3.0])
    tape = tg.record(f, x0)
    assert float(tape(x0)) == float(f(tg.tensor(x0))) == -30.0
    with pytest.raises(tg.GuardError):
        tape(-x0)


def _rounded_to_the_other_side():
    """A dot product within rounding of zero, which the replay's BLAS and eager numpy round
    to opposite signs (found by search; the test checks that they do)."""
    rng = np.random.default_rng(0)
    n = 37
    for _ in range(4):
        u, v = rng.standard_normal(n), rng.standard_normal(n)
        v = v - (u @ v) / (u @ u) * u
    return n, u, v


def _sign_branch(n):
    def f(x):
        if x[:n] @ x[n:] > 0:
            return x[:n].sum() * 0 + 1.0
        return x[:n].sum() * 0 - 1.0

    return f


def test_a_truth_guard_keeps_the_truth_python_saw():
    n, u, v = _rounded_to_the_other_side()
    f = _sign_branch(n)
    x0 = np.concatenate([u, v])
    eager_sign = float(tg.tensor(u) @ tg.tensor(v)) > 0
    replay_sign = float(tg.record(lambda x: x[:n] @ x[n:], x0)(x0)) > 0
    if eager_sign == replay_sign:
        pytest.skip("this BLAS rounds the probe's dot product as numpy does")
    tape = tg.record(f, x0)
    # Taking the replay's truth at x0 would apply the recorded branch exactly where Python takes
    # the other one (u @ -u < 0): the guard must fail there instead, and may fail at x0.
    with pytest.raises(tg.GuardError):
        tape(np.concatenate([u, -u]))
    assert float(tape(np.concatenate([u, u]))) == float(f(tg.tensor(np.concatenate([u, u])))) == 1.0
    rerecording = tg.record(f, np.concatenate([u, u]), rerecord=True)
    with pytest.raises(tg.GuardError, match="recorded again at these inputs"):
        rerecording(x0)  # recorded again at x0, and still not reproducing its branch: no loop
    from tapegrad.func import vmap

    batch = tg.tensor(np.stack([x0, np.concatenate([u, -u]), np.concatenate([u, u])]))
    expected = [float(f(tg.tensor(row))) for row in batch.numpy()]
    np.testing.assert_array_equal(vmap(f)(batch).numpy(), expected)  # eager for the slice that cannot replay


def test_rerecorded_tapes_give_the_gradients_of_their_own_rows():
    # Masked rows (argnums) were cached by id(rows): a re-recording's rows reusing a freed
    # array's id got another recording's mask, and wrong gradients.
    def f(x, y):
        k = int((x > 0).sum())
        r = x * y if k == 0 else x + y if k == 1 else x - y if k == 2 else x * x
        return r.sum()

    y = np.array([1.0, 2.0, 3.0])
    tape = tg.record(f, np.array([-1.0, -2.0, -3.0]), y, rerecord=True)
    rng = np.random.default_rng(0)
    for _ in range(60):
        x = -np.abs(rng.standard_normal(3))
        x[: rng.integers(0, 4)] *= -1
        _, grad = tape.value_and_grad(x, y, argnums=1)
        a, b = tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True)
        f(a, b).backward()
        np.testing.assert_array_equal(grad.numpy(), b.grad.numpy() if b.grad is not None else np.zeros(3))


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64], ids=str)
def test_integer_values_cast_inside_a_recording_follow_the_inputs(dtype):
    # (x > 0).long() was a constant of the recording, and a float32 sum of it read the other
    # arena: garbage, or a crash for a large one.
    def f(x):
        mask = (x > 0).long()
        return (x * mask).sum() + mask.sum(dtype=dtype) + mask.mean(dtype=dtype)

    tape = tg.record(f, np.array([1.5, -2.5, 3.5, 0.2]))
    for x in (np.array([1.5, -2.5, 3.5, 0.2]), np.array([-1.5, 2.5, 3.5, -0.2])):
        value, (grad,) = tape.value_and_grad(x)
        eager = tg.tensor(x, requires_grad=True)
        expected = f(eager)
        expected.backward()
        assert float(value) == pytest.approx(float(expected), rel=1e-6)
        np.testing.assert_array_equal(grad.numpy(), eager.grad.numpy())
    truncated = tg.record(lambda x: x.long().float().sum() * x.sum(), np.array([1.5, 2.5]))
    with pytest.raises(tg.GuardError, match="int64"):  # a truncation is not replayed: a read
        truncated(np.array([2.5, 2.5]))


@pytest.mark.parametrize(
    "test",
    [
        lambda x: bool((x > 0).all()),
        lambda x: bool((x < 0).any()),
        lambda x: not bool(tg.isnan(x.log()).any()),
        lambda x: tg.equal(x > 0, tg.ones(5, dtype=tg.bool)),
        lambda x: tg.allclose(x.abs(), x),
    ],
    ids=["all", "any", "isnan", "equal", "allclose"],
)
def test_tests_of_every_element_are_guards(test):
    # Their results were constants of the recording: the branch replayed for any input.
    def f(x):
        return x.abs().log().sum() if test(x) else x.sum()

    tape = tg.record(f, np.ones(5))
    assert float(tape(np.ones(5))) == float(f(tg.tensor(np.ones(5))))
    with pytest.raises(tg.GuardError):
        tape(-np.ones(5))


def test_weighted_cross_entropy_with_every_target_ignored_replays_nan():
    def f(x):
        return F.cross_entropy(x, tg.tensor([-100, -100]), weight=tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64))

    x = np.arange(6.0).reshape(2, 3)
    assert np.isnan(float(f(tg.tensor(x))))
    assert np.isnan(float(tg.record(f, x)(x + 1)))


def test_a_guard_is_not_calibrated_to_a_replay_that_computes_something_else():
    # A recorded value changed behind the tape's back (its private array: every public way of
    # changing it is recorded), so the replay reads another value than Python did. Taking the
    # replay's value as expected applied the recorded branch to it silently; the guard must
    # keep failing.
    def f(x):
        y = x * 2.0
        y._data += 1.0
        scale = 2.0 if float(y.sum()) > 7.0 else 3.0
        return y * scale

    x0 = np.array([1.0, 2.0, 3.0], np.float32)
    tape = tg.record(f, x0)
    with pytest.raises(tg.GuardError):
        tape(x0)


def test_a_captured_tensor_changed_after_it_was_read_replays_as_eager():
    # An exponential moving average updated inside the function: the tape holds the captured
    # tensor at the value first read, and the update is recorded (it was replayed at the final
    # value, before: another branch than Python's at the recording's own inputs).
    def make():
        ema = tg.zeros(3)

        def f(x):
            y = x * (ema + 1.0)
            scale = 2.0 if float(y.sum()) > 7.0 else 3.0
            with tg.no_grad():
                ema.mul_(0.9).add_(0.1 * x)
            return (y * scale * ema).sum()

        return f

    x0 = np.array([1.0, 2.0, 3.0], np.float32)
    tape = tg.record(make(), x0)
    x = tg.tensor(x0, requires_grad=True)
    expected = make()(x)
    expected.backward()
    value, (grad,) = tape.value_and_grad(x0)
    np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-6)


_CASTS_AND_COMPARISONS = {
    "int constant / number": lambda x: x * (tg.tensor([1, 0, 3, 0, 1]) / 2),
    "int mask / number": lambda x: x * ((x > 0).long() / 2),
    "bool mask / number": lambda x: x * ((x > 0) / 2),
    "== a 0-d max": lambda x: x * (x == x.max()),
    "> a 0-d element": lambda x: x * (x > x[0]),
    "isnan": lambda x: x * tg.isnan(x.log()),
    "isinf": lambda x: x * tg.isinf(1.0 / (x - 3.0)),
    "isfinite": lambda x: x * tg.isfinite(x.log()),
}


@pytest.mark.parametrize("case", list(_CASTS_AND_COMPARISONS), ids=str)
def test_integer_and_boolean_rows_replay_as_eager(case):
    # An integer or boolean row read as float32 (a mask / 2), or broadcast for a comparison, was
    # read from the other arena: silently wrong at the recording's own inputs.
    f = _CASTS_AND_COMPARISONS[case]
    x0 = np.array([1.0, -2.0, 3.0, -0.5, 0.25], np.float32)
    tape = tg.record(f, x0)
    for x in (x0, np.array([-1.0, 2.0, 0.5, 3.0, -4.0], np.float32)):
        np.testing.assert_array_equal(tape(x).numpy(), f(tg.tensor(x)).numpy())


_INTEGER_DIVISIONS = {
    "floor_divide": lambda i, j: i // j,
    "remainder": lambda i, j: i % j,
    "fmod": lambda i, j: tg.fmod(i, j),
    "trunc": lambda i, j: tg.div(i, j, rounding_mode="trunc"),
    "floor": lambda i, j: tg.div(i, j, rounding_mode="floor"),
    "by a number": lambda i, j: i % 3 + i // -3,
}


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("case", list(_INTEGER_DIVISIONS))
def test_integer_division_inside_a_recording_replays_as_eager(case, dtype):
    """``i // j``, ``i % j``, fmod and div with a rounding mode of integer tensors raised
    NotImplementedError inside tapegrad.record (``x[i % n]`` cannot be recorded without them).
    They replay in float64, which holds the integers exactly, with eager's signs; a divisor of
    0, PyTorch's RuntimeError in eager, fails a guard in a replay."""
    divide = _INTEGER_DIVISIONS[case]

    def f(x, i, j):
        quotient = divide(i, j)
        assert quotient.dtype == i.dtype
        return x * quotient.to(x.dtype)

    x = np.array([1.5, -2.0, 0.5, 3.0])
    tape = tg.record(f, x, np.array([7, 8, -9, 10], dtype), np.array([3, -5, 4, 2], dtype))
    for i, j in [([-7, 9, 13, -1], [2, 3, -4, 5]), ([0, -8, 8, 100], [-3, 3, 3, -7])]:
        i, j = np.array(i, dtype), np.array(j, dtype)
        np.testing.assert_array_equal(tape(x, i, j).numpy(), f(tg.tensor(x), tg.tensor(i), tg.tensor(j)).numpy())
    if case != "by a number":
        zero = np.array([1, 0, 1, 1], dtype)
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            f(tg.tensor(x), tg.tensor(i), tg.tensor(zero))
        with pytest.raises(tg.GuardError, match="the recorded branch does not apply"):
            tape(x, i, zero)


_READ_IN_NUMPY = {
    "exp of an int row": lambda x: x.long().exp() * x,
    "1 / an int row": lambda x: (1 / x.long()) * x,
    "mask + True": lambda x: ((x > 0) + True).double() * x,
    "mask + mask": lambda x: ((x > 0) + (x > -1.5)).double() * x,
    "a computed target": lambda x: F.cross_entropy(x.reshape(1, 3), x.reshape(1, 3).argmax(1)),
    # (detached: a weight that requires grad is refused, as PyTorch's nll_loss refuses it)
    "a computed weight": lambda x: F.nll_loss(x.reshape(1, 3), tg.tensor([0]), weight=x.detach().abs() + 1),
    "one_hot of argmax": lambda x: F.one_hot(x.argmax(), 3) * x,
    "tril of a row without grad": lambda x: x.detach().reshape(1, 3).tril().reshape(3) * x,
    "requires_grad_ of a row": lambda x: x * (x > 0).double().requires_grad_(),
    "tensor() of a row": lambda x: x * tg.tensor(x.detach()),
    "from_numpy(np.asarray()) of a row": lambda x: x * tg.from_numpy(np.asarray(x.detach())),
    "tensor() of a list of rows": lambda x: x * tg.tensor([x.sum(), x.mean(), 1.0], dtype=tg.float64),
    "bool() of a row": lambda x: x * x.relu().bool(),
}


@pytest.mark.parametrize("case", list(_READ_IN_NUMPY), ids=str)
def test_a_replay_equals_eager_or_raises(case):
    # Each replayed silently wrong (three even at the recording's own inputs): a row read as
    # another dtype than it holds, or a value turned into a numpy constant without a guard.
    f = _READ_IN_NUMPY[case]
    x0 = np.array([1.0, -2.0, 3.0])
    tape = tg.record(f, x0)
    for x in (x0, np.array([-1.0, 2.0, 0.5]), np.array([0.5, -1.0, 2.0])):
        try:
            value, (grad,) = tape.value_and_grad(x, grad_outputs=np.ones(tape.outputs[0].shape))
        except tg.GuardError:
            assert x is not x0, "a guard failed at the recording's own inputs"
            continue
        eager = tg.tensor(x, requires_grad=True)
        expected = f(eager)
        expected.sum().backward()
        # (float32 inside: an int row's exp is float32, vectorized in the replay)
        np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(grad.numpy(), eager.grad.numpy(), rtol=1e-6)


def test_small_integer_dtypes_are_rows_and_a_cast_of_floats_to_one_is_a_read():
    """Booleans cast to uint8 (or int8, int16) are values of the tape, held exactly in float64,
    their arithmetic checked against the dtype's range (uint8 wraps at 256 eagerly); floats
    cast to an integer dtype are a read (a guard), as the README says."""
    mask = tg.record(lambda x: x * (x > 0).to(tg.uint8), np.array([1.0, -2.0, 3.0]))
    np.testing.assert_array_equal(mask(np.array([-1.0, 2.0, 3.0])).numpy(), [-0.0, 2.0, 3.0])
    wrapping = tg.record(lambda x: x * ((x > 0).to(tg.uint8) + 255).double(), np.array([-1.0, -2.0]))
    with pytest.raises(tg.GuardError, match="add_scalar of uint8 values reaches 256"):
        wrapping(np.array([-1.0, 2.0]))  # eager: 1 + 255 wraps to 0
    truncated = tg.record(lambda x: x * x.to(tg.int16).double(), np.array([1.5, -2.0, 3.0]))
    with pytest.raises(tg.GuardError, match="int16"):
        truncated(np.array([2.5, -1.0, 3.0]))


@pytest.mark.parametrize(
    "f",
    [
        lambda x: x.sort()[1].float() * x,
        lambda x: x.topk(2)[1].float().sum() + x.sum(),
        lambda x: tg.argsort(x).float() * x,
        lambda x: x[(x > 0).nonzero()[:, 0]].sum(),
        lambda x: tg.masked_select(x, x > 0).sum(),
        lambda x: tg.unique(x.round())[0] * x.sum(),
    ],
    ids=["sort", "topk", "argsort", "nonzero", "masked_select", "unique"],
)
def test_positions_computed_from_recorded_values_are_guarded(f):
    # They were constants of the tape: a replay used the recording's order silently.
    x0 = np.array([1.0, -2.0, 3.0, -0.5, 0.25], np.float32)
    tape = tg.record(f, x0)
    np.testing.assert_array_equal(tape(x0).numpy(), f(tg.tensor(x0)).numpy())
    with pytest.raises(tg.GuardError):
        tape(np.array([-1.0, 2.0, 0.5, 3.0, -4.0], np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
def test_replayed_sums_and_means_are_within_rounding_of_eager(dtype):
    # The replay sums in blocks with float64 partial sums (numpy: pairwise, in the dtype), so
    # a guard on a loss is calibrated to the replay's value (test_a_guard_holds_at_...). Summing
    # in numpy's order and dtype in the kernels gave eager's bits, and cost a first replay
    # 0.4 s of compile (benchmarks.cold, interleaved): not worth it once guards are calibrated.
    rng = np.random.default_rng(13)
    for n in (1, 7, 8, 9, 64, 65, 128, 129, 1000, 4097, 100003):
        x = rng.standard_normal(n).astype(dtype)
        labels = rng.integers(0, 4, n)

        def reductions(x, labels=labels):
            return x.sum(), x.mean(), F.cross_entropy(x.reshape(-1, 1).expand(-1, 4) * 1.0, labels)

        tape = tg.record(reductions, x)
        for new in (x, rng.standard_normal(n).astype(dtype)):
            replayed = [out.numpy() for out in tape(new)]
            expected = reductions(tg.tensor(new))
            tolerance = 1e-5 if dtype == np.float32 else 1e-12
            for got, want in zip(replayed, expected):
                np.testing.assert_allclose(got, want.numpy(), rtol=tolerance, atol=tolerance)


def test_captured_constants_are_part_of_the_tape():
    X = tg.tensor([[1.0, 2.0], [3.0, -1.0]])

    def loss(w, b):
        return tg.nn.functional.softplus(X @ w + b).mean()

    tape = tg.record(loss, tg.zeros(2), tg.zeros(1))
    w, b = tg.tensor([0.3, -0.2]), tg.tensor([0.1])
    value, (gw, gb) = tape.value_and_grad(w, b)
    w_eager, b_eager = w.clone().requires_grad_(), b.clone().requires_grad_()
    expected = loss(w_eager, b_eager)
    expected.backward()
    np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(gw.numpy(), w_eager.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(gb.numpy(), b_eager.grad.numpy(), rtol=1e-6)


def test_replays_do_not_accumulate_and_leave_grad_alone():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    tape = tg.record(lambda x: (x * x).sum(), w)
    first = tape.value_and_grad(np.array([1.0, 2.0], np.float32))[1][0].numpy().copy()
    second = tape.value_and_grad(np.array([1.0, 2.0], np.float32))[1][0].numpy()
    np.testing.assert_array_equal(first, second)
    assert w.grad is None


def test_several_outputs_and_vjp():
    tape = tg.record(lambda x, y: (x * y, (x + y).sum()), np.ones(3), np.ones(3))
    prod, total = tape(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
    assert prod.tolist() == [4.0, 10.0, 18.0] and total.item() == 21.0
    gx, gy = tape.backward((np.array([1.0, 0.0, 0.0]), np.array(2.0)))
    assert gx.tolist() == [6.0, 2.0, 2.0] and gy.tolist() == [3.0, 2.0, 2.0]


def test_jacobian_by_repeated_reverse_sweeps():
    tape = tg.record(lambda x: x.sin() * x[0], np.zeros(3))
    x = np.array([0.5, -1.0, 2.0])
    jacobian = tape.jacobian(x).numpy()
    expected = np.diag(np.cos(x) * x[0])
    expected[:, 0] += np.sin(x)
    np.testing.assert_allclose(jacobian, expected, rtol=1e-12)


def test_input_mismatch_names_the_input():
    def f(weights, bias):
        return (weights * bias).sum()

    tape = tg.record(f, np.ones(3, np.float32), np.ones(3, np.float32))
    with pytest.raises(
        ValueError, match=r"input 1 \('bias'\) was recorded as shape \(3,\) float32, got shape \(4,\) float32"
    ):
        tape(np.ones(3, np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"input 0 \('weights'\).*float64"):
        tape(np.ones(3), np.ones(3, np.float32))


def test_tape_pickles_and_loads_in_another_process(tmp_path):
    tape = tg.record(lambda x: (x.exp() * 2.0).sum(), np.zeros(3))
    clone = pickle.loads(pickle.dumps(tape))
    x = np.array([0.1, 0.2, 0.3])
    assert clone(x).item() == tape(x).item()
    path = tmp_path / "tape.pkl"
    tape.save(path)
    code = (
        "import numpy as np, tapegrad as tg\n"
        f"tape = tg.load_tape({str(path)!r})\n"
        "value, (grad,) = tape.value_and_grad(np.array([0.1, 0.2, 0.3]))\n"
        "print(repr(value.item()), repr(grad.tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(
        maxsplit=1
    )
    value, (grad,) = tape.value_and_grad(x)
    assert float(out[0]) == value.item()
    assert eval(out[1]) == grad.tolist()


def test_no_grad_and_detach_inside_a_recording_stop_gradients():
    def f(x):
        with tg.no_grad():
            scale = x.sum()
        return x * scale + x.detach() * x

    tape = tg.record(f, np.array([1.0, 2.0]))
    x = np.array([3.0, 4.0])
    _, (grad,) = tape.value_and_grad(x, grad_outputs=np.ones(2))
    np.testing.assert_array_equal(grad.numpy(), [7.0 + 3.0, 7.0 + 4.0])


def test_a_batch_replay_equals_one_replay_per_slice_and_reports_failed_guards():
    """``Tape._replay_batch`` (vmap's engine): each slice's outputs and gradients are those of
    ``value_and_grad`` at that slice, on one thread or two; a slice whose guard fails is
    reported, not computed. The weight passed whole (loaded once per working arena, not per
    slice) is another than the recording's."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4))
    xs = rng.standard_normal((9, 3))
    xs[4] = -100.0  # takes the other branch

    def loss(w, x):
        h = (x @ w).tanh()
        return ((h * h).sum() if x.sum() > -50 else h.sum()), h

    tape = tg.record(loss, w - 1.0, xs[0])
    seeds = np.concatenate([np.ones(1), np.zeros(4)])
    for threads in (1, 2):
        outputs, grads, failed = tape._replay_batch([w, xs], [False, True], seeds, threads)
        assert failed == [4]
        for s in set(range(9)) - {4}:
            (value, hidden), (grad_w, grad_x) = tape.value_and_grad(w, xs[s], grad_outputs=(np.ones(()), np.zeros(4)))
            np.testing.assert_allclose(outputs[0][s], value._data, rtol=1e-12)
            np.testing.assert_allclose(outputs[1][s], hidden._data, rtol=1e-12)
            np.testing.assert_allclose(grads[0][s], grad_w._data, rtol=1e-12)
            np.testing.assert_allclose(grads[1][s], grad_x._data, rtol=1e-12)


def test_argnums_gives_those_gradients_and_skips_the_others():
    """``value_and_grad(..., argnums=)``: the named inputs' gradients, equal to the full
    backward's, in the order named (an int: one tensor). The other inputs lose their gradient
    slots, and so do the rows that read only them (views, stacks of the data), including small
    rows, whose call-free path does not check for a missing slot."""
    rng = np.random.default_rng(3)
    w, b, x = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal(4)

    def loss(w, b, x):
        rows = tg.stack([x, x * 2.0])  # only the data: no gradient needed
        return ((rows @ w + b).tanh() ** 2).sum() + (x[None] @ w).sum()

    tape = tg.record(loss, w, b, x)
    value, (grad_w, grad_b, grad_x) = tape.value_and_grad(w, b, x)
    again, (only_b, only_w) = tape.value_and_grad(w, b, x, argnums=(1, 0))
    assert float(again) == float(value)
    np.testing.assert_array_equal(only_w._data, grad_w._data)
    np.testing.assert_array_equal(only_b._data, grad_b._data)
    _, single = tape.value_and_grad(w, b, x, argnums=-1)
    np.testing.assert_array_equal(single._data, grad_x._data)
    outputs, grads, _ = tape._replay_batch([w, b, x[None]], [False, False, True], np.ones(1), argnums=(0,))
    np.testing.assert_array_equal(grads[0][0], grad_w._data)
    with pytest.raises(IndexError, match="argnums 3 names no input"):
        tape.value_and_grad(w, b, x, argnums=3)


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("call", ["grad", "backward"])
def test_a_gradient_taken_inside_a_recording_refuses_rather_than_replay_a_constant(call, create_graph):
    """Gradients computed while recording would enter the tape as constants: replayed at
    ``[3, -1]`` the function below returned 153 (its value at the recording's ``[1, 2]``)
    where eager gives 738. Recording refuses instead."""

    def f(w):
        loss = (w * w * w).sum()
        if call == "grad":
            (g,) = tg.autograd.grad(loss, w, create_graph=create_graph)
        else:
            loss.backward(create_graph=create_graph)
            g = w.grad
        return (g * g).sum()

    with pytest.raises(NotImplementedError, match="inside tapegrad.record"):
        tg.record(f, np.array([1.0, 2.0]))


@pytest.mark.parametrize("second", [lambda x: (x.detach() * 3).sum(), lambda x: (x.detach() * 3).sum() * 2 + 1])
def test_an_output_no_gradient_flows_from_takes_its_seed_harmlessly(second):
    """An output computed from detached values has no gradient slot: its seed goes nowhere. It
    once went to slot -1, the arena's last element, doubling another input's gradient."""
    x = np.array([1.0, 0.5, 4.0])
    w = np.array([0.5, 0.25, 2.0])
    tape = tg.record(lambda x, w: ((x * w).sum(), second(x)), x, w)
    _, (grad_x, grad_w) = tape.value_and_grad(x, w, grad_outputs=(np.ones(()), np.full((), 7.0)))
    np.testing.assert_array_equal(grad_x.numpy(), w)
    np.testing.assert_array_equal(grad_w.numpy(), x)


def test_replayed_gradients_are_the_callers_own():
    """The inputs' gradients may be handed over as views of the sweep's arena (no copy when
    they are most of it): each call's are still its own, and changing them changes nothing else."""
    w = np.linspace(-1.0, 1.0, 300)
    tape = tg.record(lambda w, b: ((w * 2.0 + b) ** 2).sum(), w, np.ones(300))
    _, (first, _) = tape.value_and_grad(w, np.ones(300))
    expected = first.numpy().copy()
    first.numpy()[:] = 7.0
    _, (second, bias) = tape.value_and_grad(w, np.ones(300))
    np.testing.assert_array_equal(second.numpy(), expected)
    assert not np.shares_memory(first.numpy(), second.numpy())
    np.testing.assert_allclose(bias.numpy(), 2 * (w * 2.0 + 1.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "case, flags",
    [
        ("linear", [2]),
        ("linear_tanh", [2]),
        ("source_transposed_twice", [3]),
        ("both_operands", [3]),
        ("a_chain", [3, 0]),
        ("five_transposes", [1]),
    ],
)
def test_a_product_reads_its_transposed_operand_in_place(case, flags, dtype):
    """A replayed mm reads an operand that is a transpose (``F.linear``'s ``weight.t()``) from
    its source with a flag (``Tape._read_transposes_in_place``), for A, B or both, and a
    transpose nothing else reads is no longer computed; values and gradients equal eager's, at
    other inputs than the recording's."""
    functions = {
        "linear": lambda w, x, b: F.linear(x, w, b).sum(),
        "linear_tanh": lambda w, x, b: F.linear(x, w, b).tanh().sum(),
        "source_transposed_twice": lambda w, x, b: (w.t().t() @ x.t()).sum() + b.sum(),
        "both_operands": lambda w, x, b: (x.t().t() @ w.t()).pow(2).sum() + b.sum(),
        "a_chain": lambda w, x, b: (x.t().t() @ w.t() @ w).sum() + b.sum(),
        "five_transposes": lambda w, x, b: (w.t().t().t().t().t() @ w).pow(2).sum() + b.sum(),
    }
    function = functions[case]
    rng = np.random.default_rng(4)
    w, x, b = (rng.standard_normal(shape).astype(dtype) for shape in [(5, 3), (4, 3), (5,)])
    tape = tg.record(function, w, x, b)
    tape.validate()
    mm = next(i for i, op in enumerate(_ops.OPS) if op.name == "mm")
    products = np.flatnonzero((tape.rows[:, 0] & 0xFFFF) == mm)
    assert tape.rows[products, 3].tolist() == flags
    transposes = {i for i, op in enumerate(_ops.OPS) if op.name == "t"}
    live = [r for r in range(len(tape.rows)) if tape.rows[r, 0] & 0xFFFF in transposes]
    if case in ("linear", "linear_tanh"):
        assert live == []  # weight.t() is read by the product alone
    w2 = w + dtype(0.25)
    value, grads = tape.value_and_grad(w2, x, b)
    eager = [tg.tensor(v, requires_grad=True) for v in (w2, x, b)]
    out = function(*eager)
    out.backward()
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(float(value), float(out), rtol=tolerance, atol=tolerance)
    for grad, leaf in zip(grads, eager):
        expected = np.zeros_like(leaf.detach().numpy()) if leaf.grad is None else leaf.grad.numpy()  # x unused
        np.testing.assert_allclose(grad.numpy(), expected, rtol=tolerance, atol=tolerance)


def test_a_transpose_made_under_no_grad_still_stops_the_gradient():
    """A ``w.t()`` made under ``no_grad`` is not read through to ``w`` by the replayed product
    (``Tape._read_transposes_in_place``): the gradient stops there, as eagerly. Reading it in
    place had added the product's gradient into ``w`` (found by review before release)."""
    from tapegrad.func import grad, vmap

    w = np.arange(6.0).reshape(3, 2) / 10
    x = np.ones((1, 2))

    def f(w, x):
        with tg.no_grad():
            wt = w.t()
        return (x @ wt).sum() + (w * w).sum()

    _, (replayed, _) = tg.record(f, w, x).value_and_grad(w, x)
    eager = tg.tensor(w, requires_grad=True)
    f(eager, tg.tensor(x)).backward()
    np.testing.assert_array_equal(replayed.numpy(), eager.grad.numpy())
    np.testing.assert_array_equal(replayed.numpy(), 2 * w)
    batched = vmap(grad(f), in_dims=(None, 0))(tg.tensor(w), tg.tensor(np.repeat(x[None], 2, 0)))
    np.testing.assert_array_equal(batched[0].numpy(), 2 * w)


@pytest.mark.parametrize(("shape", "dim"), [((0,), None), ((3, 0), 1), ((0, 3), 0)])
def test_the_mean_of_nothing_replays_as_nan(shape, dim):
    """A mean over no elements is NaN, eagerly (as in PyTorch) and replayed: the row's scale is
    NaN rather than 1 (replay gave 0.0; found by review)."""
    x = np.zeros(shape)

    def f(v):
        return v.mean() if dim is None else v.mean(dim)

    eager = f(tg.tensor(x)).numpy()
    assert np.isnan(eager).all()
    np.testing.assert_array_equal(tg.record(f, x)(x).numpy(), eager)


# -- changes autograd does not see, inside a recording ----------------------------------------
# Under no_grad, through .data or .detach(), the values change and the gradient goes on as if
# they had not (PyTorch's autograd). Each of these replayed the values before the change, or
# gave a zero gradient, silently.


def _unseen_in_place(x):
    with tg.no_grad():
        x.mul_(-1)
    return (x * x * x).sum()


def _unseen_in_place_of_a_result(x):
    h = x * 2
    with tg.no_grad():
        h.clamp_(min=-1.0)
    return (h * h * h).sum() + (x * x).sum()


def _write_under_no_grad(x):
    with tg.no_grad():
        x[0] = 5.0
    return (x * x * x).sum()


def _zeroed_under_no_grad(x):
    h = x * 2
    with tg.no_grad():
        h.zero_()
    return (h * h).sum() + (x * x * x).sum()


def _through_data(x):
    x.data.mul_(-1)
    return (x * x * x).sum() + x.sin().sum()


def _through_detach(x):
    x.detach().add_(1.0)
    return (x * x * x).sum()


def _through_data_of_a_result(x):
    h = x * 2
    h.data[0] = 7.0
    return (h * h * h).sum()


def _detached_before_a_change(x):
    d = x.detach()
    with tg.no_grad():
        x.mul_(2)
    return (d * x).sum()


def _detached_before_a_recorded_change(x):
    h = x * 1
    d = h.detach()
    h.mul_(2)
    return (d * h).sum()


def _view_changed_under_no_grad(x):
    with tg.no_grad():
        x[1:].mul_(2)
    return (x * x).sum()


def _view_of_a_result_changed_under_no_grad(x):
    y = (x * 1).view(3, 1)
    with tg.no_grad():
        y.add_(1)
    return (y.view(3) * x).sum()


def _view_made_with_grad_changed_under_no_grad(x):
    y = x * 1
    v = y[1:3]
    with tg.no_grad():
        v.mul_(2)
    return (y * x).sum() + (v * v).sum()


def _through_detach_of_detach(x):
    x.detach().detach().mul_(3)
    return (x * x).sum() + x.data.data.sum()


def _data_assigned(x):
    y = x * 1
    y.data = x.detach() * 3
    return (y * y).sum()


def _branch_after_data(x):
    x.data.mul_(-1)
    if x.sum() > 0:
        return (x * 2).sum()
    return (x * x).sum()


@pytest.mark.parametrize(
    "f",
    [
        _unseen_in_place,
        _unseen_in_place_of_a_result,
        _write_under_no_grad,
        _zeroed_under_no_grad,
        _through_data,
        _through_detach,
        _through_data_of_a_result,
        _detached_before_a_change,
        _detached_before_a_recorded_change,
        _view_changed_under_no_grad,
        _view_of_a_result_changed_under_no_grad,
        _view_made_with_grad_changed_under_no_grad,
        _through_detach_of_detach,
        _data_assigned,
        _branch_after_data,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_changes_autograd_does_not_see_replay_as_eager(f):
    recorded_at = np.array([0.5, -1.5, 2.0])
    tape = tg.record(f, recorded_at)
    for at in (recorded_at, np.array([-0.25, -0.75, -2.0]), np.array([1.5, 0.5, 0.25])):
        x = tg.tensor(at.copy(), requires_grad=True)
        expected = f(x)
        expected.backward()
        try:
            value, (grad,) = tape.value_and_grad(at)
        except tg.GuardError:  # another branch: refused, never wrong
            assert f is _branch_after_data and (-at).sum() > 0
            continue
        np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-12)


def test_captured_tensors_changed_inside_a_recording_keep_what_they_stood_for():
    # A parameter updated and a buffer changed through a view, both after they were read: the
    # tape holds them as read, and afterwards the parameter is still a leaf and the buffer
    # still a constant (PyTorch's functional transforms leave autograd's graph alone).
    def make():
        weight = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, requires_grad=True)
        buffer = tg.zeros(4, dtype=tg.float64)

        def f(x):
            y = (weight + x).pow(2).sum() + (buffer[1:] + x).pow(2).sum()  # (neither saved)
            with tg.no_grad():
                weight.mul_(10)
                buffer[1:].add_(1.0)
            return y + (buffer[1:] * x).sum()

        return f, weight, buffer

    f, weight, buffer = make()
    tape = tg.record(f, np.array([1.0, 2.0, 3.0]))
    assert weight.is_leaf and weight.grad_fn is None and weight.requires_grad
    assert not buffer.requires_grad and buffer.grad_fn is None
    at = np.array([0.5, -1.0, 2.0])
    fresh, _, _ = make()
    x = tg.tensor(at, requires_grad=True)
    expected = fresh(x)
    expected.backward()
    value, (grad,) = tape.value_and_grad(at)
    np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-12)


def test_a_constant_already_read_is_read_only_through_numpy():
    constant = tg.zeros(3, dtype=tg.float64)

    def f(x):
        y = (constant + x).sum()
        constant.numpy()[:] = 5.0
        return y

    with pytest.raises(ValueError, match="read-only"):
        tg.record(f, np.array([1.0, 2.0, 3.0]))


def test_a_change_through_data_of_a_view_inside_a_recording_raises():
    def f(x):
        x.data[1:].mul_(-1)
        return (x * x).sum()

    with pytest.raises(NotImplementedError, match=r"through a view of .data or .detach\(\)"):
        tg.record(f, np.array([1.0, 2.0, 3.0]))


def test_numpy_of_a_recorded_value_is_read_only_inside_a_recording():
    def f(x):
        x.detach().numpy()[0] = 5.0
        return x.sum()

    with pytest.raises(ValueError, match="read-only"):
        tg.record(f, np.array([1.0, 2.0]))
    assert tg.tensor([1.0, 2.0]).numpy().flags.writeable  # outside a recording, as PyTorch


def test_a_captured_tensor_is_a_constant_at_the_value_first_read():
    def make():
        captured = tg.tensor([1.0, 2.0], dtype=tg.float64)

        def f(x):
            product = (captured + x).pow(2).sum()
            captured.add_(x)  # after the read: the replay must not see it there
            return product + (captured * x).sum()

        return f

    tape = tg.record(make(), np.array([1.0, 1.0]))
    for at in ([1.0, 1.0], [0.5, -2.0]):
        x = tg.tensor(at, dtype=tg.float64, requires_grad=True)
        expected = make()(x)
        expected.backward()
        value, (grad,) = tape.value_and_grad(np.array(at))
        np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-12)


# -- integer and boolean inputs: labels and masks read at each replay ------------------------


@pytest.mark.parametrize("label_dtype", [np.int64])  # PyTorch's Long (Byte: not a tape input dtype)
@pytest.mark.parametrize(
    ("weighted", "reduction"), [(False, "mean"), (False, "sum"), (False, "none"), (True, "mean"), (True, "sum")]
)
def test_labels_are_inputs_read_at_each_replay(label_dtype, weighted, reduction):
    rng = np.random.default_rng(3)
    weight = tg.tensor(rng.uniform(0.5, 2.0, 4)) if weighted else None

    def f(logits, labels):
        ignore = -1 if labels.dtype == tg.int64 else 255
        return F.cross_entropy(logits, labels, weight=weight, reduction=reduction, ignore_index=ignore)

    logits0 = rng.standard_normal((6, 4))
    tape = tg.record(f, logits0, np.array([0, 1, 2, 3, 0, 1], label_dtype))
    ignored = -1 if label_dtype == np.int64 else 255
    for labels in ([3, 3, 0, 1, 2, 2], [1, ignored, 2, ignored, 0, 3], [2, 2, 2, 2, 2, 2]):
        labels = np.array(labels, label_dtype)
        logits = rng.standard_normal((6, 4))
        x = tg.tensor(logits, requires_grad=True)
        expected = f(x, tg.tensor(labels))
        expected.backward(tg.ones_like(expected))
        value, (grad, label_grad) = tape.value_and_grad(logits, labels, grad_outputs=np.ones(expected.shape))
        assert label_grad is None  # as PyTorch's autograd.grad(..., allow_unused=True) for labels
        np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_a_label_out_of_range_at_replay_fails_a_guard():
    tape = tg.record(lambda x, y: F.cross_entropy(x, y), np.zeros((2, 3)), np.array([0, 2]))
    with pytest.raises(tg.GuardError):
        tape(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(IndexError, match="Target 3 is out of bounds"):
        tg.record(lambda x, y: F.cross_entropy(x, y), np.zeros((2, 3)), np.array([0, 3]))


def test_a_boolean_input_is_read_at_each_replay():
    def masked_mean(x, mask):
        return (x * mask).sum() / mask.sum()

    tape = tg.record(masked_mean, np.arange(4.0), np.array([True, False, True, True]))
    mask = np.array([False, True, True, False])
    value, (grad, mask_grad) = tape.value_and_grad(np.arange(4.0), mask)
    assert float(value) == 1.5 and mask_grad is None
    np.testing.assert_array_equal(grad.numpy(), mask / 2.0)


def test_an_integer_input_keeps_its_dtype_in_the_tape_file(tmp_path):
    def f(x, counts):
        return (x * counts).sum()

    tape = tg.record(f, np.zeros((2, 3)), np.array([[0, 2, 1], [1, 1, 1]], np.int32))
    tape.save(tmp_path / "counts.tape")
    loaded = tg.load_tape(tmp_path / "counts.tape")
    x = np.array([[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]])
    counts = np.array([[2, 1, 0], [0, 3, 1]], np.int32)
    assert float(loaded(x, counts)) == float(f(tg.tensor(x), tg.tensor(counts)))
    with pytest.raises(ValueError, match="int32"):
        loaded(x, counts.astype(np.int64))
    jacobian = loaded.jacobian(x, counts)
    np.testing.assert_array_equal(jacobian[0][0].numpy(), counts)
    assert jacobian[0][1] is None  # no derivative in an integer input


def test_labels_as_positions_are_guarded_and_labels_meet_pytorch_checks():
    # t[y] = 1 and scatter at a label: positions computed in numpy, guarded (they had been
    # frozen into the tape); -inf logits of other classes; no kept target; PyTorch's errors.
    def one_hot_dot(x, y):
        t = tg.zeros(4, dtype=tg.float64)
        t[y] = 1.0
        return (t * x).sum()

    tape = tg.record(one_hot_dot, np.arange(4.0), np.array(1))
    assert float(tape(np.arange(4.0), np.array(1))) == 1.0
    with pytest.raises(tg.GuardError):
        tape(np.arange(4.0), np.array(3))
    scattered = tg.record(lambda x, y: tg.zeros(4, dtype=tg.float64).scatter(0, y, x).sum(), np.ones(1), np.array([2]))
    with pytest.raises(tg.GuardError):
        scattered(np.ones(1), np.array([3]))
    masked = np.array([[1.0, 2.0, -np.inf], [0.5, -np.inf, 3.0]])
    tape = tg.record(lambda x, y: F.cross_entropy(x, y), masked, np.array([0, 2]))
    expected = F.cross_entropy(tg.tensor(masked), tg.tensor([1, 0]))
    assert float(tape(masked, np.array([1, 0]))) == pytest.approx(float(expected), rel=1e-12)
    value, (grad, _) = tape.value_and_grad(masked, np.array([-100, -100]))
    assert np.isnan(float(value)) and np.array_equal(grad.numpy(), np.zeros((2, 3)))  # PyTorch's
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte, but got Float"):
        F.cross_entropy(tg.zeros(2, 3), tg.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(2\) to match target batch_size \(1\)"):
        F.cross_entropy(tg.zeros(2, 3), tg.tensor([1]))


def test_a_captured_tensor_changed_in_place_and_returned_is_its_new_value():
    def make():
        buffer = tg.zeros(3, dtype=tg.float64)

        def f(x):
            buffer.add_(x)
            return buffer * 1.0, buffer

        return f

    tape = tg.record(make(), np.array([1.0, 2.0, 3.0]))
    at = np.array([5.0, -1.0, 0.5])
    for replayed, expected in zip(tape(at), make()(tg.tensor(at))):
        np.testing.assert_array_equal(replayed.numpy(), expected.detach().numpy())


def test_a_replay_inside_a_transform_refuses_rather_than_give_a_constant():
    # A tape's replay is not seen by autograd or by an outer recording: it raised nothing and
    # gave the outer tape a constant (vmap replayed the first slice's value for every slice).
    x0 = np.array([1.0, 2.0, 3.0])
    inner = tg.record(lambda x: (x * x).sum(), x0)
    rows = tg.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], dtype=tg.float64)
    np.testing.assert_array_equal(tg.func.vmap(lambda w: inner(w))(rows).numpy(), [3.0, 12.0])  # eager loop
    with pytest.raises(NotImplementedError, match="replayed inside tapegrad.record"):
        tg.record(lambda w: inner(w) * 1.0, x0)
    with pytest.raises(RuntimeError, match="not differentiable by autograd"):
        tg.func.grad(lambda w: inner(w))(tg.tensor(x0))


def test_changes_a_recording_cannot_see_through_raise():
    x0 = np.array([1.0, 2.0, 3.0])
    parameter = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, requires_grad=True)
    parameter.grad = tg.ones(3, dtype=tg.float64)
    optimizer = tg.optim.SGD([parameter], lr=0.5)

    def stepping(x):
        y = (parameter + x).pow(2).sum()
        optimizer.step()  # writes the parameter's array: not recordable
        return y

    with pytest.raises(NotImplementedError, match="optimizer step inside tapegrad.record"):
        tg.record(stepping, x0)
    weight = tg.tensor([1.0, 1.0, 1.0], dtype=tg.float64, requires_grad=True)
    hidden = weight * 2  # of an eager graph outside the recording

    def changing(x):
        hidden.mul_(x)
        return (hidden * x).sum()

    with pytest.raises(NotImplementedError, match="tensor of another autograd graph"):
        tg.record(changing, x0)


def test_a_captured_view_reads_its_captured_base_after_a_change():
    base = tg.ones(3, dtype=tg.float64)
    view = base[1:]

    def f(x):
        y = (view + x[1:]).pow(2).sum()
        base.mul_(x)
        return y + (view * x[1:]).sum()

    x0 = np.array([1.0, 2.0, 3.0])
    tape = tg.record(f, x0)
    assert float(tape(x0)) == float(tape.outputs[0]) == 38.0


def test_log_probabilities_picked_by_labels_are_guarded_on_the_labels():
    def loss(logits, labels):
        logp = logits.log_softmax(1)
        return -logp[tg.arange(3), labels].mean()

    logits = np.random.default_rng(0).standard_normal((3, 4))
    tape = tg.record(loss, logits, np.array([0, 3, 1]))
    x = tg.tensor(logits, requires_grad=True)
    expected = loss(x, tg.tensor([0, 3, 1]))
    expected.backward()
    value, (grad, _) = tape.value_and_grad(logits, np.array([0, 3, 1]))
    np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-12)
    with pytest.raises(tg.GuardError):
        tape(logits, np.array([2, 3, 1]))


def _one_storage_two_names(order):
    """A storage written through one name and read through another the recording cannot relate."""
    a = tg.ones(3, dtype=tg.float64)
    b = a.detach()  # made before the recording: an alias it never saw made

    def f(x):
        if order == "read first":
            y = (a + x).pow(2).sum()
            b.add_(x)
            return y + (a * x).sum()
        b.add_(x)
        return (a * x).sum()

    return f


@pytest.mark.parametrize("order", ["read first", "written first"])
def test_an_alias_made_outside_the_recording_and_changed_inside_raises(order):
    x0 = np.array([1.0, 2.0, 3.0])
    with pytest.raises(NotImplementedError, match="storage another tensor it reads also holds"):
        tg.record(_one_storage_two_names(order), x0)


def test_aliases_made_inside_the_recording_or_only_read_still_replay_as_eager():
    x0, x1 = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    a = tg.ones(3, dtype=tg.float64)
    b = a.detach()  # read through both names, written through neither: a constant

    def reading(x):
        return (a * x).sum() + (b * x * x).sum()

    value, (grad,) = tg.record(reading, x0).value_and_grad(x1)
    assert value.item() == pytest.approx(float((x1 + x1 * x1).sum()))
    np.testing.assert_allclose(grad.numpy(), 1 + 2 * x1)
    c = tg.ones(3, dtype=tg.float64)

    def writing(x):
        d = c.detach()  # made inside: followed
        d.add_(x)
        return (c * x).sum()

    value, (grad,) = tg.record(writing, x0).value_and_grad(x1)
    assert value.item() == pytest.approx(float(((1 + x1) * x1).sum()))
    np.testing.assert_allclose(grad.numpy(), 1 + x1)  # the gradient goes past the change, as in eager


@pytest.mark.parametrize("changed", ["captured", "input"])
def test_a_tensor_both_captured_and_an_example_input_refuses_a_change(changed):
    w = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, requires_grad=True)

    def f(x):
        with tg.no_grad():
            (w if changed == "captured" else x).mul_(2)
        return (x * w).sum()

    with pytest.raises(NotImplementedError, match="storage another tensor it reads also holds"):
        tg.record(f, w)
    v = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, requires_grad=True)
    value, (grad,) = tg.record(lambda x: (x * v).sum(), v).value_and_grad(np.ones(3))
    assert value.item() == 6.0  # read only: a constant, as in torch.func
    np.testing.assert_array_equal(grad.numpy(), [1.0, 2.0, 3.0])


def test_a_change_through_data_of_a_value_an_op_saved_raises():
    x0 = np.array([1.0, 2.0, 3.0])
    a = tg.ones(3, dtype=tg.float64)

    def f(x):
        y = (a * x).sum()  # saves a for its backward: eager would differentiate with the new values
        a.data.mul_(x.detach())
        return y

    with pytest.raises(NotImplementedError, match="an op saved for its backward"):
        tg.record(f, x0)
    b = tg.ones(3, dtype=tg.float64)

    def g(x):
        y = (b + x).sum()  # saves nothing of b
        b.data.mul_(x.detach())
        return y + (b * x).sum()

    value, (grad,) = tg.record(g, x0).value_and_grad(2 * x0)
    b.data.fill_(1.0)
    x = tg.tensor(2 * x0, requires_grad=True)
    eager = g(x)
    eager.backward()
    assert value.item() == eager.item()
    np.testing.assert_array_equal(grad.numpy(), x.grad.numpy())


def test_a_re_record_reads_the_captured_tensors_as_the_first_recording_did():
    x0 = np.array([1.0, 2.0, 3.0])
    buffer = tg.zeros(3, dtype=tg.float64)

    def f(x):
        buffer.add_(x.detach())
        return (buffer * x).sum() if x.sum() > 0 else (buffer * x * 2).sum()

    tape = tg.record(f, x0, rerecord=True)
    after_recording = buffer.numpy().copy()
    first = tape(x0).item()
    other = tape(-x0).item()  # a re-record, reading the buffer at zero as the first did
    again = tape(x0).item()  # and another
    assert (first, other, again) == (14.0, 28.0, 14.0)
    np.testing.assert_array_equal(buffer.numpy(), after_recording)  # a replay changes no tensor


@pytest.mark.parametrize("nans", [1, 2])
@pytest.mark.parametrize("reduce", ["max(1)", "min(1)", "amax(1)", "max()", "min()", "amin()"])
def test_a_nan_extreme_replays_its_gradient_as_eager(reduce, nans):
    calls = {
        "max(1)": lambda x: x.max(1)[0].sum(),
        "min(1)": lambda x: x.min(1)[0].sum(),
        "amax(1)": lambda x: x.amax(1).sum(),
        "max()": lambda x: x.max(),
        "min()": lambda x: x.min(),
        "amin()": lambda x: x.amin(),
    }
    f = calls[reduce]
    tape = tg.record(f, np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]))
    with_nan = np.array([[1.0, np.nan, 3.0], [0.0, 0.0, np.nan if nans == 2 else 0.0]])
    x = tg.tensor(with_nan, requires_grad=True)
    f(x).backward()
    np.testing.assert_array_equal(tape.value_and_grad(with_nan)[1][0].numpy(), x.grad.numpy())  # NaNs in place


def test_an_alias_written_with_constants_before_its_first_read_replays_and_vmaps_as_eager():
    a = tg.zeros(2, dtype=tg.float64)
    b = a.detach()  # made outside: the recording cannot relate the two

    def f(x):
        b.add_(1.0)  # not from the inputs: the value a is first read at is the replay's everywhere
        return (a * x).sum()

    tape = tg.record(f, np.ones(2))
    assert tape(np.array([2.0, 3.0])).item() == 5.0
    np.testing.assert_array_equal(a.numpy(), [1.0, 1.0])
    a.zero_()
    batched = tg.func.vmap(f)(tg.tensor(np.arange(6.0).reshape(3, 2)))  # one recording: one change
    np.testing.assert_array_equal(batched.numpy(), [1.0, 5.0, 9.0])  # torch.func.vmap's values
    np.testing.assert_array_equal(a.numpy(), [1.0, 1.0])


def test_a_refused_write_is_refused_before_it_is_made():
    a = tg.ones(3, dtype=tg.float64)
    b = a.detach()

    def f(x):
        y = (a * x).sum()  # a is read: b's storage is a tape constant now
        b.add_(x)
        return y

    with pytest.raises(NotImplementedError, match="storage another tensor it reads also holds"):
        tg.record(f, np.ones(3))
    np.testing.assert_array_equal(a.numpy(), [1.0, 1.0, 1.0])  # unchanged


def test_vector_to_parameters_inside_a_recording_replays_as_eager():
    from tapegrad.nn.utils import vector_to_parameters

    def make():
        w = tg.ones(3, dtype=tg.float64, requires_grad=True)

        def f(x):
            vector_to_parameters(x.detach() * 2, [w])  # p.data = a view of the vector, as PyTorch
            return (w * x).sum()

        return f

    x0, x1 = np.array([1.0, 2.0, 3.0]), np.array([3.0, 1.0, 2.0])
    value, (grad,) = tg.record(make(), x0).value_and_grad(x1)
    x = tg.tensor(x1, requires_grad=True)
    eager = make()(x)
    eager.backward()
    assert value.item() == eager.item() == 28.0
    np.testing.assert_array_equal(grad.numpy(), x.grad.numpy())


@pytest.mark.parametrize(
    "draw",
    [
        lambda x: F.dropout(x, 0.5, training=True),
        lambda x: x + tg.randn(3, dtype=x.dtype),
        lambda x: tg.nn.Dropout2d(0.5)(x.reshape(1, 3, 1, 1)).reshape(3),
    ],
)
def test_a_recording_that_draws_random_numbers_raises(draw):
    with pytest.raises(NotImplementedError, match="draws random numbers"):
        tg.record(lambda x: draw(x).sum(), np.ones(3))
    model = tg.nn.Dropout(0.5)
    model.eval()  # no draws: recordable
    assert tg.record(lambda x: model(x).sum(), np.ones(3))(np.full(3, 2.0)).item() == 6.0


def test_a_replay_reuses_no_arena_a_caller_still_holds():
    tape = tg.record(lambda x, y: (x * y + x.sin()).sum(), np.ones(50_000), np.ones(50_000))
    first = np.full(50_000, 2.0), np.full(50_000, 3.0)
    _, held = tape.value_and_grad(*first)  # views of the sweep's arena: the caller's now
    expected = [g.numpy().copy() for g in held]
    for value in (4.0, 5.0):
        tape.value_and_grad(np.full(50_000, value), np.full(50_000, value))
    for gradient, values in zip(held, expected):
        np.testing.assert_array_equal(gradient.numpy(), values)


def test_one_tape_replayed_from_several_threads_gives_each_its_own_result():
    import threading

    tape = tg.record(lambda x: (x * x * x).sum(), np.ones(1000))
    wrong = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(100):
            x = rng.standard_normal(1000)
            value, (grad,) = tape.value_and_grad(x)
            if not (np.allclose(grad.numpy(), 3 * x * x) and np.isclose(value.item(), (x**3).sum())):
                wrong.append(seed)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


def test_random_draws_are_refused_on_a_re_record_and_counted_per_thread():
    import threading

    def noisy(x):
        return x + tg.randn(3, dtype=x.dtype) if x.sum() > 0 else x * 2.0

    tape = tg.record(noisy, -np.ones(3), rerecord=True)  # this branch draws nothing
    with pytest.raises(NotImplementedError, match="draws random numbers"):
        tape(np.ones(3))  # the re-record at the other branch does
    stop = threading.Event()

    def drawing():
        while not stop.is_set():
            tg.randn(2)

    other = threading.Thread(target=drawing)
    other.start()
    try:  # another thread's draws are not this recording's
        for _ in range(20):
            assert tg.record(lambda x: (x * 1.5).sum(), np.ones(3))(np.ones(3)).item() == 4.5
    finally:
        stop.set()
        other.join()


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_a_float32_sum_beyond_float32s_range_replays_as_eager(reduce):
    """Eager sums float32 in float32: four 1e38s are inf, and so is their mean. The replay adds
    in float64 and once came back finite; it rounds its total to float32 before it divides."""

    def f(a):
        return getattr(tg.stack([a, a, a, a]), reduce)() + getattr(a * tg.ones(100, dtype=tg.float32), reduce)()

    tape = tg.record(f, np.float32(1.0))
    x = np.float32(1e38)
    assert np.isinf(f(tg.tensor(x)).item())
    assert np.isinf(tape(x).item())
    np.testing.assert_array_equal(tape(np.float32(0.5)).numpy(), f(tg.tensor(np.float32(0.5))).numpy())


def test_integers_a_replay_cannot_hold_exactly_raise_rather_than_round_or_wrap():
    """A replay holds integers as float64: exact within +-2**53. An int64 input beyond is refused;
    integer arithmetic reaching beyond its dtype (int32 wraps in eager) or 2**53 fails as a
    guard; selections of integers (labels) are not checked and replay as before."""
    big = 2**53 - 2
    branch = tg.record(lambda x, i: x * 2 if i.item() % 2 == 0 else x * 3, np.ones(2), np.array(big))
    with pytest.raises(ValueError, match=r"input 1 \('i'\) holds integers of 2\*\*53 or beyond"):
        branch(np.ones(2), np.array(big + 3))  # 2**53 + 1: once the recorded even branch, silently
    squares = tg.record(lambda x, i: x * (i * i).double(), np.ones(2), np.array([3, 4], np.int32))
    np.testing.assert_array_equal(squares(np.ones(2), np.array([5, -6], np.int32)).numpy(), [25.0, 36.0])
    with pytest.raises(
        tg.GuardError, match=r"mul of int32 values reaches 4294967296 .* beyond -2147483648 to 2147483647"
    ):
        squares(np.ones(2), np.array([65536, 2], np.int32))  # eager wraps to 0; once 4.29e9
    negated = tg.record(lambda x, i: x * (-i).double(), np.ones(1), np.array([1], np.int32))
    with pytest.raises(tg.GuardError, match="neg of int32 values"):
        negated(np.ones(1), np.array([-(2**31)], np.int32))  # eager wraps -(-2**31) to itself
    tripled = tg.record(lambda x, i: x * (i * 3 - 2**53).double(), np.ones(1), np.array([1]))
    with pytest.raises(tg.GuardError, match="mul_scalar of int64 values reaches 9007199254740992"):
        tripled(np.ones(1), np.array([3002399751580331]))  # 2**53 + 1, which float64 rounds to 2**53
    labels = tg.record(lambda x, y: tg.nn.functional.cross_entropy(x, y), np.ones((2, 3)), np.array([0, 2]))
    assert labels._integer_checks() == []
    assert labels._scalar_program() is None or labels._program is not None


@pytest.mark.parametrize(
    "power",
    [lambda i: 2 ** (i - 1), lambda i: (i + 2) ** (i - 1)],
    ids=["rpow_scalar", "pow"],
)
def test_integer_powers_to_negative_exponents_raise_rather_than_keep_a_fraction(power):
    """PyTorch's integer power to a negative exponent is 0 (a base other than 1 or -1), as eager
    computes it; a replay holds integers as float64 and kept 0.5, even at the recording's own
    inputs. It fails as a guard there; non-negative exponents replay as eager."""

    def f(x, i):
        return (power(i).to(x.dtype) * x).sum()

    x = np.array([1.0, 2.0, 3.0, 4.0])
    positive, negative = np.array([1, 1, 2, 3]), np.array([0, 1, 2, 3])
    tape = tg.record(f, x, positive)
    assert tape(x, positive).item() == f(tg.tensor(x), tg.tensor(positive)).item()
    with pytest.raises(tg.GuardError, match="pow of int64 values to a negative exponent"):
        tape(x, negative)
    with pytest.raises(tg.GuardError, match="to a negative exponent"):
        tg.record(f, x, negative).value_and_grad(x, negative, argnums=0)


def test_vmap_of_integer_arithmetic_runs_eagerly_per_slice():
    from tapegrad.func import vmap, vmap_stats

    ints = tg.tensor(np.array([65536, 2, 3], np.int32))
    out = vmap(lambda x, i: x * (i * i).double())(tg.ones(3, dtype=tg.float64), ints)
    np.testing.assert_array_equal(out.numpy(), [0.0, 4.0, 9.0])  # int32 wraps, as eager and PyTorch
    assert vmap_stats()["path"] == "eager"
    out = vmap(lambda x, i: x * i.double())(tg.ones(3, dtype=tg.float64), tg.tensor([2**53 + 1, 1, 2]))
    np.testing.assert_array_equal(out.numpy(), [2.0**53, 1.0, 2.0])
    assert vmap_stats()["path"] == "eager"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["exp", "softplus", "tanh"])
def test_a_small_sum_after_an_elementwise_row_replays_as_eager(op, dtype):
    """Rows of a few elements and their ``sum`` run inside the sweep (``_small_forward``). A
    softplus loop written inline there once made the float64 sum of any row give 0 (a numba
    miscompile of overloads inlined as IR twice over): every replay of ``f(x).sum()`` was 0."""
    function = (lambda x: tg.nn.functional.softplus(x)) if op == "softplus" else (lambda x: getattr(x, op)())
    x = np.linspace(-2.0, 2.5, 5).astype(dtype)
    tape = tg.record(lambda x: function(x).sum(), x)
    for values in (x, x * 0.5 + 0.25):
        expected = function(tg.tensor(values)).sum().numpy()
        np.testing.assert_allclose(tape(values).numpy(), expected, rtol=4e-7 if dtype == np.float32 else 1e-15)


def test_replayed_integer_and_boolean_outputs_keep_their_dtypes():
    """A replay computes in float slots; its outputs go back in their eager dtypes (they came
    back float64: predictions no longer usable as indices or masks)."""

    def f(x, y):
        logits = x * y
        return (logits**2).sum(), logits.argmax(1), logits > 0, (logits > 0).sum()

    x0, y0 = np.ones((3, 4), np.float32), np.ones((3, 4), np.float32)
    tape = tg.record(f, x0, y0)
    rng = np.random.default_rng(0)
    x1, y1 = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    eager = f(tg.tensor(x1), tg.tensor(y1))
    seeds = (np.float32(1.0), np.zeros(3), np.zeros((3, 4)), None)
    for replayed in (tape(x1, y1), tape.value_and_grad(x1, y1, grad_outputs=seeds)[0]):
        assert [t.dtype for t in replayed] == [t.dtype for t in eager]
        np.testing.assert_allclose(replayed[0].numpy(), eager[0].numpy(), rtol=1e-6)  # (a float32 sum)
        for got, want in zip(replayed[1:], eager[1:]):
            np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_a_number_as_the_gradient_of_a_scalar_output():
    tape = tg.record(lambda x: (x * x).sum(), np.array([0.2, 0.9]))
    for seed in (2.0, np.float64(2.0)):
        (grad,) = tape.value_and_grad(np.array([0.7, 0.1]), grad_outputs=seed)[1]
        np.testing.assert_allclose(grad.numpy(), [2.8, 0.4])


def _branchy(x):
    return (x * 3 if x.sum() > 0 else x * -5).sum()


# Rows whose float32 sum is exactly 0 eagerly (the branch: -5) and about 1.8e-7 in a replay's
# order: a truth that a replay would decide the other way (a review found vmap doing so).
AT_THE_BOUNDARY = np.array([[0.5, 0.25, -1.0, 0.3], [-0.1, -0.0, 1.0, -0.9]], np.float32)


def test_a_truth_within_rounding_of_its_boundary_is_not_trusted():
    # (compiled, the replay's sum is 1.8e-7 and the guard's sides are within rounding; as plain
    # Python, under NUMBA_DISABLE_JIT, it is 0 and the truth itself differs: refused either way)
    tape = tg.record(_branchy, AT_THE_BOUNDARY[0])
    with pytest.raises(tg.GuardError, match="replay guard failed"):
        tape(AT_THE_BOUNDARY[1])
    # Recorded again at these inputs: Python's branch, or, where the replay's sum still rounds
    # to the other side of 0 than Python's, refused; never the branch Python did not take
    again = tg.record(_branchy, AT_THE_BOUNDARY[0], rerecord=True)
    try:
        _, (grad,) = again.value_and_grad(AT_THE_BOUNDARY[1])
    except tg.GuardError as error:
        assert "on a tape recorded again at these inputs" in str(error)
    else:
        assert grad.tolist() == [-5.0] * 4
    # A truth near its boundary that the replay decides as Python does is replayed when
    # recorded at those inputs (``_forward(rerecorded=True)`` goes on past it)
    near = np.array([0.5, 0.25, -1.0, 0.2500001], np.float32)
    with pytest.raises(tg.GuardError, match="within rounding of each other"):
        tg.record(_branchy, near)(near)
    tape = tg.record(_branchy, near)
    tape._forward([near], rerecorded=True)
    assert tape._outputs().item() == _branchy(tg.tensor(near)).item()


def test_vmap_takes_eagers_branch_at_a_boundary():
    for rows in (AT_THE_BOUNDARY, np.vstack([np.random.default_rng(0).standard_normal((30, 4)), AT_THE_BOUNDARY[1:]])):
        rows = rows.astype(np.float32)
        batched = tg.func.vmap(tg.func.grad(_branchy))(tg.tensor(rows))
        values = tg.func.vmap(_branchy)(tg.tensor(rows))
        for index, row in enumerate(rows):
            x = tg.tensor(row, requires_grad=True)
            eager = _branchy(x)
            eager.backward()
            assert batched[index].tolist() == x.grad.tolist()
            assert values[index].item() == eager.item()


def test_vmap_equality_of_a_mean_at_its_boundary():
    g = lambda x: (x * 3 + 100 if x.mean() == x[0] else x * -5 - 100).sum()  # noqa: E731
    rows = np.array(
        [[0.2, 0.4, 1.2, 0.4, 1.1, -0.5, 0.6, -0.4, -1.0, -2.0],
         [0.0, -1.3, 1.1, 0.1, 0.8, -0.2, -0.3, -1.2, 0.9, 0.09999999999999976]]
    )  # fmt: skip
    out = tg.func.vmap(g)(tg.tensor(rows))
    assert [out[i].item() for i in range(2)] == [g(tg.tensor(row)).item() for row in rows]


def test_counts_compared_exactly_replay_without_a_guard_failure():
    # A count of a mask equal to its threshold is exact in any order: decided, not undecided
    f = lambda x: x.sum() * 2 if (x > 0).sum() == 2 else x.sum()  # noqa: E731
    tape = tg.record(f, np.array([1.0, 2.0, -1.0]))
    assert tape(np.array([3.0, -4.0, 5.0])).item() == 8.0


def test_ops_on_a_recordings_outputs_after_it_ended():
    tape = tg.record(lambda x: x * 2, np.ones(3))
    result = tape.outputs[0] * tg.tensor(2.0, requires_grad=True)
    np.testing.assert_array_equal(result.detach().numpy(), [4.0, 4.0, 4.0])


def _collections_during(f, *example_inputs):
    """(full collections while ``f`` ran inside ``tg.record``, whether the collector ran again
    after it): ``gc.callbacks`` sees every collection, automatic or asked for."""
    seen = []

    def note(phase, info):
        if phase == "start":
            seen.append(info["generation"])

    def recorded(*inputs):
        start = len(seen)  # (the recording's own set-up may collect before the function runs)
        # Enough surviving containers that the collector, if it ran, would reach generation 2.
        keep = [[i] for i in range(200_000)]
        out = f(*inputs)
        during.extend(seen[start:])
        del keep
        return out

    during = []
    gc.callbacks.append(note)
    try:
        tg.record(recorded, *example_inputs)
        garbage = [[]]
        garbage[0].append(garbage)  # a cycle, for the resumed collector to find
        del garbage
        gc.collect()
    finally:
        gc.callbacks.remove(note)
    return during, len(seen) > len(during)


def test_a_recording_runs_no_garbage_collection_and_resumes_it_after():
    assert gc.isenabled()
    during, after = _collections_during(lambda x: (x * 2).sum(), np.ones(3))
    assert during == []
    assert after and gc.isenabled()


def test_a_recording_leaves_a_disabled_collector_disabled_and_an_error_restores_it():
    gc.disable()
    try:
        tg.record(lambda x: x.sum(), np.ones(2))
        assert not gc.isenabled()
    finally:
        gc.enable()

    def fails(x):
        raise ValueError("in the recorded function")

    with pytest.raises(ValueError, match="in the recorded function"):
        tg.record(fails, np.ones(2))
    assert gc.isenabled()


@pytest.mark.parametrize(
    "reduce",
    [
        lambda x: x.logsumexp(1),
        lambda x: x.sum(1),
        lambda x: x.prod(1),
        lambda x: x.cumsum(1),
    ],
)
def test_reductions_over_an_empty_dimension_replay_as_eager(reduce):
    """logsumexp's replay began each group at its first element, which an empty group does not
    have: it read the next row's value (a NaN there made the result NaN, not -inf)."""
    x = np.zeros((3, 0), np.float32)
    y = np.array([np.nan, 1.0, 2.0], np.float32)

    def f(x, y):
        return reduce(x), y * 2

    eager = reduce(tg.tensor(x)).numpy()
    replayed = tg.record(f, x, y)(x, y)[0].numpy()
    np.testing.assert_array_equal(replayed, eager)


def test_an_integer_output_needs_no_grad_output():
    """Found by a review: ``value_and_grad`` of a tape with an argmax output asked for a
    ``grad_outputs`` entry for it (None raised "grad can be implicitly created only for scalar
    outputs"), though no gradient flows from an integer or bool output."""
    x = np.arange(12.0).reshape(4, 3)
    tape = tg.record(lambda t: (t.argmax(1), (t * t).sum(), t > 2), x)
    new = x[::-1].copy()
    values, (grad,) = tape.value_and_grad(new, grad_outputs=(None, 1.0, None))
    assert values[0].tolist() == [2] * 4 and values[1].item() == (new * new).sum()
    np.testing.assert_array_equal(grad.numpy(), 2 * new)
    np.testing.assert_array_equal(tape.value_and_grad(new)[1][0].numpy(), 2 * new)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        tg.record(lambda t: (t.argmax(1), t * 2), x).value_and_grad(x, grad_outputs=(None, None))


def _layer_norm_squares(x):
    centered = x - x.mean()
    return ((centered / np.sqrt((centered**2).mean() + 1e-5)) ** 2).sum()


# (function, input, float64 reference) of float32 reductions whose replay accumulates in float64
_ACCUMULATING = {
    "var": (lambda v: v.var(), lambda rng: 1e5 + rng.standard_normal(10_000), lambda x: x.var(ddof=1)),
    "std": (lambda v: v.std(), lambda rng: 1e6 + rng.standard_normal(1_000), lambda x: x.std(ddof=1)),
    "norm": (lambda v: v.norm(), lambda rng: rng.standard_normal(4_000) / 63, np.linalg.norm),
    "layer_norm": (
        lambda v: F.layer_norm(v[None], (len(v),)).pow(2).sum(),
        lambda rng: 1e4 + rng.standard_normal(8_000),
        _layer_norm_squares,
    ),
}


@pytest.mark.parametrize("name", sorted(_ACCUMULATING))
def test_float32_reductions_replay_accumulating_in_float64(name):
    """Run as Python (``NUMBA_DISABLE_JIT``, and the interpreters' Python tier while numba compiles
    them: ``_kernels/tiers.py``), the kernels accumulate float32 values in float64 as compiled
    they do: numba types ``0.0`` as float64, where numpy 2 makes ``0.0 + np.float32(x)`` a
    float32."""
    function, make, reference = _ACCUMULATING[name]
    x = make(np.random.default_rng(3)).astype(np.float32)
    replayed = tg.record(function, x)(x).item()
    # (a float32 accumulator: var 1.5e-3, std 7.5e-4, norm 3.0e-7, layer_norm 4.8e-6 off)
    assert replayed == pytest.approx(reference(x.astype(np.float64)), rel=2e-7)
