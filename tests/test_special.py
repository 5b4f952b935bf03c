"""lgamma, digamma, polygamma, erfinv and ``tapegrad.special``: values at the edges (poles,
infinities, NaN, signed zeros) and PyTorch parity of every name ``tapegrad.special`` exports.
Gradients, create_graph, float32 and replay are the op table's tests (tests/test_op_table.py,
test_torch_parity.py, test_higher_order.py, test_replay.py): these ops are table entries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special

import tapegrad as tg

EDGES = np.array([0.0, -0.0, -1.0, -2.0, -2.5, 1e-300, -1e-300, np.inf, -np.inf, np.nan, 1e17, 0.3, 5.0])
UNIT_EDGES = np.array([0.0, -0.0, 1.0, -1.0, 1.5, -2.0, np.nan, 1e-310, 1 - 1e-16, -0.999, 0.5])


def _eager_and_replayed(name: str, values: np.ndarray) -> list:
    """The op's values, eagerly (numpy's forward) and replayed (the kernels), float64 then float32."""
    results = []
    for dtype in (np.float64, np.float32):
        data = values.astype(dtype)
        results.append(getattr(tg.tensor(data), name)().numpy())
        results.append(tg.record(lambda x: getattr(x, name)(), data)(data).numpy())
    return results


def _same(got: np.ndarray, want: np.ndarray, rtol: float) -> None:
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.signbit(got[got == 0]), np.signbit(want[want == 0]))  # (signed zeros)
    finite = np.isfinite(want)
    assert np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    np.testing.assert_allclose(got[finite], want[finite], rtol=rtol)


@pytest.mark.parametrize(
    "name, reference, values",
    [
        ("lgamma", lambda v: np.where(v == -np.inf, np.inf, scipy.special.gammaln(v)), EDGES),  # (PyTorch's +inf)
        ("digamma", scipy.special.psi, EDGES),
        ("erfinv", lambda v: np.copysign(scipy.special.erfinv(v), v), UNIT_EDGES),
    ],
)
def test_edge_values_eager_and_replayed(name, reference, values):
    """-inf/+inf at digamma's +-0, NaN at its poles (the negative integers) and -inf, lgamma's
    +inf at its poles and at -inf, erfinv's +-inf at +-1, NaN outside [-1, 1], the sign of
    a zero kept: the same eagerly and in a replay, in both dtypes."""
    for index, got in enumerate(_eager_and_replayed(name, values)):
        dtype = np.float64 if index < 2 else np.float32
        want = reference(values.astype(dtype).astype(np.float64)).astype(dtype)
        _same(got, want, rtol=1e-14 if dtype == np.float64 else 1e-6)


def test_digamma_and_polygamma_1_are_scipy_s_to_its_accuracy():
    """Replayed (the kernels) and eager, on both sides of 0 and far from it. PyTorch's
    polygamma(1) is looser (5e-10 relative; tests/test_torch_parity.py allows for it)."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-30, 30, 400), 10 ** rng.uniform(-6, 8, 200), -(10 ** rng.uniform(-6, 5, 200))])
    x = x[np.abs(x - np.round(x)) > 1e-6]  # (off the poles)
    for name, reference, rtol in [
        ("digamma", scipy.special.psi(x), 1e-11),
        ("_trigamma", scipy.special.polygamma(1, x), 1e-12),
    ]:
        replayed = tg.record(lambda v, _name=name: getattr(v, _name)(), x)(x).numpy()
        # (digamma near its roots: relative error there is the root's condition, as scipy's)
        np.testing.assert_allclose(replayed, reference, rtol=rtol, atol=1e-13)
        np.testing.assert_allclose(getattr(tg.tensor(x), name)().numpy(), reference, rtol=1e-15)


