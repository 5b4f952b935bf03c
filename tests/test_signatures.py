"""Public signatures follow PyTorch's: a parameter PyTorch takes only by keyword is keyword-only
here too. Otherwise a call PyTorch refuses runs with its arguments shifted: ``t.sub_(10**9,
[0, 1])`` took the list as ``alpha`` and multiplied it by 10^9 until the process ran out of
memory, where PyTorch raises ``TypeError``."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")


def _overloads(function, name: str) -> list:
    """The parameter lists of ``name(...) -> ...`` lines in PyTorch's docstring."""
    return re.findall(r"^\s*" + re.escape(name) + r"\((.*?)\)\s*->", function.__doc__ or "", re.M)


def _keyword_only(overloads: list) -> set:
    """Parameters after ``*`` in every overload that has them."""
    only, positional = set(), set()
    for overload in overloads:
        before, _, after = overload.partition("*")
        positional |= {part.split("=")[0].strip() for part in before.split(",") if part.strip()}
        only |= {part.split("=")[0].strip() for part in after.split(",") if part.strip()}
    return only - positional


def _cases():
    cases = []
    for name in sorted(dir(tg.Tensor)):
        if name.startswith("_") or not hasattr(torch.Tensor, name):
            continue
        attribute = inspect.getattr_static(tg.Tensor, name)
        if callable(attribute) and not isinstance(attribute, property):
            cases.append((f"Tensor.{name}", attribute, getattr(torch.Tensor, name), name))
    for name in sorted(dir(tg)):
        value = getattr(tg, name)
        if not name.startswith("_") and inspect.isfunction(value) and hasattr(torch, name):
            cases.append((f"tapegrad.{name}", value, getattr(torch, name), name))
    return cases


CASES = _cases()

# Where PyTorch's docstring is stricter than its argument parser, which accepts these by position:
# ``x.std(0, True, True)`` (the ``unbiased`` overload), ``torch.softmax(x, 0, torch.float64)``.
POSITIONAL_IN_PRACTICE = {("std", "keepdim"), ("var", "keepdim"), ("softmax", "dtype")}


@pytest.mark.parametrize(("label", "ours", "theirs", "name"), CASES, ids=[case[0] for case in CASES])
def test_keyword_only_where_pytorch_is(label, ours, theirs, name):
    try:
        signature = inspect.signature(ours)
    except (TypeError, ValueError):
        return
    shifted = [
        parameter
        for parameter in _keyword_only(_overloads(theirs, name))
        if parameter in signature.parameters
        and signature.parameters[parameter].kind
        in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY)
        and (name, parameter) not in POSITIONAL_IN_PRACTICE
    ]
    assert not shifted, f"{label}: {shifted} are keyword-only in PyTorch"


def test_the_reported_call_raises_pytorchs_type_error():
    for module in (tg, torch):
        t = module.ones(2)
        with pytest.raises(TypeError):
            t.sub_(1000000000, [0, 1])
    t = tg.ones(2)
    assert t.sub_(tg.ones(2), alpha=3).tolist() == [-2.0, -2.0]


def test_the_checker_sees_keyword_only_parameters():
    assert _keyword_only(["other, *, alpha=1"]) == {"alpha"}
    assert _keyword_only(["dim=None, *, correction=1, keepdim=False", "dim, unbiased=True, keepdim=False"]) == {
        "correction"
    }
    assert np.isfinite(len(CASES)) and len(CASES) > 100


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.zeros(10**7, 10**7),
        lambda m: m.ones(-1, 2),
        lambda m: m.empty(10**13),
        lambda m: m.full((10**12,), 1.0),
        lambda m: m.randn(10**12),
    ],
)
def test_an_impossible_allocation_raises_pytorchs_error_before_it_is_tried(make):
    # numpy would take the pages lazily from the kernel, and the process be killed on first touch
    with pytest.raises(RuntimeError) as theirs:
        make(torch)
    with pytest.raises(RuntimeError) as ours:
        make(tg)
    message = "negative dimension" if "negative" in str(theirs.value) else "not enough memory: you tried to allocate"
    assert message in str(ours.value)
