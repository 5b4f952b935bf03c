"""The one place kernel compilation flags and numba's cache location are decided.

Imported before numba itself, so that an installed, read-only package still finds a writable
cache directory: numba tries ``__pycache__`` beside the source, then NUMBA_CACHE_DIR, then the
user's cache directory, and raises at decoration time if none is writable.
"""

from __future__ import annotations

import hashlib
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


def kernel_sources_digest() -> str:
    """A digest of every kernel source file: what compiled kernels depend on (``drop_stale_cache``,
    and the key of the machine code shipped with the package, ``shipped.py``)."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(_HERE)):
        if name.endswith(".py"):
            with open(os.path.join(_HERE, name), "rb") as handle:
                digest.update(name.encode() + handle.read())
    return digest.hexdigest()


def _cache_directories() -> list:
    directories = [os.path.join(_HERE, "__pycache__")]
    root = os.environ.get("NUMBA_CACHE_DIR")
    if root:
        # Where numba's locator for NUMBA_CACHE_DIR puts this directory's cache (its
        # ``get_suitable_cache_subpath``): made here, so that the first run stamps it. Left to
        # numba, it appeared after the stamping, and the next run dropped a fresh cache.
        own = os.path.join(root, "_kernels_" + hashlib.sha1(_HERE.encode()).hexdigest())
        try:
            os.makedirs(own, exist_ok=True)
        except OSError:
            pass
        for path, _, _ in os.walk(root):
            if "_kernels" in path:
                directories.append(path)
    return directories


def drop_stale_cache(digest: str) -> None:
    """numba checks a cached function against its own file only: a change in a module it calls
    (``strided.py`` under ``backward.py``) would leave stale machine code in use. So the cache is
    stamped with a digest of every kernel source and dropped whole when any of them changed."""
    for directory in _cache_directories():
        stamp = os.path.join(directory, "tapegrad-kernels.stamp")
        try:
            with open(stamp) as handle:
                if handle.read() == digest:
                    continue
        except OSError:
            pass
        try:
            for name in os.listdir(directory):
                if name.endswith((".nbi", ".nbc")):
                    os.remove(os.path.join(directory, name))
            with open(stamp, "w") as handle:
                handle.write(digest)
        except OSError:
            pass  # not writable: numba will not cache there either


def limit_kernel_blas_threads() -> None:
    """numba's np.dot calls scipy's bundled OpenBLAS, a second thread pool beside numpy's. On a
    machine with few cores the two pools' spinning threads contend: a 128x512 ``a @ b.t()``
    forward and backward took 12-13 ms instead of 1.1 ms on this project's 2-core machine. The
    sweep runs on one thread, so the BLAS it calls does too (scipy's own linear algebra, which
    shares that library, with it). No-op where scipy uses another BLAS."""
    import ctypes
    import glob

    import scipy

    libraries = os.path.join(os.path.dirname(scipy.__file__), os.pardir, "scipy.libs", "libscipy_openblas*")
    for path in glob.glob(libraries):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            setter = getattr(library, name, None)
            if setter is not None:
                setter(1)
                break


KERNEL_DIGEST = kernel_sources_digest()
choose_cache_dir()
drop_stale_cache(KERNEL_DIGEST)

import numba  # noqa: E402 - the cache directory must be chosen first
import numpy as np  # noqa: E402

from .shipped import ShippedCache, cached  # noqa: E402

# The backward leaves gradient slots unzeroed until a rule reaches them (backward._claim). With
# TAPEGRAD_POISON_GRADIENTS=1 (the test suite sets it) they start as NaN instead, so that a rule
# adding into a slot it never claimed gives NaN gradients rather than, by luck, right ones. Read
# once, at import; an argument of the sweep, not a compiled-in constant, so one cache serves both.
_POISON = np.bool_(os.environ.get("TAPEGRAD_POISON_GRADIENTS") == "1")


def poison_gradients() -> np.bool_:
    """Whether the backward fills new gradient arenas with NaN (``TAPEGRAD_POISON_GRADIENTS``)."""
    return _POISON


# Every kernel compiles with these flags. No fastmath: it changes NaN handling and the bits of
# sums, and gradients must agree with the numpy forward to the last ulp.
# Cached, though not by numba's ``cache=True``: ``cached`` gives each dispatcher numba's cache
# with the machine code shipped with the package behind it (shipped.py), set up on first use.
JIT_OPTIONS = dict(nogil=True, error_model="numpy")


# The kernels run as their Python source: under NUMBA_DISABLE_JIT (the test pass that runs them
# so), and in the second copy of this package that ``tiers.py`` imports under this name, which
# runs small sweeps while numba compiles the interpreters in the background. Every branch
# between the two forms tests this, never numba's flag: the copy is imported with the flag off.
PYTHON_COPY = "tapegrad._kernels_as_python"
AS_PYTHON = numba.config.DISABLE_JIT or __name__ == PYTHON_COPY + ".config"


def kernel(**options):
    """``numba.njit(**options)`` with the kernels' cache (``shipped.cached``); the function
    itself where the kernels run as Python (``AS_PYTHON``)."""
    if AS_PYTHON:
        return lambda function: function
    return cached(numba.njit(**options), KERNEL_DIGEST)


jit = kernel(**JIT_OPTIONS)
inline = kernel(inline="always", **JIT_OPTIONS)
# The one exception: sums that may be reassociated, so LLVM vectorizes them (a float32 sum of 64K
# elements: 44 us in order, 4.7 us so). Only ``reassoc``: NaN, inf and signed zeros are untouched.
# The flag is on the instructions, so it survives LLVM inlining these into a family (and stays
# off in the caller's own code).
reduction = kernel(fastmath={"reassoc"}, **JIT_OPTIONS)


def kernel_cache(py_func) -> ShippedCache:
    """The cache of a kernel compiled outside these decorators (the families' ``cfunc``)."""
    return ShippedCache(py_func, KERNEL_DIGEST)


def _always_inline():
    """Marks the jitted function that calls it ``alwaysinline`` for LLVM (a no-op in Python).

    For functions compiled once (their own cache entry, their own flags) whose callers need
    them inlined: vmath's functions, which a loop must inline to vectorize, the families'
    frame accessors (``families.arrays32``), left as calls in a family that had just inlined a
    large vmath function (float32 sin's loop then stayed scalar: 10 ns an element), and the
    backward sweep's small-row path (``backward._small_backward``), which numba's own inliner
    (``inline="always"``) copied and typed again inside the sweep at a higher compile cost."""


def _wide_vectors():
    """Lets LLVM vectorize the loops of the jitted function that calls it with 512-bit vectors
    where the CPU has them (the function attribute ``"prefer-vector-width"="512"``; a no-op in
    Python and on CPUs without AVX-512). LLVM's tuning for AVX-512 CPUs prefers 256-bit vectors
    (wide ones once lowered the clock of some); on this project's machine numpy's own loops use
    512 bits, and the generated kernels' transcendental loops ran 10-35% faster with them (same
    bits: the lanes do the same operations). Per function, so the rest keeps LLVM's choice."""


if AS_PYTHON:
    always_inline = _always_inline
    wide_vectors = _wide_vectors
else:
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def always_inline(typingctx):
        def codegen(context, builder, signature, args):
            # NUMBA_ENABLE_PROFILING marks every function noinline (for perf's symbols), and
            # LLVM refuses both attributes on one function: profiling keeps its own.
            if "noinline" not in builder.function.attributes:
                builder.function.attributes.add("alwaysinline")
            return context.get_dummy_value()

        return types.none(), codegen

    always_inline.__doc__ = _always_inline.__doc__

    @intrinsic
    def wide_vectors(typingctx):
        def codegen(context, builder, signature, args):
            # a string attribute: llvmlite's ``add`` knows only the enum ones
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
            return context.get_dummy_value()

        return types.none(), codegen

    wide_vectors.__doc__ = _wide_vectors.__doc__
