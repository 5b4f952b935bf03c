"""From ``backward()`` to one jitted sweep per tape, and back to ``.grad``.

This module validates what the user passed (PyTorch's errors and messages), groups the roots by
tape, calls the interpreter once per tape, and copies each leaf's slice of the gradient arena
into its ``.grad``. It loops over tape rows in Python only in anomaly mode (``anomaly_mode``),
which looks at each rule's results as PyTorch's does.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import threading
from weakref import ref as _weakref

import numpy as np

from .._grad_mode import is_anomaly_enabled, no_grad
from .._grad_mode import state as _grad_state
from .._indexing import refresh_view
from .._kernels import load as load_kernels
from .._ops import CONSTANT_OPCODE, LEAF_OPCODE, OPCODE, OPS, VIEW, dispatch_arrays
from .._tape import (
    CODE_DTYPES,
    OPCODE_MASK,
    ROW_BYTES,
    ROW_WIDTH,
    address_of,
    backwards_running,
    inplace_epoch,
    join,
    outside_lock,
    packed_ever,
    resolve,
    serialized,
)
from ..tensor import Size, Tensor, _wrap, hook_registrations, post_accumulate_registrations
from .anomaly_mode import check_rule, checking_nan, warn_failed

_kernel = None


def kernel():
    """The backward interpreter and its dispatch arrays; imports numba on first use."""
    global _kernel
    if _kernel is None:
        from .._kernels import backward

        _kernel = (
            backward.backward_sweep,
            dispatch_arrays(backward.RULES),
            backward.backward_setup,
            backward.backward_rows,
        )
    return _kernel


FREED, MODIFIED, KERNEL_FAILED = 1, 2, 4  # tapegrad._kernels.backward's statuses
FUSED_SMALLEST = 1 << 18  # tapegrad._kernels.fused.BACKWARD_SMALLEST (not imported: it loads numba)


def kernel_error(failed: bool, sweep: str, op: str) -> Exception:
    """The error for a sweep that stopped at a row of ``op``: no rule for it (a table error,
    ``NotImplementedError``), or a kernel that raised (``RuntimeError``; numba printed why)."""
    if failed:
        return RuntimeError(f"tapegrad's {sweep} kernel for {op} failed (see the message above); please report it")
    return NotImplementedError(f"no {sweep} rule for {op}")


SECOND_BACKWARD = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they "
    "have already been freed). Saved intermediate values of the graph are freed when you call .backward() "
    "or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time "
    "or if you need to access saved tensors after calling backward."
)


def _modified_message(tape, entry, consumer: int) -> str:
    """PyTorch's message for row ``consumer``, whose saved value (``entry``: counter, version
    when saved, saved row) changed in place. It names the op the value is an output of, as
    PyTorch does: the consumer itself when it saved its own result (``h = x.exp(); h += 1``:
    "Exp"), else the op that produced the value now (the in-place op: "Add")."""
    counter, expected, row = entry
    layout = tape.layout_of(row)
    tensor_type = _tensor_type(CODE_DTYPES[tape.layout_table[4 * layout]])
    opcode = tape.ints[row * ROW_WIDTH] & OPCODE_MASK
    shape = list(tape.shape_of(row))
    # A product that reads a transpose's source in place (``_linalg._mm_of_sources``) saved
    # the transposed view, as PyTorch's does: named as that view.
    fields = tape.ints[consumer * ROW_WIDTH : consumer * ROW_WIDTH + 4]
    flags = fields[3] if (fields[0] & OPCODE_MASK) == _MM_OPCODE else 0
    transposed = (flags & 1 and fields[1] == row) or (flags & 2 and fields[2] == row)
    if transposed:
        shape = shape[::-1]
    if row == consumer:
        producer = f", which is output 0 of {_node_name(OPS[opcode].grad_fn)},"
    elif transposed or (OPS[opcode].family == VIEW and OPS[opcode].is_view):
        # A view whose storage changed in place: PyTorch regenerates its node as AsStrided,
        # whatever changed it (the view itself, its base, with or without grad mode).
        producer = ", which is output 0 of AsStrided,"
    elif len(counter) > 1:  # the in-place op that produced the current value
        producer = f", which is output 0 of {counter[1]},"
    elif opcode in (LEAF_OPCODE, CONSTANT_OPCODE):
        producer = ""
    else:
        producer = f", which is output 0 of {_node_name(OPS[opcode].grad_fn)},"
    return (
        "one of the variables needed for gradient computation has been modified by an inplace operation: "
        f"[{tensor_type} {shape}]{producer} is at version {counter[0]}; expected "
        f"version {expected} instead. Hint: the variable was changed in place after the operation that "
        "saved it; clone it before changing it, or change it after the backward."
    )


_MM_OPCODE = OPCODE["mm"]


def _node_name(grad_fn: str) -> str:
    """ "ExpBackward0" as PyTorch's message names it: "Exp"."""
    return re.sub(r"Backward\d*$", "", grad_fn)


_ONE = np.ones(1)  # the implicit seed of a one-element root, as the sweep reads seeds (float64)


def _seed(index: int, root, gradient) -> np.ndarray:
    if not root._requires_grad:
        raise RuntimeError(f"element {index} of tensors does not require grad and does not have a grad_fn")
    if gradient is None:
        if root._data.size != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        return np.ones(root._data.shape, root._data.dtype)
    values = gradient._data if isinstance(gradient, Tensor) else np.asarray(gradient)
    if values.shape != root._data.shape:
        raise RuntimeError(
            f"Mismatch in shape: grad_output[{index}] has a shape of {Size(values.shape)!r} and "
            f"output[{index}] has a shape of {Size(root._data.shape)!r}."
        )
    return values


