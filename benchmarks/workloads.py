"""The workloads of shared/docs/performance.md, once per backend.

``make(workload, backend)`` returns a zero-argument callable running one iteration; the asv
suites and ``compare.py`` both time these, so the two always measure the same thing.
Backends: ``tapegrad``; ``torch`` (one thread) when installed; ``numpy`` where a hand-written
reference exists.
"""

from __future__ import annotations

import importlib.util

import numpy as np

BACKENDS = ["tapegrad", "torch", "numpy"]


def available(backend: str) -> bool:
    if backend == "tapegrad":
        return True
    if backend == "torch":
        return importlib.util.find_spec("torch") is not None
    return backend == "numpy"


def module(backend: str):
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
        return torch
    import tapegrad

    return tapegrad


# -- chain: the tutorial's loop ------------------------------------------------------------

CHAIN_OPS = 1000


def chain_record(backend: str):
    """Record ``y = x * 2`` then 1000 times ``y = y * 1.001``; returns the last y."""
    if backend == "numpy":
        x = np.array([0.1, 0.2, 0.3], np.float32)
    else:
        x = module(backend).tensor([0.1, 0.2, 0.3], requires_grad=True)

    def run():
        y = x * 2
        for _ in range(CHAIN_OPS):
            y = y * 1.001
        return y

    return run


def chain_backward(backend: str):
    """A prepared chain's ``y.backward(v, retain_graph=True)``: the backward alone."""
    m = module(backend)
    y = chain_record(backend)()
    v = m.tensor([0.1, 1.0, 0.0001])

    def run():
        y.backward(v, retain_graph=True)

    run()
    return run


def chain_replay(backend: str = "tapegrad"):
    """The chain recorded once, then forward+backward replayed at a new x."""
    import tapegrad

    def chain(x):
        y = x * 2
        for _ in range(CHAIN_OPS):
            y = y * 1.001
        return y

    tape = tapegrad.record(chain, np.array([0.1, 0.2, 0.3], np.float32))
    x = np.array([0.3, -0.2, 0.1], np.float32)
    v = np.array([0.1, 1.0, 0.0001], np.float32)
    run = lambda: tape.value_and_grad(x, grad_outputs=v)  # noqa: E731
    run()
    return run


# -- mlp: one float32 training step --------------------------------------------------------


def mlp_step(backend: str, batch: int = 32, features: int = 64, hidden: int = 128, classes: int = 10):
    rng = np.random.default_rng(0)
    arrays = {
        "X": rng.standard_normal((batch, features)).astype(np.float32),
        "W1": (rng.standard_normal((features, hidden)) / 8).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "W2": (rng.standard_normal((hidden, classes)) / 11).astype(np.float32),
        "b2": np.zeros(classes, np.float32),
    }
    if backend == "numpy":
        X, W1, b1, W2, b2 = (arrays[k] for k in ("X", "W1", "b1", "W2", "b2"))

        def run():
            h = np.tanh(X @ W1 + b1)
            o = h @ W2 + b2
            loss = (o * o).mean()
            g_o = 2 * o / o.size
            g_W2 = h.T @ g_o
            g_b2 = g_o.sum(0)
            g_h = (g_o @ W2.T) * (1 - h * h)
            return loss, X.T @ g_h, g_h.sum(0), g_W2, g_b2

        return run
    m = module(backend)
    X = m.tensor(arrays["X"])
    params = [m.tensor(arrays[k], requires_grad=True) for k in ("W1", "b1", "W2", "b2")]
    W1, b1, W2, b2 = params

    def run():
        for p in params:
            p.grad = None
        o = (X @ W1 + b1).tanh() @ W2 + b2
        loss = (o * o).mean()
        loss.backward()
        return loss

    run()
    return run


def mlp_replay(backend: str = "tapegrad"):
    """The mlp step recorded once (parameters as inputs), replayed: value and gradients."""
    import tapegrad

    rng = np.random.default_rng(0)
    X = tapegrad.tensor(rng.standard_normal((32, 64)).astype(np.float32))
    params = [
        (rng.standard_normal((64, 128)) / 8).astype(np.float32),
        np.zeros(128, np.float32),
        (rng.standard_normal((128, 10)) / 11).astype(np.float32),
        np.zeros(10, np.float32),
    ]

    def loss(W1, b1, W2, b2):
        o = (X @ W1 + b1).tanh() @ W2 + b2
        return (o * o).mean()

    tape = tapegrad.record(loss, *params)
    run = lambda: tape.value_and_grad(*params)  # noqa: E731
    run()
    return run


# -- big: 10^6 float32 elements ------------------------------------------------------------

BIG = 1_000_000


def big_step(backend: str):
    rng = np.random.default_rng(0)
    xa = rng.standard_normal(BIG).astype(np.float32)
    ya = rng.standard_normal(BIG).astype(np.float32)
    if backend == "numpy":

        def run():
            value = (xa * ya + np.sin(xa)).sum()
            return value, ya + np.cos(xa), xa.copy()

        return run
    m = module(backend)
    x = m.tensor(xa, requires_grad=True)
    y = m.tensor(ya, requires_grad=True)

    def run():
        x.grad = None
        y.grad = None
        out = (x * y + x.sin()).sum()
        out.backward()
        return out

    run()
    return run


