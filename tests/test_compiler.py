"""torch.compile and the precision flags: programs that call them run, computing the same."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg


def test_compile_wraps_a_module_as_pytorch_does_and_computes_the_same():
    model = tg.nn.Sequential(tg.nn.Linear(3, 4), tg.nn.Tanh(), tg.nn.Linear(4, 1))
    compiled = tg.compile(model, mode="max-autotune", fullgraph=True)
    assert type(compiled).__name__ == "OptimizedModule" and compiled._orig_mod is model
    assert list(compiled.state_dict()) == [f"_orig_mod.{key}" for key in model.state_dict()]
    assert [id(p) for p in compiled.parameters()] == [id(p) for p in model.parameters()]
    assert compiled.training is model.training and len(compiled) == 3
    assert compiled.__getattr__("0") is model[0]  # what the wrapper lacks is the module's
    x = tg.tensor(np.random.default_rng(0).standard_normal((5, 3)), dtype=tg.float32)
    compiled(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for got, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(got.numpy(), p.grad.numpy())
    compiled.eval()
    assert not model.training


def test_compile_of_a_function_and_as_a_decorator():
    def double(x):
        return x * 2

    assert tg.compile(double) is double

    @tg.compile(dynamic=True)
    def triple(x):
        return x * 3

    assert triple(tg.tensor(2.0)).item() == 6.0
    assert tg.compile(tg.nn.Linear(1, 1), disable=True).__class__ is tg.nn.Linear
    with pytest.raises(AssertionError, match="A callable function is expected"):
        tg.compile(3)
    assert not tg.compiler.is_compiling() and tg.compiler.disable(double) is double


def test_precision_flags():
    assert tg.get_float32_matmul_precision() == "highest"
    tg.set_float32_matmul_precision("high")
    try:
        assert tg.get_float32_matmul_precision() == "high"
        with pytest.warns(UserWarning, match="is not one of 'highest', 'high', or 'medium'"):
            tg.set_float32_matmul_precision("low")
        assert tg.get_float32_matmul_precision() == "high"
    finally:
        tg.set_float32_matmul_precision("highest")
    assert tg.backends.cuda.matmul.allow_tf32 is False and tg.backends.cudnn.allow_tf32 is True
    assert not tg.backends.cuda.is_built()


def test_shown_as_pytorch_shows_it():
    # (PyTorch's own torch.compile is not called here: importing its compiler changes the
    # checks of torch.distributions for the tests that run after this one)
    compiled = tg.compile(tg.nn.Linear(2, 3))
    assert repr(compiled) == "OptimizedModule(\n  (_orig_mod): Linear(in_features=2, out_features=3, bias=True)\n)"
    assert list(compiled.state_dict()) == ["_orig_mod.weight", "_orig_mod.bias"] and compiled.in_features == 2


def test_a_compiled_module_copies_pickles_and_forwards_its_attributes():
    import copy
    import pickle

    model = tg.nn.Sequential(tg.nn.Linear(2, 2))
    compiled = tg.compile(model)
    for clone in (copy.deepcopy(compiled), pickle.loads(pickle.dumps(compiled))):
        assert type(clone).__name__ == "OptimizedModule" and len(clone) == 1
    compiled.flag = 1  # set on the original, as PyTorch's wrapper sets it
    assert model.flag == 1
    compiled.training = False
    assert not model.training
    model.train()
    assert compiled.training
