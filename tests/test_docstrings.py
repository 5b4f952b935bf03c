"""Every public name has a docstring: tapegrad's own say shapes, dtypes, errors and show an
example (their doctests run in tests/test_docs.py); the PyTorch-mirroring ones name the PyTorch
function they follow."""

from __future__ import annotations

import inspect

import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from tapegrad.dask import DataParallel

NAMESPACES = {
    "tapegrad": tg,
    "tapegrad.nn.functional": F,
    "tapegrad.nn": tg.nn,
    "tapegrad.optim": tg.optim,
    "tapegrad.func": tg.func,
}


def _public(namespace) -> list:
    names = getattr(namespace, "__all__", None) or [name for name in dir(namespace) if not name.startswith("_")]
    return [name for name in names if not inspect.ismodule(getattr(namespace, name))]


def _tensor_members() -> list:
    members = []
    for name in dir(tg.Tensor):
        if name.startswith("_"):
            continue
        attribute = inspect.getattr_static(tg.Tensor, name)
        function = attribute.fget if isinstance(attribute, property) else attribute
        if callable(function):
            members.append((name, function))
    return members


@pytest.mark.parametrize(("name", "function"), _tensor_members(), ids=[name for name, _ in _tensor_members()])
def test_every_tensor_method_has_a_docstring(name, function):
    assert (function.__doc__ or "").strip(), f"Tensor.{name} has no docstring"


@pytest.mark.parametrize(
    ("namespace", "name"), [(label, name) for label, module in NAMESPACES.items() for name in _public(module)]
)
def test_every_public_function_and_class_has_a_docstring(namespace, name):
    value = getattr(NAMESPACES[namespace], name)
    if not (callable(value) or inspect.isclass(value)):
        return  # dtypes and constants
    doc = value.__doc__ or ""
    if inspect.isclass(value):
        # A class without one inherits object's or its base's: only its own counts.
        doc = value.__dict__.get("__doc__") or ""
    assert doc.strip(), f"{namespace}.{name} has no docstring"


# tapegrad's own API: shapes or dtypes, the errors raised, and an example.
OWN = [
    tg.record,
    tg.Tape,
    tg.GuardError,
    tg.load_tape,
    tg.autograd.gradcheck,
    tg.autograd.gradgradcheck,
    *(getattr(tg.func, name) for name in tg.func.__all__),
    DataParallel,  # imports without dask installed; needs it only when made
]


@pytest.mark.parametrize("value", OWN, ids=[value.__name__ for value in OWN])
def test_tapegrads_own_api_documents_errors_and_an_example(value):
    doc = value.__doc__
    assert ">>> " in doc, f"{value.__name__}: no example"
    assert "raise" in doc.lower(), f"{value.__name__}: no errors named"
