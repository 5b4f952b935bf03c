"""``torch.return_types``: the named tuples ``max``, ``min``, ``sort`` and ``topk`` return along
a dimension, and those of the matrix decompositions (``linalg_svd``, ``linalg_eigh``...),
printed as PyTorch prints them (with tapegrad's module name)."""

from __future__ import annotations

import collections


def _structseq(name: str, fields: tuple):
    base = collections.namedtuple(name, fields)

    def __repr__(self) -> str:  # noqa: N807 - the class's own repr
        parts = ",\n".join(f"{field}={value!r}" for field, value in zip(fields, self))
        return f"tapegrad.return_types.{name}(\n{parts})"

    return type(name, (base,), {"__slots__": (), "__repr__": __repr__, "__module__": __name__})


max = _structseq("max", ("values", "indices"))  # noqa: A001 - PyTorch's names
min = _structseq("min", ("values", "indices"))  # noqa: A001
sort = _structseq("sort", ("values", "indices"))
topk = _structseq("topk", ("values", "indices"))
aminmax = _structseq("aminmax", ("min", "max"))
median = _structseq("median", ("values", "indices"))
nanmedian = _structseq("nanmedian", ("values", "indices"))
kthvalue = _structseq("kthvalue", ("values", "indices"))
slogdet = _structseq("slogdet", ("sign", "logabsdet"))
linalg_slogdet = _structseq("linalg_slogdet", ("sign", "logabsdet"))
linalg_eigh = _structseq("linalg_eigh", ("eigenvalues", "eigenvectors"))
linalg_svd = _structseq("linalg_svd", ("U", "S", "Vh"))
svd = _structseq("svd", ("U", "S", "V"))
linalg_qr = _structseq("linalg_qr", ("Q", "R"))
qr = _structseq("qr", ("Q", "R"))
linalg_lu_factor = _structseq("linalg_lu_factor", ("LU", "pivots"))
linalg_lu_factor_ex = _structseq("linalg_lu_factor_ex", ("LU", "pivots", "info"))
linalg_lu = _structseq("linalg_lu", ("P", "L", "U"))
lu_unpack = _structseq("lu_unpack", ("P", "L", "U"))
linalg_lstsq = _structseq("linalg_lstsq", ("solution", "residuals", "rank", "singular_values"))
linalg_cholesky_ex = _structseq("linalg_cholesky_ex", ("L", "info"))
linalg_inv_ex = _structseq("linalg_inv_ex", ("inverse", "info"))
linalg_solve_ex = _structseq("linalg_solve_ex", ("result", "info"))
cummax = _structseq("cummax", ("values", "indices"))
cummin = _structseq("cummin", ("values", "indices"))
histogram = _structseq("histogram", ("hist", "bin_edges"))
