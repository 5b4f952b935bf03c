"""vmap(grad(f)) replays the last call's tape when its recording is the same, and only then.

Every call still runs ``f`` (torch.func's semantics); what it may skip is laying the recording
out again. Whatever ``f`` reads that changed between calls (a captured tensor, a Python number,
a constant's sign, the structure of its outputs) must give a recording that is not taken for
the last one: the results follow the new values, never the old tape's.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from tapegrad.func import functional_call, grad, vmap, vmap_stats


def _batch(seed: int, shape=(6, 5)):
    rng = np.random.default_rng(seed)
    return tg.tensor(rng.standard_normal(shape[1])), tg.tensor(rng.standard_normal(shape))


def _loop(f, w, X):
    """Each slice's gradient by an eager backward."""
    rows = []
    for x in X:
        w_ = w.detach().requires_grad_()
        f(w_, x).backward()
        rows.append(w_.grad.numpy())
    return np.stack(rows)


def test_the_same_recording_replays_the_last_tape_and_f_still_runs():
    calls = []

    def f(w, x):
        calls.append(1)
        return (x * w).tanh().sum()

    per_slice = vmap(grad(f), in_dims=(None, 0))
    w, X = _batch(0)
    per_slice(w, X)
    assert vmap_stats()["reused"] is False
    w2, X2 = _batch(1)
    got = per_slice(w2, X2)
    assert vmap_stats()["reused"] is True
    assert vmap_stats()["path"] == "grad-replay"
    assert len(calls) == 2  # each call ran f
    np.testing.assert_allclose(got.numpy(), _loop(f, w2, X2), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(per_slice(w, X).numpy(), _loop(f, w, X), rtol=1e-12, atol=1e-12)


def _captured_tensor():
    c = tg.tensor([1.0, 2.0, 3.0, 4.0, 5.0])

    def f(w, x):
        return (x * w * c).sum()

    def change():
        with tg.no_grad():
            c.mul_(-3.0)

    return f, change


def _python_number():
    scale = [2.0]

    def f(w, x):
        return (x * w).sum() * scale[0]

    def change():
        scale[0] = -0.5

    return f, change


def _signed_zero():
    c = tg.tensor([0.0] * 5)

    def f(w, x):
        return (x * w / c).sum()  # d/dw = x / c: an infinity whose sign is the zero's

    def change():
        with tg.no_grad():
            c.neg_()

    return f, change


def _branch_on_a_python_flag():
    flag = [True]

    def f(w, x):
        return (x * w).sin().sum() if flag[0] else (x * w).cos().sum()

    def change():
        flag[0] = False

    return f, change


@pytest.mark.parametrize("make", [_captured_tensor, _python_number, _signed_zero, _branch_on_a_python_flag])
def test_what_f_reads_changed_between_calls_is_recorded_anew(make):
    f, change = make()
    per_slice = vmap(grad(f), in_dims=(None, 0))
    w, X = _batch(2)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_slice(w, X)
        per_slice(w, X)
        assert vmap_stats()["reused"] is True
        change()
        got = per_slice(w, X).numpy()
        assert vmap_stats()["reused"] is False
        expected = _loop(f, w, X)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_outputs_of_another_structure_are_not_taken_for_the_last():
    key = ["a"]

    def f(w, x):
        loss = (x * w).sum()
        return loss, {key[0]: loss.detach() * 2}

    per_slice = vmap(grad(f, has_aux=True), in_dims=(None, 0))
    w, X = _batch(3)
    per_slice(w, X)
    key[0] = "b"
    gradients, aux = per_slice(w, X)
    assert vmap_stats()["reused"] is False
    assert list(aux) == ["b"]
    np.testing.assert_allclose(aux["b"].numpy(), 2 * (X.numpy() * w.numpy()).sum(axis=1), rtol=1e-12)


def test_per_sample_gradients_of_a_model_reuse_and_match_eager_backwards():
    rng = np.random.default_rng(4)
    model = tg.nn.Sequential(tg.nn.Linear(8, 16), tg.nn.Tanh(), tg.nn.Linear(16, 3))
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(params, x, y):
        return F.cross_entropy(functional_call(model, params, (x[None],)), y[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    for step in range(3):
        X = tg.tensor(rng.standard_normal((10, 8)).astype(np.float32))
        Y = tg.tensor(rng.integers(0, 3, 10))
        got = per_sample(params, X, Y)
        assert vmap_stats()["reused"] is (step > 0)
        for i in range(len(X)):
            model.zero_grad()
            F.cross_entropy(model(X[i : i + 1]), Y[i : i + 1]).backward()
            for name, p in model.named_parameters():
                np.testing.assert_allclose(got[name][i].numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-6)
        # Eager tapes of many new shapes between calls: the thread's layout template, which new
        # tapes start from, fills and starts again; the next recording must not depend on it.
        for n in range(1, 80):
            (tg.ones(n, requires_grad=True) * 2).sum()


def test_the_kept_tape_does_not_hold_the_calls_arguments():
    per_slice = vmap(grad(lambda w, x: (x * w).sum()), in_dims=(None, 0))
    w, X = _batch(5)
    per_slice(w, X)
    gone = weakref.ref(X)
    del X
    gc.collect()
    assert gone() is None


def test_threads_calling_one_vmap_share_its_kept_tape_safely():
    import threading

    def f(w, x):
        return ((x * w).tanh() * x).sum()

    per_slice = vmap(grad(f), in_dims=(None, 0))
    wrong = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(30):
            w, X = tg.tensor(rng.standard_normal(40)), tg.tensor(rng.standard_normal((64, 40)))
            t = np.tanh(X.numpy() * w.numpy())
            if not np.allclose(per_slice(w, X).numpy(), (1 - t * t) * X.numpy() ** 2, rtol=1e-12, atol=1e-12):
                wrong.append(seed)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


# -- the replay by the last tape while f records again (func._Speculation) ------------------------


@pytest.fixture
def two_threads():
    previous = tg.get_num_threads()
    tg.set_num_threads(2)
    yield
    tg.set_num_threads(previous)


def _scalar_f(w, x):  # scalar ops over the elements: a register program (tapegrad/_register.py)
    return sum((wi * xi).tanh() * xi for wi, xi in zip(w, x))


def _tensor_f(w, x):  # whole-tensor ops: the general batch replay
    return ((x * w).tanh() * x).sum()


@pytest.mark.parametrize("f", [_scalar_f, _tensor_f])
def test_the_last_tape_replayed_while_f_records_again_gives_the_one_thread_bits(f, two_threads):
    per_slice = vmap(grad(f), in_dims=(None, 0))
    rng = np.random.default_rng(6)
    for call in range(4):
        # 300 slices: both threads take a part (replay._SLICES_PER_THREAD)
        w, X = tg.tensor(rng.standard_normal(5)), tg.tensor(rng.standard_normal((300, 5)))
        got = per_slice(w, X).numpy()
        assert vmap_stats()["speculated"] is (call > 0)
        assert vmap_stats()["reused"] is (call > 0)
        tg.set_num_threads(1)
        alone = vmap(grad(f), in_dims=(None, 0))(w, X).numpy()
        assert vmap_stats()["speculated"] is False
        tg.set_num_threads(2)
        assert np.array_equal(got, alone)
        np.testing.assert_allclose(got, _loop(f, w, X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [_captured_tensor, _python_number, _branch_on_a_python_flag])
def test_a_recording_that_differs_discards_the_replay_started_by_the_last_tape(make, two_threads):
    f, change = make()
    per_slice = vmap(grad(f), in_dims=(None, 0))
    w, X = _batch(7, (200, 5))
    per_slice(w, X)
    per_slice(w, X)
    assert vmap_stats()["speculated"] is True
    change()
    got = per_slice(w, X).numpy()
    assert vmap_stats()["reused"] is False and vmap_stats()["speculated"] is False
    np.testing.assert_allclose(got, _loop(f, w, X), rtol=1e-12, atol=1e-12)
    # The next call does not start one (the last one was wasted); once a recording is the last
    # one's again, the one after does.
    per_slice(w, X)
    assert vmap_stats()["reused"] is True and vmap_stats()["speculated"] is False
    np.testing.assert_allclose(per_slice(w, X).numpy(), _loop(f, w, X), rtol=1e-12, atol=1e-12)
    assert vmap_stats()["speculated"] is True


def test_slices_whose_guard_fails_in_the_replay_started_early_are_recorded_again(two_threads):
    def f(w, x):  # a guard on a comparison's truth: the slices with a negative sum fail it
        return (x * w).sin().sum() if x.sum() > 0 else (x * w).cos().sum() * 3

    per_slice = vmap(grad(f), in_dims=(None, 0))
    rng = np.random.default_rng(8)
    w = tg.tensor(rng.standard_normal(5))
    for call in range(3):
        X = tg.tensor(rng.standard_normal((200, 5)))
        X[0] = X[0].abs()  # the recording's slice takes the first branch each time
        got = per_slice(w, X).numpy()
        assert vmap_stats()["speculated"] is (call > 0)
        assert vmap_stats()["rerecords"] >= 1
        np.testing.assert_allclose(got, _loop(f, w, X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("written", ["unbatched", "batched"])
def test_an_argument_written_through_numpy_while_f_runs_discards_the_replay_started_before(written, two_threads):
    """f changes an argument through ``.numpy()`` (shared memory, as PyTorch's), which the
    recording cannot see: the replay started before f ran read the old values, and the
    one-thread path reads the new ones. The call must give those."""

    def run(threads):
        tg.set_num_threads(threads)
        w = tg.tensor(np.ones(5))
        X = tg.tensor(np.random.default_rng(10).standard_normal((300, 5)))
        target = (w if written == "unbatched" else X).numpy()

        def f(w_, x):
            target[...] += 1.0
            return ((x * w_).tanh() * x).sum()

        per_slice = vmap(grad(f), in_dims=(None, 0))
        per_slice(w, X)
        got = per_slice(w, X).numpy().copy()
        return got, vmap_stats(), w, X

    got, stats, w, X = run(2)
    assert stats["reused"] is True and stats["speculated"] is False
    alone, _, _, _ = run(1)
    assert np.array_equal(got, alone)
    t = np.tanh(X.numpy() * w.numpy())  # the values after f's two writes
    np.testing.assert_allclose(got, (1 - t * t) * X.numpy() ** 2, rtol=1e-12, atol=1e-12)


def test_vmap_runs_without_the_background_thread_when_none_can_start(two_threads, monkeypatch):
    """Once the interpreter shuts down, no thread can start (concurrent.futures raises
    RuntimeError): a vmap called by a thread still running then gives its results unspeculated."""
    from tapegrad import _threads

    class Refusing:
        def submit(self, *args):
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    per_slice = vmap(grad(_tensor_f), in_dims=(None, 0))
    w, X = _batch(11, (200, 5))
    per_slice(w, X)
    monkeypatch.setattr(_threads, "background", lambda: Refusing())
    got = per_slice(w, X).numpy()
    assert vmap_stats()["reused"] is True and vmap_stats()["speculated"] is False
    np.testing.assert_allclose(got, _loop(_tensor_f, w, X), rtol=1e-12, atol=1e-12)


def test_f_raising_while_the_last_tape_replays_raises_lets_its_results_go_and_recovers(two_threads):
    """The traceback keeps the call's frames; the replay started before f raised must not keep
    its results (a caller keeping exceptions kept a batch of results each)."""
    from tapegrad import func

    fail = [False]

    def f(w, x):
        if fail[0]:
            raise ValueError("f failed")
        return ((x * w).tanh() * x).sum()

    per_slice = vmap(grad(f), in_dims=(None, 0))
    w, X = _batch(12, (200, 5))
    per_slice(w, X)
    fail[0] = True
    with pytest.raises(ValueError) as caught:
        per_slice(w, X)
    speculations = []
    traceback = caught.value.__traceback__
    while traceback is not None:
        speculations += [v for v in traceback.tb_frame.f_locals.values() if isinstance(v, func._Speculation)]
        traceback = traceback.tb_next
    assert speculations  # (it did start one)
    assert all(s.into is None and s.future is None and s.arguments is None for s in speculations)
    fail[0] = False
    np.testing.assert_allclose(per_slice(w, X).numpy(), _loop(f, w, X), rtol=1e-12, atol=1e-12)
