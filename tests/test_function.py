"""Custom ``autograd.Function``: gradients, the ctx, errors and graph objects, against the analytic
derivatives and, where it is installed, against PyTorch running the same classes."""

from __future__ import annotations

import gc
import types
import weakref

import numpy as np
import pytest

import tapegrad as tg


def _functions(m):
    """The same custom Functions written against ``m`` (tapegrad or torch)."""

    class MyExp(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y

    class MulAndSub(m.autograd.Function):
        """(a * b, a - b): two inputs, two outputs."""

        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b, a - b

        @staticmethod
        def backward(ctx, grad_product, grad_difference):
            a, b = ctx.saved_tensors
            return grad_product * b + grad_difference, grad_product * a - grad_difference

    class Scale(m.autograd.Function):
        """x * factor, with factor a Python number, which gets None as its gradient."""

        @staticmethod
        def forward(ctx, x, factor):
            ctx.factor = factor
            return x * factor

        @staticmethod
        def backward(ctx, grad):
            return grad * ctx.factor, None

    return types.SimpleNamespace(MyExp=MyExp, MulAndSub=MulAndSub, Scale=Scale)


F = _functions(tg)


def _mixed_scenario(m):
    """Ordinary ops before and after each Function; returns the leaves' gradients."""
    f = _functions(m)
    x = m.tensor([0.1, -0.4, 0.7], dtype=m.float64, requires_grad=True)
    w = m.tensor([1.5, 2.0, -0.5], dtype=m.float64, requires_grad=True)
    y = f.MyExp.apply(x * 2.0)
    product, difference = f.MulAndSub.apply(y, w.sin())
    loss = (product * 3.0 + difference * difference).sum() + f.Scale.apply(x, 4.0).sum()
    loss.backward()
    return x.grad.tolist(), w.grad.tolist()


def test_gradients_through_functions_are_the_analytic_ones():
    x_grad, w_grad = _mixed_scenario(tg)
    x = np.array([0.1, -0.4, 0.7])
    w = np.array([1.5, 2.0, -0.5])
    y, s = np.exp(2 * x), np.sin(w)
    # loss = sum(3 y s + (y - s)^2) + 4 sum(x)
    np.testing.assert_allclose(x_grad, (3 * s + 2 * (y - s)) * 2 * y + 4, rtol=1e-12)
    np.testing.assert_allclose(w_grad, (3 * y - 2 * (y - s)) * np.cos(w), rtol=1e-12)


def test_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    for ours, theirs in zip(_mixed_scenario(tg), _mixed_scenario(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_non_tensor_arguments_get_none_and_the_ctx_keeps_attributes():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = F.Scale.apply(x, 3.0)
    assert y.grad_fn.factor == 3.0  # the node reads the ctx, as PyTorch's node is the ctx
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_keyword_arguments_are_inputs_after_the_positional_ones():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = F.Scale.apply(x, factor=5.0)
    assert y.grad_fn.needs_input_grad == (True, False)
    y.sum().backward()
    assert x.grad.tolist() == [5.0, 5.0]


def test_needs_input_grad_and_forward_runs_without_grad():
    seen = {}

    class Weighted(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias):
            seen["needs"] = ctx.needs_input_grad
            seen["grad mode"] = tg.is_grad_enabled()
            product = x * weight
            seen["inner op recorded"] = product.grad_fn is not None
            return product + bias

        @staticmethod
        def backward(ctx, grad):
            return grad * 2.0, None, None

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = Weighted.apply(x, tg.tensor([3.0, 4.0]), 1.0)
    assert seen == {"needs": (True, False, False), "grad mode": False, "inner op recorded": False}
    assert y.grad_fn.name() == "WeightedBackward"  # not the ops inside forward


def test_without_inputs_requiring_grad_nothing_is_recorded():
    x = tg.tensor([1.0, 2.0])
    assert F.MyExp.apply(x).grad_fn is None and not F.MyExp.apply(x).requires_grad
    leaf = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.no_grad():
        assert not F.MyExp.apply(leaf).requires_grad


def test_grad_fn_name_and_next_functions():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0])
    product, difference = F.MulAndSub.apply(a * 2.0, b)
    node = product.grad_fn
    assert node.name() == type(node).__name__ == "MulAndSubBackward"
    assert repr(node).startswith("<tapegrad.autograd.function.MulAndSubBackward object at 0x")
    assert difference.grad_fn is node  # one node per call, as in PyTorch
    (upstream, index), (constant, _) = node.next_functions
    assert upstream.name() == "MulBackward0" and index == 0
    assert constant is None  # b does not require grad
    ((leaf, _),) = F.Scale.apply(a, 2.0).grad_fn.next_functions  # no entry for the number
    assert leaf.name() == "torch::autograd::AccumulateGrad" and leaf.variable is a  # as PyTorch names it


def test_grad_fn_matches_pytorch():
    torch = pytest.importorskip("torch")

    def describe(m):
        f = _functions(m)
        a = m.tensor([1.0, 2.0], requires_grad=True)
        product, difference = f.MulAndSub.apply(a * 2.0, m.tensor([3.0, 4.0]))
        node = product.grad_fn
        names = [None if entry is None else entry.name() for entry, _ in node.next_functions]
        return node.name(), difference.grad_fn is node, names, str(f.MyExp.apply(a)).split("grad_fn=")[1]

    assert describe(tg) == describe(torch)


def test_a_function_on_a_tape_merged_into_a_larger_one():
    x = tg.tensor([0.5, 1.0], requires_grad=True)
    y = F.MyExp.apply(x * 2.0)  # on a small tape of its own
    node = y.grad_fn
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    big = w
    for _ in range(20):
        big = big * 1.0
    z = (y * big).sum()  # absorbs y's tape into big's: its rows and Function table shift
    assert y.grad_fn is node and node.next_functions[0][0].name() == "MulBackward0"
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]) * [1.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), np.exp([1.0, 2.0]), rtol=1e-6)


