"""autograd.graph.saved_tensors_hooks, save_on_cpu and disable_saved_tensors_hooks: PyTorch's
tutorial on hooks for saved tensors, against PyTorch where it is installed."""

from __future__ import annotations

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
