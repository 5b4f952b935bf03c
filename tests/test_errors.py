"""Bad input gets PyTorch's exception class and message (shared/docs/pytorch-semantics.md)."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

import tapegrad as tg


def _backward_twice(m):
    x = m.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    y.backward()


def _wrong_gradient_shape(m):
    (m.ones(2, requires_grad=True) * 2).backward(m.ones(3))


def _in_place_on_leaf(m):
    x = m.ones(2, requires_grad=True)
    x += 1


CASES = {
    "fmax of a number": (
        lambda m: m.fmax(m.ones(2), 2.0),
        TypeError,
        "fmax(): argument 'other' (position 2) must be Tensor, not float",
    ),
    "fmin of a number": (
        lambda m: m.fmin(m.ones(2), 2),
        TypeError,
        "fmin(): argument 'other' (position 2) must be Tensor, not int",
    ),
    "non-scalar backward": (
        lambda m: (m.ones(2, requires_grad=True) * 2).backward(),
        RuntimeError,
        "grad can be implicitly created only for scalar outputs",
    ),
    "gradient shape": (
        _wrong_gradient_shape,
        RuntimeError,
        "Mismatch in shape: grad_output[0] has a shape of {size}([3]) and output[0] has a shape of {size}([2]).",
    ),
    "no grad": (
        lambda m: m.ones(3).sum().backward(),
        RuntimeError,
        "element 0 of tensors does not require grad and does not have a grad_fn",
    ),
    "second backward": (_backward_twice, RuntimeError, "Trying to backward through the graph a second time"),
    "int requires grad": (
        lambda m: m.tensor([1, 2], requires_grad=True),
        RuntimeError,
        "Only Tensors of floating point and complex dtype can require gradients",
    ),
    "int requires_grad_": (
        lambda m: m.tensor([1, 2]).requires_grad_(),
        RuntimeError,
        "only Tensors of floating point dtype can require gradients",
    ),
    "non-leaf requires_grad_(False)": (
        lambda m: (m.ones(2, requires_grad=True) * 2).requires_grad_(False),
        RuntimeError,
        "you can only change requires_grad flags of leaf variables. If you want to use a computed "
        "variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach().",
    ),
    "in-place on leaf": (
        _in_place_on_leaf,
        RuntimeError,
        "a leaf Variable that requires grad is being used in an in-place operation.",
    ),
    "numpy of grad tensor": (
        lambda m: m.ones(2, requires_grad=True).numpy(),
        RuntimeError,
        "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.",
    ),
    "broadcast": (
        lambda m: m.ones(3) + m.ones(4),
        RuntimeError,
        "The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 0",
    ),
    "broadcast 2-D": (
        lambda m: m.ones(2, 3) * m.ones(4, 3, requires_grad=True),
        RuntimeError,
        "The size of tensor a (2) must match the size of tensor b (4) at non-singleton dimension 0",
    ),
    "broadcast last dim": (
        lambda m: m.ones(2, 3) - m.ones(3, 2),
        RuntimeError,
        "The size of tensor a (3) must match the size of tensor b (2) at non-singleton dimension 1",
    ),
    "matmul": (
        lambda m: m.ones(2, 3) @ m.ones(2, 3),
        RuntimeError,
        "mat1 and mat2 shapes cannot be multiplied (2x3 and 2x3)",
    ),
    "vector matmul": (
        lambda m: m.ones(3) @ m.ones(4, 2),
        RuntimeError,
        "mat1 and mat2 shapes cannot be multiplied (1x3 and 4x2)",
    ),
    "mv": (lambda m: m.ones(2, 3) @ m.ones(4), RuntimeError, "size mismatch, got input (2), mat (2x3), vec (4)"),
    "dot": (
        lambda m: m.ones(3) @ m.ones(4),
        RuntimeError,
        "inconsistent tensor size, expected tensor [3] and src [4] to have the same number of elements, but got 3 and 4 elements respectively",
    ),
    "view": (lambda m: m.ones(6).view(4), RuntimeError, "shape '[4]' is invalid for input of size 6"),
    "dim": (
        lambda m: m.ones(6).sum(3),
        IndexError,
        "Dimension out of range (expected to be in range of [-1, 0], but got 3)",
    ),
    "index": (lambda m: m.ones(6)[7], IndexError, "index 7 is out of bounds for dimension 0 with size 6"),
    "retain_grad": (
        lambda m: m.ones(2).retain_grad(),
        RuntimeError,
        "can't retain_grad on Tensor that has requires_grad=False",
    ),
    "item": (lambda m: m.ones(2).item(), RuntimeError, "a Tensor with 2 elements cannot be converted to Scalar"),
    # Convolution, pooling and batch normalisation (nn/_convolution.py, F.batch_norm, the modules)
    "conv2d channels": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 4, 6, 6), m.ones(8, 3, 3, 3)),
        RuntimeError,
        "Given groups=1, weight of size [8, 3, 3, 3], expected input[2, 4, 6, 6] to have 3 channels, but got 4 "
        "channels instead",
    ),
    "conv2d groups": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 3, 6, 6), m.ones(8, 3, 3, 3), groups=2),
        RuntimeError,
        "Given groups=2, weight of size [8, 3, 3, 3], expected input[2, 3, 6, 6] to have 6 channels",
    ),
    "conv2d kernel too large": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 3, 2, 2), m.ones(8, 3, 3, 3)),
        RuntimeError,
        "Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3). Kernel size can't be greater "
        "than actual input size",
    ),
    "conv2d rank": (
        lambda m: m.nn.functional.conv2d(m.ones(6, 6), m.ones(8, 3, 3, 3)),
        RuntimeError,
        "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: [6, 6]",
    ),
    "conv2d bias": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 3, 6, 6), m.ones(8, 3, 3, 3), m.ones(7)),
        RuntimeError,
        "Given weight of size [8, 3, 3, 3], expected bias to be 1-dimensional with 8 elements, but got bias of "
        "size [7] instead",
    ),
    "conv2d dtypes": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 3, 6, 6), m.ones(8, 3, 3, 3, dtype=m.float64)),
        RuntimeError,
        "Input type (",
    ),
    "conv2d stride": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 3, 6, 6), m.ones(8, 3, 3, 3), stride=0),
        RuntimeError,
        "non-positive stride is not supported",
    ),
    "conv2d padding": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 3, 6, 6), m.ones(8, 3, 3, 3), padding=-1),
        RuntimeError,
        "negative padding is not supported",
    ),
    "conv2d same strided": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 3, 6, 6), m.ones(8, 3, 3, 3), padding="same", stride=2),
        RuntimeError,
        "padding='same' is not supported for strided convolutions",
    ),
    "conv2d padding string": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 3, 6, 6), m.ones(8, 3, 3, 3), padding="full"),
        RuntimeError,
        "Invalid padding string: 'full'",
    ),
    "conv_transpose2d channels": (
        lambda m: m.nn.functional.conv_transpose2d(m.ones(2, 3, 5, 5), m.ones(4, 3, 3, 3)),
        RuntimeError,
        "Given transposed=1, weight of size [4, 3, 3, 3], expected input[2, 3, 5, 5] to have 4 channels, but got 3 "
        "channels instead",
    ),
    "conv_transpose2d bias": (
        lambda m: m.nn.functional.conv_transpose2d(m.ones(2, 4, 5, 5), m.ones(4, 3, 3, 3), m.ones(4)),
        RuntimeError,
        "Given transposed=1, weight of size [4, 3, 3, 3], expected bias to be 1-dimensional with 3 elements, but "
        "got bias of size [4] instead",
    ),
    "conv_transpose2d output padding": (
        lambda m: m.nn.functional.conv_transpose2d(m.ones(2, 4, 5, 5), m.ones(4, 3, 3, 3), stride=2, output_padding=2),
        RuntimeError,
        "output padding must be smaller than either stride or dilation, but got output_padding_height: 2 "
        "output_padding_width: 2 stride_height: 2 stride_width: 2 dilation_height: 1 dilation_width: 1",
    ),
    "ConvTranspose2d output size": (
        lambda m: m.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)(m.ones(1, 4, 5, 5), output_size=[12, 12]),
        ValueError,
        "requested an output size of [12, 12], but valid sizes range from [9, 9] to [10, 10] (for an input of "
        "{size}([5, 5]))",
    ),
    "max_pool2d padding": (
        lambda m: m.nn.functional.max_pool2d(m.ones(2, 3, 6, 6), 3, padding=2),
        RuntimeError,
        "pad should be at most half of effective kernel size, but got pad=2, kernel_size=3 and dilation=1",
    ),
    "avg_pool2d too small": (
        lambda m: m.nn.functional.avg_pool2d(m.ones(2, 3, 2, 2), 3),
        RuntimeError,
        "Given input size: (3x2x2). Calculated output size: (3x0x0). Output size is too small",
    ),
    "max_pool2d rank": (
        lambda m: m.nn.functional.max_pool2d(m.ones(10), 3),
        RuntimeError,
        "non-empty 3D or 4D (batch mode) tensor expected for input",
    ),
    "batch_norm one value per channel": (
        lambda m: m.nn.functional.batch_norm(m.ones(1, 3), m.zeros(3), m.ones(3), training=True),
        ValueError,
        "Expected more than 1 value per channel when training, got input size {size}([1, 3])",
    ),
    "batch_norm statistics size": (
        lambda m: m.nn.functional.batch_norm(m.ones(4, 3), m.zeros(2), m.ones(2), training=True),
        RuntimeError,
        "running_mean should contain 3 elements not 2",
    ),
    "conv1d channels": (
        lambda m: m.nn.functional.conv1d(m.ones(2, 4, 10), m.ones(5, 3, 3)),
        RuntimeError,
        "Given groups=1, weight of size [5, 3, 3], expected input[2, 4, 10] to have 3 channels, but got 4 channels "
        "instead",
    ),
    "conv1d kernel too large": (
        lambda m: m.nn.functional.conv1d(m.ones(2, 3, 2), m.ones(5, 3, 3)),
        RuntimeError,
        "Calculated padded input size per channel: (2). Kernel size: (3). Kernel size can't be greater than actual "
        "input size",
    ),
    "conv1d 4-D weight": (
        lambda m: m.nn.functional.conv1d(m.ones(2, 3, 10), m.ones(5, 3, 3, 3)),
        RuntimeError,
        "Expected 4-dimensional input for 4-dimensional weight [5, 3, 3, 3], but got 3-dimensional input of size "
        "[2, 3, 10] instead",
    ),
    "conv2d input wider than weight": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 3, 8, 8, dtype=m.float64), m.ones(4, 3, 3, 3)),
        RuntimeError,
        "expected scalar type Double but found Float",
    ),
    "conv2d dilation": (
        lambda m: m.nn.functional.conv2d(m.ones(2, 3, 8, 8), m.ones(4, 3, 3, 3), dilation=0),
        RuntimeError,
        "non-positive dilation is not supported",
    ),
    "conv_transpose2d groups": (
        lambda m: m.nn.functional.conv_transpose2d(m.ones(2, 3, 5, 5), m.ones(3, 2, 3, 3), groups=2),
        RuntimeError,
        "Given groups=2, expected weight to be divisible by 2 at dimension 0",
    ),
    "conv_transpose2d padding string": (
        lambda m: m.nn.functional.conv_transpose2d(m.ones(2, 3, 5, 5), m.ones(3, 2, 3, 3), padding="same"),
        TypeError,
        "conv_transpose2d(): argument 'padding' must be tuple of ints, not str",
    ),
    "max_pool2d dilated padding": (
        lambda m: m.nn.functional.max_pool2d(m.ones(2, 3, 8, 8), 3, padding=2, dilation=2),
        RuntimeError,
        "pad should be smaller than or equal to half of kernel size, but got padW = 2, padH = 2, kW = 3, kH = 3",
    ),
    "max_pool2d dilation": (
        lambda m: m.nn.functional.max_pool2d(m.ones(2, 3, 8, 8), 3, dilation=0),
        RuntimeError,
        "dilation should be greater than zero, but got dilationH: 0 dilationW: 0",
    ),
    "avg_pool2d stride": (
        lambda m: m.nn.functional.avg_pool2d(m.ones(2, 3, 8, 8), 3, stride=0),
        RuntimeError,
        "stride should not be zero",
    ),
    "adaptive_avg_pool2d sizes": (
        lambda m: m.nn.functional.adaptive_avg_pool2d(m.ones(2, 3, 8, 8), (1, 2, 3)),
        RuntimeError,
        "adaptive_avg_pool2d: output_size must be 2",
    ),
    "RNN dtype": (
        lambda m: m.nn.RNN(3, 4)(m.ones(5, 2, 3, dtype=m.float64)),
        ValueError,
        "RNN input dtype ({module}.float64) does not match weight dtype ({module}.float32)",
    ),
    "RNN state rank": (
        lambda m: m.nn.RNN(3, 4)(m.ones(5, 2, 3), m.ones(2, 4)),
        RuntimeError,
        "For batched 3-D input, hx should also be 3-D but got 2-D tensor",
    ),
    "LSTM cell state size": (
        lambda m: m.nn.LSTM(3, 4)(m.ones(5, 2, 3), (m.ones(1, 2, 4), m.ones(1, 3, 4))),
        RuntimeError,
        "Expected hidden[1] size (1, 2, 4), got [1, 3, 4]",
    ),
    "RNN empty sequence": (
        lambda m: m.nn.RNN(3, 4)(m.ones(0, 2, 3)),
        RuntimeError,
        "Expected sequence length to be larger than 0 in RNN",
    ),
    "GRU projections": (
        lambda m: m.nn.GRU(3, 4, proj_size=2),
        ValueError,
        "proj_size argument is only supported for LSTM, not RNN or GRU",
    ),
    "RNNCell batch": (
        lambda m: m.nn.RNNCell(3, 4)(m.ones(2, 3), m.ones(3, 4)),
        RuntimeError,
        "Input batch size 2 doesn't match hidden0 batch size 3",
    ),
    "group_norm groups": (
        lambda m: m.nn.functional.group_norm(m.ones(2, 3, 4), 2),
        RuntimeError,
        "Expected number of channels in input to be divisible by num_groups, but got input of shape [2, 3, 4] and "
        "num_groups=2",
    ),
    "GroupNorm groups": (
        lambda m: m.nn.GroupNorm(2, 3),
        ValueError,
        "num_channels (3) must be divisible by num_groups (2)",
    ),
    "instance_norm one element": (
        lambda m: m.nn.functional.instance_norm(m.ones(2, 3, 1, 1)),
        ValueError,
        "Expected more than 1 spatial element when training, got input size {size}([2, 3, 1, 1])",
    ),
    "InstanceNorm2d rank": (
        lambda m: m.nn.InstanceNorm2d(3)(m.ones(4, 4)),
        ValueError,
        "expected 3D or 4D input (got 2D input)",
    ),
    "BatchNorm2d rank": (lambda m: m.nn.BatchNorm2d(3)(m.ones(4, 3)), ValueError, "expected 4D input (got 2D input)"),
    "BatchNorm1d rank": (
        lambda m: m.nn.BatchNorm1d(3)(m.ones(4, 3, 2, 2)),
        ValueError,
        "expected 2D or 3D input (got 4D input)",
    ),
    # Found by a review of nn against PyTorch 2.13: another class or message
    "conv2d of a long input, float bias": (
        lambda m: m.nn.Conv2d(3, 4, 3)(m.ones(1, 3, 5, 5, dtype=m.long)),
        RuntimeError,
        "Input type (long int) and bias type (float) should be the same",
    ),
    "conv2d of a float input, double weight": (
        lambda m: m.nn.functional.conv2d(m.ones(1, 3, 5, 5), m.ones(4, 3, 3, 3, dtype=m.float64)),
        RuntimeError,
        "expected scalar type Float but found Double",
    ),
    "conv_transpose2d of a float input, double weight": (
        lambda m: m.nn.functional.conv_transpose2d(m.ones(1, 2, 4, 4), m.ones(2, 3, 3, 3, dtype=m.float64)),
        RuntimeError,
        "expected scalar type Float but found Double",
    ),
    "GroupNorm of other channels": (
        lambda m: m.nn.GroupNorm(2, 6)(m.ones(3, 4, 2)),
        RuntimeError,
        "Expected weight to be a vector of size equal to the number of channels in input, but got weight of shape "
        "[6] and input of shape [3, 4, 2]",
    ),
    "cross_entropy of a 2-D float target of another shape": (
        lambda m: m.nn.functional.cross_entropy(m.ones(5, 4), m.ones(5, 3)),
        RuntimeError,
        "0D or 1D target tensor expected, multi-target not supported",
    ),
    "Hardtanh of crossed bounds": (
        lambda m: m.nn.Hardtanh(1.0, -1.0),
        AssertionError,
        "max_val (-1.0) must be greater than min_val (1.0)",
    ),
    "pixel_shuffle of 2-D": (
        lambda m: m.nn.functional.pixel_shuffle(m.ones(4, 2), 2),
        RuntimeError,
        "pixel_shuffle expects input to have at least 3 dimensions, but got input with 2 dimension(s)",
    ),
    "pixel_unshuffle of an odd width": (
        lambda m: m.nn.functional.pixel_unshuffle(m.ones(1, 3, 4, 3), 2),
        RuntimeError,
        "pixel_unshuffle expects width to be divisible by downscale_factor, but input.size(-1)=3 is not divisible by 2",
    ),
    "Unflatten to other sizes": (
        lambda m: m.nn.Unflatten(1, (2, 2))(m.ones(2, 3)),
        RuntimeError,
        "unflatten: Provided sizes [2, 2] don't multiply up to the size of dim 1 (3) in the input tensor",
    ),
    "LSTM of 4-D": (
        lambda m: m.nn.LSTM(3, 4)(m.ones(5, 2, 3, 1)),
        ValueError,
        "LSTM: Expected input to be 2D or 3D, got 4D instead",
    ),
    "max_pool1d of no window": (
        lambda m: m.nn.functional.max_pool1d(m.ones(1, 2, 3), 4),
        RuntimeError,
        "max_pool1d() Invalid computed output size: 0",
    ),
    "adaptive_avg_pool2d of an empty height": (
        lambda m: m.nn.functional.adaptive_avg_pool2d(m.ones(1, 1, 0, 5), 2),
        RuntimeError,
        "adaptive_avg_pool2d(): Expected input to have non-zero size for non-batch dimensions, but input has sizes "
        "[1, 1, 0, 5] with dimension 2 being empty",
    ),
    "interpolate in an unknown mode": (
        lambda m: m.nn.functional.interpolate(m.ones(1, 1, 4, 4), scale_factor=2, mode="foo"),
        NotImplementedError,
        "Input Error: Only 3D, 4D and 5D input Tensors supported (got 4D) for the modes: nearest | linear | bilinear "
        "| bicubic | trilinear | lanczos | area | nearest-exact (got foo)",
    ),
    "interpolate of 2-D": (
        lambda m: m.nn.functional.interpolate(m.ones(1, 4), scale_factor=2),
        NotImplementedError,
        "Input Error: Only 3D, 4D and 5D input Tensors supported (got 2D) for the modes: nearest | linear | bilinear "
        "| bicubic | trilinear | lanczos | area | nearest-exact (got nearest)",
    ),
    "relu_ of an expanded view of a leaf": (
        lambda m: m.nn.functional.relu(m.ones(1, 4, requires_grad=True).expand(3, 4), inplace=True),
        RuntimeError,
        "a view of a leaf Variable that requires grad is being used in an in-place operation.",
    ),
    # Calls tapegrad computed something for, where PyTorch refuses (a hunt of nn's corners)
    "GroupNorm of one value a group": (
        lambda m: m.nn.GroupNorm(3, 3)(m.ones(1, 3)),
        ValueError,
        "Expected more than 1 value per channel when training, got input size [1, 3]",
    ),
    "cross_entropy: ignore_index with probabilities": (
        lambda m: m.nn.functional.cross_entropy(m.ones(1, 3), m.full((1, 3), 1 / 3), ignore_index=1),
        RuntimeError,
        "ignore_index is not supported for floating point target",
    ),
    "circular pad wider than its dimension": (
        lambda m: m.nn.functional.pad(m.ones(1, 1, 3), (4, 0), mode="circular"),
        RuntimeError,
        "Padding value causes wrapping around more than once.",
    ),
    "reflect pad of a 2-D input on two dimensions": (
        lambda m: m.nn.functional.pad(m.ones(3, 3), (1, 1, 1, 1), mode="reflect"),
        NotImplementedError,
        "Padding size 4 is not supported for 2D input tensor.\nSupported combinations for non-constant padding:",
    ),
    "replicate pad of a 4-D input on one dimension": (
        lambda m: m.nn.functional.pad(m.ones(1, 1, 2, 3), (1, 1), mode="replicate"),
        NotImplementedError,
        "Padding size 2 is not supported for 4D input tensor.",
    ),
    "replicate pad of a 5-D input on four dimensions": (
        lambda m: m.nn.functional.pad(m.ones(1, 1, 2, 3, 4), (1,) * 8, mode="replicate"),
        NotImplementedError,
        "Padding size 8 is not supported for 5D input tensor.",
    ),
    "load of a missing file": (
        lambda m: m.load("/nonexistent-directory/checkpoint.pt"),
        FileNotFoundError,
        "[Errno 2] No such file or directory",
    ),
    "Normal of parameters that do not broadcast": (
        lambda m: m.distributions.Normal(m.zeros(2), m.ones(3)),
        RuntimeError,
        "The size of tensor a (2) must match the size of tensor b (3) at non-singleton dimension 0",
    ),
    "roll with no shifts": (
        lambda m: m.roll(m.arange(3.0), (), ()),
        RuntimeError,
        "`shifts` required",
    ),
    "roll of a scalar along a dimension": (
        lambda m: m.tensor(2.5).roll(1, 0),
        IndexError,
        "Dimension specified as 0 but tensor has no dimensions",
    ),
    "inf norm along an empty dimension": (
        lambda m: m.zeros(3, 0).norm(p=float("inf"), dim=-1),
        RuntimeError,
        "linalg.vector_norm cannot compute the inf norm on the dimension -1because this dimension is empty",
    ),
    "inf norm of no elements": (
        lambda m: m.linalg.vector_norm(m.zeros(0, 3), float("inf")),
        RuntimeError,
        "linalg.vector_norm cannot compute the inf norm on an empty tensor because the operation does not have",
    ),
    "prelu of a 1-D input with a weight per element": (
        lambda m: m.nn.functional.prelu(m.ones(3), m.ones(3)),
        RuntimeError,
        "Mismatch of parameter numbers and input channel size. Found parameter numbers = 3 and channel size = 1.",
    ),
    "linear: a 1-D weight with a bias": (
        lambda m: m.nn.functional.linear(m.ones(1, 3), m.ones(3), m.ones(())),
        RuntimeError,
        "mat2 must be a matrix, got 1-D tensor",
    ),
    "linear: a bias of another dtype": (
        lambda m: m.nn.functional.linear(m.ones(2, 3), m.ones(4, 3), m.ones(4, dtype=m.float64)),
        RuntimeError,
        "self and mat2 must have the same dtype, but got Double and Float",
    ),
    "linear: a 3-D input and a bias of another dtype": (
        lambda m: m.nn.functional.linear(m.ones(5, 2, 3), m.ones(4, 3), m.ones(4, dtype=m.float64)),
        RuntimeError,
        "self and mat2 must have the same dtype, but got Double and Float",
    ),
    "linear: an input of another dtype, with a bias": (
        lambda m: m.nn.functional.linear(m.ones(2, 3), m.ones(4, 3, dtype=m.float64), m.ones(4, dtype=m.float64)),
        RuntimeError,
        "mat1 and mat2 must have the same dtype, but got Float and Double",
    ),
    "linear: an input of another dtype, no bias": (
        lambda m: m.nn.functional.linear(m.ones(2, 3, dtype=m.float64), m.ones(4, 3)),
        RuntimeError,
        "expected m1 and m2 to have the same dtype, but got: double != float",
    ),
    "addmm: an added input of another dtype": (
        lambda m: m.addmm(m.zeros(4, dtype=m.int64), m.ones(2, 3), m.ones(3, 4)),
        RuntimeError,
        "self and mat2 must have the same dtype, but got Long and Float",
    ),
    "huber_loss: a broadcast weight": (
        lambda m: m.nn.functional.huber_loss(m.ones(1, 3), m.zeros(1, 3), weight=m.ones(3)),
        ValueError,
        "Weights and input must have the same size.",
    ),
    "soft_margin_loss: a target that requires grad": (
        lambda m: m.nn.functional.soft_margin_loss(m.ones(1, 3), m.ones(1, 3, requires_grad=True)),
        RuntimeError,
        "The function 'soft_margin_loss' is not differentiable with respect to argument 'target'.",
    ),
    "linalg.cross: different numbers of dimensions": (
        lambda m: m.linalg.cross(m.ones(2, 1, 3), m.ones(4, 3)),
        RuntimeError,
        "linalg.cross: inputs must have the same number of dimensions.",
    ),
    "einsum: an output subscript no input has": (
        lambda m: m.einsum("ij,jk->ikl", m.ones(2, 3), m.ones(3, 4)),
        RuntimeError,
        "einsum(): output subscript l does not appear in the equation for any input operand",
    ),
    "einsum: an output subscript twice": (
        lambda m: m.einsum("ij->ii", m.ones(2, 2)),
        RuntimeError,
        "einsum(): output subscript i appears more than once in the output",
    ),
    "multi_dot: a batch of matrices first": (
        lambda m: m.linalg.multi_dot([m.ones(2, 3, 3), m.ones(3, 3)]),
        RuntimeError,
        "multi_dot(): the first tensor must be 1D or 2D but got 3D",
    ),
    "interpolate: a size whose storage overflows": (
        lambda m: m.nn.functional.interpolate(m.ones(1, 1, 2, 2), size=(2**31, 2**31)),
        RuntimeError,
        "Storage size calculation overflowed with sizes=[1, 1, 2147483648, 2147483648]",
    ),
    "add: a float alpha for integer tensors": (
        lambda m: m.add(m.ones(2, dtype=m.int64), m.ones(2, dtype=m.int64), alpha=1.5),
        RuntimeError,
        "For integral input tensors, argument alpha must not be a floating point number.",
    ),
    "multi_dot: a vector inside": (
        lambda m: m.linalg.multi_dot([m.ones(2, 3), m.ones(3), m.ones(3, 2)]),
        RuntimeError,
        "multi_dot(): tensor 1 must be 2D but got 1D",
    ),
    # (found by a hunt against PyTorch, 2026-12-06: an empty result, a ZeroDivisionError, a loss
    # of broadcast shapes, IndexError, a silently empty bag, a gradient PyTorch has none of)
    "interpolate: an output size of 0": (
        lambda m: m.nn.functional.interpolate(m.zeros(1, 1, 6, 5), size=(0, 3)),
        RuntimeError,
        "Input and output sizes should be greater than 0, but got input (H: 6, W: 5) output (H: 0, W: 3)",
    ),
    "interpolate: a negative scale, 1-d": (
        lambda m: m.nn.functional.interpolate(m.zeros(1, 1, 6), scale_factor=-1.0),
        RuntimeError,
        "Input and output sizes should be greater than 0, but got input (W: 6) and output (W: -6)",
    ),
    "gaussian_nll_loss: a variance of another size": (
        lambda m: m.nn.functional.gaussian_nll_loss(m.zeros(3, 4), m.zeros(3, 4), m.ones(3, 2)),
        ValueError,
        "var is of incorrect size",
    ),
    "triplet_margin_loss: inputs of different dimensions": (
        lambda m: m.nn.functional.triplet_margin_loss(m.ones(3, 4), m.zeros(3, 4), m.ones(4)),
        RuntimeError,
        "The anchor, positive, and negative tensors are expected to have the same number of dimensions, but got: "
        "anchor 2D, positive 2D, and negative 1D inputs",
    ),
    "multi_margin_loss: a weight that requires grad": (
        lambda m: m.nn.functional.multi_margin_loss(
            m.ones(3, 4, requires_grad=True), m.tensor([0, 1, 2]), weight=m.ones(4, requires_grad=True)
        ),
        RuntimeError,
        "The function 'multi_margin_loss' is not differentiable with respect to argument 'weight'.",
    ),
    "adaptive_max_pool2d: an empty plane": (
        lambda m: m.nn.functional.adaptive_max_pool2d(m.zeros(1, 1, 0, 4), (2, 2)),
        RuntimeError,
        "adaptive_max_pool2d(): Expected input to have non-zero size for non-batch dimensions, but input has sizes "
        "[1, 1, 0, 4] with dimension 2 being empty",
    ),
    "embedding_bag: an index out of range": (
        lambda m: m.nn.functional.embedding_bag(m.tensor([0, 7]), m.zeros(5, 3), m.tensor([0])),
        RuntimeError,
        "Index 1 of input takes value 7 which is not in the valid range [0, 5)",
    ),
    "embedding_bag: an offset past the input": (
        lambda m: m.nn.functional.embedding_bag(m.tensor([0, 1, 2]), m.zeros(5, 3), m.tensor([0, 5])),
        RuntimeError,
        "offsets[-1] can not be greater than input's length 3 but got offsets[-1] of 5",
    ),
    # Found by a hunt against PyTorch: each returned a result (dropout of integers inf and NaN,
    # bags of other rows, convolutions of a zero dilation) or raised a Python error.
    "dropout of integers": (
        lambda m: m.nn.functional.dropout(m.tensor([1, 2, 3, 4]), 0.5),
        RuntimeError,
        "result type Float can't be cast to the desired output type Long",
    ),
    "dropout2d of integers": (
        lambda m: m.nn.functional.dropout2d(m.ones(1, 2, 2, 2, dtype=m.long), 0.3),
        RuntimeError,
        "result type Float can't be cast to the desired output type Long",
    ),
    "unfold: a zero kernel": (
        lambda m: m.nn.functional.unfold(m.ones(1, 1, 4, 4), (2, 0)),
        RuntimeError,
        "kernel size should be greater than zero, but got kernel_height: 2 kernel_width: 0",
    ),
    "unfold: a zero stride": (
        lambda m: m.nn.functional.unfold(m.ones(1, 1, 4, 4), 2, stride=0),
        RuntimeError,
        "stride should be greater than zero, but got stride_height: 0 stride_width: 0",
    ),
    "fold: a zero dilation": (
        lambda m: m.nn.functional.fold(m.ones(1, 4, 9), (4, 4), 2, dilation=0),
        RuntimeError,
        "dilation should be greater than zero, but got dilation_height: 0 dilation_width: 0",
    ),
    "fold: a negative padding": (
        lambda m: m.nn.functional.fold(m.ones(1, 4, 9), (4, 4), 2, padding=-1),
        RuntimeError,
        "padding should be non-negative, but got pad_height: -1 pad_width: -1",
    ),
    "conv2d: a zero dilation": (
        lambda m: m.nn.functional.conv2d(m.ones(1, 1, 4, 4), m.ones(2, 1, 3, 3), dilation=0),
        RuntimeError,
        "dilation should be greater than zero, but got [0, 0]",
    ),
    "conv1d: a negative dilation": (
        lambda m: m.nn.functional.conv1d(m.ones(1, 1, 4), m.ones(2, 1, 3), dilation=-1),
        RuntimeError,
        "dilation should be greater than zero",
    ),
    "conv_transpose2d: a zero dilation": (
        lambda m: m.nn.functional.conv_transpose2d(m.ones(1, 1, 4, 4), m.ones(1, 2, 3, 3), dilation=(2, 0)),
        RuntimeError,
        "dilation should be greater than zero, but got dilation_height: 2, dilation_width: 0",
    ),
    "conv_transpose1d: no output channels": (
        lambda m: m.nn.functional.conv_transpose1d(m.ones(1, 1, 4), m.ones(1, 0, 3)),
        RuntimeError,
        "non-empty 2D or 4D weight tensor expected, but got: [1, 0, 1, 3]",
    ),
    "conv2d: no filters": (
        lambda m: m.nn.functional.conv2d(m.ones(1, 1, 4, 4), m.ones(0, 1, 3, 3)),
        RuntimeError,
        "Given groups=1, expected weight to be at least 1 at dimension 0, but got weight of size [0, 1, 3, 3] instead",
    ),
    "conv2d: fewer filters than groups": (
        lambda m: m.nn.functional.conv2d(m.ones(1, 2, 4, 4), m.ones(1, 1, 3, 3), groups=2),
        RuntimeError,
        "Given groups=2, expected weight to be at least 2 at dimension 0, but got weight of size [1, 1, 3, 3] instead",
    ),
    "max_pool2d: a negative kernel": (
        lambda m: m.nn.functional.max_pool2d(m.ones(1, 1, 4, 4), -1),
        RuntimeError,
        "kernel size should be greater than zero, but got kH: -1 kW: -1",
    ),
    "embedding_bag: a decreasing offset": (
        lambda m: m.nn.functional.embedding_bag(m.tensor([0, 1, 2]), m.ones(3, 2), m.tensor([0, 2, 1]), mode="sum"),
        RuntimeError,
        "",  # (PyTorch's is an internal assertion's; tapegrad's names the offsets)
    ),
    "embedding_bag: padding_idx out of range": (
        lambda m: m.nn.functional.embedding_bag(m.tensor([0, 1]), m.ones(3, 2), m.tensor([0]), padding_idx=5),
        RuntimeError,
        "padding_idx must be within the number of embeddings, -3 through 2, but got 5",
    ),
    "embedding_bag: per_sample_weights of another shape": (
        lambda m: m.nn.functional.embedding_bag(
            m.tensor([0, 1, 2]), m.ones(3, 2), m.tensor([0, 1]), mode="sum", per_sample_weights=m.ones(2)
        ),
        ValueError,
        "embedding_bag: If per_sample_weights ({size}([2])) is not None, then it must have the same shape as the "
        "input ({size}([3]))",
    ),
    "embedding_bag: a 1-D weight": (
        lambda m: m.nn.functional.embedding_bag(m.tensor([0]), m.ones(3), m.tensor([0])),
        ValueError,
        "weight has to be a 2D Tensor, but got Tensor of dimension 1",
    ),
    "embedding: padding_idx out of range": (
        lambda m: m.nn.functional.embedding(m.tensor([0]), m.ones(3, 2), padding_idx=-4),
        AssertionError,
        "Padding_idx must be within num_embeddings",
    ),
    "embedding: a 1-D weight": (
        lambda m: m.nn.functional.embedding(m.tensor([0]), m.ones(3)),
        RuntimeError,
        "'weight' must be 2-D",
    ),
    "one_hot of an empty tensor": (
        lambda m: m.nn.functional.one_hot(m.tensor([], dtype=m.long)),
        RuntimeError,
        "Can not infer total number of classes from empty tensor.",
    ),
    "pixel_shuffle: a zero factor": (
        lambda m: m.nn.functional.pixel_shuffle(m.ones(1, 4, 2, 2), 0),
        RuntimeError,
        "pixel_shuffle expects a positive upscale_factor, but got 0",
    ),
    "pixel_unshuffle: a negative factor": (
        lambda m: m.nn.functional.pixel_unshuffle(m.ones(1, 1, 4, 4), -2),
        RuntimeError,
        "pixel_unshuffle expects a positive downscale_factor, but got -2",
    ),
    "local_response_norm: size 0": (
        lambda m: m.nn.functional.local_response_norm(m.ones(1, 2, 3, 3), 0),
        RuntimeError,
        "kernel size should be greater than zero, but got kT: 0 kH: 1 kW: 1",
    ),
    "group_norm of a 1-D input": (
        lambda m: m.nn.GroupNorm(2, 4)(m.ones(4)),
        RuntimeError,
        "Expected at least 2 dimensions for input tensor but received 1",
    ),
    "pad: cropping past the extent": (
        lambda m: m.nn.functional.pad(m.ones(2, 3), (-4, 2)),
        RuntimeError,
        "narrow(): length must be non-negative.",
    ),
    "pad: replicating an empty extent": (
        lambda m: m.nn.functional.pad(m.ones(1, 2, 0, 3), (1, 1, 1, 1), mode="replicate"),
        RuntimeError,
        "Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero dimensions for input, "
        "but got: [1, 2, 0, 3]",
    ),
    "cross_entropy of an array": (
        lambda m: m.nn.functional.cross_entropy(np.ones((2, 3)), m.tensor([0, 1])),
        TypeError,
        "cross_entropy_loss(): argument 'input' (position 1) must be Tensor, not numpy.ndarray",
    ),
    "nll_loss of a list": (
        lambda m: m.nn.functional.nll_loss([[0.5, 0.5]], m.tensor([0])),
        TypeError,
        "nll_loss_nd(): argument 'input' (position 1) must be Tensor, not list",
    ),
    "linear of an array": (
        lambda m: m.nn.functional.linear(np.ones((2, 3)), m.ones(4, 3)),
        TypeError,
        "linear(): argument 'input' (position 1) must be Tensor, not numpy.ndarray",
    ),
    "linear with an array bias": (
        lambda m: m.nn.functional.linear(m.ones(2, 3), m.ones(4, 3, requires_grad=True), np.ones(4)),
        TypeError,
        "linear(): argument 'bias' (position 3) must be Tensor, not numpy.ndarray",
    ),
    "linear with a number for bias": (
        lambda m: m.nn.functional.linear(m.ones(2, 3), m.ones(4, 3), 0.5),
        TypeError,
        "linear(): argument 'bias' (position 3) must be Tensor, not float",
    ),
    "linear with an array weight": (
        lambda m: m.nn.functional.linear(m.ones(2, 3), np.ones((4, 3))),
        TypeError,
        "linear(): argument 'weight' (position 2) must be Tensor, not numpy.ndarray",
    ),
}


# Kernels PyTorch compiles for floating dtypes only: numpy computed these of integers in floating
# point and returned a float result. (name: (call on an int64 (1, 4) tensor, PyTorch's kernel))
_FLOATING_KERNELS = {
    "gelu": (lambda F, x: F.gelu(x), "GeluKernelImpl"),
    "elu": (lambda F, x: F.elu(x), "elu_cpu"),
    "selu": (lambda F, x: F.selu(x), "elu_cpu"),
    "celu": (lambda F, x: F.celu(x), "elu_cpu"),
    "leaky_relu": (lambda F, x: F.leaky_relu(x), "leaky_relu_cpu"),
    "rrelu": (lambda F, x: F.rrelu(x), "leaky_relu_cpu"),
    "softplus": (lambda F, x: F.softplus(x), "softplus_cpu"),
    "silu": (lambda F, x: F.silu(x), "silu_cpu"),
    "mish": (lambda F, x: F.mish(x), "mish_cpu"),
    "hardswish": (lambda F, x: F.hardswish(x), "hardswish_cpu"),
    "hardsigmoid": (lambda F, x: F.hardsigmoid(x), "hardsigmoid_cpu"),
    "logsigmoid": (lambda F, x: F.logsigmoid(x), "log_sigmoid_cpu"),
    "glu": (lambda F, x: F.glu(x), "glu_cpu"),
    "softshrink": (lambda F, x: F.softshrink(x), "softshrink_check"),
    "hardshrink": (lambda F, x: F.hardshrink(x), "hardshrink_cpu"),
    "layer_norm": (lambda F, x: F.layer_norm(x, (4,)), "LayerNormKernelImpl"),
    "max_pool1d": (lambda F, x: F.max_pool1d(x[None], 2), "max_pool1d_impl"),
    "interpolate": (lambda F, x: F.interpolate(x[None], scale_factor=2), "compute_indices_weights_nearest"),
}
for _name, (_call, _kernel) in _FLOATING_KERNELS.items():
    CASES[f"{_name} of integers"] = (
        lambda m, _call=_call: _call(m.nn.functional, m.tensor([[-1, 2, 3, 4]])),
        NotImplementedError,
        f"\"{_kernel}\" not implemented for 'Long'",
    )
CASES.update(
    {
        # Mixed dtypes numpy promoted, silently (a float32 model fed float64 data gave float64)
        "layer_norm: a float64 input, float32 weight": (
            lambda m: m.nn.functional.layer_norm(m.ones(2, 3, dtype=m.float64), (3,), m.ones(3)),
            RuntimeError,
            "mixed dtype (CPU): all inputs must share same datatype.",
        ),
        "layer_norm: a float32 input, float64 bias": (
            lambda m: m.nn.functional.layer_norm(m.ones(2, 3), (3,), None, m.ones(3, dtype=m.float64)),
            RuntimeError,
            "mixed dtype (CPU): expect parameter to have scalar type of Float",
        ),
        "group_norm: a float64 input, float32 weight": (
            lambda m: m.nn.GroupNorm(3, 3)(m.ones(2, 3, 1, dtype=m.float64)),
            RuntimeError,
            "mixed dtype (CPU): all inputs must share same datatype.",
        ),
        "prelu: a float64 input, float32 weight": (
            lambda m: m.nn.PReLU()(m.ones(2, 3, dtype=m.float64)),
            RuntimeError,
            "prelu: Type promoting not supported. Got Double and Float",
        ),
        "binary_cross_entropy: a float64 target": (
            lambda m: m.nn.functional.binary_cross_entropy(m.full((2,), 0.5), m.ones(2, dtype=m.float64)),
            RuntimeError,
            "Found dtype Double but expected Float",
        ),
    }
)


def _set_batch_size(m):
    loader = m.utils.data.DataLoader(m.arange(10.0), batch_size=1)
    loader.batch_size = 3  # (was ignored: batches of 1 still)


CASES.update(
    {
        # Found by the data and autograd hunts: accepted where PyTorch refuses, silently
        "manual_seed beyond 64 bits": (lambda m: m.manual_seed(2**64), ValueError, "Overflow when unpacking long long"),
        "Generator.manual_seed of a float": (
            lambda m: m.Generator().manual_seed(1.5),
            RuntimeError,
            "manual_seed expected a long, but got float",
        ),
        "normal of an integer mean": (
            lambda m: m.normal(m.tensor([1, 2]), 1.0),
            NotImplementedError,
            "\"normal_kernel_cpu\" not implemented for 'Long'",
        ),
        "multinomial of integers": (
            lambda m: m.multinomial(m.tensor([1, 2]), 1),
            RuntimeError,
            "multinomial only supports floating-point dtypes for input, got: Long",
        ),
        "multinomial of no samples": (
            lambda m: m.multinomial(m.tensor([1.0, 2.0]), 0),
            RuntimeError,
            "cannot sample n_sample <= 0 samples",
        ),
        "random_split: a fraction outside [0, 1]": (
            lambda m: m.utils.data.random_split(range(10), [1.5, -0.5]),
            ValueError,
            "Fraction at index 0 is not between 0 and 1",
        ),
        "DataLoader: batch_size set after init": (
            _set_batch_size,
            ValueError,
            "batch_size attribute should not be set after DataLoader is initialized",
        ),
        "autograd.grad of no inputs": (
            lambda m: m.autograd.grad(m.ones(1, requires_grad=True).sum(), []),
            RuntimeError,
            "`inputs` argument to `grad()` cannot be empty.",
        ),
        "autograd.grad of a number": (
            lambda m: m.autograd.grad(m.ones(1, requires_grad=True).sum(), [3]),
            RuntimeError,
            "all inputs have to be Tensors or GradientEdges, but got int",
        ),
        "set_grad_enabled(0)": (
            lambda m: m.set_grad_enabled(0),
            TypeError,
            "set_grad_enabled(): argument 'enabled' (position 1) must be bool, not int",
        ),
    }
)
CASES.update(
    {
        "linear of a 0-d input": (
            lambda m: m.nn.functional.linear(m.tensor(1.0), m.ones(2, 1)),
            RuntimeError,
            "both arguments to linear need to be at least 1D, but they are 0D and 2D",
        ),
        "nll_loss of a 0-d input": (
            lambda m: m.nn.functional.nll_loss(m.tensor(1.0), m.tensor(0)),
            ValueError,
            "Expected 1 or more dimensions (got 0)",
        ),
        "mse_loss of integers": (
            lambda m: m.nn.functional.mse_loss(m.tensor([1, 2]), m.tensor([1, 3])),
            NotImplementedError,
            "\"mse_cpu\" not implemented for 'Long'",
        ),
        "huber_loss of integers": (
            lambda m: m.nn.functional.huber_loss(m.tensor([1, 2]), m.tensor([1, 3])),
            NotImplementedError,
            "\"huber_cpu\" not implemented for 'Long'",
        ),
        "layer_norm: a weight of another shape": (
            lambda m: m.nn.functional.layer_norm(m.ones(2, 3), (3,), m.ones(2)),
            RuntimeError,
            "Expected weight to be of same shape as normalized_shape, but got weight of shape [2] and "
            "normalized_shape = [3]",
        ),
        "multi_margin_loss: a target out of range": (
            lambda m: m.nn.functional.multi_margin_loss(m.ones(2, 3), m.tensor([0, 3])),
            RuntimeError,
            "target out of range",
        ),
        "RNN of a 4-D input": (
            lambda m: m.nn.RNN(2, 3)(m.ones(1, 1, 1, 2)),
            ValueError,
            "RNN: Expected input to be 2D or 3D, got 4D tensor instead",
        ),
    }
)
CASES.update(
    {
        # Found by the linalg hunt: a float power gave A or None, mixed dtypes were promoted
        "matrix_power of a float": (
            lambda m: m.linalg.matrix_power(m.eye(2) * 2, 0.5),
            TypeError,
            "linalg_matrix_power(): argument 'n' (position 2) must be int, not float",
        ),
        "solve of mixed dtypes": (
            lambda m: m.linalg.solve(m.eye(3, dtype=m.float64), m.ones(3, 2)),
            RuntimeError,
            "linalg.solve: Expected A and B to have the same dtype, but found A of type Double and B of type Float",
        ),
        "solve(left=False) of a vector": (
            lambda m: m.linalg.solve(m.eye(3), m.ones(3), left=False),
            RuntimeError,
            "linalg.solve: Incompatible shapes of A and B for the equation XA = B (3x3 and 3x1)",
        ),
        "baddbmm of mixed dtypes": (
            lambda m: m.baddbmm(m.ones(2, 2, 2), m.ones(2, 2, 3, dtype=m.float64), m.ones(2, 3, 2, dtype=m.float64)),
            RuntimeError,
            "Input dtypes must be the same, got: input float, batch1: double, batch2: double",
        ),
    }
)
CASES.update(
    {
        "unfold of a 2-D input": (
            lambda m: m.nn.functional.unfold(m.ones(4, 4), 2),
            IndexError,
            "Dimension out of range (expected to be in range of [-2, 1], but got 2)",
        ),
        "unfold of a 5-D input": (
            lambda m: m.nn.functional.unfold(m.ones(1, 1, 1, 4, 4), 2),
            RuntimeError,
            "Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero dimensions for "
            "input, but got: [1, 1, 1, 4, 4]",
        ),
        "cross_entropy: a K-d target of another size": (
            lambda m: m.nn.functional.cross_entropy(m.ones(2, 4, 3), m.zeros(2, 4, dtype=m.long)),
            RuntimeError,
            "Expected target size [2, 3], got [2, 4]",
        ),
        "bilinear: batches of other sizes": (
            lambda m: m.nn.Bilinear(2, 3, 4)(m.ones(5, 2), m.ones(4, 3)),
            RuntimeError,
            "bilinear(): input batch dimensions do not match at dim 0: got 5 and 4",
        ),
    }
)
CASES["prelu of integers"] = (
    lambda m: m.nn.functional.prelu(m.tensor([[-1, 2, 3, 4]]), m.tensor([1])),
    NotImplementedError,
    "\"prelu_cpu\" not implemented for 'Long'",
)
CASES["norm of integers"] = (
    lambda m: m.nn.functional.normalize(m.tensor([[1, 2]])),
    RuntimeError,
    "linalg.vector_norm: Expected a floating point or complex tensor as input. Got Long",
)
CASES["dist of integers"] = (
    lambda m: m.dist(m.tensor([1, 2]), m.tensor([1, 3])),
    RuntimeError,
    "norm(): input dtype should be either floating point or complex. Got Long instead.",
)


def _expected(message: str, size_name: str) -> str:
    return message.format(size=size_name, module=size_name.split(".")[0])


@pytest.mark.parametrize("name", list(CASES))
def test_tapegrad_raises_pytorchs_error(name):
    action, kind, message = CASES[name]
    with pytest.raises(kind) as raised:
        action(tg)
    assert str(raised.value).startswith(_expected(message, "tapegrad.Size"))


@pytest.mark.parametrize("name", list(CASES))
def test_the_expected_message_is_pytorchs(name):
    torch = pytest.importorskip("torch")
    action, kind, message = CASES[name]
    with pytest.raises(kind) as raised:
        action(torch)
    assert str(raised.value).startswith(_expected(message, "torch.Size"))


def test_non_leaf_grad_access_warns_and_is_none():
    y = tg.ones(2, requires_grad=True) * 2
    with pytest.warns(
        UserWarning, match=re.escape("The .grad attribute of a Tensor that is not a leaf Tensor is being accessed.")
    ):
        assert y.grad is None


def test_errors_never_leak_numba_types():
    with pytest.raises(RuntimeError) as raised:
        tg.ones(2, 3, requires_grad=True) @ tg.ones(3, 2, dtype=tg.float64)
    assert "numba" not in str(raised.value).lower()
    assert str(raised.value) == "expected m1 and m2 to have the same dtype, but got: float != double"


def test_integer_powers_follow_pytorch():
    torch = pytest.importorskip("torch")
    for call in (
        lambda m: 2 ** m.tensor([1, -2]),
        lambda m: m.tensor([2, -1, 1, 0]) ** m.tensor([1, -1, -3, 2]),
        lambda m: m.pow(2, m.tensor([-1, 3])),
        lambda m: (-1) ** m.tensor([-1, -2, 3]),
    ):
        assert call(tg).tolist() == call(torch).tolist()
    for call in (lambda m: m.tensor([2, 3]) ** -1, lambda m: m.tensor([2, 3]).pow(-2)):
        with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed."):
            call(tg)
        with pytest.raises(RuntimeError, match="Integers to negative integer powers are not allowed."):
            call(torch)


@pytest.mark.parametrize("numpy_dtype", [np.float16, np.int8, np.uint16, np.uint32])
def test_from_numpy_refuses_a_dtype_it_cannot_share_and_tensor_converts_it(numpy_dtype):
    """A float16 array shared by from_numpy was held as float16 under the name float32, and a
    compiled op on it (tanh of 17 elements) showed numba's TypingError."""
    array = np.arange(20).astype(numpy_dtype)
    with pytest.raises(TypeError, match="tapegrad.tensor"):
        tg.from_numpy(array)
    converted = tg.tensor(array)
    assert converted.numpy().dtype == converted.dtype.numpy
    np.testing.assert_allclose((converted * 1.0).tanh().numpy(), np.tanh(array.astype(np.float64)), rtol=1e-6)


