"""blas.product, the kernels' one matrix product: gemm's result whichever path takes it.

A product with a dimension of 1 goes to gemv (m or n is 1) or to an outer-product loop (k is 1)
instead of gemm; each path is checked here against numpy for every layout the kernels pass
(transposed or not, rows padded past their length), with beta 0 over a C full of NaN (not read)
and beta 1 (accumulated).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tapegrad._kernels.blas import product

SHAPES = [(1, 5, 7), (6, 1, 7), (6, 5, 1), (1, 1, 7), (1, 5, 1), (6, 1, 1), (1, 1, 1), (6, 5, 7), (3, 4, 2)]


def _stored(rng, rows, columns, pad, dtype):
    """A (rows, columns) matrix stored row-major in rows of ``columns + pad`` elements."""
    storage = rng.standard_normal((rows, columns + pad)).astype(dtype)
    return storage, storage[:, :columns]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, n, k", SHAPES)
@pytest.mark.parametrize("transa, transb", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("pad", [0, 2])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_product_equals_numpy_for_every_layout(dtype, m, n, k, transa, transb, pad, beta):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    a_storage, a = _stored(rng, *((k, m) if transa else (m, k)), pad, dtype)
    b_storage, b = _stored(rng, *((n, k) if transb else (k, n)), pad, dtype)
    c_storage = rng.standard_normal((m, n + pad)).astype(dtype)
    if beta == 0.0:
        c_storage[:, :n] = np.nan  # beta 0 writes C without reading it
    before = c_storage.copy()
    left = a.T if transa else a
    right = b.T if transb else b
    expected = left.astype(np.float64) @ right.astype(np.float64) * 0.5
    if beta:
        expected += before[:, :n].astype(np.float64)
    status = product(
        transa, transb, m, n, k, 0.5, a_storage.ctypes.data, a_storage.shape[1], b_storage.ctypes.data,
        b_storage.shape[1], beta, c_storage.ctypes.data, c_storage.shape[1], c_storage,
    )  # fmt: skip
    assert status == 0
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c_storage[:, :n], expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(c_storage[:, n:], before[:, n:])  # the padding is not written
