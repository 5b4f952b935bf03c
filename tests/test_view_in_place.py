"""In-place views (``t_``, ``transpose_``, ``swapdims_``, ``swapaxes_``, ``squeeze_``,
``unsqueeze_``): the tensor becomes its view, its version counts one change, and a leaf that
requires grad is refused, as in PyTorch. Checked against the closed form here, and against
PyTorch where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3))
W = rng.standard_normal((3, 2))
W23 = rng.standard_normal((2, 3))


def _chain(*steps):
    """A program over the tensor ``h``: each step is ``(m, h) -> value``; returns the last."""

    def program(m, x):
        h = x * 2
        value = None
        for step in steps:
            value = step(m, h)
        return value

    return program


PROGRAMS = {
    "t_": _chain(lambda m, h: h.t_(), lambda m, h: h * m.tensor(W)),
    "transpose_": _chain(lambda m, h: h.transpose_(0, 1), lambda m, h: h.exp() * m.tensor(W)),
    "swapdims_": _chain(lambda m, h: h.swapdims_(1, 0), lambda m, h: h @ m.tensor(W23)),
    "swapaxes_": _chain(lambda m, h: h.swapaxes_(1, 0), lambda m, h: h.sin()),
    "t_ twice": _chain(lambda m, h: h.t_(), lambda m, h: h.t_(), lambda m, h: h * m.tensor(W23)),
    "t_ then add_": _chain(lambda m, h: h.t_(), lambda m, h: h.add_(m.tensor(W)), lambda m, h: h * h),
    "unsqueeze_": _chain(lambda m, h: h.unsqueeze_(1), lambda m, h: h * m.tensor(W23).reshape(2, 1, 3)),
    "squeeze_ of a view": lambda m, x: (lambda h: (h.squeeze_(), h * 3)[1])((x * 2)[:1]),
    "squeeze_(dim) of a view": lambda m, x: (lambda h: (h.squeeze_(0), h * 3)[1])((x * 2)[:1]),
    "t_ of a view, then mul_": lambda m, x: (lambda h: (lambda v: (v.t_(), v.mul_(3), h * 1)[2])(h[:, :2]))(x * 2),
    "t_ of a view, then the base's mul_": lambda m, x: (lambda h: (lambda v: (v.t_(), h.mul_(3), v * 1)[2])(h[:, :2]))(
        x * 2
    ),
}


def _run(m, program):
    x = m.tensor(X, requires_grad=True)
    out = program(m, x)
    out.sum().backward()
    return out.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    value, grad = _run(tg, PROGRAMS[name])
    expected_value, expected_grad = _run(torch, PROGRAMS[name])
    assert value.shape == expected_value.shape
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12)


def test_t_then_mul_has_the_closed_form_gradient():
    """``h = 2x; h.t_(); (h * W).sum()``: d/dx = 2 W^T, the tensor now (3, 2)."""
    x = tg.tensor(X, requires_grad=True)
    h = x * 2
    assert h.t_() is h
    assert h.shape == (3, 2) and h._version == 1
    assert type(h.grad_fn).__name__ == "TBackward1"
    (h * tg.tensor(W)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * W.T)
    np.testing.assert_array_equal(h.detach().numpy(), 2 * X.T)


@pytest.mark.parametrize(
    ("method", "args", "grad_fn"),
    [
        ("squeeze_", (), "SqueezeBackward3"),
        ("squeeze_", (0,), "SqueezeBackward4"),
        ("squeeze_", ((0, 2),), "SqueezeBackward5"),
        ("unsqueeze_", (0,), "UnsqueezeBackward1"),
        ("transpose_", (0, 2), "TransposeBackward1"),
        ("swapaxes_", (0, 1), "TransposeBackward1"),
    ],
)
def test_grad_fn_is_named_as_pytorch_names_it(method, args, grad_fn):
    x = tg.ones(1, 3, 1, requires_grad=True)
    h = x * 2
    getattr(h, method)(*args)
    assert type(h.grad_fn).__name__ == grad_fn
    h.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((1, 3, 1), 2.0))


def test_a_value_saved_before_raises_at_backward():
    """The version counts the change: PyTorch's backward through ``h * h`` saved before fails."""
    x = tg.tensor(X, requires_grad=True)
    h = x * 2
    y = h * h
    h.t_()
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*output 0 of T1"):
        y.sum().backward()


