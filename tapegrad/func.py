"""``tapegrad.func``: PyTorch's functional transforms (``torch.func``), with vmap executed by replay.

``grad``, ``grad_and_value``, ``vjp``, ``jacrev``, ``jacfwd``, ``hessian``, ``vmap`` and
``functional_call`` take and return what ``torch.func``'s do, and compose as they do (``grad`` of
``grad``, ``vmap`` of ``grad``, ``jacrev`` of ``jacrev``). Arguments and results may be pytrees:
tensors in nested tuples, lists and dicts.

The differentiating transforms run tapegrad's eager autograd on fresh differentiable copies of
their inputs. At the outermost level the results are detached; inside another transform the
gradient is computed with ``create_graph=True`` so that the outer transform differentiates it.
``jacfwd`` computes its Jacobian by reverse sweeps (one per output element), as ``jacrev`` does.

``vmap`` records ``f`` once on the first slice of the batch (``tapegrad.record``) and replays
that tape over every slice, on ``tapegrad.get_num_threads()`` threads (each with its own copy
of the tape's value buffers; the sweeps release the GIL). ``vmap(grad(f))`` records ``f`` and
replays its tape forward and backward: the per-slice gradients come from the compiled backward,
with no graph of the gradient built. Sliced int64, int32 and bool tensors (class labels, masks)
are inputs of the tape, read at each replay; sliced integer tensors of other dtypes (uint8,
int16) make vmap run its eager loop. A slice for which a guard of the recording fails (Python control flow read a
value that comes out differently) is recorded again, so results are never those of another
branch. A function that cannot be recorded (a custom ``autograd.Function``, a hook, a gradient
inside the function) runs as a Python loop of eager calls whose results are stacked, as does a
vmap inside another transform (its results must stay differentiable). What happened in the
last call is in ``vmap_stats()``.

``vmap`` keeps no tape between calls (a captured tensor or a Python value the function reads may
have changed). A program that evaluates one function at many inputs records it once itself and
maps the tape: ``vmap(tape)`` and ``vmap(tape.value_and_grad)`` replay a ``tapegrad.record``
tape over the batch in the same compiled calls, with no recording, and give what the tape's own
calls give with the batch dimension added (keywords ``grad_outputs`` and ``argnums`` as
``value_and_grad`` takes them, the same for every slice).

    >>> import tapegrad as tg
    >>> from tapegrad.func import grad, vmap
    >>> x = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> vmap(grad(lambda v: (v**2).sum()))(x)
    tensor([[2., 4.],
            [6., 8.]])
"""

from __future__ import annotations

import functools
import threading
import time
import weakref

import numpy as np

from . import _factories, _threads, replay
from . import _grad_mode as grad_mode
from ._record import LEAF_IN_PLACE, VIEW_OF_LEAF_IN_PLACE
from ._tape import LOCK, resolve, write_watchers
from ._views import stack
from .autograd import functional as _functional
from .replay import GuardError, Tape, beyond_exact
from .tensor import Tensor, _wrap

__all__ = [
    "functional_call",
    "grad",
    "grad_and_value",
    "hessian",
    "jacfwd",
    "jacrev",
    "jvp",
    "vjp",
    "vmap",
    "vmap_stats",
]

# -- pytrees ---------------------------------------------------------------------------------
# A spec is None for a leaf, else (container type, dict keys or None, child specs).


# Recursion through module-level functions with the accumulator as an argument, not through a
# nested function that calls itself: that one is a cycle (function, closure cell) holding the
# leaves, so every vmap's results lived until the collector ran, and their pages could not be
# handed out again (replay._ResultPool).


def _flatten(tree) -> tuple[list, object]:
    leaves: list = []
    return leaves, _walk(tree, leaves)


def _walk(node, leaves: list):
    if isinstance(node, dict):
        keys = tuple(node)
        return (type(node), keys, tuple(_walk(node[key], leaves) for key in keys))
    if isinstance(node, (tuple, list)):
        return (type(node), None, tuple(_walk(child, leaves) for child in node))
    leaves.append(node)
    return None


def _unflatten(spec, leaves):
    return _build(spec, iter(leaves))


def _build(node, iterator):
    if node is None:
        return next(iterator)
    kind, keys, children = node
    values = [_build(child, iterator) for child in children]
    if keys is not None:
        return kind(zip(keys, values))
    if kind is tuple or kind is list:
        return kind(values)
    return kind(*values)  # a namedtuple


def _spec_str(spec) -> str:
    if spec is None:
        return "*"
    kind, keys, children = spec
    inner = ", ".join(
        f"{key!r}: {_spec_str(child)}" if keys is not None else _spec_str(child)
        for key, child in zip(keys or [None] * len(children), children)
    )
    return f"{kind.__name__}({inner})"


def _count(spec) -> int:
    return 1 if spec is None else sum(_count(child) for child in spec[2])


class _MismatchError(Exception):
    pass


def _broadcast(prefix, spec) -> list:
    """One value of ``prefix`` per leaf of ``spec``: a non-container of ``prefix`` applies to
    the whole subtree under it. Raises ``_MismatchError`` when the containers differ."""
    values: list = []
    _broadcast_into(prefix, spec, values)
    return values


def _broadcast_into(node, tree, values: list) -> None:
    if not isinstance(node, (tuple, list, dict)):
        values.extend([node] * _count(tree))
        return
    if tree is None:
        raise _MismatchError
    kind, keys, children = tree
    if isinstance(node, dict):
        if keys is None or set(node) != set(keys):
            raise _MismatchError
        for key, child in zip(keys, children):
            _broadcast_into(node[key], child, values)
        return
    if keys is not None or len(node) != len(children) or isinstance(node, list) != issubclass(kind, list):
        raise _MismatchError
    for value, child in zip(node, children):
        _broadcast_into(value, child, values)


def _map_tensors(function, tree):
    leaves, spec = _flatten(tree)
    return _unflatten(spec, [function(leaf) if isinstance(leaf, Tensor) else leaf for leaf in leaves])


def _detach(tree):
    return _map_tensors(lambda t: t.detach(), tree)


# -- levels ----------------------------------------------------------------------------------


class _State(threading.local):
    stats = None  # what the last vmap call of this thread did


_state = _State()


class _Deeper:
    def __enter__(self):
        grad_mode.state.transforms += 1
        self._grad = grad_mode.differentiating()
        self._grad.__enter__()

    def __exit__(self, *exc_info):
        self._grad.__exit__(*exc_info)
        grad_mode.state.transforms -= 1
        return False


def _nested() -> bool:
    """Whether results must stay differentiable: inside another differentiating transform, or
    inside a recording (where a gradient must be recorded as ops to be replayed)."""
    return grad_mode.state.transforms > 0 or grad_mode.state.recording is not None


# The leaves the transforms make for themselves (inputs' copies, jvp's placeholders), by id, while
# they live: an outer transform's graph holds those of the inner ones, which are not outer tensors.
_INTERNAL_LEAVES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _internal(leaf: Tensor) -> Tensor:
    _INTERNAL_LEAVES[id(leaf)] = leaf
    return leaf


def _outer(leaves) -> bool:
    """Whether an outer backward differentiates through the transform's inputs: grad mode is on
    and one of them requires grad. torch.func's transforms are transparent to autograd, so
    their results then stay connected to those inputs (``(grad(f)(x).sum() + x.sum())
    .backward()`` adds f's Hessian to ``x.grad``)."""
    return grad_mode.is_grad_enabled() and any(_requires_grad(leaf) for leaf in leaves)


def _differentiated(args, positions) -> list:
    """The tensors of the arguments at ``positions`` (pytrees flattened)."""
    return [leaf for position in positions for leaf in _flatten(args[position])[0]]


def _reads_outer(outputs, copies) -> bool:
    """Whether, grad mode on, the graph of ``outputs`` reads a tensor that requires grad other than the
    transform's own ``copies`` of its inputs: a parameter the function captured, or an argument
    not differentiated. An outer backward reaches it through the results, as through
    torch.func's, so they must stay connected. Looks at the leaves of the outputs' tapes: a
    tape joined with an outer graph counts that graph's leaves too (the results then require
    grad, as they would in PyTorch, whose graph they join)."""
    if not grad_mode.is_grad_enabled():
        return False
    own = {id(copy) for copy in copies}
    seen = set()
    internal = _INTERNAL_LEAVES
    for out in outputs:
        if not isinstance(out, Tensor) or out._tape is None:
            continue
        tape = resolve(out)
        if id(tape) in seen:
            continue
        seen.add(id(tape))
        if any(
            tensor._requires_grad and id(tensor) not in own and internal.get(id(tensor)) is not tensor
            for _, tensor in tape.leaves
        ):
            return True
    return False


def _differentiable(x, nested: bool):
    """The transform's own differentiable copy of an input: a view of it when an outer transform
    differentiates it too (the result stays connected), otherwise a fresh leaf."""
    if not isinstance(x, Tensor):
        raise ValueError(f"Thing passed to transform API must be Tensor, got {type(x)}")
    if nested and x.requires_grad:
        return x.view_as(x)
    return _internal(x.detach().requires_grad_())


def _gradients(outputs, inputs, grad_outputs, create_graph: bool) -> tuple:
    """d outputs / d inputs weighted by ``grad_outputs``; zeros for inputs nothing reached."""
    return _functional._gradients(outputs, inputs, grad_outputs, create_graph, retain_graph=True)


