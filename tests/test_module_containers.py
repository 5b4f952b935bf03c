"""Module attribute assignment and the containers (Sequential, ModuleList, ModuleDict,
ParameterList) behave as PyTorch's: names, order, kinds, and the errors raised."""

from collections import OrderedDict

import numpy as np
import pytest

import tapegrad as tg


def _names(module) -> list:
    return [name for name, _ in module.named_parameters()]


def _kinds(container) -> list:
    return [type(module).__name__ for module in container]


def _error(function, *args):
    """(exception class name, message) of ``function(*args)``, or None when it returns."""
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 - the class is what is compared
        return type(error).__name__, str(error)
    return None


# -- Sequential -------------------------------------------------------------------------------


def test_sequential_from_ordered_dict_names_children_by_its_keys():
    layers = OrderedDict([("fc1", tg.nn.Linear(4, 8)), ("act", tg.nn.ReLU()), ("fc2", tg.nn.Linear(8, 2))])
    model = tg.nn.Sequential(layers)
    assert list(model._modules) == ["fc1", "act", "fc2"] and model.fc1 is layers["fc1"]
    assert list(model.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    x = tg.randn(3, 4)
    expected = layers["fc2"](layers["act"](layers["fc1"](x)))
    assert model(x).shape == (3, 2)
    np.testing.assert_allclose(model(x).detach().numpy(), expected.detach().numpy())


def test_sequential_names_match_pytorch():
    torch = pytest.importorskip("torch")
    names = {}
    for lib in (torch, tg):
        model = lib.nn.Sequential(OrderedDict([("conv", lib.nn.Linear(2, 3)), ("out", lib.nn.Linear(3, 1))]))
        names[lib] = (list(model.state_dict()), _names(model[0:1]), len(model))
    assert names[tg] == names[torch]


def test_sequential_rejects_an_element_that_is_not_a_module_as_pytorch():
    torch = pytest.importorskip("torch")
    ours = _error(tg.nn.Sequential, tg.nn.Linear(2, 2), 5)
    assert ours == _error(torch.nn.Sequential, torch.nn.Linear(2, 2), 5)
    assert ours == ("TypeError", "int is not a Module subclass")
    assert _error(tg.nn.Sequential, {"a": tg.nn.ReLU()})[0] == "TypeError"  # only an OrderedDict is named


def test_sequential_slice_is_a_callable_sequential_keeping_the_names():
    model = tg.nn.Sequential(
        OrderedDict([("fc1", tg.nn.Linear(4, 8)), ("act", tg.nn.ReLU()), ("fc2", tg.nn.Linear(8, 2))])
    )
    head = model[0:2]
    assert type(head) is tg.nn.Sequential and list(head._modules) == ["fc1", "act"]
    assert head.fc1 is model.fc1 and head(tg.ones(1, 4)).shape == (1, 8)
    assert model[-1] is model.fc2
    with pytest.raises(IndexError, match="index 3 is out of range"):
        model[3]


def test_sequential_set_delete_and_pop_renumber_as_pytorch():
    model = tg.nn.Sequential(
        OrderedDict([("fc1", tg.nn.Linear(4, 8)), ("act", tg.nn.ReLU()), ("fc2", tg.nn.Linear(8, 2))])
    )
    model[1] = tg.nn.Tanh()
    assert list(model._modules) == ["fc1", "act", "fc2"] and isinstance(model.act, tg.nn.Tanh)
    with pytest.raises(
        TypeError, match=r"cannot assign 'int' as child module 'act' \(torch.nn.Module or None expected\)"
    ):
        model[1] = 5
    fc1 = model.pop(0)
    assert isinstance(fc1, tg.nn.Linear) and fc1.in_features == 4
    assert list(model._modules) == ["0", "1"] and _names(model) == ["1.weight", "1.bias"]
    assert not hasattr(model, "fc1") and not hasattr(model, "fc2") and model[1] is getattr(model, "1")
    del model[0:1]
    assert list(model._modules) == ["0"] and model(tg.ones(1, 8)).shape == (1, 2)


def test_sequential_append_insert_extend_add_and_mul():
    relu, tanh, sigmoid = tg.nn.ReLU(), tg.nn.Tanh(), tg.nn.Sigmoid()
    model = tg.nn.Sequential(relu).append(tanh)
    assert model.insert(1, sigmoid) is model and list(model) == [relu, sigmoid, tanh]
    assert model.insert(-1, relu) is model and _kinds(model) == ["ReLU", "Sigmoid", "ReLU", "Tanh"]
    assert getattr(model, "3") is tanh and list(model._modules) == ["0", "1", "2", "3"]
    with pytest.raises(IndexError, match="Index out of range: 9"):
        model.insert(9, relu)
    with pytest.raises(AssertionError, match="module should be of type"):
        model.insert(0, 3)
    assert _kinds(tg.nn.Sequential(relu).extend([tanh, sigmoid])) == ["ReLU", "Tanh", "Sigmoid"]
    joined = tg.nn.Sequential(relu) + tg.nn.Sequential(tanh)
    assert list(joined._modules) == ["0", "1"] and list(joined) == [relu, tanh]
    with pytest.raises(ValueError, match="add operator supports only objects of Sequential class"):
        tg.nn.Sequential(relu) + [tanh]
    assert list(tg.nn.Sequential(relu, tanh) * 2) == [relu, tanh, relu, tanh]
    assert list(2 * tg.nn.Sequential(relu)) == [relu, relu]
    with pytest.raises(ValueError, match="Non-positive multiplication factor 0"):
        tg.nn.Sequential(relu) * 0
    grown = tg.nn.Sequential(relu)
    grown += tg.nn.Sequential(tanh)
    grown *= 2
    assert list(grown) == [relu, tanh, relu, tanh]


# -- assignment to a registered name ------------------------------------------------------------


def test_assigning_a_parameter_to_a_parameter_name_keeps_its_place():
    layer = tg.nn.Linear(2, 2)
    replacement = tg.nn.Parameter(tg.zeros(2, 2))
    layer.weight = replacement
    assert _names(layer) == ["weight", "bias"] and layer.weight is replacement
    assert list(layer.state_dict()) == ["weight", "bias"]


def test_assigning_a_plain_tensor_to_a_parameter_name_raises_and_keeps_the_parameter():
    layer = tg.nn.Linear(2, 2)
    weight = layer.weight
    message = f"cannot assign '{tg.ones(2, 2).type()}' as parameter 'weight' (torch.nn.Parameter or None expected)"
    with pytest.raises(TypeError) as raised:
        layer.weight = tg.ones(2, 2)
    assert str(raised.value) == message and "FloatTensor" in message
    with pytest.raises(TypeError, match=r"cannot assign 'int' as parameter 'weight'"):
        layer.weight = 3
    assert layer.weight is weight and _names(layer) == ["weight", "bias"]
    layer.bias = None  # allowed: the slot stays, empty
    assert layer.bias is None and list(layer._parameters) == ["weight", "bias"] and _names(layer) == ["weight"]
    layer.bias = tg.nn.Parameter(tg.ones(2))
    assert _names(layer) == ["weight", "bias"]


def test_buffer_names_take_tensors_or_none_only():
    norm = tg.nn.BatchNorm1d(2)
    norm.running_mean = tg.ones(2)
    assert list(norm._buffers) == ["running_mean", "running_var", "num_batches_tracked"]
    assert norm.running_mean.tolist() == [1.0, 1.0] and list(norm.state_dict())[2] == "running_mean"
    with pytest.raises(TypeError, match=r"cannot assign 'int' as buffer 'running_mean' \(torch.nn.Buffer"):
        norm.running_mean = 5
    assert "running_mean" in norm._buffers and norm.running_mean.tolist() == [1.0, 1.0]
    norm.running_var = tg.nn.Parameter(tg.ones(2))  # a Parameter turns the name into a parameter
    assert "running_var" not in norm._buffers and _names(norm) == ["weight", "bias", "running_var"]


def test_child_module_names_take_modules_or_none_only():
    model = tg.nn.Sequential(OrderedDict([("fc1", tg.nn.Linear(2, 2)), ("act", tg.nn.ReLU())]))
    with pytest.raises(TypeError) as raised:
        model.fc1 = 5
    assert str(raised.value) == "cannot assign 'int' as child module 'fc1' (torch.nn.Module or None expected)"
    assert isinstance(model.fc1, tg.nn.Linear)
    model.fc1 = None
    assert list(model._modules) == ["fc1", "act"] and model.fc1 is None and _names(model) == []


def test_assignment_errors_match_pytorch():
    torch = pytest.importorskip("torch")
    errors = {}
    for lib in (torch, tg):
        layer, norm = lib.nn.Linear(2, 2), lib.nn.BatchNorm1d(2)
        model = lib.nn.Sequential(OrderedDict([("fc1", lib.nn.Linear(2, 2))]))
        errors[lib] = [
            _error(setattr, layer, "weight", [1.0]),
            _error(setattr, norm, "running_var", "x"),
            _error(setattr, model, "fc1", 2.5),
            _error(model.add_module, "x", 1),
        ]
    assert errors[tg] == errors[torch] and all(error is not None for error in errors[tg])


def test_parameters_and_modules_before_init_raise_plain_attributes_do_not():
    class Early(tg.nn.Module):
        def __init__(self, value):
            self.early = value
            super().__init__()

    assert Early(3).early == 3
    with pytest.raises(AttributeError, match=r"cannot assign parameters before Module.__init__\(\) call"):
        Early(tg.nn.Parameter(tg.ones(1)))
    with pytest.raises(AttributeError, match=r"cannot assign module before Module.__init__\(\) call"):
        Early(tg.nn.ReLU())


# -- ModuleList ---------------------------------------------------------------------------------


def test_module_list_insert_shifts_the_later_modules():
    relu, tanh, sigmoid = tg.nn.ReLU(), tg.nn.Tanh(), tg.nn.Sigmoid()
    modules = tg.nn.ModuleList([relu, tanh])
    modules.insert(0, sigmoid)
    assert list(modules) == [sigmoid, relu, tanh] and list(modules._modules) == ["0", "1", "2"]
    assert getattr(modules, "0") is sigmoid and getattr(modules, "2") is tanh
    modules.insert(3, relu)
    assert list(modules) == [sigmoid, relu, tanh, relu]


def test_module_list_delete_pop_set_add():
    layers = [tg.nn.Linear(1, 1) for _ in range(4)]
    modules = tg.nn.ModuleList(layers)
    assert modules.pop(1) is layers[1] and list(modules) == [layers[0], layers[2], layers[3]]
    del modules[::2]
    assert list(modules) == [layers[2]] and list(modules._modules) == ["0"] and not hasattr(modules, "2")
    assert _names(modules) == ["0.weight", "0.bias"]
    modules[0] = layers[0]
    assert modules[-1] is layers[0]
    with pytest.raises(IndexError, match="index 1 is out of range"):
        modules[1] = layers[1]
    modules += [layers[1]]
    combined = modules + [layers[3]]
    assert type(combined) is tg.nn.ModuleList and list(combined) == [layers[0], layers[1], layers[3]]
    assert len(modules) == 2 and type(modules[1:]) is tg.nn.ModuleList
    with pytest.raises(TypeError, match="ModuleList.extend should be called with an iterable, but got int"):
        modules.extend(3)


def test_module_list_operations_match_pytorch():
    torch = pytest.importorskip("torch")
    seen = {}
    for lib in (torch, tg):
        nn = lib.nn
        modules = nn.ModuleList([nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.GELU()])
        modules.insert(1, nn.SiLU())
        steps = [_kinds(modules)]
        del modules[-2]
        steps.append(_kinds(modules))
        steps.append(type(modules.pop(0)).__name__)
        steps.append((_kinds(modules), list(modules._modules)))
        steps.append(_error(modules.__getitem__, 7))
        steps.append(_error(modules.__setitem__, 0, 5))
        steps.append(repr(nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()])))
        seen[lib] = steps
    assert seen[tg] == seen[torch]


