"""The matrix functions of ``torch.linalg`` that numpy and scipy compute: ``autograd.Function``s
whose forward calls LAPACK (through numpy.linalg and scipy.linalg) and whose backward is made of
tapegrad ops on the saved inputs and outputs, so that a ``create_graph`` backward differentiates
it again (``autograd/higher_order.py`` runs such a backward recorded). Each Function saves what
its PyTorch node saves (the output itself where PyTorch's does: a change in place then fails the
backward), and its backward is PyTorch's formula (``FunctionsManual.cpp``), checked against
central differences and PyTorch in ``tests/test_decompositions.py``.

The public functions, with their checks and PyTorch's signatures, are in ``linalg.py``.
Functions cannot be recorded by ``tapegrad.record`` (their forward is not a kernel).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._grad_mode import is_grad_enabled
from ._views import cat, stack
from .autograd.function import Function
from .tensor import Tensor, _wrap, guard_reads


class LinAlgError(RuntimeError):
    """A linear-algebra routine failed on its input (a singular matrix); follows
    ``torch.linalg.LinAlgError``."""


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


class Solve(Function):
    _node_name = "LinalgSolveExBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A, B):  # noqa: N803
        try:
            X = np.linalg.solve(A._data, B._data)  # noqa: N806
        except np.linalg.LinAlgError:
            raise _singular(A._data, "linalg.solve") from None
        # The solution is saved as the output it is (as PyTorch's node saves it): a change in
        # place then fails the backward, and under create_graph it stands at its row, so the
        # second derivative flows through it.
        result = _wrap(X.astype(np.result_type(A._data, B._data)))
        ctx.save_for_backward(A, result)
        return result

    @staticmethod
    def backward(ctx, grad):
        A, X = ctx.saved_tensors  # noqa: N806
        grad_B = Solve.apply(A.mT, grad)  # noqa: N806
        grad_A = -(grad_B @ X.mT) if ctx.needs_input_grad[0] else None  # noqa: N806
        return grad_A, grad_B


class Inverse(Function):
    _node_name = "LinalgInvExBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A):  # noqa: N803
        try:
            inverse = np.linalg.inv(A._data)
        except np.linalg.LinAlgError:
            raise _singular(A._data, "linalg.inv") from None
        inverse = _wrap(inverse.astype(A._data.dtype))
        ctx.save_for_backward(inverse)  # the output itself, as in Solve
        return inverse

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        inverse_T = inverse.mT  # noqa: N806
        return -(inverse_T @ grad @ inverse_T)


def _identity(n: int, like: Tensor) -> Tensor:
    return _wrap(np.eye(n, dtype=like._data.dtype))


def _diag_embed(values: Tensor) -> Tensor:
    """Square matrices with ``values`` (..., n) on their diagonals, as ``torch.diag_embed``."""
    return values.unsqueeze(-1) * _identity(values.shape[-1], values)


def _off_diagonal_quotient(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` off the diagonal, 0 on it (where the denominator is 0)."""
    n = denominator.shape[-1]
    eye = _identity(n, denominator)
    return numerator / (denominator + eye) * (1.0 - eye)


def _scipy_linalg():
    """scipy.linalg, imported on first use: importing it costs ``import tapegrad`` about 0.1 s."""
    import scipy.linalg

    return scipy.linalg


def _each_matrix(function, *arrays):
    """``function`` of each matrix of a batch (scipy's routines take one at a time); a function
    returning a tuple of arrays gives a tuple of batches."""
    batch = arrays[0].shape[:-2]
    if not batch:
        return function(*arrays)
    if 0 in batch:  # an empty batch: the shape one matrix's result has, with none of them
        single = function(*[np.eye(*array.shape[-2:], dtype=array.dtype) for array in arrays])
        if isinstance(single, tuple):
            return tuple(np.zeros((*batch, *part.shape), part.dtype) for part in single)
        return np.zeros((*batch, *single.shape), single.dtype)
    count = int(np.prod(batch))  # (not -1: a batch of empty matrices has no size to divide)
    flat = [array.reshape(count, *array.shape[-2:]) for array in arrays]
    results = [function(*matrices) for matrices in zip(*flat)]
    if isinstance(results[0], tuple):
        return tuple(np.stack(parts).reshape(*batch, *parts[0].shape) for parts in zip(*results))
    return np.stack(results).reshape(*batch, *results[0].shape)


