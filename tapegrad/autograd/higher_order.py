"""Higher-order gradients: the backward pass behind ``create_graph=True``.

The compiled sweep (``tapegrad/_kernels/backward.py``) produces numbers. A gradient that must
itself be differentiable has to be made of recorded ops instead, so this backward walks the tape
in Python, from the roots down, and computes each row's vector-Jacobian product with tapegrad
Tensor operations. Those record onto the tape like any others: the gradients come back as tensors
with a ``grad_fn``, and differentiating them again is an ordinary, compiled backward.

``VJP_RULES`` holds the formulas: one entry per backward rule name of the kernels, one formula per
input, each mirroring what the kernel computes. A formula reads the values the kernel reads (the
row's saved inputs and result, as its op's ``saves`` lists them) as tensors standing *at their own
rows* of the tape: an op on such a tensor records an edge into the original graph, so the second
derivative flows back through the forward exactly as it was recorded, and nothing is re-traced.
(Re-tracing the forward instead would double the tape, and could not rebuild rows whose constant
operand the recording dropped because the backward never reads it, as in ``x - target``.) The one
exception is a large unary row whose derivative was precomputed at record time (``in1``): it saved
neither its input nor its result, so those are recomputed from the nearest saved values.

An op without a formula raises ``NotImplementedError`` naming it, never a wrong second derivative.
The per-row Python cost is the price of a path that exists for second derivatives.
"""

from __future__ import annotations

import ctypes
import heapq
import math

import numpy as np

from .._dtypes import from_numpy_dtype
from .._grad_mode import enable_grad
from .._grad_mode import state as _grad_state
from .._kernels import expressions
from .._ops import BINARY, COPY, LEAF_OPCODE, MATMUL, NARY, OPS, SCALAR, UNARY, VIEW
from .._record import inplace_epoch
from .._tape import CODE_DTYPES, IN0, IN1, IPARAM, LAYOUT, NO_GRAD, OPCODE, OPCODE_MASK, PARAM, resolve
from ..tensor import Tensor, _recorded, _wrap
from .engine import SECOND_BACKWARD, _modified_message, _seed, hook_result


def run_create_graph(roots, gradients, retain_graph, *, collect=None) -> None:
    """``run_backward`` with ``create_graph=True``: the gradients are recorded tensors, added out
    of place into the leaves' ``.grad`` (so the sum is recorded too), or handed to ``collect``."""
    if _grad_state.recording is not None:
        raise NotImplementedError("create_graph=True inside tapegrad.record is not supported yet")
    retain = True if retain_graph is None else bool(retain_graph)  # PyTorch's default: create_graph
    with enable_grad():  # as in PyTorch, the backward is recorded even when called under no_grad
        by_tape: dict = {}
        for index, (root, gradient) in enumerate(zip(roots, gradients)):
            seed = _seed_tensor(index, root, gradient)
            if root._tape is None:  # a leaf: its gradient is the seed itself
                _deliver(root, seed, collect)
                continue
            tape = resolve(root)
            by_tape.setdefault(id(tape), (tape, []))[1].append((root._row, seed))
        # Every walk takes its snapshot before any runs: the ops one walk records may merge tapes.
        walks = [_Backward(tape, pairs, collect) for tape, pairs in by_tape.values()]
        for walk in walks:
            walk.run(retain)


def _seed_tensor(index: int, root: Tensor, gradient) -> Tensor:
    """The gradient a root starts with, as a tensor: a ``grad_outputs`` tensor that requires grad
    stays one, so the result is differentiable with respect to it too."""
    values = _seed(index, root, gradient)  # PyTorch's checks and messages
    if isinstance(gradient, Tensor):
        return gradient if gradient._data.dtype == root._data.dtype else gradient.to(root.dtype)
    return _wrap(np.array(values, dtype=root._data.dtype))


