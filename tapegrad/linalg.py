"""``torch.linalg``: norms of vectors and matrices (built from tapegrad's ``norm``, ``abs``,
``sum``, ``amax``/``amin``, and numpy's SVD for the spectral and nuclear norms), ``vecdot``,
``cross``, and the LAPACK routines: ``solve``, ``inv``, ``cholesky``, ``solve_triangular``,
``det``, ``slogdet``, ``eigh``, ``svd``, ``pinv``, ``lstsq``, ``matrix_exp`` and what is built on
them (``autograd.Function``s of ``_decompositions.py`` over numpy and scipy, whose backward is
made of differentiable ops, so that ``create_graph`` passes through them), with PyTorch's
signatures, named tuples and errors."""

from __future__ import annotations

import operator
import warnings

import numpy as np

from . import _composites, return_types
from ._decompositions import (
    Cholesky,
    CholeskySolve,
    Det,
    Eigh,
    Inverse,
    LinAlgError,
    LuFactor,
    MatrixExp,
    Pinv,
    Qr,
    Slogdet,
    Solve,
    SolveTriangular,
    Svd,
    _check_square,
    _first_zero_pivot,
    lu_unpack,
)
from ._record import broadcast_shape, name_node, with_out
from ._selection import where
from ._views import stack as _stack
from .tensor import Tensor, _normalize_dim, _wrap, as_tensor, guard_reads, install, on_tape


def vector_norm(x: Tensor, ord: float = 2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002
    """The ``ord``-norm of ``x`` flattened (``dim=None``) or along ``dim`` (an int or a tuple);
    follows ``torch.linalg.vector_norm``. With ``keepdim`` the reduced dimensions stay, as 1s
    (all of them for ``dim=None``). ``dtype``: ``x`` is cast to it before the norm is taken."""
    if dim is None:
        result = x.reshape(-1).norm(ord, dim=None if x.numel() == 0 else 0, dtype=dtype)
        return result.reshape((1,) * x.dim()) if keepdim else result
    return x.norm(ord, dim=dim, keepdim=keepdim, dtype=dtype)


def norm(A: Tensor, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002, N803
    """A vector or a matrix norm, chosen as ``torch.linalg.norm`` chooses (and followed):

    - ``dim`` a 2-tuple, or ``dim=None`` with a 2-D ``A``: ``matrix_norm`` for a numeric or string
      ``ord`` (``ord=None`` is the Frobenius norm, the same value as the 2-norm of the elements);
    - ``dim`` an int or a 1-tuple, or ``dim=None`` with a 1-D ``A``: ``vector_norm`` (2 for
      ``ord=None``); a string ``ord`` is then ``matrix_norm``'s error;
    - ``dim=None`` and ``ord=None``: the 2-norm of ``A`` flattened, any number of dimensions.

    Returns a tensor of ``A``'s dtype (``dtype``'s, when given) with the reduced dimensions gone,
    or kept as 1s with ``keepdim``. Raises ``RuntimeError`` (PyTorch's messages) for a ``dim`` of
    another length, a numeric ``ord`` with ``dim=None`` and ``A`` neither 1-D nor 2-D, and what
    ``matrix_norm`` raises (``ord=0`` or ``3`` on a matrix: "Order 0 not supported.")."""
    A = as_tensor(A)  # noqa: N806
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dims) not in (1, 2):
            raise RuntimeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. Got {list(dims)}")
    elif ord is not None and A.dim() not in (1, 2):
        raise RuntimeError(
            f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. Got {A.dim()}D."
        )
    if ord is not None and (isinstance(ord, str) or (len(dims) == 2 if dim is not None else A.dim() == 2)):
        return matrix_norm(A, ord, (0, 1) if dim is None else dims, keepdim, dtype=dtype)
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)


