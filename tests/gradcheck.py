"""A slow, obviously correct reference: central differences in float64."""

from __future__ import annotations

import numpy as np

import tapegrad as tg


def sample(rng: np.random.Generator, shapes, domain) -> list[np.ndarray]:
    low, high = domain
    return [rng.uniform(low, high, size=shape) for shape in shapes]


def weighted_sum(output, weights):
    return (output * tg.from_numpy(weights)).sum()


def numeric_gradients(call, arrays, weights, eps=1e-6) -> list[np.ndarray]:
    def loss(values):
        with tg.no_grad():
            out = call(*[tg.from_numpy(v) for v in values])
            return float((out._data.astype(np.float64) * weights).sum())

    gradients = []
    for index, array in enumerate(arrays):
        gradient = np.zeros_like(array)
        for position in np.ndindex(array.shape):
            shifted = [a.copy() for a in arrays]
            shifted[index][position] = array[position] + eps
            up = loss(shifted)
            shifted[index][position] = array[position] - eps
            down = loss(shifted)
            gradient[position] = (up - down) / (2 * eps)
        gradients.append(gradient)
    return gradients


def analytic_gradients(call, arrays, weights, dtype=tg.float64) -> list[np.ndarray]:
    inputs = [tg.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = call(*inputs)
    weighted_sum(out, weights.astype(out._data.dtype)).backward()
    return [x.grad.numpy() if x.grad is not None else np.zeros(x.shape) for x in inputs]


def assert_nested_close(ours, theirs, rtol: float, atol: float) -> None:
    """tapegrad results against PyTorch's, both possibly nested tuples (autograd.functional)."""
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_nested_close(a, b, rtol, atol)
    else:
        assert tuple(ours.shape) == tuple(theirs.shape)
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=atol)
