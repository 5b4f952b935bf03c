"""``tapegrad.optim``: SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, NAdam, RAdam (and LBFGS) with PyTorch's update
rules, on the parameters' arrays in place (a step bumps their version counters, as PyTorch's
in-place updates do). ``foreach`` and ``fused`` choose among PyTorch's implementations of the
same update; they are accepted and change nothing here: Adam and AdamW always update a C-ordered
float32 or float64 parameter in one compiled loop (``tapegrad/_kernels/optimizers.py``, as
PyTorch's ``fused=True``), with the bits of the numpy calls the others take.

``optimizer.state`` holds what PyTorch's holds: per parameter, tensors of its shape and dtype
(``exp_avg``, ``momentum_buffer``...) and a 0-d float32 ``step``. The updates write the arrays
those tensors wrap, in place, so that keeping the state as tensors copies nothing."""

from __future__ import annotations

import math

import numpy as np

from .. import _grad_mode
from .._record import _bump_version
from ..tensor import Tensor, _wrap
from . import lr_scheduler, swa_utils
from .lbfgs import LBFGS
from .optimizer import (
    Optimizer,
    _check_betas,
    _check_nonnegative,
    _refuse_inside_a_recording,
    _scalar_dtype,
    _step_tensor,
)


def _size_mismatch(a: tuple, b: tuple) -> RuntimeError:
    """PyTorch's error for a state buffer of shape ``a`` updated with a parameter of shape ``b``
    (a state loaded for other parameters)."""
    width = max(len(a), len(b))
    a, b = (1,) * (width - len(a)) + a, (1,) * (width - len(b)) + b
    for dim in reversed(range(width)):
        if a[dim] != b[dim] and a[dim] != 1 and b[dim] != 1:
            return RuntimeError(
                f"The size of tensor a ({a[dim]}) must match the size of tensor b ({b[dim]}) at non-singleton "
                f"dimension {dim}"
            )
    # Broadcastable: the update writing into the smaller one fails, as PyTorch's does (the
    # buffer's lerp_ when it is smaller, else the parameter's addcdiv_).
    broadcast = np.broadcast_shapes(a, b)
    smaller = a if a != broadcast else b
    return RuntimeError(f"output with shape {list(smaller)} doesn't match the broadcast shape {list(broadcast)}")


def _buffer(state: dict, key: str, value: np.ndarray, c_ordered: bool = False) -> np.ndarray:
    """The array of the tensor ``state[key]``, checked against its parameter's array
    ``value``: PyTorch's ``RuntimeError`` for another shape; cast to the parameter's dtype, and
    C-ordered with ``c_ordered`` (a parameter first stepped as a non-contiguous array has
    F-ordered buffers; the compiled update must not run on copies of them). A new array
    replaces the tensor's own, so that ``state[key]`` stays the same tensor."""
    tensor = state[key]
    try:
        buffer = tensor._data
    except AttributeError:  # an array or a list put there by hand
        tensor = state[key] = _wrap(np.asarray(tensor))
        buffer = tensor._data
    if buffer.shape != value.shape:
        raise _size_mismatch(buffer.shape, value.shape)
    # (numpy's dtypes of a kind are one object: ``is`` answers first, in a tenth of the time)
    if (
        (buffer.dtype is not value.dtype and buffer.dtype != value.dtype)
        or (c_ordered and not buffer.flags.c_contiguous)
        or not buffer.flags.writeable  # (loaded from read-only arrays: the update writes it)
    ):
        buffer = tensor._data = np.array(buffer, dtype=value.dtype, order="C" if c_ordered else "K")
    return buffer


def _advance(state: dict, fused=None) -> float:
    """Add one to the state's ``step`` tensor, in place (PyTorch's ``step_t += 1``, in its dtype);
    its new value."""
    step = state["step"]
    if not isinstance(step, Tensor):
        step = state["step"] = _step_tensor(step, fused)
    count = step._data
    count += 1
    return float(count)


def _zeros(value: np.ndarray) -> Tensor:
    """A state buffer for the parameter array ``value``: zeros of its shape, dtype and layout
    (PyTorch's ``zeros_like(p, memory_format=torch.preserve_format)``)."""
    return _wrap(np.zeros_like(value))


