"""Cases where tapegrad gave another gradient than PyTorch 2.13, or no error where it raises:
an overwritten infinite or NaN value of ``index_put``/``scatter``, binary_cross_entropy's target
at p = 0 or 1, scatter's ``src`` larger than its index, ``masked_fill`` of an integer tensor with
a value that requires grad, comparisons of small integer types inside ``tapegrad.record``,
softplus's gradient below -15, ``addmm`` with ``beta=0``, an in-place change of a large
transpose, class weights of another length and instance norm's ``momentum=None``.
Each is compared with PyTorch: values (with their signed zeros and NaNs), gradients, or the
exception's type and message."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg


def _same(got, expected) -> None:
    """Equal arrays, NaNs where they are, and the same sign of every zero."""
    got, expected = np.asarray(got), np.asarray(expected)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def _raised(function, *args) -> tuple:
    """The type name and message of what ``function(*args)`` raises."""
    with pytest.raises(Exception) as raised:
        function(*args)
    return type(raised.value).__name__, str(raised.value)


# -- an overwritten value takes the gradient at its position, whatever it holds -------------

NON_FINITE = [float("inf"), -float("inf"), float("nan")]


@pytest.mark.parametrize("overwritten", NON_FINITE, ids=["inf", "-inf", "nan"])
def test_index_put_sends_an_overwritten_non_finite_value_its_gradient(overwritten):
    # The report's case: PyTorch's index_put backward is grad[indices] for every value.
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        x = m.zeros(2, requires_grad=True) * 1
        v = m.tensor([overwritten, 1.0], requires_grad=True)
        x[[0, 0]] = v
        x.sum().backward()
        results.append((x.detach().numpy(), v.grad.numpy()))
    for got, expected in zip(*results):
        _same(got, expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_index_put_with_many_repeats_and_non_finite_values_matches_pytorch(dtype):
    # Positions written 1, 2, 3, 5 and 9 times (the kept value last), overwritten values infinite
    # or NaN among them, a kept -0.0; the base takes the gradient where nothing was written.
    torch = pytest.importorskip("torch")
    counts = {0: 1, 2: 2, 3: 3, 5: 5, 6: 9}
    index = np.concatenate([np.full(count, position) for position, count in counts.items()])
    index = np.random.default_rng(3).permutation(index)
    values = np.random.default_rng(4).standard_normal(index.size)
    values[[1, 4, 7, 11]] = [np.inf, np.nan, -np.inf, np.nan]
    last = {position: np.flatnonzero(index == position)[-1] for position in counts}
    values[last[3]] = -0.0
    weights = np.linspace(0.5, 2.0, 8)
    results = []
    for m in (tg, torch):
        base = m.tensor(np.arange(8.0), dtype=getattr(m, dtype), requires_grad=True)
        v = m.tensor(values, dtype=getattr(m, dtype), requires_grad=True)
        y = base * 2.0
        y[m.tensor(index)] = v
        (y * m.tensor(weights, dtype=getattr(m, dtype))).sum().backward()
        results.append((y.detach().numpy(), base.grad.numpy(), v.grad.numpy()))
    for got, expected in zip(*results):
        _same(got, expected)


@pytest.mark.parametrize("overwritten", NON_FINITE, ids=["inf", "-inf", "nan"])
def test_scatter_sends_an_overwritten_non_finite_src_its_gradient(overwritten):
    torch = pytest.importorskip("torch")
    index = [[0, 0, 1, 1], [2, 2, 2, 0]]
    src = [[overwritten, 1.0, overwritten, 3.0], [overwritten, overwritten, 5.0, -0.0]]
    results = []
    for m in (tg, torch):
        x = m.tensor(np.arange(6.0).reshape(2, 3), dtype=m.float64, requires_grad=True)
        s = m.tensor(src, dtype=m.float64, requires_grad=True)
        out = x.scatter(1, m.tensor(index), s)
        (out * m.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=m.float64)).sum().backward()
        results.append((out.detach().numpy(), x.grad.numpy(), s.grad.numpy()))
    for got, expected in zip(*results):
        _same(got, expected)


def test_scatter_along_dim_0_in_place_with_overwritten_nans_matches_pytorch():
    torch = pytest.importorskip("torch")
    index = [[1, 0, 1], [1, 1, 1], [0, 0, 1]]
    src = np.array([[np.nan, 1.0, np.inf], [2.0, np.nan, -np.inf], [3.0, 4.0, 5.0]])
    results = []
    for m in (tg, torch):
        s = m.tensor(src, requires_grad=True)
        x = m.zeros(2, 3, dtype=m.float64)
        x.scatter_(0, m.tensor(index), s * 1.0)
        (x * m.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=m.float64)).sum().backward()
        results.append((x.detach().numpy(), s.grad.numpy()))
    for got, expected in zip(*results):
        _same(got, expected)


@pytest.mark.parametrize(
    "values",
    [[1.5, 2.0, -3.0, 0.5], [np.inf, 2.0, np.nan, 0.5], [1.5, -np.inf, -3.0, 0.5]],
    ids=["finite", "inf", "-inf"],
)
def test_a_second_derivative_through_an_overwritten_value_matches_pytorch(values):
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        v = m.tensor(values, dtype=m.float64, requires_grad=True)
        y = m.zeros(3, dtype=m.float64)
        y[m.tensor([1, 1, 2, 1])] = v * v
        (g,) = m.autograd.grad((y * m.tensor([1.0, 2.0, 3.0], dtype=m.float64)).sum(), v, create_graph=True)
        (g * m.tensor([1.0, 10.0, 100.0, 1000.0], dtype=m.float64)).sum().backward()
        results.append((y.detach().numpy(), g.detach().numpy(), v.grad.numpy()))
    for got, expected in zip(*results):
        _same(got, expected)


def test_a_second_derivative_through_a_repeated_pick_keeps_an_infinite_gradient_where_it_goes():
    # create_graph's scatter of the gradient back through x[index] masked the positions a round
    # of picks did not reach by multiplying with 0: an infinite gradient picked there gave NaN.
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        x = m.tensor([1.0, 2.0, 3.0], dtype=m.float64, requires_grad=True)
        y = x[m.tensor([0, 0, 1])] * x[m.tensor([1, 0, 0])]
        weights = m.tensor([float("inf"), 1.0, 2.0], dtype=m.float64)
        (g,) = m.autograd.grad((y * weights).sum(), x, create_graph=True)
        (g * m.tensor([1.0, 10.0, 100.0], dtype=m.float64)).sum().backward()
        results.append((g.detach().numpy(), x.grad.numpy()))
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)


def test_a_second_derivative_through_a_view_keeps_an_infinite_gradient_where_it_goes():
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        x = m.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=m.float64, requires_grad=True)
        y = x[:, 1:].t()
        weights = m.tensor([[float("inf"), 1.0], [2.0, 3.0]], dtype=m.float64)
        (g,) = m.autograd.grad((y * y * weights).sum(), x, create_graph=True)
        results.append(g.detach().numpy())
    np.testing.assert_array_equal(*results)


def test_a_replay_sends_an_overwritten_infinite_value_its_gradient():
    torch = pytest.importorskip("torch")

    def program(base, values):
        changed = base * 2.0
        changed[tg.tensor([0, 2, 0])] = values
        return (changed * tg.tensor([1.0, 2.0, 3.0, 4.0], dtype=tg.float64)).sum()

    tape = tg.record(program, tg.ones(4, dtype=tg.float64), tg.ones(3, dtype=tg.float64))
    base, values = np.array([1.0, -2.0, 3.0, 0.5]), np.array([np.inf, 6.0, 4.0])
    value, grads = tape.value_and_grad(tg.tensor(base), tg.tensor(values))
    t_base, t_values = torch.tensor(base, requires_grad=True), torch.tensor(values, requires_grad=True)
    changed = t_base * 2.0
    changed[torch.tensor([0, 2, 0])] = t_values
    expected = (changed * torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)).sum()
    expected.backward()
    assert float(value) == expected.item()
    _same(grads[0].numpy(), t_base.grad.numpy())
    _same(grads[1].numpy(), t_values.grad.numpy())


# -- binary_cross_entropy: the target's gradient is -logit(p), unclamped -----------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_cross_entropy_target_gradient_at_probabilities_0_and_1(dtype, reduction):
    # The clamped logs (-100) gave the target -+100 where PyTorch gives log(1 - p) - log(p): +-inf.
    torch = pytest.importorskip("torch")
    p = np.array([0.0, 1.0, 0.0, 1.0, 1e-13, 1 - 1e-7, 0.3], dtype)
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 0.25, 0.6], dtype)
    weight = np.linspace(0.5, 1.5, p.size).astype(dtype)
    results = []
    for m in (tg, torch):
        x = m.tensor(p, requires_grad=True)
        target = m.tensor(t, requires_grad=True)
        loss = m.nn.functional.binary_cross_entropy(x, target, m.tensor(weight), reduction=reduction)
        loss.backward(m.ones_like(loss))
        results.append((loss.detach().numpy(), x.grad.numpy(), target.grad.numpy()))
    (value, p_grad, t_grad), (want_value, want_p_grad, want_t_grad) = results
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    np.testing.assert_allclose(p_grad, want_p_grad, rtol=1e-6)
    np.testing.assert_allclose(t_grad, want_t_grad, rtol=1e-6)
    assert np.isinf(t_grad[:4]).all()


def test_binary_cross_entropy_values_and_gradients_at_the_edge_are_pytorchs_bits():
    # p below e**-100 (its log clamped in the loss, not in the target's gradient), and the signed
    # zeros of the loss at p = 0 and 1; the input's gradient there divides by PyTorch's epsilon,
    # a float32 1e-12 even for float64.
    torch = pytest.importorskip("torch")
    p = np.array([0.0, 1.0, 1e-50, 1e-300, 0.0, 1.0])
    t = np.array([0.0, 1.0, 0.3, 1.0, 0.2, 0.9])
    results = []
    for m in (tg, torch):
        x = m.tensor(p, requires_grad=True)
        target = m.tensor(t, requires_grad=True)
        loss = m.nn.functional.binary_cross_entropy(x, target, reduction="none")
        loss.sum().backward()
        results.append((loss.detach().numpy(), x.grad.numpy(), target.grad.numpy()))
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)
    _same(results[0][0], results[1][0])


def test_a_recorded_binary_cross_entropy_replays_the_targets_gradient_at_0_and_1():
    torch = pytest.importorskip("torch")

    def loss(p, t):
        return tg.nn.functional.binary_cross_entropy(p, t)

    tape = tg.record(loss, np.array([0.3, 0.6, 0.5], np.float32), np.array([1.0, 0.0, 0.5], np.float32))
    for probabilities, targets in (([1.0, 0.0, 0.4], [1.0, 0.0, 0.5]), ([0.0, 1.0, 0.2], [0.25, 0.75, 1.0])):
        p, t = np.array(probabilities, np.float32), np.array(targets, np.float32)
        value, (p_grad, t_grad) = tape.value_and_grad(p, t)
        tp, tt = torch.tensor(p, requires_grad=True), torch.tensor(t, requires_grad=True)
        torch.nn.functional.binary_cross_entropy(tp, tt).backward()
        np.testing.assert_allclose(float(value), torch.nn.functional.binary_cross_entropy(tp, tt).item(), rtol=1e-6)
        np.testing.assert_allclose(p_grad.numpy(), tp.grad.numpy(), rtol=1e-6)
        np.testing.assert_allclose(t_grad.numpy(), tt.grad.numpy(), rtol=1e-6)


# -- scatter: src's gradient is grad.gather(dim, index), of the index's shape ----------------

SMALL_INDEX = {
    "narrower along dim": ((2, 3), 1, [[0, 1]], (2, 3)),
    "shorter across dim": ((2, 3), 0, [[0, 1, 1]], (2, 3)),
    "src larger than self": ((2, 3), 0, [[0, 1, 1], [1, 0, 0]], (3, 3)),
    "src of one row": ((2, 3), 1, [[0, 1]], (1, 3)),
    "empty index": ((2, 3), 0, np.zeros((0, 3), np.int64), (2, 3)),
    "0-d index, 1-d src": ((3,), 0, 0, (2,)),
    "0-d index, src of one": ((3,), 0, 0, (1,)),
    "0-d self, longer src": ((), 0, [0], (2,)),
}


def _scatter(m, self_shape, dim, index, src_shape, how):
    src = m.ones(src_shape, dtype=m.float64, requires_grad=True)
    x = m.zeros(self_shape, dtype=m.float64, requires_grad=True)
    out = x.scatter(dim, m.tensor(index, dtype=m.int64), src * 2.0)
    if how == "forward":
        return out.detach().numpy()
    if how == "self only":  # no gradient reaches src: nothing to refuse
        return m.autograd.grad(out.sum(), x)[0].numpy()
    if how == "create_graph":
        return m.autograd.grad(out.sum(), src, create_graph=True)
    out.sum().backward()
    return src.grad


@pytest.mark.parametrize("case", SMALL_INDEX.values(), ids=list(SMALL_INDEX))
def test_scatter_with_an_index_smaller_than_src_refuses_src_gradient_as_pytorch(case):
    torch = pytest.importorskip("torch")
    for how in ("backward", "create_graph"):
        assert _raised(_scatter, tg, *case, how) == _raised(_scatter, torch, *case, how)
    for how in ("forward", "self only"):
        np.testing.assert_array_equal(_scatter(tg, *case, how), _scatter(torch, *case, how))


def test_scatter_in_place_with_a_smaller_index_refuses_src_gradient_as_pytorch():
    torch = pytest.importorskip("torch")

    def run(m):
        src = m.ones(2, 3, requires_grad=True)
        x = m.zeros(2, 3)
        x.scatter_(1, m.tensor([[0, 1]]), src)
        x.sum().backward()

    assert _raised(run, tg) == _raised(run, torch)


def test_scatter_with_an_index_that_src_expands_to_takes_zeros_as_pytorch():
    # An empty index along a dimension where src has one entry: PyTorch sums the empty gradient
    # to src's shape, zeros; no error.
    torch = pytest.importorskip("torch")
    grads = []
    for m in (tg, torch):
        src = m.ones(1, 3, dtype=m.float64, requires_grad=True)
        m.zeros(2, 3, dtype=m.float64).scatter(0, m.zeros(0, 3, dtype=m.int64), src).sum().backward()
        grads.append(src.grad.numpy())
    _same(*grads)


def test_scatter_with_a_smaller_index_runs_under_vmap_and_record_as_pytorch():
    # Every input of a recording requires grad, asked for or not: refused when recorded, these
    # programs PyTorch runs raised (the refusal waits for a gradient, which a replay cannot).
    torch = pytest.importorskip("torch")

    def program(m):
        def f(x, s):
            return x.scatter(0, m.tensor([[0, 1]]), s)

        return m.func.vmap(f, in_dims=(0, None))(m.zeros(2, 2, 2), m.ones(2, 2))

    np.testing.assert_array_equal(program(tg).numpy(), program(torch).numpy())
    gradient = tg.func.vmap(tg.func.grad(lambda x, s: program_sum(tg, x, s)), in_dims=(0, None))
    expected = torch.func.vmap(torch.func.grad(lambda x, s: program_sum(torch, x, s)), in_dims=(0, None))
    np.testing.assert_array_equal(
        gradient(tg.ones(2, 2, 2), tg.ones(2, 2)).numpy(), expected(torch.ones(2, 2, 2), torch.ones(2, 2)).numpy()
    )
    tape = tg.record(lambda x, s: x.scatter(0, tg.tensor([[0, 1]]), s).sum(), tg.zeros(2, 2), tg.ones(2, 2))
    _, (grad_x,) = tape.value_and_grad(tg.zeros(2, 2), tg.ones(2, 2), argnums=(0,))
    x = torch.zeros(2, 2, requires_grad=True)
    x.scatter(0, torch.tensor([[0, 1]]), torch.ones(2, 2)).sum().backward()
    np.testing.assert_array_equal(grad_x.numpy(), x.grad.numpy())


def program_sum(m, x, s):
    return (x.scatter(0, m.tensor([[0, 1]]), s) * m.arange(4.0).reshape(2, 2)).sum()


def test_masked_fill_of_an_integer_tensor_by_a_batched_value_runs_under_vmap_as_pytorch():
    torch = pytest.importorskip("torch")

    def program(m):
        integers, mask = m.tensor([1, 2, 3]), m.tensor([True, False, True])
        return m.func.vmap(lambda v: integers.masked_fill(mask, v))(m.tensor([5.0, 7.0]))

    ours, theirs = program(tg), program(torch)
    assert ours.tolist() == theirs.tolist() and str(ours.dtype)[-5:] == str(theirs.dtype)[-5:]


def test_scatter_with_a_smaller_index_takes_no_gradient_without_grad_mode():
    src = tg.ones(2, 3, requires_grad=True)
    with tg.no_grad():
        out = tg.zeros(2, 3).scatter(1, tg.tensor([[0, 1]]), src)
    assert not out.requires_grad
    assert out.tolist() == [[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


# -- masked_fill of an integer tensor with a value that requires grad ----------------------


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "uint8", "bool"])
def test_masked_fill_of_an_integer_tensor_with_a_value_requiring_grad_raises_as_pytorch(dtype):
    torch = pytest.importorskip("torch")

    def fill(m):
        x = m.zeros(3, dtype=getattr(m, dtype))
        return x.masked_fill(m.tensor([True, False, True]), m.tensor(2.5, requires_grad=True))

    assert _raised(fill, tg) == _raised(fill, torch)
    results = []
    for m in (tg, torch):
        with m.no_grad():  # without grad mode: the value cast, no gradient, no error
            filled = fill(m)
        results.append((filled.tolist(), filled.requires_grad))
    assert results[0] == results[1]


def test_masked_fill_checks_its_arguments_before_the_dtype_as_pytorch():
    torch = pytest.importorskip("torch")
    cases = [
        lambda m: m.zeros(3, dtype=m.int64).masked_fill(m.zeros(3, dtype=m.int64), m.tensor(2.5, requires_grad=True)),
        lambda m: m.zeros(3, dtype=m.int64).masked_fill(m.zeros(4, dtype=m.bool), m.tensor(2.5, requires_grad=True)),
        lambda m: m.zeros(3, dtype=m.int64).masked_fill(m.zeros(3, dtype=m.bool), m.tensor([2.5], requires_grad=True)),
        lambda m: m.zeros(0, dtype=m.int64).masked_fill(m.zeros(0, dtype=m.bool), m.tensor(2.5, requires_grad=True)),
    ]
    for case in cases:
        assert _raised(case, tg) == _raised(case, torch)


# -- comparisons inside tapegrad.record: the replay compares as eager and PyTorch do --------

COMPARISONS = {
    "uint8 < tensor(-3)": lambda m: m.tensor([1, 200, 3], dtype=m.uint8) < m.tensor(-3),
    "tensor(-3) > uint8": lambda m: m.tensor(-3) > m.tensor([1, 200, 3], dtype=m.uint8),
    "uint8 == tensor(456)": lambda m: m.tensor([1, 200, 3], dtype=m.uint8) == m.tensor(456),
    "int16 < tensor(40000)": lambda m: m.tensor([1, -200, 30000], dtype=m.int16) < m.tensor(40000),
    "int32 == tensor(2**32 + 7)": lambda m: m.tensor([7, 8, 9], dtype=m.int32) == m.tensor(2**32 + 7),
    "float32 == 0-d float64": lambda m: m.tensor([0.1, 0.2, 0.3]) == m.tensor(0.1, dtype=m.float64),
    "int64 == 0-d float32": lambda m: m.tensor([16777217, 3, 5]) == m.tensor(16777216.0),
    "int64 == a float": lambda m: m.tensor([16777217, 3, 5]) == 16777216.0,
}


@pytest.mark.parametrize("compare", COMPARISONS.values(), ids=list(COMPARISONS))
def test_a_recorded_comparison_replays_as_eager_and_pytorch_compare(compare):
    torch = pytest.importorskip("torch")

    def program(x):
        return compare(tg).double() * x

    x = tg.ones(3, dtype=tg.float64)
    expected = compare(torch).double().numpy()
    np.testing.assert_array_equal(program(x).numpy(), expected)
    np.testing.assert_array_equal(tg.record(program, x)(x).numpy(), expected)


def test_a_recorded_comparison_with_an_integer_input_wraps_or_refuses_as_a_replay_can():
    # An int64 input compared with a uint8 tensor is converted to uint8: the replay, holding it as
    # float64, cannot wrap it, and refuses a value out of uint8's range (a GuardError, as for any
    # integer conversion it cannot make); within it, it compares as eager.
    torch = pytest.importorskip("torch")
    small = np.array([1, 200, 3], np.uint8)

    def program(x, bound):
        return (tg.tensor(small) < bound).double() * x

    x = tg.ones(3, dtype=tg.float64)
    tape = tg.record(program, x, tg.tensor(5))
    for bound in (0, 5, 150, 255):
        expected = (torch.tensor(small) < torch.tensor(bound)).double().numpy()
        np.testing.assert_array_equal(tape(x, tg.tensor(bound)).numpy(), expected)
    with pytest.raises(tg.replay.GuardError, match="uint8"):
        tape(x, tg.tensor(-3))


def test_binary_cross_entropy_refuses_a_weight_that_requires_grad_as_pytorch():
    torch = pytest.importorskip("torch")

    def loss(m):
        p, t = m.tensor([0.3, 0.6]), m.tensor([0.0, 1.0])
        return m.nn.functional.binary_cross_entropy(p, t, weight=m.tensor([1.0, 2.0], requires_grad=True))

    with pytest.raises(RuntimeError) as theirs:
        loss(torch)
    with pytest.raises(RuntimeError) as ours:
        loss(tg)
    assert str(ours.value) == str(theirs.value)
    with torch.no_grad(), tg.no_grad():  # outside grad mode both take it
        assert abs(loss(tg).item() - loss(torch).item()) < 1e-6


@pytest.mark.parametrize("argument", ["weight", "pos_weight"])
def test_binary_cross_entropy_with_logits_refuses_weights_that_require_grad_in_grad_mode_only(argument):
    torch = pytest.importorskip("torch")

    def loss(m, requires_grad=True):
        x, t = m.tensor([0.3, -2.0]), m.tensor([0.0, 1.0])
        weights = {argument: m.tensor([1.5, 2.0], requires_grad=requires_grad)}
        return m.nn.functional.binary_cross_entropy_with_logits(x, t, **weights)

    with pytest.raises(RuntimeError) as theirs:
        loss(torch)
    with pytest.raises(RuntimeError) as ours:
        loss(tg)
    assert str(ours.value) == str(theirs.value)
    with torch.no_grad(), tg.no_grad():  # outside grad mode both take it (tapegrad raised)
        assert abs(loss(tg).item() - loss(torch).item()) < 1e-6
    assert abs(loss(tg, False).item() - loss(torch, False).item()) < 1e-6


@pytest.mark.parametrize("argument", ["weight", "pos_weight"])
@pytest.mark.parametrize("transform", ["grad", "vjp", "jacrev"])
def test_binary_cross_entropy_with_logits_weights_are_differentiated_under_func_as_torch_func(argument, transform):
    """torch.func differentiates both weights of the loss with logits (eager PyTorch refuses)."""
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        x, t = m.tensor([0.3, -2.0]), m.tensor([0.0, 1.0])

        def loss(w, m=m, x=x, t=t):
            return m.nn.functional.binary_cross_entropy_with_logits(x, t, **{argument: w})

        w = m.tensor([1.5, 2.0])
        if transform == "grad":
            result = m.func.grad(loss)(w)
        elif transform == "vjp":
            result = m.func.vjp(loss, w)[1](m.tensor(1.0))[0]
        else:
            result = m.func.jacrev(loss)(w)
        results.append(result.detach().numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)


def test_binary_cross_entropy_weight_is_refused_under_func_grad_as_torch_func():
    torch = pytest.importorskip("torch")

    def call(m):
        p, t = m.tensor([0.3, 0.6]), m.tensor([0.0, 1.0])
        return m.func.grad(lambda w: m.nn.functional.binary_cross_entropy(p, t, weight=w))(m.tensor([1.0, 2.0]))

    with pytest.raises(RuntimeError) as theirs:
        call(torch)
    with pytest.raises(RuntimeError) as ours:
        call(tg)
    assert str(ours.value) == str(theirs.value)


def test_binary_cross_entropy_by_a_batched_weight_runs_under_vmap_as_pytorch():
    torch = pytest.importorskip("torch")

    def losses(m):
        p, t = m.tensor([0.3, 0.6]), m.tensor([0.0, 1.0])
        weights = m.tensor([[1.0, 2.0], [0.5, 3.0]])
        return m.func.vmap(lambda w: m.nn.functional.binary_cross_entropy(p, t, weight=w))(weights)

    np.testing.assert_allclose(losses(tg).numpy(), losses(torch).numpy(), rtol=1e-6)


# -- softplus's gradient for negative inputs ------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("where", ["small", "large", "replay"])
def test_softplus_gradient_keeps_its_precision_for_negative_inputs(dtype, where):
    """softplus's gradient is the sigmoid, which the rules computed as 0.5 (1 + tanh(x / 2)):
    that cancels for negative x, 3% off at -15 and 0 from -18 in float32, 0 from -38 in float64
    (PyTorch: 2.06e-9 at -20, 1.9e-22 at -50), silently, and binary_cross_entropy_with_logits
    with it. Now PyTorch's g e / (e + 1), e = e**x, and g above the threshold 20: within an ulp
    of PyTorch on the small-row path, the families' and the register program's."""
    torch = pytest.importorskip("torch")
    values = [-100.0, -50.0, -38.0, -20.0, -15.0, -1.0, 0.0, 0.5, 19.9, 20.0, 20.1, 40.0]
    if where == "large":
        values = list(np.linspace(-90.0, 30.0, 4096))
    x = np.array(values, dtype=dtype)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.softplus(xt).sum().backward()
    expected = xt.grad.numpy()
    if where == "replay":
        tape = tg.record(lambda v: tg.nn.functional.softplus(v).sum(), x)
        _, (got,) = tape.value_and_grad(x)
        got = got.numpy()
    else:
        xs = [tg.tensor(x[i : i + 1], requires_grad=True) for i in range(len(x))] if where == "small" else []
        for leaf in xs:
            tg.nn.functional.softplus(leaf).sum().backward()
        if where == "small":
            got = np.concatenate([leaf.grad.numpy() for leaf in xs])
        else:
            leaf = tg.tensor(x, requires_grad=True)
            tg.nn.functional.softplus(leaf).sum().backward()
            got = leaf.grad.numpy()
    assert (got > 0).all() == (expected > 0).all()
    # (subnormal results, below e**-87 in float32, to an absolute 1e-38: vmath's exp rounds there)
    np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(dtype).eps, atol=np.finfo(dtype).tiny)


def test_addmm_with_beta_zero_gives_input_a_zero_gradient():
    """``addmm(M, a, b, beta=0)`` ignores M's values (its NaN does not propagate) and gives it
    a zero gradient, as PyTorch; tapegrad left ``M.grad`` None."""
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        M = m.tensor([[1.0, float("nan")], [3.0, 4.0]], dtype=m.float64, requires_grad=True)
        row = m.tensor([1.0, 2.0], dtype=m.float64, requires_grad=True)
        a = m.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=m.float64, requires_grad=True)
        out = m.addmm(M, a, a, beta=0) + m.addmm(row, a, a, beta=0, alpha=2)
        out.sum().backward()
        results.append([out.detach().numpy(), M.grad.numpy(), row.grad.numpy(), a.grad.numpy()])
    for got, expected in zip(*results):
        _same(got, expected)


@pytest.mark.parametrize(
    "change",
    [
        lambda c, b: c.t().mul_(b.t()),
        lambda c, b: c.t().exp_(),
        lambda c, b: c.t().add_(b.t() * 3.0),
        lambda c, b: c.t().mul_(2.0),
    ],
    ids=["mul_-transposed", "exp_", "add_", "mul_-scalar"],
)
def test_in_place_change_of_a_large_transpose_differentiates_as_pytorch(change):
    """An in-place op on ``c.t()`` of 4,096 elements or more (where elementwise ops read a
    transpose through its source) saved the source's storage and then overwrote it: the
    backward raised "modified by an inplace operation", where PyTorch runs."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    a0, b0 = rng.uniform(-1, 1, (64, 80)), rng.uniform(-1, 1, (64, 80))
    outcomes = []
    for m in (tg, torch):
        a = m.tensor(a0, requires_grad=True)
        b = m.tensor(b0, requires_grad=True)
        c = a * 1.5
        change(c, b)
        (c * c).sum().backward()
        outcomes.append((a.grad.numpy(), None if b.grad is None else b.grad.numpy()))
    (ga, gb), (ta, tb) = outcomes
    np.testing.assert_allclose(ga, ta, rtol=1e-12)
    assert (gb is None) == (tb is None)
    if tb is not None:
        np.testing.assert_allclose(gb, tb, rtol=1e-12)


