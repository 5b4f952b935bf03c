"""The vectorizable functions of tapegrad/_kernels/vmath.py beside numpy's and libm's.

    python -m benchmarks.vmath

At 10^5 elements, float32 and float64, in one process, interleaved: nanoseconds per element of a
jitted loop calling vmath with 512-bit vectors as the kernels' loops (``config.wide_vectors``; for
sin and cos, the kernels' own loop: blocks of 512 by ``sin_moderate``/``cos_moderate`` when every
|x| is moderate), of numpy's ufunc (scipy.special's for erf and erfc; for softplus
numpy's logaddexp(0, x) with PyTorch's threshold), and of a jitted loop
calling numba's np.exp/np.log/.../math.erf (scalar libm, what the kernels used before); and the
largest error of vmath and of numpy against a higher-precision reference over the inputs
(uniform in [-20, 20]; [0, 20] for log, [-1, 20] for log1p, [-6, 6] for erf, [-4, 10] for
erfc). The whole-range errors are tests/test_vmath.py's.
"""

from __future__ import annotations

import math
import statistics
import time

import numba
import numpy as np
import scipy.special

from tapegrad import _ops
from tapegrad._kernels import generated, vmath
from tapegrad._kernels.config import wide_vectors


def _loop(function, wide: bool = False):
    """A jitted loop of ``function``; ``wide``: with 512-bit vectors, as the kernels' loops."""
    if wide:

        def apply(x, out):
            wide_vectors()
            for i in range(x.shape[0]):
                out[i] = function(x[i])

    else:

        def apply(x, out):
            for i in range(x.shape[0]):
                out[i] = function(x[i])

    return numba.njit(error_model="numpy")(apply)


def _erf_libm(x):
    return math.erf(x)


def _erfc_libm(x):
    return math.erfc(x)


def _softplus_libm(x):
    # what the replay ran before vmath.softplus: numpy's logaddexp(0, x) with libm's exp and log1p
    if x > 20.0:
        return x
    return x + np.log1p(np.exp(-x)) if x > 0 else np.log1p(np.exp(x))


# name: (vmath loop, libm loop, numpy function, input range)
FUNCTIONS = {
    "exp": (_loop(vmath.exp, wide=True), _loop(np.exp), np.exp, (-20, 20)),
    "tanh": (_loop(vmath.tanh, wide=True), _loop(np.tanh), np.tanh, (-20, 20)),
    "log": (_loop(vmath.log, wide=True), _loop(np.log), np.log, (0, 20)),
    "log1p": (_loop(vmath.log1p, wide=True), _loop(np.log1p), np.log1p, (-1, 20)),
    "expm1": (_loop(vmath.expm1, wide=True), _loop(np.expm1), np.expm1, (-20, 20)),
    # sin and cos as the kernels run them: blocks by the moderate form, or the table's
    "sin": (generated._sin_values, _loop(np.sin), np.sin, (-20, 20)),
    "cos": (generated._cos_values, _loop(np.cos), np.cos, (-20, 20)),
    "erf": (_loop(vmath.erf, wide=True), _loop(numba.njit(_erf_libm)), scipy.special.erf, (-6, 6)),
    "erfc": (_loop(vmath.erfc, wide=True), _loop(numba.njit(_erfc_libm)), scipy.special.erfc, (-4, 10)),
    "softplus": (_loop(vmath.softplus, wide=True), _loop(numba.njit(_softplus_libm)), _ops._softplus, (-20, 20)),
}


def _seconds(call, *args, repeats: int = 15, number: int = 20) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            call(*args)
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def _exact(name: str, x: np.ndarray) -> np.ndarray:
    if x.dtype == np.float32:
        return FUNCTIONS[name][2](x.astype(np.float64))
    if name in ("erf", "erfc"):
        import mpmath

        mpmath.mp.prec = 80
        function = getattr(mpmath, name)
        return np.array([function(mpmath.mpf(float(v))) for v in x[:20_000]], np.longdouble)
    return FUNCTIONS[name][2](x.astype(np.longdouble))


def _max_ulp(got: np.ndarray, exact: np.ndarray, dtype) -> float:
    got = got[: len(exact)]
    spacing = np.spacing(np.abs(exact.astype(dtype))).astype(exact.dtype)
    return float(np.max(np.abs(got.astype(exact.dtype) - exact) / spacing))


def main() -> None:
    rng = np.random.default_rng(0)
    print(
        f"{'function':<9} {'dtype':<8} {'vmath ns':>9} {'numpy ns':>9} {'libm ns':>8} {'vmath/numpy':>12}"
        f" {'ulp vmath':>10} {'ulp numpy':>10}"
    )
    for dtype in (np.float32, np.float64):
        for name, (ours, libm, ufunc, (low, high)) in FUNCTIONS.items():
            x = rng.uniform(low, high, 100_000).astype(dtype)
            out = np.empty_like(x)
            ours(x, out)
            libm(x, out)
            with np.errstate(divide="ignore"):
                exact = _exact(name, x)
                error_ours = _max_ulp(_value(ours, x), exact, dtype)
                error_numpy = _max_ulp(ufunc(x).astype(dtype), exact, dtype)
            with np.errstate(divide="ignore"):
                t_ours = _seconds(ours, x, out)
                t_numpy = _seconds(ufunc, x)
                t_libm = _seconds(libm, x, out)
            n = len(x) / 1e9
            print(
                f"{name:<9} {np.dtype(dtype).name:<8} {t_ours / n:>9.2f} {t_numpy / n:>9.2f} {t_libm / n:>8.2f}"
                f" {t_ours / t_numpy:>11.2f}x {error_ours:>10.2f} {error_numpy:>10.2f}",
                flush=True,
            )


def _value(loop, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    loop(x, out)
    return out


if __name__ == "__main__":
    main()