def _deliver(tensor: Tensor, gradient: Tensor, collect) -> None:
    if collect is not None:
        for index, wanted in enumerate(collect.inputs):
            if wanted is tensor:
                collect.add(index, gradient)
        return
    # PyTorch, with grad mode on: the first gradient is copied in, later ones added out of place.
    tensor._grad = gradient.clone() if tensor._grad is None else tensor._grad + gradient


def _array_at(address: int, dtype: np.dtype, shape: tuple) -> np.ndarray:
    """A copy of the saved value at ``address``: the copy outlives any change to the tape."""
    count = math.prod(shape)
    if count == 0:
        return np.zeros(shape, dtype)
    buffer = (ctypes.c_char * (count * dtype.itemsize)).from_address(address)
    return np.frombuffer(buffer, dtype, count).reshape(shape).copy()


class _Backward:
    """One tape's backward with ``create_graph``: a snapshot of the rows below the roots (the
    walk's own ops append to the tape and may merge it into another), the gradients that reached
    each row so far, and the rows' values as tensors."""

    def __init__(self, tape, pairs: list, collect):
        self.tape = tape
        n_rows = max(row for row, _ in pairs) + 1
        self.rows = tape.rows_array()[:n_rows].copy()
        self.params = tape.params_array()[:n_rows, PARAM].copy()
        self.aux = np.array(tape.aux, np.int64)
        self.layouts = tape.layouts_array().copy()
        self.dims = np.array(tape.dims, np.int64)
        self.saved = {row: address for row, address in tape.saved.items() if row < n_rows}
        self.registered = {row: tensor for row, tensor in tape.leaves if row < n_rows}  # leaves, constants
        self.retained = tape.retained_rows(n_rows)
        self.hooks = {row: hooks for row, hooks in tape.hooks.items() if row < n_rows and hooks}
        self.freed = tape.grown_freed()[:n_rows].copy()
        changed = tape.modified_rows(n_rows, inplace_epoch[0]) or {}
        self.modified = {row: _modified_message(tape, entry) for row, entry in changed.items()}
        self.collect = collect
        self.collected = self._collected_rows(n_rows) if collect is not None else []
        self.values: dict = {}  # row -> its value as a tensor
        self.arrays: dict = {}  # row -> its value as an array
        self.gradients: dict = {}  # row -> the sum of the gradients that reached it so far
        self.pending: list = []  # rows with a gradient, as a heap of -row: the highest comes first
        for row, seed in pairs:
            self._add(row, seed)

    def _collected_rows(self, n_rows: int) -> list:
        """(index in ``collect.inputs``, row) for the inputs ``autograd.grad`` wants from this tape."""
        collected = []
        for index, wanted in enumerate(self.collect.inputs):
            if wanted._tape is not None:
                if resolve(wanted) is self.tape and wanted._row < n_rows:
                    collected.append((index, wanted._row))
            else:
                collected.extend((index, row) for row, tensor in self.registered.items() if tensor is wanted)
        return collected

    # -- the walk -------------------------------------------------------------------------

    def run(self, retain: bool) -> None:
        finished = {}
        retained = {row for row, _ in self.retained}
        if self.collect is not None:
            kept = {row for _, row in self.collected} | retained
            # autograd.grad returns a non-leaf input's gradient as it arrived, before its hooks.
            before_hooks = (
                {row for _, row in self.collected if not self.is_leaf(row)} if self.collect.before_hooks else set()
            )
        else:
            kept, before_hooks = self._accumulated_rows(), set()
        walked = []
        as_arrived = {}
        while self.pending:
            row = -heapq.heappop(self.pending)
            # Rows are reached highest first and every consumer sits above its inputs, so the
            # gradient of ``row`` is complete now.
            arrived = self.gradients.pop(row)
            gradient = self._run_hooks(row, arrived)
            if row in kept:
                finished[row] = gradient
                if row in before_hooks:
                    as_arrived[row] = arrived
            if self._propagate(row, gradient):
                walked.append(row)
        if not retain:
            self._free(walked)
        if self.collect is not None:
            for index, row in self.collected:
                if row in finished:
                    self.collect.add(index, as_arrived.get(row, finished[row]))
            for row, tensor in self.retained:  # retained gradients are filled by autograd.grad too
                if row in finished:
                    _deliver(tensor, finished[row], None)
            return
        for row, tensor in [*self.registered.items(), *self.retained]:
            if row in finished:
                _deliver(tensor, finished[row], None)

    def _accumulated_rows(self) -> set:
        """Rows whose gradient a ``backward()`` stores: leaves that require grad, retained rows."""
        leaves = {row for row, tensor in self.registered.items() if self.is_leaf(row) and tensor._requires_grad}
        return leaves | {row for row, _ in self.retained}

    def _propagate(self, row: int, gradient: Tensor) -> bool:
        """Send ``row``'s gradient to its inputs; False for a leaf or constant (nothing to do)."""
        op = OPS[int(self.rows[row, OPCODE]) & OPCODE_MASK]
        if op.rule in ("leaf", "constant"):
            return False
        if op.saves_mask:  # the checks the kernel makes before reading saved values
            if self.freed[row]:
                raise RuntimeError(SECOND_BACKWARD)
            if row in self.modified:
                raise RuntimeError(self.modified[row])
        formulas = formulas_for(op)
        if formulas is None:
            raise NotImplementedError(f"create_graph=True is not supported through {op.name} yet")
        view = _Row(self, row, op)
        if callable(formulas):  # an n-ary op: one formula per input of this row
            formulas = formulas(view)
        for source, formula in zip(view.inputs, formulas):
            if self.receives(source):
                self._add(source, formula(view, gradient), op.rule)
        return True

    def _add(self, row: int, gradient: Tensor, rule: str = "seed") -> None:
        if tuple(gradient.shape) != self.shape(row) or gradient._data.dtype != self.dtype(row):
            # A broadcast here would be a silently wrong gradient: fail loudly instead.
            raise RuntimeError(
                f"create_graph rule {rule!r} gave a {gradient._data.dtype} gradient of shape {tuple(gradient.shape)} "
                f"for an input of {self.dtype(row)} and shape {self.shape(row)}"
            )
        if row in self.gradients:
            self.gradients[row] = self.gradients[row] + gradient
        else:
            self.gradients[row] = gradient
            heapq.heappush(self.pending, -row)

    def _run_hooks(self, row: int, gradient: Tensor) -> Tensor:
        hooks = list(self.hooks.get(row, ()))
        if self.is_leaf(row) and self.registered[row]._hooks:
            hooks += self.registered[row]._hooks
        for hook in hooks:
            result = hook(gradient)
            if result is not None:
                gradient = hook_result(hook, result, tuple(gradient.shape), gradient._data.dtype)
        return gradient

    def _free(self, walked: list) -> None:
        """What a backward without ``retain_graph`` does: a later one through these rows raises."""
        tape, shift = self.tape, 0
        while tape.merged_into is not None:
            shift += tape.row_shift
            tape = tape.merged_into
        tape.grown_freed()[np.asarray(walked, np.int64) + shift] = True

    # -- what the rules read --------------------------------------------------------------

    def opcode(self, row: int) -> int:
        return int(self.rows[row, OPCODE])

    def is_leaf(self, row: int) -> bool:
        return self.opcode(row) == LEAF_OPCODE

    def receives(self, row: int) -> bool:
        """Whether ``row`` takes a gradient: not a missing operand (-1), constant or no-grad row."""
        return row >= 0 and self.opcode(row) < NO_GRAD and OPS[self.opcode(row)].rule != "constant"

    def shape(self, row: int) -> tuple:
        _, _, ndim, offset = self.layouts[self.rows[row, LAYOUT]]
        return tuple(int(extent) for extent in self.dims[offset : offset + ndim])

    def dtype(self, row: int) -> np.dtype:
        return CODE_DTYPES[self.layouts[self.rows[row, LAYOUT], 0]]

    def value(self, row: int, reader: str) -> Tensor:
        """Row ``row``'s value as a tensor at that row: an op on it differentiates back through
        the original graph. A leaf is its own tensor; a constant does not require grad."""
        tensor = self.values.get(row)
        if tensor is None:
            if self.is_leaf(row):
                tensor = self.registered[row]
            elif self.receives(row):
                tensor = _recorded(self.array(row, reader), self.tape, row)
            else:
                tensor = _wrap(self.array(row, reader))
            self.values[row] = tensor
        return tensor

    def array(self, row: int, reader: str) -> np.ndarray:
        """Row ``row``'s value as saved for the kernel, or else recomputed from its inputs (only
        large unary rows with a precomputed derivative ever need that)."""
        pending = [row]
        while pending:  # a stack rather than recursion: a chain of unsaved rows may be long
            current = pending[-1]
            if current in self.arrays:
                pending.pop()
                continue
            stored = self._stored(current)
            if stored is not None:
                self.arrays[current] = stored
                pending.pop()
                continue
            inputs = self._recompute_inputs(current, reader)
            missing = [source for source in inputs if source not in self.arrays]
            if missing:
                pending.extend(missing)
                continue
            self.arrays[current] = self._recompute(current, [self.arrays[source] for source in inputs])
            pending.pop()
        return self.arrays[row]

    def _stored(self, row: int):
        if row in self.registered:  # leaves and registered constants are read live, as the kernel does
            return self.registered[row]._data
        if row in self.saved:
            return _array_at(self.saved[row], self.dtype(row), self.shape(row))
        return None

    def _recompute_inputs(self, row: int, reader: str) -> list:
        op = OPS[self.opcode(row) & OPCODE_MASK]
        two = op.family == MATMUL or (op.family == BINARY and op.name != "where")  # where: 3 operands
        one = op.family in (UNARY, SCALAR, VIEW, COPY) or op.rule in ("sum_all", "sum_dim")
        inputs = [int(self.rows[row, IN0]), int(self.rows[row, IN1])][: 2 if two else 1 if one else 0]
        if not inputs or min(inputs) < 0:
            raise NotImplementedError(
                f"create_graph=True is not supported through {reader} yet in this graph: a value it needs "
                f"(the result of {op.name}) was not saved and cannot be recomputed"
            )
        return inputs

    def _recompute(self, row: int, inputs: list) -> np.ndarray:
        """The forward of a row, in numpy, as the facade computed it."""
        op = OPS[self.opcode(row) & OPCODE_MASK]
        shape, dtype = self.shape(row), self.dtype(row)
        x = inputs[0]
        if op.family == UNARY:
            out = op.forward(x)
        elif op.family == SCALAR:
            out = op.forward(x, float(self.params[row]))
        elif op.family in (BINARY, MATMUL):
            out = op.forward(x, inputs[1]) if op.family == BINARY else np.matmul(x, inputs[1])
        elif op.family == VIEW:
            start = self.rows[row, IPARAM]
            offset, *strides = self.aux[start : start + 1 + len(shape)]
            flat = np.ascontiguousarray(x).reshape(-1)[offset:]
            out = np.lib.stride_tricks.as_strided(flat, shape, [stride * flat.itemsize for stride in strides])
        elif op.family == COPY:
            out = x
        else:  # sum and mean, all or over the dimensions in the integer slot's bit mask
            mask = int(self.rows[row, IPARAM])
            axis = None if op.rule == "sum_all" else tuple(d for d in range(x.ndim) if mask >> d & 1)
            out = np.add.reduce(x, axis=axis) * self.params[row]
        return np.asarray(out, dtype).reshape(shape)


