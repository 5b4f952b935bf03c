"""The vectorizable functions of tapegrad/_kernels/vmath.py against a higher-precision reference
over the whole float range, and on the values numpy (scipy for erf) gives special answers for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numba
import numpy as np
import pytest
import scipy.special

from tapegrad import _ops
from tapegrad._kernels import vmath

# numba's pedantic SSA check flags vmath.tanh's ternaries once inlined (see families._compile)
pytestmark = pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaIRAssumptionWarning")

# Largest error, in units in the last place of the correctly rounded result: the bounds sit just
# above what these inputs measure (float32 / float64), or, where a search found worse (HARDEST
# below), above that: exp 1.00 / 0.85, tanh 1.48 / 1.30, log 0.83 / 0.80, log1p 0.87 / 0.78,
# expm1 1.36 / 0.89, sin 1.16 / 0.77, cos 1.11 / 0.74, erf 1.94 /
# 1.00 (float32: every float in [2**-10, 4) searched, the worst at 0.92117566, where the two
# polynomials meet; float64: at tiny x, fdlibm's), erfc 3.92 / 2.00 (float32: every float in
# [2**-12, 10.1) and (-4, -2**-12] searched, the worst at 7.2298427, exp's ulp and the
# products'; float64: fdlibm's two exps in its tail), softplus 1.55 / 1.58 (exp's error and
# log1p's, on these inputs only). numpy's own are about 0.5-2 ulp. The
# issue's limits: 2 (float32), 1 (float64); tanh float64 and erfc are over them.
BOUNDS = {
    ("exp", np.float32): 1.01, ("exp", np.float64): 1.0,
    ("tanh", np.float32): 1.5, ("tanh", np.float64): 1.5,
    ("log", np.float32): 0.83, ("log", np.float64): 0.8,
    ("log1p", np.float32): 0.87, ("log1p", np.float64): 0.8,
    ("expm1", np.float32): 1.4, ("expm1", np.float64): 0.89,
    ("sin", np.float32): 1.2, ("sin", np.float64): 0.8,
    ("cos", np.float32): 1.2, ("cos", np.float64): 0.8,
    ("erf", np.float32): 1.95, ("erf", np.float64): 1.01,
    ("erfc", np.float32): 3.92, ("erfc", np.float64): 2.0,
    ("softplus", np.float32): 1.6, ("softplus", np.float64): 1.6,
}  # fmt: skip
FUNCTIONS = {
    "exp": (vmath.exp, np.exp),
    "tanh": (vmath.tanh, np.tanh),
    "log": (vmath.log, np.log),
    "log1p": (vmath.log1p, np.log1p),
    "expm1": (vmath.expm1, np.expm1),
    "sin": (vmath.sin, np.sin),
    "cos": (vmath.cos, np.cos),
    "erf": (vmath.erf, scipy.special.erf),
    "erfc": (vmath.erfc, scipy.special.erfc),
    "softplus": (vmath.softplus, _ops._softplus),  # numpy's, PyTorch's threshold
}
# The dense sweeps: where results are neither 0, 1, -1 nor inf, and (sin, cos) the range of the
# fast reduction, then a sweep near 0.
# The worst inputs found beyond the random ones: every float32 for log and log1p (0.827 and 0.868
# ulp), and expm1 near its switch from n = 0 to n = 1 at 0.4435 (0.887 ulp).
HARDEST = {
    ("log", np.float32): [1.413642],
    ("log1p", np.float32): [-0.2931148, 0.4140421],
    ("expm1", np.float64): [0.4003168338487537],
    ("erf", np.float32): [0.92117566, 0.47607782],
    ("erfc", np.float32): [7.2298427, 5.9806304, 1.5344168],
}
DENSE = {
    "exp": ((-105, 89), (-750, 710)),
    "tanh": ((-105, 89), (-750, 710)),
    "log": ((0, 10), (0, 10)),
    "log1p": ((-1, 10), (-1, 10)),
    "expm1": ((-20, 89), (-40, 710)),
    "sin": ((-1e6, 1e6), (-1.6e6, 1.6e6)),
    "cos": ((-1e6, 1e6), (-1.6e6, 1.6e6)),
    "erf": ((-6, 6), (-6, 6)),
    "erfc": ((-4, 11), (-6, 28)),
    "softplus": ((-105, 30), (-750, 40)),
}


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


def _inputs(name: str, dtype, rng, size: int = 200_000) -> np.ndarray:
    """Random bit patterns (every binade, both signs) and dense sweeps of the interesting range."""
    bits = np.uint32 if dtype == np.float32 else np.uint64
    every = rng.integers(0, np.iinfo(bits).max, size=size, dtype=bits, endpoint=True).view(dtype)
    every = every[np.isfinite(every)]
    low, high = DENSE[name][dtype == np.float64]
    dense = rng.uniform(low, high, size)
    near_zero = rng.uniform(-3, 3, size // 2)
    return np.concatenate([every, dense.astype(dtype), near_zero.astype(dtype)])


def _reference(name: str, x: np.ndarray) -> np.ndarray:
    """float64 for float32; long double for float64 (mpmath for erf, on fewer points)."""
    if x.dtype == np.float32:
        return FUNCTIONS[name][1](x.astype(np.float64))
    if name in ("erf", "erfc"):
        import mpmath

        mpmath.mp.prec = 80
        function = getattr(mpmath, name)
        # erfc past 30 and below -30 is 0 and 2 to long double (and past 1e300 mpmath's result
        # does not convert)
        values = [function(mpmath.mpf(float(v))) if abs(v) < 30 else function(mpmath.mpf(30.0 * np.sign(v))) for v in x]
        return np.array(values, np.longdouble)
    return FUNCTIONS[name][1](x.astype(np.longdouble))


def max_ulp(name: str, x: np.ndarray, got: np.ndarray) -> tuple:
    """(largest error in ulp, mask of inputs whose exact result rounds to a finite nonzero value)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        exact = _reference(name, x)
        rounded = exact.astype(x.dtype)
    finite = np.isfinite(rounded) & (rounded != 0)
    spacing = np.spacing(np.abs(rounded[finite])).astype(exact.dtype)
    error = np.abs(got[finite].astype(exact.dtype) - exact[finite]) / spacing
    return float(error.max()), finite, rounded


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_error_over_the_whole_range_is_within_its_bound(name, dtype):
    if dtype == np.float64 and np.finfo(np.longdouble).nmant < 60:
        pytest.skip("no extended precision on this platform for a float64 reference")
    rng = np.random.default_rng(0)
    x = _inputs(name, dtype, rng, 20_000 if (name, dtype) in (("erf", np.float64), ("erfc", np.float64)) else 200_000)
    x = np.concatenate([x, np.array(HARDEST.get((name, dtype), []), dtype)])
    got = _apply(name, x)
    error, finite, rounded = max_ulp(name, x, got)
    assert error <= BOUNDS[(name, dtype)], f"max error {error:.3f} ulp"
    # where the exact result rounds to 0, inf or NaN, so does ours (no spurious finite values)
    np.testing.assert_array_equal(got[~finite], rounded[~finite])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_special_values_are_numpys(name, dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    normal = np.finfo(dtype).smallest_normal
    # past the ends: exp overflows to inf and underflows to 0 (89 and -104 do in float32)
    ends = [710.0, -746.0] + ([89.0, -104.0] if dtype == np.float32 else [])
    denormal = 5e-39 if dtype == np.float32 else 1e-310
    ends += [-1.0, -2.0, float(np.finfo(dtype).max), normal, -normal, 3 * tiny, denormal]
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, tiny, -tiny, 1e-30, -1e-30, *ends], dtype)
    got = _apply(name, x)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        expected = FUNCTIONS[name][1](x)
    special = ~np.isfinite(expected) | (np.abs(expected) <= np.finfo(dtype).smallest_normal) | (np.abs(expected) == 1)
    np.testing.assert_array_equal(got[special], expected[special])
    np.testing.assert_array_max_ulp(got[~special], expected[~special], maxulp=1)  # ordinary values
    number = ~np.isnan(expected)
    np.testing.assert_array_equal(np.signbit(got[number]), np.signbit(expected[number]))  # -0.0 stays -0.0


