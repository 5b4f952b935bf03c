"""``torch.nn.utils.parametrize``: a module's parameter computed from other tensors on each read.

``register_parametrization(module, "weight", P())`` moves ``module.weight`` to
``module.parametrizations.weight.original`` and makes ``module.weight`` a property that returns
``P()(original)``, recorded as any other computation: gradients reach ``original``. As in
PyTorch, the module's class is replaced by a subclass named ``Parametrized<Class>`` that carries
the property, and assigning ``module.weight = X`` stores ``P.right_inverse(X)`` in ``original``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence

from ... import _grad_mode
from ...tensor import Tensor
from ..modules import Module, ModuleDict, ModuleList, Parameter

_cache: dict = {}  # (id(module), name) -> tensor, while ``cached()`` is active
_cache_depth = [0]


@contextlib.contextmanager
def cached():
    """Within it, each parametrized tensor is computed once, on its first read, and that value
    is returned by later reads (a weight shared by many steps of an RNN is computed once);
    follows ``torch.nn.utils.parametrize.cached``. The values are dropped on leaving the
    outermost ``cached()``."""
    _cache_depth[0] += 1
    try:
        yield
    finally:
        _cache_depth[0] -= 1
        if not _cache_depth[0]:
            _cache.clear()


def _register(module: Module, name: str, tensor: Tensor) -> None:
    if isinstance(tensor, Parameter):
        module.register_parameter(name, tensor)
    else:
        module.register_buffer(name, tensor)


def _set_in_place(destination: Tensor, source: Tensor) -> None:
    """``destination.set_(source)``: the same tensor object (an optimizer holds it) takes the
    new value."""
    destination.data = source.detach()


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, applied in registration order, and the tensors they
    are computed from: ``original``, or ``original0``, ``original1``... when the first
    parametrization's ``right_inverse`` returns several. Follows
    ``torch.nn.utils.parametrize.ParametrizationList``; made by ``register_parametrization``.

    Raises ``ValueError`` (PyTorch's messages) when a parametrization changes the tensor's dtype
    or shape without ``unsafe``, or ``right_inverse`` returns something other than tensors."""

    def __init__(self, modules: Sequence, original: Tensor, unsafe: bool = False) -> None:
        if len(modules) == 0:
            raise ValueError("ParametrizationList requires one or more modules.")
        super().__init__(modules)
        self.unsafe = unsafe
        shape, dtype = original.shape, original.dtype
        with _grad_mode.no_grad():
            new = original
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    try:
                        new = module.right_inverse(new)
                    except NotImplementedError:
                        pass
        if not isinstance(new, (Tensor, Sequence)):
            raise ValueError(
                "'right_inverse' must return a Tensor or a Sequence of tensors (list, tuple...). "
                f"Got {type(new).__name__}"
            )
        self.is_tensor = isinstance(new, Tensor)
        self.ntensors = 1 if self.is_tensor else len(new)
        if self.is_tensor:
            if original.dtype != new.dtype:
                raise ValueError(
                    "When `right_inverse` outputs one tensor, it may not change the dtype.\n"
                    f"original.dtype: {original.dtype}\n"
                    f"right_inverse(original).dtype: {new.dtype}"
                )
            if new is not original:
                _set_in_place(original, new)
            _register(self, "original", original)
        else:
            for i, tensor in enumerate(new):
                if not isinstance(tensor, Tensor):
                    raise ValueError(
                        "'right_inverse' must return a Tensor or a Sequence of tensors (list, tuple...). "
                        f"Got element {i} of the sequence with type {type(tensor).__name__}."
                    )
                tensor = tensor.detach()
                if isinstance(original, Parameter):
                    tensor = Parameter(tensor, original.requires_grad)
                else:
                    tensor.requires_grad_(original.requires_grad)
                _register(self, f"original{i}", tensor)
        if not self.unsafe:
            value = self()
            if not isinstance(value, Tensor):
                raise ValueError(f"A parametrization must return a tensor. Got {type(value).__name__}.")
            if value.dtype != dtype:
                raise ValueError(
                    "Registering a parametrization may not change the dtype of the tensor, unless `unsafe` flag "
                    f"is enabled.\nunparametrized dtype: {dtype}\nparametrized dtype: {value.dtype}"
                )
            if value.shape != shape:
                raise ValueError(
                    "Registering a parametrization may not change the shape of the tensor, unless `unsafe` flag "
                    f"is enabled.\nunparametrized shape: {shape}\nparametrized shape: {value.shape}"
                )

    def right_inverse(self, value: Tensor) -> None:
        """Store ``value`` as the parametrized tensor's new value: the parametrizations'
        ``right_inverse``, last first, written into ``original`` (``original0``...). Raises
        ``RuntimeError`` when one has no ``right_inverse``."""
        with _grad_mode.no_grad():
            for module in reversed(list(self)):
                if not hasattr(module, "right_inverse"):
                    raise RuntimeError(f"parametrization {type(module).__name__} does not implement right_inverse.")
                value = module.right_inverse(value)
            if self.is_tensor:
                if not isinstance(value, Tensor):
                    raise ValueError(f"`right_inverse` should return a tensor. Got {type(value).__name__}")
                if value.dtype != self.original.dtype:
                    raise ValueError(
                        f"The tensor returned by `right_inverse` has dtype {value.dtype} "
                        f"while `original` has dtype {self.original.dtype}"
                    )
                _set_in_place(self.original, value)
                return
            if not isinstance(value, Sequence):
                raise ValueError(f"'right_inverse' must return a sequence of tensors. Got {type(value).__name__}.")
            if len(value) != self.ntensors:
                raise ValueError(
                    "'right_inverse' must return a sequence of tensors of length "
                    f"{self.ntensors}. Got a sequence of length {len(value)}."
                )
            for i, tensor in enumerate(value):
                original = getattr(self, f"original{i}")
                if not isinstance(tensor, Tensor):
                    raise ValueError(
                        "'right_inverse' must return a sequence of tensors or reference-type opaques. "
                        f"Got element {i} of type {type(tensor).__name__}."
                    )
                if original.dtype != tensor.dtype:
                    raise ValueError(
                        f"Tensor {i} returned by `right_inverse` has dtype {tensor.dtype} "
                        f"while `original{i}` has dtype {original.dtype}"
                    )
                _set_in_place(original, tensor)

    def forward(self) -> Tensor:
        modules = list(self)
        if self.is_tensor:
            x = modules[0](self.original)
        else:
            x = modules[0](*(getattr(self, f"original{i}") for i in range(self.ntensors)))
        for module in modules[1:]:
            x = module(x)
        return x


