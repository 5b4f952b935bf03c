"""Tiered compilation (tapegrad/_kernels/tiers.py): on an empty numba cache a small sweep runs as
Python while a background process compiles its interpreter, and later sweeps load that code.

The suite runs with the tiers off (conftest.py); each test here starts fresh interpreters with
them on, an empty cache of their own, and no shipped machine code (which would make the
interpreters ready at once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from tapegrad._kernels import tiers


def _process(code: str, cache) -> dict:
    """``code`` in a new interpreter on numba cache ``cache``; the JSON it prints last."""
    environment = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(cache),
        "TAPEGRAD_SHIPPED_KERNELS": "0",
        "TAPEGRAD_BACKGROUND_COMPILE": "1",
    }
    result = subprocess.run(
        # (a ResourceWarning of the background process's handle at exit would print as ignored)
        [sys.executable, "-W", "error::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        timeout=600,
    )
    return {**json.loads(result.stdout.splitlines()[-1]), "stderr": result.stderr}


_FIRST = """
import json, numpy as np, tapegrad as tg
from tapegrad._kernels import backward, forward, tiers
x = tg.linspace(-1.0, 1.0, 64, requires_grad=True)
(x.exp() * x).sum().backward()
eager = x.grad.numpy().tolist()
tape = tg.record(lambda x: (x.exp() * x).sum(), np.linspace(-1.0, 1.0, 64, dtype=np.float32))
value, (grad,) = tape.value_and_grad(np.linspace(-1.0, 1.0, 64, dtype=np.float32))
# hooks: the slots laid out by one call, then the rows swept above each hooked row
h = tg.ones(3, requires_grad=True)
y = h * 2
y.register_hook(lambda g: g * 10)
(y * y).sum().backward()
as_python = not backward._run.overloads and not forward._sweep.overloads
print(json.dumps({"eager": eager, "replayed": grad.tolist(), "value": float(value), "hooked": h.grad.tolist(),
                  "as_python": as_python, "compiles": tiers.wait()}))
"""

_AGAIN = """
import json, numpy as np, tapegrad as tg
from tapegrad._kernels import backward, forward
x = tg.linspace(-1.0, 1.0, 64, requires_grad=True)
(x.exp() * x).sum().backward()
tape = tg.record(lambda x: (x.exp() * x).sum(), np.linspace(-1.0, 1.0, 64, dtype=np.float32))
tape.value_and_grad(np.linspace(-1.0, 1.0, 64, dtype=np.float32))
hits = lambda d: sum(d.stats.cache_hits.values())
misses = lambda d: sum(d.stats.cache_misses.values())
print(json.dumps({"eager": x.grad.numpy().tolist(), "hits": [hits(backward._run), hits(forward._sweep)],
                  "misses": [misses(backward._run), misses(forward._sweep)]}))
"""


def test_a_fresh_install_runs_small_sweeps_as_python_and_compiles_them_in_the_background(tmp_path):
    first = _process(_FIRST, tmp_path)
    assert first["as_python"], "the first sweeps waited for numba"
    assert first["compiles"] == [0]  # the background process compiled all it was asked
    assert "compiling in the background (once per install" in first["stderr"]
    assert "Exception ignored" not in first["stderr"]
    x = np.linspace(-1.0, 1.0, 64, dtype=np.float32)
    expected = np.exp(x) * (1 + x)  # d/dx of x e^x
    np.testing.assert_allclose(first["eager"], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(first["replayed"], expected, rtol=1e-5, atol=1e-7)
    assert first["value"] == pytest.approx(float((x * np.exp(x)).sum()), rel=1e-6)
    assert first["hooked"] == [80.0, 80.0, 80.0]  # d(4h^2)/dh = 8h, times the hook's 10
    # The next process loads what the background compiled, compiling neither interpreter.
    again = _process(_AGAIN, tmp_path)
    assert again["hits"] == [1, 1] and again["misses"] == [0, 0]
    assert "compiling the backward interpreter" not in again["stderr"]
    np.testing.assert_allclose(again["eager"], first["eager"], rtol=1e-6)


def test_a_large_sweep_compiles_in_the_process_rather_than_run_as_python(tmp_path):
    code = """
