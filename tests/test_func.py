"""tapegrad.func against torch.func (when torch is installed) and against eager autograd and
central differences in float64 (always)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from tapegrad.func import functional_call, grad, grad_and_value, hessian, jacfwd, jacrev, vjp, vmap, vmap_stats

RNG = np.random.default_rng(0)


def _t(array):
    return tg.tensor(np.asarray(array, np.float64))


def _central(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences, f: array -> float."""
    out = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        out[index] = (f(up) - f(down)) / (2 * eps)
    return out


def _close(a, b, tol=1e-10):
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def _tree_close(a, b, tol=1e-10):
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            _tree_close(a[key], b[key], tol)
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _tree_close(x, y, tol)
    else:
        _close(a, b, tol)


# -- without torch: eager autograd and central differences ------------------------------------


def _f(x, w):
    return ((x * w).tanh() ** 2).sum() + (x**3).sum()


def test_grad_argnums_against_central_differences():
    x, w = RNG.normal(size=3), RNG.normal(size=3)
    numeric_x = _central(lambda v: float(_f(_t(v), _t(w))), x)
    numeric_w = _central(lambda v: float(_f(_t(x), _t(v))), w)
    _close(grad(_f)(_t(x), _t(w)), numeric_x, 1e-6)
    gx, gw = grad(_f, argnums=(0, 1))(_t(x), _t(w))
    _close(gx, numeric_x, 1e-6)
    _close(gw, numeric_w, 1e-6)
    _close(grad(_f, argnums=-1)(_t(x), _t(w)), numeric_w, 1e-6)


def test_grad_results_are_detached_and_inputs_need_not_require_grad():
    x = _t([1.0, 2.0])
    g = grad(lambda v: (v * v).sum())(x)
    assert not g.requires_grad and not x.requires_grad and x.grad is None
    y = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    with tg.no_grad():  # no outer backward to stay connected for
        assert not grad(lambda v: (v * v).sum())(y).requires_grad
    assert y.grad is None


def test_grad_stays_connected_to_inputs_that_require_grad():
    # torch.func's transforms are transparent to autograd: g = 2y is differentiable in y.
    y = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    g = grad(lambda v: (v * v).sum())(y)
    assert g.requires_grad and y.grad is None
    (g.sum() + y.sum()).backward()
    _close(y.grad, [3.0, 3.0])  # 2 from g, 1 from the sum: the outer term alone was 1 before


def test_grad_has_aux_and_grad_and_value():
    x = _t([1.0, 2.0])
    g, aux = grad(lambda v: ((v * v).sum(), {"double": v * 2}), has_aux=True)(x)
    _close(g, [2.0, 4.0])
    _close(aux["double"], [2.0, 4.0])
    g, value = grad_and_value(lambda v: (v * v).sum())(x)
    _close(value, np.array(5.0))
    g, (value, aux) = grad_and_value(lambda v: ((v * v).sum(), v.sum()), has_aux=True)(x)
    _close(aux, np.array(3.0))


def test_grad_of_pytrees():
    params = {"w": _t([1.0, 2.0]), "b": (_t(3.0), [_t([4.0])])}
    g = grad(lambda p: (p["w"] ** 2).sum() * p["b"][0] + p["b"][1][0].sum())(params)
    _close(g["w"], [6.0, 12.0])
    _close(g["b"][0], np.array(5.0))
    _close(g["b"][1][0], [1.0])
    assert isinstance(g["b"], tuple) and isinstance(g["b"][1], list)


def test_grad_of_grad_and_third_derivative():
    x = _t(1.5)
    _close(grad(grad(lambda v: v**3))(x), np.array(6 * 1.5))
    _close(grad(grad(grad(lambda v: v**3)))(x), np.array(6.0))
    # The inner transform's input is the outer one's: its gradient stays differentiable.
    _close(grad(lambda v: grad(lambda u: (u * v).sum())(v).sum())(_t([1.0, 2.0])), [1.0, 1.0])


def test_jacrev_jacfwd_hessian_values_and_shapes():
    x = RNG.normal(size=(2, 3))
    jac = jacrev(lambda v: v.sin() * v.sum())(_t(x))
    assert jac.shape == (2, 3, 2, 3)
    numeric = np.stack([_central(lambda v, k=k: float((np.sin(v) * v.sum()).reshape(-1)[k]), x) for k in range(6)])
    _close(jac, numeric.reshape(2, 3, 2, 3), 1e-6)
    _close(jacfwd(lambda v: v.sin() * v.sum())(_t(x)), jac)
    h = hessian(lambda v: (v**3).sum() + v.prod())(_t([1.0, 2.0, 3.0]))
    _close(h, [[6.0, 3.0, 2.0], [3.0, 12.0, 1.0], [2.0, 1.0, 18.0]])
    _close(jacrev(jacrev(lambda v: (v**3).sum() + v.prod()))(_t([1.0, 2.0, 3.0])), h)
    ja, jb = jacrev(lambda a, b: a * b, argnums=(0, 1))(_t([1.0, 2.0]), _t([3.0, 4.0]))
    _close(ja, np.diag([3.0, 4.0]))
    _close(jb, np.diag([1.0, 2.0]))


def test_vjp_with_pytrees():
    out, vjp_fn = vjp(lambda a, b: {"s": a * b, "t": a.sum()}, _t([1.0, 2.0]), _t([3.0, 4.0]))
    ga, gb = vjp_fn({"s": _t([1.0, 1.0]), "t": _t(2.0)})
    _close(ga, [5.0, 6.0])
    _close(gb, [1.0, 2.0])
    _close(out["s"], [3.0, 8.0])
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        vjp_fn({"s": _t([1.0]), "t": _t(2.0)})


def _eager_per_sample(model, X, Y):
    grads = {name: [] for name, _ in model.named_parameters()}
    for i in range(len(X)):
        model.zero_grad()
        F.cross_entropy(model(X[i : i + 1]), Y[i : i + 1]).backward()
        for name, p in model.named_parameters():
            grads[name].append(p.grad.numpy().copy())
    return {name: np.stack(values) for name, values in grads.items()}