def test_from_numpy_still_refuses_a_type_pytorch_has_no_tensor_of():
    with pytest.raises(TypeError, match="can't convert np.ndarray of type numpy.complex64"):
        tg.from_numpy(np.ones(3, np.complex64))


def test_the_refusals_above_stop_where_pytorch_s_do():
    """The new refusals are PyTorch's, no wider: found by a review of them."""
    rng = np.random.default_rng(3)
    x, t = tg.tensor(rng.standard_normal((3, 4))), tg.tensor(np.sign(rng.standard_normal((3, 4))))
    F = tg.nn.functional
    # soft_margin_loss refuses a target that requires grad only where autograd records
    with tg.no_grad():
        F.soft_margin_loss(x, tg.tensor(t.numpy(), requires_grad=True))
    per_row = tg.func.vmap(F.soft_margin_loss)(x, t)
    tape = tg.record(F.soft_margin_loss, x.numpy(), t.numpy())
    assert tape.value_and_grad(x.numpy(), t.numpy())[0].item() == pytest.approx(per_row.mean().item())
    # a negative ignore_index with probability targets (PyTorch refuses non-negative ones)
    probabilities = tg.full((3, 4), 0.25, dtype=tg.float64)
    assert F.cross_entropy(x, probabilities, ignore_index=-1).item() == F.cross_entropy(x, probabilities).item()
    # a 1-D weight with a 0-d bias, on inputs that do not take PyTorch's addmm
    assert F.linear(tg.ones(3), tg.ones(3), tg.tensor(1.0)).item() == 4.0
    assert tuple(F.linear(tg.ones(4, 2, 3), tg.ones(3), tg.tensor(1.0)).shape) == (4, 2)
    with pytest.raises(RuntimeError, match="mat2 must be a matrix"):
        F.linear(tg.ones(4, 2, 3), tg.ones(3), tg.ones(1))
    # the inf norm along a dimension of an empty tensor that is not empty, a scalar rolled whole
    assert tg.zeros(0, 3).norm(p=float("inf"), dim=1).shape == (0,)
    assert tg.tensor(2.5).roll(1).item() == 2.5
    # six pads of a 5-D input, and 8 in constant mode, are PyTorch's too
    assert tuple(F.pad(tg.ones(1, 1, 2, 3, 4), (1,) * 6, mode="replicate").shape) == (1, 1, 4, 5, 6)
    assert tuple(F.pad(tg.ones(1, 1, 2, 3, 4), (1,) * 8).shape) == (1, 3, 4, 5, 6)


