"""The register interpreter: scalar tapes replayed as a flat list of register instructions.

A tape of one-element rows (a graph of scalars) spends most of the general interpreter's time on
what a row is rather than on what it computes: layouts, offsets, dispatch on paths and families,
a gradient slot per select. ``tapegrad._register`` rewrites such a tape, once, into
instructions over registers, one register per element: selects, views and stacks become
renamed registers (no instruction), chains of additions one ``SUM``, a softmax of a few
elements one instruction. This module runs that program forward and backward.

An instruction is four integers, ``(code, out, a, b)``: ``out`` is its (first) result register,
``a`` and ``b`` its operand registers, or, for the n-ary codes (``SUM``, ``REDUCE_SUM``,
``SOFTMAX``), the start and count of its operands in ``args`` (with ``signs``, +1 or -1, for
``SUM``'s terms). ``params`` holds one float per instruction (``REDUCE_SUM``'s scale). The
formulas are the general interpreter's own, operation for operation, so both replays give the
same bits; tests/test_register.py holds them to that.
"""

from __future__ import annotations

import numpy as np

from . import normalization, vmath
from .config import jit
from .forward import _logaddexp0
from .memory import borrow

# Instruction codes. SUM: the terms, each times its sign, added left to right (an add, sub, neg
# or scalar add, and chains of them); REDUCE_SUM: sum/mean of a row, accumulated in float64 as
# the general interpreter does, times the scale; SOFTMAX: ``b`` operands to ``b`` consecutive
# result registers; COPY: a value that takes no gradient (``detach``, a view under no_grad).
# In the backward only, MUL_A and DIV_A: a product or quotient whose ``b`` takes no gradient.
(SUM, MUL, DIV, REDUCE_SUM, SOFTMAX, COPY, SOFTPLUS, EXP, LOG, TANH, SIGMOID, RELU, SQRT, MUL_A, DIV_A) = range(15)
CODE_NAMES = "sum mul div reduce_sum softmax copy softplus exp log tanh sigmoid relu sqrt mul_a div_a".split()
WIDTH = 4  # integers per instruction
MAX_GROUP = 64  # the most operands of one SOFTMAX (the scratch it gathers them into)


@jit
def forward(ins, args, signs, params, regs):
    """Run the instructions ``ins`` in order; every result lands in ``regs``."""
    r = borrow(regs)
    scratch = np.empty(MAX_GROUP, regs.dtype)
    t = borrow(scratch)
    zero = regs.dtype.type(0.0)
    threshold = regs.dtype.type(20.0)
    log2 = regs.dtype.type(np.log(2.0))
    half = regs.dtype.type(0.5)
    one = regs.dtype.type(1.0)
    for k in range(ins.shape[0]):
        code = ins[k, 0]
        out = ins[k, 1]
        a = ins[k, 2]
        b = ins[k, 3]
        if code == SUM:
            total = r[args[a]] * signs[a]
            for j in range(a + 1, a + b):
                total += r[args[j]] * signs[j]
            r[out] = total
        elif code == MUL:
            r[out] = r[a] * r[b]
        elif code == SOFTPLUS:
            x = r[a]
            r[out] = x if x > threshold else _logaddexp0(x, log2)
        elif code == SOFTMAX:
            for j in range(b):
                t[j] = r[args[a + j]]
            # Eager's own softmax: its sum (exp_shifted, vectorized) called with arrays of the
            # same types runs the same machine code, so adds in the same order.
            normalization.softmax(t[:b], r[out : out + b])
        elif code == DIV:
            r[out] = r[a] / r[b]
        elif code == REDUCE_SUM:
            accumulated = 0.0  # in float64, as the general interpreter's sum_all
            for j in range(a, a + b):
                accumulated += r[args[j]]
            r[out] = accumulated * params[k]
        elif code == EXP:
            r[out] = vmath.exp(r[a])
        elif code == LOG:
            r[out] = vmath.log(r[a])
        elif code == TANH:
            r[out] = vmath.tanh(r[a])
        elif code == SIGMOID:
            r[out] = half * (one + vmath.tanh(half * r[a]))
        elif code == RELU:
            x = r[a]
            r[out] = x if x > zero or x != x else zero
        elif code == SQRT:
            r[out] = np.sqrt(r[a])
        else:  # COPY
            r[out] = r[a]


