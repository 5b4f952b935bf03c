"""The short recording path (``tapegrad/_record.py``) against the general one it skips.

Eager ops on leaves, constants and recorded results take the short path; everything else the
general one. Both must write the same tape: the same rows, saved values, version checks and
gradients. Forcing the general path is one counter: while ``special_modes`` is non-zero the short
path stands aside (it is what a thread with grad mode off or a running ``tapegrad.record`` sets).
"""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from tapegrad import _grad_mode, _tape
from tapegrad._linalg import linear_short
from tapegrad._ops import OPS
from tapegrad._tape import OPCODE_MASK, address_of


def _mlp(x, w1, b1, w2, b2):
    o = (x @ w1 + b1).tanh() @ w2 + b2
    return (o * o).mean()


def _classifier(x, w1, b1, w2, b2):
    logits = F.linear(F.relu(F.linear(x, w1.t(), b1)), w2.t(), b2)
    return F.cross_entropy(logits, tg.tensor([0, 2, 1, 2]))


def _mixed(x, w1, b1, w2, b2):
    h = (x @ w1).sigmoid() * b1 - b1 / 3.0  # broadcast on both sides, a scalar op
    return (h.exp() + h * h).sum(1).mean() + (w2 @ b2.unsqueeze(1)).sum()


def _layers(x, w1, b1, w2, b2):  # nn.Linear's weights: leaves of shape (out, in)
    return F.linear(F.relu(F.linear(x, w1, b1)), w2, b2).square().mean()


def _scalars(x, w1, b1, w2, b2):  # binary ops of two results on one tape (``_record._same_tape``)
    h = (x @ w1 + b1).tanh()
    a, b, c = list(h[0])[:3]  # 0-d views of a result
    p = a * b - c / (a + 2.0)
    q = (p * p + 1.0) ** (b - c) + p * a
    row = h[1] * h[2] - h[3]  # 1-d views
    d, e = list(row)[:2]  # views of a result (``_views._unbound_rows``)
    f, g = list(F.softmax(tg.stack([a, b, c]), 0))[:2]  # a scalar graph's ops (``_record.record``)
    return q * d / e + (row * row).sum() * (w2 @ b2).sum() + F.softplus(f).sin() * g


PROGRAMS = [_mlp, _classifier, _mixed, _layers, _scalars]


def _inputs(program, dtype):
    rng = np.random.default_rng(0)
    shapes = {
        _mlp: [(4, 3), (3, 5), (5,), (5, 2), (2,)],
        _classifier: [(4, 3), (3, 5), (5,), (5, 3), (3,)],
        _mixed: [(4, 3), (3, 5), (5,), (2, 3), (3,)],
        _scalars: [(4, 3), (3, 5), (5,), (5, 2), (2,)],
        _layers: [(4, 3), (5, 3), (5,), (2, 5), (2,)],
    }[program]
    x = tg.tensor(rng.standard_normal(shapes[0]), dtype=dtype)
    params = [tg.tensor(rng.standard_normal(shape), dtype=dtype, requires_grad=True) for shape in shapes[1:]]
    return x, params


def _run(program, dtype, general: bool):
    x, params = _inputs(program, dtype)
    if general:
        _grad_mode.special_modes[0] += 1
    try:
        loss = program(x, *params)
    finally:
        if general:
            _grad_mode.special_modes[0] -= 1
    tape = _tape.resolve(loss)
    rows, shapes, saved, versions, bypassed = _described(tape)
    shown = (bypassed, tape.node_names)
    loss.backward()
    return rows, shapes, saved, versions, float(loss), [p.grad.numpy() for p in params], loss.grad_fn.name(), shown


