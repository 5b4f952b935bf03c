"""``tapegrad.optim``: SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta (and LBFGS) with PyTorch's update
rules, on the parameters' arrays in place (a step bumps their version counters, as PyTorch's
in-place updates do). ``foreach`` and ``fused`` choose among PyTorch's implementations of the
same update; they are accepted and change nothing here: Adam and AdamW always update a C-ordered
float32 or float64 parameter in one compiled loop (``tapegrad/_kernels/optimizers.py``, as
PyTorch's ``fused=True``), with the bits of the numpy calls the others take."""

from __future__ import annotations

import math

import numpy as np

from .._record import _bump_version
from . import lr_scheduler
from .lbfgs import LBFGS
from .optimizer import Optimizer, _check_betas, _check_nonnegative, _refuse_inside_a_recording


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
