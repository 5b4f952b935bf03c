"""Tensor hooks and retain_grad, the whole kind: a tensor's hooks see its *total* gradient exactly
once per backward, whatever kind of tensor it is and however often it is used.

Every scenario is a function of the module (``tapegrad`` or ``torch``) that returns what a user
can observe: each hook call's gradient, in order, and the resulting ``.grad`` values. Each is
checked two ways: against PyTorch 2.13 where it is installed, and without PyTorch against an
oracle that needs no second library (the same program without hooks gives the gradient every
hook must have seen, and each hook runs once).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import tapegrad as tg

# -- the tensors a hook can sit on --------------------------------------------------------------


def _leaf(m):
    x = m.tensor([1.0, -2.0, 3.0, 0.5], requires_grad=True)
    return x, x


def _non_leaf(m):
    x = m.tensor([1.0, -2.0, 3.0, 0.5], requires_grad=True)
    return x, x * 1.5


def _view(m):
    x = m.tensor([[1.0, -2.0], [3.0, 0.5], [4.0, -1.0]], requires_grad=True)
    return x, x[1:].reshape(4)


def _detached(m):
    # A new leaf made from another tensor's values: .data and .detach() share no graph.
    source = m.tensor([1.0, -2.0, 3.0, 0.5], requires_grad=True) * 2.0
    x = source.data.requires_grad_()
    return x, x


def _from_detach(m):
    source = m.tensor([1.0, -2.0, 3.0, 0.5], requires_grad=True) * 2.0
    x = source.detach().requires_grad_()
    return x, x


KINDS = {"leaf": _leaf, "non_leaf": _non_leaf, "view": _view, "data": _detached, "detach": _from_detach}

# -- how the hooked tensor is used --------------------------------------------------------------


def _once(m, t):
    return (t * t).sum()


def _twice(m, t):
    return (t * 2.0 + t**3).sum()  # the reproducer of the issue: two partial gradients


def _in_a_loop(m, t):
    total = t.sin().sum()
    for step in range(3):
        total = total + (t * (step + 1.0)).exp().sum() * 0.01
    return total


def _through_two_graphs(m, t):
    # Two graphs that start from the tensor on their own and meet only at the end.
    a = t.tanh()
    b = t * t
    return (a * 3.0).sum() + (b * 0.5).sum()


USES = {"once": _once, "twice": _twice, "loop": _in_a_loop, "two_graphs": _through_two_graphs}

# -- what a hook does ---------------------------------------------------------------------------


def _hooks_returning_none(t, log):
    t.register_hook(lambda g: log.append(("observe", g.tolist())))


def _hooks_replacing(t, log):
    t.register_hook(lambda g: log.append(("clamp", g.tolist())) or g.clamp(-5.0, 5.0))


def _hooks_side_effects(t, log):
    t.register_hook(lambda g: log.append(("count", len(log))))


def _several_hooks(t, log):
    # Each sees the previous one's result, in the order registered.
    t.register_hook(lambda g: log.append(("first", g.tolist())) or g * 2.0)
    t.register_hook(lambda g: log.append(("second", g.tolist())))
    t.register_hook(lambda g: log.append(("third", g.tolist())) or g + 1.0)


def _hooks_with_retain_grad(t, log):
    if not t.is_leaf:
        t.retain_grad()
    t.register_hook(lambda g: log.append(("scale", g.tolist())) or g * 0.5)


HOOKS = {
    "none": _hooks_returning_none,
    "replace": _hooks_replacing,
    "side_effect": _hooks_side_effects,
    "several": _several_hooks,
    "retain_grad": _hooks_with_retain_grad,
}


def _rounded(values):
    return np.asarray(values, np.float64).tolist()


def _same(ours, theirs) -> bool:
    """Equal structure, names and counts; numbers equal to float32 rounding (PyTorch's sums of
    float32 values may round differently)."""
    if isinstance(theirs, (list, tuple)):
        return (
            isinstance(ours, (list, tuple))
            and len(ours) == len(theirs)
            and all(_same(a, b) for a, b in zip(ours, theirs))
        )
    if isinstance(theirs, float):
        return isinstance(ours, float) and ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)
    return ours == theirs


def _observe(log):
    return [(name, _rounded(value) if isinstance(value, list) else value) for name, value in log]


def _scenario(m, kind, use, hooks):
    """Run one combination; return the hook log, the leaf's .grad and the hooked tensor's."""
    log = []
    leaf, hooked = KINDS[kind](m)
    HOOKS[hooks](hooked, log)
    USES[use](m, hooked).backward()
    hooked_grad = hooked.grad if (hooked.is_leaf or hooked.retains_grad) else None
    return (
        _observe(log),
        _rounded(leaf.grad.tolist()),
        None if hooked_grad is None else _rounded(hooked_grad.tolist()),
    )


COMBINATIONS = list(itertools.product(KINDS, USES, HOOKS))


@pytest.mark.parametrize("kind,use,hooks", COMBINATIONS)
def test_hook_matches_pytorch(kind, use, hooks):
    torch = pytest.importorskip("torch")
    assert _same(_scenario(tg, kind, use, hooks), _scenario(torch, kind, use, hooks))


@pytest.mark.parametrize("kind,use", list(itertools.product(KINDS, USES)))
def test_hook_sees_the_total_gradient_once(kind, use):
    """Without PyTorch: the gradient with no hook is what the one hook call must see, and a
    hook returning its argument unchanged leaves every gradient as it was."""
    leaf, plain = KINDS[kind](tg)
    USES[use](tg, plain).backward()
    expected = leaf.grad.numpy().copy()
    seen = []
    leaf, hooked = KINDS[kind](tg)
    hooked.retain_grad()
    hooked.register_hook(lambda g: seen.append(g.numpy().copy()))
    USES[use](tg, hooked).backward()
    assert len(seen) == 1
    np.testing.assert_allclose(leaf.grad.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(seen[0], hooked.grad.numpy(), rtol=1e-6)


def test_clamping_hook_clamps_the_sum():
    # The reproducer: the two partial gradients are 2 and 3x^2; the hook clamps their sum.
    x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    x.register_hook(lambda g: g.clamp(-5, 5))
    (x * 2 + x**3).sum().backward()
    assert x.grad.tolist() == [5.0, 5.0, 5.0]


def test_merged_graphs_keep_one_row_per_leaf():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2.0) + (x.exp() * x)  # x * 2.0 and x.exp() each start a graph; + joins them
    y.sum().backward()
    leaves = [tensor for _, tensor in y._tape.leaves if tensor is x]
    assert len(leaves) == 1
    nodes = [f for f, _ in y.grad_fn.next_functions[0][0].next_functions if f is not None]
    assert all(node is nodes[0] for node in nodes if node.name() == "torch::autograd::AccumulateGrad")


def test_merged_stack_reads_the_shared_leaf():
    # stack/cat name their inputs by row delta: a merge that re-aims a leaf must re-aim those.
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(g.tolist()))
    a = x.exp()
    b = tg.stack([x, x * 3.0]).sum(0)  # a second graph starting at x
    (a * b).sum().backward()
    expected = np.exp([1.0, 2.0]) * (4.0 * np.array([1.0, 2.0])) + np.exp([1.0, 2.0]) * 4.0
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)
    assert len(calls) == 1


def _readers_of_shared_leaf_rows(tape) -> list:
    from tapegrad._ops import OPCODE
    from tapegrad._tape import IN0, IN1, OPCODE_MASK, ROW_WIDTH

    ints = tape.ints
    opcodes = [ints[r * ROW_WIDTH] & OPCODE_MASK for r in range(tape.n)]
    shared = {r for r in range(tape.n) if opcodes[r] == OPCODE["shared_leaf"]}
    return [
        r
        for r in range(tape.n)
        if opcodes[r] != OPCODE["shared_leaf"] and {ints[r * ROW_WIDTH + IN0], ints[r * ROW_WIDTH + IN1]} & shared
    ]


def test_merged_graphs_read_the_leafs_own_row():
    """``x * y`` and ``x.sin()`` start two tapes that ``+`` joins: the second's readers of x are
    re-aimed at x's row of the first (they saved the same value), so x's gradient is summed in
    one slot, with no pass row between; the hook sees the total once."""
    rng = np.random.default_rng(0)
    xa, ya = rng.standard_normal(64), rng.standard_normal(64)
    x = tg.tensor(xa, requires_grad=True)
    y = tg.tensor(ya, requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(g.numpy().copy()))
    out = (x * y + x.sin()).sum()
    assert _readers_of_shared_leaf_rows(out._tape) == []
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), ya + np.cos(xa), rtol=1e-14)
    np.testing.assert_array_equal(y.grad.numpy(), xa)
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], ya + np.cos(xa), rtol=1e-14)


def test_merged_graphs_keep_the_pass_row_where_a_custom_function_reads_the_leaf():
    class Sine(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.sin()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x.cos()

    xa = np.linspace(-1.0, 1.0, 32)
    x = tg.tensor(xa, requires_grad=True)
    y = tg.tensor(np.full(32, 2.0), requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(1))
    first = x * y
    second = Sine.apply(x) * 3.0  # its tape has a Function call reading x: not re-aimed
    (first + second).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.0 + 3.0 * np.cos(xa), rtol=1e-14)
    assert len(calls) == 1


# -- retain_grad and hooks around an in-place change --------------------------------------------


def _in_place_after_retain_grad(m):
    a = m.tensor([1.0, 2.0], requires_grad=True).clone()
    a.retain_grad()
    a.mul_(2)
    (a * 3).sum().backward()
    return _rounded(a.grad.tolist())


def _in_place_after_register_hook(m):
    # Hooks registered before the change stay with the old value's gradient (PyTorch 2.13);
    # hooks registered after it see the new value's.
    log = []
    x = m.tensor([1.0, 2.0], requires_grad=True)
    a = x.clone()
    a.register_hook(lambda g: log.append(("before", g.tolist())))
    a.retain_grad()
    a.mul_(2)
    a.register_hook(lambda g: log.append(("after", g.tolist())))
    a.add_(1)
    (a * a).sum().backward()
    return _observe(log), _rounded(a.grad.tolist()), _rounded(x.grad.tolist())


def _in_place_through_a_view(m):
    x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
    base = x * 1.0
    view = base[1:]
    view.retain_grad()
    view.mul_(3)
    (view * view).sum().backward()
    return _rounded(view.grad.tolist()), _rounded(x.grad.tolist())


def _retain_grad_merged(m):
    # The retaining tensor's graph is merged into a larger one after retain_grad.
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([0.5, -1.0], requires_grad=True)
    h = x.exp()
    h.retain_grad()
    big = (w * w).tanh().sin()
    (big * h).sum().backward()
    return _rounded(h.grad.tolist()), _rounded(x.grad.tolist()), _rounded(w.grad.tolist())


IN_PLACE = {
    "retain_grad": _in_place_after_retain_grad,
    "register_hook": _in_place_after_register_hook,
    "view": _in_place_through_a_view,
    "merged": _retain_grad_merged,
}


def test_retained_gradient_follows_in_place_change():
    # The reproducer, without PyTorch: d(sum(3a))/da for the doubled a is 3.
    assert _in_place_after_retain_grad(tg) == [3.0, 3.0]


def test_hooks_before_and_after_an_in_place_change():
    log, a_grad, x_grad = _in_place_after_register_hook(tg)
    # a2 = 2 * a0 + 1; out = a2 . a2: d/da2 = 2 a2 = [6, 10]; d/da0 = 2 * that.
    assert log == [("after", [6.0, 10.0]), ("before", [12.0, 20.0])]
    assert a_grad == [6.0, 10.0]
    assert x_grad == [12.0, 20.0]


# -- removal, several backward passes, autograd.grad, create_graph ------------------------------


def _removed_inside_a_hook(m):
    log = []
    x = m.tensor([1.0, 2.0], requires_grad=True)
    handles = []
    handles.append(x.register_hook(lambda g: log.append("a") or handles[1].remove()))
    handles.append(x.register_hook(lambda g: log.append("b")))
    (x * 2 + x).sum().backward()
    first = list(log)
    (x * 2 + x).sum().backward()
    return first, log, _rounded(x.grad.tolist())


def _non_leaf_removed_inside_a_hook(m):
    log = []
    x = m.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    handles = []
    handles.append(h.register_hook(lambda g: log.append("a") or handles[1].remove()))
    handles.append(h.register_hook(lambda g: log.append("b") or g * 10))
    (h * h).sum().backward(retain_graph=True)
    first = list(log)
    (h * h).sum().backward()
    return first, log, _rounded(x.grad.tolist())


def _autograd_grad(m):
    log = []
    x = m.tensor([1.0, -2.0, 3.0], requires_grad=True)
    x.register_hook(lambda g: log.append(g.tolist()) or g.clamp(-5, 5))
    h = x * x
    h.register_hook(lambda g: log.append(("h", g.tolist())))
    (gx,) = m.autograd.grad((h * 2 + x**3).sum(), (x,))
    return _observe([("x", v) if isinstance(v, list) else v for v in log]), _rounded(gx.tolist())


def _autograd_grad_several_outputs(m):
    log = []
    x = m.tensor([1.0, -2.0], requires_grad=True)
    x.register_hook(lambda g: log.append(("x", g.tolist())) or g * 3)
    a = (x * x).sum()
    b = (x.exp()).sum()
    (gx,) = m.autograd.grad((a, b), (x,))
    return _observe(log), _rounded(gx.tolist())


def _create_graph(m):
    log = []
    x = m.tensor([1.0, -2.0, 3.0], requires_grad=True)
    x.register_hook(lambda g: log.append(("x", g.tolist())) or g * 2)
    h = x.sin()
    h.register_hook(lambda g: log.append(("h", g.tolist())))
    (gx,) = m.autograd.grad((h * x + x**3).sum(), (x,), create_graph=True)
    gx.sum().backward()
    return _observe(log), _rounded(gx.tolist()), _rounded(x.grad.tolist())


def _create_graph_backward(m):
    log = []
    x = m.tensor([1.0, -2.0, 3.0], requires_grad=True)
    x.register_hook(lambda g: log.append(("x", g.tolist())) or g.clamp(-5, 5))
    (x * 2 + x**3).sum().backward(create_graph=True)
    return _observe(log), _rounded(x.grad.tolist())


def _hook_order(m):
    log = []
    x = m.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: log.append("x1"))
    x.register_hook(lambda g: log.append("x2") or g * 2)
    h = x.exp()
    h.register_hook(lambda g: log.append("h"))
    k = x.sin()
    k.register_hook(lambda g: log.append("k"))
    (h * k + x).sum().backward()
    return log, _rounded(x.grad.tolist())


def _leaf_root(m):
    # A leaf that is itself a root: its seed and what reaches it through x * 5 are one total.
    log = []
    x = m.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: log.append(("x", g.tolist())) or g.clamp(max=4))
    m.autograd.backward([x * 5, x], [m.ones(2), m.ones(2)])
    alone = m.tensor([1.0, 2.0], requires_grad=True)
    alone.register_hook(lambda g: log.append(("alone", g.tolist())) or g * 3)
    alone.backward(m.ones(2))
    return _observe(log), _rounded(x.grad.tolist()), _rounded(alone.grad.tolist())


def _backward_inputs(m):
    log = []
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([3.0, 4.0], requires_grad=True)
    x.register_hook(lambda g: log.append("x"))
    w.register_hook(lambda g: log.append("w"))
    (x * w).sum().backward(inputs=[w])
    y = x * 2
    y.register_hook(lambda g: g * 5)
    (y * y).sum().backward(inputs=[y])  # a non-leaf's .grad: after its hooks
    return log, x.grad, _rounded(w.grad.tolist()), _rounded(y.grad.tolist())


def _grad_runs_only_needed_hooks(m):
    log = []
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([3.0, 4.0], requires_grad=True)
    x.register_hook(lambda g: log.append("x") or g + 1)
    w.register_hook(lambda g: log.append("w"))
    (gw,) = m.autograd.grad((x * w).sum(), [w])
    h = x * 2
    h.register_hook(lambda g: log.append("h"))
    y = h * h
    (gy,) = m.autograd.grad((y * 3).sum(), y)
    return log, _rounded(gw.tolist()), _rounded(gy.tolist())


def _grad_of_a_hooked_non_leaf(m, create_graph=False):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g * 10)
    y.retain_grad()
    gx, gy = m.autograd.grad((y * y).sum(), [x, y], create_graph=create_graph)
    return _rounded(gx.tolist()), _rounded(gy.tolist()), _rounded(y.grad.tolist())


def _grad_of_a_hooked_non_leaf_alone(m, create_graph=False):
    # Only y wanted: PyTorch stops at y's node and returns its gradient after the hook (with x
    # wanted too it runs the node on, and returns y's gradient as it arrived: the scenario above).
    x = m.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g * 10)
    (gy,) = m.autograd.grad((y * y).sum(), y, create_graph=create_graph)
    return _rounded(gy.tolist())


def _hook_changing_its_gradient_in_place(m):
    # A hook that changes its argument in place and returns None changes the gradient.
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([3.0, 4.0], requires_grad=True)

    def scale(g):
        g.mul_(10)  # returns None

    def shift(g):
        g.add_(1.0)

    x.register_hook(scale)
    h = x * w
    h.register_hook(shift)
    (h * h).sum().backward()
    return _rounded(x.grad.tolist()), _rounded(w.grad.tolist())


def _data_replaced_before_backward(m):
    # PyTorch saves the leaf tensor itself: its backward reads the values .data holds then.
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([3.0, 4.0], requires_grad=True)
    y = (x * w).sum() + (x * x).sum()
    x.data = m.tensor([10.0, 20.0])
    y.backward()
    return _rounded(x.grad.tolist()), _rounded(w.grad.tolist())


def _stored_hook_gradients(m):
    # A gradient a hook keeps is its own tensor: later backwards, .grad.zero_(), gradient
    # clipping and the hooks after it leave it as it was.
    x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
    kept = []
    x.register_hook(lambda g: kept.append(g))
    x.register_hook(lambda g: g * 100)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    first_total = x.grad.tolist()
    m.nn.utils.clip_grad_norm_([x], 1.0)
    x.grad.zero_()
    return [_rounded(g.tolist()) for g in kept], _rounded(first_total)


def _grad_captured_before_an_in_place_hook(m):
    # autograd.grad returns y's gradient as it arrived (x wanted too) - the very tensor the hook
    # changed in place, so the change shows, as in PyTorch.
    x = m.tensor([0.0, 1.0], requires_grad=True)
    y = x * 2

    def scale(g):
        g.mul_(10)

    y.register_hook(scale)
    gx, gy = m.autograd.grad(y.sin().sum(), [x, y])
    return _rounded(gx.tolist()), _rounded(gy.tolist())


def _registered_during_backward(m):
    log = []
    x = m.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3

    def on_y(g):
        log.append("y")
        x.register_hook(lambda g: log.append("x") or g * 7)
        return g

    y.register_hook(on_y)
    (y * y).sum().backward()
    return log, _rounded(x.grad.tolist())


def _bad_hook_results(m):
    outcomes = []
    for hook in (lambda g: g.double(), lambda g: 3.0, lambda g: g[:1]):
        x = m.tensor([1.0, 2.0], requires_grad=True)
        x.register_hook(hook)
        try:
            (x * x).sum().backward()
            outcomes.append("no error")
        except (RuntimeError, TypeError) as error:
            outcomes.append((type(error).__name__, str(error).replace("torch.", "").replace("tapegrad.", "")))
    return outcomes


def _constant_changed_between_graphs(m):
    # Review finding: merging the two graphs once made the first one read the changed value.
    a = m.tensor([1.0, 2.0], requires_grad=True, dtype=m.float64)
    b = m.tensor([3.0, 4.0], requires_grad=True, dtype=m.float64)
    c = m.tensor([5.0, 6.0], dtype=m.float64)
    y1 = (a * c).exp().sin().cos()
    c.mul_(b)
    w = y1 + c  # joins the graphs: c's two rows held different values
    c.sum().backward()
    return _rounded(b.grad.tolist()), w.shape


def _data_replaced_between_graphs(m):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([3.0, 4.0], requires_grad=True)
    y1 = (x * x).exp().sin().sum()
    x.data = m.tensor([10.0, 20.0])
    y2 = (x * w).sum()
    (y1 + y2).backward()
    # w's gradient is the new x. (x's own differs: rows recorded before the replacement read the
    # array they saved, where PyTorch reads the tensor's current data. README, "In-place changes".)
    return _rounded(w.grad.tolist())


OTHERS = {
    "leaf_root": _leaf_root,
    "backward_inputs": _backward_inputs,
    "grad_runs_only_needed_hooks": _grad_runs_only_needed_hooks,
    "grad_of_a_hooked_non_leaf": _grad_of_a_hooked_non_leaf,
    "grad_of_a_hooked_non_leaf_create_graph": lambda m: _grad_of_a_hooked_non_leaf(m, create_graph=True),
    "grad_of_a_hooked_non_leaf_alone": _grad_of_a_hooked_non_leaf_alone,
    "grad_of_a_hooked_non_leaf_alone_create_graph": lambda m: _grad_of_a_hooked_non_leaf_alone(m, create_graph=True),
    "hook_changing_its_gradient_in_place": _hook_changing_its_gradient_in_place,
    "data_replaced_before_backward": _data_replaced_before_backward,
    "stored_hook_gradients": _stored_hook_gradients,
    "grad_captured_before_an_in_place_hook": _grad_captured_before_an_in_place_hook,
    "registered_during_backward": _registered_during_backward,
    "bad_hook_results": _bad_hook_results,
    "constant_changed_between_graphs": _constant_changed_between_graphs,
    "data_replaced_between_graphs": _data_replaced_between_graphs,
    "removed_inside": _removed_inside_a_hook,
    "non_leaf_removed_inside": _non_leaf_removed_inside_a_hook,
    "autograd_grad": _autograd_grad,
    "autograd_grad_outputs": _autograd_grad_several_outputs,
    "create_graph": _create_graph,
    "create_graph_backward": _create_graph_backward,
    "order": _hook_order,
    **{f"in_place_{name}": scenario for name, scenario in IN_PLACE.items()},
}


@pytest.mark.parametrize("name", OTHERS)
def test_scenario_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    assert _same(OTHERS[name](tg), OTHERS[name](torch))


def test_create_graph_hook_runs_once_on_the_total():
    log, grad = _create_graph_backward(tg)
    assert log == [("x", [5.0, 14.0, 29.0])]
    assert grad == [5.0, 5.0, 5.0]


def test_hook_removed_inside_another_still_runs_this_pass():
    first, log, grad = _removed_inside_a_hook(tg)
    assert first == ["a", "b"]
    assert log == ["a", "b", "a"]
    assert grad == [6.0, 6.0]


# -- custom Functions ---------------------------------------------------------------------------


def _custom_function(m):
    class Square(m.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * a * b, a + b

        @staticmethod
        def backward(ctx, g0, g1):
            a, b = ctx.saved_tensors
            return g0 * 2 * a * b + g1, g0 * a * a + g1

    log = []
    x = m.tensor([1.0, -2.0], requires_grad=True)
    w = m.tensor([0.5, 3.0], requires_grad=True)
    x.register_hook(lambda g: log.append(("x", g.tolist())) or g.clamp(-4, 4))
    u = x * 1.0
    u.register_hook(lambda g: log.append(("u", g.tolist())))
    p, q = Square.apply(u, w)
    p.register_hook(lambda g: log.append(("p", g.tolist())) or g * 2)
    q.register_hook(lambda g: log.append(("q", g.tolist())))
    (p + q * x + u).sum().backward()
    return _observe(log), _rounded(x.grad.tolist()), _rounded(w.grad.tolist())


def test_custom_function_hooks_match_pytorch():
    torch = pytest.importorskip("torch")
    assert _same(_custom_function(tg), _custom_function(torch))


def test_custom_function_hooks_run_once():
    log, _, _ = _custom_function(tg)
    assert sorted(name for name, _ in log) == ["p", "q", "u", "x"]


# -- replay -------------------------------------------------------------------------------------


def test_record_refuses_hooks_clearly():
    """A replay runs no Python, so a hook on a tensor of the recorded function cannot run:
    recording refuses it by name instead of replaying without it."""

    def hooked(w):
        h = w * 2.0
        h.register_hook(lambda g: g * 10.0)
        return (h * h).sum()

    with pytest.raises(NotImplementedError, match="register_hook"):
        tg.record(hooked, tg.ones(3))


def test_hook_on_a_captured_tensor_is_not_a_replay_gradient():
    # Captured tensors are constants of a recorded tape: a replay differentiates with respect
    # to its inputs only (as torch.func.grad does), so their hooks have nothing to see.
    w = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    calls = []
    w.register_hook(lambda g: calls.append(g))
    tape = tg.record(lambda x: (x * w).sum(), tg.ones(3))
    _, (grad,) = tape.value_and_grad(np.full(3, 2.0, np.float32))
    assert grad.tolist() == [1.0, 2.0, 3.0]
    assert calls == [] and w.grad is None


def test_autograd_grad_inside_record_on_an_outside_graph():
    # Review finding: joining the roots' tapes once absorbed the recording tape. Gradients taken
    # while recording are refused now (a replay would reuse them as constants); the refusal
    # leaves the outside graph whole, and a recording without the call still works.
    w = tg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    outside = (w * w).exp().sin().cos().sum()

    def f(x, take_gradient=True):
        y = (x * x).sum()
        if take_gradient:
            tg.autograd.grad([y, outside], [x, w], retain_graph=True, allow_unused=True)
        return (x * 3).sum() + y

    with pytest.raises(NotImplementedError, match="inside tapegrad.record"):
        tg.record(f, np.array([1.0, 2.0]))
    tape = tg.record(lambda x: f(x, take_gradient=False), np.array([1.0, 2.0]))
    value, (grad,) = tape.value_and_grad(np.array([2.0, 3.0]))
    assert float(value) == 28.0 and grad.tolist() == [7.0, 9.0]
    outside.backward()
    expected = (
        -np.sin(np.sin(np.exp([1.0, 4.0]))) * np.cos(np.exp([1.0, 4.0])) * np.exp([1.0, 4.0]) * 2 * np.array([1.0, 2.0])
    )
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-12)


def test_leaf_root_hook_sees_the_total():
    log, x_grad, alone_grad = _leaf_root(tg)
    assert log == [("x", [6.0, 6.0]), ("alone", [1.0, 1.0])]
    assert x_grad == [4.0, 4.0] and alone_grad == [3.0, 3.0]


def test_a_hook_runs_without_grad_mode_and_may_join_graphs_under_enable_grad():
    # PyTorch runs backward hooks in grad mode only with create_graph: an op in a hook records
    # nothing. Under enable_grad it records, and joining the graph being differentiated to a
    # longer one moved its leaves away: the backward delivered nothing (x.grad None), silently.
    x, z = tg.ones(3, requires_grad=True), tg.ones(3, requires_grad=True)
    b = z * 1.0
    for _ in range(5):
        b = b * 1.0
    h = x * 2.0
    seen = []

    def hook(g):
        seen.append((h * b).requires_grad)
        with tg.enable_grad():
            seen.append(h * b)
        return g

    y = h * 3.0
    y.register_hook(hook)
    y.sum().backward()
    assert seen[0] is False
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0, 6.0])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        seen[1].sum().backward()  # (h's rows were freed by the first backward, as in PyTorch)


def _hooked_view_changed_in_place(m, make, change, also_read):
    """A hook on a view, then the view changed in place: ``(x.grad, what the hook saw)``."""
    x = m.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=m.float64, requires_grad=True)
    base = x * 2
    view = make(base)
    seen = []
    view.register_hook(lambda g: (seen.append(g.detach().numpy().copy()), g * 10)[1])
    other = view * 3 if also_read else None
    change(view)
    loss = (base * base).sum() + (view * view).sum()
    if other is not None:
        loss = loss + other.sum()
    loss.backward()
    return x.grad.numpy(), seen


@pytest.mark.parametrize("also_read", [False, True])
@pytest.mark.parametrize(
    ("make", "change"),
    [
        (lambda b: b[1:], lambda v: v.mul_(2)),
        (lambda b: b[0], lambda v: v.exp_()),
        (lambda b: b.t(), lambda v: v.add_(1.5)),
        (lambda b: b[:, 1], lambda v: v.add_(v)),
        (lambda b: b[1], lambda v: v.__setitem__(0, 7.0)),
    ],
    ids=["slice-mul_", "row-exp_", "t-add_", "column-add_-itself", "setitem"],
)
def test_hooks_on_a_view_changed_in_place_match_pytorch(make, change, also_read):
    """PyTorch sends an in-place op's gradient past the view's node to its base (CopySlices),
    so a hook registered on the view before the change sees only its other readers' gradient
    (none here without ``also_read``: it never runs). tapegrad's hook saw the in-place op's
    gradient too, and scaled it: ``x.grad`` ten times PyTorch's, silently."""
    torch = pytest.importorskip("torch")
    ours, ours_seen = _hooked_view_changed_in_place(tg, make, change, also_read)
    theirs, theirs_seen = _hooked_view_changed_in_place(torch, make, change, also_read)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert len(ours_seen) == len(theirs_seen)
    for got, want in zip(ours_seen, theirs_seen):
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("create_graph", [False, True])
def test_backward_inputs_takes_a_non_leaf_gradient_after_its_hooks(create_graph):
    """``backward(inputs=[y, x])`` fills ``y.grad`` with y's gradient after its hooks, as
    PyTorch does, while ``autograd.grad(z, [y, x])`` returns it before them (PyTorch 2 captures
    a node's input before its tensor hooks when it runs on below). tapegrad gave the unhooked
    gradient in both, so ``y.grad`` was a third of PyTorch's, silently."""
    torch = pytest.importorskip("torch")

    def run(m):
        x = m.tensor([1.0, 2.0, 3.0], dtype=m.float64, requires_grad=True)
        y = x * 2
        y.register_hook(lambda g: g * 3)
        (y * y).sum().backward(inputs=[y, x], create_graph=create_graph)
        grads = [y.grad.detach().numpy().copy(), x.grad.detach().numpy().copy()]
        x2 = m.tensor([1.0, 2.0, 3.0], dtype=m.float64, requires_grad=True)
        y2 = x2 * 2
        y2.register_hook(lambda g: g * 3)
        grads += [g.detach().numpy() for g in m.autograd.grad((y2 * y2).sum(), [y2, x2], create_graph=create_graph)]
        return grads

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's about reading a non-leaf's .grad
        for got, want in zip(run(tg), run(torch)):
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_backward_inputs_fills_a_retained_non_leaf_once():
    """``backward(inputs=[y])`` of a non-leaf ``y`` that retains its gradient: y.grad is the
    gradient once (it was added twice: as the input's and as the retained one)."""
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    y = x * 3
    y.retain_grad()
    z = y * 2
    z.retain_grad()
    (y * z).sum().backward(inputs=[y], retain_graph=True)
    assert y.grad.tolist() == [12.0, 24.0]  # d(2 y**2)/dy = 4y
    assert z.grad.tolist() == [3.0, 6.0]  # on the path to y: filled, as PyTorch fills it
    assert x.grad is None
    (y * z).sum().backward(inputs=[x, y])
    assert y.grad.tolist() == [24.0, 48.0] and x.grad.tolist() == [36.0, 72.0]


