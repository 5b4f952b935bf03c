"""``nn.Embedding``'s options: ``padding_idx`` (no gradient to that row, zeros at init),
``max_norm`` (rows scaled in place when picked), ``from_pretrained`` and ``_freeze``."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

TABLE = np.arange(15.0).reshape(5, 3)


def _padded(m):
    e = m.nn.Embedding(5, 3, padding_idx=1)
    with m.no_grad():
        e.weight.copy_(m.tensor(TABLE))
    out = e(m.tensor([[1, 2], [1, 4]]))
    (out**2).sum().backward()
    return out.detach().numpy(), e.weight.grad.numpy()


def test_padding_row_takes_no_gradient():
    out, grad = _padded(tg)
    np.testing.assert_array_equal(out[0, 0], TABLE[1])  # its value is read as it is
    np.testing.assert_array_equal(grad[1], 0.0)
    np.testing.assert_array_equal(grad[2], 2 * TABLE[2])
    assert tg.nn.Embedding(4, 2, padding_idx=-1).weight[3].tolist() == [0.0, 0.0]
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        tg.nn.Embedding(4, 2, padding_idx=4)


def _renormed(m):
    e = m.nn.Embedding(5, 3, max_norm=1.0)
    with m.no_grad():
        e.weight.copy_(m.tensor(TABLE))
    out = e(m.tensor([0, 3, 3]))
    return out.detach().numpy(), e.weight.detach().numpy()


def test_max_norm_scales_the_rows_picked_in_place():
    out, weight = _renormed(tg)
    np.testing.assert_allclose(np.linalg.norm(weight[[0, 3]], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(weight[[1, 2, 4]], TABLE[[1, 2, 4]])  # the others untouched
    np.testing.assert_array_equal(out[1], weight[3])


def test_from_pretrained_is_frozen_unless_asked():
    frozen = tg.nn.Embedding.from_pretrained(tg.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert not frozen.weight.requires_grad and frozen(tg.tensor([1])).tolist() == [[3.0, 4.0]]
    assert tg.nn.Embedding.from_pretrained(tg.tensor([[1.0]]), freeze=False).weight.requires_grad


@pytest.mark.parametrize("program", [_padded, _renormed])
def test_matches_pytorch(program):
    torch = pytest.importorskip("torch")
    for ours, theirs in zip(program(tg), program(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
