"""``torch.utils.checkpoint``: activation checkpointing, with PyTorch's signatures.

PyTorch's checkpoint frees a segment's intermediate values after the forward and recomputes
them during the backward, trading compute for memory. tapegrad runs the segment once and keeps
its graph: the values and gradients are the same (the recomputation replays the same ops, with
the same random state), so programs written for checkpointing run unchanged and correctly, but
without the memory saving. As PyTorch's reentrant variant (``use_reentrant=True``, the default),
a segment none of whose inputs requires grad runs without grad: its parameters get no gradient."""

from __future__ import annotations

import warnings

from .._grad_mode import no_grad
from ..tensor import Tensor


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
    if use_reentrant and not any(isinstance(arg, Tensor) and arg.requires_grad for arg in args):
        # PyTorch's reentrant variant runs the segment without grad when no input requires it:
        # its output then requires none, and the parameters inside get no gradient
        warnings.warn("None of the inputs have requires_grad=True. Gradients will be None", stacklevel=2)
        with no_grad():
            return function(*args)
    return function(*args, **kwargs)


def checkpoint_sequential(functions, segments: int, input, use_reentrant=None, **kwargs):  # noqa: A002
    """The modules (or functions) of ``functions`` (a Sequential or a list) applied in turn, in
    ``segments`` segments of ``len // segments`` each, every one but the last checkpointed (the
    last runs as it is); follows ``torch.utils.checkpoint.checkpoint_sequential``."""
    modules = list(functions.children()) if hasattr(functions, "children") else list(functions)
    if use_reentrant is None:
        use_reentrant = True
    size = len(modules) // segments

    def run(first: int, last: int):
        def segment(value):
            for module in modules[first : last + 1]:
                value = module(value)
            return value

        return segment

    end = -1
    value = input
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        value = checkpoint(run(start, end), value, use_reentrant=use_reentrant)
    return run(end + 1, len(modules) - 1)(value)