@pytest.mark.parametrize(
    "shapes",
    [((5, 2, 3), ()), ((3,), ()), ((5, 2, 3), (2, 4))],
    ids=["a 3-D input, a 0-d bias", "a 1-D input, a 0-d bias", "a 3-D input, a 2-D bias"],
)
def test_linear_adds_a_bias_of_another_dtype_where_pytorch_does_not_take_addmm(shapes):
    """Off PyTorch's addmm path (a 2-D input, or a contiguous one with a 1-D bias, which refuse
    it), a float64 bias is added in place to the float32 product: the result stays float32,
    and the bias's gradient is float64."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    values = [rng.standard_normal(shapes[0]), rng.standard_normal((4, 3)), rng.standard_normal(shapes[1])]
    results = []
    for m in (tg, torch):
        x, w = (m.tensor(v, dtype=m.float32, requires_grad=True) for v in values[:2])
        b = m.tensor(values[2], dtype=m.float64, requires_grad=True)
        y = m.nn.functional.linear(x, w, b)
        (y * y).sum().backward()
        results.append(
            (str(y.dtype).split(".")[1], y.detach().numpy(), [(t.grad.dtype, t.grad.numpy()) for t in (x, w, b)])
        )
    (ours, ours_y, ours_grads), (theirs, theirs_y, theirs_grads) = results
    assert ours == theirs == "float32"
    np.testing.assert_allclose(ours_y, theirs_y, rtol=1e-5)
    for (dtype, grad), (their_dtype, their_grad) in zip(ours_grads, theirs_grads):
        assert str(dtype).split(".")[1] == str(their_dtype).split(".")[1]
        np.testing.assert_allclose(grad, their_grad, rtol=1e-4, atol=1e-5)


def test_group_norm_of_an_empty_batch_is_empty():
    # (the grouped reshape's -1 could not be inferred from 0 elements)
    x = tg.zeros(0, 4, 3, requires_grad=True)
    norm = tg.nn.GroupNorm(2, 4)
    out = norm(x)
    assert tuple(out.shape) == (0, 4, 3)
    out.sum().backward()
    assert tuple(x.grad.shape) == (0, 4, 3) and norm.weight.grad.tolist() == [0.0] * 4


def test_seeds_are_taken_as_pytorch_takes_them():
    """A negative seed is taken modulo 2**64 (numpy refused it: a script seeding with -1
    stopped), a float or a numeric string made an int; the stream is the seed's."""
    tg.manual_seed(-1)
    first = tg.rand(4).tolist()
    tg.manual_seed(2**64 - 1)
    assert tg.rand(4).tolist() == first
    for seed in (1.7, "3", True, -(2**63)):
        tg.manual_seed(seed)
    assert tg.Generator().manual_seed(-5).initial_seed() == 2**64 - 5


