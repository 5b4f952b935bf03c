"""``tapegrad.optim``: SGD, Adam, AdamW, RMSprop, Adagrad and Adadelta with PyTorch's update
rules, on the parameters' arrays in place (a step bumps their version counters, as PyTorch's
in-place updates do). ``foreach`` and ``fused`` choose among PyTorch's implementations of the
same update; they are accepted and change nothing here: Adam and AdamW always update a C-ordered
float32 or float64 parameter in one compiled loop (``tapegrad/_kernels/optimizers.py``, as
PyTorch's ``fused=True``), with the bits of the numpy calls the others take."""

from __future__ import annotations

import copy
import math

import numpy as np

from .._record import _bump_version
from . import lr_scheduler


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


def _buffer_for(state: dict, key: str, value: np.ndarray) -> np.ndarray:
    """``state[key]``, checked against its parameter ``value``: PyTorch's ``RuntimeError`` for
    another shape (a state loaded for other parameters), and C-ordered (a parameter first
    stepped as a non-contiguous array has F-ordered buffers; the compiled update must not run
    on copies of them)."""
    buffer = state[key]
    if buffer.shape != value.shape:
        a, b = buffer.shape, value.shape
        width = max(len(a), len(b))
        a, b = (1,) * (width - len(a)) + a, (1,) * (width - len(b)) + b
        for dim in reversed(range(width)):
            if a[dim] != b[dim] and a[dim] != 1 and b[dim] != 1:
                raise RuntimeError(
                    f"The size of tensor a ({a[dim]}) must match the size of tensor b ({b[dim]}) at non-singleton "
                    f"dimension {dim}"
                )
        # Broadcastable: the update writing into the smaller one fails, as PyTorch's does (the
        # buffer's lerp_ when it is smaller, else the parameter's addcdiv_).
        broadcast = np.broadcast_shapes(buffer.shape, value.shape)
        smaller = buffer.shape if buffer.shape != broadcast else value.shape
        raise RuntimeError(f"output with shape {list(smaller)} doesn't match the broadcast shape {list(broadcast)}")
    if buffer.dtype != value.dtype or not buffer.flags.c_contiguous:
        buffer = state[key] = np.ascontiguousarray(buffer, dtype=value.dtype)
    return buffer


def _fusable(value: np.ndarray, grad: np.ndarray) -> bool:
    """Whether a parameter's update runs as one compiled loop (``_fused_adam``): a C-ordered
    float32 or float64 parameter and a gradient of its shape and dtype (anything else takes
    numpy's calls, with the same arithmetic)."""
    return (
        value.dtype == grad.dtype
        and value.dtype.kind == "f"
        and value.dtype.itemsize >= 4
        and value.shape == grad.shape
        and value.flags.c_contiguous
        and grad.flags.c_contiguous
    )


_NO_MAXIMUM = {np.dtype(np.float32): np.zeros(0, np.float32), np.dtype(np.float64): np.zeros(0, np.float64)}
_adam_kernel = None


def _fused_adam(value, grad, state, lr, beta1, beta2, eps, l2, keep, step) -> None:
    """Adam's update of one parameter in one compiled pass (``tapegrad/_kernels/optimizers.py``,
    which casts the constants to its dtype as numpy does). numba loads on the first step."""
    global _adam_kernel
    if _adam_kernel is None:
        from .._kernels import families, optimizers

        families.announce(optimizers.adam, "optimizers' Adam update")
        _adam_kernel = optimizers.adam
    maximum = state.get("max_exp_avg_sq")
    _adam_kernel(
        value.reshape(-1), grad.reshape(-1), state["exp_avg"].reshape(-1), state["exp_avg_sq"].reshape(-1),
        _NO_MAXIMUM[value.dtype] if maximum is None else maximum.reshape(-1),
        float(1 - beta1), float(beta2), float(1 - beta2), float(lr / (1 - beta1**step)),
        math.sqrt(1 - beta2**step), float(eps), float(l2), float(keep),
    )  # fmt: skip


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay; follows ``torch.optim.SGD``."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ):
        _check_nonnegative(nan_allowed=True, lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(
            params,
            dict(
                lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                maximize=maximize,
            ),
        )  # fmt: skip

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, momentum, dampening = float(group["lr"]), group["momentum"], group["dampening"]
            for parameter, value, grad in self._gradients(group):
                if group["weight_decay"]:
                    grad = grad + group["weight_decay"] * value
                if momentum:
                    state = self.state.setdefault(id(parameter), {})
                    buffer = state.get("momentum_buffer")
                    if buffer is None:
                        buffer = state["momentum_buffer"] = np.array(grad, copy=True)
                    else:
                        buffer *= momentum
                        buffer += (1 - dampening) * grad
                    grad = grad + momentum * buffer if group["nesterov"] else buffer
                value -= (lr * grad).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


class Adam(Optimizer):
    """Adam (with ``amsgrad`` and L2 ``weight_decay``); follows ``torch.optim.Adam``."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ):
        _check_nonnegative(lr=lr, eps=eps)
        _check_betas(betas)
        _check_nonnegative(weight_decay=weight_decay)
        from ..tensor import Tensor

        if isinstance(lr, Tensor) and foreach and not capturable:
            raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True")
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        super().__init__(
            params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        )

    _decoupled = False

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = float(group["lr"]), group["betas"], group["eps"], group["weight_decay"]
            for parameter, value, grad in self._gradients(group):
                state = self.state.setdefault(id(parameter), {})
                if not state:
                    state.update(step=np.array(0.0), exp_avg=np.zeros_like(value), exp_avg_sq=np.zeros_like(value))
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = np.zeros_like(value)
                fused = _fusable(value, grad)
                if fused:
                    for key in (
                        ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if group["amsgrad"] else ("exp_avg", "exp_avg_sq")
                    ):
                        _buffer_for(state, key, value)
                if decay and not fused:
                    if self._decoupled:
                        value *= 1 - lr * decay
                    else:
                        grad = grad + decay * value
                state["step"] += 1
                step = float(state["step"])
                if fused:
                    l2, keep = (0.0, 1 - lr * decay) if self._decoupled else (decay, 1.0)
                    _fused_adam(value, grad, state, lr, beta1, beta2, eps, l2, keep, step)
                else:
                    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                    exp_avg += (1 - beta1) * (grad - exp_avg)  # PyTorch's lerp form
                    exp_avg_sq *= beta2
                    exp_avg_sq += (1 - beta2) * grad * grad
                    second = exp_avg_sq
                    if group["amsgrad"]:
                        np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
                        second = state["max_exp_avg_sq"]
                    step_size = lr / (1 - beta1**step)
                    denominator = np.sqrt(second) / math.sqrt(1 - beta2**step) + eps
                    value -= (step_size * exp_avg / denominator).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01), as ``torch.optim.AdamW``."""

    _decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ):
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize, capturable=capturable,
            fused=fused,
        )  # fmt: skip


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "LBFGS", "lr_scheduler"]


