"""PyTorch-differential test: random programs run in tapegrad and in PyTorch must agree.

A program starts from one to three inputs (0-d, size-1 and broadcasting-compatible shapes, some
made non-contiguous by a view at the start of the program) and applies three to eight steps, each
an op drawn from ``OP_SPECS``. Both libraries run it from the same numpy inputs and backpropagate
the same weighted sum of its output; the output, the inputs' gradients and the ``grad_fn`` names
must agree. The program is also recorded with ``tapegrad.record`` and replayed at new inputs,
where it must agree with eager tapegrad.

Programs are drawn from their seed alone, so a failure is reproducible: its message prints the
program and the pytest node id that reruns it. They also depend on which ops tapegrad has: a spec
whose function tapegrad lacks is skipped when programs are drawn (``available``), so adding an op
to tapegrad changes the programs, and the new op is tested from then on.

To test another op, add an ``OpSpec`` to ``OP_SPECS``.
"""

# Known mismatches with PyTorch, left out of the programs until tapegrad is fixed. Each name marks
# the ``_excluding`` (or other) line that leaves it out; delete that to test the case again.
#
# MATMUL-FOLD-NAMES: matmul's grad_fn differs where PyTorch folds batch dimensions its own way: a
#   1-D operand with a 3-D or more other ((2, 1, 2) @ (2,): SqueezeBackward1, PyTorch's is
#   UnsafeViewBackward0), and a second operand of more dimensions, or with a larger batch, than the
#   first ((2, 3) @ (5, 3, 4) and (1, 3, 3) @ (4, 3, 3): UnsafeViewBackward0, PyTorch's is
#   CloneBackward0; (1, 1) @ (1, 1, 1): PyTorch's is TransposeBackward0)
# EINSUM-NAMES: einsum's grad_fn is PermuteBackward0 where PyTorch's names the last op of its own
#   contraction strategy (ViewBackward0 for "ij,jk->ik", MulBackward0 for "i,j->ij"). Values and
#   gradients agree, so einsum is drawn with its grad_fn name not compared (``checks_grad_fn``).
#   PyTorch's result is also a view of its internal product, so an in-place change of it gives
#   AsStridedBackward0 (tapegrad: AddBackward0 for add_): einsum results are not changed in place.
# HOOK-ON-CHANGED-VIEW: a hook registered on a view that is later changed in place. PyTorch's
#   CopySlices sends the in-place op's gradient into the base directly, so the view's old node
#   (and its hook) sees only the gradient of uses before the change, or none; tapegrad's in-place
#   row reads the view's old row, whose hook sees both. Such values are not hooked.

from __future__ import annotations

import dataclasses
import functools
import operator
import os
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")

PROGRAM_COUNT = 500
BASE_SEED = 20240611  # any fixed number; another one draws another set of programs
FLOAT32_SHARE = 0.25
# Against PyTorch: different summation orders and libm implementations, compounded over a program.
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}
# Replay against eager tapegrad: the same arithmetic, in numba kernels instead of numpy. They sum
# in another order than numpy's SIMD loops; in float32, compounded over a program (cos of a dot
# product of cubes, a gradient that cancels to 1e-5), that is as far apart as PyTorch is.
REPLAY_TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
# Programs whose values or gradients grow beyond this are drawn again: exp(exp(x)) overflows, and
# relative error at 1e30 says little about the autodiff.
MAGNITUDE_LIMIT = 1e4


# --------------------------------------------------------------------------------------------
# Op specs


@dataclass(frozen=True)
class Domain:
    """Maps any operand into the region where an op is defined and smooth. It is part of the
    program (tapegrad and PyTorch both run it), so gradients flow through it too."""

    text: str  # how the mapped operand prints; "{}" stands for the operand
    apply: Callable  # apply(module, operand)


ANY = Domain("{}", lambda m, x: x)
POSITIVE = Domain("{}.abs() + 0.5", lambda m, x: x.abs() + 0.5)  # log, sqrt, divisors, bases
NON_NEGATIVE = Domain("{}.abs()", lambda m, x: x.abs())  # log1p is defined above -1
INSIDE_UNIT = Domain("0.9 * {}.tanh()", lambda m, x: x.tanh() * 0.9)  # asin, acos: steep near +-1
BOUNDED = Domain("{}.tanh()", lambda m, x: x.tanh())  # tan: far from its poles
ABOVE_ONE = Domain("{}.abs() + 1.2", lambda m, x: x.abs() + 1.2)  # acosh


class OperandShape(tuple):
    """An operand's sizes, as plans see them, and whether PyTorch lays it out contiguously (a few
    known mismatches depend on that)."""

    contiguous: bool = True


def _operand_shape(tensor) -> OperandShape:
    shape = OperandShape(tensor.shape)
    shape.contiguous = tensor.is_contiguous()
    return shape


def _always(rng, shapes):
    return {}


@dataclass(frozen=True)
class OpSpec:
    """One op the generator can use.

    ``call(module, *operands, **params)`` runs it with ``module`` either tapegrad or torch.
    ``plan(rng, shapes)`` draws the params for operands of these shapes (``OperandShape``s), or
    returns None when the op does not apply to them. PyTorch runs each step while the program is
    drawn, and a step it rejects is not used, so a plan may be generous at the edges (0-d,
    size-1 dimensions); ``test_programs_cover_every_available_op_and_input_kind`` notices a plan
    PyTorch always rejects.
    """

    name: str
    group: str  # a key of GROUP_WEIGHTS
    call: Callable
    arity: int = 1
    plan: Callable = _always
    domains: tuple[Domain, ...] = ()  # per operand; missing ones are ANY
    needs: tuple[str, ...] = ()  # tapegrad attributes the op needs, e.g. "where", "Tensor.repeat"
    view: bool = False  # the result shares operand 0's storage
    in_place: bool = False  # changes operand 0 in place and returns it
    checks_grad_fn: bool = True  # whether the result's grad_fn name must be PyTorch's

    def domain(self, position: int) -> Domain:
        return self.domains[position] if position < len(self.domains) else ANY


def available(spec: OpSpec) -> bool:
    """Whether tapegrad has everything ``spec`` calls (specs of ops not written yet wait here)."""
    for path in spec.needs:
        owner = tg
        for part in path.split("."):
            if not hasattr(owner, part):
                return False
            owner = getattr(owner, part)
    return True


# How often each kind of op is drawn; a group's weight is shared by its specs, so adding specs to
# a group does not crowd out the others.
GROUP_WEIGHTS = {
    "elementwise": 4.0,
    "scalar": 2.0,
    "binary": 3.0,
    "reduction": 3.5,
    "view": 3.0,
    "indexing": 1.5,
    "matmul": 2.0,
    "softmax": 0.8,
    "join": 1.0,
    "clone": 0.3,
    "in-place": 1.5,
    "composite": 1.5,
}


