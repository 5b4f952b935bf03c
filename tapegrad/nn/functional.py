"""``tapegrad.nn.functional``: PyTorch's functional activations over the op table."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import _dtypes, _factories, _views
from .._grad_mode import active_recording, no_grad, refuses_gradient
from .._grad_mode import is_grad_enabled as _grad_enabled
from .._grad_mode import state as _grad_state
from .._indexing import gather_rows, index_add, pick
from .._linalg import check_addmm_dtypes, linear_short
from .._record import _SCALAR_OPS, _scalar, name_node, record
from .._record import broadcast_error as _broadcast_error
from .._reductions import batch_norm as _batch_norm
from .._reductions import layer_norm as _layer_norm
from .._reductions import log_softmax as _log_softmax
from .._reductions import nll_targets as _nll_targets
from .._reductions import softmax as _softmax
from .._selection import _valued_as
from .._selection import where as _where
from .._views import transpose_onto
from ..tensor import (
    Size,
    Tensor,
    _wrap,
    argument_type_name,
    check_tensor_arguments,
    floating_kernel,
    guard_reads,
    holds,
    on_tape,
)
from ._convolution import (  # noqa: F401 - the public names
    adaptive_avg_pool2d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose2d,
    fold,
    max_pool2d,
    unfold,
)
from ._losses import (  # noqa: F401 - the public names
    _as_dtype_of,
    _legacy_reduction,
    _reduce,
    _same_dtype_weight,
    cosine_embedding_loss,
    cosine_similarity,
    hinge_embedding_loss,
    kl_div,
    margin_ranking_loss,
    pairwise_distance,
    soft_margin_loss,
    triplet_margin_loss,
)
from ._more_functional import (  # noqa: F401 - the public names
    adaptive_avg_pool1d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    bilinear,
    conv_transpose1d,
    gaussian_nll_loss,
    hardshrink,
    interpolate,
    local_response_norm,
    max_pool1d,
    multi_margin_loss,
    multilabel_soft_margin_loss,
    pixel_shuffle,
    pixel_unshuffle,
    poisson_nll_loss,
    prelu,
    rrelu,
    softshrink,
    tanhshrink,
    upsample,
    upsample_bilinear,
    upsample_nearest,
)
from ._more_functional import threshold as _threshold
from ._pointwise import (  # noqa: F401 - the public names
    _written,
    _zeros,
    celu,
    hardsigmoid,
    hardswish,
    hardtanh,
    logsigmoid,
    mish,
    relu6,
    selu,
    softsign,
)
from ._sampling import affine_grid, grid_sample  # noqa: F401 - the public names


def relu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002 - PyTorch's names
    """max(x, 0) elementwise (written into ``input`` with ``inplace``); follows
    ``torch.nn.functional.relu``."""
    if not inplace:  # (the common call, without a closure: relu runs in every layer)
        return input.relu()
    return _written(input, lambda x: x.relu(), inplace, "ReluBackward0", composite=False)


def sigmoid(input: Tensor) -> Tensor:  # noqa: A002
    """1 / (1 + exp(-x)) elementwise; follows ``torch.nn.functional.sigmoid``."""
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:  # noqa: A002
    """tanh elementwise; follows ``torch.nn.functional.tanh``."""
    return input.tanh()


def gelu(input: Tensor, approximate: str = "none") -> Tensor:  # noqa: A002
    """x * Phi(x), Phi the standard normal CDF (``approximate="tanh"``: PyTorch's tanh
    approximation of it); follows ``torch.nn.functional.gelu``. Raises ``RuntimeError`` for
    another ``approximate``, as PyTorch does."""
    floating_kernel(input, "GeluKernelImpl")
    if approximate == "none":
        return input.gelu()
    if approximate != "tanh":
        raise RuntimeError("approximate argument must be either none or tanh.")
    inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
    return name_node(input * 0.5 * (inner.tanh() + 1.0), "GeluBackward0")


def embedding(input, weight: Tensor, padding_idx=None, max_norm=None, norm_type: float = 2.0,  # noqa: A002
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:  # fmt: skip
    """Rows of ``weight`` (V, D) picked by the integer ``input`` (any shape S): (*S, D);
    follows ``torch.nn.functional.embedding`` (``EmbeddingBackward0``). Rows picked at
    ``padding_idx`` take no gradient. ``max_norm``: the rows picked are first scaled in place,
    outside autograd, to a ``norm_type`` norm of at most ``max_norm``, as PyTorch's
    ``embedding_renorm_``. ``sparse``: the gradient is dense here (the same values). Raises
    ``IndexError`` for an index outside ``[0, V)``; ``NotImplementedError`` for
    ``scale_grad_by_freq``."""
    if scale_grad_by_freq:
        raise NotImplementedError("embedding: scale_grad_by_freq is not supported yet")
    kind = (input._data if isinstance(input, Tensor) else np.asarray(input)).dtype.kind
    if kind not in "iu":
        name = _dtypes.from_numpy_dtype(np.asarray(input._data if isinstance(input, Tensor) else input).dtype)
        raise RuntimeError(
            "Expected tensor for argument #1 'indices' to have one of the following scalar types: Long, Int; but got "
            f"torch.{name.type_name}Tensor instead (while checking arguments for embedding)"
        )
    if weight.dim() != 2:
        raise RuntimeError("'weight' must be 2-D")
    if padding_idx is not None and not -weight.shape[0] <= padding_idx < weight.shape[0]:
        raise AssertionError("Padding_idx must be within num_embeddings")  # (PyTorch's assert, in Python)
    if max_norm is not None:
        rows = np.unique(np.asarray(input._data if isinstance(input, Tensor) else input).reshape(-1))
        with no_grad():
            picked = weight[_wrap(rows)]
            norms = picked.norm(p=norm_type, dim=1, keepdim=True)
            scale = _where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
            weight[_wrap(rows)] = picked * scale
    out = gather_rows("embedding", weight, input)
    if padding_idx is None:
        return out
    padding = padding_idx + weight.shape[0] if padding_idx < 0 else padding_idx
    indices = input if isinstance(input, Tensor) else _wrap(np.asarray(input))
    # the padding rows' values, detached: no gradient reaches that row of the weight
    return name_node(_where((indices == padding).unsqueeze(-1), out.detach(), out), "EmbeddingBackward0")


def embedding_bag(input, weight: Tensor, offsets=None, max_norm=None, norm_type: float = 2, scale_grad_by_freq: bool = False,  # noqa: A002
                  mode: str = "mean", sparse: bool = False, per_sample_weights=None, include_last_offset: bool = False,
                  padding_idx=None) -> Tensor:  # fmt: skip
    """The rows of ``weight`` (V, D) picked by ``input``, reduced per bag: (B, D). Bags are the
    rows of a 2-D ``input``, or the runs of a 1-D one that start at ``offsets`` (B entries, or
    B + 1 with ``include_last_offset``). ``mode``: "sum" (rows times ``per_sample_weights`` if
    given), "mean" or "max"; an empty bag gives zeros; entries equal to ``padding_idx`` are
    left out (and take no gradient). Follows ``torch.nn.functional.embedding_bag``
    (``EmbeddingBagBackward0``), with its errors; ``scale_grad_by_freq`` raises
    ``NotImplementedError``."""
    if mode not in ("sum", "mean", "max"):
        raise ValueError("mode has to be one of sum, mean or max")
    if scale_grad_by_freq:
        raise NotImplementedError("embedding_bag: scale_grad_by_freq is not supported yet")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(
            f"embedding_bag: per_sample_weights was not None. per_sample_weights is only supported for mode='sum' "
            f"(got mode='{mode}'). Please open a feature request on GitHub."
        )
    if weight.dim() != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {weight.dim()}")
    count = weight.shape[0]
    if padding_idx is not None and not -count <= padding_idx < count:  # (it picked rows modulo V)
        raise RuntimeError(
            f"padding_idx must be within the number of embeddings, -{count} through {count - 1}, but got {padding_idx}"
        )
    indices = np.asarray(input._data if isinstance(input, Tensor) else input)
    if per_sample_weights is not None and tuple(per_sample_weights.shape) != indices.shape:
        raise ValueError(
            f"embedding_bag: If per_sample_weights ({per_sample_weights.shape}) is not None, then it must have the "
            f"same shape as the input ({Size(indices.shape)})"
        )
    if indices.ndim == 2:
        if offsets is not None:
            raise ValueError(
                "if input is 2D, then offsets has to be None, as input is treated is a mini-batch of fixed length "
                f"sequences. However, found offsets of type {type(offsets)}"
            )
        bags, length = indices.shape
        starts = np.arange(bags) * length
        flat = indices.reshape(-1)
    elif indices.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        starts = np.asarray(offsets._data if isinstance(offsets, Tensor) else offsets).reshape(-1).astype(np.int64)
        if starts.size and starts[0] != 0:
            raise RuntimeError(
                "offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from position 0. "
                f"However, got {starts[0]}"
            )
        if starts.size and starts[-1] > indices.size:  # (an empty last bag, silently)
            raise RuntimeError(
                f"offsets[-1] can not be greater than input's length {indices.size} but got offsets[-1] of {starts[-1]}"
            )
        falls = np.flatnonzero(np.diff(starts) < 0)
        if falls.size:  # (bags are runs: a decreasing offset gave bags of other rows, silently)
            at = int(falls[0]) + 1
            raise RuntimeError(
                f"embedding_bag: offsets must be non-decreasing, but got offsets[{at}] = {starts[at]} after "
                f"offsets[{at - 1}] = {starts[at - 1]}"
            )
        if include_last_offset:
            starts = starts[:-1]
        flat = indices
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {indices.ndim}")
    outside = np.flatnonzero((flat < 0) | (flat >= weight.shape[0]))
    if outside.size:  # (numpy's IndexError, or a row counted from the end)
        at = int(outside[0])
        raise RuntimeError(
            f"Index {at} of input takes value {flat[at]} which is not in the valid range [0, {weight.shape[0]})"
        )
    guard_reads("embedding_bag()", input, offsets)  # which rows fall in which bag
    bags, dim = starts.size, weight.shape[1]
    kept = np.arange(flat.size) if padding_idx is None else np.flatnonzero(flat != padding_idx % weight.shape[0])
    # each kept entry's bag: bags are runs, so these come in order
    bag_of = np.searchsorted(starts, kept, side="right") - 1
    rows = embedding(_wrap(flat[kept].astype(np.int64)), weight, max_norm=max_norm, norm_type=norm_type)
    if per_sample_weights is not None:
        rows = rows * per_sample_weights.reshape(-1)[_wrap(kept)].reshape(-1, 1).to(rows.dtype)
    counts = np.bincount(bag_of, minlength=bags)
    if mode == "max":
        # (B, widest bag) positions of each bag's rows, padded with a -inf row; an empty bag: 0
        slots = np.full((bags, max(int(counts.max()) if bags else 0, 1)), kept.size, np.int64)
        slots[bag_of, np.arange(kept.size) - np.searchsorted(bag_of, bag_of)] = np.arange(kept.size)
        low = _wrap(np.full((1, dim), -np.inf, weight._data.dtype))
        result = _views.cat([rows, low], 0)[_wrap(slots)].max(1).values
        result = _where(_wrap((counts > 0).reshape(-1, 1)), result, 0.0)
    else:
        zeros = _wrap(np.zeros((bags, dim), weight._data.dtype))
        result = index_add(zeros, 0, _wrap(bag_of.astype(np.int64)), rows)
        if mode == "mean":
            result = result / _wrap(np.maximum(counts, 1).astype(weight._data.dtype).reshape(-1, 1))
    return name_node(result, "EmbeddingBagBackward0")


def layer_norm(input: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:  # noqa: A002
    """Normalise over the last ``normalized_shape`` dimensions, then scale and shift; follows ``torch.nn.functional.layer_norm``."""
    floating_kernel(input, "LayerNormKernelImpl")
    if isinstance(normalized_shape, (int, np.integer)):
        raise TypeError(
            "layer_norm(): argument 'normalized_shape' (position 2) must be tuple of ints, "
            f"not {type(normalized_shape).__name__}"
        )
    _same_dtype_parameters(input, weight, bias)
    normalized_shape = tuple(int(extent) for extent in normalized_shape)
    for name, parameter in (("weight", weight), ("bias", bias)):
        if parameter is not None and tuple(parameter.shape) != normalized_shape:  # (a broadcast's message)
            raise RuntimeError(
                f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                f"{list(parameter.shape)} and normalized_shape = {list(normalized_shape)}"
            )
    out = _layer_norm(input, normalized_shape, eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def _same_dtype_parameters(input: Tensor, *parameters) -> None:  # noqa: A002
    """PyTorch's check that a normalization's weight and bias have the input's dtype: numpy
    promoted a float32 input scaled by a float64 weight to a float64 result, silently."""
    for parameter in parameters:
        if parameter is not None and parameter._data.dtype != input._data.dtype:
            if input._data.dtype == np.float32:
                raise RuntimeError("mixed dtype (CPU): expect parameter to have scalar type of Float")
            raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")


def rms_norm(input: Tensor, normalized_shape, weight=None, eps=None) -> Tensor:  # noqa: A002
    """``input / sqrt(mean(input ** 2) + eps)`` over the last ``normalized_shape`` dimensions,
    times ``weight`` (of that shape) if given; ``eps`` None is the dtype's machine epsilon. Same
    shape and dtype as ``input``. Composed of recorded ops as PyTorch's CPU ``rms_norm`` is (its
    ``grad_fn`` a ``MulBackward0``). Raises ``TypeError`` for an int ``normalized_shape`` and
    ``RuntimeError`` for one that is not the input's trailing shape. Follows
    ``torch.nn.functional.rms_norm``."""
    if isinstance(normalized_shape, (int, np.integer)):
        raise TypeError(
            "rms_norm(): argument 'normalized_shape' (position 2) must be tuple of ints, "
            f"not {type(normalized_shape).__name__}"
        )
    shape = tuple(int(extent) for extent in normalized_shape)
    size = tuple(input.shape)
    if not shape or size[len(size) - len(shape) :] != shape:
        listed = ", ".join(str(extent) for extent in shape)
        raise RuntimeError(
            f"Given normalized_shape=[{listed}], expected input with shape [*{listed}], but got input of size{list(size)}"
        )
    if eps is None:
        eps = float(np.finfo(input._data.dtype).eps)
    dims = tuple(range(input.dim() - len(shape), input.dim()))
    out = input * (input * input).mean(dims, keepdim=True).add(eps).rsqrt()
    return out * weight if weight is not None else out


def silu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """x * sigmoid(x) elementwise (written into ``input`` with ``inplace``); follows
    ``torch.nn.functional.silu``."""
    floating_kernel(input, "silu_cpu")
    if not inplace:
        return input.silu()
    return _written(input, lambda x: x.silu(), inplace, "SiluBackward0", composite=False)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:  # noqa: A002
    """x, or x * negative_slope below 0 (written into ``input`` with ``inplace``); follows
    ``torch.nn.functional.leaky_relu``."""
    floating_kernel(input, "leaky_relu_cpu")
    slope = float(negative_slope)
    return _written(
        input, lambda x: _scalar(_SCALAR_OPS["leaky_relu"], x, slope), inplace, "LeakyReluBackward0", composite=False
    )


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """x, or alpha * (exp(x) - 1) below 0 (written into ``input`` with ``inplace``); follows
    ``torch.nn.functional.elu``."""
    floating_kernel(input, "elu_cpu")
    alpha = float(alpha)
    return _written(input, lambda x: _scalar(_SCALAR_OPS["elu"], x, alpha), inplace, "EluBackward0", composite=False)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002
    """log(1 + exp(beta * x)) / beta, and x where beta * x is above ``threshold``; follows
    ``torch.nn.functional.softplus``."""
    floating_kernel(input, "softplus_cpu")
    if beta == 1.0 and threshold == 20.0:
        return input.softplus()  # one row (its own threshold is PyTorch's default)
    scaled = input * beta
    # Above ``threshold`` x is taken as it is, below it softplus(beta x) / beta. The row has a
    # cut of its own at 20, above which it is x too: with a larger threshold, beta x + exp(-beta x)
    # there (softplus to float64's last digit; the row's x was 4e5 ulp off at 22).
    below = scaled.softplus()
    if threshold > 20.0:
        high = _where(scaled > 20.0, scaled, 20.0)  # (exp(-x) of a very negative x, unused, was inf: NaN gradients)
        below = _where(scaled > 20.0, high + (-high).exp(), below)
    return name_node(_where(scaled > threshold, input, below / beta), "SoftplusBackward0")


def _implicit_dim(name: str, ndim: int) -> int:
    """The dimension PyTorch's softmax family takes when none is given (``_get_softmax_dim``),
    with its warning."""
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X as an argument.",
        UserWarning,
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:  # noqa: A002
    """exp(x) / sum(exp(x)) along ``dim`` (None: PyTorch's implicit choice, 0 for 0-, 1- and
    3-d inputs and 1 for others, with its deprecation warning); follows
    ``torch.nn.functional.softmax``."""
    if dim is None:
        dim = _implicit_dim("softmax", input.dim())
    return _softmax(input, dim, dtype)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:  # noqa: A002
    """softmax(-x) along ``dim`` (None as in ``softmax``); follows ``torch.nn.functional.softmin``."""
    if dim is None:
        dim = _implicit_dim("softmin", input.dim())
    return _softmax(-input, dim, dtype)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    """x @ weight.T + bias, with weight of shape (out, in); follows ``torch.nn.functional.linear``.
    With a bias its node shows as PyTorch's (``AddmmBackward0`` for a 2-D input, ``ViewBackward0``
    for others, which PyTorch flattens to 2-D and back), as ``print(model(x))`` shows it. Raises
    PyTorch's ``TypeError`` for an input, weight or bias that is not a tensor."""
    if not (isinstance(input, Tensor) and isinstance(weight, Tensor) and (bias is None or isinstance(bias, Tensor))):
        named = (("input", input), ("weight", weight)) + ((("bias", bias),) if bias is not None else ())
        check_tensor_arguments("linear", *named)  # (its call kept off a layer's path)
    if weight._data.ndim == 2 and (
        input._data.dtype != weight._data.dtype or (bias is not None and bias._data.dtype != weight._data.dtype)
    ):
        # PyTorch's addmm where it takes that path (a 2-D input; a contiguous one and a 1-D
        # bias), else matmul's, and the bias then added in place, in the product's dtype
        fused = bias is not None and (
            input._data.ndim == 2 or (bias._data.ndim == 1 and input._data.flags.c_contiguous)
        )
        check_addmm_dtypes(bias if fused else None, input, weight)
        bias = bias.to(input.dtype)
    # (a 1-D weight with a bias: PyTorch's addmm, for a 2-D input or a bias with a dimension,
    # needs a matrix; a 0-d bias on another input is added to the product)
    if weight._data.ndim == 1 and bias is not None and (input._data.ndim == 2 or bias._data.ndim != 0):
        raise RuntimeError("mat2 must be a matrix, got 1-D tensor")
    if input._data.ndim == 0 or weight._data.ndim == 0:  # (matmul's words, not linear's)
        raise RuntimeError(
            f"both arguments to linear need to be at least 1D, but they are {input.dim()}D and {weight.dim()}D"
        )
    out = linear_short(input, weight, bias)  # (a layer's usual call, in one function)
    if out is not None:
        return out if bias is None else name_node(out, "AddmmBackward0")
    out = input @ (transpose_onto(weight, input) if weight._data.ndim == 2 else weight.t())
    if bias is None:
        return out
    return name_node(out + bias, "AddmmBackward0" if input._data.ndim == 2 else "ViewBackward0")


