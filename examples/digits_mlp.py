"""Train a 64-128-10 MLP on scikit-learn's bundled digits (no download), with tapegrad or PyTorch.

    python examples/digits_mlp.py                   # tapegrad, eager
    python examples/digits_mlp.py --replay          # tapegrad, the step recorded once and replayed
    python examples/digits_mlp.py --backend torch   # PyTorch, same initialisation and batches
    python examples/digits_mlp.py --compare         # all three, accuracies and epoch times side by side

Needs the example extras: ``pip install -e ".[examples]"`` (scikit-learn, matplotlib, tqdm).
Writes ``digits_mlp.png`` (loss and accuracy per epoch).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

HIDDEN, CLASSES, BATCH, LEARNING_RATE = 128, 10, 32, 1e-3


def data(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    return train_test_split(
        x, digits.target.astype(np.int64), test_size=0.25, random_state=seed, stratify=digits.target
    )


def initial_weights(features: int, seed: int = 0) -> dict:
    """PyTorch's Linear initialisation, drawn once so every backend starts from the same point."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, (fan_in, fan_out) in {"0": (features, HIDDEN), "2": (HIDDEN, CLASSES)}.items():
        bound = 1 / np.sqrt(fan_in)
        weights[f"{name}.weight"] = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        weights[f"{name}.bias"] = rng.uniform(-bound, bound, fan_out).astype(np.float32)
    return weights


def batches(count: int, epoch: int):
    order = np.random.default_rng(epoch).permutation(count)
    return [order[i : i + BATCH] for i in range(0, count, BATCH)]


def train(backend: str, epochs: int, replay: bool = False, progress: bool = True):
    if backend == "torch":
        import torch as m

        m.set_num_threads(1)
    else:
        import tapegrad as m
    x_train, x_test, y_train, y_test = data()
    model = m.nn.Sequential(m.nn.Linear(x_train.shape[1], HIDDEN), m.nn.ReLU(), m.nn.Linear(HIDDEN, CLASSES))
    model.load_state_dict({k: m.tensor(v) for k, v in initial_weights(x_train.shape[1]).items()})
    optimizer = m.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = m.nn.CrossEntropyLoss()
    step = _replayed_step(m, model, loss_fn) if replay else None
    history = []
    iterator = range(epochs)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"{backend}{' replay' if replay else ''}", unit="epoch")
    for epoch in iterator:
        start = time.perf_counter()
        losses = []
        for index in batches(len(x_train), epoch):
            optimizer.zero_grad()
            if step is not None and len(index) == BATCH:
                losses.append(step(x_train[index], y_train[index]))
            else:
                loss = loss_fn(model(m.tensor(x_train[index])), m.tensor(y_train[index]))
                loss.backward()
                losses.append(loss.item())
            optimizer.step()
        seconds = time.perf_counter() - start
        with m.no_grad():
            accuracy = float((model(m.tensor(x_test)).numpy().argmax(1) == y_test).mean())
        history.append((float(np.mean(losses)), accuracy, seconds))
        if progress:
            iterator.set_postfix(loss=f"{history[-1][0]:.3f}", accuracy=f"{accuracy:.3f}")
    return history


def _replayed_step(m, model, loss_fn):
    """Record forward+backward once with the parameters and the batch as inputs; each step
    replays it and writes the gradients into ``.grad`` for the optimizer."""
    parameters = list(model.parameters())
    labels_one_hot = np.eye(CLASSES, dtype=np.float32)

    def loss_of(*inputs):
        *weights, x, one_hot = inputs
        w1, b1, w2, b2 = weights
        logits = ((x @ w1.t() + b1).relu()) @ w2.t() + b2
        return -(m.nn.functional.log_softmax(logits, 1) * one_hot).sum(1).mean()

    features = parameters[0].shape[1]
    example = [p.detach().numpy() for p in parameters] + [
        np.zeros((BATCH, features), np.float32),
        labels_one_hot[np.zeros(BATCH, int)],
    ]
    tape = m.record(loss_of, *example)

    def step(x, y):
        value, grads = tape.value_and_grad(*[p.detach().numpy() for p in parameters], x, labels_one_hot[y])
        for parameter, grad in zip(parameters, grads):
            parameter.grad = grad
        return value.item()

    return step


def plot(results: dict, path: str = "digits_mlp.png") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, history in results.items():
        left.plot([h[0] for h in history], label=name)
        right.plot([h[1] for h in history], label=name)
    left.set(title="training loss", xlabel="epoch")
    right.set(title="test accuracy", xlabel="epoch")
    left.legend()
    figure.tight_layout()
    figure.savefig(path)
    print(f"wrote {path}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["tapegrad", "torch"], default="tapegrad")
    parser.add_argument("--replay", action="store_true", help="tapegrad: replay a recorded step")
    parser.add_argument("--compare", action="store_true", help="run tapegrad (eager and replay) and PyTorch")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    runs = (
        [("tapegrad", False), ("tapegrad", True), ("torch", False)] if args.compare else [(args.backend, args.replay)]
    )
    results = {}
    for backend, replay in runs:
        results[f"{backend}{' replay' if replay else ''}"] = train(backend, args.epochs, replay)
    print(f"{'backend':16s} {'test accuracy':>14s} {'median epoch':>13s}")
    for name, history in results.items():
        print(f"{name:16s} {history[-1][1]:14.3f} {np.median([h[2] for h in history]) * 1e3:10.1f} ms")
    plot(results)


if __name__ == "__main__":
    main()
