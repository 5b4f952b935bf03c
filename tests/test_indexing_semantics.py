"""Indexing as PyTorch reads a key: integers are selects applied before any index tensor (so they
never move the broadcast dimensions to the front, as numpy's rule would); ``x[idx] = v`` with a
repeated index sends every value the gradient at its position; gather, index_select and
embedding take no negative index, ``x[index]`` does. Each case is compared with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")

SHAPE = (2, 3, 4)

# Keys written once for both libraries: ``m`` is tapegrad or torch (for its tensors).
KEYS = {
    "int, slice, list": lambda m: (0, slice(None), [1, 2]),
    "int, partial slice, list": lambda m: (1, slice(1, None), [0, 3]),
    "0-d tensor, slice, list": lambda m: (m.tensor(1), slice(None), [0, 1]),
    "None, int, slice, list": lambda m: (None, 0, slice(None), [1, 2]),
    "int, Ellipsis, list": lambda m: (0, Ellipsis, [1, 2]),
    "Ellipsis, list, int": lambda m: (Ellipsis, [0, 1], 0),
    "list, slice, int": lambda m: ([0, 1], slice(None), 0),
    "slice, list, int": lambda m: (slice(None), [0, 2], 1),
    "int, list, slice": lambda m: (0, [0, 2], slice(None)),
    "list, int, slice": lambda m: (m.tensor([[0, 1], [1, 0]]), 1, slice(None)),
    "list, int, list": lambda m: ([0, 1], 2, [1, 3]),
    "int, 0-d tensor, list": lambda m: (0, m.tensor(2), [1, 2]),
    "list, slice, list": lambda m: ([1, 0], slice(None), [2, 3]),
    "broadcast lists apart": lambda m: ([[0], [1]], slice(None), [0, 3]),
    "lists apart around None": lambda m: ([0, 1], None, slice(None), [1, 2]),
    "True, slice, list": lambda m: (True, slice(None), [0, 1]),
    "False, int, slice, list": lambda m: (False, 0, slice(None), [1]),
    "slice, 0-d bool, list": lambda m: (slice(None), m.tensor(True), [0, 1]),
    "int, slice, mask": lambda m: (0, slice(None), m.tensor([True, False, True, False])),
    "mask, slice, list": lambda m: (m.tensor([False, True]), slice(None), [1, 2]),
    "int, 2-d mask": lambda m: (1, m.tensor([[True, False, True, False]] * 3)),
    "int, slice, empty list": lambda m: (1, slice(None), []),
    "True alone": lambda m: True,
    "0-d tensor, slice": lambda m: (m.tensor(1), slice(1, None)),
    # uint8 index tensors are masks (PyTorch warns that they are deprecated), not positions
    "byte mask": lambda m: m.tensor([1, 0], dtype=m.uint8),
    "int, slice, byte mask": lambda m: (0, slice(None), m.tensor([0, 1, 1, 0], dtype=m.uint8)),
    "2-d byte mask": lambda m: m.tensor([[1, 0, 2], [0, 0, 1]], dtype=m.uint8),
    "0-d byte, list": lambda m: (m.tensor(1, dtype=m.uint8), [1, 0]),
    # An Ellipsis of no dimensions leaves the lists next to each other (numpy's rule parted them)
    "slice, list, empty Ellipsis, list": lambda m: (slice(None), [0, 1], Ellipsis, [1, 2]),
    "partial slice, list, empty Ellipsis, list": lambda m: (slice(1, None), [0], Ellipsis, [2, 3]),
    "list, Ellipsis, list": lambda m: ([0, 1], Ellipsis, [1, 2]),
    "None, list, empty Ellipsis, list": lambda m: (None, slice(None), [0, 2], Ellipsis, [3, 1]),
    "empty list": lambda m: [],
    # Tuples and ranges inside a key are index tensors to PyTorch; left among the basic parts,
    # numpy copied and the gradient went to the wrong elements, or past the buffer (a crash).
    "tuple of ints": lambda m: ((0, 1),),
    "range alone": lambda m: range(2),
    "slice, tuple": lambda m: (slice(None), (0, 2)),
    "repeated tuple, slice": lambda m: ((1, 1), slice(None)),
    "Ellipsis, range": lambda m: (Ellipsis, range(1, 3)),
    "None, range": lambda m: (None, range(2)),
    "int, range, tuple": lambda m: (0, range(1, 3), (3, 0)),
    "tuple of bools": lambda m: ((True, False),),
    "list of a range": lambda m: [range(2)],  # a tuple of it (PyTorch's deprecated reading)
    "list of tuples": lambda m: [(0, 1), (1, 2)],
}

# On 4 dimensions an integer after a list leaves the same shape as numpy's reading, other values.
KEYS_4D = {
    "slice, list, slice, int": lambda m: (slice(None), [0, 2], slice(None), 0),
    "int, slice, slice, list": lambda m: (1, slice(None), slice(None), [4, 0, 2]),
    "slice, int, list, slice": lambda m: (slice(None), 0, [1, 3], slice(None)),
    "list, int, slice, list": lambda m: ([1, 0], 2, slice(None), [3, 4]),
}

CASES = [(SHAPE, key) for key in KEYS.values()] + [((2, 3, 4, 5), key) for key in KEYS_4D.values()]
IDS = list(KEYS) + list(KEYS_4D)


pytestmark = [
    pytest.mark.filterwarnings("ignore:indexing with dtype torch.uint8:UserWarning"),
    pytest.mark.filterwarnings("ignore:Using a non-tuple sequence:UserWarning"),
]


def test_a_byte_index_warns_as_pytorch_does():
    x = tg.arange(6.0).reshape(3, 2)
    with pytest.warns(UserWarning, match="indexing with dtype torch.uint8 is now deprecated"):
        picked = x[tg.tensor([1, 0, 1], dtype=tg.uint8)]
    np.testing.assert_array_equal(picked.numpy(), [[0.0, 1.0], [4.0, 5.0]])
    with pytest.warns(UserWarning, match="indexing with dtype torch.uint8"):
        x[np.array([0, 1, 0], np.uint8)] = 7.0
    np.testing.assert_array_equal(x.numpy(), [[0.0, 1.0], [7.0, 7.0], [4.0, 5.0]])


def _pair(shape, seed=0):
    data = np.random.default_rng(seed).standard_normal(shape)
    return tg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)


@pytest.mark.parametrize(("shape", "key"), CASES, ids=IDS)
def test_getitem_values_and_gradients_match_pytorch(shape, key):
    ours, theirs = _pair(shape)
    expected = theirs[key(torch)]
    got = ours[key(tg)]
    assert tuple(got.shape) == tuple(expected.shape)
    np.testing.assert_array_equal(got.detach().numpy(), expected.detach().numpy())
    w = np.random.default_rng(1).standard_normal(tuple(expected.shape))
    (got * tg.tensor(w)).sum().backward()
    (expected * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


@pytest.mark.parametrize(("shape", "key"), CASES, ids=IDS)
def test_getitem_results_have_pytorchs_layout(shape, key):
    # (an index's result is contiguous in PyTorch: ``x[:, [0, 2]].view(-1)`` raised here)
    data = np.random.default_rng(2).standard_normal(shape)
    for requires_grad in (False, True):
        got, expected = tg.tensor(data, requires_grad=requires_grad)[key(tg)], torch.tensor(data)[key(torch)]
        assert got.is_contiguous() == expected.is_contiguous()
        if expected.is_contiguous():
            np.testing.assert_array_equal(got.view(-1).detach().numpy(), expected.view(-1).numpy())


@pytest.mark.parametrize(("shape", "key"), CASES, ids=IDS)
def test_getitem_off_the_tape_matches_pytorch(shape, key):
    data = np.random.default_rng(2).standard_normal(shape)
    expected = torch.tensor(data)[key(torch)]
    np.testing.assert_array_equal(tg.tensor(data)[key(tg)].numpy(), expected.numpy())


@pytest.mark.parametrize(("shape", "key"), CASES, ids=IDS)
def test_setitem_writes_where_pytorch_writes(shape, key):
    base = np.random.default_rng(3).standard_normal(shape)
    written_shape = tuple(torch.tensor(base)[key(torch)].shape)
    value = np.random.default_rng(4).standard_normal(written_shape)
    expected = torch.tensor(base)
    expected[key(torch)] = torch.tensor(value)
    got = tg.tensor(base)
    got[key(tg)] = tg.tensor(value)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


@pytest.mark.parametrize(("shape", "key"), CASES, ids=IDS)
def test_setitem_gradients_reach_the_base_and_the_values_as_in_pytorch(shape, key):
    results = []
    written_shape = tuple(torch.zeros(shape)[key(torch)].shape)
    value = np.random.default_rng(5).standard_normal(written_shape)
    w = np.random.default_rng(6).standard_normal(shape)
    for m in (tg, torch):
        base, _ = _pair(shape, seed=7)
        results.append(_assigned_and_gradients(m, base if m is tg else _, key, value, w))
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)


def _assigned_and_gradients(m, base, key, value, w) -> list:
    """``base`` (requiring grad) with ``value`` written at ``key``, and the gradients of that
    result weighted by ``w`` to ``base`` and to the value."""
    values = m.tensor(value, requires_grad=True)
    changed = base * 1.0
    changed[key(m)] = values
    (changed * m.tensor(w)).sum().backward()
    return [changed.detach().numpy(), base.grad.numpy(), values.grad.numpy()]


def test_the_examples_of_the_report():
    x = tg.arange(24.0).reshape(2, 3, 4)
    assert tuple(x[0, :, [1, 2]].shape) == (3, 2)
    assert x[1, 1:, [0, 3]].tolist() == torch.arange(24.0).reshape(2, 3, 4)[1, 1:, [0, 3]].tolist()
    z = tg.zeros(2, 3, 4)
    z[0, :, [1, 2]] = tg.ones(3, 2)
    expected = torch.zeros(2, 3, 4)
    expected[0, :, [1, 2]] = torch.ones(3, 2)
    np.testing.assert_array_equal(z.numpy(), expected.numpy())


def test_a_0d_integer_tensor_in_a_key_selects_a_view_as_an_int_does():
    for m in (tg, torch):
        x = m.zeros(2, 3)
        x[m.tensor(1), :][0] = 5.0  # a view: the write reaches x
        assert x[1, 0].item() == 5.0
    ours, theirs = _pair((2, 3))
    assert ours[tg.tensor(1), :].grad_fn.name() == theirs[torch.tensor(1), :].grad_fn.name()


# -- a repeated index: every value takes the gradient at its position ------------------------


DUPLICATES = {
    "1-d": (5, lambda m: m.tensor([1, 1, 3]), (3,)),
    "three times": (5, lambda m: m.tensor([4, 0, 4, 4]), (4,)),
    "after a slice": ((2, 3), lambda m: (slice(None), [0, 0]), (2, 2)),
    "after an int, apart": ((2, 3, 4), lambda m: (0, slice(None), [2, 2, 1]), (3, 3)),
    "a broadcast value": (5, lambda m: m.tensor([1, 1, 3]), ()),
    "a mask and a list": ((2, 3), lambda m: (m.tensor([True, True]), [1, 1]), (2,)),
}


@pytest.mark.parametrize(("shape", "key", "value_shape"), DUPLICATES.values(), ids=list(DUPLICATES))
def test_index_put_with_repeated_indices_sends_every_value_its_gradient(shape, key, value_shape):
    value = np.random.default_rng(8).standard_normal(value_shape)
    shape = (shape,) if isinstance(shape, int) else shape
    w = np.random.default_rng(9).standard_normal(shape)
    results = []
    for m in (tg, torch):
        base = m.tensor(np.random.default_rng(10).standard_normal(shape), requires_grad=True)
        results.append(_assigned_and_gradients(m, base, key, value, w))
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)


def test_the_duplicate_example_of_the_report():
    results = []
    for m in (tg, torch):
        y = m.zeros(5)
        v = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y[m.tensor([1, 1, 3])] = v
        (y * m.arange(5.0)).sum().backward()
        results.append(v.grad.tolist())
    assert results[0] == results[1]


def test_second_derivatives_through_a_repeated_index_put_match_pytorch():
    results = []
    for m in (tg, torch):
        v = m.tensor([1.0, 2.0, 3.0], dtype=m.float64, requires_grad=True)
        y = m.zeros(5, dtype=m.float64)
        y[m.tensor([1, 1, 3])] = v * v
        (g,) = m.autograd.grad((y * m.arange(5.0, dtype=m.float64)).sum(), v, create_graph=True)
        (g * m.tensor([1.0, 10.0, 100.0], dtype=m.float64)).sum().backward()
        results.append((g.tolist(), v.grad.tolist()))
    assert results[0] == results[1]


def test_an_overwritten_value_leaves_the_kept_one_exactly():
    """The overwritten values are tied to the kept one by an exact zero: an infinite or NaN
    overwritten value does not turn it into NaN, and a kept -0.0 stays -0.0."""
    for overwritten in (float("inf"), float("nan"), -float("inf"), 1e30):
        results = []
        for m in (tg, torch):
            y = m.zeros(4)
            v = m.tensor([overwritten, -0.0, 3.0], requires_grad=True)
            y[m.tensor([1, 1, 2])] = v
            results.append(y.detach().numpy())
        np.testing.assert_array_equal(results[0], results[1])
        np.testing.assert_array_equal(np.signbit(results[0]), np.signbit(results[1]))


def test_a_replay_of_a_repeated_index_put_keeps_the_gradients():
    def program(base, values):
        changed = base * 2.0
        changed[tg.tensor([0, 2, 0])] = values
        return (changed * tg.tensor([1.0, 2.0, 3.0, 4.0])).sum()

    tape = tg.record(program, tg.ones(4, dtype=tg.float64), tg.ones(3, dtype=tg.float64))
    base, values = np.array([1.0, -2.0, 3.0, 0.5]), np.array([4.0, float("inf"), 6.0])
    value, grads = tape.value_and_grad(tg.tensor(base), tg.tensor(values))
    t_base, t_values = torch.tensor(base, requires_grad=True), torch.tensor(values, requires_grad=True)
    changed = t_base * 2.0
    changed[torch.tensor([0, 2, 0])] = t_values
    expected = (changed * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum()
    expected.backward()
    assert float(value) == expected.item()
    np.testing.assert_array_equal(grads[0].numpy(), t_base.grad.numpy())
    np.testing.assert_array_equal(grads[1].numpy(), t_values.grad.numpy())


# -- gather, index_select and embedding take no negative index -------------------------------


def _raised(call):
    with pytest.raises(Exception) as raised:
        call()
    return type(raised.value), str(raised.value)


@pytest.mark.parametrize(
    ("dim", "index"),
    [
        (1, [[0, -1]]),
        (1, [[0, 2]]),
        (1, [[5, -1]]),
        (1, [[-1, 5]]),
        (0, [[0, -3], [5, 0]]),
        (0, [[0, 3], [-1, 0]]),
        (-1, [[0, 1], [1, -2]]),
    ],
)
def test_gather_rejects_an_index_out_of_range_as_pytorch_does(dim, index):
    data = np.arange(6.0).reshape(3, 2)
    expected = _raised(lambda: torch.tensor(data).gather(dim, torch.tensor(index)))
    assert _raised(lambda: tg.tensor(data).gather(dim, tg.tensor(index))) == expected
    assert _raised(lambda: tg.gather(tg.tensor(data), dim, tg.tensor(index))) == expected


@pytest.mark.parametrize(
    ("shape", "dim", "index"),
    [
        ((3, 2), 0, [-1]),
        ((3, 2), 0, [3]),
        ((3, 2), 1, [5, -1]),
        ((3, 2), 1, [-9]),
        ((3, 2), -1, [0, -2]),
        ((2, 3, 4), 1, [1, 7, -2]),
        ((2, 3, 4), 2, [-1, 9]),
        ((6,), 0, [-1]),
        ((6,), 0, [6]),
        ((), 0, [-1]),
        ((0, 3), 0, [0]),
        ((3, 0, 2), 0, [0, -1]),
    ],
)
def test_index_select_rejects_an_index_out_of_range_as_pytorch_does(shape, dim, index):
    data = np.arange(float(np.prod(shape))).reshape(shape)
    expected = _raised(lambda: torch.tensor(data).index_select(dim, torch.tensor(index)))
    assert _raised(lambda: tg.tensor(data).index_select(dim, tg.tensor(index))) == expected


@pytest.mark.parametrize("index", [[-1], [0, 3], [-4]])
def test_embedding_rejects_an_index_out_of_range_as_pytorch_does(index):
    data = np.arange(6.0).reshape(3, 2)
    expected = _raised(lambda: torch.nn.functional.embedding(torch.tensor(index), torch.tensor(data)))
    assert _raised(lambda: tg.nn.functional.embedding(tg.tensor(index), tg.tensor(data))) == expected


def test_a_negative_index_tensor_still_wraps_where_pytorch_wraps():
    data = np.arange(6.0).reshape(3, 2)
    for key in (lambda m: m.tensor([-1, 0]), lambda m: (slice(None), m.tensor([-1])), lambda m: (-1, [-2])):
        expected = torch.tensor(data)[key(torch)]
        np.testing.assert_array_equal(tg.tensor(data)[key(tg)].numpy(), expected.numpy())
    ours, theirs = _pair((3, 2))
    ours.gather(1, tg.tensor([[1], [0], [1]])).sum().backward()
    theirs.gather(1, torch.tensor([[1], [0], [1]])).sum().backward()
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


# Keys of ints, slices and new dimensions only: views whose geometry tapegrad works out once per
# (shape, key) and then looks up (``_views._BASIC_VIEWS``).
BASIC_KEYS = {
    "slice": lambda: slice(1, 3),
    "whole slice": lambda: slice(None),
    "negative slice": lambda: slice(-2, None),
    "stepped slice": lambda: slice(None, None, 2),
    "int, slice": lambda: (1, slice(0, 2)),
    "slice, slice": lambda: (slice(None), slice(1, 3)),
    "None, int, Ellipsis": lambda: (None, 0, Ellipsis),
    "Ellipsis, int": lambda: (Ellipsis, -1),
    "slice, None, slice": lambda: (slice(None), None, slice(2, None)),
    "ints": lambda: (1, 2),
    "all whole": lambda: (slice(None), slice(None), slice(None)),
}


@pytest.mark.parametrize("key", BASIC_KEYS.values(), ids=list(BASIC_KEYS))
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_a_basic_key_gives_pytorchs_view_every_time_it_is_used(key, layout):
    """The first use of a key works out its view, the later ones look it up: each gives
    PyTorch's values, gradient and node, in either dtype (the look-up is by shape alone) and
    through a transposed (F-ordered) tensor."""
    for dtype in ("float64", "float32", "float64"):
        data = np.random.default_rng(3).standard_normal((4, 3, 5)).astype(dtype)
        ours, theirs = tg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
        if layout == "transposed":
            ours_in, theirs_in = ours.permute(2, 1, 0), theirs.permute(2, 1, 0)
        else:
            ours_in, theirs_in = ours * 1, theirs * 1
        got, expected = ours_in[key()], theirs_in[key()]
        assert tuple(got.shape) == tuple(expected.shape)
        np.testing.assert_array_equal(got.detach().numpy(), expected.detach().numpy())
        assert type(got.grad_fn).__name__ == type(expected.grad_fn).__name__
        w = np.random.default_rng(4).standard_normal(tuple(expected.shape)).astype(dtype)
        (got * tg.tensor(w)).sum().backward()
        (expected * torch.tensor(w)).sum().backward()
        np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


@pytest.mark.parametrize(
    "key",
    [slice(None, None, -1), slice(5, 0, -1), slice(None, None, 0), (0, slice(None, None, -2))],
    ids=["reversed", "reversed-bounds", "zero-step", "second-dimension"],
)
def test_a_slice_step_below_one_raises_pytorchs_value_error(key):
    # numpy reverses (a view with a negative stride), where PyTorch refuses: the values and the
    # gradient came out of another program than the one PyTorch runs.
    x = tg.arange(12.0).reshape(2, 6) if isinstance(key, tuple) else tg.arange(6.0)
    t = torch.arange(12.0).reshape(2, 6) if isinstance(key, tuple) else torch.arange(6.0)
    with pytest.raises(ValueError) as expected:
        t[key]
    with pytest.raises(ValueError, match=f"^{expected.value}$"):
        x[key]
    with pytest.raises(ValueError, match=f"^{expected.value}$"):
        x[key] = 1.0
    with pytest.raises(ValueError, match="^step must be greater than zero$"):  # a tensor's step
        tg.zeros(2, 6)[(slice(None), slice(None, None, tg.tensor(-1)))]
    assert tg.arange(6.0)[::2].tolist() == t.new_tensor([0.0, 2.0, 4.0]).tolist()


def test_a_list_of_sequences_indexes_as_a_tuple():
    """``x[[rows, cols]]``: PyTorch reads a short list holding sequences, slices, None or
    Ellipsis as a tuple (numpy's old rule; deprecated, with a warning). It picked whole rows."""
    x = tg.arange(9.0, dtype=tg.float64).reshape(3, 3).requires_grad_()
    with pytest.warns(UserWarning, match="non-tuple sequence for multidimensional indexing"):
        picked = x[[[0, 2], [1, 2]]]
    assert picked.tolist() == [1.0, 8.0]
    picked.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    z = tg.zeros(3, 3)
    with pytest.warns(UserWarning):
        z[[[0, 1], [1, 2]]] = 1.0
    assert z.sum().item() == 2.0
    with pytest.warns(UserWarning):
        assert tuple(x[[0, slice(None)]].shape) == (3,) and tuple(x[[None, 1]].shape) == (1, 3)
    assert tuple(x[[0, 1]].shape) == (2, 3)  # integers alone: one index


def test_an_ellipsis_of_no_dimensions_does_not_part_the_index_lists():
    # x[:, [0, 1], ..., [1, 2]] of a (5, 3, 4) x is (5, 2) in PyTorch; it came out (2, 5) here,
    # and an assignment through such a key wrote to the transposed positions.
    x = tg.arange(60.0).reshape(5, 3, 4)
    picked = x[:, [0, 1], ..., [1, 2]]
    assert tuple(picked.shape) == (5, 2)
    assert picked.tolist() == [[1.0 + 12 * i, 6.0 + 12 * i] for i in range(5)]
    y = tg.zeros(3, 1, 2)
    y[1:, [0], ..., [0, 1]] = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert y.flatten().tolist() == [0.0, 0.0, 1.0, 2.0, 3.0, 4.0]


def test_take_along_dim_counts_negative_indices_from_the_end():
    x = tg.arange(10.0).reshape(2, 5)
    indices = tg.tensor([[-1, 0], [-2, 1]])
    assert tg.take_along_dim(x, indices, dim=1).tolist() == [[4.0, 0.0], [8.0, 6.0]]
    with pytest.raises(RuntimeError, match="out of bounds"):  # flattened, PyTorch 2.13 refuses them
        tg.take_along_dim(x, tg.tensor([-1, 2]))


@pytest.mark.parametrize("value_shape", [(1, 4), (1, 1, 4), (4,), (1,)])
def test_a_value_with_leading_ones_writes_into_a_row_as_in_pytorch(value_shape):
    # PyTorch drops a value's leading ones (slicePrefix1sSize): expand refused (1, 4) into (4,)
    results = []
    for m in (tg, torch):
        base = m.zeros(3, 4, dtype=m.float64, requires_grad=True)
        value = m.ones(*value_shape, dtype=m.float64, requires_grad=True)
        changed = base * 1.0
        changed[1] = value * 2.0
        (changed * m.arange(12.0, dtype=m.float64).reshape(3, 4)).sum().backward()
        results.append([changed.detach().numpy(), base.grad.numpy(), value.grad.numpy()])
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("key", [None, Ellipsis, (None,), (Ellipsis,), (None, Ellipsis)])
def test_a_bare_none_or_ellipsis_key_indexes_as_its_one_element_tuple(key):
    """``x[None]`` and ``x[...]`` take the cached path of ``x[None,]`` and ``x[...,]``: the same
    values, node, gradient and replay as numpy's and PyTorch's reading of them."""
    values = np.arange(6.0).reshape(2, 3)
    x = tg.tensor(values, requires_grad=True)
    y = x * 1
    out = y[key]
    np.testing.assert_array_equal(out.detach().numpy(), values[key])
    expected = "AliasBackward0" if key in (Ellipsis, (Ellipsis,)) else "UnsqueezeBackward0"
    assert type(out.grad_fn).__name__ == expected
    (out * out).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * values)
    tape = tg.record(lambda t: (t[key] * 3).sum(), values)
    value, (grad,) = tape.value_and_grad(values + 1)
    assert value.item() == 3 * (values + 1).sum()
    np.testing.assert_array_equal(grad.numpy(), np.full((2, 3), 3.0))


