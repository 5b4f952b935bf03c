"""affine_grid and grid_sample: central differences, PyTorch parity, replay and errors."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import tapegrad as tg

F = tg.nn.functional
MODES = list(itertools.product(("bilinear", "nearest"), ("zeros", "border", "reflection"), (False, True)))


def _sample(module, x, grid, mode, padding_mode, align_corners):
    x = module.tensor(x, requires_grad=True)
    grid = module.tensor(grid, requires_grad=True)
    out = module.nn.functional.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    weights = module.tensor(np.linspace(-1.0, 1.0, out.numel()).reshape(out.shape).astype(x.detach().numpy().dtype))
    (out * weights).sum().backward()
    return out.detach().numpy(), x.grad.numpy(), grid.grad.numpy()


def _case(seed: int, dtype=np.float64, exact: bool = False):
    rng = np.random.default_rng(seed)
    n, c, h, w = rng.integers(1, 3), rng.integers(1, 3), rng.integers(1, 6), rng.integers(1, 6)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    grid = rng.uniform(-1.6, 1.6, (n, rng.integers(1, 5), rng.integers(1, 5), 2))
    if exact:  # on pixel centres, corners and edges: PyTorch's conventions at the clipping edges
        grid = np.round(grid * 4) / 4
    return x, grid.astype(dtype)


@pytest.mark.parametrize("mode, padding_mode, align_corners", MODES)
def test_grid_sample_gradients_match_central_differences(mode, padding_mode, align_corners):
    x, grid = _case(1)
    if mode == "nearest":  # no gradient in the grid; the input's is a selection
        grid = np.where(np.abs(grid * 8 % 1 - 0.5) < 0.05, grid + 0.01, grid)
    function = lambda a, g: F.grid_sample(a, g, mode, padding_mode, align_corners)  # noqa: E731
    inputs = (tg.tensor(x, requires_grad=True), tg.tensor(grid, requires_grad=mode == "bilinear"))
    assert tg.autograd.gradcheck(function, inputs, eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("mode, padding_mode, align_corners", MODES)
@pytest.mark.parametrize("exact", [False, True], ids=["anywhere", "on-pixels"])
def test_grid_sample_matches_pytorch(mode, padding_mode, align_corners, exact):
    torch = pytest.importorskip("torch")
    for seed in range(12):
        for dtype, tolerance in ((np.float64, 1e-12), (np.float32, 2e-5)):
            x, grid = _case(seed, dtype, exact)
            ours = _sample(tg, x, grid, mode, padding_mode, align_corners)
            theirs = _sample(torch, x, grid, mode, padding_mode, align_corners)
            for a, b in zip(ours, theirs):
                assert a.dtype == b.dtype
                np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("size", [(2, 3, 4, 5), (2, 1, 1, 3), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_matches_pytorch(size, align_corners):
    torch = pytest.importorskip("torch")
    spatial = len(size) - 2
    theta = np.random.default_rng(0).standard_normal((size[0], spatial, spatial + 1))
    results = []
    for module in (tg, torch):
        t = module.tensor(theta, requires_grad=True)
        with warnings.catch_warnings(record=True) as caught:  # unit sizes, aligned: PyTorch warns
            warnings.simplefilter("always")
            grid = module.nn.functional.affine_grid(t, size, align_corners=align_corners)
        (grid * grid).sum().backward()
        messages = [str(warning.message) for warning in caught]
        results.append((grid.detach().numpy(), t.grad.numpy(), type(grid.grad_fn).__name__, messages))
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-14)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12)
    assert results[0][2] == results[1][2] == "AffineGridGeneratorBackward0"
    assert results[0][3] == results[1][3]


def test_a_spatial_transformer_replays_and_refuses_another_grid():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    theta = np.tile(np.array([[0.9, 0.1, 0.05], [-0.1, 0.8, 0.0]], np.float32), (2, 1, 1))

    def loss(x, theta):
        grid = F.affine_grid(theta, (2, 3, 6, 6), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False).square().sum()

    tape = tg.record(loss, x, theta)
    value, gradients = tape.value_and_grad(x, theta)
    eager_x, eager_theta = tg.tensor(x, requires_grad=True), tg.tensor(theta, requires_grad=True)
    eager = loss(eager_x, eager_theta)
    eager.backward()
    np.testing.assert_allclose(value, eager.item(), rtol=1e-6)
    np.testing.assert_array_equal(gradients[0], eager_x.grad.numpy())
    np.testing.assert_array_equal(gradients[1], eager_theta.grad.numpy())
    with pytest.raises(tg.GuardError, match="grid_sample"):  # the corners read are the recording's
        tape.value_and_grad(x, theta * 0.5)


def test_second_derivative_in_the_input_through_the_grid():
    torch = pytest.importorskip("torch")
    x, grid = _case(4)
    results = []
    for module in (tg, torch):
        a, g = module.tensor(x, requires_grad=True), module.tensor(grid, requires_grad=True)
        out = module.nn.functional.grid_sample(a, g, align_corners=False)
        (first,) = module.autograd.grad(out.square().sum(), g, create_graph=True)
        first.sum().backward()
        results.append(a.grad.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-10, atol=1e-12)


def test_the_default_align_corners_warns_as_pytorchs():
    x, grid = _case(0)
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        F.grid_sample(tg.tensor(x), tg.tensor(grid))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.grid_sample(tg.tensor(x), tg.tensor(grid), align_corners=False)


_ERRORS = {
    "affine_grid 3-d size": lambda m, x, g, t: m.nn.functional.affine_grid(t, (2, 3, 4), align_corners=False),
    "theta shape": lambda m, x, g, t: m.nn.functional.affine_grid(t[:, :, :2], (2, 3, 4, 5), align_corners=False),
    "integer theta": lambda m, x, g, t: m.nn.functional.affine_grid(t.int(), (2, 3, 4, 5), align_corners=False),
    "theta batch": lambda m, x, g, t: m.nn.functional.affine_grid(t, (3, 3, 4, 5), align_corners=False),
    "mode": lambda m, x, g, t: m.nn.functional.grid_sample(x, g, mode="area", align_corners=False),
    "padding": lambda m, x, g, t: m.nn.functional.grid_sample(x, g, padding_mode="circular", align_corners=False),
    "grid's last dim": lambda m, x, g, t: m.nn.functional.grid_sample(x, g[..., :1], align_corners=False),
    "batch": lambda m, x, g, t: m.nn.functional.grid_sample(x[:1], g, align_corners=False),
    "dims": lambda m, x, g, t: m.nn.functional.grid_sample(x[0], g, align_corners=False),
    "dtypes": lambda m, x, g, t: m.nn.functional.grid_sample(x, g.double(), align_corners=False),
}


@pytest.mark.parametrize("name", list(_ERRORS))
def test_errors_are_pytorchs(name):
    torch = pytest.importorskip("torch")
    outcomes = []
    for module in (tg, torch):
        x = module.ones(2, 3, 4, 5)
        grid = module.zeros(2, 4, 5, 2)
        theta = module.zeros(2, 2, 3)
        with pytest.raises(Exception) as caught:
            _ERRORS[name](module, x, grid, theta)
        outcomes.append((type(caught.value).__name__, str(caught.value).replace("torch.", "tapegrad.")))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("point", [(np.nan, 0.0), (-np.inf, 0.0), (0.0, 1e30)])
def test_a_coordinate_off_every_pixel_reads_nothing_and_passes_no_gradient(point):
    x = tg.tensor(np.arange(1.0, 7.0).reshape(1, 1, 2, 3), requires_grad=True)
    grid = tg.tensor(np.array(point).reshape(1, 1, 1, 2), requires_grad=True)
    out = F.grid_sample(x, grid, align_corners=False)
    out.sum().backward()
    # PyTorch 2.13's bilinear kernel: NaN for a NaN or infinite coordinate, 0 beyond 2^40
    assert np.isnan(out.item()) if not np.isfinite(point).all() else out.item() == 0.0
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)
    if np.isfinite(point).all():
        np.testing.assert_array_equal(grid.grad.numpy(), 0.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_nan_or_infinite_coordinate_samples_nan_in_bilinear_zeros_mode(bad):
    # PyTorch's bilinear kernel gives NaN there (a coordinate beyond 2^40 alone reads 0); a NaN
    # grid came out as plain zeros here.
    x = tg.tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
    grid = tg.zeros(1, 1, 3, 2, dtype=tg.float64)
    grid[0, 0, 0, 0] = bad
    grid[0, 0, 1, 0] = 1e30
    grid.requires_grad_()
    out = tg.nn.functional.grid_sample(x, grid, align_corners=False)
    values = out.flatten().tolist()
    assert np.isnan(values[0]) and values[1] == 0.0 and values[2] == 7.5
    out.sum().backward()
    assert x.grad.sum().item() == 1.0  # the one point inside
    assert nearest_is_zero(bad)


def nearest_is_zero(bad) -> bool:
    grid = tg.zeros(1, 1, 1, 2, dtype=tg.float64)
    grid[0, 0, 0, 0] = bad
    x = tg.tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    return tg.nn.functional.grid_sample(x, grid, mode="nearest", align_corners=False).item() == 0.0


@pytest.mark.parametrize("mode, spatial", [("linear", 1), ("bilinear", 2), ("trilinear", 3)])
@pytest.mark.parametrize("dtype", [tg.uint8, tg.int32, tg.int64])
def test_interpolating_modes_refuse_integer_tensors(mode, spatial, dtype):
    # Their weights were cast to the integer dtype (0): every output its lower source, silently.
    x = tg.zeros((1, 1) + (2,) * spatial, dtype=dtype)
    with pytest.raises(NotImplementedError):
        tg.nn.functional.interpolate(x, scale_factor=2, mode=mode)


@pytest.mark.parametrize("point", [(np.nan, 0.0), (0.0, np.nan), (np.inf, 0.0), (-np.inf, 0.5), (1e30, 0.0)])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["border", "reflection"])
def test_a_nan_coordinate_clips_to_the_first_pixel_as_pytorchs(point, mode, padding_mode):
    """PyTorch's clip takes NaN (and an infinity reflected, which is NaN) to pixel 0; it stayed
    NaN here and read nothing: 0 where PyTorch samples the edge."""
    torch = pytest.importorskip("torch")
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    grid = np.array(point).reshape(1, 1, 1, 2)
    ours = F.grid_sample(tg.tensor(x), tg.tensor(grid), mode=mode, padding_mode=padding_mode, align_corners=False)
    theirs = torch.nn.functional.grid_sample(
        torch.tensor(x), torch.tensor(grid), mode=mode, padding_mode=padding_mode, align_corners=False
    )
    assert ours.item() == theirs.item()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: tg.randperm(300, dtype=tg.uint8), "value cannot be converted to type uint8_t without overflow"),
        (lambda: tg.randint(-1, 5, (20,), dtype=tg.uint8), "from is out of bounds for unsigned char"),
        (lambda: tg.randint(300, (5,), dtype=tg.uint8), r"to - 1 is out of bounds for unsigned char"),
        (lambda: tg.randint(10, (5,), dtype=tg.bool), r"to - 1 is out of bounds for bool"),
    ],
)
def test_random_integers_the_dtype_cannot_hold_raise(call, message):
    """Cast after drawing, they wrapped round: randperm(300, uint8) held 256 distinct values
    and randint(-1, 5, uint8) gave 255, silently. PyTorch raises."""
    with pytest.raises(RuntimeError, match=message):
        call()
    assert sorted(tg.randperm(256, dtype=tg.uint8).tolist()) == list(range(256))
    assert set(tg.randint(0, 2, (64,), dtype=tg.bool).tolist()) <= {False, True}
