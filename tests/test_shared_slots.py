"""Operands of a pass-through row (``a + b``, ``a + 2``, ``clone``) read nowhere else share its
gradient slot, and that row's backward does nothing (``_shared_slots`` in
tapegrad/_kernels/backward.py). A reader the sharing misses would add into a slot another row
reads, a silently wrong gradient; these cases each give such a reader, checked against gradients
worked out by hand, at a size that takes the families (1,000) and one that takes the small path
(3)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as tg

SIZES = [3, 1000]


def _leaves(n, count=2, dtype=np.float64):
    rng = np.random.default_rng(n)
    return [tg.tensor(rng.standard_normal(n).astype(dtype), requires_grad=True) for _ in range(count)]


@pytest.mark.parametrize("n", SIZES)
def test_operands_read_only_by_the_sum(n):
    x, y = _leaves(n)
    ((x * y + x.sin()) * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.detach().numpy() + np.cos(x.detach().numpy()), rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), x.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("n", SIZES)
def test_an_operand_read_twice_keeps_its_own_slot(n):
    x, y = _leaves(n)
    p = x * y
    out = ((p + x.exp()) * 3.0 + p * p).sum()  # p is read by the sum and by p * p
    out.backward()
    xv, yv = x.detach().numpy(), y.detach().numpy()
    dp = 3.0 + 2 * xv * yv
    np.testing.assert_allclose(x.grad.numpy(), dp * yv + 3.0 * np.exp(xv), rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), dp * xv, rtol=1e-12)


@pytest.mark.parametrize("n", SIZES)
def test_the_same_operand_twice(n):
    (x,) = _leaves(n, 1)
    p = x * 2.0
    ((p + p) * x).sum().backward()  # d/dx (4 x^2) = 8x
    np.testing.assert_allclose(x.grad.numpy(), 8 * x.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("n", SIZES)
def test_a_chain_of_sums(n):
    a, b, c, d = _leaves(n, 4)
    (((a * 2.0 + b * 3.0) + c.exp()) + (d * d + 1.0).clone()).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), np.full(n, 2.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full(n, 3.0))
    np.testing.assert_allclose(c.grad.numpy(), np.exp(c.detach().numpy()), rtol=1e-12)
    np.testing.assert_allclose(d.grad.numpy(), 2 * d.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("n", SIZES)
def test_an_operand_also_read_by_cat(n):
    x, y = _leaves(n)
    p = x * y
    s = p + y.exp()
    out = (s * 2.0).sum() + (tg.cat([p, p * 0.0]) * 5.0).sum()  # p read by the sum and by cat
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), 7.0 * y.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), 7.0 * x.detach().numpy() + 2 * np.exp(y.detach().numpy()), rtol=1e-12)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("hooked_first", [True, False])
def test_a_hook_on_one_operand_leaves_the_other_alone(n, hooked_first):
    (x,) = _leaves(n, 1)
    h = x * 1.0  # one tape from here: the rows' order is the order written below
    if hooked_first:
        p, q = h * 2.0, h * 3.0
    else:  # the hooked row is the later one: its hook runs before q's backward reads the sum's gradient
        q, p = h * 3.0, h * 2.0
    p.register_hook(lambda g: g * 10.0)
    (p + q).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(n, 23.0))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("hooked_first", [True, False])
def test_an_in_place_hook_on_one_operand(n, hooked_first):
    (x,) = _leaves(n, 1)
    h = x * 1.0
    if hooked_first:
        p, q = h * 2.0, h * 3.0
    else:
        q, p = h * 3.0, h * 2.0
    p.register_hook(lambda g: g.mul_(10.0))
    (p + q).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(n, 23.0))


@pytest.mark.parametrize("n", SIZES)
def test_retained_and_requested_gradients(n):
    x, y = _leaves(n)
    p, q = x * y, x.sin()
    s = p + q
    for t in (p, q, s):
        t.retain_grad()
    (s * s).sum().backward(retain_graph=True)
    two_s = 2 * s.detach().numpy()
    for t in (p, q, s):
        np.testing.assert_allclose(t.grad.numpy(), two_s, rtol=1e-12)
    gp, gx = tg.autograd.grad((s * s).sum(), (p, x))
    np.testing.assert_allclose(gp.numpy(), two_s, rtol=1e-12)
    np.testing.assert_allclose(gx.numpy(), two_s * (y.detach().numpy() + np.cos(x.detach().numpy())), rtol=1e-12)


@pytest.mark.parametrize("n", SIZES)
def test_an_operand_that_is_also_a_root(n):
    x, y = _leaves(n)
    p, q = x * 2.0, y * 3.0
    s = p + q
    tg.autograd.backward([s.sum(), p.sum()])  # p gets 1 from s and 1 as a root
    np.testing.assert_allclose(x.grad.numpy(), np.full(n, 4.0))
    np.testing.assert_allclose(y.grad.numpy(), np.full(n, 3.0))


@pytest.mark.parametrize("n", SIZES)
def test_a_custom_function_reading_an_operand(n):
    class Twice(tg.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t * 2.0

        @staticmethod
        def backward(ctx, g):
            return g * 2.0

    x, y = _leaves(n)
    p = x * 3.0
    (Twice.apply(p) + p + y).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(n, 9.0))
    np.testing.assert_allclose(y.grad.numpy(), np.full(n, 1.0))


@pytest.mark.parametrize("n", SIZES)
def test_leaves_keep_buffers_of_their_own(n):
    x, y = _leaves(n)
    (x + y).sum().backward()
    x.grad.add_(1.0)
    np.testing.assert_allclose(y.grad.numpy(), np.ones(n))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_replay_and_vmap_equal_eager(dtype):
    def f(x, y):
        return ((x * y + x.sin()) + (x * 2.0).clone()).sum()

    x, y = _leaves(1000, dtype=dtype)
    f(x, y).backward()
    tape = tg.record(f, x.detach(), y.detach())
    _, (gx, gy) = tape.value_and_grad(x.detach(), y.detach())
    np.testing.assert_array_equal(gx.numpy(), x.grad.numpy())
    np.testing.assert_array_equal(gy.numpy(), y.grad.numpy())
    batch = tg.stack([x.detach(), y.detach() * 0.5])
    per_row = tg.func.vmap(tg.func.grad(f), in_dims=(0, None))(batch, y.detach())
    np.testing.assert_allclose(per_row[0].numpy(), x.grad.numpy(), rtol=1e-6)
    expected = y.detach().numpy() + np.cos(0.5 * y.detach().numpy()) + 2.0
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12}
    np.testing.assert_allclose(per_row[1].numpy(), expected, **tolerance)


@pytest.mark.parametrize("n", SIZES)
def test_a_sum_whose_first_operand_has_no_row(n):
    # create_graph's accumulation records ``add`` with no first row (in0 = -1): the shared
    # second operand must not also receive the sum's gradient a second time.
    (x,) = _leaves(n, 1)
    y = x.exp() - x * 2.0
    (g,) = tg.autograd.grad(y, x, grad_outputs=tg.full((n,), 3.0, dtype=tg.float64), create_graph=True)
    (h,) = tg.autograd.grad((g * g).sum(), x)
    xv = x.detach().numpy()
    np.testing.assert_allclose(h.numpy(), 2 * (3 * (np.exp(xv) - 2)) * 3 * np.exp(xv), rtol=1e-12)


@pytest.mark.parametrize("n", SIZES)
def test_a_constant_operand(n):
    (x,) = _leaves(n, 1)
    c = tg.ones(n, dtype=tg.float64)
    ((c + x * 2.0) * (x * 3.0 + c)).sum().backward()
    xv = x.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (3 * xv + 1) + 3 * (1 + 2 * xv), rtol=1e-12)


def test_two_leaves_cat_hand_over_their_gradients_without_copies():
    """The loss's own one-element slot no longer tips the arena past twice the leaves'
    gradients: they are views of the sweep's arena, each its own, and correct."""
    a, b = _leaves(1000)
    tg.cat([a, b]).sum().backward()
    assert a.grad.numpy().base is not None and np.shares_memory(a.grad.numpy().base, b.grad.numpy().base)
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    np.testing.assert_array_equal(a.grad.numpy(), np.ones(1000))
    a.grad.add_(1.0)
    np.testing.assert_array_equal(b.grad.numpy(), np.ones(1000))


