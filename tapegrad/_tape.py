"""The Wengert list: one row per recorded op, in flat arrays that jitted code reads directly.

A row is five integers (``opcode, in0, in1, iparam, layout``) and one float (``param``), packed
into 48 bytes of one growable buffer (``struct.pack_into`` is the cheapest append Python has:
about 80 ns a row, against 200 ns for five ``array.append`` calls). Its
index is also the id of the buffer it produces, so inputs are row numbers. A *layout* is an
interned ``(dtype, shape)``; views keep their strides in the ``aux`` table. Values the backward
needs are reached by address: rows that save a value record where it lives (the array itself, or
a contiguous copy of a strided one), and the tape keeps every such array alive.

Lifetime follows PyTorch's: a tape belongs to one connected graph. An op whose inputs are all
leaves starts a new tape; an op joining two tapes merges the smaller into the larger (rows are
appended with shifted ids; no value is copied because addresses are absolute). Tensors hold their
tape, the thread that records holds none, so a graph nobody can reach is freed with its tape.
Rows nobody can reach on a tape somebody can (``y = a.tanh()`` in a loop, ``a`` a result kept
alive) are dropped when the tape has grown enough to make it pay (``Tape.collect``): PyTorch
frees such nodes as their last tensor dies, and a tape that kept them grew without bound.
"""

from __future__ import annotations

import _thread
import ctypes
import functools
import itertools
import os
import struct
import sys
import threading
import traceback
import weakref
from array import array

import numpy as np

from ._frames import PACKAGE as _PACKAGE
from ._frames import in_package
from ._ops import CONSTANT_OPCODE, LEAF_OPCODE, NARY, OPS, SHARED_LEAF_OPCODE, VIEW
from ._ops import OPCODE as _OPCODES
from ._threads import pool_threads

ROW_WIDTH = 6  # int64 words per row; the last holds the float parameter's bits
OPCODE, IN0, IN1, IPARAM, LAYOUT, PARAM = range(ROW_WIDTH)
ROW_BYTES = 8 * ROW_WIDTH
# Added to a row's opcode when its result does not require grad (only inside
# ``tapegrad.record``, where every op is kept for the forward replay): the backward treats such a
# row as a constant.
NO_GRAD = 1 << 16
OPCODE_MASK = NO_GRAD - 1
_MM_OPCODE = _OPCODES["mm"]  # (a product whose ``iparam`` flags say it reads an operand transposed)
_pack_row = struct.Struct("<5qd").pack_into
INITIAL_ROWS = 32
# Integer and boolean values (comparisons, indices) only ever sit on a tape inside
# ``tapegrad.record``, where the forward replay holds them exactly as float64.
DTYPE_CODES = {
    np.dtype(np.float32): 0,
    np.dtype(np.float64): 1,
    np.dtype(np.int64): 1,
    np.dtype(np.int32): 1,
    np.dtype(np.int16): 1,  # integers and booleans: held exactly as float64 (``record``'s casts)
    np.dtype(np.int8): 1,
    np.dtype(np.uint8): 1,
    np.dtype(np.bool_): 1,
}
CODE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_weakref = weakref.ref
_USES_AUX = np.array([op.uses_aux for op in OPS])
_USES_AUX_LIST = _USES_AUX.tolist()
_LISTS_INPUTS = [op.family == NARY for op in OPS]  # stack/cat: inputs as row deltas in aux
_LISTS_INPUTS_ARRAY = np.array(_LISTS_INPUTS, np.bool_)
_NO_ROWS = np.zeros(0, np.bool_)
_WHERE_OPCODE = next(code for code, op in enumerate(OPS) if op.name == "where")  # reads a mask row above
_HAS_NO_BACKWARD = np.zeros(len(OPS), np.bool_)  # leaves and constants: rows no backward runs
_HAS_NO_BACKWARD[[LEAF_OPCODE, CONSTANT_OPCODE, SHARED_LEAF_OPCODE]] = True
# Views' rule scatters the gradient through strides and reads no value (``release_saved``).
_READS_NO_VALUE = _HAS_NO_BACKWARD | np.array([op.family == VIEW for op in OPS])
# Counts in-place changes anywhere. A tape whose saved values cannot have changed since it last
# looked (no in-place change anywhere since) skips checking their versions at backward time.
inplace_epoch = [0]
# Callables that ``_record._bump_version`` calls with each tensor changed in place while any is
# registered (vmap's eager loop: a tensor that outlives a slice's call, changed again by the
# next slice's). Empty, a test of the list per in-place op.
write_watchers: list = []

# ``autograd.graph.saved_tensors_hooks``: each thread's stack of (pack, unpack) pairs, and how
# many are open in any thread, which ``Tape.track`` reads before looking further.
saved_tensor_hooks = threading.local()
saved_hooks_open = [0]
packed_ever = [False]  # whether any tape has held a packed value: ``engine`` looks only then

