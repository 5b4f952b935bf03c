"""Scalar tapes as register programs: a recorded tape of one-element rows, rewritten once into
instructions over registers that ``tapegrad/_kernels/register.py`` replays.

The rewrite is plain Python over the rows (no compilation per graph): every element of every
row gets a register, except where a row only renames elements of others. Selects, views,
reshapes, stacks and cats give their elements the registers of their sources (no instruction);
``a + b``, ``a - b``, ``-a`` and ``a + 2`` are one ``SUM`` each, and a chain of them whose
intermediate results nothing else reads collapses into one (``sum(nodes)``: ``0 + a + b + c``,
added in the same order); a softmax of a few elements is one instruction. Only the instructions
a recorded output depends on run forward, and backward only those of rows the general backward
would reach (a row a gradient never reaches is skipped there, so its ``0 * inf`` never happens).

A tape qualifies when every row is one the register program covers (``_SUPPORTED``), of one
floating dtype, with no guard, and each computed row has at most ``MAX_ROW_ELEMENTS`` elements
(inputs, constants and views may be larger: they cost no instruction). Anything else keeps the general
interpreter for the whole tape: ``build`` returns None, never a partial program.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import math
import threading
import warnings

import numpy as np

from . import _ops
from ._kernels import rules as _rules
from ._kernels.instructions import (
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
from ._tape import IN0, IN1, IPARAM, LAYOUT, NO_GRAD, OPCODE, OPCODE_MASK, PARAM
from ._threads import entering_kernel

# Rows above this many elements are left to the general interpreter, whose loops over a row
# beat one instruction per element there.
MAX_ROW_ELEMENTS = 16
MAX_INPUT_ELEMENTS = 1 << 21  # registers are only allocated, and kept only where read
MIN_ROWS = 8  # a tape this short gains nothing from a rewrite

_LAZY = {}
UNBUILT = object()  # a Tape's program before its first replay


def _kernel():
    if not _LAZY:
        from ._kernels import register

        _LAZY["module"] = register
    return _LAZY["module"]


_UNARY = {"softplus": SOFTPLUS, "exp": EXP, "log": LOG, "tanh": TANH, "sigmoid": SIGMOID, "relu": RELU, "sqrt": SQRT}
_SUMS = {"add", "sub", "neg", "add_scalar", "sub_scalar", "rsub_scalar"}
_SUPPORTED = (
    {"leaf", "constant", "clone", "shared_leaf", "detach", "mul", "div", "mul_scalar", "div_scalar"}
    | {"sum", "mean", "softmax", "stack", "cat"}
    | _SUMS
    | set(_UNARY)
    | {op.name for op in _ops.OPS if op.family == _ops.VIEW}
)
_SUPPORTED_OPCODES = np.array([op.name in _SUPPORTED for op in _ops.OPS])
# Rows that cost no instruction (inputs, constants, and rows that rename their sources' elements),
# which may be as large as MAX_INPUT_ELEMENTS: vmap's recordings pick each slice's input out of
# the whole batch, a constant, and never read that pick.
_RENAMES = np.array(
    [
        op.family == _ops.VIEW or op.name in ("leaf", "constant", "stack", "cat", "clone", "shared_leaf")
        for op in _ops.OPS
    ]
)
_NAMES = [op.name for op in _ops.OPS]
_HAS_NO_SLOT = _ops.paths() == _rules.CONSTANT


def runs(ins: np.ndarray, params: np.ndarray, codes: tuple) -> tuple:
    """``(ins, params)`` with each stretch of instructions of one of the binary ``codes`` whose
    result and first operand registers count up (or down) by one, and whose ``b`` does too or
    stays the same, as one run instruction (``_kernels.instructions.RUN``): a row of a few elements
    costs one dispatch instead of one per element. Only the single-replay kernels read runs
    (the batch kernels dispatch once per block of lanes already)."""
    n = len(ins)
    if n < 2:
        return ins, params
    code, out, a, b = ins[:, 0], ins[:, 1], ins[:, 2], ins[:, 3]
    d_out, d_a, d_b = np.diff(out), np.diff(a), np.diff(b)
    joins = (
        (code[1:] == code[:-1])
        & np.isin(code[1:], codes)
        & ((d_out == 1) | (d_out == -1))
        & (d_a == d_out)
        & ((d_b == 0) | (d_b == d_out))
    )
    candidates = (np.flatnonzero(joins) + 1).tolist()
    if not candidates:
        return ins, params
    # (step, b fixed) from each instruction to the next, the same across a run
    kinds = (d_out * 2 + (d_b == 0)).tolist()
    head = list(range(n))
    kind_of = {}
    for j in candidates:
        first = head[j - 1]
        kind = kinds[j - 1]
        if first != j - 1 and kind_of[first] != kind:
            continue  # a change of stride: a new run starts here
        head[j] = first
        kind_of[first] = kind
    head = np.array(head, np.int64)
    heads = head == np.arange(n)
    counts = np.bincount(head, minlength=n)
    merged = ins[heads].copy()
    position = np.cumsum(heads) - 1  # each head's place in ``merged``
    for first in np.flatnonzero(heads & (counts > 1)).tolist():
        kind = kind_of[first]
        merged[position[first], 0] |= (
            RUN
            | (DESCENDING if kind < 0 else 0)
            | (FIXED_B if kind % 2 else 0)
            | ((int(counts[first]) - 1) << COUNT_SHIFT)
        )
    return np.ascontiguousarray(merged), np.ascontiguousarray(params[heads])


class Program:
    """A tape's register program and the registers it runs in (``build`` makes one).

    ``forward(arrays)`` loads the inputs and runs; ``outputs()`` reads the results;
    ``backward(seeds)`` returns every input's gradient for the last forward."""

    def __init__(
        self, dtype, initial, instructions, input_ranges, input_shapes, output_registers, output_shapes, sources=()
    ):
        self.dtype = dtype
        self._instructions = instructions
        self._initial = initial.copy()  # regs as the rewrite left them (replays write over regs)
        self._sources = sources  # (row, kept elements, registers) of the tape's leaves and constants
        (
            self.forward_ins, self.forward_params, self.backward_ins, self.backward_params, self.args, self.signs,
            self.grad_signs, self.forward_runs, self.forward_run_params, self.backward_runs, self.backward_run_params,
        ) = instructions  # fmt: skip
        self.regs = initial
        self.grads = np.zeros(len(initial), dtype)
        self.input_ranges = input_ranges  # (first register, numel) per input
        self.input_shapes = input_shapes
        self.output_registers = output_registers  # one flat register array per output
        self.output_shapes = output_shapes
        self.seed_registers = np.concatenate(output_registers) if output_registers else np.zeros(0, np.int64)
        self.input_registers = np.array(
            [r for start, numel in input_ranges for r in range(start, start + numel)], np.int64
        )
        self.softmax_widths = sorted(set(self.forward_ins[self.forward_ins[:, 0] == SOFTMAX, 3].tolist()))
        self._compiled = False
        # Each output's registers as a slice where they run in order (a chain's: its last row's),
        # else as the index array: a slice copies in a third of a fancy index's time, and a
        # replay of a short program is mostly such Python.
        self._output_reads = [
            slice(int(r[0]), int(r[0]) + len(r)) if len(r) and np.array_equal(r, np.arange(r[0], r[0] + len(r))) else r
            for r in output_registers
        ]

    def _compile(self) -> None:
        """Compile (or load) the interpreter for this dtype, on the program's own arrays."""
        kernel = _kernel()
        from ._kernels import families

        families.announce(kernel.forward, "register interpreter")
        self.scratch = np.empty(kernel.MAX_GROUP, self.dtype)  # forward's, for a softmax's operands
        with _quiet_numba():
            kernel.forward(self.forward_ins, self.args, self.signs, self.forward_params, self.regs, self.scratch)
            kernel.backward(
                self.backward_ins[:0], self.args, self.grad_signs, self.backward_params, self.regs, self.grads,
                self.seed_registers[:0], np.zeros(0),
            )  # fmt: skip
        self._forward = kernel.forward
        self._backward = kernel.backward
        self._compiled = True

    def again(self, tape) -> Program:
        """This program for ``tape``, a recording of the same structure (``_structure``): the
        same instructions, with ``tape``'s leaves' and constants' values in their registers."""
        initial = self._initial.copy()
        for row, kept, registers in self._sources:
            initial[registers] = np.asarray(tape._slot(row), self.dtype)[kept]
        return Program(
            self.dtype, initial, self._instructions, self.input_ranges, self.input_shapes, self.output_registers,
            self.output_shapes, self._sources,
        )  # fmt: skip

    def forward(self, arrays) -> None:
        if not self._compiled:
            self._compile()
        regs = self.regs
        for (start, numel), data in zip(self.input_ranges, arrays):
            regs[start : start + numel] = data if data.ndim == 1 else data.reshape(-1)
        self._forward(self.forward_runs, self.args, self.signs, self.forward_run_params, regs, self.scratch)

    def outputs(self) -> list:
        """The outputs of the last forward, copies in their shapes."""
        regs = self.regs
        outputs = []
        for read, shape in zip(self._output_reads, self.output_shapes):
            values = regs[read].copy() if type(read) is slice else regs[read]
            # (a vector needs no reshape: such calls are most of a short program's replay, and a
            # helper function for this line cost a chain's replay 0.3 us)
            outputs.append(values if len(shape) == 1 else values.reshape(shape))
        return outputs

    def backward(self, seeds: np.ndarray) -> list:
        self._backward(
            self.backward_runs, self.args, self.grad_signs, self.backward_run_params, self.regs, self.grads,
            self.seed_registers, seeds,
        )  # fmt: skip
        grads = self.grads
        return [
            grads[start : start + numel].copy()
            if len(shape) == 1
            else grads[start : start + numel].reshape(shape).copy()
            for (start, numel), shape in zip(self.input_ranges, self.input_shapes)
        ]

    def replay_batch(self, arrays, batched, size, seeds, threads, wanted) -> tuple:
        """``Tape._replay_batch`` on the register program: ``arrays`` checked, ``wanted`` the
        input positions whose gradients are asked for (the others' are zeros, as the general
        batch replay gives them). Returns ``(outputs, grads)``: a ``(size, *shape)`` array per
        output and, with ``seeds``, per input.

        Blocks of up to ``MAX_LANES`` slices run together, one instruction over the whole
        block (``forward_lanes``/``backward_lanes``), on ``threads`` threads; a program whose
        softmax sums no plan reproduces (``_sum_plans``) runs one slice at a time instead.
        Either way each slice's bits are those of ``forward`` and ``backward`` on that slice."""
        if not self._compiled:
            self._compile()
        kernel = _kernel()
        numels = [numel for _, numel in self.input_ranges]
        inputs = np.empty((size, sum(numels)), self.dtype)
        position = 0
        for data, is_batched, numel in zip(arrays, batched, numels):
            inputs[:, position : position + numel] = data.reshape(size, numel) if is_batched else data.reshape(numel)
            position += numel
        input_registers = self.input_registers
        with_grad = seeds is not None
        outputs = np.empty((size, len(self.seed_registers)), self.dtype)
        grads = np.empty((size if with_grad else 0, len(input_registers)), self.dtype)
        seeds = np.zeros(0) if seeds is None else np.asarray(seeds, np.float64).reshape(-1)
        plans = _sum_plans(self)
        if plans is None:
            _per_slice(self, kernel, inputs, outputs, seeds, grads, with_grad, threads)
        else:
            self._by_lanes(kernel, plans, inputs, outputs, seeds, grads, with_grad, threads)
        if with_grad:
            position = 0
            for index, numel in enumerate(numels):
                if index not in wanted:
                    grads[:, position : position + numel] = 0
                position += numel
        return _split(outputs, self.output_shapes, size), _split(grads, self.input_shapes, size) if with_grad else []

    def _by_lanes(self, kernel, plans, inputs, outputs, seeds, grads, with_grad, threads) -> None:
        """``replay_batch``'s work in blocks of lanes (``forward_lanes``/``backward_lanes``),
        the blocks split over ``threads``: one ``lanes_blocks`` call each."""
        n = len(self.regs)
        lanes, blocks = _blocking(len(inputs), threads, max(1, MAX_BLOCK_BYTES // (n * self.dtype.itemsize)))
        constants = self._constant_registers()
        forward_plans, backward_plans = plans
        arguments = (self.args, self.signs, self.forward_params)
        grad_registers = self.input_registers

        def run(lo, hi):
            # Each thread in registers of its own; the constants' set once, the rest is written
            # before it is read.
            regs = _thread_buffer("registers", n * lanes, self.dtype)
            regs.reshape(n, lanes)[constants] = self._initial[constants, None]
            grads_ = _thread_buffer("gradients", n * lanes if with_grad else 0, self.dtype)
            scratch = _thread_buffer("scratch", kernel.SCRATCH_ROWS * lanes, self.dtype)
            sums = _thread_buffer("sums", kernel.SCRATCH_ROWS * lanes, np.float64)
            entering_kernel()
            kernel.lanes_blocks(
                lo, hi, lanes, with_grad, self.forward_ins, *arguments, regs, forward_plans, scratch, inputs,
                self.input_registers, outputs, self.seed_registers, self.backward_ins, self.grad_signs,
                self.backward_params, grads_, backward_plans, sums, seeds, grads, grad_registers,
            )  # fmt: skip

        _compile_lanes(kernel, self.dtype)  # once, before the threads call them
        _split_over_threads(run, blocks, threads)

    def _constant_registers(self) -> np.ndarray:
        """The registers a replay reads but neither computes nor loads: numbers and constants."""
        constants = getattr(self, "_constants", None)
        if constants is None:
            ins = self.forward_ins
            computed = np.zeros(len(self.regs) + 1, np.bool_)
            computed[ins[:, 1]] = True
            softmax = ins[ins[:, 0] == SOFTMAX]
            widths = softmax[:, 3]
            starts = np.repeat(softmax[:, 1] - np.cumsum(widths) + widths, widths)
            computed[starts + np.arange(widths.sum())] = True
            computed[self.input_registers] = True
            constants = self._constants = np.flatnonzero(~computed[:-1])
        return constants


MAX_LANES = 64  # slices per block: measured 32-128 on the graph workload, 64 best (256: 1.4x slower)
# A block's registers (and as many gradients) take at most this, fewer lanes where a program has
# many registers: the graph's 17,601 registers are 140 KB a lane in float64.
MAX_BLOCK_BYTES = 10 << 20


def _blocking(size: int, threads: int, most: int = MAX_LANES) -> tuple:
    """``(lanes, blocks)`` for a batch of ``size``: blocks of at most ``MAX_LANES`` (and
    ``most``) slices, at least one per thread, as even as a multiple of four lanes (float64's
    vector width here) allows; the last block may be short."""
    if size == 0:
        return 1, 0
    most = max(1, min(most, MAX_LANES))
    blocks = max(-(-size // most), min(threads, size))
    lanes = -(-size // blocks)
    if lanes > 4:
        lanes = min(-(-lanes // 4) * 4, max(most - most % 4, 4))
    return lanes, -(-size // lanes)


_THREAD_BUFFERS = threading.local()


def _thread_buffer(name: str, size: int, dtype) -> np.ndarray:
    """``size`` elements of ``dtype`` that this thread keeps for its next call (bytes, grown as
    needed; for the registers and gradients at most ``MAX_BLOCK_BYTES`` or one lane): fresh
    pages cost a fault each, and allocating a block's 9 MB of registers anew took 3-50 ms on
    this machine, more than a 128-slice batch's arithmetic. The pool's threads live as long as
    the process."""
    buffers = getattr(_THREAD_BUFFERS, "buffers", None)
    if buffers is None:
        buffers = _THREAD_BUFFERS.buffers = {}
    dtype = np.dtype(dtype)
    kept = buffers.get(name)
    if kept is None or len(kept) < size * dtype.itemsize:
        kept = buffers[name] = np.empty(size * dtype.itemsize, np.uint8)
    return kept[: size * dtype.itemsize].view(dtype)


def _split_over_threads(run, count: int, threads: int) -> None:
    """``run(lo, hi)`` over ``range(count)`` in contiguous parts, one per thread (the pool's
    threads run the jitted kernels without the GIL)."""
    threads = max(1, min(threads, count))
    if threads == 1:
        run(0, count)
        return
    from ._threads import run_parts

    run_parts(run, np.linspace(0, count, threads + 1).astype(int))


_LANES_COMPILED: set = set()


def _compile_lanes(kernel, dtype) -> None:
    """Compile (or load) ``lanes_blocks`` (``forward_lanes`` and ``backward_lanes`` in it) for
    ``dtype``: a call on no blocks."""
    if dtype in _LANES_COMPILED:
        return
    from ._kernels import families

    families.announce(kernel.lanes_blocks, "register interpreter for batches")
    ins, registers, plans = np.zeros((0, 4), np.int64), np.zeros(0, np.int64), np.zeros((1, 1, 3), np.int64)
    one, wide, scratch = np.zeros(1, dtype), np.zeros((1, 1), dtype), np.zeros(kernel.SCRATCH_ROWS, dtype)
    with _quiet_numba():  # (no blocks: compiled for the types, ``forward_lanes``/``backward_lanes`` in it)
        kernel.lanes_blocks(
            0, 0, 1, True, ins, registers, one, np.zeros(1), one, plans, scratch, wide, registers, wide, registers,
            ins, one, np.zeros(1), one.copy(), plans, np.zeros(kernel.SCRATCH_ROWS), np.zeros(0), wide, registers,
        )  # fmt: skip
    _LANES_COMPILED.add(dtype)


def _per_slice(program, kernel, inputs, outputs, seeds, grads, with_grad, threads) -> None:
    """One slice after another (``value_and_grad_slices``): the batch replay where no sum plan
    was found."""
    size = len(inputs)
    input_registers = program.input_registers

    def run(lo, hi):  # each thread in registers of its own
        if hi > lo:  # (not the call that compiles it, below)
            entering_kernel()
        kernel.value_and_grad_slices(
            lo, hi, program.forward_ins, program.backward_ins, program.args, program.signs, program.grad_signs,
            program.forward_params, program.backward_params, program.regs.copy(), np.zeros_like(program.grads),
            input_registers, inputs, program.seed_registers, outputs, program.seed_registers, seeds, input_registers,
            grads, with_grad,
        )  # fmt: skip

    with _quiet_numba():  # a first call compiles the kernel
        run(0, 0)
    _split_over_threads(run, size, threads)


# -- the order of a softmax's sums ---------------------------------------------------------------
#
# See SUM_PLAN_DOC in tapegrad/_kernels/register.py: the lane kernel adds a softmax's terms by a
# plan, and the plan that gives ``forward``'s and ``backward``'s bits is found here by trial,
# once per dtype and width, among the orders LLVM's loop vectorizer produces.

_PLANS: dict = {}  # (dtype, width) -> (forward plan, backward plan), or None when none fits
PROBES = 48  # softmaxes per trial: a wrong order differs from the right one in most of them
PROBE_LANES = 8


def _vectorized_order(n: int, width: int, interleave: int) -> np.ndarray:
    """The plan (``SUM_PLAN_DOC``) of a sum of ``n`` terms from zero as LLVM's loop vectorizer
    adds it with ``width`` lanes and ``interleave`` parts: each lane of each part accumulates
    every ``width * interleave``-th term (the zero start in the first), the parts are added
    lane by lane, then the lanes by halving, and the terms past the last whole chunk one by one.
    ``width`` 1: left to right."""
    steps = []
    rows = [n + 1]

    def add(x, y):
        steps.append((rows[0], x, y))
        rows[0] += 1
        return rows[0] - 1

    chunk = width * interleave
    whole = n - n % chunk if width > 1 else 0
    total = n  # the zero start
    if whole:
        parts = [[None] * width for _ in range(interleave)]
        parts[0][0] = n
        for start in range(0, whole, chunk):
            for part in range(interleave):
                for lane in range(width):
                    term = start + part * width + lane
                    held = parts[part][lane]
                    parts[part][lane] = term if held is None else add(held, term)
        folded = parts[0]
        for part in parts[1:]:
            folded = [add(x, y) for x, y in zip(part, folded)]
        while len(folded) > 1:
            half = len(folded) // 2
            folded = [add(folded[lane], folded[lane + half]) for lane in range(half)]
        total = folded[0]
    for term in range(whole, n):
        total = add(total, term)
    return np.array(steps, np.int64).reshape(n, 3)


def _candidate_orders(n: int) -> list:
    orders, seen = [], set()
    for width in (1, 2, 4, 8, 16, 32, 64):
        for interleave in (1, 2, 4, 8):
            order = _vectorized_order(n, width, interleave)
            if order.tobytes() not in seen:
                seen.add(order.tobytes())
                orders.append(order)
    return orders


def _sum_plans(program):
    """``(forward plans, backward plans)`` for the program's softmax widths, as
    ``forward_lanes``/``backward_lanes`` take them (``plans[n]``: the plan for ``n`` terms), or
    None when some width has none (or the program has a softmax wider than the kernel's
    scratch)."""
    widths = program.softmax_widths
    largest = max(widths, default=0)
    forward_plans = np.zeros((largest + 1, max(largest, 1), 3), np.int64)
    backward_plans = np.zeros_like(forward_plans)
    if largest > _kernel().MAX_GROUP:
        return None
    for n in widths:
        key = (program.dtype, n)
        if key not in _PLANS:
            _PLANS[key] = _find_plans(program.dtype, n)
        if _PLANS[key] is None:
            return None
        forward_plans[n, :n], backward_plans[n, :n] = _PLANS[key]
    return forward_plans, backward_plans


def _find_plans(dtype, n: int):
    """The plans (forward, backward) with which the lane kernel's softmax of ``n`` terms gives
    ``forward``'s and ``backward``'s bits on random probes, or None."""
    kernel = _kernel()
    _compile_lanes(kernel, dtype)
    rng = np.random.default_rng(n)
    count, lanes = PROBES * n, PROBE_LANES
    # One program of PROBES softmaxes: operands 0..count-1, results count..2*count-1.
    ins = np.array([[SOFTMAX, count + p * n, p * n, n] for p in range(PROBES)], np.int64)
    args = registers = np.arange(count, dtype=np.int64)
    every = np.arange(2 * count, dtype=np.int64)
    signs = np.ones(count, dtype)
    params = np.zeros(PROBES)
    # Exponentials over many binades (terms from 1 down to e**-30) and, backward, outputs and
    # seeds whose products span 2**+-40: sums in another order round differently.
    x = rng.uniform(-30.0, 5.0, (lanes, count)).astype(dtype)
    y = (rng.uniform(1, 2, (lanes, 2 * count)) * 2.0 ** rng.integers(-20, 20, (lanes, 2 * count))).astype(dtype)
    y *= rng.choice(np.array([-1, 1], dtype), (lanes, 2 * count))
    seeds = rng.uniform(1, 2, count) * 2.0 ** rng.integers(-20, 20, count)
    forward_want = np.zeros((lanes, 2 * count), dtype)
    backward_want = np.zeros((lanes, 2 * count), dtype)
    scratch = np.empty(kernel.SCRATCH_ROWS * lanes, dtype)
    sums = np.empty(kernel.SCRATCH_ROWS * lanes)
    for lane in range(lanes):  # the one-slice kernels, lane by lane
        forward_want[lane, :count] = x[lane]
        kernel.forward(ins, args, signs, params, forward_want[lane], scratch)
        kernel.backward(ins, args, signs, params, y[lane], backward_want[lane], every[count:], seeds)
    plans = np.zeros((n + 1, n, 3), np.int64)
    regs = np.zeros(2 * count * lanes, dtype)
    got = np.empty((lanes, 2 * count), dtype)
    found = []
    for order in _candidate_orders(n):
        plans[n] = order
        kernel.forward_lanes(ins, args, signs, params, regs, plans, lanes, scratch, 0, x, registers, got, every)
        if got.tobytes() == forward_want.tobytes():
            found.append(order)
            break
    regs[:] = y.T.reshape(-1)
    grads = np.empty_like(regs)
    for order in _candidate_orders(n):
        plans[n] = order
        kernel.backward_lanes(
            ins, args, signs, params, regs, grads, plans, lanes, sums, scratch, 0, every[count:], seeds, got, every
        )
        if got.tobytes() == backward_want.tobytes():
            found.append(order)
            break
    return tuple(found) if len(found) == 2 else None


def _split(flat, shapes, size) -> list:
    """Columns of ``flat`` (size, n) as one (size, *shape) array per shape, in order."""
    parts, position = [], 0
    for shape in shapes:
        numel = math.prod(shape)
        parts.append(flat[:, position : position + numel].reshape((size, *shape)))
        position += numel
    return parts


@contextlib.contextmanager
def _quiet_numba():
    """As around the kernel families' compiles (families.py): numba's SSA pass flags the inlined
    vmath.tanh ("variable ... is not in scope"), an internal pedantic check, not the user's
    business."""
    from numba.core.errors import NumbaIRAssumptionWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaIRAssumptionWarning)
        yield


def build(tape) -> Program | None:
    """The register program of ``tape`` (a ``tapegrad.replay.Tape`` whose values are filled), or
    None when some row is not one it covers."""
    rows = tape.rows
    n_rows = len(rows)
    if n_rows < MIN_ROWS or tape.guards:
        return None
    opcodes = rows[:, OPCODE] & OPCODE_MASK
    if not _SUPPORTED_OPCODES[opcodes].all():
        return None
    layouts = tape.layouts[rows[:, LAYOUT]]
    codes = layouts[:, 0]
    if (codes != codes[0]).any():
        return None
    numels = layouts[:, 1]
    renames = _RENAMES[opcodes]
    if (numels[~renames] > MAX_ROW_ELEMENTS).any() or (numels[renames] > MAX_INPUT_ELEMENTS).any():
        return None
    key = _structure(tape) if n_rows <= REWRITE_ROWS_KEPT else None
    with _REWRITES_LOCK:  # threads may record and replay at once
        built = _REWRITES.get(key, _NOT_BUILT)
        if built is not _NOT_BUILT:
            _REWRITES.move_to_end(key)
    if built is not _NOT_BUILT:
        return None if built is None else built.again(tape)
    collecting = gc.isenabled()
    gc.disable()  # the rewrite makes many small lists; collecting among the tape's objects took half its time
    try:
        built = _Rewrite(tape, opcodes, numels).program()
    except _NotCoveredError:
        built = None
    finally:
        if collecting:
            gc.enable()
    if key is None:
        return built
    with _REWRITES_LOCK:
        _REWRITES[key] = built
        if len(_REWRITES) > REWRITES_KEPT:
            _REWRITES.popitem(last=False)
    return built


# The last few rewrites, by the tape's structure. vmap records its function on every call (a
# function may close over tensors that change between calls), and rewriting the same 10,000-op
# graph again took 70 ms a call, half again the replay's time. The rewrite reads a tape's values
# only as its leaves' and constants' initial registers, so a tape of the same structure gets the
# same instructions with its own values loaded (``Program.again``).
REWRITES_KEPT = 4
REWRITE_ROWS_KEPT = 1 << 18  # a key holds the rows, params and aux: about 100 bytes a row
_REWRITES: collections.OrderedDict = collections.OrderedDict()
_REWRITES_LOCK = threading.Lock()
_NOT_BUILT = object()


def _structure(tape) -> tuple:
    """Everything of ``tape`` the rewrite reads except its values, as bytes: equal keys, the
    same program."""
    return (
        tape.rows.tobytes(), tape.params.tobytes(), tape.layouts.tobytes(), tape.dims.tobytes(), tape.aux.tobytes(),
        tape.input_rows.tobytes(), tape.output_rows.tobytes(), repr(tape.input_specs),
    )  # fmt: skip


class _NotCoveredError(Exception):
    """A row the register program does not cover, found while rewriting."""


class _Rewrite:
    def __init__(self, tape, opcodes, numels):
        self.tape = tape
        self.opcodes = opcodes.tolist()
        self.numels = numels.tolist()
        flags = tape.rows[:, OPCODE]
        # Rows the general backward gives a gradient slot: those that require grad and are not
        # constants (comparisons, detach).
        self.has_slot = ((flags & NO_GRAD) == 0) & ~_HAS_NO_SLOT[opcodes]
        self.dtype = tape._dtype(0)
        self.layout_of = tape.rows[:, LAYOUT].tolist()
        self.shapes = {}
        self.n_registers = 0
        self.initial = []  # (first register, values, row or None) of leaves, constants and numbers
        self.register_slot = []  # per register: whether its row has a gradient slot
        self.row_registers = [None] * len(opcodes)
        self.constants = {}  # float -> register holding it
        # Instructions: code, result register, operand registers (SUM: (register, sign) terms),
        # float parameter, row.
        self.codes, self.results, self.operands, self.params, self.instruction_rows = [], [], [], [], []

    # -- registers and instructions ---------------------------------------------------------

    def _new(self, count: int, slot: bool) -> int:
        first = self.n_registers
        self.n_registers += count
        self.register_slot.extend([slot] * count)
        return first

    def _constant(self, value: float) -> int:
        value = self.dtype.type(value)
        key = value.tobytes()
        register = self.constants.get(key)
        if register is None:
            register = self.constants[key] = self._new(1, False)
            self.initial.append((register, np.array([value], self.dtype), None))
        return register

    def _emit(self, code: int, operands: list, row: int, param: float = 0.0, results: int = 1) -> int:
        first = self._new(results, bool(self.has_slot[row]))
        self.codes.append(code)
        self.results.append(first)
        self.operands.append(operands)
        self.params.append(param)
        self.instruction_rows.append(row)
        return first

    # -- the rows ---------------------------------------------------------------------------

    def program(self) -> Program:
        tape = self.tape
        rows = tape.rows.tolist()
        params = tape.params[:, PARAM].tolist()
        aux = tape.aux.tolist()
        for r, (_, in0, in1, iparam, _, _) in enumerate(rows):
            name = _NAMES[self.opcodes[r]]
            numel = self.numels[r]
            param = params[r]
            if name in ("leaf", "constant"):
                first = self._new(numel, bool(self.has_slot[r]))
                self.initial.append((first, np.asarray(tape._slot(r), self.dtype), r))
                self.row_registers[r] = range(first, first + numel)  # indexes like a list, costs nothing
                continue
            source = self.row_registers[in0] if in0 >= 0 else None
            if name in _SUMS:
                if name in ("add", "sub"):
                    self._elementwise(r, SUM, (source, 1.0), (self.row_registers[in1], 1.0 if name == "add" else -1.0))
                elif name == "neg":
                    self._elementwise(r, SUM, (source, -1.0))
                elif name == "add_scalar":
                    self._elementwise(r, SUM, (source, 1.0), (self._constant(param), 1.0))
                elif name == "sub_scalar":
                    self._elementwise(r, SUM, (source, 1.0), (self._constant(param), -1.0))
                else:  # rsub_scalar: s - x
                    self._elementwise(r, SUM, (self._constant(param), 1.0), (source, -1.0))
            elif name in _UNARY:
                if in1 >= 0:  # a precomputed derivative (large rows only): not ours
                    raise _NotCoveredError
                self._elementwise(r, _UNARY[name], (source, 1.0))
            elif name in ("mul", "div"):
                self._elementwise(r, MUL if name == "mul" else DIV, (source, 1.0), (self.row_registers[in1], 1.0))
            elif name in ("mul_scalar", "div_scalar"):
                code = MUL if name == "mul_scalar" else DIV
                self._elementwise(r, code, (source, 1.0), (self._constant(param), 1.0))
            elif name in ("sum", "mean"):
                result = self._emit(REDUCE_SUM, list(source), r, param)
                self.row_registers[r] = [result]
            elif name == "softmax":
                self._softmax(r, source, iparam)
            elif name in ("stack", "cat"):
                self._alias(r, self._joined(r, name, iparam, aux))
            elif name == "detach":
                self._alias(r, list(source))
            else:  # views and copies: their elements are their source's
                if _ops.OPS[self.opcodes[r]].family == _ops.VIEW:
                    self._alias(r, self._viewed(r, source, iparam, aux))
                else:  # clone, shared_leaf
                    self._alias(r, list(source))
        return self._assemble()

    def _elementwise(self, r, code, *operands) -> None:
        """One instruction per element of row ``r``. Each operand is ``(registers, sign)``: a
        row's registers (element i reads its i-th) or one register (a constant), and for
        ``SUM`` the sign of its term."""
        registers = []
        for i in range(self.numels[r]):
            terms = [(source if isinstance(source, int) else source[i], sign) for source, sign in operands]
            registers.append(self._emit(code, terms if code == SUM else [register for register, _ in terms], r))
        self.row_registers[r] = registers

    def _alias(self, r, registers: list) -> None:
        """Row ``r`` is ``registers``. A row with no gradient slot (detach, a view under no_grad)
        of values that have one is copied instead: a renamed register would let gradients through."""
        if not self.has_slot[r] and any(self.register_slot[register] for register in registers):
            registers = [self._emit(COPY, [register], r) for register in registers]
        self.row_registers[r] = registers

    def _shape(self, r) -> tuple:
        layout = self.layout_of[r]
        shape = self.shapes.get(layout)
        if shape is None:
            shape = self.shapes[layout] = self.tape._shape(r)
        return shape

    def _viewed(self, r, source, iparam, aux) -> list:
        offset = aux[iparam]
        if self.numels[r] == 1:  # a select: the strides do not matter
            if not 0 <= offset < len(source):
                raise _NotCoveredError
            return [source[offset]]
        shape = self._shape(r)
        strides = aux[iparam + 1 : iparam + 1 + len(shape)]
        positions = np.full(shape, offset, np.int64)
        for dim, (extent, stride) in enumerate(zip(shape, strides)):
            index_shape = [1] * len(shape)
            index_shape[dim] = extent
            positions = positions + (np.arange(extent) * stride).reshape(index_shape)
        positions = positions.reshape(-1).tolist()
        if positions and (min(positions) < 0 or max(positions) >= len(source)):
            raise _NotCoveredError
        return [source[p] for p in positions]

    def _joined(self, r, name, iparam, aux) -> list:
        count, dim = aux[iparam], aux[iparam + 1]
        deltas = aux[iparam + 2 : iparam + 2 + count]
        if 0 in deltas:  # an operand with no row
            raise _NotCoveredError
        if self.numels[r] == count:  # one element each: their order is the result's
            return [self.row_registers[r - delta][0] for delta in deltas]
        parts = []
        for delta in deltas:
            source = r - delta
            parts.append(np.array(self.row_registers[source], np.int64).reshape(self._shape(source)))
        joined = np.stack(parts, axis=dim) if name == "stack" else np.concatenate(parts, axis=dim)
        return joined.reshape(-1).tolist()

    def _softmax(self, r, source, dim) -> None:
        shape = self._shape(r)
        if len(shape) == 0:
            shape, dim = (1,), 0
        # At most MAX_ROW_ELEMENTS operands: within the interpreter's scratch (MAX_GROUP).
        if dim != len(shape) - 1 or shape[-1] == 0:
            raise _NotCoveredError  # the general interpreter's other loop: not bit for bit ours
        extent = shape[-1]
        registers = []
        for start in range(0, len(source), extent):
            first = self._emit(SOFTMAX, source[start : start + extent], r, results=extent)
            registers.extend(range(first, first + extent))
        self.row_registers[r] = registers

    # -- the program ------------------------------------------------------------------------

    def _reached(self) -> np.ndarray:
        """The rows the general backward reaches from the outputs (its ``touched``)."""
        tape = self.tape
        has_slot = self.has_slot.tolist()
        reached = [False] * len(has_slot)
        for row in tape.output_rows.tolist():
            reached[row] = has_slot[row]
        rows = tape.rows
        in0, in1 = rows[:, IN0].tolist(), rows[:, IN1].tolist()
        for r in range(len(reached) - 1, -1, -1):
            if not (reached[r] and has_slot[r]):
                continue
            name = _NAMES[self.opcodes[r]]
            if name in ("stack", "cat"):
                start = int(rows[r, IPARAM])
                count = int(tape.aux[start])
                sources = [r - int(delta) for delta in tape.aux[start + 2 : start + 2 + count]]
            else:
                sources = (in0[r], in1[r])
            for source in sources:
                if source >= 0 and has_slot[source]:
                    reached[source] = True
        return np.array(reached, np.bool_)

    def _assemble(self) -> Program:
        tape = self.tape
        n = len(self.codes)
        codes = self.codes
        results = self.results
        operands = self.operands
        reached = self._reached()
        in_backward = [bool(reached[row] and self.has_slot[row]) for row in self.instruction_rows]
        output_registers = [np.array(self.row_registers[row], np.int64) for row in tape.output_rows.tolist()]
        protected = set()
        for registers in output_registers:
            protected.update(registers.tolist())
        # How often each register is read, to find sums whose result only one later sum reads.
        uses = np.zeros(self.n_registers, np.int32)
        for k in range(n):
            for operand in operands[k]:
                uses[operand[0] if codes[k] == SUM else operand] += 1
        producer = {results[k]: k for k in range(n) if codes[k] == SUM}
        alive = [True] * n

        def fusable(term, k) -> int:
            """The sum ``term`` is the result of, when it can be folded into the sum ``k``: only
            ``k`` reads it, and it is the instruction just before, so that no other gradient
            reaches its terms in between (the order of additions stays the general backward's)."""
            register, _ = term
            if uses[register] != 1 or register in protected or producer.get(register, -1) != k - 1:
                return -1
            return k - 1

        for k in range(1, n):
            if codes[k] != SUM:
                continue
            terms = operands[k]
            first = fusable(terms[0], k)
            if first < 0 and len(terms) == 2 and fusable(terms[1], k) >= 0:
                terms = [terms[1], terms[0]]  # a + (b + c) is (b + c) + a, to the bit
                first = fusable(terms[0], k)
            if first >= 0 and in_backward[first] == in_backward[k]:
                sign = terms[0][1]
                fused = operands[first]  # the producer's own list: it is dropped
                if sign != 1.0:
                    fused = [(register, s * sign) for register, s in fused]
                fused.extend(terms[1:])
                operands[k] = fused
                alive[first] = False
        # Forward: what the outputs need, and whatever the backward reads.
        needed = np.zeros(self.n_registers, np.bool_)
        for registers in output_registers:
            needed[registers] = True
        run = [False] * n
        for k in range(n - 1, -1, -1):
            if not alive[k]:
                continue
            width = len(operands[k]) if codes[k] == SOFTMAX else 1
            if in_backward[k] or needed[results[k] : results[k] + width].any():
                run[k] = True
                for operand in operands[k]:
                    needed[operand[0] if codes[k] == SUM else operand] = True
        forward_order = [k for k in range(n) if run[k]]
        backward_order = [k for k in reversed(forward_order) if in_backward[k]]
        args, signs = [], []
        encoded = np.zeros((n, 4), np.int64)
        for k in forward_order:
            code, ops = codes[k], operands[k]
            encoded[k, 0] = code
            encoded[k, 1] = results[k]
            if code == SUM:
                encoded[k, 2], encoded[k, 3] = len(args), len(ops)
                args.extend(register for register, _ in ops)
                signs.extend(sign for _, sign in ops)
            elif code in (REDUCE_SUM, SOFTMAX):
                encoded[k, 2], encoded[k, 3] = len(args), len(ops)
                args.extend(ops)
                signs.extend([1.0] * len(ops))
            else:
                encoded[k, 2] = ops[0]
                encoded[k, 3] = ops[1] if len(ops) > 1 else -1
        # Only the registers the program touches, renumbered in order (a run of them stays a run):
        # a large constant that only a dead pick reads (vmap's whole batch) costs nothing.
        encoded = encoded[forward_order]
        args = np.array(args, np.int64)
        input_ranges = []
        for row in tape.input_rows.tolist():
            registers = self.row_registers[row]
            input_ranges.append((registers[0] if registers else 0, len(registers)))
        used = np.zeros(self.n_registers + 1, np.bool_)  # the last: operand -1 (none)
        used[args] = True
        for registers in output_registers:
            used[registers] = True
        for start, numel in input_ranges:
            used[start : start + numel] = True
        n_ary = np.isin(encoded[:, 0], (SUM, REDUCE_SUM, SOFTMAX))
        used[encoded[:, 1]] = True
        for out, count in encoded[encoded[:, 0] == SOFTMAX][:, [1, 3]].tolist():
            used[out : out + count] = True
        used[encoded[~n_ary, 2]] = True
        used[encoded[~n_ary, 3]] = True
        used[-1] = False
        renumbered = np.cumsum(used) - 1
        renumbered[-1] = -1
        encoded[:, 1] = renumbered[encoded[:, 1]]
        encoded[~n_ary, 2] = renumbered[encoded[~n_ary, 2]]
        encoded[~n_ary, 3] = renumbered[encoded[~n_ary, 3]]
        position = {k: index for index, k in enumerate(forward_order)}
        backward_encoded = encoded[[position[k] for k in backward_order]]
        # A product or quotient by a value with no gradient slot (a number, a constant) gives its
        # gradient to one side only, as the general rule does: every ``x * 1.001`` of a chain
        # adding into the one constant's slot made the backward a chain through memory.
        slot = np.array(self.register_slot, np.bool_)
        has_slot = np.append(slot[used[:-1]], False)  # by new register; the last: operand -1
        codes_backward = backward_encoded[:, 0]
        binary = (codes_backward == MUL) | (codes_backward == DIV)
        first_slot = np.zeros(len(codes_backward), np.bool_)
        second_slot = np.zeros(len(codes_backward), np.bool_)
        first_slot[binary] = has_slot[backward_encoded[binary, 2]]
        second_slot[binary] = has_slot[backward_encoded[binary, 3]]
        swap = (codes_backward == MUL) & ~first_slot & second_slot  # a * b is b * a, to the bit
        backward_encoded[swap, 2:4] = backward_encoded[swap, 3:1:-1]
        codes_backward[(codes_backward == MUL) & ~(first_slot & second_slot)] = MUL_A
        codes_backward[(codes_backward == DIV) & ~second_slot] = DIV_A
        # A sum's terms with no gradient slot (``x + 2``'s 2) take no gradient either.
        grad_signs = np.array(signs, self.dtype) * slot[args]
        params = np.array(self.params, np.float64)
        encoded, backward_encoded = np.ascontiguousarray(encoded), np.ascontiguousarray(backward_encoded)
        forward_params, backward_params = params[forward_order], params[backward_order]
        instructions = (
            encoded,
            forward_params,
            backward_encoded,
            backward_params,
            renumbered[args],
            np.array(signs, self.dtype),
            grad_signs,
            *runs(encoded, forward_params, (MUL, DIV)),
            *runs(backward_encoded, backward_params, (MUL, MUL_A, DIV_A)),
        )
        initial = np.zeros(int(used.sum()), self.dtype)
        sources = []  # (row, its kept elements, their registers): what another tape's values fill
        for first, values, row in self.initial:
            kept = used[first : first + len(values)]
            registers = renumbered[first : first + len(values)][kept]
            initial[registers] = values[kept]
            if row is not None and kept.any():
                sources.append((row, kept, registers))
        input_ranges = [(int(renumbered[start]) if numel else 0, numel) for start, numel in input_ranges]
        output_registers = [renumbered[registers] for registers in output_registers]
        return Program(
            self.dtype, initial, instructions, input_ranges, [shape for shape, _ in tape.input_specs],
            output_registers, [tape._shape(row) for row in tape.output_rows.tolist()], sources,
        )  # fmt: skip
