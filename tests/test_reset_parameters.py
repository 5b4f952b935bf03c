"""``reset_parameters()``: every module with parameters has it where PyTorch's has it (the
re-initialisation idiom ``if hasattr(m, "reset_parameters"): m.reset_parameters()`` otherwise
skips a module silently), and it restores the initial values."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

MODULES = {
    "Linear": lambda nn: nn.Linear(3, 2),
    "Conv2d": lambda nn: nn.Conv2d(2, 3, 3),
    "Embedding": lambda nn: nn.Embedding(5, 3),
    "LayerNorm": lambda nn: nn.LayerNorm(3),
    "BatchNorm1d": lambda nn: nn.BatchNorm1d(3),
    "BatchNorm2d": lambda nn: nn.BatchNorm2d(3),
    "InstanceNorm1d": lambda nn: nn.InstanceNorm1d(3, affine=True, track_running_stats=True),
    "GroupNorm": lambda nn: nn.GroupNorm(1, 3),
    "LSTM": lambda nn: nn.LSTM(3, 4),
    "RNNCell": lambda nn: nn.RNNCell(3, 4),
    "LSTMCell": lambda nn: nn.LSTMCell(3, 4),
    "GRUCell": lambda nn: nn.GRUCell(3, 4),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_reset_parameters_restores_the_initial_state(name):
    module = MODULES[name](tg.nn)
    initial = {key: value.numpy().copy() for key, value in module.state_dict().items()}
    with tg.no_grad():
        for value in module.state_dict().values():
            value.fill_(7)
    module.reset_parameters()
    for key, value in module.state_dict().items():
        now, before = value.numpy(), initial[key]
        if np.ptp(before) == 0:  # constants (ones, zeros, counts): restored exactly
            np.testing.assert_array_equal(now, before, err_msg=key)
        else:  # drawn again: from the same range, not the 7s
            assert now.min() >= before.min() - 3 and now.max() <= before.max() + 3 and (now != 7).all(), key


@pytest.mark.parametrize("name", list(MODULES))
def test_has_reset_parameters_where_pytorch_has_it(name):
    torch = pytest.importorskip("torch")
    assert hasattr(MODULES[name](tg.nn), "reset_parameters") == hasattr(MODULES[name](torch.nn), "reset_parameters")
