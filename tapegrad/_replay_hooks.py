"""What ``tapegrad.record`` adds to eager ops: comparisons, ``detach`` and guards as tape rows.

Outside a recording these are plain numpy (comparisons are never differentiable). Inside one,
they become rows, so the replay recomputes the values Python control flow looked at and can
tell when a new input would have taken another branch.
"""

from __future__ import annotations

import linecache

import numpy as np

from . import _dtypes
from . import tensor as _tensor
from ._frames import user_frame
from ._grad_mode import active_recording, no_grad, recordings_active, state
from ._ops import OPCODE
from ._record import _input_row, _operand_row, in_place
from ._selection import _result_type
from ._tape import NO_GRAD
from .tensor import Tensor, _recorded, _wrap, install

_COMPARISONS = {
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}


def compare(tensor: Tensor, other, name: str) -> Tensor:
    data = tensor._data
    other_data = other._data if isinstance(other, Tensor) else other
    if isinstance(other, Tensor):
        converted = other_data.dtype != data.dtype
    elif data.dtype.kind == "f":
        converted = False  # (the hot case: no lookups)
    elif type(other) is int:
        low, high = _dtypes.INTEGER_RANGES[data.dtype]
        converted = not low <= other <= high
    else:
        converted = type(other) is float
    if converted:
        data, other_data = _in_common_type(tensor, other)
        if type(other) is int:
            other = other_data  # as the replay compares it too
    out = np.asarray(_COMPARISONS[name](data, other_data))
    tape = state.recording
    if tape is None:
        return _wrap(out)
    if isinstance(other, Tensor):
        if converted:
            # PyTorch's common type, as eager compared above. numpy's promotion made a replay
            # compare a uint8 tensor with the true -3 of a 0-d int64 tensor(-3), where eager
            # compared it with 253 (and a float32 tensor with a 0-d float64 one in float64). In
            # an integer common type, a constant operand is held wrapped, and a value of the tape
            # by a row of that type, which each replay checks to be within the type's range
            # (``Tape._integer_checks``): the replay holds integers as float64 and cannot wrap.
            common = _result_type(tensor, other)
        else:
            common = tensor._data.dtype if tensor._data.dtype.kind == "f" else np.dtype(np.float64)
        # Each operand as the comparison reads it: of the common dtype, at the result's shape
        # (broadcast from a 0-d ``x.max()``). Broadcast to ``out`` itself, it was declared of the
        # boolean result's dtype, held in the other arena than a float32 operand: a replay
        # compared garbage, silently, at the recording's own inputs.
        shaped = np.broadcast_to(np.zeros((), common), out.shape)
        rows = [
            _operand_row(tape, t, t._data if t._data.dtype == common else t._data.astype(common), shaped, False, True)
            for t in (tensor, other)
        ]
        row = tape.append(OPCODE[name] | NO_GRAD, rows[0], rows[1], 0, tape.layout(out.dtype, out.shape), 0.0)
    else:
        # (``data``: converted into the common type above, as eager compared it: an int64 tensor
        # == 16777216.0 in float32, where the replay compared 16777217 in float64)
        data = data if data.dtype.kind == "f" else data.astype(np.float64)
        source = _operand_row(tape, tensor, data, data, False, True)
        row = tape.append(OPCODE[name] | NO_GRAD, source, -1, 0, tape.layout(out.dtype, out.shape), float(other))
    return _recorded(out, tape, row, False)


def _in_common_type(tensor: Tensor, other) -> tuple:
    """``tensor``'s values and ``other`` (a tensor or a Python number) as PyTorch compares them: both
    cast to ``torch.result_type`` of the two, a Python int wrapped into an integer type (``uint8
    tensor < -3`` compares with 253, a 0-d int64 ``tensor(-3)`` likewise). numpy compared the true
    values, in its own promoted type (float32 against a 0-d float64 in float64)."""
    common = _result_type(tensor, other)
    data = tensor._data if tensor._data.dtype == common else tensor._data.astype(common)
    if isinstance(other, Tensor):
        other = other._data if other._data.dtype == common else other._data.astype(common)
    elif type(other) is int and common.kind in "iu":
        other = _dtypes.wrapped_int(other, common)
    return data, other


