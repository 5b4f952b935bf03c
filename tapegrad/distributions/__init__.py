"""Probability distributions with differentiable parameters, as ``torch.distributions``:
``Normal``, ``Uniform``, ``Categorical``, ``Bernoulli``, ``Laplace``, ``OneHotCategorical``,
``MultivariateNormal``, ``Independent``, ``TransformedDistribution`` (``LogNormal``, the elementwise
``transforms``) and ``kl_divergence`` between two of a kind.

Everything is built from recorded tensor ops, so ``log_prob``, ``entropy``, ``rsample`` and
``kl_divergence`` differentiate with respect to the parameters (the reparameterised sample of a
VAE, the log-probability of a policy gradient). Samples come from tapegrad's random state
(``tapegrad.manual_seed``): the same seed gives the same numbers every run, not PyTorch's.
Parameters are checked as PyTorch's default ``validate_args`` checks them, with its
``ValueError`` messages; ``validate_args=False`` skips the checks.
"""

from __future__ import annotations

from . import transforms
from .bernoulli import Bernoulli
from .categorical import Categorical
from .distribution import Distribution
from .independent import Independent
from .kl import kl_divergence, register_kl
from .laplace import Laplace
from .multivariate_normal import MultivariateNormal
from .normal import Normal
from .one_hot_categorical import OneHotCategorical
from .transformed_distribution import LogNormal, TransformedDistribution
from .transforms import AffineTransform, ExpTransform, SigmoidTransform, TanhTransform, Transform
from .uniform import Uniform

__all__ = [
    "AffineTransform", "Bernoulli", "Categorical", "Distribution", "ExpTransform", "Independent", "Laplace",
    "LogNormal", "MultivariateNormal", "Normal", "OneHotCategorical", "SigmoidTransform", "TanhTransform",
    "Transform", "TransformedDistribution", "Uniform", "kl_divergence", "register_kl", "transforms",
]  # fmt: skip