class _Row:
    """A tape row as a formula sees it: its slots and shapes, and the values its kernel rule reads
    (``a``, ``b``, ``out`` as tensors; ``*_data`` as arrays)."""

    def __init__(self, walk: _Backward, index: int, op):
        self.walk, self.index, self.op = walk, index, op
        self.in0, self.in1, self.iparam = (int(value) for value in walk.rows[index, IN0 : IPARAM + 1])
        self.param = float(walk.params[index])
        self.dtype = walk.dtype(index)
        self.shape = walk.shape(index)

    @property
    def inputs(self) -> list:
        if self.op.family == NARY:  # aux: count, dim, then each input's distance back (0: none)
            count = self.aux(0, 1)[0]
            return [self.index - delta if delta else -1 for delta in self.aux(2, count)]
        return [self.in0, self.in1]

    def aux(self, start: int, count: int) -> list:
        return [int(value) for value in self.walk.aux[self.iparam + start : self.iparam + start + count]]

    @property
    def input_shape(self) -> tuple:
        return self.walk.shape(self.in0)

    @property
    def a(self) -> Tensor:
        return self.walk.value(self.in0, self.op.name)

    @property
    def b(self) -> Tensor:
        return self.walk.value(self.in1, self.op.name)

    @property
    def out(self) -> Tensor:
        return self.walk.value(self.index, self.op.name)

    @property
    def a_data(self) -> np.ndarray:
        return self.walk.array(self.in0, self.op.name)

    @property
    def b_data(self) -> np.ndarray:
        return self.walk.array(self.in1, self.op.name)

    @property
    def out_data(self) -> np.ndarray:
        return self.walk.array(self.index, self.op.name)

    def constant(self, values) -> Tensor:
        """Values that do not depend on the inputs (masks, signs), in this row's dtype."""
        return _wrap(np.asarray(values, dtype=self.dtype))

    def zeros(self) -> Tensor:
        """The gradient of an input that the kernel reaches with nothing (still "used")."""
        return _wrap(np.zeros(self.input_shape, self.walk.dtype(self.in0)))


