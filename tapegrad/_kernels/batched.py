"""Many replays of one tape in one compiled call: ``tapegrad.func.vmap``'s engine.

A call replays a range of slices of the batch one after another in one working copy of the
tape's value arena (its constants filled once) and one gradient arena, both reused, so that they
stay in cache: per slice, its inputs are loaded from packed ``(batch, n)`` arrays, the forward and
(when asked) backward sweeps run with no Python in between, and the outputs and the inputs'
gradients are copied out to packed ``(batch, n)`` arrays. The caller gives each thread its own
working arrays and range: the function holds no GIL (``nogil``).
"""

from __future__ import annotations

import numpy as np

from . import backward, forward
from .config import jit
from .memory import borrow

# Added to a backward status in ``statuses``: above every forward status, which can be as high
# as MISSING + the replay table's last slot (once 32, which with a family per formula op read a
# missing replay family as a failed backward; tests/test_kernel_families.py holds the bound).
GRADIENT_FAILED = 1 << 16


@jit
def _copy(source, source_start, target, target_start, count):
    # A loop, not a slice assignment: that one compiles numba's shape-mismatch error with its
    # string formatting (1.3 s of a first vmap), for lengths that are equal by construction.
    # Views indexed from 0: LLVM knows the index is not negative, so the loop is a vector copy.
    # Indexed at ``start + i`` it could not rule out numba's wraparound of negative indices and
    # made it a gather and a scatter per 8 elements, a third of a per-sample vmap call.
    source_view = source[source_start : source_start + count]
    target_view = target[target_start : target_start + count]
    for i in range(count):
        target_view[i] = source_view[i]


@jit
def _fill(target, start, count):
    view = target[start : start + count]
    for i in range(count):
        view[i] = 0


