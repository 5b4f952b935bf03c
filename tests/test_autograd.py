"""PyTorch's autograd behaviour: accumulation, retain_graph, grad mode, leaves and views."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import tapegrad as tg


def test_grad_accumulates_in_place_into_the_same_tensor():
    x = tg.ones(3, requires_grad=True)
    (x * 2).sum().backward()
    first = x.grad
    (x * 3).sum().backward()
    assert x.grad is first
    assert x.grad.tolist() == [5.0, 5.0, 5.0]


def test_a_leaf_gradient_added_from_a_shared_arena_stays_the_leafs_own():
    """A leaf whose gradient is a small part of the sweep's arena is added into its existing
    .grad straight from the arena: the sum is right, and the next sweep (which may reuse the
    arena) leaves it alone."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal((64, 96)).astype(np.float32)
    x = tg.tensor(values, requires_grad=True)
    w = tg.tensor(rng.standard_normal((96, 64)).astype(np.float32), requires_grad=True)
    for _ in range(3):  # x's gradient shares the arena with the transposed result's and w's
        (x.t().relu() * w).sum().backward()
    first = x.grad
    expected = 3 * np.where(values > 0, w.detach().numpy().T, 0)
    np.testing.assert_allclose(first.numpy(), expected, rtol=1e-6)
    kept = first.numpy().copy()
    (w * 2).sum().backward()  # another sweep, not reaching x
    np.testing.assert_array_equal(first.numpy(), kept)
    assert x.grad is first


def test_backward_needing_no_saved_value_works_twice():
    x = tg.ones(3, requires_grad=True)
    y = (x + 1).sum()
    y.backward()
    y.backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_retain_graph_allows_a_second_backward_through_saved_values():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]


def test_second_backward_error_is_lazy():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    (h + 1).sum().backward()  # frees the saved inputs of h's MulBackward0
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        (h * 2).sum().backward()  # reaches h's freed MulBackward0, as in PyTorch


def test_backward_from_an_early_tensor_ignores_later_rows():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    early = (x * 3).sum()
    later = early * x  # noqa: F841 - rows after ``early`` must not be visited
    early.backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_backward_with_gradient_is_a_vector_jacobian_product():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    y.backward(tg.tensor([0.1, 1.0, 0.0001]))
    np.testing.assert_allclose(x.grad.numpy(), [0.2, 4.0, 0.0006], rtol=1e-6)


def test_backward_on_a_leaf_adds_the_gradient():
    x = tg.ones(2, requires_grad=True)
    x.backward(tg.tensor([1.0, 2.0]))
    assert x.grad.tolist() == [1.0, 2.0]


def test_is_leaf_grad_fn_and_requires_grad():
    x = tg.ones(2, requires_grad=True)
    c = tg.ones(2)
    y = x * c
    assert x.is_leaf and c.is_leaf and not y.is_leaf
    assert x.grad_fn is None and y.grad_fn is y.grad_fn
    assert y.grad_fn.next_functions[0][0].variable is x
    assert y.requires_grad and not c.requires_grad
    assert (c * 2).grad_fn is None


def _join_next_functions(m):
    """cat/stack of a recorded tensor and a constant: the constant's entry is (None, 0)."""
    y = m.ones(2, requires_grad=True) * 2
    c = m.ones(2)
    return [
        [None if node is None else node.name() for node, _ in join.grad_fn.next_functions]
        for join in (m.cat([y, c]), m.stack([c, y]), m.cat([c, y, c]))
    ]


def test_join_of_a_constant_shows_none_in_next_functions():
    # It showed the cat's own node: the constant's aux delta is 0, read as "this row".
    assert _join_next_functions(tg) == [
        ["MulBackward0", None],
        [None, "MulBackward0"],
        [None, "MulBackward0", None],
    ]


def test_join_next_functions_match_pytorch():
    torch = pytest.importorskip("torch")
    assert _join_next_functions(tg) == _join_next_functions(torch)


