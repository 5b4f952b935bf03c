"""The distributions real programs use besides Normal, Uniform and Categorical: values,
gradients and shapes against PyTorch's (draws differ: tapegrad's random numbers are its own)."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

RNG = np.random.default_rng(5)
COVARIANCE = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5]])


def _params(m, arrays):
    return [m.tensor(a, dtype=m.float64, requires_grad=True) for a in arrays]


CASES = {
    "Bernoulli(probs)": (
        lambda m, p: m.distributions.Bernoulli(probs=p),
        [RNG.uniform(0.05, 0.95, (2, 3))],
        np.array([[0, 1, 1], [1, 0, 0.0]]),
    ),
    "Bernoulli(logits)": (
        lambda m, logits: m.distributions.Bernoulli(logits=logits),
        [RNG.standard_normal((4,))],
        np.array([1.0, 0, 1, 1]),
    ),
    "Laplace": (
        lambda m, loc, scale: m.distributions.Laplace(loc, scale),
        [RNG.standard_normal(3), RNG.uniform(0.5, 2, 3)],
        RNG.standard_normal((2, 3)),
    ),
    "OneHotCategorical": (
        lambda m, logits: m.distributions.OneHotCategorical(logits=logits),
        [RNG.standard_normal((2, 4))],
        np.eye(4)[[1, 3]],
    ),
    "Independent(Normal)": (
        lambda m, loc, scale: m.distributions.Independent(m.distributions.Normal(loc, scale), 1),
        [RNG.standard_normal((2, 3)), RNG.uniform(0.5, 2, (2, 3))],
        RNG.standard_normal((2, 3)),
    ),
    "MultivariateNormal(covariance)": (
        lambda m, loc, c: m.distributions.MultivariateNormal(loc, covariance_matrix=c),
        [RNG.standard_normal((2, 3)), COVARIANCE],
        RNG.standard_normal((4, 2, 3)),
    ),
    "MultivariateNormal(scale_tril)": (
        lambda m, loc, t: m.distributions.MultivariateNormal(loc, scale_tril=t),
        [RNG.standard_normal(3), np.linalg.cholesky(COVARIANCE)],
        RNG.standard_normal((2, 3)),
    ),
    "MultivariateNormal(precision)": (
        lambda m, loc, p: m.distributions.MultivariateNormal(loc, precision_matrix=p),
        [RNG.standard_normal(3), np.linalg.inv(COVARIANCE)],
        RNG.standard_normal(3),
    ),
    "LogNormal": (
        lambda m, loc, scale: m.distributions.LogNormal(loc, scale),
        [RNG.standard_normal(3), RNG.uniform(0.5, 1.5, 3)],
        RNG.uniform(0.2, 3, (2, 3)),
    ),
    "Transformed(sigmoid, affine)": (
        lambda m, loc, scale: m.distributions.TransformedDistribution(
            m.distributions.Normal(loc, scale),
            [m.distributions.transforms.SigmoidTransform(), m.distributions.transforms.AffineTransform(1.0, 3.0)],
        ),
        [RNG.standard_normal(3), RNG.uniform(0.5, 1.5, 3)],
        RNG.uniform(1.2, 3.8, (2, 3)),
    ),
    "Transformed(tanh)": (
        lambda m, loc, scale: m.distributions.TransformedDistribution(
            m.distributions.Normal(loc, scale), m.distributions.transforms.TanhTransform()
        ),
        [RNG.standard_normal(3), RNG.uniform(0.5, 1.5, 3)],
        RNG.uniform(-0.9, 0.9, 3),
    ),
}


def _story(m, name):
    make, arrays, value = CASES[name]
    params = _params(m, arrays)
    d = make(m, *params)
    out = [tuple(d.batch_shape), tuple(d.event_shape), tuple(d.sample((2,)).shape)]
    log_prob = d.log_prob(m.tensor(value, dtype=m.float64))
    log_prob.sum().backward()
    out += [log_prob] + [p.grad for p in params]
    for attribute in ("mean", "variance", "mode"):
        try:
            out.append(getattr(d, attribute))
        except NotImplementedError:
            out.append("not implemented")
    try:
        out.append(d.entropy())
    except NotImplementedError:
        out.append("not implemented")
    if d.has_rsample:
        out.append(tuple(d.rsample((5,)).shape))
    return [o.detach().numpy() if hasattr(o, "detach") else o for o in out]


@pytest.mark.parametrize("name", list(CASES))
def test_distribution_follows_pytorch(name):
    ours = _story(tg, name)
    assert all(not isinstance(o, np.ndarray) or np.isfinite(o).any() or o.size == 0 for o in ours)
    torch = pytest.importorskip("torch")
    theirs = _story(torch, name)
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        if isinstance(a, np.ndarray):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{name}, step {step}")
        else:
            assert a == b, f"{name}, step {step}"


KL_PARAMETERS = {
    "probs": [RNG.uniform(0.1, 0.9, 3), RNG.uniform(0.1, 0.9, 3)],
    "loc": [RNG.standard_normal(3), RNG.standard_normal(3)],
    "scale": [RNG.uniform(0.5, 2, 3), RNG.uniform(0.5, 2, 3)],
    "logits": [RNG.standard_normal(4), RNG.standard_normal(4)],
}


def _kls(m):
    d = m.distributions
    a = _params(m, KL_PARAMETERS["probs"])
    pairs = [(d.Bernoulli(a[0]), d.Bernoulli(a[1]))]
    loc, scale = _params(m, KL_PARAMETERS["loc"]), _params(m, KL_PARAMETERS["scale"])
    pairs.append((d.Laplace(loc[0], scale[0]), d.Laplace(loc[1], scale[1])))
    pairs.append((d.Independent(d.Normal(loc[0], scale[0]), 1), d.Independent(d.Normal(loc[1], scale[1]), 1)))
    logits = _params(m, KL_PARAMETERS["logits"])
    pairs.append((d.OneHotCategorical(logits=logits[0]), d.OneHotCategorical(logits=logits[1])))
    tril = _params(m, [np.linalg.cholesky(COVARIANCE), np.linalg.cholesky(COVARIANCE + np.eye(3))])
    pairs.append((d.MultivariateNormal(loc[0], scale_tril=tril[0]), d.MultivariateNormal(loc[1], scale_tril=tril[1])))
    out = []
    for p, q in pairs:
        kl = d.kl_divergence(p, q)
        kl.sum().backward()
        out.append(kl.detach().numpy())
    return out + [t.grad.numpy() for t in a + loc + scale + logits + tril]


def test_kl_divergences_follow_pytorch():
    ours = _kls(tg)
    torch = pytest.importorskip("torch")
    for a, b in zip(ours, _kls(torch)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_errors_follow_pytorch():
    d = tg.distributions
    with pytest.raises(ValueError, match="Either `probs` or `logits` must be specified, but not both."):
        d.Bernoulli()
    with pytest.raises(ValueError, match="Exactly one of covariance_matrix or precision_matrix or scale_tril"):
        d.MultivariateNormal(tg.zeros(2))
    with pytest.raises(ValueError, match="Expected reinterpreted_batch_ndims <= len"):
        d.Independent(d.Normal(tg.zeros(2), 1.0), 2)
    with pytest.raises(ValueError, match="to satisfy the constraint"):
        d.Laplace(0.0, -1.0)


def _checks(m):
    """What a review found unchecked: each call's result, or its error class and message."""
    d, nan = m.distributions, float("nan")
    t = d.transforms
    calls = [
        lambda: d.LogNormal(0.0, 1.0).log_prob(m.tensor(0.0)),
        lambda: d.TransformedDistribution(d.Normal(0.0, 1.0), t.SigmoidTransform()).log_prob(m.tensor(1.5)),
        lambda: d.OneHotCategorical(logits=m.zeros(3)).log_prob(m.tensor([0.5, 0.5, 0.0])),
        lambda: d.Laplace(0.0, 1.0).log_prob(m.tensor(nan)),
        lambda: d.MultivariateNormal(m.zeros(2), covariance_matrix=m.eye(2)).log_prob(m.tensor([nan, 0.0])),
        lambda: d.MultivariateNormal(m.zeros(2), scale_tril=m.tensor([[1.0, 1.0], [0.0, 1.0]])),
        lambda: d.MultivariateNormal(m.zeros(2), scale_tril=m.tensor([[-1.0, 0.0], [0.0, 1.0]])),
        lambda: d.MultivariateNormal(m.zeros(2), covariance_matrix=m.tensor([[1.0, 2.0], [2.0, 1.0]])),
        lambda: d.MultivariateNormal(m.tensor([nan, 0.0]), covariance_matrix=m.eye(2)),
        lambda: d.MultivariateNormal(m.zeros(3), covariance_matrix=m.eye(3)).log_prob(m.zeros(2)),
        lambda: repr(d.MultivariateNormal(m.zeros(2), scale_tril=m.eye(2))),
        lambda: repr(d.LogNormal(0.0, 1.0)) + repr(d.OneHotCategorical(logits=m.zeros(3))),
    ]
    loc = m.zeros(3, requires_grad=True)
    shifted = d.TransformedDistribution(d.Normal(0.0, 1.0), t.AffineTransform(loc, 2.0))
    results = [tuple(shifted.batch_shape), shifted.sample().requires_grad]
    for call in calls:
        try:
            value = call()
            results.append(value if isinstance(value, str) else float(value.detach().sum()))
        except Exception as error:  # noqa: BLE001 - the class and message are compared
            results.append((type(error).__name__, str(error).split(", but found")[0]))
    return [r.replace("tapegrad.", "torch.") if isinstance(r, str) else r for r in results]


