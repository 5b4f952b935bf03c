"""Accuracy where formulas cancel, overflow or underflow: each against the exact value (long
double or a closed form), the digits a float32 or float64 result must keep."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

F = tg.nn.functional
LOGITS = np.array([-30, -25, -12, -8, -1, 0, 1, 8, 12, 25, 30], np.float64)


def _softplus(z):
    return np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _relative(got, exact):
    return np.max(np.abs(got - exact) / np.maximum(np.abs(exact), np.finfo(np.float64).tiny))


@pytest.mark.parametrize("target", [0.0, 1.0, 0.3])
@pytest.mark.parametrize("pos_weight", [None, 2.0])
def test_bce_with_logits_keeps_its_digits_where_the_prediction_is_confident(target, pos_weight):
    # x + softplus(-x) for t = 0 kept three float32 digits at x = -8, and its gradient as few
    x = tg.tensor(LOGITS.astype(np.float32), requires_grad=True)
    weight = None if pos_weight is None else tg.tensor([pos_weight])
    loss = F.binary_cross_entropy_with_logits(x, tg.full_like(x, target), reduction="none", pos_weight=weight)
    loss.sum().backward()
    z = LOGITS.astype(np.longdouble)
    w = 1.0 if pos_weight is None else pos_weight
    tolerance = 3e-7 if target in (0.0, 1.0) else 1e-6  # (a soft target's gradient is a difference)
    assert _relative(loss.detach().numpy(), (1 - target) * _softplus(z) + w * target * _softplus(-z)) < tolerance
    assert _relative(x.grad.numpy(), (1 - target) * _sigmoid(z) - w * target * _sigmoid(-z)) < tolerance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_of_a_small_probability_takes_log1p(dtype):
    p = tg.tensor(np.array([3e-7, 1e-5], dtype))
    loss = F.binary_cross_entropy(p, tg.zeros_like(p), reduction="none")
    exact = -np.log1p(-np.array([3e-7, 1e-5], np.longdouble))
    assert _relative(loss.numpy(), exact) < 4 * np.finfo(dtype).eps


def test_softplus_with_a_threshold_above_twenty_is_exact_there():
    x = tg.tensor([21.0, 22.0, 30.0], dtype=tg.float64, requires_grad=True)
    y = F.softplus(x, threshold=40.0)
    y.sum().backward()
    z = np.array([21.0, 22.0, 30.0], np.longdouble)
    assert _relative(y.detach().numpy(), z + np.log1p(np.exp(-z))) < 4e-16  # the cut at 20 was 1.3e-11 off at 22
    assert _relative(x.grad.numpy(), _sigmoid(z)) < 4e-16


def test_hypot_neither_overflows_nor_underflows_in_float32():
    x = tg.tensor([3e19, 3e-25, 3.0, float("inf")], requires_grad=True)
    y = tg.tensor([4e19, 4e-25, 4.0, float("nan")], requires_grad=True)
    h = tg.hypot(x, y)
    h[:3].sum().backward()
    np.testing.assert_allclose(h.detach().numpy(), [5e19, 5e-25, 5.0, np.inf], rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy()[:3], [0.6] * 3, rtol=1e-6)
    np.testing.assert_allclose(y.grad.numpy()[:3], [0.8] * 3, rtol=1e-6)


def test_sinc_of_a_huge_argument_has_a_finite_gradient():
    x = tg.tensor([1e19, -3e20, 0.5], requires_grad=True)
    tg.sinc(x).sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    exact = (np.cos(np.pi * 0.5) * np.pi * 0.5 - np.sin(np.pi * 0.5)) / (np.pi * 0.5**2)
    np.testing.assert_allclose(x.grad.numpy()[2], exact, rtol=1e-6)
