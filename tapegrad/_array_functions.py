"""PyTorch functions over arrays that real programs reach for, each a composition of table ops
(so that it differentiates, replays and nests under ``create_graph``) or, where PyTorch gives no
gradient (counts, bins, index sets), numpy's answer as a constant: differences and integrals
along a dimension (``diff``, ``trapezoid``), distances and products over axes (``cdist``,
``tensordot``, ``inner``), running extremes (``cummax``/``cummin``), block and product layouts
(``block_diag``, ``cartesian_prod``, ``tril_indices``), sliding windows (``Tensor.unfold``),
covariances, binning (``bucketize``, ``histc``, ``bincount``) and a few elementwise functions
(``copysign``, ``fmax``/``fmin``, ``heaviside``, ``signbit``...).
"""

from __future__ import annotations

import math

import numpy as np

from . import _dtypes, _record, return_types
from ._composites import meshgrid, searchsorted
from ._indexing import gather, index_select
from ._record import in_place, name_node, with_out, write_out
from ._selection import _result_type, where
from ._views import cat, stack
from .tensor import (
    Tensor,
    _normalize_dim,
    _wrap,
    argument_type_name,
    as_tensor,
    check_tensor_arguments,
    floating_kernel,
    guard_reads,
    install,
)


def diff(input: Tensor, n: int = 1, dim: int = -1, prepend=None, append=None) -> Tensor:  # noqa: A002
    """The ``n``-th forward difference along ``dim`` (``x[i + 1] - x[i]``, ``n`` times), after
    joining ``prepend`` and ``append`` there; follows ``torch.diff`` (booleans: ``!=``). Raises
    ``RuntimeError`` for a 0-d input or a negative ``n``."""
    if input.dim() == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    dim = _normalize_dim(dim, input.dim())
    if n == 0:  # the input itself, copied; prepend and append are not joined (PyTorch's)
        return input.clone()
    parts = [as_tensor(part) for part in (prepend, input, append) if part is not None]
    x = cat(parts, dim) if len(parts) > 1 else input
    for _ in range(n):
        if x.shape[dim] == 0:
            break
        later, earlier = x.narrow(dim, 1, x.shape[dim] - 1), x.narrow(dim, 0, x.shape[dim] - 1)
        x = later != earlier if x.dtype == _dtypes.bool else later - earlier
    return x


def trapezoid(y: Tensor, x=None, *, dx=None, dim: int = -1) -> Tensor:
    """The integral of ``y`` along ``dim`` by the trapezoidal rule, at points ``x`` (a tensor)
    or spaced ``dx`` apart (1 by default); follows ``torch.trapezoid``."""
    dim = _normalize_dim(dim, max(y.dim(), 1))
    extent = y.shape[dim]
    if extent == 0:
        return y.sum(dim) * 0.0
    pairs = y.narrow(dim, 1, extent - 1) + y.narrow(dim, 0, extent - 1)
    if x is not None and not isinstance(x, (int, float)):
        x = as_tensor(x)
        if x.dim() == 1:  # spacings along ``dim`` of y
            shape = [1] * y.dim()
            shape[dim] = extent - 1
            spacing = diff(x).reshape(*shape)
        else:
            spacing = diff(x, dim=dim)
        return (pairs * spacing).sum(dim) / 2.0
    step = dx if dx is not None else (x if x is not None else 1.0)
    return pairs.sum(dim) * (step / 2.0)


def trapz(y: Tensor, x=None, *, dx=None, dim: int = -1) -> Tensor:
    """``trapezoid`` under its older name; follows ``torch.trapz``."""
    return trapezoid(y, x, dx=dx, dim=dim)


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode=None) -> Tensor:
    """The ``p``-norm distance between each row of ``x1`` (..., P, M) and each of ``x2`` (..., R,
    M): (..., P, R); the gradient at a zero distance is 0, as PyTorch's. Follows
    ``torch.cdist``; raises ``RuntimeError`` for a negative ``p`` or other last dimensions."""
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}")
    differences = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    if p == math.inf:
        # PyTorch's gradient goes whole to each coordinate that ties for the largest (the norm's
        # would share it): the value as the norm's, the gradient through the tied magnitudes
        magnitude = differences.abs()
        largest = magnitude.amax(-1)
        tied = (magnitude == largest.unsqueeze(-1)) & (largest.unsqueeze(-1) > 0)
        through = where(tied, magnitude, 0.0).sum(-1)
        return name_node(largest.detach() + (through - through.detach()), "CdistBackward0")
    return name_node(differences.norm(p, dim=-1), "CdistBackward0")


