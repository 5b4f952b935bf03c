"""``linalg.norm``/``linalg.matrix_norm`` of matrices (1, -1, inf, -inf, 2, -2, fro, nuc), and
``tril``/``triu`` of tensors holding inf or NaN where they are zeroed: values (exact, numpy's,
PyTorch's), PyTorch's errors, gradients (central differences in float64, PyTorch's), and replay
of a recorded tape equal to eager."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tapegrad as tg

from .gradcheck import analytic_gradients, numeric_gradients

INF = float("inf")
MATRIX_ORDS = [1, -1, INF, -INF, 2, -2, "fro", "nuc"]
A = np.array([[0.0, 1.0], [-1.0, 3.0]])
RNG = np.random.default_rng(11)
BATCH = RNG.normal(size=(2, 3, 4))
DIMS = [(0, 1), (1, 0), (2, 0), (-1, -2), (1, 2)]


# -- matrix norms -----------------------------------------------------------------------------


def test_matrix_norms_of_a_2x2_matrix():
    # A^T A = [[1, -3], [-3, 10]]: singular values sqrt((11 +- sqrt(117)) / 2), |det A| = 1.
    largest, smallest = math.sqrt((11 + math.sqrt(117)) / 2), math.sqrt((11 - math.sqrt(117)) / 2)
    expected = {1: 4.0, -1: 1.0, INF: 4.0, -INF: 1.0, "fro": math.sqrt(11), None: math.sqrt(11)}
    for ord, value in expected.items():  # noqa: A001
        assert tg.linalg.norm(tg.tensor(A), ord).item() == value, ord
        assert tg.linalg.norm(tg.tensor(A, requires_grad=True), ord).item() == value, ord
    spectral = {2: largest, -2: smallest, "nuc": math.sqrt(13)}  # (s1 + s2)^2 = 11 + 2 |det A|
    for ord, value in spectral.items():  # noqa: A001
        for x in (tg.tensor(A), tg.tensor(A, requires_grad=True)):
            np.testing.assert_allclose(tg.linalg.norm(x, ord).item(), value, rtol=1e-14)
            np.testing.assert_allclose(tg.linalg.matrix_norm(x, ord).item(), value, rtol=1e-14)


@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_batched_matrix_norms_equal_numpy(ord, dim, keepdim):  # noqa: A002
    got = tg.linalg.norm(tg.tensor(BATCH, requires_grad=True), ord, dim, keepdim)
    want = np.linalg.norm(BATCH, ord, axis=dim, keepdims=keepdim)
    assert tuple(got.shape) == want.shape
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-13)
    default = tg.linalg.matrix_norm(tg.tensor(BATCH), ord, keepdim=keepdim)
    np.testing.assert_allclose(default.numpy(), np.linalg.norm(BATCH, ord, axis=(-2, -1), keepdims=keepdim), rtol=1e-13)


def test_norm_with_ord_none_flattens_and_keeps_every_dimension():
    x = tg.tensor(BATCH)
    np.testing.assert_allclose(tg.linalg.norm(x).item(), np.sqrt((BATCH**2).sum()), rtol=1e-14)
    assert tuple(tg.linalg.norm(x, keepdim=True).shape) == (1, 1, 1)
    assert tuple(tg.linalg.vector_norm(x, keepdim=True).shape) == (1, 1, 1)
    assert tg.linalg.norm(tg.tensor([3.0, -4.0]), 1).item() == 7.0  # 1-D: a vector norm
    assert tuple(tg.linalg.norm(x, 1, dim=1).shape) == (2, 4)  # one dim: a vector norm


@pytest.mark.parametrize(
    ("shape", "kwargs", "error", "message"),
    [
        ((2, 2), {"ord": 0}, RuntimeError, "linalg.matrix_norm: Order 0 not supported."),
        ((2, 2), {"ord": 3}, RuntimeError, "linalg.matrix_norm: Order 3 not supported."),
        ((2, 2), {"ord": 0.5}, RuntimeError, "linalg.matrix_norm: Order 0.5 not supported."),
        ((2, 2), {"ord": "abc"}, RuntimeError, "linalg.matrix_norm: Order abc not supported."),
        ((2, 2), {"ord": "fro", "dim": 0}, RuntimeError, "linalg.matrix_norm: dim must be a 2-tuple. Got 0"),
        ((2, 2), {"ord": 2, "dim": (0, 0)}, RuntimeError, r"linalg.matrix_norm: dims must be different. Got \(0, 0\)"),
        ((2, 2), {"ord": 2, "dim": (1, -1)}, RuntimeError, r"dims must be different. Got \(1, 1\)"),
        (
            (2, 2),
            {"dim": (0, 1, 2)},
            RuntimeError,
            r"If dim is specified, it must be of length 1 or 2. Got \[0, 1, 2\]",
        ),
        ((2, 2), {"ord": 2, "dim": (0, 5)}, IndexError, r"expected to be in range of \[-2, 1\], but got 5"),
        ((2,), {"ord": "fro"}, RuntimeError, "linalg.matrix_norm: The input tensor A must have at least 2 dimensions."),
        ((2, 3, 4), {"ord": 2}, RuntimeError, "input must be 1D or 2D. Got 3D."),
    ],
)
def test_norm_errors(shape, kwargs, error, message):
    with pytest.raises(error, match=message):
        tg.linalg.norm(tg.ones(*shape), **kwargs)


def test_spectral_norm_of_non_finite_matrix_is_a_linalg_error():
    with pytest.raises(tg.linalg.LinAlgError, match="non-finite values"):
        tg.linalg.norm(tg.tensor([[np.nan, 1.0], [2.0, 3.0]]), 2)
    assert tg.linalg.norm(tg.tensor([[INF, 1.0], [2.0, 3.0]]), 1).item() == INF


@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
@pytest.mark.parametrize("dim", [(1, 2), (2, 0)], ids=str)
def test_matrix_norm_gradients_match_central_differences(ord, dim):  # noqa: A002
    arrays = [RNG.normal(size=(2, 3, 4))]  # distinct singular values, row/column sums with no ties

    def call(x):
        return tg.linalg.norm(x, ord, dim)

    weights = RNG.uniform(0.5, 1.5, size=np.linalg.norm(arrays[0], ord, axis=dim).shape)
    (want,) = numeric_gradients(call, arrays, weights)
    (got,) = analytic_gradients(call, arrays, weights)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_spectral_gradients_are_singular_vector_products():
    U, _, Vh = np.linalg.svd(A)  # noqa: N806
    for ord, want in ((2, np.outer(U[:, 0], Vh[0])), (-2, np.outer(U[:, 1], Vh[1])), ("nuc", U @ Vh)):  # noqa: A001
        x = tg.tensor(A, requires_grad=True)
        tg.linalg.norm(x, ord).backward()
        np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-14, atol=1e-15)
    x = tg.eye(2, dtype=tg.float64, requires_grad=True)  # a repeated largest value: amax's tie
    tg.linalg.norm(x, 2).backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0.5 * np.eye(2))


def test_float32_matrix_norms_stay_float32():
    for ord in MATRIX_ORDS:  # noqa: A001
        x = tg.tensor(A, dtype=tg.float32, requires_grad=True)
        result = tg.linalg.norm(x, ord)
        result.backward()
        assert result.dtype == tg.float32 and x.grad.dtype == tg.float32


@pytest.mark.parametrize("ord", MATRIX_ORDS + [None], ids=str)
@pytest.mark.parametrize("dim", [None, *DIMS], ids=str)
@pytest.mark.parametrize("keepdim", [False, True])
def test_matrix_norms_match_pytorch(ord, dim, keepdim):  # noqa: A002
    torch = pytest.importorskip("torch")
    data = A if dim is None else BATCH
    weights = RNG.uniform(0.5, 1.5, size=np.linalg.norm(data, ord, axis=dim or (0, 1), keepdims=keepdim).shape)
    ours = tg.tensor(data, requires_grad=True)
    theirs = torch.tensor(data, requires_grad=True)
    got = tg.linalg.norm(ours, ord, dim, keepdim)
    want = torch.linalg.norm(theirs, ord, dim, keepdim)
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-13)
    (got * tg.tensor(weights)).sum().backward()
    (want * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "data",
    [np.eye(3), np.zeros((2, 2)), np.array([[1.0, 2.0], [2.0, 4.0]]), np.array([[0.0, 2.0], [2.0, 0.0]])],
    ids=["identity", "zeros", "rank 1", "ties in sums"],
)
@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
def test_matrix_norm_gradients_at_ties_and_zeros_match_pytorch(data, ord):  # noqa: A002
    torch = pytest.importorskip("torch")
    ours, theirs = tg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    tg.linalg.matrix_norm(ours, ord).backward()
    torch.linalg.matrix_norm(theirs, ord).backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs", [{"ord": 0}, {"ord": 3}, {"ord": -0.5}, {"ord": "nuc", "dim": 0}, {"ord": 1, "dim": (0, 0)}], ids=str
)
def test_norm_error_messages_match_pytorch(kwargs):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as theirs:
        torch.linalg.norm(torch.tensor(A), **kwargs)
    with pytest.raises(RuntimeError) as ours:
        tg.linalg.norm(tg.tensor(A), **kwargs)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("ord", [1, -1, INF, -INF, "fro", None], ids=str)
def test_recorded_elementwise_norms_replay_at_new_inputs(ord):  # noqa: A002
    weights = tg.tensor([1.0, 2.0])

    def f(x):
        return (tg.linalg.norm(x, ord, dim=(2, 1)) * weights).sum()

    tape = tg.record(f, BATCH)
    other = RNG.normal(size=BATCH.shape)
    value, (grad,) = tape.value_and_grad(other)
    x = tg.tensor(other, requires_grad=True)
    eager = f(x)
    eager.backward()
    np.testing.assert_allclose(value.numpy(), eager.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-14)


@pytest.mark.parametrize("ord", [2, -2, "nuc"], ids=str)
def test_recorded_spectral_norms_guard_their_input(ord):  # noqa: A002
    def f(x):
        return (tg.linalg.norm(x, ord, dim=(2, 1)) * tg.tensor([1.0, 2.0])).sum()

    other = RNG.normal(size=BATCH.shape)
    for at, tape in ((BATCH, tg.record(f, BATCH)), (other, tg.record(f, BATCH, rerecord=True))):
        value, (grad,) = tape.value_and_grad(at)
        x = tg.tensor(at, requires_grad=True)
        eager = f(x)
        eager.backward()
        np.testing.assert_allclose(value.numpy(), eager.detach().numpy(), rtol=1e-14)
        np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-14, atol=1e-15)
    with pytest.raises(tg.GuardError, match="linalg.matrix_norm"):
        tg.record(f, BATCH).value_and_grad(other)


# -- tril / triu ------------------------------------------------------------------------------


def _keep(rows: int, columns: int, diagonal: int, lower: bool) -> np.ndarray:
    return np.tri(rows, columns, diagonal, dtype=bool) if lower else ~np.tri(rows, columns, diagonal - 1, dtype=bool)


def test_tril_of_inf_with_grad_is_zero_above():
    x = tg.tensor([[1.0, INF], [2.0, 3.0]], requires_grad=True)
    y = x.tril()
    np.testing.assert_array_equal(y.detach().numpy(), [[1.0, 0.0], [2.0, 3.0]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1.0, 0.0], [1.0, 1.0]])


def test_causal_mask_is_exact_zeros_below_the_diagonal():
    for requires_grad in (False, True):
        mask = tg.full((3, 3), -INF, dtype=tg.float64, requires_grad=requires_grad).triu(1)
        want = np.where(_keep(3, 3, 1, False), -INF, 0.0)
        np.testing.assert_array_equal(mask.detach().numpy(), want)
        assert not np.signbit(mask.detach().numpy()[~_keep(3, 3, 1, False)]).any()


@pytest.mark.parametrize("lower", [True, False], ids=["tril", "triu"])
@pytest.mark.parametrize("diagonal", range(-4, 6))
def test_triangles_of_non_finite_batches(lower, diagonal):
    data = RNG.normal(size=(2, 3, 4))
    data[0, 0, 3], data[1, 2, 0], data[0, 1, 1] = INF, np.nan, -INF
    keep = _keep(3, 4, diagonal, lower)
    x = tg.tensor(data, requires_grad=True)
    y = tg.tril(x, diagonal) if lower else x.triu(diagonal)
    np.testing.assert_array_equal(y.detach().numpy(), np.where(keep, data, 0.0))
    # An upstream gradient of inf/NaN where the triangle was zeroed reaches no element.
    upstream = np.where(keep, RNG.uniform(0.5, 1.5, size=data.shape), np.nan)
    y.backward(tg.tensor(upstream))
    np.testing.assert_array_equal(x.grad.numpy(), np.where(keep, upstream, 0.0))


@pytest.mark.parametrize("lower", [True, False], ids=["tril", "triu"])
@pytest.mark.parametrize("diagonal", [-1, 0, 2])
def test_triangle_gradients_match_central_differences(lower, diagonal):
    arrays = [RNG.normal(size=(2, 3, 4))]

    def call(x):
        return x.tril(diagonal) if lower else x.triu(diagonal)

    weights = RNG.uniform(0.5, 1.5, size=(2, 3, 4))
    (want,) = numeric_gradients(call, arrays, weights)
    (got,) = analytic_gradients(call, arrays, weights)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("lower", [True, False], ids=["tril", "triu"])
@pytest.mark.parametrize("diagonal", [-2, 0, 1, 4])
def test_triangles_match_pytorch(lower, diagonal):
    torch = pytest.importorskip("torch")
    data = RNG.normal(size=(2, 3, 4))
    data[0, 0, 3], data[1, 2, 0], data[1, 0, 0] = INF, np.nan, -INF
    ours, theirs = tg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    got = ours.tril(diagonal) if lower else ours.triu(diagonal)
    want = theirs.tril(diagonal) if lower else theirs.triu(diagonal)
    np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
    weights = RNG.uniform(0.5, 1.5, size=data.shape)
    got.backward(tg.tensor(weights))
    want.backward(torch.tensor(weights))
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


@pytest.mark.parametrize("lower", [True, False], ids=["tril", "triu"])
def test_recorded_triangles_replay_like_eager(lower):
    weights = tg.tensor(RNG.uniform(0.5, 1.5, size=(3, 4)))

    def f(x):
        return ((x.tril(-1) if lower else x.triu(1)) * weights).sum()

    tape = tg.record(f, RNG.normal(size=(2, 3, 4)))
    other = RNG.normal(size=(2, 3, 4))
    other[0, 0, 0], other[1, 2, 2], other[0, 1, 1] = INF, np.nan, -INF  # the diagonal: in neither
    value, (grad,) = tape.value_and_grad(other)
    x = tg.tensor(other, requires_grad=True)
    eager = f(x)
    eager.backward()
    assert np.isfinite(eager.item())
    # (the replay's sum adds in another order than numpy's: equal to rounding, which is relative
    # to the terms' magnitudes: a sum that cancels to near 0 differed by 1.1e-14 of itself)
    terms = np.abs(np.nan_to_num(other, posinf=0.0, neginf=0.0)).sum() * weights.numpy().max()
    np.testing.assert_allclose(value.numpy(), eager.detach().numpy(), rtol=1e-14, atol=1e-15 * terms)
    np.testing.assert_array_equal(grad.numpy(), x.grad.numpy())
    np.testing.assert_array_equal(
        grad.numpy(), np.broadcast_to(np.where(_keep(3, 4, -1 if lower else 1, lower), weights.numpy(), 0.0), (2, 3, 4))
    )


@pytest.mark.parametrize("ord_", [2, -2, "nuc"])
def test_a_second_derivative_through_the_singular_values_raises_rather_than_vanish(ord_):
    """The singular vectors are numpy's constants: the gradient is right, its derivative would be
    0 where PyTorch's is not, so create_graph refuses."""
    A = tg.tensor([[0.0, 1.0], [-1.0, 3.0]], dtype=tg.float64, requires_grad=True)  # noqa: N806
    with pytest.raises(NotImplementedError, match="create_graph=True is not supported through linalg.matrix_norm"):
        tg.autograd.grad(tg.linalg.matrix_norm(A, ord_), A, create_graph=True)
    (gradient,) = tg.autograd.grad(tg.linalg.matrix_norm(A, ord_), A)  # first order: fine
    assert np.isfinite(gradient.numpy()).all()


