"""Every public function and Tensor method a recording can call: its replay at other inputs
equals eager tapegrad there, or raises GuardError. A result computed in numpy from a recorded
value is a constant of the tape: without a guard (or a recorded op) a replay reused it, and
``vmap``, which records once and replays every slice, returned it for every slice."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.func import vmap

RECORDED = np.array([[0.3, 2.2], [1.1, 3.7]], np.float32)
OTHERS = [
    np.array([[3.1, -0.2], [2.4, 1.7]], np.float32),
    np.array([[1.0, 1.0], [1.0, 1.5]], np.float32),
    np.array([[0.5, -2.0], [0.0, 4.0]], np.float32),
]
# Random draws and uninitialised memory differ between any two calls; the rest is not a
# computation on the input (seeding, hooks, conversions to Python, which are guards already).
SKIP = {
    "record", "load", "save", "load_tape", "manual_seed", "set_default_dtype", "set_num_threads", "seed",
    "rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "bernoulli",
    "multinomial", "normal", "poisson", "dropout", "backward", "register_hook", "retain_grad", "requires_grad_",
    "numpy", "tolist", "item", "set_", "share_memory_", "uniform_", "normal_", "exponential_", "random_",
    "bernoulli_", "geometric_", "cauchy_", "log_normal_", "register_post_accumulate_grad_hook", "apply_", "map_",
    "empty_like", "new_empty", "empty", "compile",
}  # fmt: skip


def _function(kind: str, name: str, arguments: int):
    """``f(x)``: a scalar of the op's result (of its first one), times ``x.sum()`` when the
    result has no gradient, so that a frozen result shows in the value and the gradient."""

    def f(x):
        operands = (x * 1,) + ((x.flip(0) * 0.5 + 0.25,) if arguments == 2 else ())
        result = getattr(tg, name)(*operands) if kind == "function" else getattr(operands[0], name)(*operands[1:])
        if isinstance(result, (tuple, list)):
            result = result[0]
        if not isinstance(result, tg.Tensor):
            raise TypeError("not a tensor")
        if result.requires_grad:
            return (result.float() ** 2).sum() if result.dtype.is_floating_point else result.sum()
        values = result.float() if result.dtype != tg.float64 else result
        return x.sum() * tg.nan_to_num(values, 0.0, 7.0, -7.0).sum()

    return f


def _candidates():
    functions = sorted(n for n in dir(tg) if not n.startswith("_") and callable(getattr(tg, n, None)))
    methods = sorted(n for n in dir(tg.Tensor) if not n.startswith("_") and callable(getattr(tg.Tensor, n, None)))
    for kind, names in (("function", functions), ("method", methods)):
        for name in names:
            # (and no setter: ``set_printoptions(x)`` changed printing for the tests after this)
            if name not in SKIP and not name[0].isupper() and not name.startswith("set_"):
                for arguments in (1, 2):
                    yield kind, name, arguments


def _frozen() -> list:
    """What replays otherwise than eager: [(kind, name, arguments, input, replayed, eager)]."""
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind, name, arguments in _candidates():
            f = _function(kind, name, arguments)
            try:
                probe = f(tg.tensor(RECORDED, requires_grad=True))
                if probe.numel() != 1 or not probe.dtype.is_floating_point:
                    continue
                tape = tg.record(f, tg.tensor(RECORDED, requires_grad=True))
            except Exception:  # noqa: S112 - not an op of these arguments
                continue
            for other in OTHERS:
                try:
                    x = tg.tensor(other, requires_grad=True)
                    eager = f(x)
                    eager.backward()
                    gradient = x.grad.numpy() if x.grad is not None else np.zeros_like(other)
                except Exception:  # noqa: S112 - outside the op's domain here
                    continue
                try:
                    value, (replayed,) = tape.value_and_grad(other)
                except tg.GuardError:
                    continue
                replayed = np.zeros_like(other) if replayed is None else np.asarray(replayed)
                same = np.isclose(float(value), float(eager), rtol=1e-4, atol=1e-4, equal_nan=True)
                if not (same and np.allclose(replayed, gradient, rtol=1e-4, atol=1e-4, equal_nan=True)):
                    found.append((kind, name, arguments, other.ravel().tolist(), float(value), float(eager)))
                    break
    return found


def test_no_replay_reuses_a_value_it_should_have_computed():
    assert _frozen() == []


@pytest.mark.parametrize(
    "f",
    [
        lambda x: (x * (tg.histc(x, 4, 0, 4) * tg.arange(4.0)).sum()).sum(),
        lambda x: x.sum() * tg.where(x > 1)[0].float().sum(),
        lambda x: (x * tg.isposinf(1 / (x - 1))).sum(),
        lambda x: (x * (x * 1).detach_()).sum(),
    ],
    ids=["histc", "where(condition)", "isposinf", "detach_"],
)
def test_vmap_gives_each_slice_its_own_value(f):
    batch = np.array([[0.3, 2.2, 1.1, 3.7], [1.0, 1.0, 1.0, 1.5]], np.float32)
    eager = [f(tg.tensor(row)).item() for row in batch]
    assert vmap(f)(tg.tensor(batch)).tolist() == pytest.approx(eager)


def test_a_guard_names_the_user_s_line():
    tape = tg.record(lambda x: x * tg.histc(x, 2, 0, 4).sum(), np.array([1.0, 3.0]))
    with pytest.raises(tg.GuardError, match=r"histc\(\) at .*test_replay_reads.py:\d+ \(tape = tg.record"):
        tape.value_and_grad(np.array([1.0, 5.0]))


def test_detach_in_place_of_a_recorded_input_is_replayed():
    def f(x):
        x.detach_()
        return (x * 2).sum()

    tape = tg.record(f, tg.tensor([1.0, 2.0]))
    assert tape(tg.tensor([3.0, 4.0])).item() == 14.0
    assert vmap(f)(tg.tensor([[1.0, 2.0], [3.0, 4.0]])).tolist() == [6.0, 14.0]


def test_the_demo_s_guard_names_the_demo_s_line(capsys):
    """``python -m tapegrad``'s replay stands for the user's code: its guard names its loop's
    line (inside the package, where a guard otherwise names the first frame outside it)."""
    from tapegrad import replay

    replay.demo()
    shown = capsys.readouterr().out
    assert "replay guard failed: bool() at " in shown and "(while y.data.norm() < 1000:)" in shown
