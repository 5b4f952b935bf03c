"""Names the census's programs use most that tapegrad lacked (tests/../shared/census): each
against PyTorch 2.13 where torch is installed, and on its own semantics where it is not."""

from __future__ import annotations

import importlib
import math
import warnings

import numpy as np
import pytest

import tapegrad as tg

from .outcomes import outcomes


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


@pytest.mark.parametrize("default", ["float64", "float32"])
def test_integers_become_the_default_float_dtype_and_print_as_pytorch_prints(default):
    # Integer true division, a float op of integers and the dtype shown by repr follow the default
    # dtype, as PyTorch's; they followed float32 whatever the default was.
    torch = _torch()
    results = []
    for m in (tg, torch):
        m.set_default_dtype(getattr(m, default))
        try:
            a = m.tensor([1, 3])
            values = [a / 4, a / a, 4 / a, a.sqrt(), a.exp(), a.float() * 1.5]
            results.append(([str(v.dtype).split(".")[1] for v in values], [v.tolist() for v in values]))
            results[-1] += (
                [repr(m.tensor([1.5])), repr(m.tensor([1.5], dtype=m.float32)), repr(m.tensor([1.5], dtype=m.float64))],
            )
        finally:
            m.set_default_dtype(m.float32)
    (dtypes, values, reprs), (tdtypes, tvalues, treprs) = results
    assert dtypes == tdtypes
    np.testing.assert_allclose(
        np.array(values, dtype=object).astype(float), np.array(tvalues, dtype=object).astype(float)
    )
    assert reprs == [r.replace("torch.", "tapegrad.") for r in treprs]


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


# -- issue 16: the census's next names ---------------------------------------------------------


@pytest.mark.parametrize(
    "program",
    [
        lambda m: [m.nonzero(m.tensor([[0, 1], [2, 0]])), m.nonzero(m.tensor(3.0)), m.nonzero(m.zeros(0))],
        lambda m: list(m.nonzero(m.tensor([[0, 1], [2, 0]]), as_tuple=True)) + [m.ones(2).nonzero()],
        lambda m: [m.ceil(m.tensor([1.2, -1.5, -0.2, 3.0])), m.ceil(m.tensor([2, -3])), m.tensor([0.5]).ceil()],
        lambda m: [m.arange(6.0).reshape(2, 3).masked_select(m.tensor([True, False, True])), m.tensor(2).byte()],
        lambda m: [m.repeat_interleave(m.tensor([[1, 2], [3, 4]]), 2), m.repeat_interleave(m.tensor([2, 0, 1]))],
        lambda m: [
            m.arange(4).reshape(2, 2).repeat_interleave(m.tensor([1, 2]), dim=0),
            m.tensor([-3.2, 300.0]).byte(),
        ],
        lambda m: [m.ones(2, 3, 4).movedim(0, 2).shape, m.ones(2, 3, 4).movedim((0, 1), (-1, 0)).shape],
        lambda m: [m.arange(3).tile((2,)), m.arange(3).tile((2, 1)), m.ones(2, 3).swapaxes(0, 1).shape],
        lambda m: [m.roll(m.arange(6).reshape(2, 3), 1), m.roll(m.arange(6).reshape(2, 3), (1, -1), (0, 1))],
        lambda m: [
            m.argsort(m.tensor([3.0, 1.0, 2.0, 1.0]), stable=True),
            m.argsort(m.tensor([[1, 3], [2, 0]]), 0, True),
        ],
        lambda m: [
            m.searchsorted(m.tensor([1.0, 3.0, 5.0]), m.tensor([0.0, 3.0, 6.0])),
            m.searchsorted(m.tensor([1, 3]), 3, right=True),
        ],
        lambda m: [m.searchsorted(m.tensor([[1, 3], [2, 4]]), m.tensor([[3], [3]]), side="right", out_int32=True)],
        lambda m: list(m.unique(m.tensor([3, 1, 3, 2]), return_inverse=True, return_counts=True)),
        lambda m: (
            list(m.tensor([[1, 2], [1, 2], [0, 1]]).unique(dim=0, return_counts=True)) + [m.tensor([2.0, 1.0]).unique()]
        ),
        lambda m: (
            list(m.std_mean(m.tensor([[1.0, 2.0, 4.0], [0.0, 1.0, 1.0]]), dim=1, keepdim=True))
            + list(m.std_mean(m.ones(3), correction=0))
        ),
        lambda m: [
            str(d).split(".")[-1]
            for d in (m.promote_types(m.int32, m.float32), m.promote_types(m.int16, m.int64), m.short)
        ],
        lambda m: [
            m.is_floating_point(m.ones(1)),
            m.is_floating_point(m.ones(1, dtype=m.int16)),
            m.ones(2, dtype=m.int16) + 1,
        ],
        lambda m: [
            m.cross(m.tensor([[1.0, 0.0, 0.0]]), m.tensor([[0.0, 1.0, 0.0]]), dim=1),
            m.linalg.cross(m.ones(3), m.arange(3.0)),
        ],
        lambda m: [
            m.linalg.vecdot(m.arange(6.0).reshape(2, 3), m.ones(3)),
            m.linalg.vecdot(m.ones(3, 2), m.ones(3, 2), dim=0),
        ],
        lambda m: [m.bernoulli(m.tensor([0.0, 1.0, 1.0])), m.relu_(m.tensor([-1.0, 2.0])), m.sin_(m.tensor([0.0]))],
        lambda m: [
            m.zeros(2, 3).scatter(1, m.tensor([[2], [0]]), m.tensor([[5.0], [6.0]])),
            m.zeros(3).scatter(0, m.tensor([1]), value=2.0),
        ],
        lambda m: [m.ones(2).unsqueeze_(0).shape, m.ones(2, dtype=m.int16).unsqueeze_(-1)],
        lambda m: [
            m.nn.functional.pad(m.arange(6.0).reshape(1, 2, 3), (1, 2), value=9.0),
            m.nn.functional.pad(m.ones(2, 2), (-1, 1, 1, 0)),
        ],
        lambda m: [
            m.nn.functional.pad(m.arange(6.0).reshape(1, 2, 3), (2, 1), mode=mode)
            for mode in ("reflect", "replicate", "circular")
        ],
        lambda m: [
            m.nn.functional.glu(m.arange(8.0).reshape(2, 4)),
            m.nn.functional.glu(m.arange(4.0).reshape(2, 2), 0),
        ],
        lambda m: [
            m.nn.functional.smooth_l1_loss(m.tensor([0.0, 3.0]), m.tensor([0.5, 0.0]), reduction=r)
            for r in ("mean", "sum", "none")
        ],
        lambda m: [
            m.nn.SmoothL1Loss(beta=2.0)(m.tensor([0.0, 3.0]), m.tensor([0.5, 0.0])),
            m.nn.functional.smooth_l1_loss(m.ones(2), m.zeros(2), beta=0.0),
        ],
        lambda m: (
            [m.nn.init.calculate_gain(n) for n in ("relu", "tanh", "linear", "sigmoid", "selu", "conv2d")]
            + [m.nn.init.calculate_gain("leaky_relu", 0.2)]
        ),
        lambda m: [
            m.linalg.solve(m.tensor([[3.0, 1.0], [1.0, 2.0]]), m.tensor([9.0, 8.0])),
            m.inverse(m.tensor([[2.0, 0.0], [0.0, 4.0]])),
        ],
        lambda m: [
            m.linalg.solve(m.eye(2).expand(3, 2, 2), m.ones(3, 2)).shape,
            m.linalg.inv(m.eye(2, dtype=m.float64) * 2),
        ],
    ],
)
def test_issue_16_values_match_pytorch(program):
    ours, theirs = _both(program)
    _close([ours], [theirs])


_MATRIX = np.array([[2.0, 0.5, -1.0], [0.3, 3.0, 0.2], [-0.4, 0.1, 1.5]])