@serialized
def run_backward(roots, gradients, retain_graph=None, create_graph: bool = False, *, collect=None):
    """Backpropagate from ``roots``; fill ``.grad`` of leaves, or, with ``collect`` (a list of
    tensors), return their gradients instead (``autograd.grad``)."""
    if _grad_state.recording is not None:
        # Computed here, the gradients would enter the recording as constants: a replay at other
        # inputs would return the recording's gradients, silently wrong.
        raise NotImplementedError(
            "backward() and autograd.grad inside tapegrad.record are not supported yet: a replay would "
            "reuse the gradients of the recording's inputs (Tape.value_and_grad differentiates the tape)"
        )
    for root in roots:
        if isinstance(root, Tensor) and root._base is not None and root._version_counter[0] != root._seen_version:
            # A view whose storage changed in place since its row: as PyTorch regenerates its
            # grad_fn, the backward starts from its values now (its old row: a silent wrong gradient)
            refresh_view(root, by_an_op=False)
    if packed_ever[0]:
        tapes = {id(tape): tape for tape in (resolve(root) for root in roots if root._tape is not None) if tape.packed}
        if tapes:
            with _unpacked(list(tapes.values()), create_graph):
                return _backward(roots, gradients, retain_graph, create_graph, collect)
    return _backward(roots, gradients, retain_graph, create_graph, collect)


def _backward(roots, gradients, retain_graph, create_graph: bool, collect) -> None:
    if create_graph:
        from .higher_order import run_create_graph

        backwards_running[0] += 1
        try:
            return run_create_graph(roots, gradients, retain_graph, collect=collect)
        finally:
            backwards_running[0] -= 1
    retain = bool(retain_graph)
    if len(roots) == 1 and roots[0]._tape is not None:  # ``loss.backward()``: one root, recorded
        root, gradient = roots[0], gradients[0]
        tape = resolve(root)
        if tape.n >= tape.collect_at:  # before any row is read: rows may move
            tape.collect()
        if gradient is None and root._requires_grad and root._data.size == 1:
            seed = _ONE
        else:
            seed = np.asarray(_seed(0, root, gradient), np.float64).reshape(-1)
        backwards_running[0] += 1  # hooks may record on this tape: no collection meanwhile
        try:
            _sweep(tape, [(root._row, seed)], retain, collect)
        finally:
            backwards_running[0] -= 1
        return
    backwards_running[0] += 1
    try:
        _run_backward(roots, gradients, retain, collect)
    finally:
        backwards_running[0] -= 1


@contextlib.contextmanager
def _unpacked(tapes: list, create_graph: bool):
    """For one backward, each value a ``saved_tensors_hooks`` pack hook took is read from what
    its unpack hook returns (each hook called once, as PyTorch calls each per saved tensor),
    broadcast to the value's shape and cast to its dtype as PyTorch's kernels would read it.
    ``TypeError`` for an unpack hook that returns no tensor (PyTorch's message),
    ``RuntimeError`` for one that does not broadcast. A tape keeps one value per row: an
    unpacked value that differs from the saved one is refused (``NotImplementedError``) where
    an op recorded outside the hooks reads the same row, or under ``create_graph``, whose
    formulas read the rows' own tensors; equal values (identity hooks, offloading) are left."""
    replaced = []  # (tape, row, address before)
    held = []
    try:
        for tape in tapes:
            arrays = None
            for row, entries in list(tape.packed.items()):
                value = None
                for unpack, packed in entries:
                    result = unpack(packed)
                    if not isinstance(result, Tensor):
                        raise TypeError(
                            "Output of saved tensor unpack_hook expected to be a Tensor but got result of type "
                            f"{type(result).__name__}"
                        )
                    value = result if value is None else value
                shape = tape.shape_of(row)
                dtype = CODE_DTYPES[tape.layout_table[4 * tape.layout_of(row)]]
                try:  # (a broadcast operand was packed as itself: PyTorch broadcasts it back)
                    data = np.ascontiguousarray(np.broadcast_to(value._data, shape), dtype=dtype)
                except ValueError:
                    raise RuntimeError(
                        f"saved tensor unpack_hook returned a tensor of shape {list(value._data.shape)} for a saved "
                        f"tensor of shape {list(shape)}"
                    ) from None
                address = tape.saved.get(row)
                if address == address_of(data):
                    continue
                if arrays is None:
                    arrays = {address_of(array): array for array in tape.keepalive}
                original = arrays.get(address)
                if (
                    original is not None
                    and original.shape == data.shape
                    and np.array_equal(original, data, equal_nan=True)
                ):
                    continue  # the value it saved: nothing to stand in for
                if create_graph:
                    raise NotImplementedError(
                        "create_graph=True through saved_tensors_hooks whose unpack_hook changes the saved values "
                        "is not supported"
                    )
                if any(entry[2] == row for entries_ in tape.versions.values() for entry in entries_):
                    raise NotImplementedError(
                        "a value saved both inside and outside saved_tensors_hooks, which its unpack_hook changes, "
                        "is not supported: tapegrad keeps one value per saved tensor"
                    )
                replaced.append((tape, row, address))
                tape.saved[row] = address_of(data)
                held.append(data)
        yield
    finally:
        for tape, row, address in reversed(replaced):
            if address is None:
                tape.saved.pop(row, None)
            else:
                tape.saved[row] = address


def _run_backward(roots, gradients, retain: bool, collect) -> None:
    seeds = [_seed(i, root, gradient) for i, (root, gradient) in enumerate(zip(roots, gradients))]
    seeds = [np.array(seed, dtype=root._data.dtype) if root._tape is None else seed for root, seed in zip(roots, seeds)]
    by_tape, lone = roots_by_tape(roots, seeds)
    for leaf, seed in lone:
        if leaf._hooks:
            _run_hooks(seed, leaf._hooks)
        _accumulate(leaf, seed, collect)
    for tape, pairs in by_tape.values():
        _sweep(tape, pairs, retain, collect)


