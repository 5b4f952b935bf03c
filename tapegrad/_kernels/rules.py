"""What each backward rule of the interpreter is: the kernel function that runs it and the values
it reads. Plain Python (no numba): the op table reads it at import.

An op names its rule (``Op.rule``); from here it inherits which values its row saves, so an op
cannot declare a ``saves`` that disagrees with what its rule reads (a rule reading a value never
saved follows a null address). The sweep picks the kernel function from ``path``, derived per
opcode by ``tapegrad._ops.dispatch_arrays``, never from where a rule's number falls.

Reads: ``a``/``b`` the row's inputs, ``out`` its result, ``scalar`` its float parameter (which
PyTorch counts as saved: ``x * 2.0`` cannot be backwarded twice there).
"""

from __future__ import annotations

# Kernel paths of the backward sweep (tapegrad/_kernels/backward.py).
SKIP = 0  # leaves: nothing to propagate (their gradient is the result)
PYTHON = 1  # a custom Function: the engine runs its backward before the sweep reaches the row
CAST = 2  # between the float32 and float64 arenas
ELEMENTWISE = 3  # ``_elementwise_backward``: operands and result of one shape
GROUPED = 4  # ``_grouped_backward``: selections and reductions along one dimension
STRUCTURAL = 5  # ``_structural_backward``: reductions, views, joins and products that need shapes
# A unary elementwise op with a hand-written rule: with a second input row, that row holds
# d(out)/d(x), computed by numpy at record time, and the sweep only multiplies (``Op.derivative``).
UNARY = 6
# An elementwise op declared by formulas (``tapegrad._ops.unary``): its kernels are generated
# into ``generated.py``, and its rule numbers are that module's own. A second input row is a
# precomputed derivative, as for ``UNARY``.
GENERATED = 7
# Constants: no gradient slot at all.
CONSTANT = 8
MATMUL = 9  # ``_matmul_backward``: dot, mv, mm, bmm (BLAS)
NORMALIZATION = 10  # ``_normalization_backward``: softmax, log_softmax, layer_norm, by groups; lstm_cell
# ``_layers_backward``: whole layers fused into one row each (conv2d, batch_norm, an LSTM's steps),
# a family of their own: in the matmul and normalization families, every MLP's first backward
# compiled them too (4.5 and 5 s more).
LAYERS = 11

PATH_NAMES = (
    "skip",
    "python",
    "cast",
    "elementwise",
    "grouped",
    "structural",
    "unary",
    "generated",
    "constant",
    "matmul",
    "normalization",
    "layers",
)


def _rules(path: int, declarations: str) -> dict:
    """``"name:reads name ..."`` (reads joined by ``+``) as {name: (path, reads)}."""
    rules = {}
    for declaration in declarations.split():
        name, _, reads = declaration.partition(":")
        rules[name] = (path, " ".join(reads.split("+")) if reads else "")
    return rules


BACKWARD_RULES: dict[str, tuple[int, str]] = {
    **_rules(SKIP, "leaf"),
    **_rules(CONSTANT, "constant"),
    **_rules(PYTHON, "python"),
    **_rules(CAST, "cast"),
    **_rules(
        ELEMENTWISE,
        "neg softplus:a zero leaky_relu:a elu:a pass mul_scalar:scalar div_scalar:scalar pow_scalar:a "
        "rpow_scalar:out add sub mul:a+b div:a+b pow:a+b+out",
    ),
    **_rules(
        GROUPED,
        "norm:a+out maximum:a+b minimum:a+b clamp_min:a clamp_max:a where select_reduce:b cumsum "
        "prod:a+out logsumexp:a+out var:a std:a+out",
    ),
    # sum_all's result is one element: the sweep's call-free path for small rows runs it.
    **_rules(STRUCTURAL, "sum_all sum_dim view concat gather_rows nll_targets:b"),
    # Their own family, apart from the views: each half compiles in about half the time.
    **_rules(NORMALIZATION, "softmax:out log_softmax:out layer_norm:a lstm_cell:a+b+out"),
    **_rules(MATMUL, "dot:a+b mv:a+b mm:a+b bmm:a+b"),
    **_rules(LAYERS, "conv2d:a+b batch_norm:a+b lstm_sequence:a+b+out"),
}


# Operand values a rule reads only for the other operand's gradient (a * b: a for b's, b for
# a's): when the other operand takes no gradient, nothing reads them, and PyTorch does not save
# them, so changing one in place before the backward is no error (tapegrad still keeps the
# value, which the kernels may load, but does not check its version).
CROSS_READS: dict[str, str] = {"mul": "a b", "div": "a", "dot": "a b", "mv": "a b", "mm": "a b", "bmm": "a b"}


def reads(rule: str) -> str:
    """The values ``rule`` reads, space separated ("a b out scalar")."""
    return BACKWARD_RULES[rule][1]


def path(rule: str) -> int:
    return BACKWARD_RULES[rule][0]


# A product's (or quotient's) iparam, eagerly: the period of operand a << PERIOD_BITS | that of b,
# where the operand is a broadcast row whose rule reads the smaller value it repeats, saved under
# the broadcast's source (``_record._repeated_operand``, ``backward._repeated_value``); 0: none.
PERIOD_BITS = 32
