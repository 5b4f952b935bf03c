"""Values PyTorch gives at the edges of ops made of table ops, or summed in another precision:
``atan2`` at signed zeros and infinities, ``unique`` of NaNs, float32 ``cumsum``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import tapegrad as tg

F = tg.nn.functional


def test_atan2_at_signed_zeros_and_infinities():
    y = tg.tensor([math.inf, 0.0, -0.0, -0.0, -math.inf, 1.0, -1.0], dtype=tg.float64)
    x = tg.tensor([math.inf, -0.0, -1.0, 0.0, -math.inf, -math.inf, 0.0], dtype=tg.float64)
    got = tg.atan2(y, x).numpy()
    expected = np.arctan2(y.numpy(), x.numpy())  # C's atan2, as PyTorch's
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def test_atan2_gradient_at_the_origin_is_zero():
    a = tg.zeros(1, dtype=tg.float64, requires_grad=True)
    b = tg.zeros(1, dtype=tg.float64, requires_grad=True)
    tg.atan2(a, b).sum().backward()
    assert a.grad.tolist() == [0.0] and b.grad.tolist() == [0.0]


def test_unique_keeps_each_nan():
    values = tg.tensor([1.0, math.nan, math.nan]).unique()
    assert values.numel() == 3 and np.isnan(values.numpy()[1:]).all()


def test_float32_cumsum_sums_in_float64():
    data = np.random.default_rng(0).standard_normal(10_000).astype(np.float32)
    exact = np.cumsum(data.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(tg.tensor(data).cumsum(0).numpy(), exact)
    x = tg.tensor(data, requires_grad=True)
    tape = tg.record(lambda x: (x.cumsum(0) * x).sum(), data)
    value, (grad,) = tape.value_and_grad(data)
    eager = (x.cumsum(0) * x).sum()
    eager.backward()
    assert value.item() == eager.item()
    np.testing.assert_array_equal(grad.numpy(), x.grad.numpy())


def test_float32_cumsum_matches_pytorch():
    torch = pytest.importorskip("torch")
    data = np.random.default_rng(1).standard_normal((3, 5000)).astype(np.float32)
    np.testing.assert_array_equal(tg.tensor(data).cumsum(1).numpy(), torch.tensor(data).cumsum(1).numpy())


@pytest.mark.parametrize("create_graph", [False, True])
def test_max_sends_an_infinite_gradient_to_the_extreme_alone(create_graph):
    """sqrt's gradient at 0 is inf: the elements max did not pick take 0, not inf * 0 = NaN."""
    x = tg.tensor([0.0, -1.0, -2.0], dtype=tg.float64, requires_grad=True)
    (grad,) = tg.autograd.grad(x.max().sqrt(), x, create_graph=create_graph)
    assert grad.tolist() == [math.inf, 0.0, 0.0]
    y = tg.tensor([[0.0, -1.0], [-3.0, 0.0]], dtype=tg.float64, requires_grad=True)
    (grad,) = tg.autograd.grad(y.max(1)[0].log().sum(), y, create_graph=create_graph)
    assert grad.tolist() == [[math.inf, 0.0], [0.0, math.inf]]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_linspace_has_pytorch_s_values(dtype):
    """Computed as PyTorch's kernel computes it: the step in the dtype, the first half from the
    start and the second from the end, one rounding each (linspace(-10, 10, 7)'s middle value is
    2.4e-07 in float32, not 0: printed, the two differ)."""
    middle = tg.linspace(-10, 10, 7).numpy()[3]
    assert middle == np.float32(10.0 - np.float64(np.float32(20) / np.float32(6)) * 3) == np.float32(2.3841858e-07)
    torch = pytest.importorskip("torch")
    for start, end, steps in [(-10, 10, 7), (0, 1, 11), (-1, 1, 101), (0.1, 7.3, 33), (3, -2, 9), (5, 5, 1), (0, 1, 0)]:
        ours = tg.linspace(start, end, steps, dtype=getattr(tg, dtype)).numpy()
        theirs = torch.linspace(start, end, steps, dtype=getattr(torch, dtype)).numpy()
        np.testing.assert_array_equal(ours, theirs)


def test_arange_of_floats_is_fused():
    """start + step * i with one rounding, as PyTorch's kernel (numpy's gave -3.55e-14 here)."""
    assert tg.arange(-10, 1, 0.1)[100].item() == pytest.approx(5.551115123125783e-16, rel=1e-12)
    assert tg.arange(-10, 1, 0.1).shape == (110,)


