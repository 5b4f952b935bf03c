"""The vectorizable exp and tanh of tapegrad/_kernels/vmath.py beside numpy's and libm's.

    python -m benchmarks.vmath

At 10^5 elements, float32 and float64, in one process, interleaved: time per call of a jitted
loop calling vmath, of numpy's ufunc, and of a jitted loop calling numba's np.exp/np.tanh
(scalar libm, what the kernels used before); and the largest error of each against a
higher-precision reference over the inputs (uniform in [-20, 20]).
"""

from __future__ import annotations

import statistics
import time

import numba
import numpy as np

from tapegrad._kernels import vmath


def _loop(function):
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = function(x[i])

    return numba.njit(error_model="numpy")(apply)


FUNCTIONS = {
    "exp": (_loop(vmath.exp), _loop(np.exp), np.exp),
    "tanh": (_loop(vmath.tanh), _loop(np.tanh), np.tanh),
}


def _seconds(call, *args, repeats: int = 15, number: int = 20) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            call(*args)
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def _max_ulp(got: np.ndarray, exact: np.ndarray, dtype) -> float:
    spacing = np.spacing(np.abs(exact.astype(dtype))).astype(exact.dtype)
    return float(np.max(np.abs(got.astype(exact.dtype) - exact) / spacing))


def main() -> None:
    rng = np.random.default_rng(0)
    print(
        f"{'function':<14} {'vmath us':>9} {'numpy us':>9} {'libm us':>8} {'vmath/numpy':>12} {'ulp vmath':>10} {'ulp numpy':>10}"
    )
    for dtype in (np.float32, np.float64):
        x = rng.uniform(-20, 20, 100_000).astype(dtype)
        out = np.empty_like(x)
        reference = np.float64 if dtype == np.float32 else np.longdouble
        for name, (ours, libm, ufunc) in FUNCTIONS.items():
            ours(x, out)
            libm(x, out)
            exact = ufunc(x.astype(reference))
            error_ours = _max_ulp(_value(ours, x), exact, dtype)
            error_numpy = _max_ulp(ufunc(x), exact, dtype)
            t_ours = _seconds(ours, x, out)
            t_numpy = _seconds(ufunc, x)
            t_libm = _seconds(libm, x, out)
            print(
                f"{name + ' ' + np.dtype(dtype).name:<14} {t_ours * 1e6:>9.1f} {t_numpy * 1e6:>9.1f} {t_libm * 1e6:>8.1f}"
                f" {t_ours / t_numpy:>11.2f}x {error_ours:>10.2f} {error_numpy:>10.2f}"
            )


def _value(loop, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    loop(x, out)
    return out


if __name__ == "__main__":
    main()
