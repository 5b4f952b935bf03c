"""``torch.linalg``: norms of vectors and matrices (built from tapegrad's ``norm``, ``abs``,
``sum``, ``amax``/``amin``, and numpy's SVD for the spectral and nuclear norms), ``vecdot``,
``cross``, and ``solve``/``inv`` (``autograd.Function``s over numpy.linalg whose backward is made
of differentiable ops, so that ``create_graph`` passes through them)."""

from __future__ import annotations

import numpy as np

from . import _composites
from ._record import broadcast_shape, name_node
from .autograd.function import Function
from .tensor import Tensor, _normalize_dim, _wrap, as_tensor, guard_reads, install, on_tape


class LinAlgError(RuntimeError):
    """A linear-algebra routine failed on its input (a singular matrix); follows
    ``torch.linalg.LinAlgError``."""


def vector_norm(x: Tensor, ord: float = 2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002
    """The ``ord``-norm of ``x`` flattened (``dim=None``) or along ``dim`` (an int or a tuple);
    follows ``torch.linalg.vector_norm``. With ``keepdim`` the reduced dimensions stay, as 1s
    (all of them for ``dim=None``). ``dtype``: ``x`` is cast to it before the norm is taken."""
    if dim is None:
        result = x.reshape(-1).norm(ord, dim=0, dtype=dtype)
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
        # The solution is saved as the output it is (as PyTorch's node saves it): a change in
        # place then fails the backward, and under create_graph it stands at its row, so the
        # second derivative flows through it.
        result = _wrap(X.astype(np.result_type(A._data, B._data)))
        ctx.save_for_backward(A, result)
        return result

    @staticmethod
    def backward(ctx, grad):
        A, X = ctx.saved_tensors  # noqa: N806
        grad_B = _Solve.apply(A.mT, grad)  # noqa: N806
        grad_A = -(grad_B @ X.mT) if ctx.needs_input_grad[0] else None  # noqa: N806
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
        inverse = _wrap(inverse.astype(A._data.dtype))
        ctx.save_for_backward(inverse)  # the output itself, as in _Solve
        return inverse

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        inverse_T = inverse.mT  # noqa: N806
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

__all__ = ["LinAlgError", "cross", "inv", "matrix_norm", "norm", "solve", "vecdot", "vector_norm"]
