"""``tapegrad.nn.functional``: PyTorch's functional activations over the op table."""

from __future__ import annotations

import numpy as np

from .. import _factories
from .._indexing import gather_rows
from .._record import _SCALAR_OPS, _scalar
from .._reductions import log_softmax as _log_softmax
from .._reductions import softmax as _softmax
from ..tensor import Tensor, _wrap


def relu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002 - PyTorch's names
    return input.relu()


def sigmoid(input: Tensor) -> Tensor:  # noqa: A002
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:  # noqa: A002
    return input.tanh()


def gelu(input: Tensor, approximate: str = "none") -> Tensor:  # noqa: A002
    """x * Phi(x) (the exact, erf form; ``approximate="tanh"`` is not supported yet)."""
    if approximate != "none":
        raise NotImplementedError("gelu supports approximate='none' so far")
    return input.gelu()


def embedding(input, weight: Tensor) -> Tensor:  # noqa: A002
    """Rows of ``weight`` picked by the integer ``input`` (``EmbeddingBackward0``)."""
    return gather_rows("embedding", weight, input)


def layer_norm(input: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:  # noqa: A002
    dims = tuple(range(-len(tuple(normalized_shape)), 0))
    centered = input - input.mean(dims, keepdim=True)
    out = centered / ((centered * centered).mean(dims, keepdim=True) + eps).sqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def silu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    return input.silu()


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:  # noqa: A002
    return _scalar(_SCALAR_OPS["leaky_relu"], input, float(negative_slope))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    return _scalar(_SCALAR_OPS["elu"], input, float(alpha))


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002
    """log(1 + exp(x)), and x above ``threshold`` (only PyTorch's defaults are supported)."""
    if beta != 1.0 or threshold != 20.0:
        raise NotImplementedError("softplus supports beta=1 and threshold=20 so far")
    return input.softplus()


def softmax(input: Tensor, dim: int, dtype=None) -> Tensor:  # noqa: A002
    return _softmax(input, dim, dtype)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:  # noqa: A002
    out = input @ weight.t()
    return out if bias is None else out + bias


def log_softmax(input: Tensor, dim: int, dtype=None) -> Tensor:  # noqa: A002
    return _log_softmax(input, dim, dtype)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    return _reduce((input - target) ** 2, reduction)


def cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:  # noqa: A002
    """Class indices ``target`` (int64, shape (N,)) against logits ``input`` (N, C)."""
    labels = np.asarray(target._data if isinstance(target, Tensor) else target)
    if labels.ndim != 1 or input.dim() != 2:
        raise NotImplementedError("cross_entropy supports (N, C) logits with (N,) class indices so far")
    one_hot = np.zeros(input.shape, input._data.dtype)
    one_hot[np.arange(len(labels)), labels] = 1
    return _reduce(-(log_softmax(input, 1) * _wrap(one_hot)).sum(1), reduction)


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:  # noqa: A002
    if not training or p == 0:
        return input
    keep = (_factories._generator.random(input.shape) >= p).astype(input._data.dtype) / (1 - p)
    return input * _wrap(keep)