# -- Cholesky and triangular systems -------------------------------------------------------


def _not_positive_definite(A: np.ndarray) -> LinAlgError:  # noqa: N803
    """PyTorch's message: the batch element and the order of the first leading minor that is
    not positive-definite (found again, minor by minor: only on this error's path)."""
    matrices = A.reshape(-1, *A.shape[-2:])
    for index, matrix in enumerate(matrices):
        for order in range(1, matrix.shape[-1] + 1):
            try:
                if not np.isfinite(np.linalg.cholesky(matrix[:order, :order])).all():
                    raise np.linalg.LinAlgError
            except np.linalg.LinAlgError:
                batch = f"(Batch element {index}): " if A.ndim > 2 else ""
                return LinAlgError(
                    f"linalg.cholesky: {batch}The factorization could not be completed because the input is not "
                    f"positive-definite (the leading minor of order {order} is not positive-definite)."
                )
    return LinAlgError("linalg.cholesky: The factorization could not be completed.")


class Cholesky(Function):
    """``L`` lower triangular with ``A = L L^T`` (read from ``A``'s lower triangle)."""

    _node_name = "LinalgCholeskyExBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A):  # noqa: N803
        try:
            L = np.linalg.cholesky(A._data)  # noqa: N806
        except np.linalg.LinAlgError:
            raise _not_positive_definite(A._data) from None
        if not np.isfinite(L).all():  # LAPACK lets NaN through; PyTorch finds no positive minor
            raise _not_positive_definite(A._data)
        L = _wrap(L.astype(A._data.dtype, copy=False))  # noqa: N806
        ctx.save_for_backward(L)
        return L

    @staticmethod
    def backward(ctx, grad):
        # Murray (2016), as PyTorch's cholesky_backward: phi = tril(L^T gL) with its diagonal
        # halved, gA = L^-T phi L^-1, symmetrized.
        (L,) = ctx.saved_tensors  # noqa: N806
        n = L.shape[-1]
        halved = _wrap((np.tril(np.ones((n, n))) - 0.5 * np.eye(n)).astype(L._data.dtype))
        phi = (L.mT @ grad) * halved
        right = SolveTriangular.apply(L, phi, False, False, False)  # phi L^-1
        grad_A = SolveTriangular.apply(L.mT, right, True, True, False)  # noqa: N806 - L^-T (phi L^-1)
        return 0.5 * (grad_A + grad_A.mT)


class SolveTriangular(Function):
    """``X`` with ``A X = B`` (``left``) or ``X A = B``, ``A`` triangular (``upper``; with
    ``unitriangular`` its diagonal read as ones); ``A`` and ``B`` of one batch shape."""

    _node_name = "LinalgSolveTriangularBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A, B, upper, left, unitriangular):  # noqa: N803
        def solve(a, b):
            try:
                return solve_checked(a, b)
            except (
                np.linalg.LinAlgError
            ):  # a zero on the diagonal: BLAS's trsm, which divides by it (inf, NaN), as PyTorch's
                (trsm,) = _scipy_linalg().get_blas_funcs(("trsm",), (a, b))
                with np.errstate(all="ignore"):
                    return trsm(
                        1.0, a, b, side=0 if left else 1, lower=0 if upper else 1, diag=1 if unitriangular else 0
                    )

        def solve_checked(a, b):
            if left:
                return _scipy_linalg().solve_triangular(
                    a, b, lower=not upper, unit_diagonal=unitriangular, check_finite=False
                )
            return (
                _scipy_linalg()
                .solve_triangular(a, b.T, trans="T", lower=not upper, unit_diagonal=unitriangular, check_finite=False)
                .T
            )

        dtype = np.result_type(A._data, B._data)
        X = _wrap(_each_matrix(solve, A._data, B._data).astype(dtype, copy=False))  # noqa: N806
        ctx.flags = (upper, left, unitriangular)
        ctx.save_for_backward(A, X)
        return X

    @staticmethod
    def backward(ctx, grad):
        A, X = ctx.saved_tensors  # noqa: N806
        upper, left, unitriangular = ctx.flags
        grad_B = SolveTriangular.apply(A.mT, grad, not upper, left, unitriangular)  # noqa: N806
        grad_A = None  # noqa: N806
        if ctx.needs_input_grad[0]:
            grad_A = -(grad_B @ X.mT) if left else -(X.mT @ grad_B)  # noqa: N806
            diagonal = 1 if unitriangular else 0
            grad_A = grad_A.triu(diagonal) if upper else grad_A.tril(-diagonal)  # noqa: N806
        return grad_A, grad_B, None, None, None


