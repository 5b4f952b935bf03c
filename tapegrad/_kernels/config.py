"""The one place kernel compilation flags and numba's cache location are decided.

Imported before numba itself, so that an installed, read-only package still finds a writable
cache directory: numba tries ``__pycache__`` beside the source, then NUMBA_CACHE_DIR, then the
user's cache directory, and raises at decoration time if none is writable.
"""

from __future__ import annotations

import os
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))


def _writable(directory: str) -> bool:
    try:
        os.makedirs(directory, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, delete=True)
        probe.close()
        return True
    except OSError:
        return False


def choose_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    if _writable(os.path.join(_HERE, "__pycache__")):
        return
    for candidate in (
        os.path.join(os.path.expanduser("~"), ".cache", "tapegrad-numba"),
        os.path.join(tempfile.gettempdir(), f"tapegrad-numba-{os.getuid() if hasattr(os, 'getuid') else 0}"),
    ):
        if _writable(candidate):
            os.environ["NUMBA_CACHE_DIR"] = candidate
            return


choose_cache_dir()

import numba  # noqa: E402 - the cache directory must be chosen first

# Every kernel compiles with these flags. No fastmath: it changes NaN handling and the bits of
# sums, and gradients must agree with the numpy forward to the last ulp.
JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy")
jit = numba.njit(**JIT_OPTIONS)
inline = numba.njit(inline="always", **JIT_OPTIONS)
