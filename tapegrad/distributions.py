"""Probability distributions with differentiable parameters, as ``torch.distributions``:
``Normal``, ``Uniform``, ``Categorical`` and ``kl_divergence`` between two of a kind.

Everything is built from recorded tensor ops, so ``log_prob``, ``entropy``, ``rsample`` and
``kl_divergence`` differentiate with respect to the parameters (the reparameterised sample of a
VAE, the log-probability of a policy gradient). Samples come from tapegrad's random state
(``tapegrad.manual_seed``): the same seed gives the same numbers every run, not PyTorch's.
Parameters are checked as PyTorch's default ``validate_args`` checks them, with its
``ValueError`` messages; ``validate_args=False`` skips the checks.
"""

from __future__ import annotations

import math

import numpy as np

from . import _dtypes
from ._factories import full_like, multinomial, rand, randn, tensor
from ._grad_mode import no_grad
from ._selection import clamp, where
from .tensor import Size, Tensor

__all__ = ["Categorical", "Distribution", "Normal", "Uniform", "kl_divergence", "register_kl"]


def _as_parameters(*values) -> list:
    """``torch.distributions.utils.broadcast_all``: numbers become tensors of the default dtype
    (or of the tensors' dtype), and all are expanded to one broadcast shape."""
    dtype = next((v.dtype for v in values if isinstance(v, Tensor)), _dtypes.DEFAULT_FLOAT)
    tensors = [v if isinstance(v, Tensor) else tensor(v, dtype=dtype) for v in values]
    shape = np.broadcast_shapes(*(t._data.shape for t in tensors))
    return [t if t._data.shape == shape else t.expand(shape) for t in tensors]


_SCALAR = Size()  # (one draw: PyTorch's default sample_shape, torch.Size())


def _shape(sample_shape) -> Size:
    return Size(sample_shape if isinstance(sample_shape, (tuple, list)) else (sample_shape,))


class Distribution:
    """The base class: ``batch_shape`` (independent distributions side by side) and
    ``event_shape`` (the shape of one draw); ``sample``/``rsample`` give
    ``sample_shape + batch_shape + event_shape``. Follows ``torch.distributions.Distribution``."""

    has_rsample = False
    arg_constraints: dict = {}

    def __init__(self, batch_shape=_SCALAR, event_shape=_SCALAR, validate_args=None):
        self._batch_shape = Size(batch_shape)
        self._event_shape = Size(event_shape)
        self._validate_args = True if validate_args is None else bool(validate_args)

    @property
    def batch_shape(self) -> Size:
        return self._batch_shape

    @property
    def event_shape(self) -> Size:
        return self._event_shape

    def _extended_shape(self, sample_shape=_SCALAR) -> Size:
        return Size(tuple(_shape(sample_shape)) + tuple(self._batch_shape) + tuple(self._event_shape))

    def sample(self, sample_shape=_SCALAR) -> Tensor:
        """A draw of shape ``sample_shape + batch_shape + event_shape``, without a gradient."""
        with no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=_SCALAR) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement rsample")

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    # What a subclass defines; the base raises NotImplementedError, as PyTorch's (code falls
    # back on ``except NotImplementedError``, around ``entropy()`` most often).
    @property
    def mean(self) -> Tensor:
        raise NotImplementedError

    @property
    def mode(self) -> Tensor:
        raise NotImplementedError(f"{self.__class__} does not implement mode")

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError

    def log_prob(self, value: Tensor) -> Tensor:
        raise NotImplementedError

    def cdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError

    def icdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError

    def entropy(self) -> Tensor:
        raise NotImplementedError

    def _check(self, name: str, values: Tensor, ok, constraint: str) -> None:
        """PyTorch's ``ValueError`` for a parameter ``name`` outside ``constraint`` (``ok``:
        where it is inside), when arguments are validated."""
        if self._validate_args and not bool(np.all(ok)):
            raise ValueError(
                f"Expected parameter {name} (Tensor of shape {tuple(values.shape)}) of distribution {self!r} "
                f"to satisfy the constraint {constraint}, but found invalid values:\n{values}"
            )

    def _check_support(self, value: Tensor, ok, support: str) -> None:
        if self._validate_args and not bool(np.all(ok)):
            raise ValueError(
                f"Expected value argument (Tensor of shape {tuple(value.shape)}) to be within the support "
                f"({support}) of the distribution {self!r}, but found invalid values:\n{value}"
            )

    def _checked_value(self, value) -> Tensor:
        if not isinstance(value, Tensor):
            if self._validate_args:
                raise ValueError("The value argument to log_prob must be a Tensor")
            value = tensor(value)
        if self._validate_args:
            actual, expected = value.shape, Size(tuple(self._batch_shape) + tuple(self._event_shape))
            try:
                np.broadcast_shapes(tuple(actual), tuple(expected))
            except ValueError:
                raise ValueError(
                    f"Value is not broadcastable with batch_shape+event_shape: {actual} vs {expected}."
                ) from None
        return value

    def __repr__(self) -> str:
        names = [name for name in self.arg_constraints if name in self.__dict__]
        shown = [
            f"{n}: {self.__dict__[n] if self.__dict__[n].numel() == 1 else self.__dict__[n].size()}" for n in names
        ]
        return f"{type(self).__name__}({', '.join(shown)})"


class Normal(Distribution):
    """Normal (Gaussian) distributions of mean ``loc`` and standard deviation ``scale`` (tensors
    or numbers, broadcast together: the batch shape). ``rsample`` is ``loc + scale * eps``,
    differentiable in both. Follows ``torch.distributions.Normal``; raises ``ValueError`` for a
    ``scale`` that is not positive."""

    has_rsample = True
    arg_constraints = {"loc": "Real()", "scale": "GreaterThan(lower_bound=0.0)"}

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = _as_parameters(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)
        self._check("loc", self.loc, ~np.isnan(self.loc._data), "Real()")
        self._check("scale", self.scale, self.scale._data > 0, "GreaterThan(lower_bound=0.0)")

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

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
        self._check_support(value, ~np.isnan(value._data), "Real()")
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

    def __getattr__(self, name):  # the parameter not given, computed once when first read
        if name == "probs":
            value = self.__dict__["probs"] = self.logits.softmax(-1)
            return value
        if name == "logits":
            eps = float(np.finfo(self.probs._data.dtype).eps)
            value = self.__dict__["logits"] = clamp(self.probs, min=eps, max=1 - eps).log()
            return value
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

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
