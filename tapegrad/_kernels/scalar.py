"""Scalar helpers that the generated elementwise kernels call where numpy's semantics need a
branch (``expressions.FUNCTIONS`` names them as ``scalar.<name>``). Inlined into the loops."""

from __future__ import annotations

import math

import numpy as np

from .config import inline


@inline
def relu(v):
    """np.maximum(v, 0): NaN stays NaN, -0.0 becomes 0."""
    return v if v > 0 or v != v else type(v)(0)


@inline
def sign(v):
    """np.sign(v), with 0 for NaN as PyTorch's sign (and the sgn in abs's gradient) gives it."""
    return type(v)(0) if v != v else np.sign(v)


@inline
def gate(c, v):
    """v where c > 0 or c is NaN, else 0 (PyTorch's threshold_backward: a select, so an infinite
    or NaN gradient where c <= 0 gives 0, not NaN)."""
    return type(v)(0) if c <= 0 else v


# -- the gamma function's logarithm and derivatives, the inverse error function ---------------
# Computed in float64 for both dtypes (a float32 result is that, rounded once); PyTorch's edge
# values: poles, infinities and NaN as its CPU kernels give them.


@inline
def digamma(v):
    """psi(v) = d/dv lgamma(v): -inf at +0 and +inf at -0, NaN at the negative integers (the
    poles) and at -inf. Reflection below 0 (psi(1 - x) - pi / tan(pi x)), the recurrence
    psi(x) = psi(x + 1) - 1 / x up to 10, then the asymptotic series in 1/x^2 (terms of the
    Bernoulli numbers B_2k / 2k, through B_14: below 1e-16 relative from 10 on)."""
    x = np.float64(v)
    if x == 0.0:
        return type(v)(math.copysign(np.inf, -x))
    result = np.float64(0.0)
    if x < 0.0:
        if x == math.floor(x):
            return type(v)(np.nan)
        result = -math.pi / math.tan(math.pi * (x - np.trunc(x)))  # (period 1; exact, -1e-300 kept)
        x = 1.0 - x
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    z = 1.0 / (x * x)
    series = z * (1 / 12 - z * (1 / 120 - z * (1 / 252 - z * (1 / 240 - z * (1 / 132 - z * (691 / 32760 - z / 12))))))
    return type(v)(result + math.log(x) - 0.5 / x - series)


@inline
def trigamma(v):
    """psi'(v) (PyTorch's polygamma(1, v)): +inf at 0 and the negative integers (the poles,
    where PyTorch's sin(pi x) rounds to 1e-16 and gives 6.6e32 at -1). Reflection below 1/2, the
    recurrence psi'(x) = psi'(x + 1) + 1 / x^2 up to 10, then the asymptotic series
    1/x + 1/(2x^2) + sum B_2k / x^(2k+1) through B_14. The reflection's sin takes the fraction
    of x (sin^2 has period 1): of x itself it lost digits as |x| grew (1e-8 at -4e5, PyTorch's)."""
    x = np.float64(v)
    sign = 1.0
    result = np.float64(0.0)
    if x < 0.5:  # psi'(x) = pi^2 / sin^2(pi x) - psi'(1 - x)
        s = math.sin(math.pi * (x - np.trunc(x)))
        result = -(math.pi * math.pi) / (s * s)
        sign = -1.0
        x = 1.0 - x
    while x < 10.0:
        result += 1.0 / (x * x)
        x += 1.0
    z = 1.0 / (x * x)
    tail = (
        1.0
        + 0.5 / x
        + z * (1 / 6 - z * (1 / 30 - z * (1 / 42 - z * (1 / 30 - z * (5 / 66 - z * (691 / 2730 - z * 7 / 6))))))
    )
    return type(v)(sign * (result + tail / x))


@inline
def tetragamma(v):
    """psi''(v) (polygamma(2, v)), the gradient of ``trigamma``: reflection below 1/2
    (psi''(x) = psi''(1 - x) - 2 pi^3 cos(pi x) / sin^3(pi x)), the recurrence
    psi''(x) = psi''(x + 1) - 2 / x^3 up to 16, then the derivative of trigamma's series."""
    x = np.float64(v)
    result = np.float64(0.0)
    if x < 0.5:  # (cos / sin^3 has period 1 in x too: the fraction, as in trigamma)
        fraction = x - np.trunc(x)
        s = math.sin(math.pi * fraction)
        result = -2.0 * math.pi * math.pi * math.pi * math.cos(math.pi * fraction) / (s * s * s)
        x = 1.0 - x
    while x < 16.0:  # (from 10 its series' last term left 1.6e-13 relative)
        result -= 2.0 / (x * x * x)
        x += 1.0
    z = 1.0 / (x * x)
    tail = 1.0 + 1.0 / x + z * (0.5 - z * (1 / 6 - z * (1 / 6 - z * (3 / 10 - z * (5 / 6 - z * 691 / 210)))))
    return type(v)(result - z * tail)


@inline
def erfinv(v):
    """The inverse of erf on [-1, 1]: +-inf at +-1, NaN outside and at NaN, the sign of a zero
    kept. Winitzki's closed form (relative error about 2e-3) refined by three Halley steps on
    erf(x) = |v| (cubic convergence: far below float64's rounding), the residual taken from erfc
    beyond 1/2, where 1 - |v| is exact and erf's own rounding would hide the tail."""
    y = np.float64(v)
    a = abs(y)
    if not a < 1.0:  # (NaN too)
        if a == 1.0:
            return type(v)(math.copysign(np.inf, y))
        return type(v)(np.nan)
    if a == 0.0:
        return v
    log_term = math.log((1.0 - a) * (1.0 + a))
    t = 2.0 / (math.pi * 0.147) + 0.5 * log_term
    x = math.sqrt(math.sqrt(t * t - log_term / 0.147) - t)
    for _ in range(3):
        residual = math.erf(x) - a if a <= 0.5 else (1.0 - a) - math.erfc(x)
        slope = 1.1283791670955126 * math.exp(-x * x)  # 2 / sqrt(pi) e^(-x^2)
        x -= residual / (slope + x * residual)  # Halley's step: f'' = -2 x f'
    return type(v)(math.copysign(x, y))
