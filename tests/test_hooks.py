"""register_hook: called with the finished gradient, a returned tensor replaces it; checked
against PyTorch where it is installed."""

from __future__ import annotations

import pytest

import tapegrad as tg


def _scenario(m):
    seen = []
    x = m.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 2.0
    handle = h.register_hook(lambda g: seen.append(g.tolist()) or g * 10.0)
    x.register_hook(lambda g: seen.append(("leaf", g.tolist())))
    out = (h * h).sum() + h.sum()
    out.backward(retain_graph=True)  # h = x * 2.0 saved its scalar: a second pass needs this
    first = x.grad.tolist()
    handle.remove()
    x.grad = None
    (h * 1.0).sum().backward()
    return seen, first, x.grad.tolist()


def test_hooks_see_and_replace_gradients():
    seen, first, second = _scenario(tg)
    assert seen[0] == [5.0, 9.0, 13.0]  # dh = 2h + 1, complete before the hook runs
    assert seen[1] == ("leaf", [100.0, 180.0, 260.0])  # the replaced gradient flowed on, times 2
    assert first == [100.0, 180.0, 260.0]
    assert second == [2.0, 2.0, 2.0]  # removed: the non-leaf hook no longer scales


def test_hooks_match_pytorch():
    torch = pytest.importorskip("torch")
    assert _scenario(tg) == _scenario(torch)


def test_register_hook_requires_grad():
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require gradient"):
        tg.ones(2).register_hook(lambda g: g)


def test_without_hooks_the_backward_is_one_call(monkeypatch):
    from tapegrad.autograd import engine

    calls = []
    sweep, arrays, setup, propagate = engine.kernel()
    monkeypatch.setattr(
        engine, "_kernel", (lambda *a, **k: calls.append("sweep") or sweep(*a, **k), arrays, setup, propagate)
    )
    x = tg.ones(3, requires_grad=True)
    (x * 2.0).sum().backward()
    assert calls == ["sweep"]
