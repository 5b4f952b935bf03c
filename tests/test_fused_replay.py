"""Replays of large elementwise runs a block at a time (``tapegrad/_kernels/fused.py``).

A fused replay must give the very bits of the row-at-a-time sweep (each row runs its own kernel
on each block), for every op a group takes, and must leave no value that something reads after
the group computed only block by block.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from tapegrad import _ops
from tapegrad._examples import CASES
from tapegrad._kernels import forward, fused

from .gradcheck import sample

SHAPE = (521, 509)  # 265,189 elements: above both thresholds, not a whole number of blocks
assert SHAPE[0] * SHAPE[1] >= fused.BACKWARD_SMALLEST >= fused.SMALLEST and SHAPE[0] * SHAPE[1] % fused.BLOCK


def _opcode(name: str) -> int:
    return next(i for i, op in enumerate(_ops.OPS) if op.name == name)


def _grouped_ops() -> list:
    """The op table's ops whose replay rule a group takes."""
    names = []
    for op in _ops.OPS:
        rule = forward.RULES[op.replay_rule]
        if forward.PATHS[rule] in fused._ELEMENTWISE_PATHS and rule != forward.ASSIGN:
            names.append(op.name)
    return names


# Ops without a "<name>[2, 3]" case of their own, as the user writes them.
_CALLS = {
    "add": (lambda x, y: x + y, 2),
    "sub": (lambda x, y: x - y, 2),
    "mul": (lambda x, y: x * y, 2),
    "div": (lambda x, y: x / (y.abs() + 0.5), 2),
    "pow": (lambda x, y: (x.abs() + 0.5) ** y, 2),
    "add_scalar": (lambda x: x + 2.5, 1),
    "sub_scalar": (lambda x: x - 2.5, 1),
    "rsub_scalar": (lambda x: 2.5 - x, 1),
    "mul_scalar": (lambda x: x * 1.5, 1),
    "div_scalar": (lambda x: x / 1.5, 1),
    "pow_scalar": (lambda x: x**3 + x**2 + x.abs() ** 0.5 + (x.abs() + 0.5) ** -1 + x.abs() ** 1.5, 1),
    "rpow_scalar": (lambda x: 2.0**x, 1),
    "elu": (lambda x: F.elu(x, alpha=0.7), 1),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), 1),
    "clone": (lambda x: x.clone(), 1),
    "detach": (lambda x: x * x.detach(), 1),
}
# Never inside tapegrad.record: a second row of an eager leaf, made when two graphs join.
_NOT_RECORDED = {"shared_leaf"}
# Rows no gradient goes through (a zero derivative almost everywhere, or none at all).
_NO_GRADIENT = {"detach", "floor", "round", "sign"}


def _call_of(name: str):
    if name in _CALLS:
        return _CALLS[name]
    case = next(case for case in CASES if case.name == f"{name}[2, 3]")
    return case.call, len(case.shapes), case.domain


def _fused_and_plain(fn, arrays):
    """The same function recorded twice: ``_row_by_row`` replays the second without groups."""
    return tg.record(fn, *arrays), tg.record(fn, *arrays)


