"""``python -m tapegrad``: the autograd tutorial, then timings of recording, backward and replay."""

from __future__ import annotations

import time

import tapegrad as tg
from tapegrad import _tutorial


def _chain_timings(ops: int = 1000) -> tuple[float, float]:
    x = tg.tensor([0.1, 0.2, 0.3], requires_grad=True)
    v = tg.tensor([0.1, 1.0, 0.0001])
    start = time.perf_counter()
    y = x * 2
    for _ in range(ops):
        y = y * 1.001
    recorded = time.perf_counter()
    y.backward(v)
    done = time.perf_counter()
    return (recorded - start) / (ops + 1), (done - recorded) / (ops + 1)


def main() -> None:
    print("== PyTorch's autograd tutorial, run by tapegrad ==\n")
    _tutorial.run(tg)

    print("\n== The tutorial's chain: y = y * 1.001, 1000 times, then y.backward(v) ==")
    from tapegrad._kernels import tiers

    tiers.wait()  # on a fresh install: what is timed below is compiled code, not its Python tier
    samples = sorted(_chain_timings() for _ in range(21))
    record = sorted(s[0] for s in samples)[10]
    backward = sorted(s[1] for s in samples)[10]
    print(f"record:   {record * 1e6:7.3f} us per op (median of 21)")
    print(f"backward: {backward * 1e6:7.3f} us per op, one jitted call for the whole tape")

    try:
        from tapegrad import replay  # noqa: F401
    except ImportError:
        return
    from tapegrad.replay import demo

    demo()


if __name__ == "__main__":
    main()
