"""Transposed operands (``a.t()``, as ``linear`` passes its weight) on the paths that move them
through memory: the tiled copy that saves a large transposed matrix C-ordered for the backward,
and the strided accumulation that sends a gradient back through a transpose. Gradients are
checked against numpy by hand, at sizes past the tiles (with ragged edges) and past the size
from which the record path uses the compiled copy."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _record
from tapegrad._kernels import strided

# 70 x 90 = 6300 elements: past _record.TILED_COPY_SIZE, and neither side a multiple of a tile.
ROWS, COLUMNS = 70, 90


def _pair(dtype):
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, (ROWS, COLUMNS)).astype(dtype) for _ in range(2)]


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 33), (70, 90), (64, 32)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_copy_matches_numpy(shape, dtype):
    source = np.random.default_rng(1).standard_normal(shape).astype(dtype)  # columns x rows
    columns, rows = shape
    target = np.empty((rows, columns), dtype)
    strided.transposed_copy(source.reshape(-1), target.reshape(-1), rows, columns)
    np.testing.assert_array_equal(target, source.T)


def test_the_record_path_saves_a_large_transposed_matrix_through_the_tiled_copy(monkeypatch):
    calls = []
    real = strided.transposed_copy
    monkeypatch.setattr(strided, "transposed_copy", lambda *args: calls.append(args[2:]) or real(*args))
    x, y = _pair(np.float32)
    a = tg.tensor(x, requires_grad=True)
    c = tg.tensor(np.ascontiguousarray(y.T), requires_grad=True)  # one transposed operand: no rewrite
    (a.t() * c).sum().backward()
    assert calls == [(COLUMNS, ROWS)]  # the transposed operand, once
    np.testing.assert_array_equal(a.grad.numpy(), y)
    np.testing.assert_array_equal(c.grad.numpy(), x.T)


_ELEMENTWISE = {  # one op each: a result computed untransposed is not itself a view to rewrite
    "mul": lambda a, b: a * b,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "div": lambda a, b: a / b,
    "relu": lambda a, b: tg.relu(a),
    "exp": lambda a, b: a.exp(),
    "neg": lambda a, b: -a,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(_ELEMENTWISE))
def test_elementwise_ops_of_transposes_are_computed_untransposed(name, dtype, monkeypatch):
    # a.t() * b.t() is (a * b).t(): computed on the sources, no transposed copy to save and no
    # transposed accumulation back, with the bits of the same ops on contiguous copies.
    op = _ELEMENTWISE[name]
    x, y = _pair(dtype)
    a, b = (tg.tensor(v, requires_grad=True) for v in (x, y))
    weights = tg.tensor(np.linspace(0.5, 1.5, ROWS * COLUMNS).reshape(COLUMNS, ROWS).astype(dtype))
    monkeypatch.setattr(strided, "transposed_copy", lambda *args: pytest.fail("a transposed operand was copied"))
    result = op(a.t(), b.t())
    monkeypatch.undo()
    (result * weights).sum().backward()
    c, d = (tg.tensor(np.ascontiguousarray(v.T), requires_grad=True) for v in (x, y))
    expected = op(c, d)
    (expected * weights).sum().backward()
    np.testing.assert_array_equal(result.detach().numpy(), expected.detach().numpy())
    np.testing.assert_array_equal(a.grad.numpy(), c.grad.numpy().T)
    assert (b.grad is None) == (d.grad is None)
    if b.grad is not None:
        np.testing.assert_array_equal(b.grad.numpy(), d.grad.numpy().T)
    # As PyTorch shows the result: the op's node, not a view, laid out as its operands.
    assert result.grad_fn.name() == expected.grad_fn.name()
    assert result._base is None and not result.is_contiguous() and result.shape == (COLUMNS, ROWS)


@pytest.mark.parametrize(
    "reduce",
    [
        lambda t: t.sum(),
        lambda t: t.sum(1),
        lambda t: t.sum(0, keepdim=True),
        lambda t: t.mean(1, keepdim=True),
        lambda t: t.sum((0, 1)),
    ],
    ids=["sum", "sum(1)", "sum(0, keepdim)", "mean(1, keepdim)", "sum((0, 1))"],
)
def test_reductions_of_a_transpose_reduce_its_source(reduce):
    x, _ = _pair(np.float64)
    a = tg.tensor(x, requires_grad=True)
    c = tg.tensor(np.ascontiguousarray(x.T), requires_grad=True)
    result, expected = reduce(a.t()), reduce(c)
    weights = tg.tensor(np.linspace(0.5, 1.5, expected.numel()).reshape(tuple(expected.shape)))
    (result * weights).sum().backward()
    (expected * weights).sum().backward()
    assert result.shape == expected.shape and result.grad_fn.name() == expected.grad_fn.name()
    np.testing.assert_allclose(result.detach().numpy(), expected.detach().numpy(), rtol=1e-13)
    np.testing.assert_array_equal(a.grad.numpy(), c.grad.numpy().T)


def test_a_hook_on_a_transpose_keeps_its_gradient():
    # Registered before the view is used, the hook sees the gradient: the view is not bypassed.
    x, y = _pair(np.float64)
    a, b = (tg.tensor(v, requires_grad=True) for v in (x, y))
    view = a.t()
    seen = []
    view.register_hook(lambda g: seen.append(g.numpy().copy()))
    (view * b.t()).sum().backward()
    np.testing.assert_array_equal(seen[0], y.T)
    np.testing.assert_array_equal(a.grad.numpy(), y)


@pytest.mark.parametrize(
    "ask",
    [
        lambda view, loss: view.register_hook(lambda g: g),
        lambda view, loss: view.retain_grad(),
        lambda view, loss: tg.autograd.grad(loss, view),
        lambda view, loss: loss.backward(inputs=[view]),
    ],
    ids=["register_hook", "retain_grad", "autograd.grad", "backward(inputs)"],
)
def test_asking_for_a_bypassed_transposes_gradient_raises(ask):
    # Ops computed through the source send it no gradient: asked for afterwards, it would
    # silently be missing, so tapegrad says so (PyTorch gives it; .contiguous() keeps it here).
    x, y = _pair(np.float64)
    a, b = (tg.tensor(v, requires_grad=True) for v in (x, y))
    view = a.t()
    loss = (view * b.t()).sum()
    with pytest.raises(RuntimeError, match="transposed view"):
        ask(view, loss)


def test_in_place_changes_of_a_result_computed_untransposed():
    x, y = _pair(np.float64)
    a, b = (tg.tensor(v, requires_grad=True) for v in (x, y))
    result = a.t() * b.t()
    result.mul_(3.0)
    result.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), 3.0 * y)
    np.testing.assert_array_equal(b.grad.numpy(), 3.0 * x)


def test_a_replay_of_ops_on_transposes_equals_eager():
    x, y = _pair(np.float32)

    def f(a, b):
        return ((a.t() * b.t()).relu() + a.t().exp()).sum(1).mean()

    tape = tg.record(f, x, y)
    x2, y2 = x[::-1].copy(), y * 2
    value, grads = tape.value_and_grad(x2, y2)
    a, b = (tg.tensor(v, requires_grad=True) for v in (x2, y2))
    f(a, b).backward()
    np.testing.assert_allclose(value.numpy(), f(tg.tensor(x2), tg.tensor(y2)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(grads[0].numpy(), a.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grads[1].numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_small_transposed_matrices_keep_numpy_copies(monkeypatch):
    monkeypatch.setattr(strided, "transposed_copy", lambda *args: pytest.fail("compiled copy below its size"))
    a = tg.tensor(np.ones((4, 8), np.float32), requires_grad=True)
    (a.t() * a.t()).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), 2 * np.ones((4, 8)))
    assert _record.TILED_COPY_SIZE > 32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_through_large_transposed_operands(dtype):
    x, y = _pair(dtype)
    a, b = (tg.tensor(v, requires_grad=True) for v in (x, y))
    ((a.t() * b.t()) + a.t() ** 3 + tg.relu(a.t()) * 2.0).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), y + 3 * x * x + 2.0 * (x > 0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), x, rtol=1e-6)
    # The same transposed value read twice by one row: saved (and copied) once.
    a.grad = None
    (a.t() * a.t()).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 2 * x, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_with_a_large_transposed_operand(dtype):
    x, y = _pair(dtype)
    g = np.random.default_rng(2).standard_normal((ROWS, ROWS)).astype(dtype)
    a, b = (tg.tensor(v, requires_grad=True) for v in (x, y))
    out = a @ b.t()
    np.testing.assert_allclose(out.detach().numpy(), x @ y.T, rtol=1e-5, atol=1e-5)
    out.backward(tg.tensor(g))
    np.testing.assert_allclose(a.grad.numpy(), g @ y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(b.grad.numpy(), g.T @ x, rtol=1e-4, atol=1e-4)


_PRODUCTS = {  # each operand transposed or not: the kernels' four flag values
    "a @ b.t()": (lambda m, a, b, c: a @ b.t(), 2),
    "c.t() @ a.t()": (lambda m, a, b, c: c.t() @ a.t(), 3),
    "a.t() @ b": (lambda m, a, b, c: a.t() @ b, 1),
    "linear": (lambda m, a, b, c: m.nn.functional.linear(a, b), 2),
}


@pytest.mark.parametrize("name", list(_PRODUCTS))
def test_products_read_a_large_transposes_source_in_place(name, monkeypatch):
    """A product reads a transposed operand's source where it lies (the row flagged as the
    replay's rewrite flags it): no copy to save it, and its gradient lands in the source's slot.
    Values, first and second derivatives against PyTorch; ``grad_fn`` still shows the transpose."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    arrays = [
        rng.standard_normal((ROWS, COLUMNS)),
        rng.standard_normal((ROWS, COLUMNS)),
        rng.standard_normal((COLUMNS, ROWS)),
    ]
    product, flags = _PRODUCTS[name]
    results = []
    for module in (tg, torch):
        a, b, c = (module.tensor(v, requires_grad=True) for v in arrays)
        if module is tg:
            monkeypatch.setattr(
                strided, "transposed_copy", lambda *args: pytest.fail("a transposed operand was copied")
            )
        out = product(module, a, b, c)
        monkeypatch.undo()
        nodes = [type(node).__name__ for node, _ in out.grad_fn.next_functions]
        if module is tg:
            row = tg._tape.resolve(out).ints[out._row * tg._tape.ROW_WIDTH : out._row * tg._tape.ROW_WIDTH + 4]
            assert row[3] == flags  # iparam: the operands read in place
        first = module.autograd.grad((out.tanh() ** 2).sum(), (a, b, c), create_graph=True, allow_unused=True)
        sum(((g * g).sum() for g in first if g is not None), start=out.sum() * 0).backward()
        results.append(
            (
                out.detach().numpy(),
                nodes,
                [g.detach().numpy() for g in first if g is not None],
                [v.grad for v in (a, b, c)],
            )
        )
    ours, theirs = results
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    assert ours[1] == theirs[1]
    for mine, reference in zip(ours[2], theirs[2]):
        np.testing.assert_allclose(mine, reference, rtol=1e-10, atol=1e-12)
    for mine, reference in zip(ours[3], theirs[3]):
        assert (mine is None) == (reference is None)
        if mine is not None:
            np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-9, atol=1e-11)