# -- collection of unreachable rows (``Tape.collect``) ----------------------------------------
# A tape is looked at for rows nobody can reach once it holds this many (and again each time it
# has doubled since): the look costs O(rows), so doubling keeps it O(1) a row.
# Tracking a row's tensor costs a weak reference (``Tape.hold``): ~0.2 us an op, and more
# garbage-collector passes (weak references are GC-tracked: a 10,000-op graph beside torch's
# heap took a full collection every pass, twice its time). So a tape tracks nothing until a
# look suspects garbage: more rows that nobody reads than references to the tape (each live
# tensor is one), as a loop's dropped results leave. It then tracks the rows it records from
# there on, and collects among them; the rows before stay as recorded (their tensors, unknown,
# keep their numbers), as do the rows of an untracked tape it absorbs. A loop that merges a
# new tape each time (``kept + w[:2]``) therefore still grows, unless the kept tape has had a
# backward: from then on new tapes track from their first row (``track_new_tapes``). ``TAPEGRAD_COLLECT_ROWS`` sets
# the size; a value below ``INITIAL_ROWS`` (the tests' stress mode) tracks every row from the
# start and grows every tape one row at a time, so that every op entry that may collect does,
# at every size.
COLLECT_ROWS = int(os.environ.get("TAPEGRAD_COLLECT_ROWS", "1024"))
_STRESS = COLLECT_ROWS < 32
_STRESS_ROWS = 2048  # (the stress mode stops at this many rows: it is quadratic)
_STRESS_CHECKS = itertools.count()
_INITIAL_ROWS = 1 if _STRESS else INITIAL_ROWS
UNTRACKED = 1 << 62  # ``Tape.hold_from`` of a tape that tracks no row yet
_HOLD_FROM = 0 if _STRESS else UNTRACKED  # a new tape's
# Whether new tapes track their tensors from their first row: once a graph kept across
# backwards absorbed an untracked one (``Tape.absorb``), for the rest of the process (~0.2 us an op).
track_new_tapes = [False]
# Backward sweeps in progress, in any thread: they hold row numbers while hooks and custom
# Functions run Python that may record on the same tape.
backwards_running = [0]
# Written against the public API, like the user's code: they hold tensors, never row numbers.
_USER_LEVEL = (_PACKAGE + "nn" + os.sep, _PACKAGE + "optim" + os.sep)
# The functions that may be on the stack, above the user's code, when a tape collects: each
# holds no row number across the call that led there (it reads rows after, or never). Any other
# tapegrad frame (an in-place op's, a composite's, a custom Function's, the engine running a
# hook) may hold some, and the tape does not collect then.
_COLLECTS_UNDER = {
    ("_record.py", "_short_tape"),
    ("_record.py", "_settling_tape"),  # (``h @ w.t()`` of a leaf's pending view: it settles after)
    ("_record.py", "_target"),
    ("_record.py", "_short_record"),
    ("_record.py", "_binary"),
    ("_record.py", "_same_tape"),  # ``a * b`` of two results of one tape
    ("_record.py", "dunder"),  # a Tensor operator (``a + b``, ``y * 1.001``)
    ("_record.py", "_unary"),
    ("_record.py", "method"),  # ``x.tanh()``
    ("_record.py", "record"),
    ("_record.py", "_scalar"),  # ``x.clamp(0, 1)``, ``x ** 3``, ``1 - x``
    ("_record.py", "_arith"),
    # The operator and method lambdas (``__rsub__``...). Those that change a tensor in place run
    # under ``_changed``, which is not listed.
    ("_record.py", "<lambda>"),
    ("_reductions.py", "_normalized_exponential"),
    ("_reductions.py", "softmax"),
    ("_reductions.py", "log_softmax"),
    ("_reductions.py", "layer_norm"),
    ("_reductions.py", "batch_norm"),
    ("_selection.py", "clamp"),
    ("_reductions.py", "record"),
    ("_reductions.py", "_reduce"),
    ("_reductions.py", "sum"),
    ("_reductions.py", "mean"),
    ("__init__.py", "function"),  # ``tapegrad.tanh(x)``
    ("_views.py", "_record_view"),
    ("_views.py", "getitem"),
    ("_views.py", "_select"),
    ("_views.py", "_permuted"),
    ("_views.py", "transpose"),
    ("_views.py", "t"),
    ("_indexing.py", "_record_gather"),
    ("_linalg.py", "_mm"),
    ("_linalg.py", "matmul"),
    ("_linalg.py", "_matmul_operator"),
    ("_linalg.py", "_mm_of_sources"),  # (``h @ w.t()`` reading a large leaf in place: its tape first)
    ("_linalg.py", "linear_short"),  # (it takes its tape before it reads a row number)
    ("engine.py", "run_backward"),
    ("engine.py", "_backward"),
    ("gradients.py", "_tensor_backward"),
    ("_tape.py", "exclusive_function"),  # ``exclusive``: it holds nothing, what it wraps is looked at too
    # Recorders that take their tape (``_target``) before they read a row number
    ("_reductions.py", "_record_extreme"),
    ("_views.py", "_join"),
    ("_selection.py", "where"),
    # Composites that hold tensors (renumbered with their rows), never row numbers: an
    # evaluation loop of one of them on a kept result (``table.max(dim=1)``, ``table[idx]``,
    # ``F.embedding(idx, table)``) never collected, and grew up to 128 KB a step
    ("_indexing.py", "pick"),
    ("_indexing.py", "gather_rows"),
    ("_indexing.py", "index"),
    ("_indexing.py", "index_select"),
    ("_indexing.py", "gather"),
    ("_reductions.py", "reduce"),
    ("_reductions.py", "<lambda>"),
    ("_reductions.py", "_along_one"),
    ("_reductions.py", "_extreme"),
    ("_reductions.py", "_max_or_min"),
    ("_reductions.py", "max"),
    ("_reductions.py", "min"),
    ("_reductions.py", "_spread"),
    ("_reductions.py", "var"),
    ("_reductions.py", "std"),
    ("_reductions.py", "cumsum"),
    ("_reductions.py", "_norm"),
    ("_reductions.py", "norm"),
    ("_views.py", "reshape"),
    ("_views.py", "<lambda>"),
    ("_views.py", "stack"),
    ("_views.py", "cat"),
    ("_linalg.py", "_contract"),
    ("_linalg.py", "einsum"),
    ("_linalg.py", "_batched"),
    ("_selection.py", "_filled"),
    ("_selection.py", "_masked_filled"),
    ("_selection.py", "_masked_fill"),
    ("_composites.py", "topk"),
    ("_composites.py", "sort"),
}


class _LayoutTemplate:
    """The layouts recent tapes made, which every new tape starts with: a training loop builds a
    new tape each step, and without them made the same dozen layouts anew each time (1.5 us
    apiece against 0.15 us for one found). Tapes of one ``generation`` share its first layouts,
    so ``Tape.absorb`` maps those without looking; once ``LIMIT`` are taken it starts again.

    One per thread (``_template()``), generations numbered across all of them: threads recording
    at once extended a shared one without a lock, two tapes took one number for different
    layouts, and gradients came out wrong (or the process aborted)."""

    LIMIT = 64

    def __init__(self):
        self.restart()

    def restart(self) -> None:
        self.generation = next(_GENERATIONS)
        self.table, self.dims, self.ids = array("q"), array("q"), {}


_GENERATIONS = itertools.count()


class _ThreadTemplates(threading.local):
    def __init__(self):
        self.template = _LayoutTemplate()


_TEMPLATES = _ThreadTemplates()


# The template of a tape that takes none (``Tape(own_layouts=True)``): empty, and of a
# generation no thread's template has, so that no tape extends it.
_NO_TEMPLATE = _LayoutTemplate()


# -- threads ----------------------------------------------------------------------------
# One lock for every tape. Recording an op reads its inputs' row numbers and appends a row;
# ``collect`` renumbers rows; a join merges two tapes; a backward adds into leaves' ``.grad``.
# Two threads doing these at once on one graph appended two ops to one row, or read a row that
# had just moved (IndexError, or a gradient to the wrong row), and two backwards adding into a
# shared parameter's ``.grad`` (numpy releases the GIL in a large ``+=``) lost one of the sums,
# silently. PyTorch allows all of these, so each holds ``LOCK``. It is taken only while another
# Python thread runs (``_thread._count()``: every thread but the main one started through
# ``threading`` or ``_thread``, less tapegrad's own pool threads, which record nothing), so a
# single-threaded program pays ~30 ns an op for the count, not ~80 for the lock. The count
# cannot rise in the middle of an unlocked op: only a running thread starts another, and no
# recording function runs user code between reading rows and appending. A backward runs hooks
# and custom Functions' code: it lets the lock go meanwhile (``outside_lock``), so that a hook
# may wait on another thread that records. The hottest paths inline ``exclusive``'s test.
LOCK = threading.RLock()
count_threads = _thread._count
if hasattr(os, "register_at_fork"):  # a fork while another thread held it: the child's is free
    os.register_at_fork(after_in_child=LOCK._at_fork_reinit)


def exclusive(function, always: bool = False):
    """``function`` (one that records on a tape, collects one, or runs a backward) holding
    ``LOCK`` while another thread runs; ``always``: whether or not one does (``serialized``)."""

    @functools.wraps(function)
    def exclusive_function(*args, **kwargs):
        if always or count_threads() > pool_threads[0]:
            with LOCK:
                return function(*args, **kwargs)
        return function(*args, **kwargs)

    return exclusive_function


def serialized(function):
    """``exclusive``, taking ``LOCK`` even while no other thread runs: for the backward, whose
    hooks may start a thread midway. Decided at its start, a backward that found no other thread
    ran on unlocked, and added into ``.grad`` while the hook's thread did too (sums lost)."""
    return exclusive(function, always=True)


def outside_lock(call, *args):
    """``call(*args)`` (user code: a hook, a custom Function's backward) with ``LOCK`` let go
    if this thread holds it, taken back after."""
    if not LOCK._is_owned():
        return call(*args)
    state = LOCK._release_save()  # (every level of the reentrant lock: ``threading.Condition``'s way)
    try:
        return call(*args)
    finally:
        LOCK._acquire_restore(state)


def _template() -> _LayoutTemplate:
    """This thread's layout template."""
    return _TEMPLATES.template


def check_gradient_reaches(tensor, what: str) -> None:
    """Raise ``RuntimeError`` when ``tensor`` is a transposed view that elementwise ops or
    matrix products read through its source (see ``Tape.bypassed``): ``what`` (a hook,
    retain_grad, autograd.grad) would get no gradient from them, where PyTorch gives one."""
    if tensor._tape is None:
        return
    tape = resolve(tensor)
    if tape.bypassed and tensor._row in tape.bypassed:
        raise RuntimeError(
            f"{what} on a transposed view after elementwise ops or products used it: tapegrad computed those on the "
            "untransposed tensor, so no gradient reaches the view. Call it before the view is used, or "
            "use .contiguous() on the view"
        )


_addressof = ctypes.addressof
_from_buffer = ctypes.c_char.from_buffer