@pytest.mark.parametrize(
    "program",
    [
        lambda m, x: (m.masked_select(x, x > 0) ** 2).sum() + (m.repeat_interleave(x, 2, dim=1) * m.arange(6.0)).sum(),
        lambda m, x: (x.movedim(0, 1) * m.arange(3.0)).sum() + (x.tile((1, 2)) ** 2).sum() + x.swapaxes(0, 1)[0].sum(),
        lambda m, x: (m.roll(x, (1, 2), (0, 1)) * m.arange(9.0).reshape(3, 3)).sum() + m.std_mean(x, 0)[0].sum(),
        lambda m, x: (m.cross(x, x.flip(0), dim=1) * x).sum() + m.linalg.vecdot(x, x.t()).sum(),
        lambda m, x: (
            (m.nn.functional.pad(x, (1, 2, 2, 0), value=1.5) ** 2).sum() + m.nn.functional.pad(x, (-1, 1)).sum()
        ),
        lambda m, x: sum(
            (m.nn.functional.pad(x[None], (2, 1), mode=mode) ** 2).sum() for mode in ("reflect", "replicate")
        ),
        lambda m, x: m.nn.functional.glu(m.cat([x, x * 2], 1), 1).sum() + m.nn.functional.smooth_l1_loss(x, x.t() * 2),
        lambda m, x: (x.scatter(1, m.tensor([[2], [0], [1]]), x[:, :1] * 3) ** 2).sum() + m.ceil(x).sum(),
        lambda m, x: (m.linalg.solve(x, x[:, 0]) ** 2).sum() + (m.linalg.solve(x, x.t() * 2) ** 2).sum(),
        lambda m, x: (
            (m.inverse(x) ** 2).sum() + (x.inverse() * m.arange(9.0).reshape(3, 3)).sum() + m.linalg.inv(x).sum()
        ),
    ],
)
def test_issue_16_gradients_match_pytorch(program):
    torch = _torch()
    results = []
    for m in (tg, torch):
        x = m.tensor(_MATRIX, requires_grad=True)
        out = program(m, x)
        out.backward()
        results.append((float(out), x.grad.numpy()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "program",
    [
        lambda m: m.ones(3).masked_select(m.ones(3)),
        lambda m: m.repeat_interleave(m.ones(3), m.tensor([1, 2])),
        lambda m: m.nonzero(m.ones(2), as_tuple=3),
        lambda m: m.ceil(m.tensor([True])),
        lambda m: m.ones(2, 3).movedim(0, 2),
        lambda m: m.ones(2, 3).movedim((0, 0), (1, 0)),
        lambda m: m.searchsorted(m.ones(2, 3), m.ones(3, 1)),
        lambda m: m.searchsorted(m.ones(3), m.ones(3), side="x"),
        lambda m: m.ones(2).unsqueeze_(3),
        lambda m: m.unique(m.ones(2), dim=3),
        lambda m: m.roll(m.ones(2, 2), (1, 2), (0,)),
        lambda m: m.promote_types(m.float32, 3),
        lambda m: m.argsort(m.ones(2), dim=2),
        lambda m: m.ones(2).swapaxes(0, 3),
        lambda m: m.bernoulli(m.tensor([2.0])),
        lambda m: m.cross(m.ones(2), m.ones(2)),
        lambda m: m.cross(m.ones(3, 2), m.ones(3, 2), dim=1),
        lambda m: m.ones(2).uniform_(2, 1),
        lambda m: m.ones(2).normal_(0, -1),
        lambda m: m.ones(3).scatter(0, m.tensor([1.0]), m.ones(1)),
        lambda m: m.ones(3).scatter(0, m.tensor([5]), m.ones(1)),
        lambda m: m.relu_(m.ones(2, requires_grad=True)),
        lambda m: m.std_mean(m.ones(2), dim=3),
        lambda m: m.nn.functional.pad(m.ones(2, 2), (1,)),
        lambda m: m.nn.functional.pad(m.ones(1, 2, 2), (2, 2), mode="reflect"),
        lambda m: m.nn.functional.pad(m.ones(1, 2, 2), (1, 1), mode="foo"),
        lambda m: m.nn.functional.pad(m.ones(2), (1, 1, 1, 1)),
        lambda m: m.nn.functional.glu(m.ones(3)),
        lambda m: m.nn.functional.glu(m.tensor(1.0)),
        lambda m: m.nn.functional.smooth_l1_loss(m.ones(2), m.ones(2), beta=-1),
        lambda m: m.nn.init.orthogonal_(m.ones(3)),
        lambda m: m.nn.init.calculate_gain("foo"),
        lambda m: m.nn.init.calculate_gain("leaky_relu", "x"),
        lambda m: m.linalg.solve(m.ones(2, 3), m.ones(2)),
        lambda m: m.linalg.solve(m.eye(2), m.ones(3)),
        lambda m: m.inverse(m.ones(2, 3)),
        lambda m: m.inverse(m.ones(2, 2, dtype=m.long)),
        # found by a reviewer: mm unpacked shapes (ValueError), @ a number, mT of a vector
        lambda m: m.mm(m.ones(3), m.ones(3, 2)),
        lambda m: m.mm(m.ones(2, 3), m.ones(3)),
        lambda m: m.mm(m.ones(2, 2, 3), m.ones(3, 2)),
        lambda m: m.ones(2, 3) @ 3,
        lambda m: 3.0 @ m.ones(2, 3),
        lambda m: m.ones(3).mT,
        lambda m: m.dot(m.ones(3), m.ones(3, dtype=m.float64)),
        lambda m: m.ones(2, 3) @ m.ones(3, dtype=m.float64),
        lambda m: m.ones(2, 3, dtype=m.float64) @ m.ones(3),
        lambda m: m.bmm(m.ones(2, 2, 3), m.ones(2, 3, 2, dtype=m.float64)),
        lambda m: m.ones(2, 2, 3) @ m.ones(2, 3, 2, dtype=m.float64),
        lambda m: m.ones(3) @ m.ones(3, 2, dtype=m.float64),
        lambda m: m.mm(m.ones(2, 3), m.ones(3, 2, dtype=m.float64)),
    ],
)
def test_issue_16_errors_match_pytorch(program):
    torch = _torch()
    caught = []
    for m in (tg, torch):
        with pytest.raises(Exception) as info:  # noqa: PT011 - the class is what is compared
            program(m)
        caught.append((info.type.__name__, str(info.value).split("\n")[0]))
    assert caught[0] == caught[1]


def test_singular_matrices_raise_linalg_errors_as_pytorch():
    torch = _torch()
    singular = [[1.0, 2.0], [2.0, 4.0]]
    for call in (lambda m: m.linalg.inv(m.tensor(singular)), lambda m: m.linalg.solve(m.tensor(singular), m.ones(2))):
        messages = []
        for m, error in ((tg, tg.linalg.LinAlgError), (torch, torch.linalg.LinAlgError)):
            with pytest.raises(error) as info:
                call(m)
            messages.append(str(info.value))
        assert messages[0] == messages[1] and issubclass(tg.linalg.LinAlgError, RuntimeError)


def test_lazy_linear_infers_in_features_as_pytorch():
    torch = _torch()
    for m in (tg, torch):
        layer = m.nn.LazyLinear(3)
        assert repr(layer) == "LazyLinear(in_features=0, out_features=3, bias=True)"
        assert repr(layer.weight) == "<UninitializedParameter>" and list(layer.state_dict()) == ["weight", "bias"]
        weight = layer.weight
        out = layer(m.ones(2, 4))
        assert repr(layer) == "Linear(in_features=4, out_features=3, bias=True)" and type(layer) is m.nn.Linear
        assert out.shape == (2, 3) and layer.weight is weight and tuple(weight.shape) == (3, 4)
        assert type(weight) is m.nn.Parameter and float(layer.weight.abs().max()) <= 0.5
        out.sum().backward()
        assert layer.weight.grad.tolist() == [[2.0] * 4] * 3
        loaded = m.nn.LazyLinear(2, bias=False)
        loaded.load_state_dict({"weight": m.ones(2, 5)})
        assert repr(loaded) == "LazyLinear(in_features=0, out_features=2, bias=False)"
        assert loaded(m.ones(1, 5)).tolist() == [[5.0, 5.0]]
        assert repr(loaded) == "Linear(in_features=5, out_features=2, bias=False)"


# These run without PyTorch: central differences in float64, and the random fills.
@pytest.mark.parametrize(
    "function",
    [
        lambda x: tg.masked_select(x, x > 0.2),
        lambda x: tg.repeat_interleave(x, tg.tensor([1, 0, 3]), dim=0),
        lambda x: tg.roll(x.movedim(1, 0), 1, 0).tile((2, 1)),
        lambda x: tg.cross(x, x * x, dim=0),
        lambda x: tg.std_mean(x, 1)[0] + tg.linalg.vecdot(x, x),
        lambda x: tg.nn.functional.pad(x, (1, 1, 0, 2), value=0.5),
        lambda x: tg.nn.functional.pad(x[None], (2, 2), mode="reflect") + 0,
        lambda x: tg.nn.functional.pad(x[None], (1, 3), mode="replicate"),
        lambda x: tg.nn.functional.glu(tg.cat([x, x.exp()], 1)),
        lambda x: tg.nn.functional.smooth_l1_loss(x, x.t() * 3, reduction="none"),
        lambda x: x.scatter(0, tg.tensor([[1, 0, 2]]), x[2:] * 2),
        lambda x: tg.linalg.solve(x + 3 * tg.eye(3, dtype=tg.float64), x[0]),
        lambda x: tg.linalg.solve(x + 3 * tg.eye(3, dtype=tg.float64), x.t(), left=False),
        lambda x: (
            tg.inverse(x + 3 * tg.eye(3, dtype=tg.float64)) + tg.linalg.inv(x.t() + 3 * tg.eye(3, dtype=tg.float64))
        ),
    ],
)
def test_issue_16_gradients_pass_gradcheck(function):
    x = tg.tensor(_MATRIX * 0.7 + 0.05, requires_grad=True)
    assert tg.autograd.gradcheck(function, (x,))


def test_random_fills_and_orthogonal_init_follow_their_distributions():
    g = tg.Generator().manual_seed(3)
    x = tg.zeros(20000)
    assert x.uniform_(2.0, 3.0, generator=g) is x and 2 <= float(x.min()) and float(x.max()) < 3
    assert abs(float(x.mean()) - 2.5) < 0.01
    assert x.normal_(1.0, 2.0, generator=g) is x and abs(float(x.mean()) - 1) < 0.05 and abs(float(x.std()) - 2) < 0.05
    assert x.uniform_(**{"from": -1.0, "to": 0.0}).max() < 0
    draws = tg.bernoulli(tg.full((20000,), 0.25), generator=g)
    assert draws.dtype == tg.float32 and abs(float(draws.mean()) - 0.25) < 0.02
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        tg.zeros(2, requires_grad=True).uniform_()
    for shape in ((3, 5), (5, 3), (4, 2, 2)):
        w = tg.nn.init.orthogonal_(tg.empty(*shape), gain=2.0, generator=g).reshape(shape[0], -1)
        small = w @ w.t() if shape[0] <= w.shape[1] else w.t() @ w
        np.testing.assert_allclose(small.numpy(), 4 * np.eye(small.shape[0]), atol=1e-5)


def test_vmap_is_func_vmap_and_set_printoptions_changes_printing():
    assert tg.vmap is tg.func.vmap
    assert tg.vmap(lambda row: row.sum())(tg.ones(2, 3)).tolist() == [3.0, 3.0]
    x = tg.tensor([1.0, 2.5, 1000.0])
    try:
        tg.set_printoptions(precision=2)
        assert repr(x) == "tensor([   1.00,    2.50, 1000.00])"
        tg.set_printoptions(sci_mode=True, precision=1)
        assert repr(x) == "tensor([1.0e+00, 2.5e+00, 1.0e+03])"
        tg.set_printoptions(threshold=5, edgeitems=2, sci_mode=False)
        assert repr(tg.arange(10)) == "tensor([0, 1,  ..., 8, 9])"
    finally:
        tg.set_printoptions(profile="default")
    assert repr(x) == "tensor([   1.0000,    2.5000, 1000.0000])"


def test_set_printoptions_matches_pytorch():
    torch = _torch()
    outputs = []
    for m in (tg, torch):
        try:
            lines = []
            for options in ({"precision": 2}, {"sci_mode": True}, {"threshold": 5, "edgeitems": 1}, {"linewidth": 20}):
                m.set_printoptions(**options)
                lines += [repr(m.tensor([1.0, 2.5, 1000.0, 0.125, 7.0, 8.0])), repr(m.arange(12.0).reshape(3, 4))]
                m.set_printoptions(profile="default")
            m.set_printoptions(profile="short")
            lines.append(repr(m.tensor([1 / 3, 2.0])))
        finally:
            m.set_printoptions(profile="default")
        outputs.append([line.replace("torch.", "tapegrad.") for line in lines])
    assert outputs[0] == outputs[1]


NODE_NAMES = {
    "mse_loss": lambda m, x, t: m.nn.functional.mse_loss(x, t, reduction="sum"),
    "l1_loss": lambda m, x, t: m.nn.functional.l1_loss(x, t, reduction="none"),
    "huber_loss": lambda m, x, t: m.nn.functional.huber_loss(x, t, delta=0.7),
    "smooth_l1_loss": lambda m, x, t: m.nn.functional.smooth_l1_loss(x, t, reduction="none"),
    "binary_cross_entropy": lambda m, x, t: m.nn.functional.binary_cross_entropy(x.sigmoid(), t, weight=t + 1),
    "bce_with_logits": lambda m, x, t: m.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none"),
    "cross_entropy_none": lambda m, x, t: m.nn.functional.cross_entropy(x, m.tensor([0, 2]), reduction="none"),
    "masked_fill": lambda m, x, t: x.masked_fill(t > 0, 0.5),
    "masked_fill_": lambda m, x, t: (x * 1).masked_fill_(t > 0, 0.5),
    "normalize": lambda m, x, t: m.nn.functional.normalize(x, p=1.0, dim=0),
    "layer_norm": lambda m, x, t: m.nn.functional.layer_norm(x, (3,)),
    "accumulate_grad": lambda m, x, t: (x * 2).grad_fn.next_functions[0][0],
    "copy_slices": lambda m, x, t: _assigned(x * 1),
}


def _assigned(y):
    y[0] = 1.0
    return y


@pytest.mark.parametrize("name", NODE_NAMES)
def test_composites_show_pytorchs_node_names_values_and_gradients(name):
    """A composite PyTorch computes as one node shows that node's name (``grad_fn.name()``),
    and its values and gradients are PyTorch's."""
    torch = pytest.importorskip("torch")
    results = []
    for m in (torch, tg):
        x = m.tensor([[0.5, -1.0, 2.0], [0.1, 0.2, 0.3]], requires_grad=True)
        t = m.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        out = NODE_NAMES[name](m, x, t)
        if not isinstance(out, m.Tensor):  # a node
            results.append((out.name(), None, None))
            continue
        weights = m.arange(out.numel(), dtype=out.dtype).reshape(out.shape) * 0.25 + 1  # not sum(): its
        (grad,) = m.autograd.grad((out * weights).sum(), x)  # gradient through layer_norm is 0 exactly
        results.append((out.grad_fn.name(), out.detach().numpy(), grad.numpy()))
    (torch_name, torch_value, torch_grad), (name_here, value, grad) = results
    assert name_here == torch_name
    if torch_value is not None:
        np.testing.assert_allclose(value, torch_value, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(grad, torch_grad, rtol=1e-5, atol=1e-5)  # float32 cancellation


def test_huber_l1_and_normalize_gradients_match_central_differences():
    t = tg.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=tg.float64)
    F = tg.nn.functional
    for function in (
        lambda x: F.huber_loss(x, t, delta=0.7),
        lambda x: F.l1_loss(x, t, reduction="sum"),
        lambda x: F.normalize(x, dim=1),
    ):
        x = tg.tensor([[0.5, -1.3, 2.0], [0.15, 0.2, 0.35]], dtype=tg.float64, requires_grad=True)
        assert tg.autograd.gradcheck(function, (x,))
    with pytest.raises(RuntimeError, match="huber_loss does not support non-positive values for delta"):
        F.huber_loss(t, t, delta=0.0)


def test_add_and_sub_take_alpha_as_pytorch_does():
    """``torch.add(x, y, alpha=2)`` is ``x + 2 * y``, with gradients through both; ``alpha`` is
    keyword-only. It raised a TypeError from the operator's fast path."""
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = tg.tensor([1.0, 1.0, 1.0], requires_grad=True)
    added, subtracted = tg.add(x, y, alpha=2), x.sub(y, alpha=3)
    assert added.tolist() == [3.0, 4.0, 5.0] and subtracted.tolist() == [-2.0, -1.0, 0.0]
    assert added.grad_fn.name() == "AddBackward0" and subtracted.grad_fn.name() == "SubBackward0"
    (added.sum() + subtracted.sum()).backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0] and y.grad.tolist() == [-1.0, -1.0, -1.0]
    assert tg.sub(x, 2, alpha=0.5).tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(TypeError):
        x.add(y, 2)  # alpha is keyword-only


