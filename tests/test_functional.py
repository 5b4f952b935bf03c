"""autograd.functional against PyTorch's."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")


def _f(module):
    def f(x, y):
        return (x.sin() * y).sum(0), x.exp() - y

    return f


def _inputs(module):
    rng = np.random.default_rng(2)
    return module.tensor(rng.standard_normal((3, 2))), module.tensor(rng.standard_normal((3, 2)))


def _close(ours, theirs):
    if isinstance(theirs, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _close(a, b)
    else:
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_jacobian():
    _close(
        tg.autograd.functional.jacobian(_f(tg), _inputs(tg)),
        torch.autograd.functional.jacobian(_f(torch), _inputs(torch)),
    )


def test_vjp_and_jvp():
    v = (np.ones(2), np.arange(6.0).reshape(3, 2))
    _close(
        tg.autograd.functional.vjp(_f(tg), _inputs(tg), tuple(tg.tensor(a) for a in v)),
        torch.autograd.functional.vjp(_f(torch), _inputs(torch), tuple(torch.tensor(a) for a in v)),
    )
    u = (np.full((3, 2), 0.5), np.arange(6.0).reshape(3, 2))
    _close(
        tg.autograd.functional.jvp(_f(tg), _inputs(tg), tuple(tg.tensor(a) for a in u)),
        torch.autograd.functional.jvp(_f(torch), _inputs(torch), tuple(torch.tensor(a) for a in u)),
    )


def test_single_input_single_output_and_second_order_refusal():
    x = tg.tensor([0.5, -1.0])
    jacobian = tg.autograd.functional.jacobian(lambda t: t * t, x)
    np.testing.assert_allclose(jacobian.numpy(), np.diag([1.0, -2.0]))
    with pytest.raises(NotImplementedError, match="create_graph"):
        tg.autograd.functional.hessian(lambda t: (t * t).sum(), x)