# -- ModuleDict, ParameterList ---------------------------------------------------------------------


def test_module_dict_pop_clear_and_update_checks():
    relu, tanh = tg.nn.ReLU(), tg.nn.Tanh()
    modules = tg.nn.ModuleDict({"a": relu, "b": tanh})
    assert modules.pop("a") is relu and list(modules) == ["b"] and not hasattr(modules, "a")
    modules.clear()
    assert len(modules) == 0 and not hasattr(modules, "b")
    with pytest.raises(ValueError, match="ModuleDict update sequence element #0 has length 3; 2 is required"):
        modules.update([("x", relu, 1)])
    with pytest.raises(TypeError, match="ModuleDict.update should be called with an iterable"):
        modules.update(5)
    modules.update([["y", tanh]])
    assert modules["y"] is tanh


def test_parameter_list_slice_setitem_extend_and_call():
    params = tg.nn.ParameterList([tg.ones(2), tg.zeros(3)])
    head = params[0:1]
    assert type(head) is tg.nn.ParameterList and len(head) == 1 and head[0] is params[0]
    params[0] = tg.ones(4)
    assert isinstance(params[0], tg.nn.Parameter) and params[0].shape == (4,) and params[-1].shape == (3,)
    with pytest.raises(IndexError, match="index 2 is out of range"):
        params[2]
    with pytest.raises(TypeError, match="ParameterList.extend should be called with an iterable, but got Tensor"):
        params.extend(tg.ones(2))  # a tensor is not unpacked into rows
    params += [tg.ones(1)]
    assert len(params) == 3 and _names(params) == ["0", "1", "2"]
    with pytest.raises(RuntimeError, match="ParameterList should not be called."):
        params(tg.ones(1))


