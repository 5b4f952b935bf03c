"""The op table: the one place an operation is defined.

Every recorded op is one ``Op`` entry. Its position in ``OPS`` is its opcode on the tape; its
``family`` picks the interpreter's first-level dispatch; its ``rule`` names the backward rule in
``tapegrad/_kernels/backward.py`` (several ops share a rule: ``x - 2`` differentiates like
``x + 2``); ``grad_fn`` is the PyTorch node name users see. Which values a row saves is not
written here: it is what the op's rule reads (``tapegrad/_kernels/rules.py``), which is also what
a second backward without ``retain_graph`` may no longer use. ``domain`` is where the table-driven gradient checks sample
inputs. The facade methods, the kernels' dispatch arrays and the tests are all derived from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._kernels import expressions as _expressions
from ._kernels import rules as _rules

# First-level dispatch of the interpreter.
LEAF, UNARY, SCALAR, BINARY, REDUCE, VIEW, MATMUL, COPY, NARY, NONDIFF, GATHER, PYTHON = range(12)


@dataclass(frozen=True)
class Op:
    name: str
    family: int
    rule: str
    grad_fn: str | None = None
    forward: Callable | None = None
    domain: tuple[float, float] = (-2.0, 2.0)
    # Implicit rows (broadcasting, dtype promotion) that PyTorch folds into the op using them:
    # ``grad_fn.next_functions`` looks through them.
    hidden: bool = False
    # Entries PyTorch shows in ``next_functions``: ``x * 2`` lists ``(None, 0)`` for the 2.
    shown_inputs: int = 0
    # For unary ops whose derivative is transcendental: numpy computes it at record time for
    # large inputs (SIMD), and the backward multiplies by it. numba's scalar libm cos runs at
    # ~7 ns an element against numpy's ~0.7 ns, which made a 10^6-element sin's backward 9 ms.
    derivative: Callable | None = None
    # The forward rule of tapegrad/_kernels/forward.py that replays it, when not its own name.
    replay: str = ""
    # For views: False where PyTorch's autograd treats the result as a fresh tensor (the last
    # steps of matmul), so an in-place change of it does not rebase an input.
    is_view: bool = True
    # Elementwise ops declared as data (``unary`` below): scalar expressions of the value and of
    # the gradient, from which the replay and backward kernels (``_kernels/generated.py``), the
    # create_graph formula and the saved values are derived (``_kernels/expressions.py``).
    value_formula: str = ""
    grad_formula: str = ""
    # For formula ops whose ``forward`` has no SIMD loop in numpy (erf: scipy's runs ~18 ns an
    # element; relu: numpy's maximum against a scalar, 0.45 ns an element where a copy takes 0.1):
    # float inputs run ``value_formula`` compiled instead (``forward_<name>`` in
    # ``_kernels/generated.py``), with tapegrad's vectorized math.
    compiled_forward: bool = False
    # PyTorch's node saves something (the indices of a gather, a where's condition) that this
    # rule reads from the tape instead: a second backward through the row raises, as PyTorch's
    # does once it freed them (here the row saved nothing, and the gradient was added twice).
    keeps: bool = False
    # The integer slot points into the tape's aux table at the op's parameters (conv2d's stride,
    # padding, dilation and groups), as a view's at its strides.
    params_in_aux: bool = False

    @property
    def replay_rule(self) -> str:
        return self.replay or ("view" if self.family == VIEW else self.name)

    @property
    def arity(self) -> int:
        if self.shown_inputs:
            return self.shown_inputs
        return 2 if self.family in (BINARY, MATMUL) else 0 if self.family in (LEAF, NONDIFF) else 1

    # The values the backward reads ("a", "b", "out", "scalar"), from the op's rule or its
    # gradient formula: derived once here, since recording asks on every op.
    saves: str = field(init=False, repr=False, compare=False)
    _read: frozenset = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        saves = _expressions.saves(self.grad_formula) if self.grad_formula else _rules.reads(self.rule)
        object.__setattr__(self, "saves", saves)
        object.__setattr__(self, "_read", frozenset(saves.split()))

    def reads(self, value: str) -> bool:
        """Whether the backward reads ``value``: "a", "b", "out" or "scalar" (the parameter,
        which PyTorch counts as saved: ``x * 2.0`` cannot be backwarded twice there)."""
        return value in self._read

    @property
    def saves_mask(self) -> int:
        """``saves`` as bits for the interpreter: 1 input a, 2 input b, 4 the result, 8 the
        scalar parameter, 16 what PyTorch saves and the rule reads elsewhere (``keeps``)."""
        return (
            self.reads("a") | 2 * self.reads("b") | 4 * self.reads("out") | 8 * self.reads("scalar") | 16 * self.keeps
        )

    @property
    def uses_aux(self) -> bool:
        """Rows whose integer slot points into the tape's aux table (shifted when tapes merge)."""
        return self.family in (VIEW, NARY, GATHER) or self.params_in_aux


