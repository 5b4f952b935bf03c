"""More PyTorch functions made of the table's ops: elementwise math (``hypot``, ``logit``,
``xlogy``, ``sinc``, ``deg2rad``/``rad2deg``, ``nan_to_num``, ``frac``), cumulative and NaN-aware
reductions (``cumprod``, ``logcumsumexp``, ``nansum``/``nanmean``, ``count_nonzero``,
``var_mean``, ``aminmax``), picks and arrangements (``take``, ``take_along_dim``, ``rot90``,
``kron``), the in-place forms optimizers are written with (``lerp_``, ``addcmul_``,
``addcdiv_``, ``square_``, ``clamp_min_``/``clamp_max_``, ``addmm_``), and the layout queries
(``stride``, ``storage_offset``, ``nbytes``, ``itemsize``) with the memory-format constants.

As ``_composites``'s, their gradients are those of the ops they are made of, checked by the op
table's cases (central differences, PyTorch parity, replay, second derivatives).
"""

from __future__ import annotations

import math

import numpy as np

from . import _dtypes, return_types
from ._composites import addcdiv, addcmul, addmm, lerp, logaddexp
from ._grad_mode import active_recording, is_grad_enabled
from ._indexing import gather
from ._ops import BY_NAME
from ._record import _unary, in_place, name_node
from ._selection import _result_type, where
from ._views import cat, stack
from .tensor import Tensor, _normalize_dim, _wrap, as_tensor, guard_reads, install


class memory_format:  # noqa: N801 - PyTorch's name
    """``torch.memory_format``: tapegrad's tensors are numpy arrays, laid out as numpy lays
    them out; the constants are accepted where PyTorch takes them and change nothing."""

    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return f"torch.{self._name}"


preserve_format = memory_format("preserve_format")
contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
channels_last_3d = memory_format("channels_last_3d")


# -- elementwise math -------------------------------------------------------------------------


def hypot(input: Tensor, other) -> Tensor:  # noqa: A002 - PyTorch's names
    """``sqrt(input**2 + other**2)``, broadcast; follows ``torch.hypot``."""
    # Scaled by the larger magnitude (a constant of the graph; the gradient is still x / h):
    # squared as they are, float32 overflowed beyond 1.8e19 (inf for 3e19 and 4e19) and
    # underflowed below 1e-19 (0, with an infinite gradient). An infinite operand gives inf.
    # Inside tapegrad.record the scale must be each replay's own: computed by recorded ops
    # (the plain formula there overflowed at a replay's large values, silently, in vmap too).
    if active_recording() is not None:
        return _recorded_hypot(input, other if isinstance(other, Tensor) else as_tensor(other, dtype=input.dtype))
    dtype = _result_type(input, other)
    other_data = other._data if isinstance(other, Tensor) else np.asarray(other, dtype)
    scale = np.fmax(np.abs(input._data), np.abs(other_data)).astype(dtype, copy=False)  # (fmax: inf beside NaN)
    infinite = np.isinf(scale)
    scale = _wrap(np.where((scale == 0) | infinite | np.isnan(scale), 1, scale).astype(dtype, copy=False))
    scaled = ((input / scale) ** 2 + (other / scale) ** 2).sqrt() * scale
    if infinite.any():
        scaled = where(_wrap(infinite), math.inf, scaled)
    return name_node(scaled, "HypotBackward0")


