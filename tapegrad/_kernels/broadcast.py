"""The eager forward of a float op between a C-ordered array and a row broadcast along its last
dimension (a bias add, a scale per column): shapes ``(..., m)`` and ``(m,)``.

numpy's broadcasting loop ran at half the speed of its plain one on this machine (512x1024
float32: 122 us for ``a + row`` against 63 for ``a + a``; 32x128: 1.9 against 1.1 us). One IEEE
operation an element, as numpy's: the same bits."""

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
