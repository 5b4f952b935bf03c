"""The Tensor facade: PyTorch's user-visible semantics over a numpy value and a tape row.

A tensor is a numpy array (``_data``) and, when it was computed by a recorded op, the tape and
row that produced it (``_tape``, ``_row``). Forward values are computed eagerly with numpy; an op
on tensors that require grad also appends one row to the tape (see ``_tape.py``). Nothing here
computes a gradient: ``backward`` hands the tape to one jitted sweep (``autograd/engine.py``).
"""

from __future__ import annotations

import builtins
import numbers
import warnings

import numpy as np

from . import _dtypes
from ._ops import BY_NAME, OPCODE, UNARY
from ._shapes import broadcast_strides
from ._tape import LAYOUT, NO_GRAD, ROW_BYTES, ROW_WIDTH, Tape, _pack_row, join, resolve
from .autograd.grad_mode import state as _grad_state
from .autograd.grad_mode import recordings_active as _recordings_active
from .autograd.grad_mode import special_modes as _special_modes
from .autograd.grad_mode import threads_disabled as _threads_disabled

_float = builtins.float
_int = builtins.int
_bool = builtins.bool


class Size(tuple):
    """A tensor's shape; prints as ``tapegrad.Size([2, 3])``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"tapegrad.Size({list(self)})"

    def numel(self) -> int:
        return _int(np.prod(self, dtype=np.int64))


class Tensor:
    """An n-dimensional array that records the ops applied to it for reverse-mode autodiff.

    >>> import tapegrad as tg
    >>> x = tg.ones(2, 2, requires_grad=True)
    >>> (x * x * 3).mean().backward()
    >>> x.grad
    tensor([[1.5000, 1.5000],
            [1.5000, 1.5000]])
    """

    __slots__ = ("_data", "_tape", "_row", "_requires_grad", "_grad", "_grad_fn", "_retains_grad", "_address", "_version", "__weakref__")
    # ``_grad``, ``_grad_fn`` and ``_retains_grad`` are left unset on creation (three stores
    # fewer on the hot path); reading an unset one lands in __getattr__, which gives the default.
    # ``_version`` is the in-place counter shared by tensors sharing storage (views, detach),
    # created when first needed.
    _UNSET_DEFAULTS = {"_grad": None, "_grad_fn": None, "_retains_grad": False, "_address": None, "_version": None}

    def __getattr__(self, name):
        try:
            return Tensor._UNSET_DEFAULTS[name]
        except KeyError:
            raise AttributeError(f"'Tensor' object has no attribute '{name}'") from None
    __hash__ = object.__hash__
    __array_priority__ = 1000  # numpy defers ``ndarray * Tensor`` to Tensor.__rmul__

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        from ._factories import as_array

        self._data = as_array(data, dtype)
        self._tape = None
        self._row = -1
        self._requires_grad = False
        self._grad = None
        self._grad_fn = None
        self._retains_grad = False
        if requires_grad:
            _check_can_require_grad(self._data, factory=True)
            self._requires_grad = True

    # -- autograd attributes --------------------------------------------------------------

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if self._tape is not None and not self._requires_grad and requires_grad:
            # A value computed inside tapegrad.record without grad: it becomes a leaf.
            self._tape, self._row = None, -1
        if self._tape is not None:
            if not requires_grad:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want to use a "
                    "computed variable in a subgraph that doesn't require differentiation use "
                    "var_no_grad = var.detach()."
                )
            return self
        if requires_grad:
            _check_can_require_grad(self._data, factory=False)
        self._requires_grad = _bool(requires_grad)
        return self

    @property
    def is_leaf(self) -> bool:
        return self._tape is None or not self._requires_grad

    @property
    def grad_fn(self):
        if self._tape is None or not self._requires_grad:
            return None
        if self._grad_fn is None:
            from .autograd.graph import node_for

            tape = resolve(self)
            self._grad_fn = node_for(tape, self._row)
        return self._grad_fn

    @property
    def grad(self):
        if self._tape is not None and self._requires_grad and not self._retains_grad:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
                "attribute won't be populated during autograd.backward(). If you indeed want the .grad "
                "field to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. "
                "If you access the non-leaf Tensor by mistake, make sure you access the leaf Tensor "
                "instead. See github.com/pytorch/pytorch/pull/30531 for more informations.",
                UserWarning,
                stacklevel=2,
            )
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type {type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError("assigned grad has data of a different size")
        self._grad = value

    @grad.deleter
    def grad(self) -> None:
        self._grad = None

    def retain_grad(self) -> None:
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._tape is not None and not self._retains_grad:
            self._retains_grad = True
            resolve(self).retained.append((self._row, self))

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf), times ``gradient``, into every leaf's ``.grad``."""
        from .autograd.engine import run_backward

        run_backward((self,), (gradient,), retain_graph, create_graph)

    def detach(self) -> Tensor:
        if _recordings_active[0] and _grad_state.recording is not None:
            from ._replay_hooks import detached

            result = detached(self)
        else:
            result = _wrap(self._data)
        if self._version is None:
            self._version = [0]
        result._version = self._version  # detach shares the version counter, as in PyTorch
        return result

    def detach_(self) -> Tensor:
        self._tape = None
        self._row = -1
        self._grad_fn = None
        self._requires_grad = False
        return self

    @property
    def data(self) -> Tensor:
        """The values, detached, with a counter of their own: changes through ``.data`` are
        invisible to autograd, as in PyTorch."""
        if _recordings_active[0] and _grad_state.recording is not None:
            from ._replay_hooks import detached

            return detached(self)
        return _wrap(self._data)

    @data.setter
    def data(self, value: Tensor) -> None:
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)

    # -- shape and type -------------------------------------------------------------------

    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    def size(self, dim: int | None = None):
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_normalize_dim(dim, self._data.ndim)]

    def dim(self) -> int:
        return self._data.ndim

    ndim = property(dim)

    def numel(self) -> int:
        return self._data.size

    nelement = numel

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    @property
    def dtype(self) -> _dtypes.dtype:
        return _dtypes.from_numpy_dtype(self._data.dtype)

    @property
    def device(self) -> str:
        return "cpu"

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def is_contiguous(self) -> bool:
        return self._data.flags.c_contiguous

    def element_size(self) -> int:
        return self._data.itemsize

    def to(self, *args, **kwargs) -> Tensor:
        dtype = kwargs.get("dtype")
        for arg in args:
            if isinstance(arg, _dtypes.dtype):
                dtype = arg
            elif isinstance(arg, Tensor):
                dtype = arg.dtype
        if dtype is None:
            return self
        return _cast(self, _dtypes.as_dtype(dtype))

    def type(self, dtype=None):
        if dtype is None:
            return f"tapegrad.{ {'f': 'Float', 'd': 'Double'}.get(self._data.dtype.char, 'Long')}Tensor"
        return self.to(dtype)

    def float(self) -> Tensor:
        return _cast(self, _dtypes.float32)

    def double(self) -> Tensor:
        return _cast(self, _dtypes.float64)

    def long(self) -> Tensor:
        return _cast(self, _dtypes.int64)

    def int(self) -> Tensor:
        return _cast(self, _dtypes.int32)

    def bool(self) -> Tensor:
        return _cast(self, _dtypes.bool)

    def cpu(self) -> Tensor:
        return self

    def contiguous(self) -> Tensor:
        return self if self._data.flags.c_contiguous else self.clone()

    def clone(self) -> Tensor:
        return _record_copy("clone", self, self._data.copy())

    # -- leaving tapegrad -----------------------------------------------------------------

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        _guard(self, "item()")
        return self._data.reshape(-1)[0].item()

    def tolist(self):
        _guard(self, "tolist()")
        return self._data.tolist()

    def numpy(self, force: bool = False) -> np.ndarray:
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        _guard(self, "numpy()")
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self._data if dtype is None else self._data.astype(dtype)

    def __float__(self) -> float:
        if self._data.size != 1:
            raise TypeError("only one element tensors can be converted to Python scalars")
        _guard(self, "float()")
        return _float(self._data.reshape(-1)[0])

    def __int__(self) -> int:
        if self._data.size != 1:
            raise TypeError("only one element tensors can be converted to Python scalars")
        _guard(self, "int()")
        return _int(self._data.reshape(-1)[0])

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return _int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        value = _bool(self._data.reshape(-1)[0])
        _guard(self, "bool()", truth=value)
        return value

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __repr__(self) -> str:
        from ._printing import tensor_repr

        return tensor_repr(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    # -- arithmetic -----------------------------------------------------------------------

    def __rsub__(self, other):
        return _arith("rsub", self, other)

    def __rtruediv__(self, other):
        return _arith("rdiv", self, other)

    def __rpow__(self, other):
        return _arith("rpow", self, other)

    def __neg__(self):
        return _unary(BY_NAME["neg"], self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _unary(BY_NAME["abs"], self)

    def __matmul__(self, other):
        from ._linalg import matmul

        return matmul(self, other)

    def __rmatmul__(self, other):
        from ._linalg import matmul

        return matmul(as_tensor(other), self)

    matmul = __matmul__

    def __iadd__(self, other):
        return _in_place(self, "add", other)

    def __isub__(self, other):
        return _in_place(self, "sub", other)

    def __imul__(self, other):
        return _in_place(self, "mul", other)

    def __itruediv__(self, other):
        return _in_place(self, "div", other)

    def add_(self, other, alpha=1):
        return _in_place(self, "add", other if alpha == 1 else other * alpha)

    def sub_(self, other, alpha=1):
        return _in_place(self, "sub", other if alpha == 1 else other * alpha)

    def mul_(self, other):
        return _in_place(self, "mul", other)

    def div_(self, other):
        return _in_place(self, "div", other)

    def zero_(self) -> Tensor:
        _check_in_place(self)
        self._data[...] = 0
        _bump_version(self)
        return self

    def fill_(self, value) -> Tensor:
        _check_in_place(self)
        self._data[...] = value._data if isinstance(value, Tensor) else value
        _bump_version(self)
        return self

    def copy_(self, source) -> Tensor:
        _check_in_place(self)
        self._data[...] = source._data if isinstance(source, Tensor) else source
        _bump_version(self)
        return self

    @property
    def _version_number(self) -> int:
        return 0 if self._version is None else self._version[0]

    # -- comparisons (never differentiable) -----------------------------------------------

    def _compare(self, other, name):
        from ._replay_hooks import compare

        return compare(self, other, name)

    def __lt__(self, other):
        return self._compare(other, "lt")

    def __le__(self, other):
        return self._compare(other, "le")

    def __gt__(self, other):
        return self._compare(other, "gt")

    def __ge__(self, other):
        return self._compare(other, "ge")

    def __eq__(self, other):
        return self._compare(other, "eq")

    def __ne__(self, other):
        return self._compare(other, "ne")

    lt, le, gt, ge, eq, ne = __lt__, __le__, __gt__, __ge__, __eq__, __ne__

    def equal(self, other) -> bool:
        return self.shape == other.shape and _bool(np.array_equal(self._data, other._data))

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
        return _bool(np.allclose(self._data, other._data, rtol=rtol, atol=atol, equal_nan=equal_nan))

    # -- reductions, views and products: defined in their own modules ---------------------

    def sum(self, dim=None, keepdim: bool = False, dtype=None):
        from ._reductions import sum as sum_

        return sum_(self, dim, keepdim, dtype)

    def mean(self, dim=None, keepdim: bool = False, dtype=None):
        from ._reductions import mean

        return mean(self, dim, keepdim, dtype)

    def norm(self, p="fro", dim=None, keepdim: bool = False, dtype=None):
        from ._reductions import norm

        return norm(self, p, dim, keepdim, dtype)

    def max(self):
        return _wrap(np.asarray(self._data.max()))

    def min(self):
        return _wrap(np.asarray(self._data.min()))

    def softmax(self, dim: int, dtype=None):
        from ._reductions import softmax

        return softmax(self, dim, dtype)

    def __getitem__(self, key):
        from ._views import getitem

        return getitem(self, key)

    def __setitem__(self, key, value):
        _check_in_place(self)
        if self._tape is not None and _grad_state.enabled:
            raise NotImplementedError("assigning into a tensor that is part of a recorded graph is not supported yet")
        self._data[key._data if isinstance(key, Tensor) else key] = value._data if isinstance(value, Tensor) else value
        _bump_version(self)

    def reshape(self, *shape):
        from ._views import reshape

        return reshape(self, shape)

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def flatten(self):
        return self.reshape(-1)

    def transpose(self, dim0: int, dim1: int):
        from ._views import transpose

        return transpose(self, dim0, dim1)

    def t(self):
        from ._views import t

        return t(self)

    @property
    def T(self):  # noqa: N802 - PyTorch's name
        from ._views import permute

        return permute(self, tuple(range(self._data.ndim - 1, -1, -1)))

    @property
    def mT(self):  # noqa: N802
        return self.transpose(-2, -1)

    def permute(self, *dims):
        from ._views import permute

        return permute(self, dims[0] if len(dims) == 1 and not isinstance(dims[0], _int) else dims)

    def unsqueeze(self, dim: int):
        from ._views import unsqueeze

        return unsqueeze(self, dim)

    def squeeze(self, dim=None):
        from ._views import squeeze

        return squeeze(self, dim)

    def expand(self, *sizes):
        from ._views import expand

        return expand(self, sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], _int) else sizes)

    def expand_as(self, other):
        return self.expand(other.shape)


