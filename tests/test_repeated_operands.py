"""A product by a broadcast operand saves the operand unbroadcast (``_record._repeated_operand``).

``x * w`` with ``w`` of shape ``(n,)`` and ``x`` of ``(..., n)`` saved a copy of ``w`` broadcast
to ``x``'s shape for the backward (PyTorch saves ``w``): memory of the result's size and a copy
that cost ``a * b[0]`` at 512x1024 a tenth of its step. The product's rule now reads ``w``
repeated (``backward._repeated_value``). These check its gradients against the closed form, the
memory the forward holds, and that a change in place of ``w`` is still caught.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import tapegrad as tg


def _closed_form(x, w, g):
    """d(x * w)/dx and d(x * w)/dw for ``w`` broadcast over ``x``'s leading dimensions."""
    lead = tuple(range(x.ndim - w.ndim))
    gw = (g * x).sum(axis=lead)
    return g * w, gw.sum(axis=tuple(k for k in range(w.ndim) if w.shape[k] == 1), keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape_x, shape_w",
    [((128, 512), (512,)), ((128, 512), (1, 512)), ((4, 32, 64), (64,)), ((4, 32, 64), (32, 64)), ((2, 4096), (4096,))],
)
@pytest.mark.parametrize("order", ["x * w", "w * x"])
def test_gradients_of_a_product_by_a_repeated_operand(dtype, shape_x, shape_w, order):
    rng = np.random.default_rng(0)
    x_data = rng.standard_normal(shape_x).astype(dtype)
    w_data = rng.standard_normal(shape_w).astype(dtype)
    g = rng.standard_normal(shape_x).astype(dtype)
    x = tg.tensor(x_data, requires_grad=True)
    w = tg.tensor(w_data, requires_grad=True)
    y = x * w if order == "x * w" else w * x
    y.backward(tg.tensor(g))
    gx, gw = _closed_form(x_data.astype(np.float64), w_data.astype(np.float64), g.astype(np.float64))
    tolerance = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(w.grad.numpy(), gw.reshape(shape_w), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape_x, shape_w", [((128, 512), (512,)), ((4, 32, 64), (1, 64)), ((64, 128), (64, 128))])
def test_gradients_of_a_quotient_by_a_repeated_divisor(dtype, shape_x, shape_w):
    """``x / w`` reads ``w`` repeated too; ``w / x`` (a repeated numerator) and equal shapes
    read their operands whole."""
    rng = np.random.default_rng(5)
    x_data = rng.standard_normal(shape_x).astype(dtype)
    w_data = (rng.uniform(0.5, 2.0, shape_w) * rng.choice([-1, 1], shape_w)).astype(dtype)
    g = rng.standard_normal(shape_x).astype(dtype)
    x64, w64, g64 = (v.astype(np.float64) for v in (x_data, w_data, g))
    lead = tuple(range(x64.ndim - w64.ndim))
    ones = tuple(k for k in range(w64.ndim) if w64.shape[k] == 1 and x64.shape[k + len(lead)] != 1)
    tolerance = 1e-12 if dtype == np.float64 else 2e-4
    for quotient in ("x / w", "w / x"):
        x = tg.tensor(x_data, requires_grad=True)
        w = tg.tensor(w_data, requires_grad=True)
        (x / w if quotient == "x / w" else w / x).backward(tg.tensor(g))
        if quotient == "x / w":
            gx, gw = g64 / w64, -g64 * x64 / (w64 * w64)
        else:
            gx, gw = -g64 * w64 / (x64 * x64), g64 / x64
        gw = gw.sum(axis=lead).sum(axis=ones, keepdims=True).reshape(shape_w)
        np.testing.assert_allclose(x.grad.numpy(), gx, rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(w.grad.numpy(), gw, rtol=tolerance, atol=tolerance)


def test_a_sum_of_a_product_by_a_repeated_operand():
    """The sum's gradient reaches the product as one number (a UNIFORM slot): the rule scales
    the repeated operand by it."""
    rng = np.random.default_rng(1)
    x = tg.tensor(rng.standard_normal((256, 512)), requires_grad=True)
    b = tg.tensor(rng.standard_normal((3, 512)), requires_grad=True)
    (x * b[1] * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(2.0 * b.detach().numpy()[1], (256, 512)), rtol=1e-12)
    expected = np.zeros((3, 512))
    expected[1] = 2.0 * x.detach().numpy().sum(axis=0)
    np.testing.assert_allclose(b.grad.numpy(), expected, rtol=1e-12)


def test_the_forward_holds_the_result_and_no_broadcast_copy():
    rng = np.random.default_rng(2)
    x = tg.tensor(rng.standard_normal((512, 1024)).astype(np.float32), requires_grad=True)
    b = tg.tensor(rng.standard_normal((4, 1024)).astype(np.float32), requires_grad=True)
    (x * b[0]).sum().backward()  # kernels compiled and arenas allocated outside the count
    x.grad = b.grad = None
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = x * b[0]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < y.detach().numpy().nbytes + (64 << 10)  # the result (2 MB), not a second 2 MB


def test_a_repeated_operand_changed_in_place_is_still_caught():
    rng = np.random.default_rng(3)
    x = tg.tensor(rng.standard_normal((64, 128)), requires_grad=True)
    c = tg.tensor(rng.standard_normal((2, 128)), requires_grad=True) * 1.0
    y = x * c[0]
    c.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_repeated_operands_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x_data, w_data = rng.standard_normal((96, 256)), rng.standard_normal(256)
    g = rng.standard_normal((96, 256))
    results = []
    for module in (tg, torch):
        x = module.tensor(x_data, requires_grad=True)
        w = module.tensor(w_data, requires_grad=True)
        ((x * w).tanh() * w).backward(module.tensor(g))
        results.append((x.grad.numpy().copy(), w.grad.numpy().copy()))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("quotient", [False, True])
def test_the_in_place_error_names_the_saved_operand_as_pytorch(quotient):
    """PyTorch saves ``w`` itself, and its error names it (``[1024]``, not the broadcast)."""
    torch = pytest.importorskip("torch")
    data = np.abs(np.random.default_rng(6).standard_normal((64, 128))) + 1.0
    messages = []
    for module in (tg, torch):
        x = module.tensor(data, requires_grad=True)
        w = module.tensor(data[0], requires_grad=True) * 1.0
        y = x / w if quotient else x * w
        w.mul_(2.0)
        with pytest.raises(RuntimeError) as caught:
            y.sum().backward()
        messages.append(str(caught.value).replace("torch.", "tapegrad.").split(" Hint")[0])
    assert messages[0] == messages[1]
