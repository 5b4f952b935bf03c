"""Every op of the table against PyTorch, forward and backward, in one process.

    python -m benchmarks.compare_ops [--quick] [--op NAME ...]

Each op runs its first case of ``tapegrad._examples`` (the shapes the tests use: a few elements,
where per-op overhead dominates) and, when the case still makes sense with every dimension 32
times larger, that too (where the kernels dominate). tapegrad and PyTorch (one thread) are timed
interleaved; a figure is the median time of ``forward + sum + backward``; the ratio is
tapegrad / PyTorch (below 1: tapegrad is faster).

``--common`` times instead the ops programs use most, at 4x8 and at 128x512 (the sizes of
shared/docs/performance.md's per-op target) and at 512x1024 (a layer's activations, past the L2
cache), with contiguous operands and with transposed ones (``a.t()``, as ``linear`` passes its
weight): the layouts the table's own cases never reach. About a minute and a half.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from benchmarks.bench_ops import _first_case_per_op
from benchmarks.compare import interleaved

SCALE = 32

# (size, shape, calls per timing): the timings of the larger sizes run fewer calls each.
COMMON_SIZES = (("4x8", (4, 8), 200), ("128x512", (128, 512), 5), ("512x1024", (512, 1024), 2))
# name: (expression over a, b of shape (rows, columns) and the module m, transposed form or None)
COMMON = {
    "add": ("a + b", "a.t() + b.t()"),
    "mul": ("a * b", "a.t() * b.t()"),
    "mul by a row": ("a * b[0]", None),
    "pow 3": ("a ** 3", None),
    "matmul": ("a @ b.t()", "a.t() @ b"),
    "relu": ("m.relu(a)", "m.relu(a.t())"),
    "sigmoid": ("m.sigmoid(a)", None),
    "tanh": ("m.tanh(a)", None),
    "exp": ("m.exp(a)", None),
    "sin": ("m.sin(a)", None),
    "gelu": ("m.nn.functional.gelu(a)", None),
    "sum(dim=1)": ("a.sum(1)", "a.t().sum(1)"),
    "mean": ("a.mean()", None),
    "softmax": ("m.softmax(a, 1)", "m.softmax(a.t(), 1)"),
    "log_softmax": ("m.log_softmax(a, 1)", None),
    "layer_norm": ("m.nn.functional.layer_norm(a, a.shape[1:])", None),
    "mse_loss": ("m.nn.functional.mse_loss(a, b)", None),
    "cross_entropy": ("m.nn.functional.cross_entropy(a, m.zeros(a.shape[0], dtype=m.int64))", None),
    "cat": ("m.cat([a, b])", None),
    "reshape": ("a.reshape(-1, 2)", None),
}


def _common_step(module, expression, arrays):
    a, b = (module.tensor(x, requires_grad=True) for x in arrays)
    namespace = {"m": module, "a": a, "b": b}
    code = compile(expression, expression, "eval")

    def run():
        a.grad = b.grad = None
        eval(code, namespace).sum().backward()  # noqa: S307 - the expressions above

    run()
    return run


def common(repeats: int) -> None:
    import torch

    import tapegrad as tg

    rng = np.random.default_rng(0)
    ratios = {}
    print(f"{'op':<16}{'layout':<12}{'size':<9}{'tapegrad us':>12}{'torch us':>10}{'ratio':>8}")
    for name, forms in COMMON.items():
        for layout, expression in zip(("contiguous", "transposed"), forms):
            if expression is None:
                continue
            for size, shape, number in COMMON_SIZES:
                arrays = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(2)]
                functions = {
                    "tapegrad": _common_step(tg, expression, arrays),
                    "torch": _common_step(torch, expression, arrays),
                }
                times = interleaved(functions, number, repeats)
                ratio = times["tapegrad"] / times["torch"]
                ratios.setdefault(size, []).append(ratio)
                print(
                    f"{name:<16}{layout:<12}{size:<9}{times['tapegrad'] * 1e6:>12.1f}{times['torch'] * 1e6:>10.1f}"
                    f"{ratio:>7.2f}x"
                )
    for size, values in ratios.items():
        mean = math.exp(sum(math.log(v) for v in values) / len(values))
        print(f"geometric mean, {size}: {mean:.2f}x torch over {len(values)} cases (max {max(values):.2f}x)")


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
    parser.add_argument("--common", action="store_true", help="the most-used ops, contiguous and transposed")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 11
    if args.common:
        common(repeats)
        return
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