def _argnums(argnums, count: int) -> tuple[tuple, bool]:
    """``(positions, whether argnums was one int)``, checked as torch.func checks them."""
    single = isinstance(argnums, int) and not isinstance(argnums, bool)
    values = (argnums,) if single else argnums
    if not single and not (isinstance(argnums, tuple) and all(isinstance(a, int) for a in argnums)):
        raise RuntimeError(f"argnums must be int or Tuple[int, ...], got: {type(argnums)}")
    if not values:
        raise RuntimeError("argnums must be non-empty")
    positions = []
    for argnum in values:
        if not -count <= argnum < count:
            raise RuntimeError(f"Got argnum={argnum}, but only {count} positional inputs")
        positions.append(argnum % count)
    if len(set(positions)) != len(positions):
        raise RuntimeError(f"argnums must be unique, got {argnums}")
    return tuple(positions), single


def _prepare(args, positions, nested: bool) -> tuple[list, list, list]:
    """The arguments with those at ``positions`` replaced by differentiable copies, the specs of
    those arguments and their flat copies."""
    args = list(args)
    specs, flats = [], []
    for position in positions:
        leaves, spec = _flatten(args[position])
        copies = [_differentiable(leaf, nested) for leaf in leaves]
        args[position] = _unflatten(spec, copies)
        specs.append(spec)
        flats.append(copies)
    return args, specs, flats


def _split_aux(result, has_aux: bool, caller: str):
    if not has_aux:
        return result, None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise RuntimeError(f"{caller}: output of function f should be a tuple: (output, aux) if has_aux is True")
    for leaf in _flatten(result[1])[0]:  # (PyTorch's: an aux of other things is not passed through)
        if not isinstance(leaf, Tensor):
            raise RuntimeError(f"Expected tensors, got unsupported type {type(leaf)}")
    return result


def _check_scalar(output) -> None:
    if not isinstance(output, Tensor):
        raise RuntimeError(f"grad_and_value(f)(*args): Expected f(*args) to return a Tensor, got {type(output)}")
    if output.dim() != 0:
        raise RuntimeError(
            f"grad_and_value(f)(*args): Expected f(*args) to return a scalar Tensor, got tensor with {output.dim()} "
            "dims. Maybe you wanted to use the vjp or jacrev APIs instead?"
        )


# -- grad ------------------------------------------------------------------------------------


class _GradTransform:
    """What ``grad``/``grad_and_value`` return: callable, and recognised by ``vmap``, which
    replays the tape of ``func`` backward instead of building the gradient's graph."""

    def __init__(self, func, argnums, has_aux: bool, with_value: bool):
        self.func = func
        self.argnums = argnums
        self.has_aux = has_aux
        self.with_value = with_value
        self.__name__ = getattr(func, "__name__", type(func).__name__)
        self.__doc__ = getattr(func, "__doc__", None)
        self.__wrapped__ = func

    def __call__(self, *args, **kwargs):
        positions, single = _argnums(self.argnums, len(args))
        nested = _nested() or _outer(_differentiated(args, positions))
        args, specs, flats = _prepare(args, positions, nested)
        with _Deeper():
            result = self.func(*args, **kwargs)
        output, aux = _split_aux(result, self.has_aux, "grad_and_value(f)(*args)")
        _check_scalar(output)
        inputs = [x for flat in flats for x in flat]
        nested = nested or _reads_outer([output], inputs)
        gradients = iter(_gradients([output], inputs, [None], nested))
        trees = [_unflatten(spec, [next(gradients) for _ in flat]) for spec, flat in zip(specs, flats)]
        grads = trees[0] if single else tuple(trees)
        if not nested:
            grads, output, aux = _detach(grads), output.detach(), _detach(aux)
        return self._pack(grads, output, aux)

    def _pack(self, grads, value, aux):
        if self.with_value:
            return (grads, (value, aux)) if self.has_aux else (grads, value)
        return (grads, aux) if self.has_aux else grads

    def __repr__(self) -> str:
        kind = "grad_and_value" if self.with_value else "grad"
        return f"<tapegrad.func.{kind} of {self.func!r}>"


def grad(func, argnums=0, has_aux: bool = False):
    """The gradient of a scalar function: ``grad(f)(*args)`` is d f(*args) / d args[argnums];
    follows ``torch.func.grad``.

    ``argnums`` is an int (the gradient has that argument's structure: a tensor, or a dict,
    tuple or list of tensors, each gradient of its tensor's shape and dtype) or a tuple of ints
    (a tuple of those). With ``has_aux=True`` ``f`` returns ``(output, aux)`` and the result is
    ``(gradient, aux)``. The inputs need not require grad. As torch.func's, the results stay
    differentiable inside another transform (``grad(grad(f))`` is the second derivative) and,
    while grad mode is on, in the inputs and captured tensors that require grad (an outer
    ``backward`` reaches them through the gradient); otherwise they are detached.

    Raises ``RuntimeError`` with PyTorch's messages when ``f`` returns something else than a
    0-dim tensor, when ``has_aux`` is set and ``f`` does not return a pair, for an ``argnums``
    out of range or not an int or tuple of ints, and for an input that is not floating point.

    >>> import tapegrad as tg
    >>> from tapegrad.func import grad
    >>> grad(lambda x: (x**3).sum())(tg.tensor([1.0, 2.0]))
    tensor([ 3., 12.])
    >>> grad(grad(lambda x: x**3))(tg.tensor(2.0))
    tensor(12.)
    """
    return _GradTransform(func, argnums, has_aux, with_value=False)


def grad_and_value(func, argnums=0, has_aux: bool = False):
    """``(gradient, value)`` of a scalar function in one call (``(gradient, (value, aux))``
    with ``has_aux``); follows ``torch.func.grad_and_value``. Shapes and dtypes as ``grad``;
    raises what ``grad`` raises.

    >>> import tapegrad as tg
    >>> from tapegrad.func import grad_and_value
    >>> grad_and_value(lambda x: (x * x).sum())(tg.tensor([1.0, 2.0]))
    (tensor([2., 4.]), tensor(5.))
    """
    return _GradTransform(func, argnums, has_aux, with_value=True)


# -- vjp, jacrev, jacfwd, hessian ------------------------------------------------------------


def _only_tensors(leaves, caller: str) -> None:
    for leaf in leaves:
        if not isinstance(leaf, Tensor):
            raise RuntimeError(
                f"{caller}: expected f(*primals) to return only tensors, got unsupported type {type(leaf)}"
            )


def _only_floating(leaves, caller: str) -> None:
    """PyTorch's refusal of reverse mode from an integer or bool output, whose Jacobian came out
    as zeros here."""
    for leaf in leaves:
        if leaf._data.dtype.kind != "f":
            raise RuntimeError(
                f"{caller}: All outputs of f must be floating-point or complex Tensors, got Tensor with dtype "
                f"{leaf.dtype}"
            )


def _called(func, leaves: list, spec, nested: bool, has_aux: bool, caller: str) -> tuple:
    """``func`` called on differentiable copies of ``leaves`` (the structure ``spec``):
    ``(copies, output, aux, flat outputs, their structure)``, the outputs checked to be tensors."""
    inputs = [_differentiable(leaf, nested) for leaf in leaves]
    with _Deeper():
        result = func(*_unflatten(spec, inputs))
    output, aux = _split_aux(result, has_aux, caller)
    outputs, output_spec = _flatten(output)
    _only_tensors(outputs, caller)
    return inputs, output, aux, outputs, output_spec


def vjp(func, *primals, has_aux: bool = False):
    """``(func(*primals), vjp_fn)`` (``(output, vjp_fn, aux)`` with ``has_aux``), where
    ``vjp_fn(cotangents)`` is the tuple, one entry per primal and of its structure, of
    ``cotangents`` times the Jacobian of ``func``; follows ``torch.func.vjp``.

    ``cotangents`` has the output's structure, each tensor of its output's shape; ``vjp_fn`` may
    be called several times. Raises ``RuntimeError`` as PyTorch does for an output that is not
    tensors, cotangents of another structure or shape, and ``has_aux`` without a pair.

    >>> import tapegrad as tg
    >>> from tapegrad.func import vjp
    >>> out, vjp_fn = vjp(lambda x: x * x, tg.tensor([1.0, 2.0]))
    >>> vjp_fn(tg.ones(2))
    (tensor([2., 4.]),)
    """
    leaves, spec = _flatten(primals)
    nested = _nested() or _outer(leaves)
    inputs, output, aux, outputs, output_spec = _called(func, leaves, spec, nested, has_aux, "vjp(f, *primals)")
    _only_floating(outputs, "vjp(f, ...)")
    nested = nested or _reads_outer(outputs, inputs)

    def vjp_fn(cotangents):
        seeds, seed_spec = _flatten(cotangents)
        if seed_spec != output_spec:
            raise RuntimeError(
                "Expected pytree structure of cotangents to be the same as pytree structure of outputs to the "
                f"function. cotangents: {_spec_str(seed_spec)}, primal output: {_spec_str(output_spec)}"
            )
        for index, (seed, out) in enumerate(zip(seeds, outputs)):
            if not isinstance(seed, Tensor) or seed.shape != out.shape:
                shape = seed.shape if isinstance(seed, Tensor) else type(seed)
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[{index}] has a shape of {shape} and output[{index}] has a shape of "
                    f"{out.shape}."
                )
        keep = nested or _nested()
        grads = _unflatten(spec, _gradients(outputs, inputs, seeds, keep))
        return grads if keep else _detach(grads)

    if not nested:
        output, aux = _detach(output), _detach(aux)
    return (output, vjp_fn, aux) if has_aux else (output, vjp_fn)


