"""General matrix products straight into the arenas: BLAS ``gemm`` with its ``beta``.

``np.dot`` inside numba returns a new array: a forward product then copies it into its slot, and
a backward product adds it to the gradient slot, so every product allocated its result once more
and walked it twice. For a (128, 64) weight gradient that temporary was 32 KB that malloc handed
back to the kernel and took again, page faults included, on every replay of a small step
(``perf``: a tenth of a per-sample ``vmap`` call in ``clear_page_erms``). ``gemm`` writes
``C = alpha * op(A) @ op(B) + beta * C`` in place, and reads a transposed operand where it lies.

It calls the same entry point numba's own ``np.dot`` calls (``numba_xxgemm`` in numba's helper
library, which dispatches to scipy's BLAS), so compiled kernels that use it stay cacheable.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

if numba.config.DISABLE_JIT:
    import ctypes

    def _matrix(address, rows, columns, ld, dtype):
        pointer = ctypes.cast(int(address), ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype)))
        flat = np.ctypeslib.as_array(pointer, ((rows - 1) * ld + columns,))
        return np.lib.stride_tricks.as_strided(flat, (rows, columns), (ld * flat.itemsize, flat.itemsize))

    def gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, like):
        """As the compiled one below, in numpy (the table tests run kernels as Python)."""
        if m == 0 or n == 0:
            return 0
        dtype = like.dtype
        left = _matrix(a, k, m, lda, dtype).T if transa else _matrix(a, m, k, lda, dtype)
        right = _matrix(b, n, k, ldb, dtype).T if transb else _matrix(b, k, n, ldb, dtype)
        out = _matrix(c, m, n, ldc, dtype)
        product = left @ right if k else np.zeros((m, n), dtype)
        out[...] = alpha * product + (beta * out if beta else 0)
        return 0

else:
    from numba.np.linalg import ensure_blas, get_blas_kind

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
            value_type = context.get_value_type(dtype)
            slot_alpha = cgutils.alloca_once(builder, value_type)
            slot_beta = cgutils.alloca_once(builder, value_type)
            builder.store(context.cast(builder, alpha_, types.float64, dtype), slot_alpha)
            builder.store(context.cast(builder, beta_, types.float64, dtype), slot_beta)

            def flag(trans):
                return builder.select(trans, ir.Constant(char, ord("t")), ir.Constant(char, ord("n")))

            def pointer(address):
                return builder.inttoptr(address, void_p)

            return builder.call(
                fn,
                (
                    ir.Constant(char, ord(kind)), flag(transb_), flag(transa_), n_, m_, k_,
                    builder.bitcast(slot_alpha, void_p), pointer(b_), ldb_, pointer(a_), lda_,
                    builder.bitcast(slot_beta, void_p), pointer(c_), ldc_,
                ),
            )  # fmt: skip

        return signature, codegen