def test_linalg_takes_what_pytorch_takes():
    """Found by the linalg hunt: lowercase UPLO, a tensor power; lstsq's residuals of a vector B
    keep their column, (..., 1), as PyTorch's."""
    A = tg.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=tg.float64)
    np.testing.assert_array_equal(tg.linalg.eigvalsh(A, UPLO="u").numpy(), tg.linalg.eigvalsh(A, UPLO="U").numpy())
    np.testing.assert_array_equal(tg.linalg.matrix_power(A, tg.tensor(2)).numpy(), (A @ A).numpy())
    tall = tg.tensor(np.random.default_rng(0).standard_normal((2, 4, 2)))
    b = tg.tensor(np.random.default_rng(1).standard_normal((2, 4)))
    solved = tg.linalg.lstsq(tall, b, driver="gelsd")
    assert tuple(solved.solution.shape) == (2, 2) and tuple(solved.residuals.shape) == (2, 1)
    assert tuple(tg.linalg.lstsq(tall[0], b[0], driver="gelsd").residuals.shape) == (1,)


def _convolution_dtype_errors(m) -> list:
    """Input, weight and bias dtypes over shapes that take PyTorch's native kernels and its
    oneDNN ones (a batch, groups, kernels above 3x3, a large input), whose messages differ."""
    F = m.nn.functional  # noqa: N806 - PyTorch's alias
    dtypes = [m.float32, m.float64, m.int64]
    shapes = [((1, 2, 4, 4), (3, 2, 3, 3), 1), ((2, 2, 4, 4), (3, 2, 3, 3), 1), ((1, 2, 6, 6), (3, 2, 4, 4), 1),
              ((1, 4, 4, 4), (4, 2, 3, 3), 2), ((1, 2, 120, 100), (3, 2, 3, 3), 1), ((1, 2, 5), (3, 2, 3), 1),
              ((3, 2, 5), (3, 2, 3), 1)]  # fmt: skip
    out = []
    for (x_shape, w_shape, groups), x_dtype, w_dtype, b_dtype in itertools.product(
        shapes, dtypes, dtypes[:2], [None, *dtypes[:2]]
    ):
        x, w = m.ones(*x_shape, dtype=x_dtype), m.ones(*w_shape, dtype=w_dtype)
        b = None if b_dtype is None else m.ones(w_shape[0], dtype=b_dtype)
        try:
            (F.conv2d if len(x_shape) == 4 else F.conv1d)(x, w, b, groups=groups)
            out.append("ok")
        except RuntimeError as error:
            out.append(str(error).replace(m.__name__ + ".", ""))
    return out


