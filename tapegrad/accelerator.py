"""``torch.accelerator`` on a CPU-only library: there is none."""

from __future__ import annotations


def is_available() -> bool:
    """False; follows ``torch.accelerator.is_available``."""
    return False


def current_accelerator(check_available: bool = False):
    """None (no accelerator); follows ``torch.accelerator.current_accelerator``."""
    return None


def device_count() -> int:
    """0; follows ``torch.accelerator.device_count``."""
    return 0