def test_requires_grad_underscore_returns_self_and_is_a_no_op_on_non_leaves():
    a = tg.ones(2)
    assert a.requires_grad_() is a and a.requires_grad
    y = a * 2
    assert y.requires_grad_(True) is y


def test_constant_turned_into_leaf_gets_gradients():
    a = tg.tensor([1.0, 2.0])
    h = a * 3  # recorded nowhere: a did not require grad
    a.requires_grad_()
    (a * a).sum().backward()
    assert a.grad.tolist() == [2.0, 4.0]
    assert h.grad_fn is None


def test_detach_shares_storage_and_leaves_the_graph():
    x = tg.ones(2, requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    d.zero_()
    assert y.tolist() == [0.0, 0.0]


def test_data_changes_are_invisible_to_autograd():
    x = tg.ones(1, requires_grad=True)
    y = 2 * x
    x.data *= 100
    y.backward()
    assert x.tolist() == [100.0] and x.grad.tolist() == [2.0]


def test_data_is_read_live_for_leaves_like_pytorch():
    x = tg.ones(1, requires_grad=True)
    y = x * x
    x.data *= 100
    y.backward()
    assert x.grad.tolist() == [200.0]


def test_no_grad_context_decorator_and_nesting():
    x = tg.ones(2, requires_grad=True)
    with tg.no_grad():
        assert not (x * 2).requires_grad
        with tg.enable_grad():
            assert (x * 2).requires_grad
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()

    @tg.no_grad()
    def evaluate(t):
        return t * 2

    assert not evaluate(x).requires_grad
    assert tg.is_grad_enabled()


def test_set_grad_enabled_as_function_and_context():
    x = tg.ones(2, requires_grad=True)
    tg.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        tg.set_grad_enabled(True)
    with tg.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_grad_mode_is_per_thread():
    seen = {}

    def worker():
        seen["enabled"] = tg.is_grad_enabled()
        seen["records"] = (tg.ones(1, requires_grad=True) * 2).requires_grad

    with tg.no_grad():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert seen == {"enabled": True, "records": True}


def test_separately_started_graphs_join_correctly():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    a = x * 2.0  # one tape
    b = w * x  # another: both inputs are leaves
    c = (a.exp() + b).sum()  # joins them
    c.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([2.0, 4.0]) + np.array([3.0, 4.0]))
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 2.0])


def test_tensors_from_a_merged_tape_keep_working():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    small = x * 2.0
    big = x.sin()
    for _ in range(5):
        big = big * 1.5
    joined = big + small
    assert small.grad_fn.name() == "MulBackward0"
    small.sum().backward(retain_graph=True)  # x * 2.0 saved its scalar (as in PyTorch)
    assert x.grad.tolist() == [2.0, 2.0]
    joined.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.0 + 2.0 + np.cos([1.0, 2.0]) * 1.5**5)


def test_autograd_grad_returns_without_touching_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.tensor([3.0], requires_grad=True)
    out = (x * x).sum() * y
    (gx, gy) = tg.autograd.grad(out, (x, y))
    assert gx.tolist() == [6.0, 12.0] and gy.tolist() == [5.0]
    assert x.grad is None and y.grad is None


def test_autograd_grad_unused_input():
    x = tg.ones(2, requires_grad=True)
    unused = tg.ones(2, requires_grad=True)
    with pytest.raises(
        RuntimeError, match="The differentiated Tensor at index 1 appears to not have been used in the graph"
    ):
        tg.autograd.grad((x * 2).sum(), (x, unused))
    assert tg.autograd.grad((x * 2).sum(), (x, unused), allow_unused=True)[1] is None


def test_autograd_backward_several_roots():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    tg.autograd.backward([(x * 2).sum(), (x * x).sum()])
    assert x.grad.tolist() == [4.0, 6.0]


