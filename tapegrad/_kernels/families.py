"""Kernel families: compiled one at a time, on first use, and called through a table of addresses.

Compile time grows faster than linearly with the size of one compiled unit (7.7 s at 100 inline
ops, 25 s at 200), so a sweep that carries every rule made a new user wait about 40 s for the
tutorial's first backward. Here each family of rules (elementwise, reductions, matrix products...)
is its own ``cfunc``, one per dtype, compiled (or loaded from numba's cache) the first time a
tape needs it. The sweeps call them through an array of addresses, with one indirect call
(about 4 ns) instead of numba's first-class functions (58-74 ns, and uncacheable): a sweep that
meets a row whose family is not loaded yet stops there, the Python around it loads the family,
and the sweep resumes at that row.

A family function has the C signature ``int64(rule, row, mask, frame)``. ``frame`` is the
addresses and lengths of the sweep's arrays (``make_frame``), which ``arrays32``/``arrays64`` turn back into
arrays inside the family. It returns ``DONE``, ``NO_RULE`` (the rule is not this family's), or
0 when it raised: a ``cfunc`` cannot pass an exception on, so numba prints it ("Exception
ignored in...") and returns 0, which the sweep reports as a failed kernel.

With ``NUMBA_DISABLE_JIT=1`` (the table tests run the kernels as Python) a frame is a tuple of
the arrays and an address is an index into a list of Python functions.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from .config import AS_PYTHON, JIT_OPTIONS, always_inline, inline, jit, kernel_cache

DONE, NO_RULE = 1, 2
# A backward row's gradient slot: not eligible to hold a uniform gradient, eligible, or holding
# one (its one number in its first element: backward.py says when and why).
NOT_ELIGIBLE, ELIGIBLE, UNIFORM = 0, 1, 2
SIGNATURE = types.int64(types.int64, types.int64, types.int64, types.CPointer(types.int64))

# Frame slots: an array's address, then (where a kernel needs it) its length.
(ROWS, N_ROWS, PARAMS, LAYOUTS, N_LAYOUTS, DIMS, N_DIMS, AUX, N_AUX, ADDRESSES, N_ADDRESSES, OFFSETS,
 N_OFFSETS, TOUCHED, N_TOUCHED, ARENA32, N_ARENA32, ARENA64, N_ARENA64, STATES, N_STATES,
 FRAME_SIZE) = range(22)  # fmt: skip
ROW_WIDTH = 6  # tapegrad._tape.ROW_WIDTH
LAYOUT_WIDTH = 4


@intrinsic
def _pointer(typingctx, address, dtype):
    """``address`` as a pointer to ``dtype`` (a numpy scalar type such as ``np.float32``)."""
    pointer_type = types.CPointer(dtype.instance_type)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer_type))

    return pointer_type(types.int64, dtype), codegen


@intrinsic
def _call(typingctx, address, rule, row, mask, frame):
    """Call the family function at ``address`` (``SIGNATURE``) with the frame's data pointer."""

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        int64 = ir.IntType(64)
        function_type = ir.FunctionType(int64, [int64, int64, int64, int64.as_pointer()])
        function = builder.inttoptr(args[0], function_type.as_pointer())
        data = context.make_array(signature.args[4])(context, builder, args[4]).data
        return builder.call(function, [args[1], args[2], args[3], data])

    return types.int64(types.int64, types.int64, types.int64, types.int64, frame), codegen


_python_functions: list = []  # NUMBA_DISABLE_JIT: address k + 1 is _python_functions[k]

if AS_PYTHON:

    def make_frame(rows, params, layouts, dims, aux, addresses, offsets, touched, arena32, arena64, uniform):
        return (rows, params, layouts, dims, aux, addresses, offsets, touched, arena32, arena64, uniform)

    def arrays32(frame):
        return frame[:8] + (frame[8],)

    def arrays64(frame):
        return frame[:8] + (frame[9],)

    def uniform_states(frame):
        return frame[10]

    def call(address, rule, row, mask, frame):
        return _python_functions[address - 1](rule, row, mask, frame)