def roots_by_tape(roots, seeds) -> tuple:
    """``(by_tape, lone)``: the roots' ``(row, seed)`` pairs by tape, ``{id(tape): (tape,
    pairs)}``, and ``[(leaf, seed)]``. The seeds of a leaf that is itself a root are summed and
    join what its row on a tape of the other roots receives, so that its hooks run once, on the
    total, as PyTorch's do; ``lone`` are those on none of them. A leaf with hooks on several of
    the tapes joins them first. Seeds are arrays, or tensors (``create_graph``)."""
    _join_where_a_hooked_leaf_is_shared([root for root in roots if root._tape is not None])
    by_tape: dict = {}
    leaf_seeds: dict = {}  # id(leaf root) -> (leaf, summed seed)
    for root, seed in zip(roots, seeds):
        if root._tape is None:
            if id(root) in leaf_seeds:
                seed = leaf_seeds[id(root)][1] + seed
            leaf_seeds[id(root)] = (root, seed)
        else:
            tape = resolve(root)
            by_tape.setdefault(id(tape), (tape, []))[1].append((root._row, seed))
    lone = []
    for leaf, seed in leaf_seeds.values():
        for tape, pairs in by_tape.values():
            row = tape.registered.get(id(leaf))
            if row is not None:
                pairs.append((row, seed))
                break
        else:
            lone.append((leaf, seed))
    return by_tape, lone


# Elements of intermediate gradients that gradients handed over as views may keep alive beyond
# an arena's half: a few scalars' worth, 8 KB at most.
_SHARE_SLACK = 1024


_NO_UNIFORM = np.zeros(0, np.int64)  # a sweep that kept no uniform states (one that stops for hooks)
_NO_TOUCHED = np.zeros(0, np.bool_)
# From this many arena elements, the slots a sweep left holding one number (a UNIFORM gradient)
# are left out of ``views_suffice``'s count: looking for them costs a few microseconds, less
# than copying a gradient of this size.
_COUNT_IDLE = 1 << 16


def views_suffice(size: int, grad32: np.ndarray, grad64: np.ndarray, rows=None, layouts=None, offsets=None,
                  uniform=_NO_UNIFORM, touched=None) -> bool:  # fmt: skip
    """Whether gradients of ``size`` elements in a sweep's own arenas are handed over as views
    of them (a copy each cost ~15 us per 64K floats) rather than copied so that the arenas are
    freed: when they are at least half of what the arenas hold. A few small slots (the loss, its
    sums) do not count: with them, ``cat`` or ``mse_loss`` of two leaves fell one element short
    and copied both gradients (10-20% of the step). Nor, in large arenas, do slots that hold one
    number for all their elements (the sweep's ``uniform`` states over its ``rows``, laid out at
    ``offsets``: ``backward.idle_elements``): a sum's gradient, passed on through ``.t()`` or by
    ``mul``'s rule, left a slot of three or four unwritten, and ``relu(a.t()).sum()`` and
    ``(a * b[0]).sum()`` at 512x1024 copied 2 MB gradients (a tenth of their steps). Nor do
    the slots of rows the sweep never reached (``touched``). A transpose that ops read through
    its source (``Tape.bypassed``) has such a slot: ``h.t() @ c`` of a result ``h`` at 128x512
    copied its three leaves' gradients for the view's 64K unused elements."""
    held = grad32.size + grad64.size
    if 2 * size + _SHARE_SLACK >= held:
        return True
    if held < _COUNT_IDLE or rows is None:
        return False
    if not len(uniform) and touched is None:
        return False
    touched = _NO_TOUCHED if touched is None else touched
    idle = load_kernels("backward").idle_elements(rows, layouts, offsets, uniform, touched)
    return 2 * size + _SHARE_SLACK >= held - idle


# The last backward's gradient arenas, per thread, for the next backward to take when nothing
# else holds them (``_spare_arenas``): fresh memory costs a page fault per 4 KB at first touch,
# which was half of a small CNN's backward (25 -> 12 ms with the arenas reused).
_kept = threading.local()
_KEEP_BYTES = 256 << 20  # a larger pair is freed with its backward
# A smaller pair is freed: glibc's malloc serves blocks up to its largest mmap threshold (32 MB
# on 64-bit) from the heap once one of that size was freed, without new pages, and memory freed
# is memory the next forward writes while it is still in cache. Kept, a pair pinned memory the
# forward then could not reuse: the big workload's 12 MB arenas made its step 6-9% slower
# (interleaved, same process), and a small CNN's 30 MB ones gained nothing (15.2 ms either way,
# and as many page faults a step).
_REUSE_BYTES = 32 << 20


def _spare_arenas():
    """The arenas the last backward of this thread used, if nothing holds them now (a leaf's
    ``.grad`` handed over as a view of them, a hook that kept its gradient); else None."""
    kept = getattr(_kept, "arenas", None)
    _kept.arenas = None
    if kept is None:
        return None
    grad32, grad64 = kept
    del kept
    # Each is held here and by getrefcount's argument; an empty one is a shared constant.
    if (grad32.size and sys.getrefcount(grad32) > 2) or (grad64.size and sys.getrefcount(grad64) > 2):
        return None
    return grad32, grad64


def _keep_arenas(grad32: np.ndarray, grad64: np.ndarray) -> None:
    if _REUSE_BYTES <= grad32.nbytes + grad64.nbytes <= _KEEP_BYTES:
        _kept.arenas = (grad32, grad64)


_UNMODIFIED = [np.zeros(1024, np.bool_)]  # read-only: the sweep only reads ``modified``


# What a backward of recent tapes worked out, by structure: a training step records a new tape
# of the same rows every step. ``backward_sweep`` keeps the slot layout there (working it out
# again, a first sweep that stops with SHARE, the sharing pass and a second call, was ~8 us of
# the mlp step's ~110), and ``_sweep`` the root array and where each leaf's gradient lands
# (``_deliveries``: a table look-up, two arena indexings and a shape per leaf were a third of a
# small backward's Python). Only tapes of up to ``_PLAN_ROWS`` rows, whose structure costs a
# microsecond or two to key (the 1000-row chain's key cost 10 us of its 37 us backward, for no
# SHARE to save); bounded.
_PLANS: dict = {}
_PLAN_ROWS, _PLANS_KEPT = 256, 64
# Nor tapes whose aux table holds more entries: it holds data (a max pooling's argmax, a batch's
# labels, embedding ids) that differs every step, so such a plan never served twice, and 64 of
# them, each with its copy of aux, held 250 MB for a small CNN.
_PLAN_AUX = 1 << 12


