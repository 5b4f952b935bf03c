"""``tapegrad.special``: PyTorch's ``torch.special``, the special functions of the op table and
the composites built from them, under PyTorch's names there (``gammaln`` for ``lgamma``,
``expit`` for ``sigmoid``, ``psi`` for ``digamma``...). Each differentiates as its
``tapegrad`` counterpart does and raises what it raises.

Not here yet: the Bessel and orthogonal-polynomial families, ``zeta``, ``gammainc``/``gammaincc``,
``i0``/``i0e``/``i1``/``i1e``, ``erfcx``, ``ndtri``, ``log_ndtr`` and ``entr``.
"""

from __future__ import annotations

import math

from ._more_composites import logit, mvlgamma, polygamma, sinc, xlog1py, xlogy
from ._reductions import log_softmax, logsumexp, softmax
from .tensor import Tensor

__all__ = [
    "digamma", "erf", "erfc", "erfinv", "exp2", "expit", "expm1", "gammaln", "log1p", "log_softmax", "logit",
    "logsumexp", "multigammaln", "ndtr", "polygamma", "psi", "round", "sinc", "softmax", "xlog1py", "xlogy",
]  # fmt: skip


def _method(name: str, torch_name: str):
    def function(input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        return getattr(input, name)()

    function.__name__ = function.__qualname__ = torch_name
    function.__doc__ = f"``input.{name}()``; follows ``torch.special.{torch_name}``."
    return function


digamma = _method("digamma", "digamma")
psi = _method("digamma", "psi")
gammaln = _method("lgamma", "gammaln")
erf = _method("erf", "erf")
erfc = _method("erfc", "erfc")
erfinv = _method("erfinv", "erfinv")
exp2 = _method("exp2", "exp2")
expit = _method("sigmoid", "expit")
expm1 = _method("expm1", "expm1")
log1p = _method("log1p", "log1p")


def round(input: Tensor, *, decimals: int = 0) -> Tensor:  # noqa: A001, A002 - PyTorch's names
    """``input.round(decimals=decimals)``; follows ``torch.special.round``."""
    return input.round(decimals=decimals)


def multigammaln(input: Tensor, p: int) -> Tensor:  # noqa: A002
    """The multivariate log-gamma function (``tapegrad.mvlgamma``); follows
    ``torch.special.multigammaln``."""
    return mvlgamma(input, p)


def ndtr(input: Tensor) -> Tensor:  # noqa: A002
    """The standard normal CDF, ``erfc(-x / sqrt(2)) / 2`` (no cancellation for negative x);
    follows ``torch.special.ndtr``."""
    x = input if input.is_floating_point() else input.float()
    return (x * -(1 / math.sqrt(2.0))).erfc() * 0.5


# (re-exported under torch.special's names)
logit, polygamma, sinc, xlog1py, xlogy = logit, polygamma, sinc, xlog1py, xlogy
log_softmax, logsumexp, softmax = log_softmax, logsumexp, softmax
