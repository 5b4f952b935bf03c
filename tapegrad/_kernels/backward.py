"""The backward interpreter: one compiled call walks a tape from its roots down.

Dispatch is two-level and on integers: the sweep (``_run``) picks a row's path and dtype, and
runs small rows itself; larger rows go to the kernel function of their family (elementwise,
grouped, structural, matmul, generated...), compiled on first use and called through an address
(``families.py``, ``FAMILIES``), which picks the rule. Each rule is a few lines, named in
``RULES``; the op table (``tapegrad/_ops.py``) maps each op to one of these names, so several ops
share a rule and a missing one is reported by name. Constants are cast to the buffer's dtype
(numba widens float32 * Python float to float64).
"""

from __future__ import annotations

import numpy as np

from . import config, convolution, families, generated, normalization, scalar, tiers, vmath
from .blas import product
from .config import always_inline, inline, jit
from .families import call, make_frame
from .memory import borrow, check_address, value_at
from .rules import CAST as CAST_PATH
from .rules import CONSTANT as CONSTANT_PATH
from .rules import ELEMENTWISE as ELEMENTWISE_PATH
from .rules import GENERATED as GENERATED_PATH
from .rules import GROUPED as GROUPED_PATH
from .rules import LAYERS as LAYERS_PATH
from .rules import MATMUL as MATMUL_PATH
from .rules import NORMALIZATION as NORMALIZATION_PATH
from .rules import PERIOD_BITS
from .rules import PYTHON as PYTHON_PATH
from .rules import SKIP as SKIP_PATH
from .rules import STRUCTURAL as STRUCTURAL_PATH
from .rules import UNARY as UNARY_PATH
from .strided import ORIGIN, contiguous_strides, is_block, reduced_strides, strided_accumulate

RULE_NAMES = (
    "leaf constant neg softplus zero leaky_relu elu pass "
    "mul_scalar div_scalar pow_scalar rpow_scalar add sub mul div pow sum_all sum_dim norm softmax "
    "view dot mv mm bmm cast concat log_softmax gather_rows python "
    "maximum minimum clamp_min clamp_max where select_reduce cumsum prod logsumexp var std layer_norm nll_targets lstm_cell "
    "batch_norm conv2d lstm_sequence"
).split()
RULES = {name: number for number, name in enumerate(RULE_NAMES)}
# Rules of ops declared by formula, numbered after these: no two rules share a number, so no
# rule-number test anywhere (the small-row path tests numbers alone) can take one for another.
GENERATED_BASE = len(RULE_NAMES)
RULES.update({name: GENERATED_BASE + number for name, number in generated.RULES.items()})
(LEAF, CONSTANT, NEG, SOFTPLUS, ZERO, LEAKY_RELU, ELU, PASS, MUL_SCALAR, DIV_SCALAR, POW_SCALAR,
 RPOW_SCALAR, ADD, SUB, MUL, DIV, POW, SUM_ALL, SUM_DIM, NORM, SOFTMAX, VIEW, DOT, MV, MM, BMM, CAST,
 CONCAT, LOG_SOFTMAX, GATHER_ROWS, PYTHON, MAXIMUM, MINIMUM,
 CLAMP_MIN, CLAMP_MAX, WHERE, SELECT_REDUCE, CUMSUM, PROD, LOGSUMEXP, VAR, STD, LAYER_NORM, NLL_TARGETS,
 LSTM_CELL, BATCH_NORM, CONV2D, LSTM_SEQUENCE) = range(len(RULE_NAMES))  # fmt: skip
NO_GRAD = 1 << 16  # tapegrad._tape.NO_GRAD: a row whose result needs no gradient
SOFTPLUS_THRESHOLD = 20.0  # softplus is x itself above it, and its gradient g (PyTorch's default)

# Statuses of a sweep (0: done). MISSING + slot: the row needs family ``slot``, not loaded yet.
FREED, MODIFIED, NO_RULE, KERNEL_FAILED, SHARE, MISSING = 1, 2, 3, 4, 5, 16

FLOAT64 = 1
SMALL = 8  # rows up to this many elements take the call-free path
# A sum to one element runs there too, of inputs up to this size (it ends nearly every loss);
# above, the structural family's rule, which assigns into a new slot instead of zeroing it
# first (the sweep's own rule adds: an assigning loop in it cost 0.13 s of its first compile).
SUM_IN_SWEEP = 4096
# Uniform gradients. The gradient a sum of more than SUM_IN_SWEEP elements sends back is one
# number repeated: on ``(x * y).sum()`` at 10^6 elements it was written out (4 MB) and read
# back by the rule after it, 40% of the backward. A slot in state UNIFORM holds that number in
# its first element only. ``shared_slots`` marks the rows that may hold one (ELIGIBLE): those
# that one row reads (so no other rule adds into the slot) and that row sends one (a sum, or a
# pass-through that may get one), that are not leaves (whose slots become ``.grad``), and whose
# own rule reads the number (the pass-throughs and mul, and precomputed derivatives:
# ``_reads_uniform``). The rules that write one check the mark (the sweep checks the state only
# where a pass-through shares its slot); the one that passes it on writes it out for an operand
# that cannot read it. A sweep whose caller reads non-leaf gradients writes them all out at its
# end (``read_rows``).
NOT_ELIGIBLE, ELIGIBLE, UNIFORM = families.NOT_ELIGIBLE, families.ELIGIBLE, families.UNIFORM
# Arenas up to this many elements are zeroed whole when made, as before slots were claimed: a
# memset of a chain's or a small model's arena costs less than a claim per small row (the 1000-op
# chain's backward: 0.026 us an op with the memset, 0.036 with the claims).
ZERO_WHOLE = 1 << 16


@jit
def _shape(layouts, dims, layout):
    offset = layouts[layout, 3]
    return dims[offset : offset + layouts[layout, 2]]


@jit
def _split(shape, dim):
    """(outer, extent, inner): the shape seen as three dimensions around ``dim``."""
    if len(shape) == 0:
        return 1, 1, 1
    outer = 1
    for k in range(dim):
        outer *= shape[k]
    inner = 1
    for k in range(dim + 1, len(shape)):
        inner *= shape[k]
    return outer, shape[dim], inner


@jit
def _claim(row, rows, layouts, offsets, touched, grad):
    """Mark ``row``'s gradient as reached, zeroing its slot the first time: the arenas are not
    zeroed when they are made (``_setup``), so a slot holds a gradient only once ``touched``.
    A rule that writes a whole slot the first time may assign instead of claiming: on
    ``(x * y + x.sin()).sum()`` at 10^6 elements, zeroing the arenas whole was a seventh of the
    backward."""
    if not touched[row]:
        start = offsets[row]
        slot = grad[start : start + layouts[rows[row, 4], 1]]
        for i in range(len(slot)):
            slot[i] = 0
        touched[row] = True


@jit
def _small_backward(rule, r, numel, rows, params, layouts, aux, addresses, offsets, touched, grad, zeroed):
    """Rows of a few elements (scalar graphs, the tutorial's 3-vectors) without slices or a call:
    index arithmetic on the arena, reading only the values the rule needs. For large rows the
    slice-based rules below vectorize instead. ``sum_all`` is here for inputs up to
    ``SUM_IN_SWEEP`` elements: it ends nearly every loss, and its result is one element. False:
    not handled here.

    Compiled on its own and inlined by LLVM into the sweep (``always_inline``), not by numba:
    numba's inliner copied this body's IR into ``_run`` and typed it there again, and the
    tutorial's first backward on an empty cache took 6.4 s against 5.7 so (medians of 3-4
    fresh processes, alternated). The sweep's small-row speed is the same (the chain's backward
    0.029-0.033 us a row either way)."""
    always_inline()
    a = rows[r, 1]
    b = rows[r, 2]
    o = offsets[r]
    has_a = a >= 0 and offsets[a] >= 0
    has_b = b >= 0 and offsets[b] >= 0
    oa = offsets[a] if has_a else 0
    ob = offsets[b] if has_b else 0
    one = grad.dtype.type(1.0)
    if rule == SUM_ALL and has_a and layouts[rows[a, 4], 1] > SUM_IN_SWEEP:
        return False  # the structural family's: it assigns into a new slot
    if rule == NORM:
        # The grouped family's, before any slot is claimed: claimed here, a norm of order 0
        # (which gives its input no gradient) gave zeros, the input reached, in a float32 tape.
        # (The other rules this path leaves to a family find their slots claimed, as always:
        # deciding for every rule first changed the order of a float32 scalar graph's sums.)
        return False
    # The rules below add into their operands' slots, zeroed if new (unless the arenas were
    # zeroed whole). Assigning instead, as the families do, cost the sweep's first compile 0.1 s
    # a loop: a select, or a second loop.
    if has_a and not zeroed:
        _claim(a, rows, layouts, offsets, touched, grad)
    if has_b and not zeroed:
        _claim(b, rows, layouts, offsets, touched, grad)
    # Rules share loops where the arithmetic allows (a loop here costs the sweep's first compile
    # about 0.1 s): g * s is s * g, and g * y is (g * 1) * y, to the bit.
    if rule == PASS or rule == ADD or rule == SUB or rule == NEG or rule == MUL_SCALAR:
        sign_a = -one if rule == NEG else (grad.dtype.type(params[r, 5]) if rule == MUL_SCALAR else one)
        sign_b = -one if rule == SUB else one
        for i in range(numel):
            if has_a:
                grad[oa + i] += sign_a * grad[o + i]
            if has_b:
                grad[ob + i] += sign_b * grad[o + i]
    elif rule == MUL or (rule == POW_SCALAR and params[r, 5] == 2.0):  # x ** 2: the tutorial's first op
        square = rule == POW_SCALAR
        if has_a:
            factor = grad.dtype.type(2.0) if square else one
            y = value_at(addresses[a if square else b], numel, grad)
            for i in range(numel):
                grad[oa + i] += grad[o + i] * factor * y[i]
        if has_b and not square:
            x = value_at(addresses[a], numel, grad)
            for i in range(numel):
                grad[ob + i] += grad[o + i] * x[i]
    elif rule == VIEW and numel == 1:
        if has_a:
            grad[oa + aux[rows[r, 3]]] += grad[o]
    elif rule == SUM_ALL:  # its result is one element; its input up to SUM_IN_SWEEP elements
        if has_a:
            scaled = grad[o] * grad.dtype.type(params[r, 5])
            target = grad[oa : oa + layouts[rows[a, 4], 1]]
            for i in range(len(target)):
                target[i] += scaled
    elif rule == SOFTPLUS and b < 0:  # as the elementwise rule's
        x = value_at(addresses[a], numel, grad)
        threshold = grad.dtype.type(SOFTPLUS_THRESHOLD)
        for i in range(numel):
            e = np.exp(x[i])
            grad[oa + i] += grad[o + i] if x[i] > threshold else grad[o + i] * e / (e + one)
    else:
        return False
    if has_a:
        touched[a] = True
    if has_b:
        touched[b] = True
    return True


