"""The vectorizable exp and tanh of tapegrad/_kernels/vmath.py against a higher-precision
reference over the whole float range, and on the values numpy gives special answers for."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from tapegrad._kernels import vmath

# numba's pedantic SSA check flags vmath.tanh's ternaries once inlined (see families._compile)
pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaIRAssumptionWarning")

# Largest error, in units in the last place of the correctly rounded result (measured: exp
# 0.94 / 0.86, tanh 1.25 / 1.22 for float32 / float64). numpy's own are about 0.5-1 ulp.
BOUNDS = {("exp", np.float32): 1.0, ("exp", np.float64): 1.0, ("tanh", np.float32): 2.0, ("tanh", np.float64): 1.5}
FUNCTIONS = {"exp": (vmath.exp, np.exp), "tanh": (vmath.tanh, np.tanh)}


def _loop(function):
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = function(x[i])

    return numba.njit(error_model="numpy")(apply)


_LOOPS = {name: _loop(function) for name, (function, _) in FUNCTIONS.items()}


def _apply(name: str, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    _LOOPS[name](x, out)
    return out


def _inputs(dtype, rng) -> np.ndarray:
    """Random bit patterns (every binade, both signs) and a dense sweep where results are neither
    0, 1 nor inf."""
    bits = np.uint32 if dtype == np.float32 else np.uint64
    every = rng.integers(0, np.iinfo(bits).max, size=200_000, dtype=bits, endpoint=True).view(dtype)
    every = every[np.isfinite(every)]
    dense = rng.uniform(-750 if dtype == np.float64 else -105, 710 if dtype == np.float64 else 89, 200_000)
    near_zero = rng.uniform(-3, 3, 100_000)
    return np.concatenate([every, dense.astype(dtype), near_zero.astype(dtype)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["exp", "tanh"])
def test_error_over_the_whole_range_is_within_its_bound(name, dtype):
    x = _inputs(dtype, np.random.default_rng(0))
    got = _apply(name, x)
    reference_type = np.float64 if dtype == np.float32 else np.longdouble
    if reference_type is np.longdouble and np.finfo(np.longdouble).nmant < 60:
        pytest.skip("no extended precision on this platform for a float64 reference")
    with np.errstate(over="ignore", under="ignore"):
        exact = FUNCTIONS[name][1](x.astype(reference_type))
    with np.errstate(over="ignore"):
        rounded = exact.astype(dtype)
    finite = np.isfinite(rounded) & (rounded != 0)
    spacing = np.spacing(np.abs(rounded[finite])).astype(reference_type)
    error = np.abs(got[finite].astype(reference_type) - exact[finite]) / spacing
    assert float(error.max()) <= BOUNDS[(name, dtype)], f"max error {float(error.max()):.3f} ulp"
    # where the exact result rounds to 0 or inf, so does ours (no spurious finite values)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(rounded)], rounded[~finite & ~np.isnan(rounded)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["exp", "tanh"])
def test_special_values_are_numpys(name, dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    # past the ends: exp overflows to inf and underflows to 0 (89 and -104 do in float32)
    ends = [710.0, -746.0] + ([89.0, -104.0] if dtype == np.float32 else [])
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, tiny, -tiny, 1e-30, -1e-30, *ends], dtype)
    got = _apply(name, x)
    with np.errstate(over="ignore", under="ignore"):
        expected = FUNCTIONS[name][1](x)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))  # -0.0 stays -0.0


def test_the_python_forms_agree_with_the_compiled_ones():
    """With NUMBA_DISABLE_JIT the same bodies run on numpy scalars (CI runs the kernel tests that
    way): a few points of each, in such an interpreter, against the compiled loop."""
    points = [-90.0, -3.5, -0.3, -0.0, 0.0, 0.7, 12.0, 700.0]
    code = (
        "import json, numpy as np\nfrom tapegrad._kernels import vmath\n"
        f"points = {points!r}\n"
        "print(json.dumps({name: [[float(getattr(vmath, name)(t(v))) for v in points] for t in (np.float32, np.float64)]"
        " for name in ('exp', 'tanh')}))"
    )
    environment = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    output = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    python = json.loads(output.stdout)
    for name in FUNCTIONS:
        for index, dtype in enumerate((np.float32, np.float64)):
            with np.errstate(over="ignore"):
                compiled = _apply(name, np.array(points, dtype))
            np.testing.assert_array_equal(np.array(python[name][index], dtype), compiled)
