"""Distances and the losses built on them (kl_div, the margin and embedding losses), composed
of recorded ops in the order PyTorch's ATen composites compute them, so that values and
gradients agree to rounding. Public through ``tapegrad.nn.functional``."""

from __future__ import annotations

import warnings

import numpy as np

from .._frames import user_stacklevel
from .._grad_mode import recordings_active as _recordings_active
from .._grad_mode import state as _grad_state
from .._more_composites import xlogy
from .._record import broadcast_shape, name_node
from .._selection import where as _where
from ..tensor import Tensor, _normalize_dim, as_tensor
from ._pointwise import _zeros


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    """``loss`` averaged, summed or as it is; ``ValueError`` for another ``reduction``."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _legacy_reduction(size_average, reduce, reduction: str) -> str:
    """PyTorch's deprecated ``size_average``/``reduce`` as a ``reduction``, as it reads them."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "none" if not reduce else ("mean" if size_average else "sum")
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{reduction}' instead.",
        stacklevel=user_stacklevel(),
    )
    return reduction


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",  # noqa: A002
           log_target: bool = False) -> Tensor:  # fmt: skip
    """The Kullback-Leibler divergence of ``target`` from log-probabilities ``input``, pointwise
    ``target * (log(target) - input)`` (0 where ``target`` is 0), or ``exp(target) * (target -
    input)`` with ``log_target``; reduced by ``reduction``: "mean" over every element (with
    PyTorch's warning), "batchmean" (the sum over the batch size, the divergence's definition),
    "sum" or "none". Follows ``torch.nn.functional.kl_div``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        # PyTorch's own formula: NaN for a negative target, and at a target of 0 the target's
        # gradient is xlogy's 0 / 0, NaN (a masked log gave -input there).
        loss = xlogy(target, target) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.dim() else loss.sum()
    if reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support size."
            "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
            "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
            stacklevel=2,
        )
    return _reduce(loss, reduction)


def _broadcast(x1: Tensor, x2: Tensor) -> tuple:
    shape = broadcast_shape(tuple(x1.shape), tuple(x2.shape))
    return (x1 if tuple(x1.shape) == shape else x1.expand(shape)), (
        x2 if tuple(x2.shape) == shape else x2.expand(shape)
    )


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """The cosine of the angle between ``x1`` and ``x2`` along ``dim`` (broadcast first), each
    divided by its 2-norm clamped to at least ``eps``; the clamp, as PyTorch's (made without
    autograd), changes the value only. Follows ``torch.nn.functional.cosine_similarity``."""
    x1, x2 = _broadcast(x1, x2)
    dim = _normalize_dim(dim, max(x1.dim(), 1))

    def normalized(x):
        norm = x.norm(2, dim, keepdim=True)
        # 0 unless the norm is below eps (written so that an infinite norm, of float32 values
        # whose squares overflow, adds 0: max(norm, eps) - norm was inf - inf, NaN, where
        # PyTorch's similarity is 0)
        floor = (eps - norm.detach()).clamp_min(0.0)
        return x / (norm + floor)

    return (normalized(x1) * normalized(x2)).sum(dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """The ``p``-norm of ``x1 - x2 + eps`` along the last dimension; follows
    ``torch.nn.functional.pairwise_distance``."""
    dims = max(x1.dim(), x2.dim())
    distance = (x1 - x2 + eps).norm(p, dims - 1 if dims else None, keepdim=keepdim)
    return name_node(distance, "NormBackward1")  # (PyTorch's norm with a dim)


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        size_average=None, reduce=None, reduction: str = "mean") -> Tensor:  # fmt: skip
    """``max(0, -target * (input1 - input2) + margin)``, reduced; follows
    ``torch.nn.functional.margin_ranking_loss``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _reduce((-target * (input1 - input2) + margin).clamp_min(0.0), reduction)


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average=None,  # noqa: A002
                         reduce=None, reduction: str = "mean") -> Tensor:  # fmt: skip
    """``input`` where ``target`` is 1, ``max(0, margin - input)`` where it is -1, reduced;
    follows ``torch.nn.functional.hinge_embedding_loss``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    target = as_tensor(target)
    zeros = _zeros(input)
    output = _where(target != 1, (margin - input).clamp_min(0.0), zeros) + _where(target != -1, input, zeros)
    return _reduce(output, reduction)


def _as_dtype_of(values: Tensor, input: Tensor) -> Tensor:  # noqa: A002
    """``values`` cast to ``input``'s dtype (a loss kernel of PyTorch's that writes its input's
    dtype whatever the target's or the weights'), ``values`` itself where it has it."""
    return values if values._data.dtype == input._data.dtype else values.to(input.dtype)


def _same_dtype_weight(weight, input: Tensor) -> None:  # noqa: A002
    """PyTorch's ``RuntimeError`` for class weights of another dtype than the input (its
    ``nll_loss`` and ``multi_margin_loss`` kernels take one scalar type: a float64 weight with
    float32 scores ran here)."""
    if weight is not None and weight._data.dtype != input._data.dtype:
        raise RuntimeError(f"expected scalar type {input.dtype.type_name} but found {weight.dtype.type_name}")


def soft_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:  # noqa: A002
    """``log(1 + exp(-target * input))``, reduced; follows ``torch.nn.functional.soft_margin_loss``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    # (PyTorch's derivatives.yaml declares none in the target: its autograd refuses one that
    # requires grad when it records, so not under no_grad, nor a recording's or vmap's input)
    if target.requires_grad and _grad_state.enabled and not _recordings_active[0]:
        raise RuntimeError(
            "The function 'soft_margin_loss' is not differentiable with respect to argument 'target'. This input "
            "cannot have requires_grad True."
        )
    shape = tuple(np.broadcast_shapes(tuple(input.shape), tuple(target.shape)))
    if shape != tuple(input.shape):  # PyTorch's kernel writes the input's shape (it broadcast silently)
        raise RuntimeError(f"output with shape {list(input.shape)} doesn't match the broadcast shape {list(shape)}")
    # (of the input's dtype, as PyTorch's kernel writes it: a float64 target made it float64)
    return name_node(
        _reduce(_as_dtype_of((-input * target).exp().log1p(), input), reduction), "SoftMarginLossBackward0"
    )


