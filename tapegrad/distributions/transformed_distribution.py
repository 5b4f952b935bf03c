"""``torch.distributions.transformed_distribution`` and ``log_normal``."""

from __future__ import annotations

from .._grad_mode import no_grad
from ..tensor import Tensor
from .distribution import _SCALAR, Distribution
from .independent import sum_rightmost
from .normal import Normal
from .transforms import ExpTransform, Transform


class TransformedDistribution(Distribution):
    """``base_distribution`` mapped through ``transforms`` (one, or a list applied in order):
    draws are the base's transformed, ``log_prob(y)`` the base's at the inverse less the log of
    the Jacobians. Elementwise transforms: shapes are the base's. Follows
    ``torch.distributions.TransformedDistribution``."""

    arg_constraints: dict = {}

    def __init__(self, base_distribution: Distribution, transforms, validate_args=None):
        self.transforms = [transforms] if isinstance(transforms, Transform) else list(transforms)
        for transform in self.transforms:
            if not isinstance(transform, Transform):
                raise ValueError(f"transforms must be a Transform or a list of Transforms, but was {transforms}")
        self.base_dist = base_distribution
        shape = tuple(base_distribution.batch_shape) + tuple(base_distribution.event_shape)
        for transform in self.transforms:
            shape = transform.forward_shape(shape)
        event = len(base_distribution.event_shape)
        super().__init__(shape[: len(shape) - event], shape[len(shape) - event :], validate_args=validate_args)

    @property
    def has_rsample(self) -> bool:
        return self.base_dist.has_rsample

    def sample(self, sample_shape=_SCALAR) -> Tensor:
        with no_grad():  # (a transform's parameters put the draw on their graph)
            x = self.base_dist.sample(sample_shape)
            for transform in self.transforms:
                x = transform(x)
            return x

    def rsample(self, sample_shape=_SCALAR) -> Tensor:
        x = self.base_dist.rsample(sample_shape)
        for transform in self.transforms:
            x = transform(x)
        return x

    def log_prob(self, value) -> Tensor:
        value = self._checked_value(value)
        if self.transforms:  # the last transform's codomain: the support
            name, inside = self.transforms[-1].codomain
            self._check_support(value, inside(value._data), name)
        event_dim = len(self._event_shape)
        log_prob = 0.0
        y = value
        for transform in reversed(self.transforms):
            x = transform.inv(y)
            log_prob = log_prob - sum_rightmost(transform.log_abs_det_jacobian(x, y), event_dim)
            y = x
        return log_prob + self.base_dist.log_prob(y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LogNormal(TransformedDistribution):
    """``exp`` of a Normal of mean ``loc`` and standard deviation ``scale``; follows
    ``torch.distributions.LogNormal``."""

    has_rsample = True
    arg_constraints = Normal.arg_constraints

    def __init__(self, loc, scale, validate_args=None):
        super().__init__(Normal(loc, scale, validate_args=validate_args), ExpTransform(), validate_args)

    @property
    def loc(self) -> Tensor:
        return self.base_dist.loc

    @property
    def scale(self) -> Tensor:
        return self.base_dist.scale

    @property
    def mean(self) -> Tensor:
        return (self.loc + self.scale.pow(2) / 2).exp()

    @property
    def mode(self) -> Tensor:
        return (self.loc - self.scale.pow(2)).exp()

    @property
    def variance(self) -> Tensor:
        scale_sq = self.scale.pow(2)
        return scale_sq.expm1() * (2 * self.loc + scale_sq).exp()

    def entropy(self) -> Tensor:
        return self.base_dist.entropy() + self.loc

    def __repr__(self) -> str:  # (its parameters are properties: PyTorch's repr shows none)
        return f"{type(self).__name__}()"