@jit
def _derivative_backward(r, rows, layouts, addresses, offsets, touched, grad, uniform):
    """A unary row whose second input holds d(out)/d(x), computed by numpy when it was recorded
    (``Op.derivative``): the rule only multiplies, whatever the op. A slot not reached yet is
    assigned (not zeroed, then added to); a UNIFORM gradient is read as its one number."""
    a = rows[r, 1]
    if a < 0 or offsets[a] < 0:
        return True
    numel = layouts[rows[r, 4], 1]
    o = offsets[r]
    oa = offsets[a]
    fresh = not touched[a]
    touched[a] = True
    g = grad[o : o + numel]
    ga = grad[oa : oa + numel]
    derivative = value_at(addresses[rows[r, 2]], numel, grad)
    if r < len(uniform) and uniform[r] == UNIFORM:
        _scaled_by(ga, g[0], derivative, numel, fresh)
    else:
        _times(ga, g, derivative, numel, fresh)
    return True


@jit
def _elementwise_backward(rule, r, rows, params, layouts, addresses, offsets, touched, grad, uniform):
    """Rules whose operands and result have one shape. ``grad`` is a borrowed view, so slicing it
    costs no reference counting; slices (rather than ``ga[i]``) let LLVM vectorize, since
    an index that might be negative gets a wraparound test per element (measured 4.5x)."""
    a = rows[r, 1]
    b = rows[r, 2]
    numel = layouts[rows[r, 4], 1]
    o = offsets[r]
    has_a = a >= 0 and offsets[a] >= 0
    has_b = b >= 0 and offsets[b] >= 0
    oa = offsets[a] if has_a else 0
    ob = offsets[b] if has_b else 0
    g = grad[o : o + numel]
    ga = grad[oa : oa + numel] if has_a else grad[:0]
    gb = grad[ob : ob + numel] if has_b else grad[:0]
    # The commonest rules write a new slot by ``=``; the others add into it, zeroed
    # first (``_claim``). An operand read twice (``x * x``) is new only for its first write.
    s = grad.dtype.type(params[r, 5])
    uniform_g = r < len(uniform) and uniform[r] == UNIFORM  # g is g[0] everywhere
    square = rule == POW_SCALAR and s == grad.dtype.type(2.0)
    assigns = (
        rule == PASS or rule == NEG or rule == MUL_SCALAR or rule == ADD or rule == SUB or rule == MUL
        or (uniform_g and (rule == DIV_SCALAR or square))
    )  # fmt: skip
    fresh_a = has_a and assigns and not touched[a]
    if has_a:
        if assigns:
            touched[a] = True
        else:
            _claim(a, rows, layouts, offsets, touched, grad)
    fresh_b = has_b and assigns and not touched[b]  # after a's: ``x * x`` assigns once
    if has_b:
        if assigns:
            touched[b] = True
        else:
            _claim(b, rows, layouts, offsets, touched, grad)
    zero = grad.dtype.type(0.0)
    one = grad.dtype.type(1.0)
    if uniform_g and rule == POW_SCALAR and not square:  # written out: the general rule below reads it
        for i in range(1, numel):
            g[i] = g[0]
    elif uniform_g:  # ``_reads_uniform``'s rules, with the number
        c = g[0]
        if rule == MUL:
            if has_a:
                y, period = _repeated_value(rows, layouts, addresses, r, b, 0, numel, grad)
                _scaled_by(ga, c, y, period, fresh_a)
            if has_b:
                x, period = _repeated_value(rows, layouts, addresses, r, a, PERIOD_BITS, numel, grad)
                _scaled_by(gb, c, x, period, fresh_b)
        elif square:  # (g * 2) * x, as below
            if has_a:
                _scaled_by(ga, c * s, value_at(addresses[a], numel, grad), numel, fresh_a)
        elif rule == DIV_SCALAR:
            if has_a:
                _uniform_into(ga, a, c / s, fresh_a, uniform)
        else:  # PASS, NEG, MUL_SCALAR, ADD, SUB: a number to each operand, uniform too if it may be
            scale_a = -one if rule == NEG else (s if rule == MUL_SCALAR else one)
            if has_a:
                _uniform_into(ga, a, scale_a * c, fresh_a, uniform)
            if has_b:
                _uniform_into(gb, b, -c if rule == SUB else c, fresh_b, uniform)
        return True

    if rule == PASS:
        if fresh_a:
            for i in range(numel):
                ga[i] = g[i]
        else:
            for i in range(numel):
                ga[i] += g[i]
    elif rule == NEG:
        if fresh_a:
            for i in range(numel):
                ga[i] = -g[i]
        else:
            for i in range(numel):
                ga[i] -= g[i]
    elif rule == MUL_SCALAR:
        if fresh_a:
            for i in range(numel):
                ga[i] = g[i] * s
        else:
            for i in range(numel):
                ga[i] += g[i] * s
    elif rule == DIV_SCALAR:
        for i in range(numel):
            ga[i] += g[i] / s
    elif rule == SOFTPLUS:  # PyTorch's softplus_backward, which saves the input: g * e / (e + 1)
        # with e = exp(x), and g itself above the threshold. The tanh form of the sigmoid,
        # 0.5 * (1 + tanh(x / 2)), cancelled for negative x: 3% off at -15 and 0 from -18 in
        # float32, 0 from -38 in float64 (PyTorch's 1.9e-22 at -50).
        x = value_at(addresses[a], numel, grad)
        threshold = grad.dtype.type(SOFTPLUS_THRESHOLD)
        for i in range(numel):  # vmath's exp: vectorized (numba's np.exp is scalar libm)
            e = vmath.exp(x[i])
            ga[i] += g[i] if x[i] > threshold else g[i] * e / (e + one)
    elif rule == ZERO:
        pass  # the input is marked reached (its gradient is zero, as PyTorch gives)
    elif rule == LEAKY_RELU:
        x = value_at(addresses[a], numel, grad)
        for i in range(numel):
            ga[i] += g[i] if x[i] > zero else g[i] * s
    elif rule == ELU:
        x = value_at(addresses[a], numel, grad)
        for i in range(numel):
            ga[i] += g[i] if x[i] > zero else g[i] * s * np.exp(x[i])
    elif rule == POW_SCALAR:
        x = value_at(addresses[a], numel, grad)
        if s == grad.dtype.type(2.0):  # no pow call for the common exponents (~55 ns an element)
            for i in range(numel):
                ga[i] += g[i] * s * x[i]
        elif s == grad.dtype.type(3.0):
            for i in range(numel):
                ga[i] += g[i] * s * (x[i] * x[i])
        elif s == -one:
            for i in range(numel):
                ga[i] += g[i] * s / (x[i] * x[i])
        elif s == grad.dtype.type(0.5):  # sqrt vectorizes; pow does not
            for i in range(numel):
                ga[i] += g[i] * s / np.sqrt(x[i])
        elif s != zero:
            for i in range(numel):
                ga[i] += g[i] * s * x[i] ** (s - one)
    elif rule == RPOW_SCALAR:
        y = value_at(addresses[r], numel, grad)
        if s != zero:
            log_base = np.log(s)
            for i in range(numel):
                ga[i] += g[i] * y[i] * log_base
        else:  # 0 ** x: PyTorch masks the gradient to 0 where x >= 0 (y is 0 or 1); below, y is
            # inf and y * log(0) is -inf (NaN stays NaN)
            for i in range(numel):
                if not (y[i] == zero or y[i] == one):
                    ga[i] += g[i] * (y[i] * -np.inf)
    elif rule == ADD or rule == SUB:
        if has_a:
            if fresh_a:
                for i in range(numel):
                    ga[i] = g[i]
            else:
                for i in range(numel):
                    ga[i] += g[i]
        if has_b:
            sign = one if rule == ADD else -one
            if fresh_b:
                for i in range(numel):
                    gb[i] = sign * g[i]
            else:
                for i in range(numel):
                    gb[i] += sign * g[i]
    elif rule == MUL:
        if has_a:
            y, period = _repeated_value(rows, layouts, addresses, r, b, 0, numel, grad)
            _times(ga, g, y, period, fresh_a)
        if has_b:
            x, period = _repeated_value(rows, layouts, addresses, r, a, PERIOD_BITS, numel, grad)
            _times(gb, g, x, period, fresh_b)
    elif rule == DIV:  # (only b is ever repeated: ``_record._binary``)
        y, period = _repeated_value(rows, layouts, addresses, r, b, 0, numel, grad)
        if has_a:
            for start in range(0, numel, max(period, 1)):
                h = g[start : start + period]
                t = ga[start : start + period]
                for i in range(len(t)):
                    t[i] += h[i] / y[i]
        if has_b:
            x = value_at(addresses[a], numel, grad)
            for start in range(0, numel, max(period, 1)):
                h = g[start : start + period]
                v = x[start : start + period]
                t = gb[start : start + period]
                for i in range(len(t)):
                    t[i] += -h[i] * ((v[i] / y[i]) / y[i])  # (y * y under- or overflowed first: PyTorch's order)
    elif rule == POW:
        x = value_at(addresses[a], numel, grad)
        e = value_at(addresses[b], numel, grad)
        if has_a:
            for i in range(numel):
                if e[i] != zero:
                    ga[i] += g[i] * e[i] * x[i] ** (e[i] - one)
        if has_b:
            y = value_at(addresses[r], numel, grad)
            for i in range(numel):
                if not (x[i] == zero and e[i] >= zero):
                    gb[i] += g[i] * y[i] * np.log(x[i])
    else:
        return False
    return True


_PERIOD_MASK = (1 << PERIOD_BITS) - 1  # (rules.PERIOD_BITS)


@jit
def _repeated_value(rows, layouts, addresses, r, v, shift, numel, like):
    """``(values, period)``: the value of operand row ``v`` of the product row ``r``, which
    repeats every ``period`` elements. Its own saved value (``numel`` long), or where ``r``'s
    iparam gives ``v`` a period, the value of ``v``'s source, which ``v`` broadcasts over
    leading dimensions (and which must be ``period`` long, dividing ``numel``: a tape file
    saying otherwise reads the saved value, and fails its check, rather than out of bounds)."""
    period = (rows[r, 3] >> shift) & _PERIOD_MASK
    if period > 0:
        source = rows[v, 1]
        if source >= 0 and layouts[rows[source, 4], 1] == period and numel % period == 0:
            return value_at(addresses[source], period, like), period
    return value_at(addresses[v], numel, like), numel


