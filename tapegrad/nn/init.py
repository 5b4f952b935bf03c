"""``tapegrad.nn.init``: in-place initialisers, with PyTorch's formulas (draws come from
tapegrad's generator, so the values differ from PyTorch's for the same seed)."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import _factories
from ..tensor import Tensor


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    tensor._data[...] = values.astype(tensor._data.dtype)
    return tensor


def _fans(tensor: Tensor) -> tuple[int, int]:
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    return _fill(tensor, _factories.numpy_generator(generator).uniform(a, b, size=tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    return _fill(tensor, _factories.numpy_generator(generator).normal(mean, std, size=tensor.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:  # fmt: skip
    """Fill in place from N(``mean``, ``std``) truncated to ``[a, b]`` (absolute bounds), by
    inverting the normal CDF of a uniform draw between the bounds' CDFs, as PyTorch; follows
    ``torch.nn.init.trunc_normal_`` (other numbers than its: numpy's generator)."""
    from scipy.special import erf, erfinv

    low, high = (0.5 * (1.0 + erf((bound - mean) / (std * math.sqrt(2.0)))) for bound in (a, b))
    uniform = _factories.numpy_generator(generator).uniform(2 * low - 1, 2 * high - 1, size=tensor.shape)
    return _fill(tensor, np.clip(erfinv(uniform) * std * math.sqrt(2.0) + mean, a, b))


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor in place with the identity (ones on the diagonal); follows
    ``torch.nn.init.eye_``. Raises ``ValueError`` for another number of dimensions."""
    if tensor.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, np.eye(*tensor.shape))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-D convolution weight in place so that the convolution is the identity
    (per group: channel i to channel i, at the kernel's centre); follows
    ``torch.nn.init.dirac_``. Raises ``ValueError`` for other shapes."""
    ndim = tensor.dim()
    if ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    out_per_group = tensor.shape[0] // groups
    if tensor.shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    values = np.zeros(tensor.shape)
    centre = tuple(extent // 2 for extent in tensor.shape[2:])
    for group in range(groups):
        for channel in range(min(out_per_group, tensor.shape[1])):
            values[(group * out_per_group + channel, channel, *centre)] = 1.0
    return _fill(tensor, values)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, np.zeros(tensor.shape))


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, np.ones(tensor.shape))


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, np.full(tensor.shape, val))


def _gain(nonlinearity: str, a: float) -> float:
    return calculate_gain(nonlinearity, a)  # (a: leaky_relu's slope, 0 by kaiming's default)


def _fan(tensor: Tensor, mode: str) -> int:
    """The fan kaiming's ``mode`` names; PyTorch's ``ValueError`` for another mode."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of {['fan_in', 'fan_out']}")
    fan_in, fan_out = _fans(tensor)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None
) -> Tensor:
    if 0 in tuple(tensor.shape):  # PyTorch's: nothing to fill (its fan would divide by zero)
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    bound = math.sqrt(3.0) * _gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None
) -> Tensor:
    return normal_(tensor, 0.0, _gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode)), generator)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for ``nonlinearity`` (``param``: leaky_relu's negative slope, 0.01 by
    default); follows ``torch.nn.init.calculate_gain``. Raises ``ValueError`` for an unknown one."""
    linear = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def orthogonal_(tensor: Tensor, gain: float = 1, generator=None) -> Tensor:
    """Fill in place with a (semi-)orthogonal matrix (the trailing dimensions flattened), times
    ``gain``: the Q of the QR decomposition of a normal sample, signs fixed by R's diagonal;
    follows ``torch.nn.init.orthogonal_``. Raises ``ValueError`` below 2 dimensions."""
    if tensor.dim() < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    columns = tensor.numel() // rows
    flattened = _factories.numpy_generator(generator).normal(0.0, 1.0, (rows, columns))
    if rows < columns:
        flattened = flattened.T
    q, r = np.linalg.qr(flattened)
    q = q * np.sign(np.diag(r))
    if rows < columns:
        q = q.T
    return _fill(tensor, (q * gain).reshape(tensor.shape))


def _deprecated(function):
    """PyTorch's old name of an initialiser (``normal`` for ``normal_``), with its FutureWarning."""
    old = function.__name__[:-1]

    def deprecated(*args, **kwargs):
        warnings.warn(
            f"`nn.init.{old}` is now deprecated in favor of `nn.init.{function.__name__}`.", FutureWarning, stacklevel=2
        )
        return function(*args, **kwargs)

    deprecated.__name__ = deprecated.__qualname__ = old
    deprecated.__doc__ = f"``{function.__name__}`` under its deprecated name; follows ``torch.nn.init.{old}``."
    return deprecated


uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
