"""``tapegrad.nn`` modules: PyTorch's Module protocol and the common layers."""

from __future__ import annotations

import functools
import math
import operator
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from itertools import chain

import numpy as np

from .. import _device, _dtypes, _factories
from .._grad_mode import is_grad_enabled, no_grad
from .._record import _bump_version, to_arguments
from ..tensor import Tensor, _check_can_require_grad, _wrap, guard_reads
from . import functional as F  # noqa: N812 - the name PyTorch code uses
from . import init
from ._backward_hooks import BackwardHooks


class Parameter(Tensor):
    """A tensor that a Module registers as learnable (``requires_grad=True`` by default)."""

    def __init__(self, data=None, requires_grad: bool = True):
        if isinstance(data, Tensor):
            # The tensor's own memory, as PyTorch's Parameter shares it: weights tied through
            # ``Parameter(encoder.weight.data)`` stay tied, and an in-place change of ``data``
            # is one of the parameter.
            super().__init__()
            guard_reads("nn.Parameter()", data)  # inside tapegrad.record: a replay's constant
            self._data = data._data
            # and its version counter: a change of ``data`` after a backward saved the parameter
            # is then refused, as PyTorch's, where the backward used the changed values
            if data._version_counter is None:
                data._version_counter = [0]
            self._version_counter = data._version_counter
            if requires_grad:
                _check_can_require_grad(self._data, factory=True)
                self._requires_grad = True
            return
        if data is None:
            data = np.empty(0, np.float32)
        # (the legacy constructor casts an array to the default dtype: an array keeps its own here)
        dtype = data.dtype if isinstance(data, np.ndarray) else None
        super().__init__(data, dtype=dtype, requires_grad=requires_grad)

    def __deepcopy__(self, memo):
        """A parameter of a copy of the data, requiring grad as this one, without its ``.grad``
        (``copy.deepcopy`` of a module starts its copy with no gradients), as PyTorch's."""
        if id(self) not in memo:
            memo[id(self)] = type(self)(self.detach().clone(), self.requires_grad)
        return memo[id(self)]

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__


def _nobody():
    return None


_REGISTRIES = ("_parameters", "_buffers", "_modules")


class _Registry(OrderedDict):
    """A module's parameters, buffers or children by name (``_parameters``, ``_buffers``,
    ``_modules``). The module holds each as a plain attribute too, so that reading one needs no
    ``__getattr__``; a change made here directly changes that attribute with it. Code swaps a
    layer so (``model.classifier._modules["6"] = nn.Linear(4096, 10)``, PyTorch's fine-tuning
    recipes): with a plain dict, the model kept the old layer, silently. A copy or a pickle is
    a plain ``OrderedDict``, which the new module binds again (``Module.__setstate__``)."""

    __slots__ = ("_owner",)

    def __init__(self, *items, owner=None, **named):
        # (OrderedDict's copy, ``|`` and fromkeys call ``type(self)(items)``: bound to nothing)
        self._owner = weakref.ref(owner) if owner is not None else _nobody
        super().__init__(*items, **named)

    def _attributes(self) -> dict:
        owner = self._owner()
        return owner.__dict__ if owner is not None else {}

    def copy(self):
        return OrderedDict(self)

    def __or__(self, other):
        if not isinstance(other, dict):
            return NotImplemented
        return OrderedDict(self) | other

    def __ror__(self, other):
        if not isinstance(other, dict):
            return NotImplemented
        return OrderedDict(other) | OrderedDict(self)

    def __ior__(self, other):
        self.update(other)
        return self

    def __setitem__(self, name, value):
        super().__setitem__(name, value)
        self._attributes()[name] = value

    def __delitem__(self, name):
        super().__delitem__(name)
        self._attributes().pop(name, None)

    def pop(self, name, *default):
        if name in self:
            self._attributes().pop(name, None)
        return super().pop(name, *default)

    def popitem(self, last: bool = True):
        name, value = super().popitem(last)
        self._attributes().pop(name, None)
        return name, value

    def clear(self):
        attributes = self._attributes()
        for name in self:
            attributes.pop(name, None)
        super().clear()

    def setdefault(self, name, default=None):
        if name not in self:
            self[name] = default
        return self[name]

    def update(self, *args, **kwargs):
        for name, value in OrderedDict(*args, **kwargs).items():
            self[name] = value

    def __reduce__(self):
        return OrderedDict, (list(self.items()),)


class _CallState:
    """What a module call with hooks has reached, for its always_call hooks should it raise."""

    __slots__ = ("args", "kwargs", "result", "called")

    def __init__(self, args: tuple, kwargs: dict):
        self.args, self.kwargs, self.result, self.called = args, kwargs, None, set()


