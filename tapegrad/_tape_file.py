"""Recorded tapes as data: the file format of ``Tape.save``/``load_tape``, and the validator that
every tape from outside this process passes before the interpreters see it.

The interpreters follow a tape's integers as addresses without bounds checks, so a tape is a
program: a row naming an input that does not exist, or a view whose strides leave its buffer,
would read or write arbitrary memory. ``validate`` checks every field every kernel reads against
the rows before it (opcodes, input ids, layouts, the aux data of views, picks and joins, the
shapes of matrix products, reduced dimensions), and raises ``ValueError`` naming the row and the
field. ``Tape.__setstate__`` (unpickling, for shipping between processes) and ``load_tape`` run it.

The file is numpy's ``.npz`` read with ``allow_pickle=False``: integer and float arrays, and a
JSON header (format version, tapegrad's version, the op names by opcode, input specs, guards as
data, a SHA-256 of the arrays). Nothing in it is executed; opcodes are stored with the table's
op names and mapped by name on load, so a file outlives a change of opcode numbering.
"""

from __future__ import annotations

import json
import math

import numpy as np

from . import _ops
from ._kernels.rules import CONSTANT as _CONSTANT_PATH
from ._shapes import physical_memory
from ._tape import (
    CODE_DTYPES,
    DTYPE_CODES,
    IN0,
    IN1,
    IPARAM,
    LAYOUT,
    NO_GRAD,
    OPCODE,
    OPCODE_MASK,
    ROW_WIDTH,
    row_sources,
)

FORMAT = "tapegrad-tape"
FORMAT_VERSION = 1
_INTEGER_NAMES = frozenset(dtype.name for dtype in DTYPE_CODES if dtype.kind in "iu")  # those a tape holds
_ARRAYS = ("rows", "params", "layouts", "dims", "aux", "input_rows", "output_rows", "values32", "values64")
_INPUT_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32, "bool": np.bool_}

# Replay rules by what their kernels read (``_kernels/forward.py`` and the backward rules).
_SAME_SHAPE_UNARY = {"neg", "softplus", "sign", "floor", "round", "leaky_relu", "elu", "copy"}
_SCALAR = {"add_scalar", "sub_scalar", "rsub_scalar", "mul_scalar", "div_scalar", "pow_scalar", "rpow_scalar"}
_SAME_SHAPE_BINARY = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "assign"}
_KEEPS_SHAPE_ALONG = {"cumsum", "softmax", "log_softmax", "reduce_weights"}
_REDUCES_ALONG = {"norm", "prod", "logsumexp", "var", "std", "extreme", "argmax"}
_COMPARE = {"lt", "le", "gt", "ge", "eq", "ne"}


def _fail(row: int, field: str, problem: str) -> ValueError:
    return ValueError(f"invalid tape: row {row}, {field}: {problem}")


class _Rows:
    """The tape's arrays with shape and layout accessors that check what they read."""

    def __init__(self, tape):
        self.rows, self.layouts, self.dims, self.aux = tape.rows, tape.layouts, tape.dims, tape.aux

    def shape(self, layout: int) -> tuple:
        _, _, ndim, offset = self.layouts[layout]
        return tuple(int(d) for d in self.dims[offset : offset + ndim])

    def layout(self, row: int) -> int:
        return int(self.rows[row, LAYOUT])

    def numel(self, row: int) -> int:
        return int(self.layouts[self.layout(row), 1])

    def code(self, row: int) -> int:
        return int(self.layouts[self.layout(row), 0])

    def row_shape(self, row: int) -> tuple:
        return self.shape(self.layout(row))

    def aux_span(self, row: int, start: int, count: int) -> np.ndarray:
        if start < 0 or count < 0 or start + count > len(self.aux):
            raise _fail(row, "aux", f"entries {start}..{start + count} outside the {len(self.aux)} aux values")
        return self.aux[start : start + count]


