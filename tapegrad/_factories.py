"""Tensor factories: ``tensor``, ``ones``, ``randn``... with ``dtype=`` and ``requires_grad=``."""

from __future__ import annotations

import math
import numbers
import operator
import threading
import warnings

import numpy as np

from . import _device, _dtypes
from ._shapes import physical_memory, size_arguments
from .tensor import Tensor, _check_can_require_grad, _guard, _wrap, as_array, floating_kernel, install

_generator = None  # created on first use: importing numpy.random costs ~15 ms of ``import tapegrad``


# How many times a random op asked for a generator: ``tapegrad.func.vmap`` compares it before
# and after a call to know whether the function drew random numbers (``randomness="error"``).
class _Draws(threading.local):
    """This thread's count of calls for random numbers: another thread's draws must not make a
    recording of this one look random (one global count did, ``tapegrad.record`` refused)."""

    count = 0


random_draws = _Draws()


def default_generator():
    """The generator behind ``rand``/``randn``/``randint``, ``nn.init`` and ``dropout``."""
    global _generator
    random_draws.count += 1
    if _generator is None:
        _generator = np.random.default_rng()
    return _generator


def numpy_generator(generator=None) -> np.random.Generator:
    """The numpy Generator behind ``generator``: a ``tapegrad.Generator``, a numpy Generator, or
    None (the default one)."""
    if generator is None:
        return default_generator()
    random_draws.count += 1
    return generator._numpy if isinstance(generator, Generator) else generator