@pytest.mark.parametrize("weight", [[1.0, 2.0], [[1.0, 2.0, 3.0]], [1.0, 2.0, 3.0, 4.0]], ids=["short", "2-D", "long"])
@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_a_class_weight_of_another_length_raises_as_in_pytorch(loss, weight):
    """A ``weight`` of another length than the classes gave a loss (read past the end or
    wrapped round), where PyTorch raises."""
    torch = pytest.importorskip("torch")
    raised = []
    for m in (tg, torch):
        x = m.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], requires_grad=True)
        raised.append(_raised(getattr(m.nn.functional, loss), x, m.tensor([1, 0]), m.tensor(weight)))
    assert raised[0] == raised[1]


def test_instance_norm_with_momentum_none_keeps_its_running_statistics():
    """PyTorch's instance norm passes momentum None as 0.0: the running statistics stay as
    they start. tapegrad raised TypeError."""
    torch = pytest.importorskip("torch")
    x0 = np.random.default_rng(0).standard_normal((4, 3, 5))
    results = []
    for m in (tg, torch):
        norm = m.nn.InstanceNorm1d(3, track_running_stats=True, momentum=None).double()
        x = m.tensor(x0, requires_grad=True)
        trained = norm(x) + norm(x * 2)
        norm.eval()
        evaluated = norm(x)
        (trained.sum() + (evaluated * evaluated).sum()).backward()
        results.append(
            [norm.running_mean.numpy(), norm.running_var.numpy(), evaluated.detach().numpy(), x.grad.numpy()]
        )
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_of_mixed_dtypes_in_the_promoted_dtype(norm_type):
    """The norm of float32 and float64 gradients together is float64, as PyTorch stacks the
    norms; tapegrad took the first gradient's dtype, rounding the float64 gradients' factor."""
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        a = m.tensor([1.0, -2.0, 3.0], dtype=m.float32, requires_grad=True)
        b = m.tensor([4.0, -5.0], dtype=m.float64, requires_grad=True)
        a.grad = m.tensor([3.0, -6.0, 9.0], dtype=m.float32)
        b.grad = m.tensor([12.0, -15.0], dtype=m.float64)
        norm = m.nn.utils.clip_grad_norm_([a, b], 1.0, norm_type=norm_type)
        results.append((str(norm.dtype).split(".")[-1], norm.item(), a.grad.numpy().copy(), b.grad.numpy().copy()))
    (dtype, norm, ga, gb), (tdtype, tnorm, ta, tb) = results
    assert dtype == tdtype
    assert norm == tnorm
    np.testing.assert_array_equal(ga, ta)
    np.testing.assert_array_equal(gb, tb)


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.full((2,), m.tensor(3)),
        lambda m: m.full((2,), np.int32(3)),
        lambda m: m.full((2,), m.tensor(True)),
        lambda m: m.full((2,), m.tensor(2.5, dtype=m.float64)),
        lambda m: m.tensor([m.tensor(0.1, dtype=m.float64), 1.0]),
        lambda m: m.tensor([m.tensor(1, dtype=m.int32)]),
        lambda m: m.tensor([m.tensor(1, dtype=m.int32), 2]),
        lambda m: m.tensor([1.0, m.tensor(0.1, dtype=m.float64)]),
        lambda m: m.tensor([np.array([1, 2], dtype=np.int32)]),
        lambda m: m.tensor([0.5, 2.0]) * np.bool_(True),
        lambda m: m.tensor([0.5, 2.0]) + np.bool_(True),
    ],
)
def test_created_tensors_take_pytorchs_dtype_and_type(make):
    """``full`` of an integer tensor or numpy integer is int64, and a list holding tensors
    promotes their dtypes, as PyTorch infers them; a float64 0-d tensor in a list lost its
    precision to float32. ``tensor * np.bool_`` gave a numpy array."""
    torch = pytest.importorskip("torch")
    ours, theirs = make(tg), make(torch)
    assert type(ours).__name__ == type(theirs).__name__ == "Tensor"
    assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
