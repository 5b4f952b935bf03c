"""``scatter_add`` and ``index_add`` (their gradients, replays and second derivatives are the
op table's cases in ``tapegrad/_examples.py``): repeated positions add up, the in-place forms
change the tensor, and bad arguments raise what PyTorch raises."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg


def test_repeated_positions_add_up():
    x = tg.zeros(3)
    out = x.scatter_add(0, tg.tensor([0, 2, 0, 0]), tg.tensor([1.0, 2.0, 3.0, 4.0]))
    assert out.tolist() == [8.0, 0.0, 2.0]
    rows = tg.index_add(
        tg.ones(2, 2), 0, tg.tensor([1, 1, 0]), tg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), alpha=2
    )
    assert rows.tolist() == [[11.0, 13.0], [9.0, 13.0]]


def test_gradients_are_gather_and_index_select():
    x = tg.zeros(2, 3, dtype=tg.float64, requires_grad=True)
    src = tg.ones(2, 2, dtype=tg.float64, requires_grad=True)
    index = tg.tensor([[2, 2], [0, 1]])
    weights = tg.arange(6.0, dtype=tg.float64).reshape(2, 3)
    (x.scatter_add(1, index, src) * weights).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), weights.numpy())
    np.testing.assert_array_equal(src.grad.numpy(), weights.gather(1, index).numpy())


def test_in_place_forms():
    x = tg.zeros(2, 2)
    assert x.index_add_(1, tg.tensor([1]), tg.ones(2, 1)) is x
    assert x.tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert x.scatter_add_(0, tg.tensor([[1, 1]]), tg.ones(1, 2)) is x
    assert x.tolist() == [[0.0, 1.0], [1.0, 2.0]]
    y = tg.zeros(3)
    assert y.scatter(0, tg.tensor([1, 1]), tg.tensor([2.0, 3.0]), reduce="add").tolist() == [0.0, 5.0, 0.0]


def _misuses(m):
    x = m.zeros(3, 4)
    index = m.tensor([[0, 1], [2, 2]])
    ones = m.ones(2, 2)
    return {
        "float index": lambda: x.scatter_add(0, index.float(), ones),
        "src dtype": lambda: x.scatter_add(0, index, ones.double()),
        "index rank": lambda: x.scatter_add(0, index[0], ones),
        "index range": lambda: x.scatter_add(0, index + 5, ones),
        "index larger than src": lambda: x.scatter_add(0, m.zeros(4, 2, dtype=m.int64), ones),
        "index_add range": lambda: x.index_add(0, m.tensor([0, 5]), m.ones(2, 4)),
        "index_add count": lambda: x.index_add(0, m.tensor([0, 1]), m.ones(3, 4)),
        "index_add float index": lambda: x.index_add(0, m.tensor([0.0, 1.0]), m.ones(2, 4)),
        "index_add matrix index": lambda: x.index_add(0, m.tensor([[0, 1]]), m.ones(2, 4)),
        "index_add source dtype": lambda: x.index_add(0, m.tensor([0, 1]), m.ones(2, 4).double()),
    }


@pytest.mark.parametrize("name", list(_misuses(tg)))
def test_misuse_raises_as_pytorch(name):
    with pytest.raises((RuntimeError, IndexError)) as ours:
        _misuses(tg)[name]()
    torch = pytest.importorskip("torch")
    with pytest.raises((RuntimeError, IndexError)) as theirs:
        _misuses(torch)[name]()
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


def test_index_add_of_nothing_is_input():
    """An empty index (a graph without edges) adds nothing; it raised a reshape error."""
    x = tg.ones(3, 2, requires_grad=True)
    out = tg.index_add(x, 0, tg.tensor([], dtype=tg.int64), tg.ones(0, 2))
    assert out.tolist() == x.tolist() and out is not x
    out.sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0]] * 3