def _step_zero(fused=None) -> Tensor:
    """A new state's ``step``: 0, a 0-d tensor of PyTorch's dtype for it."""
    return _wrap(np.zeros((), _scalar_dtype(fused)))


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
        and value.flags.writeable  # (a read-only parameter: numpy's ValueError, not numba's typing error)
    )


_NO_MAXIMUM = {np.dtype(np.float32): np.zeros(0, np.float32), np.dtype(np.float64): np.zeros(0, np.float64)}
_adam_kernel = None


def _fused_adam(value, grad, exp_avg, exp_avg_sq, maximum, lr, beta1, beta2, eps, l2, keep, step) -> None:
    """Adam's update of one parameter in one compiled pass (``tapegrad/_kernels/optimizers.py``,
    which casts the constants to its dtype as numpy does); ``maximum`` is amsgrad's buffer, or
    None. numba loads on the first step."""
    global _adam_kernel
    if _adam_kernel is None:
        from .._kernels import families, optimizers

        families.announce(optimizers.adam, "optimizers' Adam update")
        _adam_kernel = optimizers.adam
    _adam_kernel(
        value.reshape(-1), grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1),
        _NO_MAXIMUM[value.dtype] if maximum is None else maximum.reshape(-1),
        float(1 - beta1), float(beta2), float(1 - beta2), float(lr / (1 - beta1**step)),
        math.sqrt(1 - beta2**step), float(eps), float(l2), float(keep),
    )  # fmt: skip


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay; follows
    ``torch.optim.SGD``. With momentum, ``state[p]["momentum_buffer"]`` is a tensor from the
    first step on (a copy of that step's gradient); without, there is no state."""

    _group_defaults = dict(nesterov=False, maximize=False, foreach=None, differentiable=False, fused=False)
    _steps_differentiably = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
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
                maximize=maximize, foreach=foreach, differentiable=differentiable, fused=fused,
            ),
        )  # fmt: skip

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            if group["differentiable"]:
                self._recorded_step(group)
                continue
            lr, momentum, dampening = float(group["lr"]), float(group["momentum"]), float(group["dampening"])
            # Which buffers exist before the step, read once, as PyTorch reads its buffer list: a
            # parameter listed twice (tied weights gathered from two modules) starts two buffers
            # on its first step, and updates its one buffer twice on the later ones.
            fresh = {id(p) for p in group["params"] if self.state.get(p, {}).get("momentum_buffer") is None}
            for parameter, value, grad in self._gradients(group):
                if value.dtype.kind in "biu" and isinstance(group["lr"], float):  # (was silently no step)
                    raise RuntimeError(
                        "For integral input tensors, argument alpha must not be a floating point number."
                    )
                if group["weight_decay"]:
                    grad = grad + float(group["weight_decay"]) * value
                if momentum:
                    state = self.state[parameter]
                    if id(parameter) in fresh:
                        buffer = np.array(grad, copy=True)
                        state["momentum_buffer"] = _wrap(buffer)
                    else:
                        buffer = _buffer(state, "momentum_buffer", value)
                        buffer *= momentum
                        buffer += (1 - dampening) * grad
                    grad = grad + momentum * buffer if group["nesterov"] else buffer
                value -= (lr * grad).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss

    def _recorded_step(self, group: dict) -> None:
        """``differentiable=True``: the update made of recorded in-place tensor ops, as
        PyTorch's, so that the updated parameters (non-leaf tensors) carry the step on their
        graph (a gradient through the step: meta-learning). The momentum buffer starts as a
        detached copy of the first gradient, as PyTorch's."""
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        with _grad_mode.enable_grad():
            for parameter in group["params"]:
                grad = parameter.grad
                if grad is None:
                    continue
                if group["maximize"]:
                    grad = -grad
                if group["weight_decay"]:
                    grad = grad + parameter * group["weight_decay"]
                if momentum:
                    state = self.state[parameter]
                    buffer = state.get("momentum_buffer")
                    if buffer is None:
                        buffer = state["momentum_buffer"] = grad.clone().detach()
                    else:
                        buffer.mul_(momentum).add_(grad, alpha=1 - dampening)
                    grad = grad + buffer * momentum if group["nesterov"] else buffer
                parameter.add_(grad, alpha=-lr)