def _recorded_hypot(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    """``hypot`` by ops a replay computes again: each operand divided by the larger magnitude
    (no gradient through it: the result does not depend on it), inf where either is infinite."""
    larger = input.abs().maximum(other.abs()).detach()
    infinite = input.isinf() | other.isinf()
    scale = where((larger == 0) | infinite | larger.isnan(), 1.0, larger)
    scaled = ((input / scale) ** 2 + (other / scale) ** 2).sqrt() * scale
    return name_node(where(infinite, math.inf, scaled), "HypotBackward0")


def logit(input: Tensor, eps=None) -> Tensor:  # noqa: A002
    """``log(p / (1 - p))`` elementwise, same shape (an integer input as the default float),
    ``p`` clamped to ``[eps, 1 - eps]`` when ``eps`` is given (its gradient is 0 outside, as
    PyTorch's). Gradient ``1 / (p (1 - p))``: inf at 0 and 1, NaN outside ``[0, 1]`` without
    ``eps``, NaN at NaN. Follows ``torch.logit``."""
    p = input
    if eps is not None:
        low, high = float(eps), 1.0 - float(eps)
        # PyTorch's kernel selects ``x < lo ? lo : (x > hi ? hi : x)``: for ``eps`` above 0.5 the
        # range is empty and a value below lo takes lo, where ``clamp`` gives hi to every value.
        # (At NaN the value is NaN and the gradient 0, as clamp's, in PyTorch's vector loop.)
        p = input.clamp(low, high) if low <= high else where(input < low, low, input.clamp(high, high))
    return _unary(BY_NAME["logit"], p)


def logit_(input: Tensor, eps=None) -> Tensor:  # noqa: A002
    """``logit`` in place; follows ``torch.Tensor.logit_``."""
    return in_place(input, lambda t: logit(t, eps), "Logit")


def _floating_operands(input, other) -> tuple:  # noqa: A002
    """``input`` and ``other`` (tensors or numbers) as tensors of PyTorch's promoted dtype
    (numbers, 0-d tensors), made a float (the default one for integers)."""
    result = _result_type(input, other)
    dtype = _dtypes.from_numpy_dtype(result) if result.kind == "f" else _dtypes.DEFAULT_FLOAT
    return tuple(
        value.to(dtype) if isinstance(value, Tensor) else _wrap(np.asarray(value, dtype.numpy))
        for value in (input, other)
    )


def xlogy(input, other) -> Tensor:  # noqa: A002
    """``input * log(other)``, 0 where ``input`` is 0 (NaN where ``other`` is), broadcast;
    follows ``torch.xlogy``."""
    x, y = _floating_operands(input, other)
    # PyTorch's derivative in x is log(y), 0 only where x == 0 and y <= 0 (not wherever x is
    # 0): the log is masked there (and at y = inf, where 0 * inf would be NaN), so that the
    # product is 0 at x == 0 without a mask of x; + 0.0 makes -0.0 * log(y) PyTorch's 0.0.
    log = where((x == 0) & ((y <= 0) | (y == math.inf)), 0.0, y.log())
    return name_node(x * log + 0.0, "XlogyBackward0")


def sinc(input: Tensor) -> Tensor:  # noqa: A002
    """``sin(pi x) / (pi x)``, 1 at 0; follows ``torch.sinc``."""
    # Near 0 (|pi x| < 0.01), the Taylor polynomial 1 - s^2/6 + s^4/120 (its next term is below
    # 2e-16): differentiated, the quotient's two terms of 1/s cancelled badly (float32 at 1e-20
    # gave -6.9e13), and a constant 1 at 0 gave a second derivative of 0 (exact: -pi^2/3).
    near = input.abs() < 0.01 / math.pi
    scaled = where(near, 1.0, input) * math.pi
    s2 = (where(near, input, 0.0) * math.pi) ** 2  # (of every x, it overflowed: NaN gradients beyond 6e18)
    series = 1.0 - s2 / 6.0 + s2 * s2 / 120.0
    return name_node(where(near, series, scaled.sin() / scaled), "SincBackward0")


def deg2rad(input: Tensor) -> Tensor:  # noqa: A002
    """Degrees to radians; follows ``torch.deg2rad``."""
    return input * (math.pi / 180.0)


def rad2deg(input: Tensor) -> Tensor:  # noqa: A002
    """Radians to degrees; follows ``torch.rad2deg``."""
    return input * (180.0 / math.pi)


def nan_to_num(input: Tensor, nan: float = 0.0, posinf=None, neginf=None) -> Tensor:  # noqa: A002
    """NaN, +inf and -inf replaced by ``nan``, ``posinf`` and ``neginf`` (the dtype's largest
    and lowest by default); the gradient passes where the value is finite. Follows
    ``torch.nan_to_num``; integers are returned unchanged."""
    if not input.dtype.is_floating_point:
        return input.clone()
    info = np.finfo(input._data.dtype)
    high = float(info.max) if posinf is None else posinf
    low = float(info.min) if neginf is None else neginf
    out = where(input.isnan(), nan, where(input == math.inf, high, where(input == -math.inf, low, input)))
    return name_node(out, "NanToNumBackward0")


def frac(input: Tensor) -> Tensor:  # noqa: A002
    """The fractional part, of the sign of ``input`` (``x - trunc(x)``); follows ``torch.frac``."""
    from ._logical import trunc

    return name_node(input - trunc(input), "FracBackward0")


# -- cumulative and NaN-aware reductions -------------------------------------------------------


def cumprod(input: Tensor, dim: int, *, dtype=None) -> Tensor:  # noqa: A002
    """Running products along ``dim``; follows ``torch.cumprod`` (its gradient is exact with
    zeros in the input: the products are recorded products, ``_scan``)."""
    if dtype is None and input._data.dtype.kind in "biu":
        dtype = _dtypes.int64  # PyTorch's integral running products are int64
    x = input if dtype is None else input.to(dtype)
    if x.dim() == 0:
        return x.clone()
    dim = _normalize_dim(dim, x.dim())
    if not x.shape[dim]:
        return x.clone()
    return name_node(_scan(x, dim, lambda so_far, step: so_far * step, 1.0), "CumprodBackward0")


def logcumsumexp(input: Tensor, dim: int) -> Tensor:  # noqa: A002
    """``log(cumsum(exp(input)))`` along ``dim`` without overflow or underflow: a running
    ``logaddexp`` of each step into the sum so far, as PyTorch's scan (``_scan``). (Shifted by
    the maximum along ``dim`` instead, the steps far below it underflowed: float32's -609 before
    a -494 gave -inf.) Follows ``torch.logcumsumexp``."""
    dim = _normalize_dim(dim, max(input.dim(), 1))
    if input.dim() == 0 or input.shape[dim] == 0:
        return input.clone()
    return name_node(_scan(input, dim, logaddexp, -math.inf), "LogcumsumexpBackward0")


# Up to this many steps a scan runs one step at a time, in PyTorch's order; beyond, in blocks.
_SCAN_STEPS = 64


def _scan(x: Tensor, dim: int, step, identity: float) -> Tensor:
    """The running ``step(so_far, next)`` along ``dim`` (normalized, of nonzero length) of
    recorded ops, so that it differentiates (and replays) exactly.

    One step at a time made a row per element: 100,000 steps took 660 MB and 6 s, or raised
    ``MemoryError``. Beyond ``_SCAN_STEPS``, in blocks of about sqrt(n) (the last padded with
    ``identity``): the running values within every block at once, a step per position; then
    each block's carry (the value before it) a block at a time; then each carry into its
    block's values. About 3 sqrt(n) ops, each over all blocks; the values are grouped otherwise
    than one step at a time, so that they may differ from it in the last bits."""
    if x._data.dtype == np.float32:  # accumulated in float64 and rounded once, as PyTorch's
        # (its CPU scans run in the accumulation type: one step at a time in float32, 100,000
        # steps of logcumsumexp drifted 117 ulp from it)
        return _scan(x.double(), dim, step, identity).float()
    n = x.shape[dim]
    if n <= _SCAN_STEPS or not x.dtype.is_floating_point:
        steps = x.unbind(dim)
        first = steps[0] * 1.0 if x.dtype.is_floating_point else steps[0].clone()
        return stack(_running(first, steps[1:], step), dim)
    moved = x.movedim(dim, -1)
    lead = tuple(moved.shape[:-1])
    width = math.isqrt(n - 1) + 1  # ceil(sqrt(n)): at least two blocks
    blocks = -(-n // width)
    if blocks * width > n:
        padding = _wrap(np.full((*lead, blocks * width - n), identity, x._data.dtype))
        moved = cat([moved, padding], -1)
    columns = moved.reshape(*lead, blocks, width).unbind(-1)  # position j of every block
    within = _running(columns[0] * 1.0, columns[1:], step)
    ends = within[-1].unbind(-1)  # each block's running value at its end
    carries = _running(ends[0], ends[1:-1], step)  # the value before each block but the first
    inner = stack(within, -1)  # (..., blocks, width)
    carried = step(stack(carries, -1).unsqueeze(-1), inner.narrow(-2, 1, blocks - 1))
    out = cat([inner.narrow(-2, 0, 1), carried], -2).reshape(*lead, blocks * width)
    return out.narrow(-1, 0, n).movedim(-1, dim)


def _running(first: Tensor, rest, step) -> list:
    """``[first, step(first, rest[0]), step(that, rest[1]), ...]``: one recorded step each."""
    running = [first]
    for following in rest:
        running.append(step(running[-1], following))
    return running


def nansum(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002
    """The sum with NaNs counted as 0 (their gradient 0); follows ``torch.nansum``."""
    kept = where(input.isnan(), 0.0, input) if input.dtype.is_floating_point else input
    total = kept.sum(dtype=dtype) if dim is None else kept.sum(dim, keepdim=keepdim, dtype=dtype)
    return name_node(_all_kept(total, input, dim, keepdim), "NansumBackward0")


def _all_kept(result: Tensor, input: Tensor, dim, keepdim: bool) -> Tensor:  # noqa: A002
    """A reduction over every dim (``dim`` None) with ``keepdim``: each dim kept as 1, as
    PyTorch's (its ``sum`` and ``mean`` refuse the call; ``nansum``, ``var_mean``... take it)."""
    return result.reshape((1,) * input.dim()) if dim is None and keepdim else result


def nanmean(input: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002
    """The mean of the elements that are not NaN; follows ``torch.nanmean``. Raises PyTorch's
    ``RuntimeError`` for an integer input."""
    if not input.dtype.is_floating_point:
        raise RuntimeError(
            f"nanmean(): expected input to have floating point or complex dtype but got {input.dtype.type_name.split('.')[-1].title()}"
        )
    present = (~input.isnan()).to(input.dtype)
    count = _all_kept(present.sum(), input, dim, keepdim) if dim is None else present.sum(dim, keepdim=keepdim)
    return nansum(input, dim, keepdim, dtype=dtype) / count


def count_nonzero(input: Tensor, dim=None) -> Tensor:  # noqa: A002
    """How many elements are not zero (along ``dim``: an int or a tuple), int64; follows
    ``torch.count_nonzero``."""
    nonzero = (input != 0).to(_dtypes.int64)
    return nonzero.sum() if dim is None else nonzero.sum(dim)


def var_mean(input: Tensor, dim=None, *, correction=1, keepdim: bool = False, unbiased=None):  # noqa: A002
    """``(var, mean)``; follows ``torch.var_mean``."""
    if unbiased is not None:
        correction = 1 if unbiased else 0
    if dim is None:
        var = _all_kept(input.var(correction=correction), input, dim, keepdim)
        mean = _all_kept(input.mean(), input, dim, keepdim)
    else:
        var, mean = input.var(dim, correction=correction, keepdim=keepdim), input.mean(dim, keepdim=keepdim)
    return name_node(var, "VarMeanBackward0"), name_node(mean, "VarMeanBackward0")  # (one node in PyTorch)


def aminmax(input: Tensor, *, dim=None, keepdim: bool = False):  # noqa: A002
    """``(min, max)`` (all elements, or along ``dim``), ties sharing the gradient as ``amin`` and
    ``amax``; follows ``torch.aminmax``."""
    if dim is None:
        pair = (_all_kept(t, input, dim, keepdim) for t in (input.amin(), input.amax()))
    else:
        pair = (input.amin(dim, keepdim=keepdim), input.amax(dim, keepdim=keepdim))
    return return_types.aminmax(*(name_node(t, "AminmaxBackward0") for t in pair))  # (one node in PyTorch)


# -- order statistics ----------------------------------------------------------------------------


def _kth_positions(data: np.ndarray, dim: int, k: int, nan_first: bool) -> np.ndarray:
    """The index along ``dim`` of each slice's ``k``-th smallest value (0-based; NaN counted as
    the largest), kept as a dimension of 1; with ``nan_first``, a slice holding a NaN gives its
    first NaN (median's: NaN propagates)."""
    chosen = np.take(np.argsort(data, axis=dim, kind="stable"), [k], axis=dim).astype(np.int64)
    if nan_first and data.dtype.kind == "f":
        missing = np.isnan(data)
        first = np.expand_dims(missing.argmax(axis=dim), dim)
        chosen = np.where(missing.any(axis=dim, keepdims=True), first, chosen)
    return chosen


def _picked(input: Tensor, dim: int, positions, keepdim: bool, name: str, result_type):  # noqa: A002
    """(values, indices) of the element ``positions(values, dim)`` picks along ``dim`` (each
    slice's index, kept as a dimension of 1): the values gathered from the input (its gradient
    goes to the element picked)."""
    if input.dim() == 0:
        return result_type(input.clone(), _wrap(np.zeros((), np.int64)))
    dim = _normalize_dim(dim, input.dim())
    if input.shape[dim] == 0:  # (nanmedian's message names median, as PyTorch's)
        raise IndexError(f"{name.removeprefix('nan')}(): Expected reduction dim {dim} to have non-zero size.")
    guard_reads(f"{name}()", input)  # positions computed in numpy: a replay must read the same order
    chosen = positions(input._data, dim)
    values = gather(input, dim, chosen)
    indices = _wrap(chosen)
    if not keepdim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return result_type(name_node(values, _PICKED_NODES[name]), indices)


_PICKED_NODES = {"kthvalue": "KthvalueBackward0", "median": "MedianBackward1", "nanmedian": "NanmedianBackward1"}


def median(input: Tensor, dim=None, keepdim: bool = False):  # noqa: A002
    """The lower median (the ``(n - 1) // 2``-th smallest; NaN if any element is NaN): of all
    elements, a 0-d tensor whose gradient is shared among the elements equal to it (PyTorch's
    ``evenly_distribute_backward``); along ``dim``, ``(values, indices)``, the gradient to the
    element picked. Follows ``torch.median``; raises ``IndexError`` for an empty ``dim``."""
    if dim is not None:
        dim_ = _normalize_dim(dim, max(input.dim(), 1))
        extent = input.shape[dim_] if input.dim() else 1
        middle = (extent - 1) // 2
        return _picked(
            input, dim_, lambda data, d: _kth_positions(data, d, middle, True), keepdim, "median", return_types.median
        )
    flat = input.reshape(-1)
    if flat.numel() == 0:
        return name_node(flat.sum() * float("nan"), "MedianBackward0")
    guard_reads("median()", input)
    position = _kth_positions(flat._data, 0, (flat.numel() - 1) // 2, True)  # (1,)
    return name_node(_shared_among_ties(flat, gather(flat, 0, position).reshape(())), "MedianBackward0")


def _shared_among_ties(flat: Tensor, value: Tensor) -> Tensor:
    """``value``, an element picked from ``flat``, with its gradient shared evenly among the
    elements equal to it (the NaNs, for NaN), as PyTorch's ``evenly_distribute_backward``: a
    zero made of them added."""
    chosen = value._data
    ties = np.isnan(flat._data) if np.isnan(chosen) else flat._data == chosen
    if ties.sum() > 1 and flat.requires_grad:
        shared = where(_wrap(ties), flat, 0.0).sum()
        value = value.detach() + (shared - shared.detach()) / float(ties.sum())
    return value


def _nan_ranks(data: np.ndarray, dim: int) -> np.ndarray:
    """The index along ``dim`` of each slice's lower median of its non-NaN values, kept as a
    dimension of 1: in a stable sort (NaN last), position ``(count - 1) // 2``, rounded towards
    zero as C rounds it (0 for a slice of NaN only, whose first NaN it picks)."""
    count = (~np.isnan(data)).sum(axis=dim, keepdims=True) if data.dtype.kind == "f" else data.shape[dim]
    rank = np.maximum(np.asarray(count) - 1, 0) // 2
    order = np.argsort(data, axis=dim, kind="stable")  # (NaN sorts last in numpy)
    return np.take_along_axis(order, np.broadcast_to(rank, order.shape[:dim] + (1,) + order.shape[dim + 1 :]), dim)


def nanmedian(input: Tensor, dim=None, keepdim: bool = False):  # noqa: A002
    """``median`` of the values that are not NaN (NaN only where all are, or none): of all
    elements, a 0-d tensor whose gradient is shared among the elements equal to it (among the
    NaNs when it is NaN); along ``dim``, ``(values, indices)``, the gradient to the element
    picked. Follows ``torch.nanmedian`` (``NanmedianBackward0/1``); raises its ``IndexError``
    for an empty ``dim`` and ``NotImplementedError`` for bools."""
    if input._data.dtype == np.bool_:
        raise NotImplementedError("\"median_cpu\" not implemented for 'Bool'")
    if dim is not None:
        return _picked(
            input, _normalize_dim(dim, max(input.dim(), 1)), _nan_ranks, keepdim, "nanmedian", return_types.nanmedian
        )
    flat = input.reshape(-1)
    if flat.numel() == 0:
        return name_node(flat.sum() * float("nan"), "NanmedianBackward0")
    guard_reads("nanmedian()", input)
    value = gather(flat, 0, _nan_ranks(flat._data, 0)).reshape(())
    return name_node(_shared_among_ties(flat, value), "NanmedianBackward0")


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False):  # noqa: A002
    """``(values, indices)`` of the ``k``-th smallest element (1-based) along ``dim``, NaN the
    largest; the gradient to the element picked. Follows ``torch.kthvalue``; raises PyTorch's
    ``RuntimeError`` for ``k`` out of range."""
    dim_ = _normalize_dim(dim, max(input.dim(), 1))
    extent = input.shape[dim_] if input.dim() else 1
    if not 1 <= k <= extent:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {dim_}")
    return _picked(
        input, dim_, lambda data, d: _kth_positions(data, d, k - 1, False), keepdim, "kthvalue", return_types.kthvalue
    )


def _round(self, decimals: int = 0) -> Tensor:
    """``round(x)`` half to even, or to ``decimals`` places (negative: tens, hundreds...),
    computed as PyTorch's kernel, ``nearbyint(x * 10**decimals) / 10**decimals`` in the
    tensor's dtype; its gradient is zero. Follows ``torch.round``."""
    if decimals == 0 or not self.dtype.is_floating_point:
        return _plain_round(self)
    scale = 10.0 ** abs(decimals)
    rounded = _plain_round(self * scale) / scale if decimals > 0 else _plain_round(self / scale) * scale
    return name_node(rounded, "RoundBackward1")


_plain_round = Tensor.round


def index_fill(input: Tensor, dim: int, index, value) -> Tensor:  # noqa: A002
    """A copy of ``input`` with the slices ``index`` along ``dim`` set to ``value`` (a number or
    a 0-d tensor, whose gradient is the sum over the slices); follows ``torch.index_fill``."""
    dim = _normalize_dim(dim, max(input.dim(), 1))
    guard_reads("index_fill()", index)  # the positions, read in numpy: a replay must not reuse them
    positions = np.asarray(index._data if isinstance(index, Tensor) else index, np.int64).reshape(-1)
    mask = np.zeros(input.shape[dim] if input.dim() else 1, bool)
    mask[positions] = True
    shape = [1] * max(input.dim(), 1)
    shape[dim] = mask.size
    chosen = _wrap(np.broadcast_to(mask.reshape(shape), input.shape or (1,)).reshape(input.shape))
    fill = value if isinstance(value, Tensor) else _wrap(np.asarray(value, input._data.dtype))
    return name_node(
        where(chosen, fill.to(input.dtype) if isinstance(value, Tensor) else fill, input), "IndexFillBackward0"
    )


# -- picks and arrangements --------------------------------------------------------------------


def take(input: Tensor, index) -> Tensor:  # noqa: A002
    """Elements of ``input`` seen as 1-D at ``index`` (any shape: the result's); follows
    ``torch.take``."""
    return name_node(input.reshape(-1)[as_tensor(index)], "TakeBackward0")


def take_along_dim(input: Tensor, indices: Tensor, dim=None) -> Tensor:  # noqa: A002
    """``gather`` along ``dim`` with ``input`` and ``indices`` broadcast against each other
    (except along ``dim``); both seen as 1-D without ``dim``. Along a ``dim``, a negative index
    counts from the end, as PyTorch 2.13's (without one, it raises, as there). Follows
    ``torch.take_along_dim``."""
    if dim is None:
        return input.reshape(-1).gather(0, indices.reshape(-1))
    dim = _normalize_dim(dim, input.dim())
    if isinstance(indices, Tensor) and indices._data.dtype.kind == "i" and (indices._data < 0).any():
        guard_reads("take_along_dim()", indices)  # (gather reads them too)
        extent = input.shape[dim]
        indices = _wrap(np.where(indices._data < 0, indices._data + extent, indices._data))
    shape_in, shape_idx = list(input.shape), list(indices.shape)
    shape_in[dim] = shape_idx[dim] = 1
    common = list(np.broadcast_shapes(tuple(shape_in), tuple(shape_idx)))
    source = input.expand(common[:dim] + [input.shape[dim]] + common[dim + 1 :])
    index = indices.expand(common[:dim] + [indices.shape[dim]] + common[dim + 1 :])
    return source.gather(dim, index)


def rot90(input: Tensor, k: int = 1, dims=(0, 1)) -> Tensor:  # noqa: A002
    """Rotated by 90 degrees ``k`` times, from the first of ``dims`` toward the second; follows
    ``torch.rot90``. Raises PyTorch's ``RuntimeError`` for other ``dims``."""
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    first, second = (_normalize_dim(d, input.dim()) for d in dims)
    if first == second:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {first} and dim1 = {second}")
    k %= 4
    if k == 1:
        return input.flip(second).transpose(first, second)
    if k == 2:
        return input.flip((first, second))
    if k == 3:
        return input.flip(first).transpose(first, second)
    return input.clone()


def kron(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    """The Kronecker product: each element of ``input`` times all of ``other``, laid out in
    blocks (dimensions matched from the last, the fewer padded with 1s); follows ``torch.kron``."""
    ndim = max(input.dim(), other.dim())
    a = input.reshape((1,) * (ndim - input.dim()) + tuple(input.shape))
    b = other.reshape((1,) * (ndim - other.dim()) + tuple(other.shape))
    # a's dimension k before b's: (a0, 1, a1, 1, ...) * (1, b0, 1, b1, ...)
    spread_a = a.reshape(tuple(v for extent in a.shape for v in (extent, 1)))
    spread_b = b.reshape(tuple(v for extent in b.shape for v in (1, extent)))
    product = spread_a * spread_b
    return product.reshape(tuple(x * y for x, y in zip(a.shape, b.shape)))


# -- in place: the forms optimizers are written with --------------------------------------------


def _lerp_(self, end, weight) -> Tensor:
    return in_place(self, lambda t: lerp(t, end, weight), "Lerp")


def _addcmul_(self, tensor1, tensor2, *, value=1) -> Tensor:
    return in_place(self, lambda t: addcmul(t, tensor1, tensor2, value=value), "Addcmul")


def _addcdiv_(self, tensor1, tensor2, *, value=1) -> Tensor:
    return in_place(self, lambda t: addcdiv(t, tensor1, tensor2, value=value), "Addcdiv")


def _addmm_(self, mat1, mat2, *, beta=1, alpha=1) -> Tensor:
    return in_place(self, lambda t: addmm(t, mat1, mat2, beta=beta, alpha=alpha), "Addmm")


# -- layout ----------------------------------------------------------------------------------


def _stride(self, dim=None):
    """The strides in elements, as PyTorch counts them (``torch.Tensor.stride``). A new
    dimension of size 1 (``x[None]``), which numpy strides 0, has PyTorch's ``unsqueeze``
    stride: the extent of the dimension after it (1 for the last)."""
    shape = self._data.shape
    strides = [step // self._data.itemsize for step in self._data.strides]
    for d in range(len(shape) - 1, -1, -1):
        if shape[d] == 1 and strides[d] == 0:
            strides[d] = shape[d + 1] * strides[d + 1] if d + 1 < len(shape) else 1
    strides = tuple(strides)
    return strides if dim is None else strides[_normalize_dim(dim, max(self._data.ndim, 1))]


def _storage_offset(self) -> int:
    """Elements from the start of the storage (of the tensor's base) to its first element."""
    base = self._data
    while isinstance(base.base, np.ndarray):
        base = base.base
    start = base.__array_interface__["data"][0]
    return (self._data.__array_interface__["data"][0] - start) // self._data.itemsize


def polygamma(n: int, input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's names
    """The n-th derivative of digamma: ``digamma`` for n = 0, then ``lgamma``'s derivatives of
    order n + 1, of a floating tensor (integers as float32, as PyTorch); follows
    ``torch.polygamma`` (``PolygammaBackward0``). Differentiable for n = 0 and 1 (whose
    gradient is polygamma(2)); for n >= 2 the values are scipy's and, with an input that requires
    grad, ``NotImplementedError`` is raised rather than a result without a gradient. Raises
    ``RuntimeError`` for a negative n, as PyTorch."""
    n = int(n)
    if n < 0:
        raise RuntimeError("polygamma(n, x) does not support negative n.")
    x = input if input.is_floating_point() else input.to(_dtypes.DEFAULT_FLOAT)
    if n == 0:
        return name_node(x.digamma(), "PolygammaBackward0")
    if n == 1:
        return x._trigamma()
    if x.requires_grad and is_grad_enabled():
        raise NotImplementedError(f"the gradient of polygamma({n}, x) is not implemented in tapegrad yet (n <= 1 is)")
    guard_reads("polygamma()", x)  # (values of scipy's, a constant of a recording)
    import scipy.special

    return _wrap(np.asarray(scipy.special.polygamma(n, x._data)).astype(x._data.dtype))


def mvlgamma(input: Tensor, p: int) -> Tensor:  # noqa: A002
    """The multivariate log-gamma function of dimension ``p``: ``sum_i lgamma(x - i / 2)`` over
    i < p, plus ``p (p - 1) / 4 log(pi)``, elementwise; follows ``torch.mvlgamma``
    (``MvlgammaBackward0``): at or below ``(p - 1) / 2`` a pole (+inf) or a log of |Gamma|, as
    PyTorch's. Integers compute in the default float dtype. Raises PyTorch's ``RuntimeError``
    for ``p`` below 1."""
    if p < 1:
        raise RuntimeError("p has to be greater than or equal to 1")
    if not input.is_floating_point():
        input = input.to(_dtypes.DEFAULT_FLOAT)  # noqa: A001
    offsets = _wrap(-np.arange(p, dtype=input._data.dtype) / 2)
    total = (input.unsqueeze(-1) + offsets).lgamma().sum(-1) + p * (p - 1) / 4 * math.log(math.pi)
    return name_node(total, "MvlgammaBackward0")


def xlog1py(input, other) -> Tensor:  # noqa: A002
    """``input * log1p(other)``, 0 where ``input`` is 0 (NaN where ``other`` is), broadcast;
    follows ``torch.special.xlog1py``, whose gradients it has (as ``xlogy``'s: the log masked
    where ``input`` is 0 and ``other`` is at most -1 or infinite)."""
    x, y = _floating_operands(input, other)
    log = where((x == 0) & ((y <= -1) | (y == math.inf)), 0.0, y.log1p())
    return name_node(x * log + 0.0, "SpecialXlog1PyBackward0")


install(
    {
        "polygamma": lambda self, n: polygamma(n, self),
        "mvlgamma": mvlgamma,
        "quantile": lambda self, q, dim=None, keepdim=False, *, interpolation="linear": quantile(
            self, q, dim, keepdim, interpolation=interpolation
        ),
        "hypot": hypot,
        "logit": logit,
        "logit_": logit_,
        "xlogy": xlogy,
        "sinc": sinc,
        "deg2rad": deg2rad,
        "rad2deg": rad2deg,
        "nan_to_num": nan_to_num,
        "nan_to_num_": lambda self, nan=0.0, posinf=None, neginf=None: in_place(
            self, lambda t: nan_to_num(t, nan, posinf, neginf), "NanToNum"
        ),
        "nanmedian": nanmedian,
        "frac": frac,
        "cumprod": cumprod,
        "logcumsumexp": logcumsumexp,
        "nansum": nansum,
        "nanmean": nanmean,
        "count_nonzero": count_nonzero,
        "var_mean": var_mean,
        "aminmax": aminmax,
        "median": median,
        "kthvalue": kthvalue,
        "round": _round,
        "index_fill": index_fill,
        "index_fill_": lambda self, dim, index, value: in_place(
            self, lambda t: index_fill(t, dim, index, value), "IndexFill"
        ),
        "take": take,
        "take_along_dim": take_along_dim,
        "rot90": rot90,
        "kron": kron,
        "lerp_": _lerp_,
        "addcmul_": _addcmul_,
        "addcdiv_": _addcdiv_,
        "addmm_": _addmm_,
        "square_": lambda self: in_place(self, lambda t: t**2, "Pow"),
        "clamp_min_": lambda self, min: in_place(  # noqa: A006
            self, lambda t: name_node(t.clamp(min=min), "ClampMinBackward0"), "ClampMin"
        ),
        "clamp_max_": lambda self, max: in_place(  # noqa: A006
            self, lambda t: name_node(t.clamp(max=max), "ClampMaxBackward0"), "ClampMax"
        ),
        "stride": _stride,
        "storage_offset": _storage_offset,
        "nbytes": property(lambda self: self._data.nbytes),
        "itemsize": property(lambda self: self._data.itemsize),
    }
)


_QUANTILE_MODES = ("linear", "lower", "higher", "midpoint", "nearest")


def quantile(input: Tensor, q, dim=None, keepdim: bool = False, *, interpolation: str = "linear", out=None) -> Tensor:  # noqa: A002
    """The ``q``-quantiles of ``input`` (float) along ``dim`` (all elements when None): for a
    number ``q``, the reduced shape; for a 1-D ``q``, that shape with ``len(q)`` first. Between
    two sorted values the ``interpolation`` decides (``linear``: ``a + (b - a) * frac``, as
    PyTorch's lerp); a slice holding NaN gives NaN. Differentiable: the gradient goes to the
    one or two values the quantile reads. Follows ``torch.quantile``; raises its
    ``RuntimeError``s for ``q`` outside [0, 1] or of another dtype or rank, an empty or integer
    input, or an unknown mode."""
    if out is not None:
        raise NotImplementedError("quantile with out= is not supported yet")
    if not input.is_floating_point():
        raise RuntimeError("quantile() input tensor must be either float or double dtype")
    if input.numel() == 0:
        raise RuntimeError("quantile() input tensor must be non-empty")
    if interpolation not in _QUANTILE_MODES:
        raise RuntimeError(
            "quantile() interpolation must be one of linear, lower, higher, midpoint or nearest, but got "
            + str(interpolation)
        )
    scalar_q = not isinstance(q, Tensor)
    if not scalar_q:
        if q.dim() > 1:
            raise RuntimeError("quantile() q must be a scalar or 1D tensor")
        if q.dtype != input.dtype:
            raise RuntimeError("quantile() q tensor must be same dtype as the input tensor")
        scalar_q = q.dim() == 0
    guard_reads("quantile()", q)  # the positions and weights come from q's values, in numpy
    levels = np.atleast_1d(np.asarray(q._data if isinstance(q, Tensor) else q, np.float64))
    bad = levels[(levels < 0) | (levels > 1)]
    if bad.size:
        raise RuntimeError(f"quantile() q must be in the range [0, 1] but got {bad[0]:g}")
    x = input.reshape(-1) if dim is None else input
    dim = 0 if dim is None else _normalize_dim(dim, max(input.dim(), 1))
    ordered = x.sort(dim).values if x.dim() else x.reshape(1)
    n = ordered.shape[dim] if x.dim() else 1
    ranks = levels * (n - 1)
    if interpolation == "lower":
        ranks = np.floor(ranks)
    elif interpolation == "higher":
        ranks = np.ceil(ranks)
    elif interpolation == "nearest":
        ranks = np.round(ranks)  # (half to even, as PyTorch's round)
    below, above = np.floor(ranks).astype(np.int64), np.ceil(ranks).astype(np.int64)
    weights = 0.5 * (above > below) if interpolation == "midpoint" else ranks - below
    moved = ordered.movedim(dim, 0)
    low, high = moved[_wrap(below)], moved[_wrap(above)]  # (len(q), *rest)
    shape = (len(levels),) + (1,) * (low.dim() - 1)
    frac = _wrap(weights.reshape(shape).astype(input._data.dtype))
    values = lerp(low, high, frac)
    has_nan = moved.isnan().any(0, keepdim=True)
    values = where(has_nan, _wrap(np.asarray(np.nan, input._data.dtype)), values)
    if keepdim:
        values = values.unsqueeze(dim + 1) if dim is not None and input.dim() else values
        if x is not input:  # all elements: every dimension kept, of size 1
            values = values.reshape((len(levels),) + (1,) * input.dim())
    return values.squeeze(0) if scalar_q else values
