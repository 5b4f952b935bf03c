"""Names real programs call that were missing: in-place forms, placements, random state,
samplers, sequence unpacking, Gumbel-softmax, and PyTorch's deprecation warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tapegrad as tg


def _assert_same(ours: list, theirs: list, rtol: float = 1e-7) -> None:
    """Arrays close to PyTorch's, everything else (names, messages, reprs) equal."""
    for got, want in zip(ours, theirs, strict=True):
        if isinstance(got, np.ndarray):
            np.testing.assert_allclose(got, want, rtol=rtol)
        else:
            assert got == want


def _placements(m):
    """index_copy, masked_scatter, index_put_, fill_diagonal_, diag_embed, triu_/tril_."""
    out = []
    x = m.arange(12.0).reshape(3, 4).requires_grad_()
    s = m.tensor([[10.0, 20, 30, 40], [50, 60, 70, 80]], requires_grad=True)
    y = x.index_copy(0, m.tensor([2, 0]), s)
    (y * m.arange(12.0).reshape(3, 4)).sum().backward()
    out += [y, x.grad, s.grad, y.grad_fn.name()]
    x2 = m.arange(6.0).reshape(2, 3).requires_grad_()
    source = m.arange(10.0, 16.0).requires_grad_()
    z = x2.masked_scatter(m.tensor([[True, False, True], [False, True, False]]), source)
    (z * m.arange(6.0).reshape(2, 3)).sum().backward()
    out += [z, x2.grad, source.grad]
    a = m.zeros(5)
    a.index_put_((m.tensor([0, 1, 0]),), m.tensor([1.0, 2.0, 3.0]), accumulate=True)
    b = m.zeros(2, 3)
    b.index_put_((m.tensor([0, 1]), m.tensor([2, 0])), m.tensor(5.0))
    out += [a, b]
    for shape, wrap in (((3, 3), False), ((7, 3), True), ((7, 3), False), ((3, 5), False), ((2, 2, 2), False)):
        out.append(m.zeros(shape).fill_diagonal_(2.0, wrap=wrap))
    d = m.arange(1.0, 7.0).reshape(2, 3).requires_grad_()
    out += [m.diag_embed(d, *args) for args in ((0, -2, -1), (1, -2, -1), (-1, 0, 2), (2, 1, 0))]
    out += [m.ones(3, 3).triu_(1), m.ones(3, 3).tril_(), m.diagonal(m.arange(9.0).reshape(3, 3), 1)]
    return [t if isinstance(t, str) else t.detach().numpy() for t in out]


def test_placements_match_pytorch():
    torch = pytest.importorskip("torch")
    _assert_same(_placements(tg), _placements(torch))


def test_in_place_functions():
    torch = pytest.importorskip("torch")
    for name, args in (("relu_", ()), ("leaky_relu_", (0.2,)), ("elu_", (0.5,)), ("hardtanh_", (-0.5, 0.5)),
                       ("threshold_", (0.1, 9.0))):  # fmt: skip
        ours, theirs = tg.tensor([-1.0, 0.2, 2.0]), torch.tensor([-1.0, 0.2, 2.0])
        assert getattr(tg.nn.functional, name)(ours, *args) is ours
        getattr(torch.nn.functional, name)(theirs, *args)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    for name in ("sigmoid_", "tanh_", "exp_", "clamp_", "sqrt_", "zero_"):
        ours, theirs = tg.tensor([0.5, 2.0]), torch.tensor([0.5, 2.0])
        args = (0.0, 1.0) if name == "clamp_" else ()
        assert getattr(tg, name)(ours, *args) is ours
        getattr(torch, name)(theirs, *args)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_random_state_round_trips():
    state = tg.get_rng_state()
    assert state.dtype == tg.uint8 and state.dim() == 1
    first = tg.rand(3)
    tg.set_rng_state(state)
    assert tg.rand(3).tolist() == first.tolist()
    generator = tg.Generator().manual_seed(3)
    saved = generator.get_state()
    drawn = tg.randn(2, generator=generator)
    assert tg.randn(2, generator=generator.set_state(saved)).tolist() == drawn.tolist()
    with pytest.raises(TypeError, match="expected a torch.ByteTensor"):
        tg.set_rng_state(tg.zeros(3))


def test_process_settings_programs_make():
    tg.use_deterministic_algorithms(True, warn_only=True)
    try:
        assert tg.are_deterministic_algorithms_enabled() and tg.is_deterministic_algorithms_warn_only_enabled()
    finally:
        tg.use_deterministic_algorithms(False)
    assert not tg.are_deterministic_algorithms_enabled()
    tg.cuda.empty_cache()
    x = tg.arange(4.0)
    assert x[1:].data_ptr() - x.data_ptr() == 4 and x.get_device() == -1


def test_weighted_random_sampler():
    sampler = tg.utils.data.WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=tg.Generator().manual_seed(0))
    counts = np.bincount(list(sampler), minlength=3)
    assert len(sampler) == 4000 and counts[0] == 0 and 2.6 < counts[2] / counts[1] < 3.4
    assert sorted(tg.utils.data.WeightedRandomSampler([1.0, 1.0, 1.0], 3, replacement=False)) == [0, 1, 2]
    assert tg.utils.data.get_worker_info() is None
    torch = pytest.importorskip("torch")
    assert _sampler_errors(tg) == _sampler_errors(torch)


