"""Piecewise and smooth activations composed of recorded ops, each with PyTorch's values and
gradients at its break points (where a plain composite, a clamp, would differ: PyTorch's
hardtanh passes no gradient at its bounds, clamp passes it). Public through
``tapegrad.nn.functional``."""

from __future__ import annotations

import numpy as np

from .._record import _SCALAR_OPS, _scalar, in_place, name_node
from .._selection import where as _where
from ..tensor import Tensor, _wrap, floating_kernel


def _written(input: Tensor, compute, inplace: bool, node: str, composite: bool = True) -> Tensor:  # noqa: A002 - PyTorch's names
    """``compute(input)``, or with ``inplace`` ``input`` changed in place to it, computed
    inside the in-place change so that the values its backward saved of ``input`` are kept
    (``_record.in_place``): computed first and copied in, the backward raised "modified by an
    inplace operation" where PyTorch's in-place activation runs. ``node``: PyTorch's grad_fn
    name, given to a ``composite`` result (one op's row has its own)."""

    def named(x):
        return name_node(compute(x), node) if composite else compute(x)

    return in_place(input, named, node.removesuffix("Backward0")) if inplace else named(input)


def _elu(input: Tensor, alpha: float) -> Tensor:  # noqa: A002
    return _scalar(_SCALAR_OPS["elu"], input, float(alpha))


def _zeros(like: Tensor) -> Tensor:
    """A 0-d zero of ``like``'s dtype, the constant branch of a select."""
    return _wrap(np.zeros((), like._data.dtype))


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``input`` clamped to ``[min_val, max_val]``, same shape and dtype; its gradient passes
    strictly between the bounds only, as PyTorch's hardtanh_backward. Follows
    ``torch.nn.functional.hardtanh``; raises ``ValueError`` when ``min_val > max_val``."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if input._data.dtype.kind in "iu":  # PyTorch converts the bounds to the integer type
        low, high = int(min_val), int(max_val)
        if input._data.dtype.kind == "u" and (low < 0 or high < 0):  # (-3 as uint8 is 253; -0.5 is 0)
            raise RuntimeError("cannot do hardtanh on an unsigned type with negative limits")
        return input.clamp_(low, high) if inplace else input.clamp(low, high)

    def compute(x):
        # (at NaN the gradient is 0, as PyTorch's vectorized loop gives, where nearly every
        # element runs; its scalar loop, for a tensor's last few elements, gives 1)
        return _where((x > min_val) & (x < max_val), x, x.detach().clamp(min_val, max_val))

    return _written(input, compute, inplace, "HardtanhBackward0")


def relu6(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``hardtanh(input, 0, 6)``; follows ``torch.nn.functional.relu6``."""
    return hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``relu6(x + 3) / 6``, gradient 1/6 strictly between -3 and 3; follows
    ``torch.nn.functional.hardsigmoid``."""
    floating_kernel(input, "hardsigmoid_cpu")

    def compute(x):
        # Its own test of the interior, as PyTorch's hardsigmoid_backward: 0 at NaN.
        inside = (x > -3.0) & (x < 3.0)
        return _where(inside, (x + 3.0) / 6.0, (x.detach() + 3.0).clamp(0.0, 6.0) / 6.0)

    return _written(input, compute, inplace, "HardsigmoidBackward0")


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x * relu6(x + 3) / 6``: ``x * 0`` up to -3 (-0.0, NaN at -inf), ``x * 6 / 6`` from 3,
    ``x (x + 3) / 6`` between, each rounded as PyTorch computes it; gradient 0 up to -3,
    ``x / 3 + 0.5`` between, NaN at NaN (PyTorch's hardswish_backward). Follows
    ``torch.nn.functional.hardswish``."""
    floating_kernel(input, "hardswish_cpu")

    def compute(x):
        below, above = x <= -3.0, x >= 3.0
        between = ~(below | above)  # (NaN included: its gradient NaN, as PyTorch's vectorized loop)
        # The middle formula reads 0 outside its range: at x = inf its derivative was inf,
        # and times the select's 0, a NaN gradient.
        inner = _where(between, x, _zeros(x))
        return _where(between, inner * (inner + 3.0) / 6.0, _where(below, x.detach() * 0.0, x * 6.0 / 6.0))

    return _written(input, compute, inplace, "HardswishBackward0")


def logsigmoid(input: Tensor) -> Tensor:  # noqa: A002
    """``log(sigmoid(x))`` as PyTorch computes it, ``min(x, 0) - log1p(exp(-|x|))`` (no
    overflow, no cancellation); gradient ``sigmoid(-x)``, 0.5 at 0. Follows
    ``torch.nn.functional.logsigmoid``."""
    floating_kernel(input, "log_sigmoid_cpu")
    negative = input < 0.0
    # -|x| as a select, so that its derivative at 0 is that of -x: the gradient is then 0.5
    # there (|x|'s derivative at 0 is 0, which gave 0).
    result = _where(negative, input, _zeros(input)) - _where(negative, input, -input).exp().log1p()
    return name_node(result, "LogSigmoidBackward0")


def softsign(input: Tensor) -> Tensor:  # noqa: A002
    """``x / (1 + |x|)``; follows ``torch.nn.functional.softsign`` (a composite there too)."""
    return input / (input.abs() + 1.0)


def mish(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x * tanh(softplus(x))``; follows ``torch.nn.functional.mish``."""
    floating_kernel(input, "mish_cpu")
    return _written(input, lambda x: x * x.softplus().tanh(), inplace, "MishBackward0")


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``scale * elu(x, alpha)`` with PyTorch's constants; follows ``torch.nn.functional.selu``."""
    floating_kernel(input, "elu_cpu")

    def compute(x):
        return _where(x > 0.0, x * _SELU_SCALE, _elu(x, _SELU_ALPHA) * _SELU_SCALE)

    return _written(input, compute, inplace, "EluBackward0")


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` above 0, ``alpha * (exp(x / alpha) - 1)`` below; follows
    ``torch.nn.functional.celu``; raises ``RuntimeError`` for ``alpha`` 0, as PyTorch."""
    floating_kernel(input, "elu_cpu")
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return _written(input, lambda x: _where(x > 0.0, x, _elu(x / alpha, 1.0) * alpha), inplace, "CeluBackward0")
