"""``tapegrad.nn``: so far only ``functional``."""

from . import functional

__all__ = ["functional"]
