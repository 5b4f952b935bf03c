"""tapegrad.optim.lr_scheduler against torch.optim.lr_scheduler: one table of programs (an
optimizer over one or two parameter groups, ``optimizer.step()`` then ``scheduler.step()``),
each run in both libraries, straight through and saved and restored halfway; the lrs, the
momenta the schedulers cycle, the warnings, the parameters and the final state dicts must
agree. Then tables of bad arguments and of warnings, compared in the same way."""

from __future__ import annotations

import copy
import gc
import inspect
import math
import pickle
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")

RELATIVE = 1e-12
STARTS = [np.array([1.0, -2.0, 0.5]), np.array([0.25, -1.5])]

OPTIMIZERS = {
    "sgd": lambda m, groups: m.optim.SGD(groups, lr=0.1),
    "sgd-momentum": lambda m, groups: m.optim.SGD(groups, lr=0.1, momentum=0.9),
    "sgd-tensor-lr": lambda m, groups: m.optim.SGD(groups, lr=m.tensor(0.1, dtype=m.float64)),
    "adam": lambda m, groups: m.optim.Adam(groups, lr=0.01),
    "adagrad": lambda m, groups: m.optim.Adagrad(groups, lr=0.1),
}

# A validation loss with improvements, plateaus and noise, for ReduceLROnPlateau.
METRICS = [
    *np.linspace(1.0, 0.6, 6),
    *[0.6, 0.6001, 0.59995, 0.6, 0.61],
    *[0.55, 0.56, 0.55, 0.549, 0.56, 0.57, 0.58],
    *np.linspace(0.5, 0.4, 5),
    *[0.45, 0.44, 0.46, 0.41, 0.43, 0.42, 0.47, 0.48, 0.49, 0.5, 0.39, 0.4],
]


@dataclass
class Case:
    """A program: ``make(lr_scheduler, optimizer)`` gives the scheduler (or a list of them,
    stepped in order), ``step(library, schedulers, k)`` steps them after the k-th optimizer step, and
    ``events[k](optimizer)`` runs before the k-th step (an lr set by hand)."""

    name: str
    make: Callable
    optimizer: str = "sgd"
    groups: int = 2
    steps: int = 30
    step: Callable | None = None
    events: dict = field(default_factory=dict)


def _with_epochs(epoch_of_step: Callable) -> Callable:
    """A step passing an explicit epoch (the deprecated closed-form path)."""

    def step(m, schedulers, k):
        for scheduler in schedulers:
            scheduler.step(epoch_of_step(k))

    return step


def _with_metric(metric_of_step: Callable, as_tensor: bool = False) -> Callable:
    """ReduceLROnPlateau's step: the k-th metric (with ``as_tensor``, a tensor of the library
    that runs)."""

    def step(m, schedulers, k):
        metric = m.tensor(metric_of_step(k)) if as_tensor else metric_of_step(k)
        for scheduler in schedulers:
            scheduler.step(metric)

    return step


def _set_lr(group: int, lr: float) -> Callable:
    def event(optimizer):
        optimizer.param_groups[group]["lr"] = lr

    return event


def _resumed_at_epoch(make_scheduler: Callable, initial_lrs: list) -> Callable:
    """A scheduler constructed with ``last_epoch >= 0`` on groups that carry ``initial_lr``."""

    def make(lr_scheduler, optimizer):
        for group, lr in zip(optimizer.param_groups, initial_lrs):
            group["initial_lr"] = lr
        return make_scheduler(lr_scheduler, optimizer)

    return make


def _custom_subclass(base_name: str) -> Callable:
    """A user's scheduler: a linear warmup over 5 epochs, written against the base class."""

    def make(lr_scheduler, optimizer):
        def get_lr(self):
            return [base * min(1.0, (self.last_epoch + 1) / 5) for base in self.base_lrs]

        return type("Warmup", (getattr(lr_scheduler, base_name),), {"get_lr": get_lr})(optimizer)

    return make