def relu_(input: Tensor) -> Tensor:  # noqa: A002
    """``relu(input, inplace=True)``; follows ``torch.nn.functional.relu_``."""
    return relu(input, inplace=True)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:  # noqa: A002
    """``leaky_relu(input, negative_slope, inplace=True)``; follows ``torch.nn.functional.leaky_relu_``."""
    return leaky_relu(input, negative_slope, inplace=True)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:  # noqa: A002
    """``elu(input, alpha, inplace=True)``; follows ``torch.nn.functional.elu_``."""
    return elu(input, alpha, inplace=True)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:  # noqa: A002
    """``hardtanh(input, min_val, max_val, inplace=True)``; follows ``torch.nn.functional.hardtanh_``."""
    return hardtanh(input, min_val, max_val, inplace=True)


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:  # noqa: A002
    """``threshold(input, threshold, value, inplace=True)``; follows ``torch.nn.functional.threshold_``."""
    return _threshold(input, threshold, value, inplace=True)


def gumbel_softmax(logits: Tensor, tau: float = 1, hard: bool = False, eps: float = 1e-10, dim: int = -1) -> Tensor:
    """A differentiable sample from the categorical distribution of ``logits`` (softmax over
    ``dim`` of ``(logits + Gumbel noise) / tau``); with ``hard``, one-hot in the forward and the
    soft sample's gradient (straight through). Same shape as ``logits``; the noise is tapegrad's
    generator's. Follows ``torch.nn.functional.gumbel_softmax``."""
    if eps != 1e-10:
        warnings.warn("`eps` parameter is deprecated and has no effect.", stacklevel=2)
    draws = _factories.numpy_generator().exponential(size=tuple(logits.shape))
    gumbels = _wrap(-np.log(draws).astype(logits._data.dtype))  # ~Gumbel(0, 1)
    y_soft = ((logits + gumbels) / tau).softmax(dim)
    if not hard:
        return y_soft
    index = y_soft.max(dim, keepdim=True)[1]
    y_hard = _factories.zeros_like(logits).scatter_(dim, index, 1.0)
    return y_hard - y_soft.detach() + y_soft


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:  # noqa: A002
    """log(softmax(x)) along ``dim`` (None as in ``softmax``), computed stably; follows
    ``torch.nn.functional.log_softmax``."""
    if dim is None:
        dim = _implicit_dim("log_softmax", input.dim())
    return _log_softmax(input, dim, dtype)


