"""Views PyTorch refuses to change in place (its ``CreationMeta``): the outputs of a function
returning several views (``unbind``, ``split``, ``chunk``), and views made under ``no_grad`` of
a tensor that requires grad, changed where autograd would record the change. Each case runs in
both libraries where PyTorch is installed: the same exception and message, or the same values
and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _views

MULTI_OUTPUT = "This view is the output of a function that returns multiple views."


def _base(m):
    x = m.arange(6.0, dtype=m.float64).reshape(2, 3).requires_grad_()
    return x, x * 1


def _unbind_mul_(m):
    x, y = _base(m)
    y.unbind(0)[1].mul_(2)


def _split_fill_(m):
    x, y = _base(m)
    y.split(1, 1)[2].fill_(1.0)


def _split_sizes_copy_(m):
    x, y = _base(m)
    y.split([1, 1], 0)[0].copy_(m.ones(1, 3, dtype=m.float64))


def _chunk_of_a_leaf_zero_(m):
    m.ones(4, requires_grad=True).chunk(2)[0].zero_()


def _view_of_an_unbind_output(m):
    x, y = _base(m)
    y.unbind(1)[0].view(1, 2).add_(1)


def _augmented_assignment(m):
    x, y = _base(m)
    piece = y.unbind(0)[0]
    piece += 1


def _operand_requires_grad(m):
    w = m.tensor(2.0, dtype=m.float64, requires_grad=True)
    m.arange(6.0, dtype=m.float64).reshape(2, 3).split(1)[0].mul_(w)


def _made_under_no_grad(m):
    x, y = _base(m)
    with m.no_grad():
        piece = y[0]
    piece.mul_(2)


def _view_of_a_no_grad_view(m):
    x, y = _base(m)
    with m.no_grad():
        row = y[0]
    row[1:].mul_(2)


def _used_after_its_base_changed(m):
    x, y = _base(m)
    piece = y.unbind(0)[1]
    y.add_(1)
    return piece * 2


REFUSED = {
    "unbind mul_": _unbind_mul_,
    "split fill_": _split_fill_,
    "split with sizes copy_": _split_sizes_copy_,
    "chunk of a leaf zero_": _chunk_of_a_leaf_zero_,
    "a view of an unbind output": _view_of_an_unbind_output,
    "+= on an unbind output": _augmented_assignment,
    "an operand that requires grad": _operand_requires_grad,
    "made under no_grad": _made_under_no_grad,
    "a view of a no_grad view": _view_of_a_no_grad_view,
    "used after its base changed": _used_after_its_base_changed,
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_as_pytorch_refuses(name):
    with pytest.raises(RuntimeError) as ours:
        REFUSED[name](tg)
    assert "view" in str(ours.value)
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as theirs:
        REFUSED[name](torch)
    assert str(ours.value) == str(theirs.value)


def test_the_refusal_names_the_output_and_the_function():
    with pytest.raises(
        RuntimeError, match="^Output 1 of Unbind is a view and is being modified inplace. " + MULTI_OUTPUT
    ):
        _unbind_mul_(tg)


def _under_no_grad(m):
    x, y = _base(m)
    pieces = y.unbind(0)
    with m.no_grad():
        pieces[0].mul_(2)
    return x, y


def _all_under_no_grad(m):
    x, y = _base(m)
    with m.no_grad():
        y.unbind(0)[0].mul_(2)
    return x, y


def _a_clone(m):
    x, y = _base(m)
    return x, y.unbind(0)[0].clone().mul_(2) * y[1]


def _no_grad_anywhere(m):
    x, y = _base(m)
    z = m.arange(6.0, dtype=m.float64).reshape(2, 3)
    z.unbind(0)[0].mul_(2)
    return x, y * z


def _a_default_view(m):
    x, y = _base(m)
    y[0].mul_(2)
    return x, y


def _read_under_no_grad_after_a_change(m):
    x, y = _base(m)
    piece = y.unbind(0)[1]
    y.add_(1)
    with m.no_grad():
        scaled = piece * 2
    return x, y * scaled


ALLOWED = {
    "changed under no_grad": _under_no_grad,
    "made and changed under no_grad": _all_under_no_grad,
    "a clone": _a_clone,
    "nothing requires grad": _no_grad_anywhere,
    "a view of one output": _a_default_view,
    "read under no_grad after a change": _read_under_no_grad_after_a_change,
}


def _value_and_grad(m, program):
    x, out = program(m)
    (out * out).sum().backward()
    return out.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("name", list(ALLOWED))
def test_allowed_as_pytorch_allows(name):
    value, grad = _value_and_grad(tg, ALLOWED[name])
    assert np.isfinite(grad).all()
    torch = pytest.importorskip("torch")
    expected_value, expected_grad = _value_and_grad(torch, ALLOWED[name])
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12)


def _filled_row(m):
    w = m.tensor([1.0, 2.0], dtype=m.float64, requires_grad=True)
    buf = m.zeros(2, 2, dtype=m.float64)
    row = buf[1]
    row.copy_(w)
    row.mul_(w)
    (row * row).sum().backward()
    return row.requires_grad, w.grad.numpy()


def test_a_view_of_a_tensor_without_grad_changed_with_one_that_requires_it():
    """``buf[1].copy_(w)``, then the view used: it requires grad and its gradient reaches w (the
    view kept reading as a constant, and w.grad stayed None)."""
    requires_grad, grad = _filled_row(tg)
    assert requires_grad
    np.testing.assert_array_equal(grad, 4 * np.array([1.0, 2.0]) ** 3)  # d(w**4)/dw
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(grad, _filled_row(torch)[1])


def test_diag_of_a_matrix_is_a_copy():
    z = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True) * 1
    z.diag().mul_(10)
    assert z.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_tensor_split_reads_indices_as_slices():
    pieces = tg.arange(7.0).tensor_split([1, -1])
    assert [p.tolist() for p in pieces] == [[0.0], [1.0, 2.0, 3.0, 4.0, 5.0], [6.0]]
    assert [p.tolist() for p in tg.arange(4.0).tensor_split([3, 1, 9])] == [[0.0, 1.0, 2.0], [], [1.0, 2.0, 3.0], []]


def _view_before_the_change(m):
    w = m.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=m.float64, requires_grad=True)
    b = m.zeros(2, 2, dtype=m.float64)
    v = b.t()
    b.copy_(w * 2)
    ((b**2).sum() + (v**2).sum()).backward()
    return v.requires_grad, w.grad.numpy()


def _view_of_a_view(m):
    w = m.tensor([1.0, 2.0], dtype=m.float64, requires_grad=True)
    x = m.zeros(3, 2, dtype=m.float64)
    v = x[1]
    v[1:].add_(w[1:])
    x[0].add_(w)
    ((v * v).sum() + (x * x).sum() * 0.5).backward()
    return v.requires_grad, w.grad.numpy()


def _only_the_earlier_view(m):
    w = m.tensor([1.0, 2.0], dtype=m.float64, requires_grad=True)
    x = m.zeros(2, 2, dtype=m.float64)
    v = x[1]
    x.add_(w)
    (v * v).sum().backward()
    return v.requires_grad, w.grad.numpy()


@pytest.mark.parametrize("program", [_view_before_the_change, _view_of_a_view, _only_the_earlier_view])
def test_views_made_before_their_root_gains_a_gradient_follow_it(program):
    """Views of a tensor without grad, made before a change in place gave it values that
    require grad, read from its new row: they kept reading as constants, and the gradient
    through them was lost (or backward raised), silently."""
    requires_grad, grad = program(tg)
    assert requires_grad
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(grad, program(torch)[1], rtol=1e-12)


def test_view_before_the_change_has_the_closed_form_gradient():
    # b = 2w and v = b.t(): the loss is 2 * sum((2w)**2), d/dw = 16 w
    assert _view_before_the_change(tg)[1].tolist() == [[16.0, 32.0], [48.0, 64.0]]


def test_expanding_to_its_own_shape_gives_a_view_to_write():
    z = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    z.expand_as(z).mul_(10)
    z.expand(2, 2).add_(1)
    z.broadcast_to((1, 2, 2)).sub_(1)
    assert z.tolist() == [[10.0, 20.0], [30.0, 40.0]]
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        tg.tensor([[1.0], [2.0]]).expand(2, 3).add_(1)


def test_unbind_of_a_one_dimensional_tensor_gives_views():
    """Each element as a 0-d view of the tensor, as PyTorch's (and iterating it, without grad):
    ``data[k]`` of a 1-D array is a numpy scalar, a copy, so changes went nowhere."""
    base = tg.tensor([1.0, 2.0, 3.0])
    first, second, _ = base.unbind(0)
    base.mul_(5)
    assert first.item() == 5.0 and second._base is base
    second.add_(1)
    assert base.tolist() == [5.0, 11.0, 15.0]
    matrix = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    for element in matrix[0]:
        element.add_(10)
    assert matrix.tolist() == [[11.0, 12.0], [3.0, 4.0]]


def test_an_unbound_element_of_a_vector_that_requires_grad_refuses_changes_in_place():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    first = y.unbind(0)[0]
    with pytest.raises(RuntimeError, match="Output 0 of Unbind is a view and is being modified inplace"):
        first.mul_(2)
    parts = y.unbind(0)
    y.mul_(3)  # the base changed after the views were taken: their reads fail, as PyTorch's
    with pytest.raises(RuntimeError, match="is a view and its base or another view of its base has been modified"):
        (parts[0] * 2).backward()


def test_a_key_numpy_copies_for_is_read_as_positions_not_as_a_view(monkeypatch):
    # Should a key part ever pass ``split_key`` as basic while numpy reads it as an index array
    # (tuples and ranges once did), numpy copies: the positions picked, never a view's offset and
    # strides measured on the copy (the gradient went to other elements, or past the buffer).
    real = _views._split_key

    def leaky(key, ndim):
        parts = key if isinstance(key, tuple) else (key,)
        if any(type(part) is tuple for part in parts):
            return (*parts, Ellipsis), None
        return real(key, ndim)

    monkeypatch.setattr(_views, "_split_key", leaky)
    for _ in range(3):  # (past the buffer, the second call crashed)
        a = tg.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
        picked = a[:, (0, 2)]
        (picked * tg.tensor(np.arange(6.0).reshape(3, 2))).sum().backward()
        np.testing.assert_array_equal(picked.detach().numpy(), np.arange(12.0).reshape(3, 4)[:, [0, 2]])
        np.testing.assert_array_equal(a.grad.numpy(), [[0, 0, 1, 0], [2, 0, 3, 0], [4, 0, 5, 0]])