def test_a_weight_changed_in_place_after_a_product_read_it_raises():
    x, y = _pair(np.float64)
    a, w = tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True)
    out = a @ w.t()
    with tg.no_grad():
        w.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


@pytest.mark.parametrize("shape", [(3, 5), (17, 33), (70, 90), (33, 1030)])
def test_gradients_back_through_a_transpose(shape):
    """``strided_accumulate`` walks a plane whose destination runs along its rows transposed."""
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    g = np.random.default_rng(4).standard_normal(shape[::-1]).astype(np.float32)
    a = tg.tensor(x, requires_grad=True)
    (a.t() * tg.tensor(g)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), g.T)


def test_gradients_back_through_a_permutation_and_a_transposed_sum():
    x = np.random.default_rng(5).standard_normal((3, 40, 50)).astype(np.float32)
    g = np.random.default_rng(6).standard_normal((50, 3, 40)).astype(np.float32)
    a = tg.tensor(x, requires_grad=True)
    (a.permute(2, 0, 1) * tg.tensor(g)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), g.transpose(1, 2, 0))
    w = np.random.default_rng(7).standard_normal(50).astype(np.float32)
    b = tg.tensor(x[0], requires_grad=True)
    (b.t().sum(1) * tg.tensor(w)).sum().backward()
    np.testing.assert_array_equal(b.grad.numpy(), np.broadcast_to(w[None, :], (40, 50)))