# --------------------------------------------------------------------------------------------
# Recording. These are the hot path: an op's whole cost (numpy forward, tape append, Tensor)
# is what has to beat PyTorch per op on small tensors, so they avoid any per-op generality.


def _guard(tensor: Tensor, kind: str, truth=None) -> None:
    """Inside ``tapegrad.record``, Python reading a recorded value is a guard on replay."""
    if _recordings_active[0] and _grad_state.recording is not None:
        from ._replay_hooks import guard

        guard(tensor, kind, truth)


def _wrap(data: np.ndarray) -> Tensor:
    """A tensor that does not require grad (no tape)."""
    tensor = Tensor.__new__(Tensor)
    tensor._data = data
    tensor._tape = None
    tensor._row = -1
    tensor._requires_grad = False
    return tensor


def _recorded(data: np.ndarray, tape: Tape, row: int, requires_grad: bool = True) -> Tensor:
    tensor = Tensor.__new__(Tensor)
    tensor._data = data
    tensor._tape = tape
    tensor._row = row
    tensor._requires_grad = requires_grad
    return tensor


def as_tensor(value, dtype=None) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(value, dtype)


def _input_row(tape: Tape, tensor: Tensor) -> int:
    """Row of ``tensor`` on ``tape``: its own, or its registration as a leaf or constant."""
    own = tensor._tape
    if own is not None and own is not tape and own.merged_into is not None:
        own = resolve(tensor)
    return tensor._row if own is tape else tape.register(tensor)