def matrix_norm(A: Tensor, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002, N803
    """The ``ord`` norm of each matrix ``A`` holds in dimensions ``dim`` (a 2-tuple: rows,
    columns), the others batch dimensions; follows ``torch.linalg.matrix_norm``.

    ``ord``: ``"fro"`` (the 2-norm of the elements), ``"nuc"`` (the sum of the singular values),
    ``1``/``-1`` (the largest/smallest column sum of absolute values), ``inf``/``-inf`` (the
    largest/smallest row sum), ``2``/``-2`` (the largest/smallest singular value). ``A`` float32
    or float64 (``dtype``: cast to it first); returns that dtype, of ``A``'s shape without ``dim``
    (with ``keepdim``: with 1s there).

    Gradients are those of the ops each norm is made of: abs, sum and amax/amin (ties share the
    gradient, as in PyTorch) for 1/inf; for 2/-2/nuc, the singular values' gradient, ``U
    diag(g) V^T`` (``u v^T`` for the largest; ``U V^T`` for the nuclear norm; repeated singular
    values raise nothing, as in PyTorch, and share an amax/amin's gradient). The singular
    vectors come from ``numpy.linalg.svd`` and are constants of the graph: first derivatives are
    exact, and a ``create_graph`` backward through them raises ``NotImplementedError`` (their own
    derivative, through the singular vectors, would be missing, silently). Inside
    ``tapegrad.record`` they are constants of the tape, so reading ``A`` is a guard: a replay at
    another ``A`` raises ``GuardError`` (records again with ``rerecord=True``).

    Raises ``RuntimeError`` (PyTorch's messages) for another ``ord`` ("Order 0 not supported."),
    fewer than 2 dimensions, a non-float ``A`` or ``dtype``, a narrowing ``dtype``, ``dim`` not
    two different dimensions; ``IndexError`` for a dimension out of range; ``LinAlgError`` for
    2/-2/nuc of a matrix with inf or NaN; ``NotImplementedError`` for a ``create_graph``
    backward through 2/-2/nuc."""
    A = as_tensor(A)  # noqa: N806
    if isinstance(ord, str):
        if ord not in ("fro", "nuc"):
            raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")
    elif abs(ord) not in (1, 2, np.inf):
        raise RuntimeError(f"linalg.matrix_norm: Order {float(ord):g} not supported.")
    if A.dim() < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 dimensions.")
    if A._data.dtype.kind != "f":
        raise RuntimeError(
            f"linalg.matrix_norm: Expected a floating point or complex tensor as input. Got {A.dtype.type_name}"
        )
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if len(dims) != 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got {' '.join(map(str, dims))}")
    rows, columns = (_normalize_dim(d, A.dim()) for d in dims)
    if rows == columns:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({rows}, {columns})")
    if dtype is not None:
        if not dtype.is_floating_point:
            raise RuntimeError(
                f"linalg.matrix_norm: dtype should be floating point or complex, but got {dtype.type_name}"
            )
        if dtype.itemsize < A.dtype.itemsize:
            raise RuntimeError(
                f"linalg.matrix_norm: the dtype of the input ({A.dtype.type_name}) should be convertible "
                f"without narrowing to the specified dtype ({dtype.type_name})"
            )
        A = A.to(dtype)  # noqa: N806
    if ord == "fro":
        return vector_norm(A, 2, (rows, columns), keepdim)
    if ord in (1, -1, np.inf, -np.inf):
        if abs(ord) == np.inf:  # the inf-norm is the 1-norm of the transpose
            rows, columns = columns, rows
        sums = vector_norm(A, 1, rows, keepdim)
        if not keepdim and rows < columns:  # the first reduction moved the second dimension
            columns -= 1
        return sums.amax(columns, keepdim) if ord > 0 else sums.amin(columns, keepdim)
    # 2, -2, nuc: reduce the singular values of the matrices moved to the last two dimensions.
    order = [d for d in range(A.dim()) if d not in (rows, columns)] + [rows, columns]
    values = _singular_values(A.permute(*order), f"linalg.matrix_norm(ord={ord!r})")
    if ord == "nuc":
        result = values.sum(-1, keepdim)
    else:
        result = values.amax(-1, keepdim) if ord > 0 else values.amin(-1, keepdim)
    if keepdim:
        result = result.unsqueeze(-1).permute(*np.argsort(order).tolist())
    return result


def _singular_values(A: Tensor, kind: str) -> Tensor:  # noqa: N803
    """The singular values of each matrix in ``A`` (..., m, n), largest first, (..., min(m, n)),
    with the gradient PyTorch's ``linalg.svdvals`` has: ``U diag(g) V^T``.

    tapegrad has no differentiable SVD: numpy's gives the values (exactly, as the result) and
    the singular vectors, and the gradient is that of ``diag(U^T A V)`` (equal to the values)
    built from recorded ops with ``U`` and ``V`` as constants. It is added as ``e - detach(e)``,
    exactly 0 forward, so the values are numpy's (exact ties for amax/amin, no negative zero
    singular values from rounding)."""
    data = A._data
    if not np.isfinite(data).all():
        raise LinAlgError(
            "linalg.svd: The algorithm failed to converge because the input matrix contained non-finite values."
        )
    guard_reads(kind, A)  # the singular vectors are constants of a recording
    U, values, Vh = np.linalg.svd(data, full_matrices=False)  # noqa: N806
    values = _wrap(values.astype(data.dtype, copy=False))
    if not on_tape(A):
        return values
    diagonal = (_wrap(U.astype(data.dtype, copy=False)) * (A @ _wrap(Vh.astype(data.dtype, copy=False)).mT)).sum(-2)
    # Named as PyTorch's node: a create_graph backward refuses it (autograd/higher_order.py), as
    # U and V are constants here and a second derivative through them would be silently 0.
    return name_node(values + (diagonal - diagonal.detach()), "LinalgSvdBackward0")


@with_out("sum")
def vecdot(x: Tensor, y: Tensor, *, dim: int = -1, out=None) -> Tensor:
    """The dot product of ``x`` and ``y`` (broadcast) along ``dim``; follows
    ``torch.linalg.vecdot``."""
    x, y = as_tensor(x), as_tensor(y)
    shape = broadcast_shape(x.shape, y.shape)
    _normalize_dim(dim, max(len(shape), 1))
    return (x * y).sum(dim)


@with_out("linalg_cross")
def cross(input: Tensor, other: Tensor, *, dim: int = -1, out=None) -> Tensor:  # noqa: A002
    """The cross product of 3-vectors along ``dim``; follows ``torch.linalg.cross``, whose
    ``RuntimeError`` it raises for inputs of different numbers of dimensions (``_cross``)."""
    return _composites._cross(input, as_tensor(other), dim)


@with_out("_linalg_solve_ex")
def solve(A: Tensor, B: Tensor, *, left: bool = True, out=None) -> Tensor:  # noqa: N803
    """The ``X`` with ``A @ X = B`` (``left=False``: ``X @ A = B``), batched, ``B`` a vector or
    batch of vectors when it has one dimension fewer than ``A``; follows ``torch.linalg.solve``.
    Raises ``RuntimeError`` for non-square or mismatched shapes and ``LinAlgError`` for a singular
    ``A``. Differentiable in both."""
    A, B = as_tensor(A), as_tensor(B)  # noqa: N806
    _check_square(A, "linalg.solve")
    if A._data.dtype != B._data.dtype:  # (numpy promoted, silently)
        raise RuntimeError(
            f"linalg.solve: Expected A and B to have the same dtype, but found A of type {A.dtype.type_name} and B "
            f"of type {B.dtype.type_name} instead"
        )
    vector = B.dim() == 1 or (B.dim() == A.dim() - 1 and B.shape == A.shape[:-1])
    matrix_B = B.unsqueeze(-1) if vector else B  # noqa: N806
    if not left:  # X A = B: B's rows are X's (a vector B is a column, as PyTorch reads it: refused)
        if matrix_B.shape[-1] != A.shape[-1]:
            raise RuntimeError(
                "linalg.solve: Incompatible shapes of A and B for the equation XA = B "
                f"({A.shape[-2]}x{A.shape[-1]} and {matrix_B.shape[-2]}x{matrix_B.shape[-1]})"
            )
        return name_node(solve(A.mT, B.mT).mT, "LinalgSolveExBackward0")
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
    X = Solve.apply(A, matrix_B)  # noqa: N806
    return name_node(X.squeeze(-1), "LinalgSolveExBackward0") if vector else X  # (PyTorch's node, as one)


@with_out("linalg_inv_ex")
def inv(A: Tensor, *, out=None) -> Tensor:  # noqa: N803
    """The inverse of a square matrix (or of each in a batch); follows ``torch.linalg.inv``.
    Raises ``RuntimeError`` for non-square or integer input and ``LinAlgError`` for a singular
    one. Differentiable: the gradient is ``-A^-T g A^-T``."""
    A = as_tensor(A)  # noqa: N806
    _check_square(A, "linalg.inv")
    return Inverse.apply(A)


@with_out("linalg_inv_ex")
def _inverse(self, *, out=None) -> Tensor:
    """``tapegrad.linalg.inv(self)``; follows ``torch.Tensor.inverse``."""
    return inv(self)


LinAlgError.__module__ = __name__  # raised by the Functions of _decompositions, named as public here


def _matrices(A, name: str, square: bool = True) -> Tensor:  # noqa: N803
    """``A`` as a tensor of float matrices (square ones where ``square``), with PyTorch's errors."""
    A = as_tensor(A)  # noqa: N806
    if square:
        _check_square(A, name)
    elif A.dim() < 2:
        raise RuntimeError(f"{name}: The input tensor A must have at least 2 dimensions.")
    elif A._data.dtype.kind != "f":
        raise RuntimeError(f"{name}: Expected a floating point or complex tensor as input. Got {A.dtype.type_name}")
    return A


@with_out("linalg_cholesky_ex")
def cholesky(A: Tensor, *, upper: bool = False, out=None) -> Tensor:  # noqa: N803
    """The Cholesky factor of symmetric positive-definite matrices ``A`` (..., n, n): ``L``
    lower triangular with ``A = L L^T`` (``upper``: ``U = L^T``, ``A = U^T U``), read from
    ``A``'s lower triangle; follows ``torch.linalg.cholesky``. Raises ``RuntimeError`` for
    non-square or integer input and ``LinAlgError`` naming the first leading minor that is not
    positive-definite. Differentiable (PyTorch's symmetrized gradient), to any order."""
    L = Cholesky.apply(_matrices(A, "linalg.cholesky"))  # noqa: N806
    return name_node(L.mT, "LinalgCholeskyExBackward0") if upper else L


@with_out("linalg_cholesky_ex")
def cholesky_ex(A: Tensor, *, upper: bool = False, check_errors: bool = False, out=None):  # noqa: N803
    """``(L, info)`` as ``torch.linalg.cholesky_ex``: ``info`` (int32, per matrix) is the order
    of the first leading minor that is not positive-definite (0: none), ``L`` then undefined
    (here: zeros) unless ``check_errors``, which raises as ``cholesky`` does."""
    A = _matrices(A, "linalg.cholesky")  # noqa: N806
    try:
        return return_types.linalg_cholesky_ex(cholesky(A, upper=upper), _wrap(np.zeros(A.shape[:-2], np.int32)))
    except LinAlgError:
        if check_errors:
            raise
    info = np.zeros(A.shape[:-2], np.int32).reshape(-1)
    for index, matrix in enumerate(A._data.reshape(-1, *A.shape[-2:])):
        for order in range(1, matrix.shape[-1] + 1):
            minor = matrix[:order, :order]
            if not np.isfinite(minor).all() or np.linalg.eigvalsh(minor).min() <= 0:
                info[index] = order
                break
    factors = _each_or_zeros(A, info, lambda matrix: cholesky(matrix, upper=upper))
    return return_types.linalg_cholesky_ex(factors, _wrap(info.reshape(A.shape[:-2])))


def _cholesky(self, upper: bool = False) -> Tensor:
    """``torch.cholesky`` (deprecated in PyTorch for ``linalg.cholesky``): ``upper`` a flag."""
    return cholesky(self, upper=upper)


@with_out("linalg_solve_triangular")
def solve_triangular(
    A: Tensor, B: Tensor, *, upper: bool, left: bool = True, unitriangular: bool = False, out=None
) -> Tensor:  # noqa: N803
    """The ``X`` with ``A @ X = B`` (``left=False``: ``X @ A = B``) for triangular ``A``
    (..., n, n), upper or lower as ``upper`` says (the other triangle is not read; with
    ``unitriangular`` neither is the diagonal, taken as ones), batch dimensions broadcast;
    follows ``torch.linalg.solve_triangular``. Raises ``RuntimeError`` for incompatible
    shapes (PyTorch's message). Differentiable in both (``A``'s gradient on its triangle)."""
    A = _matrices(A, "linalg.solve_triangular")  # noqa: N806
    B = as_tensor(B)  # noqa: N806
    if B.dim() < 2 or (B.shape[-2] if left else B.shape[-1]) != A.shape[-1]:
        rows, columns = (B.shape[-2], B.shape[-1]) if B.dim() >= 2 else (B.shape[0], 1)
        equation = "AX = B" if left else "XA = B"
        raise RuntimeError(
            f"linalg.solve_triangular: Incompatible shapes of A and B for the equation {equation} "
            f"({A.shape[-2]}x{A.shape[-1]} and {rows}x{columns})"
        )
    A, B = _broadcast_batches(A, B)  # noqa: N806
    return SolveTriangular.apply(A, B, bool(upper), bool(left), bool(unitriangular))


def _broadcast_batches(A: Tensor, B: Tensor) -> tuple:  # noqa: N803
    batch = tuple(broadcast_shape(tuple(A.shape[:-2]), tuple(B.shape[:-2])))
    if tuple(A.shape[:-2]) != batch:
        A = A.expand(*batch, *A.shape[-2:])  # noqa: N806
    if tuple(B.shape[:-2]) != batch:
        B = B.expand(*batch, *B.shape[-2:])  # noqa: N806
    return A, B


@with_out("cholesky_solve")
def cholesky_solve(B: Tensor, L: Tensor, upper: bool = False, *, out=None) -> Tensor:  # noqa: N803
    """``A^-1 B`` for ``A = L L^T`` given its Cholesky factor ``L`` (``upper``: ``A = U^T U``);
    follows ``torch.cholesky_solve`` (and its gradient with respect to all of ``L``, not only
    its triangle). Two triangular solves, differentiable in both."""
    B, L = as_tensor(B), _matrices(L, "linalg.cholesky_solve")  # noqa: N806
    if B.dim() < 2 or B.shape[-2] != L.shape[-1]:
        raise RuntimeError(
            f"Incompatible matrix sizes for cholesky_solve: each A matrix is {L.shape[-1]} by {L.shape[-1]} but each "
            f"b matrix is {B.shape[-2] if B.dim() >= 2 else B.shape[0]} by {B.shape[-1] if B.dim() >= 2 else 1}"
        )
    B, L = _broadcast_batches(B, L)  # noqa: N806
    return CholeskySolve.apply(B, L, bool(upper))


@with_out("cholesky_inverse")
def cholesky_inverse(L: Tensor, upper: bool = False, *, out=None) -> Tensor:  # noqa: N803
    """``A^-1`` for ``A = L L^T`` given ``L``; follows ``torch.cholesky_inverse``."""
    L = as_tensor(L)  # noqa: N806
    return cholesky_solve(_wrap(np.eye(L.shape[-1], dtype=L._data.dtype)), L, upper)


@with_out("_linalg_det")
def det(A: Tensor, *, out=None) -> Tensor:  # noqa: N803
    """The determinant of square matrices (..., n, n), shape (...); follows ``torch.linalg.det``.
    Raises ``RuntimeError`` for non-square or integer input. Differentiable: ``g det(A) A^-T``,
    the cofactors (from the SVD) where ``A`` is singular."""
    return Det.apply(_matrices(A, "linalg.det"))


@with_out("_linalg_slogdet")
def slogdet(A: Tensor, *, out=None):  # noqa: N803
    """``(sign, logabsdet)`` of the determinants; follows ``torch.linalg.slogdet`` (the sign has
    no gradient; ``logabsdet``'s is ``A^-T``, ``LinAlgError`` at a singular ``A``)."""
    sign, logabsdet = Slogdet.apply(_matrices(A, "linalg.slogdet"))
    return return_types.linalg_slogdet(sign, logabsdet)


def _torch_slogdet(self) -> tuple:
    """``torch.slogdet``: ``linalg.slogdet`` in PyTorch's older named tuple."""
    sign, logabsdet = slogdet(self)
    return return_types.slogdet(sign, logabsdet)


def logdet(A: Tensor) -> Tensor:  # noqa: N803
    """``log(det(A))``: NaN where the determinant is negative, -inf where it is 0; follows
    ``torch.logdet`` (the gradient is ``A^-T``, as ``slogdet``'s)."""
    sign, logabsdet = Slogdet.apply(_matrices(A, "linalg.slogdet"))
    # NaN where the determinant is negative, with no gradient there (PyTorch's)
    return where(sign < 0, float("nan"), logabsdet)


@with_out("_linalg_eigh")
def eigh(A: Tensor, UPLO: str = "L", *, out=None):  # noqa: N803
    """Eigenvalues (ascending, (..., n)) and orthonormal eigenvectors (columns, (..., n, n)) of
    symmetric matrices, read from the ``UPLO`` ("L" or "U") triangle; follows
    ``torch.linalg.eigh``. Differentiable (the eigenvectors' gradient needs distinct
    eigenvalues, as in PyTorch). Raises ``RuntimeError`` for non-square or integer input."""
    A = _matrices(A, "linalg.eigh")  # noqa: N806
    if not isinstance(UPLO, str) or UPLO.upper() not in ("L", "U"):  # (PyTorch's takes "l" and "u" too)
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    values, vectors = Eigh.apply(A, UPLO.upper())
    return return_types.linalg_eigh(values, vectors)


@with_out("_linalg_eigh")
def eigvalsh(A: Tensor, UPLO: str = "L", *, out=None) -> Tensor:  # noqa: N803
    """The eigenvalues of ``eigh``, ascending; follows ``torch.linalg.eigvalsh``."""
    return eigh(A, UPLO).eigenvalues


def _finite(A: Tensor, name: str) -> Tensor:  # noqa: N803
    if not np.isfinite(A._data).all():
        raise LinAlgError(
            f"{name}: The algorithm failed to converge because the input matrix contained non-finite values."
        )
    return A


@with_out("_linalg_svd")
def svd(A: Tensor, full_matrices: bool = True, *, driver=None, out=None):  # noqa: N803
    """``(U, S, Vh)`` with ``A = U diag(S) Vh`` for matrices (..., m, n), ``S`` descending;
    ``full_matrices=False``: ``U`` (..., m, k) and ``Vh`` (..., k, n), ``k = min(m, n)``;
    follows ``torch.linalg.svd``. Differentiable (PyTorch's formula: the singular vectors'
    gradient needs distinct singular values; with ``full_matrices`` only the first ``k``
    columns of ``U`` and rows of ``Vh`` carry one). Raises ``LinAlgError`` for non-finite input."""
    A = _finite(_matrices(A, "linalg.svd", square=False), "linalg.svd")  # noqa: N806
    U, S, Vh = Svd.apply(A, bool(full_matrices))  # noqa: N806
    return return_types.linalg_svd(U, S, Vh)


@with_out("_linalg_svd")
def svdvals(A: Tensor, *, driver=None, out=None) -> Tensor:  # noqa: N803
    """The singular values, descending, (..., min(m, n)); follows ``torch.linalg.svdvals``."""
    return svd(A, full_matrices=False).S


def _torch_svd(self, some: bool = True, compute_uv: bool = True) -> tuple:
    """``torch.svd``: ``(U, S, V)`` with ``V`` (not ``Vh``), reduced unless ``some=False``;
    without ``compute_uv``, ``U`` and ``V`` are zeros."""
    if not compute_uv:  # U (..., m, m) and V (..., n, n) of zeros, as PyTorch's
        S = svdvals(self)  # noqa: N806
        *batch, m, n = self.shape
        zeros = [_wrap(np.zeros((*batch, k, k), self._data.dtype)) for k in (m, n)]
        return return_types.svd(zeros[0], S, zeros[1])
    U, S, Vh = svd(self, full_matrices=not some)  # noqa: N806
    return return_types.svd(U, S, Vh.mT)


@with_out("linalg_lu_factor_ex")
def lu_factor_ex(A: Tensor, *, pivot: bool = True, check_errors: bool = False, out=None):  # noqa: N803
    """``(LU, pivots, info)``: ``A = P L U`` (partial pivoting, LAPACK's getrf) packed in
    ``LU`` (..., m, n), ``pivots`` (..., min(m, n)) 1-based row swaps (int32), ``info`` (int32)
    the 1-based index of the first zero pivot (0 if none). Differentiable in ``A`` (PyTorch's
    formula; the gradient needs nonzero pivots). Follows ``torch.linalg.lu_factor_ex``;
    ``RuntimeError`` for ``pivot=False`` (PyTorch has no CPU kernel either) or integer input."""
    A = _matrices(A, "torch.lu_factor", square=False)  # noqa: N806
    if not pivot:
        raise RuntimeError("linalg.lu_factor: LU without pivoting is not implemented on the CPU")
    LU, pivots = LuFactor.apply(A)  # noqa: N806
    k = min(A.shape[-2], A.shape[-1])
    diagonal = np.diagonal(LU._data[..., :k, :k], axis1=-2, axis2=-1) == 0
    first = diagonal.argmax(-1) if k else np.zeros(diagonal.shape[:-1], np.int64)  # (no diagonal: no zero on it)
    info = np.where(diagonal.any(-1), first + 1, 0).astype(np.int32)
    if check_errors and info.any():
        raise LinAlgError(f"torch.linalg.lu_factor_ex: U[{int(info.max())},{int(info.max())}] is zero and singular")
    return return_types.linalg_lu_factor_ex(LU, pivots, _wrap(info))


@with_out("linalg_lu_factor_ex")
def lu_factor(A: Tensor, *, pivot: bool = True, out=None):  # noqa: N803
    """``(LU, pivots)`` of ``lu_factor_ex``; follows ``torch.linalg.lu_factor``: raises
    ``RuntimeError`` for a matrix with a zero pivot (PyTorch's message)."""
    LU, pivots, info = lu_factor_ex(A, pivot=pivot)  # noqa: N806
    if info._data.any():
        index = int(info._data.reshape(-1)[np.flatnonzero(info._data.reshape(-1))[0]])
        raise RuntimeError(
            f"torch.linalg.lu_factor: U[{index},{index}] is zero and using it on lu_solve would result in a division "
            "by zero. If you still want to perform the factorization, consider calling linalg.lu(A, pivot) or "
            "linalg.lu_factor_ex(A, pivot)"
        )
    return return_types.linalg_lu_factor(LU, pivots)


@with_out("linalg_lu")
def lu(A: Tensor, *, pivot: bool = True, out=None):  # noqa: N803
    """``(P, L, U)`` with ``A = P L U``: ``P`` (..., m, m) a permutation, ``L`` (..., m, k) unit
    lower, ``U`` (..., k, n) upper, ``k = min(m, n)``; differentiable in ``A``. Follows
    ``torch.linalg.lu`` (a singular matrix factors, as PyTorch's)."""
    LU, pivots, _ = lu_factor_ex(A, pivot=pivot)  # noqa: N806
    return return_types.linalg_lu(*lu_unpack(LU, pivots))


@with_out("linalg_lu_solve")
def lu_solve(LU: Tensor, pivots: Tensor, B: Tensor, *, left: bool = True, adjoint: bool = False, out=None):  # noqa: N803
    """The ``X`` with ``A X = B`` (``left=False``: ``X A = B``; ``adjoint``: ``A^T`` for ``A``),
    from ``lu_factor``'s ``(LU, pivots)`` of a square ``A``, by two triangular solves;
    differentiable in ``LU`` and ``B``. Follows ``torch.linalg.lu_solve``."""
    P, L, U = lu_unpack(LU, pivots)  # noqa: N806
    if left and not adjoint:  # A = P L U: X = U^-1 L^-1 P^T B
        return solve_triangular(U, solve_triangular(L, P.mT @ B, upper=False, unitriangular=True), upper=True)
    if left:  # A^T X = B: U^T L^T P^T X = B
        inner = solve_triangular(L.mT, solve_triangular(U.mT, B, upper=False), upper=True, unitriangular=True)
        return P @ inner
    if not adjoint:  # X P L U = B
        inner = solve_triangular(
            L, solve_triangular(U, B, upper=True, left=False), upper=False, left=False, unitriangular=True
        )
        return inner @ P.mT
    # X A^T = B: X U^T L^T P^T = B
    inner = solve_triangular(
        U.mT, solve_triangular(L.mT, B @ P, upper=True, left=False, unitriangular=True), upper=False, left=False
    )
    return inner


def _torch_lu(self, pivot: bool = True, get_infos: bool = False):
    """``torch.lu``: ``(LU, pivots)``, with ``get_infos`` also ``info`` (deprecated, as in
    PyTorch, which warns)."""
    warnings.warn(_LU_DEPRECATED, UserWarning, stacklevel=2)
    LU, pivots, info = lu_factor_ex(self, pivot=pivot)  # noqa: N806
    return (LU, pivots, info) if get_infos else (LU, pivots)


def _torch_lu_unpack(LU_data: Tensor, LU_pivots: Tensor, unpack_data: bool = True, unpack_pivots: bool = True):  # noqa: N803
    """``torch.lu_unpack``: ``(P, L, U)`` of a packed factor (empty tensors for what is not unpacked)."""
    P, L, U = lu_unpack(LU_data, LU_pivots, unpack_data, unpack_pivots)  # noqa: N806
    empty = _wrap(np.zeros(0, LU_data._data.dtype))
    return return_types.lu_unpack(empty if P is None else P, empty if L is None else L, empty if U is None else U)


_LU_DEPRECATED = (
    "torch.lu is deprecated in favor of torch.linalg.lu_factor / torch.linalg.lu_factor_ex and will be removed in a "
    "future PyTorch release."
)


@with_out("linalg_qr")
def qr(A: Tensor, mode: str = "reduced", *, out=None):  # noqa: N803
    """``(Q, R)`` with ``A = Q R`` for matrices (..., m, n): ``Q`` (..., m, k) with orthonormal
    columns and ``R`` (..., k, n) upper triangular, ``k = min(m, n)`` ("reduced"); ``k = m``
    ("complete"); "r": ``R`` alone, ``Q`` empty. LAPACK's signs, as PyTorch's. Follows
    ``torch.linalg.qr``; differentiable as PyTorch's is (a backward raises ``RuntimeError`` for
    "r", and for "complete" with m > n, where ``Q`` is not determined by ``A``)."""
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(
            f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), 'r', or 'complete'"
        )
    A = _matrices(A, "linalg.qr", square=False)  # noqa: N806
    Q, R = Qr.apply(A, mode)  # noqa: N806
    return return_types.linalg_qr(Q, R)


