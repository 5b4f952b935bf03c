"""How an op is recorded: the path from a Tensor operation to a tape row.

Each function computes the forward with numpy, decides with ``_target`` whether and where to
record (eagerly: only ops on tensors that require grad; inside ``tapegrad.record``: every op),
appends the row, and saves the values its backward rule reads (with their versions). These are
the hot path: an op's whole cost is what has to beat PyTorch per op on small tensors. An eager
op on ordinary inputs, the common case, takes the short path below (``_short_record``) instead.
"""

from __future__ import annotations

import builtins
import dis
import functools
import math
import numbers
import sys
import warnings
import weakref
from weakref import ref as _weakref

import numpy as np

from . import _device, _dtypes
from ._grad_mode import active_recording
from ._grad_mode import no_grad as _no_grad
from ._grad_mode import recordings_active as _recordings_active
from ._grad_mode import special_modes as _special_modes
from ._grad_mode import state as _grad_state
from ._grad_mode import threads_disabled as _threads_disabled
from ._kernels import load as load_kernels
from ._kernels.expressions import zero_through
from ._kernels.rules import CROSS_READS, PERIOD_BITS
from ._ops import BY_NAME, OPCODE, OPS, SCALAR, UNARY
from ._pending_views import PendingView, replaced, settle
from ._pending_views import bypass as _bypass_pending
from ._shapes import broadcast_strides
from ._tape import (
    DTYPE_CODES,
    IN0,
    LAYOUT,
    LOCK,
    NO_GRAD,
    ROW_BYTES,
    ROW_WIDTH,
    Tape,
    _pack_row,
    address_of,
    count_threads,
    exclusive,
    inplace_epoch,
    join,
    resolve,
    write_watchers,
)
from ._threads import pool_threads
from .tensor import Tensor, _guard, _recorded, _wrap, as_array, install, on_tape

_float = builtins.float
_int = builtins.int
_bool = builtins.bool
_BROADCAST = OPCODE["broadcast"]


# From this size a transposed matrix is made C-ordered by a compiled tiled copy
# (``strided.transposed_copy``) rather than numpy's (which walks one side with a large stride):
# ``a.t() * b.t()`` at 128x512 spent 2 x 58 us in numpy's copy, 2 x 21 us so; softmax of a
# transposed 128x512 input 148 us (2.3 ns an element on this machine). Below it the kernels are
# not loaded for this, and numpy's copy is short anyway.
TILED_COPY_SIZE = 1 << 12


def c_ordered(data: np.ndarray) -> np.ndarray:
    """``data`` C-ordered: itself if it is, a tiled copy of a large transposed float matrix
    (F-ordered 2-D), else ``np.ascontiguousarray``'s copy."""
    if data.flags.c_contiguous:
        return data
    if data.size >= TILED_COPY_SIZE and data.ndim == 2 and data.flags.f_contiguous and data.dtype.kind == "f":
        from ._kernels.strided import transposed_copy  # the kernels load on first use

        rows, columns = data.shape
        copy = np.empty(data.shape, data.dtype)
        transposed_copy(data.T.reshape(-1), copy.reshape(-1), rows, columns)
        return copy
    return np.ascontiguousarray(data)


def _same_layout(data: np.ndarray) -> tuple:
    """``(out, flat data, flat out)`` for a compiled elementwise loop over a C- or F-ordered
    ``data``: ``out`` empty, of its layout, and both as flat views in memory order. The result
    keeps a transposed input's layout, as numpy's ufuncs and PyTorch do (a C-ordered result was
    contiguous where PyTorch's is not); other strided inputs take numpy's path, which keeps theirs."""
    # (np.empty and ravel("K"), views in memory order of contiguous arrays, cost 0.3 us where
    # empty_like and reshape(-1, order="A") cost 1.1: a fifth of a small relu's recording)
    out = np.empty(data.shape, data.dtype) if data.flags.c_contiguous else np.empty_like(data)
    return out, data.ravel("K"), out.ravel("K")


def _save(tape: Tape, row: int, data: np.ndarray) -> None:
    """``tape.save``, with a large transposed matrix (``a.t()``, F-ordered) copied in tiles."""
    if not data.flags.c_contiguous and data.ndim == 2 and row not in tape.saved:
        tape.save(row, c_ordered(data), data)
    else:
        tape.save(row, data)


def _input_row(tape: Tape, tensor: Tensor) -> int:
    """Row of ``tensor`` on ``tape``: its own, or its registration as a leaf or constant."""
    if tensor._base is not None and tensor._version_counter[0] != tensor._seen_version:
        from ._indexing import refresh_view  # a view whose storage changed in place since

        refresh_view(tensor)
    own = tensor._tape
    if own is not None and own is not tape and own.merged_into is not None:
        own = resolve(tensor)
    return tensor._row if own is tape else tape.register(tensor)


def _target(inputs) -> tuple:
    """Where an op on ``inputs`` is recorded, and whether its result requires grad.

    Eagerly, only an op on a tensor that requires grad (with grad mode on) is recorded, on its
    inputs' tape or a new one. Inside ``tapegrad.record`` every op is, on the recording's tape,
    so the replay can recompute everything; rows that need no gradient carry ``NO_GRAD``.
    """
    requires = False
    if _threads_disabled[0] == 0 or _grad_state.enabled:
        for tensor in inputs:
            if tensor._requires_grad:
                requires = True
                break
    if _recordings_active[0]:
        recording = _grad_state.recording
        if recording is not None:
            return recording, requires
    if not requires:
        return None, False
    tape = _tape_for(*inputs)
    if tape.n >= tape.collect_at:
        tape.collect()  # (where the callers hold no row number: ``_tape._COLLECTS_UNDER``)
    return tape, True


def _opcode(name: str, requires_grad: bool) -> int:
    return OPCODE[name] if requires_grad else OPCODE[name] | NO_GRAD


def _tape_for(*tensors) -> Tape:
    recorded = [t for t in tensors if t._tape is not None]
    if not recorded:
        return Tape()
    if len(recorded) == 1:
        tape = recorded[0]._tape
        return tape if tape.merged_into is None else resolve(recorded[0])
    return join(recorded)


# -- the short path ---------------------------------------------------------------------
# An eager op (grad mode on in every thread, no ``tapegrad.record`` running) on leaves,
# constants and recorded results needs none of the general path's cases (recording every op,
# refreshing views, tensors of a recording's tape): it goes from the operator to a packed row in
# one function, with the table's facts about the op looked up once. The general path still takes
# every other case, and these functions hand over to it by returning None.


class _Entry:
    """What recording needs of an op's table entry, looked up once: its opcode, its numpy
    forward, and which of its input a, input b and result the backward reads."""

    __slots__ = ("opcode", "forward", "into", "reads_a", "reads_b", "reads_out", "cross_a", "cross_b")

    def __init__(self, op):
        self.opcode = OPCODE[op.name]
        self.forward = op.forward
        # ``forward(a, b, out)``: a ufunc's, writing into a given array (None: not a ufunc)
        self.into = op.forward if isinstance(op.forward, np.ufunc) else None
        self.reads_a, self.reads_b, self.reads_out = op.reads("a"), op.reads("b"), op.reads("out")
        # a's value read only for b's gradient, and b's only for a's (``rules.CROSS_READS``)
        cross = CROSS_READS.get(op.rule, "").split()
        self.cross_a, self.cross_b = "a" in cross, "b" in cross

    def unread_a(self, b) -> bool:
        """Whether input a's value serves only b's gradient, which b does not take: a change
        of a in place then fails no backward (PyTorch does not save a)."""
        return self.cross_a and b is not None and not b._requires_grad

    def unread_b(self, a) -> bool:
        return self.cross_b and not a._requires_grad


_ENTRIES = {op.name: _Entry(op) for op in OPS}


def _short_tape(a: Tensor, b) -> Tape | None:
    """The tape an eager op on ``a`` (and ``b``, or None) appends to, when the short path
    applies to both; after it, an input with a tape is a recorded result on this one."""
    if type(a) is PendingView or type(b) is PendingView:
        return _settling_tape(a, b)
    tape_a = a._tape
    if tape_a is not None:
        if not a._requires_grad or (a._base is not None and a._version_counter[0] != a._seen_version):
            return None
        if tape_a.merged_into is not None:
            tape_a = resolve(a)
    if b is not None:
        tape_b = b._tape
        if tape_b is not None:
            if not b._requires_grad or (b._base is not None and b._version_counter[0] != b._seen_version):
                return None
            if tape_b.merged_into is not None:
                tape_b = resolve(b)
            if tape_a is None:
                tape_a = tape_b
            elif tape_b is not tape_a:
                tape_a = join((a, b))
    if tape_a is None:
        return Tape()
    if tape_a.n >= tape_a.collect_at:
        tape_a.collect()  # may renumber rows: the caller reads them only after this returns
    return tape_a


def _settling_tape(a: Tensor, b) -> Tape | None:
    """``_short_tape`` where ``a`` or ``b`` is a pending view (``_pending_views``): the other
    operand's tape, or a new one, with the pending views' rows written on it."""
    if (type(a) is PendingView and replaced(a)) or (type(b) is PendingView and replaced(b)):
        return None  # (the general path records such a view on a tape of its own)
    other = b if type(a) is PendingView else a
    if other is None or type(other) is PendingView:
        tape = Tape()
    else:
        tape = _short_tape(other, None)
        if tape is None:  # (the general path then records the views on tapes of their own)
            return None
    if type(a) is PendingView:
        settle(a, tape)
    if type(b) is PendingView:  # (``a`` itself, settled above, in ``a * a``)
        settle(b, tape)
    return tape


def _into_recording(a: Tensor, b=None) -> bool:
    """Whether an op on ``a`` (and ``b``) inside ``tapegrad.record`` may take the short path:
    no mode is on but this thread's recording, and each input is a result of that recording
    that requires grad. The short path then writes the rows the general one would (every input
    has its row, each saved value its version check), which ``tests/test_record_paths.py``
    compares."""
    if _special_modes[0] != _recordings_active[0]:
        return False
    recording = _grad_state.recording
    return (
        recording is not None
        and a._tape is recording
        and a._requires_grad
        and (b is None or (b._tape is recording and b._requires_grad))
    )


def _short_input(tape: Tape, tensor: Tensor, values) -> int:
    """The row of one input on the short path, saving ``values`` (the array the backward reads,
    or None) for it; -1 for a constant the backward never reads."""
    if tensor._tape is not None:
        row = tensor._row
    elif tensor._requires_grad or values is not None:
        row = tape.register(tensor)
    else:
        return -1
    if values is not None:
        if tensor._tape is None and values is tensor._data:
            tape.save_leaf(row, tensor)
        else:
            _save(tape, row, values)
    return row


def _short_record(name: str, a: Tensor, b, out: np.ndarray, saved: tuple, iparam: int, param: float, tape=None):
    """``record`` for one or two inputs on the short path; None when it does not apply.
    ``tape``: the one to record on, which the caller found with ``_short_tape``."""
    if tape is None:
        tape = _short_tape(a, b)
    if tape is None:
        return None
    entry = _ENTRIES[name]
    values_a = saved[0] if saved else None
    values_b = saved[1] if len(saved) > 1 else None
    row_a = _short_input(tape, a, values_a)
    row_b = -1 if b is None else _short_input(tape, b, values_b)
    row = tape.n
    if row == tape.capacity:
        tape._reserve(row + 1)
    _pack_row(tape.rows, row * ROW_BYTES, entry.opcode, row_a, row_b, iparam, tape.layout(out.dtype, out.shape), param)
    tape.n = row + 1
    result = _recorded(out, tape, row)
    if values_a is not None and not entry.unread_a(b):
        tape.track(row, row_a, a)
    if values_b is not None and not entry.unread_b(a):
        tape.track(row, row_b, b)
    if entry.reads_out:
        _save(tape, row, out)
        tape.track(row, row, result)
    return result


# Per (operand shape, result shape): the aux entries of the broadcast row between them. Bounded:
# a program whose shapes keep changing (varying sequence lengths) must not grow it for ever.
_BROADCAST_AUX: dict = {}
_BROADCAST_AUX_LIMIT = 1024


def _short_operand(tape: Tape, tensor: Tensor, out: np.ndarray, saved: bool) -> int:
    """``_operand_row`` on the short path, for an operand already of the result's dtype."""
    data = tensor._data
    if tensor._tape is not None:
        row = tensor._row
    elif tensor._requires_grad:
        row = tape.register(tensor)
    elif not saved:
        return -1
    elif data.shape == out.shape:
        row = tape.register(tensor)
        tape.save_leaf(row, tensor)
        return row
    else:
        return _operand_row(tape, tensor, data, out, saved, False)
    if data.shape != out.shape:
        row = _broadcast_row(tape, row, data, out)
        if saved:
            _save(tape, row, np.broadcast_to(data, out.shape))
    elif saved:
        if tensor._tape is None:
            tape.save_leaf(row, tensor)
        else:
            _save(tape, row, data)
    return row