def _target(inputs) -> tuple:
    """Where an op on ``inputs`` is recorded, and whether its result requires grad.

    Eagerly, only an op on a tensor that requires grad (with grad mode on) is recorded, on its
    inputs' tape or a new one. Inside ``tapegrad.record`` every op is, on the recording's tape,
    so the replay can recompute everything; rows that need no gradient carry ``NO_GRAD``.
    """
    requires = False
    if _threads_disabled[0] == 0 or _grad_state.enabled:
        for tensor in inputs:
            if tensor._requires_grad:
                requires = True
                break
    if _recordings_active[0]:
        recording = _grad_state.recording
        if recording is not None:
            return recording, requires
    if not requires:
        return None, False
    return _tape_for(*inputs), True


def _opcode(name: str, requires_grad: bool) -> int:
    return OPCODE[name] if requires_grad else OPCODE[name] | NO_GRAD


def _tape_for(*tensors) -> Tape:
    recorded = [t for t in tensors if t._tape is not None]
    if not recorded:
        return Tape()
    if len(recorded) == 1:
        tape = recorded[0]._tape
        return tape if tape.merged_into is None else resolve(recorded[0])
    return join(recorded)


PRECOMPUTED_DERIVATIVE_SIZE = 1 << 12


def _unary(op, x: Tensor) -> Tensor:
    data = x._data
    if data.dtype.kind != "f" and op.name not in ("neg", "abs", "relu"):
        data = data.astype(np.float32)
    out = op.forward(data)
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    tape, requires = _target((x,))
    if tape is None:
        return _wrap(out)
    row_x = _input_row(tape, x)
    layout = tape.layout(out.dtype, out.shape)
    if requires and op.derivative is not None and data.size >= PRECOMPUTED_DERIVATIVE_SIZE and tape is not _grad_state.recording:
        # in1 names a constant row holding d(out)/d(x); the rule then only multiplies.
        derivative_row = tape.append(OPCODE["constant"], -1, -1, 0, layout, 0.0)
        tape.save(derivative_row, np.ascontiguousarray(op.derivative(data)))
        row = tape.append(OPCODE[op.name], row_x, derivative_row, 0, layout, 0.0)
        return _recorded(out, tape, row)
    row = tape.append(_opcode(op.name, requires), row_x, -1, 0, layout, 0.0)
    saves = op.saves
    result = _recorded(out, tape, row, requires)
    if saves and requires:
        if "a" in saves:
            tape.save_leaf(row_x, x) if x._tape is None and data is x._data else tape.save(row_x, data)
            tape.track(row, row_x, x)
        if "out" in saves:
            tape.save(row, out)
            tape.track(row, row, result)
    return result


