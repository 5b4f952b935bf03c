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
128-element blocks (whose running sum and compensation carry over: ``forward._add_blocks``) and of a float32
sum's 4,096-element blocks (``normalization.total``, whose block sums add in order), so the
values are the same bits.
"""

from __future__ import annotations

import numpy as np

from . import backward, forward, normalization
from . import rules as _rules
from .config import jit
from .families import DONE, NO_RULE, announce, call, make_frame
from .memory import borrow

BLOCK = 4096  # elements: a block of each of a group's rows and operands fits in L2
assert BLOCK == normalization.TOTAL_BLOCK and BLOCK % 512 == 0  # (the module's docstring)
SMALLEST = 1 << 16  # rows below this many elements stay in L2 anyway: nothing to gain
# The backward's groups from this size: below it, their fixed cost (a second call into the
# sweep and one into the group, about 20 us of argument passing) outweighed the traffic saved.
# The eager mse_loss step, by blocks against row by row: 145 against 123 us at 2^16 elements,
# 300 against 275 at 2^17, even at 2^18, 0.92x at 2^19.
BACKWARD_SMALLEST = 1 << 18
# The forward paths whose rules compute element i of the result from element i of the operands.
_ELEMENTWISE_PATHS = (forward.ELEMENTWISE_PATH, forward.ELEMENT_SWITCH_PATH, forward.GENERATED_PATH)
_SUM_ALL, _ASSIGN = forward.SUM_ALL, forward.ASSIGN
# Columns of ``Plan.groups``: the first and last row of the group (last included), its members'
# range in ``members``, its outside operands' range in ``outside``, its sums' in ``sums``, its
# rows' size and dtype (forward.FLOAT64 or 0).
FIRST, LAST, MEMBERS, MEMBERS_END, OUTSIDE, OUTSIDE_END, SUMS, SUMS_END, NUMEL, DTYPE = range(10)
(ROWS, IN0, IN1, IPARAM, LAYOUT) = (0, 1, 2, 3, 4)  # tapegrad._tape's row columns


class Plan:
    """The groups of one replay tape, and the rows and layouts their blocks run through.

    Built by ``plan``; ``run(k, ...)`` replays group ``k``. Each call has its own block layouts
    and offsets: a plan is read only."""

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
            self.rows, params, self.layouts.copy(), dims, aux, rules, offsets, np.empty_like(offsets), values32,
            values64, scratch, table, self.groups[k], self.members, self.kept, self.outside, self.sums,
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
    # A guard's comparison within rounding of its other side is undecided: ``forward._undecided``
    # then weighs the terms of the sums and products it compares, reading their operands whole,
    # down through one-element rows. Those must be kept too.
    pending = a_rows[rule_numbers == forward.GUARD].tolist()
    seen = set()
    while pending:
        r = pending.pop()
        if r < 0 or r in seen:
            continue
        seen.add(r)
        for source in (int(a_rows[r]), int(b_rows[r])):
            if source >= 0:
                kept_rows.add(source)
                if numels[source] == 1:
                    pending.append(source)
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
    are the plan's copies, ``offsets`` the sweep's, ``shifted`` this call's own, set per block."""
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
            else:  # (``normalization.total``'s blocks: BLOCK is its TOTAL_BLOCK)
                totals[j] += normalization.block_total(b_values32[at : at + count])
    for j in range(n_sums):
        s = sums[group[SUMS] + j]
        if double:
            whole = forward._with_compensation(totals[j], compensations[j])
            b_values64[b_offsets[s]] = forward._scaled(np.float64(whole), b_params[s, 5], numel)
        else:
            b_values32[b_offsets[s]] = forward._scaled(np.float32(totals[j]), b_params[s, 5], numel)
    return 0, 0


# -- the backward ---------------------------------------------------------------------------
#
# A backward group is a run of consecutive elementwise rows (the backward's elementwise, unary
# and generated paths) of one size and dtype, at least BACKWARD_SMALLEST elements, whose operands are of
# their size: swept a block at a time, every row of the group over one block of its slots (and
# of its saved values) before the next block. Their gradient slots are all written whole; what
# the blocks save is the traffic between the rows: ``(x * y + x.sin()).sum()``'s backward reads
# x and y once and writes the two gradients, where row by row it read and wrote x's gradient
# twice and read x twice. Each block starts from the rows' states at the group's start (which
# slots hold a gradient, which hold a uniform one): the rules make the same choices (assign or
# add, a number or a slot) on every block as they do on the whole, so the gradients are the
# row-by-row sweep's to the bit. A slot holding a uniform gradient keeps its number at its start;
# it is copied to the start of each block first, where the block's rules read it.
_BACKWARD_PATHS = (_rules.ELEMENTWISE, _rules.UNARY, _rules.GENERATED)
B_FIRST, B_LAST, B_MEMBERS, B_MEMBERS_END, B_AFFECTED, B_AFFECTED_END, B_NUMEL, B_DTYPE = range(8)