def _torch_qr(self, some: bool = True):
    """``torch.qr``: ``linalg.qr`` reduced, or complete with ``some=False`` (deprecated, as in
    PyTorch, which warns)."""
    warnings.warn(_QR_DEPRECATED, UserWarning, stacklevel=2)
    Q, R = qr(self, "reduced" if some else "complete")  # noqa: N806
    return return_types.qr(Q, R)


_QR_DEPRECATED = (
    "torch.qr is deprecated in favor of torch.linalg.qr and will be removed in a future PyTorch release.\n"
    "The boolean parameter 'some' has been replaced with a string parameter 'mode'.\n"
    "Q, R = torch.qr(A, some)\n"
    "should be replaced with\n"
    "Q, R = torch.linalg.qr(A, 'reduced' if some else 'complete')"
)


@with_out("linalg_pinv")
def pinv(A: Tensor, *, atol=None, rtol=None, hermitian: bool = False, out=None) -> Tensor:  # noqa: N803
    """The Moore-Penrose pseudo-inverse (..., n, m) of matrices (..., m, n); singular values at
    or below ``max(atol, rtol * largest)`` count as zero (``rtol`` defaults to ``eps *
    max(m, n)`` when neither is given, else 0); follows ``torch.linalg.pinv``. Differentiable
    where the rank does not change."""
    A = _finite(_matrices(A, "linalg.pinv", square=False), "linalg.svd")  # noqa: N806
    if rtol is None:  # PyTorch's default: eps * max(m, n) unless a positive atol is given
        rtol = np.finfo(A._data.dtype).eps * max(A.shape[-2:]) if atol is None or atol <= 0 else 0.0
    return Pinv.apply(A, 0.0 if atol is None else float(atol), float(rtol), bool(hermitian))


