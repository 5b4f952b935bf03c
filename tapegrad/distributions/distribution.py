"""``torch.distributions.distribution``: the base of the distributions, and what they share."""

from __future__ import annotations

import numpy as np

from .. import _dtypes
from .._factories import tensor
from .._grad_mode import no_grad
from .._record import broadcast_error
from .._selection import clamp
from ..tensor import Size, Tensor, holds


def _as_parameters(*values) -> list:
    """``torch.distributions.utils.broadcast_all``: numbers become tensors of the default dtype
    (or of the tensors' dtype), and all are expanded to one broadcast shape."""
    dtype = next((v.dtype for v in values if isinstance(v, Tensor)), _dtypes.DEFAULT_FLOAT)
    tensors = [v if isinstance(v, Tensor) else tensor(v, dtype=dtype) for v in values]
    shape = ()
    for t in tensors:  # (numpy's ValueError named numpy's shapes: PyTorch's RuntimeError, pairwise)
        try:
            shape = np.broadcast_shapes(shape, t._data.shape)
        except ValueError:
            raise broadcast_error(shape, t._data.shape) from None
    return [t if t._data.shape == shape else t.expand(shape) for t in tensors]


class lazy_property:  # noqa: N801 - PyTorch's name
    """An attribute computed on its first read and kept (``torch.distributions.utils
    .lazy_property``): a parameter given to ``__init__`` is set as the attribute itself, and the
    others (``logits`` of ``probs``, a covariance of its Cholesky factor) come from it."""

    def __init__(self, compute):
        self.compute = compute
        self.__doc__ = compute.__doc__

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.compute.__name__] = self.compute(instance)
        return value


def probs_to_logits(probs: Tensor, is_binary: bool = False) -> Tensor:
    """Log-probabilities of ``probs`` kept off 0 and 1 by the dtype's eps (log-odds when
    ``is_binary``); follows ``torch.distributions.utils.probs_to_logits``."""
    eps = float(np.finfo(probs._data.dtype).eps)
    clamped = clamp(probs, min=eps, max=1 - eps)
    return clamped.log() - (-clamped).log1p() if is_binary else clamped.log()


def logits_to_probs(logits: Tensor, is_binary: bool = False) -> Tensor:
    """``sigmoid(logits)`` when ``is_binary``, else ``softmax`` over the last dimension; follows
    ``torch.distributions.utils.logits_to_probs``."""
    return logits.sigmoid() if is_binary else logits.softmax(-1)


_SCALAR = Size()  # (one draw: PyTorch's default sample_shape, torch.Size())


def _shape(sample_shape) -> Size:
    return Size(sample_shape if isinstance(sample_shape, (tuple, list)) else (sample_shape,))


def _not_nan(values):
    """Real(): every value but NaN (for arrays and tensors alike)."""
    return values == values


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
        """``ValueError`` unless ``ok``: where ``value`` is inside the support, or a test of values
        (``tensor.holds``'s: guarded in a recording, whose replays then check it too)."""
        if not self._validate_args:
            return
        inside = holds(f"the {support} support check", value, ok) if callable(ok) else bool(np.all(ok))
        if not inside:
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
            event = tuple(self._event_shape)
            if event and tuple(value.shape)[len(value.shape) - len(event) :] != event:
                raise ValueError(
                    f"The right-most size of value must match event_shape: {value.shape} vs {self._event_shape}."
                )
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


class LocationScale(Distribution):
    """What Normal and Laplace share: a location ``loc`` (their mean and mode) and a positive
    ``scale``, numbers or tensors broadcast together (the batch shape), checked as PyTorch's
    ``ValueError`` checks them."""

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
