"""Second derivatives (``create_graph=True``): against analytic Hessians, against PyTorch, and,
for every table-driven op case, against central differences of the first derivative."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

import tapegrad as tg
from tapegrad._examples import CASES
from tapegrad._ops import OPS
from tapegrad._tape import OPCODE_MASK, resolve
from tapegrad.autograd import higher_order
from tapegrad.autograd.engine import SECOND_BACKWARD

from .gradcheck import assert_nested_close, sample

# -- every op case: d/dx of (first derivative . direction) ----------------------------------


def _uncovered_ops(case, arrays) -> set:
    """Ops on the case's tape that have no create_graph formula (they must refuse by name)."""
    out = case.call(*[tg.tensor(a, dtype=tg.float64, requires_grad=True) for a in arrays])
    opcodes = resolve(out).rows_array()[: out._row + 1, 0] & OPCODE_MASK
    ops = {OPS[code] for code in opcodes}
    return {op.name for op in ops if higher_order.formulas_for(op) is None and op.rule not in ("leaf", "constant")}


def _loss(out, weights: np.ndarray):
    """Weighted, plus a square: its gradient depends on ``out``, so the gradient reaching every
    row depends on the inputs (a linear loss would leave that dependence of the rules untested)."""
    weights = tg.from_numpy(weights.astype(out._data.dtype))
    return (out * weights).sum() + (out * out).sum() * 0.5


def _plain_first_derivative(case, arrays, weights) -> list:
    inputs = [tg.tensor(a, dtype=tg.float64, requires_grad=True) for a in arrays]
    _loss(case.call(*inputs), weights).backward()
    return [x.grad.numpy() if x.grad is not None else np.zeros(x.shape) for x in inputs]


def _numeric_second_derivative(case, arrays, weights, directions) -> list:
    """Central differences of sum_i <d loss / d x_i, directions_i>, by the plain backward."""

    def directional(values):
        gradients = _plain_first_derivative(case, values, weights)
        return sum(float((gradient * direction).sum()) for gradient, direction in zip(gradients, directions))

    second = []
    for index, array in enumerate(arrays):
        result = np.zeros_like(array)
        for position in np.ndindex(array.shape):
            shifted = [a.copy() for a in arrays]
            shifted[index][position] = array[position] + case.eps
            up = directional(shifted)
            shifted[index][position] = array[position] - case.eps
            result[position] = (up - directional(shifted)) / (2 * case.eps)
        second.append(result)
    return second


def _create_graph_derivatives(case, arrays, weights, directions) -> tuple:
    """The first derivative computed with create_graph, and the second derivative from it."""
    inputs = [tg.tensor(a, dtype=tg.float64, requires_grad=True) for a in arrays]
    first = tg.autograd.grad(
        _loss(case.call(*inputs), weights), inputs, create_graph=True, allow_unused=True, materialize_grads=True
    )
    directional = sum((gradient * tg.from_numpy(d)).sum() for gradient, d in zip(first, directions))
    if directional.requires_grad:
        second = [s.numpy() for s in tg.autograd.grad(directional, inputs, allow_unused=True, materialize_grads=True)]
    else:  # a first derivative that does not depend on the inputs
        second = [np.zeros_like(a) for a in arrays]
    return [f.detach().numpy() for f in first], second


@pytest.mark.parametrize("case", CASES, ids=str)
def test_second_derivative_matches_central_differences_of_the_first(case):
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    arrays = sample(rng, case.shapes, case.domain)
    with tg.no_grad():
        out_shape = case.call(*[tg.from_numpy(a) for a in arrays]).shape
    weights = rng.uniform(0.5, 1.5, size=out_shape)
    directions = [rng.uniform(-1.0, 1.0, size=a.shape) for a in arrays]
    uncovered = _uncovered_ops(case, arrays)
    if uncovered:
        pattern = "|".join(re.escape(f"through {name} ") for name in sorted(uncovered))
        with pytest.raises(NotImplementedError, match=pattern):
            _create_graph_derivatives(case, arrays, weights, directions)
        return
    first, second = _create_graph_derivatives(case, arrays, weights, directions)
    for got, want in zip(first, _plain_first_derivative(case, arrays, weights)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    for got, want in zip(second, _numeric_second_derivative(case, arrays, weights, directions)):
        np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)


