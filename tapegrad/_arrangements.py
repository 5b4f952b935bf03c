"""PyTorch's shape arrangements made of views and joins tapegrad records already: broadcasting
(``broadcast_tensors``, ``broadcast_shapes``, ``Tensor.sum_to_size``), rank raising
(``atleast_1d/2d/3d``), splits along a fixed dimension (``hsplit``/``vsplit``/``dsplit``), flips
(``fliplr``/``flipud``), ``dstack``/``row_stack``, and the out-of-place scatters of a slice, a
selection and a diagonal (``slice_scatter``, ``select_scatter``, ``diagonal_scatter``) with
``narrow_copy``.

Views stay views (an in-place change through one reaches its base, as in PyTorch); the scatters
are one gather from the input and the source joined (``_indexing.put``), so the gradient reaches
both: the input where nothing was written, the source everywhere.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

from ._composites import _nonempty, narrow, tensor_split, vstack
from ._indexing import _positions, flip, put
from ._record import broadcast_shape, name_node
from ._shapes import size_arguments
from ._views import cat, expand
from .tensor import Size, Tensor, _normalize_dim, argument_type_name, guard_reads, install

# -- broadcasting ----------------------------------------------------------------------------


def _check_tensor_list(tensors, argument: int = 0) -> None:
    """PyTorch's ``TypeError`` for a non-tensor among a variadic list of tensors."""
    for position, tensor in enumerate(tensors):
        if not isinstance(tensor, Tensor):
            raise TypeError(
                f"expected Tensor as element {position} in argument {argument}, but got {argument_type_name(tensor)}"
            )


def broadcast_tensors(*tensors) -> tuple:
    """The tensors broadcast to one shape, as a tuple: a tensor of that shape already is returned
    itself, the others as expanded views (``ExpandBackward0``; several elements share one memory
    location, so an in-place change of them raises). Follows ``torch.broadcast_tensors``. Raises
    ``TypeError`` for a non-tensor (a list of tensors too) and PyTorch's ``RuntimeError`` for
    shapes that do not broadcast."""
    _check_tensor_list(tensors)
    shape = ()
    for tensor in tensors:  # (pairwise from the left, as PyTorch's infer_size: its message names a and b so)
        shape = tuple(broadcast_shape(shape, tuple(tensor._data.shape)))
    return tuple(tensor if tensor._data.shape == shape else expand(tensor, shape) for tensor in tensors)


def broadcast_shapes(*shapes) -> Size:
    """The shape the given shapes (each an int, a sequence of ints or None, which is skipped)
    broadcast to, without making a tensor; follows ``torch.broadcast_shapes`` (``Size([])`` for
    none). Raises PyTorch's ``RuntimeError`` for a shape that is not a sequence or one that does
    not broadcast, and ``ValueError`` for a negative extent broadcast against 1."""
    shapes = [(shape,) if isinstance(shape, int) else shape for shape in shapes if shape is not None]
    if not shapes:
        return Size([])
    for shape in shapes:
        if not isinstance(shape, Sequence):
            raise RuntimeError(f"Input shapes should be of type ints, a tuple of ints, or a list of ints, got {shape}")
    common = [1] * max(len(shape) for shape in shapes)
    # PyTorch's own loop (torch._refs._broadcast_shapes), so that its errors come in its order
    for position, shape in enumerate(shapes):
        for index in range(-1, -1 - len(shape), -1):
            if shape[index] == common[index]:
                continue
            if common[index] == 1:
                if shape[index] < 0:
                    raise ValueError("Attempting to broadcast a dimension with negative length!")
                common[index] = shape[index]
            if shape[index] != 1 and common[index] != shape[index]:
                raise RuntimeError(
                    f"Attempting to broadcast a dimension of length {shape[index]} at {index}! Mismatching argument "
                    f"at index {position} had {shape}; but expected shape should be broadcastable to {common}"
                )
    return Size(common)


def _broadcast_to(self: Tensor, *size) -> Tensor:
    """``self`` broadcast to ``size`` (separate sizes or one sequence; -1 keeps a size), a view;
    follows ``torch.Tensor.broadcast_to``."""
    return expand(self, size_arguments(size))


def _expandable(size: tuple, shape: tuple) -> bool:
    """Whether ``size`` expands to ``shape`` (PyTorch's ``is_expandable_to``)."""
    if len(size) > len(shape):
        return False
    return all(s == t or s == 1 for s, t in zip(reversed(size), reversed(shape)))


