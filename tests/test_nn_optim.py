"""tapegrad.nn and tapegrad.optim train like torch.nn and torch.optim from the same start."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import tapegrad as tg


def _models(torch):
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    ours = tg.nn.Sequential(tg.nn.Linear(6, 8), tg.nn.Tanh(), tg.nn.Linear(8, 3))
    ours.load_state_dict({name: value.detach().numpy() for name, value in theirs.state_dict().items()})
    return ours, theirs


OPTIMIZERS = {
    "sgd": lambda m, p: m.optim.SGD(p, lr=0.1),
    "sgd-momentum-nesterov-decay": lambda m, p: m.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "adam": lambda m, p: m.optim.Adam(p, lr=0.01),
    "adam-amsgrad-decay": lambda m, p: m.optim.Adam(p, lr=0.01, weight_decay=1e-2, amsgrad=True),
    "adamw": lambda m, p: m.optim.AdamW(p, lr=0.01),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("loss_name", ["cross_entropy", "mse"])
def test_training_steps_match_pytorch(name, loss_name):
    torch = pytest.importorskip("torch")
    ours, theirs = _models(torch)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    labels = rng.integers(0, 3, 16)
    targets = rng.standard_normal((16, 3)).astype(np.float32)
    losses = {}
    for module, model in ((tg, ours), (torch, theirs)):
        optimizer = OPTIMIZERS[name](module, model.parameters())
        scheduler = module.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
        history = []
        for _ in range(12):
            optimizer.zero_grad()
            out = model(module.tensor(x))
            if loss_name == "cross_entropy":
                loss = module.nn.CrossEntropyLoss()(out, module.tensor(labels))
            else:
                loss = module.nn.MSELoss()(out, module.tensor(targets))
            loss.backward()
            optimizer.step()
            scheduler.step()
            history.append(loss.item())
        losses[module.__name__] = history
    np.testing.assert_allclose(losses["tapegrad"], losses["torch"], rtol=2e-5, atol=2e-6)
    for (name_ours, p_ours), (name_theirs, p_theirs) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name_ours == name_theirs
        np.testing.assert_allclose(p_ours.detach().numpy(), p_theirs.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda p: tg.optim.Adam(p, lr=0.01),
        lambda p: tg.optim.Adam(p, lr=0.01, weight_decay=1e-2, amsgrad=True),
        lambda p: tg.optim.AdamW(p, lr=0.01, betas=(0.8, 0.99)),
    ],
    ids=["adam", "amsgrad-l2", "adamw"],
)
def test_the_compiled_adam_update_gives_numpy_updates_bits(make, dtype):
    """Adam runs one compiled loop for a C-ordered parameter and numpy's calls for others: the
    same arithmetic, so the same bits, NaN and infinity included."""
    rng = np.random.default_rng(3)
    start = rng.standard_normal((5, 7)).astype(dtype)
    compiled = tg.nn.Parameter(tg.tensor(start))
    by_numpy = tg.nn.Parameter(tg.tensor(start))
    by_numpy._data = np.asfortranarray(by_numpy._data)  # not C-ordered: numpy's path
    assert by_numpy._data.flags.f_contiguous and not by_numpy._data.flags.c_contiguous
    optimizers = make([compiled]), make([by_numpy])
    for step in range(6):
        gradient = (rng.standard_normal((5, 7)) * 10.0 ** rng.integers(-8, 3, (5, 7))).astype(dtype)
        if step == 3:
            gradient[0, :3] = (np.nan, np.inf, -np.inf)
        compiled.grad = tg.tensor(gradient)
        by_numpy.grad = tg.tensor(np.asfortranarray(gradient))
        for optimizer in optimizers:
            optimizer.step()
        np.testing.assert_array_equal(compiled._data, by_numpy._data)
        assert compiled._data.dtype == dtype
    for key, value in optimizers[0].state[compiled].items():
        np.testing.assert_array_equal(value.numpy(), optimizers[1].state[by_numpy][key].numpy(), err_msg=key)


def test_module_protocol():
    model = tg.nn.Sequential(tg.nn.Linear(3, 4), tg.nn.ReLU(), tg.nn.Dropout(0.5), tg.nn.Linear(4, 2, bias=False))
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "3.weight"]
    assert all(p.requires_grad and p.is_leaf for p in model.parameters())
    assert repr(model).splitlines()[1] == "  (0): Linear(in_features=3, out_features=4, bias=True)"
    model.eval()
    assert not model[2].training
    x = tg.randn(5, 3)
    assert model(x).allclose(model(x))  # dropout is off in eval mode
    model.train()
    assert model[2].training


def test_linear_initialisation_bounds_follow_pytorch():
    layer = tg.nn.Linear(100, 50)
    bound = 1 / np.sqrt(100)
    assert np.abs(layer.weight.detach().numpy()).max() <= bound and np.abs(layer.bias.detach().numpy()).max() <= bound
    assert layer.weight.detach().numpy().std() > bound / 3


def test_save_and_load_state_dicts_without_pickle(tmp_path):
    model = tg.nn.Linear(3, 2)
    path = tmp_path / "model.npz"
    tg.save(model.state_dict(), str(path))
    restored = tg.nn.Linear(3, 2)
    restored.load_state_dict(tg.load(str(path)))
    assert restored.weight.equal(model.weight.detach()) and restored.bias.equal(model.bias.detach())
    tg.save(tg.arange(3.0), str(tmp_path / "t.npz"))
    assert tg.load(str(tmp_path / "t.npz")).tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(TypeError):
        tg.save({"model": model}, str(tmp_path / "bad.npz"))


def test_load_takes_arrays_of_either_byte_order(tmp_path):
    # numpy writes a big-endian array as it is; wrapped as it was, its tensor failed in numba's
    # typing (softmax), with a KeyError in a backward, or as float64 against float64 in a product.
    values = np.arange(6.0).reshape(2, 3)
    np.savez(tmp_path / "single.npz", __tensor__=values.astype(">f8"))
    np.savez(tmp_path / "state.npz", weight=values.astype(">f4"))
    single = tg.load(str(tmp_path / "single.npz")).requires_grad_()
    state = tg.load(str(tmp_path / "state.npz"))
    assert single.dtype == tg.float64 and state["weight"].dtype == tg.float32
    single.softmax(1).sum().backward()
    np.testing.assert_allclose(single.grad.numpy(), 0.0, atol=1e-15)
    assert (state["weight"].double() @ single.t()).tolist() == (values @ values.T).tolist()
    with pytest.raises(IsADirectoryError):
        tg.load(str(tmp_path))
    # a plain .npz of arrays (the first versions' format) converts other dtypes as tensors do
    np.savez(tmp_path / "plain.npz", counts=np.arange(3, dtype=np.uint32), half=np.ones(2, np.float16))
    plain = tg.load(str(tmp_path / "plain.npz"))
    assert (plain["counts"].dtype, plain["half"].dtype) == (tg.int64, tg.float32)


def _train(model, optimizer, steps, x):
    for _ in range(steps):
        optimizer.zero_grad()
        (model(x) ** 2).mean().backward()
        optimizer.step()


def test_a_checkpoint_resumes_training_exactly_without_pickle(tmp_path):
    """PyTorch's checkpoint recipe: epoch, model and optimizer state dicts and the loss in one
    dict. Training resumed from the file takes the same steps as training that never stopped."""
    tg.manual_seed(0)
    x = tg.randn(8, 4)
    model = tg.nn.Sequential(tg.nn.Linear(4, 5), tg.nn.Tanh(), tg.nn.Linear(5, 1))
    optimizer = tg.optim.Adam(model.parameters(), lr=0.05, amsgrad=True)
    _train(model, optimizer, 3, x)
    path = tmp_path / "checkpoint.pt"
    tg.save(
        {"epoch": 3, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "loss": 0.25, "note": None},
        path,
    )
    with np.load(path, allow_pickle=False) as archive:  # arrays and JSON only: nothing to unpickle
        assert all(archive[name].dtype != object for name in archive.files)
    checkpoint = tg.load(path)
    assert type(checkpoint) is dict and checkpoint["epoch"] == 3 and checkpoint["loss"] == 0.25
    assert checkpoint["note"] is None and type(checkpoint["model"]) is OrderedDict
    assert checkpoint["optimizer"]["param_groups"][0]["params"] == [0, 1, 2, 3]
    assert checkpoint["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    resumed = tg.nn.Sequential(tg.nn.Linear(4, 5), tg.nn.Tanh(), tg.nn.Linear(5, 1))
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer = tg.optim.Adam(resumed.parameters(), lr=0.05, amsgrad=True)
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    _train(model, optimizer, 4, x)
    _train(resumed, resumed_optimizer, 4, x)
    for ours, theirs in zip(model.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())


def test_save_keeps_containers_keys_and_kinds(tmp_path):
    saved = OrderedDict(
        [
            (0, [1, 2.5, float("inf"), "s", True, None]),
            ("t", (tg.ones(2), np.arange(3), np.float32(1.5))),
            ((1, "k"), {"nested": {"deep": tg.zeros(1, dtype=tg.float64)}}),
        ]
    )
    tg.save(saved, tmp_path / "c.npz")
    back = tg.load(tmp_path / "c.npz")
    assert type(back) is OrderedDict and list(back) == [0, "t", (1, "k")]
    assert back[0] == [1, 2.5, float("inf"), "s", True, None]
    tensor, array, scalar = back["t"]
    assert isinstance(tensor, tg.Tensor) and tensor.tolist() == [1.0, 1.0]
    assert type(array) is np.ndarray and array.tolist() == [0, 1, 2]
    assert type(scalar) is np.float32 and scalar == 1.5
    assert back[(1, "k")]["nested"]["deep"].dtype == tg.float64


def test_load_gives_back_requires_grad_and_parameters(tmp_path):
    # Loaded as plain tensors, a resumed optimization of them computed no gradients, silently.
    weight, frozen = tg.nn.Parameter(tg.ones(2)), tg.nn.Parameter(tg.ones(1), requires_grad=False)
    checkpoint = {"w": tg.ones(2, requires_grad=True), "p": weight, "tied": weight, "f": frozen, "x": tg.arange(3)}
    tg.save(checkpoint, tmp_path / "checkpoint")
    loaded = tg.load(tmp_path / "checkpoint")
    kinds = {name: (type(value).__name__, value.requires_grad, value.is_leaf) for name, value in loaded.items()}
    assert kinds == {
        "w": ("Tensor", True, True),
        "p": ("Parameter", True, True),
        "tied": ("Parameter", True, True),
        "f": ("Parameter", False, True),
        "x": ("Tensor", False, True),
    }
    assert loaded["p"] is loaded["tied"]
    (loaded["w"] * loaded["p"]).sum().backward()
    assert loaded["w"].grad.tolist() == [1.0, 1.0] and loaded["p"].grad.tolist() == [1.0, 1.0]
    tg.save(checkpoint["w"], tmp_path / "one")
    assert tg.load(tmp_path / "one").requires_grad


def test_save_refuses_what_needs_a_pickle_and_load_refuses_damaged_files(tmp_path):
    with pytest.raises(TypeError, match="cannot save Linear"):
        tg.save({"epoch": 1, "model": tg.nn.Linear(2, 2)}, tmp_path / "bad.npz")
    with pytest.raises(TypeError, match="cannot save an array of Python objects"):
        tg.save({"epoch": 1, "x": np.array([object()])}, tmp_path / "bad.npz")
    np.savez(tmp_path / "damaged.npz", __structure__=np.array('{"tensor": 7}'))
    with pytest.raises(ValueError, match="names an array it does not hold"):
        tg.load(tmp_path / "damaged.npz")
    np.savez(tmp_path / "garbled.npz", __structure__=np.array("{not json"))
    with pytest.raises(ValueError, match="damaged"):
        tg.load(tmp_path / "garbled.npz")


def test_save_keeps_tied_tensors_tied_and_odd_names_and_subclasses_load(tmp_path):
    """A tensor saved under two names loads as one (tied weights stay tied, as torch.load keeps
    them); names numpy's savez takes for itself (``file``, ``allow_pickle``) and a Size or a
    namedtuple (as a plain tuple) round-trip."""
    import collections

    weight = tg.ones(3)
    point = collections.namedtuple("Point", "x y")(1, 2)
    tg.save({"encoder": weight, "decoder": weight, "file": tg.zeros(1), "allow_pickle": 1, "shape": tg.ones(2, 3).shape,
             "point": point}, tmp_path / "tied.pt")  # fmt: skip
    back = tg.load(tmp_path / "tied.pt")
    assert back["encoder"] is back["decoder"]
    assert back["file"].tolist() == [0.0] and back["allow_pickle"] == 1
    assert back["shape"] == (2, 3) and back["point"] == (1, 2)


def test_load_reads_each_array_once_and_refuses_what_tapegrad_never_writes(tmp_path):
    """A crafted file naming one array many times costs one array; a tensor of a dtype tapegrad
    has no tensors of, a file of torch.save's and a structure nested past 200 are ValueErrors."""
    import io
    import json

    crafted = io.BytesIO()
    np.savez(crafted, **{"0": np.zeros(10), "__structure__": np.array(json.dumps({"list": [{"array": 0}] * 50}))})
    crafted.seek(0)
    many = tg.load(crafted)
    assert len(many) == 50 and all(item is many[0] for item in many)
    strings = tmp_path / "strings.npz"
    np.savez(strings, **{"0": np.array(["a"]), "__structure__": np.array(json.dumps({"tensor": 0}))})
    with pytest.raises(ValueError, match="a tensor of dtype <U1"):
        tg.load(strings)
    deep = tmp_path / "deep.npz"
    np.savez(deep, __structure__=np.array('{"list": [' * 300 + '{"value": 1}' + "]}" * 300))
    with pytest.raises(ValueError, match="damaged"):
        tg.load(deep)
    with pytest.raises(ValueError, match="nested more than 200 deep"):
        nested = []
        for _ in range(250):
            nested = [nested]
        tg.save(nested, tmp_path / "nested.pt")
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(2)}, tmp_path / "torch.pt")
    with pytest.raises(ValueError, match="torch.save's files need torch.load|is not an array"):
        tg.load(tmp_path / "torch.pt")