def _pinverse(self, rcond: float = 1e-15) -> Tensor:
    """``torch.pinverse``: ``linalg.pinv`` with ``rtol=rcond``."""
    return pinv(self, rtol=rcond)


def lstsq(A: Tensor, B: Tensor, rcond=None, *, driver=None):  # noqa: N803
    """The least-squares solution ``X`` minimising ``|A X - B|`` (the minimum-norm one where
    ``A`` lacks full rank), as ``torch.linalg.lstsq``: ``(solution, residuals, rank,
    singular_values)``. ``B`` (..., m, k), or (..., m) (one fewer dimension than ``A``: a vector
    each). As PyTorch's drivers report them: ``rank`` for all but "gels", ``singular_values``
    for "gelsd" and "gelss", ``residuals`` (the squared residual norms) for all but the CPU
    default "gelsy" where ``m > n`` and every matrix has full rank; the others empty.
    Differentiable through the pseudo-inverse."""
    A, B = as_tensor(A), as_tensor(B)  # noqa: N806
    _matrices(A, "torch.linalg.lstsq", square=False)
    driver = driver or "gelsy"
    if driver not in ("gels", "gelsy", "gelsd", "gelss"):
        raise RuntimeError(
            f"torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, gelss), but got {driver}"
        )
    if not (A.dim() >= B.dim() and A.dim() - B.dim() <= 1):
        raise RuntimeError(
            "torch.linalg.lstsq: input.dim() must be greater or equal to other.dim() and "
            "(input.dim() - other.dim()) <= 1"
        )
    vector = B.dim() == A.dim() - 1
    matrix_B = B.unsqueeze(-1) if vector else B  # noqa: N806
    if matrix_B.shape[-2] != A.shape[-2]:
        raise RuntimeError(
            "torch.linalg.lstsq: input.size(-2) should match other.size(-2). "
            f"Got input.size(-2) = {A.shape[-2]}, other.size(-2) = {matrix_B.shape[-2]}"
        )
    dtype = A._data.dtype
    if rcond is None:
        rcond = np.finfo(dtype).eps * max(A.shape[-2:])
    solution = pinv(A, rtol=rcond) @ matrix_B
    rank = np.linalg.matrix_rank(A._data, rtol=rcond) if A.numel() else np.zeros(A.shape[:-2], np.int64)
    empty = _wrap(np.zeros((0,), dtype))
    m, n = A.shape[-2:]
    residuals = empty
    if driver != "gelsy" and m > n and np.all(rank == n):
        # (a vector B's keeps its column: (..., 1), as PyTorch's)
        residuals = ((A @ solution - matrix_B) ** 2).sum(-2)
    values = _wrap(np.linalg.svd(A._data, compute_uv=False).astype(dtype)) if driver in ("gelsd", "gelss") else empty
    rank = _wrap(np.asarray(rank, np.int64)) if driver != "gels" else _wrap(np.zeros((0,), np.int64))
    return return_types.linalg_lstsq(solution.squeeze(-1) if vector else solution, residuals, rank, values)


