"""Memory is part of correctness: loops hold resident memory flat, tapes die with their graphs,
deep graphs backward without recursion, threads get exactly their own gradients."""

from __future__ import annotations

import gc
import os
import threading
import weakref

import numpy as np
import pytest

import tapegrad as tg


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _growth(step, iterations: int, warmup: int = 200) -> int:
    for _ in range(warmup):
        step()
    gc.collect()
    before = _rss_bytes()
    for _ in range(iterations):
        step()
    gc.collect()
    return _rss_bytes() - before


W = tg.randn(64, 32, requires_grad=True)
X = tg.randn(16, 64)


def test_training_loop_holds_memory_flat():
    def step():
        loss = ((X @ W).tanh() ** 2).mean()
        loss.backward()
        with tg.no_grad():
            W.sub_(0.01 * W.grad)
        W.grad = None

    assert _growth(step, 3000) < 4 * 2**20


def test_evaluation_without_no_grad_holds_memory_flat():
    outputs = []

    def step():
        outputs[:] = [((X @ W).relu() * 2.0).sum()]

    assert _growth(step, 3000) < 4 * 2**20


def test_state_carried_with_detach_holds_memory_flat():
    state = {"h": tg.zeros(16, 32)}

    def step():
        state["h"] = (state["h"].detach() * 0.5 + X @ W).tanh()

    assert _growth(step, 3000) < 4 * 2**20


def test_in_place_changes_through_views_hold_memory_flat():
    def step():
        h = (X @ W) * 1.0
        h[0].mul_(2.0)  # rebases h (CopySlices) and the view (AsStridedBackward0)
        column = h[:, 1]
        h.add_(1.0)  # the column is re-derived from h when next used
        (column.sum() + h.sum()).backward()
        with tg.no_grad():
            W.grad = None

    assert _growth(step, 3000) < 4 * 2**20


def test_a_rebased_view_does_not_keep_its_tape_alive():
    x = tg.ones(100, requires_grad=True)
    y = x * 2.0
    y[:10].mul_(3.0)
    tape = weakref.ref(y._tape)
    y.sum().backward()
    del y
    gc.collect()
    assert tape() is None
    assert x.grad[:10].tolist() == [6.0] * 10 and x.grad[10:].tolist() == [2.0] * 90


def test_tape_is_released_when_no_tensor_reaches_it():
    x = tg.ones(1000, requires_grad=True)
    y = (x * 2.0).exp().sum()
    tape = weakref.ref(y._tape)
    y.backward()
    del y
    gc.collect()
    assert tape() is None
    assert x.grad is not None  # the leaf and its gradient outlive the graph


def test_a_long_chain_backwards_in_linear_memory():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    before = _rss_bytes()
    y = x * 1.0
    for _ in range(200_000):
        y = y * 1.0
    y.backward(tg.ones(3))
    used = _rss_bytes() - before
    # 48 bytes a row, three float32 gradients a row, plus headroom: far below 1 kB per op.
    assert used < 200_000 * 1000
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_threads_get_exactly_their_own_gradients():
    def work(seed, results):
        rng = np.random.default_rng(seed)
        w = tg.tensor(rng.standard_normal((8, 4)), requires_grad=True)
        data = tg.tensor(rng.standard_normal((5, 8)))
        for _ in range(50):
            w.grad = None
            ((data @ w).sigmoid() * 3.0).sum().backward()
        results[seed] = w.grad.numpy().copy()

    alone = {}
    for seed in range(4):
        work(seed, alone)
    together = {}
    threads = [threading.Thread(target=work, args=(seed, together)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed in range(4):
        np.testing.assert_array_equal(together[seed], alone[seed])


def test_a_reused_gradient_arena_never_overwrites_a_gradient_someone_holds():
    from tapegrad.autograd import engine

    x = tg.ones(4_000_000, requires_grad=True)  # arenas above engine._REUSE_BYTES
    (x * 2.0).sum().backward()
    held = x.grad  # a view of the backward's arena
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(held.numpy(), 2.0)
    np.testing.assert_array_equal(x.grad.numpy(), 3.0)
    saved = []
    y = x * 1.0
    y.register_hook(lambda g: saved.append(g))
    (y * 4.0).sum().backward()
    for factor in (5.0, 6.0):
        x.grad = None
        (x * factor).exp().sum().backward()
    np.testing.assert_array_equal(saved[0].numpy(), 4.0)
    # and with nothing held, the next backward takes the last one's arena: no fresh pages
    x.grad = None
    (x * 7.0).sin().sum().backward()
    x.grad = None
    arena = weakref.ref(engine._kept.arenas[0])  # not a reference: one would keep it from reuse
    (x * 8.0).sin().sum().backward()
    assert engine._kept.arenas[0] is arena()
    np.testing.assert_allclose(x.grad.numpy(), 8.0 * np.cos(8.0), rtol=1e-6)


@pytest.mark.parametrize("expression", ["relu(a.t())", "a * b[0]"])
def test_a_large_gradient_is_a_view_when_the_rest_of_the_arena_holds_one_number(expression):
    """A sum's gradient, one number, reaches a slot of its own and stays there (a UNIFORM slot):
    such slots do not count against handing the leaves' gradients over as views of the arena,
    which made ``relu(a.t()).sum()`` and ``(a * b[0]).sum()`` at 512x1024 copy 2 MB gradients.
    Held, a view is never written by a later backward."""
    rng = np.random.default_rng(0)
    a = tg.tensor(rng.standard_normal((512, 1024)).astype(np.float32), requires_grad=True)
    b = tg.tensor(rng.standard_normal((512, 1024)).astype(np.float32), requires_grad=True)
    namespace = {"a": a, "b": b, "relu": tg.relu}
    eval(expression, namespace).sum().backward()  # noqa: S307 - the two expressions above
    held = a.grad
    assert held._data.base is not None  # a view of the arena, not a copy
    if expression == "a * b[0]":
        expected = np.broadcast_to(b.detach().numpy()[0], a.shape)
    else:
        expected = (a.detach().numpy() > 0).astype(np.float32)
    np.testing.assert_array_equal(held.numpy(), expected)
    before = held.numpy().copy()
    a.grad = b.grad = None
    (eval(expression, namespace) * 3.0).sum().backward()  # noqa: S307
    np.testing.assert_array_equal(held.numpy(), before)
    np.testing.assert_array_equal(a.grad.numpy(), 3.0 * expected)


def test_a_gradient_a_hook_keeps_holds_its_own_memory_only():
    """A hook's gradient is its own copy: kept across steps it must not keep each backward's
    whole gradient arena alive (a view of it held a large parameter's arena per step)."""
    weights = tg.zeros(1000, 1000, requires_grad=True)
    bias = tg.zeros(1000, requires_grad=True)
    kept = []
    bias.register_hook(lambda g: kept.append(g))
    x = tg.ones(4, 1000)
    for _ in range(3):
        weights.grad = bias.grad = None
        (x @ weights + bias).sum().backward()
    for gradient in kept:
        array = gradient.numpy()
        assert array.base is None or array.base.nbytes <= array.nbytes
