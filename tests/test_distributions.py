"""tapegrad.distributions against torch.distributions (float64): values and gradients of
log_prob, entropy, cdf and kl_divergence, PyTorch's error messages and reprs; and, by their
closed forms, the shapes and gradients of samples and the frequencies of categorical draws."""

import math

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.distributions import Categorical, Normal, Uniform, kl_divergence

torch = pytest.importorskip("torch")
td = pytest.importorskip("torch.distributions")

rng = np.random.default_rng(0)
LOC, SCALE = rng.standard_normal((2, 3)), rng.uniform(0.5, 2.0, (2, 3))
VALUE = rng.standard_normal((4, 2, 3))
LOGITS = rng.standard_normal((2, 5))
LABELS = rng.integers(0, 5, (3, 2))


def both(array, grad=True):
    return tg.tensor(array, requires_grad=grad), torch.tensor(array, requires_grad=grad)


def check(ours, theirs, inputs, rtol=1e-12):
    """Values equal, then the gradients of their sums with respect to ``inputs`` pairs."""
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol, atol=1e-14)
    ours.sum().backward()
    theirs.sum().backward()
    for a, b in inputs:
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("what", ["log_prob", "cdf", "entropy"])
def test_normal_matches_pytorch(what):
    (loc, tloc), (scale, tscale), (value, tvalue) = both(LOC), both(SCALE), both(VALUE)
    ours, theirs = Normal(loc, scale), td.Normal(tloc, tscale)
    args = () if what == "entropy" else (value,)
    targs = () if what == "entropy" else (tvalue,)
    inputs = [(scale, tscale)] if what == "entropy" else [(loc, tloc), (scale, tscale), (value, tvalue)]
    check(getattr(ours, what)(*args), getattr(theirs, what)(*targs), inputs)


def test_normal_rsample_differentiates_in_loc_and_scale():
    loc, scale = tg.tensor(LOC, requires_grad=True), tg.tensor(SCALE, requires_grad=True)
    tg.manual_seed(3)
    sample = Normal(loc, scale).rsample((5,))
    assert sample.shape == (5, 2, 3) and sample.requires_grad
    eps = (sample.detach() - loc.detach()) / scale.detach()  # the standard normal draws used
    (sample**2).sum().backward()
    want = 2 * sample.detach().numpy()
    np.testing.assert_allclose(loc.grad.numpy(), want.sum(0), rtol=1e-12)
    np.testing.assert_allclose(scale.grad.numpy(), (want * eps.numpy()).sum(0), rtol=1e-12)
    drawn = Normal(loc, scale).sample()
    assert drawn.shape == (2, 3) and not drawn.requires_grad


def test_normal_of_numbers_and_its_repr_and_moments():
    ours, theirs = Normal(0.0, 2.0), td.Normal(0.0, 2.0)
    assert repr(ours) == repr(theirs)
    assert repr(Normal(tg.zeros(2), tg.ones(2))) == repr(td.Normal(torch.zeros(2), torch.ones(2))).replace(
        "torch", "tapegrad"
    )
    assert ours.batch_shape == () and ours.sample((7, 2)).shape == (7, 2)
    assert ours.sample().dtype == tg.float32  # the default dtype, as PyTorch's
    assert float(ours.variance) == 4.0 and float(ours.stddev) == 2.0 and float(ours.mean) == 0.0
    np.testing.assert_allclose(
        float(ours.log_prob(tg.tensor(1.0))), float(theirs.log_prob(torch.tensor(1.0))), rtol=1e-6
    )


def test_uniform_matches_pytorch():
    low, high = rng.uniform(-2, 0, 4), rng.uniform(0.5, 3, 4)
    (lo, tlo), (hi, thi) = both(low), both(high)
    value = np.clip(rng.uniform(-1, 1, (3, 4)), low + 1e-3, high - 1e-3)
    check(
        Uniform(lo, hi).log_prob(tg.tensor(value)),
        td.Uniform(tlo, thi).log_prob(torch.tensor(value)),
        [(lo, tlo), (hi, thi)],
    )
    (lo, tlo), (hi, thi) = both(low), both(high)
    check(Uniform(lo, hi).entropy(), td.Uniform(tlo, thi).entropy(), [(lo, tlo), (hi, thi)])
    tg.manual_seed(0)
    drawn = Uniform(tg.tensor(low), tg.tensor(high)).sample((1000,)).numpy()
    assert drawn.shape == (1000, 4) and np.all(drawn >= low) and np.all(drawn < high)


