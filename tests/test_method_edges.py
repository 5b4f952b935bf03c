"""Tensor and Module methods at their edges, as PyTorch gives them: type names as strings,
0-d tensors through movedim and topk, a module registered twice, printed modules."""

from __future__ import annotations

import pytest

import tapegrad as tg


def test_type_takes_pytorch_s_type_names():
    x = tg.tensor([1.7, -2.7])
    assert x.type() == "tapegrad.FloatTensor"
    assert x.type("torch.DoubleTensor").dtype == tg.float64
    assert x.type("torch.LongTensor").tolist() == [1, -2]
    assert x.type("tapegrad.IntTensor").dtype == tg.int32
    with pytest.raises(ValueError, match="invalid type: 'torch.FooTensor'"):
        x.type("torch.FooTensor")


def test_zero_dimensional_movedim_and_topk():
    x = tg.tensor(3.0, requires_grad=True)
    moved = (x * 1).movedim(0, 0)
    assert moved.shape == () and moved.item() == 3.0
    values, indices = x.topk(1)
    values.backward()
    assert values.item() == 3.0 and indices.item() == 0 and x.grad.item() == 1.0


def test_named_parameters_without_removing_a_module_registered_twice():
    norm = tg.nn.BatchNorm1d(2)
    model = tg.nn.Sequential(norm, tg.nn.ReLU(), norm)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    names = [name for name, _ in model.named_parameters(remove_duplicate=False)]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(list(model.named_buffers(remove_duplicate=False))) == 6


def test_flatten_prints_its_dims():
    assert repr(tg.nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"