@jit
def value_and_grad_slices(
    slices, lo, hi, rows, params, layouts, dims, aux, replay_rules, offsets, codes, values32, values64, scratch,
    inputs32, inputs64, input_places, outputs32, outputs64, output_places,
    rules, saves, paths, freed, grad_offsets, grad32, grad64, grad32_seeded, grad64_seeded, touched,
    touched_seeded, grads32, grads64, grad_places, statuses, forward_table, backward_table, with_grad, direct,
):  # fmt: skip
    """Replay slices ``slices[lo:hi]`` in the working arenas ``values*`` (and ``grad*``).

    ``*_places`` rows are (row, start): the flat arrays ``inputs{32,64}`` (by the row's dtype)
    hold each row's ``(len(slices), numel)`` block from ``start``, so input ``k`` of slice
    ``slices[t]`` is ``inputs[start + t * numel : ...]``; outputs and gradients are
    ``(batch, numel)`` blocks, slice ``s`` at ``start + s * numel``. The backward's
    slots are laid out once (``grad_offsets``); each slice starts from the roots' seeds in
    ``*_seeded`` and ``touched_seeded``, its rules claiming the other slots as they reach them.

    ``direct`` (or -1) is an input row whose gradient slot is the last of its arena, and no
    smaller than the rest of it: its slices' gradients are then computed in their result
    block, with no copy. The slices run from the last down, and slice ``s`` takes as its
    arena the memory ending with its own block, whose start lies over the end of slice
    ``s - 1``'s block, which this call fills after. A slice whose ``s - 1`` this call does
    not run next (the first of the range, a gap in ``slices``) uses the working arena and
    copies its result out, as every input's are without ``direct`` (the copy was a third of a
    per-sample-gradients call: a first layer's weight gradient per slice, out to memory).

    ``statuses[s]`` stays 0, or is the forward's status (a guard that failed: the caller
    records that slice again), or ``GRADIENT_FAILED`` + the backward's."""
    # Every array as a borrowed view (no reference count; the caller keeps them alive): each
    # slice of a counted array, in this loop, in ``_copy`` and in the sweeps, was an atomic
    # increment and decrement of its owner's count, a sixth of a per-sample-gradients call
    # (``perf``: NRT_incref/NRT_decref), and with threads sharing the arrays, a cache line
    # that bounced between cores.
    # fmt: off
    slices, rows, params, layouts = borrow(slices), borrow(rows), borrow(params), borrow(layouts)
    dims, aux = borrow(dims), borrow(aux)
    replay_rules, offsets, codes = borrow(replay_rules), borrow(offsets), borrow(codes)
    values32, values64, scratch = borrow(values32), borrow(values64), borrow(scratch)
    inputs32, inputs64, input_places = borrow(inputs32), borrow(inputs64), borrow(input_places)
    outputs32, outputs64, output_places = borrow(outputs32), borrow(outputs64), borrow(output_places)
    rules, saves, paths, freed = borrow(rules), borrow(saves), borrow(paths), borrow(freed)
    grad_offsets = borrow(grad_offsets)
    grad32, grad64 = borrow(grad32), borrow(grad64)
    grad32_seeded, grad64_seeded = borrow(grad32_seeded), borrow(grad64_seeded)
    touched, touched_seeded = borrow(touched), borrow(touched_seeded)
    grads32, grads64 = borrow(grads32), borrow(grads64)
    grad_places, statuses = borrow(grad_places), borrow(statuses)
    forward_table, backward_table = borrow(forward_table), borrow(backward_table)
    # fmt: on
    n_rows = rows.shape[0]
    # The sweeps' arguments as the eager backward and replay pass them, not as literals: numba
    # compiles a function anew for literal arguments (True, 0, -1 here made this kernel compile
    # the whole backward sweep a second time, 4 s).
    first, stop, retain, no_look = np.int64(0), np.int64(-1), np.bool_(True), np.bool_(False)
    claim = np.bool_(True)  # ``_run``'s poison: the arenas are not zeroed, so rules claim slots
    addresses = np.empty(n_rows, np.int64)
    base32 = values32.ctypes.data
    base64 = values64.ctypes.data
    for r in range(n_rows):  # the backward reads saved values by address: the working slots
        addresses[r] = base64 + offsets[r] * 8 if codes[r] == 1 else base32 + offsets[r] * 4
    direct_place, direct_numel, direct_code = -1, 0, 0
    if with_grad and direct >= 0:
        direct_numel = layouts[rows[direct, 4], 1]
        direct_code = codes[direct]
        for k in range(grad_places.shape[0]):
            if grad_places[k, 0] == direct:
                direct_place = grad_places[k, 1]
    for step in range(hi - lo):
        t = hi - 1 - step if direct_place >= 0 else lo + step
        s = slices[t]
        for k in range(input_places.shape[0]):
            r = input_places[k, 0]
            numel = layouts[rows[r, 4], 1]
            position = input_places[k, 1] + t * numel  # inputs: the slices of this call, in order
            if codes[r] == 1:
                _copy(inputs64, position, values64, offsets[r], numel)
            else:
                _copy(inputs32, position, values32, offsets[r], numel)
        status, _ = forward._sweep(
            rows, params, layouts, dims, aux, replay_rules, offsets, values32, values64, scratch, first, len(rows),
            forward_table,
        )  # fmt: skip
        if status != 0:
            statuses[s] = status
            continue
        for k in range(output_places.shape[0]):
            r = output_places[k, 0]
            numel = layouts[rows[r, 4], 1]
            position = output_places[k, 1] + s * numel
            if codes[r] == 1:
                _copy(values64, offsets[r], outputs64, position, numel)
            else:
                _copy(values32, offsets[r], outputs32, position, numel)
        if not with_grad:
            continue
        # Each slice starts from the seeded roots, every other slot unreached: the rules claim
        # (zero) or assign a slot when they first reach it, as in a large eager backward, so
        # the arenas are not copied whole per slice (per-sample gradients copied 40 KB a slice).
        arena32, arena64 = grad32, grad64
        in_place = direct_place >= 0 and t > lo and slices[t - 1] == s - 1
        if in_place:  # the arena whose last slot is this slice's result block
            end = direct_place + (s + 1) * direct_numel
            if direct_code == 1:
                arena64 = grads64[end - len(grad64) : end]
            else:
                arena32 = grads32[end - len(grad32) : end]
        _copy(touched_seeded, first, touched, first, len(touched))
        for k in range(output_places.shape[0]):  # the outputs are the roots
            r = output_places[k, 0]
            start = grad_offsets[r]
            if start >= 0:
                numel = layouts[rows[r, 4], 1]
                if codes[r] == 1:
                    _copy(grad64_seeded, start, arena64, start, numel)
                else:
                    _copy(grad32_seeded, start, arena32, start, numel)
        status, _, _, _, _, _ = backward._run(
            rows, params, layouts, dims, aux, addresses, rules, saves, paths, grad_offsets[:0], grad64_seeded[:0],
            freed, freed, retain, grad_offsets, arena32, arena64, touched, grad_offsets[:0], len(touched_seeded) - 1,
            stop, backward_table, grad_offsets[:0], no_look, claim,  # slots laid out by backward_setup, claimed as reached
        )  # fmt: skip
        if status != 0:
            statuses[s] = GRADIENT_FAILED + status
            continue
        for k in range(grad_places.shape[0]):
            r = grad_places[k, 0]
            numel = layouts[rows[r, 4], 1]
            position = grad_places[k, 1] + s * numel
            reached = r < len(touched) and touched[r] and grad_offsets[r] >= 0
            if in_place and r == direct and reached:
                continue  # computed in its block
            if codes[r] == 1:
                if reached:
                    _copy(arena64, grad_offsets[r], grads64, position, numel)
                else:  # the outputs do not depend on this input
                    _fill(grads64, position, numel)
            elif reached:
                _copy(arena32, grad_offsets[r], grads32, position, numel)
            else:
                _fill(grads32, position, numel)