def _backward_groups(tape, plan, arrays):
    """The groups of large elementwise rows the sweep runs a block at a time
    (``_kernels/fused.py``), or None; kept in the structure's plan, where there is one. A tape
    without a layout of ``fused.BACKWARD_SMALLEST`` elements (most: the check reads the tape's layout
    table, a fraction of a microsecond) has none."""
    groups = plan.get("fused", False) if plan is not None else False
    if groups is False:
        groups = None
        if max(tape.layout_table[1::4], default=0) >= FUSED_SMALLEST:
            from .._kernels import fused

            rows, _, layouts, *_, rules, _, paths = arrays
            groups = fused.backward_plan(rows, layouts, rules, paths)
        if plan is not None:
            plan["fused"] = groups
    return groups


def _structure(tape, roots) -> tuple:
    """``(plan, (rows, params, layouts, dims, aux))``: the plan of a tape of this structure (or
    None for a long tape), and the arrays the sweeps read of it. The rows (ops, operands,
    layouts, parameters), the layouts, their shapes, the aux entries and the roots (a row number,
    or the array of several) are all the slot layout and the rows a gradient reaches depend on
    (``backward._laid_out_shared``, ``backward._setup``), and the plan keys on their bytes. A
    plan holds its own copies of them, which the sweeps only read: a training step's new tape
    then builds no views of its buffers (five arrays, ~2.5 us of a 15 us small backward)."""
    n = tape.n
    if n > _PLAN_ROWS or len(tape.aux) > _PLAN_AUX:
        structure = (
            tape.rows_array(),
            tape.params_array(),
            tape.layouts_array(),
            _int64s(tape.dims),
            _int64s(tape.aux),
        )
        return None, structure
    rows = bytes(memoryview(tape.rows)[: n * ROW_BYTES])
    key = (
        rows,
        tape.layout_table.tobytes(),
        tape.dims.tobytes(),
        tape.aux.tobytes(),
        roots if type(roots) is int else roots.tobytes(),
    )
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) >= _PLANS_KEPT:
            _PLANS.clear()
        ints = np.frombuffer(bytearray(rows), np.int64).reshape(-1, ROW_WIDTH)  # (writable: one signature)
        layouts = np.frombuffer(tape.layout_table, np.int64).reshape(-1, 4).copy()
        structure = (ints, ints.view(np.float64), layouts, _int64s(tape.dims).copy(), _int64s(tape.aux).copy())
        plan = _PLANS[key] = {"structure": structure}
    return plan, plan["structure"]


def _int64s(buffer) -> np.ndarray:
    return np.frombuffer(buffer, np.int64) if len(buffer) else _NO_INT64S


_NO_INT64S = np.zeros(0, np.int64)


def _unmodified(n_rows: int) -> np.ndarray:
    """``n_rows`` False flags without allocating them per backward."""
    if len(_UNMODIFIED[0]) < n_rows:
        _UNMODIFIED[0] = np.zeros(2 * n_rows, np.bool_)
    return _UNMODIFIED[0][:n_rows]


def _join_where_a_hooked_leaf_is_shared(recorded: list) -> None:
    """Roots on several tapes are swept one tape at a time, unless a leaf with hooks (or
    post-accumulate-grad hooks) is on more than one of them: then its hooks would run once per
    sweep, each on a part of its gradient, so those tapes are joined first. (Not while
    recording a replay: its tape must stay its own.)"""
    tapes = []
    for root in recorded:
        tape = resolve(root)
        if all(tape is not other for other in tapes):
            tapes.append(tape)
    if len(tapes) < 2 or _grad_state.recording is not None:
        return
    seen: set = set()
    for tape in tapes:
        hooked = {id(tensor) for _, tensor in tape.leaves if tensor._hooks or tensor._post_accumulate_hooks}
        if hooked & seen:
            join(recorded)
            return
        seen |= hooked


_EMPTY: dict = {}  # no hooked rows, no custom Function calls (read only)


def _sweep(tape, pairs, retain: bool, collect) -> None:
    tape.sweeping += 1  # (``_tape.join``: a hook's op joins other tapes to this one, not it to them)
    try:
        _sweep_tape(tape, pairs, retain, collect)
    finally:
        tape.sweeping -= 1


