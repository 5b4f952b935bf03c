"""The base of tapegrad's optimizers (``torch.optim.Optimizer``): parameter groups, their
checks, ``zero_grad``, the state and its ``state_dict``; and the hyperparameter checks they share."""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict

import numpy as np

from .. import _dtypes
from ..tensor import Tensor, _wrap


def _refuse_inside_a_recording() -> None:
    """A step writes the parameters' arrays directly, which ``tapegrad.record`` cannot see: the
    replay would read them at their values before the step, silently."""
    from .._grad_mode import active_recording

    if active_recording() is not None:
        raise NotImplementedError(
            "an optimizer step inside tapegrad.record is not recorded; record the loss, and step outside"
        )


def _array(value):
    """A state entry as numpy: a tensor's array, lists of them (LBFGS's history) as lists."""
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, (list, tuple)):
        return [_array(item) for item in value]
    return value


def _scalar_dtype(fused=None) -> np.dtype:
    """The dtype of a state's ``step``: float32, or float64 when it is the default dtype (not
    with ``fused``); PyTorch's ``_get_scalar_dtype``."""
    if not fused and _dtypes.DEFAULT_FLOAT is _dtypes.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _step_tensor(value, fused=None) -> Tensor:
    """``value`` (a number, or a step loaded from a state dict of numbers) as the 0-d tensor
    PyTorch's ``__setstate__`` makes of it."""
    return _wrap(np.array(float(value), _scalar_dtype(fused)))