class IndexKey(tuple):
    """A basic-indexing key (ints, slices, None, Ellipsis) that prints as Python writes it."""

    def __repr__(self) -> str:
        def part(item):
            if item is Ellipsis:
                return "..."
            if isinstance(item, slice):
                text = f"{'' if item.start is None else item.start}:{'' if item.stop is None else item.stop}"
                return text + ("" if item.step is None else f":{item.step}")
            return repr(item)

        return "[" + ", ".join(part(item) for item in self) + "]"


# Plans. ``shapes`` are the operands' shapes; each returns the params or None.


def _ndim_at_least(ndim: int):
    def plan(rng, shapes):
        return {} if len(shapes[0]) >= ndim else None

    return plan


def _ndim_at_most(ndim: int):
    def plan(rng, shapes):
        return {} if len(shapes[0]) <= ndim else None

    return plan


def _random_dim(rng, ndim: int, extra: int = 0) -> int:
    """A dimension index, negative half the time; 0-d tensors accept 0 and -1, as in PyTorch."""
    count = max(ndim + extra, 1)
    return int(rng.integers(-count, count))


def _one_dim(rng, shapes):
    return {"dim": _random_dim(rng, len(shapes[0]))}


def _dims_and_keepdim(rng, shapes):
    ndim = len(shapes[0])
    if ndim >= 2 and rng.random() < 0.3:
        count = int(rng.integers(2, ndim + 1))
        dim = tuple(int(d) for d in rng.choice(ndim, size=count, replace=False))
    else:
        dim = _random_dim(rng, ndim)
    return {"dim": dim, "keepdim": bool(rng.random() < 0.4)}


def _excluding(plan, excluded):
    """``plan``, except where ``excluded(shapes, params)``: a known mismatch, named where used."""

    def guarded(rng, shapes):
        params = plan(rng, shapes)
        return None if params is None or excluded(shapes, params) else params

    return guarded


def _one_dim_and_keepdim(rng, shapes):
    return {"dim": _random_dim(rng, len(shapes[0])), "keepdim": bool(rng.random() < 0.4)}


def _broadcastable(rng, shapes):
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        return None
    return {}


def _broadcasts_into_first(rng, shapes):
    """In-place ops: the other operand broadcasts to the target's shape, which does not change."""
    try:
        return {} if np.broadcast_shapes(*shapes) == tuple(shapes[0]) else None
    except ValueError:
        return None


def _scalar_from(*choices):
    def plan(rng, shapes):
        return {"scalar": choices[int(rng.integers(len(choices)))]}

    return plan


def _prime_factors(number: int) -> list[int]:
    factors, divisor = [], 2
    while number > 1:
        while number % divisor == 0:
            factors.append(divisor)
            number //= divisor
        divisor += 1
    return factors


def _reshape(rng, shapes):
    """Another shape of the same size: prime factors dealt to 0-4 dimensions, some 1s, maybe -1."""
    numel = int(np.prod(shapes[0], dtype=np.int64))
    ndim = int(rng.integers(0 if numel == 1 else 1, 5))
    shape = [1] * ndim
    for factor in _prime_factors(numel):
        shape[int(rng.integers(ndim))] *= factor
    if ndim and rng.random() < 0.3:
        shape[int(rng.integers(ndim))] = -1
    return {"shape": tuple(shape)}


def _two_dims(rng, shapes):
    ndim = len(shapes[0])
    return {"dim0": _random_dim(rng, ndim), "dim1": _random_dim(rng, ndim)}


def _permutation(rng, shapes):
    return {"dims": tuple(int(d) for d in rng.permutation(len(shapes[0])))} if shapes[0] else None


def _unsqueeze_dim(rng, shapes):
    return {"dim": _random_dim(rng, len(shapes[0]), extra=1)}


def _squeeze_dims(rng, shapes):
    ndim = len(shapes[0])
    if ndim >= 2 and rng.random() < 0.3:
        return {"dim": tuple(int(d) for d in rng.choice(ndim, size=2, replace=False))}
    return {"dim": _random_dim(rng, ndim)}


def _expand(rng, shapes):
    """Size-1 dimensions grown, others kept (as themselves or -1), and maybe a new leading one."""
    sizes = []
    for extent in shapes[0]:
        if extent == 1 and rng.random() < 0.7:
            sizes.append(int(rng.integers(2, 4)))
        else:
            sizes.append(-1 if rng.random() < 0.3 else extent)
    if rng.random() < 0.4:
        sizes.insert(0, int(rng.integers(1, 4)))
    return {"sizes": tuple(sizes)}


def _basic_index(rng, shapes):
    """x[key] with ints (negative too), slices with steps, None and Ellipsis."""
    shape = shapes[0]
    if not shape:
        return {"key": IndexKey((None,) if rng.random() < 0.5 else (Ellipsis, None))}
    key = []
    for extent in shape[: int(rng.integers(1, len(shape) + 1))]:
        kind = rng.choice(["int", "slice", "slice", "full", "none"])
        if kind == "int":
            key.append(int(rng.integers(-extent, extent)))
        elif kind == "slice":
            start = int(rng.integers(0, extent))
            stop = None if rng.random() < 0.5 else int(rng.integers(start + 1, extent + 1))
            step = None if rng.random() < 0.4 else int(rng.integers(1, 4))
            key.append(slice(start - extent if rng.random() < 0.3 else start, stop, step))
        elif kind == "full":
            key.append(slice(None))
        else:
            key.extend([None, slice(None)])
    if rng.random() < 0.3:  # an Ellipsis for the dimensions the key leaves out, or after all of them
        if len(key) < len(shape):
            key.insert(0, Ellipsis)
        else:
            key.append(Ellipsis)
    return {"key": IndexKey(key)}


def _select(rng, shapes):
    shape = shapes[0]
    if not shape:
        return None
    dim = int(rng.integers(len(shape)))
    return {"key": IndexKey([slice(None)] * dim + [int(rng.integers(-shape[dim], shape[dim]))])}


def _step_slice(rng, shapes):
    """Every other element along a dimension: the classic non-contiguous view."""
    shape = shapes[0]
    dims = [d for d, extent in enumerate(shape) if extent >= 2]
    if not dims:
        return None
    dim = dims[int(rng.integers(len(dims)))]
    return {"key": IndexKey([slice(None)] * dim + [slice(int(rng.integers(0, 2)), None, 2)])}


def _integer_index(rng, shapes):
    """x[index] for a constant integer tensor of 0-2 dimensions, repeats and negatives included."""
    if not shapes[0]:
        return None
    extent = shapes[0][0]
    index_shape = tuple(int(s) for s in rng.integers(1, 4, size=int(rng.integers(0, 3))))
    return {"index": rng.integers(-extent, extent, size=index_shape).tolist()}