# -- determinants ----------------------------------------------------------------------------


def _adjugate_transposed(A: np.ndarray) -> np.ndarray:  # noqa: N803
    """The cofactor matrix of each matrix (the derivative of its determinant), from its SVD:
    defined for singular matrices, where ``det * A^-T`` is not (PyTorch's ``d_singular``)."""
    U, S, Vh = np.linalg.svd(A)  # noqa: N806
    n = S.shape[-1]
    others = np.stack([np.prod(np.delete(S, i, axis=-1), axis=-1) for i in range(n)], axis=-1)
    sign = np.linalg.det(U) * np.linalg.det(Vh)
    return (U * others[..., None, :]) @ Vh * sign[..., None, None]


def _cofactors(A: Tensor) -> Tensor:  # noqa: N803
    """``_adjugate_transposed`` of recorded ops (``Svd``'s outputs), for a second derivative at
    a singular matrix: ``U diag(prod of the other singular values) Vh`` times ``det(U) det(Vh)``."""
    U, S, Vh = Svd.apply(A, False)  # noqa: N806
    n = S.shape[-1]
    others = stack([S[..., [j for j in range(n) if j != i]].prod(-1) for i in range(n)], -1)
    sign = np.linalg.det(U._data) * np.linalg.det(Vh._data)
    return (U * others.unsqueeze(-2)) @ Vh * _wrap(np.asarray(sign, A._data.dtype)[..., None, None])


class Det(Function):
    """``det(A)``; its gradient ``g det(A) A^-T`` (the cofactors, from the SVD, where ``A`` is
    singular: first derivatives there only)."""

    _node_name = "LinalgDetBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A):  # noqa: N803
        det = _wrap(np.asarray(np.linalg.det(A._data), A._data.dtype))
        ctx.save_for_backward(A, det)
        return det

    @staticmethod
    def backward(ctx, grad):
        A, det = ctx.saved_tensors  # noqa: N806
        if np.any(det._data == 0):
            if is_grad_enabled():  # create_graph: the cofactors from a differentiable SVD
                return grad.unsqueeze(-1).unsqueeze(-1) * _cofactors(A)
            cofactors = _adjugate_transposed(A._data.astype(np.float64)).astype(A._data.dtype)
            return grad.unsqueeze(-1).unsqueeze(-1) * _wrap(cofactors)
        return (grad * det).unsqueeze(-1).unsqueeze(-1) * Inverse.apply(A).mT


class Slogdet(Function):
    """``(sign, log|det A|)``; the sign has no gradient, the logarithm ``g A^-T``."""

    _node_name = "LinalgSlogdetBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A):  # noqa: N803
        sign, logabsdet = np.linalg.slogdet(A._data)
        sign = _wrap(np.asarray(sign, A._data.dtype))
        ctx.mark_non_differentiable(sign)
        ctx.save_for_backward(A)
        return sign, _wrap(np.asarray(logabsdet, A._data.dtype))

    @staticmethod
    def backward(ctx, grad_sign, grad_logabsdet):
        (A,) = ctx.saved_tensors  # noqa: N806
        return grad_logabsdet.unsqueeze(-1).unsqueeze(-1) * Inverse.apply(A).mT


# -- eigenvalues and singular values ---------------------------------------------------------