def test_cosine_annealing_matches_the_closed_form():
    optimizer = tg.optim.SGD([tg.nn.Parameter(tg.ones(1))], lr=1.0)
    scheduler = tg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10, eta_min=0.1)
    rates = []
    for _ in range(10):
        scheduler.step()
        rates.append(scheduler.get_last_lr()[0])
    np.testing.assert_allclose(rates, [0.1 + 0.9 * (1 + np.cos(np.pi * k / 10)) / 2 for k in range(1, 11)])


def test_embedding_layernorm_gelu_modules_match_pytorch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.ModuleDict({"embed": torch.nn.Embedding(7, 4), "norm": torch.nn.LayerNorm(4)})
    embed, norm, act = tg.nn.Embedding(7, 4), tg.nn.LayerNorm(4), tg.nn.GELU()
    embed.load_state_dict({"weight": theirs["embed"].weight.detach().numpy()})
    indices = np.array([[1, 6, 1], [0, 2, 5]])
    ours_out = act(norm(embed(tg.tensor(indices))))
    theirs_out = torch.nn.GELU()(theirs["norm"](theirs["embed"](torch.tensor(indices))))
    np.testing.assert_allclose(ours_out.detach().numpy(), theirs_out.detach().numpy(), rtol=1e-5, atol=1e-6)
    (ours_out * ours_out).sum().backward()
    (theirs_out * theirs_out).sum().backward()
    np.testing.assert_allclose(embed.weight.grad.numpy(), theirs["embed"].weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.weight.grad.numpy(), theirs["norm"].weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(IndexError, match="index out of range in self"):
        embed(tg.tensor([7]))


MODULES = [
    ("SiLU", lambda nn: nn.SiLU(), "x"),
    ("LeakyReLU", lambda nn: nn.LeakyReLU(0.2), "x"),
    ("ELU", lambda nn: nn.ELU(0.7), "x"),
    ("Softmax", lambda nn: nn.Softmax(dim=1), "x"),
    ("LogSoftmax", lambda nn: nn.LogSoftmax(dim=0), "x"),
    ("Flatten", lambda nn: nn.Flatten(), "x"),
    ("NLLLoss", lambda nn: nn.NLLLoss(ignore_index=2), "log-probabilities, classes"),
    ("CrossEntropyLoss weighted", lambda nn: nn.CrossEntropyLoss(weight=_weights(nn)), "x, classes"),
    ("BCELoss", lambda nn: nn.BCELoss(reduction="sum"), "probabilities, targets"),
    ("BCEWithLogitsLoss", lambda nn: nn.BCEWithLogitsLoss(pos_weight=_weights(nn)[:3].reshape(1, 3)), "x, targets"),
]


def _weights(nn):
    library = tg if nn is tg.nn else __import__("torch")
    return library.tensor([0.5, 2.0, 1.0, 1.5], dtype=library.float64)


@pytest.mark.parametrize("name,make,inputs", MODULES, ids=[m[0] for m in MODULES])
def test_more_modules_match_pytorch(name, make, inputs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 3) if "targets" in inputs else (4, 4, 2) if name == "Flatten" else (4, 4))
    classes = np.array([0, 2, 3, 1])
    targets = rng.uniform(size=(4, 3))

    def run(library):
        values = x
        if inputs.startswith("log-probabilities"):
            values = np.log(np.exp(x) / np.exp(x).sum(1, keepdims=True))
        if inputs.startswith("probabilities"):
            values = 1 / (1 + np.exp(-x))
        tensor = library.tensor(values, dtype=library.float64, requires_grad=True)
        args = [tensor]
        if inputs.endswith("classes"):
            args.append(library.tensor(classes))
        if inputs.endswith("targets"):
            args.append(library.tensor(targets, dtype=library.float64))
        out = make(library.nn)(*args)
        out.sum().backward()
        return out.detach().numpy(), tensor.grad.numpy(), type(out.grad_fn).__name__

    ours, theirs = run(tg), run(torch)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-10, atol=1e-12)
    if not name.startswith("BCE"):  # tapegrad composes binary cross entropy of its ops
        assert ours[2] == theirs[2]


