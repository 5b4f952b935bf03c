"""``select``, ``narrow``, ``broadcast_to``, ``addmm``, ``addcmul``, ``addcdiv``, ``lerp``,
``trace``, ``mv`` and ``logaddexp``: compositions of recorded ops, checked by central
differences, and against PyTorch (values, gradients, errors) where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

rng = np.random.default_rng(0)

# name: (function of the module m and tensors, input shapes)
CASES = {
    "select": (lambda m, x: m.select(x, 1, -2), [(2, 3, 4)]),
    "Tensor.select": (lambda m, x: x.select(0, 1), [(2, 3)]),
    "narrow": (lambda m, x: m.narrow(x, 1, 1, 2), [(2, 4)]),
    "narrow, negative start": (lambda m, x: x.narrow(-1, -3, 2), [(2, 4)]),
    "broadcast_to": (lambda m, x: m.broadcast_to(x, (2, 3, 4)), [(3, 1)]),
    "addmm": (lambda m, x, a, b: m.addmm(x, a, b), [(2, 4), (2, 3), (3, 4)]),
    "addmm, beta and alpha, broadcast": (
        lambda m, x, a, b: x.addmm(a, b, beta=0.5, alpha=-2.0),
        [(4,), (2, 3), (3, 4)],
    ),
    "addmm, beta 0": (lambda m, x, a, b: m.addmm(x, a, b, beta=0), [(2, 4), (2, 3), (3, 4)]),
    "addcmul": (lambda m, x, a, b: m.addcmul(x, a, b, value=0.3), [(2, 3), (2, 3), (3,)]),
    "addcdiv": (lambda m, x, a, b: x.addcdiv(a, b.exp(), value=-2), [(2, 3), (1, 3), (2, 3)]),
    "lerp, number": (lambda m, x, y: m.lerp(x, y, 0.3), [(2, 3), (2, 3)]),
    "lerp, tensor weight": (lambda m, x, y, w: x.lerp(y, w), [(2, 3), (2, 3), (3,)]),
    "trace": (lambda m, x: m.trace(x), [(3, 4)]),
    "mv": (lambda m, a, v: m.mv(a, v), [(2, 3), (3,)]),
    "logaddexp": (lambda m, x, y: m.logaddexp(x * 300, y), [(2, 3), (3,)]),
}


def _run(m, name, arrays):
    function, _ = CASES[name]
    tensors = [m.tensor(a, requires_grad=True) for a in arrays]
    out = function(m, *tensors)
    (out * m.tensor(np.linspace(-1, 1, out.numel()).reshape(tuple(out.shape)))).sum().backward()
    # (addmm with beta 0: PyTorch's input gradient is zeros, tapegrad's None, as the docstring says)
    return [out.detach().numpy()] + [np.zeros(t.shape) if t.grad is None else t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("name", list(CASES))
def test_central_differences(name):
    function, shapes = CASES[name]
    tensors = [tg.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    assert tg.autograd.gradcheck(lambda *xs: function(tg, *xs), tuple(tensors))


@pytest.mark.parametrize("name", list(CASES))
def test_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal(s) for s in CASES[name][1]]
    for got, expected in zip(_run(tg, name, arrays), _run(torch, name, arrays)):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract")  # numpy's inf - inf, discarded
def test_logaddexp_of_infinities():
    x = tg.tensor([-np.inf, -np.inf, np.inf, 0.0], requires_grad=True)
    y = tg.tensor([-np.inf, 1.0, 0.0, 1000.0])
    out = tg.logaddexp(x, y)
    np.testing.assert_array_equal(out.detach().numpy(), [-np.inf, 1.0, np.inf, 1000.0])


def test_logaddexp_replays_at_inputs_far_from_the_recording():
    """The shift is recorded, not frozen: recorded at zeros, replayed at 1000 it must not
    overflow (a constant shift gave inf)."""

    def f(x, y):
        return tg.logaddexp(x, y).sum()

    tape = tg.record(f, np.zeros(3), np.zeros(3))
    x, y = np.array([1000.0, -5.0, 2.0]), np.array([0.0, 3.0, -np.inf])
    value, (grad, _) = tape.value_and_grad(x, y)
    eager = tg.tensor(x, requires_grad=True)
    f(eager, tg.tensor(y)).backward()
    np.testing.assert_allclose(value, np.logaddexp(x, y).sum(), rtol=1e-15)
    np.testing.assert_allclose(grad, eager.grad.numpy(), rtol=1e-15)


def test_addmm_with_beta_0_ignores_nan():
    out = tg.addmm(tg.full((2, 2), float("nan")), tg.eye(2), tg.ones(2, 2), beta=0)
    np.testing.assert_array_equal(out.numpy(), np.ones((2, 2)))


ERRORS = [
    (
        lambda m: m.ones(2, 3).select(1, 5),
        IndexError,
        "select(): index 5 out of range for tensor of size [2, 3] at dimension 1",
    ),
    (
        lambda m: m.ones(2, 3).narrow(1, 4, 1),
        IndexError,
        "start out of range (expected to be in range of [-3, 3], but got 4)",
    ),
    (lambda m: m.ones(2, 3).narrow(1, 1, 5), RuntimeError, "start (1) + length (5) exceeds dimension size (3)."),
    (lambda m: m.ones(2, 3).narrow(1, 0, -1), RuntimeError, "narrow(): length must be non-negative."),
    (lambda m: m.mv(m.ones(2, 3), m.ones(2)), RuntimeError, "size mismatch, got input (2), mat (2x3), vec (2)"),
    (lambda m: m.mv(m.ones(3), m.ones(3)), RuntimeError, "vector + matrix @ vector expected, got 1, 1, 1"),
    (lambda m: m.trace(m.ones(2, 2, 2)), RuntimeError, "trace: expected a matrix, but got tensor with dim 3"),
    (
        lambda m: m.addmm(m.ones(2, 2), m.ones(2, 3), m.ones(4, 2)),
        RuntimeError,
        "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x2)",
    ),
    (
        lambda m: m.lerp(m.ones(2), m.ones(2), m.ones(2, dtype=m.float64)),
        RuntimeError,
        "expected dtype float for `weight` but got dtype double",
    ),
]


@pytest.mark.parametrize("index", range(len(ERRORS)))
def test_errors_as_pytorch(index):
    function, kind, message = ERRORS[index]
    with pytest.raises(kind) as ours:
        function(tg)
    assert str(ours.value) == message
    torch = pytest.importorskip("torch")
    with pytest.raises(kind) as theirs:
        function(torch)
    assert str(theirs.value) == message
