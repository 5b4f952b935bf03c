"""The dtypes a tensor can have, and PyTorch's type-promotion rules between them."""

from __future__ import annotations

from builtins import float as builtins_float
from builtins import int as builtins_int

import numpy as np


class dtype:  # noqa: N801 - named like torch.dtype, which users spell in lower case
    """A tensor element type; prints as ``tapegrad.float32`` the way PyTorch prints ``torch.float32``."""

    __slots__ = ("name", "numpy", "is_floating_point", "itemsize", "category", "type_name", "c_name", "kernel_name")

    def __init__(self, name: str, numpy_type, category: int, type_name: str, c_name: str, kernel_name: str):
        self.name = name
        # The names PyTorch's messages print: its scalar type ("Float"), C's ("float") in some,
        # and its kernels' ("uint8_t") in a failed conversion of a number.
        self.type_name, self.c_name, self.kernel_name = type_name, c_name, kernel_name
        self.numpy = np.dtype(numpy_type)
        self.is_floating_point = category == FLOATING
        self.itemsize = self.numpy.itemsize
        # bool < integer < floating: a lower category never decides a result's type.
        self.category = category

    def __repr__(self) -> str:
        return f"tapegrad.{self.name}"

    def __reduce__(self):
        return self.name


BOOLEAN, INTEGER, FLOATING = 0, 1, 2

float32 = dtype("float32", np.float32, FLOATING, "Float", "float", "float")
float64 = dtype("float64", np.float64, FLOATING, "Double", "double", "double")
int64 = dtype("int64", np.int64, INTEGER, "Long", "long int", "int64_t")
int32 = dtype("int32", np.int32, INTEGER, "Int", "int", "int")
int16 = dtype("int16", np.int16, INTEGER, "Short", "short int", "int16_t")
uint8 = dtype("uint8", np.uint8, INTEGER, "Byte", "unsigned char", "uint8_t")
bool = dtype("bool", np.bool_, BOOLEAN, "Bool", "bool", "bool")  # noqa: A001 - PyTorch's name for it
float = float32  # noqa: A001
double = float64
long = int64
int = int32  # noqa: A001
short = int16

ALL = (float32, float64, int64, int32, int16, uint8, bool)
DEFAULT_FLOAT = float32
_FROM_NUMPY = {d.numpy: d for d in ALL}
# numpy types PyTorch would map to the nearest supported tensor type.
_FROM_NUMPY.update(
    {
        np.dtype(np.float16): float32,
        np.dtype(np.int8): int64,
        np.dtype(np.uint16): int64,
        np.dtype(np.uint32): int64,
    }
)


def from_numpy_dtype(numpy_dtype) -> dtype:
    try:
        return _FROM_NUMPY[np.dtype(numpy_dtype).newbyteorder("=")]
    except KeyError:
        raise TypeError(
            f"can't convert np.ndarray of type numpy.{np.dtype(numpy_dtype).name}. The only supported "
            "types are: float64, float32, int64, int32, and bool."
        ) from None


def as_dtype(value) -> dtype:
    """Accept a tapegrad dtype, a numpy dtype or a Python type, as PyTorch's ``dtype=`` does."""
    if isinstance(value, dtype):
        return value
    import builtins

    if value is builtins.float:
        return float64
    if value is builtins.int:
        return int64
    if value is builtins.bool:
        return bool
    return from_numpy_dtype(value)


def _wider(a: dtype, b: dtype) -> dtype:
    if a.category != b.category:
        return a if a.category > b.category else b
    return a if a.itemsize >= b.itemsize else b


def result_type(a: dtype, a_dim: int, b: dtype, b_dim: int) -> dtype:
    """PyTorch's promotion: a 0-d tensor only decides the type when it is of a higher category."""
    if (a_dim == 0) == (b_dim == 0):
        return _wider(a, b)
    dimensioned, zero_dim = (a, b) if b_dim == 0 else (b, a)
    return zero_dim if zero_dim.category > dimensioned.category else dimensioned


def scalar_result_type(tensor_type: dtype, scalar) -> dtype:
    """A Python number never widens a tensor of its own category (a float32 tensor times 2.5 stays float32)."""
    import builtins

    if isinstance(scalar, builtins.bool):
        category = BOOLEAN
    elif isinstance(scalar, builtins.int):
        category = INTEGER
    else:
        category = FLOATING
    if category <= tensor_type.category:
        return tensor_type
    return DEFAULT_FLOAT if category == FLOATING else int64


# The ints each non-float type holds as it is (a bool compares with an int in int64).
INTEGER_RANGES = {
    d.numpy: (np.iinfo(d.numpy).min, np.iinfo(d.numpy).max) if d.category == INTEGER else (-(1 << 63), (1 << 63) - 1)
    for d in ALL
    if d.category != FLOATING
}


def readable_int(value: builtins_int) -> None:
    """Raise PyTorch's ``OverflowError`` for an int outside [-2**63, 2**64): it reads a Python
    int as int64 or uint64, nothing wider."""
    if not -(1 << 63) <= value < 1 << 64:
        raise OverflowError("int too big to convert")


