"""An operator on an unnamed intermediate writes its result into that intermediate's storage,
as numpy does for ``x * y + sin(x)``: one large buffer fewer per step. These tests check that
it happens where nothing can see the difference, and never where something can: a named tensor,
a value a backward reads, a call from C code, a view, a broadcast into a larger result."""

import operator
import tracemalloc

import numpy as np
import pytest

import tapegrad as tg

N = 1 << 17  # float64: 1 MiB, above the 256 KiB threshold


@pytest.fixture
def operands():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(N) for _ in range(3)]
    return arrays, [tg.tensor(a, requires_grad=True) for a in arrays]


def buffers_allocated(compute) -> float:
    """Peak memory ``compute()`` allocated while it ran, in buffers of N float64."""
    compute()  # (first-use allocations: layouts, caches)
    tracemalloc.start()
    try:
        result = compute()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak / (8 * N)


def test_a_sum_of_temporaries_takes_one_buffer_and_differentiates(operands):
    (xa, wa, za), (x, w, z) = operands
    assert buffers_allocated(lambda: x * w + z) < 1.5  # the product's buffer holds the sum
    out = (x * w + x.sin() - z).sum()
    out.backward()
    np.testing.assert_allclose(float(out), (xa * wa + np.sin(xa) - za).sum(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), wa + np.cos(xa), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(w.grad.numpy(), xa, rtol=1e-12)
    np.testing.assert_allclose(z.grad.numpy(), -np.ones(N))


def test_a_named_tensor_keeps_its_values(operands):
    (xa, wa, za), (x, w, z) = operands
    h = x * w
    s = h + z
    np.testing.assert_array_equal(h.detach().numpy(), xa * wa)
    np.testing.assert_array_equal(s.detach().numpy(), xa * wa + za)
    assert buffers_allocated(lambda: (lambda h: h + z)(x * w)) >= 2  # a parameter is a name too


def test_a_value_the_backward_reads_is_not_written_over(operands):
    (xa, wa, za), (x, w, z) = operands
    # z takes (x * w)'s value as its gradient; exp's backward reads its own result.
    ((x * w) * z).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), xa * wa, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), wa * za, rtol=1e-12)
    x.grad = None
    (x.exp() + z).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(xa), rtol=1e-12)


def test_a_product_by_a_constant_may_be_written_over(operands):
    (xa, wa, za), (x, w, _) = operands
    c = tg.tensor(za)  # requires no grad: the product's value is read by nobody
    assert buffers_allocated(lambda: (x * w) * c) < 1.5
    ((x * w) * c).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), wa * za, rtol=1e-12)


def test_calls_from_c_code_and_views_are_left_alone(operands):
    (xa, wa, za), (x, w, z) = operands
    assert buffers_allocated(lambda: operator.add(x * w, z)) >= 2
    assert buffers_allocated(lambda: tg.Tensor.__add__(x * w, z)) >= 2
    v = (x * w)[: N // 2] + z[: N // 2]  # a view: its storage is its base's
    np.testing.assert_allclose(v.detach().numpy(), xa[: N // 2] * wa[: N // 2] + za[: N // 2], rtol=1e-12)


def test_a_temporary_smaller_than_the_result_is_not_the_result(operands):
    (xa, wa, za), (x, w, z) = operands
    row = tg.tensor(xa[:512], requires_grad=True)
    big = tg.tensor(np.broadcast_to(za, (1, N)).reshape(256, 512), requires_grad=True)
    out = (row * 2.0) * 1.0 + big
    np.testing.assert_allclose(out.detach().numpy(), 2 * xa[:512] + big.detach().numpy(), rtol=1e-12)


def test_no_grad_temporaries_and_a_recording_give_the_same_values(operands):
    (xa, wa, za), (x, w, z) = operands
    with tg.no_grad():
        assert buffers_allocated(lambda: x * w + z) < 1.5
        np.testing.assert_allclose((x * w + z).numpy(), xa * wa + za, rtol=1e-12)
    tape = tg.record(lambda x, w, z: (x * w + z).sum(), xa, wa, za)
    value, grads = tape.value_and_grad(za, xa, wa)
    np.testing.assert_allclose(value, (za * xa + wa).sum(), rtol=1e-12)
    np.testing.assert_allclose(grads[0], xa, rtol=1e-12)
