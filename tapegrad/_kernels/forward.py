"""The replay interpreter: one compiled call recomputes every row of a recorded tape.

Values live in two arenas (float32, float64; integers and booleans recorded inside
``tapegrad.record`` are held exactly as float64), each row at ``offsets[r]``. The formulas are the
facade's numpy ones, element by element, so replay agrees with eager evaluation: exactly for
arithmetic, to a few ulp where libm and numpy's SIMD functions round differently, and to
summation order for reductions. Guards are checked in tape order; the first that comes out
differently from the recording stops the sweep.
"""

from __future__ import annotations

import numpy as np

from . import config, convolution, families, generated, normalization, scalar, tiers, vmath
from .backward import SMALL, _groups, _shape, _split, product_shape
from .blas import product
from .config import inline, jit
from .families import call, make_frame
from .memory import borrow
from .strided import ORIGIN, contiguous_strides, is_block, reduced_strides, strided_accumulate

RULE_NAMES = (
    "input neg softplus add_scalar sub_scalar "
    "rsub_scalar mul_scalar div_scalar pow_scalar rpow_scalar add sub mul div pow sum_all sum_dim "
    "norm softmax view dot mv mm bmm copy cast concat lt le gt ge eq ne guard log_softmax gather_rows "
    "sign floor round leaky_relu elu python "
    "maximum minimum clamp_min clamp_max where extreme reduce_weights argmax cumsum prod logsumexp var std layer_norm "
    "assign nll_targets nll_bad lstm_cell batch_norm conv2d lstm_sequence"
).split()
RULES = {name: number for number, name in enumerate(RULE_NAMES)}
(INPUT, NEG, SOFTPLUS, ADD_SCALAR, SUB_SCALAR, RSUB_SCALAR, MUL_SCALAR, DIV_SCALAR, POW_SCALAR,
 RPOW_SCALAR, ADD, SUB, MUL, DIV, POW, SUM_ALL, SUM_DIM, NORM, SOFTMAX, VIEW, DOT, MV, MM, BMM, COPY,
 CAST, CONCAT, LT, LE, GT, GE, EQ, NE, GUARD, LOG_SOFTMAX, GATHER_ROWS, SIGN, FLOOR, ROUND, LEAKY_RELU, ELU, PYTHON, MAXIMUM, MINIMUM, CLAMP_MIN, CLAMP_MAX, WHERE, EXTREME,
 REDUCE_WEIGHTS, ARGMAX, CUMSUM, PROD, LOGSUMEXP, VAR, STD, LAYER_NORM, ASSIGN, NLL_TARGETS, NLL_BAD,
 LSTM_CELL, BATCH_NORM, CONV2D, LSTM_SEQUENCE) = range(len(RULE_NAMES))  # fmt: skip

# Which code runs each rule, by name: the sweep dispatches on ``PATHS[rule]``, never on where a
# rule's number falls, so adding a rule anywhere in RULE_NAMES cannot send another to the wrong
# code. Rules not listed here (input, cast, guard, argmax) are the sweep's own; any other rule
# reaching it is "no replay rule". Each path but COMPARE is a family (``FAMILIES``).
(COMPARE_PATH, GROUPED_PATH, ELEMENT_SWITCH_PATH, GENERATED_PATH, ELEMENTWISE_PATH, STRUCTURAL_PATH, MATMUL_PATH,
 NORMALIZATION_PATH, NORM_PATH, LAYERS_PATH) = range(1, 11)  # fmt: skip
_PATH_RULES = {
    COMPARE_PATH: "lt le gt ge eq ne",
    GROUPED_PATH: "maximum minimum clamp_min clamp_max where extreme reduce_weights cumsum prod logsumexp var std",
    # A family of its own: the tutorial's replay demo reads ``y.data.norm()``, and the grouped
    # family it sat in made that first replay compile 2.9 s more than this one's 0.3 s.
    NORM_PATH: "norm",
    # Unary rules that share one per-element switch in ``_elementwise_forward`` (they are rare
    # enough in hot loops that a branch per element is cheaper to compile than a loop each).
    ELEMENT_SWITCH_PATH: "sign floor round leaky_relu elu",
    ELEMENTWISE_PATH: "neg softplus add_scalar sub_scalar rsub_scalar mul_scalar div_scalar pow_scalar rpow_scalar "
    "add sub mul div pow copy assign",
    STRUCTURAL_PATH: "sum_all sum_dim gather_rows view concat nll_targets nll_bad",  # sum_all: above SUM_IN_SWEEP
    MATMUL_PATH: "dot mv mm bmm",
    # Their own family, apart from the views: each half compiles in about half the time.
    NORMALIZATION_PATH: "softmax log_softmax layer_norm lstm_cell",
    # Whole layers in one row each, their kernels the largest: a family compiled only for them.
    LAYERS_PATH: "conv2d batch_norm lstm_sequence",
}
# Ops declared by formula replay through their own families (``generated.REPLAY_FAMILIES``),
# numbered after the rules above.
GENERATED_BASE = len(RULE_NAMES)
RULES.update({name: GENERATED_BASE + number for name, number in generated.RULES.items()})
PATHS = np.zeros(len(RULES), np.int64)
for _path, _names in _PATH_RULES.items():
    for _name in _names.split():
        PATHS[RULES[_name]] = _path
PATHS[GENERATED_BASE:] = GENERATED_PATH

# Statuses of a sweep (0: done). MISSING + slot: the row needs family ``slot``, not loaded yet.
GUARD_FAILED, NO_RULE, KERNEL_FAILED, MISSING = 1, 3, 4, 16

OPCODE_MASK = (1 << 16) - 1  # tapegrad._tape.OPCODE_MASK
RULE_MASK = (1 << 16) - 1  # ``rules`` holds path << 16 | rule per opcode (_ops.replay_arrays)
FLOAT64 = 1


# Sums of up to this many elements run in the sweep's call-free path, one accumulator; larger
# ones in the structural family's ``_total``, whose blocked loop, inlined into the sweep, made
# its first compile 0.45 s longer (the tutorial's first replay, which never sums that much).
SUM_IN_SWEEP = 64


@inline
def _compensated(total, compensation, term):
    """Neumaier's step: ``(total + term, compensation)`` with the rounding error of that sum added
    to the compensation, which the caller adds to the total at the end."""
    running = total + term
    if abs(total) >= abs(term):
        compensation += (total - running) + term
    else:
        compensation += (term - running) + total
    return running, compensation


@inline
def _with_compensation(total, compensation):
    """The compensated sum, or the total itself where it is infinite or NaN (whose compensation,
    inf - inf, is NaN: an infinite sum replayed as NaN)."""
    return total + compensation if np.isfinite(total) else total


@inline
def _total(values, start, count):
    """The sum of ``values[start : start + count]`` in float64, as numpy's pairwise sum blocks
    it: eight accumulators of the values' dtype over each block of 128, blocks added in float64
    (no more error than numpy's float32 sum). One accumulator made a chain of dependent adds,
    4 cycles an element: 4.2 us for a (128, 64) weight, now 1.1 us (float32)."""
    total, compensation = _add_blocks(values[start : start + count], np.float64(0.0), np.float64(0.0))
    return _with_compensation(total, compensation)