STRIDED_VIEWS = {
    "x": lambda x: x,
    "x[None]": lambda x: x[None],
    "x[None, None]": lambda x: x[None, None],
    "x[:, None]": lambda x: x[:, None],
    "x[..., None]": lambda x: x[..., None],
    "x.unsqueeze(1)": lambda x: x.unsqueeze(1),
    "x.t()[None]": lambda x: x.t()[None],
    "x[0][None]": lambda x: x[0][None],
    "x[0:1]": lambda x: x[0:1],
    "x[:, ::2]": lambda x: x[:, ::2],
    "x[None].expand(4, 2, 3)": lambda x: x[None].expand(4, 2, 3),
    "x.reshape(1, 6)": lambda x: x.reshape(1, 6),
    "x.sum()[None]": lambda x: x.sum()[None],
}


@pytest.mark.parametrize("view", STRIDED_VIEWS)
def test_strides_are_pytorchs(view):
    """``stride()`` in elements as PyTorch reports it: numpy strides a new axis 0, PyTorch's
    unsqueeze the extent of the dimension after it."""
    results = {}
    for m in (tg, torch):
        out = STRIDED_VIEWS[view](m.arange(6.0).reshape(2, 3))
        results[m.__name__] = (out.stride(), tuple(out.stride(d) for d in range(out.dim())), out.is_contiguous())
    assert results["tapegrad"] == results["torch"]


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_refuses_values_of_another_dtype_as_pytorch(accumulate):
    """Found by a review: float32 values went into a float64 tensor, cast; PyTorch's
    ``index_put_`` raises."""
    target = tg.zeros(3, dtype=tg.float64)
    message = "Index put requires the source and destination dtypes match, got Double for the destination and Float"
    with pytest.raises(RuntimeError, match=message):
        target.index_put_((tg.tensor([0, 0]),), tg.tensor([1.0, 2.0]), accumulate=accumulate)
    assert target.tolist() == [0.0, 0.0, 0.0]