def _sigmoid(x):
    # from exp(-|x|): no overflow warning, and large negative x keeps its tiny value (the kernels'
    # vmath.sigmoid computes the same)
    return _expressions.sigmoid_arrays(x).astype(x.dtype, copy=False) if x.dtype.kind == "f" else x


def _relu(x):
    return np.maximum(x, x.dtype.type(0))


def _gelu(x):
    # x * Phi(x) from erfc(-x / sqrt 2), not 1 + erf(x / sqrt 2): no cancellation for negative x
    from scipy.special import erfc  # imported on first use: scipy takes ~0.2 s to import

    return (0.5 * x * erfc(x * -0.7071067811865476)).astype(x.dtype, copy=False)


def _erf(x):
    from scipy.special import erf

    return erf(x).astype(x.dtype, copy=False)


def _erfc(x):
    from scipy.special import erfc

    return erfc(x).astype(x.dtype, copy=False)


def _silu(x):
    # x times the sigmoid from exp(-|x|), as the compiled forward and the replay compute it: the
    # tanh form of the sigmoid cancelled for large negative x (silu(-30) 1.7e-4 off)
    return x * _sigmoid(x)


def _leaky_relu(x, slope):
    return np.where(x > 0, x, x * slope)


def _elu(x, alpha):
    return np.where(x > 0, x, np.expm1(x) * alpha)


def _softplus(x):
    # PyTorch's softplus (beta 1, threshold 20): log(1 + exp(x)), and x itself above 20. A 0-d
    # input (scalar graphs) takes the branch in Python: the same bits, without np.where's
    # arrays (1.2 against 2.2 us).
    if x.ndim == 0:
        return np.asarray(x if x > 20 else np.logaddexp(x.dtype.type(0), x), x.dtype)
    return np.where(x > 20, x, np.logaddexp(x.dtype.type(0), x))


def unary(name: str, grad_fn: str, forward: Callable, value: str, grad: str, *, derivative=False, **fields) -> Op:
    """An elementwise op as data: its numpy ``forward`` (eager), and scalar expressions of its
    ``value`` (replay) and ``grad`` (backward, create_graph) in ``x``, ``out`` and ``g``.
    Everything else about it is derived; tests/test_op_table.py checks ``value`` against
    ``forward`` and ``grad`` against central differences.

    ``derivative=True``: for large inputs, numpy computes d(out)/d(x) (``grad`` at ``g = 1``) when
    the op is recorded, and the backward only multiplies by it (numba's scalar libm ``cos`` runs
    at ~7 ns an element against numpy's SIMD ~0.7 ns). Only for a ``grad`` of ``x`` alone."""
    _expressions.parse(value, ("x",))
    _expressions.parse(grad)
    if derivative:
        if "out" in _expressions.names(grad):
            raise ValueError(f"{name}: derivative=True needs a gradient formula of x alone, not {grad!r}")
        factor = _expressions.derivative(grad)
        if factor is None:
            fields["derivative"] = lambda x: _expressions.evaluate(grad, g=1, x=x)
        else:
            fields["derivative"] = lambda x: _expressions.evaluate(factor, x=x)
    return Op(name, UNARY, name, grad_fn, forward, value_formula=value, grad_formula=grad, **fields)


def _power(x, s):
    """x ** s for a number s. numpy's float32 power calls powf per element (~55 ns: a 65,536-element
    ``a ** 3`` took 3.8 ms); like PyTorch, the common exponents multiply, or take a square root.
    The replay kernel mirrors these cases, so replay and eager agree to the bit."""
    if x.dtype.kind == "f":
        if s == 2:
            return x * x
        if s == 3:
            return x * x * x
        if s == 0.5:
            return np.sqrt(x)
        if s == -1:
            return np.reciprocal(x)
    elif x.dtype.kind in "iub" and s < 0 and float(s).is_integer():
        raise RuntimeError("Integers to negative integer powers are not allowed.")
    return integer_power(x, s)


