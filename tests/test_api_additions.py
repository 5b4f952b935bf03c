"""PyTorch functions added as composites of existing ops: broadcasting (``broadcast_tensors``,
``broadcast_shapes``, ``Tensor.broadcast_to``/``sum_to_size``), ``atleast_1d/2d/3d``,
``hsplit``/``vsplit``/``dsplit``, ``moveaxis``, ``fliplr``/``flipud``, ``row_stack``/``dstack``,
``isin``, ``is_nonzero``, ``is_inference``, ``float_power``, ``addr``, ``chain_matmul``,
``positive``, the out-of-place scatters and ``narrow_copy``, ``nanmedian``, ``nan_to_num_`` and
``asarray``.

Each against PyTorch 2.13 where it is installed (values, dtypes, shapes, ``grad_fn`` names,
gradients, errors and warnings), against central differences in float64 for the
differentiable ones, and for views, on whether an in-place change reaches the base."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tapegrad as tg

from .gradcheck import analytic_gradients, numeric_gradients

NAN = float("nan")
RNG = np.random.default_rng(7)


def _torch():
    return pytest.importorskip("torch")


def _plain(value):
    """A result as nested Python values: a tensor as (dtype, shape, values, grad_fn name)."""
    if type(value).__name__ == "Size":
        return ("Size", tuple(value))
    if isinstance(value, (tuple, list)):
        return [type(value).__name__ if type(value).__name__ in ("tuple", "list") else "named", *map(_plain, value)]
    if hasattr(value, "detach"):
        node = value.grad_fn
        name = None if node is None else node.name() if hasattr(node, "name") else type(node).__name__
        array = value.detach().numpy()
        return (str(value.dtype).split(".")[-1], tuple(value.shape), array.tolist(), name)
    return value


def _same(ours, theirs) -> None:
    """Equal nested results, NaN equal to NaN, floats to a few ulps."""
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), (ours, theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
    elif isinstance(theirs, tuple) and len(theirs) == 4 and isinstance(theirs[2], (list, float, int, bool)):
        assert ours[0] == theirs[0] and ours[1] == theirs[1] and ours[3] == theirs[3], (ours, theirs)
        np.testing.assert_allclose(np.array(ours[2], dtype=float), np.array(theirs[2], dtype=float), rtol=1e-6)
    else:
        assert ours == theirs


def _both(program):
    """``program(module)`` for tapegrad and PyTorch, as nested Python values."""
    torch = _torch()
    return _plain(program(tg)), _plain(program(torch))


# -- values, dtypes, shapes and node names -------------------------------------------------------

VALUES = {
    "broadcast_tensors": lambda m: m.broadcast_tensors(m.arange(6.0).reshape(2, 3), m.ones(3), m.tensor(2.0)),
    "broadcast_tensors of one shape": lambda m: m.broadcast_tensors(m.ones(2, 3, requires_grad=True), m.zeros(2, 3)),
    "broadcast_tensors, grad": lambda m: m.broadcast_tensors(m.ones(2, 1), m.ones(3, requires_grad=True)),
    "broadcast_tensors, none": lambda m: m.broadcast_tensors(),
    "broadcast_shapes": lambda m: m.broadcast_shapes((2, 1), 3, None, [1, 1, 3]),
    "broadcast_shapes, none": lambda m: [m.broadcast_shapes(), m.broadcast_shapes((0,), (1,))],
    "broadcast_to, sizes": lambda m: [m.ones(3).broadcast_to(2, 3), m.ones(3, 1).broadcast_to((2, -1, 4))],
    "sum_to_size": lambda m: [
        m.arange(24.0, requires_grad=True).reshape(2, 3, 4).sum_to_size(size)
        for size in [(3, 4), (1, 3, 4), (3, 1), (1, 1, 1), (4,), (), (1,), (2, 1, 1)]
    ],
    "sum_to_size, integers": lambda m: [
        m.arange(6).reshape(2, 3).sum_to_size(1, 3),
        m.tensor([[True, True], [True, False]]).sum_to_size(2),
        m.ones(2, 2, dtype=m.int32).sum_to_size([2]),
    ],
    "atleast_1d": lambda m: [
        m.atleast_1d(m.tensor(1.0, requires_grad=True)),
        m.atleast_1d(m.tensor(1.0), m.ones(2)),
        m.atleast_1d([m.tensor(1.0)]),
        m.atleast_1d(),
    ],
    "atleast_2d": lambda m: [
        m.atleast_2d(m.tensor(1.0, requires_grad=True)),
        m.atleast_2d(m.ones(3, requires_grad=True)),
        m.atleast_2d((m.ones(2, 2), m.ones(3))),
    ],
    "atleast_3d": lambda m: [
        m.atleast_3d(m.tensor(1.0)),
        m.atleast_3d(m.ones(3, requires_grad=True)),
        m.atleast_3d(m.ones(2, 3, requires_grad=True)),
        m.atleast_3d(m.ones(1, 2, 3, 4)),
    ],
    "hsplit": lambda m: [
        m.hsplit(m.arange(24.0, requires_grad=True).reshape(4, 6), [1, 4]),
        m.hsplit(m.arange(6.0), 3),
        m.hsplit(m.arange(6.0), m.tensor(2)),
        m.hsplit(m.arange(6.0), [10]),
        m.hsplit(m.arange(48.0).reshape(2, 4, 6), (1, 4)),
    ],
    "vsplit": lambda m: [
        m.arange(24.0).reshape(4, 6).vsplit(2),
        m.arange(24.0).reshape(4, 6).vsplit(1, 3),
        m.vsplit(m.arange(48.0).reshape(2, 4, 6), [-2]),
    ],
    "dsplit": lambda m: [m.dsplit(m.arange(48.0).reshape(2, 4, 6), [1, 4]), m.arange(48.0).reshape(2, 4, 6).dsplit(3)],
    "moveaxis": lambda m: [
        m.moveaxis(m.arange(24.0).reshape(2, 3, 4), 0, -1),
        m.moveaxis(m.arange(24.0).reshape(2, 3, 4), (0, 1), (1, 0)),
    ],
    "fliplr, flipud": lambda m: [
        m.fliplr(m.arange(6.0, requires_grad=True).reshape(2, 3)),
        m.arange(24.0).reshape(2, 3, 4).fliplr(),
        m.flipud(m.arange(3.0, requires_grad=True)),
        m.arange(6.0).reshape(2, 3).flipud(),
    ],
    "row_stack": lambda m: [m.row_stack([m.ones(3), m.zeros(2, 3)]), m.row_stack((m.tensor(1.0), m.tensor(2.0)))],
    "dstack": lambda m: [
        m.dstack([m.ones(3, requires_grad=True), m.zeros(3)]),
        m.dstack([m.ones(2, 3, dtype=m.int64), m.zeros(2, 3)]),
        m.dstack((m.tensor(1.0), m.tensor(2.0))),
        m.dstack([m.ones(2, 3, 4), m.ones(2, 3, 1)]),
    ],
    "isin": lambda m: [
        m.isin(m.tensor([[1, 2], [3, 4]]), m.tensor([2, 3])),
        m.isin(m.tensor([[1, 2], [3, 4]]), m.tensor([[2], [3]]), invert=True),
        m.isin(m.tensor([[1, 2], [3, 4]]), m.tensor([3, 2]), assume_unique=True),
        m.isin(2, m.tensor([2, 3])),
        m.isin(m.tensor([1, 2]), 2),
        m.isin(m.tensor([1, 2]), 1.5),
        m.isin(m.tensor([0.1]), 0.1),  # (a number does not promote float32)
        m.isin(m.tensor([0.1]), m.tensor([0.1], dtype=m.float64)),
        m.isin(m.tensor([2**53 + 1]), m.tensor([2.0**53], dtype=m.float64)),
        m.isin(m.tensor([NAN, 2.5, -0.0]), m.tensor([NAN, 2.5, 0.0])),
        m.isin(m.ones(2, requires_grad=True), m.ones(1)),
        m.isin(m.tensor([1, 2]), m.tensor([], dtype=m.int64)),
        m.isin(m.tensor([255], dtype=m.uint8), m.tensor([-1])),
    ],
    "is_nonzero": lambda m: [
        m.is_nonzero(m.tensor([1.0])),
        m.is_nonzero(m.tensor(0)),
        m.is_nonzero(m.tensor([[False]])),
        m.tensor([NAN]).is_nonzero(),
    ],
    "is_inference": lambda m: [m.is_inference(m.ones(1)), m.ones(1, requires_grad=True).is_inference()],
    "float_power": lambda m: [
        m.float_power(m.tensor([1.5, 2.0], requires_grad=True), 2),
        m.float_power(m.tensor([1.5, 2.0], requires_grad=True), m.tensor([1.0, 3.0])),
        m.float_power(m.tensor([2, 3]), m.tensor([2, 3])),
        m.float_power(2, m.tensor([2.0, 3.0], requires_grad=True)),
        m.float_power(2.5, m.tensor([2, 3])),
        m.tensor([2.0]).float_power(0.5),
        m.float_power(m.tensor([-8.0]), 1 / 3),
        m.float_power(m.tensor([True]), 2),
        m.float_power(m.tensor([2.0]), True),
        m.float_power(m.tensor([2.0], dtype=m.float64, requires_grad=True), 2),
        m.float_power(m.tensor([2.0]), 2, out=m.empty(1, dtype=m.float64)),
        m.tensor([1.5, 3.0], dtype=m.float64).float_power_(2),
    ],
    "addr": lambda m: [
        m.addr(m.zeros(3, 2, requires_grad=True), m.tensor([1.0, 2, 3]), m.tensor([4.0, 5])),
        m.addr(m.ones(3, 2), m.tensor([1.0, 2, 3]), m.tensor([4.0, 5]), beta=2, alpha=0.5),
        m.addr(m.full((3, 2), NAN), m.tensor([1.0, 2, 3]), m.tensor([4.0, 5]), beta=0),
        m.addr(m.full((3, 2), NAN, dtype=m.float64), m.tensor([1.0, 2, 3]), m.tensor([4.0, 5]), beta=0),
        m.addr(m.ones(2), m.tensor([1.0, 2, 3]), m.tensor([4.0, 5])),
        m.addr(m.tensor(1.0, dtype=m.float64), m.tensor([1.0, 2, 3]), m.tensor([4.0, 5])),
        m.addr(m.zeros(2, 2, dtype=m.int64), m.tensor([1, 2]), m.tensor([3, 4]), beta=2, alpha=3),
        m.addr(m.zeros(2, 2, dtype=m.int64), m.tensor([1.0, 2]), m.tensor([3, 4]), beta=1.5),
        m.addr(m.zeros(2, 2), m.tensor([1, 2]), m.tensor([3, 4])),
        m.addr(m.zeros(2, 2, dtype=m.bool), m.tensor([True, False]), m.tensor([True, True])),
        m.addr(m.ones(2, 2, dtype=m.bool), m.tensor([True, False]), m.tensor([False, True]), beta=False, alpha=True),
        m.ones(3, 2).addr(m.tensor([1.0, 2, 3]), m.tensor([4.0, 5]), alpha=2),
        m.ones(3, 2).addr_(m.tensor([1.0, 2, 3]), m.tensor([4.0, 5]), beta=0.5),
    ],
    "chain_matmul": lambda m: [
        m.chain_matmul(m.arange(6.0, requires_grad=True).reshape(2, 3), m.arange(12.0).reshape(3, 4)),
        m.chain_matmul(m.arange(6.0).reshape(2, 3), m.arange(12.0).reshape(3, 4), m.ones(4, 5)),
        m.chain_matmul(m.ones(2, 3, requires_grad=True)),
        m.chain_matmul(m.ones(2, 2, dtype=m.int64), m.ones(2, 2, dtype=m.int64)),
        m.chain_matmul(m.ones(2, 3), m.ones(3, 4), m.ones(4, 5), m.ones(5, 0)),
    ],
    "multi_dot": lambda m: [
        m.linalg.multi_dot([m.ones(3), m.ones(3, 4), m.ones(4)]),
        m.linalg.multi_dot([m.ones(3), m.ones(3, 4, requires_grad=True), m.ones(4, 2)]),
        m.linalg.multi_dot([m.ones(2, 3, requires_grad=True), m.ones(3, 4), m.ones(4, 2), m.ones(2, 6)]),
    ],
    "positive": lambda m: [m.positive(m.ones(2, requires_grad=True)), m.tensor([1], dtype=m.uint8).positive()],
    "slice_scatter": lambda m: [
        m.slice_scatter(m.zeros(4, 6, requires_grad=True), m.ones(4, 2), dim=1, start=1, end=5, step=2),
        m.zeros(4, 6).slice_scatter(m.ones(2, 6), start=2),
        m.slice_scatter(m.zeros(4, 6), m.ones(4, 2), 1, -2),
        m.slice_scatter(m.zeros(4, 6), m.ones(2, 6), start=2, end=100),
        m.slice_scatter(m.zeros(4, 6), m.ones(0, 6), start=3, end=1),
        m.slice_scatter(m.zeros(2, 3), m.full((2, 3), 1.7, dtype=m.float64, requires_grad=True)),
        m.slice_scatter(m.zeros(2, 3, dtype=m.int64), m.full((2, 3), 1.7)),
    ],
    "select_scatter": lambda m: [
        m.select_scatter(m.zeros(4, 6, requires_grad=True), m.ones(6), 0, 1),
        m.zeros(4, 6).select_scatter(m.ones(4), 1, -1),
        m.select_scatter(m.zeros(3), m.tensor(5.0), 0, 1),
    ],
    "diagonal_scatter": lambda m: [
        m.diagonal_scatter(m.zeros(3, 4, requires_grad=True), m.ones(3)),
        m.diagonal_scatter(m.zeros(3, 4), m.arange(3.0), 1),
        m.zeros(3, 4).diagonal_scatter(m.arange(2.0), -1),
        m.diagonal_scatter(m.zeros(3, 4), m.ones(0), 10),
        m.diagonal_scatter(m.zeros(2, 3, 4), m.arange(6.0).reshape(3, 2), 0, 0, 2),
        m.diagonal_scatter(m.zeros(2, 3, 4), m.arange(3.0).reshape(3, 1), 1, 2, 0),
    ],
    "narrow_copy": lambda m: [
        m.narrow_copy(m.arange(24.0, requires_grad=True).reshape(4, 6), 1, 1, 2),
        m.arange(24.0).reshape(4, 6).narrow_copy(-1, -3, 2),
        m.narrow_copy(m.arange(6).reshape(2, 3), 0, 2, 0),
        m.narrow_copy(m.zeros(4, 6), 1, m.tensor(1), 2),
    ],
    "nanmedian": lambda m: [
        m.nanmedian(m.tensor([[1.0, NAN, 3.0, 2.0], [NAN, 5, NAN, NAN], [4.0, 1.0, NAN, 1.0]], requires_grad=True)),
        m.nanmedian(m.tensor([[1.0, NAN, 3.0, 2.0], [NAN, 5, NAN, NAN], [4.0, 1.0, NAN, 1.0]], requires_grad=True), 1),
        m.tensor([[1.0, NAN, 3.0, 2.0], [NAN, NAN, 5.0, NAN], [4.0, 1.0, NAN, 1.0]]).nanmedian(0, keepdim=True),
        m.nanmedian(m.tensor([[2.0, 1.0, 2.0, 2.0, NAN, 3.0]]), 1),
        m.nanmedian(m.tensor([NAN, NAN])),
        m.nanmedian(m.tensor([NAN, NAN, NAN])),
        m.nanmedian(m.tensor([[NAN, NAN], [1.0, NAN]]), 1),
        m.nanmedian(m.tensor([])),
        m.nanmedian(m.zeros(0, 3), 1),
        m.nanmedian(m.tensor([3, 1, 2, 4])),
        m.nanmedian(m.tensor([[3, 1, 2, 4]]), 1),
        m.nanmedian(m.tensor(2.0)),
        m.nanmedian(m.tensor(2.0), 0),
        m.nanmedian(m.tensor(2.0), -1, True),
    ],
    "nan_to_num_": lambda m: [
        m.tensor([NAN, math.inf, -math.inf, 1.0]).nan_to_num_(1.0, 2.0, -2.0),
        m.nan_to_num_(m.tensor([NAN, math.inf]), 3.0),
        m.tensor([NAN, math.inf], dtype=m.float64).nan_to_num_(posinf=7.0),
        m.tensor([1]).nan_to_num_(),
        (m.tensor([NAN, 1.0], requires_grad=True) * 2).nan_to_num_(),
    ],
    "asarray": lambda m: [
        m.asarray([1, 2.5]),
        m.asarray([1, 2]),
        m.asarray(3.0),
        m.asarray(True),
        m.asarray(np.float64(2.0)),
        m.asarray(np.arange(3.0)),
        m.asarray(np.arange(3.0), dtype=m.float32),
        m.asarray([1.5, 2], dtype=m.int64),
        m.asarray(np.arange(3.0), requires_grad=True),
        m.asarray([1.0, 2.0], requires_grad=True),
        m.asarray([np.float32(1.0), np.float32(2.0)]),
        m.asarray(b"\x01\x02", dtype=m.uint8),
        m.asarray(bytearray(b"\x00\x00\x80?")),
        m.asarray(m.arange(3.0, requires_grad=True), dtype=m.float64),
        m.asarray(m.arange(3.0, requires_grad=True) * 2, copy=True),
        m.asarray(m.arange(3.0, requires_grad=True), copy=True, requires_grad=False),
        m.asarray(m.arange(3.0), copy=True, requires_grad=True),
    ],
}


@pytest.mark.parametrize("name", list(VALUES))
def test_values_dtypes_shapes_and_nodes_match_pytorch(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (chain_matmul's and asarray's, checked below)
        ours, theirs = _both(VALUES[name])
    _same(ours, theirs)


def test_results_are_what_their_definitions_say():
    """Without PyTorch: each result against what the function is defined to compute."""
    x = tg.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(x.sum_to_size(3, 1).numpy(), x.numpy().sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(tg.isin(tg.tensor([1, 5, 3]), tg.tensor([3, 4])).numpy(), [False, False, True])
    np.testing.assert_array_equal(tg.dstack([tg.ones(2), tg.zeros(2)]).numpy(), [[[1.0, 0.0], [1.0, 0.0]]])
    a, b = tg.tensor([1.0, 2.0, 3.0]), tg.tensor([4.0, 5.0])
    np.testing.assert_array_equal(tg.addr(tg.ones(3, 2), a, b, beta=2, alpha=3).numpy(), 2 + 3 * np.outer(a, b))
    power = tg.float_power(tg.tensor([3.0]), 0.5)
    assert power.dtype == tg.float64 and power.item() == math.sqrt(3.0)  # computed in float64
    values, indices = tg.nanmedian(tg.tensor([[NAN, 4.0, 1.0, 3.0]]), 1)  # median of 1, 3, 4
    assert values.tolist() == [3.0] and indices.tolist() == [3]
    assert tg.nanmedian(tg.tensor([NAN, 4.0, 1.0])).item() == 1.0  # lower median of 1, 4
    m = tg.arange(24.0).reshape(4, 6)
    assert [tuple(p.shape) for p in tg.hsplit(m, 3)] == [(4, 2)] * 3
    np.testing.assert_array_equal(tg.fliplr(m).numpy(), m.numpy()[:, ::-1])
    np.testing.assert_array_equal(tg.flipud(m).numpy(), m.numpy()[::-1])
    scattered = tg.diagonal_scatter(tg.zeros(3, 3), tg.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(scattered.numpy(), np.diag([1.0, 2.0, 3.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (its deprecation, checked below)
        product = tg.chain_matmul(m[:, :4], m[:4, :2])
    np.testing.assert_array_equal(product.numpy(), m.numpy()[:, :4] @ m.numpy()[:4, :2])
    assert tg.broadcast_shapes((2, 1), (3,)) == (2, 3) and tg.moveaxis is tg.movedim


# -- gradients -----------------------------------------------------------------------------------


def _split_joined(split, x, *args):
    return tg.cat([piece.reshape(-1) for piece in split(x, *args)])


GRADIENTS = {  # name: (call of tapegrad tensors, input shapes); float64, away from ties and kinks
    "broadcast_tensors": (lambda a, b: (lambda p, q: p * 2 + q * q)(*tg.broadcast_tensors(a, b)), [(2, 1), (3,)]),
    "broadcast_to": (lambda a: a.broadcast_to(2, 3, 4) ** 2, [(3, 1)]),
    "sum_to_size": (lambda a: a.sum_to_size(3, 1) ** 2, [(2, 3, 4)]),
    "sum_to_size, kept": (lambda a: a.sum_to_size(1, 3, 1) ** 2, [(2, 3, 4)]),
    "atleast_3d": (lambda a: tg.atleast_3d(a) ** 2, [(3,)]),
    "atleast_2d of a scalar": (lambda a: tg.atleast_2d(a) ** 3, [()]),
    "hsplit": (lambda a: _split_joined(tg.hsplit, a, [1, 3]) ** 2, [(2, 4)]),
    "vsplit": (lambda a: _split_joined(tg.vsplit, a * a, 2), [(4, 3)]),
    "dsplit": (lambda a: _split_joined(tg.dsplit, a, [2]).sin(), [(2, 2, 3)]),
    "fliplr": (lambda a: tg.fliplr(a) * tg.arange(6.0, dtype=tg.float64).reshape(2, 3), [(2, 3)]),
    "flipud": (lambda a: tg.flipud(a) * a, [(3, 2)]),
    "row_stack": (lambda a, b: tg.row_stack([a, b]) ** 2, [(3,), (2, 3)]),
    "dstack": (lambda a, b: tg.dstack([a, b]) ** 2, [(2, 3), (2, 3, 2)]),
    "float_power": (lambda a, b: tg.float_power(a, b), [(4,), (4,)]),
    "float_power of a number": (lambda b: tg.float_power(1.7, b), [(3,)]),
    "addr": (lambda m, a, b: tg.addr(m, a, b, beta=0.5, alpha=2.0) ** 2, [(3, 2), (3,), (2,)]),
    "addr, broadcast input": (lambda m, a, b: tg.addr(m, a, b), [(2,), (3,), (2,)]),
    "chain_matmul": (lambda a, b, c, d: tg.chain_matmul(a, b, c, d), [(2, 3), (3, 4), (4, 1), (1, 3)]),
    "slice_scatter": (lambda x, s: tg.slice_scatter(x, s, 1, 1, 5, 2) ** 2, [(3, 6), (3, 2)]),
    "select_scatter": (lambda x, s: tg.select_scatter(x, s, 0, -1) ** 2, [(3, 4), (4,)]),
    "diagonal_scatter": (lambda x, s: tg.diagonal_scatter(x, s, 1) ** 2, [(3, 4), (3,)]),
    "narrow_copy": (lambda x: tg.narrow_copy(x, 1, 1, 2) ** 2, [(3, 4)]),
    "nanmedian": (lambda x: tg.nanmedian(x) ** 2, [(7,)]),
    "nanmedian along a dim": (lambda x: tg.nanmedian(x, 1).values ** 2, [(3, 5)]),
    "nan_to_num_": (lambda x: (x * 1).nan_to_num_() ** 2, [(4,)]),
    "asarray, copied": (lambda x: tg.asarray(x * 1, copy=True) ** 2, [(3,)]),
}


@pytest.mark.parametrize("name", list(GRADIENTS))
def test_gradients_match_central_differences(name):
    call, shapes = GRADIENTS[name]
    arrays = [RNG.uniform(0.5, 2.0, size=shape) for shape in shapes]
    if name.startswith("nanmedian"):
        arrays[0].reshape(-1)[::3] = NAN  # (a central difference of a NaN is NaN: their gradient is 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = call(*[tg.tensor(a) for a in arrays])
        weights = RNG.uniform(0.5, 1.5, size=tuple(out.shape))
        want = numeric_gradients(call, arrays, weights)
        got = analytic_gradients(call, arrays, weights)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, np.nan_to_num(w), rtol=1e-6, atol=1e-8)


GRADIENT_PARITY = {  # name: (program of a module and its inputs, input arrays)
    "float_power": (lambda m, a, b: m.float_power(a, b), [np.array([1.5, 2.0, 0.5]), np.array([2.0, -1.0, 0.5])]),
    "float_power of float32": (lambda m, a: m.float_power(a.float(), 2), [np.array([1.5, 2.0])]),
    "addr": (lambda m, x, a, b: m.addr(x, a, b, beta=2, alpha=3), [np.zeros((3, 2)), np.arange(3.0), np.ones(2)]),
    "addr, beta 0": (lambda m, x, a, b: m.addr(x, a, b, beta=0), [np.full((3, 2), NAN), np.arange(3.0), np.ones(2)]),
    "slice_scatter in float32": (
        lambda m, x, s: m.slice_scatter(x, s.float(), 0, 1),
        [np.zeros((3, 2)), np.arange(4.0).reshape(2, 2)],
    ),
    "select_scatter": (lambda m, x, s: m.select_scatter(x, s, 1, 0), [np.zeros((3, 2)), np.arange(3.0)]),
    "diagonal_scatter": (lambda m, x, s: m.diagonal_scatter(x, s, -1, 1, 0), [np.zeros((3, 4)), np.arange(3.0)]),
    "nanmedian of ties": (lambda m, x: m.nanmedian(x), [np.array([2.0, 1.0, 2.0, 2.0, NAN, 3.0])]),
    "nanmedian of NaN": (lambda m, x: m.nanmedian(x), [np.array([NAN, NAN])]),
    "nanmedian of NaN and ties": (lambda m, x: m.nanmedian(x), [np.array([NAN, 1.0, NAN, 1.0])]),
    "nanmedian along a dim": (
        lambda m, x: m.nanmedian(x, 1).values,
        [np.array([[2.0, 1.0, 2.0, NAN], [NAN, NAN, 3, 1]])],
    ),
    "nanmedian of a NaN row": (lambda m, x: m.nanmedian(x, 1).values, [np.array([[NAN, NAN], [1.0, NAN]])]),
    "chain_matmul": (
        lambda m, a, b, c: m.chain_matmul(a, b, c),
        [np.ones((2, 3)), np.arange(12.0).reshape(3, 4), np.ones((4, 1))],
    ),
    "sum_to_size": (lambda m, x: x.sum_to_size(1, 3), [np.arange(6.0).reshape(2, 3)]),
    "broadcast_tensors": (lambda m, a, b: m.broadcast_tensors(a, b)[1], [np.ones((2, 1)), np.arange(3.0)]),
    "nan_to_num_": (lambda m, x: (x * 2).nan_to_num_(0.5, 3.0), [np.array([NAN, math.inf, 1.0])]),
}


@pytest.mark.parametrize("name", list(GRADIENT_PARITY))
def test_gradients_match_pytorch(name):
    program, arrays = GRADIENT_PARITY[name]

    def gradients(m):
        inputs = [m.tensor(a, dtype=m.float64, requires_grad=True) for a in arrays]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = program(m, *inputs)
        (out * m.arange(1.0, out.numel() + 1, dtype=out.dtype).reshape(out.shape)).sum().backward()
        return [None if x.grad is None else x.grad.numpy() for x in inputs]

    _torch()
    ours, theirs = gradients(tg), gradients(pytest.importorskip("torch"))
    for a, b in zip(ours, theirs):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_multi_dot_multiplies_in_the_order_of_fewest_multiplications():
    """(a x b)(b x c)(c x d): (AB)C costs a c (b + d) products, A(BC) b d (a + c); PyTorch takes
    the cheaper (at 40, 30, 20, 1: A(BC)). For four, the classic 10x30, 30x5, 5x60, 60x10 chain's
    cheapest order is (AB)(CD) (5000 products, against 27000 left to right)."""
    three = [RNG.standard_normal(shape).astype(np.float32) for shape in [(40, 30), (30, 20), (20, 1)]]
    four = [RNG.standard_normal(shape).astype(np.float32) for shape in [(10, 30), (30, 5), (5, 60), (60, 10)]]
    a, b, c = three
    ours = tg.linalg.multi_dot([tg.tensor(m) for m in three])
    np.testing.assert_array_equal(ours.numpy(), a @ (b @ c))  # (numpy's @ is the eager product)
    a, b, c, d = four
    chained = tg.chain_matmul(*[tg.tensor(m) for m in four])
    np.testing.assert_array_equal(chained.numpy(), (a @ b) @ (c @ d))
    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.chain_matmul(*[torch.tensor(m) for m in four])
    np.testing.assert_allclose(chained.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)


# -- views ---------------------------------------------------------------------------------------


def test_views_reach_their_base_as_pytorchs_do():
    def program(m):
        x = m.zeros(2, 3)
        same, expanded = m.broadcast_tensors(x, m.ones(3))
        same.add_(1)  # x itself: PyTorch returns a tensor of the broadcast shape as it is
        scalar = m.zeros(())
        m.atleast_2d(scalar).add_(2)  # a view of the 0-d tensor
        row = m.zeros(3)
        m.atleast_3d(row)[0, 1, 0] = 5
        grid = m.zeros(4, 6)
        left, right = m.hsplit(grid, 2)
        right.fill_(7)
        m.vsplit(grid, [1])[0].add_(1)
        m.dsplit(m.zeros(1, 1, 4), 2)[1].add_(3)
        wide = m.ones(2, 3)
        wide.broadcast_to(2, 3).mul_(4)  # nothing broadcast: a view to write through
        moved = m.zeros(2, 3)
        m.moveaxis(moved, 0, 1)[2, 1] = 9
        return [x, scalar, row, grid, wide, moved, same is x, m.atleast_1d(x) is x, m.atleast_2d(grid) is grid]

    _, *ours = _plain(program(tg))  # (after the list's own label)
    assert ours[6:] == [True, True, True]
    np.testing.assert_array_equal(ours[3][2], [[1.0] * 3 + [8.0] * 3] + [[0.0] * 3 + [7.0] * 3] * 3)
    np.testing.assert_array_equal(ours[5][2], [[0.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    torch = _torch()
    _same(["list", *ours], _plain(program(torch)))


def test_copies_do_not_reach_their_source():
    def program(m):
        x = m.arange(6.0).reshape(2, 3)
        m.fliplr(x).zero_()
        m.flipud(x).zero_()
        m.narrow_copy(x, 1, 0, 2).zero_()
        m.slice_scatter(x, m.ones(2, 3)).zero_()
        m.dstack([x]).zero_()
        return x

    assert _plain(program(tg))[2] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    torch = _torch()
    _same(_plain(program(tg)), _plain(program(torch)))


def test_an_expanded_view_refuses_an_in_place_change():
    _, expanded = tg.broadcast_tensors(tg.zeros(2, 3), tg.ones(3))
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor refers to a single memory"):
        expanded.add_(1)


def test_narrow_copy_and_scatters_are_new_tensors():
    x = tg.arange(6.0).reshape(2, 3)
    for result in (tg.narrow_copy(x, 1, 0, 2), tg.select_scatter(x, tg.ones(3), 0, 0), tg.fliplr(x)):
        assert result._base is None and not np.shares_memory(result.numpy(), x.numpy())


# -- asarray's sharing rules ------------------------------------------------------------------------


def test_asarray_shares_what_pytorch_shares():
    def program(m):
        array = np.arange(3.0)
        shared = m.asarray(array)
        shared[0] = 10.0  # reaches the array
        copied = m.asarray(array, copy=True)
        copied[1] = 20.0  # does not
        converted = m.asarray(array, dtype=m.float32)
        converted[2] = 30.0  # another dtype: a copy
        buffer = bytearray(8)
        m.asarray(buffer)[0] = 1.0  # float32 over the bytes
        t = m.arange(3.0)
        view = t[1:]
        return [array.tolist(), bytes(buffer), m.asarray(t) is t, m.asarray(t, copy=True) is t, m.asarray(view) is view]

    ours = program(tg)
    assert ours[0] == [10.0, 1.0, 2.0] and ours[2] is True and ours[3] is False and ours[4] is True
    torch = _torch()
    assert ours == program(torch)


def test_asarray_sets_requires_grad_on_the_tensor_given_as_pytorch():
    def program(m):
        leaf = m.arange(3.0)
        same = m.asarray(leaf, requires_grad=True)  # the leaf itself now requires grad
        trained = m.arange(3.0, requires_grad=True)
        m.asarray(trained, requires_grad=False)  # and this one no longer does
        product = m.arange(3.0, requires_grad=True) * 2
        kept = m.asarray(product)
        detached = m.asarray(product, requires_grad=False)
        return [
            same is leaf,
            leaf.requires_grad,
            trained.requires_grad,
            kept is product,
            detached.requires_grad,
            detached.grad_fn is None,
        ]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = program(tg)
    assert ours == [True, True, False, True, False, True]
    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ours == program(torch)


def test_asarray_warns_once_where_requires_grad_defaults_to_the_tensors():
    import tapegrad._factories as factories

    factories._WARNED["requires_grad"] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tg.asarray(tg.ones(2, requires_grad=True))
        tg.asarray(tg.ones(2, requires_grad=True) * 2)
        tg.asarray(tg.ones(2))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and messages[0].startswith("torch.asarray: unspecified requires_grad now defaults")
    assert caught[0].category is UserWarning


def test_chain_matmul_warns_once_a_process_as_pytorch():
    import tapegrad.linalg as linalg

    linalg._CHAIN_MATMUL_WARNED[0] = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tg.chain_matmul(tg.ones(2, 2), tg.ones(2, 2))
        tg.chain_matmul(tg.ones(2, 2), tg.ones(2, 2))
    assert len(caught) == 1 and caught[0].category is UserWarning
    message = (
        "torch.chain_matmul is deprecated and will be removed in a future PyTorch release. Use torch.linalg.multi_dot"
    )
    assert str(caught[0].message).startswith(message)
    _torch()  # PyTorch's once a process, in a process of its own (this one may have warned already)
    script = "import torch, warnings\nwarnings.simplefilter('always')\n"
    script += "torch.chain_matmul(torch.ones(2, 2), torch.ones(2, 2))\n" * 2
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stderr.count(message) == 1, result.stderr


def test_is_inference_is_false_since_inference_mode_makes_ordinary_tensors():
    with tg.inference_mode():
        made = tg.ones(2)
    assert tg.is_inference_mode_enabled() is False and made.is_inference() is False
    x = tg.ones(2, requires_grad=True)
    (made * x).sum().backward()  # (PyTorch refuses an inference tensor saved for backward)
    assert x.grad.tolist() == [1.0, 1.0]


# -- errors ----------------------------------------------------------------------------------------

ERRORS = {  # name: (program of a module, PyTorch's exception class, PyTorch's message)
    "broadcast_tensors": (
        lambda m: m.broadcast_tensors(m.zeros(4, 2, 1), m.zeros(3, 2, 3)),
        RuntimeError,
        "The size of tensor a (4) must match the size of tensor b (3) at non-singleton dimension 0",
    ),
    "broadcast_tensors of a list": (
        lambda m: m.broadcast_tensors([m.zeros(2)]),
        TypeError,
        "expected Tensor as element 0 in argument 0, but got list",
    ),
    "broadcast_tensors of a number": (
        lambda m: m.broadcast_tensors(m.zeros(2), 3),
        TypeError,
        "expected Tensor as element 1 in argument 0, but got int",
    ),
    "broadcast_shapes": (
        lambda m: m.broadcast_shapes((2,), [3]),
        RuntimeError,
        "Attempting to broadcast a dimension of length 3 at -1! Mismatching argument at index 1 had [3]; but expected "
        "shape should be broadcastable to [2]",
    ),
    "broadcast_shapes, negative": (
        lambda m: m.broadcast_shapes((-1,)),
        ValueError,
        "Attempting to broadcast a dimension with negative length!",
    ),
    "broadcast_shapes of a float": (
        lambda m: m.broadcast_shapes(2.0),
        RuntimeError,
        "Input shapes should be of type ints, a tuple of ints, or a list of ints, got 2.0",
    ),
    "sum_to_size": (
        lambda m: m.ones(2, 3).sum_to_size(4),
        RuntimeError,
        "size {[4]} is not expandable to size {[2, 3]}.",
    ),
    "sum_to_size, longer": (
        lambda m: m.ones(2, 3).sum_to_size(1, 2, 3),
        RuntimeError,
        "size {[1, 2, 3]} is not expandable to size {[2, 3]}.",
    ),
    "atleast_2d of an int": (
        lambda m: m.atleast_2d(3),
        TypeError,
        "atleast_2d() received an invalid combination of arguments - got (int), but expected one of:",
    ),
    "atleast_1d of ints": (
        lambda m: m.atleast_1d([1, 2]),
        TypeError,
        "expected Tensor as element 0 in argument 0, but got int",
    ),
    "hsplit of a scalar": (
        lambda m: m.hsplit(m.tensor(1.0), 1),
        RuntimeError,
        "torch.hsplit requires a tensor with at least 1 dimension, but got a tensor with 0 dimensions!",
    ),
    "hsplit, indivisible": (
        lambda m: m.hsplit(m.ones(4, 6), 4),
        RuntimeError,
        "torch.hsplit attempted to split along dimension 1, but the size of the dimension 6 is not divisible by the "
        "split_size 4!",
    ),
    "hsplit, zero sections": (
        lambda m: m.hsplit(m.ones(6), 0),
        RuntimeError,
        "torch.hsplit attempted to split along dimension 0, but the size of the dimension 6 is not divisible by the "
        "split_size 0!",
    ),
    "hsplit, -1 sections": (
        lambda m: m.hsplit(m.ones(6), -1),
        RuntimeError,
        "number of sections must be larger than 0, got -1",
    ),
    "hsplit, -4 sections": (
        lambda m: m.hsplit(m.ones(6), -4),
        RuntimeError,
        "torch.hsplit attempted to split along dimension 0, but the size of the dimension 6 is not divisible by the "
        "split_size -4!",
    ),
    "hsplit by a 1-D tensor": (
        lambda m: m.hsplit(m.ones(6), m.tensor([2])),
        TypeError,
        "hsplit() received an invalid combination of arguments - got (Tensor, Tensor), but expected one of:",
    ),
    "hsplit by a float": (
        lambda m: m.hsplit(m.ones(6), 2.0),
        TypeError,
        "hsplit() received an invalid combination of arguments - got (Tensor, float), but expected one of:",
    ),
    "vsplit of a vector": (
        lambda m: m.vsplit(m.ones(6), 2),
        RuntimeError,
        "torch.vsplit requires a tensor with at least 2 dimension, but got a tensor with 1 dimensions!",
    ),
    "dsplit of a matrix": (
        lambda m: m.dsplit(m.ones(2, 6), 2),
        RuntimeError,
        "torch.dsplit requires a tensor with at least 3 dimension, but got a tensor with 2 dimensions!",
    ),
    "dsplit, indivisible": (
        lambda m: m.dsplit(m.ones(2, 4, 6), 4),
        RuntimeError,
        "torch.dsplit attempted to split along dimension 2, but the size of the dimension 6 is not divisible by the "
        "split_size 4!",
    ),
    "moveaxis": (
        lambda m: m.moveaxis(m.ones(2, 3, 4), (0, 1), (1,)),
        RuntimeError,
        "movedim: Invalid source or destination dims: source ([0, 1] dims) should contain the same number of dims as "
        "destination ([1] dims)",
    ),
    "fliplr": (lambda m: m.fliplr(m.ones(3)), RuntimeError, "Input must be >= 2-d."),
    "flipud": (lambda m: m.flipud(m.tensor(1.0)), RuntimeError, "Input must be >= 1-d."),
    "row_stack of a tensor": (
        lambda m: m.row_stack(m.ones(2, 3)),
        TypeError,
        "row_stack(): argument 'tensors' (position 1) must be tuple of Tensors, not Tensor",
    ),
    "row_stack of none": (lambda m: m.row_stack([]), RuntimeError, "vstack expects a non-empty TensorList"),
    "vstack of a tensor": (
        lambda m: m.vstack(m.ones(2, 3)),
        TypeError,
        "vstack(): argument 'tensors' (position 1) must be tuple of Tensors, not Tensor",
    ),
    "dstack of a tensor": (
        lambda m: m.dstack(m.ones(2)),
        TypeError,
        "dstack(): argument 'tensors' (position 1) must be tuple of Tensors, not Tensor",
    ),
    "dstack of none": (lambda m: m.dstack([]), RuntimeError, "dstack expects a non-empty TensorList"),
    "dstack of mismatched shapes": (
        lambda m: m.dstack([m.ones(3), m.ones(2, 3)]),
        RuntimeError,
        "Sizes of tensors must match except in dimension 2. Expected size 1 but got size 2 for tensor number 1 in the "
        "list.",
    ),
    "isin of bools": (
        lambda m: m.isin(m.tensor([True]), m.tensor([True])),
        RuntimeError,
        "Unsupported input type encountered for isin(): Bool",
    ),
    "isin of a bool test": (
        lambda m: m.isin(m.tensor([1, 2]), m.tensor([True])),
        RuntimeError,
        "Unsupported input type encountered for isin(): Bool",
    ),
    "isin of two numbers": (
        lambda m: m.isin(2, 3),
        TypeError,
        "isin() received an invalid combination of arguments - got (int, int), but expected one of:",
    ),
    "isin of a list": (
        lambda m: m.isin(m.tensor([1]), [1]),
        TypeError,
        "isin() received an invalid combination of arguments - got (Tensor, list), but expected one of:",
    ),
    "is_nonzero of two": (
        lambda m: m.is_nonzero(m.tensor([1.0, 2.0])),
        RuntimeError,
        "Boolean value of Tensor with more than one value is ambiguous",
    ),
    "is_nonzero of none": (
        lambda m: m.is_nonzero(m.tensor([])),
        RuntimeError,
        "Boolean value of Tensor with no values is ambiguous",
    ),
    "is_nonzero of a number": (
        lambda m: m.is_nonzero(3),
        TypeError,
        "is_nonzero(): argument 'input' (position 1) must be Tensor, not int",
    ),
    "is_inference of a number": (
        lambda m: m.is_inference(3),
        TypeError,
        "is_inference(): argument 'input' (position 1) must be Tensor, not int",
    ),
    "float_power of two numbers": (
        lambda m: m.float_power(2, 3),
        TypeError,
        "float_power() received an invalid combination of arguments - got (int, int), but expected one of:",
    ),
    "float_power into float32": (
        lambda m: m.float_power(m.tensor([2.0]), 2, out=m.empty(1)),
        RuntimeError,
        "the output given to float_power has dtype Float but the operation's result requires dtype Double",
    ),
    "float_power_ of float32": (
        lambda m: m.tensor([2.0]).float_power_(2),
        RuntimeError,
        "the base given to float_power_ has dtype Float but the operation's result requires dtype Double",
    ),
    "addr of a matrix": (
        lambda m: m.addr(m.ones(3, 2), m.ones(3, 1), m.ones(2)),
        RuntimeError,
        "addr: Expected 1-D argument vec1, but got 2-D",
    ),
    "addr of a matrix vec2": (
        lambda m: m.addr(m.ones(3, 2), m.ones(3), m.ones(1, 2)),
        RuntimeError,
        "addr: Expected 1-D argument vec2, but got 2-D",
    ),
    "addr, input not broadcast": (
        lambda m: m.addr(m.ones(3), m.ones(3), m.ones(2)),
        RuntimeError,
        "The expanded size of the tensor (2) must match the existing size (3) at non-singleton dimension 1.  Target "
        "sizes: [3, 2].  Tensor sizes: [3]",
    ),
    "addr, float alpha of integers": (
        lambda m: m.addr(m.zeros(2, 2, dtype=m.int64), m.tensor([1, 2]), m.tensor([3, 4]), alpha=1.5),
        RuntimeError,
        "For integral input tensors, argument alpha must not be a floating point number.",
    ),
    "addr, float beta before a bool alpha": (
        lambda m: m.addr(m.zeros(2, 2, dtype=m.int64), m.tensor([1, 2]), m.tensor([3, 4]), beta=1.0, alpha=True),
        RuntimeError,
        "For integral input tensors, argument beta must not be a floating point number.",
    ),
    "addr, bool beta of floats": (
        lambda m: m.addr(m.zeros(2, 2), m.tensor([1, 2]), m.tensor([3, 4]), beta=True),
        RuntimeError,
        "Boolean beta only supported for Boolean results.",
    ),
    "addr, bool alpha of floats": (
        lambda m: m.addr(m.zeros(2, 2), m.tensor([1, 2]), m.tensor([3, 4]), beta=1.5, alpha=True),
        RuntimeError,
        "Boolean alpha only supported for Boolean results.",
    ),
    "addr, float alpha of bools": (
        lambda m: m.addr(m.ones(2, 2, dtype=m.bool), m.tensor([True, True]), m.tensor([True, False]), alpha=1.5),
        RuntimeError,
        "For integral input tensors, argument alpha must not be a floating point number.",
    ),
    "chain_matmul of none": (lambda m: m.chain_matmul(), RuntimeError, "chain_matmul(): Expected one or more matrices"),
    "chain_matmul of a vector": (
        lambda m: m.chain_matmul(m.ones(3), m.ones(3, 2)),
        RuntimeError,
        "Tensor dimension is 1, expected 2 instead.",
    ),
    "chain_matmul of one vector": (
        lambda m: m.chain_matmul(m.ones(3)),
        RuntimeError,
        "Tensor dimension is 1, expected 2 instead.",
    ),
    "chain_matmul of a list": (
        lambda m: m.chain_matmul([m.ones(2, 2), m.ones(2, 2)]),
        TypeError,
        "expected Tensor as element 0 in argument 0, but got list",
    ),
    "chain_matmul, shapes": (
        lambda m: m.chain_matmul(m.ones(2, 3), m.ones(4, 5)),
        RuntimeError,
        "multi_dot(): tensors 0 and 1 with shapes [2, 3] and [4, 5] cannot be multiplied",
    ),
    "chain_matmul, dtypes": (
        lambda m: m.chain_matmul(m.ones(2, 3), m.ones(3, 5, dtype=m.float64)),
        RuntimeError,
        "multi_dot(): all tensors must have be the same dtype but tensor 0 is float and tensor 1 double",
    ),
    "multi_dot, integer dtypes": (
        lambda m: m.linalg.multi_dot([m.ones(2, 2, dtype=m.int64), m.ones(2, 2)]),
        RuntimeError,
        "multi_dot(): all tensors must have be the same dtype but tensor 0 is long int and tensor 1 float",
    ),
    "positive of bools": (
        lambda m: m.positive(m.tensor([True])),
        RuntimeError,
        "The `+` operator, on a bool tensor is not supported.",
    ),
    "positive of a number": (
        lambda m: m.positive(3),
        TypeError,
        "positive(): argument 'input' (position 1) must be Tensor, not int",
    ),
    "slice_scatter, shape": (
        lambda m: m.slice_scatter(m.zeros(4, 6), m.ones(4, 3), dim=1, start=1, end=5, step=2),
        RuntimeError,
        "expected src to have a size equal to the slice of self. src size = [4, 3], slice size = [4, 2]",
    ),
    "slice_scatter, no broadcast": (
        lambda m: m.slice_scatter(m.zeros(4, 6), m.ones(6)),
        RuntimeError,
        "expected src to have a size equal to the slice of self. src size = [6], slice size = [4, 6]",
    ),
    "slice_scatter, step 0": (
        lambda m: m.slice_scatter(m.zeros(4, 6), m.ones(4, 0), dim=1, step=0),
        RuntimeError,
        "slice step must be positive",
    ),
    "slice_scatter of a scalar": (
        lambda m: m.slice_scatter(m.tensor(1.0), m.tensor(2.0)),
        IndexError,
        "slice() cannot be applied to a 0-dim tensor.",
    ),
    "slice_scatter, dim": (
        lambda m: m.slice_scatter(m.zeros(4, 6), m.ones(4, 6), dim=2),
        IndexError,
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)",
    ),
    "select_scatter, index": (
        lambda m: m.select_scatter(m.zeros(4, 6), m.ones(6), 0, 4),
        IndexError,
        "select(): index 4 out of range for tensor of size [4, 6] at dimension 0",
    ),
    "select_scatter, shape": (
        lambda m: m.select_scatter(m.zeros(4, 6), m.ones(1), 0, 1),
        RuntimeError,
        "expected src to have a size equal to the slice of self. src size = [1], slice size = [6]",
    ),
    "select_scatter of a scalar": (
        lambda m: m.select_scatter(m.tensor(1.0), m.tensor(2.0), 0, 0),
        IndexError,
        "select() cannot be applied to a 0-dim tensor.",
    ),
    "diagonal_scatter, shape": (
        lambda m: m.diagonal_scatter(m.zeros(2, 3, 4), m.ones(2, 4), 0, 0, 1),
        RuntimeError,
        "expected src to have a size equal to the slice of self. src size = [2, 4], slice size = [4, 2]",
    ),
    "diagonal_scatter, same dims": (
        lambda m: m.diagonal_scatter(m.zeros(2, 3, 4), m.ones(2, 4), 0, 0, 0),
        RuntimeError,
        "diagonal dimensions cannot be identical 0, 0",
    ),
    "diagonal_scatter of a vector": (
        lambda m: m.diagonal_scatter(m.zeros(3), m.ones(3)),
        IndexError,
        "Dimension out of range (expected to be in range of [-1, 0], but got 1)",
    ),
    "narrow_copy, past the end": (
        lambda m: m.narrow_copy(m.zeros(4, 6), 1, 1, 10),
        RuntimeError,
        "start (1) + length (10) exceeds dimension size (6).",
    ),
    "narrow_copy, negative length": (
        lambda m: m.narrow_copy(m.zeros(4, 6), 1, -3, -1),
        RuntimeError,
        "start (3) + length (-1) exceeds dimension size (6).",
    ),
    "narrow_copy, start": (
        lambda m: m.narrow_copy(m.zeros(4, 6), 1, 10, 1),
        IndexError,
        "start out of range (expected to be in range of [-6, 6], but got 10)",
    ),
    "narrow_copy, dim": (
        lambda m: m.narrow_copy(m.zeros(4, 6), 2, 0, 1),
        RuntimeError,
        "Expected dim < static_cast<int64_t>(self_sizes.size()) to be true, but got false.",
    ),
    "narrow_copy, negative dim": (
        lambda m: m.narrow_copy(m.zeros(4, 6), -3, 0, 1),
        IndexError,
        "Dimension out of range (expected to be in range of [-2, 1], but got -3)",
    ),
    "narrow_copy of a scalar": (
        lambda m: m.narrow_copy(m.tensor(1.0), 0, 0, 1),
        RuntimeError,
        "narrow() cannot be applied to a 0-dim tensor.",
    ),
    "narrow of a scalar": (
        lambda m: m.narrow(m.tensor(1.0), 0, 0, 1),
        RuntimeError,
        "narrow() cannot be applied to a 0-dim tensor.",
    ),
    "narrow_copy, float length": (
        lambda m: m.narrow_copy(m.zeros(4, 6), 1, 1, 2.0),
        TypeError,
        "narrow_copy(): argument 'length' (position 4) must be int, not float",
    ),
    "nanmedian of an empty dim": (
        lambda m: m.nanmedian(m.zeros(0, 3), 0),
        IndexError,
        "median(): Expected reduction dim 0 to have non-zero size.",
    ),
    "nanmedian of bools": (
        lambda m: m.nanmedian(m.tensor([True, False])),
        NotImplementedError,
        "\"median_cpu\" not implemented for 'Bool'",
    ),
    "nan_to_num_ of a leaf": (
        lambda m: m.tensor([NAN], requires_grad=True).nan_to_num_(),
        RuntimeError,
        "a leaf Variable that requires grad is being used in an in-place operation.",
    ),
    "asarray, aliasing a sequence": (
        lambda m: m.asarray([1, 2], copy=False),
        ValueError,
        "can't alias arbitrary sequence into a tensor.",
    ),
    "asarray, aliasing another dtype": (
        lambda m: m.asarray(np.arange(3.0), dtype=m.float32, copy=False),
        ValueError,
        "can't alias tensor with dtype 'Double' into dtype 'Float'.",
    ),
    "asarray, aliasing a tensor of another dtype": (
        lambda m: m.asarray(m.ones(2), dtype=m.float64, copy=False),
        ValueError,
        "can't alias tensor with dtype 'Float' into dtype 'Double'.",
    ),
    "asarray, aliasing a numpy scalar": (
        lambda m: m.asarray(np.float64(1.0), copy=False),
        RuntimeError,
        "can't alias NumPy scalars. Either remove copy=False or transform it in a ndarray. ",
    ),
    "asarray, integers requiring grad": (
        lambda m: m.asarray(np.arange(3), requires_grad=True),
        RuntimeError,
        "Only Tensors of floating point and complex dtype can require gradients",
    ),
    "asarray, a tensor of integers requiring grad": (
        lambda m: m.asarray(m.arange(3), requires_grad=True),
        RuntimeError,
        "Only Tensors of floating point and complex dtype can require gradients",
    ),
    "asarray of two bytes as float32": (
        lambda m: m.asarray(b"\x01\x02"),
        ValueError,
        "buffer length (2 bytes) after offset (0 bytes) must be a multiple of element size (4)",
    ),
    "asarray of no bytes": (
        lambda m: m.asarray(b""),
        ValueError,
        "both buffer length (0) and count (-1) must not be 0",
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_are_pytorchs(name):
    program, kind, message = ERRORS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(kind, match=re.escape(message)):
            program(tg)


@pytest.mark.parametrize("name", list(ERRORS))
def test_the_expected_errors_are_pytorchs_own(name):
    torch = _torch()
    program, kind, message = ERRORS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(kind, match=re.escape(message)) as raised:
            program(torch)
    assert type(raised.value) is kind
