"""Learning-rate schedules; follows ``torch.optim.lr_scheduler`` (PyTorch 2.13).

The schedulers are chainable, as PyTorch's are: ``step()`` derives each parameter group's new
``lr`` from its present one (``StepLR`` multiplies it by ``gamma`` every ``step_size`` epochs),
so several schedulers on one optimizer compose, and an ``lr`` set by hand between steps carries
on. ``step(epoch)`` jumps to an epoch through the closed form, where PyTorch has one.

Attribute names are PyTorch's, private ones included: ``state_dict()`` is the scheduler's
``__dict__`` without the optimizer, so a state saved by either library loads in the other.
"""

from __future__ import annotations

import contextlib
import functools
import math
import types
import warnings
import weakref
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from ..tensor import Tensor
from .optimizer import Optimizer

__all__ = [
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "SequentialLR",
    "CosineAnnealingLR",
    "ChainedScheduler",
    "ReduceLROnPlateau",
    "CyclicLR",
    "CosineAnnealingWarmRestarts",
    "OneCycleLR",
    "PolynomialLR",
    "LRScheduler",
]

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being "
    "deprecated where possible. Please use `scheduler.step()` to step the "
    "scheduler. During the deprecation, if epoch is different from None, the "
    "closed form is used instead of the new chainable form, where available. "
    "Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)

_SEE_HOW_TO_ADJUST = "See more details at https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"


# ---------------------------------------------------------------------------------------------
# The parameter groups' values


def _copied(value):
    """A group's value as a scheduler hands it out or keeps it: a tensor lr is copied, so that
    the lists a scheduler returns do not change when the group's lr is updated in place."""
    return value.clone() if isinstance(value, Tensor) else value


def _group_values(optimizer: Optimizer, key: str) -> list:
    return [_copied(group[key]) for group in optimizer.param_groups]


def _set_group_value(group: dict, key: str, value) -> None:
    # A tensor lr is updated in place: the optimizer (or a user's reference) holds that tensor.
    if isinstance(group[key], Tensor):
        if isinstance(value, Tensor) and value.dim() != 0:
            value = value.squeeze()
        group[key].fill_(value)
    else:
        group[key] = value


def _scaled_lrs(optimizer: Optimizer, factor) -> list:
    """Each group's present lr times ``factor``: the step of a chainable schedule."""
    return [group["lr"] * factor for group in optimizer.param_groups]


def _per_group(name: str, optimizer: Optimizer, value) -> list:
    """``value`` for each parameter group: a list or tuple gives one per group, anything else is
    repeated. Raises PyTorch's ``ValueError`` for a list of another length."""
    groups = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(value)} values, param_groups has {groups}."
            )
    else:
        value = [value] * groups
    return [_copied(item) for item in value]


def _check_optimizer(optimizer) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")


def _require_initial_lrs(optimizer: Optimizer) -> None:
    """A scheduler resumed at ``last_epoch >= 0`` takes its base lrs from the groups' saved
    ``initial_lr``; PyTorch's ``KeyError`` when one is missing."""
    for index, group in enumerate(optimizer.param_groups):
        if "initial_lr" not in group:
            raise KeyError(
                f"param 'initial_lr' is not specified in param_groups[{index}] when resuming scheduler with "
                "last_epoch >= 0.\n"
                "This typically happens when:\n"
                "1. You're trying to resume training from a checkpoint but haven't properly loaded the optimizer "
                "state\n"
                "2. You're using last_epoch >= 0 for a fresh training run (not recommended)"
            )