# From this size a product by a broadcast operand saves the operand unbroadcast, which its rule
# reads repeated (``_repeated_operand``); below, the copy of the broadcast costs less than the
# rule's loop per repetition.
REPEATED_SIZE = 1 << 12
_REPEATS = ("mul", "div")  # the products' and quotients' rules read an operand repeated
REPEATED_PERIOD = 64


def _repeated_operand(tape: Tape, tensor: Tensor, out: np.ndarray) -> tuple:
    """``(row, saved row, period)`` of an operand of a product (or a divisor) on the short path.
    A broadcast over leading dimensions of a C-ordered value of ``period`` elements (``x * w``
    with ``w`` of shape ``(n,)`` or ``(1, n)`` and ``x`` of ``(..., n)``) keeps its broadcast
    row, for its gradient's sum, but saves the value it repeats under its source's row (the
    saved row); the product's rule reads it repeated (``backward._repeated_value``). Saved
    broadcast, it was a copy of the result's size, which ``a * b[0]`` at 512x1024 spent a tenth
    of its step on, and memory PyTorch (which saves ``b[0]``) never holds. Another operand is
    ``_short_operand``'s, saved under its own row, with period 0."""
    data = tensor._data
    shape = data.shape
    while shape and shape[0] == 1:
        shape = shape[1:]
    if (
        data.size < REPEATED_PERIOD
        or data.shape == out.shape
        or not data.flags.c_contiguous
        or out.shape[len(out.shape) - len(shape) :] != shape
        or not (tensor._tape is not None or tensor._requires_grad)
    ):
        row = _short_operand(tape, tensor, out, True)
        return row, row, 0
    source = tensor._row if tensor._tape is not None else tape.register(tensor)
    if tensor._tape is None:
        tape.save_leaf(source, tensor)
    else:
        _save(tape, source, data)
    return _broadcast_row(tape, source, data, out), source, data.size


def _broadcast_row(tape: Tape, row: int, data: np.ndarray, out: np.ndarray) -> int:
    """A hidden row broadcasting ``row`` (of ``data``'s shape) to ``out``'s shape."""
    key = (data.shape, out.shape)
    aux = _BROADCAST_AUX.get(key)
    if aux is None:
        if len(_BROADCAST_AUX) >= _BROADCAST_AUX_LIMIT:
            _BROADCAST_AUX.clear()
        offset, strides = broadcast_strides(data.shape, out.shape)
        aux = _BROADCAST_AUX[key] = (offset, *strides)
    return tape.append(_BROADCAST, row, -1, tape.add_aux(aux), tape.layout(out.dtype, out.shape), 0.0)


# From this size, a derivative is precomputed (below: the extra row and call cost more)
PRECOMPUTED_DERIVATIVE_SIZE = 1 << 12
# From this size, an op with a compiled forward (``Op.compiled_forward``: relu, sigmoid, sin...)
# runs it rather than numpy's calls, as the general replay does: sigmoid of 256 float32
# elements took 0.6 us so, 3.8 us in numpy's seven calls (the LSTM workload's step 2.67 ->
# 2.42 ms); relu of 512x1024 float32, 49 us against np.maximum's 227. Below, numpy's formula:
# a register program (rows of up to ``_register.MAX_ROW_ELEMENTS``) computes it, to eager's bit.
COMPILED_FORWARD_SIZE = 17


def _promote_row(tape: Tape, row: int, data: np.ndarray, flag: int) -> int:
    """A row of ``row``'s values as ``data``'s dtype: what an op reads when it reads its operand
    cast (an integer mask / 2). Read straight, a float32 op read an integer row (held in float64)
    from the other arena."""
    return tape.append(OPCODE["promote"] | flag, row, -1, 0, tape.layout(data.dtype, data.shape), 0.0)


def _nonzero_row(tape: Tape, row: int, out: np.ndarray) -> int:
    """A boolean row, ``row != 0``: ``x.bool()``, and boolean sums (True + True is True, a logical
    or, where the replay, holding booleans as float64, adds them to 2)."""
    return tape.append(OPCODE["ne"] | NO_GRAD, row, -1, 0, tape.layout(out.dtype, out.shape), 0.0)


def _unary(op, x: Tensor, _locked: bool = False) -> Tensor:
    if not _locked and count_threads() > pool_threads[0]:  # ``_tape.exclusive``, inlined: every op's path
        with LOCK:
            return _unary(op, x, True)
    if x._base is not None and on_tape(x):
        source = _transposed_source(x)
        if source is not None:  # an elementwise op of a transpose: of its source, transposed
            result = _unary(op, source)
            _bypass(x, reader=result)
            return transposed(result, op.grad_fn)
    data = x._data
    if data.dtype.kind == "b" and op.name in ("floor", "round"):  # numpy made float16 of it
        raise NotImplementedError(f"\"{op.name}_vml_cpu\" not implemented for 'Bool'")
    if data.dtype.kind == "b" and op.name == "abs":  # (numpy's abs of bools is the identity)
        raise NotImplementedError("\"abs_cpu\" not implemented for 'Bool'")
    if data.dtype.kind == "b" and op.name == "relu":
        raise RuntimeError("Boolean inputs not supported for relu")
    if data.dtype.kind == "b" and op.name == "sign":  # the sign of a bool is itself (numpy has no loop)
        return _wrap(data.copy())
    if data.dtype.kind != "f" and op.name not in ("neg", "abs", "relu", "sign", "floor", "round"):
        data = data.astype(_dtypes.DEFAULT_FLOAT.numpy)  # PyTorch's: the default dtype, not float32
    if (
        op.compiled_forward
        and data.size >= COMPILED_FORWARD_SIZE
        and data.dtype.kind == "f"
        and (data.flags.c_contiguous or data.flags.f_contiguous)
    ):
        out, flat_in, flat_out = _same_layout(data)
        _compiled_forward(op.name)(flat_in, flat_out)
    else:
        out = op.forward(data)
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    if (_special_modes[0] == 0 or _into_recording(x)) and (
        op.derivative is None or data.size < PRECOMPUTED_DERIVATIVE_SIZE
    ):
        if not x._requires_grad:
            return _wrap(out)
        entry = _ENTRIES[op.name]
        result = _short_record(op.name, x, None, out, (data,) if entry.reads_a else (), 0, 0.0)
        if result is not None:
            return result
    tape, requires = _target((x,))
    if tape is None:
        return _wrap(out)
    row_x = _input_row(tape, x)
    if data.dtype != x._data.dtype:  # exp of an integer row
        row_x = _promote_row(tape, row_x, data, NO_GRAD)
    layout = tape.layout(out.dtype, out.shape)
    if (
        requires
        and op.derivative is not None
        and data.size >= PRECOMPUTED_DERIVATIVE_SIZE
        and tape is not _grad_state.recording
    ):
        # in1 names a constant row holding d(out)/d(x); the rule then only multiplies.
        derivative_row = tape.append(OPCODE["constant"], -1, -1, 0, layout, 0.0)
        tape.save(derivative_row, np.ascontiguousarray(op.derivative(data)))
        row = tape.append(OPCODE[op.name], row_x, derivative_row, 0, layout, 0.0)
        result = _recorded(out, tape, row)
        # What PyTorch's node saves, by reference, with its version: a change in place fails the
        # backward, as PyTorch's, and create_graph's formulas read these values (recomputed from
        # the inputs, they read a leaf changed since)
        _save_single(tape, row, row_x, x, data, result, op.reads("a"), op.reads("out"))
        return result
    row = tape.append(_opcode(op.name, requires), row_x, -1, 0, layout, 0.0)
    result = _recorded(out, tape, row, requires)
    if requires:
        _save_single(tape, row, row_x, x, data, result, op.reads("a"), op.reads("out"))
    return result


_COMPILED_FORWARDS: dict = {}  # op name -> its ``forward_<name>`` kernel, once loaded


def _compiled_forward(name: str):
    """``generated.forward_<name>``, looked up once: the module look-up and the attribute by a
    formatted name cost 0.4 us an op."""
    kernel = _COMPILED_FORWARDS.get(name)
    if kernel is None:
        kernel = _COMPILED_FORWARDS[name] = getattr(load_kernels("generated"), f"forward_{name}")
    return kernel


def _save_single(tape: Tape, row: int, row_x: int, x: Tensor, data, result: Tensor, input_: bool, output: bool) -> None:
    """Save what a one-input row's backward reads: its input (``data``, the values of ``x`` as
    the op used them) and/or its result, each with the version it has now."""
    if input_:
        tape.save_leaf(row_x, x) if x._tape is None and data is x._data else _save(tape, row_x, data)
        tape.track(row, row_x, x)
    if output:
        _save(tape, row, result._data)
        tape.track(row, row, result)


# Tensor <kind> Python number (``x - 2``, or ``2 - x`` as "rsub"): the table op that records it.
_SCALAR_OP_OF_KIND = {
    "add": "add_scalar",
    "sub": "sub_scalar",
    "rsub": "rsub_scalar",
    "mul": "mul_scalar",
    "div": "div_scalar",
    "pow": "pow_scalar",
    "rpow": "rpow_scalar",
}
_REVERSED = {"rsub": "sub", "rdiv": "div", "rpow": "pow"}
_TWO_BOOL_SUBTRACTION = (
    "Subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or `logical_xor()` "
    "operator instead."
)
_BOOL_SUBTRACTION = (
    "Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying to invert a "
    "mask, use the `~` or `logical_not()` operator instead."
)


def _arith(kind: str, x: Tensor, other) -> Tensor:
    """``x <kind> other`` where ``other`` is a tensor, an array or a Python number."""
    if isinstance(other, np.generic):  # a number to PyTorch (np.bool_ is no numbers.Number)
        other = other.item()
    if isinstance(other, Tensor):
        return _binary(_REVERSED[kind], other, x) if kind in _REVERSED else _binary(kind, x, other)
    if isinstance(other, numbers.Number) and not isinstance(other, np.ndarray):
        if (kind == "sub" or kind == "rsub") and (type(other) is _bool or x._data.dtype.kind == "b"):
            # (a Python bool counts as a bool tensor there)
            both = type(other) is _bool and x._data.dtype.kind == "b"
            raise RuntimeError(_TWO_BOOL_SUBTRACTION if both else _BOOL_SUBTRACTION)
        if kind == "rdiv":  # 2 / x is recorded as PyTorch does: reciprocal, then times 2
            return _scalar(_MUL_SCALAR, _unary(BY_NAME["reciprocal"], x), other)
        return _scalar(_SCALAR_OPS[_SCALAR_OP_OF_KIND[kind]], x, other)
    if isinstance(other, np.ndarray):
        return _arith(kind, x, _wrap(as_array(other)))
    # A list or tuple is not an operand, as in PyTorch: ``[0] * t`` is then list repetition
    # (it was computed elementwise, silently), and ``t + [1, 2]`` Python's TypeError.
    return NotImplemented


# From these sizes, a float op of a C-ordered array and a row along its last dimension, and
# clamp by a number, run the compiled loops of ``_kernels/broadcast.py`` (numpy's broadcasting
# loop: half its plain speed; its maximum against a number: a third). Below, the call's own
# cost (~2 us) outweighs the gain (measured break-even points; a bias add at 32x128 took
# 13.5 -> 14.8 us with the row loop from 1,024 elements).
ROW_BROADCAST_SIZE = 1 << 14
CLAMP_COMPILED_SIZE = 1 << 13
_ROW_OPS = {"add": 0, "sub": 1, "mul": 2, "div": 3}  # broadcast.ADD, SUB, MUL, DIV


class _ScalarOp:
    """What the hot path needs of a scalar op's table entry, looked up once."""

    __slots__ = ("opcode", "forward", "saves_input", "saves_output")

    def __init__(self, name: str):
        op = BY_NAME[name]
        self.opcode = OPCODE[name]
        self.forward = op.forward
        self.saves_input = op.reads("a")
        self.saves_output = op.reads("out")


_SCALAR_OPS = {op.name: _ScalarOp(op.name) for op in OPS if op.family == SCALAR}
_ADD_SCALAR, _SUB_SCALAR, _MUL_SCALAR, _DIV_SCALAR, _POW_SCALAR = (
    _SCALAR_OPS[name] for name in ("add_scalar", "sub_scalar", "mul_scalar", "div_scalar", "pow_scalar")
)