def matrix_exp(A: Tensor) -> Tensor:  # noqa: N803
    """``exp(A)`` of square matrices (scipy's Padé approximation); follows
    ``torch.linalg.matrix_exp``, differentiable to any order."""
    return MatrixExp.apply(_matrices(A, "linalg.matrix_exp"))


@with_out("matmul")
def matrix_power(A: Tensor, n: int, *, out=None) -> Tensor:  # noqa: N803
    """``A`` to the integer power ``n`` by repeated squaring (``n < 0``: of ``inv(A)``; ``n = 0``:
    identities); follows ``torch.linalg.matrix_power``. Raises ``RuntimeError`` for non-square
    input (PyTorch's message)."""
    if isinstance(n, (bool, float, np.bool_, np.floating)):  # (1.5 gave A, 0.5 None)
        raise TypeError(f"linalg_matrix_power(): argument 'n' (position 2) must be int, not {type(n).__name__}")
    n = operator.index(n) if not isinstance(n, Tensor) else int(n)
    A = as_tensor(A)  # noqa: N806
    if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        _check_square(A, "linalg.matrix_power")
    if n == 0:  # identities, on the graph (a zero gradient), as PyTorch's
        eye = _wrap(np.broadcast_to(np.eye(A.shape[-1], dtype=A._data.dtype), A.shape).copy())
        # (a constant mask, not ``A == A``: a NaN of A must not reach the identities)
        return where(_wrap(np.ones(A.shape, np.bool_)), eye, A) if A.requires_grad else eye
    base = inv(A) if n < 0 else A
    result, power = None, abs(int(n))
    while power:
        if power & 1:
            result = base if result is None else result @ base
        power >>= 1
        if power:
            base = base @ base
    return A.clone() if result is A else result  # (n 1: a copy, as PyTorch's, not A itself)


