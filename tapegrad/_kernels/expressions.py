"""Scalar expressions of elementwise ops: one text, three uses. Plain Python (no numba).

An elementwise op declared with ``value="log2(x)"`` and ``grad="g / (x * 0.6931471805599453)"``
gets from these texts its jitted replay and backward loops (``generate.py`` writes them into
``generated.py``), its ``create_graph`` formula (the same expression over tapegrad tensors) and
what its row saves (``x`` read: the input; ``out`` read: the result). A saved-value list that
disagrees with the formula cannot be written.

Names: ``x`` the input, ``out`` the result, ``g`` the incoming gradient; numbers; ``+ - * / **``;
and the functions of ``FUNCTIONS``. Anything else is refused when the op table is loaded.
"""

from __future__ import annotations

import ast
import functools
import math

import numpy as np


def sign_arrays(x):
    """np.sign of an array or a number, with 0 for NaN (PyTorch's sign and sgn)."""
    out = np.sign(x)
    if not hasattr(out, "dtype") or out.ndim == 0:
        return type(out)(0) if out != out else out
    out[np.isnan(out)] = 0
    return out


def sigmoid_arrays(x):
    """The logistic function of an array or a number, as ``vmath.sigmoid`` computes it: from
    ``e = exp(-|x|)``, ``1 / (1 + e)`` for x >= 0 and ``e / (1 + e)`` below, so that large
    negative x keeps its tiny value (``torch.sigmoid``'s) instead of rounding to 0, and no
    overflow warning. NaN stays NaN."""
    e = np.exp(-np.abs(x))
    if not hasattr(x, "dtype"):
        return (1.0 if x >= 0 else e) / (1.0 + e)
    one = x.dtype.type(1)  # typed: np.where would promote a Python 1 and float32 to float64
    return np.where(x >= 0, one, e) / (one + e)


# gelu's derivative, d/dx of x * Phi(x), in the formula language: ``gelu_grad`` over tensors
# (create_graph, so that it differentiates again) and over arrays evaluates this text; the
# kernels' ``vmath.gelu_grad`` computes it with one exp for both terms.
GELU_GRAD = "0.5 * erfc(x * -0.7071067811865476) + x * exp(-0.5 * x * x) * 0.3989422804014327"


def _gelu_grad(x):
    return evaluate(GELU_GRAD, x=x)


def zero_through(c):
    """Zeros recorded as read from the tensor ``c`` with a zero derivative (``sign``'s; a NaN
    of ``c`` gives no NaN). Added to a gradient whose formula reads ``c`` only as constants, it
    keeps that gradient a function of ``c``, as PyTorch's double-backward nodes are: a second
    ``autograd.grad`` in ``c`` then gives zeros, not an error. One recorded op: ``c`` with every
    element replaced by 0 (a fill of a constant mask, whose derivative in ``c`` is 0)."""
    return c.masked_fill(c.new_ones(tuple(c.shape)).bool(), 0.0)


def _gate_tensors(c, v):
    """gate over tensors (create_graph): a select that differentiates in ``v`` alone, as
    PyTorch's threshold_backward does. Its result requires grad when ``c`` does, with a zero
    derivative there (``sign``'s), as PyTorch's: otherwise the gradient of ``relu(x).sum()``
    did not require grad, and a second ``autograd.grad`` raised where PyTorch gives zeros."""
    gated = v.masked_fill(c <= 0, 0.0)
    if c.requires_grad:  # (a function of c even when v depends on c otherwise, or not at all)
        gated = gated + zero_through(c)
    return gated


def _gate_arrays(c, v):
    if hasattr(v, "dtype"):
        return np.where(c <= 0, v.dtype.type(0), v)
    return 0.0 if c <= 0 else v


def _special(name: str, *leading):
    """scipy.special's ``name`` (imported on first use: scipy takes ~0.2 s to import) of an array
    or a number, in the array's dtype."""

    def function(x):
        import scipy.special

        out = getattr(scipy.special, name)(*leading, x)
        return out.astype(x.dtype, copy=False) if hasattr(x, "dtype") else float(out)

    return function


_gammaln, _psi, _polygamma1, _polygamma2, _erfinv = (
    _special("gammaln"),
    _special("psi"),
    _special("polygamma", 1),
    _special("polygamma", 2),
    _special("erfinv"),
)


def lgamma_arrays(x):
    """log|Gamma(x)| as PyTorch's lgamma: +inf at -inf too (scipy's gammaln gives -inf there)."""
    out = _gammaln(x)
    return np.where(x == -np.inf, np.inf, out).astype(out.dtype) if hasattr(out, "dtype") else out


def trigamma_arrays(x):
    """psi'(x), +inf at the poles (0 and the negative integers), as the kernels compute it."""
    return _polygamma1(x)


