"""Second-pass parity findings (sort/argsort/topk order, norm ``dtype=``, vstack/hstack/
column_stack of 0-d tensors, chunk/split of an empty dimension, all/any of uint8, rounding of
bools): each case runs in tapegrad and PyTorch and must agree on values, dtypes (reported and
stored), shapes, grad_fn names, the gradients of its leaves, or the exception raised."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")

NAN, INF = float("nan"), float("inf")

# (name, case): ``case(m, leaf)`` builds inputs with module ``m`` (tapegrad or torch); ``leaf(values,
# dtype)`` makes a leaf that requires grad (float64 unless a case needs the dtype to differ).
CASES = [
    # sort / argsort / topk: descending for every dtype, NaN first
    ("sort bool descending", lambda m, leaf: m.tensor([True, False, True]).sort(descending=True)),
    ("argsort bool descending", lambda m, leaf: m.argsort(m.tensor([True, False, True]), descending=True)),
    ("sort bool 2-D dim 1", lambda m, leaf: m.tensor([[False, True], [True, False]]).sort(dim=1, descending=True)),
    ("sort bool stable", lambda m, leaf: m.sort(m.tensor([False, True, False, True]), descending=True, stable=True)),
    ("sort uint8 descending", lambda m, leaf: m.tensor([0, 1, 2, 255], dtype=m.uint8).sort(descending=True)),
    ("sort int64 minimum descending", lambda m, leaf: m.tensor([-(2**63), 0, 5, 2**63 - 1]).sort(descending=True)),
    (
        "argsort int32 minimum descending",
        lambda m, leaf: m.tensor([-(2**31), 0, 7], dtype=m.int32).argsort(descending=True),
    ),
    ("sort inf and NaN descending", lambda m, leaf: leaf([INF, NAN, 1.0, -INF]).sort(descending=True)),
    ("sort NaN 2-D dim 0 descending", lambda m, leaf: leaf([[INF, 1.0], [NAN, NAN], [1.0, INF]]).sort(0, True)),
    ("topk with inf and NaN", lambda m, leaf: m.topk(leaf([INF, NAN, 1.0]), 2)),
    ("topk uint8", lambda m, leaf: m.topk(m.tensor([0, 200, 3], dtype=m.uint8), 2)),
    ("topk bool", lambda m, leaf: m.topk(m.tensor([True, False]), 1)),
    # norm dtype=: cast first, so the gradient comes back in the leaf's dtype (float32 here)
    ("vector_norm dtype", lambda m, leaf: m.linalg.vector_norm(leaf([3.0, 4.0], "float32"), dtype=m.float64)),
    ("norm dtype no overflow", lambda m, leaf: m.norm(leaf([1e20, 1e20], "float32"), dtype=m.float64)),
    ("Tensor.norm p=1 dim dtype", lambda m, leaf: leaf([3.0, -4.0], "float32").norm(p=1, dim=0, dtype=m.float64)),
    ("norm inf dtype", lambda m, leaf: m.norm(leaf([[3.0, -4.0]], "float32"), INF, dim=1, dtype=m.float64)),
    ("linalg.norm vector dtype", lambda m, leaf: m.linalg.norm(leaf([3.0, 4.0], "float32"), dtype=m.float64)),
    (
        "vector_norm dims keepdim dtype",
        lambda m, leaf: m.linalg.vector_norm(leaf([[1.0, 2.0]], "float32"), 3, (0, 1), True, dtype=m.float64),
    ),
    ("vector_norm narrowing dtype", lambda m, leaf: m.linalg.vector_norm(leaf([3.0, 4.0]), dtype=m.float32)),
    ("vector_norm integer input dtype", lambda m, leaf: m.linalg.vector_norm(m.tensor([3, 4]), dtype=m.float32)),
    ("norm integer dtype", lambda m, leaf: m.norm(m.tensor([3.0, 4.0]), dtype=m.int64)),
    # vstack / hstack / column_stack: atleast_2d / atleast_1d first
    ("vstack 0-d", lambda m, leaf: m.vstack([leaf(1.0), leaf(2.0)])),
    ("vstack one 0-d", lambda m, leaf: m.vstack([leaf(1.0)])),
    ("vstack 0-d and 1-D", lambda m, leaf: m.vstack([leaf(1.0), leaf([2.0, 3.0])])),
    ("vstack empty list", lambda m, leaf: m.vstack([])),
    ("hstack 0-d", lambda m, leaf: m.hstack([leaf(1.0), leaf(2.0)])),
    ("hstack 1-D and 0-d", lambda m, leaf: m.hstack([leaf([1.0]), leaf(2.0)])),
    ("hstack 1-D and 2-D", lambda m, leaf: m.hstack([leaf([1.0, 2.0]), leaf([[3.0, 4.0]])])),
    ("hstack 2-D and 0-d", lambda m, leaf: m.hstack([leaf([[1.0, 2.0]]), leaf(3.0)])),
    ("hstack empty list", lambda m, leaf: m.hstack([])),
    ("column_stack 0-d", lambda m, leaf: m.column_stack([leaf(1.0), leaf(2.0)])),
    ("column_stack 2-D and 0-d", lambda m, leaf: m.column_stack([leaf([[1.0, 2.0]]), leaf(3.0)])),
    ("column_stack 0-d and 1-D", lambda m, leaf: m.column_stack([leaf(1.0), leaf([2.0, 3.0])])),
    ("column_stack empty list", lambda m, leaf: m.column_stack([])),
    # chunk / split of an empty dimension
    ("chunk empty into 2", lambda m, leaf: leaf(np.zeros((0, 4))).chunk(2)),
    ("chunk empty into 3", lambda m, leaf: m.chunk(leaf(np.zeros((0, 4))), 3, dim=0)),
    ("chunk empty into 1", lambda m, leaf: leaf(np.zeros((0, 4))).chunk(1)),
    ("chunk empty last dim", lambda m, leaf: leaf(np.zeros((5, 0))).chunk(4, -1)),
    ("chunk 0-d", lambda m, leaf: m.tensor(1.0).chunk(2)),
    ("chunk 0-d into 0", lambda m, leaf: m.tensor(1.0).chunk(0)),
    ("split negative size", lambda m, leaf: m.zeros(0, 4).split(-1)),
    ("split negative sizes", lambda m, leaf: m.zeros(5, 3).split([-1, 6])),
]

# all/any keep uint8 (PyTorch's masks of old); round and floor refuse bools, as PyTorch does
# (numpy rounded them into float16 storage labelled float32).
UINT8_AND_BOOL = [
    ("all uint8", lambda m, leaf: m.tensor([1, 2, 0], dtype=m.uint8).all()),
    ("any uint8", lambda m, leaf: m.tensor([1, 2, 0], dtype=m.uint8).any()),
    ("all uint8 dim", lambda m, leaf: m.tensor([[1, 0], [2, 3]], dtype=m.uint8).all(dim=1)),
    ("any uint8 dim keepdim", lambda m, leaf: m.any(m.tensor([[1, 0], [0, 0]], dtype=m.uint8), 0, True)),
    ("round bool", lambda m, leaf: m.round(m.tensor([True, False]))),
    ("round_ bool", lambda m, leaf: m.tensor([True, False]).round_()),
    ("floor bool", lambda m, leaf: m.tensor([True, False]).floor()),
    ("floor_ bool", lambda m, leaf: m.tensor([True, False]).floor_()),
]


def _flat(result) -> list:
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _flat(item)]
    return [result]


def _dtype_name(dtype) -> str:
    return str(dtype).split(".")[-1]


# sort and topk are composites here, their values a gather (a known difference, not these findings').
COMPOSITE_GRAD_FNS = {"SortBackward0": "GatherBackward0", "TopkBackward0": "GatherBackward0"}


def _describe(tensor, module) -> tuple:
    """What must agree, values apart: shape, dtype, the storage's numpy dtype, grad_fn name."""
    grad_fn = tensor.grad_fn
    name = None if grad_fn is None else (grad_fn.name() if module is tg else type(grad_fn).__name__)
    name = COMPOSITE_GRAD_FNS.get(name, name)
    return tuple(tensor.shape), _dtype_name(tensor.dtype), str(tensor.detach().numpy().dtype), name