import json, tapegrad as tg
from tapegrad._kernels import backward, tiers
x = tg.zeros(30_000, requires_grad=True)
y = x.exp()
y.backward(tg.full((30_000,), 3.0))
print(json.dumps({"compiled": bool(backward._run.overloads), "compiles": tiers.wait(), "grad": float(x.grad[7])}))
"""
    assert 30_000 > tiers.PYTHON_WORK
    result = _process(code, tmp_path)
    assert result == {**result, "compiled": True, "compiles": [], "grad": 3.0}  # nothing in the background
    assert "compiling the backward interpreter (once per install" in result["stderr"]


class _Server:
    """A background compile process that has been asked for the backward interpreter and is
    still compiling it."""

    def __init__(self):
        self.sent = {"backward": set()}
        self.waited = False

    def ready(self, interpreter):
        return self.waited

    def wait_for(self, interpreter):
        self.waited = True


class _Interpreter:
    """A dispatcher with no machine code in numba's cache."""

    class _cache:  # noqa: N801 - numba's attribute name
        @staticmethod
        def has_entry():
            return False


@pytest.fixture
def tiers_on(monkeypatch):
    monkeypatch.setattr(tiers, "ENABLED", True)
    monkeypatch.setattr(tiers, "_server", [_Server()])
    monkeypatch.setattr(tiers, "_spent", [0.0])
    monkeypatch.setattr(tiers, "_signatures", {})  # so that no request reaches a server here
    return tiers


def test_the_python_tier_is_taken_only_while_it_pays(tiers_on, capsys):
    server = tiers_on._server[0]
    assert tiers_on.as_python("backward", _Interpreter, tiers_on.PYTHON_WORK) is not None
    # Too large to run as Python: wait for the compile that started first, never compile twice.
    assert tiers_on.as_python("backward", _Interpreter, tiers_on.PYTHON_WORK + 1) is None
    assert server.waited
    assert "waiting for the background compile of the backward interpreter" in capsys.readouterr().err
    # Once it is done, the interpreter's own code runs.
    assert tiers_on.as_python("backward", _Interpreter, 1) is None


def test_a_process_stops_running_sweeps_as_python_after_its_budget(tiers_on):
    tiers_on._spent[0] = tiers_on.PYTHON_BUDGET + 0.1
    assert tiers_on.as_python("backward", _Interpreter, 1) is None
    assert tiers_on._server[0].waited


def test_no_python_tier_where_machine_code_exists_or_tiers_are_off(tiers_on, monkeypatch):
    class Cached(_Interpreter):
        class _cache:  # noqa: N801
            @staticmethod
            def has_entry():
                return True

    assert tiers_on.as_python("forward", Cached, 1) is None  # not asked of the server: the cache has it
    assert tiers_on.as_python("forward", _Interpreter, 1) is not None
    monkeypatch.setattr(tiers_on, "ENABLED", False)
    assert tiers_on.as_python("forward", _Interpreter, 1) is None


def test_a_python_sweep_that_raises_leaves_what_it_wrote_for_the_compiled_one(tiers_on):
    """The compiled interpreter then runs the sweep again and reports the error as a status."""
    freed = np.zeros(4, np.bool_)

    def sweep(freed):
        freed[1:] = True
        return 1.0 / 0.0  # Python's ZeroDivisionError, where numba's numpy error model gives inf

    assert tiers_on.run("backward", sweep, (freed,), (freed,)) is None
    assert not freed.any()


def test_python_sweeps_warn_of_no_overflow_as_compiled_ones_do(tiers_on):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tiers_on.run("forward", lambda: np.float32(3e38) * np.float32(10), ()) == np.inf


def test_a_short_script_leaves_its_compile_in_the_cache_and_a_fork_its_replies(tmp_path):
    """The background process outlives a script that does not wait for it, and completes what
    it was asked; a child forked meanwhile starts its own instead of reading the parent's."""
    code = """
import json, multiprocessing, os, tapegrad as tg
from tapegrad._kernels import backward, tiers
def small(_):
    x = tg.ones(3, requires_grad=True)
    (x * x).sum().backward()
    return x.grad.tolist()
small(0)
with multiprocessing.get_context("fork").Pool(1) as pool:
    forked = pool.map(small, [0])
x = tg.linspace(-1.0, 1.0, 30_000, requires_grad=True)  # too large for Python: waits for the server
(x.exp() * x).sum().backward()
print(json.dumps({"forked": forked, "server": tiers._server[0].process.pid, "grad": float(x.grad[0])}))
"""
    first = _process(code, tmp_path)
    assert first["forked"] == [[2.0, 2.0, 2.0]]
    assert first["grad"] == pytest.approx(0.0, abs=1e-6)  # e^x (1 + x) at -1
    for _ in range(1200):  # it ends on its own, its requests done (IDLE seconds after the last)
        try:
            os.kill(first["server"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    again = _process(_AGAIN, tmp_path)
    assert again["hits"][0] == 1 and again["misses"][0] == 0
    assert "compiling the backward" not in again["stderr"]  # its families too were compiled