def _momentum_key_is_beta1(optimizer: Optimizer) -> bool:
    """Whether a cycled momentum is ``betas[0]`` (Adam's) rather than ``momentum`` (SGD's).
    Raises PyTorch's ``ValueError`` when the optimizer has neither."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
    return "betas" in optimizer.defaults


def _set_momentum(group: dict, use_beta1: bool, momentum) -> None:
    if use_beta1:
        group["betas"] = (momentum, *group["betas"][1:])
    else:
        group["momentum"] = momentum


def _start_momentum_cycle(optimizer, use_beta1, max_momentums, base_momentums) -> None:
    """A fresh cycle starts at the maximum momentum; the groups keep both ends, which OneCycleLR
    reads back by name and an optimizer's state_dict saves."""
    for group, maximum, base in zip(optimizer.param_groups, max_momentums, base_momentums, strict=True):
        _set_momentum(group, use_beta1, maximum)
        group["max_momentum"] = maximum
        group["base_momentum"] = base


# ---------------------------------------------------------------------------------------------
# Steps of the optimizer and of the scheduler


class _NotingStep:
    """``optimizer.step`` that notes in ``optimizer._opt_called`` that it ran, for the warning
    when ``scheduler.step()`` comes first. It holds the optimizer weakly, as PyTorch's wrapper
    does: a reference cycle would keep a dropped optimizer, and its parameters, alive until the
    garbage collector runs."""

    _wrapped_by_lr_sched = True

    def __init__(self, optimizer: Optimizer, function) -> None:
        functools.update_wrapper(self, function)
        self._optimizer = weakref.ref(optimizer)
        self.__func__ = function

    def __call__(self, *args, **kwargs):
        optimizer = self._optimizer()
        optimizer._opt_called = True
        return self.__func__(optimizer, *args, **kwargs)

    def __reduce__(self):
        # copy.deepcopy and pickle of the optimizer: the copy's step notes on the copy.
        return type(self), (self._optimizer(), self.__func__)


def _count_optimizer_steps(optimizer: Optimizer) -> None:
    if not hasattr(optimizer.step, "_wrapped_by_lr_sched"):
        optimizer.step = _NotingStep(optimizer, optimizer.step.__func__)


@contextlib.contextmanager
def _flag(scheduler, name: str):
    """``scheduler.<name>`` is True inside the block (an instance attribute, as PyTorch sets it,
    so that it shows in state_dict)."""
    setattr(scheduler, name, True)
    try:
        yield
    finally:
        setattr(scheduler, name, False)


def _warn_unless_stepping(scheduler) -> None:
    """``get_lr()`` of a chainable schedule steps the lr: called by the user, it is not the lr."""
    if not scheduler._get_lr_called_within_step:
        warnings.warn(
            "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
            UserWarning,
            stacklevel=3,
        )


