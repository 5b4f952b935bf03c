"""What porting real programs found: values, warnings and errors that differed from PyTorch's
(each case was a line of a program that ran under both and printed something else)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

import tapegrad as tg


def _both():
    torch = pytest.importorskip("torch")
    return tg, torch


def _outcome(call):
    """(exception class name, message) of ``call()``, or ("value", its shape/values)."""
    try:
        result = call()
    except Exception as error:  # noqa: BLE001 - the class is what is compared
        return type(error).__name__, str(error).replace("torch.", "tapegrad.")
    return "value", tuple(result.shape) if hasattr(result, "shape") else result


def test_scatters_keep_the_input_dtype():
    idx = tg.tensor([0, 0, 1])
    assert tg.zeros(3, dtype=tg.int32).index_add(0, idx, tg.ones(3, dtype=tg.int32)).dtype == tg.int32
    assert tg.zeros(3, dtype=tg.int32).scatter_add(0, idx, tg.ones(3, dtype=tg.int32)).tolist() == [2, 1, 0]
    wrapped = tg.full((2,), 250, dtype=tg.uint8).index_add(0, tg.tensor([0, 0]), tg.full((2,), 5, dtype=tg.uint8))
    assert wrapped.dtype == tg.uint8 and wrapped.tolist() == [4, 250]  # as a C uint8 adds: modulo 256
    ored = tg.zeros(3, dtype=tg.bool).index_add(0, tg.tensor([1, 1, 1]), tg.ones(3, dtype=tg.bool))
    assert ored.dtype == tg.bool and ored.tolist() == [False, True, False]


def test_deepcopy_of_a_module_starts_without_gradients():
    model = tg.nn.Linear(2, 2)
    model(tg.ones(1, 2)).sum().backward()
    clone = copy.deepcopy(model)
    assert clone.weight.grad is None and model.weight.grad is not None
    assert type(clone.weight) is tg.nn.Parameter and clone.weight is not model.weight
    np.testing.assert_array_equal(clone.weight.detach().numpy(), model.weight.detach().numpy())
    assert type(copy.deepcopy(tg.nn.LazyLinear(3)).weight).__name__ == "UninitializedParameter"


def test_sizes_may_be_0d_integer_tensors():
    n = tg.tensor([3, 1, 2]).max()
    for call in (
        lambda: tg.zeros(n), lambda: tg.ones(2, n), lambda: tg.empty(n), lambda: tg.randn(n),
        lambda: tg.tensor([1, 2]).new_zeros(n), lambda: tg.ones(3).view(n), lambda: tg.ones(3).reshape(n),
        lambda: tg.ones(1).expand(n), lambda: tg.ones(1).repeat(n),
    ):  # fmt: skip
        assert call().shape[-1] == 3
    with pytest.raises(TypeError):
        tg.zeros(2.0)


CASES = {
    "interpolate size of another rank": lambda m: m.nn.functional.interpolate(m.ones(1, 1, 2, 2), size=(3,)),
    "interpolate scales of another rank": lambda m: m.nn.functional.interpolate(m.ones(1, 1, 2, 2), scale_factor=(2,)),
    "interpolate neither": lambda m: m.nn.functional.interpolate(m.ones(1, 1, 2, 2)),
    "flatten backwards": lambda m: m.ones(2, 3, 4).flatten(2, 1),
    "linear on 3-d input": lambda m: m.nn.Linear(4, 2)(m.ones(2, 5, 3)),
    "linear of another dtype": lambda m: m.nn.Linear(4, 2)(m.ones(2, 4, dtype=m.float64)),
    "3-d @ 2-d": lambda m: m.ones(2, 3, 4) @ m.ones(5, 6),
    "3-d @ 1-d": lambda m: m.ones(2, 4, 6) @ m.ones(5),
    "3-d @ 1-d of another dtype": lambda m: m.ones(3, 2, 2, dtype=m.float64) @ m.ones(2),
    "nll target (N, 1)": lambda m: m.nn.functional.cross_entropy(m.ones(3, 4), m.zeros(3, 1, dtype=m.int64)),
    "nll target of another rank": lambda m: m.nn.functional.nll_loss(m.ones(3, 4, 5), m.zeros(3, dtype=m.int64)),
    "embedding by floats": lambda m: m.nn.Embedding(4, 2)(m.tensor([0.0, 1.0])),
    "index_add out of range": lambda m: m.zeros(4).index_add(0, m.tensor([4]), m.ones(1)),
    "index_add out of range, 2-d": lambda m: m.zeros(3, 4).index_add(0, m.tensor([0, 5]), m.ones(2, 4)),
    "int of two": lambda m: int(m.tensor([1, 2])),
    "randint low above high": lambda m: m.randint(5, 2, (3,)),
    "tensor of None": lambda m: m.tensor(None),
    "tensor of [None]": lambda m: m.tensor([None]),
}


@pytest.mark.parametrize("name", CASES)
def test_errors_are_pytorchs(name):
    ours, torch = _both()
    assert _outcome(lambda: CASES[name](ours)) == _outcome(lambda: CASES[name](torch))


def _writes(m):
    outcomes = []
    x = m.zeros(3)
    outcomes.append(_outcome(lambda: x.__setitem__(slice(0, 2), m.ones(3))))
    outcomes.append(_outcome(lambda: m.zeros(3).copy_(m.ones(2))))
    u = m.zeros(2, dtype=m.uint8)
    u[0] = -1  # wraps, as a C cast
    outcomes.append(u.tolist())
    leaf = m.zeros(2, requires_grad=True)
    outcomes.append(_outcome(lambda: leaf.__setitem__(0, 1.0)))
    return outcomes


def test_writes_refused_and_wrapped_as_pytorch():
    ours, torch = _both()
    assert _writes(ours) == _writes(torch)


def _warned(m):
    messages = []
    for call in (
        lambda: m.nn.functional.mse_loss(m.ones(4, 1), m.zeros(4)),
        lambda: m.nn.functional.l1_loss(m.ones(4), m.zeros(4, 1)),
        lambda: m.nn.functional.smooth_l1_loss(m.ones(4, 3), m.zeros(3)),
        lambda: m.nn.functional.huber_loss(m.ones(4, 1), m.zeros(4)),
        lambda: m.tensor(m.ones(2)),
        lambda: m.ones(3).T,
        lambda: m.nn.functional.mse_loss(m.ones(4), m.zeros(4)),  # (the same shape: none)
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        messages.append(
            [str(w.message).split(" (Triggered internally")[0].replace("torch.", "tapegrad.") for w in caught]
        )
    return messages


def test_warnings_of_silent_mistakes_are_pytorchs():
    ours, torch = _both()
    mine = _warned(ours)
    assert mine[0][0].startswith("Using a target size (tapegrad.Size([4])) that is different to the input size")
    assert mine == _warned(torch)


def _nodes(m):
    x = m.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]], requires_grad=True)
    results = [
        x.sort(dim=1).values, x.topk(1).values, x.roll(1), x.roll(1, 0), m.nn.functional.pad(x, (1, 1)),
        m.nn.functional.pad(x, (1, 1), mode="reflect"), m.nn.functional.pad(x[None], (1, 1, 1, 1), mode="replicate"),
        x.tril(), x.triu(1), x.masked_select(x > 1), m.div(x, 2, rounding_mode="floor"),
        m.div(x, m.tensor(2.0), rounding_mode="trunc"), m.cdist(x, x), m.cdist(x, x, p=float("inf")),
    ]  # fmt: skip
    return [type(result.grad_fn).__name__ for result in results]


def test_nodes_are_named_as_pytorch_names_them():
    ours, torch = _both()
    assert _nodes(ours) == _nodes(torch)
