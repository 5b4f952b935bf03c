"""Names the census's programs use most that tapegrad lacked (tests/../shared/census): each
against PyTorch 2.13 where torch is installed, and on its own semantics where it is not."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tapegrad as tg


def _torch():
    return pytest.importorskip("torch")


def _both(program):
    """``program(module)`` for tapegrad and PyTorch, as nested Python values."""
    torch = _torch()

    def plain(value):
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if hasattr(value, "detach"):
            return (str(value.dtype).split(".")[-1], value.detach().numpy().tolist())
        return value

    return plain(program(tg)), plain(program(torch))


@pytest.mark.parametrize(
    "program",
    [
        lambda m: m.bmm(m.arange(24.0).reshape(2, 3, 4), m.arange(40.0).reshape(2, 4, 5)),
        lambda m: m.arange(6.0).reshape(2, 3).mm(m.ones(3, 2)),
        lambda m: m.arange(3.0).dot(m.arange(3.0)),
        lambda m: [m.ones(2, dtype=m.float64).new_zeros(3), m.ones(2).new_ones((2, 1)), m.ones(1).new_full((2,), 7.0)],
        lambda m: m.ones(1).new_tensor([1, 2]),
        lambda m: [m.FloatTensor([1, 2]), m.LongTensor([1.7, 2.0]), m.DoubleTensor(2, 1).shape[0]],
        lambda m: [m.isnan(m.tensor([1.0, math.nan])), m.isinf(m.tensor([math.inf, 1.0])), m.tensor([1.0]).isfinite()],
        lambda m: [m.tensor([[1, 0], [1, 1]]).all(), m.all(m.tensor([[1, 0], [1, 1]]), dim=1), m.tensor([0, 1]).any()],
        lambda m: [m.allclose(m.ones(2), m.ones(2) + 1e-9), m.isclose(m.ones(2), m.tensor([1.0, 2.0]))],
        lambda m: [m.equal(m.ones(2), m.ones(2)), m.equal(m.ones(2), m.ones(3))],
        lambda m: [m.eq(m.arange(3), 1), m.gt(m.arange(3), 0), m.le(m.arange(3.0), m.ones(3))],
        lambda m: [m.arange(3).type_as(m.ones(1)), m.ones(2, 2).ravel(), m.ones(2, 3).ndimension()],
        lambda m: m.log_softmax(m.tensor([1.0, 2.0, 3.0]), dim=0),
        lambda m: [m.inf, m.pi, m.e, math.isnan(m.nan)],
        lambda m: [str(m.nn.ReLU(inplace=True)), str(m.nn.GELU()), str(m.nn.Softplus()), str(m.nn.SiLU())],
    ],
)
def test_values_dtypes_and_prints_match_pytorch(program):
    ours, theirs = _both(program)
    _close([ours], [theirs])


def _close(ours, theirs) -> bool:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        if isinstance(a, (list, tuple)):
            _close(list(a), list(b))
        elif isinstance(a, float):
            assert a == pytest.approx(b)
        else:
            assert a == b
    return True


def test_bmm_and_mm_methods_differentiate_as_pytorch():
    torch = _torch()
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4, 2))
    grads = []
    for m in (tg, torch):
        x, y = m.tensor(a, requires_grad=True), m.tensor(b, requires_grad=True)
        out = m.bmm(x, y)
        (out * out).sum().backward()
        grads.append(
            (
                out.grad_fn.name() if hasattr(out.grad_fn, "name") else type(out.grad_fn).__name__,
                x.grad.numpy(),
                y.grad.numpy(),
            )
        )
    assert grads[0][0] == grads[1][0] == "BmmBackward0"
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-12)
    np.testing.assert_allclose(grads[0][2], grads[1][2], rtol=1e-12)


def test_bmm_refuses_what_pytorch_refuses():
    with pytest.raises(RuntimeError, match="batch1 must be a 3D tensor"):
        tg.bmm(tg.ones(2, 2), tg.ones(2, 2, 2))
    with pytest.raises(RuntimeError, match="Expected size for first two dimensions of batch2 tensor"):
        tg.bmm(tg.ones(2, 2, 3), tg.ones(2, 2, 2))


def test_legacy_tensor_types_test_the_dtype():
    assert isinstance(tg.ones(2), tg.FloatTensor) and not isinstance(tg.ones(2), tg.LongTensor)
    assert isinstance(tg.arange(3), tg.LongTensor) and tg.FloatTensor(2, 3).shape == (2, 3)


def test_set_default_dtype_changes_new_floating_tensors_only():
    try:
        tg.set_default_dtype(tg.float64)
        assert tg.get_default_dtype() == tg.float64
        assert tg.tensor([1.0]).dtype == tg.zeros(2).dtype == tg.float64
        assert tg.tensor([1]).dtype == tg.int64
    finally:
        tg.set_default_dtype(tg.float32)
    assert tg.tensor([1.0]).dtype == tg.float32
    with pytest.raises(TypeError, match="only floating-point types are supported as the default type"):
        tg.set_default_dtype(tg.int64)


def test_inference_mode_and_variable():
    x = tg.ones(2, requires_grad=True)
    with tg.inference_mode():
        assert not (x * 2).requires_grad
    with tg.inference_mode(False):
        assert (x * 2).requires_grad

    @tg.inference_mode()
    def evaluate(value):
        return value * 2

    assert not evaluate(x).requires_grad
    v = tg.autograd.Variable(tg.zeros(1), requires_grad=True)
    assert v.requires_grad and v.is_leaf


def test_multinomial_and_randperm_follow_their_distributions():
    g = tg.Generator().manual_seed(0)
    draws = tg.multinomial(tg.tensor([0.0, 1.0, 3.0]), 4000, replacement=True, generator=g)
    counts = np.bincount(draws.numpy(), minlength=3)
    assert counts[0] == 0 and abs(counts[2] / counts[1] - 3) < 0.3
    rows = tg.multinomial(tg.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]), 2, generator=g)
    assert rows.shape == (2, 2) and rows.dtype == tg.int64 and len(set(rows[0].tolist())) == 2
    assert rows[1].tolist() == [2, 0]  # PyTorch 2.13: past the nonzero weights, zero ones in order
    with pytest.raises(
        RuntimeError, match="cannot sample n_sample > prob_dist.size\\(-1\\) samples without replacement"
    ):
        tg.multinomial(tg.ones(2), 3)
    with pytest.raises(RuntimeError, match="probability tensor contains either `inf`, `nan` or element < 0"):
        tg.multinomial(tg.tensor([1.0, -1.0]), 1)
    assert sorted(tg.randperm(6, generator=g).tolist()) == list(range(6))
    assert (
        tg.randperm(6, generator=tg.Generator().manual_seed(5)).tolist()
        == tg.randperm(6, generator=tg.Generator().manual_seed(5)).tolist()
    )


def test_load_accepts_pytorchs_keywords(tmp_path):
    path = tmp_path / "state.pt"
    tg.save({"w": tg.ones(2)}, path)
    state = tg.load(path, map_location="cpu", weights_only=True)
    assert state["w"].tolist() == [1.0, 1.0]
    with pytest.raises(AssertionError, match="Torch not compiled with CUDA enabled"):
        tg.load(path, map_location="cuda")


def test_activation_modules_take_pytorchs_arguments():
    assert tg.nn.ReLU(True).inplace and tg.nn.GELU(approximate="none").approximate == "none"
    with pytest.raises(TypeError, match="unexpected keyword argument 'alpha'"):
        tg.nn.ReLU(alpha=1)
    assert tg.nn.Identity(54, unused="x")(tg.ones(1)).tolist() == [1.0]


# -- built from table ops (tapegrad/_composites.py) ---------------------------------------------


@pytest.mark.parametrize(
    "program",
    [
        lambda m, x: (m.tril(x) * 2 + m.triu(x, 1) + m.tril(x, -1)).sum(),
        lambda m, x: m.diag(x, 1).sum() + m.diag(m.diag(x)).pow(2).sum() + m.diag(x[0], -1).sum(),
        lambda m, x: m.topk(x, 2, dim=1).values.pow(2).sum() + m.topk(x.reshape(-1), 3, largest=False)[0].sum(),
        lambda m, x: (m.sort(x, dim=0, descending=True).values * m.arange(3.0).reshape(3, 1)).sum(),
        lambda m, x: sum(g.sum() for g in m.meshgrid(x[0], x[1], indexing="xy")) + m.meshgrid(x[0], x[2])[1].sum(),
        lambda m, x: (m.vstack([x[0], x[1]]) ** 2).sum() + m.hstack([x, x]).sum() + m.column_stack([x[0], x[1]]).sum(),
        lambda m, x: m.dist(x, x.t(), 3) + m.linalg.norm(x) + m.linalg.norm(x[0], ord=1) + m.linalg.vector_norm(x, 3),
    ],
)
def test_composites_match_pytorch_values_and_gradients(program):
    torch = _torch()
    data = np.array([[0.5, -1.2, 2.0], [3.1, 0.2, -0.7], [1.5, 2.5, -2.2]])
    results = []
    for m in (tg, torch):
        x = m.tensor(data, requires_grad=True)
        out = program(m, x)
        out.backward()
        results.append((float(out), x.grad.numpy()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-14)


def test_topk_and_sort_print_and_order_as_pytorch():
    torch = _torch()
    values = [3.0, 1.0, math.nan, 2.0, 1.0]
    for descending in (False, True):
        ours = tg.sort(tg.tensor(values), descending=descending, stable=True)
        theirs = torch.sort(torch.tensor(values), descending=descending, stable=True)
        assert ours.indices.tolist() == theirs.indices.tolist()
    assert repr(tg.topk(tg.tensor([3.0, 1.0, 2.0]), 2)) == repr(torch.topk(torch.tensor([3.0, 1.0, 2.0]), 2)).replace(
        "torch.", "tapegrad."
    )
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        tg.topk(tg.ones(3), 4)


def test_one_hot_and_normal():
    torch = _torch()
    labels = [2, 0, 1]
    for num_classes in (-1, 4):
        assert (
            tg.nn.functional.one_hot(tg.tensor(labels), num_classes).tolist()
            == torch.nn.functional.one_hot(torch.tensor(labels), num_classes).tolist()
        )
    with pytest.raises(RuntimeError, match="Class values must be smaller than num_classes"):
        tg.nn.functional.one_hot(tg.tensor(labels), 2)
    samples = tg.normal(2.0, 3.0, size=(20000,), generator=tg.Generator().manual_seed(1))
    assert samples.dtype == tg.float32 and abs(float(samples.mean()) - 2) < 0.1 and abs(float(samples.std()) - 3) < 0.1
    assert tg.normal(tg.zeros(2, 3, dtype=tg.float64), tg.ones(3, dtype=tg.float64)).shape == (2, 3)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("RMSprop", {"lr": 0.01}),
        ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.1}),
        ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
        ("Adadelta", {"lr": 1.0, "weight_decay": 0.01}),
    ],
)
def test_optimizers_follow_pytorchs_updates(name, options):
    torch = _torch()
    start = np.array([[0.5, -1.5], [2.0, 0.25]])
    trajectories = []
    for m in (tg, torch):
        w = m.nn.Parameter(m.tensor(start))
        optimizer = getattr(m.optim, name)([w], **options)
        scheduler = m.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
        for _ in range(5):
            optimizer.zero_grad()
            ((w**3).sum() + (w * w).sum()).backward()
            optimizer.step()
            scheduler.step()
        trajectories.append((w.detach().numpy().copy(), scheduler.get_last_lr()))
    np.testing.assert_allclose(trajectories[0][0], trajectories[1][0], rtol=1e-10)
    assert trajectories[0][1] == pytest.approx(trajectories[1][1])


def test_keywords_pytorch_accepts():
    torch = _torch()
    data = np.arange(6.0).reshape(2, 3)
    logits, labels = np.array([[0.1, 2.0, -1.0], [1.0, 0.0, 0.5]]), [1, 2]
    results = []
    for m in (tg, torch):
        x = m.tensor(data)
        F = m.nn.functional  # noqa: N806 - the name programs use
        results.append(
            [
                x.sum(axis=0, keepdims=True).tolist(),
                x.mean(axis=1).tolist(),
                x.std(axis=0).tolist(),
                float(F.nll_loss(m.tensor(logits).log_softmax(1), m.tensor(labels), size_average=False)),
                float(F.cross_entropy(m.tensor(logits), m.tensor(labels), reduce=True, size_average=True)),
                F.mse_loss(x, x * 2, reduce=False).tolist(),
            ]
        )
    assert results[0][:3] == results[1][:3]
    assert results[0][3:5] == pytest.approx(results[1][3:5]) and results[0][5] == results[1][5]
    out = tg.zeros(2, 2)
    assert tg.matmul(tg.ones(2, 3), tg.ones(3, 2), out=out) is out and out.tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert tg.rand(3, out=out).shape == (3,)
    with pytest.raises(RuntimeError, match="functions with out=... arguments don't support automatic differentiation"):
        tg.matmul(tg.ones(2, 2, requires_grad=True), tg.ones(2, 2), out=tg.zeros(2, 2))


def test_numpy_runtime_warnings_stay_inside_as_pytorchs_do():
    """PyTorch prints nothing for log(-1), 1/0 or exp(1000); tapegrad's numpy calls would warn.
    A fresh interpreter, so that no test's warning filter hides the answer."""
    import subprocess
    import sys

    code = (
        "import numpy as np, tapegrad as tg\n"
        "x = tg.tensor([-1.0, 0.0, 1000.0], requires_grad=True)\n"
        "y = x.log() + x.reciprocal() + x.exp() + x.acosh() + x / 0\n"
        "y.sum().backward()\n"
        "print(y.tolist())\n"
        "np.log(np.array([-1.0]))  # the user's own numpy call still warns\n"
    )
    result = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, check=True)
    assert "nan" in result.stdout
    warned = [line for line in result.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warned) == 1 and "<string>" in warned[0], result.stderr


def test_version_is_an_int_counting_in_place_changes_as_pytorchs():
    torch = _torch()
    seen = []
    for m in (tg, torch):
        x = m.ones(3)
        view, detached = x[:2], x.detach()
        counts = [x._version]
        x.add_(1)
        view.mul_(2)
        detached.zero_()
        counts += [x._version, view._version, detached._version, m.ones(1)._version]
        seen.append(counts)
    assert seen[0] == seen[1] and all(type(c) is int for c in seen[0])