class Optimizer:
    """Base of the optimizers: parameter groups, ``zero_grad``, ``state`` and ``state_dict``;
    follows ``torch.optim.Optimizer``. Raises PyTorch's ``TypeError`` for ``params`` that is one
    tensor or holds something else than tensors, and its ``ValueError`` for an empty list, a
    non-leaf tensor, or a tensor in two groups.

    ``state`` maps each parameter that has state to a dict of tensors (its buffers, and ``step``
    for most optimizers); the update writes them in place, as PyTorch's does.

    >>> import tapegrad as tg
    >>> w = tg.nn.Parameter(tg.ones(2))
    >>> optimizer = tg.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward()
    >>> optimizer.step()
    >>> optimizer.state[w]["momentum_buffer"]
    tensor([2., 2.])
    >>> optimizer.state_dict()["state"]
    {0: {'momentum_buffer': tensor([2., 2.])}}
    """

    # The options a group loaded from an older state dict may lack, with the values PyTorch's
    # ``__setstate__`` gives them; and whether the state's ``step`` is a tensor (a number loaded
    # is made one).
    _group_defaults: dict = {}
    _step_is_tensor = False
    _steps_differentiably = False  # whether ``differentiable=True`` records the step (SGD)
    _CAPTURED = "params and state_steps"  # what PyTorch's refusal of ``capturable=True`` names
    _CAPTURE_DEVICES = "['cuda', 'xpu', 'hpu', 'privateuseone', 'xla']"

    def __init__(self, params, defaults: dict):
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, but got "
                + params.type()
            )
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list = []
        param_groups = list(params)
        if not param_groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)
        if defaults.get("fused"):  # PyTorch's checks, in its order
            if defaults.get("differentiable"):
                raise RuntimeError("`fused` does not support `differentiable`")
            if defaults.get("foreach"):
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        if defaults.get("differentiable") and not self._steps_differentiably:
            # (accepted and ignored, the step was silently left out of the graph)
            raise NotImplementedError(
                f"tapegrad's {type(self).__name__} does not support differentiable=True: its step is not recorded "
                "(SGD's is)"
            )

    def __setstate__(self, state: dict) -> None:
        """Take ``state`` (``load_state_dict`` passes the new ``state`` and ``param_groups``):
        the options a loaded group lacks get their defaults, a ``step`` that is a number
        becomes a tensor; follows ``torch.optim.Optimizer.__setstate__`` and its subclasses'."""
        self.__dict__.update(state)
        self.defaults.setdefault("differentiable", False)
        for group in self.param_groups:
            for key, value in self._group_defaults.items():
                group.setdefault(key, value)
            if not self._step_is_tensor:
                continue
            for parameter in group["params"]:
                entries = dict.get(self.state, parameter)
                if entries and "step" in entries and not isinstance(entries["step"], Tensor):
                    entries["step"] = _step_tensor(entries["step"], group.get("fused"))

    def __repr__(self) -> str:
        text = f"{type(self).__name__} ("
        for index, group in enumerate(self.param_groups):
            text += f"\nParameter Group {index}\n"
            text += "".join(f"    {key}: {group[key]}\n" for key in sorted(group) if key != "params")
        return text + ")"

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (a dict with ``"params"`` and any options; the others take the
        defaults); follows ``torch.optim.Optimizer.add_param_group``: the dict itself becomes
        the group, and PyTorch's errors (``ValueError("some parameters appear in more than one
        parameter group")`` for a parameter already optimized).

        >>> import tapegrad as tg
        >>> w, b = tg.nn.Parameter(tg.ones(2)), tg.nn.Parameter(tg.zeros(1))
        >>> optimizer = tg.optim.SGD([w], lr=0.1)
        >>> optimizer.add_param_group({"params": [b], "lr": 0.01})
        >>> [group["lr"] for group in optimizer.param_groups]
        [0.1, 0.01]
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering of tensors in "
                "sets will change between runs. Please use a list instead."
            )
        params = list(params)
        names = [item[0] for item in params if isinstance(item, tuple)]  # named_parameters()
        param_group["params"] = params = [item[1] if isinstance(item, tuple) else item for item in params]
        if names:
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group["param_names"] = names
        for parameter in params:
            if not isinstance(parameter, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but one of the params is {type(parameter).__name__}"
                )
            if not self.defaults.get("differentiable") and not (parameter.is_leaf or parameter.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        if len({id(parameter) for parameter in params}) != len(params):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, this will cause an error; "
                "see github.com/pytorch/pytorch/issues/40967 for more information",
                stacklevel=3,
            )
        taken = set()
        for group in self.param_groups:
            taken.update(id(parameter) for parameter in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                kind = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    f"all optimizer param groups should be with/without names. cannot add param group {kind} to the "
                    "optimizer"
                )
        if not taken.isdisjoint(id(parameter) for parameter in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def step(self, closure=None):
        """One update of every parameter; a subclass defines it (``NotImplementedError`` here,
        as PyTorch's base)."""
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the parameters' gradients: ``None`` (``set_to_none``), else zeros in place,
        detached; follows ``torch.optim.Optimizer.zero_grad``."""
        for group in self.param_groups:
            for parameter in group["params"]:
                grad = parameter.grad
                if grad is None:
                    continue
                if set_to_none:
                    parameter.grad = None
                else:
                    if grad.grad_fn is not None:
                        grad.detach_()
                    else:
                        grad.requires_grad_(False)
                    grad.zero_()

    def state_dict(self) -> dict:
        """``{"state": {index: {name: tensor, ...}}, "param_groups": [{option: value, ...,
        "params": [index, ...]}]}``, the parameters numbered in their groups' order; follows
        ``torch.optim.Optimizer.state_dict``: the state's dicts and tensors are the optimizer's
        own, not copies (``copy.deepcopy`` it, or ``tapegrad.save`` it, to keep a snapshot)."""
        mapping: dict = {}
        start = 0

        def pack(group: dict) -> dict:
            nonlocal start
            packed = {key: value for key, value in group.items() if key != "params"}
            for index, parameter in enumerate(group["params"], start):
                mapping.setdefault(id(parameter), index)
            packed["params"] = [mapping[id(parameter)] for parameter in group["params"]]
            start += len(packed["params"])
            return packed

        param_groups = [pack(group) for group in self.param_groups]
        state = {(mapping[id(key)] if isinstance(key, Tensor) else key): value for key, value in dict.items(self.state)}
        return {"state": state, "param_groups": param_groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Take the state and options ``state_dict`` holds: tapegrad's, or PyTorch's converted
        tensor by tensor. Follows ``torch.optim.Optimizer.load_state_dict``: the saved groups'
        ``params`` say which parameter each state belongs to; floating state other than
        ``step`` is cast to its parameter's dtype (a tensor already of that dtype is taken as
        it is, not copied); the groups' options are copies. Raises ``ValueError``, with
        PyTorch's messages, when the number of groups or of parameters in a group differs.

        numpy arrays in the state (tapegrad's state dicts before they held tensors) are taken
        as tensors."""
        state_dict = dict(state_dict)
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for group, saved in zip(self.param_groups, saved_groups):
            if "params" in saved and len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
                )
        parameters = [parameter for group in self.param_groups for parameter in group["params"]]
        if all("params" in saved for saved in saved_groups):
            ids = [index for saved in saved_groups for index in saved["params"]]
        else:  # tapegrad's first state dicts: numbered from 0
            ids = range(len(parameters))
        by_id = dict(zip(ids, parameters))
        policy = {}  # saved id: whether its step is kept as float32 (PyTorch's fused or capturable)
        for saved in state_dict["param_groups"]:
            for index in saved.get("params", ()):
                policy.setdefault(index, bool(saved.get("fused") or saved.get("capturable")))

        def cast(parameter, value, key=None, float32_step=False):
            if isinstance(value, np.ndarray):
                value = _wrap(value)
            if isinstance(value, Tensor):
                data = value._data
                if key == "step":
                    if float32_step and data.dtype != np.float32:
                        return _wrap(data.astype(np.float32))
                    return value
                dtype = parameter._data.dtype
                if dtype.kind == "f" and data.dtype != dtype:
                    return _wrap(data.astype(dtype))
                return value
            if isinstance(value, dict):
                return {name: cast(parameter, item, name, float32_step) for name, item in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(cast(parameter, item, None, float32_step) for item in value)
            return value

        state = defaultdict(dict)
        for index, value in state_dict["state"].items():
            if index in by_id:
                state[by_id[index]] = cast(by_id[index], value, float32_step=policy.get(index, False))
            else:
                state[index] = value
        for group, saved in zip(self.param_groups, saved_groups):
            saved["params"] = group["params"]  # the same list (LBFGS holds it)
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
        self.__setstate__({"state": state, "param_groups": saved_groups})

    def _gradients(self, group):
        """(parameter, its array, its gradient's array) for the parameters with a gradient; the
        gradient negated with ``maximize``."""
        maximize = group.get("maximize", False)
        if group.get("capturable") and any(parameter.grad is not None for parameter in group["params"]):
            # CUDA graphs' option: PyTorch refuses it for CPU parameters (tapegrad has no other)
            raise AssertionError(
                f"If capturable=True, {self._CAPTURED} must be on supported devices: {self._CAPTURE_DEVICES}."
            )
        for parameter in group["params"]:
            if parameter.grad is not None:
                grad = parameter.grad._data
                yield parameter, parameter._data, -grad if maximize else grad


def _check_nonnegative(nan_allowed: bool = False, **values) -> None:
    """PyTorch's ``ValueError`` for a negative hyperparameter (``lr`` is "learning rate",
    ``eps`` "epsilon value", the others "<name> value"), and for a tensor ``lr`` of more than
    one element. Compared as PyTorch compares them: a string raises its ``TypeError``, and NaN
    is refused except where PyTorch tests ``value < 0`` (``nan_allowed``: SGD)."""
    from ..tensor import Tensor

    lr = values.get("lr")
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    for name, value in values.items():
        if (value < 0.0) if nan_allowed else not 0.0 <= value:
            label = {"lr": "learning rate", "eps": "epsilon value"}.get(name, f"{name} value")
            raise ValueError(f"Invalid {label}: {value}")


def _check_betas(betas) -> None:
    for index, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta}")