@jit
def _times(target, g, values, period, fresh):
    """``target = g * values``, ``values`` repeated every ``period`` elements, or ``+=`` where
    the slot holds a gradient already: a loop per repetition (one for a value of the slot's size)."""
    if period <= 0:  # (an empty slot)
        return
    for start in range(0, len(target), period):
        t = target[start : start + period]
        h = g[start : start + period]
        if fresh:
            for i in range(period):
                t[i] = h[i] * values[i]
        else:
            for i in range(period):
                t[i] += h[i] * values[i]


@jit
def _scaled_by(target, c, values, period, fresh):
    """``target = c * values``, ``values`` repeated every ``period`` elements, or ``+=`` where
    the slot holds a gradient already."""
    if period <= 0:  # (an empty slot)
        return
    for start in range(0, len(target), period):
        t = target[start : start + period]
        if fresh:
            for i in range(period):
                t[i] = c * values[i]
        else:
            for i in range(period):
                t[i] += c * values[i]


@jit
def _uniform_into(target, row, c, fresh, uniform):
    """Add the number ``c`` to every element of ``row``'s gradient ``target``: as its first
    element only, in state UNIFORM, when the slot is new and ELIGIBLE."""
    if fresh and row < len(uniform) and uniform[row] == ELIGIBLE:
        target[0] = c
        uniform[row] = UNIFORM
    elif fresh:
        for i in range(len(target)):
            target[i] = c
    else:
        for i in range(len(target)):
            target[i] += c


@jit
def _number_into_row(row, c, rows, layouts, offsets, touched, grad, uniform):
    """``_uniform_into`` row ``row``'s whole slot, marking it reached."""
    fresh = not touched[row]
    touched[row] = True
    _uniform_into(grad[offsets[row] : offsets[row] + layouts[rows[row, 4], 1]], row, c, fresh, uniform)


@jit
def _structural_backward(rule, r, rows, params, layouts, dims, aux, addresses, offsets, touched, grad, uniform):
    """Sums along dimensions, views, gathers and joins: rules that need shapes."""
    a = rows[r, 1]
    b = rows[r, 2]
    numel = layouts[rows[r, 4], 1]
    g = grad[offsets[r] : offsets[r] + numel]
    has_a = a >= 0 and offsets[a] >= 0
    has_b = b >= 0 and offsets[b] >= 0
    numel_a = layouts[rows[a, 4], 1] if a >= 0 else 0
    ga = grad[offsets[a] : offsets[a] + numel_a] if has_a else grad[:0]
    if rule == SUM_ALL:  # of more than SUM_IN_SWEEP elements: a slot not reached yet is assigned
        if has_a:
            _number_into_row(a, g[0] * grad.dtype.type(params[r, 5]), rows, layouts, offsets, touched, grad, uniform)
        return True
    if rule == VIEW and r < len(uniform) and uniform[r] == UNIFORM:  # a whole view (``_is_whole``)
        if has_a:
            _number_into_row(a, g[0], rows, layouts, offsets, touched, grad, uniform)
        return True
    if rule == CONCAT and r < len(uniform) and uniform[r] == UNIFORM:  # the number to every input
        start = rows[r, 3]
        for index in range(aux[start]):
            source = r - aux[start + 2 + index]
            if source != r and offsets[source] >= 0:
                _number_into_row(source, g[0], rows, layouts, offsets, touched, grad, uniform)
        return True
    if has_a:
        _claim(a, rows, layouts, offsets, touched, grad)
    if has_b:
        _claim(b, rows, layouts, offsets, touched, grad)
    one = grad.dtype.type(1.0)
    s = grad.dtype.type(params[r, 5])

    if rule == SUM_DIM:
        shape = _shape(layouts, dims, rows[a, 4])
        strided_accumulate(
            ga, ORIGIN, contiguous_strides(shape), g, ORIGIN, reduced_strides(shape, rows[r, 3]), shape, s
        )
    elif rule == GATHER_ROWS:
        start = rows[r, 3]
        count = aux[start]
        width = numel // count if count else 0
        for i in range(count):  # (slices from 0: at ``target + j`` numba's wraparound kept it scalar)
            target, source = aux[start + 1 + i] * width, g[i * width : (i + 1) * width]
            picked = ga[target : target + width]
            for j in range(width):
                picked[j] += source[j]
    elif rule == NLL_TARGETS:  # -g (/ the count of kept targets, for the mean) at each target's class
        if has_a:
            count = layouts[rows[b, 4], 1]
            shape = _shape(layouts, dims, rows[a, 4])
            classes = shape[len(shape) - 1]
            targets = value_at(addresses[b], count, grad)
            ignore = rows[r, 3]
            kept = 0
            for i in range(count):
                if targets[i] != ignore:
                    kept += 1
            if kept:
                scale = -g[0] / kept if params[r, 5] == 1.0 else -g[0]
                for i in range(count):
                    target = targets[i]
                    if target == ignore:
                        continue
                    if not (target >= 0 and target < classes):  # (the replay's guard stops before)
                        return False
                    ga[i * classes + int(target)] += scale
    elif rule == CONCAT:
        # aux: count, dim, then each input's row delta (0: an operand with no row), then each
        # input's extent along ``dim`` (1 for stack, whose inputs lack that dimension).
        start = rows[r, 3]
        count, dim = aux[start], aux[start + 1]
        outer, extent, inner = _split(_shape(layouts, dims, rows[r, 4]), dim)
        position = 0
        for index in range(count):
            source = r - aux[start + 2 + index]
            width = aux[start + 2 + count + index] * inner
            if source != r and offsets[source] >= 0:
                _claim(source, rows, layouts, offsets, touched, grad)
                target = grad[offsets[source] : offsets[source] + outer * width]
                for o in range(outer):
                    block = g[o * extent * inner + position : o * extent * inner + position + width]
                    for i in range(width):
                        target[o * width + i] += block[i]
            position += width
    elif rule == VIEW:
        shape = _shape(layouts, dims, rows[r, 4])
        start = rows[r, 3]
        ndim = len(shape)
        strides = aux[start + 1 : start + 1 + ndim]
        if is_block(shape, strides):
            block = ga[aux[start] : aux[start] + numel]
            for i in range(numel):
                block[i] += g[i]
        else:
            strided_accumulate(ga, aux[start], strides, g, ORIGIN, contiguous_strides(shape), shape, one)
    else:
        return False
    return True


@jit
def _normalization_backward(rule, r, rows, layouts, dims, params, addresses, offsets, touched, grad):
    """softmax, log_softmax and layer_norm: normalisations over groups of elements; and one
    LSTM step (``normalization.lstm_cell``), whose two inputs are not of its result's size."""
    a = rows[r, 1]
    if rule == LSTM_CELL:  # a: the gates (n, 4 * hidden); b: the cell state (n, hidden)
        b = rows[r, 2]
        if a < 0 or b < 0:  # both are always recorded (their values are read): a malformed row
            return False
        with_a, with_c = offsets[a] >= 0, offsets[b] >= 0
        if not (with_a or with_c):
            return True
        numel_a, numel_b = layouts[rows[a, 4], 1], layouts[rows[b, 4], 1]
        gates, c = value_at(addresses[a], numel_a, grad), value_at(addresses[b], numel_b, grad)
        g = grad[offsets[r] : offsets[r] + 2 * numel_b]
        if with_a:
            _claim(a, rows, layouts, offsets, touched, grad)
            g_gates = grad[offsets[a] : offsets[a] + numel_a]
        else:
            g_gates = np.zeros(numel_a, grad.dtype)
        g_c = g_gates[:0]
        if with_c:
            _claim(b, rows, layouts, offsets, touched, grad)
            g_c = grad[offsets[b] : offsets[b] + numel_b]
        state = value_at(addresses[r], 2 * numel_b, grad)
        normalization.lstm_cell_backward(gates, c, state, g, g_gates, g_c, rows[r, 3], with_c)
        return True
    if a < 0 or offsets[a] < 0:
        return True
    numel = layouts[rows[r, 4], 1]
    g = grad[offsets[r] : offsets[r] + numel]
    ga = grad[offsets[a] : offsets[a] + numel]
    _claim(a, rows, layouts, offsets, touched, grad)
    zero = grad.dtype.type(0.0)
    if rule == SOFTMAX or rule == LOG_SOFTMAX:
        log = rule == LOG_SOFTMAX
        y = value_at(addresses[r], numel, grad)
        outer, extent, inner = _split(_shape(layouts, dims, rows[r, 4]), rows[r, 3])
        if inner == 1 and extent > 0:  # the last dimension: contiguous groups, whose loops LLVM vectorizes
            normalization.softmax_groups_backward(y, g, ga, extent, log)
            return True
        for o in range(outer):  # another dimension: groups strided by ``inner``
            for i in range(inner):
                base = o * extent * inner + i
                total = zero
                for k in range(extent):
                    total += g[base + k * inner] if log else g[base + k * inner] * y[base + k * inner]
                for k in range(extent):
                    j = base + k * inner
                    ga[j] += g[j] - vmath.exp(y[j]) * total if log else y[j] * (g[j] - total)
    elif rule == LAYER_NORM:  # iparam: the elements normalised together; param: eps
        normalization.layer_norm_backward(value_at(addresses[a], numel, grad), g, ga, rows[r, 3], params[r, 5])
    else:
        return False
    return True


@jit
def _claimed(row, numel, rows, layouts, offsets, touched, grad):
    """Row ``row``'s gradient slot of ``numel`` elements, claimed (``_claim``); empty when the
    row takes no gradient."""
    if row < 0 or offsets[row] < 0:
        return grad[:0]
    _claim(row, rows, layouts, offsets, touched, grad)
    return grad[offsets[row] : offsets[row] + numel]