def test_an_op_without_a_formula_refuses_by_name(monkeypatch):
    monkeypatch.delitem(higher_order.VJP_RULES, "softplus")
    softplus = tg.nn.functional.softplus
    x = tg.tensor([0.5, 1.0], requires_grad=True)
    with pytest.raises(NotImplementedError, match="create_graph=True is not supported through softplus yet"):
        tg.autograd.grad(softplus(x).sum(), x, create_graph=True)
    assert tg.autograd.grad(softplus(x).sum(), x)[0].allclose(x.detach().sigmoid())  # the plain backward is untouched


# -- large unary rows, whose derivative the recording precomputed (and saved nothing else) --

BIG = (64, 64)  # 4096 elements: the recording precomputes d out / d x


@pytest.mark.parametrize(
    ("name", "second"),
    [
        ("sin", lambda x: -np.sin(x)),
        ("cos", lambda x: -np.cos(x)),
        ("softplus", lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    ],
)
@pytest.mark.parametrize("through_intermediate", [False, True], ids=["leaf", "intermediate"])
def test_precomputed_derivative_rows_give_their_second_derivative(name, second, through_intermediate):
    rng = np.random.default_rng(5)
    values = rng.uniform(-2.0, 2.0, size=BIG)
    direction = rng.uniform(-1.0, 1.0, size=BIG)
    x = tg.tensor(values, requires_grad=True)
    # Through an intermediate, the op's input was never saved: it is recomputed from x.
    inner, scale = (x * 1.5, 1.5) if through_intermediate else (x, 1.0)
    (first,) = tg.autograd.grad(getattr(inner, name)().sum(), x, create_graph=True)
    (result,) = tg.autograd.grad((first * tg.from_numpy(direction)).sum(), x)
    np.testing.assert_allclose(result.numpy(), scale**2 * second(scale * values) * direction, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sinh", "sin"])
def test_a_large_unary_row_of_an_unkept_input_differentiates_twice(name):
    """sinh from ``PRECOMPUTED_DERIVATIVE_SIZE`` elements saves its derivative, and its input as
    PyTorch's node does: the second derivative reads it, where ``x + offset`` keeps no value of
    its own (a constant the add's backward never reads) and was refused before."""
    x = tg.tensor(np.linspace(-1.0, 1.0, BIG[0] * BIG[1]).reshape(BIG), requires_grad=True)
    offset = tg.ones(*BIG, dtype=tg.float64)
    (first,) = tg.autograd.grad(getattr(x + offset, name)().sum(), x, create_graph=True)
    (second,) = tg.autograd.grad(first.sum(), x)
    expected = np.sinh(x.detach().numpy() + 1.0) if name == "sinh" else -np.sin(x.detach().numpy() + 1.0)
    np.testing.assert_allclose(second.numpy(), expected, rtol=1e-12)


# -- Hessians: analytic and PyTorch ----------------------------------------------------------


def _hessian(func, *arrays):
    inputs = tuple(tg.tensor(a) for a in arrays)
    return tg.autograd.functional.hessian(func, inputs[0] if len(inputs) == 1 else inputs)


def test_hessians_equal_their_analytic_forms():
    x = np.array([0.3, -1.2, 2.0])
    y = np.array([1.5, 0.5, -0.7])
    a = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [4.0, 1.0, 2.0]])
    np.testing.assert_allclose(_hessian(lambda t: (t**3).sum(), x).numpy(), np.diag(6 * x))
    np.testing.assert_allclose(_hessian(lambda t: t @ tg.tensor(a) @ t, x).numpy(), a + a.T)
    np.testing.assert_allclose(
        _hessian(lambda t: (t.sin() * t).sum(), x).numpy(), np.diag(2 * np.cos(x) - x * np.sin(x)), atol=1e-15
    )
    p = np.exp(x) / np.exp(x).sum()
    np.testing.assert_allclose(_hessian(lambda t: t.exp().sum().log(), x).numpy(), np.diag(p) - np.outer(p, p))
    with_zero = np.array([[2.0, 0.0, 3.0], [0.5, 1.5, -1.0]])  # prod / x is undefined at the zero
    expected = np.zeros((2, 3, 2, 3))
    for row, i, j in np.ndindex(2, 3, 3):
        expected[row, i, row, j] = 0.0 if i == j else np.prod(np.delete(with_zero[row], [i, j]))
    np.testing.assert_allclose(_hessian(lambda t: t.prod(1).sum(), with_zero).numpy(), expected)
    np.testing.assert_allclose(
        _hessian(lambda t: t.prod(), with_zero).numpy().reshape(6, 6),
        [[0.0 if i == j else np.prod(np.delete(with_zero, [i, j])) for j in range(6)] for i in range(6)],
    )
    blocks = _hessian(lambda s, t: (s * s * t).sum(), x, y)
    expected = ((np.diag(2 * y), np.diag(2 * x)), (np.diag(2 * x), np.zeros((3, 3))))
    for got_row, want_row in zip(blocks, expected):
        for got, want in zip(got_row, want_row):
            np.testing.assert_allclose(got.numpy(), want)


