"""The Tensor's state: a numpy value and, for a recorded result, its tape and row.

A tensor is a numpy array (``_data``) and, when it was computed by a recorded op, the tape and
row that produced it (``_tape``, ``_row``). This module holds what a tensor *is* (shape, dtype,
requires_grad, .grad, hooks, conversion out of tapegrad) and imports nothing above the tape.
What a tensor *does* is attached by the layers above through ``install``: the ops modules
(``_record``, ``_views``, ``_reductions``...) install the recording methods next to their
recorders, ``_replay_hooks`` detach/data and comparisons, ``autograd`` backward and grad_fn.
"""

from __future__ import annotations

import builtins
import copy
import math
import numbers
import operator
import warnings
from weakref import ref as _weakref

import numpy as np

from . import _device, _dtypes
from ._grad_mode import anomaly as _anomaly
from ._grad_mode import recordings_active as _recordings_active
from ._grad_mode import state as _grad_state
from ._ops import OPCODE
from ._printing import tensor_repr
from ._tape import NO_GRAD, Tape, check_gradient_reaches, exclusive, resolve

_float = builtins.float
_operator_index = operator.index
_int = builtins.int
_bool = builtins.bool


class Size(tuple):
    """A tensor's shape; prints as ``tapegrad.Size([2, 3])``. Made of integers, as
    ``torch.Size``: Python's, numpy's and one-element integer tensors (as ints); raises
    ``TypeError`` naming the first other item."""

    __slots__ = ()

    def __new__(cls, sizes=()):
        items = tuple(sizes)
        if all(type(item) is _int for item in items):
            return tuple.__new__(cls, items)
        converted = []
        for position, item in enumerate(items):
            try:
                converted.append(_operator_index(item))
            except TypeError:
                raise TypeError(
                    f"tapegrad.Size() takes an iterable of 'int' (item {position} is '{type(item).__name__}')"
                ) from None
        return tuple.__new__(cls, converted)

    def __repr__(self) -> str:
        return f"tapegrad.Size({list(self)})"

    def __getitem__(self, key):
        """An element, or for a slice a ``Size``, as ``torch.Size`` gives (``x.shape[-2:]``)."""
        item = tuple.__getitem__(self, key)
        return tuple.__new__(Size, item) if isinstance(key, slice) else item

    def __add__(self, other):
        """``Size`` joined with a tuple, a ``Size`` again, as ``torch.Size`` gives (``x.shape +
        (1,)``); a list raises ``TypeError``, as for tuples."""
        return Size(tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(other, self))

    def __mul__(self, count):
        return Size(tuple.__mul__(self, count))

    __rmul__ = __mul__

    def numel(self) -> int:
        return math.prod(self)


