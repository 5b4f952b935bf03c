"""Programs written the way the census's PyTorch programs are (device handling, a DataLoader
training loop, Module containers and buffers, hooks, clipping), run with ``import tapegrad as
torch``. Where torch is installed each program also runs on PyTorch, from the same weights, and
the printed results must agree; the checks that need no PyTorch hold the semantics on their own."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.utils.data import DataLoader, Subset, TensorDataset, default_collate, random_split

# -- devices ----------------------------------------------------------------------------------


def test_programs_choose_the_cpu_and_move_tensors_and_modules_there():
    device = "cuda" if tg.cuda.is_available() else "cpu"
    assert device == "cpu" and not tg.backends.mps.is_available() and not tg.accelerator.is_available()
    assert tg.accelerator.current_accelerator() is None
    model = tg.nn.Linear(2, 1).to(device)
    x = tg.ones(3, 2, device=device)
    assert model(x.to(device)).device == tg.device("cpu") == x.device
    assert repr(x.device) == "device(type='cpu')" and str(tg.device("cuda:1")) == "cuda:1"
    assert x.to("cpu") is x and x.to(tg.float32) is x and x.to("cpu", copy=True) is not x
    assert x.to(tg.device("cpu"), tg.float64).dtype == tg.float64
    assert pickle.loads(pickle.dumps(tg.device("cuda", 0))) == tg.device("cuda:0")


@pytest.mark.parametrize(
    "call",
    [
        lambda: tg.zeros(2, device="cuda"),
        lambda: tg.ones(2).to("cuda"),
        lambda: tg.ones(2).cuda(),
        lambda: tg.nn.Linear(2, 2).to("cuda:0"),
        lambda: tg.nn.Linear(2, 2).cuda(),
        lambda: tg.tensor([1.0], device=tg.device("cuda")),
    ],
)
def test_asking_for_cuda_raises_what_a_cpu_only_pytorch_raises(call):
    with pytest.raises(AssertionError, match="^Torch not compiled with CUDA enabled$"):
        call()


def test_a_string_that_names_no_device_is_pytorchs_runtime_error():
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda, .* device type at start of device string: gpu"):
        tg.device("gpu")
    with pytest.raises(NotImplementedError, match="no 'mps' device"):
        tg.zeros(2, device="mps")


def test_module_to_casts_floating_parameters_and_buffers_in_place():
    model = tg.nn.Linear(3, 2)
    model.register_buffer("steps", tg.zeros(1, dtype=tg.int64))
    model.register_buffer("scale", tg.ones(2))
    weight = model.weight
    optimizer = tg.optim.SGD(model.parameters(), lr=0.1)
    assert model.to(tg.float64) is model
    assert model.weight is weight and weight.dtype == tg.float64 and model.scale.dtype == tg.float64
    assert model.steps.dtype == tg.int64  # integers stay, as in PyTorch
    model(tg.ones(1, 3, dtype=tg.float64)).sum().backward()
    optimizer.step()
    assert weight.grad.dtype == tg.float64
    with pytest.raises(TypeError, match="only accepts floating point"):
        model.to(tg.int64)


# -- Module as PyTorch has it -----------------------------------------------------------------


class _Net(tg.nn.Module):
    def __init__(self, torch):
        super().__init__()
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
        self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(4, 1), "b": torch.nn.Linear(4, 1)})
        self.register_buffer("mean", torch.zeros(4))
        self.register_buffer("cache", torch.zeros(1), persistent=False)
        self.register_parameter("gain", torch.nn.Parameter(torch.ones(1)))

    def forward(self, x):
        for block in self.blocks:
            x = block(x - self.mean).tanh()
        return (self.heads["a"](x) + self.heads["b"](x)) * self.gain


def test_module_registration_and_traversal():
    net = _Net(tg)
    assert [name for name, _ in net.named_modules()] == [
        "",
        "blocks",
        "blocks.0",
        "blocks.1",
        "heads",
        "heads.a",
        "heads.b",
    ]
    assert [name for name, _ in net.named_buffers()] == ["mean", "cache"]
    assert list(net.state_dict()) == [
        "gain", "mean", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
        "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias",
    ]  # fmt: skip
    assert len(list(net.parameters())) == 9 and net.get_submodule("heads.b") is net.heads["b"]
    visited = []
    net.apply(lambda module: visited.append(type(module).__name__))
    assert visited[-1] == "_Net" and visited[0] == "Linear"
    assert all(not p.requires_grad for p in net.requires_grad_(False).parameters())
    with pytest.raises(KeyError, match="attribute 'gain' already exists"):
        net.register_buffer("gain", tg.zeros(1))


def test_forward_hooks_see_and_may_replace_inputs_and_outputs():
    layer = tg.nn.Linear(2, 2)
    seen = []
    pre = layer.register_forward_pre_hook(lambda module, args: (args[0] * 0,))
    post = layer.register_forward_hook(lambda module, args, output: seen.append(output.shape) or output + 1)
    out = layer(tg.ones(1, 2))
    np.testing.assert_allclose(out.detach().numpy(), layer.bias.detach().numpy()[None] + 1, rtol=1e-6)
    assert seen == [(1, 2)]
    pre.remove()
    post.remove()
    assert layer(tg.ones(1, 2)).shape == (1, 2) and seen == [(1, 2)]


def test_load_state_dict_reports_keys_as_pytorch_does():
    net = _Net(tg)
    state = net.state_dict()
    assert repr(net.load_state_dict(state)) == "<All keys matched successfully>"
    del state["mean"]
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "mean"'):
        net.load_state_dict(state)
    assert net.load_state_dict(state, strict=False).missing_keys == ["mean"]


# -- torch.utils.data -------------------------------------------------------------------------


def test_dataloader_batches_collates_and_drops_as_pytorch():
    X = tg.arange(14.0).reshape(7, 2)
    y = tg.arange(7)
    loader = DataLoader(TensorDataset(X, y), batch_size=3)
    batches = list(loader)
    assert len(loader) == 3 and [tuple(b[0].shape) for b in batches] == [(3, 2), (3, 2), (1, 2)]
    assert batches[2][1].tolist() == [6] and batches[0][1].dtype == tg.int64
    assert len(DataLoader(TensorDataset(X, y), batch_size=3, drop_last=True)) == 2
    samples = [{"x": np.ones(2), "label": 1, "weight": 0.5, "name": "a"}] * 2
    batch = default_collate(samples)
    assert batch["x"].dtype == tg.float64 and batch["label"].dtype == tg.int64 and batch["weight"].dtype == tg.float64
    assert batch["name"] == ["a", "a"]


def test_shuffling_is_a_permutation_each_epoch_and_repeats_with_a_seeded_generator():
    data = TensorDataset(tg.arange(10))
    orders = []
    for _ in range(2):
        loader = DataLoader(data, batch_size=4, shuffle=True, generator=tg.Generator().manual_seed(7))
        epochs = [[int(v) for (batch,) in loader for v in batch.tolist()] for _ in range(2)]
        assert all(sorted(epoch) == list(range(10)) for epoch in epochs)
        assert epochs[0] != epochs[1]  # a new order each epoch
        orders.append(epochs)
    assert orders[0] == orders[1]


def test_random_split_and_subset():
    parts = random_split(range(10), [0.3, 0.7], generator=tg.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))
    # PyTorch 2.13's lengths: floors, then the remainder dealt one each from the first split
    assert [len(p) for p in random_split(range(10), [0.25, 0.25, 0.5])] == [3, 2, 5]
    assert [len(p) for p in random_split(range(11), [0.3, 0.3, 0.4])] == [4, 3, 4]
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        random_split(range(10), [3, 3])
    assert Subset(list("abcde"), [4, 0])[0] == "e"
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(range(3), sampler=[0, 1, 2], shuffle=True)


# -- whole programs, on PyTorch too -------------------------------------------------------------


def _training_program(torch, weights):
    """A DataLoader training loop as the census writes it: a device chosen by availability, the
    model and every batch moved there, a clipped SGD step, loss printed per epoch."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.standard_normal((20, 3)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 2, 20))
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=8, shuffle=False)
    lines = []
    for epoch in range(3):
        total = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
            optimizer.step()
            total += loss.item() * len(xb)
        lines.append(f"epoch {epoch}: {total / len(loader.dataset):.5f}")
    return lines