def _mask(rng, shapes):
    """x[mask] for a constant boolean mask over the leading dimensions, at least one True."""
    if not shapes[0]:
        return None
    mask = rng.random(shapes[0][: int(rng.integers(1, len(shapes[0]) + 1))]) < 0.6
    mask.reshape(-1)[int(rng.integers(mask.size))] = True
    return {"mask": mask.tolist()}


def _matmul_shapes(rng, shapes):
    """torch.matmul's rules: contracted sizes agree, batch dimensions broadcast."""
    a, b = shapes
    if not a or not b:
        return None
    if a[-1] != (b[-2] if len(b) >= 2 else b[0]):
        return None
    return _broadcastable(rng, (a[:-2], b[:-2]))


def _folded_by_pytorch(shapes, params) -> bool:
    """Batched products PyTorch computes by folding or transposing the batch (MATMUL-FOLD-NAMES):
    all but equal batches, and a batched first operand with a matrix second."""
    a, b = shapes
    if max(len(a), len(b)) < 3:
        return False
    return not (len(b) >= 2 and len(a) >= 3 and (len(b) == 2 or a[:-2] == b[:-2]))


def _even_last(rng, shapes):
    return {} if len(shapes[0]) >= 1 and shapes[0][-1] % 2 == 0 else None


def _same_shape(rng, shapes):
    return {} if shapes[0] == shapes[1] else None


def _vectors(rng, shapes):
    a, b = shapes
    return {} if len(a) == 1 and a == b else None


def _stack_dim(rng, shapes):
    if not all(shape == shapes[0] for shape in shapes):
        return None
    return {"dim": _random_dim(rng, len(shapes[0]), extra=1)}


# Plans of the ops guarded by ``needs`` (tapegrad is gaining them).


def _clamp_bounds(rng, shapes):
    low = float(rng.choice([-1.0, -0.5, 0.0]))
    kind = rng.choice(["both", "min", "max"])
    return {"low": low if kind != "max" else None, "high": low + 1.5 if kind != "min" else None}


def _broadcast_mask(rng, shapes):
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        return None
    return {"mask": (rng.random(shape) < 0.5).tolist()}


def _concatenable(rng, shapes):
    a, b = shapes
    if not a or len(a) != len(b):
        return None
    dim = _random_dim(rng, len(a))
    same_elsewhere = all(x == y for k, (x, y) in enumerate(zip(a, b)) if k != dim % len(a))
    return {"dim": dim} if same_elsewhere else None


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _split_part(rng, shapes):
    """One of the parts of ``split(x, size, dim)``."""
    if not shapes[0]:
        return None
    dim = _random_dim(rng, len(shapes[0]))
    extent = shapes[0][dim]
    size = int(rng.integers(1, extent + 1))
    return {"size": size, "dim": dim, "part": int(rng.integers(0, _ceil_div(extent, size)))}


def _chunk_part(rng, shapes):
    """One of the parts of ``x.chunk(chunks, dim)``, which may return fewer than ``chunks``."""
    if not shapes[0]:
        return None
    dim = _random_dim(rng, len(shapes[0]))
    chunks = int(rng.integers(1, 4))
    extent = shapes[0][dim]
    count = _ceil_div(extent, _ceil_div(extent, chunks))
    return {"chunks": chunks, "dim": dim, "part": int(rng.integers(0, count))}


def _gather_index(rng, shapes):
    shape = shapes[0]
    if not shape:
        return None
    dim = _random_dim(rng, len(shape))
    index_shape = [int(rng.integers(1, extent + 1)) for extent in shape]
    index_shape[dim] = int(rng.integers(1, 4))
    return {"dim": dim, "index": rng.integers(0, shape[dim], size=index_shape).tolist()}


def _index_select(rng, shapes):
    if not shapes[0]:
        return None
    dim = _random_dim(rng, len(shapes[0]))
    return {"dim": dim, "index": rng.integers(0, shapes[0][dim], size=int(rng.integers(1, 4))).tolist()}


def _repeats(rng, shapes):
    count = len(shapes[0]) + int(rng.integers(0, 2))
    return {"repeats": tuple(int(r) for r in rng.integers(1, 3, size=count))}


_EINSUM_TWO = ("ij,jk->ik", "ij,kj->ik", "i,i->", "i,j->ij", "ij,ij->i", "ij,j->i", "bij,bjk->bik")
_EINSUM_ONE = ("ij->ji", "ij->i", "ij->", "ijk->kji", "i->", "ii->i", "ii->")


def _einsum_equation(equations):
    """An equation whose subscripts fit the operands: same letter, same size."""

    def plan(rng, shapes):
        fitting = []
        for equation in equations:
            subscripts = equation.split("->")[0].split(",")
            sizes: dict[str, int] = {}
            fits = all(len(letters) == len(shape) for letters, shape in zip(subscripts, shapes))
            for letters, shape in zip(subscripts, shapes):
                for letter, extent in zip(letters, shape):
                    fits = fits and sizes.setdefault(letter, extent) == extent
            if fits:
                fitting.append(equation)
        return {"equation": fitting[int(rng.integers(len(fitting)))]} if fitting else None

    return plan


def _functional(module):
    return module.nn.functional


def _method(name: str):
    return lambda m, x: getattr(x, name)()


_ELEMENTWISE_METHODS = (
    ("exp", ANY),
    ("log", POSITIVE),
    ("sin", ANY),
    ("cos", ANY),
    ("tanh", ANY),
    ("sigmoid", ANY),
    ("relu", ANY),
    ("sqrt", POSITIVE),
    ("abs", ANY),
    ("reciprocal", POSITIVE),
    ("log1p", NON_NEGATIVE),
    ("log2", POSITIVE),
    ("log10", POSITIVE),
    ("exp2", ANY),
    ("rsqrt", POSITIVE),
    ("expm1", ANY),
    ("tan", BOUNDED),
    ("asin", INSIDE_UNIT),
    ("acos", INSIDE_UNIT),
    ("atan", ANY),
    ("asinh", ANY),
    ("acosh", ABOVE_ONE),
    ("atanh", INSIDE_UNIT),
    ("sinh", ANY),
    ("cosh", ANY),
    ("erf", ANY),
    ("neg", ANY),
    ("sign", ANY),
    ("floor", ANY),
    ("round", ANY),
)

