"""``torch.linalg``: norms of vectors and matrices (built from tapegrad's ``norm``)."""

from __future__ import annotations

from .tensor import Tensor


def vector_norm(x: Tensor, ord: float = 2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002
    """The ``ord``-norm of ``x`` flattened (``dim=None``) or along ``dim``; follows
    ``torch.linalg.vector_norm``."""
    if dim is None:
        x, dim = x.reshape(-1), 0
    return x.norm(ord, dim=dim, keepdim=keepdim)


def norm(A: Tensor, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002, N803
    """``vector_norm`` for ``ord`` None or a number on a vector or along one ``dim``, the
    Frobenius norm for matrices (``ord=None`` or ``"fro"``); follows ``torch.linalg.norm``.
    Raises ``NotImplementedError`` for the spectral and nuclear matrix norms."""
    if isinstance(ord, str) or (ord is None and (A.dim() == 2 or (dim is not None and not isinstance(dim, int)))):
        if ord not in (None, "fro"):
            raise NotImplementedError(f"linalg.norm: ord={ord!r} is not supported yet")
        return A.norm("fro", dim=dim, keepdim=keepdim)
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim)