def test_mark_non_differentiable_and_materialized_zero_gradients():
    received = []

    class WithMask(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            mask = (x > 0) * 1.0
            ctx.mark_non_differentiable(mask)
            return x * mask, mask

        @staticmethod
        def backward(ctx, grad, grad_mask):
            received.append(grad_mask.tolist())
            return grad * 2.0

    x = tg.tensor([-1.0, 3.0], requires_grad=True)
    value, mask = WithMask.apply(x)
    assert value.requires_grad and not mask.requires_grad and mask.grad_fn is None
    value.sum().backward()
    assert received == [[0.0, 0.0]]
    assert x.grad.tolist() == [2.0, 2.0]


def test_set_materialize_grads_false_passes_none_for_unreached_outputs():
    received = []

    class Pair(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 2.0, x * 3.0

        @staticmethod
        def backward(ctx, grad_first, grad_second):
            received.append((grad_first, grad_second.tolist()))
            return grad_second * 3.0

    x = tg.tensor([1.0], requires_grad=True)
    _, second = Pair.apply(x)
    second.sum().backward()
    assert received == [(None, [1.0])]
    assert x.grad.tolist() == [3.0]


def _returning(gradients):
    """A Function of (x, factor, y) whose backward returns ``gradients(grad)``."""

    def define(m):
        class Bad(m.autograd.Function):
            @staticmethod
            def forward(ctx, x, factor, y):
                return x * factor + y

            @staticmethod
            def backward(ctx, grad):
                return gradients(grad)

        return Bad

    return define


BAD_GRADIENTS = {
    "too few": (
        _returning(lambda g: (g, None)),
        "function BadBackward returned an incorrect number of gradients (expected 3, got 2)",
    ),
    "too many": (
        _returning(lambda g: (g, None, g, g)),
        "function BadBackward returned an incorrect number of gradients (expected 3, got 4)",
    ),
    "one, not a tuple": (
        _returning(lambda g: g),
        "function BadBackward returned an incorrect number of gradients (expected 3, got 1)",
    ),
    "wrong shape": (
        _returning(lambda g: (g.sum(), None, g)),
        "Function BadBackward returned an invalid gradient at index 0 - got [] but expected shape compatible with [2]",
    ),
    "wrong shape, second tensor": (
        _returning(lambda g: (g, None, g[:1])),
        "Function BadBackward returned an invalid gradient at index 1 - got [1] but expected shape compatible with [2]",
    ),
    "gradient for a number": (
        _returning(lambda g: (g, g, g)),
        "function BadBackward returned a gradient different than None at position 2, but the corresponding "
        "forward input was not a Variable",
    ),
    "not a tensor": (
        _returning(lambda g: (g, None, 3)),
        "expected Variable or None (got int)",
    ),
}


def _backward_error(m, define):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    y = m.tensor([3.0, 4.0], requires_grad=True)
    with pytest.raises(RuntimeError) as raised:
        define(m).apply(x, 2.0, y).sum().backward()
    return str(raised.value)


@pytest.mark.parametrize("case", BAD_GRADIENTS, ids=str)
def test_bad_gradients_raise_pytorchs_error(case):
    define, message = BAD_GRADIENTS[case]
    assert _backward_error(tg, define) == message


@pytest.mark.parametrize("case", BAD_GRADIENTS, ids=str)
def test_bad_gradient_messages_are_pytorchs(case):
    torch = pytest.importorskip("torch")
    define, message = BAD_GRADIENTS[case]
    assert _backward_error(torch, define) == message


def _lenient_scenario(m):
    """What PyTorch accepts: extra trailing Nones, a gradient to be summed down to the input's
    shape, and one of another dtype (cast to the input's)."""
    x = m.tensor([[1.0, 2.0]], requires_grad=True)  # float32
    gradients = _returning(lambda g: (g.double().expand(3, 2, 2), None, None, None))
    gradients(m).apply(x, 2.0, m.tensor([0.5, 0.5])).sum().backward()
    return x.grad.tolist(), str(x.grad.dtype).split(".")[-1]


def test_lenient_gradients_are_summed_and_cast():
    assert _lenient_scenario(tg) == ([[6.0, 6.0]], "float32")


def test_lenient_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    assert _lenient_scenario(tg) == _lenient_scenario(torch)


def test_float32_stays_float32():
    x = tg.tensor([0.5, 1.5], requires_grad=True)
    y = F.MyExp.apply(x)
    assert y.dtype == tg.float32
    (y * y).sum().backward()
    assert x.grad.dtype == tg.float32
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(2 * np.array([0.5, 1.5])), rtol=1e-6)


def test_hooks_on_a_function_output_and_its_input():
    seen = []
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: seen.append(("x", g.tolist())))
    product, difference = F.MulAndSub.apply(x, tg.tensor([3.0, 4.0]))
    product.register_hook(lambda g: seen.append(("product", g.tolist())) or g * 10.0)
    (product + difference).sum().backward()
    # The hook saw the finished gradient and its replacement is what the Function's backward got.
    assert seen == [("product", [1.0, 1.0]), ("x", [31.0, 41.0])]
    assert x.grad.tolist() == [31.0, 41.0]