def _described(tape) -> tuple:
    """A tape's rows, their layouts' (dtype code, shape), the rows saved, the version checks and
    the views read through their sources, as two recordings of one program compare them."""
    rows = tape.rows_array().copy()
    # Layouts compared by what they say, not by their numbers: a tape's first layout numbers come
    # from a template shared across tapes, which restarts when full, so the same program can
    # number them differently from one tape to the next.
    codes = tape.layouts_array()[rows[:, 4], 0].tolist()
    shapes = [(code, tape.shape_of(row)) for row, code in zip(range(tape.n), codes)]
    versions = {
        row: [(version, saved_row) for _, version, saved_row in entries] for row, entries in tape.versions.items()
    }
    return rows, shapes, sorted(tape.saved), versions, sorted(tape.bypassed or ())


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.__name__)
def test_short_and_general_paths_write_the_same_tape(program, dtype, monkeypatch):
    # Rows compared as recorded: the stress pass (TAPEGRAD_COLLECT_ROWS=2) collects at every
    # short-path op, dropping rows no tensor reaches, which the general path never does.
    monkeypatch.setattr(_tape, "COLLECT_ROWS", 1 << 62)
    short = _run(program, dtype, general=False)
    _tape._template().restart()  # the two tapes number their layouts differently, as they may in a long run
    general = _run(program, dtype, general=True)
    rows, shapes, saved, versions, value, grads, name, shown = short
    np.testing.assert_array_equal(rows[:, :4], general[0][:, :4])  # opcode, operands, integer parameter
    assert shapes == general[1]
    assert saved == general[2]
    assert versions == general[3]
    assert value == general[4]
    for grad, other in zip(grads, general[5]):
        np.testing.assert_array_equal(grad, other)
    assert name == general[6]
    assert shown == general[7]  # the views read through their sources, and the nodes' names
    assert {OPS[code & OPCODE_MASK].name for code in rows[:, 0]} >= {"leaf", "constant"}


def _linear_tape(fused: bool, dtype, recorded: bool, out_features: int, with_bias: bool):
    rng = np.random.default_rng(3)
    x = tg.tensor(rng.standard_normal((4, 64)), dtype=dtype, requires_grad=recorded)
    w = tg.tensor(rng.standard_normal((out_features, 64)), dtype=dtype, requires_grad=True)
    b = tg.tensor(rng.standard_normal(out_features), dtype=dtype, requires_grad=True) if with_bias else None
    h = x * 2.0 if recorded else x
    if fused:
        out = F.linear(h, w, b)
    else:
        out = h @ w.t() if b is None else h @ w.t() + b
    rows, *rest = _described(_tape.resolve(out))
    described = (rows[:, :4].tolist(), *rest)
    (out * out).sum().backward()
    grads = [t.grad.numpy() for t in (x, w, b) if t is not None and t.grad is not None]
    return described, out.detach().numpy(), grads


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
@pytest.mark.parametrize("recorded", [False, True], ids=["constant-input", "recorded-input"])
@pytest.mark.parametrize("out_features", [5, 80], ids=["small", "read-in-place"])  # 80 x 64 >= TRANSPOSED_SOURCE_SIZE
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_linear_writes_the_rows_and_bits_of_its_operators(dtype, recorded, out_features, with_bias, monkeypatch):
    """``F.linear``'s short path (``_linalg.linear_short``, one function) against ``x @ w.t() + b``
    through the operators: the same rows, saved values, version checks and views read through
    their sources, the same result and gradients to the bit."""
    monkeypatch.setattr(_tape, "COLLECT_ROWS", 1 << 62)  # (rows as recorded, in the stress pass too)
    answers = []
    monkeypatch.setattr(F, "linear_short", lambda *args: answers.append(linear_short(*args)) or answers[-1])
    fused = _linear_tape(True, dtype, recorded, out_features, with_bias)
    assert len(answers) == 1 and answers[0] is not None  # the short path took the call
    operators = _linear_tape(False, dtype, recorded, out_features, with_bias)
    assert fused[0] == operators[0]
    np.testing.assert_array_equal(fused[1], operators[1])
    assert len(fused[2]) == len(operators[2]) == 1 + recorded + with_bias  # (w's, and x's and b's where they take one)
    for grad, other in zip(fused[2], operators[2]):
        np.testing.assert_array_equal(grad, other)