def _sweep_tape(tape, pairs, retain: bool, collect) -> None:
    sweep, (rules, saves, paths), setup, propagate = kernel()
    if len(pairs) == 1:
        root, seed = pairs[0]
        roots = None  # made below, or taken from the plan
        seeds = seed if seed is _ONE else np.asarray(seed, np.float64).reshape(-1)
        n_rows = root + 1
    else:
        roots = np.array([row for row, _ in pairs], np.int64)
        seeds = np.concatenate([np.asarray(seed, np.float64).reshape(-1) for _, seed in pairs])
        n_rows = int(roots.max()) + 1
    if tape.view_copies:
        tape.refresh_view_copies(n_rows)
    if tape.leaf_arrays:
        tape.follow_replaced_leaves(n_rows)
    freed = tape.grown_freed()
    changed = tape.modified_rows(n_rows, inplace_epoch[0])
    needed = None
    if changed:
        modified = np.zeros(n_rows, np.bool_)
        modified[list(changed)] = True
        if collect is not None:
            # autograd.grad runs only the nodes on a path to the inputs it wants: a value changed
            # in place off that path is never read, and must not fail the call (PyTorch's)
            needed = _needed_rows(tape, n_rows, collect)
            modified &= needed
    else:
        modified = _unmodified(n_rows)
    plan, structure = _structure(tape, root if roots is None else roots)
    arrays = (*structure, tape.addresses(n_rows), rules, saves, paths)
    if roots is None:
        roots = plan.get("roots") if plan is not None else None
        if roots is None:
            roots = np.array((root,), np.int64)
            if plan is not None:
                plan["roots"] = roots  # (the sweeps only read it)
    hooked = _hooked_rows(tape, n_rows) if hook_registrations[0] else _EMPTY
    calls = {row: call for row, call in tape.functions.items() if row < n_rows} if tape.functions else _EMPTY
    check_nan = checking_nan()
    if needed is None and (hooked or tape.retained or calls or check_nan) and collect is not None:
        needed = _needed_rows(tape, n_rows, collect)
    captured_before = _captured_before_hooks(tape, n_rows, collect, hooked, needed) if collect is not None else ()
    before_hooks: dict = {}
    # PyTorch frees the buffers of the nodes it ran, and for autograd.grad (or backward(inputs=))
    # it runs only those on a path to the inputs asked for; the sweep goes through every row a
    # gradient reaches, so the others' flags are put back after it (else a later, separate
    # backward through them raised "Trying to backward through the graph a second time").
    freed_before = freed[:n_rows].copy() if collect is not None and not retain else None
    # Nor does it run anything below the lowest tensor wanted: there the sweep stops (a freed
    # row there, from an earlier backward, is none of this one's business).
    floor = _lowest_wanted_row(tape, n_rows, collect) if collect is not None else -1
    # Nor a node off every path to what it wants, such as one an earlier backward freed: the
    # sweep stops above each such row that a rule would read saved values of, and skips it.
    skipped = set()
    if collect is not None and floor + 1 < n_rows and freed[floor + 1 : n_rows].any():
        if needed is None:
            needed = _needed_rows(tape, n_rows, collect)
        skipped = _skipped_freed_rows(freed, needed, floor, n_rows, arrays[0], saves)
    stepped = bool(hooked or calls or check_nan or skipped)  # the sweep stops in Python, and lays slots out unshared
    if not stepped:  # the common case: the whole backward is one compiled call
        spare = _spare_arenas()
        status, row, grad32, grad64, offsets, touched, uniform = sweep(
            *arrays, roots, seeds, freed, modified, retain, plan=plan, spare=spare,
            read_rows=collect is not None or bool(tape.retained), fused=_backward_groups(tape, plan, arrays),
            floor=floor,
        )  # fmt: skip
        del spare
    else:  # stop above each hooked row and each custom Function call, run their Python, go on
        # (and, in anomaly mode, above every row, to look at what its rule returned)
        offsets, grad32, grad64, touched = setup(*arrays, roots, seeds)
        uniform = _NO_UNIFORM  # (a sweep that stops for hooks writes every gradient out)
        start = n_rows - 1
        every = n_rows if check_nan else 0
        wanted = _wanted_non_leaf_rows(tape, collect) if collect is not None and calls else set()
        stops = _stops(hooked, calls, every, skipped)
        registrations = hook_registrations[0]
        epoch = inplace_epoch[0]
        slot = functools.partial(_slot_or_none, tape, (grad32, grad64), offsets)
        while True:
            stop, hooked_rows = stops.pop(0)
            bound = max(stop, floor)  # (the hooks and calls below the floor are on no wanted path)
            status, row = propagate(*arrays, freed, modified, retain, offsets, grad32, grad64, touched, start, bound)
            if status:
                break
            if check_nan:
                for ran in range(start, bound, -1):
                    if ran not in calls and (needed is None or needed[ran]):
                        check_rule(tape, ran, tape.sources(ran), slot, touched)
            if stop < 0:
                break
            if stop in skipped:
                touched[stop] = False  # (a gradient reached it: the next call would run its rule)
            for hooked_row in hooked_rows:
                if touched[hooked_row] and offsets[hooked_row] >= 0 and (needed is None or needed[hooked_row]):
                    gradient = _gradient_view(tape, (grad32, grad64), offsets, hooked_row)
                    arrived = _run_hooks(gradient, hooked[hooked_row])
                    if hooked_row in captured_before:
                        before_hooks[hooked_row] = arrived
            # (after the hooks: they may change the gradient the call receives; only on a path
            # to what autograd.grad wants, as PyTorch runs only those nodes)
            if stop in calls and (needed is None or needed[stop]) and _runs(calls[stop], needed, wanted):
                try:
                    _run_function(tape, calls[stop], (grad32, grad64), offsets, touched, retain)
                except Exception:
                    if is_anomaly_enabled():  # PyTorch's warning: where the forward called it
                        warn_failed(tape, stop)
                    raise
                if check_nan:
                    check_rule(tape, stop, calls[stop].tensor_input_rows, slot, touched)
            start = stop
            if inplace_epoch[0] != epoch:  # the Python just run changed a value in place
                epoch = inplace_epoch[0]
                # a value the rows still to run saved: their backward fails, as PyTorch's node
                # would (checked before the sweep only, a hook's change was differentiated)
                now = tape.modified_rows(stop + 1, epoch)
                if now:
                    changed = {**(changed or {}), **now}
                    modified = np.array(modified)  # (``_unmodified``'s is shared)
                    for consumer in now:
                        modified[consumer] = needed is None or bool(needed[consumer])
            if hook_registrations[0] != registrations:  # the Python just run registered a hook
                registrations = hook_registrations[0]
                hooked = _hooked_rows(tape, stop)
                stops = _stops(
                    hooked,
                    {row: call for row, call in calls.items() if row < stop},
                    min(every, stop + 1),
                    [row for row in skipped if row < stop],
                )
    if freed_before is not None:
        ran = _ran_rows(tape, n_rows, collect, needed)
        freed[:n_rows] = np.where(ran, freed[:n_rows], freed_before)
    if tape.freed is not freed:  # a hook's op joined another tape to this one: flags in a new array
        tape.grown_freed()[: len(freed)] |= freed
    if status == FREED:
        raise RuntimeError(SECOND_BACKWARD)
    if status == MODIFIED:
        raise RuntimeError(_modified_message(tape, changed[row], row))
    if status:
        opcode = tape.ints[row * ROW_WIDTH] & OPCODE_MASK
        raise kernel_error(status == KERNEL_FAILED, "backward", OPS[opcode].name)
    arenas = (grad32, grad64)

    def gradient_of(row):
        return _gradient_view(tape, arenas, offsets, row)

    if collect is not None:
        for index, wanted in enumerate(collect.inputs):
            if wanted._tape is not None:
                resolve(wanted)
                rows = [wanted._row] if wanted._tape is tape else []
            else:
                rows = [row for row, tensor in tape.leaves if tensor is wanted]
            for row in rows:
                if row < n_rows and touched[row] and offsets[row] >= 0:
                    gradient = before_hooks.get(row)
                    collect.add(index, gradient_of(row).copy() if gradient is None else gradient)
    else:
        if plan is not None and not stepped:
            deliveries = plan.get("deliveries")
            if deliveries is None:
                deliveries = plan["deliveries"] = _deliveries(tape, n_rows, offsets, touched)
        else:
            deliveries = _deliveries(tape, n_rows, offsets, touched)
        delivered, size = _delivered(tape.leaves, deliveries)
        if delivered is None:  # not this plan's tape after all: never seen, but never wrong
            delivered, size = _delivered(tape.leaves, _deliveries(tape, n_rows, offsets, touched))
        # The leaves' gradients: views of the arena, which this sweep made and nothing else holds.
        share = views_suffice(size, grad32, grad64, arrays[0], arrays[2], offsets, uniform, touched)
        for tensor, code, start, stop, shape in delivered:
            gradient = arenas[code][start:stop]
            if shape is not None:
                gradient = gradient.reshape(shape)
            if tensor._grad is None:
                tensor._grad = _wrap(gradient if share else gradient.copy())
                if post_accumulate_registrations[0]:
                    accumulated(tensor)
            else:  # added in place from the arena: a copy first was a pass over it for nothing
                _accumulate(tensor, gradient, None)
    # Retained gradients are filled by autograd.grad too, as PyTorch's are (backward(inputs=)'s
    # non-leaf inputs among them: ``gradients.backward``).
    for row, tensor in tape.retained_rows(n_rows) if tape.retained else ():
        if touched[row] and (needed is None or needed[row]):
            _retain(tensor, gradient_of(row).copy())
    if not retain and tape.saved and _releasable(tape):
        if grad32.nbytes + grad64.nbytes >= _RELEASE_BYTES:
            tape.release_saved()
        else:
            tape.unreleased = True
    _release_earlier(tape)
    _keep_arenas(grad32, grad64)


