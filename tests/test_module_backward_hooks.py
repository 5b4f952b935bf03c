"""``Module.register_full_backward_hook`` and ``register_full_backward_pre_hook`` (Grad-CAM,
gradient clipping per layer): what each hook sees and what a returned value replaces, against
PyTorch where installed and the closed form of a linear layer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tapegrad as tg

W = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def _layer(m):
    layer = m.nn.Linear(3, 2)
    with m.no_grad():
        layer.weight.copy_(m.tensor(W))
        layer.bias.zero_()
    return layer


def _scaled_input_gradient(m):
    layer = _layer(m)
    seen = []
    layer.register_full_backward_pre_hook(lambda module, go: seen.append(("pre", [g.tolist() for g in go])))

    def hook(module, grad_input, grad_output):
        seen.append(("hook", [g.tolist() for g in grad_input], [g.tolist() for g in grad_output]))
        return (grad_input[0] * 10,)

    layer.register_full_backward_hook(hook)
    x = m.tensor([[1.0, 1.0, 1.0]], requires_grad=True)
    (layer(x) ** 2).sum().backward()
    return seen, x.grad.tolist(), layer.weight.grad.tolist()


def _zeroed_output_gradient(m):
    layer = _layer(m)
    layer.register_full_backward_pre_hook(lambda module, go: (go[0] * 0,))
    x = m.tensor([[1.0, 1.0, 1.0]], requires_grad=True)
    (layer(x) ** 2).sum().backward()
    return x.grad.tolist(), layer.weight.grad.tolist()


def _input_without_grad(m):
    layer = _layer(m)
    seen = []
    layer.register_full_backward_hook(lambda module, gi, go: seen.append([g is None for g in gi]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (layer(m.ones(1, 3)) ** 2).sum().backward()
    return seen


def test_hooks_see_and_replace_the_gradients():
    seen, x_grad, w_grad = _scaled_input_gradient(tg)
    # y = W x = (6, 15); dL/dy = 2y = (12, 30); dL/dx = W^T (12, 30) = (132, 174, 216)
    assert seen == [("pre", [[[12.0, 30.0]]]), ("hook", [[[132.0, 174.0, 216.0]]], [[[12.0, 30.0]]])]
    assert x_grad == [[1320.0, 1740.0, 2160.0]] and w_grad == [[12.0] * 3, [30.0] * 3]
    assert _zeroed_output_gradient(tg) == ([[0.0, 0.0, 0.0]], [[0.0] * 3, [0.0] * 3])
    layer = _layer(tg)
    layer.register_full_backward_hook(lambda *args: None)
    with pytest.warns(UserWarning, match="no inputs require gradients"):
        (layer(tg.ones(1, 3)) ** 2).sum().backward()
    assert _input_without_grad(tg) == [[True]]


@pytest.mark.parametrize("program", [_scaled_input_gradient, _zeroed_output_gradient, _input_without_grad])
def test_matches_pytorch(program):
    torch = pytest.importorskip("torch")
    assert program(tg) == program(torch)


def test_removed_hooks_run_no_more():
    layer = _layer(tg)
    calls = []
    handle = layer.register_full_backward_hook(lambda *args: calls.append(1))
    x = tg.ones(1, 3, requires_grad=True)
    layer(x).sum().backward()
    handle.remove()
    layer(x).sum().backward()
    assert calls == [1]
    np.testing.assert_array_equal(x.grad.numpy(), 2 * np.array(W).sum(0, keepdims=True))


def test_forward_hook_options_and_getters():
    layer = _layer(tg)
    order = []
    layer.register_forward_hook(lambda m, a, o: order.append("first"))
    layer.register_forward_hook(lambda m, a, o: order.append("prepended"), prepend=True)
    layer.register_forward_pre_hook(lambda m, args, kwargs: ((args[0] * 2,), kwargs), with_kwargs=True)
    layer.register_forward_hook(lambda m, args, kwargs, out: out + 1, with_kwargs=True)
    out = layer(tg.ones(1, 3))
    assert order == ["prepended", "first"]
    np.testing.assert_allclose(out.detach().numpy(), [[13.0, 31.0]])  # W (2, 2, 2) + 1
    failing = tg.nn.Linear(2, 2)
    calls = []
    failing.register_forward_hook(lambda m, a, o: calls.append(o), always_call=True)
    with pytest.raises(RuntimeError):
        failing(tg.ones(1, 3))  # the wrong width
    assert calls == [None]
    model = tg.nn.Sequential(tg.nn.Linear(2, 2), tg.nn.BatchNorm1d(2))
    assert model.get_parameter("0.weight") is model[0].weight
    assert model.get_buffer("1.running_mean") is model[1].running_mean
    with pytest.raises(AttributeError, match="`running_mean` is not an nn.Parameter"):
        model.get_parameter("1.running_mean")


def _always_called(m):
    """Which always_call forward hooks run, with what output, when a pre-hook, a hook before
    them or a hook after them raises."""
    results = []
    for raising in ("pre-hook", "earlier hook", "later hook"):
        layer, seen = m.nn.Linear(1, 1), []
        if raising == "pre-hook":
            layer.register_forward_pre_hook(lambda module, args: 1 / 0)
        if raising == "earlier hook":
            layer.register_forward_hook(lambda module, args, out: 1 / 0)
        layer.register_forward_hook(lambda module, args, out, seen=seen: seen.append(out is None), always_call=True)
        if raising == "later hook":
            layer.register_forward_hook(lambda module, args, out: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            layer(m.ones(1, 1))
        results.append(seen)
    quiet = m.nn.Linear(1, 1)
    quiet.register_forward_hook(lambda module, args, out: [][1], always_call=True)  # silenced: warned of
    quiet.register_forward_pre_hook(lambda module, args: 1 / 0)
    with pytest.raises(ZeroDivisionError), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet(m.ones(1, 1))
    results.append([str(w.message).split(":")[0] for w in caught])
    return results


def test_always_call_hooks_run_when_any_part_of_the_call_raises():
    # (they ran only when forward itself raised)
    ours = _always_called(tg)
    assert ours[:3] == [[True], [False], [False]]
    torch = pytest.importorskip("torch")
    assert ours == _always_called(torch)


def test_module_hooks_run_on_each_backward_of_a_retained_graph():
    # Their counts of gradients still to arrive were never reset: the second backward ran none
    calls = []
    module = tg.nn.Tanh()
    module.register_full_backward_pre_hook(lambda m, grad_output: calls.append("pre"))
    module.register_full_backward_hook(
        lambda m, grad_input, grad_output: (calls.append("post"), (grad_input[0] * 10,))[1]
    )
    a = tg.tensor([0.5], requires_grad=True)
    s = module(a).sum()
    s.backward(retain_graph=True)
    first = a.grad.item()
    s.backward()
    assert calls == ["pre", "post", "pre", "post"]
    assert a.grad.item() == pytest.approx(2 * first)


def test_in_place_change_of_a_hooked_modules_input_or_output_raises():
    # ReLU(inplace=True) next to a hooked layer changed the view the hooks watch: they were
    # given None, or not called; PyTorch refuses the change.
    for hooked in (0, 1):
        model = tg.nn.Sequential(tg.nn.Linear(2, 3), tg.nn.ReLU(inplace=True), tg.nn.Linear(3, 1))
        model[hooked].register_full_backward_hook(lambda module, grad_input, grad_output: None)
        with pytest.raises(RuntimeError, match="Output 0 of BackwardHookFunction is a view and is being modified"):
            model(tg.ones(2, 2, requires_grad=True))
    plain = tg.nn.Sequential(tg.nn.Linear(2, 3), tg.nn.ReLU(inplace=True))
    plain(tg.ones(2, 2, requires_grad=True)).sum().backward()  # without hooks, as before


def _two_outputs(m):
    class Two(m.nn.Module):
        def forward(self, a, b):
            return a * b, a + b

    calls = []
    module = Two()
    module.register_full_backward_pre_hook(lambda mod, go: calls.append(("pre", [g.tolist() for g in go])))
    module.register_full_backward_hook(
        lambda mod, gi, go: calls.append(("post", [g.tolist() for g in gi], [g.tolist() for g in go]))
    )
    a, b = m.tensor([1.0, 2.0], requires_grad=True), m.tensor([3.0, 4.0], requires_grad=True)
    p, q = module(a, b)
    s = (p * 2 + q * 5).sum()
    s.backward(retain_graph=True)
    s.backward()
    return calls, a.grad.tolist(), b.grad.tolist()


def test_hooks_of_a_module_with_two_outputs_over_two_backwards():
    calls, a_grad, b_grad = _two_outputs(tg)
    assert [call[0] for call in calls] == ["pre", "post"] * 2 and a_grad == [22.0, 26.0]
    torch = pytest.importorskip("torch")
    assert (calls, a_grad, b_grad) == _two_outputs(torch)


def _replacements(m):
    """Pre-hooks and hooks replacing any gradient, with an output no gradient reaches."""

    class Two(m.nn.Module):
        def forward(self, a, b):
            return a * b, a + b, a - b

    module = Two()
    seen = []

    def pre(mod, grad_output):
        seen.append(["-" if g is None else g.tolist() for g in grad_output])
        return (grad_output[0], grad_output[1] * 10, None)

    def post(mod, grad_input, grad_output):
        seen.append([g.tolist() for g in grad_input])
        return (grad_input[0] * 3, grad_input[1] * 7)

    module.register_full_backward_pre_hook(pre)
    module.register_full_backward_hook(post)
    a, b = m.tensor([1.0, 2.0], requires_grad=True), m.tensor([3.0, 4.0], requires_grad=True)
    p, q, _ = module(a, b)  # the third output takes no gradient
    (p * 2 + q * 5).sum().backward()
    return seen, a.grad.tolist(), b.grad.tolist()


def test_hooks_replace_any_gradient_and_run_when_an_output_takes_none():
    # One node per side, as PyTorch's: a pre-hook could replace only the output gradient that
    # arrived last (the others had gone on), and never ran when an output took no gradient.
    seen, a_grad, b_grad = _replacements(tg)
    assert seen[0] == [[2.0, 2.0], [5.0, 5.0], "-"] and a_grad == [168.0, 174.0]
    torch = pytest.importorskip("torch")
    assert (seen, a_grad, b_grad) == _replacements(torch)


def test_hooks_refuse_to_be_recorded():
    model = tg.nn.Linear(2, 1)
    model.register_full_backward_hook(lambda module, grad_input, grad_output: (grad_input[0] * 100,))
    with pytest.raises(NotImplementedError, match="BackwardHookFunction cannot be recorded"):
        tg.record(lambda x: model(x).sum(), tg.ones(1, 2))


@pytest.mark.parametrize("register", ["register_full_backward_hook", "register_full_backward_pre_hook"])
def test_full_backward_hooks_take_prepend(register):
    """Found by a review: ``prepend=`` (PyTorch's keyword on both) raised TypeError. A hook
    registered with it runs before the ones registered so far."""
    order = []
    layer = tg.nn.Linear(2, 2)
    getattr(layer, register)(lambda module, *grads: order.append("first"))
    getattr(layer, register)(lambda module, *grads: order.append("prepended"), prepend=True)
    layer(tg.ones(1, 2, requires_grad=True)).sum().backward()
    assert order == ["prepended", "first"]
