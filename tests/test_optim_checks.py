"""tapegrad.optim refuses what torch.optim refuses, with its messages, and never runs its
compiled Adam update on buffers that do not fit the parameter (a state loaded for other
parameters once corrupted the heap); ``maximize`` and a tensor ``lr`` work as in PyTorch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tapegrad as tg

ALL = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta")


def _parameter(values=(1.0, 2.0, 3.0), dtype=np.float32):
    return tg.nn.Parameter(tg.tensor(np.array(values, dtype)))


# (optimizer, keyword arguments, PyTorch's message)
INVALID = [
    ("SGD", {"lr": -1}, "Invalid learning rate: -1"),
    ("SGD", {"lr": 0.1, "momentum": -1}, "Invalid momentum value: -1"),
    ("SGD", {"lr": 0.1, "weight_decay": -1}, "Invalid weight_decay value: -1"),
    ("Adam", {"lr": -1}, "Invalid learning rate: -1"),
    ("Adam", {"eps": -1}, "Invalid epsilon value: -1"),
    ("Adam", {"betas": (1.0, 0.9)}, "Invalid beta parameter at index 0: 1.0"),
    ("Adam", {"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
    ("Adam", {"weight_decay": -1}, "Invalid weight_decay value: -1"),
    ("AdamW", {"weight_decay": -1}, "Invalid weight_decay value: -1"),
    ("RMSprop", {"lr": -1}, "Invalid learning rate: -1"),
    ("RMSprop", {"eps": -1}, "Invalid epsilon value: -1"),
    ("RMSprop", {"momentum": -1}, "Invalid momentum value: -1"),
    ("RMSprop", {"weight_decay": -1}, "Invalid weight_decay value: -1"),
    ("RMSprop", {"alpha": -1}, "Invalid alpha value: -1"),
    ("Adagrad", {"lr": -1}, "Invalid learning rate: -1"),
    ("Adagrad", {"lr_decay": -1}, "Invalid lr_decay value: -1"),
    ("Adagrad", {"initial_accumulator_value": -1}, "Invalid initial_accumulator_value value: -1"),
    ("Adagrad", {"eps": -1}, "Invalid epsilon value: -1"),
    ("Adadelta", {"lr": -1}, "Invalid learning rate: -1"),
    ("Adadelta", {"rho": 2}, "Invalid rho value: 2"),
    ("Adadelta", {"eps": -1}, "Invalid epsilon value: -1"),
]


@pytest.mark.parametrize("name,kwargs,message", INVALID, ids=[f"{n}-{next(iter(k))}" for n, k, _ in INVALID])
def test_invalid_hyperparameters_raise_pytorchs_value_error(name, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message.replace('(', '[(]').replace(')', '[)]')}$"):
        getattr(tg.optim, name)([_parameter()], **kwargs)


@pytest.mark.parametrize("name,kwargs,message", INVALID, ids=[f"{n}-{next(iter(k))}" for n, k, _ in INVALID])
def test_the_invalid_hyperparameters_are_pytorchs(name, kwargs, message):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError) as raised:
        getattr(torch.optim, name)([torch.ones(3, requires_grad=True)], **kwargs)
    assert str(raised.value) == message


def test_params_must_be_an_iterable_of_leaf_tensors_each_in_one_group():
    p, q = _parameter(), _parameter()
    with pytest.raises(TypeError, match="^params argument given to the optimizer should be an iterable of Tensors"):
        tg.optim.Adam(p)
    with pytest.raises(ValueError, match="^optimizer got an empty parameter list$"):
        tg.optim.Adam([])
    with pytest.raises(ValueError, match="^can't optimize a non-leaf Tensor$"):
        tg.optim.Adam([p * 2])
    with pytest.raises(TypeError, match="^optimizer can only optimize Tensors, but one of the params is ndarray$"):
        tg.optim.SGD([np.ones(3)], lr=0.1)
    with pytest.raises(ValueError, match="^some parameters appear in more than one parameter group$"):
        tg.optim.Adam([{"params": [p]}, {"params": [q, p]}])
    with pytest.warns(UserWarning, match="duplicate parameters"):
        tg.optim.Adam([p, p])
    optimizer = tg.optim.SGD([p], lr=0.1, momentum=0.5)
    optimizer.add_param_group({"params": q, "lr": 0.2})
    assert [group["lr"] for group in optimizer.param_groups] == [0.1, 0.2]
    assert optimizer.param_groups[1]["momentum"] == 0.5 and optimizer.param_groups[1]["params"] == [q]
    with pytest.raises(ValueError, match="more than one parameter group"):
        optimizer.add_param_group({"params": [p]})


def _model():
    tg.manual_seed(0)
    return tg.nn.Sequential(tg.nn.Linear(300, 200), tg.nn.Linear(200, 2))


def test_a_state_of_other_parameters_raises_instead_of_corrupting_memory():
    """A state loaded for the parameters listed in another order: its moment buffers do not fit.
    The compiled update looped over the parameter's length through the smaller buffers (heap
    corruption, then an abort); now PyTorch's error, before anything changes."""
    model = _model()
    first = tg.optim.Adam(model.parameters(), lr=0.01)
    model(tg.ones(1, 300)).sum().backward()
    first.step()
    reordered = tg.optim.Adam(list(model.parameters())[::-1], lr=0.01)
    reordered.load_state_dict(first.state_dict())
    before = [p.detach().numpy().copy() for p in model.parameters()]
    # The first parameter (the last layer's bias, 2 elements) has the first layer's buffers.
    message = r"^The size of tensor a \(300\) must match the size of tensor b \(2\) at non-singleton dimension 1$"
    with pytest.raises(RuntimeError, match=message):
        reordered.step()
    for parameter, value in zip(model.parameters(), before):
        np.testing.assert_array_equal(parameter.detach().numpy(), value)


