"""In-place changes of saved values: PyTorch's version-counter error, raised lazily, never a
gradient of other values than the forward used."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg

MESSAGE = "one of the variables needed for gradient computation has been modified by an inplace operation"


def _scenario(m, size: int, change):
    x = m.ones(size, requires_grad=True)
    y = x * 2.0
    through_add = (y + 3.0).sum()
    through_mul = (y * y).sum()
    change(y)
    through_add.backward()  # AddBackward saves nothing: works
    with pytest.raises(RuntimeError) as raised:
        through_mul.backward()  # MulBackward saved y: raises
    return str(raised.value)


@pytest.mark.parametrize("size", [3, 5000], ids=["copied-when-saved", "saved-by-reference"])
@pytest.mark.parametrize(
    "change",
    [
        lambda y: y.add_(1.0),
        lambda y: y.mul_(2.0),
        lambda y: y.__iadd__(1.0),
        lambda y: y[0:2].zero_(),
        lambda y: y.detach().fill_(0.0),
    ],
    ids=["add_", "mul_", "+=", "through a view", "through detach"],
)
def test_modified_saved_value_raises_only_where_needed(size, change):
    message = _scenario(tg, size, change)
    assert message.startswith(MESSAGE)
    assert f"[tapegrad.FloatTensor [{size}]], which is output 0 of " in message
    assert "is at version 1; expected version 0 instead" in message


@pytest.mark.parametrize(
    "change", [lambda y: y.add_(1.0), lambda y: y.mul_(3.0), lambda y: y.__isub__(1.0)], ids=["add_", "mul_", "-="]
)
def test_message_matches_pytorch(change):
    torch = pytest.importorskip("torch")
    ours = _scenario(tg, 3, change)
    theirs = _scenario(torch, 3, change)
    assert ours.split(" Hint:")[0] == theirs.split(" Hint:")[0].replace("torch.", "tapegrad.")


@pytest.mark.parametrize(
    "program",
    [
        lambda m, x: (x.exp(), "__iadd__"),  # its own result saved: "output 0 of Exp"
        lambda m, x: (x.sigmoid(), "exp_"),  # "output 0 of Sigmoid"
        lambda m, x: ((x * 2).sin(), None),  # sin saved its input; the input changed: "Add"
    ],
    ids=["exp then +=", "sigmoid then exp_", "input of sin then add_"],
)
def test_the_message_names_the_op_as_pytorch_does(program):
    torch = pytest.importorskip("torch")
    messages = []
    for m in (tg, torch):
        x = m.ones(3, requires_grad=True)
        if program(m, x)[1] is None:
            h = x * 2
            out = h.sin()
            h.add_(1)
        else:
            out, change = program(m, x)
            getattr(out, change)(1) if change == "__iadd__" else getattr(out, change)()
        with pytest.raises(RuntimeError) as raised:
            out.sum().backward()
        messages.append(str(raised.value).split(" Hint:")[0])
    assert messages[0] == messages[1].replace("torch.", "tapegrad.")


def test_a_modified_constant_raises_too():
    w = tg.ones(3, requires_grad=True)
    X = tg.tensor([1.0, 2.0, 3.0])
    out = (w * X).sum()
    X.add_(1.0)
    with pytest.raises(
        RuntimeError, match=r"\[tapegrad.FloatTensor \[3\]\] is at version 1; expected version 0 instead"
    ):
        out.backward()


def test_changes_through_data_bypass_the_version_check():
    x = tg.ones(3, requires_grad=True)
    y = x * 2.0
    out = (y * y).sum()
    y.data.mul_(10.0)
    out.backward()  # no error, as in PyTorch
    assert x.grad is not None
    w = tg.ones(2, requires_grad=True)
    loss = (w * w).sum()
    w.data.mul_(3.0)
    loss.backward()
    assert w.grad.tolist() == [6.0, 6.0]  # a leaf is read live, as PyTorch reads it


@pytest.mark.parametrize("out_features", [5, 80], ids=["transpose-saved", "read-in-place"])  # 80 x 64 >= 4,096
@pytest.mark.parametrize("layer", ["linear", "matmul"])
def test_a_weight_replaced_through_data_after_a_product_with_its_transpose(out_features, layer):
    """``w.data = new`` between ``x @ w.t()`` and its backward: PyTorch's product saved the
    transpose, a view of the old storage, and the input's gradient is the old weight's, however
    the tape recorded the product (a large weight is read in place, not through the view)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    values = rng.standard_normal((4, 64)), rng.standard_normal((out_features, 64)), rng.standard_normal(out_features)
    grads = []
    for m in (tg, torch):
        x, w, b = (m.tensor(v, requires_grad=True) for v in values)
        h = x * 1.0
        y = m.nn.functional.linear(h, w, b) if layer == "linear" else h @ w.t() + b
        w.data = m.tensor(3.0 * values[1])
        (y * y).sum().backward()
        grads.append([t.grad.numpy().copy() for t in (x, w, b)])
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_a_weight_read_through_its_transpose_and_itself_refuses_a_replaced_data():
    """The tape keeps one value per row: a large weight a product read in place through its
    transpose (whose backward wants the old values) and another op read itself (which wants the
    new ones, as PyTorch's saved leaf does) cannot give both after ``w.data = new``; the
    backward says so rather than give one of them the other's."""
    rng = np.random.default_rng(5)
    x = tg.tensor(rng.standard_normal((4, 64)), requires_grad=True)
    w = tg.tensor(rng.standard_normal((80, 64)), requires_grad=True)
    loss = tg.nn.functional.linear(x * 1.0, w).sum() + (w * w).sum()
    w.data = w.data * 3.0
    with pytest.raises(RuntimeError, match="read it through its transpose"):
        loss.backward()