def test_square_is_a_power_of_two():
    x = tg.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = tg.square(x)
    assert y.tolist() == [1.0, 4.0, 9.0] and x.square().tolist() == [1.0, 4.0, 9.0]
    assert y.grad_fn.name() == "PowBackward0"  # as PyTorch records it
    y.sum().backward()
    assert x.grad.tolist() == [2.0, -4.0, 6.0]


@pytest.mark.parametrize(
    "program",
    [
        lambda m, x: x[m.arange(4), m.tensor([0, 1, 2, 1])],  # logp[range(N), labels]
        lambda m, x: x[:, [2, 0]],
        lambda m, x: x[[0, 3], :, m.tensor([1, 4])],
        lambda m, x: x[m.tensor([True, False, True, True]), 1],
        lambda m, x: x[..., m.tensor([[0, 1], [4, 4]])],
        lambda m, x: x[m.tensor([[0], [3]]), m.tensor([1, 2])],
        lambda m, x: x[1:3, m.tensor([2, 2, 0])],  # a repeated index: gradients add up
    ],
)
def test_advanced_indexing_mixed_with_other_indices_is_differentiable(program):
    # It raised NotImplementedError; makemore-style losses index log-probabilities this way.
    torch = _torch()
    values = np.random.default_rng(0).standard_normal((4, 3, 5))
    x, expected_x = tg.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    y, expected = program(tg, x), program(torch, expected_x)
    weights = np.random.default_rng(1).standard_normal(tuple(expected.shape))
    (y * tg.tensor(weights)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    assert y.grad_fn.name() == expected.grad_fn.name() == "IndexBackward0"
    np.testing.assert_allclose(y.detach().numpy(), expected.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), expected_x.grad.numpy())


def test_mixed_advanced_indexing_raises_pytorchs_index_errors():
    x = tg.zeros(4, 3)
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 1 with size 3"):
        x[tg.arange(4), tg.tensor([0, 1, 3, 1])]
    with pytest.raises(IndexError, match="tensors used as indices must be long, int, byte or bool tensors"):
        x[tg.arange(4), tg.tensor([0.0, 1.0, 2.0, 1.0])]


