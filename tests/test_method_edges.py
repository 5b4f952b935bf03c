"""Tensor and Module methods at their edges, as PyTorch gives them: type names as strings,
0-d tensors through movedim and topk, a module registered twice, printed modules."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

from .outcomes import outcomes, values_and_dtype


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


def test_overwrites_and_setitem_show_pytorch_s_nodes():
    names = {}
    for label, change in {
        "zero_": lambda t: t.zero_(),
        "fill_": lambda t: t.fill_(2.0),
        "fill_ of a tensor": lambda t: t.fill_(tg.tensor(3.0)),
        "copy_": lambda t: t.copy_(tg.ones(2)),
    }.items():
        names[label] = change(tg.ones(2, requires_grad=True) * 1).grad_fn.name()
    assert names == {
        "zero_": "ZeroBackward0",
        "fill_": "FillBackward2",
        "fill_ of a tensor": "FillBackward3",
        "copy_": "torch::autograd::CopyBackwards",
    }
    x = tg.ones(3, requires_grad=True) * 1
    x[0] = 5.0
    assert repr(x) == "tensor([5., 1., 1.], grad_fn=<CopySlices>)"  # the class, as PyTorch prints it


def _constructed(m):
    """What each odd construction gives: its values and dtype, or its error's class and message."""
    calls = [
        lambda: m.tensor([m.tensor([1.0]), m.tensor([2.0])]),  # one-element tensors are numbers
        lambda: m.tensor([m.tensor([1.0, 3.0]), m.tensor([2.0, 4.0])]),
        lambda: m.tensor([1, None], dtype=m.float64),
        lambda: m.tensor([1, None], dtype=m.bool),
        lambda: m.tensor("x", dtype=m.bool),
        lambda: m.full((2,), float("nan"), dtype=m.int32),
        lambda: m.full_like(m.tensor([1, 2]), float("inf")),
        lambda: m.full((2,), 300, dtype=m.uint8),
        lambda: m.arange(5, 0, 1),
        lambda: m.arange(0, 5, 0),
        lambda: m.arange(0, 5, 0.5, dtype=m.int32),
        lambda: m.arange(10, 1, -1.5, dtype=m.int32),
    ]
    return outcomes(calls, values_and_dtype)


def test_odd_constructions_follow_pytorch():
    # (NaN filled int32 with -2**31, None read as NaN, arange of the wrong sign empty...)
    ours = _constructed(tg)
    assert ours[0] == ([1.0, 2.0], "float32") and ours[5][0] == "RuntimeError"
    torch = pytest.importorskip("torch")
    assert ours == _constructed(torch)


def test_deepcopy_and_pickle_of_results_views_and_recorded_values():
    import copy
    import pickle

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    x.grad = tg.tensor([0.5, 0.5])
    copied = copy.deepcopy(x)
    assert copied.requires_grad and copied.grad.tolist() == [0.5, 0.5] and copied is not x
    with pytest.raises(RuntimeError, match="Only Tensors created explicitly by the user"):
        copy.deepcopy(x * 1)  # PyTorch's; a TypeError about memoryviews before
    loaded = pickle.loads(pickle.dumps(x * 2))  # a result loads as a leaf, as PyTorch's
    assert loaded.tolist() == [2.0, 4.0] and loaded.requires_grad and loaded.is_leaf
    base = x.detach()
    view = base[1:]
    assert pickle.loads(pickle.dumps(view)).tolist() == [2.0]  # (a weak reference failed it)
    assert pickle.loads(pickle.dumps(base)).tolist() == [1.0, 2.0]
    assert copy.deepcopy(view).tolist() == [2.0]
    # Inside tapegrad.record, a detached value pickles (it raised) and is then a guard.
    tape = tg.record(lambda t: (pickle.loads(pickle.dumps(t.detach())) * t).sum(), tg.tensor([1.0, 2.0]))
    assert tape(tg.tensor([1.0, 2.0])).item() == 5.0
    with pytest.raises(tg.GuardError):
        tape(tg.tensor([3.0, 2.0]))