def test_median_shares_ties_and_propagates_nan():
    y = tg.tensor([1.0, 2.0, 2.0, 3.0], requires_grad=True)
    middle = y.median()  # the lower median, 2, held twice: PyTorch shares the gradient
    middle.backward()
    assert middle.item() == 2.0 and y.grad.tolist() == [0.0, 0.5, 0.5, 0.0]
    x = tg.tensor([[3.0, 1.0, 2.0, 5.0], [4.0, math.nan, 0.0, 1.0]])
    values, indices = x.median(1)
    assert values.tolist()[0] == 2.0 and math.isnan(values.tolist()[1]) and indices.tolist() == [2, 1]
    assert x.kthvalue(2, 1).indices.tolist() == [2, 3]
    with pytest.raises(
        RuntimeError, match="kthvalue\\(\\): selected number k out of range"
    ):  # (PyTorch 2.13: not IndexError)
        x.kthvalue(5, 1)


def test_round_to_decimals_as_pytorch_s_kernel():
    assert tg.tensor([1234.5, 1250.0]).round(decimals=-2).tolist() == [1200.0, 1200.0]  # half to even
    assert tg.tensor([1.2345, -2.5, 2.5]).round(decimals=2).tolist() == [
        np.float32(np.rint(np.float32(1.2345) * np.float32(100)) / np.float32(100)),
        -2.5,
        2.5,
    ]


def test_float32_standard_deviation_accumulates_in_float64():
    # Squares of 3e38 overflow float32; PyTorch accumulates in float64 and its std is finite.
    x = tg.tensor([3e38, -3e38, 1e38])
    assert np.isfinite(x.std().item())
    np.testing.assert_allclose(x.std().item(), np.std(np.array([3e38, -3e38, 1e38]), ddof=1), rtol=1e-6)
    assert x.var().item() == np.inf
    torch = pytest.importorskip("torch")
    assert x.std().item() == torch.tensor([3e38, -3e38, 1e38]).std().item()


def _xlogy_grid(m):
    values = [0.0, 1.0, -1.0, 2.0, math.inf, math.nan, -0.0]
    X, Y = np.meshgrid(values, values)  # noqa: N806
    x = m.tensor(X.ravel(), dtype=m.float64, requires_grad=True)
    y = m.tensor(Y.ravel(), dtype=m.float64, requires_grad=True)
    out = m.xlogy(x, y)
    out.sum().backward()
    return X.ravel(), Y.ravel(), out.detach().numpy(), x.grad.numpy(), y.grad.numpy()


def test_xlogy_gradient_in_x_is_log_y_at_x_zero():
    # PyTorch masks d/dx = log(y) only where x == 0 and y <= 0; a mask of x == 0 gave 0 at
    # y = 2 and NaN at y <= 0.
    x = tg.tensor([0.0, 0.0, 1.0, 0.0], dtype=tg.float64, requires_grad=True)
    y = tg.tensor([0.0, 2.0, 2.0, -1.0], dtype=tg.float64, requires_grad=True)
    tg.xlogy(x, y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, math.log(2), math.log(2), 0.0])
    torch = pytest.importorskip("torch")
    X, Y, *ours = _xlogy_grid(tg)  # noqa: N806
    _, _, *theirs = _xlogy_grid(torch)
    # (PyTorch's d/dx at x = 0, y = inf is inf, ours 0: the product 0 * inf is masked there)
    keep = ~((X == 0) & (Y == math.inf))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a[keep], b[keep])  # (signed zeros compare equal)


def _whole_reductions_kept(m):
    x = m.ones(2, 3)
    return [
        m.all(x, keepdim=True),
        m.any(x, dim=None, keepdim=True),
        m.nansum(x, keepdim=True),
        m.nanmean(x, keepdim=True),
        *m.var_mean(x, dim=None, keepdim=True),
        *m.aminmax(x, keepdim=True),
    ]


def test_reductions_over_every_dim_keep_them_as_one():
    # keepdim without dim gave 0-d results, where PyTorch keeps (1, 1)
    assert all(t.shape == (1, 1) for t in _whole_reductions_kept(tg))


def _integer_factors(m):
    x = m.tensor([0.5, 1.0])
    a = m.tensor([200, 16], dtype=m.uint8)
    return [m.addcmul(x, a, a), x.clone().addcmul_(a, a), m.addcmul(m.tensor([1, 2], dtype=m.int32), a, a, value=2)]