@jit
def _layers_backward(rule, r, rows, layouts, dims, params, aux, addresses, offsets, touched, grad):
    """Whole layers in one row each: conv2d (``convolution``), batch_norm and an LSTM direction's
    steps (``normalization``). Their kernels are the largest: a family of their own, compiled
    only for the tapes that have them. Input a (the input) is always recorded, its value read;
    b is the weight (batch_norm's may be -1: none)."""
    a, b = rows[r, 1], rows[r, 2]
    if a < 0 or (b < 0 and rule != BATCH_NORM):  # a malformed row
        return False
    if offsets[a] < 0 and (b < 0 or offsets[b] < 0):  # no gradient wanted
        return True
    numel, numel_a = layouts[rows[r, 4], 1], layouts[rows[a, 4], 1]
    shape = _shape(layouts, dims, rows[r, 4])
    g = grad[offsets[r] : offsets[r] + numel]
    x = value_at(addresses[a], numel_a, grad)
    if rule == BATCH_NORM:  # each channel (dimension 1) over the others; param: eps
        outer, channels, inner = _split(shape, 1)
        ga = _claimed(a, numel_a, rows, layouts, offsets, touched, grad)
        gw = _claimed(b, channels, rows, layouts, offsets, touched, grad)
        w = value_at(addresses[b], channels, grad) if b >= 0 and len(ga) else grad[:0]
        normalization.batch_norm_backward(x, w, g, ga, gw, outer, channels, inner, params[r, 5])
        return True
    numel_b = layouts[rows[b, 4], 1]
    ga = _claimed(a, numel_a, rows, layouts, offsets, touched, grad)
    gb = _claimed(b, numel_b, rows, layouts, offsets, touched, grad)
    w = value_at(addresses[b], numel_b, grad)
    if rule == CONV2D:  # a: the input (N, C, H, W); iparam: the parameters in aux
        convolution.conv2d_backward(x, w, g, ga, gb, convolution.row_geometry(r, rows, layouts, dims, aux))
    elif rule == LSTM_SEQUENCE:  # a: the projections (h0, c0 after, or zero); iparam: reversed; (steps, 2, n, hidden)
        out = value_at(addresses[r], numel, grad)
        normalization.lstm_sequence_backward(x, w, out, g, ga, gb, shape[0], shape[2], shape[3], rows[r, 3])
    else:
        return False
    return True


@jit
def _matmul_backward(rule, r, rows, layouts, dims, addresses, offsets, touched, grad):
    """Products: dot, mv, mm, bmm (BLAS, which needs scipy: blas.product)."""
    a = rows[r, 1]
    b = rows[r, 2]
    g = grad[offsets[r] : offsets[r] + layouts[rows[r, 4], 1]]
    has_a = a >= 0 and offsets[a] >= 0
    has_b = b >= 0 and offsets[b] >= 0
    numel_a = layouts[rows[a, 4], 1]
    numel_b = layouts[rows[b, 4], 1]
    ga = grad[offsets[a] : offsets[a] + numel_a] if has_a else grad[:0]
    gb = grad[offsets[b] : offsets[b] + numel_b] if has_b else grad[:0]
    if rule == DOT:
        if has_a:
            _claim(a, rows, layouts, offsets, touched, grad)
        if has_b:
            _claim(b, rows, layouts, offsets, touched, grad)
        x = value_at(addresses[a], numel_a, grad)
        y = value_at(addresses[b], numel_b, grad)
        for i in range(len(ga)):
            ga[i] += g[0] * y[i]
        for i in range(len(gb)):
            gb[i] += g[0] * x[i]
    elif rule == MV or rule == MM or rule == BMM:
        # Matrices are read in place by address; gradients are accumulated in place by gemm's
        # beta = 1 (blas.py). An operand flagged transposed (``product_shape``) is its source
        # matrix, stored (k, m) for A or (n, k) for B, and so is its gradient slot.
        batch, m, k, n, ta, tb = product_shape(r, rows, layouts, dims, rule == MV, rule == BMM)
        if m * k * n == 0:
            if has_a:
                _claim(a, rows, layouts, offsets, touched, grad)
            if has_b:
                _claim(b, rows, layouts, offsets, touched, grad)
            return True
        # A slot not reached yet is assigned (gemm's beta = 0, which ignores what it holds), not
        # zeroed and then accumulated into: a weight's gradient is written once, not three times
        # (per-sample gradients wrote the first layer's 32 KB so for every slice). For x @ x the
        # second product then adds to the first's.
        beta_a = 1.0
        if has_a and not touched[a]:
            beta_a = 0.0
            touched[a] = True
        beta_b = 1.0
        if has_b and not touched[b]:
            beta_b = 0.0
            touched[b] = True
        lda = m if ta else k  # the stored rows' lengths
        ldb = k if tb else n
        size = grad.itemsize
        arena = grad.ctypes.data
        for index in range(batch):
            left = addresses[a] + index * m * k * size
            right = addresses[b] + index * k * n * size
            out_grad = arena + (offsets[r] + index * m * n) * size
            if has_a:
                check_address(right, k * n)
                left_grad = arena + (offsets[a] + index * m * k) * size
                if ta:  # dA.T (k, m) += op(B) @ dC.T
                    product(tb, True, k, m, n, 1.0, right, ldb, out_grad, n, beta_a, left_grad, m, grad)
                else:  # dA (m, k) += dC @ op(B).T
                    product(False, not tb, m, k, n, 1.0, out_grad, n, right, ldb, beta_a, left_grad, k, grad)
            if has_b:
                check_address(left, m * k)
                right_grad = arena + (offsets[b] + index * k * n) * size
                if tb:  # dB.T (n, k) += dC.T @ op(A)
                    product(True, ta, n, k, m, 1.0, out_grad, n, left, lda, beta_b, right_grad, k, grad)
                else:  # dB (k, n) += op(A).T @ dC
                    product(not ta, False, k, n, m, 1.0, left, lda, out_grad, n, beta_b, right_grad, n, grad)
    else:
        return False
    return True


@jit
def product_shape(r, rows, layouts, dims, mv, bmm):
    """``(batch, m, k, n, ta, tb)`` of the product row ``r`` (an mm, or with ``mv``/``bmm``
    those; the flags tell, as rule numbers differ between the sweeps): op(A) (m, k) times op(B)
    (k, n), ``batch`` of them for bmm. An mm row's ``iparam`` bits say that an operand is the source of a
    transpose the replay reads in place (``Tape._read_transposes_in_place``): bit 1 A is stored
    (k, m), bit 2 B is stored (n, k)."""
    shape_a = _shape(layouts, dims, rows[rows[r, 1], 4])
    shape_b = _shape(layouts, dims, rows[rows[r, 2], 4])
    flags = 0 if mv or bmm else rows[r, 3]
    ta = (flags & 1) != 0
    tb = (flags & 2) != 0
    batch = shape_a[0] if bmm else 1
    if ta:
        m, k = shape_a[1], shape_a[0]
    else:
        m, k = shape_a[-2], shape_a[-1]
    if mv:
        n = 1
    elif tb:
        n = shape_b[0]
    else:
        n = shape_b[-1]
    return batch, m, k, n, ta, tb


@jit
def _groups(layouts, dims, layout, dim):
    """A reduction's input as (outer, extent, inner) around the reduced dimension ``dim``, or as
    one group of every element when ``dim`` is -1."""
    if dim < 0:
        return 1, layouts[layout, 1], 1
    return _split(_shape(layouts, dims, layout), dim)


@jit
def _grouped_backward(rule, mask, r, rows, params, layouts, dims, addresses, offsets, touched, grad):
    """Rules that choose where a gradient goes (maximum, clamp, where) and reductions along one
    dimension (``iparam``; -1: all elements) whose gradient depends on the whole group."""
    a = rows[r, 1]
    b = rows[r, 2]
    numel = layouts[rows[r, 4], 1]
    numel_a = layouts[rows[a, 4], 1] if a >= 0 else 0
    g = grad[offsets[r] : offsets[r] + numel]
    has_a = a >= 0 and offsets[a] >= 0
    has_b = b >= 0 and offsets[b] >= 0
    if rule == NORM and params[r, 5] == 0:
        # The count of nonzeros: PyTorch's backward gives no gradient, not zeros, so that the
        # input's ``.grad`` stays None (an optimizer skips it) and autograd.grad says unused
        return True
    ga = grad[offsets[a] : offsets[a] + numel_a] if has_a else grad[:0]
    gb = grad[offsets[b] : offsets[b] + numel] if has_b else grad[:0]
    if has_a:
        _claim(a, rows, layouts, offsets, touched, grad)
    if has_b:
        _claim(b, rows, layouts, offsets, touched, grad)
    zero = grad.dtype.type(0.0)
    one = grad.dtype.type(1.0)
    half = grad.dtype.type(0.5)
    s = grad.dtype.type(params[r, 5])

    if rule == MAXIMUM or rule == MINIMUM:
        # As PyTorch: a tie splits the gradient evenly; the loser gets none; a NaN on either side
        # is neither, so both get all of it.
        x = value_at(addresses[a], numel, grad)
        y = value_at(addresses[b], numel, grad)
        for i in range(numel):
            a_loses = (x[i] < y[i]) if rule == MAXIMUM else (x[i] > y[i])
            b_loses = (x[i] > y[i]) if rule == MAXIMUM else (x[i] < y[i])
            share = half if x[i] == y[i] else one
            if has_a and not a_loses:
                ga[i] += g[i] * share
            if has_b and not b_loses:
                gb[i] += g[i] * share
    elif rule == CLAMP_MIN or rule == CLAMP_MAX:
        x = value_at(addresses[a], numel, grad)
        for i in range(numel):
            if (x[i] >= s) if rule == CLAMP_MIN else (x[i] <= s):
                ga[i] += g[i]
    elif rule == WHERE:
        # The condition, as 0/1 in this dtype, is the row ``iparam`` rows above.
        condition = value_at(addresses[r - rows[r, 3]], numel, grad)
        for i in range(numel):
            if condition[i] != zero:
                if has_a:
                    ga[i] += g[i]
            elif has_b:
                gb[i] += g[i]
    else:
        outer, extent, inner = _groups(layouts, dims, rows[a, 4], rows[r, 3])
        # Only what the table says the op saves (``mask``) has an address: select_reduce's
        # weights (in1), or the input and the result.
        x = value_at(addresses[a], numel_a, grad) if mask & 1 else grad[:0]
        if mask & 2:
            y = value_at(addresses[b], numel_a, grad)
        else:
            y = value_at(addresses[r], numel, grad) if mask & 4 else grad[:0]
        for o in range(outer):
            for i in range(inner):
                base = o * extent * inner + i
                at = o * inner + i
                if rule == SELECT_REDUCE:  # max, min, amax, amin: weights say who won and how ties share
                    for k in range(extent):  # (the losers take nothing: an infinite g times 0 was NaN)
                        weight = y[base + k * inner]
                        if weight != zero:
                            ga[base + k * inner] += g[at] * weight
                elif rule == CUMSUM:  # the gradient is the reversed cumulative sum of g (in float64)
                    total = np.float64(0.0)
                    for k in range(extent - 1, -1, -1):
                        total += np.float64(g[base + k * inner])
                        ga[base + k * inner] += grad.dtype.type(total)
                elif rule == LOGSUMEXP:
                    for k in range(extent):
                        ga[base + k * inner] += g[at] * vmath.exp(x[base + k * inner] - y[at])
                elif rule == PROD:
                    _prod_group(x, ga, g[at], y[at], base, extent, inner)
                elif rule == VAR or rule == STD:
                    # s: the correction (1 is Bessel's); none left is 0, as numpy and PyTorch divide
                    dof = max(grad.dtype.type(extent) - s, zero)
                    if rule == STD and y[at] == zero:
                        continue  # PyTorch's gradient of a zero std is zero, not 0/0
                    scale = (one + one) / dof if rule == VAR else one / (dof * y[at])
                    # The mean in float64, refined by a second pass, and each x - mean there too:
                    # summed in the dtype, float32 data offset by 1e4 gave every element the same
                    # wrong gradient (1e6 of them: -2.6e-4, exact 7e-7).
                    mean = np.float64(0.0)
                    for k in range(extent):
                        mean += np.float64(x[base + k * inner])
                    mean /= extent
                    residual = np.float64(0.0)
                    for k in range(extent):
                        residual += np.float64(x[base + k * inner]) - mean
                    mean += residual / extent
                    for k in range(extent):
                        ga[base + k * inner] += g[at] * scale * grad.dtype.type(np.float64(x[base + k * inner]) - mean)
                else:  # NORM, of order s
                    _norm_group(x, ga, g[at], y[at], s, base, extent, inner)
    return True


