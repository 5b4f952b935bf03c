"""Matrix products. ``matmul`` follows torch.matmul's cases; each records dot, mv, mm or bmm
(the rows whose backward calls BLAS), plus the views PyTorch itself inserts."""

from __future__ import annotations

import numpy as np

from . import _dtypes
from ._grad_mode import special_modes as _special_modes
from ._ops import OPCODE
from ._pending_views import PendingView
from ._record import (
    _CHANGING_A_VIEW,
    _broadcast_row,
    _bypass,
    _save,
    _short_input,
    _short_record,
    _short_tape,
    _transposed_source,
    broadcast_shape,
    may_be_transposed,
    read_in_place,
    record,
    write_out,
)
from ._tape import exclusive, saved_hooks_open
from ._views import expand, reshape, squeeze, unsqueeze
from .tensor import Tensor, _recorded, as_tensor, install


def _check_same_dtype(a: Tensor, b: Tensor) -> None:
    """``RuntimeError`` for operands of two dtypes, with the message of the PyTorch kernel the
    operands' dimensions lead to (dot, addmv, bmm, or mm's)."""
    if a._data.dtype == b._data.dtype:
        return
    ndim_a, ndim_b = a._data.ndim, b._data.ndim
    if ndim_a == 1 and ndim_b == 1:
        raise RuntimeError(
            f"dot : expected both vectors to have same dtype, but found {a.dtype.type_name} and {b.dtype.type_name}"
        )
    if ndim_a >= 2 and ndim_b == 1:  # (a batch folded into one matrix, as PyTorch folds it)
        vector, matrix = b.dtype.type_name, a.dtype.type_name
        raise RuntimeError(f"addmv input tensors must have the same dtype, but got {vector}, {matrix}, and {vector}")
    if ndim_b >= 3 or (ndim_a >= 3 and ndim_b != 2):
        raise RuntimeError(f"expected scalar type {a.dtype.type_name} but found {b.dtype.type_name}")
    raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: {a.dtype.c_name} != {b.dtype.c_name}")


def check_addmm_dtypes(input: Tensor | None, mat1: Tensor, mat2: Tensor) -> None:  # noqa: A002
    """``RuntimeError`` for ``addmm(input, mat1, mat2)`` (and ``F.linear`` with a bias, which
    PyTorch computes so) of operands of two dtypes, with PyTorch's message: the added ``input``
    against ``mat2`` first, then ``mat1``; without ``input``, ``mm``'s."""
    dtype = mat2._data.dtype
    if input is not None and input._data.dtype != dtype:
        raise RuntimeError(
            f"self and mat2 must have the same dtype, but got {input.dtype.type_name} and {mat2.dtype.type_name}"
        )
    if mat1._data.dtype != dtype:
        if input is None:
            _check_same_dtype(mat1, mat2)
        raise RuntimeError(
            f"mat1 and mat2 must have the same dtype, but got {mat1.dtype.type_name} and {mat2.dtype.type_name}"
        )


def _mm(a: Tensor, b: Tensor) -> Tensor:
    (m, k), (k2, n) = a._data.shape, b._data.shape
    if k != k2:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({m}x{k} and {k2}x{n})")
    out = np.matmul(a._data, b._data)
    if (may_be_transposed(a) or may_be_transposed(b)) and _special_modes[0] == 0:
        result = _mm_of_sources(a, b, out)
        if result is not None:
            return result
    return record("mm", (a, b), out, saved=(a._data, b._data))


@exclusive
def _mm_of_sources(a: Tensor, b: Tensor, out: np.ndarray) -> Tensor | None:
    """``a @ b`` where an operand is a transposed matrix (``x @ w.t()``, every ``F.linear`` of a
    large weight): the row reads the transpose's source in place, flagged in ``iparam`` as the
    replay's rewrite flags it (``_kernels.backward.product_shape``: BLAS reads it transposed, and
    its gradient lands in the source's slot, C-ordered). Through the view, the source was copied
    to be saved and its gradient added back transposed: 0.2 ms of a 128x512 ``a @ b.t()``'s
    0.9. The view stays on the tape, read by nothing here (``Tape.bypassed``); ``grad_fn``
    shows it (``autograd.graph``). None where no operand qualifies (``_transposed_source``)."""
    if not (a._requires_grad or b._requires_grad):
        return None
    tape = _short_tape(a, b)  # the views' tapes joined with the other operand's
    if tape is None:
        return None
    source_a = _transposed_source(a) if a._base is not None else None
    source_b = _transposed_source(b) if b._base is not None else None
    if source_a is None and source_b is None:
        return None
    flags = (1 if source_a is not None else 0) | (2 if source_b is not None else 0)
    operand_a = a if source_a is None else source_a
    operand_b = b if source_b is None else source_b
    result = _short_record("mm", operand_a, operand_b, out, (operand_a._data, operand_b._data), flags, 0.0, tape)
    _bypass(*(view for view, source in ((a, source_a), (b, source_b)) if source is not None))
    return result