def _treespec(spec) -> str:
    """A structure as ``torch.utils._pytree.TreeSpec`` prints it, for PyTorch's messages."""
    if spec is None:
        return "*"
    kind, keys, children = spec
    shown = [_treespec(child) for child in children]
    inner = shown[0] if len(shown) == 1 else ",\n  ".join(shown)
    return f"TreeSpec({kind.__name__}, {list(keys) if keys is not None else None}, [{inner}])"


def jvp(func, primals, tangents, *, strict: bool = False, has_aux: bool = False):
    """``(func(*primals), J t)`` (``(output, jvp_out, aux)`` with ``has_aux``): the product of
    the Jacobian of ``func`` at ``primals`` with ``tangents``, of the output's structure and
    shapes; follows ``torch.func.jvp``.

    ``primals`` is a tuple (of tensors, or of nested tuples, lists and dicts of them) and
    ``tangents`` has its structure and shapes. tapegrad has no forward mode: ``J t`` comes from
    two reverse sweeps, the first giving ``u -> J^T u`` for a placeholder ``u`` as a recorded
    graph, the second differentiating ``t . J^T u`` with respect to ``u``; twice the cost of
    one backward, whatever the sizes. It composes with the other transforms (``jvp`` of
    ``grad`` is a Hessian-vector product). ``strict`` is accepted for PyTorch's signature.
    Raises ``RuntimeError`` with PyTorch's messages for primals that are not a tuple, tangents
    of another structure or shape, and outputs that are not tensors.

    >>> import tapegrad as tg
    >>> from tapegrad.func import jvp
    >>> jvp(lambda x: x**2, (tg.tensor([1.0, 2.0]),), (tg.ones(2),))
    (tensor([1., 4.]), tensor([2., 4.]))
    """
    if not isinstance(primals, tuple):
        raise RuntimeError(
            "jvp(f, primals, tangents): Expected primals to be a tuple. E.g. it should be valid to call f(*primals)."
        )
    leaves, spec = _flatten(primals)
    directions, direction_spec = _flatten(tangents)
    if direction_spec != spec:
        raise RuntimeError(
            "jvp(f, primals, tangents): Expected primals and tangents to have the same python structure. For "
            "example, if primals is a tuple of 3 tensors, tangents also must be. Got primals with structure "
            f"{_treespec(spec)} and tangents with structure {_treespec(direction_spec)}"
        )
    if not leaves:
        raise RuntimeError("jvp(f, primals, tangents): Expected primals to contain at least one Tensor.")
    for primal, direction in zip(leaves, directions):
        if not isinstance(primal, Tensor) or not isinstance(direction, Tensor):
            raise RuntimeError("jvp(f, primals, tangents): Expected primals and tangents to only contain Tensors")
        if primal._data.dtype.kind != "f":
            raise ValueError(f"Expected primal to be floating point or complex, but got: {primal.dtype}")
        if direction.shape != primal.shape:
            raise RuntimeError(
                "Trying to set a forward gradient that has a different size than that of the original Tensor, this "
                f"is not supported. Tensor is of size {list(primal.shape)} while the given forward gradient is of "
                f"size {list(direction.shape)}."
            )
    # Kept differentiable inside another transform, and for an outer backward through primals or
    # tangents that require grad (torch.func's transforms are transparent to autograd).
    nested = _nested() or _outer(leaves + directions)
    caller = "jvp(f, primals, tangents)"
    grad_mode.state.jvp += 1  # (``no_grad`` in ``func`` raises: it would stop the reverse sweeps)
    try:
        inputs, output, aux, outputs, output_spec = _called(func, leaves, spec, nested, has_aux, caller)
    finally:
        grad_mode.state.jvp -= 1
    nested = nested or _reads_outer(outputs, inputs)
    with _Deeper():
        floating = [out.is_floating_point() for out in outputs]
        placeholders = [
            _internal(_factories.zeros_like(out).requires_grad_()) for out, f in zip(outputs, floating) if f
        ]
        chosen = [out for out, f in zip(outputs, floating) if f]
        transposed = _gradients(chosen, inputs, placeholders, True)  # J^T u, linear in u
        # d/du of t . J^T u is J t; t enters as a factor, so the result is differentiable in it.
        product = None
        for part, direction in zip(transposed, directions):
            term = (part * direction.to(part.dtype)).sum()
            product = term if product is None else product + term
        found = iter(_gradients([product], placeholders, [_factories.ones_like(product)], nested) if chosen else ())
    # An integer output's tangent is zero, of its dtype (PyTorch's float0 aside).
    products = [next(found) if f else _factories.zeros_like(out) for out, f in zip(outputs, floating)]
    products = _unflatten(output_spec, products)
    if not nested:
        output, products, aux = _detach(output), _detach(products), _detach(aux)
    return (output, products, aux) if has_aux else (output, products)


def _jacobian_transform(func, argnums, has_aux: bool, caller: str, randomness: str = "same"):
    forward_mode = caller == "jacfwd"  # PyTorch's goes through no_grad, which stops these sweeps

    def jacobian(*args, **kwargs):
        positions, single = _argnums(argnums, len(args))
        differentiated = _differentiated(args, positions)
        for primal in differentiated if forward_mode else ():  # (jvp's check: a tangent of an int is none)
            if isinstance(primal, Tensor) and primal._data.dtype.kind != "f":
                raise ValueError(f"Expected primal to be floating point or complex, but got: {primal.dtype}")
        nested = _nested() or _outer(differentiated)
        args, specs, flats = _prepare(args, positions, nested)
        grad_mode.state.jvp += forward_mode  # (``no_grad`` in ``func`` raises, as in ``jvp``)
        draws = _factories.random_draws.count
        try:
            with _Deeper():
                result = func(*args, **kwargs)
        finally:
            grad_mode.state.jvp -= forward_mode
        if randomness == "error" and _factories.random_draws.count != draws:  # (PyTorch's jacfwd is a vmap)
            raise RuntimeError(_RANDOM_ERROR)
        output, aux = _split_aux(result, has_aux, f"{caller}(f, ...)(*args)")
        outputs, output_spec = _flatten(output)
        _only_tensors(outputs, "vjp(f, *primals)")
        if not forward_mode:  # (jacfwd's Jacobian of an integer output is zeros, as PyTorch's)
            _only_floating(outputs, "vjp(f, ...)")
        inputs = [x for flat in flats for x in flat]
        nested = nested or _reads_outer(outputs, inputs)
        per_output = []
        for out in outputs:
            blocks = iter(_functional._jacobian_of(out, tuple(inputs), nested))
            if forward_mode:  # a forward mode's tangents are the output's dtype (the input's here)
                blocks = (b if b.dtype == out.dtype else b.to(out.dtype) for b in blocks)
            trees = [_unflatten(spec, [next(blocks) for _ in flat]) for spec, flat in zip(specs, flats)]
            per_output.append(trees[0] if single else tuple(trees))
        jacobians = _unflatten(output_spec, per_output)
        if not nested:
            jacobians, aux = _detach(jacobians), _detach(aux)
        return (jacobians, aux) if has_aux else jacobians

    return functools.wraps(func)(jacobian)  # the function's name and docstring, as PyTorch's


def jacrev(func, argnums=0, has_aux: bool = False, *, chunk_size=None):
    """The Jacobian of ``func`` with respect to ``args[argnums]`` by reverse sweeps (one per
    output element, over one recording); follows ``torch.func.jacrev``.

    Each output tensor of shape ``O`` becomes, per differentiated input of shape ``I``, a tensor
    of shape ``O + I`` of the input's dtype: the structure is the output's with each tensor
    replaced by the argument's structure (a tuple of them for a tuple ``argnums``). With
    ``has_aux`` the result is ``(jacobian, aux)``. ``chunk_size`` is accepted for PyTorch's
    signature (``ValueError`` unless positive, as PyTorch). Raises ``RuntimeError`` as ``vjp``
    and ``grad`` do.

    >>> import tapegrad as tg
    >>> from tapegrad.func import jacrev
    >>> jacrev(lambda x: x**2)(tg.tensor([1.0, 2.0]))
    tensor([[2., 0.],
            [0., 4.]])
    """
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError("jacrev: `chunk_size` should be greater than 0.")
    return _jacobian_transform(func, argnums, has_aux, "jacrev")


def jacfwd(func, argnums=0, has_aux: bool = False, *, randomness: str = "error"):
    """The Jacobian, as ``jacrev`` gives it (shapes, errors) but in each output's dtype, as a
    forward mode gives it; follows ``torch.func.jacfwd``, but is computed by reverse sweeps:
    tapegrad has no forward mode. The values are the same; the cost is one reverse sweep per
    output element. Raises what ``jacrev`` raises, ``RuntimeError`` for a ``randomness`` other
    than PyTorch's three, and PyTorch's vmap ``RuntimeError`` for a random op with
    ``randomness="error"`` (the default: PyTorch's jacfwd is a vmap; the others draw once).

    >>> import tapegrad as tg
    >>> from tapegrad.func import jacfwd
    >>> jacfwd(lambda x: x.sin().sum())(tg.zeros(2))
    tensor([1., 1.])
    """
    if randomness not in ("error", "different", "same"):
        raise RuntimeError(f"Only allowed values for randomness are 'error', 'different', or 'same'. Got {randomness}")
    return _jacobian_transform(func, argnums, has_aux, "jacfwd", randomness)


def hessian(func, argnums=0):
    """The matrix of second derivatives of a scalar function: ``jacfwd(jacrev(func, argnums),
    argnums)``; follows ``torch.func.hessian``. For an input of shape ``I`` the result has shape
    ``I + I`` (nested tuples for a tuple ``argnums``). Raises as ``jacrev`` does.

    >>> import tapegrad as tg
    >>> from tapegrad.func import hessian
    >>> hessian(lambda x: (x**3).sum())(tg.tensor([1.0, 2.0]))
    tensor([[ 6.,  0.],
            [ 0., 12.]])
    """
    return jacfwd(jacrev(func, argnums), argnums)


