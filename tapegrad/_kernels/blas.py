"""General matrix products straight into the arenas: BLAS ``gemm`` with its ``beta``.

``np.dot`` inside numba returns a new array: a forward product then copies it into its slot, and
a backward product adds it to the gradient slot, so every product allocated its result once more
and walked it twice. For a (128, 64) weight gradient that temporary was 32 KB that malloc handed
back to the kernel and took again, page faults included, on every replay of a small step
(``perf``: a tenth of a per-sample ``vmap`` call in ``clear_page_erms``). ``gemm`` writes
``C = alpha * op(A) @ op(B) + beta * C`` in place, and reads a transposed operand where it lies.

It calls the same entry points numba's own ``np.dot`` calls (``numba_xxgemm`` and
``numba_xxgemv`` in numba's helper library, which dispatch to scipy's BLAS), so compiled kernels
that use it stay cacheable.

Kernels call ``product``, which takes a product with a dimension of 1 off ``gemm``: OpenBLAS's
``gemm`` packs both operands into its blocked layout on every call and, with ``beta`` 0, first
zeroes C with a ``memset``. For a one-row product (a sample's ``x @ W.T`` under ``vmap``) that
copied the whole weight every call, and for an outer product (that sample's weight gradient)
wrote C twice: ``perf`` of per-sample gradients showed 22% of the call in ``sgemm_incopy``, 11% in
``memset`` and 13% in the arithmetic. ``gemv`` reads the matrix where it lies; an outer product
is one loop that writes each element of C once.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .config import AS_PYTHON, jit

if AS_PYTHON:
    import ctypes

    def _matrix(address, rows, columns, ld, dtype):
        pointer = ctypes.cast(int(address), ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype)))
        flat = np.ctypeslib.as_array(pointer, ((rows - 1) * ld + columns,))
        return np.lib.stride_tricks.as_strided(flat, (rows, columns), (ld * flat.itemsize, flat.itemsize))

    def gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, like):
        """As the compiled one below, in numpy (the table tests run kernels as Python). Also
        ``product`` there: numpy has no packing to avoid."""
        if m == 0 or n == 0:
            return 0
        dtype = like.dtype
        left = _matrix(a, k, m, lda, dtype).T if transa else _matrix(a, m, k, lda, dtype)
        right = _matrix(b, n, k, ldb, dtype).T if transb else _matrix(b, k, n, ldb, dtype)
        out = _matrix(c, m, n, ldc, dtype)
        product = left @ right if k else np.zeros((m, n), dtype)
        out[...] = alpha * product + (beta * out if beta else 0)
        return 0

    product = gemm

else:
    from numba.np.linalg import ensure_blas, get_blas_kind

    from .memory import _pointer_like

    def _by_reference(context, builder, dtype, *values):
        """Each float64 argument as a pointer to a stack value of ``dtype``: BLAS takes alpha and
        beta by reference, in the matrices' type."""
        value_type = context.get_value_type(dtype)
        pointers = []
        for value in values:
            slot = cgutils.alloca_once(builder, value_type)
            builder.store(context.cast(builder, value, types.float64, dtype), slot)
            pointers.append(builder.bitcast(slot, cgutils.voidptr_t))
        return pointers

    @intrinsic
    def gemm(typingctx, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, like):
        """Row-major ``C[m, n] = alpha * op(A) @ op(B) + beta * C`` at addresses ``a``, ``b``,
        ``c`` (int64), in ``like``'s dtype (float32 or float64). ``op(A)`` is (m, k): A stored
        as m rows of ``lda`` elements, or with ``transa`` A.T stored as k rows; likewise ``B``
        (k, n) and ``ldb``; C has rows of ``ldc``. ``beta`` 0 overwrites C (its old values,
        even NaN, are not read). Returns BLAS's status (0). Row-major C is column-major C.T =
        op(B).T @ op(A).T, so the call passes B first: no copy, no transposition."""
        ensure_blas()
        kind = get_blas_kind(like.dtype, "gemm")
        dtype = like.dtype
        signature = types.int32(
            types.boolean, types.boolean, types.int64, types.int64, types.int64, types.float64, types.int64,
            types.int64, types.int64, types.int64, types.float64, types.int64, types.int64, like,
        )  # fmt: skip

        def codegen(context, builder, signature, args):
            transa_, transb_, m_, n_, k_, alpha_, a_, lda_, b_, ldb_, beta_, c_, ldc_, _ = args
            char = ir.IntType(8)
            void_p = cgutils.voidptr_t
            intp = context.get_value_type(types.intp)
            fnty = ir.FunctionType(
                ir.IntType(32),
                [char, char, char, intp, intp, intp, void_p, void_p, intp, void_p, intp, void_p, void_p, intp],
            )
            fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
            alpha, beta = _by_reference(context, builder, dtype, alpha_, beta_)

            def flag(trans):
                return builder.select(trans, ir.Constant(char, ord("t")), ir.Constant(char, ord("n")))

            def pointer(address):
                return builder.inttoptr(address, void_p)

            return builder.call(
                fn,
                (
                    ir.Constant(char, ord(kind)), flag(transb_), flag(transa_), n_, m_, k_,
                    alpha, pointer(b_), ldb_, pointer(a_), lda_, beta, pointer(c_), ldc_,
                ),
            )  # fmt: skip

        return signature, codegen

    @intrinsic
    def gemv(typingctx, trans, m, n, alpha, a, lda, x, beta, y, like):
        """Column-major BLAS ``y = alpha * op(A) @ x + beta * y``: A is (m, n) with columns of
        ``lda`` elements, ``op(A)`` is A or (``trans``) A.T; ``x`` and ``y`` are contiguous, at
        addresses (int64) in ``like``'s dtype. Returns 0."""
        ensure_blas()
        kind = get_blas_kind(like.dtype, "gemv")
        dtype = like.dtype
        signature = types.int32(
            types.boolean, types.int64, types.int64, types.float64, types.int64, types.int64, types.int64,
            types.float64, types.int64, like,
        )  # fmt: skip

        def codegen(context, builder, signature, args):
            trans_, m_, n_, alpha_, a_, lda_, x_, beta_, y_, _ = args
            char = ir.IntType(8)
            void_p = cgutils.voidptr_t
            intp = context.get_value_type(types.intp)
            fnty = ir.FunctionType(
                ir.IntType(32), [char, char, intp, intp, void_p, void_p, intp, void_p, void_p, void_p]
            )
            fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemv")
            alpha, beta = _by_reference(context, builder, dtype, alpha_, beta_)
            flag = builder.select(trans_, ir.Constant(char, ord("t")), ir.Constant(char, ord("n")))
            return builder.call(
                fn,
                (
                    ir.Constant(char, ord(kind)), flag, m_, n_, alpha, builder.inttoptr(a_, void_p), lda_,
                    builder.inttoptr(x_, void_p), beta, builder.inttoptr(y_, void_p),
                ),
            )  # fmt: skip

        return signature, codegen

    @jit
    def _zero(address, count, like):
        view = numba.carray(_pointer_like(address, like), count)
        for i in range(count):
            view[i] = 0

    @jit
    def _outer(m, n, alpha, a, step_a, b, step_b, beta, c, ldc, like):
        """``C[i, j] = alpha * a[i * step_a] * b[j * step_b] + beta * C[i, j]``; with ``beta``
        0, C is written, not read (BLAS's rule: what it held, even NaN, is gone)."""
        zero = like.dtype.type(0)
        column = numba.carray(_pointer_like(a, like), (m - 1) * step_a + 1)
        row = numba.carray(_pointer_like(b, like), (n - 1) * step_b + 1)
        out = numba.carray(_pointer_like(c, like), (m - 1) * ldc + n)
        scale = like.dtype.type(beta)
        if step_b != 1:  # a strided row, gathered once: the loops below then run contiguous
            gathered = np.empty(n, like.dtype)
            for j in range(n):
                gathered[j] = row[j * step_b]
            row = gathered
        for i in range(m):
            factor = like.dtype.type(alpha * column[i * step_a])
            target = out[i * ldc : i * ldc + n]
            if beta == zero:
                for j in range(n):
                    target[j] = factor * row[j]
            else:
                for j in range(n):
                    target[j] = factor * row[j] + scale * target[j]

    @jit
    def product(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, like):
        """``gemm``'s call and result, with a dimension of 1 taken by ``gemv`` or a loop (the
        module's docstring says why). Row-major, as ``gemm``: op(A) is (m, k), op(B) (k, n)."""
        if m == 0 or n == 0:
            return 0
        if k == 1:  # an outer product: a column of op(A) times a row of op(B)
            _outer(m, n, alpha, a, 1 if transa else lda, b, ldb if transb else 1, beta, c, ldc, like)
            return 0
        # gemv's vectors are contiguous (numba's entry point passes increments of 1). With beta 0
        # y is zeroed first: OpenBLAS has scaled y by beta with ``scal``, which in some versions
        # keeps a NaN that y held (0 * NaN), where gemm's beta 0 never reads C.
        if m == 1 and (not transa or lda == 1):
            # c (n) = op(B).T @ a. Column-major, B stored as k rows of ldb is (ldb x k): B.T.
            if beta == 0.0:
                _zero(c, n, like)
            return gemv(transb, n if not transb else k, k if not transb else n, alpha, b, ldb, a, beta, c, like)
        if n == 1 and ldc == 1 and (transb or ldb == 1):
            # c (m) = op(A) @ b. Column-major, A stored as m rows of lda is (lda x m): A.T.
            if beta == 0.0:
                _zero(c, m, like)
            return gemv(not transa, k if not transa else m, m if not transa else k, alpha, a, lda, b, beta, c, like)
        return gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, like)