def test_the_python_forms_agree_with_the_compiled_ones():
    """With NUMBA_DISABLE_JIT the same bodies run on numpy scalars (CI runs the kernel tests that
    way): a few points of each, in such an interpreter, against the compiled loop, to 1 ulp."""
    points = [-90.0, -3.5, -0.3, -0.0, 0.0, 0.7, 12.0, 700.0, 3e8, 1e20]
    code = (
        "import json, numpy as np\nfrom tapegrad._kernels import vmath\n"
        f"points = {points!r}\n"
        "print(json.dumps({name: [[float(getattr(vmath, name)(t(v))) for v in points] for t in (np.float32, np.float64)]"
        f" for name in {tuple(FUNCTIONS)!r}}}))"
    )
    environment = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    output = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    python = json.loads(output.stdout)
    for name in FUNCTIONS:
        for index, dtype in enumerate((np.float32, np.float64)):
            with np.errstate(over="ignore", invalid="ignore"):
                compiled = _apply(name, np.array(points, dtype))
            interpreted = np.array(python[name][index], dtype)
            # the compiled forms contract a * b + c into one FMA (one rounding, not two)
            finite = np.isfinite(compiled)
            np.testing.assert_array_equal(interpreted[~finite], compiled[~finite])
            np.testing.assert_array_max_ulp(interpreted[finite], compiled[finite], maxulp=1)


