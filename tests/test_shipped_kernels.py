"""Machine code shipped with the package (tapegrad/_kernels/shipped.py): built for a CPU level in
one process, loaded in another with an empty numba cache, and refused wherever it might not fit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tapegrad._kernels import shipped

_V3_HOST = {feature: True for feature in dict(shipped.LEVELS)["x86-64-v3"]}
_V4_HOST = {feature: True for feature in dict(shipped.LEVELS)["x86-64-v4"]}


def test_a_level_is_usable_only_where_the_host_has_every_feature_it_needs():
    assert shipped.usable_levels("x86_64-unknown-linux-gnu", _V3_HOST) == ["x86-64-v3"]
    assert shipped.usable_levels("x86_64-unknown-linux-gnu", _V4_HOST) == ["x86-64-v4", "x86-64-v3"]
    assert shipped.usable_levels("x86_64-unknown-linux-gnu", {**_V4_HOST, "avx512vl": False}) == ["x86-64-v3"]
    assert shipped.usable_levels("x86_64-unknown-linux-gnu", {**_V3_HOST, "fma": False}) == []
    assert shipped.usable_levels("x86_64-unknown-linux-gnu", {}) == []
    assert shipped.usable_levels("aarch64-unknown-linux-gnu", _V4_HOST) == []


def test_numbas_own_restrictions_and_other_settings_keep_shipped_code_out(monkeypatch):
    import numba

    from tapegrad._kernels import config

    before = shipped.stamp(config.KERNEL_DIGEST)
    monkeypatch.setattr(numba.config, "BOUNDSCHECK", 1)  # NUMBA_BOUNDSCHECK=1: code with checks
    shipped.stamp.cache_clear()
    try:
        assert shipped.stamp(config.KERNEL_DIGEST) != before
    finally:
        monkeypatch.undo()
        shipped.stamp.cache_clear()
    assert shipped.stamp(config.KERNEL_DIGEST) == before
    monkeypatch.setattr(numba.config, "ENABLE_AVX", False)  # numba distrusts this CPU's AVX
    assert shipped.host_levels() == []
    monkeypatch.setattr(numba.config, "ENABLE_AVX", True)
    monkeypatch.setattr(numba.config, "CPU_NAME", "nehalem")  # the user restricts the instructions
    assert shipped.host_levels() == []


def _run(code: str, **environment) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "TAPEGRAD_SHIP"))}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=900
    )


_BACKWARD = """
    import tapegrad as tg
    from tapegrad._kernels import shipped
    x = tg.tensor([0.5, 1.0, 2.0], requires_grad=True)
    x.exp().sum().backward()
    print(x.grad.tolist(), len(shipped.loaded))