def test_retain_grad_fills_a_non_leaf_grad():
    x = tg.ones(2, requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    assert h.grad.tolist() == [6.0, 6.0]


def test_deep_chain_backwards_without_recursion():
    x = tg.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.tolist() == [1.0]


def test_integer_and_bool_tensors_compute_without_gradients():
    i = tg.arange(4)
    assert i.dtype == tg.int64 and (i * 2).tolist() == [0, 2, 4, 6]
    assert (i > 1).dtype == tg.bool
    x = tg.ones(4, requires_grad=True)
    (x * i).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_float32_is_default_and_promotion_follows_pytorch():
    assert tg.ones(2).dtype == tg.float32
    assert tg.tensor([1.0]).dtype == tg.float32
    assert tg.tensor([1]).dtype == tg.int64
    assert (tg.ones(2) * tg.ones(2, dtype=tg.float64)).dtype == tg.float64
    assert (tg.ones(2) * tg.tensor(2.0, dtype=tg.float64)).dtype == tg.float32  # 0-d does not widen
    assert (tg.arange(2) * 1.5).dtype == tg.float32
    assert (tg.arange(2) / 2).dtype == tg.float32


def test_from_numpy_shares_memory_and_tensor_copies():
    array = np.zeros(3)
    shared = tg.from_numpy(array)
    copied = tg.tensor(array)
    array[0] = 5.0
    assert shared.tolist()[0] == 5.0 and copied.tolist()[0] == 0.0
    assert shared.dtype == tg.float64


def test_tapes_merged_many_times_stay_consistent():
    # Each leaf-only op starts a tape; sums join them one after another (a tape that has
    # absorbed others is itself absorbed later).
    leaves = [tg.tensor(float(i), requires_grad=True) for i in range(6)]
    parts = [leaf * 2.0 for leaf in leaves]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    other = (leaves[0] * leaves[1]) + (leaves[2] * leaves[3])
    (total * other).backward()
    values = [float(i) for i in range(6)]
    t, o = 2 * sum(values), values[0] * values[1] + values[2] * values[3]
    expected = [
        2 * o + t * values[1],
        2 * o + t * values[0],
        2 * o + t * values[3],
        2 * o + t * values[2],
        2 * o,
        2 * o,
    ]
    assert [leaf.grad.item() for leaf in leaves] == expected


@pytest.mark.parametrize(
    "expression", ["x + 2.0", "2.0 - x", "x * 2.0", "x / 2.0", "x ** 2", "-x", "x.exp()", "x.sum() * x"]
)
def test_which_graphs_can_be_backwarded_twice_follows_pytorch(expression):
    torch = pytest.importorskip("torch")

    def twice(module) -> bool:
        x = module.ones(3, requires_grad=True)  # noqa: F841 - used by eval
        y = eval(expression).sum()
        y.backward()
        try:
            y.backward()
            return True
        except RuntimeError as error:
            assert "backward through the graph a second time" in str(error)
            return False

    assert twice(tg) == twice(torch)


def test_graphs_of_many_shapes_join_across_layout_template_generations():
    """New tapes start with the layouts recent tapes made (``_tape._LayoutTemplate``); graphs
    built before and after the template fills up and starts again still join correctly."""
    leaves = [tg.ones(k + 1, requires_grad=True) for k in range(150)]
    parts = [(x * float(k)).sum() for k, x in enumerate(leaves)]  # one tape each, a new shape each
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    total.backward()
    for k, x in enumerate(leaves):
        assert x.grad.tolist() == [float(k)] * (k + 1)


def test_threads_recording_at_once_keep_their_layouts_apart():
    """Each thread builds its own graphs of ever-changing small shapes, with a thread switch
    forced every microsecond. New tapes start from a layout template; a template shared by all
    threads once gave two tapes one layout number for different shapes: wrong gradients, errors,
    once an abort."""
    import sys

    failures = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(600):
                n, m = (int(k) for k in rng.integers(1, 9, size=2))
                a = tg.tensor(rng.standard_normal((n, 1)), requires_grad=True)
                b = tg.tensor(rng.standard_normal((1, m)), requires_grad=True)
                c = tg.tensor(rng.standard_normal(m), requires_grad=True)
                y = ((a * b).tanh() * c).sum(0)
                (y.view(m, 1) * a.view(1, n)).sum().backward()
                expected = np.tanh(a.detach().numpy() * b.detach().numpy()).sum(0) * a.detach().numpy().sum()
                if c.grad.shape != (m,) or not np.allclose(c.grad.numpy(), expected, rtol=1e-6):
                    failures.append((seed, n, m))
        except Exception as error:  # noqa: BLE001 - any error of a thread is a failure here
            failures.append((seed, repr(error)))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []


@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        (np.float64(0.5), tg.float64),
        (np.float32(0.5), tg.float32),
        (np.int32(3), tg.int32),
        ([np.float64(0.5), 1.0], tg.float64),
        ([np.int32(3), 1], tg.int64),
        ([np.int32(3), np.int32(1)], tg.int32),
        ([[np.float64(1.0)], [np.float64(2.0)]], tg.float64),
        ([1, 2.0], tg.float32),
    ],
)
def test_a_numpy_scalar_keeps_its_dtype_as_in_pytorch(data, dtype):
    """``torch.tensor(np.float64(0.5))`` is float64; it was float32 here, and a tape recorded with
    one then refused float64 inputs."""
    assert tg.tensor(data).dtype == dtype


