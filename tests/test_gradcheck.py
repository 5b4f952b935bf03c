"""tapegrad.autograd.gradcheck / gradgradcheck: they pass correct gradients and catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg


class Cube(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x**2


class WrongCube(Cube):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x**2  # should be 3


def _inputs():
    rng = np.random.default_rng(0)
    return (
        tg.tensor(rng.normal(size=(2, 3)), dtype=tg.float64, requires_grad=True),
        tg.tensor(rng.normal(size=(3,)), dtype=tg.float64, requires_grad=True),
    )


def test_gradcheck_passes_correct_gradients():
    x, y = _inputs()
    assert tg.autograd.gradcheck(lambda a, b: (a.sin() * b).logsumexp(1), (x, y))
    assert tg.autograd.gradcheck(Cube.apply, (x,))
    assert tg.autograd.gradcheck(lambda a, b: (a @ b, a.amax(0)), (x, y))  # several outputs


def test_gradcheck_catches_a_wrong_backward():
    (x, _) = _inputs()
    with pytest.raises(tg.autograd.GradcheckError, match="Jacobian mismatch for output 0 with respect to input 0"):
        tg.autograd.gradcheck(WrongCube.apply, (x,))
    assert tg.autograd.gradcheck(WrongCube.apply, (x,), raise_exception=False) is False
    assert issubclass(tg.autograd.GradcheckError, RuntimeError)


def test_gradgradcheck_checks_second_derivatives():
    x, y = _inputs()
    assert tg.autograd.gradgradcheck(lambda a, b: (a.sin() * b).sum(1).exp(), (x, y))
    assert tg.autograd.gradgradcheck(lambda a: a.softmax(1) * a, (x,))


def test_gradcheck_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        tg.autograd.gradcheck(lambda a: a * 2, (tg.ones(2, dtype=tg.float64),))


def test_same_verdicts_as_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    values = rng.normal(size=(3, 2))
    for module in (tg, torch):
        x = module.tensor(values, dtype=module.float64, requires_grad=True)
        assert module.autograd.gradcheck(lambda a: (a * a).cumsum(0).tanh(), (x,))
        assert module.autograd.gradgradcheck(lambda a: (a * a).cumsum(0).tanh(), (x,))


def test_gradgradcheck_catches_a_wrong_second_derivative(monkeypatch):
    from tapegrad.autograd import higher_order

    # softplus's recorded first derivative made a constant: right in value, but its own
    # derivative lost, which only differentiating it again (create_graph) can reveal.
    sigmoid = lambda row: 1 / (1 + np.exp(-row.a_data))  # noqa: E731
    monkeypatch.setitem(higher_order.VJP_RULES, "softplus", (lambda row, g: g * row.constant(sigmoid(row)),))
    (x, _) = _inputs()
    with pytest.raises(tg.autograd.GradcheckError, match="Jacobian mismatch"):
        tg.autograd.gradgradcheck(lambda a: tg.nn.functional.softplus(a), (x,))