class Adam(Optimizer):
    """Adam (with ``amsgrad``, and L2 or, with ``decoupled_weight_decay``, AdamW's weight
    decay); follows ``torch.optim.Adam``. ``state[p]`` holds ``step`` (a 0-d float32 tensor),
    ``exp_avg`` and ``exp_avg_sq`` (and ``max_exp_avg_sq`` with amsgrad), tensors of the
    parameter's shape and dtype."""

    _group_defaults = dict(
        amsgrad=False, maximize=False, foreach=None, capturable=False, differentiable=False,
        decoupled_weight_decay=False, fused=None,
    )  # fmt: skip
    _step_is_tensor = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ):
        _check_nonnegative(lr=lr, eps=eps)
        if isinstance(betas[0], Tensor) != isinstance(betas[1], Tensor):  # (PyTorch's Adam alone)
            raise ValueError("betas must be either both floats or both Tensors")
        _check_betas(betas)
        _check_nonnegative(weight_decay=weight_decay)
        if isinstance(lr, Tensor) and foreach and not capturable:
            raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True")
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        super().__init__(
            params,
            dict(
                lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused,
                decoupled_weight_decay=decoupled_weight_decay,
            ),
        )  # fmt: skip

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = float(group["lr"]), group["betas"], group["eps"], group["weight_decay"]
            amsgrad, decoupled = group["amsgrad"], group.get("decoupled_weight_decay", False)
            for parameter, value, grad in self._gradients(group):
                state = self.state[parameter]
                if not state:
                    state["step"] = _step_zero(group["fused"])
                    state["exp_avg"] = _zeros(value)
                    state["exp_avg_sq"] = _zeros(value)
                    if amsgrad:
                        state["max_exp_avg_sq"] = _zeros(value)
                fused = _fusable(value, grad)
                exp_avg = _buffer(state, "exp_avg", value, fused)
                exp_avg_sq = _buffer(state, "exp_avg_sq", value, fused)
                maximum = _buffer(state, "max_exp_avg_sq", value, fused) if amsgrad else None
                if decay and not fused:
                    if decoupled:
                        value *= 1 - lr * decay
                    else:
                        grad = grad + decay * value
                step = _advance(state, group["fused"])
                if fused:
                    l2, keep = (0.0, 1 - lr * decay) if decoupled else (decay, 1.0)
                    _fused_adam(value, grad, exp_avg, exp_avg_sq, maximum, lr, beta1, beta2, eps, l2, keep, step)
                else:
                    exp_avg += (1 - beta1) * (grad - exp_avg)  # PyTorch's lerp form
                    exp_avg_sq *= beta2
                    exp_avg_sq += (1 - beta2) * grad * grad
                    second = exp_avg_sq
                    if amsgrad:
                        np.maximum(maximum, exp_avg_sq, out=maximum)
                        second = maximum
                    step_size = lr / (1 - beta1**step)
                    denominator = np.sqrt(second) / math.sqrt(1 - beta2**step) + eps
                    value -= (step_size * exp_avg / denominator).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01), as ``torch.optim.AdamW``: its groups'
    ``decoupled_weight_decay`` is always True, a loaded state dict's too."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ):
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize, capturable=capturable,
            differentiable=differentiable, fused=fused, decoupled_weight_decay=True,
        )  # fmt: skip

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "LBFGS", "lr_scheduler", "swa_utils"]