def erfinv_arrays(x):
    """erf's inverse with the sign of a zero kept, as PyTorch's (scipy's erfinv(-0.0) is +0.0)."""
    out = _erfinv(x)
    return np.copysign(out, x).astype(out.dtype) if hasattr(out, "dtype") else math.copysign(out, x)


# name: (the function in generated kernels, the Tensor method for create_graph formulas, the numpy
# function for arrays; either of the last two may be a function of the arguments instead; the
# second None where there is none: a gradient formula calling it is then first-order only).
# Kernel names are numba's numpy and math functions, the helpers of ``scalar.py`` where numpy's
# semantics need a branch (relu keeps NaN, as np.maximum does), or the vectorizable functions of
# ``vmath.py``.
FUNCTIONS = {
    # vmath's: written so that LLVM vectorizes them (numba's call scalar libm; see vmath.py)
    "exp": ("vmath.exp", "exp", "exp"),
    # math's, not numpy's: numba declares np.exp2/np.log2 as one LLVM intrinsic for both float
    # widths, so a function inlining both dtypes fails to compile (numba 0.68).
    "exp2": ("math.exp2", "exp2", "exp2"),
    "expm1": ("vmath.expm1", "expm1", "expm1"),
    "log": ("vmath.log", "log", "log"),
    "log2": ("math.log2", "log2", "log2"),
    "log10": ("np.log10", "log10", "log10"),
    "log1p": ("vmath.log1p", "log1p", "log1p"),
    "sqrt": ("np.sqrt", "sqrt", "sqrt"),
    "sin": ("vmath.sin", "sin", "sin"),
    "cos": ("vmath.cos", "cos", "cos"),
    "tan": ("np.tan", "tan", "tan"),
    "asin": ("np.arcsin", "asin", "arcsin"),
    "acos": ("np.arccos", "acos", "arccos"),
    "atan": ("np.arctan", "atan", "arctan"),
    "asinh": ("np.arcsinh", "asinh", "arcsinh"),
    "acosh": ("np.arccosh", "acosh", "arccosh"),
    "atanh": ("np.arctanh", "atanh", "arctanh"),
    "sinh": ("np.sinh", "sinh", "sinh"),
    "cosh": ("np.cosh", "cosh", "cosh"),
    "tanh": ("vmath.tanh", "tanh", "tanh"),
    "sigmoid": ("vmath.sigmoid", "sigmoid", lambda v: sigmoid_arrays(v)),  # defined below
    "erf": ("vmath.erf", "erf", "scipy.special.erf"),
    "erfc": ("vmath.erfc", "erfc", "scipy.special.erfc"),
    # lgamma and its derivatives (digamma, polygamma(1) and, for its gradient alone, polygamma(2)),
    # erf's inverse: scalar loops computed in float64 (scalar.py), numpy's from scipy.special
    "lgamma": ("math.lgamma", "lgamma", lgamma_arrays),
    "digamma": ("scalar.digamma", "digamma", _psi),
    "trigamma": ("scalar.trigamma", "_trigamma", trigamma_arrays),
    # (no form over tensors: polygamma(2) is no op, and create_graph through polygamma(1) refuses)
    "tetragamma": ("scalar.tetragamma", None, _polygamma2),
    "erfinv": ("scalar.erfinv", "erfinv", erfinv_arrays),
    # d/dx of x * Phi(x) (gelu's backward): in the kernels one exp for both of its terms
    "gelu_grad": ("vmath.gelu_grad", _gelu_grad, _gelu_grad),
    "abs": ("np.abs", "abs", "abs"),
    # Piecewise constant: as a factor of ``g`` it selects, and its own gradient is zero.
    "sign": ("scalar.sign", "sign", sign_arrays),  # 0 at NaN, as PyTorch's
    "relu": ("scalar.relu", "relu", "relu"),
    # gate(c, v): v where c > 0 (or c is NaN), else 0 -- a select, not v * sign(c), whose
    # inf * 0 gave NaN where PyTorch's threshold_backward gives 0.
    "gate": ("scalar.gate", _gate_tensors, _gate_arrays),
}
ARITY = {"gate": 2}  # the functions not of one argument
# Functions whose loops are compiled as functions of arrays of their own (generate.py): float32
# sin and cos read a table (Payne-Hanek), and LLVM does not vectorize those reads next to
# stores through the arena pointers a family builds from addresses (it cannot tell them apart
# from the table), so the replay of sin ran at 10 ns an element against 1.6 in a plain loop.
APART = {"sin", "cos"}
VARIABLES = ("x", "out", "g")
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


