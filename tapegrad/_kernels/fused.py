"""Runs of large elementwise rows replayed a block at a time, as numexpr evaluates an expression.

The replay sweep computes a row over all its elements before the next row. For
``(x * y + x.sin()).sum()`` at 10^6 float32 elements that writes three 4 MB results to memory and
reads them back, as numpy by hand does: the forward is memory traffic, not arithmetic.

Here a *group* (consecutive rows, each either elementwise over operands of its own size or a
``sum_all`` of such a row; at least ``SMALLEST`` elements) runs ``BLOCK`` elements at a time:
every row of the group over one block, then the next block. A row whose value nothing reads
after the group (no row outside it, no backward rule, not an output: *transient*) computes each
block in the first ``BLOCK`` elements of its own slot, which stay in cache; a sum adds each block
of its operand as it is made. Rows read later (*kept*) are written in full, as before.

Each row runs its own family's kernel on the block, through a private copy of the rows (their
layout set to one of the block's size) and of the offsets (shifted to the block): its arithmetic
is the unblocked sweep's, element for element. ``BLOCK`` is a multiple of the generated kernels'
512-element chunks (whose range check picks the formula) and of ``forward._total``'s
128-element blocks (whose running sum and compensation carry over: ``forward._add_blocks``), so
the values are the same bits; a float32 sum is the same float64 sum in another order, rounded
to float32.
"""

from __future__ import annotations

import numpy as np

from . import forward, normalization
from .config import jit
from .families import DONE, NO_RULE, announce, call, make_frame
from .memory import borrow

BLOCK = 4096  # elements: a block of each of a group's rows and operands fits in L2
SMALLEST = 1 << 16  # rows below this many elements stay in L2 anyway: nothing to gain
# The forward paths whose rules compute element i of the result from element i of the operands.
_ELEMENTWISE_PATHS = (forward.ELEMENTWISE_PATH, forward.ELEMENT_SWITCH_PATH, forward.GENERATED_PATH)
_SUM_ALL, _ASSIGN = forward.SUM_ALL, forward.ASSIGN
# Columns of ``Plan.groups``: the first and last row of the group (last included), its members'
# range in ``members``, its outside operands' range in ``outside``, its sums' in ``sums``, its
# rows' size and dtype (forward.FLOAT64 or 0).
FIRST, LAST, MEMBERS, MEMBERS_END, OUTSIDE, OUTSIDE_END, SUMS, SUMS_END, NUMEL, DTYPE = range(10)
(ROWS, IN0, IN1, LAYOUT) = (0, 1, 2, 4)  # tapegrad._tape's row columns


class Plan:
    """The groups of one replay tape, and the private arrays their blocks run through.

    Built by ``plan``; ``run(k, ...)`` replays group ``k``. Not thread-safe: the tape's lock
    serialises its replays."""

    def __init__(self, rows, layouts, groups, members, kept, outside, sums):
        self.groups, self.members, self.kept, self.outside, self.sums = groups, members, kept, outside, sums
        self.firsts = groups[:, FIRST].tolist()
        # A layout per dtype for the block (its size set per block), after the tape's own.
        self.layouts = np.ascontiguousarray(np.vstack([layouts, np.zeros((2, layouts.shape[1]), layouts.dtype)]))
        self.block_layouts = (len(layouts), len(layouts) + 1)
        self.layouts[len(layouts) + 1, 0] = forward.FLOAT64
        self.rows = rows.copy()
        for k in range(len(groups)):
            layout = self.block_layouts[int(groups[k, DTYPE] == forward.FLOAT64)]
            self.rows[members[groups[k, MEMBERS] : groups[k, MEMBERS_END]], LAYOUT] = layout
            self.rows[outside[groups[k, OUTSIDE] : groups[k, OUTSIDE_END]], LAYOUT] = layout
        self.offsets = np.zeros(len(rows), np.int64)

    def group_at(self, row: int) -> int:
        """The group that starts at or after ``row``: its index, or len(groups)."""
        for k, first in enumerate(self.firsts):
            if first >= row:
                return k
        return len(self.firsts)

    def run(self, k, params, dims, aux, rules, offsets, values32, values64, scratch, table) -> tuple:
        """Replay group ``k``: ``(status, row)`` as the sweep's (``forward.MISSING`` + slot for a
        family not loaded yet: load it and run the group again, which recomputes it whole)."""
        announce(_run_group, "replay's blocked groups")
        return _run_group(
            self.rows, params, self.layouts, dims, aux, rules, offsets, self.offsets, values32, values64, scratch,
            table, self.groups[k], self.members, self.kept, self.outside, self.sums,
        )  # fmt: skip