# From this size of a backward's gradients (which are about as large as the values its graph
# saved), it frees the saved values it no longer needs: below it, looking costs more than the
# memory is worth (a few microseconds of a small step's backward).
_RELEASE_BYTES = 1 << 20


def _release_earlier(tape) -> None:
    """A small backward's saved values are released at the thread's next backward, if their
    tape is still alive then (a merge into another tape releases them: ``Tape.absorb``),
    rather than at once: looking for them is a few microseconds of a small step's backward,
    and its tape is usually gone by the next. Kept until the tape died, a loss kept in a list
    for logging (or ``running_loss += loss``) kept each step's activations: 150 KB a step of a
    small MLP, where PyTorch keeps 12 KB of graph nodes."""
    if backwards_running[0] > 1:
        # A backward inside another's hook: the earlier tape may be the one the outer backward
        # is sweeping (a create_graph one reads its saved values as it goes), so it waits
        return
    earlier = getattr(_kept, "unreleased", None)
    if earlier is not None:
        earlier = earlier()
        if earlier is not None and earlier is not tape and earlier.unreleased and _releasable(earlier):
            earlier.release_saved()
    _kept.unreleased = _weakref(tape) if tape.unreleased else None


def _releasable(tape) -> bool:
    """Tapes whose saved values only rows read: not a recording's (its values are its replay's
    constants), none with custom Function calls (their ctx holds what they saved), none whose
    values unpack hooks stand in for (``_unpacked`` puts the packed ones back after the sweep:
    released meanwhile, their arrays would be gone)."""
    return tape.replay_values is None and not tape.functions and not tape.packed


def _deliveries(tape, n_rows: int, offsets: np.ndarray, touched: np.ndarray) -> list:
    """``[(index in tape.leaves, row, arena code, start, stop, shape or None for 1-D)]``: where
    the gradient of each leaf a sweep reached lies in its arenas. It depends only on the tape's
    structure (``_structure``'s key), so a plan keeps it for the next tape of the same rows."""
    deliveries = []
    for index, (row, _) in enumerate(tape.leaves):
        if row < n_rows and touched[row]:
            start = int(offsets[row])
            if start >= 0:  # (as _gradient_view reads a row's slot)
                layout = tape.layout_of(row)
                code, numel = tape.layout_table[4 * layout], tape.layout_table[4 * layout + 1]
                shape = tape.shape_of(row)
                deliveries.append((index, row, code, start, start + numel, None if len(shape) == 1 else shape))
    return deliveries


def _delivered(leaves: list, deliveries: list) -> tuple:
    """``([(leaf, arena code, start, stop, shape)], elements)`` for the leaves of ``deliveries``
    that require grad now; ``(None, 0)`` if a leaf's row is not the one ``deliveries`` names."""
    delivered = []
    size = 0
    for index, row, code, start, stop, shape in deliveries:
        if index >= len(leaves) or leaves[index][0] != row:
            return None, 0
        tensor = leaves[index][1]
        if tensor._requires_grad:
            delivered.append((tensor, code, start, stop, shape))
            size += stop - start
    return delivered, size