@pytest.mark.parametrize("first", ["grad", "backward"])
def test_a_partial_backward_frees_only_what_it_ran(first):
    """``autograd.grad(l1, [w])`` runs only the nodes on a path to ``w``, as PyTorch does: ``s``'s
    node is left whole for a later backward through it, and the nodes it ran are freed."""
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = tg.ones(3, requires_grad=True)
    s = x.exp()
    l1, l2 = (s * w).sum(), s.sum()
    if first == "grad":
        (grad_w,) = tg.autograd.grad(l1, [w])
    else:
        l1.backward(inputs=[w])
        grad_w = w.grad
    np.testing.assert_allclose(grad_w.numpy(), np.exp([1.0, 2.0, 3.0]), rtol=1e-6)
    (grad_x,) = tg.autograd.grad(l2, [x])
    np.testing.assert_allclose(grad_x.numpy(), np.exp([1.0, 2.0, 3.0]), rtol=1e-6)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        tg.autograd.grad(l1, [w])


@pytest.mark.parametrize("path", ["one call", "hooked", "large"])
def test_autograd_grad_stops_at_the_lowest_input_it_wants(path):
    """``autograd.grad(c.sum(), a)`` after a backward freed the rows below ``a``: PyTorch runs
    only the nodes above ``a``, so it answers. The sweep went on below and raised "Trying to
    backward through the graph a second time". The same with a hook (the sweep that stops in
    Python) and with large rows (the blocked groups)."""
    n = 3 if path != "large" else 1 << 16
    x = tg.linspace(0.1, 0.5, n, dtype=tg.float64).requires_grad_()
    a = (x * 3).exp().sin()
    if path == "hooked":
        seen = []
        a.register_hook(lambda g: seen.append(g.clone()))
    c = a * a + 2 * a
    a.sum().backward()  # frees the rows below a
    (got,) = tg.autograd.grad(c.sum(), a)
    np.testing.assert_allclose(got.numpy(), 2 * a.detach().numpy() + 2, rtol=1e-12)
    if path == "hooked":
        assert len(seen) == 2  # its first backward's, and autograd.grad's
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        tg.autograd.grad(c.sum(), x)  # that one needs the rows below a