def test_parameter_list_keeps_other_objects_unregistered():
    """PyTorch's: an object that is not a tensor is kept as it is, not a parameter (a number
    was made a Parameter of that many zeros, registered and saved)."""
    params = tg.nn.ParameterList([tg.ones(2)])
    params.append(3)
    params.append(tg.zeros(1))
    assert (
        len(params) == 3 and params[1] == 3 and [type(p).__name__ for p in params] == ["Parameter", "int", "Parameter"]
    )
    assert _names(params) == ["0", "2"] and list(params.state_dict()) == ["0", "2"]
    assert "(1): Object of type: int" in repr(params)
    assert params[1:][0] == 3


def test_load_state_dict_assign_takes_the_tensors_themselves():
    """``assign=True``: the state dict's tensors become the parameters and buffers (their dtype
    and memory), each parameter keeping its requires_grad; it copied into the old ones."""
    layer = tg.nn.Linear(2, 1)
    bn = tg.nn.BatchNorm1d(1)
    model = tg.nn.Sequential(layer, bn)
    state = {k: v.detach().double() for k, v in model.state_dict().items()}
    model.load_state_dict(state, assign=True)
    assert layer.weight.dtype == tg.float64 and layer.weight.requires_grad
    assert isinstance(layer.weight, tg.nn.Parameter) and bn.running_mean.dtype == tg.float64
    state["0.weight"][0, 0] = 7.0  # shared memory
    assert layer.weight[0, 0].item() == 7.0
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]