def test_backward_inputs_makes_a_non_leaf_retain_its_gradient():
    """PyTorch makes a non-leaf ``backward(inputs=)`` input retain its gradient: retains_grad
    from then on, each backward a new .grad (the one held keeps its values), once with
    create_graph too (it was counted twice)."""
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    y = x * 3
    (y * y).sum().backward(inputs=[y], retain_graph=True)
    first = y.grad
    assert y.retains_grad and first.tolist() == [6.0, 12.0]
    (y * y).sum().backward(inputs=[y])
    assert first.tolist() == [6.0, 12.0] and y.grad.tolist() == [12.0, 24.0]
    z = x * 3
    z.retain_grad()
    (z * z).sum().backward(inputs=[z], create_graph=True)
    assert z.grad.tolist() == [6.0, 12.0]


# -- autograd.grad runs only the nodes on a path to what it wants -------------------------------


class _Loud:
    """A custom Function whose backward notes that it ran."""

    @staticmethod
    def make(m, ran: list):
        class Square(m.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, grad):
                ran.append("Square")
                (x,) = ctx.saved_tensors
                return 2 * x * grad

        return Square


def _off_path_function(m):
    ran = []
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([3.0, 4.0], requires_grad=True)
    y = (x * x).sum() + _Loud.make(m, ran).apply(w).sum()
    (gx,) = m.autograd.grad(y, x, retain_graph=True)
    y.backward(inputs=[x])
    return [gx.tolist(), x.grad.tolist(), w.grad, ran]