def plan(rows, layouts, codes, sources, saves, keep):
    """The groups of a replay tape, or None when it has none worth running by blocks.

    ``codes[r]`` is row ``r``'s replay code (``path << 16 | rule``, ``_ops.replay_arrays``),
    ``sources()`` the rows each row reads (a list per row: ``_tape.row_sources``; asked only for
    a tape with candidates), ``saves[r]`` its backward's ``saves_mask``, ``keep[r]`` whether
    something outside the sweeps reads its value (the outputs). A row is transient only if no
    one reads it but rows of its own group whose backward reads no value of any row."""
    if len(rows) == 0 or layouts[:, 1].max() < SMALLEST:
        return None
    numels = layouts[rows[:, LAYOUT], 1]
    dtypes = layouts[rows[:, LAYOUT], 0]
    paths, rule_numbers = codes >> 16, codes & forward.RULE_MASK
    a_rows, b_rows = rows[:, IN0], rows[:, IN1]
    a, b = np.maximum(a_rows, 0), np.maximum(b_rows, 0)
    member = (
        (numels >= SMALLEST)
        & np.isin(paths, _ELEMENTWISE_PATHS)
        & (rule_numbers != _ASSIGN)
        & (a_rows >= 0)
        & (numels[a] == numels)
        & (dtypes[a] == dtypes)
        & ((b_rows < 0) | ((numels[b] == numels) & (dtypes[b] == dtypes)))
    )
    summing = (rule_numbers == _SUM_ALL) & (paths != 0) & (numels == 1) & (a_rows >= 0) & (numels[a] >= SMALLEST)
    candidates = np.flatnonzero(member | summing).tolist()
    if not candidates:
        return None
    member = member.tolist()
    runs, current, previous = [], None, -2  # [(rows, sums, numel, dtype)]: consecutive rows
    for r in candidates:
        if r != previous + 1:
            current = None
        previous = r
        if member[r] and current is not None and numels[r] == current[2] and dtypes[r] == current[3]:
            current[0].append(r)
        elif not member[r] and current is not None and a_rows[r] in current[0] and dtypes[r] == current[3]:
            current[1].append(r)  # a sum of one of the group's rows
        elif member[r]:
            current = ([r], [], numels[r], dtypes[r])
            runs.append(current)
        else:
            current = None
    runs = [run for run in runs if len(run[0]) > 1 or run[1]]
    if not runs:
        return None
    in_run = {}
    for k, run in enumerate(runs):
        for r in run[0] + run[1]:
            in_run[r] = k
    kept_rows = set(np.flatnonzero(keep).tolist())
    for reader, read in enumerate(sources()):
        mine = in_run.get(reader)
        # (bit 8, the scalar parameter, is no row's value)
        reads_values = saves[reader] & ~8
        for source in read:
            if source >= 0 and (mine is None or in_run.get(source) != mine or reads_values):
                kept_rows.add(source)
    groups, members, kept, outside, sums = [], [], [], [], []
    for rows_, sums_, numel, dtype in runs:
        mine = set(rows_)
        operands = sorted({int(s) for r in rows_ for s in (a_rows[r], b_rows[r]) if s >= 0 and s not in mine})
        groups.append(
            (min(rows_ + sums_), max(rows_ + sums_), len(members), len(members) + len(rows_), len(outside),
             len(outside) + len(operands), len(sums), len(sums) + len(sums_), numel, dtype)
        )  # fmt: skip
        members += rows_
        kept += [r in kept_rows or bool(saves[r] & (4 | 16)) for r in rows_]
        outside += operands
        sums += sums_
    as_array = lambda values, dtype=np.int64: np.asarray(values, dtype).reshape(-1)  # noqa: E731
    return Plan(
        rows, layouts, np.asarray(groups, np.int64).reshape(-1, 10), as_array(members), as_array(kept, np.bool_),
        as_array(outside), as_array(sums),
    )  # fmt: skip


@jit
def _run_group(
    rows, params, layouts, dims, aux, rules, offsets, shifted, values32, values64, scratch, table, group, members,
    kept, outside, sums,
):  # fmt: skip
    """Replay one group block by block (see the module's docstring). ``rows`` and ``layouts``
    are the plan's copies, ``offsets`` the sweep's, ``shifted`` the plan's, set per block."""
    b_values32, b_values64, b_offsets, b_shifted = borrow(values32), borrow(values64), borrow(offsets), borrow(shifted)
    b_params = borrow(params)
    frame = make_frame(rows, params, layouts, dims, aux, rules, shifted, scratch, values32, values64, scratch[:0])
    numel, double = group[NUMEL], group[DTYPE] == forward.FLOAT64
    layout = rows[members[group[MEMBERS]], LAYOUT]
    for k in range(len(shifted)):
        b_shifted[k] = b_offsets[k]
    n_sums = group[SUMS_END] - group[SUMS]
    totals = np.zeros(n_sums)
    compensations = np.zeros(n_sums)
    for start in range(0, numel, BLOCK):
        count = min(BLOCK, numel - start)
        layouts[layout, 1] = count
        for k in range(group[MEMBERS], group[MEMBERS_END]):
            m = members[k]
            b_shifted[m] = b_offsets[m] + start if kept[k] else b_offsets[m]
        for k in range(group[OUTSIDE], group[OUTSIDE_END]):
            b_shifted[outside[k]] = b_offsets[outside[k]] + start
        for k in range(group[MEMBERS], group[MEMBERS_END]):
            m = members[k]
            code = rules[rows[m, ROWS] & forward.OPCODE_MASK]
            rule, path = code & forward.RULE_MASK, code >> 16
            family = forward.FIRST_GENERATED + rule - forward.GENERATED_BASE
            if path != forward.GENERATED_PATH:
                family = forward.ELEMENTWISE
            slot = 2 * family + (1 if double else 0)
            if table[slot] == 0:
                return forward.MISSING + slot, m
            result = call(table[slot], rule, m, path, frame)
            if result != DONE:
                return (forward.NO_RULE if result == NO_RULE else forward.KERNEL_FAILED), m
        for j in range(n_sums):
            at = b_shifted[rows[sums[group[SUMS] + j], IN0]]
            if double:
                block = b_values64[at : at + count]
                totals[j], compensations[j] = forward._add_blocks(block, totals[j], compensations[j])
            else:
                totals[j] += normalization.total(b_values32[at : at + count])
    for j in range(n_sums):
        s = sums[group[SUMS] + j]
        if double:
            whole = forward._with_compensation(totals[j], compensations[j])
            b_values64[b_offsets[s]] = forward._scaled(np.float64(whole), b_params[s, 5], numel)
        else:
            b_values32[b_offsets[s]] = forward._scaled(np.float32(totals[j]), b_params[s, 5], numel)
    return 0, 0