# -- functional_call -------------------------------------------------------------------------


def _owner(module, name: str):
    path, _, leaf = name.rpartition(".")
    owner = module
    for part in path.split(".") if path else ():
        owner = owner._modules.get(part) if hasattr(owner, "_modules") else None
        if owner is None:
            return None, leaf
    return owner, leaf


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *, tie_weights=True, strict=False):
    """Call ``module(*args, **kwargs)`` with its parameters and buffers replaced by the tensors
    of ``parameter_and_buffer_dicts`` (a dict of name to tensor, as ``named_parameters()``
    names them, or a sequence of such dicts); follows ``torch.func.functional_call``.

    The module is restored afterwards, also when the call raises. Names not given keep the
    module's tensors (with ``tie_weights``, a tensor given for one of several names the module
    shares it under replaces it under all of them). ``args`` that is not a tuple is the single
    positional argument. Raises ``ValueError`` for a name in several dicts (or different values
    for tied names) and, with ``strict=True``, ``RuntimeError`` naming missing and unexpected
    keys, with PyTorch's messages.

    >>> import tapegrad as tg
    >>> from tapegrad.func import functional_call
    >>> layer = tg.nn.Linear(2, 1)
    >>> functional_call(layer, {"weight": tg.ones(1, 2), "bias": tg.zeros(1)}, (tg.tensor([1.0, 2.0]),))
    tensor([3.])
    """
    if isinstance(parameter_and_buffer_dicts, dict):
        mapping = dict(parameter_and_buffer_dicts)
    else:
        mapping = {}
        repeated = []
        if not all(isinstance(dictionary, dict) for dictionary in parameter_and_buffer_dicts):
            raise ValueError("Expected all elements of parameter_and_buffer_dicts to be dictionaries")
        for dictionary in parameter_and_buffer_dicts:
            repeated += [key for key in dictionary if key in mapping]
            mapping.update(dictionary)
        if repeated:
            raise ValueError(f"{repeated} appeared in multiple dictionaries; behavior of functional call is ambiguous")
    named = list(module.named_parameters(remove_duplicate=False)) + list(module.named_buffers(remove_duplicate=False))
    if tie_weights:
        groups = {}
        for name, tensor in named:
            groups.setdefault(id(tensor), []).append(name)
        for names in groups.values():
            given = [name for name in names if name in mapping]
            if len(names) > 1 and given:
                values = {id(mapping[name]) for name in given}
                if len(values) > 1:
                    raise ValueError(
                        f"functional_call got multiple values for keys {given}, which are tied. "
                        "Consider using tie_weights=False"
                    )
                for name in names:
                    mapping.setdefault(name, mapping[given[0]])
    if strict:
        known = {name for name, _ in named}
        errors = []
        unexpected = [key for key in mapping if key not in known]
        missing = [name for name in known if name not in mapping]
        if unexpected:
            errors.append("Unexpected key(s): " + ", ".join(f"'{key}'" for key in unexpected) + ".")
        if missing:
            errors.append("Missing key(s): " + ", ".join(f"'{key}'" for key in sorted(missing)) + ".")
        if errors:
            raise RuntimeError(f"Error(s) in reparametrizing for {type(module).__name__}:\n\t" + "\n\t".join(errors))
    if args is None:
        args = ()
    elif not isinstance(args, tuple):
        args = (args,)
    for tensor in mapping.values():  # PyTorch's check, before anything is swapped
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{tensor} is not an instance of torch.Tensor")
    restore = []
    originals = []  # (tensor, its values) of parametrized tensors given by their own name
    swapped = []  # (name, tensor) of each entry of ``restore``
    try:
        for name, tensor in mapping.items():
            owner, leaf = _owner(module, name)
            if owner is None:
                missing = name.split(".")[0]
                raise AttributeError(f"{type(module).__name__} has no attribute `{missing}`")
            parametrizations = owner.__dict__.get("parametrizations")
            if parametrizations is not None and leaf in parametrizations._modules:
                # ``weight`` of a parametrized module (a property of its class, which the
                # attribute set below never reached: the module's own weight was used, silently).
                # As PyTorch's: ``original`` takes ``right_inverse(tensor)``'s values for the call,
                # the gradient going to it, and its own values after.
                chain = parametrizations[leaf]
                count = 1 if chain.is_tensor else chain.ntensors
                for held in (
                    [chain.original] if chain.is_tensor else [getattr(chain, f"original{i}") for i in range(count)]
                ):
                    originals.append((held, held.data))
                chain.right_inverse(tensor)
                continue
            registry = next((r for r in (owner._parameters, owner._buffers) if leaf in r), None)
            attributes = owner.__dict__
            restore.append(
                (
                    registry,
                    leaf,
                    registry[leaf] if registry is not None else None,
                    attributes,
                    leaf in attributes,
                    attributes.get(leaf),
                )
            )
            if registry is not None:
                registry[leaf] = tensor
            attributes[leaf] = tensor
            swapped.append((name, tensor))
        result = module(*args, **(kwargs or {}))
        # A tensor the call assigned anew (a buffer's ``self.count = self.count + 1``) goes back
        # into the caller's dict, as PyTorch writes it: the next call starts from it.
        dicts = (
            [parameter_and_buffer_dicts] if isinstance(parameter_and_buffer_dicts, dict) else parameter_and_buffer_dicts
        )
        for (_, leaf, _, attributes, _, _), (name, tensor) in zip(restore, swapped):
            now = attributes.get(leaf)
            if now is not tensor:
                for dictionary in dicts:
                    if name in dictionary:
                        dictionary[name] = now
        return result
    finally:
        for held, values in reversed(originals):
            held.data = values
        for registry, leaf, old, attributes, had, old_attribute in reversed(restore):
            if registry is not None:
                registry[leaf] = old
            if had:
                attributes[leaf] = old_attribute
            else:
                attributes.pop(leaf, None)


# -- vmap ------------------------------------------------------------------------------------


def vmap_stats() -> dict | None:
    """What the last ``vmap`` call of this thread did (None before the first), a dict:

    ``path``: ``"replay"`` (the function's tape replayed per slice), ``"grad-replay"`` (the tape
    of the function inside ``grad``/``grad_and_value`` replayed forward and backward) or
    ``"eager"`` (a Python loop of eager calls); ``reason``: why eager; ``batch``: the batch
    size; ``recordings``: tapes recorded (one per distinct value of the integer tensors
    sliced, plus the re-recordings); ``rerecords``: slices recorded again because a guard of
    the recording failed for them; ``reused``: whether the call's recording was the last
    call's exactly, whose tape, already laid out, it then replayed (the function still ran);
    ``speculated``: whether that replay started on a background thread before the function
    ran (two threads or more), and was kept; ``threads``: threads used. tapegrad's own
    (``torch.func`` has no such thing); raises nothing.

    >>> import tapegrad as tg
    >>> from tapegrad.func import vmap, vmap_stats
    >>> _ = vmap(lambda x: x * 2 if x.sum() > 0 else -x)(tg.tensor([[1.0], [-1.0]]))
    >>> vmap_stats()["path"], vmap_stats()["rerecords"]
    ('replay', 1)
    """
    return _state.stats


class _UnrecordableError(Exception):
    """The function cannot be replayed from a tape: run it eagerly."""


def _take(tensor: Tensor, dim: int, index: int) -> Tensor:
    return tensor[(slice(None),) * dim + (index,)]