def _scalar(op: _ScalarOp, x: Tensor, scalar, _locked: bool = False) -> Tensor:
    """``x <op> scalar`` for a Python number: the hot path of ``y = y * 1.001`` loops."""
    if not _locked and count_threads() > pool_threads[0]:  # ``_tape.exclusive``, inlined: every op's path
        with LOCK:
            return _scalar(op, x, scalar, True)
    data = x._data
    if data.dtype.kind != "f" or type(scalar) is _bool:
        result_type = _dtypes.scalar_result_type(_dtypes.from_numpy_dtype(data.dtype), scalar).numpy
        if op.forward is np.divide and result_type.kind != "f":  # true division, as in PyTorch
            result_type = _dtypes.DEFAULT_FLOAT.numpy
        if data.dtype != result_type:
            data = data.astype(result_type)
        if type(scalar) is _int:
            if result_type.kind in "iu":
                scalar = _integer_scalar(op, scalar, result_type)
            else:
                _dtypes.readable_int(scalar)
        out = np.asarray(op.forward(data, scalar)).astype(result_type, copy=False)
    elif (
        (op.forward is np.maximum or op.forward is np.minimum)
        and data.size >= CLAMP_COMPILED_SIZE
        and (type(scalar) is _float or type(scalar) is _int)
        and (data.flags.c_contiguous or data.flags.f_contiguous)
    ):
        out, flat_in, flat_out = _same_layout(data)
        load_kernels("broadcast").clamp_scalar(flat_in, _float(scalar), flat_out, op.forward is np.minimum)
    else:
        out = op.forward(data, scalar)
        if type(out) is not np.ndarray:  # numpy returns a scalar for 0-d input
            out = np.asarray(out)
    tape, requires = _target((x,))
    if tape is None:
        return _wrap(out)
    row_x = _input_row(tape, x)
    if data.dtype != x._data.dtype:
        row_x = _promote_row(tape, row_x, data, 0 if requires else NO_GRAD)
    opcode = op.opcode if requires else op.opcode | NO_GRAD
    row = tape.append(opcode, row_x, -1, 0, tape.layout(out.dtype, out.shape), scalar)
    if out.dtype.kind == "b" and op.forward is np.add:  # mask + True
        row = _nonzero_row(tape, row, out)
    result = _recorded(out, tape, row, requires)
    if requires:
        _save_single(tape, row, row_x, x, data, result, op.saves_input, op.saves_output)
    return result


def _integer_scalar(op: _ScalarOp, scalar: int, result_type: np.dtype) -> int:
    """A Python int operand of an integer op, as PyTorch converts it to the op's type: wrapped
    for arithmetic (``uint8 + -3`` adds 253); checked for a clamp bound or an exponent (``uint8
    ** 300`` raises; a negative exponent raises in ``_ops._power`` first)."""
    if op is _POW_SCALAR:
        return scalar if scalar < 0 else _dtypes.checked_int(scalar, result_type)
    if op in _CLAMP_SCALAR_OPS:
        return _dtypes.checked_int(scalar, result_type)
    return _dtypes.wrapped_int(scalar, result_type)


_CLAMP_SCALAR_OPS = tuple(_SCALAR_OPS[name] for name in ("clamp_min", "clamp_max", "clamp_lower"))


def broadcast_shape(shape_a: tuple, shape_b: tuple) -> tuple:
    """The shape both broadcast to; PyTorch's ``RuntimeError`` (``broadcast_error``) if none."""
    try:
        return np.broadcast_shapes(shape_a, shape_b)
    except ValueError:
        raise broadcast_error(shape_a, shape_b) from None


def broadcast_error(shape_a: tuple, shape_b: tuple) -> RuntimeError:
    for offset in range(1, max(len(shape_a), len(shape_b)) + 1):
        size_a = shape_a[-offset] if offset <= len(shape_a) else 1
        size_b = shape_b[-offset] if offset <= len(shape_b) else 1
        if size_a != size_b and size_a != 1 and size_b != 1:
            dim = max(len(shape_a), len(shape_b)) - offset
            return RuntimeError(
                f"The size of tensor a ({size_a}) must match the size of tensor b ({size_b}) at non-singleton dimension {dim}"
            )
    return RuntimeError(f"shapes {shape_a} and {shape_b} cannot be broadcast")


# Below this many elements the transposed copies and accumulations cost less than the rewrite's
# checks and its extra row (4x8: 1.85x PyTorch's time through the views, 1.90x rewritten).
TRANSPOSED_SOURCE_SIZE = 1 << 12


# Nonzero while an in-place change of a view computes its new value (``_changed``): the value is
# then read through the view's own row. Read through the transpose's source, the source's
# storage was saved for the backward and overwritten by the change itself, which
# ``_unsave_old_value`` (which copies what the view's row saved) did not see: the backward
# raised PyTorch's "modified by an inplace operation" where PyTorch runs.
_CHANGING_A_VIEW = [0]


def may_be_transposed(x: Tensor) -> bool:
    """The cheap half of ``_transposed_source``'s test: a view of a large non-C-ordered matrix
    (what a caller can ask before touching any tape)."""
    return x._base is not None and read_in_place(x._data)


def read_in_place(data: np.ndarray) -> bool:
    """Whether an op reads matrix ``data`` (a transpose) through its source rather than as a row
    of its own: it is large (below ``TRANSPOSED_SOURCE_SIZE`` the extra row and copy cost less)
    and not C-ordered, and no view is being changed in place."""
    return (
        data.size >= TRANSPOSED_SOURCE_SIZE
        and data.ndim == 2
        and not data.flags.c_contiguous
        and not _CHANGING_A_VIEW[0]
    )


def _transposed_source(x: Tensor) -> Tensor | None:
    """The tensor ``x`` reads transposed, when ``x`` is a transpose (``a.t()``, ``a.T``,
    ``a.transpose(0, 1)``) of all of a C-contiguous 2-D ``a``, unchanged in place since, whose
    gradient no hook or retain_grad asks for; else None.

    Elementwise ops and reductions commute with a transpose: ``a.t() * b.t()`` is
    ``(a * b).t()``. Computed so, every row is contiguous: the gradient slots are C-ordered, and
    through the views a transposed operand cost a copy to save it and a transposed accumulation
    back into its source (``a.t() * b.t()`` at 128x512: 3-4x PyTorch's time)."""
    base = x._base
    data = x._data
    if type(x) is PendingView and _special_modes[0] == 0:  # a view of a leaf, and no row yet
        return _pending_source(x, base, data)
    if (
        not may_be_transposed(x)
        or x._tape is None  # a view made a leaf (requires_grad_() on it): its gradient is its own
        or x._version_counter[0] != x._seen_version
        or x._hooks is not None
        or x._retains_grad
        or base._requires_grad != x._requires_grad
        or not _grad_state.enabled  # nothing is recorded: nothing to gain, and nothing bypassed
    ):
        return None
    source = base._data
    if source.shape != data.shape[::-1] or source.strides != data.strides[::-1] or not source.flags.c_contiguous:
        return None
    # Both start where the buffer does when ``data`` is a view of ``source`` owning it (of its
    # size): no ``__array_interface__``, which cost 1 us each here.
    owned = data.base is source and source.base is None
    if not owned and address_of(source) != data.__array_interface__["data"][0]:
        return None
    # ``_base`` is the root of a chain of views: the transpose must read the root itself, or the
    # views between (``a[:]``, ``a.view_as(a)``, which autograd.functional and vmap make) would
    # lose their gradients.
    tape = resolve(x)
    row = tape.ints[x._row * ROW_WIDTH + IN0]
    if base._tape is not None:
        if resolve(base) is not tape or base._row != row:
            return None
    elif tape.registered.get(id(base)) != row:
        return None
    if tape.hooks.get(x._row):
        return None
    return base


def _pending_source(x: Tensor, base: Tensor, data: np.ndarray) -> Tensor | None:
    """``_transposed_source`` of a pending view: its leaf, under the same conditions, where no
    row can differ (the view is of the leaf itself, and has no hooks: those settle it)."""
    if (
        not may_be_transposed(x)
        or x._version_counter[0] != x._seen_version
        or x._hooks is not None
        or x._retains_grad
        or not base._requires_grad
    ):
        return None
    source = base._data
    if source.shape != data.shape[::-1] or source.strides != data.strides[::-1] or not source.flags.c_contiguous:
        return None
    if not (data.base is source and source.base is None) and address_of(source) != data.__array_interface__["data"][0]:
        return None  # (``.data`` replaced since: the view reads the old storage)
    return base


def _bypass(*views: Tensor, reader: Tensor | None = None) -> None:
    """Note that ops read ``views`` through their sources (``Tape.bypassed``), and that
    ``reader``'s row, computed on the sources, read them there (``Tape.read_through``)."""
    for view in views:
        if type(view) is PendingView:
            _bypass_pending(view)
        elif view._tape is not None:
            resolve(view).bypass(view._row)
    if reader is not None and reader._tape is not None:
        resolve(reader).reads_through(reader._row)


@exclusive
def transposed(hidden: Tensor, grad_fn: str) -> Tensor:
    """``hidden.t()`` for a result computed on untransposed operands (``_transposed_source``):
    a view row of ``hidden``, which the user never sees, shown as ``grad_fn`` (the op PyTorch
    shows) and, as PyTorch's result, not a view (``_base`` None)."""
    data = hidden._data.T
    if hidden._tape is None:
        return _wrap(data)
    tape = resolve(hidden)
    requires = hidden._requires_grad
    aux = tape.add_aux((0, 1, hidden._data.shape[1]))  # offset, then the strides of the transpose
    row = tape.append(_opcode("t", requires), hidden._row, -1, aux, tape.layout(data.dtype, data.shape), 0.0)
    result = _recorded(data, tape, row, requires)
    counter = hidden._version_counter
    if counter is None:
        counter = hidden._version_counter = [0]
    result._version_counter = counter  # in-place changes of the result reach the hidden row's savers
    return name_node(result, grad_fn)


def _row_broadcast(name: str, data_a: np.ndarray, data_b: np.ndarray) -> np.ndarray | None:
    """``data_a <name> data_b`` (one float dtype) when one is a C-ordered array ``(..., m)`` of at
    least ``ROW_BROADCAST_SIZE`` elements and the other a contiguous ``(m,)``, or of the same
    rank, with 1 everywhere but a run of the array's own extents before its last dimension
    (``_channel_broadcast``); else None."""
    if data_a.ndim == data_b.ndim:
        return _channel_broadcast(name, data_a, data_b)
    if data_a.ndim != 1 and data_b.ndim != 1:
        return None
    row_first = data_a.ndim == 1
    matrix, row = (data_b, data_a) if row_first else (data_a, data_b)
    if (
        matrix.size < ROW_BROADCAST_SIZE
        or matrix.shape[-1] != row.shape[0]
        or not matrix.flags.c_contiguous
        or not row.flags.c_contiguous
    ):
        return None
    out = np.empty(matrix.shape, matrix.dtype)
    load_kernels("broadcast").row_binary(_ROW_OPS[name], matrix.reshape(-1), row, out.reshape(-1), row_first)
    return out


# The least block of elements one value of a middle broadcast covers, for the compiled loop: a
# conv2d's bias over 14x14 planes (196) is numpy's slow loop at 1.8 ns an element, the loop's
# 0.3; blocks of a few elements cost the loop its vectors.
CHANNEL_BLOCK = 16


def _channel_broadcast(name: str, data_a: np.ndarray, data_b: np.ndarray) -> np.ndarray | None:
    """``_row_broadcast`` for operands of one rank, one of them with extents of 1 but for a run
    of dimensions ``[first, last)`` ending before the last dimension, where it has the other's
    extents: (N, C, H, W) and (1, C, 1, 1). None where that is not the case."""
    values_first = data_a.size < data_b.size
    matrix, values = (data_b, data_a) if values_first else (data_a, data_b)
    if matrix.size < ROW_BROADCAST_SIZE or not matrix.flags.c_contiguous or not values.flags.c_contiguous:
        return None
    kept = [d for d, extent in enumerate(values.shape) if extent != 1]
    if not kept or kept[-1] >= matrix.ndim - 1 or kept != list(range(kept[0], kept[-1] + 1)):
        return None
    if any(values.shape[d] != matrix.shape[d] for d in kept):
        return None
    inner = math.prod(matrix.shape[kept[-1] + 1 :])
    if inner < CHANNEL_BLOCK:
        return None
    out = np.empty(matrix.shape, matrix.dtype)
    load_kernels("broadcast").channel_binary(
        _ROW_OPS[name], matrix.reshape(-1), values.reshape(-1), out.reshape(-1), inner, values_first
    )
    return out


