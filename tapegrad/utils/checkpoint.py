"""``torch.utils.checkpoint``: activation checkpointing, with PyTorch's signatures.

PyTorch's checkpoint frees a segment's intermediate values after the forward and recomputes
them during the backward, trading compute for memory. tapegrad runs the segment once and keeps
its graph: the values and gradients are the same (the recomputation replays the same ops, with
the same random state), so programs written for checkpointing run unchanged and correctly, but
without the memory saving."""

from __future__ import annotations

import warnings


def checkpoint(function, *args, use_reentrant=None, context_fn=None, determinism_check: str = "default",
               debug: bool = False, preserve_rng_state: bool = True, **kwargs):  # fmt: skip
    """``function(*args, **kwargs)``, its graph kept (no recomputation: see the module's
    docstring); follows ``torch.utils.checkpoint.checkpoint``, warning as PyTorch does when
    ``use_reentrant`` is not passed. Raises ``ValueError`` for keyword arguments with
    ``use_reentrant=True``, as PyTorch."""
    if use_reentrant is None:
        warnings.warn(
            "torch.utils.checkpoint: the use_reentrant parameter should be passed explicitly. use_reentrant=False "
            "is recommended, but if you need to preserve the current default behavior, you can pass "
            "use_reentrant=True. Refer to docs for more details on the differences between the two variants.",
            stacklevel=2,
        )
        use_reentrant = True
    if use_reentrant and kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
    return function(*args, **kwargs)


def checkpoint_sequential(functions, segments: int, input, use_reentrant=None, **kwargs):  # noqa: A002
    """The modules (or functions) of ``functions`` (a Sequential or a list) applied in turn,
    in ``segments`` checkpointed segments; follows ``torch.utils.checkpoint.checkpoint_sequential``."""
    modules = list(functions.children()) if hasattr(functions, "children") else list(functions)
    value = input
    for module in modules:
        value = checkpoint(module, value, use_reentrant=True if use_reentrant is None else use_reentrant)
    return value