LEGACY_CONSTRUCTOR_CALLS = {
    "sizes": lambda m: m.Tensor(4, 3).shape,
    "one size": lambda m: m.Tensor(3).shape,
    "numpy int size": lambda m: m.Tensor(np.int64(2)).shape,
    "a Size": lambda m: m.Tensor(m.Size([2, 2])).shape,
    "nothing": lambda m: m.Tensor().shape,
    "ints": lambda m: m.Tensor([1, 2]),
    "nested": lambda m: m.Tensor([[1, 2], [3, 4]]),
    "a tuple is data": lambda m: m.Tensor((2, 3)),
    "bools": lambda m: m.Tensor([True, False]),
    "a parameter of it": lambda m: m.nn.Parameter(m.Tensor(3, 2)).requires_grad,
    # a numpy array takes the default dtype (tapegrad kept int64 and float64), a tensor its own
    "an int64 array": lambda m: m.Tensor(np.array([1, 2])),
    "a float64 array": lambda m: m.Tensor(np.array([[0.5, 1.0 / 3.0]])),
    "a bool array": lambda m: m.Tensor(np.array([True, False])),
    "a long tensor": lambda m: m.Tensor(m.tensor([1, 2])),
    "a double tensor": lambda m: m.Tensor(m.tensor([0.5], dtype=m.float64)),
}


@pytest.mark.parametrize("name", LEGACY_CONSTRUCTOR_CALLS)
def test_the_legacy_tensor_constructor_makes_what_pytorchs_makes(name):
    # nn.Parameter(torch.Tensor(out, in)) is how many layers declare their weights; Tensor(4, 3)
    # raised, Tensor(3) held the number 3 and Tensor([1, 2]) was int64.
    ours, theirs = _both(lambda m: LEGACY_CONSTRUCTOR_CALLS[name](m))
    assert ours == theirs


@pytest.mark.parametrize("arguments", [(2.5,), (True,), (2, 3.0)])
def test_the_legacy_tensor_constructor_refuses_what_pytorch_refuses(arguments):
    torch = _torch()
    with pytest.raises(TypeError) as theirs:
        torch.Tensor(*arguments)
    with pytest.raises(TypeError) as ours:
        tg.Tensor(*arguments)
    assert str(ours.value) == str(theirs.value)


NEWCOMER_CALLS = {  # what a newcomer's pass over the library found differing from PyTorch
    "randint(high, size)": lambda m: m.randint(5, (3,)).shape,
    "arange of a 0-d integer tensor": lambda m: m.arange(m.tensor(3)),
    "AccumulateGrad's repr": lambda m: str(m.ones(1, requires_grad=True).mul(2).grad_fn.next_functions[0][0]).split(
        " at "
    )[0],
    "LayerNorm's repr": lambda m: [repr(m.nn.LayerNorm(3)), repr(m.nn.LayerNorm(2, elementwise_affine=False))],
    "cat onto an empty tensor": lambda m: [
        m.cat([m.empty(0), m.ones(2, 3)]),
        m.cat([m.empty(0, dtype=m.float64), m.ones(1, 2)]),
        m.cat([m.ones(1, 2), m.empty(0)], dim=1),
        m.cat([m.empty(0), m.empty(0)]),
    ],
    "Linear's node": lambda m: [
        type(m.nn.Linear(3, 2)(m.ones(*shape)).grad_fn).__name__ for shape in [(3,), (4, 3), (2, 4, 3)]
    ],
    # a second pass: nn, optim and data
    "softmax without dim": lambda m: [
        m.nn.Softmax()(m.arange(8.0).reshape(2, 2, 2)),
        m.nn.LogSoftmax()(m.arange(16.0).reshape(2, 2, 2, 2)),
        m.nn.functional.softmax(m.arange(3.0)),
        m.nn.Softmin(dim=1)(m.arange(4.0).reshape(2, 2)),
        repr(m.nn.Softmax()),
    ],
    "softplus with beta and threshold": lambda m: _softplus_values_and_gradients(m),
    "state_dict of a layer used twice": lambda m: _shared_layer_state(m),
    "train() calls each child's train()": lambda m: _frozen_batch_norm(m),
    "DataLoader's batches of tuples": lambda m: _tuple_batch(m),
    "DataLoader without batching": lambda m: [
        [type(part).__name__, part] for part in next(iter(m.utils.data.DataLoader(_NumpySamples(), batch_size=None)))
    ],
    "as_tensor of a list": lambda m: [m.as_tensor([1, 2]), m.as_tensor([0.5], dtype=m.float64)],
    "Parameter shares its tensor's memory": lambda m: _tied_parameter(m),
    "collate of ints and floats": lambda m: list(
        m.utils.data.DataLoader([0, 1.5, 2.25, 0.5, True, False], batch_size=2)
    ),
    "a loss's weights are buffers": lambda m: _weighted_losses(m),
    # autograd
    "materialized gradients of an unused inf input": lambda m: list(
        m.autograd.grad(
            (m.tensor([1.0], requires_grad=True) * 2).sum(),
            [m.tensor([1.0], requires_grad=True), m.tensor([np.inf, np.nan], requires_grad=True)],
            allow_unused=True,
            materialize_grads=True,
        )
    )[1:],
    "jvp calls the function once": lambda m: _jvp_calls(m),
    "Variable of an intermediate": lambda m: _variable_of_intermediate(m),
    "as_tensor to another dtype keeps the graph": lambda m: _as_tensor_on_the_graph(m),
    # nn
    "convolution and pooling results are contiguous": lambda m: _flattened_features(m),
    "a checkpoint without num_batches_tracked": lambda m: repr(
        m.nn.Sequential(m.nn.Linear(2, 2), m.nn.BatchNorm1d(2)).load_state_dict(
            {
                k: v
                for k, v in m.nn.Sequential(m.nn.Linear(2, 2), m.nn.BatchNorm1d(2)).state_dict().items()
                if not k.endswith("num_batches_tracked")
            }
        )
    ),  # fmt: skip
    "activations with inplace": lambda m: _activated_in_place(m),
    "activation reprs": lambda m: [
        repr(m.nn.LeakyReLU()),
        repr(m.nn.ELU(inplace=True)),
        repr(m.nn.LeakyReLU(0.2, True)),
    ],
    "gelu's tanh approximation": lambda m: _gelu_tanh(m),
    "lazy layers in a container load a checkpoint": lambda m: _lazy_in_a_container(m),
    "grad-mode decorators without parentheses": lambda m: _bare_decorators(m),
}


def _bare_decorators(m) -> list:
    x = m.ones(2, requires_grad=True)
    results = [m.no_grad(lambda t: t * 2)(x).requires_grad, m.inference_mode(lambda t: t * 2)(x).requires_grad]
    with m.no_grad():
        results.append(m.enable_grad(lambda t: t * 2)(x).requires_grad)
        with m.inference_mode(False):
            results.append([m.is_grad_enabled(), (x * 2).requires_grad])
    return results


def _jvp_calls(m) -> list:
    calls = []

    def f(x):
        calls.append(1)
        return x * x

    out, product = m.autograd.functional.jvp(f, m.tensor([1.0, 2.0]), m.tensor([1.0, 1.0]))
    return [len(calls), out, product]


def _variable_of_intermediate(m) -> list:
    t = m.tensor([1.0, 2.0])
    v = m.autograd.Variable(t, requires_grad=True)
    x = m.tensor([1.0, 2.0], requires_grad=True)
    w = m.autograd.Variable(x * 2, requires_grad=True)
    (w * 3).sum().backward()
    return [v is t, t.requires_grad, x.grad is None, w.grad, w.is_leaf]


def _as_tensor_on_the_graph(m) -> list:
    x = m.tensor([1.0, 2.0], requires_grad=True)
    z = m.as_tensor(x * 2, dtype=m.float64)
    (z.sum() + x.sum()).backward()
    return [z.requires_grad, z, x.grad]


def _flattened_features(m) -> list:
    x = m.arange(2 * 3 * 8 * 8, dtype=m.float32).reshape(2, 3, 8, 8) / 100
    layers = [m.nn.AvgPool2d(2), m.nn.AdaptiveAvgPool2d(2), m.nn.MaxPool2d(2)]
    layers += [m.nn.Conv2d(3, 4, 3, bias=False), m.nn.ConvTranspose2d(3, 4, 2, bias=False)]
    shapes = []
    for layer in layers:
        for parameter in layer.parameters():
            parameter.data.fill_(0.1)
        y = layer(x)
        n, c, h, w = y.shape
        shapes.append([y.is_contiguous(), list(y.view(n, -1).shape), list(y.view(n * c, h * w).shape)])
    return shapes


def _activated_in_place(m) -> list:
    results = []
    for activation in (m.nn.ReLU(inplace=True), m.nn.LeakyReLU(0.1, inplace=True), m.nn.ELU(inplace=True)):
        z = m.tensor([-1.0, 2.0, -3.0])
        activation(z)
        results.append(z.numpy().round(6).tolist())
    x = m.tensor([-1.0, 2.0], requires_grad=True)
    y = x * 1.0
    m.nn.functional.relu(y, inplace=True)
    (y * 3).sum().backward()
    return [results, x.grad]