NLL_TARGETS = {
    "none ignored": ([0, 3, 1, 2], -100),
    "ignore a class present": ([0, 3, 1, 3], 3),
    "ignore a class absent, inside the range": ([0, 3, 0, 3], 1),
    "every target ignored": ([2, 2, 2, 2], 2),
    "out of bounds": ([0, 4, 1, 2], -100),
    "out of bounds, negative": ([0, -1, 1, 2], -100),
    "out of bounds among ignored": ([3, 5, 3, -2], 3),
}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", list(NLL_TARGETS))
def test_cross_entropy_targets_checks_and_ignore_index_match_pytorch(case, reduction):
    """The eager nll_loss checks its targets with their smallest and largest values (no mask
    when ignore_index lies outside them): values, gradients and errors as PyTorch's."""
    torch = pytest.importorskip("torch")
    labels, ignore = NLL_TARGETS[case]
    x = np.random.default_rng(5).standard_normal((4, 4))
    results = []
    for library in (tg, torch):
        logits = library.tensor(x, requires_grad=True)
        try:
            loss = library.nn.functional.cross_entropy(
                logits, library.tensor(labels), ignore_index=ignore, reduction=reduction
            )
        except IndexError as error:  # PyTorch's is an IndexError too
            results.append(str(error))
            continue
        loss.backward()
        results.append((loss.item(), logits.grad.numpy()))
    if isinstance(results[1], str):
        assert results[0] == results[1]
        return
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-15, equal_nan=True)