@with_out("tensordot", differentiable=True)
def tensordot(a: Tensor, b: Tensor, dims=2, out=None) -> Tensor:
    """The sum of products over ``dims``: the last ``dims`` of ``a`` with the first of ``b`` (an
    int), or the listed dimensions (a pair of lists); follows ``torch.tensordot``."""
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        dims_a, dims_b = list(range(a.dim() - dims, a.dim())), list(range(dims))
    else:
        dims_a, dims_b = ([d] if isinstance(d, int) else list(d) for d in dims)
    dims_a = [_normalize_dim(d, a.dim()) for d in dims_a]
    dims_b = [_normalize_dim(d, b.dim()) for d in dims_b]
    for da, db in zip(dims_a, dims_b):
        if a.shape[da] != b.shape[db]:
            raise RuntimeError(
                f"contracted dimensions need to match, but first has size {a.shape[da]} in dim {da} and "
                f"second has size {b.shape[db]} in dim {db}"
            )
    free_a = [d for d in range(a.dim()) if d not in dims_a]
    free_b = [d for d in range(b.dim()) if d not in dims_b]
    size = math.prod(a.shape[d] for d in dims_a)
    left = a.permute(*free_a, *dims_a).reshape(math.prod(a.shape[d] for d in free_a), size)
    right = b.permute(*dims_b, *free_b).reshape(size, math.prod(b.shape[d] for d in free_b))
    return (left @ right).reshape(*[a.shape[d] for d in free_a], *[b.shape[d] for d in free_b])


@with_out("inner", differentiable=True)
def inner(input: Tensor, other: Tensor, *, out=None) -> Tensor:  # noqa: A002
    """The sum of products over the last dimension of both, for every pair of their other
    indices (a product with a 0-d tensor); follows ``torch.inner``."""
    if input.dim() == 0 or other.dim() == 0:
        return input * other
    return tensordot(input, other, ([-1], [-1]))


def _running_extreme(input: Tensor, dim: int, largest: bool, named):  # noqa: A002
    """``(values, indices)`` of the running maximum or minimum along ``dim``: the index of the
    latest extreme (ties and NaN as PyTorch's), the value gathered from it, so that its gradient
    goes there. Inside a recording the indices are read from the values (a guard)."""
    dim = _normalize_dim(dim, max(input.dim(), 1))
    if input.dim() == 0:
        return named(input * 1, _wrap(np.zeros((), np.int64)))
    guard_reads(f"cum{'max' if largest else 'min'}()", input)
    data = np.moveaxis(input._data, dim, -1)
    indices = np.zeros(data.shape, np.int64)
    if data.shape[-1]:
        best = data[..., 0].copy()
        position = np.zeros(data.shape[:-1], np.int64)
        for k in range(data.shape[-1]):
            value = data[..., k]
            # PyTorch's rule: a NaN takes over and stays; else the latest of equal extremes
            with np.errstate(invalid="ignore"):
                reached = (value >= best) if largest else (value <= best)
            better = np.isnan(value) | (~np.isnan(best) & reached)
            position = np.where(better, k, position)
            best = np.where(better, value, best)
            indices[..., k] = position
    indices = np.moveaxis(indices, -1, dim)
    index_tensor = _wrap(indices)
    node = "CummaxBackward0" if largest else "CumminBackward0"  # (PyTorch's node for the pair)
    return named(name_node(gather(input, dim, index_tensor), node), index_tensor)


def cummax(input: Tensor, dim: int):  # noqa: A002
    """``(values, indices)``: the largest element so far along ``dim`` and where it is (the
    latest of equal ones; a NaN stays); the gradient goes to that element. Follows
    ``torch.cummax``."""
    return _running_extreme(input, dim, True, return_types.cummax)


