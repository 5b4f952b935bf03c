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
same bits; tests/test_register.py holds them to that. The codes and run instructions are
``instructions.py``'s.
"""

from __future__ import annotations

import numpy as np

from . import normalization, scalar, vmath
from .config import jit
from .instructions import (
    BASE,
    COPY,
    COUNT_SHIFT,
    DESCENDING,
    DIV,
    DIV_A,
    EXP,
    FIXED_B,
    LOG,
    MUL,
    MUL_A,
    REDUCE_SUM,
    RELU,
    RUN,
    SIGMOID,
    SOFTMAX,
    SOFTPLUS,
    SQRT,
    SUM,
    TANH,
)
from .memory import borrow

MAX_GROUP = 64  # the most operands of one SOFTMAX (the scratch it gathers them into)
SCRATCH_ROWS = 2 * MAX_GROUP + 2  # a lane kernel's softmax: terms, start, partial sums, one row


@jit
def _logaddexp0(x, log2):
    """numpy's logaddexp(0, x), as eager softplus computes it (``log2`` in x's type): a register
    program holds rows of a few elements, which eager computes by numpy's formulas, and gives
    their bits (the general replay's ``vmath.softplus`` rounds otherwise, by up to 1.6 ulp)."""
    if x > 0:
        return x + np.log1p(np.exp(-x))
    if x < 0:
        return np.log1p(np.exp(x))
    return x + log2 if x == x else x


@jit
def forward(ins, args, signs, params, regs, scratch):
    """Run the instructions ``ins`` in order; every result lands in ``regs``. ``scratch``
    (``MAX_GROUP`` of the registers' dtype) is the caller's: an array made here and only
    ``borrow``ed is freed at numba's next ``del``, and a softmax wrote through freed memory."""
    r = borrow(regs)
    t = borrow(scratch)
    zero = regs.dtype.type(0.0)
    threshold = regs.dtype.type(20.0)
    log2 = regs.dtype.type(np.log(2.0))
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
            accumulated = np.float64(0.0)  # in float64, as the general interpreter's sum_all
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
            r[out] = vmath.sigmoid(r[a])
        elif code == RELU:
            x = r[a]
            r[out] = x if x > zero or x != x else zero
        elif code == SQRT:
            r[out] = np.sqrt(r[a])
        elif code == COPY:
            r[out] = r[a]
        else:  # a run (RUN): last, so that the codes above stay one jump table
            count = (code >> COUNT_SHIFT) + 1
            step = -1 if code & DESCENDING else 1
            step_b = 0 if code & FIXED_B else step
            if step_b == 0 and step == 1 and (code & BASE) == MUL:  # a row times a number: its own
                y = r[b]  # loop, 1.2 against 1.5 ns an element on a chain
                for i in range(count):
                    r[out + i] = r[a + i] * y
            else:
                divide = (code & BASE) == DIV
                for i in range(count):
                    x = r[a + i * step]
                    y = r[b + i * step_b]
                    r[out + i * step] = x / y if divide else x * y


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
    threshold = r.dtype.type(20.0)  # softplus's (backward.SOFTPLUS_THRESHOLD)
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
        elif code == SOFTPLUS:  # the general rule's (backward.py): g * e / (e + 1), g above 20
            e = np.exp(r[a])
            d[a] += g if r[a] > threshold else g * e / (e + one)
        elif code == SOFTMAX:  # normalization.softmax_backward, into scattered operands
            y = r[out : out + b]
            weighted = d.dtype.type(normalization.dot(d[out : out + b], y))
            for j in range(b):
                d[args[a + j]] += y[j] * (d[out + j] - weighted)
        elif code == DIV:
            y = r[b]
            d[a] += g / y
            d[b] += -g * ((r[a] / y) / y)  # (as the tape's DIV rule divides twice)
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
        elif code == RELU:  # a select, as the general rule (``gate``): inf * 0 is not a gradient
            d[a] += scalar.gate(r[out], g)
        elif code == SQRT:
            y = r[out]
            d[a] += g / (y + y)
        elif code >= RUN:  # last, so that the codes above stay one jump table
            count = (code >> COUNT_SHIFT) + 1
            step = -1 if code & DESCENDING else 1
            step_b = 0 if code & FIXED_B else step
            base = code & BASE
            if step_b == 0 and step == -1 and base == MUL_A:  # a row times a number (as forward)
                y = r[b]
                for i in range(count):
                    d[a - i] += d[out - i] * y
                continue
            for i in range(count):
                g = d[out + i * step]
                y = r[b + i * step_b]
                if base == MUL_A:
                    d[a + i * step] += g * y
                elif base == DIV_A:
                    d[a + i * step] += g / y
                else:  # MUL
                    d[a + i * step] += g * y
                    d[b + i * step_b] += g * r[a + i * step]
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
    scratch = np.empty(MAX_GROUP, regs.dtype)
    for s in range(lo, hi):
        for i in range(len(input_registers)):
            regs[input_registers[i]] = inputs[s, i]
        forward(forward_ins, args, signs, forward_params, regs, scratch)
        for i in range(len(output_registers)):
            outputs[s, i] = regs[output_registers[i]]
        if with_grad:
            backward(backward_ins, args, grad_signs, backward_params, regs, grads, seed_registers, seeds)
            for i in range(len(grad_registers)):
                input_grads[s, i] = grads[grad_registers[i]]


# -- across a batch: one instruction over a block of lanes --------------------------------------
#
# ``tapegrad.func.vmap`` replays one program over many input sets. Run one set at a time, every
# instruction pays its dispatch (the switch, four loads of its encoding) for one scalar; here a
# block of ``lanes`` sets runs together, registers laid out ``[register, lane]``, and each
# instruction loops over the lanes, which LLVM vectorizes. ``lanes`` is a run-time value on
# purpose: a constant trip count was unrolled whole before the vectorizer saw the loop, and the
# unrolled lanes stayed scalar. Each lane does what ``forward``/``backward`` do for its set,
# operation for operation, so the bits are the same; only the sums inside a softmax need care
# (``SUM_PLAN_DOC``).
SUM_PLAN_DOC = """The softmax's sum of exponentials and its backward's dot are reductions LLVM may
reassociate (``normalization.exp_shifted`` and ``dot`` are compiled with ``reassoc``): the order
in which ``forward``/``backward`` add a row of ``n`` terms is the vectorizer's choice for that
function in that context, not a loop order in the source. A lane kernel cannot call them per lane
and get the same order (inlined elsewhere they vectorized differently), so it adds by a plan:
``plan[i] = (to, x, y)``, step ``i`` of ``n`` setting scratch row ``to`` to rows ``x + y``, where
rows ``0..n-1`` hold the terms, row ``n`` the sum's zero start and row ``n + 1 + i`` step ``i``'s
result. tapegrad/_register.py finds the plan that reproduces ``forward``/``backward`` by trial."""


@jit
def _summed(s, plan, n, lanes):
    """Add scratch rows ``0..n-1`` of ``s`` (``lanes`` wide) and a zero start by ``plan``
    (``SUM_PLAN_DOC``); returns the row holding the sum."""
    start = s[n * lanes : n * lanes + lanes]
    for lane in range(lanes):
        start[lane] = 0
    for i in range(n):
        x = s[plan[i, 1] * lanes : plan[i, 1] * lanes + lanes]
        y = s[plan[i, 2] * lanes : plan[i, 2] * lanes + lanes]
        to = s[plan[i, 0] * lanes : plan[i, 0] * lanes + lanes]
        for lane in range(lanes):
            to[lane] = x[lane] + y[lane]
    return plan[n - 1, 0] if n else n


@jit
def _softmax_lanes(r, args, a, b, out, s, plan, shift):
    """``normalization.softmax`` per lane: operands ``args[a:a + b]``, results ``out..out+b-1``;
    ``s`` scratch rows in the registers' dtype, ``shift`` one row."""
    lanes = len(shift)
    first = r[args[a] * lanes : args[a] * lanes + lanes]
    for lane in range(lanes):
        shift[lane] = first[lane]
    whole = b - b % 8
    if whole:  # normalization.largest's eight maxima, per lane
        for lane in range(lanes):
            m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = first[lane]
            for k in range(0, whole, 8):
                m0, m1 = max(m0, r[args[a + k] * lanes + lane]), max(m1, r[args[a + k + 1] * lanes + lane])
                m2, m3 = max(m2, r[args[a + k + 2] * lanes + lane]), max(m3, r[args[a + k + 3] * lanes + lane])
                m4, m5 = max(m4, r[args[a + k + 4] * lanes + lane]), max(m5, r[args[a + k + 5] * lanes + lane])
                m6, m7 = max(m6, r[args[a + k + 6] * lanes + lane]), max(m7, r[args[a + k + 7] * lanes + lane])
            shift[lane] = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for k in range(whole, b):
        x = r[args[a + k] * lanes : args[a + k] * lanes + lanes]
        for lane in range(lanes):
            shift[lane] = max(shift[lane], x[lane])
    for j in range(b):
        x = r[args[a + j] * lanes : args[a + j] * lanes + lanes]
        e = s[j * lanes : j * lanes + lanes]
        for lane in range(lanes):
            e[lane] = vmath.exp(x[lane] - shift[lane])
    total = _summed(s, plan, b, lanes)
    summed = s[total * lanes : total * lanes + lanes]
    one = r.dtype.type(1.0)
    for lane in range(lanes):
        shift[lane] = one / summed[lane]  # from here on: the scale
    for j in range(b):
        e = s[j * lanes : j * lanes + lanes]
        y = r[(out + j) * lanes : (out + j) * lanes + lanes]
        for lane in range(lanes):
            y[lane] = e[lane] * shift[lane]


@jit
def _softmax_backward_lanes(r, d, args, a, b, out, s, plan, weighted):
    """``backward``'s SOFTMAX per lane; ``s`` float64 scratch rows, ``weighted`` one row."""
    lanes = len(weighted)
    for j in range(b):
        g = d[(out + j) * lanes : (out + j) * lanes + lanes]
        y = r[(out + j) * lanes : (out + j) * lanes + lanes]
        term = s[j * lanes : j * lanes + lanes]
        for lane in range(lanes):
            term[lane] = g[lane] * y[lane]  # in the registers' dtype, then widened, as dot does
    total = _summed(s, plan, b, lanes)
    summed = s[total * lanes : total * lanes + lanes]
    for lane in range(lanes):
        weighted[lane] = summed[lane]
    for j in range(b):
        g = d[(out + j) * lanes : (out + j) * lanes + lanes]
        y = r[(out + j) * lanes : (out + j) * lanes + lanes]
        x = d[args[a + j] * lanes : args[a + j] * lanes + lanes]
        for lane in range(lanes):
            x[lane] += y[lane] * (g[lane] - weighted[lane])


@jit
def forward_lanes(
    ins, args, signs, params, regs, plans, lanes, scratch, first, inputs, input_registers, outputs, output_registers
):
    """``forward`` over the block of slices ``first`` to ``first + lanes`` of a batch: loads
    ``inputs[s]`` (one row per slice) into ``input_registers``, runs ``ins`` and copies
    ``output_registers`` to ``outputs[s]``. Register ``i`` of lane ``l`` is
    ``regs[i * lanes + l]`` (the caller fills the constants' once); ``plans[n]`` is the plan
    of a softmax's sum over ``n`` terms; ``scratch`` (the registers' dtype) has
    ``SCRATCH_ROWS * lanes`` elements. A block past the batch's end runs full width on copies of
    its last slice, whose results are dropped."""
    r = borrow(regs)
    s = borrow(scratch)
    shift = s[(SCRATCH_ROWS - 1) * lanes : SCRATCH_ROWS * lanes]
    width = min(lanes, len(inputs) - first)
    for i in range(len(input_registers)):
        x = r[input_registers[i] * lanes : input_registers[i] * lanes + lanes]
        for lane in range(lanes):
            x[lane] = inputs[first + min(lane, width - 1), i]
    zero = regs.dtype.type(0.0)
    threshold = regs.dtype.type(20.0)
    log2 = regs.dtype.type(np.log(2.0))
    for k in range(ins.shape[0]):
        code = ins[k, 0]
        out = ins[k, 1]
        a = ins[k, 2]
        b = ins[k, 3]
        o = r[out * lanes : out * lanes + lanes]
        if code == SUM:
            x = r[args[a] * lanes : args[a] * lanes + lanes]
            sign = signs[a]
            for lane in range(lanes):
                o[lane] = x[lane] * sign
            for j in range(a + 1, a + b):
                x = r[args[j] * lanes : args[j] * lanes + lanes]
                sign = signs[j]
                for lane in range(lanes):
                    o[lane] += x[lane] * sign
            continue
        if code == SOFTMAX:
            _softmax_lanes(r, args, a, b, out, s, plans[b], shift)
            continue
        if code == REDUCE_SUM:
            accumulated = np.zeros(lanes)  # float64, as forward's
            for j in range(a, a + b):
                x = r[args[j] * lanes : args[j] * lanes + lanes]
                for lane in range(lanes):
                    accumulated[lane] += x[lane]
            scale = params[k]
            for lane in range(lanes):
                o[lane] = accumulated[lane] * scale
            continue
        x = r[a * lanes : a * lanes + lanes]
        if code == MUL or code == DIV:
            y = r[b * lanes : b * lanes + lanes]
            if code == MUL:
                for lane in range(lanes):
                    o[lane] = x[lane] * y[lane]
            else:
                for lane in range(lanes):
                    o[lane] = x[lane] / y[lane]
        elif code == SOFTPLUS:
            for lane in range(lanes):
                v = x[lane]
                o[lane] = v if v > threshold else _logaddexp0(v, log2)
        elif code == EXP:
            for lane in range(lanes):
                o[lane] = vmath.exp(x[lane])
        elif code == LOG:
            for lane in range(lanes):
                o[lane] = vmath.log(x[lane])
        elif code == TANH:
            for lane in range(lanes):
                o[lane] = vmath.tanh(x[lane])
        elif code == SIGMOID:  # from exp(-|x|), as the eager forward: no 0 for large negative x
            for lane in range(lanes):
                o[lane] = vmath.sigmoid(x[lane])
        elif code == RELU:
            for lane in range(lanes):
                v = x[lane]
                o[lane] = v if v > zero or v != v else zero
        elif code == SQRT:
            for lane in range(lanes):
                o[lane] = np.sqrt(x[lane])
        else:  # COPY
            for lane in range(lanes):
                o[lane] = x[lane]
    for i in range(len(output_registers)):
        y = r[output_registers[i] * lanes : output_registers[i] * lanes + lanes]
        for lane in range(width):
            outputs[first + lane, i] = y[lane]


@jit
def backward_lanes(
    ins, args, signs, params, regs, grads, plans, lanes, sums, scratch, first, seed_registers, seeds, input_grads,
    grad_registers,
):  # fmt: skip
    """``backward`` over the block ``forward_lanes`` just ran: zeroes ``grads`` (laid out as
    ``regs``), adds ``seeds`` (float64, the same for every slice) at ``seed_registers``, runs
    ``ins`` and copies ``grad_registers``' gradients to ``input_grads[s]``. ``sums`` (float64)
    and ``scratch`` (the registers' dtype) have ``SCRATCH_ROWS * lanes`` elements."""
    r = borrow(regs)
    d = borrow(grads)
    s = borrow(sums)
    weighted = borrow(scratch)[:lanes]
    for i in range(len(grads)):
        d[i] = 0
    for i in range(len(seed_registers)):
        seed = d.dtype.type(seeds[i])
        x = d[seed_registers[i] * lanes : seed_registers[i] * lanes + lanes]
        for lane in range(lanes):
            x[lane] += seed
    threshold = r.dtype.type(20.0)  # softplus's (backward.SOFTPLUS_THRESHOLD)
    one = r.dtype.type(1.0)
    for k in range(ins.shape[0]):
        code = ins[k, 0]
        out = ins[k, 1]
        a = ins[k, 2]
        b = ins[k, 3]
        g = d[out * lanes : out * lanes + lanes]
        if code == SUM or code == REDUCE_SUM:
            # One loop for both (fewer loops to vectorize, less to compile): each term takes g
            # times its sign (SUM; 0: no gradient slot) or the scale (REDUCE_SUM), in backward's
            # order: a folded SUM chain ((t0 + t1) + t2) + t3 reaches t3, t2, then t0 and t1.
            scale = d.dtype.type(params[k])
            tail = max(b - 2, 0)
            for t in range(b):
                if code == REDUCE_SUM:
                    j = a + t
                    factor = scale
                else:
                    j = a + b - 1 - t if t < tail else a + t - tail
                    factor = signs[j]
                    if factor == 0:
                        continue
                x = d[args[j] * lanes : args[j] * lanes + lanes]
                for lane in range(lanes):
                    x[lane] += g[lane] * factor
            continue
        if code == SOFTMAX:
            _softmax_backward_lanes(r, d, args, a, b, out, s, plans[b], weighted)
            continue
        if code == COPY:
            continue
        da = d[a * lanes : a * lanes + lanes]
        ra = r[a * lanes : a * lanes + lanes]
        y = r[out * lanes : out * lanes + lanes]
        if code == MUL or code == MUL_A or code == EXP:  # g times b's value, or exp's result
            v = y if code == EXP else r[b * lanes : b * lanes + lanes]
            for lane in range(lanes):
                da[lane] += g[lane] * v[lane]
            if code == MUL:  # after a's: x * x adds to one gradient twice, in this order
                db = d[b * lanes : b * lanes + lanes]
                for lane in range(lanes):
                    db[lane] += g[lane] * ra[lane]
        elif code == DIV or code == DIV_A or code == LOG:  # g over b's value, or log's operand
            v = ra if code == LOG else r[b * lanes : b * lanes + lanes]
            for lane in range(lanes):
                da[lane] += g[lane] / v[lane]
            if code == DIV:
                db = d[b * lanes : b * lanes + lanes]
                for lane in range(lanes):
                    db[lane] += -g[lane] * ((ra[lane] / v[lane]) / v[lane])
        elif code == SOFTPLUS:
            for lane in range(lanes):  # as above
                e = np.exp(ra[lane])
                da[lane] += g[lane] if ra[lane] > threshold else g[lane] * e / (e + one)
        elif code == TANH:
            for lane in range(lanes):
                da[lane] += g[lane] * (one - y[lane] * y[lane])
        elif code == SIGMOID:
            for lane in range(lanes):
                da[lane] += g[lane] * (one - y[lane]) * y[lane]
        elif code == RELU:
            for lane in range(lanes):
                da[lane] += scalar.gate(y[lane], g[lane])
        elif code == SQRT:
            for lane in range(lanes):
                da[lane] += g[lane] / (y[lane] + y[lane])
    width = min(lanes, len(input_grads) - first)
    for i in range(len(grad_registers)):
        x = d[grad_registers[i] * lanes : grad_registers[i] * lanes + lanes]
        for lane in range(width):
            input_grads[first + lane, i] = x[lane]


@jit
def lanes_blocks(
    lo, hi, lanes, with_grad, forward_ins, args, signs, forward_params, regs, forward_plans, scratch, inputs,
    input_registers, outputs, output_registers, backward_ins, grad_signs, backward_params, grads, backward_plans,
    sums, seeds, input_grads, grad_registers,
):  # fmt: skip
    """``forward_lanes``, then with ``with_grad`` ``backward_lanes``, for each block of slices
    ``lo`` to ``hi`` (block ``b`` starts at slice ``b * lanes``): one call per thread. Called a
    block at a time, each return needed the GIL, which a thread recording meanwhile
    (``func._Speculation``) kept until its recording ended (``_threads.waking``)."""
    for block in range(lo, hi):
        first = block * lanes
        forward_lanes(
            forward_ins, args, signs, forward_params, regs, forward_plans, lanes, scratch, first, inputs,
            input_registers, outputs, output_registers,
        )  # fmt: skip
        if with_grad:
            backward_lanes(
                backward_ins, args, grad_signs, backward_params, regs, grads, backward_plans, lanes, sums, scratch,
                first, output_registers, seeds, input_grads, grad_registers,
            )  # fmt: skip