def _load_outcome(m, action):
    """(exception class and message, or the result) of ``action``, PyTorch's names as tapegrad's."""
    try:
        return repr(action())
    except Exception as error:  # noqa: BLE001 - the class is part of the outcome
        return f"{type(error).__name__}: {str(error).replace(m.__name__, 'tapegrad')}"


def _state_dict_programs(m):
    """What load_state_dict leaves and raises: a failed load still copies what fits (PyTorch
    loads entry by entry before it raises), a subclass renames old keys in its own
    ``_load_from_state_dict``, and ``get_extra_state`` travels with the tensors."""
    nn, results = m.nn, []
    model = nn.Sequential(nn.Linear(1, 1), nn.Linear(1, 1))
    bad = {"0.weight": m.ones(1, 1), "0.bias": m.ones(2), "1.weight": m.ones(1, 1), "1.bias": m.ones(1)}
    results.append(_load_outcome(m, lambda: model.load_state_dict(bad, strict=False)))
    results.append((model[0].weight.item(), model[1].weight.item(), model[1].bias.item()))
    partial = {"0.weight": m.full((1, 1), 2.0), "0.bias": m.full((1,), 2.0), "junk": m.ones(1)}
    results.append(_load_outcome(m, lambda: model.load_state_dict(partial)))
    results.append(model[0].weight.item())
    results.append(_load_outcome(m, lambda: model.load_state_dict([1, 2])))
    results.append(_load_outcome(m, lambda: model.load_state_dict({**bad, "0.bias": [1.0]}, strict=False)))

    class Renaming(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(1, 1)

        def _load_from_state_dict(self, state_dict, prefix, *args):
            if prefix + "old_weight" in state_dict:
                state_dict[prefix + "layer.weight"] = state_dict.pop(prefix + "old_weight")
            super()._load_from_state_dict(state_dict, prefix, *args)

    renaming = nn.Sequential(Renaming())
    old = {"0.old_weight": m.full((1, 1), 3.0), "0.layer.bias": m.zeros(1)}
    results.append(_load_outcome(m, lambda: renaming.load_state_dict(old)))
    results.append(renaming[0].layer.weight.item())

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(1, 1)
            self.count = 5

        def get_extra_state(self):
            return {"count": self.count}

        def set_extra_state(self, state):
            self.count = state["count"]

    saved, loaded = Counting(), Counting()
    saved.count = 9
    results.append(list(saved.state_dict()))
    results.append(_load_outcome(m, lambda: loaded.load_state_dict(saved.state_dict())))
    results.append(loaded.count)
    results.append(
        _load_outcome(m, lambda: loaded.load_state_dict({"layer.weight": m.ones(1, 1), "layer.bias": m.ones(1)}))
    )
    return results


def test_load_state_dict_follows_pytorch_s_protocol():
    ours = _state_dict_programs(tg)
    assert ours[1] == (1.0, 1.0, 1.0) and ours[3] == 2.0  # loaded what fits, then raised
    assert ours[7] == 3.0 and ours[10] == 9  # renamed by the override; the extra state restored
    assert ours[4] == "TypeError: Expected state_dict to be dict-like, got <class 'list'>."
    torch = pytest.importorskip("torch")
    assert ours == _state_dict_programs(torch)


def _surgery_programs(m):
    """Changes made to a module's registries directly, as code swaps a layer
    (``model._modules["fc"] = ...``): each must be what the module's attributes and forward
    see, as in PyTorch, whose attributes are read from the registries."""
    import copy

    nn, results = m.nn, []

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.fc(x))

    layer = nn.Linear(2, 2)
    layer._parameters["weight"] = nn.Parameter(m.zeros(2, 2))
    results.append((layer(m.ones(1, 2)) - layer.bias).abs().sum().item())
    net = Net()
    with m.no_grad():
        net.fc.weight.copy_(m.eye(2))
        net.fc.bias.zero_()
    net._modules["act"] = nn.Tanh()
    results.append((type(net.act).__name__, net(-m.ones(1, 2)).max().item() < 0.0))  # (ReLU's: 0)
    del layer._parameters["bias"]
    results.append(getattr(layer, "bias", "gone"))
    layer.register_buffer("running", m.ones(1))
    layer._buffers["running"] = m.full((1,), 3.0)
    results.append(layer.running.item())
    sequential = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    sequential._modules["1"] = nn.Sigmoid()
    results.append(type(sequential[1]).__name__)
    copied = copy.deepcopy(net)
    copied._modules["act"] = nn.ReLU()  # the copy's registry is bound to the copy
    results.append((type(copied.act).__name__, type(net.act).__name__))
    del copied.fc
    results.append(("fc" in copied._modules, hasattr(copied, "fc")))
    other = Net()
    other._modules.pop("act")
    other._modules.update({"fc": nn.Identity()})
    results.append((hasattr(other, "act"), type(other.fc).__name__))
    fresh = nn.Linear(3, 4)  # copies of a registry are plain dicts, bound to nothing
    copied, merged = fresh._parameters.copy(), fresh._parameters | {"extra": None}
    copied.pop("weight")
    results.append((list(copied), list(merged), fresh.weight is not None, list({"a": 1} | fresh._parameters)))
    return results