_T, _MM, _ADD = OPCODE["t"], OPCODE["mm"], OPCODE["add"]


@exclusive
def linear_short(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor | None:
    """``F.linear(x, weight, bias)`` on the short path, or None where it does not apply.

    It applies to a layer's usual call: a 2-D float input that is a constant or a result
    requiring grad, a 2-D weight (out, in) and a 1-D bias (out,) (or None) that are plain leaves
    requiring grad, one dtype, no mode on. It writes the rows ``x @ weight.t() + bias`` writes
    through the operators, in the same order (the weight's transpose, the product reading the
    weight or its transpose as ``_mm`` does, the bias's broadcast, the sum), and computes the
    same bits, the bias added in place into the product. Through the operators, recording a
    32x64 -> 128 layer took about 45 Python calls and 16 us on top of its 8 us of arithmetic,
    where PyTorch's whole layer took 10 us. ``tests/test_record_paths.py`` compares the tapes."""
    if _special_modes[0] or saved_hooks_open[0] or _CHANGING_A_VIEW[0]:
        return None
    # (an input of a subclass may have an ``@`` of its own; a weight or bias of one, a Parameter
    # say, is a leaf like any other, unless it is a pending view: the general path settles those)
    if type(x) is not Tensor or type(weight) is PendingView:
        return None
    data, w = x._data, weight._data
    dtype = data.dtype
    if (
        data.ndim != 2
        or w.ndim != 2
        or w.dtype is not dtype
        or dtype.kind != "f"
        or data.shape[1] != w.shape[1]
        or weight._tape is not None
        or not weight._requires_grad
        or weight._base is not None
        or w.base is not None
        or not w.flags.c_contiguous
    ):
        return None
    if bias is not None:
        b = bias._data
        if (
            type(bias) is PendingView
            or b.ndim != 1
            or b.dtype is not dtype
            or b.shape[0] != w.shape[0]
            or bias._tape is not None
            or not bias._requires_grad
        ):
            return None
    if x._tape is None if x._requires_grad else x._tape is not None:  # a leaf input, or a result off grad
        return None
    tape = _short_tape(x, None)  # the input's tape, or a new one
    if tape is None:
        return None
    wt = w.T
    out = np.matmul(data, wt)
    n, k = w.shape
    if weight._version_counter is None:  # (as the transpose's view would share it)
        weight._version_counter = [0]
    row_w = tape.register(weight)
    row_t = tape.append(_T, row_w, -1, tape.add_aux((0, 1, k)), tape.layout(dtype, (k, n)), 0.0)
    row_x = _short_input(tape, x, data)
    if read_in_place(wt):  # the product reads the weight (``_mm_of_sources``)
        tape.save_leaf(row_w, weight)
        row = tape.append(_MM, row_x, row_w, 2, tape.layout(dtype, out.shape), 0.0)
        read = row_w
        tape.bypass(row_t)
    else:  # the product reads the transpose, saved C-ordered
        _save(tape, row_t, wt)
        row = tape.append(_MM, row_x, row_t, 0, tape.layout(dtype, out.shape), 0.0)
        read = row_t
    tape.track(row, row_x, x)
    if x._requires_grad:
        tape.track(row, read, weight)  # (the transpose shares the weight's version counter)
    if bias is None:
        return _recorded(out, tape, row)
    np.add(out, b, out=out)
    row_b = _broadcast_row(tape, tape.register(bias), b, out)
    return _recorded(out, tape, tape.append(_ADD, row, row_b, 0, tape.layout(dtype, out.shape), 0.0))


def matmul(a: Tensor, b, *, out: Tensor | None = None) -> Tensor:
    """``a @ b`` with PyTorch's rules for 1-D, 2-D and batched (broadcast) operands; ``out=`` as
    ``tapegrad._record.write_out``."""
    if out is None and isinstance(b, Tensor):  # two matrices of one dtype: the training step's case
        data_a, data_b = a._data, b._data
        if data_a.ndim == 2 and data_b.ndim == 2 and data_a.dtype is data_b.dtype:
            return _mm(a, b)
    if out is not None:
        return write_out("matmul", matmul(a, b), out)
    b = as_tensor(b)
    if a._data.ndim == 0 or b._data.ndim == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {a._data.ndim}D and {b._data.ndim}D"
        )
    _check_same_dtype(a, b)
    ndim_a, ndim_b = a._data.ndim, b._data.ndim
    if ndim_a == 1 and ndim_b == 1:
        if a._data.shape != b._data.shape:
            n_a, n_b = a._data.shape[0], b._data.shape[0]
            raise RuntimeError(
                f"inconsistent tensor size, expected tensor [{n_a}] and src [{n_b}] to have the same number of "
                f"elements, but got {n_a} and {n_b} elements respectively"
            )
        return record("dot", (a, b), np.asarray(np.dot(a._data, b._data)), saved=(a._data, b._data))
    if ndim_a == 2 and ndim_b == 1:
        (m, k), (n,) = a._data.shape, b._data.shape
        if k != n:
            raise RuntimeError(f"size mismatch, got input ({m}), mat ({m}x{k}), vec ({n})")
        return record("mv", (a, b), np.matmul(a._data, b._data), saved=(a._data, b._data))
    if ndim_a == 1 and ndim_b == 2:
        return reshape(_mm(unsqueeze(a, 0), b), (b._data.shape[1],), "squeeze_matmul")
    if ndim_a == 2 and ndim_b == 2:
        return _mm(a, b)
    return _batched(a, b)