@jit
def _prod_group(x, ga, g, product, base, extent, inner):
    """d prod / d x_k is the product of the others: product / x_k unless some x is zero."""
    zeros = 0
    position = 0
    for k in range(extent):
        if x[base + k * inner] == 0:
            zeros += 1
            position = k
    if zeros == 0:
        for k in range(extent):
            ga[base + k * inner] += g * product / x[base + k * inner]
    elif zeros == 1:  # only the zero's own gradient survives: the product of the others
        others = g
        for k in range(extent):
            if k != position:
                others *= x[base + k * inner]
        ga[base + position * inner] += others


@jit
def _norm_group(x, ga, g, norm, p, base, extent, inner):
    """d ||x||_p / d x_k = sign(x_k) |x_k|^(p-1) / ||x||^(p-1); the max norm shares its gradient
    among the elements of largest magnitude, as PyTorch does. Where PyTorch masks the derivative
    to 0 (a norm of 0, an element of 0, one below the max) it still multiplies the incoming
    gradient by it, so a NaN or infinite ``g`` gives NaN there: ``g * 0`` is added, not nothing.
    (Except at a norm of 0 for p other than 1, 2 and inf, where PyTorch masks ``g / norm^(p-1)``.)"""
    if norm == 0 and p > 1 and p != 2 and p != np.inf:
        return
    if norm == 0:
        masked = g * 0
        for k in range(extent):
            ga[base + k * inner] += masked
    elif p == np.inf:
        count = 0
        for k in range(extent):
            if np.abs(x[base + k * inner]) == norm:
                count += 1
        for k in range(extent):
            share = np.sign(x[base + k * inner]) / count if np.abs(x[base + k * inner]) == norm else 0
            ga[base + k * inner] += g * share
    elif p == 2:
        for k in range(extent):
            ga[base + k * inner] += g * x[base + k * inner] / norm
    elif p == 1:
        for k in range(extent):
            ga[base + k * inner] += g * scalar.sign(x[base + k * inner])
    else:
        scale = g / norm ** (p - 1)
        for k in range(extent):
            value = x[base + k * inner]
            # 0 at 0, as PyTorch masks it (|0|^(p-1) is inf below p = 1: 0 * inf)
            derivative = np.sign(value) * np.abs(value) ** (p - 1) if value != 0 else 0
            ga[base + k * inner] += scale * derivative


@inline
def _reads_uniform(rows, layouts, dims, aux, rules, paths, r):
    """Whether row ``r``'s rule reads a UNIFORM gradient as its number (``_elementwise_backward``,
    ``_derivative_backward``, the generated rules, a whole view or ``cat`` in
    ``_structural_backward``); a leaf's slot becomes its ``.grad`` and must be written out."""
    path = paths[rows[r, 0]]
    rule = rules[rows[r, 0]]
    if path == GENERATED_PATH:
        return True  # (generated._incoming)
    if path == UNARY_PATH:
        return rows[r, 2] >= 0  # a precomputed derivative
    if path == STRUCTURAL_PATH and rule == VIEW:
        return _is_whole(rows, layouts, dims, aux, r)
    if path == ELEMENTWISE_PATH and (rule == MUL or rule == POW_SCALAR):
        return True  # (a power other than 2 writes the number out)
    return _passes_uniform(rule, path)


@inline
def _passes_uniform(rule, path):
    """Whether a row of ``rule`` that holds a UNIFORM gradient gives each operand a number too
    (``_uniform_into``): the pass-throughs and sign or scale changes, whole views and ``cat``."""
    if path == STRUCTURAL_PATH:  # (an eligible view is a whole one; each input of cat is all of its part)
        return rule == VIEW or rule == CONCAT
    return path == ELEMENTWISE_PATH and (
        rule == ADD or rule == SUB or rule == PASS or rule == NEG or rule == MUL_SCALAR or rule == DIV_SCALAR
    )


@inline
def _is_whole(rows, layouts, dims, aux, r):
    """Whether the view row ``r`` is all of its source, each element once: a reshape (strides
    of a C-ordered array of its shape, from 0: ``view``, ``flatten``, ``unsqueeze``...) or a
    matrix transposed (shape (p, q) reading a (q, p) source at strides (1, p) from 0: ``a.t()``,
    and what ``_record.transposed`` makes). A uniform gradient then passes on as it is."""
    a = rows[r, 1]
    layout = rows[r, 4]
    start = rows[r, 3]
    if a < 0 or layouts[layout, 1] != layouts[rows[a, 4], 1] or aux[start] != 0:
        return False
    ndim = layouts[layout, 2]
    first = layouts[layout, 3]
    if ndim == 2 and aux[start + 1] == 1 and aux[start + 2] == dims[first]:
        return True
    expected = 1
    for k in range(ndim - 1, -1, -1):
        if dims[first + k] != 1 and aux[start + 1 + k] != expected:
            return False
        expected *= dims[first + k]
    return True


@inline
def _has_slot(rows, paths, r):
    """Whether row ``r`` gets a gradient slot: it needs a gradient and is not a constant."""
    return rows[r, 0] < NO_GRAD and paths[rows[r, 0]] != CONSTANT_PATH


@inline
def _shares(rows, layouts, paths, uses, is_root, c, x):
    """Whether row ``x``, an operand of the pass-through row ``c``, can take ``c``'s gradient
    slot as its own: ``c`` is its only reader (so its gradient is ``c``'s, and nothing else
    adds to the shared slot), and it is a computed row of ``c``'s size and dtype. Leaves keep
    their own slots: their gradients are handed to the user, and two leaves' ``.grad`` must
    not be one buffer."""
    return (
        uses[x] == 1
        and not is_root[x]
        and paths[rows[x, 0]] != SKIP_PATH
        and layouts[rows[x, 4], 1] == layouts[rows[c, 4], 1]
        and layouts[rows[x, 4], 0] == layouts[rows[c, 4], 0]
    )


@jit
def shared_slots(rows, layouts, dims, paths, rules, aux, roots):
    """For a sweep that asked (status ``SHARE``): the slots laid out with ``_shared_slots``'s
    sharing, as ``offsets`` followed by the two arenas' sizes and each row's uniform state to
    start from (ELIGIBLE or not), or an empty array when no operand can share and no row hold
    a UNIFORM gradient. Compiled on its own, and only once a tape has a large pass-through row: inlined
    into the sweep, it added 2.3 s to the sweep's first compile (CPU time of a first backward
    on an empty cache, 4.3 -> 6.6 s)."""
    top = 0
    for root in roots:
        top = max(top, root)
    n = top + 1
    laid = np.empty(2 * n + 2, np.int64)
    parent, shared = _shared_slots(rows, layouts, dims, paths, rules, aux, roots, n, laid[n + 2 :])
    if not shared:
        return laid[:0]
    total32 = 0
    total64 = 0
    for r in range(n):
        laid[r] = -1
        if not _has_slot(rows, paths, r) or parent[r] >= 0:
            continue  # an operand with a parent takes its slot, below
        numel = layouts[rows[r, 4], 1]
        if layouts[rows[r, 4], 0] == FLOAT64:
            laid[r] = total64
            total64 += numel
        else:
            laid[r] = total32
            total32 += numel
    for r in range(n - 1, -1, -1):  # downwards: a parent (a later row) has its slot before its operands
        if parent[r] >= 0:
            laid[r] = laid[parent[r]]
    laid[n] = total32
    laid[n + 1] = total64
    return laid


@inline
def _shared_slots(rows, layouts, dims, paths, rules, aux, roots, n, states):
    """``parent[x] = c`` where row ``x`` takes the gradient slot of ``c``, a row that passes its
    gradient on unchanged (``a + b``, ``a + 2``, ``clone``) to operands read nowhere else; -1
    elsewhere. Such a row's backward is then nothing at all: measured on
    ``(x * y + x.sin()).sum()`` at 10^6 elements, the copies into two slots of their own (and
    zeroing those slots) were a fifth of the backward. Every way a row reads another is counted
    (``in0``, ``in1``, a cat's list): a reader missed here would add into a shared slot.

    ``states[x]`` is set ELIGIBLE where row ``x`` may get a UNIFORM gradient: its one reader
    sends one (a sum of it, or a pass-through that may get one) and its rule reads it as a
    number (``_reads_uniform``). Returns ``(parent, found)``: found, whether any row shares or
    is ELIGIBLE."""
    parent = np.empty(n, np.int64)
    # np.empty and loops rather than np.zeros, as in ``_setup``.
    uses = np.empty(n, np.int64)
    reader = np.empty(n, np.int64)  # the last row reading each (the only one where uses is 1)
    is_root = np.empty(n, np.bool_)
    for r in range(n):
        uses[r] = 0
        is_root[r] = False
        states[r] = NOT_ELIGIBLE
    for root in roots:
        is_root[root] = True
    for r in range(n):
        parent[r] = -1
        if paths[rows[r, 0] % NO_GRAD] == PYTHON_PATH:
            return parent, False  # a custom Function reads its inputs outside the rows
        a = rows[r, 1]
        b = rows[r, 2]
        if a >= 0:
            uses[a] += 1
            reader[a] = r
        if b >= 0:
            uses[b] += 1
            reader[b] = r
        if rules[rows[r, 0] % NO_GRAD] == CONCAT:
            start = rows[r, 3]
            count = aux[start]
            for index in range(count):
                source = r - aux[start + 2 + index]
                if source != r:
                    uses[source] += 1
                    reader[source] = r
    found = False
    for c in range(n - 1, -1, -1):  # downwards: a row's reader is decided before it
        if (
            _has_slot(rows, paths, c)
            and uses[c] == 1
            and not is_root[c]
            and layouts[rows[c, 4], 1] > SUM_IN_SWEEP
            and _reads_uniform(rows, layouts, dims, aux, rules, paths, c)
        ):
            sender = reader[c]
            rule = rules[rows[sender, 0] % NO_GRAD]
            passes = states[sender] == ELIGIBLE and _passes_uniform(rule, paths[rows[sender, 0] % NO_GRAD])
            if rule == SUM_ALL or passes:
                states[c] = ELIGIBLE
                found = True
        rule = rules[rows[c, 0] % NO_GRAD]
        if (rule != ADD and rule != PASS) or layouts[rows[c, 4], 1] <= SMALL or not _has_slot(rows, paths, c):
            continue
        a = rows[c, 1]
        b = rows[c, 2] if rule == ADD else -1
        with_a = a >= 0 and _has_slot(rows, paths, a)
        with_b = b >= 0 and _has_slot(rows, paths, b)
        if not (with_a or with_b):
            continue
        if with_a and not _shares(rows, layouts, paths, uses, is_root, c, a):
            continue
        if with_b and not _shares(rows, layouts, paths, uses, is_root, c, b):
            continue
        if with_a:
            parent[a] = c
        if with_b:
            parent[b] = c
        found = True
    return parent, found