def test_a_deep_copy_of_a_module_reads_its_own_buffers():
    import copy

    # A leaf a backward saved caches its array's address; the deep copy kept the original's
    # address beside its new array, so a backward through the copy read the original's memory
    # (gradients of the original's values; freed memory once it was gone).
    class Scale(tg.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("s", tg.tensor([1.0, 2.0, 3.0, 4.0], dtype=tg.float64))

        def forward(self, x):
            return x * self.s

    module = Scale()
    x = tg.ones(4, dtype=tg.float64, requires_grad=True)
    module(x).sum().backward()
    copied = copy.deepcopy(module)
    module.s.mul_(100.0)
    x2 = tg.ones(4, dtype=tg.float64, requires_grad=True)
    copied(x2).sum().backward()
    assert x2.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_the_legacy_constructor_of_a_recorded_value_is_a_guard():
    tape = tg.record(lambda x: (tg.Tensor(x * 2) * x).sum(), tg.tensor([1.0, 2.0]))
    assert tape(tg.tensor([1.0, 2.0])).item() == 10.0
    with pytest.raises(tg.GuardError):
        tape(tg.tensor([3.0, 2.0]))


def test_numpy_arrays_share_memory_not_the_array_object():
    """``from_numpy``, ``as_tensor`` and ``numpy()`` share memory with an array, not the array
    object: a caller's ``a.shape = ...`` or ``a.dtype = ...`` changed the tensor itself (a
    parameter became another shape and dtype; a backward read it in the old order)."""
    a = np.arange(6.0).reshape(2, 3)
    t = tg.from_numpy(a)
    a.shape = (3, 2)
    assert t.shape == (2, 3)
    a[0, 0] = 7.0  # the memory is shared
    assert t[0, 0].item() == 7.0
    w = tg.nn.Parameter(tg.ones(2, 4))
    view = w.detach().numpy()
    view.dtype = np.float64
    assert w.shape == (2, 4) and w.dtype == tg.float32 and w.sum().item() == 8.0
    b = np.arange(3.0, dtype=np.float32)
    shared = tg.as_tensor(b, dtype=tg.float32)  # its own dtype: shared, as PyTorch's
    b[0] = 5.0
    assert shared[0].item() == 5.0


@pytest.mark.parametrize(("value", "name"), [(np.ones(2), "numpy.ndarray"), ([1.0, 2.0], "list"), (3.0, "float")])
def test_data_of_something_else_than_a_tensor_raises(value, name):
    x = tg.zeros(2)
    with pytest.raises(TypeError, match=f"Variable data has to be a tensor, but got {name}$"):
        x.data = value
    assert x.tolist() == [0.0, 0.0]


def test_np_array_of_a_tensor_is_a_copy_and_asarray_shares():
    """numpy's protocol: ``np.array(t)`` copies, ``np.asarray(t)`` shares. ``__array__`` ignored
    ``copy`` and gave the tensor's own memory, so writes to the array changed the tensor."""
    t = tg.arange(4.0)
    copied = np.array(t)
    copied[0] = 100.0
    np.copy(t)[1] = 200.0
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0]
    shared = np.asarray(t)
    shared[2] = 7.0
    assert t[2].item() == 7.0
    assert np.asarray(t, dtype=np.float64).dtype == np.float64 and t.dtype == tg.float32


def test_lists_and_tuples_are_not_operands_as_in_pytorch():
    """``[0] * tensor(3)`` is list repetition in PyTorch (its operators return NotImplemented for
    a list); it was computed elementwise, silently, and ``t + [1, 2]`` was taken."""
    assert [0] * tg.tensor(3) == [0, 0, 0]
    assert (1, 2) * tg.tensor(2) == (1, 2, 1, 2)
    t = tg.tensor([1, 2])
    for operation in (lambda: t + [1, 2], lambda: [1, 2] + t, lambda: t - (1, 2), lambda: t ** [1, 2]):
        with pytest.raises(TypeError):
            operation()
    with pytest.raises(TypeError, match=r"add\(\): argument 'other' \(position 1\) must be Tensor, not list"):
        tg.add(t, [1, 2])
    with pytest.raises(TypeError, match=r"mul_\(\): argument 'other' \(position 1\) must be Tensor, not list"):
        t.mul_([1, 2])
    with pytest.raises(TypeError):
        t += [1, 2]
    assert t.tolist() == [1, 2]


@pytest.mark.parametrize(
    "data",
    [[1.0, np.float64(0.1)], [True, np.float64(0.5)], [1.0, np.array(0.1)], [[1.0, 2.0], np.array([0.1, 0.2])]],
)
def test_a_numpy_float64_after_python_floats_makes_the_tensor_float64(data):
    """PyTorch promotes with every numpy scalar in the list; only the first element was looked
    at, so 0.1 came back as float32's 0.10000000149."""
    t = tg.tensor(data)
    assert t.dtype == tg.float64
    np.testing.assert_array_equal(t.numpy(), np.array(data, dtype=np.float64))


def test_arange_of_bools_is_integral_as_pytorchs():
    assert tg.arange(True, 5).dtype == tg.int64 and tg.arange(True, 5).tolist() == [1, 2, 3, 4]
    assert tg.arange(0, 5, True).tolist() == [0, 1, 2, 3, 4] and tg.arange(0.5, 3).dtype == tg.float32


def test_factories_take_their_size_and_bounds_by_keyword():
    """``torch.zeros(size=(2, 3))``, ``arange(end=5)`` and ``randint(high=5, size=(3,))`` are
    PyTorch's keyword forms; they raised TypeError."""
    for factory in (tg.zeros, tg.ones, tg.empty, tg.randn, tg.rand):
        assert tuple(factory(size=(2, 3)).shape) == (2, 3)
        with pytest.raises(TypeError, match="multiple values for argument 'size'"):
            factory(2, size=(2,))
    assert tg.arange(end=5).tolist() == [0, 1, 2, 3, 4]
    assert tuple(tg.randint(high=5, size=(3,)).shape) == (3,) and tg.randint(high=1, size=(2,)).tolist() == [0, 0]


def test_python_types_name_dtypes_in_to_and_in_is_elementwise():
    t = tg.tensor([1, 2])
    assert (t.to(float).dtype, t.to(int).dtype, t.to(bool).dtype) == (tg.float64, tg.int64, tg.bool)
    assert t.to(dtype=float).dtype == tg.float64 and tg.nn.Linear(2, 2).to(float).weight.dtype == tg.float64
    assert 2 in t and 5 not in t and tg.tensor(2) in t and tg.tensor([1, 2]) in tg.tensor([[1, 2], [3, 4]])
    with pytest.raises(RuntimeError, match="__contains__ only supports Tensor or scalar"):
        None in t  # noqa: B015
