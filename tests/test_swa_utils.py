"""optim.swa_utils: weight averaging, its lr schedule and batch-norm statistics, against
PyTorch's over one training run with the same weights."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg


def _training(m, strategy: str, anneal_epochs: int):
    """Predictions of an SWA, an in-place EMA of weights and buffers and an avg_fn EMA, the
    lrs SWALR set, and the names the averaged model's state_dict holds."""
    rng = np.random.default_rng(0)
    net = m.nn.Sequential(m.nn.Linear(4, 8), m.nn.BatchNorm1d(8), m.nn.ReLU(), m.nn.Linear(8, 1))
    with m.no_grad():
        for p in net.parameters():
            p.copy_(m.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    optimizer = m.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    utils = m.optim.swa_utils
    swa = utils.AveragedModel(net)
    ema = utils.AveragedModel(net, multi_avg_fn=utils.get_ema_multi_avg_fn(0.9), use_buffers=True)
    ema_fn = utils.AveragedModel(net, avg_fn=utils.get_ema_avg_fn(0.8))
    schedule = utils.SWALR(optimizer, swa_lr=0.05, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    x = m.tensor(rng.standard_normal((64, 4)).astype(np.float32))
    y = m.tensor(rng.standard_normal((64, 1)).astype(np.float32))
    lrs = []
    for _ in range(6):
        for i in range(0, 64, 16):
            optimizer.zero_grad()
            m.nn.functional.mse_loss(net(x[i : i + 16]), y[i : i + 16]).backward()
            optimizer.step()
        for averaged in (swa, ema, ema_fn):
            averaged.update_parameters(net)
        schedule.step()
        lrs.append(schedule.get_last_lr()[0])
    utils.update_bn([(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)], swa)
    predictions = [model(x).detach().numpy() for model in (swa, ema, ema_fn)]
    return predictions, lrs, int(swa.n_averaged), list(swa.state_dict()), sorted(schedule.state_dict())


@pytest.mark.parametrize("strategy, anneal_epochs", [("cos", 3), ("linear", 2), ("cos", 0)])
def test_averaged_models_and_swalr_follow_pytorch(strategy, anneal_epochs):
    torch = pytest.importorskip("torch")
    ours, theirs = _training(tg, strategy, anneal_epochs), _training(torch, strategy, anneal_epochs)
    for a, b in zip(ours[0], theirs[0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12)
    assert ours[2:] == theirs[2:]


def test_swa_is_the_mean_of_the_models_seen():
    model = tg.nn.Linear(2, 1)
    swa = tg.optim.swa_utils.AveragedModel(model)
    weights = []
    for k in range(4):
        with tg.no_grad():
            model.weight.fill_(float(k * k))
        weights.append(k * k)
        swa.update_parameters(model)
    np.testing.assert_allclose(swa.module.weight.detach().numpy(), np.mean(weights))
    assert swa.n_averaged.dtype == tg.int64 and int(swa.n_averaged) == 4


def test_errors_are_pytorchs():
    utils = tg.optim.swa_utils
    model = tg.nn.Linear(2, 1)
    with pytest.raises(AssertionError, match="Only one of avg_fn and multi_avg_fn"):
        utils.AveragedModel(model, avg_fn=utils.get_swa_avg_fn(), multi_avg_fn=utils.get_swa_multi_avg_fn())
    with pytest.raises(ValueError, match=r"Invalid decay value 1.5 provided. Please provide a value in \[0,1\] range."):
        utils.get_ema_avg_fn(1.5)
    optimizer = tg.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear', instead got step"):
        utils.SWALR(optimizer, 0.01, anneal_strategy="step")
    with pytest.raises(ValueError, match="anneal_epochs must be equal or greater than 0, got -1"):
        utils.SWALR(optimizer, 0.01, anneal_epochs=-1)