@pytest.mark.parametrize("given", ["logits", "probs"])
@pytest.mark.parametrize("what", ["log_prob", "entropy"])
def test_categorical_matches_pytorch(given, what):
    parameter = LOGITS if given == "logits" else np.exp(LOGITS)  # unnormalised either way
    (p, tp) = both(parameter)
    ours, theirs = Categorical(**{given: p}), td.Categorical(**{given: tp})
    if what == "log_prob":
        check(ours.log_prob(tg.tensor(LABELS)), theirs.log_prob(torch.tensor(LABELS)), [(p, tp)])
    else:
        check(ours.entropy(), theirs.entropy(), [(p, tp)])
    assert repr(ours) == repr(theirs).replace("torch", "tapegrad")  # (logits or probs read above: both)


def test_categorical_samples_follow_the_probabilities():
    tg.manual_seed(1)
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.0, 0.5]])
    c = Categorical(probs=tg.tensor(probs))
    assert c.batch_shape == (2,) and c.event_shape == () and c.param_shape == (2, 3)
    drawn = c.sample((20000,))
    assert drawn.shape == (20000, 2) and drawn.dtype == tg.int64
    for row in range(2):
        freq = np.bincount(drawn.numpy()[:, row], minlength=3) / 20000
        np.testing.assert_allclose(freq, probs[row], atol=0.02)
    assert c.mode.tolist() == [1, 0]
    assert bool(tg.isnan(c.mean).all())


def test_kl_divergences_match_pytorch():
    (a, ta), (b, tb), (c, tc), (d, tdd) = both(LOC), both(SCALE), both(LOC[::-1].copy()), both(SCALE[::-1].copy())
    check(
        kl_divergence(Normal(a, b), Normal(c, d)),
        td.kl_divergence(td.Normal(ta, tb), td.Normal(tc, tdd)),
        [(a, ta), (b, tb), (c, tc), (d, tdd)],
    )
    probs_q = np.exp(LOGITS[::-1]).copy()
    probs_q[0, 2] = 0.0  # q excludes a class p allows: infinite, as PyTorch's
    (p, tp), (q, tq) = both(LOGITS), both(probs_q)
    ours = kl_divergence(Categorical(logits=p), Categorical(probs=q))
    theirs = td.kl_divergence(td.Categorical(logits=tp), td.Categorical(probs=tq))
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)
    assert math.isinf(float(ours[0]))
    ours[1].backward()
    theirs[1].backward()
    np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12, atol=1e-14)
    with pytest.raises(
        NotImplementedError, match="^No KL\\(p \\|\\| q\\) is implemented for p type Normal and q type Categorical$"
    ):
        kl_divergence(Normal(0.0, 1.0), Categorical(logits=tg.zeros(2)))


def messages(build):
    """The message of the ValueError ``build(module)`` raises with tapegrad and with torch."""
    found = []
    for module, space in ((tg, tg.distributions), (torch, td)):
        with pytest.raises(ValueError) as raised:
            build(module, space)
        found.append(str(raised.value))
    return found


@pytest.mark.parametrize(
    "build",
    [
        lambda m, d: d.Normal(m.zeros(2), m.tensor([1.0, -1.0])),
        lambda m, d: d.Normal(0.0, 0.0),
        lambda m, d: d.Uniform(1.0, 0.0),
        lambda m, d: d.Uniform(m.zeros(2), m.ones(2)).log_prob(m.tensor([0.5, 2.0])),
        lambda m, d: d.Categorical(),
        lambda m, d: d.Categorical(probs=m.tensor([0.5, -0.1])),
        lambda m, d: d.Categorical(probs=m.tensor([0.2, 0.8])).log_prob(m.tensor(3)),
        lambda m, d: d.Normal(m.zeros(2), m.ones(2)).log_prob(m.zeros(3)),
        lambda m, d: d.Normal(0.0, 1.0).log_prob(0.5),
        lambda m, d: d.Normal(0.0, 1.0).log_prob(m.tensor(float("nan"))),
        lambda m, d: d.Categorical(logits=m.tensor([0.0, float("nan")])),
    ],
    ids=[
        "scale",
        "scale-number",
        "uniform",
        "uniform-support",
        "neither",
        "probs",
        "support",
        "shape",
        "number",
        "nan-value",
        "nan-logits",
    ],  # fmt: skip
)
def test_bad_arguments_raise_pytorchs_value_errors(build):
    ours, theirs = messages(build)
    assert ours == theirs.replace("torch.", "tapegrad.")