@inline
def _shares_slot(rows, offsets, rule, r):
    """Whether the pass-through row ``r``'s operands take its slot. Operands of these rules are
    in their result's arena, so equal offsets mean one slot."""
    a = rows[r, 1]
    b = rows[r, 2] if rule == ADD else -1
    return (a >= 0 and offsets[a] == offsets[r]) or (b >= 0 and offsets[b] == offsets[r])


@inline
def _setup(rows, layouts, paths, rules, roots, seeds, laid, look, poison, spare32, spare64):
    """Lay out one gradient slot per row that can receive one, or take ``laid`` (offsets, then
    the arenas' sizes: ``shared_slots``), and seed the roots. The arenas are ``spare32`` and
    ``spare64`` when they have the sizes needed (the last backward's, which nothing else holds:
    the engine's ``_spare_arenas``), else new. Returns ``(offsets, grad32,
    grad64, touched, share)``; with ``look``, ``share`` says that a large pass-through row could
    share its slot, and nothing is allocated: the caller lays the slots out with sharing
    (``shared_slots``) and sets up again. Rows of a few elements never share: their copies cost
    less than that pass, which a tape without a large pass-through row (the chain, scalar
    graphs) never pays."""
    top = 0
    for root in roots:
        top = max(top, root)
    n = top + 1
    total32 = 0
    total64 = 0
    if len(laid):
        offsets = laid[:n]
        total32 = laid[n]
        total64 = laid[n + 1]
    else:
        offsets = np.empty(n, np.int64)
        candidate = False
        for r in range(n):
            offsets[r] = -1
            if not _has_slot(rows, paths, r):
                continue
            layout = rows[r, 4]
            numel = layouts[layout, 1]
            rule = rules[rows[r, 0]]
            if look and numel > SMALL and (rule == ADD or rule == PASS):
                candidate = True
            if look and rule == SUM_ALL and rows[r, 1] >= 0 and layouts[rows[rows[r, 1], 4], 1] > SUM_IN_SWEEP:
                candidate = True  # its input's gradient may be UNIFORM
            if layouts[layout, 0] == FLOAT64:
                offsets[r] = total64
                total64 += numel
            else:
                offsets[r] = total32
                total32 += numel
        if candidate:
            return offsets, np.empty(0, np.float32), np.empty(0, np.float64), np.empty(0, np.bool_), True
    # np.empty and loops, not np.zeros: numba compiles its zeros and fill implementations per
    # dtype on the first backward of an install (0.23 s of it). The slots are left as they
    # come: each is zeroed or assigned when first reached (``_claim``). ``poison`` (the test
    # suite's) fills them with NaN, so that a rule reading a slot it did not claim shows.
    # Fresh memory costs a page fault per 4 KB at first touch: reused arenas made a small CNN's
    # backward 25 -> 12 ms (its 30 MB of gradient slots were new pages every step).
    grad32 = spare32 if len(spare32) == total32 else np.empty(total32, np.float32)
    grad64 = spare64 if len(spare64) == total64 else np.empty(total64, np.float64)
    touched = np.empty(n, np.bool_)
    # Small arenas zeroed whole (``ZERO_WHOLE``), never when poisoned; ``_run`` tells which from
    # the arenas' sizes, the same way (an expression, not a helper: numba's inliner is slow).
    fill = np.nan if poison else 0.0
    if poison or total32 + total64 <= ZERO_WHOLE:
        for i in range(total32):
            grad32[i] = fill
        for i in range(total64):
            grad64[i] = fill
    for i in range(n):
        touched[i] = False
    position = 0
    for root in roots:
        numel = layouts[rows[root, 4], 1]
        start = offsets[root]
        if start < 0:  # a root no gradient flows from (a constant, a detached result): its seed
            position += numel  # goes nowhere (offset -1 once wrote it over the arena's last slot)
            continue
        # (slices indexed from 0: at ``start + i``, numba's wraparound check kept the loops scalar)
        seed = seeds[position : position + numel]
        if layouts[rows[root, 4], 0] == FLOAT64:
            _claim(root, rows, layouts, offsets, touched, grad64)
            target64 = grad64[start : start + numel]
            for i in range(numel):
                target64[i] += seed[i]
        else:
            _claim(root, rows, layouts, offsets, touched, grad32)
            target32 = grad32[start : start + numel]
            for i in range(numel):
                target32[i] += np.float32(seed[i])
        position += numel
    return offsets, grad32, grad64, touched, False


@jit
def _run(
    rows, params, layouts, dims, aux, addresses, rules, saves, paths, roots, seeds, freed, modified, retain_graph,
    offsets, grad32, grad64, touched, uniform, start, stop, table, laid, look, poison,
):  # fmt: skip
    """Propagate gradients through rows ``start`` down to ``stop`` (exclusive). With ``touched``
    empty it first lays out one gradient slot per row and seeds ``roots`` with ``seeds``
    (flattened in order), and ``start`` is the highest root: a backward without hooks is this one
    call. One compiled function, not one calling another: numba generates the machine code of
    a called function again inside its caller (a wrapper cost a second of cold compile), and
    inlining this body cost 2.5 s in numba's inliner.

    ``saves[opcode]`` says which values a rule reads (bits: 1 input a, 2 input b, 4 result);
    ``paths[opcode]`` which kernel function runs it (``tapegrad/_kernels/rules.py``);
    ``modified`` marks rows one of whose saved tensors changed in place since it was saved;
    ``table`` holds the addresses of the loaded families (``FAMILIES``); ``laid``, ``look`` and
    ``poison`` are ``_setup``'s.
    ``uniform``: each row's uniform-gradient state (ELIGIBLE, UNIFORM...; empty: none), which
    the rules update. Returns ``(status, row, offsets, grad32, grad64, touched)``: status 0 on success, or
    ``FREED``, ``MODIFIED``, ``NO_RULE``, ``KERNEL_FAILED`` for ``row``, ``MISSING + slot``
    when ``row`` needs a family not loaded yet (the Python around it loads it and resumes), or
    ``SHARE`` when the set-up found rows that could share slots (``_setup``).
    """
    if len(touched) == 0:
        offsets, grad32, grad64, touched, share = _setup(
            rows, layouts, paths, rules, roots, seeds, laid, look, poison, grad32, grad64
        )
        if share:
            return SHARE, 0, offsets, grad32, grad64, touched
        start = len(touched) - 1
    # Everything the inlined paths use goes as a borrowed (uncounted) view.
    b_rows, b_params, b_layouts, b_aux = borrow(rows), borrow(params), borrow(layouts), borrow(aux)
    b_addresses, b_offsets, b_touched = borrow(addresses), borrow(offsets), borrow(touched)
    b_grad32 = borrow(grad32)
    frame = make_frame(rows, params, layouts, dims, aux, addresses, offsets, touched, grad32, grad64, uniform)
    zeroed = not poison and len(grad32) + len(grad64) <= ZERO_WHOLE  # as ``_setup`` zeroes
    for r in range(start, stop, -1):
        if not touched[r]:
            continue
        opcode = rows[r, 0]
        rule = rules[opcode]
        path = paths[opcode]
        if path == SKIP_PATH or path == CONSTANT_PATH:
            continue
        if path == PYTHON_PATH:  # the engine ran the user's backward before this call reached the row
            continue
        mask = saves[opcode]
        if mask:
            if freed[r]:
                return FREED, r, offsets, grad32, grad64, touched
            if modified[r]:
                return MODIFIED, r, offsets, grad32, grad64, touched
        is_double = layouts[rows[r, 4], 0] == FLOAT64
        numel = layouts[rows[r, 4], 1]
        if path == CAST_PATH:  # a family: its two loops in this function cost its first compile 0.3 s
            if offsets[rows[r, 1]] >= 0:
                slot = 2 * CAST + (1 if is_double else 0)
                if table[slot] == 0:
                    return MISSING + slot, r, offsets, grad32, grad64, touched
                call(table[slot], rule, r, mask, frame)
        elif (
            numel > SMALL
            and (rule == ADD or rule == PASS)
            and _shares_slot(rows, offsets, rule, r)
            and not (r < len(uniform) and uniform[r] == UNIFORM)
        ):
            # Its operands share its slot (all of them: ``_shared_slots``; only rows above the
            # small-row size), so their gradient is there already; unless it is UNIFORM, which
            # the elementwise family's rule passes on (marks the slot UNIFORM for operands that
            # read the number, writes it out for the others).
            a = rows[r, 1]
            b = rows[r, 2] if rule == ADD else -1
            if a >= 0 and offsets[a] >= 0:
                touched[a] = True
            if b >= 0 and offsets[b] >= 0:
                touched[b] = True
        elif (
            numel <= SMALL
            and not is_double
            and _small_backward(
                rule, r, numel, b_rows, b_params, b_layouts, b_aux, b_addresses, b_offsets, b_touched, b_grad32, zeroed
            )
        ):
            pass
        else:  # a family's function, through its address
            # Small float64 rows first try their path too, but as a family, compiled when a tape
            # first has one: inlined a second time here, for float64, it was a quarter of this
            # function's first compile (the tutorial's first backward, 4.2 -> 3.1 s without it).
            # (the rules ``_small_backward`` takes: another rule would load the family for nothing)
            small = (
                numel <= SMALL
                and is_double
                and (
                    rule == PASS or rule == ADD or rule == SUB or rule == NEG or rule == MUL_SCALAR
                    or rule == POW_SCALAR or rule == MUL or rule == VIEW or rule == SUM_ALL or rule == SOFTPLUS
                )
            )  # fmt: skip
            if small:
                if table[2 * SMALL_ROWS + 1] == 0:
                    return MISSING + 2 * SMALL_ROWS + 1, r, offsets, grad32, grad64, touched
                small = call(table[2 * SMALL_ROWS + 1], rule, r, mask, frame) == families.DONE
            if not small:
                if (path == UNARY_PATH or path == GENERATED_PATH) and rows[r, 2] >= 0:
                    family = DERIVATIVE
                elif path == GENERATED_PATH:  # each op is a family of its own
                    family = FIRST_GENERATED + rule - GENERATED_BASE
                elif path == ELEMENTWISE_PATH or path == UNARY_PATH:
                    family = ELEMENTWISE
                elif path == GROUPED_PATH:
                    family = GROUPED
                elif path == STRUCTURAL_PATH:
                    family = STRUCTURAL
                elif path == MATMUL_PATH:
                    family = MATMUL
                elif path == NORMALIZATION_PATH:
                    family = NORMALIZATION
                elif path == LAYERS_PATH:
                    family = LAYERS
                else:
                    return NO_RULE, r, offsets, grad32, grad64, touched
                slot = 2 * family + (1 if is_double else 0)
                if slot < 0 or slot >= len(table):
                    return NO_RULE, r, offsets, grad32, grad64, touched
                address = table[slot]
                if address == 0:
                    return MISSING + slot, r, offsets, grad32, grad64, touched
                result = call(address, rule, r, mask, frame)
                if result != families.DONE:
                    status = NO_RULE if result == families.NO_RULE else KERNEL_FAILED
                    return status, r, offsets, grad32, grad64, touched
        if not retain_graph:
            freed[r] = True
    return 0, 0, offsets, grad32, grad64, touched


