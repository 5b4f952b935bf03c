"""Data-parallel replay on a Dask cluster (tapegrad.dask): the chunked sums equal one eager run
over all the data, chunks of other shapes and failing guards are recorded again on the workers,
the tape travels once per worker, and a worker killed mid-fit costs time, not the result."""

from __future__ import annotations

import os
import pathlib
import pickle
import weakref

import pytest

distributed = pytest.importorskip("distributed")

import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

import tapegrad as tg  # noqa: E402
from tapegrad.dask import DataParallel  # noqa: E402
from tapegrad.replay import GuardError  # noqa: E402

F = tg.nn.functional


def logistic(w, X, y):
    """The negative log-likelihood of a chunk, summed over its rows."""
    z = X @ w
    return (F.softplus(z) - y * z).sum()


def logistic_mean(w, X, y):
    z = X @ w
    return (F.softplus(z) - y * z).mean()


def branchy(w, X, y):
    """Takes a branch on the chunk's data: a guard that differs between chunks."""
    z = X @ w
    if y.sum() > 0:
        return ((z - y) ** 2).sum()
    return F.softplus(z).sum()


@pytest.fixture(scope="module")
def client():
    # The workers must import this checkout's tapegrad (and this module, for the functions).
    root = str(pathlib.Path(tg.__file__).resolve().parent.parent)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([root] + ([before] if before else []))
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()
    if before is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = before


def _data(rows=2300, features=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features))
    y = (rng.random(rows) < 1 / (1 + np.exp(-X @ rng.standard_normal(features)))).astype(np.float64)
    return X, y


def _chunks(X, y, size):
    return [(X[i : i + size], y[i : i + size]) for i in range(0, len(X), size)]


def _eager(fn, w, X, y):
    """The single-process eager result over all the data."""
    w = tg.tensor(w, requires_grad=True)
    loss = fn(w, tg.tensor(X), tg.tensor(y))
    loss.backward()
    return loss.item(), w.grad.numpy()


def _assert_relative(got, expected, rtol=1e-10):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert np.abs(got - expected).max() <= rtol * np.abs(expected).max(), (got, expected)


def test_sum_over_unequal_chunks_equals_eager_over_all_data(client):
    X, y = _data()
    tape = tg.record(logistic, np.zeros(5), X[:500], y[:500])
    with DataParallel(tape, _chunks(X, y, 500), client=client) as dp:  # 4 x 500 and 300 rows
        assert dp.chunk_lengths == [500, 500, 500, 500, 300]
        for seed in range(3):
            w = np.random.default_rng(seed).standard_normal(5)
            value, (grad,) = dp.value_and_grad(w)
            expected_value, expected_grad = _eager(logistic, w, X, y)
            assert value.dtype == tg.float64 and grad.shape == (5,) and grad.dtype == tg.float64
            _assert_relative(value.item(), expected_value)
            _assert_relative(grad.numpy(), expected_grad)
            _assert_relative(dp(w).item(), expected_value)
        stats = dp.worker_stats()
        # The 300-row shape was recorded once, on the one worker holding that chunk.
        assert sum(s["recordings"] for s in stats.values()) == 1


def test_mean_reduction_weights_chunks_by_length(client):
    X, y = _data()
    tape = tg.record(logistic_mean, np.zeros(5), X[:700], y[:700])
    with DataParallel(tape, _chunks(X, y, 700), client=client, reduction="mean") as dp:
        w = np.linspace(-1, 1, 5)
        value, (grad,) = dp.value_and_grad(w)
        expected_value, expected_grad = _eager(logistic_mean, w, X, y)
        _assert_relative(value.item(), expected_value)
        _assert_relative(grad.numpy(), expected_grad)


