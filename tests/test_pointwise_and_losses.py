"""The activations of ``nn/_pointwise.py`` and the distances and losses of ``nn/_losses.py``
against PyTorch: values, every input's gradient, the node PyTorch names, at their break points
(hardtanh's bounds, hardswish's -3 and 3, logsigmoid's 0) and between; their modules' reprs;
central differences away from the break points."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

import tapegrad as tg

RNG = np.random.default_rng(42)
# Break points of the activations below, and points on either side.
POINTS = np.array([-30.0, -6.0, -3.0, -2.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5, 3.0, 6.0, 7.5, 30.0])

ACTIVATIONS = {
    "hardtanh": lambda F, x: F.hardtanh(x),
    "hardtanh(-2, 2.5)": lambda F, x: F.hardtanh(x, -2.0, 2.5),
    "relu6": lambda F, x: F.relu6(x),
    "hardsigmoid": lambda F, x: F.hardsigmoid(x),
    "hardswish": lambda F, x: F.hardswish(x),
    "logsigmoid": lambda F, x: F.logsigmoid(x),
    "softsign": lambda F, x: F.softsign(x),
    "mish": lambda F, x: F.mish(x),
    "selu": lambda F, x: F.selu(x),
    "celu": lambda F, x: F.celu(x),
    "celu(0.5)": lambda F, x: F.celu(x, 0.5),
    # existing ones at the same points: silu's value below -20 was off (tanh's cancellation)
    "silu": lambda F, x: F.silu(x),
    "elu": lambda F, x: F.elu(x, 0.7),
    "leaky_relu": lambda F, x: F.leaky_relu(x, 0.1),
    "softplus": lambda F, x: F.softplus(x),
}


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activations_match_pytorch_at_and_between_break_points(name, dtype):
    torch = _torch()
    function = ACTIVATIONS[name]
    seed = RNG.standard_normal(POINTS.shape)
    results = []
    for m in (tg, torch):
        x = m.tensor(POINTS.astype(dtype), requires_grad=True)
        out = function(m.nn.functional, x)
        (out * m.tensor(seed.astype(dtype))).sum().backward()
        results.append((out.detach().numpy(), x.grad.numpy(), out.grad_fn.name()))
    (value, gradient, node), (expected, expected_gradient, expected_node) = results
    tolerance = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(value, expected, rtol=tolerance, atol=tolerance)
    if name == "hardsigmoid" and dtype == "float64":
        # PyTorch's hardsigmoid_backward multiplies by 1.0f / 6.0f, rounded to float32 in
        # every dtype; tapegrad divides by 6 in the dtype: 3e-8 apart, relatively.
        tolerance = 6e-8
    np.testing.assert_allclose(gradient, expected_gradient, rtol=tolerance, atol=tolerance)
    assert node == expected_node


@pytest.mark.parametrize(
    "name",
    ["hardtanh", "relu6", "hardswish", "selu", "celu", "mish", "hardsigmoid", "relu", "silu", "elu", "leaky_relu"],
)
def test_in_place_activations_write_their_input(name):
    """``inplace=True`` changes the input in place, differentiably. silu's, elu's and
    leaky_relu's were computed, then copied in: their backward raised "modified by an inplace
    operation", where PyTorch runs."""
    torch = _torch()
    results = []
    for m in (tg, torch):
        x = m.tensor(POINTS, requires_grad=True)
        y = x * 1.0
        getattr(m.nn.functional, name)(y, inplace=True)
        (y * y).sum().backward()
        results.append((y.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    tolerance = 6e-8 if name == "hardsigmoid" else 1e-12  # (PyTorch's float32 1/6: see above)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=tolerance, atol=tolerance)


def _pair(shape=(5, 4)):
    return RNG.standard_normal(shape), RNG.standard_normal(shape)


def _signs(count):
    return np.where(RNG.standard_normal(count) > 0, 1.0, -1.0)


LOSSES = {
    "kl_div mean": (lambda F, a, b: F.kl_div(a.log_softmax(1), b.softmax(1)), _pair()),
    "kl_div batchmean": (lambda F, a, b: F.kl_div(a.log_softmax(1), b.softmax(1), reduction="batchmean"), _pair()),
    "kl_div zeros in target": (
        # (the target's own gradient at its zeros is PyTorch's NaN, xlogy's 0 * log 0: not compared)
        lambda F, a, b: F.kl_div(
            a.log_softmax(1), (b.relu() / (b.relu().sum(1, keepdim=True) + 1)).detach(), reduction="sum"
        ),
        _pair(),
    ),
    "kl_div log_target": (
        lambda F, a, b: F.kl_div(a.log_softmax(1), b.log_softmax(1), reduction="none", log_target=True),
        _pair(),
    ),
    "cosine_similarity": (lambda F, a, b: F.cosine_similarity(a, b), _pair()),
    "cosine_similarity dim 0, broadcast": (
        lambda F, a, b: F.cosine_similarity(a, b[:1], dim=0),
        _pair(),
    ),
    "pairwise_distance": (lambda F, a, b: F.pairwise_distance(a, b), _pair()),
    "pairwise_distance p=1 keepdim": (lambda F, a, b: F.pairwise_distance(a, b, p=1.0, keepdim=True), _pair()),
    "pairwise_distance 1-D": (lambda F, a, b: F.pairwise_distance(a[0], b[0]), _pair()),
    "margin_ranking_loss": (
        lambda F, a, b: F.margin_ranking_loss(a[:, 0], b[:, 0], _target(F, 5), margin=0.3),
        _pair(),
    ),
    "cosine_embedding_loss": (
        lambda F, a, b: F.cosine_embedding_loss(a, b, _target(F, 5), margin=0.2, reduction="sum"),
        _pair(),
    ),
    "cosine_embedding_loss 1-D": (lambda F, a, b: F.cosine_embedding_loss(a[0], b[0], _target(F, 1)[0]), _pair()),
    "triplet_margin_loss": (lambda F, a, b: F.triplet_margin_loss(a, b, a * 0.5 - b), _pair()),
    "triplet_margin_loss swap p=1": (
        lambda F, a, b: F.triplet_margin_loss(a, b, a * 0.5 - b, margin=2.0, p=1.0, swap=True, reduction="none"),
        _pair(),
    ),
    "hinge_embedding_loss": (lambda F, a, b: F.hinge_embedding_loss(a, _target(F, 20).reshape(5, 4)), _pair()),
    "soft_margin_loss": (lambda F, a, b: F.soft_margin_loss(a, _target(F, 20).reshape(5, 4)), _pair()),
}
_TARGETS = _signs(20)


def _target(F, count):
    module = tg if F is tg.nn.functional else _torch()
    return module.tensor(_TARGETS[:count])


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_and_distances_match_pytorch(name):
    torch = _torch()
    function, (a0, b0) = LOSSES[name]
    results = []
    for m in (tg, torch):
        a, b = m.tensor(a0, requires_grad=True), m.tensor(b0, requires_grad=True)
        with pytest.warns(UserWarning) if "kl_div mean" in name else contextlib.nullcontext():
            out = function(m.nn.functional, a, b)
        out.sum().backward()
        results.append((out.detach().numpy(), a.grad.numpy(), None if b.grad is None else b.grad.numpy()))
    for got, expected in zip(*results):
        assert (got is None) == (expected is None)
        if expected is not None:
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(LOSSES))
def test_the_losses_gradients_are_central_differences(name):
    """Away from its kinks, each loss's gradient in its first input is the central difference
    of its value (float64, h = 1e-6)."""
    function, (a0, b0) = LOSSES[name]
    F, b = tg.nn.functional, tg.tensor(b0)

    def value(a):
        return float(function(F, tg.tensor(a), b).sum())

    a = tg.tensor(a0, requires_grad=True)
    with pytest.warns(UserWarning) if "kl_div mean" in name else contextlib.nullcontext():
        function(F, a, b).sum().backward()
        numeric = np.zeros_like(a0)
        for index in np.ndindex(a0.shape):
            step = np.zeros_like(a0)
            step[index] = 1e-6
            numeric[index] = (value(a0 + step) - value(a0 - step)) / 2e-6
    np.testing.assert_allclose(a.grad.numpy(), numeric, rtol=1e-5, atol=1e-6)


MODULES = [
    ("Hardtanh", (), {}),
    ("Hardtanh", (-2.0, 3.0, True), {}),
    ("ReLU6", (), {"inplace": True}),
    ("Hardsigmoid", (), {}),
    ("Hardswish", (), {}),
    ("LogSigmoid", (), {}),
    ("Softsign", (), {}),
    ("Mish", (), {}),
    ("SELU", (True,), {}),
    ("CELU", (0.5,), {}),
    ("KLDivLoss", (), {"reduction": "batchmean"}),
    ("CosineSimilarity", (0,), {}),
    ("PairwiseDistance", (), {"p": 1.0}),
    ("MarginRankingLoss", (0.5,), {}),
    ("CosineEmbeddingLoss", (), {}),
    ("TripletMarginLoss", (), {"swap": True}),
    ("HingeEmbeddingLoss", (2.0,), {}),
    ("SoftMarginLoss", (), {"reduction": "sum"}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), MODULES, ids=[m[0] for m in MODULES])
def test_modules_repr_and_options_as_pytorch(name, args, kwargs):
    torch = _torch()
    ours, theirs = getattr(tg.nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    for key in vars(theirs):
        if not key.startswith("_") and key != "training":
            assert getattr(ours, key) == getattr(theirs, key), key


def test_bad_arguments_raise_as_in_pytorch():
    torch = _torch()
    for m in (tg, torch):
        with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
            m.nn.functional.hardtanh(m.ones(2), 1.0, -1.0)
        with pytest.raises(ValueError, match="not a valid value for reduction"):
            m.nn.functional.margin_ranking_loss(m.ones(2), m.ones(2), m.ones(2), reduction="average")


@pytest.mark.parametrize("name", list(ACTIVATIONS) + list(LOSSES))
def test_replays_equal_eager_at_new_inputs(name):
    """Recorded once (``tapegrad.record``), each replays at other inputs to eager's value and
    gradient: the selects' masks and the detached clamps are recomputed, not frozen."""
    if name in ACTIVATIONS:
        function, shape = ACTIVATIONS[name], POINTS.shape

        def loss(x):
            return function(tg.nn.functional, x * 4.0).sum()
    else:
        function, (_, b0) = LOSSES[name]
        shape = b0.shape
        b = tg.tensor(b0)

        def loss(x):
            return function(tg.nn.functional, x, b).sum()

    first, other = RNG.standard_normal(shape), RNG.standard_normal(shape) * 2.0
    with pytest.warns(UserWarning) if "kl_div mean" in name else contextlib.nullcontext():
        tape = tg.record(loss, first)
        value, (gradient,) = tape.value_and_grad(other)
        leaf = tg.tensor(other, requires_grad=True)
        expected = loss(leaf)
    expected.backward()
    np.testing.assert_allclose(value.numpy(), expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gradient.numpy(), leaf.grad.numpy(), rtol=1e-12, atol=1e-15)


def _cross_entropies(m, X, T, P, W):
    F = m.nn.functional
    results = []
    for options in (
        {},
        {"reduction": "sum"},
        {"reduction": "none"},
        {"weight": m.tensor(W)},
        {"label_smoothing": 0.2},
        {"weight": m.tensor(W), "label_smoothing": 0.1, "reduction": "none"},
    ):
        for target in (m.tensor(T), m.tensor(P)):
            x = m.tensor(X, requires_grad=True)
            loss = F.cross_entropy(x, target, **options)
            loss.sum().backward()
            results.append((loss.detach().numpy(), x.grad.numpy()))
    return results


@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (6, 3), (3,)])
def test_cross_entropy_of_probabilities_and_of_k_dimensional_inputs(shape):
    """Class-probability targets (mixup, distillation) and (N, C, d1, ...) inputs
    (segmentation) raised; each now as PyTorch computes it."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal(shape)
    labels_shape = (shape[0], *shape[2:]) if len(shape) > 1 else ()
    T = rng.integers(0, 3, labels_shape)
    if len(shape) > 1:
        T.reshape(-1)[0] = -100  # an ignored position
    P = np.moveaxis(rng.dirichlet(np.ones(3), labels_shape), -1, 1 if len(shape) > 1 else 0)
    W = np.array([0.5, 1.0, 2.0])
    ours = _cross_entropies(tg, X, T, P, W)
    # closed form of the plain probability case: -sum(p log softmax(x)) over classes, mean over samples
    log_p = X - np.log(np.exp(X).sum(axis=1 if len(shape) > 1 else 0, keepdims=True))
    samples = X.size // 3
    np.testing.assert_allclose(ours[1][0], -(P * log_p).sum() / samples, rtol=1e-12)
    torch = pytest.importorskip("torch")
    for (value, grad), (expected_value, expected_grad) in zip(ours, _cross_entropies(torch, X, T, P, W)):
        np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)


def _rms_norm(m):
    rng = np.random.default_rng(0)
    x = m.tensor(rng.standard_normal((2, 3, 4)), dtype=m.float32, requires_grad=True)
    w = m.tensor(rng.uniform(0.5, 1.5, (3, 4)), dtype=m.float32, requires_grad=True)
    y = m.nn.functional.rms_norm(x, (3, 4), w)
    (y * m.arange(24.0).reshape(2, 3, 4)).sum().backward()
    module = m.nn.RMSNorm(4, eps=1e-3)
    shown = (repr(module), repr(m.nn.RMSNorm([3])), [k for k, _ in module.named_parameters()], y.grad_fn.name())
    errors = []
    for bad in (
        lambda: m.nn.functional.rms_norm(m.ones(2, 3), (4,)),
        lambda: m.nn.functional.rms_norm(m.ones(2, 3), 3),
    ):
        with pytest.raises((RuntimeError, TypeError)) as error:
            bad()
        errors.append((error.type.__name__, str(error.value)))
    values = [t.detach().numpy() for t in (y, x.grad, w.grad, module(m.ones(2, 4) * 3))]
    return shown, errors, values


def test_rms_norm_matches_pytorch():
    torch = pytest.importorskip("torch")
    (shown, errors, values), (their_shown, their_errors, theirs) = _rms_norm(tg), _rms_norm(torch)
    assert shown == their_shown and errors == their_errors
    for got, want in zip(values, theirs):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_hardtanh_of_an_unsigned_tensor_refuses_negative_limits():
    x = tg.arange(5, dtype=tg.uint8)
    with pytest.raises(RuntimeError, match="cannot do hardtanh on an unsigned type with negative limits"):
        tg.nn.functional.hardtanh(x, -3, 3)  # (-3 as uint8 is 253: every element came out 3)
    assert tg.nn.functional.hardtanh(x, 0, 3).tolist() == [0, 1, 2, 3, 3]
    assert tg.nn.functional.hardtanh(x, -0.5, 3).tolist() == [0, 1, 2, 3, 3]  # (the limits as integers)


@pytest.mark.parametrize("target", [lambda: tg.rand(3, 4), lambda: tg.tensor(0), lambda: tg.tensor([1, 0])])
def test_cross_entropy_names_a_batch_size_mismatch_as_pytorch(target):
    batch = target().shape[0] if target().dim() else 0
    with pytest.raises(ValueError, match=rf"Expected input batch_size \(5\) to match target batch_size \({batch}\)\."):
        tg.nn.functional.cross_entropy(tg.randn(5, 4), target())


def test_prelu_and_bilinear_follow_the_default_dtype():
    previous = tg.get_default_dtype()
    tg.set_default_dtype(tg.float64)
    try:
        prelu, bilinear = tg.nn.PReLU(), tg.nn.Bilinear(2, 3, 4)
        assert prelu.weight.dtype == tg.float64 and bilinear.weight.dtype == tg.float64
        x1, x2 = tg.randn(5, 2), tg.randn(5, 3)
        assert bilinear(x1, x2).dtype == tg.float64  # (mixed dtypes raised)
    finally:
        tg.set_default_dtype(previous)
    assert tg.nn.PReLU().weight.dtype == tg.float32


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_loss_of_exactly_zero_is_positive_zero(reduction):
    """Every target certain: PyTorch's kernel subtracts from 0 and prints tensor(0.); the
    negated sum printed tensor(-0.)."""
    logits = tg.tensor([[0.0, -1000.0], [0.0, -800.0]])
    loss = tg.nn.functional.cross_entropy(logits, tg.tensor([0, 0]), reduction=reduction)
    assert str(loss) == "tensor(0.)" and math.copysign(1.0, loss.item()) == 1.0


@pytest.mark.parametrize(
    "shape, reduction, node",
    [
        ((2, 3), "mean", "NllLossBackward0"),
        ((2, 3, 4), "mean", "NllLoss2DBackward0"),
        ((2, 3, 4), "none", "ViewBackward0"),
        ((2, 3, 4, 5), "sum", "NllLoss2DBackward0"),
        ((2, 3, 4, 5), "none", "NllLoss2DBackward0"),
        ((2, 3, 2, 2, 2), "mean", "NllLoss2DBackward0"),
        ((2, 3, 2, 2, 2), "none", "ViewBackward0"),
    ],
)
def test_cross_entropy_over_positions_shows_pytorchs_node(shape, reduction, node):
    """A seq2seq loss over (N, C, T) logits printed grad_fn=<NllLossBackward0>; PyTorch's node
    for inputs of 3 or more dimensions is NllLoss2DBackward0 (a view of it where a 3-d or 5-d
    input's losses are kept)."""
    x = tg.randn(*shape, requires_grad=True)
    target = tg.zeros((shape[0], *shape[2:]), dtype=tg.int64)
    loss = tg.nn.functional.cross_entropy(x, target, reduction=reduction)
    assert type(loss.grad_fn).__name__ == node and f"grad_fn=<{node}>" in repr(loss)


_MIXED_DTYPE_LOSSES = {  # float32 scores against a float64 target or weight
    "huber_loss": lambda F, x, t, w: F.huber_loss(x, t, reduction="none"),
    "huber_loss, mean": lambda F, x, t, w: F.huber_loss(x, t),
    "soft_margin_loss": lambda F, x, t, w: F.soft_margin_loss(x, t.sign(), reduction="none"),
    "smooth_l1_loss": lambda F, x, t, w: F.smooth_l1_loss(x, t),  # (promoted: PyTorch's differs here)
    "binary_cross_entropy": lambda F, x, t, w: F.binary_cross_entropy(
        x.sigmoid(), x.detach().sigmoid(), weight=w, reduction="none"
    ),
    "bce_with_logits, pos_weight": lambda F, x, t, w: F.binary_cross_entropy_with_logits(
        x, x.detach().sigmoid(), pos_weight=w, reduction="none"
    ),
    "bce_with_logits, weight": lambda F, x, t, w: F.binary_cross_entropy_with_logits(x, x.detach().sigmoid(), weight=w),
    "cross_entropy": lambda F, x, t, w: F.cross_entropy(x, x.argmax(1).detach(), weight=w),
    "nll_loss": lambda F, x, t, w: F.nll_loss(x, x.argmax(1).detach(), weight=w),
    "multi_margin_loss": lambda F, x, t, w: F.multi_margin_loss(x, x.argmax(1).detach(), weight=w),
}


@pytest.mark.parametrize("name", list(_MIXED_DTYPE_LOSSES))
def test_a_loss_of_mixed_dtypes_has_pytorch_s_dtype_or_error(name):
    """A float64 target or weight with float32 scores: PyTorch's kernels write the input's dtype
    (a float64 loss here), or refuse one class-weight dtype against another (they ran here)."""
    torch = pytest.importorskip("torch")
    scores = np.array([[0.3, -1.2], [2.0, 0.5]], np.float32)
    outcomes = []
    for m in (tg, torch):
        x = m.tensor(scores, requires_grad=True)
        target = m.tensor(scores.astype(np.float64) + 1.0)
        weight = m.tensor([1.0, 2.0], dtype=m.float64)
        try:
            loss = _MIXED_DTYPE_LOSSES[name](m.nn.functional, x, target, weight)
        except RuntimeError as error:
            outcomes.append(("raises", str(error)))
            continue
        outcomes.append((str(loss.dtype).split(".")[-1], loss.detach().numpy()))
        if m is tg:  # (PyTorch's huber_loss backward refuses the float64 target it took)
            loss.sum().backward()
            assert x.grad.dtype == x.dtype
    ours, theirs = outcomes
    assert ours[0] == theirs[0]
    if ours[0] == "raises":
        assert ours[1] == theirs[1]
    else:
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("shapes", [((), ()), ((3,), ()), ((3,), (3,)), ((2, 3), (2,)), ((2, 3), (2, 1))])
def test_gaussian_nll_loss_keeps_pytorch_s_shape(shapes, reduction):
    """A 0-d input and variance gave a loss of shape (1,) without reduction, where PyTorch's is
    0-d: () was taken for the input's shape less its last dimension, and the variance widened."""
    input_shape, var_shape = shapes
    x = tg.tensor(np.linspace(0.1, 0.9, max(1, math.prod(input_shape))).reshape(input_shape), requires_grad=True)
    var = tg.full(var_shape, 2.0, dtype=tg.float64)
    loss = tg.nn.functional.gaussian_nll_loss(x, tg.zeros_like(x), var, reduction=reduction)
    expected = input_shape if reduction == "none" else ()
    assert tuple(loss.shape) == expected
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x.detach().numpy() / 2.0 / (1 if reduction != "mean" else x.numel()))


