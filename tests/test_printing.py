"""``repr`` follows torch/_tensor_str.py: checked against PyTorch itself, value for value."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

VALUES = [
    [1.0, 1.0],
    [[1.0, 1.0], [1.0, 1.0]],
    [-0.9332, 1.9616, 0.1739],
    [51.2, 512.0, 0.0512],
    [1e-5, 1.0],
    [100000.0, 1.0],
    [123456789.0],
    [1.0, float("nan"), float("inf")],
    [-1.0, 2.0],
    [[1.5, 2.0], [3.0, 4.0]],
    [0.0, 0.0],
    [-477.7843, 1004.3264, 89.0424],
    2.5,
    -0.5,
    3.0,
    np.linspace(-3, 3, 40).tolist(),
    [[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]],
]
SPECIAL = [
    lambda m: m.arange(2000.0),
    lambda m: m.arange(3),
    lambda m: m.tensor([[1, 2], [30, 4]]),
    lambda m: m.tensor([True, False]),
    lambda m: m.zeros(2, 0),
    lambda m: m.tensor([]),
    lambda m: m.ones(3, dtype=m.float64, requires_grad=True),
    lambda m: m.ones(2, 3, 4),
    lambda m: m.ones(2, 2, requires_grad=True) ** 2,
    lambda m: (m.ones(2, 2, requires_grad=True) * 3).mean(),
    lambda m: m.arange(60.0).reshape(20, 3) / 7,
    lambda m: m.arange(1200.0).reshape(40, 30),
    lambda m: m.ones(30, dtype=m.float64, requires_grad=True) * 1.5,
    lambda m: m.zeros(0, dtype=m.int64),
]


def _ours_and_theirs(make):
    torch = pytest.importorskip("torch")
    ours, theirs = repr(make(tg)), repr(make(torch)).replace("torch.", "tapegrad.")
    if "dtype=" in theirs:
        # "tapegrad.float64" is 3 characters longer than "torch.float64", so a suffix may wrap
        # onto its own line in one and not the other; compare the text up to line breaks.
        ours, theirs = " ".join(ours.split()), " ".join(theirs.split())
    return ours, theirs


@pytest.mark.parametrize("index", range(len(VALUES)))
def test_float_values_print_like_pytorch(index):
    ours, theirs = _ours_and_theirs(lambda m: m.tensor(VALUES[index]))
    assert ours == theirs


@pytest.mark.parametrize("index", range(len(SPECIAL)))
def test_special_tensors_print_like_pytorch(index):
    ours, theirs = _ours_and_theirs(SPECIAL[index])
    assert ours == theirs


def test_printing_without_pytorch():
    assert repr(tg.ones(2, 2, requires_grad=True)) == "tensor([[1., 1.],\n        [1., 1.]], requires_grad=True)"
    assert repr(tg.tensor([51.2, 512.0, 0.0512])) == "tensor([5.1200e+01, 5.1200e+02, 5.1200e-02])"
    assert repr(tg.ones(2, dtype=tg.float64)) == "tensor([1., 1.], dtype=tapegrad.float64)"
    assert repr(tg.zeros(2, 0)) == "tensor([], size=(2, 0))"
    assert repr((tg.ones(1, requires_grad=True) * 3).mean()) == "tensor(3., grad_fn=<MeanBackward0>)"


# Print options and default dtypes, each set on both libraries and undone after.
OPTIONS = [
    ({"sci_mode": False}, lambda m: m.tensor([1e-5, 1.5])),
    ({"sci_mode": True}, lambda m: m.tensor([-1.5, 2.5])),
    ({"sci_mode": True}, lambda m: m.tensor([0.0, 0.0])),
    ({"sci_mode": True}, lambda m: m.arange(12.0) - 6),
    ({"threshold": 5, "edgeitems": 0}, lambda m: m.arange(10.0)),
    ({"threshold": 5, "edgeitems": 0}, lambda m: m.arange(24.0).reshape(4, 6)),
    ({"edgeitems": 0}, lambda m: m.ones(2)),
    ({"precision": 2, "sci_mode": False}, lambda m: m.tensor([1e-7, 123.456])),
]


@pytest.mark.parametrize("index", range(len(OPTIONS)))
def test_print_options_print_like_pytorch(index):
    """The notation is chosen (or forced) before the column widths are measured in it, and an
    ``edgeitems`` of 0 prints "..." and the size, as PyTorch's ``_tensor_str``: a forced
    sci_mode=False padded the columns to scientific widths, sci_mode=True cut them and wrote
    zeros in it, and edgeitems=0 printed every element, or raised for 2-D tensors."""
    torch = pytest.importorskip("torch")
    options, make = OPTIONS[index]
    try:
        for m in (tg, torch):
            m.set_printoptions(**options)
        ours, theirs = _ours_and_theirs(make)
    finally:
        for m in (tg, torch):
            m.set_printoptions(profile="default", sci_mode=None)
    assert ours == theirs


def test_empty_tensors_name_the_dtype_that_is_not_the_default():
    torch = pytest.importorskip("torch")
    try:
        for m in (tg, torch):
            m.set_default_dtype(m.float64)
        for make in (lambda m: m.tensor([]), lambda m: m.zeros(0, dtype=m.float32), lambda m: m.zeros(2, 0)):
            ours, theirs = _ours_and_theirs(make)
            assert ours == theirs
    finally:
        for m in (tg, torch):
            m.set_default_dtype(m.float32)


def test_a_size_joined_with_a_tuple_is_a_size():
    torch = pytest.importorskip("torch")
    for make in (lambda m: m.Size([2, 3]) + (1,), lambda m: (1,) + m.Size([2, 3]), lambda m: m.Size([2]) * 2):
        assert repr(make(tg)) == repr(make(torch)).replace("torch.", "tapegrad.")


def test_a_size_is_made_of_integers_as_pytorchs():
    """``Size([tensor(2), 3])`` printed ``tapegrad.Size([tensor(2), 3])`` and ``Size([2.5])``
    was taken; PyTorch's reads one-element integer tensors as ints and refuses the rest."""
    assert repr(tg.Size([tg.tensor(2), np.int64(3), True])) == "tapegrad.Size([2, 3, 1])"
    assert all(type(item) is int for item in tg.Size([tg.tensor([2]), np.int32(1)]))
    for item, name in ((2.5, "float"), ("a", "str"), (tg.tensor(2.0), "Tensor")):
        with pytest.raises(TypeError, match=rf"takes an iterable of 'int' \(item 1 is '{name}'\)"):
            tg.Size([1, item])


