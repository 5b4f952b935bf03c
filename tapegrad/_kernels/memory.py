"""Reading a saved value from its address, inside jitted code.

The tape records where each saved value lives (an absolute address, kept valid by the tape
holding the array). This is what lets one compiled call reach thousands of small buffers without
converting a Python list of arrays per call.
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from .config import AS_PYTHON, inline


@intrinsic
def _pointer_like(typingctx, address, like):
    pointer_type = types.CPointer(like.dtype)
    signature = pointer_type(types.int64, like)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer_type))

    return signature, codegen


if AS_PYTHON:

    def value_at(address, numel, like):
        if not address and numel:
            # Compiled, this reads through a null pointer and kills the process; here, where the
            # table tests run the kernels as Python, it fails the test that reached it instead.
            raise AssertionError("a kernel read a value no row saved (its op's rule reads more than it saves)")
        pointer = ctypes.cast(int(address), ctypes.POINTER(np.ctypeslib.as_ctypes_type(like.dtype)))
        return np.ctypeslib.as_array(pointer, (numel,)) if numel else np.empty(0, like.dtype)

    def borrow(array):
        return array

    def check_address(address, numel):
        if not address and numel:
            raise AssertionError("a kernel read a value no row saved (its op's rule reads more than it saves)")

else:

    @inline
    def value_at(address, numel, like):
        """The ``numel`` values of ``like``'s dtype stored at ``address``, as a 1-D array.

        Address 0 is a value no row saved (or an empty one): reading from it is an exception, not
        a read through a null pointer (one compare per saved value a row reads, not per element)."""
        if address == 0 and numel > 0:
            raise AssertionError("a kernel read a value no row saved (its op's rule reads more than it saves)")
        return numba.carray(_pointer_like(address, like), numel)

    @inline
    def check_address(address, numel):
        """What ``value_at`` checks, for a kernel that passes the address on (to BLAS)."""
        if address == 0 and numel > 0:
            raise AssertionError("a kernel read a value no row saved (its op's rule reads more than it saves)")

    @intrinsic
    def borrow(typingctx, array):
        """``array`` without its reference count. Passing arrays to a jitted function that is
        not inlined costs an atomic increment and decrement per array per call; with meminfo-less
        views those become a null test. Measured on the 1000-op chain: 60% of the sweep's time
        was NRT_incref/NRT_decref before this. The caller keeps ``array`` alive.

        An intrinsic (a copy of the array's struct with a null meminfo) rather than
        ``carray`` of its pointer: nine inlined ``carray`` calls took about a second of the
        sweep's cold compile."""
        if not isinstance(array, types.Array) or array.layout != "C":
            return None

        def codegen(context, builder, signature, args):
            source = context.make_array(array)(context, builder, args[0])
            view = context.make_array(array)(context, builder)
            context.populate_array(
                view,
                data=source.data,
                shape=source.shape,
                strides=source.strides,
                itemsize=source.itemsize,
                meminfo=None,
            )
            return view._getvalue()

        return array(array), codegen
