"""torch.linalg's decompositions and the functions built on them (``tapegrad/_decompositions.py``,
``linalg.py``): values against numpy, first and second derivatives against central
differences in float64, and everything against PyTorch where it is installed.

Eigenvectors and singular vectors are defined up to sign (LAPACK builds differ in the signs they
pick), so the losses read them only through sign-free combinations: ``V diag(d) V^T`` and
``U diag(d) Vh``."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

RNG = np.random.default_rng(11)


def _spd(n: int, batch: tuple = ()) -> np.ndarray:
    q = RNG.standard_normal((*batch, n, n))
    return q @ np.swapaxes(q, -1, -2) + n * np.eye(n)


def _eigh_invariant(m, a):
    values, vectors = m.linalg.eigh(a)
    weights = m.tensor(np.linspace(-1.0, 2.0, a.shape[-1]))
    return values, (vectors * weights) @ vectors.mT


def _svd_invariant(m, a):
    U, S, Vh = m.linalg.svd(a, full_matrices=False)  # noqa: N806
    weights = m.tensor(np.linspace(0.5, 2.0, S.shape[-1]))
    return S, (U * weights) @ Vh


CASES = {
    "cholesky": (lambda m, a: m.linalg.cholesky(a), _spd(4)),
    "cholesky upper, batched": (lambda m, a: m.linalg.cholesky(a, upper=True), _spd(3, (2,))),
    "solve_triangular lower": (
        lambda m, a, b: m.linalg.solve_triangular(a, b, upper=False),
        np.tril(RNG.standard_normal((4, 4))) + 3 * np.eye(4),
        RNG.standard_normal((4, 2)),
    ),
    "solve_triangular upper, right, unit": (
        lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True, left=False, unitriangular=True),
        RNG.standard_normal((3, 3)),
        RNG.standard_normal((2, 3)),
    ),
    "solve_triangular broadcast batch": (
        lambda m, a, b: m.linalg.solve_triangular(a, b, upper=True),
        np.triu(RNG.standard_normal((3, 3))) + 3 * np.eye(3),
        RNG.standard_normal((2, 3, 1)),
    ),
    "cholesky_solve": (
        lambda m, b, c: m.cholesky_solve(b, c),
        RNG.standard_normal((3, 2)),
        np.linalg.cholesky(_spd(3)),
    ),
    "cholesky_inverse upper": (lambda m, c: m.cholesky_inverse(c, upper=True), np.linalg.cholesky(_spd(3)).T),
    "det": (lambda m, a: m.linalg.det(a), RNG.standard_normal((3, 3))),
    "det batched": (lambda m, a: m.det(a), RNG.standard_normal((2, 3, 3))),
    "slogdet": (lambda m, a: m.linalg.slogdet(a).logabsdet, RNG.standard_normal((3, 3))),
    "logdet": (lambda m, a: m.logdet(a), _spd(3)),
    "eigh": (_eigh_invariant, _spd(4)),
    "eigh batched": (_eigh_invariant, _spd(3, (2,))),
    "eigvalsh upper": (lambda m, a: m.linalg.eigvalsh(a, UPLO="U"), _spd(4)),
    "svd square": (_svd_invariant, RNG.standard_normal((3, 3))),
    "svd tall": (_svd_invariant, RNG.standard_normal((5, 3))),
    "svd wide": (_svd_invariant, RNG.standard_normal((3, 5))),
    "svdvals": (lambda m, a: m.linalg.svdvals(a), RNG.standard_normal((4, 3))),
    "qr tall": (lambda m, a: tuple(m.linalg.qr(a)), RNG.standard_normal((5, 3))),
    "qr wide": (lambda m, a: tuple(m.linalg.qr(a)), RNG.standard_normal((3, 5))),
    "qr square complete, batched": (lambda m, a: tuple(m.linalg.qr(a, "complete")), RNG.standard_normal((2, 3, 3))),
    "qr, R alone": (lambda m, a: m.linalg.qr(a).R, RNG.standard_normal((4, 3))),
    "lu_factor": (lambda m, a: m.linalg.lu_factor(a).LU, RNG.standard_normal((4, 4))),
    "lu tall": (lambda m, a: tuple(m.linalg.lu(a))[1:], RNG.standard_normal((5, 3))),
    "lu wide, batched": (lambda m, a: tuple(m.linalg.lu(a))[1:], RNG.standard_normal((2, 3, 5))),
    "lu_solve": (
        lambda m, a, b: m.linalg.lu_solve(*m.linalg.lu_factor(a), b),
        RNG.standard_normal((3, 3)) + 2 * np.eye(3),
        RNG.standard_normal((3, 2)),
    ),
    "lu_solve right, adjoint": (
        lambda m, a, b: m.linalg.lu_solve(*m.linalg.lu_factor(a), b, left=False, adjoint=True),
        RNG.standard_normal((3, 3)) + 2 * np.eye(3),
        RNG.standard_normal((2, 3)),
    ),
    "pinv tall": (lambda m, a: m.linalg.pinv(a), RNG.standard_normal((5, 3))),
    "pinverse wide": (lambda m, a: m.pinverse(a), RNG.standard_normal((2, 4))),
    "lstsq": (lambda m, a, b: m.linalg.lstsq(a, b).solution, RNG.standard_normal((6, 3)), RNG.standard_normal((6, 2))),
    "matrix_exp": (lambda m, a: m.linalg.matrix_exp(a), 0.5 * RNG.standard_normal((3, 3))),
    "matrix_power 3": (lambda m, a: m.linalg.matrix_power(a, 3), RNG.standard_normal((3, 3))),
    "matrix_power -2": (lambda m, a: m.linalg.matrix_power(a, -2), RNG.standard_normal((3, 3)) + 3 * np.eye(3)),
    "multi_dot": (
        lambda m, a, b, c: m.linalg.multi_dot([a, b, c]),
        RNG.standard_normal(3),
        RNG.standard_normal((3, 4)),
        RNG.standard_normal((4, 2)),
    ),
}


def _loss(m, outputs):
    """A weighted sum of every floating output, so that each element's gradient differs."""
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    total = 0.0
    for output in outputs:
        weights = np.cos(np.arange(output.numel()) + 0.3).reshape(tuple(output.shape))
        total = total + (output * m.tensor(weights)).sum()
    return total