def _needed_rows(tape, n_rows: int, collect) -> np.ndarray:
    """Rows on a path from the roots to a tensor ``collect`` wants: PyTorch runs only those
    nodes, so only their hooks and retained gradients (``autograd.grad`` must not run a
    parameter's clipping hook). One pass up the tape: a row is needed if it is wanted or reads
    a needed row."""
    needed = np.zeros(n_rows, np.bool_)
    wanted = {id(tensor) for tensor in collect.inputs}
    for row, tensor in tape.leaves:
        if row < n_rows and id(tensor) in wanted:
            needed[row] = True
    for row in _wanted_non_leaf_rows(tape, collect):
        if row < n_rows:
            needed[row] = True
    call_inputs = {}
    for call in tape.functions.values():
        for output in call.output_rows:
            if output >= 0:
                call_inputs[output] = list(call.tensor_input_rows)
    for row in range(n_rows):
        if not needed[row]:
            sources = tape.sources(row) + call_inputs.get(row, [])
            needed[row] = any(0 <= source < n_rows and needed[source] for source in sources)
    return needed


def _captured_before_hooks(tape, n_rows: int, collect, hooked, needed=None) -> set:
    """The non-leaf rows ``autograd.grad`` wants whose gradient it returns as it arrived, before
    their hooks: those whose node PyTorch runs on, for another wanted tensor below them. PyTorch
    2 captures such a node's input before its tensor hooks, and the gradient of a node it stops
    at after them (``grad(out, [y, x])`` gives y's unhooked gradient, ``grad(out, y)`` the
    hooked one). ``backward(inputs=...)`` captures after them, into ``.grad`` (its collector's
    ``after_hooks``): PyTorch accumulates a non-leaf input's gradient as a retained one, hooked.
    ``hooked``: the rows with hooks; ``needed``: ``_needed_rows``, worked out here if not given
    (the create_graph walk asks too)."""
    if not hooked or collect is None or collect.after_hooks:
        return set()
    rows = [row for row in _wanted_non_leaf_rows(tape, collect) if row < n_rows and row in hooked]
    if rows and needed is None:
        needed = _needed_rows(tape, n_rows, collect)
    return {row for row in rows if any(0 <= s < n_rows and needed[s] for s in _sources(tape, row))}


def _sources(tape, row: int) -> list:
    """The rows ``row`` reads: its operands, or for a custom Function's output its call's inputs."""
    sources = tape.sources(row)
    if tape.functions and all(source < 0 for source in sources):
        for call in tape.functions.values():
            if row in call.output_rows:
                return list(call.tensor_input_rows)
    return sources


def _ran_rows(tape, n_rows: int, collect, needed=None) -> np.ndarray:
    """The rows whose nodes PyTorch runs for ``collect``: those on a path to a wanted tensor,
    less the wanted tensors' own nodes, which it stops at (``grad(b, a)`` takes a's gradient
    and does not run a's node: a later backward through it works), unless another wanted
    tensor lies below them."""
    needed = needed if needed is not None else _needed_rows(tape, n_rows, collect)
    ran = needed.copy()
    for row in _wanted_non_leaf_rows(tape, collect):
        if row < n_rows and not any(0 <= source < n_rows and needed[source] for source in tape.sources(row)):
            ran[row] = False
    return ran


def _skipped_freed_rows(freed, needed, floor: int, n_rows: int, rows, saves) -> set:
    """The rows above ``floor`` an earlier backward freed that read saved values and are not
    ``needed`` (on no path to a tensor wanted): the sweep must not run them (their values are
    gone), and PyTorch runs no such node."""
    top = slice(floor + 1, n_rows)
    reads = saves[rows[top, 0]] != 0
    return {floor + 1 + int(r) for r in np.flatnonzero(freed[top] & ~needed[top] & reads)}


def _lowest_wanted_row(tape, n_rows: int, collect) -> int:
    """The lowest row of a tensor ``collect`` wants, or -1: no gradient below it reaches one
    (a row reads lower rows only), so a sweep for ``collect`` stops above it."""
    wanted = {id(tensor) for tensor in collect.inputs}
    rows = [row for row, tensor in tape.leaves if id(tensor) in wanted]
    rows.extend(_wanted_non_leaf_rows(tape, collect))
    return min((row for row in rows if row < n_rows), default=-1)


def _wanted_non_leaf_rows(tape, collect) -> set:
    """The rows of the non-leaf tensors ``autograd.grad`` returns gradients for, on ``tape``."""
    rows = set()
    if collect is not None:
        for wanted in collect.inputs:
            if wanted._tape is not None and resolve(wanted) is tape:
                rows.add(wanted._row)
    return rows


def _hooked_rows(tape, n_rows: int) -> dict:
    """{row: hooks} for rows below ``n_rows`` with hooks: non-leaf rows' own, and those of the
    leaves registered there."""
    if not hook_registrations[0]:  # no hook was ever registered in this process: none to find
        return {}
    hooked = {row: hooks for row, hooks in tape.hooks.items() if row < n_rows and hooks} if tape.hooks else {}
    for row, tensor in tape.leaves:
        hooks = tensor._hooks
        if hooks and row < n_rows:
            hooked.setdefault(row, []).extend(hooks)
    return hooked


def _stops(hooked: dict, calls: dict, every: int = 0, skipped=()) -> list:
    """[(row the sweep stops above, hooked rows whose hooks run there)], highest first, ending
    with (-1, ()). A custom Function's outputs are consecutive rows that only its call reads, so
    their gradients are all complete at its first output row: their hooks run there together, in
    output order, as PyTorch runs a node's tensor hooks. ``every``: stops above every row below
    it too (anomaly detection looks at each rule's results); and above each row of ``skipped``."""
    at = {row: [row] for row in hooked}
    for row in skipped:
        at.setdefault(row, [])
    for row in range(every - 1):
        at.setdefault(row, [])
    for first, call in calls.items():
        at.setdefault(first, [])
        for row in call.output_rows:
            if row != first and row in at:
                at[first].extend(at.pop(row))
        at[first].sort()
    return [(stop, at[stop]) for stop in sorted(at, reverse=True)] + [(-1, ())]