def test_a_linear_layer_records_its_weights_transpose_on_the_inputs_tape(monkeypatch):
    """``F.linear`` of a recorded input: the weight (a leaf) is transposed on the input's tape,
    not on a tape of its own that the product then merges; the graph and gradients are those
    of ``x @ w.t() + b``."""
    rng = np.random.default_rng(2)
    x = tg.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w = tg.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    b = tg.tensor(rng.standard_normal(5), requires_grad=True)
    h = x * 2.0
    merges = []
    monkeypatch.setattr(_tape.Tape, "absorb", lambda self, other: merges.append(other))
    out = F.linear(h, w, b)
    monkeypatch.undo()
    assert merges == [] and _tape.resolve(out) is _tape.resolve(h)
    assert out.grad_fn.name() == "AddmmBackward0"  # (shown as PyTorch's; the rows are x @ w.t() + b)
    assert [type(node).__name__ for node, _ in out.grad_fn.next_functions] == [
        "AccumulateGrad",
        "MulBackward0",
        "TBackward0",
    ]
    out.square().sum().backward()
    expected = 2 * (2 * x.detach().numpy() @ w.detach().numpy().T + b.detach().numpy())
    np.testing.assert_allclose(w.grad.numpy(), expected.T @ (2 * x.detach().numpy()), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), 2 * expected @ w.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), expected.sum(0), rtol=1e-12)


def test_a_merge_keeps_the_older_tapes_in_place_changes():
    """A tape created after an in-place change skips the version scan until the next change;
    absorbing an older tape whose saved value changed must bring that change's check with it."""
    a = tg.ones(3, requires_grad=True)
    saved = a * 1.0
    older = saved * saved  # saves ``saved`` at version 0
    with tg.no_grad():
        saved.mul_(2.0)
    b = tg.ones(3, requires_grad=True)
    newer = b * 2.0
    for _ in range(40):  # make the newer tape the larger one: it absorbs the older
        newer = newer * 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (older + newer).sum().backward()


@pytest.mark.parametrize("rows", [3, 40])
def test_merging_small_and_large_tapes_gives_the_same_gradients(rows):
    """Tape.absorb patches up to 32 rows in place and larger tapes through arrays."""
    w = tg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    v = tg.tensor([1.5, 0.25, -0.5], requires_grad=True)
    left = w.exp()  # one tape
    right = v * 1.0  # another, absorbed or absorbing depending on its length
    for _ in range(rows):
        right = right * 1.01 + v
    ((left * right).sum() + w.t().sum()).backward()
    expected_v = np.ones(3)
    for _ in range(rows):
        expected_v = expected_v * 1.01 + 1.0
    right_value = right.detach().numpy()
    np.testing.assert_allclose(w.grad.numpy(), np.exp(w.detach().numpy()) * right_value + 1.0, rtol=1e-6)
    np.testing.assert_allclose(v.grad.numpy(), np.exp(w.detach().numpy()) * expected_v, rtol=1e-5)


def test_address_of_reads_writable_read_only_and_empty_arrays():
    writable = np.arange(6.0)
    read_only = np.arange(6.0)
    read_only.flags.writeable = False
    for array in (writable, read_only, writable[2:], np.zeros(0)):
        assert address_of(array) == array.__array_interface__["data"][0]


def test_saved_values_are_read_live_like_pytorch():
    """Values are saved by reference, as PyTorch saves tensors: a change through ``.data``
    bypasses the version check and the backward sees it."""
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1.0
    z = (y * y).sum()
    y.data.mul_(10.0)
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 40.0, 60.0])