def cummin(input: Tensor, dim: int):  # noqa: A002
    """``cummax``'s smallest counterpart; follows ``torch.cummin``."""
    return _running_extreme(input, dim, False, return_types.cummin)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None, layout=None) -> Tensor:
    """The (2, N) indices of the lower triangle of a ``row`` x ``col`` matrix (on and below the
    ``offset`` diagonal), row by row; follows ``torch.tril_indices`` (int64)."""
    rows, cols = np.tril_indices(row, offset, col)
    return _wrap(np.stack([rows, cols]).astype((dtype or _dtypes.int64).numpy))


def triu_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None, layout=None) -> Tensor:
    """The upper triangle's indices, as ``tril_indices``; follows ``torch.triu_indices``."""
    rows, cols = np.triu_indices(row, offset, col)
    return _wrap(np.stack([rows, cols]).astype((dtype or _dtypes.int64).numpy))


def block_diag(*tensors) -> Tensor:
    """The tensors (0-d, 1-d as a row, 2-d) as blocks along the diagonal of one matrix, zeros
    elsewhere, in their promoted dtype; follows ``torch.block_diag``."""
    if not tensors:
        return _wrap(np.zeros((1, 0), np.float32))
    blocks = [
        t.reshape(1, 1) if t.dim() == 0 else t.reshape(1, -1) if t.dim() == 1 else t for t in map(as_tensor, tensors)
    ]
    for index, block in enumerate(blocks):
        if block.dim() != 2:
            raise RuntimeError(
                f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {index} has {block.dim()} dimensions"
            )
    dtype = _dtypes.from_numpy_dtype(_result_type(*blocks))
    width = sum(block.shape[1] for block in blocks)
    rows, left = [], 0
    for block in blocks:
        height, columns = block.shape
        parts = [_wrap(np.zeros((height, left), dtype.numpy)), block.to(dtype)]
        parts.append(_wrap(np.zeros((height, width - left - columns), dtype.numpy)))
        rows.append(cat(parts, 1))
        left += columns
    return cat(rows, 0)


def cartesian_prod(*tensors) -> Tensor:
    """Every combination of one element of each 1-d tensor, as rows (N, len(tensors)), the
    first varying slowest; one tensor is returned as it is. Follows ``torch.cartesian_prod``."""
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return stack([grid.reshape(-1) for grid in grids], 1)


@with_out("bucketize")
def bucketize(input, boundaries: Tensor, *, out_int32: bool = False, right: bool = False, out=None) -> Tensor:  # noqa: A002
    """The index of the bucket of ``boundaries`` (1-d, ascending) each element falls in;
    follows ``torch.bucketize`` (``searchsorted`` with the arguments swapped)."""
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


@with_out("histc")
def histc(input: Tensor, bins: int = 100, min: float = 0, max: float = 0, *, out=None) -> Tensor:  # noqa: A001, A002
    """Counts of the elements in ``bins`` equal bins over [min, max] (the data's range when both
    are 0), elements outside ignored, in ``input``'s float dtype; no gradient (PyTorch has
    none). Follows ``torch.histc``."""
    data = input._data
    if data.dtype.kind != "f":
        raise RuntimeError(f"\"histogram_cpu\" not implemented for '{input.dtype.type_name}'")
    guard_reads("histc()", input)  # counts of values: a replay must not reuse them
    low, high = float(min), float(max)
    if low == high and data.size:
        low, high = float(data.min()), float(data.max())
    if low == high:
        low, high = low - 1, high + 1
    counts, _ = np.histogram(data, bins=bins, range=(low, high))
    return _wrap(counts.astype(data.dtype))


def bincount(input: Tensor, weights=None, minlength: int = 0) -> Tensor:  # noqa: A002
    """How often each non-negative integer occurs in the 1-d ``input`` (int64), or the sum of
    ``weights`` at each (their float dtype); no gradient. Follows ``torch.bincount``."""
    data = input._data
    if input.dim() != 1 or data.dtype.kind not in "iub":
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if data.size and data.min() < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    guard_reads("bincount()", input, weights)  # counts and sums in numpy: a replay must not reuse them
    if weights is None:
        return _wrap(np.bincount(data, minlength=minlength).astype(np.int64))
    values = as_tensor(weights)._data
    dtype = values.dtype if values.dtype.kind == "f" else np.float64
    return _wrap(np.bincount(data, values, minlength=minlength).astype(dtype))