# Ops of transposes of large leaves are computed on the leaves (``_record._transposed_source``)
_OPS_OF_TRANSPOSES = {
    "mul": lambda a, b: (a.t() * b.t()).sum(),
    "div": lambda a, b: (a.t() / b.t()).sum(),
    "sin-then-mul": lambda a, b: (b.t().sin() * a.t()).sum(),
    "mul-then-sin": lambda a, b: (a.t() * b.T).sin().sum(),
    "permute": lambda a, b: (a.permute(1, 0) * b.transpose(0, 1)).sum(),
    "sum-keepdim": lambda a, b: (b.t().sum(1, keepdim=True) * a.t()).sum(),
    "and-an-add-of-the-leaf": lambda a, b: (a.t() * b.t()).sum() + (a + b).sum(),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", _OPS_OF_TRANSPOSES.values(), ids=_OPS_OF_TRANSPOSES.keys())
def test_a_leaf_replaced_through_data_after_an_op_of_its_transpose(op, dtype):
    """``b.data = new`` between ``a.t() * b.t()`` and its backward: PyTorch's op saved the
    transposes, views of the old storage, and the gradients are the old values', though the tape
    computed the op on the leaves themselves (at 64 x 80, the transposes are read in place)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    values = [rng.standard_normal((64, 80)).astype(dtype) for _ in range(2)]
    grads = []
    for m in (tg, torch):
        a, b = (m.tensor(v, requires_grad=True) for v in values)
        y = op(a, b)
        b.data = m.tensor(3.0 * values[1])
        y.backward()
        grads.append([t.grad.numpy().copy() for t in (a, b)])
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize(
    "op",
    [
        lambda b: (b.t() * b.t()).sum() + (b * b).sum(),
        lambda b: (b.t() @ b).sum(),
        lambda b: (b @ b.t()).sum(),
    ],
    ids=["an-op-of-its-transpose-and-one-of-itself", "its-transpose-times-itself", "itself-times-its-transpose"],
)
def test_a_leaf_read_through_its_transpose_and_itself_refuses_a_replaced_data(op):
    """As for the weight above, where one op (a product of the leaf and its transpose) reads
    both: PyTorch's backward reads the old values through the view and the new through the leaf,
    which one value per row cannot give."""
    b = tg.tensor(np.random.default_rng(7).standard_normal((64, 80)), requires_grad=True)
    loss = op(b)
    b.data = b.data * 3.0
    with pytest.raises(RuntimeError, match="read it through its transpose"):
        loss.backward()


# Ops that save a view of ``b`` (PyTorch saves the view; the tape, a C-ordered copy of it)
_OPS_SAVING_VIEWS = {
    "a @ b.t()": lambda m, a, b: (a @ b.t()).sum(),
    "linear": lambda m, a, b: m.nn.functional.linear(a, b).sum(),
    "a.t() * b.t()": lambda m, a, b: (a.t() * b.t()).sum(),
    "a column": lambda m, a, b: (a[:, 0] * b[:, 0]).sum(),
    "every other row": lambda m, a, b: (a[::2] * b[::2]).sum(),
    "a broadcast row": lambda m, a, b: (a * b[0]).sum(),
    "an expanded column": lambda m, a, b: (a * b[:, :1].expand_as(a)).sum(),
    "a.t() @ b": lambda m, a, b: (a.t() @ b).sum(),
    "sin of b.t()": lambda m, a, b: b.t().sin().sum() + a.sum(),
    "b.t() squared": lambda m, a, b: (b.t() ** 2).sum() + a.sum(),
}
_UNSEEN_WRITES = {
    "data.mul_": lambda b: b.data.mul_(3.0),
    "data.copy_": lambda b: b.data.copy_(b.data * 3.0),
    "data[:] =": lambda b: b.data.__setitem__(slice(None), b.data * 3.0),
}


@pytest.mark.parametrize("shape", [(4, 8), (64, 80)], ids=["copied", "large"])
@pytest.mark.parametrize("b_is", ["leaf", "result"])
@pytest.mark.parametrize("write", _UNSEEN_WRITES.values(), ids=_UNSEEN_WRITES.keys())
@pytest.mark.parametrize("op", _OPS_SAVING_VIEWS.values(), ids=_OPS_SAVING_VIEWS.keys())
def test_a_write_autograd_does_not_see_reaches_a_saved_view(op, write, b_is, shape):
    """``b.data.mul_(3)`` between the forward and the backward: PyTorch's op saved a view of
    ``b``'s storage, and its backward reads the new values. The tape saved a C-ordered copy of
    a small view; the backward copies it again (``Tape.refresh_view_copies``), as it reads a
    large transpose's source or a contiguous operand by reference."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    values = [rng.standard_normal(shape) for _ in range(2)]
    grads = []
    for m in (tg, torch):
        a, b_leaf = (m.tensor(v, requires_grad=True) for v in values)
        b = b_leaf * 1.0 if b_is == "result" else b_leaf
        y = op(m, a, b)
        write(b)
        y.backward()
        grads.append([t.grad.numpy().copy() for t in (a, b_leaf)])
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_a_saved_view_changed_in_place_is_version_checked_not_refreshed():
    """A change autograd sees (under no_grad, of the tensor itself) leaves the copy as it was:
    the backward raises PyTorch's error, never reads the new values as the saved ones."""
    a = tg.ones((4, 8), requires_grad=True)
    h = a * 2.0
    loss = (a.t() * h.t()).sum()
    with tg.no_grad():
        h.mul_(3.0)
    with pytest.raises(RuntimeError, match=MESSAGE):
        loss.backward()


_VIEWS_OF_A_LEAF = {
    "t()": lambda x: x.t(),
    "a column": lambda x: x[:, 1],
    "every other row": lambda x: x[::2],
    "the diagonal": lambda x: x.diagonal(),
    "a column of t()": lambda x: x.t()[:, 0],
    "a row": lambda x: x[0],
}


@pytest.mark.parametrize("shape", [(3, 4), (64, 80)], ids=["small", "large"])
@pytest.mark.parametrize("view", _VIEWS_OF_A_LEAF.values(), ids=_VIEWS_OF_A_LEAF.keys())
def test_a_view_of_a_leaf_kept_across_an_update_reads_the_new_values(view, shape):
    """``wt = w.t()`` kept across steps, ``w`` updated under no_grad (an optimizer's step): the
    next forward's backward reads ``w``'s new values, as PyTorch's, not a copy of the transpose
    saved by the first forward (its row's saved value is let go: ``Tape.forget_saved``)."""
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(10).standard_normal(shape)
    results = []
    for m in (tg, torch):
        w = m.tensor(values, requires_grad=True)
        kept = view(w)
        (kept * kept).sum().backward()  # the first step
        with m.no_grad():
            w.mul_(2.0)
            w.grad = None
        loss = (kept.sin() * kept).sum()
        loss.backward()
        results.append((loss.item(), w.grad.numpy().copy()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "output",
    [lambda v: v, lambda v: v.contiguous(), lambda v: tg_or_torch(v).nn.functional.dropout(v, 0.0)],
    ids=["the view", "contiguous()", "dropout(p=0)"],
)
def test_the_backward_of_a_view_whose_base_changed_starts_from_its_new_values(output):
    """``v = y[:1]; y.mul_(2); v.backward(...)``: PyTorch regenerates the view's node, so the
    gradient goes through the change; the backward starts there too, not at the view's row."""
    torch = pytest.importorskip("torch")
    grads = []
    for m in (tg, torch):
        x = m.tensor([0.5, -1.0, 2.0], requires_grad=True)
        y = x * 2.0
        v = y[:1]
        y.mul_(2.0)
        output(v).backward(m.ones(1))
        grads.append(x.grad.numpy().tolist())
    assert grads[0] == grads[1] == [4.0, 0.0, 0.0]


def test_the_last_row_of_a_buffer_filled_after_its_view_was_taken():
    """A recurrent buffer whose last row is taken before the loop fills the buffer in place:
    ``last.backward`` differentiates the filled values (the weight's gradient is not zero)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    xs, w0 = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))
    grads = []
    for m in (tg, torch):
        w = m.tensor(w0, requires_grad=True)
        h = m.zeros(4, 3)
        last = h[-1]
        for t in range(4):
            h[t] = m.tanh(m.tensor(xs[t]) @ w + (h[t - 1] if t else 0.0))
        last.backward(m.ones(3))
        grads.append(w.grad.numpy().copy())
    assert np.abs(grads[1]).sum() > 0
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def tg_or_torch(tensor):
    return tg if isinstance(tensor, tg.Tensor) else __import__("torch")


def test_in_place_on_a_recorded_tensor_records_the_op():
    x = tg.ones(2, requires_grad=True)
    y = x * 3.0
    y += 1.0
    y *= y
    assert y.grad_fn.name() == "MulBackward0"
    y.sum().backward()
    assert x.grad.tolist() == [24.0, 24.0]


@pytest.mark.parametrize(
    ("method", "grad_b", "grad_w"),
    [
        ("add_", [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
        ("sub_", [1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]),
        ("mul_", [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),
        ("div_", [1.0, 0.5, 1.0 / 3.0], [-1.0, -0.5, -1.0 / 3.0]),
    ],
)
def test_an_in_place_op_with_a_wider_operand_keeps_the_dtype_and_the_gradients(method, grad_b, grad_w):
    """``b.add_(w)``, float32 ``b`` and float64 ``w``: computed in float64, kept in float32, as
    PyTorch does, and differentiable through both. The gradients were once zero, silently (the
    row was float64, the values float32), and ``mul_`` raised a false in-place error."""
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, requires_grad=True)
    b = a * 1
    getattr(b, method)(w)
    assert b.dtype == tg.float32
    assert b.grad_fn.name() == method.removesuffix("_").title() + "Backward0"
    b.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), grad_b, rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), grad_w, rtol=1e-12)


def test_an_in_place_op_on_a_view_with_a_wider_operand():
    a = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, requires_grad=True)
    b = a * 1
    b[1:].add_(w[1:])
    b.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("make", "change", "message"),
    [
        (
            lambda: tg.tensor([1, 2, 3]),
            lambda x: x.mul_(1.5),
            "result type Float can't be cast to the desired output type Long",
        ),
        (
            lambda: tg.tensor([1, 2, 3]),
            lambda x: x.add_(tg.tensor([1.5, 1.0, 1.0])),
            "result type Float can't be cast to the desired output type Long",
        ),
        (
            lambda: tg.tensor([True, False]),
            lambda x: x.add_(1),
            "result type Long can't be cast to the desired output type Bool",
        ),
    ],
)
def test_an_in_place_op_refuses_a_result_its_dtype_cannot_hold(make, change, message):
    """PyTorch's rule: no floating result into an integer tensor, nothing into a bool one (the
    values were once truncated silently)."""
    x = make()
    with pytest.raises(RuntimeError, match=message):
        change(x)


def test_an_in_place_op_narrows_an_integer_result_as_pytorch_does():
    x = tg.tensor([1, 2], dtype=tg.int32)
    x.add_(tg.tensor([1, 2]))
    assert x.dtype == tg.int32
    assert x.tolist() == [2, 4]


def test_an_in_place_op_on_a_view_of_a_leaf_that_requires_grad_raises():
    """PyTorch's error; it was allowed, and the leaf silently became a non-leaf whose ``.grad`` a
    training loop never saw again."""
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for change in (
        lambda: x[1:].add_(1),
        lambda: x.view(3).mul_(2),
        lambda: tg.nn.Parameter(tg.ones(3)).view(3).mul_(2),
    ):
        with pytest.raises(
            RuntimeError, match="a view of a leaf Variable that requires grad is being used in an in-place"
        ):
            change()
    assert x.is_leaf
    with tg.no_grad():
        x[1:].add_(1)
    assert x.is_leaf
    assert x.tolist() == [1.0, 3.0, 4.0]


def test_a_reshape_that_copies_does_not_see_its_source_change():
    # c.t().reshape(-1) copies (PyTorch's UnsafeViewBackward0): a later change of c is not a
    # change of what the product saved, in PyTorch and here.
    x = tg.ones(4, requires_grad=True)
    c = tg.arange(4.0).view(2, 2)
    y = (c.t().reshape(-1) * x).sum()
    c.add_(1)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 2.0, 1.0, 3.0])


def test_version_counts_every_in_place_change_from_the_first():
    # PyTorch's _version counts changes whether or not anything watches the tensor yet; the
    # counter was made only when a view or a saved value needed it, so this read 0.
    c = tg.zeros(3)
    c.add_(1)
    c.mul_(2)
    alias = c.detach()
    c[0] = 5.0
    assert c._version == alias._version == 3


def _saved_transpose_changed(m, rows: int, mode: str) -> str:
    """``x @ b.t()`` saved the transposed view; then ``b`` or the view changes in place."""
    x = m.ones(5, 64, dtype=m.float64, requires_grad=True)
    b = m.ones(rows, 64, dtype=m.float64, requires_grad=True) * 1
    view = b.t()
    y = x @ view
    if mode == "base":
        b.add_(1)
    elif mode == "base, no grad":
        with m.no_grad():
            b.mul_(2)
    else:
        view.add_(1)
    with pytest.raises(RuntimeError) as raised:
        y.sum().backward()
    return str(raised.value).split(" Hint:")[0]


# 32 rows: the product saved a copy of the view; 128 (8,192 elements): it reads the view's
# source in place (_linalg._mm_of_sources), and the message must still name the view.
@pytest.mark.parametrize("rows", [32, 128])
@pytest.mark.parametrize("mode", ["base", "base, no grad", "view"])
def test_a_changed_saved_view_is_named_as_pytorch_names_it(rows, mode):
    message = _saved_transpose_changed(tg, rows, mode)
    assert f"[tapegrad.DoubleTensor [64, {rows}]], which is output 0 of AsStrided, is at version" in message
    torch = pytest.importorskip("torch")
    assert message == _saved_transpose_changed(torch, rows, mode).replace("torch.", "tapegrad.")


CROSS_READ_OPS = {
    "x @ c": lambda x, c: x @ c,
    "x.t() @ c": lambda x, c: x.t() @ c,
    "c @ x.t()": lambda x, c: c @ x.t(),
    "x * c": lambda x, c: x * c,
    "x.t() * c": lambda x, c: x.t() * c.t(),
    "x[0] * c[0]": lambda x, c: x[0] * c[0],
    "x / c": lambda x, c: x / c,
}


@pytest.mark.parametrize("size", [4, 80], ids=["copied-when-saved", "saved-by-reference"])
@pytest.mark.parametrize("name", list(CROSS_READ_OPS))
def test_an_input_read_only_for_a_gradient_nobody_takes_may_change(name, size):
    """``x * c`` with ``c`` taking no gradient reads ``c`` for x's gradient and ``x`` for
    nothing: PyTorch does not save x, so changing it in place before the backward is fine, and
    x's gradient is the same as without the change. Changing ``c`` still fails the backward."""
    op = CROSS_READ_OPS[name]
    rng = np.random.default_rng(3)
    start, constant = rng.uniform(1, 2, (size, size)), rng.uniform(1, 2, (size, size))

    def run(change_x: bool, change_c: bool):
        leaf = tg.tensor(start, requires_grad=True)
        x = leaf * 1
        c = tg.tensor(constant)
        y = op(x, c)
        if change_x:
            x.add_(1)
        if change_c:
            c.add_(1)
        y.sum().backward()
        return leaf.grad.numpy()

    np.testing.assert_array_equal(run(True, False), run(False, False))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        run(False, True)


def test_a_diagonal_is_a_view_to_write_through_and_an_expand_is_refused():
    """numpy's diagonal is read-only and its broadcast_to too; PyTorch writes through a
    diagonal (the gradient follows) and refuses to write into an expand, with its message."""
    leaf = tg.ones(3, 3, requires_grad=True)
    values = leaf * 1
    values.diagonal().mul_(3)
    values.sum().backward()
    assert leaf.grad.tolist() == [[3.0, 1.0, 1.0], [1.0, 3.0, 1.0], [1.0, 1.0, 3.0]]
    plain = tg.ones(3, 3)
    plain.diagonal()[0] = 5.0
    assert plain.sum().item() == 13.0
    with pytest.raises(RuntimeError, match="^unsupported operation: more than one element of the written-to tensor"):
        tg.ones(3, 3)[0:1].expand(3, 3).add_(1)


@pytest.mark.parametrize("size", [3, 80])
@pytest.mark.parametrize("later", ["mul", "mm"])
def test_a_later_reader_of_a_leaf_changed_in_place_reads_its_new_values(size, later):
    """``w * c`` (c takes no gradient) keeps a non-contiguous leaf ``w`` as a copy without
    checking its version; ``w`` then changes under no_grad, and a later op reads it. That op must
    read the new values (PyTorch's gradient), not the first op's copy, silently."""
    base = np.arange(size * size, dtype=np.float64).reshape(size, size) + 1
    w = tg.tensor(base).t().detach().requires_grad_()  # F-ordered: saved as a copy
    v = tg.tensor(np.ones((size, size)), requires_grad=True)
    y = w * tg.tensor(np.full((size, size), 2.0))
    with tg.no_grad():
        w.add_(100)
    current = w.detach().numpy().copy()
    if later == "mul":
        (w * (y + v)).sum().backward()
        np.testing.assert_array_equal(v.grad.numpy(), current)
    else:
        ((y + v) @ w).sum().backward()
        np.testing.assert_array_equal(v.grad.numpy(), np.ones((size, size)) @ current.T)


def _augmented_assignments(T):
    """``//=``, ``%=``, ``**=``, ``&=``, ``|=``, ``^=`` and their methods, through views and
    aliases, with a gradient through ``**=``; what each leaves where."""
    out = []
    x = T.tensor([1.0, 2.0, 3.0])
    v = x[1:]
    v **= 2
    out.append(x.tolist())
    x = T.tensor([7, -7])
    alias = x
    x //= 2
    out.append(alias.tolist())
    x = T.tensor([7.0, -7.0, 2.5])
    alias = x
    x %= 3
    alias.remainder_(2.0)
    out.append(x.tolist())
    m = T.tensor([True, True])
    v = m[:1]
    v &= T.tensor([False])
    out.append(m.tolist())
    m = T.tensor([1, 2])
    m |= 4
    m ^= 1
    m.bitwise_and_(6)
    m.floor_divide_(2)
    out.append(m.tolist())
    leaf = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = leaf * 1
    y[1:] **= 2
    y.sum().backward()
    out.append(leaf.grad.tolist())
    try:
        x = T.tensor([7, -7])
        x //= 2.5
    except RuntimeError as error:
        out.append(str(error))
    return out


def test_augmented_assignments_change_the_tensor_in_place_as_pytorch():
    """Without ``__ifloordiv__`` and the others, Python rebound the name to a new tensor: a
    view's base and the tensor's aliases kept the old values, silently, and ``int //= 2.5``
    became a float tensor where PyTorch raises."""
    torch = pytest.importorskip("torch")
    assert _augmented_assignments(tg) == _augmented_assignments(torch)


# d/dx0 of (y * y).sum() after y = op_(x) and y[0] set to 2 outside autograd: 2 * y[0] * op'(x0),
# where op' reads the value the op's backward saved, which is y's storage (PyTorch saves the
# tensor): relu' = (y > 0), exp' = y, sigmoid' = y * (1 - y), all at the new y[0] = 2.
@pytest.mark.parametrize(("op", "derivative"), [("relu_", 1.0), ("exp_", 2.0), ("sigmoid_", 2.0 * (1 - 2.0))])
def test_an_in_place_result_read_by_its_backward_sees_later_changes_through_data(op, derivative):
    """An in-place op computes out of place and writes back; its row saved its own result
    array, which a change of the tensor through ``.data`` never reached: every later reader of
    the row, and the op's own rule, differentiated the old value (``x.grad[0]`` 1.0 for relu_,
    where PyTorch gives 4)."""
    x = tg.tensor([0.5, 1.0, -1.0], requires_grad=True)
    y = x * 1
    getattr(y, op)()
    y.data[0] = 2.0
    (y * y).sum().backward()
    assert x.grad[0].item() == pytest.approx(2 * 2.0 * derivative, rel=1e-6)


@pytest.mark.parametrize("op", ["relu_", "exp_", "sigmoid_", "sqrt_"])
@pytest.mark.parametrize("how", ["no_grad", "detach"])
def test_changing_an_in_place_result_its_backward_reads_fails_the_backward(op, how):
    """Changed since the op saved it (under no_grad, or through ``.detach()``), the value its
    backward reads is not the one it computed: PyTorch's version error, not a gradient of the
    old value."""
    x = tg.tensor([0.5, 1.0, 2.0], requires_grad=True)
    y = x * 1
    getattr(y, op)()
    if how == "no_grad":
        with tg.no_grad():
            y[0] = 2.0
    else:
        y.detach()[0] = 2.0
    loss = (y * 3).sum()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_data_of_another_kind_than_floating_point_is_refused_for_a_tensor_that_requires_grad():
    p = tg.nn.Parameter(tg.zeros(3))
    with pytest.raises(RuntimeError, match="data set to a tensor that requires gradients must be floating point"):
        p.data = tg.arange(3)
    assert p.dtype == tg.float32
    q = tg.zeros(3)
    q.data = tg.arange(3)  # without requires_grad, any dtype
    assert q.dtype == tg.int64


def test_a_hook_that_changes_a_saved_in_place_result_fails_the_backward():
    """A hook runs in the backward's middle; a change it makes in place to a value a row still to
    run saved fails that row, as PyTorch's node does (checked before the sweep alone, the row
    differentiated the changed value: a wrong gradient, silently)."""
    x = tg.tensor([0.5, -1.0, 2.0], dtype=tg.float64, requires_grad=True)
    y = x * 1
    y.exp_()

    def hook(gradient):
        with tg.no_grad():
            y.add_(1)
        return gradient

    z = y * 2
    z.register_hook(hook)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_an_in_place_result_of_a_transposed_view_is_version_checked():
    x = tg.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=tg.float64, requires_grad=True)
    y = (x * 1).t()
    y.exp_()
    with tg.no_grad():
        y[0, 0] = 5.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (y * 1).sum().backward()


