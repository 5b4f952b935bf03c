"""More of ``torch.nn``'s modules: the 1-d pools, adaptive max pooling, the padding modules,
resampling (``Upsample``), pixel shuffles, ``Unflatten``, ``PReLU``, ``GLU``, the shrinking and
thresholding activations, ``Bilinear``, the Poisson, Gaussian and margin loss modules, and
``ParameterDict``. Each calls ``nn.functional`` with its options and prints as PyTorch's.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from .. import _dtypes
from ..tensor import Tensor
from . import functional as F  # noqa: N812 - the name PyTorch code uses
from . import init
from .modules import Module, Parameter, _activation, _loss_module, bound_options


def _pool_module(name: str, function, repr_fields: tuple, singles: tuple = (), **defaults):
    """A pooling or resampling module: options set at construction (positionally or by name,
    ``stride`` defaulting to ``kernel_size``), ``forward`` calling ``function``."""

    def init_(self, *args, **kwargs):
        Module.__init__(self)
        options = bound_options(name, defaults, args, kwargs)
        if "stride" in options and options["stride"] is None:
            options["stride"] = options["kernel_size"]
        for key in singles:  # held as 1-tuples, as PyTorch's _single makes them
            if isinstance(options[key], int):
                options[key] = (options[key],)
        for key, value in options.items():
            setattr(self, key, value)

    def forward(self, input: Tensor):  # noqa: A002
        return function(input, **{key: getattr(self, key) for key in defaults})

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={getattr(self, key)}" for key in repr_fields)

    return type(
        name,
        (Module,),
        {
            "__init__": init_,
            "forward": forward,
            "extra_repr": extra_repr,
            "__doc__": f"``F.{function.__name__}`` as a module; follows ``torch.nn.{name}``.",
            "__module__": __name__,
        },
    )


MaxPool1d = _pool_module(
    "MaxPool1d", F.max_pool1d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    kernel_size=None, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False,
)  # fmt: skip
AvgPool1d = _pool_module(
    "AvgPool1d", F.avg_pool1d, ("kernel_size", "stride", "padding"), ("kernel_size", "stride", "padding"),
    kernel_size=None, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
)  # fmt: skip
AdaptiveAvgPool1d = _pool_module("AdaptiveAvgPool1d", F.adaptive_avg_pool1d, ("output_size",), output_size=None)
AdaptiveMaxPool1d = _pool_module(
    "AdaptiveMaxPool1d", F.adaptive_max_pool1d, ("output_size",), output_size=None, return_indices=False
)
AdaptiveMaxPool2d = _pool_module(
    "AdaptiveMaxPool2d", F.adaptive_max_pool2d, ("output_size",), output_size=None, return_indices=False
)
PixelShuffle = _pool_module("PixelShuffle", F.pixel_shuffle, ("upscale_factor",), upscale_factor=None)
PixelUnshuffle = _pool_module("PixelUnshuffle", F.pixel_unshuffle, ("downscale_factor",), downscale_factor=None)


class LocalResponseNorm(Module):
    """``F.local_response_norm`` as a module; follows ``torch.nn.LocalResponseNorm``."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class Unfold(Module):
    """``F.unfold`` as a module: sliding blocks as columns; follows ``torch.nn.Unfold``."""

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, stride={self.stride}"


class Fold(Module):
    """``F.fold`` as a module: columns summed back into an image; follows ``torch.nn.Fold``."""

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1):
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
            f"padding={self.padding}, stride={self.stride}"
        )