_EPSILON = 1e-12  # cosine_embedding_loss's, added to each squared magnitude (PyTorch's EPSILON)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          size_average=None, reduce=None, reduction: str = "mean") -> Tensor:  # fmt: skip
    """``1 - cos(input1, input2)`` where ``target`` is 1, ``max(0, cos - margin)`` where it is
    -1 (cosines along the last dimension of (N, D) or (D,) inputs), reduced; follows
    ``torch.nn.functional.cosine_embedding_loss``. Raises ``RuntimeError`` for inputs of other
    dimensions or sizes, with PyTorch's messages."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    target = as_tensor(target)
    if input1.dim() != input2.dim() or input1.dim() not in (1, 2) or target.dim() != input1.dim() - 1:
        raise RuntimeError(
            f"1D target tensor expects 2D input tensors, but found inputs with sizes {list(input1.shape)} and "
            f"{list(input2.shape)}."
            if target.dim() == 1
            else f"0D target tensor expects 1D input tensors, but found inputs with sizes {list(input1.shape)} and "
            f"{list(input2.shape)}."
        )
    dim = input1.dim() - 1
    product = (input1 * input2).sum(dim)
    magnitude1 = (input1 * input1).sum(dim) + _EPSILON
    magnitude2 = (input2 * input2).sum(dim) + _EPSILON
    cosine = product / (magnitude1 * magnitude2).sqrt()
    zeros = _zeros(cosine)
    positive = _where(target == 1, 1.0 - cosine, zeros)
    negative = _where(target == -1, (cosine - margin).clamp_min(0.0), zeros)
    return _reduce(positive + negative, reduction)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2.0,
                        eps: float = 1e-6, swap: bool = False, size_average=None, reduce=None,
                        reduction: str = "mean") -> Tensor:  # fmt: skip
    """``max(0, margin + d(anchor, positive) - d(anchor, negative))`` with ``pairwise_distance``
    (with ``swap``, the smaller of d(anchor, negative) and d(positive, negative)), reduced;
    follows ``torch.nn.functional.triplet_margin_loss``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    dims = (anchor.dim(), positive.dim(), negative.dim())
    if len(set(dims)) > 1:  # (pairwise_distance broadcast them into a loss)
        raise RuntimeError(
            "The anchor, positive, and negative tensors are expected to have the same number of dimensions, but got: "
            f"anchor {dims[0]}D, positive {dims[1]}D, and negative {dims[2]}D inputs"
        )
    near = pairwise_distance(anchor, positive, p, eps)
    far = pairwise_distance(anchor, negative, p, eps)
    if swap:
        far = far.minimum(pairwise_distance(positive, negative, p, eps))
    return _reduce((margin + near - far).clamp_min(0.0), reduction)