class _VmapTransform:
    def __init__(self, func, in_dims, out_dims, randomness, chunk_size):
        self.func = func
        self.in_dims = in_dims
        self.out_dims = out_dims
        self.randomness = randomness
        self.chunk_size = chunk_size
        self.__name__ = getattr(func, "__name__", type(func).__name__)
        self.__doc__ = getattr(func, "__doc__", None)
        self.__wrapped__ = func
        # The last call's recording, when it had no guard on a value: the next call records
        # ``func`` again (as torch.func calls it every time) and replays this one if the two are
        # the same (``Tape._recorded_again``).
        self.last_recording = None
        # What the last calls took: (its recording, one slice's replay on one thread), in
        # seconds; and whether the next call replays the last recording while it records
        # again (``_Speculation``): until a recording differs from the last one.
        self.pace = None
        self.speculate = True

    def __repr__(self) -> str:
        return f"<tapegrad.func.vmap of {self.func!r}>"

    # -- arguments

    def _slicing(self, args):
        """``(leaves, spec, dims, batch)``: the flat arguments, their in_dims (None or a
        non-negative dim) and the batch size, checked as torch.func checks them."""
        name, in_dims = self.__name__, self.in_dims
        where = f"vmap({name}, in_dims={in_dims}, ...)(<inputs>)"
        if not args:
            raise ValueError(
                f"vmap({name})(<inputs>): got no inputs. Maybe you forgot to add inputs, or you are trying to vmap "
                "over a function with no inputs. The latter is unsupported."
            )
        if not (isinstance(in_dims, int) or isinstance(in_dims, tuple)) or isinstance(in_dims, bool):
            raise ValueError(
                f"{where}: expected `in_dims` to be int or a (potentially nested) tuple matching the structure of "
                f"inputs, got: {type(in_dims)}."
            )
        leaves, spec = _flatten(tuple(args))
        try:
            dims = _broadcast(in_dims, spec)
        except _MismatchError:
            _, in_spec = _flatten(in_dims)
            raise ValueError(
                f"{where}: in_dims is not compatible with the structure of `inputs`. in_dims has structure "
                f"{_spec_str(in_spec)} but inputs has structure {_spec_str(spec)}."
            ) from None
        sizes = []
        for index, (leaf, dim) in enumerate(zip(leaves, dims)):
            if dim is None:
                continue
            if not isinstance(dim, int) or isinstance(dim, bool):
                raise ValueError(
                    f"{where}: Got in_dim={dim} for an input but in_dim must be either an integer dimension or None."
                )
            if not isinstance(leaf, Tensor):
                raise ValueError(
                    f"{where}: Got in_dim={dim} for an input but the input is of type {type(leaf)}. We cannot vmap "
                    "over non-Tensor arguments, please use None as the respective in_dim"
                )
            ndim = leaf.dim()
            if not -ndim <= dim < ndim:
                raise ValueError(
                    f"{where}: Got in_dim={dim} for some input, but that input is a Tensor of dimensionality {ndim} "
                    f"so expected in_dim to satisfy -{ndim} <= in_dim < {ndim}."
                )
            dims[index] = dim % ndim
            sizes.append(leaf.shape[dims[index]])
        if not sizes:
            raise ValueError("vmap: Expected at least one Tensor to vmap over")
        if len(set(sizes)) > 1:
            raise ValueError(
                f"vmap: Expected all tensors to have the same size in the mapped dimension, got sizes {sizes} for "
                "the mapped dimension"
            )
        return leaves, spec, dims, sizes[0]

    def _out_dims(self, spec) -> list:
        out_dims = self.out_dims
        if any(dim is not None and not isinstance(dim, int) for dim in _flatten(out_dims)[0]):
            raise ValueError(  # (a string compared with ints inside, a TypeError of Python's)
                f"vmap({self.__name__}, ..., out_dims={out_dims}): `out_dims` must be an int, None or a python "
                "collection of ints representing where in the outputs the vmapped dimension should appear."
            )
        if spec is None and isinstance(out_dims, tuple) and len(out_dims) == 1:
            out_dims = out_dims[0]  # (a one-element tuple for a single tensor, as torch.func takes it)
        try:
            return _broadcast(out_dims, spec)
        except _MismatchError:
            _, out_spec = _flatten(self.out_dims)
            raise ValueError(
                f"vmap({self.__name__}, ..., out_dims={self.out_dims})(<inputs>): out_dims is not compatible with the "
                f"structure of `outputs`. out_dims has structure {_spec_str(out_spec)} but outputs has structure "
                f"{_spec_str(spec)}."
            ) from None

    def _check_outputs(self, leaves) -> None:
        for leaf in leaves:
            if not isinstance(leaf, Tensor):
                raise ValueError(
                    f"vmap({self.__name__}, ...): `{self.__name__}` must only return Tensors, got type {type(leaf)}. "
                    "Did you mean to set out_dims= to None for output?"
                )

    @staticmethod
    def _check_out_dim(dim, ndim: int) -> int:
        if not -(ndim + 1) <= dim <= ndim:
            raise IndexError(
                f"Dimension out of range (expected to be in range of [{-(ndim + 1)}, {ndim}], but got {dim})"
            )
        return dim % (ndim + 1)

    def _place(self, output):
        """``output``'s tensors (batch first) with their batch dimension moved to ``out_dims``
        (None: taken from the first slice, checked to be the same for all); None stays None."""
        if type(self.out_dims) is int and self.out_dims == 0:
            return output  # (where they are: every output has dimension 0)
        leaves, out_spec = _flatten(output)
        placed = []
        for leaf, dim in zip(leaves, self._out_dims(out_spec)):
            if leaf is None:
                placed.append(None)
            elif dim is None:
                if leaf.shape[0] and not _slices_equal(leaf._data):
                    raise ValueError(
                        f"vmap({self.__name__}, ...): `{self.__name__}` can not return a BatchedTensor when out_dim "
                        "is None"
                    )
                placed.append(_wrap(leaf._data[0].copy()))
            else:
                dim = self._check_out_dim(dim, leaf.dim() - 1)
                placed.append(leaf if dim == 0 else _wrap(np.ascontiguousarray(np.moveaxis(leaf._data, 0, dim))))
        return _unflatten(out_spec, placed)

    # -- calling

    def __call__(self, *args, **kwargs):
        grad_mode.state.vmaps += 1  # (batch_norm refuses to update running statistics inside)
        try:
            return self._call(*args, **kwargs)
        finally:
            grad_mode.state.vmaps -= 1

    def _call(self, *args, **kwargs):
        tape, with_grad = _recorded_tape(self.func)
        if tape is not None:  # a tape's inputs may be arrays: tensors for the checks below
            args = tuple(_wrap(arg) if isinstance(arg, np.ndarray) else arg for arg in args)
        leaves, spec, dims, batch = self._slicing(args)
        stats = {
            "path": "eager", "reason": None, "batch": batch, "recordings": 0, "rerecords": 0, "threads": 1,
            "reused": False, "speculated": False,
        }  # fmt: skip
        _state.stats = stats
        if tape is not None and batch and not _nested() and not any(_requires_grad(leaf) for leaf in leaves):
            try:
                return _TapeBatch(self, tape, with_grad, leaves, spec, dims, batch, kwargs, stats).run()
            finally:
                _state.stats = stats
        if _nested():
            stats["reason"] = "inside another transform or a recording"
        elif any(_requires_grad(leaf) for leaf in leaves):
            stats["reason"] = "an input requires grad"
        elif self.randomness == "different":
            stats["reason"] = "randomness='different'"
        elif batch == 0:
            stats["reason"] = "an empty batch"
        else:
            try:
                return _Replay(self, leaves, spec, dims, batch, kwargs, stats).run()
            except _UnrecordableError as why:
                stats.update(
                    path="eager", reason=str(why), recordings=0, rerecords=0, threads=1, reused=False, speculated=False
                )
            finally:
                _state.stats = stats  # vmaps inside the function (run while recording) set theirs
        try:
            return self._eager(leaves, spec, dims, batch, kwargs)
        finally:
            _state.stats = stats

    def _eager(self, leaves, spec, dims, batch, kwargs):
        """A Python loop of calls, one per slice, whose outputs are stacked (differentiably)."""
        if batch == 0:
            return self._empty(leaves, spec, dims, kwargs)
        generator = _factories.default_generator() if self.randomness == "same" else None
        state = generator.bit_generator.state if generator is not None else None
        results = []
        with _WritesAcrossSlices(self.__name__) as writes:
            for index in range(batch):
                current = [leaf if dim is None else _take(leaf, dim, index) for leaf, dim in zip(leaves, dims)]
                if generator is not None:
                    generator.bit_generator.state = state  # every slice draws the same numbers
                draws = _factories.random_draws.count
                writes.slice = index
                results.append(self.func(*_unflatten(spec, current), **kwargs))
                writes.check()
                if self.randomness == "error" and _factories.random_draws.count != draws:
                    raise RuntimeError(_RANDOM_ERROR)
        flats = [_flatten(result) for result in results]
        out_spec = flats[0][1]
        out_dims = self._out_dims(out_spec)
        columns = list(zip(*[flat for flat, _ in flats])) if flats else []
        stacked = []
        for position, dim in enumerate(out_dims):
            column = columns[position]
            if dim is None:
                if any(c is not column[0] and not _same(c, column[0]) for c in column[1:]):
                    raise ValueError(
                        f"vmap({self.__name__}, ...): `{self.__name__}` can not return a BatchedTensor when out_dim "
                        "is None"
                    )
                stacked.append(column[0])
                continue
            self._check_outputs(column)
            stacked.append(stack(list(column), self._check_out_dim(dim, column[0].dim())))
        return _unflatten(out_spec, stacked)

    def _empty(self, leaves, spec, dims, kwargs):
        """An empty batch, as torch.func gives it: each output with an extent 0 at its out_dim.
        The function runs once on a slice of zeros, for the outputs' shapes and dtypes."""
        dummy = [
            leaf if dim is None else _wrap(np.zeros(leaf.shape[:dim] + leaf.shape[dim + 1 :], leaf._data.dtype))
            for leaf, dim in zip(leaves, dims)
        ]
        outputs, out_spec = _flatten(self.func(*_unflatten(spec, dummy), **kwargs))
        empty = []
        for output, dim in zip(outputs, self._out_dims(out_spec)):
            if dim is None or not isinstance(output, Tensor):
                empty.append(output)
                continue
            dim = self._check_out_dim(dim, output.dim())
            shape = output.shape[:dim] + (0,) + output.shape[dim:]
            empty.append(_wrap(np.zeros(shape, output._data.dtype)))
        return _unflatten(out_spec, empty)


class _WritesAcrossSlices:
    """Watches vmap's eager loop for a tensor changed in place by the calls of two slices: one
    the function did not make (it captured it, or took it unbatched), which torch.func's
    batched call changes once, or refuses (a batched value into an unbatched tensor); a loop
    of calls changed it once per slice, silently. Raises ``NotImplementedError`` then. A
    tensor the function makes, and a slice of a batched input, are new in each call."""

    def __init__(self, name: str):
        self.name, self.slice, self.first, self.repeated = name, 0, {}, None
        self.thread = threading.get_ident()

    def __enter__(self):
        write_watchers.append(self.watch)
        return self

    def __exit__(self, *exc_info) -> None:
        write_watchers.remove(self.watch)

    def watch(self, tensor: Tensor) -> None:
        if threading.get_ident() != self.thread:  # another thread's in-place op
            return
        first = self.first.setdefault(id(tensor), (tensor, self.slice))  # (held: its id stays its own)
        if first[1] != self.slice and self.repeated is None:
            self.repeated = tensor

    def check(self) -> None:
        if self.repeated is not None:
            raise NotImplementedError(
                f"vmap({self.name}, ...): the function changes in place a tensor of shape "
                f"{tuple(self.repeated.shape)} that is not a slice of a batched input (it captured it, or took it "
                "with in_dims None). torch.func.vmap's batched call changes it once (or refuses a batched value), "
                "where tapegrad's vmap calls the function once per slice here: make the change outside the "
                "function, or change a copy"
            )


