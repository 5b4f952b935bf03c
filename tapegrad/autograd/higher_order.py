"""Higher-order gradients: the backward pass behind ``create_graph=True``.

The compiled sweep (``tapegrad/_kernels/backward.py``) produces numbers. A gradient that must
itself be differentiable has to be made of recorded ops instead, so this backward walks the tape
in Python, from the roots down, and computes each row's vector-Jacobian product with tapegrad
Tensor operations. Those record onto the tape like any others: the gradients come back as tensors
with a ``grad_fn``, and differentiating them again is an ordinary, compiled backward.

``VJP_RULES`` holds the formulas: one entry per backward rule name of the kernels, one formula per
input, each mirroring what the kernel computes. Each family module keeps its formulas next to its
recorders (``VJP`` in ``_record``, ``_reductions``, ``_selection``, ``_views``, ``_indexing``,
``_linalg``); ops declared by formula (``_ops.unary``) get theirs from the declaration. A formula reads the values the kernel reads (the
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

from .. import _dtypes, _indexing, _linalg, _record, _reductions, _selection, _views
from .._grad_mode import enable_grad
from .._grad_mode import state as _grad_state
from .._kernels import expressions
from .._ops import BINARY, COPY, LEAF_OPCODE, MATMUL, NARY, OPS, SCALAR, UNARY, VIEW
from .._tape import (
    CODE_DTYPES,
    IN0,
    IN1,
    IPARAM,
    LAYOUT,
    NO_GRAD,
    OPCODE,
    OPCODE_MASK,
    PARAM,
    inplace_epoch,
    outside_lock,
    resolve,
    row_sources,
)
from ..tensor import Tensor, _recorded, _wrap, hook_registrations
from . import engine
from .anomaly_mode import check_gradient, checking_nan
from .engine import (
    SECOND_BACKWARD,
    _captured_before_hooks,
    _modified_message,
    _seed,
    chain_hooks,
    roots_by_tape,
)


def run_create_graph(roots, gradients, retain_graph, *, collect=None) -> None:
    """``run_backward`` with ``create_graph=True``: the gradients are recorded tensors, added out
    of place into the leaves' ``.grad`` (so the sum is recorded too), or handed to ``collect``."""
    if _grad_state.recording is not None:
        raise NotImplementedError("create_graph=True inside tapegrad.record is not supported yet")
    retain = True if retain_graph is None else bool(retain_graph)  # PyTorch's default: create_graph
    with enable_grad():  # as in PyTorch, the backward is recorded even when called under no_grad
        seeds = [_seed_tensor(index, root, gradient) for index, (root, gradient) in enumerate(zip(roots, gradients))]
        by_tape, lone = roots_by_tape(roots, seeds)  # (a leaf's hooks run once, on its total gradient)
        for leaf, seed in lone:  # a leaf root on no tape of the others: its gradient is its seed, after its hooks
            _deliver(leaf, chain_hooks(seed, leaf._hooks or ()), collect)
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
    if engine.post_accumulate_registrations[0] and tensor._tape is None:
        engine.accumulated(tensor)


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
        if tape.view_copies:
            tape.refresh_view_copies(n_rows)
        tape.follow_replaced_leaves(n_rows)
        self.saved = {row: address for row, address in tape.saved.items() if row < n_rows}
        self.registered = {row: tensor for row, tensor in tape.leaves if row < n_rows}  # leaves, constants
        self.retained = tape.retained_rows(n_rows)
        self.hooks = {row: hooks for row, hooks in tape.hooks.items() if row < n_rows and hooks}
        self.freed = tape.grown_freed()[:n_rows].copy()
        changed = tape.modified_rows(n_rows, inplace_epoch[0]) or {}
        self.modified = {row: _modified_message(tape, entry, row) for row, entry in changed.items()}
        self.collect = collect
        self.collected = self._collected_rows(n_rows) if collect is not None else []
        # autograd.grad runs only the nodes on a path to what it wants (PyTorch's): no hook, no
        # retained gradient, no saved-value check elsewhere
        self.needed = engine._needed_rows(tape, n_rows, collect) if collect is not None else None
        # (worked out before the walk, whose ops append rows to the tape and may merge it)
        self.before_hooks = _captured_before_hooks(tape, n_rows, collect, self.hooks)
        names = tape.node_names or {}
        self.first_order = {row: names[row] for row in names if row < n_rows and names[row] in FIRST_ORDER_ONLY}
        self.connected = {row for row in names if row < n_rows and names[row] in CONNECTED_GRADIENTS}
        # custom Functions: each output row -> its call; the gradients of a call's outputs, gathered
        # until its lowest output row with one is reached; the contexts to free after the walk
        self.calls = {
            output: call for call in tape.functions.values() for output in call.output_rows if 0 <= output < n_rows
        } if tape.functions else {}  # fmt: skip
        self.call_gradients: dict = {}
        self.called: list = []
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
            before_hooks = self.before_hooks
        else:
            kept, before_hooks = self._accumulated_rows(), set()
        walked = []
        as_arrived = {}
        epoch, registrations, retaining = inplace_epoch[0], hook_registrations[0], len(self._now()[0].retained)
        while self.pending:
            row = -heapq.heappop(self.pending)
            # Rows are reached highest first and every consumer sits above its inputs, so the
            # gradient of ``row`` is complete now.
            arrived = self.gradients.pop(row)
            if self.needed is not None and not self.needed[row]:
                continue  # a root off every path to what autograd.grad wants: PyTorch runs nothing there
            gradient = self._run_hooks(row, arrived)
            if inplace_epoch[0] != epoch:  # a hook changed a value in place: rows still to run that saved it fail
                epoch = inplace_epoch[0]
                self._note_modified(row, epoch)
            tape = self._now()[0]
            if hook_registrations[0] != registrations or len(tape.retained) != retaining:
                # a hook registered hooks or retain_grad on rows still to run: they take effect
                registrations, retaining = hook_registrations[0], len(tape.retained)
                self._look_again()
                new = {row for row, _ in self.retained} - retained
                retained |= new
                kept |= new
            if row in kept:
                finished[row] = gradient
                if row in before_hooks:
                    as_arrived[row] = arrived
            if self._propagate(row, gradient):
                walked.append(row)
        if not retain:
            self._free(walked)
            for call in self.called:
                call.ctx._free()
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
        if op.rule in ("leaf", "constant") or (self.needed is not None and not self.needed[row]):
            return False
        if self.needed is not None and not self._leads_to_wanted(row):
            # A wanted row no wanted row lies below: autograd.grad takes its gradient there and
            # runs nothing past it (PyTorch's), its own graph perhaps freed by a backward before.
            return False
        if row in self.calls:
            return self._function(row, gradient)
        if row in self.first_order:
            raise NotImplementedError(
                f"create_graph=True is not supported through {FIRST_ORDER_ONLY[self.first_order[row]]} yet: its "
                "gradient is exact, but its own derivative would be missing"
            )
        if op.saves_mask:  # the checks the kernel makes before reading saved values
            if self.freed[row]:
                raise RuntimeError(SECOND_BACKWARD)
            if row in self.modified:
                raise RuntimeError(self.modified[row])
        formulas = formulas_for(op)
        if formulas is None:
            raise NotImplementedError(f"create_graph=True is not supported through {op.name} yet")
        view = _Row(self, row, op)
        if callable(formulas):  # one formula per input of this row (an n-ary op; mm's flags)
            formulas = formulas(view)
        connected = row in self.connected
        check_nan = checking_nan()
        for index, (source, formula) in enumerate(zip(view.inputs, formulas)):
            if self.receives(source) and (self.needed is None or self.needed[source]):
                contribution = formula(view, gradient)
                if contribution is None:  # no gradient to this input at all (a norm of order 0)
                    continue
                if check_nan:
                    check_gradient(self.tape, row, index, contribution._data)
                if connected:  # (a function of the input as well as of g, as PyTorch's node is)
                    contribution = contribution + self._zero_through(source)
                self._add(source, contribution, op.rule)
        return True

    def _zero_through(self, source: int) -> Tensor:
        """Zeros of row ``source``'s shape on the new graph, read from that row with a zero
        derivative: a gradient PyTorch computes with a backward op that reads its input
        (hardtanh_backward(grad, self)) requires grad, though its derivative in that input is
        0, so that a second backward gives zeros, not None (an optimizer skips a None)."""
        shape, dtype = self.shape(source), self.dtype(source)
        through = _recorded(np.zeros(shape, dtype), self.tape, source)
        return _selection.where(_wrap(np.zeros(shape, np.bool_)), through, 0.0)

    def _leads_to_wanted(self, row: int) -> bool:
        """Whether an input of ``row`` is on a path to a row ``autograd.grad`` wants."""
        if row in self.calls:
            sources = self.calls[row].tensor_input_rows
        else:  # (from the walk's own copy of the rows: its ops may move the tape's)
            sources = row_sources(row, *(int(value) for value in self.rows[row, :4]), self.aux)
        return any(0 <= source < len(self.needed) and self.needed[source] for source in sources)

    def _function(self, row: int, gradient: Tensor) -> bool:
        """A custom Function's output row: its gradient is kept until the call's lowest output
        row with a gradient is reached (its outputs are adjacent rows, so all their gradients are
        complete then), and the user's backward runs there, recorded (``FunctionCall.recorded_backward``)."""
        call = self.calls[row]
        gathered = self.call_gradients.setdefault(id(call), {})
        gathered[row] = gradient
        if any(0 <= other < row and other in self.gradients for other in call.output_rows):
            return True
        del self.call_gradients[id(call)]
        gradients = [gathered.get(output) if output >= 0 else None for output in call.output_rows]
        sources = call.ctx._sources  # (one per saved tensor; else none is known)
        if len(sources) != len(call.ctx._saved):
            sources = (None,) * len(call.ctx._saved)
        saved = tuple(self._saved_at(call, entry, source) for entry, source in zip(call.ctx._saved, sources))
        self.called.append(call)
        check_nan = checking_nan()
        for index, (source, input_gradient) in enumerate(outside_lock(call.recorded_backward, gradients, saved)):
            if check_nan:
                check_gradient(self.tape, row, index, input_gradient._data)
            if self.receives(source) and (self.needed is None or self.needed[source]):
                if input_gradient._data.dtype != self.dtype(source):  # PyTorch casts to the input's dtype
                    input_gradient = input_gradient.to(_dtypes.from_numpy_dtype(self.dtype(source)))
                self._add(source, input_gradient, call.name)
        return True

    def _saved_at(self, call, entry: tuple, source) -> Tensor | None:
        """A tensor the call saved, standing at its row when it is one of the call's inputs or
        outputs (so that ops on it differentiate back through the graph), else as saved."""
        tensor = entry[0]
        if tensor is None or source is None:
            return tensor
        kind, index = source
        row = (call.inputs if kind == "input" else call.outputs)[index][0]
        if row < 0:
            return tensor
        value = self.values.get(row)
        if value is None:
            if row >= len(self.rows):
                # An output past this walk's rows, which end at its roots (``eigh``'s
                # eigenvectors, when only its eigenvalues were used): at its row all the same, so
                # that the recorded backward's ops on it stay differentiable.
                value = _recorded(tensor._data, self.tape, row)
            elif self.is_leaf(row):
                value = self.registered[row]
            elif self.receives(row):
                value = _recorded(tensor._data, self.tape, row)
            else:
                return tensor
            self.values[row] = value
        return value

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
        return chain_hooks(gradient, hooks)

    def _now(self) -> tuple:
        """``(tape, shift)``: the tape this walk's rows are on now, and what their numbers there
        add to this walk's (its own ops may have merged its tape into another)."""
        tape, shift = self.tape, 0
        while tape.merged_into is not None:
            shift += tape.row_shift
            tape = tape.merged_into
        return tape, shift

    def _look_again(self) -> None:
        """The hooks and retained tensors of this walk's rows, as registered now (a hook may add
        some, as PyTorch's engine then runs them)."""
        tape, shift = self._now()
        n_rows = len(self.rows)
        self.hooks = {row - shift: hooks for row, hooks in tape.hooks.items() if 0 <= row - shift < n_rows and hooks}
        self.retained = [(row - shift, tensor) for row, tensor in tape.retained_rows(n_rows + shift) if row >= shift]

    def _note_modified(self, row: int, epoch: int) -> None:
        """Add to ``modified`` the rows up to ``row`` (this walk's numbers) whose saved values
        were changed in place since they saved them, as the plain backward checks after hooks."""
        tape, shift = self._now()
        for consumer, entry in (tape.modified_rows(row + shift + 1, epoch) or {}).items():
            if consumer - shift >= 0 and consumer - shift not in self.modified:
                self.modified[consumer - shift] = _modified_message(tape, entry, consumer)

    def _free(self, walked: list) -> None:
        """What a backward without ``retain_graph`` does: a later one through these rows raises."""
        tape, shift = self._now()
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
            if op.family == BINARY:
                out = op.forward(x, inputs[1])
            else:  # an mm's flags: an operand stored transposed (``_linalg._mm_of_sources``)
                flags = int(self.rows[row, IPARAM]) if op.name == "mm" else 0
                out = np.matmul(x.T if flags & 1 else x, inputs[1].T if flags & 2 else inputs[1])
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


