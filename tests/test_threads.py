"""Several threads using autograd at once, as PyTorch allows: recording on one shared graph,
separate graphs sharing parameters whose ``.grad`` all backwards add into, and hooks that wait
on another thread. Each result is compared with the same work done in one thread.

The races these tests look for need a thread switch inside an op; a switch interval of a
microsecond (``sys.setswitchinterval``) makes one happen in most ops, where the default 5 ms
hid them for thousands of ops."""

import sys
import threading

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention


@pytest.fixture(autouse=True)
def frequent_switches():
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def run_threads(work, count: int) -> list:
    """``work(k)`` in ``count`` threads at once; the exceptions they raised."""
    errors = []

    def guarded(k):
        try:
            work(k)
        except BaseException as error:  # noqa: BLE001 (reported by the test)
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def branch(a, w, k: int, i: int):
    """Ops of every recording path on ``a`` (a shared result) and ``w`` (a shared leaf): scalar
    and tensor operators, broadcasting, a matmul through a transposed view, indexing, a
    reduction, cat, where, an in-place op on a result, a cast."""
    c = 0.5 + k + (i % 5) * 0.1
    h = (a * c).tanh() + a.t().t() * w[0]
    h = h @ w.t()
    h = tg.cat([h[:, :2], h.exp()[:, 2:]], dim=1)
    h = tg.where(h > 0, h, h * 0.1)
    h = h.relu() + 1.0  # (relu saves its result: the sum is what changes in place)
    h.mul_(1.5)
    return h.double().sum(dim=1).float().mean() * (i % 3 + 1)


def closed_branch_grads(x0, w0, k, steps):
    """The gradients of the summed losses of ``branch`` for thread ``k``, in one thread."""
    x = tg.tensor(x0, requires_grad=True)
    w = tg.tensor(w0, requires_grad=True)
    a = (x * 2).sin()
    total = sum(branch(a, w, k, i) for i in range(steps))
    return tg.autograd.grad(total, [x, w])


def test_threads_record_on_one_shared_graph():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((4, 4)).astype(np.float32)
    w0 = rng.standard_normal((4, 4)).astype(np.float32)
    x = tg.tensor(x0, requires_grad=True)
    w = tg.tensor(w0, requires_grad=True)
    a = (x * 2).sin()  # every thread's ops start from this one recorded result
    steps, count = 60, 3
    totals = {}

    def work(k):
        total = None
        for i in range(steps):
            loss = branch(a, w, k, i)
            total = loss if total is None else total + loss
            _ = a.tanh() * 3  # dropped at once: rows for the tape's collection to reclaim
        totals[k] = total

    assert run_threads(work, count) == []
    for k in range(count):
        got = tg.autograd.grad(totals[k], [x, w], retain_graph=True)
        want = closed_branch_grads(x0, w0, k, steps)
        for g, e in zip(got, want):
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-5)


def test_backwards_in_threads_add_every_gradient_into_a_shared_parameter():
    # Hogwild-style: each thread its own graph, all ending in one weight. The weight is large
    # enough that numpy lets go of the GIL while adding: two sums into .grad at once lost one.
    rng = np.random.default_rng(1)
    n, steps, count = 384, 12, 4
    W = tg.tensor(rng.standard_normal((n, n)) * 0.05, requires_grad=True)
    b = tg.tensor(np.zeros(n), requires_grad=True)
    xs = [rng.standard_normal((8, n)) for _ in range(count)]

    def work(k):
        x = tg.tensor(xs[k])
        for _ in range(steps):
            ((x @ W + b).tanh() * (k + 1)).sum().backward()

    assert run_threads(work, count) == []
    Wn = W.detach().numpy()
    want_W, want_b = np.zeros_like(Wn), np.zeros(n)
    for k in range(count):
        h = np.tanh(xs[k] @ Wn)
        d = (1 - h**2) * (k + 1)
        want_W += steps * xs[k].T @ d
        want_b += steps * d.sum(0)
    np.testing.assert_allclose(W.grad.numpy(), want_W, rtol=1e-10, atol=1e-10)  # (sums in any order)
    np.testing.assert_allclose(b.grad.numpy(), want_b, rtol=1e-10, atol=1e-10)


def test_training_steps_in_threads_equal_the_same_steps_in_one():
    rng = np.random.default_rng(2)
    W1 = rng.standard_normal((16, 32)) / 4
    W2 = rng.standard_normal((32, 5)) / 4
    xs = [rng.standard_normal((8, 16)) for _ in range(3)]
    ys = [rng.integers(0, 5, 8) for _ in range(3)]

    def losses(params, k):
        x, y = tg.tensor(xs[k]), tg.tensor(ys[k])
        return F.cross_entropy((x @ params[0]).tanh() @ params[1], y) * (k + 1)

    shared = [tg.tensor(W1, requires_grad=True), tg.tensor(W2, requires_grad=True)]
    grads = {}

    def work(k):
        for i in range(20):
            if i % 4 == 0:
                grads.setdefault(k, []).append(tg.autograd.grad(losses(shared, k), shared))
            else:
                losses(shared, k).backward()

    assert run_threads(work, 3) == []
    alone = [tg.tensor(W1, requires_grad=True), tg.tensor(W2, requires_grad=True)]
    for k in range(3):
        want = tg.autograd.grad(losses(alone, k), alone)
        for got in grads[k]:
            for g, e in zip(got, want):
                np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-12)
        for _ in range(15):
            losses(alone, k).backward()
    for p, q in zip(shared, alone):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10)