def test_a_recording_that_changes_a_saved_value_in_place_differentiates_as_eager_does():
    """``y.exp_(); y.sigmoid_()``: exp's backward reads the y sigmoid_ overwrote. Eager backward
    raises PyTorch's error, and so does differentiating the replay; its forward runs."""

    def f(x):
        y = x * 1
        y.exp_()
        y.sigmoid_()
        return y.sum()

    values = np.array([0.5, -1.0, 2.0])
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        f(tg.tensor(values, requires_grad=True)).backward()
    tape = tg.record(f, values)
    assert tape(values).item() == pytest.approx(f(tg.tensor(values)).item())
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        tape.value_and_grad(values)


def test_a_recording_differentiates_past_a_change_that_only_a_captured_tensors_rows_read():
    """``r = g.exp(); r.tanh_()`` of a parameter ``g`` the function closes over changes exp's
    saved result, which only ``g``'s gradient reads. The gradient of the inputs never runs that
    rule, in PyTorch's ``autograd.grad(loss, x)``, eagerly and in the replay alike (which raised)."""
    g = tg.tensor([0.5, -1.0], dtype=tg.float64, requires_grad=True)

    def f(x):
        r = g.exp()
        r.tanh_()
        return (x * r).sum()

    values = np.array([1.0, 2.0])
    expected = np.tanh(np.exp(g.detach().numpy()))
    x = tg.tensor(values, requires_grad=True)
    np.testing.assert_allclose(tg.autograd.grad(f(x), x)[0].numpy(), expected, rtol=1e-15)
    value, (gradient,) = tg.record(f, values).value_and_grad(values * 3)
    np.testing.assert_allclose(gradient.numpy(), expected, rtol=1e-15)
    assert value.item() == pytest.approx(float((values * 3) @ expected))
    per_slice = tg.func.vmap(tg.func.grad(f))(tg.tensor(np.stack([values, -values])))
    np.testing.assert_allclose(per_slice.detach().numpy(), [expected] * 2)