def test_changes_to_the_registries_reach_the_attributes():
    ours = _surgery_programs(tg)
    assert ours[0] == 0.0 and ours[1] == ("Tanh", True) and ours[4] == "Sigmoid"
    torch = pytest.importorskip("torch")
    assert [str(r).replace("tapegrad", "torch") for r in ours] == [str(r) for r in _surgery_programs(torch)]


def test_named_modules_skips_the_modules_in_a_given_memo():
    # (the memo held ids: a caller's set of modules skipped none of them)
    shared = tg.nn.Linear(1, 1)
    model = tg.nn.Sequential(tg.nn.Sequential(shared, tg.nn.ReLU()), shared)
    memo = {shared}
    assert [name for name, _ in model.named_modules(memo=memo)] == ["", "0", "0.1"]
    assert model in memo and len(memo) == 4


def test_loading_a_state_dict_counts_as_an_in_place_change():
    """PyTorch's load_state_dict copies into the parameters in place: a backward that saved the
    old values then raises. The values were written without a version, and the backward used
    the loaded ones silently."""
    layer = tg.nn.Linear(2, 1, bias=False)
    loss = layer(tg.ones(1, 2, requires_grad=True)).sum()  # (the input's gradient reads the weight)
    version = layer.weight._version
    layer.load_state_dict({"weight": tg.full((1, 2), 5.0)})
    assert layer.weight._version == version + 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_a_cast_to_the_dtype_a_module_has_keeps_its_tensors():
    """``model.float()`` of a float32 model copied every tensor: weights tied by memory
    (``Parameter(encoder.weight.data.t())``) came apart, and an earlier state_dict stopped
    aliasing the parameters."""
    encoder, decoder = tg.nn.Linear(3, 2), tg.nn.Linear(2, 3, bias=False)
    decoder.weight = tg.nn.Parameter(encoder.weight.data.t())
    model = tg.nn.Sequential(encoder, decoder)
    state = model.state_dict()
    weight = encoder.weight
    model.float()
    model.to(tg.float32)
    assert encoder.weight is weight
    with tg.no_grad():
        encoder.weight.mul_(2)
    np.testing.assert_array_equal(decoder.weight.detach().numpy(), encoder.weight.detach().numpy().T)
    np.testing.assert_array_equal(state["0.weight"].numpy(), encoder.weight.detach().numpy())


