"""Transcendental functions that LLVM vectorizes: ``exp``, ``tanh``, ``log``, ``log1p``, ``expm1``,
``sin``, ``cos``, ``erf`` and ``erfc`` (and ``sigmoid``, ``softplus`` and gelu's derivative of
them) for float32 and float64.

llvmlite from PyPI has no SVML, so a jitted loop calling ``np.exp`` or ``np.sin`` makes a scalar
libm call per element (4-40 ns) where numpy's SIMD loops take 0.3-1.6 ns. These are written as
straight-line arithmetic (fdlibm's exp for float64; Cephes' expf, tanh, tanhf and logf
polynomials, Moshier 1984-1992; musl's log1p/log1pf reductions, sin/cos kernels and fdlibm's erf,
Sun 1993; own forms for expm1 and float32 sin and cos), so that in a loop LLVM turns them into
vector code: no libm calls, no branches it cannot turn into selects (every case is computed, then one is selected).
``2**n`` is built from its bits. Each is compiled once, with FMA contraction, and marked
``alwaysinline`` so that LLVM inlines it into the calling loop (``_inline_into_callers``).

Errors against a float64/long-double reference (mpmath for float64 erf), measured over the whole
float range (tests/test_vmath.py: random bit patterns of every binade plus dense sweeps and the
hardest inputs a search found; for float32 log, log1p and tanh, every float), in ulp, float32 /
float64: exp 1.00 / 0.85, tanh 1.50 / 1.30, log 0.83 / 0.80, log1p 0.87 / 0.78, expm1 1.36 /
0.89, sin 1.16 / 0.77, cos 1.11 / 0.74, erf 1.94 / 1.00 (the 1.00 at tiny x), erfc 3.92 / 2.00,
softplus 1.55 / 1.58; numpy's own are 0.5-2.2. NaN, infinities, -0.0, overflow to inf and
underflow through denormals to 0 are numpy's (scipy's for erf and erfc, except that float64 erfc
keeps the denormals that scipy flushes to 0 near 27).

sin and cos: float32 is accurate everywhere, branch-free, in float32 and int64 (no double, so the
loop stays 8 lanes wide): an integer Payne-Hanek reduction by a 129-row table for every |x|, three
32-bit gathers an element (0.5 ns of its 1.65), and the reduced argument's rounding error
carried into the kernels. float64 reduces by Cody-Waite
with pi/2 in three parts (fdlibm's), which holds the bound for |x| below 2**20 * pi/2 (about
1.65e6); past that it calls libm's sin/cos behind a branch. The trade-off: that call keeps float64
sin/cos correct everywhere, but LLVM does not vectorize a loop holding a call, so float64 sin/cos
run as scalar code (faster than numpy's, whose float64 sin and cos are scalar libm loops too on
this machine). So the kernels' loops (generate.py) run sin and cos by blocks of 512: a block whose
every |x| is moderate (``moderate``: below 2**16 for float32, 2**20 * pi/2 for float64) takes
``sin_moderate``/``cos_moderate``, with no table and no call (float32: Cody-Waite in float32 below
2**16, 1.18 ulp, 0.43 ns an element against the table's 1.6; float64 vectorized), any other
block the forms above.

``expressions.FUNCTIONS`` maps the formula language's functions here. ``python -m
benchmarks.vmath`` times them against numpy and libm.

With ``NUMBA_DISABLE_JIT=1`` the same bodies run as Python on numpy scalars.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic, overload

from .config import AS_PYTHON, JIT_OPTIONS, kernel
from .config import always_inline as _inline_into_callers

# -- 2**n from its bits --------------------------------------------------------------------


def _bitcast(name: str, pairs: dict, doc: str):
    """An intrinsic reinterpreting a value's bits as the type ``pairs`` gives for its own."""

    def typer(typingctx, value):
        target = pairs.get(value)
        if target is None:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(target))

        return target(value), codegen

    typer.__doc__ = doc
    typer.__name__ = typer.__qualname__ = name  # numba names the intrinsic (and its symbols) so
    return intrinsic(typer)


_bits_to_float = _bitcast(
    "_bits_to_float",
    {types.int64: types.float64, types.int32: types.float32},
    "The float whose IEEE bits are ``bits`` (int64 -> float64, int32 -> float32).",
)


def _bits_to_float_python(bits):
    return np.array(bits).view(np.float64 if np.asarray(bits).dtype == np.int64 else np.float32)[()]


_float_to_bits = _bitcast(
    "_float_to_bits",
    {types.float64: types.int64, types.float32: types.int32},
    "The IEEE bits of ``value`` (float64 -> int64, float32 -> int32).",
)


def _float_to_bits_python(value):
    return np.array(value).view(np.int64 if np.asarray(value).dtype == np.float64 else np.int32)[()]


def _target_has_scalef(codegen) -> bool:
    """Whether the machine code ``codegen`` makes has AVX-512's ``vscalefps``/``vscalefpd``: its
    features (the host's, or NUMBA_CPU_FEATURES), else the CPU level numba was told to target
    (NUMBA_CPU_NAME with no features: ``python -m tapegrad._kernels.ship``'s x86-64-v4)."""
    # (numba's private attributes: where a later numba lacks them, the answer is no, and the
    # kernels build 2**n from its bits, as on any CPU without AVX-512)
    features = getattr(codegen, "_tm_features", None) or ""
    if "+avx512f" in features.split(","):
        return True
    cpu_name = getattr(codegen, "_get_host_cpu_name", lambda: "")()
    return not features and cpu_name in _SCALEF_CPUS


_SCALEF_CPUS = frozenset(
    ("x86-64-v4", "skylake-avx512", "cascadelake", "cooperlake", "icelake-server", "icelake-client",
     "tigerlake", "sapphirerapids", "emeraldrapids", "graniterapids", "znver4", "znver5")
)  # fmt: skip


@intrinsic
def _has_scalef(typingctx):
    """A constant: whether ``_ldexp32`` is one instruction on the target. Elsewhere LLVM makes
    ``llvm.ldexp`` a libm call per element, so the kernels keep building 2**n from its bits there;
    the branch on this constant is gone before LLVM vectorizes the loop."""

    def codegen(context, builder, signature, args):
        return context.get_constant(types.boolean, _target_has_scalef(context.codegen()))

    return types.boolean(), codegen


def _has_scalef_python():
    return False


@intrinsic
def _ldexp32(typingctx, x, n):
    """x * 2**n, rounded once (``llvm.ldexp``): inf on overflow, denormals and then 0 below.
    Only where ``_has_scalef``."""
    if not (x == types.float32 and n == types.int32):
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        single = ir.FloatType()
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(single, [single, ir.IntType(32)]), "llvm.ldexp.f32.i32"
        )
        return builder.call(function, list(args))

    return types.float32(x, n), codegen


@intrinsic
def _fma32_intrinsic(typingctx, a, b, c):
    if not (a == b == c == types.float32):
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        single = ir.FloatType()
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(single, [single, single, single]), "llvm.fma.f32"
        )
        return builder.call(function, list(args))

    return types.float32(a, b, c), codegen


