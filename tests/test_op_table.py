"""Every op in the table: forward against numpy's own evaluation, backward against central
differences, and the table itself complete."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _ops
from tapegrad._examples import CASES
from tapegrad._kernels import rules
from tapegrad._tape import ROW_WIDTH
from tapegrad.autograd.engine import kernel

from .gradcheck import analytic_gradients, numeric_gradients, sample


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gradient_matches_central_differences(case):
    # (crc32, not hash(): str hashes change with each process, and so did the sample, which at
    # random drew a nanmean input that was NaN everywhere, whose loss has no differences)
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    arrays = sample(rng, case.shapes, case.domain)
    with tg.no_grad():
        out_shape = case.call(*[tg.from_numpy(a) for a in arrays]).shape
    weights = rng.uniform(0.5, 1.5, size=out_shape)
    expected = numeric_gradients(case.call, arrays, weights, case.eps)
    actual = analytic_gradients(case.call, arrays, weights)
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_float32_gradients_are_float32_and_close(case):
    rng = np.random.default_rng(7)
    arrays = sample(rng, case.shapes, case.domain)
    inputs64 = [tg.tensor(a, requires_grad=True, dtype=tg.float64) for a in arrays]
    inputs32 = [tg.tensor(a, requires_grad=True, dtype=tg.float32) for a in arrays]
    case.call(*inputs64).sum().backward()
    out32 = case.call(*inputs32)
    if "changes-dtype" not in case.tags:
        assert out32.dtype == tg.float32
    out32.sum().backward()
    for x32, x64 in zip(inputs32, inputs64):
        assert x32.grad.dtype == tg.float32
        np.testing.assert_allclose(x32.grad.numpy(), x64.grad.numpy(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_recorded_forward_equals_unrecorded_forward(case):
    rng = np.random.default_rng(3)
    arrays = sample(rng, case.shapes, case.domain)
    with tg.no_grad():
        plain = case.call(*[tg.tensor(a) for a in arrays])
    recorded = case.call(*[tg.tensor(a, requires_grad=True) for a in arrays])
    assert recorded.requires_grad and not plain.requires_grad
    # The same computation, to the last bits but for an ulp or two: a compiled kernel may run as
    # two specializations (numba's, per argument types), one loaded from the machine code shipped
    # for a CPU level and one compiled for the host, whose instruction choices round differently
    # (log_softmax in a full run: 1 ulp). A different path would differ by far more.
    got, want = recorded.detach().numpy(), plain.numpy()
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(got.dtype).eps, atol=0)
    else:
        np.testing.assert_array_equal(got, want)


def _opcodes_recorded(case) -> set[int]:
    arrays = sample(np.random.default_rng(0), case.shapes, case.domain)
    out = case.call(*[tg.tensor(a, requires_grad=True) for a in arrays])
    tape = out._tape
    return {tape.ints[row * ROW_WIDTH] for row in range(len(tape))}


def test_every_table_entry_is_reached_by_some_case():
    reached = set().union(*(_opcodes_recorded(case) for case in CASES))
    # PYTHON rows run a user's autograd.Function backward: tests/test_function.py checks them.
    exempt = (_ops.NONDIFF, _ops.PYTHON)
    # assign: a change autograd does not see, inside tapegrad.record only; its gradient is by
    # definition not its value's derivative, and test_replay checks it against eager PyTorch-style
    # evaluation (test_changes_autograd_does_not_see_replay_as_eager).
    # nll_targets: nll_loss of targets on the tape, inside tapegrad.record only (eagerly the
    # targets are constants, picked by position); tests/test_recorded_targets.py checks it against
    # eager nll_loss and central differences.
    missing = [
        op.name
        for code, op in enumerate(_ops.OPS)
        if code not in reached and op.name not in ("constant", "assign", "nll_targets") and op.family not in exempt
    ]
    assert not missing, f"op table entries without a gradient check: {missing}"


def test_every_table_entry_is_complete():
    names = [op.name for op in _ops.OPS]
    assert len(set(names)) == len(names), "two table entries share a name: the second hides the first"
    for op in _ops.OPS:
        assert op.name and op.rule, op
        if op.family not in (_ops.LEAF, _ops.NONDIFF):
            assert op.grad_fn and op.grad_fn[0].isupper(), f"{op.name} needs PyTorch's grad_fn name"
        if op.family in (_ops.UNARY, _ops.SCALAR, _ops.BINARY) or op.name in ("lt", "le", "gt", "ge", "eq", "ne"):
            assert callable(op.forward), f"{op.name} needs a numpy forward"
        assert set(op.saves.split()) <= {"a", "b", "out", "scalar"}, op


def test_kernel_defines_every_rule_the_table_names():
    kernel()  # raises NotImplementedError naming the missing rules


def test_a_missing_rule_is_reported_by_name():
    from tapegrad._kernels.backward import RULES

    with pytest.raises(NotImplementedError, match="no backward rule in tapegrad._kernels for: exp"):
        _ops.dispatch_arrays({name: number for name, number in RULES.items() if name != "exp"})


UNARY_OPS = [op for op, path in zip(_ops.OPS, _ops.paths()) if path == rules.UNARY]


@pytest.mark.parametrize("op", UNARY_OPS, ids=lambda op: op.name)
def test_precomputed_derivative_path_equals_the_rule(op):
    """Every unary op can take the precomputed-derivative path (``Op.derivative``): at the size
    where it is used, its gradient equals the op's own rule's, whichever of the two it declares.
    (Before the path was the op's declared kind, adding ``derivative=`` to ``atan`` read a value
    never saved.)"""
    import dataclasses

    from tapegrad._record import PRECOMPUTED_DERIVATIVE_SIZE, _unary

    low, high = op.domain
    data = np.random.default_rng(5).uniform(low, high, PRECOMPUTED_DERIVATIVE_SIZE + 3)  # off every kink
    step = 1e-6

    def derivative(x):  # central differences of the forward, element by element
        return (op.forward(x + step) - op.forward(x - step)) / (2 * step)

    gradients = []
    for variant in (dataclasses.replace(op, derivative=None), dataclasses.replace(op, derivative=derivative)):
        x = tg.tensor(data, requires_grad=True, dtype=tg.float64)
        _unary(variant, x).sum().backward()
        gradients.append(x.grad.numpy())
    np.testing.assert_allclose(gradients[0], gradients[1], rtol=1e-5, atol=1e-6)


COMPILED_FORWARD_OPS = [op for op in _ops.OPS if op.compiled_forward]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", COMPILED_FORWARD_OPS, ids=lambda op: op.name)
def test_compiled_forward_equals_the_numpy_forward(op, dtype):
    """``Op.compiled_forward``: a large eager input runs the compiled value formula; it agrees
    with the op's numpy ``forward`` (and so a small input's result) to the dtype's rounding,
    non-contiguous inputs included."""
    from tapegrad._record import PRECOMPUTED_DERIVATIVE_SIZE

    low, high = op.domain
    data = np.random.default_rng(7).uniform(3 * low, 3 * high, (2, PRECOMPUTED_DERIVATIVE_SIZE)).astype(dtype)
    for values in (data, data.T):
        got = getattr(tg, op.name)(tg.tensor(values)).numpy()
        assert got.dtype == dtype and got.shape == values.shape
        tolerance = 2e-7 if dtype == np.float32 else 1e-15
        np.testing.assert_allclose(got, op.forward(values), rtol=tolerance, atol=tolerance)


def _non_contiguous(array: np.ndarray) -> np.ndarray:
    """The same values with other strides: reversed along every axis of a reversed copy."""
    if array.ndim == 0:
        return array
    flipped = np.flip(array).copy()
    return np.flip(flipped)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_non_contiguous_inputs_give_the_same_gradients(case):
    rng = np.random.default_rng(11)
    arrays = sample(rng, case.shapes, case.domain)
    results = []
    for make in (np.ascontiguousarray, _non_contiguous):
        inputs = [tg.from_numpy(make(a)).requires_grad_() for a in arrays]
        case.call(*inputs).sum().backward()
        results.append([x.grad.numpy() for x in inputs])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_derivative_on_an_op_without_the_unary_path_is_a_table_error(monkeypatch):
    import dataclasses

    ops = tuple(
        dataclasses.replace(op, derivative=np.exp) if op.name == "softmax" else op for op in _ops.OPS
    )  # softmax's rule normalises groups: it cannot only multiply by a saved derivative
    monkeypatch.setattr(_ops, "OPS", ops)
    with pytest.raises(TypeError, match="softmax: derivative= needs a unary elementwise rule"):
        _ops.paths()


def test_every_backward_rule_is_declared_once_with_its_path():
    from tapegrad._kernels.backward import RULE_NAMES

    assert sorted(RULE_NAMES) == sorted(rules.BACKWARD_RULES)
    assert {path for path, _ in rules.BACKWARD_RULES.values()} <= set(range(len(rules.PATH_NAMES)))
    for name, (_, reads) in rules.BACKWARD_RULES.items():
        assert set(reads.split()) <= {"a", "b", "out", "scalar"}, name


FORMULA_OPS = [op for op in _ops.OPS if op.grad_formula]


def test_generated_kernels_are_up_to_date():
    """``_kernels/generated.py`` is what ``python -m tapegrad._kernels.generate`` writes from the
    op table: run it after changing an op declared by formula."""
    from tapegrad._kernels import generate

    assert generate.TARGET.read_text() == generate.source(), "run: python -m tapegrad._kernels.generate"


@pytest.mark.parametrize("op", FORMULA_OPS, ids=lambda op: op.name)
def test_value_formula_matches_the_numpy_forward(op):
    from tapegrad._kernels import expressions

    x = np.random.default_rng(1).uniform(*op.domain, 64)
    np.testing.assert_allclose(expressions.evaluate(op.value_formula, x=x), op.forward(x), rtol=1e-14)


@pytest.mark.parametrize("op", FORMULA_OPS, ids=lambda op: op.name)
def test_saves_are_what_the_gradient_formula_reads(op):
    from tapegrad._kernels import expressions

    reads = expressions.names(op.grad_formula)
    assert op.reads("a") == ("x" in reads) and op.reads("out") == ("out" in reads)


@pytest.mark.parametrize(
    "value,grad,message",
    [
        ("log2(x)", "g / y", "unknown name 'y'"),
        ("log2(x)", "g * __import__('os')", "only .* may be called"),
        ("out", "g", "unknown name 'out'"),  # a value formula reads only its input
        ("log2(x)", "g if x else g", "IfExp is not allowed"),
        ("log2(x)", "g * 'a'", "only numbers"),
    ],
)
def test_a_formula_outside_the_language_is_refused_when_declared(value, grad, message):
    with pytest.raises(ValueError, match=message):
        _ops.unary("bad", "BadBackward0", np.log2, value, grad)


def test_rule_numbers_are_unique_within_each_kernel():
    """The small-row paths test rule numbers alone: two rules sharing a number in one kernel
    module would run one's code for the other (a generated rule once took ``neg``'s number)."""
    from tapegrad._kernels import backward, forward

    for module in (backward, forward):
        assert len(set(module.RULES.values())) == len(module.RULES), module.__name__


def test_a_precomputed_derivative_needs_a_gradient_of_x_alone():
    # numpy computes it from the input alone when the op is recorded, before the result is saved
    with pytest.raises(ValueError, match="derivative=True needs a gradient formula of x alone"):
        _ops.unary("exp_twin", "ExpBackward0", np.exp, "exp(x)", "g * out", derivative=True)
    twin = _ops.unary("sin_twin", "SinBackward0", np.sin, "sin(x)", "g * cos(x)", derivative=True)
    x = np.linspace(-2, 2, 7, dtype=np.float32)
    assert twin.derivative(x).dtype == np.float32
    np.testing.assert_array_equal(twin.derivative(x), np.cos(x))


@pytest.mark.parametrize(
    ("grad", "factor"),
    [
        ("g * cos(x)", "cos(x)"),
        ("g * -sin(x)", "-sin(x)"),
        ("g * out * 2", "out * 2"),
        ("g / (1 + x)", None),  # not g times something: evaluated at g = 1
        ("x * g", None),
    ],
)
def test_a_precomputed_derivative_drops_the_factor_g(grad, factor):
    # numpy would otherwise spend a pass over the array multiplying by 1 (10% of a 10^6 sin)
    from tapegrad._kernels import expressions

    assert expressions.derivative(grad) == factor
