"""tapegrad.func's vmap executed by replay, beside torch.func and the hand-written reference.

    python -m benchmarks.func [--quick] [--profile]

In one process: per-sample gradients of the digits MLP (64-128-10, batch 256, float32) with
``tapegrad.func.vmap(grad(...))`` (2 threads and 1), ``torch.func.vmap(torch.func.grad(...))``
(torch's default threads and 1) and a Python loop of tapegrad eager backwards; the scalar graph
workload (benchmarks/workloads.py, 10,000 ops) over 1,024 input sets with ``vmap(grad(graph))``,
per set, against one pass of the hand-written numba reference (benchmarks/graph_reference.py);
and 2 threads against 1 on that batch. Every ``vmap(grad(f))``
call runs ``f`` on a recording tape, as torch.func calls ``f`` on every call (where that recording
equals the last call's, vmap replays the last call's tape, already laid out, and on two threads
starts that replay on a background thread while ``f`` runs: ``func._Speculation``); the
recording row is the time each call spent recording, timed inside that call, and the row
without it subtracts that from the one-thread call. The ``vmap(tape.value_and_grad)`` rows
replay a tape the caller recorded once (``tapegrad.record``), as a program that evaluates one
function at many inputs would: no recording per call. Per-sample figures are medians of
interleaved repeats (``benchmarks.compare.interleaved``) after warm-up calls; the graph's are
the best of several runs. Ratios are against the first row of each block. ``--profile`` prints where a per-sample vmap call spends
its time (cProfile).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from benchmarks import compare, graph_reference, workloads
from tapegrad.func import functional_call, grad, vmap, vmap_stats

BATCH, FEATURES, HIDDEN, CLASSES = 256, 64, 128, 10
GRAPH_SETS = 1024
WARM_CALLS = 20


def _best(run, repeats: int) -> float:
    run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return min(samples)


def _with_threads(count: int, run):
    def call():
        previous = tg.get_num_threads()
        tg.set_num_threads(count)
        try:
            return run()
        finally:
            tg.set_num_threads(previous)

    return call


def _digits(rng):
    X = rng.standard_normal((BATCH, FEATURES)).astype(np.float32)
    Y = rng.integers(0, CLASSES, BATCH)
    return X, Y


def per_sample_runs(repeats: int) -> list:
    """[(label, seconds per batch, note)] for the per-sample gradients."""
    X, Y = _digits(np.random.default_rng(0))
    tg.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(FEATURES, HIDDEN), tg.nn.Tanh(), tg.nn.Linear(HIDDEN, CLASSES))
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = tg.tensor(X), tg.tensor(Y)

    def loss(params, x, y):
        return F.cross_entropy(functional_call(model, params, (x[None],)), y[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))

    def eager_loop():
        for i in range(BATCH):
            model.zero_grad()
            F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()

    # Timed interleaved, as benchmarks.compare times its workloads: each repeat runs every
    # candidate ``number`` times in turn, and each figure is the median of the repeats. (Timed
    # one after the other as the best of a few calls, torch.func's figure was twice its steady
    # state: its first calls after the others ran still paid for fresh memory, and machine
    # phases landed on one candidate. That made tapegrad look 0.7-0.8x of torch.func where,
    # timed alike, it is about 1x.)
    candidates = {
        "tapegrad vmap(grad), 2 threads": _with_threads(2, lambda: per_sample(params, x, y)),
        "tapegrad vmap(grad), 1 thread": _with_threads(1, lambda: per_sample(params, x, y)),
    }
    # The same loss recorded once by the caller (a tape of the parameters, one sample and its
    # label), then replayed over the batch by vmap with no recording per call.
    arrays = [p.detach().numpy() for p in model.parameters()]

    def sample_loss(w1, b1, w2, b2, x, y):
        return F.cross_entropy(F.linear(F.linear(x[None], w1, b1).tanh(), w2, b2), y[None])

    tape = tg.record(sample_loss, *arrays, X[0], Y[0])
    recorded = vmap(tape.value_and_grad, in_dims=(None,) * 4 + (0, 0))
    for threads in (2, 1):
        label = f"tapegrad vmap(tape.value_and_grad), {threads} thread{'s' * (threads > 1)}"
        candidates[label] = _with_threads(threads, lambda: recorded(*arrays, X, Y, argnums=(0, 1, 2, 3)))
    if workloads.available("torch"):
        import torch

        torch_model = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, CLASSES)
        )
        torch_params = {k: v.detach() for k, v in torch_model.named_parameters()}
        tx, ty = torch.tensor(X), torch.tensor(Y)

        def torch_loss(params, x, y):
            return torch.nn.functional.cross_entropy(
                torch.func.functional_call(torch_model, params, (x[None],)), y[None]
            )

        torch_per_sample = torch.func.vmap(torch.func.grad(torch_loss), in_dims=(None, 0, 0))
        default = torch.get_num_threads()

        def torch_threads(count):
            def call():
                torch.set_num_threads(count)
                try:
                    return torch_per_sample(torch_params, tx, ty)
                finally:
                    torch.set_num_threads(default)

            return call

        candidates[f"torch.func vmap(grad), {default} threads (default)"] = torch_threads(default)
        candidates["torch.func vmap(grad), 1 thread"] = torch_threads(1)
    for call in candidates.values():  # warm: fresh memory for the results, first-call set-up
        for _ in range(WARM_CALLS):
            call()
    medians = compare.interleaved(candidates, number=10, repeats=repeats)
    per_sample(params, x, y)
    stats = dict(vmap_stats())
    notes = {"tapegrad vmap(grad), 2 threads": f"{stats['recordings']} recordings ({stats['path']})"}
    rows = [(label, seconds, notes.get(label, "")) for label, seconds in medians.items()]
    rows.insert(4, ("tapegrad eager loop of backward()", _best(eager_loop, max(1, repeats // 4)), ""))
    return rows


def graph_runs(repeats: int, sets: int) -> list:
    """[(label, seconds per input set, note)] for the scalar graph over ``sets`` input sets."""
    rng = np.random.default_rng(1)
    X = tg.tensor(np.arange(100.0) / 50.0 + rng.normal(scale=0.01, size=(sets, 100)))
    graph = workloads.graph_function(tg)
    batched = vmap(grad(graph))
    kinds, arguments, outputs, count = graph_reference.op_list(workloads.GRAPH_OPS)
    x0 = X[0].numpy()
    reference = _best(lambda: graph_reference.forward_backward(kinds, arguments, outputs, count, x0), repeats * 20)
    tape = tg.record(graph, x0)
    single_replay = _best(lambda: tape.value_and_grad(x0), repeats * 5)
    two, _, two_recording = _best_without_recording(_with_threads(2, lambda: batched(X)), repeats)
    stats = dict(vmap_stats())
    one, one_rest, one_recording = _best_without_recording(_with_threads(1, lambda: batched(X)), repeats)
    two, one, one_rest = two / sets, one / sets, one_rest / sets
    recording = min(two_recording, one_recording)
    replayed = vmap(tape.value_and_grad)  # the tape above, recorded once: no recording per call
    tape_two = _best(_with_threads(2, lambda: replayed(X)), repeats) / sets
    tape_one = _best(_with_threads(1, lambda: replayed(X)), repeats) / sets
    return [
        ("reference single pass (hand-written numba)", reference, ""),
        ("tapegrad Tape.value_and_grad, one set", single_replay, f"{len(tape.rows)} rows"),
        (
            f"tapegrad vmap(grad) over {sets} sets, 2 threads",
            two,
            f"{stats['recordings']} recording(s), path {stats['path']}"
            + (", replayed while recording" if stats["speculated"] else ""),
        ),
        (f"tapegrad vmap(grad) over {sets} sets, 1 thread", one, ""),
        ("  of which the recording (once per call)", recording / sets, f"{recording * 1e3:.0f} ms per call"),
        ("  the 1-thread call without the recording", one_rest, ""),
        (f"tapegrad vmap(tape.value_and_grad) over {sets} sets, 2 threads", tape_two, "recorded once"),
        (f"tapegrad vmap(tape.value_and_grad) over {sets} sets, 1 thread", tape_one, ""),
    ]


def _best_without_recording(run, repeats: int) -> tuple:
    """``(best seconds of a call, best seconds of a call less its recordings, best seconds of
    the recordings)``: each call's recordings are timed inside it (running the function on a
    recording tape, and freezing what it recorded where the call does not replay the last
    call's identical recording: ``Tape._run``, ``Tape._finish``), so a busy machine slows both
    parts of the same call alike."""
    from tapegrad.replay import Tape

    recorded = [0.0]
    originals = {name: getattr(Tape, name) for name in ("_run", "_finish")}

    def timed(method):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                recorded[0] += time.perf_counter() - start

        return call

    run()
    totals, rests, recordings = [], [], []
    for name, method in originals.items():
        setattr(Tape, name, timed(method))
    try:
        for _ in range(repeats):
            recorded[0] = 0.0
            start = time.perf_counter()
            run()
            totals.append(time.perf_counter() - start)
            rests.append(totals[-1] - recorded[0])
            recordings.append(recorded[0])
    finally:
        for name, method in originals.items():
            setattr(Tape, name, method)
    return min(totals), min(rests), min(recordings)


def _table(title: str, rows: list, unit: str) -> None:
    print(f"\n{title}")
    base = rows[0][1]
    width = max(len(label) for label, _, _ in rows)
    print(f"  {'':{width}}  {unit:>12}  {'ratio':>7}")
    for label, seconds, note in rows:
        value = seconds * (1e3 if unit == "ms" else 1e6)
        print(f"  {label:{width}}  {value:12.1f}  {seconds / base:7.2f}  {note}")


def profile() -> None:
    import cProfile
    import pstats

    X, Y = _digits(np.random.default_rng(0))
    model = tg.nn.Sequential(tg.nn.Linear(FEATURES, HIDDEN), tg.nn.Tanh(), tg.nn.Linear(HIDDEN, CLASSES))
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(params, x, y):
        return F.cross_entropy(functional_call(model, params, (x[None],)), y[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    x, y = tg.tensor(X), tg.tensor(Y)
    previous = tg.get_num_threads()
    tg.set_num_threads(1)
    per_sample(params, x, y)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(5):
        per_sample(params, x, y)
    profiler.disable()
    tg.set_num_threads(previous)
    print("\ncProfile of 5 per-sample vmap(grad) calls, 1 thread (by own time):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and 128 graph sets")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of a per-sample call")
    options = parser.parse_args(argv)
    repeats = 5 if options.quick else 15
    sets = 128 if options.quick else GRAPH_SETS
    print(f"tapegrad.get_num_threads() = {tg.get_num_threads()}; every vmap(grad(f)) call records f once")
    _table(
        f"Per-sample gradients, MLP {FEATURES}-{HIDDEN}-{CLASSES}, batch {BATCH}, float32",
        per_sample_runs(repeats),
        "ms",
    )
    rows = graph_runs(max(2, repeats // 4), sets)
    _table(f"Scalar graph ({workloads.GRAPH_OPS} ops), {sets} input sets, time per set, float64", rows, "us")
    print(
        f"\n2 threads vs 1 on the graph batch: {rows[3][1] / rows[2][1]:.2f}x the whole call, "
        f"{rows[7][1] / rows[6][1]:.2f}x of a tape recorded once"
    )
    if options.profile:
        profile()


if __name__ == "__main__":
    main()
