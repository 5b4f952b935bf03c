"""tapegrad: reverse-mode autodiff for the CPU, with PyTorch's API and a jitted tape.

``import tapegrad as torch`` runs PyTorch's autograd tutorial. Ops are computed with numpy and
recorded on a flat tape; ``backward()`` is one numba-compiled sweep over it. Importing tapegrad
does not import numba: the first backward does (and compiles, or loads the cached kernels).
"""

from __future__ import annotations

import math as _math
import warnings as _warnings

# Tensor's methods are attached by the modules that record them (tapegrad/tensor.py ``install``):
# importing these is what gives a Tensor its methods, whatever the order of the lines here. The
# rest are PyTorch's namespaces (torch.cuda, torch.utils.data...).
from . import (  # noqa: F401
    _dtypes,
    _indexing,
    _linalg,
    _record,
    _reductions,
    _replay_hooks,
    _selection,
    _views,
    accelerator,
    autograd,
    backends,
    cuda,
    distributions,
    linalg,
    return_types,
)
from ._arrangements import (
    atleast_1d,
    atleast_2d,
    atleast_3d,
    broadcast_shapes,
    broadcast_tensors,
    diagonal_scatter,
    dsplit,
    dstack,
    fliplr,
    flipud,
    hsplit,
    narrow_copy,
    row_stack,
    select_scatter,
    slice_scatter,
    vsplit,
)
from ._array_functions import (
    as_strided,
    bincount,
    block_diag,
    bucketize,
    cartesian_prod,
    cdist,
    copysign,
    corrcoef,
    cov,
    cummax,
    cummin,
    diff,
    float_power,
    fmax,
    fmin,
    heaviside,
    histc,
    histogram,
    inner,
    is_inference,
    is_nonzero,
    isin,
    isneginf,
    isposinf,
    logspace,
    nextafter,
    positive,
    result_type,
    signbit,
    tensordot,
    trapezoid,
    trapz,
    tril_indices,
    triu_indices,
    unflatten,
)
from ._composites import (
    addbmm,
    addcdiv,
    addcmul,
    addmm,
    addmv,
    addr,
    argsort,
    argwhere,
    atan2,
    baddbmm,
    bernoulli,
    broadcast_to,
    ceil,
    column_stack,
    cross,
    diag,
    dist,
    hstack,
    is_floating_point,
    lerp,
    logaddexp,
    masked_select,
    meshgrid,
    movedim,
    msort,
    mv,
    narrow,
    nonzero,
    promote_types,
    repeat_interleave,
    roll,
    scatter,
    searchsorted,
    select,
    sort,
    std_mean,
    swapaxes,
    swapdims,
    tensor_split,
    tile,
    topk,
    trace,
    tril,
    triu,
    unique,
    unravel_index,
    vstack,
)
from ._composites import atan2 as arctan2
from ._composites import movedim as moveaxis
from ._device import device, get_default_device, set_default_device
from ._dtypes import (
    bool,  # noqa: A004
    can_cast,
    double,
    dtype,
    finfo,
    float,  # noqa: A004
    float32,
    float64,
    iinfo,
    int,  # noqa: A004
    int16,
    int32,
    int64,
    long,
    short,
    uint8,
)
from ._factories import (
    BoolTensor,
    DoubleTensor,
    FloatTensor,
    Generator,
    IntTensor,
    LongTensor,
    arange,
    as_tensor,
    asarray,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    get_rng_state,
    linspace,
    manual_seed,
    multinomial,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    set_rng_state,
    tensor,
    zeros,
    zeros_like,
)
from ._grad_mode import (
    enable_grad,
    inference_mode,
    is_anomaly_check_nan_enabled,
    is_anomaly_enabled,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_anomaly_enabled,
    set_grad_enabled,
)
from ._indexing import flip, gather, index_add, index_select, scatter_add
from ._linalg import bmm, dot, einsum, matmul, mm, outer
from ._logical import (
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    floor_divide,
    fmod,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    remainder,
    trunc,
)
from ._logical import div as _div
from ._logical import trunc as fix
from ._more_composites import (
    aminmax,
    channels_last,
    channels_last_3d,
    contiguous_format,
    count_nonzero,
    cumprod,
    deg2rad,
    frac,
    hypot,
    index_fill,
    kron,
    kthvalue,
    logcumsumexp,
    logit,
    median,
    memory_format,
    mvlgamma,
    nan_to_num,
    nanmean,
    nanmedian,
    nansum,
    polygamma,
    preserve_format,
    quantile,
    rad2deg,
    rot90,
    sinc,
    take,
    take_along_dim,
    var_mean,
    xlogy,
)
from ._ops import OPS as _OPS
from ._ops import UNARY as _UNARY
from ._placements import diag_embed, index_copy, masked_scatter
from ._printing import set_printoptions
from ._reductions import (
    amax,
    amin,
    argmax,
    argmin,
    cumsum,
    log_softmax,
    logsumexp,
    max,  # noqa: A004
    mean,
    min,  # noqa: A004
    norm,
    prod,
    softmax,
    std,
    sum,  # noqa: A004
    var,
)
from ._selection import (
    all,  # noqa: A004 - PyTorch's names
    allclose,
    any,  # noqa: A004
    clamp,
    clip,
    equal,
    isclose,
    isfinite,
    isinf,
    isnan,
    maximum,
    minimum,
    where,
)
from ._threads import get_num_threads, set_num_threads
from ._version import __version__
from ._views import (
    cat,
    chunk,
    concat,
    concatenate,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    t,
    transpose,
    unbind,
    unsqueeze,
)
from .autograd import gradients as _gradients  # noqa: F401
from .autograd import graph as _graph  # noqa: F401
from .backends import (
    are_deterministic_algorithms_enabled,
    get_float32_matmul_precision,
    is_deterministic_algorithms_warn_only_enabled,
    set_float32_matmul_precision,
    use_deterministic_algorithms,
)
from .tensor import Size, Tensor, typename

