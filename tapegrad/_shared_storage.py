"""Inside ``tapegrad.record``: tensors that share a storage the recording cannot see through.

A recording follows the storage of a tensor's views (``_base``) and of its ``.data`` and
``.detach()`` aliases made inside it: a change through one is a change of the others, on the
tape. Two other ways let one storage stand behind unrelated tensors, and there the replay and
eager part silently:

- aliases made before the recording (``b = a.detach()`` outside, both captured): ``b.add_(x)``
  changes ``a`` in eager, while the tape holds ``a`` at the value it had when first read;
- a captured tensor that is also an example input: the function receives a copy of the input,
  so a change of either is invisible to the other (``torch.func`` shares the storage).

Reads alone are harmless (a captured tensor is a constant of the tape, as in ``torch.func``).
The recording refuses with ``NotImplementedError`` a write through one name to a storage
another name was read through, before the write is made; and a first read through one name of
a storage written through another with values that depend on the inputs (written with
constants, the value read is the replay's at every input). No replay then differs from eager.
"""

from __future__ import annotations

import numpy as np

from ._ops import OPCODE
from ._tape import OPCODE_MASK, ROW_WIDTH

_MESSAGE = (
    "tapegrad.record: the function changes in place a tensor whose storage another tensor it "
    "reads also holds ({what}); the replay would not see the change through the other name. "
    "Clone one of them before the recording, or pass the tensor as an input only once"
)


class SharedStorage:
    """The tensors of one recording whose storages may meet: the captured ones (as the tape
    registers them), the example inputs (each standing for the array it was copied from) and
    every tensor written in place."""

    __slots__ = ("tape", "input_rows", "detached", "readers", "inputs", "written")

    def __init__(self, tape, inputs: dict):
        self.tape, self.input_rows = tape, set()  # the inputs' rows, once registered
        self.detached = tape.detached  # id(alias) -> (alias, source, row)
        self.readers: list = []  # captured tensors
        self.inputs = inputs  # id(input tensor) -> (the tensor, the array it was copied from)
        self.written: dict = {}  # id(root tensor) -> a tensor written in place

    def _storage(self, tensor) -> np.ndarray:
        known = self.inputs.get(id(tensor))
        return tensor._data if known is None else known[1]

    def _root(self, tensor):
        """The tensor whose storage changes reach ``tensor`` through what the tape follows."""
        while True:
            known = self.detached.get(id(tensor))
            if known is not None:
                tensor = known[1]
            elif tensor._base is not None:
                tensor = tensor._base
            else:
                return tensor

    def _overlapping(self, tensor, others) -> list:
        storage, root = self._storage(tensor), self._root(tensor)
        return [
            other
            for other in others
            if other is not tensor
            and np.may_share_memory(self._storage(other), storage)
            and self._root(other) is not root
        ]

    def _depends_on_inputs(self, tensor) -> bool:
        """Whether ``tensor``'s values on the tape are computed from an input's (rows walked
        up from its row; ``where`` also reads its mask row, ``iparam`` rows back)."""
        tape = self.tape
        if tensor._tape is not tape:
            return False
        pending, seen, where = [tensor._row], set(), OPCODE["where"]
        while pending:
            row = pending.pop()
            if row in self.input_rows:
                return True
            if row < 0 or row in seen:
                continue
            seen.add(row)
            pending.extend(tape.sources(row))
            fields = tape.ints[row * ROW_WIDTH : row * ROW_WIDTH + 4]
            if fields[0] & OPCODE_MASK == where:
                pending.append(row - fields[3])
        return False

    def read(self, tensor) -> None:
        """``tensor`` is captured: refuse if a tensor of its storage was written before with
        values computed from the inputs (its first value is the tape's constant)."""
        if any(self._depends_on_inputs(other) for other in self._overlapping(tensor, self.written.values())):
            raise NotImplementedError(_MESSAGE.format(what="written from the inputs before it was first read"))
        self.readers.append(tensor)

    def wrote(self, tensor, before: bool = False) -> None:
        """``tensor`` is about to be (``before``) or was changed in place: refuse if an unrelated
        tensor reads its storage. Checked before the write where the in-place paths allow (so a
        refused recording changes nothing), and after it for every write (the version count)."""
        inputs = [known[0] for known in self.inputs.values()]
        if self._overlapping(tensor, self.readers + inputs):
            raise NotImplementedError(_MESSAGE.format(what="captured, or an example input"))
        if not before:
            self.written.setdefault(id(self._root(tensor)), tensor)