class Warmup:
    """A callable object as lr_lambda: its attributes are saved in the state dict."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def __call__(self, epoch: int) -> float:
        return min(1.0, (epoch + 1) / self.epochs)


CASES = [
    Case("lambda", lambda L, o: L.LambdaLR(o, lambda e: 0.95**e)),
    Case("lambda-per-group", lambda L, o: L.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.5 if e < 10 else 0.1])),
    Case("lambda-object", lambda L, o: L.LambdaLR(o, Warmup(7)), groups=1),
    Case("lambda-epochs", lambda L, o: L.LambdaLR(o, lambda e: 0.9**e), step=_with_epochs(lambda k: (3 * k) % 11)),
    Case("multiplicative", lambda L, o: L.MultiplicativeLR(o, lambda e: 0.95)),
    Case("multiplicative-per-group", lambda L, o: L.MultiplicativeLR(o, [lambda e: 0.9, lambda e: 1.0 + 0.01 * e])),
    Case("step", lambda L, o: L.StepLR(o, 5)),
    Case("step-one-group", lambda L, o: L.StepLR(o, step_size=3, gamma=0.5), groups=1, steps=40),
    Case("step-epochs", lambda L, o: L.StepLR(o, 4, 0.5), step=_with_epochs(lambda k: k + 1)),
    Case("step-lr-set-by-hand", lambda L, o: L.StepLR(o, 4, 0.5), events={9: _set_lr(0, 0.3), 17: _set_lr(1, 0.02)}),
    Case("step-tensor-lr", lambda L, o: L.StepLR(o, 3, 0.5), optimizer="sgd-tensor-lr"),
    Case("step-resumed", _resumed_at_epoch(lambda L, o: L.StepLR(o, 3, 0.5, last_epoch=7), [0.3, 0.2])),
    Case("multistep", lambda L, o: L.MultiStepLR(o, [5, 12, 12, 20], gamma=0.5)),
    Case("multistep-epochs", lambda L, o: L.MultiStepLR(o, [3, 6, 6]), step=_with_epochs(lambda k: (2 * k) % 9)),
    Case("constant", lambda L, o: L.ConstantLR(o)),
    Case("constant-half", lambda L, o: L.ConstantLR(o, factor=0.5, total_iters=8)),
    Case("constant-epochs", lambda L, o: L.ConstantLR(o, 0.25, 6), step=_with_epochs(lambda k: (k * 5) % 13)),
    Case("linear", lambda L, o: L.LinearLR(o)),
    Case("linear-down", lambda L, o: L.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=20)),
    Case("linear-tensor-lr", lambda L, o: L.LinearLR(o, 0.25, 0.75, 10), optimizer="sgd-tensor-lr"),
    Case("linear-epochs", lambda L, o: L.LinearLR(o, 0.2, 0.9, 12), step=_with_epochs(lambda k: (k * 7) % 17)),
    Case("exponential", lambda L, o: L.ExponentialLR(o, 0.9)),
    Case("exponential-epochs", lambda L, o: L.ExponentialLR(o, 0.8), step=_with_epochs(lambda k: k % 6)),
    Case("exponential-lr-set-by-hand", lambda L, o: L.ExponentialLR(o, 0.9), events={12: _set_lr(0, 0.5)}),
    Case("polynomial", lambda L, o: L.PolynomialLR(o)),
    Case("polynomial-squared", lambda L, o: L.PolynomialLR(o, total_iters=12, power=2.0)),
    Case("polynomial-epochs", lambda L, o: L.PolynomialLR(o, 20, 0.5), step=_with_epochs(lambda k: (k * 3) % 25)),
    Case("cosine", lambda L, o: L.CosineAnnealingLR(o, T_max=10)),
    Case("cosine-past-the-bottom", lambda L, o: L.CosineAnnealingLR(o, T_max=7, eta_min=0.01), steps=40),
    Case("cosine-epochs", lambda L, o: L.CosineAnnealingLR(o, 9, 0.001), step=_with_epochs(lambda k: k + 1)),
    Case("cosine-lr-set-by-hand", lambda L, o: L.CosineAnnealingLR(o, 12), events={5: _set_lr(1, 0.2)}),
    Case("warm-restarts", lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=5)),
    Case("warm-restarts-doubling", lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, T_mult=2, eta_min=1e-3)),
    Case(
        "warm-restarts-fractional",
        lambda L, o: L.CosineAnnealingWarmRestarts(o, 4),
        step=_with_epochs(lambda k: k * 0.4),
    ),
    Case(
        "warm-restarts-doubling-epochs",
        lambda L, o: L.CosineAnnealingWarmRestarts(o, 2, 3, 0.01),
        step=_with_epochs(lambda k: (k * 7) % 31),
    ),
    Case("chained-by-hand", lambda L, o: [L.StepLR(o, 3, 0.5), L.ExponentialLR(o, 0.9)]),
    Case(
        "chained-by-hand-lr-set",
        lambda L, o: [L.StepLR(o, 4, 0.5), L.ExponentialLR(o, 0.95)],
        events={10: _set_lr(0, 0.2)},
    ),
    Case("chained", lambda L, o: L.ChainedScheduler([L.ConstantLR(o, 0.1, 4), L.ExponentialLR(o, 0.9)])),
    Case("chained-with-optimizer", lambda L, o: L.ChainedScheduler([L.LinearLR(o), L.MultiStepLR(o, [8, 16])], o)),
    Case(
        "sequential-warmup-cosine",
        lambda L, o: L.SequentialLR(o, [L.LinearLR(o, 0.1, total_iters=5), L.CosineAnnealingLR(o, 20)], [5]),
    ),
    Case(
        "sequential-three",
        lambda L, o: L.SequentialLR(
            o, [L.ConstantLR(o, 0.5, 2), L.ExponentialLR(o, 0.9), L.StepLR(o, 4, 0.5)], milestones=[3, 10]
        ),
    ),
    Case(
        "sequential-lr-set-by-hand",
        lambda L, o: L.SequentialLR(o, [L.ExponentialLR(o, 0.8), L.CosineAnnealingLR(o, 10)], [6]),
        events={4: _set_lr(0, 0.4), 12: _set_lr(1, 0.1)},
    ),
    Case("plateau-min-rel", lambda L, o: L.ReduceLROnPlateau(o, patience=2), step=_with_metric(METRICS.__getitem__)),
    Case(
        "plateau-min-rel-wide",
        lambda L, o: L.ReduceLROnPlateau(o, patience=1, threshold=0.1),
        step=_with_metric(METRICS.__getitem__),
    ),
    Case(
        "plateau-min-abs-cooldown",
        lambda L, o: L.ReduceLROnPlateau(o, factor=0.5, patience=1, threshold=0.01, threshold_mode="abs", cooldown=2),
        step=_with_metric(METRICS.__getitem__),
    ),
    Case(
        "plateau-max-rel-min-lr",
        lambda L, o: L.ReduceLROnPlateau(o, "max", factor=0.5, patience=0, threshold=0.05, min_lr=[0.02, 0.01]),
        step=_with_metric(lambda k: -METRICS[k]),
    ),
    Case(
        "plateau-max-abs-eps",
        lambda L, o: L.ReduceLROnPlateau(o, mode="max", factor=0.9, patience=1, threshold_mode="abs", eps=0.006),
        step=_with_metric(lambda k: 1 - METRICS[k]),
    ),
    Case(
        "plateau-tensor-metric",
        lambda L, o: L.ReduceLROnPlateau(o, patience=1, min_lr=0.03),
        step=_with_metric(METRICS.__getitem__, as_tensor=True),
    ),
    Case("cyclic-triangular", lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=4), optimizer="sgd-momentum"),
    Case(
        "cyclic-triangular2-adam",
        lambda L, o: L.CyclicLR(o, 0.001, 0.01, step_size_up=3, step_size_down=5, mode="triangular2"),
        optimizer="adam",
        steps=40,
    ),
    Case(
        "cyclic-exp-range",
        lambda L, o: L.CyclicLR(
            o, [0.01, 0.02], [0.1, 0.3], 5, mode="exp_range", gamma=0.9, base_momentum=[0.8, 0.7], max_momentum=0.95
        ),
        optimizer="sgd-momentum",
    ),
    Case(
        "cyclic-scale-fn",
        lambda L, o: L.CyclicLR(
            o, 0.01, 0.1, 4, scale_fn=lambda x: 0.5**x, scale_mode="iterations", cycle_momentum=False
        ),
    ),
    Case("cyclic-adagrad", lambda L, o: L.CyclicLR(o, 0.05, 0.2, 3, cycle_momentum=False), optimizer="adagrad"),
    Case("one-cycle", lambda L, o: L.OneCycleLR(o, max_lr=1.0, total_steps=30), optimizer="sgd-momentum"),
    Case(
        "one-cycle-linear-adam",
        lambda L, o: L.OneCycleLR(o, 0.05, epochs=3, steps_per_epoch=10, anneal_strategy="linear"),
        optimizer="adam",
    ),
    Case(
        "one-cycle-three-phase",
        lambda L, o: L.OneCycleLR(
            o,
            [1.0, 0.5],
            40,
            pct_start=0.25,
            div_factor=10.0,
            final_div_factor=100.0,
            three_phase=True,
            base_momentum=[0.8, 0.85],
        ),
        optimizer="sgd-momentum",
        steps=40,
    ),  # fmt: skip
    Case("one-cycle-sgd-without-momentum", lambda L, o: L.OneCycleLR(o, 0.5, 35, pct_start=0.4), steps=35),
    Case("one-cycle-no-momentum-cycle", lambda L, o: L.OneCycleLR(o, 0.5, 31, cycle_momentum=False)),
    Case("custom-subclass", _custom_subclass("LRScheduler"), steps=12),
    Case("custom-subclass-old-name", _custom_subclass("_LRScheduler"), steps=12),
]

# What the schedulers write into the parameter groups besides lr.
SCHEDULER_KEYS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")


def _step_all(m, schedulers, k):
    for scheduler in schedulers:
        scheduler.step()


def _plain(value):
    """``value`` with the tensors of either library (0-d: lrs) as floats, for comparison."""
    if isinstance(value, (tg.Tensor, torch.Tensor)):
        return float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.floating):
        return float(value)
    return value


def _assert_close(ours, theirs, where: str = "") -> None:
    """Equal structures, numbers within RELATIVE of each other."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), f"{where}: {ours} != {theirs}"
        for key in theirs:
            _assert_close(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), f"{where}: {ours} != {theirs}"
        for index, (mine, other) in enumerate(zip(ours, theirs)):
            _assert_close(mine, other, f"{where}[{index}]")
    elif isinstance(theirs, float) and not isinstance(ours, bool):
        assert isinstance(ours, (int, float)), f"{where}: {ours!r} != {theirs!r}"
        assert ours == theirs or math.isclose(ours, theirs, rel_tol=RELATIVE), f"{where}: {ours!r} != {theirs!r}"
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def _parameters(m, groups: int) -> list:
    return [m.tensor(start, requires_grad=True) for start in STARTS[:groups]]