def _batched(a: Tensor, b: Tensor) -> Tensor:
    if b._data.ndim == 2 and a._data.ndim >= 3 and a._data.shape[-1] == b._data.shape[0]:
        # (..., m, k) @ (k, n): one matrix product of the folded rows, as PyTorch's matmul
        # folds them. Broadcast to a batch, the weight of ``F.linear`` on (B, T, k) input was
        # copied B times and the copy saved: 258 MB for a (1024, 1024) weight and B = 64.
        *batch, m, k = a._data.shape
        folded = reshape(a, (int(np.prod(batch, dtype=np.int64)) * m, k), "matmul_view")
        return reshape(_mm(folded, b), (*batch, m, b._data.shape[1]), "unsafe_view")
    if a._data.ndim >= 3 and b._data.ndim <= 2 and a._data.shape[-1] != b._data.shape[0]:
        # PyTorch folds the batch into the rows before it multiplies: its message shows them so
        rows, k = int(np.prod(a._data.shape[:-1], dtype=np.int64)), a._data.shape[-1]
        if b._data.ndim == 2:
            raise RuntimeError(
                f"mat1 and mat2 shapes cannot be multiplied ({rows}x{k} and {b._data.shape[0]}x{b._data.shape[1]})"
            )
        raise RuntimeError(f"size mismatch, got input ({rows}), mat ({rows}x{k}), vec ({b._data.shape[0]})")
    squeeze_last = b._data.ndim == 1
    squeeze_first = a._data.ndim == 1
    if squeeze_last:
        b = unsqueeze(b, -1)
    if squeeze_first:
        a = unsqueeze(a, 0)
    (m, k), (k2, n) = a._data.shape[-2:], b._data.shape[-2:]
    if k != k2:
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: [{b._data.shape[0] if b._data.ndim > 2 else 1}, {k}] "
            f"but got: [{b._data.shape[0] if b._data.ndim > 2 else 1}, {k2}]."
        )
    batch = broadcast_shape(a._data.shape[:-2], b._data.shape[:-2])
    count = int(np.prod(batch, dtype=np.int64))
    a3 = _as_batch(a, batch + (m, k), (count, m, k))
    b3 = _as_batch(b, batch + (k, n), (count, k, n))
    out3 = np.matmul(a3._data, b3._data)
    result = record("bmm", (a3, b3), out3, saved=(a3._data, b3._data))
    result = reshape(result, batch + (m, n), "unsafe_view")
    if squeeze_last:
        result = squeeze(result, -1)
    if squeeze_first:
        result = squeeze(result, -2)
    return result