def test_load_state_dict_checks_the_groups_and_casts_buffers_to_the_parameters_dtype():
    p = _parameter(dtype=np.float64)
    optimizer = tg.optim.Adam([p])
    state = {"state": {0: {"step": np.array(1.0), "exp_avg": np.ones(3, np.float32), "exp_avg_sq": np.ones(3)}}}
    optimizer.load_state_dict({**state, "param_groups": [dict(optimizer.param_groups[0], params=[0])]})
    assert optimizer.state[p]["exp_avg"].numpy().dtype == np.float64
    with pytest.raises(ValueError, match="^loaded state dict has a different number of parameter groups$"):
        optimizer.load_state_dict({**state, "param_groups": []})
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group$"):
        optimizer.load_state_dict({**state, "param_groups": [dict(optimizer.param_groups[0], params=[0, 1])]})


def test_f_ordered_buffers_of_a_parameter_now_c_ordered_still_update():
    """A parameter first stepped as an F-ordered array has F-ordered moment buffers; once it is
    C-ordered the compiled update runs, and ran on flattened copies of them: the moments stopped
    moving, silently."""
    parameter = tg.nn.Parameter(tg.tensor(np.asfortranarray(np.zeros((3, 2), np.float32))))
    optimizer = tg.optim.Adam([parameter], lr=0.01)
    for step in range(4):
        if step == 1:
            parameter.data = tg.tensor(np.ascontiguousarray(parameter.detach().numpy()))
        parameter.grad = tg.ones(3, 2)
        optimizer.step()
    np.testing.assert_allclose(optimizer.state[parameter]["exp_avg"].numpy(), 1 - 0.9**4, rtol=1e-6)
    np.testing.assert_allclose(optimizer.state[parameter]["exp_avg_sq"].numpy(), 1 - 0.999**4, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("contiguous", [True, False], ids=["c-ordered", "strided"])
def test_maximize_and_a_tensor_lr_step_as_minimizing_the_negated_gradient(name, contiguous):
    """``maximize=True`` is the step of ``-grad``, to the bit (PyTorch negates the gradient
    first); a 0-d tensor ``lr`` is its number, on the compiled path and on numpy's."""
    rng = np.random.default_rng(7)
    start = rng.standard_normal((4, 3)).astype(np.float32)
    grads = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(3)]
    options = {"lr": 0.05} if name != "SGD" else {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}

    def run(maximize, lr):
        data = start if contiguous else np.asfortranarray(start)
        parameter = tg.nn.Parameter(tg.tensor(data))
        optimizer = getattr(tg.optim, name)([parameter], **{**options, "lr": lr}, maximize=maximize)
        for grad in grads:
            parameter.grad = tg.tensor(grad if maximize else -grad)
            optimizer.step()
        return parameter.detach().numpy()

    expected = run(False, 0.05)
    np.testing.assert_array_equal(run(True, 0.05), expected)
    np.testing.assert_array_equal(run(False, tg.tensor(0.05)), expected)