def test_hessian_of_a_linear_function_is_zero_and_shaped_like_pytorchs():
    x = tg.tensor(np.ones((2, 3)))
    hessian = tg.autograd.functional.hessian(lambda t: (t * 2.0).sum(), x)
    assert hessian.shape == (2, 3, 2, 3)
    assert not hessian.numpy().any()


def _functions(module):
    """Scalar functions of two tensors of shape (3, 4), in either library."""
    functional = module.nn.functional
    weights = module.tensor(np.linspace(-1.0, 1.0, 20).reshape(4, 5))

    def mlp(x, w):
        return (((x @ weights).tanh() * w.sum(0, keepdim=True).t().sigmoid()[:3, :1]) ** 2).mean()

    return {
        "polynomial": lambda x, w: (x**3 * w + x * w.exp()).sum(),
        "mlp": mlp,
        "softmax-cross-entropy": lambda x, w: (
            -(functional.log_softmax(x * w, 1)[:, 0]).sum() + functional.softmax(x, 0).pow(2).sum()
        ),
        "matmul-transposed": lambda x, w: ((x.t() @ w).sin() * (w @ x.t()).cos()[0, 0]).sum(),
        "norm-and-views": lambda x, w: (
            x.reshape(2, 6).norm() * w[1:, ::2].exp().sum() + (x * w).permute(1, 0)[0].sum() ** 2
        ),
        "batched": lambda x, w: (x.reshape(3, 2, 2) @ w.reshape(3, 2, 2).transpose(1, 2)).tanh().sum(),
        "gelu-silu-softplus": lambda x, w: (functional.gelu(x) * functional.silu(w) + functional.softplus(x * w)).sum(),
        "division-and-powers": lambda x, w: (x / (w.abs() + 1.0) + (w * w + 1.0) ** x.cos() + x.sigmoid().sqrt()).sum(),
    }


def _arrays():
    rng = np.random.default_rng(11)
    return rng.uniform(-1.0, 1.0, (3, 4)), rng.uniform(-1.0, 1.0, (3, 4))