OP_SPECS: tuple[OpSpec, ...] = (
    # Elementwise, as methods, as module functions and through nn.functional.
    *(OpSpec(name, "elementwise", _method(name), domains=(domain,)) for name, domain in _ELEMENTWISE_METHODS),
    OpSpec("m.exp", "elementwise", lambda m, x: m.exp(x)),
    OpSpec("m.sigmoid", "elementwise", lambda m, x: m.sigmoid(x)),
    OpSpec("softplus", "elementwise", lambda m, x: _functional(m).softplus(x)),
    OpSpec("gelu", "elementwise", lambda m, x: _functional(m).gelu(x)),
    OpSpec("silu", "elementwise", lambda m, x: _functional(m).silu(x)),
    OpSpec("F.relu", "elementwise", lambda m, x: _functional(m).relu(x)),
    OpSpec("leaky_relu", "elementwise", lambda m, x: _functional(m).leaky_relu(x, 0.1)),
    OpSpec("elu", "elementwise", lambda m, x: _functional(m).elu(x, alpha=0.7)),
    # Tensor and Python number.
    OpSpec("add_scalar", "scalar", lambda m, x, scalar: x + scalar, plan=_scalar_from(2, -3, 0.5, 1.5)),
    OpSpec("radd_scalar", "scalar", lambda m, x, scalar: scalar + x, plan=_scalar_from(1, -0.25)),
    OpSpec("sub_scalar", "scalar", lambda m, x, scalar: x - scalar, plan=_scalar_from(1, 0.5)),
    OpSpec("rsub_scalar", "scalar", lambda m, x, scalar: scalar - x, plan=_scalar_from(2, -1.5)),
    OpSpec("mul_scalar", "scalar", lambda m, x, scalar: x * scalar, plan=_scalar_from(2, -3, 0.5, -0.25)),
    OpSpec("rmul_scalar", "scalar", lambda m, x, scalar: scalar * x, plan=_scalar_from(3, 1.5)),
    OpSpec("div_scalar", "scalar", lambda m, x, scalar: x / scalar, plan=_scalar_from(2, -4, 0.5)),
    OpSpec("rdiv_scalar", "scalar", lambda m, x, scalar: scalar / x, plan=_scalar_from(1, -2.5), domains=(POSITIVE,)),
    OpSpec("pow_integer", "scalar", lambda m, x, scalar: x**scalar, plan=_scalar_from(2, 3)),
    OpSpec(
        "pow_real", "scalar", lambda m, x, scalar: x**scalar, plan=_scalar_from(0.5, -1.0, 1.5), domains=(POSITIVE,)
    ),
    OpSpec("rpow_scalar", "scalar", lambda m, x, scalar: scalar**x, plan=_scalar_from(2.0, 0.5, 3)),
    OpSpec("negate", "scalar", lambda m, x: -x),
    # Tensor and tensor, broadcasting.
    OpSpec("add", "binary", lambda m, a, b: a + b, arity=2, plan=_broadcastable),
    OpSpec("sub", "binary", lambda m, a, b: a - b, arity=2, plan=_broadcastable),
    OpSpec("mul", "binary", lambda m, a, b: a * b, arity=2, plan=_broadcastable),
    OpSpec("div", "binary", lambda m, a, b: a / b, arity=2, plan=_broadcastable, domains=(ANY, POSITIVE)),
    OpSpec("pow", "binary", lambda m, a, b: a**b, arity=2, plan=_broadcastable, domains=(POSITIVE, ANY)),
    OpSpec("m.add", "binary", lambda m, a, b: m.add(a, b), arity=2, plan=_broadcastable),
    OpSpec("m.mul", "binary", lambda m, a, b: m.mul(a, b), arity=2, plan=_broadcastable),
    # Reductions.
    OpSpec("sum", "reduction", lambda m, x: x.sum()),
    OpSpec(
        "sum_dim",
        "reduction",
        lambda m, x, dim, keepdim: x.sum(dim, keepdim=keepdim),
        plan=_dims_and_keepdim,
    ),
    OpSpec("mean", "reduction", lambda m, x: x.mean()),
    OpSpec(
        "mean_dim",
        "reduction",
        lambda m, x, dim, keepdim: x.mean(dim, keepdim),
        plan=_dims_and_keepdim,
    ),
    OpSpec(
        "m.sum_dim",
        "reduction",
        lambda m, x, dim, keepdim: m.sum(x, dim, keepdim),
        plan=_dims_and_keepdim,
    ),
    OpSpec("norm", "reduction", lambda m, x: x.norm()),
    # Views.
    OpSpec(
        "reshape",
        "view",
        lambda m, x, shape: x.reshape(*shape),
        plan=_reshape,
        view=True,
    ),
    OpSpec("view", "view", lambda m, x, shape: x.view(shape), plan=_reshape, view=True),
    OpSpec(
        "flatten",
        "view",
        lambda m, x: x.flatten(),
        plan=_always,
        view=True,
    ),
    OpSpec("transpose", "view", lambda m, x, dim0, dim1: x.transpose(dim0, dim1), plan=_two_dims, view=True),
    OpSpec("t", "view", lambda m, x: x.t(), plan=_ndim_at_most(2), view=True),
    OpSpec("T", "view", lambda m, x: x.T, plan=lambda rng, shapes: {} if len(shapes[0]) == 2 else None, view=True),
    OpSpec("mT", "view", lambda m, x: x.mT, plan=_ndim_at_least(2), view=True),
    OpSpec("permute", "view", lambda m, x, dims: x.permute(*dims), plan=_permutation, view=True),
    OpSpec("unsqueeze", "view", lambda m, x, dim: x.unsqueeze(dim), plan=_unsqueeze_dim, view=True),
    OpSpec("squeeze", "view", lambda m, x: x.squeeze(), view=True),
    OpSpec(
        "squeeze_dim",
        "view",
        lambda m, x, dim: x.squeeze(dim),
        plan=_squeeze_dims,
        view=True,
    ),
    OpSpec("expand", "view", lambda m, x, sizes: x.expand(*sizes), plan=_expand, view=True),
    OpSpec(
        "basic_index",
        "view",
        lambda m, x, key: x[tuple(key)],
        plan=_basic_index,
        view=True,
    ),
    OpSpec("select", "view", lambda m, x, key: x[tuple(key)], plan=_select, view=True),
    OpSpec("step_slice", "view", lambda m, x, key: x[tuple(key)], plan=_step_slice, view=True),
    OpSpec(
        "contiguous",
        "view",
        lambda m, x: x.contiguous(),  # a copy of a non-contiguous x; x itself otherwise
        plan=_always,
        view=True,
    ),
    # Indexing with tensors (constants of the program, so a replay has nothing to guard).
    OpSpec(
        "integer_index",
        "indexing",
        lambda m, x, index: x[m.tensor(index)],
        plan=_integer_index,
    ),
    OpSpec("mask_index", "indexing", lambda m, x, mask: x[m.tensor(mask)], plan=_mask),
    # Matrix products.
    OpSpec(
        "matmul",
        "matmul",
        lambda m, a, b: a @ b,
        arity=2,
        plan=_excluding(_matmul_shapes, _folded_by_pytorch),  # MATMUL-FOLD-NAMES
    ),
    OpSpec(
        "m.matmul",
        "matmul",
        lambda m, a, b: m.matmul(a, b),
        arity=2,
        plan=_excluding(_matmul_shapes, _folded_by_pytorch),  # MATMUL-FOLD-NAMES
    ),
    OpSpec("mm", "matmul", lambda m, x: m.mm(x.t(), x), plan=lambda rng, shapes: {} if len(shapes[0]) == 2 else None),
    OpSpec("dot", "matmul", lambda m, a, b: m.dot(a, b), arity=2, plan=_vectors),
    # Another value of the program rarely has the size a product contracts; its own transpose has.
    OpSpec("gram", "matmul", lambda m, x: x @ x.mT, plan=_ndim_at_least(2)),
    OpSpec("gram_transposed", "matmul", lambda m, x: x.mT @ x, plan=_ndim_at_least(2)),
    OpSpec("self_dot", "matmul", lambda m, x: x @ x, plan=lambda rng, shapes: {} if len(shapes[0]) == 1 else None),
    # Softmax.
    OpSpec("softmax", "softmax", lambda m, x, dim: x.softmax(dim), plan=_one_dim),
    OpSpec("F.softmax", "softmax", lambda m, x, dim: _functional(m).softmax(x, dim=dim), plan=_one_dim),
    OpSpec("log_softmax", "softmax", lambda m, x, dim: x.log_softmax(dim), plan=_one_dim),
    OpSpec("F.log_softmax", "softmax", lambda m, x, dim: _functional(m).log_softmax(x, dim), plan=_one_dim),
    # Joining.
    OpSpec("stack", "join", lambda m, a, b, dim: m.stack([a, b], dim), arity=2, plan=_stack_dim),
    OpSpec("stack_three", "join", lambda m, a, b, dim: m.stack([a, b, a], dim=dim), arity=2, plan=_stack_dim),
    OpSpec("clone", "clone", lambda m, x: x.clone()),
    # Composites: built from the ops above, so their node names are those ops' where PyTorch has
    # one node of its own (checks_grad_fn=False); values and gradients must still be PyTorch's.
    OpSpec("layer_norm", "composite", lambda m, x: _functional(m).layer_norm(x, x.shape[-1:]), plan=_ndim_at_least(1)),
    OpSpec("gelu", "composite", lambda m, x: _functional(m).gelu(x)),
    OpSpec("tril", "composite", lambda m, x: m.tril(x), plan=_ndim_at_least(2), checks_grad_fn=False),
    OpSpec("triu", "composite", lambda m, x: x.triu(1), plan=_ndim_at_least(2), checks_grad_fn=False),
    OpSpec("roll", "composite", lambda m, x, dim: m.roll(x, 1, dim), plan=_one_dim, checks_grad_fn=False),
    OpSpec("movedim", "composite", lambda m, x: x.movedim(0, -1), plan=_ndim_at_least(1), checks_grad_fn=False),
    OpSpec("tile", "composite", lambda m, x: x.tile((2,)), checks_grad_fn=False),
    OpSpec(
        "repeat_interleave",
        "composite",
        lambda m, x, dim: x.repeat_interleave(2, dim=dim),
        plan=_one_dim,
        checks_grad_fn=False,
    ),
    OpSpec(
        "pad",
        "composite",
        lambda m, x: _functional(m).pad(x, (1, 2)),
        plan=_ndim_at_least(1),
        checks_grad_fn=False,
    ),
    OpSpec("glu", "composite", lambda m, x: _functional(m).glu(x, -1), plan=_even_last, checks_grad_fn=False),
    OpSpec("l1_loss", "composite", lambda m, a, b: _functional(m).l1_loss(a, b), arity=2, plan=_same_shape),
    OpSpec("mse_loss", "composite", lambda m, a, b: _functional(m).mse_loss(a, b), arity=2, plan=_same_shape),
    # In place, on values that are not leaves and share no storage (see _Builder.can_change).
    OpSpec("mul_", "in-place", lambda m, x, y: x.mul_(y), arity=2, plan=_broadcasts_into_first, in_place=True),
    OpSpec("add_", "in-place", lambda m, x, y: x.add_(y), arity=2, plan=_broadcasts_into_first, in_place=True),
    OpSpec(
        "add_alpha",
        "in-place",
        lambda m, x, y, alpha: x.add_(y, alpha=alpha),
        arity=2,
        plan=lambda rng, shapes: (
            None if _broadcasts_into_first(rng, shapes) is None else {"alpha": float(rng.choice([0.5, -2.0]))}
        ),
        in_place=True,
    ),
    OpSpec("sub_", "in-place", lambda m, x, y: x.sub_(y), arity=2, plan=_broadcasts_into_first, in_place=True),
    OpSpec(
        "div_",
        "in-place",
        lambda m, x, y: x.div_(y),
        arity=2,
        plan=_broadcasts_into_first,
        domains=(ANY, POSITIVE),
        in_place=True,
    ),
    OpSpec(
        "iadd", "in-place", lambda m, x, y: operator.iadd(x, y), arity=2, plan=_broadcasts_into_first, in_place=True
    ),
    OpSpec("mul_scalar_", "in-place", lambda m, x, scalar: x.mul_(scalar), plan=_scalar_from(2, -0.5), in_place=True),
    OpSpec("add_scalar_", "in-place", lambda m, x, scalar: x.add_(scalar), plan=_scalar_from(1, -0.5), in_place=True),
    # Ops tapegrad is gaining: each is drawn once tapegrad has what its ``needs`` names.
    OpSpec("where", "binary", lambda m, a, b: m.where(a > 0, a, b), arity=2, plan=_broadcastable, needs=("where",)),
    OpSpec(
        "where_mask",
        "binary",
        lambda m, a, b, mask: m.where(m.tensor(mask), a, b),
        arity=2,
        plan=_broadcast_mask,
        needs=("where",),
    ),
    OpSpec(
        "clamp",
        "elementwise",
        lambda m, x, low, high: m.clamp(x, min=low, max=high),
        plan=_clamp_bounds,
        needs=("clamp",),
    ),
    OpSpec("maximum", "binary", lambda m, a, b: m.maximum(a, b), arity=2, plan=_broadcastable, needs=("maximum",)),
    OpSpec("minimum", "binary", lambda m, a, b: m.minimum(a, b), arity=2, plan=_broadcastable, needs=("minimum",)),
    OpSpec("max", "reduction", lambda m, x: x.max(), needs=("max",)),
    OpSpec(
        "max_dim",
        "reduction",
        lambda m, x, dim, keepdim: m.max(x, dim=dim, keepdim=keepdim)[0],
        plan=_one_dim_and_keepdim,
        needs=("max",),
    ),
    OpSpec(
        "min_dim",
        "reduction",
        lambda m, x, dim, keepdim: m.min(x, dim, keepdim)[0],
        plan=_one_dim_and_keepdim,
        needs=("min",),
    ),
    OpSpec(
        "amax",
        "reduction",
        lambda m, x, dim, keepdim: m.amax(x, dim, keepdim),
        plan=_dims_and_keepdim,
        needs=("amax",),
    ),
    OpSpec(
        "amin",
        "reduction",
        lambda m, x, dim, keepdim: x.amin(dim, keepdim),
        plan=_dims_and_keepdim,
        needs=("amin",),
    ),
    OpSpec("cumsum", "reduction", lambda m, x, dim: m.cumsum(x, dim), plan=_one_dim, needs=("cumsum",)),
    OpSpec("prod", "reduction", lambda m, x: m.prod(x), needs=("prod",)),
    OpSpec(
        "prod_dim",
        "reduction",
        lambda m, x, dim, keepdim: x.prod(dim, keepdim=keepdim),
        plan=_one_dim_and_keepdim,
        needs=("prod",),
    ),
    OpSpec(
        "var",
        "reduction",
        lambda m, x, dim, keepdim: m.var(x, dim, keepdim=keepdim),
        plan=_dims_and_keepdim,
        needs=("var",),
    ),
    OpSpec(
        "std_biased",
        "reduction",
        lambda m, x, dim, keepdim: x.std(dim, unbiased=False, keepdim=keepdim),
        plan=_dims_and_keepdim,
        needs=("std",),
    ),
    OpSpec(
        "logsumexp",
        "reduction",
        lambda m, x, dim, keepdim: m.logsumexp(x, dim, keepdim=keepdim),
        plan=_dims_and_keepdim,
        needs=("logsumexp",),
    ),
    OpSpec("cat", "join", lambda m, a, b, dim: m.cat([a, b], dim=dim), arity=2, plan=_concatenable, needs=("cat",)),
    OpSpec(
        "split",
        "view",
        lambda m, x, size, dim, part: m.split(x, size, dim)[part],
        plan=_split_part,
        needs=("split",),
        view=True,
    ),
    OpSpec(
        "chunk",
        "view",
        lambda m, x, chunks, dim, part: x.chunk(chunks, dim)[part],
        plan=_chunk_part,
        needs=("chunk",),
        view=True,
    ),
    OpSpec(
        "gather",
        "indexing",
        lambda m, x, dim, index: m.gather(x, dim, m.tensor(index)),
        plan=_gather_index,
        needs=("gather",),
    ),
    OpSpec(
        "index_select",
        "indexing",
        lambda m, x, dim, index: m.index_select(x, dim, m.tensor(index)),
        plan=_index_select,
        needs=("index_select",),
    ),
    OpSpec("repeat", "view", lambda m, x, repeats: x.repeat(*repeats), plan=_repeats, needs=("Tensor.repeat",)),
    OpSpec(
        "outer",
        "matmul",
        lambda m, a, b: m.outer(a, b),
        arity=2,
        plan=lambda rng, shapes: {} if len(shapes[0]) == len(shapes[1]) == 1 else None,
        needs=("outer",),
    ),
    OpSpec(
        "einsum",
        "matmul",
        lambda m, a, b, equation: m.einsum(equation, a, b),
        arity=2,
        plan=_einsum_equation(_EINSUM_TWO),
        needs=("einsum",),
        checks_grad_fn=False,  # EINSUM-NAMES
    ),
    OpSpec(
        "einsum_one",
        "matmul",
        lambda m, x, equation: m.einsum(equation, x),
        plan=_einsum_equation(_EINSUM_ONE),
        needs=("einsum",),
        checks_grad_fn=False,  # EINSUM-NAMES
        view=True,  # PyTorch returns a view of x for a permutation ("ij->ji")
    ),
)