def _derivatives(m, case: str, arrays: list) -> list:
    """Outputs, first derivatives and the second derivatives of sum(g^2) (create_graph)."""
    function = CASES[case][0]
    inputs = [m.tensor(array, requires_grad=True) for array in arrays]
    outputs = function(m, *inputs)
    grads = m.autograd.grad(_loss(m, outputs), inputs, create_graph=True)
    second = m.autograd.grad(sum((grad * grad).sum() for grad in grads), inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return [output.detach().numpy() for output in outputs] + [g.detach().numpy() for g in (*grads, *second)]


# Functions of symmetric matrices read one triangle; PyTorch's gradient is the symmetric one,
# whose pairs of entries are checked together: along the symmetric direction E_ij + E_ji.
SYMMETRIC = {"cholesky", "cholesky upper, batched", "eigh", "eigh batched", "eigvalsh upper"}


# cholesky_solve's gradient with respect to the factor is PyTorch's: as if all of it made
# A = L L^T (its forward reads the triangle only). Central differences check it on that function.
REFERENCES = {
    "cholesky_solve": lambda m, b, c: m.linalg.solve(c @ c.mT, b),
    "cholesky_inverse upper": lambda m, c: m.linalg.inv(c.mT @ c),
}


def _central(function, arrays: list, symmetric: bool = False, eps: float = 1e-6) -> list:
    """Central differences of ``function(arrays) -> float`` with respect to each array (for
    ``symmetric`` matrices, along E_ij + E_ji)."""
    result = []
    for index, array in enumerate(arrays):
        gradient = np.zeros_like(array)
        for position in np.ndindex(array.shape):
            direction = np.zeros_like(array)
            direction[position] = 1.0
            if symmetric:
                mirrored = (*position[:-2], position[-1], position[-2])
                direction[mirrored] = 1.0
            shifted = [a.copy() for a in arrays]
            shifted[index] += eps * direction
            up = function(shifted)
            shifted[index] -= 2 * eps * direction
            gradient[position] = (up - function(shifted)) / (2 * eps)
        result.append(gradient)
    return result


def _along_symmetric_directions(gradient: np.ndarray) -> np.ndarray:
    """What a gradient gives along E_ij + E_ji: G_ij + G_ji off the diagonal, G_ii on it."""
    n = gradient.shape[-1]
    return gradient + np.swapaxes(gradient, -1, -2) - gradient * np.eye(n)


@pytest.mark.parametrize("case", CASES)
def test_first_and_second_derivatives_are_central_differences(case):
    arrays = CASES[case][1:]
    function = REFERENCES.get(case, CASES[case][0])

    def loss(values):
        return float(_loss(tg, function(tg, *[tg.tensor(v) for v in values])))

    def gradient_statistic(values):
        inputs = [tg.tensor(v, requires_grad=True) for v in values]
        grads = tg.autograd.grad(_loss(tg, function(tg, *inputs)), inputs)
        return float(sum((grad * grad).sum() for grad in grads))

    ours = _derivatives(tg, case, arrays)
    count = len(arrays)
    first, second = ours[-2 * count : -count], ours[-count:]
    symmetric = case in SYMMETRIC
    if symmetric:
        first, second = (
            [_along_symmetric_directions(g) for g in first],
            [_along_symmetric_directions(g) for g in second],
        )
    for got, want in zip(first, _central(loss, arrays, symmetric)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    for got, want in zip(second, _central(gradient_statistic, arrays, symmetric)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_values_and_derivatives_match_pytorch(case):
    torch = pytest.importorskip("torch")
    arrays = CASES[case][1:]
    for ours, theirs in zip(_derivatives(tg, case, arrays), _derivatives(torch, case, arrays)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-11)


def test_float32_stays_float32():
    a = tg.tensor(_spd(3), dtype=tg.float32, requires_grad=True)
    outputs = [
        tg.linalg.cholesky(a),
        tg.linalg.det(a),
        tg.linalg.eigh(a).eigenvalues,
        tg.linalg.svd(a).S,
        tg.linalg.pinv(a),
    ]
    assert {output.dtype for output in outputs} == {tg.float32}
    sum(output.sum() for output in outputs).backward()
    assert a.grad.dtype == tg.float32


def test_det_of_a_singular_matrix_has_the_cofactors_as_gradient():
    a = tg.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]], dtype=tg.float64, requires_grad=True)
    tg.linalg.det(a).backward()
    data = a.detach().numpy()
    cofactors = np.array(
        [[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(data, i, 0), j, 1)) for j in range(3)] for i in range(3)]
    )
    np.testing.assert_allclose(a.grad.numpy(), cofactors, atol=1e-12)


