"""tapegrad.optim's state is torch.optim's: ``optimizer.state`` a defaultdict(dict) keyed by the
parameters, holding tensors (buffers of the parameter's shape and dtype, a 0-d ``step``) that
take PyTorch's values; ``state_dict`` in PyTorch's layout, referencing the state as PyTorch's
does; ``load_state_dict`` taking tapegrad's and PyTorch's (converted tensor by tensor) and
continuing the run they came from; ``add_param_group`` and ``zero_grad`` with PyTorch's rules.

Every optimizer runs from the same start with the same gradients in both libraries; the specs
below are the whole list."""

from __future__ import annotations

import copy
from collections import defaultdict

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")

# (optimizer, options): each optimizer of tapegrad's, each state entry it can have.
SPECS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "amsgrad": True, "maximize": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("Adadelta", {"lr": 1.0, "weight_decay": 0.01}),
]
SPEC_IDS = [f"{name}-" + ("-".join(sorted(set(options) - {"lr"})) or "plain") for name, options in SPECS]
DTYPES = [np.float32, np.float64]
TOLERANCE = {np.float32: 1e-6, np.float64: 1e-12}
# Three parameters; the last never gets a gradient (no state, except Adagrad's from the start).
SHAPES = [(3, 4), (4,), (2,)]


def _start(dtype) -> list:
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def _make(library, name, options, values):
    params = [library.nn.Parameter(library.tensor(value.copy())) for value in values]
    return params, getattr(library.optim, name)(params, **options)


def _steps(library, params, optimizer, steps, dtype) -> None:
    """Steps number ``steps`` with the same gradients in either library (step k's from seed k)."""
    for step in steps:
        rng = np.random.default_rng(100 + step)
        for parameter, shape in zip(params[:2], SHAPES):
            parameter.grad = library.tensor(rng.standard_normal(shape).astype(dtype))
        optimizer.step()


def _run(library, name, options, dtype, steps=range(3)):
    params, optimizer = _make(library, name, options, _start(dtype))
    _steps(library, params, optimizer, steps, dtype)
    return params, optimizer