# Views that make an input non-contiguous at the start of a program.
PROLOGUE_SPECS = tuple(spec for spec in OP_SPECS if spec.name in ("transpose", "mT", "step_slice", "expand"))


# --------------------------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class Step:
    spec: OpSpec
    operands: tuple[int, ...]  # indices into the program's values: the inputs, then the steps' results
    params: dict
    shape: tuple[int, ...]  # of the result


@dataclass(frozen=True)
class Program:
    seed: int
    dtype: str
    inputs: tuple[np.ndarray, ...]  # where tapegrad and PyTorch are compared
    replay_inputs: tuple[np.ndarray, ...]  # same shapes, other values: where the replay is checked
    steps: tuple[Step, ...]
    # (value index, hook kind): tensor hooks registered on values as they are made (HOOKS)
    hooks: tuple[tuple[int, str], ...] = ()

    def describe(self) -> str:
        """The program as a readable listing, one value per line, with the way to rerun it."""
        tests = " ".join(
            f"'{__file__}::{test}[seed{self.seed}]'"
            for test in ("test_program_agrees_with_pytorch", "test_replay_agrees_with_eager")
        )
        lines = [f"program {self.seed} ({self.dtype}); rerun with\n  python -m pytest -p no:cacheprovider {tests}"]
        lines += [f"  v{index} = input of shape {array.shape}" for index, array in enumerate(self.inputs)]
        for number, step in enumerate(self.steps, start=len(self.inputs)):
            arguments = [step.spec.domain(position).text.format(f"v{k}") for position, k in enumerate(step.operands)]
            arguments += [f"{name}={value!r}" for name, value in step.params.items()]
            line = f"  v{number} = {step.spec.name}({', '.join(arguments)})"
            note = f"  # {step.shape}"
            if step.spec.in_place:
                note += f", v{step.operands[0]} changed in place: v{number} is v{step.operands[0]}"
            lines.append(line.ljust(56) + note)
        lines += [f"  hook on v{index}: {kind}" for index, kind in self.hooks]
        lines.append(f"  output v{len(self.inputs) + len(self.steps) - 1}; loss = (output * weights).sum()")
        return "\n".join(lines)


