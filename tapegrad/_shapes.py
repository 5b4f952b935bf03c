"""Strides of shapes laid out contiguously, and of broadcasts: the geometry view rows record."""

from __future__ import annotations

import functools


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
