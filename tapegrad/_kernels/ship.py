"""Compile the kernels a wheel ships: ``python -m tapegrad._kernels.ship [--levels ...]``.

Run in a source tree before building the wheel::

    python -m tapegrad._kernels.ship && pip wheel --no-deps .

For each CPU level this machine can run (``shipped.LEVELS``: the workload runs the code it
compiles, so a level is shipped from a machine that has it) a fresh process compiles, with
numba's code generation set to that level (``NUMBA_CPU_NAME``), every kernel a workload reaches: each op of the op table in
both float dtypes, eagerly and replayed, every kernel family, the tutorial and its replay demo,
an MLP's training steps with SGD and Adam, a convolution, max pooling, ``vmap(grad)``, a replay of
large elementwise rows by blocks. The machine
code lands in ``tapegrad/_kernels/_shipped/<level>/`` (about 10 MB a level), which the wheel
carries (``pyproject.toml``'s package data) and ``shipped.ShippedCache`` reads. A kernel the
workload did not reach is compiled on first use, as without a shipped cache. Editing any kernel
source changes the digest that keys the shipped code, which is then ignored until shipped again.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def workload() -> list:
    """Reach every kernel the shipped code should hold; returns the op cases that raised, as
    ``(case, dtype, error)``: their kernels would be missing from what ships."""
    import tapegrad as tg
    from tapegrad import _tutorial
    from tapegrad._examples import CASES
    from tapegrad._kernels import backward, forward
    from tapegrad.func import functional_call, grad, vmap
    from tapegrad.replay import demo

    with contextlib.redirect_stdout(io.StringIO()):
        _tutorial.run(tg)
        demo()
    rng = np.random.default_rng(0)
    failures = []
    for case in CASES:
        for dtype in (tg.float64, tg.float32):
            arrays = [rng.uniform(*case.domain, size=shape).astype(dtype.numpy) for shape in case.shapes]
            try:
                inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
                case.call(*inputs).sum().backward()
                tape = tg.record(case.call, *arrays)
                out = tape(*arrays)
                tape.value_and_grad(*arrays, grad_outputs=np.ones(tuple(out.shape), dtype.numpy))
            except Exception as error:  # noqa: BLE001 - reported, and the ship fails
                failures.append((case.name, dtype, error))
            # Large inputs take other paths: compiled forwards, precomputed derivatives,
            # transposed sources. Cases whose shapes do not stretch so raise, and are skipped.
            large = [rng.uniform(*case.domain, size=_stretched(shape)).astype(dtype.numpy) for shape in case.shapes]
            try:
                case.call(*[tg.tensor(a, requires_grad=True) for a in large]).sum().backward()
            except Exception:  # noqa: BLE001
                pass
            if len(large) == 1 and large[0].ndim == 2:
                try:
                    case.call(tg.tensor(large[0].T.copy(), requires_grad=True).t()).sum().backward()
                except Exception:  # noqa: BLE001
                    pass
    for dtype in (tg.float32, tg.float64):
        x = tg.ones(32, dtype=dtype)  # the general sweeps and vmap's kernel (a register program below)
        tape = tg.record(lambda x: (x * x).sum(), x)
        tape.value_and_grad(x)
        tape._replay_batch([x.numpy()[None]], [True], [1.0])
        x = x[:3]
        scalars = tg.record(lambda x: (x[0] * x[1] + x[2]).tanh() * x[0] - x[1] / x[2], x)
        scalars._replay_batch([x.numpy()[None]], [True], [1.0])
        model = tg.nn.Sequential(tg.nn.Linear(8, 16), tg.nn.Tanh(), tg.nn.Linear(16, 3)).to(dtype)
        for optimizer in (tg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), tg.optim.Adam(model.parameters())):
            for _ in range(2):
                optimizer.zero_grad()
                loss = tg.nn.functional.cross_entropy(model(tg.randn(4, 8, dtype=dtype)), tg.tensor([0, 1, 2, 0]))
                loss.backward()
                optimizer.step()
        images = tg.randn(2, 1, 6, 6, dtype=dtype, requires_grad=True)
        convolution = tg.nn.Conv2d(1, 2, 3).to(dtype)
        tg.nn.functional.max_pool2d(convolution(images), 2).sum().backward()
        weights = tg.randn(5, dtype=dtype)
        vmap(grad(lambda w, x: (w * x).sum().tanh()), in_dims=(None, 0))(weights, tg.randn(4, 5, dtype=dtype))
        vmap(grad(lambda x: (x * x).sum().tanh()))(tg.randn(16, 3, dtype=dtype))
        parameters = dict(model.named_parameters())  # per-sample gradients, torch.func's recipe

        def loss(parameters, x, y, model=model):
            logits = functional_call(model, parameters, (x[None],))
            return tg.nn.functional.cross_entropy(logits, y[None])

        vmap(grad(loss), in_dims=(None, 0, 0))(parameters, tg.randn(6, 8, dtype=dtype), tg.tensor([0, 1, 2] * 2))
        rows = tg.randn(64, 256, dtype=dtype, requires_grad=True)  # large rows: layer norm, a broadcast row
        tg.nn.functional.layer_norm(rows, (256,)).sum().backward()
        (rows * tg.randn(256, dtype=dtype, requires_grad=True)).sum().backward()
        big = rng.standard_normal((2, 1 << 16)).astype(dtype.numpy)  # a replay by blocks (fused.py)
        tg.record(lambda x, y: (x * y + x.sin()).sum(), *big).value_and_grad(*big)
        # Read-only data (np.load with mmap_mode="r", a frozen array through from_numpy): numba
        # compiles read-only arrays apart, for the reductions and normalizations that take them.
        frozen = rng.standard_normal((64, 256)).astype(dtype.numpy)
        frozen.flags.writeable = False
        data = tg.from_numpy(frozen)
        data.sum(), data.mean(), data.var(), tg.nn.functional.layer_norm(data, (256,))
    for table in (backward.FAMILIES, forward.FAMILIES):
        for slot in range(len(table.addresses)):
            table.load(slot)
    return failures


def _stretched(shape: tuple) -> tuple:
    """``shape`` with its last dimension stretched to about 2**14 elements in all."""
    if not shape:
        return shape
    numel = max(1, int(np.prod(shape)))
    return shape[:-1] + (shape[-1] * -(-(1 << 14) // numel),)


def ship(level: str) -> None:
    """Compile the workload's kernels for ``level`` into the shipped directory, replacing what
    was shipped for it."""
    from .shipped import DIRECTORY

    target = os.path.join(DIRECTORY, level)
    if os.path.isdir(target):
        for name in os.listdir(target):
            if name.endswith((".nbi", ".nbc")):
                os.remove(os.path.join(target, name))
    # numba's defaults (shipped.py's stamp checks them at load) and no Intel SVML, which a
    # user's numba may not find: none of this machine's NUMBA_ settings.
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "TAPEGRAD_SHIP"))}
    if "TAPEGRAD_SHIPPED_DIR" in os.environ:
        environment["TAPEGRAD_SHIPPED_DIR"] = os.environ["TAPEGRAD_SHIPPED_DIR"]
    with tempfile.TemporaryDirectory() as empty:  # nothing from this host's own cache
        environment.update(
            NUMBA_CPU_NAME=level,
            NUMBA_CPU_FEATURES="",  # the level's own features, not the host's
            NUMBA_DISABLE_INTEL_SVML="1",
            NUMBA_CACHE_DIR=empty,
            TAPEGRAD_SHIP_LEVEL=level,
        )
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tapegrad._kernels.ship", "--workload"], env=environment, check=True)
    files = os.listdir(target) if os.path.isdir(target) else []
    if not files:
        raise SystemExit(f"{level}: nothing was compiled (is NUMBA_DISABLE_JIT set?)")
    size = sum(os.path.getsize(os.path.join(target, name)) for name in files)
    print(f"{level}: {len(files)} files, {size / 1e6:.1f} MB, {time.perf_counter() - start:.0f} s", flush=True)


def main(argv=None) -> None:
    from .shipped import LEVELS, host_levels

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--levels", nargs="+", default=host_levels(), choices=[name for name, _ in LEVELS], help="CPU levels"
    )
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.workload:
        failures = workload()
        if failures:  # (an import the cases relied on went lazy once: 66 cases raised KeyError)
            listed = "; ".join(f"{name} ({dtype}): {error!r}" for name, dtype, error in failures[:3])
            raise SystemExit(f"{len(failures)} op cases raised, whose kernels would not ship: {listed}")
        return
    if not args.levels:
        raise SystemExit("this machine runs none of the shipped CPU levels: nothing to compile")
    for level in args.levels:
        if level not in host_levels():
            raise SystemExit(f"this machine cannot run {level} code, which the workload runs")
        ship(level)


if __name__ == "__main__":
    main()