def _fma32(a, b, c):
    """a * b + c rounded once (float32; in Python, through float64, where a * b is exact). An
    explicit FMA: contraction fuses a product only when it has a single use."""
    return np.float32(np.float64(a) * np.float64(b) + np.float64(c))


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
_EXP_HIGH, _EXP_LOW = 710.0, -746.0  # exp is inf above, 0 below, by its own arithmetic


def _exp64(x):
    _inline_into_callers()
    # Clamped where the result still overflows to inf (above 709.78) and underflows to 0 (below
    # -745.13) by itself, and NaN passes through the arithmetic: no selects after it (they were
    # a sixth of the loop).
    clamped = _EXP_HIGH if x > _EXP_HIGH else x
    clamped = _EXP_LOW if clamped < _EXP_LOW else clamped
    n = np.floor(_INV_LN2 * clamped + 0.5)
    hi = clamped - n * _LN2_HI
    lo = n * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_E1 + t * (_E2 + t * (_E3 + t * (_E4 + t * _E5))))
    e = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    k = np.int64(n)
    half = k >> 1
    return e * _bits_to_float((half + 1023) << 52) * _bits_to_float((k - half + 1023) << 52)


_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3


def _tanh64(x):
    _inline_into_callers()
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


def _exp32_within(x):
    """e**x for x in [_MINLOGF, _MAXLOGF] (not NaN): no clamps or selects, for callers whose
    argument is bounded."""
    _inline_into_callers()
    n = np.floor(_LOG2EF * x + _HALF)
    r = x - n * _C1F
    r = r - n * _C2F
    rr = r * r
    p = ((((_PF[0] * r + _PF[1]) * r + _PF[2]) * r + _PF[3]) * r + _PF[4]) * r + _PF5
    e = p * rr + r + _ONE
    k = np.int32(n)
    if _has_scalef():
        return _ldexp32(e, k)
    half = k >> np.int32(1)
    low = np.int32((half + np.int32(127)) << np.int32(23))
    high = np.int32((k - half + np.int32(127)) << np.int32(23))
    return e * _bits_to_float(low) * _bits_to_float(high)


# Where ldexp is one instruction (``_has_scalef``), exp's argument is only clamped to where
# ldexp's own rounding gives inf (above) and 0 (below, through the denormals): no selects.
_EXP_HIGH32, _EXP_LOW32 = _F(89.0), _F(-104.0)


def _exp32(x):
    _inline_into_callers()
    if _has_scalef():
        clamped = _EXP_LOW32 if x < _EXP_LOW32 else x  # (a NaN passes both, and is selected last)
        scaled = _exp32_within(_EXP_HIGH32 if clamped > _EXP_HIGH32 else clamped)
        return x if x != x else scaled
    clamped = x if x < _MAXLOGF else _MAXLOGF
    scaled = _exp32_within(clamped if clamped > _MINLOGF else _MINLOGF)
    if x > _MAXLOGF:
        scaled = _INF32
    if x < _MINLOGF:
        scaled = _ZERO32
    return x if x != x else scaled


_TF = tuple(
    _F(v) for v in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)
)
_TANH_SWITCH_F, _TANH_ONE_F = _F(0.625), _F(10.0)


# -- logarithms (musl's log1p and the fdlibm log it shares its polynomial with) -----------------
#
# x = 2**k * (1 + f), 1 + f in [sqrt(2)/2, sqrt(2)): the exponent and mantissa come from the bits
# (one integer add moves the mantissa's range), log(1 + f) = 2 atanh(s), s = f / (2 + f), as an
# odd polynomial in s. log1p adds the rounding error of 1 + x back as c / (1 + x), and keeps f = x
# where 1 + x needs no reduction. Denormals are scaled into the normal range first; the special
# operands (x < 0, 0, inf, NaN) are selected at the end.

_LG1, _LG2, _LG3, _LG4, _LG5, _LG6, _LG7 = (
    6.666666666666735130e-01,
    3.999999999940941908e-01,
    2.857142874366239149e-01,
    2.222219843214978396e-01,
    1.818357216161805012e-01,
    1.531383769920937332e-01,
    1.479819860511658591e-01,
)
_SQRT_HALF_BITS = 0x3FE6A09E00000000  # the high word of sqrt(2)/2, as musl reduces
_ONE_BITS = 0x3FF0000000000000
_MANTISSA = 0x000FFFFFFFFFFFFF
_TINY64 = 2.2250738585072014e-308  # the smallest normal double
_TWO54 = 18014398509481984.0


def _log_poly64(f, dk, c):
    """log(2**k * (1 + f)) + c, f in [sqrt(2)/2 - 1, sqrt(2) - 1] (musl's log1p tail)."""
    _inline_into_callers()
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    return s * (hfsq + t2 + t1) + (dk * _LN2_LO + c) - hfsq + f + dk * _LN2_HI


def _log64(x):
    _inline_into_callers()
    denormal = x < _TINY64
    bits = _float_to_bits(x * _TWO54 if denormal else x) + (_ONE_BITS - _SQRT_HALF_BITS)
    k = (bits >> 52) - (1023 + 54 if denormal else 1023)
    f = _bits_to_float((bits & _MANTISSA) + _SQRT_HALF_BITS) - 1.0
    result = _log_poly64(f, np.float64(k), 0.0)
    if x == np.inf:
        result = np.inf
    if x == 0.0:
        result = -np.inf
    if x < 0.0:
        result = np.nan
    return x if x != x else result


def _log1p64(x):
    _inline_into_callers()
    u = 1.0 + x
    bits = _float_to_bits(u) + (_ONE_BITS - _SQRT_HALF_BITS)
    k = (bits >> 52) - 1023
    c = (1.0 - (u - x) if k >= 2 else x - (u - 1.0)) / u
    f = _bits_to_float((bits & _MANTISSA) + _SQRT_HALF_BITS) - 1.0
    # 1 + x in [sqrt(2)/2, sqrt(2)): f is x itself, exactly
    near = x > -0.2928932188134524 and x < 0.41421356237309503
    result = _log_poly64(x if near else f, 0.0 if near else np.float64(k), 0.0 if near or k >= 54 else c)
    if x == np.inf:
        result = np.inf
    if x == -1.0:
        result = -np.inf
    if x < -1.0:
        result = np.nan
    return x if not np.abs(x) >= 1.1102230246251565e-16 else result  # |x| < 2**-53 and NaN: x


# -- expm1 (the float32 form's reduction and recombination, in double) ------------------------
#
# x = n ln2 + r, expm1(r) = r + t by its Taylor series to r**15 (truncation below 1e-19 on the
# range below), and 2**n (1 + r + t) - 1 = 2 (h (r + t) + (h - 1/2)), h = 2**(n - 1): one rounding,
# in the FMA, since h - 1/2 is exact for n <= 53 (above, the 1 goes into t as 2**-n). n = 0 also on
# [ln2/2, 0.4435): there n = 1 would round 2 (r + t) + 1 after a cancellation (1.24 ulp). No
# division and no case computed apart (musl's had both): 0.89 ulp, 2x faster than musl's form.

_EXPM1_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(2, 16))  # 1/2!, ..., 1/15!