@with_out("mm")
def multi_dot(tensors, *, out=None) -> Tensor:
    """The product of a list of matrices (the first may be a vector, read as a row; the last a
    column, each then dropped from the result's shape), in the order of fewest multiplications
    PyTorch picks (the bits of its rounding too); follows ``torch.linalg.multi_dot``
    (``ViewBackward0``). Raises PyTorch's ``RuntimeError`` for fewer than 2 tensors, ranks other
    than these, different dtypes or shapes that do not multiply."""
    tensors = [as_tensor(tensor) for tensor in tensors]
    if len(tensors) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(tensors)}")
    for index, tensor in enumerate(tensors):  # (a batch of matrices broadcast through @ before)
        place = "first" if index == 0 else "last" if index == len(tensors) - 1 else ""
        allowed = (1, 2) if place else (2,)
        if tensor.dim() not in allowed:
            raise RuntimeError(
                f"multi_dot(): the {place} tensor must be 1D or 2D but got {tensor.dim()}D"
                if place
                else f"multi_dot(): tensor {index} must be 2D but got {tensor.dim()}D"
            )
    shape = ([tensors[0].shape[0]] if tensors[0].dim() == 2 else []) + (
        [tensors[-1].shape[-1]] if tensors[-1].dim() == 2 else []
    )
    matrices = [tensors[0].reshape(1, -1) if tensors[0].dim() == 1 else tensors[0], *tensors[1:-1]]
    matrices.append(tensors[-1].reshape(-1, 1) if tensors[-1].dim() == 1 else tensors[-1])
    for index in range(1, len(tensors)):
        if tensors[index].dtype != tensors[0].dtype:
            raise RuntimeError(
                "multi_dot(): all tensors must have be the same dtype but tensor 0 is "
                f"{tensors[0].dtype.c_name} and tensor {index} {tensors[index].dtype.c_name}"
            )
        if matrices[index - 1].shape[-1] != matrices[index].shape[0]:
            raise RuntimeError(
                f"multi_dot(): tensors {index - 1} and {index} with shapes {list(tensors[index - 1].shape)} and "
                f"{list(tensors[index].shape)} cannot be multiplied"
            )
    return _chained(matrices, 0, len(matrices) - 1, _chain_order(matrices)).view(shape)