def address_of(array_: np.ndarray) -> int:
    """Where a C-contiguous array's data starts. Through ctypes' view of the buffer: 0.2 us,
    against 0.8 us for ``__array_interface__``, which only read-only or empty arrays need."""
    try:
        return _addressof(_from_buffer(array_))
    except (TypeError, ValueError):
        return array_.__array_interface__["data"][0]


class Tape:
    __slots__ = (
        "rows",
        "ints",
        "row_view",
        "param_view",
        "n",
        "capacity",
        "layout_table",
        "dims",
        "layout_ids",
        "template_generation",
        "template_layouts",
        "aux",
        "saved",
        "leaf_copies",
        "view_copies",
        "copied_epoch",
        "leaf_arrays",
        "keepalive",
        "registered",
        "leaves",
        "retained",
        "hooks",
        "freed",
        "sweeping",
        "merged_into",
        "row_shift",
        "nodes",
        "guards",
        "functions",
        "node_names",
        "traces",
        "bypassed",
        "read_through",
        "replay_values",
        "detached",
        "captured",
        "shared",
        "versions",
        "packed",
        "checked_epoch",
        "refs",
        "collect_at",
        "dead_sinks",
        "hold_from",
        "unreleased",
        "__weakref__",
    )

    def __init__(self, own_layouts: bool = False):
        """``own_layouts``: number layouts from 0 in the order this tape first uses them, not
        after the thread's template (whose contents depend on what ran before): two recordings
        of the same function then hold the same rows (``tapegrad.record``)."""
        self.rows = bytearray(_INITIAL_ROWS * ROW_BYTES)
        self.ints = memoryview(self.rows).cast("q")  # read access to the row fields
        self.row_view = self.param_view = None
        self.n = 0
        self.capacity = _INITIAL_ROWS
        # 4 per layout: dtype code, numel, ndim, offset into dims; the template's first.
        template = _NO_TEMPLATE if own_layouts else _TEMPLATES.template
        self.layout_table = array("q", template.table)
        self.dims = array("q", template.dims)
        self.layout_ids: dict = template.ids.copy()
        self.template_generation = template.generation
        self.template_layouts = len(self.layout_ids)  # the first layouts, as the template has them
        self.aux = array("q")
        self.saved: dict[int, int] = {}  # row -> address of its value
        self.leaf_copies: dict | None = None  # row -> (version counter, version) of a leaf saved as a copy
        # row -> [copy, the view it copies, the copy's address, version counter, version]: a
        # value saved as a C-ordered copy of a view (``a.t()``, a broadcast, a column), which
        # PyTorch saves as the view itself. A write autograd does not see (``w.data.mul_(3)``,
        # through ``.numpy()``) reaches PyTorch's saved view; ``refresh_view_copies`` copies it.
        # The counter is None until ``track`` notes one: a copy only the tape reads.
        self.view_copies: dict | None = None
        self.copied_epoch = 0  # ``inplace_epoch`` when the copies were last all up to date
        self.leaf_arrays: dict = {}  # leaf row -> the array saved as its value (``save_leaf``)
        self.keepalive: list = []
        self.registered: dict[int, int] = {}  # id(tensor) -> row, for leaves and constants
        self.leaves: list = []  # (row, tensor) whose .grad a backward fills
        # Non-leaves with retain_grad(), by weak reference. Their rows are read at backward time:
        # an in-place change moves a tensor to a new row, and PyTorch's retained gradient follows.
        self.retained: list = []
        self.hooks: dict = {}
        self.freed = _NO_ROWS
        self.sweeping = 0  # backwards running over this tape now (``engine._sweep``)
        self.merged_into: Tape | None = None
        # A backward ran and left the saved values it no longer needs for later (``engine``'s
        # ``_release_earlier``): a merge releases them first, since the tape it merges dies
        self.unreleased = False
        self.row_shift = 0
        self.nodes = None
        self.guards: dict = {}  # guard row -> where it was recorded (inside tapegrad.record)
        # first output row of a custom autograd.Function call -> its FunctionCall (ctx, input rows)
        self.functions: dict = {}
        # row -> the grad_fn name PyTorch shows for a composite ending there (``name_node``)
        self.node_names: dict | None = None
        # {row: where the forward recorded it}, while anomaly detection is on (``note_trace``)
        self.traces: dict | None = None
        # Rows of transposed views that elementwise ops read through their source instead
        # (``_record._transposed_source``): no gradient reaches them, so a hook, retain_grad or
        # autograd.grad asked of one afterwards must fail rather than see nothing.
        self.bypassed: set | None = None
        # Rows of such ops, computed on the leaves in the transposes' places: PyTorch's saved the
        # transposes, views of the old storage, so a leaf's ``.data`` replaced before the backward
        # is not what they read (``follow_replaced_leaves``). Products mark it in ``iparam``.
        self.read_through: set | None = None
        self.replay_values = None  # inside tapegrad.record: row -> array, for constant rows
        self.detached = None  # inside tapegrad.record: id(alias) -> (alias, source, row), of .data/.detach()
        self.captured = None  # inside tapegrad.record: row -> (tensor, its tape, row, requires_grad) when registered
        self.shared = None  # inside tapegrad.record: _shared_storage.SharedStorage
        # consumer row -> [(version counter of a tensor it saved, its version then, saved row)]
        self.versions: dict = {}
        # saved row -> [(unpack hook, what the pack hook returned)] (``saved_tensors_hooks``)
        self.packed: dict | None = None
        # Values saved from now on carry their current versions: none can have changed before now.
        self.checked_epoch = inplace_epoch[0]
        # row -> weak reference to the tensor holding it, or a list of them when several do
        # (``hold``): what ``collect`` starts from.
        self.refs: dict = {}
        self.collect_at = COLLECT_ROWS  # the row count at which ops next ask ``collect``
        self.dead_sinks = 0  # what ``collect`` last found and did not compact away
        # Rows from here on have their tensors tracked and may move; the rows below never do.
        self.hold_from = 0 if track_new_tapes[0] else _HOLD_FROM

    def __len__(self) -> int:
        return self.n

    def _reserve(self, rows: int) -> None:
        if rows <= self.capacity:
            return
        capacity = rows if _STRESS and rows < _STRESS_ROWS else max(rows, 2 * self.capacity)
        grown = bytearray(capacity * ROW_BYTES)
        grown[: self.n * ROW_BYTES] = self.rows[: self.n * ROW_BYTES]
        # A new buffer rather than a resize: a backward in progress may still export the old one.
        self.rows = grown
        self.ints = memoryview(grown).cast("q")
        self.capacity = capacity
        self.row_view = self.param_view = None

    # -- recording ------------------------------------------------------------------------

    def layout(self, numpy_dtype, shape: tuple) -> int:
        key = (numpy_dtype, shape)
        layout_id = self.layout_ids.get(key)
        if layout_id is None:
            layout_id = len(self.layout_table) // 4
            numel = 1
            for extent in shape:
                numel *= extent
            entry = (DTYPE_CODES[numpy_dtype], numel, len(shape), len(self.dims))
            self.layout_table.extend(entry)
            self.dims.extend(shape)
            self.layout_ids[key] = layout_id
            template = _TEMPLATES.template
            if (
                self.template_layouts == layout_id == len(template.ids)
                and self.template_generation == template.generation
            ):  # this tape's layouts are the template's so far: the template takes this one too
                if layout_id >= template.LIMIT:
                    template.restart()
                else:
                    template.table.extend(entry)
                    template.dims.extend(shape)
                    template.ids[key] = layout_id
                    self.template_layouts += 1
        return layout_id

    def append(self, opcode: int, in0: int, in1: int, iparam: int, layout: int, param: float) -> int:
        row = self.n
        if row == self.capacity:
            self._reserve(row + 1)
        _pack_row(self.rows, row * ROW_BYTES, opcode, in0, in1, iparam, layout, param)
        self.n = row + 1
        return row

    def note_trace(self, row: int) -> None:
        """Keep where the forward recorded ``row`` (the caller's frames, tapegrad's own left
        out), for anomaly detection's report of a backward rule that failed there."""
        frames = traceback.extract_stack(sys._getframe(2))
        while frames and in_package(frames[-1].filename):
            frames.pop()
        if self.traces is None:
            self.traces = {}
        self.traces[row] = frames

    def bypass(self, row: int) -> None:
        """Note that ops read view ``row``'s source in its place (``bypassed``)."""
        if self.bypassed is None:
            self.bypassed = set()
        self.bypassed.add(row)

    def reads_through(self, row: int) -> None:
        """Note that row ``row`` reads its leaf operands in their transposes' places
        (``read_through``)."""
        if self.read_through is None:
            self.read_through = set()
        self.read_through.add(row)

    def hold(self, row: int, holder) -> None:
        """Note that ``holder`` (a tensor) names ``row``: ``collect`` keeps what live holders
        reach, and renumbers them. Every tensor given a row from ``hold_from`` on is held so."""
        if row < self.hold_from:
            return
        held = self.refs.get(row)
        if held is None:
            self.refs[row] = _weakref(holder)
        elif type(held) is list:
            held.append(_weakref(holder))
        else:
            self.refs[row] = [held, _weakref(holder)]

    def collect(self) -> bool:
        """Drop the rows no live tensor (nor a ``grad_fn`` someone holds) can reach, renumbering
        the rest and their holders; True if it did. PyTorch frees a node when the last tensor
        reaching it dies: a tape kept every row (and the values they saved) until it died, so
        ``y = a.tanh()`` in a loop, ``a`` a result kept alive, grew memory without bound.

        Called by an op before it reads any row number, once ``n`` reaches ``collect_at`` (the
        one moment rows may move): ``_record._target`` and ``_short_tape``, the scalar
        operator, ``run_backward``. Only where row numbers cannot be held: not during a backward
        (hooks run Python), not on a recording's tape (custom Function calls are renumbered), and only
        under the ops of ``_COLLECTS_UNDER`` (``_collectable_here``). Amortized: after a look it
        looks again once the tape has doubled, and it compacts only when at most half its rows
        are reachable; refused by the stack or a running backward, it asks again 64 rows on."""
        n = self.n
        self.collect_at = COLLECT_ROWS if _STRESS and n < _STRESS_ROWS else max(COLLECT_ROWS, 2 * n)
        if self.merged_into is not None or self.replay_values is not None or self.guards:
            return False
        if backwards_running[0] or not _collectable_here():
            if not _STRESS:
                self.collect_at = n + 64  # the next op, outside this composite or this backward
            return False
        rows = self.rows_array()
        opcodes = rows[:, OPCODE] & OPCODE_MASK
        extra = {}  # row -> the rows it reads beyond in0 and in1
        for row in np.flatnonzero(_LISTS_INPUTS_ARRAY[opcodes]).tolist():
            extra[row] = [source for source in self.sources(row) if source >= 0]
        for row in np.flatnonzero(opcodes == _WHERE_OPCODE).tolist():
            extra[row] = [row - int(rows[row, IPARAM])]
        # A custom Function call's output rows read its inputs (its rows hold no operands), and
        # one live output keeps the call's others: its backward takes all their gradients.
        siblings = {}
        for call in self.functions.values():
            outputs = [row for row in call.output_rows if row >= 0]
            inputs = [row for row in call.tensor_input_rows if row >= 0]
            for row in outputs:
                extra[row] = inputs
                siblings[row] = outputs
        # Some row is unreachable only if some row nobody reads (a sink) is: cheap to rule out,
        # the common case (a long chain: one sink, alive), before walking the rows.
        read = np.zeros(n, np.bool_)
        for column in (IN0, IN1):
            sources = rows[:, column]
            read[sources[sources >= 0]] = True
        for sources in extra.values():
            read[sources] = True
        if self.hold_from >= n:  # tracking nothing yet: start if dropped results seem to pile up
            # Each live tensor holding a row references the tape once; a few more are frames.
            if n - int(np.count_nonzero(read)) > sys.getrefcount(self) + 16:
                self.hold_from = n
                self.collect_at = n + COLLECT_ROWS
            return False
        start = self.hold_from
        nodes = self.nodes
        dead = 0  # sinks no tensor holds
        for row in (np.flatnonzero(~read[start:]) + start).tolist():
            if not _held(self.refs.get(row)) and not (nodes and nodes.get(row) is not None):
                dead += 1
        # A few that stay (a graph's unread hidden rows: the scalar graph's 14 of 30,000) are
        # not worth a walk of the rows at each doubling; a loop's dropped results add one each.
        if not dead or (not _STRESS and (dead < 16 or dead <= 2 * self.dead_sinks)):
            return False
        self.dead_sinks = dead
        holders = {}
        for held in self.refs.values():
            for ref in held if type(held) is list else (held,):
                holder = ref()
                if holder is not None and holder._tape is not None:
                    holders[id(holder)] = holder
        if nodes:
            for node in nodes.values():
                holders[id(node)] = node
        if _STRESS and next(_STRESS_CHECKS) % 16 == 0:  # (a heap scan: one collection in 16)
            _check_holders(self, holders)
        roots = [holder._row for holder in holders.values() if resolve(holder) is self]
        in0, in1 = rows[:, IN0].tolist(), rows[:, IN1].tolist()
        live = bytearray(n)
        live[:start] = b"\x01" * start  # kept as recorded, with their numbers
        stack = roots
        while stack:
            row = stack.pop()
            if live[row]:
                continue
            live[row] = 1
            if in0[row] >= 0:
                stack.append(in0[row])
            if in1[row] >= 0:
                stack.append(in1[row])
            if row in extra:
                stack.extend(extra[row])
            if row in siblings:
                stack.extend(siblings[row])
        kept = live.count(1)
        if kept == n or (2 * (n - kept) < n - start and not _STRESS):  # at most half the tracked rows dead
            return False
        keep = np.flatnonzero(np.frombuffer(live, np.uint8))
        new_of = np.full(n, -1, np.int64)
        new_of[keep] = np.arange(kept)
        moved = rows[keep]  # (a copy)
        for column in (IN0, IN1):
            sources = moved[:, column]
            present = sources >= 0
            sources[present] = new_of[sources[present]]
        aux = self._compacted_aux(rows, opcodes, keep, moved, new_of)
        if aux is None:
            return False
        self.aux = aux
        for index in np.flatnonzero(opcodes[keep] == _WHERE_OPCODE).tolist():
            moved[index, IPARAM] = index - new_of[int(keep[index]) - int(rows[keep[index], IPARAM])]
        # From here on the tape changes; nothing below can fail.
        new = new_of.tolist()

        def renumbered(table):
            return {new[row]: value for row, value in table.items() if live[row]}

        self.saved = renumbered(self.saved)
        if self.leaf_copies:
            self.leaf_copies = renumbered(self.leaf_copies)
        if self.view_copies:
            self.view_copies = renumbered(self.view_copies)
        if self.leaf_arrays:
            self.leaf_arrays = renumbered(self.leaf_arrays)
        self.registered = {key: new[row] for key, row in self.registered.items() if live[row]}
        self.leaves = [(new[row], tensor) for row, tensor in self.leaves if live[row]]
        if self.hooks:
            self.hooks = renumbered(self.hooks)
        if self.node_names:
            self.node_names = renumbered(self.node_names)
        if self.traces:
            self.traces = renumbered(self.traces)
        if self.functions:
            self.functions = {new[row]: call.renumbered(new) for row, call in self.functions.items() if live[row]}
        if self.packed:
            self.packed = renumbered(self.packed)
        if self.bypassed:
            self.bypassed = {new[row] for row in self.bypassed if live[row]}
        if self.read_through:
            self.read_through = {new[row] for row in self.read_through if live[row]}
        if self.versions:
            self.versions = {
                new[row]: [(counter, version, new[saved]) for counter, version, saved in entries]
                for row, entries in self.versions.items()
                if live[row]
            }
        if len(self.freed):
            self.freed = self.grown_freed()[keep]
        self.refs = {new[row]: held for row, held in self.refs.items() if live[row] and _held(held)}
        addresses = set(self.saved.values())
        self.keepalive = [array_ for array_ in self.keepalive if address_of(array_) in addresses]
        self.rows[: kept * ROW_BYTES] = moved.tobytes()
        self.n = kept
        self.row_view = self.param_view = None
        for holder in holders.values():
            if holder._tape is self:
                holder._row = new[holder._row]
        if self.nodes:
            nodes = list(self.nodes.values())
            self.nodes.clear()
            for node in nodes:
                self.nodes[node._row] = node
        self.collect_at = COLLECT_ROWS if _STRESS and kept < _STRESS_ROWS else max(COLLECT_ROWS, 2 * kept)
        self.dead_sinks = 0
        return True

    def _compacted_aux(self, rows, opcodes, keep, moved, new_of):
        """The aux table of the rows ``keep`` (their fields ``moved`` get its new offsets, and the
        listed inputs of stack/cat their new deltas), or None where a segment is shared by a
        row that lists inputs (its deltas could not be right for both)."""
        uses = _USES_AUX[opcodes]
        if not uses.any():
            return self.aux
        old = np.frombuffer(self.aux, np.int64) if len(self.aux) else np.zeros(0, np.int64)
        starts = np.unique(rows[uses, IPARAM])
        ends = np.append(starts[1:], len(old)).tolist()
        readers = np.flatnonzero(uses[keep]).tolist()
        shared = np.unique(moved[readers, IPARAM], return_counts=True)
        shared = set(shared[0][shared[1] > 1].tolist())
        aux = array("q")
        placed: dict = {}  # old offset -> new
        for index in readers:
            start = int(moved[index, IPARAM])
            lists = _LISTS_INPUTS[int(opcodes[keep[index]])]
            if lists and start in shared:
                return None
            offset = placed.get(start)
            if offset is None:
                offset = placed[start] = len(aux)
                aux.frombytes(old[start : ends[int(np.searchsorted(starts, start))]].tobytes())
            moved[index, IPARAM] = offset
            if lists:
                row = int(keep[index])
                for position in range(offset + 2, offset + 2 + aux[offset]):
                    if aux[position]:
                        aux[position] = index - int(new_of[row - aux[position]])
        return aux

    def layout_of(self, row: int) -> int:
        return self.ints[row * ROW_WIDTH + LAYOUT]

    def add_aux(self, values) -> int:
        offset = len(self.aux)
        if isinstance(values, np.ndarray):  # index lists: one copy of the bytes, not a Python int each
            self.aux.frombytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())
        else:
            self.aux.extend(values)
        return offset

    def register(self, tensor) -> int:
        """The row standing for a leaf or constant tensor on this tape (created on first use).

        A tensor of another graph (possible only inside ``tapegrad.record``) is a constant here."""
        is_leaf = tensor._requires_grad and tensor._tape is None
        key = id(tensor) if is_leaf else -id(tensor)
        row = self.registered.get(key)
        if row is None:
            data = tensor._data
            opcode = LEAF_OPCODE if is_leaf else CONSTANT_OPCODE
            row = self.append(opcode, -1, -1, 0, self.layout(data.dtype, data.shape), 0.0)
            self.registered[key] = row
            # The tape holds the tensor so that its id cannot be reused while the tape lives.
            self.leaves.append((row, tensor))
            if self.replay_values is not None and self.shared is not None:
                # Inside tapegrad.record, a captured tensor is a constant of the tape at the value
                # it had when first read: read at the end, a change the function made to it after
                # (``c.add_(x)``, a parameter's update) was replayed as if made before, silently.
                self.replay_values[row] = np.array(data)
                self.captured[row] = (tensor, tensor._tape, tensor._row, tensor._requires_grad)
                self.shared.read(tensor)
        return row

    def track(self, consumer: int, saved_row: int, tensor) -> None:
        """Remember that row ``consumer`` saved ``saved_row``'s value as ``tensor`` at its current
        version: if the tensor is changed in place before a backward reaches ``consumer``, that
        backward raises PyTorch's error instead of differentiating other values. Under
        ``saved_tensors_hooks``, the pack hook takes it instead, and no version is checked: the
        backward reads what the unpack hook returns (``engine``), as PyTorch's does."""
        if saved_hooks_open[0]:
            stack = getattr(saved_tensor_hooks, "stack", None)
            if stack:
                self._pack(saved_row, tensor, stack)
                return
        counter = tensor._version_counter
        if counter is None:
            counter = tensor._version_counter = [0]
        self.versions.setdefault(consumer, []).append((counter, counter[0], saved_row))
        if self.view_copies is not None:
            copied = self.view_copies.get(saved_row)
            if copied is not None and copied[3] is None:  # a view PyTorch saves: its value is refreshed
                copied[3], copied[4] = counter, counter[0]

    def _pack(self, saved_row: int, tensor, stack: list) -> None:
        if self.replay_values is not None:
            raise NotImplementedError(
                "saved_tensors_hooks inside tapegrad.record is not supported: a replay would not run the hooks"
            )
        pack, unpack = stack[-1]
        saved_tensor_hooks.stack = []  # off inside the pack hook, as PyTorch's: an op it runs saves as usual
        try:
            packed = pack(tensor)
        finally:
            saved_tensor_hooks.stack = stack
        if self.packed is None:
            self.packed = {}
            packed_ever[0] = True
        self.packed.setdefault(saved_row, []).append((unpack, packed))

    def modified_rows(self, n_rows: int, epoch: int):
        """{consumer row: (counter, version when saved, saved row)} for saved tensors changed
        in place since (None when none was)."""
        if not self.versions or self.checked_epoch == epoch:
            return None
        modified = {}
        for consumer, entries in self.versions.items():
            for entry in entries:
                if entry[0][0] != entry[1]:
                    modified[consumer] = entry
                    break
        if not modified:
            self.checked_epoch = epoch  # nothing changed anywhere on this tape: skip until the next change
            return None
        return {consumer: entry for consumer, entry in modified.items() if consumer < n_rows} or None

    def save_leaf(self, row: int, tensor) -> None:
        """Save a leaf's own array by reference, with its address cached on the tensor: a
        parameter used every training step pays for ``__array_interface__`` once, not per step."""
        if row in self.saved:
            copied = self.leaf_copies.get(row) if self.leaf_copies else None
            if copied is None or copied[0][0] == copied[1]:
                return  # by reference (the live values), or a copy of the current version
            # A copy from before an in-place change: an op that read it without checking its
            # version (``rules.CROSS_READS``: a value no gradient it takes reads) left it, and
            # this reader needs today's values; a reader that did check it fails its check.
            del self.saved[row]
        data = tensor._data
        cached = tensor._address
        if cached is None or cached[0] is not data:
            if not data.flags.c_contiguous:
                self.save(row, data)
                counter = tensor._version_counter
                if counter is None:
                    counter = tensor._version_counter = [0]
                if self.leaf_copies is None:
                    self.leaf_copies = {}
                self.leaf_copies[row] = (counter, counter[0])
                return
            cached = tensor._address = (data, address_of(data))
        self.keepalive.append(data)
        self.saved[row] = cached[1]
        self.leaf_arrays[row] = data

    def follow_replaced_leaves(self, n_rows: int) -> None:
        """``x.data = new`` between a forward and its backward: PyTorch's backward reads the new
        values (it saved the leaf tensor itself), where this tape saved the old array's address.
        Each leaf row below ``n_rows`` whose tensor holds another array now reads that one; of
        another shape or dtype, ``RuntimeError`` (PyTorch's backward fails on it too).

        Except a leaf that ops read in place of its transpose (``a.t() * b.t()``, ``x @ w.t()``,
        ``F.linear``: ``_record._transposed_source``, ``_linalg._mm_of_sources``): PyTorch saved
        the transpose, a view of the old storage, and reads the old values. Such a row keeps its
        array; one that other rows read too, which would want the new values, raises
        ``RuntimeError`` (the tape holds one value per row) rather than give either of them the
        other's."""
        for row, tensor in self.leaves:
            array = self.leaf_arrays.get(row)
            data = tensor._data
            if array is None or array is data or row >= n_rows:
                continue
            if data.shape != array.shape or data.dtype != array.dtype:
                raise RuntimeError(
                    f"a tensor's .data was replaced by one of shape {list(data.shape)} and dtype {data.dtype} after "
                    f"an op saved it (shape {list(array.shape)}, {array.dtype}) for this backward"
                )
            if self._read_through_transposes(row, n_rows):  # (the transposes may be collected: not their test)
                continue
            data = np.ascontiguousarray(data)
            self.keepalive.append(data)
            self.saved[row] = address_of(data)
            self.leaf_arrays[row] = tensor._data

    def _read_through_transposes(self, row: int, n_rows: int) -> bool:
        """Whether the rows below ``n_rows`` whose backward reads leaf ``row``'s value read it
        in place of its transposes (``read_through``, and products' ``iparam`` flags, one per
        operand); ``RuntimeError`` where such rows and others read it both; False where none
        does. The bypassed transposes themselves read nothing."""
        rows = self.rows_array()[:n_rows]
        bypassed = self.bypassed or ()
        read_through = self.read_through or ()
        through = other = False
        for consumer in np.flatnonzero((rows[:, IN0] == row) | (rows[:, IN1] == row)).tolist():
            if consumer in bypassed:
                continue
            opcode, in0, in1, iparam = rows[consumer, :4].tolist()
            op = OPS[opcode & OPCODE_MASK]
            for operand, flag, value in ((in0, 1, "a"), (in1, 2, "b")):
                if operand != row or not op.reads(value):  # (an add reads no value: either is right)
                    continue
                if consumer in read_through or (opcode & OPCODE_MASK == _MM_OPCODE and iparam & flag):
                    through = True
                else:
                    other = True
        if through and other:
            raise RuntimeError(
                "a tensor's .data was replaced after an op read it through its transpose (whose backward reads "
                "the old values, as PyTorch's saved view does) and another op read it itself (which reads the "
                "new ones): this tape keeps one value per tensor; replace .data after the backward"
            )
        return through

    def save(self, row: int, data: np.ndarray, view: np.ndarray | None = None) -> None:
        """Make the value of ``row`` readable by the backward, by address; ``view``: what
        ``data`` copies, if the caller copied it (``view_copies``)."""
        if self.replay_values is not None:  # a registered tensor keeps its value when first read
            self.replay_values.setdefault(row, data)
        if row in self.saved:
            return
        if type(data) is not np.ndarray or not data.flags.c_contiguous:  # (a numpy scalar: an array to hold)
            if type(data) is np.ndarray:
                view = data
            data = np.ascontiguousarray(data)
        # By reference, as PyTorch saves a tensor: a change that bypasses the version counter
        # (through ``.data``) is seen. (Copies of small values into an arena cost more than the
        # address since address_of takes 0.2 us, and each tape paid for a chunk.)
        self.keepalive.append(data)
        address = self.saved[row] = address_of(data)
        if view is not None:  # a copy, seeing such a change only if refreshed (``view_copies``)
            if not self.view_copies:
                self.view_copies = {}
                self.copied_epoch = inplace_epoch[0]
            self.view_copies[row] = [data, view, address, None, 0]

    def forget_saved(self, row: int) -> None:
        """Let ``row`` save its value again (a view changed in place: ``_indexing.refresh_view``);
        the old value stays alive for the rows that saved it (``keepalive``)."""
        if self.saved.pop(row, None) is not None and self.view_copies:
            self.view_copies.pop(row, None)

    def refresh_view_copies(self, n_rows: int) -> None:
        """Copy again, before a backward, each view below ``n_rows`` that an op saved as a copy
        and PyTorch's op saves itself (``track``; ``view_copies``), unchanged in place since as
        far as autograd knows: a write it does not see (``w.data.mul_(3)``) reaches PyTorch's
        saved view, and so the values this backward reads. A view changed in place keeps its
        copy: its version check raises when a backward reads it, as PyTorch's does. A row saved
        again since (``_record._unsave_old_value``: an old value kept on purpose) is left.

        Only after an in-place op anywhere (``inplace_epoch``), which every write through
        tapegrad counts, ``.data``'s too; a write through numpy itself (``w.numpy()[:] = 0``)
        between the forward and the backward is not seen."""
        epoch = inplace_epoch[0]
        if epoch == self.copied_epoch:
            return
        saved = self.saved
        for row, copied in self.view_copies.items():
            counter = copied[3]
            if counter is not None and counter[0] == copied[4] and row < n_rows and saved.get(row) == copied[2]:
                np.copyto(copied[0], copied[1])
        if n_rows >= self.n:
            self.copied_epoch = epoch

    # -- joining graphs -------------------------------------------------------------------

    def absorb(self, other: Tape) -> None:
        """Append ``other``'s rows to this tape; ``other`` forwards its tensors here.

        A leaf registered on both tapes (used by two graphs before they met) keeps one leaf row:
        ``other``'s becomes a ``shared_leaf`` row, hidden, that passes its gradient on to it. Each row
        keeps the value it saved (the leaf's ``.data`` may have been replaced in between), and
        the leaf's gradient is summed in one row, where its hooks see the total once: two leaf
        rows ran them once each, on partial gradients. Constants are never merged (they take no
        gradient, and their values may differ), nor leaves whose dtype or shape changed."""
        for tape in (self, other):  # (``running_loss += loss`` joins each step's graph to the total)
            if tape.unreleased:
                tape.release_saved()
        shift = len(self)
        aux_shift = len(self.aux)
        # Flags of rows a backward already freed, unless neither tape has had a backward yet.
        freed = (
            np.concatenate([self.grown_freed(), other.grown_freed()]) if len(self.freed) or len(other.freed) else None
        )
        layout_map = list(range(len(other.layout_table) // 4))
        table = other.layout_table
        shared = 0  # layouts both took from one template generation have the same ids
        if other.template_generation == self.template_generation:
            shared = min(self.template_layouts, other.template_layouts)
        for layout_id in range(shared, len(layout_map)):
            code, _, ndim, offset = table[4 * layout_id : 4 * layout_id + 4]
            shape = tuple(other.dims[offset : offset + ndim])
            layout_map[layout_id] = self.layout(CODE_DTYPES[code], shape)
        self._reserve(shift + other.n)
        if other.n <= 32:  # a view of a parameter and the like: field by field, ~10x less than arrays
            self.rows[shift * ROW_BYTES : (shift + other.n) * ROW_BYTES] = other.rows[: other.n * ROW_BYTES]
            ints = self.ints
            for start in range(shift * ROW_WIDTH, (shift + other.n) * ROW_WIDTH, ROW_WIDTH):
                for field in (start + IN0, start + IN1):
                    if ints[field] >= 0:
                        ints[field] += shift
                ints[start + LAYOUT] = layout_map[ints[start + LAYOUT]]
                if _USES_AUX_LIST[ints[start + OPCODE] & OPCODE_MASK]:
                    ints[start + IPARAM] += aux_shift
        else:
            rows = other.rows_array().copy()
            for column in (IN0, IN1):
                rows[:, column] = np.where(rows[:, column] >= 0, rows[:, column] + shift, -1)
            rows[:, LAYOUT] = np.array(layout_map, np.int64)[rows[:, LAYOUT]]
            rows[_USES_AUX[rows[:, OPCODE] & OPCODE_MASK], IPARAM] += aux_shift
            self.rows[shift * ROW_BYTES : (shift + other.n) * ROW_BYTES] = rows.tobytes()
        aliased = set()
        ints = self.ints
        for key, row in other.registered.items():
            existing = self.registered.setdefault(key, row + shift)
            start = (row + shift) * ROW_WIDTH
            if key > 0 and existing != row + shift and self.layout_of(existing) == ints[start + LAYOUT]:
                ints[start + OPCODE] = SHARED_LEAF_OPCODE
                ints[start + IN0] = existing
                aliased.add(row)
        self.n = shift + other.n
        self.aux.extend(other.aux)
        redirected = self._redirect_readers(other, aliased, shift)
        # Each table only when ``other`` has entries: the common merge is of a parameter's view
        # (``x @ w.t()``, a tape of two rows), where the empty ones' updates were half its cost.
        if other.saved:
            self.saved.update({row + shift: address for row, address in other.saved.items()})
        if other.leaf_copies:
            if self.leaf_copies is None:
                self.leaf_copies = {}
            self.leaf_copies.update({row + shift: copied for row, copied in other.leaf_copies.items()})
        if other.view_copies:
            if not self.view_copies:
                self.view_copies = {}
                self.copied_epoch = other.copied_epoch
            else:  # (as old as the older of the two)
                self.copied_epoch = min(self.copied_epoch, other.copied_epoch)
            self.view_copies.update({row + shift: copied for row, copied in other.view_copies.items()})
        if other.leaf_arrays:
            self.leaf_arrays.update({row + shift: array for row, array in other.leaf_arrays.items()})
        self.keepalive.extend(other.keepalive)
        self.leaves.extend((row + shift, tensor) for row, tensor in other.leaves if row not in aliased)
        if other.retained:
            self.retained.extend(other.retained)
        if other.hooks:
            self.hooks.update({row + shift: hooks for row, hooks in other.hooks.items()})
        if other.guards:
            self.guards.update({row + shift: where for row, where in other.guards.items()})
        if other.functions:
            self.functions.update({row + shift: call.shifted(shift) for row, call in other.functions.items()})
        if other.node_names:
            if self.node_names is None:
                self.node_names = {}
            self.node_names.update({row + shift: name for row, name in other.node_names.items()})
        if other.traces:
            if self.traces is None:
                self.traces = {}
            self.traces.update({row + shift: trace for row, trace in other.traces.items()})
        if other.bypassed:
            if self.bypassed is None:
                self.bypassed = set()
            self.bypassed.update(row + shift for row in other.bypassed)
        if other.read_through:
            if self.read_through is None:
                self.read_through = set()
            self.read_through.update(row + shift for row in other.read_through)
        if other.refs:
            self.refs.update({row + shift: ref for row, ref in other.refs.items()})
        untracked = min(other.n, other.hold_from)
        if untracked:
            if self.hold_from < shift + untracked:  # their tensors are unknown: they stay
                self.hold_from = shift + untracked
            if len(self.freed):
                # A graph kept across backwards (``scale = log_s.exp()`` before the loop) that
                # absorbs each step's new graph kept every step's rows, and each backward swept
                # them all (2.3 ms a step rising to 10 ms over 2,000 steps): the tapes made from
                # now on track their tensors from the start, so that their rows can be collected
                track_new_tapes[0] = True
        if other.nodes:  # grad_fn objects someone holds: moved now, so that ``collect`` finds them here
            if self.nodes is None:
                self.nodes = weakref.WeakValueDictionary()
            for row, node in list(other.nodes.items()):
                node._tape, node._row = self, row + shift
                self.nodes[row + shift] = node
        if other.versions:
            self.versions.update(
                {
                    row + shift: [
                        (counter, version, redirected.get(saved + shift, saved + shift))
                        for counter, version, saved in entries
                    ]
                    for row, entries in other.versions.items()
                }
            )
        if other.packed:
            if self.packed is None:
                self.packed = {}
            for row, entries in other.packed.items():
                self.packed.setdefault(redirected.get(row + shift, row + shift), []).extend(entries)
        self.freed = _NO_ROWS if freed is None else freed
        self.checked_epoch = min(self.checked_epoch, other.checked_epoch)  # other's changes count too
        other.merged_into = self
        other.row_shift = shift
        # Drop the merged storage now; tensors still naming ``other`` resolve through it.
        other.rows = other.ints = other.row_view = other.param_view = None
        other.n = 0
        other.keepalive = other.leaves = other.retained = []
        other.registered = {}
        other.saved = {}
        # (copied above: held here too, a max pooling's indices were kept twice)
        other.aux = array("q")
        other.leaf_arrays = {}
        other.versions = {}
        other.hooks = {}
        other.leaf_copies = None
        other.view_copies = None
        other.functions = {}
        other.node_names = None
        other.traces = None
        other.packed = None
        other.bypassed = None
        other.read_through = None
        other.refs = {}
        other.nodes = None

    def _redirect_readers(self, other: Tape, aliased: set, shift: int) -> dict:
        """``absorb``'s ``shared_leaf`` rows whose readers can read the leaf's own row instead:
        their operand fields are rewritten, and the ``shared_leaf`` row, read by none, gets no
        gradient. Through it, every gradient of the leaf from ``other`` took a slot of its own
        and a pass into the leaf's: ``(x * y + x.sin()).sum()`` at 10^6 elements, whose two
        products start two tapes, spent 0.3 ms of its 2.4 ms backward there.

        Only where nothing else tells the two rows apart: the same value saved for both (or
        none by ``other``: ``.data`` may have been replaced in between), no reader listing it among its
        inputs in the aux table (``cat``, ``stack``) and no custom Function call in ``other``.
        Returns ``{shared_leaf row: leaf row}`` of those redirected."""
        if not aliased or other.functions:
            return {}
        ints = self.ints
        candidates = {}
        for row in aliased:
            here = row + shift
            existing = ints[here * ROW_WIDTH + IN0]
            theirs = other.saved.get(row)
            # (the leaf's row must have saved the same value: given one only now, a later reader
            # after a ``.data`` replacement would take it rather than save the new one)
            if theirs is None or self.saved.get(existing) == theirs:
                candidates[here] = existing
        rows = np.frombuffer(self.rows, np.int64, count=self.n * ROW_WIDTH).reshape(-1, ROW_WIDTH)[shift:]
        opcodes = rows[:, OPCODE] & OPCODE_MASK
        for index in np.flatnonzero(_LISTS_INPUTS_ARRAY[opcodes]).tolist():  # readers through the aux table
            row = shift + index
            fields = rows[index]
            for source in row_sources(row, int(opcodes[index]), fields[IN0], fields[IN1], fields[IPARAM], self.aux):
                candidates.pop(source, None)  # keep their pass row
        readers = opcodes != SHARED_LEAF_OPCODE
        for here, existing in candidates.items():
            for column in (IN0, IN1):
                rows[readers & (rows[:, column] == here), column] = existing
        return candidates

    def retained_rows(self, n_rows: int) -> list:
        """(row, tensor) for the retained tensors whose current row is on this tape below ``n_rows``.
        The tape holds them weakly: one that died needs no gradient (held, each was a cycle
        through the tape, and a kept graph's list grew by one a step); the dead are dropped."""
        pairs = []
        alive = []
        for reference in self.retained:
            tensor = reference()
            if tensor is None:
                continue
            alive.append(reference)
            if tensor._tape is not None and resolve(tensor) is self and tensor._row < n_rows:
                pairs.append((tensor._row, tensor))
        self.retained = alive
        return pairs

    def release_saved(self) -> None:
        """Drop the saved values that no row still to run its backward reads, as PyTorch frees
        a graph's saved tensors when its backward runs (a later backward through those rows
        raises on their freed flags). Kept until the graph's last tensor died, the activations
        of a training step stayed through the next step's forward, and a loss kept in a list
        kept its whole step. A pending row reads its own value, its operands', the sources its
        operands broadcast (``backward._repeated_value``), its listed inputs, a where's mask."""
        self.unreleased = False
        n = self.n
        rows = self.rows_array()[:n]
        opcodes = rows[:, OPCODE] & OPCODE_MASK
        # (a view row left pending, the transpose a product read through its source
        # (``Tape.bypassed``) or one nothing used, reads no value when it runs)
        pending = ~self.grown_freed()[:n] & ~_READS_NO_VALUE[opcodes]
        if not pending.any():
            # The commonest case, a backward that ran every row that reads values: nothing reads
            # any saved value again. Working out which ones anyway (a dozen numpy calls) was 18 us
            # of every backward of a step with 1 MB of gradients (``a.t() * b.t()`` at 128x512:
            # 15%), and as much again of ``h.t() @ c`` of a result ``h``, whose view stays pending.
            self._release([row for row in self.saved if row < n])
            return
        needed = pending.copy()
        operands = np.concatenate((rows[pending, IN0], rows[pending, IN1]))
        operands = operands[operands >= 0]
        needed[operands] = True
        sources = rows[operands, IN0]
        needed[sources[sources >= 0]] = True
        for row in np.flatnonzero(pending & (_LISTS_INPUTS_ARRAY[opcodes] | (opcodes == _WHERE_OPCODE))).tolist():
            if opcodes[row] == _WHERE_OPCODE:
                needed[row - int(rows[row, IPARAM])] = True
            else:
                needed[[source for source in self.sources(row) if source >= 0]] = True
        self._release([row for row in self.saved if row < n and not needed[row]])

    def _release(self, released: list) -> None:
        """Forget the saved values of rows ``released``, and the arrays only they kept alive."""
        if not released:
            return
        for row in released:
            del self.saved[row]
            self.leaf_arrays.pop(row, None)
            if self.leaf_copies:
                self.leaf_copies.pop(row, None)
            if self.view_copies:
                self.view_copies.pop(row, None)
            if self.packed:
                self.packed.pop(row, None)
        if not self.saved:  # (all of them: no address to look for)
            self.keepalive = []
            return
        addresses = set(self.saved.values())
        self.keepalive = [array_ for array_ in self.keepalive if address_of(array_) in addresses]

    def grown_freed(self) -> np.ndarray:
        if not len(self.freed):  # the first backward of a tape: nothing to carry over
            self.freed = np.zeros(len(self), np.bool_)
        elif len(self.freed) < len(self):
            freed = np.zeros(len(self), np.bool_)
            freed[: len(self.freed)] = self.freed
            self.freed = freed
        return self.freed

    # -- what the kernels read ------------------------------------------------------------

    def rows_array(self) -> np.ndarray:
        if self.row_view is None:
            self._view_rows()
        return self.row_view[: self.n]

    def _view_rows(self) -> None:
        """The rows as (capacity, ROW_WIDTH) int64 and float64 arrays, made once per buffer: a
        backward slices them (~0.2 us) instead of building two views per call (~1.5 us). The
        buffer is never resized (``_reserve`` replaces it and drops these), so they stay valid."""
        self.row_view = np.frombuffer(self.rows, np.int64).reshape(-1, ROW_WIDTH)
        self.param_view = np.frombuffer(self.rows, np.float64).reshape(-1, ROW_WIDTH)

    def params_array(self) -> np.ndarray:
        """The rows reinterpreted as floats: ``params[r, PARAM]`` is row r's float parameter."""
        if self.param_view is None:
            self._view_rows()
        return self.param_view[: self.n]

    def layouts_array(self) -> np.ndarray:
        return np.frombuffer(self.layout_table, np.int64).reshape(-1, 4)

    def addresses(self, n_rows: int) -> np.ndarray:
        saved = self.saved
        if not saved:
            return np.zeros(n_rows, np.int64)
        if n_rows <= 128:  # a training step's tape: a Python list, ~1 us less than the arrays
            listed = [0] * n_rows
            for row, address in saved.items():
                if row < n_rows:
                    listed[row] = address
            return np.array(listed, np.int64)
        addresses = np.zeros(n_rows, np.int64)
        rows = np.fromiter(saved.keys(), np.int64, len(saved))
        values = np.fromiter(saved.values(), np.int64, len(saved))
        keep = rows < n_rows
        addresses[rows[keep]] = values[keep]
        return addresses

    def sources(self, row: int) -> list:
        """The rows ``row`` reads, in order, -1 for an operand with no row: ``in0`` and ``in1``,
        or the inputs a stack/cat lists in aux as deltas from itself (0: no row)."""
        return row_sources(row, *self.ints[row * ROW_WIDTH : row * ROW_WIDTH + 4], self.aux)

    def shape_of(self, row: int) -> tuple:
        layout = self.ints[row * ROW_WIDTH + LAYOUT]
        _, _, ndim, offset = self.layout_table[4 * layout : 4 * layout + 4]
        return tuple(self.dims[offset : offset + ndim])


def _held(held) -> bool:
    """Whether a ``Tape.refs`` entry (a weak reference, a list of them, or None) has a holder alive."""
    if held is None:
        return False
    if type(held) is list:
        return any(ref() is not None for ref in held)
    return held() is not None


def _check_holders(tape: Tape, holders: dict) -> None:
    """The stress mode's check that ``holders`` has every object naming a row of ``tape`` (a
    tensor given a row without ``Tape.hold`` would keep a stale row number after a collection)."""
    import gc

    tapes = [tape]
    while tapes:
        here = tapes.pop()
        for referrer in gc.get_referrers(here):
            if type(referrer) is Tape and referrer.merged_into is here:
                tapes.append(referrer)  # its tensors resolve to ``tape``'s rows
            elif (
                getattr(referrer, "_tape", None) is here
                and id(referrer) not in holders
                and referrer._row >= (tape.hold_from if here is tape else 0)
            ):
                raise AssertionError(f"a {type(referrer).__name__} holds row {referrer._row} without Tape.hold")


def _collectable_here() -> bool:
    """Whether the stack above ``Tape.collect``'s caller holds no row number: each tapegrad frame
    on it is one of ``_COLLECTS_UNDER``, all of them above the user's code (none called back from
    tapegrad: a hook, a custom Function's forward). ``tapegrad.nn`` and ``tapegrad.optim`` count as
    the user's code."""
    frame = sys._getframe(2)
    outside = False
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(_PACKAGE) and not code.co_filename.startswith(_USER_LEVEL):
            if outside or (os.path.basename(code.co_filename), code.co_name) not in _COLLECTS_UNDER:
                return False
        else:
            outside = True
        frame = frame.f_back
    return True


def row_sources(row: int, opcode: int, in0: int, in1: int, iparam: int, aux) -> list:
    """The rows ``row`` reads (``Tape.sources``), from its fields and the aux table: for a
    recording's tape and for a replay's arrays alike."""
    if _LISTS_INPUTS[opcode & OPCODE_MASK]:
        count = int(aux[iparam])
        return [row - int(delta) if delta else -1 for delta in aux[iparam + 2 : iparam + 2 + count]]
    return [int(in0), int(in1)]


def resolve(tensor) -> Tape:
    """The live tape of a recorded tensor, following merges (and shortening the path)."""
    tape = tensor._tape
    if tape.merged_into is not None:
        row = tensor._row
        while tape.merged_into is not None:
            row += tape.row_shift
            tape = tape.merged_into
        tensor._tape = tape
        tensor._row = row
    return tape


def join(tensors) -> Tape:
    """The tape an op on these recorded tensors appends to: theirs, merged if they differ."""
    tapes = []
    for tensor in tensors:
        tape = resolve(tensor)
        if all(tape is not seen for seen in tapes):
            tapes.append(tape)
    tapes.sort(key=len, reverse=True)
    # A backward in progress (a hook recording under enable_grad) reads its tape's leaves and
    # flags to its end: the other tapes join that one, whatever the sizes. Absorbed into a
    # longer one, its leaves moved there and the backward delivered no gradient, silently.
    swept = [tape for tape in tapes if tape.sweeping]
    if len(swept) > 1:
        raise NotImplementedError(
            "an op joining the graphs of two backward passes in progress (recorded in a hook under "
            "enable_grad) is not supported"
        )
    if swept:
        tapes.remove(swept[0])
        tapes.insert(0, swept[0])
    target = tapes[0]
    for other in tapes[1:]:
        target.absorb(other)
    for tensor in tensors:
        resolve(tensor)
    return target