def logspace(
    start, end, steps: int, base: float = 10.0, *, dtype=None, requires_grad: bool = False, **kwargs
) -> Tensor:
    """``base ** linspace(start, end, steps)`` (for an integer ``dtype``, of ``start`` and ``end``
    made integers first, as PyTorch); follows ``torch.logspace``."""
    from ._factories import linspace

    chosen = _dtypes.as_dtype(dtype) if dtype is not None else _dtypes.DEFAULT_FLOAT
    if not chosen.is_floating_point:
        start, end = int(start), int(end)
    exponents = linspace(start, end, steps, dtype=_dtypes.float64)
    result = _wrap(np.power(float(base), exponents._data).astype(chosen.numpy))
    return result.requires_grad_() if requires_grad else result


def result_type(tensor1, tensor2):
    """The dtype an op of the two (tensors or numbers) gives; follows ``torch.result_type``."""
    return _dtypes.from_numpy_dtype(_result_type(tensor1, tensor2))


def heaviside(input: Tensor, values) -> Tensor:  # noqa: A002
    """0 below zero, 1 above, ``values`` at zero, broadcast; no gradient (PyTorch has none).
    Follows ``torch.heaviside``."""
    values = as_tensor(values)
    result = _result_type(input, values)
    guard_reads("heaviside()", input, values)
    out = np.where(input._data == 0, values._data, (input._data > 0)).astype(result)
    return _wrap(out)


def signbit(input: Tensor) -> Tensor:  # noqa: A002
    """Whether each element's sign bit is set (-0.0 included); follows ``torch.signbit``."""
    guard_reads("signbit()", input)
    return _wrap(np.signbit(input._data))


def copysign(input, other) -> Tensor:  # noqa: A002
    """``|input|`` with the sign of ``other`` (of -0.0 too), in the promoted float dtype; the
    gradient is ``sign(input) * sign(result)`` for ``input`` (0 at 0) and none for ``other``.
    Follows ``torch.copysign``."""
    result = _result_type(input, other)
    dtype = _dtypes.from_numpy_dtype(result if result.kind == "f" else _dtypes.DEFAULT_FLOAT.numpy)
    x = as_tensor(input).to(dtype)
    if not isinstance(other, Tensor):
        return name_node(-x.abs() if math.copysign(1.0, other) < 0 else x.abs(), "CopysignBackward1")
    y = other.to(dtype)
    # signbit of recorded comparisons (a replay reads the new signs): below 0, or -0.0, whose
    # reciprocal is -inf; ``y`` also gets PyTorch's zero gradient, as an unselected branch
    negative = (y < 0) | ((y == 0) & (y.reciprocal() < 0))
    magnitude = x.abs()
    value = where(negative, -magnitude, magnitude)
    never = negative & ~negative
    return name_node(where(never, y, value), "CopysignBackward0")