class Eigh(Function):
    """Eigenvalues (ascending) and orthonormal eigenvectors of symmetric matrices, read from
    the ``UPLO`` triangle."""

    _node_name = "LinalgEighBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A, UPLO):  # noqa: N803
        values, vectors = np.linalg.eigh(A._data, UPLO=UPLO)
        values, vectors = _wrap(values.astype(A._data.dtype)), _wrap(vectors.astype(A._data.dtype))
        ctx.save_for_backward(values, vectors)
        # An unused output's gradient stays None: zeros for the eigenvectors' divided by the 0
        # gaps of repeated eigenvalues made the eigenvalues' own gradient NaN (eye(3))
        ctx.set_materialize_grads(False)
        return values, vectors

    @staticmethod
    def backward(ctx, grad_values, grad_vectors):
        # PyTorch's linalg_eig_backward for Hermitian input: V (diag(gL) + skew(V^T gV) / E) V^T,
        # E_ij = L_j - L_i off the diagonal, skew(M) = (M - M^T) / 2: V^T gV projected onto the
        # tangent space of the orthogonal matrices (the eigenvectors' norm is fixed).
        values, V = ctx.saved_tensors  # noqa: N806
        inner = _diag_embed(grad_values) if grad_values is not None else 0.0 * V
        if grad_vectors is not None:
            gaps = values.unsqueeze(-2) - values.unsqueeze(-1)
            projected = V.mT @ grad_vectors
            inner = inner + _off_diagonal_quotient(0.5 * (projected - projected.mT), gaps)
        return V @ inner @ V.mT, None


class Svd(Function):
    """``U, S, Vh`` with ``A = U diag(S) Vh`` (reduced unless ``full_matrices``)."""

    _node_name = "LinalgSvdBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A, full_matrices):  # noqa: N803
        U, S, Vh = np.linalg.svd(A._data, full_matrices=full_matrices)  # noqa: N806
        dtype = A._data.dtype
        U, S, Vh = _wrap(U.astype(dtype)), _wrap(S.astype(dtype)), _wrap(Vh.astype(dtype))  # noqa: N806
        ctx.save_for_backward(U, S, Vh)
        ctx.set_materialize_grads(False)  # (unused singular vectors: None, as Eigh's)
        return U, S, Vh

    @staticmethod
    def backward(ctx, grad_U, grad_S, grad_Vh):  # noqa: N803
        # PyTorch's svd_backward (real case): with k = min(m, n), E_ij = S_j^2 - S_i^2,
        # gA = U [ skew(U^T gU)/E S + S skew(V^T gV)/E + diag(gS) ] Vh
        #      + (I - U U^T) gU S^-1 Vh + U S^-1 gV^T (I - V Vh)
        # (full_matrices: only the first k columns of U and rows of Vh are defined by A).
        U, S, Vh = ctx.saved_tensors  # noqa: N806
        m, n = U.shape[-2], Vh.shape[-1]
        k = S.shape[-1]
        U, Vh = U[..., :k], Vh[..., :k, :]  # noqa: N806
        grad_U = None if grad_U is None else grad_U[..., :k]  # noqa: N806
        grad_Vh = None if grad_Vh is None else grad_Vh[..., :k, :]  # noqa: N806
        inner = _diag_embed(grad_S) if grad_S is not None else None
        if grad_U is None and grad_Vh is None:
            return (U * grad_S.unsqueeze(-2)) @ Vh if grad_S is not None else None, None
        squares = S * S
        gaps = squares.unsqueeze(-2) - squares.unsqueeze(-1)
        V = Vh.mT  # noqa: N806
        total = inner
        extra = None
        if grad_U is not None:
            UtgU = U.mT @ grad_U  # noqa: N806
            term = _off_diagonal_quotient(UtgU - UtgU.mT, gaps) * S.unsqueeze(-2)
            total = term if total is None else total + term
            if m > k:
                extra = (grad_U - U @ UtgU) / S.unsqueeze(-2) @ Vh
        if grad_Vh is not None:
            grad_V = grad_Vh.mT  # noqa: N806
            VtgV = V.mT @ grad_V  # noqa: N806
            term = S.unsqueeze(-1) * _off_diagonal_quotient(VtgV - VtgV.mT, gaps)
            total = term if total is None else total + term
            if n > k:
                side = U @ ((grad_V - V @ VtgV) / S.unsqueeze(-2)).mT
                extra = side if extra is None else extra + side
        grad_A = U @ total @ Vh  # noqa: N806
        return (grad_A if extra is None else grad_A + extra), None