# Keyed by the kernels' rule names (``RULE_NAMES`` of tapegrad/_kernels/backward.py); one formula
# per input (in0, in1), each ``(row, g) -> the input's gradient``; an n-ary entry is a function of
# the row giving one formula per input. Rules absent here raise NotImplementedError naming the op.
# Composites whose gradient holds values computed outside the graph (numpy's singular vectors):
# right to first order, their derivative would be silently 0. The walk refuses them by node name.
FIRST_ORDER_ONLY = {"LinalgSvdBackward0": "linalg.matrix_norm with ord 2, -2 or 'nuc' (numpy's SVD)"}
# Composites whose PyTorch node is one op with a backward op reading its input: their gradient
# requires grad whenever that input does (``_Backward._zero_through``).
CONNECTED_GRADIENTS = {
    "HardtanhBackward0", "HardsigmoidBackward0", "ThresholdBackward0", "HardshrinkBackward0",
    "SoftshrinkBackward0", "RreluWithNoiseBackward0", "PreluKernelBackward0", "MaxPool2DWithIndicesBackward0",
    "AvgPool2DBackward0", "AdaptiveMaxPool2DBackward0",
}  # fmt: skip


def formulas_for(op):
    """The op's VJP formulas (one per input, or a callable giving them for a row), or None where
    create_graph is not supported through it."""
    if op.grad_formula:
        return _formula_of(op) if expressions.differentiable(op.grad_formula) else None
    return VJP_RULES.get(op.rule)


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


def one_computation(compute, count: int):
    """The formulas of an op whose gradients for all its ``count`` inputs come from one
    computation, ``compute(row, g) -> tuple`` (a fused row's composite): the callable form
    ``formulas_for`` takes, which runs it once per row where a formula per input ran it for each."""

    def formulas(view) -> tuple:
        done = []

        def formula_for(index: int):
            def formula(row, g):
                if not done:
                    done.append(compute(row, g))
                return done[0][index]

            return formula

        return tuple(formula_for(index) for index in range(count))

    return formulas


VJP_RULES: dict = {
    **_record.VJP,
    **_selection.VJP,
    **_reductions.VJP,
    **_views.VJP,
    **_indexing.VJP,
    **_linalg.VJP,
}