# -- formulas that do not fit on one line --------------------------------------------------


def _reduced_axis(row: _Row) -> tuple:
    """The numpy axis a one-dimension reduction works on (``iparam``; -1: all, None here), and
    its result's shape with that dimension kept as 1."""
    shape, dim = row.input_shape, row.iparam
    if dim < 0:
        return None, (1,) * len(shape)
    return dim, shape[:dim] + (1,) + shape[dim + 1 :]


def _spread(row: _Row, reduced: Tensor) -> Tensor:
    """One value per group of a reduction along ``iparam``, repeated over its group."""
    return reduced.reshape(_reduced_axis(row)[1]).expand(row.input_shape)


def _sum_all(row: _Row, g: Tensor) -> Tensor:
    return (g if row.param == 1.0 else g * row.param).expand(row.input_shape)


def _sum_dim(row: _Row, g: Tensor) -> Tensor:
    kept = tuple(1 if row.iparam >> d & 1 else extent for d, extent in enumerate(row.input_shape))
    return (g if row.param == 1.0 else g * row.param).reshape(kept).expand(row.input_shape)


def _norm(row: _Row, g: Tensor) -> Tensor:
    """Of order ``param``; the kernel sends nothing to a group whose norm is 0."""
    p, x = row.param, row.a_data
    if p == 0:
        return row.zeros()
    if p == 1:
        return _spread(row, g) * row.constant(np.sign(x))
    if p == math.inf:  # shared by the elements of largest magnitude
        axis, kept = _reduced_axis(row)
        largest = np.abs(x) == row.out_data.reshape(kept)
        count = np.maximum(largest.sum(axis=axis, keepdims=True), 1)
        return _spread(row, g) * row.constant(np.sign(x) * largest / count)
    zero = row.out_data == 0
    safe = row.out + row.constant(zero)  # 1 where the norm is 0, whose groups get nothing
    scale = g * row.constant(~zero) / (safe if p == 2 else safe ** (p - 1))
    if p == 2:
        return _spread(row, scale) * row.a
    return _spread(row, scale) * row.constant(np.sign(x)) * row.a.abs() ** (p - 1)


