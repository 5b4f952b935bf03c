"""``torch.distributions.transforms``: invertible maps with the log of their Jacobians, for
``TransformedDistribution``. Elementwise ones (event dimension 0)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._factories import full_like
from .._selection import clamp
from ..tensor import Tensor


class Transform:
    """An invertible map ``y = t(x)``: ``t(x)``, ``t.inv(y)``, and
    ``t.log_abs_det_jacobian(x, y)``, elementwise here; follows
    ``torch.distributions.transforms.Transform``."""

    bijective = True
    sign = 1
    event_dim = 0
    # Where y lies, PyTorch's constraint name and a test of y's values (the support a
    # TransformedDistribution checks a value against)
    codomain = ("Real()", staticmethod(lambda y: ~np.isnan(y)))

    def __init__(self, cache_size: int = 0):
        """``cache_size`` 1 keeps the last ``(x, y)``: ``t(x)`` of that same ``x`` object, or
        ``t.inv(y)`` of that ``y`` (a sample's ``log_prob``), returns the other without computing
        (PyTorch's: ``tanh``'s inverse of a value rounded to 1 would be inf). Raises
        ``ValueError`` for another size."""
        if cache_size not in (0, 1):
            raise ValueError("cache_size must be 0 or 1")
        self._cache_size = cache_size
        self._cached_x_y = (None, None)

    def forward_shape(self, shape) -> tuple:
        """The shape of ``t(x)`` for ``x`` of ``shape``."""
        return tuple(shape)

    def __call__(self, x: Tensor) -> Tensor:
        return self._through_cache(x, 0, self._call)

    def _inv_call(self, y: Tensor) -> Tensor:
        return self._through_cache(y, 1, self._inverse)

    def _through_cache(self, value: Tensor, side: int, compute) -> Tensor:
        """``compute(value)``, where ``value`` is x (``side`` 0) or y (1) of the pair kept."""
        if not self._cache_size:
            return compute(value)
        cached = self._cached_x_y
        if value is cached[side]:
            return cached[1 - side]
        result = compute(value)
        self._cached_x_y = (value, result) if side == 0 else (result, value)
        return result

    @property
    def inv(self) -> Transform:
        return _Inverse(self)

    def _call(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _inverse(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _Inverse(Transform):
    def __init__(self, transform: Transform):
        super().__init__(cache_size=transform._cache_size)
        self._inv = transform

    def __call__(self, x: Tensor) -> Tensor:
        return self._inv._inv_call(x)  # (the forward's cache, both ways)

    @property
    def inv(self) -> Transform:
        return self._inv

    @property
    def codomain(self):
        return ("Real()", lambda y: ~np.isnan(y))  # (the inverse's: the forward's domain)

    def __repr__(self) -> str:
        return f"_InverseTransform({self._inv!r})"

    def _call(self, x: Tensor) -> Tensor:
        return self._inv._inverse(x)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return -self._inv.log_abs_det_jacobian(y, x)


class ExpTransform(Transform):
    """``y = exp(x)``; follows ``torch.distributions.transforms.ExpTransform``."""

    codomain = ("GreaterThan(lower_bound=0.0)", staticmethod(lambda y: y > 0))

    def _call(self, x: Tensor) -> Tensor:
        return x.exp()

    def _inverse(self, y: Tensor) -> Tensor:
        return y.log()

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return x


def _clipped_sigmoid(x: Tensor) -> Tensor:
    info = np.finfo(x._data.dtype)
    return clamp(x.sigmoid(), min=float(info.tiny), max=1.0 - float(info.eps))


class SigmoidTransform(Transform):
    """``y = sigmoid(x)``, kept inside (0, 1); follows
    ``torch.distributions.transforms.SigmoidTransform``."""

    codomain = ("Interval(lower_bound=0.0, upper_bound=1.0)", staticmethod(lambda y: (y >= 0) & (y <= 1)))

    def _call(self, x: Tensor) -> Tensor:
        return _clipped_sigmoid(x)

    def _inverse(self, y: Tensor) -> Tensor:
        info = np.finfo(y._data.dtype)
        y = clamp(y, min=float(info.tiny), max=1.0 - float(info.eps))
        return y.log() - (-y).log1p()

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        from ..nn.functional import softplus

        return -softplus(-x) - softplus(x)


class TanhTransform(Transform):
    """``y = tanh(x)``; follows ``torch.distributions.transforms.TanhTransform``."""

    sign = 1
    codomain = ("Interval(lower_bound=-1.0, upper_bound=1.0)", staticmethod(lambda y: (y >= -1) & (y <= 1)))

    def _call(self, x: Tensor) -> Tensor:
        return x.tanh()

    def _inverse(self, y: Tensor) -> Tensor:
        return y.atanh()

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        from ..nn.functional import softplus

        return 2.0 * (math.log(2.0) - x - softplus(-2.0 * x))


class AffineTransform(Transform):
    """``y = loc + scale * x``; follows ``torch.distributions.transforms.AffineTransform``
    (elementwise: ``event_dim`` 0)."""

    def __init__(self, loc, scale, event_dim: int = 0, cache_size: int = 0):
        super().__init__(cache_size=cache_size)
        if event_dim != 0:
            raise NotImplementedError("tapegrad's AffineTransform is elementwise (event_dim=0)")
        self.loc, self.scale = loc, scale

    @property
    def sign(self):
        return (1 if self.scale > 0 else -1) if isinstance(self.scale, numbers.Number) else self.scale.sign()

    def forward_shape(self, shape) -> tuple:
        sizes = [tuple(shape)] + [tuple(p.shape) for p in (self.loc, self.scale) if isinstance(p, Tensor)]
        return tuple(np.broadcast_shapes(*sizes))

    def _call(self, x: Tensor) -> Tensor:
        return self.loc + self.scale * x

    def _inverse(self, y: Tensor) -> Tensor:
        return (y - self.loc) / self.scale

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        if isinstance(self.scale, numbers.Number):
            return full_like(x, math.log(abs(self.scale)))
        return self.scale.abs().log().expand(x.shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
