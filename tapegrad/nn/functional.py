"""``tapegrad.nn.functional``: PyTorch's functional activations over the op table."""

from __future__ import annotations

from .._reductions import softmax as _softmax
from ..tensor import Tensor


def relu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002 - PyTorch's names
    return input.relu()


def sigmoid(input: Tensor) -> Tensor:  # noqa: A002
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:  # noqa: A002
    return input.tanh()


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