def test_autograd_grad_through_a_function():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    h = x * 3.0
    y = F.MyExp.apply(h)
    grad_x, grad_h = tg.autograd.grad((y * 2.0).sum(), (x, h))
    np.testing.assert_allclose(grad_h.numpy(), 2 * np.exp([0.0, 3.0]), rtol=1e-6)
    np.testing.assert_allclose(grad_x.numpy(), 6 * np.exp([0.0, 3.0]), rtol=1e-6)
    assert x.grad is None


def _second_backward(m, retain_graph):
    f = _functions(m)
    x = m.tensor([1.0, 2.0], requires_grad=True)
    saves = f.MyExp.apply(x).sum()  # reads its saved output in backward
    saves_nothing = f.Scale.apply(x, 2.0).sum()
    outcome = []
    for root in (saves_nothing, saves):
        root.backward(retain_graph=retain_graph)
        try:
            root.backward()
            outcome.append("works")
        except RuntimeError as error:
            outcome.append(str(error))
    return outcome, [round(value, 4) for value in x.grad.tolist()]


def test_second_backward_needs_retain_graph_only_when_saved_tensors_are_read():
    from tapegrad.autograd.engine import SECOND_BACKWARD

    assert _second_backward(tg, retain_graph=False) == (["works", SECOND_BACKWARD], [6.7183, 11.3891])
    assert _second_backward(tg, retain_graph=True) == (["works", "works"], [9.4366, 18.7781])


def test_second_backward_matches_pytorch():
    torch = pytest.importorskip("torch")
    for retain_graph in (False, True):
        assert _second_backward(tg, retain_graph) == _second_backward(torch, retain_graph)


def test_saved_tensor_changed_in_place_raises():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1.0
    product, _ = F.MulAndSub.apply(h, tg.tensor([3.0, 4.0]))
    h.mul_(2.0)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: \[tapegrad.FloatTensor \[2\]\]"):
        product.sum().backward()


