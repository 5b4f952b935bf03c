"""``torch.distributions.uniform``."""

from __future__ import annotations

from .._factories import rand
from ..tensor import Tensor
from .distribution import _SCALAR, Distribution, _as_parameters


class Uniform(Distribution):
    """Uniform distributions on ``[low, high)`` (broadcast together). ``rsample`` is
    ``low + u * (high - low)``. Follows ``torch.distributions.Uniform``; raises ``ValueError``
    where ``low`` is not below ``high``."""

    has_rsample = True
    arg_constraints = {"low": "LessThan(upper_bound=high)", "high": "GreaterThan(lower_bound=low)"}

    def __init__(self, low, high, validate_args=None):
        self.low, self.high = _as_parameters(low, high)
        super().__init__(self.low.shape, validate_args=validate_args)
        self._check("low", self.low, self.low._data < self.high._data, f"LessThan(upper_bound={self.high})")

    @property
    def mean(self) -> Tensor:
        return (self.high + self.low) / 2

    @property
    def mode(self) -> Tensor:
        return self.high * float("nan")

    @property
    def variance(self) -> Tensor:
        return (self.high - self.low).pow(2) / 12

    def rsample(self, sample_shape=_SCALAR) -> Tensor:
        shape = self._extended_shape(sample_shape)
        u = rand(*shape, dtype=self.low.dtype)
        return self.low + u * (self.high - self.low)

    def log_prob(self, value) -> Tensor:
        value = self._checked_value(value)
        if self._validate_args:
            inside = (self.low._data <= value._data) & (value._data <= self.high._data)  # (high: -inf)
            self._check_support(value, inside, f"Interval(lower_bound={self.low}, upper_bound={self.high})")
        lb = self.low.le(value).type_as(self.low)
        ub = self.high.gt(value).type_as(self.low)
        return (lb * ub).log() - (self.high - self.low).log()

    def entropy(self) -> Tensor:
        return (self.high - self.low).log()
