"""Data-parallel replay on 2 local Dask worker processes against one process replaying the same
chunks (issue 17, part 2: target >= 1.6x faster), and the per-call overhead with tiny chunks.

    python -m benchmarks.dask_parallel [--repeats 7]

Compute-heavy: tanh regressions with one and two hidden layers (16-32-1, 16-32-32-1) on 8 chunks
of 10^5 rows, float64, loss and gradient (``value_and_grad``). Single process: the chunks' tapes replayed one
after the other in this process, the gradients added up, as ``DataParallel`` does on the
workers (started without dask's MALLOC_TRIM_THRESHOLD_ and profiler: ``--dask-defaults`` keeps
them). Overhead: 16 chunks of 10 rows, where the replays cost microseconds and a call's time is
Dask's (submitting, scheduling, gathering). Medians over interleaved repeats.

It also prints what limits the ratio on the machine at hand: the CPU seconds per call of each
side, and the parallel capacity of the 2 workers (a pure-Python loop on both at once against one
alone, before and after). This project's 2-vCPU machine is shared with other sessions: with both
cores idle the ratios were 1.69x and 1.78x; while another session held a core, two processes got
1.0-1.4x the throughput of one and the ratios 0.95-1.02x.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import time

import numpy as np

import tapegrad as tg

FEATURES, HIDDEN = 16, 32


def mlp_loss(W1, w2, X, y):
    """Squared error of a 16-32-1 tanh network on one chunk, summed over its rows."""
    return (((X @ W1).tanh() @ w2 - y) ** 2).sum()


def deep_loss(W1, W2, w3, X, y):
    """Squared error of a 16-32-32-1 tanh network: twice the arithmetic per byte moved."""
    return ((((X @ W1).tanh() @ W2).tanh() @ w3 - y) ** 2).sum()


def make(rows: int, chunk: int, seed: int = 0, deep: bool = False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, FEATURES))
    y = np.sin(X[:, 0]) + 0.1 * rng.standard_normal(rows)
    params = (rng.standard_normal((FEATURES, HIDDEN)) / 4,)
    if deep:
        params += (rng.standard_normal((HIDDEN, HIDDEN)) / 6,)
    params += (rng.standard_normal(HIDDEN) / 8,)
    chunks = [(X[i : i + chunk], y[i : i + chunk]) for i in range(0, rows, chunk)]
    return params, chunks


def single_process(fn, params, chunks):
    """value_and_grad over the chunks, one after the other, in this process: one tape per shape."""
    tapes = {}

    def evaluate(*params):
        value, grads = 0.0, None
        for chunk in chunks:
            shape = tuple(a.shape for a in chunk)
            if shape not in tapes:
                tapes[shape] = tg.record(fn, *params, *chunk)
            out, chunk_grads = tapes[shape].value_and_grad(*params, *chunk)
            value += out.item()
            chunk_grads = [g.numpy() for g in chunk_grads[: len(params)]]
            grads = chunk_grads if grads is None else [a + b for a, b in zip(grads, chunk_grads)]
        return value, grads

    return evaluate


def _median_seconds(calls: dict, repeats: int) -> tuple[dict, dict]:
    """Interleaved: each repeat calls every contender once. Median wall seconds per call, and
    this process's mean CPU seconds (user + system) per call."""
    samples = {name: [] for name in calls}
    cpu = dict.fromkeys(calls, 0.0)
    for _ in range(repeats):
        for name, call in calls.items():
            before = os.times()
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
            after = os.times()
            cpu[name] += (after.user - before.user + after.system - before.system) / repeats
    return {name: statistics.median(values) for name, values in samples.items()}, cpu


def _spin() -> float:
    """Seconds of wall time for a fixed pure-Python loop."""
    start = time.perf_counter()
    total = 0
    for i in range(5_000_000):
        total += i
    return time.perf_counter() - start


def _capacity(client) -> float:
    """How many workers' worth of CPU the machine gives the 2 workers running at once: the same
    loop alone on one worker, then on both together (1.0: no parallelism to be had; 2.0: two
    idle cores)."""
    first = next(iter(client.nthreads()))
    alone = statistics.median(client.run(_spin, workers=[first])[first] for _ in range(3))
    together = statistics.median(max(client.run(_spin).values()) for _ in range(3))
    return 2 * alone / together