def parse(text: str, allowed: tuple = VARIABLES) -> ast.expr:
    """The expression's tree, after checking that it uses only what this module translates."""
    tree = ast.parse(text, mode="eval").body
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id not in allowed and node.id not in FUNCTIONS:
                raise ValueError(
                    f"{text!r}: unknown name {node.id!r} (use {', '.join(allowed)} or {sorted(FUNCTIONS)})"
                )
        elif isinstance(node, ast.Call):
            if (
                not isinstance(node.func, ast.Name)
                or node.func.id not in FUNCTIONS
                or node.keywords
                or len(node.args) != ARITY.get(node.func.id, 1)
            ):
                raise ValueError(
                    f"{text!r}: only {sorted(FUNCTIONS)} may be called, with one argument ({ARITY} take more)"
                )
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
                raise ValueError(f"{text!r}: only numbers are allowed as constants")
        elif not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Load, *_OPERATORS)):
            raise ValueError(f"{text!r}: {type(node).__name__} is not allowed in an elementwise formula")
    return tree


def called(text: str) -> set:
    """The functions the expression calls."""
    return {node.func.id for node in ast.walk(parse(text)) if isinstance(node, ast.Call)}


def names(text: str) -> set:
    """The variables the expression reads."""
    return {node.id for node in ast.walk(parse(text)) if isinstance(node, ast.Name) and node.id in VARIABLES}


def differentiable(text: str) -> bool:
    """Whether every function the expression calls has a form over tensors (``FUNCTIONS``'
    second entry), so that it can be a ``create_graph`` formula."""
    called = {node.func.id for node in ast.walk(parse(text)) if isinstance(node, ast.Call)}
    return all(FUNCTIONS[name][1] is not None for name in called)


def derivative(grad: str) -> str | None:
    """d(out)/d(x) from a gradient expression ``g * E`` (g the leftmost factor): ``E`` itself, so
    that numpy does not spend a pass over the array multiplying by 1. None for other shapes."""
    tree = parse(grad)
    path = []
    node = tree
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        path.append(node)
        node = node.left
    if path and isinstance(node, ast.Name) and node.id == "g":
        parent = path[-1]
        if len(path) == 1:
            return ast.unparse(parent.right)
        path[-2].left = parent.right
        return ast.unparse(path[0])
    return None


def saves(grad: str) -> str:
    """What a row whose gradient is ``grad`` must save: "a" (the input), "out", or both."""
    used = names(grad)
    return " ".join(value for name, value in (("x", "a"), ("out", "out")) if name in used)


class _ToKernel(ast.NodeTransformer):
    """Variables become the loop's scalars, functions numba's, numbers the buffer's dtype (numba
    widens a float32 times a Python float to float64, where numpy keeps float32)."""

    def __init__(self, scalars: dict):
        self.scalars = scalars
        self.constants: list = []

    def visit_Name(self, node):  # noqa: N802 - ast's visitor naming
        return ast.Name(self.scalars[node.id], ast.Load())

    def visit_Call(self, node):  # noqa: N802
        node.args = [self.visit(argument) for argument in node.args]
        node.func = ast.parse(FUNCTIONS[node.func.id][0], mode="eval").body
        return node

    def visit_Constant(self, node):  # noqa: N802
        if node.value not in self.constants:
            self.constants.append(node.value)
        return ast.Name(f"c{self.constants.index(node.value)}", ast.Load())


def to_kernel(text: str, scalars: dict) -> tuple[str, list]:
    """(the expression over the loop's scalars, its constants in order: ``c0``, ``c1``...)."""
    translator = _ToKernel(scalars)
    tree = translator.visit(parse(text))
    return ast.unparse(tree), translator.constants


def _numpy_function(name: str):
    path = FUNCTIONS[name][2]
    if callable(path):
        return path
    if path == "relu":
        return lambda v: np.maximum(v, v.dtype.type(0)) if hasattr(v, "dtype") else max(v, 0.0)
    if path.startswith("scipy."):
        import scipy.special  # imported on first use: scipy takes ~0.2 s to import

        function = getattr(scipy.special, path.rpartition(".")[2])
        return lambda v: function(v).astype(v.dtype, copy=False) if hasattr(v, "dtype") else function(v)
    return getattr(np, path)


@functools.lru_cache(maxsize=None)
def _compiled(text: str):
    return compile(ast.fix_missing_locations(ast.Expression(parse(text))), "<formula>", "eval")


def evaluate(text: str, **values):
    """The expression over tapegrad tensors (``create_graph`` formulas), or numpy arrays or numbers
    (record-time derivatives, tests), with ``x``, ``out`` and ``g``."""

    def call(name):
        method = FUNCTIONS[name][1]

        def function(*arguments):
            if hasattr(arguments[-1], "grad_fn"):  # Tensors: recorded ops, so the formula differentiates
                return method(*arguments) if callable(method) else getattr(arguments[0], method)()
            return _numpy_function(name)(*arguments)

        return function

    namespace = {name: call(name) for name in FUNCTIONS}
    namespace.update(values)
    return eval(_compiled(text), {"__builtins__": {}}, namespace)  # noqa: S307 - parsed and checked above
