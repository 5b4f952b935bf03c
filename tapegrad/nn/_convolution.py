"""Convolution and pooling over windows: ``conv1d``/``conv2d``, ``conv_transpose2d``,
``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d``; follows ``torch.nn.functional``.

A float ``conv2d`` (and ``conv1d``, through it) is one recorded row whose kernels lay out one
image's windows at a time and multiply them by BLAS (``_kernels/convolution.py``): the composite
below, its create_graph formula, cost more in copies than in the product. The others are
composites of recorded ops, so the tape, the replay and every gradient need no kernel of their
own. The windows are one ``index`` gather (im2col): the input laid out as rows of one
spatial position (channel, y, x) across the batch, ``(C*H*W, N)``, plus one row holding the
padding value, is gathered by a table of row numbers ``(C*kh*kw, out_h*out_w)``. A convolution
is then one matrix product with the weight (a batched one for ``groups``); a pooling one
reduction over the window. The gradient of the gather is a scatter-add of whole rows of the
batch. The table depends only on the shapes and is built once per shape (``_windows``).
"""

from __future__ import annotations

import collections
import functools
import threading

import numpy as np

from .._factories import full
from .._grad_mode import active_recording
from .._indexing import gather_rows, pick
from .._kernels import load as load_kernels
from .._record import c_ordered, name_node, record
from .._views import cat
from ..autograd.gradients import differentiated
from ..autograd.higher_order import VJP_RULES, one_computation
from ..tensor import Tensor, _wrap, floating_kernel


def _tables_cache(max_bytes: int):
    """``functools.lru_cache`` bounded by the bytes of the tables it holds rather than by their
    count: a table grows with the geometry (64 channels of 56x56 with a 3x3 kernel: 14 MB), and
    128 of them, a network seeing many input sizes, held 4.7 GB."""

    def decorate(function):
        tables: collections.OrderedDict = collections.OrderedDict()
        held = [0]
        lock = threading.Lock()

        @functools.wraps(function)
        def cached(*key):
            with lock:
                if key in tables:
                    tables.move_to_end(key)
                    return tables[key]
            value = function(*key)
            size = value[0].nbytes
            with lock:
                if key not in tables:
                    tables[key] = value
                    held[0] += size
                    while held[0] > max_bytes and len(tables) > 1:
                        _, dropped = tables.popitem(last=False)
                        held[0] -= dropped[0].nbytes
            return value

        cached.cache_clear = lambda: (tables.clear(), held.__setitem__(0, 0))
        cached.bytes_held = lambda: held[0]
        return cached

    return decorate


# The window tables kept, per kind: the latest geometries, up to this many bytes each.
_TABLE_BYTES = 64 << 20


def _pair(value, name: str, dims: int = 2) -> tuple:
    values = (value,) * dims if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) == 1:
        values = values * dims
    if len(values) != dims:
        raise RuntimeError(
            f"expected {name} to be a single integer value or a list of {dims} values to match the "
            f"convolution dimensions, but got {name}={list(values)}"
        )
    return tuple(int(v) for v in values)


@_tables_cache(_TABLE_BYTES)
def _windows(channels: int, height: int, width: int, kernel: tuple, stride: tuple, before: tuple,
             dilation: tuple, out: tuple) -> tuple:  # fmt: skip
    """The row of ``(C*H*W + 1, N)`` each (channel, ky, kx) of each output position reads, as a
    ``(C*kh*kw, out_h*out_w)`` table; the last row (``C*H*W``) stands for the padding. Also
    whether any window reads the padding (when none does, the padding row is not made)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, before, dilation, out
    c = np.arange(channels).reshape(-1, 1, 1, 1, 1)
    y = (np.arange(oh) * sh - ph).reshape(1, 1, 1, -1, 1) + (np.arange(kh) * dh).reshape(1, -1, 1, 1, 1)
    x = (np.arange(ow) * sw - pw).reshape(1, 1, 1, 1, -1) + (np.arange(kw) * dw).reshape(1, 1, -1, 1, 1)
    inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    rows = np.where(inside, (c * height + y) * width + x, channels * height * width)
    table = np.ascontiguousarray(rows.reshape(channels * kh * kw, oh * ow), dtype=np.int64)
    table.setflags(write=False)
    return table, not inside.all()


def _gather_windows(x: Tensor, table: np.ndarray, padded: bool, fill: float) -> Tensor:
    """``x`` (N, C, H, W) -> its windows, (len(table), out positions, N)."""
    n = x.shape[0]
    rows = x.reshape(n, int(np.prod(x.shape[1:]))).t()  # not -1: an empty batch has no -1
    if padded:
        rows = cat([rows, full((1, n), fill, dtype=x.dtype)], 0)
    return gather_rows("index", rows, table)


def _output_size(extent: int, kernel: int, stride: int, total_pad: int, dilation: int, ceil: bool = False) -> int:
    span = extent + total_pad - dilation * (kernel - 1) - 1
    size = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (size - 1) * stride >= extent + total_pad // 2:  # the last window starts in the padding
        size -= 1
    return size


def _batched(input: Tensor, dims: int, what: str) -> tuple:  # noqa: A002 - PyTorch's names
    if input.dim() not in (dims + 1, dims + 2):
        raise RuntimeError(
            f"Expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input to {what}, "
            f"but got input of size: {list(input.shape)}"
        )
    return (input.unsqueeze(0), True) if input.dim() == dims + 1 else (input, False)


def _same_padding(kernel: tuple, dilation: tuple, stride: tuple, padding) -> tuple:
    """(before, after) padding of each spatial dimension, from an int, a tuple or a string."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * len(kernel), (0,) * len(kernel)
        if padding != "same":
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        if any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)  # PyTorch's: extra after
    pads = _pair(padding, "padding", len(kernel))
    if any(p < 0 for p in pads):
        raise RuntimeError("negative padding is not supported")
    return pads, pads