# Python number on the right (``x - 2``) and on the left (``2 - x``): which op records it.
_SCALAR_RIGHT = {"add": "add_scalar", "sub": "sub_scalar", "mul": "mul_scalar", "div": "div_scalar", "pow": "pow_scalar"}
_SCALAR_LEFT = {"add": "add_scalar", "rsub": "rsub_scalar", "mul": "mul_scalar", "rpow": "rpow_scalar"}
_REVERSED = {"rsub": "sub", "rdiv": "div", "rpow": "pow"}


def _arith(kind: str, x: Tensor, other) -> Tensor:
    """``x <kind> other`` where ``other`` is a tensor, an array or a Python number."""
    if isinstance(other, Tensor):
        return _binary(_REVERSED[kind], other, x) if kind in _REVERSED else _binary(kind, x, other)
    if isinstance(other, numbers.Number) and not isinstance(other, np.ndarray):
        if isinstance(other, np.generic):
            other = other.item()
        if kind == "rdiv":  # 2 / x is recorded as PyTorch does: reciprocal, then times 2
            return _scalar(_MUL_SCALAR, _unary(BY_NAME["reciprocal"], x), other)
        names = _SCALAR_LEFT if kind.startswith("r") or kind in ("add", "mul") else _SCALAR_RIGHT
        return _scalar(_SCALAR_OPS[names.get(kind) or _SCALAR_RIGHT[kind]], x, other)
    if isinstance(other, (np.ndarray, list, tuple)):
        return _arith(kind, x, Tensor(other))
    return NotImplemented


