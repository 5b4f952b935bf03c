"""Memory over long loops and backward passes in two threads: the figures issue-style
reliability claims rest on. ``python -m benchmarks.reliability [iterations]``

Reports resident-memory growth after warm-up for the three loops of shared/docs/architecture.md
(training, evaluation without no_grad, state carried with detach) and for two loops that record
from a result kept alive (results dropped; a backward with ``retain_graph`` each time), and the wall time of two
threads running 10^6-element backward passes at once against one after the other (the sweep
runs with the GIL released)."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

import numpy as np

import tapegrad as tg


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def loops(iterations: int) -> None:
    W = tg.randn(64, 32, requires_grad=True)
    X = tg.randn(16, 64)
    state = {"h": tg.zeros(16, 32), "y": None}
    kept = (X @ W) * 2.0  # a result alive across the loops below: its tape is theirs too

    def training():
        loss = ((X @ W).tanh() ** 2).mean()
        loss.backward()
        with tg.no_grad():
            W.sub_(0.01 * W.grad)
        W.grad = None

    def evaluation():
        state["y"] = ((X @ W).relu() * 2.0).sum()

    def carried():
        state["h"] = (state["h"].detach() * 0.5 + X @ W).tanh()

    def dropped():
        state["y"] = kept.tanh()

    def retained():
        (kept.relu() * 3.0).sum().backward(retain_graph=True)

    for name, step in (
        ("training", training),
        ("evaluation without no_grad", evaluation),
        ("state carried with detach", carried),
        ("results of a kept result", dropped),
        ("retain_graph from a kept one", retained),
    ):
        for _ in range(3000):
            step()
        gc.collect()
        before = rss_mb()
        start = time.perf_counter()
        for _ in range(iterations):
            step()
        gc.collect()
        print(
            f"{name:28s} {iterations} iterations: RSS growth {rss_mb() - before:+.1f} MB "
            f"({(time.perf_counter() - start) / iterations * 1e6:.0f} us/iteration)"
        )


def threads() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(10**6).astype(np.float32) for _ in range(2)]

    def work():
        x = tg.tensor(arrays[0], requires_grad=True)
        y = tg.tensor(arrays[1], requires_grad=True)
        for _ in range(20):
            (x * y + x.tanh()).sum().backward()

    work()
    start = time.perf_counter()
    work()
    work()
    serial = time.perf_counter() - start
    pair = [threading.Thread(target=work) for _ in range(2)]
    start = time.perf_counter()
    for thread in pair:
        thread.start()
    for thread in pair:
        thread.join()
    parallel = time.perf_counter() - start
    print(
        f"two threads' backward passes: {parallel:.2f} s together against {serial:.2f} s one after the other "
        f"({serial / parallel:.2f}x on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    loops(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    threads()