def _prod(row: _Row, g: Tensor) -> Tensor:
    """d prod / d x_k is the product of the others: prod / x_k when no element is zero, else
    the product of each element's group with that element replaced by 1."""
    if np.all(row.a_data != 0):
        return _spread(row, g * row.out) / row.a
    dim = row.iparam
    grouped = row.a.reshape(-1) if dim < 0 else row.a.transpose(dim, -1)  # the group last
    extent = grouped.shape[-1]
    eye = np.eye(extent)
    square = grouped.unsqueeze(-2).expand(*grouped.shape[:-1], extent, extent)
    others = (square * row.constant(1 - eye) + row.constant(eye)).prod(-1)
    others = others.reshape(row.input_shape) if dim < 0 else others.transpose(dim, -1)
    return _spread(row, g) * others


def _centered(row: _Row) -> tuple:
    """The input minus its group's mean, and the degrees of freedom (``param``: the correction)."""
    x = row.a
    axis, _ = _reduced_axis(row)
    extent = math.prod(row.input_shape) if axis is None else row.input_shape[axis]
    return x - _spread(row, x.mean() if axis is None else x.mean(axis)), extent - row.param


def _var(row: _Row, g: Tensor) -> Tensor:
    centered, dof = _centered(row)
    return _spread(row, g * (2.0 / dof)) * centered


