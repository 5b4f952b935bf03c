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

# name: (numba's function in generated kernels, the Tensor method for create_graph formulas)
FUNCTIONS = {
    "exp": ("np.exp", "exp"),
    "exp2": ("np.exp2", "exp2"),
    "log": ("np.log", "log"),
    "log2": ("np.log2", "log2"),
    "log10": ("np.log10", "log10"),
    "sqrt": ("np.sqrt", "sqrt"),
    "sin": ("np.sin", "sin"),
    "cos": ("np.cos", "cos"),
    "tanh": ("np.tanh", "tanh"),
    "abs": ("np.abs", "abs"),
}
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
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
                raise ValueError(f"{text!r}: only {sorted(FUNCTIONS)} may be called, with positional arguments")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
                raise ValueError(f"{text!r}: only numbers are allowed as constants")
        elif not isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Load, *_OPERATORS)):
            raise ValueError(f"{text!r}: {type(node).__name__} is not allowed in an elementwise formula")
    return tree


def names(text: str) -> set:
    """The variables the expression reads."""
    return {node.id for node in ast.walk(parse(text)) if isinstance(node, ast.Name) and node.id in VARIABLES}


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


def evaluate(text: str, **values):
    """The expression over tapegrad tensors (or numpy arrays, or numbers): ``create_graph``
    formulas and tests call it with ``x``, ``out`` and ``g``."""

    def call(name):
        method = FUNCTIONS[name][1]

        def function(value):
            return getattr(value, method)() if hasattr(value, method) else getattr(__import__("numpy"), method)(value)

        return function

    namespace = {name: call(name) for name in FUNCTIONS}
    namespace.update(values)
    return eval(compile(ast.Expression(parse(text)), "<formula>", "eval"), {"__builtins__": {}}, namespace)  # noqa: S307 - parsed and checked above
