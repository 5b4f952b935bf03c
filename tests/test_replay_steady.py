"""``Tape.value_and_grad``'s steady path (``replay._Steady``): from the second call with the same
``argnums`` and no ``grad_outputs``, the general path's steps in one frame. Each test checks it
against the general path (a call with ``grad_outputs``, which never takes it), or checks that a
call it must not take goes the general way and raises or records as that one does."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from tapegrad.replay import GuardError, Tape


def _mlp(dtype=np.float32):
    """A small classifier's loss: four parameters, then the labels (an integer input)."""
    rng = np.random.default_rng(0)
    X = tg.tensor(rng.standard_normal((8, 5)).astype(dtype))

    def loss(w1, b1, w2, b2, labels):
        return F.cross_entropy(F.linear(F.linear(X, w1, b1).tanh(), w2, b2), labels)

    shapes = ((6, 5), (6,), (3, 6), (3,))
    params = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    labels = rng.integers(0, 3, 8)
    return tg.record(loss, *params, labels), params, labels, rng


def _general(tape, inputs, argnums):
    """The general path's result: a ``grad_outputs`` (the default one, spelled out) keeps a
    call off the steady path."""
    return tape.value_and_grad(*inputs, grad_outputs=np.ones(()), argnums=argnums)


def _same(first, second):
    """The two results' outputs and gradients hold the same bits (None where both are)."""
    (value_a, grads_a), (value_b, grads_b) = first, second
    assert value_a.numpy().tobytes() == value_b.numpy().tobytes()
    grads_a = grads_a if isinstance(grads_a, tuple) else (grads_a,)
    grads_b = grads_b if isinstance(grads_b, tuple) else (grads_b,)
    assert len(grads_a) == len(grads_b)
    for a, b in zip(grads_a, grads_b):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == b.shape and a.dtype == b.dtype
            assert a.numpy().tobytes() == b.numpy().tobytes()


def _general_calls(monkeypatch) -> list:
    """Counts the calls that went the general way (``Tape._forward``)."""
    calls = []
    general = Tape._forward

    def counted(self, *args, **kwargs):
        calls.append(1)
        return general(self, *args, **kwargs)

    monkeypatch.setattr(Tape, "_forward", counted)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("argnums", [None, 0, (1, 3), (3, 0), (-2,), 4, (0, 4)])
def test_steady_calls_equal_the_general_path(monkeypatch, dtype, argnums):
    tape, params, labels, rng = _mlp(dtype)
    calls = _general_calls(monkeypatch)
    for step in range(4):
        inputs = [(p + 0.1 * step * rng.standard_normal(p.shape)).astype(dtype) for p in params] + [labels]
        steady = tape.value_and_grad(*inputs, argnums=argnums)
        assert len(calls) == 1 + step  # the first call, and each reference call before this one
        _same(steady, _general(tape, inputs, argnums))
    assert tape._steady[argnums] is not None


def test_the_general_path_takes_what_the_steady_one_refuses(monkeypatch):
    tape, params, labels, _ = _mlp()
    tape.value_and_grad(*params, labels)  # the plan
    calls = _general_calls(monkeypatch)
    expected = _general(tape, [*params, labels], None)
    calls.clear()
    # Tensors and lists: the general path converts them, to the same result.
    _same(tape.value_and_grad(*[tg.tensor(p) for p in params], labels), expected)
    _same(tape.value_and_grad(*params, labels.tolist()), expected)
    assert len(calls) == 2
    # Another shape, another dtype, another count: the general path's errors.
    with pytest.raises(ValueError, match=r"input 0 \('w1'\) was recorded as shape \(6, 5\) float32"):
        tape.value_and_grad(params[0][:2], *params[1:], labels)
    with pytest.raises(ValueError, match=r"input 1 \('b1'\) was recorded as shape \(6,\) float32"):
        tape.value_and_grad(params[0], params[1].astype(np.float64), *params[2:], labels)
    with pytest.raises(TypeError, match="the tape was recorded with 5 inputs, got 4"):
        tape.value_and_grad(*params)
    with pytest.raises(ValueError, match=r"input 4 \('labels'\) holds integers of 2\*\*53 or beyond"):
        tape.value_and_grad(*params, np.full(8, 2**60))
    calls.clear()
    _same(tape.value_and_grad(*params, labels), expected)  # and steady again after them
    assert not calls