def _off_path_modified(m):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([3.0, 4.0], requires_grad=True)
    t = w.tanh()  # saves its output, changed below: only w's branch reads it
    y = (x * x).sum() + (t * 2).sum()
    t.add_(1)
    (gx,) = m.autograd.grad(y, x, retain_graph=True)
    y.backward(inputs=[x])
    return [gx.tolist(), x.grad.tolist()]


def _off_path_retained_under_create_graph(m):
    calls = []
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.tensor([3.0, 4.0], requires_grad=True)
    u = w.sin()
    u.retain_grad()
    u.register_hook(lambda g: calls.append(g.tolist()))
    y = (x * x).sum() + (u * u).sum()
    (g,) = m.autograd.grad(y, x, create_graph=True)
    before = u.grad
    (y + g.sum()).backward()
    return [before, np.round(u.grad.detach().numpy().astype(np.float64), 5).tolist(), len(calls)]


def _function_output_with_a_hook(m):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    h = _Loud.make(m, []).apply(x)
    h.register_hook(lambda g: g * 10)
    gh, gx = m.autograd.grad((h * 3).sum(), (h, x))  # h's gradient as it arrived, before its hook
    return [gh.tolist(), gx.tolist()]


OFF_PATH = {
    "a Function off the path is not run": _off_path_function,
    "a value changed in place off the path is not checked": _off_path_modified,
    "create_graph fills no retained gradient off the path": _off_path_retained_under_create_graph,
    "a Function output's gradient before its hook": _function_output_with_a_hook,
}