class Qr(Function):
    """``Q, R`` with ``A = Q R``: orthonormal columns and an upper triangle, LAPACK's signs (as
    PyTorch's); ``mode`` "reduced", "complete" or "r" (Q then empty)."""

    _node_name = "LinalgQrBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A, mode):  # noqa: N803
        data = A._data
        if mode == "r":
            Q, R = np.zeros(0, data.dtype), np.linalg.qr(data, mode="r")  # noqa: N806
        else:
            Q, R = np.linalg.qr(data, mode=mode)  # noqa: N806
        Q, R = _wrap(Q.astype(data.dtype, copy=False)), _wrap(R.astype(data.dtype, copy=False))  # noqa: N806
        ctx.mode, ctx.rows = mode, data.shape[-2]
        ctx.save_for_backward(Q, R)
        ctx.set_materialize_grads(False)  # (an unused output's gradient: None)
        return Q, R

    @staticmethod
    def backward(ctx, grad_Q, grad_R):  # noqa: N803
        # PyTorch's linalg_qr_backward. Tall or square (m >= n), with M = R gR^T - gQ^T Q:
        # gA = (gQ + Q copyltu(M)) R^-T, copyltu(M) the symmetric matrix of M's lower triangle.
        # Wide (m < n): A = [X | Y], R = [U | V] with X = Q U, Y = Q V: gY = Q gV, and X's
        # gradient is the square case's with gQ + Y gV^T for gQ.
        if ctx.mode == "r":
            raise RuntimeError(
                "The derivative of linalg.qr depends on Q, which is not computed when mode='r'. Please use "
                "linalg.qr(A, mode='reduced') if you are going to differentiate through linalg.qr."
            )
        Q, R = ctx.saved_tensors  # noqa: N806
        m, n = ctx.rows, R.shape[-1]
        if ctx.mode == "complete" and m > n:
            raise RuntimeError("The QR decomposition is not differentiable when mode='complete' and nrows > ncols.")
        if m >= n:
            return _qr_square_backward(Q, R, grad_Q, grad_R), None
        U, V = R[..., :m], R[..., m:]  # noqa: N806
        grad_U, grad_V = (None, None) if grad_R is None else (grad_R[..., :m], grad_R[..., m:])  # noqa: N806
        if grad_V is not None:
            through_Y = (Q @ V) @ grad_V.mT  # noqa: N806
            grad_Q = through_Y if grad_Q is None else grad_Q + through_Y  # noqa: N806
        grad_X = _qr_square_backward(Q, U, grad_Q, grad_U)  # noqa: N806
        grad_Y = Q @ grad_V if grad_V is not None else 0.0 * (Q @ V)  # noqa: N806
        return cat([grad_X, grad_Y], -1), None


def _qr_square_backward(Q: Tensor, R: Tensor, grad_Q, grad_R) -> Tensor:  # noqa: N803
    M = 0.0 * (R @ R.mT) if grad_R is None else R @ grad_R.mT  # noqa: N806
    if grad_Q is not None:
        M = M - grad_Q.mT @ Q  # noqa: N806
    below = M.tril(-1)
    symmetric = below + below.mT + M * _identity(M.shape[-1], M)
    total = Q @ symmetric if grad_Q is None else grad_Q + Q @ symmetric
    return SolveTriangular.apply(R.mT, total, False, False, False)


