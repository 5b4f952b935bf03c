"""``torch.compile`` and ``torch.compiler``'s names, for programs that call them.

tapegrad has no graph compiler to hand a model to: its kernels are compiled once per install,
and its tape is replayed without a per-graph compile (``tapegrad.record``). So ``compile``
changes no computation, as ``torch.compile`` promises to change none: a module comes back
wrapped as PyTorch wraps it (``OptimizedModule``, the original at ``_orig_mod``, its state
dict's keys prefixed ``_orig_mod.``), a function as itself.
"""

from __future__ import annotations

from . import nn

__all__ = ["compile", "disable", "is_compiling", "is_dynamo_compiling", "reset"]


class OptimizedModule(nn.Module):
    """``module`` as ``torch.compile`` returns it: calls run ``module``'s forward; attributes
    the wrapper does not have are ``module``'s, read and set, and so is ``training``
    (``torch._dynamo.eval_frame.OptimizedModule``)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self._orig_mod = module

    @property
    def training(self) -> bool:
        original = self.__dict__.get("_modules", {}).get("_orig_mod")
        return True if original is None else original.training

    @training.setter
    def training(self, mode: bool) -> None:
        original = self.__dict__.get("_modules", {}).get("_orig_mod")
        if original is not None:
            original.training = mode

    def forward(self, *args, **kwargs):
        return self._orig_mod(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._orig_mod)

    def __setattr__(self, name: str, value) -> None:
        if name.startswith("_") or hasattr(type(self), name):
            super().__setattr__(name, value)
        else:
            setattr(self._orig_mod, name, value)

    def __getattr__(self, name: str):
        # (only for names not found as usual; none before __init__ ran, as copy and pickle build
        # the object: looking for the original there recursed without end)
        original = self.__dict__.get("_modules", {}).get("_orig_mod")
        if original is None:
            raise AttributeError(f"'OptimizedModule' object has no attribute '{name}'")
        return getattr(original, name)


def compile(  # noqa: A001 - PyTorch's name
    model=None,
    *,
    fullgraph: bool = False,
    dynamic=None,
    backend="inductor",
    mode=None,
    options=None,
    disable: bool = False,
    **kwargs,
):
    """``model`` ready to run: an ``nn.Module`` wrapped in ``OptimizedModule`` (computing the
    same), a function returned as it is; without ``model``, a decorator doing that. Follows
    ``torch.compile``'s signature; the options change nothing here. Raises ``AssertionError``
    for a ``model`` that is not callable, as PyTorch does."""
    if model is None:
        return lambda function: compile(function)
    if not callable(model):
        raise AssertionError(f"A callable function is expected, but {type(model)} is provided.")
    if isinstance(model, nn.Module) and not disable:
        return OptimizedModule(model)
    return model


def disable(fn=None, recursive: bool = True, *, reason=None):
    """``torch.compiler.disable``: ``fn`` as it is (nothing is compiled to leave out), or a
    decorator returning its function."""
    return (lambda function: function) if fn is None else fn


def is_compiling() -> bool:
    """False: no ``torch.compile`` trace is ever running (``torch.compiler.is_compiling``)."""
    return False


def is_dynamo_compiling() -> bool:
    return False


def reset() -> None:
    """``torch.compiler.reset``: there are no compiled graphs to forget."""