class LRScheduler:
    """Base of the epoch-driven schedulers: ``step()`` sets each group's lr to ``get_lr()``;
    follows ``torch.optim.lr_scheduler.LRScheduler``. Raises ``TypeError`` when ``optimizer`` is
    not an Optimizer, and PyTorch's ``KeyError`` when ``last_epoch != -1`` and a group has no
    ``"initial_lr"``; ``get_lr`` raises ``NotImplementedError`` unless a subclass defines it."""

    # Class defaults of the flags _flag sets on the instance; a subclass that skips __init__
    # (ChainedScheduler, SequentialLR, ReduceLROnPlateau) still reads them.
    _is_initial = False
    _get_lr_called_within_step = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                # setdefault: a second scheduler on the optimizer shares the first one's base.
                group.setdefault("initial_lr", _copied(group["lr"]))
        else:
            _require_initial_lrs(optimizer)
        self.base_lrs = _group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        _count_optimizer_steps(optimizer)
        self._initial_step()

    def _initial_step(self) -> None:
        """The constructor's step to epoch ``last_epoch + 1``; chainable schedules that would
        scale the lr again on resuming leave it as it is while ``_is_initial``."""
        self._step_count = 0
        with _flag(self, "_is_initial"):
            self.step()

    def state_dict(self) -> dict:
        """Every attribute but the optimizer."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)

    def get_last_lr(self) -> list:
        """The groups' lrs as the last step set them."""
        return self._last_lr

    def get_lr(self) -> list:
        """The groups' lrs at ``last_epoch``, computed by each schedule."""
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or, deprecated, jump to ``epoch``) and set the groups' lrs."""
        if self._step_count == 1:
            self._warn_if_stepped_before_the_optimizer()
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _warn_if_stepped_before_the_optimizer(self) -> None:
        # Stepping the scheduler first skips the schedule's first lr (PyTorch < 1.1's order).
        if not hasattr(self.optimizer.step, "_wrapped_by_lr_sched"):
            warnings.warn(
                "Seems like `optimizer.step()` has been overridden after learning rate scheduler initialization. "
                "Please, make sure to call `optimizer.step()` before `lr_scheduler.step()`. " + _SEE_HOW_TO_ADJUST,
                UserWarning,
                stacklevel=3,
            )
        elif not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`. In PyTorch 1.1.0 and later, you "
                "should call them in the opposite order: `optimizer.step()` before `lr_scheduler.step()`.  Failure "
                "to do this will result in PyTorch skipping the first value of the learning rate schedule. "
                + _SEE_HOW_TO_ADJUST,
                UserWarning,
                stacklevel=3,
            )

    def _update_lr(self, epoch: int | None = None) -> None:
        """One epoch on through ``get_lr()``, or to ``epoch`` through the closed form where the
        schedule has one (a chainable step from an arbitrary epoch would be wrong)."""
        with _flag(self, "_get_lr_called_within_step"):
            if epoch is None:
                self.last_epoch += 1
                lrs = self.get_lr()
            else:
                self.last_epoch = epoch
                lrs = self._get_closed_form_lr() if hasattr(self, "_get_closed_form_lr") else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            _set_group_value(group, "lr", lr)
        self._last_lr = _group_values(self.optimizer, "lr")


class _LRScheduler(LRScheduler):
    """The former name of ``LRScheduler``; follows ``torch.optim.lr_scheduler._LRScheduler``."""


# ---------------------------------------------------------------------------------------------
# Schedules of one function of the epoch


class _LambdaScheduler(LRScheduler):
    """One function of the epoch per group (LambdaLR, MultiplicativeLR). state_dict keeps a
    callable object's attributes, not the functions themselves (lambdas do not pickle)."""

    def __init__(self, optimizer, lr_lambda, last_epoch: int) -> None:
        self.optimizer = optimizer
        groups = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != groups:
                raise ValueError(f"Expected {groups} lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * groups
        self._check_lambdas()
        super().__init__(optimizer, last_epoch)

    def _check_lambdas(self) -> None:
        pass

    def state_dict(self) -> dict:
        """Every attribute but the optimizer; of ``lr_lambdas``, a callable object's attributes
        (``None`` for a function)."""
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [
            None if isinstance(function, types.FunctionType) else function.__dict__.copy()
            for function in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        saved_lambdas = state_dict["lr_lambdas"]
        self.__dict__.update({key: value for key, value in state_dict.items() if key != "lr_lambdas"})
        for index, attributes in enumerate(saved_lambdas):
            if attributes is not None:
                self.lr_lambdas[index].__dict__.update(attributes)


class LambdaLR(_LambdaScheduler):
    """The initial lr times ``lr_lambda(epoch)``; follows ``torch.optim.lr_scheduler.LambdaLR``.
    Raises ``ValueError`` for a list of lambdas of another length than the param groups."""

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable | list, last_epoch: int = -1) -> None:
        super().__init__(optimizer, lr_lambda, last_epoch)

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        return [base * function(self.last_epoch) for function, base in zip(self.lr_lambdas, self.base_lrs, strict=True)]


class MultiplicativeLR(_LambdaScheduler):
    """The present lr times ``lr_lambda(epoch)`` every epoch; follows
    ``torch.optim.lr_scheduler.MultiplicativeLR``. Raises ``ValueError`` for a list of lambdas
    of another length than the param groups, ``TypeError`` for one that is not callable."""

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable | list, last_epoch: int = -1) -> None:
        super().__init__(optimizer, lr_lambda, last_epoch)

    def _check_lambdas(self) -> None:
        for function in self.lr_lambdas:
            if not callable(function):
                raise TypeError(f"lr_lambda should be a function, but got {type(function).__name__}")

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        groups = self.optimizer.param_groups
        return [
            group["lr"] * function(self.last_epoch) for function, group in zip(self.lr_lambdas, groups, strict=True)
        ]


# ---------------------------------------------------------------------------------------------
# Decays with a closed form


class StepLR(LRScheduler):
    """The lr times ``gamma`` every ``step_size`` epochs; follows ``torch.optim.lr_scheduler.StepLR``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _group_values(self.optimizer, "lr")
        return _scaled_lrs(self.optimizer, self.gamma)

    def _get_closed_form_lr(self) -> list:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """The lr times ``gamma`` at each milestone (a milestone given twice counts twice); follows
    ``torch.optim.lr_scheduler.MultiStepLR``."""

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        if self.last_epoch not in self.milestones:
            return _group_values(self.optimizer, "lr")
        return _scaled_lrs(self.optimizer, self.gamma ** self.milestones[self.last_epoch])

    def _get_closed_form_lr(self) -> list:
        passed = bisect_right(sorted(self.milestones.elements()), self.last_epoch)
        return [base * self.gamma**passed for base in self.base_lrs]


class ConstantLR(LRScheduler):
    """The lr times ``factor`` until epoch ``total_iters``; follows
    ``torch.optim.lr_scheduler.ConstantLR``. Raises ``ValueError`` unless 0 <= factor <= 1."""

    def __init__(
        self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1
    ) -> None:
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        if self.last_epoch == 0:
            return _scaled_lrs(self.optimizer, self.factor)
        if self.last_epoch != self.total_iters:
            return _group_values(self.optimizer, "lr")
        return _scaled_lrs(self.optimizer, 1.0 / self.factor)

    def _get_closed_form_lr(self) -> list:
        done = self.last_epoch >= self.total_iters
        return [base * (self.factor + done * (1 - self.factor)) for base in self.base_lrs]


class LinearLR(LRScheduler):
    """The lr's factor goes linearly from ``start_factor`` to ``end_factor`` over ``total_iters``
    epochs; follows ``torch.optim.lr_scheduler.LinearLR``. Raises ``ValueError`` unless
    0 < start_factor <= 1 and 0 <= end_factor <= 1."""

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        if self.last_epoch == 0:
            return _scaled_lrs(self.optimizer, self.start_factor)
        if self._is_initial or self.last_epoch > self.total_iters:
            return _group_values(self.optimizer, "lr")
        # The ratio of this epoch's factor to the previous one's.
        change = self.end_factor - self.start_factor
        previous = self.total_iters * self.start_factor + (self.last_epoch - 1) * change
        return _scaled_lrs(self.optimizer, 1.0 + change / previous)

    def _get_closed_form_lr(self) -> list:
        change = self.end_factor - self.start_factor
        progress = min(self.total_iters, self.last_epoch)
        return [base * (self.start_factor + change * progress / self.total_iters) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
    """The lr times ``gamma`` every epoch; follows ``torch.optim.lr_scheduler.ExponentialLR``."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return _scaled_lrs(self.optimizer, self.gamma)

    def _get_closed_form_lr(self) -> list:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """The lr decays as ``(1 - epoch / total_iters) ** power`` to 0 at ``total_iters``; follows
    ``torch.optim.lr_scheduler.PolynomialLR``."""

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> None:
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        if self._is_initial or self.last_epoch > self.total_iters:
            return _group_values(self.optimizer, "lr")
        ratio = (1.0 - self.last_epoch / self.total_iters) / (1.0 - (self.last_epoch - 1) / self.total_iters)
        return _scaled_lrs(self.optimizer, ratio**self.power)

    def _get_closed_form_lr(self) -> list:
        remaining = 1.0 - min(self.total_iters, self.last_epoch) / self.total_iters
        return [base * remaining**self.power for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """The lr follows a cosine from the initial lr down to ``eta_min`` over ``T_max`` epochs (and
    back up over the next ``T_max``); follows ``torch.optim.lr_scheduler.CosineAnnealingLR``."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        if self._step_count == 1 and self.last_epoch > 0:
            return self._get_closed_form_lr()
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            # Leaving the bottom, where the ratio of cosines below divides by zero: add the
            # first step of the rise instead.
            rise = 1 - math.cos(math.pi / self.T_max)
            groups = self.optimizer.param_groups
            return [
                group["lr"] + (base - self.eta_min) * rise / 2
                for base, group in zip(self.base_lrs, groups, strict=True)
            ]
        ratio = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / (
            1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max)
        )
        return [ratio * (group["lr"] - self.eta_min) + self.eta_min for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list:
        cosine = 1 + math.cos(math.pi * self.last_epoch / self.T_max)
        return [self.eta_min + (base - self.eta_min) * cosine / 2 for base in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing from the initial lr to ``eta_min`` that restarts after ``T_0`` epochs,
    each period ``T_mult`` times the last; follows
    ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts``. Raises ``ValueError`` unless
    ``T_0`` is a positive int, ``T_mult`` an int >= 1 and ``eta_min`` a number, and from
    ``step`` for a negative epoch."""

    def __init__(
        self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0, last_epoch: int = -1
    ) -> None:
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        cosine = 1 + math.cos(math.pi * self.T_cur / self.T_i)
        return [self.eta_min + (base - self.eta_min) * cosine / 2 for base in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Advance one epoch, or go to ``epoch`` (it may be fractional: a step per batch)."""
        # PyTorch's own step: neither counted (no order warning) nor warned about ``epoch``.
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self._advance_one_epoch()
        else:
            self._go_to_epoch(epoch)
        self.last_epoch = math.floor(epoch)
        with _flag(self, "_get_lr_called_within_step"):
            for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
                _set_group_value(group, "lr", lr)
        self._last_lr = _group_values(self.optimizer, "lr")

    def _advance_one_epoch(self) -> None:
        self.T_cur = self.T_cur + 1
        if self.T_cur >= self.T_i:
            self.T_cur = self.T_cur % self.T_i
            self.T_i = self.T_i * self.T_mult

    def _go_to_epoch(self, epoch: float) -> None:
        if epoch < 0:
            raise ValueError(f"Expected non-negative epoch, but got {epoch}")
        if epoch < self.T_0:
            self.T_i = self.T_0
            self.T_cur = epoch
        elif self.T_mult == 1:
            self.T_cur = epoch % self.T_0
        else:
            # Periods T_0 * T_mult**k: the restarts before ``epoch`` number n, where the
            # geometric sum T_0 (T_mult**n - 1) / (T_mult - 1) reaches it.
            restarts = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
            self.T_cur = epoch - self.T_0 * (self.T_mult**restarts - 1) / (self.T_mult - 1)
            self.T_i = self.T_0 * self.T_mult ** (restarts)


# ---------------------------------------------------------------------------------------------
# Schedulers of schedulers


class _Composite(LRScheduler):
    """A scheduler made of others on one optimizer (SequentialLR, ChainedScheduler); its state
    holds theirs."""

    def _check_schedulers(self, optimizer: Optimizer, schedulers: Sequence) -> None:
        name = type(self).__name__
        for index, scheduler in enumerate(schedulers):
            if not hasattr(scheduler, "optimizer"):
                raise TypeError(f"{name} at index {index} should have `optimizer` as its attribute.")
            if isinstance(scheduler, ReduceLROnPlateau):
                raise ValueError(
                    f"{name} does not support `ReduceLROnPlateau` scheduler as it requires additional kwargs to be "
                    f"specified when calling `step`, but got one at index {index} in the given schedulers sequence."
                )
            if optimizer != scheduler.optimizer:
                raise ValueError(
                    f"{name} expects all schedulers to belong to the same optimizer, but got scheduler "
                    f"{type(scheduler).__name__} at index {index} has {scheduler.optimizer}, which is different from "
                    f"{type(optimizer).__name__}."
                )

    def state_dict(self) -> dict:
        """Every attribute but the optimizer; the schedulers as their state dicts."""
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update({key: value for key, value in state_dict.items() if key != "_schedulers"})
        for index, state in enumerate(state_dict["_schedulers"]):
            self._schedulers[index].load_state_dict(state)


class SequentialLR(_Composite):
    """Runs ``schedulers[i]`` from ``milestones[i - 1]`` on (a warmup, then a decay); follows
    ``torch.optim.lr_scheduler.SequentialLR``. Raises ``ValueError`` for no schedulers, one on
    another optimizer, a ReduceLROnPlateau, or not one milestone fewer than schedulers, and
    ``TypeError`` for one without an optimizer."""

    def __init__(
        self, optimizer: Optimizer, schedulers: list[LRScheduler], milestones: list[int], last_epoch: int = -1
    ) -> None:
        if len(schedulers) < 1:
            raise ValueError(f"{type(self).__name__} expects at least one scheduler, but got no scheduler.")
        self._check_schedulers(optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than the number of "
                f"milestone points, but got number of schedulers {len(schedulers)} and the number of milestones to "
                f"be equal to {len(milestones)}"
            )
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        # Each scheduler's constructor stepped the groups' lrs; start again from the initial
        # ones, with only the first scheduler's initial step.
        for group in optimizer.param_groups:
            _set_group_value(group, "lr", group["initial_lr"])
        self.recursive_undo()
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def recursive_undo(self, sched=None) -> None:
        """Take back the constructors' steps: one epoch off every scheduler inside (nested ones
        too)."""
        scheduler = self if sched is None else sched
        if hasattr(scheduler, "_schedulers"):
            for inner in scheduler._schedulers:
                self.recursive_undo(inner)
        elif hasattr(scheduler, "last_epoch"):
            scheduler.last_epoch -= 1

    def step(self) -> None:
        """Advance one epoch with the scheduler whose turn it is; a scheduler starts from epoch 0
        (its closed form) at its milestone."""
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Steps every scheduler in turn, each on the lrs the previous one left; follows
    ``torch.optim.lr_scheduler.ChainedScheduler``. Raises ``ValueError`` for no schedulers, one
    on another optimizer or a ReduceLROnPlateau, and ``TypeError`` for one without an optimizer."""

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Optimizer | None = None) -> None:
        if len(schedulers) < 1:
            raise ValueError(
                f"{type(self).__name__} expects at least one scheduler to be chained, but got no scheduler."
            )
        optimizer = optimizer or schedulers[0].optimizer
        self._check_schedulers(optimizer, schedulers)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = _group_values(self._schedulers[-1].optimizer, "lr")

    def step(self) -> None:
        """Step every scheduler, in order."""
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = _group_values(self._schedulers[-1].optimizer, "lr")


# ---------------------------------------------------------------------------------------------
# A schedule driven by a metric


class ReduceLROnPlateau(LRScheduler):
    """The lr times ``factor`` when a metric has not improved for ``patience`` epochs; follows
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``. Raises ``ValueError`` for ``factor >= 1``,
    an unknown ``mode`` or ``threshold_mode``, or a list ``min_lr`` of another length than the
    param groups, ``TypeError`` when ``optimizer`` is not an Optimizer, and ``RuntimeError`` from
    ``step`` when groups were added since and ``min_lr`` was a list."""

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: list[float] | float = 0,
        eps: float = 1e-8,
    ) -> None:
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        self.factor = factor
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
            self.default_min_lr = None
            self.min_lrs = list(min_lr)
        else:
            # Kept to extend min_lrs to groups added later.
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _group_values(self.optimizer, "lr")
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics, epoch: int | None = None) -> None:
        """Take the epoch's metric (a number or a one-element tensor); reduce the lrs after more
        than ``patience`` epochs without improvement, outside a cooldown."""
        current = float(metrics)
        if epoch is None:
            epoch = self.last_epoch + 1
        else:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self.last_epoch = epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # epochs in a cooldown do not count as bad
        if self.num_bad_epochs > self.patience:
            self._reduce_lr(epoch)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = _group_values(self.optimizer, "lr")

    def _reduce_lr(self, epoch: int) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The number of param groups in the `optimizer` ({len(groups)}) differs from when "
                    f"`ReduceLROnPlateau` was initialized ({len(self.min_lrs)}), usually due to a new param group "
                    "being added to the optimizer. Please modify the `min_lrs` field to match the length of the "
                    "`optimizer` param groups."
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:  # changes smaller than eps are ignored
                _set_group_value(group, "lr", new_lr)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in {"min", "max"}:
            raise ValueError("mode " + mode + " is unknown!")
        if threshold_mode not in {"rel", "abs"}:
            raise ValueError("threshold mode " + threshold_mode + " is unknown!")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)


# ---------------------------------------------------------------------------------------------
# Cycles (with the momentum cycling the other way)


class CyclicLR(LRScheduler):
    """The lr cycles between ``base_lr`` and ``max_lr`` (triangular, triangular2, exp_range or a
    ``scale_fn``), the momentum the opposite way; follows ``torch.optim.lr_scheduler.CyclicLR``.
    Raises ``TypeError`` when ``optimizer`` is not an Optimizer, ``ValueError`` for an unknown
    mode without ``scale_fn``, a list of another length than the param groups, or
    ``cycle_momentum`` with an optimizer without momentum or betas."""

    def __init__(
        self,
        optimizer: Optimizer,
        base_lr: float | list[float],
        max_lr: float | list[float],
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: str = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.8,
        max_momentum: float | list[float] = 0.9,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        base_lrs = _per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups, strict=True):
                _set_group_value(group, "lr", lr)
        self.max_lrs = _per_group("max_lr", optimizer, max_lr)
        step_size_up = float(step_size_up)
        step_size_down = float(step_size_down) if step_size_down is not None else step_size_up
        self.total_size = step_size_up + step_size_down
        self.step_ratio = step_size_up / self.total_size
        if mode not in ["triangular", "triangular2", "exp_range"] and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._set_scale_mode_of_the_mode()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _momentum_key_is_beta1(optimizer)
            self.base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            self.max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                _start_momentum_cycle(optimizer, self.use_beta1, self.max_momentums, self.base_momentums)
        super().__init__(optimizer, last_epoch)
        # After the base constructor, which took them from the groups' initial_lr (kept from an
        # earlier scheduler, if any) for the initial step.
        self.base_lrs = base_lrs

    def _set_scale_mode_of_the_mode(self) -> None:
        """The built-in modes scale per cycle (triangular ones) or per iteration (exp_range),
        whatever ``scale_mode`` says."""
        if self._scale_fn_custom is None:
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"

    def scale_fn(self, x: float) -> float:
        """The amplitude's scale at cycle (or iteration) ``x``: ``scale_fn``, else the mode's."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma**x

    def get_lr(self) -> list:
        """The lrs at ``last_epoch``; sets the groups' momentum (or beta1) as it goes."""
        _warn_unless_stepping(self)
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        where = 1.0 + self.last_epoch / self.total_size - cycle  # in the cycle, from 0 to 1
        if where <= self.step_ratio:
            height = where / self.step_ratio
        else:
            height = (where - 1) / (self.step_ratio - 1)
        scale_at = cycle if self.scale_mode == "cycle" else self.last_epoch

        def amplitude(low, high):
            return (high - low) * height * self.scale_fn(scale_at)

        lrs = [base + amplitude(base, peak) for base, peak in zip(self.base_lrs, self.max_lrs, strict=True)]
        if self.cycle_momentum:
            momentums = [
                peak - amplitude(base, peak) for base, peak in zip(self.base_momentums, self.max_momentums, strict=True)
            ]
            for group, momentum in zip(self.optimizer.param_groups, momentums, strict=True):
                _set_momentum(group, self.use_beta1, momentum)
        return lrs

    def state_dict(self) -> dict:
        """Every attribute but the optimizer; of a custom ``scale_fn``, a callable object's
        attributes (``None`` for a function)."""
        state = super().state_dict()
        function = state.pop("_scale_fn_custom")
        keep = function is not None and not isinstance(function, types.FunctionType)
        state["_scale_fn_custom"] = function.__dict__.copy() if keep else None
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        attributes = state_dict["_scale_fn_custom"]
        super().load_state_dict({key: value for key, value in state_dict.items() if key != "_scale_fn_custom"})
        if attributes is not None:
            self._scale_fn_custom.__dict__.update(attributes)
        self._set_scale_mode_of_the_mode()


class OneCycleLR(LRScheduler):
    """The 1cycle policy: the lr rises from ``max_lr / div_factor`` to ``max_lr`` and anneals to
    far below, the momentum the opposite way, over ``total_steps`` steps; follows
    ``torch.optim.lr_scheduler.OneCycleLR``. Raises ``TypeError`` when ``optimizer`` is not an
    Optimizer, ``ValueError`` for steps that are not positive ints (or neither ``total_steps``
    nor ``epochs`` and ``steps_per_epoch``), ``pct_start`` not a float in [0, 1], an unknown
    ``anneal_strategy``, a list of another length than the param groups, ``cycle_momentum``
    with an optimizer without momentum or betas, and from ``step`` past ``total_steps``."""

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        self.total_steps = self._checked_total_steps(total_steps, epochs, steps_per_epoch)
        self._schedule_phases = self._phases(pct_start, three_phase)
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ["cos", "linear"]:
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self._anneal_func_type = anneal_strategy
        max_lrs = _per_group("max_lr", self.optimizer, max_lr)
        if last_epoch == -1:
            # The phases read their ends from the groups, by these names.
            for group, peak in zip(self.optimizer.param_groups, max_lrs):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _momentum_key_is_beta1(optimizer)
            max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                _start_momentum_cycle(optimizer, self.use_beta1, max_momentums, base_momentums)
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _checked_total_steps(total_steps, epochs, steps_per_epoch) -> int:
        if total_steps is not None:
            if total_steps <= 0 or not isinstance(total_steps, int):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            return total_steps
        if epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            return epochs * steps_per_epoch
        raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")

    def _phases(self, pct_start: float, three_phase: bool) -> list:
        """Each phase's last step, and the group keys its lr and its momentum go from and to."""
        rise_end = float(pct_start * self.total_steps) - 1
        last = self.total_steps - 1
        if three_phase:
            fall_end = float(2 * pct_start * self.total_steps) - 2
            phases = [
                (rise_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (fall_end, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (last, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            phases = [
                (rise_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (last, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        keys = ("end_step", "start_lr", "end_lr", "start_momentum", "end_momentum")
        return [dict(zip(keys, phase)) for phase in phases]

    def _anneal(self, start: float, end: float, fraction: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)
        return (end - start) * fraction + start

    def _phase_at(self, step: int) -> tuple:
        """The phase ``step`` falls in, and how far into it (0 to 1); the last phase takes all
        steps after the others."""
        start = 0.0
        for index, phase in enumerate(self._schedule_phases):
            if step <= phase["end_step"] or index == len(self._schedule_phases) - 1:
                return phase, (step - start) / (phase["end_step"] - start)
            start = phase["end_step"]

    def get_lr(self) -> list:
        """The lrs at ``last_epoch``; sets the groups' momentum (or beta1) as it goes."""
        _warn_unless_stepping(self)
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total steps is {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            phase, fraction = self._phase_at(step)
            lrs.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], fraction))
            if self.cycle_momentum:
                momentum = self._anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], fraction)
                _set_momentum(group, self.use_beta1, momentum)
        return lrs