@pytest.mark.parametrize("smoothing", [0.1, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("ignore", [-100, 2], ids=["none ignored", "some ignored"])
def test_cross_entropy_label_smoothing_matches_pytorch(smoothing, reduction, weighted, ignore):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 4))
    labels = np.array([0, 2, 3, 2, 1])
    weights = np.array([0.5, 2.0, 1.0, 1.5])
    results = []
    for library in (tg, torch):
        logits = library.tensor(x, requires_grad=True)
        loss = library.nn.CrossEntropyLoss(
            weight=library.tensor(weights) if weighted else None,
            ignore_index=ignore,
            reduction=reduction,
            label_smoothing=smoothing,
        )(logits, library.tensor(labels))
        loss.sum().backward()
        results.append((loss.detach().numpy(), logits.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("ignore_index", [True, 1.0])
def test_ignore_index_must_be_an_int(ignore_index):
    logits, labels = tg.zeros(2, 3), tg.tensor([0, 1])
    with pytest.raises(TypeError, match=r"^cross_entropy_loss\(\): argument 'ignore_index' \(position 5\) must be int"):
        tg.nn.functional.cross_entropy(logits, labels, ignore_index=ignore_index)
    with pytest.raises(TypeError, match=r"^nll_loss_nd\(\): argument 'ignore_index' \(position 5\) must be int"):
        tg.nn.functional.nll_loss(logits, labels, ignore_index=ignore_index)
    with pytest.raises(RuntimeError, match="^label_smoothing must be between 0.0 and 1.0. Got: 1.5$"):
        tg.nn.functional.cross_entropy(logits, labels, label_smoothing=1.5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", ["one target", "every target ignored"])
def test_label_smoothing_of_one_target_or_none_matches_pytorch(case, reduction):
    """One target (a 1-D input: its mask is a numpy scalar, once saved by a temporary's address)
    and a batch whose targets are all ignored (the mean divides by 0: NaN, with zero gradients)."""
    torch = pytest.importorskip("torch")
    x = np.array([[0.3, -1.2, 0.8, 0.1, -0.4], [0.5, 0.2, -0.1, 0.0, 1.0]])
    results = []
    for library in (tg, torch):
        logits = library.tensor(x[0] if case == "one target" else x, requires_grad=True)
        target = library.tensor(1) if case == "one target" else library.tensor([2, 2])
        loss = library.nn.functional.cross_entropy(
            logits, target, ignore_index=2, label_smoothing=0.1, reduction=reduction
        )
        loss.backward()
        results.append((loss.item(), logits.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-15)


def test_init_modes_gains_and_the_other_fills():
    w = tg.empty(64, 32)
    with pytest.raises(ValueError, match=r"Mode fan_avg not supported, please use one of \['fan_in', 'fan_out'\]"):
        tg.nn.init.kaiming_uniform_(w, mode="fan_avg")
    with pytest.raises(ValueError, match="Unsupported nonlinearity gelu"):
        tg.nn.init.kaiming_normal_(w, nonlinearity="gelu")
    tg.nn.init.kaiming_uniform_(w, nonlinearity="selu")  # (it raised KeyError)
    assert w.abs().max().item() <= 0.75 * np.sqrt(3.0 / 32) + 1e-6
    tg.nn.init.trunc_normal_(w, mean=0.5, std=2.0, a=-1.0, b=1.5)
    assert -1.0 <= w.min().item() and w.max().item() <= 1.5 and w.std().item() > 0.5
    eye = tg.nn.init.eye_(tg.empty(2, 3))
    assert eye.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    weight = tg.nn.init.dirac_(tg.empty(4, 2, 3, 3), groups=2)
    x = tg.randn(1, 4, 5, 5)
    out = tg.nn.functional.conv2d(x, weight, padding=1, groups=2)
    np.testing.assert_allclose(out.numpy(), x.numpy(), rtol=1e-6, atol=1e-6)  # the identity convolution


def test_dropout_checks_p_and_drops_in_place():
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        tg.nn.Dropout(1.5)
    layer = tg.nn.Dropout(0.5, inplace=True)
    x = tg.ones(1000)
    out = layer(x)
    assert out is x and set(np.unique(x.numpy())) <= {0.0, 2.0} and 0 < (x == 0).sum().item() < 1000
    assert repr(layer) == "Dropout(p=0.5, inplace=True)"


def test_batch_norm_without_running_statistics_uses_the_batch_in_eval():
    bn = tg.nn.BatchNorm1d(2)
    bn.running_mean = bn.running_var = None
    bn.eval()
    out = bn(tg.tensor([[1.0, 2.0], [3.0, 5.0]]))
    np.testing.assert_allclose(out.detach().numpy(), [[-1.0, -1.0], [1.0, 1.0]], atol=1e-5)


def _views_saved(m, path):
    """Tensors sharing memory, saved together: what loads back shares it again, with strides."""
    x = m.arange(24.0, dtype=m.float64).reshape(4, 6)
    w = m.ones(3, 2, requires_grad=True)
    m.save(
        {
            "a": x,
            "b": x.t(),
            "c": x[1:, ::2],
            "d": x[2],
            "e": x[1:3, 2:].reshape(-1),
            "w": w,
            "wt": w.t(),
            "again": x.t(),
        },
        path,
    )
    back = m.load(path)
    geometry = {k: (tuple(v.shape), tuple(v.stride()), v.requires_grad) for k, v in back.items()}
    back["a"][2, 4] = -1.0  # one element, seen through every view of it
    seen = {k: v.detach().numpy().copy().tolist() for k, v in back.items()}
    return geometry, seen


def test_save_keeps_tensors_that_share_memory_sharing_it(tmp_path):
    """As torch.load ("saving and loading tensors preserves views"): views saved together load
    as tensors sharing one block, with their shapes and strides; a change through one is seen
    through the others. tapegrad.save copied each, so they loaded apart (and ``x.t()`` as
    contiguous)."""
    geometry, seen = _views_saved(tg, tmp_path / "views.pt")
    assert geometry["b"] == ((6, 4), (1, 6), False) and geometry["c"] == ((3, 3), (6, 2), False)
    assert geometry["wt"] == ((2, 3), (1, 2), True)
    assert seen["b"][4][2] == seen["c"][1][2] == seen["d"][4] == seen["again"][4][2] == -1.0
    expected = np.arange(24.0).reshape(4, 6)
    expected[2, 4] = -1.0
    assert seen["a"] == expected.tolist()
    assert seen["e"] == np.arange(24.0).reshape(4, 6)[1:3, 2:].reshape(-1).tolist()  # a copy: shares nothing
    back = tg.load(tmp_path / "views.pt")
    assert back["b"] is not back["again"]  # two tensors of one geometry load as two
    torch = pytest.importorskip("torch")
    assert (geometry, seen) == _views_saved(torch, tmp_path / "torch.pt")


def test_a_view_saved_alone_saves_its_own_bytes_only(tmp_path):
    """A row or a column of a large array saved alone saves its own values, not the array
    around it (torch.save writes the whole storage); a transposed view alone keeps its strides.
    Saved together, a row and a column share the bytes between them, as they share memory."""
    big = tg.arange(1e6, dtype=tg.float64).reshape(1000, 1000)
    for name, view in (("row", big[3]), ("column", big[:, 5])):
        tg.save({name: view}, tmp_path / f"{name}.pt")
        assert (tmp_path / f"{name}.pt").stat().st_size < 100_000
        assert tg.load(tmp_path / f"{name}.pt")[name].tolist() == view.tolist()
    tg.save(big[:2, :3].t(), tmp_path / "corner.pt")
    corner = tg.load(tmp_path / "corner.pt")
    assert corner.is_contiguous() and corner.tolist() == big[:2, :3].t().tolist()  # its 6 values, not 1003
    tg.save(big.t(), tmp_path / "alone.pt")
    alone = tg.load(tmp_path / "alone.pt")
    assert alone.stride() == (1, 1000) and bool((alone == big.t()).all())
    tg.save({"row": big[3], "column": big[:, 5]}, tmp_path / "both.pt")
    both = tg.load(tmp_path / "both.pt")
    both["row"][5] = -1.0
    assert both["column"][3].item() == -1.0


@pytest.mark.parametrize(
    ("view", "message"),
    [
        ([1, 0, "tensor", "<f8", 0, [5], [8]], "reaching past its bytes"),  # 40 bytes from a block of 32
        ([1, 0, "tensor", "<f8", -8, [2], [8]], "reaching past its bytes"),
        ([1, 0, "tensor", "<f8", 0, [2], [-8]], "reaching past its bytes"),
        ([1, 0, "tensor", "<f8", 4, [2], [8]], "damaged"),  # misaligned
        ([1, 0, "tensor", "<U1", 0, [2], [4]], "a tensor of dtype"),
        ([1, 0, "grad_tensor", "<i8", 0, [2], [8]], "a tensor of dtype"),
        ([1, 0, "tensor", "<f8", 0, [2], [8, 8]], "damaged"),
        ([1, 7, "tensor", "<f8", 0, [2], [8]], "damaged"),
        # Found by a review: numpy's own bounds check multiplies in 64 bits, and these wrapped
        # past it (reading and writing the heap past the block; a crash).
        ([1, 0, "tensor", "|u1", 0, [2**61 + 1], [8]], "reaching past its bytes"),
        ([1, 0, "tensor", "<f8", 0, [2**59 + 1], [32]], "reaching past its bytes"),
        ([1, 0, "tensor", "<f8", 0, [3], [-(2**63) + 8]], "reaching past its bytes"),
        ([1, 0, "tensor", "<f8", 2**63, [1], [8]], "reaching past its bytes"),
        ([1, 0, "tensor", "<f8", -(2**63) - 8, [1], [8]], "reaching past its bytes"),
        ([1, 0, "tensor", "<f8", 0, [2**62, 2**2], [0, 0]], "reaching past its bytes"),
        ([1, 0, "tensor", "<f8", 0, [-2], [8]], "damaged"),
        ([1, 0, "tensor", "f8,(", 0, [2], [8]], "a tensor of dtype"),
        ([1, 0, "tensor", "T", 0, [2], [8]], "a tensor of dtype"),
        ([1, 0, ["tensor"], "<f8", 0, [2], [8]], "damaged"),
    ],
)
def test_load_refuses_a_view_that_is_not_one(tmp_path, view, message):
    import json

    path = tmp_path / "crafted.npz"
    np.savez(path, **{"0": np.zeros(32, np.uint8), "__structure__": np.array(json.dumps({"view": view}))})
    with pytest.raises(ValueError, match=message):
        tg.load(path)


def test_tensors_a_load_could_not_place_are_saved_as_copies(tmp_path):
    """Found by a review: memory shared at an offset that is not a whole number of elements (a
    field of a structured array; arrays over one buffer a byte apart) was saved as views a load
    then refused as damaged. Such tensors are saved as copies, and load."""
    record = np.zeros(4, dtype=[("a", np.float64), ("b", np.int16)])
    record["a"] = [1.0, 2.0, 3.0, 4.0]
    field = tg.from_numpy(record["a"])
    buffer = bytearray(80)
    first = tg.from_numpy(np.frombuffer(buffer, np.float64, count=4))
    shifted = tg.from_numpy(np.frombuffer(buffer, np.float64, count=4, offset=1))
    tg.save({"field": field, "first": first, "shifted": shifted}, tmp_path / "odd.pt")
    back = tg.load(tmp_path / "odd.pt")
    assert back["field"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert back["first"].tolist() == first.tolist() and back["shifted"].tolist() == shifted.tolist()


def test_a_loaded_expanded_tensor_refuses_changes_in_place(tmp_path):
    """Found by a review: a tensor of zero strides loaded writable, so ``add_`` changed every
    element it repeats, where tapegrad (and PyTorch) refuse it on the expanded tensor."""
    x = tg.arange(3.0)
    tg.save({"x": x, "wide": x.expand(4, 3)}, tmp_path / "wide.pt")
    back = tg.load(tmp_path / "wide.pt")
    with pytest.raises(RuntimeError) as loaded_error:
        back["wide"].add_(1)
    with pytest.raises(RuntimeError) as original_error:
        x.expand(4, 3).add_(1)
    assert str(loaded_error.value) == str(original_error.value)
    back["x"].add_(1)  # its source stays writable, and the expanded tensor follows it
    assert back["wide"].tolist() == [[1.0, 2.0, 3.0]] * 4


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("KLDivLoss", lambda m, a, b, s: (a, b)),
        ("SoftMarginLoss", lambda m, a, b, s: (a[:, 0], s)),
        ("HingeEmbeddingLoss", lambda m, a, b, s: (a[:, 0], s)),
        ("MarginRankingLoss", lambda m, a, b, s: (a[:, 0], a[:, 1], s)),
        ("CosineEmbeddingLoss", lambda m, a, b, s: (a, b, s)),
        ("TripletMarginLoss", lambda m, a, b, s: (a, b, b * 2)),
        ("PoissonNLLLoss", lambda m, a, b, s: (a, b)),
    ],
)
def test_a_loss_built_with_size_average_reads_its_reduction_from_then_on(name, arguments):
    """Found by a review: a loss module made with the deprecated ``size_average=False`` summed,
    but said ``.reduction == "mean"``, and a ``.reduction`` set later was ignored. As PyTorch's
    ``_Loss``, the legacy arguments become ``.reduction`` at construction."""
    a = tg.tensor([[-1.0, -2.0], [-0.5, -3.0]], dtype=tg.float64)
    b = tg.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=tg.float64)
    s = tg.tensor([1.0, -1.0], dtype=tg.float64)
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        loss = getattr(tg.nn, name)(size_average=False)
    assert loss.reduction == "sum"
    summed = loss(*arguments(tg, a, b, s))
    loss.reduction = "none"
    each = loss(*arguments(tg, a, b, s))
    assert each.dim() > 0 and abs(each.sum().item() - summed.item()) < 1e-12