def wrapped_int(value: builtins_int, numpy_dtype: np.dtype):
    """A Python int as PyTorch casts a number into an integer ``numpy_dtype``: modulo 2**bits
    (two's complement), so ``uint8 tensor + -3`` adds 253 and ``uint8 tensor < -3`` compares with
    253. numpy (NEP 50) raised ``OverflowError`` for the arithmetic and compared the true values.
    Raises PyTorch's ``OverflowError`` for an int outside [-2**63, 2**64), which it cannot read."""
    readable_int(value)
    low, high = INTEGER_RANGES[numpy_dtype]
    if low <= value <= high:
        return value
    bits = 8 * numpy_dtype.itemsize
    value &= (1 << bits) - 1
    return value - (1 << bits) if low and value > high else value


def checked_int(value: builtins_int, numpy_dtype: np.dtype):
    """A Python int converted as PyTorch converts a fill value, a bound or an exponent into an
    integer ``numpy_dtype`` (``c10::checked_convert``): in range, or, for an unsigned type, a
    negative number down to minus its maximum (which wraps: -3 as uint8 is 253); else PyTorch's
    ``RuntimeError`` (its ``OverflowError`` for an int it cannot read, as ``wrapped_int``)."""
    readable_int(value)
    low, high = INTEGER_RANGES[numpy_dtype]
    if low <= value <= high or (low == 0 and -high <= value < 0):
        return wrapped_int(value, numpy_dtype)
    target = int64 if not -(1 << 63) <= value < 1 << 63 else from_numpy_dtype(numpy_dtype)
    raise RuntimeError(f"value cannot be converted to type {target.kernel_name} without overflow")


def fill_value(value, numpy_dtype: np.dtype):
    """``value`` as PyTorch takes a fill value or a scatter's number into ``numpy_dtype``: an int
    into an integer type through ``checked_int`` (-3 into uint8 is 253, 300 raises); anything
    else as it is."""
    if type(value) is builtins_int and numpy_dtype.kind in "iu":
        return checked_int(value, numpy_dtype)
    return value


def integer_scale(value, numpy_dtype: np.dtype):
    """A scale (``alpha``, ``beta``) as PyTorch converts it for tensors of ``numpy_dtype``: for an
    integer type, truncated to an int (``alpha=1.5`` adds once, ``beta=0.5`` is 0); else as it is."""
    if numpy_dtype.kind in "iu" and not isinstance(value, (np.bool_, builtins_int, np.integer)):  # (a bool is an int)
        return builtins_int(value)
    return value


# What PyTorch's dtypes answer besides their name: no complex types here; signed unless bool/uint8.
dtype.is_complex = False
dtype.is_signed = property(lambda self: self.category == FLOATING or self.numpy.kind == "i")


class finfo:  # noqa: N801 - PyTorch's name
    """The limits of a floating dtype (``DEFAULT_FLOAT`` when none is given): ``bits``, ``eps``,
    ``max``, ``min``, ``tiny`` (= ``smallest_normal``), ``resolution``, as Python floats, and
    ``dtype`` (its name); follows ``torch.finfo``. Raises ``TypeError`` for an integer dtype."""

    def __init__(self, type=None):  # noqa: A002 - PyTorch's name
        chosen = DEFAULT_FLOAT if type is None else as_dtype(type)
        if not chosen.is_floating_point:
            raise TypeError(
                "torch.finfo() requires a floating point input type. Use torch.iinfo to handle 'torch.finfo'"
            )
        limits = np.finfo(chosen.numpy)
        self.bits = limits.bits
        self.eps, self.max, self.min = (
            builtins_float(limits.eps),
            builtins_float(limits.max),
            builtins_float(limits.min),
        )
        self.tiny = self.smallest_normal = builtins_float(limits.smallest_normal)
        self.resolution = 10.0**-limits.precision  # (PyTorch's 1e-06; float32's own was 9.99e-07)
        self.dtype = chosen.name

    def __repr__(self) -> str:
        return (
            f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
            f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})"
        )


class iinfo:  # noqa: N801 - PyTorch's name
    """The limits of an integer dtype: ``bits``, ``max``, ``min`` (Python ints) and ``dtype``;
    follows ``torch.iinfo``. Raises ``TypeError`` for a floating dtype."""

    def __init__(self, type):  # noqa: A002 - PyTorch's name
        chosen = as_dtype(type)
        if chosen.is_floating_point:
            raise TypeError("torch.iinfo() requires an integer input type. Use torch.finfo to handle 'torch.iinfo'")
        limits = np.iinfo(chosen.numpy) if chosen.numpy.kind != "b" else None
        self.bits = chosen.itemsize * 8
        self.max, self.min = (builtins_int(limits.max), builtins_int(limits.min)) if limits else (1, 0)
        self.dtype = chosen.name

    def __repr__(self) -> str:
        return f"iinfo(min={builtins_float(self.min):g}, max={builtins_float(self.max):g}, dtype={self.dtype})"


def scalar(value):
    """A numpy scalar as the Python number it is to PyTorch (``np.float64(0.5)`` bounding a
    float32 tensor keeps it float32, ``np.bool_`` is a bool); anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value


def can_cast(from_, to) -> bool:
    """Whether PyTorch's casting rules allow ``from_`` to ``to`` in an in-place op: never to a
    lower category (float to int, int to bool); follows ``torch.can_cast``."""
    return as_dtype(from_).category <= as_dtype(to).category
