"""Property-based checks (hypothesis): random shapes, broadcasting, 0-d and empty tensors, NaN
and inf. Values and gradients equal a numpy reference; rejected inputs get PyTorch's errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as tg

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from([np.float32, np.float64])


def _unbroadcast(gradient: np.ndarray, shape: tuple) -> np.ndarray:
    while gradient.ndim > len(shape):
        gradient = gradient.sum(axis=0)
    for axis, extent in enumerate(shape):
        if extent == 1 and gradient.shape[axis] != 1:
            gradient = gradient.sum(axis=axis, keepdims=True)
    return gradient


REFERENCE = {
    "add": (np.add, lambda a, b, g: (g, g)),
    "sub": (np.subtract, lambda a, b, g: (g, -g)),
    "mul": (np.multiply, lambda a, b, g: (g * b, g * a)),
    "div": (np.divide, lambda a, b, g: (g / b, -g * a / (b * b))),
}


@SETTINGS
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3),
    dtype=DTYPES,
    op=st.sampled_from(sorted(REFERENCE)),
    data=st.data(),
)
def test_broadcasting_binary_ops_match_numpy(shapes, dtype, op, data):
    shape_a, shape_b = shapes.input_shapes
    elements = st.floats(0.5, 2.0, width=32)
    a = data.draw(hnp.arrays(dtype, shape_a, elements=elements))
    b = data.draw(hnp.arrays(dtype, shape_b, elements=elements))
    forward, backward = REFERENCE[op]
    x, y = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    out = {"add": x + y, "sub": x - y, "mul": x * y, "div": x / y}[op]
    expected = forward(a, b)
    assert out.shape == expected.shape and out.dtype.numpy == expected.dtype
    np.testing.assert_array_equal(out.detach().numpy(), expected)
    g = np.ones(expected.shape, dtype)
    out.backward(tg.tensor(g))
    ga, gb = backward(np.broadcast_to(a, expected.shape), np.broadcast_to(b, expected.shape), g)
    tolerance = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(x.grad.numpy(), _unbroadcast(ga, shape_a), rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(y.grad.numpy(), _unbroadcast(gb, shape_b), rtol=tolerance, atol=tolerance)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4), dtype=DTYPES, data=st.data())
def test_reductions_and_unary_ops_on_any_shape(shape, dtype, data):
    a = data.draw(hnp.arrays(dtype, shape, elements=st.floats(-3, 3, width=32)))
    x = tg.tensor(a, requires_grad=True)
    out = (x.tanh() * 2.0).sum()
    np.testing.assert_allclose(out.item(), (np.tanh(a) * 2.0).sum(dtype=np.float64), rtol=1e-5, atol=1e-5)
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.0 * (1 - np.tanh(a) ** 2), rtol=1e-5, atol=1e-6)


@SETTINGS
@given(
    shapes=st.tuples(
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=4), hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)
    )
)
def test_clashing_shapes_raise_pytorchs_error(shapes):
    shape_a, shape_b = shapes
    try:
        np.broadcast_shapes(shape_a, shape_b)
    except ValueError:
        with pytest.raises(
            RuntimeError,
            match=r"The size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton dimension \d+",
        ):
            tg.ones(*shape_a, requires_grad=True) + tg.ones(*shape_b)
    else:
        assert (tg.ones(*shape_a) + tg.ones(*shape_b)).shape == np.broadcast_shapes(shape_a, shape_b)


def test_nan_and_inf_propagate_like_pytorch():
    x = tg.tensor([0.0, 4.0, float("nan"), float("inf")], requires_grad=True)
    x.sqrt().sum().backward()
    grad = x.grad.numpy()
    assert grad[0] == np.inf and grad[1] == 0.25 and np.isnan(grad[2]) and grad[3] == 0.0
    y = tg.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    y.relu().sum().backward()
    assert y.grad.tolist() == [0.0, 0.0, 1.0]  # PyTorch: relu'(0) = 0


def test_empty_tensors_flow_through():
    x = tg.zeros(0, 3, requires_grad=True)
    out = (x * 2.0).sum()
    assert out.item() == 0.0
    out.backward()
    assert x.grad.shape == (0, 3)


def test_numpy_inputs_of_every_kind():
    read_only = np.arange(4.0)
    read_only.flags.writeable = False
    assert tg.tensor(read_only).tolist() == [0.0, 1.0, 2.0, 3.0]
    transposed = np.arange(6.0).reshape(2, 3).T
    x = tg.tensor(transposed, requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * transposed)
    with pytest.raises(ValueError, match="byte order"):
        tg.from_numpy(np.arange(3.0).astype(">f8"))
    assert tg.tensor(np.arange(3.0).astype(">f8")).tolist() == [0.0, 1.0, 2.0]
    assert tg.tensor(np.arange(3, dtype=np.int32)).dtype == tg.int32
    with pytest.raises(RuntimeError, match="Only Tensors of floating point"):
        tg.tensor(np.arange(3), requires_grad=True)
