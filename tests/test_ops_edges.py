"""The ops beyond the core against PyTorch where they are easy to get wrong: ties, NaN, zeros,
0-d and empty tensors, non-contiguous inputs, several dimensions at once; their grad_fn names;
and PyTorch's errors for bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import tapegrad as tg  # noqa: E402
from tapegrad._examples import _assigned  # noqa: E402

TIES = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
NAN = np.array([np.nan, 0.5])
RNG = np.random.default_rng(3)

# (name, function of (module, *tensors), input arrays)
EDGES = [
    ("max ties share", lambda m, x: x.max(), TIES),
    ("amax ties share", lambda m, x: x.amax(1), TIES),
    ("max(dim) ties: first wins", lambda m, x: x.max(1).values, TIES),
    ("min(dim) ties", lambda m, x: x.min(0)[0], np.array([[1.0, 1.0], [1.0, 0.0]])),
    ("amax of NaN", lambda m, x: x.amax(), NAN),
    # max() and min() of all elements share a NaN's gradient among the NaNs; amax makes it NaN
    ("max of NaN", lambda m, x: x.max(), np.array([1.0, np.nan, 3.0])),
    ("min of two NaNs", lambda m, x: x.min(), np.array([np.nan, 1.0, np.nan])),
    # dtype= casts before the op: its gradient comes back through the cast
    ("softmax dtype=", lambda m, x: x.softmax(1, dtype=m.float64), RNG.random((2, 3))),
    ("log_softmax dtype=", lambda m, x: m.log_softmax(x, 1, dtype=m.float64), RNG.random((2, 3))),
    ("softmax dtype= large", lambda m, x: m.softmax(x, 0, dtype=m.float64), RNG.random((300, 40))),
    ("cumsum dtype=", lambda m, x: x.cumsum(1, dtype=m.float64), RNG.random((2, 3))),
    # sign, and the sgn in abs's and the 1-norm's gradients, are 0 at NaN; |x|^(p-1) is 0 at 0
    ("sign of NaN", lambda m, x: m.sign(x) * x, np.array([np.nan, -2.0, 0.0, 3.0])),
    ("abs at NaN", lambda m, x: x.abs(), np.array([np.nan, -2.0, 0.0, 3.0])),
    ("1-norm at NaN", lambda m, x: x.norm(1), np.array([np.nan, -2.0, 0.0, 3.0])),
    ("0.5-norm at zeros", lambda m, x: x.norm(0.5), np.array([0.0, -2.0, 0.0, 3.0])),
    (  # an ignored row's loss is 0, whatever its class 0 holds
        "cross_entropy none, ignored row with -inf",
        lambda m, x: m.nn.functional.cross_entropy(x, m.tensor([-100, 2]), reduction="none"),
        np.array([[-np.inf, 0.0, 1.0], [0.5, 1.0, 2.0]]),
    ),
    ("maximum ties", lambda m, x, y: m.maximum(x, y), np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])),
    ("maximum NaN", lambda m, x, y: m.maximum(x, y), NAN, np.array([1.0, np.nan])),
    ("minimum ties", lambda m, x, y: m.minimum(x, y), np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])),
    ("clamp at the bounds", lambda m, x: x.clamp(1.0, 2.0), np.array([0.0, 1.0, 1.5, 2.0, 3.0])),
    ("clamp NaN", lambda m, x: x.clamp(0, 1), NAN),
    ("prod with zeros", lambda m, x: x.prod(1), np.array([[0.0, 0.0, 2.0], [0.0, 3.0, 2.0], [1.0, 2.0, 3.0]])),
    ("prod 0-d", lambda m, x: x.prod(), np.array(3.0)),
    ("prod keepdim", lambda m, x: x.prod(1, keepdim=True), np.arange(1.0, 7.0).reshape(2, 3)),
    ("prod of empty dim", lambda m, x: x.prod(0), np.zeros((0, 3))),
    ("cumsum 0-d", lambda m, x: x.cumsum(0), np.array(3.0)),
    ("cumsum sliced", lambda m, x: x[:, ::2].cumsum(1), np.arange(12.0).reshape(3, 4)),
    ("var 0-d", lambda m, x: x.var(unbiased=False), np.array(3.0)),
    ("var of two dims", lambda m, x: x.var((0, 2)), RNG.random((2, 3, 4))),
    ("std correction", lambda m, x: x.std(1, correction=0), RNG.random((3, 4))),
    ("std transposed", lambda m, x: x.t().std(0), RNG.random((3, 4))),
    ("logsumexp 0-d", lambda m, x: x.logsumexp(0), np.array(3.0)),
    ("logsumexp of -inf", lambda m, x: x.logsumexp(1), np.array([[-np.inf, -np.inf], [1.0, 2.0]])),
    ("logsumexp keepdim", lambda m, x: x.logsumexp(0, keepdim=True), RNG.random((3, 2))),
    ("norm inf ties", lambda m, x: x.norm(p=float("inf")), np.array([-2.0, 1.0, 2.0])),
    ("norm of zeros", lambda m, x: x.norm(dim=0), np.zeros((2, 2))),
    ("norm of empty", lambda m, x: x.norm(), np.zeros((0,))),
    ("norm p=1.5 keepdim", lambda m, x: x.norm(p=1.5, dim=1, keepdim=True), RNG.random((2, 3)) - 0.5),
    ("amax transposed", lambda m, x: x.t().amax(0), np.arange(6.0).reshape(2, 3)),
    ("amax of empty rows", lambda m, x: x.amax(1), np.zeros((0, 3))),
    ("cat with empty", lambda m, x, y: m.cat([x, y]), np.zeros((0, 2)), np.ones((2, 2))),
    ("cat transposed", lambda m, x, y: m.cat([x.t(), y], 1), RNG.random((3, 2)), RNG.random((2, 2))),
    ("cat mixed dtypes", lambda m, x, y: m.cat([x, y.float()]), RNG.random((2,)), RNG.random((3,))),
    ("stack 0-d", lambda m, x, y: m.stack([x, y, x]), np.array(1.0), np.array(2.0)),
    ("split remainder", lambda m, x: x.split(2)[1], np.ones((3,))),
    ("chunk 4 of 6", lambda m, x: m.stack([c.sum() * (k + 1) for k, c in enumerate(x.chunk(4))]), RNG.random(6)),
    ("unbind", lambda m, x: x.unbind()[1] * 2, RNG.random((2, 3))),
    ("where NaN branch", lambda m, x: m.where(x > 0, x.log(), x), np.array([-1.0, 2.0])),
    ("where broadcast", lambda m, x, y: m.where(x > 0.5, x, y), RNG.random((2, 3)), RNG.random((3,))),
    ("gather dim 0", lambda m, x: x.gather(0, m.tensor([[1, 0, 1]])), np.arange(6.0).reshape(2, 3)),
    ("gather 0-d", lambda m, x: x.gather(0, m.tensor(0)), np.array(2.0)),
    ("index_select repeats", lambda m, x: x.index_select(0, m.tensor([1, 1, 0])), RNG.random((2, 3))),
    ("repeat adds dims", lambda m, x: x.repeat(2, 1, 2), np.arange(3.0)),
    ("flip two dims", lambda m, x: x.flip((0, 1)) * m.arange(6.0).reshape(2, 3), RNG.random((2, 3))),
    ("einsum outer", lambda m, x, y: m.einsum("i,j->ij", x, y), np.arange(3.0), np.arange(2.0)),
    ("einsum implicit", lambda m, x, y: m.einsum("ij,jk", x, y), RNG.random((2, 3)), RNG.random((3, 2))),
    (
        "einsum bilinear",
        lambda m, x, a, y: m.einsum("i,ij,j->", x, a, y),
        RNG.random(2),
        RNG.random((2, 3)),
        RNG.random(3),
    ),
    ("einsum sum out", lambda m, x, y: m.einsum("ij,jk->i", x, y), RNG.random((2, 3)), RNG.random((3, 4))),
    ("einsum ellipsis", lambda m, x, y: m.einsum("...ij,...jk", x, y), RNG.random((2, 3, 4)), RNG.random((2, 4, 2))),
    (
        "einsum ellipsis broadcast",
        lambda m, x, y: m.einsum("...ij,...jk->...ik", x, y),
        RNG.random((1, 3, 4)),
        RNG.random((2, 1, 4, 2)),
    ),
    ("einsum ellipsis summed", lambda m, x: m.einsum("i...j->j", x), RNG.random((2, 3, 4))),
    ("einsum ellipsis diagonal", lambda m, x: m.einsum("...ii->...i", x), RNG.random((2, 3, 3))),
    ("gelu tanh", lambda m, x: m.nn.functional.gelu(x, approximate="tanh"), RNG.random((2, 3)) - 0.5),
    ("softplus beta 2", lambda m, x: m.nn.functional.softplus(x, beta=2), RNG.random((2, 3)) - 0.5),
    ("glu", lambda m, x: m.nn.functional.glu(x, 1), RNG.random((2, 4))),
    ("pixel_shuffle", lambda m, x: m.nn.functional.pixel_shuffle(x, 2), RNG.random((1, 4, 2, 3))),
    ("pixel_unshuffle", lambda m, x: m.nn.functional.pixel_unshuffle(x, 2), RNG.random((1, 1, 4, 2))),
    ("soft_margin_loss", lambda m, x: m.nn.functional.soft_margin_loss(x, m.tensor([1.0, -1.0, 1.0])), RNG.random(3)),
    ("kthvalue", lambda m, x: x.kthvalue(2, 1).values, RNG.random((3, 4))),
    ("median dim", lambda m, x: x.median(1).values, RNG.random((3, 4))),
    ("linalg.det", lambda m, x: m.linalg.det(x + m.eye(3, dtype=x.dtype)), RNG.random((3, 3))),
    ("linalg.inv", lambda m, x: m.linalg.inv(x + 2 * m.eye(3, dtype=x.dtype)), RNG.random((3, 3))),
    ("linalg.cholesky", lambda m, x: m.linalg.cholesky(x @ x.mT + m.eye(3, dtype=x.dtype)), RNG.random((3, 3))),
    ("linalg.eigh values", lambda m, x: m.linalg.eigh(x + x.mT)[0], RNG.random((3, 3))),
    (
        "linalg.solve",
        lambda m, a, b: m.linalg.solve(a + 2 * m.eye(3, dtype=a.dtype), b),
        RNG.random((3, 3)),
        RNG.random(3),
    ),
    ("einsum of empty", lambda m, x, y: m.einsum("ij,jk->ik", x, y), np.zeros((2, 0)), np.zeros((0, 2))),
    ("einsum ellipsis of empty", lambda m, x, y: m.einsum("...j,j->...", x, y), np.zeros((0, 3)), RNG.random(3)),
    ("einsum extent 1 and 0", lambda m, x, y: m.einsum("bij,bjk", x, y), RNG.random((1, 2, 3)), np.zeros((0, 3, 2))),
    ("einsum batch of 1", lambda m, x, y: m.einsum("bij,bjk->bik", x, y), RNG.random((1, 2, 3)), RNG.random((3, 3, 2))),
    ("nll_loss of one sample", lambda m, x: m.nn.functional.nll_loss(x, m.tensor(1)), np.array([0.1, 0.2, 0.3])),
    (
        "cross_entropy none",
        lambda m, x: m.nn.functional.cross_entropy(x, m.tensor([1, 0]), reduction="none"),
        RNG.random((2, 3)),
    ),
    (
        "cross_entropy all ignored",
        lambda m, x: m.nn.functional.cross_entropy(x, m.tensor([-100, -100])),
        RNG.random((2, 3)),
    ),
    ("flatten range", lambda m, x: x.flatten(1) * 2, RNG.random((2, 3, 2))),
    ("setitem by mask", lambda m, x, v: _assigned(x * 1, x > 0.5, v * 3), RNG.random((2, 3)), np.array(0.5)),
    ("setitem by index", lambda m, x, v: _assigned(x + 0, m.tensor([2, 0]), v), RNG.random((3, 2)), RNG.random(2)),
    (
        "setitem slice of rows",
        lambda m, x, v: _assigned(x * 1, slice(1, 3), v.exp()),
        RNG.random((4, 2)),
        RNG.random((2, 2)),
    ),
    (
        "setitem into a constant",
        lambda m, x, v: _assigned(m.zeros(3, dtype=x.dtype), 1, v * x.sum()),
        RNG.random(2),
        np.array(2.0),
    ),
    ("masked_fill", lambda m, x: x.masked_fill(x < 0.5, -1.0).exp(), RNG.random((3, 2))),
    ("zero_ on a non-leaf", lambda m, x: (x * 2).zero_() + x, RNG.random(3)),
    ("fill_ with a tensor", lambda m, x, v: (x * 2).fill_(v * 3) * x, RNG.random(3), np.array(0.5)),
    ("copy_ from a tensor", lambda m, x, v: (x * 2).copy_(v.exp()) * x, RNG.random((2, 3)), RNG.random(3)),
    ("zero_ of a row", lambda m, x: _zeroed_row(x * 2), RNG.random((2, 3))),
    ("pow_ on a non-leaf", lambda m, x: (x * 1).pow_(2), RNG.random(3)),
    ("std of equal values", lambda m, x: x.std(1), np.array([[1.0, 1.0], [1.0, 2.0]])),
    ("elu changed in place", lambda m, x: m.nn.functional.elu(x).mul_(2), np.array([-1.0, 2.0])),
    ("softplus changed in place", lambda m, x: m.nn.functional.softplus(x).mul_(2), np.array([-1.0, 2.0])),
    ("sum over dim 0 of 0-d", lambda m, x: x.sum(0) + x.mean(-1), np.array(1.5)),
    ("index by 0-d tensor", lambda m, x: (x * 1)[m.tensor(1)] * 2, np.array([1.0, 2.0, 3.0])),
    ("sigmoid_ on a non-leaf", lambda m, x: (x * 2).sigmoid_(), RNG.random(3)),
]


def _zeroed_row(y):
    y[0].zero_()
    return y


# Composites whose last node PyTorch names after its own internal steps (einsum's strategy, a
# view in nll_loss without reduction): values and gradients are compared, not the node name.
COMPOSED_DIFFERENTLY = {
    "einsum outer", "einsum implicit", "einsum ellipsis", "einsum ellipsis broadcast", "einsum ellipsis summed",
    "einsum ellipsis diagonal", "einsum batch of 1", "einsum of empty", "einsum ellipsis of empty",
    "einsum extent 1 and 0", "cross_entropy none",
}  # fmt: skip


def _run(module, function, arrays, dtype):
    inputs = [module.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = function(module, *inputs)
    if out.numel():
        weights = np.linspace(0.5, 1.5, out.numel()).reshape(tuple(out.shape))
        (out * module.tensor(weights, dtype=out.dtype)).sum().backward()
    grads = [None if x.grad is None else x.grad.numpy() for x in inputs]
    return out.detach().numpy(), grads, type(out.grad_fn).__name__


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
@pytest.mark.parametrize("edge", EDGES, ids=[edge[0] for edge in EDGES])
def test_values_gradients_and_grad_fn_match_pytorch(edge, dtype_name):
    name, function, *arrays = edge
    ours = _run(tg, function, arrays, getattr(tg, dtype_name))
    theirs = _run(torch, function, arrays, getattr(torch, dtype_name))
    tolerance = 1e-12 if dtype_name == "float64" else 1e-5
    np.testing.assert_allclose(ours[0], theirs[0], rtol=tolerance, atol=tolerance)
    for got, want in zip(ours[1], theirs[1]):
        assert (got is None) == (want is None)
        if want is not None:
            np.testing.assert_allclose(got, want, rtol=tolerance * 10, atol=tolerance * 10)
    if name not in COMPOSED_DIFFERENTLY:
        assert ours[2] == theirs[2]


ERRORS = [
    ("permute with a repeated dim", lambda m: m.ones(2, 2).permute(0, 0)),
    ("view inferring two dims", lambda m: m.ones(4).view(-1, -1)),
    ("ragged nested lists", lambda m: m.tensor([[1, 2], [3]])),
    ("ragged deeper", lambda m: m.tensor([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0]]])),
    ("cat of nothing", lambda m: m.cat([])),
    ("cat of 0-d", lambda m: m.cat([m.tensor(1.0)])),
    ("cat sizes", lambda m: m.cat([m.ones(2, 3), m.ones(2, 2)])),
    ("cat ranks", lambda m: m.cat([m.ones(2, 3), m.ones(3)])),
    ("split sizes", lambda m: m.ones(4).split([1, 2])),
    ("clamp without bounds", lambda m: m.ones(2).clamp()),
    ("max of empty", lambda m: m.ones(0).max()),
    ("amax of empty dim", lambda m: m.ones(0, 3).amax(0)),
    ("argmax of empty", lambda m: m.ones(0).argmax()),
    ("gather out of range", lambda m: m.ones(2, 3).gather(1, m.tensor([[3]]))),
    ("gather ranks", lambda m: m.ones(2, 3).gather(1, m.tensor([1]))),
    ("index_select out of range", lambda m: m.ones(2, 3).index_select(0, m.tensor([2]))),
    ("repeat too few", lambda m: m.ones(2, 3).repeat(2)),
    ("where shapes", lambda m: m.where(m.ones(2) > 0, m.ones(2), m.ones(3))),
    ("nll target", lambda m: m.nn.functional.nll_loss(m.ones(2, 3), m.tensor([0, 3]))),
    ("bce shapes", lambda m: m.nn.functional.binary_cross_entropy(m.ones(2) * 0.5, m.ones(3))),
    (
        "pos_weight requires grad",
        lambda m: m.nn.functional.binary_cross_entropy_with_logits(
            m.ones(2), m.ones(2), pos_weight=m.ones(2, requires_grad=True)
        ),
    ),
    ("where of a float condition", lambda m: m.where(m.ones(2), m.ones(2), m.zeros(2))),
    ("gather by float index", lambda m: m.ones(2, 3).gather(1, m.ones(2, 1))),
    ("index_select by float index", lambda m: m.ones(2, 3).index_select(0, m.ones(1))),
    ("einsum sizes", lambda m: m.einsum("ij,jk->ik", m.ones(2, 3), m.ones(2, 2))),
    ("einsum ellipsis sizes", lambda m: m.einsum("...ij,...jk", m.ones(5, 2, 3, 4), m.ones(3, 4, 5))),
    ("einsum two ellipses", lambda m: m.einsum("...i...", m.ones(3))),
    ("einsum lone dots", lambda m: m.einsum("..i", m.ones(3))),
    ("einsum ellipsis too few dims", lambda m: m.einsum("...ijk", m.ones(3, 3))),
    ("einsum repeated subscript sizes", lambda m: m.einsum("ii->i", m.ones(1, 3))),
    ("einsum two ellipses in the output", lambda m: m.einsum("i->...i...", m.ones(3))),
    ("einsum a dot in the output", lambda m: m.einsum("...i->.", m.ones(3))),
    ("einsum fewer operands", lambda m: m.einsum("i,i,i", m.ones(2), m.ones(2))),
    ("einsum ellipsis of 0 and 5", lambda m: m.einsum("...ij,...jk", m.ones(0, 3, 4), m.ones(5, 4, 5))),
    ("unbind 0-d", lambda m: m.tensor(1.0).unbind()),
    ("diagonal of 1-d", lambda m: m.ones(3).diagonal()),
    ("view of a transpose", lambda m: m.ones(2, 3).t().view(6)),
    ("repeat by a negative count", lambda m: m.ones(2).repeat(-1)),
    ("flip a dim twice", lambda m: m.ones(2, 3).flip((0, 0))),
    ("amax over a dim twice", lambda m: m.ones(2, 3).amax((0, 0))),
    ("std of integers", lambda m: m.tensor([1, 2, 3]).std()),
    ("clamp_ on a leaf", lambda m: m.ones(2, requires_grad=True).clamp_(0, 1)),
    ("exp_ on a leaf", lambda m: m.ones(2, requires_grad=True).exp_()),
    ("bce of an input outside [0, 1]", lambda m: m.nn.functional.binary_cross_entropy(m.tensor([1.5]), m.ones(1))),
    ("a .grad of another dtype", lambda m: setattr(m.ones(2, requires_grad=True), "grad", m.ones(2, dtype=m.float64))),
    (
        "fewer grad_outputs than outputs",
        lambda m: m.autograd.grad([m.ones(1, requires_grad=True) * 2], m.ones(1), grad_outputs=[]),
    ),
    ("backward of a number", lambda m: (m.ones(1, requires_grad=True) * 2).sum().backward(2.0)),
    ("softmax of integers", lambda m: m.tensor([1, 2]).softmax(0)),
    ("log_softmax of integers, not the last dim", lambda m: m.tensor([[1, 2]]).log_softmax(0)),
]


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "cumsum"])
def test_a_dtype_argument_that_narrows_returns_the_gradient_in_the_inputs_dtype(op):
    """float64 in, ``dtype=float32`` out: the gradient comes back through the cast, in float64."""
    data = RNG.random((40, 30))
    grads = []
    for m in (tg, torch):
        x = m.tensor(data, dtype=m.float64, requires_grad=True)
        (getattr(x, op)(1, dtype=m.float32) * m.tensor(data[::-1].copy(), dtype=m.float32)).sum().backward()
        assert x.grad.dtype == m.float64
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call", [e[1] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_match_pytorch(call):
    with pytest.raises(Exception) as theirs:
        call(torch)
    with pytest.raises(Exception) as ours:
        call(tg)
    assert type(ours.value).__name__ == type(theirs.value).__name__
    assert str(ours.value) == str(theirs.value).replace("torch.Size", "tapegrad.Size")


def test_max_along_a_dimension_returns_values_and_indices():
    x = tg.tensor([[1.0, 5.0, 5.0], [7.0, 2.0, 7.0]], requires_grad=True)
    result = x.max(1)
    values, indices = result
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    assert result.values is values and result.indices is indices
    assert indices.dtype == tg.int64 and not indices.requires_grad
    assert x.min(dim=0, keepdim=True).indices.shape == (1, 3)


def test_split_chunk_unbind_pieces_share_storage_and_version():
    base = tg.arange(6.0).reshape(2, 3)
    first, second = base.split([1, 2], dim=1)
    assert first.shape == (2, 1) and second.shape == (2, 2)
    base.add_(1.0)
    assert second.tolist() == [[2.0, 3.0], [5.0, 6.0]]  # views: they see the change
    assert [piece.shape for piece in tg.ones(5).chunk(2)] == [(3,), (2,)]
    assert len(tg.ones(2, 4).unbind(1)) == 4


@pytest.mark.parametrize("exponent", [2, 3, 0.5, -1, 2.5, 0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_power_fast_cases_replay_bitwise_and_match_pytorch(exponent, dtype):
    """x ** 2, 3, 0.5, -1 multiply or take a root instead of calling pow per element (a 65,536
    element ``a ** 3`` took 4.7 ms); the replay kernel takes the same cases, to the bit."""
    values = np.array([-2.0, -0.0, 0.0, 0.3, 1.7, np.inf, -np.inf, np.nan, 3.0], dtype)
    tape = tg.record(lambda a: a**exponent, values)
    eager = (tg.tensor(values) ** exponent).numpy()
    np.testing.assert_array_equal(np.asarray(tape(values)), eager)
    torch = pytest.importorskip("torch")
    want = (torch.tensor(values) ** exponent).numpy()
    np.testing.assert_allclose(eager, want, rtol=2e-7 if dtype == "float32" else 1e-15, equal_nan=True)
    x = tg.tensor(values[3:5], requires_grad=True)
    (x**exponent).sum().backward()
    t = torch.tensor(values[3:5], requires_grad=True)
    (t**exponent).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_keeps_its_tiny_values_for_large_negative_x(dtype):
    """sigmoid(-54.9) is 1.4e-24, as torch.sigmoid gives; the tanh form 0.5 * (1 + tanh(x / 2))
    rounded it to 0 (float32 below -17, float64 below -44), and log(sigmoid(x)) to -inf. Eager,
    replayed and in silu's gradient, against a float64 reference computed without cancellation."""
    x = np.array([-54.9, -40.0, -27.0, -17.5, -3.0, 0.5, 30.0], dtype)
    exact = np.exp(x.astype(np.float64)) / (1.0 + np.exp(x.astype(np.float64)))
    eager = tg.sigmoid(tg.tensor(x)).numpy()
    replayed = tg.record(lambda v: tg.sigmoid(v) * 1.0, x)(x).numpy()
    for got in (eager, replayed):
        np.testing.assert_array_max_ulp(got, exact.astype(dtype), maxulp=4)
    t = tg.tensor(x, requires_grad=True)
    tg.nn.functional.silu(t).sum().backward()
    derivative = exact * (1 + x.astype(np.float64) * (1 - exact))
    np.testing.assert_allclose(t.grad.numpy(), derivative, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_binary_cross_entropy_at_probabilities_0_and_1_has_pytorchs_gradient(dtype_name, reduction):
    # p exactly 0 or 1 (a saturated float32 sigmoid): the clamped log's gradient was 0 * inf,
    # NaN. PyTorch divides by max(p (1 - p), 1e-12) there.
    p = np.array([0.0, 1.0, 1e-13, 1 - 1e-13, 0.3, 1.0, 0.0, 1e-30], dtype_name)
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.6, 0.0, 1.0, 0.25], dtype_name)
    weight = np.linspace(0.5, 1.5, len(p))
    results = []
    for m in (tg, torch):
        x = m.tensor(p, requires_grad=True)
        loss = m.nn.functional.binary_cross_entropy(
            x, m.tensor(t), m.tensor(weight, dtype=x.dtype), reduction=reduction
        )
        loss.backward(m.ones_like(loss))
        results.append((loss.detach().numpy(), x.grad.numpy()))
    (value, grad), (want_value, want_grad) = results
    assert not np.isnan(grad).any()
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-6)


