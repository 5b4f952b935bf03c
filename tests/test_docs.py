"""The examples in the package's docstrings run and print what they say (doctest)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tapegrad

# __main__ runs the demo on import; generate writes generated.py when run.
MODULES = [
    info.name
    for info in pkgutil.walk_packages(tapegrad.__path__, "tapegrad.")
    if not info.name.endswith(("__main__", "_kernels.generate"))
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_replay_api_documents_its_examples_and_errors():
    """tapegrad's own public API (PyTorch's has PyTorch's documentation) shows an example and
    says what it raises."""
    for function in (tapegrad.record, tapegrad.GuardError):
        assert ">>>" in function.__doc__, function
    for function in (tapegrad.record, tapegrad.Tape.value_and_grad, tapegrad.Tape.__call__):
        assert "Raise" in function.__doc__, function
