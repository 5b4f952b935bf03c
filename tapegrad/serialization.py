"""``torch.serialization``'s allow-list of globals for ``torch.load(weights_only=True)``.

``tapegrad.load`` reads arrays and JSON only and never unpickles (``_serialization``), so no
global is ever looked up: the list is kept for programs that add to it and read it back, and
changes nothing about what loads.
"""

from __future__ import annotations

import contextlib

from ._serialization import load, save

_SAFE_GLOBALS: list = []


def add_safe_globals(safe_globals: list) -> None:
    """Add to the allow-list; follows ``torch.serialization.add_safe_globals``."""
    _SAFE_GLOBALS.extend(safe_globals)


def get_safe_globals() -> list:
    """The allow-list; follows ``torch.serialization.get_safe_globals``."""
    return list(_SAFE_GLOBALS)


def clear_safe_globals() -> None:
    """Empty the allow-list; follows ``torch.serialization.clear_safe_globals``."""
    _SAFE_GLOBALS.clear()


@contextlib.contextmanager
def safe_globals(safe_globals: list):
    """The allow-list extended inside the block; follows ``torch.serialization.safe_globals``."""
    before = list(_SAFE_GLOBALS)
    _SAFE_GLOBALS.extend(safe_globals)
    try:
        yield
    finally:
        _SAFE_GLOBALS[:] = before


__all__ = ["add_safe_globals", "clear_safe_globals", "get_safe_globals", "load", "safe_globals", "save"]