def _row_by_row(tape, *inputs, **kwargs):
    """``tape.value_and_grad`` with no groups, forward or backward: its plans, worked out on
    a tape's first replay (and on a backward's first for each ``argnums``), found none."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused, "SMALLEST", 1 << 62)
        patch.setattr(fused, "BACKWARD_SMALLEST", 1 << 62)
        return tape.value_and_grad(*inputs, **kwargs)


def _backward_groups(tape, argnums=None):
    positions = tape._all_positions if argnums is None else tape._positions(argnums)
    return tape._plans[positions]["fused"]


def _assert_same_bits(got, want):
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape
        assert np.array_equal(g.view(f"u{g.itemsize}"), w.view(f"u{w.itemsize}")), np.max(np.abs(g - w))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(set(_grouped_ops()) - _NOT_RECORDED))
def test_every_grouped_op_replays_the_bits_of_the_row_at_a_time_sweep(name, dtype):
    call, arity, *domain = _call_of(name)
    rng = np.random.default_rng(3)
    low, high = domain[0] if domain else (-2.0, 2.0)
    arrays = [a.astype(dtype) for a in sample(rng, [SHAPE] * arity, (low, high))]
    # the op's row between two others: a group of at least three rows, the op's transient or kept
    fn = lambda *xs: (call(*[x * 1.0 for x in xs]) * 1.5 + 0.25).sum()  # noqa: E731
    fused_tape, plain = _fused_and_plain(fn, arrays)
    at = [a.astype(dtype) for a in sample(rng, [SHAPE] * arity, (low, high))]
    value, grads = fused_tape.value_and_grad(*at)
    want_value, want_grads = _row_by_row(plain, *at)
    assert plain._fused is None and _backward_groups(plain) is None
    plan = fused_tape._fused
    opcodes = set((fused_tape.rows[plan.members, 0] & forward.OPCODE_MASK).tolist())
    assert _opcode(name) in opcodes, f"no row of {name} in a group"
    backward_plan = _backward_groups(fused_tape)
    if name not in _NO_GRADIENT:
        opcodes = set((fused_tape.rows[backward_plan.members, 0] & forward.OPCODE_MASK).tolist())
        assert _opcode(name) in opcodes, f"no row of {name} in a backward group"
    _assert_same_bits([value], [want_value])
    _assert_same_bits(grads, want_grads)


def _big_inputs(dtype=np.float32, size=SHAPE):
    rng = np.random.default_rng(0)
    return rng.standard_normal(size).astype(dtype), rng.standard_normal(size).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_row_only_its_group_reads_is_computed_a_block_at_a_time(dtype):
    x, y = _big_inputs(dtype)
    tape = tg.record(lambda x, y: (x * y + x.sin()).sum(), x, y)
    value, (gx, gy) = tape.value_and_grad(x, y)
    plan = tape._fused
    assert plan is not None and len(plan.groups) == 1
    product, sine, total = plan.members.tolist()
    assert not plan.kept.any()  # x * y, sin x and their sum: no one reads them after the group
    assert plan.sums.tolist() == [total + 1]  # the sum adds each block as it is made
    # A transient row's slot holds its last block, at its start, and nothing after it.
    slot = tape._slot(product)
    slot[...] = 7.0
    tape.value_and_grad(x, y)
    assert (slot[fused.BLOCK :] == 7.0).all()
    wide = x.astype(np.float64)
    assert value.item() == pytest.approx(float((wide * y + np.sin(wide)).sum()), rel=1e-5)
    np.testing.assert_allclose(gx.numpy(), y + np.cos(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(gy.numpy(), x)


def test_a_row_read_after_its_group_is_written_whole():
    x, y = _big_inputs(np.float64)
    w = np.random.default_rng(1).standard_normal((SHAPE[1], 3))

    def fn(x, y, w):
        product = x * y
        shifted = (product + 1.0).tanh()  # tanh saves its result: its backward reads it
        return product, shifted @ w, (shifted * 2.0).sum()  # an output, a matmul's operand

    fused_tape, plain = _fused_and_plain(fn, (x, y, w))
    seeds = (np.ones(SHAPE), np.ones((SHAPE[0], 3)), np.array(1.0))
    got = fused_tape.value_and_grad(x + 1, y, w, grad_outputs=seeds)
    want = _row_by_row(plain, x + 1, y, w, grad_outputs=seeds)
    _assert_same_bits(got[0], want[0])
    _assert_same_bits(got[1], want[1])
    plan = fused_tape._fused
    kept = dict(zip(plan.members.tolist(), plan.kept.tolist()))
    rows = {name: fused_tape.rows[plan.members, 0] & forward.OPCODE_MASK == _opcode(name) for name in ("mul", "tanh")}
    product, tanh = plan.members[rows["mul"]][0], plan.members[rows["tanh"]][0]
    assert kept[product] and kept[tanh]  # an output; read by the matmul (and its own backward)
    assert sum(kept.values()) == len(kept) - 1  # ``shifted * 2.0``: only the sum reads it
    np.testing.assert_array_equal(got[0][0].numpy(), (x + 1) * y)


def test_a_value_a_backward_rule_reads_is_kept():
    x, y = _big_inputs(np.float64)
    tape = tg.record(lambda x, y: ((x * y) * (x + y)).sum(), x, y)
    _, (gx, gy) = tape.value_and_grad(x, y)
    plan = tape._fused
    # the last product's backward reads both its operands; only the sum reads the product
    assert plan.kept.tolist() == [True, True, False]
    np.testing.assert_allclose(gx.numpy(), y * (x + y) + x * y, rtol=1e-12)
    np.testing.assert_allclose(gy.numpy(), x * (x + y) + x * y, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_sums_and_means_of_a_group(dtype):
    x, y = _big_inputs(dtype, (300_001,))

    def fn(x, y):
        z = (x * y).exp()
        return z.sum(), (z - y).mean(), (x - 1.0).abs().sum()

    fused_tape, plain = _fused_and_plain(fn, (x, y))
    seeds = (np.array(1.0, dtype), np.array(2.0, dtype), np.array(0.5, dtype))
    got = fused_tape.value_and_grad(y, x, grad_outputs=seeds)
    want = _row_by_row(plain, y, x, grad_outputs=seeds)
    # float64: the same compensated blocks of 128, carried over; float32: the same blocks of
    # 4,096 (``normalization.total``), added in order
    assert len(fused_tape._fused.sums) == 3
    _assert_same_bits(got[0], want[0])
    _assert_same_bits(got[1], want[1])
    eager = [np.sum(np.exp(y.astype(np.float64) * x)), np.mean(np.exp(y.astype(np.float64) * x) - x)]
    np.testing.assert_allclose([t.item() for t in got[0][:2]], eager, rtol=1e-6 if dtype == np.float32 else 1e-13)


def test_small_rows_replay_row_by_row():
    x, y = _big_inputs(size=(fused.SMALLEST - 1,))
    tape = tg.record(lambda x, y: (x * y + x.sin()).sum(), x, y)
    tape.value_and_grad(x, y)
    assert tape._fused is None


def test_a_family_loaded_during_a_group_runs_the_group_again():
    x, y = _big_inputs()
    fn = lambda x, y: ((x * y).cos() * 3.0).sum()  # noqa: E731
    fused_tape, plain = _fused_and_plain(fn, (x, y))
    fused_tape.value_and_grad(x, y)  # loads what the group uses
    slot = 2 * (forward.FIRST_GENERATED + forward.RULES["cos"] - forward.GENERATED_BASE)
    table = forward.FAMILIES.addresses
    address = int(table[slot])
    table[slot] = 0  # as in a process where cos was not used yet
    try:
        got = fused_tape.value_and_grad(y, x)
    finally:
        assert table[slot] != 0  # loaded again by the sweep around the group
        table[slot] = address
    _assert_same_bits([got[0]], [_row_by_row(plain, y, x)[0]])


def test_a_guard_on_a_group_sum_and_a_pickled_tape(tmp_path):
    x, y = _big_inputs(np.float64)

    def fn(x, y):
        product = x * y
        if (product + 1.0).sum() > 0:  # a guard between two groups
            return (product.sin() * 2.0).sum()
        return (product.cos() * 2.0).sum()

    tape = tg.record(fn, x, y)
    shipped = pickle.loads(pickle.dumps(tape))
    tape.save(tmp_path / "tape.tg")
    loaded = tg.load_tape(tmp_path / "tape.tg")
    positive = np.abs(x) + 0.1, np.abs(y) + 0.1
    want = (np.sin(positive[0] * positive[1]) * 2.0).sum()
    for replayed in (tape, shipped, loaded):
        value, _ = replayed.value_and_grad(*positive)
        assert value.item() == pytest.approx(want, rel=1e-12)
        assert len(replayed._fused.groups) == 2
        with pytest.raises(tg.GuardError):
            replayed.value_and_grad(-3.0 * positive[0], positive[1])


def test_a_backward_group_gives_each_argnums_the_row_by_row_gradients():
    x, y = _big_inputs(np.float64)
    fn = lambda x, y: ((x * 2.0 - y) ** 3 + (x / 1.5).neg() + x**2 + (x * y).sin()).mean()  # noqa: E731
    fused_tape, plain = _fused_and_plain(fn, (x, y))
    for argnums in (None, 0, 1, (1, 0)):
        got = fused_tape.value_and_grad(y, x, argnums=argnums)
        want = _row_by_row(plain, y, x, argnums=argnums)
        grads = (got[1],) if isinstance(argnums, int) else got[1]
        _assert_same_bits(grads, (want[1],) if isinstance(argnums, int) else want[1])
        assert _backward_groups(fused_tape, argnums) is not None


def test_a_gradient_from_above_a_backward_group_is_added_to():
    x, y = _big_inputs()
    # x's gradient from x.sum() is in its slot before the sweep reaches the group below it
    fn = lambda x, y: (x * y + x.sin()).sum() + x.sum() * 2.0 + (y.exp() * x).sum()  # noqa: E731
    fused_tape, plain = _fused_and_plain(fn, (x, y))
    got = fused_tape.value_and_grad(y, x)
    _assert_same_bits(got[1], _row_by_row(plain, y, x)[1])
    assert len(_backward_groups(fused_tape).groups) == 2
    np.testing.assert_allclose(got[1][0].numpy(), x + np.cos(y) + 2.0 + np.exp(x), rtol=1e-5, atol=1e-5)


def _eager_gradients(fn, arrays, fused_backward: bool):
    """The inputs' ``.grad`` after ``fn(*inputs).backward()``, eager, with the backward's
    groups or without (the engine keeps them per tape structure: its plans are dropped)."""
    from tapegrad.autograd import engine

    inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
    with pytest.MonkeyPatch.context() as patch:
        engine._PLANS.clear()
        if not fused_backward:
            patch.setattr(engine, "FUSED_SMALLEST", 1 << 62)
        fn(*inputs).backward()
        engine._PLANS.clear()
    return [x.grad.numpy() for x in inputs]


def test_the_engine_s_threshold_is_the_kernels():
    from tapegrad.autograd import engine

    assert engine.FUSED_SMALLEST == fused.BACKWARD_SMALLEST


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_an_eager_backward_by_groups_gives_the_row_by_row_gradients(dtype):
    x, y = _big_inputs(dtype)
    w = np.random.default_rng(4).standard_normal(SHAPE[1]).astype(dtype)

    def fn(x, y, w):  # a precomputed derivative (sinh), a product read with a period (x * w)
        return ((x * y + x.sin()) * 1.5 - (y / 3.0).sinh() + (x * w).tanh() ** 2).mean()

    _assert_same_bits(_eager_gradients(fn, (x, y, w), True), _eager_gradients(fn, (x, y, w), False))
    from tapegrad.autograd import engine

    inputs = [tg.tensor(a, requires_grad=True) for a in (x, y, w)]
    out = fn(*inputs)
    engine._PLANS.clear()
    plan, structure = engine._structure(tg._tape.resolve(out), np.array([out._row]))
    rows, _, layouts = structure[:3]
    rules, _, paths = engine.kernel()[1]
    groups = fused.backward_plan(rows, layouts, rules, paths)
    names = [_ops.OPS[int(op) & forward.OPCODE_MASK].name for op in rows[groups.members, 0]]
    assert "sin" in names and "sinh" in names
    period = [
        r for r in range(len(rows)) if rows[r, 3] and _ops.OPS[int(rows[r, 0]) & forward.OPCODE_MASK].name == "mul"
    ]
    assert period and not set(period) & set(groups.members.tolist())  # x * w reads w with a period


def test_an_eager_backward_by_groups_frees_its_rows():
    x, y = _big_inputs()
    xt, yt = tg.tensor(x, requires_grad=True), tg.tensor(y, requires_grad=True)
    loss = (xt * yt + xt.sin()).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()
    loss = (xt * yt + xt.sin()).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(xt.grad.numpy(), 3 * (y + np.cos(x)), rtol=1e-5, atol=1e-5)


def test_a_float32_sum_whose_terms_cancel_has_the_row_by_row_bits():
    # Two large terms that cancel, in different blocks: the float64 sum's order shows in the
    # float32 result (a group's sum by blocks rounded one ulp away from the whole row's, summed
    # in any order; ``normalization.total`` now sums every row by the group's blocks)
    x = np.random.default_rng(1).standard_normal(1 << 17).astype(np.float32)
    x[5], x[-7] = 3e12, -3e12
    y = np.ones_like(x)
    fused_tape, plain = _fused_and_plain(lambda x, y: (x * y).sum(), (x, y))
    _assert_same_bits([fused_tape(x, y)], [_row_by_row(plain, x, y)[0]])
    eager = (tg.tensor(x) * tg.tensor(y)).sum()
    _assert_same_bits([fused_tape(x, y)], [eager])


def test_a_guard_on_a_sum_of_a_group_row_weighs_its_terms():
    # A replay refuses a truth within rounding of the terms it sums (``forward._undecided``
    # reads the summand whole): a transient summand held its last block only, and the guard
    # passed on a sum of about 1e-10 made of terms of order 1.
    def fn(x, y):
        total = (x * y).sum()
        return total * 2.0 if total > 0 else total * 3.0

    n = 1 << 17
    tape = tg.record(fn, np.ones(n), np.full(n, 1e-3))
    half = np.random.default_rng(0).standard_normal(n // 2)
    x = np.concatenate([half, -half])
    x[0] += 1e-10
    with pytest.raises(tg.GuardError, match="within rounding"):
        tape(x, np.ones(n))
    plan = tape._fused
    assert plan.kept.all()  # the summand: the guard's check reads it whole