def big_replay(backend: str = "tapegrad"):
    """The big step recorded once (x and y as inputs), replayed: value and both gradients."""
    import tapegrad

    rng = np.random.default_rng(0)
    xa = rng.standard_normal(BIG).astype(np.float32)
    ya = rng.standard_normal(BIG).astype(np.float32)
    tape = tapegrad.record(lambda x, y: (x * y + x.sin()).sum(), xa, ya)
    run = lambda: tape.value_and_grad(xa, ya)  # noqa: E731
    run()
    return run


# -- graph: the scalar graph from the public engine comparison -----------------------------


def scalar_graph(m, nodes: list, n_ops: int):
    """The op mix of performance.md over 0-d tensors; returns the output node."""
    import_f = importlib.import_module(f"{m.__name__}.nn.functional") if _has_nn(m) else None
    softplus = import_f.softplus if import_f else (lambda t: (t.exp() + 1.0).log())
    softmax = import_f.softmax if import_f else _softmax(m)
    nodes = list(nodes)
    for k in range(n_ops):
        kind = k % 4
        if kind == 0:
            nodes.append(softplus(nodes[-10]))
        elif kind == 1:
            nodes.append(sum(nodes[-30:-10:5]))
        elif kind == 2:
            nodes.append(nodes[-20] * nodes[-10])
        else:
            nodes.extend(softmax(m.stack(nodes[-4:], dim=0), dim=0))
    return nodes[-1]


def _has_nn(m) -> bool:
    return importlib.util.find_spec(f"{m.__name__}.nn.functional") is not None


def _softmax(m):
    def softmax(t, dim):
        e = (t - t.max()).exp()
        return e / e.sum(dim)

    return softmax


GRAPH_OPS = 10_000


def graph_function(m, n_ops: int = GRAPH_OPS):
    """The scalar graph as a function of one input tensor ``x = arange(100.)``."""

    def graph(x):
        return scalar_graph(m, list(x), n_ops)

    return graph


def graph_eager(backend: str, n_ops: int = GRAPH_OPS):
    """Eager forward and backward of the graph (what PyTorch can do)."""
    m = module(backend)
    graph = graph_function(m, n_ops)

    def run():
        x = m.arange(100.0, dtype=m.float64).requires_grad_()
        graph(x).backward()
        return x.grad

    return run


def graph_record(backend: str = "tapegrad", n_ops: int = GRAPH_OPS):
    """Recording the graph onto a tape (tapegrad only)."""
    import tapegrad

    graph = graph_function(tapegrad, n_ops)
    x = np.arange(100.0)
    return lambda: tapegrad.record(graph, x)


def graph_replay(backend: str, n_ops: int = GRAPH_OPS):
    """Forward+backward at new inputs: a replayed tape, or the hand-written numba reference."""
    x = np.arange(100.0) / 50.0
    if backend == "numpy":  # the reference: a switch interpreter over the same op list
        from benchmarks import graph_reference

        kinds, arguments, outputs, count = graph_reference.op_list(n_ops)
        run = lambda: graph_reference.forward_backward(kinds, arguments, outputs, count, x)  # noqa: E731
        run()
        return run
    import tapegrad

    tape = tapegrad.record(graph_function(tapegrad, n_ops), np.arange(100.0))
    run = lambda: tape.value_and_grad(x)  # noqa: E731
    run()
    return run


# -- layers: a small CNN and an LSTM, training steps -------------------------------------


def _copied_model(backend: str, build):
    """``build(m)`` in ``backend``, with the tapegrad model's initial values (one seed, one model)."""
    import tapegrad

    tapegrad.manual_seed(0)
    reference = build(tapegrad)
    if backend == "tapegrad":
        return tapegrad, reference
    m = module(backend)
    model = build(m)
    with m.no_grad():
        for theirs, ours in zip(model.state_dict().values(), reference.state_dict().values()):
            theirs.copy_(m.from_numpy(np.array(ours.numpy())))
    return m, model


def cnn_step(backend: str):
    """A LeNet-like classifier (conv-bn-relu-pool twice, then linear) on 32 28x28 images: one
    SGD step (forward, cross-entropy, backward, update)."""

    def build(m):
        return m.nn.Sequential(
            m.nn.Conv2d(1, 16, 3, padding=1), m.nn.BatchNorm2d(16), m.nn.ReLU(), m.nn.MaxPool2d(2),
            m.nn.Conv2d(16, 32, 3, padding=1), m.nn.ReLU(), m.nn.MaxPool2d(2),
            m.nn.Flatten(), m.nn.Linear(32 * 7 * 7, 10),
        )  # fmt: skip

    m, model = _copied_model(backend, build)
    rng = np.random.default_rng(0)
    images = m.from_numpy(rng.standard_normal((32, 1, 28, 28)).astype(np.float32))
    labels = m.from_numpy(rng.integers(0, 10, 32))
    optimizer = m.optim.SGD(model.parameters(), lr=0.01)

    def run():
        optimizer.zero_grad()
        loss = m.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    run()
    return run