class _ScalarOp:
    """What the hot path needs of a scalar op's table entry, looked up once."""

    __slots__ = ("opcode", "forward", "saves_input", "saves_output")

    def __init__(self, name: str):
        op = BY_NAME[name]
        self.opcode = OPCODE[name]
        self.forward = op.forward
        self.saves_input = "a" in op.saves
        self.saves_output = "out" in op.saves


_SCALAR_OPS = {name: _ScalarOp(name) for name in set(_SCALAR_RIGHT.values()) | set(_SCALAR_LEFT.values())}
_ADD_SCALAR, _SUB_SCALAR, _MUL_SCALAR, _DIV_SCALAR, _POW_SCALAR = (
    _SCALAR_OPS[name] for name in ("add_scalar", "sub_scalar", "mul_scalar", "div_scalar", "pow_scalar")
)


def _scalar(op: _ScalarOp, x: Tensor, scalar) -> Tensor:
    """``x <op> scalar`` for a Python number: the hot path of ``y = y * 1.001`` loops."""
    data = x._data
    if data.dtype.kind != "f" or type(scalar) is _bool:
        result_type = _dtypes.scalar_result_type(_dtypes.from_numpy_dtype(data.dtype), scalar).numpy
        if op.forward is np.divide and result_type.kind != "f":  # true division, as in PyTorch
            result_type = _dtypes.DEFAULT_FLOAT.numpy
        if data.dtype != result_type:
            data = data.astype(result_type)
        out = np.asarray(op.forward(data, scalar)).astype(result_type, copy=False)
    else:
        out = op.forward(data, scalar)
        if type(out) is not np.ndarray:  # numpy returns a scalar for 0-d input
            out = np.asarray(out)
    tape, requires = _target((x,))
    if tape is None:
        return _wrap(out)
    row_x = _input_row(tape, x)
    opcode = op.opcode if requires else op.opcode | NO_GRAD
    row = tape.append(opcode, row_x, -1, 0, tape.layout(out.dtype, out.shape), scalar)
    result = _recorded(out, tape, row, requires)
    if requires:
        if op.saves_input:
            tape.save_leaf(row_x, x) if x._tape is None and data is x._data else tape.save(row_x, data)
            tape.track(row, row_x, x)
        if op.saves_output:
            tape.save(row, out)
            tape.track(row, row, result)
    return result