# Tensor hooks a program may carry: each returns the new gradient (or None to keep it). A clamp
# and a scale change what flows on, so a hook that ran on part of a gradient, or twice, shows.
HOOKS = {
    "clamp": lambda g: g.clamp(-0.5, 0.5),
    "scale": lambda g: g * 0.25,
    "observe": lambda g: None,
}


def execute(module, steps, inputs, hooks=(), log=None) -> list:
    """Run ``steps`` with ``module`` (tapegrad or torch) on ``inputs``; every value, inputs first.
    ``hooks`` are registered on values as they are made; each call appends (value, gradient) to
    ``log``."""
    wanted = dict(hooks)

    def made(value):
        kind = wanted.get(len(values))
        if kind is not None and value.requires_grad:
            index, hook = len(values), HOOKS[kind]
            value.register_hook(lambda g: log.append((index, g.detach().numpy().copy())) or hook(g))
        values.append(value)

    values = []
    for value in inputs:
        made(value)
    for step in steps:
        operands = [step.spec.domain(position).apply(module, values[k]) for position, k in enumerate(step.operands)]
        made(step.spec.call(module, *operands, **step.params))
    return values


def output_weights(shape, dtype) -> np.ndarray:
    """The fixed weighting of the output whose sum is backpropagated: distinct per element, so a
    gradient routed to the wrong element shows."""
    return np.linspace(0.5, 1.5, num=max(int(np.prod(shape)), 1)).reshape(tuple(shape)).astype(dtype)