def _pickle_refused(self):
    raise RuntimeError(
        "Serialization of parametrized modules is only supported through state_dict(). See:\n"
        "https://pytorch.org/tutorials/beginner/saving_loading_models.html"
        "#saving-loading-a-general-checkpoint-for-inference-and-or-resuming-training"
    )


def _deepcopy(self, memo):
    # (the default goes through ``__getstate__``, which refuses: a copy in memory is fine)
    replica = memo.get(id(self))
    if replica is None:
        replica = memo[id(self)] = self.__new__(self.__class__)
        replica.__dict__ = copy.deepcopy(self.__dict__, memo)
    return replica


def _inject_class(module: Module) -> None:
    """Give ``module`` a class of its own, ``Parametrized<Class>``, to carry the properties."""
    cls = module.__class__
    methods = {"__getstate__": _pickle_refused}
    if not hasattr(cls, "__deepcopy__"):
        methods["__deepcopy__"] = _deepcopy
    module.__class__ = type(f"Parametrized{cls.__name__}", (cls,), methods)


def _inject_property(module: Module, name: str) -> None:
    def get(self) -> Tensor:
        parametrization = self.parametrizations[name]
        if not _cache_depth[0]:
            return parametrization()
        key = (id(self), name)
        value = _cache.get(key)
        if value is None:
            value = _cache[key] = parametrization()
        return value

    def set_(self, value: Tensor) -> None:
        self.parametrizations[name].right_inverse(value)

    setattr(module.__class__, name, property(get, set_))


