"""Record a function once, then run its tape forward and backward with new inputs.

    >>> import tapegrad as tg
    >>> X = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> def loss_fn(w):
    ...     return ((X @ w).tanh() ** 2).sum()
    >>> tape = tg.record(loss_fn, tg.zeros(2))
    >>> value, (grad,) = tape.value_and_grad(tg.tensor([0.1, -0.2]))

Replaying runs two compiled calls (forward, backward) over the recorded rows, with no Python per
op and no compilation per graph: the interpreters are compiled once per install.

What is recorded is what ran: Python control flow is frozen at the branch the example inputs
took. Every value Python read from the graph (``bool(t)``, ``float(t)``, ``t.item()``,
``t.tolist()``, comparisons in ``if``/``while``, ``.data`` reads) is a guard: a replay whose
guard comes out differently raises ``GuardError`` naming it (or, with ``rerecord=True``,
records the function again at the new inputs). Tensors captured from the enclosing scope (``X``
above) are constants of the tape; data that changes between calls must be an input.
"""

from __future__ import annotations

import gc
import math
import numbers
import sys
import threading

import numpy as np

from . import _factories, _ops, _register, _tape_file
from . import _grad_mode as grad_mode
from ._frames import user_code
from ._record import _input_row
from ._shared_storage import SharedStorage
from ._tape import (
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
    row_sources,
)
from ._tape import Tape as _RecordingTape
from ._threads import entering_kernel
from ._version import __version__
from .autograd.engine import _keep_arenas, _spare_arenas, kernel_error, views_suffice
from .tensor import Tensor, _wrap

_FORWARD = None


_SLICES_PER_THREAD = 64  # the fewest slices of a batch replay worth a thread of their own
_MM_OPCODE = next(index for index, op in enumerate(_ops.OPS) if op.name == "mm")
_IS_VIEW = np.array([op.rule == "view" for op in _ops.OPS])  # by opcode
_LISTS_INPUTS = np.array([op.family == _ops.NARY for op in _ops.OPS])  # stack, cat: a list in aux


# Ops that compute integers exactly from integers (below 2**24 in float32), in any order, besides
# views and copies: a truth guard on a comparison of their results is never undecided
# (``Tape._mark_exact_truths``).
_EXACT_OF_INTEGERS = frozenset(
    "add sub mul neg abs sum sum_dim add_scalar sub_scalar rsub_scalar mul_scalar maximum minimum detach".split()
)


# The ops whose results are integers or truths, whatever their operands (comparisons, argmax).
# Not every op without a gradient: a detach passes floats on, and a comparison of them (``if
# x.detach().sum() > 0``) needs the undecided check as much as one without it.
_INTEGRAL_RESULTS = frozenset("lt le gt ge eq ne mask argmax guard nll_bad".split())


class GuardError(RuntimeError):
    """A replay reached a value that Python control flow read while recording, and it differs.

    Raised by ``Tape.__call__``, ``value_and_grad`` and ``jacobian`` (unless the tape was
    recorded with ``rerecord=True``). The message names the read (``bool()``, ``.item()``...),
    the source line that made it, and the value then and now. A subclass of ``RuntimeError``.

    >>> import tapegrad as tg
    >>> tape = tg.record(lambda x: x * 2 if x.sum() > 0 else -x, tg.ones(2))
    >>> tape(-tg.ones(2))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    tapegrad.replay.GuardError: replay guard failed: ...
    """


def _kernels():
    global _FORWARD
    if _FORWARD is None:
        from ._kernels import backward, forward

        replay_rules = _ops.replay_arrays(forward.RULES, forward.PATHS)
        # Hooks are eager only: register_hook raises inside tapegrad.record.
        _FORWARD = (forward, replay_rules, backward, _ops.dispatch_arrays(backward.RULES))
    return _FORWARD


def record(fn, *example_inputs, rerecord: bool = False) -> Tape:
    """Run ``fn(*example_inputs)`` once, eagerly, under a fresh tape, and return the ``Tape``.

    The tape replays ``fn`` at new inputs of the same shapes and dtypes (float32 or float64) with
    no Python per op: ``tape(*inputs)``, ``tape.value_and_grad(*inputs)``, ``tape.jacobian``.
    tapegrad's own (``torch.func`` records nothing); it differentiates with respect to the inputs
    only, as ``torch.func.grad`` does: tensors ``fn`` captures are constants of the tape.

    Args:
        fn: takes the inputs as tensors, returns one tensor or a tuple of tensors.
        example_inputs: tensors or numpy arrays, floating point, any shape.
        rerecord: when a replay's guard fails, record again at the new inputs instead of
            raising ``GuardError``.

    Raises:
        TypeError: an input is not floating point, or ``fn`` returns something else than
            tensors. NotImplementedError: ``fn`` calls a custom ``autograd.Function`` or
            ``register_hook`` (a replay runs no Python), or takes a gradient (``backward()``,
            ``autograd.grad``: a replay would reuse the recording's; differentiate the tape), or
            draws random numbers (``dropout`` in training mode, ``randn``: the replay would
            reuse the recording's draws at every call; draw them outside and pass them in).

    >>> import tapegrad as tg
    >>> tape = tg.record(lambda w: (w * w).sum(), tg.zeros(3))
    >>> value, (grad,) = tape.value_and_grad(tg.tensor([1.0, 2.0, 3.0]))
    >>> value, grad
    (tensor(14.), tensor([2., 4., 6.]))
    """
    draws = _factories.random_draws.count
    tape = Tape(fn, example_inputs, rerecord)
    _refuse_random_draws(draws)
    return tape


def _refuse_random_draws(before: int) -> None:
    """A tape holds the numbers drawn while recording as constants: every replay would reuse the
    recording's dropout mask or noise, where eager draws anew (torch.func.vmap's
    randomness="error" refuses too). ``before``: this thread's count of draws before it."""
    if _factories.random_draws.count != before:
        raise NotImplementedError(
            "tapegrad.record: the function draws random numbers (dropout in training mode, rand, randn...), "
            "which a replay would reuse at every call; draw them outside and pass them as inputs, or call "
            "model.eval() for dropout"
        )


def _one_call_at_a_time(method):
    """A tape's replay buffers are its own: calls from several threads at once overwrote each
    other's values and gradients. Each public call holds the tape's lock (re-entrant; the
    public calls share unlocked bodies, ``_backward``). A forward in one call and ``backward`` in another
    are still the caller's to keep together."""

    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    locked.__name__, locked.__qualname__, locked.__doc__ = method.__name__, method.__qualname__, method.__doc__
    locked.__wrapped__ = method
    return locked


class _Steady:
    """What a ``value_and_grad`` of a tape with given ``argnums`` and no ``grad_outputs`` works
    out that depends on its layout alone: the positions of the inputs differentiated, the rows
    masked for them (``Tape._rows_for``), the backward's plan, the seeds, and whether one
    gradient is returned or a tuple."""

    __slots__ = ("positions", "rows", "plan", "seeds", "single")

    def __init__(self, positions: tuple, rows: np.ndarray, plan: dict, seeds: np.ndarray, single: bool):
        self.positions, self.rows, self.plan, self.seeds, self.single = positions, rows, plan, seeds, single


def _steady_key(argnums) -> bool:
    """Whether ``argnums`` keys ``Tape._steady``: None, an int or a tuple of ints, exactly (a
    float or a list equal to one, or unhashable, goes the general way, which refuses it)."""
    if argnums is None or type(argnums) is int:
        return True
    return type(argnums) is tuple and all(type(position) is int for position in argnums)


_ONE = np.ones(1)  # the seed of a single-element output (concatenated, never written)
# Integers a replay holds in float64 exactly: within +-2**53. Integer inputs beyond are refused,
# and rows of integer arithmetic are checked after each forward (``Tape._integer_checks``).
_EXACT = 2**53 - 1  # (2**53 + 1 rounds to 2**53: a result there may be inexact already)
_INTEGER_ARITHMETIC = frozenset(
    "neg abs add_scalar sub_scalar rsub_scalar mul_scalar div_scalar pow_scalar rpow_scalar add sub mul div pow "
    "sum_all sum_dim prod cumsum cast dot mv mm bmm".split()
)


def beyond_exact(data: np.ndarray) -> bool:
    """Whether an int64 array holds integers a replay's float64 cannot hold exactly."""
    return data.dtype == np.int64 and data.size > 0 and (data.min() < -_EXACT or data.max() > _EXACT)


