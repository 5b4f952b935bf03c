"""2-D convolution (cross-correlation, as PyTorch's ``conv2d``): one image's windows laid out as
columns (``im2col``), times the weight by BLAS, written straight into the result in (N, C, H, W)
order; the backward the transposed products and the columns added back (``col2im``).

Each image's columns are (C/groups * kh * kw, Ho * Wo), made anew per image and group, so the
memory is one image's, not the batch's. The composite this replaces gathered the windows of the
whole batch with an index table, multiplied once, then permuted the (C_out, positions, N)
product into (N, C_out, positions): the copies cost more than the product (a 1 -> 16 channel
3x3 layer on 32 28x28 images: 1.96 ms forward, against PyTorch's 0.24).

``geometry`` is (N, C, H, W, C_out, kh, kw, Ho, Wo, stride h, stride w, padding top, padding
left, dilation h, dilation w, groups): the padding after each dimension is implied by the
output size.
"""

from __future__ import annotations

import numpy as np

from .blas import product
from .config import jit

GEOMETRY = 16  # entries of ``geometry``


@jit
def _span(extent, out, stride, pad, offset):
    """The output positions ``o`` (of ``out``) with ``0 <= o * stride - pad + offset < extent``:
    ``[lo, hi)``, ``lo <= hi <= out``. (``lo`` unbounded, a window row that reads only padding,
    a dilation beyond the input, made the loops zero past their row: a heap overflow.)"""
    first = pad - offset  # o * stride >= first
    lo = 0 if first <= 0 else min(out, (first + stride - 1) // stride)
    last = extent - 1 + pad - offset  # o * stride <= last
    hi = 0 if last < 0 else min(out, last // stride + 1)
    return lo, max(lo, hi)


@jit
def _zero(target, start, stop):
    view = target[start:stop]
    for i in range(stop - start):
        view[i] = 0


@jit
def im2col(x, base, channels, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, cols):
    """``cols`` (channels * kh * kw, oh * ow) = the windows of ``channels`` planes of ``x``
    starting at ``base`` (each h * w), zeros where a window reads the padding. Flat arrays, not
    2-D views of each window (a row is a dozen elements: making the views was most of the time).

    Each copy goes through 1-D slices indexed from 0 (``source[i]``, not ``x[start + i]``): LLVM
    then knows no index is negative, and the copy is a vector loop. Indexed at ``start + i``,
    numba's wraparound of negative indices made each element a branch, and this function was
    half of a 16 -> 32 channel layer's forward (16 us an image of 14x14, against 13 for its
    product; 4.7 now)."""
    positions = oh * ow
    for c in range(channels):
        plane = base + c * h * w
        for ky in range(kh):
            y_lo, y_hi = _span(h, oh, sh, ph, ky * dh)
            for kx in range(kw):
                row = ((c * kh + ky) * kw + kx) * positions
                x_lo, x_hi = _span(w, ow, sw, pw, kx * dw)
                _zero(cols, row, row + y_lo * ow)
                if sw == 1 and sh * w == ow and y_hi > y_lo and x_hi > x_lo:
                    # Rows of the window as far apart as the input's ('same' padding, stride 1): one
                    # copy of the whole block, then its columns in the padding zeroed (a row is
                    # a dozen elements, too short for the vector loop a block takes).
                    target = row + y_lo * ow + x_lo
                    source = plane + (y_lo * sh - ph + ky * dh) * w + x_lo - pw + kx * dw
                    count = (y_hi - y_lo - 1) * ow + x_hi - x_lo
                    block, window = cols[target : target + count], x[source : source + count]
                    for i in range(count):
                        block[i] = window[i]
                    if x_lo > 0 or x_hi < ow:  # (a column or two of a 'same' padding)
                        for oy in range(y_lo, y_hi):
                            for ox in range(x_lo):
                                cols[row + oy * ow + ox] = 0
                            for ox in range(x_hi, ow):
                                cols[row + oy * ow + ox] = 0
                    _zero(cols, row + y_hi * ow, row + positions)
                    continue
                for oy in range(y_lo, y_hi):
                    target = row + oy * ow
                    source = plane + (oy * sh - ph + ky * dh) * w + x_lo * sw - pw + kx * dw
                    _zero(cols, target, target + x_lo)
                    count = x_hi - x_lo
                    line = cols[target + x_lo : target + x_hi]
                    if sw == 1:  # contiguous: a vector copy
                        window = x[source : source + count]
                        for ox in range(count):
                            line[ox] = window[ox]
                    else:
                        window = x[source : source + (count - 1) * sw + 1]
                        for ox in range(count):
                            line[ox] = window[ox * sw]
                    _zero(cols, target + x_hi, target + ow)
                _zero(cols, row + y_hi * ow, row + positions)


@jit
def col2im(cols, base, channels, h, w, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, gx):
    """Add ``cols`` (as ``im2col`` lays them out) back into the planes of ``gx`` from ``base``:
    each window element into the input element it read. ``cols`` is scratch: its elements
    that read the padding may be zeroed. (Slices indexed from 0, as ``im2col``'s.)"""
    positions = oh * ow
    for c in range(channels):
        plane = base + c * h * w
        for ky in range(kh):
            y_lo, y_hi = _span(h, oh, sh, ph, ky * dh)
            for kx in range(kw):
                row = ((c * kh + ky) * kw + kx) * positions
                x_lo, x_hi = _span(w, ow, sw, pw, kx * dw)
                if sw == 1 and sh * w == ow and y_hi > y_lo and x_hi > x_lo:  # one block, as ``im2col``'s
                    if x_lo > 0 or x_hi < ow:  # (what the padding read adds nothing: cols is scratch)
                        for oy in range(y_lo, y_hi):
                            for ox in range(x_lo):
                                cols[row + oy * ow + ox] = 0
                            for ox in range(x_hi, ow):
                                cols[row + oy * ow + ox] = 0
                    source = row + y_lo * ow + x_lo
                    target = plane + (y_lo * sh - ph + ky * dh) * w + x_lo - pw + kx * dw
                    count = (y_hi - y_lo - 1) * ow + x_hi - x_lo
                    block, window = cols[source : source + count], gx[target : target + count]
                    for i in range(count):
                        window[i] += block[i]
                    continue
                for oy in range(y_lo, y_hi):
                    source = row + oy * ow + x_lo
                    target = plane + (oy * sh - ph + ky * dh) * w + x_lo * sw - pw + kx * dw
                    count = x_hi - x_lo
                    line = cols[source : source + count]
                    if sw == 1:
                        window = gx[target : target + count]
                        for ox in range(count):
                            window[ox] += line[ox]
                    else:
                        window = gx[target : target + (count - 1) * sw + 1]
                        for ox in range(count):
                            window[ox * sw] += line[ox]


@jit
def _unpacked(geometry):
    g = geometry
    return g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]


@jit
def conv2d(x, w, out, geometry):
    """``out`` (N, C_out, Ho, Wo) = the cross-correlation of ``x`` (N, C, H, W) with ``w``
    (C_out, C / groups, kh, kw); all flat and C-ordered, one dtype."""
    n, c, h, wd, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups = _unpacked(geometry)
    per_group, out_per_group = c // groups, o // groups
    depth, positions = per_group * kh * kw, oh * ow
    if n * o * positions == 0:
        return
    if depth == 0:
        out[:] = 0
        return
    cols = np.empty(depth * positions, x.dtype)
    size = x.itemsize
    for image in range(n):
        for g in range(groups):
            base = (image * c + g * per_group) * h * wd
            im2col(x, base, per_group, h, wd, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, cols)
            weights = w.ctypes.data + g * out_per_group * depth * size
            result = out.ctypes.data + (image * o + g * out_per_group) * positions * size
            product(False, False, out_per_group, positions, depth, 1.0, weights, depth, cols.ctypes.data,
                    positions, 0.0, result, positions, x)  # fmt: skip


@jit
def conv2d_backward(x, w, g, gx, gw, geometry):
    """Add the gradients of ``conv2d`` from ``g`` (its result's): to ``gx`` (x's shape) and
    ``gw`` (w's); either may be empty, for none."""
    n, c, h, wd, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups = _unpacked(geometry)
    per_group, out_per_group = c // groups, o // groups
    depth, positions = per_group * kh * kw, oh * ow
    if n * o * positions * depth == 0:
        return
    cols = np.empty(depth * positions, x.dtype)
    size = x.itemsize
    for image in range(n):
        for group in range(groups):
            base = (image * c + group * per_group) * h * wd
            incoming = g.ctypes.data + (image * o + group * out_per_group) * positions * size
            weights = w.ctypes.data + group * out_per_group * depth * size
            if len(gw):  # gw_g (C_out / groups, depth) += g_image (C_out / groups, positions) @ cols.T
                im2col(x, base, per_group, h, wd, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, cols)
                product(False, True, out_per_group, depth, positions, 1.0, incoming, positions,
                        cols.ctypes.data, positions, 1.0, gw.ctypes.data + group * out_per_group * depth * size,
                        depth, x)  # fmt: skip
            if len(gx):  # cols = w_g.T (depth, C_out / groups) @ g_image, added back where read
                product(True, False, depth, positions, out_per_group, 1.0, weights, depth, incoming, positions,
                        0.0, cols.ctypes.data, positions, x)  # fmt: skip
                col2im(cols, base, per_group, h, wd, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, gx)


PARAMETERS = 7  # a conv2d row's aux entries from its iparam: stride h, w, padding top, left, dilation h, w, groups


@jit
def row_geometry(r, rows, layouts, dims, aux):
    """``geometry`` of conv2d row ``r``: its input's shape (in0), its weight's (in1), its own
    (the output's) and its aux entries."""
    geometry = np.empty(GEOMETRY, np.int64)
    x_shape = dims[layouts[rows[rows[r, 1], 4], 3] :]
    w_shape = dims[layouts[rows[rows[r, 2], 4], 3] :]
    out_shape = dims[layouts[rows[r, 4], 3] :]
    for k in range(4):
        geometry[k] = x_shape[k]
    geometry[4], geometry[5], geometry[6] = w_shape[0], w_shape[2], w_shape[3]
    geometry[7], geometry[8] = out_shape[2], out_shape[3]
    for k in range(PARAMETERS):
        geometry[9 + k] = aux[rows[r, 3] + k]
    return geometry