@pytest.mark.parametrize(("dtype", "tol"), [(tg.float32, 1e-6), (tg.float64, 1e-12)])
def test_the_per_sample_gradient_recipe(dtype, tol):
    tg.manual_seed(0)
    model = tg.nn.Sequential(tg.nn.Linear(64, 128), tg.nn.Tanh(), tg.nn.Linear(128, 10)).to(dtype)
    params = {k: v.detach() for k, v in model.named_parameters()}
    X = tg.randn(24, 64).to(dtype)
    Y = tg.randint(0, 10, (24,))

    def loss(params, x, y):
        return F.cross_entropy(functional_call(model, params, (x[None],)), y[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, X, Y)
    assert vmap_stats()["path"] == "grad-replay"
    assert vmap_stats()["recordings"] == 1  # the labels are inputs of the tape, not one tape each
    expected = _eager_per_sample(model, X, Y)
    for name, values in expected.items():
        assert per_sample[name].dtype == dtype and per_sample[name].shape == (24, *params[name].shape)
        np.testing.assert_allclose(per_sample[name].numpy(), values, rtol=tol, atol=tol)


def test_vmap_in_dims_and_out_dims():
    x, y = RNG.normal(size=(4, 3)), RNG.normal(size=(3, 4))
    out = vmap(lambda a, b: a * b, in_dims=(0, 1))(_t(x), _t(y))
    _close(out, x * y.T)
    out = vmap(lambda a, b: a * b, in_dims=(0, None))(_t(x), _t(y[:, 0]))
    _close(out, x * y[:, 0])
    out = vmap(lambda d: d["a"] + d["b"], in_dims=({"a": 0, "b": 1},))({"a": _t(x), "b": _t(y)})
    _close(out, x + y.T)
    s, p = vmap(lambda a: (a.sum(), a * 2), out_dims=(0, 1))(_t(x))
    _close(s, x.sum(1))
    _close(p, (x * 2).T)
    _close(vmap(lambda a: a * 2, in_dims=-1, out_dims=-1)(_t(y)), y * 2)
    _close(vmap(vmap(lambda a: a * 2))(_t(x)), x * 2)
    _close(vmap(vmap(lambda a, b: a * b, in_dims=(0, None)), in_dims=(None, 1))(_t(x), _t(y)), x[None] * y.T[:, None])


def test_vmap_of_grad_with_argnums_tuple_has_aux_and_value():
    x, w = RNG.normal(size=(5, 3)), RNG.normal(size=3)
    gx, gw = vmap(grad(_f, argnums=(0, 1)), in_dims=(0, None))(_t(x), _t(w))
    for i in range(5):
        ex, ew = grad(_f, argnums=(0, 1))(_t(x[i]), _t(w))
        _close(gx[i], ex)
        _close(gw[i], ew)
    (g, (value, aux)) = vmap(grad_and_value(lambda v: ((v**2).sum(), v * 3), has_aux=True))(_t(x))
    _close(g, 2 * x)
    _close(value, (x**2).sum(1))
    _close(aux, 3 * x)


def test_vmap_guard_failures_rerecord():
    def branchy(v):
        if v.sum() > 0:
            return v * 2
        return -v.exp()

    x = np.array([[1.0, 2.0], [-3.0, 1.0], [0.5, 0.5], [-1.0, -1.0]])
    out = vmap(branchy)(_t(x))
    expected = np.where(x.sum(1, keepdims=True) > 0, x * 2, -np.exp(x))
    _close(out, expected)
    assert vmap_stats()["rerecords"] > 0
    g = vmap(grad(lambda v: branchy(v).sum()))(_t(x))
    _close(g, np.where(x.sum(1, keepdims=True) > 0, 2.0, -np.exp(x)))
    assert vmap_stats()["rerecords"] > 0


def test_threads_give_identical_results():
    tg.manual_seed(1)
    model = tg.nn.Sequential(tg.nn.Linear(8, 16), tg.nn.Tanh(), tg.nn.Linear(16, 3))
    params = {k: v.detach() for k, v in model.named_parameters()}
    # Two labels, 200 slices each: enough for each group's replay to take both threads
    # (replay._SLICES_PER_THREAD).
    X, Y = tg.randn(400, 8), tg.randint(0, 2, (400,))

    def loss(params, x, y):
        return F.cross_entropy(functional_call(model, params, (x[None],)), y[None])

    previous = tg.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            tg.set_num_threads(threads)
            results.append(vmap(grad(loss), in_dims=(None, 0, 0))(params, X, Y))
            assert vmap_stats()["threads"] == threads
        for name in params:
            assert np.array_equal(results[0][name].numpy(), results[1][name].numpy())
        chunked = vmap(grad(loss), in_dims=(None, 0, 0), chunk_size=3)(params, X, Y)
        for name in params:  # chunks of each label's group, filling one set of results
            assert np.array_equal(chunked[name].numpy(), results[0][name].numpy())
    finally:
        tg.set_num_threads(previous)
    with pytest.raises(RuntimeError, match="positive integer"):
        tg.set_num_threads(0)


def test_unrecordable_functions_fall_back_to_a_loop():
    class Square(tg.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return v * v

        @staticmethod
        def backward(ctx, g):
            (v,) = ctx.saved_tensors
            return 2 * v * g

    x = RNG.normal(size=(3, 2))
    _close(vmap(lambda v: Square.apply(v) + 1)(_t(x)), x * x + 1)
    assert vmap_stats()["path"] == "eager"
    _close(vmap(grad(lambda v: Square.apply(v).sum()))(_t(x)), 2 * x)
    assert vmap_stats()["path"] == "eager"


def test_vmap_inside_grad_stays_differentiable():
    x = RNG.normal(size=(3, 2))
    _close(grad(lambda v: vmap(lambda row: (row**2).sum())(v).sum())(_t(x)), 2 * x)


def test_randomness():
    with pytest.raises(RuntimeError, match="randomness error mode"):
        vmap(lambda v: v + tg.rand(2, dtype=tg.float64))(_t(np.zeros((3, 2))))
    same = vmap(lambda v: v + tg.rand(2, dtype=tg.float64), randomness="same")(_t(np.zeros((3, 2))))
    assert np.array_equal(same[0].numpy(), same[2].numpy())
    different = vmap(lambda v: v + tg.rand(2, dtype=tg.float64), randomness="different")(_t(np.zeros((3, 2))))
    assert not np.array_equal(different[0].numpy(), different[2].numpy())


def test_randomness_same_holds_for_slices_recorded_again():
    """A slice that takes another branch is recorded again: under randomness="same" it draws
    the first recording's numbers (it drew fresh ones), and the generator advances once."""

    def f(x):
        noise = tg.randn(3, dtype=tg.float64)
        return (x * 0 if x.sum() > 0 else x * 0 + 100) + noise

    batch = tg.tensor([[1.0, 1, 1], [-1, -1, -1], [2, 2, 2], [-2, -2, -2]], dtype=tg.float64)
    tg.manual_seed(0)
    out = vmap(f, randomness="same")(batch)
    after = tg.randn(1, dtype=tg.float64).item()
    assert vmap_stats()["path"] == "replay" and vmap_stats()["rerecords"] >= 1
    tg.manual_seed(0)
    noise = tg.randn(3, dtype=tg.float64).numpy()
    assert tg.randn(1, dtype=tg.float64).item() == after  # as after one draw of the noise
    offsets = np.array([[0.0], [100.0], [0.0], [100.0]])
    np.testing.assert_allclose(out.numpy() - offsets, np.broadcast_to(noise, (4, 3)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("weight_requires_grad", [False, True])  # (the replay, the eager loop)
def test_batch_norm_updating_running_statistics_inside_vmap_raises(weight_requires_grad):
    """PyTorch refuses: each slice would update the unbatched running statistics. tapegrad
    updated them once per recording (the replay path) or once per slice and recording (the
    eager loop) and returned. Evaluation mode and untracked statistics still map."""
    x = tg.tensor([[[1.0, 2.0], [3.0, 5.0]], [[0.0, 1.0], [4.0, 4.0]]], dtype=tg.float64)
    layer = tg.nn.BatchNorm1d(2).double().requires_grad_(weight_requires_grad)
    with pytest.raises(RuntimeError, match="Batch norm got a batched tensor as input while the running_mean"):
        vmap(layer)(x)
    assert layer.running_mean.tolist() == [0.0, 0.0] and layer.running_var.tolist() == [1.0, 1.0]
    layer.eval()
    expected = [layer(x[i]).detach().numpy() for i in range(2)]
    np.testing.assert_allclose(vmap(layer)(x).detach().numpy(), np.stack(expected), rtol=1e-12)
    untracked = tg.nn.BatchNorm1d(2, track_running_stats=False).double()
    expected = [untracked(x[i]).detach().numpy() for i in range(2)]
    np.testing.assert_allclose(vmap(untracked)(x).detach().numpy(), np.stack(expected), rtol=1e-12)


@pytest.mark.parametrize("requires_grad", [False, True])  # (the replay, the eager loop)
def test_out_dims_none_takes_a_constant_holding_nan(requires_grad):
    """An output of out_dims None is checked to be the same in every slice: NaN compared
    unequal to itself, and a constant holding one was refused where PyTorch returns it."""
    constant = tg.tensor([float("nan"), 1.0], dtype=tg.float64)
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=tg.float64, requires_grad=requires_grad)
    doubled, same = vmap(lambda v: (v * 2, constant), out_dims=(0, None))(x)
    assert doubled.tolist() == [[2.0, 4.0], [6.0, 8.0]]
    assert np.isnan(same[0].item()) and same[1].item() == 1.0 and tuple(same.shape) == (2,)
    with pytest.raises(ValueError, match="can not return a BatchedTensor when out_dim is None"):
        vmap(lambda v: v + tg.tensor([float("nan"), 0.0], dtype=tg.float64), out_dims=None)(x)


_TRANSFORM_ERRORS = {
    # reverse mode from an integer or bool output: a Jacobian of zeros, silently
    "jacrev of a bool output": (lambda m, F: F.jacrev(lambda x: x > 0)(m.ones(2)), RuntimeError,
                                "vjp(f, ...): All outputs of f must be floating-point or complex Tensors"),
    "vjp of an int64 output": (lambda m, F: F.vjp(lambda x: (x * 2).long(), m.ones(2)), RuntimeError,
                               "vjp(f, ...): All outputs of f must be floating-point or complex Tensors"),
    "hessian of an int64 output": (lambda m, F: F.hessian(lambda x: x.sum().long())(m.ones(2)), RuntimeError,
                                   "vjp(f, ...): All outputs of f must be floating-point or complex Tensors"),
    "grad of a Python int": (lambda m, F: F.grad(lambda x, n: x.sum(), argnums=1)(m.ones(2), 3), ValueError,
                             "Thing passed to transform API must be Tensor, got <class 'int'>"),
    "jvp of an int64 primal": (
        lambda m, F: F.jvp(lambda x: x, (m.ones(2, dtype=m.int64),), (m.ones(2, dtype=m.int64),)), ValueError,
        "Expected primal to be floating point or complex, but got: "),
    "grad with a str aux": (lambda m, F: F.grad(lambda x: (x.sum(), "a"), has_aux=True)(m.ones(2)), RuntimeError,
                            "Expected tensors, got unsupported type <class 'str'>"),
    "vjp with an int in its aux": (
        lambda m, F: F.vjp(lambda x: (x.sum(), (x, 3)), m.ones(2), has_aux=True), RuntimeError,
        "Expected tensors, got unsupported type <class 'int'>"),
    "functional_call of a list of tensors": (
        lambda m, F: F.functional_call(m.nn.Linear(2, 1), [m.ones(1, 2)], (m.ones(2),)), ValueError,
        "Expected all elements of parameter_and_buffer_dicts to be dictionaries"),
    "vmap of a str out_dims": (lambda m, F: F.vmap(lambda x: x, out_dims="0")(m.ones(2, 2)), ValueError,
                               "vmap(<lambda>, ..., out_dims=0): `out_dims` must be an int, None or a python "
                               "collection of ints"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(_TRANSFORM_ERRORS))
@pytest.mark.parametrize("library", ["tapegrad", "torch"])
def test_transforms_raise_pytorchs_errors(name, library):
    """Found by a hunt against torch.func: zeros for reverse mode of integer outputs, and
    other exception classes (a Python error from inside the transform) for the rest."""
    m = tg if library == "tapegrad" else pytest.importorskip("torch")
    F = importlib.import_module(f"{m.__name__}.func")
    call, kind, message = _TRANSFORM_ERRORS[name]
    with pytest.raises(kind) as raised:
        call(m, F)
    assert str(raised.value).startswith(message)


def test_functional_call_restores_ties_and_strict():
    layer = tg.nn.Linear(2, 1)
    weight = layer.weight
    out = functional_call(layer, ({"weight": tg.ones(1, 2)}, {"bias": tg.zeros(1)}), tg.tensor([1.0, 2.0]))
    _close(out, [3.0], 1e-6)
    assert layer.weight is weight and layer._parameters["weight"] is weight
    with pytest.raises(RuntimeError, match="Missing key"):
        functional_call(layer, {"weight": tg.ones(1, 2)}, (tg.ones(2),), strict=True)
    tied = tg.nn.Sequential(tg.nn.Linear(2, 2, bias=False), tg.nn.Linear(2, 2, bias=False))
    tied[1].weight = tied[0].weight
    out = functional_call(tied, {"0.weight": tg.eye(2) * 2}, (tg.ones(2),))
    _close(out, [4.0, 4.0], 1e-6)
    out = functional_call(tied, {"0.weight": tg.eye(2) * 2}, (tg.ones(2),), tie_weights=False)
    assert tied[1].weight is tied[0].weight


# -- against torch.func ---------------------------------------------------------------------


def _pair(torch, array):
    return tg.tensor(array), torch.tensor(array)


def test_transforms_match_torch_func():
    torch = pytest.importorskip("torch")
    x, w = RNG.normal(size=(4, 3)), RNG.normal(size=3)
    (a, ta), (b, tb) = _pair(torch, x), _pair(torch, w)

    def f(lib):
        return lambda v, u: ((v * u).tanh() ** 2).sum() + (v**3).sum()

    for argnums in (0, 1, (0, 1)):
        _tree_close(grad(f(tg), argnums)(a, b), grad_torch(torch)(f(torch), argnums)(ta, tb))
    _tree_close(
        vmap(grad(f(tg)), in_dims=(0, None))(a, b), torch.func.vmap(torch.func.grad(f(torch)), (0, None))(ta, tb)
    )
    _tree_close(jacrev(lambda v: v.sin() * v)(b), torch.func.jacrev(lambda v: v.sin() * v)(tb))
    _tree_close(jacfwd(lambda v: v.exp() @ v)(b), torch.func.jacfwd(lambda v: v.exp() @ v)(tb))
    _tree_close(
        hessian(lambda v, u: (v.sin() * u).sum(), (0, 1))(b, b),
        torch.func.hessian(lambda v, u: (v.sin() * u).sum(), (0, 1))(tb, tb),
    )
    out, fn = vjp(lambda v: (v.cos(), v * 2), a)
    tout, tfn = torch.func.vjp(lambda v: (v.cos(), v * 2), ta)
    _tree_close(out, tout)
    _tree_close(fn((a, a)), tfn((ta, ta)))
    _tree_close(
        vmap(lambda v, u: (v * u, v.sum()), in_dims=(1, 0), out_dims=(1, 0))(a, a.T),
        torch.func.vmap(lambda v, u: (v * u, v.sum()), in_dims=(1, 0), out_dims=(1, 0))(ta, ta.T),
    )
    _tree_close(
        vmap(vmap(lambda v: v.exp()), in_dims=1)(a), torch.func.vmap(torch.func.vmap(lambda v: v.exp()), in_dims=1)(ta)
    )


def grad_torch(torch):
    return torch.func.grad


def _bad_calls(lib, func):
    ones = lib.ones(3)
    return {
        "non-scalar": lambda: func.grad(lambda v: v * 2)(ones),
        "not a tensor": lambda: func.grad(lambda v: 3.0)(ones),
        "aux not a pair": lambda: func.grad(lambda v: v.sum(), has_aux=True)(ones),
        "argnum out of range": lambda: func.grad(lambda v: v.sum(), argnums=1)(ones),
        "argnums type": lambda: func.grad(lambda v: v.sum(), argnums=1.0)(ones),
        "batch sizes": lambda: func.vmap(lambda a, b: a + b)(ones, lib.ones(4)),
        "in_dims list": lambda: func.vmap(lambda a: a, in_dims=[0])(ones),
        "in_dim range": lambda: func.vmap(lambda a: a, in_dims=2)(ones),
        "in_dim non-tensor": lambda: func.vmap(lambda a, b: a, in_dims=(0, 0))(ones, 2.0),
        "random": lambda: func.vmap(lambda a: a + lib.rand(1))(ones),
        "randomness": lambda: func.vmap(lambda a: a, randomness="foo"),
        "chunk_size": lambda: func.vmap(lambda a: a, chunk_size=0),
        "returns float": lambda: func.vmap(lambda a: 3.0)(ones),
        "no inputs": lambda: func.vmap(lambda: 3.0)(),
        "out_dims range": lambda: func.vmap(lambda a: a, out_dims=2)(ones),
        "nothing batched": lambda: func.vmap(lambda a: a, in_dims=(None,))(ones),
        "vjp non-tensor": lambda: func.vjp(lambda v: 3.0, ones),
        "duplicate keys": lambda: func.functional_call(
            lib.nn.Linear(2, 2), ({"weight": lib.ones(2, 2)}, {"weight": lib.ones(2, 2)}), (lib.ones(2),)
        ),
        "strict": lambda: func.functional_call(
            lib.nn.Linear(2, 2), {"weight": lib.ones(2, 2)}, (lib.ones(2),), strict=True
        ),
    }


@pytest.mark.parametrize("case", list(_bad_calls(tg, tg.func)))
def test_errors_match_torch_func(case):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as ours:
        _bad_calls(tg, tg.func)[case]()
    with pytest.raises(Exception) as theirs:
        _bad_calls(torch, torch.func)[case]()
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


def test_in_dims_structure_error_names_the_structures():
    with pytest.raises(ValueError, match=r"in_dims is not compatible with the structure of `inputs`"):
        vmap(lambda a, b: a + b, in_dims=(0,))(tg.ones(3), tg.ones(3))
    with pytest.raises(ValueError, match=r"in_dims is not compatible"):
        vmap(lambda d: d["a"], in_dims=({"b": 0},))({"a": tg.ones(3)})


def test_results_kept_by_the_caller_are_never_reused():
    # Large result arrays are handed out again once nothing refers to them (replay._ResultPool):
    # results still held must keep their values through later calls.
    from tapegrad.replay import _results

    X, Y = tg.randn(500, 64), tg.randint(0, 10, (500,))
    W = tg.randn(64, 10) * 0.1

    def loss(w, x, y):
        return F.cross_entropy(x[None] @ w, y[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    first = per_sample(W, X, Y)
    kept = first.numpy().copy()
    assert first.numel() * 4 >= _results.SMALLEST  # large enough to be pooled
    per_sample(W * 2.0, X, Y)  # dropped at once: its array goes back to the pool
    pooled = len(_results.arrays)
    for _ in range(3):
        per_sample(W * 3.0, X, Y)
    assert len(_results.arrays) == pooled  # the dropped results' array was handed out again
    np.testing.assert_array_equal(first.numpy(), kept)


def test_vmap_over_an_empty_batch_gives_empty_results():
    # torch.func gives each output an extent 0 at its out_dim; this raised IndexError.
    assert vmap(lambda x: x * 2)(tg.ones(0, 3)).shape == (0, 3)
    assert vmap(lambda x: x.sum())(tg.ones(0, 3)).shape == (0,)
    assert vmap(grad(lambda x: (x * x).sum()))(tg.ones(0, 3)).shape == (0, 3)
    assert vmap(lambda x: x * 2, in_dims=1, out_dims=1)(tg.ones(3, 0)).shape == (3, 0)
    assert vmap(lambda x, y: x + y, in_dims=(0, None))(tg.ones(0, 3), tg.ones(3)).shape == (0, 3)
    assert vmap_stats()["reason"] == "an empty batch"


# -- jvp -------------------------------------------------------------------------------------


def _jvp_cases(m):
    """(function, primals, tangents, has_aux) over module ``m`` (tapegrad or torch), float64."""
    rng = np.random.default_rng(7)
    x, y, v, w = (m.tensor(rng.standard_normal(shape)) for shape in ((3, 4), (4, 2), (3, 4), (4, 2)))
    return [
        (lambda a, b: (a @ b).tanh(), (x, y), (v, w), False),
        (lambda a: (a.exp().sum(1), {"s": a.sin()}), (x,), (v,), False),  # a tree of outputs
        (lambda a: ((a * a).sum(), a.mean()), (x,), (v,), True),  # (output, aux)
        (lambda t: t["p"][0] * t["p"][1].sum(), ({"p": [x, y]},), ({"p": [v, w]},), False),  # a tree of inputs
        (lambda a: m.ones(2, dtype=a.dtype), (x,), (v,), False),  # nothing depends on the input
    ]


def _flat_values(tree):
    if isinstance(tree, dict):
        return [value for key in sorted(tree) for value in _flat_values(tree[key])]
    if isinstance(tree, (tuple, list)):
        return [value for item in tree for value in _flat_values(item)]
    return [np.asarray(tree.detach().numpy() if hasattr(tree, "detach") else tree)]


@pytest.mark.parametrize("case", range(5))
def test_jvp_matches_torch_func(case):
    torch = pytest.importorskip("torch")
    from torch.func import jvp as torch_jvp

    from tapegrad.func import jvp

    func, primals, tangents, has_aux = _jvp_cases(tg)[case]
    tfunc, tprimals, ttangents, _ = _jvp_cases(torch)[case]
    ours = jvp(func, primals, tangents, has_aux=has_aux)
    theirs = torch_jvp(tfunc, tprimals, ttangents, has_aux=has_aux)
    assert len(ours) == len(theirs)
    for a, b in zip(_flat_values(ours), _flat_values(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert not any(isinstance(t, tg.Tensor) and t.requires_grad for t in _flat_leaves(ours))


def _flat_leaves(tree):
    if isinstance(tree, dict):
        return [leaf for value in tree.values() for leaf in _flat_leaves(value)]
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _flat_leaves(item)]
    return [tree]


def test_jvp_of_grad_is_a_hessian_vector_product():
    from tapegrad.func import jvp

    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 5))
    A = A + A.T
    x0, v0 = rng.standard_normal(5), rng.standard_normal(5)
    f = lambda x: 0.5 * (x @ tg.tensor(A) @ x) + x.sin().sum()  # noqa: E731 - Hessian A - diag(sin x)
    gradient, product = jvp(grad(f), (tg.tensor(x0),), (tg.tensor(v0),))
    np.testing.assert_allclose(gradient.numpy(), A @ x0 + np.cos(x0), rtol=1e-12)
    np.testing.assert_allclose(product.numpy(), A @ v0 - np.sin(x0) * v0, rtol=1e-12)
    # and grad of a jvp (reverse over forward): d/dx of v . grad f(x) . v
    curvature = grad(lambda x: jvp(grad(f), (x,), (tg.tensor(v0),))[1] @ tg.tensor(v0))(tg.tensor(x0))
    np.testing.assert_allclose(curvature.numpy(), -np.cos(x0) * v0 * v0, rtol=1e-12)


@pytest.mark.parametrize(
    "arguments",
    [
        lambda m: ([m.ones(2)], (m.ones(2),)),
        lambda m: ((m.ones(2),), [m.ones(2)]),
        lambda m: ((m.ones(2),), (m.ones(3),)),
        lambda m: ((m.ones(2),), (m.ones(2), m.ones(2))),
    ],
    ids=["primals-list", "tangents-list", "shape", "count"],
)
def test_jvp_raises_pytorchs_errors(arguments):
    torch = pytest.importorskip("torch")
    from torch.func import jvp as torch_jvp

    from tapegrad.func import jvp

    with pytest.raises(RuntimeError) as theirs:
        torch_jvp(lambda x: x * 2, *arguments(torch))
    with pytest.raises(RuntimeError) as ours:
        jvp(lambda x: x * 2, *arguments(tg))
    assert str(ours.value) == str(theirs.value)


def test_jvp_is_differentiable_in_primals_and_tangents_that_require_grad():
    torch = pytest.importorskip("torch")
    from tapegrad.func import jvp

    values = np.array([0.5, -1.0, 2.0])
    x, v = tg.tensor(values, requires_grad=True), tg.tensor(values[::-1].copy(), requires_grad=True)
    tx, tv = torch.tensor(values, requires_grad=True), torch.tensor(values[::-1].copy(), requires_grad=True)
    _, product = jvp(lambda a: a.sin() * a, (x,), (v,))
    _, tproduct = torch.func.jvp(lambda a: a.sin() * a, (tx,), (tv,))
    assert product.requires_grad
    for ours, theirs in zip(tg.autograd.grad(product.sum(), (x, v)), torch.autograd.grad(tproduct.sum(), (tx, tv))):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)


def test_jvp_of_an_integer_output_is_zero_and_no_grad_inside_raises():
    from tapegrad.func import jvp

    out, tangent = jvp(lambda a: a.argmax(), (tg.tensor([1.0, 3.0, 2.0]),), (tg.ones(3),))
    assert int(out) == 1 and int(tangent) == 0 and tangent.dtype == tg.int64

    def through_no_grad(a):
        with tg.no_grad():  # PyTorch's forward mode goes through it; reverse sweeps cannot
            return a * 2

    with pytest.raises(NotImplementedError, match="turns grad mode off"):
        jvp(through_no_grad, (tg.ones(2),), (tg.ones(2),))
    with pytest.raises(RuntimeError, match="Expected primals to contain at least one Tensor"):
        jvp(lambda: tg.ones(1), (), ())
    # tapegrad's own grad-mode switches (a sample drawn under no_grad) are not the caller's
    normal = tg.distributions.Normal(0.0, 1.0)
    assert jvp(lambda a: a * normal.sample(), (tg.ones(2),), (tg.zeros(2),))[1].tolist() == [0.0, 0.0]


def test_jacfwd_and_hessian_through_no_grad_raise_where_they_gave_zeros():
    """PyTorch's jacfwd (and hessian, jacfwd of jacrev) run forward mode, which no_grad does not
    stop: of ``x * 2`` computed under no_grad the Jacobian is 2 I. tapegrad's reverse sweeps
    gave zeros; they raise as jvp does. jacrev's zeros are PyTorch's too (reverse mode)."""
    from tapegrad.func import hessian, jacfwd, jacrev

    def through_no_grad(a):
        with tg.no_grad():
            return a * 2

    with pytest.raises(NotImplementedError, match="jacfwd or hessian of a function that turns grad mode off"):
        jacfwd(through_no_grad)(tg.ones(2))
    with pytest.raises(NotImplementedError, match="turns grad mode off"):
        hessian(lambda a: (through_no_grad(a) * a).sum())(tg.ones(2))
    assert jacrev(through_no_grad)(tg.ones(2)).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert jacfwd(lambda a: a * 2)(tg.ones(2)).tolist() == [[2.0, 0.0], [0.0, 2.0]]
    with tg.no_grad():  # the caller's own no_grad is not the function's
        assert jacfwd(lambda a: a * 2)(tg.ones(2)).tolist() == [[2.0, 0.0], [0.0, 2.0]]


def _outer_backwards(m, F):
    """Outer backwards through each transform, of an input and of a captured parameter that
    require grad: the gradients each leaves in ``x.grad`` and ``w.grad``."""
    results = {}

    def run(name, make):
        x = m.tensor([0.5, -1.0, 2.0], dtype=m.float64, requires_grad=True)
        X = m.tensor(np.arange(6.0).reshape(2, 3) / 3, dtype=m.float64, requires_grad=True)
        w = m.tensor([1.5, 0.3, -0.7], dtype=m.float64, requires_grad=True)

        def f(v):
            return (v.sin() * w).sum() * v.pow(2).sum()

        loss = make(F, f, x, X, w)
        loss.backward()
        results[name] = [None if t.grad is None else t.grad.numpy().copy() for t in (x, X, w)]

    run("grad", lambda F, f, x, X, w: F.grad(f)(x).sum() + x.sum())
    run("grad of a captured", lambda F, f, x, X, w: F.grad(f)(x.detach()).sum() + w.sum())
    run("grad_and_value", lambda F, f, x, X, w: sum(t.sum() for t in F.grad_and_value(f)(x)))
    run("vjp", lambda F, f, x, X, w: (lambda out, fn: out + fn(m.ones((), dtype=m.float64))[0].sum())(*F.vjp(f, x)))
    run("jvp", lambda F, f, x, X, w: sum(t.sum() for t in F.jvp(f, (x,), (m.ones(3, dtype=m.float64),))))
    run("jacrev", lambda F, f, x, X, w: F.jacrev(lambda v: v.sin() * w)(x).sum())
    run("hessian", lambda F, f, x, X, w: F.hessian(f)(x).sum())
    run("vmap", lambda F, f, x, X, w: F.vmap(lambda r: (r.sin() * w).sum())(X).sum())
    run("vmap of a captured", lambda F, f, x, X, w: F.vmap(lambda r: (r.sin() * w).sum())(X.detach()).sum())
    run("vmap(grad)", lambda F, f, x, X, w: F.vmap(F.grad(f))(X).sum())
    run("vmap(grad) of a captured", lambda F, f, x, X, w: F.vmap(F.grad(f))(X.detach()).sum())
    return results


def test_outer_backward_through_transforms_matches_pytorch():
    """An outer backward through grad, vjp, jvp, jacrev, hessian and vmap reaches the inputs and
    the captured parameters that require grad, as through torch.func's (a silent wrong gradient
    before: the transforms' results were detached, and ``x.grad`` lacked f's Hessian)."""
    torch = pytest.importorskip("torch")
    torch_func = pytest.importorskip("torch.func")

    ours = _outer_backwards(tg, tg.func)
    theirs = _outer_backwards(torch, torch_func)
    for name, expected in theirs.items():
        for got, want in zip(ours[name], expected):
            assert (got is None) == (want is None), name
            if want is not None:
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


def test_vmap_of_an_in_place_change_and_a_one_element_out_dims_as_torch_func():
    """``vmap(lambda a: a.add_(1))(x)`` writes into x and returns it, as torch.func does (the
    recording refused it: its inputs require grad); ``out_dims=(1,)`` is accepted for a
    single tensor output."""
    torch = pytest.importorskip("torch")
    results = []
    for m, transforms in ((tg, tg.func), (torch, pytest.importorskip("torch.func"))):
        x = m.zeros(2, 3)
        out = transforms.vmap(lambda a: a.add_(1).mul_(2))(x)
        moved = transforms.vmap(lambda a: a * 2, out_dims=(1,))(m.arange(6.0).reshape(2, 3))
        results.append((out.numpy().copy(), x.numpy().copy(), moved.numpy()))
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "program",
    [
        lambda m: m.func.functional_call(m.nn.Linear(2, 1), {"weight": 3.0}, (m.ones(2),)),
        lambda m: m.func.functional_call(m.nn.Linear(2, 1), {}, [m.ones(2)]),
        lambda m: m.func.functional_call(m.nn.Linear(2, 1), {"nope.weight": m.ones(1, 2)}, (m.ones(2),)),
    ],
    ids=["a number for a tensor", "args as a list", "an unknown submodule"],
)
def test_functional_call_errors_are_pytorchs(program):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch.func")
    with pytest.raises(Exception) as theirs:  # noqa: PT011 - the class is the comparison
        program(torch)
    with pytest.raises(Exception) as ours:  # noqa: PT011
        program(tg)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value).replace("tapegrad", "torch") == str(theirs.value)


def test_vmap_slices_whose_branches_give_other_shapes_or_dtypes_are_not_broadcast():
    # A re-recorded slice's output was written into the first recording's results: numpy
    # broadcast its [2.] over a row of two, silently. Now the eager loop stacks them, as a
    # loop and torch.stack do: an error for another shape, PyTorch's promotion for a dtype.
    x = tg.tensor(np.array([[1.0, 2.0], [-1.0, 3.0], [2.0, -5.0]], np.float32))
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        vmap(lambda u: u if u.sum() > 0 else u[:1])(x)
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        vmap(lambda u: u if u.sum() > 0 else u.sum())(x)
    promoted = vmap(lambda u: u if u.sum() > 0 else u.double())(x)
    assert promoted.dtype == tg.float64 and vmap_stats()["path"] == "eager"
    tape = tg.record(lambda u: u if u.sum() > 0 else u[:1], np.array([1.0, 2.0]), rerecord=True)
    with pytest.raises(RuntimeError, match="slice 2 of the batch: the tape recorded again returns shape"):
        vmap(tape)(x.double().numpy())


def test_forward_over_reverse_through_as_strided_is_not_zero():
    # The transforms differentiate a view of their input when nested (jvp of grad, hessian);
    # as_strided picked from the view's root, so the gradient never reached the view: zeros.
    f = lambda x: (x.as_strided((2, 2), (1, 2)) ** 3).sum()  # noqa: E731
    data = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    hessian = tg.func.hessian(f)(tg.tensor(data, dtype=tg.float64))
    np.testing.assert_allclose(hessian.diagonal().numpy(), [6 * v for v in data[:4]] + [0.0, 0.0], rtol=1e-12)
    g = tg.func.grad(lambda x: (x.as_strided((2,), (2,)) ** 2).sum())
    value, tangent = tg.func.jvp(g, (tg.tensor([1.0, 2.0, 3.0]),), (tg.ones(3),))
    assert value.tolist() == [2.0, 0.0, 6.0] and tangent.tolist() == [2.0, 0.0, 2.0]
    x = tg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    view = x[1:]
    assert tg.autograd.grad((view.as_strided((2,), (2,)) ** 2).sum(), view)[0].tolist() == [4.0, 0.0, 8.0]


def test_jvp_through_a_function_whose_other_outputs_are_unused():
    # eigvalsh saves its eigenvectors, an output past the rows the second sweep walked: it
    # indexed past them (IndexError) instead of differentiating through them.
    a = tg.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=tg.float64)
    t = tg.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=tg.float64)
    values, tangent = tg.func.jvp(tg.linalg.eigvalsh, (a,), (t,))
    vectors = tg.linalg.eigh(a)[1]
    expected = (vectors[0] ** 2).numpy()  # d(lambda_i) = v_i^T T v_i
    np.testing.assert_allclose(tangent.numpy(), expected, rtol=1e-12)
    _, tangent = tg.func.jvp(tg.linalg.svdvals, (a,), (t,))  # symmetric positive: the same
    np.testing.assert_allclose(np.sort(tangent.numpy()), np.sort(expected), rtol=1e-12)