def _gelu_tanh(m) -> list:
    x = m.tensor(np.linspace(-4.0, 4.0, 9), requires_grad=True)
    y = m.nn.GELU("tanh")(x)
    y.sum().backward()
    return [y.detach().numpy().round(12).tolist(), x.grad.numpy().round(12).tolist(), repr(m.nn.GELU("tanh"))]


def _lazy_in_a_container(m) -> list:
    trained = m.nn.Sequential(m.nn.Linear(5, 3), m.nn.ReLU(), m.nn.Linear(3, 2))
    lazy = m.nn.Sequential(m.nn.LazyLinear(3), m.nn.ReLU(), m.nn.LazyLinear(2))
    loaded = lazy.load_state_dict(trained.state_dict())
    return [repr(loaded), [list(p.shape) for p in lazy.parameters()]]


def _tied_parameter(m) -> list:
    encoder, decoder = m.nn.Linear(2, 2, bias=False), m.nn.Linear(2, 2, bias=False)
    decoder.weight = m.nn.Parameter(encoder.weight.data)  # tied weights
    with m.no_grad():
        encoder.weight.fill_(0.5)
    t = m.zeros(3)
    p = m.nn.Parameter(t)
    t.add_(1.0)
    return [decoder.weight, p, p.requires_grad, p.is_leaf]


def _weighted_losses(m) -> list:
    model = m.nn.Module()
    model.fc = m.nn.Linear(2, 3)
    model.cross_entropy = m.nn.CrossEntropyLoss(weight=m.tensor([1.0, 2.0, 3.0]))
    model.bce = m.nn.BCEWithLogitsLoss(pos_weight=m.tensor([2.0]))
    model.plain = m.nn.BCELoss()
    keys = list(model.state_dict())
    model.double()
    return [keys, model.cross_entropy.weight, model.bce.pos_weight, [name for name, _ in model.named_buffers()]]


def _softplus_values_and_gradients(m) -> list:
    results = []
    for beta, threshold in [(2.0, 20.0), (0.5, 1.0), (1.0, 3.0), (3.0, 0.0)]:
        x = m.tensor(np.linspace(-8.0, 8.0, 9), requires_grad=True)
        y = m.nn.Softplus(beta, threshold)(x)
        y.sum().backward()
        results.append([y.detach().numpy().round(12).tolist(), x.grad.numpy().round(12).tolist()])
    return results


def _shared_layer_state(m) -> list:
    layer = m.nn.Linear(2, 2)
    net = m.nn.Sequential(layer, m.nn.ReLU(), layer)  # the same layer applied twice
    keys = list(net.state_dict())
    loaded = net.load_state_dict({k: v for k, v in net.state_dict().items() if k.startswith("0")}, strict=False)
    return [keys, loaded.missing_keys, loaded.unexpected_keys]


def _frozen_batch_norm(m) -> list:
    class FrozenNorm(m.nn.Module):  # the usual way to keep BatchNorm's statistics frozen
        def __init__(self):
            super().__init__()
            self.norm = m.nn.BatchNorm1d(2)

        def train(self, mode=True):
            super().train(mode)
            self.norm.eval()
            return self

        def forward(self, x):
            return self.norm(x)

    net = m.nn.Sequential(m.nn.Linear(2, 2), FrozenNorm()).train()
    net[1](m.tensor([[1.0, 2.0], [3.0, 5.0]]))
    return [net[1].norm.training, net[1].norm.running_mean, net[0].training]


def _tuple_batch(m) -> list:
    dataset = m.utils.data.TensorDataset(m.arange(6.0).reshape(3, 2), m.arange(3))
    batch = next(iter(m.utils.data.DataLoader(dataset, batch_size=2)))
    return [type(batch).__name__, batch]


class _NumpySamples:
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return np.full(3, index, np.float32), np.int64(index), 0.5


@pytest.mark.parametrize("name", NEWCOMER_CALLS)
def test_calls_a_newcomer_found_differing_now_match_pytorch(name):
    ours, theirs = _both(lambda m: NEWCOMER_CALLS[name](m))
    assert ours == theirs


def _expanded_grad_accumulated(m):
    x = m.zeros(2, 3, requires_grad=True)
    x.grad = m.ones(1, 1).expand(2, 3)
    (x * 2).sum().backward()


NEWCOMER_ERRORS = {
    "dropout p above 1": lambda m: m.nn.functional.dropout(m.ones(3), p=1.5),  # (was all zeros)
    "dropout p below 0": lambda m: m.nn.functional.dropout(m.ones(3), p=-0.1),
    "negation of bools": lambda m: -m.tensor([True]),
    "bools minus bools": lambda m: m.tensor([True]) - m.tensor([False]),
    "ints minus bools": lambda m: m.tensor([2]) - m.tensor([True]),
    "accumulating into an expanded grad": _expanded_grad_accumulated,  # (numpy's ValueError leaked)
    "shuffling an IterableDataset": lambda m: m.utils.data.DataLoader(_Stream(m), batch_size=2, shuffle=True),
    "a sampler for an IterableDataset": lambda m: m.utils.data.DataLoader(_Stream(m), sampler=[0, 1]),
}


def _Stream(m):  # noqa: N802 - builds a class, as the test's reader would write one
    class Stream(m.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(5))

    return Stream()


@pytest.mark.parametrize("name", NEWCOMER_ERRORS)
def test_errors_a_newcomer_found_differing_now_match_pytorch(name):
    torch = _torch()
    with pytest.raises(Exception) as theirs:
        NEWCOMER_ERRORS[name](torch)
    with pytest.raises(Exception) as ours:
        NEWCOMER_ERRORS[name](tg)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


PROMOTION_CALLS = {  # result dtypes a promotion review found differing from PyTorch (values too)
    "atan2 with a 0-d float64": lambda m: [
        m.atan2(m.tensor([1.5, -2.0]), m.tensor(1.0, dtype=m.float64)),
        m.atan2(m.tensor(1.0, dtype=m.float64), m.tensor([1.5, -2.0])),
    ],
    "xlogy of a 0-d float64 and ints": lambda m: m.xlogy(m.tensor(2.0, dtype=m.float64), m.tensor([3, 4])),
    "xlogy by a number": lambda m: [m.xlogy(m.tensor([2.0, 0.0]), 3), m.xlogy(2.0, m.tensor([3.0]))],
    "clamp by numpy scalars": lambda m: [
        m.tensor([1.5, -2.0]).clamp(min=np.float64(0.5)),
        m.tensor([1, 5]).clamp(np.int64(2)),
        m.tensor([1, 5]).clamp(np.int64(2), np.int64(4)),
        m.nn.functional.normalize(m.tensor([3.0, 4.0]), dim=0, eps=np.float64(1e-12)),
        m.nn.functional.hardtanh(m.tensor([1.5, -2.0]), np.float64(-1), np.float64(1)),
    ],
    "hardtanh and relu6 of ints": lambda m: [
        m.nn.functional.hardtanh(m.tensor([5, -7, 0], dtype=m.int32)),
        m.nn.functional.relu6(m.tensor([5, -7, 0])),
    ],
    "cumprod of bools and int32": lambda m: [
        m.tensor([True, False, True]).cumprod(0),
        m.tensor([70000, 70000], dtype=m.int32).cumprod(0),
    ],
    "add and sub with alpha of bools": lambda m: [
        m.add(m.tensor([True, False]), m.tensor([True, False]), alpha=2),
        m.add(m.tensor([5, -7], dtype=m.int32), m.tensor([True, False]), alpha=2),
        m.tensor([5, 3]).sub(m.tensor([1, 2], dtype=m.int32), alpha=3),
    ],
}


@pytest.mark.parametrize("name", PROMOTION_CALLS)
def test_result_dtypes_a_review_found_differing_now_match_pytorch(name):
    ours, theirs = _both(lambda m: PROMOTION_CALLS[name](m))
    assert ours == theirs


REVIEW_CALLS = {  # what the nn and func reviews found differing from PyTorch, now as PyTorch
    "avg_pool2d of integers": lambda m: [
        m.nn.functional.avg_pool2d(m.arange(16).reshape(1, 1, 4, 4), 2),
        m.nn.functional.avg_pool2d(-m.arange(16).reshape(1, 1, 4, 4), 3, stride=1, padding=1),
    ],
    "logcumsumexp far below its maximum": lambda m: m.tensor(
        [
            [-609.4237060546875, -635.9905395507812, -493.91082763671875, -694.778076171875],
            [-800.0, -700.0, -900.0, -650.0],
        ]
    ).logcumsumexp(1),
    "ParameterList printed": lambda m: [
        repr(m.nn.ParameterList([m.nn.Parameter(m.ones(2)), m.nn.Parameter(m.ones(2, 3))])).replace(m.__name__, "")
    ],
    "multi-line extra_repr": lambda m: [repr(_multi_line_block(m))],
}


