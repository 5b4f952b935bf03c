"""Normalisations of one group of contiguous elements (softmax, log_softmax, layer_norm), shared
by the eager forward, the replay forward and the backward rules, and the group sums they need."""

from __future__ import annotations

import numpy as np

from . import vmath
from .blas import product
from .config import inline, jit, reduction

TOTAL_BLOCK = 4096  # tapegrad._kernels.fused.BLOCK


@reduction
def block_total(x):
    """sum(x), in float64, in any order (vectorized): ``total``'s sum of one block."""
    result = 0.0
    for k in range(len(x)):
        result += float(x[k])  # (as plain Python, NUMBA_DISABLE_JIT, 0.0 + a float32 is a float32)
    return result


@jit
def total(x):
    """sum(x), in float64: each block of ``TOTAL_BLOCK`` elements in any order (vectorized), the
    blocks' sums in order, so that a sum made a block at a time as its terms are computed (a
    replay's group: ``fused.py``) has the very bits of the whole row's. (Summed whole in any
    order, a float32 sum by blocks rounded one ulp away where large terms cancel.)"""
    result = np.float64(0.0)
    for start in range(0, len(x), TOTAL_BLOCK):
        result += block_total(x[start : start + TOTAL_BLOCK])
    return result


@jit
def row_totals(x, width, out):
    """``out[i]`` = the sum of ``x[i * width : (i + 1) * width]`` (``total``, in float64), in
    ``out``'s dtype: the eager float32 sum over a contiguous last dimension, where numpy's
    pairwise float32 sum of each row was 2.7x PyTorch's (512x1024: 88 us)."""
    for i in range(len(out)):
        out[i] = total(x[i * width : (i + 1) * width])