class BackwardPlan:
    """The backward groups of one set of rows (a replayed tape's for one ``argnums``, or the
    eager tapes' of one structure), and the rows their blocks run through. Built by
    ``backward_plan``; read only (each call has its own block layouts and offsets: two threads
    may sweep tapes of one structure at once)."""

    def __init__(self, rows, layouts, groups, members, affected, member_slots):
        # ``member_slots[k]``: the family slot (``2 * family + dtype``) of ``members[k]``'s rule,
        # worked out once here rather than per row and block in the kernel
        self.groups, self.members, self.affected, self.member_slots = groups, members, affected, member_slots
        self.layouts = np.ascontiguousarray(np.vstack([layouts, np.zeros((2, layouts.shape[1]), layouts.dtype)]))
        self.layouts[len(layouts) + 1, 0] = forward.FLOAT64
        self.rows = rows.copy()
        for k in range(len(groups)):
            layout = len(layouts) + int(groups[k, B_DTYPE] == forward.FLOAT64)
            self.rows[affected[groups[k, B_AFFECTED] : groups[k, B_AFFECTED_END]], LAYOUT] = layout

    def below(self, top: int) -> list:
        """The groups a sweep from row ``top`` down meets, highest first."""
        return [k for k in range(len(self.groups) - 1, -1, -1) if self.groups[k, B_LAST] <= top]

    def run(self, k, params, dims, aux, addresses, rules, saves, freed, modified, retain_graph, offsets,
            grad32, grad64, touched, uniform, table) -> tuple:  # fmt: skip
        """Sweep group ``k``: ``(status, row)`` as ``backward._run``'s. The families it needs are
        loaded first: a group stopped half-way could not be run again (its rules have added
        into slots)."""
        for slot in set(self.member_slots[self.groups[k, B_MEMBERS] : self.groups[k, B_MEMBERS_END]].tolist()):
            table.load(slot)
        announce(_run_backward_group, "backward's blocked groups")
        affected = len(self.affected)
        return _run_backward_group(
            self.rows, params, self.layouts.copy(), dims, aux, addresses, np.empty_like(addresses), rules, saves,
            self.member_slots, freed, modified, retain_graph, offsets, np.empty_like(offsets), grad32, grad64, touched,
            uniform, table.addresses, self.groups[k], self.members, self.affected, np.empty(affected, np.bool_),
            np.empty(affected, np.int64),
        )  # fmt: skip


def backward_plan(rows, layouts, rules, paths):
    """The backward groups of ``rows`` (as the backward sweep gets them, no-gradient bits
    included), or None. ``rules`` and ``paths`` are the backward's per-opcode arrays."""
    if len(rows) == 0 or layouts[:, 1].max() < BACKWARD_SMALLEST:
        return None
    numels = layouts[rows[:, LAYOUT], 1]
    dtypes = layouts[rows[:, LAYOUT], 0]
    opcodes = rows[:, ROWS]
    takes_gradient = opcodes < len(paths)  # (a row without one has the no-gradient bit set)
    safe = np.where(takes_gradient, opcodes, 0)
    row_paths, rule_numbers = paths[safe], rules[safe]
    a_rows, b_rows = rows[:, IN0], rows[:, IN1]
    a, b = np.maximum(a_rows, 0), np.maximum(b_rows, 0)
    member = (
        takes_gradient
        & (numels >= BACKWARD_SMALLEST)
        & np.isin(row_paths, _BACKWARD_PATHS)
        # (a product's iparam may give an operand a period: its rule then reads the operand's
        # source, repeated, which a block's offset would put out of phase)
        & (rows[:, IPARAM] == 0)
        & (a_rows >= 0)
        & (numels[a] == numels)
        & (dtypes[a] == dtypes)
        & ((b_rows < 0) | ((numels[b] == numels) & (dtypes[b] == dtypes)))
    )
    candidates = np.flatnonzero(member).tolist()
    runs, current, previous = [], None, -2
    for r in candidates:
        if (
            current is not None
            and r == previous + 1
            and numels[r] == numels[previous]
            and dtypes[r] == dtypes[previous]
        ):
            current.append(r)
        else:
            current = [r]
            runs.append(current)
        previous = r
    runs = [run for run in runs if len(run) > 1]
    if not runs:
        return None
    groups, members, affected, member_slots = [], [], [], []
    for run in runs:
        touched_rows = sorted({int(s) for r in run for s in (r, a_rows[r], b_rows[r]) if s >= 0})
        double = dtypes[run[0]] == forward.FLOAT64
        groups.append(
            (run[0], run[-1], len(members), len(members) + len(run), len(affected), len(affected) + len(touched_rows),
             numels[run[0]], dtypes[run[0]])
        )  # fmt: skip
        members += run[::-1]  # in the sweep's order, from the top
        affected += touched_rows
        member_slots += [
            2 * _backward_family(int(row_paths[r]), int(rule_numbers[r]), b_rows[r]) + double for r in run[::-1]
        ]
    as_array = lambda values: np.asarray(values, np.int64).reshape(-1)  # noqa: E731
    return BackwardPlan(
        rows, layouts, np.asarray(groups, np.int64).reshape(-1, 8), as_array(members), as_array(affected),
        as_array(member_slots),
    )  # fmt: skip