def test_finfo_resolution_and_an_unknown_print_profile_are_pytorchs():
    assert tg.finfo(tg.float32).resolution == 1e-06 and tg.finfo(tg.float64).resolution == 1e-15
    tg.set_printoptions(profile="no such profile")  # PyTorch changes nothing (raised KeyError)
    assert str(tg.tensor([1.123456789])) == "tensor([1.1235])"


def test_composites_show_the_node_pytorch_prints():
    """Each of these printed the node of its last recorded op (StdBackward0 and MeanBackward0
    for std_mean, GatherBackward0 for cummax, PermuteBackward0 for unfold...): PyTorch's is one
    node for the whole call, whose name its results print."""
    x = tg.randn(3, 4, requires_grad=True)
    y = tg.randn(3, 4)
    F = tg.nn.functional  # noqa: N806 - PyTorch's convention
    cases = {
        "StdMeanBackward0": [*tg.std_mean(x), *tg.std_mean(x, 1)],
        "VarMeanBackward0": [*tg.var_mean(x), *tg.var_mean(x, 1, keepdim=True)],
        "AminmaxBackward0": [*tg.aminmax(x), *tg.aminmax(x, dim=1)],
        "CummaxBackward0": [tg.cummax(x, 1).values],
        "CumminBackward0": [tg.cummin(x, 0).values],
        "NormBackward1": [F.pairwise_distance(x, y), F.pairwise_distance(x, y, p=1.0)],
        "DivBackward1": [F.cross_entropy(x, y.softmax(1)), F.cross_entropy(x, y.softmax(1), label_smoothing=0.1)],
        "NegBackward0": [F.cross_entropy(x, y.softmax(1), reduction="sum")],
        "UnfoldBackward0": [x.unfold(1, 2, 1), x.unfold(1, 2, 2)],
    }
    for node, results in cases.items():
        assert [type(t.grad_fn).__name__ for t in results] == [node] * len(results)
        assert f"grad_fn=<{node}>" in repr(results[0])