def _as_batch(x: Tensor, full_shape: tuple, batch_shape: tuple) -> Tensor:
    if x._data.shape != full_shape:
        x = expand(x, full_shape, "broadcast")
    if not x._data.flags.c_contiguous:
        x = x.contiguous()
    return reshape(x, batch_shape, "matmul_view")


def mm(a: Tensor, b: Tensor) -> Tensor:
    """The matrix product of (n, k) and (k, m) matrices; follows ``torch.mm``. Raises
    ``RuntimeError`` with PyTorch's messages for an operand that is not a matrix, shapes that do
    not multiply, or dtypes that differ."""
    if a._data.ndim != 2:
        raise RuntimeError("self must be a matrix")
    if b._data.ndim != 2:
        raise RuntimeError("mat2 must be a matrix")
    _check_same_dtype(a, b)
    return _mm(a, b)


def _matmul_operator(a: Tensor, other):
    """``a @ other``: a tensor or array-like other; a Python number is Python's TypeError, as
    PyTorch gives it."""
    if isinstance(other, (bool, int, float, complex)):
        return NotImplemented
    return matmul(a, other)


def _rmatmul_operator(a: Tensor, other):
    if isinstance(other, (bool, int, float, complex)):
        return NotImplemented
    return matmul(as_tensor(other), a)


def dot(a: Tensor, b: Tensor) -> Tensor:
    """The inner product of two 1-D tensors; follows ``torch.dot``."""
    if a._data.ndim != 1 or b._data.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {a._data.ndim}D and {b._data.ndim}D tensors")
    return matmul(a, b)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:  # noqa: A002 - PyTorch's names
    """Batched matrix product of (b, n, k) and (b, k, m) tensors (``BmmBackward0``); follows
    ``torch.bmm``. Raises ``RuntimeError`` with PyTorch's messages for other shapes."""
    if input._data.ndim != 3 or mat2._data.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor" if input._data.ndim != 3 else "batch2 must be a 3D tensor")
    (b, _, k), (b2, k2, _) = input._data.shape, mat2._data.shape
    if b != b2 or k != k2:
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: [{b}, {k}] but got: [{b2}, {k2}]."
        )
    _check_same_dtype(input, mat2)
    return record("bmm", (input, mat2), np.matmul(input._data, mat2._data), saved=(input._data, mat2._data))


__all__ = ["matmul", "mm", "bmm", "dot", "_dtypes"]


def outer(a: Tensor, b: Tensor) -> Tensor:
    """``a[i] * b[j]`` for vectors (``MulBackward0``, as PyTorch composes it)."""
    a, b = as_tensor(a), as_tensor(b)
    if a._data.ndim != 1 or b._data.ndim != 1:
        raise RuntimeError("outer: Expected 1-D argument self, but got " + f"{a._data.ndim}-D")
    return reshape(a, (-1, 1)) * b


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, composed of diagonals (an index repeated within one operand),
    permutes, sums and one batched matmul per pair of operands (contracted left to right).
    An ellipsis stands for the same dimensions in every operand, right-aligned and broadcast
    (``"...ij,...jk"``); a subscript of extent 1 in one operand broadcasts against another's,
    as PyTorch's. Raises PyTorch's ``RuntimeError`` for subscripts that do not match the operands."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = [as_tensor(x) for x in operands]
    equation = equation.replace(" ", "")
    if "." in equation:
        equation = _spelled_out(equation, operands)
    inputs, output, sizes = _parse_einsum(equation, operands)
    operands = [_broadcast_ones(x, letters, sizes) for x, letters in zip(operands, inputs)]
    for k, letters in enumerate(inputs):
        operands[k], inputs[k] = _diagonals(operands[k], letters)
    result, letters = operands[0], inputs[0]
    for k in range(1, len(operands)):
        needed = set(output).union(*inputs[k + 1 :])
        result, letters = _contract(result, letters, operands[k], inputs[k], needed)
    result, letters = _sum_out(result, letters, set(output))
    return result.permute(*[letters.index(c) for c in output]) if len(output) > 1 else result


def _terms(left: str, operands) -> list:
    """The equation's input terms, one per operand (PyTorch's error otherwise)."""
    inputs = left.split(",")
    if len(inputs) != len(operands):
        more = "more" if len(operands) > len(inputs) else "fewer"
        raise RuntimeError(f"einsum(): {more} operands were provided than specified in the equation")
    return inputs


