"""Running products and log-sums (``cumprod``, ``logcumsumexp``): ``_more_composites._scan``.

Up to ``_SCAN_STEPS`` steps they are recorded one step at a time, in PyTorch's order; longer
ones in blocks (about 3 sqrt(n) recorded ops instead of n: 100,000 steps raised ``MemoryError``).
float32 runs in float64 and is rounded once, as PyTorch's CPU scans accumulate.
"""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _more_composites

SHAPES = [((300,), 0), ((3, 300), 1), ((300, 2), 0), ((2, 130, 3), 1), ((65,), 0)]


def _scans(x0, y0, w, dim):
    x, y = tg.tensor(x0, requires_grad=True), tg.tensor(y0, requires_grad=True)
    products, sums = x.cumprod(dim), y.logcumsumexp(dim)
    ((products * tg.tensor(w)).sum() + (sums * tg.tensor(w)).sum()).backward()
    return products.detach().numpy(), sums.detach().numpy(), x.grad.numpy(), y.grad.numpy()


def _inputs(shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.9, 1.1, shape).astype(dtype)
    x.flat[min(7, x.size - 1)] = 0.0  # the gradient past a zero: products only, no division
    x.flat[x.size // 2] = -0.5
    return x, rng.standard_normal(shape).astype(dtype) * 3, rng.uniform(0.5, 1.5, shape).astype(dtype)


@pytest.mark.parametrize(("shape", "dim"), SHAPES)
def test_blocked_scans_equal_scans_one_step_at_a_time(shape, dim, monkeypatch):
    x, y, w = _inputs(shape)
    blocked = _scans(x, y, w, dim)
    monkeypatch.setattr(_more_composites, "_SCAN_STEPS", 10**9)
    stepwise = _scans(x, y, w, dim)
    for got, expected in zip(blocked, stepwise):
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("shape", "dim"), [((5,), 0), *SHAPES])
def test_scans_match_pytorch(shape, dim, dtype):
    torch = pytest.importorskip("torch")
    x, y, w = _inputs(shape, dtype, seed=1)
    ours = _scans(x, y, w, dim)
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    products, sums = tx.cumprod(dim), ty.logcumsumexp(dim)
    ((products * torch.tensor(w)).sum() + (sums * torch.tensor(w)).sum()).backward()
    theirs = products.detach().numpy(), sums.detach().numpy(), tx.grad.numpy(), ty.grad.numpy()
    if dtype == "float32":  # accumulated in float64 and rounded once: PyTorch's bits
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])
    rtol = 1e-13 if dtype == "float64" else 2e-6
    for got, expected in zip(ours, theirs):
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-30)


def test_a_hundred_thousand_steps():
    rng = np.random.default_rng(2)
    x0 = rng.uniform(0.999, 1.001, 100_000)
    x0[5] = 0.0
    y0 = rng.standard_normal(100_000).astype(np.float32)
    x, y = tg.tensor(x0, requires_grad=True), tg.tensor(y0, requires_grad=True)
    products, sums = x.cumprod(0), y.logcumsumexp(0)
    (products[:10].sum() + sums.sum()).backward()
    np.testing.assert_allclose(products.detach().numpy(), np.cumprod(x0), rtol=1e-12)
    exact = np.logaddexp.accumulate(y0.astype(np.float64))
    np.testing.assert_allclose(sums.detach().numpy(), exact, rtol=1.2e-7)  # (one float32 rounding)
    # d/dx_k of the first ten running products: zero past the zero, except for x_5 itself
    expected = np.zeros(100_000)
    expected[5] = sum(np.prod(np.delete(x0[: j + 1], 5)) for j in range(5, 10))
    expected[:5] = [sum(np.prod(np.delete(x0[: j + 1], k)) for j in range(k, 5)) for k in range(5)]
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)
    weights = np.exp(y0.astype(np.float64)) * np.cumsum(np.exp(-exact)[::-1])[::-1]
    np.testing.assert_allclose(y.grad.numpy(), weights, rtol=1e-5)


def test_a_replay_of_a_blocked_scan_equals_eager():
    x0, y0, w = _inputs((2, 130))
    tape = tg.record(lambda x, y: (x.cumprod(1) * w).sum() + (y.logcumsumexp(1) * w).sum(), x0, y0)
    x1, y1 = x0[::-1].copy(), y0 * 0.5
    value, (grad_x, grad_y) = tape.value_and_grad(x1, y1)
    products, sums, eager_x, eager_y = _scans(x1, y1, w, 1)
    assert value.item() == pytest.approx((products * w).sum() + (sums * w).sum(), rel=1e-14)
    np.testing.assert_allclose(grad_x.numpy(), eager_x, rtol=1e-14)
    np.testing.assert_allclose(grad_y.numpy(), eager_y, rtol=1e-14)
