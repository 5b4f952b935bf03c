"""Kernel families are compiled one at a time, when a tape first needs them, and called through a
table of addresses (tapegrad/_kernels/families.py). These tests hold that to the code: a tape
loads only its own families, a sweep that stops for one resumes where it stopped, a first compile
is announced, and a kernel that raises is an error, not a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import tapegrad as tg

pytestmark = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="families are cfuncs only when compiled")


def _fresh_process(code: str, **environment) -> subprocess.CompletedProcess:
    """``code`` in a new interpreter (its own family table), numba's cache as the suite's, and
    compiling what is not there (not reading machine code shipped with the package)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TAPEGRAD_SHIPPED_KERNELS": "0", **environment},
        timeout=600,
    )


_LOADED = """
import json, numpy as np, tapegrad as tg
from tapegrad._kernels import backward, forward
{body}
print(json.dumps({{"backward": backward.FAMILIES.loaded(), "replay": forward.FAMILIES.loaded()}}))
"""


@pytest.mark.parametrize(
    ("body", "backward_families"),
    [
        # rows of a few elements and sum: the sweep's own call-free path, no family at all
        ("x = tg.ones(3, requires_grad=True); (x * x * 2 + x).sum().backward()", []),
        # the tutorial's first backward (issue 15: its first run waits for the sweep alone)
        ("x = tg.ones(2, 2, requires_grad=True); y = x**2; (y * y * 3).mean().backward()", []),
        (
            "a = tg.ones(4, 5, requires_grad=True); b = tg.ones(5, 3, requires_grad=True)\n(a @ b).sum().backward()",
            ["backward matmul (float32)"],
        ),
        (  # its sum to one element is a float64 row of the small path, itself a family
            "x = tg.ones(64, dtype=tg.float64, requires_grad=True); (x * x).exp().sum().backward()",
            ["backward elementwise (float64)", "backward exp (float64)", "backward small rows (float64)"],
        ),
        # float64 rows of a few elements: the small path, loaded as a family for float64 only
        (
            "x = tg.ones(3, dtype=tg.float64, requires_grad=True); (x * x * 2 + x).sum().backward()",
            ["backward small rows (float64)"],
        ),
    ],
)
def test_a_backward_loads_only_the_families_its_tape_uses(body, backward_families):
    result = json.loads(_fresh_process(_LOADED.format(body=body)).stdout.splitlines()[-1])
    assert sorted(result["backward"]) == sorted(backward_families)
    assert result["replay"] == []


def test_the_replay_demo_loads_only_the_families_of_its_norm_and_comparison():
    """The tutorial's loop replayed (``python -m tapegrad``): its multiplications and ``.data``
    copies of three elements run in the sweep itself; ``norm`` and ``<`` need their families,
    and ``norm``'s is its own: in the grouped family, it made this first replay 2.9 s longer."""
    body = """
def loop(x):
    y = x * 2
    while y.data.norm() < 1000:
        y = y * 2
    return y
tape = tg.record(loop, np.array([-0.9332, 1.9616, 0.1739], np.float32))
tape.value_and_grad(np.array([-0.9, 1.9, 0.2], np.float32), grad_outputs=np.ones(3, np.float32))
"""
    result = json.loads(_fresh_process(_LOADED.format(body=body)).stdout.splitlines()[-1])
    assert sorted(result["replay"]) == ["replay comparison (float32)", "replay norm (float32)"]
    assert result["backward"] == []


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_float64_rows_load_their_own_family_and_float32_rows_none(dtype):
    """The sweeps run small float32 rows inline; float64 ones in the "small rows" family,
    compiled for the first tape that has one (half the sweeps' first compile otherwise)."""
    body = f"""
tape = tg.record(lambda x: (x * x * 2 + x).sum(), np.ones(3, np.{dtype}))
tape.value_and_grad(np.full(3, 0.5, np.{dtype}))
"""
    result = json.loads(_fresh_process(_LOADED.format(body=body)).stdout.splitlines()[-1])
    small = dtype == "float64"
    assert result["replay"] == (["replay small rows (float64)"] if small else [])
    assert result["backward"] == (["backward small rows (float64)"] if small else [])


def test_a_cast_loads_the_cast_family_of_its_result_dtype():
    """Casts run in a family of their own (their loops in the sweeps cost every first compile),
    keyed by the dtype of the cast's result: float32 -> float64 here."""
    body = """
tape = tg.record(lambda x: (x.double() * 2.0).sum(), np.ones(3, np.float32))
value, (gradient,) = tape.value_and_grad(np.full(3, 0.5, np.float32))
assert float(value) == 3.0 and gradient.dtype == tg.float32 and (gradient.numpy() == 2.0).all()
"""
    result = json.loads(_fresh_process(_LOADED.format(body=body)).stdout.splitlines()[-1])
    assert sorted(result["replay"]) == ["replay cast (float64)", "replay small rows (float64)"]
    assert sorted(result["backward"]) == ["backward cast (float64)", "backward small rows (float64)"]


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
def test_the_call_free_path_and_the_families_agree_to_the_bit(dtype):
    """Rows of a few elements run in the sweep itself, larger ones in a family: the same
    arithmetic in the same order, so a few elements' gradients equal the first of many's."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal(64)
    weights = rng.standard_normal(64)
    grads = []
    for size in (4, 64):
        x = tg.tensor(data[:size], dtype=dtype, requires_grad=True)
        (x**2 * 3 + x * x).backward(tg.tensor(weights[:size], dtype=dtype))
        grads.append(x.grad.numpy())
    np.testing.assert_array_equal(grads[0], grads[1][:4])


def test_a_sweep_that_stops_for_a_family_resumes_at_that_row():
    """Every family of both interpreters, met in one tape by a fresh process: each stop loads one
    family and resumes, and the values equal numpy's."""
    code = """
import json, numpy as np, tapegrad as tg
from tapegrad._kernels import backward, forward
a = np.linspace(-1, 1, 12).reshape(3, 4)
def f(x):
    y = (x @ x.t()).tanh() * 2          # matmul, generated, elementwise
    z = y.softmax(dim=1).clamp_min(0.1)  # normalization, grouped
    return (z.exp() + (x[:, :1] > 0).double()).sum()  # small generated, view, comparison
tape = tg.record(f, tg.tensor(a))
value, (grad,) = tape.value_and_grad(tg.tensor(a * 0.5))
x = tg.tensor(a * 0.5, requires_grad=True)
f(x).backward()
print(json.dumps({"value": float(value), "eager": float(f(tg.tensor(a * 0.5))),
                  "grad": grad.numpy().tolist(), "eager_grad": x.grad.numpy().tolist(),
                  "replay": forward.FAMILIES.loaded(), "backward": backward.FAMILIES.loaded()}))
"""
    result = json.loads(_fresh_process(code).stdout.splitlines()[-1])
    assert result["value"] == pytest.approx(result["eager"], rel=1e-12)
    np.testing.assert_allclose(result["grad"], result["eager_grad"], rtol=1e-12, atol=1e-14)
    assert len(result["replay"]) >= 5 and len(result["backward"]) >= 4