def test_the_tape_travels_once_per_worker(client):
    X, y = _data(1600)
    tape = tg.record(logistic, np.zeros(5), X[:200], y[:200])
    with DataParallel(tape, _chunks(X, y, 200), client=client) as dp:
        sent = []
        submit = client.submit

        def measured(function, *args, **kwargs):
            # What a call puts in its tasks besides the chunks' futures: the parameters.
            sent.append(len(pickle.dumps([a for a in args if not isinstance(a, distributed.Future)])))
            return submit(function, *args, **kwargs)

        client.submit = measured
        try:
            for k in range(5):
                dp.value_and_grad(np.full(5, 0.1 * k))
        finally:
            del client.submit
        assert len(sent) == 5 * 2 and max(sent) < 1000 < len(pickle.dumps(tape)) // 10
        stats = dp.worker_stats()
        assert len(stats) == 2
        assert [s["tape_loads"] for s in stats.values()] == [1, 1]
        assert sum(s["chunks"] for s in stats.values()) == 5 * 8
        assert sum(s["recordings"] for s in stats.values()) == 0
    # Closing removes the tape from the workers.
    assert all(
        not s for s in client.run(lambda dask_worker: {k: 1 for k in dask_worker.plugins if "tapegrad" in k}).values()
    )


def test_a_chunk_whose_guard_fails_is_recorded_again_on_its_worker(client):
    X, y = _data(1200)
    y = y - 0.5  # chunks whose sums differ in sign take different branches
    y[:300] = np.abs(y[:300])
    y[300:600] = -np.abs(y[300:600])
    chunks = _chunks(X, y, 300)
    tape = tg.record(branchy, np.zeros(5), *chunks[0])
    w = np.linspace(-0.5, 0.5, 5)
    expected_value = sum(_eager(branchy, w, *chunk)[0] for chunk in chunks)
    expected_grad = sum(_eager(branchy, w, *chunk)[1] for chunk in chunks)
    with DataParallel(tape, chunks, client=client) as dp:
        value, (grad,) = dp.value_and_grad(w)
        _assert_relative(value.item(), expected_value)
        _assert_relative(grad.numpy(), expected_grad)
        rerecords = sum(s["guard_rerecords"] for s in dp.worker_stats().values())
        assert rerecords >= 1
        dp.value_and_grad(w * 2)  # the re-recorded tapes are kept for their chunks
        assert sum(s["guard_rerecords"] for s in dp.worker_stats().values()) == rerecords
    with DataParallel(tape, chunks, client=client, rerecord=False) as dp:
        with pytest.raises(GuardError, match="replay guard failed"):
            dp.value_and_grad(w)


def test_other_shapes_need_the_function(client, tmp_path):
    X, y = _data(900)
    tape = tg.record(logistic, np.zeros(5), X[:400], y[:400])
    tape.save(tmp_path / "t.tape")
    loaded = tg.load_tape(tmp_path / "t.tape")  # a loaded tape carries no function
    with pytest.raises(ValueError, match="no function to record it again: pass fn="):
        DataParallel(loaded, _chunks(X, y, 400), client=client)
    with DataParallel(loaded, _chunks(X, y, 400), client=client, fn=logistic) as dp:
        value, (grad,) = dp.value_and_grad(np.ones(5))
        _assert_relative(value.item(), _eager(logistic, np.ones(5), X, y)[0])
    with DataParallel(loaded, _chunks(X[:800], y[:800], 400), client=client) as dp:  # one shape: no function needed
        _assert_relative(dp(np.ones(5)).item(), _eager(logistic, np.ones(5), X[:800], y[:800])[0])


def _load_chunk(start, stop):
    """Data produced on a worker (a task Dask can recompute), never passing through the client."""
    X, y = _data()
    return X[start:stop], y[start:stop]


def test_chunks_given_as_futures_and_a_client_given_as_an_address(client):
    X, y = _data()
    tape = tg.record(logistic, np.zeros(5), X[:1000], y[:1000])
    futures = [client.submit(_load_chunk, i, i + 1000) for i in range(0, len(X), 1000)]
    with DataParallel(tape, futures, client=client.scheduler.address) as dp:
        assert dp.client is not client and dp.chunk_lengths == [1000, 1000, 300]
        value, (grad,) = dp.value_and_grad(np.ones(5))
        expected_value, expected_grad = _eager(logistic, np.ones(5), X, y)
        _assert_relative(value.item(), expected_value)
        _assert_relative(grad.numpy(), expected_grad)
    assert dp.client.status == "closed"  # it made that client, it closed it


