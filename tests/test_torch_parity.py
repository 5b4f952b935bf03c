"""The same op cases run on PyTorch: values, gradients and grad_fn names agree."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
from tapegrad._examples import CASES

from .gradcheck import sample

torch = pytest.importorskip("torch")


def _run(module, case, arrays, dtype):
    inputs = [module.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    call = case.torch_call if (module is torch and case.torch_call) else case.call
    out = call(*inputs)
    weights = np.linspace(0.5, 1.5, num=max(out.numel(), 1)).reshape(tuple(out.shape))
    (out * module.tensor(weights, dtype=out.dtype)).sum().backward()
    return out, [x.grad for x in inputs]


# Cases through PyTorch's polygamma(1) (digamma's gradient): its calc_trigamma cuts its series at
# x >= 6, 5e-10 relative; tapegrad's is within 5e-14 of mpmath (tests/test_special.py holds it to
# scipy's). float64 parity is to that accuracy there.
_PYTORCH_TRIGAMMA = ("_trigamma", "digamma", "polygamma(")


@pytest.mark.parametrize("dtype_name,rtol", [("float64", 1e-10), ("float32", 2e-5)])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_values_and_gradients_match_pytorch(case, dtype_name, rtol):
    if dtype_name == "float64" and case.name.startswith(_PYTORCH_TRIGAMMA):
        rtol = 1e-9
    arrays = sample(np.random.default_rng(11), case.shapes, case.domain)
    ours, our_grads = _run(tg, case, arrays, getattr(tg, dtype_name))
    theirs, their_grads = _run(torch, case, arrays, getattr(torch, dtype_name))
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol, atol=rtol)
    for got, want in zip(our_grads, their_grads):
        assert (got is None) == (want is None)
        if want is not None:
            assert got.dtype.name == str(want.dtype).removeprefix("torch.")
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=rtol * 10, atol=rtol * 10)


NAMED = [
    lambda m, x, y: x * y,
    lambda m, x, y: x + 2,
    lambda m, x, y: 2 - x,
    lambda m, x, y: 2 / x,
    lambda m, x, y: x**2,
    lambda m, x, y: x**y,
    lambda m, x, y: 2.0**x,
    lambda m, x, y: x.sum(),
    lambda m, x, y: x.sum(0),
    lambda m, x, y: x.mean(),
    lambda m, x, y: x.mean(1),
    lambda m, x, y: x.norm(),
    lambda m, x, y: x.t(),
    lambda m, x, y: x.T,
    lambda m, x, y: x.mT,
    lambda m, x, y: x.transpose(0, 1),
    lambda m, x, y: x.permute(1, 0),
    lambda m, x, y: x.reshape(-1),
    lambda m, x, y: x[0],
    lambda m, x, y: x[:, 1:],
    lambda m, x, y: x[None],
    lambda m, x, y: x.unsqueeze(0).squeeze(),
    lambda m, x, y: x.unsqueeze(0).squeeze(0),
    lambda m, x, y: x.expand(2, 2, 3),
    lambda m, x, y: x @ y.t(),
    lambda m, x, y: x[0] @ y[0],
    lambda m, x, y: x @ y[0],
    lambda m, x, y: x.clone(),
    lambda m, x, y: x.double(),
    lambda m, x, y: x + y[0],
    lambda m, x, y: x.relu() + x.sigmoid(),
    lambda m, x, y: m.nn.functional.linear(x, y, y[:, 0]),
    lambda m, x, y: m.nn.functional.linear(x * 2, y),
    lambda m, x, y: m.nn.functional.linear(x * 2, y, y[:, 0]),
    lambda m, x, y: m.addmm(y[:, 0], x, y.t()),
]


@pytest.mark.parametrize("index", range(len(NAMED)))
def test_grad_fn_names_and_next_functions_match_pytorch(index):
    def describe(module):
        x = module.ones(2, 3, requires_grad=True)
        y = module.ones(2, 3, requires_grad=True)
        out = NAMED[index](module, x, y)
        node = out.grad_fn
        nexts = [(type(n).__name__ if n is not None else None, nr) for n, nr in node.next_functions]
        return node.name(), type(node).__name__, nexts

    assert describe(tg) == describe(torch)