def _warn_if_broadcast(input: Tensor, target: Tensor) -> None:  # noqa: A002
    """PyTorch's warning for a regression target of another shape than the input's: (N, 1)
    against (N,) broadcasts to (N, N), the classic silent mistake these losses then average."""
    if isinstance(target, Tensor) and isinstance(input, Tensor) and target.shape != input.shape:
        warnings.warn(
            f"Using a target size ({target.shape}) that is different to the input size ({input.shape}). This will "
            "likely lead to incorrect results due to broadcasting. Please ensure they have the same size.",
            stacklevel=3,
        )


def _floating_loss(input: Tensor, target, kernel: str) -> None:  # noqa: A002
    """PyTorch's ``NotImplementedError`` for a loss of integers (both operands): numpy's
    subtraction made it an integer loss, or ``mean`` refused with another error."""
    if input._data.dtype.kind != "f" and not (isinstance(target, Tensor) and target._data.dtype.kind == "f"):
        floating_kernel(input, kernel)


def mse_loss(
    input: Tensor,  # noqa: A002
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    weight=None,
) -> Tensor:
    """Mean (or sum, or none) of squared differences; follows ``torch.nn.functional.mse_loss``
    (and its ``UserWarning`` for a target of another shape than ``input``'s). ``weight``, of
    ``input``'s shape, scales each term; its mean is then divided by the weights' sum, as
    PyTorch's. Raises ``ValueError`` for a weight of another shape or an unknown reduction."""
    _warn_if_broadcast(input, target)
    _floating_loss(input, target, "mse_cpu")
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if weight is not None:
        return _weighted_loss((input - target) ** 2, weight, input, reduction)
    loss = _reduce((input - target) ** 2, reduction)
    return name_node(loss, "MseLossBackward0")


def l1_loss(
    input: Tensor,  # noqa: A002
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    weight=None,
) -> Tensor:
    """Mean (or sum, or none) of absolute differences, shape () or the input's; follows
    ``torch.nn.functional.l1_loss`` (whose nodes are the same mean, sum or abs). ``weight`` as
    ``mse_loss``'s. Raises ``ValueError`` for an unknown ``reduction``."""
    _warn_if_broadcast(input, target)
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if weight is not None:
        return _weighted_loss((input - target).abs(), weight, input, reduction)
    return _reduce((input - target).abs(), reduction)


def _weighted_loss(terms: Tensor, weight: Tensor, input: Tensor, reduction: str) -> Tensor:  # noqa: A002
    """``terms * weight``, summed, or summed and divided by the weights' sum (PyTorch's weighted
    ``mse_loss`` and ``l1_loss``: their nodes are that product, sum and quotient)."""
    if weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    weighted = terms * weight
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    if reduction == "mean":
        return weighted.sum() / weight.sum()
    raise ValueError(f"Invalid reduction mode: {reduction}. Expected one of 'none', 'mean', 'sum'.")