# A temporary's storage written over by the op that consumes it, as numpy does for
# ``x * y + sin(x)`` (``temp_elision.c``): the sum lands in the product's buffer. A fresh buffer of
# that size was a tenth of the big step's time (its pages taken and written anew). From numpy's
# threshold, 256 KiB, below which an allocation is cheap.
ELIDE_BYTES = 1 << 18
_BINARY_OP = dis.opmap["BINARY_OP"]
_getrefcount = sys.getrefcount


def _temporary(a: Tensor, b: Tensor, name: str) -> bool:
    """Whether ``a <name> b``, called from ``a``'s operator, may write into ``a``'s storage:
    ``a`` is an unnamed intermediate (the interpreter's stack and the operator's argument hold
    it, nothing else), its array is its own and nobody else's (no view, no saved value, no
    ``retain_grad``), it has the result's dtype, shape and layout, and the op's backward never
    reads ``a``'s value. The caller's frame must be at a ``BINARY_OP``: called from C code
    (``operator.add``, ``sum``), a variable of the C code's own may hold ``a`` with the same
    count, and the values would change under it. (numpy checks the C stack for the same reason.
    C code that adds a tensor only it holds, without a reference of its own, from a frame at a
    ``BINARY_OP`` still passes this check: numpy's object-dtype loops do, for ``o + p`` of object
    arrays of tensors, and ``o``'s first tensor then takes the sum.)"""
    data = a._data
    if (
        data.nbytes < ELIDE_BYTES
        or _getrefcount(a) != 4  # the stack, the operator's and this frame's arguments, getrefcount's
        or _getrefcount(data) != 3  # ``a._data``, ``data`` here, getrefcount's argument
        or (a._tape is None and a._requires_grad)  # a leaf: its values are the gradient's point
        or a._base is not None
        or data.base is not None
        or not data.flags.c_contiguous
        or not data.flags.writeable
        or data.dtype is not b._data.dtype
        or data.dtype.kind != "f"
        or b._data.ndim > data.ndim
        or _recordings_active[0]  # (a recording's replay computes every row again)
    ):
        return False
    entry = _ENTRIES.get(name)
    if entry is None or not isinstance(entry.forward, np.ufunc) or (entry.reads_a and not entry.unread_a(b)):
        return False
    if broadcast_shape(data.shape, b._data.shape) != data.shape:
        return False
    caller = sys._getframe(2)
    return caller.f_code.co_code[caller.f_lasti] == _BINARY_OP


def _binary(name: str, a: Tensor, b: Tensor, _locked: bool = False, into_a: bool = False) -> Tensor:
    """``a <name> b`` for two tensors, broadcast and promoted as PyTorch does."""
    if not _locked and count_threads() > pool_threads[0]:  # ``_tape.exclusive``, inlined: every op's path
        with LOCK:
            return _binary(name, a, b, True, into_a)
    if a._base is not None and b._base is not None and (on_tape(a) or on_tape(b)):
        source_a = _transposed_source(a)
        source_b = None if source_a is None else _transposed_source(b)
        if source_b is not None:
            result = _binary(name, source_a, source_b)
            _bypass(a, b, reader=result)
            return transposed(result, BY_NAME[name].grad_fn)
    data_a, data_b = a._data, b._data
    dtype = data_a.dtype
    if data_b.dtype is not dtype or dtype.kind != "f":
        return _promoted_binary(name, a, b)
    entry = _ENTRIES[name]
    out = None
    if (data_a.size >= ROW_BROADCAST_SIZE or data_b.size >= ROW_BROADCAST_SIZE) and name in _ROW_OPS:
        out = _row_broadcast(name, data_a, data_b)
    if out is None:
        try:
            out = entry.forward(data_a, data_b, out=data_a) if into_a else entry.forward(data_a, data_b)
        except ValueError:
            raise broadcast_error(data_a.shape, data_b.shape) from None
    if type(out) is not np.ndarray or out.dtype is not dtype:
        out = np.asarray(out, dtype)
    if _special_modes[0] == 0:
        if not (a._requires_grad or b._requires_grad):
            return _wrap(out)
        tape = _short_tape(a, b)
        if tape is not None:
            if name in _REPEATS and out.size >= REPEATED_SIZE and data_a.shape != data_b.shape:
                if name == "mul":
                    row_a, saved_a, period_a = _repeated_operand(tape, a, out)
                else:  # a divisor only: x / std, x / norm
                    row_a = saved_a = _short_operand(tape, a, out, entry.reads_a)
                    period_a = 0
                row_b, saved_b, period_b = _repeated_operand(tape, b, out)
                iparam = period_a << PERIOD_BITS | period_b
            else:
                row_a = saved_a = _short_operand(tape, a, out, entry.reads_a)
                row_b = saved_b = _short_operand(tape, b, out, entry.reads_b)
                iparam = 0
            row = tape.append(entry.opcode, row_a, row_b, iparam, tape.layout(dtype, out.shape), 0.0)
            result = _recorded(out, tape, row)
            # (a repeated operand's saved value is its source's: PyTorch's error names that one)
            if entry.reads_a and not entry.unread_a(b):
                tape.track(row, saved_a, a)
            if entry.reads_b and not entry.unread_b(a):
                tape.track(row, saved_b, b)
            if entry.reads_out:
                _save(tape, row, out)
                tape.track(row, row, result)
            return result
    return _record_binary(name, a, b, data_a, data_b, out)


def _promoted_binary(name: str, a: Tensor, b: Tensor) -> Tensor:
    """``_binary`` for operands of different dtypes or of an integer or boolean dtype."""
    op = BY_NAME[name]
    data_a, data_b = a._data, b._data
    result = data_a.dtype
    if data_b.dtype is not result:
        result = _dtypes.result_type(
            _dtypes.from_numpy_dtype(result), data_a.ndim, _dtypes.from_numpy_dtype(data_b.dtype), data_b.ndim
        ).numpy
    if name == "div" and result.kind != "f":
        result = np.dtype(_dtypes.DEFAULT_FLOAT.numpy)  # true division of integers: the default dtype
    if name == "sub" and "b" in (data_a.dtype.kind, data_b.dtype.kind):  # (numpy's TypeError named numpy)
        if result.kind == "b":
            raise RuntimeError(_TWO_BOOL_SUBTRACTION)
        raise RuntimeError(_BOOL_SUBTRACTION)
    if name == "pow" and result.kind == "b":  # (numpy's power of bools is their and)
        raise NotImplementedError("\"pow\" not implemented for 'Bool'")
    if data_a.dtype != result:
        data_a = data_a.astype(result)
    if data_b.dtype != result:
        data_b = data_b.astype(result)
    try:
        out = np.asarray(op.forward(data_a, data_b))
    except ValueError:
        raise broadcast_error(data_a.shape, data_b.shape) from None
    if out.dtype != result:
        out = out.astype(result)
    recorded = _record_binary(name, a, b, data_a, data_b, out)
    if result.kind == "b" and name == "add" and recorded._tape is not None:  # mask + mask
        tape = resolve(recorded)
        return _recorded(out, tape, _nonzero_row(tape, recorded._row, out), False)
    return recorded


def _record_binary(name: str, a: Tensor, b: Tensor, data_a: np.ndarray, data_b: np.ndarray, out: np.ndarray) -> Tensor:
    """Record ``a <name> b`` (``out``) on the general path; ``data_a``, ``data_b``: the operands
    as the op used them (promoted)."""
    entry = _ENTRIES[name]
    tape, requires = _target((a, b))
    if tape is None:
        return _wrap(out)
    saves_a, saves_b, saves_out = requires and entry.reads_a, requires and entry.reads_b, requires and entry.reads_out
    replaying = tape is _grad_state.recording
    row_a = _operand_row(tape, a, data_a, out, saves_a, replaying)
    row_b = _operand_row(tape, b, data_b, out, saves_b, replaying)
    opcode = entry.opcode if requires else entry.opcode | NO_GRAD
    row = tape.append(opcode, row_a, row_b, 0, tape.layout(out.dtype, out.shape), 0.0)
    result = _recorded(out, tape, row, requires)
    if saves_a and (replaying or not entry.unread_a(b)):
        tape.track(row, row_a, a)
    if saves_b and (replaying or not entry.unread_b(a)):
        tape.track(row, row_b, b)
    if saves_out:
        _save(tape, row, out)
        tape.track(row, row, result)
    return result


def _operand_row(tape: Tape, tensor: Tensor, data: np.ndarray, out: np.ndarray, saved: bool, replaying: bool) -> int:
    """The row feeding one operand of an elementwise op, after implicit promotion and broadcast.

    Eagerly, a constant that the backward never reads needs no row at all (-1); inside
    ``tapegrad.record`` (``replaying``) every operand has one. Promotion and broadcast of a
    recorded operand become hidden rows, so their gradients are cast back and summed over the
    broadcast dimensions by the same rules as explicit ``to`` and ``expand``.
    """
    if (
        tensor._tape is tape
        and data is tensor._data
        and data.shape == out.shape
        and (tensor._base is None or tensor._version_counter[0] == tensor._seen_version)
    ):
        # The commonest operand inside a recording: a result on this tape (or a view of one, not
        # changed in place since: unbind's pieces), of the result's dtype and shape (a scalar
        # graph's every operand), which needs its row and nothing else.
        if saved:
            _save(tape, tensor._row, data)
        return tensor._row
    if tensor._base is not None and tensor._version_counter[0] != tensor._seen_version:
        from ._indexing import refresh_view  # a view whose storage changed in place since

        refresh_view(tensor)  # (a captured view of a captured tensor changed inside a recording)
    if tensor._tape is None and not tensor._requires_grad:
        if not (saved or replaying):
            return -1
        if data is tensor._data and data.shape == out.shape:
            row = tape.register(tensor)
            tape.save_leaf(row, tensor)
        else:
            row = tape.append(OPCODE["constant"], -1, -1, 0, tape.layout(out.dtype, out.shape), 0.0)
            _save(tape, row, np.broadcast_to(data, out.shape))
        return row
    row = _input_row(tape, tensor)
    flag = 0 if tensor._requires_grad else NO_GRAD
    if data is not tensor._data:
        row = _promote_row(tape, row, data, flag)
    if data.shape != out.shape:
        offset, strides = broadcast_strides(data.shape, out.shape)
        aux = tape.add_aux((offset, *strides))
        row = tape.append(OPCODE["broadcast"] | flag, row, -1, aux, tape.layout(out.dtype, out.shape), 0.0)
        if saved:  # np.broadcast_to costs ~3 us: only for a value the backward reads
            data = np.broadcast_to(data, out.shape)
    if saved:
        _save(tape, row, data)
    return row


def record(
    name: str, inputs: tuple, out: np.ndarray, saved: tuple = (), iparam: int = 0, param: float = 0.0, _locked=False,
    aux: tuple = (),
) -> Tensor:  # fmt: skip
    """Record ``name`` producing ``out`` from ``inputs`` (tensors) when ``_target`` says so.

    ``saved`` pairs up with ``inputs``: the array the backward reads for each one, or None.
    ``aux``: integers the row's rule reads from the tape's aux table (``Op.params_in_aux``),
    where ``iparam`` then points.
    """
    if not _locked and count_threads() > pool_threads[0]:  # ``_tape.exclusive``, inlined: every op's path
        with LOCK:
            return record(name, inputs, out, saved, iparam, param, True, aux)
    if 0 < len(inputs) <= 2 and (
        _special_modes[0] == 0 or _into_recording(inputs[0], inputs[1] if len(inputs) == 2 else None)
    ):
        a = inputs[0]
        b = inputs[1] if len(inputs) == 2 else None
        if not (a._requires_grad or (b is not None and b._requires_grad)):
            return _wrap(out)
        if aux:
            tape = _short_tape(a, b)
            if tape is not None:
                return _short_record(name, a, b, out, saved, tape.add_aux(aux), param, tape)
        else:
            result = _short_record(name, a, b, out, saved, iparam, param)
            if result is not None:
                return result
    tape, requires = _target(inputs)
    if tape is None:
        return _wrap(out)
    if aux:
        iparam = tape.add_aux(aux)
    replaying = tape is _grad_state.recording
    rows = []
    for i, tensor in enumerate(inputs):
        needed = replaying or tensor._requires_grad or (saved and saved[i] is not None)
        rows.append(_input_row(tape, tensor) if needed else -1)
    if requires:
        for i, values in enumerate(saved):
            if values is None:
                continue
            if inputs[i]._tape is None and values is inputs[i]._data:
                tape.save_leaf(rows[i], inputs[i])
            else:
                _save(tape, rows[i], values)
    in0 = rows[0] if rows else -1
    in1 = rows[1] if len(rows) > 1 else -1
    row = tape.append(_opcode(name, requires), in0, in1, iparam, tape.layout(out.dtype, out.shape), param)
    result = _recorded(out, tape, row, requires)
    if requires:
        entry = _ENTRIES[name]
        for i, values in enumerate(saved):
            if values is None:
                continue
            if len(inputs) == 2 and not replaying:  # a value read only for a gradient nobody takes
                if entry.unread_a(inputs[1]) if i == 0 else entry.unread_b(inputs[0]):
                    continue
            tape.track(row, rows[i], inputs[i])
        if BY_NAME[name].reads("out"):
            _save(tape, row, out)
            tape.track(row, row, result)
    return result


