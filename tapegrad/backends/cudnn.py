"""``torch.backends.cudnn``: programs set these flags for reproducibility; with no cuDNN they
change nothing, as in a CPU-only PyTorch."""

from __future__ import annotations

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    """False; follows ``torch.backends.cudnn.is_available``."""
    return False