class Module:
    """Base class of layers, as ``torch.nn.Module``: attributes that are Parameters, Modules or
    registered buffers are found by ``parameters()``, ``modules()``, ``buffers()``,
    ``state_dict()`` and moved or cast by ``to()``."""

    # The format version of this class's state (a subclass that changes its format raises it):
    # ``state_dict`` records it per module in ``_metadata``, and ``load_state_dict`` hands it
    # to ``_load_from_state_dict`` as ``local_metadata["version"]``, as PyTorch's do.
    _version: int = 1

    def __init__(self):
        object.__setattr__(self, "_parameters", _Registry(owner=self))
        object.__setattr__(self, "_buffers", _Registry(owner=self))
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", _Registry(owner=self))
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        """Follows ``torch.nn.Module.__setattr__``: a Parameter is registered as a parameter and a
        Module as a child (either replacing a buffer, parameter or child of that name); a name
        already registered keeps its kind and its place in the order, so it takes only a value of
        that kind (a tensor for a buffer) or None, and raises ``TypeError`` for another, with
        PyTorch's message. Other values are plain attributes. Raises ``AttributeError`` for a
        Parameter or Module assigned before ``Module.__init__()``."""
        parameters = self.__dict__.get("_parameters")
        if parameters is None:  # before Module.__init__: plain attributes only, as PyTorch
            if isinstance(value, (Parameter, Module)):
                kind = "parameters" if isinstance(value, Parameter) else "module"
                raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
            object.__setattr__(self, name, value)
            return
        if name in _REGISTRIES and isinstance(value, Mapping):
            self._replace_registry(name, value)
            return
        if isinstance(value, Parameter):
            if isinstance(getattr(type(self), name, None), property):  # a parametrized tensor (parametrize)
                raise KeyError(f"attribute '{name}' already exists")
            self._unregister_but(name, parameters)
            parameters[name] = value
        elif name in parameters:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{_typename(value)}' as parameter '{name}' (torch.nn.Parameter or None expected)"
                )
            parameters[name] = None
        elif isinstance(value, Module):
            self._unregister_but(name, self._modules)
            self._modules[name] = value
        elif name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{_typename(value)}' as child module '{name}' (torch.nn.Module or None expected)"
                )
            self._modules[name] = None
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign '{_typename(value)}' as buffer '{name}' "
                    "(torch.nn.Buffer, torch.Tensor or None expected)"
                )
            self._buffers[name] = value
        object.__setattr__(self, name, value)  # the attribute mirrors the registries: no __getattr__

    def _replace_registry(self, key: str, entries: Mapping) -> None:
        """``module._parameters = {...}`` (and ``_buffers``, ``_modules``): the new entries, bound
        to this module, replace the old ones' attributes. MAML code swaps a clone's dict so
        (learn2learn's ``clone_module``, ``update_module``): kept as a plain dict, its changes
        never reached the attributes forward reads, and the inner step was lost, silently."""
        old = self.__dict__.get(key)
        registry = entries if isinstance(entries, _Registry) and entries._owner() is self else None
        if registry is None:
            registry = _Registry(owner=self)
            OrderedDict.update(registry, entries)
        if old is not None:
            for name in old:
                if name not in registry and name in self.__dict__:
                    del self.__dict__[name]
        object.__setattr__(self, key, registry)
        self.__dict__.update(registry)

    def _unregister_but(self, name: str, kept: OrderedDict) -> None:
        """Unregister ``name`` as a parameter, buffer or child, except in ``kept`` (the registry
        it is assigned to, where it keeps its place)."""
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not kept:
                registry.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __delattr__(self, name):
        registered = False
        for registry in (self._parameters, self._buffers, self._modules):
            registered = registry.pop(name, _ABSENT) is not _ABSENT or registered
        self._non_persistent_buffers.discard(name)
        if not registered or name in self.__dict__:  # (a registry's pop removed the attribute)
            object.__delattr__(self, name)

    def __setstate__(self, state):
        """A copy's or an unpickled module's state, its registries bound to it (``_Registry``)."""
        self.__dict__.update(state)
        for key in ("_parameters", "_buffers", "_modules"):
            registry = state.get(key)
            if registry is not None and not isinstance(registry, _Registry):
                object.__setattr__(self, key, _Registry(registry, owner=self))

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    # (class-level empty registries: a module unpickled from before these existed has none)
    _backward_hooks: OrderedDict = OrderedDict()
    _backward_pre_hooks: OrderedDict = OrderedDict()

    _with_kwargs: frozenset = frozenset()  # ids of hooks registered with_kwargs (an instance's set once any is)
    _always_called: frozenset = frozenset()  # ids of forward hooks registered always_call

    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._forward_hooks or self._backward_hooks or self._backward_pre_hooks):
            return self.forward(*args, **kwargs)  # the common call: no copies
        state = _CallState(args, kwargs)
        try:
            return self._call_with_hooks(state)
        except Exception:
            # PyTorch's always_call: each such forward hook not run yet runs once an exception
            # is raised anywhere in the call (a pre-hook, forward, an earlier hook), with the
            # output so far (None before forward returned); what it raises is only warned of.
            with_kwargs, args, kwargs, result = self._with_kwargs, state.args, state.kwargs, state.result
            for key, hook in list(self._forward_hooks.items()):
                if key in self._always_called and key not in state.called:
                    try:
                        changed = hook(self, args, kwargs, result) if key in with_kwargs else hook(self, args, result)
                        if changed is not None:
                            result = changed
                    except Exception as error:  # noqa: BLE001 - PyTorch's: the first error is raised
                        warnings.warn(
                            "module forward hook with ``always_call=True`` raised an exception that was silenced as "
                            f"another error was raised in forward: {error}",
                            stacklevel=2,
                        )
            raise

    def _call_with_hooks(self, state: _CallState):
        """``__call__`` with hooks: pre-hooks, forward, forward hooks, recording in ``state``
        the arguments, the output so far and the always_call hooks that ran."""
        with_kwargs = self._with_kwargs
        for key, hook in list(self._forward_pre_hooks.items()):
            if key in with_kwargs:
                changed = hook(self, state.args, state.kwargs)
                if changed is not None:
                    if not (isinstance(changed, tuple) and len(changed) == 2):
                        raise RuntimeError(
                            f"forward pre-hook must return None or a tuple of (new_args, new_kwargs), but got {changed}."
                        )
                    state.args, state.kwargs = changed
            else:
                changed = hook(self, state.args)
                if changed is not None:
                    state.args = changed if isinstance(changed, tuple) else (changed,)
        args, kwargs = state.args, state.kwargs
        backward = None
        # (inside tapegrad.record the hooks' node refuses to be recorded: a replay would run none)
        if (self._backward_hooks or self._backward_pre_hooks) and is_grad_enabled():
            backward = BackwardHooks(self, list(self._backward_hooks.values()), list(self._backward_pre_hooks.values()))
            args = backward.wrap_inputs(args)
        state.result = self.forward(*args, **kwargs)
        for key, hook in list(self._forward_hooks.items()):
            if key in self._always_called:
                state.called.add(key)
            changed = hook(self, args, kwargs, state.result) if key in with_kwargs else hook(self, args, state.result)
            if changed is not None:
                state.result = changed
        return state.result if backward is None else backward.wrap_outputs(state.result)

    # -- registration ---------------------------------------------------------------------

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Keep ``tensor`` (not a parameter: no gradient) as ``self.<name>``, in ``buffers()``,
        moved and cast by ``to()``, and in ``state_dict()`` when ``persistent``. Raises
        ``KeyError``/``TypeError`` for a bad name or value, as PyTorch does."""
        _check_name(self, name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{_typename(tensor)}' object to buffer '{name}' (torch Tensor or None required)"
            )
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, tensor)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` as ``self.<name>`` (None: a parameter slot left empty)."""
        _check_name(self, name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{_typename(param)}' object to parameter '{name}' (torch.nn.Parameter or None required)"
            )
        self._buffers.pop(name, None)
        self._modules.pop(name, None)
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the child ``self.<name>``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        _check_name(self, name, "module")
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._modules[name] = module
        object.__setattr__(self, name, module)

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        """The module at the dotted path ``target`` ("" is this one)."""
        module = self
        for part in target.split(".") if target else ():
            if part not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no attribute `{part}`")
            module = module._modules[part]
        return module

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at the dotted path ``target``; follows ``torch.nn.Module.get_parameter``
        (its ``AttributeError`` for a missing name or one that is not a parameter)."""
        return self._get_entry(target, "_parameters", "an nn.Parameter")

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at the dotted path ``target``; follows ``torch.nn.Module.get_buffer``."""
        return self._get_entry(target, "_buffers", "a buffer")

    def _get_entry(self, target: str, registry: str, kind: str):
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if not hasattr(module, name):
            raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
        if name not in getattr(module, registry):
            raise AttributeError(f"`{name}` is not {kind}")
        return getattr(module, registry)[name]

    def register_forward_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False):  # fmt: skip
        """``hook(module, args, output)`` (``with_kwargs``: ``hook(module, args, kwargs,
        output)``) after each call; a returned value replaces the output. ``prepend``: before
        the hooks registered so far; ``always_call``: also when the forward raises (with output
        None). Follows ``torch.nn.Module.register_forward_hook``."""
        handle = self._hook(self._forward_hooks, hook, prepend, with_kwargs)
        if always_call:
            self._own_set("_always_called").add(handle.id)
        return handle

    def register_forward_pre_hook(self, hook, *, prepend: bool = False, with_kwargs: bool = False):
        """``hook(module, args)`` before each call, a returned value replacing the arguments;
        ``with_kwargs``: ``hook(module, args, kwargs)``, returning None or ``(args, kwargs)``.
        ``prepend``: before the hooks registered so far. Follows
        ``torch.nn.Module.register_forward_pre_hook``."""
        return self._hook(self._forward_pre_hooks, hook, prepend, with_kwargs)

    def _hook(self, registry: OrderedDict, hook, prepend: bool, with_kwargs: bool) -> _HookHandle:
        handle = _HookHandle(registry, hook)
        if prepend:
            registry.move_to_end(handle.id, last=False)
        if with_kwargs:
            self._own_set("_with_kwargs").add(handle.id)
        return handle

    def _own_set(self, name: str) -> set:
        """This module's set ``name`` (the class's empty one until a hook needs it)."""
        if name not in self.__dict__:
            object.__setattr__(self, name, set())
        return self.__dict__[name]

    def register_full_backward_hook(self, hook, prepend: bool = False):
        """``hook(module, grad_input, grad_output)`` once the gradients with respect to the
        module's tensor inputs are computed (None for an input without grad); a returned tuple
        replaces ``grad_input``. ``prepend``: before the hooks registered so far. Follows
        ``torch.nn.Module.register_full_backward_hook`` (see ``nn/_backward_hooks.py`` for the
        one difference: with several inputs taking a gradient, only the first positional one's
        can be replaced)."""
        if "_backward_hooks" not in self.__dict__:
            object.__setattr__(self, "_backward_hooks", OrderedDict())
        return self._hook(self._backward_hooks, hook, prepend, False)

    def register_full_backward_pre_hook(self, hook, prepend: bool = False):
        """``hook(module, grad_output)`` once the gradients with respect to the module's
        outputs are computed, before those with respect to its inputs; a returned tuple
        replaces ``grad_output``. ``prepend``: before the hooks registered so far. Follows
        ``torch.nn.Module.register_full_backward_pre_hook``."""
        if "_backward_pre_hooks" not in self.__dict__:
            object.__setattr__(self, "_backward_pre_hooks", OrderedDict())
        return self._hook(self._backward_pre_hooks, hook, prepend, False)

    # -- traversal ------------------------------------------------------------------------

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named("_parameters", prefix, recurse, remove_duplicate)

    def _named(self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool):
        """(dotted name, tensor) of each entry of ``registry`` here and, with ``recurse``, below."""
        seen = set()
        # (remove_duplicate=False: a module registered twice is walked twice too, as PyTorch's)
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, tensor in getattr(module, registry).items():
                if tensor is None or (remove_duplicate and id(tensor) in seen):
                    continue
                seen.add(id(tensor))
                yield (module_prefix + "." if module_prefix else "") + name, tensor

    def parameters(self, recurse: bool = True):
        for _, parameter in self.named_parameters(recurse=recurse):
            yield parameter

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """``(name, module)`` of this module and every descendant, depth first; with
        ``remove_duplicate``, each module once, skipping those in ``memo`` (a set of modules,
        which the walk adds to). Follows ``torch.nn.Module.named_modules``."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def apply(self, fn):
        """Call ``fn`` on every submodule, children first, then on this one; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- modes, gradients -----------------------------------------------------------------

    def train(self, mode: bool = True):
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        # Each child's own train(), as PyTorch calls it: a module that overrides train() (to keep
        # its BatchNorm in eval mode, say) keeps its choice when its parent is switched.
        object.__setattr__(self, "training", mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        """Set ``requires_grad`` of every parameter; returns self."""
        for parameter in self.parameters():
            parameter.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for parameter in self.parameters():
            if set_to_none:
                parameter.grad = None
            elif parameter.grad is not None:
                parameter.grad.zero_()

    # -- devices and dtypes ---------------------------------------------------------------

    def to(self, *args, **kwargs):
        """Move to a device (the CPU; others raise as ``tapegrad.device`` checks) and/or cast
        floating-point parameters and buffers to a floating dtype, in place (parameters stay the
        same objects, as optimizers hold them); returns self. Follows ``torch.nn.Module.to``."""
        _, dtype, _ = to_arguments(args, dict(kwargs))
        if dtype is not None:
            if not dtype.is_floating_point:
                raise TypeError(
                    f"nn.Module.to only accepts floating point or complex dtypes, but got desired dtype={dtype}"
                )
            self._cast(dtype)
        return self

    def cpu(self):
        """Self (tapegrad computes on the CPU); follows ``torch.nn.Module.cpu``."""
        return self

    def cuda(self, device=None):
        """Raises ``AssertionError("Torch not compiled with CUDA enabled")`` as a CPU-only PyTorch does."""
        raise AssertionError(_device.NO_CUDA)

    def float(self):  # noqa: A003
        """Floating-point parameters and buffers as float32; returns self."""
        return self._cast(_dtypes.float32)

    def double(self):
        """Floating-point parameters and buffers as float64; returns self."""
        return self._cast(_dtypes.float64)

    def _cast(self, dtype):
        for module in self.modules():
            for registry in (module._parameters, module._buffers):
                for tensor in registry.values():
                    # (one already of the dtype stays as it is: copied, weights tied by memory came apart)
                    if tensor is not None and tensor.is_floating_point() and tensor._data.dtype != dtype.numpy:
                        tensor.data = _wrap(tensor._data.astype(dtype.numpy))
                        if tensor.grad is not None:
                            tensor.grad = tensor.grad.to(dtype)
        return self

    # -- state ----------------------------------------------------------------------------

    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
        """Parameters and persistent buffers by dotted name (detached unless ``keep_vars``),
        and the value of ``get_extra_state`` (as ``_extra_state``) where a class defines it,
        each module's own then its children's under their names, as PyTorch walks them: a
        module registered under two names (a layer applied twice) is saved under both."""
        if destination is None:
            state = OrderedDict()
            state._metadata = OrderedDict()
        else:
            state = destination
        if hasattr(state, "_metadata"):  # (each module's format version: migration code reads it)
            state._metadata[prefix[:-1]] = {"version": self._version}
        self._save_to_state_dict(state, prefix, keep_vars)
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(destination=state, prefix=f"{prefix}{name}.", keep_vars=keep_vars)
        return state

    def _save_to_state_dict(self, destination, prefix: str, keep_vars: bool) -> None:
        """This module's own parameters, persistent buffers and extra state into ``destination``."""
        for name, parameter in self._parameters.items():
            if parameter is not None:
                keep = keep_vars or isinstance(parameter, UninitializedParameter)
                destination[prefix + name] = parameter if keep else parameter.detach()
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers:
                destination[prefix + name] = buffer if keep_vars else buffer.detach()
        if type(self).get_extra_state is not Module.get_extra_state:
            destination[prefix + _EXTRA_STATE] = self.get_extra_state()

    def get_extra_state(self):
        """What ``state_dict`` saves beside the tensors (a subclass defines it, with
        ``set_extra_state``); follows ``torch.nn.Module.get_extra_state``, which raises too."""
        raise RuntimeError(
            "Reached a code path in Module.get_extra_state() that should never be called. Please file an issue "
            "at https://github.com/pytorch/pytorch/issues/new?template=bug-report.yml to report this bug."
        )

    def set_extra_state(self, state) -> None:
        """Restore what ``get_extra_state`` returned; follows ``torch.nn.Module.set_extra_state``."""
        raise RuntimeError(
            "Reached a code path in Module.set_extra_state() that should never be called. Please file an issue "
            "at https://github.com/pytorch/pytorch/issues/new?template=bug-report.yml to report this bug."
        )

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy values into parameters and persistent buffers by name; with ``assign``, make
        the given tensors the parameters (keeping each parameter's requires_grad) and buffers,
        their dtype and memory with them, as PyTorch does. Each module loads its own entries
        (``_load_from_state_dict``, which a subclass may override to rename old keys), then
        its children theirs, as PyTorch's: every entry that fits is loaded before an error is
        raised. Raises ``TypeError`` for a ``state_dict`` that is not a mapping and
        ``RuntimeError`` listing every missing and unexpected key (``strict``) and every size
        mismatch, with PyTorch's messages. Returns ``(missing_keys, unexpected_keys)``."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        for prefix, module in self.named_modules(remove_duplicate=False):
            if isinstance(module, _Lazy):  # (lazy layers anywhere in the model, as PyTorch's hook)
                module._materialize_for(state_dict, f"{prefix}." if prefix else "")
        missing, unexpected, errors = [], [], []
        metadata = {"assign_to_params_buffers": True} if assign else {}
        versions = getattr(state_dict, "_metadata", None) or {}  # (``state_dict``'s, by module prefix)
        state_dict = OrderedDict(state_dict)

        def load(module, entries, prefix):
            local = {**versions.get(prefix[:-1], {}), **metadata}
            module._load_from_state_dict(entries, prefix, local, True, missing, unexpected, errors)
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = f"{prefix}{name}."
                    load(child, {k: v for k, v in entries.items() if k.startswith(child_prefix)}, child_prefix)

        load(self, state_dict, "")
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        return _IncompatibleKeys(missing, unexpected)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        """This module's own entries of ``state_dict`` (keys ``prefix`` + name): copied into its
        parameters and persistent buffers (made them, with ``local_metadata``'s
        ``assign_to_params_buffers``), its extra state restored; what is missing, unexpected
        (``strict``) or does not fit is appended to the lists. Follows
        ``torch.nn.Module._load_from_state_dict``, which subclasses override."""
        own = [(name, value) for name, value in self._parameters.items() if value is not None]
        own += [
            (name, value)
            for name, value in self._buffers.items()
            if value is not None and name not in self._non_persistent_buffers
        ]
        assign = local_metadata.get("assign_to_params_buffers", False)
        for name, current in own:
            key = prefix + name
            if key not in state_dict:
                if strict:
                    missing_keys.append(key)
                continue
            given = state_dict[key]
            if not isinstance(given, (Tensor, np.ndarray)):
                error_msgs.append(
                    f'While copying the parameter named "{key}", expected tapegrad.Tensor or Tensor-like object from '
                    f"checkpoint but received {type(given)}"
                )
                continue
            values = given._data if isinstance(given, Tensor) else given
            if current.dim() == 0 and values.ndim == 1 and values.shape[0] == 1:  # (PyTorch 0.3's 1-element)
                values = values.reshape(())
            if values.shape != current.shape:
                error_msgs.append(
                    f"size mismatch for {key}: copying a param with shape {_factories.tensor(values).shape} from "
                    f"checkpoint, the shape in current model is {current.shape}."
                )
                continue
            if assign:
                value = given if isinstance(given, Tensor) and given._data is values else _factories.tensor(values)
                self._assign(name, current, value)
            else:
                current._data[...] = values
                # an in-place change, as PyTorch's copy_: a backward that saved the old values raises
                _bump_version(current)
        extra = prefix + _EXTRA_STATE
        if type(self).set_extra_state is not Module.set_extra_state:
            if extra in state_dict:
                self.set_extra_state(state_dict[extra])
            elif strict:
                missing_keys.append(extra)
        elif strict and extra in state_dict:
            unexpected_keys.append(extra)
        if strict:
            names = {name for name, _ in own}
            for key in state_dict:
                if key.startswith(prefix) and key != extra:
                    head, *rest = key[len(prefix) :].split(".", 1)
                    if (head not in self._modules) if rest else (head not in names):
                        unexpected_keys.append(key)

    def _assign(self, name: str, current: Tensor, value: Tensor) -> None:
        """``load_state_dict(assign=True)`` of one entry: ``value`` itself takes the place of this
        module's ``name``."""
        if isinstance(current, Parameter):  # a Parameter given is kept itself, as PyTorch's
            if isinstance(value, Parameter):
                value.requires_grad_(current.requires_grad)
            else:
                value = Parameter(value, requires_grad=current.requires_grad)
        setattr(self, name, value)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        # As PyTorch's: each line of extra_repr, then each child indented; one extra line and
        # no child on the name's line
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = []
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            child_lines.append(f"({name}): {child_repr}")
        lines = extra_lines + child_lines
        if not lines:
            return f"{type(self).__name__}()"
        if len(extra_lines) == 1 and not child_lines:
            return f"{type(self).__name__}({extra_lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


_EXTRA_STATE = "_extra_state"  # the key of ``get_extra_state``'s value in a state dict
_ABSENT = object()


def _typename(value) -> str:
    """How PyTorch's messages name a value's type (``torch.typename``): a tensor's ``type()``
    (``'tapegrad.FloatTensor'``), a builtin's class name (``'int'``), else module.class."""
    if isinstance(value, Tensor):
        return value.type()
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _check_name(module: Module, name: str, kind: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain "."')
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    registries = {"buffer": module._buffers, "parameter": module._parameters, "module": module._modules}
    if hasattr(module, name) and name not in registries[kind]:
        raise KeyError(f"attribute '{name}' already exists")


class _IncompatibleKeys(tuple):
    """``(missing_keys, unexpected_keys)``, printed as PyTorch prints it."""

    def __new__(cls, missing, unexpected):
        result = super().__new__(cls, (missing, unexpected))
        result.missing_keys, result.unexpected_keys = missing, unexpected
        return result

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


class _HookHandle:
    """What ``register_*_hook`` returns: ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, registry: OrderedDict, hook):
        _HookHandle._next_id += 1
        self.id = _HookHandle._next_id
        self._registry = registry
        registry[self.id] = hook

    def remove(self) -> None:
        self._registry.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Linear(Module):
    """``y = x @ weight.T + bias``, initialised as PyTorch does (uniform in +-1/sqrt(in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(_factories.empty(out_features, in_features, dtype=dtype))
        self.bias = Parameter(_factories.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _Uninitialized:
    """What ``UninitializedParameter`` and ``UninitializedBuffer`` share (PyTorch's
    ``UninitializedTensorMixin``): ``materialize(shape)`` gives the tensor uninitialised values
    of that shape and turns it into its class ``_becomes``, the same object (so an optimizer or
    module holding it sees the values)."""

    __slots__ = ()
    _becomes: type = Tensor

    def materialize(self, shape, device=None, dtype=None) -> None:
        """Become a tensor (a ``Parameter`` for a parameter) of ``shape``."""
        numpy_type = _dtypes.as_dtype(dtype).numpy if dtype is not None else self._data.dtype
        self._data = np.empty(tuple(shape), numpy_type)
        self.__class__ = self._becomes

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    __str__ = __repr__


class UninitializedParameter(_Uninitialized, Parameter):
    """A parameter whose shape is not known yet (a lazy module's before its first call); follows
    ``torch.nn.UninitializedParameter``."""

    _becomes = Parameter

    def __init__(self, requires_grad: bool = True, device=None, dtype=None):
        super().__init__(np.empty(0, _dtypes.as_dtype(dtype or _dtypes.DEFAULT_FLOAT).numpy), requires_grad)

    def __deepcopy__(self, memo):
        if id(self) not in memo:
            memo[id(self)] = type(self)(self.requires_grad, dtype=self.dtype)
        return memo[id(self)]


class UninitializedBuffer(_Uninitialized, Tensor):
    """A buffer whose shape is not known yet (a lazy module's before its first call); follows
    ``torch.nn.UninitializedBuffer``."""

    __slots__ = ()  # (Tensor's layout: the class changes to Tensor in place)

    def __init__(self, requires_grad: bool = False, device=None, dtype=None):
        dtype = _dtypes.as_dtype(dtype or _dtypes.DEFAULT_FLOAT)  # (Tensor(array) alone would be float32)
        super().__init__(np.empty(0, dtype.numpy), dtype=dtype)


class _Lazy:
    """What lazy modules share, as PyTorch's: the first call materializes the weight (and
    bias) from the input (``_input_size``, ``_weight_shape``), initialises them and turns the
    module into its eager class (``_eager``); ``load_state_dict`` before it materializes them
    with the checkpoint's shapes and loads them, and the module stays lazy until its call."""

    _eager: type = None  # the class the module becomes at its first call
    _size = ""  # the attribute the first input decides: 0 until then

    def reset_parameters(self) -> None:
        if not isinstance(self.weight, UninitializedParameter) and getattr(self, self._size) != 0:
            super().reset_parameters()

    def __call__(self, input: Tensor, *args, **kwargs):  # noqa: A002
        if isinstance(self.weight, UninitializedParameter):
            size = self._input_size(input)
            self.weight.materialize(self._weight_shape(size))
            if self.bias is not None:
                self.bias.materialize(self.weight.shape[:1])
            setattr(self, self._size, size)
            self.reset_parameters()
        else:  # materialized by load_state_dict: its values stay
            setattr(self, self._size, self._size_of_weight())
        self.__class__ = self._eager
        return Module.__call__(self, input, *args, **kwargs)

    def _materialize_for(self, state_dict, prefix: str) -> None:
        """Give each uninitialized parameter the shape of its value in ``state_dict``, so that
        a trained model's weights load into a lazy one not yet called."""
        for name, parameter in self._parameters.items():
            value = state_dict.get(prefix + name)
            if isinstance(parameter, UninitializedParameter) and isinstance(value, Tensor):
                parameter.materialize(value.shape)


class LazyLinear(_Lazy, Linear):
    """A ``Linear`` whose ``in_features`` is the last dimension of its first input: until that
    call its weight and bias are ``UninitializedParameter``s and it prints with
    ``in_features=0``; the call (or ``load_state_dict``) materializes them, initialises them as
    ``Linear`` does, and turns the module into a ``Linear``. Follows ``torch.nn.LazyLinear``."""

    def __init__(self, out_features: int, bias: bool = True, device=None, dtype=None):
        Module.__init__(self)
        self.in_features, self.out_features = 0, out_features
        self.weight = UninitializedParameter(dtype=dtype)
        self.bias = UninitializedParameter(dtype=dtype) if bias else None

    _eager, _size = Linear, "in_features"

    def _input_size(self, input: Tensor) -> int:  # noqa: A002
        return input.shape[-1] if input.dim() else 1

    def _weight_shape(self, size: int) -> tuple:
        return (self.out_features, size)

    def _size_of_weight(self) -> int:
        return self.weight.shape[1]


class SmoothL1Loss(Module):
    """``F.smooth_l1_loss`` as a module; follows ``torch.nn.SmoothL1Loss``."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__()
        self.reduction = F._legacy_reduction(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


def _position(container: Module, idx) -> int:
    """``idx`` (an int, possibly negative) as a position in ``container``; raises ``IndexError``
    (``"index 5 is out of range"``) as PyTorch's containers do."""
    idx = operator.index(idx)
    if not -len(container) <= idx < len(container):
        raise IndexError(f"index {idx} is out of range")
    return idx % len(container)


def _renumber(container: Module) -> None:
    """Name ``container``'s children "0", "1"... in their order, as PyTorch's Sequential and
    ModuleList do after a deletion (here the attributes, which mirror ``_modules``, too)."""
    modules = list(container._modules.values())
    for key in container._modules:
        container.__dict__.pop(key, None)
    container._modules.clear()
    for index, module in enumerate(modules):
        container._modules[str(index)] = module
        object.__setattr__(container, str(index), module)


class _Numbered(Module):
    """What Sequential and ModuleList share: children in order, addressed by position (their
    names "0", "1"... unless a Sequential was built from an OrderedDict)."""

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, list(self._modules)[_position(self, idx)], module)

    def __delitem__(self, idx) -> None:
        keys = list(self._modules)
        for key in keys[idx] if isinstance(idx, slice) else [keys[_position(self, idx)]]:
            delattr(self, key)
        _renumber(self)

    def append(self, module: Module):
        self.add_module(str(len(self)), module)
        return self

    def pop(self, key):
        module = self[key]
        del self[key]
        return module

    def _shift_in(self, index: int, module: Module) -> None:
        """``module`` at ``index``, the later ones' numbers shifted up as PyTorch shifts them
        (so that named children, or a negative index in a ModuleList, raise its KeyError)."""
        for i in range(len(self._modules), index, -1):
            self.add_module(str(i), self._modules[str(i - 1)])
        self.add_module(str(index), module)


class Sequential(_Numbered):
    """Modules called in order, each on the previous one's output; follows ``torch.nn.Sequential``.
    Built from modules (named "0", "1"...) or from one ``OrderedDict`` (named by its keys). A
    slice is a Sequential keeping the names; deleting renumbers the rest "0", "1"... as
    PyTorch does. Raises ``TypeError`` for an element that is not a Module, ``IndexError`` for
    an index out of range, ``ValueError`` for ``+`` with another type and for a factor ``<= 0``,
    with PyTorch's messages."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self.add_module(key, module)
        else:
            for index, module in enumerate(args):
                self.add_module(str(index), module)

    def forward(self, input):  # noqa: A002
        for module in self:
            input = module(input)  # noqa: A001
        return input

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self.__class__(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_position(self, idx)]

    def __add__(self, other) -> Sequential:
        return Sequential().extend(self).__iadd__(other)

    def __iadd__(self, other) -> Sequential:
        if not isinstance(other, Sequential):
            raise ValueError(f"add operator supports only objects of Sequential class, but {type(other)} is given.")
        return self.extend(other)

    def __mul__(self, other: int) -> Sequential:
        return Sequential(*self).__imul__(other)

    __rmul__ = __mul__

    def __imul__(self, other: int) -> Sequential:
        if not isinstance(other, int):
            raise TypeError(f"unsupported operand type(s) for *: {type(self)} and {type(other)}")
        if other <= 0:
            raise ValueError(f"Non-positive multiplication factor {other} for {type(self)}")
        return self.extend(list(self) * (other - 1))

    def insert(self, index: int, module: Module) -> Sequential:
        """Insert before position ``index``, shifting the later ones' numbers up. Raises
        ``AssertionError`` for a non-Module and ``IndexError`` outside ``[-len, len]``, as PyTorch."""
        if not isinstance(module, Module):
            raise AssertionError(f"module should be of type: {Module}")
        n = len(self._modules)
        if not -n <= index <= n:
            raise IndexError(f"Index out of range: {index}")
        self._shift_in(index + n if index < 0 else index, module)
        return self

    def extend(self, sequential) -> Sequential:
        for module in sequential:
            self.append(module)
        return self


class ModuleList(_Numbered):
    """Modules held in a list and registered (``"0"``, ``"1"``...); follows ``torch.nn.ModuleList``:
    indexing, assignment, deletion (renumbering the rest), ``insert``, ``pop``, ``+`` and ``+=``.
    Raises ``IndexError`` for an index out of range and ``TypeError`` for a non-Module or
    ``extend`` with a non-iterable, with PyTorch's messages."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self += modules

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self.__class__(list(self._modules.values())[idx])
        return self._modules[str(_position(self, idx))]

    def __iadd__(self, modules) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other) -> ModuleList:
        return ModuleList(chain(self, other))

    def extend(self, modules) -> ModuleList:
        if not isinstance(modules, Iterable):
            raise TypeError(f"ModuleList.extend should be called with an iterable, but got {type(modules).__name__}")
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert before position ``index``, shifting the later ones' numbers up (PyTorch's shift)."""
        self._shift_in(index, module)

    def __repr__(self) -> str:
        """PyTorch's: a run of equal children printed once, as ``(0-2): 3 x Linear(...)``."""
        runs = []  # [first, last, repr]
        for index, module in enumerate(self):
            text = repr(module)
            if runs and runs[-1][2] == text:
                runs[-1][1] = index
            else:
                runs.append([index, index, text])
        if not runs:
            return f"{type(self).__name__}()"
        lines = [
            f"({first}): {text}" if first == last else f"({first}-{last}): {last - first + 1} x {text}"
            for first, last, text in runs
        ]
        return f"{type(self).__name__}(\n  " + "\n  ".join(line.replace("\n", "\n  ") for line in lines) + "\n)"


class ModuleDict(Module):
    """Modules held by name and registered; follows ``torch.nn.ModuleDict``. ``update`` takes a
    mapping or (key, module) pairs and raises ``TypeError``/``ValueError`` for others, with
    PyTorch's messages."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def clear(self) -> None:
        for key in list(self._modules):
            del self[key]

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules) -> None:
        if not isinstance(modules, Iterable):
            raise TypeError(
                "ModuleDict.update should be called with an iterable of key/value pairs, but got "
                + type(modules).__name__
            )
        if isinstance(modules, (Mapping, ModuleDict)):
            for key, module in modules.items():
                self[key] = module
            return
        for j, pair in enumerate(modules):
            if not isinstance(pair, Iterable):
                raise TypeError(f"ModuleDict update sequence element #{j} should be Iterable; is{type(pair).__name__}")
            if len(pair) != 2:
                raise ValueError(f"ModuleDict update sequence element #{j} has length {len(pair)}; 2 is required")
            self[pair[0]] = pair[1]


class ParameterList(Module):
    """Parameters held in a list and registered (``"0"``, ``"1"``...); follows
    ``torch.nn.ParameterList``: a tensor added is made a Parameter unless it is one, and any
    other object is kept as it is, unregistered (a number was made a Parameter of that many
    zeros); a slice is a ParameterList. Raises ``IndexError`` for an index out of range,
    ``TypeError`` for ``extend`` with a non-iterable or a tensor, and ``RuntimeError`` when
    called, as PyTorch does."""

    def __init__(self, values=None):
        super().__init__()
        self._size = 0
        if values is not None:
            self += values

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self.__class__(list(self)[idx])
        return getattr(self, str(_position(self, idx)))

    def __setitem__(self, idx: int, value) -> None:
        if isinstance(value, Tensor) and not isinstance(value, Parameter):
            value = Parameter(value)
        setattr(self, str(_position(self, idx)), value)

    def __len__(self) -> int:
        return self._size

    def __iter__(self):
        return iter([self[index] for index in range(len(self))])

    def __iadd__(self, values) -> ParameterList:
        return self.extend(values)

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterList should not be called.")

    def extra_repr(self) -> str:
        """Each parameter's kind, dtype and size (another object's type), as PyTorch's
        ParameterList prints them."""
        lines = []
        for index, value in enumerate(self):
            if not isinstance(value, Tensor):
                lines.append(f"  ({index}): Object of type: {type(value).__name__}")
                continue
            size = "x".join(str(extent) for extent in value.shape)
            kind = "Parameter" if isinstance(value, Parameter) else "Tensor"
            lines.append(f"  ({index}): {kind} containing: [{value.dtype} of size {size}]")
        return "\n".join(lines)

    def append(self, value) -> ParameterList:
        self._size += 1
        self[self._size - 1] = value
        return self

    def extend(self, values) -> ParameterList:
        if not isinstance(values, Iterable) or isinstance(values, Tensor):  # a tensor is not unpacked
            raise TypeError(f"ParameterList.extend should be called with an iterable, but got {type(values).__name__}")
        for value in values:
            self.append(value)
        return self


def bound_options(name: str, defaults: dict, args: tuple, kwargs: dict) -> dict:
    """A generated module's constructor arguments bound to its options ``defaults``, positionally
    or by name, with Python's ``TypeError`` for too many or an unknown one."""
    if len(args) > len(defaults):
        raise TypeError(f"{name}.__init__() takes {len(defaults)} positional arguments but {len(args)} were given")
    options = dict(defaults)
    options.update(zip(defaults, args))
    for key, value in kwargs.items():
        if key not in defaults:
            raise TypeError(f"{name}.__init__() got an unexpected keyword argument '{key}'")
        options[key] = value
    return options


def _activation(name: str, function, extra_repr=lambda options: "", check=None, **defaults):
    """A module class applying ``function`` with keyword ``defaults`` (``inplace``,
    ``approximate``...) settable at construction, positionally or by name, as PyTorch's;
    ``check(options)`` raises for options PyTorch's constructor refuses."""

    def init(self, *args, **kwargs):
        Module.__init__(self)
        options = bound_options(name, defaults, args, kwargs)
        if check is not None:
            check(options)
        for key, value in options.items():
            object.__setattr__(self, key, value)

    def forward(self, input):  # noqa: A002
        return function(input, **{key: getattr(self, key) for key in defaults})

    return type(
        name,
        (Module,),
        {
            "__init__": init,
            "forward": forward,
            "extra_repr": lambda self: extra_repr({key: getattr(self, key) for key in defaults}),
            "__doc__": f"``{name}()(x)`` applies {function.__name__} elementwise; follows ``torch.nn.{name}``.",
        },
    )


def _ordered_bounds(options: dict) -> None:
    """PyTorch's ``Hardtanh`` asserts its bounds at construction (``F.hardtanh`` raises ValueError)."""
    if not options["max_val"] > options["min_val"]:
        raise AssertionError(f"max_val ({options['max_val']}) must be greater than min_val ({options['min_val']})")


def _inplace_repr(options: dict) -> str:
    return "inplace=True" if options["inplace"] else ""


ReLU = _activation("ReLU", F.relu, _inplace_repr, inplace=False)
Tanh = _activation("Tanh", F.tanh)
Sigmoid = _activation("Sigmoid", F.sigmoid)
Softplus = _activation(
    "Softplus", F.softplus, lambda o: f"beta={o['beta']}, threshold={o['threshold']}", beta=1.0, threshold=20.0
)
GELU = _activation("GELU", F.gelu, lambda o: f"approximate={o['approximate']!r}", approximate="none")
SiLU = _activation("SiLU", F.silu, _inplace_repr, inplace=False)
Hardtanh = _activation(
    "Hardtanh",
    F.hardtanh,
    lambda o: f"min_val={o['min_val']}, max_val={o['max_val']}" + (", inplace=True" if o["inplace"] else ""),
    _ordered_bounds,
    min_val=-1.0,
    max_val=1.0,
    inplace=False,
)


class ReLU6(Hardtanh):
    """``F.relu6`` as a module: ``Hardtanh(0, 6)``, as PyTorch's; follows ``torch.nn.ReLU6``."""

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


Hardsigmoid = _activation("Hardsigmoid", F.hardsigmoid, inplace=False)
Hardswish = _activation("Hardswish", F.hardswish, inplace=False)
LogSigmoid = _activation("LogSigmoid", F.logsigmoid)
Softsign = _activation("Softsign", F.softsign)
Mish = _activation("Mish", F.mish, _inplace_repr, inplace=False)
SELU = _activation("SELU", F.selu, _inplace_repr, inplace=False)
CELU = _activation(
    "CELU",
    F.celu,
    lambda o: f"alpha={o['alpha']}" + (", inplace=True" if o["inplace"] else ""),
    alpha=1.0,
    inplace=False,
)


def _loss_module(name: str, function, **defaults):
    """A loss module class calling ``function(*inputs, **options)``, its options (``margin``,
    ``reduction``...) settable at construction by name or position, as PyTorch's; follows
    ``torch.nn.<name>``."""
    activation = _activation(name, function, **defaults)

    def forward(self, *inputs):
        return function(*inputs, **{key: getattr(self, key) for key in defaults})

    activation.forward = forward
    if "size_average" in defaults:  # (with ``reduce`` and ``reduction``)
        init = activation.__init__

        @functools.wraps(init)
        def legacy_init(self, *args, **kwargs):
            init(self, *args, **kwargs)
            # PyTorch's ``_Loss``: the deprecated size_average and reduce become ``reduction``,
            # which the module reads from then on. Kept as given, they overrode a reduction set
            # later, and ``.reduction`` said "mean" of a loss summed.
            self.reduction = F._legacy_reduction(self.size_average, self.reduce, self.reduction)
            self.size_average = self.reduce = None

        activation.__init__ = legacy_init
    activation.__doc__ = f"``F.{function.__name__}`` as a module; follows ``torch.nn.{name}``."
    return activation


KLDivLoss = _loss_module("KLDivLoss", F.kl_div, size_average=None, reduce=None, reduction="mean", log_target=False)
CosineSimilarity = _loss_module("CosineSimilarity", F.cosine_similarity, dim=1, eps=1e-8)


class PairwiseDistance(Module):
    """``F.pairwise_distance`` as a module (its order ``p`` kept as ``norm``, as PyTorch's);
    follows ``torch.nn.PairwiseDistance``."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


MarginRankingLoss = _loss_module(
    "MarginRankingLoss", F.margin_ranking_loss, margin=0.0, size_average=None, reduce=None, reduction="mean"
)
CosineEmbeddingLoss = _loss_module(
    "CosineEmbeddingLoss", F.cosine_embedding_loss, margin=0.0, size_average=None, reduce=None, reduction="mean"
)
TripletMarginLoss = _loss_module(
    "TripletMarginLoss", F.triplet_margin_loss, margin=1.0, p=2.0, eps=1e-6, swap=False, size_average=None,
    reduce=None, reduction="mean",
)  # fmt: skip
HingeEmbeddingLoss = _loss_module(
    "HingeEmbeddingLoss", F.hinge_embedding_loss, margin=1.0, size_average=None, reduce=None, reduction="mean"
)
SoftMarginLoss = _loss_module("SoftMarginLoss", F.soft_margin_loss, size_average=None, reduce=None, reduction="mean")


class Identity(Module):
    """Returns its input; accepts and ignores any arguments; follows ``torch.nn.Identity``."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):  # noqa: A002
        return input


class LeakyReLU(Module):
    """``F.leaky_relu`` as a module; follows ``torch.nn.LeakyReLU``."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """``F.elu`` as a module; follows ``torch.nn.ELU``."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Softmax(Module):
    """``F.softmax`` along ``dim`` as a module; follows ``torch.nn.Softmax``."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """``F.log_softmax`` along ``dim`` as a module; follows ``torch.nn.LogSoftmax``."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.log_softmax(input, self.dim)


class Softmin(Softmax):
    """``F.softmin`` along ``dim`` as a module; follows ``torch.nn.Softmin``."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.softmin(input, self.dim)


class Flatten(Module):
    """``x.flatten(start_dim, end_dim)`` as a module; follows ``torch.nn.Flatten``."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


def _padding_row(padding_idx, num_embeddings: int, name: str):
    """``padding_idx`` as a row of the table (a negative one counted from the end), or None;
    ``AssertionError`` outside the table, with PyTorch's message (``name`` as it spells it)."""
    if padding_idx is None:
        return None
    assert -num_embeddings <= padding_idx < num_embeddings, f"{name} must be within num_embeddings"
    return padding_idx % num_embeddings


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of ``embedding_dim``, initialised from
    N(0, 1) with the ``padding_idx`` row zeros, as ``torch.nn.Embedding`` (``F.embedding`` gives
    the arguments' meaning). Raises ``AssertionError`` for a ``padding_idx`` out of range."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None, max_norm=None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False, _weight=None,
                 _freeze: bool = False, device=None, dtype=None):  # fmt: skip
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        padding_idx = _padding_row(padding_idx, num_embeddings, "Padding_idx")
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(
                _factories.empty(num_embeddings, embedding_dim, dtype=dtype), requires_grad=not _freeze
            )
            self.reset_parameters()
        else:
            assert list(_weight.shape) == [num_embeddings, embedding_dim], (
                "Shape of weight does not match num_embeddings and embedding_dim"
            )
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx=None, max_norm=None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False):  # fmt: skip
        """An Embedding holding ``embeddings`` (2-D), frozen unless ``freeze`` is False; follows
        ``torch.nn.Embedding.from_pretrained``."""
        assert embeddings.dim() == 2, "Embeddings parameter is expected to be 2-dimensional"
        rows, columns = embeddings.shape
        return cls(rows, columns, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, _weight=embeddings,
                   _freeze=freeze)  # fmt: skip

    def reset_parameters(self) -> None:
        """The weight drawn again from N(0, 1), the padding row zeros, as
        ``torch.nn.Embedding.reset_parameters``."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx].fill_(0)

    def forward(self, input) -> Tensor:  # noqa: A002
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)  # fmt: skip

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            text += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            text += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            text += ", scale_grad_by_freq=True"
        if self.sparse:
            text += ", sparse=True"
        return text


class EmbeddingBag(Module):
    """``num_embeddings`` vectors of ``embedding_dim`` (N(0, 1) at first, the ``padding_idx``
    row zeros) reduced per bag by ``mode``; ``forward(input, offsets=None,
    per_sample_weights=None)`` as ``F.embedding_bag``. Follows ``torch.nn.EmbeddingBag``."""

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm=None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False, _weight=None,
                 include_last_offset: bool = False, padding_idx=None, device=None, dtype=None):  # fmt: skip
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.max_norm, self.norm_type, self.scale_grad_by_freq = max_norm, norm_type, scale_grad_by_freq
        padding_idx = _padding_row(padding_idx, num_embeddings, "padding_idx")
        self.padding_idx, self.mode, self.sparse, self.include_last_offset = (
            padding_idx,
            mode,
            sparse,
            include_last_offset,
        )
        if _weight is None:
            self.weight = Parameter(_factories.empty(num_embeddings, embedding_dim, dtype=dtype))
            self.reset_parameters()
        else:
            assert list(_weight.shape) == [num_embeddings, embedding_dim], (
                "Shape of weight does not match num_embeddings and embedding_dim"
            )
            self.weight = Parameter(_weight)

    reset_parameters = Embedding.reset_parameters

    def forward(self, input: Tensor, offsets=None, per_sample_weights=None) -> Tensor:  # noqa: A002
        return F.embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type, self.scale_grad_by_freq,
                               self.mode, self.sparse, per_sample_weights, self.include_last_offset, self.padding_idx)  # fmt: skip

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.max_norm is not None:
            text += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            text += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            text += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        text += f", mode='{self.mode}'"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        return text


class LayerNorm(Module):
    """Normalise over the last ``len(normalized_shape)`` dimensions, then scale and shift."""

    def __init__(
        self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True, device=None,
        dtype=None,
    ):  # fmt: skip
        super().__init__()
        _device.check(device)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(_factories.ones(*shape, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(_factories.zeros(*shape, dtype=dtype)) if elementwise_affine and bias else None

    def reset_parameters(self) -> None:
        """Weight ones, bias zeros, as ``torch.nn.LayerNorm.reset_parameters``."""
        _affine_reset(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"


class RMSNorm(Module):
    """Root-mean-square normalisation over the last ``len(normalized_shape)`` dimensions, times
    a weight (ones at first) with ``elementwise_affine``; ``eps`` None is the dtype's machine
    epsilon. Follows ``torch.nn.RMSNorm``."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine: bool = True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(_factories.ones(*shape, dtype=dtype)) if elementwise_affine else None

    def reset_parameters(self) -> None:
        """Weight ones, as ``torch.nn.RMSNorm.reset_parameters``."""
        if self.weight is not None:
            init.ones_(self.weight)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Dropout(Module):
    """``F.dropout`` as a module, active in training mode; follows ``torch.nn.Dropout``."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if self.inplace and self.training and self.p:
            return input.mul_(F.dropout(_factories.ones_like(input), self.p, True))
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


def _tuple(value, dims: int) -> tuple:
    return (value,) * dims if isinstance(value, int) else tuple(value)


class _ConvNd(Module):
    """What Conv1d and Conv2d share: PyTorch's parameters, initialisation and repr."""

    _dims = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None,
                 output_padding=0):  # fmt: skip
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        modes = ("zeros", "reflect", "replicate", "circular")
        if padding_mode not in modes:
            raise ValueError(
                f"padding_mode must be one of {{'reflect', 'replicate', 'zeros', 'circular'}}, but got "
                f"padding_mode={padding_mode!r}"
            )
        if padding_mode != "zeros" and self._transposed:
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
        dims = self._dims
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = (
            _tuple(kernel_size, dims),
            _tuple(stride, dims),
            _tuple(dilation, dims),
        )
        if padding == "same" and any(s != 1 for s in self.stride):
            raise ValueError("padding='same' is not supported for strided convolutions")
        self.padding = padding if isinstance(padding, str) else _tuple(padding, dims)
        self.padding_mode = padding_mode
        self.output_padding = _tuple(output_padding, dims)
        if self._transposed:  # PyTorch's layouts: (in, out / groups, k...) for a transposed one
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(_factories.empty(*shape, dtype=dtype))
        self.bias = Parameter(_factories.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * self._dims:
            text += f", padding={self.padding}"  # PyTorch shows a string unquoted: padding=same
        if self.dilation != (1,) * self._dims:
            text += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._dims:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text

    def _padded(self, input: Tensor):  # noqa: A002
        """``(input, padding)``: with a ``padding_mode`` other than zeros, the input padded by
        ``F.pad`` in that mode and no padding left for the convolution, as PyTorch does."""
        if self.padding_mode == "zeros":
            return input, self.padding
        from ._convolution import _same_padding

        before, after = _same_padding(self.kernel_size, self.dilation, self.stride, self.padding)
        pads = [p for pair in reversed(list(zip(before, after))) for p in pair]  # last dimension first
        return F.pad(input, pads, mode=self.padding_mode), 0


class Conv2d(_ConvNd):
    """2-D convolution layer, as ``torch.nn.Conv2d``: (N, C_in, H, W) -> (N, C_out, H_out, W_out)
    by ``F.conv2d``; weight (C_out, C_in / groups, kH, kW) and bias (C_out,) initialised uniform
    in +-1/sqrt(fan_in), as PyTorch does; ``padding_mode`` "zeros", "reflect", "replicate" or
    "circular" (else ``ValueError``)."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        x, padding = self._padded(input)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv1d(_ConvNd):
    """1-D convolution layer, as ``torch.nn.Conv1d``: (N, C_in, L) -> (N, C_out, L_out) by
    ``F.conv1d``."""

    _dims = 1

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        x, padding = self._padded(input)
        return F.conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class LazyConv2d(_Lazy, Conv2d):
    """A ``Conv2d`` whose ``in_channels`` is its first input's channel count (dimension 1, or 0
    unbatched): until that call its weight and bias are ``UninitializedParameter``s and it
    prints with ``in_channels=0``; the call (or ``load_state_dict``) materializes them,
    initialises them as ``Conv2d`` does, and turns the module into a ``Conv2d``. Follows
    ``torch.nn.LazyConv2d``."""

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):  # fmt: skip
        # Conv2d's checks and attributes with a stand-in channel count, then the lazy parameters.
        super().__init__(groups, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         device, dtype)  # fmt: skip
        self.in_channels = 0
        self.weight = UninitializedParameter(dtype=dtype)
        self.bias = UninitializedParameter(dtype=dtype) if bias else None

    _eager, _size = Conv2d, "in_channels"

    def _input_size(self, input: Tensor) -> int:  # noqa: A002
        return input.shape[1] if input.dim() == 4 else input.shape[0]

    def _weight_shape(self, size: int) -> tuple:
        return (self.out_channels, size // self.groups, *self.kernel_size)

    def _size_of_weight(self) -> int:
        return self.weight.shape[1] * self.groups


class _ConvTransposeNd(_ConvNd):
    """What ConvTranspose1d and ConvTranspose2d share: ``forward(input, output_size)`` picks the
    ``output_padding`` that gives ``output_size``, and raises ``ValueError`` as PyTorch does when
    no padding can."""

    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None, dtype=None):  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype, output_padding)  # fmt: skip

    def _output_padding(self, input: Tensor, output_size) -> tuple:  # noqa: A002
        if output_size is None:
            return self.output_padding
        dims = self._dims
        requested = list(output_size)[-dims:]
        spatial = list(input.shape[-dims:])
        smallest = [
            (e - 1) * s - 2 * p + d * (k - 1) + 1
            for e, s, p, d, k in zip(spatial, self.stride, self.padding, self.dilation, self.kernel_size)
        ]
        largest = [low + s - 1 for low, s in zip(smallest, self.stride)]
        if any(not low <= r <= high for r, low, high in zip(requested, smallest, largest)):
            raise ValueError(
                f"requested an output size of {requested}, but valid sizes range from {smallest} to {largest} "
                f"(for an input of {input.shape[-dims:]})"
            )
        return tuple(r - low for r, low in zip(requested, smallest))


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution layer, as ``torch.nn.ConvTranspose2d``: (N, C_in, H, W) ->
    (N, C_out, H_out, W_out) by ``F.conv_transpose2d``; weight (C_in, C_out / groups, kH, kW)."""

    def forward(self, input: Tensor, output_size=None) -> Tensor:  # noqa: A002
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)  # fmt: skip


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution layer, as ``torch.nn.ConvTranspose1d``: (N, C_in, L) ->
    (N, C_out, L_out) by ``F.conv_transpose1d``; weight (C_in, C_out / groups, k)."""

    _dims = 1

    def forward(self, input: Tensor, output_size=None) -> Tensor:  # noqa: A002
        return F.conv_transpose1d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)  # fmt: skip


class MaxPool2d(Module):
    """``F.max_pool2d`` as a module; follows ``torch.nn.MaxPool2d``."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):  # fmt: skip
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation, self.return_indices, self.ceil_mode = padding, dilation, return_indices, ceil_mode

    def forward(self, input: Tensor):  # noqa: A002
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """``F.avg_pool2d`` as a module; follows ``torch.nn.AvgPool2d``."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override=None):  # fmt: skip
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)  # fmt: skip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """``F.adaptive_avg_pool2d`` as a module; follows ``torch.nn.AdaptiveAvgPool2d``."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


