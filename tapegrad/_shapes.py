"""Strides of shapes laid out contiguously, and of broadcasts: the geometry view rows record."""

from __future__ import annotations

import functools

import numpy as np


def is_size(value) -> bool:
    """Whether ``value`` is one size: an int, or an integer scalar such as a 0-d integer tensor
    (``torch.zeros(lengths.max())``), as PyTorch reads sizes through ``__index__``."""
    if isinstance(value, int):
        return True
    return hasattr(value, "__index__") and getattr(value, "shape", None) == ()


def expands_to(shape: tuple, target: tuple) -> bool:
    """Whether ``shape`` broadcasts to ``target`` (PyTorch's ``is_expandable_to``)."""
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def size_arguments(sizes: tuple) -> tuple:
    """The sizes of ``f(*sizes)``: separate sizes, or one sequence of them (a list, tuple or
    ``Size``), as PyTorch takes them."""
    return tuple(sizes[0]) if len(sizes) == 1 and not is_size(sizes[0]) else sizes


@functools.lru_cache(maxsize=1024)  # a few shapes recur on every op of a program
def contiguous_strides(shape: tuple) -> tuple:
    strides = []
    running = 1
    for extent in reversed(shape):
        strides.append(running)
        running *= extent
    return tuple(reversed(strides))


def broadcast_strides(shape, target_shape) -> tuple[int, tuple]:
    """Strides reading an array of ``shape`` as ``target_shape`` (0 on broadcast dimensions)."""
    own = contiguous_strides(shape)
    lead = len(target_shape) - len(shape)
    strides = [0] * lead
    for k, extent in enumerate(shape):
        strides.append(0 if extent == 1 and target_shape[lead + k] != 1 else own[k])
    return 0, tuple(strides)


@functools.cache  # two system calls on every tensor factory's call otherwise (zeros, ones...)
def physical_memory() -> int:
    """Bytes of RAM: more than this cannot be allocated for one tensor or one tape's values."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40