def classifier_step(backend: str):
    """The digits example's training step (``examples/digits_mlp.py``) on synthetic data: an MLP
    64 -> 128 -> 10 of ``nn.Linear`` and ReLU, cross-entropy, Adam, a batch of 32 float32 rows.
    The layers' recording and the loss's, not their arithmetic, are most of its time."""

    def build(m):
        return m.nn.Sequential(m.nn.Linear(64, 128), m.nn.ReLU(), m.nn.Linear(128, 10))

    m, model = _copied_model(backend, build)
    rng = np.random.default_rng(0)
    inputs = m.from_numpy(rng.standard_normal((32, 64)).astype(np.float32))
    labels = m.from_numpy(rng.integers(0, 10, 32))
    loss_fn = m.nn.CrossEntropyLoss()
    optimizer = m.optim.Adam(model.parameters(), lr=1e-3)

    def run():
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), labels)
        loss.backward()
        optimizer.step()
        return loss

    run()
    return run


def lstm_step(backend: str):
    """An LSTM (16 -> 32) over 20 steps of a batch of 16, a linear head on the last output,
    mean squared error: one SGD step."""

    def build(m):
        return m.nn.ModuleList([m.nn.LSTM(16, 32), m.nn.Linear(32, 1)])

    m, (lstm, head) = _copied_model(backend, build)
    rng = np.random.default_rng(0)
    x = m.from_numpy(rng.standard_normal((20, 16, 16)).astype(np.float32))
    y = m.from_numpy(rng.standard_normal((16, 1)).astype(np.float32))
    optimizer = m.optim.SGD([*lstm.parameters(), *head.parameters()], lr=0.01)

    def run():
        optimizer.zero_grad()
        output, _ = lstm(x)
        loss = m.nn.functional.mse_loss(head(output[-1]), y)
        loss.backward()
        optimizer.step()
        return loss

    run()
    return run


# -- per-sample gradients: tapegrad.func and torch.func, one thread -------------------------


def _per_sample_data(m):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 64)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    return m.tensor(x), m.tensor(y)


def _one_thread(run):
    import tapegrad

    def call():
        previous = tapegrad.get_num_threads()
        tapegrad.set_num_threads(1)
        try:
            return run()
        finally:
            tapegrad.set_num_threads(previous)

    call()
    return call


def per_sample(backend: str):
    """Per-sample gradients of the digits MLP (64-128-10, batch 256, float32), one thread:
    ``vmap(grad(loss), in_dims=(None, 0, 0))`` of ``tapegrad.func`` or ``torch.func`` (which
    records the loss on every call, in tapegrad)."""
    m = module(backend)
    func = importlib.import_module(f"{m.__name__}.func")
    model = m.nn.Sequential(m.nn.Linear(64, 128), m.nn.Tanh(), m.nn.Linear(128, 10))
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, y = _per_sample_data(m)

    def loss(params, x, y):
        return m.nn.functional.cross_entropy(func.functional_call(model, params, (x[None],)), y[None])

    per_sample = func.vmap(func.grad(loss), in_dims=(None, 0, 0))
    run = lambda: per_sample(params, x, y)  # noqa: E731
    return _one_thread(run) if backend == "tapegrad" else run


def per_sample_replay(backend: str = "tapegrad"):
    """The same loss recorded once (``tapegrad.record`` of the parameters, one sample and its
    label), its tape mapped over the batch: ``vmap(tape.value_and_grad)``, one thread."""
    import tapegrad
    from tapegrad.func import vmap

    f = tapegrad.nn.functional
    tapegrad.manual_seed(0)
    model = tapegrad.nn.Sequential(tapegrad.nn.Linear(64, 128), tapegrad.nn.Tanh(), tapegrad.nn.Linear(128, 10))
    params = [p.detach().numpy() for p in model.parameters()]
    x, y = (t.numpy() for t in _per_sample_data(tapegrad))

    def loss(w1, b1, w2, b2, x, y):
        return f.cross_entropy(f.linear(f.linear(x[None], w1, b1).tanh(), w2, b2), y[None])

    tape = tapegrad.record(loss, *params, x[0], y[0])
    mapped = vmap(tape.value_and_grad, in_dims=(None,) * 4 + (0, 0))
    return _one_thread(lambda: mapped(*params, x, y, argnums=(0, 1, 2, 3)))


def make(workload: str, backend: str):
    return {
        "chain_record": chain_record,
        "chain_backward": chain_backward,
        "chain_replay": chain_replay,
        "mlp": mlp_step,
        "mlp_replay": mlp_replay,
        "big": big_step,
        "big_replay": big_replay,
        "graph_eager": graph_eager,
        "graph_record": graph_record,
        "graph_replay": graph_replay,
        "per_sample": per_sample,
        "per_sample_replay": per_sample_replay,
        "cnn": cnn_step,
        "classifier": classifier_step,
        "lstm": lstm_step,
    }[workload](backend)