def test_the_default_client_and_no_client(client, monkeypatch):
    X, y = _data(600)
    tape = tg.record(logistic, np.zeros(5), X[:300], y[:300])
    with DataParallel(tape, _chunks(X, y, 300)) as dp:
        assert dp.client is client
    monkeypatch.setattr(distributed.client, "_global_clients", weakref.WeakValueDictionary())
    with pytest.raises(RuntimeError, match="needs a dask.distributed Client"):
        DataParallel(tape, _chunks(X, y, 300))


def test_bad_input_raises_clearly(client):
    X, y = _data(600)
    tape = tg.record(logistic, np.zeros(5), X[:300], y[:300])
    chunks = _chunks(X, y, 300)
    with pytest.raises(TypeError, match="tapegrad.Tape"):
        DataParallel(logistic, chunks, client=client)
    with pytest.raises(TypeError, match="client must be"):
        DataParallel(tape, chunks, client=42)
    with pytest.raises(ValueError, match="reduction"):
        DataParallel(tape, chunks, client=client, reduction="max")
    with pytest.raises(ValueError, match="at least one chunk"):
        DataParallel(tape, [], client=client)
    with pytest.raises(ValueError, match=r"chunk 1, array 0 \('X'\)"):
        DataParallel(tape, [chunks[0], (X[300:].astype(np.float32), y[300:])], client=client)
    with pytest.raises(ValueError, match="one scalar"):
        DataParallel(tg.record(lambda w, X: X @ w, np.zeros(5), X[:300]), [X[:300]], client=client)
    with DataParallel(tape, chunks, client=client) as dp:
        with pytest.raises(ValueError, match=r"parameter 0 \('w'\)"):
            dp.value_and_grad(np.zeros(4))
        with pytest.raises(TypeError, match="recorded with 1 parameters"):
            dp.value_and_grad(np.zeros(5), np.zeros(5))
    with pytest.raises(RuntimeError, match="closed"):
        dp(np.zeros(5))


def _fit(objective, n):
    return minimize(objective, np.zeros(n), jac=True, method="L-BFGS-B")


def test_scipy_minimize_through_dp_and_a_worker_killed_mid_fit(client, monkeypatch):
    X, y = _data(4000, features=6, seed=1)
    tape = tg.record(logistic, np.zeros(6), X[:500], y[:500])
    single = tg.record(logistic, np.zeros(6), X, y)

    def reference(w):
        value, (grad, _, _) = single.value_and_grad(w, X, y)
        return value.item(), grad.numpy()

    expected = _fit(reference, 6)
    with DataParallel(tape, _chunks(X, y, 500), client=client) as dp:
        result = _fit(dp.scipy_objective(), 6)
        assert result.success and result.nit == expected.nit
        _assert_relative(result.x, expected.x, 1e-8)

        objective = dp.scipy_objective()
        calls = [0]
        cluster = client.cluster
        victim = next(iter(cluster.workers))
        victim_address = cluster.workers[victim].worker_address

        def kill_at_the_third_call(theta):
            calls[0] += 1
            if calls[0] == 3:  # the scheduler learns of it while this call's tasks are out
                assert any(w == victim_address for w, _ in dp._groups)  # it holds chunks
                cluster.workers[victim].process.process.kill()
            return objective(theta)

        killed = _fit(kill_at_the_third_call, 6)
        assert calls[0] > 3 and killed.success
        np.testing.assert_allclose(killed.x, result.x, rtol=1e-12, atol=0)
        assert killed.nfev == result.nfev

        # The nanny starts a new worker: the next call spreads the chunks over both again.
        client.wait_for_workers(2, timeout=60)
        monkeypatch.setattr("tapegrad.dask._WORKER_CHECK_SECONDS", 0.0)
        value, (grad,) = dp.value_and_grad(result.x)
        assert len({w for w, _ in dp._groups}) == 2
        assert value.item() == objective(result.x)[0]
        stats = dp.worker_stats()
        assert len(stats) == 2 and all(s["tape_loads"] == 1 and s["chunks"] > 0 for s in stats.values())
