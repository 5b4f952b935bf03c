"""Optimizer updates as one compiled loop per parameter (PyTorch's ``fused=True`` on CPU).

Adam's update as numpy calls is nine passes over each parameter and its two moment buffers,
each a call of 1-3 us for the small layers of a training step: a 64-128-10 MLP's Adam step took
about 100 us, a fifth of its training step, more than its backward sweep. One loop reads each
element once and writes the parameter and the buffers once.

The arithmetic is numpy's expression for expression, in the parameter's dtype (the constants
come cast to it, as numpy casts Python numbers): the same bits as ``tapegrad.optim``'s numpy
path, which follows ``torch.optim``'s single-tensor update. No fastmath and no contraction into
FMAs: numba enables neither.
"""

from __future__ import annotations

import numpy as np

from .config import jit


@jit
def adam(value, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lerp, beta2, scale2, step_size, root2, eps, l2, keep):
    """One Adam step of a flat, C-ordered parameter ``value`` in place, with its gradient and
    moment buffers (the same length and dtype). The constants are cast to its dtype: ``lerp`` is
    ``1 - beta1``, ``scale2`` is ``1 - beta2``, ``root2`` is ``sqrt(1 - beta2**step)``; ``l2``
    is the L2 weight decay added to the gradient (0: none); ``keep`` multiplies the parameter
    first (``1 - lr * weight_decay``, AdamW's decoupled decay; 1: none). ``max_exp_avg_sq``
    is amsgrad's running maximum, or empty without amsgrad."""
    # The constants come as Python floats (a numpy scalar argument costs numba's dispatch
    # 0.3 us) and are cast here, rounding as numpy's cast does.
    number = value.dtype.type
    lerp, beta2, scale2, step_size = number(lerp), number(beta2), number(scale2), number(step_size)
    root2, eps, l2, keep = number(root2), number(eps), number(l2), number(keep)
    amsgrad = len(max_exp_avg_sq) > 0
    decoupled = keep != 1
    for i in range(len(value)):
        x = value[i]
        if decoupled:
            x = x * keep
        g = grad[i]
        if l2 != 0:
            g = g + l2 * x
        m = exp_avg[i]
        m = m + lerp * (g - m)  # PyTorch's lerp for a weight below one half
        exp_avg[i] = m
        v = exp_avg_sq[i] * beta2
        v = v + scale2 * g * g
        exp_avg_sq[i] = v
        if amsgrad:
            old = max_exp_avg_sq[i]
            if old > v or old != old:  # np.maximum: NaN wins
                v = old
            max_exp_avg_sq[i] = v
        value[i] = x - step_size * m / (np.sqrt(v) / root2 + eps)