def conv2d(
    input: Tensor,  # noqa: A002 - PyTorch's names
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    ``input`` (N, C_in, H, W) or unbatched (C_in, H, W); ``weight`` (C_out, C_in / groups, kH, kW);
    ``bias`` (C_out,) or None; ``stride``, ``padding`` (an int, a pair, ``"valid"`` or ``"same"``),
    ``dilation``: ints or pairs. Returns (N, C_out, H_out, W_out) in the input's dtype, with
    ``H_out = (H + 2 * padding - dilation * (kH - 1) - 1) // stride + 1``. Differentiable in all
    three tensors (``ConvolutionBackward0``).

    Raises ``RuntimeError`` with PyTorch's message for a wrong rank, channel count, bias size,
    dtype, stride, padding or a kernel larger than the padded input."""
    x, unbatched = _batched(input, 2, "conv2d")
    groups = _checked_convolution(x, weight, bias, groups, stride)
    n, channels, height, width = x.shape
    out_channels, group_channels, kh, kw = weight.shape
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    # (PyTorch's words for a zero dilation depend on the CPU kernel it picks: oneDNN's, for a
    # float32 batch of more than one, has its own)
    _check_dilation(
        dilation,
        lambda: (
            "non-positive dilation is not supported"
            if n > 1 and x._data.dtype == np.float32
            else f"dilation should be greater than zero, but got {list(dilation)}"
        ),
    )
    before, after = _same_padding((kh, kw), dilation, stride, padding)
    padded = (height + before[0] + after[0], width + before[1] + after[1])
    if any(p < d * (k - 1) + 1 for p, k, d in zip(padded, (kh, kw), dilation)):
        raise RuntimeError(
            f"Calculated padded input size per channel: ({padded[0]} x {padded[1]}). Kernel size: "
            f"({(kh - 1) * dilation[0] + 1} x {(kw - 1) * dilation[1] + 1}). Kernel size can't be greater than "
            "actual input size"
        )
    out = tuple(
        _output_size(e, k, s, b + a, d)
        for e, k, s, b, a, d in zip((height, width), (kh, kw), stride, before, after, dilation)
    )
    parameters = (*stride, *before, *dilation, groups)
    if x._data.dtype.kind == "f" and x._data.dtype == weight._data.dtype:
        result = _fused(x, weight, out, parameters)
        if bias is not None:
            result = result + bias.reshape(1, out_channels, 1, 1)
        result = name_node(result, "ConvolutionBackward0")
    else:
        result = _windowed(x, weight, out, parameters, bias)
    return result.squeeze(0) if unbatched else result


def _fused(x: Tensor, weight: Tensor, out: tuple, parameters: tuple) -> Tensor:
    """One ``conv2d`` row: the kernels' im2col and BLAS product per image (``_kernels.convolution``),
    ``parameters`` (stride h, w, padding top, left, dilation h, w, groups) in the tape's aux."""
    data, w = c_ordered(x._data), c_ordered(weight._data)
    n, channels, height, width = data.shape
    result = np.empty((n, w.shape[0], *out), data.dtype)
    geometry = np.array((n, channels, height, width, w.shape[0], *w.shape[2:], *out, *parameters), np.int64)
    load_kernels("convolution").conv2d(data.reshape(-1), w.reshape(-1), result.reshape(-1), geometry)
    return record("conv2d", (x, weight), result, saved=(data, w), aux=parameters)


def _windowed(x: Tensor, weight: Tensor, out: tuple, parameters: tuple, bias: Tensor | None = None) -> Tensor:
    """``conv2d`` as a composite of recorded ops (the module's docstring): for dtypes the fused
    row does not take, and as the create_graph formula of that row (``_conv2d_vjp``)."""
    sh, sw, ph, pw, dh, dw, groups = parameters
    _, channels, height, width = x.shape
    out_channels, group_channels, kh, kw = weight.shape
    table, reads_padding = _windows(channels, height, width, (kh, kw), (sh, sw), (ph, pw), (dh, dw), out)
    columns = _gather_windows(x, table, reads_padding, 0.0)  # (C*kh*kw, L, N)
    return _product(weight.reshape(groups, out_channels // groups, group_channels * kh * kw), columns, out, bias)


def _conv2d_vjp(row, g: Tensor) -> tuple:
    """The gradients of a ``conv2d`` row for create_graph: those of the composite, which every
    op of can be differentiated again."""
    x, weight = row.a, row.b
    return differentiated(_windowed(x, weight, row.shape[2:], tuple(row.aux(0, 7))), (x, weight), g)


VJP_RULES["conv2d"] = one_computation(_conv2d_vjp, 2)


def _product(weights: Tensor, columns: Tensor, out: tuple, bias: Tensor | None) -> Tensor:
    """(groups, C_out / groups, depth) weights times (groups * depth, L, N) window columns:
    (N, C_out, *out), plus ``bias``; one matrix product, a batched one for several groups."""
    groups, per_group, depth = weights.shape
    out_channels, n = groups * per_group, columns.shape[2]
    positions = out[0] * out[1]
    if groups == 1:
        result = weights.reshape(out_channels, depth) @ columns.reshape(depth, positions * n)
    else:
        result = (weights @ columns.reshape(groups, depth, positions * n)).reshape(out_channels, positions * n)
    # Laid out (N, C_out, ...) as PyTorch's result is: a permuted view made ``y.view(n, -1)``
    # (a classifier's flatten) and the bias added to it raise PyTorch's view error.
    result = result.reshape(out_channels, positions, n).permute(2, 0, 1).contiguous().reshape(n, out_channels, *out)
    if bias is not None:
        result = result + bias.reshape(1, out_channels, 1, 1)
    return name_node(result, "ConvolutionBackward0")


@_tables_cache(_TABLE_BYTES)
def _transposed_windows(channels: int, height: int, width: int, kernel: tuple, stride: tuple, padding: tuple,
                        dilation: tuple, out: tuple) -> tuple:  # fmt: skip
    """``_windows`` for a transposed convolution: output position Y takes input row ``iy`` through
    kernel row ``ky`` where ``iy * stride - padding + ky * dilation == Y`` (the input spread
    ``stride`` apart, the gaps reading the padding row); no kernel flip is needed this way."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = kernel, stride, padding, dilation, out
    c = np.arange(channels).reshape(-1, 1, 1, 1, 1)
    iy, ry = np.divmod((np.arange(oh) + ph).reshape(1, 1, 1, -1, 1) - (np.arange(kh) * dh).reshape(1, -1, 1, 1, 1), sh)
    ix, rx = np.divmod((np.arange(ow) + pw).reshape(1, 1, 1, 1, -1) - (np.arange(kw) * dw).reshape(1, 1, -1, 1, 1), sw)
    inside = (ry == 0) & (iy >= 0) & (iy < height) & (rx == 0) & (ix >= 0) & (ix < width)
    rows = np.where(inside, (c * height + iy) * width + ix, channels * height * width)
    table = np.ascontiguousarray(rows.reshape(channels * kh * kw, oh * ow), dtype=np.int64)
    table.setflags(write=False)
    return table, not inside.all()


def conv_transpose2d(
    input: Tensor,  # noqa: A002 - PyTorch's names
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Tensor:
    """2-D transposed convolution (the gradient of ``conv2d`` with respect to its input), as
    ``torch.nn.functional.conv_transpose2d``.

    ``input`` (N, C_in, H, W) or (C_in, H, W); ``weight`` (C_in, C_out / groups, kH, kW); ``bias``
    (C_out,) or None. Returns (N, C_out, H_out, W_out) with ``H_out = (H - 1) * stride -
    2 * padding + dilation * (kH - 1) + output_padding + 1``. Differentiable in all three
    tensors (``ConvolutionBackward0``). Raises ``RuntimeError`` with PyTorch's messages for a
    wrong rank, channel count, bias size, dtype, stride or ``output_padding``."""
    x, unbatched = _batched(input, 2, "conv_transpose2d")
    if weight.dim() != 4:
        raise RuntimeError(f"weight should have four dimensions, got {weight.dim()}")
    if x.dtype != weight.dtype:
        _native_dtype_error(x, weight)
    if bias is not None and bias.dtype != x.dtype:  # PyTorch's transposed kernel casts it (differentiably)
        bias = bias.to(x.dtype)
    n, channels, height, width = x.shape
    in_channels, group_out, kh, kw = weight.shape
    groups = int(groups)
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    _check_weight_extent(weight, groups)
    if in_channels % groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but got weight of "
            f"size [{list(weight.shape)}] instead"  # (sic: PyTorch's double brackets)
        )
    if isinstance(padding, str):
        raise TypeError("conv_transpose2d(): argument 'padding' must be tuple of ints, not str")
    out_channels = group_out * groups
    if channels != in_channels or in_channels % groups:
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight.shape)}, expected input{list(x.shape)} to have "
            f"{in_channels} channels, but got {channels} channels instead"
        )
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise RuntimeError(
            f"Given transposed=1, weight of size {list(weight.shape)}, expected bias to be 1-dimensional with "
            f"{out_channels} elements, but got bias of size {list(bias.shape)} instead"
        )
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    padding, output_padding = _pair(padding, "padding"), _pair(output_padding, "output_padding")
    if any(v <= 0 for v in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(v < 0 for v in padding):
        raise RuntimeError("negative padding is not supported")
    _check_dilation(
        dilation,
        lambda: (
            f"dilation should be greater than zero, but got dilation_height: {dilation[0]}, dilation_width: "
            f"{dilation[1]}"
        ),
    )
    if out_channels == 0:  # (PyTorch's words: its 1-D form is a 2-D one of height 1)
        raise RuntimeError(f"non-empty 2D or 4D weight tensor expected, but got: {list(weight.shape)}")
    if any(o >= s and o >= d for o, s, d in zip(output_padding, stride, dilation)) or any(
        o < 0 for o in output_padding
    ):
        raise RuntimeError(
            "output padding must be smaller than either stride or dilation, but got output_padding_height: "
            f"{output_padding[0]} output_padding_width: {output_padding[1]} stride_height: {stride[0]} "
            f"stride_width: {stride[1]} dilation_height: {dilation[0]} dilation_width: {dilation[1]}"
        )
    out = tuple(
        (e - 1) * s - 2 * p + d * (k - 1) + o + 1
        for e, s, p, d, k, o in zip((height, width), stride, padding, dilation, (kh, kw), output_padding)
    )
    if out[0] < 1 or out[1] < 1:
        raise RuntimeError(
            f"Given input size per channel: ({height} x {width}). Calculated output size per channel: "
            f"({out[0]} x {out[1]}). Output size is too small"
        )
    table, reads_padding = _transposed_windows(channels, height, width, (kh, kw), stride, padding, dilation, out)
    columns = _gather_windows(x, table, reads_padding, 0.0)  # (C_in*kh*kw, L, N)
    per_group = in_channels // groups
    weights = weight.reshape(groups, per_group, group_out, kh * kw).permute(0, 2, 1, 3)
    result = _product(weights.reshape(groups, group_out, per_group * kh * kw), columns, out, bias)
    return result.squeeze(0) if unbatched else result


def _same_dtypes(x: Tensor, weight: Tensor, bias: Tensor | None, groups) -> None:
    """PyTorch's errors (CPU) for a bias, then a weight, of another dtype than the input. The
    weight's depends on the backend PyTorch picks (``use_mkldnn`` in its Convolution.cpp): oneDNN's
    for a float32 input of a batch, grouped, large, or with kernels above 3x3 (taking its
    clause about one thread and 1x1 kernels as met: PyTorch's default threads on more than one
    core); the native kernels' otherwise."""
    if bias is not None and bias.dtype != x.dtype:
        raise RuntimeError(f"Input type ({x.dtype.c_name}) and bias type ({bias.dtype.c_name}) should be the same")
    if x.dtype == weight.dtype:
        return
    kernel = tuple(weight.shape[2:])
    kh, kw = (1, *kernel)[-2:]
    grouped = isinstance(groups, int) and groups > 1
    if x._data.dtype == np.float32 and (grouped or (kh > 3 and kw > 3) or x.shape[0] > 1 or x.numel() > 20480):
        raise RuntimeError(
            f"Input type ({x.type()}) and weight type ({weight.type()}) should be the same or input should be a "
            "MKLDNN tensor and weight is a dense tensor"
        )
    _native_dtype_error(x, weight)


def _native_dtype_error(x: Tensor, weight: Tensor):
    """PyTorch's native convolution kernels' error for a weight of another dtype than the input."""
    raise RuntimeError(f"expected scalar type {x.dtype.type_name} but found {weight.dtype.type_name}")


def _check_weight_extent(weight: Tensor, groups: int) -> None:
    """PyTorch's check that a weight has a filter per group (a weight of 0 filters gave an empty
    result; of fewer than ``groups``, a message about channels)."""
    if weight.shape[0] < groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be at least {groups} at dimension 0, but got weight of size "
            f"{list(weight.shape)} instead"
        )


def _check_dilation(dilation: tuple, zero_message) -> None:
    """PyTorch's two checks of a convolution's dilation: a negative one in general words, then a
    zero one (which convolved as dilation 0: every tap on one pixel) in the kernel's words."""
    if any(d < 0 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    if any(d == 0 for d in dilation):
        raise RuntimeError(zero_message())


def _checked_convolution(x: Tensor, weight: Tensor, bias: Tensor | None, groups, stride) -> int:
    """PyTorch's checks of a (non-transposed) convolution's operands, in its words, with the
    shapes as given (a ``conv1d``'s 1-D ones); returns ``groups`` as an int."""
    dims = x.dim() - 2
    if weight.dim() != dims + 2:
        if weight.dim() < 3:
            raise RuntimeError("weight should have at least three dimensions")
        if weight.dim() == x.dim() + 1:
            raise RuntimeError(
                f"Expected {weight.dim()}-dimensional input for {weight.dim()}-dimensional weight "
                f"{list(weight.shape)}, but got {x.dim()}-dimensional input of size {list(x.shape)} instead"
            )
        raise RuntimeError(
            f"expected stride to be a single integer value or a list of {weight.dim() - 2} values to match the "
            f"convolution dimensions, but got stride={list(_pair(stride, 'stride', dims))}"
        )
    _same_dtypes(x, weight, bias, groups)
    channels, out_channels, group_channels = x.shape[1], weight.shape[0], weight.shape[1]
    groups = int(groups)
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    _check_weight_extent(weight, groups)
    if out_channels % groups:
        raise RuntimeError(
            f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but got weight of "
            f"size {list(weight.shape)} instead"
        )
    if channels != group_channels * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected input{list(x.shape)} to have "
            f"{group_channels * groups} channels, but got {channels} channels instead"
        )
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise RuntimeError(
            f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional with {out_channels} "
            f"elements, but got bias of size {list(bias.shape)} instead"
        )
    return groups


def conv1d(
    input: Tensor,  # noqa: A002 - PyTorch's names
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> Tensor:
    """1-D cross-correlation, as ``torch.nn.functional.conv1d``: ``input`` (N, C_in, L) or
    (C_in, L), ``weight`` (C_out, C_in / groups, k); returns (N, C_out, L_out). ``conv2d`` on a
    height of one; raises as it does."""
    x, unbatched = _batched(input, 1, "conv1d")
    _checked_convolution(x, weight, bias, groups, stride)  # in 1-D words, before conv2d's
    if not isinstance(padding, str):
        length, kernel = x.shape[2] + 2 * _pair(padding, "padding", 1)[0], weight.shape[2]
        span = _pair(dilation, "dilation", 1)[0] * (kernel - 1) + 1
        if 0 < span and length < span:
            raise RuntimeError(
                f"Calculated padded input size per channel: ({length}). Kernel size: ({span}). Kernel size can't be "
                "greater than actual input size"
            )
    padding = padding if isinstance(padding, str) else (0, _pair(padding, "padding", 1)[0])
    result = conv2d(
        x.unsqueeze(2), weight.unsqueeze(2), bias, (1, _pair(stride, "stride", 1)[0]), padding,
        (1, _pair(dilation, "dilation", 1)[0]), groups,
    ).squeeze(2)  # fmt: skip
    name_node(result, "ConvolutionBackward0")
    return result.squeeze(0) if unbatched else result


def _pooled(input: Tensor, what: str) -> tuple:  # noqa: A002
    if input.dim() not in (3, 4) or 0 in tuple(input.shape)[input.dim() - 3 :]:  # an empty batch is fine
        if what != "adaptive_avg_pool2d":
            raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
        if input.dim() not in (3, 4):
            raise RuntimeError(f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {list(input.shape)}")
        shape = list(input.shape)
        empty = next(dim for dim in range(input.dim() - 3, input.dim()) if shape[dim] == 0)
        raise RuntimeError(
            "adaptive_avg_pool2d(): Expected input to have non-zero size for non-batch dimensions, but input has "
            f"sizes {shape} with dimension {empty} being empty"
        )
    x = input if input.dim() == 4 else input.unsqueeze(0)
    n, channels, height, width = x.shape
    return x.reshape(n * channels, 1, height, width), input.dim() == 3, (n, channels, height, width)


def _pool_geometry(shape: tuple, kernel_size, stride, padding, dilation, ceil_mode: bool) -> tuple:
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _pair(stride, "stride")
    padding, dilation = _pair(padding, "padding"), _pair(dilation, "dilation")
    if any(s == 0 for s in stride):
        raise RuntimeError("stride should not be zero")
    if any(k <= 0 for k in kernel):  # (a negative kernel, taken as the stride, was named the stride)
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kernel[0]} kW: {kernel[1]}")
    if any(s < 0 for s in stride):
        raise RuntimeError("stride should be greater than zero")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(
            f"dilation should be greater than zero, but got dilationH: {dilation[0]} dilationW: {dilation[1]}"
        )
    for p, k, d in zip(padding, kernel, dilation):
        if p < 0 or p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(
                f"pad should be at most half of effective kernel size, but got pad={p}, kernel_size={k} and "
                f"dilation={d}"
            )
    if any(p > k // 2 for p, k in zip(padding, kernel)):  # PyTorch's second check: of the kernel itself
        raise RuntimeError(
            f"pad should be smaller than or equal to half of kernel size, but got padW = {padding[1]}, padH = "
            f"{padding[0]}, kW = {kernel[1]}, kH = {kernel[0]}"
        )
    n, channels, height, width = shape
    out = tuple(
        _output_size(e, k, s, 2 * p, d, ceil_mode)
        for e, k, s, p, d in zip((height, width), kernel, stride, padding, dilation)
    )
    if out[0] < 1 or out[1] < 1:
        raise RuntimeError(
            f"Given input size: ({channels}x{height}x{width}). Calculated output size: "
            f"({channels}x{out[0]}x{out[1]}). Output size is too small"
        )
    return kernel, stride, padding, dilation, out


def _unpooled(values: Tensor, shape: tuple, out: tuple, unbatched: bool) -> Tensor:
    """(L, N*C) window results -> (N, C, out_h, out_w), or (C, ...) unbatched."""
    n, channels = shape[:2]
    result = values.t().contiguous().reshape(n, channels, *out)  # (contiguous, as PyTorch's)
    return result.squeeze(0) if unbatched else result


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,  # noqa: A002
               return_indices: bool = False):  # fmt: skip
    """The largest value of each window, as ``torch.nn.functional.max_pool2d``.

    ``input`` (N, C, H, W) or (C, H, W); ``kernel_size``, ``stride`` (default ``kernel_size``),
    ``padding`` (implicit -inf, at most half the kernel), ``dilation``: ints or pairs. Returns
    (N, C, H_out, W_out), and with ``return_indices`` also each maximum's flat position in its
    channel's H*W plane (int64). The gradient goes to the first maximum of each window
    (``MaxPool2DWithIndicesBackward0``). Raises ``RuntimeError`` with PyTorch's messages."""
    x, unbatched, shape = _pooled(input, "max_pool2d")
    kernel, stride, padding, dilation, out = _pool_geometry(shape, kernel_size, stride, padding, dilation, ceil_mode)
    plane = None
    if active_recording() is None:
        # Eager: the maxima's positions are found now, and the result is one gather of them,
        # whose gradient goes to those positions, as PyTorch's does. (Recorded, positions found
        # now would be constants of the tape, wrong at other inputs: the window gather below.)
        plane = _max_positions(x._data.reshape(-1, shape[2], shape[3]), kernel, stride, padding, dilation, out)
    if plane is not None:
        planes = np.arange(plane.shape[0]).reshape(-1, 1, 1) * (shape[2] * shape[3])
        values = pick("gather", input, (planes + plane).reshape(shape[:2] + out))
        result = name_node(values.squeeze(0) if unbatched else values, "MaxPool2DWithIndicesBackward0")
        if not return_indices:
            return result
        indices = plane.reshape(shape[:2] + out)
        return result, _wrap(indices[0] if unbatched else indices)
    table, reads_padding = _max_windows(shape[2], shape[3], kernel, stride, padding, dilation, out)
    values, where = _gather_windows(x, table, reads_padding, -np.inf).max(0)
    result = name_node(_unpooled(values, shape, out, unbatched), "MaxPool2DWithIndicesBackward0")
    if not return_indices:
        return result
    chosen = where.numpy()  # (L, N*C): which window element, each a row of ``table``
    positions = table[chosen, np.arange(chosen.shape[0])[:, None]]
    return result, _unpooled(_wrap(positions.astype(np.int64)), shape, out, unbatched)


@_tables_cache(_TABLE_BYTES)
def _max_windows(height: int, width: int, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple, out: tuple):
    """``_windows`` for a recorded max pooling: in each window (a column), its elements inside
    the input first, in order, then its padding. A window whose values are all -inf then gives
    its gradient to its first element inside, as PyTorch, not to a padding slot (lost)."""
    table, reads_padding = _windows(1, height, width, kernel, stride, padding, dilation, out)
    if reads_padding:
        order = np.argsort(table == height * width, axis=0, kind="stable")
        table = np.take_along_axis(table, order, 0)
        table.setflags(write=False)
    return table, reads_padding


def _max_positions(planes: np.ndarray, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple, out: tuple):
    """Each window's maximum as PyTorch's kernel picks it (``_kernels.pooling``), as a flat
    position ``y * W + x`` in its plane: (P, out_h, out_w) int64, from ``planes`` (P, H, W);
    None for a window of padding alone (left to the window gather)."""
    from .._kernels import families, pooling  # numba: imported on first use

    families.announce(pooling.max_positions, "max-pooling kernel")
    if planes.dtype.kind != "f":
        planes = planes.astype(np.float64)
    positions = np.empty((planes.shape[0],) + tuple(out), np.int64)
    arguments = [np.asarray(v, np.int64) for v in (kernel, stride, padding, dilation, out)]
    found = pooling.max_positions(np.ascontiguousarray(planes), *arguments, positions)
    return positions if found else None


def _divisors(shape: tuple, kernel: tuple, stride: tuple, padding: tuple, out: tuple, count_include_pad: bool,
              divisor_override) -> np.ndarray:  # fmt: skip
    """Each output position's divisor, (L, 1), by PyTorch's rule: the window clipped to the
    padded input, or to the input itself without ``count_include_pad``."""
    if divisor_override is not None:
        return np.full((out[0] * out[1], 1), float(divisor_override))
    sizes = []
    for extent, k, s, p, o in zip(shape[2:], kernel, stride, padding, out):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, extent + p)
        size = end - start
        if not count_include_pad:
            size = np.minimum(end, extent) - np.maximum(start, 0)
        sizes.append(size)
    return (sizes[0][:, None] * sizes[1][None, :]).reshape(-1, 1).astype(np.float64)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,  # noqa: A002
               count_include_pad: bool = True, divisor_override=None) -> Tensor:  # fmt: skip
    """The mean of each window, as ``torch.nn.functional.avg_pool2d``: ``input`` (N, C, H, W) or
    (C, H, W) -> (N, C, H_out, W_out); implicit zero ``padding`` (at most half the kernel),
    counted in the divisor unless ``count_include_pad=False``; ``divisor_override`` replaces the
    divisor (``AvgPool2DBackward0``). Raises ``RuntimeError`` with PyTorch's messages."""
    x, unbatched, shape = _pooled(input, "avg_pool2d")
    kernel, stride, padding, _, out = _pool_geometry(shape, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    table, reads_padding = _windows(1, shape[2], shape[3], kernel, stride, padding, (1, 1), out)
    divisors = _divisors(shape, kernel, stride, padding, out, count_include_pad, divisor_override)
    sums = _gather_windows(x, table, reads_padding, 0.0).sum(0)
    if x._data.dtype.kind != "f":  # integers: the sum divided in integers, as PyTorch (toward 0)
        quotient = np.trunc(sums._data / divisors)
        return _unpooled(_wrap(quotient.astype(x._data.dtype)), shape, out, unbatched)
    scale = _wrap((1.0 / divisors).astype(x._data.dtype))
    return name_node(_unpooled(sums * scale, shape, out, unbatched), "AvgPool2DBackward0")


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:  # noqa: A002
    """The mean over windows that tile the input into ``output_size`` (an int or a pair; None
    keeps that dimension), as ``torch.nn.functional.adaptive_avg_pool2d``: window ``i`` of an
    extent ``E`` into ``O`` spans ``[floor(i*E/O), ceil((i+1)*E/O))``. ``input`` (N, C, H, W) or
    (C, H, W) -> (N, C, *output_size) (``AdaptiveAvgPool2DBackward0``)."""
    floating_kernel(input, "adaptive_avg_pool2d")
    x, unbatched, shape = _pooled(input, "adaptive_avg_pool2d")
    sizes = (output_size, output_size) if isinstance(output_size, (int, np.integer)) else tuple(output_size)
    if len(sizes) != 2:
        raise RuntimeError("adaptive_avg_pool2d: output_size must be 2")
    out = tuple(int(e if s is None else s) for s, e in zip(sizes, shape[2:]))
    if any(o < 0 for o in out):
        raise RuntimeError(
            f"adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but received {list(out)}"
        )
    if 0 in out:  # an empty result, on the graph
        empty = input.reshape(-1)[:0]
        return empty.reshape(*(tuple(input.shape)[:-2] + out))
    if out == (1, 1):  # a mean, as PyTorch computes it (MeanBackward1)
        return input.mean((-2, -1), keepdim=True)
    table, counts = _adaptive_windows(shape[2], shape[3], out)
    sums = _gather_windows(x, table, bool((table == shape[2] * shape[3]).any()), 0.0).sum(0)
    scale = _wrap((1.0 / counts).astype(x._data.dtype))
    return name_node(_unpooled(sums * scale, shape, out, unbatched), "AdaptiveAvgPool2DBackward0")


@functools.lru_cache(maxsize=64)
def _adaptive_windows(height: int, width: int, out: tuple) -> tuple:
    """Windows of unequal sizes as one table: each padded to the largest with the padding row
    (``height * width``, zero); and each window's element count, (L, 1)."""
    spans = []
    for extent, o in zip((height, width), out):
        start = (np.arange(o) * extent) // o
        end = -((-(np.arange(1, o + 1) * extent)) // o)
        spans.append((start, end - start))
    (ys, yn), (xs, xn) = spans
    ky, kx = int(yn.max()), int(xn.max())
    y = ys.reshape(1, 1, -1, 1) + np.arange(ky).reshape(-1, 1, 1, 1)
    x = xs.reshape(1, 1, 1, -1) + np.arange(kx).reshape(1, -1, 1, 1)
    inside = (np.arange(ky).reshape(-1, 1, 1, 1) < yn.reshape(1, 1, -1, 1)) & (
        np.arange(kx).reshape(1, -1, 1, 1) < xn.reshape(1, 1, 1, -1)
    )
    table = np.where(inside, y * width + x, height * width).reshape(ky * kx, out[0] * out[1]).astype(np.int64)
    counts = (yn[:, None] * xn[None, :]).reshape(-1, 1).astype(np.float64)
    table.setflags(write=False)
    return table, counts


# -- unfold and fold: the windows themselves (im2col) and their adjoint ----------------------


def _block_geometry(kernel_size, dilation, padding, stride) -> tuple:
    """``(kernel, dilation, padding, stride)`` as pairs, checked as PyTorch's im2col checks them,
    in its order and words (a zero kernel gave empty blocks, a zero stride ZeroDivisionError)."""
    geometry = tuple(_pair(value, name) for value, name in (
        (kernel_size, "kernel_size"), (dilation, "dilation"), (padding, "padding"), (stride, "stride")))  # fmt: skip
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = geometry
    if kh <= 0 or kw <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kernel_height: {kh} kernel_width: {kw}")
    if dh <= 0 or dw <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilation_height: {dh} dilation_width: {dw}")
    if ph < 0 or pw < 0:
        raise RuntimeError(f"padding should be non-negative, but got pad_height: {ph} pad_width: {pw}")
    if sh <= 0 or sw <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got stride_height: {sh} stride_width: {sw}")
    return geometry


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:  # noqa: A002
    """The sliding blocks of ``input`` (N, C, H, W) or unbatched (C, H, W) as columns: (N, C *
    kh * kw, L), L the number of block positions, zeros where a block covers the padding. The
    windows a convolution reads, differentiable (the gradient adds each block back where it
    came from). Follows ``torch.nn.functional.unfold`` (``Im2ColBackward0``)."""
    if input.dim() < 3:  # (PyTorch reads one dimension past the last: an index error, in its words)
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-input.dim()}, {input.dim() - 1}], but got {input.dim()})"
        )
    if input.dim() != 4 and input.dim() != 3:
        raise RuntimeError(
            "Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero dimensions for "
            f"input, but got: {list(input.shape)}"
        )
    x = input if input.dim() == 4 else input.unsqueeze(0)
    (kh, kw), dilation, padding, stride = _block_geometry(kernel_size, dilation, padding, stride)
    n, channels, height, width = x.shape
    out = tuple(
        _output_size(e, k, s, 2 * p, d) for e, k, s, p, d in zip((height, width), (kh, kw), stride, padding, dilation)
    )
    if any(o <= 0 for o in out):
        raise RuntimeError(
            f"Given input with spatial size ({height}, {width}), kernel_size=({kh}, {kw}), dilation={dilation}, "
            f"padding={padding}, calculated shape of the array of sliding blocks as {out}, but its components "
            "must be at least one."
        )
    table, reads_padding = _windows(channels, height, width, (kh, kw), stride, padding, dilation, out)
    columns = _gather_windows(x, table, reads_padding, 0.0).permute(2, 0, 1)  # (N, C*kh*kw, L)
    result = name_node(columns.contiguous(), "Im2ColBackward0")
    return result if input.dim() == 4 else result.squeeze(0)


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:  # noqa: A002
    """The adjoint of ``unfold``: columns (N, C * kh * kw, L) or unbatched (C * kh * kw, L)
    summed back into (N, C, H, W) at their blocks' places (``output_size`` (H, W)), overlaps
    adding up. Follows ``torch.nn.functional.fold`` (``Col2ImBackward0``)."""
    from .._indexing import index_add

    if input.dim() not in (2, 3):
        raise NotImplementedError(
            f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are supported (got {input.dim()}D)"
        )
    columns = input if input.dim() == 3 else input.unsqueeze(0)
    (kh, kw), dilation, padding, stride = _block_geometry(kernel_size, dilation, padding, stride)
    height, width = _pair(output_size, "output_size")
    n, depth, positions = columns.shape
    if depth % (kh * kw):
        raise RuntimeError(
            f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, but got "
            f"input.size(1)={depth} and kernel_size=({kh}, {kw})."
        )
    out = tuple(
        _output_size(e, k, s, 2 * p, d) for e, k, s, p, d in zip((height, width), (kh, kw), stride, padding, dilation)
    )
    if out[0] * out[1] != positions:
        raise RuntimeError(
            f"Given output_size=({height}, {width}), kernel_size=({kh}, {kw}), dilation={dilation}, padding="
            f"{padding}, stride={stride}, expected size of input's dimension 2 to match the calculated number of "
            f"sliding blocks {out[0]} * {out[1]} = {out[0] * out[1]}, but got input.size(2)={positions}."
        )
    channels = depth // (kh * kw)
    table, _ = _windows(channels, height, width, (kh, kw), stride, padding, dilation, out)
    # each column element added into its place (the padding's row, the last, is dropped after)
    rows = columns.permute(1, 2, 0).reshape(depth * positions, n)
    zeros = _wrap(np.zeros((channels * height * width + 1, n), columns._data.dtype))
    summed = index_add(zeros, 0, _wrap(table.reshape(-1)), rows)[: channels * height * width]
    result = name_node(summed.reshape(channels, height, width, n).permute(3, 0, 1, 2).contiguous(), "Col2ImBackward0")
    return result if input.dim() == 3 else result.squeeze(0)
