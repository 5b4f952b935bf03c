"""A chain of 10^6 ops: record and backward time and peak memory, per backend, each in its own
process (so peaks do not mix).  ``python -m benchmarks.deep_chain``"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import resource, time
import {module} as m
if "{module}" == "torch":
    m.set_num_threads(1)
x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
start = time.perf_counter()
y = x * 1.0
for _ in range({ops}):
    y = y * 1.0
recorded = time.perf_counter()
y.backward(m.ones(3))
done = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{{recorded - start:.2f}} {{done - recorded:.2f}} {{peak:.0f}}")
"""


def main(ops: int = 1_000_000) -> None:
    print(f"chain of {ops} ops on 3 elements: record s, backward s, peak RSS MB")
    for module in ("tapegrad", "torch"):
        try:
            out = subprocess.run(
                [sys.executable, "-c", CODE.format(module=module, ops=ops)], capture_output=True, text=True, check=True
            )
        except subprocess.CalledProcessError as error:
            print(module, "failed:", error.stderr.strip().splitlines()[-1])
            continue
        record, backward, peak = out.stdout.split()
        print(f"{module:9s} record {record} s  backward {backward} s  peak {peak} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
