"""Convolution, pooling and batch normalisation: layers as PyTorch has them, in training loops and
replays. (Each functional form's gradient is checked by central differences, against PyTorch
and by replay through its cases in ``tapegrad/_examples.py``.)"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention


def _cnn(m, seed: int = 0):
    """A small LeNet-like classifier, in tapegrad or torch, with the same initial values."""
    m.manual_seed(seed)
    return m.nn.Sequential(
        m.nn.Conv2d(1, 4, 3, padding=1),
        m.nn.BatchNorm2d(4),
        m.nn.ReLU(),
        m.nn.MaxPool2d(2),
        m.nn.Conv2d(4, 6, 3, stride=2, groups=2, bias=False),
        m.nn.AdaptiveAvgPool2d(1),
        m.nn.Flatten(),
        m.nn.Linear(6, 3),
    )


def _copy_parameters(source, target, torch) -> None:
    with torch.no_grad():
        for theirs, ours in zip(target.state_dict().values(), source.state_dict().values()):
            theirs.copy_(torch.from_numpy(np.array(ours.numpy())))


def _evaluate_alike(ours, theirs, torch, batch: np.ndarray, rtol: float) -> None:
    """Both modules in eval mode give the same outputs for ``batch``."""
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(
        ours(tg.from_numpy(batch)).detach().numpy(),
        theirs(torch.from_numpy(batch)).detach().numpy(),
        rtol=rtol,
        atol=1e-5,
    )


def test_a_cnn_trains_as_in_pytorch():
    torch = pytest.importorskip("torch")
    ours, theirs = _cnn(tg), _cnn(torch)
    _copy_parameters(ours, theirs, torch)
    rng = np.random.default_rng(0)
    images, labels = rng.standard_normal((8, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 8)
    optimizers = (
        tg.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9),
        torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9),
    )
    for _ in range(4):
        losses = []
        for m, model, optimizer in ((tg, ours, optimizers[0]), (torch, theirs, optimizers[1])):
            optimizer.zero_grad()
            loss = m.nn.functional.cross_entropy(model(m.from_numpy(images)), m.from_numpy(labels))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    for (name, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        np.testing.assert_allclose(
            np.asarray(a.numpy(), np.float64), b.numpy().astype(np.float64), rtol=1e-3, atol=1e-5, err_msg=name
        )
    _evaluate_alike(ours, theirs, torch, images, rtol=1e-3)


def test_layers_show_and_save_as_in_pytorch():
    torch = pytest.importorskip("torch")
    for build in (
        lambda m: m.nn.Conv2d(3, 8, 3),
        lambda m: m.nn.Conv2d(3, 8, (3, 5), stride=2, padding=1, bias=False),
        lambda m: m.nn.Conv2d(4, 8, 3, padding="same", dilation=2, groups=2),
        lambda m: m.nn.Conv1d(2, 3, 4),
        lambda m: m.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
        lambda m: m.nn.ConvTranspose2d(4, 6, (2, 3), groups=2, bias=False, dilation=2),
        lambda m: m.nn.ConvTranspose2d(4, 6, 3, stride=2, output_padding=1, dilation=2),
        lambda m: m.nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1, dilation=2),
        lambda m: m.nn.MaxPool2d(2),
        lambda m: m.nn.AvgPool2d(3, stride=1),
        lambda m: m.nn.AdaptiveAvgPool2d((1, 1)),
        lambda m: m.nn.BatchNorm2d(3),
        lambda m: m.nn.BatchNorm1d(4, momentum=None, affine=False),
        lambda m: m.nn.Dropout2d(0.2),
        lambda m: m.nn.GroupNorm(2, 4),
        lambda m: m.nn.InstanceNorm2d(3),
        lambda m: m.nn.InstanceNorm1d(3, affine=True, track_running_stats=True),
    ):
        ours, theirs = build(tg), build(torch)
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("shape", [(5, 3), (5, 3, 4), (2, 3, 4, 4)])
def test_batch_norm_running_statistics_follow_pytorch(momentum, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    kind = "BatchNorm2d" if len(shape) == 4 else "BatchNorm1d"
    ours, theirs = getattr(tg.nn, kind)(3, momentum=momentum), getattr(torch.nn, kind)(3, momentum=momentum)
    for _ in range(3):
        batch = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        np.testing.assert_allclose(
            ours(tg.from_numpy(batch)).detach().numpy(),
            theirs(torch.from_numpy(batch)).detach().numpy(),
            rtol=1e-4,
            atol=1e-5,
        )
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-5, err_msg=name)
    _evaluate_alike(ours, theirs, torch, rng.standard_normal(shape).astype(np.float32), rtol=1e-4)


def test_max_pool_indices_are_pytorchs():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 6)).astype(np.float32)
    ours = F.max_pool2d(tg.from_numpy(x), 3, 2, 1, return_indices=True)
    theirs = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(ours[0].numpy(), theirs[0].numpy())
    np.testing.assert_array_equal(ours[1].numpy(), theirs[1].numpy())


def test_dropout2d_zeroes_whole_channels():
    x = tg.ones(4, 16, 3, 3)
    y = F.dropout2d(x, 0.5).numpy()
    per_channel = y.reshape(4, 16, 9)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert (per_channel.min(2) == per_channel.max(2)).all()  # each channel kept or dropped whole
    assert 0 < (per_channel[:, :, 0] == 0).sum() < 64
    assert F.dropout2d(x, 0.5, training=False) is x


def test_a_cnn_loss_replays_as_eager_at_new_inputs():
    model = _cnn(tg)
    model.eval()  # batch statistics would be running statistics' updates: a replay changes no tensor
    params = dict(model.named_parameters())
    rng = np.random.default_rng(3)

    def loss(images):
        return F.cross_entropy(model(images), tg.tensor([0, 1, 2, 1]))

    tape = tg.record(loss, rng.standard_normal((4, 1, 8, 8)).astype(np.float32))
    images = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    value, (grad,) = tape.value_and_grad(images)
    x = tg.from_numpy(images).requires_grad_()
    eager = loss(x)
    eager.backward()
    assert value.item() == pytest.approx(eager.item(), rel=1e-6)
    np.testing.assert_allclose(grad.numpy(), x.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert all(p.grad is None or p.grad.shape == p.shape for p in params.values())


def _pairs(low: int, high: int):
    return st.tuples(st.integers(low, high), st.integers(low, high))


def _matches_pytorch(torch, x: np.ndarray, w: np.ndarray, call) -> None:
    """``call(functional, x, w)`` in float64: values and both gradients equal PyTorch's."""
    results = []
    for m in (tg, torch):
        xs, ws = m.tensor(x, requires_grad=True), m.tensor(w, requires_grad=True)
        out = call(m.nn.functional, xs, ws)
        (out * out).sum().backward()
        results.append((out.detach().numpy(), xs.grad.numpy(), ws.grad.numpy()))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    groups=st.sampled_from([1, 2]),
    size=_pairs(3, 7),
    kernel=_pairs(1, 3),
    stride=_pairs(1, 3),
    padding=_pairs(0, 2),
    dilation=_pairs(1, 2),
)
def test_conv2d_matches_pytorch_over_geometries(batch, groups, size, kernel, stride, padding, dilation):
    torch = pytest.importorskip("torch")
    if any(s + 2 * p < d * (k - 1) + 1 for s, p, d, k in zip(size, padding, dilation, kernel)):
        return  # a kernel larger than the padded input: an error case, tested in test_errors.py
    rng = np.random.default_rng(batch * 131 + sum(size))
    x = rng.standard_normal((batch, 2 * groups, *size))
    w = rng.standard_normal((2 * groups, 2, *kernel))
    _matches_pytorch(torch, x, w, lambda f, xs, ws: f.conv2d(xs, ws, None, stride, padding, dilation, groups))