MODERATE = {"sin": (vmath.sin_moderate, np.sin), "cos": (vmath.cos_moderate, np.cos)}
_MODERATE_LOOPS = {name: _loop(function) for name, (function, _) in MODERATE.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(MODERATE))
def test_moderate_sin_and_cos_are_within_their_bound_below_the_limit(name, dtype):
    """The table-free forms the kernels run on blocks of moderate arguments (below 2**16 for
    float32, 2**20 * pi/2 for float64): within the whole range's bounds (float32's reduction,
    in float32, carries its rounding error into the kernels); -0.0, denormals and tiny values
    as numpy gives them."""
    if dtype == np.float64 and np.finfo(np.longdouble).nmant < 60:
        pytest.skip("no extended precision on this platform for a float64 reference")
    limit = float(vmath.MODERATE32) if dtype == np.float32 else vmath._TRIG_LIMIT64
    x = _inputs(name, dtype, np.random.default_rng(1))
    # and the floats nearest to multiples of pi/2 with their neighbours, where the reduced argument
    # cancels most (a pi/2 good to float64 alone gave 1,152 ulp at 52516.434), and the worst
    # cases an exhaustive float32 search found
    multiples = (np.arange(1, int(limit / (np.pi / 2))) * (np.pi / 2)).astype(dtype)
    hardest = np.array([60.48955, 8013.4287, 52516.434, 4476.7695], dtype)
    x = np.concatenate([x, multiples, np.nextafter(multiples, 0), np.nextafter(multiples, np.inf), hardest])
    x = x[np.abs(x) < limit]
    got = np.empty_like(x)
    _MODERATE_LOOPS[name](x, got)
    error, _, _ = max_ulp(name, x, got)
    assert error <= BOUNDS[(name, dtype)], f"max error {error:.3f} ulp"
    tiny = np.finfo(dtype).smallest_subnormal
    special = np.array([0.0, -0.0, tiny, -tiny, 1e-30, -1e-30, np.finfo(dtype).smallest_normal], dtype)
    got = np.empty_like(special)
    _MODERATE_LOOPS[name](special, got)
    np.testing.assert_array_equal(got, MODERATE[name][1](special))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(MODERATE[name][1](special)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_moderate_says_whether_every_value_is_inside_the_limit(dtype):
    limit = float(vmath.MODERATE32) if dtype == np.float32 else vmath._TRIG_LIMIT64
    check = numba.njit(lambda x: vmath.moderate(x))
    inside = np.linspace(-limit * 0.999, limit * 0.999, 1000).astype(dtype)
    assert check(inside) and check(inside[:0])
    for bad in (limit * 1.001, -limit * 1.001, np.inf, -np.inf, np.nan):
        assert not check(np.append(inside, dtype(bad)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(MODERATE))
def test_a_block_with_a_large_argument_takes_the_table(name, dtype):
    """The replay of sin/cos and of their gradients runs blocks of 512 by the moderate form,
    a block holding a large |x|, an inf or a NaN by the table's: each element as the scalar
    function gives it, NaN where numpy's is."""
    import tapegrad as tg

    x = np.random.default_rng(2).uniform(-4, 4, 2000).astype(dtype)
    x[700], x[1300], x[1900] = 3e7, np.inf, np.nan  # blocks 1, 2 and 3; block 0 is moderate
    tape = tg.record(lambda v: getattr(v, name)(), x)
    got = tape(x).numpy()
    scalar = _apply(name, x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(MODERATE[name][1](x)))
    finite = ~np.isnan(got)
    np.testing.assert_array_max_ulp(got[finite], scalar[finite], maxulp=2)
    np.testing.assert_array_max_ulp(got[finite], MODERATE[name][1](x)[finite].astype(dtype), maxulp=2)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="an LLVM function attribute")
def test_wide_vectors_marks_the_function_and_keeps_its_bits():
    """``config.wide_vectors()`` puts ``"prefer-vector-width"="512"`` on the function that calls
    it (the generated kernels call it), and its loops give the bits LLVM's default width gives."""
    from tapegrad._kernels.config import wide_vectors

    def narrow(x, out):
        for i in range(x.shape[0]):
            out[i] = vmath.exp(x[i])

    def wide(x, out):
        wide_vectors()
        for i in range(x.shape[0]):
            out[i] = vmath.exp(x[i])

    x = np.random.default_rng(3).uniform(-80, 80, 10_001).astype(np.float32)
    results = []
    for function in (narrow, wide):
        compiled = numba.njit(error_model="numpy")(function)
        out = np.empty_like(x)
        compiled(x, out)
        results.append(out)
        ir = "".join(compiled.inspect_llvm().values())
        assert ('"prefer-vector-width"="512"' in ir) == (function is wide)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_grad_shares_erfcs_exp_within_the_argument_rounding(dtype):
    """gelu's derivative, Phi(x) + x * phi(x), with one exp for both terms: against mpmath, the
    error relative to the terms' size (the sum cancels near -0.75) stays within what rounding
    x / sqrt(2) to the dtype costs exp(-x*x / 2) (about x*x * eps: 1e-5 for float32 at -12);
    0 gives 0.5, NaN and infinities NaN (as the formula, x * exp(-x*x / 2), gives at inf)."""
    import mpmath

    mpmath.mp.dps = 30
    x = np.concatenate([np.linspace(-14, 14, 1201), np.random.default_rng(2).uniform(-3, 3, 400)]).astype(dtype)
    loop = _loop(vmath.gelu_grad)
    got = np.empty_like(x)
    loop(x, got)
    exact = np.array([float(mpmath.ncdf(v) + v * mpmath.npdf(v)) for v in map(mpmath.mpf, x.tolist())])
    size = np.array([float(mpmath.ncdf(v) + abs(v) * mpmath.npdf(v)) for v in map(mpmath.mpf, x.tolist())])
    eps = float(np.finfo(dtype).eps)
    bound = (4 + x.astype(np.float64) ** 2) * eps
    # (and a few of the smallest subnormals where the result is one: the products round there)
    assert np.all(np.abs(got - exact) <= bound * size + 16 * np.finfo(dtype).smallest_subnormal)
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    out = np.empty_like(special)
    loop(special, out)
    np.testing.assert_array_equal(out, [np.nan, np.nan, np.nan, 0.5, 0.5])


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="machine code")
def test_exp_is_the_same_with_and_without_avx512s_ldexp():
    """float32 exp scales by 2**n with one ``vscalefps`` where the target has AVX-512
    (``vmath._has_scalef``) and builds 2**n from its bits elsewhere, where LLVM would make
    ``llvm.ldexp`` a libm call per element. Both forms, the second compiled for an AVX2 CPU in
    a fresh process, give the same values to 1 ulp, and the same infinities and NaN."""
    from numba.core.registry import cpu_target

    x = np.concatenate(
        [
            np.array(
                [np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72283, 88.7229, 89.0, -87.0, -100.0, -103.9, -104.0], np.float32
            ),
            np.random.default_rng(5).uniform(-105, 90, 20_000).astype(np.float32),
        ]
    )
    code = (
        "import json, sys, numpy as np, numba\nfrom tapegrad._kernels import vmath\n"
        "def apply(x, out):\n    for i in range(x.shape[0]):\n        out[i] = vmath.exp(x[i])\n"
        "loop = numba.njit(error_model='numpy')(apply)\n"
        "x = np.frombuffer(bytes.fromhex(sys.stdin.read()), np.float32)\nout = np.empty_like(x)\nloop(x, out)\n"
        "asm = loop.inspect_asm(loop.signatures[0])\n"
        "print(json.dumps({'scalef': 'vscalef' in asm, 'ldexp': 'ldexp' in asm, 'out': out.tobytes().hex()}))"
    )
    avx2 = {
        "NUMBA_CPU_NAME": "haswell",
        "NUMBA_CPU_FEATURES": "+avx,+avx2,+fma,+sse4.2,+popcnt,+bmi2",
        "TAPEGRAD_SHIPPED_KERNELS": "0",
    }
    with tempfile.TemporaryDirectory() as cache:
        environment = {**os.environ, **avx2, "NUMBA_CACHE_DIR": cache}
        result = subprocess.run(
            [sys.executable, "-c", code],
            input=x.tobytes().hex(),
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
    other = json.loads(result.stdout)
    assert not other["scalef"] and not other["ldexp"]  # 2**n from bits: no instruction, no call
    here = _apply("exp", x)
    loop = _LOOPS["exp"]
    assert ("vscalef" in loop.inspect_asm(loop.signatures[0])) == vmath._target_has_scalef(
        cpu_target.target_context.codegen()
    )
    bits = np.frombuffer(bytes.fromhex(other["out"]), np.float32)
    finite = np.isfinite(here)
    np.testing.assert_array_equal(bits[~finite], here[~finite])
    # (1 ulp of a denormal: below -103.28 the bits' form flushes to 0 where numpy's gives 2**-149)
    np.testing.assert_array_max_ulp(bits[finite], here[finite], maxulp=1)