def broadcast_error(shape_a: tuple, shape_b: tuple) -> RuntimeError:
    for offset in range(1, max(len(shape_a), len(shape_b)) + 1):
        size_a = shape_a[-offset] if offset <= len(shape_a) else 1
        size_b = shape_b[-offset] if offset <= len(shape_b) else 1
        if size_a != size_b and size_a != 1 and size_b != 1:
            dim = max(len(shape_a), len(shape_b)) - offset
            return RuntimeError(
                f"The size of tensor a ({size_a}) must match the size of tensor b ({size_b}) at non-singleton dimension {dim}"
            )
    return RuntimeError(f"shapes {shape_a} and {shape_b} cannot be broadcast")


def _binary(name: str, a: Tensor, b: Tensor) -> Tensor:
    op = BY_NAME[name]
    data_a, data_b = a._data, b._data
    result = data_a.dtype
    if data_b.dtype is not result:
        result = _dtypes.result_type(
            _dtypes.from_numpy_dtype(result), data_a.ndim, _dtypes.from_numpy_dtype(data_b.dtype), data_b.ndim
        ).numpy
    if name == "div" and result.kind != "f":
        result = np.dtype(np.float32)
    if data_a.dtype != result:
        data_a = data_a.astype(result)
    if data_b.dtype != result:
        data_b = data_b.astype(result)
    try:
        out = np.asarray(op.forward(data_a, data_b))
    except ValueError:
        raise broadcast_error(data_a.shape, data_b.shape) from None
    if out.dtype != result:
        out = out.astype(result)
    tape, requires = _target((a, b))
    if tape is None:
        return _wrap(out)
    saves = op.saves if requires else ""
    replaying = tape is _grad_state.recording
    row_a = _operand_row(tape, a, data_a, out, "a" in saves, replaying)
    row_b = _operand_row(tape, b, data_b, out, "b" in saves, replaying)
    row = tape.append(_opcode(name, requires), row_a, row_b, 0, tape.layout(out.dtype, out.shape), 0.0)
    result = _recorded(out, tape, row, requires)
    if "a" in saves:
        tape.track(row, row_a, a)
    if "b" in saves:
        tape.track(row, row_b, b)
    if "out" in saves:
        tape.save(row, out)
        tape.track(row, row, result)
    return result


def _operand_row(tape: Tape, tensor: Tensor, data: np.ndarray, out: np.ndarray, saved: bool, replaying: bool) -> int:
    """The row feeding one operand of an elementwise op, after implicit promotion and broadcast.

    Eagerly, a constant that the backward never reads needs no row at all (-1); inside
    ``tapegrad.record`` (``replaying``) every operand has one. Promotion and broadcast of a
    recorded operand become hidden rows, so their gradients are cast back and summed over the
    broadcast dimensions by the same rules as explicit ``to`` and ``expand``.
    """
    if tensor._tape is None and not tensor._requires_grad:
        if not (saved or replaying):
            return -1
        if data is tensor._data and data.shape == out.shape:
            row = tape.register(tensor)
            tape.save_leaf(row, tensor)
        else:
            row = tape.append(OPCODE["constant"], -1, -1, 0, tape.layout(out.dtype, out.shape), 0.0)
            tape.save(row, np.broadcast_to(data, out.shape))
        return row
    row = _input_row(tape, tensor)
    flag = 0 if tensor._requires_grad else NO_GRAD
    if data is not tensor._data:
        row = tape.append(OPCODE["promote"] | flag, row, -1, 0, tape.layout(data.dtype, data.shape), 0.0)
    if data.shape != out.shape:
        offset, strides = broadcast_strides(data.shape, out.shape)
        aux = tape.add_aux((offset, *strides))
        row = tape.append(OPCODE["broadcast"] | flag, row, -1, aux, tape.layout(out.dtype, out.shape), 0.0)
        data = np.broadcast_to(data, out.shape)
    if saved:
        tape.save(row, data)
    return row