def test_return_types_and_torch_names():
    a = tg.tensor(_spd(3))
    assert tg.linalg.eigh(a)._fields == ("eigenvalues", "eigenvectors")
    assert tg.linalg.svd(a)._fields == ("U", "S", "Vh")
    assert tg.svd(a)._fields == ("U", "S", "V")
    np.testing.assert_allclose((tg.svd(a).V @ tg.linalg.svd(a).Vh).numpy(), np.eye(3), atol=1e-12)
    assert tg.linalg.slogdet(a)._fields == ("sign", "logabsdet")
    solution = tg.linalg.lstsq(a, a)
    assert solution._fields == ("solution", "residuals", "rank", "singular_values")
    assert int(solution.rank) == 3 and solution.rank.dtype == tg.int64
    assert tg.linalg.cholesky_ex(a).info.dtype == tg.int32
    assert int(tg.linalg.matrix_rank(tg.ones(3, 3))) == 1
    np.testing.assert_allclose(a.det().item(), np.linalg.det(a.numpy()))


def test_errors_are_pytorchs():
    with pytest.raises(tg.linalg.LinAlgError, match=r"the leading minor of order 2 is not positive-definite"):
        tg.linalg.cholesky(tg.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(tg.linalg.LinAlgError, match=r"\(Batch element 1\): The factorization could not be completed"):
        tg.linalg.cholesky(tg.stack([tg.eye(2), tg.tensor([[1.0, 2.0], [2.0, 1.0]])]))
    assert tg.linalg.cholesky_ex(tg.tensor([[1.0, 2.0], [2.0, 1.0]])).info.item() == 2
    with pytest.raises(RuntimeError, match="A must be batches of square matrices, but they are 2 by 3 matrices"):
        tg.linalg.det(tg.ones(2, 3))
    with pytest.raises(RuntimeError, match=r"Incompatible shapes of A and B for the equation AX = B \(2x2 and 3x1\)"):
        tg.linalg.solve_triangular(tg.eye(2), tg.ones(3, 1), upper=True)
    with pytest.raises(RuntimeError, match="Expected a floating point or complex tensor as input. Got Long"):
        tg.linalg.det(tg.ones(3, 3, dtype=tg.int64))
    with pytest.raises(RuntimeError, match="expected at least 2 tensors but got 1"):
        tg.linalg.multi_dot([tg.ones(2, 2)])
    with pytest.raises(tg.linalg.LinAlgError, match="non-finite values"):
        tg.linalg.svd(tg.tensor([[float("nan"), 1.0], [1.0, 1.0]]))


@pytest.mark.parametrize(
    "mode, shape, message",
    [
        ("r", (4, 3), "not computed when mode='r'"),
        ("complete", (4, 3), "not differentiable when mode='complete' and nrows > ncols"),
    ],
)
def test_qr_backward_refuses_where_q_is_not_determined_as_pytorchs(mode, shape, message):
    a = tg.tensor(RNG.standard_normal(shape), requires_grad=True)
    q, r = tg.linalg.qr(a, mode)
    assert tuple(q.shape) == ((0,) if mode == "r" else (4, 4))
    with pytest.raises(RuntimeError, match=message):
        r.sum().backward()
    with pytest.raises(RuntimeError, match="qr received unrecognized mode 'full'"):
        tg.linalg.qr(a, "full")
    assert tg.linalg.qr(a)._fields == ("Q", "R")
    with pytest.warns(UserWarning, match="torch.qr is deprecated"):
        assert tuple(a.qr(some=False).Q.shape) == (4, 4)
        assert tg.qr(a)._fields == ("Q", "R")


def test_lu_names_pivots_and_errors_follow_pytorch():
    torch = pytest.importorskip("torch")
    a = RNG.standard_normal((2, 3, 3))
    for ours, theirs in (
        (tg.linalg.lu_factor(tg.tensor(a)), torch.linalg.lu_factor(torch.tensor(a))),
        (tg.linalg.lu(tg.tensor(a)), torch.linalg.lu(torch.tensor(a))),
        (tg.lu_unpack(*tg.linalg.lu_factor(tg.tensor(a))), torch.lu_unpack(*torch.linalg.lu_factor(torch.tensor(a)))),
    ):
        assert type(ours).__name__ == type(theirs).__name__
        for x, y in zip(ours, theirs):
            assert str(x.dtype).split(".")[-1] == str(y.dtype).split(".")[-1]
            np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-12)
    with pytest.warns(UserWarning, match="torch.lu is deprecated"):
        np.testing.assert_array_equal(
            tg.tensor(a).lu()[1].numpy(), torch.linalg.lu_factor(torch.tensor(a)).pivots.numpy()
        )
    np.testing.assert_array_equal(tg.linalg.lu_factor_ex(tg.zeros(2, 3, 3)).info.numpy(), [1, 1])
    with pytest.raises(RuntimeError, match=r"torch.linalg.lu_factor: U\[1,1\] is zero"):
        tg.linalg.lu_factor(tg.zeros(3, 3))
    with pytest.raises(RuntimeError, match="LU without pivoting is not implemented on the CPU"):
        tg.linalg.lu_factor(tg.eye(3), pivot=False)