def _run(module, case):
    """The case's outputs and its leaves' gradients (of a weighted sum of the outputs), or the
    exception raised as (class name, message)."""
    leaves = []

    def leaf(values, dtype="float64"):
        tensor = module.tensor(values, dtype=getattr(module, dtype), requires_grad=True)
        leaves.append(tensor)
        return tensor

    try:
        outputs = _flat(case(module, leaf))
    except Exception as error:  # noqa: BLE001 - the exception is the result compared
        return (type(error).__name__, str(error)), None
    differentiable = [t for t in outputs if t.requires_grad]
    if differentiable:
        loss = sum(
            (t * module.tensor(np.arange(1.0, t.numel() + 1).reshape(tuple(t.shape)), dtype=t.dtype)).sum()
            for t in differentiable
        )
        loss.backward()
    return outputs, [None if t.grad is None else t.grad for t in leaves]


def _assert_same_tensors(ours: list, theirs: list) -> None:
    assert len(ours) == len(theirs)
    for got, want in zip(ours, theirs):
        if want is None:
            assert got is None
            continue
        assert _describe(got, tg) == _describe(want, torch)
        expected = want.detach().numpy()
        if expected.dtype.kind == "f":
            rtol = 1e-12 if expected.dtype == np.float64 else 1e-6
            np.testing.assert_allclose(got.detach().numpy(), expected, rtol=rtol)
        else:
            np.testing.assert_array_equal(got.detach().numpy(), expected)


@pytest.mark.parametrize("name,case", CASES + UINT8_AND_BOOL, ids=[c[0] for c in CASES + UINT8_AND_BOOL])
def test_matches_pytorch(name, case):
    ours, our_grads = _run(tg, case)
    theirs, their_grads = _run(torch, case)
    if their_grads is None or our_grads is None:  # (class name, message) of the exception raised
        assert (ours if our_grads is None else "returned") == (theirs if their_grads is None else "returned")
        return
    _assert_same_tensors(ours, theirs)
    _assert_same_tensors(our_grads, their_grads)