@pytest.mark.parametrize(
    "geometry",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=2, stride=1, dilation=2),
    ],
)
def test_max_pool_ties_and_nan_follow_pytorch_eager_and_replayed(geometry):
    torch = pytest.importorskip("torch")
    x = np.maximum(np.random.default_rng(4).standard_normal((2, 3, 7, 6)), 0.0)  # ties at zero
    x[0, 1, 2, 3] = np.nan
    weights = np.random.default_rng(5).standard_normal(F.max_pool2d(tg.tensor(x), **geometry).shape)

    def loss(m, inputs):
        return (m.nn.functional.max_pool2d(inputs, **geometry) * m.tensor(weights)).sum()

    theirs = torch.tensor(x, requires_grad=True)
    loss(torch, theirs).backward()
    ours = tg.tensor(x, requires_grad=True)
    loss(tg, ours).backward()
    np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())
    _, (replayed,) = tg.record(lambda inputs: loss(tg, inputs), np.zeros_like(x)).value_and_grad(x)
    # overlapping windows add in another order: equal to rounding
    np.testing.assert_allclose(replayed.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-15)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    size=_pairs(1, 5),
    kernel=_pairs(1, 3),
    stride=_pairs(1, 3),
    padding=_pairs(0, 2),
    dilation=_pairs(1, 2),
    extra=_pairs(0, 2),
)
def test_conv_transpose2d_matches_pytorch_over_geometries(
    batch, groups, size, kernel, stride, padding, dilation, extra
):
    torch = pytest.importorskip("torch")
    output_padding = tuple(min(e, max(s, d) - 1) for e, s, d in zip(extra, stride, dilation))
    if any(
        (e - 1) * s - 2 * p + d * (k - 1) + o + 1 < 1
        for e, s, p, d, k, o in zip(size, stride, padding, dilation, kernel, output_padding)
    ):
        return  # no output: an error case
    rng = np.random.default_rng(batch * 17 + sum(size) + sum(kernel))
    x = rng.standard_normal((batch, 2 * groups, *size))
    w = rng.standard_normal((2 * groups, 3, *kernel))
    _matches_pytorch(
        torch,
        x,
        w,
        lambda f, xs, ws: f.conv_transpose2d(xs, ws, None, stride, padding, output_padding, groups, dilation),
    )


