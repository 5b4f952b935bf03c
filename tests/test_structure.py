"""The package's layering: imports flow one way, from the bottom up, and nothing cycles.

Layers, lowest first (a module may import its own layer and those below it):

0 core       dtypes, shapes, grad mode, printing, the kernels' rule declarations and the
             elementwise formula language
1 tape       the op table and the tape (``_ops`` derives its saves from the rule declarations)
2 kernels    numba code: imports only core and itself, loaded lazily by the engine and replay
3 ops        the Tensor facade and the recorders (elementwise, views, picks, reductions, ...)
4 autograd   engine, create_graph, Function, functional, gradcheck
5 replay     record once, replay many times (``dask``: over data chunks on a Dask cluster)
6 nn, optim
7 func         the functional transforms (``torch.func``)
8 the package's ``__init__``, ``__main__`` and the tutorial it runs

``KNOWN_UPWARD`` lists the imports from a lower layer to a higher one that the package still has
(function-local, to reach the engine or replay from a Tensor method); the test fails when a new
one appears, and when a listed one is gone (delete it from the list: the list only shrinks).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tapegrad"

LAYERS = {
    "core": [
        "_version",
        "_threads",
        "_frames",
        "_device",
        "cuda",
        "accelerator",
        "backends",
        "backends.cuda",
        "backends.cudnn",
        "backends.mps",
        "return_types",
        "_dtypes",
        "_shapes",
        "_grad_mode",
        "_printing",
        "_kernels",
        "_kernels.rules",
        "_kernels.instructions",
        "_kernels.expressions",
    ],
    "tape": ["_ops", "_tape", "tensor", "_pending_views"],  # (a leaf's transposes, before their rows)
    "kernels": [
        "_kernels.shipped",  # machine code shipped with the package, read by numba's cache
        "_kernels.config",
        "_kernels.tiers",  # the interpreters run as Python while a background process compiles them
        "_kernels.memory",
        "_kernels.blas",
        "_kernels.families",
        "_kernels.strided",
        "_kernels.broadcast",
        "_kernels.scalar",
        "_kernels.vmath",
        "_kernels.normalization",
        "_kernels.convolution",
        "_kernels.pooling",
        "_kernels.generated",
        "_kernels.backward",
        "_kernels.forward",
        "_kernels.batched",
        "_kernels.fused",  # large elementwise rows replayed a block at a time
        "_kernels.register",
        "_kernels.optimizers",  # Adam's update, loaded by optim
        "_kernels.generate",  # writes generated.py from the op table
    ],
    "ops": [
        "_record",
        "_views",
        "_indexing",
        "_reductions",
        "_selection",
        "_composites",
        "_more_composites",  # elementwise math, cumulative and NaN-aware reductions, in-place forms
        "_placements",  # values placed into a copy: index_copy, masked_scatter, index_put_, diag_embed
        "_array_functions",  # differences, distances, running extremes, bins, index sets
        "_arrangements",  # broadcasting, rank raising, fixed-dimension splits, flips, scatters of a slice
        "_linalg",
        "_factories",
        "_replay_hooks",
        "_logical",
        "_examples",
    ],
    "autograd": [
        "autograd",
        "autograd.engine",
        "autograd.anomaly_mode",
        "autograd.higher_order",
        "autograd.function",
        "autograd.functional",
        "autograd.gradcheck",
        "autograd.gradients",
        "autograd.grad_mode",
        "autograd.graph",
    ],
    "replay": [
        "_tape_file",
        "_register",
        "_shared_storage",
        "replay",
        "dask",
    ],  # dask: data-parallel replay, imported on demand
    "nn": [
        "nn",
        "nn.functional",
        "nn._convolution",
        "nn._pointwise",  # activations with PyTorch's gradients at their break points
        "nn._losses",  # distances and the losses built on them
        "nn._more_functional",  # 1-d pools, resampling, pixel shuffles, shrinks, more losses
        "nn._sampling",  # affine_grid and grid_sample
        "nn._more_modules",  # their modules, padding modules, ParameterDict
        "nn._recurrent",
        "nn._attention",
        "nn._backward_hooks",  # a module's full backward hooks, made of tensor hooks
        "nn.init",
        "nn.modules",
        "nn.utils",
        "nn.utils.rnn",  # packed sequences, read by the recurrent layers
        "nn.utils.parametrize",  # a parameter computed on each read (register_parametrization)
        "nn.utils.parametrizations",  # weight_norm, by parametrize
        "optim",
        "optim.lr_scheduler",
        "optim.optimizer",
        "optim.lbfgs",
        "optim.swa_utils",  # weight averaging (SWA, EMA), its lr schedule, batch-norm statistics
        "_decompositions",  # torch.linalg's LAPACK routines as autograd.Functions
        "linalg",  # torch.linalg: norms, and the decompositions' public functions
        "special",  # torch.special: the special functions under PyTorch's names there
        "distributions",  # torch.distributions: compositions of recorded ops, a module each
        "distributions.distribution",
        "distributions.normal",
        "distributions.uniform",
        "distributions.categorical",
        "distributions.bernoulli",
        "distributions.laplace",
        "distributions.one_hot_categorical",
        "distributions.independent",
        "distributions.multivariate_normal",
        "distributions.transforms",
        "distributions.transformed_distribution",
        "distributions.kl",
        "_serialization",  # save and load: a checkpoint's nn.Parameters load as Parameters
        "compiler",  # torch.compile: modules wrapped, nothing compiled
        "serialization",  # torch.serialization's names: the allow-list, save and load
        "utils",
        "utils.data",
        "utils.checkpoint",
    ],
    "func": ["func"],  # torch.func's transforms: over autograd, replay and nn
    "package": ["", "__main__", "_tutorial", "_kernels.ship"],  # ship: compiles what a wheel carries
}
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}

KNOWN_UPWARD: dict = {}

# Module-level cycles the package still has (the list only shrinks).
KNOWN_CYCLES: list = []

# Cycles through imports inside functions, within one layer (the list only shrinks): an in-place
# change of a view is recorded as picks and joins (``_indexing``), which the recorders of every
# family may trigger; create_graph and the engine call each other.
KNOWN_FUNCTION_CYCLES = [
    {"_record", "_indexing", "_views", "_selection", "_reductions"},
    {"autograd.engine", "autograd.higher_order"},
    {"autograd", "autograd.gradcheck"},
]


def _modules() -> dict:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        modules[name.removesuffix("__init__").rstrip(".")] = path
    return modules


def _imports(modules: dict) -> dict:
    """{module: {(imported module, at module level)}} for imports within the package."""
    found = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue  # absolute imports of tapegrad are not used inside the package
            parts = package.split(".") if package else []
            base = parts[: len(parts) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{target}.{alias.name}" if target else alias.name
                imported = candidate if candidate in modules else target
                if imported in modules and imported != name:
                    edges.add((imported, id(node) in top_level))
        found[name] = edges
    return found


def test_every_module_has_a_layer():
    missing = sorted(set(_modules()) - set(RANK))
    assert not missing, f"modules with no layer in tests/test_structure.py: {missing}"


def test_imports_flow_one_way():
    upward = {}
    for importer, edges in _imports(_modules()).items():
        for imported, _ in edges:
            if RANK[imported] > RANK[importer]:
                upward.setdefault(importer, set()).add(imported)
    new = {k: sorted(v - set(KNOWN_UPWARD.get(k, ()))) for k, v in upward.items()}
    new = {k: v for k, v in new.items() if v}
    assert not new, f"imports from a lower layer to a higher one: {new}"
    gone = {k: sorted(set(v) - upward.get(k, set())) for k, v in KNOWN_UPWARD.items()}
    gone = {k: v for k, v in gone.items() if v}
    assert not gone, f"no longer imported upward, remove from KNOWN_UPWARD: {gone}"


def _cycles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan's, iteratively)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
    return components


def test_no_module_level_cycles():
    graph = {
        importer: {imported for imported, top_level in edges if top_level and imported != ""}
        for importer, edges in _imports(_modules()).items()
    }
    cycles = [cycle for cycle in _cycles(graph) if cycle not in KNOWN_CYCLES]
    assert not cycles, f"modules importing each other at module level: {cycles}"


def test_no_new_cycles_through_function_imports():
    graph = {
        importer: {imported for imported, _ in edges if imported != ""}
        for importer, edges in _imports(_modules()).items()
    }
    cycles = _cycles(graph)
    assert not [cycle for cycle in cycles if cycle not in KNOWN_FUNCTION_CYCLES], f"new import cycles: {cycles}"
    assert not [cycle for cycle in KNOWN_FUNCTION_CYCLES if cycle not in cycles], "a known cycle is gone: delete it"


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _import_statements(source: str) -> tuple[list, list]:
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    statements = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 1]
    return statements, lines


@pytest.mark.parametrize("order", ["reversed", "each_first"])
def test_import_tapegrad_whatever_the_order_of_init(tmp_path, order):
    """Moving an import line of ``__init__`` must not break ``import tapegrad``: every
    statement moved to the top, and all of them reversed, each in a fresh interpreter."""
    source = (PACKAGE / "__init__.py").read_text()
    statements, lines = _import_statements(source)
    texts = ["".join(lines[node.lineno - 1 : node.end_lineno]) for node in statements]
    head = "".join(lines[: statements[0].lineno - 1])
    tail = "".join(lines[statements[-1].end_lineno :])
    if order == "reversed":
        orders = [texts[::-1]]
    else:
        orders = [[texts[k], *texts[:k], *texts[k + 1 :]] for k in range(len(texts))]
    copy = tmp_path / "tapegrad"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    failures = []
    for texts_in_order in orders:
        (copy / "__init__.py").write_text(head + "".join(texts_in_order) + tail)
        result = subprocess.run(
            [sys.executable, "-c", "import tapegrad, sys; assert 'numba' not in sys.modules"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(tmp_path)},
        )
        if result.returncode:
            failures.append((texts_in_order[0].split("\n")[0], result.stderr.strip().splitlines()[-1]))
    assert not failures, failures


def test_import_tapegrad_leaves_its_namespaces_for_first_use():
    """``import tapegrad`` loads what makes a Tensor and its ops; ``nn``, ``optim``, ``utils``,
    ``func``, the replay and the file formats load when first named (``tapegrad._LAZY``), and
    then are the modules' own objects, as eager imports would have bound them."""
    code = """
import sys, tapegrad
lazy = ["tapegrad.nn", "tapegrad.optim", "tapegrad.utils", "tapegrad.func", "tapegrad.replay",
        "tapegrad._serialization", "json", "numba"]
print(sorted(name for name in lazy if name in sys.modules))
import tapegrad.nn.functional as F, tapegrad.replay as replay, tapegrad._serialization as files
assert tapegrad.conv2d is F.conv2d and tapegrad.record is replay.record and tapegrad.Tape is replay.Tape
assert tapegrad.save is files.save and tapegrad.vmap is tapegrad.func.vmap
assert tapegrad.nn.Linear(2, 3).weight.shape == (3, 2) and "record" in dir(tapegrad)
try:
    tapegrad.no_such_name
except AttributeError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "module 'tapegrad' has no attribute 'no_such_name'"]


def test_every_op_case_runs_after_import_tapegrad_alone():
    """The op table's cases (``tapegrad._examples``), which the ship step runs to compile what a
    wheel carries, call ``nn.functional`` by name: in a fresh interpreter, where nothing but
    ``import tapegrad`` loaded it, each must still run (they raised KeyError once the namespace
    loaded lazily, and the shipped code silently lacked their kernels)."""
    code = """
import numpy as np, tapegrad as tg
from tapegrad._examples import CASES
rng = np.random.default_rng(0)
for case in CASES:
    case.call(*[tg.tensor(rng.uniform(*case.domain, size=shape)) for shape in case.shapes])
print(len(CASES))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 100


def test_no_module_defines_a_name_twice():
    """A second top-level ``def _norm`` silently replaces the first for every caller in the module
    (ruff's F811 misses it once the first was used)."""
    twice = {}
    for name, path in _modules().items():
        seen = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                if node.name in seen:
                    twice.setdefault(name, []).append(node.name)
                seen.add(node.name)
    assert not twice, f"defined twice: {twice}"