def test_cosine_similarity_of_vectors_whose_norm_overflows():
    """float32 vectors of 1e20: the squares overflow, the norm is inf and PyTorch's similarity
    0 (each vector divided by inf). The clamp to eps, written max(norm, eps) - norm, was inf -
    inf: NaN. A norm below eps still takes eps, and a zero vector gives 0."""
    x = tg.tensor([[1e20, -3e20, 2e20]], dtype=tg.float32, requires_grad=True)
    y = tg.tensor([[2e20, 1e20, -1e20]], dtype=tg.float32)
    similarity = tg.nn.functional.cosine_similarity(x, y)
    np.testing.assert_array_equal(similarity.detach().numpy(), [0.0])
    similarity.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    tiny = tg.tensor([[1e-10, 0.0]], dtype=tg.float64)
    np.testing.assert_allclose(tg.nn.functional.cosine_similarity(tiny, tiny).numpy(), [1e-20 / 1e-16])
    zero = tg.zeros(1, 3)
    np.testing.assert_array_equal(tg.nn.functional.cosine_similarity(zero, zero).numpy(), [0.0])


_EMPTY_CASES = {  # an empty batch, or an empty embedding: PyTorch's shapes
    "flatten": (lambda F: tg.zeros(0, 2, 3, 4).flatten(-2), (0, 2, 12)),
    "flatten, all": (lambda F: tg.zeros(2, 0, 3).flatten(), (0,)),
    "fold": (lambda F: F.fold(tg.zeros(0, 8, 4), (3, 3), 2), (0, 2, 3, 3)),
    "adaptive_max_pool2d": (lambda F: F.adaptive_max_pool2d(tg.zeros(0, 2, 4, 4), 2), (0, 2, 2, 2)),
    "instance_norm": (lambda F: F.instance_norm(tg.zeros(0, 3, 2)), (0, 3, 2)),
    "index_add": (lambda F: tg.zeros(3, 0).index_add(0, tg.tensor([0, 0]), tg.zeros(2, 0)), (3, 0)),
}


@pytest.mark.parametrize("name", list(_EMPTY_CASES))
def test_ops_of_empty_batches_give_empty_results(name):
    """These raised ('shape [0, 2, -1] is invalid', a spatial check that divided by the batch):
    -1 cannot be inferred where another dimension is 0."""
    compute, shape = _EMPTY_CASES[name]
    assert tuple(compute(tg.nn.functional).shape) == shape


def test_attention_over_an_empty_embedding_averages_the_values():
    """Query and key of embedding size 0: every score is an empty sum, 0, so each query averages
    the values, as PyTorch's. The default scale 1/sqrt(0) raised ZeroDivisionError."""
    values = tg.arange(24.0).reshape(2, 3, 4)
    out = tg.nn.functional.scaled_dot_product_attention(tg.zeros(2, 2, 0), tg.zeros(2, 3, 0), values)
    np.testing.assert_allclose(out.numpy(), np.repeat(values.numpy().mean(1, keepdims=True), 2, axis=1))