class LuFactor(Function):
    """``LU, pivots`` of ``A = P L U`` with partial pivoting (LAPACK's getrf): ``L`` unit lower
    (below ``LU``'s diagonal), ``U`` upper (on and above it), ``pivots`` 1-based row swaps
    (int32, not differentiable); matrices of any shape, ``k = min(m, n)``."""

    _node_name = "LinalgLuFactorExBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A):  # noqa: N803
        data = A._data

        def factor(matrix):
            if not matrix.size:
                return np.zeros(matrix.shape, matrix.dtype), np.zeros(0, np.int32)
            with warnings.catch_warnings():  # (a singular matrix: its info says so, as LAPACK's)
                warnings.simplefilter("ignore")
                lu, swaps = _scipy_linalg().lu_factor(matrix, check_finite=False)
            return lu, swaps.astype(np.int32) + 1

        lu, pivots = _each_matrix(factor, data)
        lu = lu.astype(data.dtype, copy=False)
        LU, pivots = _wrap(lu), _wrap(pivots)  # noqa: N806
        ctx.mark_non_differentiable(pivots)
        ctx.save_for_backward(LU, pivots)
        return LU, pivots

    @staticmethod
    def backward(ctx, grad_LU, grad_pivots):  # noqa: N803
        # PyTorch's linalg_lu_backward, from the packed factor's gradient: gL its strict lower
        # part, gU its upper. Square: gA = P L^-T [tril(L^T gL, -1) + triu(gU U^T)] U^-T. Tall
        # (m > n, L = [L1; L2]): L2 = A2 U^-1 gives A2 the gradient gL2 U^-T and U another
        # -L2^T gL2 U^-T. Wide (m < n, U = [U1 U2]): U2 = L^-1 A2 gives gA2 = L^-T gU2 and L
        # another -L^-T gU2 U2^T.
        LU, pivots = ctx.saved_tensors  # noqa: N806
        P, L, U = lu_unpack(LU, pivots)  # noqa: N806
        m, n = LU.shape[-2], LU.shape[-1]
        grad_L, grad_U = grad_LU.tril(-1)[..., :, : min(m, n)], grad_LU.triu()[..., : min(m, n), :]  # noqa: N806
        if m == n:
            return P @ _lu_square_backward(L, U, grad_L, grad_U)
        if m > n:
            L1, L2 = L[..., :n, :], L[..., n:, :]  # noqa: N806
            grad_A2 = SolveTriangular.apply(U.mT, grad_L[..., n:, :], False, False, False)  # noqa: N806 - X U^T = gL2
            grad_U = grad_U - L2.mT @ grad_A2  # noqa: N806
            grad_A1 = _lu_square_backward(L1, U, grad_L[..., :n, :], grad_U)  # noqa: N806
            return P @ cat([grad_A1, grad_A2], -2)
        U1, U2 = U[..., :, :m], U[..., :, m:]  # noqa: N806
        grad_A2 = SolveTriangular.apply(L.mT, grad_U[..., :, m:], True, True, True)  # noqa: N806
        grad_L = grad_L - grad_A2 @ U2.mT  # noqa: N806
        grad_A1 = _lu_square_backward(L, U1, grad_L, grad_U[..., :, :m])  # noqa: N806
        return P @ cat([grad_A1, grad_A2], -1)


def _lu_square_backward(L: Tensor, U: Tensor, grad_L: Tensor, grad_U: Tensor) -> Tensor:  # noqa: N803
    """``L^-T [tril(L^T gL, -1) + triu(gU U^T)] U^-T`` for square factors."""
    inner = (L.mT @ grad_L).tril(-1) + (grad_U @ U.mT).triu()
    left = SolveTriangular.apply(L.mT, inner, True, True, True)  # L^-T inner (unit upper)
    return SolveTriangular.apply(U.mT, left, False, False, False)  # ... U^-T: X U^T = left


def lu_unpack(LU: Tensor, pivots: Tensor, unpack_data: bool = True, unpack_pivots: bool = True) -> tuple:  # noqa: N803
    """``(P, L, U)`` from ``lu_factor``'s packed factor: the permutation matrices (constants),
    ``L`` (..., m, k) unit lower and ``U`` (..., k, n) upper, differentiable in ``LU``."""
    m, n = LU.shape[-2], LU.shape[-1]
    k = min(m, n)
    P = None  # noqa: N806
    if unpack_pivots:
        guard_reads("lu_unpack()", pivots)  # the permutation, built in numpy
        swaps = pivots._data.astype(np.int64) - 1
        permutation = np.broadcast_to(np.arange(m), (*swaps.shape[:-1], m)).copy()
        batch = math.prod(swaps.shape[:-1])  # (not -1: a reshape cannot infer it beside a 0, as of 0x0 matrices)
        flat_perm, flat_swaps = permutation.reshape(batch, m), swaps.reshape(batch, swaps.shape[-1])
        for perm, row_swaps in zip(flat_perm, flat_swaps):
            for i, j in enumerate(row_swaps):
                perm[i], perm[j] = perm[j], perm[i]
        # A = P L U: row i of L U is row perm[i] of A, so P[perm[i], i] = 1
        matrices = np.zeros((*permutation.shape, m), LU._data.dtype)
        np.put_along_axis(matrices, permutation[..., :, None], 1, axis=-1)
        P = _wrap(np.swapaxes(matrices, -1, -2).copy())  # noqa: N806
    L = U = None  # noqa: N806
    if unpack_data:
        L = LU[..., :, :k].tril(-1) + _wrap(np.eye(m, k, dtype=LU._data.dtype))  # noqa: N806
        U = LU[..., :k, :].triu()  # noqa: N806
    return P, L, U