def test_an_output_changed_in_place_fails_the_backward():
    a = tg.tensor(_spd(3), requires_grad=True)
    factor = tg.linalg.cholesky(a)
    factor.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        factor.sum().backward()


def _review_cases(m):
    """What a review of this module found differing from PyTorch, as values."""
    results = []
    eye = m.eye(3, dtype=m.float64, requires_grad=True)
    (m.linalg.svdvals(eye).sum() + m.linalg.eigvalsh(eye).sum()).backward()
    results.append(eye.grad)  # (NaN from the unused vectors' zero gaps)
    A = m.tensor([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]], dtype=m.float64, requires_grad=True)  # noqa: N806
    (g,) = m.autograd.grad(m.linalg.det(A) + (A**2).sum(), A, create_graph=True)
    results.append(m.autograd.grad(g[2, 2] + g[0, 0], A)[0])  # a second derivative at a singular matrix
    batch = m.tensor([[[2.0, 1.0], [1.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]], dtype=m.float64)
    results.append(m.linalg.lstsq(batch, m.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=m.float64)).solution)
    tall = m.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]], dtype=m.float64)
    rhs = m.tensor([[1.0], [2.0], [2.5]], dtype=m.float64)
    for driver in ("gelsd", "gels", "gelss"):
        solved = m.linalg.lstsq(tall, rhs, driver=driver)
        results += [solved.residuals, solved.rank, solved.singular_values]
    negative = m.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=m.float64, requires_grad=True)
    m.logdet(negative).backward()
    results.append(negative.grad)  # (the value is NaN; its gradient 0)
    results += [t.shape for t in m.svd(m.ones(2, 3, dtype=m.float64), compute_uv=False)]
    failing = m.tensor([[[4.0, 0.0], [0.0, 4.0]], [[1.0, 2.0], [2.0, 1.0]]], dtype=m.float64)
    results += [m.linalg.inv_ex(failing).inverse[0], m.linalg.cholesky_ex(failing).L[0]]
    square = m.tensor([[1.0, 0.0], [0.0, 1e-20]], dtype=m.float64)
    results += [m.linalg.pinv(square, atol=0.0), m.linalg.matrix_rank(square, atol=0.0)]
    power = m.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=m.float64, requires_grad=True)
    m.linalg.matrix_power(power, 0).sum().backward()
    results.append(power.grad)
    with_nan = m.tensor([[float("nan"), 2.0], [3.0, 4.0]], dtype=m.float64, requires_grad=True)
    identities = m.linalg.matrix_power(with_nan, 0)  # the identity, NaN or not
    identities.sum().backward()
    results += [identities, with_nan.grad]
    results.append(
        m.linalg.solve_triangular(m.eye(2, dtype=m.float64), m.zeros(0, 2, 1, dtype=m.float64), upper=True).shape
    )
    return [value if not hasattr(value, "detach") else value.detach().numpy() for value in results]