@dataclass
class Run:
    output: np.ndarray
    grads: list  # per input: an array, or None where no gradient reached it
    grad_fn_names: list  # per step result, read before backward: a class name, or None
    hook_calls: list = None  # (value index, the gradient its hook saw), in call order


def run(module, steps, arrays, hooks=()) -> Run:
    """Evaluate the program eagerly with ``module`` and backpropagate the weighted output."""
    leaves = [module.tensor(array, requires_grad=True) for array in arrays]
    hook_calls = []
    values = execute(module, steps, leaves, hooks, hook_calls)
    names = [None if value.grad_fn is None else type(value.grad_fn).__name__ for value in values[len(leaves) :]]
    output = values[-1]
    weights = output_weights(output.shape, arrays[0].dtype)
    (output * module.tensor(weights)).sum().backward()
    grads = [None if leaf.grad is None else leaf.grad.numpy().copy() for leaf in leaves]
    return Run(output.detach().numpy().copy(), grads, names, hook_calls)


def _moderate(array) -> bool:
    array = np.asarray(array)
    return bool(np.all(np.isfinite(array)) and np.all(np.abs(array) <= MAGNITUDE_LIMIT))


class _Builder:
    """Draws one program step by step. Each candidate step runs in PyTorch, which gives its
    result's shape and keeps only steps PyTorch accepts and whose values stay moderate."""

    def __init__(self, rng: np.random.Generator, inputs: tuple[np.ndarray, ...]):
        self.rng = rng
        self.inputs = inputs
        self.steps: list[Step] = []
        self.values = [torch.from_numpy(array.copy()) for array in inputs]  # PyTorch's, per program value
        self.storage = list(range(len(inputs)))  # per value: the value whose storage it uses
        self.replaced = [False] * len(inputs)  # changed in place: the in-place step's result stands for it

    def live(self) -> list[int]:
        return [index for index, replaced in enumerate(self.replaced) if not replaced]

    def can_change(self, index: int) -> bool:
        """In-place steps change results of the program (not its inputs, which are leaves),
        views and their bases included."""
        if index < len(self.inputs):
            return False
        producer = self.steps[index - len(self.inputs)].spec.name
        if producer.startswith("einsum"):
            return False  # EINSUM-NAMES
        return True

    def pick_operands(self, spec: OpSpec):
        """Operand 0 is mostly the newest value (deep chains), partners any live value; the others
        are tried in turn until the spec's plan accepts one. Returns the operands and params, or None."""
        live = self.live()
        candidates = [index for index in live if self.can_change(index)] if spec.in_place else live
        if not candidates:
            return None
        order = [int(k) for k in self.rng.permutation(candidates)]
        if self.rng.random() < 0.6:
            order.remove(candidates[-1])
            order.insert(0, candidates[-1])
        for first in order:
            partners = [()] if spec.arity == 1 else [(int(k),) for k in self.rng.permutation(live)]
            for partner in partners:
                operands = (first, *partner)
                params = spec.plan(self.rng, [_operand_shape(self.values[k]) for k in operands])
                if params is not None:
                    return operands, params
        return None

    def try_step(self, spec: OpSpec, operands: tuple[int, ...], params: dict) -> bool:
        step = Step(spec, operands, params, ())
        try:
            if spec.in_place:
                # Legal only if no value saved for backward is overwritten, which PyTorch's version
                # check tells at backward: run the whole program so far, backward included.
                leaves = [torch.tensor(array, requires_grad=True) for array in self.inputs]
                values = execute(torch, [*self.steps, step], leaves)
                values[-1].sum().backward()
                values = [value.detach() for value in values]
            else:
                with torch.no_grad():
                    values = execute(torch, [step], self.values)
        except Exception:  # PyTorch rejects the step: its params or shapes are not valid
            return False
        result = values[-1]
        if result.numel() == 0 or not _moderate(result.numpy()):
            return False
        self.values = values
        self.steps.append(Step(spec, operands, params, tuple(result.shape)))
        number = len(self.storage)
        self.storage.append(self.storage[operands[0]] if spec.view else number)
        self.replaced.append(False)
        if spec.in_place:
            self.replaced[operands[0]] = True
        return True


def _input_shapes(rng: np.random.Generator) -> list[tuple[int, ...]]:
    """One to three shapes that broadcast together: suffixes of one base shape with some sizes 1."""
    base = [int(extent) for extent in rng.integers(1, 5, size=int(rng.integers(0, 4)))]
    shapes = []
    for _ in range(int(rng.integers(1, 4))):
        start = int(rng.integers(0, len(base) + 1)) if rng.random() < 0.3 else 0
        shapes.append(tuple(1 if rng.random() < 0.25 else extent for extent in base[start:]))
    return shapes


def _draw(rng: np.random.Generator, seed: int) -> Program | None:
    dtype = "float32" if rng.random() < FLOAT32_SHARE else "float64"
    shapes = _input_shapes(rng)
    inputs = tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)
    replay_inputs = tuple(rng.standard_normal(shape).astype(dtype) for shape in shapes)
    builder = _Builder(rng, inputs)
    for index in range(len(inputs)):
        if rng.random() < 0.35:
            spec = PROLOGUE_SPECS[int(rng.integers(len(PROLOGUE_SPECS)))]
            params = spec.plan(rng, [OperandShape(shapes[index])])
            if params is not None:
                builder.try_step(spec, (index,), params)
    specs = [spec for spec in OP_SPECS if available(spec)]
    group_sizes = {group: sum(spec.group == group for spec in specs) for group in GROUP_WEIGHTS}
    weights = np.array([GROUP_WEIGHTS[spec.group] / group_sizes[spec.group] for spec in specs])
    wanted, taken = int(rng.integers(3, 9)), 0
    for _attempt in range(100):
        if taken == wanted:
            break
        spec = specs[int(rng.choice(len(specs), p=weights / weights.sum()))]
        picked = builder.pick_operands(spec)
        if picked is not None and builder.try_step(spec, *picked):
            taken += 1
    if taken < wanted:
        return None
    steps = tuple(builder.steps)
    for arrays in (inputs, replay_inputs):
        try:
            reference = run(torch, steps, arrays)
        except Exception:  # an in-place step overwrote a value saved by a branch its check missed
            return None
        if not _moderate(reference.output) or not all(_moderate(g) for g in reference.grads if g is not None):
            return None
    return Program(seed, dtype, inputs, replay_inputs, steps)


HOOKED_SHARE = 0.4


