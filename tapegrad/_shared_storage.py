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
The recording refuses a write that meets a read of the same storage through an unrelated
tensor, in either order, with ``NotImplementedError``: no replay then differs from eager.
"""

from __future__ import annotations

import numpy as np

_MESSAGE = (
    "tapegrad.record: the function changes in place a tensor whose storage another tensor it "
    "reads also holds ({what}); the replay would not see the change through the other name. "
    "Clone one of them before the recording, or pass the tensor as an input only once"
)


class SharedStorage:
    """The tensors of one recording whose storages may meet: the captured ones (as the tape
    registers them), the example inputs (each standing for the array it was copied from) and
    every tensor written in place."""

    __slots__ = ("detached", "readers", "inputs", "written")

    def __init__(self, detached: dict, inputs: dict):
        self.detached = detached  # the tape's: id(alias) -> (alias, source, row)
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

    def _refuse_overlap(self, tensor, others, what: str) -> None:
        storage, root = self._storage(tensor), self._root(tensor)
        for other in others:
            if other is not tensor and np.may_share_memory(self._storage(other), storage):
                if self._root(other) is not root:
                    raise NotImplementedError(_MESSAGE.format(what=what))

    def read(self, tensor) -> None:
        """``tensor`` is captured: refuse if a tensor of its storage was written before."""
        self._refuse_overlap(tensor, self.written.values(), "written before it was first read")
        self.readers.append(tensor)

    def wrote(self, tensor) -> None:
        """``tensor`` was changed in place: refuse if an unrelated tensor reads its storage."""
        inputs = [known[0] for known in self.inputs.values()]
        self._refuse_overlap(tensor, self.readers + inputs, "captured, or an example input")
        self.written.setdefault(id(self._root(tensor)), tensor)