def record(name: str, inputs: tuple, out: np.ndarray, saved: tuple = (), iparam: int = 0, param: float = 0.0) -> Tensor:
    """Record ``name`` producing ``out`` from ``inputs`` (tensors) when ``_target`` says so.

    ``saved`` pairs up with ``inputs``: the array the backward reads for each one, or None.
    """
    tape, requires = _target(inputs)
    if tape is None:
        return _wrap(out)
    replaying = tape is _grad_state.recording
    rows = []
    for i, tensor in enumerate(inputs):
        needed = replaying or tensor._requires_grad or (saved and saved[i] is not None)
        rows.append(_input_row(tape, tensor) if needed else -1)
    if requires:
        for i, values in enumerate(saved):
            if values is None:
                continue
            if inputs[i]._tape is None and values is inputs[i]._data:
                tape.save_leaf(rows[i], inputs[i])
            else:
                tape.save(rows[i], values)
    in0 = rows[0] if rows else -1
    in1 = rows[1] if len(rows) > 1 else -1
    row = tape.append(_opcode(name, requires), in0, in1, iparam, tape.layout(out.dtype, out.shape), param)
    result = _recorded(out, tape, row, requires)
    if requires:
        for i, values in enumerate(saved):
            if values is not None:
                tape.track(row, rows[i], inputs[i])
        if "out" in BY_NAME[name].saves:
            tape.save(row, out)
            tape.track(row, row, result)
    return result


def _record_copy(name: str, x: Tensor, out: np.ndarray) -> Tensor:
    return record(name, (x,), out)


def _cast(x: Tensor, target: _dtypes.dtype) -> Tensor:
    if x._data.dtype == target.numpy:
        return x
    out = x._data.astype(target.numpy)
    if target.category != _dtypes.FLOATING:
        return _wrap(out)
    return record("cast", (x,), out)


def _check_can_require_grad(data: np.ndarray, factory: bool) -> None:
    if data.dtype.kind != "f":
        if factory:
            raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
        raise RuntimeError("only Tensors of floating point dtype can require gradients")


inplace_epoch = [0]  # counts in-place changes anywhere: a backward re-checks versions only after one


def _bump_version(tensor: Tensor, op_label: str | None = None) -> None:
    """Count an in-place change. ``op_label`` names the op that made it ("Add" for ``add_``),
    which PyTorch's error message reports as the tensor's producer."""
    counter = tensor._version
    if counter is not None:
        counter[0] += 1
        if op_label is not None:
            counter[1:] = [op_label]
    inplace_epoch[0] += 1


def _check_in_place(tensor: Tensor) -> None:
    if tensor._requires_grad and tensor._tape is None and _grad_state.enabled:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")


def _in_place(tensor: Tensor, kind: str, other) -> Tensor:
    """``tensor <kind>= other``: the values change in place; a recorded tensor moves to the new row."""
    _check_in_place(tensor)
    result = _arith(kind, tensor, other)
    if result is NotImplemented:
        return NotImplemented
    if result._data.shape != tensor._data.shape:
        raise RuntimeError(
            f"output with shape {list(tensor._data.shape)} doesn't match the broadcast shape {list(result._data.shape)}"
        )
    if result._tape is not None:
        # The new row saved the old value of ``tensor`` (``y *= y`` reads it twice); the storage is
        # about to be overwritten, so that saved value must become a copy first.
        tape, row = result._tape, result._row
        for source in tape.ints[row * ROW_WIDTH + 1 : row * ROW_WIDTH + 3]:
            if source >= 0 and source in tape.saved and source == tensor._row and tensor._tape is tape:
                del tape.saved[source]
                tape.save(source, tensor._data.copy())
        entries = tape.versions.get(row)
        if entries:  # ... and is no longer the storage's value, so no longer version-checked
            entries[:] = [entry for entry in entries if entry[2] != tensor._row]
    tensor._data[...] = result._data
    _bump_version(tensor, kind.title() if result._tape is not None else None)
    if result._tape is not None:
        tensor._tape, tensor._row, tensor._requires_grad = result._tape, result._row, True
        tensor._grad_fn = None
    return tensor


