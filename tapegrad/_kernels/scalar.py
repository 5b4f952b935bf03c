"""Scalar helpers that the generated elementwise kernels call where numpy's semantics need a
branch (``expressions.FUNCTIONS`` names them as ``scalar.<name>``). Inlined into the loops."""

from __future__ import annotations

import numpy as np

from .config import inline


@inline
def relu(v):
    """np.maximum(v, 0): NaN stays NaN, -0.0 becomes 0."""
    return v if v > 0 or v != v else type(v)(0)


@inline
def sign(v):
    """np.sign(v), with 0 for NaN as PyTorch's sign (and the sgn in abs's gradient) gives it."""
    return type(v)(0) if v != v else np.sign(v)


@inline
def gate(c, v):
    """v where c > 0 or c is NaN, else 0 (PyTorch's threshold_backward: a select, so an infinite
    or NaN gradient where c <= 0 gives 0, not NaN)."""
    return type(v)(0) if c <= 0 else v