class RMSprop(Optimizer):
    """RMSprop (with ``momentum``, ``centered`` and L2 ``weight_decay``); follows
    ``torch.optim.RMSprop``. ``state[p]`` holds ``step`` (a 0-d float32 tensor) and
    ``square_avg`` (and ``momentum_buffer``, ``grad_avg``), tensors of the parameter's shape."""

    _group_defaults = dict(
        momentum=0, centered=False, foreach=None, maximize=False, differentiable=False, capturable=False
    )
    _step_is_tensor = True

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
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
                lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered, weight_decay=weight_decay,
                capturable=capturable, foreach=foreach, maximize=maximize, differentiable=differentiable,
            ),
        )  # fmt: skip

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, alpha, eps, momentum = float(group["lr"]), float(group["alpha"]), group["eps"], float(group["momentum"])
            for parameter, value, grad in self._gradients(group):
                state = self.state[parameter]
                if not state:
                    state["step"] = _step_zero()
                    state["square_avg"] = _zeros(value)
                    if momentum > 0:
                        state["momentum_buffer"] = _zeros(value)
                    if group["centered"]:
                        state["grad_avg"] = _zeros(value)
                _advance(state)
                if group["weight_decay"]:
                    grad = grad + float(group["weight_decay"]) * value
                square_avg = _buffer(state, "square_avg", value)
                square_avg *= alpha
                square_avg += (1 - alpha) * grad * grad
                if group["centered"]:
                    grad_avg = _buffer(state, "grad_avg", value)
                    grad_avg += (1 - alpha) * (grad - grad_avg)  # PyTorch's lerp form
                    average = np.sqrt(square_avg - grad_avg * grad_avg) + eps
                else:
                    average = np.sqrt(square_avg) + eps
                if momentum > 0:
                    buffer = _buffer(state, "momentum_buffer", value)
                    buffer *= momentum
                    buffer += grad / average
                    value -= (lr * buffer).astype(value.dtype, copy=False)
                else:
                    value -= (lr * grad / average).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


class Adagrad(Optimizer):
    """Adagrad (with ``lr_decay``, ``initial_accumulator_value`` and L2 ``weight_decay``);
    follows ``torch.optim.Adagrad``: every parameter has its state from the start, ``step`` (a
    0-d float32 tensor, 0) and ``sum`` (a tensor of the parameter's shape, filled with
    ``initial_accumulator_value``)."""

    _group_defaults = dict(foreach=None, maximize=False, differentiable=False, fused=None)
    _step_is_tensor = True

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
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
                lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                differentiable=differentiable, fused=fused,
            ),
        )  # fmt: skip
        for group in self.param_groups:
            for parameter in group["params"]:
                self._start(self.state[parameter], parameter._data, group)

    def _start(self, state: dict, value: np.ndarray, group: dict) -> None:
        # The constructor's value, for the groups added later too (PyTorch's, which reads
        # ``self.defaults`` rather than the group's).
        state["step"] = _step_zero(group["fused"])
        state["sum"] = _wrap(np.full_like(value, self.defaults["initial_accumulator_value"]))

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for parameter, value, grad in self._gradients(group):
                state = self.state[parameter]
                if not state:
                    self._start(state, value, group)
                step = _advance(state, group["fused"])
                if group["weight_decay"]:
                    grad = grad + float(group["weight_decay"]) * value
                clr = float(group["lr"]) / (1 + (step - 1) * group["lr_decay"])
                total = _buffer(state, "sum", value)
                total += grad * grad
                value -= (clr * grad / (np.sqrt(total) + group["eps"])).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


