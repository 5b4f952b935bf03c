"""Two checkouts of tapegrad side by side: is a change within noise of before?

    git worktree add /tmp/before main~3
    python -m benchmarks.checkouts /tmp/before .          # rounds alternate old, new, old, new...

Each round runs every workload in a fresh process per checkout (``PYTHONPATH`` pointing at it,
its own numba cache beside its sources), alternating, so that both see the same machine load.
Prints the medians of each workload per checkout, every round's figure, and the ratio new/old.
asv (``asv continuous``) does the same over commits in virtualenvs of its own; this is the quick
form for a working tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

# workload: (what make() builds, calls per timing, the unit it is reported in, divisor to that unit)
WORKLOADS = {
    "chain record (us/op)": ("chain_record", 20, 1e6 / 1001),
    "chain backward (us/op)": ("chain_backward", 50, 1e6 / 1001),
    "graph replay (ns/op)": ("graph_replay", 5, 1e9 / 10_000),
    "mlp eager step (us)": ("mlp", 50, 1e6),
    "big eager (ms)": ("big", 3, 1e3),
    "mlp replay (us)": ("mlp_replay", 50, 1e6),
}

_CHILD = """
import json, statistics, time, sys
from benchmarks import workloads
names = json.loads(sys.argv[1])
result = {}
for label, (name, number, scale) in names.items():
    run = workloads.make(name, "tapegrad")
    run()
    times = []
    for _ in range(15):
        start = time.perf_counter()
        for _ in range(number):
            run()
        times.append((time.perf_counter() - start) / number)
    result[label] = statistics.median(times) * scale
print(json.dumps(result))
"""


def measure(checkout: str) -> dict:
    environment = {**os.environ, "PYTHONPATH": os.path.abspath(checkout)}
    output = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(WORKLOADS)],
        cwd=os.path.abspath(checkout),
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", help="the checkout to compare against")
    parser.add_argument("after", help="the checkout with the change")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rounds = {"before": [], "after": []}
    for _ in range(args.rounds):
        for side in ("before", "after"):
            rounds[side].append(measure(getattr(args, side)))
    print(f"{'workload':<24} {'before':>10} {'after':>10} {'after/before':>13}   rounds (before | after)")
    for label in WORKLOADS:
        before = [r[label] for r in rounds["before"]]
        after = [r[label] for r in rounds["after"]]
        old, new = statistics.median(before), statistics.median(after)
        spread = " ".join(f"{v:.4g}" for v in before) + " | " + " ".join(f"{v:.4g}" for v in after)
        print(f"{label:<24} {old:>10.4g} {new:>10.4g} {new / old:>12.3f}x   {spread}")


if __name__ == "__main__":
    main()