def _multi_line_block(m):
    class Block(m.nn.Module):
        def __init__(self, children: bool):
            super().__init__()
            if children:
                self.fc = m.nn.Linear(2, 2)

        def extra_repr(self):
            return "scale=1\nshift=2"

    return m.nn.Sequential(Block(True), Block(False))


@pytest.mark.parametrize("name", REVIEW_CALLS)
def test_calls_the_reviews_found_differing_now_match_pytorch(name):
    ours, theirs = _both(lambda m: REVIEW_CALLS[name](m))
    assert ours == theirs


def test_log_softmax_of_float32_logits_with_a_large_offset_is_precise():
    logits = np.array([[10000.0, 10001.0, 10002.5, 9999.25]], np.float32)
    exact = logits.astype(np.float64) - logits.max() - np.log(np.exp(logits.astype(np.float64) - logits.max()).sum())
    for value in (
        tg.nn.functional.log_softmax(tg.tensor(logits), -1).numpy(),
        tg.record(lambda x: tg.nn.functional.log_softmax(x, -1), logits)(logits).numpy(),
    ):
        np.testing.assert_allclose(value, exact, rtol=2e-7)  # (was off by 2.6e-4)


def test_adaptive_average_pooling_of_integers_raises_as_pytorch():
    with pytest.raises(NotImplementedError, match="\"adaptive_avg_pool2d\" not implemented for 'Long'"):
        tg.nn.functional.adaptive_avg_pool2d(tg.arange(16).reshape(1, 1, 4, 4), 2)


ARRAY_FUNCTION_CALLS = {  # the reviews' list of missing functions real programs use
    "finfo and iinfo": lambda m: [
        [m.finfo(m.float32).eps, m.finfo(m.float64).max, m.finfo().tiny, m.finfo(m.float32).bits],
        [m.iinfo(m.int64).max, m.iinfo(m.int32).min, m.iinfo(m.uint8).bits],
        repr(m.finfo(m.float32)),
        repr(m.iinfo(m.int64)),
    ],
    "result_type and can_cast": lambda m: [
        str(m.result_type(m.ones(2, dtype=m.int32), 1.0)).split(".")[-1],
        str(m.result_type(m.ones(2), m.tensor(1.0, dtype=m.float64))).split(".")[-1],
        m.can_cast(m.float64, m.int32),
        m.can_cast(m.int32, m.float32),
    ],
    "is_complex, is_signed": lambda m: [
        m.ones(2).is_complex(),
        m.float32.is_complex,
        m.uint8.is_signed,
        m.int16.is_signed,
        m.ones(2, dtype=m.uint8).is_signed(),
    ],
    "index sets": lambda m: [m.tril_indices(3, 3), m.triu_indices(3, 4, 1), m.tril_indices(4, 2, -1)],
    "binning": lambda m: [
        m.bucketize(m.tensor([1.0, 5.0, 9.0]), m.tensor([1.0, 3.0, 5.0, 7.0])),
        m.bucketize(m.tensor([1.0, 5.0]), m.tensor([1.0, 3.0, 5.0]), right=True),
        m.histc(m.tensor([1.0, 2.0, 1.0, 7.0]), bins=4, min=0, max=3),
        m.histc(m.tensor([1.0, 2.0, 1.0]), bins=3),
        m.bincount(m.tensor([0, 1, 1, 3])),
        m.bincount(m.tensor([0, 1, 1]), weights=m.tensor([0.5, 1.0, 2.0]), minlength=4),
    ],
    "elementwise without gradient": lambda m: [
        m.logspace(0, 2, 3),
        m.logspace(-1, 1, 5, base=2.0, dtype=m.float64),
        m.heaviside(m.tensor([-1.0, 0.0, 2.0]), m.tensor([0.5])),
        m.signbit(m.tensor([-0.0, 0.0, -1.0])),
        m.isposinf(m.tensor([float("inf"), -float("inf"), 1.0])),
        m.isneginf(m.tensor([float("inf"), -float("inf"), 1.0])),
        m.sgn(m.tensor([-2.0, 0.0, 3.0])),
        m.copysign(m.tensor([1.0, -2.0]), -0.0),
        m.tensor([3]).is_nonzero(),
    ],
    "shapes": lambda m: [
        m.diff(m.tensor([True, False, False])),
        m.diff(m.arange(5.0), n=2, prepend=m.tensor([0.0]), append=m.tensor([9.0])),
        m.arange(24.0).reshape(2, 12).unflatten(1, (3, -1)).shape,
        m.arange(10.0).reshape(2, 5).unfold(1, 2, 3),
        [
            m.cummax(m.tensor([1.0, float("nan"), 2.0, 3.0]), 0).values.isnan(),
            m.cummax(m.tensor([1.0, float("nan"), 2.0]), 0).indices,
        ],
        m.cummin(m.tensor([[3, 1, 1, 2]]), 1),
        m.trapz(m.tensor([1.0, 2.0, 4.0]), dx=0.5),
        m.cov(m.tensor([1.0, 2.0, 4.0])),
        m.block_diag(m.tensor(2.0), m.tensor([1, 2]), m.ones(2, 1, dtype=m.int32)),
    ],
}


@pytest.mark.parametrize("name", ARRAY_FUNCTION_CALLS)
def test_array_functions_match_pytorch(name):
    def plain(value):  # (named tuples and dtypes as their values and names)
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value.replace("torch", "").replace("tapegrad", "") if isinstance(value, str) else value

    ours, theirs = _both(lambda m: plain(ARRAY_FUNCTION_CALLS[name](m)))
    assert ours == theirs


def _modules_printed(m):
    nn = m.nn
    modules = [
        nn.Threshold(0.1, 20), nn.Threshold(0.1, 20, True), nn.Hardshrink(), nn.Softshrink(0.3), nn.Tanhshrink(),
        nn.GLU(), nn.PReLU(3), nn.Upsample(scale_factor=2, mode="bilinear"), nn.Upsample(size=(3, 4)),
        nn.MaxPool1d(3), nn.AvgPool1d(2), nn.AdaptiveAvgPool1d(3), nn.AdaptiveMaxPool1d(2),
        nn.AdaptiveMaxPool2d((2, 3)), nn.ZeroPad2d(1), nn.ConstantPad1d((1, 2), 3.5), nn.ReflectionPad2d(2),
        nn.ReplicationPad1d((1, 0)), nn.PixelShuffle(2), nn.PixelUnshuffle(3), nn.Unflatten(1, (2, 3)),
        nn.Bilinear(2, 3, 4), nn.RReLU(), nn.Softmax2d(), nn.PoissonNLLLoss(), nn.GaussianNLLLoss(),
        nn.MultiMarginLoss(), nn.MultiLabelSoftMarginLoss(),
    ]  # fmt: skip
    parameters = nn.ParameterDict({"b": nn.Parameter(m.ones(2)), "a": nn.Parameter(m.ones(1, 2))})
    parameters["c"] = m.zeros(3)
    return [repr(module) for module in modules] + [
        repr(parameters).replace(m.__name__, ""),
        list(parameters.keys()),
        type(parameters["c"]).__name__,
        [name for name, _ in m.nn.Sequential(nn.PReLU(), nn.Bilinear(2, 2, 1)).named_parameters()],
    ]


def _modules_applied(m):
    m.manual_seed(0)
    x = m.arange(48.0).reshape(2, 3, 8) / 10.0 - 2.0
    image = m.arange(32.0).reshape(1, 2, 4, 4) / 10.0
    prelu = m.nn.PReLU(3)
    return [
        m.nn.MaxPool1d(3, stride=2)(x), m.nn.AvgPool1d(3, 2, 1, count_include_pad=False)(x),
        m.nn.AdaptiveAvgPool1d(5)(x), m.nn.AdaptiveMaxPool1d(3)(x), m.nn.ReflectionPad1d((2, 1))(x),
        m.nn.ReplicationPad2d((1, 0, 0, 2))(image), m.nn.ZeroPad2d((1, 1, 0, 1))(image), m.nn.Softmax2d()(image),
        m.nn.Upsample(scale_factor=2)(image), m.nn.Upsample(size=(3, 5), mode="bilinear")(image),
        m.nn.PixelUnshuffle(2)(image), prelu(x), m.nn.Threshold(0.1, 20)(x), m.nn.GLU(1)(image),
        m.nn.RReLU().eval()(x),
    ]  # fmt: skip


@pytest.mark.parametrize("program", [_modules_printed, _modules_applied], ids=["printed", "applied"])
def test_more_modules_match_pytorch(program):
    ours, theirs = _both(program)
    if program is _modules_printed:
        assert ours == theirs
        return
    for (our_dtype, our_values), (their_dtype, their_values) in zip(ours, theirs):
        assert our_dtype == their_dtype
        np.testing.assert_allclose(our_values, their_values, atol=1e-6)


