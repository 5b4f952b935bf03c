"""``torch.distributions.bernoulli``."""

from __future__ import annotations

import numpy as np

from .. import _composites
from .._grad_mode import no_grad
from .._selection import where
from ..tensor import Size, Tensor
from .distribution import _SCALAR, Distribution, _as_parameters, lazy_property, logits_to_probs, probs_to_logits


class Bernoulli(Distribution):
    """Draws of 1 with probability ``probs`` (or ``sigmoid(logits)``; give one of them), else 0,
    in the parameter's float dtype; batch shape: the parameter's. ``log_prob`` and ``entropy``
    differentiate with respect to the parameter; ``sample`` has no gradient. Follows
    ``torch.distributions.Bernoulli``; raises its ``ValueError`` for both parameters or neither,
    and for probabilities outside [0, 1] or values outside {0, 1} (with ``validate_args``)."""

    arg_constraints = {"probs": "Interval(lower_bound=0.0, upper_bound=1.0)", "logits": "Real()"}

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            (self.probs,) = _as_parameters(probs)
            self._param = self.probs
        else:
            (self.logits,) = _as_parameters(logits)
            self._param = self.logits
        super().__init__(self._param.shape, validate_args=validate_args)
        if probs is not None:
            data = self.probs._data
            self._check("probs", self.probs, (data >= 0) & (data <= 1), self.arg_constraints["probs"])
        else:
            self._check("logits", self.logits, ~np.isnan(self.logits._data), "Real()")

    @lazy_property
    def probs(self) -> Tensor:
        return logits_to_probs(self.logits, is_binary=True)

    @lazy_property
    def logits(self) -> Tensor:
        return probs_to_logits(self.probs, is_binary=True)

    @property
    def param_shape(self) -> Size:
        return self._param.shape

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def mode(self) -> Tensor:
        mode = (self.probs >= 0.5).to(self.probs.dtype)
        return where(self.probs == 0.5, float("nan"), mode)  # (either value, at one half)

    @property
    def variance(self) -> Tensor:
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=_SCALAR) -> Tensor:
        with no_grad():
            return _composites.bernoulli(self.probs.expand(self._extended_shape(sample_shape)))

    def log_prob(self, value) -> Tensor:
        from ..nn.functional import binary_cross_entropy_with_logits

        value = self._checked_value(value)
        self._check_support(value, lambda v: (v == 0) | (v == 1), "Boolean()")
        logits, value = _as_parameters(self.logits, value)
        return -binary_cross_entropy_with_logits(logits, value, reduction="none")

    def entropy(self) -> Tensor:
        from ..nn.functional import binary_cross_entropy_with_logits

        return binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")
