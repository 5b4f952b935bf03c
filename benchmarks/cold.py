"""Cold start: how long a new user waits for numba, each figure in a fresh process.

    python -m benchmarks.cold [--repeats N]

Empty-cache figures run with ``NUMBA_CACHE_DIR`` pointing at a new directory, as on a fresh
install; warm figures reuse the cache the empty-cache runs filled. Targets are issue 15's. The
same snippets are asv's ``timeraw_`` benchmarks (``bench_workloads.ColdEmptyCache``).

Where the installed package carries machine code for this CPU (``python -m
tapegrad._kernels.ship`` ran before its wheel was built: ``tapegrad/_kernels/shipped.py``), the
figures are given twice: with it, as such a wheel's users see them, and compiled from source
(``TAPEGRAD_SHIPPED_KERNELS=0``), as an install from a source tree or a kernel edit does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

# The tutorial's lines up to its first backward, then its replay demo (tapegrad/_tutorial.py).
TUTORIAL_BACKWARD = """
x = tg.ones(2, 2, requires_grad=True)
y = x**2
z = y * y * 3
out = z.mean()
out.backward()
"""
TUTORIAL_REPLAY = """
import contextlib, io
from tapegrad.replay import demo
with contextlib.redirect_stdout(io.StringIO()):  # asv's timeraw reads the child's stdout
    demo()
"""
SINGLE_OP_BACKWARD = """
x = tg.ones(64, requires_grad=True)
x.exp().sum().backward()
"""
SINGLE_OP_REPLAY = """
tape = tg.record(lambda x: x.exp().sum(), tg.ones(64))
tape.value_and_grad(tg.ones(64))
"""
EVERY_KERNEL = """
from tapegrad._kernels import backward, forward
for dtype in (tg.float32, tg.float64):
    # 32 elements: more than a register program takes, so the general sweeps and vmap's kernel
    x = tg.ones(32, dtype=dtype)  # a replay's inputs must not require grad
    tape = tg.record(lambda x: (x * x).sum(), x)
    tape.value_and_grad(x)
    tg.nn.functional.max_pool2d(tg.ones(1, 1, 4, 4, dtype=dtype), 2)  # eager max pooling's kernel
    tape._replay_batch([x.detach().numpy()[None]], [True], [1.0])
    x = x[:3]
    scalars = tg.record(lambda x: (x[0] * x[1] + x[2]).tanh() * x[0] - x[1] / x[2], x)  # a register program
    scalars._replay_batch([x.detach().numpy()[None]], [True], [1.0])
    big = tg.ones(1 << 16, dtype=dtype).numpy()  # a replay by blocks (tapegrad/_kernels/fused.py)
    tg.record(lambda x, y: (x * y).sum(), big, big).value_and_grad(big, big)
for table in (backward.FAMILIES, forward.FAMILIES):
    for slot in range(len(table.addresses)):
        table.load(slot)
"""

# (label, code run before the timer starts, timed code, cache: "empty" or "warm", target seconds)
FIGURES = (
    ("import tapegrad", "", "import tapegrad as tg", "warm", 0.1),
    ("tutorial's first backward, empty cache", "import tapegrad as tg", TUTORIAL_BACKWARD, "empty", 5.0),
    (
        "first replay after it, empty cache",
        "import tapegrad as tg\n" + TUTORIAL_BACKWARD,
        TUTORIAL_REPLAY,
        "empty",
        5.0,
    ),
    ("one op's backward (exp), empty cache", "import tapegrad as tg", SINGLE_OP_BACKWARD, "empty", 3.0),
    ("one op's replay (exp), empty cache", "import tapegrad as tg", SINGLE_OP_REPLAY, "empty", 3.0),
    ("every kernel compiled, empty cache", "import tapegrad as tg", EVERY_KERNEL, "empty", 30.0),
    ("first backward, warm cache", "import tapegrad as tg", TUTORIAL_BACKWARD, "warm", 0.5),
)

_CHILD = """
import os, sys, time
{before}
start = time.perf_counter()
{timed}
print("SECONDS", time.perf_counter() - start, flush=True)
tiers = sys.modules.get("tapegrad._kernels.tiers")
if tiers is not None:  # its background compile writes into the cache directory, removed after this
    tiers.finish()
