"""``vmap(tape)`` and ``vmap(tape.value_and_grad)``: a tape recorded once, replayed over a batch
with no recording, against the tape's own per-slice calls and eager autograd."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from tapegrad.func import vmap, vmap_stats
from tapegrad.replay import GuardError

RNG = np.random.default_rng(7)


def _loss(w, x):
    return ((x @ w).tanh() ** 2).sum() + (x**3).sum()


def _per_slice(tape, arrays, dims, **kwargs):
    """``tape.value_and_grad`` slice by slice, stacked: the reference."""
    batch = next(len(a) for a, d in zip(arrays, dims) if d is not None)
    values, grads = [], []
    for i in range(batch):
        value, grad = tape.value_and_grad(*[a[i] if d is not None else a for a, d in zip(arrays, dims)], **kwargs)
        values.append(value.numpy())
        grads.append([g.numpy() for g in (grad if isinstance(grad, tuple) else (grad,))])
    return np.stack(values), [np.stack(column) for column in zip(*grads)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_value_and_grad_over_a_batch_equals_each_slice(dtype):
    w = RNG.normal(size=(3, 4)).astype(dtype)
    X = RNG.normal(size=(9, 3)).astype(dtype)
    tape = tg.record(_loss, w, X[0])
    values, (gw, gx) = vmap(tape.value_and_grad, in_dims=(None, 0))(w, X)
    stats = vmap_stats()
    assert stats["path"] == "tape-replay" and stats["recordings"] == 0 and stats["rerecords"] == 0
    expected_values, (expected_gw, expected_gx) = _per_slice(tape, [w, X], [None, 0])
    assert values.dtype == tg.float32 if dtype == np.float32 else tg.float64
    assert gw.shape == (9, 3, 4) and gx.shape == (9, 3)
    np.testing.assert_array_equal(values.numpy(), expected_values)  # one kernel, the same sums
    np.testing.assert_array_equal(gw.numpy(), expected_gw)
    np.testing.assert_array_equal(gx.numpy(), expected_gx)
    # and eager autograd, slice by slice
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for i in range(9):
        wt, xt = tg.tensor(w, requires_grad=True), tg.tensor(X[i], requires_grad=True)
        _loss(wt, xt).backward()
        np.testing.assert_allclose(gw[i].numpy(), wt.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(gx[i].numpy(), xt.grad.numpy(), rtol=tol, atol=tol)


def test_forward_only_in_dims_out_dims_argnums_and_chunks():
    w = RNG.normal(size=(3, 4))
    X = RNG.normal(size=(3, 6))  # the batch in dim 1
    tape = tg.record(lambda w, x: ((x @ w).tanh(), (x * 2).sum()), w, X[:, 0])
    outputs = vmap(tape, in_dims=(None, 1))(w, X)
    for i in range(6):
        a, b = tape(w, X[:, i])
        np.testing.assert_array_equal(outputs[0][i].numpy(), a.numpy())
        np.testing.assert_array_equal(outputs[1][i].numpy(), b.numpy())
    seeds = (np.ones(4), np.array(0.5))
    (moved, total), gw = vmap(tape.value_and_grad, in_dims=(None, 1), out_dims=((1, 0), 0), chunk_size=4)(
        w, X, grad_outputs=seeds, argnums=0
    )
    assert moved.shape == (4, 6) and total.shape == (6,) and gw.shape == (6, 3, 4)
    for i in range(6):
        (a, _), g = tape.value_and_grad(w, X[:, i], grad_outputs=seeds, argnums=0)
        np.testing.assert_array_equal(moved[:, i].numpy(), a.numpy())
        np.testing.assert_array_equal(gw[i].numpy(), g.numpy())
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        vmap(tape.value_and_grad, in_dims=(None, 1))(w, X)


def test_a_scalar_tape_runs_as_a_register_program():
    def graph(x):
        nodes = list(x)
        for k in range(30):
            nodes.append(F.softplus(nodes[-3]) * nodes[-2] if k % 2 else (nodes[-1] - nodes[-4]).tanh())
        return nodes[-1] + nodes[-5]

    X = RNG.normal(size=(40, 6))
    tape = tg.record(graph, X[0])
    values, (grads,) = vmap(tape.value_and_grad)(X)
    expected_values, (expected_grads,) = _per_slice(tape, [X], [0])
    np.testing.assert_allclose(values.numpy(), expected_values, rtol=1e-14)
    np.testing.assert_allclose(grads.numpy(), expected_grads, rtol=1e-13, atol=1e-15)


def test_a_failed_guard_names_the_slice_or_records_again():
    def branchy(x):
        return x * 2 if x.sum() > 0 else -x.exp()

    X = np.array([[1.0, 2.0], [-3.0, 1.0], [0.5, 0.5], [-1.0, -1.0]])
    strict = tg.record(branchy, X[0])
    with pytest.raises(GuardError, match="slice 1 of the batch"):
        vmap(strict)(X)
    again = tg.record(branchy, X[0], rerecord=True)
    out = vmap(again)(X)
    np.testing.assert_allclose(out.numpy(), np.where(X.sum(1, keepdims=True) > 0, X * 2, -np.exp(X)))
    assert vmap_stats()["rerecords"] == 2
    values, (grads,) = vmap(again.value_and_grad)(X, grad_outputs=np.ones(2))
    np.testing.assert_allclose(grads.numpy(), np.where(X.sum(1, keepdims=True) > 0, 2.0, -np.exp(X)))


def test_bad_calls_raise_the_tapes_errors():
    w, X = RNG.normal(size=(3, 4)), RNG.normal(size=(5, 3))
    tape = tg.record(_loss, w, X[0])
    with pytest.raises(ValueError, match="recorded as shape"):
        vmap(tape.value_and_grad, in_dims=(None, 0))(w, RNG.normal(size=(5, 2)))
    with pytest.raises(TypeError, match="unexpected keyword argument 'create_graph'"):
        vmap(tape.value_and_grad, in_dims=(None, 0))(w, X, create_graph=True)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        vmap(tape, in_dims=(None, 0))(w, X, argnums=0)
    with pytest.raises(IndexError, match="names no input"):
        vmap(tape.value_and_grad, in_dims=(None, 0))(w, X, argnums=2)
    with pytest.raises(ValueError, match="same size in the mapped dimension"):
        vmap(tape.value_and_grad, in_dims=(0, 0))(np.stack([w] * 4), X)
    with pytest.raises(RuntimeError, match="not differentiable by autograd"):  # the eager loop: the tape refuses
        vmap(tape, in_dims=(None, 0))(tg.tensor(w, requires_grad=True), X)


def _sample_loss(w1, b1, w2, b2, x, y):
    return F.cross_entropy(F.linear(F.linear(x[None], w1, b1).tanh(), w2, b2), y[None])


# (features, hidden, classes, batch, chunk_size). The larger model's first layer (2,048 weights)
# is most of the gradient arena: its per-slice gradients are computed where they are returned
# (the kernel's ``direct``), slices last to first, each slice's arena over the block of the slice
# before it; chunks and threads split the slices.
@pytest.mark.parametrize(
    "sizes", [(8, 16, 3, 70, None), (32, 64, 4, 150, None), (32, 64, 4, 150, 7)], ids=["small", "large", "chunks"]
)
def test_per_sample_gradients_with_labels_equal_eager_backwards(sizes):
    features, hidden, classes, batch, chunk_size = sizes
    tg.manual_seed(3)
    model = tg.nn.Sequential(tg.nn.Linear(features, hidden), tg.nn.Tanh(), tg.nn.Linear(hidden, classes)).double()
    params = [p.detach().numpy() for p in model.parameters()]
    X, Y = RNG.normal(size=(batch, features)), RNG.integers(0, classes, batch)
    tape = tg.record(_sample_loss, *params, X[0], Y[0])
    mapped = vmap(tape.value_and_grad, in_dims=(None,) * 4 + (0, 0), chunk_size=chunk_size)
    previous = tg.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            tg.set_num_threads(threads)
            grads = mapped(*params, X, Y)[1]
            assert grads[4] is not None and grads[5] is None  # the labels: no gradient, as the tape gives
            results.append(grads[:4])
            again = mapped(*params, X, Y, argnums=(0, 1, 2, 3))[1]  # reused result pages, same values
            for one, two in zip(results[-1], again):
                np.testing.assert_array_equal(one.numpy(), two.numpy())
    finally:
        tg.set_num_threads(previous)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one.numpy(), two.numpy())
    for i in range(batch):
        model.zero_grad()
        F.cross_entropy(model(tg.tensor(X[i : i + 1])), tg.tensor(Y[i : i + 1])).backward()
        for got, p in zip(results[0], model.parameters()):
            np.testing.assert_allclose(got[i].numpy(), p.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_the_tapes_checks_hold_for_every_slice():
    X = np.ones((3, 2))
    tape = tg.record(lambda x, s: x * s, X[0], np.array(2.0))
    with pytest.raises(TypeError, match="recorded with 2 inputs, got 1"):  # not the last replay's s
        vmap(tape)(X)
    with pytest.raises(TypeError, match="recorded with 2 inputs, got 3"):
        vmap(tape, in_dims=(0, None, None))(X, np.array(2.0), np.array(7.0))
    # Integers held in float64 by a replay: arithmetic beyond int32's range, and int64 inputs
    # beyond 2**53, in any slice, raise as the tape's own calls do.
    wrapping = tg.record(lambda x, k: x * (k * 100000).double(), X[0, :2], np.array([1, 1], np.int32))
    K = np.array([[1, 1], [1, 100000]], np.int32)
    with pytest.raises(GuardError, match="slice 1 of the batch"):
        vmap(wrapping)(X[:2], K)
    np.testing.assert_array_equal(vmap(wrapping)(X[:2], K[[0, 0]]).numpy(), np.full((2, 2), 100000.0))
    rounding = tg.record(lambda x, k: x * (k - 2**52).double(), X[0], np.array([1, 1], np.int64))
    with pytest.raises(ValueError, match="in slice 2"):
        vmap(rounding)(X, np.array([[1, 1], [1, 1], [1, 2**53 + 1]]))
    with pytest.raises(RuntimeError, match="got 1 tensors and 2 gradients"):
        vmap(tape.value_and_grad, in_dims=(0, None))(X, np.array(2.0), grad_outputs=(np.ones(2), np.ones(2)))


def test_seedings_kept_per_tape_are_few():
    # Each seeding of the batch kernel is a whole gradient arena: a vmap called with new
    # grad_outputs on every call must not keep one per call.
    w, X = RNG.normal(size=(30, 30)), RNG.normal(size=(4, 30))
    tape = tg.record(lambda w, x: (x @ w).tanh(), w, X[0])
    mapped = vmap(tape.value_and_grad, in_dims=(None, 0))
    for _ in range(12):
        seed = RNG.normal(size=30)
        _, (gw, _) = mapped(w, X, grad_outputs=seed)
        _, (expected, _) = tape.value_and_grad(w, X[3], grad_outputs=seed)
        np.testing.assert_allclose(gw[3].numpy(), expected.numpy(), rtol=1e-13)
    assert sum(key[0] == "seeded" for key in tape._batch_plans) <= 4


def test_run_parts_raises_once_every_part_has_ended():
    import time

    from tapegrad import _threads

    ended = []

    def run(lo, hi):
        if lo == 0:
            raise ValueError("part 0")
        time.sleep(0.05)
        ended.append(lo)

    with pytest.raises(ValueError, match="part 0"):
        _threads.run_parts(run, [0, 1, 2, 3])
    assert sorted(ended) == [1, 2]  # the others wrote what they write before the caller went on
