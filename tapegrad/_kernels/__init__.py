"""Jitted kernels. Their modules import numba; tapegrad imports them on first use (``load``)."""

from __future__ import annotations

import importlib

_LOADED: dict = {}


def load(name: str):
    """The kernel module ``tapegrad._kernels.<name>``, imported on its first use, so that
    ``import tapegrad`` does not import numba. A ``from`` import inside the calling op did the
    same, but cost 0.5 us (a submodule) to 1.2 us (a name from one) on every call, in importlib's
    ``_handle_fromlist``: a few percent of an op on a small tensor."""
    module = _LOADED.get(name)
    if module is None:
        module = _LOADED[name] = importlib.import_module(f"{__name__}.{name}")
    return module