class Upsample(Module):
    """``F.interpolate`` as a module; follows ``torch.nn.Upsample``."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):  # fmt: skip
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners
        if isinstance(scale_factor, (tuple, list)):
            scale_factor = tuple(float(factor) for factor in scale_factor)
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) else scale_factor
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)  # fmt: skip

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            return f"scale_factor={self.scale_factor}, mode={self.mode!r}"
        return f"size={self.size}, mode={self.mode!r}"


class _Pad(Module):
    """A padding module: ``padding`` an int (every side) or a tuple (left, right, top, bottom...)."""

    mode = "constant"
    sides = 2

    def __init__(self, padding, value: float | None = None):
        super().__init__()
        self.padding = (padding,) * self.sides if isinstance(padding, int) else tuple(padding)
        if value is not None:
            self.value = value

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.pad(input, self.padding, self.mode, getattr(self, "value", None) if self.mode == "constant" else None)

    def extra_repr(self) -> str:
        if self.mode == "constant" and not type(self).__name__.startswith("Zero"):
            return f"padding={self.padding}, value={self.value}"
        return f"{self.padding}"


def _pad_module(name: str, mode: str, sides: int, constant: bool = False):
    body = {"mode": mode, "sides": sides, "__module__": __name__,
            "__doc__": f"``F.pad(input, padding, {mode!r})`` as a module; follows ``torch.nn.{name}``."}  # fmt: skip
    if constant:

        def init_(self, padding, value: float):
            _Pad.__init__(self, padding, value)

        body["__init__"] = init_
    elif name.startswith("Zero"):

        def init_(self, padding):
            _Pad.__init__(self, padding, 0.0)

        body["__init__"] = init_
    return type(name, (_Pad,), body)


ZeroPad1d = _pad_module("ZeroPad1d", "constant", 2)
ZeroPad2d = _pad_module("ZeroPad2d", "constant", 4)
ConstantPad1d = _pad_module("ConstantPad1d", "constant", 2, constant=True)
ConstantPad2d = _pad_module("ConstantPad2d", "constant", 4, constant=True)
ConstantPad3d = _pad_module("ConstantPad3d", "constant", 6, constant=True)
ReflectionPad1d = _pad_module("ReflectionPad1d", "reflect", 2)
ReflectionPad2d = _pad_module("ReflectionPad2d", "reflect", 4)
ReplicationPad1d = _pad_module("ReplicationPad1d", "replicate", 2)
ReplicationPad2d = _pad_module("ReplicationPad2d", "replicate", 4)
CircularPad1d = _pad_module("CircularPad1d", "circular", 2)
CircularPad2d = _pad_module("CircularPad2d", "circular", 4)


class Unflatten(Module):
    """``input.unflatten(dim, unflattened_size)`` as a module; follows ``torch.nn.Unflatten``."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, unflattened_size  # (printed as given: a list stays one)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return input.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class PReLU(Module):
    """``F.prelu`` with a learned slope (``num_parameters``: 1, or one per channel, each starting
    at ``init``); follows ``torch.nn.PReLU``."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(np.full(num_parameters, init, _dtypes.as_dtype(dtype or _dtypes.DEFAULT_FLOAT).numpy))

    def reset_parameters(self) -> None:
        from .. import _grad_mode

        with _grad_mode.no_grad():
            self.weight.fill_(self.init)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class Bilinear(Module):
    """``F.bilinear`` with a learned weight (out, in1, in2) and bias, initialised U(-1/sqrt(in1),
    1/sqrt(in1)) as PyTorch's; follows ``torch.nn.Bilinear``."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):  # fmt: skip
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        numpy_dtype = _dtypes.as_dtype(dtype or _dtypes.DEFAULT_FLOAT).numpy  # (set_default_dtype's)
        self.weight = Parameter(np.zeros((out_features, in1_features, in2_features), numpy_dtype))
        self.bias = Parameter(np.zeros(out_features, numpy_dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1: Tensor, input2: Tensor) -> Tensor:
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


GLU = _activation("GLU", F.glu, lambda o: f"dim={o['dim']}", dim=-1)
Hardshrink = _activation("Hardshrink", F.hardshrink, lambda o: f"{o['lambd']}", lambd=0.5)
Softshrink = _activation("Softshrink", F.softshrink, lambda o: f"{o['lambd']}", lambd=0.5)
Tanhshrink = _activation("Tanhshrink", F.tanhshrink)
Threshold = _activation(
    "Threshold", F.threshold,
    lambda o: f"threshold={o['threshold']}, value={o['value']}" + (", inplace=True" if o["inplace"] else ""),
    threshold=None, value=None, inplace=False,
)  # fmt: skip


class RReLU(Module):
    """``F.rrelu`` with the module's training flag; follows ``torch.nn.RReLU``."""

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False):
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.rrelu(input, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper}" + (", inplace=True" if self.inplace else "")


