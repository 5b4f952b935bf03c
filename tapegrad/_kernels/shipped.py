"""Machine code shipped with the package: numba's cache, built once for portable CPU levels.

numba keeps a kernel's machine code in a per-user cache, keyed by its source file's modification
time and by the exact host CPU (its name and feature list). A fresh install has none, so every
install's first backward compiled for seconds, and its test suite for minutes. A wheel can carry
that cache instead. ``python -m tapegrad._kernels.ship`` compiles the kernels for x86-64
micro-architecture levels into ``_kernels/_shipped/<level>/``:

- ``x86-64-v3`` (AVX2, FMA: x86-64 CPUs of the last decade) and ``x86-64-v4`` (AVX-512 on top);
- keyed by a digest of every kernel source (``config.kernel_sources_digest``) instead of file
  times, which an install changes (and which numba checks for the function's own file only);
- and by the level's name where numba's key holds the host CPU's.

At run time numba's own cache is read first. On a miss, :class:`ShippedCache` reads the shipped
levels the host CPU can run, best first: a level is used only where the host has every one of
its features (LLVM's host feature list, which also says whether the OS enables AVX state), so
code for a level the CPU lacks is never loaded. numba's version, Python's, the function's
bytecode and the target triple stay in the key or the file name as numba makes them: a wheel
used with another numba, another Python or another architecture compiles on first use as before.
Shipped code is used as it is; code compiled for the host itself may be a few percent faster.
"""

from __future__ import annotations

import os
import warnings

import numba
from numba.core.caching import FunctionCache, IndexDataCacheFile

# Where the shipped code is read from: inside the package, unless TAPEGRAD_SHIPPED_DIR names
# another directory (a read-only install's packager, the tests). TAPEGRAD_SHIPPED_KERNELS=0 turns
# the fallback off, so that every kernel compiles for the host CPU itself on first use.
DIRECTORY = os.environ.get("TAPEGRAD_SHIPPED_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "_shipped"
)
ENABLED = os.environ.get("TAPEGRAD_SHIPPED_KERNELS", "1") != "0"

# LLVM's x86-64 micro-architecture levels (llvm/lib/Target/X86/X86.td), best first, with the
# features each needs, by the names ``llvmlite.binding.get_host_cpu_features`` uses.
_V2 = ("cmov", "cx8", "fxsr", "mmx", "sse", "sse2", "cx16", "sahf", "popcnt", "sse3", "ssse3", "sse4.1", "sse4.2")
_V3 = _V2 + ("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave")
_V4 = _V3 + ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")
LEVELS = (("x86-64-v4", _V4), ("x86-64-v3", _V3))

# Set by ``python -m tapegrad._kernels.ship`` in the process that compiles a level (with
# NUMBA_CPU_NAME set to it): that process's caches write into the shipped directory.
SHIP_LEVEL = os.environ.get("TAPEGRAD_SHIP_LEVEL", "")

loaded: list = []  # the cache files of the functions loaded from shipped code, in this process


def usable_levels(triple: str, features: dict) -> list:
    """The shipped levels a host with LLVM target ``triple`` and CPU ``features`` (name -> bool)
    can run, best first."""
    if not triple.startswith("x86_64"):
        return []
    return [name for name, needed in LEVELS if all(features.get(feature, False) for feature in needed)]


def host_levels() -> list:
    """The shipped levels this machine can run, best first."""
    import llvmlite.binding as llvm

    try:
        features = dict(llvm.get_host_cpu_features())
    except RuntimeError:  # LLVM cannot tell: load nothing
        return []
    return usable_levels(llvm.get_process_triple(), features)


class ShippedCache(FunctionCache):
    """numba's cache of one kernel, falling back to the shipped machine code on a miss."""

    _levels: list | None = None  # the host's usable levels, found once per process

    def __init__(self, py_func, digest: str):
        super().__init__(py_func)
        self._digest = digest
        if SHIP_LEVEL:  # compiling a level: load and save there only
            self._cache_file = self._shipped_file(SHIP_LEVEL)

    def _shipped_file(self, level: str) -> IndexDataCacheFile:
        return IndexDataCacheFile(os.path.join(DIRECTORY, level), self._impl.filename_base, self._digest)

    def _load_overload(self, sig, target_context):
        data = super()._load_overload(sig, target_context)
        if data is not None or SHIP_LEVEL or not ENABLED or not self._enabled or not os.path.isdir(DIRECTORY):
            return data
        if ShippedCache._levels is None:
            ShippedCache._levels = host_levels()
        signature, (triple, _, _), code = self._index_key(sig, target_context.codegen())
        for level in ShippedCache._levels:
            shipped = self._shipped_file(level)
            try:
                payload = shipped.load((signature, (triple, level, ""), code))
                if payload is not None:
                    data = self._impl.rebuild(target_context, payload)
            except Exception as error:  # noqa: BLE001 - a damaged file: compile instead, as without it
                warnings.warn(f"tapegrad: shipped machine code unreadable ({error!r}); compiling instead", stacklevel=2)
                return None
            if payload is not None:
                loaded.append(shipped._index_path)
                return data
        return None

    def _save_overload(self, sig, data):
        if SHIP_LEVEL:
            os.makedirs(os.path.join(DIRECTORY, SHIP_LEVEL), exist_ok=True)
        super()._save_overload(sig, data)

    def has_entry(self) -> bool:
        """Whether numba's cache or a shipped level may hold this function (an index file
        exists), so that a first call will not compile it."""
        if os.path.exists(self._cache_file._index_path):
            return True
        if ShippedCache._levels is None:
            ShippedCache._levels = host_levels() if ENABLED and os.path.isdir(DIRECTORY) else []
        return any(os.path.exists(self._shipped_file(level)._index_path) for level in ShippedCache._levels)


def cached(decorator, digest: str):
    """``decorator`` (``numba.njit(cache=True, ...)``) with :class:`ShippedCache` as the cache
    of the dispatchers it makes."""

    def decorate(function):
        dispatcher = decorator(function)
        if not numba.config.DISABLE_JIT:
            dispatcher._cache = ShippedCache(dispatcher.py_func, digest)
        return dispatcher

    return decorate