def test_binary_cross_entropy_of_a_saturated_sigmoid_and_its_second_derivative():
    gradients = []
    for m in (tg, torch):
        x = m.tensor([20.0, -20.0, 0.3], requires_grad=True)
        m.nn.functional.binary_cross_entropy(m.sigmoid(x), m.tensor([1.0, 0.0, 1.0])).backward()
        p = m.tensor([0.2, 0.7], dtype=m.float64, requires_grad=True)
        (g,) = m.autograd.grad(
            m.nn.functional.binary_cross_entropy(p, m.tensor([1.0, 0.0], dtype=m.float64)), p, create_graph=True
        )
        (h,) = m.autograd.grad(g.sum(), p)
        gradients.append((x.grad.numpy(), h.numpy()))
    np.testing.assert_allclose(gradients[0][0], gradients[1][0], rtol=1e-6, atol=0)
    np.testing.assert_allclose(gradients[0][1], gradients[1][1], rtol=1e-9)


def test_a_recorded_binary_cross_entropy_replays_at_probabilities_0_and_1_without_a_guard():
    def loss(p, t):
        return tg.nn.functional.binary_cross_entropy(p, t)

    targets = np.array([1.0, 0.0, 1.0], np.float32)
    tape = tg.record(loss, np.array([0.3, 0.6, 0.5], np.float32), targets)
    for probabilities in ([1.0, 0.0, 0.4], [0.0, 1.0, 1.0], [0.2, 0.9, 0.5]):
        value, (grad,) = tape.value_and_grad(np.array(probabilities, np.float32), targets, argnums=(0,))
        p = torch.tensor(probabilities, requires_grad=True)
        expected = torch.nn.functional.binary_cross_entropy(p, torch.tensor(targets))
        expected.backward()
        np.testing.assert_allclose(float(value), expected.item(), rtol=1e-6)
        np.testing.assert_allclose(grad.numpy(), p.grad.numpy(), rtol=1e-6)
