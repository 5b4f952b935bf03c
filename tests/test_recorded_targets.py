"""``nll_loss``/``cross_entropy`` of targets on the tape (vmap's labels, a recorded batch's): one
``nll_targets`` row that reads each replay's targets, against eager ``nll_loss`` (whose targets
are constants, picked by position), central differences and PyTorch's edge cases."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from tapegrad import _ops
from tapegrad._tape import OPCODE, OPCODE_MASK
from tapegrad.func import grad, vmap
from tapegrad.replay import GuardError

RNG = np.random.default_rng(11)


def _loss(reduction, ignore_index):
    def loss(x, y):
        return F.cross_entropy(x * 1.5, y, reduction=reduction, ignore_index=ignore_index)

    return loss


def _eager(loss, x, y):
    leaf = tg.tensor(x, requires_grad=True)
    value = loss(leaf, tg.tensor(y))
    value.backward()
    return value.detach().numpy(), leaf.grad.numpy()


def _opcodes(tape) -> list:
    return [_ops.OPS[code & OPCODE_MASK].name for code in tape.rows[:, OPCODE]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("ignore_index", [-100, 1])
@pytest.mark.parametrize("shape", [(6, 4), (4,)])
def test_replay_equals_eager_at_new_targets(dtype, reduction, ignore_index, shape):
    loss = _loss(reduction, ignore_index)

    def labels():
        return RNG.integers(0, 4, shape[:-1])

    tape = tg.record(loss, RNG.normal(size=shape).astype(dtype), labels())
    assert _opcodes(tape).count("nll_targets") == 1 and "eq" not in _opcodes(tape)  # one row, no one-hot
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for _ in range(4):
        x, y = RNG.normal(size=shape).astype(dtype), labels()
        value, (gx, gy) = tape.value_and_grad(x, y)
        expected_value, expected_grad = _eager(loss, x, y)
        assert value.dtype == gx.dtype == tg.float32 if dtype == np.float32 else tg.float64
        assert gy is None
        np.testing.assert_allclose(value.numpy(), expected_value, rtol=tol, atol=tol)
        np.testing.assert_allclose(gx.numpy(), expected_grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_matches_central_differences(reduction):
    loss = _loss(reduction, 2)
    y = np.array([0, 2, 3, 1, 2])
    tape = tg.record(loss, RNG.normal(size=(5, 4)), y)
    x = RNG.normal(size=(5, 4))
    _, (gx, _) = tape.value_and_grad(x, y)
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        numeric[index] = (float(tape(up, y)) - float(tape(down, y))) / 2e-6
    np.testing.assert_allclose(gx.numpy(), numeric, rtol=1e-6, atol=1e-8)


def test_all_targets_ignored_gives_nan_mean_and_zero_gradient():
    loss = _loss("mean", 3)
    tape = tg.record(loss, RNG.normal(size=(3, 4)), np.array([0, 1, 2]))
    value, (gx, _) = tape.value_and_grad(RNG.normal(size=(3, 4)), np.array([3, 3, 3]))
    assert np.isnan(value.item())  # PyTorch: 0 / 0
    np.testing.assert_array_equal(gx.numpy(), np.zeros((3, 4)))


def test_a_target_out_of_range_fails_a_guard_and_vmap_raises_pytorchs_error():
    loss = _loss("mean", -100)
    tape = tg.record(loss, RNG.normal(size=(3, 4)), np.array([0, 1, 2]))
    with pytest.raises(GuardError, match="targets out of bounds"):
        tape.value_and_grad(RNG.normal(size=(3, 4)), np.array([0, 4, 2]))
    with pytest.raises(GuardError):
        tape(RNG.normal(size=(3, 4)), np.array([-1, 0, 0]))

    def per_sample(x, y):
        return F.cross_entropy(x[None], y[None])

    X, Y = tg.tensor(RNG.normal(size=(5, 4))), tg.tensor([0, 1, 7, 2, 3])
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):  # the slice recorded again
        vmap(grad(per_sample))(X, Y)


def test_per_sample_gradients_read_each_slices_label():
    X, Y = RNG.normal(size=(9, 4)), RNG.integers(0, 4, 9)
    grads = vmap(grad(lambda x, y: F.cross_entropy((x * x)[None], y[None])))(tg.tensor(X), tg.tensor(Y))
    for i in range(9):
        _, expected = _eager(lambda x, y: F.cross_entropy((x * x)[None], y[None]), X[i], Y[i : i + 1][0])
        np.testing.assert_allclose(grads[i].numpy(), expected, rtol=1e-12, atol=1e-14)


def test_matches_torch_where_installed():
    torch = pytest.importorskip("torch")
    x, y = RNG.normal(size=(6, 5)), np.array([0, 4, 1, 1, -100, 3])
    tape = tg.record(_loss("mean", -100), x, y)
    value, (gx, _) = tape.value_and_grad(x, y)
    leaf = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(leaf * 1.5, torch.tensor(y))
    expected.backward()
    np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(gx.numpy(), leaf.grad.numpy(), rtol=1e-12, atol=1e-15)


def _ce_smoothed(x, y):
    return F.cross_entropy(x, y, weight=tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64), label_smoothing=0.2)


def _packed(x, lengths):
    from tapegrad.nn.utils.rnn import pack_padded_sequence

    return (pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False).data ** 2).sum()


@pytest.mark.parametrize(
    ("function", "values", "recorded", "replayed"),
    [
        (_ce_smoothed, np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]]), [0, 1], [2, 2]),
        (lambda x, r: (x.repeat_interleave(r) ** 2).sum(), np.array([1.0, 2.0]), [1, 1], [3, 1]),
        (lambda x, c: (x[tg.repeat_interleave(c)] ** 2).sum(), np.array([1.0, 2.0, 3.0]), [1, 1, 1], [0, 0, 3]),
        (_packed, np.ones((2, 3)), [1, 3], [3, 3]),
    ],
    ids=["cross_entropy-label_smoothing", "repeat_interleave", "repeat_interleave-indices", "pack_padded_sequence"],
)
def test_integer_inputs_read_in_numpy_are_guarded(function, values, recorded, replayed):
    """Targets (label smoothing's ignored rows and weight total), repeat counts and sequence
    lengths are read in numpy while recording: a replay at other values gave the recording's
    loss and gradients, silently. Now a guard fails (GuardError), and ``rerecord=True`` gives
    eager's values."""
    labels, other = np.array(recorded), np.array(replayed)
    tape = tg.record(function, values, labels)
    with pytest.raises(GuardError):
        tape.value_and_grad(values, other)
    again = tg.record(function, values, labels, rerecord=True)
    value, (gradient, _) = again.value_and_grad(values, other)
    leaf = tg.tensor(values, requires_grad=True)
    expected = function(leaf, tg.tensor(other))
    expected.backward()
    np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gradient.numpy(), leaf.grad.numpy(), rtol=1e-12)