def test_vmap_may_change_a_view_of_its_input_in_place():
    # torch.func writes into the argument; the recording refused a view of its inputs changed in
    # place with the leaf-view error, which vmap let through instead of running its eager loop.
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert vmap(lambda row: row[0].mul_(2))(x).tolist() == [2.0, 6.0]
    assert x.tolist() == [[2.0, 2.0], [6.0, 4.0]]


@pytest.mark.parametrize("mode", [tg.no_grad, tg.inference_mode, lambda: tg.set_grad_enabled(False)])
def test_transforms_and_recordings_differentiate_whatever_the_grad_mode(mode):
    """torch.func's transforms differentiate under no_grad and inside inference_mode too;
    inside inference_mode (where enable_grad changes nothing) every transform and a recording's
    gradient came out zero."""

    def f(x):
        return (x * x.sin()).sum()

    x = tg.tensor([0.5, -1.0, 2.0], dtype=tg.float64)

    def results():
        return {
            "grad": grad(f)(x).numpy(),
            "vmap": vmap(grad(f))(tg.stack([x, 2 * x])).numpy(),
            "jacrev": jacrev(f)(x).numpy(),
            "hessian": hessian(f)(x).numpy(),
            "vjp": vjp(f, x)[1](tg.tensor(1.0, dtype=tg.float64))[0].numpy(),
            "record": tg.record(f, x.numpy()).value_and_grad(x.numpy())[1][0].numpy(),
        }

    expected = results()
    assert np.abs(expected["grad"]).min() > 0.05  # (nothing zero to hide a zero gradient)
    with mode():
        got = results()
        assert not tg.is_grad_enabled()  # and the mode is the caller's again after each
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    "write",
    [
        lambda buffer, x: buffer.add_(x),
        lambda buffer, x: buffer.mul_(x),
        lambda buffer, x: buffer.copy_(x),
        lambda buffer, x: buffer.__setitem__(0, x[0]),
        lambda buffer, x: buffer[1:].add_(x[1:]),
        lambda buffer, x: buffer.add_(x.sum()),
    ],
)
@pytest.mark.parametrize("parameter_requires_grad", [False, True])  # (the replay; the eager loop after it)
def test_a_captured_tensor_changed_by_a_sliced_value_raises(write, parameter_requires_grad):
    """One tensor cannot hold a value per slice: torch.func raises. The replay made the change
    once, with the first slice's value, and returned; the buffer is left as it was."""
    buffer = tg.zeros(3, dtype=tg.float64)
    weight = tg.ones(3, dtype=tg.float64, requires_grad=parameter_requires_grad)

    def f(x):
        write(buffer, x)
        return x * weight

    with pytest.raises(RuntimeError, match="vmap: inplace arithmetic"):
        vmap(f)(tg.arange(1.0, 7.0, dtype=tg.float64).reshape(2, 3))
    assert buffer.tolist() == [0.0, 0.0, 0.0]