def _std(row: _Row, g: Tensor) -> Tensor:
    """As PyTorch: zero where the std is zero (rather than 0/0)."""
    centered, dof = _centered(row)
    zero = row.out_data == 0
    return _spread(row, g / (row.out + row.constant(zero)) * row.constant(~zero) / dof) * centered


def _cumsum(row: _Row, g: Tensor) -> Tensor:
    """The reversed cumulative sum of g: its total, minus the running sum before each element."""
    if not row.input_shape:
        return g
    return g.sum(row.iparam, keepdim=True) - g.cumsum(row.iparam) + g


def _share(row: _Row, side: int) -> np.ndarray:
    """maximum/minimum: how much of the gradient goes to input ``side``. A tie splits evenly; a
    NaN on either side sends nothing to either, as the kernel does."""
    x, y = (row.a_data, row.b_data) if side == 0 else (row.b_data, row.a_data)
    wins = x > y if row.op.rule == "maximum" else x < y
    return np.where(x == y, 0.5, wins)


def _condition(row: _Row) -> np.ndarray:
    """where's condition, as 0/1: the ``mask`` row ``iparam`` rows above."""
    return row.walk.array(row.index - row.iparam, row.op.name) != 0


def _pow_base(row: _Row, g: Tensor) -> Tensor:
    """b * a ** (b - 1), and 0 where b is 0 (as the kernel and PyTorch do, even at a = 0)."""
    exponent = row.b - 1.0
    nonzero = row.b_data != 0
    if nonzero.all():
        return g * row.b * row.a**exponent
    keep = row.constant(nonzero)
    safe = exponent * keep + row.constant(~nonzero)  # a ** 1 where masked: no 0 * inf
    return g * row.b * row.a**safe * keep


def _pow_exponent(row: _Row, g: Tensor) -> Tensor:
    """a ** b * log(a), and 0 where a is 0 and b >= 0 (the kernel's convention)."""
    skip = (row.a_data == 0) & (row.b_data >= 0)
    if not skip.any():
        return g * row.out * row.a.log()
    safe = row.a * row.constant(~skip) + row.constant(skip)  # log(1) = 0 where skipped
    return g * row.out * safe.log() * row.constant(~skip)


def _elu(row: _Row, g: Tensor) -> Tensor:
    positive = row.a_data > 0
    return g * (row.constant(positive) + row.a.exp() * row.param * row.constant(~positive))