@pytest.mark.parametrize("name", OFF_PATH)
def test_autograd_grad_runs_the_nodes_on_a_path_to_its_inputs(name):
    ours = OFF_PATH[name](tg)
    expected = {
        "a Function off the path is not run": [[2.0, 4.0], [2.0, 4.0], None, []],
        "a value changed in place off the path is not checked": [[2.0, 4.0], [2.0, 4.0]],
        "create_graph fills no retained gradient off the path": [
            None,
            np.round(2 * np.sin([3.0, 4.0]), 5).tolist(),
            1,
        ],
        "a Function output's gradient before its hook": [[3.0, 3.0], [60.0, 120.0]],
    }[name]
    assert ours == expected


@pytest.mark.parametrize("name", OFF_PATH)
def test_autograd_grad_off_its_path_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    assert OFF_PATH[name](tg) == OFF_PATH[name](torch)


def test_autograd_argument_errors_are_pytorchs():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has requires_grad=False"):
        y.backward(inputs=[tg.ones(2)], retain_graph=True)
    with pytest.raises(ValueError, match="Expected allow_unused to be True or not passed when materialize_grads=True"):
        tg.autograd.grad(y, x, materialize_grads=True, allow_unused=False)
    with tg.autograd.inference_mode():
        assert not (x * 2).requires_grad


