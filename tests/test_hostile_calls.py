"""Public Tensor methods called with hostile arguments (huge, negative and boundary numbers,
NaN and inf, 0-d, empty, non-contiguous, reversed and read-only inputs, wrong types and dtypes)
give a result or raise a Python exception: never a crash of the process. A crash here kills the
test run, which is the failure. Results that require grad are also backwarded, so the kernels
see the hostile shapes too."""

from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapegrad as tg

# Numbers at the edges: beyond memory (2^40 elements and up), negative, zero, one, the int64 ends.
HOSTILE_INTS = (0, 1, 2, -1, -2, 3, 1 << 40, -(1 << 40), (1 << 63) - 1, -(1 << 63))
HOSTILE_FLOATS = (float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 0.5)
SKIP = {"register_hook", "backward", "apply_", "map_", "numpy", "tolist", "item", "data", "T", "mT", "grad", "grad_fn"}
METHODS = sorted(
    name
    for name in dir(tg.Tensor)
    if not name.startswith("_") and name not in SKIP and callable(getattr(tg.Tensor, name, None))
)


@st.composite
def tensors(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.bool_]))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=1))
    array = np.resize(np.array(values, np.float64), shape).astype(dtype)
    layout = draw(st.sampled_from(["plain", "transposed", "reversed", "read-only", "big-endian"]))
    if layout == "transposed":
        array = array.T
    elif layout == "reversed" and array.ndim:
        array = array[::-1]
    elif layout == "read-only":
        array.flags.writeable = False
    elif layout == "big-endian":
        array = array.astype(array.dtype.newbyteorder(">"))
    try:
        tensor = tg.from_numpy(array) if draw(st.booleans()) else tg.tensor(array)
    except ValueError:  # from_numpy refuses another byte order, as PyTorch does
        tensor = tg.tensor(array)
    if dtype in (np.float32, np.float64) and draw(st.booleans()):
        tensor = tensor.detach().requires_grad_()
    return tensor


def arguments():
    leaf = st.one_of(
        st.sampled_from(HOSTILE_INTS),
        st.sampled_from(HOSTILE_FLOATS),
        st.none(),
        st.sampled_from(["x", "cpu", ""]),
        st.sampled_from([tg.float32, tg.float64, tg.int64, tg.bool]),
        st.lists(st.sampled_from(HOSTILE_INTS), max_size=3),
        tensors(),
    )
    return st.lists(leaf, max_size=3)


# TAPEGRAD_FUZZ_EXAMPLES=50000 for a long run.
@settings(
    max_examples=int(os.environ.get("TAPEGRAD_FUZZ_EXAMPLES", 400)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(tensors(), st.sampled_from(METHODS), arguments())
def test_a_hostile_call_returns_or_raises(tensor, name, args):
    try:
        result = getattr(tensor, name)(*args)
    except Exception:  # noqa: BLE001 - any Python exception is an acceptable answer
        return
    results = result if isinstance(result, (tuple, list)) else (result,)
    for value in results:
        if isinstance(value, tg.Tensor) and value.requires_grad and value.numel() <= 1 << 20:
            try:
                value.sum().backward()
            except Exception:  # noqa: BLE001
                pass
