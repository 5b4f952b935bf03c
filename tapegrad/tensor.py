"""The Tensor facade: PyTorch's user-visible semantics over a numpy value and a tape row.

A tensor is a numpy array (``_data``) and, when it was computed by a recorded op, the tape and
row that produced it (``_tape``, ``_row``). Forward values are computed eagerly with numpy; an op
on tensors that require grad also appends one row to the tape (see ``_tape.py``). Nothing here
computes a gradient: ``backward`` hands the tape to one jitted sweep (``autograd/engine.py``).
"""

from __future__ import annotations

import builtins
import warnings

import numpy as np

from . import _dtypes
from ._grad_mode import recordings_active as _recordings_active
from ._grad_mode import state as _grad_state
from ._ops import BY_NAME
from ._tape import Tape, resolve

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


# register_hook calls so far: a backward with hooks re-reads which rows are hooked only when this
# moved while it ran Python.
hook_registrations = [0]


class RemovableHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook away again."""

    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Tensor:
    """An n-dimensional array that records the ops applied to it for reverse-mode autodiff.

    >>> import tapegrad as tg
    >>> x = tg.ones(2, 2, requires_grad=True)
    >>> (x * x * 3).mean().backward()
    >>> x.grad
    tensor([[1.5000, 1.5000],
            [1.5000, 1.5000]])
    """

    __slots__ = (
        "_hooks",
        "_data",
        "_tape",
        "_row",
        "_requires_grad",
        "_grad",
        "_grad_fn",
        "_retains_grad",
        "_address",
        "_version",
        "_base",
        "_seen_version",
        "__weakref__",
    )
    # ``_grad``, ``_grad_fn`` and ``_retains_grad`` are left unset on creation (three stores
    # fewer on the hot path); reading an unset one lands in __getattr__, which gives the default.
    # ``_version`` is the in-place counter shared by tensors sharing storage (views, detach),
    # created when first needed.
    _UNSET_DEFAULTS = {
        "_grad": None,
        "_grad_fn": None,
        "_retains_grad": False,
        "_address": None,
        "_version": None,
        "_hooks": None,
        "_base": None,
        "_seen_version": 0,
    }

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
        self._version = None
        self._hooks = None
        self._base = None
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
        if self._base is not None and self._version[0] != self._seen_version:
            from ._indexing import refresh_view  # its storage changed in place: as PyTorch, a new node

            refresh_view(self)
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
                raise TypeError(
                    f"assigned grad expected to be a Tensor or None but got grad of type {type(value).__name__}"
                )
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
            resolve(self).retained.append(self)

    def register_hook(self, hook):
        """Call ``hook(grad)`` with this tensor's total gradient, once per backward, before it
        is accumulated into ``.grad`` (leaves) or passed on; a tensor it returns replaces the
        gradient. Several hooks run in the order registered. Returns a handle whose ``remove()``
        unregisters it. Follows ``torch.Tensor.register_hook``; hooks registered before an
        in-place change see the gradient of the value before it, as in PyTorch.

        Raises ``RuntimeError`` if the tensor does not require grad, and ``NotImplementedError``
        inside ``tapegrad.record`` (a replay cannot call Python).

        >>> import tapegrad as tg
        >>> x = tg.ones(2, requires_grad=True)
        >>> handle = x.register_hook(lambda g: g * 10)
        >>> (x * 3).sum().backward()
        >>> x.grad
        tensor([30., 30.])
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if _recordings_active[0] and _grad_state.recording is not None:
            # A replay runs no Python: a hook registered here would be skipped on every replay.
            raise NotImplementedError(
                "register_hook inside tapegrad.record: a replay runs no Python, so the hook could not run; "
                "register it outside the recorded function, or call the function eagerly"
            )
        hook_registrations[0] += 1  # a backward in progress looks for hooks again
        if self._tape is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            hooks = resolve(self).hooks.setdefault(self._row, [])
        hooks.append(hook)
        return RemovableHandle(hooks, hook)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf), times ``gradient``, into every leaf's ``.grad`` (or only
        into ``inputs``'); follows ``torch.Tensor.backward``."""
        from .autograd.gradients import backward

        backward((self,), (gradient,), retain_graph, create_graph, inputs)

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
        return _record._cast(self, _dtypes.as_dtype(dtype))

    def type(self, dtype=None):
        if dtype is None:
            return f"tapegrad.{ {'f': 'Float', 'd': 'Double'}.get(self._data.dtype.char, 'Long') }Tensor"
        return self.to(dtype)

    def float(self) -> Tensor:
        return _record._cast(self, _dtypes.float32)

    def double(self) -> Tensor:
        return _record._cast(self, _dtypes.float64)

    def long(self) -> Tensor:
        return _record._cast(self, _dtypes.int64)

    def int(self) -> Tensor:
        return _record._cast(self, _dtypes.int32)

    def bool(self) -> Tensor:
        return _record._cast(self, _dtypes.bool)

    def cpu(self) -> Tensor:
        return self

    def contiguous(self) -> Tensor:
        return self if self._data.flags.c_contiguous else self.clone()

    def clone(self) -> Tensor:
        return _record.record("clone", (self,), self._data.copy())

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
        return _record._arith("rsub", self, other)

    def __rtruediv__(self, other):
        return _record._arith("rdiv", self, other)

    def __rpow__(self, other):
        return _record._arith("rpow", self, other)

    def __neg__(self):
        return _record._unary(BY_NAME["neg"], self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _record._unary(BY_NAME["abs"], self)

    def __matmul__(self, other):
        from ._linalg import matmul

        return matmul(self, other)

    def __rmatmul__(self, other):
        from ._linalg import matmul

        return matmul(as_tensor(other), self)

    matmul = __matmul__

    def __iadd__(self, other):
        return _record._in_place(self, "add", other)

    def __isub__(self, other):
        return _record._in_place(self, "sub", other)

    def __imul__(self, other):
        return _record._in_place(self, "mul", other)

    def __itruediv__(self, other):
        return _record._in_place(self, "div", other)

    def add_(self, other, alpha=1):
        return _record._in_place(self, "add", other if alpha == 1 else other * alpha)

    def sub_(self, other, alpha=1):
        return _record._in_place(self, "sub", other if alpha == 1 else other * alpha)

    def mul_(self, other):
        return _record._in_place(self, "mul", other)

    def div_(self, other):
        return _record._in_place(self, "div", other)

    def zero_(self) -> Tensor:
        return self._overwrite(0, "Zero")

    def fill_(self, value) -> Tensor:
        return self._overwrite(value, "Fill")

    def copy_(self, source) -> Tensor:
        return self._overwrite(source, "Copy")

    def _overwrite(self, value, label: str) -> Tensor:
        """zero_/fill_/copy_. On a tensor of a graph, or from a tensor that requires grad, the
        new values are recorded (as where(everywhere, value, self)): gradients no longer reach
        the old values, and reach ``value``; otherwise a plain write."""
        _record._check_in_place(self)
        value_recorded = isinstance(value, Tensor) and (value._tape is not None or value._requires_grad)
        if _grad_state.enabled and (self._tape is not None or value_recorded):
            from ._selection import where

            if isinstance(value, Tensor) and value._data.dtype != self._data.dtype:
                value = value.to(self.dtype)
            everywhere = _wrap(np.ones(self._data.shape, np.bool_))
            return _record.in_place(self, lambda t: where(everywhere, value, t), label)
        self._data[...] = value._data if isinstance(value, Tensor) else value
        _record._bump_version(self)
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

    def max(self, dim=None, keepdim: bool = False):
        from ._reductions import max as max_

        return max_(self, dim, keepdim)

    def min(self, dim=None, keepdim: bool = False):
        from ._reductions import min as min_

        return min_(self, dim, keepdim)

    def amax(self, dim=(), keepdim: bool = False):
        from ._reductions import amax

        return amax(self, dim, keepdim)

    def amin(self, dim=(), keepdim: bool = False):
        from ._reductions import amin

        return amin(self, dim, keepdim)

    def argmax(self, dim=None, keepdim: bool = False):
        from ._reductions import argmax

        return argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim: bool = False):
        from ._reductions import argmin

        return argmin(self, dim, keepdim)

    def prod(self, dim=None, keepdim: bool = False, dtype=None):
        from ._reductions import prod

        return prod(self, dim, keepdim, dtype)

    def logsumexp(self, dim, keepdim: bool = False):
        from ._reductions import logsumexp

        return logsumexp(self, dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
        from ._reductions import var

        return var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
        from ._reductions import std

        return std(self, dim, unbiased, keepdim, correction=correction)

    def cumsum(self, dim: int, dtype=None):
        from ._reductions import cumsum

        return cumsum(self, dim, dtype)

    # -- choices, joins and picks: defined in their own modules ---------------------------

    def clamp(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        from ._selection import clamp

        return clamp(self, min, max)

    clip = clamp

    def clamp_min(self, min):  # noqa: A002
        return self.clamp(min=min)

    def clamp_max(self, max):  # noqa: A002
        return self.clamp(max=max)

    def maximum(self, other):
        from ._selection import maximum

        return maximum(self, other)

    def minimum(self, other):
        from ._selection import minimum

        return minimum(self, other)

    def where(self, condition, other):
        from ._selection import where

        return where(condition, self, other)

    def split(self, split_size, dim: int = 0):
        from ._views import split

        return split(self, split_size, dim)

    def chunk(self, chunks: int, dim: int = 0):
        from ._views import chunk

        return chunk(self, chunks, dim)

    def unbind(self, dim: int = 0):
        from ._views import unbind

        return unbind(self, dim)

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1):
        from ._views import diagonal

        return diagonal(self, offset, dim1, dim2)

    def gather(self, dim: int, index):
        from ._indexing import gather

        return gather(self, dim, index)

    def index_select(self, dim: int, index):
        from ._indexing import index_select

        return index_select(self, dim, index)

    def repeat(self, *sizes):
        from ._indexing import repeat

        return repeat(self, *sizes)

    def flip(self, *dims):
        from ._indexing import flip

        return flip(self, dims[0] if len(dims) == 1 else dims)

    def outer(self, other):
        from ._linalg import outer

        return outer(self, other)

    # -- in place: computed out of place, written back (the version counter counts it) -----

    def clamp_(self, min=None, max=None):  # noqa: A002
        return _record.in_place(self, lambda t: t.clamp(min, max), "Clamp")

    clip_ = clamp_

    def pow_(self, exponent):
        return _record.in_place(self, lambda t: t**exponent, "Pow")

    def softmax(self, dim: int, dtype=None):
        from ._reductions import softmax

        return softmax(self, dim, dtype)

    def log_softmax(self, dim: int, dtype=None):
        from ._reductions import log_softmax

        return log_softmax(self, dim, dtype)

    def __getitem__(self, key):
        from ._views import getitem

        return getitem(self, key)

    def __setitem__(self, key, value):
        _record._check_in_place(self)
        value_recorded = isinstance(value, Tensor) and (value._tape is not None or value._requires_grad)
        if _grad_state.enabled and (self._tape is not None or value_recorded):
            from ._indexing import assign

            _record.in_place(self, lambda t: assign(t, key, value), "CopySlices")
            return
        numpy_key = tuple(k._data if isinstance(k, Tensor) else k for k in key) if isinstance(key, tuple) else key
        numpy_key = numpy_key._data if isinstance(numpy_key, Tensor) else numpy_key
        self._data[numpy_key] = value._data if isinstance(value, Tensor) else value
        _record._bump_version(self)

    def masked_fill(self, mask, value):
        from ._selection import where

        return where(mask, value, self)

    def masked_fill_(self, mask, value):
        return _record.in_place(self, lambda t: t.masked_fill(mask, value), "MaskedFill")

    def reshape(self, *shape):
        from ._views import reshape

        return reshape(self, shape)

    def view(self, *shape):
        from ._views import view

        return view(self, shape)

    def view_as(self, other):
        return self.view(other.shape)

    def reshape_as(self, other):
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        shape = self._data.shape
        if not shape:
            return self.reshape(1)
        start, end = _normalize_dim(start_dim, len(shape)), _normalize_dim(end_dim, len(shape))
        if start >= end:
            return self
        return self.reshape(*shape[:start], -1, *shape[end + 1 :])

    def unflatten(self, dim: int, sizes):
        shape = self._data.shape
        dim = _normalize_dim(dim, len(shape))
        return self.reshape(*shape[:dim], *sizes, *shape[dim + 1 :])

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
    # Read on every backward (hooks of leaves) and save (versions): set here, since reading an
    # unset slot goes through __getattr__ and costs a microsecond.
    tensor._version = None
    tensor._hooks = None
    # A view's root tensor (``_record_view`` sets it): read on every recorded use.
    tensor._base = None
    return tensor


def _recorded(data: np.ndarray, tape: Tape, row: int, requires_grad: bool = True) -> Tensor:
    tensor = Tensor.__new__(Tensor)
    tensor._data = data
    tensor._tape = tape
    tensor._row = row
    tensor._requires_grad = requires_grad
    tensor._version = None
    tensor._base = None
    return tensor


def as_tensor(value, dtype=None) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(value, dtype)


def _normalize_dim(dim: int, ndim: int) -> int:
    low, high = (-ndim, ndim - 1) if ndim else (-1, 0)
    if not low <= dim <= high:
        raise IndexError(f"Dimension out of range (expected to be in range of [{low}, {high}], but got {dim})")
    return dim % ndim if ndim else 0


def _check_can_require_grad(data: np.ndarray, factory: bool) -> None:
    if data.dtype.kind != "f":
        if factory:
            raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
        raise RuntimeError("only Tensors of floating point dtype can require gradients")


# How ops are recorded lives in _record.py, which needs Tensor: imported last, used by attribute.
from . import _record  # noqa: E402