def _build(m, case: Case, parameters: list):
    groups = [{"params": [parameter]} for parameter in parameters]
    if len(groups) > 1:
        groups[1]["lr"] = 0.05  # a group with its own lr
    optimizer = OPTIMIZERS[case.optimizer](m, groups)
    made = case.make(m.optim.lr_scheduler, optimizer)
    return optimizer, made if isinstance(made, list) else [made]


def _restored(m, case: Case, parameters: list, optimizer, schedulers):
    """A checkpoint of the optimizer and the schedulers, loaded into new ones: a resumed run."""
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_schedulers = copy.deepcopy([scheduler.state_dict() for scheduler in schedulers])
    optimizer, schedulers = _build(m, case, parameters)
    optimizer.load_state_dict(saved_optimizer)
    for scheduler, state in zip(schedulers, saved_schedulers):
        scheduler.load_state_dict(state)
    return optimizer, schedulers


def _observed(optimizer, schedulers) -> dict:
    groups = optimizer.param_groups
    return _plain(
        {
            "get_last_lr": [scheduler.get_last_lr() for scheduler in schedulers],
            "lr": [group["lr"] for group in groups],
            "momentum": [group.get("momentum") for group in groups],
            "beta1": [group["betas"][0] if "betas" in group else None for group in groups],
            "written": [{key: group[key] for key in SCHEDULER_KEYS if key in group} for group in groups],
        }
    )


