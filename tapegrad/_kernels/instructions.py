"""The register program's instruction set: codes and run flags, shared by the rewrite
(``tapegrad/_register.py``, which must not import numba) and the interpreter
(``tapegrad/_kernels/register.py``). Plain Python.

An instruction is four integers, ``(code, out, a, b)`` (``WIDTH``). SUM: the terms, each times
its sign, added left to right (an add, sub, neg or scalar add, and chains of them); REDUCE_SUM:
sum/mean of a row, accumulated in float64 as the general interpreter does, times the scale;
SOFTMAX: ``b`` operands to ``b`` consecutive result registers; COPY: a value that takes no
gradient (``detach``, a view under no_grad). In the backward only, MUL_A and DIV_A: a product or
quotient whose ``b`` takes no gradient.

A run: one instruction standing for ``count`` instructions of a binary code (MUL, DIV, and in the
backward MUL_A and DIV_A) over consecutive registers, as a row of a few elements gives them:
``code`` is the base code (``BASE`` bits) plus RUN, DESCENDING when the registers count down (the
backward runs the rows' instructions in reverse), FIXED_B when every element reads the same ``b``
(a number: ``y * 1.001``), and ``count - 1`` from bit COUNT_SHIFT. The elements run in order, so
a run means what its instructions one by one do. A chain of 3-element products spent 1.9-2.2 ns
on each instruction's dispatch (``tapegrad._register.runs`` makes them).
"""

from __future__ import annotations

(SUM, MUL, DIV, REDUCE_SUM, SOFTMAX, COPY, SOFTPLUS, EXP, LOG, TANH, SIGMOID, RELU, SQRT, MUL_A, DIV_A) = range(15)
CODE_NAMES = "sum mul div reduce_sum softmax copy softplus exp log tanh sigmoid relu sqrt mul_a div_a".split()
WIDTH = 4  # integers per instruction
RUN, DESCENDING, FIXED_B, COUNT_SHIFT, BASE = 16, 32, 64, 8, 15