def test_strided_accumulate_into_a_transposed_destination_matches_numpy():
    rows, columns = 37, 45  # the view: columns x rows of a rows x columns input
    source = np.random.default_rng(8).standard_normal(rows * columns).astype(np.float32)
    target = np.ones(rows * columns, np.float32)
    strided.strided_accumulate(
        target, strided.ORIGIN, np.array([1, columns]), source, strided.ORIGIN, np.array([rows, 1]),
        np.array([columns, rows]), np.float32(2.0),
    )  # fmt: skip
    np.testing.assert_allclose(target.reshape(rows, columns), 1 + 2 * source.reshape(columns, rows).T, rtol=1e-6)


def test_views_between_the_source_and_its_transpose_keep_their_gradients():
    # _base is the root of a chain of views: recording through it skipped the views between,
    # which autograd.functional and tapegrad.func make (x.view_as(x)), and their gradients.
    x, _ = _pair(np.float64)
    a = tg.tensor(x, requires_grad=True)
    middle = a.view_as(a)
    middle.retain_grad()
    seen = []
    middle.register_hook(lambda g: seen.append(float(g.sum())))
    middle.t().exp().sum().backward()
    np.testing.assert_allclose(middle.grad.numpy(), np.exp(x))
    assert seen and seen[0] == pytest.approx(float(np.exp(x).sum()))
    (hessian,) = tg.autograd.grad(tg.autograd.grad((a[:].t().sin() * a[:].t()).sum(), a, create_graph=True)[0].sum(), a)
    np.testing.assert_allclose(hessian.numpy(), 2 * np.cos(x) - x * np.sin(x), rtol=1e-12)


