"""``torch.linalg``: norms of vectors and matrices (built from tapegrad's ``norm``), ``vecdot``,
``cross``, and ``solve``/``inv`` (``autograd.Function``s over numpy.linalg: first-order gradients;
``create_graph`` does not pass through an ``autograd.Function`` yet)."""

from __future__ import annotations

import numpy as np

from . import _composites
from ._record import broadcast_shape
from .autograd.function import Function
from .tensor import Tensor, _normalize_dim, _wrap, as_tensor, install


class LinAlgError(RuntimeError):
    """A linear-algebra routine failed on its input (a singular matrix); follows
    ``torch.linalg.LinAlgError``."""


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


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1, out=None) -> Tensor:
    """The dot product of ``x`` and ``y`` (broadcast) along ``dim``; follows
    ``torch.linalg.vecdot``."""
    x, y = as_tensor(x), as_tensor(y)
    shape = broadcast_shape(x.shape, y.shape)
    _normalize_dim(dim, max(len(shape), 1))
    return (x * y).sum(dim)


def cross(input: Tensor, other: Tensor, *, dim: int = -1, out=None) -> Tensor:  # noqa: A002
    """The cross product of 3-vectors along ``dim``; follows ``torch.linalg.cross``."""
    return _composites._cross(input, as_tensor(other), dim)


def _check_square(A: Tensor, name: str) -> None:  # noqa: N803
    if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        if A.dim() < 2:
            raise RuntimeError(f"{name}: The input tensor A must have at least 2 dimensions.")
        raise RuntimeError(
            f"{name}: A must be batches of square matrices, but they are {A.shape[-2]} by {A.shape[-1]} matrices"
        )
    if A._data.dtype.kind != "f":
        raise RuntimeError(f"{name}: Expected a floating point or complex tensor as input. Got {A.dtype.type_name}")


def _first_zero_pivot(matrix: np.ndarray) -> int:
    """LAPACK getrf's ``info``: the 1-based index of the first exactly zero pivot of the LU
    factorisation with partial pivoting (0: none)."""
    lu = matrix.astype(np.float64).copy()
    n = lu.shape[0]
    for k in range(n):
        pivot = k + int(np.argmax(np.abs(lu[k:, k])))
        lu[[k, pivot]] = lu[[pivot, k]]
        if lu[k, k] == 0:
            return k + 1
        lu[k + 1 :, k] /= lu[k, k]
        lu[k + 1 :, k + 1 :] -= np.outer(lu[k + 1 :, k], lu[k, k + 1 :])
    return 0


def _singular(A: np.ndarray, name: str) -> LinAlgError:  # noqa: N803
    matrices = A.reshape(-1, *A.shape[-2:])
    for index, matrix in enumerate(matrices):
        info = _first_zero_pivot(matrix)
        if info:
            batch = f"(Batch element {index}): " if A.ndim > 2 else ""
            if name == "linalg.inv":
                return LinAlgError(
                    f"{name}: {batch}The diagonal element {info} is zero, the inversion could not be completed "
                    "because the input matrix is singular."
                )
            break
    return LinAlgError(f"torch.{name}: The solver failed because the input matrix is singular.")


class _Solve(Function):
    @staticmethod
    def forward(ctx, A, B):  # noqa: N803
        try:
            X = np.linalg.solve(A._data, B._data)  # noqa: N806
        except np.linalg.LinAlgError:
            raise _singular(A._data, "linalg.solve") from None
        ctx.save_for_backward(A)
        result = X.astype(np.result_type(A._data, B._data))
        ctx.solution = result.copy()  # the backward's X, not solved again (the output may change in place)
        return _wrap(result)

    @staticmethod
    def backward(ctx, grad):
        (A,) = ctx.saved_tensors  # noqa: N806
        grad_B = _Solve.apply(A.mT, grad)  # noqa: N806
        grad_A = -(grad_B @ _wrap(ctx.solution).mT) if ctx.needs_input_grad[0] else None  # noqa: N806
        return grad_A, grad_B


def solve(A: Tensor, B: Tensor, *, left: bool = True, out=None) -> Tensor:  # noqa: N803
    """The ``X`` with ``A @ X = B`` (``left=False``: ``X @ A = B``), batched, ``B`` a vector or
    batch of vectors when it has one dimension fewer than ``A``; follows ``torch.linalg.solve``.
    Raises ``RuntimeError`` for non-square or mismatched shapes and ``LinAlgError`` for a singular
    ``A``. Differentiable in both."""
    A, B = as_tensor(A), as_tensor(B)  # noqa: N806
    _check_square(A, "linalg.solve")
    if not left:
        return solve(A.mT, B.mT).mT
    vector = B.dim() == 1 or (B.dim() == A.dim() - 1 and B.shape == A.shape[:-1])
    matrix_B = B.unsqueeze(-1) if vector else B  # noqa: N806
    if matrix_B.dim() < 2 or matrix_B.shape[-2] != A.shape[-1]:
        rows = matrix_B.shape[-2] if matrix_B.dim() >= 2 else matrix_B.shape[0]
        columns = matrix_B.shape[-1] if matrix_B.dim() >= 2 else 1
        raise RuntimeError(
            "linalg.solve: Incompatible shapes of A and B for the equation AX = B "
            f"({A.shape[-2]}x{A.shape[-1]} and {rows}x{columns})"
        )
    batch = tuple(broadcast_shape(tuple(A.shape[:-2]), tuple(matrix_B.shape[:-2])))
    if tuple(A.shape[:-2]) != batch:
        A = A.expand(*batch, *A.shape[-2:])  # noqa: N806
    if tuple(matrix_B.shape[:-2]) != batch:
        matrix_B = matrix_B.expand(*batch, *matrix_B.shape[-2:])  # noqa: N806
    X = _Solve.apply(A, matrix_B)  # noqa: N806
    return X.squeeze(-1) if vector else X


class _Inverse(Function):
    @staticmethod
    def forward(ctx, A):  # noqa: N803
        try:
            inverse = np.linalg.inv(A._data)
        except np.linalg.LinAlgError:
            raise _singular(A._data, "linalg.inv") from None
        inverse = inverse.astype(A._data.dtype)
        ctx.inverse = inverse.copy()  # for the backward, not inverted again (the output may change in place)
        return _wrap(inverse)

    @staticmethod
    def backward(ctx, grad):
        inverse_T = _wrap(ctx.inverse).mT  # noqa: N806
        return -(inverse_T @ grad @ inverse_T)


def inv(A: Tensor, *, out=None) -> Tensor:  # noqa: N803
    """The inverse of a square matrix (or of each in a batch); follows ``torch.linalg.inv``.
    Raises ``RuntimeError`` for non-square or integer input and ``LinAlgError`` for a singular
    one. Differentiable: the gradient is ``-A^-T g A^-T``."""
    A = as_tensor(A)  # noqa: N806
    _check_square(A, "linalg.inv")
    return _Inverse.apply(A)


def _inverse(self, *, out=None) -> Tensor:
    """``tapegrad.linalg.inv(self)``; follows ``torch.Tensor.inverse``."""
    return inv(self)


install({"inverse": _inverse})

__all__ = ["LinAlgError", "cross", "inv", "norm", "solve", "vecdot", "vector_norm"]