@pytest.mark.parametrize("n", [3, 70_000])
def test_autograd_grad_skips_a_freed_node_off_its_path(n):
    """``out = q * h`` with ``h``'s node freed by an earlier backward: ``grad(out, q)`` runs
    only ``out``'s node in PyTorch (its saved ``h`` is alive), while the sweep reached ``h``'s
    row too and raised. A gradient wanted through ``h`` still raises."""
    z = tg.linspace(0.1, 0.5, n, dtype=tg.float64).requires_grad_()
    x = tg.linspace(0.2, 0.7, n, dtype=tg.float64).requires_grad_()
    q = z * 2
    h = (x * x).exp()
    h.sum().backward()
    (got,) = tg.autograd.grad((q * h).sum(), q)
    np.testing.assert_allclose(got.numpy(), h.detach().numpy(), rtol=1e-15)
    (got,) = tg.autograd.grad((q * h).sum(), z)
    np.testing.assert_allclose(got.numpy(), 2 * h.detach().numpy(), rtol=1e-15)
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        tg.autograd.grad((q * h).sum(), x)


@pytest.mark.parametrize("n", [4, 4000])  # the small-row path and the families
@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
def test_relu_selects_its_gradient_as_pytorch_does(n, dtype):
    """PyTorch's ReluBackward0 is a select (threshold_backward): an infinite or NaN incoming
    gradient where the result is <= 0 gives 0, not inf * 0 = NaN; a NaN result passes it on.
    The same in eager, create_graph and replay."""
    values = np.tile([-1.0, 0.0, 2.0, np.nan], n // 4)
    upstream = np.tile([np.inf, np.nan, np.inf, 1.0], n // 4)
    expected = np.tile([0.0, 0.0, np.inf, 1.0], n // 4)
    x = tg.tensor(values, dtype=dtype, requires_grad=True)
    x.relu().backward(tg.tensor(upstream, dtype=dtype))
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    (eager,) = tg.autograd.grad(x.relu(), x, tg.tensor(upstream, dtype=dtype), create_graph=True)
    np.testing.assert_array_equal(eager.detach().numpy(), expected)
    tape = tg.record(lambda t: (t.relu() * tg.tensor(upstream, dtype=dtype)).sum(), x.detach())
    _, (replayed,) = tape.value_and_grad(x.detach())
    np.testing.assert_array_equal(replayed.numpy(), expected)


def test_iterating_a_tensor_gives_unbind_views_and_their_gradients():
    """``list(x)`` is PyTorch's ``x.unbind(0)`` (a path of its own: strides worked out once):
    ``UnbindBackward0`` views, refusing in-place changes as PyTorch's do, and their gradients."""
    x = tg.arange(6.0).reshape(2, 3).requires_grad_()
    rows = list(x)
    assert [type(r.grad_fn).__name__ for r in rows] == ["UnbindBackward0", "UnbindBackward0"]
    with pytest.raises(RuntimeError, match="Output 1 of Unbind is a view and is being modified inplace"):
        list(x * 1)[1].mul_(2)
    np.testing.assert_array_equal(rows[1].detach().numpy(), [3.0, 4.0, 5.0])
    (rows[0] * 2.0 + rows[1] * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, 2.0, 2.0], [3.0, 3.0, 3.0]])
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        iter(tg.tensor(1.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_of_a_scalar_has_the_bits_of_the_array_path(dtype):
    values = np.array([-800.0, -3.0, 0.0, 0.3, 19.9, 20.0, 25.0, np.nan], dtype)
    whole = tg.nn.functional.softplus(tg.tensor(values)).numpy()
    for value, expected in zip(values, whole):
        single = tg.nn.functional.softplus(tg.tensor(value)).numpy()
        assert single.shape == () and single.dtype == dtype
        assert single.tobytes() == np.asarray(expected, dtype).tobytes()


@pytest.mark.parametrize("name", ["sin", "cos", "silu", "softplus"])
def test_unary_ops_read_their_input_live_at_any_size(name):
    """A change through ``.data`` after the op is seen by its backward, as PyTorch's reads the
    saved input: large sin, cos, silu and softplus no longer precompute their derivative when
    recorded (the backward kernels compute it vectorized). Found by a reviewer: 5,000 zeros then
    ``+= 1`` gave the derivative at 0."""
    v = tg.zeros(5000, requires_grad=True)
    y = getattr(tg.nn.functional, name)(v) if name in ("silu", "softplus") else getattr(v, name)()
    v.data.add_(1)
    y.sum().backward()
    sigmoid = 1 / (1 + np.exp(-1.0))
    expected = {"sin": np.cos(1.0), "cos": -np.sin(1.0), "silu": sigmoid * (1 + (1 - sigmoid)), "softplus": sigmoid}[
        name
    ]
    np.testing.assert_allclose(v.grad.numpy(), np.full(5000, expected, np.float32), rtol=1e-6)


def test_a_retained_gradient_held_from_an_earlier_backward_keeps_its_values():
    x = tg.ones(2, requires_grad=True)
    y = x * 3
    y.retain_grad()
    z = (y * y).sum()
    z.backward(retain_graph=True)
    held = y.grad
    z.backward()
    assert held.tolist() == [6.0, 6.0]  # PyTorch's retain_grad makes a new tensor each time
    assert y.grad.tolist() == [12.0, 12.0]
    assert x.grad.tolist() == [36.0, 36.0]


def test_a_training_step_takes_the_slot_layout_its_predecessor_worked_out(monkeypatch):
    """Each step records a new tape of the same structure; its backward takes the slot layout
    (with shared slots) of the last such tape: one compiled call, and the same gradients."""
    import numba

    from tapegrad._kernels import backward

    if numba.config.DISABLE_JIT:
        pytest.skip("counts calls of the compiled sweep")
    rng = np.random.default_rng(0)
    X = tg.tensor(rng.standard_normal((8, 5)), dtype=tg.float32)
    W = tg.tensor(rng.standard_normal((5, 16)), dtype=tg.float32, requires_grad=True)
    b = tg.tensor(rng.standard_normal(16), dtype=tg.float32, requires_grad=True)
    calls = []
    sweep = backward._run

    def counted(*args):
        calls.append(1)
        return sweep(*args)

    counted.overloads = sweep.overloads
    monkeypatch.setattr(backward, "_run", counted)
    grads = []
    for _ in range(3):
        W.grad = b.grad = None
        calls.clear()
        ((X @ W + b).tanh() * 2.0).sum().backward()  # the bias add passes its gradient on: a shared slot
        grads.append((W.grad.numpy().copy(), b.grad.numpy().copy(), len(calls)))
    assert grads[-1][2] == 1
    for w_grad, b_grad, _ in grads[1:]:
        np.testing.assert_array_equal(w_grad, grads[0][0])
        np.testing.assert_array_equal(b_grad, grads[0][1])


def test_grad_mode_decorators_apply_inside_a_generator_at_each_step():
    # PyTorch's decorators run a generator's body in the mode at each step; the mode was left
    # as soon as the generator object was returned, so its batches recorded.
    w = tg.ones(2, requires_grad=True)

    @tg.no_grad()
    def batches():
        for i in range(2):
            received = yield w * i
            assert received is None
        return "done"

    steps = batches()
    assert [b.requires_grad for b in steps] == [False, False]
    assert tg.is_grad_enabled()  # outside the body between steps, and after

    @tg.set_grad_enabled(False)
    def off():
        yield (w * 2).requires_grad

    @tg.inference_mode(False)
    def unchanged():
        yield (w * 2).requires_grad

    with tg.no_grad():
        enabled = tg.enable_grad()(lambda: (w * 2).requires_grad)()
    assert (list(off()), list(unchanged()), enabled) == ([False], [True], True)


def test_a_generator_under_no_grad_passes_sends_throws_and_its_return_value_through():
    @tg.no_grad()
    def echo():
        received = yield tg.is_grad_enabled()
        try:
            yield received
        except ValueError as error:
            yield f"caught {error}"
        return "finished"

    steps = echo()
    assert next(steps) is False
    assert steps.send("hello") == "hello"
    assert steps.throw(ValueError("boom")) == "caught boom"
    with pytest.raises(StopIteration) as stop:
        next(steps)
    assert stop.value.value == "finished"
    assert tg.is_grad_enabled()


def test_materialized_zeros_require_grad_under_create_graph():
    """MAML-style code with an unused parameter differentiates the zeros again (it raised)."""
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], requires_grad=True)
    _, gb = tg.autograd.grad((a * a).sum(), [a, b], create_graph=True, materialize_grads=True)
    assert gb.requires_grad and gb.tolist() == [0.0, 0.0]
    second = tg.autograd.grad(gb.sum(), [a, b], allow_unused=True, materialize_grads=True)
    assert [g.tolist() for g in second] == [[0.0, 0.0], [0.0, 0.0]]
    _, plain = tg.autograd.grad((a * a).sum(), [a, b], materialize_grads=True)
    assert not plain.requires_grad


def test_post_accumulate_grad_hooks_run_after_each_accumulation():
    y = tg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = y.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.tolist()))
    (y * 3).sum().backward()
    (y * y).sum().backward()
    handle.remove()
    (y * 3).sum().backward()
    assert seen == [[3.0, 3.0], [5.0, 7.0]] and y.grad.tolist() == [8.0, 10.0]
    w = tg.nn.Parameter(tg.ones(2))
    optimizer = tg.optim.SGD([w], lr=0.1)

    def step(p):
        optimizer.step()
        optimizer.zero_grad()

    w.register_post_accumulate_grad_hook(step)
    (w * w).sum().backward()  # the optimizer in the backward
    np.testing.assert_allclose(w.detach().numpy(), [0.8, 0.8])
    assert w.grad is None
    for returned, error, message in ((lambda p: (1, 2), TypeError, "expected Variable, but hook returned 'tuple'"),
                                     (lambda p: p.grad, RuntimeError, "post accumulate grad hooks should return None")):  # fmt: skip
        z = tg.tensor([1.0, 2.0], requires_grad=True)
        z.register_post_accumulate_grad_hook(returned)
        with pytest.raises(error, match=message):
            (z * 2).sum().backward()
    with pytest.raises(RuntimeError, match="cannot be registered on non-leaf tensors"):
        (y * 1).register_post_accumulate_grad_hook(print)


