"""N-dimensional accumulation through strides: the one loop behind views, broadcasting and
reductions along dimensions."""

from __future__ import annotations

import numpy as np

from .config import jit


@jit
def contiguous_strides(shape):
    strides = np.empty(len(shape), np.int64)
    running = 1
    for k in range(len(shape) - 1, -1, -1):
        strides[k] = running
        running *= shape[k]
    return strides


@jit
def strided_accumulate(dst, dst_offset, dst_strides, src, src_offset, src_strides, shape, scale):
    """``dst[dst_offset + i.dst_strides] += scale * src[src_offset + i.src_strides]`` for every
    multi-index ``i`` of ``shape``. A zero stride on one side makes it a broadcast (src) or a
    sum (dst)."""
    ndim = len(shape)
    total = 1
    for k in range(ndim):
        total *= shape[k]
    if total == 0:
        return
    index = np.zeros(ndim, np.int64)
    dst_position = dst_offset
    src_position = src_offset
    for _ in range(total):
        dst[dst_position] += scale * src[src_position]
        k = ndim - 1
        while k >= 0:
            index[k] += 1
            dst_position += dst_strides[k]
            src_position += src_strides[k]
            if index[k] < shape[k]:
                break
            dst_position -= dst_strides[k] * shape[k]
            src_position -= src_strides[k] * shape[k]
            index[k] = 0
            k -= 1


@jit
def is_block(shape, strides):
    """Whether a view with these strides is one contiguous block of the input (a select, a
    reshape, a slice without step): then it is a plain offset copy, with no index arithmetic."""
    running = 1
    for k in range(len(shape) - 1, -1, -1):
        if shape[k] != 1 and strides[k] != running:
            return False
        running *= shape[k]
    return True


@jit
def reduced_strides(shape, mask):
    """Strides reading a reduction's result (laid out without the dimensions in the bit
    ``mask``) at every index of its input: 0 along the reduced dimensions."""
    strides = np.zeros(len(shape), np.int64)
    running = 1
    for k in range(len(shape) - 1, -1, -1):
        if not (mask >> k) & 1:
            strides[k] = running
            running *= shape[k]
    return strides