def test_polygamma_is_digamma_then_lgamma_s_derivatives():
    x = tg.tensor([0.3, 1.7, 4.0, -2.5], dtype=tg.float64, requires_grad=True)
    for n in range(5):
        np.testing.assert_allclose(tg.polygamma(n, x.detach()).numpy(), scipy.special.polygamma(n, x._data), rtol=1e-12)
    assert tg.polygamma(0, x).grad_fn.name() == "PolygammaBackward0" == x.polygamma(1).grad_fn.name()
    (gradient,) = tg.autograd.grad(x.polygamma(1).sum(), x)
    np.testing.assert_allclose(gradient.numpy(), scipy.special.polygamma(2, x._data), rtol=1e-12)
    with pytest.raises(NotImplementedError, match=r"the gradient of polygamma\(2, x\)"):
        tg.polygamma(2, x)
    with tg.no_grad():
        assert tg.polygamma(2, x).shape == x.shape
    with pytest.raises(RuntimeError, match=r"polygamma\(n, x\) does not support negative n"):
        tg.polygamma(-1, x)
    assert tg.polygamma(1, tg.tensor([1, 2])).dtype == tg.float32  # (integers: the default float dtype)
    # create_graph through polygamma(1): polygamma(2) is no op, so it refuses by name
    with pytest.raises(NotImplementedError, match="create_graph=True is not supported through _trigamma"):
        tg.autograd.grad(x.polygamma(1).sum(), x, create_graph=True)


def test_mvlgamma_is_a_sum_of_lgammas():
    x = tg.tensor([1.7, 3.0, 10.5], dtype=tg.float64)
    want = sum(scipy.special.gammaln(x._data - i / 2) for i in range(3)) + 3 * 2 / 4 * math.log(math.pi)
    np.testing.assert_allclose(tg.mvlgamma(x, 3).numpy(), want, rtol=1e-14)
    np.testing.assert_allclose(tg.special.multigammaln(x, 3).numpy(), want, rtol=1e-14)
    with pytest.raises(RuntimeError, match="p has to be greater than or equal to 1"):
        tg.mvlgamma(x, 0)


SPECIAL = [
    ("digamma", (0.2, 4.0)), ("psi", (0.2, 4.0)), ("gammaln", (-3.5, 4.0)), ("erf", (-3.0, 3.0)),
    ("erfc", (-3.0, 3.0)), ("erfinv", (-0.99, 0.99)), ("exp2", (-3.0, 3.0)), ("expit", (-6.0, 6.0)),
    ("expm1", (-2.0, 2.0)), ("log1p", (-0.9, 3.0)), ("logit", (0.01, 0.99)), ("ndtr", (-6.0, 6.0)),
    ("sinc", (-3.0, 3.0)), ("round", (-3.0, 3.0)),
]  # fmt: skip


@pytest.mark.parametrize("name, domain", SPECIAL, ids=[name for name, _ in SPECIAL])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_special_functions_match_pytorch(name, domain, dtype):
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(3).uniform(*domain, 40)
    ours = tg.tensor(values, dtype=getattr(tg, dtype), requires_grad=name != "round")
    theirs = torch.tensor(values, dtype=getattr(torch, dtype), requires_grad=name != "round")
    out, reference = getattr(tg.special, name)(ours), getattr(torch.special, name)(theirs)
    rtol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(out.detach().numpy(), reference.detach().numpy(), rtol=rtol, atol=rtol)
    if name != "round":
        out.sum().backward()
        reference.sum().backward()
        # (digamma's gradient is PyTorch's trigamma, accurate to 5e-10 relative; tapegrad's to 1e-14)
        grad_rtol = 1e-9 if name in ("digamma", "psi") and dtype == "float64" else rtol * 100
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=grad_rtol, atol=rtol)


@pytest.mark.parametrize(
    "name, call",
    [
        ("polygamma", lambda m, x: m.special.polygamma(3, x)),
        ("multigammaln", lambda m, x: m.special.multigammaln(x + 2, 2)),
        ("xlog1py", lambda m, x: m.special.xlog1py(x, x - 0.5)),
        ("xlogy", lambda m, x: m.special.xlogy(x, x + 1)),
        ("logsumexp", lambda m, x: m.special.logsumexp(x, 0)),
        ("softmax", lambda m, x: m.special.softmax(x, 0)),
        ("log_softmax", lambda m, x: m.special.log_softmax(x, 0)),
    ],
)
def test_special_functions_of_other_arguments_match_pytorch(name, call):
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(4).uniform(0.1, 3.0, 12)
    ours, theirs = call(tg, tg.tensor(values)), call(torch, torch.tensor(values))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