@exclusive
def _cast(x: Tensor, target: _dtypes.dtype) -> Tensor:
    if x._data.dtype == target.numpy:
        return x
    out = x._data.astype(target.numpy)
    if target.category != _dtypes.FLOATING:
        if _grad_state.recording is not None and on_tape(x):
            # Inside tapegrad.record the result must follow x at replay, or it is a constant
            # there (``x * (x > 0).long()`` replayed with the recording's mask). Booleans and
            # integers keep their values, held as float64 by the replay: a copy row. Other casts
            # (truncation) are not replayed: the tape checks x's value instead, as a read.
            source = x._data.dtype.kind
            if out.dtype.kind == "b" and source == "f":  # x.bool() is x != 0: a comparison row
                tape = _grad_state.recording
                return _recorded(out, tape, _nonzero_row(tape, _input_row(tape, x), out), False)
            # (Only to the integer dtypes a tape holds: uint8's wraparound, say, a float64 replay
            # of later arithmetic would not reproduce.)
            if out.dtype in DTYPE_CODES and (source == "b" or (source in "iu" and out.dtype.kind in "iu")):
                return record("mask", (x,), out)
            _guard(x, f"{target.name}()")
        return _wrap(out)
    return record("cast", (x,), out)


def write_out(name: str, result: Tensor, out: Tensor | None, differentiable: bool = False) -> Tensor:
    """``result``, or, given ``out=``, ``out`` holding its values (resized when its shape differs,
    as PyTorch resizes it). Raises PyTorch's ``RuntimeError`` when gradients are involved:
    functions with ``out=`` do not record, but for the ``differentiable`` few, whose ``out``
    becomes a copy of ``result`` on its graph (``CopyBackwards``); and for a result its dtype
    cannot take (a float into an integer, an integer into bool, as PyTorch's ``canCast``)."""
    if out is None:
        return result
    have, want = result._data.dtype, out._data.dtype
    if out._data.size and out._data.shape != result._data.shape:
        warnings.warn(
            f"An output with one or more elements was resized since it had shape {list(out._data.shape)}, which does "
            f"not match the required output shape {list(result._data.shape)}. This behavior is deprecated, and in a "
            "future PyTorch release outputs will not be resized unless they have zero elements. You can explicitly "
            "reuse an out tensor t by resizing it, inplace, to zero elements with t.resize_(0).",
            stacklevel=3,
        )
    if (have.kind == "f" and want.kind in "iub") or (have.kind != "b" and want.kind == "b"):
        raise RuntimeError(
            f"result type {_dtypes.from_numpy_dtype(have).type_name} can't be cast to the desired output type "
            f"{_dtypes.from_numpy_dtype(want).type_name}"
        )
    if result._requires_grad or out._requires_grad:
        if not differentiable:
            raise RuntimeError(
                f"{name}(): functions with out=... arguments don't support automatic differentiation, but one of "
                "the arguments requires grad."
            )
        if out._data.shape != result._data.shape:
            out._data = np.zeros(result._data.shape, want)
        return name_node(out.copy_(result), "CopyBackwards")
    if out._data.shape == result._data.shape:
        out._data[...] = result._data
    else:
        out._data = np.array(result._data, dtype=want)
    _bump_version(out)
    return out


def with_out(name: str, differentiable: bool = False):
    """Decorate a function whose ``out=`` (a tensor, or a tuple of them for a function returning
    several; keyword or, where the function's signature has it among its positional parameters,
    positional) receives its results, as ``write_out`` fills one: the function computes as
    without it. ``name``: the op PyTorch's message names; ``differentiable`` for the few whose
    ``out`` PyTorch lets take a gradient (``tensordot``, ``inner``: a copy on the graph)."""

    def decorate(function):
        code = function.__code__
        positional = code.co_varnames[: code.co_argcount]
        at = positional.index("out") if "out" in positional else None

        @functools.wraps(function)
        def call(*args, out=None, **kwargs):
            if at is not None and len(args) > at:  # out passed by position
                out, args = args[at], args[:at] + args[at + 1 :]
            result = function(*args, **kwargs)
            if out is None:
                return result
            if isinstance(result, Tensor):
                return write_out(name, result, out, differentiable)
            if not isinstance(out, (tuple, list)) or len(out) != len(result):
                raise TypeError(f"{name}(): argument 'out' must be a tuple of {len(result)} Tensors")
            filled = [write_out(name, value, target, differentiable) for value, target in zip(result, out)]
            return type(result)(*filled) if type(result) is not tuple else tuple(filled)

        return call

    return decorate


def _bump_version(tensor: Tensor, op_label: str | None = None) -> None:
    """Count an in-place change. ``op_label`` names the op that made it ("Add" for ``add_``),
    which PyTorch's error message reports as the tensor's producer."""
    counter = tensor._version_counter
    if counter is None:  # no view or saver watches it yet: its own counter, at 1 (PyTorch's _version)
        counter = tensor._version_counter = [0]
    counter[0] += 1
    if op_label is not None:
        counter[1:] = [op_label]
    inplace_epoch[0] += 1
    if write_watchers:
        for watch in write_watchers:
            watch(tensor)
    recording = active_recording()
    if recording is not None and recording.shared is not None:
        recording.shared.wrote(tensor)


# PyTorch's message for an in-place change of a leaf that requires grad, kept here once: vmap tells
# this error from the others by it (its recording's inputs are such leaves).
LEAF_IN_PLACE = "a leaf Variable that requires grad is being used in an in-place operation."
VIEW_OF_LEAF_IN_PLACE = "a view of a leaf Variable that requires grad is being used in an in-place operation."

# A view's PyTorch CreationMeta other than DEFAULT (``Tensor._view_meta``): made by a function
# returning several views, or made under no_grad. A change of it in place that autograd would
# record is refused: the view's node cannot follow it (one node serves all the outputs), or it
# is ambiguous whether the change is meant to be tracked.
MULTI_OUTPUT, NO_GRAD_MODE, CUSTOM_FUNCTION = "multi-output", "no_grad", "custom-function"
_MULTI_OUTPUT_ADVICE = (
    " This view is the output of a function that returns multiple views. Such functions do not allow the output "
    "views to be modified inplace. You should replace the inplace operation by an out-of-place one."
)
_CUSTOM_FUNCTION_ADVICE = (
    " This view was created inside a custom Function (or because an input was returned as-is) and the autograd "
    "logic to handle view+inplace would override the custom backward associated with the custom Function, leading "
    "to incorrect gradients. This behavior is forbidden. You can fix this by cloning the output of the custom "
    "Function."
)
_NO_GRAD_ADVICE = (
    " Given that this use case is ambiguous and error-prone, it is forbidden. You can clarify your code by moving "
    "both the view and the inplace either both inside the no_grad block (if you don't want the inplace to be "
    "tracked) or both outside (if you want the inplace to be tracked)."
)


def refuse_view_change(view: Tensor, rebased: bool = False) -> None:
    """Raise PyTorch's RuntimeError (``handle_view_on_rebase``) for a change of ``view`` in place,
    or with ``rebased`` for a use of it after its base changed, when the view's creation forbids
    it. The caller has found that autograd would record the change (grad mode, and the result
    requires grad)."""
    kind, number, node = view._view_meta
    what = "its base or another view of its base has been" if rebased else "is being"
    if node is not None:
        of_a_view = " of a view which was created in no_grad mode and" if kind == NO_GRAD_MODE else " and"
        message = f"Output {number} of {node.removesuffix('Backward0')} is a view{of_a_view} {what} modified inplace"
    else:
        message = f"A view was created in no_grad mode and {what} modified inplace"
    if kind == NO_GRAD_MODE or node is None:
        message += " with grad mode enabled"
    advice = {NO_GRAD_MODE: _NO_GRAD_ADVICE, CUSTOM_FUNCTION: _CUSTOM_FUNCTION_ADVICE}.get(kind, _MULTI_OUTPUT_ADVICE)
    raise RuntimeError(message + "." + advice)


def writable(data: np.ndarray) -> np.ndarray:
    """``data``, or where it is a read-only view of writable memory (a slice of an expand whose
    own elements do not overlap: ``_check_in_place`` refused the others), a writable view of
    the same elements: PyTorch writes through such a view to its base."""
    if data.flags.writeable:
        return data
    root = data
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not root.flags.writeable:
        return data  # (numpy's error follows, as for any read-only array)
    offset = data.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return np.ndarray(data.shape, data.dtype, buffer=root, offset=offset, strides=data.strides)


# The memory of results that are copies where PyTorch's are views (as_strided's, unfold's
# windows that do not tile), by the id of the array that owns it (numpy makes a view's ``base``
# the owner): an in-place change of such a result, or of a view of it, would not reach the
# tensor it was taken from, so it raises (it raised PyTorch's error for overlapping memory,
# which PyTorch raises for none of them: it writes through, even where windows overlap).
_copies: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
# Those whose PyTorch counterpart ``reshape`` copies (``copied_by_reshape``).
_copies_reshaped: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def read_through(result, root, window: np.ndarray, reshaped_as_copy: bool = False) -> None:
    """``result``, a recorded pick of ``root``'s elements (its gradient adds up where positions
    repeat) where PyTorch's is a view, reads them where they lie: its values become ``window``,
    a read-only numpy view of ``root``'s memory at those positions, so that an in-place change
    of ``root`` shows in it (a copy kept the old values, silently). It shares ``root``'s
    version counter: used after such a change, its row is picked from ``root``'s new one, as a
    view's is; saved by a backward, the change is refused. Its own in-place changes, and those
    of views of it, raise (``_check_in_place``): recorded as a pick, they would not reach
    ``root``. ``reshaped_as_copy``: PyTorch's view is one ``reshape`` cannot view (unfold's
    overlapping or gapped windows), so its reshapes are copies there, free to change:
    ``reshape`` then copies here too."""
    if window.flags.writeable:
        window.flags.writeable = False
    # (``window`` itself, not the memory's owner, which ``root`` writes: numpy's views of an
    # ``as_strided`` array have it as their base)
    _copies[id(window)] = window
    if reshaped_as_copy:
        _copies_reshaped[id(window)] = window
    if root._version_counter is None:
        root._version_counter = [0]
    result._data = window
    result._base = root
    result._version_counter = root._version_counter
    result._seen_version = root._version_counter[0]


def _in_memory_of(data: np.ndarray, registry: weakref.WeakValueDictionary) -> bool:
    """Whether ``data`` or an array it views is in ``registry``. numpy makes views of a
    read-only copy read-only, but tapegrad writes a view's change into a new array for its
    tensor: the change of a slice of an ``as_strided`` result was kept by the slice alone, and
    never reached the input, silently."""
    while isinstance(data, np.ndarray):
        if registry.get(id(data)) is data:
            return True
        data = data.base
    return False


def copied_by_reshape(data: np.ndarray) -> bool:
    """Whether ``data`` is, or views, a copy whose PyTorch counterpart ``reshape`` copies."""
    return _in_memory_of(data, _copies_reshaped)


_CHANGE_OF_A_COPY = (
    "an in-place change of an as_strided() or unfold() result, or of a view of one, is not supported: "
    "tapegrad reads the input's memory through it, as PyTorch's view, but records it as a copy, so the change "
    "would not reach the input's gradient; change the input through indexing instead, or clone() the result to "
    "change the copy"
)