def _chain_order(matrices: list) -> list:
    """``split[i][j]``: where the product of matrices i..j splits in the fewest multiplications,
    PyTorch's choice where two orders cost the same (``matrix_chain_order``; for three, its
    direct comparison, which prefers ``(AB)C`` on a tie)."""
    sizes = [matrices[0].shape[0], *(matrix.shape[1] for matrix in matrices)]
    n = len(matrices)
    split = [[0] * n for _ in range(n)]
    if n == 3:
        a, b, c, d = sizes
        split[0][2] = 0 if a * c * (b + d) > b * d * (a + c) else 1
        split[0][1], split[1][2] = 0, 1
        return split
    cost = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                total = cost[i][k] + cost[k + 1][j] + sizes[i] * sizes[k + 1] * sizes[j + 1]
                if cost[i][j] is None or total < cost[i][j]:
                    cost[i][j], split[i][j] = total, k
    return split


def _chained(matrices: list, i: int, j: int, split: list) -> Tensor:
    if i == j:
        return matrices[i]
    k = split[i][j]
    return _chained(matrices, i, k, split) @ _chained(matrices, k + 1, j, split)


_CHAIN_MATMUL_WARNED = [False]


def _chain_matmul(*matrices, out=None) -> Tensor:
    """``torch.chain_matmul``: the product of 2-D tensors, as ``linalg.multi_dot`` of them (one
    alone: a copy of it). Deprecated, as in PyTorch, which warns once a process (``UserWarning``).
    Raises its ``RuntimeError`` for a tensor that is not 2-D or none, and ``TypeError`` for a
    list (``multi_dot`` takes one)."""
    if not _CHAIN_MATMUL_WARNED[0]:
        _CHAIN_MATMUL_WARNED[0] = True
        warnings.warn(_CHAIN_MATMUL_DEPRECATED, UserWarning, stacklevel=2)
    for index, matrix in enumerate(matrices):
        if not isinstance(matrix, Tensor):
            kind = type(matrix).__name__
            raise TypeError(f"expected Tensor as element {index} in argument 0, but got {kind}")
        if matrix.dim() != 2:
            raise RuntimeError(f"Tensor dimension is {matrix.dim()}, expected 2 instead.")
    if not matrices:
        raise RuntimeError("chain_matmul(): Expected one or more matrices")
    if len(matrices) == 1:
        result = matrices[0].clone()
        return result if out is None else out.copy_(result)
    return multi_dot(matrices, out=out)