def test_grad_options_pytorch_accepts():
    y = tg.tensor([1.0, 2.0], requires_grad=True)
    (batched,) = tg.autograd.grad(y * 2, y, grad_outputs=tg.eye(2), is_grads_batched=True)
    assert batched.tolist() == [[2.0, 0.0], [0.0, 2.0]]
    assert tg.autograd.grad((y * y).sum(), y, only_inputs=True)[0].tolist() == [2.0, 4.0]
    with pytest.raises(RuntimeError, match="`inputs` argument to `backward\\(\\)` cannot be empty."):
        (y * 2).sum().backward(inputs=[])
    weight = tg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument 'weight'"):
        tg.nn.functional.cross_entropy(tg.randn(2, 3, requires_grad=True), tg.tensor([0, 2]), weight=weight)


def test_backward_refuses_fewer_gradients_than_tensors():
    x = tg.tensor([1.0, 2.0], requires_grad=True)  # (the root past the gradients was dropped)
    with pytest.raises(RuntimeError, match="got 2 tensors and 1 gradients"):
        tg.autograd.backward([x * 2, (x * 3).sum()], [tg.ones(2)])


def test_sinc_second_derivative_at_zero_is_exact():
    x = tg.tensor([0.0, 0.3], dtype=tg.float64, requires_grad=True)
    (g,) = tg.autograd.grad(tg.sinc(x).sum(), x, create_graph=True)
    (h,) = tg.autograd.grad(g.sum(), x)
    assert h[0].item() == pytest.approx(-(np.pi**2) / 3, rel=1e-12)  # (it was 0)
    s = np.pi * 0.3  # d2/dx2 sin(pi x)/(pi x) = pi^2 ((2 - s^2) sin s - 2 s cos s) / s^3
    assert h[1].item() == pytest.approx(np.pi**2 * ((2 - s * s) * np.sin(s) - 2 * s * np.cos(s)) / s**3, rel=1e-12)