# register_hook calls so far: a backward with hooks re-reads which rows are hooked only when this
# moved while it ran Python.
hook_registrations = [0]
# Post-accumulate-grad hooks ever registered in this process: none, and the engine skips looking.
post_accumulate_registrations = [0]


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
        "_version_counter",
        "_base",
        "_seen_version",
        "_view_meta",
        "_views",
        "_post_accumulate_hooks",
        "__weakref__",
    )
    # ``_grad``, ``_grad_fn`` and ``_retains_grad`` are left unset on creation (three stores
    # fewer on the hot path); reading an unset one lands in __getattr__, which gives the default.
    # ``_version_counter`` is the in-place counter shared by tensors sharing storage (views,
    # detach), created when first needed: ``[count]``, or ``[count, op label]``.
    _UNSET_DEFAULTS = {
        "_grad": None,
        "_grad_fn": None,
        "_retains_grad": False,
        "_address": None,
        "_version_counter": None,
        "_hooks": None,
        "_base": None,
        "_seen_version": 0,
        # A view's PyTorch CreationMeta when not DEFAULT: ``(kind, output number)``, kind
        # ``_record.MULTI_OUTPUT`` or ``NO_GRAD_MODE``; in-place changes of it are refused.
        "_view_meta": None,
        # A root that does not require grad: the views of it made since (a WeakSet), refreshed
        # when a change in place gives it values that do (``_indexing.views_follow``).
        "_views": None,
        "_post_accumulate_hooks": None,  # a leaf's (``register_post_accumulate_grad_hook``)
    }

    def __getattr__(self, name):
        try:
            return Tensor._UNSET_DEFAULTS[name]
        except KeyError:
            raise AttributeError(f"'Tensor' object has no attribute '{name}'") from None

    __hash__ = object.__hash__
    __array_priority__ = 1000  # numpy defers ``ndarray * Tensor`` to Tensor.__rmul__

    def __init__(self, *data, dtype=None, requires_grad: bool = False):
        """PyTorch's legacy constructor ``torch.Tensor``: ``Tensor(*sizes)`` or ``Tensor(size)``
        (a ``Size``) is a tensor of that shape in the default dtype (zeros here, where PyTorch
        leaves the memory uninitialised), ``Tensor()`` an empty one, ``Tensor(sequence)`` a copy
        of nested lists or tuples of numbers or of a numpy array in the default dtype, and
        ``Tensor(tensor)`` a copy in that tensor's dtype (PyTorch shares the memory of both
        where the dtype is kept).
        ``dtype`` and ``requires_grad`` are tapegrad's own (PyTorch has neither). Raises
        PyTorch's ``TypeError`` for a single Python number, or sizes that are not all ints."""
        self._data = _legacy_data(data, dtype)
        self._tape = None
        self._row = -1
        self._requires_grad = False
        self._grad = None
        self._grad_fn = None
        self._retains_grad = False
        self._version_counter = None
        self._hooks = None
        self._base = None
        if requires_grad:
            _check_can_require_grad(self._data, factory=True)
            self._requires_grad = True

    # -- autograd attributes --------------------------------------------------------------

    @property
    def requires_grad(self) -> bool:
        """Whether gradients are computed for this tensor; follows ``torch.Tensor.requires_grad``."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    def __copy__(self) -> Tensor:
        """``copy.copy(t)``: a leaf sharing ``t``'s storage and its ``requires_grad``, with no
        ``grad_fn``; follows ``torch.Tensor`` (whose copy of a result is a new leaf, not a second
        handle on its node). A slot-by-slot copy named the result's row without the tape knowing
        (``Tape.hold``): a collection then renumbered the result but not the copy, whose
        gradient went through another row, silently."""
        _guard(self, "copy.copy()")  # inside tapegrad.record: the copy's values are a replay's constants
        copied = _wrap(self._data)
        copied._requires_grad = self._requires_grad
        return copied

    def __deepcopy__(self, memo) -> Tensor:
        """``copy.deepcopy(t)`` of a leaf: a tensor with copies of its values, ``.grad`` and
        other state; follows ``torch.Tensor``, whose ``RuntimeError`` for a non-leaf this
        raises. (The default deep copy reached the tape of a value computed without grad inside
        ``tapegrad.record``, and failed on its memoryviews.)"""
        copied = memo.get(id(self))
        if copied is not None:
            return copied
        if not self.is_leaf:
            raise RuntimeError(_DEEPCOPY_OF_A_NON_LEAF)
        cls = type(self)
        copied = memo[id(self)] = cls.__new__(cls)
        attributes, slots = self.__getstate__()
        for name, value in slots.items():
            setattr(copied, name, copy.deepcopy(value, memo))
        if attributes:
            copied.__dict__.update(copy.deepcopy(attributes, memo))
        return copied

    def __getstate__(self):
        """What ``pickle`` and ``copy.deepcopy`` keep: every attribute of a leaf; of a result, or
        of a view or a tensor with views, its values and ``requires_grad`` (PyTorch's pickle of a
        result loads a leaf). Inside ``tapegrad.record`` a value on the tape is then a guard."""
        attributes, slots = super().__getstate__()
        if slots.get("_address") is not None:
            # (the address of this tensor's array, cached by ``Tape.save_leaf``: a copy paired
            # with it read the original's memory, freed memory once it was gone)
            slots = {**slots, "_address": None}
        if self._tape is not None or slots.get("_base") is not None or slots.get("_views"):
            # (a view, or a tensor with views: its values alone, as the weak references that
            # tie views to their base cannot be pickled)
            _guard(self, "pickle or copy.deepcopy()")
            leaf = _wrap(self._data)
            leaf._requires_grad = self._requires_grad
            if self._tape is None and slots.get("_grad") is not None:
                leaf._grad = slots["_grad"]
            slots = super(Tensor, leaf).__getstate__()[1]
        return attributes, slots

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place and return self; follows ``torch.Tensor.requires_grad_``."""
        if self._tape is not None and not self._requires_grad and requires_grad:
            # A value computed inside tapegrad.record without grad: it becomes a leaf, a constant
            # of the tape, so its value is a guard there (or a replay would keep it).
            _guard(self, "requires_grad_()")
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
        """True for tensors no recorded op produced; follows ``torch.Tensor.is_leaf``."""
        return self._tape is None or not self._requires_grad

    @property
    def grad(self):
        """The accumulated gradient (None until a backward reaches it); follows ``torch.Tensor.grad``."""
        # (as PyTorch: not once a gradient was assigned, as a differentiable optimizer's is)
        if self._tape is not None and self._requires_grad and not self._retains_grad and self._grad is None:
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
            if value._data.dtype != self._data.dtype:  # PyTorch's check (of grad_dtype, the tensor's)
                raise RuntimeError(
                    f"attempting to assign a gradient with dtype '{value.dtype.c_name}' to a tensor with grad_dtype "
                    f"'{self.dtype.type_name}'. The gradient must match the tensor's grad_dtype (defaults to the "
                    "tensor's dtype). You can set the tensor's grad_dtype attribute with a specific dtype, or None "
                    "to allow any dtype. Set grad_dtype with caution. Diverging the dtypes of a tensor and its "
                    "gradient may break downstream systems that assume they match."
                )
        self._grad = value

    @grad.deleter
    def grad(self) -> None:
        self._grad = None

    @exclusive
    def retain_grad(self) -> None:
        """Keep this non-leaf's gradient in ``.grad`` on backward; follows ``torch.Tensor.retain_grad``."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._tape is not None and not self._retains_grad:
            check_gradient_reaches(self, "retain_grad()")
            self._retains_grad = True
            retained = resolve(self).retained
            if len(retained) >= 64 and not len(retained) & (len(retained) - 1):
                # (at each power of two: the references of results that died since, which an
                # evaluation loop's ``retain_grad`` on a kept tape piled up, 100 B a step)
                retained[:] = [reference for reference in retained if reference() is not None]
            retained.append(_weakref(self))  # (held, a cycle through the tape)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` after each backward has accumulated into this leaf's ``.grad``
        (an optimizer step per parameter, in the backward). Returns a handle whose ``remove()``
        unregisters it. Follows ``torch.Tensor.register_post_accumulate_grad_hook``; raises
        PyTorch's ``RuntimeError`` for a tensor without grad or not a leaf."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._tape is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if self._post_accumulate_hooks is None:
            self._post_accumulate_hooks = []
        post_accumulate_registrations[0] += 1  # the engine looks for them from now on
        self._post_accumulate_hooks.append(hook)
        return RemovableHandle(self._post_accumulate_hooks, hook)

    @exclusive
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
        if self._base is not None and self._version_counter[0] != self._seen_version:
            # A view whose storage changed in place since its row was recorded: an op reads it
            # through a new row from now on, which the hook must be on. PyTorch's register_hook
            # goes through grad_fn, which regenerates the view's node; reading it does the same
            # here (a hook left on the old row was silently skipped).
            _ = self.grad_fn
        check_gradient_reaches(self, "register_hook")
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
        """Whether ``retain_grad()`` was called; follows ``torch.Tensor.retains_grad``."""
        return self._retains_grad

    def detach_(self) -> Tensor:
        """Make this tensor a leaf that does not require grad, in place; follows ``torch.Tensor.detach_``.
        Raises PyTorch's ``RuntimeError`` for a view (its base would keep a graph it shares)."""
        if self._base is not None:
            raise RuntimeError(
                "Can't detach views in-place. Use detach() instead. If you are using DistributedDataParallel (DDP) "
                "for training, and gradient_as_bucket_view is set as True, gradients are views of DDP buckets, and "
                "hence detach_() cannot be called on these gradients. To fix this error, please refer to the "
                "Optimizer.zero_grad() function in torch/optim/optimizer.py as the solution."
            )
        recording = _grad_state.recording if _recordings_active[0] else None
        if self._tape is not None:
            source = self._row if recording is not None and resolve(self) is recording else None
        else:  # an input of the recording, or a tensor it captured and registered
            source = recording.registered.get(id(self)) if recording is not None and self._requires_grad else None
        if source is not None:
            # Inside ``tapegrad.record``: a value the replay computes, without a gradient (as
            # ``detach()`` is recorded); made a constant, a replay used the recording's values.
            layout = recording.layout(self._data.dtype, self._data.shape)
            self._tape = recording
            self._row = recording.append(OPCODE["detach"] | NO_GRAD, source, -1, 0, layout, 0.0)
        else:
            self._tape = None
            self._row = -1
        self._grad_fn = None
        self._requires_grad = False
        return self

    # -- shape and type -------------------------------------------------------------------

    @property
    def shape(self) -> Size:
        """The size of each dimension, a ``tapegrad.Size``; follows ``torch.Tensor.shape``."""
        return tuple.__new__(Size, self._data.shape)  # (numpy's ints: nothing to check)

    def size(self, dim: int | None = None):
        """The shape, or the size of dimension ``dim``; follows ``torch.Tensor.size``."""
        if dim is None:
            return tuple.__new__(Size, self._data.shape)
        return self._data.shape[_normalize_dim(dim, self._data.ndim)]

    def ndimension(self) -> int:
        """The number of dimensions (``dim()``); follows ``torch.Tensor.ndimension``."""
        return self._data.ndim

    def dim(self) -> int:
        """The number of dimensions; follows ``torch.Tensor.dim``."""
        return self._data.ndim

    ndim = property(dim)

    def numel(self) -> int:
        """The number of elements; follows ``torch.Tensor.numel``."""
        return self._data.size

    nelement = numel

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    @property
    def dtype(self) -> _dtypes.dtype:
        """The element type (``tapegrad.float32``...); follows ``torch.Tensor.dtype``."""
        return _dtypes.from_numpy_dtype(self._data.dtype)

    @property
    def device(self) -> _device.device:
        """``device(type='cpu')``, where tapegrad computes; follows ``torch.Tensor.device``."""
        return _device.CPU

    @property
    def _version(self) -> int:
        """How many in-place changes this tensor's storage has had (shared with its views and
        detached copies); follows ``torch.Tensor._version``."""
        counter = self._version_counter
        return 0 if counter is None else counter[0]

    @property
    def is_cuda(self) -> bool:
        """False; follows ``torch.Tensor.is_cuda``."""
        return False

    def is_floating_point(self) -> bool:
        """Whether the dtype is a float; follows ``torch.Tensor.is_floating_point``."""
        return self._data.dtype.kind == "f"

    def is_contiguous(self) -> bool:
        """Whether the values are laid out row-major without gaps; follows ``torch.Tensor.is_contiguous``."""
        return self._data.flags.c_contiguous

    def element_size(self) -> int:
        """Bytes per element; follows ``torch.Tensor.element_size``."""
        return self._data.itemsize

    def data_ptr(self) -> int:
        """The address of the first element (an int); follows ``torch.Tensor.data_ptr``."""
        return self._data.__array_interface__["data"][0]

    def get_device(self) -> int:
        """-1: the CPU; follows ``torch.Tensor.get_device``."""
        return -1

    def cpu(self) -> Tensor:
        """This tensor (tapegrad has only the CPU); follows ``torch.Tensor.cpu``."""
        return self

    def cuda(self, device=None, non_blocking: bool = False) -> Tensor:
        """Raises ``AssertionError("Torch not compiled with CUDA enabled")``, as a CPU-only
        PyTorch does; follows ``torch.Tensor.cuda``."""
        raise AssertionError(_device.NO_CUDA)

    def contiguous(self) -> Tensor:
        """This tensor if contiguous, else a contiguous copy; follows ``torch.Tensor.contiguous``."""
        return self if self._data.flags.c_contiguous else self.clone()

    # -- leaving tapegrad -----------------------------------------------------------------

    def item(self):
        """The one value as a Python number; follows ``torch.Tensor.item``."""
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted to Scalar")
        _guard(self, "item()")
        return self._data.reshape(-1)[0].item()

    def tolist(self):
        """The values as nested Python lists; follows ``torch.Tensor.tolist``."""
        _guard(self, "tolist()")
        return self._data.tolist()

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The values as a numpy array sharing memory; follows ``torch.Tensor.numpy``.

        Inside ``tapegrad.record``, the array of a value on the tape is read-only (a write to it
        raises numpy's ``ValueError``): the tape cannot see a write there, and its replay would
        compute with the values before it."""
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        _guard(self, "numpy()")
        return _read_only_in_recording(self)

    def __array__(self, dtype=None, copy=None):
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        _guard(self, "__array__")
        # numpy's protocol: ``copy`` True (``np.array(t)``) a copy, None a copy only if needed
        # (the dtype differs), False never. The memory itself for np.array(t) was written by
        # the array's changes, silently.
        if copy:
            return self._data.astype(dtype if dtype is not None else self._data.dtype, copy=True)
        if dtype is None or np.dtype(dtype) == self._data.dtype:
            return _read_only_in_recording(self)
        if copy is False:
            raise ValueError("Unable to avoid copy while creating an array as requested.")
        return self._data.astype(dtype)

    def __float__(self) -> float:
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        _guard(self, "float()")
        return _float(self._data.reshape(-1)[0])

    def __int__(self) -> int:
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        _guard(self, "int()")
        return _int(self._data.reshape(-1)[0])

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return _int(self.item())

    def __contains__(self, element) -> bool:
        """``element in t``: whether any element equals it (broadcast), as
        ``torch.Tensor.__contains__``; ``RuntimeError`` for what is neither a tensor nor a number.
        (Without it, Python iterated over the rows and compared each: a row of a 2-d tensor
        raised as ambiguous, and ``None in t`` was False where PyTorch raises.)"""
        if not isinstance(element, (Tensor, numbers.Number)):
            raise RuntimeError(
                f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a {type(element)}."
            )
        return bool((self == element).any())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        value = _bool(self._data.reshape(-1)[0])
        _guard(self, "bool()", truth=value)
        return value

    def __repr__(self) -> str:
        _guard(self, "str()")  # inside tapegrad.record: Python may branch on the text
        return tensor_repr(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    def __pos__(self):
        return self

    def view_as(self, other):
        """``self.view(other.shape)``; follows ``torch.Tensor.view_as``."""
        return self.view(other.shape)

    def reshape_as(self, other):
        """``self.reshape(other.shape)``; follows ``torch.Tensor.reshape_as``."""
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        """Dimensions ``start_dim`` to ``end_dim`` merged into one; follows ``torch.Tensor.flatten``."""
        shape = self._data.shape
        if not shape:
            return self.reshape(1)
        start, end = _normalize_dim(start_dim, len(shape)), _normalize_dim(end_dim, len(shape))
        if start > end:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        if start == end:
            return self
        # (the merged size spelled out: -1 cannot be inferred where another dimension is 0)
        return self.reshape(*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])

    @property
    def mT(self):  # noqa: N802
        """The last two dimensions swapped; follows ``torch.Tensor.mT``. ``RuntimeError`` (PyTorch's
        message) below two dimensions."""
        if self._data.ndim < 2:
            raise RuntimeError(
                f"tensor.mT is only supported on matrices or batches of matrices. Got {self._data.ndim}-D tensor."
            )
        return self.transpose(-2, -1)

    def expand_as(self, other):
        """``self.expand(other.shape)``; follows ``torch.Tensor.expand_as``."""
        return self.expand(other.shape)


# --------------------------------------------------------------------------------------------
# Recording. These are the hot path: an op's whole cost (numpy forward, tape append, Tensor)
# is what has to beat PyTorch per op on small tensors, so they avoid any per-op generality.


# ``_replay_hooks.guard``, set when that module (a layer up) is imported.
_record_guard = None


def on_tape(tensor: Tensor) -> bool:
    """Whether ``tensor`` is a row of a tape: differentiable, or any value computed inside
    ``tapegrad.record`` (an integer mask too). Off the tape, it is a constant of a recording."""
    return tensor._requires_grad or tensor._tape is not None


def _read_only_in_recording(tensor: Tensor) -> np.ndarray:
    """``tensor``'s array, or inside ``tapegrad.record`` a read-only view of it when the tensor
    is on the tape or a constant of it already read: a write through it would change values the
    replay recomputes, or holds as they were read."""
    tape = _grad_state.recording if _recordings_active[0] else None
    if tape is not None and (on_tape(tensor) or -id(tensor) in tape.registered or id(tensor) in tape.registered):
        view = tensor._data.view()
        view.flags.writeable = False
        return view
    # A view: the memory is shared, the array object not (PyTorch's numpy() is a new array).
    # Handed out, the tensor's own array took a caller's ``a.shape = ...`` or ``a.dtype = ...``:
    # a parameter turned into another shape and dtype, and a backward read it in the old order.
    return tensor._data.view()


_DEEPCOPY_OF_A_NON_LEAF = (
    "Only Tensors created explicitly by the user (graph leaves) support the deepcopy protocol at the moment.  "
    "If you were attempting to deepcopy a module, this may be because of a torch.nn.utils.weight_norm usage, "
    "see https://github.com/pytorch/pytorch/pull/103001"
)


def _guard(tensor: Tensor, kind: str, truth=None) -> None:
    """Inside ``tapegrad.record``, Python reading a recorded value is a guard on replay."""
    # (A tensor off the tape is a constant of the recording: its guard would always hold.)
    if _recordings_active[0] and _grad_state.recording is not None and on_tape(tensor):
        _record_guard(tensor, kind, truth)


def guard_reads(kind: str, *values) -> None:
    """``_guard`` each tensor among ``values``: inside ``tapegrad.record``, a result computed
    from them in numpy (a test of every element, positions, one-hot rows, nll_loss's targets) is
    a constant of the tape, so a replay where they differ must fail (or record again) instead
    of using the recording's result."""
    for value in values:
        if isinstance(value, Tensor):
            _guard(value, kind)


def _wrap(data: np.ndarray) -> Tensor:
    """A tensor that does not require grad (no tape)."""
    if type(data) is not np.ndarray:
        # A numpy scalar has no storage of its own: a backward that saved one read the address
        # of a temporary array (cross_entropy's smoothing mask for one target: wrong gradients).
        data = np.asarray(data)
    tensor = Tensor.__new__(Tensor)
    tensor._data = data
    tensor._tape = None
    tensor._row = -1
    tensor._requires_grad = False
    # Read on every backward (hooks of leaves) and save (versions): set here, since reading an
    # unset slot goes through __getattr__ and costs a microsecond.
    tensor._version_counter = None
    tensor._hooks = None
    # A view's root tensor (``_record_view`` sets it): read on every recorded use.
    tensor._base = None
    return tensor


def _recorded(data: np.ndarray, tape: Tape, row: int, requires_grad: bool = True) -> Tensor:
    tensor = Tensor.__new__(Tensor)
    tensor._data = data
    tensor._tape = tape
    tensor._row = row
    if row >= tape.hold_from:  # ``Tape.hold``, inline, on a tape that tracks its tensors
        ref = _weakref(tensor)
        if tape.refs.setdefault(row, ref) is not ref:  # a row another tensor holds too (``_nonzero_row``'s)
            tape.hold(row, tensor)
    tensor._requires_grad = requires_grad
    tensor._version_counter = None
    tensor._base = None
    if _anomaly[0]:  # (a special mode: the fast paths, which bypass this, are off meanwhile)
        tape.note_trace(row)
    return tensor


def holds(kind: str, tensor: Tensor, test) -> bool:
    """Whether ``test(values)`` (elementwise, written for numpy arrays and tensors alike: ``v == v``)
    is true everywhere. Eagerly it runs on the array. Inside ``tapegrad.record``, for a value on
    the tape, it runs as recorded ops and its truth is guarded (``kind`` names the guard): a check
    eager makes before computing (a range, a support) then holds in every replay, or the replay
    fails its guard, where the check read in numpy was skipped and the replay returned a number."""
    if _recordings_active[0] and _grad_state.recording is not None and on_tape(tensor):
        result = test(tensor).all()
        value = _bool(result._data.reshape(-1)[0])
        _guard(result, kind, truth=value)
        return value
    return bool(np.all(test(tensor._data)))


def floating_kernel(input: Tensor, kernel: str) -> None:  # noqa: A002 - PyTorch's name
    """PyTorch's ``NotImplementedError`` for a kernel it compiles for floating dtypes only, named
    as its dispatch names it (``"elu_cpu"``): numpy computed those ops of integers in floating
    point and returned a float result where PyTorch refuses."""
    if input._data.dtype.kind != "f":
        raise NotImplementedError(f"\"{kernel}\" not implemented for '{input.dtype.type_name}'")


def check_tensor_arguments(function: str, *named) -> None:
    """PyTorch's ``TypeError`` for the first of ``named`` (``(name, value)`` pairs, in argument
    order from position 1) that is not a tensor: ``fmax(): argument 'other' (position 2) must be
    Tensor, not float``."""
    for position, (name, value) in enumerate(named, 1):
        if not isinstance(value, Tensor):
            raise TypeError(
                f"{function}(): argument '{name}' (position {position}) must be Tensor, not {argument_type_name(value)}"
            )


def argument_type_name(value) -> str:
    """A type as PyTorch's argument errors name it: ``numpy.ndarray``, ``list``, ``Tensor``."""
    if isinstance(value, Tensor):
        return "Tensor"
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"


def typename(obj) -> str:
    """A tensor's type name (``tapegrad.FloatTensor``), else the object's type or own name,
    qualified by its module unless it is a builtin (``numpy.ndarray``, ``list``), as PyTorch's
    error messages name them; follows ``torch.typename``."""
    if isinstance(obj, Tensor):
        return obj.type()
    if hasattr(obj, "__qualname__") or hasattr(obj, "__name__"):
        module, name = getattr(obj, "__module__", "") or "", getattr(obj, "__qualname__", None) or obj.__name__
    else:
        module, name = type(obj).__module__ or "", type(obj).__qualname__
    return name if module in ("", "builtins") else f"{module}.{name}"


def as_tensor(value, dtype=None) -> Tensor:
    """``value`` if it is a tensor, else a new one of its values (a number, a nested sequence,
    an array), as ``tapegrad.tensor(value, dtype=dtype)``. (It was the legacy ``Tensor(value,
    dtype)``, which took both as sizes: ``div(7, t)`` raised a TypeError about sizes.)"""
    return value if isinstance(value, Tensor) else _wrap(as_array(value, dtype))


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


def install(methods: dict) -> None:
    """Attach ``methods`` (name: function or property) to Tensor. The modules that record ops
    call it for the methods that run them, so that this module need not import them. A
    function without a docstring gets one naming the PyTorch method it follows."""
    for name, method in methods.items():
        function = method.fget if isinstance(method, property) else method
        if callable(function) and not getattr(function, "__doc__", None):
            try:
                function.__doc__ = f"Follows ``torch.Tensor.{name}``."
            except AttributeError:
                pass  # a builtin
        setattr(Tensor, name, method)


def _inner_type(data) -> str:
    """The name of the type PyTorch's message names: the first element's, through lists."""
    while isinstance(data, (list, tuple)) and data:
        data = data[0]
    return type(data).__name__


def _infer_numpy_dtype(data, walk: bool = False) -> np.dtype:
    """PyTorch's inference: Python floats give the default dtype (float32 unless
    ``set_default_dtype``), ints int64, bools bool; a numpy scalar or a tensor its own dtype,
    promoted with the others' as PyTorch promotes (``[np.float64(0.5), 1.0]`` and
    ``[tensor(0.1, dtype=float64), 1.0]`` are float64). ``walk``: promote item by item (the
    list holds tensors' values, found anywhere in it)."""
    if isinstance(data, (np.generic, np.ndarray)):  # (an ndarray: a tensor's values, in a list)
        return _dtypes.from_numpy_dtype(data.dtype).numpy
    if isinstance(data, (list, tuple)) and (walk or _has_numpy_scalar(data)):
        inferred = None
        for item in data:
            item_type = _dtypes.from_numpy_dtype(_infer_numpy_dtype(item, walk))
            inferred = item_type if inferred is None else _dtypes.result_type(inferred, 0, item_type, 0)
        return inferred.numpy
    array = np.asarray(data)
    if array.dtype.kind == "f":
        return _dtypes.DEFAULT_FLOAT.numpy
    if array.dtype.kind in "iu":
        return np.dtype(np.int64)
    if array.dtype.kind == "b":
        return np.dtype(np.bool_)
    if array.dtype.kind == "O":
        raise RuntimeError(f"Could not infer dtype of {_inner_type(data)}")
    return _dtypes.from_numpy_dtype(array.dtype).numpy


def _has_numpy_scalar(data) -> bool:
    """Whether a nested list holds a numpy scalar or array (lists of them come from
    ``list(array)`` or comprehensions over arrays), looking at the first element of each of its
    items (of the first and last of more than 64): a scan of every element took 40% of
    ``tensor()`` on 10^6. (The first alone missed ``[1.0, np.float64(0.1)]``, which became
    float32 where PyTorch promotes it to float64.)"""
    if not isinstance(data, (list, tuple)):
        return isinstance(data, (np.generic, np.ndarray))
    items = data if len(data) <= 64 else (data[0], data[-1])
    for item in items:
        while isinstance(item, (list, tuple)) and len(item):
            item = item[0]
        if isinstance(item, (np.generic, np.ndarray)):
            return True
    return False


def _nested_tensors_to_arrays(data, found: list):
    """``data`` with each tensor in it replaced by its values; ``found[0]`` set when there was
    one (its dtype then counts in the inference, as in PyTorch's)."""
    if isinstance(data, Tensor):
        _guard(data, "tensor()")  # ``tg.tensor([x.sum(), 1.0])`` copies the value: in a recording, a read
        found[0] = True
        return data._data
    if isinstance(data, (list, tuple)):
        return [_element(_nested_tensors_to_arrays(item, found)) if isinstance(item, Tensor) else
                _nested_tensors_to_arrays(item, found) for item in data]  # fmt: skip
    return data


def _element(values: np.ndarray) -> np.ndarray:
    """A tensor inside a list, as PyTorch reads it: a number (``[tensor([1.]), tensor([2.])]``
    is of shape (2,), not (2, 1)), of its dtype; ``ValueError`` for more than one element."""
    if values.size != 1:
        raise ValueError("only one element tensors can be converted to Python scalars")
    return values.reshape(())


def _legacy_data(args: tuple, dtype) -> np.ndarray:
    """The array of ``Tensor(*args)`` (``Tensor.__init__``). ``nn.Parameter(torch.Tensor(out, in))``
    is how many layers declare their weights: read as data, ``Tensor(4, 3)`` raised numpy's
    error, ``Tensor(3)`` held the number 3 and ``Tensor([1, 2])`` was int64."""
    default = dtype if dtype is not None else _dtypes.DEFAULT_FLOAT
    if not args:
        return np.zeros(0, _dtypes.as_dtype(default).numpy)
    if len(args) == 1 and isinstance(args[0], Size):
        args = tuple(args[0])
    if all(isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)) for a in args):
        return np.zeros(tuple(int(a) for a in args), _dtypes.as_dtype(default).numpy)
    if len(args) > 1:
        bad = next(a for a in args if not isinstance(a, (int, np.integer)) or isinstance(a, (bool, np.bool_)))
        position = args.index(bad)
        raise TypeError(
            f"new(): argument 'size' failed to unpack the object at pos {position + 1} with error "
            f'"type must be tuple of ints,but got {type(bad).__name__}"'
        )
    data = args[0]
    if isinstance(data, (numbers.Number, np.bool_)) and not isinstance(data, np.ndarray):
        raise TypeError(f"new(): data must be a sequence (got {type(data).__name__})")
    if isinstance(data, Tensor):
        _guard(data, "Tensor()")  # inside tapegrad.record: the copy's values are a replay's constants
    # Sequences and numpy arrays take the default dtype, as PyTorch casts them; a tensor keeps
    # its own (``torch.Tensor(long_tensor)`` is that tensor).
    return as_array(data, dtype if isinstance(data, Tensor) else default)