def _with_hooks(program: Program, rng: np.random.Generator) -> Program:
    """Hooks on one to three of the program's values, in some programs. Drawn from a stream of
    their own, so that the programs themselves stay the ones drawn without hooks."""
    if rng.random() >= HOOKED_SHARE:
        return program
    count = len(program.inputs) + len(program.steps)
    changed = {step.operands[0] for step in program.steps if step.spec.in_place}
    if changed:  # HOOK-ON-CHANGED-VIEW: PyTorch tells which values are views
        leaves = [torch.tensor(array, requires_grad=True) for array in program.inputs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = execute(torch, program.steps[: max(changed) - len(program.inputs) + 1], leaves)
        changed = {index for index in changed if values[index]._is_view()}
    # Inputs (leaves) weigh three times as much: a leaf reached by several graphs is where
    # hooks once ran on partial gradients.
    weights = np.array(
        [0.0 if index in changed else 3.0 if index < len(program.inputs) else 1.0 for index in range(count)]
    )
    size = min(int(np.count_nonzero(weights)), int(rng.integers(1, 4)))
    chosen = rng.choice(count, size=size, replace=False, p=weights / weights.sum())
    hooks = tuple((int(index), str(rng.choice(list(HOOKS)))) for index in sorted(chosen))
    hooked = dataclasses.replace(program, hooks=hooks)
    for arrays in (hooked.inputs, hooked.replay_inputs):
        try:
            reference = run(torch, hooked.steps, arrays, hooked.hooks)
        except Exception:  # PyTorch refuses a hook there
            return program
        if not all(_moderate(g) for g in reference.grads if g is not None):
            return program
    return hooked


@functools.lru_cache(maxsize=None)
def generate(seed: int) -> Program:
    """The program of ``seed``: the same one on every run, for a given set of available ops."""
    rng = np.random.default_rng([BASE_SEED, seed])
    for _attempt in range(50):
        with warnings.catch_warnings():  # PyTorch warning about a step it computes, then rejected
            warnings.simplefilter("ignore")
            program = _draw(rng, seed)
        if program is not None:
            return _with_hooks(program, np.random.default_rng([BASE_SEED, seed, 1]))
    raise AssertionError(f"no program drawn for seed {seed} in 50 attempts")


# --------------------------------------------------------------------------------------------
# Tests

# TAPEGRAD_SEED_START=N draws programs N, N+1, ... instead: to explore beyond the seeds CI runs.
SEED_START = int(os.environ.get("TAPEGRAD_SEED_START", "0"))
SEEDS = range(SEED_START, SEED_START + PROGRAM_COUNT)


def assert_close(got, want, tolerance: float, what: str, program: Program) -> None:
    """Close relative to the array's own scale: elements near zero after cancellation get the
    absolute error the large ones are allowed."""
    context = f"{what}\n{program.describe()}"
    assert got is not None and want is not None, context
    assert got.shape == want.shape and got.dtype == want.dtype, (
        f"{got.shape} {got.dtype} != {want.shape} {want.dtype}: {context}"
    )
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * scale, err_msg=context)


def run_tapegrad(program: Program, call, what: str):
    """``call()``, with the program added to whatever tapegrad raises."""
    try:
        return call()
    except Exception as error:
        raise AssertionError(f"{what} raised {type(error).__name__}: {error}\n{program.describe()}") from error


def _first(pair):
    return pair[0]


@pytest.mark.parametrize("seed", SEEDS, ids="seed{}".format)
def test_program_agrees_with_pytorch(seed):
    program = generate(seed)
    theirs = run(torch, program.steps, program.inputs, program.hooks)
    ours = run_tapegrad(program, lambda: run(tg, program.steps, program.inputs, program.hooks), "tapegrad")
    tolerance = TOLERANCE[program.dtype]
    # Each hooked value's hook runs once, on its whole gradient. (The order of calls between
    # different values may differ: see the README's "Hooks".)
    got_calls, want_calls = sorted(ours.hook_calls, key=_first), sorted(theirs.hook_calls, key=_first)
    assert [index for index, _ in got_calls] == [index for index, _ in want_calls], (
        f"hooks called on {[index for index, _ in got_calls]}, PyTorch's on {[index for index, _ in want_calls]}\n"
        f"{program.describe()}"
    )
    for (index, got), (_, want) in zip(got_calls, want_calls):
        assert_close(got, want, tolerance, f"gradient the hook of v{index} saw", program)
    assert_close(ours.output, theirs.output, tolerance, "output", program)
    for index, (got, want) in enumerate(zip(ours.grads, theirs.grads)):
        if got is not None or want is not None:
            assert_close(got, want, tolerance, f"gradient of input v{index}", program)
    names = zip(program.steps, ours.grad_fn_names, theirs.grad_fn_names)
    for number, (step, got, want) in enumerate(names, start=len(program.inputs)):
        assert got == want or not step.spec.checks_grad_fn, (
            f"grad_fn of v{number}: {got} != PyTorch's {want}\n{program.describe()}"
        )


@pytest.mark.parametrize("seed", SEEDS, ids="seed{}".format)
def test_replay_agrees_with_eager(seed):
    program = generate(seed)

    def program_function(*inputs):
        return execute(tg, program.steps, inputs)[-1]

    tape = run_tapegrad(program, lambda: tg.record(program_function, *program.inputs), "tapegrad.record")
    eager = run_tapegrad(program, lambda: run(tg, program.steps, program.replay_inputs), "tapegrad")
    weights = output_weights(program.steps[-1].shape, program.dtype)
    output, grads = run_tapegrad(
        program, lambda: tape.value_and_grad(*program.replay_inputs, grad_outputs=weights), "the replay"
    )
    tolerance = REPLAY_TOLERANCE[program.dtype]
    assert_close(output.numpy(), eager.output, tolerance, "replayed output", program)
    for index, (got, want) in enumerate(zip(grads, eager.grads)):
        want = np.zeros_like(program.inputs[index]) if want is None else want  # the replay gives zeros
        assert_close(got.numpy(), want, tolerance, f"replayed gradient of input v{index}", program)


def test_programs_cover_every_available_op_and_input_kind():
    """The generator drops steps PyTorch rejects, so a spec whose plan is wrong would silently
    never run: every available spec must appear in some program."""
    programs = [generate(seed) for seed in SEEDS]
    used = {step.spec.name for program in programs for step in program.steps}
    missing = sorted(spec.name for spec in OP_SPECS if available(spec) and spec.name not in used)
    assert not missing, f"never drawn: {missing}"
    assert any(program.dtype == "float32" for program in programs)
    assert any(array.ndim == 0 for program in programs for array in program.inputs)
    assert any(step.spec.in_place for program in programs for step in program.steps)
    hooked = [kind for program in programs for _, kind in program.hooks]
    assert set(hooked) == set(HOOKS) and len(hooked) > 100
    assert any(  # a view of an input: non-contiguous, expanded or sliced with a step
        step.spec in PROLOGUE_SPECS and step.operands[0] < len(program.inputs)
        for program in programs
        for step in program.steps
    )