@inline
def _add_blocks(values, total, compensation):
    """``_total``'s loop: ``values`` (indexed from 0: see batched._copy) added to a running
    ``total`` and its ``compensation``, 128 elements at a time, then its last elements one by
    one. Over consecutive pieces of whole blocks (``fused``), the same bits as over the whole."""
    zero = values.dtype.type(0)
    count = len(values)
    blocks = count // 128
    for block in range(blocks):
        base = 128 * block
        t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = zero
        for j in range(16):
            i = base + 8 * j
            t0 += values[i]
            t1 += values[i + 1]
            t2 += values[i + 2]
            t3 += values[i + 3]
            t4 += values[i + 4]
            t5 += values[i + 5]
            t6 += values[i + 6]
            t7 += values[i + 7]
        # the blocks' sums compensated (Neumaier): added in sequence, 10^7 float64 elements
        # kept 75x fewer digits than numpy's pairwise sum
        block_sum = np.float64(((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7)))
        total, compensation = _compensated(total, compensation, block_sum)
    for i in range(128 * blocks, count):
        total += values[i]
    return total, compensation


@inline
def _scaled(total, scale, count):
    """A ``sum_all`` row's result from its input's sum: ``scale`` is 1 or -1 (sum, nll_loss of
    ``reduction="sum"``) or +-1/count (mean, nll_loss's mean). A mean divides by ``count``, as
    PyTorch's and the eager one do (a multiplication by 1/count rounds otherwise). ``total`` is
    in the values' dtype already, as eager's sum is before it divides: a float32 total beyond
    float32's range is inf there, and a mean of it too (kept in float64, the mean came back
    finite)."""
    if scale == 1.0:
        return total
    if scale == -1.0:
        return -total
    quotient = total / count
    return quotient if scale > 0 else -quotient


@inline
def _small_forward(rule, r, numel, rows, params, layouts, aux, offsets, values):
    """Rows of a few elements without slices or a call, and ``sum_all`` (its result is one
    element). False: not handled here."""
    a = rows[r, 1]
    b = rows[r, 2]
    o = offsets[r]
    oa = offsets[a]
    s = values.dtype.type(params[r, 5])
    if rule == ADD:
        ob = offsets[b]
        for i in range(numel):
            values[o + i] = values[oa + i] + values[ob + i]
    elif rule == SUB:
        ob = offsets[b]
        for i in range(numel):
            values[o + i] = values[oa + i] - values[ob + i]
    elif rule == MUL:
        ob = offsets[b]
        for i in range(numel):
            values[o + i] = values[oa + i] * values[ob + i]
    elif rule == ADD_SCALAR:
        for i in range(numel):
            values[o + i] = values[oa + i] + s
    elif rule == MUL_SCALAR:
        for i in range(numel):
            values[o + i] = values[oa + i] * s
    elif rule == VIEW and numel == 1:
        values[o] = values[oa + aux[rows[r, 3]]]
    elif rule == SUM_ALL and layouts[rows[a, 4], 1] <= SUM_IN_SWEEP:  # larger: the structural family
        count = layouts[rows[a, 4], 1]
        total = np.float64(0.0)  # float64 accumulation: closer to numpy's pairwise float32 sum
        for i in range(count):
            total += values[oa + i]
        values[o] = _scaled(values.dtype.type(total), params[r, 5], count)
    elif rule == NEG:
        for i in range(numel):
            values[o + i] = -values[oa + i]
    elif rule == COPY:  # detach, .data: what Python control flow reads (the tutorial's loop)
        for i in range(numel):
            values[o + i] = values[oa + i]
    else:  # (softplus too: vmath's, inlined here, cost every first replay 0.6 s of compile)
        return False
    return True


@jit
def _elementwise_forward(rule, path, r, rows, params, layouts, offsets, values):
    """Rules whose output element i reads element i of its inputs. False: not one."""
    a = rows[r, 1]
    b = rows[r, 2]
    numel = layouts[rows[r, 4], 1]
    out = values[offsets[r] : offsets[r] + numel]
    numel_a = layouts[rows[a, 4], 1] if a >= 0 else 0
    numel_b = layouts[rows[b, 4], 1] if b >= 0 else 0
    x = values[offsets[a] : offsets[a] + numel_a] if a >= 0 else values[:0]
    y = values[offsets[b] : offsets[b] + numel_b] if b >= 0 else values[:0]
    zero = values.dtype.type(0.0)
    one = values.dtype.type(1.0)
    s = values.dtype.type(params[r, 5])

    if rule == NEG:
        for i in range(numel):
            out[i] = -x[i]
    elif rule == SOFTPLUS:
        for i in range(numel):
            out[i] = vmath.softplus(x[i])
    elif rule == ADD_SCALAR:
        for i in range(numel):
            out[i] = x[i] + s
    elif rule == SUB_SCALAR:
        for i in range(numel):
            out[i] = x[i] - s
    elif rule == RSUB_SCALAR:
        for i in range(numel):
            out[i] = s - x[i]
    elif rule == MUL_SCALAR:
        for i in range(numel):
            out[i] = x[i] * s
    elif rule == DIV_SCALAR:
        for i in range(numel):
            out[i] = x[i] / s
    elif rule == POW_SCALAR:  # the cases of tapegrad._ops._power, so replay matches eager
        if s == values.dtype.type(2.0):
            for i in range(numel):
                out[i] = x[i] * x[i]
        elif s == values.dtype.type(3.0):
            for i in range(numel):
                out[i] = x[i] * x[i] * x[i]
        elif s == values.dtype.type(0.5):
            for i in range(numel):
                out[i] = np.sqrt(x[i])
        elif s == -one:
            for i in range(numel):
                out[i] = one / x[i]
        else:
            for i in range(numel):
                out[i] = x[i] ** s
    elif rule == RPOW_SCALAR:
        for i in range(numel):
            out[i] = s ** x[i]
    elif rule == ADD:
        for i in range(numel):
            out[i] = x[i] + y[i]
    elif rule == SUB:
        for i in range(numel):
            out[i] = x[i] - y[i]
    elif rule == MUL:
        for i in range(numel):
            out[i] = x[i] * y[i]
    elif rule == DIV:
        for i in range(numel):
            out[i] = x[i] / y[i]
    elif rule == POW:
        for i in range(numel):
            out[i] = x[i] ** y[i]
    elif path == ELEMENT_SWITCH_PATH:
        for i in range(numel):
            v = x[i]
            if rule == SIGN:
                out[i] = scalar.sign(v)
            elif rule == FLOOR:
                out[i] = np.floor(v)
            elif rule == ROUND:
                out[i] = np.rint(v)
            elif rule == LEAKY_RELU:
                out[i] = v if v > zero else v * s
            elif rule == ELU:
                out[i] = v if v > zero else np.expm1(v) * s
            else:  # a rule listed under ELEMENT_SWITCH_PATH without a case here
                return False
    elif rule == COPY:
        for i in range(numel):
            out[i] = x[i]
    elif rule == ASSIGN:  # the value of in1, written in place outside autograd (_record.in_place)
        for i in range(numel):
            out[i] = y[i]
    else:
        return False
    return True


