"""``torch.optim.swa_utils``: stochastic weight averaging (SWA) and exponential moving averages
(EMA) of a model's parameters, the learning rate schedule SWA trains with, and the pass that
recomputes batch-norm statistics for the averaged weights."""

from __future__ import annotations

import copy
import math

from .. import _dtypes, _factories
from .._grad_mode import no_grad
from ..nn.modules import Module, _BatchNorm
from ..tensor import Tensor
from .lr_scheduler import LRScheduler, _per_group, _warn_unless_stepping


def get_ema_avg_fn(decay: float = 0.999):
    """``avg_fn(averaged, current, num_averaged) = decay * averaged + (1 - decay) * current``;
    follows ``torch.optim.swa_utils.get_ema_avg_fn``. ``ValueError`` unless 0 <= decay <= 1."""
    _check_decay(decay)
    return lambda averaged, current, num_averaged: decay * averaged + (1 - decay) * current


def get_swa_avg_fn():
    """``avg_fn(averaged, current, n) = averaged + (current - averaged) / (n + 1)``: the running
    mean of the ``n + 1`` models seen; follows ``torch.optim.swa_utils.get_swa_avg_fn``."""
    return lambda averaged, current, num_averaged: averaged + (current - averaged) / (num_averaged + 1)


def get_ema_multi_avg_fn(decay: float = 0.999):
    """``get_ema_avg_fn``'s update, in place over lists of tensors (``multi_avg_fn``)."""
    _check_decay(decay)
    return _in_place(get_ema_avg_fn(decay))


def get_swa_multi_avg_fn():
    """``get_swa_avg_fn``'s update, in place over lists of tensors (``multi_avg_fn``)."""
    return _in_place(get_swa_avg_fn())


def _check_decay(decay: float) -> None:
    if decay < 0.0 or decay > 1.0:
        raise ValueError(f"Invalid decay value {decay} provided. Please provide a value in [0,1] range.")


def _in_place(avg_fn):
    def update(averaged: list, current: list, num_averaged) -> None:
        with no_grad():
            for a, c in zip(averaged, current, strict=True):
                a.copy_(avg_fn(a, c, num_averaged))

    return update


class AveragedModel(Module):
    """A copy of ``model`` whose parameters (and, with ``use_buffers``, buffers) are a running
    average of the model's over ``update_parameters`` calls: equal weights (SWA) unless
    ``avg_fn(averaged, current, num_averaged)`` or ``multi_avg_fn`` (in place, over lists)
    says otherwise; the first call copies. Without ``use_buffers`` the buffers follow the
    model's. ``n_averaged`` is an int64 buffer. Calling it runs the copy. Follows
    ``torch.optim.swa_utils.AveragedModel`` (``device`` only the CPU); ``AssertionError`` when
    both functions are given."""

    def __init__(self, model: Module, device=None, avg_fn=None, multi_avg_fn=None, use_buffers: bool = False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", _factories.tensor(0, dtype=_dtypes.int64))
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn
        self.use_buffers = use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _averaged(self, module: Module) -> list:
        if self.use_buffers:
            return [*module.parameters(), *module.buffers()]
        return list(module.parameters())

    def update_parameters(self, model: Module) -> None:
        """Fold ``model``'s current parameters into the average."""
        averaged = [tensor.detach() for tensor in self._averaged(self.module)]
        current = [tensor.detach() for tensor in self._averaged(model)]
        count = int(self.n_averaged)
        with no_grad():
            if count == 0:
                for a, c in zip(averaged, current):
                    a.copy_(c)
            elif self.avg_fn is not None:
                for a, c in zip(averaged, current, strict=True):
                    a.copy_(self.avg_fn(a, c, self.n_averaged))
            else:
                (self.multi_avg_fn or get_swa_multi_avg_fn())(averaged, current, self.n_averaged)
            if not self.use_buffers:  # the buffers follow the model's
                for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
                    mine.detach().copy_(theirs.detach())
            self.n_averaged += 1


def update_bn(loader, model: Module, device=None) -> None:
    """One pass of ``loader``'s batches (a tensor, or a list or tuple whose first item is the
    input) through ``model`` in training mode, with every batch norm's statistics reset and
    averaged over the pass (``momentum=None``), then the momenta and mode restored; follows
    ``torch.optim.swa_utils.update_bn``."""
    momenta = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.reset_running_stats()
            momenta[module] = module.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for module in momenta:
        module.momentum = None
    with no_grad():
        for batch in loader:
            if isinstance(batch, (list, tuple)):
                batch = batch[0]
            if device is not None and isinstance(batch, Tensor):
                batch = batch.to(device)
            model(batch)
    for module, momentum in momenta.items():
        module.momentum = momentum
    model.train(was_training)


class SWALR(LRScheduler):
    """Anneals each group's lr from its value to ``swa_lr`` (a number, or one per group) over
    ``anneal_epochs`` epochs, by a cosine or a linear ramp, then holds it; follows
    ``torch.optim.swa_utils.SWALR``. ``ValueError`` for another strategy or a negative or
    non-int ``anneal_epochs``."""

    def __init__(self, optimizer, swa_lr, anneal_epochs: int = 10, anneal_strategy: str = "cos", last_epoch: int = -1):
        for value, group in zip(_per_group("swa_lr", optimizer, swa_lr), optimizer.param_groups, strict=True):
            group["swa_lr"] = value
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self._anneal_strategy = anneal_strategy
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    def _anneal(self, t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2 if self._anneal_strategy == "cos" else t

    def get_lr(self) -> list:
        _warn_unless_stepping(self)
        # Each step moves from the lr the ramp gave last (recovered from the group's lr, which
        # the user may have changed) toward swa_lr, as PyTorch's chainable form does.
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        before = self._anneal(max(0, min(1, (step - 1) / max(1, self.anneal_epochs))))
        now = self._anneal(max(0, min(1, step / max(1, self.anneal_epochs))))
        lrs = []
        for group in self.optimizer.param_groups:
            start = group["swa_lr"] if before == 1 else (group["lr"] - before * group["swa_lr"]) / (1 - before)
            lrs.append(group["swa_lr"] * now + start * (1 - now))
        return lrs