def _backward_family(path, rule, b):
    """The family a member row's rule is in (``backward._run``'s choice for these paths)."""
    if (path == _rules.UNARY or path == _rules.GENERATED) and b >= 0:
        return backward.DERIVATIVE
    if path == _rules.GENERATED:
        return backward.FIRST_GENERATED + rule - backward.GENERATED_BASE
    return backward.ELEMENTWISE


@jit
def _run_backward_group(
    rows, params, layouts, dims, aux, addresses, shifted_addresses, rules, saves, member_slots, freed, modified,
    retain_graph, offsets, shifted, grad32, grad64, touched, uniform, table, group, members, affected,
    saved_touched, saved_uniform,
):  # fmt: skip
    """Sweep one backward group block by block (see above). ``rows`` and ``layouts`` are the
    plan's copies; ``shifted`` and ``shifted_addresses`` this call's own, set per block."""
    b_offsets, b_shifted, b_addresses = borrow(offsets), borrow(shifted), borrow(addresses)
    b_shifted_addresses, b_touched = borrow(shifted_addresses), borrow(touched)
    b_grad32, b_grad64 = borrow(grad32), borrow(grad64)
    frame = make_frame(rows, params, layouts, dims, aux, shifted_addresses, shifted, touched, grad32, grad64, uniform)
    numel, double = group[B_NUMEL], group[B_DTYPE] == forward.FLOAT64
    itemsize = 8 if double else 4
    layout = rows[members[group[B_MEMBERS]], LAYOUT]
    for k in range(len(shifted)):
        b_shifted[k] = b_offsets[k]
        b_shifted_addresses[k] = b_addresses[k]
    for j in range(group[B_AFFECTED], group[B_AFFECTED_END]):
        r = affected[j]
        saved_touched[j] = b_touched[r]
        saved_uniform[j] = uniform[r] if r < len(uniform) else 0
        if saved_uniform[j] == backward.UNIFORM and offsets[r] >= 0:  # its number at each block's start
            for start in range(BLOCK, numel, BLOCK):
                if double:
                    b_grad64[offsets[r] + start] = b_grad64[offsets[r]]
                else:
                    b_grad32[offsets[r] + start] = b_grad32[offsets[r]]
    for start in range(0, numel, BLOCK):
        layouts[layout, 1] = min(BLOCK, numel - start)
        for j in range(group[B_AFFECTED], group[B_AFFECTED_END]):
            r = affected[j]
            b_touched[r] = saved_touched[j]
            if r < len(uniform):
                uniform[r] = saved_uniform[j]
            if b_offsets[r] >= 0:
                b_shifted[r] = b_offsets[r] + start
            if b_addresses[r] != 0:
                b_shifted_addresses[r] = b_addresses[r] + start * itemsize
        for k in range(group[B_MEMBERS], group[B_MEMBERS_END]):
            m = members[k]
            if not b_touched[m]:
                continue
            opcode = rows[m, ROWS]
            rule = rules[opcode]
            if start == 0 and saves[opcode]:  # (as the sweep checks a row when it reaches it)
                if freed[m]:
                    return backward.FREED, m
                if modified[m]:
                    return backward.MODIFIED, m
            if (
                (rule == backward.ADD or rule == backward.PASS)
                and backward._shares_slot(rows, b_shifted, rule, m)
                and not (m < len(uniform) and uniform[m] == backward.UNIFORM)
            ):  # its operands' gradient is its own, there already (``backward._run``)
                a, b = rows[m, IN0], rows[m, IN1] if rule == backward.ADD else -1
                if a >= 0 and b_offsets[a] >= 0:
                    b_touched[a] = True
                if b >= 0 and b_offsets[b] >= 0:
                    b_touched[b] = True
                continue
            slot = member_slots[k]
            if table[slot] == 0:  # (loaded by ``BackwardPlan.run``)
                return backward.KERNEL_FAILED, m
            result = call(table[slot], rule, m, saves[opcode], frame)
            if result != DONE:
                return (backward.NO_RULE if result == NO_RULE else backward.KERNEL_FAILED), m
    if not retain_graph:
        for k in range(group[B_MEMBERS], group[B_MEMBERS_END]):
            if b_touched[members[k]]:
                freed[members[k]] = True
    return 0, 0