def test_edge_cases_found_in_review_follow_pytorch():
    torch = pytest.importorskip("torch")
    for m in (tg, torch):  # a window whose maximum is -inf: its first element inside the input
        x = m.tensor([[[[-float("inf"), 1.0], [2.0, 3.0]]]], requires_grad=True)
        values, indices = m.nn.functional.max_pool2d(x, 2, 1, 1, return_indices=True)
        values.sum().backward()
        if m is tg:
            ours = (values.detach().numpy(), indices.numpy(), x.grad.numpy())
    np.testing.assert_array_equal(ours[0], values.detach().numpy())
    np.testing.assert_array_equal(ours[1], indices.numpy())
    np.testing.assert_array_equal(ours[2], x.grad.numpy())
    x = np.random.default_rng(6).standard_normal((1, 2, 4, 4))
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = np.nan  # two NaNs in a window: PyTorch's kernel takes the last
    x[0, 1, :2, :2] = -np.inf
    picked = []
    for m in (tg, torch):
        inputs = m.tensor(x, requires_grad=True)
        values, indices = m.nn.functional.max_pool2d(inputs, 2, return_indices=True)
        values.sum().backward()
        picked.append((indices.numpy(), np.isnan(inputs.grad.numpy()), np.nan_to_num(inputs.grad.numpy())))
    for a, b in zip(*picked):
        np.testing.assert_array_equal(a, b)
    for call in (  # an empty batch gives an empty result
        lambda m: m.nn.functional.conv2d(m.ones(0, 3, 5, 5), m.ones(4, 3, 3, 3)),
        lambda m: m.nn.functional.conv_transpose2d(m.ones(0, 3, 5, 5), m.ones(3, 4, 3, 3)),
        lambda m: m.nn.functional.max_pool2d(m.ones(0, 3, 4, 4), 2),
        lambda m: m.nn.functional.avg_pool2d(m.ones(0, 3, 4, 4), 2),
        lambda m: m.nn.functional.adaptive_avg_pool2d(m.ones(0, 3, 4, 4), 2),
        lambda m: m.nn.functional.adaptive_avg_pool2d(m.ones(2, 3, 4, 4), 0),
    ):
        assert tuple(call(tg).shape) == tuple(call(torch).shape)
    assert tg.nn.RNN(3, 4, 1, "relu").nonlinearity == "relu"  # positional, as PyTorch's signature
    assert F.dropout(tg.ones(4), 1.0).sum().item() == 0.0  # not 0/0
    assert F.dropout2d(tg.ones(2, 3, 2, 2), 1.0).sum().item() == 0.0
    mask = F.dropout2d(tg.ones(8, 16, 5), 0.5).numpy()  # 3-D: one draw per (dim 0, dim 1), as PyTorch
    assert (mask.min(2) == mask.max(2)).all() and 0 < (mask[:, :, 0] == 0).sum() < 128
    x = tg.ones(4, 16, 3, 3)
    assert F.dropout2d(x, 0.5, inplace=True) is x and (x.numpy() == 0).any()
    assert repr(tg.nn.Dropout2d(0.3, inplace=True)) == repr(torch.nn.Dropout2d(0.3, inplace=True))
    with pytest.raises(ValueError):
        tg.nn.Dropout2d(1.5)
    assert F.adaptive_avg_pool2d(tg.ones(2, 3, 4, 4, requires_grad=True), 1).grad_fn.name() == "MeanBackward1"


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_conv2d_padding_modes_follow_pytorch(mode, padding):
    torch = pytest.importorskip("torch")
    ours = tg.nn.Conv2d(2, 3, (3, 4), padding=padding, padding_mode=mode, dtype=tg.float64)
    theirs = torch.nn.Conv2d(2, 3, (3, 4), padding=padding, padding_mode=mode, dtype=torch.float64)
    _copy_parameters(ours, theirs, torch)
    assert repr(ours) == repr(theirs)
    data = np.arange(2 * 2 * 5 * 6, dtype=np.float64).reshape(2, 2, 5, 6) / 10
    results = []
    for m, layer in ((tg, ours), (torch, theirs)):
        x = m.tensor(data, requires_grad=True)
        y = layer(x)
        (y * y).sum().backward()
        results.append((y.detach().numpy(), x.grad.numpy(), layer.weight.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-10)


def test_a_recorded_max_pool_sends_an_all_minus_inf_windows_gradient_inside():
    torch = pytest.importorskip("torch")
    x = np.array([[[[-np.inf, -np.inf, 1.0, 0.0], [-np.inf, -np.inf, 2.0, 3.0]]]], np.float32)
    tape = tg.record(lambda a: F.max_pool2d(a, 2, 2, 1).sum(), x)
    _, (replayed,) = tape.value_and_grad(x)
    theirs = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(theirs, 2, 2, 1).sum().backward()
    np.testing.assert_array_equal(replayed.numpy(), theirs.grad.numpy())


@pytest.mark.parametrize("kind", ["InstanceNorm1d", "InstanceNorm2d"])
def test_instance_norm_layers_follow_pytorch(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    shape = (3, 4, 5) if kind == "InstanceNorm1d" else (3, 4, 5, 2)
    for options in (dict(), dict(affine=True, track_running_stats=True)):
        ours, theirs = getattr(tg.nn, kind)(4, **options), getattr(torch.nn, kind)(4, **options)
        for batch in (rng.standard_normal(shape), rng.standard_normal(shape[1:])):  # batched, unbatched
            batch = (batch * 2 + 1).astype(np.float32)
            np.testing.assert_allclose(
                ours(tg.from_numpy(batch)).detach().numpy(),
                theirs(torch.from_numpy(batch)).detach().numpy(),
                rtol=1e-4,
                atol=1e-5,
            )
        if options:
            for name in ("running_mean", "running_var"):
                np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-5)
            _evaluate_alike(ours, theirs, torch, rng.standard_normal(shape).astype(np.float32), rtol=1e-4)


def test_lazy_conv2d_takes_its_channels_from_the_first_input_as_pytorch():
    torch = pytest.importorskip("torch")
    for build, batch in (
        (lambda m: m.nn.LazyConv2d(8, 3, padding=1), (2, 3, 5, 5)),
        (lambda m: m.nn.LazyConv2d(8, 3, groups=2), (4, 5, 5)),  # unbatched: channels first
    ):
        ours, theirs = build(tg), build(torch)
        assert repr(ours) == repr(theirs)
        outputs = ours(tg.ones(*batch)), theirs(torch.ones(*batch))
        assert repr(ours) == repr(theirs) and type(ours).__name__ == "Conv2d"
        assert tuple(ours.weight.shape) == tuple(theirs.weight.shape)
        assert tuple(outputs[0].shape) == tuple(outputs[1].shape)
        bound = 1 / np.sqrt(ours.weight[0].numel())  # Conv2d's initialisation
        assert 0 < np.abs(ours.weight.detach().numpy()).max() <= bound
    source = tg.nn.Conv2d(3, 8, 3)
    lazy = tg.nn.LazyConv2d(8, 3)
    lazy.load_state_dict(source.state_dict())
    x = tg.ones(1, 3, 4, 4)
    np.testing.assert_array_equal(lazy(x).detach().numpy(), source(x).detach().numpy())


def _transposed_1d(m):
    rng = np.random.default_rng(0)
    layer = m.nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1, dilation=2)
    with m.no_grad():
        layer.weight.copy_(m.tensor(rng.standard_normal(tuple(layer.weight.shape)), dtype=m.float32))
        layer.bias.copy_(m.tensor(rng.standard_normal(4), dtype=m.float32))
    x = m.tensor(rng.standard_normal((2, 3, 7)), dtype=m.float32, requires_grad=True)
    y = layer(x)
    y.square().sum().backward()
    sized = m.nn.ConvTranspose1d(3, 4, 3, stride=2)(m.ones(1, 3, 5), output_size=[12])
    return (
        [t.detach().numpy() for t in (y, x.grad, layer.weight.grad, layer.bias.grad)],
        tuple(sized.shape),
        y.grad_fn.name(),
    )


