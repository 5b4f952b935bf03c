"""autograd.detect_anomaly: the backward rule that returns NaN is named, with where its op was
recorded, as PyTorch names it; and the mode changes no gradient that has no NaN."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad._examples import CASES

from .gradcheck import sample

ENABLED = (
    "Anomaly Detection has been enabled. This mode will increase the runtime and should only be enabled for debugging."
)


@pytest.fixture(autouse=True)
def _mode_off_after():
    yield
    tg.set_anomaly_enabled(False)


def _failure(run, m=tg):
    """(the RuntimeError's message, the warnings' messages) of ``run()`` under detect_anomaly."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with m.autograd.detect_anomaly(), pytest.raises(RuntimeError) as error:
            run()
    return str(error.value), [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_detect_anomaly_warns_that_it_is_slow_and_restores_the_mode():
    assert not tg.is_anomaly_enabled() and tg.is_anomaly_check_nan_enabled()
    with pytest.warns(UserWarning, match="Anomaly Detection has been enabled"):
        mode = tg.autograd.detect_anomaly(check_nan=False)
    with mode:
        assert tg.is_anomaly_enabled() and not tg.is_anomaly_check_nan_enabled()
    assert not tg.is_anomaly_enabled() and tg.is_anomaly_check_nan_enabled()


def test_set_detect_anomaly_as_a_call_and_as_a_block():
    tg.autograd.set_detect_anomaly(True)
    assert tg.is_anomaly_enabled()
    with tg.autograd.set_detect_anomaly(False):
        assert not tg.is_anomaly_enabled()
    assert tg.is_anomaly_enabled()
    tg.autograd.set_detect_anomaly(False)
    assert not tg.is_anomaly_enabled()


def test_a_nan_gradient_names_its_rule_and_where_the_forward_made_it():
    x = tg.tensor([-1.0, 1.0], requires_grad=True)

    def run():
        y = x * 2
        z = y.sqrt()  # the op whose rule returns NaN
        z.sum().backward()

    message, warned = _failure(run)
    assert message == "Function 'SqrtBackward0' returned nan values in its 0th output."
    assert warned[0] == ENABLED
    assert warned[1].startswith("Error detected in SqrtBackward0. Traceback of forward call that caused the error:\n")
    assert "test_anomaly.py" in warned[1] and "z = y.sqrt()" in warned[1]
    assert "tapegrad/" not in warned[1].replace("\\", "/").split("caused the error:")[1]


def test_without_the_mode_the_same_backward_gives_nan_and_no_error():
    x = tg.tensor([-1.0, 1.0], requires_grad=True)
    x.sqrt().sum().backward()
    assert np.isnan(x.grad.numpy()[0])
    y = tg.tensor([-1.0, 1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tg.autograd.detect_anomaly(check_nan=False):
            y.sqrt().sum().backward()
    assert np.isnan(y.grad.numpy()[0])


def test_a_forward_recorded_before_the_mode_has_no_trace():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    y = x.sqrt()
    message, warned = _failure(lambda: (y * 0).sum().backward())
    assert message == "Function 'SqrtBackward0' returned nan values in its 0th output."
    assert warned[1] == (
        "Error detected in SqrtBackward0. No forward pass information available. Enable detect anomaly during "
        "forward pass for more information."
    )


def test_a_nan_seed_is_the_root_rule_s():
    x = tg.tensor([1.0], requires_grad=True)
    message, _ = _failure(lambda: (x * 2).sum().backward(tg.tensor(float("nan"))))
    assert message == "Function 'SumBackward0' returned nan values in its 0th output."


def test_autograd_grad_and_hooks_are_checked_too():
    x = tg.tensor([-1.0, 2.0], requires_grad=True)
    message, _ = _failure(lambda: tg.autograd.grad(x.sqrt().sum(), x))
    assert message == "Function 'SqrtBackward0' returned nan values in its 0th output."
    y = tg.tensor([1.0, 2.0], requires_grad=True)

    def run():
        z = y * 3
        z.register_hook(lambda g: g * float("nan"))  # the hook's NaN reaches MulBackward0's result
        (z.exp() + 1).sum().backward()

    message, _ = _failure(run)
    assert message == "Function 'MulBackward0' returned nan values in its 0th output."


def test_create_graph_names_the_input_whose_gradient_is_nan():
    x = tg.tensor([0.0, 1.0], requires_grad=True)

    def run():
        y = x * x
        tg.autograd.grad((y / y).sum(), x, create_graph=True)

    message, _ = _failure(run)
    assert message == "Function 'DivBackward0' returned nan values in its 1th output."


class _NanBackward(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class _FailingBackward(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        raise ValueError("broken backward")


def test_custom_functions_are_named_and_their_errors_located():
    x = tg.tensor([1.0], requires_grad=True)
    message, warned = _failure(lambda: _NanBackward.apply(x).sum().backward())
    assert message == "Function '_NanBackwardBackward' returned nan values in its 0th output."
    assert "_NanBackward.apply(x)" in warned[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tg.autograd.detect_anomaly(), pytest.raises(ValueError, match="broken backward"):
            _FailingBackward.apply(x).sum().backward()
    assert any(str(w.message).startswith("Error detected in _FailingBackwardBackward.") for w in caught)


@pytest.mark.parametrize("case", CASES[::3], ids=str)
def test_the_mode_changes_no_gradient(case):
    """Each third case of the op table: the backward that stops after every row (anomaly mode)
    gives the one-call sweep's gradients, bit for bit."""
    rng = np.random.default_rng(11)
    arrays = sample(rng, case.shapes, case.domain)
    grads = []
    for on in (False, True):
        tg.set_anomaly_enabled(on)
        inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
        case.call(*inputs).sum().backward()
        grads.append([x.grad.numpy() for x in inputs])
    for got, want in zip(grads[1], grads[0]):
        np.testing.assert_array_equal(got, want)


def test_messages_match_pytorch():
    torch = pytest.importorskip("torch")
    for m in (tg, torch):
        x = m.tensor([-1.0, 1.0], requires_grad=True)
        c = m.tensor([0.0, 1.0], requires_grad=True)
        got = [
            _failure(lambda: x.sqrt().sum().backward(), m)[0],  # noqa: B023 - run at once
            _failure(lambda: (x * 2).sum().backward(m.tensor(float("nan"))), m)[0],  # noqa: B023
            _failure(lambda: (c.sqrt() * 0).sum().backward(), m)[0],  # noqa: B023
        ]
        if m is tg:
            mine = got
    assert mine == got


def test_only_what_autograd_grad_needs_is_checked():
    x = tg.tensor([-1.0, 1.0], requires_grad=True)
    w = tg.tensor([1.0, 1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tg.autograd.detect_anomaly():
            y = (x.sqrt() + w * 2).sum()  # x's branch has NaN, w's does not
            assert tg.autograd.grad(y, w, retain_graph=True)[0].tolist() == [2.0, 2.0]
            y.backward(inputs=[w])
    assert w.grad.tolist() == [2.0, 2.0]
