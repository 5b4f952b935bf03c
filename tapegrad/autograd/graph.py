"""``grad_fn`` objects: views onto tape rows, made on demand, so the tape never holds them."""

from __future__ import annotations

import weakref

from .._ops import CONSTANT_OPCODE, LEAF_OPCODE, NARY, OPS
from .._tape import NO_GRAD, OPCODE_MASK, ROW_WIDTH, Tape


class Node:
    """A node of the backward graph (PyTorch's ``torch.autograd.graph.Node``)."""

    __slots__ = ("_tape", "_row", "__weakref__")

    def __init__(self, tape: Tape, row: int):
        self._tape = tape
        self._row = row

    def name(self) -> str:
        return type(self).__name__

    def _resolved(self):
        tape, row = self._tape, self._row
        while tape.merged_into is not None:
            row += tape.row_shift
            tape = tape.merged_into
        self._tape, self._row = tape, row
        return tape, row

    @property
    def next_functions(self) -> tuple:
        tape, row = self._resolved()
        opcode, in0, in1, iparam = tape.ints[row * ROW_WIDTH : row * ROW_WIDTH + 4]
        if OPS[opcode].family == NARY:  # inputs listed in aux, as deltas from this row
            count = tape.aux[iparam]
            sources = [row - tape.aux[iparam + 2 + k] for k in range(count)]
            return tuple((_node_or_none(tape, _visible(tape, source)), 0) for source in sources)
        entries = []
        for source in (in0, in1)[: OPS[opcode].arity]:
            entries.append((_node_or_none(tape, _visible(tape, source)), 0))
        while len(entries) < OPS[opcode].arity:
            entries.append((None, 0))
        return tuple(entries)

    def __repr__(self) -> str:
        return f"<{self.name()} object at {hex(id(self))}>"


class AccumulateGrad(Node):
    __slots__ = ("variable",)


_CLASSES = {op.grad_fn: type(op.grad_fn, (Node,), {"__slots__": ()}) for op in OPS if op.grad_fn}


def _visible(tape: Tape, row: int) -> int:
    """Look through hidden rows (implicit broadcast and promotion), as PyTorch's graph does."""
    while row >= 0 and OPS[tape.ints[row * ROW_WIDTH] & OPCODE_MASK].hidden:
        row = tape.ints[row * ROW_WIDTH + 1]
    return row


def _node_or_none(tape: Tape, row: int):
    opcode = tape.ints[row * ROW_WIDTH] if row >= 0 else -1
    if row < 0 or opcode == CONSTANT_OPCODE or opcode >= NO_GRAD:
        return None
    return node_for(tape, row)


def node_for(tape: Tape, row: int) -> Node:
    if tape.nodes is None:
        tape.nodes = weakref.WeakValueDictionary()
    node = tape.nodes.get(row)
    if node is None:
        opcode = tape.ints[row * ROW_WIDTH]
        if opcode == LEAF_OPCODE:
            node = AccumulateGrad(tape, row)
            node.variable = next(tensor for leaf_row, tensor in tape.leaves if leaf_row == row)
        else:
            node = _CLASSES[OPS[opcode].grad_fn](tape, row)
        tape.nodes[row] = node
    return node
