"""``torch.distributions.multivariate_normal``."""

from __future__ import annotations

import math

import numpy as np

from .._factories import eye, randn
from ..tensor import Tensor
from .distribution import _SCALAR, Distribution, _not_nan, lazy_property


def _batch_mahalanobis(scale_tril: Tensor, diff: Tensor) -> Tensor:
    """``|L^-1 diff|^2`` over the last dimension, ``L`` broadcast against ``diff``'s batch."""
    from ..linalg import solve_triangular

    shape = tuple(diff.shape[:-1]) + tuple(scale_tril.shape[-2:])
    solved = solve_triangular(scale_tril.expand(shape), diff.unsqueeze(-1), upper=False)
    return solved.squeeze(-1).pow(2).sum(-1)


class MultivariateNormal(Distribution):
    """Normal distributions over vectors of mean ``loc`` (event shape: its last dimension) with
    one of ``covariance_matrix``, ``precision_matrix`` or ``scale_tril`` (the lower Cholesky
    factor of the covariance); batch shape: the broadcast of the leading dimensions. ``rsample``
    is ``loc + scale_tril @ eps``, differentiable in the parameters. Follows
    ``torch.distributions.MultivariateNormal``; raises its ``ValueError`` for no parameter or
    several, and for a ``loc`` below one dimension or a matrix below two."""

    has_rsample = True
    arg_constraints = {
        "loc": "IndependentConstraint(Real(), 1)",
        "covariance_matrix": "PositiveDefinite()",
        "precision_matrix": "PositiveDefinite()",
        "scale_tril": "LowerCholesky()",
    }

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None, validate_args=None):
        from .. import linalg

        if loc.dim() < 1:
            raise ValueError("loc must be at least one-dimensional.")
        named = {"covariance_matrix": covariance_matrix, "precision_matrix": precision_matrix, "scale_tril": scale_tril}
        given = [(name, m) for name, m in named.items() if m is not None]
        if len(given) != 1:
            raise ValueError("Exactly one of covariance_matrix or precision_matrix or scale_tril may be specified.")
        name, matrix = given[0]
        if matrix.dim() < 2:
            what = "scale_tril matrix" if name == "scale_tril" else name
            raise ValueError(f"{what} must be at least two-dimensional, with optional leading batch dimensions")
        batch = tuple(_broadcast(matrix.shape[:-2], loc.shape[:-1]))
        n = loc.shape[-1]
        # The parameter given, as PyTorch keeps it (its repr names it; the others are computed)
        setattr(self, name, matrix.expand(batch + (n, n)))
        self.loc = loc.expand(batch + (-1,))
        super().__init__(batch, loc.shape[-1:], validate_args=validate_args)
        self._check("loc", self.loc, ~np.isnan(self.loc._data), "IndependentConstraint(Real(), 1)")
        values = matrix._data
        if name == "scale_tril":
            diagonal = np.diagonal(values, axis1=-2, axis2=-1)
            ok = (np.triu(values, 1) == 0).all() and (diagonal > 0).all() and np.isfinite(values).all()
            self._check(name, matrix, ok, "LowerCholesky()")
        else:
            symmetric = np.allclose(values, np.swapaxes(values, -1, -2), rtol=1e-6, atol=1e-8)
            with np.errstate(all="ignore"):
                ok = symmetric and np.isfinite(values).all() and (np.linalg.eigvalsh(values) > 0).all()
            self._check(name, matrix, ok, "PositiveDefinite()")
        if scale_tril is not None:
            self._unbroadcasted_scale_tril = scale_tril
        elif covariance_matrix is not None:
            self._unbroadcasted_scale_tril = linalg.cholesky(covariance_matrix)
        else:  # the Cholesky factor of the inverse, as PyTorch's _precision_to_scale_tril makes it
            # (its gradient, of second order too, is then PyTorch's along every direction, not
            # only symmetric ones as cholesky(inv(P))'s)
            flipped = linalg.cholesky(precision_matrix.flip((-2, -1)))
            inverse = flipped.flip((-2, -1)).mT
            identity = eye(n, dtype=precision_matrix.dtype).expand(inverse.shape)
            self._unbroadcasted_scale_tril = linalg.solve_triangular(inverse, identity, upper=False)

    @lazy_property
    def scale_tril(self) -> Tensor:
        return self._unbroadcasted_scale_tril.expand(self._batch_shape + self._event_shape + self._event_shape)

    @lazy_property
    def covariance_matrix(self) -> Tensor:
        factor = self._unbroadcasted_scale_tril
        return (factor @ factor.mT).expand(self._batch_shape + self._event_shape + self._event_shape)

    @lazy_property
    def precision_matrix(self) -> Tensor:
        # From the Cholesky factor, as PyTorch's: the inverse of a given covariance matrix
        # differentiated along non-symmetric directions too (a gradient of -0.548 and -0.025
        # where PyTorch's symmetric one has -0.287 twice)
        from .. import linalg

        factor = self._unbroadcasted_scale_tril
        return linalg.cholesky_inverse(factor).expand(self._batch_shape + self._event_shape + self._event_shape)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        return self._unbroadcasted_scale_tril.pow(2).sum(-1).expand(self._batch_shape + self._event_shape)

    def rsample(self, sample_shape=_SCALAR) -> Tensor:
        eps = randn(*self._extended_shape(sample_shape), dtype=self.loc.dtype)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def _half_log_det(self) -> Tensor:
        return self._unbroadcasted_scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)

    def log_prob(self, value) -> Tensor:
        value = self._checked_value(value)
        self._check_support(value, _not_nan, "IndependentConstraint(Real(), 1)")
        diff = value - self.loc
        mahalanobis = _batch_mahalanobis(self._unbroadcasted_scale_tril, diff)
        return -0.5 * (self._event_shape[0] * math.log(2 * math.pi) + mahalanobis) - self._half_log_det()

    def entropy(self) -> Tensor:
        entropy = 0.5 * self._event_shape[0] * (1.0 + math.log(2 * math.pi)) + self._half_log_det()
        return entropy.expand(self._batch_shape) if self._batch_shape else entropy


def _broadcast(*shapes) -> tuple:
    import numpy as np

    return np.broadcast_shapes(*(tuple(s) for s in shapes))
