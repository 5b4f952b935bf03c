"""``torch.distributions.normal``."""

from __future__ import annotations

import math

from .._factories import randn
from ..tensor import Tensor
from .distribution import _SCALAR, LocationScale, _not_nan


class Normal(LocationScale):
    """Normal (Gaussian) distributions of mean ``loc`` and standard deviation ``scale`` (tensors
    or numbers, broadcast together: the batch shape). ``rsample`` is ``loc + scale * eps``,
    differentiable in both. Follows ``torch.distributions.Normal``; raises ``ValueError`` for a
    ``scale`` that is not positive."""

    @property
    def stddev(self) -> Tensor:
        return self.scale

    @property
    def variance(self) -> Tensor:
        return self.scale.pow(2)

    def rsample(self, sample_shape=_SCALAR) -> Tensor:
        shape = self._extended_shape(sample_shape)
        eps = randn(*shape, dtype=self.loc.dtype)
        return self.loc + eps * self.scale

    def _checked_real(self, value) -> Tensor:
        value = self._checked_value(value)
        self._check_support(value, _not_nan, "Real()")
        return value

    def log_prob(self, value) -> Tensor:
        value = self._checked_real(value)
        var = self.scale**2
        return -((value - self.loc) ** 2) / (2 * var) - self.scale.log() - math.log(math.sqrt(2 * math.pi))

    def cdf(self, value) -> Tensor:
        value = self._checked_real(value)
        return 0.5 * (1 + ((value - self.loc) * self.scale.reciprocal() / math.sqrt(2)).erf())

    def entropy(self) -> Tensor:
        return 0.5 + 0.5 * math.log(2 * math.pi) + self.scale.log()