def cross_entropy(
    input: Tensor,  # noqa: A002
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Class indices ``target`` against logits ``input``, (N, C) or (C,): log_softmax, then
    nll_loss, as PyTorch composes it (so its grad_fn is ``NllLossBackward0``). With
    ``label_smoothing`` e in (0, 1], PyTorch's mix: (1 - e) times that loss plus e / C times
    minus the (weighted) sum of the log-probabilities over the classes, ignored targets
    excluded, reduced alike. Raises ``TypeError`` for an input that is not a tensor or an
    ``ignore_index`` that is not an int and ``RuntimeError`` for a smoothing above 1, as PyTorch
    does (a target may be an array or a list here, where PyTorch wants a tensor)."""
    if not isinstance(input, Tensor):  # (a target may be an array here)
        check_tensor_arguments("cross_entropy_loss", ("input", input))
    _int_argument(ignore_index, "cross_entropy_loss")
    reduction = _legacy_reduction(size_average, reduce, reduction)
    shape = input._data.shape  # (the arrays' shapes: the Size objects cost a tenth of a small loss)
    class_dim = 1 if len(shape) > 1 else 0
    labels = target._data if isinstance(target, Tensor) else None
    if labels is not None and len(shape) > 1 and (labels.ndim == 0 or labels.shape[0] != shape[0]):
        batch = labels.shape[0] if labels.ndim else 0
        raise ValueError(f"Expected input batch_size ({shape[0]}) to match target batch_size ({batch}).")
    log_probabilities = log_softmax(input, class_dim)
    if labels is not None and labels.dtype.kind == "f" and labels.shape == shape:
        if ignore_index >= 0:  # (PyTorch's test: a negative one, the default's kind, passes)
            raise RuntimeError("ignore_index is not supported for floating point target")
        return _soft_cross_entropy(input, log_probabilities, target, weight, reduction, label_smoothing, class_dim)
    loss = nll_loss(log_probabilities, target, weight, ignore_index=ignore_index, reduction=reduction)
    if not label_smoothing > 0.0:
        return loss
    if label_smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    guard_reads("cross_entropy()", target)  # ignored rows and the weights' total, found in numpy
    labels = np.asarray(target._data if isinstance(target, Tensor) else target)
    keep = np.asarray(labels != ignore_index)  # (an array also for one target: numpy gives a scalar)
    weighted = log_probabilities if weight is None else log_probabilities * _along(weight, class_dim, input.dim())
    # A select, not a product with the mask: with every target ignored the mean divides by 0,
    # and inf * 0 made NaN gradients where PyTorch's masked_fill passes none (zeros).
    smooth = _where(_wrap(keep), -weighted.sum(class_dim), _wrap(np.zeros((), input._data.dtype)))
    if reduction == "mean":
        if weight is None:
            total = float(keep.sum())
        else:
            total = float(weight._data[np.where(keep, labels, 0)][keep].sum())
        smooth = smooth.sum() / total
    elif reduction == "sum":
        smooth = smooth.sum()
    classes = input.shape[class_dim]
    return loss * (1.0 - label_smoothing) + smooth * (label_smoothing / classes)


def _soft_cross_entropy(input, log_probabilities, target, weight, reduction, smoothing, class_dim):  # noqa: A002
    """Class probabilities ``target`` (the input's shape; of another shape, a float target is
    read as class indices, and refused by ``nll_loss``, as PyTorch): minus the (weighted) sum over the
    classes of target times log-probability, per sample; the mean over the samples (not over
    the weights, as PyTorch's), the sum, or each. ``label_smoothing`` mixes the targets with
    the uniform distribution first."""
    if smoothing > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {smoothing}")
    classes = input.shape[class_dim]
    if smoothing > 0.0:
        target = target * (1.0 - smoothing) + smoothing / classes
    products = log_probabilities * target
    if weight is not None:
        products = products * _along(weight, class_dim, input.dim())
    losses = -products.sum(class_dim)
    # (PyTorch's nodes: a division by the count, a negation of the sum)
    if reduction == "mean":
        mean = losses.sum() / (input.numel() // classes) if input.numel() else losses.sum() * float("nan")
        return name_node(mean, "DivBackward1")
    return name_node(losses.sum(), "NegBackward0") if reduction == "sum" else losses


def _along(weight: Tensor, class_dim: int, ndim: int) -> Tensor:
    """Per-class ``weight`` (C,) shaped to broadcast along ``class_dim`` of an ndim input."""
    shape = [1] * ndim
    shape[class_dim] = weight.numel()
    return weight.reshape(shape)


def _int_argument(value, function: str) -> None:
    """PyTorch's ``TypeError`` for ``ignore_index`` given as a bool or a float."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{function}(): argument 'ignore_index' (position 5) must be int, not {type(value).__name__}")


def nll_loss(
    input: Tensor,  # noqa: A002
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """Minus the log-probability ``input`` (N, C) or (C,) gives each class index in ``target``,
    averaged (by the weights of the targets, when ``weight`` is given) or summed; targets equal
    to ``ignore_index`` count for nothing."""
    if not isinstance(input, Tensor):
        check_tensor_arguments("nll_loss_nd", ("input", input))
    _int_argument(ignore_index, "nll_loss_nd")
    reduction = _legacy_reduction(size_average, reduce, reduction)
    labels = np.asarray(target._data if isinstance(target, Tensor) else target)
    shape = input._data.shape
    if len(shape) in (1, 2) and labels.ndim > 1:  # (before the dtype, as PyTorch checks)
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if labels.dtype is not _INT64 and labels.dtype not in (np.int64, np.uint8):  # PyTorch's Long or Byte
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got {_TYPE_NAMES.get(labels.dtype, labels.dtype)}"
        )
    if len(shape) > 2 and labels.ndim == len(shape) - 1:  # (N, C, d1, ...): each position a sample
        if labels.shape != shape[:1] + shape[2:]:
            raise RuntimeError(f"Expected target size {[shape[0], *shape[2:]]}, got {list(labels.shape)}")
        flat = input.movedim(1, -1).reshape(-1, shape[1])
        flat_target = target.reshape(-1) if isinstance(target, Tensor) else _wrap(labels.reshape(-1))
        loss = nll_loss(flat, flat_target, weight, ignore_index=ignore_index, reduction=reduction)
        if reduction == "none":  # (PyTorch's node for 4-d inputs; a view of it for the others)
            loss = loss.reshape(labels.shape)
            return name_node(loss, "NllLoss2DBackward0") if len(shape) == 4 else loss
        return name_node(loss, "NllLoss2DBackward0")  # (PyTorch's, for every input of 3 or more dimensions)
    if len(shape) > 2 and labels.ndim != len(shape) - 1:
        raise RuntimeError(f"Expected target size {[shape[0], *shape[2:]]}, got {list(labels.shape)}")
    if len(shape) == 1 and labels.ndim == 1 and labels.shape[0] != 1:
        raise ValueError(f"For 1D input, 1D target must have size 1, but got target size: {labels.shape[0]}")
    if len(shape) == 0:
        raise ValueError("Expected 1 or more dimensions (got 0)")
    if len(shape) not in (1, 2) or labels.ndim != len(shape) - 1:
        raise NotImplementedError("nll_loss supports (N, C, ...) inputs with (N, ...) targets and (C,) with () so far")
    if len(shape) == 2 and labels.shape[0] != shape[0]:
        raise ValueError(f"Expected input batch_size ({shape[0]}) to match target batch_size ({labels.shape[0]}).")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if weight is not None and weight.requires_grad and _grad_enabled():
        # (the weights are read as numbers: their gradient would be lost, silently)
        raise RuntimeError(
            "The function 'nll_loss_forward' is not differentiable with respect to argument 'weight'. This input "
            "cannot have requires_grad True."
        )
    _same_dtype_weight(weight, input)
    if weight is not None and (weight.dim() != 1 or weight.numel() != shape[-1]):
        # (indexed by class, a short weight read past its end or wrapped round, silently)
        raise RuntimeError(
            f"weight tensor should be defined either for all {shape[-1]} classes or no classes but got weight "
            f"tensor of shape: {list(weight.shape)}"
        )
    if active_recording() is not None and isinstance(target, Tensor) and on_tape(target):
        return _nll_of_recorded_targets(input, target, labels, weight, ignore_index, reduction)
    guard_reads("nll_loss()", target, weight)  # positions and weights, computed in numpy
    rows = labels.reshape(-1)
    classes = shape[-1]
    # A batch without ignored targets (the usual one: ignore_index -100, below every class)
    # needs no mask: the smallest and largest targets tell, and they are the bounds check too.
    # (A tiny cross_entropy spent a fifth of its forward on the mask's numpy calls.)
    low, high = (int(_lowest(rows)), int(_highest(rows))) if rows.size else (0, -1)
    every = not low <= ignore_index <= high
    kept = None if every else rows != ignore_index
    if not every:
        checked = rows[kept]
        low, high = (int(_lowest(checked)), int(_highest(checked))) if checked.size else (0, -1)
    if low < 0 or high >= classes:
        checked = rows if every else rows[kept]
        raise IndexError(f"Target {checked[(checked < 0) | (checked >= classes)][0]} is out of bounds.")
    positions = _row_starts(len(rows), classes) + (rows if every else np.where(kept, rows, 0))
    if weight is None and reduction != "none":
        count = len(rows) if every else int(kept.sum())
        picked = pick("nll_pick", input, positions if every else positions[kept])
        dtype = picked._data.dtype.type
        scale = -1.0 if reduction == "sum" else (-1.0 / count if count else float("nan"))
        # -(sum / count), in the dtype, as PyTorch divides; 0 - sum as its kernel subtracts from
        # 0 (a loss of exactly 0, every target certain, is 0, where -sum printed tensor(-0.))
        total = dtype(0) - np.add.reduce(picked._data, axis=None, dtype=picked._data.dtype)
        out = np.asarray(total if reduction == "sum" else (total / dtype(count)) if count else dtype(np.nan))
        return record("nll_loss", (picked,), out, param=scale)
    if kept is None:
        kept = np.ones(rows.shape, np.bool_)
    weights = np.ones(classes, input._data.dtype) if weight is None else weight._data
    per_target = np.where(kept, weights[np.where(kept, rows, 0)], 0).astype(input._data.dtype)
    if reduction == "none":
        losses = -(pick("index", input, positions) * _wrap(per_target))
        if not every:  # an ignored row's loss is 0, whatever its class 0 holds (-inf * 0 was NaN)
            losses = _where(_wrap(kept), losses, _wrap(np.zeros((), input._data.dtype)))
        return name_node(losses.reshape(labels.shape), "NllLossBackward0")
    # Weighted: the picked log-probabilities dotted with -weight / (total weight, for the mean).
    total = per_target.sum() if reduction == "mean" else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        coefficients = np.asarray(-per_target[kept] / total, dtype=input._data.dtype)
    picked = pick("nll_pick", input, positions[kept])
    if not total and not len(coefficients):
        # Every target ignored, the mean is PyTorch's 0 / 0. The dot of nothing is 0 replayed
        # too: the NaN must be a row of its own, or a replay gives 0.
        empty = record(
            "nll_loss_weighted", (picked, _wrap(coefficients)), np.zeros((), input._data.dtype),
            saved=(picked._data, coefficients),
        )  # fmt: skip
        return name_node(empty * float("nan"), "NllLossBackward0")
    out = np.asarray(np.dot(picked._data, coefficients) if total else np.nan, dtype=input._data.dtype)
    return record("nll_loss_weighted", (picked, _wrap(coefficients)), out, saved=(picked._data, coefficients))


_ROW_STARTS: dict = {}  # (rows, classes) -> the flat position of each row's first class
_INT64 = np.dtype(np.int64)
_lowest, _highest = np.minimum.reduce, np.maximum.reduce  # (``min()``'s Python wrapper: 0.5 us each)


def _row_starts(count: int, classes: int) -> np.ndarray:
    """``arange(count) * classes``, kept per shape (bounded): read-only, added to, never written."""
    starts = _ROW_STARTS.get((count, classes))
    if starts is None:
        if len(_ROW_STARTS) >= 64:
            _ROW_STARTS.clear()
        starts = _ROW_STARTS[count, classes] = np.arange(count, dtype=np.int64) * classes
        starts.flags.writeable = False
    return starts


# PyTorch's scalar type names, as its messages print them.
_TYPE_NAMES = {
    np.dtype(np.float16): "Half", np.dtype(np.float32): "Float", np.dtype(np.float64): "Double",
    np.dtype(np.int8): "Char", np.dtype(np.int16): "Short", np.dtype(np.int32): "Int", np.dtype(np.bool_): "Bool",
}  # fmt: skip


def _nll_of_recorded_targets(input, target, labels, weight, ignore_index: int, reduction: str) -> Tensor:  # noqa: A002
    """nll_loss inside ``tapegrad.record`` of targets the tape computes or takes as an input (a
    batch's labels), so that a replay reads the labels of its own inputs (picked by position in
    numpy, the recording's labels were constants, and every other batch failed a guard). The
    usual loss is one row (``_reductions.nll_targets``); with class weights or
    ``reduction="none"``, each target is picked by a comparison with every class: O(N C) rather
    than O(N), like the log_softmax before it. A replay with a target out of range fails a guard
    (``GuardError``; the recording raises PyTorch's ``IndexError``)."""
    classes = input._data.shape[-1]
    rows = labels.reshape(-1)
    kept_now = rows != ignore_index
    bad_now = rows[kept_now & ((rows < 0) | (rows >= classes))]
    if bad_now.size:
        raise IndexError(f"Target {bad_now[0]} is out of bounds.")
    if weight is None and reduction != "none":  # the usual loss: one row (the rest: the composite below)
        return _nll_targets(input, target, labels, ignore_index, reduction == "mean")
    matches = target.unsqueeze(-1) == _wrap(np.arange(classes))  # (..., C)
    hit = matches.to(input.dtype)  # one-hot
    kept = (target != ignore_index).to(input.dtype)
    # A kept target that matches no class is out of range: a guard, False when recorded.
    if bool(((1.0 - hit.sum(-1)) * kept).sum() > 0):
        raise IndexError("a target is out of bounds")
    # A select, not input * hit: -inf logits of other classes (masked classes) times 0 were NaN.
    picked = _where(matches, input, _wrap(np.zeros((), input._data.dtype))).sum(-1)
    per_target = kept
    if weight is not None:
        per_target = per_target * (hit * weight).sum(-1)
    losses = -(picked * per_target)
    if reduction == "none":
        return name_node(losses, "NllLossBackward0")
    total = losses.sum()
    if reduction == "sum":
        return name_node(total, "NllLossBackward0")
    # The mean of no kept target is PyTorch's NaN, with a zero gradient: divided by a count of 0,
    # the gradient was NaN too. So the division is by max(count, 1), and NaN added where it is 0.
    count = per_target.sum()
    some = count > 0
    nothing = _where(some, _wrap(np.zeros((), input._data.dtype)), _wrap(np.full((), np.nan, input._data.dtype)))
    return name_node(total / _where(some, count, _wrap(np.ones((), input._data.dtype))) + nothing, "NllLossBackward0")


def _in_unit_interval(values):
    return (values >= 0) & (values <= 1)


# PyTorch's EPSILON in binary_cross_entropy_backward, a float even for float64 (its gradient at
# p = 0 of a float64 loss is t / 9.99999996e-13): 1e-12 itself was 4e-10 off there.
_BCE_EPSILON = float(np.float32(1e-12))


def binary_cross_entropy(
    input: Tensor,  # noqa: A002
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """-(t log p + (1 - t) log(1 - p)), each log clamped at -100 as PyTorch does, and PyTorch's
    gradients where p is within 1e-12 of 0 or 1: (p - t) / max(p (1 - p), 1e-12) for p, and
    for t -logit(p) = log(1 - p) - log(p) unclamped (+-inf at p = 0 or 1). ``input`` (p)
    and ``target`` (t) of one shape, floating point; follows
    ``torch.nn.functional.binary_cross_entropy``. Raises PyTorch's ``ValueError`` for shapes
    that differ and ``RuntimeError`` for an ``input`` element outside [0, 1] (or NaN), or for a
    ``weight`` that requires grad (with grad mode on)."""
    if input.shape != target.shape:
        raise ValueError(
            f"Using a target size ({target.shape}) that is different to the input size ({input.shape}) is "
            "deprecated. Please ensure they have the same size."
        )
    if refuses_gradient(weight):
        raise RuntimeError(
            "The function 'binary_cross_entropy' is not differentiable with respect to argument 'weight'. This "
            "input cannot have requires_grad True."
        )
    if target._data.dtype != input._data.dtype:  # (promoted silently to the wider dtype)
        raise RuntimeError(f"Found dtype {target.dtype.type_name} but expected {input.dtype.type_name}")
    # (guarded in a recording: a replay at values outside skipped the checks and returned a loss)
    if not holds("binary_cross_entropy()'s range check", input, _in_unit_interval):
        raise RuntimeError("all elements of input should be between 0 and 1")
    if not holds("binary_cross_entropy()'s range check", target, _in_unit_interval):  # (a 0-255 mask: negative)
        raise RuntimeError("all elements of target should be between 0 and 1")
    # Where a float32 sigmoid saturates, p is exactly 0 or 1 and a log is -inf: clamped at -100,
    # its gradient was the clamp's 0 times the log's inf, NaN. PyTorch's backward divides by
    # max(p (1 - p), 1e-12) instead. Its elements there take that gradient (a term whose value is
    # 0), the rest the logs' own, so that create_graph differentiates them as before.
    interior = input * (1 - input) >= _BCE_EPSILON  # (recorded: a replay decides it per input)
    # Eagerly, the usual case takes the logs alone. A recording takes both cases with no guard,
    # so that a replay where a sigmoid saturates needs no second tape.
    # (log1p(-p), as PyTorch's: log(1 - p) lost digits for small p: 0.7% of the loss at 3e-7)
    if active_recording() is None and interior.all():
        loss = -(target * input.log() + (1 - target) * (-input).log1p())
    else:
        safe = _where(interior, input, 0.5)
        inside = -(target * safe.log() + (1 - target) * (-safe).log1p())
        p, t = input.detach(), target.detach()
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0), and inf * 0 in ``carrier``
            log_p, log_q = p.log(), (-p).log1p()
            # PyTorch's kernel, term by term: its signed zeros at p = 0 and 1 too
            edge = (t - 1) * log_q.clamp(min=-100.0) - t * log_p.clamp(min=-100.0)
            # The edge's gradients, carried by what its value ignores: the input's PyTorch's
            # (p - t) / eps, the target's -logit(p) = log(1 - p) - log(p) unclamped, as PyTorch's
            # binary_cross_entropy_target_backward: +-inf at p = 0 or 1 (the clamped logs made it
            # -+100), where only an assign row passes it on, the product being NaN at t = 0.
            carrier = (input - p) * ((p - t) / _BCE_EPSILON) + target * (log_q - log_p)
        loss = _where(interior, inside, _valued_as(carrier, edge))
    if weight is not None:  # (of the input's dtype, as PyTorch's kernel reads it)
        loss = loss * _as_dtype_of(weight, input)
    return name_node(_reduce(loss, _legacy_reduction(size_average, reduce, reduction)), "BinaryCrossEntropyBackward0")


def binary_cross_entropy_with_logits(
    input: Tensor,  # noqa: A002
    target: Tensor,
    weight: Tensor | None = None,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """binary_cross_entropy(sigmoid(input), target) without its overflow:
    (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x), computed as (1 - t) softplus(x) +
    pos_weight t softplus(-x), equal to it, whose terms never cancel; follows
    ``torch.nn.functional.binary_cross_entropy_with_logits``. ``input`` and ``target`` of one
    shape, ``weight`` broadcast to it, ``pos_weight`` broadcast along the last dimension.

    Raises ``ValueError`` for shapes that differ, and PyTorch's ``RuntimeError`` when ``weight``
    or ``pos_weight`` requires grad in grad mode (not differentiable there; inside a recording
    and ``tapegrad.func``'s transforms they are, as in ``torch.func``: README, Supported API)."""
    if input.shape != target.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    if target._data.dtype.kind in "biu":  # (integer labels were taken as they are)
        raise RuntimeError(f"result type Float can't be cast to the desired output type {target.dtype.type_name}")
    for argument, value in (("weight", weight), ("pos_weight", pos_weight)):
        # (under no_grad PyTorch takes it, as for binary_cross_entropy; torch.func differentiates it)
        if refuses_gradient(value, in_transforms=False):
            raise RuntimeError(
                "The function 'binary_cross_entropy_with_logits' is not differentiable with respect to argument "
                f"'{argument}'. This input cannot have requires_grad True."
            )
    # Each term stays small where the loss is (a confident, right prediction): the form above
    # cancelled there, x + softplus(-x) for t = 0 and x = -8 kept three float32 digits, and its
    # gradient 1 - sigmoid(-x) as few; softplus(x) and sigmoid(x) keep them all.
    # (the weights of the input's dtype, as PyTorch's kernel reads them: a float64 one made the
    # loss float64)
    positive = target if pos_weight is None else _as_dtype_of(pos_weight, input) * target
    loss = (1 - target) * input.softplus() + positive * (-input).softplus()
    if weight is not None:
        loss = loss * _as_dtype_of(weight, input)
    return name_node(
        _reduce(loss, _legacy_reduction(size_average, reduce, reduction)), "BinaryCrossEntropyWithLogitsBackward0"
    )


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) when training (in
    ``input`` itself with ``inplace``); follows ``torch.nn.functional.dropout``. Raises
    PyTorch's ``ValueError`` for ``p`` outside [0, 1]."""
    if not 0 <= p <= 1:  # (p = 1.5 made every element 0, silently)
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    mask = _wrap(_kept(input.shape, p, input))
    return input.mul_(mask) if inplace else input * mask


def _kept(shape: tuple, p: float, input: Tensor) -> np.ndarray:  # noqa: A002
    """A dropout mask of ``shape`` for ``input``: 0 with probability ``p``, else 1 / (1 - p); all
    0 for p = 1 (1 / 0 made it NaN). An integer or bool input takes only p = 1 (its zeros),
    with PyTorch's ``RuntimeError`` otherwise: its scale 1 / (1 - p) truncated to 0 gave inf
    and NaN."""
    dtype = input._data.dtype
    if p >= 1:
        return np.zeros(shape, dtype)
    if dtype.kind != "f":
        raise RuntimeError(f"result type Float can't be cast to the desired output type {input.dtype.type_name}")
    return (_factories.default_generator().random(shape) >= p).astype(dtype) / dtype.type(1 - p)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Zero whole channels with probability ``p`` (one draw per (sample, channel) of an (N, C, H, W)
    or (C, H, W) input) and scale the rest by 1/(1-p) when training; follows
    ``torch.nn.functional.dropout2d``. Raises ``ValueError`` for ``p`` outside [0, 1]."""
    if p < 0 or p > 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    # One draw per (sample, channel): the first two dimensions, as PyTorch does (for a 3-D input
    # too, which it then reads as (N, C, L)).
    keep = _wrap(_kept(tuple(input.shape[:2]) + (1,) * (input.dim() - 2), p, input))
    return input.mul_(keep) if inplace else input * keep


def batch_norm(
    input: Tensor,  # noqa: A002
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel (dimension 1) of an (N, C, ...) input over the batch and the other
    dimensions, then scale by ``weight`` and shift by ``bias`` (each (C,) or None); follows
    ``torch.nn.functional.batch_norm``. When ``training``, the batch's mean and biased variance
    normalise, and ``running_mean``/``running_var`` (when given) move towards them by
    ``momentum`` (the variance unbiased), in place and outside autograd; otherwise the running
    statistics normalise. Gradients reach ``input``, ``weight`` and ``bias``
    (``NativeBatchNormBackward0``).

    Raises ``RuntimeError`` when a statistic or parameter does not have C elements, and
    ``ValueError`` when training sees one value per channel."""
    channels = input.shape[1] if input.dim() > 1 else 0  # PyTorch's count for a 1-D input
    for name, value in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if value is not None and value.numel() != channels:
            raise RuntimeError(f"{name} should contain {channels} elements not {value.numel()}")
    if input.dim() < 2:
        raise IndexError("Dimension out of range (expected to be in range of [-1, 0], but got 1)")
    floating_kernel(input, "batch_norm")
    if any(value is not None and value.dtype != input.dtype for value in (weight, bias)):
        raise RuntimeError("mixed dtype (CPU): all inputs must share same datatype.")
    shape = (1, channels) + (1,) * (input.dim() - 2)
    if training and (running_mean is not None or running_var is not None) and _grad_state.vmaps:
        # PyTorch's: each slice would update the statistics (once per recording here, silently)
        raise RuntimeError(
            "Batch norm got a batched tensor as input while the running_mean or running_var, which will be updated "
            "in place, were not batched.\nIf you are using a module and do not need eval mode, please set "
            "`track_running_stats` to be False.If you are using a prebuilt module and do not need eval mode, please "
            "see the functorch website for resources on how to patch your module to work with vmap"
        )
    if training:
        count = input.numel() // max(channels, 1)
        if count == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
    if training and count == 0:
        # An empty batch, as PyTorch's: an empty result, the running statistics unchanged, zero
        # gradients for the weight and bias (its statistics, 0/0, made the weight's NaN)
        normalized = input * (1.0 if weight is None else weight.reshape(shape))
    elif training:
        # One row normalises and scales by the weight (the composite walked the activations eight
        # times each way, and a product by a (1, C, 1, 1) weight saved it broadcast, a copy of
        # the activations); the bias is the sum below.
        normalized, mean, variance = _batch_norm(input, None if weight is None else weight.reshape(-1), eps)
        if running_mean is not None or running_var is not None:
            with no_grad():
                if running_mean is not None:
                    running_mean.mul_(1 - momentum).add_(_wrap(mean.astype(running_mean._data.dtype)) * momentum)
                if running_var is not None:
                    unbiased = _wrap(variance.astype(running_var._data.dtype)) * (momentum * count / (count - 1))
                    running_var.mul_(1 - momentum).add_(unbiased)
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError(
                f"running_{'mean' if running_mean is None else 'var'} must be defined in evaluation mode"
            )
        scale = (running_var.reshape(shape) + eps).rsqrt()
        if weight is not None:
            # Into the (1, C, 1...) scale, not the result: a product by a broadcast operand saves
            # it written out, 0.9 ms a pass on a (32, 16, 28, 28) input (the layer 3.2 -> 2.6 ms).
            scale = scale * weight.reshape(shape)
        normalized = (input - running_mean.reshape(shape)) * scale
    if bias is not None:
        normalized = normalized + bias.reshape(shape)
    return name_node(normalized, "NativeBatchNormBackward0")


def instance_norm(
    input: Tensor,  # noqa: A002
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each (sample, channel) of an (N, C, ...) input over its other dimensions, then
    scale and shift per channel; follows ``torch.nn.functional.instance_norm``: ``batch_norm``
    of the input seen as one sample of N*C channels, as PyTorch computes it (the running
    statistics, when given, move by the mean over the batch). Raises ``ValueError`` for one
    element per instance when ``use_input_stats``."""
    n, channels = input.shape[0], input.shape[1]
    if use_input_stats and math.prod(input.shape[2:]) == 1:  # (PyTorch's test: its spatial extents only)
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {input.shape}")
    shape = (1, n * channels) + tuple(input.shape[2:])
    repeat = lambda t: t.repeat(n) if t is not None else None  # noqa: E731
    stats = [repeat(running_mean), repeat(running_var)]
    out = batch_norm(
        input.reshape(*shape), stats[0], stats[1], repeat(weight), repeat(bias), use_input_stats, momentum, eps
    )
    if use_input_stats:  # the running statistics move by the batch's mean of the instances'
        from .._grad_mode import no_grad

        with no_grad():
            for running, moved in zip((running_mean, running_var), stats):
                if running is not None:
                    running.copy_(moved.reshape(n, channels).mean(0))
    return out.reshape(*input.shape)


def group_norm(
    input: Tensor,  # noqa: A002
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each group of ``num_groups`` consecutive channels of each sample of an (N, C,
    ...) input over the group's channels and the other dimensions (biased variance), then
    scale and shift per channel (``weight``, ``bias``: (C,)); follows
    ``torch.nn.functional.group_norm`` (``NativeGroupNormBackward0``). Raises ``RuntimeError``
    when C is not divisible by ``num_groups``."""
    if input.dim() < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.dim()}")
    _same_dtype_parameters(input, weight, bias)
    n, channels = input.shape[0], input.shape[1]
    for name, parameter in (("weight", weight), ("bias", bias)):
        if parameter is not None and (parameter.dim() != 1 or parameter.numel() != channels):
            raise RuntimeError(
                f"Expected {name} to be a vector of size equal to the number of channels in input, but got {name} of "
                f"shape {list(parameter.shape)} and input of shape {list(input.shape)}"
            )
    if channels % num_groups:
        raise RuntimeError(
            "Expected number of channels in input to be divisible by num_groups, but got input of shape "
            f"{list(input.shape)} and num_groups={num_groups}"
        )
    # PyTorch's check: a group of one value normalises to 0 whatever it holds.
    grouped_size = [n * channels // num_groups, num_groups, *input.shape[2:]]
    if math.prod(grouped_size) // num_groups == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {grouped_size}")
    # (the group's size spelled out: -1 is ambiguous in an empty batch, which PyTorch returns empty)
    grouped = input.reshape(n, num_groups, channels // num_groups * math.prod(input.shape[2:]))
    mean = grouped.mean(-1, keepdim=True)
    centered = grouped - mean
    out = (centered * ((centered * centered).mean(-1, keepdim=True) + eps).rsqrt()).reshape(*input.shape)
    shape = (1, channels) + (1,) * (input.dim() - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return name_node(out, "NativeGroupNormBackward0")


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 tensor of shape ``tensor.shape + (num_classes,)`` with a 1 at each index (-1: one
    more than the largest index); follows ``torch.nn.functional.one_hot``. Raises
    ``RuntimeError`` as PyTorch does for a non-integer tensor or an index out of range."""
    values = tensor._data
    if values.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    guard_reads("one_hot()", tensor)  # built in numpy
    if values.size and values.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        if not values.size:  # (a (0, 0) result, where PyTorch refuses)
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(values.max()) + 1
    elif values.size and values.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    return _factories.tensor(np.eye(num_classes, dtype=np.int64)[values])


def smooth_l1_loss(
    input: Tensor,  # noqa: A002
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """``0.5 d**2 / beta`` where ``|d| < beta``, ``|d| - 0.5 beta`` elsewhere (``d = input -
    target``), reduced; follows ``torch.nn.functional.smooth_l1_loss``. Raises ``RuntimeError``
    for a negative ``beta``."""
    _warn_if_broadcast(input, target)
    _floating_loss(input, target, "smooth_l1_cpu")
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta == 0:
        return name_node(_reduce((input - target).abs(), reduction), "SmoothL1LossBackward0")
    loss = _quadratic_then_linear(input, target, beta, 0.5 / beta, None)
    return name_node(_reduce(loss, reduction), "SmoothL1LossBackward0")


def _quadratic_then_linear(input: Tensor, target: Tensor, threshold: float, quadratic: float, linear) -> Tensor:  # noqa: A002
    """``d**2 * quadratic`` where ``|d| < threshold``, ``(|d| - threshold / 2) * linear`` (no
    factor when None) elsewhere, ``d = input - target``: smooth_l1 and huber losses."""
    difference = input - target
    magnitude = difference.abs()
    beyond = magnitude - 0.5 * threshold
    # The linear branch where |d| >= threshold, the square elsewhere, NaN included (PyTorch's
    # backward tests the two tails, so NaN takes the square's NaN gradient). The square reads 0
    # outside: at d = inf its gradient was inf, times the select's 0, NaN where PyTorch's is +-1.
    outside = magnitude.detach() >= threshold
    near = _where(outside, _zeros(difference), difference)
    return _where(outside, beyond if linear is None else beyond * linear, near * near * quadratic)


def huber_loss(
    input: Tensor,  # noqa: A002
    target: Tensor,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Tensor | None = None,
) -> Tensor:
    """``0.5 d**2`` where ``|d| < delta``, ``delta (|d| - 0.5 delta)`` elsewhere (``d = input -
    target``), optionally weighted, reduced; follows ``torch.nn.functional.huber_loss``. Raises
    ``RuntimeError`` for a ``delta`` that is not positive."""
    _warn_if_broadcast(input, target)
    _floating_loss(input, target, "huber_cpu")
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    # (of the input's dtype, as PyTorch's kernel writes it: a float64 target made it float64)
    loss = _as_dtype_of(_quadratic_then_linear(input, target, delta, 0.5, delta), input)
    if weight is not None:
        if weight.shape != input.shape:  # (PyTorch's check: a broadcast weight is refused)
            raise ValueError("Weights and input must have the same size.")
        loss = loss * weight
    return name_node(_reduce(loss, reduction), "HuberLossBackward0")


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:  # noqa: A002
    """``input`` divided by its ``p``-norm along ``dim`` (at least ``eps``), same shape and dtype;
    follows ``torch.nn.functional.normalize``."""
    result = input / input.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(input)
    if out is not None:
        out.copy_(result)
        return out
    return result


def glu(input: Tensor, dim: int = -1) -> Tensor:  # noqa: A002
    """The gated linear unit: the first half of ``input`` along ``dim`` times the sigmoid of the
    second; follows ``torch.nn.functional.glu``. Raises ``RuntimeError`` for an odd size."""
    floating_kernel(input, "glu_cpu")
    if input.dim() == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    from ..tensor import _normalize_dim

    dim = _normalize_dim(dim, input.dim())
    if input.shape[dim] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim} is size {input.shape[dim]}")
    a, b = input.chunk(2, dim)
    return name_node(a * b.sigmoid(), "GluBackward0")


_PAD_SIZES = (
    "Padding size {size} is not supported for {ndim}D input tensor.\n"
    "Supported combinations for non-constant padding:\n"
    "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
    "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
    "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)"
)


def pad(input: Tensor, pad, mode: str = "constant", value=None) -> Tensor:  # noqa: A002
    """``input`` padded on its last ``len(pad) // 2`` dimensions: ``pad`` is (left, right) for the
    last dimension, then the one before... Modes: ``"constant"`` (``value``, 0 by default;
    negative pads crop), ``"reflect"``, ``"replicate"``, ``"circular"``. Gradients flow to the
    elements copied. Follows ``torch.nn.functional.pad``."""
    pad = [int(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.dim():
        raise RuntimeError(
            "Padding length should be less than or equal to two times the input dimension but got padding "
            f"length {len(pad)} and input of dimension {input.dim()}"
        )
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode != "constant" and (len(pad) > 6 or input.dim() not in (len(pad) // 2 + 1, len(pad) // 2 + 2)):
        # PyTorch's modules pad a batch (and a channel) of 1-3 dimensions: a 2-D input with 4 pads
        # would pad its first dimension as a spatial one, and 8 pads of a 5-D input its channels.
        raise NotImplementedError(_PAD_SIZES.format(size=len(pad), ndim=input.dim()))
    padded = len(pad) // 2
    batched = input.dim() == padded + 2
    if mode in ("reflect", "replicate") and 0 in tuple(input.shape)[1 if batched else 0 :]:
        raise RuntimeError(  # (replicate read an empty extent's "edge" as more emptiness)
            f"Expected {padded + 1}D or {padded + 2}D (batch mode) tensor with possibly 0 batch size and other "
            f"non-zero dimensions for input, but got: {list(input.shape)}"
        )
    out = input
    for pair in range(len(pad) // 2):
        dim = input.dim() - 1 - pair
        left, right = pad[2 * pair], pad[2 * pair + 1]
        extent = out.shape[dim]
        if mode == "constant":
            out = _constant_pad(out, dim, left, right, 0.0 if value is None else value)
            continue
        if mode == "reflect" and (left >= extent or right >= extent):
            raise RuntimeError(
                f"Argument #4: Padding size should be less than the corresponding input dimension, but got: "
                f"padding ({left}, {right}) at dimension {dim} of input {list(input.shape)}"
            )
        positions = np.arange(-left, extent + right)
        if mode == "replicate":
            positions = np.clip(positions, 0, extent - 1)
        elif mode == "circular":  # a negative pad crops first; the rest wraps around what is kept
            if left > extent or right > extent:
                raise RuntimeError("Padding value causes wrapping around more than once.")
            start, kept = max(0, -left), extent - max(0, -left) - max(0, -right)
            positions = start + np.arange(-max(left, 0), kept + max(right, 0)) % max(kept, 1)
        else:
            period = 2 * (extent - 1)
            positions = np.abs(positions) % max(period, 1)
            positions = np.where(positions >= extent, period - positions, positions)
        out = out.index_select(dim, _wrap(positions.astype(np.int64)))
    if out is input:  # (no pad at all: a copy, as PyTorch's, which an in-place change of it leaves alone)
        out = input.clone()
    # PyTorch's node, by mode and the number of dimensions padded
    node = {"constant": "ConstantPadNdBackward0", "reflect": f"ReflectionPad{padded}DBackward0",
            "replicate": f"ReplicationPad{padded}DBackward0", "circular": "CopySlices"}[mode]  # fmt: skip
    return name_node(out, node)


def _constant_pad(x: Tensor, dim: int, left: int, right: int, value) -> Tensor:
    from .._views import cat

    if left < 0 or right < 0:
        extent = x.shape[dim]
        if extent - max(0, -left) - max(0, -right) < 0:  # (cropped past nothing: PyTorch's narrow refuses)
            raise RuntimeError("narrow(): length must be non-negative.")
        keep = np.arange(max(0, -left), extent - max(0, -right))
        x = x.index_select(dim, _wrap(keep.astype(np.int64)))
        left, right = max(left, 0), max(right, 0)

    def block(width: int) -> list:
        shape = list(x.shape)
        shape[dim] = width
        return [_wrap(np.full(shape, value, dtype=x._data.dtype))] if width else []

    if not left and not right:
        return x
    return cat([*block(left), x, *block(right)], dim)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(query @ key^T * scale + mask) @ value``; follows
    ``torch.nn.functional.scaled_dot_product_attention`` (its math backend, recorded op by op).

    Shapes: ``query`` (..., L, E), ``key`` (..., S, E), ``value`` (..., S, Ev), one float dtype;
    the leading dimensions broadcast, and with ``enable_gqa`` the heads (dimension -3) of
    ``key`` and ``value`` repeat to ``query``'s. Result (..., L, Ev), of ``query``'s dtype.
    ``attn_mask`` broadcasts to (..., L, S) without growing it: bool (True: the key takes part)
    or float (added: float32 or ``query``'s dtype, may require grad). ``is_causal``: query i
    attends to keys 0..i (the lower triangle from the top left). ``scale``: 1/sqrt(E) by
    default. A query every key is masked from gets zeros and a zero gradient, as PyTorch's (its
    safe softmax), not NaN. ``dropout_p``: attention weights dropped, always (PyTorch's callers
    pass 0 when evaluating).

    Raises ``RuntimeError`` with PyTorch's messages for inputs under 2-D, mixed or integer
    dtypes, a mask of another dtype or that grows the scores, ``is_causal`` with a mask, heads
    that do not divide, and ``dropout_p`` outside [0, 1]."""
    check_tensor_arguments("scaled_dot_product_attention", ("query", query), ("key", key), ("value", value))
    if attn_mask is not None and not isinstance(attn_mask, Tensor):
        raise TypeError(
            f"scaled_dot_product_attention(): argument 'attn_mask' must be Tensor, not {argument_type_name(attn_mask)}"
        )
    if min(query.dim(), key.dim(), value.dim()) < 2:
        raise RuntimeError(
            "Expected query, key, and value to all be  at least 2 dimensional, but got query.dim: "
            f"{query.dim()} key.dim: {key.dim()} and value.dim: {value.dim()} instead."
        )
    dtype = query.dtype
    if key.dtype != dtype or value.dtype != dtype:
        raise RuntimeError(
            "Expected query, key, and value to have the same dtype, but got query.dtype: "
            f"{dtype.c_name} key.dtype: {key.dtype.c_name} and value.dtype: {value.dtype.c_name} instead."
        )
    if not dtype.is_floating_point:
        raise RuntimeError(f"expected scalar type Float but found {dtype.type_name}")
    if attn_mask is not None and attn_mask.dtype not in (_dtypes.bool, _dtypes.float32, dtype):
        raise RuntimeError(
            "Expected attn_mask dtype to be bool or float or to match query dtype, but got attn_mask.dtype: "
            f"{attn_mask.dtype.c_name} and  query.dtype: {dtype.c_name} instead."
        )
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if not 0 <= dropout_p <= 1:
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    if enable_gqa and min(query.dim(), key.dim(), value.dim()) >= 3:
        heads, key_heads, value_heads = query.shape[-3], key.shape[-3], value.shape[-3]
        if heads % key_heads or heads % value_heads:
            raise RuntimeError("Number of heads in key and value must divide the number of heads in query")
        key = key.repeat_interleave(heads // key_heads, -3)
        value = value.repeat_interleave(heads // value_heads, -3)
    length, source = query.shape[-2], key.shape[-2]
    if scale is None:  # (an embedding of size 0: every score is an empty sum, 0, as PyTorch's)
        scale = 1 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        attn_mask = _wrap(np.tril(np.ones((length, source), np.bool_)))
    if attn_mask is None:
        return _attend(_softmax(scores, -1), value, dropout_p)
    try:
        grown = np.broadcast_shapes(tuple(scores.shape), tuple(attn_mask.shape))
    except ValueError:
        raise _broadcast_error(tuple(scores.shape), tuple(attn_mask.shape)) from None
    if grown != tuple(scores.shape):
        raise RuntimeError(f"output with shape {list(scores.shape)} doesn't match the broadcast shape {list(grown)}")
    if attn_mask.dtype == _dtypes.bool:  # a constant: -inf where the key takes no part
        guard_reads("scaled_dot_product_attention()", attn_mask)  # (read in numpy)
        mask = attn_mask._data
        empty = ~mask.any(axis=-1, keepdims=True)
        attn_mask = _wrap(np.where(mask, 0, -np.inf).astype(scores._data.dtype))
    else:  # the rows all -inf, as an op: a replay guards where the -inf are, not every value
        empty = (attn_mask == -math.inf).all(-1, keepdim=True)._data
    scores = scores + attn_mask
    if not empty.any():
        return _attend(_softmax(scores, -1), value, dropout_p)
    # Queries that every key is masked from: a softmax of -inf alone is NaN, and so would be
    # every gradient through it. PyTorch gives them zeros (its safe softmax).
    empty = _wrap(empty)
    return _attend(_softmax(scores.masked_fill(empty, 0.0), -1).masked_fill(empty, 0.0), value, dropout_p)


def _attend(weights: Tensor, value: Tensor, dropout_p: float) -> Tensor:
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, True)
    return weights @ value


def _canonical_mask(mask, name: str, other, other_name: str, dtype) -> Tensor | None:
    """A bool mask as the float mask PyTorch's attention adds (-inf where True); a float one as
    is. ``other``: the other mask given, whose type this one should share (a deprecation
    warning otherwise, as PyTorch's ``_canonical_mask``)."""
    if mask is None:
        return None
    if mask.dtype != _dtypes.bool and not mask.dtype.is_floating_point:
        raise AssertionError(f"only bool and floating types of {name} are supported")
    if other is not None and other.dtype != mask.dtype:
        warnings.warn(
            f"Support for mismatched {name} and {other_name} is deprecated. Use same type for both instead.",
            stacklevel=3,
        )
    if mask.dtype != _dtypes.bool:
        return mask
    guard_reads(f"multi_head_attention_forward() of a bool {name}", mask)  # made a constant below
    return _wrap(np.where(mask._data, -np.inf, 0).astype(dtype.numpy))


def _mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads: int) -> bool:
    """Whether the input is batched, with PyTorch's ``AssertionError`` for shapes it refuses."""
    batched = query.dim() == 3
    if query.dim() not in (2, 3):
        raise AssertionError(
            f"query should be unbatched 2D or batched 3D tensor but received {query.dim()}-D query tensor"
        )
    kind = "batched (3-D)" if batched else "unbatched (2-D)"
    if key.dim() != query.dim() or value.dim() != query.dim():
        raise AssertionError(
            f"For {kind} `query`, expected `key` and `value` to be {query.dim()}-D but found {key.dim()}-D and "
            f"{value.dim()}-D tensors respectively"
        )
    if key_padding_mask is not None and key_padding_mask.dim() != query.dim() - 1:
        raise AssertionError(
            f"For {kind} `query`, expected `key_padding_mask` to be `None` or {query.dim() - 1}-D but found "
            f"{key_padding_mask.dim()}-D tensor instead"
        )
    if attn_mask is not None:
        if attn_mask.dim() not in (2, 3):
            raise AssertionError(
                f"For {kind} `query`, expected `attn_mask` to be `None`, 2-D or 3-D but found {attn_mask.dim()}-D "
                "tensor instead"
            )
        expected = (num_heads, query.shape[0], key.shape[0])
        if not batched and attn_mask.dim() == 3 and tuple(attn_mask.shape) != expected:
            raise AssertionError(f"Expected `attn_mask` shape to be {expected} but got {attn_mask.shape!r}")
    return batched


def _in_projection_packed(q: Tensor, k: Tensor, v: Tensor, w: Tensor, b) -> tuple:
    """``q @ w_q.T + b_q`` and so on, with ``w`` (3E, E) and ``b`` (3E,) packed in q, k, v order;
    one product where query, key and value are one tensor (self-attention), as PyTorch's."""
    embed = q.shape[-1]
    if k is v and q is k:
        projected = linear(q, w, b).unflatten(-1, (3, embed))
        return projected[..., 0, :], projected[..., 1, :], projected[..., 2, :]
    if k is v:
        w_q, w_kv = w.split([embed, 2 * embed])
        b_q, b_kv = (None, None) if b is None else b.split([embed, 2 * embed])
        projected = linear(k, w_kv, b_kv).unflatten(-1, (2, embed))
        return linear(q, w_q, b_q), projected[..., 0, :], projected[..., 1, :]
    w_q, w_k, w_v = w.chunk(3)
    b_q, b_k, b_v = (None, None, None) if b is None else b.chunk(3)
    return linear(q, w_q, b_q), linear(k, w_k, b_k), linear(v, w_v, b_v)


def multi_head_attention_forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight,
    in_proj_bias,
    bias_k,
    bias_v,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Tensor,
    out_proj_bias,
    training: bool = True,
    key_padding_mask=None,
    need_weights: bool = True,
    attn_mask=None,
    use_separate_proj_weight: bool = False,
    q_proj_weight=None,
    k_proj_weight=None,
    v_proj_weight=None,
    static_k=None,
    static_v=None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple:
    """Multi-head attention with its projections: ``nn.MultiheadAttention``'s forward; follows
    ``torch.nn.functional.multi_head_attention_forward``.

    Shapes (sequence first): ``query`` (L, N, E) or unbatched (L, E); ``key`` (S, N, Ek) and
    ``value`` (S, N, Ev) (Ek = Ev = E unless ``use_separate_proj_weight``). ``in_proj_weight``
    (3E, E) and ``in_proj_bias`` (3E,) pack the q, k, v projections; ``bias_k``/``bias_v``
    (1, 1, E) append a key and value; ``add_zero_attn`` appends a zero one;
    ``key_padding_mask`` (N, S) and ``attn_mask`` (L, S) or (N * num_heads, L, S), bool (True:
    not attended) or float (added). Returns ``(output (L, N, E), weights)``: the attention
    weights, (N, L, S) averaged over heads or (N, num_heads, L, S), when ``need_weights``,
    else None (then computed by ``scaled_dot_product_attention``, with ``is_causal``).
    Dropout only when ``training``.

    Raises ``AssertionError`` and ``RuntimeError`` with PyTorch's messages for shapes and masks it
    refuses, and ``RuntimeError`` for ``is_causal`` without ``attn_mask``."""
    batched = _mha_shape_check(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    length, batch, embed = query.shape
    source = key.shape[0]
    key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", attn_mask, "attn_mask", query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError(
            "Need attn_mask if specifying the is_causal hint. You may use the Transformer module method "
            "`generate_square_subsequent_mask` to create this mask."
        )
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # scaled_dot_product_attention's own causal mask
    else:
        attn_mask = _canonical_mask(attn_mask, "attn_mask", None, "", query.dtype)
        if key_padding_mask is not None:
            is_causal = False
    if embed != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed}")
    head_dim = embed // num_heads
    if head_dim * num_heads != embed:
        raise AssertionError(f"embed_dim {embed} not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if key.shape[:2] != value.shape[:2]:
            raise AssertionError(
                f"key's sequence and batch dims {key.shape[:2]} do not match value's {value.shape[:2]}"
            )
        b_q, b_k, b_v = (None, None, None) if in_proj_bias is None else in_proj_bias.chunk(3)
        q, k, v = linear(query, q_proj_weight, b_q), linear(key, k_proj_weight, b_k), linear(value, v_proj_weight, b_v)
    else:
        if key.shape != value.shape:
            raise AssertionError(f"key shape {key.shape} does not match value shape {value.shape}")
        q, k, v = _in_projection_packed(query, key, value, in_proj_weight, in_proj_bias)
    if attn_mask is not None:
        expected = (length, source) if attn_mask.dim() == 2 else (batch * num_heads, length, source)
        if attn_mask.dim() not in (2, 3):
            raise RuntimeError(f"attn_mask's dimension {attn_mask.dim()} is not supported")
        if tuple(attn_mask.shape) != expected:
            raise RuntimeError(
                f"The shape of the {attn_mask.dim()}D attn_mask is {attn_mask.shape!r}, but should be {expected}."
            )
        if attn_mask.dim() == 2:
            attn_mask = attn_mask.unsqueeze(0)
    if (bias_k is None) != (bias_v is None):
        raise AssertionError(
            "bias_k is set but bias_v is None" if bias_v is None else "bias_v is set but bias_k is None"
        )
    if bias_k is not None:
        if static_k is not None or static_v is not None:
            raise AssertionError(f"bias cannot be added to static {'key' if static_k is not None else 'value'}.")
        k = _views.cat([k, bias_k.repeat(1, batch, 1)])
        v = _views.cat([v, bias_v.repeat(1, batch, 1)])
        attn_mask = None if attn_mask is None else pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else pad(key_padding_mask, (0, 1))
    q = q.reshape(length, batch * num_heads, head_dim).transpose(0, 1)
    k = _heads(k, static_k, "static_k", batch * num_heads, head_dim)
    v = _heads(v, static_v, "static_v", batch * num_heads, head_dim)
    if add_zero_attn:
        zeros = _wrap(np.zeros((batch * num_heads, 1, head_dim), k._data.dtype))
        k, v = _views.cat([k, zeros], 1), _views.cat([v, zeros], 1)
        attn_mask = None if attn_mask is None else pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else pad(key_padding_mask, (0, 1))
    source = k.shape[1]
    if key_padding_mask is not None:
        if key_padding_mask.shape[0] != batch:
            raise AssertionError(
                f"Expected key_padded_mask.shape[0] to be {batch}, but got {key_padding_mask.shape[0]}"
            )
        if key_padding_mask.shape[1] != source:
            raise AssertionError(
                f"Expected key_padded_mask.shape[1] to be {source}, but got {key_padding_mask.shape[1]}"
            )
        padding = key_padding_mask.reshape(batch, 1, 1, source).expand(-1, num_heads, -1, -1)
        padding = padding.reshape(batch * num_heads, 1, source)
        attn_mask = padding if attn_mask is None else attn_mask + padding
    if not training:
        dropout_p = 0.0
    if need_weights:
        scores = (q * math.sqrt(1.0 / head_dim)) @ k.transpose(-2, -1)
        if attn_mask is not None:
            scores = attn_mask + scores  # (torch.baddbmm)
        weights = _softmax(scores, -1)
        if dropout_p > 0.0:
            weights = dropout(weights, dropout_p)
        out = (weights @ v).transpose(0, 1).reshape(length * batch, embed)
        out = linear(out, out_proj_weight, out_proj_bias).reshape(length, batch, out_proj_weight.shape[0])
        weights = weights.reshape(batch, num_heads, length, source)
        if average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            out, weights = out.squeeze(1), weights.squeeze(0)
        return out, weights
    if attn_mask is not None:
        if attn_mask.shape[0] == 1 and attn_mask.dim() == 3:
            attn_mask = attn_mask.unsqueeze(0)
        else:
            attn_mask = attn_mask.reshape(batch, num_heads, -1, source)
    out = scaled_dot_product_attention(
        q.reshape(batch, num_heads, length, head_dim),
        k.reshape(batch, num_heads, source, head_dim),
        v.reshape(batch, num_heads, source, head_dim),
        attn_mask,
        dropout_p,
        is_causal,
    )
    out = out.permute(2, 0, 1, 3).reshape(batch * length, embed)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(length, batch, out_proj_weight.shape[0])
    return (out if batched else out.squeeze(1)), None


def _heads(x: Tensor, static, name: str, heads: int, head_dim: int) -> Tensor:
    """Keys or values as (N * num_heads, S, head_dim), or ``static`` ones given so."""
    if static is None:
        return x.reshape(x.shape[0], heads, head_dim).transpose(0, 1)
    if static.shape[0] != heads:
        raise AssertionError(f"expecting {name}.size(0) of {heads}, but got {static.shape[0]}")
    if static.shape[2] != head_dim:
        raise AssertionError(f"expecting {name}.size(2) of {head_dim}, but got {static.shape[2]}")
    return static


threshold = _threshold  # (bound here: other functions have parameters of that name)