def _check_arrays(tape) -> None:
    expected = {
        "rows": (np.int64, 2),
        "params": (np.float64, 2),  # the rows' words as floats: the kernels read column PARAM
        "layouts": (np.int64, 2),
        "dims": (np.int64, 1),
        "aux": (np.int64, 1),
        "input_rows": (np.int64, 1),
        "output_rows": (np.int64, 1),
    }
    for name, (dtype, ndim) in expected.items():
        value = getattr(tape, name, None)
        if not isinstance(value, np.ndarray) or value.dtype != dtype or value.ndim != ndim:
            raise ValueError(f"invalid tape: {name} must be a {ndim}-d {np.dtype(dtype).name} array")
    if tape.rows.shape[1] != ROW_WIDTH:
        raise ValueError(f"invalid tape: rows must have {ROW_WIDTH} columns, not {tape.rows.shape[1]}")
    if tape.layouts.shape[1] != 4:
        raise ValueError("invalid tape: layouts must have 4 columns")
    if tape.params.shape != tape.rows.shape:
        raise ValueError(f"invalid tape: params of shape {tape.params.shape} for rows of shape {tape.rows.shape}")


def _check_layouts(tape) -> None:
    for index, (code, numel, ndim, offset) in enumerate(tape.layouts):
        where = f"invalid tape: layout {index}"
        if code not in (0, 1):
            raise ValueError(f"{where}: dtype code {code} (0 float32, 1 float64)")
        if ndim < 0 or offset < 0 or offset + ndim > len(tape.dims):
            raise ValueError(f"{where}: dims {offset}..{offset + ndim} outside the {len(tape.dims)} dims")
        shape = tape.dims[offset : offset + ndim]
        if (shape < 0).any() or (shape > 1 << 40).any():
            raise ValueError(f"{where}: extents {shape.tolist()} out of range")
        if numel != math.prod(int(d) for d in shape):
            raise ValueError(f"{where}: numel {numel} is not the product of its extents {shape.tolist()}")


def _input(view: _Rows, row: int, field: str) -> int:
    value = int(view.rows[row, IN1 if field == "in1" else IN0])
    if not 0 <= value < row:
        raise _fail(row, field, f"{value} is not an earlier row")
    return value


def _same(view: _Rows, row: int, source: int, field: str, dtype: bool = True) -> None:
    if view.numel(source) != view.numel(row):
        raise _fail(row, field, f"row {source} has {view.numel(source)} elements, the row {view.numel(row)}")
    if dtype and view.code(source) != view.code(row):
        raise _fail(
            row, field, f"row {source} is {CODE_DTYPES[view.code(source)]}, the row {CODE_DTYPES[view.code(row)]}"
        )


def _dim(view: _Rows, row: int, shape: tuple) -> int:
    """The dimension in iparam of a reduction along one dimension (-1: all elements)."""
    dim = int(view.rows[row, IPARAM])
    if not -1 <= dim < max(len(shape), 1):
        raise _fail(row, "iparam", f"dimension {dim} of a {len(shape)}-d input")
    return dim


_CONV_LIMIT = 1 << 30  # conv2d's geometry (tapegrad._kernels.convolution): any larger is refused

# Replay rules whose row may name a second input (in1); every other rule reads in0 alone, and
# the backward would treat a stray in1 as an input to send gradient to.
_TWO_INPUTS = _SAME_SHAPE_BINARY | _COMPARE | {"where", "guard", "dot", "mv", "mm", "bmm", "extreme", "nll_targets"}
_TWO_INPUTS = _TWO_INPUTS | {"lstm_cell", "batch_norm", "conv2d", "lstm_sequence"}