def _check_in_place(tensor: Tensor, writes: bool = True) -> None:
    """Raise, before anything is written, for an in-place change PyTorch refuses, or one that a
    recording (``tapegrad.record``) cannot follow (``_shared_storage``): checked after the write,
    a refused recording left the change made, and ``vmap``'s eager fallback made it again.
    ``writes`` False: a change of shape and strides alone (``t_``), which an expanded tensor
    allows."""
    data = tensor._data
    if writes and not data.flags.writeable:
        if any(step == 0 and extent > 1 for step, extent in zip(data.strides, data.shape)):
            # An expand (numpy's broadcast_to: read-only), which PyTorch refuses too: after its
            # autograd's checks, which come first (an expanded view of a leaf is one of a leaf)
            if _grad_state.enabled:
                _refuse_autograd_change(tensor)
            raise RuntimeError(
                "unsupported operation: more than one element of the written-to tensor refers to a single memory "
                "location. Please clone() the tensor before performing the operation."
            )
        if _in_memory_of(data, _copies):
            raise NotImplementedError(_CHANGE_OF_A_COPY)
    recording = active_recording()
    if recording is not None and recording.shared is not None:
        recording.shared.wrote(tensor, before=True)
    if _grad_state.enabled:
        _refuse_autograd_change(tensor)


def _refuse_autograd_change(tensor: Tensor) -> None:
    """PyTorch's autograd refusals of an in-place change (grad mode on): of a leaf that requires
    grad, of a view it cannot regenerate, of a view of such a leaf."""
    if tensor._requires_grad and tensor._tape is None:
        raise RuntimeError(LEAF_IN_PLACE)
    base = tensor._base
    if base is not None and tensor._view_meta is not None and (tensor._requires_grad or base._requires_grad):
        refuse_view_change(tensor)
    if base is not None and base._requires_grad and base._tape is None:
        # Allowed, it made the leaf a non-leaf, whose .grad a training loop never saw again.
        raise RuntimeError(VIEW_OF_LEAF_IN_PLACE)


def _in_place(tensor: Tensor, kind: str, other) -> Tensor:
    """``tensor <kind>= other``: the values change in place; a recorded tensor moves to the new row."""
    if isinstance(other, (list, tuple)):
        return NotImplemented  # (as ``_arith``: Python then raises its TypeError)
    return in_place(tensor, lambda t: _arith(kind, t, other), kind.title())


@exclusive
def in_place(tensor: Tensor, compute, label: str) -> Tensor:
    """Make ``tensor`` hold ``compute(tensor)``, computed out of place (``x.exp_()`` is
    ``x.exp()`` written back): its storage's values change and its version counts the change.
    ``label`` names the op for PyTorch's error message about modified saved values."""
    recording = active_recording()
    if recording is None:
        return _changed(tensor, compute, label, None)
    if id(tensor) in recording.detached:
        changed = _through_detached(recording, tensor, compute, label)
    elif tensor._base is not None and id(tensor._base) in recording.detached:
        raise NotImplementedError(_VIEW_OF_AN_ALIAS)
    else:
        changed = _changed(tensor, compute, label, recording)
    _refresh_detached(recording)
    return changed


_VIEW_OF_AN_ALIAS = (
    "tapegrad.record: an in-place change through a view of .data or .detach(), or through .data or "
    ".detach() of a view, is not recorded; change the tensor itself (under tapegrad.no_grad() if "
    "autograd must not see it)"
)


def _changed(tensor: Tensor, compute, label: str, recording) -> Tensor:
    _check_in_place(tensor)
    before = resolve(tensor) if tensor._tape is not None else None
    mark = before.n if before is not None else 0
    if tensor._base is None:
        result = compute(tensor)
    else:
        _CHANGING_A_VIEW[0] += 1
        try:
            result = compute(_past_hooked_view(tensor, before))
        finally:
            _CHANGING_A_VIEW[0] -= 1
    if result is NotImplemented:
        return NotImplemented
    if result._requires_grad and tensor._base is not None and tensor._view_meta is not None and _grad_state.enabled:
        refuse_view_change(tensor)  # (an operand that requires grad: ``view.mul_(w)``)
    if result._data.shape != tensor._data.shape:
        raise RuntimeError(
            f"output with shape {list(tensor._data.shape)} doesn't match the broadcast shape {list(result._data.shape)}"
        )
    if result._data.dtype != tensor._data.dtype:  # computed in the promoted type, kept in tensor's
        have, want = _dtypes.from_numpy_dtype(result._data.dtype), _dtypes.from_numpy_dtype(tensor._data.dtype)
        if have.category > want.category:  # PyTorch's canCast: no float into an integer, nothing into bool
            raise RuntimeError(
                f"result type {have.type_name} can't be cast to the desired output type {want.type_name}"
            )
        # Recorded: the gradient flows back through the cast. Left in float64, the tensor's row
        # was another dtype than its values, and both operands' gradients came out zero. The
        # node shows as the op (PyTorch computes and casts in one: AddBackward0).
        computed = result.grad_fn.name() if result.grad_fn is not None else None
        result = result.to(want)
        if computed is not None:
            name_node(result, computed)
    if recording is not None and not result._requires_grad and tensor._requires_grad:
        result = assigned(recording, tensor, result)
    if result._tape is not None:
        _unsave_old_value(tensor, result._tape, before, mark)
        if tensor._base is not None:
            from ._indexing import change_view

            return change_view(tensor, result, label)
    writable(tensor._data)[...] = result._data
    _bump_version(tensor, label if result._tape is not None else None)
    if result._tape is not None:
        gained = result._requires_grad and not tensor._requires_grad
        tensor._tape, tensor._row, tensor._requires_grad = result._tape, result._row, result._requires_grad
        tensor._grad_fn = None
        tensor._tape.hold(tensor._row, tensor)
        _save_storage_for(tensor, result)
        if gained and tensor._views is not None:
            from ._indexing import views_follow

            views_follow(tensor)
    return tensor


def _save_storage_for(tensor: Tensor, result: Tensor) -> None:
    """After ``tensor`` took the row of ``result``, computed out of place and written back: where
    that row saved its own value (``relu_``, ``exp_``, ``sigmoid_``: their backward reads their
    output), its version check follows ``tensor`` from now on, and it reads ``tensor``'s storage,
    as PyTorch saves the tensor itself. It had kept reading ``result``'s array, unchecked: a
    later change of the tensor (through ``.data``, ``.detach()`` or under no_grad) went unseen
    by its rule and by every later op reading the row (``y.relu_(); y.data[0] = 2; (y *
    y).sum()`` differentiated the old ``y[0]``, silently), and failed no version check where
    PyTorch's backward raises. Two cases keep reading ``result``'s array, the version check
    alone following the tensor: a storage that is not C-ordered (the backward reads a row's
    value C-ordered by address; a change through ``.data`` then goes unseen), and a recording
    (its replay computes its own values)."""
    if not checks_follow(tensor, result) or not tensor._data.flags.c_contiguous:
        return
    tape = resolve(tensor)
    if tape.replay_values is None and tape.saved.get(tensor._row) == address_of(result._data):
        tape.keepalive.append(tensor._data)
        tape.saved[tensor._row] = address_of(tensor._data)


def checks_follow(tensor: Tensor, result: Tensor) -> bool:
    """Where ``result``'s row saved its own value (checked against ``result``'s version), the
    check follows ``tensor``, which now holds those values (written back by an in-place op;
    ``tensor`` may be a view), at its current version; returns whether it did."""
    tape, row = resolve(result), result._row
    entries = tape.versions.get(row)
    own = result._version_counter
    if not entries or own is None or not any(entry[2] == row and entry[0] is own for entry in entries):
        return False
    counter = tensor._version_counter
    entries[:] = [(counter, counter[0], row) if entry[2] == row and entry[0] is own else entry for entry in entries]
    return True


def _past_hooked_view(tensor: Tensor, tape) -> Tensor:
    """What an in-place change of ``tensor`` computes from: ``tensor``, or for a view whose row
    has hooks, a fresh pick of the view's elements from its base. PyTorch's CopySlices sends the
    in-place op's gradient to the base's node, past the view's, so hooks registered on the view
    before the change see only the gradient of the view's other readers. Read through the
    view's row, they saw the in-place op's too: ``v.register_hook(lambda g: g * 10);
    v.mul_(2)`` made ``x.grad`` ten times PyTorch's, silently."""
    if tape is None or tensor._base is None or not tape.hooks or not tape.hooks.get(tensor._row):
        return tensor
    if tensor._version_counter[0] != tensor._seen_version:
        return tensor  # (its row is not the hooked one: it reads its base's current row again)
    from ._indexing import fresh_view

    return fresh_view(tensor)


def assigned(tape: Tape, tensor: Tensor, result: Tensor) -> Tensor:
    """Inside ``tapegrad.record``, ``tensor`` (which requires grad) made to hold ``result``,
    computed where autograd does not look (under ``no_grad``; through ``.data``): an ``assign``
    row, whose value is the result's and whose gradient goes to ``tensor``'s row as if the
    values had not changed, as PyTorch's autograd sees such a change. Moved to the result's
    row instead, the tensor lost its gradient (zeros, silently)."""
    row = tape.append(
        OPCODE["assign"], _input_row(tape, tensor), result._row, 0, tape.layout_of(result._row), 0.0
    )  # fmt: skip
    assigned = _recorded(result._data, tape, row)
    shown = tensor.grad_fn
    if shown is not None:  # PyTorch's tensor keeps its node
        name_node(assigned, shown.name())
    return assigned


def records_in_place(tensor: Tensor, value=None) -> bool:
    """Whether an in-place change of ``tensor`` (to ``value``, a tensor or a number) is recorded:
    on a graph with grad mode on, or from a tensor that requires grad; and inside
    ``tapegrad.record``, of any tensor on its tape, grad mode or not (the replay must compute the
    new values: a plain write made the tape replay the old ones, silently)."""
    value_recorded = isinstance(value, Tensor) and (value._tape is not None or value._requires_grad)
    if _grad_state.enabled and (tensor._tape is not None or value_recorded):
        return True
    return active_recording() is not None and (on_tape(tensor) or value_recorded)


def _through_detached(tape: Tape, alias: Tensor, compute, label: str) -> Tensor:
    """An in-place change of ``x.data`` or ``x.detach()`` inside ``tapegrad.record``: it changes
    ``x``'s values, as in PyTorch, where autograd does not see it. Recorded as that change of
    ``x`` (``assigned``), and the alias detached again from the new row."""
    source = tape.detached[id(alias)][1]
    if source._base is not None:
        raise NotImplementedError(_VIEW_OF_AN_ALIAS)
    row = _input_row(tape, source)
    if any(entry[2] == row for entries in tape.versions.values() for entry in entries):
        # Eager autograd saved the storage, and its backward reads the changed values (the
        # version counter does not see ``.data``); the replay's backward reads the values the
        # op was computed from. Which is meant cannot be told; neither may pass silently.
        raise NotImplementedError(
            "tapegrad.record: an in-place change through .data or .detach() of a tensor an op "
            "saved for its backward; eager autograd would differentiate with the changed values, "
            "the replay with the old ones. Change it out of place, or after the recording"
        )
    with _no_grad():
        _changed(source, compute, label, tape)
    return alias


def _refresh_detached(tape: Tape) -> None:
    """After an in-place change inside ``tapegrad.record``: each ``.data``/``.detach()`` result
    whose source now stands at another row reads that row (their storage is one; left at the
    old row, the replay gave it the values before the change)."""
    for key, (alias, source, row) in tape.detached.items():
        now = _input_row(tape, source)  # a view of a changed storage: refreshed here
        if now != row:
            layout = tape.layout(source._data.dtype, source._data.shape)
            alias._tape, alias._row = tape, tape.append(OPCODE["detach"] | NO_GRAD, now, -1, 0, layout, 0.0)
            tape.hold(alias._row, alias)
            alias._data = source._data
            tape.detached[key] = (alias, source, now)


def _copied_by_op(entry, tensor: Tensor, tape: Tape) -> bool:
    """Whether a version entry the in-place op's own rows made watches ``tensor`` through a value
    outside its storage: a promoted copy (``b.mul_(w)``, float32 ``b``, float64 ``w``, saves
    ``b`` as float64), which the write cannot change. A view of the storage stays watched."""
    counter, _, saved_row = entry
    address = tape.saved.get(saved_row)
    if counter is not tensor._version_counter or address is None:
        return False
    storage = tensor._data
    while isinstance(storage.base, np.ndarray):
        storage = storage.base
    start = storage.__array_interface__["data"][0]
    return not start <= address < start + max(storage.nbytes, 1)