class Softmax2d(Module):
    """Softmax over the channels of (N, C, H, W) or (C, H, W); follows ``torch.nn.Softmax2d``."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.dim() not in (3, 4):
            raise ValueError(f"Softmax2d: expected input to be 3D or 4D, got {input.dim()}D instead")
        return F.softmax(input, -3)


PoissonNLLLoss = _loss_module(
    "PoissonNLLLoss", F.poisson_nll_loss, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
    reduction="mean",
)  # fmt: skip
GaussianNLLLoss = _loss_module("GaussianNLLLoss", F.gaussian_nll_loss, full=False, eps=1e-6, reduction="mean")


class MultiMarginLoss(Module):
    """``F.multi_margin_loss`` as a module, ``weight`` a buffer; follows ``torch.nn.MultiMarginLoss``."""

    def __init__(self, p: int = 1, margin: float = 1.0, weight=None, size_average=None, reduce=None,
                 reduction: str = "mean"):  # fmt: skip
        super().__init__()
        if p not in (1, 2):
            raise ValueError("only p == 1 and p == 2 supported")
        self.p, self.margin = p, margin
        self.register_buffer("weight", weight)
        self.reduction = F._legacy_reduction(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.multi_margin_loss(input, target, self.p, self.margin, self.weight, reduction=self.reduction)


class MultiLabelSoftMarginLoss(Module):
    """``F.multilabel_soft_margin_loss`` as a module, ``weight`` a buffer; follows
    ``torch.nn.MultiLabelSoftMarginLoss``."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.reduction = F._legacy_reduction(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.multilabel_soft_margin_loss(input, target, self.weight, reduction=self.reduction)


class ParameterDict(Module):
    """Parameters held by name and registered; follows ``torch.nn.ParameterDict``: what is
    stored is made a Parameter unless it is one."""

    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    # Tensors are held as Parameters (registered), anything else as it is, in one key order.

    @property
    def _keys(self) -> dict:
        keys = self.__dict__.get("_key_order")
        if keys is None:
            keys = self.__dict__["_key_order"] = {}
        return keys

    def __getitem__(self, key: str):
        if key not in self._keys:
            raise KeyError(key)
        return self._parameters[key] if key in self._parameters else self.__dict__["_objects"][key]

    def __setitem__(self, key: str, value) -> None:
        self._keys[key] = None
        if isinstance(value, Tensor):
            self.register_parameter(key, value if isinstance(value, Parameter) else Parameter(value))
        else:
            self.__dict__.setdefault("_objects", {})[key] = value

    def __delitem__(self, key: str) -> None:
        del self._keys[key]
        if key in self._parameters:
            del self._parameters[key]
        else:
            del self.__dict__["_objects"][key]

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self):
        return iter(list(self._keys))

    def __reversed__(self):
        return reversed(list(self._keys))

    def __contains__(self, key) -> bool:
        return key in self._keys

    def keys(self):
        return list(self._keys)

    def values(self):
        return [self[key] for key in self._keys]

    def items(self):
        return [(key, self[key]) for key in self._keys]

    def get(self, key: str, default=None):
        return self[key] if key in self._keys else default

    def clear(self) -> None:
        for key in list(self._keys):
            del self[key]

    def setdefault(self, key: str, default=None):
        if key not in self._keys:
            self[key] = default
        return self[key]

    def copy(self) -> ParameterDict:
        return ParameterDict(OrderedDict(self.items()))

    def pop(self, key: str):
        value = self._parameters[key]
        del self[key]
        return value

    def update(self, parameters) -> None:
        items = parameters.items() if hasattr(parameters, "items") else parameters
        if isinstance(parameters, dict) and not isinstance(parameters, OrderedDict):
            items = sorted(items)  # PyTorch sorts a plain dict's keys
        for key, value in items:
            self[key] = value

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterDict should not be called.")

    def extra_repr(self) -> str:
        lines = []
        for key, value in self.items():
            if isinstance(value, Tensor):
                size = "x".join(str(extent) for extent in value.shape)
                lines.append(f"  ({key}): Parameter containing: [{value.type()} of size {size}]")
            else:
                lines.append(f"  ({key}): Object of type: {type(value).__name__}")
        return "\n".join(lines)