def _checkpointed(m):
    import importlib

    checkpoint = importlib.import_module(f"{m.__name__}.utils.checkpoint")
    m.manual_seed(0)
    x = m.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    w = m.tensor([[1.5, -0.5], [0.25, 2.0]], requires_grad=True)
    y = checkpoint.checkpoint(lambda a, b: (a @ b).tanh() * 2, x, w, use_reentrant=False)
    z = checkpoint.checkpoint(lambda a: a.sin(), y, use_reentrant=True)
    net = m.nn.Sequential(m.nn.Tanh(), m.nn.Sigmoid(), m.nn.Softplus())
    out = checkpoint.checkpoint_sequential(net, 2, z, use_reentrant=False)
    out.sum().backward()
    return [out, x.grad, w.grad]


def test_checkpointed_segments_give_pytorchs_values_and_gradients():
    ours, theirs = _both(_checkpointed)
    for (our_dtype, our_values), (their_dtype, their_values) in zip(ours, theirs):
        assert our_dtype == their_dtype
        np.testing.assert_allclose(our_values, their_values, rtol=1e-6)
    with pytest.warns(UserWarning, match="the use_reentrant parameter should be passed explicitly"):
        tg.utils.checkpoint.checkpoint(lambda a: a * 2, tg.ones(2))


SCALAR_OPERAND_CALLS = {  # numbers and numpy scalars where PyTorch takes them (a review's finds)
    "number first in add, sub, mul": lambda m: [
        m.add(2, m.tensor([1.5, 2.0])),
        m.mul(0.5, m.tensor([1.5, 2.0])),
        m.sub(1, m.tensor([1.5, 2.0]), alpha=2),
        m.subtract(m.tensor([3, 4]), 1),
    ],
    "sign of bools": lambda m: m.sign(m.tensor([True, False])),
    "True to integer powers": lambda m: True ** m.tensor([5, -7]),
    "lerp by a 0-d weight of another dtype": lambda m: m.lerp(
        m.tensor([1.5, -2.0]), m.ones(2), m.tensor(0.25, dtype=m.float64)
    ),
    "numpy bools in where and masked_fill": lambda m: [
        m.where(m.tensor([True, False]), m.tensor([1.0, 2.0]), np.bool_(True)),
        m.tensor([1.0, 2.0]).masked_fill(m.tensor([True, False]), np.bool_(True)),
        m.where(m.tensor([True, False]), np.float64(0.5), m.tensor([1.0, 2.0])),
    ],
}


@pytest.mark.parametrize("name", SCALAR_OPERAND_CALLS)
def test_scalar_operands_as_pytorch_takes_them(name):
    ours, theirs = _both(lambda m: SCALAR_OPERAND_CALLS[name](m))
    assert ours == theirs


@pytest.mark.parametrize(
    "program",
    [
        lambda m: 0.75 - m.tensor([True, False]),
        lambda m: m.tensor([3, 4]) - True,
        lambda m: m.tensor([True]) - 1,
        lambda m: m.tensor([True]) - True,
        lambda m: m.tensor([1.5]).sub_(True),
    ],
    ids=["number - bools", "ints - True", "bools - 1", "bools - True", "sub_(True)"],
)
def test_subtraction_with_bools_raises_pytorchs_error(program):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as theirs:
        program(torch)
    with pytest.raises(RuntimeError) as ours:
        program(tg)
    assert str(ours.value) == str(theirs.value)


def _slice_of_an_expand_changed(m):
    x = m.tensor([1.0, 2.0, 3.0])
    x.unsqueeze(0).expand(2, 3)[:1].mul_(3)
    w = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = w * 1
    h.unsqueeze(0).expand(2, 3)[0].add_(10)
    h.sum().backward()
    return [x, h, w.grad]


MORE_REVIEW_CALLS = {
    "legacy loss keywords": lambda m: [
        getattr(m.nn, name)(size_average=False, reduce=True).reduction
        for name in ("L1Loss", "MSELoss", "BCELoss", "BCEWithLogitsLoss")
    ],
    "Linear without inputs": lambda m: m.nn.Linear(0, 3)(m.ones(2, 0)).shape,
    "circular padding that crops": lambda m: [
        m.nn.functional.pad(m.arange(10.0).reshape(1, 2, 5), (-1, 1), mode="circular"),
        m.nn.functional.pad(m.arange(10.0).reshape(1, 2, 5), (1, -2), mode="circular"),
    ],
    "a slice of an expand changed in place": _slice_of_an_expand_changed,
}