# The families the sweep calls through ``FAMILIES.addresses`` (families.py), in slot order; then
# one per op declared by formula (``generated.BACKWARD_FAMILIES``), in rule order.
ELEMENTWISE, GROUPED, STRUCTURAL, MATMUL, NORMALIZATION, DERIVATIVE, SMALL_ROWS, CAST, LAYERS, FIRST_GENERATED = range(
    10
)


def _elementwise32(rule, r, mask, frame):
    rows, params, layouts, _, _, addresses, offsets, touched, grad = families.arrays32(frame)
    uniform = families.uniform_states(frame)
    return _done(_elementwise_backward(rule, r, rows, params, layouts, addresses, offsets, touched, grad, uniform))


def _elementwise64(rule, r, mask, frame):
    rows, params, layouts, _, _, addresses, offsets, touched, grad = families.arrays64(frame)
    uniform = families.uniform_states(frame)
    return _done(_elementwise_backward(rule, r, rows, params, layouts, addresses, offsets, touched, grad, uniform))


def _grouped32(rule, r, mask, frame):
    rows, params, layouts, dims, _, addresses, offsets, touched, grad = families.arrays32(frame)
    return _done(_grouped_backward(rule, mask, r, rows, params, layouts, dims, addresses, offsets, touched, grad))


def _grouped64(rule, r, mask, frame):
    rows, params, layouts, dims, _, addresses, offsets, touched, grad = families.arrays64(frame)
    return _done(_grouped_backward(rule, mask, r, rows, params, layouts, dims, addresses, offsets, touched, grad))


def _structural32(rule, r, mask, frame):
    rows, params, layouts, dims, aux, addresses, offsets, touched, grad = families.arrays32(frame)
    uniform = families.uniform_states(frame)
    return _done(
        _structural_backward(rule, r, rows, params, layouts, dims, aux, addresses, offsets, touched, grad, uniform)
    )


def _structural64(rule, r, mask, frame):
    rows, params, layouts, dims, aux, addresses, offsets, touched, grad = families.arrays64(frame)
    uniform = families.uniform_states(frame)
    return _done(
        _structural_backward(rule, r, rows, params, layouts, dims, aux, addresses, offsets, touched, grad, uniform)
    )


def _normalization32(rule, r, mask, frame):
    rows, params, layouts, dims, _, addresses, offsets, touched, grad = families.arrays32(frame)
    return _done(_normalization_backward(rule, r, rows, layouts, dims, params, addresses, offsets, touched, grad))


def _normalization64(rule, r, mask, frame):
    rows, params, layouts, dims, _, addresses, offsets, touched, grad = families.arrays64(frame)
    return _done(_normalization_backward(rule, r, rows, layouts, dims, params, addresses, offsets, touched, grad))


def _layers32(rule, r, mask, frame):
    rows, params, layouts, dims, aux, addresses, offsets, touched, grad = families.arrays32(frame)
    return _done(_layers_backward(rule, r, rows, layouts, dims, params, aux, addresses, offsets, touched, grad))


def _layers64(rule, r, mask, frame):
    rows, params, layouts, dims, aux, addresses, offsets, touched, grad = families.arrays64(frame)
    return _done(_layers_backward(rule, r, rows, layouts, dims, params, aux, addresses, offsets, touched, grad))


def _matmul32(rule, r, mask, frame):
    rows, _, layouts, dims, _, addresses, offsets, touched, grad = families.arrays32(frame)
    return _done(_matmul_backward(rule, r, rows, layouts, dims, addresses, offsets, touched, grad))


def _matmul64(rule, r, mask, frame):
    rows, _, layouts, dims, _, addresses, offsets, touched, grad = families.arrays64(frame)
    return _done(_matmul_backward(rule, r, rows, layouts, dims, addresses, offsets, touched, grad))


def _derivative32(rule, r, mask, frame):
    rows, _, layouts, _, _, addresses, offsets, touched, grad = families.arrays32(frame)
    uniform = families.uniform_states(frame)
    return _done(_derivative_backward(r, rows, layouts, addresses, offsets, touched, grad, uniform))


def _derivative64(rule, r, mask, frame):
    rows, _, layouts, _, _, addresses, offsets, touched, grad = families.arrays64(frame)
    uniform = families.uniform_states(frame)
    return _done(_derivative_backward(r, rows, layouts, addresses, offsets, touched, grad, uniform))


def _small32(rule, r, mask, frame):  # never loaded: the sweep runs small float32 rows inline
    rows, params, layouts, _, aux, addresses, offsets, touched, grad = families.arrays32(frame)
    numel = layouts[rows[r, 4], 1]
    return _done(_small_backward(rule, r, numel, rows, params, layouts, aux, addresses, offsets, touched, grad, False))


def _small64(rule, r, mask, frame):
    """The small-row path for float64 rows; ``NO_RULE`` when it does not take the row (the
    sweep then calls the row's family)."""
    rows, params, layouts, _, aux, addresses, offsets, touched, grad = families.arrays64(frame)
    numel = layouts[rows[r, 4], 1]
    return _done(_small_backward(rule, r, numel, rows, params, layouts, aux, addresses, offsets, touched, grad, False))


def _cast32(rule, r, mask, frame):
    """A float32 row cast from a float64 operand: its gradient added into the operand's, in
    float64 (or, from an operand of the row's own arena, added as it is). Views indexed from
    0, which vectorize: see batched._copy. The loops run over the views' lengths: a tape file
    whose layouts disagree with its rows (a corrupt one, which the loader cannot rule out for
    every rule) then adds less, where a count of ``numel`` wrote past the arena."""
    rows, _, layouts, _, _, _, offsets, touched, grad32 = families.arrays32(frame)
    a, numel = rows[r, 1], layouts[rows[r, 4], 1]
    from32 = grad32[offsets[r] : offsets[r] + numel]
    if layouts[rows[a, 4], 0] != FLOAT64:
        _claim(a, rows, layouts, offsets, touched, grad32)
        _added_into(grad32, offsets[a], numel, from32)
        return families.DONE
    grad64 = families.arrays64(frame)[8]
    _claim(a, rows, layouts, offsets, touched, grad64)
    _added_into(grad64, offsets[a], numel, from32)
    return families.DONE


def _cast64(rule, r, mask, frame):
    """A float64 row cast from a float32 operand: its gradient added into the operand's (from
    an operand held in float64 too, an integer's, added as it is); see ``_cast32``."""
    rows, _, layouts, _, _, _, offsets, touched, grad64 = families.arrays64(frame)
    a, numel = rows[r, 1], layouts[rows[r, 4], 1]
    from64 = grad64[offsets[r] : offsets[r] + numel]
    if layouts[rows[a, 4], 0] == FLOAT64:
        _claim(a, rows, layouts, offsets, touched, grad64)
        _added_into(grad64, offsets[a], numel, from64)
        return families.DONE
    grad32 = families.arrays32(frame)[8]
    _claim(a, rows, layouts, offsets, touched, grad32)
    _added_into(grad32, offsets[a], numel, from64)
    return families.DONE


@inline
def _added_into(grad, offset, numel, source):
    """``source`` added into ``grad[offset : offset + numel]``, cast to its dtype, over the shorter
    of the two (``_cast32``)."""
    into = grad[offset : offset + numel]
    for i in range(min(len(into), len(source))):
        into[i] += grad.dtype.type(source[i])


@inline
def _done(ok):
    return families.DONE if ok else families.NO_RULE


FAMILIES = families.Table(
    "backward",
    (
        ("elementwise", _elementwise32, _elementwise64),
        ("grouped", _grouped32, _grouped64),
        ("structural", _structural32, _structural64),
        ("matmul", _matmul32, _matmul64),
        ("normalization", _normalization32, _normalization64),
        ("precomputed derivative", _derivative32, _derivative64),
        ("small rows", _small32, _small64),
        ("cast", _cast32, _cast64),
        ("layers", _layers32, _layers64),
        *generated.BACKWARD_FAMILIES,
    ),
    quick=generated.RULE_NAMES,
)


_NO_ROWS = np.zeros(0, np.int64)
_NO_GRAD32 = np.zeros(0, np.float32)
_NO_GRAD64 = np.zeros(0, np.float64)
_NO_TOUCHED = np.zeros(0, np.bool_)
_LOOK, _NO_LOOK = np.bool_(True), np.bool_(False)