def fmax(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    """The larger of each pair, ignoring a NaN (NaN only where both are), a tie's gradient to
    ``input`` (PyTorch's); follows ``torch.fmax``. Raises ``TypeError`` for a number ``other``."""
    check_tensor_arguments("fmax", ("input", input), ("other", other))
    return where(other.isnan() | (input >= other), input, other)


def fmin(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    """The smaller of each pair, ignoring a NaN, a tie's gradient to ``input``; follows
    ``torch.fmin``. Raises ``TypeError`` for a number ``other``."""
    check_tensor_arguments("fmin", ("input", input), ("other", other))
    return where(other.isnan() | (input <= other), input, other)


def isposinf(input: Tensor) -> Tensor:  # noqa: A002
    """Where ``input`` is +inf; follows ``torch.isposinf``. A comparison, recorded as one."""
    return input == math.inf


def isneginf(input: Tensor) -> Tensor:  # noqa: A002
    """Where ``input`` is -inf; follows ``torch.isneginf``. A comparison, recorded as one."""
    return input == -math.inf


def cov(input: Tensor, *, correction: int = 1, fweights=None, aweights=None) -> Tensor:  # noqa: A002
    """The covariance matrix of the variables in ``input``'s rows (observations in columns; a
    1-d input is one variable: a 0-d variance), divided by ``N - correction``; follows
    ``torch.cov`` (without frequency or observation weights)."""
    if fweights is not None or aweights is not None:
        raise NotImplementedError("cov with fweights or aweights is not supported yet")
    if input.dim() > 2:
        raise RuntimeError(
            f"cov(): expected input to have two or fewer dimensions but got an input with {input.dim()} dimensions"
        )
    x = input.reshape(1, -1) if input.dim() < 2 else input
    x = x if x.dtype.is_floating_point else x.to(_dtypes.DEFAULT_FLOAT)
    centered = x - x.mean(1, keepdim=True)
    result = (centered @ centered.mT) / float(max(x.shape[1] - correction, 0))
    return result.reshape(()) if input.dim() < 2 or x.shape[0] == 1 else result  # one variable: 0-d


def corrcoef(input: Tensor) -> Tensor:  # noqa: A002
    """Pearson's correlation coefficients of the rows, clipped to [-1, 1]; follows
    ``torch.corrcoef``."""
    c = cov(input)
    if c.dim() == 0:  # one variable
        return c / c
    deviations = c.diagonal().sqrt()
    return (c / deviations.unsqueeze(1) / deviations.unsqueeze(0)).clamp(-1.0, 1.0)


def unflatten(input: Tensor, dim: int, sizes) -> Tensor:  # noqa: A002
    """``input`` with dimension ``dim`` split into ``sizes`` (one may be -1); follows
    ``torch.unflatten`` and raises its ``RuntimeError`` for sizes that do not multiply up to the
    dimension (a reshape's message named the whole shape)."""
    dim = _normalize_dim(dim, max(input.dim(), 1))
    shape = tuple(input.shape)
    extent = shape[dim] if shape else 1
    known = math.prod(size for size in sizes if size != -1)
    if known != extent if -1 not in sizes else known == 0 or extent % known:
        raise RuntimeError(
            f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} ({extent}) in the "
            "input tensor"
        )
    return input.reshape(*shape[:dim], *sizes, *shape[dim + 1 :])


def _unfold(self, dimension: int, size: int, step: int) -> Tensor:
    """Every window of ``size`` elements along ``dimension``, ``step`` apart, as a new last
    dimension (the windows replacing ``dimension``); follows ``torch.Tensor.unfold``: a view
    where the windows tile a prefix of the dimension (``step >= size``, in-place changes of it
    reach ``self``), else a read-only view recorded as a copy (the gradient adds up where
    windows overlap), whose in-place changes raise as PyTorch's of overlapping windows do."""
    dim = _normalize_dim(dimension, max(self.dim(), 1))
    extent = self.shape[dim] if self.dim() else 1
    if size > extent:
        raise RuntimeError(f"maximum size for tensor at dimension {dim} is {extent} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    starts = np.arange(0, extent - size + 1, step)
    positions = (starts[:, None] + np.arange(size)[None, :]).reshape(-1)
    if self.dim() == 0:  # PyTorch's: a window of the one element, (1,), a view
        return self.reshape(1)
    x = self
    count = len(starts)
    if step >= size and count * step <= extent:  # blocks of ``step``, each window a block's start
        blocks = list(x.shape)
        blocks[dim : dim + 1] = [count, step]
        try:
            windows = x.narrow(dim, 0, count * step).view(*blocks)
        except RuntimeError:  # (strides a view cannot split)
            pass
        else:
            return name_node(windows.narrow(dim + 1, 0, size).movedim(dim + 1, -1), "UnfoldBackward0")
    picked = index_select(x, dim, _wrap(positions))
    shape = list(x.shape)
    shape[dim : dim + 1] = [count, size]
    result = picked.reshape(*shape).movedim(dim + 1, -1)
    # Recorded as a pick, read through a view of ``self``'s memory (``read_through``). PyTorch's
    # windows here are a view no reshape can view: its reshapes copy (and so ours).
    data = x._data
    window_strides = (*data.strides[:dim], data.strides[dim] * step, *data.strides[dim + 1 :], data.strides[dim])
    window = np.lib.stride_tricks.as_strided(data, tuple(result.shape), window_strides, writeable=False)
    _record.read_through(result, x._base if x._base is not None else x, window, reshaped_as_copy=True)
    return name_node(result, "UnfoldBackward0")


def _storage_of(input: Tensor) -> tuple:  # noqa: A002
    """``(root, offset)``: the contiguous tensor whose memory ``input`` is (``input`` itself,
    or the root it is a view of) and ``input``'s first element's position in it; None where
    the root is not contiguous."""
    root = input._base if input._base is not None else input
    data = root._data
    if not data.flags.c_contiguous:
        return None, 0
    start = input._data.__array_interface__["data"][0] - data.__array_interface__["data"][0]
    return root, start // max(data.itemsize, 1)


def as_strided(input: Tensor, size, stride, storage_offset=None) -> Tensor:  # noqa: A002
    """The elements of ``input``'s memory at ``storage_offset + sum(i_k * stride[k])`` for each
    index ``i`` of ``size``; follows ``torch.as_strided``, of a contiguous tensor or a view of
    one (``storage_offset`` defaults to the view's own). Recorded as a copy (its gradient
    adds up where positions repeat), that refuses in-place changes (PyTorch's would write
    ``input``'s memory), and reads ``input``'s memory as PyTorch's view does (an in-place change
    of ``input`` shows in it). Raises ``RuntimeError`` (PyTorch's message) for positions beyond the
    memory, ``NotImplementedError`` for a tensor whose memory is not contiguous."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise RuntimeError("mismatch in length of strides and shape")
    root, own = _storage_of(input)
    if root is None:
        raise NotImplementedError("as_strided of a tensor whose memory is not contiguous is not supported")
    offset = own if storage_offset is None else int(storage_offset)
    needed = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else 0
    if any(s < 0 for s in stride) or needed > root.numel():
        raise RuntimeError(
            f"setStorage: sizes {list(size)}, strides {list(stride)}, storage offset {offset}, and itemsize "
            f"{input._data.itemsize} requiring a storage size of {needed * input._data.itemsize} are out of bounds "
            f"for storage of size {root.numel() * input._data.itemsize}"
        )
    positions = np.full(size, offset, np.int64)
    for axis, (extent, step) in enumerate(zip(size, stride)):
        positions += (np.arange(extent) * step).reshape((-1,) + (1,) * (len(size) - axis - 1))
    source, flat = root, positions.reshape(-1)
    if (
        input is not root
        and input._data.flags.c_contiguous
        and (not flat.size or (own <= flat.min() and flat.max() < own + input.numel()))
    ):
        # Within a contiguous view's own elements: picked from the view, so that the gradient
        # reaches it, as PyTorch's does (picked from the root alone, a gradient with respect to
        # the view was zero: func.jvp(grad(f)) and hessian, whose inputs are views, gave zeros).
        source, flat = input, flat - own
    result = index_select(source.reshape(-1), 0, _wrap(flat)).reshape(size)
    memory = root._data.reshape(-1)
    itemsize = memory.itemsize
    window = np.lib.stride_tricks.as_strided(
        memory[min(offset, memory.size) :], size, tuple(step * itemsize for step in stride), writeable=False
    )
    _record.read_through(result, root, window)  # (read where the elements lie; changes of it raise)
    return result


def histogram(input: Tensor, bins=100, *, range=None, weight=None, density: bool = False, out=None):  # noqa: A002
    """``(hist, bin_edges)``: the count (or summed ``weight``) of the elements in each bin, the
    bins ``bins`` equal ones over ``range`` (the data's, widened by 0.5 each way when it is one
    value) or the edges of the 1-d tensor ``bins``; with ``density``, normalised to integrate
    to 1. Float tensors only, no gradient; follows ``torch.histogram``."""
    data = input._data
    floating_kernel(input, "histogramdd")
    edges = bins._data if isinstance(bins, Tensor) else int(bins)
    guard_reads("histogram()", input, weight, bins)
    weights = None if weight is None else as_tensor(weight)._data.reshape(-1)
    counts, edges = np.histogram(data.reshape(-1), bins=edges, range=range, weights=weights, density=density)
    hist, bin_edges = _wrap(counts.astype(data.dtype)), _wrap(np.asarray(edges, data.dtype))
    if out is not None:  # (filled, as PyTorch's out=: resized to the results)
        for target, result in zip(out, (hist, bin_edges)):
            target._data = result._data.copy()
        hist, bin_edges = out
    return return_types.histogram(hist, bin_edges)


def nextafter(input: Tensor, other) -> Tensor:  # noqa: A002
    """The next float after ``input`` towards ``other``, elementwise, broadcast; no gradient;
    follows ``torch.nextafter``."""
    other = as_tensor(other)
    dtype = _result_type(input, other)
    guard_reads("nextafter()", input, other)
    return _wrap(np.nextafter(input._data.astype(dtype), other._data.astype(dtype)))


def isin(elements, test_elements, *, assume_unique: bool = False, invert: bool = False) -> Tensor:
    """Whether each element of ``elements`` is among ``test_elements`` (any shape; either of
    them may be a number), compared in their promoted dtype (NaN is in nothing); a bool tensor
    of ``elements``' shape, without gradient. ``invert``: whether it is not. ``assume_unique``
    changes nothing here (numpy finds the same answer either way). Follows ``torch.isin``; raises
    its ``RuntimeError`` for bool operands and ``TypeError`` for two numbers or a sequence."""
    if (
        not isinstance(elements, Tensor)
        and not isinstance(test_elements, Tensor)
        or any(isinstance(value, (list, tuple)) for value in (elements, test_elements))
    ):
        raise TypeError(
            f"isin() received an invalid combination of arguments - got ({argument_type_name(elements)}, "
            f"{argument_type_name(test_elements)}), but expected one of:\n{_ISIN_OVERLOADS}"
        )
    common = _result_type(elements, test_elements)
    if any(
        isinstance(value, bool) or getattr(value, "dtype", None) == _dtypes.bool for value in (elements, test_elements)
    ):
        raise RuntimeError("Unsupported input type encountered for isin(): Bool")
    guard_reads("isin()", elements, test_elements)  # a test of every value, in numpy
    values = np.asarray(elements._data if isinstance(elements, Tensor) else elements).astype(common)
    tests = np.asarray(test_elements._data if isinstance(test_elements, Tensor) else test_elements).astype(common)
    return _wrap(np.isin(values, tests, invert=invert))


_ISIN_OVERLOADS = "".join(
    f" * ({operands}, *, bool assume_unique = False, bool invert = False, Tensor out = None)\n"
    for operands in (
        "Tensor elements, Tensor test_elements",
        "Number element, Tensor test_elements",
        "Tensor elements, Number test_element",
    )
)


def float_power(input, exponent, *, out=None) -> Tensor:  # noqa: A002
    """``input ** exponent`` computed in float64, whatever the operands' dtypes (either may be a
    number), differentiable in both (``PowBackward0/1/2``, the gradient cast back to each
    operand's dtype). Follows ``torch.float_power``; raises ``TypeError`` for two numbers and
    PyTorch's ``RuntimeError`` for an ``out`` that is not float64."""
    if not isinstance(input, Tensor) and not isinstance(exponent, Tensor):
        raise TypeError(
            f"float_power() received an invalid combination of arguments - got ({argument_type_name(input)}, "
            f"{argument_type_name(exponent)}), but expected one of:\n * (Tensor input, Tensor exponent, *, Tensor "
            "out = None)\n * (Number self, Tensor exponent, *, Tensor out = None)\n * (Tensor input, Number "
            "exponent, *, Tensor out = None)\n"
        )
    if out is not None and out.dtype != _dtypes.float64:
        raise RuntimeError(
            f"the output given to float_power has dtype {out.dtype.type_name} but the operation's result requires "
            "dtype Double"
        )
    power = exponent.to(_dtypes.float64) if isinstance(exponent, Tensor) else float(exponent)
    if isinstance(input, Tensor):
        result = input.to(_dtypes.float64).pow(power)
    else:
        result = power.__rpow__(float(input))
    return write_out("float_power", result, out)


def _float_power_(self, exponent) -> Tensor:
    """``float_power`` in place, for a float64 ``self`` only; follows
    ``torch.Tensor.float_power_``. Raises its ``RuntimeError`` for another dtype."""
    if self.dtype != _dtypes.float64:
        raise RuntimeError(
            f"the base given to float_power_ has dtype {self.dtype.type_name} but the operation's result requires "
            "dtype Double"
        )
    return in_place(self, lambda t: float_power(t, exponent), "Pow")


def positive(input: Tensor) -> Tensor:  # noqa: A002
    """``input`` itself (unary plus); follows ``torch.positive``. Raises PyTorch's
    ``RuntimeError`` for a bool tensor and ``TypeError`` for anything but a tensor."""
    check_tensor_arguments("positive", ("input", input))
    if input._data.dtype == np.bool_:
        raise RuntimeError("The `+` operator, on a bool tensor is not supported.")
    return input


def is_nonzero(input: Tensor) -> bool:  # noqa: A002
    """The truth of a one-element tensor (NaN is true); follows ``torch.is_nonzero``. Raises
    PyTorch's ``RuntimeError`` for none or several elements and ``TypeError`` for anything but a
    tensor."""
    check_tensor_arguments("is_nonzero", ("input", input))
    return input.is_nonzero()


def is_inference(input: Tensor) -> bool:  # noqa: A002
    """Whether ``input`` is an inference tensor: always False here, where tensors made inside
    ``inference_mode`` are ordinary tensors (they can take part in a later backward, which
    PyTorch refuses); follows ``torch.is_inference``. Raises ``TypeError`` for anything but a
    tensor."""
    check_tensor_arguments("is_inference", ("input", input))
    return False


def _new(self, *args, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``Tensor.new``, the legacy constructor of ``self``'s dtype: ``new(2, 3)`` an
    uninitialised (2, 3) tensor, ``new(data)`` a tensor of ``data``; follows ``torch.Tensor.new``."""
    from .tensor import _legacy_data

    guard_reads("new()", *args)  # data copied from a tensor: its values
    tensor = _wrap(_legacy_data(args, dtype if dtype is not None else self.dtype))
    return tensor.requires_grad_() if requires_grad else tensor


def _resize_as_(self, other: Tensor) -> Tensor:
    """``self`` resized in place to ``other``'s shape, keeping its first elements (the rest
    uninitialised); follows ``torch.Tensor.resize_as_``. Raises PyTorch's ``RuntimeError`` for
    a tensor that requires grad."""
    if self.requires_grad:
        raise RuntimeError("cannot resize variables that require grad")
    flat = np.empty(math.prod(other.shape), self._data.dtype)
    kept = min(flat.size, self._data.size)
    flat[:kept] = np.ravel(self._data, order="K")[:kept]  # in memory's order, as PyTorch keeps the storage
    self._data = flat.reshape(tuple(other.shape))
    return self


def _is_nonzero(self) -> bool:
    """The truth of a one-element tensor; follows ``torch.is_nonzero``."""
    if self.numel() != 1:
        raise RuntimeError(
            "Boolean value of Tensor with no values is ambiguous"
            if self.numel() == 0
            else "Boolean value of Tensor with more than one value is ambiguous"
        )
    return bool(self)


install(
    {
        "diff": diff,
        "cummax": cummax,
        "cummin": cummin,
        "unflatten": unflatten,
        "unfold": _unfold,
        "inner": inner,
        "signbit": signbit,
        "copysign": copysign,
        "fmax": fmax,
        "fmin": fmin,
        "sgn": lambda self: self.sign(),
        "heaviside": heaviside,
        "histc": histc,
        "bincount": bincount,
        "cov": cov,
        "corrcoef": corrcoef,
        "isposinf": isposinf,
        "isneginf": isneginf,
        "is_complex": lambda self: False,
        "is_signed": lambda self: self.dtype.is_signed,
        "is_nonzero": _is_nonzero,
        "is_inference": lambda self: is_inference(self),
        "positive": positive,
        "float_power": lambda self, exponent: float_power(self, exponent),
        "float_power_": _float_power_,
        "true_divide": lambda self, other: self / other,
        "tensordot": tensordot,
        "as_strided": as_strided,
        "histogram": histogram,
        "nextafter": nextafter,
        "new": _new,
        "resize_as_": _resize_as_,
    }
)