def test_addcmul_multiplies_integer_factors_in_the_promoted_dtype():
    # uint8 factors were multiplied as uint8: 200 * 200 wrapped to 64
    ours = _integer_factors(tg)
    assert ours[0].tolist() == [40000.5, 257.0] and ours[2].tolist() == [80001, 514]
    with pytest.raises(RuntimeError, match="Integer division with addcdiv is no longer supported"):
        tg.addcdiv(tg.ones(2), tg.tensor([1, 2]), tg.tensor([3, 3]))
    torch = pytest.importorskip("torch")
    for a, b in zip(ours, _integer_factors(torch)):
        assert a.tolist() == b.tolist() and str(a.dtype).split(".")[1] == str(b.dtype).split(".")[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_replayed_variance_without_degrees_of_freedom_is_eager_s(dtype):
    # The replay divided by N - correction unclamped: -0.0 for an empty extent (eager: NaN)
    cases = [
        (lambda x: x.var(), np.zeros(0, dtype)),
        (lambda x: x.std(dim=0), np.zeros(0, dtype)),
        (lambda x: x.var(dim=-1, keepdim=True), np.zeros(0, dtype)),
        (lambda x: x.var(correction=3), np.array([1.0, 3.0], dtype)),  # inf, as numpy's and PyTorch's
    ]
    for function, x in cases:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            eager = function(tg.tensor(x)).numpy()
            replayed = tg.record(function, x)(x).numpy()
        np.testing.assert_array_equal(replayed, eager)  # (NaN equals NaN here; -0.0 did not)


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_correction_above_the_element_count_leaves_no_degrees_of_freedom(create_graph):
    # N - correction went negative in the gradient: var(correction=3) of two elements was inf
    # with the finite gradient [1, -1], std's 0 (PyTorch's: infinite and NaN; no division left)
    # PyTorch's var gives inf, its std NaN (inf times 0 / inf); the signs of var's infinities
    # are x - mean's here and in PyTorch's gradient along a dim (its whole-tensor one: all +inf)
    for name, check in (("var", np.isinf), ("std", np.isnan)):
        x = tg.tensor([1.0, 2.0, 4.0], dtype=tg.float64, requires_grad=True)
        for correction in (3, 4, 7):
            with pytest.warns(UserWarning, match=rf"^{name}\(\): degrees of freedom is <= 0") as caught:
                y = getattr(x, name)(correction=correction)
            assert caught[0].filename == __file__  # the user's line, not numpy's
            (g,) = tg.autograd.grad(y, x, create_graph=create_graph)
            assert math.isinf(y.item()) and check(g.detach().numpy()).all()


def test_replayed_gradient_without_degrees_of_freedom_is_eager_s():
    x = np.array([1.0, 2.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tape = tg.record(lambda t: t.var(correction=5), x)
        eager = tg.tensor(x, requires_grad=True)
        eager.var(correction=5).backward()
    np.testing.assert_array_equal(tape.value_and_grad(x * 2)[1][0] / 2, eager.grad.numpy())


def test_softmax_of_a_zero_dim_nan_or_infinity_is_nan():
    for value in (math.nan, math.inf):
        x = tg.tensor(value, requires_grad=True)
        y = tg.softmax(x, dim=0)
        y.backward()
        assert math.isnan(y.item()) and math.isnan(x.grad.item())
        assert math.isnan(tg.log_softmax(tg.tensor(value), dim=0).item())
    assert tg.softmax(tg.tensor(2.0), dim=0).item() == 1.0


def test_reductions_over_dimension_tuples_of_an_empty_tensor():
    # reshape(..., -1) of the merged dimensions was ambiguous where a kept one is empty: it raised
    z = tg.zeros(2, 0, 3)
    for reduce in (tg.amax, tg.amin, tg.logsumexp, tg.std, tg.var, tg.norm, tg.sum):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert tuple(reduce(z, dim=(0, -1)).shape) == (0,)
            assert tuple(reduce(z, dim=(0, 2), keepdim=True).shape) == (1, 0, 1)


def test_integer_addcmul_and_fills_as_pytorch():
    out = tg.addcmul(tg.zeros(2, dtype=tg.int64), tg.tensor([1, 2]), tg.tensor([3, 4]), value=2.5)
    assert out.dtype == tg.int64 and out.tolist() == [6, 16]  # value's integer part (was float32 [7.5, 20])
    assert tg.full((2,), -1, dtype=tg.uint8).tolist() == [255, 255]  # a negative int wraps
    for value, dtype in ((-256, tg.uint8), (-1.5, tg.uint8), (1e300, tg.float32)):
        with pytest.raises(RuntimeError, match="without overflow"):
            tg.full((1,), value, dtype=dtype)
    assert tg.arange(-2.5, 3, 1.5, dtype=tg.int64).tolist() == [-2, -1, 0, 1, 2]  # int64 truncates first
    assert tg.arange(-2.5, 3, 1.5, dtype=tg.int32).tolist() == [-2, -1, 0, 1]


# Each activation and loss term here at the values where its branches meet or its formula leaves
# its domain: PyTorch's value and gradient (tapegrad gave NaN or finite gradients where PyTorch's
# are otherwise: hardswish's, smooth_l1's and huber's at the infinities, logit's at 0, 1 and
# outside [0, 1], kl_div's at a target of 0 or below). Each value sits in a tensor of 64, as
# PyTorch's vectorized loops see nearly every element: its scalar loop, which runs a tensor's
# last few elements, differs from them at NaN (hardtanh, softshrink, elu and hardswish give 1
# there, their vector loops 0, 0, NaN and NaN; tapegrad follows the vector loops).
SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 0.5, 1.05, -0.5, 20.0, -20.0]
EDGE_FUNCTIONS = {
    "hardtanh": lambda m, x: m.nn.functional.hardtanh(x),
    "relu6": lambda m, x: m.nn.functional.relu6(x),
    "hardsigmoid": lambda m, x: m.nn.functional.hardsigmoid(x),
    "hardswish": lambda m, x: m.nn.functional.hardswish(x),
    "softshrink": lambda m, x: m.nn.functional.softshrink(x),
    "hardshrink": lambda m, x: m.nn.functional.hardshrink(x),
    "elu": lambda m, x: m.nn.functional.elu(x),
    "selu": lambda m, x: m.nn.functional.selu(x),
    "celu": lambda m, x: m.nn.functional.celu(x, 0.5),
    "logit": lambda m, x: m.logit(x),
    "logit_eps": lambda m, x: m.logit(x, eps=0.1),
    "logit_empty_range": lambda m, x: m.logit(x, eps=0.6),  # lo above hi: PyTorch's select order
    "kl_div_target": lambda m, x: m.nn.functional.kl_div(m.full_like(x, -0.7), x, reduction="none"),
    # losses with a branch: the other branch's gradient at the infinities (inf * 0 was NaN)
    "smooth_l1_loss": lambda m, x: m.nn.functional.smooth_l1_loss(x, m.full_like(x, 0.5), reduction="none"),
    "huber_loss": lambda m, x: m.nn.functional.huber_loss(x, m.full_like(x, 0.5), reduction="none", delta=2.0),
    "gaussian_nll_loss_var": lambda m, x: m.nn.functional.gaussian_nll_loss(
        m.full_like(x, 0.5), m.full_like(x, 0.1), x.abs(), reduction="none"
    ),
}


def _edge_result(module, function, value):
    data = np.full(64, 0.25)
    data[0] = value
    x = module.tensor(data, dtype=module.float64, requires_grad=True)
    out = function(module, x)
    (grad,) = module.autograd.grad(out.sum(), x)
    return np.array(out.tolist()), np.array(grad.tolist())


@pytest.mark.parametrize("name", EDGE_FUNCTIONS)
def test_activations_at_their_edges_match_pytorch(name):
    torch = pytest.importorskip("torch")
    function = EDGE_FUNCTIONS[name]
    for value in SPECIAL:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours, theirs = _edge_result(tg, function, value), _edge_result(torch, function, value)
        for got, expected, what in zip(ours, theirs, ("value", "gradient")):
            if name == "hardsigmoid" and what == "gradient":  # PyTorch's 1/6 is a float32 constant
                expected = np.where(expected == np.float32(1 / 6), 1 / 6, expected)
            # (to rounding: hardswish's middle gradient is (x + 3) / 6 + x / 6 here, x / 3 + 0.5 there)
            np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0, err_msg=f"{name} at {value}: {what}")


def test_activation_gradients_at_nan_and_the_infinities():
    x = tg.tensor([math.nan, math.inf, -math.inf], dtype=tg.float64, requires_grad=True)
    for function, expected in [
        (F.hardtanh, [0.0, 0.0, 0.0]),
        (F.softshrink, [0.0, 1.0, 1.0]),
        (F.elu, [math.nan, 1.0, 0.0]),
        (F.hardswish, [math.nan, 1.0, 0.0]),  # (NaN at both infinities before)
        (F.hardsigmoid, [0.0, 0.0, 0.0]),
    ]:
        (grad,) = tg.autograd.grad(function(x).sum(), x)
        np.testing.assert_array_equal(grad.numpy(), expected, err_msg=function.__name__)


def test_logit_gradient_is_infinite_at_the_ends_and_nan_outside():
    x = tg.tensor([0.0, 1.0, 0.5, -0.5, 1.05, math.inf], dtype=tg.float64, requires_grad=True)
    tg.logit(x).sum().backward()
    assert x.grad[:3].tolist() == [math.inf, math.inf, 4.0]
    assert np.isnan(x.grad[3:].numpy()).all()
    data = np.array([0.0, 0.25, 2.0])  # replayed the same
    _, (grad,) = tg.record(lambda x: tg.logit(x).sum(), data).value_and_grad(data)
    assert grad[:2].tolist() == [math.inf, 1 / (0.25 * 0.75)] and math.isnan(grad[2].item())


def test_logit_with_eps_selects_as_pytorch_s_kernel():
    """``x < lo ? lo : (x > hi ? hi : x)``: with eps above 0.5 (an empty range) a value below lo
    takes lo, the others hi (a clamp gave hi to all), and every gradient is 0."""
    x = tg.tensor([0.0, 0.5, 0.6, 1.0, math.nan], dtype=tg.float64, requires_grad=True)
    values = tg.logit(x, 0.6)
    low, high = math.log(0.6 / 0.4), math.log(0.4 / 0.6)
    assert values[:4].tolist() == pytest.approx([low, low, high, high], rel=1e-15)
    assert math.isnan(values[4].item())
    values.sum().backward()
    assert x.grad.tolist() == [0.0] * 5


def test_kl_div_of_a_negative_or_zero_target_is_pytorchs_xlogy():
    log_p = tg.tensor([-1.0, -0.5, -2.0], dtype=tg.float64)
    target = tg.tensor([-0.5, 0.0, 0.5], dtype=tg.float64, requires_grad=True)
    loss = F.kl_div(log_p, target, reduction="none")
    assert math.isnan(loss[0].item()) and loss[1].item() == 0.0
    loss.sum().backward()
    assert math.isnan(target.grad[1].item())  # 0 / 0 in xlogy's gradient in its second argument
    assert target.grad[2].item() == pytest.approx(math.log(0.5) + 1 + 2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logit_replays_to_eagers_bits(dtype):
    # (its eager forward runs the replay's loop from 17 elements: numpy's log differed by an ulp)
    data = np.random.default_rng(4).uniform(0.01, 0.99, 1000).astype(dtype)
    tape = tg.record(lambda q: q.logit(), data)
    np.testing.assert_array_equal(tape(data).numpy(), tg.tensor(data).logit().numpy())


def test_logaddexp_of_a_bool_tensor_is_in_the_float_dtype():
    # (PyTorch computes it in the promoted dtype; the difference of the two raised on a bool)
    x = tg.tensor([1.0, 3.0], dtype=tg.float32, requires_grad=True)
    out = tg.logaddexp(x, tg.tensor([True, False]))
    assert out.dtype == tg.float32
    np.testing.assert_allclose(out.detach().numpy(), np.logaddexp([1.0, 3.0], [1.0, 0.0]), rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 1 / (1 + np.exp(-3.0))], rtol=1e-6)


def _norm_of_order_zero(m) -> list:
    x = m.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]], requires_grad=True)
    y = x.norm(p=0)
    y.backward()
    out = [y.item(), x.grad, y.grad_fn is not None]
    x.grad = None
    (m.linalg.vector_norm(x * 2, ord=0, dim=1).sum() + x.sum()).backward()
    out.append(x.grad.tolist())
    try:
        m.autograd.grad(x.norm(p=0), x)
    except RuntimeError as error:
        out.append(str(error))
    (g,) = m.autograd.grad((x * x).sum(), x, create_graph=True)
    out.append(m.autograd.grad(g.norm(p=0), x, allow_unused=True))
    w = m.tensor([1.0, 0.0], requires_grad=True)
    optimizer = m.optim.SGD([w], lr=0.1, weight_decay=0.5)
    w.norm(p=0).backward()
    optimizer.step()
    out.append((w.tolist(), w.grad))
    return out


def test_a_norm_of_order_zero_gives_no_gradient_as_pytorch():
    """The count of nonzeros gave a zero gradient, where PyTorch's backward gives none: the
    input's .grad stays None, autograd.grad calls it unused, and weight decay then leaves the
    parameter alone (a zero gradient decayed it)."""
    ours = _norm_of_order_zero(tg)
    assert ours[:3] == [3.0, None, True] and ours[3] == [[1.0] * 3] * 2
    assert ours[4].startswith("The differentiated Tensor at index 0 appears to not have been used in the graph")
    assert ours[5] == (None,) and ours[6] == ([1.0, 0.0], None)
    torch = pytest.importorskip("torch")
    assert ours == _norm_of_order_zero(torch)