class RMSprop(Optimizer):
    """RMSprop (with ``momentum``, ``centered`` and L2 ``weight_decay``); follows
    ``torch.optim.RMSprop``."""

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ):
        _check_nonnegative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        super().__init__(
            params,
            dict(
                lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
                maximize=maximize,
            ),
        )  # fmt: skip

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, alpha, eps = float(group["lr"]), group["alpha"], group["eps"]
            for parameter, value, grad in self._gradients(group):
                state = self.state.setdefault(id(parameter), {})
                if not state:
                    state.update(step=np.array(0.0), square_avg=np.zeros_like(value))
                    if group["momentum"]:
                        state["momentum_buffer"] = np.zeros_like(value)
                    if group["centered"]:
                        state["grad_avg"] = np.zeros_like(value)
                state["step"] += 1
                if group["weight_decay"]:
                    grad = grad + group["weight_decay"] * value
                square_avg = state["square_avg"]
                square_avg *= alpha
                square_avg += (1 - alpha) * grad * grad
                if group["centered"]:
                    grad_avg = state["grad_avg"]
                    grad_avg += (1 - alpha) * (grad - grad_avg)  # PyTorch's lerp form
                    average = np.sqrt(square_avg - grad_avg * grad_avg) + eps
                else:
                    average = np.sqrt(square_avg) + eps
                if group["momentum"]:
                    buffer = state["momentum_buffer"]
                    buffer *= group["momentum"]
                    buffer += grad / average
                    value -= (lr * buffer).astype(value.dtype, copy=False)
                else:
                    value -= (lr * grad / average).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


class Adagrad(Optimizer):
    """Adagrad (with ``lr_decay``, ``initial_accumulator_value`` and L2 ``weight_decay``);
    follows ``torch.optim.Adagrad``."""

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ):
        _check_nonnegative(
            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )  # fmt: skip
        super().__init__(
            params,
            dict(
                lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize,
            ),
        )  # fmt: skip

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for parameter, value, grad in self._gradients(group):
                state = self.state.setdefault(id(parameter), {})
                if not state:
                    state.update(step=np.array(0.0), sum=np.full_like(value, group["initial_accumulator_value"]))
                state["step"] += 1
                if group["weight_decay"]:
                    grad = grad + group["weight_decay"] * value
                clr = float(group["lr"]) / (1 + (float(state["step"]) - 1) * group["lr_decay"])
                state["sum"] += grad * grad
                value -= (clr * grad / (np.sqrt(state["sum"]) + group["eps"])).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


class Adadelta(Optimizer):
    """Adadelta (with L2 ``weight_decay``); follows ``torch.optim.Adadelta``."""

    def __init__(
        self,
        params,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ):
        _check_nonnegative(lr=lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        _check_nonnegative(eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            rho, eps = group["rho"], group["eps"]
            for parameter, value, grad in self._gradients(group):
                state = self.state.setdefault(id(parameter), {})
                if not state:
                    state.update(step=np.array(0.0), square_avg=np.zeros_like(value), acc_delta=np.zeros_like(value))
                state["step"] += 1
                if group["weight_decay"]:
                    grad = grad + group["weight_decay"] * value
                square_avg, acc_delta = state["square_avg"], state["acc_delta"]
                square_avg *= rho
                square_avg += (1 - rho) * grad * grad
                delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * grad
                acc_delta *= rho
                acc_delta += (1 - rho) * delta * delta
                value -= (float(group["lr"]) * delta).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


from .lbfgs import LBFGS  # noqa: E402 - it builds on Optimizer, above