@pytest.mark.parametrize(
    "order, dim, keepdim",
    [
        (-1, None, False),
        (-2, 1, False),
        (-0.5, 0, True),
        (-math.inf, None, False),
        (-math.inf, 1, True),
        (-1, (0, 1), False),
    ],
)
@pytest.mark.parametrize("with_zero", [False, True])
def test_negative_orders_match_pytorch(order, dim, keepdim, with_zero):
    """Norms of negative order (they raised NotImplementedError): ``(sum |x|^p)^(1/p)``, the
    smallest magnitude for -inf; an element 0 makes the norm 0 and passes no gradient."""
    torch = pytest.importorskip("torch")
    values = np.array([[1.0, -2.0, 0.5], [3.0, 0.0 if with_zero else 0.25, -1.5]])
    results = []
    for m in (tg, torch):
        x = m.tensor(values, requires_grad=True)
        norm = m.linalg.vector_norm(x, order, dim=dim, keepdim=keepdim)
        norm.sum().backward()
        results.append((norm.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-15)


def test_a_negative_order_is_the_formula():
    x = tg.tensor([1.0, -2.0, 4.0], dtype=tg.float64)
    assert x.norm(-1).item() == pytest.approx(1 / (1 + 1 / 2 + 1 / 4))
    assert x.norm(-math.inf).item() == 1.0


@pytest.mark.parametrize(
    "order, x, incoming, expected",
    [
        # At a norm of 0 PyTorch masks the derivative to 0 and multiplies: NaN * 0 is NaN. (The
        # kernel returned early there, so the gradient was 0, and x / x.norm() at 0 gave inf.)
        (2, [0.0, 0.0, 0.0], math.nan, [math.nan] * 3),
        (1, [0.0, 0.0, 0.0], math.inf, [math.nan] * 3),
        (0.5, [0.0, 0.0, 0.0], math.nan, [math.nan] * 3),
        (math.inf, [0.0, 0.0, 0.0], math.nan, [math.nan] * 3),
        (3, [0.0, 0.0, 0.0], math.nan, [0.0] * 3),  # here PyTorch masks incoming / norm^(p-1)
        # Elements the derivative masks (zeros, the max norm's others) take incoming * 0 too.
        (math.inf, [0.0, 3.0, -4.0], math.inf, [math.nan, math.nan, -math.inf]),
        (3, [0.0, 0.0, 2.0], math.nan, [math.nan] * 3),
        (1.5, [0.0, 3.0, -4.0], math.inf, [math.nan, math.inf, -math.inf]),
        (2, [0.0, 0.0, 0.0], 1.0, [0.0] * 3),
    ],
)
def test_a_non_finite_incoming_gradient_reaches_masked_elements_as_nan(order, x, incoming, expected):
    t = tg.tensor(x, dtype=tg.float64, requires_grad=True)
    tg.linalg.vector_norm(t, ord=order).backward(tg.tensor(incoming, dtype=tg.float64))
    np.testing.assert_array_equal(t.grad.numpy(), expected)


def test_a_zero_vector_divided_by_its_norm_has_a_nan_gradient():
    y = tg.zeros(3, dtype=tg.float64, requires_grad=True)
    (y / y.norm()).sum().backward()
    assert np.isnan(y.grad.numpy()).all()
