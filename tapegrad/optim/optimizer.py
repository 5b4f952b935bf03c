"""The base of tapegrad's optimizers (``torch.optim.Optimizer``): parameter groups, their
checks, ``zero_grad`` and ``state_dict``; and the hyperparameter checks they share."""

from __future__ import annotations

import copy

import numpy as np


def _refuse_inside_a_recording() -> None:
    """A step writes the parameters' arrays directly, which ``tapegrad.record`` cannot see: the
    replay would read them at their values before the step, silently."""
    from .._grad_mode import active_recording

    if active_recording() is not None:
        raise NotImplementedError(
            "an optimizer step inside tapegrad.record is not recorded; record the loss, and step outside"
        )


class Optimizer:
    """Base of the optimizers: parameter groups, ``zero_grad`` and ``state_dict``; follows
    ``torch.optim.Optimizer``. Raises PyTorch's ``TypeError`` for ``params`` that is one tensor
    or holds something else than tensors, and its ``ValueError`` for an empty list, a non-leaf
    tensor, or a tensor in two groups."""

    def __init__(self, params, defaults: dict):
        from ..tensor import Tensor

        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, but got "
                + params.type()
            )
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        self.defaults = defaults
        self.param_groups: list = []
        self.state: dict = {}
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (a dict with ``"params"`` and any options; the others take the defaults);
        follows ``torch.optim.Optimizer.add_param_group``, with its errors."""
        import warnings

        from ..tensor import Tensor

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
        named = [item for item in params if isinstance(item, tuple)]  # named_parameters()
        if named:
            if len(named) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            param_group = {**param_group, "param_names": [name for name, _ in named]}
            params = [parameter for _, parameter in named]
        for parameter in params:
            if not isinstance(parameter, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but one of the params is {type(parameter).__name__}"
                )
            if not (parameter.is_leaf or parameter.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        if len({id(parameter) for parameter in params}) != len(params):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, this will cause an error; "
                "see github.com/pytorch/pytorch/issues/40967 for more information",
                stacklevel=3,
            )
        taken = {id(parameter) for group in self.param_groups for parameter in group["params"]}
        if taken & {id(parameter) for parameter in params}:
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append({**self.defaults, **param_group, "params": params})

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for parameter in group["params"]:
                if set_to_none:
                    parameter.grad = None
                elif parameter.grad is not None:
                    parameter.grad.zero_()

    def state_dict(self) -> dict:
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        return {
            "state": {index[key]: {k: _copied(v) for k, v in value.items()} for key, value in self.state.items()},
            "param_groups": [
                {**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                for g in self.param_groups
            ],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Take the state and options ``state_dict`` gives (as ``state_dict()`` makes it); follows
        ``torch.optim.Optimizer.load_state_dict``: buffers of a parameter's shape are cast to its
        dtype (C-ordered). Raises ``ValueError``, with PyTorch's messages, when the number of
        groups or of parameters in a group differs."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for group, saved in zip(self.param_groups, saved_groups):
            if "params" in saved and len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size of optimizer's group"
                )
        parameters = [p for g in self.param_groups for p in g["params"]]
        # The state's keys are the saved groups' parameter ids (PyTorch's: any ints), in their
        # groups' order; a state dict without them (tapegrad's first versions) counts from 0.
        ids = [i for saved in saved_groups for i in saved.get("params", ())]
        by_id = dict(zip(ids, parameters)) if len(ids) == len(parameters) else dict(enumerate(parameters))

        def held(parameter, key, value):
            if isinstance(value, (list, tuple)):  # LBFGS's history
                return [held(parameter, key, item) for item in value]
            if value is None or isinstance(value, (bool, int, float)):
                return value
            value = np.array(value._data if hasattr(value, "_data") else value)
            if key != "step" and value.shape == parameter._data.shape and value.dtype.kind == "f":
                value = np.ascontiguousarray(value, dtype=parameter._data.dtype)
            return value

        self.state = {
            id(by_id[i]): {k: held(by_id[i], k, v) for k, v in value.items()}
            for i, value in state_dict["state"].items()
            if i in by_id
        }
        for group, saved in zip(self.param_groups, saved_groups):
            # Copies: a tensor lr must not stay shared with the optimizer it came from.
            group.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})

    def _gradients(self, group):
        """(parameter, its array, its gradient's array) for the parameters with a gradient; the
        gradient negated with ``maximize``."""
        maximize = group.get("maximize", False)
        for parameter in group["params"]:
            if parameter.grad is not None:
                grad = parameter.grad._data
                yield parameter, parameter._data, -grad if maximize else grad


def _copied(value):
    """A state entry as ``state_dict`` hands it out: arrays copied, lists of them too (LBFGS's
    history), numbers as they are."""
    if isinstance(value, (list, tuple)):
        return [_copied(item) for item in value]
    return np.array(value) if isinstance(value, np.ndarray) else value


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