def _sampler_errors(m) -> list:
    sampler = m.utils.data.WeightedRandomSampler
    messages = []
    for call in (
        lambda: sampler([1.0], 0),
        lambda: sampler([1.0], 2, replacement=1),
        lambda: list(sampler([0.1, 1.0], 3, replacement=False)),
    ):
        with pytest.raises((ValueError, RuntimeError)) as error:
            call()
        messages.append((error.type, str(error.value)))
    return messages


def test_unpack_and_unpad_sequences():
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        sequences = [m.tensor([1.0, 2.0, 3.0]), m.tensor([4.0, 5.0]), m.tensor([6.0])]
        unpacked = m.nn.utils.rnn.unpack_sequence(m.nn.utils.rnn.pack_sequence(sequences))
        padded = m.nn.utils.rnn.pad_sequence(sequences)
        unpadded = m.nn.utils.rnn.unpad_sequence(padded, m.tensor([3, 2, 1]))
        results.append([t.tolist() for t in unpacked + unpadded])
    assert results[0] == results[1]


def test_gumbel_softmax_samples_and_passes_the_soft_gradient():
    tg.manual_seed(0)
    logits = tg.randn(5, 4, requires_grad=True)
    soft = tg.nn.functional.gumbel_softmax(logits, tau=0.5)
    np.testing.assert_allclose(soft.sum(-1).detach().numpy(), np.ones(5), rtol=1e-6)
    hard = tg.nn.functional.gumbel_softmax(logits, hard=True)
    assert sorted(np.unique(hard.detach().numpy()).tolist()) == [0.0, 1.0] and hard.sum().item() == 5.0
    (hard * tg.arange(4.0)).sum().backward()
    assert logits.grad is not None and np.abs(logits.grad.numpy()).sum() > 0  # the soft sample's gradient