def _sum_to_size(self: Tensor, *size) -> Tensor:
    """``self`` summed to ``size`` (separate sizes or one sequence), a shape that expands to
    ``self``'s: its leading dimensions summed away, and those of size 1 in ``size`` summed with
    the dimension kept; ``self`` itself when the shapes are equal. Integers and bools sum to
    int64, as ``sum``. Follows ``torch.Tensor.sum_to_size`` (``SumBackward1``, ``ViewBackward0``
    when leading dimensions went); raises its ``RuntimeError`` for a size that does not expand to
    ``self``'s shape."""
    size = tuple(operator.index(extent) for extent in size_arguments(size))
    shape = tuple(self._data.shape)
    if not _expandable(size, shape):
        raise RuntimeError(f"size {{{list(size)}}} is not expandable to size {{{list(shape)}}}.")
    if size == shape:
        return self
    if not size:
        return self.sum()
    leading = len(shape) - len(size)
    dims = [*range(leading), *(d for d in range(leading, len(shape)) if size[d - leading] == 1 and shape[d] != 1)]
    # (summed with the dimensions kept, then viewed without the leading ones: PyTorch's sum_to)
    summed = self.sum(tuple(dims), keepdim=True) if dims else self
    return summed.view(size) if leading else summed


# -- rank raising ----------------------------------------------------------------------------


def _at_least(tensor: Tensor, ndim: int) -> Tensor:
    """``tensor`` with unit dimensions added up to ``ndim`` where PyTorch adds them: a 0-d tensor
    reshaped, a 1-D one a row (and, for 3, a row of one column each), a 2-D one given a last unit
    dimension for 3; ``tensor`` itself when it has enough."""
    rank = tensor._data.ndim
    if rank >= ndim:
        return tensor
    if rank == 0:
        return tensor.reshape((1,) * ndim)
    if rank == 1:
        row = tensor.unsqueeze(0)
        return row if ndim == 2 else row.unsqueeze(-1)
    return tensor.unsqueeze(-1)


def _raise_rank(name: str, tensors: tuple, ndim: int):
    """The ``atleast_*`` functions: one tensor, several, or one list or tuple of them."""
    given = tensors[0] if len(tensors) == 1 else tensors
    if isinstance(given, Tensor):
        return _at_least(given, ndim)
    if not isinstance(given, (list, tuple)):
        raise TypeError(
            f"{name}() received an invalid combination of arguments - got ({argument_type_name(given)}), but expected "
            "one of:\n * (Tensor input)\n * (tuple of Tensors tensors)\n"
        )
    _check_tensor_list(given)
    return tuple(_at_least(tensor, ndim) for tensor in given)


def atleast_1d(*tensors):
    """Each tensor with at least one dimension: a 0-d tensor as a view of shape (1,), others
    returned themselves. One tensor gives a tensor; several, or a list or tuple, a tuple.
    Follows ``torch.atleast_1d``; raises ``TypeError`` for anything but tensors."""
    return _raise_rank("atleast_1d", tensors, 1)


def atleast_2d(*tensors):
    """Each tensor with at least two dimensions, as views: 0-d (1, 1), 1-D (n,) a row (1, n);
    others returned themselves. One tensor gives a tensor; several, or a list or tuple, a tuple.
    Follows ``torch.atleast_2d``; raises ``TypeError`` for anything but tensors."""
    return _raise_rank("atleast_2d", tensors, 2)


def atleast_3d(*tensors):
    """Each tensor with at least three dimensions, as views: 0-d (1, 1, 1), 1-D (n,) as
    (1, n, 1), 2-D (m, n) as (m, n, 1); others returned themselves. One tensor gives a tensor;
    several, or a list or tuple, a tuple. Follows ``torch.atleast_3d``; raises ``TypeError`` for
    anything but tensors."""
    return _raise_rank("atleast_3d", tensors, 3)


# -- splits along a fixed dimension ---------------------------------------------------------------


def _split_along(name: str, input: Tensor, indices_or_sections, dim: int, rank: int) -> tuple:  # noqa: A002
    """``tensor_split`` along ``dim`` for ``hsplit``/``vsplit``/``dsplit``, with their checks: at
    least ``rank`` dimensions, and a number of sections that divides the dimension."""
    if input.dim() < rank:
        raise RuntimeError(
            f"torch.{name} requires a tensor with at least {rank} dimension, but got a tensor with {input.dim()} "
            "dimensions!"
        )
    value = indices_or_sections
    if isinstance(value, Tensor) and value.dim() == 0 and value._data.dtype.kind in "iu":
        guard_reads(f"{name}()", value)  # the pieces are a replay's constants
        value = int(value._data)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        sections, extent = int(value), input.shape[dim]
        # (C's remainder: -1 divides everything, and tensor_split then refuses it)
        if sections == 0 or extent % abs(sections):
            raise RuntimeError(
                f"torch.{name} attempted to split along dimension {dim}, but the size of the dimension {extent} is not "
                f"divisible by the split_size {sections}!"
            )
        return tensor_split(input, sections, dim)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, np.integer)) for v in value):
        return tensor_split(input, list(value), dim)
    raise TypeError(
        f"{name}() received an invalid combination of arguments - got (Tensor, {argument_type_name(value)}), but "
        "expected one of:\n * (Tensor input, int sections)\n * (Tensor input, tuple of ints indices)\n"
    )


