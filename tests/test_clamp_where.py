"""clamp with tensor bounds and where's type promotion and errors, against PyTorch and against
the values PyTorch gives (so they run without it too): a tie at a tensor bound sends the whole
gradient to the input (not half, as maximum/minimum would), a Python number takes part in
where's promotion as ``torch.result_type`` says, and operands that do not broadcast raise
PyTorch's ``RuntimeError``. The rules hold inside ``tapegrad.record`` too: a replay at new
inputs recomputes the conditions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tapegrad as tg

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _grads(module, function, *arrays, dtype="float32"):
    """The value of ``function(module, *tensors)`` and each input's gradient, as numpy arrays; the
    output is weighted by 1, 2, ... so that every element's gradient is told apart."""
    tensors = [module.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
    out = function(module, *tensors)
    weights = np.arange(1.0, out.numel() + 1.0).reshape(tuple(out.shape)).astype(dtype)
    (out * module.tensor(weights)).sum().backward()
    grads = [np.zeros(np.shape(a)) if t.grad is None else t.grad.numpy() for a, t in zip(arrays, tensors)]
    return out.detach().numpy(), grads


# -- clamp with tensor bounds: exact values ----------------------------------------------


@pytest.mark.parametrize(
    "function",
    [
        lambda x, b: x.clamp(min=b),
        lambda x, b: tg.clamp(x, b),
        lambda x, b: tg.clip(x, min=b),
        lambda x, b: x.clamp_min(b),
        lambda x, b: x.clip(b),
        lambda x, b: (x * 1.0).clamp_(min=b),
    ],
    ids=["clamp", "tg.clamp", "tg.clip", "clamp_min", "clip", "clamp_"],
)
def test_a_tie_at_a_tensor_min_sends_the_gradient_to_the_input(function):
    x = tg.tensor([0.0, -1.0, 1.0], requires_grad=True)
    low = tg.tensor([0.0, -1.0, 2.0], requires_grad=True)
    y = function(x, low)
    y.sum().backward()
    assert y.tolist() == [0.0, -1.0, 2.0]
    assert x.grad.tolist() == [1.0, 1.0, 0.0]
    assert low.grad.tolist() == [0.0, 0.0, 1.0]


def test_a_tie_at_a_tensor_max_sends_the_gradient_to_the_input():
    x = tg.tensor([0.0, -1.0, 1.0], requires_grad=True)
    high = tg.tensor([0.0, -1.0, 0.5], requires_grad=True)
    y = x.clamp(max=high)
    y.sum().backward()
    assert y.tolist() == [0.0, -1.0, 0.5]
    assert x.grad.tolist() == [1.0, 1.0, 0.0]
    assert high.grad.tolist() == [0.0, 0.0, 1.0]
    assert y.grad_fn.name() == "ClampBackward0"


# (x, low, high) -> (value, x's gradient, low's, high's), as PyTorch 2.13 gives them.
BOTH_BOUNDS = [
    ((0.0, 0.0, 1.0), (0.0, 1, 0, 0)),  # a tie at low: x's
    ((1.0, 0.0, 1.0), (1.0, 1, 0, 0)),  # a tie at high: x's
    ((1.0, 1.0, 1.0), (1.0, 1, 0, 0)),  # both
    ((-1.0, 0.0, 1.0), (0.0, 0, 1, 0)),
    ((2.0, 0.0, 1.0), (1.0, 0, 0, 1)),
    ((0.5, 1.0, 0.0), (0.0, 0, 0, 1)),  # an empty range is high everywhere
    ((-1.0, 1.0, 0.0), (0.0, 0, 0, 1)),
    ((-1.0, 0.0, 0.0), (0.0, 0, 0, 0)),  # below low == high: nobody's
    ((NAN, 0.0, 1.0), (NAN, 0, 0, 0)),
    ((NAN, 1.0, 0.0), (NAN, 0, 0, 1)),  # empty range: high's, though the value is NaN
    ((1.0, NAN, 0.0), (NAN, 0, 0, 1)),  # x > high: high's, though the value is NaN
    ((0.0, NAN, 1.0), (NAN, 0, 0, 0)),
    ((0.5, 0.0, NAN), (NAN, 0, 0, 0)),
    ((INF, 0.0, INF), (INF, 1, 0, 0)),
    ((0.0, -INF, -INF), (-INF, 0, 0, 1)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clamp_with_both_tensor_bounds_gives_each_its_gradient(dtype):
    x, low, high = (np.array(column, dtype) for column in zip(*(case for case, _ in BOTH_BOUNDS)))
    value, grads = _grads(tg, lambda m, x, low, high: m.clamp(x, low, high), x, low, high, dtype=dtype)
    weights = np.arange(1.0, len(x) + 1.0)
    expected = np.array([result for _, result in BOTH_BOUNDS], np.float64)
    np.testing.assert_array_equal(value, expected[:, 0].astype(dtype))
    assert value.dtype == np.dtype(dtype)
    for k, grad in enumerate(grads):
        np.testing.assert_array_equal(grad, expected[:, k + 1] * weights)


def test_a_broadcast_bound_gets_the_sum_of_its_gradients():
    x = tg.tensor([0.0, 1.0, 2.0], requires_grad=True)
    low = tg.tensor([[1.0], [0.0]], requires_grad=True)
    y = x.clamp(min=low)
    assert y.shape == (2, 3)
    y.sum().backward()
    assert y.tolist() == [[1.0, 1.0, 2.0], [0.0, 1.0, 2.0]]
    assert x.grad.tolist() == [1.0, 2.0, 2.0]
    assert low.grad.tolist() == [[1.0], [0.0]]


def test_clamp_with_a_tensor_bound_promotes_as_pytorch():
    i = tg.tensor([1, -2, 3])
    assert tg.clamp(i, min=tg.tensor([0.5, 0.5, 0.5])).tolist() == [1.0, 0.5, 3.0]
    assert tg.clamp(i, min=tg.tensor([0.5, 0.5, 0.5])).dtype == tg.float32
    assert tg.clamp(i, min=tg.tensor([0, 0, 0], dtype=tg.int32)).dtype == tg.int64
    assert tg.clamp(tg.ones(2), min=tg.zeros(2, dtype=tg.float64)).dtype == tg.float64
    assert tg.clamp(tg.ones(2), min=tg.tensor(0.0, dtype=tg.float64)).dtype == tg.float32
    assert tg.clamp(i, tg.tensor([0, 0, 0]), 2.5).tolist() == [1.0, 0.0, 2.5]


def test_clamp_with_bounds_that_do_not_broadcast_raises_pytorchs_error():
    with pytest.raises(RuntimeError, match=r"tensor a \(3\) must match the size of tensor b \(2\) at non-singleton"):
        tg.clamp(tg.zeros(3), min=tg.zeros(2))
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the broadcast shape \[2, 3\]"):
        tg.zeros(3).clamp_(min=tg.zeros(2, 1))


# -- clamp against PyTorch ---------------------------------------------------------------

EDGE_VALUES = [-1.0, 0.0, 1.0, NAN, INF, -INF]
TRIPLES = np.array(list(itertools.product(EDGE_VALUES, repeat=3)))


@pytest.mark.parametrize("bounds", ["min", "max", "both"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_clamp_with_tensor_bounds_matches_pytorch_at_ties_nan_and_inf(torch, bounds, dtype):
    def clamp(m, x, low, high):
        return m.clamp(x, min=None if bounds == "max" else low, max=None if bounds == "min" else high)

    expected = _grads(torch, clamp, *TRIPLES.T, dtype=dtype)
    got = _grads(tg, clamp, *TRIPLES.T, dtype=dtype)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[0].dtype == expected[0].dtype
    for mine, theirs in zip(got[1], expected[1]):
        np.testing.assert_array_equal(mine, theirs)


def test_clamp_with_tensor_bounds_promotes_and_broadcasts_as_pytorch(torch):
    cases = [
        lambda m: m.clamp(m.tensor([1, -2, 3]), min=m.tensor([0.5, 0.5, 0.5])),
        lambda m: m.clamp(m.tensor([1.0, -2.0]), max=m.tensor([0, 1])),
        lambda m: m.clamp(m.tensor([1, -2, 3], dtype=m.int32), m.tensor([0, 0, 0]), m.tensor(2)),
        lambda m: m.clamp(m.tensor([0.5, 2.0]), m.tensor(0.0, dtype=m.float64), m.tensor([1.0, 1.0])),
        lambda m: m.clamp(m.tensor([0.5, 2.0], dtype=m.float64), min=m.tensor([[1.0], [0.0]])),
        lambda m: m.clamp(m.tensor([True, False]), min=m.tensor([True, True])),
        lambda m: m.tensor([1.0, 5.0]).clamp_(min=m.tensor([2.0, 2.0], dtype=m.float64)),
    ]
    for case in cases:
        expected, got = case(torch), case(tg)
        assert str(got.dtype).split(".")[1] == str(expected.dtype).split(".")[1]
        assert got.tolist() == expected.tolist()


# -- where's type promotion ----------------------------------------------------------------


def test_where_promotes_a_float_number_with_an_integer_tensor():
    i = tg.tensor([1, -2])
    result = tg.where(i > 0, i, 0.5)
    assert result.dtype == tg.float32
    assert result.tolist() == [1.0, 0.5]


@pytest.mark.parametrize(
    ("a", "b", "dtype", "values"),
    [
        (tg.tensor([True, False]), 2, tg.int64, [1, 2]),
        (tg.tensor([True, False]), 0.5, tg.float32, [1.0, 0.5]),
        (tg.tensor([True, False]), False, tg.bool, [True, False]),
        (tg.tensor([1, 0], dtype=tg.int32), 2, tg.int32, [1, 2]),
        (tg.tensor([1, 0], dtype=tg.int32), 0.5, tg.float32, [1.0, 0.5]),
        (tg.tensor([1, 0], dtype=tg.uint8), -3, tg.uint8, [1, 253]),  # wraps, as in PyTorch
        (tg.tensor([1.0, 0.0], dtype=tg.float64), 0.5, tg.float64, [1.0, 0.5]),
        (tg.tensor([1, 0]), tg.tensor(0.5, dtype=tg.float64), tg.float64, [1.0, 0.5]),
        (tg.tensor([1.0, 0.0]), tg.tensor(0.5, dtype=tg.float64), tg.float32, [1.0, 0.5]),
        (tg.tensor([1, 0], dtype=tg.int32), tg.tensor(7), tg.int32, [1, 7]),
        (2, 0.5, tg.float32, [2.0, 0.5]),
        (2, True, tg.int64, [2, 1]),
        (True, False, tg.bool, [True, False]),
    ],
)
def test_where_promotes_as_torch_result_type(a, b, dtype, values):
    result = tg.where(tg.tensor([True, False]), a, b)
    assert result.dtype == dtype
    assert result.tolist() == values
    assert tg.where(tg.tensor([False, True]), b, a).dtype == dtype  # the order does not matter


def _operands(module):
    yield True
    yield 2
    yield -3
    yield 0.5
    for name in ("bool", "int32", "int64", "float32", "float64", "uint8"):
        dtype = getattr(module, name)
        yield module.tensor([1, 0], dtype=dtype)
        yield module.tensor(1, dtype=dtype)


def test_where_promotes_as_pytorch_for_every_pair_of_dtypes_and_numbers(torch):
    mine = itertools.product(_operands(tg), _operands(tg))
    theirs = itertools.product(_operands(torch), _operands(torch))
    for (a, b), (c, d) in zip(mine, theirs):
        expected = torch.where(torch.tensor([True, False]), c, d)
        got = tg.where(tg.tensor([True, False]), a, b)
        assert str(got.dtype).split(".")[1] == str(expected.dtype).split(".")[1], (c, d)
        assert got.tolist() == expected.tolist(), (c, d)


def test_gradients_through_a_promoted_where():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.where(tg.tensor([True, False]), tg.tensor([3, 4]), x)  # int64 with float32: float32
    assert y.dtype == tg.float32
    (y * tg.tensor([1.0, 10.0])).sum().backward()
    assert x.grad.tolist() == [0.0, 10.0]
    z = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    w = tg.where(tg.tensor([False, True]), z, 2)
    assert w.dtype == tg.float64 and w.tolist() == [2.0, 2.0]
    w.sum().backward()
    assert z.grad.tolist() == [0.0, 1.0]


def test_masked_fill_and_fill_keep_the_tensors_dtype():
    mask = tg.tensor([True, False])
    assert tg.tensor([1, 2]).masked_fill(mask, 0.5).tolist() == [0, 2]
    assert tg.tensor([True, False]).masked_fill(mask, 2).dtype == tg.bool
    assert tg.tensor([1, 2]).masked_fill_(mask, 0.5).tolist() == [0, 2]
    assert tg.tensor([1, 2]).fill_(0.5).tolist() == [0, 0]


# -- where's broadcasting errors -----------------------------------------------------------

SHAPES = [
    ((3,), (2,), (3,)),
    ((3,), (3,), (2,)),
    ((2,), (3,), (3,)),
    ((2, 3), (3, 2), (1,)),
    ((2, 1), (1, 3), (4,)),
    ((5,), (2, 1), (1, 3)),
    ((3,), (2,), None),
    ((3,), None, (2,)),
]


def test_where_with_shapes_that_do_not_broadcast_raises_runtime_error():
    with pytest.raises(RuntimeError, match=r"^The size of tensor a \(2\) must match the size of tensor b \(3\) at"):
        tg.where(tg.tensor([True, False]), tg.zeros(3), tg.zeros(3))
    with pytest.raises(RuntimeError, match=r"^The size of tensor a \(3\) must match the size of tensor b \(2\) at"):
        tg.where(tg.zeros(2, 3) > 0, tg.zeros(3, 2, requires_grad=True), 0.0)


@pytest.mark.parametrize("shapes", SHAPES)
def test_where_broadcast_errors_match_pytorch(torch, shapes):
    def run(module):
        condition, a, b = (None if shape is None else module.zeros(shape) for shape in shapes)
        with pytest.raises(RuntimeError) as error:
            module.where(condition > 0, 1.0 if a is None else a, 2.0 if b is None else b)
        return str(error.value)

    assert run(tg) == run(torch)


def test_masked_fill_broadcast_errors_match_pytorch(torch):
    for function in (lambda x, mask: x.masked_fill(mask, 1.0), lambda x, mask: x.masked_fill_(mask, 1.0)):
        messages = []
        for module in (torch, tg):
            with pytest.raises(RuntimeError) as error:
                function(module.zeros(2), module.tensor([True, False, True]))
            messages.append(str(error.value))
        assert messages[0] == messages[1]


# -- inside tapegrad.record ----------------------------------------------------------------


def _program(x, low, high):
    both = x.clamp(min=low, max=high)
    lower = tg.clamp(x, min=low)
    upper = x.clip(max=high[:1])  # a broadcast bound
    positive = (x > 0).long()
    half = tg.where(x > 0, positive, 0.5)  # int64 and a float: float32
    two = tg.where(x < 0, x, 2)
    in_place = x * 1.0
    in_place.clamp_(low, high)
    return (both * 1.5 + lower * 2.0 + upper * 3.0 + half * x + two + in_place * 0.25).sum()


def _eager(function, *arrays):
    tensors = [tg.tensor(a, requires_grad=True) for a in arrays]
    value = function(*tensors)
    value.backward()
    return value.item(), [t.grad.numpy() for t in tensors]


def test_a_replay_recomputes_the_clamp_and_where_conditions():
    rng = np.random.default_rng(0)
    tape = tg.record(_program, *(tg.tensor(rng.standard_normal(6).astype(np.float32)) for _ in range(3)))
    for trial in range(4):
        arrays = [rng.integers(-2, 3, 6).astype(np.float32) for _ in range(3)]  # many ties
        if trial == 3:
            arrays[0][0] = arrays[1][1] = arrays[2][2] = np.nan
        value, grads = tape.value_and_grad(*(tg.tensor(a) for a in arrays))
        eager_value, eager_grads = _eager(_program, *arrays)
        np.testing.assert_array_equal(float(value), eager_value)
        for replayed, eager in zip(grads, eager_grads):
            np.testing.assert_array_equal(replayed.numpy(), eager)


def test_a_replay_gives_the_clamp_and_where_values_pytorch_gives():
    def clamped(x, low, high):
        return (x.clamp(low, high) * tg.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum()

    tape = tg.record(clamped, tg.ones(5), tg.zeros(5), tg.ones(5))
    x, low, high = [0.0, 1.0, -1.0, 0.5, 1.0], [0.0, 0.0, 0.0, 1.0, float("nan")], [1.0, 1.0, 0.0, 0.0, 0.0]
    value, grads = tape.value_and_grad(tg.tensor(x), tg.tensor(low), tg.tensor(high))
    assert np.isnan(float(value))
    assert [g.tolist() for g in grads] == [[1.0, 2.0, 0.0, 0.0, 0.0], [0.0] * 5, [0.0, 0.0, 0.0, 4.0, 5.0]]

    def promoted(x):
        return (tg.where(x > 0, (x > 0).long(), 0.5) * x).sum()

    tape = tg.record(promoted, tg.ones(2))
    value, (grad,) = tape.value_and_grad(tg.tensor([2.0, -3.0]))
    assert float(value) == 0.5
    assert grad.tolist() == [1.0, 0.5]