# (key, value) pairs for a (2, 3) float32 tensor: PyTorch casts the value at basic indices and
# for one boolean mask with a one-element value (its masked_fill_), and refuses it otherwise.
SETITEM_OF_ANOTHER_DTYPE = {
    "list": lambda m: ([0], m.tensor(5)),
    "index tensor": lambda m: (m.tensor([1, 0]), m.tensor([[1, 2, 3]])),
    "ellipsis and list": lambda m: ((Ellipsis, [1]), m.tensor(5, dtype=m.float64)),
    "range": lambda m: (range(1), m.tensor(5)),
    "0-d bool tensor": lambda m: (m.tensor(True), m.tensor(5)),
    "mask, 0-d value": lambda m: (m.tensor([[True, False, True], [False, False, True]]), m.tensor(5)),
    "mask, one element": lambda m: (m.tensor([[True, False, True], [False, False, True]]), m.tensor([5])),
    "mask, three elements": lambda m: (m.tensor([[True, False, True], [False, False, True]]), m.tensor([5, 6, 7])),
    "int and mask": lambda m: ((0, m.tensor([True, False, True])), m.tensor(5)),
    "two masks' worth": lambda m: ((m.tensor([True, False]), m.tensor([0, 2])), m.tensor(5)),
    "0-d int tensor": lambda m: (m.tensor(1), m.tensor(5)),
    "slice": lambda m: (slice(1, None), m.tensor([[3, 4, 5]])),
    "bool": lambda m: (True, m.tensor(5, dtype=m.float64)),
}


