"""``torch.distributions.kl``: ``kl_divergence`` and the formulas registered for it."""

from __future__ import annotations

import math

from .._factories import full_like
from .._selection import where
from ..tensor import Tensor
from .categorical import Categorical
from .distribution import Distribution
from .normal import Normal
from .uniform import Uniform

_KL: dict = {}


def register_kl(type_p: type, type_q: type):
    """Decorator registering ``kl(p, q)`` for ``kl_divergence`` of these types; follows
    ``torch.distributions.register_kl``."""

    def register(function):
        _KL[type_p, type_q] = function
        return function

    return register


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    """KL(p || q), per batch element (shape: the broadcast batch shape), differentiable in both
    distributions' parameters. Follows ``torch.distributions.kl_divergence``; raises its
    ``NotImplementedError`` for a pair of types with no formula registered."""
    for kind_p in type(p).__mro__:
        for kind_q in type(q).__mro__:
            function = _KL.get((kind_p, kind_q))
            if function is not None:
                return function(p, q)
    raise NotImplementedError(
        f"No KL(p || q) is implemented for p type {type(p).__name__} and q type {type(q).__name__}"
    )


@register_kl(Normal, Normal)
def _kl_normal_normal(p: Normal, q: Normal) -> Tensor:
    var_ratio = (p.scale / q.scale).pow(2)
    t1 = ((p.loc - q.loc) / q.scale).pow(2)
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p: Categorical, q: Categorical) -> Tensor:
    t = p.probs * (p.logits - q.logits)
    t = where(q.probs == 0, float("inf"), t)  # PyTorch's: infinite where q excludes what p allows
    t = where(p.probs == 0, 0.0, t)
    return t.sum(-1)


@register_kl(Normal, Uniform)
def _kl_normal_uniform(p: Normal, q: Uniform) -> Tensor:
    # A Normal puts mass outside every interval: inf of the batch's shape, a constant with no
    # graph, as PyTorch's full_like (loc * 0 + inf was NaN for an infinite loc, and took a gradient)
    return full_like(p.loc.detach(), float("inf"))


@register_kl(Uniform, Normal)
def _kl_uniform_normal(p: Uniform, q: Normal) -> Tensor:
    width = p.high - p.low
    t1 = (math.sqrt(math.pi * 2) * q.scale / width).log()
    t2 = width.pow(2) / 12
    t3 = ((p.high + p.low - 2 * q.loc) / 2).pow(2)
    return t1 + 0.5 * (t2 + t3) / q.scale.pow(2)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p: Uniform, q: Uniform) -> Tensor:
    result = ((q.high - q.low) / (p.high - p.low)).log()
    outside = (q.low > p.low) | (q.high < p.high)
    return where(outside, float("inf"), result)