def as_array(data, dtype=None) -> np.ndarray:
    """A fresh numpy array for ``tensor(data)``: copies, as ``torch.tensor`` does."""
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, np.ndarray):
        target = _dtypes.as_dtype(dtype).numpy if dtype is not None else _dtypes.from_numpy_dtype(data.dtype).numpy
        return np.array(data, dtype=target, copy=True)
    found = [False]
    if isinstance(data, (list, tuple)):
        data = _nested_tensors_to_arrays(data, found)
    try:
        target = _dtypes.as_dtype(dtype).numpy if dtype is not None else _infer_numpy_dtype(data, found[0])
        array = np.array(data, dtype=target)
        # numpy reads None as NaN (or False) and any string as True; PyTorch refuses them. Looked
        # for only where they could hide: a NaN, or booleans.
        if dtype is not None and (target.kind == "b" or (target.kind == "f" and np.isnan(array).any())):
            _check_numbers(data, target)
        return array
    except ValueError:
        _check_not_ragged(data, 0)  # PyTorch's message names the dimension (numpy's its "inhomogeneous" shape)
        raise


def _check_numbers(data, target: np.dtype, nested: bool = False) -> None:
    """PyTorch's ``TypeError`` for a None or a string among ``data``'s elements."""
    if isinstance(data, (list, tuple)):
        for item in data:
            _check_numbers(item, target, True)
    elif isinstance(data, str) and not nested:
        raise TypeError("new(): invalid data type 'str'")
    elif data is None or isinstance(data, str):
        name = type(data).__name__
        if target.kind == "f":
            raise TypeError(f"must be real number, not {name}")
        raise TypeError(f"'{name}' object cannot be interpreted as an integer")


def _check_not_ragged(data, dim: int) -> None:
    """Raise PyTorch's ``ValueError`` for nested sequences of unequal lengths (``tensor([[1, 2], [3]])``)."""
    if not isinstance(data, (list, tuple)) or not data:
        return
    first = data[0]
    expected = len(first) if isinstance(first, (list, tuple)) else None
    for item in data:
        got = len(item) if isinstance(item, (list, tuple)) else None
        if expected is not None and got is not None and got != expected:
            raise ValueError(f"expected sequence of length {expected} at dim {dim + 1} (got {got})")
    for item in data:
        _check_not_ragged(item, dim + 1)