def _run(m, case: Case, restore_at: int | None = None) -> dict:
    """The program of ``case`` in library ``m``: what it observed after each step, its warnings,
    the parameters and the schedulers' states at the end."""
    parameters = _parameters(m, case.groups)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer, schedulers = _build(m, case, parameters)
        trace = [_observed(optimizer, schedulers)]
        for k in range(case.steps):
            if k == restore_at:
                optimizer, schedulers = _restored(m, case, parameters, optimizer, schedulers)
            if k in case.events:
                case.events[k](optimizer)
            optimizer.zero_grad()
            sum(((p * p * p).sum() + (p * p).sum() for p in parameters), m.tensor(0.0, dtype=m.float64)).backward()
            optimizer.step()
            (case.step or _step_all)(m, schedulers, k)
            trace.append(_observed(optimizer, schedulers))
    return {
        "trace": trace,
        "warnings": [str(warning.message) for warning in caught if issubclass(warning.category, UserWarning)],
        "parameters": [p.detach().numpy().copy() for p in parameters],
        "states": _plain([scheduler.state_dict() for scheduler in schedulers]),
    }


@pytest.mark.parametrize("restored", [False, True], ids=["straight", "restored-halfway"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_schedule_follows_pytorch(case, restored):
    theirs = _run(torch, case)
    ours = _run(tg, case, restore_at=case.steps // 2 if restored else None)
    for step, (mine, other) in enumerate(zip(ours["trace"], theirs["trace"])):
        _assert_close(mine, other, f"after step {step}")
    assert ours["warnings"] == theirs["warnings"]
    for mine, other in zip(ours["parameters"], theirs["parameters"]):
        np.testing.assert_allclose(mine, other, rtol=1e-10)
    _assert_close(ours["states"], theirs["states"], "state_dict()")


def test_a_state_saved_by_pytorch_resumes_here():
    """torch's scheduler state (with its optimizer's lrs) loads into tapegrad's scheduler, which
    then continues as torch's does."""
    case = next(case for case in CASES if case.name == "sequential-warmup-cosine")
    theirs = _run(torch, case)
    torch_optimizer, torch_schedulers = _build(torch, case, _parameters(torch, case.groups))
    for _ in range(11):
        torch_optimizer.step()
        torch_schedulers[0].step()
    optimizer, schedulers = _build(tg, case, _parameters(tg, case.groups))
    for group, saved in zip(optimizer.param_groups, torch_optimizer.state_dict()["param_groups"]):
        group.update(lr=saved["lr"], initial_lr=saved["initial_lr"])
    schedulers[0].load_state_dict(copy.deepcopy(torch_schedulers[0].state_dict()))
    for step in range(12, case.steps + 1):
        schedulers[0].step()
        _assert_close(_observed(optimizer, schedulers), theirs["trace"][step], f"after step {step}")


# ---------------------------------------------------------------------------------------------
# Bad arguments: the same exception class and message as PyTorch's


def _optimizer(m, kind: str = "sgd", groups: int = 2):
    return OPTIMIZERS[kind](m, [{"params": [p]} for p in _parameters(m, groups)])


def _stepped(scheduler, steps: int):
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()


def _plateau_after_a_new_group(m, L):
    optimizer = _optimizer(m)
    scheduler = L.ReduceLROnPlateau(optimizer, patience=0, min_lr=[0.0, 0.0])
    optimizer.add_param_group({"params": [m.tensor([1.0], requires_grad=True)]})
    for _ in range(3):
        scheduler.step(1.0)


def _initial_lr_only_in_group_0(m, L):
    optimizer = _optimizer(m)
    optimizer.param_groups[0]["initial_lr"] = 0.1
    L.StepLR(optimizer, 3, last_epoch=2)


def _other_optimizer(L, o, m):
    return L.ExponentialLR(_optimizer(m), 0.9)


# Constructors that take last_epoch: resuming without "initial_lr" in the groups is a KeyError.
RESUMED = {
    "LambdaLR": lambda L, o: L.LambdaLR(o, lambda e: 1.0, last_epoch=3),
    "MultiplicativeLR": lambda L, o: L.MultiplicativeLR(o, lambda e: 0.9, last_epoch=3),
    "StepLR": lambda L, o: L.StepLR(o, 2, last_epoch=3),
    "MultiStepLR": lambda L, o: L.MultiStepLR(o, [2, 4], last_epoch=3),
    "ConstantLR": lambda L, o: L.ConstantLR(o, last_epoch=0),
    "LinearLR": lambda L, o: L.LinearLR(o, last_epoch=3),
    "ExponentialLR": lambda L, o: L.ExponentialLR(o, 0.9, last_epoch=3),
    "PolynomialLR": lambda L, o: L.PolynomialLR(o, last_epoch=3),
    "CosineAnnealingLR": lambda L, o: L.CosineAnnealingLR(o, 10, last_epoch=3),
    "CosineAnnealingWarmRestarts": lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, last_epoch=3),
    "CyclicLR": lambda L, o: L.CyclicLR(o, 0.01, 0.1, last_epoch=3),
    "OneCycleLR": lambda L, o: L.OneCycleLR(o, 0.1, 10, last_epoch=3),
}

# (name, program(library, lr_scheduler)): each raises.
BAD = [
    ("not-an-optimizer", lambda m, L: L.StepLR(object(), 3)),
    ("plateau-not-an-optimizer", lambda m, L: L.ReduceLROnPlateau([1.0])),
    ("cyclic-not-an-optimizer", lambda m, L: L.CyclicLR(None, 0.1, 1.0)),
    ("one-cycle-not-an-optimizer", lambda m, L: L.OneCycleLR("sgd", 0.1, 10)),
    ("lambda-count", lambda m, L: L.LambdaLR(_optimizer(m), [lambda e: 1.0])),
    ("multiplicative-count", lambda m, L: L.MultiplicativeLR(_optimizer(m, groups=1), (lambda e: 1.0,) * 2)),
    ("multiplicative-not-callable", lambda m, L: L.MultiplicativeLR(_optimizer(m), 0.9)),
    ("constant-factor-above-1", lambda m, L: L.ConstantLR(_optimizer(m), factor=1.5)),
    ("constant-factor-negative", lambda m, L: L.ConstantLR(_optimizer(m), factor=-0.1)),
    ("constant-factor-0-at-the-end", lambda m, L: _stepped(L.ConstantLR(_optimizer(m), 0.0, 2), 3)),
    ("linear-start-0", lambda m, L: L.LinearLR(_optimizer(m), start_factor=0)),
    ("linear-start-above-1", lambda m, L: L.LinearLR(_optimizer(m), start_factor=1.5)),
    ("linear-end-negative", lambda m, L: L.LinearLR(_optimizer(m), end_factor=-0.5)),
    ("sequential-empty", lambda m, L: L.SequentialLR(_optimizer(m), [], [])),
    (
        "sequential-milestones",
        lambda m, L: (lambda o: L.SequentialLR(o, [L.ExponentialLR(o, 0.9), L.StepLR(o, 2)], [2, 4]))(_optimizer(m)),
    ),
    (
        "sequential-plateau",
        lambda m, L: (lambda o: L.SequentialLR(o, [L.ExponentialLR(o, 0.9), L.ReduceLROnPlateau(o)], [2]))(
            _optimizer(m)
        ),
    ),
    (
        "sequential-no-optimizer",
        lambda m, L: (lambda o: L.SequentialLR(o, [L.ExponentialLR(o, 0.9), object()], [2]))(_optimizer(m)),
    ),
    (
        "sequential-other-optimizer",
        lambda m, L: (lambda o: L.SequentialLR(o, [L.ExponentialLR(o, 0.9), _other_optimizer(L, o, m)], [2]))(
            _optimizer(m)
        ),
    ),
    ("chained-empty", lambda m, L: L.ChainedScheduler([])),
    ("chained-plateau", lambda m, L: (lambda o: L.ChainedScheduler([L.ReduceLROnPlateau(o)], o))(_optimizer(m))),
    (
        "chained-no-optimizer",
        lambda m, L: (lambda o: L.ChainedScheduler([L.ExponentialLR(o, 0.9), 1.0]))(_optimizer(m)),
    ),
    (
        "chained-other-optimizer",
        lambda m, L: (lambda o: L.ChainedScheduler([L.ExponentialLR(o, 0.9), _other_optimizer(L, o, m)]))(
            _optimizer(m)
        ),
    ),
    ("plateau-factor", lambda m, L: L.ReduceLROnPlateau(_optimizer(m), factor=1.0)),
    ("plateau-mode", lambda m, L: L.ReduceLROnPlateau(_optimizer(m), mode="avg")),
    ("plateau-threshold-mode", lambda m, L: L.ReduceLROnPlateau(_optimizer(m), threshold_mode="relative")),
    ("plateau-min-lr-count", lambda m, L: L.ReduceLROnPlateau(_optimizer(m), min_lr=[0.1])),
    ("plateau-after-a-new-group", _plateau_after_a_new_group),
    ("cyclic-mode", lambda m, L: L.CyclicLR(_optimizer(m, "sgd-momentum"), 0.01, 0.1, mode="sine")),
    ("cyclic-base-lr-count", lambda m, L: L.CyclicLR(_optimizer(m, "sgd-momentum"), [0.01], 0.1)),
    ("cyclic-max-lr-count", lambda m, L: L.CyclicLR(_optimizer(m, "sgd-momentum"), 0.01, (0.1, 0.2, 0.3))),
    ("cyclic-no-momentum", lambda m, L: L.CyclicLR(_optimizer(m, "adagrad"), 0.01, 0.1)),
    (
        "cyclic-momentum-count",
        lambda m, L: L.CyclicLR(_optimizer(m, "sgd-momentum"), 0.01, 0.1, base_momentum=[0.8, 0.8, 0.8]),
    ),
    ("one-cycle-no-steps", lambda m, L: L.OneCycleLR(_optimizer(m), 0.1, epochs=3)),
    ("one-cycle-total-steps-0", lambda m, L: L.OneCycleLR(_optimizer(m), 0.1, total_steps=0)),
    ("one-cycle-total-steps-float", lambda m, L: L.OneCycleLR(_optimizer(m), 0.1, total_steps=10.0)),
    ("one-cycle-epochs", lambda m, L: L.OneCycleLR(_optimizer(m), 0.1, epochs=0, steps_per_epoch=3)),
    ("one-cycle-steps-per-epoch", lambda m, L: L.OneCycleLR(_optimizer(m), 0.1, epochs=2, steps_per_epoch=2.5)),
    ("one-cycle-pct-start", lambda m, L: L.OneCycleLR(_optimizer(m), 0.1, 10, pct_start=1.5)),
    ("one-cycle-pct-start-int", lambda m, L: L.OneCycleLR(_optimizer(m), 0.1, 10, pct_start=1)),
    ("one-cycle-anneal", lambda m, L: L.OneCycleLR(_optimizer(m), 0.1, 10, anneal_strategy="cosine")),
    ("one-cycle-no-momentum", lambda m, L: L.OneCycleLR(_optimizer(m, "adagrad"), 0.1, 10)),
    ("one-cycle-max-lr-count", lambda m, L: L.OneCycleLR(_optimizer(m), [0.1], 10)),
    ("one-cycle-past-the-end", lambda m, L: _stepped(L.OneCycleLR(_optimizer(m), 0.1, 5), 6)),
    ("warm-restarts-T_0", lambda m, L: L.CosineAnnealingWarmRestarts(_optimizer(m), 0)),
    ("warm-restarts-T_0-float", lambda m, L: L.CosineAnnealingWarmRestarts(_optimizer(m), 2.5)),
    ("warm-restarts-T_mult", lambda m, L: L.CosineAnnealingWarmRestarts(_optimizer(m), 2, T_mult=0)),
    ("warm-restarts-T_mult-float", lambda m, L: L.CosineAnnealingWarmRestarts(_optimizer(m), 2, T_mult=1.5)),
    ("warm-restarts-eta-min", lambda m, L: L.CosineAnnealingWarmRestarts(_optimizer(m), 2, eta_min="0.1")),
    ("warm-restarts-negative-epoch", lambda m, L: L.CosineAnnealingWarmRestarts(_optimizer(m), 2).step(-1)),
    ("base-class-get-lr", lambda m, L: L.LRScheduler(_optimizer(m))),
    ("resumed-without-initial-lr-in-group-1", _initial_lr_only_in_group_0),
    *[
        (f"resumed-without-initial-lr-{name}", lambda m, L, make=make: make(L, _optimizer(m, "sgd-momentum")))
        for name, make in RESUMED.items()
    ],
]


def _raised(program, m) -> BaseException:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as caught:
            program(m, m.optim.lr_scheduler)
    return caught.value


@pytest.mark.parametrize("program", [program for _, program in BAD], ids=[name for name, _ in BAD])
def test_bad_arguments_raise_pytorchs_error(program):
    theirs, ours = _raised(program, torch), _raised(program, tg)
    assert type(ours) is type(theirs)
    mine, other = str(ours), str(theirs)
    if "which is different from" in other:
        # The message shows the optimizer, whose printout lists each library's own options.
        mine, other = mine.split(" has ")[0], other.split(" has ")[0]
    assert mine == other


# ---------------------------------------------------------------------------------------------
# Warnings: the same as PyTorch's, in the same order


def _scheduler_before_optimizer(m, L):
    optimizer = _optimizer(m)
    scheduler = L.StepLR(optimizer, 2)
    scheduler.step()
    optimizer.step()
    scheduler.step()


def _optimizer_step_replaced(m, L):
    optimizer = _optimizer(m)
    scheduler = L.ExponentialLR(optimizer, 0.9)
    optimizer.step = type(optimizer).step.__get__(optimizer)
    optimizer.step()
    scheduler.step()


def _two_schedulers_on_one_optimizer(m, L):
    optimizer = _optimizer(m)
    first, second = L.StepLR(optimizer, 2), L.ExponentialLR(optimizer, 0.9)
    optimizer.step()
    first.step()
    second.step()


def _get_lr_by_hand(m, L):
    scheduler = L.ExponentialLR(_optimizer(m), 0.9)
    scheduler.get_lr()


def _explicit_epochs(m, L):
    optimizer = _optimizer(m)
    scheduler = L.CosineAnnealingLR(optimizer, 5)
    optimizer.step()
    scheduler.step(3)
    L.ReduceLROnPlateau(optimizer).step(1.0, epoch=4)
    L.LambdaLR(optimizer, lambda e: 1.0).step(2)


def _sequential_before_optimizer(m, L):
    optimizer = _optimizer(m)
    scheduler = L.SequentialLR(optimizer, [L.ConstantLR(optimizer, 0.5, 2), L.ExponentialLR(optimizer, 0.9)], [2])
    for _ in range(4):
        scheduler.step()


WARNING_PROGRAMS = [
    _scheduler_before_optimizer,
    _optimizer_step_replaced,
    _two_schedulers_on_one_optimizer,
    _get_lr_by_hand,
    _explicit_epochs,
    _sequential_before_optimizer,
]


def _warned(program, m) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        program(m, m.optim.lr_scheduler)
    return [(warning.category, str(warning.message)) for warning in caught]


@pytest.mark.parametrize("program", WARNING_PROGRAMS, ids=[program.__name__.strip("_") for program in WARNING_PROGRAMS])
def test_warnings_follow_pytorch(program):
    assert _warned(program, tg) == _warned(program, torch)


def test_a_copy_of_the_optimizer_steps_its_own_parameters():
    """The scheduler's wrapper of optimizer.step follows the optimizer into its copies."""
    for m in (tg, torch):
        optimizer = _optimizer(m, groups=1)
        m.optim.lr_scheduler.StepLR(optimizer, 2)
        clone = copy.deepcopy(optimizer)
        original, copied = optimizer.param_groups[0]["params"][0], clone.param_groups[0]["params"][0]
        copied.grad = m.ones(3, dtype=m.float64)
        clone.step()
        np.testing.assert_array_equal(original.detach().numpy(), STARTS[0])
        np.testing.assert_allclose(copied.detach().numpy(), STARTS[0] - 0.1, rtol=1e-15)


@pytest.mark.parametrize("name", [*torch.optim.lr_scheduler.__all__, "_LRScheduler"])
def test_signatures_and_public_members_are_pytorchs(name):
    ours, theirs = getattr(tg.optim.lr_scheduler, name), getattr(torch.optim.lr_scheduler, name)
    assert {n for n in dir(ours) if not n.startswith("_")} == {n for n in dir(theirs) if not n.startswith("_")}
    for method in ("__init__", "step", "get_lr", "get_last_lr", "state_dict", "load_state_dict"):
        mine, other = inspect.signature(getattr(ours, method)), inspect.signature(getattr(theirs, method))
        assert [(p.name, p.kind, p.default) for p in mine.parameters.values()] == [
            (p.name, p.kind, p.default) for p in other.parameters.values()
        ], method
    assert set(tg.optim.lr_scheduler.__all__) == set(torch.optim.lr_scheduler.__all__)


def test_the_step_wrapper_adds_no_reference_cycle():
    """optimizer.step's wrapper holds the optimizer weakly, as PyTorch's does: a dropped
    optimizer goes (with its parameters) as soon as without a scheduler."""

    def freed_without_the_collector(with_scheduler: bool) -> bool:
        gc.collect()
        gc.disable()
        try:
            optimizer = _optimizer(tg)
            if with_scheduler:
                tg.optim.lr_scheduler.StepLR(optimizer, 2)
            dropped = weakref.ref(optimizer)
            del optimizer
            return dropped() is None
        finally:
            gc.enable()

    assert freed_without_the_collector(True) == freed_without_the_collector(False)


def test_a_pickled_optimizer_notes_its_own_steps():
    optimizer = _optimizer(tg)
    scheduler = tg.optim.lr_scheduler.StepLR(optimizer, 2)
    loaded = pickle.loads(pickle.dumps(optimizer))
    loaded.step()
    assert loaded._opt_called and not hasattr(optimizer, "_opt_called")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scheduler.step()
    assert "Detected call of `lr_scheduler.step()` before `optimizer.step()`" in str(caught[0].message)