class _ResultPool:
    """Large result arrays of batched replays (vmap's ``(B, *shape)`` outputs and gradients),
    handed out again once nothing but the pool refers to them.

    A fresh array of megabytes is fresh pages: glibc maps it anew on every call (a free of the
    same size raises its mmap threshold to that size, and an allocation at the threshold is
    mapped again), and the kernel zeroes each page on first touch, in 2 MB steps since numpy
    advises huge pages. That was 40% of a per-sample-gradients vmap (perf: clear_page_erms).
    An array is reused only when its reference count shows that no result, view or caller
    holds it: reuse is invisible. Bounded: ``LIMIT`` bytes in all, arrays of ``SMALLEST`` bytes
    or more (smaller ones come from malloc's free lists anyway)."""

    SMALLEST, LIMIT = 1 << 20, 1 << 27

    def __init__(self):
        self.arrays: list = []
        self.lock = threading.Lock()

    def empty(self, n: int, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        if n * dtype.itemsize < self.SMALLEST:
            return np.empty(n, dtype)
        with self.lock:
            arrays = self.arrays
            for index in range(len(arrays)):
                array = arrays[index]
                # the list, ``array`` and getrefcount's argument: nothing else holds it
                if array.size == n and array.dtype == dtype and sys.getrefcount(array) == 3:
                    arrays.append(arrays.pop(index))  # most recently used last
                    return array
            array = np.empty(n, dtype)
            arrays.append(array)
            while sum(a.nbytes for a in arrays) > self.LIMIT:  # the least recently used go first
                arrays.pop(0)
            return array


_results = _ResultPool()


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays of one dtype hold the same bits in the same shape: values would take
    -0.0 for 0.0 and a NaN for other than itself."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    bits = np.dtype(f"u{a.dtype.itemsize}")
    return bool(np.array_equal(np.ascontiguousarray(a).view(bits), np.ascontiguousarray(b).view(bits)))


_INPUT_DTYPES = {np.dtype(t) for t in (np.float32, np.float64, np.int64, np.int32, np.bool_)}

# From this size an input of ``value_and_grad`` is read where it lies (``Tape._place_inputs``):
# its copy into the value arena was a sixth of a replay of 10^6-element operations, which ran
# slower than eager, whose numpy reads its operands in place. Below it, the copy costs less than
# the call's extra set-up.
_IN_PLACE_BYTES = 1 << 18


def _new_arena(size: int, dtype) -> np.ndarray:
    """A value arena, zeroed (a seam: tests/test_replay_in_place.py places arenas to test
    inputs read on either side of them)."""
    return np.zeros(size, dtype)


class _Memory:
    """``count`` values of ``dtype`` from ``address``, for ``np.asarray``: a view of memory this
    process owns elsewhere (no copy, no ctypes type made per length)."""

    __slots__ = ("__array_interface__",)

    def __init__(self, address: int, count: int, dtype: np.dtype):
        self.__array_interface__ = {"data": (address, False), "shape": (count,), "typestr": dtype.str, "version": 3}


_DIRECT_SMALLEST = 1024  # elements: a smaller gradient's copy per slice costs less than it saves


def _direct_slot(seeded: tuple, graded: list, codes: np.ndarray) -> tuple:
    """``seeded`` (``backward_setup``'s offsets, arenas and touched flags) with the largest
    gradient slot of the inputs ``graded`` ((row, numel) pairs) moved to the end of its arena,
    and that input's row (or -1): the batch kernel then computes that input's gradients in their
    result blocks (``value_and_grad_slices``'s ``direct``). Only where the rest of that arena is
    no larger than the slot, so that a slice's arena reaches into its neighbour's block alone."""
    offsets, seeded32, seeded64, touched = seeded
    best, numel = -1, 0
    for row, size in graded:
        if row < len(offsets) and offsets[row] >= 0 and size > numel:
            best, numel = row, size
    if best < 0 or numel < _DIRECT_SMALLEST:
        return (*seeded, -1)
    code = int(codes[best])
    arena = (seeded32, seeded64)[code]
    total, old = len(arena), int(offsets[best])
    if total - numel > numel:
        return (*seeded, -1)
    same = codes[: len(offsets)] == code
    moved = offsets.copy()  # (slots are disjoint or one: rows sharing the slot move with it)
    moved[same & (offsets > old)] -= numel
    moved[same & (offsets == old)] = total - numel
    relaid = np.concatenate([arena[:old], arena[old + numel :], arena[old : old + numel]])
    return (moved, relaid, seeded64, touched, best) if code == 0 else (moved, seeded32, relaid, touched, best)


def _refuse_to_be_differentiated(inputs) -> None:
    """A replay is not seen by autograd: inside ``tapegrad.record`` (or ``vmap``, which records)
    its outputs were constants of the outer tape, and with inputs that require grad they carried
    no gradient (``func.grad`` of it gave zeros), silently."""
    if grad_mode.recordings_active[0] and grad_mode.active_recording() is not None:
        raise NotImplementedError(
            "a Tape replayed inside tapegrad.record (or vmap) is not recorded: call the function it recorded instead"
        )
    if grad_mode.state.enabled:
        for value in inputs:  # arrays, the common inputs, never require grad: one test each
            if type(value) is not np.ndarray and isinstance(value, Tensor) and value._requires_grad:
                raise RuntimeError(
                    "a Tape replay is not differentiable by autograd: pass inputs that do not require grad "
                    "(.detach()) and take gradients with tape.value_and_grad or tape.backward"
                )


def _release_captured(tape: _RecordingTape, inputs) -> None:
    """Tensors the recorded function captured and changed in place (a parameter's update, a
    buffer) stand on the recording's rows when it ends: each goes back to what it stood for
    before (a leaf stays a leaf, a constant a constant), with its changed values, as a
    ``torch.func`` transform leaves autograd's graph alone. Returns those that were results of
    another graph, whose change the caller refuses."""
    own = {id(tensor) for tensor in inputs}
    of_another_graph = []
    for tensor, previous_tape, row, requires_grad in tape.captured.values():
        if id(tensor) not in own and tensor._tape is tape:
            if previous_tape is not None:
                of_another_graph.append(tensor)
            tensor._tape, tensor._row, tensor._requires_grad, tensor._grad_fn = previous_tape, row, requires_grad, None
            if previous_tape is not None:
                previous_tape.hold(row, tensor)
    return of_another_graph


def _input(tape: _RecordingTape, tensor: Tensor) -> int:
    """The row of a recording's input: a leaf; for an integer or boolean input (no gradient),
    a leaf row without one, which the tensor stands on, so that what reads it is recorded
    (registered as a constant, it was a constant of the tape: the example's labels forever)."""
    if tensor._requires_grad:
        return tape.register(tensor)
    data = tensor._data
    row = tape.append(_ops.LEAF_OPCODE | NO_GRAD, -1, -1, 0, tape.layout(data.dtype, data.shape), 0.0)
    tensor._tape, tensor._row = tape, row
    tape.hold(row, tensor)
    tape.leaves.append((row, tensor))
    return row


class Tape:
    """A recorded computation (``tapegrad.record``) that can be replayed at new inputs:
    ``tape(*inputs)`` (forward), ``value_and_grad``, ``backward`` (a VJP for the last forward)
    and ``jacobian``. Each replay is two compiled calls over the recorded rows, and never touches
    any tensor's ``.grad``. Pickles, and ``save``/``load_tape`` move it between processes.

    Inputs are numpy arrays or tensors of the recorded shapes and dtypes (float32 or float64);
    outputs are numpy arrays of the recorded outputs' shapes.

    Raises ``ValueError`` naming the input whose shape or dtype differs from the recording, and
    ``GuardError`` when a value Python control flow read while recording comes out differently.

    >>> import numpy as np, tapegrad as tg
    >>> tape = tg.record(lambda x: (x * x).sum(), np.array([1.0, 2.0]))
    >>> value, (grad,) = tape.value_and_grad(np.array([3.0, 4.0]))
    >>> float(value), grad.tolist()
    (25.0, [6.0, 8.0])
    """

    # {row: PyTorch's message} where the recording changed a value a row saved (``_freeze``):
    # its backward raises that message, as eager's would (kept by pickles and tape files)
    _modified: dict = {}

    def __init__(self, fn, example_inputs, rerecord: bool = False):
        self._start(fn, len(example_inputs), rerecord)
        self._build(example_inputs)

    def _start(self, fn, count: int, rerecord: bool) -> None:
        self._lock = threading.RLock()
        self._fn = fn
        self._rerecord = rerecord
        self._names = _parameter_names(fn, count)

    @classmethod
    def _recorded_again(cls, previous, fn, example_inputs, same=None) -> Tape:
        """``Tape(fn, example_inputs)``, or ``previous`` when this recording is previous's
        exactly: the same rows, parameters, layouts, inputs and truth guards, constants of the
        same bits, and no guard on a value; ``same(previous)``, asked after ``fn`` ran, may
        refuse it too.

        ``fn`` runs in full either way (``torch.func`` transforms call the function on every
        call: its Python side effects happen, and whatever it reads is read again). What is
        skipped is the work that depends only on what the recording holds: freezing it into
        arrays, laying out its slots, and the replay's own set-up (its batch plans, its
        kernels' first use), which for ``vmap(grad(f))`` over a small model was about as long
        as running ``f``. A tape is a complete description of its replay, so two equal ones
        replay alike. A guard on a value Python read is calibrated at the recording's inputs
        (``_calibrate_guards``), so a tape with one is never taken for another."""
        tape = cls.__new__(cls)
        tape._start(fn, len(example_inputs), False)
        recording = tape._run(example_inputs)
        recorded_as = _recorded_as(*recording)
        if (
            previous is not None
            and recorded_as is not None
            and previous.__dict__.get("_recorded_as") == recorded_as
            and previous._same_constants(recording[0], recording[2])
            and (same is None or same(previous))
        ):
            return previous
        tape._finish(recording, example_inputs)
        tape._recorded_as = recorded_as
        return tape

    def _same_constants(self, tape, input_rows) -> bool:
        """Whether the constants ``tape`` (a recording) holds, and the leaves it captured, are
        the bits this tape replays with (held as their rows' dtypes, as ``_freeze`` holds
        them)."""
        rows = tape.rows_array()
        opcodes = rows[:, OPCODE] & OPCODE_MASK
        inputs = set(input_rows)
        by_row = {row: tensor for row, tensor in tape.leaves}
        for row in np.flatnonzero((opcodes == _ops.LEAF_OPCODE) | (opcodes == _ops.CONSTANT_OPCODE)).tolist():
            if row in inputs:
                continue
            value = tape.replay_values[row] if row in tape.replay_values else by_row[row]._data
            slot = self._slot(row)
            held = np.asarray(value).reshape(-1).astype(slot.dtype, copy=False)
            if not same_bits(held, slot):
                return False
        return True

    # -- recording ------------------------------------------------------------------------

    def _build(self, example_inputs) -> None:
        self._finish(self._run(example_inputs), example_inputs)

    def _run(self, example_inputs) -> tuple:
        """Run the function on a new recording tape: ``(tape, inputs, input_rows, output_rows,
        outputs)``."""
        inputs = [self._as_input(i, value) for i, value in enumerate(example_inputs)]
        # Layouts numbered by this recording alone: ``_recorded_again`` compares recordings'
        # rows, and the thread's template (the layouts recent eager tapes made) changes them.
        tape = _RecordingTape(own_layouts=True)
        tape.replay_values = {}
        tape.detached = {}
        tape.captured = {}
        originals = [np.asarray(v._data if isinstance(v, Tensor) else v) for v in example_inputs]
        tape.shared = SharedStorage(tape, {id(t): (t, a) for t, a in zip(inputs, originals)})
        input_rows = [_input(tape, tensor) for tensor in inputs]
        tape.shared.input_rows.update(input_rows)
        held = self._hold_constants()
        previous = grad_mode.state.recording
        grad_mode.state.recording = tape
        grad_mode.recordings_active[0] += 1
        grad_mode.special_modes[0] += 1
        # The cyclic garbage collector waits until the function returns. A recording keeps every
        # tensor it makes alive, and all of them die with it by reference counting (they form no
        # cycles), yet each 25% growth of the long-lived objects triggered a full collection,
        # which traverses everything the process holds: numba's loaded kernels alone are over
        # 100,000 objects. Recording the 10,000-op scalar graph ran 2-3 of them, 40-70 ms of
        # 210 (``vmap(grad)``'s call records once). Garbage the function itself makes in cycles
        # waits for the next collection after it.
        collecting = gc.isenabled()
        try:
            if collecting:
                gc.disable()
            with grad_mode.differentiating():
                result = self._fn(*inputs)
            self.single_output = isinstance(result, Tensor)
            outputs = (result,) if self.single_output else tuple(result)
            if not all(isinstance(out, Tensor) for out in outputs):
                raise TypeError("the recorded function must return a tensor or a tuple of tensors")
            # Before the captured tensors go back to what they were: one changed in place and
            # returned (``buf.add_(x); return buf``) is its new row, not its first value.
            output_rows = [_input_row(tape, out) for out in outputs]
        finally:
            if collecting:
                gc.enable()
            grad_mode.special_modes[0] -= 1
            grad_mode.recordings_active[0] -= 1
            grad_mode.state.recording = previous
            changed_elsewhere = _release_captured(tape, inputs)
            self._release_constants(tape, held)
            # What only the recording itself read: its storage table points back at the tape,
            # and detached aliases stand on it, cycles that kept each recording's saved
            # intermediates until the garbage collector ran (15 dead recordings: 375 MB).
            tape.shared = tape.detached = None
        if changed_elsewhere:
            # Its values changed, and its graph outside still computes the old ones: PyTorch's
            # functional transforms refuse such a change too.
            raise NotImplementedError(
                "tapegrad.record: the function changed in place a tensor of another autograd graph "
                f"(shape {tuple(changed_elsewhere[0].shape)}); clone it before changing it"
            )
        return tape, inputs, input_rows, output_rows, outputs

    def _finish(self, recording: tuple, example_inputs) -> None:
        tape, inputs, input_rows, output_rows, outputs = recording
        self._freeze(tape, inputs, input_rows, output_rows)
        # Integers and booleans replay in float64 slots; the outputs go back in their dtypes
        # (an argmax's indices, a comparison's mask: usable as indices and masks again).
        self._output_dtypes = tuple(out._data.dtype if out._data.dtype.kind in "biu" else None for out in outputs)
        self._calibrate_guards(example_inputs)
        self.outputs = outputs  # the eager results of the recording run

    def _hold_constants(self) -> list:
        """Before a re-record (``rerecord=True``): each tensor an earlier recording captured goes
        back to the value that recording read, for the function to read again. Read as the
        earlier recordings left them (``buf.add_(x)`` once per recording), the tape replayed
        other values at the very inputs it had replayed before, silently."""
        constants = getattr(self, "_constants", None)
        if constants is None:
            return []
        held = []
        for tensor, value in constants.values():
            if not np.array_equal(tensor._data, value, equal_nan=value.dtype.kind in "fc"):
                held.append((tensor, tensor._data.copy()))
                tensor._data[...] = value
        return held

    def _release_constants(self, tape, held: list) -> None:
        """After a recording: what a re-record changed of the captured tensors is undone, as a
        replay changes no tensor; with ``rerecord=True`` the values read are kept for the next."""
        constants = getattr(self, "_constants", None)
        first = constants is None
        for tensor, value in held:
            tensor._data[...] = value
        if not self._rerecord:
            return
        constants = {} if first else constants
        inputs = tape.shared.input_rows if tape.shared is not None else ()
        for row, (tensor, *_) in tape.captured.items():
            if row in inputs:  # this recording's own inputs (registered as captured too): no constants
                continue
            value = tape.replay_values[row]
            if id(tensor) not in constants:
                if not first and not np.array_equal(tensor._data, value, equal_nan=value.dtype.kind in "fc"):
                    tensor._data[...] = value  # first read in this re-record: back to before it
                constants[id(tensor)] = (tensor, value)
        self._constants = constants

    def _freeze(self, tape, inputs, input_rows, output_rows) -> None:
        """Copy the rows into arrays and lay out one value slot per row."""
        self.rows = tape.rows_array().copy()
        self.params = tape.params_array().copy()
        self.layouts = tape.layouts_array().copy()
        self.dims = np.array(tape.dims, np.int64)
        self.aux = np.array(tape.aux, np.int64)
        self.guards = dict(tape.guards)
        self.input_rows = np.array(input_rows, np.int64)
        self.output_rows = np.array(output_rows, np.int64)
        self._modified = _modified_saves(tape, self.rows, self.aux, input_rows, output_rows)
        self.input_specs = [(x._data.shape, x._data.dtype) for x in inputs]
        # Rows whose eager values were integers (held as float64 here): by their layout, which
        # the recording keyed by the numpy dtype.
        integer_layouts = {
            layout: np.dtype(key[0]).name for key, layout in tape.layout_ids.items() if np.dtype(key[0]).kind in "iu"
        }
        self.integer_rows = {}
        if integer_layouts:  # (a loop over the rows only then: 30,000 rows of a scalar graph)
            layouts = self.rows[:, LAYOUT]
            for row in np.flatnonzero(np.isin(layouts, list(integer_layouts))).tolist():
                self.integer_rows[row] = integer_layouts[int(layouts[row])]
        if self.guards:
            self._mark_exact_truths()
        self._lay_out()
        self._allocate()
        # Constants and the example inputs' values: filled once, as recorded.
        by_row = {row: tensor for row, tensor in tape.leaves}
        opcodes = self.rows[:, OPCODE] & OPCODE_MASK
        for row in np.flatnonzero((opcodes == _ops.LEAF_OPCODE) | (opcodes == _ops.CONSTANT_OPCODE)):
            value = tape.replay_values[row] if row in tape.replay_values else by_row[row]._data
            self._slot(row)[...] = np.asarray(value).reshape(-1)
        self._read_transposes_in_place()
        self._program = _register.UNBUILT
        self.__dict__.pop("_masked_rows", None)  # keyed by id(rows): a new array may reuse an old id

    def _calibrate_guards(self, example_inputs) -> None:
        """Make each guard on a value Python read expect what the replay itself reads there at
        the recording's inputs.

        Python read the eager value, which a replay kernel may round otherwise (vectorized
        ``exp``, a matmul's blocking: float(x.tanh().mean()) differed in the last bit for about
        half of the inputs tried): compared with it, the replay failed at the very inputs it was
        recorded with. So one forward sweep here, from the example inputs as given (the function
        may have changed its copies in place), and each value guard takes the replay's value. It
        then holds where the replay computes exactly what it computed at the recording's inputs,
        which a deterministic replay does where the value depends on the same inputs as there.

        A truth guard (``if x.sum() > 0``) keeps the truth Python saw: where the replay's
        comparison comes out the other way at the recording's inputs (a sum within rounding of
        zero), taking the replay's truth would apply the recorded branch exactly where Python
        would take the other one. Such a tape fails its guard at its own inputs instead.

        Run at record time, not on the first replay: a tape shipped or saved before its first
        replay must not be calibrated at other inputs."""
        if not any(int(self.rows[row, IN1]) >= 0 for row in self.guards):
            return
        forward, replay_rules, *_ = _kernels()
        self._load_inputs(example_inputs)
        # Past failed guards (each row's slot is its own, so every read value stays there).
        status, row = forward.GUARD_FAILED, -1
        while status == forward.GUARD_FAILED:
            status, row = forward.forward_sweep(
                self.rows, self.params, self.layouts, self.dims, self.aux, replay_rules, self.offsets,
                self.values[0], self.values[1], self.scratch, row + 1,
            )  # fmt: skip
        if status:  # a kernel error: the replay reports it
            return
        for row, (kind, where, read) in self.guards.items():
            expected = int(self.rows[row, IN1])
            if expected < 0:
                continue
            observed = self._slot(self.rows[row, IN0]).astype(np.float64)
            # Only a rounding apart: a replay that computes something else at the recording's
            # inputs (a value changed where no recording sees it: through a tensor's private
            # array) must keep failing its guard, not be taken as right.
            tolerance = 1e-4 if self._dtype(self.rows[row, IN0]) == np.float32 else 1e-10
            if np.allclose(observed, np.asarray(read, np.float64).reshape(-1), rtol=tolerance, atol=0, equal_nan=True):
                self._slot(expected)[...] = observed
                self.guards[row] = (kind, where, observed.reshape(self._shape(self.rows[row, IN0])))

    def _read_transposes_in_place(self) -> None:
        """Products read a transposed operand (``x @ w.t()``, every ``F.linear``) where its
        source lies: the mm row takes the source as its operand with a flag in ``iparam``
        (``_kernels.backward.product_shape``), BLAS reads it transposed, and the gradient lands
        in the source's slot. A transpose nothing else reads becomes an inert constant row. Before
        this, each replay copied the weight into the view's slot, and its backward added the
        view's gradient back into the weight's slot transposed (mlp step: two (128, 64) strided
        walks a replay)."""
        rows, aux = self.rows, self.aux
        opcodes = rows[:, OPCODE] & OPCODE_MASK
        products = np.flatnonzero(opcodes == _MM_OPCODE)
        if not len(products):
            return
        is_view = _IS_VIEW[opcodes]
        operands = rows[products][:, [IN0, IN1]]
        if not is_view[operands[operands >= 0]].any():
            return
        views = set(np.flatnonzero(is_view).tolist())
        # Who reads each row: in0 and in1, counted at once, and a join's list (row_sources).
        lists = _LISTS_INPUTS[opcodes]
        fields = rows[~lists][:, [IN0, IN1]].reshape(-1)
        readers = np.bincount(fields[fields >= 0], minlength=len(rows)).astype(np.int64)
        for row in np.flatnonzero(lists).tolist():
            for source in row_sources(row, *rows[row, :4].tolist(), aux):
                if source >= 0:
                    readers[source] += 1
        readers[self.output_rows] += 1
        readers[self.input_rows] += 1
        for row in self.guards:
            readers[row] += 1
        for product in products.tolist():
            if rows[product, IPARAM] != 0:
                continue
            flags = 0
            for bit, field in ((1, IN0), (2, IN1)):
                view = int(rows[product, field])
                if view not in views or not self._is_transpose(view):
                    continue
                rows[product, field] = rows[view, IN0]
                readers[view] -= 1
                readers[rows[view, IN0]] += 1
                flags |= bit
                if readers[view] == 0:  # read by nothing now: not computed, no gradient slot
                    readers[rows[view, IN0]] -= 1
                    rows[view, OPCODE] = _ops.CONSTANT_OPCODE | NO_GRAD
                    rows[view, IN0] = -1
            rows[product, IPARAM] = flags

    def _is_transpose(self, view: int) -> bool:
        """Whether view row ``view`` is its 2-D source transposed, read from the source's
        slot as the replay lays it out (dense, C order)."""
        source = int(self.rows[view, IN0])
        if source < 0:
            return False
        if self.rows[view, OPCODE] & NO_GRAD and not self.rows[source, OPCODE] & NO_GRAD:
            return False  # made under no_grad: the gradient stops at the view, not at its source
        shape, source_shape = self._shape(view), self._shape(source)
        if len(shape) != 2 or len(source_shape) != 2 or shape != source_shape[::-1]:
            return False
        if self._dtype(view) != self._dtype(source):
            return False
        start = int(self.rows[view, IPARAM])
        offset, *strides = self.aux[start : start + 3].tolist()
        return offset == 0 and strides == [1, source_shape[1]]

    def _lay_out(self) -> None:
        """One value slot per row, in the float32 or float64 arena by its layout's dtype."""
        layout_of_row = self.rows[:, LAYOUT]
        codes = self.layouts[layout_of_row, 0]
        numels = self.layouts[layout_of_row, 1]
        self.offsets = np.zeros(len(self.rows), np.int64)
        self.sizes = [0, 0]
        for code in (0, 1):
            mask = codes == code
            ends = np.cumsum(numels[mask])
            self.offsets[mask] = ends - numels[mask]
            self.sizes[code] = int(ends[-1]) if len(ends) else 0

    def _allocate(self) -> None:
        self.values = (_new_arena(self.sizes[0], np.float32), _new_arena(self.sizes[1], np.float64))
        self.__dict__.pop("_integer_check_list", None)  # views of the arenas just replaced
        self.__dict__.pop("_output_views", None)
        self.__dict__.pop("_gradient_sizes", None)
        self.__dict__.pop("_batch_plans", None)
        self.__dict__.pop("_in_place", None)
        self.__dict__.pop("_fused", None)
        # Per row, asked on every replay of the inputs and outputs: worked out once (they were
        # ~20 us of Python in a 76 us replay of the mlp step). Views of ``values``, so made anew
        # with it.
        self._slots: dict = {}
        self._shapes: dict = {}
        self._input_slots = [self._slot(row) for row in self.input_rows.tolist()]
        # per input: (its gradient arena, numel, shape, dtype, row): the dtype picks the arena
        # (dtype None: an integer or boolean input, which has no gradient)
        self._input_layout = [
            (
                int(self._dtype(row) == np.float64),
                math.prod(self._shape(row)),
                self._shape(row),
                self._dtype(row) if dtype.kind == "f" else None,
                row,
            )
            for row, (_, dtype) in zip(self.input_rows.tolist(), self.input_specs)
        ]
        self._output_shapes = [self._shape(row) for row in self.output_rows.tolist()]
        self._all_positions = tuple(range(len(self.input_rows)))
        self._float_inputs = tuple(dtype.kind == "f" for _, dtype in self.input_specs)  # (labels have no gradient)
        self._plans: dict = {}  # positions -> the backward's slot layout (``backward_sweep``)
        self._steady: dict = {}  # argnums -> ``_Steady`` or None (``value_and_grad``)
        self._steady_inputs = False  # ``_steady_slots``: not worked out yet
        self.scratch = np.zeros(self.sizes[0], np.float64)
        bases = [v.__array_interface__["data"][0] for v in self.values]
        codes = self._codes = self.layouts[self.rows[:, LAYOUT], 0]  # each row's arena
        itemsizes = np.where(codes == 0, 4, 8)
        self.addresses = np.where(codes == 0, bases[0], bases[1]) + self.offsets * itemsizes
        self.freed = np.zeros(len(self.rows), np.bool_)
        self._forwarded = False
        self._inputs_in_arena = True  # False after value_and_grad read some where they lie
        self._in_place_addresses = None  # the backward's addresses for those, during that call

    def _slot(self, row: int) -> np.ndarray:
        """Row ``row``'s values: a flat view of its arena."""
        slot = self._slots.get(row)
        if slot is None:
            layout = self.rows[row, LAYOUT]
            code, numel = self.layouts[layout, 0], self.layouts[layout, 1]
            start = self.offsets[row]
            slot = self._slots[row] = self.values[code][start : start + numel]
        return slot

    def _shape(self, row: int) -> tuple:
        shape = self._shapes.get(row)
        if shape is None:
            layout = self.rows[row, LAYOUT]
            _, _, ndim, offset = self.layouts[layout]
            shape = self._shapes[row] = tuple(int(d) for d in self.dims[offset : offset + ndim])
        return shape

    def _dtype(self, row: int):
        return CODE_DTYPES[self.layouts[self.rows[row, LAYOUT], 0]]

    def _as_input(self, index: int, value) -> Tensor:
        data = value._data if isinstance(value, Tensor) else np.asarray(value)
        if data.dtype not in _INPUT_DTYPES:
            raise TypeError(
                f"input {index} ({self._names[index]!r}) must be float32, float64, int64, int32 or bool, got {data.dtype}"
            )
        # Integer and boolean inputs (class labels, masks) are values of the tape too, read at
        # each replay (held exactly as float64 in its arena), without a gradient. One copy, taken
        # as it is: through the public constructor (a second copy, its checks) it was a tenth of
        # a per-sample ``vmap(grad(f))`` call's recording.
        tensor = _wrap(np.array(data))
        if data.dtype.kind == "f":
            tensor._requires_grad = True
        return tensor

    # -- replaying ------------------------------------------------------------------------

    def _checked(self, values, count: int, what: str = "input") -> list:
        """``values`` as arrays, each of the shape and dtype the first ``count`` inputs were
        recorded with; ``TypeError`` for another number of them, ``ValueError`` naming the first
        that differs (``what``: how the message calls them)."""
        if len(values) != count:
            raise TypeError(f"the tape was recorded with {count} {what}s, got {len(values)}")
        arrays = []
        for index, (value, (shape, dtype)) in enumerate(zip(values, self.input_specs)):
            data = (
                value if type(value) is np.ndarray else value._data if isinstance(value, Tensor) else np.asarray(value)
            )
            if data.shape != shape or data.dtype != dtype:
                raise ValueError(
                    f"{what} {index} ({self._names[index]!r}) was recorded as shape {shape} {dtype}, "
                    f"got shape {data.shape} {data.dtype}"
                )
            if dtype.kind != "f" and beyond_exact(data):
                raise ValueError(
                    f"{what} {index} ({self._names[index]!r}) holds integers of 2**53 or beyond, which a replay "
                    "holds as float64 and may round"
                )
            arrays.append(data)
        return arrays

    def _load_inputs(self, inputs) -> None:
        slots = self._input_slots
        for slot, data in zip(slots, self._checked(inputs, len(slots))):
            slot[...] = data.reshape(-1)

    def _in_place_positions(self) -> tuple:
        """The inputs ``value_and_grad`` may read where they lie: floating-point ones of
        ``_IN_PLACE_BYTES`` or more that are not an output themselves and that no guard reads
        (those are read from the arena after the sweep)."""
        positions = self.__dict__.get("_in_place")
        if positions is None:
            outputs = set(self.output_rows.tolist())
            guarded = {int(self.rows[row, IN0]) for row in self.guards}
            positions = self._in_place = tuple(
                position
                for position, (row, (shape, dtype)) in enumerate(zip(self.input_rows.tolist(), self.input_specs))
                if dtype.kind == "f"
                and math.prod(shape) * dtype.itemsize >= _IN_PLACE_BYTES
                and row not in outputs
                and row not in guarded
            )
        return positions

    def _place_inputs(self, inputs):
        """Load the inputs, the large ones by reference: ``(offsets, values32, values64,
        addresses)`` for the sweeps, or None where every input was copied.

        The forward families read a row's values at ``values[offsets[row]:...]``. For each
        arena holding an input read in place, ``values`` becomes a view of memory from the
        lowest of the arena's and those inputs' addresses to the highest end, and ``offsets``
        count from there: the rows' slots in the arena, the inputs where they lie. Nothing
        between is read. ``addresses`` are the backward's, the inputs' where they lie."""
        arrays = self._checked(inputs, len(self._input_slots))
        eligible = self._in_place_positions()
        placed = {}
        for position, (slot, data, value) in enumerate(zip(self._input_slots, arrays, inputs)):
            # Only an array the caller holds through the call: one converted here (from a list)
            # was freed on return, and the sweeps read freed memory (a segfault, or gradients
            # of whatever reused it).
            held = data is value or (isinstance(value, Tensor) and data is value._data)
            if position in eligible and held and data.flags.c_contiguous and data.flags.aligned:
                placed[position] = data
            else:
                slot[...] = data.reshape(-1)
        if not placed:
            return None
        codes = self._codes
        bases = [arena.__array_interface__["data"][0] for arena in self.values]
        itemsizes = (4, 8)
        lows = list(bases)
        highs = [base + size * itemsize for base, size, itemsize in zip(bases, self.sizes, itemsizes)]
        rows = self.input_rows
        for position, data in placed.items():
            code = int(codes[rows[position]])
            start = data.__array_interface__["data"][0]
            lows[code], highs[code] = min(lows[code], start), max(highs[code], start + data.nbytes)
        # (numpy aligns an arena to 16 bytes and an aligned input to its itemsize: exact)
        shifts = [(base - low) // itemsize for base, low, itemsize in zip(bases, lows, itemsizes)]
        offsets = self.offsets + np.where(codes == 0, shifts[0], shifts[1])
        addresses = self.addresses.copy()
        for position, data in placed.items():
            row = int(rows[position])
            code = int(codes[row])
            start = data.__array_interface__["data"][0]
            offsets[row] = (start - lows[code]) // itemsizes[code]
            addresses[row] = start
        values = [
            arena
            if (low, high) == (base, base + arena.nbytes)
            else np.asarray(_Memory(low, (high - low) // itemsize, arena.dtype))
            for arena, base, low, high, itemsize in zip(self.values, bases, lows, highs, itemsizes)
        ]
        return offsets, values[0], values[1], addresses

    def _scalar_program(self):
        """The tape as a register program (a tape of scalars: tapegrad/_register.py), or None.
        Rewritten on the first replay rather than in record(): a recording never replayed pays
        nothing (the rewrite took a quarter of the scalar graph's recording time)."""
        if self._program is _register.UNBUILT:
            # (integer arithmetic is checked row by row after the general sweep)
            self._program = None if self._integer_checks() else _register.build(self)
        return self._program

    def _forward(self, inputs, rerecorded: bool = False, in_place: bool = False) -> None:
        """Replay forward at ``inputs``. With ``in_place`` (``value_and_grad``, whose backward
        follows in the same call), large inputs are read where they lie (``_place_inputs``)."""
        _refuse_to_be_differentiated(inputs)
        if self._scalar_program() is not None:
            self._program.forward(self._checked(inputs, len(self.input_specs)))
            self._forwarded = True
            return
        forward, replay_rules, *_ = _kernels()
        self._in_place_addresses = None
        placed = self._place_inputs(inputs) if in_place and self._in_place_positions() else None
        self._inputs_in_arena = placed is None
        if placed is None:
            self._load_inputs(inputs)
            offsets, values32, values64 = self.offsets, self.values[0], self.values[1]
        else:
            offsets, values32, values64, addresses = placed
        start = 0
        fused = self._fused_plan()
        while True:
            status, row = forward.forward_sweep(
                self.rows, self.params, self.layouts, self.dims, self.aux, replay_rules, offsets, values32, values64,
                self.scratch, start, fused,
            )  # fmt: skip
            # A tape recorded at these very inputs took Python's truth here: a comparison within
            # rounding of its other side (``forward._undecided``) is decided, go on past it.
            if not (status == forward.GUARD_FAILED and rerecorded and self._truth_holds(row)):
                break
            start = row + 1
        if status == forward.GUARD_FAILED:
            self._forwarded = False
            kind, where, expected = self.guards[row]
            if self._rerecord and not rerecorded:
                draws = _factories.random_draws.count
                self._build(inputs)
                _refuse_random_draws(draws)
                self._forward(inputs, rerecorded=True)
                return
            if rerecorded:  # recorded at these very inputs, the replay still takes another branch
                raise GuardError(
                    f"replay guard failed: {kind} at {where}, on a tape recorded again at these inputs: the "
                    "replay does not reproduce what the recording read (a truth within rounding of the "
                    "boundary, or a value changed outside autograd, through .data)"
                )
            now = self._slot(self.rows[row, 1]).reshape(self._shape(self.rows[row, 1]))
            if self._truth_holds(row):
                raise GuardError(
                    f"replay guard failed: {kind} at {where} compares two values within rounding of each other at "
                    "these inputs, where the replay's arithmetic (another summation order) may decide otherwise "
                    "than Python's would; record again at these inputs, or pass rerecord=True to tapegrad.record"
                )
            raise GuardError(
                f"replay guard failed: {kind} at {where} read {_describe(expected)} when recorded and "
                f"{_describe(now != 0 if isinstance(expected, bool) else now)} now; the recorded branch "
                "does not apply to these inputs (record again, or pass rerecord=True to tapegrad.record)"
            )
        if status:
            self._forwarded = False
            opcode = self.rows[row, OPCODE] & OPCODE_MASK
            raise kernel_error(status == forward.KERNEL_FAILED, "replay", _ops.OPS[opcode].name)
        if self._integer_checks():
            self._check_integers()
        if placed is not None:  # the backward of the same call reads them where they lie too
            self._in_place_addresses = addresses
        self._forwarded = True

    def _fused_plan(self):
        """The groups of large elementwise rows the forward replays a block at a time
        (``_kernels/fused.py``), or None. Worked out on the first replay, with the layout."""
        plan = self.__dict__.get("_fused", False)
        if plan is False:
            from ._kernels import fused

            plan = None
            if not self._integer_checks():  # (those read rows' values after the sweep)
                forward, replay_rules, _, (_, saves, _) = _kernels()
                rows = self.rows
                opcodes = rows[:, OPCODE] & OPCODE_MASK
                fields = opcodes.tolist(), rows[:, IN0].tolist(), rows[:, IN1].tolist(), rows[:, IPARAM].tolist()
                sources = lambda: [  # noqa: E731
                    row_sources(row, *row_fields, self.aux) for row, row_fields in enumerate(zip(*fields))
                ]
                keep = np.zeros(len(rows), np.bool_)
                keep[self.output_rows] = True
                plan = fused.plan(rows, self.layouts, replay_rules[opcodes], sources, saves[opcodes], keep)
            self._fused = plan
        return plan

    def _mark_exact_truths(self) -> None:
        """Mark (``iparam`` 1) the truth guards whose comparison reads integers only: a label, a
        count of a mask (``(labels == ignore).sum() > 0``), ops of integers that float64 and
        float32 compute exactly in any order. Their truth is never undecided
        (``forward._undecided``), even where the two sides are equal, as counts often are."""
        exact: dict = {}

        def is_exact(row: int) -> bool:
            pending = [row]
            while pending:  # the sources first, without recursion (a chain of ops may be long)
                current = pending[-1]
                if current in exact:
                    pending.pop()
                    continue
                op = _ops.OPS[self.rows[current, OPCODE] & OPCODE_MASK]
                if current in self.integer_rows or op.name in _INTEGRAL_RESULTS:
                    exact[current] = True
                elif (op.name not in _EXACT_OF_INTEGERS and op.family not in (_ops.VIEW, _ops.COPY)) or (
                    op.family == _ops.SCALAR and not float(self.params[current, PARAM]).is_integer()
                ):
                    exact[current] = False
                else:
                    sources = [int(v) for v in row_sources(current, *self.rows[current, :4], self.aux) if v >= 0]
                    waiting = [source for source in sources if source not in exact]
                    if waiting:
                        pending.extend(waiting)
                        continue
                    exact[current] = all(exact[source] for source in sources)
                pending.pop()
            return exact[row]

        for row in self.guards:
            compared = int(self.rows[row, IN0])
            if self.rows[row, IN1] < 0 and _ops.OPS[self.rows[compared, OPCODE] & OPCODE_MASK].family == _ops.NONDIFF:
                operands = [int(self.rows[compared, IN0]), int(self.rows[compared, IN1])]
                if all(operand < 0 or is_exact(operand) for operand in operands):
                    self.rows[row, IPARAM] = 1

    def _truth_holds(self, row: int) -> bool:
        """Whether the truth guard at ``row`` reads what it read when recorded (its failure was
        then ``forward._undecided``'s: its comparison within rounding of the other side)."""
        if self.rows[row, IN1] >= 0:  # a value guard, not a truth
            return False
        now = self._slot(self.rows[row, IN0])
        return now.size == 1 and bool(now[0] != 0) == bool(self.params[row, PARAM] != 0)

    def _integer_checks(self) -> list:
        """``[(row, slot, low, high)]``: the rows of integer arithmetic (``i * j``, ``-i``, a sum of
        integers...), each with the range in which the replay's float64 holds what eager
        computes: the dtype's (int32 wraps beyond it) within float64's exact integers (2**53).
        Selections and views of integers need none: their values are their inputs'. Cached."""
        checks = self.__dict__.get("_integer_check_list")
        if checks is None:
            checks = []
            for row, name in getattr(self, "integer_rows", {}).items():
                rule = _ops.OPS[self.rows[row, OPCODE] & OPCODE_MASK].replay_rule
                if rule in _INTEGER_ARITHMETIC:
                    limits = np.iinfo(np.dtype(name))
                    # (a power of integers to a negative exponent is 0, 1 or -1 eagerly, PyTorch's
                    # rule, and a fraction in the replay's float64: refused where it is one)
                    whole = rule in ("pow", "rpow_scalar")
                    checks.append((row, self._slot(row), max(limits.min, -_EXACT), min(limits.max, _EXACT), whole))
            self._integer_check_list = checks
        return checks

    def _check_integers(self) -> None:
        for row, slot, low, high, whole in self._integer_checks():
            if whole and slot.size and np.any(slot != np.trunc(slot)):
                self._forwarded = False
                raise GuardError(
                    f"replay guard failed: pow of {self.integer_rows[row]} values to a negative exponent at these "
                    "inputs, which eager computes as PyTorch's integer power (0 unless the base is 1 or -1) and a "
                    "replay, holding integers as float64, cannot; compute in floating point, or call the function "
                    "eagerly"
                )
            if slot.size and (slot.min() < low or slot.max() > high):
                self._forwarded = False
                bad = slot[(slot < low) | (slot > high)][0]
                raise GuardError(
                    f"replay guard failed: {_ops.OPS[self.rows[row, OPCODE] & OPCODE_MASK].name} of "
                    f"{self.integer_rows[row]} values reaches {bad:.17g} at these inputs, beyond {low} to {high}: "
                    "a replay holds integers as float64, exact only within that range, where eager would "
                    "wrap or round; compute in floating point, or call the function eagerly"
                )

    def _outputs(self):
        if self._program is not None:
            return self._typed(self._program.outputs(), copy=False)
        views = self.__dict__.get("_output_views")
        if views is None:  # the outputs' slots in their shapes, once per arena (``_allocate``)
            views = self._output_views = [
                self._slot(row).reshape(shape) for row, shape in zip(self.output_rows.tolist(), self._output_shapes)
            ]
        return self._typed(views, copy=True)

    def _typed(self, values, copy: bool):
        """The outputs as tensors, each in its eager dtype (``_finish``): the tensor, or the tuple."""
        dtypes = self.__dict__.get("_output_dtypes") or (None,) * len(values)
        outputs = [
            _wrap((value.copy() if copy else value) if dtype is None else value.astype(dtype))
            for value, dtype in zip(values, dtypes)
        ]
        return outputs[0] if self.single_output else tuple(outputs)

    @_one_call_at_a_time
    def __call__(self, *inputs):
        """The outputs at new inputs (forward only): a tensor, or a tuple as ``fn`` returned.

        Raises ``ValueError`` for an input of another shape or dtype than recorded, ``TypeError``
        for another number of inputs, ``GuardError`` when a recorded branch does not apply."""
        slots = self._steady_inputs
        if not (slots and self._steady_forward(slots, inputs)):
            self._forward(inputs)
            if slots is False:
                self._steady_slots()
        return self._outputs()

    def _positions(self, argnums) -> tuple:
        """The inputs ``argnums`` names (an int or a tuple of ints, negative from the end, as
        ``torch.func.grad`` takes it), as a tuple of positions; ``IndexError`` outside them."""
        count = len(self.input_rows)
        positions = (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)
        checked = []
        for position in positions:
            if not isinstance(position, (int, np.integer)) or not -count <= position < count:
                raise IndexError(f"argnums {argnums!r} names no input of a tape with {count} inputs")
            checked.append(int(position) % count)
        return tuple(checked)

    def _rows_for(self, positions: tuple) -> np.ndarray:
        """The rows, with ``NO_GRAD`` on the inputs outside ``positions``: the backward then gives
        them no gradient slot, and the rules skip what only they would receive (``X`` in
        ``X @ w`` with respect to ``w``: as much work as the gradient wanted). Cached."""
        if len(positions) == len(self.input_rows):
            return self.rows
        cache = self.__dict__.setdefault("_masked_rows", {})
        key = (id(self.rows), positions)  # a record again (rerecord=True) makes new rows
        rows = cache.get(key)
        if rows is None:
            wanted = {int(self.input_rows[position]) for position in positions}
            # As recording marks rows: a row left marked while what it reads is not would send
            # its gradient to a row with no slot, which the kernels' rules do not check.
            rows = _tape_file.settle_gradients(self.rows, self.aux, leaves=wanted)
            cache[key] = rows
        return rows

    @_one_call_at_a_time
    def backward(self, grad_outputs=None, argnums=None):
        """Gradients of the outputs (weighted by ``grad_outputs``) with respect to every input
        (or to the inputs ``argnums`` names: an int gives one tensor, a tuple a tuple), for the
        inputs of the last forward. Raises ``IndexError`` for an ``argnums`` naming no input, and
        ``RuntimeError`` after a ``value_and_grad`` that read its inputs where they lie."""
        if self._forwarded and not self._inputs_in_arena:
            # Their arrays are the caller's, who may have changed them since: copied now, the
            # backward mixed the new values with the forward's (a silently wrong gradient).
            raise RuntimeError(
                "backward() after value_and_grad(): value_and_grad read its inputs of 256 KB or more where they "
                "lie, without a copy, so the tape cannot go back to them; replay the inputs with tape(*inputs) "
                "first, or ask value_and_grad for the gradients (its grad_outputs and argnums)"
            )
        return self._backward(grad_outputs, argnums)

    def _seeds(self, grad_outputs) -> np.ndarray:
        """The backward's seeds, flat float64: each output's ``grad_outputs`` entry (a tensor, an
        array, or None for a single-element output or an integer or bool one, which carries no
        gradient), in order; PyTorch's ``RuntimeError`` for a missing one or one of another
        shape."""
        program = self._program
        if program is _register.UNBUILT:
            program = self._scalar_program()
        shapes = program.output_shapes if program is not None else self._output_shapes
        if type(grad_outputs) is np.ndarray and len(shapes) == 1 and grad_outputs.shape == shapes[0]:
            # The common call, in one step (a copy only where the dtype is not float64 already).
            seeds = grad_outputs.astype(np.float64, copy=False)
            return seeds if seeds.ndim == 1 else seeds.reshape(-1)
        if grad_outputs is None:
            grad_outputs = (None,) * len(self.output_rows)
        elif isinstance(grad_outputs, (Tensor, np.ndarray, numbers.Number)):  # (a number: a scalar's)
            grad_outputs = (grad_outputs,)
        if len(grad_outputs) != len(shapes):  # as torch.autograd.backward says it
            raise RuntimeError(f"got {len(shapes)} tensors and {len(grad_outputs)} gradients")
        seeds = []
        exact = self.__dict__.get("_output_dtypes") or (None,) * len(shapes)  # (a tape loaded from an old file)
        for index, (shape, gradient) in enumerate(zip(shapes, grad_outputs)):
            if gradient is None:
                if exact[index] is not None:  # an integer or bool output: no gradient flows from it
                    seeds.append(np.zeros(math.prod(shape), np.float64))
                    continue
                if shape and math.prod(shape) != 1:
                    raise RuntimeError("grad can be implicitly created only for scalar outputs")
                seeds.append(_ONE)
            else:
                values = gradient._data if isinstance(gradient, Tensor) else np.asarray(gradient)
                if values.shape != shape:
                    raise RuntimeError(
                        f"Mismatch in shape: grad_output[{index}] has a shape of {values.shape} and output[{index}] has a shape of {shape}."
                    )
                seeds.append(np.asarray(values, np.float64).reshape(-1))
        return seeds[0] if len(seeds) == 1 else np.concatenate(seeds)

    def _refuse_modified_saves(self) -> None:
        """PyTorch's error where the recording changed in place a value a row's backward reads
        (``y.exp_(); y.sigmoid_()``): eager backward raises it, so differentiating the replay
        does, rather than return the gradient of other values. (Upfront, for a row that needs a
        gradient, where eager raises on reaching it.)"""
        if self._modified:
            raise RuntimeError(next(iter(self._modified.values())))

    def _backward(self, grad_outputs, argnums):
        if not self._forwarded:
            raise RuntimeError("call the tape (or value_and_grad) before backward")
        self._refuse_modified_saves()
        seeds = self._seeds(grad_outputs)
        program = self._program
        positions = self._all_positions if argnums is None else self._positions(argnums)
        if program is not None:
            grads = program.backward(seeds)
            floats = self._float_inputs
            chosen = [_wrap(grads[position]) if floats[position] else None for position in positions]
            return chosen[0] if isinstance(argnums, (int, np.integer)) else tuple(chosen)
        _, _, backward, (rules, saves, paths) = _kernels()
        spare = _spare_arenas()  # the last backward's of this thread, if nothing holds them
        # (the inputs value_and_grad's forward read where they lie: read there again)
        addresses = self.addresses if self._in_place_addresses is None else self._in_place_addresses
        rows, plan = self._rows_for(positions), self._plans.setdefault(positions, {})
        if "fused" not in plan:  # its groups of large elementwise rows (``_kernels/fused.py``)
            from ._kernels import fused

            plan["fused"] = fused.backward_plan(rows, self.layouts, rules, paths)
        status, row, grad32, grad64, offsets, touched, uniform = backward.backward_sweep(
            rows, self.params, self.layouts, self.dims, self.aux, addresses, rules, saves, paths, self.output_rows,
            seeds, self.freed, self.freed, True, plan, spare, fused=plan["fused"],
        )  # fmt: skip
        del spare
        if status:
            opcode = self.rows[row, OPCODE] & OPCODE_MASK
            raise kernel_error(status == backward.KERNEL_FAILED, "backward", _ops.OPS[opcode].name)
        grads = self._handed_over(positions, grad32, grad64, offsets, touched, uniform)
        return grads[0] if isinstance(argnums, (int, np.integer)) else grads

    def _handed_over(self, positions: tuple, grad32, grad64, offsets, touched, uniform) -> tuple:
        """The gradients of the inputs at ``positions`` from a backward sweep's arenas: tensors
        of their shapes, None for an integer input, zeros where the sweep never reached it."""
        layout = self._input_layout
        arenas = (grad32, grad64)
        # The arenas are this sweep's own: the inputs' gradients are handed over as views of
        # them when they are most of them, as the eager backward hands over leaves'.
        sizes = self.__dict__.setdefault("_gradient_sizes", {})
        size = sizes.get(positions)
        if size is None:
            size = sizes[positions] = sum(layout[position][1] for position in positions)
        share = views_suffice(size, grad32, grad64, self.rows, self.layouts, offsets, uniform)
        grads = []
        for position in positions:
            code, numel, shape, dtype, row = layout[position]
            if dtype is None:  # labels, masks: no gradient, as PyTorch's None
                grads.append(None)
            elif row < len(touched) and touched[row]:
                start = offsets[row]
                gradient = arenas[code][start : start + numel].reshape(shape)
                grads.append(_wrap(gradient if share else gradient.copy()))
            else:
                grads.append(_wrap(np.zeros(shape, dtype)))
        _keep_arenas(grad32, grad64)
        return tuple(grads)

    def _steady_plan(self, argnums, positions: tuple):
        """After a ``value_and_grad`` without ``grad_outputs`` took the general path: a
        ``_Steady`` for the next calls with these ``argnums``, kept until the tape is laid out
        again (``_allocate``); None where the tape takes no steady path (``_steady_slots``)."""
        plan = self._plans.get(positions)
        if plan is None or plan.get("fused") is not None or "laid" not in plan or self._steady_slots() is None:
            return None
        single = isinstance(argnums, (int, np.integer))
        return _Steady(positions, self._rows_for(positions), plan, self._seeds(None), single)

    def _steady_slots(self):
        """The inputs' slots in their shapes where calls may take the steady path (a tape replayed
        row by row whole: no register program, no integer rows checked after the sweep, no
        inputs read in place, no blocks (``_kernels/fused.py``), which are the large tapes', whose
        Python is a small part of their time), else None; worked out after a first call, kept
        until the tape is laid out again (``_allocate``)."""
        slots = self._steady_inputs
        if slots is False:
            eligible = self._program is None and not self._integer_checks() and not self._in_place_positions()
            slots = self._steady_inputs = (
                [slot.reshape(shape) for slot, (shape, _) in zip(self._input_slots, self.input_specs)]
                if eligible and self._fused_plan() is None
                else None
            )
        return slots

    def _steady_forward(self, slots: list, inputs) -> bool:
        """The forward replay at ``inputs`` in one frame, each check as ``_forward`` makes it
        (``_steady_slots``: the inputs' slots). False, with nothing of the caller's changed,
        where the general path must take the call: an input not an array of its recorded shape
        and dtype (it raises), a guard that fails (it raises or records again), a family not
        loaded yet."""
        specs = self.input_specs
        if len(inputs) != len(specs):
            return False
        for value, (shape, dtype) in zip(inputs, specs):
            if type(value) is not np.ndarray or value.shape != shape or value.dtype != dtype:
                return False
            if dtype.kind != "f" and beyond_exact(value):
                return False
        _refuse_to_be_differentiated(inputs)
        for slot, value in zip(slots, inputs):
            slot[...] = value
        forward, replay_rules, _, _ = _kernels()
        self._in_place_addresses = None
        self._inputs_in_arena = True
        values32, values64 = self.values
        status, _ = forward.forward_sweep(
            self.rows, self.params, self.layouts, self.dims, self.aux, replay_rules, self.offsets, values32, values64,
            self.scratch,
        )  # fmt: skip
        self._forwarded = not status  # (else the general path replays again from the start)
        return not status

    def _steady_call(self, steady: _Steady, inputs):
        """``value_and_grad`` at ``inputs`` by ``steady``: the general path's steps in one frame,
        what only the tape's layout decides taken from ``steady`` (the general path's Python was
        17 of the mlp step's 41 us replayed). None where the general path must take the call
        (``_steady_forward``)."""
        if self._modified or not self._steady_forward(self._steady_inputs, inputs):
            return None
        _, _, backward, (rules, saves, paths) = _kernels()
        outputs = self._outputs()
        spare = _spare_arenas()
        status, _, grad32, grad64, offsets, touched, uniform = backward.backward_sweep(
            steady.rows, self.params, self.layouts, self.dims, self.aux, self.addresses, rules, saves, paths,
            self.output_rows, steady.seeds, self.freed, self.freed, True, steady.plan, spare,
        )  # fmt: skip
        del spare
        if status:
            return None
        grads = self._handed_over(steady.positions, grad32, grad64, offsets, touched, uniform)
        return outputs, grads[0] if steady.single else grads

    def value_and_grad(self, *inputs, grad_outputs=None, argnums=None):
        """``(outputs, gradients)`` at new inputs: one forward and one backward replay.

        ``gradients`` is a tuple with one tensor per input, of its shape and dtype (zeros where
        the outputs do not depend on it); with ``argnums`` (an int or a tuple, as
        ``torch.func.grad`` takes it), only those inputs', and the backward skips the work only
        the others would need. ``grad_outputs`` weights the outputs (one array per output, of
        its shape); it may be omitted for a single-element output. Raises as ``__call__`` does,
        ``RuntimeError`` for a ``grad_outputs`` of the wrong shape, and ``IndexError`` for an
        ``argnums`` naming no input."""
        with self._lock:  # as ``_one_call_at_a_time``'s, without its frame (a microsecond here)
            program = self._program
            if argnums is not None or type(program) is not _register.Program:
                steady = None
                if grad_outputs is None and _steady_key(argnums):
                    steady = self._steady.get(argnums, False)
                    if steady:
                        result = self._steady_call(steady, inputs)
                        if result is not None:
                            return result
                self._forward(inputs, in_place=True)
                try:
                    result = self._outputs(), self._backward(grad_outputs, argnums)
                finally:
                    self._in_place_addresses = None  # (the caller's arrays: this call's only)
                if steady is False:  # (None: the call was not one a steady plan takes)
                    positions = self._all_positions if argnums is None else self._positions(argnums)
                    self._steady[argnums] = self._steady_plan(argnums, positions)
                return result
            self._refuse_modified_saves()
            # A register program (a built one: not UNBUILT, not None), the short replay whose
            # Python is most of its time (a 1000-op chain's: 12 of 26 us): the steps below in one
            # frame, each check as the general path makes it.
            _refuse_to_be_differentiated(inputs)
            program.forward(self._checked(inputs, len(self.input_specs)))
            self._forwarded = True
            outputs, grads = program.outputs(), program.backward(self._seeds(grad_outputs))
            floats = self._float_inputs
            return (
                self._typed(outputs, copy=False),
                tuple([_wrap(grad) if float_ else None for grad, float_ in zip(grads, floats)]),
            )

    def _replay_batch(self, inputs, batched, seeds=None, threads: int = 1, argnums=None, slices=None, into=None):
        """Replay at ``B`` sets of inputs in compiled calls (``tapegrad.func.vmap``'s engine).

        ``inputs[i]`` is ``(B, *shape_i)`` where ``batched[i]``, else ``shape_i`` (the same for
        every slice). With ``seeds`` (float64, one flat array for all outputs, as
        ``backward``'s ``grad_outputs`` concatenated), each slice is also swept backward.
        Returns ``(outputs, grads, failed)``: a ``(B, *shape)`` array per output and (with
        seeds) per input, and the slices whose guard failed (their results are not filled), left
        for the caller to record again. ``threads`` split the batch (the kernel holds no GIL).
        With ``argnums`` (a tuple), only those inputs' gradients are computed; the others', and
        those of integer and boolean inputs, are None.
        ``slices`` (indices into the batch) runs only those, filling only their results. ``into``
        is a dict the caller keeps across calls with the same shapes (another recording's
        included), empty at first: the first call keeps its results there and later calls fill
        them, so that groups of slices replayed by different recordings land in one set of
        results without a copy.

        Raises ``ValueError`` for an input of another shape or dtype than recorded."""
        forward, replay_rules, backward, (rules, saves, paths) = _kernels()
        from ._kernels import batched as kernel

        size = next(len(value) for value, is_batched in zip(inputs, batched) if is_batched)
        everything = slices is None
        slices = np.arange(size, dtype=np.int64) if everything else np.asarray(slices, np.int64)
        # What depends only on the tape and the call's sizes is worked out once (it was a tenth
        # of a per-sample vmap call): dropped with the layout (``_lay_out``).
        plans = self.__dict__.setdefault("_batch_plans", {})
        if len(plans) > 64:  # (a vmap with many chunk sizes)
            plans.clear()
        codes = self._codes

        def packed(key, rows_, shapes, leading=size, empty=np.empty):
            """``(places, arrays)``: one flat array per dtype holding each row's ``(leading,
            *shape)`` block after the other (a block is its result, with no copy), and the rows
            with their block's start."""
            plan = plans.get(key)
            if plan is None:
                places, totals = [], [0, 0]
                for row, shape in zip(rows_, shapes):
                    code = codes[row]
                    places.append((row, totals[code]))
                    totals[code] += leading * math.prod(shape)
                plan = plans[key] = (np.array(places, np.int64).reshape(-1, 2), totals)
            places, totals = plan
            return places, [empty(n, dtype) for n, dtype in zip(totals, CODE_DTYPES)]

        def blocks(places, arrays, shapes):
            return [
                arrays[codes[row]][start : start + size * math.prod(shape)].reshape((size, *shape))
                for (row, start), shape in zip(places.tolist(), shapes)
            ]

        arrays = [np.asarray(value._data if isinstance(value, Tensor) else value) for value in inputs]
        for index, data in enumerate(arrays):
            if batched[index] and len(data) != size:
                raise ValueError(f"input {index} ({self._names[index]!r}) has {len(data)} slices, not {size}")
        # A slice of each batched input is checked as a replay's input is, and the integers of
        # every slice (a slice beyond float64's exact integers would replay rounded, silently).
        self._checked(
            [data[0] if is_batched else data for data, is_batched in zip(arrays, batched)], len(self.input_specs)
        )
        for index, (data, is_batched) in enumerate(zip(arrays, batched)):
            if is_batched and beyond_exact(data):
                bad = int(np.flatnonzero(np.abs(data.reshape(size, -1)).max(axis=1) > _EXACT)[0])
                raise ValueError(
                    f"input {index} ({self._names[index]!r}) holds integers of 2**53 or beyond in slice {bad}, which "
                    "a replay holds as float64 and may round"
                )
        output_shapes = [self._shape(row) for row in self.output_rows]
        input_shapes = [shape for shape, _ in self.input_specs]
        with_grad = seeds is not None
        if with_grad:
            self._refuse_modified_saves()
        positions = self._positions(range(len(self.input_rows)) if argnums is None else argnums)
        # Gradient blocks only for the floating-point inputs asked for: filling the others with
        # zeros, slice by slice, wrote as much memory as the wanted ones' gradients.
        graded = sorted({p for p in positions if self._float_inputs[p]}) if with_grad else []
        results = {} if into is None else into
        with self._lock:  # (two threads may fill one ``into``: vmap's speculation, ``func._Speculation``)
            if not results:  # (B, *shape) blocks of one flat array per dtype, and where each starts
                output_places, flat_outputs = packed(
                    ("outputs", size), self.output_rows, output_shapes, empty=_results.empty
                )
                grad_shapes = [input_shapes[p] for p in graded]
                grad_places, flat_grads = packed(
                    ("grads", size, tuple(graded)), self.input_rows[graded], grad_shapes, empty=_results.empty
                )
                grads = [None] * len(input_shapes)
                for p, block in zip(graded, blocks(grad_places, flat_grads, grad_shapes)):
                    grads[p] = block
                results.update(
                    outputs=blocks(output_places, flat_outputs, output_shapes),
                    grads=grads if with_grad else [],
                    places=(output_places, grad_places),
                    flats=(flat_outputs, flat_grads),
                )
        outputs, grads = results["outputs"], results["grads"]
        (output_places, grad_places), (flat_outputs, flat_grads) = results["places"], results["flats"]
        # A run of consecutive slices (a thread's part: ``func._Speculation``) is read as a view,
        # not copied by fancy indexing.
        consecutive = len(slices) > 0 and bool((np.diff(slices) == 1).all())
        picked = slice(int(slices[0]), int(slices[-1]) + 1) if consecutive else slices
        whole = everything or (consecutive and len(slices) == size and slices[0] == 0)
        if self._scalar_program() is not None:
            if whole:
                values, gradients = self._program.replay_batch(arrays, batched, size, seeds, threads, positions)
            else:
                chosen = [data[picked] if is_batched else data for data, is_batched in zip(arrays, batched)]
                values, gradients = self._program.replay_batch(chosen, batched, len(slices), seeds, threads, positions)
            for target, source in zip([*outputs, *grads], [*values, *gradients]):
                if target is not None:
                    target[picked] = source
            return outputs, grads, []  # no guards: no slice fails
        # Only the batched inputs are loaded per slice: the slices this call runs, in their
        # order (the kernel reads the t-th at block start + t * numel), one flat array per dtype,
        # each input's block after the other's. Packing the whole batch on every call made a
        # vmap with chunk_size or many label groups quadratic in the batch. The others, a
        # model's parameters, usually most of the data, load once per working arena, below
        # (per slice, they had been copied twice per slice).
        input_rows = [row for row, is_batched in zip(self.input_rows, batched) if is_batched]
        input_places, packed_inputs = packed(
            ("inputs", len(slices), tuple(batched)),
            input_rows,
            [shape for shape, is_batched in zip(input_shapes, batched) if is_batched],
            len(slices),
        )
        for (row, start), data in zip(input_places, [data for data, is_batched in zip(arrays, batched) if is_batched]):
            chosen = data if whole else data[picked]
            packed_inputs[codes[row]][start : start + chosen.size] = chosen.reshape(-1)
        shared = [(row, data) for row, data, is_batched in zip(self.input_rows, arrays, batched) if not is_batched]

        rows = self._rows_for(positions)
        if with_grad:  # the gradient slots, laid out and seeded once for every slice
            seeds = np.asarray(seeds, np.float64).reshape(-1)
            key = ("seeded", positions, seeds.tobytes())
            seeded = plans.get(key)
            if seeded is None:  # (read-only in the kernel: shared by calls and threads)
                # A few seedings kept, each a whole gradient arena: a vmap called with new
                # grad_outputs every time kept one per call (58 MB after 40 calls of a 300x300).
                kept = [other for other in list(plans) if other[0] == "seeded"]  # (another thread may add one)
                for other in kept[: max(0, len(kept) - 3)]:
                    plans.pop(other, None)
                seeded = backward.backward_setup(
                    rows, self.params, self.layouts, self.dims, self.aux, self.addresses, rules, saves, paths,
                    self.output_rows, seeds, share=True,
                )  # fmt: skip
                graded_rows = [(int(self.input_rows[p]), math.prod(input_shapes[p])) for p in graded]
                seeded = plans[key] = _direct_slot(seeded, graded_rows, codes)
        else:
            seeded = (
                np.zeros(0, np.int64),
                np.zeros(0, np.float32),
                np.zeros(0, np.float64),
                np.zeros(0, np.bool_),
                -1,
            )
        grad_offsets, seeded32, seeded64, seeded_touched, direct = seeded
        statuses = np.zeros(size, np.int64)
        from ._kernels import families

        families.announce(kernel.value_and_grad_slices, "vmap interpreter")

        def run(lo, hi):
            # A working copy of the arenas (constants and the recording's values) per thread.
            work = tuple(arena.copy() for arena in self.values)
            for row, data in shared:
                start = self.offsets[row]
                work[codes[row]][start : start + data.size] = data.reshape(-1)
            # guarded float32 values, each written by the sweep before its guard reads it
            scratch = np.empty(self.sizes[0] if self.guards else 0, np.float64)
            entering_kernel()
            kernel.value_and_grad_slices(
                slices, lo, hi, rows, self.params, self.layouts, self.dims, self.aux, replay_rules, self.offsets, codes,
                work[0], work[1], scratch, packed_inputs[0], packed_inputs[1], input_places, flat_outputs[0],
                flat_outputs[1], output_places, rules, saves, paths, self.freed, grad_offsets, np.empty_like(seeded32),
                np.empty_like(seeded64), seeded32, seeded64, np.empty_like(seeded_touched), seeded_touched,
                flat_grads[0], flat_grads[1], grad_places, statuses, forward.FAMILIES.addresses,
                backward.FAMILIES.addresses, with_grad, np.int64(direct),
            )  # fmt: skip

        count = len(slices)
        if count == 0:
            return outputs, grads, []

        def missing(status: int):
            """The family table and slot a slice's status says it stopped for, or None."""
            if status >= kernel.GRADIENT_FAILED + backward.MISSING:
                return backward.FAMILIES, status - kernel.GRADIENT_FAILED - backward.MISSING
            if forward.MISSING <= status < kernel.GRADIENT_FAILED:
                return forward.FAMILIES, status - forward.MISSING
            return None

        def alone(t):
            """Slice ``slices[t]`` alone until every family it needs is loaded (a sweep stops at
            a row whose family is not, and the Python loads it)."""
            while True:
                statuses[slices[t]] = 0
                run(t, t + 1)
                stopped = missing(int(statuses[slices[t]]))
                if stopped is None:
                    return
                table, slot = stopped
                table.load(slot)

        # The first slice alone, loading the families, then the rest in one call per thread.
        # Once a batch of this tape has run, its families are loaded (for the process): no
        # slice runs alone, which cost a working arena and a call of its own.
        ready = self.__dict__.setdefault("_families_loaded", set())
        first = 0 if with_grad in ready else 1
        if first:
            alone(0)
        # A thread's share must pay for its working arena's copy and the pool's hand-off: groups
        # of a few dozen slices (vmap's per-label recordings) ran slower on two threads than one.
        threads = max(1, min(threads, (count - first) // _SLICES_PER_THREAD, count - first))
        bounds = [first + (count - first) * part // threads for part in range(threads + 1)]
        if count > first:
            from ._threads import run_parts

            run_parts(run, bounds)
        # Slices that reached a family the first did not (its guard failed before it, in a tape
        # recorded elsewhere: vmap(tape)), again alone.
        ran = statuses[slices]
        for t in np.flatnonzero(ran > forward.GUARD_FAILED).tolist():
            if missing(int(ran[t])) is not None:
                alone(t)
        ran = statuses[slices]
        ready.add(with_grad)
        failed = slices[ran == forward.GUARD_FAILED].tolist()
        broken = np.flatnonzero((ran != 0) & (ran != forward.GUARD_FAILED))
        if len(broken):
            status = int(ran[broken[0]])
            during = "backward" if status >= kernel.GRADIENT_FAILED else "replay"
            raise RuntimeError(f"tapegrad: the {during} of slice {int(slices[broken[0]])} stopped with status {status}")
        return outputs, grads, failed

    @_one_call_at_a_time
    def jacobian(self, *inputs):
        """d(outputs)/d(inputs) by one reverse sweep per output element over one forward.

        One output and one input give an array of shape ``output.shape + input.shape``;
        otherwise a tuple (per output) of tuples (per input), None for an integer or boolean
        input."""
        self._forward(inputs)
        blocks = []
        for index, row in enumerate(self.output_rows):
            shape = self._shape(row)
            size = int(np.prod(shape))
            rows_of_jacobian = []
            for element in range(size):
                seeds = []
                for other_index, other in enumerate(self.output_rows):
                    seed = np.zeros(int(np.prod(self._shape(other))))
                    if other_index == index:
                        seed[element] = 1.0
                    seeds.append(seed.reshape(self._shape(other)))
                rows_of_jacobian.append(self.backward(tuple(seeds)))
            per_input = []
            for position, input_row in enumerate(self.input_rows):
                if self.input_specs[position][1].kind != "f":  # labels, masks: no derivative
                    per_input.append(None)
                    continue
                stacked = (
                    np.stack([grads[position]._data for grads in rows_of_jacobian])
                    if size
                    else np.zeros((0,) + self._shape(input_row))
                )
                per_input.append(_wrap(stacked.reshape(shape + self._shape(input_row))))
            blocks.append(tuple(per_input))
        if len(blocks) == 1 and len(blocks[0]) == 1:
            return blocks[0][0]
        return tuple(blocks)

    # -- persistence ----------------------------------------------------------------------

    _STATE = (
        "rows",
        "params",
        "layouts",
        "dims",
        "aux",
        "guards",
        "input_rows",
        "output_rows",
        "input_specs",
        "offsets",
        "sizes",
        "single_output",
        "_names",
        "_rerecord",
        "integer_rows",
    )

    def __getstate__(self):
        state = {name: getattr(self, name) for name in self._STATE}
        state["_output_dtypes"] = self.__dict__.get("_output_dtypes")
        state["_modified"] = dict(self._modified)
        state["values"] = tuple(v.copy() for v in self.values)
        state["guards"] = {row: (kind, where, expected) for row, (kind, where, expected) in self.guards.items()}
        return state

    def __setstate__(self, state):
        """Unpickling (shipping a tape between processes) validates the rows as ``load_tape``
        does: a pickle from elsewhere must not reach the interpreter unchecked."""
        values = state.pop("values")
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._fn = None
        _tape_file.validate(self)
        self.rows = _tape_file.settle_gradients(self.rows, self.aux)
        self._lay_out()  # from the layouts, never from the sender's offsets
        self._fill(values)
        # Its inputs are always copied into its arena: read in place, a row the validation let
        # read past its slot would read memory between the arena and the inputs, which may
        # not be mapped (``_place_inputs``); in the arena it reads other rows' values.
        self._in_place = ()
        self._program = _register.UNBUILT
        if self._rerecord:
            self._rerecord = False  # the function is not shipped with the tape

    def _fill(self, values) -> None:
        self._allocate()
        for code, given in enumerate(values):
            given = np.asarray(given)
            if given.shape != (self.sizes[code],) or given.dtype != self.values[code].dtype:
                raise ValueError(f"invalid tape: {self.sizes[code]} {self.values[code].dtype} values expected")
            self.values[code][...] = given

    def validate(self) -> None:
        """Check every row as ``load_tape`` does; raise ``ValueError`` naming the row and field of
        the first that an interpreter would follow outside its buffers."""
        _tape_file.validate(self)

    def save(self, path) -> None:
        """Write the tape to ``path`` (an ``.npz``: its arrays and a JSON header; no pickle), to be
        read by ``tapegrad.load_tape``."""
        _tape_file.write(self, path, __version__)

    def __repr__(self) -> str:
        return f"<tapegrad.Tape: {len(self.rows)} rows, {len(self.input_rows)} inputs, {len(self.output_rows)} outputs, {len(self.guards)} guards>"


def load_tape(path) -> Tape:
    """Read a tape written by ``Tape.save``. The file is data only (numpy's ``.npz``, read with
    ``allow_pickle=False``, and a JSON header): loading runs nothing from it, and every row is
    validated before the tape can be replayed, so a damaged or hostile file cannot crash the process.

    Raises ``ValueError`` for a file that is not a tape, is damaged (its checksum), has another
    format version (naming both), or holds a row an interpreter would follow outside its buffers
    (naming the row and field); ``FileNotFoundError`` for a missing file.

    >>> import numpy as np, os, tempfile, tapegrad as tg
    >>> tape = tg.record(lambda x: x.exp().sum(), np.zeros(3))
    >>> path = os.path.join(tempfile.mkdtemp(), "f.tape")
    >>> tape.save(path)
    >>> float(tg.load_tape(path)(np.zeros(3)))
    3.0
    """
    tape = Tape.__new__(Tape)
    tape.__setstate__(_tape_file.read(path))  # validated there, as an unpickled tape is
    return tape


def _describe(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    array = np.asarray(value)
    return str(array.item()) if array.size == 1 else np.array2string(array, threshold=8)


def _recorded_as(tape, inputs, input_rows, output_rows, outputs) -> tuple | None:
    """What a recording holds apart from its constants' values (``Tape._same_constants``), as
    one comparable value; None for a recording with a guard on a value (``Tape._recorded_again``).
    A guard on a truth (``if x.sum() > 0``, a target's bounds check) is part of the value."""
    rows = tape.rows_array()
    if any(int(rows[row, IN1]) >= 0 for row in tape.guards):
        return None
    return (
        tuple((row, kind, where, np.asarray(read).tobytes()) for row, (kind, where, read) in tape.guards.items()),
        rows.tobytes(),
        tape.params_array().tobytes(),
        tape.layouts_array().tobytes(),
        bytes(tape.dims),
        bytes(tape.aux),
        tuple(input_rows),
        tuple(output_rows),
        tuple((x._data.shape, x._data.dtype.str) for x in inputs),
        tuple(tape.layout_ids.items()),
    )


_NAMES_BY_CODE: dict = {}  # a plain function's parameter names, by its code object


def _parameter_names(fn, count: int) -> list[str]:
    # Functions that share a code object share their names: vmap records a new closure over the
    # same code on every call, and inspect.signature took 60 us of each recording.
    code = getattr(fn, "__code__", None) if type(fn).__name__ == "function" else None
    names = _NAMES_BY_CODE.get(code) if code is not None and not hasattr(fn, "__wrapped__") else None
    if names is None:
        try:
            import inspect  # here: ~7 ms of every import tapegrad otherwise

            names = [p.name for p in inspect.signature(fn).parameters.values()]
        except (TypeError, ValueError):
            names = []
        if code is not None and not hasattr(fn, "__wrapped__"):
            _NAMES_BY_CODE[code] = names
    return (names + [f"arg{i}" for i in range(len(names), count)])[:count]


def demo() -> None:
    """The second half of ``python -m tapegrad``: a recorded tape replayed at new inputs."""
    import time

    import tapegrad as tg

    print("\n== Replay: the tutorial's loop recorded once, replayed with new inputs ==")

    def tutorial_loop(x):
        y = x * 2
        while y.data.norm() < 1000:
            y = y * 2
        return y

    user_code.add(tutorial_loop.__code__)  # (its guard names its line, as a user's would)
    x0 = np.array([-0.9332, 1.9616, 0.1739], np.float32)
    tape = tg.record(tutorial_loop, x0)
    v = np.array([0.1, 1.0, 0.0001], np.float32)
    print(tape)
    x1 = np.array([-0.9, 1.9, 0.2], np.float32)
    out, (grad,) = tape.value_and_grad(x1, grad_outputs=v)
    print("replayed output:", out)
    print("replayed x.grad:", grad)
    try:
        tape(x0 * 100)
    except GuardError as error:
        print("a new input that takes another branch:", str(error).split(";")[0])

    def step():
        return tape.value_and_grad(x1, grad_outputs=v)

    from ._kernels import tiers

    tiers.wait()  # on a fresh install: the replay timed below is compiled code, not its Python tier
    step()
    runs = []
    for _ in range(200):
        start = time.perf_counter()
        step()
        runs.append(time.perf_counter() - start)
    rows = len(tape.rows)
    print(
        f"replay forward+backward: {np.median(runs) * 1e6:.1f} us for {rows} rows "
        f"({np.median(runs) / rows * 1e9:.0f} ns per row)"
    )


def _modified_saves(tape, rows: np.ndarray, aux: np.ndarray, input_rows, output_rows) -> dict:
    """{row: PyTorch's message} for the rows of a recording that a backward from its outputs to
    its inputs runs (they need a gradient, an output reads them, and they read an input) and
    whose saved value was changed in place after they saved it (``_refuse_modified_saves``);
    eager raises on reaching them. A row that leads only to a captured tensor (``g.exp()`` of a
    parameter ``g`` the function closes over) is not among them: the replay differentiates its
    inputs alone, as ``autograd.grad(loss, x)`` runs only the rows between ``x`` and ``loss``."""
    from .autograd.engine import _modified_message

    # (no in-place change since the tape began: at once; the walks below are loops over every row)
    changed = tape.modified_rows(len(rows), inplace_epoch[0])
    if not changed:
        return {}
    reads_input = np.zeros(len(rows), np.bool_)
    for row in input_rows:
        reads_input[row] = True
    for row in range(len(rows)):  # rows read only earlier rows
        if not reads_input[row]:
            reads_input[row] = any(
                source >= 0 and reads_input[source] for source in row_sources(row, *rows[row, :4], aux)
            )
    reached = np.zeros(len(rows), np.bool_)
    for row in output_rows:
        reached[row] = True
    for row in range(len(rows) - 1, -1, -1):
        if reached[row] and not rows[row, OPCODE] & NO_GRAD:
            for source in row_sources(row, *rows[row, :4], aux):
                if source >= 0:
                    reached[source] = True
    return {
        consumer: _modified_message(tape, entry, consumer)
        for consumer, entry in changed.items()
        if reached[consumer] and reads_input[consumer] and not rows[consumer, OPCODE] & NO_GRAD
    }