@jit
def _structural_forward(rule, r, rows, params, layouts, dims, aux, offsets, values):
    """Sums along a dimension, views, gathers and joins: rules that need shapes."""
    a = rows[r, 1]
    numel = layouts[rows[r, 4], 1]
    out = values[offsets[r] : offsets[r] + numel]
    numel_a = layouts[rows[a, 4], 1] if a >= 0 else 0
    x = values[offsets[a] : offsets[a] + numel_a] if a >= 0 else values[:0]
    zero = values.dtype.type(0.0)
    one = values.dtype.type(1.0)
    s = values.dtype.type(params[r, 5])

    if rule == SUM_ALL:  # of more than SUM_IN_SWEEP elements (fewer: ``_small_forward``)
        # float32: vectorized in float64, as eager's large sums (2^19 elements: 38 us, against 85
        # in _total's eight running sums)
        if values.itemsize == 4:
            whole = normalization.total(x)
        else:
            whole = _total(x, 0, numel_a)
        out[0] = _scaled(values.dtype.type(whole), params[r, 5], numel_a)
    elif rule == SUM_DIM:
        shape = _shape(layouts, dims, rows[a, 4])
        out[:] = zero
        mask = rows[r, 3]
        leading = 0  # the sum is over the leading dimensions alone when mask is 0b0..01..1
        while (mask >> leading) & 1:
            leading += 1
        ndim = len(shape)
        trailing = 0  # the sum is over the trailing dimensions alone when mask is 0b1..10..0
        while (mask >> (ndim - 1 - trailing)) & 1 and trailing < ndim:
            trailing += 1
        if values.itemsize == 4 and leading > 0 and mask == (1 << leading) - 1:  # eager's float64 column totals
            normalization.column_totals(x, numel, out)
        elif trailing > 0 and mask == (1 << ndim) - (1 << (ndim - trailing)):  # rows: summed as sum() sums
            width = numel_a // numel if numel else 0
            for i in range(numel):
                if values.itemsize == 4:
                    out[i] = normalization.total(x[i * width : (i + 1) * width])
                else:
                    out[i] = _total(x, i * width, width)
        else:
            strided_accumulate(
                out, ORIGIN, reduced_strides(shape, mask), x, ORIGIN, contiguous_strides(shape), shape, one
            )
        if params[r, 5] != 1.0:
            for i in range(numel):
                out[i] = out[i] * s
    elif rule == GATHER_ROWS:
        start = rows[r, 3]
        count = aux[start]
        width = numel // count if count else 0
        for i in range(count):  # (slices from 0, as the backward's)
            source = aux[start + 1 + i] * width
            picked, target = x[source : source + width], out[i * width : (i + 1) * width]
            for j in range(width):
                target[j] = picked[j]
    elif rule == NLL_TARGETS:  # -(the picks summed in float64, in order), / their count for the mean
        b = rows[r, 2]
        count = layouts[rows[b, 4], 1]
        shape = _shape(layouts, dims, rows[a, 4])
        classes = shape[len(shape) - 1]
        targets = values[offsets[b] : offsets[b] + count]
        ignore = rows[r, 3]
        total = np.float64(0.0)
        kept = 0
        for i in range(count):
            target = targets[i]
            if target == ignore:
                continue
            if not (target >= 0 and target < classes):  # a replay's nll_bad guard stops before
                return False
            total += x[i * classes + int(target)]
            kept += 1
        if params[r, 5] == 1.0:
            out[0] = -(total / kept) if kept else np.nan
        else:
            out[0] = -total
    elif rule == NLL_BAD:  # x: the targets; the classes in the parameter slot
        ignore = rows[r, 3]
        bad = 0
        for i in range(numel_a):
            if x[i] != ignore and not (x[i] >= 0 and x[i] < params[r, 5]):
                bad += 1
        out[0] = bad
    elif rule == VIEW:
        shape = _shape(layouts, dims, rows[r, 4])
        start = rows[r, 3]
        strides = aux[start + 1 : start + 1 + len(shape)]
        if is_block(shape, strides):
            block = x[aux[start] : aux[start] + numel]
            for i in range(numel):
                out[i] = block[i]
        else:  # each element takes one of x's: onto -0.0, which adds no sign (onto 0.0, -0.0 came out 0.0)
            out[:] = -zero
            strided_accumulate(out, ORIGIN, contiguous_strides(shape), x, aux[start], strides, shape, one)
    elif rule == CONCAT:  # aux as in the backward rule: count, dim, row deltas, extents
        start = rows[r, 3]
        count, dim = aux[start], aux[start + 1]
        outer, extent, inner = _split(_shape(layouts, dims, rows[r, 4]), dim)
        position = 0
        for index in range(count):
            source = r - aux[start + 2 + index]
            width = aux[start + 2 + count + index] * inner
            part = values[offsets[source] : offsets[source] + outer * width]
            for o in range(outer):
                for i in range(width):
                    out[o * extent * inner + position + i] = part[o * width + i]
            position += width
    else:
        return False
    return True