def _slices_equal(data: np.ndarray) -> bool:
    """Whether every slice along dimension 0 equals the first, NaN equal to NaN (a constant
    holding one is the same constant in every slice)."""
    same = data == data[:1]
    if data.dtype.kind in "fc":
        same |= np.isnan(data) & np.isnan(data[:1])
    return bool(np.all(same))


def _same(a, b) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        # (NaN equal to NaN: a constant holding one is the same constant in every slice)
        equal_nan = a._data.dtype.kind in "fc" and b._data.dtype.kind in "fc"
        return a.shape == b.shape and bool(np.array_equal(a._data, b._data, equal_nan=equal_nan))
    return a == b


_BATCHED_WRITE_ERROR = (
    "vmap: inplace arithmetic(self, *extra_args) is not possible because there exists a Tensor `other` in "
    "extra_args that has more elements than `self`. This happened due to `other` being vmapped over but `self` "
    "not being vmapped over in a vmap. Please try to use out-of-place operators instead of inplace"
)


def _refuse_batched_writes(recording, input_rows, sliced: list, rows_before: list) -> None:
    """torch.func's error for a tensor the function captured (not an argument) changed in place
    by a value of a sliced argument (``sliced``, the recording's inputs; ``rows_before``, their
    rows when the function began): one tensor cannot hold a value per slice. The replay ran the
    change once, at the recording's slice, and returned as if nothing was amiss. Changes by
    values of no sliced argument (``acc.add_(1)``) are torch.func's too, and stand."""
    written = {
        row: entry[0]
        for row, entry in recording.captured.items()
        if row not in input_rows and entry[0]._tape is recording
    }
    if not written or not sliced:
        return
    registered = recording.registered  # (a float input's row is made when first read)
    starts = [
        registered.get(id(tensor), registered.get(-id(tensor), before)) for tensor, before in zip(sliced, rows_before)
    ]
    starts = [row for row in starts if row is not None and row >= 0]
    if not starts:
        return
    reads = np.zeros(recording.n, np.bool_)
    reads[starts] = True
    for row in range(min(starts) + 1, recording.n):  # rows read only earlier rows
        if not reads[row]:
            reads[row] = any(source >= 0 and reads[source] for source in recording.sources(row))
    if any(reads[tensor._row] for tensor in written.values()):
        for row, tensor in written.items():  # PyTorch raises before the write: undo it
            tensor._data[...] = recording.replay_values[row]
        raise RuntimeError(_BATCHED_WRITE_ERROR)


_RANDOM_ERROR = (
    "vmap: called random operation while in randomness error mode. Please either use the 'same' or 'different' "
    "randomness flags on vmap or perform the randomness operation out of vmap"
)


_INTEGER_INPUTS = {np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.bool_)}  # as tape inputs