def _expm1_64(x):
    _inline_into_callers()
    clamped = x if x < 709.8 else 709.8
    clamped = clamped if clamped > -40.0 else -40.0  # expm1 is -1.0 in double below -38
    n = np.floor(_INV_LN2 * clamped + 0.5)
    n = 0.0 if clamped < 0.4435 and clamped > -0.3466 else n
    hi = clamped - n * _LN2_HI
    lo = n * _LN2_LO
    r = hi - lo
    c = (hi - r) - lo  # r's rounding error
    q = _EXPM1_TAYLOR
    p = ((((((q[13] * r + q[12]) * r + q[11]) * r + q[10]) * r + q[9]) * r + q[8]) * r + q[7]) * r + q[6]
    p = (((((p * r + q[5]) * r + q[4]) * r + q[3]) * r + q[2]) * r + q[1]) * r + q[0]
    t = r * r * p + c
    h = _bits_to_float((np.int64(n) + 1022) << 52)  # 2**(n - 1)
    large = n > 53.0
    m = np.int64(n) if n < 1000.0 else np.int64(1000)
    t = t - _bits_to_float((1023 - m) << 52) if large else t
    result = 2.0 * (h * (r + t) + (h if large else h - 0.5))
    if x > _MAXLOG:
        result = np.inf
    return x if not np.abs(x) >= 5.551115123125783e-17 else result  # |x| < 2**-54 and NaN: x


# -- sin and cos (musl/fdlibm: Cody-Waite reduction by pi/2 in three parts, then the kernels) --
#
# n = rint(x * 2/pi), x - n*pi/2 as y0 + y1 with pi/2 in 33-bit pieces (each n*piece exact for
# |n| < 2**20) and the rounding error of every subtraction carried: fdlibm's three rounds, good to
# 151 bits, enough for every double below 2**20 * pi/2 (about 1.6e6), always done (no branch).

_INV_PIO2 = 6.36619772367581382433e-01
_PIO2_1, _PIO2_1T = 1.57079632673412561417e00, 6.07710050650619224932e-11
_PIO2_2, _PIO2_2T = 6.07710050630396597660e-11, 2.02226624879595063154e-21
_PIO2_3, _PIO2_3T = 2.02226624871116645580e-21, 8.47842766036889956997e-32
_S1, _S2, _S3, _S4, _S5, _S6 = (
    -1.66666666666666324348e-01,
    8.33333333332248946124e-03,
    -1.98412698298579493134e-04,
    2.75573137070700676789e-06,
    -2.50507602534068634195e-08,
    1.58969099521155010221e-10,
)
_C1, _C2, _C3, _C4, _C5, _C6 = (
    4.16666666666666019037e-02,
    -1.38888888888741095749e-03,
    2.48015872894767294178e-05,
    -2.75573143513906633035e-07,
    2.08757232129817482790e-09,
    -1.13596475577881948265e-11,
)
_TRIG_LIMIT64 = 1647099.0  # 2**20 * pi/2, rounded down: the reduction's range


def _reduce64(x):
    """(n mod 4, y0, y1): x = n*pi/2 + y0 + y1, |y0| <= pi/4 (fdlibm's medium case, three rounds)."""
    _inline_into_callers()
    fn = np.floor(x * _INV_PIO2 + 0.5)
    r = x - fn * _PIO2_1
    t = r  # the first round's x - n*pi/2 is exact: only its r is kept
    w = fn * _PIO2_2
    r = t - w
    # this round's rounding error: fdlibm's third round, taken only after a cancellation (when
    # the error is zero), drops it; taken always, it must carry it
    carried = (t - r) - w
    t = r
    w = fn * _PIO2_3
    r = t - w
    w = fn * _PIO2_3T - ((t - r) - w) - carried
    y0 = r - w
    y1 = (r - y0) - w
    inside = fn if np.abs(fn) < 4194304.0 else 0.0  # no float -> int conversion out of range
    return np.int64(inside) & 3, y0, y1


def _sin_kernel64(x, y):
    _inline_into_callers()
    z = x * x
    w = z * z
    r = _S2 + z * (_S3 + z * _S4) + z * w * (_S5 + z * _S6)
    v = z * x
    return x - ((z * (0.5 * y - v * r) - y) - v * _S1)


def _cos_kernel64(x, y):
    _inline_into_callers()
    z = x * x
    w = z * z
    r = z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * r - x * y))


def _sin64(x):
    _inline_into_callers()
    result = _sin_moderate64(x)
    if not np.abs(x) < _TRIG_LIMIT64:  # past the reduction's range, inf and NaN
        result = _sin_far(x)
    return result


def _cos64(x):
    _inline_into_callers()
    result = _cos_moderate64(x)
    if not np.abs(x) < _TRIG_LIMIT64:
        result = _cos_far(x)
    return result


def _sin_moderate64(x):
    """sin(x) for |x| below ``_TRIG_LIMIT64`` (the reduction's range): ``_sin64`` without its
    libm branch, which keeps a loop of it scalar."""
    _inline_into_callers()
    n, y0, y1 = _reduce64(x)
    result = _sin_kernel64(y0, y1) if (n & 1) == 0 else _cos_kernel64(y0, y1)
    result = -result if n >= 2 else result
    return x if np.abs(x) < 7.450580596923828e-09 else result  # |x| < 2**-27: sin(x) rounds to x


def _cos_moderate64(x):
    _inline_into_callers()
    n, y0, y1 = _reduce64(x)
    result = _cos_kernel64(y0, y1) if (n & 1) == 0 else _sin_kernel64(y0, y1)
    return -result if n == 1 or n == 2 else result


# -- erf (fdlibm's s_erf.c: four ranges, each a rational function, all computed, one selected) --

_ERX = 8.45062911510467529297e-01
_EFX8 = 1.02703333676410069053e00
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)  # fmt: skip
_QQ = (3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)  # fmt: skip
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)  # fmt: skip
_QA = (1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)  # fmt: skip
# erfc's tail for 1.25 <= |x| < 1/0.35 (R/S "a") and past it ("b", padded with a zero)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e01,
       -6.23753324503260060396e01, -1.62396669462573470355e02, -1.84605092906711035994e02,
       -8.12874355063065934246e01, -9.81432934416914548592e00)  # fmt: skip
_SA = (1.96512716674392571292e01, 1.37657754143519042600e02, 4.34565877475229228821e02,
       6.45387271733267880336e02, 4.29008140027567833386e02, 1.08635005541779435134e02,
       6.57024977031928170135e00, -6.04244152148580987438e-02)  # fmt: skip
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e01,
       -1.60636384855821916062e02, -6.37566443368389627722e02, -1.02509513161107724954e03,
       -4.83519191608651397019e02, 0.0)  # fmt: skip
_SB = (3.03380607434824582924e01, 3.25792512996573918826e02, 1.53672958608443695994e03,
       3.19985821950859553908e03, 2.55305040643316442583e03, 4.74528541206955367215e02,
       -2.24409524465858183362e01, 0.0)  # fmt: skip
_LOW_WORD = -4294967296  # ~0xffffffff as int64: clears a double's low 32 bits