def register_parametrization(module: Module, tensor_name: str, parametrization: Module, *, unsafe: bool = False):
    """Make ``module.<tensor_name>`` (a parameter or buffer) read as ``parametrization(original)``;
    a second registration on the same name chains after the first. Returns ``module``. Follows
    ``torch.nn.utils.parametrize.register_parametrization``: the parametrization's output must
    keep the tensor's dtype and shape unless ``unsafe``; an optional ``right_inverse(X)`` maps a
    value back to ``original`` (at registration, and on assignment to ``module.<tensor_name>``).

    Raises ``ValueError`` (PyTorch's messages) for a name that is neither a parameter, a buffer
    nor parametrized already, and for a parametrization that changes dtype or shape."""
    parametrization.train(module.training)
    if is_parametrized(module, tensor_name):
        if not unsafe:
            current = getattr(module, tensor_name)
            value = parametrization(current)
            if not isinstance(value, Tensor):
                raise ValueError(f"A parametrization must return a tensor. Got {type(value).__name__}.")
            for what, ours, theirs in (("dtype", current.dtype, value.dtype), ("shape", current.shape, value.shape)):
                if ours != theirs:
                    raise ValueError(
                        f"Registering a parametrization may not change the {what} of the tensor, unless the "
                        f"`unsafe` flag is enabled.\nmodule.{tensor_name}.{what}: {ours}\n"
                        f"parametrization(module.{tensor_name}).{what}: {theirs}"
                    )
            if hasattr(parametrization, "right_inverse"):
                try:
                    inverse = parametrization.right_inverse(value)
                except NotImplementedError:
                    pass
                else:
                    if not isinstance(inverse, Tensor):
                        raise ValueError(
                            f"parametrization.right_inverse must return a tensor. Got: {type(inverse).__name__}"
                        )
                    for what, ours, theirs in (
                        ("dtype", current.dtype, inverse.dtype),
                        ("shape", current.shape, inverse.shape),
                    ):
                        if ours != theirs:
                            raise ValueError(
                                f"The tensor returned by parametrization.right_inverse must have the same {what} "
                                f"as module.{tensor_name}, unless the `unsafe` flag is enabled.\n"
                                f"module.{tensor_name}.{what}: {ours}\nreturned {what}: {theirs}"
                            )
        chain = module.parametrizations[tensor_name]
        chain.append(parametrization)
        chain.unsafe |= unsafe
    elif tensor_name in module._buffers or tensor_name in module._parameters:
        original = getattr(module, tensor_name)
        chain = ParametrizationList([parametrization], original, unsafe=unsafe)
        delattr(module, tensor_name)
        if not is_parametrized(module):
            _inject_class(module)
            module.parametrizations = ModuleDict()
        _inject_property(module, tensor_name)
        module.parametrizations[tensor_name] = chain
    else:
        raise ValueError(
            f"Module '{module}' does not have a parameter, a buffer, or a parametrized element with name "
            f"'{tensor_name}'"
        )
    return module


def is_parametrized(module: Module, tensor_name: str | None = None) -> bool:
    """Whether ``module`` has a parametrization on ``tensor_name`` (on any tensor when None);
    follows ``torch.nn.utils.parametrize.is_parametrized``."""
    parametrizations = module.__dict__.get("parametrizations")
    if not isinstance(parametrizations, ModuleDict):
        return False
    return len(parametrizations) > 0 if tensor_name is None else tensor_name in parametrizations


def remove_parametrizations(module: Module, tensor_name: str, leave_parametrized: bool = True):
    """Undo ``register_parametrization`` on ``tensor_name``: it becomes a parameter (or buffer)
    again, holding its current parametrized value (``leave_parametrized``) or ``original``;
    the module gets its own class back once no parametrization is left. Returns ``module``.
    Follows ``torch.nn.utils.parametrize.remove_parametrizations``; raises ``ValueError`` (its
    messages) when the tensor is not parametrized, or for ``leave_parametrized=False`` when it
    is computed from several tensors."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"Module {module} does not have a parametrization on {tensor_name}")
    chain = module.parametrizations[tensor_name]
    if chain.is_tensor:
        original = chain.original
        if leave_parametrized:
            with _grad_mode.no_grad():
                value = getattr(module, tensor_name)
            _set_in_place(original, value)
    else:
        if not leave_parametrized:
            raise ValueError(
                "Cannot leave unparametrized (`leave_parametrized=False`) a tensor that is parametrized in terms "
                "of a sequence of tensors."
            )
        value = getattr(module, tensor_name)
        original = Parameter(value.detach()) if value.requires_grad else value.detach()
    delattr(module.__class__, tensor_name)
    del module.parametrizations[tensor_name]
    _register(module, tensor_name, original)
    if not is_parametrized(module):
        delattr(module, "parametrizations")
        module.__class__ = module.__class__.__bases__[0]
    return module


def type_before_parametrizations(module: Module) -> type:
    """The module's class before any parametrization (its own class when it has none); follows
    ``torch.nn.utils.parametrize.type_before_parametrizations``."""
    return module.__class__.__bases__[0] if is_parametrized(module) else type(module)
