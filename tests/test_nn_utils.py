"""``tapegrad.nn.utils`` at its edges, against PyTorch's behaviour: clipping integer and empty
gradients, ``vector_to_parameters``' checks, ``pad_sequence``'s dtype and shapes, weight norm's
dim, and optimizers' ``capturable``."""

from __future__ import annotations

import numpy as np
import pytest

import tapegrad as tg


def test_clipping_the_norm_of_integer_gradients_raises_instead_of_zeroing_them():
    """The scale below 1 in an integer gradient's dtype was 0: the gradients came back zeroed."""
    p = tg.zeros(2, dtype=tg.int64)
    p.grad = tg.tensor([3, 4])
    with pytest.raises(RuntimeError, match="Expected a floating point or complex tensor as input. Got Long"):
        tg.nn.utils.clip_grad_norm_([p], max_norm=1.0)
    assert p.grad.tolist() == [3, 4]


def test_the_infinity_norm_of_an_empty_gradient_raises():
    a, b = tg.nn.Parameter(tg.zeros(0, 3)), tg.nn.Parameter(tg.zeros(3))
    a.grad, b.grad = tg.zeros(0, 3), tg.ones(3) * 5
    with pytest.raises(RuntimeError, match="cannot compute the infinity norm on an empty tensor"):
        tg.nn.utils.clip_grad_norm_([a, b], 1.0, norm_type=float("inf"))
    norm = tg.nn.utils.clip_grad_norm_([a, b], 1.0)  # other norms sum over nothing
    assert norm.item() == pytest.approx(5 * np.sqrt(3), rel=1e-6)


@pytest.mark.parametrize(("dtype", "name"), [(tg.int64, "long int"), (tg.int32, "int"), (tg.uint8, "unsigned char")])
@pytest.mark.parametrize("clip", [1.5, 2])
def test_clipping_integer_gradients_by_value_raises(dtype, name, clip):
    """PyTorch clamps by ``float(clip_value)``: an integer gradient refuses it, whole or not."""
    p = tg.zeros(2, dtype=dtype)
    p.grad = tg.tensor([3, 4], dtype=dtype)
    with pytest.raises(RuntimeError, match=f"result type Float can't be cast to the desired output type {name}$"):
        tg.nn.utils.clip_grad_value_([p], clip)
    assert p.grad.tolist() == [3, 4]


@pytest.mark.parametrize(("vector", "name"), [([0.0, 1.0, 2.0], "list"), (np.arange(3.0), "numpy.ndarray")])
def test_vector_to_parameters_takes_a_tensor(vector, name):
    with pytest.raises(TypeError, match=f"expected torch.Tensor, but got: {name}"):
        tg.nn.utils.vector_to_parameters(vector, [tg.nn.Parameter(tg.zeros(3))])


def test_vector_to_parameters_refuses_integers_for_parameters():
    p = tg.nn.Parameter(tg.zeros(3))
    with pytest.raises(RuntimeError, match="must be floating point or complex dtype"):
        tg.nn.utils.vector_to_parameters(tg.arange(3), [p])


def test_pad_sequence_keeps_the_first_sequences_dtype_and_broadcasts_as_a_copy_would():
    out = tg.nn.utils.rnn.pad_sequence([tg.arange(3), tg.arange(5.0) + 0.5])
    assert out.dtype == tg.int64
    assert out.T.tolist() == [[0, 1, 2, 0, 0], [0, 1, 2, 3, 4]]
    assert tg.nn.utils.rnn.pad_sequence([tg.ones(2, 3), tg.ones(4, 1)]).shape == (4, 2, 3)
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(3\) must match the size of tensor b \(4\)"):
        tg.nn.utils.rnn.pad_sequence([tg.ones(2, 3), tg.ones(2, 4)])
    with pytest.raises(RuntimeError, match="ArrayRef: invalid slice"):
        tg.nn.utils.rnn.pad_sequence([tg.tensor(1.0), tg.tensor(2.0)])
    with pytest.raises(IndexError, match="Dimension specified as 0 but tensor has no dimensions"):
        tg.nn.utils.rnn.pad_sequence([tg.ones(2), tg.tensor(1.0)])
    with pytest.raises(RuntimeError, match=r"output with shape \[3, 1\] doesn't match the broadcast shape \[3, 3\]"):
        tg.nn.utils.rnn.pad_sequence([tg.ones(2, 1), tg.ones(3, 3)])


def test_weight_norm_of_a_dim_out_of_range_raises():
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        tg.nn.utils.parametrizations.weight_norm(tg.nn.Linear(3, 4), dim=2)
    module = tg.nn.utils.parametrizations.weight_norm(tg.nn.Linear(3, 4), dim=-2)  # dim 0, as PyTorch
    assert tuple(module.parametrizations.weight.original0.shape) == (4, 1)


@pytest.mark.parametrize(
    ("name", "named"),
    [("Adam", "params and state_steps"), ("RMSprop", "params and state_steps"), ("NAdam", "params, mu_products")],
)
def test_capturable_steps_are_refused_for_cpu_parameters(name, named):
    p = tg.nn.Parameter(tg.ones(2))
    p.grad = tg.ones(2)
    optimizer = getattr(tg.optim, name)([p], lr=0.1, capturable=True)
    with pytest.raises(AssertionError, match=f"If capturable=True, {named}"):
        optimizer.step()
    assert p.tolist() == [1.0, 1.0]