def test_a_hook_may_wait_for_another_thread_that_records():
    # The backward holds tapegrad's lock while threads run; it lets it go while a hook runs, or
    # this hook, waiting for a thread that records, would wait for ever.
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    ready = threading.Event()
    started = threading.Event()
    seen = {}

    def hook(g):
        worker = threading.Thread(target=lambda: seen.setdefault("y", (x * 3).sum()))
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "the recording thread waited for the backward's lock"
        return g * 2

    def keep_a_thread_alive():  # so that the backward takes the lock
        started.set()
        ready.wait(30)

    other = threading.Thread(target=keep_a_thread_alive)
    other.start()
    started.wait(30)
    try:
        y = x * x
        y.register_hook(hook)
        y.sum().backward()
    finally:
        ready.set()
        other.join()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.array([1.0, 2.0, 3.0]))
    seen["y"].backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * np.array([1.0, 2.0, 3.0]) + 3)


def test_tapegrads_own_pool_threads_leave_ops_unlocked():
    # vmap's pool threads run compiled replays and record nothing: counted as threads that may
    # record, they made every later op of the process take the lock.
    from tapegrad._tape import count_threads
    from tapegrad._threads import pool_threads

    others = count_threads() - pool_threads[0]  # (threads other tests left running)
    started = pool_threads[0]
    previous = tg.get_num_threads()
    tg.set_num_threads(7)  # a pool of its own: 6 threads beside this one
    try:
        batched = tg.func.vmap(tg.func.grad(lambda v: (v * v).sum()))(tg.ones(4096, 3))
    finally:
        tg.set_num_threads(previous)
    np.testing.assert_array_equal(batched.numpy(), 2 * np.ones((4096, 3)))
    assert pool_threads[0] > started
    assert count_threads() - pool_threads[0] == others


def test_an_op_on_a_temporary_writes_into_it_while_threads_run():
    # The operator decides before it takes the lock (the lock's frames change the counts).
    import tracemalloc

    n = 1 << 17
    x, w, z = (tg.tensor(np.full(n, v), requires_grad=True) for v in (1.0, 2.0, 3.0))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, args=(30,))
    other.start()
    try:
        x * w + z
        tracemalloc.start()
        out = x * w + z
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        stop.set()
        other.join()
    assert peak < 1.5 * 8 * n
    out.sum().backward()
    np.testing.assert_array_equal(out.detach().numpy(), np.full(n, 5.0))
    np.testing.assert_array_equal(x.grad.numpy(), np.full(n, 2.0))


def _hook_starts_a_thread(weights) -> int:
    """One backward whose hook starts a thread that runs other backwards into the same
    weights until it ends; how many the thread ran."""
    for w in weights:
        w.grad = tg.zeros(256, 256, dtype=tg.float64)
    other = sum((w * 1.0).sum() for w in weights)
    stop, started, runs, threads = threading.Event(), threading.Event(), [0], []

    def repeat():
        started.set()
        while not stop.is_set():
            other.backward(retain_graph=True)
            runs[0] += 1

    def hook(g):
        threads.append(threading.Thread(target=repeat))
        threads[0].start()
        started.wait(30)

    loss = sum((w * 1.0).sum() for w in weights)
    loss.register_hook(hook)
    loss.backward()
    stop.set()
    threads[0].join()
    return runs[0]


def test_a_backward_whose_hook_starts_a_thread_keeps_every_sum():
    # The backward decides nothing at its start: it holds the lock from start to end (but for its
    # hooks), so a thread a hook starts cannot add into .grad while the backward delivers.
    weights = [tg.ones(256, 256, dtype=tg.float64, requires_grad=True) for _ in range(24)]
    for _ in range(3):
        runs = _hook_starts_a_thread(weights)
        for w in weights:
            np.testing.assert_array_equal(w.grad.numpy(), np.full((256, 256), runs + 1.0))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork: POSIX only")
def test_a_forked_child_runs_vmap_on_threads_again():
    # The parent's pool threads do not exist in a child: its vmap waited for them for ever.
    import os
    import signal

    f = tg.func.vmap(tg.func.grad(lambda v: (v.sin() * v).sum()))
    X = tg.tensor(np.random.default_rng(0).standard_normal((4096, 5)))
    previous = tg.get_num_threads()
    tg.set_num_threads(2)
    try:
        want = f(X).numpy()
        pid = os.fork()
        if pid == 0:  # the child: exit 0 if its vmap gives the parent's values within 20 s
            signal.alarm(20)
            try:
                os._exit(0 if np.array_equal(f(X).numpy(), want) else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
    finally:
        tg.set_num_threads(previous)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