def test_the_first_compile_is_announced_and_a_cached_start_is_silent(tmp_path):
    code = "import tapegrad as tg\nx = tg.ones(3, requires_grad=True)\n(x * x).sum().backward()\nprint(x.grad)"
    first = _fresh_process(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert "tapegrad: compiling the backward interpreter (once per install" in first.stderr
    assert first.stdout.strip() == "tensor([2., 2., 2.])"
    again = _fresh_process(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert "compiling" not in again.stderr


def test_vmap_loads_the_families_a_fresh_process_lacks():
    """vmap's kernel reports a missing family of either sweep as a status, the backward's offset
    by GRADIENT_FAILED; a replay family numbered past that offset was once read as a failed
    backward ("the backward of slice 0 stopped with status 36")."""
    from tapegrad._kernels import backward, batched, forward

    assert forward.MISSING + len(forward.FAMILIES.addresses) < batched.GRADIENT_FAILED
    assert backward.MISSING + len(backward.FAMILIES.addresses) < batched.GRADIENT_FAILED
    code = """
import json, numpy as np, tapegrad as tg
from tapegrad.func import grad, vmap
x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
f = lambda w, x: (x * w).tanh().sum()
batched = vmap(grad(f), in_dims=(None, 0))(tg.ones(3), tg.tensor(x))
w = tg.ones(3, requires_grad=True)
f(w, tg.tensor(x[5])).backward()
print(json.dumps({"batched": batched.numpy()[5].tolist(), "eager": w.grad.numpy().tolist()}))
"""
    result = json.loads(_fresh_process(code).stdout.splitlines()[-1])
    np.testing.assert_allclose(result["batched"], result["eager"], rtol=1e-6)


def test_the_announcement_says_roughly_how_long(tmp_path):
    """One op's family compiles in a fraction of a second, a family of many rules in seconds:
    the announcing line says which, so that nobody waits for a minute that never comes."""
    code = "import tapegrad as tg\nx = tg.ones(64, requires_grad=True)\n(x.exp() * x).sum().backward()"
    lines = _fresh_process(code, NUMBA_CACHE_DIR=str(tmp_path)).stderr.splitlines()
    assert "tapegrad: compiling the backward exp (float32) kernels (once per install, under a second)..." in lines
    assert (
        "tapegrad: compiling the backward elementwise (float32) kernels (once per install, a few seconds)..." in lines
    )


def test_a_kernel_that_raises_stops_the_sweep_with_a_status_not_a_crash(monkeypatch):
    """A cfunc cannot pass an exception on: numba prints it and returns 0, which the sweep reports
    as KERNEL_FAILED at that row. Here the elementwise kernel of a large ``mul`` reads its saved
    operands at address 0 (as if the op had saved nothing)."""
    from tapegrad._kernels import backward
    from tapegrad._tape import resolve

    reported = []  # numba reports the exception through sys.unraisablehook
    monkeypatch.setattr(sys, "unraisablehook", lambda report: reported.append(str(report.exc_value)))
    x = tg.ones(64, requires_grad=True)
    y = x * x
    tape = resolve(y)
    rules, saves, paths = backward_arrays()
    rows = tape.rows_array()
    status, row, *_ = backward.backward_sweep(
        rows, tape.params_array(), tape.layouts_array(), np.zeros(8, np.int64), np.zeros(8, np.int64),
        np.zeros(len(rows), np.int64), rules, saves, paths, np.array([y._row]), np.ones(64),
        np.zeros(len(rows), np.bool_), np.zeros(len(rows), np.bool_), True,
    )  # fmt: skip
    assert status == backward.KERNEL_FAILED and row == y._row
    assert reported and "a kernel read a value no row saved" in reported[0]


def test_kernel_errors_name_the_op_and_the_kind():
    from tapegrad.autograd.engine import kernel_error

    failed = kernel_error(True, "backward", "mul")
    assert isinstance(failed, RuntimeError) and "backward kernel for mul failed" in str(failed)
    missing = kernel_error(False, "replay", "mul")
    assert isinstance(missing, NotImplementedError) and str(missing) == "no replay rule for mul"


def backward_arrays():
    from tapegrad._kernels import backward
    from tapegrad._ops import dispatch_arrays

    return dispatch_arrays(backward.RULES)
