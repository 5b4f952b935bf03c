"""Transcendental functions that LLVM vectorizes: ``exp`` and ``tanh`` for float32 and float64.

llvmlite from PyPI has no SVML, so a jitted loop calling ``np.exp`` or ``np.tanh`` makes a scalar
libm call per element (4-19 ns) where numpy's SIMD loops take 0.3-1.6 ns. These are written as
straight-line arithmetic (fdlibm's exp for float64; Cephes' expf, tanh and tanhf, Moshier
1984-1992), so that in a loop LLVM turns them into vector code: no libm calls, no branches it
cannot turn into selects. ``2**n`` is built from its bits, in two factors so that results near
the overflow and denormal ends stay exact.

Errors against a float64/long-double reference, measured by tests/test_vmath.py over the whole
float range: exp 0.94 ulp (float32) and 0.86 ulp (float64), tanh 1.25 and 1.22 ulp; numpy's own
are 0.7-2.2. NaN, infinities, -0.0, overflow to inf and underflow through denormals to 0 are
numpy's. ``expressions.FUNCTIONS`` maps the formula language's ``exp`` and ``tanh`` (and so
``sigmoid``) here. ``python -m benchmarks.vmath`` times them against numpy and libm.

With ``NUMBA_DISABLE_JIT=1`` the same bodies run as Python on numpy scalars.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.core.extending import intrinsic, overload

from .config import inline, jit

# -- 2**n from its bits --------------------------------------------------------------------


@intrinsic
def _bits_to_float(typingctx, bits):
    """The float whose IEEE bits are ``bits`` (int64 -> float64, int32 -> float32)."""
    target = {types.int64: types.float64, types.int32: types.float32}.get(bits)
    if target is None:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(target))

    return target(bits), codegen


def _bits_to_float_python(bits):
    return np.array(bits).view(np.float64 if np.asarray(bits).dtype == np.int64 else np.float32)[()]


# -- float64 (exp: fdlibm's e_exp.c, under 1 ulp; tanh: Cephes tanh.c) ----------------------

_INV_LN2 = 1.44269504088896338700e00
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts: k * LN2_HI is exact for the k that occur
_LN2_LO = 1.90821492927058770002e-10
_E1, _E2, _E3, _E4, _E5 = (
    1.66666666666666019037e-01,
    -2.77777777770155933842e-03,
    6.61375632143793436117e-05,
    -1.65339022054652515390e-06,
    4.13813679705723846039e-08,
)
_MAXLOG = 7.09782712893383973096e02  # exp overflows above
_MINLOG = -7.45133219101941108420e02  # and is 0 below (past the denormals)


def _exp64(x):
    clamped = x if x < _MAXLOG else _MAXLOG
    clamped = clamped if clamped > _MINLOG else _MINLOG
    n = np.floor(_INV_LN2 * clamped + 0.5)
    hi = clamped - n * _LN2_HI
    lo = n * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_E1 + t * (_E2 + t * (_E3 + t * (_E4 + t * _E5))))
    e = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    k = np.int64(n)
    half = k >> 1
    scaled = e * _bits_to_float((half + 1023) << 52) * _bits_to_float((k - half + 1023) << 52)
    if x > _MAXLOG:
        scaled = np.inf
    if x < _MINLOG:
        scaled = 0.0
    return x if x != x else scaled


_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3


def _tanh64(x):
    z = np.abs(x)
    # |x| >= 0.625: 1 - 2 / (exp(2|x|) + 1); past 20 that is 1.0 in double
    s = _exp64(2.0 * (z if z < 20.0 else 20.0))
    large = 1.0 - 2.0 / (s + 1.0)
    zz = z * z
    small = z + z * zz * (((_TP0 * zz + _TP1) * zz + _TP2) / (((zz + _TQ0) * zz + _TQ1) * zz + _TQ2))
    result = np.copysign(large if z >= 0.625 else small, x)
    return x if x != x else result


# -- float32 (Cephes expf.c, tanhf.c) -------------------------------------------------------

_F = np.float32
_LOG2EF = _F(1.44269504088896341)
_C1F, _C2F = _F(0.693359375), _F(-2.12194440e-4)
_PF = tuple(_F(v) for v in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1))
_PF5 = _F(5.0000001201e-1)
_MAXLOGF = _F(88.72283905206835)
_MINLOGF = _F(-103.278929903431851103)
_HALF, _ONE, _TWO = _F(0.5), _F(1.0), _F(2.0)
_INF32, _ZERO32 = _F(np.inf), _F(0.0)


def _exp32(x):
    clamped = x if x < _MAXLOGF else _MAXLOGF
    clamped = clamped if clamped > _MINLOGF else _MINLOGF
    n = np.floor(_LOG2EF * clamped + _HALF)
    r = clamped - n * _C1F
    r = r - n * _C2F
    rr = r * r
    p = ((((_PF[0] * r + _PF[1]) * r + _PF[2]) * r + _PF[3]) * r + _PF[4]) * r + _PF5
    e = p * rr + r + _ONE
    k = np.int32(n)
    half = k >> np.int32(1)
    low = np.int32((half + np.int32(127)) << np.int32(23))
    high = np.int32((k - half + np.int32(127)) << np.int32(23))
    scaled = e * _bits_to_float(low) * _bits_to_float(high)
    if x > _MAXLOGF:
        scaled = _INF32
    if x < _MINLOGF:
        scaled = _ZERO32
    return x if x != x else scaled


_TF = tuple(
    _F(v) for v in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)
)
_TANH_SWITCH_F, _TANH_ONE_F = _F(0.625), _F(10.0)


def _tanh32(x):
    z = np.abs(x)
    s = _exp32(_TWO * (z if z < _TANH_ONE_F else _TANH_ONE_F))  # tanh(10) is 1.0 in float32
    large = _ONE - _TWO / (s + _ONE)
    zz = z * z
    small = ((((_TF[0] * zz + _TF[1]) * zz + _TF[2]) * zz + _TF[3]) * zz + _TF[4]) * zz * z + z
    result = np.copysign(large if z >= _TANH_SWITCH_F else small, x)
    return x if x != x else result


# -- the generic names the kernels call -----------------------------------------------------


def exp(x):
    """e**x of a float32 or float64 scalar, vectorizable when inlined into a loop."""
    return _exp32(x) if isinstance(x, np.float32) else _exp64(np.float64(x))


def tanh(x):
    """tanh(x) of a float32 or float64 scalar, vectorizable when inlined into a loop."""
    return _tanh32(x) if isinstance(x, np.float32) else _tanh64(np.float64(x))


if numba.config.DISABLE_JIT:
    _bits_to_float = _bits_to_float_python  # noqa: F811 - the intrinsic's Python form
else:
    # exp is compiled once and called: LLVM inlines the call into the loop and vectorizes it
    # there. numba-level inlining (inline="always") compiled each use site again (+1.5 s on a
    # family) and tripped numba's SSA checks. tanh is past LLVM's inlining threshold, so numba
    # inlines it (its exp stays a call that LLVM inlines).
    _exp32, _exp64 = jit(_exp32), jit(_exp64)
    _tanh32, _tanh64 = inline(_tanh32), inline(_tanh64)

    @overload(exp, jit_options={"error_model": "numpy"})
    def _exp_typed(x):
        if x == types.float32:
            return lambda x: _exp32(x)
        if x == types.float64:
            return lambda x: _exp64(x)
        return None

    @overload(tanh, inline="always", jit_options={"error_model": "numpy"})
    def _tanh_typed(x):
        if x == types.float32:
            return lambda x: _tanh32(x)
        if x == types.float64:
            return lambda x: _tanh64(x)
        return None