@pytest.mark.parametrize("call", ["method", "function"])
def test_post_accumulate_grad_hooks_run_for_the_inputs_of_backward(call):
    """``backward(inputs=[...])`` accumulates into the leaves' ``.grad`` as a full backward does,
    and runs their post-accumulate-grad hooks once each, after it (they were never called)."""
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], requires_grad=True)
    calls = []
    a.register_post_accumulate_grad_hook(lambda p: calls.append(("a", p.grad.tolist())))
    b.register_post_accumulate_grad_hook(lambda p: calls.append(("b", p.grad.tolist())))
    loss = (a * b).sum()
    if call == "method":
        loss.backward(inputs=[a])
    else:
        tg.autograd.backward(loss, inputs=[a])
    assert calls == [("a", [3.0, 4.0])]
    assert b.grad is None


def test_a_post_accumulate_grad_hook_of_a_leaf_of_two_graphs_runs_once_on_the_total():
    """``autograd.backward([l1, l2])`` of two graphs that share a leaf (each on a tape of its
    own): its post-accumulate-grad hook runs once, after both parts are summed, as PyTorch's
    engine runs it; run per tape, it halved a partial gradient, then the sum."""
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    calls = []

    def halve(p):
        calls.append(p.grad.tolist())
        p.grad.mul_(0.5)

    x.register_post_accumulate_grad_hook(halve)
    tg.autograd.backward([(x * 3).sum(), (x * x).sum()])
    assert calls == [[5.0, 7.0]]
    assert x.grad.tolist() == [2.5, 3.5]


