"""Every workload of shared/docs/performance.md, every available backend, one process, one table.

    python -m benchmarks.compare [--quick] [--markdown]

Backends are timed interleaved (round-robin repeats) so that machine noise hits them alike;
each figure is a median. Ratios are tapegrad / peer; each target line says met or MISSED.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import time

from benchmarks import cold as cold_figures
from benchmarks import workloads


def _time(function, number: int) -> float:
    gc.collect()
    # One call untimed: the first after a collection ran 3-8x slower for every backend (caches
    # cold after the collector walked every object), which inflated each mean, torch's most.
    function()
    start = time.perf_counter()
    for _ in range(number):
        function()
    return (time.perf_counter() - start) / number


def interleaved(functions: dict, number: int, repeats: int) -> dict:
    samples = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            samples[name].append(_time(function, number))
    return {name: statistics.median(values) for name, values in samples.items()}


def measure(workload: str, number: int, repeats: int) -> dict:
    functions = {
        b: workloads.make(workload, b) for b in workloads.BACKENDS if workloads.available(b) and _supports(workload, b)
    }
    return interleaved(functions, number, repeats)


def _supports(workload: str, backend: str) -> bool:
    if backend == "numpy":
        return workload in ("big", "mlp", "chain_record", "graph_replay")
    if workload in ("graph_replay", "graph_record", "chain_replay", "mlp_replay"):
        return backend == "tapegrad"
    return True


def cold_start() -> dict:
    """``import`` and first backward, each in a fresh interpreter (numba cache warm)."""
    code_import = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"
    code_first = (
        "import time; t = time.perf_counter(); import {m} as m\n"
        "x = m.ones(3, requires_grad=True); (x * x).sum().backward(); print(time.perf_counter() - t)"
    )
    cold_figures.compile_bytecode()  # as installed: torch's bytecode is, from its wheel
    results = {}
    for backend in ("tapegrad", "torch"):
        if not workloads.available(backend):
            continue
        for label, code in (("import", code_import), ("first_backward", code_first)):
            runs = []
            for _ in range(5):
                out = subprocess.run(
                    [sys.executable, "-c", code.format(m=backend)], capture_output=True, text=True, check=True
                )
                runs.append(float(out.stdout.strip().splitlines()[-1]))
            results[(label, backend)] = statistics.median(runs)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 15

    rows = []  # (workload, unit, {backend: seconds}, [(peer, target ratio, description)])
    chain_record = measure("chain_record", 3, repeats)
    chain_backward = measure("chain_backward", 20, repeats)
    per_op = 1.0 / (workloads.CHAIN_OPS + 1)
    # Targets as issues 13 (eager) and 14 (replay) state them.
    rows.append(("chain: record", "us/op", {b: v * per_op for b, v in chain_record.items()}, [("torch", 0.35)]))
    rows.append(("chain: backward", "us/op", {b: v * per_op for b, v in chain_backward.items()}, [("torch", 0.02)]))
    chain_replay = measure("chain_replay", 20, repeats)["tapegrad"]
    both = (
        {"tapegrad": chain_replay * per_op, "torch": (chain_record["torch"] + chain_backward["torch"]) * per_op}
        if "torch" in chain_record
        else {"tapegrad": chain_replay * per_op}
    )
    rows.append(("chain: replay fwd+bwd (torch: eager)", "us/op", both, [("absolute", 0.02e-6)]))
    mlp = measure("mlp", 50, repeats)
    rows.append(("mlp: training step", "us", mlp, [("torch", 0.6)]))
    mlp_replay = dict(mlp)
    mlp_replay["tapegrad"] = measure("mlp_replay", 50, repeats)["tapegrad"]
    rows.append(("mlp: replayed step (others: eager)", "us", mlp_replay, [("numpy", 1.3)]))
    big = measure("big", 3, repeats)
    rows.append(("big: forward+backward", "us", big, [("numpy", 1.2), ("torch", 1.0)]))
    big_replay = dict(big)
    big_replay["tapegrad"] = measure("big_replay", 3, repeats)["tapegrad"]
    rows.append(("big: replayed (others: eager)", "us", big_replay, [("numpy", 1.1)]))
    rows.append(("classifier: training step (digits' MLP, Adam)", "us", measure("classifier", 20, repeats), []))
    rows.append(("cnn: training step (32 28x28 images)", "us", measure("cnn", 3, repeats), []))
    rows.append(("lstm: training step (20 steps, batch 16)", "us", measure("lstm", 5, repeats), []))
    n_ops = workloads.GRAPH_OPS
    replay = measure("graph_replay", 5, repeats)
    eager = measure("graph_eager", 1, max(3, repeats // 3))
    recording = measure("graph_record", 1, max(3, repeats // 3))
    rows.append(("graph: replay fwd+bwd", "ns/op", {b: v / n_ops for b, v in replay.items()}, [("numpy", 2.0)]))
    rows.append(("graph: eager fwd+bwd", "ns/op", {b: v / n_ops for b, v in eager.items()}, []))
    if "torch" in eager:
        recording["torch"] = eager["torch"]
        rows.append(
            (
                "graph: record vs torch eager fwd+bwd",
                "ns/op",
                {b: v / n_ops for b, v in recording.items()},
                [("torch", 1.0)],
            )
        )
    cold = cold_start()
    for label, target in (("import", 0.1), ("first_backward", 0.5)):  # issue 15's targets
        values = {b: cold[(label, b)] for b in ("tapegrad", "torch") if (label, b) in cold}
        rows.append((f"cold: {label.replace('_', ' ')}", "s", values, [("absolute", target)]))
    for label, seconds, target in cold_figures.run():
        rows.append((f"cold: {label}", "s", {"tapegrad": seconds}, [("absolute", target)]))

    print(
        f"tapegrad comparison, {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, medians of {repeats} interleaved repeats"
    )
    print(
        "numpy column: NumPy by hand (big, mlp), NumPy without gradients (chain record), a hand-written numba "
        "switch interpreter over the same op list (graph replay)"
    )
    header = ("workload", "unit", "tapegrad", "torch", "numpy", "ratio", "target", "verdict")
    lines = []
    for name, unit, values, targets in rows:
        scale = {"us": 1e6, "ns": 1e9}.get(unit[:2], 1.0)
        cells = [f"{values[b] * scale:.4g}" if b in values else "-" for b in ("tapegrad", "torch", "numpy")]
        if not targets:
            ratio = values["tapegrad"] / values["torch"] if "torch" in values else None
            lines.append((name, unit, *cells, f"{ratio:.3g}x torch" if ratio else "-", "-", "-"))
        for peer, target in targets:
            if peer == "absolute":
                ok = values["tapegrad"] <= target
                shown, limit = f"{values['tapegrad'] * scale:.3g} {unit}", f"<= {target * scale:.3g} {unit}"
                lines.append((name, unit, *cells, shown, limit, "met" if ok else "MISSED"))
            elif peer in values:
                ratio = values["tapegrad"] / values[peer]
                lines.append(
                    (
                        name,
                        unit,
                        *cells,
                        f"{ratio:.3g}x {peer}",
                        f"<= {target}x",
                        "met" if ratio <= target else "MISSED",
                    )
                )
    widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for line in lines:
            print("| " + " | ".join(str(c) for c in line) + " |")
    else:
        for line in [header, *lines]:
            print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)))


if __name__ == "__main__":
    main()
