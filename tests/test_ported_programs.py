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


def _hunt30_values(m):
    """What a differential hunt over nn's corners found differing from PyTorch: positional and
    keyword arguments it takes, weighted losses, empty bags, module hooks' grad_input."""
    F = m.nn.functional  # noqa: N806
    x = m.tensor([[0.5, -1.0, 2.0]], dtype=m.float64, requires_grad=True)
    t = m.tensor([[1.0, 0.0, 1.0]], dtype=m.float64)
    w = m.tensor([[1.0, 2.0, 4.0]], dtype=m.float64)
    results = [
        F.binary_cross_entropy_with_logits(x, t, None, "sum").item(),  # 'sum' is size_average: a mean
        F.binary_cross_entropy_with_logits(x, t, None, None, False).tolist(),  # reduce=False: none
        F.mse_loss(x, t, weight=w).item(),
        F.mse_loss(x, t, weight=w, reduction="none").tolist(),
        F.l1_loss(x, t, weight=w, reduction="sum").item(),
    ]
    results += [
        m.nn.BatchNorm2d(3, bias=False).bias is None,
        m.nn.GroupNorm(1, 3, bias=False).bias is None,
        m.nn.InstanceNorm1d(3, affine=True, bias=False).bias is None,
        m.nn.LayerNorm(4, device="cpu").weight.shape,
    ]
    params = [m.zeros(2), m.zeros(1)]
    m.nn.utils.vector_to_parameters(vec=m.tensor([1.0, 2.0, 3.0]), parameters=params)
    results.append([p.tolist() for p in params])
    weight = m.ones(4, 2, dtype=m.float64, requires_grad=True)
    bags = F.embedding_bag(m.tensor([], dtype=m.int64), weight, m.tensor([0, 0]), mode="sum")
    bags.sum().backward()
    results += [bags.requires_grad, weight.grad.tolist()]
    seen = []
    loss = m.nn.MSELoss()
    loss.register_full_backward_hook(lambda module, grad_input, grad_output: seen.append(grad_input))
    loss(x, t).backward()
    results.append([None if g is None else g.tolist() for g in seen[0]])
    return results


def test_nn_corners_a_hunt_found_differing_now_match_pytorch():
    libraries = _both()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the legacy size_average/reduce: both warn)
        ours, theirs = (_hunt30_values(m) for m in libraries)
    for index in range(5):  # the losses
        np.testing.assert_allclose(ours[index], theirs[index], rtol=1e-12)
    ours[8], theirs[8] = tuple(ours[8]), tuple(theirs[8])  # (each library's Size)
    assert ours[5:] == theirs[5:]


def test_hessian_vector_products_refuse_what_strict_mode_refuses():
    for m in _both():
        from_functional = m.autograd.functional
        for function in (lambda v: v.sum(), lambda v: v.detach().sum()):
            for product in (from_functional.hvp, from_functional.vhp):
                with pytest.raises(RuntimeError, match="strict mode"):
                    product(function, m.ones(3), m.ones(3), strict=True)