class _Replay:
    """One vmap call executed by recording the function once and replaying its tape per slice.

    Tape inputs are the floating-point tensors among the arguments (sliced ones per slice, the
    others once per tape copy) and the sliced int64, int32 and bool ones (labels: one recording
    serves every label). A sliced tensor of another dtype (uint8, int16), which a tape cannot
    hold, makes vmap run its eager loop."""

    def __init__(self, transform: _VmapTransform, leaves, spec, dims, batch, kwargs, stats):
        self.transform = transform
        self.leaves, self.spec, self.dims, self.batch = leaves, spec, dims, batch
        self.kwargs = kwargs
        self.stats = stats
        self.enabled = grad_mode.is_grad_enabled()  # the caller's grad mode (a recording turns it on)
        func = transform.func
        self.grad = isinstance(func, _GradTransform)
        # Tape inputs: the float tensors, and the sliced int64, int32 and bool ones (labels,
        # masks: values of the tape, read at each replay). ``floats`` names them all.
        self.floats = [
            i
            for i, (leaf, dim) in enumerate(zip(leaves, dims))
            if isinstance(leaf, Tensor)
            and (leaf._data.dtype.kind == "f" or (dim is not None and leaf._data.dtype in _INTEGER_INPUTS))
        ]
        inputs = set(self.floats)
        for i, (leaf, dim) in enumerate(zip(leaves, dims)):
            if dim is not None and i not in inputs:
                raise _UnrecordableError(f"a sliced tensor of dtype {leaf._data.dtype}")
        # The sliced float arguments with the batch first; the others are loaded once per copy.
        self.batched = {i: np.moveaxis(leaves[i]._data, dims[i], 0) for i in self.floats if dims[i] is not None}
        for i in self.floats:  # a replay holds integers as float64: exactly within +-2**53 only
            if beyond_exact(leaves[i]._data):
                raise _UnrecordableError("an integer argument of 2**53 or beyond")
        if self.grad:
            positions, self.single = _argnums(func.argnums, len(spec[2]))
            # Leaves (flat indices) under each differentiated argument.
            starts = np.cumsum([0] + [_count(child) for child in spec[2]])
            self.grad_specs = [spec[2][p] for p in positions]
            self.grad_leaves = [list(range(starts[p], starts[p + 1])) for p in positions]
            for group in self.grad_leaves:
                for i in group:
                    if i not in self.floats or leaves[i]._data.dtype.kind != "f":
                        raise _UnrecordableError("a differentiated argument is not a floating-point tensor")
            self.position_of = {leaf: k for k, leaf in enumerate(self.floats)}
        # The tape inputs whose gradients are asked for, in the order the results take them.
        self.wanted = tuple(self.position_of[i] for group in self.grad_leaves for i in group) if self.grad else None

    # -- recording

    def _arguments(self, inputs) -> list:
        # The recording's own inputs stand for the tape-input leaves, every sliced one among
        # them (slicing a leaf here recorded a pick out of the whole batch, a constant the tape
        # copied on every call and never read); the others are passed whole.
        given = dict(zip(self.floats, inputs))
        return [given.get(i, leaf) for i, leaf in enumerate(self.leaves)]

    def _slice_inputs(self, index: int) -> list:
        return [self.batched[i][index] if i in self.batched else self.leaves[i]._data for i in self.floats]

    def _record(self, index: int) -> Tape:
        func = self.transform.func
        box = {}

        def traced(*inputs):
            sliced = [tensor for i, tensor in zip(self.floats, inputs) if self.dims[i] is not None]
            rows_before = [tensor._row for tensor in sliced]  # (integer inputs have theirs already)
            args = _unflatten(self.spec, self._arguments(inputs))
            if self.grad:
                result = func.func(*args, **self.kwargs)
                output, aux = _split_aux(result, func.has_aux, "grad_and_value(f)(*args)")
                _check_scalar(output)
                aux_leaves, box["aux_spec"] = _flatten(aux) if func.has_aux else ([], None)
                outputs = [output, *aux_leaves]
            else:
                outputs, box["spec"] = _flatten(func(*args, **self.kwargs))
                # (any output at out_dims None may be a Python value: the eager loop returns it)
                dims = self.transform._out_dims(box["spec"])
                self.transform._check_outputs([out for out, dim in zip(outputs, dims) if dim is not None])
            for out in outputs:
                if not isinstance(out, Tensor) or out._data.dtype.kind != "f":
                    raise _UnrecordableError("an output is not a floating-point tensor")
            # A replay holds what the function captured as constants; torch.func's results stay
            # connected to a captured tensor that requires grad (a parameter), for an outer
            # backward: the eager loop keeps that graph.
            recording = grad_mode.state.recording
            inputs = recording.shared.input_rows  # (registered as captured too)
            _refuse_batched_writes(recording, inputs, sliced, rows_before)  # (before the eager loop would run it)
            captured = [entry[3] for row, entry in recording.captured.items() if row not in inputs]
            if self.enabled and any(captured):
                raise _UnrecordableError("the function reads a tensor that requires grad")
            return tuple(outputs)

        draws = _factories.random_draws.count
        first = index == 0 and not self.stats["recordings"]
        # randomness="same": a slice recorded again draws the numbers the first recording drew,
        # and leaves the generator where that one did (fresh draws gave its slices other noise).
        generator = _factories.default_generator() if self.transform.randomness == "same" else None
        if generator is not None:
            if first:
                self.generator_state = generator.bit_generator.state
            else:
                after, generator.bit_generator.state = generator.bit_generator.state, self.generator_state
        try:
            if first:  # the call's first recording
                previous = self.transform.last_recording
                tape = Tape._recorded_again(
                    previous, traced, self._slice_inputs(index), same=lambda previous: previous.vmap_spec == box
                )
                self.stats["reused"] = tape is previous
            else:
                tape = Tape(traced, self._slice_inputs(index))
        except NotImplementedError as error:
            raise _UnrecordableError(f"the function cannot be recorded ({error})") from None
        except RuntimeError as error:
            # The recording's inputs require grad, so an in-place change of a slice (which
            # torch.func allows, writing into the argument) was refused: the eager loop runs it.
            if str(error) not in (LEAF_IN_PLACE, VIEW_OF_LEAF_IN_PLACE):
                raise
            raise _UnrecordableError("the function changes an argument in place") from None
        finally:
            if generator is not None and not first:
                generator.bit_generator.state = after
        if _factories.random_draws.count != draws:
            if self.transform.randomness == "error":
                raise RuntimeError(_RANDOM_ERROR)
        if tape._integer_checks():  # (checked per slice only by the eager loop)
            raise _UnrecordableError("integer arithmetic, which a replay holds in float64")
        tape.vmap_spec = box
        if self.stats["recordings"] and box != self.first.vmap_spec:
            raise _UnrecordableError("the output's structure differs between slices")
        if self.stats["recordings"] and _layouts(tape.outputs) != _layouts(self.first.outputs):
            # (written into the first recording's results, numpy broadcast a slice's [2.] over a
            # row of two, silently; the eager loop stacks them as PyTorch would, or raises)
            raise _UnrecordableError("an output's shape or dtype differs between slices")
        self.stats["recordings"] += 1
        return tape

    # -- running

    def run(self):
        batch = self.batch
        threads = max(1, min(_threads.get_num_threads(), batch))
        speculation = _Speculation.start(self, threads)
        started = time.perf_counter()
        try:
            self.first = self._record(0)
        except BaseException:
            if speculation is not None:
                speculation.discard()
            raise
        recorded = time.perf_counter() - started
        self.tapes = [self.first]  # the first recording, then those of slices whose guards failed
        self.stats["path"] = "grad-replay" if self.grad else "replay"
        self.stats["threads"] = threads
        transform = self.transform
        discarded = False
        if speculation is not None and speculation.stands(self.first):
            failed = speculation.finish(recorded)
            self.stats["speculated"] = True
        else:
            if speculation is not None:  # the function recorded something else, or wrote an argument
                speculation.discard()
                speculation, discarded = None, True
                transform.speculate = False
            self._allocate(self.first)
            started = time.perf_counter()
            failed = self._run_batch(list(range(batch)), threads)
            # (a thread's share of the slices, roughly as ``Tape._replay_batch`` splits them)
            shares = min(threads, max(1, batch // replay._SLICES_PER_THREAD))
            transform.pace = (recorded, (time.perf_counter() - started) * shares / batch)
        if self.stats["reused"] and not discarded:
            transform.speculate = True
        for index in failed:
            self._rerun(index)
        assembled = self._assemble()
        if self.first.__dict__.get("_recorded_as") is not None:
            # Kept for the next call without ``traced``, whose closure holds this call's
            # arguments (a replay never calls it: vmap's tapes are not re-recorded by themselves).
            self.first._fn = None
            transform.last_recording = self.first
        # This object sits in reference cycles (its tapes' recorded closures) that only the
        # collector frees: let go of the result arrays now, so that once the caller drops the
        # results their pages can be handed out again (replay._ResultPool).
        self.into = self.results = None
        return assembled

    def _batch_arguments(self, tape: Tape) -> tuple:
        """``(inputs, batched, seeds)`` of ``tape._replay_batch`` for this call."""
        seeds = self._seeds(tape) if self.grad else None
        seeds = None if seeds is None else np.concatenate([np.ravel(seed) for seed in seeds])
        inputs = [self.batched[i] if i in self.batched else self.leaves[i]._data for i in self.floats]
        return inputs, [i in self.batched for i in self.floats], seeds

    def _take_results(self, outputs: list, grads: list) -> None:
        """The results, from the first ``_replay_batch`` call's (the arrays in ``into``)."""
        wanted = [grads[self.position_of[i]] for group in self.grad_leaves for i in group] if self.grad else []
        self.results = [*wanted, *outputs]

    def _run_batch(self, indices: list, threads: int) -> list:
        """Replay the slices ``indices`` with the first recording in compiled calls
        (``Tape._replay_batch``), ``chunk_size`` slices at a time, writing into the results in
        place; returns the slices whose guards failed."""
        tape = self.first
        size = self.transform.chunk_size or len(indices)
        inputs, is_batched, seeds = self._batch_arguments(tape)
        failed = []
        for start in range(0, len(indices), size):
            chunk = np.asarray(indices[start : start + size], np.int64)
            outputs, grads, guard_failed = tape._replay_batch(
                inputs, is_batched, seeds, threads, self.wanted, slices=chunk, into=self.into
            )  # fmt: skip
            if self.results is None:  # the first call made the results (in ``into``); the others fill them
                self._take_results(outputs, grads)
            failed += guard_failed
        return failed

    def _allocate(self, tape: Tape) -> None:
        """The results are made by the first compiled call (``_run_batch``), as views of flat
        arrays that later calls fill in place (``Tape._replay_batch``'s ``into``)."""
        self.into, self.results = {}, None

    def _replay(self, tape: Tape, index: int, own: bool = False) -> None:
        """Slice ``index`` by ``tape`` (``own``: recorded at this slice, whose truths it took)."""
        tape._forward(self._slice_inputs(index), rerecorded=own)
        results = self.results
        offset = 0
        if self.grad:
            for grad in tape.backward(self._seeds(tape), argnums=self.wanted):
                results[offset][index] = grad._data
                offset += 1
        for output in tape._outputs():  # a tuple (``traced`` returns one); a register program's too
            results[offset][index] = output._data
            offset += 1

    @staticmethod
    def _seeds(tape: Tape) -> list:
        """d(output 0) only: the aux outputs are seeded with zeros."""
        return [np.ones(())] + [np.zeros(tape._shape(row)) for row in tape.output_rows[1:]]

    def _rerun(self, index: int) -> None:
        """A slice whose guard failed: replay the other recordings, and record it again when
        none applies."""
        for tape in self.tapes[1:]:
            try:
                self._replay(tape, index)
                return
            except GuardError:
                continue
        tape = self._record(index)
        self.stats["rerecords"] += 1
        self.tapes.append(tape)
        try:
            self._replay(tape, index, own=True)
        except GuardError:  # a comparison the replay rounds to the other side at these inputs
            raise _UnrecordableError("a recording does not replay its own branch at its inputs") from None

    def _assemble(self):
        arrays = [_wrap(array) for array in self.results]
        spec = self.first.vmap_spec
        if self.grad:
            func = self.transform.func
            count = sum(len(group) for group in self.grad_leaves)
            grads, rest = arrays[:count], arrays[count:]
            trees, start = [], 0
            for group_spec, group in zip(self.grad_specs, self.grad_leaves):
                trees.append(_unflatten(group_spec, grads[start : start + len(group)]))
                start += len(group)
            grads = trees[0] if self.single else tuple(trees)
            aux = _unflatten(spec["aux_spec"], rest[1:]) if func.has_aux else None
            output = func._pack(grads, rest[0], aux)
        else:
            output = _unflatten(spec["spec"], arrays)
        return self.transform._place(output)


class _Speculation:
    """A vmap call's replay by the last call's recording, started on a background thread
    before the function is recorded again on the calling thread, and kept if the new recording
    is the last one exactly (``Tape._recorded_again``).

    torch.func calls the function on every call, and so does vmap: it records it. When that
    recording equals the last call's (the same rows, constants of the same bits, no guard on a
    value), the last call's tape is the one replayed, and its replay does not depend on the new
    recording. So it can start before the recording: a background thread replays the last
    ``batch - split`` slices by it meanwhile (its kernels hold no GIL), and once the recording
    is found to be the same, the calling thread replays the first ``split`` on the remaining
    threads. A recording that differs discards that work (its results are dropped, and the
    new tape's replay runs as without this) and stops the speculation until a call's
    recording is again the last one's; the call then waits for the background thread's part
    to end, a cost bounded by that part. So does an argument whose bits changed while the
    function ran (written through ``.numpy()``, which the recording cannot see): the
    background thread reads a copy of the arguments taken before, and the one-thread path
    reads them after.

    ``split`` balances the two sides by the last call's times (``pace``: its recording, and
    one slice's replay on one thread): the background thread's part takes as long as the
    recording plus the calling thread's part. The calling thread waits for the background
    thread to reach its kernel before it records: a recording gives the GIL up and takes it
    back at every small kernel it calls, and CPython then never hands it to a waiting thread
    (``_threads.waking``), whose set-up waited for the whole recording. The scalar graph's
    ``vmap(grad)`` over 1,024 sets took 134-140 ms a call without this (a 96-115 ms
    recording, then a 42 ms replay on two threads), 96-100 ms with it.
    """

    HANDOFF_SECONDS = 0.05

    @classmethod
    def start(cls, replay_: _Replay, threads: int) -> _Speculation | None:
        transform = replay_.transform
        previous = transform.last_recording
        if threads < 2 or previous is None or transform.pace is None or not transform.speculate:
            return None
        if LOCK._is_owned():  # (inside a backward's hook: the background thread may need it)
            return None
        if transform.chunk_size is not None:
            return None
        specs = [(data.shape, data.dtype) for data in replay_._slice_inputs(0)]
        if specs != previous.input_specs:
            return None
        try:
            return cls(replay_, previous, threads)
        except RuntimeError:  # no new threads once the interpreter shuts down: a thread's vmap then
            return None

    def __init__(self, replay_: _Replay, tape: Tape, threads: int):
        recorded, per_slice = replay_.transform.pace
        batch = replay_.batch
        background = round(((threads - 1) * recorded / max(per_slice, 1e-9) + batch) / threads)
        background = min(batch, max(1, background))
        self.replay, self.tape, self.threads, self.batch = replay_, tape, threads, batch
        self.split = batch - background  # the calling thread's part: slices [0, split)
        self.into = {}
        inputs, batched, seeds = replay_._batch_arguments(tape)
        self.arguments = ([np.array(data) for data in inputs], batched, seeds)  # (see ``stands``)
        started = threading.Event()
        slices = np.arange(self.split, batch, dtype=np.int64)
        self.future = _threads.background().submit(_threads.waking, started, self._background, slices)
        # Until its kernel runs: the recording would starve it of the GIL (``_threads.waking``).
        # A bound, should it wait for something of this thread's.
        started.wait(self.HANDOFF_SECONDS)

    def _replay(self, slices: np.ndarray, threads: int) -> tuple:
        inputs, batched, seeds = self.arguments
        return self.tape._replay_batch(
            inputs, batched, seeds, threads, self.replay.wanted, slices=slices, into=self.into
        )

    def _background(self, slices: np.ndarray) -> tuple:
        started = time.perf_counter()
        result = self._replay(slices, 1)
        return result, time.perf_counter() - started

    def stands(self, first: Tape) -> bool:
        """Whether the call's recording is this replay's tape, and its arguments still hold the
        bits the background thread read."""
        if first is not self.tape:
            return False
        live = self.replay._batch_arguments(first)[0]
        return all(replay.same_bits(now, read) for now, read in zip(live, self.arguments[0]))

    def discard(self) -> None:
        """Wait for the background thread's part (it writes arrays of this call's) and let its
        results go (a traceback that keeps the caller's frame keeps this object)."""
        try:
            self.future.result()
        except Exception:  # (its results are not used)
            pass
        self.future = self.into = self.arguments = None

    def finish(self, recorded: float) -> list:
        """The calling thread's part, then the background thread's results: the slices whose
        guards failed. The results go to the call (``_Replay.into``/``results``)."""
        failed = []
        try:
            if self.split:
                failed += self._replay(np.arange(self.split, dtype=np.int64), self.threads - 1)[2]
        finally:
            try:
                (outputs, grads, background_failed), seconds = self.future.result()
            except Exception:  # raised again below by the same replay here, or not at all
                seconds = None
        if seconds is None:
            outputs, grads, background_failed = self._replay(np.arange(self.split, self.batch, dtype=np.int64), 1)
        else:
            self.replay.transform.pace = (recorded, seconds / (self.batch - self.split))
        self.replay.into = self.into
        self.replay._take_results(outputs, grads)
        self.future = self.arguments = None
        return failed + background_failed


def _layouts(outputs) -> list:
    """The shapes and dtypes of a recording's outputs."""
    return [(output._data.shape, output._data.dtype) for output in outputs]


def _recorded_tape(func) -> tuple:
    """``(tape, with_grad)`` when ``func`` is a recorded ``Tape`` (``vmap(tape)``) or its bound
    ``value_and_grad``; else ``(None, False)``."""
    # (replay.Tape, not this module's name for it, which benchmarks/func.py wraps to time recordings)
    if isinstance(func, replay.Tape):
        return func, False
    owner = getattr(func, "__self__", None)
    if isinstance(owner, replay.Tape) and getattr(func, "__func__", None) is replay.Tape.value_and_grad:
        return owner, True
    return None, False


def _requires_grad(leaf) -> bool:
    return isinstance(leaf, Tensor) and leaf.requires_grad


class _TapeBatch:
    """``vmap(tape)`` or ``vmap(tape.value_and_grad)``: a tape the caller recorded once,
    replayed over the slices in compiled calls with no recording (``Tape._replay_batch``), the
    results as ``tape(x)`` and ``tape.value_and_grad(x, ...)`` give them with the batch
    dimension added. A slice whose guard fails is replayed on its own by the tape's method: it
    records again (``rerecord=True``) or raises its ``GuardError``, naming the slice."""

    def __init__(self, transform, tape: replay.Tape, with_grad: bool, leaves, spec, dims, batch, kwargs, stats):
        if spec[1] is not None or any(child is not None for child in spec[2]):
            raise ValueError(f"vmap({transform.__name__}): a tape's inputs are tensors or arrays, not containers")
        allowed = {"grad_outputs", "argnums"} if with_grad else set()
        for name in kwargs:
            if name not in allowed:
                method = "value_and_grad" if with_grad else "__call__"
                raise TypeError(f"Tape.{method}() got an unexpected keyword argument '{name}'")
        self.transform, self.tape, self.with_grad = transform, tape, with_grad
        self.dims, self.batch, self.kwargs, self.stats = dims, batch, kwargs, stats
        self.arrays = [
            leaf if not isinstance(leaf, Tensor) else leaf._data if not dim else np.moveaxis(leaf._data, dim, 0)
            for leaf, dim in zip(leaves, dims)
        ]

    def run(self):
        tape, batch, kwargs = self.tape, self.batch, self.kwargs
        argnums = kwargs.get("argnums")
        batched = [dim is not None for dim in self.dims]
        threads = max(1, min(_threads.get_num_threads(), batch))
        self.stats.update(path="tape-replay", threads=threads)
        size = self.transform.chunk_size or batch
        with tape._lock:
            seeds = tape._seeds(kwargs.get("grad_outputs")) if self.with_grad else None
            positions = tape._all_positions if argnums is None else tape._positions(argnums)
            into, failed = {}, []
            everything = np.arange(batch, dtype=np.int64)
            # Integer arithmetic (its range, held in float64) is checked after each replay by the
            # tape's own calls, not by the batch kernel: then the batch call runs the first slice
            # alone (it makes the results), and every slice goes through the tape's own calls.
            alone = bool(tape._integer_checks())
            chunks = [everything[:1]] if alone else [everything[s : s + size] for s in range(0, batch, size)]
            for chunk in chunks:
                outputs, grads, guard_failed = tape._replay_batch(
                    self.arrays, batched, seeds, threads, positions, slices=None if len(chunk) == batch else chunk,
                    into=into,
                )  # fmt: skip
                failed += guard_failed
            for index in everything.tolist() if alone else failed:
                self._alone(index, outputs, grads, positions)
        self.stats["rerecords"] = len(failed)  # (slices whose guard failed, run by the tape's own calls)
        outputs = [_wrap(output) for output in outputs]
        result = outputs[0] if tape.single_output else tuple(outputs)
        if self.with_grad:
            chosen = [None if grads[p] is None else _wrap(grads[p]) for p in positions]  # (None: a label)
            gradients = chosen[0] if isinstance(argnums, (int, np.integer)) else tuple(chosen)
            result = (result, gradients)
        return self.transform._place(result)

    def _alone(self, index: int, outputs, grads, positions) -> None:
        """Slice ``index``, whose guard failed in the batch, by the tape's own method."""
        inputs = [array[index] if dim is not None else array for array, dim in zip(self.arrays, self.dims)]
        try:
            if self.with_grad:
                values, gradients = self.tape.value_and_grad(*inputs, **{**self.kwargs, "argnums": positions})
            else:
                values, gradients = self.tape(*inputs), ()
        except GuardError as error:
            raise GuardError(f"vmap: slice {index} of the batch: {error}") from None
        values = (values,) if self.tape.single_output else values
        for target, value in zip(outputs, values):
            if value._data.shape != target.shape[1:] or value._data.dtype != target.dtype:
                raise RuntimeError(
                    f"vmap: slice {index} of the batch: the tape recorded again returns shape "
                    f"{list(value._data.shape)} ({value._data.dtype}) where the other slices' is "
                    f"{list(target.shape[1:])} ({target.dtype}); vmap stacks outputs of one shape and dtype"
                )
            target[index] = value._data
        for position, gradient in zip(positions, gradients):
            if gradient is not None:
                grads[position][index] = gradient._data


def vmap(func, in_dims=0, out_dims=0, randomness: str = "error", *, chunk_size=None):
    """Map ``func`` over a dimension of its inputs: ``vmap(f)(x)[i]`` is ``f(x[i])``; follows
    ``torch.func.vmap``.

    ``in_dims`` is an int (the batch dimension of every input tensor) or a tuple with one entry
    per argument (an int, None for an argument passed whole to every call, or a nested
    tuple/dict matching that argument's structure). ``out_dims`` places the batch dimension in
    each output (None: the output does not depend on the batch). The outputs have ``func``'s
    shapes and dtypes with the batch dimension added. ``randomness``: ``"error"`` raises when
    ``func`` draws random numbers, ``"same"`` gives every slice the same numbers, ``"different"``
    draws for each slice. ``chunk_size`` bounds the slices one thread replays per work item.

    Executed by recording ``func`` on the first slice and replaying the tape per slice on
    ``tapegrad.get_num_threads()`` threads (``vmap(grad(f))`` replays ``f``'s tape backward);
    see the module's docstring and ``vmap_stats()``. ``func`` may be a recorded ``Tape`` or its
    ``value_and_grad``: replayed over the batch with no recording (a slice whose guard fails
    raises the tape's ``GuardError`` naming the slice, or records again with ``rerecord=True``).
    Raises ``ValueError`` (inputs and ``in_dims``/``out_dims`` that do not match, batch sizes
    that differ, outputs that are not tensors) and ``RuntimeError`` (random ops with
    ``randomness="error"``, a bad ``randomness``) with PyTorch's messages; ``ValueError`` for a
    ``chunk_size`` below 1.

    >>> import tapegrad as tg
    >>> from tapegrad.func import vmap
    >>> vmap(lambda row, w: row @ w, in_dims=(0, None))(tg.ones(3, 2), tg.tensor([1.0, 2.0]))
    tensor([3., 3., 3.])
    """
    if randomness not in ("error", "different", "same"):
        raise RuntimeError(f"Only allowed values for randomness are 'error', 'different', or 'same'. Got {randomness}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"vmap: chunk_size should be None or greater than 0. (got {chunk_size})")
    return _VmapTransform(func, in_dims, out_dims, randomness, chunk_size)