"""


@pytest.fixture(scope="module")
def level_shipped(tmp_path_factory):
    """A shipped directory holding one backward's kernels for the host's best level."""
    levels = shipped.host_levels()
    if not levels:
        pytest.skip("this CPU runs none of the shipped levels (not an x86-64-v3 machine)")
    level = levels[0]
    directory = tmp_path_factory.mktemp("shipped")
    result = _run(
        _BACKWARD,
        NUMBA_CPU_NAME=level,
        NUMBA_CPU_FEATURES="",
        NUMBA_CACHE_DIR=str(tmp_path_factory.mktemp("ship-cache")),
        TAPEGRAD_SHIP_LEVEL=level,
        TAPEGRAD_SHIPPED_DIR=str(directory),
    )
    assert result.returncode == 0, result.stderr
    assert "compiling the backward interpreter" in result.stderr  # it compiled, with nothing to load
    assert any(name.endswith(".nbi") for name in os.listdir(directory / level))
    return directory, level


def test_a_fresh_cache_loads_the_shipped_code_and_compiles_nothing(level_shipped, tmp_path):
    directory, _ = level_shipped
    result = _run(_BACKWARD, NUMBA_CACHE_DIR=str(tmp_path), TAPEGRAD_SHIPPED_DIR=str(directory))
    assert result.returncode == 0, result.stderr
    assert "compiling" not in result.stderr
    grads, loads = result.stdout.split("] ")
    assert [round(g, 6) for g in eval(grads + "]")] == [1.648721, 2.718282, 7.389056]  # exp's own values
    assert int(loads) >= 2  # the sweep and the exp family
    written = [name for _, _, names in os.walk(tmp_path) for name in names if name.endswith(".nbi")]
    assert written == []  # numba's own cache was never filled: nothing compiled


def test_shipped_code_is_refused_when_the_sources_or_the_cpu_differ(level_shipped, tmp_path):
    code = """
        import tapegrad as tg
        from tapegrad._kernels import backward, config, shipped
        from numba.core.registry import cpu_target
        x = tg.tensor([0.5, 1.0, 2.0], requires_grad=True)
        x.exp().sum().backward()  # loads the sweep, so its signature is known
        (signature,) = backward._run.overloads
        context = cpu_target.target_context
        function = backward._run.py_func
        print(shipped.ShippedCache(function, config.KERNEL_DIGEST).load_overload(signature, context) is not None)
        # a kernel source edited since: another digest
        print(shipped.ShippedCache(function, "another digest").load_overload(signature, context) is None)
        shipped.ShippedCache._levels = []  # a CPU without the level's features
        print(shipped.ShippedCache(function, config.KERNEL_DIGEST).load_overload(signature, context) is None)
        shipped.ShippedCache._levels = ["x86-64-v4" if "v3" in {level!r} else "x86-64-v3"]  # another level
        print(shipped.ShippedCache(function, config.KERNEL_DIGEST).load_overload(signature, context) is None)
    """
    directory, level = level_shipped
    result = _run(code.format(level=level), NUMBA_CACHE_DIR=str(tmp_path), TAPEGRAD_SHIPPED_DIR=str(directory))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "True"]


def test_shipped_code_can_be_turned_off(level_shipped, tmp_path):
    directory, _ = level_shipped
    result = _run(
        _BACKWARD, NUMBA_CACHE_DIR=str(tmp_path), TAPEGRAD_SHIPPED_DIR=str(directory), TAPEGRAD_SHIPPED_KERNELS="0"
    )
    assert result.returncode == 0, result.stderr
    assert "compiling the backward interpreter" in result.stderr
    assert result.stdout.split()[-1] == "0"  # nothing loaded from the shipped directory
    code = "from tapegrad._kernels import backward; print(backward._run._cache.has_entry())"
    on = _run(code, NUMBA_CACHE_DIR=str(tmp_path / "empty"), TAPEGRAD_SHIPPED_DIR=str(directory))
    off = _run(
        code, NUMBA_CACHE_DIR=str(tmp_path / "empty"), TAPEGRAD_SHIPPED_DIR=str(directory), TAPEGRAD_SHIPPED_KERNELS="0"
    )
    assert (on.stdout.strip(), off.stdout.strip()) == ("True", "False"), on.stderr + off.stderr


def test_a_damaged_shipped_file_is_reported_and_compiled_instead(level_shipped, tmp_path):
    import shutil

    directory, level = level_shipped
    damaged = tmp_path / "damaged"
    shutil.copytree(directory, damaged)
    for name in os.listdir(damaged / level):  # every kernel but the sweep: its compile is the long one
        if name.endswith(".nbc") and not name.startswith("backward._run-"):
            (damaged / level / name).write_bytes(b"not machine code")
    result = _run(_BACKWARD, NUMBA_CACHE_DIR=str(tmp_path / "cache"), TAPEGRAD_SHIPPED_DIR=str(damaged))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("shipped machine code not loaded") == 1  # said once, for several kernels
    assert "compiling the backward interpreter" not in result.stderr  # the sweep still loaded
    grads = eval(result.stdout.split("] ")[0] + "]")
    assert [round(g, 6) for g in grads] == [1.648721, 2.718282, 7.389056]