def _close(ours, theirs):
    assert_nested_close(ours, theirs, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", list(_functions(tg)))
def test_hessian_hvp_and_vhp_match_pytorch(name):
    torch = pytest.importorskip("torch")
    ours, theirs = _functions(tg)[name], _functions(torch)[name]
    arrays = _arrays()
    directions = tuple(np.random.default_rng(3).uniform(-1.0, 1.0, (3, 4)) for _ in range(2))

    def inputs(module):
        return tuple(module.tensor(a) for a in arrays)

    def vectors(module):
        return tuple(module.tensor(d) for d in directions)

    _close(tg.autograd.functional.hessian(ours, inputs(tg)), torch.autograd.functional.hessian(theirs, inputs(torch)))
    for product in ("hvp", "vhp"):
        _close(
            getattr(tg.autograd.functional, product)(ours, inputs(tg), vectors(tg)),
            getattr(torch.autograd.functional, product)(theirs, inputs(torch), vectors(torch)),
        )


# -- what create_graph gives back --------------------------------------------------------------


def test_create_graph_results_require_grad_and_have_a_grad_fn():
    x = tg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    (gradient,) = tg.autograd.grad((x.sin() * x).sum(), x, create_graph=True)
    assert gradient.requires_grad and gradient.grad_fn is not None
    # As in PyTorch, the gradient of a linear function does not depend on x: it requires nothing.
    (constant,) = tg.autograd.grad((x * 3.0).sum(), x, create_graph=True)
    assert not constant.requires_grad and constant.grad_fn is None
    np.testing.assert_allclose(constant.numpy(), [3.0, 3.0, 3.0])
    y = x.exp().sum()
    with tg.no_grad():  # as in PyTorch, create_graph records the backward regardless
        (recorded,) = tg.autograd.grad(y, x, create_graph=True)
    assert recorded.requires_grad


def test_backward_with_create_graph_accumulates_a_differentiable_grad_out_of_place():
    values = np.array([0.5, -1.0, 2.0])
    x = tg.tensor(values, dtype=tg.float64, requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    first = x.grad
    assert first.requires_grad and first.grad_fn is not None
    np.testing.assert_allclose(first.detach().numpy(), 3 * values**2)
    (x**3).sum().backward(create_graph=True)
    assert x.grad is not first  # out of place, so that the sum is recorded too
    np.testing.assert_allclose(x.grad.detach().numpy(), 6 * values**2)
    (second,) = tg.autograd.grad(x.grad.sum(), x)
    np.testing.assert_allclose(second.numpy(), 12 * values)


def test_retained_non_leaf_gradients_are_differentiable_too():
    values = np.array([0.5, -1.0, 2.0])
    x = tg.tensor(values, dtype=tg.float64, requires_grad=True)
    h = x * 2.0
    h.retain_grad()
    (h**3).sum().backward(create_graph=True)
    assert h.grad.requires_grad
    np.testing.assert_allclose(h.grad.detach().numpy(), 12 * values**2)
    (second,) = tg.autograd.grad(h.grad.sum(), x)
    np.testing.assert_allclose(second.numpy(), 24 * values)


def test_grad_outputs_that_require_grad_make_the_gradient_differentiable_in_them():
    a = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    x = tg.tensor([0.3, -0.4, 1.1], dtype=tg.float64, requires_grad=True)
    v = tg.tensor([0.7, -1.3], dtype=tg.float64, requires_grad=True)
    w = np.array([1.0, 2.0, -0.5])
    (gradient,) = tg.autograd.grad(tg.tensor(a) @ x.sin(), x, v, create_graph=True)  # J^T v
    (product,) = tg.autograd.grad((gradient * tg.tensor(w)).sum(), v)  # so d/dv of it . w is J w
    jacobian = a * np.cos(x.detach().numpy())
    np.testing.assert_allclose(product.numpy(), jacobian @ w)


def test_third_derivatives():
    values = np.array([0.4, -1.5, 2.0])
    x = tg.tensor(values, dtype=tg.float64, requires_grad=True)
    y = (x**4).sum() + x[1:].sin().sum() * x[0]
    (first,) = tg.autograd.grad(y, x, create_graph=True)
    (second,) = tg.autograd.grad(first.sum(), x, create_graph=True)
    (third,) = tg.autograd.grad(second.sum(), x)
    # By hand: second.sum() = sum_k 12 x_k^2 + sum_{k>0} (2 cos x_k - x_0 sin x_k).
    expected = 24 * values
    expected[0] -= np.sin(values[1:]).sum()
    expected[1:] -= 2 * np.sin(values[1:]) + values[0] * np.cos(values[1:])
    np.testing.assert_allclose(third.numpy(), expected)


def test_hooks_see_and_change_the_differentiable_gradient():
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.requires_grad) or g * 2.0)
    (x**3).sum().backward(create_graph=True)
    assert seen == [True]
    np.testing.assert_allclose(x.grad.detach().numpy(), [6.0, 24.0])
    handle.remove()  # else it doubles the second derivative too, as in PyTorch
    (second,) = tg.autograd.grad(x.grad.sum(), x)
    np.testing.assert_allclose(second.numpy(), [12.0, 24.0])