def test_the_broadcast_cache_stays_bounded():
    """Shapes that keep changing (sequence lengths) must not grow the per-shape cache for ever."""
    from tapegrad import _record

    bias = tg.ones(3, requires_grad=True)
    for rows in range(1, _record._BROADCAST_AUX_LIMIT + 50):
        (tg.ones(rows, 3) + bias).sum()
    assert len(_record._BROADCAST_AUX) <= _record._BROADCAST_AUX_LIMIT


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
@pytest.mark.parametrize("shape", [(), (3,), (2, 5)])
def test_a_number_operand_gives_numpys_bits_on_both_paths(dtype, shape):
    """``x <op> number`` on the short path (its number cached as a 0-d array of x's dtype, used
    again by the next op with the same number) and on the general path: numpy's result of the
    number as a scalar of that dtype, bit for bit."""
    rng = np.random.default_rng(3)
    values = rng.uniform(0.5, 2.0, shape).astype(dtype.numpy)
    number = 1.0000001  # rounds differently in float32 and float64
    typed = dtype.numpy.type(number)
    expected = {"add": values + typed, "sub": values - typed, "mul": values * typed, "div": values / typed}
    for general in (False, True, False):
        x = tg.tensor(values, requires_grad=True)
        if general:
            _grad_mode.special_modes[0] += 1
        try:
            got = {"add": x + number, "sub": x - number, "mul": x * number, "div": x / number}
        finally:
            if general:
                _grad_mode.special_modes[0] -= 1
        for name, result in got.items():
            assert result.dtype == dtype and result.shape == shape
            assert result.detach().numpy().tobytes() == np.asarray(expected[name]).tobytes(), name


@pytest.mark.parametrize("dtype", [tg.float32, tg.float64])
def test_a_recording_takes_the_short_paths_and_records_the_same_rows(dtype, monkeypatch):
    """Inside ``tapegrad.record`` two results of the recording combine through
    ``_record._same_tape``, iterating a result makes its rows through
    ``_views._unbound_rows`` and stacking results reads only their rows
    (``_views._results_of_one_tape``), as eagerly; the rows, the value and the gradients are those of
    the general paths they stand in for (taken while another special mode is on), and the
    replay's equal the eager ones."""
    from tapegrad import _record, _views

    x, params = _inputs(_scalars, dtype)
    arrays = [p.detach().numpy() for p in params]

    def loss(w1, b1, w2, b2):
        return _scalars(x, w1, b1, w2, b2)

    calls = {"_same_tape": 0, "_unbound_rows": 0, "_results_of_one_tape": 0}
    for module, name in ((_record, "_same_tape"), (_views, "_unbound_rows"), (_views, "_results_of_one_tape")):
        original = getattr(module, name)

        def counted(*args, _original=original, _name=name):
            result = _original(*args)
            calls[_name] += result is not None  # (the short path taken)
            return result

        monkeypatch.setattr(module, name, counted)
    fast = tg.record(loss, *arrays)
    assert calls["_same_tape"] >= 8 and calls["_unbound_rows"] == 2 and calls["_results_of_one_tape"] == 1
    before = dict(calls)
    _grad_mode.special_modes[0] += 1
    try:
        general = tg.record(loss, *arrays)
    finally:
        _grad_mode.special_modes[0] -= 1
    assert calls == before  # the general paths only
    np.testing.assert_array_equal(fast.rows, general.rows)  # (a recording numbers its own layouts)
    value, grads = fast.value_and_grad(*arrays)
    general_value, general_grads = general.value_and_grad(*arrays)
    assert value == general_value
    eager = _scalars(x, *params)
    eager.backward()
    np.testing.assert_allclose(value, eager.detach().numpy(), rtol=1e-6)
    for grad, other, param in zip(grads, general_grads, params):
        np.testing.assert_array_equal(grad, other)
        np.testing.assert_allclose(grad, param.grad.numpy(), rtol=2e-5 if dtype == tg.float32 else 1e-12)


def test_a_view_changed_in_place_takes_the_general_path_and_its_new_value(monkeypatch):
    """A view of a result whose storage changed in place since (under no_grad) is refreshed
    before use, on the general path, not read at its old row: the gradient is PyTorch's."""
    from tapegrad import _record

    w = tg.tensor([0.5, 1.5], requires_grad=True)
    h = w * 1.0
    first, second = h[0], h[1]
    with tg.no_grad():
        h.mul_(3.0)
    calls = []
    original = _record._same_tape
    monkeypatch.setattr(_record, "_same_tape", lambda *args: calls.append(original(*args)) or calls[-1])
    product = first * second
    assert calls == [None]  # it declined
    np.testing.assert_allclose(product.item(), 1.5 * 4.5)
    product.backward()
    np.testing.assert_allclose(w.grad.numpy(), [4.5, 1.5])  # each factor's new value, as PyTorch's
