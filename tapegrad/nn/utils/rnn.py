"""Sequences of different lengths in one batch, as ``torch.nn.utils.rnn``: ``PackedSequence``,
``pack_padded_sequence``, ``pad_packed_sequence``, ``pack_sequence`` and ``pad_sequence``.

A packed batch holds, time step after time step, the elements of the sequences still running
at that step (``batch_sizes[t]`` of them, the sequences sorted longest first), so that
``RNN``, ``LSTM`` and ``GRU`` step only those: a sequence's final state is the one at its own
last step, not after its padding. Packing and padding are recorded ops (selections and joins):
gradients flow through both.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ... import _dtypes, _factories
from ..._record import broadcast_error
from ..._views import cat, stack
from ...tensor import Tensor, _wrap, guard_reads

__all__ = [
    "PackedSequence",
    "pack_padded_sequence",
    "pack_sequence",
    "pad_packed_sequence",
    "pad_sequence",
    "unpack_sequence",
    "unpad_sequence",
]


class _PackedFields(NamedTuple):
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None


class PackedSequence(_PackedFields):
    """``data`` (sum(batch_sizes), *), ``batch_sizes`` (int64, one per time step, decreasing),
    and the permutation that sorted the batch by length (``sorted_indices``) with its inverse
    (``unsorted_indices``, computed when not given), None when it came sorted; follows
    ``torch.nn.utils.rnn.PackedSequence``."""

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = _wrap(np.argsort(_indices(sorted_indices), kind="stable").astype(np.int64))
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs) -> PackedSequence:
        """``data`` moved or cast as ``Tensor.to``; the indices stay."""
        return self._replace(data=self.data.to(*args, **kwargs))

    def float(self) -> PackedSequence:
        return self.to(_dtypes.float32)

    def double(self) -> PackedSequence:
        return self.to(_dtypes.float64)

    def cpu(self) -> PackedSequence:
        return self

    @property
    def is_cuda(self) -> bool:
        return False

    def is_pinned(self) -> bool:
        return False


def _indices(values) -> np.ndarray:
    data = values._data if isinstance(values, Tensor) else np.asarray(values)
    return np.asarray(data, np.int64).reshape(-1)


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False, enforce_sorted: bool = True):  # noqa: A002
    """Pack a padded batch ``input`` (T, B, *) (``batch_first``: (B, T, *)) whose sequence ``b``
    is ``lengths[b]`` steps long (a list or an int64 tensor); with ``enforce_sorted`` the
    lengths must decrease, otherwise the batch is sorted and the permutation kept. Follows
    ``torch.nn.utils.rnn.pack_padded_sequence``; raises its ``RuntimeError`` for unsorted or
    non-positive lengths."""
    if isinstance(lengths, Tensor) and lengths.dim() != 1:
        raise RuntimeError(
            f"'lengths' argument should be a 1D CPU int64 tensor, but got {lengths.dim()}D cpu "
            f"{lengths.dtype.type_name} tensor"
        )
    guard_reads("pack_padded_sequence()", lengths)  # read in numpy: a replay at other lengths must not reuse them
    lengths = _indices(lengths)
    batch_dim = 0 if batch_first else 1
    if len(lengths) != input.shape[batch_dim]:
        raise RuntimeError(
            f"Expected `len(lengths)` to be equal to batch_size, but got {len(lengths)} (batch_size={input.shape[batch_dim]})"
        )
    if enforce_sorted:
        if np.any(lengths[1:] > lengths[:-1]):
            raise RuntimeError(
                "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass "
                "`enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this requirement if "
                "you do not need ONNX exportability."
            )
        sorted_indices = None
    else:
        order = np.argsort(-lengths, kind="stable")
        lengths = lengths[order]
        sorted_indices = _wrap(order.astype(np.int64))
        input = input.index_select(batch_dim, sorted_indices)  # noqa: A001
    if lengths.size and lengths.min() <= 0:
        raise RuntimeError(
            "Length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0"
        )
    if batch_first:
        input = input.transpose(0, 1)  # noqa: A001
    steps = int(lengths[0]) if lengths.size else 0
    if steps > input.shape[0]:
        raise RuntimeError(
            f"Expected sequence length to be smaller than or equal to {input.shape[0]}, got a length of {steps}"
        )
    batch_sizes = np.array([int(np.count_nonzero(lengths > t)) for t in range(steps)], np.int64)
    data = cat([input[t, : int(size)] for t, size in enumerate(batch_sizes)])
    return PackedSequence(data, _wrap(batch_sizes), sorted_indices)  # (it inverts the permutation)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple:  # fmt: skip
    """``(padded, lengths)``: the packed batch padded with ``padding_value`` to (T, B, *)
    (``batch_first``: (B, T, *); T is ``total_length`` if given), in the batch's original
    order, and each sequence's length (int64). Follows
    ``torch.nn.utils.rnn.pad_packed_sequence``; raises its ``ValueError`` for a
    ``total_length`` shorter than the longest sequence."""
    data, batch_sizes = sequence.data, _indices(sequence.batch_sizes)
    steps = len(batch_sizes)
    if total_length is not None:
        if total_length < steps:
            raise ValueError(
                "Expected total_length to be at least the length of the longest sequence in input, but got "
                f"total_length={total_length} and max sequence length being {steps}"
            )
    else:
        total_length = steps
    batch = int(batch_sizes[0]) if steps else 0
    tail = tuple(data.shape[1:])
    rows, start = [], 0
    for size in batch_sizes.tolist():
        part = data[start : start + size]
        start += size
        if size < batch:
            part = cat([part, _factories.full((batch - size, *tail), padding_value, dtype=data.dtype)])
        rows.append(part)
    if total_length > steps:
        rows.extend([_factories.full((batch, *tail), padding_value, dtype=data.dtype)] * (total_length - steps))
    padded = stack(rows) if rows else _factories.zeros(0, 0, *tail, dtype=data.dtype)
    lengths = np.array([int(np.count_nonzero(batch_sizes > b)) for b in range(batch)], np.int64)
    if sequence.unsorted_indices is not None:
        padded = padded.index_select(1, sequence.unsorted_indices)
        lengths = lengths[_indices(sequence.unsorted_indices)]
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, _wrap(lengths)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right"):
    """The tensors ``sequences`` (each (L_i, *)) stacked into (T, B, *) (``batch_first``:
    (B, T, *)), T the longest, padded with ``padding_value`` on ``padding_side``; follows
    ``torch.nn.utils.rnn.pad_sequence``. Raises its ``RuntimeError`` for another padding side
    or no sequences."""
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    if sequences[0].dim() == 0:
        raise RuntimeError("ArrayRef: invalid slice, N = 1; size = 0")
    if any(s.dim() == 0 for s in sequences):
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    trailing = tuple(sequences[0].shape[1:])
    for s in sequences[1:]:  # each is copied into a slice of the first one's shape, as PyTorch's
        target = (s.shape[0], *trailing)
        try:
            shape = np.broadcast_shapes(target, tuple(s.shape))
        except ValueError:
            raise broadcast_error(target, tuple(s.shape)) from None
        if shape != target:
            raise RuntimeError(f"output with shape {list(target)} doesn't match the broadcast shape {list(shape)}")
    dtype = sequences[0].dtype  # the result takes the first sequence's dtype, as PyTorch's does
    sequences = [s if s.dtype == dtype else s.to(dtype) for s in sequences]
    sequences = [s if tuple(s.shape[1:]) == trailing else s.expand(s.shape[0], *trailing) for s in sequences]
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        missing = longest - s.shape[0]
        if missing:
            fill = _factories.full((missing, *s.shape[1:]), padding_value, dtype=s.dtype)
            s = cat([s, fill] if padding_side == "right" else [fill, s])
        padded.append(s)
    return stack(padded, 0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of tensors (each (L_i, *)); with ``enforce_sorted`` they must come longest
    first. Follows ``torch.nn.utils.rnn.pack_sequence``."""
    sequences = list(sequences)
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list:
    """The sequences of a padded batch ((T, B, *), or (B, T, *) with ``batch_first``), each cut
    to its length: a list of (L_i, *) tensors, views on the batch's graph. Follows
    ``torch.nn.utils.rnn.unpad_sequence``."""
    batch = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    return [sequence[: int(length)] for sequence, length in zip(batch, lengths, strict=True)]


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of sequences ``pack_sequence`` packed, in their original order; follows
    ``torch.nn.utils.rnn.unpack_sequence``."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
