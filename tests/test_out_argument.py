"""``out=``: every function that takes it fills it, as PyTorch does, and refuses it under autograd.
(Twelve functions once took the keyword and ignored it: ``out`` kept its old values.)"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg

PACKAGE = Path(tg.__file__).parent


def test_no_function_ignores_out():
    """Each function with an ``out`` parameter reads it (or a decorator fills it)."""
    ignored = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                if "out" not in [a.arg for a in node.args.args + node.args.kwonlyargs]:
                    continue
                decorated = any("with_out" in ast.unparse(d) for d in node.decorator_list)
                read = any(
                    isinstance(n, ast.Name) and n.id == "out" and isinstance(n.ctx, ast.Load) for n in ast.walk(node)
                )
                if not (decorated or read):
                    ignored.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert ignored == []


def _calls(m):
    a = m.tensor([[2.0, 1.0], [1.0, 3.0]])
    return {
        "add": (lambda out: m.add(a, 1, out=out), (2, 2)),
        "sub": (lambda out: m.sub(a, a, alpha=2, out=out), (2, 2)),
        "mul": (lambda out: m.mul(a, 3, out=out), (2, 2)),
        "tensordot": (lambda out: m.tensordot(a, a, 1, out=out), (2, 2)),
        "inner": (lambda out: m.inner(a, a, out=out), (2, 2)),
        "linalg.inv": (lambda out: m.linalg.inv(a, out=out), (2, 2)),
        "linalg.solve": (lambda out: m.linalg.solve(a, a, out=out), (2, 2)),
        "linalg.cholesky": (lambda out: m.linalg.cholesky(a, out=out), (2, 2)),
        "linalg.det": (lambda out: m.linalg.det(a, out=out), ()),
        "linalg.pinv": (lambda out: m.linalg.pinv(a, out=out), (2, 2)),
        "linalg.matrix_power": (lambda out: m.linalg.matrix_power(a, 3, out=out), (2, 2)),
        "linalg.multi_dot": (lambda out: m.linalg.multi_dot([a, a, a], out=out), (2, 2)),
    }


def test_out_is_filled_and_returned_as_pytorch_fills_it():
    torch = pytest.importorskip("torch")
    theirs = _calls(torch)
    for name, (call, shape) in _calls(tg).items():
        out = tg.zeros(shape)
        assert call(out) is out, name
        expected = torch.zeros(shape)
        theirs[name][0](expected)
        np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6, err_msg=name)


def test_out_with_gradients_is_refused_and_a_tuple_fills_each():
    w = tg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"mul\(\): functions with out=\.\.\. arguments don't support automatic"):
        tg.mul(w, 3, out=tg.zeros(2))
    assert tg.tensordot(w, w, 1, out=tg.zeros(())).item() == 2.0  # as PyTorch: values, no graph
    values, vectors = tg.zeros(2), tg.zeros(2, 2)
    result = tg.linalg.eigh(tg.tensor([[2.0, 0.0], [0.0, 1.0]]), out=(values, vectors))
    assert result.eigenvalues is values and values.tolist() == [1.0, 2.0]


def test_out_dtype_rules_positional_out_and_differentiable_copies():
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
        tg.add(tg.ones(2), 1, out=tg.zeros(2, dtype=tg.int64))
    with pytest.raises(RuntimeError, match="result type Long can't be cast to the desired output type Bool"):
        tg.add(tg.ones(2, dtype=tg.int64), 1, out=tg.zeros(2, dtype=tg.bool))
    assert tg.add(tg.ones(2, dtype=tg.int64), 1, out=tg.zeros(2)).tolist() == [2.0, 2.0]  # an int into a float
    with pytest.warns(UserWarning, match="An output with one or more elements was resized"):
        assert tg.add(tg.ones(2, 2), 1, out=tg.zeros(3)).shape == (2, 2)
    a = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = tg.zeros(2, 2)
    assert tg.tensordot(a, a, 1, out) is out and out.tolist() == [[7.0, 10.0], [15.0, 22.0]]  # out by position
    w = tg.ones(2, requires_grad=True)
    copied = tg.zeros(())
    tg.tensordot(w, tg.tensor([3.0, 4.0]), 1, out=copied)  # a copy on the graph, as PyTorch's
    assert type(copied.grad_fn).__name__ == "CopyBackwards"
    copied.backward()
    assert w.grad.tolist() == [3.0, 4.0]