@pytest.mark.parametrize("name", ALL)
def test_maximize_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    start = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(3)]
    results = []
    for library in (tg, torch):
        parameter = library.nn.Parameter(library.tensor(start))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizer = getattr(library.optim, name)([parameter], lr=0.1, maximize=True)
        for grad in grads:
            parameter.grad = library.tensor(grad)
            optimizer.step()
        results.append(parameter.detach().numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12, atol=1e-14)


def _construction_cases(library):
    p = library.ones(3, requires_grad=True)
    q = library.ones(2, requires_grad=True)
    retained = p * 2
    retained.retain_grad()
    return {
        "a dict, then a tensor": lambda: library.optim.Adam([{"params": [p]}, q]),
        "add_param_group of a list": lambda: library.optim.Adam([p]).add_param_group([q]),
        "a tensor lr of two elements": lambda: library.optim.Adam([p], lr=library.tensor([0.1, 0.2])),
        "SGD, lr NaN": lambda: library.optim.SGD([p], lr=float("nan")),
        "Adam, lr NaN": lambda: library.optim.Adam([p], lr=float("nan")),
        "a string lr": lambda: library.optim.Adam([p], lr="0.1"),
        "named parameters": lambda: library.optim.SGD([("a", p), ("b", q)], lr=0.1).param_groups[0]["param_names"],
        "names for some": lambda: library.optim.SGD([("a", p), q], lr=0.1),
        "a non-leaf that retains its grad": lambda: len(library.optim.SGD([retained], lr=0.1).param_groups),
        "fused and foreach": lambda: library.optim.Adam([p], fused=True, foreach=True),
        "a tensor lr with foreach": lambda: library.optim.AdamW([p], lr=library.tensor(0.1), foreach=True),
    }


@pytest.mark.parametrize("case", list(_construction_cases(tg)))
def test_optimizer_construction_matches_pytorch(case):
    """Exception classes and messages (the tensor's class name aside), or the same result."""
    torch = pytest.importorskip("torch")

    def outcome(library):
        try:
            return "ok", _construction_cases(library)[case]()
        except (TypeError, ValueError, RuntimeError) as error:
            return type(error).__name__, str(error).replace("tapegrad.tensor.Tensor", "torch.Tensor")

    ours, theirs = outcome(tg), outcome(torch)
    if ours[0] == "ok":
        assert theirs[0] == "ok" and (
            ours[1] is None or ours[1] == theirs[1] or isinstance(ours[1], tg.optim.Optimizer)
        )
    else:
        assert ours == theirs