def test_an_input_returned_as_is_becomes_a_new_output():
    class Identity(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad * 5.0

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = Identity.apply(x)
    assert y is not x and x.is_leaf and y.grad_fn.name() == "IdentityBackward"
    y.sum().backward()
    assert x.grad.tolist() == [5.0, 5.0]


def test_setup_context_style():
    class Exp(tg.autograd.Function):
        @staticmethod
        def forward(x, scale=2.0):
            return x.exp() * scale

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.inputs_seen = inputs
            ctx.save_for_backward(output)

        @staticmethod
        def backward(ctx, grad):
            (output,) = ctx.saved_tensors
            return grad * output, None

    x = tg.tensor([0.0, 1.0], requires_grad=True)
    y = Exp.apply(x)
    assert y.grad_fn.inputs_seen[1] == 2.0  # the default was bound, as PyTorch does
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([0.0, 1.0]), rtol=1e-6)


def test_inside_record_a_function_is_refused():
    with pytest.raises(
        NotImplementedError, match="custom autograd.Function MyExp cannot be recorded by tapegrad.record"
    ):
        tg.record(lambda x: F.MyExp.apply(x).sum(), np.array([1.0, 2.0]))


def test_an_unreachable_call_is_freed_without_the_garbage_collector():
    # Saved tensors must not hold the tape: a loop that never calls backward would pile up
    # cyclic garbage, graphs and all, until a full collection.
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    gc.disable()
    try:
        product, difference = F.MulAndSub.apply(F.MyExp.apply(x * 2.0), x)
        tape = weakref.ref(product._tape)
        del product, difference
        assert tape() is None
    finally:
        gc.enable()


# -- create_graph through a Function ----------------------------------------------------------


def _second_order(m):
    """Second derivatives through Functions: saved inputs, saved outputs, two outputs, the
    setup_context style, a broadcast gradient summed back, and a leaf used twice."""
    f = _functions(m)

    class Cube(m.autograd.Function):
        @staticmethod
        def forward(x):
            return x**3

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 3 * x**2 * grad

    class AddRow(m.autograd.Function):
        """x + row: the row's gradient returned at x's shape, summed back by the engine."""

        @staticmethod
        def forward(ctx, x, row):
            ctx.save_for_backward(x)
            return x * x + row

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad, grad * 1.0

    x = m.tensor([[0.3, -0.8, 1.1], [0.5, 0.2, -1.4]], dtype=m.float64, requires_grad=True)
    w = m.tensor([1.5, -0.25, 0.7], dtype=m.float64, requires_grad=True)
    product, difference = f.MulAndSub.apply(f.MyExp.apply(x * 0.5), w.sin())
    loss = (product * difference).sum() + Cube.apply(x).sum() + (AddRow.apply(x, w) * x).sum()
    gx, gw = m.autograd.grad(loss, (x, w), create_graph=True)
    second = m.autograd.grad((gx * gx).sum() + (gw * gw.cos()).sum(), (x, w))
    return [gx.tolist(), gw.tolist(), *(value.tolist() for value in second)]


def test_create_graph_through_functions_gives_central_differences():
    def first(values):  # the first derivatives' statistic, as a number, by central differences
        x = tg.tensor(values[:6].reshape(2, 3), requires_grad=True)
        w = tg.tensor(values[6:], requires_grad=True)
        f = _functions(tg)
        product, difference = f.MulAndSub.apply(f.MyExp.apply(x * 0.5), w.sin())
        loss = (product * difference).sum() + (x**3).sum() + ((x * x + w) * x).sum()
        gx, gw = tg.autograd.grad(loss, (x, w))
        return float((gx * gx).sum() + (gw * gw.cos()).sum())

    ours = _second_order(tg)
    point = np.array([0.3, -0.8, 1.1, 0.5, 0.2, -1.4, 1.5, -0.25, 0.7])
    eps = 1e-6
    numeric = np.array(
        [(first(point + eps * unit) - first(point - eps * unit)) / (2 * eps) for unit in np.eye(len(point))]
    )
    np.testing.assert_allclose(np.concatenate([np.ravel(ours[2]), ours[3]]), numeric, rtol=1e-6, atol=1e-6)


