"""``torch.cuda`` on a CPU-only library: no CUDA device, so programs take their CPU branch.

``device = "cuda" if torch.cuda.is_available() else "cpu"`` chooses the CPU; seeding CUDA is
silently ignored, as PyTorch ignores it where CUDA is not available.
"""

from __future__ import annotations


def is_available() -> bool:
    """False: tapegrad computes on the CPU; follows ``torch.cuda.is_available``."""
    return False


def device_count() -> int:
    """0; follows ``torch.cuda.device_count``."""
    return 0


def is_initialized() -> bool:
    """False; follows ``torch.cuda.is_initialized``."""
    return False


def manual_seed(seed: int) -> None:
    """Ignored (there is no CUDA generator), as in PyTorch without CUDA; follows ``torch.cuda.manual_seed``."""


def manual_seed_all(seed: int) -> None:
    """Ignored, as in PyTorch without CUDA; follows ``torch.cuda.manual_seed_all``."""


def empty_cache() -> None:
    """Nothing to release (no CUDA memory), as in PyTorch without CUDA; follows ``torch.cuda.empty_cache``."""