def _erf_small64(z):
    """erf(x) / x - 1 for |x| < 0.84375, from z = x*x (P/Q)."""
    _inline_into_callers()
    p = _PP[0] + z * (_PP[1] + z * (_PP[2] + z * (_PP[3] + z * _PP[4])))
    q = 1.0 + z * (_QQ[0] + z * (_QQ[1] + z * (_QQ[2] + z * (_QQ[3] + z * _QQ[4]))))
    return p / q


def _erf_middle64(a):
    """erf(|x|) - erx for 0.84375 <= |x| < 1.25, from a = |x|."""
    _inline_into_callers()
    s = a - 1.0
    p = _PA[0] + s * (_PA[1] + s * (_PA[2] + s * (_PA[3] + s * (_PA[4] + s * (_PA[5] + s * _PA[6])))))
    q = 1.0 + s * (_QA[0] + s * (_QA[1] + s * (_QA[2] + s * (_QA[3] + s * (_QA[4] + s * _QA[5])))))
    return p / q


def _erfc_tail64(b):
    """erfc(b) for 1 <= b: exp(-b*b - 0.5625 + R/S) / b, with b*b split so that it is exact."""
    _inline_into_callers()
    s = 1.0 / (b * b)
    near = b < 2.857142857142857
    r0, r1, r2, r3 = (_RA[0], _RA[1], _RA[2], _RA[3]) if near else (_RB[0], _RB[1], _RB[2], _RB[3])
    r4, r5, r6, r7 = (_RA[4], _RA[5], _RA[6], _RA[7]) if near else (_RB[4], _RB[5], _RB[6], _RB[7])
    d0, d1, d2, d3 = (_SA[0], _SA[1], _SA[2], _SA[3]) if near else (_SB[0], _SB[1], _SB[2], _SB[3])
    d4, d5, d6, d7 = (_SA[4], _SA[5], _SA[6], _SA[7]) if near else (_SB[4], _SB[5], _SB[6], _SB[7])
    r = r0 + s * (r1 + s * (r2 + s * (r3 + s * (r4 + s * (r5 + s * (r6 + s * r7))))))
    d = s * (d0 + s * (d1 + s * (d2 + s * (d3 + s * (d4 + s * (d5 + s * (d6 + s * d7)))))))
    d = 1.0 + d
    head = _bits_to_float(_float_to_bits(b) & _LOW_WORD)
    return _exp64(-head * head - 0.5625) * _exp64((head - b) * (head + b) + r / d) / b


def _erf64(x):
    _inline_into_callers()
    a = np.abs(x)
    small = x + x * _erf_small64(x * x)  # |x| < 0.84375
    small = 0.125 * (8.0 * x + _EFX8 * x) if a < 3.725290298461914e-09 else small  # |x| < 2**-28
    middle = _ERX + _erf_middle64(a)  # 0.84375 <= |x| < 1.25
    b = a if a < 6.0 else 6.0  # 1.25 <= |x| < 6: 1 - erfc
    tail = 1.0 - _erfc_tail64(b if b > 1.0 else 1.0)
    result = small if a < 0.84375 else (middle if a < 1.25 else (tail if a < 6.0 else 1.0))
    result = result if a < 0.84375 else np.copysign(result, x)
    return x if x != x else result


def _erfc64(x):
    """fdlibm's erfc: the ranges of its erf, with the tail kept to |x| < 28 (erfc(28) underflows)."""
    _inline_into_callers()
    a = np.abs(x)
    y = x * _erf_small64(x * x)  # |x| < 0.84375: 1 - erf(x), grouped as fdlibm does past 1/4
    small = 1.0 - (x + y) if a < 0.25 else 0.5 - ((x - 0.5) + y)
    ratio = _erf_middle64(a)  # 0.84375 <= |x| < 1.25
    middle = (1.0 - _ERX) - ratio if x >= 0.0 else 1.0 + (_ERX + ratio)
    b = a if a < 28.0 else 28.0  # 1.25 <= |x| < 28
    tail = _erfc_tail64(b if b > 1.0 else 1.0)
    tail = tail if x > 0.0 else 2.0 - tail
    far = 0.0 if x > 0.0 else 2.0
    result = small if a < 0.84375 else (middle if a < 1.25 else (tail if a < 28.0 else far))
    return x if x != x else result


# -- float64 past the reduction's range ----------------------------------------------------


def _libm(name):
    """An opaque call of libm's ``name`` (double -> double). numba's np.sin is LLVM's llvm.sin,
    which LLVM may execute unconditionally (it is "speculatable"): in a vectorized loop behind a
    select, that is a scalar libm call for every element. A plain call of libm's ``sin`` stays
    behind its branch instead."""

    @intrinsic
    def call(typingctx, value):
        if value != types.float64:
            return None

        def codegen(context, builder, signature, args):
            from llvmlite import ir

            double = ir.DoubleType()
            function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(double, [double]), name)
            return builder.call(function, [args[0]])

        return types.float64(value), codegen

    return call


_sin_far, _cos_far = _libm("sin"), _libm("cos")


# -- float32 logarithms (the reduction above; Cephes logf's polynomial; musl's log1pf cases) ---
#
# log(1 + f) = f - f*f/2 + f**3 * P(f) on the same f: a polynomial instead of musl's f / (2 + f),
# whose division was a third of the loop. The integer steps are kept in int32: numba widens
# int32 arithmetic to int64, which split each 16-lane vector in two (1.6x numpy's time, now 1x).

_LOGF_P = tuple(
    _F(v)
    for v in (
        7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
        -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
    )
)  # fmt: skip
_LN2_HIF, _LN2_LOF = _F(6.9313812256e-01), _F(9.0580006145e-06)  # expm1f's split
_LN2_CEPHES_HI, _LN2_CEPHES_LO = _F(0.693359375), _F(-2.12194440e-4)  # logf's split
_INV_LN2F = _F(1.4426950216e00)
_I32 = np.int32
_SQRT_HALF_BITS32 = _I32(0x3F3504F3)
_SHIFT_BITS32, _MANTISSA32 = _I32(0x3F800000 - 0x3F3504F3), _I32(0x007FFFFF)
_TINY32, _TWO25 = _F(1.1754943508222875e-38), _F(33554432.0)


def _log_poly32(f, dk, c):
    """log(2**k * (1 + f)) + c, f in [sqrt(2)/2 - 1, sqrt(2) - 1] (Cephes logf)."""
    _inline_into_callers()
    p = _LOGF_P
    z = f * f
    poly = (((((((p[0] * f + p[1]) * f + p[2]) * f + p[3]) * f + p[4]) * f + p[5]) * f + p[6]) * f + p[7]) * f + p[8]
    y = poly * f * z + (dk * _LN2_CEPHES_LO + c) - _HALF * z
    return (f + y) + dk * _LN2_CEPHES_HI


def _log32(x):
    _inline_into_callers()
    denormal = x < _TINY32
    bits = _I32(_float_to_bits(x * _TWO25 if denormal else x) + _SHIFT_BITS32)
    k = _I32((bits >> _I32(23)) - (_I32(127 + 25) if denormal else _I32(127)))
    f = _bits_to_float(_I32((bits & _MANTISSA32) + _SQRT_HALF_BITS32)) - _ONE
    result = _log_poly32(f, _F(k), _ZERO32)
    if x == _INF32:
        result = _INF32
    if x == _ZERO32:
        result = -_INF32
    if x < _ZERO32:
        result = _F(np.nan)
    return x if x != x else result


