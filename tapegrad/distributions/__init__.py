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

from .categorical import Categorical
from .distribution import Distribution
from .kl import kl_divergence, register_kl
from .normal import Normal
from .uniform import Uniform

__all__ = ["Categorical", "Distribution", "Normal", "Uniform", "kl_divergence", "register_kl"]