def hsplit(input: Tensor, indices_or_sections) -> tuple:  # noqa: A002 - PyTorch's names
    """Views of ``input`` split horizontally: along dimension 1, or 0 for a 1-D tensor, into
    ``sections`` equal pieces (an int) or at ``indices`` (a list or tuple), as ``tensor_split``.
    Follows ``torch.hsplit`` (each a ``SliceBackward0``); raises its ``RuntimeError`` for a 0-d
    tensor or sections that do not divide the dimension, ``TypeError`` for other arguments."""
    return _split_along("hsplit", input, indices_or_sections, 0 if input.dim() == 1 else 1, 1)


def vsplit(input: Tensor, indices_or_sections) -> tuple:  # noqa: A002
    """Views of ``input`` (at least 2-D) split along dimension 0, as ``hsplit``; follows
    ``torch.vsplit`` and raises its errors."""
    return _split_along("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input: Tensor, indices_or_sections) -> tuple:  # noqa: A002
    """Views of ``input`` (at least 3-D) split along dimension 2 (depth), as ``hsplit``;
    follows ``torch.dsplit`` and raises its errors."""
    return _split_along("dsplit", input, indices_or_sections, 2, 3)


def _split_method(function):
    """``x.hsplit(2)``, ``x.hsplit([1, 4])`` and ``x.hsplit(1, 4)`` (indices as separate
    arguments), as PyTorch's methods take them."""

    def method(self, *indices_or_sections):
        value = indices_or_sections[0] if len(indices_or_sections) == 1 else indices_or_sections
        return function(self, value)

    method.__name__ = function.__name__
    method.__doc__ = f"Follows ``torch.Tensor.{function.__name__}``: {function.__doc__}"
    return method


# -- flips and stacks ------------------------------------------------------------------------


def fliplr(input: Tensor) -> Tensor:  # noqa: A002
    """``input`` (at least 2-D) reversed along dimension 1, a copy (``FlipBackward0``); follows
    ``torch.fliplr``. Raises its ``RuntimeError`` for fewer dimensions."""
    if input.dim() < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(input, (1,))


def flipud(input: Tensor) -> Tensor:  # noqa: A002
    """``input`` (at least 1-D) reversed along dimension 0, a copy (``FlipBackward0``); follows
    ``torch.flipud``. Raises its ``RuntimeError`` for a 0-d tensor."""
    if input.dim() < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(input, (0,))


def row_stack(tensors) -> Tensor:
    """``vstack``, under its older name; follows ``torch.row_stack``. Raises ``TypeError`` for a
    tensor in place of a sequence of them, ``RuntimeError`` for none."""
    if isinstance(tensors, Tensor):  # (named as row_stack here; vstack's own errors name vstack)
        raise TypeError("row_stack(): argument 'tensors' (position 1) must be tuple of Tensors, not Tensor")
    return vstack(tensors)


def dstack(tensors) -> Tensor:
    """The tensors made at least 3-D (``atleast_3d``: a 1-D one (1, n, 1)) and joined along
    dimension 2, in their promoted dtype; follows ``torch.dstack``. Raises ``TypeError`` for a
    tensor in place of a sequence of them, ``RuntimeError`` for none or shapes that do not
    join."""
    return cat([_at_least(tensor, 3) for tensor in _nonempty("dstack", tensors)], 2)


# -- out-of-place scatters -------------------------------------------------------------------


def _scattered(name: str, input: Tensor, src, written: np.ndarray, node: str) -> Tensor:  # noqa: A002
    """``input`` with the elements at flat positions ``written`` replaced by ``src``'s, which must
    have ``written``'s shape exactly (no broadcast, as PyTorch's scatters); ``src`` cast to
    ``input``'s dtype (its gradient cast back)."""
    if not isinstance(src, Tensor):
        raise TypeError(f"{name}(): argument 'src' (position 2) must be Tensor, not {argument_type_name(src)}")
    if src._data.shape != written.shape:
        raise RuntimeError(
            "expected src to have a size equal to the slice of self. src size = "
            f"{list(src._data.shape)}, slice size = {list(written.shape)}"
        )
    return name_node(put("copy_slices", input, written, src.to(input.dtype)), node)


def slice_scatter(input: Tensor, src: Tensor, dim: int = 0, start=None, end=None, step: int = 1) -> Tensor:  # noqa: A002
    """A copy of ``input`` whose slice ``start:end:step`` along ``dim`` (clipped as Python's
    slices are) is ``src``, of that slice's shape; follows ``torch.slice_scatter``
    (``SliceScatterBackward0``). Raises PyTorch's ``IndexError`` for a 0-d input or ``dim`` out
    of range, ``RuntimeError`` for a step that is not positive or ``src`` of another shape."""
    dim = _normalize_dim(dim, input.dim())
    if input.dim() == 0:
        raise IndexError("slice() cannot be applied to a 0-dim tensor.")
    if step <= 0:
        raise RuntimeError("slice step must be positive")
    written = _positions(input)[(slice(None),) * dim + (slice(start, end, step),)]
    return _scattered("slice_scatter", input, src, written, "SliceScatterBackward0")


def select_scatter(input: Tensor, src: Tensor, dim: int, index: int) -> Tensor:  # noqa: A002
    """A copy of ``input`` whose slice at ``index`` along ``dim`` is ``src`` (of that slice's
    shape, ``dim`` removed); follows ``torch.select_scatter`` (``SelectScatterBackward0``). Raises
    PyTorch's ``IndexError`` for a 0-d input or ``dim``/``index`` out of range, ``RuntimeError``
    for ``src`` of another shape."""
    dim = _normalize_dim(dim, input.dim())
    if input.dim() == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    extent = input.shape[dim]
    if not -extent <= index < extent:
        raise IndexError(
            f"select(): index {index} out of range for tensor of size {list(input.shape)} at dimension {dim}"
        )
    written = _positions(input)[(slice(None),) * dim + (index,)]
    return _scattered("select_scatter", input, src, written, "SelectScatterBackward0")


def diagonal_scatter(input: Tensor, src: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:  # noqa: A002
    """A copy of ``input`` whose diagonal (``input.diagonal(offset, dim1, dim2)``, its last
    dimension the diagonal) is ``src``, of that shape; follows ``torch.diagonal_scatter``
    (``DiagonalScatterBackward0``). Raises ``IndexError`` for dimensions out of range and
    ``RuntimeError`` for equal ones or ``src`` of another shape."""
    first, second = _normalize_dim(dim1, input.dim()), _normalize_dim(dim2, input.dim())
    if first == second:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    written = np.diagonal(_positions(input), offset, first, second)
    return _scattered("diagonal_scatter", input, src, written, "DiagonalScatterBackward0")


def narrow_copy(input: Tensor, dim: int, start, length: int) -> Tensor:  # noqa: A002
    """``narrow(input, dim, start, length)`` as a new tensor, not a view; follows
    ``torch.narrow_copy`` (``NarrowCopyBackward0``). Raises its ``RuntimeError`` for a 0-d input,
    ``dim`` past the last dimension or a ``length`` (negative too) past the end, and
    ``IndexError`` for ``start`` out of range."""
    for position, (name, value) in enumerate((("start", start), ("length", length)), 3):
        if not isinstance(value, (int, np.integer, Tensor)) or isinstance(value, bool):
            raise TypeError(
                f"narrow_copy(): argument '{name}' (position {position}) must be int, not {argument_type_name(value)}"
            )
    if input.dim() == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    if dim >= input.dim():  # (PyTorch's own assertion, worded as it words it)
        raise RuntimeError(
            "Expected dim < static_cast<int64_t>(self_sizes.size()) to be true, but got false.  (Could this error "
            "message be improved?  If so, please report an enhancement request to PyTorch.)"
        )
    dim = _normalize_dim(dim, input.dim())
    if isinstance(start, Tensor):
        guard_reads("narrow_copy()", start)
    start, length, extent = int(start), int(length), input.shape[dim]
    if not -extent <= start <= extent:
        raise IndexError(f"start out of range (expected to be in range of [{-extent}, {extent}], but got {start})")
    start = start + extent if start < 0 else start
    if length < 0 or start + length > extent:  # (no separate message for a negative length, unlike narrow's)
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({extent}).")
    return name_node(narrow(input, dim, start, length).clone(), "NarrowCopyBackward0")


install(
    {
        "broadcast_to": _broadcast_to,
        "sum_to_size": _sum_to_size,
        "hsplit": _split_method(hsplit),
        "vsplit": _split_method(vsplit),
        "dsplit": _split_method(dsplit),
        "fliplr": fliplr,
        "flipud": flipud,
        "slice_scatter": slice_scatter,
        "select_scatter": select_scatter,
        "diagonal_scatter": diagonal_scatter,
        "narrow_copy": narrow_copy,
    }
)

__all__ = [
    "atleast_1d", "atleast_2d", "atleast_3d", "broadcast_shapes", "broadcast_tensors", "diagonal_scatter", "dsplit",
    "dstack", "fliplr", "flipud", "hsplit", "narrow_copy", "row_stack", "select_scatter", "slice_scatter", "vsplit",
]  # fmt: skip
