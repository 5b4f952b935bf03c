"""Transposes of leaves recorded by the op that reads them (``tapegrad/_pending_views.py``).

``w.t()`` of a leaf writes no row until an op reads it; the op then writes it on its own tape.
Everything that asks for the view's tape first (``grad_fn``, hooks, in-place changes, an op's
general path) records it on a tape of its own, as every view was before. Each test runs a
program both ways where it matters, and against PyTorch where it is installed.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from tapegrad import _tape, _views
from tapegrad._pending_views import PendingView, settle

SMALL, LARGE = (4, 8), (70, 90)  # LARGE: past _record.TRANSPOSED_SOURCE_SIZE (ops read the source)


def _leaves(m, shape, count=2):
    rng = np.random.default_rng(sum(shape))
    return [m.tensor(rng.uniform(0.5, 1.5, shape), requires_grad=True) for _ in range(count)]


PROGRAMS = {
    "a.t() * b.t()": lambda a, b: (a.t() * b.t()).sum(),
    "a.t() + b.t() and a.t() - b.T": lambda a, b: ((a.t() + b.t()) * (a.t() - b.T)).sum(),
    "h * w.t(), h a result": lambda a, b: ((a.t() * 2.0).exp() * b.t()).sum(),
    "w.t() / h, h a result": lambda a, b: (b.t() / (a.t() + 1.0)).sum(),
    "h - w.t(), h a result": lambda a, b: ((a.t() * 3.0) - b.t()).square().sum(),
    "a.t().sum(1)": lambda a, b: (a.t().sum(1) ** 2).sum() + b.sum(),
    "relu, exp, softmax of a.t()": lambda a, b: F.relu(a.t()).sum() + b.t().exp().mean() + a.t().softmax(1)[0, 0],
    "x @ w.t() and w.t() @ x": lambda a, b: (a @ b.t()).tanh().sum() + (b.t() @ a).sum(),
    "one view read twice": lambda a, b: (lambda v: (v * v + v.exp() * b.t()).sum())(a.t()),
    "a view of a pending view": lambda a, b: (a.t().reshape(-1) * b.t().reshape(-1)).sum(),
    "permute and transpose": lambda a, b: (a.permute(1, 0) * b.transpose(0, 1)).sum(),
    "with a number": lambda a, b: (a.t() * 3.0 + 1.0 - b.t() / 2.0).sum(),
    "a row, a column, a slice": lambda a, b: (a * b[0]).sum() + (a[:, 1] * b[1:3, 2:3]).sum() + b[-1, ::2].sum(),
    "reshape, view, flatten": lambda a, b: (a.reshape(-1) * b.view(-1)).sum() + b.flatten().exp().sum(),
    "unsqueeze, expand": lambda a, b: (a.unsqueeze(0) * b[0].unsqueeze(1).expand(-1, a.shape[0]).t()).sum(),
    "unbind, split, chunk": lambda a, b: (
        sum((p * q).sum() for p, q in zip(a.unbind(0), b.split(1, 0))) + b.chunk(2, 1)[1].sum()
    ),
    "iteration, diagonal, narrow": lambda a, b: (
        sum((row * 2).sum() for row in a) + b.diagonal().sum() + b.narrow(1, 1, 2).sum()
    ),
    "matmul of a row": lambda a, b: (a @ b[0]).square().sum(),
}


@pytest.mark.parametrize("shape", [SMALL, LARGE], ids=["4x8", "70x90"])
@pytest.mark.parametrize("program", list(PROGRAMS))
def test_programs_on_pending_views_match_pytorch(program, shape):
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        a, b = _leaves(m, shape)
        loss = PROGRAMS[program](a, b)
        loss.backward()
        results.append((loss.item(), a.grad.numpy(), b.grad.numpy()))
    (value, grad_a, grad_b), (expected, torch_a, torch_b) = results
    np.testing.assert_allclose(value, expected, rtol=1e-13)
    np.testing.assert_allclose(grad_a, torch_a, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grad_b, torch_b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("shape", [SMALL, LARGE], ids=["4x8", "70x90"])
@pytest.mark.parametrize("program", list(PROGRAMS))
def test_pending_and_recorded_views_give_the_same_gradients(program, shape, monkeypatch):
    expected = []
    for pending in (True, False):
        if not pending:
            _record_at_once(monkeypatch)
        a, b = _leaves(tg, shape)
        loss = PROGRAMS[program](a, b)
        loss.backward()
        expected.append((loss.item(), a.grad.numpy(), b.grad.numpy()))
    (value, grad_a, grad_b), (value_then, grad_a_then, grad_b_then) = expected
    assert value == value_then
    np.testing.assert_array_equal(grad_a, grad_a_then)
    np.testing.assert_array_equal(grad_b, grad_b_then)


def _record_at_once(monkeypatch) -> None:
    """Record every view of a leaf when it is made, on a tape of its own, as before."""
    made = _views.pending_view

    def recorded(*args):
        view = made(*args)
        settle(view, _tape.Tape())
        return view

    monkeypatch.setattr(_views, "pending_view", recorded)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["4x8", "70x90"])
@pytest.mark.parametrize("replacement", ["3x3 float64", "same shape float32", "same shape float64"])
def test_a_leaf_whose_data_is_replaced_before_its_view_is_read(size, replacement, monkeypatch):
    # As a view recorded when made: the leaf's row as it was, the view's values the old ones.
    shape, dtype = {"3x3 float64": ((3, 3), np.float64), "same shape float32": (size, np.float32)}.get(
        replacement, (size, np.float64)
    )
    results = []
    for pending in (True, False):
        if not pending:
            _record_at_once(monkeypatch)
        a, b = _leaves(tg, size)
        view = a.t()
        a.data = tg.tensor(np.full(shape, 5.0, dtype))
        loss = (view * b.t()).sum() + (view @ b).sum()
        loss.backward()
        results.append((loss.item(), a.grad.numpy(), b.grad.numpy()))
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shape", [SMALL, LARGE], ids=["4x8", "70x90"])
def test_an_op_on_two_transposed_leaves_starts_one_tape_and_merges_none(shape, monkeypatch):
    made, merged = [], []
    init, absorb = _tape.Tape.__init__, _tape.Tape.absorb
    monkeypatch.setattr(_tape.Tape, "__init__", lambda self, *a, **k: made.append(1) or init(self, *a, **k))
    monkeypatch.setattr(_tape.Tape, "absorb", lambda self, other: merged.append(1) or absorb(self, other))
    a, b = _leaves(tg, shape)
    a_t, b_t = a.t(), b.t()
    assert type(a_t) is PendingView and made == []
    (a_t * b_t).sum().backward()
    assert (len(made), merged) == (1, [])
    assert type(a_t) is tg.Tensor or shape == LARGE  # large: read through the source, no row
    np.testing.assert_array_equal(a.grad.numpy(), b.detach().numpy())


def test_a_pending_view_is_a_view_that_requires_grad():
    a = _leaves(tg, SMALL, 1)[0]
    view = a.t()
    assert view.requires_grad and view._base is a and view.shape == (8, 4)
    assert not view.is_leaf  # asked, it is recorded: a tensor of its own from here
    assert type(view) is tg.Tensor
    assert view.grad_fn.name() == "TBackward0"
    assert view.grad_fn.next_functions[0][0].variable is a


@pytest.mark.parametrize("shape", [SMALL, LARGE], ids=["4x8", "70x90"])
def test_hooks_and_retained_gradients_of_a_pending_view(shape):
    a, b = _leaves(tg, shape)
    view = a.t()
    seen = []
    view.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 2)
    other = b.t()
    other.retain_grad()
    (view * other).sum().backward()
    np.testing.assert_array_equal(seen[0], b.detach().numpy().T)
    np.testing.assert_array_equal(a.grad.numpy(), 2 * b.detach().numpy())
    np.testing.assert_array_equal(other.grad.numpy(), a.detach().numpy().T)


def test_a_pending_view_read_through_its_source_refuses_a_later_hook():
    # As a recorded view read so (test_transposed_layouts): its gradient would be missing.
    a, b = _leaves(tg, LARGE)
    view = a.t()
    loss = (view * b.t()).sum()
    with pytest.raises(RuntimeError, match="transposed view"):
        view.register_hook(lambda g: g)
    loss.backward()
    np.testing.assert_array_equal(a.grad.numpy(), b.detach().numpy())


@pytest.mark.parametrize("shape", [SMALL, LARGE], ids=["4x8", "70x90"])
def test_a_pending_view_read_by_two_graphs_sums_both_gradients(shape):
    torch = pytest.importorskip("torch")
    grads = []
    for m in (tg, torch):
        a, b = _leaves(m, shape)
        view = a.t()
        first = (view * b.t()).sum()  # records the view (or reads the source)
        second = (view @ b).sum()  # a second graph reads the same view
        (first + second).backward()
        grads.append((a.grad.numpy(), b.grad.numpy()))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-13)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-13)


@pytest.mark.parametrize("shape", [SMALL, LARGE], ids=["4x8", "70x90"])
def test_a_leaf_changed_or_replaced_before_its_pending_view_is_read(shape):
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        a, b, c = _leaves(m, shape, 3)
        changed, replaced = a.t(), b.t()
        with m.no_grad():
            a.mul_(2.0)  # the view shares the storage: reads the new values
        b.data = b.data * 3.0  # the view keeps the old storage
        loss = (changed * replaced * c.t()).sum()
        loss.backward()
        results.append((loss.item(), a.grad.numpy(), b.grad.numpy(), c.grad.numpy()))
    for got, expected in zip(results[0], results[1]):
        np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_a_leaf_that_stops_requiring_grad_before_its_view_is_read():
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        a, b = _leaves(m, SMALL)
        view = a.t()
        a.requires_grad_(False)
        loss = (view * b.t()).sum()
        assert view.requires_grad
        loss.backward()
        results.append((a.grad, b.grad.numpy()))
    assert results[0][0] is None and results[1][0] is None
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_in_place_change_of_a_pending_view_raises_pytorchs_error():
    torch = pytest.importorskip("torch")
    messages = []
    for m in (tg, torch):
        view = _leaves(m, SMALL, 1)[0].t()
        with pytest.raises(RuntimeError) as raised:
            view.mul_(2.0)
        messages.append(str(raised.value))
    assert messages[0] == messages[1]


def test_copies_and_pickles_of_a_pending_view():
    a = _leaves(tg, SMALL, 1)[0]
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(a.t())  # a non-leaf, as PyTorch's deepcopy refuses it
    loaded = pickle.loads(pickle.dumps(a.t()))
    assert type(loaded) is tg.Tensor and loaded.is_leaf and loaded.requires_grad
    np.testing.assert_array_equal(loaded.detach().numpy(), a.detach().numpy().T)
    shallow = copy.copy(a.t())
    np.testing.assert_array_equal(shallow.detach().numpy(), a.detach().numpy().T)


def test_no_pending_view_under_no_grad_or_inside_a_recording():
    a = _leaves(tg, SMALL, 1)[0]
    with tg.no_grad():
        assert type(a.t()) is tg.Tensor and not a.t().requires_grad
    kinds = []
    tape = tg.record(lambda x: (kinds.append(type(x.t())) or x.t() * 2.0).sum(), a.detach().numpy())
    assert kinds == [tg.Tensor]
    np.testing.assert_array_equal(tape.value_and_grad(a.detach().numpy())[1][0].numpy(), np.full(SMALL, 2.0))


def test_a_pending_view_captured_by_a_recording_is_a_constant_of_it():
    a = _leaves(tg, SMALL, 1)[0]
    view = a.t()  # made outside: a tensor of another graph inside the recording
    x0 = np.ones((8, 4))
    tape = tg.record(lambda x: (x * view).sum(), x0)
    value, (grad,) = tape.value_and_grad(2 * x0)
    assert value.item() == pytest.approx(2 * a.detach().numpy().sum(), rel=1e-14)
    np.testing.assert_array_equal(grad.numpy(), a.detach().numpy().T)


def test_threads_reading_one_pending_view_record_it_once():
    import threading

    w = _leaves(tg, SMALL, 1)[0]
    for _ in range(10):
        view, results = w.t(), [None] * 4

        def work(k, view=view, results=results):
            results[k] = (view * (k + 1.0)).sum()

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        w.grad = None
        sum(results).backward()
        np.testing.assert_array_equal(w.grad.numpy(), np.full(SMALL, 10.0))  # 1 + 2 + 3 + 4


def test_transforms_of_a_function_reading_views_of_its_inputs_match_torch_func():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    w0, x0 = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))

    def loss(m):
        def f(w, x):
            mixed = (x @ w.t()).tanh() * w[0].sum() + w.t()[1] * x.reshape(-1)[:3]
            return mixed.sum() + (w.reshape(-1)[2:5] * x[:3]).sum()

        return f

    pairs = [
        (tg.func.grad(loss(tg))(tg.tensor(w0), tg.tensor(x0[0])), torch.func.grad(loss(torch))),
        (tg.func.hessian(loss(tg))(tg.tensor(w0), tg.tensor(x0[0])), torch.func.hessian(loss(torch))),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), theirs(torch.tensor(w0), torch.tensor(x0[0])).numpy(), atol=1e-13)
    ours = tg.func.vmap(tg.func.grad(loss(tg)), in_dims=(None, 0))(tg.tensor(w0), tg.tensor(x0))
    theirs = torch.func.vmap(torch.func.grad(loss(torch)), in_dims=(None, 0))(torch.tensor(w0), torch.tensor(x0))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-13)