def _check_row(view: _Rows, row: int, op) -> None:
    rule = op.replay_rule
    rows = view.rows
    for field, column in (("in0", IN0), ("in1", IN1)):
        if not -1 <= rows[row, column] < row:
            raise _fail(row, field, f"{rows[row, column]} is not an earlier row")
    one_input = rule not in _TWO_INPUTS and not (op.family == _ops.UNARY and rule != "input")
    if one_input and rows[row, IN1] != -1:
        raise _fail(row, "in1", f"{op.name} reads one input")
    if rule == "input":
        if rows[row, IN0] != -1 or rows[row, IN1] != -1:
            raise _fail(row, "in0", "a leaf or constant reads no input")
        return
    if rule == "python":
        raise _fail(row, "opcode", "a custom Function's backward is Python, which a tape cannot hold")
    if rule == "concat":  # its inputs are in aux
        _check_concat(view, row)
        return
    a = _input(view, row, "in0")
    if op.grad_formula or rule in _SAME_SHAPE_UNARY or rule in _SCALAR or rule in ("clamp_min", "clamp_max"):
        _same(view, row, a, "in0")
        if rows[row, IN1] != -1:  # a precomputed derivative
            if op.family != _ops.UNARY:
                raise _fail(row, "in1", "this op reads one input")
            _same(view, row, _input(view, row, "in1"), "in1")
    elif rule in _SAME_SHAPE_BINARY or rule == "where":
        _same(view, row, a, "in0")
        _same(view, row, _input(view, row, "in1"), "in1")
        if rule in ("mul", "div") and rows[row, IPARAM] != 0:  # periods of repeated operands: eager only
            raise _fail(row, "iparam", f"a {rule} in a recorded tape reads its operands whole")
        if rule == "where":
            mask = row - int(rows[row, IPARAM])
            if not 0 <= mask < row:
                raise _fail(row, "iparam", f"the condition's row {mask} is not an earlier row")
            _same(view, row, mask, "iparam")
    elif rule in ("cast", "mask"):
        _same(view, row, a, "in0", dtype=False)
    elif rule in _COMPARE:
        _same(view, row, a, "in0", dtype=False)
        if view.code(row) != 1:  # (the kernel writes the float64 arena: elsewhere, another row's values)
            raise _fail(row, "layout", "a comparison's result is held in float64")
        if rows[row, IN1] != -1:
            b = _input(view, row, "in1")
            _same(view, row, b, "in1", dtype=False)
            if view.code(b) != view.code(a):
                raise _fail(row, "in1", "a comparison's operands have one dtype")
    elif rule == "guard":
        if rows[row, IN1] == -1 and view.numel(a) != 1:  # (``bool()`` of one element)
            raise _fail(row, "in0", "a truth guard reads one element")
        if rows[row, IN1] != -1:
            expected = _input(view, row, "in1")
            if view.numel(expected) != view.numel(a) or view.code(expected) != 1:
                raise _fail(row, "in1", "a guard's expected value has its input's size, in float64")
    elif rule == "sum_all":
        if view.numel(row) != 1 or view.code(a) != view.code(row):
            raise _fail(row, "layout", "a sum of all elements is one element of its input's dtype")
    elif rule == "sum_dim":
        shape = view.row_shape(a)
        mask = int(rows[row, IPARAM])
        if mask < 0 or mask >= 1 << max(len(shape), 1):
            raise _fail(row, "iparam", f"dimension mask {mask} of a {len(shape)}-d input")
        kept = math.prod(extent for d, extent in enumerate(shape) if not mask >> d & 1)
        if view.numel(row) != kept or view.code(a) != view.code(row):
            raise _fail(row, "layout", f"{view.numel(row)} elements where the reduction leaves {kept}")
    elif rule in _KEEPS_SHAPE_ALONG or rule in _REDUCES_ALONG:
        shape = view.row_shape(a)
        dim = _dim(view, row, shape)
        if rule in ("softmax", "log_softmax"):  # their kernels split the shape at dim itself
            if view.row_shape(row) != shape or (shape and dim < 0):
                raise _fail(row, "iparam", "softmax keeps its input's shape, along one of its dimensions")
        numel = view.numel(a)
        rest = math.prod(shape[:dim] + shape[dim + 1 :]) if dim >= 0 and shape else 1
        wanted = numel if rule in _KEEPS_SHAPE_ALONG else rest
        if view.numel(row) != wanted:
            raise _fail(row, "layout", f"{view.numel(row)} elements where {rule} gives {wanted}")
        if rule != "argmax" and view.code(a) != view.code(row):
            raise _fail(row, "in0", "the input's dtype differs from the row's")
        if rule == "argmax" and view.code(row) != 1:
            raise _fail(row, "layout", "an index is held in float64")
        if op.rule == "select_reduce":
            weights = _input(view, row, "in1")
            if view.numel(weights) != numel or view.code(weights) != view.code(a):
                raise _fail(row, "in1", "the weights have the input's size and dtype")
    elif rule == "layer_norm":  # normalises iparam elements at a time: a divisor of the size
        group = int(view.rows[row, IPARAM])
        if view.row_shape(row) != view.row_shape(a) or view.code(a) != view.code(row):
            raise _fail(row, "layout", "layer_norm keeps its input's shape and dtype")
        if group < 1 or view.numel(a) % group:
            raise _fail(row, "iparam", f"a group of {group} elements does not divide {view.numel(a)}")
    elif rule == "batch_norm":  # each channel of an (N, C, ...) input: its dimension 1 is read
        if view.row_shape(row) != view.row_shape(a) or view.code(a) != view.code(row):
            raise _fail(row, "layout", "batch_norm keeps its input's shape and dtype")
        if len(view.row_shape(a)) < 2:
            raise _fail(row, "layout", "batch_norm normalises dimension 1 of an input of two dimensions or more")
        if view.rows[row, IN1] >= 0:  # the weight: one per channel
            w = _input(view, row, "in1")
            if view.row_shape(w) != view.row_shape(a)[1:2] or view.code(w) != view.code(a):
                raise _fail(row, "in1", "the weight has one element per channel, in the input's dtype")
    elif rule == "conv2d":  # (N, C, H, W) by (C_out, C / groups, kh, kw): (N, C_out, Ho, Wo)
        w = _input(view, row, "in1")
        x_shape, w_shape, shape = view.row_shape(a), view.row_shape(w), view.row_shape(row)
        if len(x_shape) != 4 or len(w_shape) != 4 or len(shape) != 4:
            raise _fail(row, "layout", "conv2d reads a 4-d input and weight and gives a 4-d result")
        if view.code(a) != view.code(row) or view.code(w) != view.code(row):
            raise _fail(row, "layout", "conv2d's input, weight and result have one dtype")
        sh, sw, ph, pw, dh, dw, groups = (int(v) for v in view.aux_span(row, int(view.rows[row, IPARAM]), 7))
        if min(sh, sw, dh, dw, groups) < 1 or min(ph, pw) < 0:
            raise _fail(row, "aux", "strides, dilations and groups of at least 1, paddings of at least 0")
        # (the kernels' index arithmetic in int64: each product of these stays far below 2**63)
        if max(sh, sw, ph, pw, dh * w_shape[2], dw * w_shape[3], *x_shape, *shape) >= _CONV_LIMIT:
            raise _fail(row, "aux", f"strides, paddings and dilated kernels below {_CONV_LIMIT}")
        if x_shape[1] % groups or w_shape[0] % groups or w_shape[1] * groups != x_shape[1]:
            raise _fail(row, "in1", f"the weight {w_shape} does not fit {groups} groups of the input {x_shape}")
        if shape[:2] != (x_shape[0], w_shape[0]):
            raise _fail(row, "layout", f"a result {shape} for an input {x_shape} and a weight {w_shape}")
        for extent, out, stride, pad, dilation, kernel in (
            (x_shape[2], shape[2], sh, ph, dh, w_shape[2]),
            (x_shape[3], shape[3], sw, pw, dw, w_shape[3]),
        ):  # the padding after is the one before, or one more ('same' with an odd total)
            if out not in [
                (extent + pad + after - dilation * (kernel - 1) - 1) // stride + 1 for after in (pad, pad + 1)
            ]:
                raise _fail(row, "layout", f"a result {shape} for an input {x_shape} at these strides and paddings")
    elif rule == "lstm_sequence":  # projections (and h0, c0: flat) and w_hh give (steps, 2, n, hidden)
        w = _input(view, row, "in1")
        shape = view.row_shape(row)
        if len(shape) != 4 or shape[1] != 2:
            raise _fail(row, "layout", f"lstm_sequence gives (steps, 2, n, hidden), not {shape}")
        steps, _, n, hidden = shape
        if view.row_shape(w) != (4 * hidden, hidden) or view.numel(a) not in (
            (steps * 4 + k) * n * hidden for k in (0, 2)
        ):
            raise _fail(row, "in0", f"inputs of {view.numel(a)} elements and a weight {view.row_shape(w)} for {shape}")
        if view.code(a) != view.code(row) or view.code(w) != view.code(row):
            raise _fail(row, "layout", "lstm_sequence's inputs, weight and result have one dtype")
        if int(view.rows[row, IPARAM]) not in (0, 1):
            raise _fail(row, "iparam", "0 or 1: whether the steps run reversed")
    elif rule == "lstm_cell":  # gates (n, 4 * hidden) and c (n, hidden) give (2, n, hidden)
        c = _input(view, row, "in1")
        hidden = int(view.rows[row, IPARAM])
        shape = view.row_shape(c)
        if len(shape) != 2 or shape[1] != hidden or hidden < 1:
            raise _fail(row, "in1", f"the cell state is (n, {hidden}), not {shape}")
        if view.row_shape(a) != (shape[0], 4 * hidden) or view.row_shape(row) != (2, *shape):
            raise _fail(row, "layout", "an LSTM step takes (n, 4 * hidden) gates and gives (2, n, hidden)")
        if view.code(a) != view.code(row) or view.code(c) != view.code(row):
            raise _fail(row, "layout", "an LSTM step's gates, state and result have one dtype")
    elif rule == "view":
        _check_view(view, row, a)
    elif rule == "gather_rows":
        _check_gather(view, row, a)
    elif rule == "nll_targets":  # (N, C) or (C,) log-probabilities, N or 1 targets in their dtype
        targets = _input(view, row, "in1")
        shape = view.row_shape(a)
        if len(shape) not in (1, 2) or view.numel(targets) * shape[-1] != view.numel(a):
            raise _fail(row, "in1", f"{view.numel(targets)} targets for an input of shape {shape}")
        if view.numel(row) != 1 or view.code(row) != view.code(a) or view.code(targets) != view.code(a):
            raise _fail(row, "layout", "nll_loss gives one element of its input's dtype, its targets in it too")
    elif rule == "nll_bad":
        if view.numel(row) != 1 or view.code(row) != view.code(a):
            raise _fail(row, "layout", "a count of bad targets is one element of their dtype")
    elif rule in ("dot", "mv", "mm", "bmm"):
        _check_product(view, row, rule, a, _input(view, row, "in1"))
    else:
        raise _fail(row, "opcode", f"no check for replay rule {rule!r}")