# -- retained and freed graphs ---------------------------------------------------------------


def test_double_backward_through_a_retained_graph_twice():
    values = np.array([0.5, -1.0])
    x = tg.tensor(values, dtype=tg.float64, requires_grad=True)
    y = (x.tanh() * x).sum()
    (gradient,) = tg.autograd.grad(y, x, create_graph=True)  # retains y's graph by default
    z = (gradient * gradient).sum()
    z.backward(retain_graph=True)
    once = x.grad.numpy().copy()
    y.backward(retain_graph=True)  # the original graph is still there
    z.backward()
    t = np.tanh(values)
    first = t + values * (1 - t**2)
    second = 2 * (1 - t**2) - 2 * values * t * (1 - t**2)
    np.testing.assert_allclose(once, 2 * first * second)
    np.testing.assert_allclose(x.grad.numpy(), 4 * first * second + first)
    with pytest.raises(RuntimeError, match=re.escape(SECOND_BACKWARD)):
        y.backward()  # z's last backward went through y's rows and freed them, as in PyTorch


def test_create_graph_without_retain_graph_frees_the_forward_as_pytorch_does():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    (gradient,) = tg.autograd.grad(x.tanh().sum(), x, create_graph=True, retain_graph=False)
    with pytest.raises(RuntimeError, match=re.escape(SECOND_BACKWARD)):
        gradient.sum().backward()


def test_a_saved_value_changed_in_place_is_reported_as_in_a_plain_backward():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    h = x.exp()
    y = (h * h).sum()
    h.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        tg.autograd.grad(y, x, create_graph=True)