def _gradient_penalty_program(torch):
    """WGAN-GP's penalty: the gradient of a critic's output with respect to its input, itself
    differentiated (create_graph)."""
    critic = torch.nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        critic.bias.fill_(0.1)
    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, -0.5, 0.0]], requires_grad=True)
    out = (critic(x) ** 2).sum()
    (grad,) = torch.autograd.grad(out, x, create_graph=True)
    penalty = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    penalty.backward()
    return [f"{penalty.item():.5f}", str(critic.weight.grad.numpy().round(5).tolist())]


def _hook_clip_program(torch):
    """Per-parameter gradient clipping by tensor hooks, registered once, run on every backward."""
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, -2.0], [1.0, 4.0]]))
        layer.bias.zero_()
    for p in layer.parameters():
        p.register_hook(lambda g: g.clamp(-1.0, 1.0))
    x = torch.tensor([[2.0, -3.0]])
    for _ in range(2):
        (layer(x) ** 2).sum().backward()
    return [str(layer.weight.grad.numpy().tolist()), str(layer.bias.grad.numpy().tolist())]


@pytest.fixture(scope="module")
def weights():
    model = tg.nn.Sequential(tg.nn.Linear(3, 8), tg.nn.ReLU(), tg.nn.Linear(8, 2))
    return {name: value.numpy().copy() for name, value in model.state_dict().items()}


def test_the_training_program_runs_and_its_loss_falls(weights):
    lines = _training_program(tg, weights)
    losses = [float(line.split(": ")[1]) for line in lines]
    assert len(lines) == 3 and losses[2] < losses[0]


@pytest.mark.parametrize("program", ["training", "gradient_penalty", "hook_clip"])
def test_programs_print_what_pytorch_prints(program, weights):
    torch = pytest.importorskip("torch")
    run = {
        "training": lambda module: _training_program(module, weights),
        "gradient_penalty": _gradient_penalty_program,
        "hook_clip": _hook_clip_program,
    }[program]
    assert run(tg) == run(torch)


def test_clip_grad_norm_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(s).astype(np.float32) for s in ((3, 2), (4,))]
    results = []
    for module in (tg, torch):
        params = [module.nn.Parameter(module.zeros(g.shape)) for g in grads]
        for p, g in zip(params, grads):
            p.grad = module.tensor(g)
        for norm_type, max_norm in ((2.0, 1.0), (1.0, 0.5), (float("inf"), 0.3)):
            total = module.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
            results.append([float(total)] + [p.grad.numpy().copy() for p in params])
        module.nn.utils.clip_grad_value_(params, 0.01)
        results.append([p.grad.numpy().copy() for p in params])
    half = len(results) // 2
    for ours, theirs in zip(results[:half], results[half:]):
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