@jit
def backward(ins, args, signs, params, regs, grads, seed_registers, seeds):
    """Zero ``grads``, add ``seeds`` (float64) at ``seed_registers`` and run the instructions
    ``ins`` (already in reverse order, only those a gradient reaches), each adding its
    result's gradient into its operands' that have a gradient slot (``signs``: a ``SUM``
    term's sign, 0 for a term with none). Reads the values the last ``forward`` left in ``regs``."""
    r = borrow(regs)
    d = borrow(grads)
    for i in range(len(grads)):
        d[i] = 0
    for i in range(len(seed_registers)):
        d[seed_registers[i]] += grads.dtype.type(seeds[i])
    half = r.dtype.type(0.5)
    one = r.dtype.type(1.0)
    for k in range(ins.shape[0]):
        code = ins[k, 0]
        out = ins[k, 1]
        a = ins[k, 2]
        b = ins[k, 3]
        g = d[out]
        if code == SUM:
            # In the general backward's order: a folded chain ((t0 + t1) + t2) + t3 reaches t3,
            # t2, then t0 and t1, and a register among the terms twice sums them in that order.
            # ``signs`` here are 0 for terms with no gradient slot (numbers, constants).
            for j in range(a + b - 1, a + 1, -1):
                if signs[j] != 0:
                    d[args[j]] += g * signs[j]
            for j in range(a, min(a + 2, a + b)):
                if signs[j] != 0:
                    d[args[j]] += g * signs[j]
        elif code == MUL_A:
            d[a] += g * r[b]
        elif code == MUL:
            d[a] += g * r[b]
            d[b] += g * r[a]
        elif code == SOFTPLUS:  # the general rule: sigmoid of the input, in its tanh form
            d[a] += g * half * (one + np.tanh(half * r[a]))
        elif code == SOFTMAX:  # normalization.softmax_backward, into scattered operands
            y = r[out : out + b]
            weighted = d.dtype.type(normalization.dot(d[out : out + b], y))
            for j in range(b):
                d[args[a + j]] += y[j] * (d[out + j] - weighted)
        elif code == DIV:
            y = r[b]
            d[a] += g / y
            d[b] += -g * r[a] / (y * y)
        elif code == DIV_A:
            d[a] += g / r[b]
        elif code == REDUCE_SUM:
            scaled = g * d.dtype.type(params[k])
            for j in range(a, a + b):
                d[args[j]] += scaled
        elif code == EXP:
            d[a] += g * r[out]
        elif code == LOG:
            d[a] += g / r[a]
        elif code == TANH:
            y = r[out]
            d[a] += g * (one - y * y)
        elif code == SIGMOID:
            y = r[out]
            d[a] += g * (one - y) * y
        elif code == RELU:
            d[a] += g * np.sign(r[out])
        elif code == SQRT:
            y = r[out]
            d[a] += g / (y + y)
        # COPY: its result takes no gradient


@jit
def value_and_grad_slices(
    lo, hi, forward_ins, backward_ins, args, signs, grad_signs, forward_params, backward_params, regs, grads,
    input_registers, inputs, output_registers, outputs, seed_registers, seeds, grad_registers, input_grads, with_grad,
):  # fmt: skip
    """``tapegrad.func.vmap``'s replay: slices ``lo`` to ``hi`` of a batch, one after another in
    this thread's own ``regs`` and ``grads``. Slice ``s`` loads ``inputs[s]`` into
    ``input_registers``, runs forward, copies ``output_registers`` to ``outputs[s]`` and, with
    ``with_grad``, runs backward and copies ``grad_registers``' gradients to ``input_grads[s]``."""
    for s in range(lo, hi):
        for i in range(len(input_registers)):
            regs[input_registers[i]] = inputs[s, i]
        forward(forward_ins, args, signs, forward_params, regs)
        for i in range(len(output_registers)):
            outputs[s, i] = regs[output_registers[i]]
        if with_grad:
            backward(backward_ins, args, grad_signs, backward_params, regs, grads, seed_registers, seeds)
            for i in range(len(grad_registers)):
                input_grads[s, i] = grads[grad_registers[i]]