def _uniform_states(laid: np.ndarray) -> np.ndarray:
    """Each row's uniform state to start a sweep from: ``shared_slots`` says which rows are
    ELIGIBLE (made here, not in the sweep: a loop there cost its first compile ~0.1 s)."""
    return laid[(len(laid) + 2) // 2 :].copy() if len(laid) else _NO_ROWS


def _write_out_uniform(uniform, rows, layouts, offsets, grad32, grad64) -> None:
    """Write out every UNIFORM gradient a sweep left (Python is to read non-leaf gradients:
    ``autograd.grad`` of an intermediate, retained gradients)."""
    for row in np.flatnonzero(uniform == UNIFORM).tolist():
        layout = rows[row, 4]
        slot = (grad64 if layouts[layout, 0] == FLOAT64 else grad32)[offsets[row] : offsets[row] + layouts[layout, 1]]
        slot[1:] = slot[0]
        uniform[row] = ELIGIBLE


def idle_elements(rows, layouts, offsets, uniform, touched) -> int:
    """Elements of a sweep's two arenas that hold no gradient once it is done: the slots left
    holding a UNIFORM gradient's one number (a sum's, passed on through views and ``+``), and
    the slots of rows the sweep never reached (``touched``, which may be empty: not asked),
    unless a row it reached holds a gradient there; each slot counted once however many rows
    share it (``shared_slots``). Asked about large arenas only (``engine.views_suffice``)."""
    families.announce(_idle_elements, "backward's count of idle slots")
    return int(_idle_elements(rows, layouts, offsets, uniform, touched))


@jit
def _idle_elements(rows, layouts, offsets, uniform, touched):
    # Compiled: in Python (a dict of slots, numpy masks) this was 7 us of a 29 us backward of
    # ``relu(a.t()).sum()`` at 128x512, the whole difference from ``relu(a).sum()``'s.
    n = len(offsets)
    keys = np.empty(n, np.int64)  # a slot: twice its offset, plus its arena (1 for float64)
    sizes = np.empty(n, np.int64)
    k = 0
    for r in range(min(n, len(uniform))):
        if uniform[r] == UNIFORM and offsets[r] >= 0:
            keys[k] = 2 * offsets[r] + layouts[rows[r, 4], 0]
            sizes[k] = layouts[rows[r, 4], 1]
            k += 1
    idle = _distinct_total(keys[:k], sizes[:k])
    m = min(n, len(touched))
    busy = np.empty(m, np.int64)
    b = 0
    for r in range(m):
        if touched[r] and offsets[r] >= 0:
            busy[b] = 2 * offsets[r] + layouts[rows[r, 4], 0]
            b += 1
    busy = np.sort(busy[:b])
    k = 0
    for r in range(m):
        if not touched[r] and offsets[r] >= 0:
            key = 2 * offsets[r] + layouts[rows[r, 4], 0]
            at = np.searchsorted(busy, key)
            if at == b or busy[at] != key:
                keys[k] = key
                sizes[k] = layouts[rows[r, 4], 1]
                k += 1
    return idle + _distinct_total(keys[:k], sizes[:k])


@jit
def _distinct_total(keys, sizes):
    """The sum over distinct ``keys`` of the largest of their ``sizes``."""
    order = np.argsort(keys)
    total = 0
    i = 0
    while i < len(order):
        key, largest = keys[order[i]], sizes[order[i]]
        i += 1
        while i < len(order) and keys[order[i]] == key:
            largest = max(largest, sizes[order[i]])
            i += 1
        total += largest
    return total


def _laid_out_shared(rows, layouts, dims, paths, rules, aux, roots):
    """The sweep asked (``SHARE``): the rows whose operands can share its slots."""
    families.announce(shared_slots, "backward's slot sharing")
    return shared_slots(rows, layouts, dims, paths, rules, aux, roots)


def backward_sweep(
    rows, params, layouts, dims, aux, addresses, rules, saves, paths, roots, seeds, freed, modified, retain_graph,
    plan=None, spare=None, read_rows=False, fused=None, floor=-1,
):  # fmt: skip
    """The whole backward from ``roots``: one compiled call once the families the tape uses are
    loaded (``_run`` gives the arguments). Returns ``(status, row, grad32, grad64, offsets,
    touched, uniform)``; status 0 on success, else ``FREED``, ``MODIFIED``, ``NO_RULE`` or
    ``KERNEL_FAILED`` at ``row``. The leaves' slots hold their gradients; the other rows' do
    with ``read_rows`` (else a row may hold a UNIFORM gradient's number alone, as ``uniform``,
    each row's state, says: ``idle_elements``).

    ``plan``: a dict the caller keeps for these rows and roots (a replayed tape), where the
    slots' layout is kept after the first sweep, so that the later ones take it directly: the
    round trip through ``SHARE`` cost 4 us of a 20 us backward on the mlp step.
    ``spare``: float32 and float64 arenas the sweep may take as its own (``_setup``).
    ``fused``: a ``fused.BackwardPlan`` of these rows, whose groups of large elementwise rows
    are swept a block at a time (the sweep runs the rows between them), or None.
    ``floor``: the sweep runs the rows above it only (``autograd.grad`` wants nothing lower)."""
    if not config.AS_PYTHON and not _run.overloads and fused is None:  # (``tiers.py``)
        python = tiers.as_python("backward", _run, tiers.sweep_work(rows, layouts, -1, int(max(roots, default=-1))))
        if python is not None:
            result = tiers.run("backward", python.backward_sweep, (
                rows, params, layouts, dims, aux, addresses, rules, saves, paths, roots, seeds, freed, modified,
                retain_graph, plan, spare, read_rows, None, floor,
            ), (freed,))  # fmt: skip
            if result is not None:
                return result
    families.announce(_run, "backward interpreter")
    spare = (_NO_GRAD32, _NO_GRAD64) if spare is None else spare
    offsets, (grad32, grad64), touched = _NO_ROWS, spare, _NO_TOUCHED
    laid = None if plan is None else plan.get("laid")
    start, look, laid = -1, (_LOOK if laid is None else _NO_LOOK), (_NO_ROWS if laid is None else laid)
    uniform = _uniform_states(laid)
    groups = (
        [] if fused is None else [k for k in fused.below(int(max(roots, default=-1))) if fused.groups[k, 0] > floor]
    )
    while True:
        stop = fused.groups[groups[0], 1] if groups else floor  # above the next group's last row
        status, row, offsets, grad32, grad64, touched = _run(
            rows, params, layouts, dims, aux, addresses, rules, saves, paths, roots, seeds, freed, modified,
            retain_graph, offsets, grad32, grad64, touched, uniform, start, stop, FAMILIES.addresses, laid, look,
            config.poison_gradients(),
        )  # fmt: skip
        if status == SHARE:
            laid, look = _laid_out_shared(rows, layouts, dims, paths, rules, aux, roots), _NO_LOOK
            grad32, grad64 = spare
            uniform = _uniform_states(laid)
            continue
        if plan is not None:
            plan["laid"] = laid  # the shared layout, or none: no large pass-through row to share
        if status == 0 and groups:
            status, row = fused.run(
                groups[0], params, dims, aux, addresses, rules, saves, freed, modified, retain_graph, offsets,
                grad32, grad64, touched, uniform, FAMILIES,
            )  # fmt: skip
            if status == 0:
                start = int(fused.groups[groups.pop(0), 0]) - 1
                continue
        if status < MISSING:
            if read_rows and not status:
                _write_out_uniform(uniform, rows, layouts, offsets, grad32, grad64)
            return status, row, grad32, grad64, offsets, touched, uniform
        FAMILIES.load(status - MISSING)
        start = row


def backward_setup(rows, params, layouts, dims, aux, addresses, rules, saves, paths, roots, seeds, share=False):
    """For a backward that stops for hooks: lay out the gradient slots and seed the roots, and
    return ``(offsets, grad32, grad64, touched)`` for ``backward_rows``. No shared slots unless
    ``share``: a hook may change an operand's gradient, which must not change its neighbour's."""
    if not config.AS_PYTHON and not _run.overloads:  # (``tiers.py``)
        python = tiers.as_python("backward", _run, tiers.sweep_work(rows, layouts, -1, int(max(roots, default=-1))))
        if python is not None:
            arguments = (rows, params, layouts, dims, aux, addresses, rules, saves, paths, roots, seeds, share)
            result = tiers.run("backward", python.backward_setup, arguments)
            if result is not None:
                return result
    families.announce(_run, "backward interpreter")
    laid, look = _NO_ROWS, np.bool_(share)
    while True:
        status, _, offsets, grad32, grad64, touched = _run(
            rows, params, layouts, dims, aux, addresses, rules, saves, paths, roots, seeds, _NO_TOUCHED, _NO_TOUCHED,
            False, _NO_ROWS, _NO_GRAD32, _NO_GRAD64, _NO_TOUCHED, _NO_ROWS, -1, len(rows), FAMILIES.addresses, laid, look,
            config.poison_gradients(),
        )  # fmt: skip
        if status != SHARE:
            return offsets, grad32, grad64, touched
        laid, look = _laid_out_shared(rows, layouts, dims, paths, rules, aux, roots), _NO_LOOK


def backward_rows(
    rows, params, layouts, dims, aux, addresses, rules, saves, paths, freed, modified, retain_graph,
    offsets, grad32, grad64, touched, start, stop,
):  # fmt: skip
    """Propagate through rows ``start`` down to ``stop`` (exclusive), loading families as rows
    ask for them. A backward with hooks stops above each hooked row, so that Python can call the
    hooks once that row's gradient is complete (it keeps no UNIFORM gradients: Python reads
    them between calls). Returns ``(status, row)``."""
    if not config.AS_PYTHON and not _run.overloads:  # (``tiers.py``)
        python = tiers.as_python("backward", _run, tiers.sweep_work(rows, layouts, stop, start))
        if python is not None:
            result = tiers.run("backward", python.backward_rows, (
                rows, params, layouts, dims, aux, addresses, rules, saves, paths, freed, modified, retain_graph,
                offsets, grad32, grad64, touched, start, stop,
            ), (freed, grad32, grad64, touched))  # fmt: skip
            if result is not None:
                return result
    while True:
        status, row, *_ = _run(
            rows, params, layouts, dims, aux, addresses, rules, saves, paths, _NO_ROWS, _NO_GRAD64, freed, modified,
            retain_graph, offsets, grad32, grad64, touched, _NO_ROWS, start, stop, FAMILIES.addresses, _NO_ROWS, _NO_LOOK,
            config.poison_gradients(),  # as backward_setup's: whether it zeroed the arenas
        )  # fmt: skip
        if status < MISSING:
            return status, row
        FAMILIES.load(status - MISSING)
        start = row


config.limit_kernel_blas_threads()  # before the first np.dot of a sweep: see its docstring