@jit
def _normalization_forward(rule, r, rows, params, layouts, dims, offsets, values):
    """softmax, log_softmax and layer_norm: normalisations over groups of elements; and one
    LSTM step (``normalization.lstm_cell``)."""
    a = rows[r, 1]
    numel = layouts[rows[r, 4], 1]
    if rule == LSTM_CELL:  # a: the gates (n, 4 * hidden); b: the cell state (n, hidden)
        b = rows[r, 2]
        gates = values[offsets[a] : offsets[a] + 2 * numel]
        c = values[offsets[b] : offsets[b] + numel // 2]
        normalization.lstm_cell(gates, c, values[offsets[r] : offsets[r] + numel], rows[r, 3])
        return True
    out = values[offsets[r] : offsets[r] + numel]
    x = values[offsets[a] : offsets[a] + numel]
    zero = values.dtype.type(0.0)
    if rule == SOFTMAX:
        outer, extent, inner = _split(_shape(layouts, dims, rows[r, 4]), rows[r, 3])
        if inner == 1 and extent > 0:  # the last dimension: contiguous groups
            normalization.softmax_groups(x, out, extent, False)
            return True
        for o in range(outer):
            for i in range(inner):
                base = o * extent * inner + i
                largest = x[base]
                for k in range(1, extent):
                    largest = max(largest, x[base + k * inner])
                total = zero
                for k in range(extent):
                    out[base + k * inner] = vmath.exp(x[base + k * inner] - largest)
                    total += out[base + k * inner]
                for k in range(extent):
                    out[base + k * inner] = out[base + k * inner] / total
    elif rule == LOG_SOFTMAX:
        outer, extent, inner = _split(_shape(layouts, dims, rows[r, 4]), rows[r, 3])
        if inner == 1 and extent > 0:
            normalization.softmax_groups(x, out, extent, True)
            return True
        for o in range(outer):
            for i in range(inner):
                base = o * extent * inner + i
                largest = x[base]
                for k in range(1, extent):
                    largest = max(largest, x[base + k * inner])
                total = zero
                for k in range(extent):
                    total += vmath.exp(x[base + k * inner] - largest)
                log_total = np.log(total)
                for k in range(extent):
                    out[base + k * inner] = x[base + k * inner] - largest - log_total
    elif rule == LAYER_NORM:
        normalization.layer_norm(x, out, rows[r, 3], params[r, 5])
    else:
        return False
    return True


@jit
def _layers_forward(rule, r, rows, params, layouts, dims, aux, offsets, values):
    """Whole layers in one row each: conv2d (``convolution``), batch_norm and an LSTM direction's
    steps (``normalization``): a family of their own, compiled only for the tapes that have them."""
    a = rows[r, 1]
    b = rows[r, 2]
    numel = layouts[rows[r, 4], 1]
    out = values[offsets[r] : offsets[r] + numel]
    x = values[offsets[a] : offsets[a] + layouts[rows[a, 4], 1]]
    if rule == CONV2D:  # a: the input (N, C, H, W); b: the weight; iparam: its parameters in aux
        w = values[offsets[b] : offsets[b] + layouts[rows[b, 4], 1]]
        convolution.conv2d(x, w, out, convolution.row_geometry(r, rows, layouts, dims, aux))
    elif rule == BATCH_NORM:  # each channel (dimension 1) over the others; b: the weight or -1; param: eps
        outer, channels, inner = _split(_shape(layouts, dims, rows[r, 4]), 1)
        w = values[offsets[b] : offsets[b] + channels] if b >= 0 else values[:0]
        stats = np.empty(2 * channels, np.float64)
        normalization.batch_norm(x, w, out, outer, channels, inner, params[r, 5], stats)
    elif rule == LSTM_SEQUENCE:  # a: projections (h0, c0 after, or zero); b: w_hh; iparam: reversed
        # (the result: (steps, 2, n, hidden))
        shape = _shape(layouts, dims, rows[r, 4])
        steps, n, hidden = shape[0], shape[2], shape[3]
        inputs = values[offsets[a] : offsets[a] + layouts[rows[a, 4], 1]]
        w = values[offsets[b] : offsets[b] + layouts[rows[b, 4], 1]]
        normalization.lstm_sequence(inputs, w, values[offsets[r] : offsets[r] + numel], steps, n, hidden, rows[r, 3])
    else:
        return False
    return True


@jit
def _matmul_forward(rule, r, rows, layouts, dims, offsets, values):
    """Products: dot, mv, mm, bmm (BLAS, which needs scipy: blas.product)."""
    a = rows[r, 1]
    b = rows[r, 2]
    numel = layouts[rows[r, 4], 1]
    out = values[offsets[r] : offsets[r] + numel]
    numel_a = layouts[rows[a, 4], 1] if a >= 0 else 0
    numel_b = layouts[rows[b, 4], 1] if b >= 0 else 0
    x = values[offsets[a] : offsets[a] + numel_a] if a >= 0 else values[:0]
    y = values[offsets[b] : offsets[b] + numel_b] if b >= 0 else values[:0]
    zero = values.dtype.type(0.0)

    if rule == DOT:  # BLAS's, as eager's np.dot (a running sum lost 25x its digits at 10^6)
        out[0] = np.dot(x, y) if numel_a else zero
    elif rule == MV or rule == MM or rule == BMM:
        batch, m, k, n, ta, tb = product_shape(r, rows, layouts, dims, rule == MV, rule == BMM)
        if m * k * n == 0:
            out[:] = zero
            return True
        size = values.itemsize
        arena = values.ctypes.data
        for index in range(batch):  # into the slot: no temporary (blas.py)
            left = arena + (offsets[a] + index * m * k) * size
            right = arena + (offsets[b] + index * k * n) * size
            result = arena + (offsets[r] + index * m * n) * size
            product(ta, tb, m, n, k, 1.0, left, m if ta else k, right, k if tb else n, 0.0, result, n, values)
    else:
        return False
    return True


@jit
def _grouped_forward(rule, r, rows, params, layouts, dims, offsets, values):
    """Selections (maximum, clamp, where) and reductions along one dimension (``iparam``; -1:
    all elements), as the facade computes them with numpy."""
    a = rows[r, 1]
    b = rows[r, 2]
    numel = layouts[rows[r, 4], 1]
    numel_a = layouts[rows[a, 4], 1]
    out = values[offsets[r] : offsets[r] + numel]
    x = values[offsets[a] : offsets[a] + numel_a]
    zero = values.dtype.type(0.0)
    s = values.dtype.type(params[r, 5])
    if rule == MAXIMUM or rule == MINIMUM:
        y = values[offsets[b] : offsets[b] + numel]
        for i in range(numel):
            if x[i] != x[i] or y[i] != y[i]:  # numpy's maximum propagates NaN
                out[i] = x[i] + y[i]
            elif rule == MAXIMUM:
                out[i] = max(x[i], y[i])
            else:
                out[i] = min(x[i], y[i])
        return True
    if rule == CLAMP_MIN or rule == CLAMP_MAX:
        for i in range(numel):
            if x[i] != x[i]:
                out[i] = x[i]
            else:
                out[i] = max(x[i], s) if rule == CLAMP_MIN else min(x[i], s)
        return True
    if rule == WHERE:
        y = values[offsets[b] : offsets[b] + numel]
        condition = values[offsets[r - rows[r, 3]] : offsets[r - rows[r, 3]] + numel]
        for i in range(numel):
            out[i] = x[i] if condition[i] != zero else y[i]
        return True
    outer, extent, inner = _groups(layouts, dims, rows[a, 4], rows[r, 3])
    for o in range(outer):
        for i in range(inner):
            base = o * extent * inner + i
            if rule == CUMSUM:  # summed in float64, as PyTorch's CPU kernel sums float32
                total = np.float64(0.0)
                for k in range(extent):
                    total += np.float64(x[base + k * inner])
                    out[base + k * inner] = total
            elif rule == EXTREME or rule == REDUCE_WEIGHTS:
                _extreme_group(x, out, rule == REDUCE_WEIGHTS, params[r, 5], base, extent, inner, o * inner + i)
            elif rule == PROD:
                product = values.dtype.type(1.0)
                for k in range(extent):
                    product *= x[base + k * inner]
                out[o * inner + i] = product
            elif rule == LOGSUMEXP:
                largest = x[base] if extent else zero  # (an empty group: x[base] is another row's)
                for k in range(1, extent):
                    largest = max(largest, x[base + k * inner])
                if np.isinf(largest):
                    largest = zero
                # in float64, compensated (Neumaier): in the dtype, or in float64 as it came, a long
                # group's total lost 25 to 45x the digits of numpy's pairwise sum
                total = np.float64(0.0)
                compensation = np.float64(0.0)
                for k in range(extent):
                    term = np.float64(vmath.exp(x[base + k * inner] - largest))
                    total, compensation = _compensated(total, compensation, term)
                out[o * inner + i] = values.dtype.type(np.log(_with_compensation(total, compensation))) + largest
            elif rule == VAR or rule == STD:
                mean = np.float64(0.0)  # float64 accumulation, as numpy's pairwise sums are close to it
                for k in range(extent):
                    mean += x[base + k * inner]
                mean /= extent
                total = np.float64(0.0)
                spread = False
                for k in range(extent):
                    total += (x[base + k * inner] - mean) ** 2
                    spread = spread or x[base + k * inner] != x[base]
                # (degrees of freedom below 0 count as 0, as numpy's and PyTorch's: 0 / 0 is
                # NaN for an empty extent, where 0 / -1 was -0.0)
                variance = total / max(extent - params[r, 5], 0.0)
                if not spread:  # equal values: exactly 0 (NaN without degrees of freedom), as the facade
                    variance *= 0.0
                out[o * inner + i] = np.sqrt(variance) if rule == STD else variance
            else:
                return False  # not a rule of this family: the sweep reports it by name
    return True


@inline
def _norm_forward(r, rows, params, layouts, dims, offsets, values):
    """The p-norm of each group along one dimension (``iparam``; -1: all elements)."""
    a = rows[r, 1]
    out = values[offsets[r] : offsets[r] + layouts[rows[r, 4], 1]]
    x = values[offsets[a] : offsets[a] + layouts[rows[a, 4], 1]]
    outer, extent, inner = _groups(layouts, dims, rows[a, 4], rows[r, 3])
    for o in range(outer):
        for i in range(inner):
            out[o * inner + i] = _norm_group(x, params[r, 5], o * extent * inner + i, extent, inner)
    return True


@jit
def _extreme_group(x, out, weights, mode, base, extent, inner, at):
    """Largest (mode > 0) or smallest element of a group: its value at ``out[at]``, or, with
    ``weights``, where the gradient goes: shared evenly by ties (|mode| 1: amax; 3: max of all
    elements, whose NaN extreme shares it among the NaNs) or all to the first (|mode| 2: max
    along a dimension, which returns that index)."""
    best = x[base]
    for k in range(1, extent):
        value = x[base + k * inner]
        if value != value or (value > best if mode > 0 else value < best):
            best = value
            if value != value:
                break
    if not weights:
        out[at] = best
        return
    nans = abs(mode) == 3 and best != best
    ties = 0
    for k in range(extent):
        value = x[base + k * inner]
        if value == best or (nans and value != value):
            ties += 1
    share = 1.0 if abs(mode) == 2 else (1.0 / ties if ties else np.nan)  # a NaN extreme: NaN, as PyTorch
    seen = False
    first = abs(mode) == 2
    for k in range(extent):
        value = x[base + k * inner]
        # A NaN extreme: all NaN weights when shared (as PyTorch's amax); along a dimension, all
        # to the first NaN, the index max returns (to the first element, the replay differed).
        won = (value == best or (best != best and (not first or value != value))) and not (first and seen)
        if nans:
            won = value != value
        out[base + k * inner] = share if won else 0.0
        seen = seen or won


@jit
def _norm_group(x, p, base, extent, inner):
    if p == np.inf:
        largest = np.float64(0.0)
        for k in range(extent):
            value = abs(x[base + k * inner])
            if value != value:  # NaN, as numpy's max gives it (``max`` would drop it)
                return value
            largest = max(largest, value)
        return largest
    total = np.float64(0.0)
    for k in range(extent):
        value = abs(x[base + k * inner])
        if p == 0:
            total += 1.0 if value != 0 else 0.0
        elif p == 2:
            total += value * value
        elif p == 1:
            total += value
        else:
            total += value**p
    if p == 0 or p == 1:
        return total
    return np.sqrt(total) if p == 2 else total ** (1.0 / p)


@jit
def _argmax(x, out, mode, outer, extent, inner):
    """Index of the first largest (mode > 0) or smallest element of each group, as float64."""
    for o in range(outer):
        for i in range(inner):
            base = o * extent * inner + i
            best = 0
            for k in range(1, extent):
                value = x[base + k * inner]
                current = x[base + best * inner]
                if current != current:
                    break
                if value != value or (value > current if mode > 0 else value < current):
                    best = k
            out[o * inner + i] = best


@jit
def _compare(rule, a_values, b_values, scalar, out):
    """Comparisons write 1.0 or 0.0 (booleans are held as float64 in a replay)."""
    use_scalar = len(b_values) == 0
    for i in range(len(out)):
        left = a_values[i]
        right = scalar if use_scalar else b_values[i]
        if rule == LT:
            result = left < right
        elif rule == LE:
            result = left <= right
        elif rule == GT:
            result = left > right
        elif rule == GE:
            result = left >= right
        elif rule == EQ:
            result = left == right
        else:
            result = left != right
        out[i] = 1.0 if result else 0.0


@jit
def _guard_holds(r, rows, params, offsets, values64, now):
    """A guard row: in0 is the value Python read, ``now`` (as float64); in1, if any, what it was."""
    numel = len(now)
    if rows[r, 2] < 0:  # truthiness of one element
        return (now[0] != 0.0) == (params[r, 5] != 0.0)
    expected = values64[offsets[rows[r, 2]] : offsets[rows[r, 2]] + numel]
    for i in range(numel):
        if not (now[i] == expected[i] or (now[i] != now[i] and expected[i] != expected[i])):
            return False
    return True


# Ops of one element ``_undecided`` walks through: their derivatives are at most 1 in magnitude
# (a rounding of their input moves their value no more), and exp's is its value.
_ABS, _RELU, _TANH, _SIGMOID, _SIN, _COS, _ATAN, _EXP = (
    RULES[name] for name in ("abs", "relu", "tanh", "sigmoid", "sin", "cos", "atan", "exp")
)


# How close the two sides of a guarded comparison may be before its truth counts as undecided:
# 64 ulps of the larger side (of 1 at least: a sum that cancels to about 0 keeps the rounding
# of its terms, of order 1 in data of unit scale). A replay rounds differently from eager
# (another summation order, vmath's functions), so that within this distance the recorded
# branch may not be the one Python would take here.
UNDECIDED32, UNDECIDED64 = 64 * 2.0**-23, 64 * 2.0**-52


@jit
def _undecided(c, rules, rows, params, layouts, offsets, values32, values64):
    """Whether row ``c``, read by a truth guard, is a comparison of one element whose two sides
    are within rounding of each other (``UNDECIDED32``/``64`` of the magnitude they round at):
    the guard then fails, and a vmap records that slice again, rather than trusting the
    replay's rounding.

    A sum that cancels keeps the rounding of its terms, which a replay summing in another
    order, or computing them with other rounding, changes by ulps of the terms, not of the
    small result (64 ulps of the result let about 5% of cancelling sums of scale 100 replay the
    other branch). So a side that is a sum or mean (``sum_all``, a whole ``sum_dim``) counts the
    magnitudes of its terms, a dot or matrix product of one element those of its k products,
    widened by sqrt(k)/2 for BLAS's running sums (eager's np.dot and the replay's product differ
    by more than 64 ulps of the terms at k = 64); through ops of one operand and a number, ops of
    one element whose derivative is at most 1 (``abs``, ``relu``, ``tanh``, a clamp...) or known
    (``exp``, a power), and sums and differences of such sides (``x.sum() - y.sum()``,
    ``(x @ w + b).squeeze()``, ``x.sum().abs() > c``); a sum of row sums counts the rows' terms;
    the truth of a number (``if x.sum():``) compares it with 0. Without these, a float32 sum of
    [1e8, 1, -1e8], 0 in eager and 1 in the replay, replayed the other branch silently. One
    function, not several calling each other: three cost the comparison family's first compile
    a second."""
    rule = rules[rows[c, 0] & OPCODE_MASK] & RULE_MASK
    if layouts[rows[c, 4], 1] != 1:  # (a loaded file's guard on more: the walk below reads one)
        return False
    if rule != LT and rule != LE and rule != GT and rule != GE and rule != EQ and rule != NE:
        # The truth of a number (``if x.sum():``): whether it is not 0
        a, b = c, -1
    else:
        a, b = rows[c, 1], rows[c, 2]
    double = layouts[rows[a, 4], 0] == FLOAT64
    left = values64[offsets[a]] if double else np.float64(values32[offsets[a]])
    if b < 0:
        right = params[c, 5] if a != c else 0.0
    elif layouts[rows[b, 4], 0] == FLOAT64:
        right = values64[offsets[b]]
        double = True
    else:
        right = np.float64(values32[offsets[b]])
    magnitude = np.float64(0.0)
    pending = np.empty(8, np.int64)  # one-element rows still to look at, and their factors
    factors = np.empty(8, np.float64)
    pending[0], factors[0] = a, 1.0
    count = 1
    if b >= 0:
        pending[1], factors[1] = b, 1.0
        count = 2
    while count > 0:
        count -= 1
        r, factor = pending[count], factors[count]
        for _ in range(8):  # down the ops of one one-element operand and a number
            x = rows[r, 1]
            if x < 0 or layouts[rows[x, 4], 1] != 1:
                break
            step = rules[rows[r, 0] & OPCODE_MASK] & RULE_MASK
            if step == MUL_SCALAR:
                factor *= abs(params[r, 5])
            elif step == DIV_SCALAR:
                factor /= abs(params[r, 5])
            elif step == ADD_SCALAR or step == SUB_SCALAR or step == RSUB_SCALAR:
                magnitude += factor * abs(params[r, 5])
            elif step == _EXP:  # (its derivative is its value)
                factor *= abs(values64[offsets[r]] if layouts[rows[r, 4], 0] == FLOAT64 else values32[offsets[r]])
            elif step == POW_SCALAR and params[r, 5] >= 1.0:  # p |x|^(p - 1)
                base = abs(values64[offsets[x]] if layouts[rows[x, 4], 0] == FLOAT64 else values32[offsets[x]])
                factor *= params[r, 5] * base ** (params[r, 5] - 1.0)
            elif (step == CLAMP_MIN or step == CLAMP_MAX) and rows[r, 2] >= 0:
                break  # (a bound of its own, not a number)
            elif not (
                step == NEG or step == VIEW or step == COPY or step == CLAMP_MIN or step == CLAMP_MAX
                or step == _ABS or step == _RELU or step == _TANH or step == _SIGMOID or step == _SIN
                or step == _COS or step == _ATAN
            ):  # fmt: skip
                break  # (the rest: derivatives at most 1 in magnitude, which move it no more)
            r = x
        step = rules[rows[r, 0] & OPCODE_MASK] & RULE_MASK
        x, y = rows[r, 1], rows[r, 2]
        terms = -1.0
        if x >= 0:
            wide = layouts[rows[x, 4], 0] == FLOAT64
            n = layouts[rows[x, 4], 1]
            o = offsets[x]
            if step == SUM_ALL or step == SUM_DIM:  # (one element out: over every term)
                # A sum of sums (``x.sum(-1).sum()``, ``.mean()``): over the inner sums' terms,
                # whose rounding sums that cancel keep
                scale = abs(params[r, 5])
                while rules[rows[x, 0] & OPCODE_MASK] & RULE_MASK == SUM_DIM and rows[x, 1] >= 0:
                    scale *= abs(params[x, 5])
                    x = rows[x, 1]
                wide = layouts[rows[x, 4], 0] == FLOAT64
                n = layouts[rows[x, 4], 1]
                o = offsets[x]
                terms = np.float64(0.0)
                for i in range(n):
                    terms += abs(values64[o + i]) if wide else abs(np.float64(values32[o + i]))
                terms *= scale  # (1, or 1/n for a mean)
            elif (step == DOT or step == MV or step == MM or step == BMM) and y >= 0:
                p = offsets[y]  # (one element out: both operands hold its k terms in order)
                terms = np.float64(0.0)
                for i in range(min(n, layouts[rows[y, 4], 1])):  # (the shorter: a loaded file's)
                    if wide:
                        terms += abs(values64[o + i] * values64[p + i])
                    else:
                        terms += abs(np.float64(values32[o + i]) * np.float64(values32[p + i]))
                terms *= max(1.0, np.sqrt(n) / 2.0)
            elif (
                (step == ADD or step == SUB)
                and y >= 0
                and layouts[rows[x, 4], 1] == 1
                and layouts[rows[y, 4], 1] == 1
                and count <= 6
            ):
                pending[count], factors[count] = x, factor
                pending[count + 1], factors[count + 1] = y, factor
                count += 2
                continue
        if terms < 0.0:  # none of those: the row's own value
            terms = abs(values64[offsets[r]] if layouts[rows[r, 4], 0] == FLOAT64 else values32[offsets[r]])
        magnitude += factor * terms
    scale = max(1.0, abs(left), abs(right), magnitude)
    return abs(left - right) <= (UNDECIDED64 if double else UNDECIDED32) * scale


@jit
def _sweep(rows, params, layouts, dims, aux, rules, offsets, values32, values64, scratch, start, stop, table):
    """Recompute rows in order from ``start`` up to ``stop`` (exclusive). ``rules[opcode]`` is ``path << 16 | rule``
    (``PATHS``): one load gives both. ``table`` holds the addresses of the loaded families.
    Returns ``(status, row)``: status 0 when done, ``GUARD_FAILED`` at the first guard that comes
    out differently (or whose comparison is within rounding of its other side: ``_undecided``), ``NO_RULE``, ``KERNEL_FAILED``, or ``MISSING + slot`` when ``row`` needs a
    family not loaded yet. ``scratch`` holds a float64 copy of a guarded float32 value."""
    b_rows, b_params, b_layouts, b_aux = borrow(rows), borrow(params), borrow(layouts), borrow(aux)
    b_offsets, b_values32, b_values64 = borrow(offsets), borrow(values32), borrow(values64)
    # A replay has no saved addresses and no touched flags: the first slot carries ``rules``
    # instead (the comparison family's undecided check reads other rows' rules), the second
    # repeats an array the replay families never read.
    frame = make_frame(rows, params, layouts, dims, aux, rules, offsets, scratch, values32, values64, scratch[:0])
    for r in range(start, stop):
        code = rules[rows[r, 0] & OPCODE_MASK]
        rule = code & RULE_MASK
        if rule == INPUT:
            continue
        path = code >> 16
        is_double = layouts[rows[r, 4], 0] == FLOAT64
        numel = layouts[rows[r, 4], 1]
        a = rows[r, 1]
        if rule == CAST:  # a family: its four loops in this function cost its first compile
            slot = 2 * CAST_ROWS + (1 if is_double else 0)
            if table[slot] == 0:
                return MISSING + slot, r
            call(table[slot], rule, r, path, frame)
        elif rule == GUARD:
            count = layouts[rows[a, 4], 1]
            if layouts[rows[a, 4], 0] == FLOAT64:
                now = b_values64[offsets[a] : offsets[a] + count]
            else:  # (from 0: ``offsets`` may be relative to inputs read in place, Tape._forward)
                for i in range(count):
                    scratch[i] = values32[offsets[a] + i]
                now = borrow(scratch)[:count]
            holds = _guard_holds(r, b_rows, b_params, b_offsets, b_values64, now)
            if not holds:
                return GUARD_FAILED, r
            # A truth (iparam 1: a comparison of integers, which a replay computes exactly): the
            # comparison family says whether its sides lie within rounding of each other. There,
            # not here: its sums of magnitudes cost this function's first compile 0.7 s, which a
            # tape without guards paid too.
            if rows[r, 2] < 0 and rows[r, 3] == 0:
                compared = rows[a, 1]
                double = compared >= 0 and layouts[rows[compared, 4], 0] == FLOAT64
                slot = 2 * COMPARE + (1 if double else 0)
                if table[slot] == 0:
                    return MISSING + slot, r
                if call(table[slot], GUARD, a, path, frame) != families.DONE:
                    return GUARD_FAILED, r
        elif (
            numel <= SMALL
            and not is_double
            and _small_forward(rule, r, numel, b_rows, b_params, b_layouts, b_aux, b_offsets, b_values32)
        ):
            pass
        else:  # a family's function, through its address
            # Small float64 rows take their path as a family, compiled when a tape first has one
            # (as in backward._run: inlined a second time, for float64, it cost every first
            # replay about 0.5 s of compile).
            # (the rules ``_small_forward`` takes: another rule would load the family for nothing)
            small = (
                numel <= SMALL
                and is_double
                and (
                    rule == ADD or rule == SUB or rule == MUL or rule == ADD_SCALAR or rule == MUL_SCALAR
                    or rule == VIEW or rule == SUM_ALL or rule == NEG or rule == COPY
                )
            )  # fmt: skip
            if small:
                if table[2 * SMALL_ROWS + 1] == 0:
                    return MISSING + 2 * SMALL_ROWS + 1, r
                small = call(table[2 * SMALL_ROWS + 1], rule, r, path, frame) == families.DONE
            if not small:
                if path == GENERATED_PATH:  # each op is a family of its own
                    family = FIRST_GENERATED + rule - GENERATED_BASE
                elif path == ELEMENTWISE_PATH or path == ELEMENT_SWITCH_PATH:
                    family = ELEMENTWISE
                elif path == STRUCTURAL_PATH:
                    family = STRUCTURAL
                elif path == MATMUL_PATH:
                    family = MATMUL
                elif path == NORMALIZATION_PATH:
                    family = NORMALIZATION
                elif path == GROUPED_PATH:
                    family = GROUPED
                elif path == NORM_PATH:
                    family = NORM
                elif path == LAYERS_PATH:
                    family = LAYERS
                elif path == COMPARE_PATH or rule == ARGMAX:  # the input's dtype picks the kernel
                    family = COMPARE
                    is_double = layouts[rows[a, 4], 0] == FLOAT64
                else:
                    return NO_RULE, r
                slot = 2 * family + (1 if is_double else 0)
                if slot < 0 or slot >= len(table):
                    return NO_RULE, r
                address = table[slot]
                if address == 0:
                    return MISSING + slot, r
                result = call(address, rule, r, path, frame)
                if result != families.DONE:
                    return (NO_RULE if result == families.NO_RULE else KERNEL_FAILED), r
    return 0, 0


# The families the sweep calls through ``FAMILIES.addresses`` (families.py), in slot order; then
# one per op declared by formula (``generated.REPLAY_FAMILIES``), in rule order.
(ELEMENTWISE, STRUCTURAL, MATMUL, GROUPED, COMPARE, NORMALIZATION, SMALL_ROWS, CAST_ROWS, NORM, LAYERS,
 FIRST_GENERATED) = range(11)  # fmt: skip


def _elementwise32(rule, r, path, frame):
    rows, params, layouts, _, _, _, offsets, _, values = families.arrays32(frame)
    return _done(_elementwise_forward(rule, path, r, rows, params, layouts, offsets, values))


def _elementwise64(rule, r, path, frame):
    rows, params, layouts, _, _, _, offsets, _, values = families.arrays64(frame)
    return _done(_elementwise_forward(rule, path, r, rows, params, layouts, offsets, values))


def _structural32(rule, r, path, frame):
    rows, params, layouts, dims, aux, _, offsets, _, values = families.arrays32(frame)
    return _done(_structural_forward(rule, r, rows, params, layouts, dims, aux, offsets, values))


def _structural64(rule, r, path, frame):
    rows, params, layouts, dims, aux, _, offsets, _, values = families.arrays64(frame)
    return _done(_structural_forward(rule, r, rows, params, layouts, dims, aux, offsets, values))


def _matmul32(rule, r, path, frame):
    rows, _, layouts, dims, _, _, offsets, _, values = families.arrays32(frame)
    return _done(_matmul_forward(rule, r, rows, layouts, dims, offsets, values))


def _matmul64(rule, r, path, frame):
    rows, _, layouts, dims, _, _, offsets, _, values = families.arrays64(frame)
    return _done(_matmul_forward(rule, r, rows, layouts, dims, offsets, values))


def _grouped32(rule, r, path, frame):
    rows, params, layouts, dims, _, _, offsets, _, values = families.arrays32(frame)
    return _done(_grouped_forward(rule, r, rows, params, layouts, dims, offsets, values))


def _grouped64(rule, r, path, frame):
    rows, params, layouts, dims, _, _, offsets, _, values = families.arrays64(frame)
    return _done(_grouped_forward(rule, r, rows, params, layouts, dims, offsets, values))


def _norm32(rule, r, path, frame):
    rows, params, layouts, dims, _, _, offsets, _, values = families.arrays32(frame)
    return _done(_norm_forward(r, rows, params, layouts, dims, offsets, values))


def _norm64(rule, r, path, frame):
    rows, params, layouts, dims, _, _, offsets, _, values = families.arrays64(frame)
    return _done(_norm_forward(r, rows, params, layouts, dims, offsets, values))


def _compare32(rule, r, path, frame):  # a float32 input; results are float64 (0/1, indices)
    # (``rule`` GUARD: the sweep asks whether comparison row ``r`` is decided; ``_sweep``'s frame
    # carries ``rules`` in its addresses slot)
    rows, params, layouts, dims, _, rules, offsets, _, values = families.arrays32(frame)
    results = families.arrays64(frame)[8]
    if rule == GUARD:
        return _done(not _undecided(r, rules, rows, params, layouts, offsets, values, results))
    return _done(_compare_row(rule, r, rows, params, layouts, dims, offsets, values, results))


def _compare64(rule, r, path, frame):
    rows, params, layouts, dims, _, rules, offsets, _, values = families.arrays64(frame)
    if rule == GUARD:
        values32 = families.arrays32(frame)[8]
        return _done(not _undecided(r, rules, rows, params, layouts, offsets, values32, values))
    return _done(_compare_row(rule, r, rows, params, layouts, dims, offsets, values, values))


def _normalization32(rule, r, path, frame):
    rows, params, layouts, dims, _, _, offsets, _, values = families.arrays32(frame)
    return _done(_normalization_forward(rule, r, rows, params, layouts, dims, offsets, values))


def _normalization64(rule, r, path, frame):
    rows, params, layouts, dims, _, _, offsets, _, values = families.arrays64(frame)
    return _done(_normalization_forward(rule, r, rows, params, layouts, dims, offsets, values))


def _layers32(rule, r, path, frame):
    rows, params, layouts, dims, aux, _, offsets, _, values = families.arrays32(frame)
    return _done(_layers_forward(rule, r, rows, params, layouts, dims, aux, offsets, values))


def _layers64(rule, r, path, frame):
    rows, params, layouts, dims, aux, _, offsets, _, values = families.arrays64(frame)
    return _done(_layers_forward(rule, r, rows, params, layouts, dims, aux, offsets, values))


@inline
def _compare_row(rule, r, rows, params, layouts, dims, offsets, values, results):
    """Comparisons and argmax: inputs of ``values``' dtype, results (float64) in ``results``."""
    a = rows[r, 1]
    b = rows[r, 2]
    numel = layouts[rows[r, 4], 1]
    out = results[offsets[r] : offsets[r] + numel]
    if rule == ARGMAX:
        outer, extent, inner = _groups(layouts, dims, rows[a, 4], rows[r, 3])
        _argmax(values[offsets[a] : offsets[a] + outer * extent * inner], out, params[r, 5], outer, extent, inner)
        return True
    other = values[offsets[b] : offsets[b] + numel] if b >= 0 else values[:0]
    _compare(rule, values[offsets[a] : offsets[a] + numel], other, values.dtype.type(params[r, 5]), out)
    return True


def _small32(rule, r, path, frame):  # never loaded: the sweep runs small float32 rows inline
    rows, params, layouts, _, aux, _, offsets, _, values = families.arrays32(frame)
    return _done(_small_forward(rule, r, layouts[rows[r, 4], 1], rows, params, layouts, aux, offsets, values))


def _small64(rule, r, path, frame):
    """The small-row path for float64 rows; ``NO_RULE`` when it does not take the row (the
    sweep then calls the row's family)."""
    rows, params, layouts, _, aux, _, offsets, _, values = families.arrays64(frame)
    return _done(_small_forward(rule, r, layouts[rows[r, 4], 1], rows, params, layouts, aux, offsets, values))


def _cast32(rule, r, path, frame):
    """A float32 row cast from its operand (float64, or float32: ``.float()`` of a float32
    tensor records a copy). Views indexed from 0, which vectorize: see batched._copy."""
    rows, _, layouts, _, _, _, offsets, _, values32 = families.arrays32(frame)
    values64 = families.arrays64(frame)[8]
    a, numel = rows[r, 1], layouts[rows[r, 4], 1]
    target = values32[offsets[r] : offsets[r] + numel]
    if layouts[rows[a, 4], 0] == FLOAT64:
        source = values64[offsets[a] : offsets[a] + numel]
        for i in range(numel):
            target[i] = np.float32(source[i])
    else:
        source32 = values32[offsets[a] : offsets[a] + numel]
        for i in range(numel):
            target[i] = source32[i]
    return families.DONE


def _cast64(rule, r, path, frame):
    """A float64 row cast from its operand (float32 or float64)."""
    rows, _, layouts, _, _, _, offsets, _, values64 = families.arrays64(frame)
    values32 = families.arrays32(frame)[8]
    a, numel = rows[r, 1], layouts[rows[r, 4], 1]
    target = values64[offsets[r] : offsets[r] + numel]
    if layouts[rows[a, 4], 0] == FLOAT64:
        source = values64[offsets[a] : offsets[a] + numel]
        for i in range(numel):
            target[i] = source[i]
    else:
        source32 = values32[offsets[a] : offsets[a] + numel]
        for i in range(numel):
            target[i] = np.float64(source32[i])
    return families.DONE


@inline
def _done(ok):
    return families.DONE if ok else families.NO_RULE


FAMILIES = families.Table(
    "replay",
    (
        ("elementwise", _elementwise32, _elementwise64),
        ("structural", _structural32, _structural64),
        ("matmul", _matmul32, _matmul64),
        ("grouped", _grouped32, _grouped64),
        ("comparison", _compare32, _compare64),
        ("normalization", _normalization32, _normalization64),
        ("small rows", _small32, _small64),
        ("cast", _cast32, _cast64),
        ("norm", _norm32, _norm64),
        ("layers", _layers32, _layers64),
        *generated.REPLAY_FAMILIES,
    ),
    quick=(*generated.RULE_NAMES, "norm"),
)


def forward_sweep(rows, params, layouts, dims, aux, rules, offsets, values32, values64, scratch, start=0, fused=None):
    """Recompute every row from ``start`` (see ``_sweep``): one compiled call once the families
    the tape uses are loaded; a row of a family not loaded yet stops the sweep, the family is
    loaded, and the sweep resumes at that row. ``fused`` (a ``fused.Plan`` of this tape, or
    None) runs its groups of large elementwise rows a block at a time, and the sweep the rows
    between them. Returns ``(status, row)`` with status 0, ``GUARD_FAILED`` (resume at
    ``row + 1`` to go on past it), ``NO_RULE`` or ``KERNEL_FAILED``."""
    if not config.AS_PYTHON and not _sweep.overloads and fused is None:  # (``tiers.py``)
        python = tiers.as_python("forward", _sweep, tiers.sweep_work(rows, layouts, start - 1, len(rows) - 1))
        if python is not None:
            arguments = (rows, params, layouts, dims, aux, rules, offsets, values32, values64, scratch, start)
            result = tiers.run("forward", python.forward_sweep, arguments)  # (it writes values only)
            if result is not None:
                return result
    families.announce(_sweep, "replay interpreter")
    table = FAMILIES.addresses
    group = len(rows) if fused is None else fused.group_at(start)
    while True:
        stop = len(rows) if fused is None or group == len(fused.firsts) else fused.firsts[group]
        status, row = _sweep(
            rows, params, layouts, dims, aux, rules, offsets, values32, values64, scratch, start, stop, table
        )
        if status >= MISSING:
            FAMILIES.load(status - MISSING)
            start = row
            continue
        if status or stop == len(rows):
            return status, row
        status, row = fused.run(group, params, dims, aux, rules, offsets, values32, values64, scratch, table)
        if status >= MISSING:
            FAMILIES.load(status - MISSING)
            start = stop  # the group again, whole
            continue
        if status:
            return status, row
        start = int(fused.groups[group, 1]) + 1
        group += 1
