"""The autograd tutorial (shared/seed) prints what PyTorch 2.13 prints, line for line."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

import pytest

import tapegrad
from tapegrad import _tutorial

EXPECTED = pathlib.Path(__file__).parent / "data" / "tutorial_expected.txt"


def _printed(module) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        _tutorial.run(module)
    return re.sub(r"0x[0-9a-fA-F]+", "0xADDRESS", buffer.getvalue())


def test_tutorial_prints_pytorchs_output():
    # The expected text was produced by PyTorch 2.13 running the same function.
    assert _printed(tapegrad) == EXPECTED.read_text()


def test_tutorial_matches_live_pytorch():
    torch = pytest.importorskip("torch")
    assert _printed(tapegrad) == _printed(torch)


def test_tutorial_runs_with_import_as_torch():
    namespace: dict = {}
    source = "import tapegrad as torch\nx = torch.ones(2, 2, requires_grad=True)\nout = (x ** 2 * 3).mean()\nout.backward()\n"
    exec(source, namespace)
    assert namespace["x"].grad.tolist() == [[1.5, 1.5], [1.5, 1.5]]