def test_a_registry_replaced_by_a_dict_is_what_forward_reads():
    """learn2learn's ``clone_module``/``update_module`` give a clone a copy of ``_parameters``
    and put the fast weights in it. Kept as a plain dict, its entries never reached the
    attributes forward reads: the inner step was ignored (output 1.0 where PyTorch's is 0.5)."""
    layer = tg.nn.Linear(1, 1, bias=False)
    with tg.no_grad():
        layer.weight.fill_(1.0)
    clone = layer.__new__(type(layer))
    clone.__dict__ = layer.__dict__.copy()
    clone._parameters = clone._parameters.copy()
    clone._buffers = clone._buffers.copy()
    clone._modules = clone._modules.copy()
    clone._parameters["weight"] = layer._parameters["weight"].clone()
    clone._parameters["weight"] = clone._parameters["weight"] - 0.5 * tg.ones(1, 1)
    out = clone(tg.ones(1, 1))
    assert out.item() == 0.5 and layer(tg.ones(1, 1)).item() == 1.0
    out.sum().backward()
    assert layer.weight.grad.item() == 1.0
    swapped = tg.nn.Linear(2, 1)
    swapped._parameters = OrderedDict(weight=tg.nn.Parameter(tg.zeros(1, 2)))
    assert [name for name, _ in swapped.named_parameters()] == ["weight"] and not hasattr(swapped, "bias")
    assert swapped.weight is swapped._parameters["weight"]


def test_a_state_dict_carries_each_modules_format_version():
    """Migration code reads ``local_metadata["version"]`` (``if version is None or version <
    2: convert``); with none recorded, a current checkpoint was converted again, silently (here
    transposed). And BatchNorm's current state without num_batches_tracked is a missing key, as
    in PyTorch; a dict without ``_metadata`` (rebuilt by hand) still loads without it."""

    class Layer(tg.nn.Module):
        _version = 2  # version 1 stored ``w`` transposed

        def __init__(self):
            super().__init__()
            self.w = tg.nn.Parameter(tg.tensor([[1.0, 2.0], [3.0, 4.0]]))

        def _load_from_state_dict(self, state, prefix, local_metadata, *args):
            if local_metadata.get("version") is None or local_metadata["version"] < 2:
                state[prefix + "w"] = state[prefix + "w"].t()
            super()._load_from_state_dict(state, prefix, local_metadata, *args)

    source, target = tg.nn.Sequential(Layer()), tg.nn.Sequential(Layer())
    state = source.state_dict()
    assert dict(state._metadata) == {"": {"version": 1}, "0": {"version": 2}}
    target.load_state_dict(state)
    assert target[0].w.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    norm = tg.nn.BatchNorm1d(2)
    current = norm.state_dict()
    del current["num_batches_tracked"]
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "num_batches_tracked"'):
        norm.load_state_dict(current)
    norm.load_state_dict({key: value for key, value in current.items()})