def test_convolution_dtype_errors_follow_pytorch_s_backend_choice():
    """Found by a review: a long input with a float bias said "expected scalar type Double";
    PyTorch checks the bias first, then names the weight in the words of the backend it picks."""
    ours = _convolution_dtype_errors(tg)
    assert "Input type (long int) and bias type (float) should be the same" in ours
    assert any(message.endswith("should be the same or input should be a MKLDNN tensor and weight is a dense tensor")
               for message in ours)  # fmt: skip
    torch = pytest.importorskip("torch")
    assert ours == _convolution_dtype_errors(torch)


def _adaptive_max_pools_to_nothing(m) -> list:
    F = m.nn.functional  # noqa: N806 - PyTorch's alias
    x = m.ones(1, 1, 4, 4, requires_grad=True)
    values, indices = F.adaptive_max_pool2d(x, (0, 2), return_indices=True)
    return [tuple(values.shape), tuple(indices.shape), str(indices.dtype).split(".")[1], values.requires_grad]


def test_an_adaptive_max_pool_to_an_output_of_zero_is_empty():
    """Found by a review: it raised "stack expects a non-empty TensorList" (no windows to
    stack), where PyTorch gives an empty result. (PyTorch's backward of it raises; tapegrad's
    gives zeros.)"""
    ours = _adaptive_max_pools_to_nothing(tg)
    assert ours == [(1, 1, 0, 2), (1, 1, 0, 2), "int64", True]
    x = tg.ones(1, 1, 4, 4, requires_grad=True)
    tg.nn.functional.adaptive_max_pool2d(x, 0).sum().backward()
    assert x.grad.tolist() == np.zeros((1, 1, 4, 4)).tolist()
    torch = pytest.importorskip("torch")
    assert ours == _adaptive_max_pools_to_nothing(torch)