def _cpu(client) -> dict:
    """User + system CPU seconds so far of each worker."""

    def seconds():
        times = os.times()
        return times.user + times.system

    return client.run(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--dask-defaults",
        action="store_true",
        help="keep dask's worker defaults (MALLOC_TRIM_THRESHOLD_=65536, the statistical profiler)",
    )
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    from tapegrad.dask import DataParallel

    # Workers import this checkout's tapegrad.
    root = str(pathlib.Path(tg.__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    import dask

    if not args.dask_defaults:
        # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive
        # mmap threshold: every large temporary of a replay is then mapped and page-faulted anew,
        # and a 10^5-row chunk costs a worker twice the system time it costs this process. The
        # workers' statistical profiler (a stack sample every 10 ms) cost 6-8% of their CPU.
        dask.config.set(
            {
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                "distributed.worker.profile.enabled": False,
            }
        )

    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, dask {dask.__version__}; 2 worker processes x 1 thread "
        f"({'dask defaults' if args.dask_defaults else 'MALLOC_TRIM_THRESHOLD_ unset, no profiler'}); "
        f"load average before: {os.getloadavg()[0]:.2f} (other processes share these cores)"
    )
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        capacity = [_capacity(client)]
        rows_heavy, cpu_note = [], []
        workloads = (
            ("16-32-1, 8 x 10^5 rows", mlp_loss, 800_000, 100_000),
            ("16-32-32-1, 8 x 10^5 rows", deep_loss, 800_000, 100_000),
            ("tiny: 16 x 10 rows", mlp_loss, 160, 10),
        )
        for label, fn, rows, chunk in workloads:
            params, chunks = make(rows, chunk, deep=fn is deep_loss)
            tape = tg.record(fn, *params, *chunks[0])
            local = single_process(fn, params, chunks)
            with DataParallel(tape, chunks, client=client) as dp:
                for _ in range(3):  # numba's cache loaded by every process, the tapes recorded
                    dp.value_and_grad(*params)
                    local(*params)
                value, grads = dp.value_and_grad(*params)
                expected_value, expected_grads = local(*params)
                error = max(
                    abs(value.item() - expected_value) / abs(expected_value),
                    *(np.abs(g.numpy() - e).max() / np.abs(e).max() for g, e in zip(grads, expected_grads)),
                )
                workers_before = _cpu(client)
                times, cpu = _median_seconds(
                    {"single": lambda f=local, p=params: f(*p), "dask": lambda d=dp, p=params: d.value_and_grad(*p)},
                    args.repeats,
                )
                workers = [(after - workers_before[name]) / args.repeats for name, after in _cpu(client).items()]
            cpu_note.append(
                f"{label}: CPU-bound speed-up (one process's CPU / busiest worker's) "
                f"{cpu['single'] / max(workers):.2f}x; CPU s per call: one process {cpu['single']:.3f}; with Dask, workers "
                f"{' and '.join(f'{w:.3f}' for w in workers)}, client + scheduler {cpu['dask']:.3f}"
            )
            rows_heavy.append((label, times, error))
        print(f"{'workload':<30} {'1 process ms':>13} {'2 workers ms':>13} {'speed-up':>9} {'max rel diff':>13}")
        for label, times, error in rows_heavy:
            print(
                f"{label:<30} {times['single'] * 1e3:>13.2f} {times['dask'] * 1e3:>13.2f} "
                f"{times['single'] / times['dask']:>8.2f}x {error:>13.1e}"
            )
        *heavy, (_, tiny, _) = rows_heavy
        for label, times, _ in heavy:
            ratio = times["single"] / times["dask"]
            print(f"{label} speed-up: {ratio:.2f}x (target >= 1.6x: {'MET' if ratio >= 1.6 else 'MISSED'})")
        print(
            f"per-call overhead, 16 tiny chunks: {(tiny['dask'] - tiny['single']) * 1e3:.1f} ms "
            "(2 worker processes: two tasks submitted, run and gathered)"
        )
        capacity.append(_capacity(client))
        print("\n".join(cpu_note))
        print(
            "parallel capacity, before and after: the 2 workers running a pure-Python loop at once got "
            f"{capacity[0]:.2f}x and {capacity[1]:.2f}x the throughput of one alone (2.00x on two idle cores; "
            "less when other processes hold a core)"
        )
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
