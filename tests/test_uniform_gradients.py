"""A sum (or mean) of more than ``SUM_IN_SWEEP`` elements sends back one number repeated, and
the backward keeps it as that number (a UNIFORM slot: tapegrad/_kernels/backward.py) while the
rules after it read it so. Each case here checks ``f(x).sum().backward()`` against
``f(x).backward(ones)``, which seeds the same gradient written out and never makes a slot
uniform: they must agree to the bit, whatever rule comes after the sum (rules that read the
number, rules the sweep writes it out for first, and rows read twice or by a hook)."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
from tapegrad._kernels.backward import SUM_IN_SWEEP
from tapegrad._ops import OPS

N = 2 * SUM_IN_SWEEP + 1  # starts a uniform gradient; not a multiple of a block; 3 rows of 2,731
F = tg.nn.functional

# f(x, y) -> a tensor of N elements (or of a shape with N * k elements)
CASES = {
    "mul": lambda x, y: x * y,
    "mul the same tensor": lambda x, y: x * x,
    "add": lambda x, y: x * 2.0 + y.exp(),
    "sub then neg": lambda x, y: -(x.sin() - y * 3.0),
    "a chain of pass-throughs": lambda x, y: (x * y + 1.0).clone() * 0.5 + x.tanh(),
    "formula ops": lambda x, y: x.exp() + y.sin() + x.cos() * 2.0 + y.tanh() + x.sigmoid(),
    "relu and abs": lambda x, y: F.relu(x) + y.abs(),
    "gelu": lambda x, y: F.gelu(x * y),
    "div and pow": lambda x, y: x / (y.abs() + 1.0) + x**3,
    "square, cube and division by a number": lambda x, y: ((x - y) ** 2) / 3.0 + (x * y) ** 3 - (y * y / 2.0) ** 1.5,
    "mse_loss unreduced": lambda x, y: F.mse_loss(x * 2.0, y, reduction="none"),
    "softmax": lambda x, y: F.softmax((x * y).reshape(3, -1), dim=1),
    "matmul": lambda x, y: x.reshape(N, 1) @ y[:4].reshape(1, 4),
    "sum along a dimension": lambda x, y: (x * y).reshape(3, -1).sum(1) * 1.0 + 0.0 * x[:3],
    "a transpose": lambda x, y: (x * y).reshape(3, -1).t() * 2.0,
    "a transpose passing it on": lambda x, y: (x.reshape(3, -1) * 2.0 - y.reshape(3, -1)).t(),
    "cat": lambda x, y: tg.cat([x * y, y.exp()]),
    "cat passing it on": lambda x, y: tg.cat([x * 2.0, -y, x]),
    "stack of one tensor twice": lambda x, y: (lambda p: tg.stack([p, p, y]) * 0.5)(x * y),
    "reshapes": lambda x, y: (x * y).reshape(3, -1).unsqueeze(0).flatten() * 2.0 + y.view(-1, 1).squeeze(),
    "a slice": lambda x, y: (x * y)[1:] * 2.0,
    "maximum": lambda x, y: tg.maximum(x, y) * 2.0,
    "a cast": lambda x, y: (x * y).double() * 2.0,
}


def _leaves(dtype, seed=0):
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(N) + 0.1 for _ in range(2))
    return [tg.tensor(v.astype(dtype), requires_grad=True) for v in values]


def _gradients(case, dtype, reduce):
    x, y = _leaves(dtype)
    out = CASES[case](x, y)
    if reduce == "sum":
        out.sum().backward()
    elif reduce == "mean":
        out.mean().backward()
    elif reduce == "ones":
        out.backward(tg.ones_like(out))
    else:  # the mean's seed, written out
        out.backward(tg.full_like(out, 1.0 / out.numel()))
    return [None if t.grad is None else t.grad.numpy() for t in (x, y)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_a_large_sum_gives_the_gradient_of_its_seed_written_out(case, dtype):
    for reduce, written_out in (("sum", "ones"), ("mean", "mean seed")):
        for ours, reference in zip(_gradients(case, dtype, reduce), _gradients(case, dtype, written_out)):
            if reference is None:
                assert ours is None
            else:
                np.testing.assert_array_equal(ours, reference, err_msg=f"{case} {reduce}")


# Of two (64, 128) leaves: elementwise ops of transposes are computed on the sources and the
# result transposed (tapegrad._record.transposed); a large sum of it passes through that transpose.
TRANSPOSED = {
    "relu of a transpose": lambda a, b: F.relu(a.t()),
    "a product of transposes": lambda a, b: a.t() * b.t(),
    "a sum of transposes, scaled": lambda a, b: (a.t() + b.t()) * 3.0,
    "a transpose of a transpose": lambda a, b: (a.t() * 2.0).t() * b,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(TRANSPOSED))
def test_a_large_sum_through_transposes(case, dtype):
    def gradients(seed_written_out):
        rng = np.random.default_rng(1)
        a, b = (tg.tensor(rng.standard_normal((64, 128)).astype(dtype), requires_grad=True) for _ in range(2))
        out = TRANSPOSED[case](a, b)
        out.backward(tg.ones_like(out)) if seed_written_out else out.sum().backward()
        return a.grad.numpy(), b.grad.numpy() if b.grad is not None else None

    for ours, reference in zip(gradients(False), gradients(True)):
        if reference is None:
            assert ours is None
        else:
            np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_retained_and_requested_intermediates_get_their_gradient_written_out(dtype):
    x, y = _leaves(dtype)
    p = x * y
    q = p * 2.0  # its gradient is uniform (its only reader is the sum)
    q.retain_grad()
    out = (q + x.exp()).sum()
    (dq, dp) = tg.autograd.grad(out, [q, p], retain_graph=True)
    np.testing.assert_array_equal(dq.numpy(), np.ones(N, dtype))
    np.testing.assert_array_equal(dp.numpy(), np.full(N, 2.0, dtype))
    np.testing.assert_array_equal(q.grad.numpy(), np.ones(N, dtype))  # autograd.grad fills it, as PyTorch's
    out.backward()
    np.testing.assert_array_equal(q.grad.numpy(), np.full(N, 2.0, dtype))
    # Against the exact value, to a few roundings of the two terms (their sum cancels: a
    # relative tolerance of the sum failed on an ulp of exp)
    xs, ys = (t.detach().numpy().astype(np.float64) for t in (x, y))
    terms = np.abs(2.0 * ys) + np.exp(xs)
    error = np.abs(x.grad.numpy().astype(np.float64) - (2.0 * ys + np.exp(xs)))
    assert (error <= 4 * np.finfo(dtype).eps * terms).all()


def test_a_hook_on_an_intermediate_sees_the_whole_gradient_and_may_replace_it():
    x, y = _leaves(np.float64)
    p = x * y
    seen = []
    p.register_hook(lambda g: seen.append(g.clone()) or g * 3.0)
    (p * 2.0).sum().backward()
    np.testing.assert_array_equal(seen[0].numpy(), np.full(N, 2.0))
    np.testing.assert_array_equal(x.grad.numpy(), 6.0 * y.detach().numpy())


def test_a_leaf_summed_directly_gets_a_gradient_of_its_own():
    x, y = _leaves(np.float32)
    x.sum().backward()
    (y * 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones(N, np.float32))
    np.testing.assert_array_equal(y.grad.numpy(), np.ones(N, np.float32))
    assert not np.shares_memory(x.grad.numpy(), y.grad.numpy())


def test_backwards_again_through_a_retained_graph_and_accumulation():
    x, y = _leaves(np.float64)
    out = (x * y + x.sin()).sum()
    for _ in range(3):
        out.backward(retain_graph=True)
    expected = 3 * (y.detach().numpy() + np.cos(x.detach().numpy()))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_replay_and_vmap_equal_eager(dtype):
    """To a few ulp: eager's forward is numpy's exp and sin, a replay's the kernels' own."""
    x, y = _leaves(dtype)
    f = CASES["formula ops"]
    (f(x, y) * y).sum().backward()
    tape = tg.record(lambda a, b: (f(a, b) * b).sum(), x.detach(), y.detach())
    first = None
    for _ in range(2):  # the second replay takes the slot layout the first worked out
        _, grads = tape.value_and_grad(x.detach(), y.detach())
        for replayed, eager in zip(grads, (x.grad, y.grad)):
            tolerance = 16 * np.finfo(dtype).eps  # five terms of magnitude up to ~5 each
            np.testing.assert_allclose(replayed.numpy(), eager.numpy(), rtol=tolerance, atol=tolerance)
        if first is not None:
            np.testing.assert_array_equal(grads[0].numpy(), first)
        first = grads[0].numpy().copy()
    _, batched = tg.func.vmap(tape.value_and_grad)(tg.stack([x.detach()] * 2), tg.stack([y.detach()] * 2))
    np.testing.assert_array_equal(batched[0][1].numpy(), first)


def test_only_computed_rows_with_one_reader_may_hold_a_uniform_gradient():
    """What makes the cases above take the uniform path: the slot layout marks the rows."""
    from tapegrad._kernels import backward
    from tapegrad._tape import resolve
    from tapegrad.autograd.engine import kernel

    x, y = _leaves(np.float32)
    p = x * y  # read by the exp and by q: not eligible
    q = p * 2.0  # read by the addition alone, which passes a uniform gradient on: eligible
    e = p.cumsum(0)  # read by the addition alone, but its rule reads its gradient element by element
    s = p.exp()  # a formula's rule reads the number (generated._incoming): eligible
    total = q + e + s  # read by the sum: eligible
    out = total.sum()
    tape = resolve(out)
    _, (rules, _, paths), _, _ = kernel()
    rows, layouts = tape.rows_array(), tape.layouts_array()
    aux = np.frombuffer(tape.aux, np.int64) if len(tape.aux) else np.zeros(0, np.int64)
    dims = np.frombuffer(tape.dims, np.int64)
    laid = backward.shared_slots(rows, layouts, dims, paths, rules, aux, np.array([out._row]))
    n = out._row + 1
    eligible = laid[n + 2 :] == backward.ELIGIBLE
    assert eligible[q._row] and eligible[total._row] and eligible[s._row]
    assert not eligible[e._row] and not eligible[p._row] and not eligible[out._row]
    assert not any(eligible[row] for row, _ in tape.leaves)
    # q and e share total's slot: total's rule marks it UNIFORM for q and writes it out for e
    assert laid[e._row] == laid[q._row] == laid[total._row]


def test_a_transpose_passes_a_uniform_gradient_on():
    from tapegrad._kernels import backward
    from tapegrad._tape import resolve
    from tapegrad.autograd.engine import kernel

    a = tg.tensor(np.ones((64, 128), np.float32), requires_grad=True)
    result = a.t() * 2.0  # computed as (a * 2.0).t(): a product, and a transpose of it
    out = result.sum()
    tape = resolve(out)
    _, (rules, _, paths), _, _ = kernel()
    rows, layouts, dims = tape.rows_array(), tape.layouts_array(), np.frombuffer(tape.dims, np.int64)
    aux = np.frombuffer(tape.aux, np.int64)
    laid = backward.shared_slots(rows, layouts, dims, paths, rules, aux, np.array([out._row]))
    eligible = laid[out._row + 3 :] == backward.ELIGIBLE
    product = tape.ints[result._row * 6 + 1]  # the row the transpose reads
    assert eligible[result._row] and eligible[product]
    assert not any(eligible[row] for row, _ in tape.leaves)


FORMULA_OPS = [op for op in OPS if op.grad_formula]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", FORMULA_OPS, ids=[op.name for op in FORMULA_OPS])
def test_every_formula_op_reads_a_uniform_gradient_as_its_seed_written_out(op, dtype):
    """The generated rules read a UNIFORM gradient from one block of its number
    (``generated._incoming``), every block from its start: a sum or mean of each formula op, at
    a size that is not a multiple of a block, against the same seed written out."""
    data = np.random.default_rng(3).uniform(*op.domain, N).astype(dtype)

    def gradient(reduce):
        x = tg.tensor(data, requires_grad=True)
        out = getattr(tg, op.name)(x * 1.0)  # a computed input: a leaf's slot is written out
        if reduce == "sum":
            out.sum().backward()
        elif reduce == "mean":
            out.mean().backward()
        else:
            out.backward(tg.full_like(out, 1.0 / N if reduce == "mean seed" else 1.0))
        return x.grad.numpy()

    for reduce, written_out in (("sum", "ones"), ("mean", "mean seed")):
        np.testing.assert_array_equal(gradient(reduce), gradient(written_out), err_msg=f"{op.name} {reduce}")