def _deprecations(m):
    messages = []
    for call in (
        lambda: m.nn.LSTM(3, 4, dropout=0.5),
        lambda: m.nn.functional.mse_loss(m.ones(2), m.ones(2), size_average=False),
        lambda: m.nn.functional.upsample(m.ones(1, 1, 2), scale_factor=2),
        lambda: m.nn.functional.upsample_nearest(m.ones(1, 1, 2), scale_factor=2),
        lambda: m.nn.init.normal(m.ones(2)),
        lambda: m.nn.utils.clip_grad_norm([m.nn.Parameter(m.ones(2))], 1.0),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        messages.append([(w.category.__name__, str(w.message)) for w in caught])
    return messages


def test_deprecation_warnings_are_pytorchs():
    torch = pytest.importorskip("torch")
    assert _deprecations(tg) == _deprecations(torch)


def _blocks(m):
    f = m.nn.functional
    x = m.tensor(np.arange(120, dtype=np.float64).reshape(2, 3, 4, 5) / 10, requires_grad=True)
    results = []
    for args in (((2, 3), 1, 1, 2), (2, 1, 0, 1), ((3, 2), 2, 1, 1)):
        columns = f.unfold(x, *args)
        image = f.fold(columns, (4, 5), *args)
        (image * image).sum().backward()
        results += [columns.detach().numpy(), image.detach().numpy(), x.grad.numpy().copy(), columns.grad_fn.name()]
        x.grad = None
    results.append((repr(m.nn.Unfold((2, 3), padding=1, stride=2)), repr(m.nn.Fold((4, 5), (2, 3)))))
    with pytest.raises(RuntimeError) as error:
        f.fold(m.ones(1, 4, 5), (4, 5), 2)
    results.append(str(error.value))
    return results


def test_unfold_and_fold_match_pytorch():
    torch = pytest.importorskip("torch")
    _assert_same(_blocks(tg), _blocks(torch), rtol=1e-12)


def _quantiles(m):
    x = m.tensor([[1.0, 5.0, 2.0, 8.0], [3.0, float("nan"), 1.0, 0.0], [4.0, 4.0, 2.0, 9.0]], requires_grad=True)
    results = []
    for options in ({"q": 0.4, "dim": 1}, {"q": m.tensor([0.25, 0.5, 1.0]), "dim": 1, "keepdim": True}, {"q": 0.3},
                    {"q": m.tensor([0.1, 0.9]), "dim": 0}, {"q": 0.5, "keepdim": True}, {"q": m.tensor(0.7), "dim": -1}):  # fmt: skip
        for mode in ("linear", "lower", "higher", "midpoint", "nearest"):
            results.append(m.quantile(x, interpolation=mode, **options).detach().numpy())
    x[0].quantile(0.4).backward()
    results.append(x.grad.numpy())
    for call in (lambda: m.quantile(x, 1.5), lambda: m.quantile(m.ones(0), 0.5),
                 lambda: m.quantile(m.ones(3, dtype=m.int64), 0.5), lambda: m.quantile(x, 0.5, interpolation="x"),
                 lambda: m.quantile(x, m.tensor([0.5], dtype=m.float64))):  # fmt: skip
        with pytest.raises(RuntimeError) as error:
            call()
        results.append(str(error.value))
    return results


def test_quantile_matches_pytorch():
    torch = pytest.importorskip("torch")
    _assert_same(_quantiles(tg), _quantiles(torch), rtol=1e-6)


def _response_norms(m):
    results = []
    for shape, size in (((2, 5, 3), 3), ((2, 5, 3, 4), 2), ((1, 4, 2, 2, 2), 4), ((2, 3, 2), 1)):
        x = m.tensor(np.linspace(-2, 2, int(np.prod(shape))).reshape(shape), requires_grad=True)
        y = m.nn.functional.local_response_norm(x, size, alpha=0.1, beta=0.6, k=1.5)
        (y * y).sum().backward()
        results += [y.detach().numpy(), x.grad.numpy(), y.grad_fn.name()]
    results.append(repr(m.nn.LocalResponseNorm(3)))
    with pytest.raises(ValueError) as error:
        m.nn.functional.local_response_norm(m.ones(2, 5), 2)
    return [*results, str(error.value)]


def test_local_response_norm_matches_pytorch():
    torch = pytest.importorskip("torch")
    _assert_same(_response_norms(tg), _response_norms(torch), rtol=1e-10)


def _bags(m):
    f = m.nn.functional
    x, offsets = m.tensor([1, 2, 4, 5, 4, 3, 2, 9]), m.tensor([0, 4])
    results = []
    for mode in ("sum", "mean", "max"):
        for padding in (None, 2):
            w = m.tensor(np.linspace(-3, 3, 30).reshape(10, 3), requires_grad=True)
            y = f.embedding_bag(x, w, offsets, mode=mode, padding_idx=padding)
            (y * m.arange(6.0, dtype=m.float64).reshape(2, 3)).sum().backward()
            results += [y.detach().numpy(), w.grad.numpy(), y.grad_fn.name()]
    w = m.tensor(np.linspace(-3, 3, 30).reshape(10, 3))
    results += [
        f.embedding_bag(m.tensor([[1, 2], [3, 4]]), w).numpy(),
        f.embedding_bag(x, w, m.tensor([0, 4, 4]), mode="max").numpy(),  # an empty bag: zeros
        f.embedding_bag(x, w, m.tensor([0, 4, 8]), include_last_offset=True).numpy(),
    ]
    weights = m.tensor(np.linspace(0.5, 2, 8), requires_grad=True)
    f.embedding_bag(x, w, offsets, mode="sum", per_sample_weights=weights).sum().backward()
    results += [weights.grad.numpy(), repr(m.nn.EmbeddingBag(10, 3, mode="sum", padding_idx=2))]
    for call in (lambda: f.embedding_bag(x, w), lambda: f.embedding_bag(x, w, offsets, mode="x")):
        with pytest.raises(ValueError) as error:
            call()
        results.append(str(error.value))
    return results


def test_embedding_bag_matches_pytorch():
    torch = pytest.importorskip("torch")
    _assert_same(_bags(tg), _bags(torch), rtol=1e-12)


def test_argwhere_msort_and_unravel_index():
    """Three small functions real programs call (a hunt's programs): ``argwhere`` is ``nonzero``,
    ``msort`` the values of a sort along dim 0 (differentiable), ``unravel_index`` flat indices
    as coordinates, taken modulo the element count as PyTorch takes them."""
    x = tg.tensor([[3.0, 1.0], [2.0, 5.0]], requires_grad=True)
    assert tg.argwhere(x > 2).tolist() == [[0, 0], [1, 1]] and x.argwhere().shape == (4, 2)
    s = tg.msort(x)
    assert s.tolist() == [[2.0, 1.0], [3.0, 5.0]] and type(s.grad_fn).__name__ == "SortBackward0"
    (s * tg.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert x.grad.tolist() == [[3.0, 2.0], [1.0, 4.0]]  # each element's weight where it went
    rows, columns = tg.unravel_index(tg.tensor([4, 1, -1, 6, -7]), (2, 3))
    assert rows.tolist() == [1, 0, 1, 0, 1] and columns.tolist() == [1, 1, 2, 0, 2] and rows.dtype == tg.int64
    with pytest.raises(TypeError, match="expected 'indices' to be integer dtype"):
        tg.unravel_index(tg.tensor([1.0]), (2, 3))
    with pytest.raises(ValueError, match="'shape' cannot have negative values"):
        tg.unravel_index(tg.tensor([1]), (2, -3))


def test_typename_names_objects_as_pytorch_does():
    assert tg.typename(tg.ones(2)) == "tapegrad.FloatTensor"
    assert tg.typename(np.ones(2)) == "numpy.ndarray"
    assert tg.typename([1.0]) == "list" and tg.typename(3.0) == "float" and tg.typename(int) == "int"
    assert tg.typename(np.float32) == "numpy.float32"