def test_a_transposed_view_made_a_leaf_gets_its_own_gradient():
    x, y = _pair(np.float64)
    view = tg.tensor(x).t().requires_grad_()
    (view * tg.tensor(y).t()).sum().backward()
    np.testing.assert_array_equal(view.grad.numpy(), y.T)


def test_ops_under_no_grad_do_not_bypass_a_transpose():
    x, _ = _pair(np.float64)
    a = tg.tensor(x, requires_grad=True)
    view = a.t()
    with tg.no_grad():
        view.abs().mean()  # a statistic logged on the side
    view.retain_grad()  # no error: nothing was recorded through the source
    view.exp().sum().backward()
    np.testing.assert_allclose(view.grad.numpy(), np.exp(x.T))


def test_reductions_over_no_named_dimension_reduce_every_one():
    x, _ = _pair(np.float64)
    for t in (tg.tensor(x).t(), tg.tensor(np.ascontiguousarray(x.T))):
        assert t.sum(dim=[]).shape == () and float(t.sum(dim=[])) == pytest.approx(float(x.sum()))
        assert t.mean(dim=(), keepdim=True).shape == (1, 1)


def _graph(fn) -> list:
    """The backward graph below ``fn`` as (depth, node name) pairs, depth first."""
    found, stack = [], [(fn, 0)]
    while stack:
        node, depth = stack.pop()
        if node is not None:
            found.append((depth, type(node).__name__))
            stack.extend((child, depth + 1) for child, _ in reversed(node.next_functions))
    return found


_READ_THROUGH = {  # ops that read a large transpose through its source (``_transposed_source``)
    "relu": lambda m, a, b: a.t().relu(),
    "sin": lambda m, a, b: a.t().sin(),
    "mul": lambda m, a, b: a.t() * b.t(),
    "mul, then exp": lambda m, a, b: (a.t() * b.t()).exp(),
    "sum": lambda m, a, b: a.t().sum(),
    "sum(0)": lambda m, a, b: a.t().sum(0),
    "sum(1, keepdim)": lambda m, a, b: a.t().sum(1, keepdim=True),
    "matmul": lambda m, a, b: a.t() @ b,
    "matmul of a result's transpose": lambda m, a, b: (a * 2).t() @ b,
}


@pytest.mark.parametrize("name", list(_READ_THROUGH))
def test_ops_read_through_a_transpose_show_pytorch_s_graph(name):
    """Computed on the transposes' sources, these showed the op twice (``ReluBackward0`` over
    ``ReluBackward0``) or a leaf where PyTorch's graph has the transpose's ``TBackward0``."""
    torch = pytest.importorskip("torch")
    graphs = []
    for module in (tg, torch):
        a = module.ones(ROWS, COLUMNS, requires_grad=True)
        b = module.ones(ROWS, COLUMNS, requires_grad=True)
        graphs.append(_graph(_READ_THROUGH[name](module, a, b).grad_fn))
    assert graphs[0] == graphs[1]