def test_conv_transpose1d_layer_matches_pytorch():
    torch = pytest.importorskip("torch")
    (ours, our_shape, our_node), (theirs, their_shape, their_node) = _transposed_1d(tg), _transposed_1d(torch)
    assert our_shape == their_shape and our_node == their_node
    for got, want in zip(ours, theirs):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "shape, weight, options",
    [
        ((1, 2, 4, 4), (3, 2, 3, 3), dict(padding=12, dilation=12)),  # a dilation beyond the input (ASPP)
        ((1, 1, 1, 1), (1, 1, 3, 3), dict(padding=30, dilation=30)),  # rows of windows all in the padding
        ((1, 1, 4, 1), (1, 1, 1, 3), dict(padding=(0, 1000), dilation=(1, 1000))),
        ((2, 3, 5, 6), (4, 3, 3, 2), dict(padding="same", dilation=3)),
    ],
)
def test_windows_reading_only_padding_match_pytorch(shape, weight, options):
    # The kernels' output ranges were not bounded by the output's size: zeros written past a
    # window row (a heap overflow, a crash) and the next row's gradient wiped (x.grad 0).
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(shape), rng.standard_normal(weight)
    results = []
    for m in (tg, torch):
        xt, wt = m.tensor(x, requires_grad=True), m.tensor(w, requires_grad=True)
        out = m.nn.functional.conv2d(xt, wt, **options)
        (out * out).sum().backward()
        results.append([out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("constant", ["input", "weight"])
def test_second_order_gradients_through_a_convolution_with_a_constant_operand(constant):
    # (its create_graph formula asked for the gradient of an operand that takes none: RuntimeError)
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    results = []
    for m in (tg, torch):
        xt, wt = m.tensor(x, requires_grad=constant != "input"), m.tensor(w, requires_grad=constant != "weight")
        wanted = wt if constant == "input" else xt
        (g,) = m.autograd.grad((m.nn.functional.conv2d(xt, wt, padding=1) ** 2).sum(), wanted, create_graph=True)
        (g**2).sum().backward()
        results.append([g.detach().numpy(), wanted.grad.numpy()])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "values",
    [
        [[np.nan, 1.0, np.nan, np.nan, 2.0, 0.0], [np.nan, 1.0, 2.0, 3.0, np.nan, 4.0]],
        [[np.nan] * 6, [2.0, 2.0, 1.0, 5.0, 5.0, 0.0]],
    ],
    ids=["some NaN", "all NaN and ties"],
)
def test_adaptive_max_pool_takes_a_window_s_last_nan_as_pytorch(values):
    """PyTorch's adaptive max pool takes a NaN over numbers and the last NaN of a window (its
    index and its gradient); ties of numbers go to the first. max(-1) gave the first NaN."""
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        x = m.tensor([values], dtype=m.float64, requires_grad=True)
        out, indices = m.nn.functional.adaptive_max_pool1d(x, 2, return_indices=True)
        (out.nan_to_num(0.0) * m.tensor([1.0, 2.0], dtype=m.float64) + out * 0).sum().backward()
        results.append((indices.tolist(), np.nan_to_num(x.grad.numpy()).tolist()))
    assert results[0] == results[1]
