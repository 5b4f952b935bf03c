"""The benchmark-only reference for the graph workload: the same op list, run forward and
backward by a hand-written numba switch interpreter (what a C interpreter over the list does)."""

from __future__ import annotations

import numpy as np
from numba import njit

SOFTPLUS, SUM, MUL, SOFTMAX = range(4)


def op_list(n_ops: int, n_inputs: int = 100):
    """(kind, arguments, first output node) per op, mirroring ``workloads.scalar_graph``."""
    kinds = np.empty(n_ops, np.int64)
    arguments = np.full((n_ops, 4), -1, np.int64)
    outputs = np.empty(n_ops, np.int64)
    count = n_inputs
    for k in range(n_ops):
        kind = k % 4
        kinds[k] = kind
        outputs[k] = count
        if kind == SOFTPLUS:
            arguments[k, 0] = count - 10
            count += 1
        elif kind == SUM:
            arguments[k, :4] = [count - 30, count - 25, count - 20, count - 15]
            count += 1
        elif kind == MUL:
            arguments[k, :2] = [count - 20, count - 10]
            count += 1
        else:
            arguments[k, :4] = [count - 4, count - 3, count - 2, count - 1]
            count += 4
    return kinds, arguments, outputs, count


@njit(cache=True)
def forward_backward(kinds, arguments, outputs, n_nodes, inputs):
    values = np.zeros(n_nodes)
    grads = np.zeros(n_nodes)
    values[: len(inputs)] = inputs
    for k in range(len(kinds)):
        out = outputs[k]
        kind = kinds[k]
        if kind == SOFTPLUS:
            x = values[arguments[k, 0]]
            values[out] = x if x > 20.0 else np.log1p(np.exp(x))
        elif kind == SUM:
            values[out] = (
                values[arguments[k, 0]] + values[arguments[k, 1]] + values[arguments[k, 2]] + values[arguments[k, 3]]
            )
        elif kind == MUL:
            values[out] = values[arguments[k, 0]] * values[arguments[k, 1]]
        else:
            largest = values[arguments[k, 0]]
            for j in range(1, 4):
                largest = max(largest, values[arguments[k, j]])
            total = 0.0
            for j in range(4):
                values[out + j] = np.exp(values[arguments[k, j]] - largest)
                total += values[out + j]
            for j in range(4):
                values[out + j] /= total
    grads[n_nodes - 1] = 1.0
    for k in range(len(kinds) - 1, -1, -1):
        out = outputs[k]
        kind = kinds[k]
        if kind == SOFTPLUS:
            grads[arguments[k, 0]] += grads[out] * -np.expm1(-values[out])
        elif kind == SUM:
            for j in range(4):
                grads[arguments[k, j]] += grads[out]
        elif kind == MUL:
            grads[arguments[k, 0]] += grads[out] * values[arguments[k, 1]]
            grads[arguments[k, 1]] += grads[out] * values[arguments[k, 0]]
        else:
            dot = 0.0
            for j in range(4):
                dot += grads[out + j] * values[out + j]
            for j in range(4):
                grads[arguments[k, j]] += values[out + j] * (grads[out + j] - dot)
    return values[n_nodes - 1], grads[: len(inputs)]
