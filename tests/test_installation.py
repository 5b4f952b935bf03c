"""Installed read-only, or with NUMBA_DISABLE_JIT=1, tapegrad still imports and differentiates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import tapegrad

PACKAGE = os.path.dirname(tapegrad.__file__)


def _run(code: str, env_updates: dict, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(env_updates)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_import_does_not_import_numba():
    result = _run(
        "import sys, tapegrad; x = tapegrad.ones(2, requires_grad=True); y = (x * x).sum(); print('numba' in sys.modules)",
        {},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_cache_directory_falls_back_when_the_package_is_read_only(monkeypatch, tmp_path):
    from tapegrad._kernels import config

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    writable = {str(tmp_path / "home" / ".cache" / "tapegrad-numba"): False}
    monkeypatch.setattr(
        config,
        "_writable",
        lambda directory: writable.get(directory, "tapegrad-numba" in directory and "home" not in directory),
    )
    config.choose_cache_dir()
    chosen = os.environ["NUMBA_CACHE_DIR"]
    assert "tapegrad-numba" in chosen and not chosen.startswith(str(tmp_path / "home"))


def test_a_read_only_copy_of_the_package_computes_gradients(tmp_path):
    # Root ignores file modes, so the read-only package directory is simulated by making its
    # __pycache__ a file: numba cannot write there, and tapegrad must choose another place.
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "tapegrad", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "tapegrad" / "_kernels" / "__pycache__").write_text("not a directory")
    code = """
        import os, tapegrad
        x = tapegrad.tensor([1.0, 2.0], requires_grad=True)
        (x * x).sum().backward()
        print(x.grad.tolist(), os.environ.get("NUMBA_CACHE_DIR", ""))
    """
    result = _run(code, {"PYTHONPATH": str(site), "HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    grads, cache = result.stdout.strip().rsplit(" ", 1)
    assert grads == "[2.0, 4.0]"
    assert "tapegrad-numba" in cache


@pytest.mark.parametrize("case", ["x * y + x.sin()", "(a @ b).tanh().sum(0)", "x.reshape(2, 2).t()[0] * 3.0"])
def test_gradients_are_right_with_the_jit_disabled(case):
    code = f"""
        import numpy as np, tapegrad as tg
        x = tg.tensor([0.5, -1.0, 2.0, 0.25], dtype=tg.float64, requires_grad=True)
        y = tg.tensor([1.5, 2.0, -0.5, 1.0], dtype=tg.float64, requires_grad=True)
        a = tg.tensor(np.arange(6.0).reshape(2, 3) / 6, requires_grad=True)
        b = tg.tensor(np.arange(12.0).reshape(3, 4) / 12, requires_grad=True)
        out = {case}
        out.backward(tg.ones_like(out))
        grads = [t.grad for t in (x, y, a, b) if t.grad is not None]
        print(repr([g.tolist() for g in grads]))
    """
    jitted = _run(code, {})
    interpreted = _run(code, {"NUMBA_DISABLE_JIT": "1"})
    assert jitted.returncode == 0 and interpreted.returncode == 0, jitted.stderr + interpreted.stderr
    assert interpreted.stdout == jitted.stdout


def test_a_changed_kernel_source_is_never_served_from_a_stale_cache(tmp_path):
    # numba alone checks a cached function against its own file; tapegrad stamps the cache with
    # every kernel source. Change strided.py (called by backward.py, itself unchanged) and the
    # transposed view's gradient must change with it.
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "tapegrad")  # with the warm cache, timestamps preserved
    code = """
        import tapegrad as tg
        x = tg.ones(2, 3, requires_grad=True)
        (x.t() * 1.0).sum().backward()
        print(x.grad.sum().item())
    """
    env = {"PYTHONPATH": str(site)}
    before = _run(code, env, cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert before.stdout.strip() == "6.0"
    strided = site / "tapegrad" / "_kernels" / "strided.py"
    source = strided.read_text()
    # the loops a transpose takes (``_accumulate_blocks``: its blocks and its ragged edge)
    line = "dst[d + np.uint64(j)] += scale * src[s + np.uint64(j * src_column)]"
    assert line in source
    strided.write_text(source.replace(line, line.replace("+= scale", "+= 2 * scale")))
    after = _run(code, env, cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "12.0"


def test_the_kernels_blas_runs_on_one_thread():
    """numba's np.dot uses scipy's OpenBLAS, a thread pool beside numpy's; on few cores their
    spinning threads contended (a 128x512 ``a @ b.t()`` step took 12 ms instead of 1.1)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x = tapegrad.ones(2, 2, requires_grad=True)
    (x @ x).sum().backward()
    pools = [pool for pool in threadpoolctl.threadpool_info() if "libscipy_openblas-" in pool["filepath"]]
    if not pools:
        pytest.skip("scipy is built against another BLAS here")
    assert all(pool["num_threads"] == 1 for pool in pools), pools


def test_code_compiled_under_other_numba_settings_is_cached_apart(tmp_path):
    # numba keys its cache by CPU, not by its code-generation settings: a run under
    # NUMBA_ENABLE_PROFILING (every function noinline) left its slower code for every later
    # run. Each setting must find only its own entry.
    code = """
        import numpy as np
        from tapegrad._kernels import batched
        batched._fill(np.ones(4), 0, 4)
        print(sum(batched._fill.stats.cache_hits.values()))
    """
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "TAPEGRAD_SHIPPED_KERNELS": "0"}
    profiling = {**env, "NUMBA_ENABLE_PROFILING": "1"}
    hits = []
    for settings in (profiling, env, profiling, env):
        done = _run(code, settings)
        assert done.returncode == 0, done.stderr
        hits.append(int(done.stdout.split()[-1]))
    assert hits == [0, 0, 1, 1]


def test_kernels_compile_under_numba_profiling(tmp_path):
    # NUMBA_ENABLE_PROFILING (perf's symbols for jitted code) marks every function noinline;
    # the kernels' always-inline marker on top of it made LLVM refuse to compile them.
    done = _run(
        "import tapegrad as tg, tapegrad.nn.functional as F\n"
        "print(F.log_softmax(tg.tensor([[1.0, 2.0, 3.0]]), 1).tolist())",
        {"NUMBA_ENABLE_PROFILING": "1", "NUMBA_CACHE_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "-0.407" in done.stdout