def test_a_parameter_shares_its_datas_version_counter():
    """``Parameter(a)`` shares ``a``'s memory, and (as PyTorch's) its version counter: a change
    of ``a`` after a backward saved the parameter is refused. With a counter of its own, the
    backward used the changed values: [40, 60, 80] where the graph's were [4, 6, 8]."""
    a = tg.tensor([1.0, 2.0, 3.0])
    a.add_(1)
    p = tg.nn.Parameter(a)
    assert p._version == 1
    y = (p * p).sum()
    a.mul_(10)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


_COPIES_THAT_CHANGE_NOTHING = {
    "pad by nothing": lambda m, y: m.nn.functional.pad(y, (0, 0)),
    "ConstantPad1d(0)": lambda m, y: m.nn.ConstantPad1d(0, 1.0)(y),
    "pixel_shuffle by 1": lambda m, y: m.nn.functional.pixel_shuffle(y[None, None], 1)[0, 0],
    "pixel_unshuffle by 1": lambda m, y: m.nn.functional.pixel_unshuffle(y[None, None], 1)[0, 0],
    "matrix_power 1": lambda m, y: m.linalg.matrix_power(y, 1),
}


@pytest.mark.parametrize("op", _COPIES_THAT_CHANGE_NOTHING.values(), ids=_COPIES_THAT_CHANGE_NOTHING.keys())
def test_an_op_that_changes_nothing_still_returns_a_copy(op):
    """PyTorch's result is new memory even where the op changes nothing: an in-place change of
    it leaves the input, and the input's gradient, alone (the input itself, returned, took it)."""
    torch = pytest.importorskip("torch")
    grads, nodes = [], []
    for m in (tg, torch):
        x = m.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        y = x * 1.0
        out = op(m, y)
        nodes.append(out.grad_fn.name())
        out.mul_(10.0)
        (y * y).sum().backward()
        grads.append(x.grad.tolist())
    assert grads[0] == grads[1] == [[2.0, 4.0], [6.0, 8.0]]
    assert nodes[0] == nodes[1]


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("name", ["sinh", "cosh"])
@pytest.mark.parametrize("of", ["the leaf", "a result"])
def test_a_large_op_with_a_precomputed_derivative_sees_its_input_changed(of, name, create_graph):
    """From ``_record.PRECOMPUTED_DERIVATIVE_SIZE`` elements, sinh and cosh save their derivative
    at the forward; they keep PyTorch's saved input too, with its version: changed in place, the
    backward fails as PyTorch's (it ran on the old derivative), and a create_graph backward
    reads the saved input, not one recomputed from the leaf changed since (cosh(0), silently)."""
    torch = pytest.importorskip("torch")
    results = []
    for m in (tg, torch):
        x = m.ones(4096, dtype=m.float64, requires_grad=True)
        y = getattr(x if of == "the leaf" else x * 1.0, name)()
        with m.no_grad():
            x.zero_()
        try:
            (gradient,) = m.autograd.grad(y.sum(), x, create_graph=create_graph)
            results.append(gradient.detach().numpy()[:3].tolist())
        except RuntimeError as error:
            assert MESSAGE in str(error)
            results.append("modified")
    assert results[0] == results[1]
    assert (results[0] == "modified") == (of == "the leaf")


def test_a_zero_dimensional_pick_can_be_changed_in_place():
    """``y[0].flip(0)`` (a 0-d pick) held a numpy scalar, which ``mul_`` could not write into:
    a TypeError from numpy where PyTorch runs."""
    x = tg.ones(3, requires_grad=True)
    y = x * 1.0
    z = y[0].flip(0)
    z.mul_(2.0)
    (z * y[1]).backward()
    assert y.tolist() == [1.0, 1.0, 1.0]
    assert x.grad.tolist() == [2.0, 2.0, 0.0]