def _run_function(tape, call, arenas, offsets, touched, retain: bool) -> None:
    """Run a custom Function's backward, the sweep having stopped at its first output row (so
    every output's gradient is complete), and add what it returns into its inputs' slots."""
    reached = [0 <= row < len(touched) and touched[row] for row in call.output_rows]
    if not any(reached):
        return
    gradients = [
        _gradient_view(tape, arenas, offsets, row).copy() if was_reached else None
        for row, was_reached in zip(call.output_rows, reached)
    ]  # copies: a backward that changes its grad_output in place must not change a retained .grad
    for row, values in outside_lock(call.backward, gradients, retain):
        if offsets[row] >= 0:
            slot = _gradient_view(tape, arenas, offsets, row)
            # in the input's dtype, as PyTorch casts; a slot not reached yet is not zeroed
            # (backward._claim), so the first gradient is assigned
            if touched[row]:
                np.add(slot, values, out=slot, casting="unsafe")
            else:
                np.copyto(slot, values, casting="unsafe")
                touched[row] = True


def _runs(call, needed, wanted: set) -> bool:
    """Whether ``autograd.grad`` runs a custom Function's backward: not when it stops at one of
    the call's outputs (a tensor it wants) with nothing it wants below, as PyTorch stops there."""
    if needed is None or not any(row in wanted for row in call.output_rows):
        return True
    return any(0 <= row < len(needed) and needed[row] for row in call.tensor_input_rows)


def _slot_or_none(tape, arenas, offsets, row: int):
    return _gradient_view(tape, arenas, offsets, row) if offsets[row] >= 0 else None


def _gradient_view(tape, arenas, offsets, row: int) -> np.ndarray:
    """Row ``row``'s gradient: a view of its slot in the arena of its dtype, in its shape."""
    layout = tape.layout_of(row)
    code, numel = tape.layout_table[4 * layout], tape.layout_table[4 * layout + 1]
    return arenas[code][offsets[row] : offsets[row] + numel].reshape(tape.shape_of(row))


def _run_hooks(gradient: np.ndarray, hooks: list) -> np.ndarray:
    """Run a tensor's hooks on its finished ``gradient`` (a view of its slot), as PyTorch chains
    them: the first gets a tensor of its own (a copy: one the hook keeps must neither hold a
    backward's whole arena nor change when the slot or ``.grad`` does later); a hook that
    returns None passes the same tensor on (changed in place or not), one that returns a tensor
    passes that. The last one's values become the gradient. Returns the first tensor's array:
    what ``autograd.grad`` returns when it captures a gradient before its hooks (PyTorch
    returns that tensor, so a hook's in-place change shows there too)."""
    arrived = _wrap(gradient.copy())
    with no_grad():  # PyTorch's backward runs its hooks in grad mode only with create_graph
        current = chain_hooks(arrived, hooks)
    gradient[...] = current._data
    return arrived._data


def chain_hooks(gradient: Tensor, hooks) -> Tensor:
    """``gradient`` passed through ``hooks`` in turn, as PyTorch chains them: a hook that
    returns None passes the same tensor on (changed in place or not), one that returns a tensor
    passes that (checked by ``hook_result``)."""
    for hook in list(hooks):
        result = outside_lock(hook, gradient)
        if result is not None:
            gradient = hook_result(hook, result, tuple(gradient.shape), gradient._data.dtype)
    return gradient


def _tensor_type(numpy_dtype) -> str:
    return "tapegrad.DoubleTensor" if numpy_dtype == np.float64 else "tapegrad.FloatTensor"


def hook_result(hook, result, shape: tuple, numpy_dtype):
    """``result`` of a tensor hook, checked as PyTorch checks it: a tensor of the gradient's
    shape and dtype (TypeError, RuntimeError with PyTorch's messages otherwise)."""
    if not isinstance(result, Tensor):
        raise TypeError(f"expected Variable, but hook returned '{type(result).__name__}'")
    name = getattr(hook, "__name__", type(hook).__name__)
    if tuple(result.shape) != tuple(shape):
        raise RuntimeError(f"hook '{name}' has changed the size of value")
    if result._data.dtype != numpy_dtype:
        raise RuntimeError(
            f"hook '{name}' has changed the type of value (was {_tensor_type(numpy_dtype)} got "
            f"{_tensor_type(result._data.dtype)})"
        )
    return result


def _retain(tensor, values: np.ndarray) -> None:
    """A non-leaf's retained gradient: a new tensor at each backward (the sum with the last), as
    PyTorch's retain_grad hook makes it, so that one held from an earlier backward keeps its
    values. (A leaf's accumulates in place, as PyTorch's AccumulateGrad does.)"""
    tensor._grad = _wrap(values if tensor._grad is None else tensor._grad._data + values)


_OVERLAPPING_GRAD = (
    "unsupported operation: more than one element of the written-to tensor refers to a single memory location. "
    "Please clone() the tensor before performing the operation."
)


def _accumulate(tensor, values: np.ndarray, collect) -> None:
    if collect is not None:
        for index, wanted in enumerate(collect.inputs):
            if wanted is tensor:
                collect.add(index, values)
        return
    if tensor._grad is None:
        tensor._grad = _wrap(values)
    else:
        held = tensor._grad._data
        if not held.flags.writeable:
            if 0 in held.strides and held.size > 1:  # ``x.grad = g.expand(...)``: numpy's error leaked
                raise RuntimeError(_OVERLAPPING_GRAD)
            tensor._grad = _wrap(np.add(held, values, dtype=held.dtype, casting="unsafe"))  # (a read-only array)
        else:
            np.add(held, values, out=held, casting="unsafe")
    if post_accumulate_registrations[0]:
        accumulated(tensor)


def accumulated(tensor) -> None:
    """After a gradient was accumulated into the leaf ``tensor``'s ``.grad``: its
    post-accumulate-grad hooks, in the order registered, each called with the tensor (under
    no_grad: an optimizer step in a hook is not recorded)."""
    hooks = tensor._post_accumulate_hooks
    if hooks:
        with no_grad():
            for hook in list(hooks):
                result = hook(tensor)
                if result is not None:  # PyTorch's checks: a tensor, or anything else
                    if not isinstance(result, Tensor):
                        raise TypeError(f"expected Variable, but hook returned '{type(result).__name__}'")
                    raise RuntimeError("Tensor post accumulate grad hooks should return None.")