def test_a_captured_tensor_changed_by_an_unsliced_value_is_changed_once():
    """As torch.func: ``buffer.add_(y)`` of an argument not mapped over (or of a number) runs once."""
    buffer = tg.zeros(3, dtype=tg.float64)

    def f(x, y):
        buffer.add_(y)
        return x * buffer

    out = vmap(f, in_dims=(0, None))(tg.ones(2, 3, dtype=tg.float64), tg.full((3,), 2.0, dtype=tg.float64))
    assert out.tolist() == [[2.0] * 3] * 2 and buffer.tolist() == [2.0] * 3
    grads = vmap(grad(lambda x: (buffer.add_(1.0) * x).sum()))(tg.ones(2, 3, dtype=tg.float64))
    assert grads.tolist() == [[3.0] * 3] * 2 and buffer.tolist() == [3.0] * 3


def test_functional_call_writes_a_reassigned_buffer_back_into_the_dict():
    """PyTorch writes a tensor the call assigned anew (``self.count = self.count + 1``) back
    into the caller's dict, so that the next call starts from it; it was dropped."""

    class Counter(tg.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("count", tg.zeros(1))

        def forward(self, x):
            self.count = self.count + 1
            return x

    module = Counter()
    state = {"count": tg.zeros(1)}
    for _ in range(2):
        functional_call(module, state, (tg.zeros(1),))
    assert state["count"].item() == 2.0 and module.count.item() == 0.0
    states = [{"count": tg.zeros(1)}, {}]
    functional_call(module, states, (tg.zeros(1),))
    assert states[0]["count"].item() == 1.0 and states[1] == {}


# Programs whose vmap runs the eager loop (an unbatched input changed in place, randomness=
# "different", an input requiring grad), each changing in place a tensor the slices share.
SHARED_WRITES = {
    "unbatched input": lambda x, w, acc: vmap(lambda r, w: r * w.add_(1), in_dims=(0, None))(x, w),
    "captured, randomness different": lambda x, w, acc: vmap(lambda r: r * acc.add_(1), randomness="different")(x),
    "captured, input requiring grad": lambda x, w, acc: vmap(lambda r: r * acc.add_(1))(x.requires_grad_()),
}


@pytest.mark.parametrize("case", SHARED_WRITES)
def test_vmap_refuses_a_shared_tensor_changed_by_every_slice(case):
    """Found by a review: the eager loop changed such a tensor once per slice (rows 1, 2, 3, 4 and
    w = [4, 4, 4] for the first case), where torch.func's batched call changes it once, or
    refuses a batched value. It raises now, never a silent per-slice accumulation."""
    x, w, acc = tg.ones(4, 3), tg.zeros(3), tg.zeros(3)
    with pytest.raises(NotImplementedError, match=r"changes in place a tensor of shape \(3,\) that is not a slice"):
        SHARED_WRITES[case](x, w, acc)
    assert vmap_stats()["path"] == "eager"


def test_vmap_eager_loop_still_changes_its_own_tensors_and_slices():
    def f(r):
        fresh = tg.zeros(3)
        fresh.add_(r)
        r.mul_(2)  # a slice of the batched input: each slice's own
        return fresh + r

    x = tg.arange(12.0).reshape(4, 3)
    out = vmap(f, randomness="different")(x)
    assert vmap_stats()["path"] == "eager"
    np.testing.assert_array_equal(x.numpy(), np.arange(12.0).reshape(4, 3) * 2)
    np.testing.assert_array_equal(out.numpy(), np.arange(12.0).reshape(4, 3) * 3)


def _jacobians_of_other_dtypes(m) -> list:
    def double(x):
        """Twice x, in float64."""
        return x.double() * 2

    x32, x64 = m.ones(2), m.ones(2, dtype=m.float64)
    results = [m.func.jacfwd(double)(x32), m.func.jacrev(double)(x32), m.func.jacfwd(lambda x: (x * 2).long())(x32)]
    results += list(m.func.jacfwd(lambda x, y: x * y, argnums=(0, 1))(x32, x64))
    out = [(str(j.dtype).split(".")[1], j.tolist()) for j in results]
    return out + [(m.func.jacfwd(double).__name__, m.func.jacrev(double).__doc__, m.func.hessian(double).__name__)]


def test_jacfwd_gives_the_output_s_dtype_and_keeps_the_function_s_name():
    """Found by a review: jacfwd gave the input's dtype (float32 for a float64 output; float
    zeros for an integer one), where a forward mode's tangents are the output's; and the
    transforms renamed the function ``jacrev_f``, where PyTorch's keep its name and docstring."""
    ours = _jacobians_of_other_dtypes(tg)
    assert [dtype for dtype, _ in ours[:-1]] == ["float64", "float32", "int64", "float64", "float64"]
    assert ours[-1] == ("double", "Twice x, in float64.", "double")
    torch = pytest.importorskip("torch")
    assert ours == _jacobians_of_other_dtypes(torch)


def _python_values_at_out_dims_none(m) -> list:
    x = m.ones(4, 3)
    out = []
    for value in (3.0, 3, "a"):
        doubled, kept = m.func.vmap(lambda r, value=value: (r * 2, value), out_dims=(0, None))(x)
        out.append((doubled.tolist(), kept))
    out.append(m.func.vmap(lambda r: 3.0, out_dims=None)(x))
    try:
        m.func.vmap(lambda r: (r * 2, 3.0))(x)
    except ValueError as error:
        out.append(str(error).split("`")[2])
    return out


def test_vmap_returns_python_values_at_out_dims_none():
    """Found by a review: a Python number or string returned at out_dims None raised "must only
    return Tensors", where torch.func returns it as it is."""
    ours = _python_values_at_out_dims_none(tg)
    assert [kept for _, kept in ours[:3]] == [3.0, 3, "a"] and ours[3] == 3.0
    assert ours[4].startswith(" must only return Tensors, got type <class 'float'>")
    torch = pytest.importorskip("torch")
    assert ours == _python_values_at_out_dims_none(torch)


def _random_inside_jacfwd(m) -> list:
    out = []
    for call in (
        lambda: m.func.jacfwd(lambda x: x * m.rand(3))(m.ones(3)),
        lambda: m.func.hessian(lambda x: (x * m.rand(3)).sum())(m.ones(3)),
        lambda: m.func.jacfwd(lambda x: x * m.rand(3), randomness="same")(m.ones(3)).shape,
        lambda: m.func.jacfwd(lambda x: x * 2)(m.ones(3, dtype=m.long)),
    ):
        try:
            out.append(tuple(call()))
        except (RuntimeError, ValueError) as error:
            out.append(f"{type(error).__name__}: {str(error).replace(m.__name__, 'torch')}")
    return out


def test_jacfwd_refuses_random_ops_and_integer_primals_as_pytorch():
    """Found by a review: jacfwd (and hessian, its jacfwd of jacrev) ignored randomness='error',
    and an integer input raised jacrev's RuntimeError; PyTorch's jacfwd, a vmap of jvp, raises
    vmap's RuntimeError and jvp's ValueError."""
    ours = _random_inside_jacfwd(tg)
    assert ours[0] == ours[1] and ours[0].startswith("RuntimeError: vmap: called random operation while in")
    assert ours[2] == (3, 3)
    assert ours[3] == "ValueError: Expected primal to be floating point or complex, but got: torch.int64"
    torch = pytest.importorskip("torch")
    assert ours == _random_inside_jacfwd(torch)
