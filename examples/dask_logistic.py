"""Fit a logistic regression on 10^6 synthetic points (float64, 16 chunks) with scipy's L-BFGS,
the loss and gradient replayed data-parallel on a Dask cluster (``tapegrad.dask.DataParallel``),
and print the time per evaluation against replaying the same chunks in this one process.

    python examples/dask_logistic.py                       # 2 local worker processes
    python examples/dask_logistic.py --samples 100000      # smaller
    python examples/dask_logistic.py --scheduler tcp://host:8786   # a running cluster

Needs ``pip install -e ".[dask]"``. The loss of a chunk is a sum over its rows, so the sum over
chunks that ``DataParallel`` returns is the loss over all the data.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import numpy as np
from scipy.optimize import minimize

import tapegrad as tg


def make_data(samples: int = 1_000_000, features: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features))
    true_w = rng.standard_normal(features)
    y = (rng.random(samples) < 1 / (1 + np.exp(-(x @ true_w + 0.5)))).astype(np.float64)
    return x, y, true_w


def chunk_loss(w, b, x, y):
    """The negative log-likelihood of one chunk, summed over its rows."""
    logits = x @ w + b
    return (tg.nn.functional.softplus(logits) - y * logits).sum()


def chunks_of(x, y, count: int = 16):
    size = -(-len(x) // count)
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def single_process_objective(chunks):
    """Loss and gradient over the chunks replayed one after the other here (one tape per shape)."""
    tapes = {}

    def objective(theta):
        w, b = theta[:-1], theta[-1:]
        value, gradient = 0.0, np.zeros_like(theta)
        for x, y in chunks:
            if x.shape not in tapes:
                tapes[x.shape] = tg.record(chunk_loss, w, b, x, y)
            out, (gw, gb, _, _) = tapes[x.shape].value_and_grad(w, b, x, y)
            value += out.item()
            gradient += np.concatenate([gw.numpy(), gb.numpy()])
        return value / total, gradient / total

    total = sum(len(x) for x, _ in chunks)
    return objective


def fit(objective, features: int):
    """L-BFGS from zero; returns the result, the seconds per loss+gradient evaluation."""
    start = time.perf_counter()
    result = minimize(objective, np.zeros(features + 1), jac=True, method="L-BFGS-B")
    return result, (time.perf_counter() - start) / result.nfev


def fit_on_dask(client, x, y, count: int = 16):
    """The fit through ``DataParallel``: returns (result, seconds per evaluation)."""
    from tapegrad.dask import DataParallel

    chunks = chunks_of(x, y, count)
    tape = tg.record(chunk_loss, np.zeros(x.shape[1]), np.zeros(1), *chunks[0])
    with DataParallel(tape, chunks, client=client) as dp:
        objective = dp.scipy_objective()  # theta = [w..., b] -> (loss, gradient), summed over chunks
        objective(np.zeros(x.shape[1] + 1))  # workers load numba's cache and record the last chunk's shape

        def mean(theta):
            value, gradient = objective(theta)
            return value / len(x), gradient / len(x)

        return fit(mean, x.shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: 2 local workers)")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    x, y, true_w = make_data(args.samples)
    if args.scheduler:
        client, cluster = Client(args.scheduler), None
    else:
        import dask

        # The workers import the same tapegrad as this process.
        root = str(pathlib.Path(tg.__file__).resolve().parent.parent)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes every large temporary
        # of a replay page-fault anew (a replay took 2.9x as long here), and with a statistical
        # profiler that cost 6-8% of their CPU.
        dask.config.set(
            {
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                "distributed.worker.profile.enabled": False,
            }
        )
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
    try:
        result, per_call = fit_on_dask(client, x, y, args.chunks)
        local = single_process_objective(chunks_of(x, y, args.chunks))
        local(np.zeros(x.shape[1] + 1))
        reference, per_call_local = fit(local, x.shape[1])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    workers = "2 local workers" if cluster is not None else args.scheduler
    print(f"{args.samples} points in {args.chunks} chunks, float64")
    print(
        f"Dask ({workers}): {result.nit} L-BFGS iterations, {result.nfev} evaluations, "
        f"{per_call * 1e3:.1f} ms per evaluation"
    )
    print(f"one process, same chunks: {per_call_local * 1e3:.1f} ms per evaluation ({per_call_local / per_call:.2f}x)")
    print("same optimum:", bool(np.allclose(result.x, reference.x, rtol=1e-8, atol=1e-10)))
    print("fitted w:", np.round(result.x[:-1], 3), " b:", round(float(result.x[-1]), 3))
    print("true   w:", np.round(true_w, 3), " b: 0.5")


if __name__ == "__main__":
    main()