def test_create_graph_through_functions_matches_pytorch():
    torch = pytest.importorskip("torch")
    for ours, theirs in zip(_second_order(tg), _second_order(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_create_graph_reads_a_saved_output_at_its_row():
    # MyExp saves its output y: the second derivative of sum(exp(x)) is exp(x) only if the
    # saved y differentiates back to x (a constant y gave 0, silently, before).
    x = tg.tensor([0.0, 1.0], dtype=tg.float64, requires_grad=True)
    (g,) = tg.autograd.grad(F.MyExp.apply(x).sum(), x, create_graph=True)
    (h,) = tg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.tolist(), np.exp([0.0, 1.0]), rtol=1e-15)


def test_once_differentiable_refuses_a_second_derivative():
    class Square(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @tg.autograd.function.once_differentiable
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            assert not tg.is_grad_enabled()
            return 2 * x * grad

    x = tg.tensor([1.0, 3.0], requires_grad=True)
    Square.apply(x).sum().backward()
    assert x.grad.tolist() == [2.0, 6.0]
    # As PyTorch's wrapper: a gradient argument without grad gives gradients without grad...
    (g,) = tg.autograd.grad(Square.apply(x).sum(), x, create_graph=True)
    assert not g.requires_grad and g.tolist() == [2.0, 6.0]
    # ... one that requires grad, gradients whose own backward raises
    (g,) = tg.autograd.grad((Square.apply(x) * x).sum(), x, create_graph=True)
    assert g.requires_grad and g.tolist() == [3.0, 27.0]
    with pytest.raises(RuntimeError, match="trying to differentiate twice a function that was marked with @once"):
        g.sum().backward()


def test_create_graph_without_retain_graph_frees_the_call():
    x = tg.tensor([0.5, 1.5], requires_grad=True)
    y = F.MyExp.apply(x).sum()
    tg.autograd.grad(y, x, create_graph=True, retain_graph=False)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        tg.autograd.grad(y, x)


def test_linalg_second_derivatives_through_inv_and_solve():
    rng = np.random.default_rng(3)
    start = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    rhs = rng.standard_normal((3, 2))

    def gradient(values, create_graph=False):
        A = tg.tensor(values, requires_grad=True)  # noqa: N806
        loss = (tg.linalg.inv(A) ** 2).sum() + (tg.linalg.solve(A, tg.tensor(rhs)) * A[:, :2]).sum()
        return A, tg.autograd.grad(loss, A, create_graph=create_graph)[0]

    A, g = gradient(start, create_graph=True)  # noqa: N806
    (h,) = tg.autograd.grad((g * g).sum(), A)
    eps = 1e-6
    numeric = np.zeros((3, 3))
    for index in np.ndindex(3, 3):
        step = np.zeros((3, 3))
        step[index] = eps
        up, down = gradient(start + step)[1].numpy(), gradient(start - step)[1].numpy()
        numeric[index] = ((up**2).sum() - (down**2).sum()) / (2 * eps)
    np.testing.assert_allclose(h.numpy(), numeric, rtol=1e-5, atol=1e-6)


def test_an_output_of_inv_changed_in_place_fails_the_backward():
    # The inverse is saved as the output itself, as PyTorch's node saves it.
    A = tg.tensor([[2.0, 1.0], [1.0, 3.0]], requires_grad=True)  # noqa: N806
    inverse = tg.linalg.inv(A)
    inverse.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        inverse.sum().backward()


def _view_outputs(m):
    """Messages of in-place changes of a Function's outputs that are views, as PyTorch refuses."""

    class AsIs(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    class Viewed(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    messages = []
    for function in (AsIs, Viewed):
        x = m.tensor([1.0, 2.0], requires_grad=True) * 1
        y = function.apply(x)
        messages.append(y._base is x)
        with pytest.raises(RuntimeError) as error:
            y.add_(1)
        messages.append(str(error.value))
    x = m.tensor([1.0, 2.0], requires_grad=True) * 1
    y = AsIs.apply(x)
    x.mul_(3)  # the base changed: an op on the output is refused
    with pytest.raises(RuntimeError) as error:
        y * 2
    messages.append(str(error.value))
    leaf = m.tensor([1.0, 2.0], requires_grad=True)
    (AsIs.apply(leaf) * 3).sum().backward()  # the custom backward still runs
    messages.append(leaf.grad.tolist())
    return messages


def test_in_place_changes_of_outputs_that_are_views_are_refused():
    messages = _view_outputs(tg)
    assert messages[1].startswith("Output 0 of AsIs is a view and is being modified inplace")
    assert messages[-1] == [6.0, 6.0]
    torch = pytest.importorskip("torch")
    assert messages == _view_outputs(torch)


def _dirty(m):
    """mark_dirty: the changed input is the output, with the call as its history."""

    class Double(m.autograd.Function):
        @staticmethod
        def forward(ctx, x, factor):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad * 2, None

    class Unreturned(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.mark_dirty(x)
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad

    seen = []
    a = m.tensor([1.0, 2.0], requires_grad=True)
    x = a * 1
    y = Double.apply(x, 3)
    seen += [y is x, y.grad_fn.name(), x._version, y.tolist()]
    (y * m.tensor([2.0, 3.0])).sum().backward()
    seen.append(a.grad.tolist())
    for call in (lambda: Double.apply(a, 1), lambda: Unreturned.apply(a * 1)):
        with pytest.raises(RuntimeError) as error:
            call()
        seen.append(str(error.value))
    b = m.tensor([1.0, 2.0], requires_grad=True)
    c = b * 1
    d = c.sin()  # saved c, which Double then changes
    Double.apply(c, 0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        d.sum().backward()
    return seen


def test_mark_dirty():
    seen = _dirty(tg)
    assert seen[:2] == [True, "DoubleBackward"] and seen[4] == [4.0, 6.0]
    torch = pytest.importorskip("torch")
    assert seen == _dirty(torch)


def _dirty_and_saved(m):
    class InplaceSwish(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            s = x.sigmoid()
            x.mul_(s)
            ctx.mark_dirty(x)
            ctx.save_for_backward(x, s)  # the output, saved after the change: no version error
            return x

        @staticmethod
        def backward(ctx, grad):
            y, s = ctx.saved_tensors
            return grad * (s + y * (1 - s))

    class Flagged(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x.add_(1)
            ctx.mark_dirty(x)
            ctx.mark_non_differentiable(x)
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad

    a = m.tensor([0.5, -1.0], requires_grad=True)
    InplaceSwish.apply(a * 1).sum().backward()
    flagged = Flagged.apply(m.ones(2, requires_grad=True) * 3)
    return a.grad.tolist(), flagged.requires_grad, flagged.grad_fn


def test_mark_dirty_with_saved_outputs_and_non_differentiable():
    ours = _dirty_and_saved(tg)
    assert ours[1:] == (False, None)
    torch = pytest.importorskip("torch")
    theirs = _dirty_and_saved(torch)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    assert ours[1:] == theirs[1:]


def _grad_to_output(m):
    calls = []

    class Double(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            calls.append("backward")
            return grad * 2

    x = m.ones(2, requires_grad=True)
    y = Double.apply(x)
    (to_y,) = m.autograd.grad((y * 3).sum(), y, retain_graph=True)
    before = list(calls)
    to_both = m.autograd.grad((y * 3).sum(), [y, x])
    return before, calls, to_y.tolist(), [g.tolist() for g in to_both]


def test_autograd_grad_stops_at_a_function_output_it_wants():
    ours = _grad_to_output(tg)
    assert ours[0] == [] and ours[1] == ["backward"]  # run only when something below is wanted
    torch = pytest.importorskip("torch")
    assert ours == _grad_to_output(torch)


def _dirty_saved_second_derivative(m, square: bool):
    """PyTorch's in-place Function pattern (``mark_dirty`` docs): forward changes x in place,
    marks it dirty and saves it, which saves the output; the second derivative then reads it."""

    class InPlace(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x.mul_(x) if square else x.exp_()
            ctx.mark_dirty(x)
            ctx.save_for_backward(x)
            return x

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * 2 * y.sqrt() if square else g * y

    x0 = m.tensor([0.5, 1.0, 2.0], dtype=m.float64, requires_grad=True)
    (g,) = m.autograd.grad(InPlace.apply(x0 * 1).sum(), x0, create_graph=True)
    (h,) = m.autograd.grad(g.sum(), x0)
    return g.tolist(), h.tolist()


@pytest.mark.parametrize("square", [False, True])
def test_a_dirty_tensor_saved_by_forward_is_its_output_in_a_double_backward(square):
    """Found by a review: the saved tensor was found as the call's input (the same object) and
    stood, in a double backward, at the row from before the change: exp_'s second derivative
    came out 1, x * x's 1 / x."""
    x = np.array([0.5, 1.0, 2.0])
    expected = (2 * x, [2.0] * 3) if square else (np.exp(x), np.exp(x))
    got = _dirty_saved_second_derivative(tg, square)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(got, _dirty_saved_second_derivative(torch, square), rtol=1e-12)


def test_save_for_forward_is_kept_and_reverse_mode_runs():
    """Found by a review: a Function written for PyTorch's forward mode, which calls
    ``ctx.save_for_forward`` in ``forward``, failed with AttributeError even for ``.backward()``."""

    class Sin(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            ctx.save_for_forward(x)
            return x.sin()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x.cos()

    x = tg.tensor([0.5, 1.0], dtype=tg.float64, requires_grad=True)
    Sin.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.tolist(), np.cos([0.5, 1.0]), rtol=1e-15)