def test_what_a_review_found_matches_pytorch():
    torch = pytest.importorskip("torch")
    for ours, theirs in zip(_review_cases(tg), _review_cases(torch)):
        if isinstance(theirs, np.ndarray):
            np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
        else:
            assert tuple(ours) == tuple(theirs)


def test_cholesky_of_nan_and_lstsq_of_other_ranks_raise():
    with pytest.raises(tg.linalg.LinAlgError, match="is not positive-definite"):
        tg.linalg.cholesky(tg.tensor([[float("nan"), 0.0], [0.0, 1.0]]))
    with pytest.raises(RuntimeError, match=r"input.dim\(\) must be greater or equal to other.dim\(\)"):
        tg.linalg.lstsq(tg.eye(3), tg.ones(2, 3, 2))


def test_a_singular_triangular_solve_divides_by_zero_as_pytorchs():
    # scipy raised LinAlgError at a zero on the diagonal; PyTorch's trsm gives infinities
    a, b = tg.tensor([[1.0, 2.0], [0.0, 0.0]]), tg.tensor([[1.0], [1.0]])
    np.testing.assert_array_equal(tg.linalg.solve_triangular(a, b, upper=True).numpy().ravel(), [-np.inf, np.inf])
    np.testing.assert_array_equal(
        tg.linalg.solve_triangular(a.T, b.T, upper=False, left=False).numpy().ravel(), [-np.inf, np.inf]
    )
    x = tg.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]], dtype=tg.float64, requires_grad=True)
    q, r = tg.linalg.qr(x)  # rank 1: its backward solves with a (near) singular R, as PyTorch's does
    (q.sum() + r.sum()).backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("shape", [(2, 0, 3, 4), (0, 3), (3, 0), (2, 3, 0)])
def test_lu_factor_of_empty_matrices_and_batches(shape):
    # the info of no diagonal took argmax of nothing; a batch of empty matrices reshaped by -1
    result = tg.linalg.lu_factor_ex(tg.zeros(*shape))
    assert tuple(result.LU.shape) == shape
    assert tuple(result.pivots.shape) == (*shape[:-2], min(shape[-2:]))
    assert not result.info.numpy().any()


def test_pinv_of_a_hermitian_matrix_differentiates_the_whole_matrix():
    # PyTorch's pinv_backward differentiates the matrix as given; the gradient here was folded
    # onto the lower triangle the value reads (zeros above the diagonal), which agrees only
    # along symmetric directions: an optimizer drifted off symmetry.
    rng = np.random.default_rng(3)
    m = rng.standard_normal((3, 3))
    weights = tg.tensor(rng.standard_normal((3, 3)))
    gradients = []
    for hermitian, matrix in ((True, m @ m.T + np.eye(3)), (False, m @ m.T + np.eye(3))):
        A = tg.tensor(matrix, requires_grad=True)  # noqa: N806
        (tg.linalg.pinv(A, hermitian=hermitian) * weights).sum().backward()
        gradients.append(A.grad.numpy())
    np.testing.assert_allclose(gradients[0], gradients[1], rtol=1e-10, atol=1e-12)
    # The value still reads the lower triangle alone.
    lower = np.tril(m) + np.tril(m, -1).T
    np.testing.assert_allclose(tg.linalg.pinv(tg.tensor(m), hermitian=True).numpy(), np.linalg.pinv(lower), rtol=1e-10)


@pytest.mark.parametrize("shape", [(0, 0), (2, 0, 0), (0, 3, 3), (3, 0), (0, 2)])
def test_lu_of_empty_matrices(shape):
    # reshape(-1, 0) cannot infer a batch beside a 0: a ValueError from numpy for 0x0 matrices
    m, n = shape[-2], shape[-1]
    P, L, U = tg.linalg.lu(tg.zeros(*shape, dtype=tg.float64))  # noqa: N806
    batch = shape[:-2]
    assert tuple(P.shape) == (*batch, m, m)
    assert tuple(L.shape) == (*batch, m, min(m, n)) and tuple(U.shape) == (*batch, min(m, n), n)
