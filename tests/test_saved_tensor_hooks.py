"""autograd.graph.saved_tensors_hooks, save_on_cpu and disable_saved_tensors_hooks: PyTorch's
tutorial on hooks for saved tensors, against PyTorch where it is installed."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest

import tapegrad as tg


def _tutorial(m):
    """The calls each hook sees, and the gradients, for a product, an exp and a square."""
    log = []

    def pack(x):
        log.append(("pack", tuple(x.shape)))
        return x

    def unpack(x):
        log.append(("unpack", tuple(x.shape)))
        return x

    a = m.ones(5, requires_grad=True)
    b = m.ones(5, requires_grad=True) * 2
    with m.autograd.graph.saved_tensors_hooks(pack, unpack):
        w = ((a * b).exp() ** 2).sum() + (a * a.sin()).sum()
    packs = len(log)
    w.backward(retain_graph=True)
    first = len(log) - packs
    w.backward()
    return packs, first, len(log) - packs - first, a.grad.numpy().tolist()


def test_each_saved_tensor_is_packed_once_and_unpacked_by_each_backward():
    packs, first, second = _tutorial(tg)[:3]
    assert packs == first == second > 0


def test_counts_and_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    ours, theirs = _tutorial(tg), _tutorial(torch)
    assert ours[:3] == theirs[:3]
    np.testing.assert_allclose(ours[3], theirs[3], rtol=1e-6)


def _gradient(pack, unpack, change_in_place: bool = False):
    a = tg.ones(3, requires_grad=True)
    with tg.autograd.graph.saved_tensors_hooks(pack, unpack):
        c = a * 1
        y = (c * c).sum()
    if change_in_place:
        with tg.no_grad():
            c.add_(1)
    y.backward()
    return a.grad.numpy().tolist()


def test_the_backward_reads_what_the_unpack_hook_returns():
    assert _gradient(lambda x: x * 0 + 3, lambda x: x) == [6.0, 6.0, 6.0]
    assert _gradient(lambda x: x, lambda x: x.double() * 2) == [4.0, 4.0, 4.0]  # cast back to float32
    # as PyTorch: no version check through hooks; the saved value itself, or the packed copy
    assert _gradient(lambda x: x, lambda x: x, change_in_place=True) == [4.0, 4.0, 4.0]
    assert _gradient(lambda x: x.clone(), lambda x: x, change_in_place=True) == [2.0, 2.0, 2.0]


def test_packing_to_disk_as_the_tutorial_does(tmp_path):
    names = iter(range(1000))

    def pack(x):
        path = tmp_path / f"{next(names)}.npy"
        np.save(path, x.detach().numpy())
        return path

    def unpack(path):
        return tg.from_numpy(np.load(path))

    x = tg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    with tg.autograd.graph.saved_tensors_hooks(pack, unpack):
        y = (x.exp() * x.sin()).sum()
    y.backward()
    np.testing.assert_allclose(
        x.grad.numpy(), np.exp([0.5, -1.0, 2.0]) * (np.sin([0.5, -1.0, 2.0]) + np.cos([0.5, -1.0, 2.0])), rtol=1e-6
    )
    assert len(list(tmp_path.iterdir())) > 0


def test_unpack_hooks_returning_no_tensor_or_another_shape_raise():
    with pytest.raises(TypeError, match="unpack_hook expected to be a Tensor but got result of type int"):
        _gradient(lambda x: x, lambda x: 5)
    with pytest.raises(RuntimeError, match=r"unpack_hook returned a tensor of shape \[2\]"):
        _gradient(lambda x: x, lambda x: x[:2])


def test_second_derivatives_read_the_unpacked_values():
    x = tg.tensor([0.3, 1.2], dtype=tg.float64, requires_grad=True)
    with tg.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        y = (x**3).sum()
    (first,) = tg.autograd.grad(y, x, create_graph=True)
    first.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.detach().numpy())


def test_hooks_nest_stay_in_their_thread_and_are_off_inside_a_pack_hook():
    seen = []

    def outer(x):
        seen.append("outer")
        return x

    def inner(x):
        seen.append("inner")
        return (x * x).sqrt()  # an op that saves: not packed again

    x = tg.ones(2, requires_grad=True)
    with tg.autograd.graph.saved_tensors_hooks(outer, lambda t: t):
        with tg.autograd.graph.saved_tensors_hooks(inner, lambda t: t):
            x.sin()
        x.cos()
        other = []
        thread = threading.Thread(target=lambda: other.append(x.tan()))
        thread.start()
        thread.join()
    x.exp()
    assert seen == ["inner", "outer"]


def test_save_on_cpu_changes_nothing_and_disabling_raises_the_message():
    x = tg.tensor([0.5, 1.5], requires_grad=True)
    with tg.autograd.graph.save_on_cpu(pin_memory=True):
        y = (x * x.exp()).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, 1.5]) * (1 + np.array([0.5, 1.5])), rtol=1e-6)
    with tg.autograd.graph.disable_saved_tensors_hooks("no hooks here"):
        with pytest.raises(RuntimeError, match="no hooks here"):
            with tg.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
                pass
    with tg.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        pass


def test_hooks_inside_a_recording_refuse():
    with tg.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
        with pytest.raises(NotImplementedError, match="saved_tensors_hooks inside tapegrad.record"):
            tg.record(lambda v: (v * v).sum(), np.ones(3))


def test_a_large_backward_under_hooks_keeps_what_a_later_backward_reads():
    # the backward frees what no pending row reads; the hooks' values are put back after it
    x = tg.randn(256, 512, dtype=tg.float64, requires_grad=True)
    with tg.autograd.graph.saved_tensors_hooks(lambda t: t.detach().clone(), lambda t: t):
        hidden = x.exp()
        first, second = (hidden * 0.5).tanh().sum(), (hidden * hidden).sum()  # tanh's value: freed
    first.backward()
    value = np.exp(x.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), 0.5 * value * (1 - np.tanh(0.5 * value) ** 2), rtol=1e-6, atol=1e-9)
    tape = tg._tape.resolve(second)
    held = {tg._tape.address_of(array) for array in tape.keepalive}
    assert set(tape.saved.values()) <= held  # no saved address outlived its array


def test_broadcast_operands_and_a_small_model_train_the_same_under_hooks():
    torch = pytest.importorskip("torch")

    def gradients(m, hooks):
        m.manual_seed(0)
        model = m.nn.Sequential(
            m.nn.Conv2d(2, 3, 3), m.nn.BatchNorm2d(3), m.nn.Flatten(), m.nn.Linear(12, 4), m.nn.LayerNorm(4)
        )
        rng = np.random.default_rng(1)
        with m.no_grad():
            for p in model.parameters():
                p.copy_(m.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
        x = m.tensor(rng.standard_normal((5, 2, 4, 4)).astype(np.float32))
        bias = m.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
        with m.autograd.graph.save_on_cpu() if hooks else contextlib.nullcontext():
            loss = ((model(x) * bias).tanh()).sum()
        loss.backward()
        return [p.grad.numpy() for p in model.parameters()] + [bias.grad.numpy()]

    ours = gradients(tg, True)
    for a, b, c in zip(ours, gradients(tg, False), gradients(torch, True)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)


def test_changed_values_read_outside_the_hooks_or_under_create_graph_refuse():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = tg.tensor([4.0, 5.0, 6.0], requires_grad=True)
    with tg.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t * 2):
        y = x * w
    z = w * x  # the same rows, saved again outside: one value per row on the tape
    with pytest.raises(NotImplementedError, match="saved both inside and outside"):
        (y + z).sum().backward()
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t * 2):
        cube = (a**3).sum()
    with pytest.raises(NotImplementedError, match="create_graph=True through saved_tensors_hooks"):
        tg.autograd.grad(cube, a, create_graph=True)


def test_a_custom_functions_saved_tensors_go_through_the_hooks():
    calls = []

    class Square(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.autograd.graph.saved_tensors_hooks(
        lambda t: calls.append("pack") or t, lambda t: calls.append("unpack") or t * 10
    ):
        y = Square.apply(x)
    y.sum().backward()
    assert calls == ["pack", "unpack"]
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 40.0])