class Pinv(Function):
    """The Moore-Penrose pseudo-inverse, singular values below ``rtol`` times the largest (and
    below ``atol``) taken as zero."""

    _node_name = "LinalgPinvBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A, atol, rtol, hermitian=False):  # noqa: N803
        data = A._data
        if hermitian:  # the value from the lower triangle, as PyTorch's eigh-based path reads it;
            # the gradient, as PyTorch's pinv_backward, of the whole matrix (folded onto the
            # lower triangle it agreed along symmetric directions only)
            data = np.tril(data) + np.swapaxes(np.tril(data, -1), -1, -2)
        U, S, Vh = np.linalg.svd(data, full_matrices=False)  # noqa: N806
        cutoff = np.maximum(atol, rtol * S[..., :1]) if S.shape[-1] else np.zeros(S.shape[:-1] + (1,))
        inverse_S = np.where(S > cutoff, 1.0 / np.where(S > cutoff, S, 1.0), 0.0)  # noqa: N806
        P = _wrap(((Vh.swapaxes(-1, -2) * inverse_S[..., None, :]) @ U.swapaxes(-1, -2)).astype(data.dtype))  # noqa: N806
        ctx.save_for_backward(A, P)
        return P

    @staticmethod
    def backward(ctx, grad):
        # dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P (Golub and Pereyra),
        # exact where the rank does not change, as PyTorch's pinv_backward.
        A, P = ctx.saved_tensors  # noqa: N806
        m, n = A.shape[-2], A.shape[-1]
        Pt = P.mT  # noqa: N806
        return (
            -(Pt @ grad @ Pt)
            + (_identity(m, A) - A @ P) @ grad.mT @ (P @ Pt)
            + (Pt @ P) @ grad.mT @ (_identity(n, A) - P @ A),
            None,
            None,
            None,
        )


class CholeskySolve(Function):
    """``A^-1 B`` for ``A = L L^T`` (``upper``: ``A = U^T U``), by two triangular solves."""

    _node_name = "CholeskySolveBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, B, L, upper):  # noqa: N803
        def solve(b, factor):
            return _scipy_linalg().cho_solve((factor, not upper), b, check_finite=False)

        X = _wrap(_each_matrix(solve, B._data, L._data).astype(np.result_type(B._data, L._data), copy=False))  # noqa: N806
        ctx.upper = upper
        ctx.save_for_backward(L, X)
        return X

    @staticmethod
    def backward(ctx, grad):
        # PyTorch's cholesky_solve_backward: the factor's gradient as if all of it made A, not
        # its triangle only (what PyTorch gives, and a user of its gradient expects).
        L, X = ctx.saved_tensors  # noqa: N806
        grad_B = CholeskySolve.apply(grad, L, ctx.upper)  # noqa: N806
        common = grad_B @ X.mT
        common = common + common.mT
        return grad_B, -(L @ common) if ctx.upper else -(common @ L), None


class MatrixExp(Function):
    """``exp(A)`` of square matrices (scipy's Padé approximation)."""

    _node_name = "LinalgMatrixExpBackward0"  # PyTorch's node for the op

    @staticmethod
    def forward(ctx, A):  # noqa: N803
        ctx.save_for_backward(A)
        return _wrap(np.asarray(_scipy_linalg().expm(A._data), A._data.dtype))

    @staticmethod
    def backward(ctx, grad):
        # The Fréchet derivative's adjoint: the upper right block of exp([[A^T, g], [0, A^T]]),
        # as PyTorch's matrix_exp_backward (itself differentiable: it is this Function again).
        (A,) = ctx.saved_tensors  # noqa: N806
        n = A.shape[-1]
        zeros = _wrap(np.zeros(A.shape, A._data.dtype))
        top = cat((A.mT, grad), -1)
        bottom = cat((zeros, A.mT), -1)
        return MatrixExp.apply(cat((top, bottom), -2))[..., :n, n:]