def test_validate_args_false_skips_the_checks():
    assert math.isnan(float(Normal(0.0, -1.0, validate_args=False).entropy()))


def test_edges_pytorch_gives_values_for():
    # the upper end of a Uniform's support (log_prob -inf, not an error), and the KL divergences
    # between a Normal and a Uniform, both ways
    assert float(Uniform(0.0, 1.0).log_prob(tg.tensor(1.0))) == float("-inf")
    assert float(kl_divergence(Normal(0.0, 1.0), Uniform(0.0, 1.0))) == float("inf")
    (low, tlow), (loc, tloc) = both(np.array([-0.5, 0.0])), both(np.array([0.3, -1.0]))
    ours = kl_divergence(Uniform(low, low + 2.0), Normal(loc, 1.5))
    theirs = td.kl_divergence(td.Uniform(tlow, tlow + 2.0), td.Normal(tloc, 1.5))
    check(ours, theirs, [(low, tlow), (loc, tloc)])


def test_base_distribution_raises_not_implemented():
    # (AttributeError before: ``except NotImplementedError`` fallbacks around entropy() broke)
    class Custom(tg.distributions.Distribution):
        arg_constraints: dict = {}

    d = Custom(validate_args=False)
    for call in (lambda: d.log_prob(tg.tensor(1.0)), d.entropy, lambda: d.mean, lambda: d.variance, lambda: d.cdf(0)):
        with pytest.raises(NotImplementedError):
            call()


def test_random_floats_refuse_integer_dtypes():
    # randn(dtype=int64) truncated floats: a Normal of integer parameters drew integers
    with pytest.raises(NotImplementedError, match="\"normal_kernel_cpu\" not implemented for 'Long'"):
        tg.distributions.Normal(tg.tensor([0, 1]), tg.tensor([1, 2])).rsample()
    with pytest.raises(NotImplementedError, match="\"check_uniform_bounds\" not implemented for 'Int'"):
        tg.rand(2, dtype=tg.int32)
    with pytest.raises(NotImplementedError, match="not implemented for 'Bool'"):
        tg.randn_like(tg.ones(2, dtype=tg.bool))


def test_kl_normal_uniform_is_an_infinite_constant():
    loc = tg.tensor([0.0, float("inf")], requires_grad=True)
    kl = tg.distributions.kl_divergence(tg.distributions.Normal(loc, 1.0), tg.distributions.Uniform(0.0, 1.0))
    assert kl.tolist() == [float("inf")] * 2 and not kl.requires_grad  # (was NaN at inf, and on the graph)


def test_transforms_take_a_cache_of_one_pair():
    """``TanhTransform(cache_size=1)``, the squashed Gaussian of SAC-style policies, raised
    ``TypeError``. With the cache, the log-density of a sample whose tanh rounds to 1 is taken
    at the sample's own x, not at atanh(1) = inf."""
    from tapegrad.distributions import Normal, TransformedDistribution
    from tapegrad.distributions.transforms import AffineTransform, ExpTransform, SigmoidTransform, TanhTransform

    for transform in (ExpTransform, SigmoidTransform, TanhTransform):
        assert transform(cache_size=1)._cache_size == 1
        with pytest.raises(ValueError, match="cache_size must be 0 or 1"):
            transform(cache_size=2)
    assert AffineTransform(0.0, 2.0, cache_size=1)._cache_size == 1
    mu = tg.tensor([0.1, 30.0], dtype=tg.float64, requires_grad=True)
    base = Normal(mu, tg.tensor([1.0, 0.5], dtype=tg.float64))
    squashed = TransformedDistribution(base, [TanhTransform(cache_size=1)])
    sample = squashed.rsample()
    assert sample[1].item() == 1.0
    log_prob = squashed.log_prob(sample)
    assert np.isfinite(log_prob.detach().numpy()).all()
    log_prob.sum().backward()
    assert np.isfinite(mu.grad.numpy()).all()
    uncached = TransformedDistribution(base, [TanhTransform()])
    assert not np.isfinite(uncached.log_prob(sample)[1].item())