def _log1p32(x):
    _inline_into_callers()
    u = _ONE + x
    bits = _I32(_float_to_bits(u) + _SHIFT_BITS32)
    k = _I32((bits >> _I32(23)) - _I32(127))
    f = _bits_to_float(_I32((bits & _MANTISSA32) + _SQRT_HALF_BITS32)) - _ONE
    # c / u, c the rounding error of 1 + x: c is below half an ulp of u, so 1 / u to 1% (2**-k
    # times a short series of 1 / (1 + f)) keeps it exact enough, without a division
    inverse = (_ONE - f * (_ONE - f * (_ONE - f))) * _bits_to_float(_I32((_I32(127) - k) << _I32(23)))
    c = (_ONE - (u - x) if k >= _I32(2) else x - (u - _ONE)) * inverse
    near = x > _F(-0.29289321) and x < _F(0.41421354)
    result = _log_poly32(x if near else f, _ZERO32 if near else _F(k), _ZERO32 if near or k >= _I32(25) else c)
    if x == _INF32:
        result = _INF32
    if x == -_ONE:
        result = -_INF32
    if x < -_ONE:
        result = _F(np.nan)
    return x if not np.abs(x) >= _F(5.9604645e-08) else result  # |x| < 2**-24 and NaN: x


# -- float32 expm1 and tanh ------------------------------------------------------------------
#
# expm1(r) = r + r*r/2 + r**3 * E(r) on |r| <= ln(2)/2: a near-minimax least-squares fit
# (Lawson's iteration against mpmath), relative error 4.1e-10
_EM1F = tuple(_F(v) for v in (0.1666666567325592, 0.04166647419333458, 0.008333423174917698,
                              0.0013934143353253603, 0.00019823784532491118))  # fmt: skip


def _expm1_core32(x):
    """expm1 of x in [-20, 88.75]: 2**n * (1 + p) - 1 = 2 * (h * p + (h - 1/2)), h = 2**(n - 1)
    (so that n = 128 stays finite), one rounding in the FMA, within 1.5 ulp also where it
    cancels (n = 1)."""
    _inline_into_callers()
    n = np.floor(_INV_LN2F * x + _HALF)
    r = x - n * _LN2_HIF
    r = r - n * _LN2_LOF
    q = _EM1F
    p = r + r * r * (_HALF + r * (q[0] + r * (q[1] + r * (q[2] + r * (q[3] + r * q[4])))))
    h = _bits_to_float(np.int32((np.int32(n) + np.int32(126)) << np.int32(23)))
    return _TWO * (h * p + (h - _HALF))


def _expm1_32(x):
    _inline_into_callers()
    clamped = x if x < _F(88.75) else _F(88.75)
    clamped = clamped if clamped > _F(-20.0) else _F(-20.0)  # expm1 is -1.0 in float32 below -17.4
    result = _expm1_core32(clamped)
    result = result if x < _F(88.72283935546875) else _INF32  # log(FLT_MAX)
    return x if not np.abs(x) >= _F(2.9802322e-08) else result  # |x| < 2**-25 and NaN: x


# For tanh, expm1 needs less: its error reaches tanh damped by 2 / (e + 2) <= 0.45 on the range it
# is used (|x| >= 0.625). One coefficient fewer (relative error 1.4e-8, Lawson's fit as above).
_EM1F_TANH = tuple(_F(v) for v in (0.1666654875396322, 0.04166685412420487, 0.00836603444790381,
                                   0.0013898223422807504))  # fmt: skip


def _tanh32(x):
    """tanh |x| = e / (e + 1), e = expm1(2|x|) / 2 (no cancellation), and below 0.625 an odd
    polynomial (Cephes tanhf's: e / (e + 1) rounds three times, 2.06 ulp there)."""
    _inline_into_callers()
    z = np.abs(x)
    # tanh(10) is 1.0 in float32; a NaN passes through both forms (no select for it)
    w = _TWO * (_TANH_ONE_F if z > _TANH_ONE_F else z)
    n = np.floor(_INV_LN2F * w + _HALF)
    r = w - n * _LN2_HIF
    r = r - n * _LN2_LOF
    q = _EM1F_TANH
    p = r + r * r * (_HALF + r * (q[0] + r * (q[1] + r * (q[2] + r * q[3]))))
    h = _bits_to_float(np.int32((np.int32(n) + np.int32(126)) << np.int32(23)))
    e = h * p + (h - _HALF)  # (2**n (1 + p) - 1) / 2, one rounding: see _expm1_core32
    zz = z * z
    small = ((((_TF[0] * zz + _TF[1]) * zz + _TF[2]) * zz + _TF[3]) * zz + _TF[4]) * zz * z + z
    return np.copysign(e / (e + _ONE) if z >= _TANH_SWITCH_F else small, x)


# -- float32 sin and cos, in float32 and int64 (Payne-Hanek by table, everywhere) -----------
#
# Every float32 |x| >= 0.5 is m * 2**E, m a 24-bit integer, E in [-24, 104], and x * 2/pi mod 4 =
# m * ((2**E * 2/pi) mod 4). That factor, scaled by 2**92, is tabulated per E as a 94-bit integer
# in three words (30, 32 and 32 bits): m times it is exact in int64 pieces, the sum of which is
# x * 2/pi mod 4 in 62-bit fixed point (2 integer bits, 60 fraction bits, with no overflow of
# int64). Its integer part rounded is the quadrant n, the rest f in [-1/2, 1/2), and y = f * pi/2
# from f's value in two float32 parts. Below pi/4, y is x. No double: a loop of float32 stays 8
# wide (a double anywhere made LLVM pick 4 lanes), and no branch: the table reduction costs a
# few integer operations and three gathers, done for every x.


