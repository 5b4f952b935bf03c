"""batch_norm when training: one fused row per layer (``_reductions.batch_norm``), checked
against PyTorch: values, the three gradients, second-order gradients, the running statistics
over steps, and a replay of the recorded layer against eager."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")

SHAPES = [(6, 3), (4, 3, 5), (3, 2, 4, 5), (2, 2, 3, 2, 2)]


def _inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 2.0, shape)
    channels = shape[1]
    return x, rng.normal(1.0, 0.5, channels), rng.normal(0.0, 0.5, channels), rng.normal(size=shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_values_and_gradients_match_pytorchs(shape, affine):
    x, w, b, g = _inputs(shape)
    results = []
    for m in (tg, torch):
        tensors = [m.tensor(v, requires_grad=True) for v in (x, w, b)]
        weight, bias = (tensors[1], tensors[2]) if affine else (None, None)
        out = m.nn.functional.batch_norm(tensors[0], None, None, weight, bias, training=True, eps=1e-3)
        out.backward(m.tensor(g))
        grads = [t.grad.numpy() for t in (tensors if affine else tensors[:1])]
        results.append((out.detach().numpy(), grads, type(out.grad_fn).__name__ if m is tg else out.grad_fn.name()))
    (ours, our_grads, our_name), (theirs, their_grads, their_name) = results
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    for a, e in zip(our_grads, their_grads):
        np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-11)
    assert our_name == their_name == "NativeBatchNormBackward0"


def test_second_order_gradients_match_pytorchs():
    x, w, b, g = _inputs((4, 3, 5))
    results = []
    for m in (tg, torch):
        xt, wt = m.tensor(x, requires_grad=True), m.tensor(w, requires_grad=True)
        out = m.nn.functional.batch_norm(xt, None, None, wt, None, training=True)
        (gx,) = m.autograd.grad((out * m.tensor(g)).sum(), xt, create_graph=True)
        (gx * gx).sum().backward()
        results.append((gx.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_statistics_follow_pytorchs_over_steps(momentum):
    layers = [m.nn.BatchNorm2d(3, momentum=momentum).double() for m in (tg, torch)]
    for step in range(3):
        x = _inputs((4, 3, 2, 5), seed=step)[0]
        for m, layer in zip((tg, torch), layers):
            layer(m.tensor(x)).sum().backward()
    ours, theirs = layers
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-12)


def test_float32_matches_pytorch_to_its_precision():
    x, w, b, g = (v.astype(np.float32) for v in _inputs((8, 4, 6, 6)))
    results = []
    for m in (tg, torch):
        xt = m.tensor(x * 100.0 + 50.0, requires_grad=True)  # a large mean: the float64 sums hold it
        out = m.nn.functional.batch_norm(xt, None, None, m.tensor(w), m.tensor(b), training=True)
        out.backward(m.tensor(g))
        results.append((out.detach().numpy(), xt.grad.numpy()))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=2e-5)


def test_a_replay_of_the_layer_equals_eager_at_new_inputs():
    x, w, b, _ = _inputs((5, 3, 4))

    def loss(x, w, b):
        return (tg.nn.functional.batch_norm(x, None, None, w, b, training=True) ** 2 * x).sum()

    tape = tg.record(loss, x, w, b)
    for seed in (1, 2):
        args = _inputs((5, 3, 4), seed)[:3]
        value, grads = tape.value_and_grad(*args)
        tensors = [tg.tensor(v, requires_grad=True) for v in args]
        expected = loss(*tensors)
        expected.backward()
        np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-12)
        for ours, tensor in zip(grads, tensors):
            np.testing.assert_allclose(ours.numpy(), tensor.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_bad_inputs_raise_pytorchs_errors():
    for m in (tg, torch):
        with pytest.raises(IndexError, match="Dimension out of range"):
            m.nn.functional.batch_norm(m.ones(5), None, None, training=True)
        with pytest.raises(NotImplementedError, match="\"batch_norm\" not implemented for 'Long'"):
            m.nn.functional.batch_norm(m.ones(3, 2, dtype=m.int64), None, None, training=True)
        with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
            m.nn.functional.batch_norm(m.ones(1, 2), None, None, training=True)
        with pytest.raises(RuntimeError, match="mixed dtype"):
            m.nn.functional.batch_norm(m.ones(4, 3, dtype=m.float64), None, None, m.ones(3), training=True)


@pytest.mark.parametrize("wanted", ["weight", "input"])
def test_one_gradient_alone_matches_pytorchs(wanted):
    x, w, b, g = _inputs((3, 4, 5))
    results = []
    for m in (tg, torch):
        xt, wt = m.tensor(x, requires_grad=wanted == "input"), m.tensor(w, requires_grad=wanted == "weight")
        out = m.nn.functional.batch_norm(xt, None, None, wt, None, training=True)
        out.backward(m.tensor(g))
        results.append((xt if wanted == "input" else wt).grad.numpy())
    np.testing.assert_allclose(*results, rtol=1e-10, atol=1e-12)


def _empty_batches(m) -> list:
    out = []
    for shape in [(0, 3, 2, 2), (0, 3), (0, 3, 0)]:
        layer = m.nn.BatchNorm2d(3) if len(shape) == 4 else m.nn.BatchNorm1d(3)
        x = m.ones(*shape, requires_grad=True)
        y = layer(x)
        y.sum().backward()
        stats = (layer.running_mean.tolist(), layer.running_var.tolist(), int(layer.num_batches_tracked))
        out.append((tuple(y.shape), stats, tuple(x.grad.shape), layer.weight.grad.tolist(), layer.bias.grad.tolist()))
    return out


def test_an_empty_batch_in_training_gives_an_empty_result_as_pytorch():
    """Found by a review: training on an empty batch raised "Expected more than 1 value per
    channel" (PyTorch refuses one value only), and once let through, its 0/0 statistics gave
    the weight a NaN gradient and decayed the running variance."""
    ours = _empty_batches(tg)
    for shape, stats, grad_shape, weight_grad, bias_grad in ours:
        assert shape[0] == 0 and grad_shape == shape and stats == ([0.0] * 3, [1.0] * 3, 1)
        assert weight_grad == bias_grad == [0.0] * 3
    assert ours == _empty_batches(torch)