def _to_tapegrad(value):
    """PyTorch's state dict as a program moving to tapegrad converts it: tensor by tensor."""
    if isinstance(value, torch.Tensor):
        return tg.tensor(value.numpy())
    if isinstance(value, dict):
        return {key: _to_tapegrad(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_tapegrad(item) for item in value)
    return value


def _assert_same_entry(ours, theirs, tolerance, where="") -> None:
    """A state entry of the same kind: tensors of the same dtype and shape and values within
    ``tolerance`` (0: equal), lists entry by entry, numbers of the same type and value."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, tg.Tensor), f"{where}: {type(ours).__name__} where PyTorch has a tensor"
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch."), where
        assert tuple(ours.shape) == tuple(theirs.shape), where
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=tolerance, atol=tolerance, err_msg=where)
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), where
        for index, (mine, other) in enumerate(zip(ours, theirs)):
            _assert_same_entry(mine, other, tolerance, f"{where}[{index}]")
    else:
        assert type(ours) is type(theirs) and ours == pytest.approx(theirs, rel=tolerance), where


def _assert_same_state(ours, our_params, theirs, their_params, tolerance) -> None:
    """The two optimizers' states: keyed by the same parameters (by position), in the same
    order, with the same entries."""
    assert isinstance(ours.state, defaultdict) and ours.state.default_factory is dict
    our_index = {id(parameter): index for index, parameter in enumerate(our_params)}
    their_index = {id(parameter): index for index, parameter in enumerate(their_params)}
    assert [our_index[id(key)] for key in ours.state] == [their_index[id(key)] for key in theirs.state]
    for index, key in enumerate(their_params):
        if key not in theirs.state:
            continue
        entries, their_entries = ours.state[our_params[index]], theirs.state[key]
        assert list(entries) == list(their_entries), index
        for name, value in their_entries.items():
            _assert_same_entry(entries[name], value, tolerance, f"state[{index}][{name!r}]")


def _assert_same_params(ours, theirs, tolerance) -> None:
    for mine, other in zip(ours, theirs):
        np.testing.assert_allclose(mine.detach().numpy(), other.detach().numpy(), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_the_state_holds_pytorchs_tensors_and_values(name, options, dtype):
    our_params, ours = _make(tg, name, options, _start(dtype))
    their_params, theirs = _make(torch, name, options, _start(dtype))
    _assert_same_state(ours, our_params, theirs, their_params, 0)  # before a step: Adagrad's only
    for step in range(3):
        _steps(tg, our_params, ours, [step], dtype)
        _steps(torch, their_params, theirs, [step], dtype)
        _assert_same_state(ours, our_params, theirs, their_params, TOLERANCE[dtype])
        _assert_same_params(our_params, their_params, TOLERANCE[dtype])
    if name == "SGD":  # no state before the first step with momentum: get() gives None
        fresh_params, fresh = _make(tg, name, options, _start(dtype))
        assert fresh.state[fresh_params[0]].get("momentum_buffer") is None


@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_state_dict_has_pytorchs_layout_and_references_the_state(name, options):
    our_params, ours = _run(tg, name, options, np.float32)
    their_params, theirs = _run(torch, name, options, np.float32)
    ours.add_param_group({"params": [tg.nn.Parameter(tg.ones(2))], "lr": 0.5})
    theirs.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))], "lr": 0.5})
    mine, other = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(other) == ["state", "param_groups"]
    assert list(mine["state"]) == list(other["state"])
    for index, entries in other["state"].items():
        assert list(mine["state"][index]) == list(entries)
        for key, value in entries.items():
            _assert_same_entry(mine["state"][index][key], value, TOLERANCE[np.float32], f"{index}/{key}")
    assert len(mine["param_groups"]) == len(other["param_groups"]) == 2
    for group, their_group in zip(mine["param_groups"], other["param_groups"]):
        assert list(group) == list(their_group)
        assert group == their_group  # every option and the parameters' indices
    assert repr(ours) == repr(theirs)
    # PyTorch's state dict holds the optimizer's own dicts and tensors, not copies.
    for index, parameter in enumerate(our_params):
        if parameter in ours.state:
            assert mine["state"][index] is ours.state[parameter]


@pytest.mark.parametrize("via", ["deepcopy", "file"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_a_state_dict_saved_mid_run_continues_the_run(name, options, dtype, via, tmp_path):
    params, optimizer = _run(tg, name, options, dtype)
    if via == "deepcopy":
        saved = copy.deepcopy(optimizer.state_dict())
    else:
        tg.save(optimizer.state_dict(), tmp_path / "optimizer.pt")
        saved = tg.load(tmp_path / "optimizer.pt")
    resumed_params, resumed = _make(tg, name, options, [p.detach().numpy() for p in params])
    resumed.load_state_dict(saved)
    # The state is the new optimizer's parameters'.
    assert len(resumed.state) == len(optimizer.state)
    assert all(any(key is parameter for parameter in resumed_params) for key in resumed.state)
    _steps(tg, params, optimizer, range(3, 6), dtype)
    _steps(tg, resumed_params, resumed, range(3, 6), dtype)
    for mine, other in zip(resumed_params, params):
        np.testing.assert_array_equal(mine.detach().numpy(), other.detach().numpy())
    for index, parameter in enumerate(params):
        if parameter in optimizer.state:
            for key, value in optimizer.state[parameter].items():
                np.testing.assert_array_equal(np.asarray(resumed.state[resumed_params[index]][key]), np.asarray(value))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_a_pytorch_state_dict_continues_pytorchs_run(name, options, dtype):
    their_params, theirs = _run(torch, name, options, dtype)
    our_params, ours = _make(tg, name, options, [p.detach().numpy() for p in their_params])
    ours.load_state_dict(_to_tapegrad(theirs.state_dict()))
    _assert_same_state(ours, our_params, theirs, their_params, 0)
    assert ours.param_groups[0].keys() == theirs.param_groups[0].keys()
    _steps(torch, their_params, theirs, range(3, 6), dtype)
    _steps(tg, our_params, ours, range(3, 6), dtype)
    _assert_same_params(our_params, their_params, TOLERANCE[dtype])
    _assert_same_state(ours, our_params, theirs, their_params, TOLERANCE[dtype])


@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_loading_casts_floating_state_to_the_parameters_dtype_and_fills_old_state_dicts(name, options):
    """A float64 run's state loaded for float32 parameters: the buffers cast, ``step`` kept; a
    state dict of an older PyTorch (a number for ``step``, groups without the newer options)
    gets a tensor step and the options' defaults."""
    their_params, theirs = _run(torch, name, options, np.float64)
    state_dict = theirs.state_dict()
    older = copy.deepcopy(state_dict)
    for entries in older["state"].values():
        if "step" in entries:
            entries["step"] = float(entries["step"])
    for group in older["param_groups"]:
        for key in ("foreach", "differentiable", "maximize", "capturable", "fused", "decoupled_weight_decay"):
            group.pop(key, None)
    for loaded, ours_loaded in ((state_dict, _to_tapegrad(state_dict)), (older, _to_tapegrad(older))):
        starts = _start(np.float32)
        their_params, theirs = _make(torch, name, options, starts)
        our_params, ours = _make(tg, name, options, starts)
        theirs.load_state_dict(loaded)
        ours.load_state_dict(ours_loaded)
        _assert_same_state(ours, our_params, theirs, their_params, 0)
        for group, their_group in zip(ours.param_groups, theirs.param_groups):
            assert sorted(group) == sorted(their_group)
            assert {k: v for k, v in group.items() if k != "params"} == {
                k: v for k, v in their_group.items() if k != "params"
            }


def _add_group_cases(library, parameter, other):
    """(what is added, to an optimizer of ``parameter`` alone): each of PyTorch's refusals."""
    return [
        {"params": [other, parameter]},
        [other],
        {"params": {other}},
        {"params": [other, 3]},
        {"params": [("other", other), library.nn.Parameter(library.ones(2))]},
        {"params": [("other", other)]},
        {"params": [other * 2]},
    ]


@pytest.mark.parametrize("case", range(7))
def test_add_param_group_refuses_what_pytorch_refuses(case):
    outcomes = []
    for library in (tg, torch):
        parameter, other = library.nn.Parameter(library.ones(3)), library.nn.Parameter(library.zeros(2))
        optimizer = library.optim.SGD([parameter], lr=0.1, momentum=0.9)
        with pytest.raises((TypeError, ValueError)) as raised:
            optimizer.add_param_group(_add_group_cases(library, parameter, other)[case])
        assert len(optimizer.param_groups) == 1
        outcomes.append((type(raised.value), str(raised.value)))
    assert outcomes[0] == outcomes[1]
    if case == 0:
        assert outcomes[0] == (ValueError, "some parameters appear in more than one parameter group")


@pytest.mark.parametrize(("name", "options"), SPECS, ids=SPEC_IDS)
def test_an_added_group_takes_the_defaults_and_steps_as_pytorchs(name, options):
    runs = []
    for library in (tg, torch):
        starts = _start(np.float64)
        params = [library.nn.Parameter(library.tensor(value)) for value in starts]
        optimizer = getattr(library.optim, name)(params[1:2], **options)
        group = {"params": params[0], "lr": 0.05}
        optimizer.add_param_group(group)
        assert optimizer.param_groups[1] is group and group["params"] == [params[0]]
        _steps(library, params, optimizer, range(3), np.float64)
        runs.append((params, optimizer))
    (our_params, ours), (their_params, theirs) = runs
    assert [list(group) for group in ours.param_groups] == [list(group) for group in theirs.param_groups]
    _assert_same_state(ours, our_params, theirs, their_params, TOLERANCE[np.float64])
    _assert_same_params(our_params, their_params, TOLERANCE[np.float64])


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_clears_or_zeroes_the_gradients(set_to_none):
    for library in (tg, torch):
        parameter = library.nn.Parameter(library.ones(3))
        optimizer = library.optim.SGD([parameter], lr=0.1)
        (parameter * parameter).sum().backward(create_graph=True)
        grad = parameter.grad
        optimizer.zero_grad(set_to_none=set_to_none)
        if set_to_none:
            assert parameter.grad is None, library.__name__
        else:
            assert parameter.grad is grad and not grad.requires_grad and grad.grad_fn is None, library.__name__
            assert grad.tolist() == [0.0, 0.0, 0.0]


def test_lbfgs_state_has_pytorchs_entries():
    states = []
    for library in (tg, torch):
        x = library.nn.Parameter(library.tensor(np.array([-1.2, 1.0, -0.5, 0.8])))
        optimizer = library.optim.LBFGS([x], max_iter=4, history_size=3)

        def closure(x=x, optimizer=optimizer):
            optimizer.zero_grad()
            loss = (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
            loss.backward()
            return loss

        for _ in range(2):
            optimizer.step(closure)
        assert list(optimizer.state) == [x]
        states.append(optimizer.state[x])
    ours, theirs = states
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        if key != "t":  # PyTorch keeps lr itself, an int here; tapegrad a float
            _assert_same_entry(ours[key], value, 1e-9, key)


def test_sgd_momentum_of_a_parameter_listed_twice_is_pytorch_s():
    """Tied weights gathered from two modules list one parameter twice: PyTorch reads its
    buffers before the step, so the first step starts two buffers (each the gradient) and the
    later ones update the one buffer twice. The second entry updated the first one's buffer."""
    import warnings

    p = tg.nn.Parameter(tg.tensor([1.0, 2.0], dtype=tg.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer = tg.optim.SGD([p, p], lr=0.1, momentum=0.9)
    for _ in range(2):
        p.grad = tg.ones(2, dtype=tg.float64)
        optimizer.step()
    # step 1: two fresh buffers of 1, p -= 0.1 twice; step 2: 1.9 then 2.71, p -= 0.19 + 0.271
    np.testing.assert_allclose(p.detach().numpy(), [0.339, 1.339], rtol=1e-12)
    np.testing.assert_allclose(optimizer.state[p]["momentum_buffer"].numpy(), [2.71, 2.71], rtol=1e-12)


OPTIMIZERS = [
    ("Adamax", {}),
    ("Adamax", {"weight_decay": 0.1, "maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.1, "weight_decay": 0.05, "decoupled_weight_decay": True}),
]


def _trained(m, name, options, dtype="float64"):
    rng = np.random.default_rng(0)
    weight = m.nn.Parameter(m.tensor(rng.standard_normal((3, 4)), dtype=getattr(m, dtype)))
    x = m.tensor(rng.standard_normal((8, 3)), dtype=getattr(m, dtype))
    optimizer = getattr(m.optim, name)([weight], **options)
    for _ in range(12):  # RAdam's rectified steps start at its 6th
        optimizer.zero_grad()
        ((x @ weight).tanh() ** 2).sum().backward()
        optimizer.step()
    return weight.detach().numpy(), sorted(optimizer.state[weight])


@pytest.mark.parametrize("name,options", OPTIMIZERS)
def test_adamax_nadam_radam_train_as_pytorch(name, options):
    weight, keys = _trained(tg, name, options)
    assert np.isfinite(weight).all()
    torch = pytest.importorskip("torch")
    expected, expected_keys = _trained(torch, name, options)
    np.testing.assert_allclose(weight, expected, rtol=1e-12, atol=1e-14)
    assert keys == expected_keys


def test_adamax_first_step_is_the_learning_rate_times_the_gradient_sign():
    weight = tg.nn.Parameter(tg.tensor([1.0, -2.0], dtype=tg.float64))
    optimizer = tg.optim.Adamax([weight], lr=0.1)
    weight.grad = tg.tensor([3.0, -0.5], dtype=tg.float64)
    optimizer.step()  # exp_avg = 0.1 g, exp_inf = |g| + eps, bias correction 0.1: lr * sign(g)
    np.testing.assert_allclose(weight.detach().numpy(), [0.9, -1.9], rtol=1e-7)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 0"):
        tg.optim.NAdam([weight], betas=(1.5, 0.9))