class Generator:
    """A random number generator to pass as ``generator=`` (factories, ``randperm``,
    ``DataLoader``, ``random_split``), as ``torch.Generator``: ``Generator().manual_seed(42)``.

    Wraps numpy's PCG64 Generator: the same seed gives the same numbers every run, but not
    PyTorch's numbers. ``device`` must be the CPU (raises as ``tapegrad.device`` checks).

    >>> import tapegrad as tg
    >>> g = tg.Generator().manual_seed(0)
    >>> g.initial_seed()
    0
    """

    def __init__(self, device="cpu"):
        _device.check(device)
        self.device = _device.CPU
        self.seed()

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from ``seed`` (an int, a negative one taken modulo 2**64 as
        PyTorch's); returns this generator. ``RuntimeError`` for a float, ``ValueError``
        beyond 64 bits, as PyTorch's."""
        if isinstance(seed, float):
            raise RuntimeError(f"manual_seed expected a long, but got {type(seed).__name__}")
        self._seed = seed_value(seed)
        self._numpy = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Restart the stream from a fresh non-deterministic seed; returns that seed."""
        self.manual_seed(int(np.random.SeedSequence().entropy % (1 << 63)))
        return self._seed

    def initial_seed(self) -> int:
        """The seed the stream started from."""
        return self._seed

    def get_state(self) -> Tensor:
        """The stream's state as a 1-D uint8 tensor (see ``get_rng_state``)."""
        return _state_bytes(self._numpy)

    def set_state(self, new_state) -> Generator:
        """Restore the stream from what ``get_state`` gave; returns this generator."""
        _set_state_bytes(self._numpy, new_state)
        return self


def _state_bytes(numpy_generator: np.random.Generator) -> Tensor:
    import json  # (here: ``import tapegrad`` leaves it for first use)

    return _wrap(np.frombuffer(json.dumps(numpy_generator.bit_generator.state).encode(), np.uint8).copy())


def _set_state_bytes(numpy_generator: np.random.Generator, state) -> None:
    data = state._data if isinstance(state, Tensor) else np.asarray(state)
    if data.dtype != np.uint8 or data.ndim != 1:
        raise TypeError(f"expected a torch.ByteTensor, but got {_dtypes.from_numpy_dtype(data.dtype).type_name}Tensor")
    import json

    numpy_generator.bit_generator.state = json.loads(data.tobytes().decode())


def get_rng_state() -> Tensor:
    """The default generator's state as a 1-D uint8 tensor, which ``set_rng_state`` restores
    (numpy's PCG64 state, not PyTorch's bytes: only tapegrad reads it). Follows
    ``torch.get_rng_state``."""
    return _state_bytes(default_generator())


def set_rng_state(new_state) -> None:
    """Restore the default generator's state from what ``get_rng_state`` gave; follows
    ``torch.set_rng_state``. Raises ``TypeError`` for a tensor that is not 1-D uint8."""
    _set_state_bytes(default_generator(), new_state)


def seed_value(seed) -> int:
    """``seed`` as PyTorch's ``manual_seed`` reads it: an int (a float or a numeric string made
    one), a negative one taken modulo 2**64; ``ValueError`` beyond 64 bits (numpy refused
    negative seeds: scripts seeding with -1 stopped)."""
    value = int(seed)
    if not -(1 << 63) <= value < (1 << 64):
        raise ValueError("Overflow when unpacking long long")
    return value % (1 << 64)


def manual_seed(seed: int):
    """Seed the generator behind ``rand``/``randn``/``randint`` (their values differ from
    PyTorch's); takes ``seed`` as PyTorch does (``seed_value``)."""
    global _generator
    _generator = np.random.default_rng(seed_value(seed))
    return _generator


def _finish(data: np.ndarray, requires_grad: bool) -> Tensor:
    tensor = _wrap(data)
    if requires_grad:
        _check_can_require_grad(data, factory=True)
        tensor._requires_grad = True
    return tensor


def tensor(data, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor holding a copy of ``data`` (a number, nested lists, an array or a tensor).

    >>> import tapegrad as tg
    >>> tg.tensor([1.0, 2.0], requires_grad=True)
    tensor([1., 2.], requires_grad=True)
    """
    _device.check(device)
    if isinstance(data, Tensor):
        _guard(data, "tensor()")  # a copy of a recorded value is a constant of the tape: a read
        warnings.warn(
            "To copy construct from a tensor, it is recommended to use sourceTensor.detach().clone() or "
            "sourceTensor.detach().clone().requires_grad_(True), rather than torch.tensor(sourceTensor).",
            stacklevel=2,
        )
    return _finish(as_array(data, dtype), requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """A tensor of ``data``, sharing a numpy array's memory where it can; follows ``torch.as_tensor``."""
    _device.check(device)
    if isinstance(data, Tensor):
        # Another dtype is ``data.to(dtype)``, on the graph as in PyTorch (a copy cut the
        # gradient of that branch, silently).
        return data if dtype is None or data.dtype == _dtypes.as_dtype(dtype) else data.to(dtype)
    if (
        isinstance(data, np.ndarray)
        and (dtype is None or _dtypes.as_dtype(dtype).numpy == data.dtype)
        and _shareable(data.dtype)
    ):
        return from_numpy(data)  # (its own dtype asked for: shared too, as PyTorch's)
    return tensor(data, dtype=dtype)


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad=None) -> Tensor:
    """``obj`` as a tensor, sharing its memory where it can; follows ``torch.asarray``:

    - a tensor is returned itself; a numpy array shares its memory (``from_numpy``); an object
      with the buffer protocol (``bytearray``, ``array.array``, ``memoryview``) is read as
      ``dtype`` (the default float dtype if none), sharing its memory (read-only for ``bytes``);
      a numpy scalar and a sequence or number are copied;
    - ``copy=True`` copies always (a tensor by ``clone``, on its graph), ``copy=False`` never
      (``ValueError`` where it must), ``None`` where ``dtype`` differs (a tensor by ``to``);
    - ``requires_grad`` defaults to the tensor's (with PyTorch's warning, once a process, where
      that is True) and is set on the result, a leaf: on the tensor given itself when it is
      returned; a result of the graph that must not require grad is ``detach``-ed.

    Raises PyTorch's ``ValueError`` where ``copy=False`` cannot alias and for a buffer whose
    length is not a multiple of the element size, ``RuntimeError`` for ``requires_grad`` of an
    integer tensor. Arrays of a dtype tapegrad has no tensor of (float16...) are converted, a
    copy (``tapegrad.tensor``)."""
    _device.check(device)
    wanted = None if dtype is None else _dtypes.as_dtype(dtype)
    source = obj if isinstance(obj, Tensor) else None
    grad = bool(requires_grad) if requires_grad is not None else source is not None and source.requires_grad
    if grad and requires_grad is None and not _WARNED["requires_grad"]:
        _WARNED["requires_grad"] = True
        warnings.warn(_ASARRAY_REQUIRES_GRAD, UserWarning, stacklevel=2)
    force_copy = bool(copy)
    if source is None and isinstance(obj, (np.ndarray, np.generic)):
        if isinstance(obj, np.generic):  # a numpy scalar: a storage of its own, copied once
            if copy is False:
                raise RuntimeError("can't alias NumPy scalars. Either remove copy=False or transform it in a ndarray. ")
            force_copy = False
        elif not _shareable(obj.dtype):
            if copy is False:
                raise ValueError(f"can't alias a numpy array of {obj.dtype.name}: tapegrad has no tensor type of it")
            force_copy = False  # (the conversion is the copy)
        source = tensor(obj) if isinstance(obj, np.generic) or not _shareable(obj.dtype) else from_numpy(obj)
    elif source is None and _has_buffer(obj):
        source = _from_buffer(obj, wanted or _dtypes.DEFAULT_FLOAT)
    if source is None:
        if copy is False:
            raise ValueError("can't alias arbitrary sequence into a tensor.")
        return _finish(as_array(obj, wanted), grad)
    wrong_dtype = wanted is not None and wanted != source.dtype
    if force_copy or (copy is None and wrong_dtype):
        source = source.to(wanted) if wrong_dtype else source.clone()
    elif wrong_dtype:
        raise ValueError(f"can't alias tensor with dtype '{source.dtype.type_name}' into dtype '{wanted.type_name}'.")
    if not source.is_leaf:
        return source if grad else source.detach()
    if grad:
        _check_can_require_grad(source._data, factory=True)
    return source.requires_grad_(grad)


_WARNED = {"requires_grad": False, "buffer": False}
_ASARRAY_REQUIRES_GRAD = (
    "torch.asarray: unspecified requires_grad now defaults to obj.requires_grad instead of False. Pass "
    "requires_grad=False explicitly to get the old behavior and silence this warning."
)


def _has_buffer(obj) -> bool:
    try:
        memoryview(obj)
    except TypeError:
        return False
    return True


def _from_buffer(obj, dtype) -> Tensor:
    """A tensor of ``dtype`` over ``obj``'s bytes (``torch.frombuffer``'s reading), sharing them."""
    view = memoryview(obj)
    size = view.nbytes
    if size == 0:
        raise ValueError(f"both buffer length ({size}) and count (-1) must not be 0")
    if size % dtype.itemsize:
        raise ValueError(
            f"buffer length ({size} bytes) after offset (0 bytes) must be a multiple of element size ({dtype.itemsize})"
        )
    if view.readonly and not _WARNED["buffer"]:
        _WARNED["buffer"] = True
        warnings.warn(_READ_ONLY_BUFFER, UserWarning, stacklevel=3)
    return _wrap(np.frombuffer(view, dtype=dtype.numpy))


_READ_ONLY_BUFFER = (
    "The given buffer is not writable, and PyTorch does not support non-writable tensors. This means you can write "
    "to the underlying (supposedly non-writable) buffer using the tensor. You may want to copy the buffer to protect "
    "its data or make it writable before converting it to a tensor. This type of warning will be suppressed for the "
    "rest of this program."
)


def _shareable(numpy_dtype) -> bool:
    """Whether a tensor can hold an array of ``numpy_dtype`` as it is (``from_numpy``)."""
    try:
        return _dtypes.from_numpy_dtype(numpy_dtype).numpy == numpy_dtype.newbyteorder("=")
    except TypeError:
        return True  # (from_numpy raises PyTorch's error for it)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory (no copy); follows ``torch.from_numpy``. Raises
    ``TypeError`` for a dtype tapegrad has no tensor type of (float16, int8, uint16...: PyTorch
    has, but a tensor sharing their memory here held them under another type's name, and
    compiled ops raised numba's typing errors on them; ``tapegrad.tensor`` converts them)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    _dtypes.from_numpy_dtype(array.dtype)  # PyTorch's TypeError for a type it has no tensor of
    if not _shareable(array.dtype):
        raise TypeError(
            f"can't convert np.ndarray of type numpy.{array.dtype.name} without a copy: tapegrad has no "
            "tensor type of it (tapegrad.tensor(array) converts it)"
        )
    if not array.dtype.isnative:
        raise ValueError(
            "given numpy array has byte order different from the native byte order. Conversion between byte "
            "orders is currently not supported."
        )
    return _wrap(array.view())  # the memory shared, not the array object (``a.shape = ...`` is the caller's)


def _shape(size, dtype=np.float64) -> tuple:
    """``size`` as a shape, refused as PyTorch refuses it before anything is allocated: a negative
    extent, or more bytes than the machine has (numpy would get them lazily from the kernel and
    the process would be killed when they are touched)."""
    shape = tuple(operator.index(extent) for extent in size_arguments(size))
    for extent in shape:
        if extent < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {extent}: {list(shape)}")
    nbytes = np.dtype(dtype).itemsize
    for extent in shape:
        nbytes *= extent
    if nbytes > physical_memory():
        raise RuntimeError(f"DefaultCPUAllocator: not enough memory: you tried to allocate {nbytes} bytes.")
    return shape


def _size_keyword(size: tuple, keywords: dict, name: str) -> tuple:
    """The shape given positionally or as ``size=`` (``torch.zeros(size=(2, 3))``), with
    Python's TypeError for both or for another keyword."""
    if "size" in keywords:
        if size:
            raise TypeError(f"{name}() got multiple values for argument 'size'")
        size = (keywords.pop("size"),)
    if keywords:
        raise TypeError(f"{name}() got an unexpected keyword argument '{next(iter(keywords))}'")
    return size


def _float_type(dtype) -> np.dtype:
    return _dtypes.as_dtype(dtype).numpy if dtype is not None else _dtypes.DEFAULT_FLOAT.numpy


def zeros(*size, dtype=None, device=None, requires_grad: bool = False, **keywords) -> Tensor:
    """A tensor of zeros of shape ``size`` (default dtype float32); follows ``torch.zeros``."""
    size = _size_keyword(size, keywords, "zeros")
    _device.check(device)
    return _finish(np.zeros(_shape(size, _float_type(dtype)), _float_type(dtype)), requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False, **keywords) -> Tensor:
    """A tensor of ones of shape ``size`` (default dtype float32); follows ``torch.ones``."""
    size = _size_keyword(size, keywords, "ones")
    _device.check(device)
    return _finish(np.ones(_shape(size, _float_type(dtype)), _float_type(dtype)), requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False, **keywords) -> Tensor:
    """An uninitialised tensor of shape ``size`` (tapegrad fills it with zeros); follows ``torch.empty``."""
    size = _size_keyword(size, keywords, "empty")
    _device.check(device)
    return _finish(np.empty(_shape(size, _float_type(dtype)), _float_type(dtype)), requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value``; follows ``torch.full``."""
    _device.check(device)
    if dtype is None:  # PyTorch's: int64 for any integer (a numpy one, an integer tensor), bool for a bool
        kind = fill_value._data.dtype.kind if isinstance(fill_value, Tensor) else np.asarray(fill_value).dtype.kind
        dtype = _dtypes.int64 if kind in "iu" else (_dtypes.bool if kind == "b" else _dtypes.DEFAULT_FLOAT)
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    target = _float_type(dtype)
    _check_representable(fill_value, target)
    if target.kind == "u" and isinstance(fill_value, numbers.Integral) and fill_value < 0:
        fill_value = int(fill_value) % (int(np.iinfo(target).max) + 1)  # (wrapped, as C's conversion)
    return _finish(np.full(_shape((size,), target), fill_value, target), requires_grad)


_C_INTEGERS = {"int32": "int", "int64": "int64_t", "int16": "int16_t", "uint8": "uint8_t", "int8": "int8_t"}


def _check_representable(value, target: np.dtype) -> None:
    """PyTorch's ``RuntimeError`` for a fill value the dtype cannot hold (c10's ``overflows``):
    NaN, inf or out of range for an integer dtype (numpy cast NaN to the lowest integer,
    silently), where a negative Python int wraps into an unsigned one (-1 is uint8's 255) down
    to minus its largest; a finite value beyond float32's range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return
    if target.kind == "f":
        if target.itemsize == 4 and math.isfinite(value) and abs(value) > float(np.finfo(np.float32).max):
            raise RuntimeError("value cannot be converted to type float without overflow")
        return
    if target.kind not in "iu":
        return
    info = np.iinfo(target)
    lowest = -int(info.max) if target.kind == "u" and isinstance(value, numbers.Integral) else info.min
    if not (math.isfinite(value) and lowest <= value <= info.max):
        raise RuntimeError(
            f"value cannot be converted to type {_C_INTEGERS.get(target.name, target.name)} without overflow"
        )


def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The ``n`` by ``m`` identity matrix; follows ``torch.eye``."""
    _device.check(device)
    return _finish(np.eye(n, m, dtype=_float_type(dtype)), requires_grad)


def randn(*size, dtype=None, generator=None, device=None, requires_grad: bool = False, **keywords) -> Tensor:
    """Standard normal samples of shape ``size`` from numpy's Generator; follows ``torch.randn``."""
    size = _size_keyword(size, keywords, "randn")
    _device.check(device)
    _floating_only(dtype, "normal_kernel_cpu")
    values = numpy_generator(generator).standard_normal(_shape(size))
    return _finish(values.astype(_float_type(dtype)), requires_grad)


def _floating_only(dtype, kernel: str) -> None:
    """PyTorch's ``NotImplementedError`` for random floats asked as integers or booleans (they
    came out as truncated floats: a Normal of integer parameters drew integers)."""
    if dtype is not None and not _dtypes.as_dtype(dtype).is_floating_point:
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{_dtypes.as_dtype(dtype).type_name}'")


def rand(*size, dtype=None, generator=None, device=None, requires_grad: bool = False, out=None, **keywords) -> Tensor:
    """Uniform samples in [0, 1) of shape ``size`` from numpy's Generator (into ``out`` when
    given); follows ``torch.rand``."""
    size = _size_keyword(size, keywords, "rand")
    _device.check(device)
    _floating_only(dtype if out is None else out.dtype, "check_uniform_bounds")
    values = numpy_generator(generator).random(_shape(size))
    if out is not None:
        from ._record import write_out

        return write_out("rand", _wrap(values.astype(out._data.dtype)), out)
    return _finish(values.astype(_float_type(dtype)), requires_grad)


def randint(low=None, high=None, size=None, *, dtype=None, generator=None, device=None, requires_grad=False) -> Tensor:
    """Integers in [low, high) of shape ``size`` (int64); follows ``torch.randint``, whose
    ``randint(high, size)`` form is ``randint(0, high, size)`` (``low`` 0 by keyword too)."""
    _device.check(device)
    if low is None:  # randint(high=5, size=(3,))
        low = 0
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    target = _dtypes.as_dtype(dtype or _dtypes.int64)
    _check_integer_range(target, low, high - 1)  # (cast, values beyond it wrapped round, silently)
    values = numpy_generator(generator).integers(low, high, size=_shape((size,)))
    return _finish(values.astype(target.numpy), requires_grad)


def _check_integer_range(dtype, low, high) -> None:
    """PyTorch's errors for random integers ``low..high`` that ``dtype`` (an integer or bool one)
    cannot hold."""
    kind = dtype.numpy.kind
    if kind not in "biu":
        return
    limits = (0, 1) if kind == "b" else (int(np.iinfo(dtype.numpy).min), int(np.iinfo(dtype.numpy).max))
    if not limits[0] <= low <= limits[1]:
        raise RuntimeError(f"from is out of bounds for {dtype.c_name}")
    if not limits[0] <= high <= limits[1]:
        raise RuntimeError(f"to - 1 is out of bounds for {dtype.c_name}")


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad: bool = False):
    """Normal samples: of ``mean``'s and ``std``'s broadcast shape when either is a tensor
    (float32 unless a tensor says otherwise), else of ``size``; follows ``torch.normal``.
    The samples are constants: no gradient flows to ``mean`` or ``std`` (PyTorch's
    reparametrised form is ``mean + std * randn``)."""
    _device.check(device)
    for value in (mean, std):  # (an int64 mean gave samples truncated to integers)
        if isinstance(value, Tensor):
            floating_kernel(value, "normal_kernel_cpu")
    means = mean._data if isinstance(mean, Tensor) else np.asarray(mean, np.float64)
    stds = std._data if isinstance(std, Tensor) else np.asarray(std, np.float64)
    if np.any(stds < 0):
        raise RuntimeError("normal expects all elements of std >= 0.0")
    shape = np.broadcast_shapes(means.shape, stds.shape) if size is None else _shape((size,))
    tensors = [v for v in (mean, std) if isinstance(v, Tensor)]
    numpy_dtype = (
        _float_type(dtype) if dtype is not None or not tensors else np.result_type(*(t._data for t in tensors))
    )
    values = numpy_generator(generator).normal(means, stds, size=shape)
    return _finish(values.astype(numpy_dtype), requires_grad)


def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A random permutation of ``0 .. n-1`` (int64 unless ``dtype``), from numpy's Generator;
    follows ``torch.randperm`` (its values differ from PyTorch's)."""
    _device.check(device)
    if n < 0:
        raise RuntimeError(f"n must be non-negative, got{n}")
    target = _dtypes.as_dtype(dtype or _dtypes.int64)
    _check_representable(n - 1, target.numpy)  # (wrapped round, it was not a permutation)
    values = numpy_generator(generator).permutation(n)
    return _finish(values.astype(target.numpy), requires_grad)


def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:  # noqa: A002
    """Indices (int64) drawn from each row of ``input``'s non-negative weights (1-D: one row,
    2-D: one draw per row), without replacement unless ``replacement``; follows
    ``torch.multinomial``. Raises ``RuntimeError`` as PyTorch does for negative, non-finite or
    all-zero weights, and for more samples than categories without replacement."""
    given = input._data if isinstance(input, Tensor) else np.asarray(input)
    if given.dtype.kind != "f":
        name = _dtypes.from_numpy_dtype(given.dtype).type_name
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: {name}")
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    weights = np.asarray(given, np.float64)
    if weights.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    rows = np.atleast_2d(weights)
    if not np.all(np.isfinite(rows)) or np.any(rows < 0):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if np.any(rows.sum(axis=1) <= 0):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and num_samples > rows.shape[1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    rng = numpy_generator(generator)
    drawn = np.stack([_draw(rng, row, num_samples, replacement) for row in rows]).astype(np.int64)
    return _wrap(drawn if weights.ndim == 2 else drawn[0])


def _draw(rng: np.random.Generator, row: np.ndarray, count: int, replacement: bool) -> np.ndarray:
    if replacement:
        return rng.choice(len(row), size=count, p=row / row.sum())
    # Without replacement, once the categories of nonzero weight are drawn PyTorch goes on with
    # the zero-weight ones in index order (rather than failing): so does this.
    nonzero = np.flatnonzero(row)
    first = rng.choice(nonzero, size=min(count, len(nonzero)), replace=False, p=row[nonzero] / row.sum())
    return np.concatenate([first, np.flatnonzero(row == 0)[: count - len(first)]])


def arange(start=None, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from ``start`` to ``end`` (excluded) by ``step``; follows ``torch.arange``
    (``arange(end=5)`` starts at 0)."""
    _device.check(device)
    if start is None:
        if end is None:
            raise TypeError("arange() missing required argument 'end' (pos 1)")
        start = 0
    elif end is None:
        start, end = 0, start
    # 0-d tensors (``arange(n)`` of ``n = x.shape[0]`` as a tensor) by their values and dtypes
    start, end, step = (v.item() if isinstance(v, Tensor) else v for v in (start, end, step))
    is_integral = all(isinstance(v, (int, np.integer)) for v in (start, end, step))  # (bools too, as PyTorch)
    default = _dtypes.int64 if is_integral else _dtypes.DEFAULT_FLOAT
    target = (_dtypes.as_dtype(dtype) if dtype is not None else default).numpy
    if not is_integral and np.dtype(target) == np.int64:
        # PyTorch's int64 arange takes the numbers' integer parts first, its count from them too
        # (the other integer dtypes count from the numbers: their branch below)
        start, end, step = int(start), int(end), int(step)
        if step == 0:
            raise ValueError("step must be nonzero")
        is_integral = True
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:  # (numpy gave an empty tensor)
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    if is_integral:
        return _finish(np.arange(start, end, step).astype(target), requires_grad)
    if np.dtype(target).kind in "iu":  # PyTorch's: the count from the numbers, the values from their integer parts
        count = max(0, math.ceil((end - start) / step))
        return _finish((int(start) + int(step) * np.arange(count)).astype(target), requires_grad)
    # PyTorch's kernel: start + step * i in double, fused (one rounding), then cast: -10 + 0.1 *
    # 100 is 5.55e-16, not 0 (numpy's), nor -3.55e-14 (numpy's arange). Long double holds the
    # fused product exactly enough.
    index = np.arange(max(0, math.ceil((end - start) / step)), dtype=np.longdouble)  # (numpy's count)
    fused = np.longdouble(start) + np.longdouble(step) * index
    return _finish(fused.astype(np.float64).astype(target), requires_grad)


def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``steps`` values evenly spaced from ``start`` to ``end``; follows ``torch.linspace``,
    computed as its kernel computes them: the step in the result's dtype, the first half from
    ``start`` and the second from ``end`` (so both ends are exact), each value with one rounding
    (its fused multiply-add). Raises PyTorch's ``RuntimeError`` for a negative ``steps``."""
    _device.check(device)
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    target = np.dtype(_float_type(dtype))
    if steps <= 1:
        return _finish(np.full(steps, start).astype(target), requires_grad)
    integral = target.kind in "iu"
    kind = np.float64 if integral else target.type  # PyTorch's step_t: double for integers
    first, last = target.type(start), target.type(end)
    step = (kind(last) - kind(first)) / kind(steps - 1)
    index = np.arange(steps, dtype=np.longdouble)
    lower = np.longdouble(first) + np.longdouble(step) * index
    upper = np.longdouble(last) - np.longdouble(step) * (steps - 1 - index)
    values = np.where(index < steps // 2, lower, upper)
    values = np.trunc(values.astype(np.float64)) if integral else values.astype(kind)
    return _finish(values.astype(target), requires_grad)


def _like(function, other: Tensor, dtype, requires_grad, **kwargs) -> Tensor:
    dtype = dtype if dtype is not None else other.dtype
    return function(*other.shape, dtype=dtype, requires_grad=requires_grad, **kwargs)


def zeros_like(other, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros of ``input``'s shape and dtype; follows ``torch.zeros_like``."""
    _device.check(device)
    return _like(zeros, other, dtype, requires_grad)


def ones_like(other, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Ones of ``input``'s shape and dtype; follows ``torch.ones_like``."""
    _device.check(device)
    return _like(ones, other, dtype, requires_grad)


def empty_like(other, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor of ``input``'s shape and dtype; follows ``torch.empty_like``."""
    _device.check(device)
    return _like(empty, other, dtype, requires_grad)


def randn_like(other, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples of ``input``'s shape; follows ``torch.randn_like``."""
    _device.check(device)
    return _like(randn, other, dtype, requires_grad)


def rand_like(other, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) of ``input``'s shape; follows ``torch.rand_like``."""
    _device.check(device)
    return _like(rand, other, dtype, requires_grad)


def full_like(other, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` in ``input``'s shape; follows ``torch.full_like``."""
    _device.check(device)
    return full(other.shape, fill_value, dtype=dtype if dtype is not None else other.dtype, requires_grad=requires_grad)


__all__ = [
    name for name in dir() if not name.startswith("_") and name not in ("annotations", "builtins", "np", "Tensor")
]


def _new(fill):
    def new(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        _device.check(device)
        shape = _shape(size)
        numpy_dtype = _dtypes.as_dtype(dtype).numpy if dtype is not None else self._data.dtype
        return _finish(fill(shape, numpy_dtype), requires_grad)

    return new


def _new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    _device.check(device)
    numpy_dtype = _dtypes.as_dtype(dtype).numpy if dtype is not None else self._data.dtype
    return _finish(np.full(_shape((size,)), fill_value, numpy_dtype), requires_grad)


def _new_tensor(self, data, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    _device.check(device)
    return tensor(data, dtype=dtype if dtype is not None else self.dtype, requires_grad=requires_grad)


install(
    {
        "new_zeros": _new(np.zeros),
        "new_ones": _new(np.ones),
        "new_empty": _new(np.zeros),
        "new_full": _new_full,
        "new_tensor": _new_tensor,
    }
)


class _LegacyTensorType(type):
    """``torch.FloatTensor`` and its kin: called, a tensor of their dtype (``FloatTensor(2, 3)``
    of that shape, zero-filled; ``FloatTensor([1, 2])`` of those values); ``isinstance(t,
    FloatTensor)`` tests the dtype, as in PyTorch."""

    def __instancecheck__(cls, value) -> bool:
        return isinstance(value, Tensor) and value._data.dtype == cls.dtype.numpy

    def __call__(cls, *args, device=None):
        _device.check(device)
        if len(args) == 1 and not isinstance(args[0], int):
            return tensor(args[0], dtype=cls.dtype)
        return _wrap(np.zeros(_shape(args), cls.dtype.numpy))


class FloatTensor(metaclass=_LegacyTensorType):
    """A float32 tensor (see ``_LegacyTensorType``); follows ``torch.FloatTensor``."""

    dtype = _dtypes.float32


class DoubleTensor(metaclass=_LegacyTensorType):
    """A float64 tensor; follows ``torch.DoubleTensor``."""

    dtype = _dtypes.float64


class LongTensor(metaclass=_LegacyTensorType):
    """An int64 tensor; follows ``torch.LongTensor``."""

    dtype = _dtypes.int64


class IntTensor(metaclass=_LegacyTensorType):
    """An int32 tensor; follows ``torch.IntTensor``."""

    dtype = _dtypes.int32


class BoolTensor(metaclass=_LegacyTensorType):
    """A bool tensor; follows ``torch.BoolTensor``."""

    dtype = _dtypes.bool