def _after_grad_of_an_intermediate(m):
    x = m.tensor([1.0, 2.0], requires_grad=True)
    a = x.exp()
    m.autograd.grad((a * 3).sum(), a)  # does not run a's own node: its saved values stay
    a.sum().backward()
    y = m.tensor([1.0, 2.0], requires_grad=True)
    e = y.exp()
    c = e.sin()
    m.autograd.grad((c * 3).sum(), [c, e])  # runs c's node (e is below it): c's are freed
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        c.sum().backward()
    return x.grad.numpy()


def test_grad_of_an_intermediate_frees_only_the_nodes_it_runs():
    np.testing.assert_allclose(_after_grad_of_an_intermediate(tg), np.exp([1.0, 2.0]), rtol=1e-6)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(_after_grad_of_an_intermediate(torch), np.exp([1.0, 2.0]), rtol=1e-6)


def test_enable_grad_inside_inference_mode_records_nothing():
    x = tg.ones(2, requires_grad=True)
    with tg.inference_mode():
        assert tg.is_inference_mode_enabled()
        with tg.enable_grad():
            assert not (x * 2).requires_grad  # (inference_mode was no_grad: this recorded)
        with tg.set_grad_enabled(True):
            assert not (x * 2).requires_grad
        with tg.inference_mode(False):
            assert (x * 2).requires_grad
    assert not tg.is_inference_mode_enabled() and (x * 2).requires_grad


