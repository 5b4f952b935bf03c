"""Per-op benchmarks generated from the op table: every differentiable entry's forward and
backward, on the example inputs of ``tapegrad._examples`` (small) and, for elementwise ops, on
256x512 inputs (large). A new table entry is benchmarked without new benchmark code."""

from __future__ import annotations

import numpy as np

import tapegrad as tg
from tapegrad import _ops
from tapegrad._examples import CASES
from tapegrad._tape import OPCODE_MASK, ROW_WIDTH


def _first_case_per_op() -> dict:
    chosen = {}
    for case in CASES:
        arrays = [np.full(shape, 0.75) for shape in case.shapes]
        out = case.call(*[tg.tensor(a, requires_grad=True) for a in arrays])
        tape = out._tape
        for row in range(len(tape)):
            op = _ops.OPS[tape.ints[row * ROW_WIDTH] & OPCODE_MASK]
            if op.family not in (_ops.LEAF, _ops.NONDIFF) and not op.hidden:
                chosen.setdefault(op.name, case)
    return chosen


_CASES = _first_case_per_op()
_ELEMENTWISE = (_ops.UNARY, _ops.SCALAR, _ops.BINARY)
LARGE = (256, 512)


class Ops:
    params = [sorted(_CASES), ["small", "large"]]
    param_names = ["op", "size"]

    def setup(self, op, size):
        case = _CASES[op]
        if size == "large":
            if _ops.BY_NAME[op].family not in _ELEMENTWISE or len({len(s) for s in case.shapes}) != 1:
                raise NotImplementedError("large inputs only for elementwise ops")
            shapes = [LARGE for _ in case.shapes]
        else:
            shapes = case.shapes
        low, high = case.domain
        rng = np.random.default_rng(0)
        arrays = [rng.uniform(low, high, size=shape).astype(np.float32) for shape in shapes]
        self.inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
        self.call = case.call
        self.out = self.call(*self.inputs)
        self.seed = tg.ones_like(self.out)
        self.out.backward(self.seed, retain_graph=True)  # compiles the interpreter outside timing

    def time_forward(self, op, size):
        self.call(*self.inputs)

    def time_backward(self, op, size):
        self.out.backward(self.seed, retain_graph=True)