def _two_over_pi_words():
    """Rows E = -24..104: floor(2**(E + 92) * 2/pi) mod 2**94 as uint32 words (bits 64-93, 32-63,
    0-31: 32-bit gathers cost a third of 64-bit ones). 2/pi from Machin's formula in integers."""

    def arctan_inverse(n, one):
        total, term, k, sign = 0, one // n, 1, 1
        while term:
            total += sign * (term // k)
            term //= n * n
            k += 2
            sign = -sign
        return total

    precision = 400
    one = 1 << precision
    pi = 16 * arctan_inverse(5, one) - 4 * arctan_inverse(239, one)
    words = np.zeros((3, 129), np.uint32)
    for row, exponent in enumerate(range(-24, 105)):
        value = ((1 << (exponent + 92 + 1 + precision)) // pi) % (1 << 94)
        words[:, row] = value >> 64, (value >> 32) & 0xFFFFFFFF, value & 0xFFFFFFFF
    return words


_W0, _W1, _W2 = _two_over_pi_words()
_FRACTION_BITS = (1 << 60) - 1
_HALF_FRACTION = 1 << 59
_LOW30, _LOW32, _LOW62 = (1 << 30) - 1, 0xFFFFFFFF, (1 << 62) - 1
# pi/2 * 2**-60 in two float32 parts
_PIO2_SCALED_HI = _F(1.5707963267948966 * 2.0**-60)
_PIO2_SCALED_LO = _F((1.5707963267948966 - float(_F(1.5707963267948966))) * 2.0**-60)
_PIO4F = _F(0.7853981633974483)
# sin(y) = y + y**3 * S(y*y), cos(y) = 1 + y*y * C(y*y) on |y| <= pi/4: near-minimax least-squares
# fits (Lawson's iteration, numpy), relative errors 3.8e-9 and 6.4e-11
_SF = tuple(_F(v) for v in (-0.16666655242443085, 0.008332155644893646, -0.0001951463200384751))
_CF = tuple(_F(v) for v in (-0.5, 0.04166661947965622, -0.0013886672677472234, 2.4382721676374786e-05))


def _reduce32(x):
    """(n mod 4, y, tail) with |x| = n*pi/2 + y + tail, |y| <= pi/4 (any float32 but inf, NaN)."""
    _inline_into_callers()
    bits = _float_to_bits(x) & np.int32(0x7FFFFFFF)
    row = (bits >> np.int32(23)) - np.int32(126)  # E + 24, as int32: 32-bit gathers
    row = row if row > np.int32(0) else np.int32(0)
    row = row if row < np.int32(128) else np.int32(128)
    m = np.int64((bits & np.int32(0x007FFFFF)) | np.int32(0x00800000))
    # m * word, each < 2**56; their sum below 2**63: x * 2/pi mod 4, scaled by 2**60
    r = ((m * np.int64(_W0[row])) & _LOW30) << 32
    r = (r + m * np.int64(_W1[row]) + ((m * np.int64(_W2[row])) >> 32)) & _LOW62
    r += _HALF_FRACTION
    n = (r >> 60) & 3
    f = (r & _FRACTION_BITS) - _HALF_FRACTION  # in [-2**59, 2**59)
    f_hi = np.float32(f)
    f_lo = np.float32(f - np.int64(f_hi))
    t = f_hi * _PIO2_SCALED_LO + f_lo * _PIO2_SCALED_HI
    y = _fma32(f_hi, _PIO2_SCALED_HI, t)
    tail = _fma32(f_hi, _PIO2_SCALED_HI, -y) + t  # y's rounding error (the product's is exact)
    small = np.abs(x) <= _PIO4F
    return np.int32(0) if small else np.int32(n), np.abs(x) if small else y, _ZERO32 if small else tail


def _sin_kernel32(y, tail):
    """sin(y + tail) = sin(y) + tail * cos(y), to first order."""
    _inline_into_callers()
    z = y * y
    return y + ((y * z) * (_SF[0] + z * (_SF[1] + z * _SF[2])) + tail * (_ONE - _HALF * z))


def _cos_kernel32(y, tail):
    """cos(y + tail) = cos(y) - tail * sin(y), to first order."""
    _inline_into_callers()
    z = y * y
    return _ONE + (z * (_CF[0] + z * (_CF[1] + z * (_CF[2] + z * _CF[3]))) - tail * y)


def _sin32(x):
    _inline_into_callers()
    n, y, tail = _reduce32(x)
    result = _sin_kernel32(y, tail) if (n & 1) == 0 else _cos_kernel32(y, tail)
    result = -result if n >= 2 else result
    result = -result if _float_to_bits(x) < 0 else result  # sin(-x) = -sin(x), -0.0 too
    return result if np.abs(x) < _INF32 else x - x  # inf: NaN


def _cos32(x):
    _inline_into_callers()
    n, y, tail = _reduce32(x)
    result = _cos_kernel32(y, tail) if (n & 1) == 0 else _sin_kernel32(y, tail)
    result = -result if n == 1 or n == 2 else result
    return result if np.abs(x) < _INF32 else x - x


# -- sin and cos of moderate arguments: no table, no call ------------------------------------
#
# What a loop runs on a block whose every |x| is below MODERATE (``moderate``).
#
# float32: Cody-Waite in float32, pi/2 in three parts, the first with its low 4 bits clear (so
# that |x| - n * _PIO2F_1, computed in one FMA, is exact below 2**16: a multiple of 2**-19 under
# 1), the reduced argument's rounding error carried exactly into the kernels' tail (the product
# n * _PIO2F_2's error by an FMA, the difference's by 2Sum), then ``_sin_kernel32``/
# ``_cos_kernel32``. All float32, so a 512-bit vector holds 16 lanes: 0.43 ns an element against
# 0.79 for the former reduction in double (8 lanes) and numpy's 0.52; 1.18 ulp at most over every
# float32 below the limit (checked exhaustively once; the kernels' own error dominates), where
# the double form had 0.56. A block with a larger |x|, an inf or a NaN takes ``sin``/``cos``.
#
# float64: ``_sin64`` without its libm branch, so that the loop vectorizes.

MODERATE32 = np.float32(2.0**16)
_TWO_OVER_PI32 = _F(0.6366197723675814)
# pi/2 = _PIO2F_1 + _PIO2F_2 + _PIO2F_3 to about 2**-69 (from a 200-bit pi; float64's pi/2 alone,
# 6e-17 off, cost 1,152 ulp of cos near its zeros at |x| ~ 5e4)
_PIO2F_1 = _F(1.570795)  # 0x1.921fa0p+0
_PIO2F_2 = _F(1.2675908e-06)  # 0x1.54442ep-20
_PIO2F_3 = _F(-5.1453115e-14)  # -0x1.cf72cep-45


def _reduced32(x):
    """(n mod 4, y, tail) with |x| = n*pi/2 + y + tail, |y| <~ pi/4, for |x| < MODERATE32."""
    _inline_into_callers()
    a = np.abs(x)
    n = np.rint(a * _TWO_OVER_PI32)
    t = _fma32(-n, _PIO2F_1, a)  # exact
    p = n * _PIO2F_2
    p_error = _fma32(n, _PIO2F_2, -p)  # exactly
    y = t - p
    v = y - t
    y_error = (t - (y - v)) + (-p - v)  # exactly (Knuth's 2Sum)
    return np.int32(n) & np.int32(3), y, y_error - p_error - n * _PIO2F_3


def _sin_moderate32(x):
    _inline_into_callers()
    n, y, tail = _reduced32(x)
    result = _sin_kernel32(y, tail) if (n & 1) == 0 else _cos_kernel32(y, tail)
    result = -result if n >= 2 else result
    return -result if _float_to_bits(x) < 0 else result  # sin(-x) = -sin(x), -0.0 too


def _cos_moderate32(x):
    _inline_into_callers()
    n, y, tail = _reduced32(x)
    result = _cos_kernel32(y, tail) if (n & 1) == 0 else _sin_kernel32(y, tail)
    return -result if n == 1 or n == 2 else result


def moderate(x):
    """Whether every element of the 1-D float array ``x`` is below the moderate range in
    magnitude (2**20 for float32, ``_TRIG_LIMIT64`` for float64; False for any inf or NaN): where
    ``sin_moderate``/``cos_moderate`` hold. A loop of compares and ands, which vectorizes."""
    limit = x.dtype.type(MODERATE32 if x.itemsize == 4 else _TRIG_LIMIT64)
    inside = True
    for i in range(len(x)):
        inside &= np.abs(x[i]) < limit
    return inside


# float32's erf: two polynomials and one exp instead of fdlibm's three rational functions
# (whose divisions made it 12 ns an element). Fitted by least squares with
# numpy.polynomial.polynomial.polyfit against mpmath on 4,001 even points:
#   erf(x) / x = P(x*x) on [0, 0.921875], degree 6: 1.5e-9 relative;
#   log(erfc(x)) + x*x = Q((x - 2.42) / 1.5) on [0.921875, 3.92], degree 10: 6.9e-9 absolute.
# Past 3.92 erf is 1.0 in float32. Evaluated in float32 (with float32's exp): in double, each
# vector held half as many lanes, and erf took 1.9 ns an element; the rounding of x*x and of the
# polynomials moves exp's argument by a few 1e-7, which the result 1 - exp(...) (at least 0.8
# there) does not see beyond a fraction of an ulp.
_ERF32_P = tuple(
    _F(c)
    for c in (
        1.128379166802614, -0.37612635257069527, 0.11283718056291972, -0.026860612967757068,
        0.005203970289299723, -0.0008175284412008004, 8.504967612583602e-05,
    )
)  # fmt: skip
_ERF32_Q = tuple(
    _F(c)
    for c in (
        -1.528236082865934, -0.5428061120865901, 0.13229449447627994, -0.039078673724471345,
        0.011853975237863986, -0.0034887804002044754, 0.0009614004084301546, -0.00024226031034502523,
        5.0263144564907486e-05, -1.1502168178907715e-06, -3.318068659229305e-06,
    )
)  # fmt: skip
_ERF32_SWITCH, _ERF32_END, _ERF32_CENTRE, _ERF32_SCALE = _F(0.921875), _F(3.92), _F(2.42), _F(1.0 / 1.5)


def _erf32(x):
    _inline_into_callers()
    a = np.abs(x)
    z = a * a
    p = _ERF32_P
    # a * p0 rounded once, in the FMA: rounded apart, it and the product by a made 2.3 ulp
    small = _fma32(a, p[0], (a * z) * (p[1] + z * (p[2] + z * (p[3] + z * (p[4] + z * (p[5] + z * p[6]))))))
    u = ((a if a < _ERF32_END else _ERF32_END) - _ERF32_CENTRE) * _ERF32_SCALE
    q = _ERF32_Q
    log_tail = q[0] + u * (q[1] + u * (q[2] + u * (q[3] + u * (q[4] + u * (q[5] + u * (q[6] + u * (
        q[7] + u * (q[8] + u * (q[9] + u * q[10])))))))))  # fmt: skip
    tail = _ONE - _exp32(log_tail - z)
    result = small if a < _ERF32_SWITCH else (tail if a < _ERF32_END else _ONE)
    return x if x != x else np.copysign(result, x)


# float32's erfc: one form for every x, t * R(t) * exp(-x*x) with t = 1 / (1 + |x| / 2) (the
# form of Numerical Recipes' erfcc and of Abramowitz and Stegun 7.1.26): no cancellation in
# 1 - erf, so the relative error holds out to erfc's underflow. R = erfcx(|x|) / t is smooth in
# t: a degree-10 polynomial in u = (t - 0.58) * 2.381, fitted (least squares, weighted by 1 / R,
# each coefficient rounded to float32 before the next ones were refitted) at 800 Chebyshev nodes
# of [1 / 6.25, 1] (|x| up to 10.5, past which erfc underflows) against mpmath: 1.3e-8 relative.
# What each step of the error (4.8 ulp, then 3.9) came from: t's rounding, which the
# polynomial's argument amplifies (a small change of t is a larger one of the |x| it stands for),
# so t's error is carried as t_low; x*x rounded in exp's argument (1e-5 relative near 10), so
# it is split, hi + lo; float32 coefficients rounded after the fit (1 ulp). Left: exp's ulp and
# the products'. One exp, one division and one polynomial for every element, where 1 + erf's
# two polynomials and cancellation made gelu 2x PyTorch's time.
_ERFC32_R = tuple(
    _F(c)
    for c in (
        0.5694087147712708, 0.3271878957748413, 0.10352091491222382, 0.006308469921350479,
        -0.006326992530375719, -0.0006749788881279528, 0.0006245128461159766, 9.90946136880666e-06,
        -7.059782365104184e-05, 6.515058885270264e-06, 5.6233006944239605e-06,
    )
)  # fmt: skip
_ERFC32_CENTRE, _ERFC32_SCALE = _F(0.58), _F(2.380952380952381)
_ERFC32_ZERO = _F(10.054195)  # the first float32 whose erfc rounds to 0 (below 2**-150)


def _erfc_parts32(x):
    """``(erfc(|x|) / exp(-x*x), exp(-x*x))`` for float32 ``x`` (not NaN), both 0 where erfc
    rounds to 0: erfc's two factors, which gelu's gradient shares (``_gelu_grad32``)."""
    _inline_into_callers()
    a = np.abs(x)
    a = a if a < _ERFC32_ZERO else _ERFC32_ZERO
    half = _HALF * a
    d = half + _ONE
    d_low = (_ONE - d) + half  # d's rounding error, exactly (|half| <= |d|, 1 - d exact)
    t = _ONE / d
    # 1 / (d + d_low) - t, to first order: t's error, which the polynomial's argument would
    # carry (amplified: a small change of t is a larger one of the |x| it stands for)
    t_low = t * (_fma32(-d, t, _ONE) - d_low * t)
    u = _fma32(t_low, _ERFC32_SCALE, (t - _ERFC32_CENTRE) * _ERFC32_SCALE)
    r = _ERFC32_R
    ratio = r[0] + u * (r[1] + u * (r[2] + u * (r[3] + u * (r[4] + u * (r[5] + u * (r[6] + u * (
        r[7] + u * (r[8] + u * (r[9] + u * r[10])))))))))  # fmt: skip
    square = a * a
    low = _fma32(a, a, -square)  # a*a - square, exactly
    tail = _exp32_within(-square)  # -square is in [-101.1, 0]
    tail = _fma32(-tail, low, tail)  # exp(-square - low), to first order (low is below 2e-6)
    # selected, not left to the products: rounded twice in denormals, they gave 2**-149 for 0
    tail = tail if a < _ERFC32_ZERO else _ZERO32
    return _fma32(t, ratio, t_low * ratio), tail


def _erfc32(x):
    _inline_into_callers()
    ratio, tail = _erfc_parts32(x)
    positive = ratio * tail
    result = positive if x >= _ZERO32 else _TWO - positive
    return x if x != x else result


_SQRT_HALF32, _INV_SQRT_2PI32 = _F(0.7071067811865476), _F(0.3989422804014327)


def _gelu_grad32(x):
    """d/dx of x * Phi(x): 0.5 * erfc(-x / sqrt 2) + x * exp(-x*x / 2) / sqrt(2 pi), the exp
    computed once for both terms (erfc's own factor): gelu's backward took an exp more."""
    _inline_into_callers()
    y = x * -_SQRT_HALF32
    ratio, tail = _erfc_parts32(y)
    positive = ratio * tail
    cdf = positive if y >= _ZERO32 else _TWO - positive
    result = _HALF * cdf + x * tail * _INV_SQRT_2PI32
    return x if x != x else result


def _gelu_grad64(x):
    _inline_into_callers()
    return 0.5 * _erfc64(x * -0.7071067811865476) + x * _exp64(-0.5 * x * x) * 0.3989422804014327


# -- the generic names the kernels call -----------------------------------------------------


def exp(x):
    """e**x of a float32 or float64 scalar, vectorizable when inlined into a loop."""
    return _exp32(x) if isinstance(x, np.float32) else _exp64(np.float64(x))


def tanh(x):
    """tanh(x) of a float32 or float64 scalar, vectorizable when inlined into a loop."""
    return _tanh32(x) if isinstance(x, np.float32) else _tanh64(np.float64(x))


def _sigmoid32(x):
    """1 / (1 + e**-x) from e = exp(-|x|): no cancellation for large negative x, where the tanh
    form (0.5 * (1 + tanh(x / 2))) rounded to 0 (float32 at -17, PyTorch's value 4e-8)."""
    _inline_into_callers()
    e = _exp32(-np.abs(x))
    return (_ONE if x >= _ZERO32 else e) / (_ONE + e)


def _sigmoid64(x):
    _inline_into_callers()
    e = _exp64(-np.abs(x))
    return (1.0 if x >= 0.0 else e) / (1.0 + e)


_SOFTPLUS_THRESHOLD32 = _F(20.0)


def _softplus32(x):
    """PyTorch's softplus (beta 1, threshold 20): x itself above 20, else log(1 + e**x) as numpy's
    logaddexp(0, x) computes it, max(x, 0) + log1p(exp(-|x|)), branch-free: the replay's had been
    scalar libm exp and log1p behind a branch."""
    _inline_into_callers()
    result = (x if x > _ZERO32 else _ZERO32) + _log1p32(_exp32(-np.abs(x)))
    result = x if x > _SOFTPLUS_THRESHOLD32 else result
    return x if x != x else result


def _softplus64(x):
    _inline_into_callers()
    result = (x if x > 0.0 else 0.0) + _log1p64(_exp64(-np.abs(x)))
    result = x if x > 20.0 else result
    return x if x != x else result


def _generic(name, single, double):
    def function(x):
        return single(x) if isinstance(x, np.float32) else double(np.float64(x))

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"{name}(x) of a float32 or float64 scalar, vectorizable when inlined into a loop."
    return function


log = _generic("log", _log32, _log64)
log1p = _generic("log1p", _log1p32, _log1p64)
expm1 = _generic("expm1", _expm1_32, _expm1_64)
sin = _generic("sin", _sin32, _sin64)
cos = _generic("cos", _cos32, _cos64)
sin_moderate = _generic("sin_moderate", _sin_moderate32, _sin_moderate64)
cos_moderate = _generic("cos_moderate", _cos_moderate32, _cos_moderate64)
erf = _generic("erf", _erf32, _erf64)
erfc = _generic("erfc", _erfc32, _erfc64)
gelu_grad = _generic("gelu_grad", _gelu_grad32, _gelu_grad64)
sigmoid = _generic("sigmoid", _sigmoid32, _sigmoid64)
softplus = _generic("softplus", _softplus32, _softplus64)


if AS_PYTHON:
    _bits_to_float = _bits_to_float_python  # noqa: F811 - the intrinsic's Python form
    _has_scalef = _has_scalef_python  # noqa: F811
    _float_to_bits = _float_to_bits_python  # noqa: F811
    _sin_far, _cos_far = np.sin, np.cos
else:
    _fma32 = _fma32_intrinsic  # noqa: F811
    # one compile each, with FMA contraction (a * b + c rounded once: safe for NaN, inf and -0.0,
    # and the error bounds are measured with it); LLVM inlines them into the loops
    _compile = kernel(fastmath={"contract"}, **JIT_OPTIONS)
    _exp32_within = _compile(_exp32_within)
    _exp32, _exp64, _tanh32, _tanh64 = _compile(_exp32), _compile(_exp64), _compile(_tanh32), _compile(_tanh64)
    _expm1_core32 = _compile(_expm1_core32)
    _log_poly32, _log_poly64 = _compile(_log_poly32), _compile(_log_poly64)
    _reduce32, _reduce64 = _compile(_reduce32), _compile(_reduce64)
    _sin_kernel32, _cos_kernel32 = _compile(_sin_kernel32), _compile(_cos_kernel32)
    _sin_kernel64, _cos_kernel64 = _compile(_sin_kernel64), _compile(_cos_kernel64)
    _log32, _log64, _log1p32, _log1p64 = _compile(_log32), _compile(_log64), _compile(_log1p32), _compile(_log1p64)
    _expm1_32, _expm1_64 = _compile(_expm1_32), _compile(_expm1_64)
    _sin_moderate64, _cos_moderate64 = _compile(_sin_moderate64), _compile(_cos_moderate64)
    _sin32, _sin64, _cos32, _cos64 = _compile(_sin32), _compile(_sin64), _compile(_cos32), _compile(_cos64)
    _erf_small64, _erf_middle64, _erfc_tail64 = _compile(_erf_small64), _compile(_erf_middle64), _compile(_erfc_tail64)
    _erf32, _erf64, _erfc_parts32 = _compile(_erf32), _compile(_erf64), _compile(_erfc_parts32)
    _erfc32, _erfc64, _gelu_grad32, _gelu_grad64 = (
        _compile(_erfc32),
        _compile(_erfc64),
        _compile(_gelu_grad32),
        _compile(_gelu_grad64),
    )
    _sigmoid32, _sigmoid64 = _compile(_sigmoid32), _compile(_sigmoid64)
    _softplus32, _softplus64 = _compile(_softplus32), _compile(_softplus64)
    _reduced32 = _compile(_reduced32)
    _sin_moderate32, _cos_moderate32 = _compile(_sin_moderate32), _compile(_cos_moderate32)
    moderate = kernel(**JIT_OPTIONS)(moderate)

    def _register(generic, single, double):
        # the typed wrapper is a one-call lambda: numba inlines it, so that the loop calls the
        # alwaysinline function directly (a wrapper LLVM has to inline first is over its threshold)
        @overload(generic, inline="always", jit_options={"error_model": "numpy"})
        def typed(x):
            if x == types.float32:
                return lambda x: single(x)
            if x == types.float64:
                return lambda x: double(x)
            return None

    for _names in (
        (exp, _exp32, _exp64),
        (tanh, _tanh32, _tanh64),
        (log, _log32, _log64),
        (log1p, _log1p32, _log1p64),
        (expm1, _expm1_32, _expm1_64),
        (sin, _sin32, _sin64),
        (cos, _cos32, _cos64),
        (erf, _erf32, _erf64),
        (erfc, _erfc32, _erfc64),
        (gelu_grad, _gelu_grad32, _gelu_grad64),
        (sigmoid, _sigmoid32, _sigmoid64),
        (softplus, _softplus32, _softplus64),
        (sin_moderate, _sin_moderate32, _sin_moderate64),
        (cos_moderate, _cos_moderate32, _cos_moderate64),
    ):
        _register(*_names)