@pytest.mark.parametrize("name", MORE_REVIEW_CALLS)
def test_more_calls_the_reviews_found_now_match_pytorch(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the legacy keywords' and zero-element warnings)
        ours, theirs = _both(lambda m: MORE_REVIEW_CALLS[name](m))
    assert ours == theirs


def _array_review_cases(m):
    """What a review of _array_functions found differing from PyTorch."""
    results = []
    y = m.tensor([[1.0, 2.0], [3.0, 5.0], [4.0, 9.0]])
    results.append(m.trapezoid(y, m.tensor([0.0, 1.0, 3.0]), dim=0))
    a, b = m.tensor([2.0, 1.0], requires_grad=True), m.tensor([2.0, 3.0], requires_grad=True)
    (m.fmax(a, b) * 2 + m.fmin(a, b)).sum().backward()
    results += [a.grad, b.grad]
    x1 = m.tensor([[0.0, 0.0]], requires_grad=True)
    m.cdist(x1, m.tensor([[1.0, -1.0]]), p=float("inf")).sum().backward()
    results.append(x1.grad)
    x = m.zeros(3)
    d = m.diff(x, n=0, prepend=m.ones(2))
    d.add_(1)
    results += [x, d.shape]
    results += [m.cov(m.tensor([[1.0, 2.0, 4.0]])).shape, m.corrcoef(m.tensor([[1.0, 2.0, 4.0]])).shape]
    results += [m.tensor(2.0).unfold(0, 1, 1).shape, m.logspace(0.5, 1.5, 3, dtype=m.int64)]
    results.append(m.logspace(0, 1, 3, requires_grad=True).requires_grad)
    return results


def test_array_functions_a_review_found_differing_now_match_pytorch():
    ours, theirs = _both(_array_review_cases)
    assert ours == theirs


def _nn_review_cases(m):
    """What a review of today's nn additions found differing from PyTorch."""
    F = m.nn.functional  # noqa: N806
    results = []
    line = m.arange(5.0).reshape(1, 1, 5)
    image = m.arange(16.0).reshape(1, 1, 4, 4)
    results += [
        F.interpolate(line, scale_factor=1.1, mode="linear"),  # (the length kept: a copy)
        m.nn.Upsample(scale_factor=1.2, mode="bilinear")(image),
        F.interpolate(m.arange(9.0).reshape(1, 1, 3, 3), scale_factor=2.2),
        F.interpolate(m.arange(6.0).reshape(1, 1, 6), size=18, mode="nearest-exact"),
        repr(m.nn.Upsample(scale_factor=(2, 3), mode="bilinear")),
    ]
    nan = m.tensor([float("nan"), -2.0, 0.3, 3.0])
    results += [F.threshold(nan, 0.5, -1.0), F.hardshrink(nan), F.softshrink(nan, 0.5)]
    results += [F.threshold(m.tensor([-2, 0, 3]), 0, -1)]
    weight = m.tensor([0.25], requires_grad=True)
    F.prelu(m.tensor([float("inf"), -1.0]), weight).sum().backward()
    results += [weight.grad, F.prelu(m.tensor(2.0), m.tensor([0.1])).shape]
    logits = m.tensor([[1.0, 2.0, 3.0], [2.0, 1.0, 2.0]], requires_grad=True)
    F.multi_margin_loss(logits, m.tensor([2, 0])).backward()  # (hinges exactly at the kink)
    results += [logits.grad, F.multi_margin_loss(m.tensor([1.0, 2.0]), m.tensor([0]), reduction="none").shape]
    results += [
        m.nn.PoissonNLLLoss(reduce=False)(m.ones(2, 3), m.ones(2, 3)).shape,
        m.nn.MultiMarginLoss(size_average=False)(logits.detach(), m.tensor([2, 0])),
        list(m.nn.MultiMarginLoss(weight=m.ones(3)).state_dict()),
        F.multilabel_soft_margin_loss(m.zeros(2, 2), m.ones(2, 2, dtype=m.float64)).dtype == m.float64,
    ]
    checkpoint = __import__(f"{m.__name__}.utils.checkpoint", fromlist=["checkpoint"])
    m.manual_seed(0)
    layers = m.nn.Sequential(m.nn.Linear(3, 3), m.nn.Linear(3, 3), m.nn.Linear(3, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = checkpoint.checkpoint_sequential(layers, 3, m.ones(2, 3), use_reentrant=True)
    out.sum().backward()
    results.append([layer.weight.grad is None for layer in layers])
    parameters = m.nn.ParameterDict({"a": m.nn.Parameter(m.ones(1)), "n": None, "k": 3})
    del parameters["a"]
    results += [list(parameters.keys()), parameters["k"], "a" in parameters]
    return results


def test_nn_additions_a_review_found_differing_now_match_pytorch():
    ours, theirs = _both(_nn_review_cases)
    for our, their in zip(ours, theirs):
        if isinstance(their, str):
            assert our.replace("tapegrad", "torch") == their
        elif isinstance(their, tuple) and len(their) == 2 and isinstance(their[0], str):
            assert our[0] == their[0]
            np.testing.assert_allclose(our[1], their[1], rtol=1e-6)
        else:
            assert our == their


def _lazy_batch_norms(m):
    out = []
    for make, shape in (
        (lambda: m.nn.LazyBatchNorm2d(), (2, 3, 4, 4)),
        (lambda: m.nn.LazyBatchNorm1d(affine=False), (4, 5)),
        (lambda: m.nn.LazyBatchNorm1d(track_running_stats=False), (4, 5, 2)),
    ):
        norm = make()
        out += [repr(norm), sorted(norm.state_dict())]
        x = m.tensor(np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 7)
        y = norm(x)
        out += [repr(norm), type(norm).__name__, len(list(norm.parameters())), y.detach().numpy()]
        if norm.running_mean is not None:
            out.append(norm.running_mean.numpy())
    trained = m.nn.BatchNorm2d(3)
    trained.running_mean.fill_(2.0)
    lazy = m.nn.LazyBatchNorm2d()
    lazy.load_state_dict(trained.state_dict())  # materialized by the checkpoint, not yet called
    lazy.eval()
    out += [lazy.running_mean.numpy(), lazy(m.ones(1, 3, 2, 2)).detach().numpy(), repr(lazy)]
    return out


def test_lazy_batch_norms_take_their_features_from_the_first_input():
    ours = _lazy_batch_norms(tg)
    assert ours[2].startswith("BatchNorm2d(3,") and ours[3] == "BatchNorm2d"
    torch = pytest.importorskip("torch")
    for a, b in zip(ours, _lazy_batch_norms(torch)):
        if isinstance(a, np.ndarray):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        else:
            assert a == b


def _census_functions(m):
    out = []
    x = m.tensor([1.0, 2.0, 2.0, 3.0, 7.0])
    out += list(m.histogram(x, bins=3)) + list(m.histogram(m.tensor([2.0, 2.0]), bins=2))
    out += list(m.histogram(x, bins=m.tensor([0.0, 2.0, 5.0, 8.0]), weight=m.ones(5) * 2, density=True))
    out += list(m.histogram(x, bins=2, range=(0.0, 4.0)))
    out.append(m.nextafter(m.tensor([1.0, 0.0]), m.tensor([2.0, -1.0])))
    a = m.arange(12.0, requires_grad=True)
    windows = m.as_strided(a * 1.0, (4, 3), (2, 1))  # overlapping windows: gradients add up
    (windows * m.arange(12.0).reshape(4, 3)).sum().backward()
    out += [windows, a.grad, (a.detach()[2:]).as_strided((2, 2), (1, 1)), a.detach().as_strided((2,), (3,), 1)]
    out += [a.new(2, 3).shape, a.new([1, 2]), m.ones(2, dtype=m.int32).new([1.5])]
    resized = m.arange(6.0)
    resized.resize_as_(m.ones(2, 2))
    out.append(resized)
    return [v.detach().numpy() if hasattr(v, "detach") else v for v in out]


def test_census_functions_follow_pytorch():
    ours = _census_functions(tg)
    expected = np.zeros(12)  # window i, position j reads a[2i + j] with weight 3i + j
    for i in range(4):
        for j in range(3):
            expected[2 * i + j] += 3 * i + j
    np.testing.assert_array_equal(ours[10], expected)
    with pytest.raises(RuntimeError, match="out of bounds for storage"):
        tg.arange(4.0).as_strided((3,), (2,))
    with pytest.raises(NotImplementedError, match="would not reach the input"):
        tg.arange(4.0).as_strided((2,), (1,)).add_(1)  # a copy here: a change would not reach the tensor
    torch = pytest.importorskip("torch")
    for a, b in zip(ours, _census_functions(torch)):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
        else:
            assert tuple(a) == tuple(b)


def _small_differences(m):
    """Calls a review of real programs found differing; each one's result or error."""
    F = m.nn.functional  # noqa: N806
    data = importlib.import_module(f"{m.__name__}.utils.data")
    calls = [
        lambda: type(data.default_collate([("a", 1), ("b", 2)])[0]).__name__,
        lambda: F.dropout(m.ones(2), 0.0, inplace=True).tolist(),
        lambda: str(m.ones(1).type(m.DoubleTensor).dtype).split(".")[-1],
        lambda: F.binary_cross_entropy_with_logits(m.zeros(2), m.tensor([0, 1])).item(),
        lambda: F.binary_cross_entropy(m.tensor([0.5, 0.2]), m.tensor([255.0, 0.0])).item(),
        lambda: F.soft_margin_loss(m.zeros(3, 1), m.ones(3)).item(),
        lambda: m.ones(3, requires_grad=True)[:2].detach_(),
    ]
    weight = m.nn.Parameter(m.ones(1, 1))
    layer = m.nn.Linear(1, 1)
    layer.load_state_dict({"weight": weight, "bias": m.zeros(1)}, assign=True)
    return [layer.weight is weight, *outcomes(calls)]


def test_small_differences_follow_pytorch():
    ours = _small_differences(tg)
    assert ours[0] is True and ours[1] == "tuple"
    torch = pytest.importorskip("torch")
    assert ours == _small_differences(torch)


def test_lazy_batch_norm_statistics_take_the_dtype_asked():
    norm = tg.nn.LazyBatchNorm1d(dtype=tg.float64)  # (its running statistics were float32)
    assert norm.running_mean.dtype == tg.float64
    norm(tg.ones(4, 3, dtype=tg.float64))
    assert norm.running_mean.dtype == norm.running_var.dtype == tg.float64


def test_histogram_out_resize_as_and_unfold_of_a_scalar():
    hist, edges = tg.zeros(0), tg.zeros(0)
    tg.histogram(tg.tensor([1.0, 2.0, 3.0]), bins=2, out=(hist, edges))
    assert hist.tolist() == [1.0, 2.0] and edges.tolist() == [1.0, 2.0, 3.0]  # (out was ignored)
    t = tg.arange(6.0).reshape(2, 3).t()
    assert t.resize_as_(tg.zeros(6)).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # memory's order, as PyTorch
    x = tg.tensor(5.0)
    x.unfold(0, 1, 1).fill_(7.0)  # a view: the change reaches x
    assert x.item() == 7.0


_TOP_LEVEL = {  # torch.<name> as torch.nn.functional.<name>: the same arguments, positional
    "avg_pool1d": lambda m, x: m.avg_pool1d(x, 3, 2, 1, True, False),
    "max_pool1d": lambda m, x: m.max_pool1d(x, 2, 1, 0, 2),
    "conv_transpose1d": lambda m, x: m.conv_transpose1d(x, m.ones(3, 2, 3, dtype=m.float64) * 0.5, None, 2, 1),
    "pixel_shuffle": lambda m, x: m.pixel_shuffle(x.reshape(1, 4, 2, 3), 2),
    "pixel_unshuffle": lambda m, x: m.pixel_unshuffle(x.reshape(1, 2, 2, 6), 2),
    "prelu": lambda m, x: m.prelu(x, m.tensor([0.25, -0.5, 2.0], dtype=m.float64)),
    "selu": lambda m, x: m.selu(x),
    "celu": lambda m, x: m.celu(x, 0.5),
    "hardshrink": lambda m, x: m.hardshrink(x, 0.3),
    "pairwise_distance": lambda m, x: m.pairwise_distance(x, x.flip(-1), 1.0, 1e-6, True),
    "cosine_similarity": lambda m, x: m.cosine_similarity(x, x.flip(-1), 1),
    "bilinear": lambda m, x: m.bilinear(x[0], x[0].flip(-1), m.ones(2, 8, 8, dtype=m.float64) * 0.1),
}


@pytest.mark.parametrize("name", list(_TOP_LEVEL))
def test_top_level_functional_aliases_follow_pytorch(name):
    def program(m):
        x = m.tensor(np.sin(np.arange(24.0)).reshape(1, 3, 8)[:, :, :8], requires_grad=True)
        out = _TOP_LEVEL[name](m, x)
        out.square().sum().backward()
        return out, x.grad

    ours, theirs = _both(program)
    np.testing.assert_allclose(np.array(ours[0][1]), np.array(theirs[0][1]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.array(ours[1][1]), np.array(theirs[1][1]), rtol=1e-12, atol=1e-14)


def test_serialization_safe_globals_are_accepted_and_change_nothing(tmp_path):
    path = tmp_path / "model.pt"
    tg.save({"w": tg.ones(2)}, path)

    class Config:
        pass

    with tg.serialization.safe_globals([Config]):
        assert Config in tg.serialization.get_safe_globals()
        loaded = tg.load(path, weights_only=True)
    assert Config not in tg.serialization.get_safe_globals()
    np.testing.assert_array_equal(loaded["w"].numpy(), [1.0, 1.0])
    tg.serialization.add_safe_globals([Config])
    assert tg.serialization.get_safe_globals() == [Config]
    tg.serialization.clear_safe_globals()
    assert tg.serialization.get_safe_globals() == []