def detached(tensor: Tensor) -> Tensor:
    tape = state.recording
    if tape is None:
        return _wrap(tensor._data)
    known = tape.detached.get(id(tensor))
    if known is not None:  # x.detach().detach(), x.data.data: an alias of the same source
        tensor = known[1]
    source = _input_row(tape, tensor)
    row = tape.append(
        OPCODE["detach"] | NO_GRAD, source, -1, 0, tape.layout(tensor._data.dtype, tensor._data.shape), 0.0
    )
    alias = _recorded(tensor._data, tape, row, False)
    # Its storage is ``tensor``'s: an in-place change of it is one of ``tensor`` (_record.in_place).
    # The alias is kept alive with the recording, so that its id names it alone; ``source``:
    # the row it was detached from (``_record._refresh_detached``).
    tape.detached[id(alias)] = (alias, tensor, source)
    return alias


def _caller() -> str:
    """The first frame outside tapegrad: the user's line that read the value. Frames walked
    directly: ``traceback.extract_stack`` checked every frame's file on disk (a stat each), a
    tenth of a millisecond per guard, paid by every vmap of a classification loss."""
    frame = user_frame(2)
    if frame is None:
        return "<unknown>"
    filename = frame.f_code.co_filename
    line = linecache.getline(filename, frame.f_lineno, frame.f_globals).strip()
    return f"{filename}:{frame.f_lineno} ({line})"


def guard(tensor: Tensor, kind: str, truth) -> None:
    tape = state.recording
    source = _input_row(tape, tensor)
    data = tensor._data
    layout = tape.layout(data.dtype, data.shape)
    if truth is not None:
        row = tape.append(OPCODE["guard"] | NO_GRAD, source, -1, 0, layout, 1.0 if truth else 0.0)
    else:
        expected = np.array(data, dtype=np.float64)
        constant = tape.append(OPCODE["constant"], -1, -1, 0, tape.layout(expected.dtype, expected.shape), 0.0)
        tape.save(constant, expected)
        row = tape.append(OPCODE["guard"] | NO_GRAD, source, constant, 0, layout, 0.0)
    tape.guards[row] = (kind, _caller(), truth if truth is not None else np.array(data))


# -- Tensor methods: what a recording adds to reading values ---------------------------------

_tensor._record_guard = guard


def _detach(self) -> Tensor:
    result = detached(self) if recordings_active[0] and state.recording is not None else _wrap(self._data)
    if self._version_counter is None:
        self._version_counter = [0]
    result._version_counter = self._version_counter  # detach shares the version counter, as in PyTorch
    return result


def _data(self) -> Tensor:
    """The values, detached, with a counter of their own: changes through ``.data`` are
    invisible to autograd, as in PyTorch."""
    if recordings_active[0] and state.recording is not None:
        return detached(self)
    return _wrap(self._data)


def _set_data(self, value) -> None:
    """``x.data = values``: new values, which autograd does not see. Inside ``tapegrad.record``
    they are recorded as that (``_record.assigned``): a plain assignment left the tape with the
    old values, silently."""
    if not isinstance(value, Tensor):  # (an array was kept as it came: another dtype under this one's name)
        raise TypeError(f"Variable data has to be a tensor, but got {_tensor.typename(value)}")
    data = value._data
    if self._requires_grad and data.dtype.kind not in "fc":  # (PyTorch's check, and message)
        raise RuntimeError("data set to a tensor that requires gradients must be floating point or complex dtype")
    if active_recording() is not None and (_tensor.on_tape(self) or _tensor.on_tape(value)):
        if data.shape != self._data.shape or data.dtype != self._data.dtype:
            raise NotImplementedError(
                "tapegrad.record: x.data = values of another shape or dtype is not recorded; make a new tensor"
            )
        with no_grad():
            in_place(self, lambda t: value.detach().clone(), "Copy")
        return
    self._data = data


def _comparison(name: str):
    return lambda self, other: compare(self, other, name)


def _operator(name: str):
    """``t == other`` and the other operators: elementwise with tensors, numbers and arrays;
    NotImplemented for anything else (None, lists, strings), so that Python decides, as it does
    for PyTorch's: ``t == None`` is False and ``t != None`` True (not a tensor, whose truth
    raises in ``if t != None:``), ``t < None`` a TypeError."""

    def operator(self, other):
        if other is None or isinstance(other, (list, tuple, str)):
            return NotImplemented
        return compare(self, other, name)

    operator.__name__ = f"__{name}__"
    return operator


install(
    {
        "detach": _detach,
        "data": property(_data, _set_data),
        **{f"__{name}__": _operator(name) for name in ("lt", "le", "gt", "ge", "eq", "ne")},
        **{name: _comparison(name) for name in ("lt", "le", "gt", "ge", "eq", "ne")},
    }
)
