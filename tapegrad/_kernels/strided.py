"""N-dimensional accumulation through strides: the one loop behind views, broadcasting and
reductions along dimensions."""

from __future__ import annotations

import numpy as np

from .config import inline, jit

# Offset 0 as an int64, not a literal: numba compiles a function anew for each literal argument
# (``strided_accumulate(dst, 0, ..., src, 0, ...)`` and ``(dst, k, ..., src, 0, ...)`` were three
# compiles of it per dtype, 1.2 s each), and once for int64 offsets whatever their values.
ORIGIN = np.int64(0)


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
    sum (dst). The last two dimensions are one plane (``_accumulate_plane``), the others an
    odometer."""
    ndim = len(shape)
    total = 1
    for k in range(ndim):
        total *= shape[k]
    if total == 0:
        return
    if ndim == 0:
        dst[dst_offset] += scale * src[src_offset]
        return
    if ndim == 1:
        _accumulate_run(dst, dst_offset, dst_strides[0], src, src_offset, src_strides[0], shape[0], scale)
        return
    rows, columns = shape[ndim - 2], shape[ndim - 1]
    index = np.zeros(ndim, np.int64)
    dst_position = dst_offset
    src_position = src_offset
    for _ in range(total // (rows * columns)):
        _accumulate_plane(
            dst, dst_position, dst_strides[ndim - 2], dst_strides[ndim - 1],
            src, src_position, src_strides[ndim - 2], src_strides[ndim - 1],
            rows, columns, scale,
        )  # fmt: skip
        k = ndim - 3
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


# A tile's side. A transpose walks one side with a large power-of-two stride, and those lines
# share a few L1 sets (4K aliasing): 16 lines per side fit them, 32 did not (measured 5x).
# (Transposes now take ``_accumulate_blocks``; the tiles are for other strides on both sides.)
_TILE = 16


@inline
def _accumulate_plane(
    dst, dst_position, dst_row, dst_column, src, src_position, src_row, src_column, rows, columns, scale
):
    """Two dimensions: row by row when both sides run along the last one (copies, broadcasts,
    sums); in blocks when the destination does (``_accumulate_blocks``: a transpose); else in
    tiles, so that both sides move whole cache lines."""
    if (dst_column == 1 or dst_column == 0) and (src_column == 1 or src_column == 0):
        if dst_row == 0 and dst_column == 1 and src_column == 1 and rows > 1 and dst.itemsize == 4:
            # A sum over the rows (a bias's gradient, a mean over the batch): in float64, then
            # added once. Row by row in float32, a (65536, 64) gradient lost 100x PyTorch's digits.
            sums = np.zeros(columns, np.float64)
            for i in range(rows):
                source = src[src_position + i * src_row : src_position + i * src_row + columns]
                for j in range(columns):
                    sums[j] += source[j]
            target = dst[dst_position : dst_position + columns]
            for j in range(columns):
                target[j] += scale * dst.dtype.type(sums[j])
            return
        for i in range(rows):
            _accumulate_run(
                dst, dst_position + i * dst_row, dst_column, src, src_position + i * src_row, src_column, columns, scale
            )
        return
    if dst_row == 1 and dst_column != 1:
        # The destination runs along the rows (a gradient going back through ``.t()`` into its
        # input): walk the plane transposed, so the inner loop writes it contiguously and only
        # reads stride. Scattered writes along a 4 KB stride thrashed L1: a 512x1024 float32
        # transpose took 1550 us, 405 us so (128x512: 36 us both ways).
        rows, columns = columns, rows
        dst_row, dst_column = dst_column, dst_row
        src_row, src_column = src_column, src_row
    if dst_column == 1:
        _accumulate_blocks(dst, dst_position, dst_row, src, src_position, src_row, src_column, rows, columns, scale)
        return
    for row_start in range(0, rows, _TILE):
        row_end = min(row_start + _TILE, rows)
        for column_start in range(0, columns, _TILE):
            column_end = min(column_start + _TILE, columns)
            for i in range(row_start, row_end):
                # Unsigned indices: numba then skips its negative-index test (measured 2.3x here).
                # Views never have negative strides in tapegrad (no flip views), so none wraps.
                d = np.uint64(dst_position + i * dst_row)
                s = np.uint64(src_position + i * src_row)
                for j in range(column_start, column_end):
                    dst[d + np.uint64(j * dst_column)] += scale * src[s + np.uint64(j * src_column)]


# A transpose's block: runs of 8 along the destination (a constant trip count, which LLVM
# unrolls into one vector of gathered reads) over strips of 16 rows (lines of the strided side
# reused from L1). A 128x512 float32 transpose took 21 us so, 35 us in 16 x 16 tiles of
# variable trip count; unrolling the rows too (8 x 8) ran no faster and compiled 3x longer.
_BLOCK = 8


@inline
def _accumulate_blocks(dst, dst_position, dst_row, src, src_position, src_row, src_column, rows, columns, scale):
    """A plane whose destination is contiguous along its rows and whose source is not (a
    transpose): ``_BLOCK`` columns at a time, then the ragged columns. Indices unsigned, as in
    ``_accumulate_plane``."""
    _blocks(dst, dst_position, dst_row, src, src_position, src_row, src_column, rows, columns, scale, False)


@inline
def _blocks(dst, dst_position, dst_row, src, src_position, src_row, src_column, rows, columns, scale, assign):
    """``_accumulate_blocks``, or with ``assign`` the same walk storing ``src`` (``transposed_copy``)."""
    full_columns = columns - columns % _BLOCK
    for row_start in range(0, rows, _TILE):
        row_end = min(row_start + _TILE, rows)
        for j0 in range(0, full_columns, _BLOCK):
            for i in range(row_start, row_end):
                d = np.uint64(dst_position + i * dst_row + j0)
                s = np.uint64(src_position + i * src_row + j0 * src_column)
                for j in range(_BLOCK):
                    if assign:
                        dst[d + np.uint64(j)] = src[s + np.uint64(j * src_column)]
                    else:
                        dst[d + np.uint64(j)] += scale * src[s + np.uint64(j * src_column)]
        for i in range(row_start, row_end):
            d = np.uint64(dst_position + i * dst_row)
            s = np.uint64(src_position + i * src_row)
            for j in range(full_columns, columns):
                if assign:
                    dst[d + np.uint64(j)] = src[s + np.uint64(j * src_column)]
                else:
                    dst[d + np.uint64(j)] += scale * src[s + np.uint64(j * src_column)]


@inline
def _accumulate_run(dst, dst_position, dst_stride, src, src_position, src_stride, n, scale):
    """One run along the last dimension. The common strides (1 and 0: a copy, a broadcast, a sum)
    get slice loops LLVM vectorizes; computed indices do not (measured 4x on sum over a dim)."""
    if dst_stride == 1 and src_stride == 1:
        target = dst[dst_position : dst_position + n]
        source = src[src_position : src_position + n]
        for j in range(n):
            target[j] += scale * source[j]
    elif dst_stride == 1 and src_stride == 0:
        target = dst[dst_position : dst_position + n]
        value = scale * src[src_position]
        for j in range(n):
            target[j] += value
    elif dst_stride == 0 and src_stride == 1:
        source = src[src_position : src_position + n]
        total = np.float64(0.0)  # (float64: a float32 running sum lost digits along long rows)
        for j in range(n):
            total += np.float64(source[j])  # (as plain Python too: 0.0 + a float32 is a float32)
        dst[dst_position] += scale * dst.dtype.type(total)
    else:
        for j in range(n):
            dst[np.uint64(dst_position + j * dst_stride)] += scale * src[np.uint64(src_position + j * src_stride)]


@jit
def transposed_copy(source, target, rows, columns):
    """``target`` (``rows`` x ``columns``, flat, C-ordered) = the transpose of ``source``
    (``columns`` x ``rows``, flat, C-ordered), in the blocks of ``_accumulate_blocks``: a saved
    ``a.t()`` made C-ordered. numpy's copy walks one side element by element with a large stride
    (128x512 float32: numpy 58 us, this 15 us; 512x1024: 1090 us, 300 us)."""
    _blocks(target, ORIGIN, columns, source, ORIGIN, 1, rows, rows, columns, source.dtype.type(1), True)


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