def _integral(value) -> bool:
    """An integer array or Python/numpy integer (not converted: a Python float stays weak in
    numpy's promotion, so float32 ** 1.5 stays float32)."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iu"
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def integer_power(base, exponent):
    """``np.power``, with PyTorch's rule for integer powers with negative integer exponents
    (numpy raises): 1 for a base of 1, +-1 for -1, 0 for any other base (an exponent tensor's;
    a Python exponent raises in ``_power``, as in PyTorch)."""
    if isinstance(base, (bool, np.bool_)):  # True ** t: the integer 1 (numpy raised for t < 0)
        base = int(base)
    if _integral(base) and _integral(exponent) and np.any(np.asarray(exponent) < 0):
        base, exponent = np.asarray(base), np.asarray(exponent)
        kept = np.power(base, np.maximum(exponent, 0))
        odd = exponent % 2 != 0
        inverted = np.where(base == 1, 1, np.where(base == -1, np.where(odd, -1, 1), 0))
        return np.where(exponent < 0, inverted, kept).astype(kept.dtype)
    return np.power(base, exponent)


def _logit(x):
    with np.errstate(divide="ignore", invalid="ignore"):  # (inf at 0 and 1, NaN outside, silently)
        return np.log(x / (1 - x))


def _rsqrt(x):
    return 1 / np.sqrt(x)


OPS: tuple[Op, ...] = (
    # Rows that start a graph: a tensor that requires grad, or a constant an op reads.
    Op("leaf", LEAF, "leaf", replay="input"),
    Op("constant", LEAF, "constant", replay="input"),
    # y = f(x), element by element.
    Op("neg", UNARY, "neg", "NegBackward0", np.negative),  # its rule is also rsub's
    # exp, log, tanh, log1p and expm1 run vmath's loops eagerly too (tapegrad/_kernels/vmath.py):
    # numpy's are SIMD only on CPUs with AVX-512, and scalar libm elsewhere. Measured on an AMD
    # EPYC without it (float32, ns an element, vmath against numpy): exp 0.70 / 1.33, log 0.81 /
    # 1.73, tanh 0.72 / 2.64, log1p 1.11 / 12.2, expm1 0.60 / 15.0; with AVX-512 the two were
    # within 1.3x of each other either way (README's table). Replay then gives eager's bits.
    unary("exp", "ExpBackward0", np.exp, "exp(x)", "g * out", compiled_forward=True),
    unary("log", "LogBackward0", np.log, "log(x)", "g / x", domain=(0.2, 3.0), compiled_forward=True),
    # No precomputed derivative: their backward kernels run vmath's cos/sin vectorized (blocks of
    # moderate arguments), and read x live, as PyTorch does, rather than a cos(x) of record time.
    # The eager forward runs the same loop: 0.49 ns an element for float32 against numpy's 0.52,
    # and 1.7 against 16 for float64 (numpy's float64 sin is scalar libm); and replay then gives
    # eager's bits.
    unary("sin", "SinBackward0", np.sin, "sin(x)", "g * cos(x)", compiled_forward=True),
    unary("cos", "CosBackward0", np.cos, "cos(x)", "g * -sin(x)", compiled_forward=True),
    unary("tanh", "TanhBackward0", np.tanh, "tanh(x)", "g * (1 - out * out)", compiled_forward=True),
    unary("sigmoid", "SigmoidBackward0", _sigmoid, "sigmoid(x)", "g * (1 - out) * out", compiled_forward=True),
    unary("relu", "ReluBackward0", _relu, "relu(x)", "gate(out, g)", compiled_forward=True),
    unary("sqrt", "SqrtBackward0", np.sqrt, "sqrt(x)", "g / (out + out)", domain=(0.2, 3.0)),
    unary("abs", "AbsBackward0", np.abs, "abs(x)", "g * sign(x)"),
    unary(
        "reciprocal",
        "ReciprocalBackward0",
        np.reciprocal,
        "1 / x",
        "-g * (out * out)",
        domain=(0.5, 2.0),
        compiled_forward=True,
    ),
    # PyTorch's threshold (x itself above 20) needs a branch: a hand-written rule.
    Op("softplus", UNARY, "softplus", "SoftplusBackward0", _softplus, domain=(-3.0, 3.0)),
    unary(
        "gelu",
        "GeluBackward0",
        _gelu,
        "0.5 * x * erfc(x * -0.7071067811865476)",
        "g * gelu_grad(x)",
        domain=(-3.0, 3.0),
        compiled_forward=True,
    ),
    unary("log1p", "Log1PBackward0", np.log1p, "log1p(x)", "g / (1 + x)", domain=(-0.5, 2.0), compiled_forward=True),
    unary("log2", "Log2Backward0", np.log2, "log2(x)", "g / (x * 0.6931471805599453)", domain=(0.2, 3.0)),
    unary("log10", "Log10Backward0", np.log10, "log10(x)", "g / (x * 2.302585092994046)", domain=(0.2, 3.0)),
    unary("exp2", "Exp2Backward0", np.exp2, "exp2(x)", "g * out * 0.6931471805599453"),
    unary(
        "rsqrt",
        "RsqrtBackward0",
        _rsqrt,
        "1 / sqrt(x)",
        "-0.5 * g * out * out * out",
        domain=(0.2, 3.0),
        compiled_forward=True,
    ),
    unary("expm1", "Expm1Backward0", np.expm1, "expm1(x)", "g * (out + 1)", compiled_forward=True),
    unary("tan", "TanBackward0", np.tan, "tan(x)", "g * (1 + out * out)", domain=(-1.0, 1.0)),
    unary("asin", "AsinBackward0", np.arcsin, "asin(x)", "g / sqrt(1 - x * x)", domain=(-0.9, 0.9)),
    unary("acos", "AcosBackward0", np.arccos, "acos(x)", "-g / sqrt(1 - x * x)", domain=(-0.9, 0.9)),
    unary("atan", "AtanBackward0", np.arctan, "atan(x)", "g / (1 + x * x)"),
    unary("asinh", "AsinhBackward0", np.arcsinh, "asinh(x)", "g / sqrt(x * x + 1)"),
    unary("acosh", "AcoshBackward0", np.arccosh, "acosh(x)", "g / sqrt(x * x - 1)", domain=(1.2, 3.0)),
    unary("atanh", "AtanhBackward0", np.arctanh, "atanh(x)", "g / (1 - x * x)", domain=(-0.9, 0.9)),
    # PyTorch's logit_backward: g * inf at 0 and 1, NaN outside [0, 1] (the sqrt's NaN times 0;
    # the quotient alone is finite there), where a composite log(x / (1 - x)) gave NaN at 0 and
    # 1 (inf * 0 in the quotient's rule) and finite gradients outside. Its eager forward runs
    # the replay's loop (vmath's log) from 17 elements, so that replay gives eager's bits.
    unary(
        "logit",
        "LogitBackward0",
        _logit,
        "log(x / (1 - x))",
        "g / (x * (1 - x)) + 0 * sqrt(x * (1 - x))",
        domain=(0.2, 0.8),
        compiled_forward=True,
    ),  # fmt: skip
    unary("sinh", "SinhBackward0", np.sinh, "sinh(x)", "g * cosh(x)", derivative=True),
    unary("cosh", "CoshBackward0", np.cosh, "cosh(x)", "g * sinh(x)", derivative=True),
    unary("erf", "ErfBackward0", _erf, "erf(x)", "g * 1.1283791670955126 * exp(-x * x)", compiled_forward=True),
    unary("erfc", "ErfcBackward0", _erfc, "erfc(x)", "g * -1.1283791670955126 * exp(-x * x)", compiled_forward=True),
    unary("lgamma", "LgammaBackward0", _expressions.lgamma_arrays, "lgamma(x)", "g * digamma(x)", domain=(0.5, 3.0)),
    unary(
        "digamma",
        "DigammaBackward0",
        _expressions.FUNCTIONS["digamma"][2],
        "digamma(x)",
        "g * trigamma(x)",
        domain=(0.5, 3.0),
    ),
    # polygamma(1, x), public as ``polygamma`` (its own name would add a method PyTorch lacks)
    unary(
        "_trigamma",
        "PolygammaBackward0",
        _expressions.trigamma_arrays,
        "trigamma(x)",
        "g * tetragamma(x)",
        domain=(0.5, 3.0),
    ),
    unary(
        "erfinv",
        "ErfinvBackward0",
        _expressions.erfinv_arrays,
        "erfinv(x)",
        "g * 0.886226925452758 * exp(out * out)",
        domain=(-0.9, 0.9),
    ),
    unary(
        "silu",
        "SiluBackward0",
        _silu,
        "x * sigmoid(x)",
        "g * sigmoid(x) * (1 + x * (1 - sigmoid(x)))",
        compiled_forward=True,
    ),
    # Piecewise constant: the gradient is zero (and still reaches the input, as in PyTorch).
    Op("sign", UNARY, "zero", "SignBackward0", _expressions.sign_arrays),  # 0 at NaN, as PyTorch
    Op("floor", UNARY, "zero", "FloorBackward0", np.floor),
    Op("round", UNARY, "zero", "RoundBackward0", np.round),
    # y = f(x, s) with a Python number s, kept in the row's parameter slot.
    Op("add_scalar", SCALAR, "pass", "AddBackward0", np.add, shown_inputs=2),
    Op("sub_scalar", SCALAR, "pass", "SubBackward0", np.subtract, shown_inputs=2),
    Op("rsub_scalar", SCALAR, "neg", "RsubBackward1", lambda x, s: np.subtract(s, x)),
    Op("mul_scalar", SCALAR, "mul_scalar", "MulBackward0", np.multiply, shown_inputs=2),
    Op("div_scalar", SCALAR, "div_scalar", "DivBackward0", np.divide, shown_inputs=2),
    Op("pow_scalar", SCALAR, "pow_scalar", "PowBackward0", _power, domain=(0.5, 2.0)),
    Op("rpow_scalar", SCALAR, "rpow_scalar", "PowBackward2", lambda x, s: integer_power(s, x)),
    Op("leaky_relu", SCALAR, "leaky_relu", "LeakyReluBackward0", _leaky_relu),
    Op("elu", SCALAR, "elu", "EluBackward0", _elu),
    # clamp(x, lo, hi) is a hidden lower clamp feeding the upper one: one node, as in PyTorch.
    Op("clamp_min", SCALAR, "clamp_min", "ClampBackward1", np.maximum, domain=(-2.0, 2.0)),
    Op("clamp_max", SCALAR, "clamp_max", "ClampBackward1", np.minimum, domain=(-2.0, 2.0)),
    Op("clamp_lower", SCALAR, "clamp_min", "ClampBackward1", np.maximum, hidden=True, replay="clamp_min"),
    # y = f(a, b) on operands already broadcast and promoted to one shape and dtype.
    Op("add", BINARY, "add", "AddBackward0", np.add),
    Op("sub", BINARY, "sub", "SubBackward0", np.subtract),
    Op("mul", BINARY, "mul", "MulBackward0", np.multiply),
    Op("div", BINARY, "div", "DivBackward0", np.divide, domain=(0.5, 2.0)),
    Op("pow", BINARY, "pow", "PowBackward1", integer_power, domain=(0.5, 2.0)),
    # The larger (smaller) of two; a tie splits the gradient evenly, as in PyTorch.
    Op("maximum", BINARY, "maximum", "MaximumBackward0", np.maximum),
    Op("minimum", BINARY, "minimum", "MinimumBackward0", np.minimum),
    # where(condition, a, b): the integer slot is the distance back to a ``mask`` row holding the
    # condition as 0/1 in the result's dtype.
    Op("where", BINARY, "where", "WhereBackward0", np.where, keeps=True),  # forward: where(condition, a, b)
    # Reductions; the parameter slot holds the scale (1 for sum, 1/n for mean) and the integer
    # slot a bit mask of the reduced dimensions.
    Op("sum", REDUCE, "sum_all", "SumBackward0", replay="sum_all"),
    Op("mean", REDUCE, "sum_all", "MeanBackward0", replay="sum_all"),
    Op("sum_dim", REDUCE, "sum_dim", "SumBackward1"),
    Op("mean_dim", REDUCE, "sum_dim", "MeanBackward1", replay="sum_dim"),
    # Reductions along one dimension (integer slot; -1: over all elements). norm's order, var's
    # correction and max/min's direction (+1, -1) are in the parameter slot.
    Op("norm", REDUCE, "norm", "LinalgVectorNormBackward0", None),
    Op("prod", REDUCE, "prod", "ProdBackward0", None),
    Op("prod_dim", REDUCE, "prod", "ProdBackward1", None, replay="prod"),
    Op("logsumexp", REDUCE, "logsumexp", "LogsumexpBackward0", None),
    Op("var", REDUCE, "var", "VarBackward0", None),
    Op("std", REDUCE, "std", "StdBackward0", None),
    Op("cumsum", REDUCE, "cumsum", "CumsumBackward0"),
    # max/min and friends: in1 is a ``reduce_weights`` row saying where each group's gradient
    # goes (to the first extreme for max/min along a dimension, shared by ties otherwise).
    Op("max", REDUCE, "select_reduce", "MaxBackward1", None, replay="extreme"),
    Op("min", REDUCE, "select_reduce", "MinBackward1", None, replay="extreme"),
    Op("max_dim", REDUCE, "select_reduce", "MaxBackward0", None, replay="extreme"),
    Op("min_dim", REDUCE, "select_reduce", "MinBackward0", None, replay="extreme"),
    Op("amax", REDUCE, "select_reduce", "AmaxBackward0", None, replay="extreme"),
    Op("amin", REDUCE, "select_reduce", "AminBackward0", None, replay="extreme"),
    # Softmax along the dimension in the integer slot.
    Op("softmax", REDUCE, "softmax", "SoftmaxBackward0", None),
    Op("log_softmax", REDUCE, "log_softmax", "LogSoftmaxBackward0", None),
    # layer_norm without its weight and bias: the integer slot is how many trailing elements are
    # normalised together, the parameter slot eps.
    Op("layer_norm", REDUCE, "layer_norm", "NativeLayerNormBackward0", None, shown_inputs=3),
    # batch_norm's normalisation when training, without its weight and bias: each channel
    # (dimension 1 of an (N, C, ...) input) over the batch's statistics; the parameter slot eps.
    Op("batch_norm", REDUCE, "batch_norm", "NativeBatchNormBackward0", None, shown_inputs=3),
    # 2-D cross-correlation without its bias: in0 the input (N, C, H, W), in1 the weight; the
    # integer slot points at (stride h, w, padding top, left, dilation h, w, groups) in aux.
    Op("conv2d", REDUCE, "conv2d", "ConvolutionBackward0", None, shown_inputs=3, params_in_aux=True),
    # One step of nn.LSTM: in0 the gates (n, 4 * hidden), in1 the cell state (n, hidden); the
    # result (2, n, hidden) holds h, then the new c; the integer slot is hidden. PyTorch's CPU
    # LSTM is one node a layer (MkldnnRnnLayerBackward0); this is one a step.
    Op("lstm_cell", REDUCE, "lstm_cell", "LstmCellBackward0", None, shown_inputs=2),
    # One direction of one nn.LSTM layer, every step: in0 the steps' input projections (steps, n,
    # 4 * hidden), then h0 and c0 (n, hidden), flat; in1 w_hh (4 * hidden, hidden); the integer
    # slot 1 for a reversed direction. The result (steps, 2, n, hidden) holds each step's h and c.
    Op("lstm_sequence", REDUCE, "lstm_sequence", "MkldnnRnnLayerBackward0", None, shown_inputs=2),
    # Views: the integer slot points at (offset, strides) in the tape's aux table, relative to
    # the input laid out contiguously; one rule scatters the gradient back for all of them.
    Op("view", VIEW, "view", "ViewBackward0"),
    Op("unsafe_view", VIEW, "view", "UnsafeViewBackward0", is_view=False),
    Op("reshape_alias", VIEW, "view", "ReshapeAliasBackward0"),
    Op("transpose", VIEW, "view", "TransposeBackward0"),
    Op("t", VIEW, "view", "TBackward0"),
    Op("permute", VIEW, "view", "PermuteBackward0"),
    Op("unsqueeze", VIEW, "view", "UnsqueezeBackward0"),
    Op("squeeze", VIEW, "view", "SqueezeBackward0"),
    Op("squeeze_dim", VIEW, "view", "SqueezeBackward1"),
    Op("squeeze_dims", VIEW, "view", "SqueezeBackward2"),
    Op("squeeze_matmul", VIEW, "view", "SqueezeBackward4", is_view=False),
    Op("select", VIEW, "view", "SelectBackward0"),
    Op("slice", VIEW, "view", "SliceBackward0"),
    Op("alias", VIEW, "view", "AliasBackward0"),
    Op("expand", VIEW, "view", "ExpandBackward0"),
    Op("split", VIEW, "view", "SplitBackward0"),
    Op("split_with_sizes", VIEW, "view", "SplitWithSizesBackward0"),
    Op("unbind", VIEW, "view", "UnbindBackward0"),
    Op("diagonal", VIEW, "view", "DiagonalBackward0"),
    Op("broadcast", VIEW, "view", "ExpandBackward0", hidden=True),
    Op("matmul_view", VIEW, "view", "ViewBackward0", hidden=True, is_view=False),
    # Matrix products (BLAS through numba).
    Op("dot", MATMUL, "dot", "DotBackward0", None),
    Op("mv", MATMUL, "mv", "MvBackward0", None),
    Op("mm", MATMUL, "mm", "MmBackward0", None),
    Op("bmm", MATMUL, "bmm", "BmmBackward0", None),
    # Copies.
    Op("clone", COPY, "pass", "CloneBackward0", replay="copy"),
    # A leaf's second row, when two tapes that both registered it merge (``Tape.absorb``): it
    # passes its gradient to the leaf's row; hidden, so next_functions shows the one AccumulateGrad.
    Op("shared_leaf", COPY, "pass", "SharedLeafBackward0", hidden=True, replay="copy"),
    # Inside ``tapegrad.record``, a tensor changed in place where autograd does not see it
    # (under ``no_grad``, through ``.data``): the value of in1 (the new values, computed by
    # rows without gradient), the gradient passed to in0 as if unchanged, as PyTorch does.
    Op("assign", COPY, "pass", "CopyBackwards", hidden=True, replay="assign"),
    Op("cast", COPY, "cast", "ToCopyBackward0"),
    Op("promote", COPY, "cast", "ToCopyBackward0", hidden=True, replay="cast"),
    # Rows of the input picked by integer indices (kept in aux: count, then the indices):
    # ``embedding(indices, weight)`` and ``x[index_tensor]``; gradients scatter-add.
    Op("embedding", GATHER, "gather_rows", "EmbeddingBackward0", replay="gather_rows", keeps=True),
    Op("index", GATHER, "gather_rows", "IndexBackward0", replay="gather_rows", keeps=True),
    # Element by element (rows one element wide): the indices are flat positions in the input.
    Op("gather", GATHER, "gather_rows", "GatherBackward0", replay="gather_rows", keeps=True),
    Op("index_select", GATHER, "gather_rows", "IndexSelectBackward0", replay="gather_rows", keeps=True),
    Op("repeat", GATHER, "gather_rows", "RepeatBackward0", replay="gather_rows"),
    Op("flip", GATHER, "gather_rows", "FlipBackward0", replay="gather_rows"),
    # x[key] = v on a recorded tensor: x and v joined, then picked back into x's shape (PyTorch
    # names it by the key: basic indexing or index tensors and masks).
    Op("copy_slices", GATHER, "gather_rows", "CopySlices", replay="gather_rows"),
    Op("index_put", GATHER, "gather_rows", "IndexPutBackward0", replay="gather_rows"),
    # A view after its storage changed in place: a pick from its root's new row.
    Op("as_strided", GATHER, "gather_rows", "AsStridedBackward0", replay="gather_rows"),
    # nll_loss: the picked log-probabilities (a hidden gather), summed and scaled by -1/count.
    Op("nll_pick", GATHER, "gather_rows", "NllLossBackward0", hidden=True, replay="gather_rows", keeps=True),
    Op("nll_loss", REDUCE, "sum_all", "NllLossBackward0", shown_inputs=2, replay="sum_all"),
    # ... with class weights: the picks dotted with the targets' -weight / total weight.
    Op("nll_loss_weighted", MATMUL, "dot", "NllLossBackward0", None, replay="dot"),
    # ... of targets the tape computes or takes as an input (vmap's labels, a recorded batch's):
    # in1 holds them in the input's dtype, read at each replay. One row for the whole loss (as
    # picks by comparing each target with every class, it was 35). iparam: ignore_index; param:
    # 1 for the mean over the kept targets, 0 for their sum.
    Op("nll_targets", REDUCE, "nll_targets", "NllLossBackward0", None, shown_inputs=2),
    # n inputs: the integer slot points at (count, dim, r - input_row for each input, each
    # input's extent along dim) in aux; deltas rather than row numbers, so merging tapes leaves
    # them valid.
    Op("stack", NARY, "concat", "StackBackward0", replay="concat"),
    Op("cat", NARY, "concat", "CatBackward0", replay="concat"),
    # Not differentiable; recorded only inside ``tapegrad.record`` so the replay can recompute
    # them: comparisons (result 0/1; with a Python number when in1 is -1, in the parameter
    # slot), ``detach``/``.data``, and guards on values Python control flow read.
    Op("lt", NONDIFF, "constant", forward=np.less),
    Op("le", NONDIFF, "constant", forward=np.less_equal),
    Op("gt", NONDIFF, "constant", forward=np.greater),
    Op("ge", NONDIFF, "constant", forward=np.greater_equal),
    Op("eq", NONDIFF, "constant", forward=np.equal),
    Op("ne", NONDIFF, "constant", forward=np.not_equal),
    Op("detach", NONDIFF, "constant", replay="copy"),
    Op("mask", NONDIFF, "constant", replay="cast"),  # a where's condition, as 0/1
    Op("reduce_weights", NONDIFF, "constant"),
    Op("argmax", NONDIFF, "constant"),  # also argmin (parameter -1); indices
    Op("guard", NONDIFF, "constant"),
    # How many targets of an ``nll_targets`` row (in0) are outside [0, classes) and not
    # ignore_index (iparam); classes in the parameter slot. A guard holds it at 0.
    Op("nll_bad", NONDIFF, "constant"),
    # An output of a user's ``tapegrad.autograd.Function``: its backward is the user's Python,
    # called by the engine when the sweep reaches the call's first output row (all its outputs'
    # gradients are complete then); the kernels only give it a gradient slot. Inputs and the
    # context live in the tape's ``functions`` table, not in the row.
    Op("function", PYTHON, "python", "FunctionBackward", replay="python"),
)

OPCODE: dict[str, int] = {op.name: code for code, op in enumerate(OPS)}
BY_NAME: dict[str, Op] = {op.name: op for op in OPS}
LEAF_OPCODE = OPCODE["leaf"]
CONSTANT_OPCODE = OPCODE["constant"]
SHARED_LEAF_OPCODE = OPCODE["shared_leaf"]


def dispatch_arrays(rule_numbers: dict[str, int]):
    """The per-opcode arrays the interpreter dispatches on, derived from the table.

    ``rule_numbers`` is the kernel module's own numbering of its rules; an op whose rule the
    kernels do not define is a table error, reported by name here rather than as a wrong gradient.
    """
    missing = sorted({op.rule for op in OPS} - set(rule_numbers))
    if missing:
        raise NotImplementedError(f"no backward rule in tapegrad._kernels for: {', '.join(missing)}")
    rules = np.array([rule_numbers[op.rule] for op in OPS], dtype=np.int64)
    saves = np.array([op.saves_mask for op in OPS], dtype=np.int64)
    return rules, saves, paths()


def paths() -> np.ndarray:
    """Per opcode, the kernel path of its backward (``tapegrad/_kernels/rules.py``): unary
    elementwise ops get ``UNARY``, under which a row with a precomputed derivative only multiplies."""
    result = np.empty(len(OPS), dtype=np.int64)
    for opcode, op in enumerate(OPS):
        path = _rules.GENERATED if op.grad_formula else _rules.path(op.rule)
        if op.family == UNARY and path == _rules.ELEMENTWISE:
            path = _rules.UNARY
        elif op.derivative is not None and not (op.family == UNARY and path == _rules.GENERATED):
            raise TypeError(f"{op.name}: derivative= needs a unary elementwise rule, not {op.rule!r}")
        result[opcode] = path
    return result


def replay_arrays(rule_numbers: dict[str, int], paths=None) -> np.ndarray:
    """Per-opcode forward rule numbers for the replay interpreter, derived from the table; with
    ``paths`` (per rule), each entry is ``path << 16 | rule``: the sweep reads both in one load."""
    missing = sorted({op.replay_rule for op in OPS} - set(rule_numbers))
    if missing:
        raise NotImplementedError(f"no replay rule in tapegrad._kernels.forward for: {', '.join(missing)}")
    numbers = np.array([rule_numbers[op.replay_rule] for op in OPS], dtype=np.int64)
    return numbers if paths is None else (np.asarray(paths, np.int64)[numbers] << 16) | numbers
