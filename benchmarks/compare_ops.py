"""Every op of the table against PyTorch, forward and backward, in one process.

    python -m benchmarks.compare_ops [--quick] [--op NAME ...]

Each op runs its first case of ``tapegrad._examples`` (the shapes the tests use: a few elements,
where per-op overhead dominates) and, when the case still makes sense with every dimension 32
times larger, that too (where the kernels dominate). tapegrad and PyTorch (one thread) are timed
interleaved; a figure is the median time of ``forward + sum + backward``; the ratio is
tapegrad / PyTorch (below 1: tapegrad is faster).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from benchmarks.bench_ops import _first_case_per_op
from benchmarks.compare import interleaved

SCALE = 32


def _step(module, case, arrays):
    inputs = [module.tensor(a, requires_grad=True) for a in arrays]

    def run():
        for x in inputs:
            x.grad = None
        case.call(*inputs).sum().backward()

    run()  # compiles and warms outside the timing; raises if the case does not fit these shapes
    return run


def main(argv=None) -> None:
    import torch

    import tapegrad as tg

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--op", nargs="*", help="only these ops")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 11
    cases = _first_case_per_op()
    rng = np.random.default_rng(0)
    ratios = {"small": [], "large": []}
    print(f"{'op':<18}{'case':<24}{'size':<7}{'tapegrad us':>12}{'torch us':>10}{'ratio':>8}")
    unknown = sorted(set(args.op or ()) - set(cases))
    if unknown:
        parser.error(f"no case records {', '.join(unknown)} (hidden rows are measured with the op using them)")
    for name in sorted(args.op or cases):
        case = cases[name]
        for size, factor in (("small", 1), ("large", SCALE)):
            shapes = [tuple(extent * factor for extent in shape) for shape in case.shapes]
            low, high = case.domain
            arrays = [rng.uniform(low, high, size=shape).astype(np.float32) for shape in shapes]
            try:
                functions = {"tapegrad": _step(tg, case, arrays), "torch": _step(torch, case, arrays)}
            except Exception:  # noqa: BLE001 - a case written for its own shapes (fixed indices)
                continue
            number = 200 if size == "small" else 5
            times = interleaved(functions, number, repeats)
            ratio = times["tapegrad"] / times["torch"]
            ratios[size].append(ratio)
            print(
                f"{name:<18}{case.name[:23]:<24}{size:<7}{times['tapegrad'] * 1e6:>12.1f}"
                f"{times['torch'] * 1e6:>10.1f}{ratio:>7.2f}x"
            )
    for size, values in ratios.items():
        if values:
            mean = math.exp(sum(math.log(v) for v in values) / len(values))
            print(f"geometric mean, {size}: {mean:.2f}x torch over {len(values)} ops (max {max(values):.2f}x)")


if __name__ == "__main__":
    main()