def _unsave_old_value(tensor: Tensor, tape: Tape, before, mark: int) -> None:
    """Rows the in-place op itself added may have saved ``tensor``'s storage (``y *= y`` reads
    it twice; ``clamp_`` reads it): it is about to be overwritten, so they get a copy of the old
    value, which is no longer the storage's and so no longer version-checked."""
    first_new = 0
    if before is not None:  # where the rows added since ``mark`` start, through any merge
        while before.merged_into is not None:
            mark += before.row_shift
            before = before.merged_into
        first_new = mark
    own = {tape.registered.get(-id(tensor), -1)}
    if tensor._tape is not None and resolve(tensor) is tape:
        own.add(tensor._row)
    own.discard(-1)
    copied = set()  # one copy serves every reader
    for row in range(first_new, tape.n):
        for source in tape.ints[row * ROW_WIDTH + 1 : row * ROW_WIDTH + 3]:
            if source in own and source in tape.saved and source not in copied:
                del tape.saved[source]
                if tape.leaf_copies:  # the old value is this row's on purpose: never refreshed
                    tape.leaf_copies.pop(source, None)
                tape.save(source, tensor._data.copy())
                copied.add(source)
        entries = tape.versions.get(row)
        if entries:  # its own reads of the old value, copied above, or copies the op made itself
            entries[:] = [entry for entry in entries if entry[2] not in own and not _copied_by_op(entry, tensor, tape)]


def _unary_methods() -> dict:
    """Each unary entry of the op table as Tensor methods of its name: ``x.exp()``, ``x.exp_()``."""
    methods = {}
    for op in OPS:
        if op.family == UNARY and op.name != "neg":

            def method(self, _op=op):
                return _unary(_op, self)

            def method_(self, _op=op):
                return in_place(self, lambda t: _unary(_op, t), _op.grad_fn.removesuffix("Backward0"))

            method.__name__, method_.__name__ = op.name, op.name + "_"
            method.__doc__ = f"Follows ``torch.Tensor.{op.name}``: elementwise, differentiable ({op.grad_fn})."
            method_.__doc__ = f"Follows ``torch.Tensor.{op.name}_``: in place, recorded as a new version."
            methods[op.name], methods[op.name + "_"] = method, method_

    def negative(self):
        if self._data.dtype.kind == "b":  # (numpy's TypeError named numpy)
            raise RuntimeError(
                "Negation, the `-` operator, on a bool tensor is not supported. If you are trying to invert a "
                "mask, use the `~` or `logical_not()` operator instead."
            )
        return _unary(BY_NAME["neg"], self)

    methods.update(__neg__=negative, neg=negative, negative=negative)
    methods["neg_"] = lambda self: in_place(self, negative, "Neg")
    return methods


def _same_tape(entry: _Entry, a: Tensor, b: Tensor, tape: Tape) -> Tensor | None:
    """``a <op> b`` for two results on ``tape`` (the caller checked: both requiring grad,
    recorded eagerly or into this thread's recording), when they have one float dtype and one
    shape, are below the elision's size, and neither is a view changed in place since (which
    needs refreshing) nor are both transposes (``_binary`` computes those on their sources);
    else None.

    The commonest binary op of a graph (every one of a scalar graph's), recorded as
    ``_binary``'s short path or, inside ``tapegrad.record``, ``_record_binary`` would, without
    the tests for broadcasts, promotion and joins that cannot apply: they were 1 us of its
    2.5 (``a + b`` of 0-d results). Its last lines are ``_short_record``'s, inlined: calling it
    (and ``_short_input`` twice) cost 0.3-0.6 us of the 2.8-3.8 an op, alternated."""
    if a._base is not None:
        if a._version_counter[0] != a._seen_version or (b._base is not None and may_be_transposed(a)):
            return None
    if b._base is not None and b._version_counter[0] != b._seen_version:
        return None
    data_a, data_b = a._data, b._data
    dtype = data_a.dtype
    if data_b.dtype is not dtype or dtype.kind != "f" or data_a.shape != data_b.shape or data_a.nbytes >= ELIDE_BYTES:
        return None
    # numpy gives a scalar for 0-d inputs, but writes into a 0-d ``out`` (0.29 against 0.39 us
    # with the scalar's conversion back: every op of a scalar graph)
    into = entry.into
    out = (
        into(data_a, data_b, np.empty((), dtype))
        if into is not None and not data_a.ndim
        else entry.forward(data_a, data_b)
    )
    if type(out) is not np.ndarray or out.dtype is not dtype:
        out = np.asarray(out, dtype)
    row = tape.n
    if row >= tape.collect_at and _special_modes[0] == 0:  # (a recording's tape is never collected)
        tape.collect()  # may renumber rows: read below
        row = tape.n
    if row == tape.capacity:
        tape._reserve(row + 1)
    row_a, row_b = a._row, b._row
    # ``tape.append``, inlined; the result's layout is a's (one dtype, one shape)
    _pack_row(tape.rows, row * ROW_BYTES, entry.opcode, row_a, row_b, 0, tape.ints[row_a * ROW_WIDTH + LAYOUT], 0.0)
    tape.n = row + 1
    result = _recorded(out, tape, row)
    if entry.reads_a:  # (both take a gradient: neither operand's value goes unread)
        _save(tape, row_a, data_a)
        tape.track(row, row_a, a)
    if entry.reads_b:
        _save(tape, row_b, data_b)
        tape.track(row, row_b, b)
    if entry.reads_out:
        _save(tape, row, out)
        tape.track(row, row, result)
    return result


def _scalar_dunder(op: _ScalarOp, kind: str):
    """``x * 2.0`` and friends, with the common case inlined: a recorded tensor and a Python
    number. This is the whole per-op cost of a chain like the tutorial's, so it does one numpy
    call, one packed row append and one object creation, and nothing else."""
    opcode, forward, saves_input, saves_output = op.opcode, op.forward, op.saves_input, op.saves_output
    entry = _ENTRIES[kind]
    new = object.__new__
    last = [(None, None, None)]  # (Python number, array dtype, the number as that dtype)
    # A ufunc takes the number as a 0-d array of the dtype in 480 ns where a numpy scalar took
    # 680 (a third of a chain's per-op time): the same loop, the same bits. pow's forward
    # branches on the exponent's value, and keeps the scalar.
    as_dtype = (lambda number, dtype: np.array(number, dtype)) if isinstance(forward, np.ufunc) else None

    def dunder(self, other, _locked=False, _into=False):
        if not _locked and count_threads() > pool_threads[0]:  # (``_tape.exclusive``)
            into = isinstance(other, Tensor) and _temporary(self, other, kind)  # (the counts it reads)
            with LOCK:
                return dunder(self, other, True, into)
        tape = self._tape
        if (
            (type(other) is _float or type(other) is _int)
            and tape is not None
            and (  # (the same row either way; ``_into_recording``, inlined: self is on tape, its grad read below)
                _special_modes[0] == 0 or (_special_modes[0] == _recordings_active[0] and _grad_state.recording is tape)
            )
            and tape.merged_into is None
            and self._requires_grad
            # A view whose storage changed in place since its row needs refreshing: general path.
            and (self._base is None or self._version_counter[0] == self._seen_version)
        ):
            data = self._data
            # numpy casts a Python number to the array's type (NEP 50) on every call, ~120 ns;
            # a loop multiplying by the same constant object reuses the cast one.
            cached = last[0]  # one read: a consistent (number, dtype, cast) even across threads
            if other is cached[0] and data.dtype is cached[1]:
                out = forward(data, cached[2])
            else:
                typed = data.dtype.type(other) if as_dtype is None else as_dtype(other, data.dtype)
                last[0] = (other, data.dtype, typed)
                out = forward(data, typed)
            if type(out) is not np.ndarray:  # numpy gives a scalar for a 0-d input
                out = np.asarray(out)
            row = tape.n
            if row >= tape.collect_at:
                tape.collect()  # may renumber rows: they are read after it
                row = tape.n
            if row == tape.capacity:
                tape._reserve(row + 1)
            row_x = self._row
            _pack_row(tape.rows, row * ROW_BYTES, opcode, row_x, -1, 0, tape.ints[row_x * ROW_WIDTH + LAYOUT], other)
            tape.n = row + 1
            result = new(Tensor)
            result._data = out
            result._tape = tape
            result._row = row
            if row >= tape.hold_from:  # (``Tape.hold``)
                tape.refs[row] = _weakref(result)
            result._requires_grad = True
            result._version_counter = None
            result._base = None
            if saves_input:
                _save(tape, row_x, data)
                tape.track(row, row_x, self)
            if saves_output:
                _save(tape, row, out)
                tape.track(row, row, result)
            return result
        if isinstance(other, Tensor):  # parameters too
            if (
                tape is not None
                and other._tape is tape
                and tape.merged_into is None
                and self._requires_grad
                and other._requires_grad
                # (``_into_recording``, inlined: both are on ``tape`` and require grad)
                and (
                    _special_modes[0] == 0
                    or (_special_modes[0] == _recordings_active[0] and _grad_state.recording is tape)
                )
            ):
                result = _same_tape(entry, self, other, tape)
                if result is not None:
                    return result
            if _into or (not _locked and _temporary(self, other, kind)):
                return _binary(kind, self, other, into_a=True)
            return _binary(kind, self, other)
        return _arith(kind, self, other)

    dunder.__name__ = f"__{kind}__"
    dunder.__doc__ = f"Follows ``torch.Tensor.{kind}``: elementwise, broadcasting, with numbers or tensors."
    return dunder


_PYTHON_TYPES = {float: _dtypes.float64, int: _dtypes.int64, bool: _dtypes.bool}


