"""torch.nn.utils.parametrize and parametrizations.weight_norm: a parameter computed on each read."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import tapegrad as tg


def _caught(call) -> tuple:
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the class and message are what is compared
        return type(error).__name__, str(error).split("\n")[0][:90]
    return ("no error",)


def _story(m):
    """The same steps in tapegrad or PyTorch: what each step gives, in order."""
    P = m.nn.utils.parametrize  # noqa: N806 - PyTorch's alias
    out = []

    class Sym(m.nn.Module):
        def forward(self, X):  # noqa: N803
            return X.triu() + X.triu(1).transpose(-1, -2)

    class Scale(m.nn.Module):
        def forward(self, X):  # noqa: N803
            return X * 2

        def right_inverse(self, X):  # noqa: N803
            return X / 2

    class Bad(m.nn.Module):
        def forward(self, X):  # noqa: N803
            return X[0]

    def linear(n_in, n_out, values):
        layer = m.nn.Linear(n_in, n_out)
        with m.no_grad():
            layer.weight.copy_(m.tensor(values.astype(np.float32)))
            layer.bias.zero_()
        return layer

    lin = linear(3, 3, np.arange(9.0).reshape(3, 3) / 10)
    P.register_parametrization(lin, "weight", Sym())
    out += [type(lin).__name__, repr(lin), lin.weight.detach().numpy().copy()]
    out += [sorted(dict(lin.named_parameters())), sorted(lin.state_dict())]
    lin(m.ones(2, 3)).pow(2).sum().backward()
    out.append(lin.parametrizations.weight.original.grad.numpy().copy())
    P.register_parametrization(lin, "weight", Scale())  # chained after Sym
    out.append(lin.weight.detach().numpy().copy())
    out.append(_caught(lambda: setattr(lin, "weight", m.eye(3))))  # Sym has no right_inverse
    scaled = m.nn.Linear(3, 3)
    P.register_parametrization(scaled, "weight", Scale())
    scaled.weight = m.eye(3) * 4  # stored through right_inverse
    out.append(scaled.parametrizations.weight.original.detach().numpy().copy())
    out.append((P.is_parametrized(lin), P.is_parametrized(lin, "bias"), P.type_before_parametrizations(lin).__name__))
    with P.cached():
        out.append(lin.weight is lin.weight)
    out.append(lin.weight is lin.weight)
    out.append(_caught(lambda: setattr(lin, "weight", m.nn.Parameter(m.ones(3, 3)))))
    out.append(_caught(lambda: pickle.dumps(lin)))
    out.append(copy.deepcopy(lin).weight.detach().numpy().copy())
    P.remove_parametrizations(lin, "weight")
    out += [type(lin).__name__, isinstance(lin.weight, m.nn.Parameter), lin.weight.detach().numpy().copy()]
    out.append(sorted(lin.state_dict()))
    P.remove_parametrizations(scaled, "weight", leave_parametrized=False)
    out.append((type(scaled).__name__, scaled.weight.detach().numpy().copy()))
    out.append(_caught(lambda: P.register_parametrization(m.nn.Linear(3, 3), "weight", Bad())))
    out.append(_caught(lambda: P.register_parametrization(m.nn.Linear(3, 3), "nothing", Sym())))
    out.append(_caught(lambda: P.remove_parametrizations(m.nn.Linear(3, 3), "weight")))

    normed = linear(4, 3, np.arange(12.0).reshape(3, 4) / 7 - 0.5)
    m.nn.utils.parametrizations.weight_norm(normed)
    chain = normed.parametrizations.weight
    out += [sorted(dict(normed.named_parameters())), repr(normed), chain.original0.detach().numpy().copy()]
    normed(m.ones(2, 4)).sin().sum().backward()
    out += [chain.original0.grad.numpy().copy(), chain.original1.grad.numpy().copy()]
    for dim in (None, 1):
        layer = m.nn.utils.parametrizations.weight_norm(m.nn.Linear(4, 3), dim=dim)
        out.append(tuple(layer.parametrizations.weight.original0.shape))
    return out


def test_parametrized_weight_is_computed_and_trained_through():
    P = tg.nn.utils.parametrize  # noqa: N806 - PyTorch's alias

    class Symmetric(tg.nn.Module):
        def forward(self, X):  # noqa: N803
            return X.triu() + X.triu(1).transpose(-1, -2)

    layer = tg.nn.Linear(3, 3)
    original = layer.weight
    P.register_parametrization(layer, "weight", Symmetric())
    assert type(layer).__name__ == "ParametrizedLinear" and isinstance(layer, tg.nn.Linear)
    assert layer.parametrizations.weight.original is original  # the same Parameter object (an optimizer's)
    W = layer.weight.detach().numpy()  # noqa: N806
    np.testing.assert_array_equal(W, W.T)
    np.testing.assert_array_equal(np.triu(W), np.triu(original.detach().numpy()))
    layer(tg.ones(2, 3)).sum().backward()
    # d/dW of sum(x @ W.T) is 2 per entry; folded onto the upper triangle: 2 on it, 4 above
    np.testing.assert_array_equal(original.grad.numpy(), np.triu(np.full((3, 3), 4.0)) - np.eye(3) * 2)
    P.remove_parametrizations(layer, "weight")
    assert type(layer) is tg.nn.Linear and layer.weight is original
    np.testing.assert_array_equal(original.detach().numpy(), W)  # left at its parametrized value


def test_weight_norm_splits_magnitude_from_direction():
    layer = tg.nn.Linear(4, 3)
    before = layer.weight.detach().numpy().copy()
    tg.nn.utils.parametrizations.weight_norm(layer)
    g = layer.parametrizations.weight.original0
    v = layer.parametrizations.weight.original1
    np.testing.assert_allclose(g.detach().numpy(), np.linalg.norm(before, axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(layer.weight.detach().numpy(), before, rtol=1e-6, atol=1e-7)
    layer(tg.ones(1, 4)).sum().backward()
    assert g.grad.shape == (3, 1) and v.grad.shape == (3, 4)
    # the weight's value does not change along v itself: that direction's derivative is 0
    np.testing.assert_allclose((v.grad.numpy() * v.detach().numpy()).sum(axis=1), 0, atol=1e-6)


def test_parametrize_follows_pytorch():
    torch = pytest.importorskip("torch")
    ours, theirs = _story(tg), _story(torch)
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        if isinstance(a, np.ndarray):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
        else:
            assert str(a).replace("tapegrad", "torch") == str(b), f"step {step}"


def test_weight_norm_of_a_vector_has_a_norm_per_element():
    # dim 0 of a 1-d tensor leaves no dimension to sum over: each element is its own norm
    layer = tg.nn.Linear(2, 2)
    with tg.no_grad():
        layer.bias.copy_(tg.tensor([3.0, -4.0]))
    tg.nn.utils.parametrizations.weight_norm(layer, name="bias")
    np.testing.assert_array_equal(layer.parametrizations.bias.original0.detach().numpy(), [3.0, 4.0])
    np.testing.assert_array_equal(layer.bias.detach().numpy(), [3.0, -4.0])


def test_functional_call_takes_a_parametrized_tensor_by_its_name():
    """``functional_call(lin, {"weight": W}, x)`` of a parametrized ``weight`` used the module's
    own weight, silently (the name is a property of the module's class). As PyTorch's: the
    parametrization's ``original`` takes ``right_inverse(W)`` for the call, the gradient goes to
    it, and it keeps its own values after."""
    from tapegrad.func import functional_call

    class Double(tg.nn.Module):
        def forward(self, x):
            return x * 2

        def right_inverse(self, x):
            return x / 2

    layer = tg.nn.Linear(2, 2, bias=False)
    tg.nn.utils.parametrize.register_parametrization(layer, "weight", Double())
    original = layer.parametrizations.weight.original
    before = original.detach().clone()
    weight = tg.tensor([[10.0, 0.0], [0.0, 10.0]], requires_grad=True)
    out = functional_call(layer, {"weight": weight}, (tg.eye(2),))
    assert out.tolist() == [[10.0, 0.0], [0.0, 10.0]]
    out.sum().backward()
    assert weight.grad is None and original.grad.tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert tg.equal(original.detach(), before)
