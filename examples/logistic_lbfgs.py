"""Fit a logistic regression with scipy's L-BFGS, the loss and gradient coming from a replayed
tape: recorded once, then evaluated at every point L-BFGS asks for, with no Python per op.

    python examples/logistic_lbfgs.py
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import minimize

import tapegrad as tg


def make_data(samples: int = 2000, features: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features))
    true_w = rng.standard_normal(features)
    true_b = 0.5
    probability = 1 / (1 + np.exp(-(x @ true_w + true_b)))
    y = (rng.random(samples) < probability).astype(np.float64)
    return x, y, true_w, true_b


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-3):
    features = tg.tensor(x)
    labels = tg.tensor(y)

    def loss(w, b):
        logits = features @ w + b
        # log(1 + exp(z)) - y z: the negative log-likelihood, written with softplus for stability
        return (tg.nn.functional.softplus(logits) - labels * logits).mean() + l2 * (w * w).sum()

    tape = tg.record(loss, np.zeros(x.shape[1]), np.zeros(1))

    def value_and_gradient(theta):
        value, (gw, gb) = tape.value_and_grad(theta[:-1], theta[-1:])
        return value.item(), np.concatenate([gw.numpy(), gb.numpy()])

    start = time.perf_counter()
    result = minimize(value_and_gradient, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B")
    return result, time.perf_counter() - start


def main() -> None:
    x, y, true_w, true_b = make_data()
    result, seconds = fit(x, y)
    print(
        f"L-BFGS: {result.nit} iterations, {result.nfev} loss+gradient replays in {seconds * 1e3:.1f} ms, converged: {result.success}"
    )
    print("fitted w:", np.round(result.x[:-1], 3), " b:", round(float(result.x[-1]), 3))
    print("true   w:", np.round(true_w, 3), " b:", true_b)


if __name__ == "__main__":
    main()