@pytest.mark.parametrize("method", ["t_", "transpose_", "swapdims_", "swapaxes_", "squeeze_", "unsqueeze_"])
def test_refused_for_a_leaf_that_requires_grad(method):
    args = () if method in ("t_", "squeeze_") else (0,) if method == "unsqueeze_" else (0, 1)
    x = tg.ones(2, 1, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        getattr(x, method)(*args)
    assert x.shape == (2, 1) and x._version == 0  # nothing changed
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        getattr(x[:, :1], method)(*args)
    with tg.no_grad():  # allowed there, as in PyTorch
        getattr(x, method)(*args)
    assert x.requires_grad and x.is_leaf and x._version == 1


def test_bad_arguments_change_nothing():
    h = tg.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(IndexError):
        h.transpose_(0, 5)
    with pytest.raises(RuntimeError, match="expects a tensor with <= 2 dimensions"):
        (h.reshape(1, 2, 3)).t_()
    assert h.shape == (2, 3) and h._version == 0 and type(h.grad_fn).__name__ == "MulBackward0"


def test_under_no_grad_a_recorded_tensor_is_refused():
    """PyTorch lets it through and then fails in backward ("returned an invalid gradient"):
    refused at once, before anything changes."""
    h = tg.ones(2, 3, requires_grad=True) * 2
    with tg.no_grad(), pytest.raises(RuntimeError, match="under no_grad is not supported"):
        h.t_()
    assert h.shape == (2, 3)
    plain = h.detach()
    with tg.no_grad():
        plain.t_()
    assert plain.shape == (3, 2)


def test_replay_follows_the_view():
    """Recorded inside ``tapegrad.record`` and replayed at a new input: the eager result."""

    def f(x):
        h = x * 2
        h.t_()
        return (h * tg.tensor(W)).sum()

    tape = tg.record(f, X)
    x2 = X + 1.0
    value, (grad,) = tape.value_and_grad(x2)
    np.testing.assert_allclose(value, (2 * x2.T * W).sum())
    np.testing.assert_allclose(grad, 2 * W.T)


def test_an_expanded_tensor_changes_shape_in_place():
    """Only shape and strides change: allowed on an expand, which no write may touch."""
    x = tg.ones(3, 1).expand(3, 4)
    assert x.t_().shape == (4, 3)
    assert x.unsqueeze_(0).shape == (1, 4, 3)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        x.add_(1)


def test_errors_name_the_in_place_method():
    with pytest.raises(RuntimeError, match=r"^t_\(\) expects a tensor with <= 2 dimensions, but self is 3D"):
        (tg.ones(2, 1, 3, requires_grad=True) * 2).t_()


def _through_a_view_of_a_transposed_result(m, case: int):
    """A change in place through a view of a result laid out as its transposed operand (x.t() + 1
    keeps x's strides), then a backward through both."""
    x = m.tensor(np.arange(24.0).reshape(2, 3, 4) / 10.0, dtype=m.float64, requires_grad=True)
    y = [x.permute(2, 0, 1) + 1, x.transpose(0, 2) * 2, x.mT.sin(), x.permute(1, 2, 0) - 0.5][case % 4]
    view = [lambda t: t[:1], lambda t: t[1:, ::2], lambda t: t.select(2, 1), lambda t: t.transpose(0, 1)[1]][case // 4]
    view(y).mul_(3.0)
    (y * y).sum().backward()
    return y.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("case", range(16))
def test_changes_through_views_of_transposed_results_match_pytorch(case):
    torch = pytest.importorskip("torch")
    for ours, theirs in zip(
        _through_a_view_of_a_transposed_result(tg, case), _through_a_view_of_a_transposed_result(torch, case)
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def _through_unfold(m):
    x = m.tensor([-1.5, 0.5, 2.0, -0.9, 0.3, -0.2], requires_grad=True)
    v = x * 1.0
    v.unfold(0, 2, 3).clamp_(min=0.0)  # windows [0:2] and [3:5]: a view, changed in place
    (v * m.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])).sum().backward()
    plain = m.zeros(3, 4)
    plain.t().unfold(0, 2, 2).fill_(1.0)
    return v.detach().numpy(), x.grad.numpy(), plain.numpy()


def test_in_place_change_through_unfold_reaches_the_tensor():
    """unfold was a copy: a change in place of its windows left the tensor and its gradient as
    they were, silently. Where the windows tile a prefix it is a view now; elsewhere (windows
    that overlap, or end before the next window's start) a copy whose change in place raises
    (PyTorch writes through: its windows are views even where they overlap)."""
    v, grad, plain = _through_unfold(tg)
    np.testing.assert_array_equal(v, np.float32([0.0, 0.5, 2.0, 0.0, 0.3, -0.2]))
    np.testing.assert_array_equal(grad, [0.0, 2.0, 3.0, 0.0, 5.0, 6.0])
    assert plain.all()
    for size, step in ((3, 1), (2, 3)):  # overlapping; 2 windows 3 apart in 5 elements: no 2 blocks of 3
        with pytest.raises(NotImplementedError, match="would not reach the input"):
            tg.arange(5.0).unfold(0, size, step).add_(1.0)
    torch = pytest.importorskip("torch")
    for ours, theirs in zip(_through_unfold(tg), _through_unfold(torch)):
        np.testing.assert_array_equal(ours, theirs)


def test_unfold_view_replays():
    tape = tg.record(lambda x: (x * 2.0).unfold(0, 2, 2).sum(-1) ** 2, np.ones(6))
    x = np.arange(6.0)
    np.testing.assert_allclose(tape(x).numpy(), ((2 * x).reshape(3, 2).sum(-1)) ** 2)


def test_a_change_through_a_view_of_a_copy_raises():
    # as_strided's results, and unfold's overlapping windows, are copies here (views in PyTorch):
    # a change of a slice of one was kept by the slice and never reached the tensor, silently.
    b = tg.tensor([-1.0, -2.0, -3.0, -4.0])
    for change in (
        lambda: b.as_strided((2,), (2,)).mul_(2),
        lambda: b.as_strided((2,), (2,))[::1].mul_(2),
        lambda: b.as_strided((2,), (2,)).unsqueeze(0).zero_(),
        lambda: b.unfold(0, 2, 1)[0].mul_(2),
        lambda: (b * 1).unfold(0, 2, 1)[:, 1].relu_(),
    ):
        with pytest.raises(NotImplementedError, match="would not reach the input"):
            change()
    assert b.tolist() == [-1.0, -2.0, -3.0, -4.0]
    copy = b.as_strided((2,), (2,)).clone()  # a clone may change
    copy[0] = 5.0
    assert copy.tolist() == [5.0, -3.0]


def _framed(m):
    """STFT framing: unfold's overlapping windows reshaped, then scaled in place. PyTorch's
    reshape of its windows (a view it cannot reshape as one) is a copy, free to change."""
    x = m.arange(20.0).reshape(2, 10)
    windows = x.unfold(1, 4, 2)
    frames = windows.reshape(-1, 4)
    frames *= m.tensor([0.5, 1.0, 1.0, 0.5])
    flat = m.arange(6.0).unfold(0, 3, 1).flatten()
    flat.mul_(2)
    return frames.tolist(), x.tolist(), windows.tolist(), flat.tolist()


def test_a_reshape_of_unfold_windows_is_a_copy_to_change():
    assert _framed(tg)[1] == tg.arange(20.0).reshape(2, 10).tolist()
    with pytest.raises(RuntimeError, match="single memory location"):  # an expand first: PyTorch's error
        tg.arange(4.0).as_strided((2,), (1,)).expand(3, 2).add_(1)
    torch = pytest.importorskip("torch")
    assert _framed(tg) == _framed(torch)


@pytest.mark.parametrize("pick", [lambda y: y.unfold(1, 2, 1), lambda y: y.as_strided((2, 2), (3, 1))])
def test_overlapping_picks_read_their_inputs_memory_as_pytorchs_views(pick):
    """``unfold`` with overlapping windows and ``as_strided`` are recorded as picks (copies), and
    kept the values of the moment: after ``y.mul_(2)`` they showed the old ones, silently, and a
    backward saved through them differentiated those. They read ``y``'s memory now, follow its
    changes as PyTorch's views do, and a change after a backward saved them is refused."""
    x = tg.arange(6.0, dtype=tg.float64).reshape(2, 3).requires_grad_()
    y = x * 1
    window = pick(y)
    before = window.tolist()
    y.mul_(2)
    assert window.tolist() == (2 * np.array(before)).tolist()
    (window * window).sum().backward()  # taken from y's new row: d/dx of (2x)^2 summed
    expected = np.zeros((2, 3))
    positions = pick(tg.arange(6.0, dtype=tg.float64).reshape(2, 3)).numpy().astype(int).reshape(-1)
    np.add.at(expected.reshape(-1), positions, 8 * positions)
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    y = x * 1
    saved = (pick(y) ** 2).sum()
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved.backward()
    with pytest.raises(NotImplementedError, match="as_strided"):
        pick(x * 1)[0].mul_(2)
