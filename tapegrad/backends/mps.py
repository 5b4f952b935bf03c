"""``torch.backends.mps``: Apple's Metal back end, not present in tapegrad."""

from __future__ import annotations


def is_available() -> bool:
    """False; follows ``torch.backends.mps.is_available``."""
    return False


def is_built() -> bool:
    """False; follows ``torch.backends.mps.is_built``."""
    return False
