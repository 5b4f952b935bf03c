"""Spatial transformers' sampling: ``affine_grid`` and ``grid_sample`` (4-D input), made of
recorded ops, so that both differentiate in the input and in the grid (through the bilinear
weights, as PyTorch's ``grid_sampler_2d_backward``), nest under ``create_graph`` and replay.
The corners each output reads are worked out in numpy from the grid's values and guarded
(``tensor.guard_reads``): a replay at another grid fails or records again, never reads the
recording's corners.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._record import name_node
from .._selection import where
from ..tensor import Tensor, _wrap, guard_reads

_ALIGN_WARNING = (
    "Default grid_sample and affine_grid behavior has changed to align_corners=False since 1.3.0. Please specify "
    "align_corners=True if the old behavior is desired. See the documentation of grid_sample for details."
)


def _align(align_corners) -> bool:
    if align_corners is None:
        warnings.warn(_ALIGN_WARNING, UserWarning, stacklevel=3)
        return False
    return bool(align_corners)


def _base_coordinates(extent: int, align_corners: bool, dtype) -> np.ndarray:
    """The normalised coordinates (-1 to 1) of ``extent`` pixel centres (or, aligned, of the
    corner pixels' centres), as PyTorch's ``linspace_from_neg_one``."""
    if extent <= 1:
        return np.zeros(extent, dtype)
    steps = np.linspace(-1.0, 1.0, extent)
    return (steps * (extent - 1) / extent if not align_corners else steps).astype(dtype)


def affine_grid(theta: Tensor, size, align_corners=None) -> Tensor:
    """The sampling grid of a batch of affine maps: ``theta`` (N, 2, 3) for ``size`` (N, C, H,
    W) gives (N, H, W, 2), each output pixel's normalised (x, y) source in the input; (N, 3, 4)
    for (N, C, D, H, W) gives (N, D, H, W, 3). Floating-point ``theta``, its dtype kept.
    Follows ``torch.nn.functional.affine_grid``: ``NotImplementedError`` for a size of another
    length, ``ValueError`` for integer ``theta`` or one of another shape."""
    align = _align(align_corners)
    size = tuple(int(extent) for extent in size)
    if not theta.is_floating_point():
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype}")
    if len(size) not in (4, 5):
        raise NotImplementedError(
            "affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, respectively. "
            f"Got size {size}."
        )
    spatial = len(size) - 2
    if theta.dim() != 3 or tuple(theta.shape[1:]) != (spatial, spatial + 1):
        kind = "2D affine matrices of shape Nx2x3" if spatial == 2 else "3D affine matrices of shape Nx3x4"
        raise ValueError(f"Expected a batch of {kind} for size {size}. Got {theta.shape}.")
    if min(size[2:]) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {size}")
    if theta.shape[0] != size[0]:
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: [{size[0]}, {spatial + 1}] but got: "
            f"[{theta.shape[0]}, {spatial + 1}]."
        )
    if align and min(size[2:]) == 1:
        warnings.warn(
            "Since version 1.3.0, affine_grid behavior has changed for unit-size grids when align_corners=True. "
            "This is not an intended use case of affine_grid. See the documentation of affine_grid for details.",
            UserWarning,
            stacklevel=2,
        )
    dtype = theta._data.dtype
    axes = [_base_coordinates(extent, align, dtype) for extent in reversed(size[2:])]  # x first
    mesh = np.meshgrid(*axes[::-1], indexing="ij")[::-1]  # (D,) H, W grids of x, y (, z)
    base = np.stack([*mesh, np.ones_like(mesh[0])], axis=-1).reshape(1, -1, spatial + 1)
    grid = _wrap(base) @ theta.transpose(1, 2)  # (N, points, spatial)
    return name_node(grid.reshape(size[0], *size[2:], spatial), "AffineGridGeneratorBackward0")


def _source_index(coordinate: Tensor, extent: int, padding_mode: str, align_corners: bool) -> Tensor:
    """A normalised coordinate as a position in pixels, clipped (``border``) or reflected
    (``reflection``) into the input: PyTorch's ``grid_sampler_compute_source_index``, whose
    gradient is the unnormalisation's scale, negated where reflected an odd number of times, and
    0 where clipped, at the edges themselves too."""
    if align_corners:
        position = (coordinate + 1.0) * ((extent - 1) / 2)
    else:
        position = ((coordinate + 1.0) * extent - 1.0) / 2
    if padding_mode == "border":
        return _clip(position, extent)
    if padding_mode == "reflection":
        low, high = (0, 2 * (extent - 1)) if align_corners else (-1, 2 * extent - 1)
        if high == low:  # one pixel, aligned: every coordinate reflects onto it
            return position * 0.0
        middle, span = low / 2, (high - low) / 2
        dtype = position._data.dtype
        offset = position._data - middle
        sign = np.where(offset < 0, -1.0, 1.0).astype(dtype)  # (+1 at the middle itself, as PyTorch's)
        flips = np.floor(offset * sign / span)
        extra = (position - middle) * _wrap(sign) - _wrap((flips * span).astype(dtype))
        reflected = where(_wrap(flips % 2 == 0), extra + middle, span - extra + middle)
        return _clip(reflected, extent)
    return position


def _clip(position: Tensor, extent: int) -> Tensor:
    """``position`` clipped to [0, extent - 1], its gradient passed strictly inside only (PyTorch's
    ``clip_coordinates_set_grad``: 0 at the edges, where ``clamp``'s passes it)."""
    values = position._data
    inside = (values > 0) & (values < extent - 1)
    # NaN goes to the first pixel, as PyTorch's vectorized clip takes it (np.clip kept it NaN,
    # which read nothing); a reflected infinity is NaN too
    clipped = np.where(np.isnan(values), 0, np.clip(values, 0, extent - 1)).astype(values.dtype)
    return where(_wrap(inside), position, _wrap(clipped))


# Where a NaN, infinite or huge coordinate points: far outside, its neighbour (+1) outside too.
_NOWHERE = -(2**40)


def _positions(pixels: np.ndarray) -> np.ndarray:
    """Whole pixel positions as int64, NaN and those beyond 2^40 as ``_NOWHERE``."""
    fits = np.abs(pixels) < 2.0**40  # (False for NaN)
    return np.where(fits, pixels, _NOWHERE).astype(np.int64)


def grid_sample(input: Tensor, grid: Tensor, mode: str = "bilinear", padding_mode: str = "zeros",  # noqa: A002
                align_corners=None) -> Tensor:  # fmt: skip
    """``input`` (N, C, H, W) sampled at ``grid`` (N, H_out, W_out, 2), normalised (x, y) in
    [-1, 1] (x along W): (N, C, H_out, W_out) of ``input``'s dtype. ``mode`` "bilinear" or
    "nearest" (halves to even, as PyTorch's ``nearbyint``; no gradient in the grid);
    ``padding_mode`` "zeros", "border" or "reflection"; ``align_corners`` as
    ``affine_grid``'s. Follows ``torch.nn.functional.grid_sample``: ``ValueError`` for an
    unknown mode, ``RuntimeError`` for mismatched shapes or dtypes; ``NotImplementedError`` for
    "bicubic" and 5-D input, which tapegrad does not have yet."""
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(
            f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', but got: '{mode}'"
        )
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(
            "nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or 'reflection', "
            f"but got: '{padding_mode}'"
        )
    align = _align(align_corners)
    if input.dim() != grid.dim() or input.shape[0] != grid.shape[0]:
        raise RuntimeError(
            "grid_sampler(): expected grid and input to have same batch size, but got input with sizes "
            f"{list(input.shape)} and grid with sizes {list(grid.shape)}"
        )
    if grid.dim() >= 1 and grid.shape[-1] != input.dim() - 2:
        raise RuntimeError(
            f"grid_sampler(): expected grid to have size {input.dim() - 2} in last dimension, but got grid with "
            f"sizes {list(grid.shape)}"
        )
    if input._data.dtype != grid._data.dtype:
        raise RuntimeError(f"expected scalar type {input.dtype.type_name} but found {grid.dtype.type_name}")
    if input.dim() != 4:
        raise NotImplementedError("grid_sample of 5-D (volumetric) input is not supported yet")
    if mode == "bicubic":
        raise NotImplementedError("grid_sample with mode='bicubic' is not supported yet")
    if not input.is_floating_point():
        raise RuntimeError(f"\"grid_sampler_2d_cpu\" not implemented for '{input.dtype.type_name}'")
    guard_reads("grid_sample", grid)
    n, channels, height, width = input.shape
    points = grid.shape[1] * grid.shape[2]
    x = _source_index(grid[..., 0], width, padding_mode, align).reshape(n, 1, points)
    y = _source_index(grid[..., 1], height, padding_mode, align).reshape(n, 1, points)
    # A coordinate off every pixel (NaN, infinite, beyond 2^40) reads zeros, with zero gradients
    # (PyTorch's; bilinear's NaN and infinite ones then give NaN, below): its weights, of NaN or
    # inf, would carry NaN through the zero mask.
    unknown = ~(np.isfinite(x._data) & np.isfinite(y._data))  # NaN or infinite
    with np.errstate(invalid="ignore"):
        lost = unknown | (np.abs(x._data) >= 2.0**40) | (np.abs(y._data) >= 2.0**40)
    if lost.any():
        x = where(_wrap(lost), float(_NOWHERE), x)
        y = where(_wrap(lost), float(_NOWHERE), y)
    flat = input.reshape(n, channels, height * width)

    def corner(column: np.ndarray, row: np.ndarray, weight):
        """The input at integer (column, row), 0 outside, times ``weight``."""
        inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
        index = np.where(inside, row * width + column, 0).astype(np.int64)
        values = flat.gather(2, _wrap(np.broadcast_to(index, (n, channels, points))))
        mask = _wrap(inside.astype(input._data.dtype))
        return values * (mask if weight is None else weight * mask)

    if mode == "nearest":
        column, row = _positions(np.round(x._data)), _positions(np.round(y._data))
        out = corner(column, row, None)
        # PyTorch's grid gradient is zeros, not none: a zero on the grid's graph
        out = out + ((x - x.detach()) + (y - y.detach())) * 0.0
    else:
        west, north = np.floor(x._data), np.floor(y._data)
        east_weight, south_weight = x - _wrap(west), y - _wrap(north)
        west_weight, north_weight = 1.0 - east_weight, 1.0 - south_weight
        column, row = _positions(west), _positions(north)
        out = (
            corner(column, row, west_weight * north_weight)
            + corner(column + 1, row, east_weight * north_weight)
            + corner(column, row + 1, west_weight * south_weight)
            + corner(column + 1, row + 1, east_weight * south_weight)
        )
        if padding_mode == "zeros" and unknown.any():
            # PyTorch's bilinear kernel gives NaN for a NaN or infinite coordinate (zeros beyond
            # 2^40 alone): a NaN in the grid must not come out as a plain 0
            out = where(_wrap(unknown), float("nan"), out)
    return name_node(out.reshape(n, channels, grid.shape[1], grid.shape[2]), "GridSampler2DBackward0")