def to_arguments(args: tuple, kwargs: dict) -> tuple:
    """``(device, dtype, copy)`` from the arguments of ``to``, as PyTorch reads them:
    ``to(dtype)``, ``to(device, dtype=None, non_blocking=False, copy=False)`` or ``to(other)``
    (its dtype). The device is checked (``tapegrad.device``: the CPU only); ``non_blocking`` and
    ``memory_format`` change nothing here. Raises ``TypeError`` for an unknown keyword."""
    dtype, device = kwargs.pop("dtype", None), kwargs.pop("device", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to() got an unexpected keyword argument '{next(iter(kwargs))}'")
    flags = []  # positional non_blocking, then copy
    for arg in args:
        if isinstance(arg, _dtypes.dtype):
            dtype = arg
        elif arg is float or arg is int or arg is bool:  # Python's types, as PyTorch reads them
            dtype = _PYTHON_TYPES[arg]
        elif isinstance(arg, Tensor):
            dtype = arg.dtype
        elif isinstance(arg, bool):
            flags.append(arg)
        else:
            device = arg
    if len(flags) > 1:
        copy = flags[1]
    dtype = _PYTHON_TYPES.get(dtype, dtype) if isinstance(dtype, type) else dtype
    return _device.check(device), (None if dtype is None else _dtypes.as_dtype(dtype)), copy


def _to(self, *args, **kwargs) -> Tensor:
    """This tensor when nothing changes (a copy with ``copy=True``), else a cast that autograd
    follows; arguments as ``to_arguments``; follows ``torch.Tensor.to``."""
    _, dtype, copy = to_arguments(args, kwargs)
    if dtype is None or dtype.numpy == self._data.dtype:
        return self.clone() if copy else self
    return _cast(self, dtype)


def _type(self, dtype=None, non_blocking: bool = False, **kwargs):
    """The tensor type's name (``"tapegrad.FloatTensor"``), or with ``dtype`` the tensor in it:
    a dtype, or a type name as PyTorch spells it (``"torch.DoubleTensor"``, tapegrad's own
    prefix too). Follows ``torch.Tensor.type``; raises ``ValueError`` for an unknown name."""
    if dtype is None:
        return f"tapegrad.{self.dtype.type_name}Tensor"
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.").removeprefix("tapegrad.").removesuffix("Tensor")
        by_name = {d.type_name: d for d in _dtypes.ALL}
        if name not in by_name:
            raise ValueError(f"invalid type: '{dtype}'")
        dtype = by_name[name]
    dtype = getattr(dtype, "dtype", dtype)  # a legacy type (``tapegrad.DoubleTensor``): its dtype
    return self.to(dtype)


def _cast_to(dtype: _dtypes.dtype):
    return lambda self: _cast(self, dtype)


def _square(self):
    """Follows ``torch.Tensor.square``: ``self ** 2`` (PowBackward0, as PyTorch records it)."""
    return self**2


def _alpha_scaled(self: Tensor, other, alpha):
    """``alpha * other`` for ``self + alpha * other``, in the operands' result type, as PyTorch
    computes it: an integer ``other`` is converted first (``2 * uint8(200)`` wrapped to 144 in
    uint8: ``add(x, b, alpha=2)`` came out 145 where PyTorch gives 401), and alpha converted to
    that type (``bool + 2 * bool`` is a bool, ``int32 + 2 * bool`` an int32). Raises PyTorch's
    ``RuntimeError`` for a floating-point alpha with an integer or boolean result."""
    if isinstance(other, Tensor):
        if other._data.dtype.kind not in "biu":
            return other * alpha
        result = _dtypes.result_type(
            _dtypes.from_numpy_dtype(self._data.dtype), self._data.ndim,
            _dtypes.from_numpy_dtype(other._data.dtype), other._data.ndim,
        )  # fmt: skip
        category = result.category
    else:  # a number: its category where it is above the tensor's (a wrapped number's rule)
        category = _dtypes.from_numpy_dtype(self._data.dtype).category
        if isinstance(other, (float, np.floating)):
            category = _dtypes.FLOATING
        elif not isinstance(other, (bool, np.bool_)) and isinstance(other, (int, np.integer)):
            category = max(category, _dtypes.INTEGER)
    if category != _dtypes.FLOATING and isinstance(alpha, (float, np.floating)):
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating point number.")
    if category == _dtypes.BOOLEAN:
        alpha = bool(alpha)  # (True + 2 * True came out the int64 3)
    if not isinstance(other, Tensor):
        return bool(other * alpha) if category == _dtypes.BOOLEAN else other * alpha
    if other._data.dtype != result.numpy:
        other = other.to(result)
    scaled = other * alpha
    if category != _dtypes.FLOATING and scaled._data.dtype != result.numpy:
        scaled = scaled.to(result)
    return scaled


def _with_alpha(dunder, name: str):
    """``x.add(y, alpha=a)``, ``tapegrad.sub(x, y, alpha=a)``: ``x + a * y`` (``torch.add``;
    alpha keyword-only, as there). Without alpha, the operator's own path."""

    def method(self, other, *, alpha=1):
        if alpha == 1:
            return _not_an_operand(dunder(self, other), name, other)
        return _not_an_operand(dunder(self, _alpha_scaled(self, other, alpha)), name, other)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"Follows ``torch.Tensor.{name}``: ``self {'+' if name == 'add' else '-'} alpha * other``."
    return method


def _not_an_operand(result, name: str, other):
    """``result``, or, where an operator gave ``NotImplemented`` (a list or tuple ``other``),
    the ``TypeError`` PyTorch's named method raises: returned, the sentinel passed for a tensor."""
    if result is NotImplemented:
        raise TypeError(f"{name}(): argument 'other' (position 1) must be Tensor, not {type(other).__name__}")
    return result


def _named_operator(dunder, name: str):
    """``x.mul(y)``, ``x.div(y)``...: the operator, with PyTorch's ``TypeError`` for a list."""

    def method(self, other):
        return _not_an_operand(dunder(self, other), name, other)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = dunder.__doc__
    return method


def _in_place_method(kind: str, alpha: bool = False, name: str | None = None):
    """``x += y`` (``name`` None: a list gives Python's TypeError) or ``x.add_(y)`` (``name``)."""
    if alpha:
        # alpha keyword-only, as PyTorch: x.sub_(2, [0, 1]) must not take the list as alpha
        return lambda self, other, *, alpha=1: _not_an_operand(
            _in_place(self, kind, other if alpha == 1 else _alpha_scaled(self, other, alpha)), name, other
        )
    if name is not None:
        return lambda self, other: _not_an_operand(_in_place(self, kind, other), name, other)
    return lambda self, other: _in_place(self, kind, other)


def _in_place_operator(compute, label: str):
    """``self <op>= other`` in place, for the operators without a ``_SCALAR_OPS`` path
    (``//``, ``%``, ``**``, ``&``, ``|``, ``^``). Without these methods Python rebinds the name
    to a new tensor: a view, an alias or the tensor's other holders kept the old values
    (``v = x[1:]; v **= 2`` left ``x`` as it was), and ``int //= 2.5`` silently became a
    float tensor where PyTorch raises."""

    def method(self, other):
        return in_place(self, lambda t: compute(t, other), label)

    return method


def install_methods() -> None:
    """Attach the table-derived methods, the scalar fast paths, casts and in-place arithmetic
    to Tensor."""
    install(
        {
            **_unary_methods(),
            "to": _to,
            "type": _type,
            "type_as": lambda self, other: _to(self, other.dtype),
            "float": _cast_to(_dtypes.float32),
            "double": _cast_to(_dtypes.float64),
            "long": _cast_to(_dtypes.int64),
            "int": _cast_to(_dtypes.int32),
            "bool": _cast_to(_dtypes.bool),
            "clone": lambda self: record("clone", (self,), self._data.copy()),
            "__rsub__": lambda self, other: _arith("rsub", self, other),
            "__rtruediv__": lambda self, other: _arith("rdiv", self, other),
            "__rpow__": lambda self, other: _arith("rpow", self, other),
            "__abs__": lambda self: _unary(BY_NAME["abs"], self),
            "__iadd__": _in_place_method("add"),
            "__isub__": _in_place_method("sub"),
            "__imul__": _in_place_method("mul"),
            "__itruediv__": _in_place_method("div"),
            "add_": _in_place_method("add", alpha=True, name="add_"),
            "sub_": _in_place_method("sub", alpha=True, name="sub_"),
            "mul_": _in_place_method("mul", name="mul_"),
            "div_": _in_place_method("div", name="div_"),
            "__ifloordiv__": _in_place_operator(lambda t, other: t // other, "FloorDivide"),
            "floor_divide_": _in_place_operator(lambda t, other: t // other, "FloorDivide"),
            "__imod__": _in_place_operator(lambda t, other: t % other, "Remainder"),
            "remainder_": _in_place_operator(lambda t, other: t % other, "Remainder"),
            "__ipow__": _in_place_operator(lambda t, other: t**other, "Pow"),
            "__iand__": _in_place_operator(lambda t, other: t & other, "BitwiseAnd"),
            "bitwise_and_": _in_place_operator(lambda t, other: t & other, "BitwiseAnd"),
            "__ior__": _in_place_operator(lambda t, other: t | other, "BitwiseOr"),
            "bitwise_or_": _in_place_operator(lambda t, other: t | other, "BitwiseOr"),
            "__ixor__": _in_place_operator(lambda t, other: t ^ other, "BitwiseXor"),
            "bitwise_xor_": _in_place_operator(lambda t, other: t ^ other, "BitwiseXor"),
        }
    )
    Tensor.__add__ = Tensor.__radd__ = _scalar_dunder(_ADD_SCALAR, "add")
    Tensor.__sub__ = _scalar_dunder(_SUB_SCALAR, "sub")
    Tensor.__mul__ = Tensor.__rmul__ = _scalar_dunder(_MUL_SCALAR, "mul")
    Tensor.__truediv__ = _scalar_dunder(_DIV_SCALAR, "div")
    Tensor.__pow__ = _scalar_dunder(_POW_SCALAR, "pow")
    Tensor.add = _with_alpha(Tensor.__add__, "add")
    Tensor.sub = Tensor.subtract = _with_alpha(Tensor.__sub__, "sub")
    Tensor.mul = Tensor.multiply = _named_operator(Tensor.__mul__, "mul")
    Tensor.div = Tensor.divide = _named_operator(Tensor.__truediv__, "div")
    Tensor.pow = _named_operator(Tensor.__pow__, "pow")
    Tensor.square = _square
    # A pending view's operators take the paths that record it on the op's own tape (the
    # reflected ones run first, for ``h * w.t()``, as the subclass's); Tensor's read its tape.
    for name, kind in (
        ("__add__", "add"), ("__radd__", "radd"), ("__sub__", "sub"), ("__rsub__", "rsub"),
        ("__mul__", "mul"), ("__rmul__", "rmul"), ("__truediv__", "div"), ("__rtruediv__", "rdiv"),
    ):  # fmt: skip
        setattr(PendingView, name, _pending_operator(kind, name))


def _pending_operator(kind: str, name: str):
    if kind in ("radd", "rmul"):  # ``h + view``: the operands in the order written (next_functions)

        def operator(self, other):
            return _binary(kind[1:], other, self) if isinstance(other, Tensor) else _arith(kind[1:], self, other)

    else:

        def operator(self, other):
            return _arith(kind, self, other)

    operator.__name__ = name
    return operator


install_methods()


# -- create_graph formulas: the vector-Jacobian product of each rule as tapegrad ops ------
# ``row`` is the tape row as autograd/higher_order.py's ``_Row`` shows it (its saved values
# as tensors at their own rows, so the formula records edges into the original graph).


def _pow_base(row, g: Tensor) -> Tensor:
    """b * a ** (b - 1), and 0 where b is 0 (as the kernel and PyTorch do, even at a = 0)."""
    exponent = row.b - 1.0
    nonzero = row.b_data != 0
    if nonzero.all():
        return g * row.b * row.a**exponent
    keep = row.constant(nonzero)
    safe = exponent * keep + row.constant(~nonzero)  # a ** 1 where masked: no 0 * inf
    return g * row.b * row.a**safe * keep


def _pow_exponent(row, g: Tensor) -> Tensor:
    """a ** b * log(a), and 0 where a is 0 and b >= 0 (the kernel's convention)."""
    skip = (row.a_data == 0) & (row.b_data >= 0)
    if not skip.any():
        return g * row.out * row.a.log()
    safe = row.a * row.constant(~skip) + row.constant(skip)  # log(1) = 0 where skipped
    return g * row.out * safe.log() * row.constant(~skip)


def _elu(row, g: Tensor) -> Tensor:
    """alpha e**x below 0, alpha at 0, 1 above (and at NaN), as PyTorch's elu_backward; its
    derivative in x is alpha e**x below 0 only (PyTorch's double backward masks with x < 0: it
    was alpha at 0 here). e**x of the negative inputs alone: e**x of a large positive one was
    inf, times a mask of 0, NaN."""
    x = row.a_data
    negative = x < 0
    constant = row.constant(~(x <= 0)) + row.constant(x == 0) * row.param
    below = row.a.masked_fill(_wrap(~negative), 0.0).exp() * row.param * row.constant(negative)
    return g * (constant + below)


def _leaky_relu(row, g: Tensor) -> Tensor:
    gradient = g * row.constant(np.where(row.a_data > 0, 1.0, row.param))
    if row.a.requires_grad:  # (PyTorch's: a function of x, with a zero derivative, as well as of g)
        gradient = gradient + zero_through(row.a)
    return gradient


def _softplus(row, g: Tensor) -> Tensor:
    """sigmoid(x), and exactly 1 above softplus's threshold (20), where the value is x itself:
    PyTorch's softplus_backward, whose own derivative is 0 there."""
    from ._selection import where  # (built on this module: imported when used)

    x = row.a
    return g * where(x > 20.0, 1.0, x.sigmoid())


def _rpow_of_zero(row, g: Tensor) -> Tensor:
    """The gradient of ``0 ** x`` as the kernel computes it: 0 where x >= 0 (PyTorch's mask; the
    result is 0 or 1 there), the result times log(0) = -inf below (the result is inf)."""
    out = row.out
    values = out._data
    return (g * (out * float("-inf"))).masked_fill(_wrap((values == 0) | (values == 1)), 0.0)


VJP = {
    "neg": (lambda row, g: -g,),
    # d softplus = sigmoid(x)
    "softplus": (_softplus,),
    "zero": (lambda row, g: row.zeros(),),
    "leaky_relu": (_leaky_relu,),
    "elu": (_elu,),
    "pass": (lambda row, g: g,),
    "mul_scalar": (lambda row, g: g * row.param,),
    "div_scalar": (lambda row, g: g / row.param,),
    "pow_scalar": (lambda row, g: g * (row.a ** (row.param - 1.0) * row.param) if row.param else row.zeros(),),
    "rpow_scalar": (lambda row, g: g * row.out * float(np.log(row.param)) if row.param else _rpow_of_zero(row, g),),
    "add": (lambda row, g: g, lambda row, g: g),
    "sub": (lambda row, g: g, lambda row, g: -g),
    "mul": (lambda row, g: g * row.b, lambda row, g: g * row.a),
    "div": (lambda row, g: g / row.b, lambda row, g: -g * row.a / (row.b * row.b)),
    "pow": (_pow_base, _pow_exponent),
    "cast": (lambda row, g: g.to(_dtypes.from_numpy_dtype(row.walk.dtype(row.in0))),),
}


def name_node(tensor: Tensor, grad_fn: str) -> Tensor:
    """Show ``tensor``'s node as ``grad_fn`` (PyTorch's name for a composite it computes as one
    node: ``MseLossBackward0``); returns ``tensor``. Nothing for a tensor off every tape."""
    tape = tensor._tape
    if tape is not None and tensor._requires_grad:
        tape = resolve(tensor)
        if tape.node_names is None:
            tape.node_names = {}
        tape.node_names[tensor._row] = grad_fn
    return tensor
