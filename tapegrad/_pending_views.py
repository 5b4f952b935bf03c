"""Views of leaves, recorded when an op first reads them, on that op's tape.

``w.t()`` of a leaf ``w`` that requires grad is a view with a row of its own, and a leaf has no
tape. Recorded at once, the view started a tape of its own (a ``Tape``, the leaf's registration,
the view's row), and the op that read it merged that tape into its own (``Tape.absorb``):
``a.t() * b.t()`` of two leaves made three tapes and merged two, ``x * b[0]`` two. PyTorch
makes one node.

So a view of such a leaf (``_views._record_view``: a transpose, a reshape, an index) is a
``PendingView``: the tensor with its values, base and version counter, whose row is not written
yet. The recording paths that can take it (``_record._short_tape``, ``_transposed_source`` and
the arithmetic operators ``_record.install_methods`` gives this class) write it on the tape of
the op that reads it (``settle``), as they register a leaf there, or read its source directly
without it. Anything else that asks for its tape or row (``grad_fn``, a hook, ``retain_grad``,
an op's general path) records it as before, on a tape of its own, before reading: the
properties below. Settled, the object is a plain ``Tensor``.

Only where that record is the same as the one it replaces: eagerly, grad mode on and no
recording or other special mode (``_grad_mode.special_modes``), of a leaf that is no view.
"""

from __future__ import annotations

from weakref import ref as _weakref

from ._grad_mode import anomaly as _anomaly
from ._ops import OPCODE
from ._tape import LOCK, NO_GRAD, Tape
from .tensor import Tensor

# The slots under the properties: while pending, ``_tape`` holds ``(op name, the view's offset
# and strides in elements, whether an op read through its source, the leaf's array it views)``.
_TAPE_SLOT = Tensor.__dict__["_tape"]
_ROW_SLOT = Tensor.__dict__["_row"]


def _settled_tape(view: Tensor):
    with LOCK:  # (a pending view read by two threads at once is recorded once)
        if type(view) is PendingView:
            settle(view, Tape())
    return _TAPE_SLOT.__get__(view)


def _settled_row(view: Tensor) -> int:
    _settled_tape(view)
    return _ROW_SLOT.__get__(view)


def _set_tape(view: Tensor, tape) -> None:
    _settled_tape(view)
    _TAPE_SLOT.__set__(view, tape)


def _set_row(view: Tensor, row: int) -> None:
    _settled_tape(view)
    _ROW_SLOT.__set__(view, row)


class PendingView(Tensor):
    """A view of a leaf not on any tape yet; a ``Tensor`` in every other respect."""

    __slots__ = ()
    _tape = property(_settled_tape, _set_tape)
    _row = property(_settled_row, _set_row)

    def __reduce_ex__(self, protocol):
        _settled_tape(self)  # (pickled as the plain tensor it becomes)
        return self.__reduce_ex__(protocol)


def pending_view(name: str, x: Tensor, out, offset: int, strides) -> Tensor:
    """The view ``out`` of leaf ``x`` made by op ``name`` (``offset`` and ``strides`` in
    elements, as ``_views._record_view`` takes them), pending."""
    view = Tensor.__new__(PendingView)
    view._data = out
    _TAPE_SLOT.__set__(view, (name, (offset, *strides), False, x._data))
    _ROW_SLOT.__set__(view, -1)
    view._requires_grad = True
    counter = x._version_counter
    if counter is None:
        counter = x._version_counter = [0]
    view._version_counter = counter  # a view shares its storage's
    view._base = x
    view._seen_version = counter[0]
    view._hooks = None
    view._retains_grad = False
    return view


def settle(view: Tensor, tape: Tape) -> None:
    """Write pending ``view``'s row on ``tape``, as ``_views._record_view`` would have on a tape
    of its own, reading the leaf's registration there; ``view`` becomes a plain ``Tensor``."""
    name, placement, bypassed, source = _TAPE_SLOT.__get__(view)
    data = view._data
    base = view._base
    if base._data is source:
        row_x = tape.register(base)
    else:  # ``.data`` replaced since (on a tape of its own only: ``replaced``): the leaf's row as
        # the view was made (another shape or dtype: ``Tape.absorb`` keeps it apart), as before
        current, base._data = base._data, source
        try:
            row_x = tape.register(base)
        finally:
            base._data = current
    # A leaf that stopped requiring grad since (``requires_grad_(False)``) is a constant row,
    # which takes no gradient: nor does the view's row then (PyTorch leaves its ``.grad`` None).
    opcode = OPCODE[name] if base._requires_grad else OPCODE[name] | NO_GRAD
    aux = tape.add_aux(placement)
    row = tape.append(opcode, row_x, -1, aux, tape.layout(data.dtype, data.shape), 0.0)
    view.__class__ = Tensor
    view._tape = tape
    view._row = row
    if row >= tape.hold_from:  # (``tensor._recorded``)
        ref = _weakref(view)
        if tape.refs.setdefault(row, ref) is not ref:
            tape.hold(row, view)
    # Its row reads its base as the base is now: a change in place since is in it.
    view._seen_version = view._version_counter[0]
    if bypassed:
        tape.bypass(row)
    if _anomaly[0]:
        tape.note_trace(row)


def bypass(view: Tensor) -> None:
    """Note that an op read pending ``view`` through its source (``Tape.bypassed`` once settled)."""
    name, placement, _, source = _TAPE_SLOT.__get__(view)
    _TAPE_SLOT.__set__(view, (name, placement, True, source))


def replaced(view: Tensor) -> bool:
    """Whether pending ``view``'s leaf holds another array than the one it views (``.data``
    replaced): its row then goes on a tape of its own, where the leaf's row can be the old one."""
    return view._base._data is not _TAPE_SLOT.__get__(view)[3]