def test_a_replayed_tape_keeps_its_slot_layout_between_backwards():
    """Replay keeps the backward's slot layout per set of inputs asked for: later backwards
    take it directly, and give the gradients the first one gave, each its own."""
    x, y = _leaves(1000)

    def f(x, y):
        return ((x * y + x.sin()) * 2.0).sum()

    tape = tg.record(f, x.detach(), y.detach())
    _, first = tape.value_and_grad(x.detach(), y.detach())
    _, (only_y,) = tape.value_and_grad(x.detach(), y.detach(), argnums=(1,))
    _, second = tape.value_and_grad(x.detach(), y.detach())
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert not np.shares_memory(a.numpy(), b.numpy())
    np.testing.assert_array_equal(only_y.numpy(), first[1].numpy())
    np.testing.assert_allclose(first[0].numpy(), 2 * (y.detach().numpy() + np.cos(x.detach().numpy())))


# -- slots start unzeroed: assigned or zeroed when first reached (backward._claim) --------------


def test_the_suite_starts_gradient_slots_as_nan():
    """tests/conftest.py sets TAPEGRAD_POISON_GRADIENTS, so that every gradient check in the suite
    sees NaN from a rule that adds into a slot it never claimed: after the set-up, only the
    seeded root's slot holds a number."""
    from tapegrad import replay
    from tapegrad._kernels import config

    assert config.poison_gradients()
    tape = tg.record(lambda x, y: (x * y + x.sin()).sum(), np.ones(5), np.ones(5))
    tape(np.ones(5), np.ones(5))
    _, _, backward, (rules, saves, paths) = replay._kernels()
    offsets, _, grad64, touched = backward.backward_setup(
        tape.rows, tape.params, tape.layouts, tape.dims, tape.aux, tape.addresses, rules, saves, paths,
        tape.output_rows, np.ones(1),
    )  # fmt: skip
    root = int(tape.output_rows[0])
    assert touched[root] and grad64[offsets[root]] == 1.0
    reached = [offsets[root]]
    assert np.isnan(np.delete(grad64, reached)).all()
    assert touched.sum() == 1


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("first", ["assigned", "added"])
def test_an_operand_first_reached_by_either_kind_of_rule(n, first):
    """x's slot first reached by a rule that assigns (``*``) and then by one that zeroes its slot
    the first time and adds (a division by a number), or the other way round (rows run
    backwards: the later row reaches x first); y's by the product only. With the suite's
    NaN-filled arenas, a missed claim would show as NaN."""
    x, y = _leaves(n)
    xv, yv = x.detach().numpy(), y.detach().numpy()
    out = (x / 3.0 + x * y) if first == "assigned" else (x * y + x / 3.0)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), yv + 1.0 / 3.0, rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), xv, rtol=1e-12)