class Adadelta(Optimizer):
    """Adadelta (with L2 ``weight_decay``); follows ``torch.optim.Adadelta``. ``state[p]``
    holds ``step`` (a 0-d float32 tensor), ``square_avg`` and ``acc_delta``."""

    _group_defaults = dict(foreach=None, maximize=False, differentiable=False, capturable=False)
    _step_is_tensor = True

    _CAPTURE_DEVICES = "['cuda', 'xpu', 'hpu', 'privateuseone']"  # (PyTorch's list for it)

    def __init__(
        self,
        params,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
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
        super().__init__(
            params,
            dict(
                lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize, capturable=capturable,
                foreach=foreach, differentiable=differentiable,
            ),
        )  # fmt: skip

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            rho, eps = group["rho"], group["eps"]
            for parameter, value, grad in self._gradients(group):
                state = self.state[parameter]
                if not state:
                    state["step"] = _step_zero()
                    state["square_avg"] = _zeros(value)
                    state["acc_delta"] = _zeros(value)
                _advance(state)
                if group["weight_decay"]:
                    grad = grad + float(group["weight_decay"]) * value
                square_avg, acc_delta = _buffer(state, "square_avg", value), _buffer(state, "acc_delta", value)
                square_avg *= rho
                square_avg += (1 - rho) * grad * grad
                delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * grad
                acc_delta *= rho
                acc_delta += (1 - rho) * delta * delta
                value -= (float(group["lr"]) * delta).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


def _lerp_toward(buffer: np.ndarray, target: np.ndarray, weight: float) -> None:
    """``buffer.lerp_(target, weight)`` in place, by PyTorch's formula (from the nearer end)."""
    if weight < 0.5:
        buffer += weight * (target - buffer)
    else:
        buffer[...] = target - (target - buffer) * (1 - weight)


def _decayed(group: dict, value: np.ndarray, grad: np.ndarray, decoupled: bool) -> np.ndarray:
    """The gradient with L2 ``weight_decay`` added, or with ``decoupled`` (AdamW's) the parameter
    shrunk in place by ``lr * weight_decay`` and the gradient as it is."""
    decay = group["weight_decay"]
    if not decay:
        return grad
    if decoupled:
        value *= 1 - float(group["lr"]) * decay
        return grad
    return grad + decay * value


def _moments(state: dict, group: dict, value: np.ndarray, grad: np.ndarray, extra: tuple = ()) -> tuple:
    """NAdam's and RAdam's shared start of a step: the state made on the first (``step``,
    ``extra``'s ``(key, tensor)`` pairs, ``exp_avg``, ``exp_avg_sq``: PyTorch's order), the step counted, the weight decay applied (L2, or with
    ``decoupled_weight_decay`` AdamW's), and both moments updated in place, as PyTorch's
    (``exp_avg.lerp_``, ``exp_avg_sq.mul_(beta2).addcmul_``). Returns ``(step, grad, exp_avg,
    exp_avg_sq)``."""
    if "step" not in state:
        state["step"] = _step_zero()
        state.update(extra)
        state["exp_avg"] = _zeros(value)
        state["exp_avg_sq"] = _zeros(value)
    step = _advance(state)
    grad = _decayed(group, value, grad, group["decoupled_weight_decay"])
    beta1, beta2 = (float(beta) for beta in group["betas"])
    exp_avg, exp_avg_sq = _buffer(state, "exp_avg", value), _buffer(state, "exp_avg_sq", value)
    _lerp_toward(exp_avg, grad, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    return step, grad, exp_avg, exp_avg_sq


def _moment_defaults(lr, betas, eps, weight_decay, momentum_decay=None, **options) -> dict:
    """The checked hyperparameters of an optimizer with Adam's moments (Adamax, NAdam, RAdam),
    in PyTorch's order of checks, as a param group's defaults."""
    _check_nonnegative(lr=lr, eps=eps)
    _check_betas(betas)
    extra = {} if momentum_decay is None else {"momentum_decay": momentum_decay}
    _check_nonnegative(weight_decay=weight_decay, **extra)
    return dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **extra, **options)


class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm (with L2 ``weight_decay``); follows
    ``torch.optim.Adamax``. ``state[p]`` holds ``step`` (a 0-d float32 tensor), ``exp_avg`` and
    ``exp_inf``. Raises PyTorch's ``ValueError`` for invalid hyperparameters."""

    _group_defaults = dict(foreach=None, maximize=False, differentiable=False, capturable=False)
    _step_is_tensor = True

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 foreach=None, *, maximize: bool = False, differentiable: bool = False, capturable: bool = False):  # fmt: skip
        super().__init__(
            params,
            _moment_defaults(lr, betas, eps, weight_decay, foreach=foreach, maximize=maximize,
                             differentiable=differentiable, capturable=capturable),
        )  # fmt: skip

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            (beta1, beta2), eps = (float(beta) for beta in group["betas"]), group["eps"]
            for parameter, value, grad in self._gradients(group):
                state = self.state[parameter]
                if not state:
                    state["step"] = _step_zero()
                    state["exp_avg"] = _zeros(value)
                    state["exp_inf"] = _zeros(value)
                step = _advance(state)
                grad = _decayed(group, value, grad, False)
                exp_avg, exp_inf = _buffer(state, "exp_avg", value), _buffer(state, "exp_inf", value)
                _lerp_toward(exp_avg, grad, 1 - beta1)
                exp_inf *= beta2
                np.maximum(exp_inf, np.abs(grad) + eps, out=exp_inf)
                rate = float(group["lr"]) / (1 - beta1**step)
                value -= (rate * exp_avg / exp_inf).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