_CHAIN_MATMUL_DEPRECATED = (
    "torch.chain_matmul is deprecated and will be removed in a future PyTorch release. Use torch.linalg.multi_dot "
    "instead, which accepts a list of two or more tensors rather than multiple parameters."
)


@with_out("linalg_inv_ex")
def inv_ex(A: Tensor, *, check_errors: bool = False, out=None):  # noqa: N803
    """``(inverse, info)`` as ``torch.linalg.inv_ex`` (``info`` 0, or the singular pivot's
    index with a NaN-free undefined inverse, here zeros, unless ``check_errors``)."""
    A = as_tensor(A)  # noqa: N806
    try:
        return return_types.linalg_inv_ex(inv(A), _wrap(np.zeros(A.shape[:-2], np.int32)))
    except LinAlgError:
        if check_errors:
            raise
    info = np.asarray([_first_zero_pivot(matrix) for matrix in A._data.reshape(-1, *A.shape[-2:])], np.int32)
    inverses = _each_or_zeros(A, info, inv)
    return return_types.linalg_inv_ex(inverses, _wrap(info.reshape(A.shape[:-2])))


def _each_or_zeros(A: Tensor, info: np.ndarray, function) -> Tensor:  # noqa: N803
    """``function`` of each matrix of a batch where ``info`` is 0, zeros where it failed (the
    others keep their values and gradients, as PyTorch's ``_ex`` functions)."""
    matrices = A.reshape(-1, *A.shape[-2:])
    zeros = _wrap(np.zeros(A.shape[-2:], A._data.dtype))
    results = [function(matrices[k]) if not info[k] else zeros for k in range(len(info))]
    return _stack(results).reshape(A.shape) if results else _wrap(np.zeros(A.shape, A._data.dtype))


def diagonal(A: Tensor, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:  # noqa: N803
    """``A.diagonal(offset, dim1, dim2)``, with ``torch.linalg.diagonal``'s defaults (the last two)."""
    return as_tensor(A).diagonal(offset, dim1, dim2)


@with_out("linalg_matrix_rank")
def matrix_rank(A: Tensor, *, atol=None, rtol=None, hermitian: bool = False, out=None) -> Tensor:  # noqa: N803
    """The number of singular values above ``max(atol, rtol * largest)`` (int64, no gradient);
    follows ``torch.linalg.matrix_rank``."""
    A = _matrices(A, "torch.linalg.matrix_rank", square=False)  # noqa: N806
    guard_reads("matrix_rank()", A)
    values = np.linalg.svd(A._data, compute_uv=False)
    if rtol is None:  # as pinv's
        rtol = np.finfo(A._data.dtype).eps * max(A.shape[-2:]) if atol is None or atol <= 0 else 0.0
    cutoff = np.maximum(0.0 if atol is None else atol, rtol * (values[..., :1] if values.shape[-1] else 0.0))
    return _wrap((values > cutoff).sum(-1).astype(np.int64))


install(
    {
        "inverse": _inverse,
        "cholesky": _cholesky,
        "cholesky_solve": lambda self, L, upper=False: cholesky_solve(self, L, upper),  # noqa: N803
        "cholesky_inverse": lambda self, upper=False: cholesky_inverse(self, upper),
        "det": lambda self: det(self),
        "logdet": lambda self: logdet(self),
        "slogdet": _torch_slogdet,
        "svd": _torch_svd,
        "qr": _torch_qr,
        "lu": _torch_lu,
        "pinverse": _pinverse,
        "matrix_exp": lambda self: matrix_exp(self),
        "matrix_power": lambda self, n: matrix_power(self, n),
    }
)

__all__ = [
    "LinAlgError",
    "cholesky",
    "cholesky_ex",
    "cross",
    "det",
    "diagonal",
    "eigh",
    "eigvalsh",
    "inv",
    "inv_ex",
    "lstsq",
    "matrix_exp",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "multi_dot",
    "norm",
    "lu",
    "lu_factor",
    "lu_factor_ex",
    "lu_solve",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "solve_triangular",
    "svd",
    "svdvals",
    "vecdot",
    "vector_norm",
]