def test_the_unpoisoned_sweeps_pass_the_gradient_tests():
    """The suite's arenas start as NaN; a user's small arenas are zeroed whole instead, and the
    small-row path then adds without claiming (backward.ZERO_WHOLE). These gradient tests once
    more that way, in a new interpreter without TAPEGRAD_POISON_GRADIENTS."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = [
        "tests/test_shared_slots.py",
        "tests/test_hooks.py",
        "tests/test_autograd.py",
        "tests/test_hook_semantics.py",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files, "-k", "not nan and not unpoisoned"],
        env={**os.environ, "TAPEGRAD_POISON_GRADIENTS": "0"},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]


def test_tapes_of_the_same_rows_in_other_shapes_get_gradients_of_their_own_shape():
    """A backward keeps what it worked out for a tape's structure (``engine._plan``: the slot
    layout, where each leaf's gradient lands) for the next tape of the same rows. (4, 8), (8, 4)
    and (2, 16) make the same ops on as many elements: each keeps its own shape."""
    for shape in [(4, 8), (8, 4), (4, 8), (2, 16)]:
        a = tg.ones(*shape, requires_grad=True)
        w = tg.arange(32.0).reshape(shape)
        (a * w).sum().backward()
        assert a.grad.shape == shape
        np.testing.assert_array_equal(a.grad.numpy(), w.numpy())


def test_a_leaf_frozen_between_two_steps_of_one_structure_gets_no_gradient():
    w = tg.ones(3, requires_grad=True)
    b = tg.ones(3, requires_grad=True)
    (w * 2 + b).sum().backward()
    assert w.grad is not None and b.grad is not None
    w.grad = b.grad = None
    loss = (w * 2 + b).sum()
    b.requires_grad_(False)
    loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 2.0, 2.0])
    assert b.grad is None