else:

    @inline
    def make_frame(rows, params, layouts, dims, aux, addresses, offsets, touched, arena32, arena64, uniform):
        """The addresses and lengths of a sweep's arrays, for the family functions it calls.
        Every array is C-contiguous (the sweeps' callers build them so)."""
        frame = np.empty(FRAME_SIZE, np.int64)  # every slot is set below
        frame[ROWS], frame[N_ROWS] = rows.ctypes.data, rows.shape[0]
        frame[PARAMS] = params.ctypes.data
        frame[LAYOUTS], frame[N_LAYOUTS] = layouts.ctypes.data, layouts.shape[0]
        frame[DIMS], frame[N_DIMS] = dims.ctypes.data, dims.shape[0]
        frame[AUX], frame[N_AUX] = aux.ctypes.data, aux.shape[0]
        frame[ADDRESSES], frame[N_ADDRESSES] = addresses.ctypes.data, addresses.shape[0]
        frame[OFFSETS], frame[N_OFFSETS] = offsets.ctypes.data, offsets.shape[0]
        frame[TOUCHED], frame[N_TOUCHED] = touched.ctypes.data, touched.shape[0]
        frame[ARENA32], frame[N_ARENA32] = arena32.ctypes.data, arena32.shape[0]
        frame[ARENA64], frame[N_ARENA64] = arena64.ctypes.data, arena64.shape[0]
        frame[STATES], frame[N_STATES] = uniform.ctypes.data, uniform.shape[0]
        return frame

    # Compiled once and called, not inlined: numba's IR inliner copied these nine array
    # constructions into every family, a quarter of a small family's compile (0.29 -> 0.22 s an
    # op); LLVM inlines the call, so a family call costs the same (benchmarks.checkouts).
    @jit
    def arrays32(frame):
        """The frame's arrays with the float32 arena: views without a reference count, as the
        sweep's own borrowed views are."""
        return _arrays(frame, np.float32, ARENA32, N_ARENA32)

    @jit
    def arrays64(frame):
        """The frame's arrays with the float64 arena."""
        return _arrays(frame, np.float64, ARENA64, N_ARENA64)

    @jit
    def uniform_states(frame):
        """The backward's per-row uniform-gradient states (``backward.UNIFORM``): empty where
        the sweep keeps none (a forward, a backward with hooks, vmap's)."""
        always_inline()
        return numba.carray(_pointer(frame[STATES], np.int64), frame[N_STATES])

    @inline
    def _arrays(frame, dtype, arena, size):
        always_inline()  # into arrays32/arrays64, and so those into every family
        n = frame[N_ROWS]
        return (
            numba.carray(_pointer(frame[ROWS], np.int64), (n, ROW_WIDTH)),
            numba.carray(_pointer(frame[PARAMS], np.float64), (n, ROW_WIDTH)),
            numba.carray(_pointer(frame[LAYOUTS], np.int64), (frame[N_LAYOUTS], LAYOUT_WIDTH)),
            numba.carray(_pointer(frame[DIMS], np.int64), frame[N_DIMS]),
            numba.carray(_pointer(frame[AUX], np.int64), frame[N_AUX]),
            numba.carray(_pointer(frame[ADDRESSES], np.int64), frame[N_ADDRESSES]),
            numba.carray(_pointer(frame[OFFSETS], np.int64), frame[N_OFFSETS]),
            numba.carray(_pointer(frame[TOUCHED], np.bool_), frame[N_TOUCHED]),
            numba.carray(_pointer(frame[arena], dtype), frame[size]),
        )

    @inline
    def call(address, rule, row, mask, frame):
        return _call(address, rule, row, mask, frame)


class Table:
    """The families of one interpreter, as an address array the sweep indexes by
    ``2 * family + (dtype is float64)``; 0 means not loaded yet.

    ``families`` is ``((name, float32 function, float64 function), ...)``: plain Python
    functions of ``SIGNATURE``, compiled as ``cfunc`` with numba's cache on first use. The
    families named in ``quick`` (one op's loop) compile in well under a second, the others in a
    few seconds: the line announcing a compile says which."""

    def __init__(self, interpreter: str, families, quick=()):
        self.interpreter = interpreter
        self.quick = frozenset(quick)
        self.names = tuple(name for name, _, _ in families)
        self.functions = tuple(function for _, *pair in families for function in pair)
        self.addresses = np.zeros(len(self.functions), np.int64)
        self._compiled: dict = {}  # slot -> cfunc, kept alive while its address is in use
        self._lock = threading.Lock()

    def slot_name(self, slot: int) -> str:
        return f"{self.interpreter} {self.names[slot // 2]} ({'float64' if slot % 2 else 'float32'})"

    def loaded(self) -> list:
        """The names of the loaded families (``"backward elementwise (float32)"``...)."""
        return [self.slot_name(slot) for slot in range(len(self.functions)) if self.addresses[slot]]

    def load(self, slot: int) -> None:
        """Compile family ``slot``, or load it from numba's cache, and enter its address."""
        with self._lock:
            if self.addresses[slot]:
                return
            function = self.functions[slot]
            if AS_PYTHON:
                _python_functions.append(function)
                self.addresses[slot] = len(_python_functions)
                return
            quick = self.names[slot // 2] in self.quick
            compiled = _compile(function, self.slot_name(slot), "under a second" if quick else "a few seconds")
            self._compiled[slot] = compiled
            self.addresses[slot] = compiled.address


def announce(dispatcher, description: str) -> None:
    """Before the first call of a jitted interpreter in this process: one line on stderr if numba
    has no cached machine code for it, so that nobody stares at a silent prompt while it compiles."""
    if not AS_PYTHON and not dispatcher.overloads and not has_machine_code(dispatcher):
        _say(description)


def has_machine_code(dispatcher) -> bool:
    """Whether numba's cache (or the shipped code behind it) holds machine code for a jitted
    function, so that its first call loads it rather than compile. True where numba's private
    API to ask has changed: then nothing is announced or done differently."""
    try:
        return dispatcher._cache.has_entry()
    except AttributeError:
        return True


def _say(description: str, duration: str = "a few seconds") -> None:
    print(
        f"tapegrad: compiling the {description} (once per install, {duration})...",
        file=sys.stderr,
        flush=True,
    )


def _compile(function, description: str, duration: str):
    from numba.core import sigutils
    from numba.core.ccallback import CFunc

    options = {key: value for key, value in JIT_OPTIONS.items() if key != "nogil"}
    compiled = CFunc(function, sigutils.normalize_signature(SIGNATURE), locals={}, options=options)
    compiled._cache = kernel_cache(function)  # numba's, with the shipped machine code behind it
    start = time.perf_counter()
    if not compiled._cache.has_entry():  # only a real compile is announced
        _say(f"{description} kernels", duration)
    with warnings.catch_warnings():
        # numba's SSA pass flags the ternaries of vmath.tanh once inlined ("variable ... is not
        # in scope", an internal pedantic check): the code is right (tests/test_vmath.py), and a
        # user compiling the kernels once should not be asked to report numba bugs.
        warnings.simplefilter("ignore", numba.core.errors.NumbaIRAssumptionWarning)
        compiled.compile()
    compiled.compile_seconds = time.perf_counter() - start
    return compiled