def test_sinc_near_zero_is_the_taylor_series():
    # The quotient's derivative cancelled badly near 0: float32 at 1e-20 gave -6.9e13
    for dtype in (tg.float32, tg.float64):
        x = tg.tensor([1e-20, 1e-10, 1e-3, 0.05], dtype=dtype, requires_grad=True)
        (g,) = tg.autograd.grad(tg.sinc(x).sum(), x)
        s = np.pi * np.array([1e-20, 1e-10, 1e-3, 0.05])
        exact = (s * np.cos(s) - np.sin(s)) / (s * s) * np.pi  # d/dx sin(pi x)/(pi x)
        exact[:2] = -(np.pi**2) * np.array([1e-20, 1e-10]) / 3  # (the series: float64 cancels too)
        np.testing.assert_allclose(g.numpy(), exact, rtol=1e-5 if dtype == tg.float32 else 1e-9, atol=1e-30)


def _second_backwards(m):
    F = m.nn.functional  # noqa: N806
    cases = [
        ("index", lambda x: x[m.tensor([0, 1])]), ("gather", lambda x: x.gather(0, m.tensor([1]))),
        ("index_select", lambda x: x.index_select(0, m.tensor([1]))), ("where", lambda x: m.where(x > 0, x, x * 0)),
        ("masked_fill", lambda x: x.masked_fill(x > 1, 0.0)), ("embedding", lambda x: F.embedding(m.tensor([0]), x.reshape(2, 1))),
        ("repeat", lambda x: x.repeat(2)), ("flip", lambda x: x.flip(0)),
    ]  # fmt: skip
    results = []
    for name, f in cases:
        x = m.tensor([1.0, 2.0], requires_grad=True)
        y = f(x).sum()
        y.backward()
        try:
            y.backward()
            results.append((name, "ran"))
        except RuntimeError as error:
            results.append((name, "backward through the graph a second time" in str(error)))
    return results


def test_a_second_backward_through_what_pytorch_frees_raises():
    # these rows saved nothing here (the indices and conditions sit in the tape): the second
    # backward added the gradient again, where PyTorch's has freed them and raises
    ours = _second_backwards(tg)
    assert ours[0] == ("index", True) and ours[-1] == ("flip", "ran")
    torch = pytest.importorskip("torch")
    assert ours == _second_backwards(torch)