def _merged(before, extent: int):
    """One subscript's extent across operands: equal ones, or one of them 1 (it broadcasts:
    1 and 0 give 0); None where they do not broadcast."""
    if before is None or before == extent or before == 1:
        return extent
    return before if extent == 1 else None


def _spelled_out(equation: str, operands) -> str:
    """``equation`` with each ellipsis written as letters the equation does not use, the same
    letters for the same (right-aligned) dimensions of every operand. Without an output, the
    ellipsis' dimensions come first, then the letters used once, alphabetically (PyTorch's and
    numpy's order); with one that has no ellipsis, they are summed."""
    left, arrow, output = equation.partition("->")
    inputs = _terms(left, operands)
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in equation]
    extents = []
    for index, (letters, x) in enumerate(zip(inputs, operands)):
        if letters.count("...") > 1:
            raise RuntimeError(f"einsum(): found '.' for operand {index} for which an ellipsis was already found")
        if "." in letters.replace("...", "", 1):
            raise RuntimeError(f"einsum(): found '.' for operand {index} that is not part of any ellipsis")
        named = len(letters.replace("...", ""))
        extents.append(x._data.ndim - named if "..." in letters else 0)
        if extents[-1] < 0:
            raise RuntimeError(
                f"einsum(): the number of subscripts in the equation ({named}) is more than the number of "
                f"dimensions ({x._data.ndim}) for operand {index}"
            )
    if output.count("...") > 1:
        raise RuntimeError("einsum(): found '.' for output but an ellipsis (...) was already found")
    if "." in output.replace("...", "", 1):
        raise RuntimeError("einsum(): found '.' for output that is not part of any ellipsis (...)")
    ellipsis = "".join(free[: max(extents)])
    seen = [None] * len(ellipsis)  # the extents the ellipsis stands for so far, right-aligned
    for index, (letters, x, n) in enumerate(zip(inputs, operands, extents)):
        start = letters.find("...")
        for j, extent in enumerate(x._data.shape[start : start + n] if start >= 0 else ()):
            position = len(ellipsis) - n + j
            merged = _merged(seen[position], extent)
            if merged is None:
                raise RuntimeError(  # (PyTorch's message, its missing space too)
                    f"einsum(): dimension {j} covered by ellipsis in operand {index}has size {extent} which does not "
                    f"broadcast with previously seen ellipsis with size {seen[position]} for the respective dimension"
                )
            seen[position] = merged
    spelled = [letters.replace("...", ellipsis[len(ellipsis) - n :]) for letters, n in zip(inputs, extents)]
    if arrow:
        output = output.replace("...", ellipsis)
    else:
        named = "".join(spelled)
        once = sorted(c for c in dict.fromkeys(named) if c not in ellipsis and named.count(c) == 1)
        output = ellipsis + "".join(once)
    return ",".join(spelled) + "->" + output


def _broadcast_ones(x: Tensor, letters: str, sizes: dict) -> Tensor:
    """``x`` expanded where its subscripts have extent 1 and others' do not (PyTorch broadcasts
    them: ``"bij,bjk"`` of batches 1 and 4)."""
    shape = tuple(sizes[letter] for letter in letters)
    return x if shape == x._data.shape else x.expand(*shape)


def _parse_einsum(equation: str, operands) -> tuple:
    """``(inputs, output, sizes)``: the terms, the output's letters and each letter's extent
    (``_merged`` across operands; within one operand a repeated letter's must be equal)."""
    left, arrow, output = equation.partition("->")
    inputs = _terms(left, operands)
    for letters, x in zip(inputs, operands):
        if len(letters) != x._data.ndim:
            raise RuntimeError(
                f"einsum(): the number of subscripts in the equation ({len(letters)}) does not match the number "
                f"of dimensions ({x._data.ndim}) for operand {inputs.index(letters)} and no ellipsis was given"
            )
    sizes: dict = {}
    for index, (letters, x) in enumerate(zip(inputs, operands)):
        own: dict = {}
        for letter, extent in zip(letters, x._data.shape):
            if own.setdefault(letter, extent) != extent:
                raise RuntimeError(
                    f"einsum(): subscript {letter} is repeated for operand {index} but the sizes don't match, "
                    f"{extent} != {own[letter]}"
                )
        for letter, extent in own.items():
            merged = _merged(sizes.get(letter), extent)
            if merged is None:
                raise RuntimeError(
                    f"einsum(): subscript {letter} has size {extent} for operand {index} which does not broadcast "
                    f"with previously seen size {sizes[letter]}"
                )
            sizes[letter] = merged
    if not arrow:  # implicit output: the letters used once, in alphabetical order
        counts = {c: left.count(c) for c in left if c.isalpha()}
        output = "".join(sorted(c for c, n in counts.items() if n == 1))
    for letter in output:  # (a ValueError of str.index came out later)
        if letter not in sizes:
            raise RuntimeError(
                f"einsum(): output subscript {letter} does not appear in the equation for any input operand"
            )
        if output.count(letter) > 1:
            raise RuntimeError(f"einsum(): output subscript {letter} appears more than once in the output")
    return inputs, output, sizes