# numpy warns where PyTorch stays silent (log of a negative, 0/0, overflow in exp) and both give
# the same values (nan, inf): warnings raised by tapegrad's own numpy calls are not shown. A
# user's own numpy calls warn as before (the filter matches tapegrad's modules only).
_warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"tapegrad(\.|$)")


def _module_function(name: str, doc: str = ""):
    def function(input: Tensor, *args, **kwargs):  # noqa: A002 - PyTorch's parameter name
        return getattr(input, name)(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc or f"``tapegrad.{name}(x)`` is ``x.{name}()``."
    return function


# Unary ops from the table are module functions too: tapegrad.exp(x).
for _op in _OPS:
    if _op.family == _UNARY:
        globals()[_op.name] = _module_function(_op.name)
neg = _module_function("neg")


@_record.with_out("add")
def add(input, other, *, alpha=1, out=None):  # noqa: A002 - PyTorch's names
    """``input + alpha * other``, either of them a number (``tapegrad.add(2, x)``); follows
    ``torch.add``."""
    if isinstance(input, Tensor):
        return input.add(other, alpha=alpha)
    return (other if alpha == 1 else other * alpha).__radd__(input)


@_record.with_out("sub")
def sub(input, other, *, alpha=1, out=None):  # noqa: A002
    """``input - alpha * other``, either of them a number; follows ``torch.sub``."""
    if isinstance(input, Tensor):
        return input.sub(other, alpha=alpha)
    return (other if alpha == 1 else other * alpha).__rsub__(input)


@_record.with_out("mul")
def mul(input, other, *, out=None):  # noqa: A002
    """``input * other``, either of them a number; follows ``torch.mul``."""
    return input.mul(other) if isinstance(input, Tensor) else other.__rmul__(input)


subtract, multiply = sub, mul
div = divide = _div


def pow(input, exponent):  # noqa: A001, A002 - PyTorch's names
    """``input ** exponent``, either of them a tensor (``tapegrad.pow(2, x)``); follows
    ``torch.pow``."""
    return input.pow(exponent) if isinstance(input, Tensor) else exponent.__rpow__(input)


square = _module_function("square")
diagonal = _module_function("diagonal")
clone = _module_function("clone")
flatten = _module_function("flatten")
repeat = _module_function("repeat")
# PyTorch's in-place functions, each the method of that name
for _name in (
    "relu_", "sin_", "abs_", "acos_", "acosh_", "asin_", "asinh_", "atan_", "atanh_", "clamp_", "clamp_max_",
    "clamp_min_", "clip_", "cos_", "cosh_", "detach_", "erf_", "erfc_", "exp2_", "exp_", "expm1_", "fill_", "fix_",
    "floor_", "log10_", "log1p_", "log2_", "log_", "nan_to_num_", "neg_", "reciprocal_", "round_", "rsqrt_",
    "sigmoid_", "sinh_", "sqrt_", "square_", "tan_", "tanh_", "trunc_", "zero_",
):  # fmt: skip
    globals()[_name] = _module_function(_name)
inverse = _module_function("inverse")
for _name in ("det", "logdet", "slogdet", "cholesky", "cholesky_inverse", "pinverse", "matrix_exp"):
    globals()[_name] = _module_function(_name)
svd = linalg._torch_svd
qr = linalg._torch_qr
lu = linalg._torch_lu
lu_unpack = linalg._torch_lu_unpack
chain_matmul = linalg._chain_matmul
true_divide = _div
sgn = _module_function("sgn")
cholesky_solve = linalg.cholesky_solve
matrix_power = linalg.matrix_power
del _op, _name


def get_default_dtype():
    """The dtype of floats made from Python numbers (``tapegrad.float32`` unless
    ``set_default_dtype`` changed it); follows ``torch.get_default_dtype``."""
    return _dtypes.DEFAULT_FLOAT


def set_default_dtype(d) -> None:
    """Make ``d`` (float32 or float64) the dtype of new floating tensors; raises ``TypeError``
    for another dtype, as PyTorch does; follows ``torch.set_default_dtype``."""
    chosen = _dtypes.as_dtype(d)
    if chosen not in (float32, float64):
        raise TypeError(f"only floating-point types are supported as the default type, got {chosen}")
    _dtypes.DEFAULT_FLOAT = chosen


inf = _math.inf
nan = _math.nan
pi = _math.pi
e = _math.e


eq, ne, lt, le, gt, ge = (
    _module_function(name, f"``input.{name}(other)``, elementwise, a boolean tensor; follows ``torch.{name}``.")
    for name in ("eq", "ne", "lt", "le", "gt", "ge")
)


def is_tensor(value):
    """Whether ``value`` is a tapegrad Tensor; follows ``torch.is_tensor``."""
    return isinstance(value, Tensor)


def numel(input: Tensor) -> int:  # noqa: A002
    """The number of elements of ``input``; follows ``torch.numel``."""
    return input.numel()


# Namespaces imported on first use, as SciPy's submodules are (SPEC 1): ``import tapegrad`` pays
# only for what makes a Tensor and its ops, about half of its own import time (the rest of the
# time is numpy's). None of these attaches Tensor methods, so nothing changes until they are used.
# name -> (module, attribute of it, or None for the module itself)
_LAZY = {
    "func": ("func", None),
    "vmap": ("func", "vmap"),  # torch.vmap is torch.func.vmap
    "nn": ("nn", None),
    "optim": ("optim", None),
    "utils": ("utils", None),
    "conv1d": ("nn.functional", "conv1d"),  # torch.conv2d and the like
    "conv2d": ("nn.functional", "conv2d"),
    "conv_transpose2d": ("nn.functional", "conv_transpose2d"),
    "max_pool2d": ("nn.functional", "max_pool2d"),
    # and those whose signature at the top level is functional's (not torch.embedding's, whose
    # arguments come in another order, nor the losses', which take the reduction as an int)
    "avg_pool1d": ("nn.functional", "avg_pool1d"),
    "max_pool1d": ("nn.functional", "max_pool1d"),
    "conv_transpose1d": ("nn.functional", "conv_transpose1d"),
    "pixel_shuffle": ("nn.functional", "pixel_shuffle"),
    "pixel_unshuffle": ("nn.functional", "pixel_unshuffle"),
    "prelu": ("nn.functional", "prelu"),
    "selu": ("nn.functional", "selu"),
    "celu": ("nn.functional", "celu"),
    "hardshrink": ("nn.functional", "hardshrink"),
    "pairwise_distance": ("nn.functional", "pairwise_distance"),
    "cosine_similarity": ("nn.functional", "cosine_similarity"),
    "bilinear": ("nn.functional", "bilinear"),
    "GuardError": ("replay", "GuardError"),
    "Tape": ("replay", "Tape"),
    "load_tape": ("replay", "load_tape"),
    "record": ("replay", "record"),
    "load": ("_serialization", "load"),
    "save": ("_serialization", "save"),
    "serialization": ("serialization", None),
    "special": ("special", None),
    "compile": ("compiler", "compile"),  # torch.compile: a module wrapped as PyTorch wraps it, computing the same
    "compiler": ("compiler", None),
}


def __getattr__(name: str):
    """The names of ``_LAZY``, imported on first use and then bound here like any other."""
    lazy = _LAZY.get(name)
    if lazy is None:
        raise AttributeError(f"module 'tapegrad' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f"{__name__}.{lazy[0]}")
    value = module if lazy[1] is None else getattr(module, lazy[1])
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))
