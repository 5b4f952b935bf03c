"""Eager forwards of float ops between an array and something broadcast over it, where numpy's
loop for a broadcast operand is slow on this machine: a row along the last dimension (a bias
add, a scale per column: ``(..., m)`` and ``(m,)``), values along a middle one (a convolution's
bias: ``(N, C, H, W)`` and ``(1, C, 1, 1)``, 1.8 ns an element in numpy) and clamp's number.

numpy's broadcasting loop ran at half the speed of its plain one (512x1024 float32: 122 us for
``a + row`` against 63 for ``a + a``; 32x128: 1.9 against 1.1 us), and ``np.maximum`` against a
number has no SIMD loop at all (268 us, against 86 for two arrays). One IEEE operation or
comparison an element, as numpy's: the same bits."""

from __future__ import annotations

from .config import jit, wide_vectors

ADD, SUB, MUL, DIV = range(4)


@jit
def row_binary(op, matrix, row, out, row_first):
    """``out = matrix <op> row`` by rows of ``len(row)`` (all flat, C-ordered, one dtype), or
    ``row <op> matrix`` with ``row_first``. ``op``: ADD, SUB, MUL or DIV."""
    wide_vectors()
    m = len(row)
    for start in range(0, len(out), m):
        a = matrix[start : start + m]
        o = out[start : start + m]
        if op == ADD:
            for j in range(m):
                o[j] = a[j] + row[j]
        elif op == MUL:
            for j in range(m):
                o[j] = a[j] * row[j]
        elif op == SUB and not row_first:
            for j in range(m):
                o[j] = a[j] - row[j]
        elif op == SUB:
            for j in range(m):
                o[j] = row[j] - a[j]
        elif not row_first:
            for j in range(m):
                o[j] = a[j] / row[j]
        else:
            for j in range(m):
                o[j] = row[j] / a[j]


@jit
def channel_binary(op, matrix, values, out, inner, values_first):
    """``out = matrix <op> values`` where each value covers a block of ``inner`` elements, the
    blocks cycling through ``values`` (all flat, C-ordered, one dtype): a (N, C, H, W) array and
    a (1, C, 1, 1) one, a convolution's bias. ``values <op> matrix`` with ``values_first``."""
    wide_vectors()
    count = len(values)
    for block in range(len(out) // inner):
        start = block * inner
        v = values[block % count]
        a = matrix[start : start + inner]
        o = out[start : start + inner]
        if op == ADD:
            for j in range(inner):
                o[j] = a[j] + v
        elif op == MUL:
            for j in range(inner):
                o[j] = a[j] * v
        elif op == SUB and not values_first:
            for j in range(inner):
                o[j] = a[j] - v
        elif op == SUB:
            for j in range(inner):
                o[j] = v - a[j]
        elif not values_first:
            for j in range(inner):
                o[j] = a[j] / v
        else:
            for j in range(inner):
                o[j] = v / a[j]


@jit
def clamp_scalar(x, bound, out, upper):
    """``out = np.maximum(x, bound)`` (``np.minimum`` with ``upper``) for flat arrays of one dtype
    and a Python float ``bound``, by numpy's rule: ``bound`` cast to the arrays' dtype (beyond
    float32's range: its infinity), then ``x`` where it is above (below) that or NaN, else it.
    (So a tie of signed zeros gives the bound, as numpy's does and as tapegrad's clamp of fewer
    elements does; PyTorch's gives ``x``.)"""
    wide_vectors()
    bound = out.dtype.type(bound)
    if upper:
        for i in range(len(x)):
            v = x[i]
            out[i] = v if (v < bound or v != v) else bound
    else:
        for i in range(len(x)):
            v = x[i]
            out[i] = v if (v > bound or v != v) else bound
