"""``torch.distributions.categorical``."""

from __future__ import annotations

import numpy as np

from .._factories import multinomial, tensor
from .._grad_mode import no_grad
from .._selection import clamp
from ..tensor import Size, Tensor
from .distribution import _SCALAR, Distribution, _shape, lazy_property, logits_to_probs, probs_to_logits


class Categorical(Distribution):
    """Distributions over ``0 .. K-1`` given by ``probs`` (non-negative, normalised over the last
    dimension) or ``logits`` (unnormalised log-probabilities), not both; the other is computed
    when first read, as in PyTorch. Batch shape: the parameter's shape but the last dimension.
    ``log_prob`` and ``entropy`` differentiate with respect to the parameter; ``sample`` draws
    int64 indices. Follows ``torch.distributions.Categorical``; raises PyTorch's ``ValueError``s."""

    arg_constraints = {"probs": "Simplex()", "logits": "IndependentConstraint(Real(), 1)"}

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            probs = probs if isinstance(probs, Tensor) else tensor(probs)
            if probs.dim() < 1:
                raise ValueError("`probs` parameter must be at least one-dimensional.")
            self.probs = probs / probs.sum(-1, keepdim=True)
            parameter = self.probs
        else:
            logits = logits if isinstance(logits, Tensor) else tensor(logits)
            if logits.dim() < 1:
                raise ValueError("`logits` parameter must be at least one-dimensional.")
            self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)
            parameter = self.logits
        self._param = parameter
        self._num_events = parameter.shape[-1]
        super().__init__(parameter.shape[:-1], validate_args=validate_args)
        if probs is not None:  # (checked normalised, as PyTorch's message shows it)
            data = self.probs._data
            self._check("probs", self.probs, (data >= 0).all() and np.allclose(data.sum(-1), 1, atol=1e-6), "Simplex()")
        else:
            self._check("logits", self.logits, ~np.isnan(self.logits._data), "IndependentConstraint(Real(), 1)")

    @lazy_property
    def probs(self) -> Tensor:
        return logits_to_probs(self.logits)

    @lazy_property
    def logits(self) -> Tensor:
        return probs_to_logits(self.probs)

    @property
    def param_shape(self) -> Size:
        return self._param.shape

    @property
    def mean(self) -> Tensor:
        return tensor(np.full(self._extended_shape(), np.nan, self._param._data.dtype))

    @property
    def mode(self) -> Tensor:
        return self.probs.argmax(dim=-1)

    @property
    def variance(self) -> Tensor:
        return self.mean

    def sample(self, sample_shape=_SCALAR) -> Tensor:
        sample_shape = _shape(sample_shape)
        count = int(np.prod(sample_shape, dtype=np.int64))
        with no_grad():
            probs_2d = self.probs.reshape(-1, self._num_events)
            drawn = multinomial(probs_2d, count, True).T
        return drawn.reshape(self._extended_shape(sample_shape))

    def log_prob(self, value) -> Tensor:
        value = self._checked_value(value)
        if self._validate_args:
            data = value._data
            inside = (data == np.floor(data)) & (data >= 0) & (data <= self._num_events - 1)
            support = f"IntegerInterval(lower_bound=0, upper_bound={self._num_events - 1})"
            self._check_support(value, inside, support)
        index = value.long().unsqueeze(-1)
        shape = np.broadcast_shapes(index._data.shape, self.logits._data.shape)
        log_pmf = self.logits.expand(shape)
        index = index.expand(shape[:-1] + (1,))
        return log_pmf.gather(-1, index).squeeze(-1)

    def entropy(self) -> Tensor:
        smallest = float(np.finfo(self.logits._data.dtype).min)
        logits = clamp(self.logits, min=smallest)
        return -(logits * self.probs).sum(-1)