def _diagonals(x: Tensor, letters: str) -> tuple:
    """An index repeated within one operand ("ii") takes the diagonal: one dimension for it,
    last, as ``diagonal`` puts it."""
    for letter in dict.fromkeys(letters):
        while letters.count(letter) > 1:
            first = letters.index(letter)
            second = letters.index(letter, first + 1)
            x = x.diagonal(0, first, second)
            letters = letters[:first] + letters[first + 1 : second] + letters[second + 1 :] + letter
    return x, letters


def _sum_out(x: Tensor, letters: str, keep: set) -> tuple:
    """Sum over the letters no later step needs."""
    gone = [k for k, c in enumerate(letters) if c not in keep]
    if gone:
        x = x.sum(tuple(gone))
        letters = "".join(c for c in letters if c in keep)
    return x, letters


def _contract(a: Tensor, la: str, b: Tensor, lb: str, needed: set) -> tuple:
    """``a`` and ``b`` to one tensor over the letters in ``needed``, as a batched matmul:
    (batch, left, summed) @ (batch, summed, right)."""
    a, la = _sum_out(a, la, needed | set(lb))
    b, lb = _sum_out(b, lb, needed | set(la))
    batch = [c for c in la if c in lb and c in needed]
    summed = [c for c in la if c in lb and c not in needed]
    left = [c for c in la if c not in lb]
    right = [c for c in lb if c not in la]
    sizes = {c: a._data.shape[k] for k, c in enumerate(la)}
    sizes.update({c: b._data.shape[k] for k, c in enumerate(lb)})

    def extent(letters):
        return int(np.prod([sizes[c] for c in letters], dtype=np.int64))

    a3 = a.permute(*[la.index(c) for c in batch + left + summed]).reshape(extent(batch), extent(left), extent(summed))
    b3 = b.permute(*[lb.index(c) for c in batch + summed + right]).reshape(extent(batch), extent(summed), extent(right))
    out = (a3 @ b3).reshape(*[sizes[c] for c in batch + left + right])
    return out, "".join(batch + left + right)


install(
    {
        "__matmul__": _matmul_operator,
        "matmul": matmul,
        "__rmatmul__": _rmatmul_operator,
        "outer": outer,
        "mm": mm,
        "bmm": bmm,
        "dot": dot,
    }
)


# -- create_graph formulas: the vector-Jacobian product of each rule as tapegrad ops ------
# ``row`` is the tape row as autograd/higher_order.py's ``_Row`` shows it (its saved values
# as tensors at their own rows, so the formula records edges into the original graph).


def _mm_vjp(a_transposed: int, b_transposed: int) -> tuple:
    """An mm row's formulas: op(A) @ op(B), where a flagged operand is stored transposed (its
    transpose's source, read in place: ``_mm_of_sources``), and so is its gradient."""

    def op_a(row):
        return row.a.t() if a_transposed else row.a

    def op_b(row):
        return row.b.t() if b_transposed else row.b

    def grad_a(row, g):
        return op_b(row) @ g.t() if a_transposed else g @ op_b(row).t()

    def grad_b(row, g):
        return g.t() @ op_a(row) if b_transposed else op_a(row).t() @ g

    return grad_a, grad_b


VJP = {
    "dot": (lambda row, g: g * row.b, lambda row, g: g * row.a),
    "mv": (lambda row, g: g.unsqueeze(1) * row.b, lambda row, g: row.a.t() @ g),
    "mm": lambda row: _mm_vjp(row.iparam & 1, row.iparam & 2),
    "bmm": (lambda row, g: g @ row.b.transpose(1, 2), lambda row, g: row.a.transpose(1, 2) @ g),
}