def test_load_state_dict_maps_states_by_the_saved_parameter_ids():
    """PyTorch's state dicts may number parameters as they like: the groups' lists say which."""
    p, q = _parameter(), _parameter((4.0, 5.0))
    optimizer = tg.optim.Adam([p, q], lr=0.1)
    state = {
        "state": {7: {"step": np.array(2.0), "exp_avg": np.full(2, 0.5, np.float32), "exp_avg_sq": np.ones(2)}},
        "param_groups": [dict(optimizer.state_dict()["param_groups"][0], params=[5, 7])],
    }
    optimizer.load_state_dict(state)
    assert q in optimizer.state and p not in optimizer.state
    assert optimizer.state[q]["exp_avg"].tolist() == [0.5, 0.5]
    shared = tg.tensor(0.1)
    other = tg.optim.Adam([p, q], lr=shared)
    optimizer.load_state_dict(other.state_dict())
    shared.fill_(0.0)
    assert float(optimizer.param_groups[0]["lr"]) == pytest.approx(0.1)  # a copy, not the same tensor


def _through_a_step(m, **options):
    """A gradient through an SGD step (meta-learning): d/dw0 of |w1|^2, w1 one step from w0."""
    w0 = m.tensor([1.0, -2.0], requires_grad=True)
    w = w0 * 1.0
    optimizer = m.optim.SGD([w], lr=0.1, differentiable=True, **options)
    for _ in range(2):
        (g,) = m.autograd.grad((w * w * m.tensor([1.0, 3.0])).sum(), w, create_graph=True)
        w.grad = g
        optimizer.step()
    (w * w).sum().backward()
    return w.detach().numpy(), w0.grad.numpy()


@pytest.mark.parametrize("options", [{}, {"momentum": 0.9}, {"momentum": 0.5, "nesterov": True, "weight_decay": 0.1}])
def test_sgd_step_is_recorded_when_differentiable(options):
    # differentiable=True was accepted and ignored: the step wrote the arrays off the graph
    w, grad = _through_a_step(tg, **options)
    if not options:  # w2 = (1 - 0.2 c)^2 w0 per element, c = (1, 3)
        factor = (1 - 0.2 * np.array([1.0, 3.0])) ** 2
        np.testing.assert_allclose(grad, 2 * factor**2 * np.array([1.0, -2.0]), rtol=1e-6)
    torch = pytest.importorskip("torch")
    for ours, theirs in zip((w, grad), _through_a_step(torch, **options)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_optimizer_options_pytorch_refuses():
    p = [tg.ones(2, requires_grad=True)]
    with pytest.raises(NotImplementedError, match="does not support differentiable=True"):
        tg.optim.Adam(p, differentiable=True)
    with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
        tg.optim.SGD(p, fused=True, differentiable=True)
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together."):
        tg.optim.Adagrad(p, fused=True, foreach=True)
    with pytest.raises(ValueError, match="betas must be either both floats or both Tensors"):
        tg.optim.Adam(p, betas=(tg.tensor(0.9), 0.999))
    w = tg.zeros(2, dtype=tg.int64)
    w.grad = tg.ones(2, dtype=tg.int64)
    with pytest.raises(RuntimeError, match="argument alpha must not be a floating point number"):
        tg.optim.SGD([w], lr=0.1).step()  # (it did nothing, silently)
    with pytest.raises(NotImplementedError):
        type("Custom", (tg.optim.Optimizer,), {})(p, {"lr": 1.0}).step()


@pytest.mark.parametrize("name", ["SGD", "NAdam", "RAdam", "Adamax", "RMSprop"])
def test_tensor_hyperparameters_step(name):
    def run(m):
        w = m.tensor([1.0, -2.0], requires_grad=True)
        half = m.tensor(0.5)
        options = {"momentum": half} if name in ("SGD", "RMSprop") else {"betas": (m.tensor(0.9), m.tensor(0.99))}
        optimizer = getattr(m.optim, name)([w], lr=0.01, **options)
        for _ in range(3):
            optimizer.zero_grad()
            (w * w).sum().backward()
            optimizer.step()
        return w.detach().numpy()

    ours = run(tg)  # (raised: numpy met a tensor)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(ours, run(torch), rtol=1e-6)