def test_an_input_named_twice_in_backward_inputs_accumulates_once():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], requires_grad=True)
    calls = []
    a.register_post_accumulate_grad_hook(lambda p: calls.append(p.grad.tolist()))
    (a * b).sum().backward(inputs=[a, a])
    assert a.grad.tolist() == [3.0, 4.0] and calls == [[3.0, 4.0]]


# -- a hook on a view whose storage changed in place before the hook was registered ----------


def _stale_view_program(m, changed_through: str, read_grad_fn: bool):
    """``v`` a view of ``x``; ``x`` changed in place (directly, or through a sibling view of the
    same elements) after ``v`` was made; then a hook registered on ``v`` and ``v`` used. The
    hook belongs on the node ``v`` is read through from then on. ``read_grad_fn``: read
    ``v.grad_fn`` first, which regenerates that node and must change nothing (PyTorch 2.13
    itself crashes on the program without that read, in ``register_hook``)."""
    x0 = m.tensor([[0.5, -1.0, 2.0, 0.3], [1.5, -0.2, 0.7, -2.0]], dtype=m.float64, requires_grad=True)
    x = x0 * 1
    v = x[:, 1:]
    if changed_through == "base":
        x.exp_()
    else:
        x[:, 1:].relu_()
    if read_grad_fn:
        v.grad_fn  # noqa: B018 - the read is the point
    calls = []
    v.register_hook(lambda g: calls.append(g.tolist()) or g * 2.0)
    (v * m.tensor([1.0, -2.0, 3.0], dtype=m.float64)).sum().backward()
    return x0.grad.tolist(), calls


@pytest.mark.parametrize("changed_through", ["base", "sibling view"])
def test_a_hook_on_a_view_changed_in_place_before_it_is_registered_runs(changed_through):
    """A silent wrong gradient once: the hook went on the view's row from before the change,
    which no op read any longer, so it never ran (unless ``grad_fn`` had been read first)."""
    got, calls = _stale_view_program(tg, changed_through, read_grad_fn=False)
    assert calls == [[[1.0, -2.0, 3.0]] * 2]  # it ran, once, with v's gradient
    assert (got, calls) == _stale_view_program(tg, changed_through, read_grad_fn=True)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(got, _stale_view_program(torch, changed_through, read_grad_fn=True)[0], rtol=1e-14)
