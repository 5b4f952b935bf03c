"""``torch.distributions.laplace``."""

from __future__ import annotations

import math

import numpy as np

from .._factories import rand
from ..tensor import Tensor
from .distribution import _SCALAR, LocationScale, _not_nan


class Laplace(LocationScale):
    """Laplace distributions of location ``loc`` and scale ``scale`` (broadcast together: the
    batch shape), density ``exp(-|x - loc| / scale) / (2 scale)``. ``rsample`` is
    ``loc - scale * sign(u) * log1p(-|u|)``, ``u`` uniform in (-1, 1), differentiable in both.
    Follows ``torch.distributions.Laplace``; raises ``ValueError`` for a ``scale`` that is not
    positive (with ``validate_args``)."""

    @property
    def variance(self) -> Tensor:
        return 2 * self.scale.pow(2)

    @property
    def stddev(self) -> Tensor:
        return math.sqrt(2) * self.scale

    def rsample(self, sample_shape=_SCALAR) -> Tensor:
        eps = float(np.finfo(self.loc._data.dtype).eps)  # (u = -1 would be an infinite draw)
        u = rand(*self._extended_shape(sample_shape), dtype=self.loc.dtype) * (2 - eps) + (eps - 1)
        return self.loc - self.scale * u.sign() * (-u.abs()).log1p()

    def log_prob(self, value) -> Tensor:
        value = self._checked_value(value)
        self._check_support(value, _not_nan, "Real()")
        return -(2 * self.scale).log() - (value - self.loc).abs() / self.scale

    def cdf(self, value) -> Tensor:
        value = self._checked_value(value)
        return 0.5 - 0.5 * (value - self.loc).sign() * (-(value - self.loc).abs() / self.scale).expm1()

    def icdf(self, value) -> Tensor:
        term = value - 0.5
        return self.loc - self.scale * term.sign() * (-2 * term.abs()).log1p()

    def entropy(self) -> Tensor:
        return 1 + (2 * self.scale).log()
