"""``value_and_grad`` reads large inputs where they lie (``Tape._place_inputs``): the forward's
rows see them through a view of memory that spans the value arena and the inputs, above or
below it, and the backward reads them by address. Each result here is compared bit for bit with
the same tape's replay through its arena (``tape(x)`` then ``backward()``, which copy the
inputs), and with eager's to rounding (a replay sums in another order)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import replay

N = 100_000  # 400 KB in float32: above the size read in place


def _large(dtype, seed):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, N).astype(dtype)


def _eager(function, *arrays):
    tensors = [tg.tensor(a, requires_grad=True) for a in arrays]
    value = function(*tensors)
    value.backward()
    return value.item(), [t.grad.numpy() for t in tensors]


def _through_the_arena(tape, *arrays):
    value = tape(*arrays).item()
    return value, [grad.numpy() for grad in tape.backward()]


def _check(tape, function, arrays, argnums=None, in_place=True):
    """value_and_grad at ``arrays`` against the copying replay (bits) and eager (rounding);
    ``in_place``: whether it read some of them where they lie."""
    copied_value, copied_grads = _through_the_arena(tape, *arrays)
    eager_value, eager_grads = _eager(function, *arrays)
    value, grads = tape.value_and_grad(*arrays, argnums=argnums)
    assert tape._inputs_in_arena != in_place
    positions = range(len(arrays)) if argnums is None else argnums
    assert value.item() == copied_value == pytest.approx(eager_value, rel=1e-6)
    for got, position in zip(grads, positions):
        np.testing.assert_array_equal(got.numpy(), copied_grads[position])
        np.testing.assert_allclose(got.numpy(), eager_grads[position], rtol=1e-5, atol=1e-6)


def _mixed(x, y, s):
    return ((x * y.double() + x.sin()) * s[0]).sum() + (y * y).sum().double() * s[1]


@pytest.mark.parametrize("where", ["below", "above", "between"])
def test_value_and_grad_reads_inputs_in_place_as_eager(where, monkeypatch):
    """Inputs of both arenas (float64 x, float32 y), with a small one copied (s), below the
    arenas in memory, above them, or between them: the arenas and inputs are carved out of one
    buffer in that order (``replay._new_arena``)."""
    x, y, s = _large(np.float64, 0), _large(np.float32, 1), np.array([0.5, -2.0])
    memory = np.zeros(16 * N * 8, np.uint8)  # room for both arenas and both inputs
    free = [0]

    def carve(count, dtype):
        start = free[0]
        free[0] += -(-count * np.dtype(dtype).itemsize // 64) * 64  # (aligned as numpy's)
        return memory[start : start + count * np.dtype(dtype).itemsize].view(dtype)

    def inputs():
        placed = carve(N, np.float64), carve(N, np.float32)
        placed[0][...], placed[1][...] = x, y
        return placed[0], placed[1], s

    def arena(count, dtype):
        made = carve(count, dtype)
        if where == "between" and dtype == np.float32:
            made_inputs.append(inputs())
        return made

    made_inputs = [inputs()] if where == "below" else []
    monkeypatch.setattr(replay, "_new_arena", arena)
    tape = tg.record(_mixed, x, y, s)
    monkeypatch.undo()
    if where == "above":
        made_inputs.append(inputs())
    (arrays,) = made_inputs
    assert tape._in_place_positions() == (0, 1)
    arenas = [values.__array_interface__["data"][0] for values in tape.values]
    starts = [array.__array_interface__["data"][0] for array in arrays[:2]]
    assert (starts[0] > arenas[1], starts[1] > arenas[0]) == {
        "below": (False, False),
        "above": (True, True),
        "between": (False, True),
    }[where]
    _check(tape, _mixed, arrays)
    np.testing.assert_array_equal(arrays[0], x)  # read, never written
    np.testing.assert_array_equal(arrays[1], y)


def test_backward_after_value_and_grad_that_read_in_place_raises():
    """The inputs are the caller's arrays, which may have changed since (a buffer reused for the
    next batch): copied at backward(), they mixed new values with the forward's, silently."""
    x, y = _large(np.float32, 2), _large(np.float32, 3)
    tape = tg.record(lambda x, y: (x * y.sin()).sum(), x, y)
    buffer = x.copy()
    value, grads = tape.value_and_grad(buffer, y)
    buffer *= 3
    with pytest.raises(RuntimeError, match=r"replay the inputs with tape\(\*inputs\) first"):
        tape.backward()
    assert tape(x, y).item() == value.item()  # through the arena: backward goes back to these
    for first, again in zip(grads, tape.backward()):
        np.testing.assert_array_equal(first.numpy(), again.numpy())
    small = tg.record(lambda x: (x * x).sum(), x[:10])  # copied inputs: backward as before
    small.value_and_grad(x[:10])
    np.testing.assert_array_equal(small.backward()[0].numpy(), 2 * x[:10])


def test_one_array_for_two_inputs_and_argnums():
    x = _large(np.float64, 4)
    function = lambda a, b: (a * b.exp()).sum()  # noqa: E731
    tape = tg.record(function, x, x)
    _check(tape, function, (x, x), argnums=(1,))
    _check(tape, function, (x, x))


def test_inputs_not_read_in_place():
    x = _large(np.float32, 5)
    identity = tg.record(lambda x: x * 1.0, x)  # not its own output: read in place
    assert identity._in_place_positions() == (0,)
    guarded = tg.record(lambda x: x.sum() if bool((x > 2).any()) else x.mean(), x)
    assert guarded._in_place_positions() == (0,)  # the guard reads ``any``, not the input
    square = lambda x: (x * x).sum()  # noqa: E731
    _check(tg.record(square, x), square, (np.concatenate([x, x])[::2],), in_place=False)  # not contiguous
    small = tg.record(lambda x: (x * x).sum(), x[:100])
    assert small._in_place_positions() == ()
    loaded = pickle.loads(pickle.dumps(tg.record(lambda x: (x * x).sum(), x)))
    assert loaded._in_place_positions() == ()  # a shipped or loaded tape copies: its rows are only validated
    _check(loaded, square, (x,), in_place=False)
    assert replay._IN_PLACE_BYTES <= x.nbytes


def test_a_guard_read_through_a_view_in_place_fails_as_through_the_arena():
    x = _large(np.float32, 6)
    function = lambda x: x.sum() * 2 if x.sum() > 0 else x.sum() * 3  # noqa: E731
    tape = tg.record(function, np.abs(x))
    _check(tape, function, (np.abs(x),))
    with pytest.raises(tg.GuardError):
        tape.value_and_grad(-np.abs(x))


def test_an_input_converted_from_a_list_is_not_read_after_it_is_freed():
    # value_and_grad read large inputs where they lie, an array numpy made from a list too,
    # which was freed when the placing returned: the sweeps read freed memory (64 MB: a
    # segfault; 512 KB: gradients of 0 and 1e-323 in 19 calls of 20).
    n = 1 << 16
    tape = tg.record(lambda w: (w * w).sum(), np.zeros(n))
    for _ in range(5):
        value, (gradient,) = tape.value_and_grad([0.5] * n)
        assert value.item() == 0.25 * n
        assert np.all(gradient.numpy() == 1.0)