def _view(row: _Row, g: Tensor) -> Tensor:
    """The adjoint of a view: each output element's gradient goes back to the input element it
    reads (aux: offset, then a stride per output dimension, in the input laid out contiguously).
    Broadcast dimensions (stride 0) are summed first; then a reshape maps back as a reshape, and
    anything else (transposes, slices, selects) scatters through differentiable picks."""
    shape = row.shape
    offset, *strides = row.aux(0, 1 + len(shape))
    broadcast = tuple(d for d, (extent, stride) in enumerate(zip(shape, strides)) if stride == 0 and extent != 1)
    if broadcast:
        g = g.sum(broadcast)
        shape = tuple(extent for d, extent in enumerate(shape) if d not in broadcast)
        strides = [stride for d, stride in enumerate(strides) if d not in broadcast]
    grids = np.indices(shape, dtype=np.int64)
    positions = np.asarray(offset + sum(grid * stride for grid, stride in zip(grids, strides)), np.int64).reshape(-1)
    numel = math.prod(row.input_shape)
    if np.array_equal(positions, np.arange(numel)):
        return g.reshape(row.input_shape)
    return _scatter_rows(g.reshape(-1), positions, numel).reshape(row.input_shape)


def _gather_rows(row: _Row, g: Tensor) -> Tensor:
    """aux: count, then the picked rows of the input seen as rows of ``numel / count`` elements
    (element-wise picks: one element wide, at flat positions)."""
    count = row.aux(0, 1)[0]
    numel = math.prod(row.input_shape)
    if count == 0 or g.numel() == 0:
        return row.zeros()
    width = g.numel() // count
    picked = np.asarray(row.aux(1, count), np.int64)
    return _scatter_rows(g.reshape(count, width), picked, numel // width).reshape(row.input_shape)


def _scatter_rows(rows: Tensor, targets: np.ndarray, extent: int) -> Tensor:
    """``extent`` rows, row t the sum of the ``rows`` sent to target t: the adjoint of picking
    rows, made of differentiable picks. Each round picks, for every target, one row sent there
    not taken yet, and masks the targets with none left; a target hit k times takes k rounds."""
    shape = (extent, *rows.shape[1:])
    occurrence = _occurrence(targets)
    total = None
    for round_number in range(int(occurrence.max()) + 1 if targets.size else 0):
        chosen = np.flatnonzero(occurrence == round_number)
        source = np.zeros(extent, np.int64)
        source[targets[chosen]] = chosen
        picked = rows[source]
        hit = np.zeros(extent, np.bool_)
        hit[targets[chosen]] = True
        if not hit.all():
            picked = picked * _wrap(hit.reshape((extent,) + (1,) * (len(shape) - 1)).astype(rows._data.dtype))
        total = picked if total is None else total + picked
    return total if total is not None else _wrap(np.zeros(shape, rows._data.dtype))


def _occurrence(targets: np.ndarray) -> np.ndarray:
    """For each entry, how many earlier entries have the same target."""
    order = np.argsort(targets, kind="stable")
    ordered = targets[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]] if ordered.size else np.zeros(0, np.bool_)
    group_start = np.maximum.accumulate(np.where(starts_group, np.arange(ordered.size), 0))
    occurrence = np.empty(targets.size, np.int64)
    occurrence[order] = np.arange(ordered.size) - group_start
    return occurrence


def _concat(row: _Row) -> list:
    """stack and cat (aux: count, dim, distances back, then each input's extent along dim): an
    input's gradient is its slice of g, reshaped (a stacked input lacks that dimension)."""
    count, dim = row.aux(0, 2)
    formulas = []
    start = 0
    for source, extent in zip(row.inputs, row.aux(2 + count, count)):
        key = (slice(None),) * dim + (slice(start, start + extent),)
        shape = row.walk.shape(source) if source >= 0 else None
        formulas.append(lambda _, g, key=key, shape=shape: g[key].reshape(shape))
        start += extent
    return formulas


def _softmax(row: _Row, g: Tensor) -> Tensor:
    weighted = g * row.out
    return row.out * (g - (weighted.sum(row.iparam, keepdim=True) if row.shape else weighted))


def _log_softmax(row: _Row, g: Tensor) -> Tensor:
    return g - row.out.exp() * (g.sum(row.iparam, keepdim=True) if row.shape else g)


