"""``torch.backends.cuda``: the flags programs set for TF32 and reduced-precision matrix
products; with no CUDA they change nothing, as in a CPU-only PyTorch."""

from __future__ import annotations


class _Matmul:
    """``torch.backends.cuda.matmul``: settable flags, PyTorch's defaults."""

    def __init__(self):
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True


matmul = _Matmul()


def is_built() -> bool:
    """False: tapegrad has no CUDA back end; follows ``torch.backends.cuda.is_built``."""
    return False
