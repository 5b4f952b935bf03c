"""More of ``torch.nn.functional``, made of what tapegrad already records: the 1-d pools and
transposed convolution as their 2-d forms over a height of 1, adaptive max pooling, resampling
(``interpolate``: nearest and linear, by index selection and weights), pixel shuffles, the
shrinking and thresholding activations, ``prelu``, ``bilinear``, and the Poisson, Gaussian and
margin losses. Each differentiates, replays and nests under ``create_graph`` as its parts do.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import return_types
from .._grad_mode import refuses_gradient
from .._indexing import index_select
from .._record import name_node
from .._selection import where
from .._views import cat, stack
from ..tensor import Tensor, _wrap, as_tensor, floating_kernel, guard_reads, holds
from . import _convolution
from ._losses import _legacy_reduction, _same_dtype_weight
from ._pointwise import logsigmoid


def _single(value, name: str) -> int:
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise RuntimeError(f"{name} must be an int or a tuple of one int")
        return int(value[0])
    return int(value)


def _as_2d(input: Tensor, what: str) -> Tensor:  # noqa: A002
    if input.dim() not in (2, 3):
        raise RuntimeError(f"{what}: Expected 2D or 3D (batch mode) tensor, but got input of size: {list(input.shape)}")
    return input.unsqueeze(-2)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,  # noqa: A002
               return_indices: bool = False):  # fmt: skip
    """``max_pool2d`` over (N, C, L) or (C, L) as a height of 1; follows
    ``torch.nn.functional.max_pool1d`` (indices: positions along L)."""
    floating_kernel(input, "max_pool1d_impl")
    kernel = _single(kernel_size, "kernel_size")
    step = kernel if stride is None or stride == () else _single(stride, "stride")
    pad, spacing = _single(padding, "padding"), _single(dilation, "dilation")
    if not return_indices and kernel > 0 and step > 0 and spacing > 0 and 0 <= pad <= kernel // 2 and input.dim():
        # PyTorch's 1-d kernel's own message (max_pool2d's names a height of 1)
        length = _convolution._output_size(input.shape[-1], kernel, step, 2 * pad, spacing, ceil_mode)
        if length < 1:
            raise RuntimeError(f"max_pool1d() Invalid computed output size: {length}")
    result = _convolution.max_pool2d(
        _as_2d(input, "max_pool1d"), (1, kernel), (1, step), (0, pad), (1, spacing), ceil_mode, return_indices
    )
    if return_indices:
        values, indices = result
        return values.squeeze(-2), indices.squeeze(-2)
    return result.squeeze(-2)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,  # noqa: A002
               count_include_pad: bool = True) -> Tensor:  # fmt: skip
    """``avg_pool2d`` over (N, C, L) or (C, L) as a height of 1; follows
    ``torch.nn.functional.avg_pool1d``."""
    kernel = _single(kernel_size, "kernel_size")
    step = kernel if stride is None or stride == () else _single(stride, "stride")
    return _convolution.avg_pool2d(
        _as_2d(input, "avg_pool1d"), (1, kernel), (1, step), (0, _single(padding, "padding")), ceil_mode,
        count_include_pad,
    ).squeeze(-2)  # fmt: skip


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:  # noqa: A002
    """``adaptive_avg_pool2d`` over a height of 1; follows ``torch.nn.functional.adaptive_avg_pool1d``."""
    return _convolution.adaptive_avg_pool2d(
        _as_2d(input, "adaptive_avg_pool1d"), (1, _single(output_size, "output_size"))
    ).squeeze(-2)


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):  # noqa: A002
    """The largest value of each of the windows that tile the input into ``output_size`` (as
    ``adaptive_avg_pool2d``'s windows), the gradient to the first largest; with
    ``return_indices``, its flat position in the H*W plane. Follows
    ``torch.nn.functional.adaptive_max_pool2d``."""
    if input.dim() not in (3, 4):
        raise RuntimeError(f"adaptive_max_pool2d(): Expected 3D or 4D tensor, but got {list(input.shape)}")
    shape = tuple(input.shape)
    height, width = shape[-2:]
    for dim in range(input.dim() - 2, input.dim()):
        if shape[dim] == 0:
            raise RuntimeError(
                "adaptive_max_pool2d(): Expected input to have non-zero size for non-batch dimensions, but input has "
                f"sizes {list(shape)} with dimension {dim} being empty"
            )
    sizes = (output_size, output_size) if isinstance(output_size, (int, np.integer)) else tuple(output_size)
    out = tuple(int(e if s is None else s) for s, e in zip(sizes, (height, width)))
    if 0 in out:  # an empty result, on the graph, as PyTorch's (a stack of no windows raised)
        empty = input.reshape(-1)[:0].reshape(*shape[:-2], *out)
        return (empty, _wrap(np.zeros(empty.shape, np.int64))) if return_indices else empty
    windows = []
    for extent, o in zip((height, width), out):
        start = (np.arange(o) * extent) // o
        end = -((-(np.arange(1, o + 1) * extent)) // o)
        windows.append(list(zip(start.tolist(), end.tolist())))
    values, positions = [], []
    # PyTorch's kernel takes a NaN over anything and a later NaN over an earlier one (the last
    # NaN of a window, where max(-1) gives the first); ties of numbers go to the first as here.
    some_nan = not holds("adaptive_max_pool2d()'s NaN check", input, lambda v: v == v)
    for y0, y1 in windows[0]:
        row_values, row_positions = [], []
        for x0, x1 in windows[1]:
            window = input[..., y0:y1, x0:x1].flatten(-2)
            best = window.max(-1)
            if some_nan and not holds("adaptive_max_pool2d()'s NaN check", window, lambda v: v == v):
                last = window.flip(-1).max(-1)  # (for each row of the batch whose window has one)
                has_nan = window.isnan().any(-1)
                extent = window.shape[-1]
                best = return_types.max(
                    where(has_nan, last.values, best.values), where(has_nan, extent - 1 - last.indices, best.indices)
                )
            row_values.append(best.values)
            if return_indices:  # positions read in numpy: a replay must not reuse them
                guard_reads("adaptive_max_pool2d()", best.indices)
            local = best.indices._data
            row_positions.append((y0 + local // (x1 - x0)) * width + x0 + local % (x1 - x0))
        values.append(stack(row_values, -1))
        positions.append(np.stack(row_positions, -1))
    result = name_node(stack(values, -2), "AdaptiveMaxPool2DBackward0")
    if return_indices:
        return result, _wrap(np.stack(positions, -2).astype(np.int64))
    return result


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False):  # noqa: A002
    """``adaptive_max_pool2d`` over a height of 1; follows ``torch.nn.functional.adaptive_max_pool1d``."""
    result = adaptive_max_pool2d(
        _as_2d(input, "adaptive_max_pool1d"), (1, _single(output_size, "output_size")), return_indices
    )
    if return_indices:
        return result[0].squeeze(-2), result[1].squeeze(-2)
    return result.squeeze(-2)


def conv_transpose1d(input: Tensor, weight: Tensor, bias=None, stride=1, padding=0, output_padding=0,  # noqa: A002
                     groups: int = 1, dilation=1) -> Tensor:  # fmt: skip
    """``conv_transpose2d`` over a height of 1: ``input`` (N, C_in, L) or (C_in, L), ``weight``
    (C_in, C_out / groups, k); follows ``torch.nn.functional.conv_transpose1d``."""
    result = _convolution.conv_transpose2d(
        _as_2d(input, "conv_transpose1d"), weight.unsqueeze(-2), bias, (1, _single(stride, "stride")),
        (0, _single(padding, "padding")), (0, _single(output_padding, "output_padding")), groups,
        (1, _single(dilation, "dilation")),
    ).squeeze(-2)  # fmt: skip
    # PyTorch's node for a batch (an unbatched input's is the squeeze of its batch dimension)
    return name_node(result, "ConvolutionBackward0") if input.dim() == 3 else result


# -- resampling ----------------------------------------------------------------------------


def _source_positions(extent: int, size: int, scale, mode: str, align_corners, spatial: int, dtype) -> tuple:
    """For one dimension (of ``spatial``): the source indices (and for linear modes the second
    index and its weight) of each output position, as PyTorch's upsampling kernels compute them
    for an input of ``dtype``."""
    outputs = np.arange(size, dtype=np.float64)
    if mode in ("nearest", "nearest-exact"):
        # Only PyTorch's 2-D nearest kernel copies a dimension that keeps its length and takes
        # i >> 1 for an exact doubling; its 1-D and 3-D ones, and nearest-exact, compute every
        # index from the scale (scale_factor 1.3 of 3 elements: [0, 0, 1], not a copy).
        if mode == "nearest" and spatial == 2 and size == extent:
            return np.arange(size), None, None
        if mode == "nearest" and spatial == 2 and size == 2 * extent:
            return np.arange(size) >> 1, None, None
        # In the input's floating dtype (float32 for others), as PyTorch's forward computes the
        # source index: in float32 for float64, 1 of 152 outputs of 54 elements took its
        # neighbour. (PyTorch's backward computes them in float32 whatever the dtype, so its
        # float64 gradient can route through other elements than its forward read; tapegrad's
        # follows its forward.)
        real = np.float64 if dtype == np.float64 else np.float32
        ratio = real(1.0 / scale) if scale else real(extent / size)
        shifted = outputs.astype(real) + real(0.5) if mode == "nearest-exact" else outputs.astype(real)
        index = np.minimum(np.floor(shifted * ratio).astype(np.int64), extent - 1)
        return index, None, None
    if size == extent:  # PyTorch's linear kernels copy a dimension that keeps its length
        return np.arange(size), None, None
    if align_corners:
        ratio = (extent - 1) / (size - 1) if size > 1 else 0.0
        source = outputs * ratio
    else:
        ratio = (1.0 / scale) if scale else extent / size
        source = np.maximum((outputs + 0.5) * ratio - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), extent - 1)
    high = np.minimum(low + 1, extent - 1)
    return low, high, source - low


# PyTorch's modes, in its error's order (``bicubic``, ``lanczos`` and ``area`` are not here yet)
_INTERPOLATION_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "lanczos", "area", "nearest-exact")


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,  # noqa: A002
                recompute_scale_factor=None, antialias: bool = False) -> Tensor:  # fmt: skip
    """``input`` (N, C, *spatial, 1 to 3 dimensions) resampled to ``size`` or by
    ``scale_factor``: ``"nearest"``, ``"nearest-exact"``, ``"linear"``, ``"bilinear"``,
    ``"trilinear"`` (separable, one dimension at a time: index selections and their weighted
    sum, so the gradient adds each output into its sources). Follows
    ``torch.nn.functional.interpolate``; raises ``ValueError``/``NotImplementedError`` as
    PyTorch does for a missing or doubled size, ``align_corners`` with a nearest mode, or
    another mode (``bicubic``, ``area``)."""
    if antialias:
        raise NotImplementedError("interpolate with antialias=True is not supported yet")
    spatial = input.dim() - 2
    if spatial < 1 or spatial > 3 or mode not in _INTERPOLATION_MODES:
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.dim()}D) for the modes: "
            f"{' | '.join(_INTERPOLATION_MODES)} (got {mode})"
        )
    linear = {"linear": 1, "bilinear": 2, "trilinear": 3}
    if mode not in ("nearest", "nearest-exact", *linear):
        raise NotImplementedError(f"interpolate with mode {mode!r} is not supported yet")
    if mode in linear and linear[mode] != spatial:
        raise NotImplementedError(f"Got {input.dim()}D input, but {mode} mode needs {linear[mode] + 2}D input")
    if mode in linear and input._data.dtype.kind != "f":
        # (weights in an integer dtype were 0: every output its lower source, silently)
        if mode == "bilinear" and input._data.dtype == np.uint8:  # PyTorch's rounded fixed-point kernel
            raise NotImplementedError(
                "interpolate of a uint8 tensor in bilinear mode is not supported yet: convert it to float"
            )
        kernel = "upsample_bilinear2d_channels_last" if mode == "bilinear" else "compute_indices_weights_linear"
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{input.dtype.type_name}'")
    if mode in ("nearest", "nearest-exact") and input._data.dtype.kind != "f" and input._data.dtype != np.uint8:
        raise NotImplementedError(f"\"compute_indices_weights_nearest\" not implemented for '{input.dtype.type_name}'")
    if align_corners is not None and mode not in linear:
        raise ValueError(
            "align_corners option can only be set with the interpolating modes: linear | bilinear | bicubic | trilinear"
        )
    if size is None and scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    extents = tuple(input.shape[2:])
    given = size if size is not None else scale_factor
    if isinstance(given, (tuple, list)) and len(given) != spatial:
        what, shown = ("output", "output size of") if size is not None else ("scale_factor", "scale_factor of shape")
        letter = "o" if size is not None else "s"
        raise ValueError(
            f"Input and {what} must have the same number of spatial dimensions, but got input with spatial dimensions "
            f"of {list(extents)} and {shown} {tuple(given)}. Please provide input tensor in (N, C, d1, d2, ...,dK) "
            f"format and {'output size' if size is not None else 'scale_factor'} in ({letter}1, {letter}2, "
            f"...,{letter}K) format."
        )
    if size is not None:
        sizes = (size,) * spatial if isinstance(size, int) else tuple(size)
        scales = (None,) * spatial
    else:
        scales = (
            (float(scale_factor),) * spatial
            if not isinstance(scale_factor, (tuple, list))
            else tuple(float(s) for s in scale_factor)
        )
        sizes = tuple(int(math.floor(e * s)) for e, s in zip(extents, scales))
        if recompute_scale_factor:
            scales = (None,) * spatial
    if min(extents) <= 0 or min(sizes) <= 0:  # (an empty result, or a ZeroDivisionError, here)
        names = ("D", "H", "W")[3 - spatial :]

        def shown(values):
            return ", ".join(f"{name}: {value}" for name, value in zip(names, values))

        joint = " and" if spatial == 1 else ""  # (PyTorch's 1-d message has it; the others not)
        raise RuntimeError(
            f"Input and output sizes should be greater than 0, but got input ({shown(extents)}){joint} output "
            f"({shown(sizes)})"
        )
    resampled = [*input.shape[:2], *sizes]
    if math.prod(resampled) * input._data.itemsize >= 2**63:  # (resampled a dimension at a time,
        # the first step alone allocated tens of GB before anything failed)
        raise RuntimeError(f"Storage size calculation overflowed with sizes={resampled}")
    out = input
    for offset, (extent, target, scale) in enumerate(zip(extents, sizes, scales)):
        dim = 2 + offset
        low, high, weight = _source_positions(
            extent, target, scale, mode, bool(align_corners), spatial, input._data.dtype
        )
        picked = index_select(out, dim, _wrap(low))
        if high is None:
            out = picked
            continue
        shape = [1] * out.dim()
        shape[dim] = target
        fraction = _wrap(weight.astype(input._data.dtype).reshape(shape))
        out = picked + (index_select(out, dim, _wrap(high)) - picked) * fraction
    return out


def upsample(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners=None) -> Tensor:  # noqa: A002
    """``interpolate`` under its older name, with PyTorch's deprecation warning; follows
    ``torch.nn.functional.upsample``."""
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Tensor, size=None, scale_factor=None) -> Tensor:  # noqa: A002
    """``interpolate(mode="nearest")``, deprecated as in PyTorch; follows
    ``torch.nn.functional.upsample_nearest``."""
    warnings.warn(
        "`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.", stacklevel=2
    )
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Tensor, size=None, scale_factor=None) -> Tensor:  # noqa: A002
    """``interpolate(mode="bilinear", align_corners=True)``, deprecated as in PyTorch; follows
    ``torch.nn.functional.upsample_bilinear``."""
    warnings.warn(
        "`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.", stacklevel=2
    )
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:  # noqa: A002
    """Each element divided by ``(k + alpha * mean of the squares over a window of ``size``
    channels around it) ** beta``, the window zero-padded at the ends as PyTorch pads it;
    ``input`` (N, C, ...) of at least 3 dimensions, same shape out. Follows
    ``torch.nn.functional.local_response_norm`` (composed as PyTorch's is: ``DivBackward0``).
    Raises ``ValueError`` for fewer dimensions, with PyTorch's message."""
    dim = input.dim()
    if dim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality                          input (got {dim} dimensions)")
    if size <= 0:  # (PyTorch pools the squares over (size, 1) or (size, 1, 1): its pooling's words)
        sizes = f"kH: {size} kW: 1" if dim == 3 else f"kT: {size} kH: 1 kW: 1"
        raise RuntimeError(f"kernel size should be greater than zero, but got {sizes}")
    if input.numel() == 0:
        return input
    channels = input.shape[1]
    squares = (input * input).movedim(1, -1)
    shape = tuple(squares.shape[:-1])
    before = _wrap(np.zeros((*shape, size // 2), squares._data.dtype))
    after = _wrap(np.zeros((*shape, (size - 1) // 2), squares._data.dtype))
    padded = cat([before, squares, after], -1)  # zeros at both ends of the channels, now last
    window = padded[..., 0:channels]
    for offset in range(1, size):
        window = window + padded[..., offset : offset + channels]
    scale = (window.movedim(-1, 1) * (alpha / size) + k) ** beta
    return input / scale


def _at_least_3d(name: str, input: Tensor) -> None:  # noqa: A002
    if input.dim() < 3:
        raise RuntimeError(
            f"{name} expects input to have at least 3 dimensions, but got input with {input.dim()} dimension(s)"
        )


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:  # noqa: A002
    """(*, C r^2, H, W) -> (*, C, H r, W r); follows ``torch.nn.functional.pixel_shuffle``."""
    r = int(upscale_factor)
    if r <= 0:  # (0 divided by zero; a negative factor reshaped to a negative size)
        raise RuntimeError(f"pixel_shuffle expects a positive upscale_factor, but got {r}")
    _at_least_3d("pixel_shuffle", input)
    *batch, channels, height, width = input.shape
    if channels % (r * r):
        raise RuntimeError(
            f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of upscale_factor, "
            f"but input.size(-3)={channels} is not divisible by {r * r}"
        )
    c = channels // (r * r)
    n = len(batch)
    x = input.reshape(*batch, c, r, r, height, width)
    order = [*range(n), n, n + 3, n + 1, n + 4, n + 2]
    out = x.permute(*order).reshape(*batch, c, height * r, width * r)
    return name_node(out.clone() if r == 1 else out, "PixelShuffleBackward0")  # (a factor of 1: a copy, as PyTorch's)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:  # noqa: A002
    """(*, C, H r, W r) -> (*, C r^2, H, W), the inverse of ``pixel_shuffle``; follows
    ``torch.nn.functional.pixel_unshuffle``."""
    r = int(downscale_factor)
    if r <= 0:
        raise RuntimeError(f"pixel_unshuffle expects a positive downscale_factor, but got {r}")
    _at_least_3d("pixel_unshuffle", input)
    *batch, channels, height, width = input.shape
    for name, extent, dim in (("height", height, -2), ("width", width, -1)):
        if extent % r:
            raise RuntimeError(
                f"pixel_unshuffle expects {name} to be divisible by downscale_factor, but input.size({dim})={extent} is "
                f"not divisible by {r}"
            )
    n = len(batch)
    x = input.reshape(*batch, channels, height // r, r, width // r, r)
    order = [*range(n), n, n + 2, n + 4, n + 1, n + 3]
    out = x.permute(*order).reshape(*batch, channels * r * r, height // r, width // r)
    return name_node(out.clone() if r == 1 else out, "PixelUnshuffleBackward0")  # (as pixel_shuffle's)


# -- activations ---------------------------------------------------------------------------


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:  # noqa: A002
    """``input`` where it is above ``threshold``, else ``value``; follows
    ``torch.nn.functional.threshold``."""
    # (NaN stays NaN, as PyTorch's ``x <= threshold ? value : x``; an integer input keeps its type)
    value = int(value) if input._data.dtype.kind in "iu" else float(value)
    out = name_node(where(input <= threshold, value, input), "ThresholdBackward0")
    return input.copy_(out) if inplace else out


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:  # noqa: A002
    """``input`` where ``|input| > lambd``, else 0; follows ``torch.nn.functional.hardshrink``.
    At NaN the value stays NaN and the gradient is 0, as PyTorch's vectorized loop gives."""
    floating_kernel(input, "hardshrink_cpu")
    inside, outside = (input >= -lambd) & (input <= lambd), (input > lambd) | (input < -lambd)
    return name_node(where(inside, 0.0, where(outside, input, input.detach())), "HardshrinkBackward0")


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:  # noqa: A002
    """``input`` moved ``lambd`` toward 0, 0 within ``lambd`` of it; follows
    ``torch.nn.functional.softshrink``."""
    floating_kernel(input, "softshrink_check")
    out = where(input > lambd, input - lambd, where(input < -lambd, input + lambd, input * 0.0))  # (NaN stays)
    return name_node(out, "SoftshrinkBackward0")


def tanhshrink(input: Tensor) -> Tensor:  # noqa: A002
    """``input - tanh(input)``; follows ``torch.nn.functional.tanhshrink``."""
    return input - input.tanh()


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,  # noqa: A002
          inplace: bool = False) -> Tensor:  # fmt: skip
    """Leaky ReLU whose negative slope is drawn from U(lower, upper) per element when
    ``training`` (from tapegrad's generator), else their mean; follows
    ``torch.nn.functional.rrelu``."""
    floating_kernel(input, "leaky_relu_cpu")
    if training:
        from .._factories import default_generator

        slopes = default_generator().uniform(lower, upper, tuple(input.shape)).astype(input._data.dtype)
        out = where(input > 0, input, input * _wrap(slopes))  # (at 0 the slope, as PyTorch)
    else:
        out = where(input > 0, input, input * ((lower + upper) / 2))
    out = name_node(out, "RreluWithNoiseBackward0")
    return input.copy_(out) if inplace else out


def prelu(input: Tensor, weight: Tensor) -> Tensor:  # noqa: A002
    """``input`` where positive, else ``weight * input``, the weight (one value, or one per
    channel: dimension 1, or 0 for a 1-d input) learned; follows ``torch.nn.functional.prelu``."""
    floating_kernel(input, "prelu_cpu")
    if weight._data.dtype != input._data.dtype:
        raise RuntimeError(
            f"prelu: Type promoting not supported. Got {input.dtype.type_name} and {weight.dtype.type_name}"
        )
    if weight.numel() == 1:
        weight = weight.reshape(())  # (a 0-d input stays 0-d)
    else:
        channels = input.shape[1] if input.dim() > 1 else 1  # (PyTorch's: a 1-D input has one channel)
        if weight.numel() != channels:
            raise RuntimeError(
                f"Mismatch of parameter numbers and input channel size. Found parameter numbers = {weight.numel()} "
                f"and channel size = {channels}."
            )
        shape = [1] * input.dim()
        shape[1 if input.dim() > 1 else 0] = channels
        weight = weight.reshape(*shape)
    # max(0, x) + w min(0, x): the weight's gradient is min(0, x), 0 at +inf (not 0 * inf)
    positive = input > 0
    return name_node(where(positive, input, 0.0) + weight * where(positive, 0.0, input), "PreluKernelBackward0")


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias=None) -> Tensor:
    """``x1^T A x2 + b`` for each output feature: ``input1`` (*, in1), ``input2`` (*, in2),
    ``weight`` (out, in1, in2), ``bias`` (out,); follows ``torch.nn.functional.bilinear``."""
    out_features, in1, in2 = weight.shape
    for dim, (first, second) in enumerate(zip(input1.shape[:-1], input2.shape[:-1])):
        if first != second:  # (a broadcast's message)
            raise RuntimeError(
                f"bilinear(): input batch dimensions do not match at dim {dim}: got {first} and {second}"
            )
    mixed = (input1 @ weight.permute(1, 0, 2).reshape(in1, out_features * in2)).reshape(
        *input1.shape[:-1], out_features, in2
    )
    out = (mixed * input2.unsqueeze(-2)).sum(-1)
    return out + bias if bias is not None else out


# -- losses --------------------------------------------------------------------------------


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"{reduction} is not a valid value for reduction")


def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,  # noqa: A002
                     size_average=None, eps: float = 1e-8, reduce=None, reduction: str = "mean") -> Tensor:  # fmt: skip
    """The negative log-likelihood of ``target`` counts under Poisson rates ``exp(input)``
    (``log_input``) or ``input``; ``full`` adds Stirling's term where the target is above 1.
    Follows ``torch.nn.functional.poisson_nll_loss``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    target = as_tensor(target)
    loss = input.exp() - target * input if log_input else input - target * (input + eps).log()
    if full:
        stirling = target * target.log() - target + 0.5 * (2 * math.pi * target).log()
        loss = loss + where(target > 1, stirling, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input: Tensor, target: Tensor, var, full: bool = False, eps: float = 1e-6,  # noqa: A002
                      reduction: str = "mean") -> Tensor:  # fmt: skip
    """``0.5 (log var + (input - target)^2 / var)`` (plus ``0.5 log 2 pi`` when ``full``), the
    variance clamped below at ``eps`` for the value only (its gradient passes as PyTorch's);
    ``var`` of ``input``'s shape, one fewer dimension, or a last dimension of 1. Follows
    ``torch.nn.functional.gaussian_nll_loss``."""
    scalar = isinstance(var, (int, float))
    var = _wrap(np.full((), var, input._data.dtype)) if scalar else as_tensor(var)
    shape, wanted = tuple(var.shape), tuple(input.shape)
    if shape == wanted:  # (first: for 0-d tensors () is also the shape less its last dimension)
        pass
    elif shape == wanted[:-1]:  # one variance per sample: along the last dimension, broadcast
        var = var.unsqueeze(-1)
    elif not scalar and shape != wanted and not (shape[:-1] == wanted[:-1] and shape[-1:] == (1,)):
        raise ValueError("var is of incorrect size")  # (PyTorch's; the broadcast failed later with another)
    if (var < 0).any():
        raise ValueError("var has negative entry/entries")
    # The clamp without its gradient, as PyTorch's clamp_ under no_grad of a clone: a select, not
    # var + (clamped - var), which made an infinite variance NaN (PyTorch: an infinite loss).
    below = var.detach() < eps
    clamped = where(below, var + (eps - var.detach()), var)
    loss = 0.5 * (clamped.log() + (input - target) ** 2 / clamped)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0, weight=None,  # noqa: A002
                      size_average=None, reduce=None, reduction: str = "mean") -> Tensor:  # fmt: skip
    """The multi-class hinge loss: for each sample, the sum over the other classes of
    ``max(0, margin - x[y] + x[j])**p`` over the number of classes (times ``weight[y]``).
    Follows ``torch.nn.functional.multi_margin_loss``."""
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if refuses_gradient(weight):  # (PyTorch's kernel has no derivative for it)
        raise RuntimeError(
            "The function 'multi_margin_loss' is not differentiable with respect to argument 'weight'. This input "
            "cannot have requires_grad True."
        )
    _same_dtype_weight(None if weight is None else as_tensor(weight), input)
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x = input.unsqueeze(0) if input.dim() == 1 else input
    labels = as_tensor(target).reshape(-1)
    classes = x.shape[1]
    if labels.numel() and not holds("multi_margin_loss()'s target check", labels, lambda v: (v >= 0) & (v < classes)):
        raise RuntimeError("target out of range")  # (the gather's own IndexError, or a class from the end)
    picked = x.gather(1, labels.unsqueeze(1))
    margins = margin - picked + x
    hinge = where(margins > 0, margins, 0.0)  # (at the kink no gradient: PyTorch counts z > 0 only)
    if p == 2:
        hinge = hinge * hinge
    if weight is not None:
        hinge = hinge * as_tensor(weight)[labels].unsqueeze(1)
    other = _wrap((np.arange(classes)[None, :] != labels._data[:, None]).astype(x._data.dtype))
    loss = (hinge * other).sum(1) / float(classes)
    if input.dim() == 1:
        loss = loss.reshape(tuple(as_tensor(target).shape))  # the target's shape: () or (1,)
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight=None, size_average=None, reduce=None,  # noqa: A002
                                reduction: str = "mean") -> Tensor:  # fmt: skip
    """``-mean_c(y log sigmoid(x) + (1 - y) log sigmoid(-x))`` per sample (classes weighted by
    ``weight``); follows ``torch.nn.functional.multilabel_soft_margin_loss``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    target = as_tensor(target)
    if target.dtype != input.dtype and target.dtype.is_floating_point:  # promoted, as PyTorch's
        input = input.to(target.dtype) if target.dtype.itemsize > input.dtype.itemsize else input  # noqa: A001
    target = target.to(input.dtype)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * as_tensor(weight)
    loss = loss.mean(-1) if input.dim() > 1 else loss.mean()
    return _reduce(loss, reduction)