# Keyed by the kernels' rule names (``RULE_NAMES`` of tapegrad/_kernels/backward.py); one formula
# per input (in0, in1), each ``(row, g) -> the input's gradient``; an n-ary entry is a function of
# the row giving one formula per input. Rules absent here raise NotImplementedError naming the op.
def formulas_for(op):
    """The op's VJP formulas (one per input, or a callable giving them for a row), or None where
    create_graph is not supported through it."""
    return _formula_of(op) if op.grad_formula else VJP_RULES.get(op.rule)


def _formula_of(op) -> tuple:
    """The VJP of an op declared by formula: its gradient expression over tapegrad tensors."""

    used = expressions.names(op.grad_formula)

    def formula(row, g):
        values = {"g": g}
        if "x" in used:
            values["x"] = row.a
        if "out" in used:
            values["out"] = row.out
        return expressions.evaluate(op.grad_formula, **values)

    return (formula,)


VJP_RULES: dict = {
    "neg": (lambda row, g: -g,),
    # d softplus = sigmoid(x)
    "softplus": (lambda row, g: g * row.a.sigmoid(),),
    "zero": (lambda row, g: row.zeros(),),
    "leaky_relu": (lambda row, g: g * row.constant(np.where(row.a_data > 0, 1.0, row.param)),),
    "elu": (_elu,),
    "pass": (lambda row, g: g,),
    "mul_scalar": (lambda row, g: g * row.param,),
    "div_scalar": (lambda row, g: g / row.param,),
    "pow_scalar": (lambda row, g: g * (row.a ** (row.param - 1.0) * row.param) if row.param else row.zeros(),),
    "rpow_scalar": (lambda row, g: g * row.out * float(np.log(row.param)) if row.param else row.zeros(),),
    "clamp_min": (lambda row, g: g * row.constant(row.a_data >= row.param),),
    "clamp_max": (lambda row, g: g * row.constant(row.a_data <= row.param),),
    "add": (lambda row, g: g, lambda row, g: g),
    "sub": (lambda row, g: g, lambda row, g: -g),
    "mul": (lambda row, g: g * row.b, lambda row, g: g * row.a),
    "div": (lambda row, g: g / row.b, lambda row, g: -g * row.a / (row.b * row.b)),
    "pow": (_pow_base, _pow_exponent),
    "maximum": (lambda row, g: g * row.constant(_share(row, 0)), lambda row, g: g * row.constant(_share(row, 1))),
    "minimum": (lambda row, g: g * row.constant(_share(row, 0)), lambda row, g: g * row.constant(_share(row, 1))),
    "where": (lambda row, g: g * row.constant(_condition(row)), lambda row, g: g * row.constant(~_condition(row))),
    "sum_all": (_sum_all,),
    "sum_dim": (_sum_dim,),
    "norm": (_norm,),
    "prod": (_prod,),
    "var": (_var,),
    "std": (_std,),
    "logsumexp": (lambda row, g: _spread(row, g) * (row.a - _spread(row, row.out)).exp(),),
    "cumsum": (_cumsum,),
    # max, min, amax, amin: in1 holds weights saying which elements won and how ties share.
    "select_reduce": (lambda row, g: _spread(row, g) * row.b,),
    "softmax": (_softmax,),
    "log_softmax": (_log_softmax,),
    "view": (_view,),
    "dot": (lambda row, g: g * row.b, lambda row, g: g * row.a),
    "mv": (lambda row, g: g.unsqueeze(1) * row.b, lambda row, g: row.a.t() @ g),
    "mm": (lambda row, g: g @ row.b.t(), lambda row, g: row.a.t() @ g),
    "bmm": (lambda row, g: g @ row.b.transpose(1, 2), lambda row, g: row.a.transpose(1, 2) @ g),
    "cast": (lambda row, g: g.to(from_numpy_dtype(row.walk.dtype(row.in0))),),
    "gather_rows": (_gather_rows,),
    "concat": _concat,
}