def test_the_gradient_of_relu_is_differentiable_even_when_its_seed_is_constant():
    # PyTorch: threshold_backward's result requires grad through the input (with derivative 0),
    # so a second autograd.grad gives zeros rather than raising.
    x = tg.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    (g,) = tg.autograd.grad(tg.relu(x).sum(), x, create_graph=True)
    assert g.requires_grad
    np.testing.assert_array_equal(g.detach().numpy(), [0.0, 1.0, 1.0])
    (h,) = tg.autograd.grad(g.sum(), x)
    np.testing.assert_array_equal(h.numpy(), [0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    "activation",
    [
        lambda m, x: m.nn.functional.elu(x, 0.5),
        lambda m, x: m.nn.functional.elu(x),
        lambda m, x: m.nn.functional.leaky_relu(x, 0.2),
    ],
    ids=["elu-0.5", "elu", "leaky_relu"],
)
def test_second_derivatives_of_piecewise_activations_match_pytorch(activation):
    """At 0, elu's second derivative is 0 (PyTorch's double backward masks with x < 0; it was
    alpha here), and at large positive x it is 0, not NaN (e**800 times a zero mask). A seed
    that does not require grad still gives a first gradient that does (leaky_relu's did not,
    so a second autograd.grad raised where PyTorch gives zeros)."""
    torch = pytest.importorskip("torch")

    def run(m):
        x = m.tensor([0.0, 1.0, -2.0, 800.0, -800.0, -0.3], dtype=m.float64, requires_grad=True)
        (g,) = m.autograd.grad(activation(m, x).sum(), x, create_graph=True)
        assert g.requires_grad
        (h,) = m.autograd.grad(g.sum(), x)
        return g.detach().numpy(), h.numpy()

    for got, want in zip(run(tg), run(torch)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


MASKING = {
    "clamp": lambda x: x.clamp(min=0),
    "where": lambda x: tg.where(x > 0, x, 0.0),
    "maximum": lambda x: tg.maximum(x, tg.zeros_like(x)),
    "masked_fill": lambda x: x.masked_fill(x < 0, 0.0),
    "relu6": lambda x: tg.nn.functional.relu6(x),
}


@pytest.mark.parametrize("name", list(MASKING))
def test_create_graph_passes_no_infinite_gradient_where_the_mask_stops_it(name):
    """sqrt's gradient at 0 is inf; where the mask stops it, the gradient is 0 with
    create_graph as without (inf * 0 made it NaN, changing the first-order gradient)."""
    x = tg.tensor([-1.0, 4.0], dtype=tg.float64, requires_grad=True)
    (plain,) = tg.autograd.grad(MASKING[name](x).sqrt().sum(), x)
    (graphed,) = tg.autograd.grad(MASKING[name](x).sqrt().sum(), x, create_graph=True)
    assert plain.tolist() == graphed.tolist() == [0.0, 0.25]


def test_create_graph_maximum_with_nan_sends_the_gradient_to_both():
    a = tg.tensor([float("nan"), 1.0], dtype=tg.float64, requires_grad=True)
    b = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    plain = tg.autograd.grad(tg.maximum(a, b).sum(), (a, b))
    graphed = tg.autograd.grad(tg.maximum(a, b).sum(), (a, b), create_graph=True)
    assert [g.tolist() for g in graphed] == [g.tolist() for g in plain] == [[1.0, 0.0], [1.0, 1.0]]


def test_softplus_gradient_is_one_above_its_threshold_with_create_graph():
    x = tg.tensor([25.0, 30.0, 1.0], dtype=tg.float64, requires_grad=True)
    (g,) = tg.autograd.grad(tg.nn.functional.softplus(x).sum(), x, create_graph=True)
    assert g.tolist()[:2] == [1.0, 1.0]
    (h,) = tg.autograd.grad(g.sum(), x)
    assert h.tolist()[:2] == [0.0, 0.0] and h.tolist()[2] > 0


def test_variance_of_one_element_differentiates_to_nan_with_create_graph():
    """N - correction = 0: the divisions give inf and NaN, as PyTorch's (Python raised)."""
    x = tg.tensor([[1.0], [2.0]], dtype=tg.float64, requires_grad=True)
    (g,) = tg.autograd.grad(x.var(1).sum(), x, create_graph=True)
    assert np.isnan(g.detach().numpy()).all()


def _gradients_through_piecewise_linear_ops(m):
    F = m.nn.functional  # noqa: N806 - PyTorch's alias
    out = []
    cases = [
        ("hardtanh", lambda x: F.hardtanh(x * 2)), ("relu6", lambda x: F.relu6(x * 3)),
        ("threshold", lambda x: F.threshold(x, 0.1, 20.0)), ("hardshrink", F.hardshrink),
        ("softshrink", F.softshrink), ("prelu", lambda x: F.prelu(x, m.tensor([0.25]))), ("rrelu", F.rrelu),
        ("max_pool2d", lambda x: F.max_pool2d(x.reshape(1, 1, 2, 2), 2)),
        ("avg_pool2d", lambda x: F.avg_pool2d(x.reshape(1, 1, 2, 2), 2)),
    ]  # fmt: skip
    for name, f in cases:
        x = m.tensor([0.3, -2.0, 1.0, 4.0], requires_grad=True)
        b = m.tensor(0.5, requires_grad=True)
        (g,) = m.autograd.grad(f(x + b).sum(), x, create_graph=True)
        (gb,) = m.autograd.grad((g * x).sum(), b, allow_unused=True)
        out.append((name, g.requires_grad, None if gb is None else gb.item()))
    lin = m.nn.Linear(1, 1)
    with m.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(0.5)
    act = m.nn.PReLU()
    optimizer = m.optim.Adam([*lin.parameters(), *act.parameters()], lr=0.1)
    for step in range(3):  # a gradient penalty: its second-order gradient reaches the bias as 0
        x = m.tensor([[1.0]], requires_grad=True)
        y = act(lin(x)).sum()
        (g,) = m.autograd.grad(y, x, create_graph=True)
        loss = (g - 2) ** 2 + (0.1 * y if step == 0 else 0)
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        out.append((step, lin.bias.grad.item(), round(lin.bias.item(), 6)))
    return out


def test_gradients_through_piecewise_linear_ops_stay_on_the_graph():
    """Their gradient under create_graph did not require grad (PyTorch's backward ops read the
    input): a second backward gave None, and Adam skipped the parameter PyTorch moves."""
    ours = _gradients_through_piecewise_linear_ops(tg)
    assert all(requires and second == 0.0 for _, requires, second in ours[:9])
    torch = pytest.importorskip("torch")
    theirs = _gradients_through_piecewise_linear_ops(torch)
    for a, b in zip(ours, theirs):
        assert a[0] == b[0] and a[1:] == pytest.approx(b[1:], rel=1e-5, abs=1e-7)


def test_create_graph_gradient_of_an_intermediate_runs_nothing_below_it():
    # after a backward freed the intermediate's own graph, autograd.grad with create_graph of a
    # new graph over it raised; PyTorch runs only the nodes above the input it is asked for
    x, w, v = (tg.randn(6, 5, dtype=tg.float64, requires_grad=True) for _ in range(3))
    a = x * w
    (a * v).sum().backward()
    (gradient,) = tg.autograd.grad((a * a).sum(), a, create_graph=True)
    np.testing.assert_allclose(gradient.detach().numpy(), 2 * a.detach().numpy())
    assert gradient.requires_grad


def _second_order_leaves(m):
    """Gradients of a gradient through piecewise-linear activations: PyTorch's nodes read their
    input, so the leaves below them get zeros (not None) even where the gradient also depends on
    a weight (a gradient penalty through leaky_relu and relu)."""
    x = m.tensor([[[1.0, -2.0, 0.5, 3.0, -1.0]]], requires_grad=True)
    w1 = m.tensor([[[0.5, -1.0]]], requires_grad=True)
    b1 = m.zeros(1, requires_grad=True)
    w2 = m.tensor([[[2.0, 0.3]]], requires_grad=True)
    h = m.nn.functional.leaky_relu(m.nn.functional.conv1d(x, w1, b1), 0.2).relu()
    (g,) = m.autograd.grad(m.nn.functional.conv1d(h, w2).sum(), x, create_graph=True)
    g.pow(2).sum().backward()
    return [None if t.grad is None else t.grad.tolist() for t in (x, b1, w1, w2)]


def test_second_order_gradients_reach_the_leaves_below_activations():
    ours = _second_order_leaves(tg)
    assert ours[0] == [[[0.0] * 5]] and ours[1] == [0.0]
    torch = pytest.importorskip("torch")
    theirs = _second_order_leaves(torch)
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)


def _logaddexp_derivatives(m, a0: float, b0: float):
    a = m.tensor(a0, dtype=m.float64, requires_grad=True)
    b = m.tensor(b0, dtype=m.float64, requires_grad=True)
    ga, gb = m.autograd.grad(m.logaddexp(a, b), (a, b), create_graph=True)
    haa, hab = m.autograd.grad(ga, (a, b))
    return [ga.item(), gb.item(), haa.item(), hab.item()]


@pytest.mark.parametrize(("a0", "b0"), [(0.5, 0.5), (-3.0, -3.0), (1.0, 2.0), (3.0, -1.0), (0.0, 1e-9)])
def test_logaddexp_has_its_derivatives_at_a_tie(a0, b0):
    """Found by a review: through ``maximum`` and ``abs``, which split a tie, logaddexp's second
    derivative at equal inputs was 0 (sign(0) squared) instead of 1/4, and logcumsumexp's of
    equal elements with it. Checked against the closed forms, s(1 - s) with s the sigmoid of
    a - b, and against PyTorch."""
    s = 1 / (1 + np.exp(b0 - a0))
    np.testing.assert_allclose(_logaddexp_derivatives(tg, a0, b0), [s, 1 - s, s * (1 - s), -s * (1 - s)], rtol=1e-12)
    x = tg.tensor([0.5, 0.5], dtype=tg.float64, requires_grad=True)
    (g,) = tg.autograd.grad(tg.logcumsumexp(x, 0)[1], x, create_graph=True)
    (h,) = tg.autograd.grad(g[0], x)
    np.testing.assert_allclose(h.tolist(), [0.25, -0.25], rtol=1e-12)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(_logaddexp_derivatives(tg, a0, b0), _logaddexp_derivatives(torch, a0, b0), rtol=1e-12)


_LEAF_HOOK_PROGRAMS = {
    "a leaf of two graphs": lambda m, x, cg: m.autograd.grad([(x * 3).sum(), (x * x).sum()], [x], create_graph=cg)[0],
    "a leaf that is the root": lambda m, x, cg: (x.backward(m.tensor([1.0, 1.0]), create_graph=cg), x.grad)[1],
    "a leaf that is a root beside a graph of it": lambda m, x, cg: (
        m.autograd.backward([(x * 3).sum(), x], [None, m.ones(2)], create_graph=cg),
        x.grad,
    )[1],
    "grad of a leaf by itself": lambda m, x, cg: m.autograd.grad([x], [x], [m.ones(2)], create_graph=cg)[0],
}


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("program", _LEAF_HOOK_PROGRAMS.values(), ids=_LEAF_HOOK_PROGRAMS.keys())
def test_a_leaf_hook_sees_the_total_gradient_once(program, create_graph):
    """A hook on a leaf runs once, on the sum of what every root sends it (its own seed, when
    it is a root), with or without ``create_graph``, as PyTorch's: the ``create_graph`` path ran
    it per graph, on parts, and skipped it for a leaf root."""
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        x = m.tensor([1.0, 2.0], requires_grad=True)
        x.register_hook(lambda g: g * g + 1.0)
        results.append(program(m, x, create_graph).detach().numpy().tolist())
    assert results[0] == results[1]


def test_a_value_a_hook_changes_in_place_fails_the_create_graph_backward():
    """A hook that changes a saved value in place before its reader runs: the backward raises
    PyTorch's error, with ``create_graph`` as without (it read the changed value: 100x)."""
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    e = (x * 1.0).exp()
    k = e * 3.0

    def change(gradient):
        with tg.no_grad():
            e.mul_(100.0)

    k.register_hook(change)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        k.sum().backward(create_graph=True)


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_hook_registered_by_a_hook_runs_in_the_same_backward(create_graph):
    """A hook that registers a hook and retain_grad on a tensor the backward has not reached
    yet: both take effect in this backward, with create_graph as without (they were skipped)."""
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1.0
    k = h * 2.0

    def on_k(gradient):
        h.register_hook(lambda g: g * 10.0)
        h.retain_grad()

    k.register_hook(on_k)
    k.sum().backward(create_graph=create_graph)
    assert x.grad.tolist() == [20.0, 20.0]
    assert h.grad.tolist() == [20.0, 20.0]
