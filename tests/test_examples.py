"""The examples run, and agree with what they claim: replay trains exactly like eager."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_logistic_regression_fit_by_replayed_lbfgs():
    example = _load("logistic_lbfgs")
    x, y, true_w, true_b = example.make_data(4000)
    result, _ = example.fit(x, y, l2=0.0)
    assert result.success
    np.testing.assert_allclose(result.x[:-1], true_w, atol=0.25)
    # The optimum's gradient, checked independently of tapegrad (logistic loss by hand):
    z = x @ result.x[:-1] + result.x[-1]
    gradient = x.T @ (1 / (1 + np.exp(-z)) - y) / len(y)
    assert np.abs(gradient).max() < 1e-4


def test_digits_mlp_replay_trains_exactly_like_eager_and_like_pytorch():
    pytest.importorskip("sklearn")
    example = _load("digits_mlp")
    eager = example.train("tapegrad", 3, replay=False, progress=False)
    replayed = example.train("tapegrad", 3, replay=True, progress=False)
    np.testing.assert_allclose([h[0] for h in eager], [h[0] for h in replayed], rtol=1e-5)
    assert eager[-1][1] > 0.9
    torch = pytest.importorskip("torch")
    assert torch
    theirs = example.train("torch", 3, progress=False)
    np.testing.assert_allclose([h[0] for h in eager], [h[0] for h in theirs], rtol=1e-4)
    assert [h[1] for h in eager] == [h[1] for h in theirs]


def test_dask_logistic_fits_as_one_process_does():
    distributed = pytest.importorskip("distributed")
    import os

    import tapegrad

    example = _load("dask_logistic")
    x, y, true_w = example.make_data(20_000, seed=1)
    root = str(pathlib.Path(tapegrad.__file__).resolve().parent.parent)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, before]))
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
            with distributed.Client(cluster) as client:
                result, _ = example.fit_on_dask(client, x, y)
    finally:
        os.environ["PYTHONPATH"] = before or ""
        if before is None:
            del os.environ["PYTHONPATH"]
    reference, _ = example.fit(example.single_process_objective(example.chunks_of(x, y)), x.shape[1])
    assert result.success and reference.success
    np.testing.assert_allclose(result.x, reference.x, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(result.x[:-1], true_w, atol=0.1)