def _affine_reset(module: Module) -> None:
    """A normalization's affine parameters back to the identity: weight ones, bias zeros."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share, as ``torch.nn`` has them: weight (ones) and bias
    (zeros) when ``affine``; buffers ``running_mean`` (zeros), ``running_var`` (ones) and
    ``num_batches_tracked`` (int64) when ``track_running_stats``. Training mode normalises with
    the batch's statistics and updates the running ones (by ``momentum``, or a cumulative
    average when it is None); eval mode uses the running ones."""

    _ranks: tuple = ()
    _version = 2  # (PyTorch's: version 2 added num_batches_tracked)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # The count of batches may be absent from a state of version 1 (before PyTorch 0.4.1),
        # or of no version (a dict rebuilt without ``_metadata``): it keeps its value, as in
        # PyTorch. A current state without it is missing a key.
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        version = local_metadata.get("version")
        if (version is None or version < 2) and prefix + "num_batches_tracked" in missing_keys:
            missing_keys.remove(prefix + "num_batches_tracked")

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):  # fmt: skip
        super().__init__()
        _device.check(device)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(_factories.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(_factories.zeros(num_features, dtype=dtype)) if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", _factories.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", _factories.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", _factories.tensor(0, dtype=_dtypes.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data.zero_()
            self.running_var.data.fill_(1.0)
            self.num_batches_tracked.data.zero_()

    def reset_parameters(self) -> None:
        """The running statistics reset, weight ones, bias zeros (``torch.nn.BatchNorm*``)."""
        self.reset_running_stats()
        _affine_reset(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.dim() not in self._ranks:
            expected = " or ".join(f"{rank}D" for rank in self._ranks)
            raise ValueError(f"expected {expected} input (got {input.dim()}D input)")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data.add_(1)
            if self.momentum is None:  # a cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.item())
        # (running statistics set to None: batch statistics in eval mode too, as PyTorch)
        batch_statistics = self.training or (self.running_mean is None and self.running_var is None)
        return F.batch_norm(
            input,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight, self.bias, batch_statistics, momentum, self.eps,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs; follows ``torch.nn.BatchNorm1d``."""

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over N, H and W; follows ``torch.nn.BatchNorm2d``."""

    _ranks = (4,)


class _LazyBatchNorm(_Lazy, _BatchNorm):
    """A BatchNorm whose ``num_features`` is its first input's channel count (dimension 1):
    until that call its weight, bias and running statistics are uninitialized (it prints
    ``num_features`` 0); the call (or ``load_state_dict``) materializes them, initialises them
    as BatchNorm does, and turns the module into its BatchNorm. Follows
    ``torch.nn.LazyBatchNorm1d``/``2d``."""

    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None):  # fmt: skip
        super().__init__(0, eps, momentum, affine, track_running_stats, device, dtype)
        if affine:
            self.weight = UninitializedParameter(dtype=dtype)
            self.bias = UninitializedParameter(dtype=dtype)
        if track_running_stats:
            self.running_mean = UninitializedBuffer(dtype=dtype)
            self.running_var = UninitializedBuffer(dtype=dtype)

    def _uninitialized(self) -> list:
        tensors = [*self._parameters.values(), *self._buffers.values()]
        return [t for t in tensors if isinstance(t, (UninitializedParameter, UninitializedBuffer))]

    def reset_parameters(self) -> None:
        if self.num_features != 0 and not self._uninitialized():
            _BatchNorm.reset_parameters(self)

    def __call__(self, input: Tensor, *args, **kwargs):  # noqa: A002
        waiting = self._uninitialized()
        if waiting:
            self.num_features = input.shape[1]
            for tensor in waiting:
                tensor.materialize((self.num_features,))
            self.reset_parameters()
        # (materialized by load_state_dict: its values stay, and num_features 0, as PyTorch's)
        self.__class__ = self._eager
        return Module.__call__(self, input, *args, **kwargs)

    def _materialize_for(self, state_dict, prefix: str) -> None:
        for name, tensor in [*self._parameters.items(), *self._buffers.items()]:
            value = state_dict.get(prefix + name)
            if isinstance(tensor, (UninitializedParameter, UninitializedBuffer)) and isinstance(value, Tensor):
                tensor.materialize(value.shape)


class LazyBatchNorm1d(_LazyBatchNorm, BatchNorm1d):
    """``BatchNorm1d`` with ``num_features`` from its first input; follows ``torch.nn.LazyBatchNorm1d``."""

    _eager = BatchNorm1d


class LazyBatchNorm2d(_LazyBatchNorm, BatchNorm2d):
    """``BatchNorm2d`` with ``num_features`` from its first input; follows ``torch.nn.LazyBatchNorm2d``."""

    _eager = BatchNorm2d


class _InstanceNorm(_BatchNorm):
    """What InstanceNorm1d and InstanceNorm2d share, as ``torch.nn`` has them: no affine
    parameters and no running statistics unless asked (``affine``, ``track_running_stats``);
    an unbatched input is one sample."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True):  # fmt: skip
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if input.dim() not in (self._ranks[0] - 1, self._ranks[0]):
            raise ValueError(f"expected {self._ranks[0] - 1}D or {self._ranks[0]}D input (got {input.dim()}D input)")
        unbatched = input.dim() == self._ranks[0] - 1
        x = input.unsqueeze(0) if unbatched else input
        out = F.instance_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            0.0 if self.momentum is None else self.momentum,
            self.eps,
        )  # fmt: skip  (momentum None: running statistics stay, as PyTorch's instance norm passes 0.0)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) or (C, L) inputs; follows ``torch.nn.InstanceNorm1d``."""

    _ranks = (3,)


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) or (C, H, W) inputs; follows ``torch.nn.InstanceNorm2d``."""

    _ranks = (4,)


class GroupNorm(Module):
    """``F.group_norm`` as a module, weight ones and bias zeros when ``affine``; follows
    ``torch.nn.GroupNorm``. Raises ``ValueError`` when ``num_channels`` is not divisible by
    ``num_groups``."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None, *, bias: bool = True):  # fmt: skip
        super().__init__()
        _device.check(device)
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        self.weight = Parameter(_factories.ones(num_channels, dtype=dtype)) if affine else None
        self.bias = Parameter(_factories.zeros(num_channels, dtype=dtype)) if affine and bias else None

    def reset_parameters(self) -> None:
        """Weight ones, bias zeros, as ``torch.nn.GroupNorm.reset_parameters``."""
        _affine_reset(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, bias={self.bias is not None}"


class Dropout2d(Dropout):
    """``F.dropout2d`` as a module: whole channels zeroed in training mode; follows
    ``torch.nn.Dropout2d``. Raises ``ValueError`` for ``p`` outside [0, 1]."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.dropout2d(input, self.p, self.training, self.inplace)


class MSELoss(Module):
    """``F.mse_loss`` as a module; follows ``torch.nn.MSELoss`` (the legacy ``size_average`` and
    ``reduce`` set ``reduction``, as PyTorch's)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = F._legacy_reduction(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(Module):
    """``F.l1_loss`` as a module; follows ``torch.nn.L1Loss`` (the legacy ``size_average`` and
    ``reduce`` set ``reduction``, as PyTorch's)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = F._legacy_reduction(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.l1_loss(input, target, reduction=self.reduction)


class HuberLoss(Module):
    """``F.huber_loss`` as a module; follows ``torch.nn.HuberLoss``."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__()
        self.reduction, self.delta = reduction, delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class CrossEntropyLoss(Module):
    """``F.cross_entropy`` as a module; follows ``torch.nn.CrossEntropyLoss``."""

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average=None,
        ignore_index: int = -100,
        reduce=None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.register_buffer("weight", weight)  # a buffer, as PyTorch's: saved, cast and moved with the model
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing
        self.reduction = F._legacy_reduction(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.cross_entropy(
            input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )  # fmt: skip


class NLLLoss(CrossEntropyLoss):
    """``F.nll_loss`` as a module; follows ``torch.nn.NLLLoss``."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class BCELoss(Module):
    """``F.binary_cross_entropy`` as a module; follows ``torch.nn.BCELoss``."""

    def __init__(self, weight: Tensor | None = None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.register_buffer("weight", weight)
        self.reduction = F._legacy_reduction(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(Module):
    """``F.binary_cross_entropy_with_logits`` as a module; follows ``torch.nn.BCEWithLogitsLoss``."""

    def __init__(self, weight: Tensor | None = None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight: Tensor | None = None):  # fmt: skip
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)
        self.reduction = F._legacy_reduction(size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )
