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
    a, b = (tg.tensor(x, requires_grad=True) for x in _pair(np.float32))
    (a.t() * b.t()).sum().backward()
    assert calls == [(COLUMNS, ROWS)] * 2  # both operands, each once
    np.testing.assert_array_equal(a.grad.numpy(), b.detach().numpy())
    np.testing.assert_array_equal(b.grad.numpy(), a.detach().numpy())


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