"""


def measure(before: str, timed: str, cache_dir: str, shipped: bool = True, background: bool = True) -> float:
    """Seconds ``timed`` takes in a fresh interpreter after ``before``, numba's cache in
    ``cache_dir``; with ``shipped`` false, the package's shipped machine code unused; with
    ``background`` false, every kernel compiled in the process before it runs, as without
    tiered compilation (``tapegrad/_kernels/tiers.py``)."""
    environment = {
        **os.environ,
        "NUMBA_CACHE_DIR": cache_dir,
        "TAPEGRAD_SHIPPED_KERNELS": "1" if shipped else "0",
        "TAPEGRAD_BACKGROUND_COMPILE": "1" if background else "0",
    }
    code = _CHILD.format(before=before, timed=timed)
    with tempfile.TemporaryDirectory() as here:  # the demo's output must not depend on where it runs
        output = subprocess.run(
            [sys.executable, "-c", code], cwd=here, env=environment, capture_output=True, text=True, check=True
        ).stdout
    return float(output.strip().splitlines()[-1].split()[1])


def compile_bytecode() -> None:
    """Python's bytecode of tapegrad's modules, as ``pip install`` leaves it (pip compiles what it
    installs). An editable install run with ``PYTHONDONTWRITEBYTECODE=1`` (set on the machine the
    issues were measured on) never writes it, and every import compiles the sources again:
    about 0.05 s of the import figure. ``compileall`` writes it whatever that variable says."""
    import compileall

    import tapegrad

    compileall.compile_dir(os.path.dirname(tapegrad.__file__), quiet=1)


def has_shipped_code() -> bool:
    """Whether the tapegrad this interpreter imports carries machine code this CPU can run."""
    code = "from tapegrad._kernels import backward; print(backward._run._cache.has_entry())"
    with tempfile.TemporaryDirectory() as empty:
        environment = {**os.environ, "NUMBA_CACHE_DIR": empty}
        output = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)
    return output.stdout.strip() == "True"


def run(repeats: int = 1, shipped: bool | None = None) -> list:
    """``[(label, seconds, target)]``: medians of ``repeats`` runs, each empty-cache run in a new
    cache directory; warm runs reuse a cache the first empty-cache run filled. ``shipped``: with
    the shipped machine code (True), compiled from source (False), or both where the package
    carries some (None; labels then say which)."""
    compile_bytecode()
    if shipped is None:
        if not has_shipped_code():
            return run(repeats, shipped=False)
        return run(repeats, shipped=True) + run(repeats, shipped=False)
    results = []
    suffix = " (shipped code)" if shipped else ""
    with tempfile.TemporaryDirectory() as warm:
        measure("import tapegrad as tg", TUTORIAL_BACKWARD + TUTORIAL_REPLAY, warm, shipped, background=False)
        for label, before, timed, cache, target in FIGURES:
            if shipped and cache == "warm":
                continue  # a warm cache is the same with or without
            # Empty-cache figures twice: as a user sees them (small sweeps run as Python while
            # the interpreters compile in the background) and with everything compiled in the
            # process first, which is what the background does. "every kernel" is the latter.
            tiers = (True, False) if cache == "empty" and "every kernel" not in label else (cache == "warm",)
            for background in tiers:
                samples = []
                for _ in range(repeats if cache == "empty" else max(repeats, 5)):
                    if cache == "warm":
                        samples.append(measure(before, timed, warm, shipped))
                    else:
                        with tempfile.TemporaryDirectory() as empty:
                            samples.append(measure(before, timed, empty, shipped, background))
                where = "" if background or "every kernel" in label else ", compiled in the process"
                results.append((label + where + suffix, statistics.median(samples), target))
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per empty-cache figure (median)")
    args = parser.parse_args(argv)
    print(f"{'what':<57} {'seconds':>8} {'target':>8}  verdict")
    for label, seconds, target in run(args.repeats):
        print(f"{label:<57} {seconds:>8.2f} {target:>8.1f}  {'met' if seconds <= target else 'MISSED'}")


if __name__ == "__main__":
    main()