def _check_view(view: _Rows, row: int, a: int) -> None:
    shape = view.row_shape(row)
    offset, *strides = (int(v) for v in view.aux_span(row, int(view.rows[row, IPARAM]), 1 + len(shape)))
    if view.code(a) != view.code(row):
        raise _fail(row, "in0", "a view has its input's dtype")
    if offset < 0 or any(stride < 0 for stride in strides):
        raise _fail(row, "aux", f"offset {offset} and strides {strides} must not be negative")
    if view.numel(row) and offset + sum((n - 1) * s for n, s in zip(shape, strides)) >= view.numel(a):
        raise _fail(
            row, "aux", f"offset {offset} and strides {strides} reach outside the input's {view.numel(a)} elements"
        )


def _check_gather(view: _Rows, row: int, a: int) -> None:
    start = int(view.rows[row, IPARAM])
    count = int(view.aux_span(row, start, 1)[0])
    picked = view.aux_span(row, start + 1, count)
    numel, numel_in = view.numel(row), view.numel(a)
    if view.code(a) != view.code(row):
        raise _fail(row, "in0", "a pick has its input's dtype")
    if count == 0:
        if numel:
            raise _fail(row, "aux", "no picks for a non-empty result")
        return
    width = numel // count
    if width * count != numel or (width and numel_in % width):
        raise _fail(row, "aux", f"{count} picks do not divide {numel} elements from {numel_in}")
    if width and ((picked < 0).any() or (picked >= numel_in // width).any()):
        raise _fail(row, "aux", f"a pick outside the input's {numel_in // width} rows")


def _check_concat(view: _Rows, row: int) -> None:
    start = int(view.rows[row, IPARAM])
    count, dim = (int(v) for v in view.aux_span(row, start, 2))
    deltas = view.aux_span(row, start + 2, count)
    extents = view.aux_span(row, start + 2 + count, count)
    shape = view.row_shape(row)
    if not 0 <= dim < max(len(shape), 1):
        raise _fail(row, "aux", f"join dimension {dim} of a {len(shape)}-d result")
    along = shape[dim] if shape else 1
    if (extents < 0).any() or int(extents.sum()) != along:
        raise _fail(row, "aux", f"extents {extents.tolist()} do not add up to {along}")
    rest = view.numel(row) // along if along else 0
    for delta, extent in zip(deltas, extents):
        source = row - int(delta)
        if not 0 <= source < row:
            raise _fail(row, "aux", f"input row {source} is not an earlier row")
        if view.code(source) != view.code(row) or (along and view.numel(source) != rest * int(extent)):
            raise _fail(row, "aux", f"input row {source} does not fit its part of the join")


def _check_product(view: _Rows, row: int, rule: str, a: int, b: int) -> None:
    sa, sb, so = view.row_shape(a), view.row_shape(b), view.row_shape(row)
    ndims = {"dot": (1, 1), "mv": (2, 1), "mm": (2, 2), "bmm": (3, 3)}[rule]
    if (len(sa), len(sb)) != ndims or view.code(a) != view.code(row) or view.code(b) != view.code(row):
        raise _fail(row, "in0", f"{rule} of {len(sa)}-d and {len(sb)}-d operands")
    if rule == "dot":
        ok = sa == sb and view.numel(row) == 1
    elif rule == "mv":
        ok = sa[1] == sb[0] and view.numel(row) == sa[0]
    elif rule == "mm":  # iparam's bits: an operand stored transposed (kernels' product_shape)
        flags = int(view.rows[row, IPARAM])
        if not 0 <= flags <= 3:
            raise _fail(row, "iparam", f"mm flags {flags} are not 0 to 3")
        sa, sb = sa[:: -1 if flags & 1 else 1], sb[:: -1 if flags & 2 else 1]
        ok = sa[1] == sb[0] and view.numel(row) == sa[0] * sb[1]
    else:
        ok = sa[0] == sb[0] and sa[2] == sb[1] and view.numel(row) == sa[0] * sa[1] * sb[2]
    if not ok:
        raise _fail(row, "layout", f"{rule} of {sa} and {sb} cannot give {so}")


def settle_gradients(rows: np.ndarray, aux: np.ndarray, leaves=None) -> np.ndarray:
    """``rows`` with ``NO_GRAD`` on each row that reads no row needing a gradient, as a
    recording marks them; a leaf needs one unless marked, or, given ``leaves`` (rows), if it is
    one of them (``Tape._rows_for``: the inputs whose gradients are asked for).

    The backward gives a marked row, and a constant's, no gradient slot, and a rule of one
    operand sends its gradient there unchecked: a file that left a row unmarked over an input it
    marked made a strided view's rule write 4 million elements into a 4,001-element arena (a
    crash; smaller, other rows' gradients, silently). Such a row receives no gradient anyway."""
    paths = _ops.paths()
    needs = np.zeros(len(rows), np.bool_)
    settled = rows
    for row in range(len(rows)):
        code = int(rows[row, OPCODE])
        if code & NO_GRAD:
            continue
        opcode = code & OPCODE_MASK
        if opcode == _ops.LEAF_OPCODE:
            needs[row] = leaves is None or row in leaves
        elif paths[opcode] != _CONSTANT_PATH:
            in0, in1, iparam = (int(v) for v in rows[row, IN0 : IPARAM + 1])
            needs[row] = any(
                0 <= source < row and needs[source] for source in row_sources(row, opcode, in0, in1, iparam, aux)
            )
        if not needs[row]:
            if settled is rows:
                settled = rows.copy()
            settled[row, OPCODE] = code | NO_GRAD
    return settled


def validate(tape) -> None:
    """Raise ``ValueError`` naming the row and field of the first thing in ``tape`` that an
    interpreter would follow outside its buffers; return None for a sound tape."""
    _check_arrays(tape)
    _check_layouts(tape)
    view = _Rows(tape)
    n = len(tape.rows)
    for row in range(n):
        code = int(tape.rows[row, OPCODE])
        opcode = code & OPCODE_MASK
        if code & ~(NO_GRAD | OPCODE_MASK) or opcode >= len(_ops.OPS) or code < 0:
            raise _fail(row, "opcode", f"{code} is not an op")
        if not 0 <= tape.rows[row, LAYOUT] < len(tape.layouts):
            raise _fail(row, "layout", f"{tape.rows[row, LAYOUT]} is not one of the {len(tape.layouts)} layouts")
        _check_row(view, row, _ops.OPS[opcode])
    for name in ("input_rows", "output_rows"):
        for row in getattr(tape, name):
            if not 0 <= row < n:
                raise ValueError(f"invalid tape: {name} names row {row} of {n}")
    for index, row in enumerate(tape.input_rows):
        if _ops.OPS[tape.rows[row, OPCODE] & OPCODE_MASK].replay_rule != "input":
            raise ValueError(f"invalid tape: input {index} is row {row}, which is not a leaf")
        shape, dtype = tape.input_specs[index]
        if tuple(shape) != view.row_shape(row) or DTYPE_CODES[np.dtype(dtype)] != view.code(row):
            raise ValueError(f"invalid tape: input {index}'s spec differs from its row {row}")
    if len(tape.input_specs) != len(tape.input_rows):
        raise ValueError("invalid tape: one spec per input")
    for row in tape.guards:
        if not 0 <= row < n or _ops.OPS[tape.rows[row, OPCODE] & OPCODE_MASK].name != "guard":
            raise ValueError(f"invalid tape: guard at row {row}, which is not a guard row")
    for row, name in getattr(tape, "integer_rows", {}).items():
        if not 0 <= row < n or name not in _INTEGER_NAMES or view.code(row) != 1:
            raise ValueError(f"invalid tape: integer row {row} ({name!r}) is not a float64 row of an integer dtype")
    guard_opcode = _ops.OPCODE["guard"]
    for row in np.flatnonzero((tape.rows[:, OPCODE] & OPCODE_MASK) == guard_opcode).tolist():
        if row not in tape.guards:  # a failing replay reports the guard by its header entry
            raise ValueError(f"invalid tape: the guard row {row} has no guard in the header")
    sizes = [0, 0]
    for row in range(n):
        sizes[view.code(row)] += view.numel(row)
    if sizes[0] * 4 + sizes[1] * 8 > physical_memory():
        raise ValueError(
            f"invalid tape: its values need {sizes[0] * 4 + sizes[1] * 8} bytes, more than this machine has"
        )


# -- the file ----------------------------------------------------------------------------------


def _digest(arrays: dict) -> str:
    import hashlib  # here, not at import: loading OpenSSL was 3 ms of ``import tapegrad``

    digest = hashlib.sha256()
    for name in _ARRAYS:
        array = np.ascontiguousarray(arrays[name])
        digest.update(name.encode() + str(array.dtype).encode() + str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()


def _guard_data(expected) -> object:
    if isinstance(expected, (bool, np.bool_)):
        return {"truth": bool(expected)}
    array = np.asarray(expected, np.float64)
    return {"shape": list(array.shape), "values": array.reshape(-1).tolist()}


def write(tape, path, version: str) -> None:
    """Write ``tape`` to ``path`` as an ``.npz`` of its arrays and a JSON header."""
    arrays = {name: getattr(tape, name) for name in _ARRAYS[:7]}
    arrays["values32"], arrays["values64"] = tape.values
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tapegrad_version": version,
        "op_names": [op.name for op in _ops.OPS],
        "input_specs": [[list(shape), np.dtype(dtype).name] for shape, dtype in tape.input_specs],
        "names": list(tape._names),
        "single_output": bool(tape.single_output),
        "guards": [
            {"row": int(row), "kind": kind, "where": where, **_guard_data(expected)}
            for row, (kind, where, expected) in tape.guards.items()
        ],
        "integer_rows": [[int(row), name] for row, name in getattr(tape, "integer_rows", {}).items()],
        # integer and bool outputs come back in their dtype (a replay holds them as float64)
        "output_dtypes": [None if dtype is None else np.dtype(dtype).name for dtype in _output_dtypes(tape)],
        # rows whose saved value the recording changed in place: their backward raises
        "modified": [[int(row), str(message)] for row, message in tape._modified.items()],
        "sha256": _digest(arrays),
    }
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _output_dtypes(tape) -> tuple:
    return tape.__dict__.get("_output_dtypes") or (None,) * len(tape.output_rows)


def _integer_dtypes(names, outputs: int) -> tuple | None:
    """The outputs' dtypes from a header's names (None: a float output); a file from before
    they were kept has none, and its outputs come back as float64."""
    if names is None:
        return None
    if not isinstance(names, list) or len(names) != outputs:
        raise ValueError("invalid tape: one output dtype per output")
    dtypes = []
    for name in names:
        if name is not None and name not in _INTEGER_OUTPUTS:
            raise ValueError(f"invalid tape: an output dtype {name!r} (integer or bool only)")
        dtypes.append(None if name is None else np.dtype(name))
    return tuple(dtypes)


_INTEGER_OUTPUTS = ("bool", "uint8", "int8", "int16", "int32", "int64")


def read(path) -> dict:
    """A tape file as the state ``Tape.__setstate__`` takes (which validates it), its arrays
    checked against the header's digest; raises ``ValueError`` for anything that is not such a
    file."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, KeyError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a tapegrad tape file: {error}") from None
    except Exception as error:  # zipfile.BadZipFile and others from a damaged archive
        raise ValueError(f"{path} is not a tapegrad tape file: {type(error).__name__}: {error}") from None
    if "header" not in arrays or arrays["header"].dtype != np.uint8 or arrays["header"].ndim != 1:
        raise ValueError(f"{path} is not a tapegrad tape file: no header")
    try:
        header = json.loads(arrays.pop("header").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: its header is not JSON ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a tapegrad tape file")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} is a tape file of format version {header.get('format_version')!r} (tapegrad "
            f"{header.get('tapegrad_version')!r}); this tapegrad reads version {FORMAT_VERSION}"
        )
    missing = [name for name in _ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"{path}: the tape file lacks {', '.join(missing)}")
    if header.get("sha256") != _digest(arrays):
        raise ValueError(f"{path}: the tape file's arrays do not match its checksum (damaged or edited)")
    try:
        state = _state(header, arrays)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ValueError(f"{path}: invalid tape header or arrays ({type(error).__name__}: {error})") from None
    if len(state["_names"]) != len(state["input_specs"]):
        raise ValueError(f"{path}: invalid tape header (one name per input)")
    return state


def _state(header: dict, arrays: dict) -> dict:
    guards = {}
    for guard in header["guards"]:
        expected = guard["truth"] if "truth" in guard else np.array(guard["values"], np.float64).reshape(guard["shape"])
        guards[int(guard["row"])] = (str(guard["kind"]), str(guard["where"]), expected)
    return {
        "rows": remap_opcodes(np.asarray(arrays["rows"], np.int64).reshape(-1, ROW_WIDTH), header["op_names"]),
        **{name: arrays[name] for name in ("params", "layouts", "dims", "aux", "input_rows", "output_rows")},
        "input_specs": [
            (tuple(int(d) for d in shape), np.dtype(_INPUT_DTYPES[dtype])) for shape, dtype in header["input_specs"]
        ],
        "guards": guards,
        # (a file from before they were kept has none: its integer arithmetic is not checked)
        "integer_rows": {int(row): str(name) for row, name in header.get("integer_rows", [])},
        "_names": [str(name) for name in header["names"]],
        "single_output": bool(header["single_output"]),
        "_rerecord": False,
        "_output_dtypes": _integer_dtypes(header.get("output_dtypes"), len(arrays["output_rows"])),
        "_modified": {int(row): str(message) for row, message in header.get("modified", [])},
        "values": (arrays["values32"], arrays["values64"]),
    }


def remap_opcodes(rows: np.ndarray, op_names: list) -> np.ndarray:
    """Opcodes as this tapegrad numbers them, from the op names the file was written with."""
    if not isinstance(op_names, list) or not all(isinstance(name, str) for name in op_names):
        raise ValueError("invalid tape: op_names must be a list of names")
    unknown = sorted({name for name in op_names if name not in _ops.OPCODE})
    table = np.array([_ops.OPCODE.get(name, -1) for name in op_names] or [-1], np.int64)
    codes = rows[:, OPCODE]
    opcodes = codes & OPCODE_MASK
    if ((codes & ~(NO_GRAD | OPCODE_MASK)) != 0).any() or (codes < 0).any() or (opcodes >= len(op_names)).any():
        raise ValueError("invalid tape: an opcode outside the file's op table")
    mapped = table[opcodes]
    if (mapped < 0).any():
        raise ValueError(f"invalid tape: ops this tapegrad does not have: {', '.join(unknown)}")
    rows = rows.copy()
    rows[:, OPCODE] = mapped | (codes & NO_GRAD)
    return rows