def test_supports_parameters_and_shapes_are_checked_as_pytorch_checks_them():
    ours = _checks(tg)
    assert ours[:2] == [(3,), False] and ours[2][0] == "ValueError"  # (NaN, on the graph, shape ())
    torch = pytest.importorskip("torch")
    theirs = _checks(torch)
    for a, b in zip(ours, theirs):
        if isinstance(a, tuple) and len(a) == 2 and isinstance(a[1], str):
            assert a[0] == b[0] and a[1].replace("tapegrad.", "torch.") == b[1]
        else:
            assert a == b


def test_multivariate_normal_matrices_differentiate_as_pytorch_s():
    # precision_matrix was the inverse of the given covariance, whose gradient is not
    # symmetric (-0.548 and -0.025 off the diagonal, where PyTorch's cholesky_inverse of the
    # factor gives -0.287 twice); from a precision matrix, the factor's second derivatives
    # differed along non-symmetric directions.
    torch = pytest.importorskip("torch")
    C = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 1.5]])  # noqa: N806
    W = np.random.default_rng(3).standard_normal((3, 3))  # noqa: N806
    for kind in ("covariance_matrix", "precision_matrix"):
        for prop in ("scale_tril", "covariance_matrix", "precision_matrix"):
            results = []
            for lib in (torch, tg):
                c = lib.tensor(C, dtype=lib.float64, requires_grad=True)
                d = lib.distributions.MultivariateNormal(lib.zeros(3, dtype=lib.float64), **{kind: c})
                (g,) = lib.autograd.grad((getattr(d, prop) * lib.tensor(W)).sum(), c, create_graph=True)
                # (a given matrix's own property is linear in it: no second derivative)
                gg = lib.autograd.grad((g * lib.tensor(W.T)).sum(), c)[0] if g.requires_grad else None
                results.append((g.detach().numpy(), np.zeros((3, 3)) if gg is None else gg.numpy()))
            np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-9, atol=1e-12)
