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

import functools
import os
import sys
import threading

import numba
import numpy as np
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
_V3 = _V2 + ("crc32", "avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave")
_V4 = _V3 + ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")
LEVELS = (("x86-64-v4", _V4), ("x86-64-v3", _V3))

# Set by ``python -m tapegrad._kernels.ship`` in the process that compiles a level, with
# NUMBA_CPU_NAME set to the same level: that process's caches write into the shipped directory.
# (Either alone, say left over in a shell, changes nothing.)
SHIP_LEVEL = os.environ.get("TAPEGRAD_SHIP_LEVEL", "")
if SHIP_LEVEL and SHIP_LEVEL != numba.config.CPU_NAME:
    SHIP_LEVEL = ""

# numba settings that change the machine code of a kernel: shipped code is built with numba's
# defaults (``ship.py`` clears every NUMBA_ variable), and a process that sets any of them
# otherwise (NUMBA_BOUNDSCHECK=1, NUMBA_OPT=0...) compiles its own. Intel's SVML is turned off
# when shipping, so shipped code never calls a library the user may not have.
_SETTINGS = ("OPT", "BOUNDSCHECK", "DEBUGINFO_DEFAULT", "ENABLE_PROFILING", "LOOP_VECTORIZE", "SLP_VECTORIZE")

loaded: list = []  # the cache files of the functions loaded from shipped code, in this process


@functools.lru_cache(maxsize=None)
def stamp(digest: str) -> tuple:
    """What shipped code must have been built with to be used in this process: the kernel
    sources (``digest``), the numpy and llvmlite it was typed and compiled with (numba's version
    is in its own check), and numba's code-generation settings."""
    import llvmlite

    numpy_version = ".".join(np.__version__.split(".")[:2])
    settings = tuple((name, str(getattr(numba.config, name, None))) for name in _SETTINGS)
    return (digest, numpy_version, llvmlite.__version__, settings)


def usable_levels(triple: str, features: dict) -> list:
    """The shipped levels a host with LLVM target ``triple`` and CPU ``features`` (name -> bool)
    can run, best first."""
    if not triple.startswith("x86_64"):
        return []
    return [name for name, needed in LEVELS if all(features.get(feature, False) for feature in needed)]


def host_levels() -> list:
    """The shipped levels this process may run, best first: none where numba itself was told
    to restrict the instructions it emits (its ``ENABLE_AVX``, off on CPUs and VMs that report
    AVX wrongly, or a user's NUMBA_CPU_NAME / NUMBA_CPU_FEATURES)."""
    import llvmlite.binding as llvm

    if not numba.config.ENABLE_AVX or (not SHIP_LEVEL and (numba.config.CPU_NAME or numba.config.CPU_FEATURES)):
        return []
    try:
        features = dict(llvm.get_host_cpu_features())
    except RuntimeError:  # LLVM cannot tell: load nothing
        return []
    return usable_levels(llvm.get_process_triple(), features)


def _report(error: Exception) -> None:
    """Say once, on stderr, that shipped code could not be used. Not a warning: under
    ``-W error`` a warning would fail the op, where compiling it is the right outcome."""
    if not _reported:
        _reported.append(error)
        print(f"tapegrad: shipped machine code not loaded ({error!r}); compiling instead", file=sys.stderr)


_reported: list = []
_SET_UP = threading.Lock()


class ShippedCache(FunctionCache):
    """numba's cache of one kernel, falling back to the shipped machine code on a miss.

    Set up on first use, not when its kernel is declared: numba's own set-up finds and probes a
    writable directory for each function (140 us here), and a process uses few of the ~300
    kernels it declares (the warm first backward: about 40 ms less)."""

    _levels: list | None = None  # the host's usable levels, found once per process

    def __init__(self, py_func, digest: str):
        self._pending = py_func
        self._digest = digest
        self._ready = False
        self._enabled = True

    def _set_up(self) -> None:
        if self._ready:
            return
        with _SET_UP:  # a family's first load and a sweep's compile may meet here from two threads
            if self._ready:
                return
            enabled = self._enabled
            super().__init__(self._pending)  # numba's set-up (it enables the cache)
            self._enabled = enabled
            if SHIP_LEVEL:  # compiling a level: load and save there only
                self._cache_file = self._shipped_file(SHIP_LEVEL)
            self._ready = True

    @property
    def cache_path(self):
        self._set_up()
        return self._cache_path

    def flush(self):
        self._set_up()
        super().flush()

    def load_overload(self, sig, target_context):
        self._set_up()
        return super().load_overload(sig, target_context)

    def save_overload(self, sig, data):
        self._set_up()
        super().save_overload(sig, data)

    @staticmethod
    def _host_levels() -> list:
        if ShippedCache._levels is None:
            ShippedCache._levels = host_levels()
        return ShippedCache._levels

    def _index_key(self, sig, codegen):
        """numba's key of a function's machine code, with numba's code-generation settings in
        it: numba's own key holds the CPU but not these, so one run under NUMBA_ENABLE_PROFILING
        (perf's symbols: every function ``noinline``) or NUMBA_BOUNDSCHECK left its code in the
        cache for every later run. A per-sample ``vmap`` ran 40% slower after a ``perf`` session.
        Each setting now has entries of its own. (Shipped code carries the same key, and its
        stamp the settings too.)"""
        signature, magic, code = super()._index_key(sig, codegen)
        return signature, magic, (*code, stamp(self._digest)[3])

    def _shipped_file(self, level: str) -> IndexDataCacheFile:
        return IndexDataCacheFile(os.path.join(DIRECTORY, level), self._impl.filename_base, stamp(self._digest))

    def _load_overload(self, sig, target_context):
        data = super()._load_overload(sig, target_context)
        if data is not None or SHIP_LEVEL or not ENABLED or not self._enabled or not os.path.isdir(DIRECTORY):
            return data
        signature, (triple, _, _), code = self._index_key(sig, target_context.codegen())
        for level in self._host_levels():
            shipped = self._shipped_file(level)
            try:
                payload = shipped.load((signature, (triple, level, ""), code))
                if payload is not None:
                    data = self._impl.rebuild(target_context, payload)
            except Exception as error:  # noqa: BLE001 - a damaged file, another numba's internals
                _report(error)
                continue
            if payload is not None:
                loaded.append(shipped._index_path)
                return data
        return None

    def _save_overload(self, sig, data):
        if SHIP_LEVEL:
            os.makedirs(os.path.join(DIRECTORY, SHIP_LEVEL), exist_ok=True)
        super()._save_overload(sig, data)

    def has_entry(self) -> bool:
        """Whether numba's cache or a shipped level holds machine code for this function that
        this process may use (an index of the right versions and sources), so that its first
        call will not compile it."""
        self._set_up()
        try:
            if self._cache_file._load_index():
                return True
            if SHIP_LEVEL or not ENABLED or not os.path.isdir(DIRECTORY):
                return False
            return any(self._shipped_file(level)._load_index() for level in self._host_levels())
        except Exception:  # noqa: BLE001 - an unreadable index: its load will say so, and compile
            return False


def cached(decorator, digest: str):
    """``decorator`` (``numba.njit(...)`` without ``cache``) with :class:`ShippedCache` as the
    cache of the dispatchers it makes: what ``cache=True`` would do, with the fallback."""

    def decorate(function):
        dispatcher = decorator(function)
        if not numba.config.DISABLE_JIT:
            dispatcher._cache = ShippedCache(dispatcher.py_func, digest)
        return dispatcher

    return decorate