def test_a_failed_guard_on_a_steady_tape_raises_or_records_again():
    def f(x):
        return (x * x).sum() if x.sum() > 0 else (-x).sum()

    positive, negative = np.array([1.0, 2.0]), np.array([-1.0, -3.0])
    tape = tg.record(f, positive)
    for _ in range(3):
        value, (grad,) = tape.value_and_grad(positive)
    assert value.item() == 5.0 and grad.tolist() == [2.0, 4.0]
    with pytest.raises(GuardError, match="replay guard failed"):
        tape.value_and_grad(negative)
    value, (grad,) = tape.value_and_grad(positive)
    assert value.item() == 5.0 and grad.tolist() == [2.0, 4.0]

    tape = tg.record(f, positive, rerecord=True)
    for x, expected_value, expected_grad in [
        (positive, 5.0, [2.0, 4.0]),
        (positive, 5.0, [2.0, 4.0]),
        (negative, 4.0, [-1.0, -1.0]),  # recorded again: the other branch
        (negative, 4.0, [-1.0, -1.0]),
        (positive, 5.0, [2.0, 4.0]),
    ]:
        value, (grad,) = tape.value_and_grad(x)
        assert value.item() == expected_value and grad.tolist() == expected_grad


def test_several_outputs_and_a_pickled_tape_take_the_steady_path(monkeypatch):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal(3)
    tape = tg.record(lambda x, w: ((x @ w).tanh().sum(), (x * w).pow(2).mean()), x, w)
    copy = pickle.loads(pickle.dumps(tape))
    for replayed in (tape, copy):
        replayed.value_and_grad(x, w)
        calls = _general_calls(monkeypatch)
        values, grads = replayed.value_and_grad(x + 1, w)
        assert not calls
        expected_values, expected_grads = replayed.value_and_grad(x + 1, w, grad_outputs=(np.ones(()), np.ones(())))
        for a, b in zip(values + grads, expected_values + expected_grads):
            assert a.numpy().tobytes() == b.numpy().tobytes()
        monkeypatch.undo()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_steady_forward_calls_equal_the_general_path(monkeypatch, dtype):
    tape, params, labels, rng = _mlp(dtype)
    reference, _, _, _ = _mlp(dtype)  # the same recording, replayed the general way only
    calls = _general_calls(monkeypatch)
    for step in range(4):
        inputs = [(p + 0.1 * step * rng.standard_normal(p.shape)).astype(dtype) for p in params] + [labels]
        value = tape(*inputs)
        assert len(calls) == 1  # the first call only
        expected = reference._forward(inputs) or reference._outputs()
        assert value.numpy().tobytes() == expected.numpy().tobytes()
        # the steady forward leaves the tape as the general one does: backward reads its values
        grads = tape.backward()
        expected_grads = reference.backward()
        for a, b in zip(grads, expected_grads):
            assert (a is None) == (b is None)
            if a is not None:
                assert a.numpy().tobytes() == b.numpy().tobytes()
        del calls[1:]  # (the reference's own)


def test_a_steady_forward_refuses_as_the_general_one():
    tape, params, labels, _ = _mlp()
    tape(*params, labels)
    with pytest.raises(ValueError, match=r"input 2 \('w2'\) was recorded as shape \(3, 6\) float32"):
        tape(params[0], params[1], params[2].T, params[3], labels)
    with pytest.raises(TypeError, match="the tape was recorded with 5 inputs, got 6"):
        tape(*params, labels, labels)
    x = tg.tensor(params[0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a Tape replay is not differentiable by autograd"):
        tape(x, *params[1:], labels)
    value = tape(*params, labels)
    assert value.numpy().tobytes() == tape(*[tg.tensor(p) for p in params], tg.tensor(labels)).numpy().tobytes()


@pytest.mark.parametrize("argnums", [(1.0,), (1 + 0j,), ([1],), 1.0, True, (np.int64(1),)])
def test_argnums_the_general_path_refuses_are_refused_after_a_steady_plan(argnums):
    """A steady plan is found by ``argnums``: (1.0,) equals and hashes as (1,), and must not
    find its plan where the general path raises."""
    tape = tg.record(lambda a, b: (a * b).sum(), np.ones(3), np.full(3, 2.0))
    a, b = np.arange(3.0), np.ones(3)
    try:
        expected = tape.value_and_grad(a, b, argnums=argnums, grad_outputs=np.ones(()))
    except Exception as error:  # noqa: BLE001 - whatever the general path raises
        expected = error
    for plan in [(1,), 1, (1,)]:  # the plans an equal key would find, twice each
        tape.value_and_grad(a, b, argnums=plan)
        tape.value_and_grad(a, b, argnums=plan)
    if isinstance(expected, Exception):
        with pytest.raises(type(expected), match=re.escape(str(expected))):
            tape.value_and_grad(a, b, argnums=argnums)
    else:
        _same(tape.value_and_grad(a, b, argnums=argnums), expected)