def _normalize_dim(dim: int, ndim: int) -> int:
    low, high = (-ndim, ndim - 1) if ndim else (-1, 0)
    if not low <= dim <= high:
        raise IndexError(f"Dimension out of range (expected to be in range of [{low}, {high}], but got {dim})")
    return dim % ndim if ndim else 0


def _install_unary_methods() -> None:
    """Each unary entry of the op table becomes a Tensor method (``x.exp()``) of the same name."""
    from ._ops import OPS

    for op in OPS:
        if op.family == UNARY and op.name != "neg":

            def method(self, _op=op):
                return _unary(_op, self)

            method.__name__ = op.name
            method.__doc__ = f"Elementwise {op.name}; differentiable ({op.grad_fn})."
            setattr(Tensor, op.name, method)
    Tensor.neg = Tensor.__neg__
    Tensor.negative = Tensor.__neg__


_install_unary_methods()


def _scalar_dunder(op: _ScalarOp, kind: str):
    """``x * 2.0`` and friends, with the common case inlined: a recorded tensor and a Python
    number. This is the whole per-op cost of a chain like the tutorial's, so it does one numpy
    call, one packed row append and one object creation, and nothing else."""
    opcode, forward, saves_input, saves_output = op.opcode, op.forward, op.saves_input, op.saves_output
    new = object.__new__
    last = [(None, None, None)]  # (Python number, array dtype, the number as that dtype)

    def dunder(self, other):
        tape = self._tape
        if (
            (type(other) is _float or type(other) is _int)
            and tape is not None
            and _special_modes[0] == 0
            and tape.merged_into is None
            and self._requires_grad
        ):
            data = self._data
            # numpy casts a Python number to the array's type (NEP 50) on every call, ~120 ns;
            # a loop multiplying by the same constant object reuses the cast one.
            cached = last[0]  # one read: a consistent (number, dtype, cast) even across threads
            if other is cached[0] and data.dtype is cached[1]:
                out = forward(data, cached[2])
            else:
                typed = data.dtype.type(other)
                last[0] = (other, data.dtype, typed)
                out = forward(data, typed)
            if type(out) is not np.ndarray:  # numpy gives a scalar for a 0-d input
                out = np.asarray(out)
            row_x = self._row
            row = tape.n
            if row == tape.capacity:
                tape._reserve(row + 1)
            _pack_row(tape.rows, row * ROW_BYTES, opcode, row_x, -1, 0, tape.ints[row_x * ROW_WIDTH + LAYOUT], other)
            tape.n = row + 1
            result = new(Tensor)
            result._data = out
            result._tape = tape
            result._row = row
            result._requires_grad = True
            if saves_input:
                tape.save(row_x, data)
                tape.track(row, row_x, self)
            if saves_output:
                tape.save(row, out)
                tape.track(row, row, result)
            return result
        return _arith(kind, self, other)

    dunder.__name__ = f"__{kind}__"
    return dunder


Tensor.__add__ = Tensor.__radd__ = _scalar_dunder(_ADD_SCALAR, "add")
Tensor.__sub__ = _scalar_dunder(_SUB_SCALAR, "sub")
Tensor.__mul__ = Tensor.__rmul__ = _scalar_dunder(_MUL_SCALAR, "mul")
Tensor.__truediv__ = _scalar_dunder(_DIV_SCALAR, "div")
Tensor.__pow__ = _scalar_dunder(_POW_SCALAR, "pow")
Tensor.add = Tensor.__add__
Tensor.sub = Tensor.subtract = Tensor.__sub__
Tensor.mul = Tensor.multiply = Tensor.__mul__
Tensor.div = Tensor.divide = Tensor.__truediv__
Tensor.pow = Tensor.__pow__