class NAdam(Optimizer):
    """Adam with Nesterov momentum and a momentum schedule (``momentum_decay``), L2 or, with
    ``decoupled_weight_decay``, AdamW's weight decay; follows ``torch.optim.NAdam``.
    ``state[p]`` holds ``step`` and ``mu_product`` (0-d float32 tensors: the product of the
    momentum schedule, in float32 as PyTorch keeps it), ``exp_avg`` and ``exp_avg_sq``."""

    _group_defaults = dict(foreach=None, maximize=False, differentiable=False, capturable=False)
    _step_is_tensor = True

    _CAPTURED = "params, mu_products and state_steps"

    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False):  # fmt: skip
        super().__init__(
            params,
            _moment_defaults(lr, betas, eps, weight_decay, momentum_decay=momentum_decay,
                             decoupled_weight_decay=decoupled_weight_decay, foreach=foreach, maximize=maximize,
                             capturable=capturable, differentiable=differentiable),
        )  # fmt: skip

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            (beta1, beta2), eps, lr = (float(beta) for beta in group["betas"]), group["eps"], float(group["lr"])
            for parameter, value, grad in self._gradients(group):
                state = self.state[parameter]
                fresh = () if state else (("mu_product", _wrap(np.ones((), _scalar_dtype()))),)
                step, grad, exp_avg, exp_avg_sq = _moments(state, group, value, grad, fresh)
                decay = group["momentum_decay"]
                mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * decay))
                mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * decay))
                product = state["mu_product"]._data
                product *= mu  # (in the tensor's float32, as PyTorch's)
                mu_product = float(product)
                denom = np.sqrt(exp_avg_sq / (1 - beta2**step)) + eps
                value += ((-lr * (1.0 - mu) / (1.0 - mu_product)) * grad / denom).astype(value.dtype, copy=False)
                value += ((-lr * mu_next / (1.0 - mu_product * mu_next)) * exp_avg / denom).astype(
                    value.dtype, copy=False
                )
                _bump_version(parameter)
        return loss


class RAdam(Optimizer):
    """Rectified Adam: plain momentum steps until the variance estimate is reliable (its
    ``rho_t`` above 5), then Adam's, rectified; L2 or, with ``decoupled_weight_decay``,
    AdamW's weight decay. Follows ``torch.optim.RAdam``; ``state[p]`` holds ``step`` (a 0-d
    float32 tensor), ``exp_avg`` and ``exp_avg_sq``."""

    _group_defaults = dict(foreach=None, maximize=False, differentiable=False, capturable=False)
    _step_is_tensor = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
                 decoupled_weight_decay: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False):  # fmt: skip
        super().__init__(
            params,
            _moment_defaults(lr, betas, eps, weight_decay, decoupled_weight_decay=decoupled_weight_decay,
                             foreach=foreach, maximize=maximize, capturable=capturable, differentiable=differentiable),
        )  # fmt: skip

    def step(self, closure=None):
        _refuse_inside_a_recording()
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            (beta1, beta2), eps, lr = (float(beta) for beta in group["betas"]), group["eps"], float(group["lr"])
            for parameter, value, grad in self._gradients(group):
                step, grad, exp_avg, exp_avg_sq = _moments(self.state[parameter], group, value, grad)
                correction1, correction2 = 1 - beta1**step, 1 - beta2**step
                corrected = exp_avg / correction1
                rho_inf = 2 / (1 - beta2) - 1
                rho_t = rho_inf - 2 * step * (beta2**step) / correction2
                if rho_t > 5.0:
                    rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
                    adaptive = (correction2**0.5) / (np.sqrt(exp_avg_sq) + eps)
                    value -= (corrected * lr * adaptive * rect).astype(value.dtype, copy=False)
                else:
                    value -= (corrected * lr).astype(value.dtype, copy=False)
                _bump_version(parameter)
        return loss


__all__ += ["Adamax", "NAdam", "RAdam"]