@jit
def column_totals(x, width, out):
    """``out[j]`` = the sum of ``x[j::width]``, in float64, in ``out``'s dtype: a float32 sum
    over the leading dimensions (``mean(0)`` of a batch). numpy adds those row after row in
    float32 (its pairwise sum runs along the last dimension only): a (10^6, 4) mean was 1.3%
    off; float64 over the rows keeps its digits at numpy's speed. Four rows at a time, added
    in float64 before the running sums: a load, an add and a store of each sum per row were most
    of the loop (a (128, 512) sum over rows, 7.8 -> 4.7 us)."""
    sums = np.zeros(width, np.float64)
    rows = len(x) // width
    for q in range(rows // 4):
        r0 = x[(4 * q) * width : (4 * q + 1) * width]
        r1 = x[(4 * q + 1) * width : (4 * q + 2) * width]
        r2 = x[(4 * q + 2) * width : (4 * q + 3) * width]
        r3 = x[(4 * q + 3) * width : (4 * q + 4) * width]
        for j in range(width):
            sums[j] += (np.float64(r0[j]) + np.float64(r1[j])) + (np.float64(r2[j]) + np.float64(r3[j]))
    for i in range(rows - rows % 4, rows):
        row = x[i * width : (i + 1) * width]
        for j in range(width):
            sums[j] += row[j]
    for j in range(width):
        out[j] = sums[j]


@reduction
def dot(x, y):
    """sum(x * y), in float64."""
    result = np.float64(0.0)
    for k in range(len(x)):
        result += x[k] * y[k]
    return result


@inline
def exp_shifted(x, out, shift):
    """out = exp(x - shift), returning sum(out) (``own_total``).

    Two loops, not one: a loop that stores into ``out`` while it sums needs LLVM's run-time
    check that ``out`` does not overlap ``x`` ahead of it, and took its vector path (the sum
    reassociated into lanes) or its scalar one (in order) by where numpy had put the two arrays:
    the same softmax came out 1-2 ulp apart from one call to the next (a 4-element one in 1 run
    of 6 of the suite, whose replay-equals-eager test compares bits). The sum of ``out`` alone
    reads one array: no check, one order for each length."""
    for k in range(len(x)):
        out[k] = vmath.exp(x[k] - shift)
    return own_total(out)


@reduction
def own_total(x):
    """sum(x), in x's dtype, in any order (vectorized): converting each float32 to float64
    halved a softmax's speed, and eight or sixteen vector lanes keep the digits."""
    result = x.dtype.type(0.0)
    for k in range(len(x)):
        result += x[k]
    return result


@inline
def largest(x):
    """max(x), skipping NaN (a softmax with one gives NaN everywhere regardless). Eight
    independent maxima: LLVM does not vectorize one running maximum (measured 6x slower)."""
    n = len(x)
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x[0]
    whole = n - n % 8
    for k in range(0, whole, 8):
        m0, m1, m2, m3 = max(m0, x[k]), max(m1, x[k + 1]), max(m2, x[k + 2]), max(m3, x[k + 3])
        m4, m5, m6, m7 = max(m4, x[k + 4]), max(m5, x[k + 5]), max(m6, x[k + 6]), max(m7, x[k + 7])
    result = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for k in range(whole, n):
        result = max(result, x[k])
    return result


@inline
def softmax(x, out):
    shift = largest(x)
    scale = out.dtype.type(1.0) / exp_shifted(x, out, shift)
    for k in range(len(x)):
        out[k] *= scale


@inline
def log_softmax(x, out):
    # (x - max) - log(sum), as PyTorch: x - (max + log(sum)) rounded the sum of the two at the
    # logits' magnitude (float32 logits near 1e4 lost three decimals); x - max is exact
    shift = largest(x)
    log_total = out.dtype.type(np.log(exp_shifted(x, out, shift)))  # out: scratch until here
    for k in range(len(x)):
        out[k] = (x[k] - shift) - log_total


@inline
def softmax_backward(y, g, gx):
    """gx += y * (g - sum(g * y))."""
    weighted = gx.dtype.type(dot(g, y))
    for k in range(len(y)):
        gx[k] += y[k] * (g[k] - weighted)


@inline
def log_softmax_backward(y, g, gx):
    """gx += g - exp(y) * sum(g)."""
    g_total = gx.dtype.type(total(g))
    for k in range(len(y)):
        gx[k] += g[k] - vmath.exp(y[k]) * g_total


@reduction
def centered_squares(x, mean):
    """sum((x - mean)**2), in float64."""
    result = np.float64(0.0)
    for k in range(len(x)):
        centered = x[k] - mean
        result += centered * centered
    return result


@reduction
def centered_dot(g, x, mean):
    """sum(g * (x - mean)), in float64."""
    result = np.float64(0.0)
    for k in range(len(x)):
        result += g[k] * (x[k] - mean)
    return result


@inline
def moments(x, eps):
    """(mean, 1 / sqrt(var + eps)) of ``x`` (biased variance, as layer_norm takes it), summed in
    float64 over two passes so float32 groups of thousands keep their digits."""
    n = len(x)
    mean = total(x) / n
    return mean, 1.0 / np.sqrt(centered_squares(x, mean) / n + eps)


@inline
def normalize(x, out, eps):
    mean, rstd = moments(x, eps)
    # The per-element pass in the arrays' own precision (float32 math runs twice as wide).
    mean, rstd = out.dtype.type(mean), out.dtype.type(rstd)
    for k in range(len(x)):
        out[k] = (x[k] - mean) * rstd


@inline
def normalize_backward(x, g, gx, eps):
    """``gx += rstd * (g - mean(g) - xhat * mean(g * xhat))``, xhat = (x - mean) * rstd."""
    n = len(x)
    mean, rstd = moments(x, eps)
    g_mean = total(g) / n
    g_xhat_mean = centered_dot(g, x, mean) * rstd / n
    like = gx.dtype.type
    mean, rstd, g_mean, slope = like(mean), like(rstd), like(g_mean), like(rstd * g_xhat_mean)
    for k in range(n):
        gx[k] += rstd * (g[k] - g_mean - (x[k] - mean) * slope)


# -- over every group of a row: what the eager forward, the replay and the backward call -----


@jit
def layer_norm(x, out, group, eps):
    """``x`` and ``out`` flat, normalised ``group`` elements at a time."""
    for o in range(len(x) // group):
        block = slice(o * group, (o + 1) * group)
        normalize(x[block], out[block], eps)


@jit
def layer_norm_backward(x, g, gx, group, eps):
    for o in range(len(x) // group):
        block = slice(o * group, (o + 1) * group)
        normalize_backward(x[block], g[block], gx[block], eps)


# -- over each channel of (N, C, ...): batch_norm's statistics -------------------------------
# A channel's elements are ``outer`` blocks of ``inner`` contiguous ones, ``channels * inner``
# apart. One op where the composite (mean, subtract, square, mean, rsqrt, multiply) walked the
# activations eight times forward and about as many backward (a (32, 16, 28, 28) layer: 3.5 ms
# a training step against PyTorch's 1.5).


@jit
def channel_moments(x, outer, channels, inner, stats):
    """``stats[c]`` = the mean of channel ``c`` of ``x`` (flat, (outer, channels, inner)), and
    ``stats[channels + c]`` its biased variance; in float64, over two passes."""
    count = outer * inner
    for c in range(channels):
        sums = np.float64(0.0)
        for o in range(outer):
            start = (o * channels + c) * inner
            sums += total(x[start : start + inner])
        mean = sums / count
        squares = np.float64(0.0)
        for o in range(outer):
            start = (o * channels + c) * inner
            squares += centered_squares(x[start : start + inner], mean)
        stats[c] = mean
        stats[channels + c] = squares / count


@jit
def batch_norm(x, w, out, outer, channels, inner, eps, stats):
    """``out`` = (x - mean) / sqrt(variance + eps) * w per channel (``channel_moments``, left in
    ``stats``); ``w`` (channels) or empty for none."""
    channel_moments(x, outer, channels, inner, stats)
    like = out.dtype.type
    for o in range(outer):
        for c in range(channels):
            scale = 1.0 / np.sqrt(stats[channels + c] + eps)
            mean, scale = like(stats[c]), like(scale) * (w[c] if len(w) else like(1.0))
            start = (o * channels + c) * inner
            block, target = x[start : start + inner], out[start : start + inner]
            for k in range(inner):
                target[k] = (block[k] - mean) * scale


@jit
def batch_norm_backward(x, w, g, gx, gw, outer, channels, inner, eps):
    """The gradients of ``batch_norm``, added: ``gx += w * rstd * (g - mean(g) - xhat *
    mean(g * xhat))`` (as ``normalize_backward``) and ``gw += sum(g * xhat)``, per channel, the
    statistics computed again from ``x``; ``gx``, ``gw`` or ``w`` empty for none."""
    stats = np.empty(2 * channels, np.float64)
    channel_moments(x, outer, channels, inner, stats)
    count = outer * inner
    like = gx.dtype.type
    for c in range(channels):
        mean, rstd = stats[c], 1.0 / np.sqrt(stats[channels + c] + eps)
        g_sum, g_centered = 0.0, 0.0
        for o in range(outer):
            start = (o * channels + c) * inner
            g_sum += total(g[start : start + inner])
            g_centered += centered_dot(g[start : start + inner], x[start : start + inner], mean)
        if len(gw):
            gw[c] += like(g_centered * rstd)
        if len(gx) == 0:
            continue
        scale = rstd * (w[c] if len(w) else 1.0)
        g_mean, slope = like(g_sum / count), like(g_centered * rstd * rstd / count)
        mean_, scale_ = like(mean), like(scale)
        for o in range(outer):
            start = (o * channels + c) * inner
            block, gradient, target = x[start : start + inner], g[start : start + inner], gx[start : start + inner]
            for k in range(inner):
                target[k] += scale_ * (gradient[k] - g_mean - (block[k] - mean_) * slope)


@jit
def softmax_groups(x, out, group, log):
    """softmax (log_softmax when ``log``) over contiguous groups of ``group`` elements."""
    for o in range(len(x) // group):
        block = slice(o * group, (o + 1) * group)
        if log:
            log_softmax(x[block], out[block])
        else:
            softmax(x[block], out[block])


@jit
def softmax_groups_backward(y, g, gx, group, log):
    """The gradient of ``softmax_groups`` from its result ``y``."""
    for o in range(len(y) // group):
        block = slice(o * group, (o + 1) * group)
        if log:
            log_softmax_backward(y[block], g[block], gx[block])
        else:
            softmax_backward(y[block], g[block], gx[block])


# -- one LSTM step (nn.LSTM): the gates' nonlinearities and the state update, fused ------------
# ``gates`` holds each batch row's four pre-activations (input, forget, cell, output; PyTorch's
# order), ``c`` the previous cell state; ``out`` holds h for every row, then the new c. One op
# where the composite recorded eleven rows a step (3.7 of 4.2 ms of a 20-step LSTM's training
# step, against PyTorch's one fused node per layer: MkldnnRnnLayerBackward0).


@jit
def lstm_cell(gates, c, out, hidden):
    """``gates`` (n * 4 * hidden), ``c`` (n * hidden) -> ``out`` (2 * n * hidden): h, then c.

    Each row's gates, states and results are slices indexed from 0: indexed at ``base + j``,
    numba's wraparound of negative indices kept LLVM from vectorizing the loop, and a step of
    16 x 32 cells took 9 us (3.5 ns a sigmoid or tanh)."""
    size = len(c)
    for row in range(size // hidden):
        base = 4 * hidden * row
        g_i, g_f = gates[base : base + hidden], gates[base + hidden : base + 2 * hidden]
        g_g, g_o = gates[base + 2 * hidden : base + 3 * hidden], gates[base + 3 * hidden : base + 4 * hidden]
        previous = c[row * hidden : (row + 1) * hidden]
        h, state = out[row * hidden : (row + 1) * hidden], out[size + row * hidden : size + (row + 1) * hidden]
        for j in range(hidden):
            new = vmath.sigmoid(g_f[j]) * previous[j] + vmath.sigmoid(g_i[j]) * vmath.tanh(g_g[j])
            state[j] = new
            h[j] = vmath.sigmoid(g_o[j]) * vmath.tanh(new)


@jit
def lstm_cell_backward(gates, c, out, g, g_gates, g_c, hidden, with_c):
    """Add the gradient of ``lstm_cell`` (``g``: of h, then of the new c) to ``g_gates`` and,
    when ``with_c``, to ``g_c``; the gate values are computed again from ``gates``, the new c
    read from ``out`` (as PyTorch's cell saves its tanh's input: with ``c`` changed through
    ``.data`` after the forward, both read the new c only where the formula reads c itself).
    Slices indexed from 0, as ``lstm_cell``'s."""
    size = len(c)
    one = gates.dtype.type(1)
    for row in range(size // hidden):
        base = 4 * hidden * row
        cells = slice(row * hidden, (row + 1) * hidden)
        g_i, g_f = gates[base : base + hidden], gates[base + hidden : base + 2 * hidden]
        g_g, g_o = gates[base + 2 * hidden : base + 3 * hidden], gates[base + 3 * hidden : base + 4 * hidden]
        d_i, d_f = g_gates[base : base + hidden], g_gates[base + hidden : base + 2 * hidden]
        d_g, d_o = g_gates[base + 2 * hidden : base + 3 * hidden], g_gates[base + 3 * hidden : base + 4 * hidden]
        previous, state, d_c = c[cells], out[size + row * hidden : size + (row + 1) * hidden], g_c[cells]
        g_h, g_new = g[cells], g[size + row * hidden : size + (row + 1) * hidden]
        for j in range(hidden):
            i, f = vmath.sigmoid(g_i[j]), vmath.sigmoid(g_f[j])
            cell, o = vmath.tanh(g_g[j]), vmath.sigmoid(g_o[j])
            squashed = vmath.tanh(state[j])
            g_state = g_new[j] + g_h[j] * o * (one - squashed * squashed)
            d_i[j] += g_state * cell * i * (one - i)
            d_f[j] += g_state * previous[j] * f * (one - f)
            d_g[j] += g_state * i * (one - cell * cell)
            d_o[j] += g_h[j] * squashed * o * (one - o)
            if with_c:
                d_c[j] += g_state * f


# -- a whole LSTM layer's direction (nn.LSTM): every step in one row ---------------------------
# ``inputs`` holds the input projections of every step (steps, n, 4 * hidden), then h0 and c0
# (n, hidden) each, or nothing more for zero initial states; ``out`` (steps, 2, n, hidden) each
# step's h, then its c. Row by row (one
# ``lstm_cell`` a step, with its product and views), a 20-step layer's training step spent most
# of its time recording and sweeping six rows a step: PyTorch's layer is one node.


@jit
def _initial_zeros(inputs, steps, n, hidden):
    """The initial c of a row without initial states (zeros, (n * hidden)); empty when ``inputs``
    holds h0 and c0 after the projections."""
    return np.zeros(n * hidden if len(inputs) == steps * n * 4 * hidden else 0, inputs.dtype)


@jit
def _step_gates(inputs, w_hh, out, gates, zeros, k, steps, n, hidden, reverse):
    """Step ``k`` (in running order) of ``lstm_sequence``: its gates, the step's projection plus
    the previous h @ w_hh.T (BLAS), into ``gates``. Returns ``(t, the previous h's address, the
    previous c)``: the initial states for the first step, else the previous step's result.
    Without initial states (``zeros`` not empty: ``_initial_zeros``) the first step's gates are
    its projection, its previous c ``zeros``, and the previous h's address returned is never
    read (the caller stops before the products that would read it)."""
    width, size, item = 4 * hidden, n * hidden, inputs.itemsize
    t = steps - 1 - k if reverse else k
    start = steps * n * width
    if k == 0 and len(zeros):
        projection = inputs[t * n * width : (t + 1) * n * width]
        for i in range(n * width):
            gates[i] = projection[i]
        return t, inputs.ctypes.data + 0 * item, zeros  # (the other branches' type)
    if k == 0:
        h_at, c_prev = inputs.ctypes.data + start * item, inputs[start + size : start + 2 * size]
    else:
        before = t + 1 if reverse else t - 1
        h_at, c_prev = (
            out.ctypes.data + before * 2 * size * item,
            out[(before * 2 + 1) * size : (before + 1) * 2 * size],
        )
    projection = inputs[t * n * width : (t + 1) * n * width]
    for i in range(n * width):
        gates[i] = projection[i]
    product(False, True, n, width, hidden, 1.0, h_at, hidden, w_hh.ctypes.data, hidden, 1.0,
            gates.ctypes.data, width, inputs)  # fmt: skip
    return t, h_at, c_prev


@jit
def lstm_sequence(inputs, w_hh, out, steps, n, hidden, reverse):
    """The layer's forward: each step's gates (``_step_gates``), then ``lstm_cell``'s update;
    ``reverse`` runs the steps from the last."""
    size = n * hidden
    gates = np.empty(4 * size, inputs.dtype)
    zeros = _initial_zeros(inputs, steps, n, hidden)
    for k in range(steps):
        t, _, c_prev = _step_gates(inputs, w_hh, out, gates, zeros, k, steps, n, hidden, reverse)
        lstm_cell(gates, c_prev, out[t * 2 * size : (t + 1) * 2 * size], hidden)


@jit
def lstm_sequence_backward(inputs, w_hh, out, g, g_inputs, g_w, steps, n, hidden, reverse):
    """Add the gradients of ``lstm_sequence`` from ``g`` (``out``'s): to ``g_inputs`` (the
    projections, then h0 and c0 when ``inputs`` has them) and ``g_w``, either empty for none.
    The steps in reverse order, each step's gates computed again (one product) rather than kept."""
    width = 4 * hidden
    size = n * hidden
    dtype = inputs.dtype
    zeros = _initial_zeros(inputs, steps, n, hidden)
    states = len(zeros) == 0  # (else the first step starts from zeros)
    gates = np.empty(n * width, dtype)
    d_gates = np.empty(n * width, dtype)
    g_h = np.zeros(size, dtype)  # the gradient carried to the previous step's h and c
    g_c = np.zeros(size, dtype)
    g_state = np.empty(2 * size, dtype)  # (h, c) of this step: carried plus arriving
    for k in range(steps - 1, -1, -1):
        t, h_at, c_prev = _step_gates(inputs, w_hh, out, gates, zeros, k, steps, n, hidden, reverse)
        arriving = g[t * 2 * size : (t + 1) * 2 * size]
        for i in range(size):
            g_state[i] = g_h[i] + arriving[i]
            g_state[size + i] = g_c[i] + arriving[size + i]
        for i in range(n * width):
            d_gates[i] = 0
        for i in range(size):
            g_c[i] = 0
        # the gates' gradients, and the previous cell state's into g_c
        lstm_cell_backward(gates, c_prev, out[t * 2 * size : (t + 1) * 2 * size], g_state, d_gates, g_c, hidden, True)
        if len(g_inputs):
            target = g_inputs[t * n * width : (t + 1) * n * width]
            for i in range(n * width):
                target[i] += d_gates[i]
        if k == 0 and not states:  # h0 = 0: nothing reaches w_hh through it, and no h0 to reach
            break
        if len(g_w):  # g_w (4 hidden, hidden) += d_gates.T @ h_prev
            product(True, False, width, hidden, n, 1.0, d_gates.ctypes.data, width, h_at, hidden, 1.0,
                    g_w.ctypes.data, hidden, inputs)  # fmt: skip
        # g_h = d_gates @ w_hh: what reaches the previous step's h
        product(False, False, n, hidden, width, 1.0, d_gates.ctypes.data, width, w_hh.ctypes.data, hidden, 0.0,
                g_h.ctypes.data, hidden, inputs)  # fmt: skip
    if len(g_inputs) and states:
        h_start = steps * n * width
        for i in range(size):
            g_inputs[h_start + i] += g_h[i]
            g_inputs[h_start + size + i] += g_c[i]
