"""tapegrad.optim.LBFGS takes torch.optim.LBFGS's path, with and without its strong-Wolfe line
search, and its state survives state_dict, tapegrad.save and load_state_dict."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg


def _fit(library, line_search, history_size=3, steps=4, max_iter=5, state=None):
    """Rosenbrock's valley in 4 dimensions and a least-squares term, from a fixed start; the
    parameters and losses after each ``step``."""
    rng = np.random.default_rng(0)
    a = library.tensor(rng.standard_normal((6, 4)))
    b = library.tensor(rng.standard_normal(6))
    x = library.nn.Parameter(library.tensor(np.array([-1.2, 1.0, -0.5, 0.8])))
    scale = library.nn.Parameter(library.tensor(np.array([[0.5]])))
    optimizer = library.optim.LBFGS(
        [x, scale], lr=0.8, max_iter=max_iter, history_size=history_size, line_search_fn=line_search
    )
    if state is not None:
        optimizer.load_state_dict(state)

    def closure():
        optimizer.zero_grad()
        valley = (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
        loss = valley + ((a @ x) * scale[0, 0] - b).pow(2).mean()
        loss.backward()
        return loss

    history = []
    for _ in range(steps):
        loss = optimizer.step(closure)
        history.append((float(loss), x.detach().numpy().copy(), scale.detach().numpy().copy()))
    return history, optimizer


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
@pytest.mark.parametrize("history_size", [2, 100])
def test_lbfgs_takes_pytorchs_path(line_search, history_size):
    torch = pytest.importorskip("torch")
    ours, _ = _fit(tg, line_search, history_size)
    theirs, _ = _fit(torch, line_search, history_size)
    for (loss, x, scale), (their_loss, their_x, their_scale) in zip(ours, theirs):
        np.testing.assert_allclose(loss, their_loss, rtol=1e-9)
        np.testing.assert_allclose(x, their_x, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(scale, their_scale, rtol=1e-8, atol=1e-10)


def test_lbfgs_with_line_search_finds_the_minimum_of_a_quadratic():
    """A convex quadratic in 5 dimensions: the gradient vanishes within a few iterations."""
    rng = np.random.default_rng(1)
    m = rng.standard_normal((5, 5))
    hessian = tg.tensor(m @ m.T + 5 * np.eye(5))
    target = rng.standard_normal(5)
    x = tg.nn.Parameter(tg.zeros(5, dtype=tg.float64))
    optimizer = tg.optim.LBFGS(
        [x], line_search_fn="strong_wolfe", max_iter=50, tolerance_grad=1e-10, tolerance_change=0
    )

    def closure():
        optimizer.zero_grad()
        difference = x - tg.tensor(target)
        loss = 0.5 * (difference @ (hessian @ difference))
        loss.backward()
        return loss

    optimizer.step(closure)
    np.testing.assert_allclose(x.detach().numpy(), target, rtol=1e-7, atol=1e-8)
    assert optimizer.state_dict()["state"][0]["func_evals"] < 50


def test_lbfgs_state_round_trips_through_a_checkpoint(tmp_path):
    """Stepping on from a checkpoint (parameters and optimizer state through a file) takes the
    same steps as the optimizer that never stopped: the curvature history came back."""
    rng = np.random.default_rng(2)
    m = tg.tensor(rng.standard_normal((4, 4)))

    def make():
        x = tg.nn.Parameter(tg.tensor(np.array([1.0, -2.0, 0.5, 3.0])))
        optimizer = tg.optim.LBFGS([x], max_iter=3, history_size=2, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = ((m @ x).tanh() ** 2).sum() + (x**4).sum() / 10
            loss.backward()
            return loss

        return x, optimizer, closure

    x, optimizer, closure = make()
    for _ in range(2):
        optimizer.step(closure)
    tg.save({"x": x.detach(), "optimizer": optimizer.state_dict()}, tmp_path / "lbfgs.pt")
    checkpoint = tg.load(tmp_path / "lbfgs.pt")
    assert len(checkpoint["optimizer"]["state"][0]["old_dirs"]) == 2
    y, resumed, resumed_closure = make()
    with tg.no_grad():
        y.copy_(checkpoint["x"])
    resumed.load_state_dict(checkpoint["optimizer"])
    for _ in range(2):
        assert float(optimizer.step(closure)) == float(resumed.step(resumed_closure))
    np.testing.assert_array_equal(x.detach().numpy(), y.detach().numpy())


def test_lbfgs_refuses_groups_a_negative_lr_and_other_line_searches():
    p, q = tg.nn.Parameter(tg.ones(2)), tg.nn.Parameter(tg.ones(2))
    with pytest.raises(ValueError, match="^LBFGS doesn't support per-parameter options"):
        tg.optim.LBFGS([{"params": [p]}, {"params": [q]}])
    with pytest.raises(ValueError, match="^Invalid learning rate: -1$"):
        tg.optim.LBFGS([p], lr=-1)
    optimizer = tg.optim.LBFGS([p], line_search_fn="backtracking")

    def closure():
        optimizer.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="^only 'strong_wolfe' is supported$"):
        optimizer.step(closure)