def _put_of_another_dtype(m, case: str):
    key, value = SETITEM_OF_ANOTHER_DTYPE[case](m)
    x = m.zeros(2, 3)
    try:
        x[key] = value
    except RuntimeError as error:
        return str(error)
    return x.tolist()


@pytest.mark.parametrize("case", SETITEM_OF_ANOTHER_DTYPE)
def test_setitem_of_another_dtype_at_index_tensors_raises_as_pytorch(case):
    """Found by a review: ``self[indices] = values`` cast values of another dtype where PyTorch
    raises, as its ``index_put_`` does."""
    ours = _put_of_another_dtype(tg, case)
    refused = (
        "list",
        "index tensor",
        "ellipsis and list",
        "range",
        "0-d bool tensor",
        "mask, three elements",
        "two masks' worth",
    )
    assert isinstance(ours, str) == (case in refused)
    if isinstance(ours, str):
        assert ours.startswith("Index put requires the source and destination dtypes match, got Float")
    torch = pytest.importorskip("torch")
    assert ours == _put_of_another_dtype(torch, case)


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_of_one_element_at_a_mask(accumulate):
    """PyTorch's ``index_put_`` fills one mask with a one-element value of another dtype (its
    ``masked_fill_``, which casts), and refuses it when accumulating."""

    def put(m):
        target = m.zeros(3)
        try:
            return target.index_put_((m.tensor([True, False, True]),), m.tensor(5), accumulate).tolist()
        except RuntimeError as error:
            return str(error)

    ours = put(tg)
    if accumulate:
        assert ours.startswith("Index put requires the source and destination dtypes match")
    else:
        assert ours == [5.0, 0.0, 5.0]
    torch = pytest.importorskip("torch")
    assert ours == put(torch)
