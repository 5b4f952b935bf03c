"""``tapegrad.autograd.functional``: ``vjp``, ``jvp``, ``jacobian``, ``hessian``, ``vhp`` and
``hvp`` with PyTorch's signatures.

The function is recorded once; a Jacobian is one reverse sweep per output element over that one
tape (``retain_graph``), never a re-recording per row. Second derivatives differentiate a gradient
computed with ``create_graph=True``, which records it on the same tape: the sweeps over it are
compiled ones again.
"""

from __future__ import annotations

import numpy as np

from .._views import stack
from ..tensor import Tensor, _wrap
from .gradients import grad as _grad


def _as_tuple(value, what: str = "", caller: str = ""):
    """``(tensors, single)``; with ``what`` and ``caller``, PyTorch's ``TypeError`` for anything
    but a tensor or a tuple of tensors (a list included)."""
    single = not isinstance(value, tuple)
    values = (value,) if single else value
    if what:
        for index, element in enumerate(values):
            if not isinstance(element, Tensor):
                where = f"the given {what}" if single else f"the value at index {index}"
                raise TypeError(
                    f"The {what} given to {caller} must be either a Tensor or a tuple of Tensors but {where} has type "
                    f"{type(element)}."
                )
    return values, single


def _check_outputs(outputs: tuple, strict: bool, what: str = "outputs") -> None:
    """PyTorch's strict mode: every output computed differentiably from the inputs."""
    if strict:
        for index, out in enumerate(outputs):
            if not out.requires_grad:
                raise RuntimeError(
                    f"Output {index} of the user-provided function does not require gradients. The outputs must be "
                    "computed in a differentiable manner from the input when running in strict mode."
                    if what == "outputs"
                    else f"While computing the hessian, found that the jacobian of the user-provided function with "
                    f"respect to input {index} is independent of the input. This is not allowed in strict mode. You "
                    "should ensure that your function is twice differentiable and that the jacobian depends on the "
                    "inputs (this would be violated by a linear function for example)."
                )


# strict mode's message for an output independent of an input, as vjp, jvp, vhp and hvp word it
_INDEPENDENT = (
    "The output of the user-provided function is independent of input {index}. This is not allowed in strict mode."
)


def _unpacked(values: tuple, single: bool):
    return values[0] if single else tuple(values)


def _prepare(inputs, create_graph: bool) -> tuple:
    """The tensors ``func`` is called with: fresh leaves, except that with ``create_graph`` an
    input that requires grad is viewed instead, so the results stay differentiable with respect to
    it (as in PyTorch)."""
    prepared = []
    for x in inputs:
        if create_graph and x.requires_grad:
            prepared.append(x.view_as(x))
        else:
            prepared.append(x.detach().requires_grad_())  # (an integer input: PyTorch's RuntimeError)
    return tuple(prepared)


def _finish(tensors, create_graph: bool) -> tuple:
    """Results leave detached unless the caller asked for a differentiable graph."""
    return tuple(t if create_graph else t.detach() for t in tensors)


def _validated(v, other: tuple, other_is_tuple: bool) -> tuple:
    """``v`` as a tuple, checked against ``other`` (the inputs or outputs it pairs with) as
    PyTorch's ``_validate_v`` checks it: zipped unchecked, a short ``v`` made the missing
    directions zero, silently."""
    v, _ = _as_tuple(v)
    if len(v) != len(other):
        if other_is_tuple:
            raise RuntimeError(f"v is a tuple of invalid length: should be {len(other)} but got {len(v)}.")
        raise RuntimeError("The given v should contain a single Tensor.")
    for index, (direction, against) in enumerate(zip(v, other)):
        if tuple(direction.shape) != tuple(against.shape):
            prefix = f"Entry {index} in " if other_is_tuple else ""
            raise RuntimeError(
                f"{prefix}v has invalid size: should be {against.shape!r} but got {direction.shape!r}.".replace(
                    "tapegrad.Size", "torch.Size"
                )
            )
    return v


def _differentiable(outputs, grad_outputs) -> tuple:
    """The outputs that depend on the inputs, with their ``grad_outputs``: PyTorch skips the rest,
    whose gradient is zero."""
    pairs = [(out, v) for out, v in zip(outputs, grad_outputs) if out.requires_grad]
    return tuple(out for out, _ in pairs), tuple(v for _, v in pairs)


def _gradients(outputs, inputs, grad_outputs, create_graph: bool, retain_graph=None, unused: str = "") -> tuple:
    """d outputs / d inputs weighted by ``grad_outputs``, zeros (that require no grad, as
    PyTorch's ``_fill_in_zeros``) for inputs nothing reached, or with ``unused`` (strict mode:
    PyTorch's message with ``{index}``) a ``RuntimeError`` for the first of them."""
    outputs, grad_outputs = _differentiable(outputs, grad_outputs)
    if outputs and inputs:
        grads = _grad(
            outputs, inputs, grad_outputs, retain_graph=retain_graph, create_graph=create_graph, allow_unused=True
        )
    else:
        grads = (None,) * len(inputs)
    filled = []
    for index, (gradient, x) in enumerate(zip(grads, inputs)):
        if gradient is None:
            if unused:
                raise RuntimeError(unused.format(index=index))
            gradient = _wrap(np.zeros_like(x._data))
        filled.append(gradient)
    return tuple(filled)


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(*inputs), v^T J)``; with ``strict``, PyTorch's ``RuntimeError`` for an output or
    input the other does not depend on."""
    inputs, single_input = _as_tuple(inputs, "inputs", "vjp")
    inputs = _prepare(inputs, create_graph)
    outputs, single_output = _as_tuple(func(*inputs), "outputs of the user-provided function", "vjp")
    _check_outputs(outputs, strict)
    if v is None:
        if len(outputs) != 1 or outputs[0].numel() != 1:
            raise RuntimeError(
                "The vector v can only be None if the user-provided function returns a single Tensor with a single "
                "element."
            )
        v = (None,)
    else:
        v = _validated(v, outputs, not single_output)
    grads = _gradients(outputs, inputs, v, create_graph, unused=_INDEPENDENT if strict else "")
    return _unpacked(_finish(outputs, create_graph), single_output), _unpacked(grads, single_input)


def jacobian(
    func,
    inputs,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    strategy: str = "reverse-mode",
):
    """d func / d inputs, shaped ``output.shape + input.shape`` (nested tuples for several).
    Raises PyTorch's errors: ``TypeError`` for inputs or outputs that are not tensors or tuples
    of them, ``RuntimeError`` in ``strict`` mode for an output that does not depend on an input
    (or, with ``create_graph``, whose Jacobian does not), ``AssertionError`` for another
    ``strategy``, ``NotImplementedError`` for forward mode (``vectorize=True`` computes the
    same Jacobian by reverse sweeps)."""
    if strategy not in ("forward-mode", "reverse-mode"):
        raise AssertionError(
            'Expected strategy to be either "forward-mode" or "reverse-mode". Hint: If your function has a single '
            'output or a small number of outputs, use "reverse-mode"; otherwise "forward-mode".'
        )
    if strategy == "forward-mode" and not vectorize:
        raise NotImplementedError(
            "Computing Jacobian using forward-AD or forward-over-reverse Hessian isonly implemented for "
            "`vectorize=True`."
        )
    if strict and vectorize:
        raise RuntimeError(
            "torch.autograd.functional.jacobian: `strict=True` and `vectorized=True` are not supported together. "
            "Please either set `strict=False` or `vectorize=False`."
        )
    inputs, single_input = _as_tuple(inputs, "inputs", "jacobian")
    inputs = _prepare(inputs, create_graph)
    outputs, single_output = _as_tuple(func(*inputs), "outputs of the user-provided function", "jacobian")
    _check_outputs(outputs, strict)
    blocks = [
        _unpacked(_jacobian_of(out, inputs, create_graph, strict, number), single_input)
        for number, out in enumerate(outputs)
    ]
    return _unpacked(blocks, single_output)


def _jacobian_of(out: Tensor, inputs: tuple, create_graph: bool, strict: bool = False, number: int = 0) -> tuple:
    """d out / d each input: one reverse sweep per element of ``out``, over its one tape."""
    rows = []
    for element in range(out.numel()):
        seed = np.zeros(out.numel(), out._data.dtype)
        seed[element] = 1.0
        seed = _wrap(seed.reshape(out._data.shape))
        unused = (
            f"Output {number} of the user-provided function is independent of input {{index}}. This is not allowed "
            "in strict mode."
            if strict
            else ""
        )
        row = _gradients((out,), inputs, (seed,), create_graph, retain_graph=True, unused=unused)
        if strict and create_graph:
            for index, gradient in enumerate(row):
                if not gradient.requires_grad:
                    raise RuntimeError(
                        f"The jacobian of the user-provided function is independent of input {index}. This is not "
                        "allowed in strict mode when create_graph=True."
                    )
        rows.append(row)
    blocks = []
    for index, x in enumerate(inputs):
        shape = tuple(out.shape) + tuple(x.shape)
        blocks.append(
            stack([row[index] for row in rows]).reshape(shape) if rows else _wrap(np.zeros(shape, x._data.dtype))
        )
    return tuple(blocks)


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(*inputs), J v)``, from the Jacobian (reverse sweeps; no forward mode yet)."""
    inputs_tuple, single_input = _as_tuple(inputs)
    if v is None:
        if len(inputs_tuple) != 1 or inputs_tuple[0].numel() != 1:
            raise RuntimeError(
                "The vector v can only be None if the input to the user-provided function is a single Tensor with a "
                "single element."
            )
        v = tuple(_wrap(np.ones_like(x._data)) for x in inputs_tuple)
    v = _validated(v, inputs_tuple, not single_input)
    # One call of ``func``, as PyTorch makes: its output and the product come from the same run
    # (with dropout, two calls gave an output and a J v of different masks).
    prepared = _prepare(inputs_tuple, create_graph)
    outputs, single_output = _as_tuple(func(*prepared))
    _check_outputs(outputs, strict)
    if strict:  # an input no output depends on (PyTorch's check is of all outputs together)
        seeds = tuple(_wrap(np.ones_like(out._data)) for out in outputs)
        _gradients(outputs, prepared, seeds, create_graph=False, retain_graph=True, unused=_INDEPENDENT)
    products = []
    for out in outputs:
        block = _jacobian_of(out, prepared, create_graph)
        total = None
        for part, direction in zip(block, v):
            flat = part.reshape(out.numel(), direction.numel()) @ direction.to(part.dtype).reshape(-1)
            total = flat if total is None else total + flat
        products.append(total.reshape(out.shape).to(out.dtype))  # (PyTorch's J v has the output's dtype)
    if strict and create_graph:
        for index, product in enumerate(products):
            if not product.requires_grad:  # (an output linear in the inputs; PyTorch says "input")
                raise RuntimeError(
                    f"The jacobian of the user-provided function is independent of input {index}. This is not "
                    "allowed in strict mode when create_graph=True."
                )
    return _unpacked(_finish(outputs, create_graph), single_output), _unpacked(products, single_output)


def _single_element_output(func, inputs: tuple, caller: str) -> Tensor:
    """``func(*inputs)``, checked to be the one-element tensor second derivatives need."""
    out = func(*inputs)
    if not isinstance(out, Tensor):
        raise RuntimeError(f"The function given to {caller} should return a single Tensor")
    if out.numel() != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {caller} should contain a single element")
    return out


def hessian(
    func,
    inputs,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    outer_jacobian_strategy: str = "reverse-mode",
):
    """d² func / d inputs², shaped ``inputs[i].shape + inputs[j].shape`` (a tuple of tuples for
    several inputs), for a ``func`` returning one element: the Jacobian of its gradient.

    >>> import tapegrad as tg
    >>> tg.autograd.functional.hessian(lambda x: (x**3).sum(), tg.tensor([1.0, 2.0]))
    tensor([[ 6.,  0.],
            [ 0., 12.]])
    """
    single_input = isinstance(inputs, Tensor)

    def gradient(*xs):
        out = _single_element_output(func, xs, "hessian")
        _check_outputs((out,), strict)
        grads = _gradients((out,), xs, (None,), create_graph=True)
        _check_outputs(grads, strict, "jacobian")
        return _unpacked(grads, single_input)

    return jacobian(gradient, inputs, create_graph=create_graph, strict=strict, vectorize=vectorize,
                    strategy=outer_jacobian_strategy)  # fmt: skip


def _gradient_at(func, inputs, v, create_graph: bool, caller: str, strict: bool) -> tuple:
    """What vhp and hvp start from: ``(inputs, single_input, v, out, gradient)``, the inputs
    prepared, ``v`` checked (ones for a single one-element input), ``out`` the function's one
    element and ``gradient`` its recorded gradient."""
    inputs, single_input = _as_tuple(inputs)
    inputs = _prepare(inputs, create_graph)
    if v is None:
        if len(inputs) != 1 or inputs[0].numel() != 1:
            raise RuntimeError(
                "The vector v can only be None if the input to the user-provided function is a single Tensor "
                "with a single element."
            )
        v = (_wrap(np.ones_like(inputs[0]._data)),)
    v = _validated(v, inputs, not single_input)
    out = _single_element_output(func, inputs, caller)
    _check_outputs((out,), strict)
    gradient = _gradients((out,), inputs, (None,), create_graph=True, unused=_INDEPENDENT if strict else "")
    _check_outputs(gradient, strict, "jacobian")
    return inputs, single_input, v, out, gradient


def vhp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(*inputs), v^T H)`` for a ``func`` returning one element (``H`` its Hessian)."""
    inputs, single_input, v, out, gradient = _gradient_at(func, inputs, v, create_graph, "vhp", strict)
    products = _gradients(gradient, inputs, v, create_graph)
    return _finish((out,), create_graph)[0], _unpacked(products, single_input)


def hvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(*inputs), H v)`` for a ``func`` returning one element, each product of its
    input's shape; follows ``torch.autograd.functional.hvp`` and its double-backward trick:
    ``H v`` is the derivative in ``u`` of ``(H^T u) . v``. It equals ``vhp`` where ``H`` is
    symmetric, but a gradient hook can make the "Hessian" of what the backward computes
    asymmetric, and ``vhp`` then gave ``H^T v``, silently. Raises PyTorch's ``RuntimeError``
    for a ``v`` of another structure or shape."""
    inputs, single_input, v, out, gradient = _gradient_at(func, inputs, v, create_graph, "hvp", strict)
    placeholders = tuple(_wrap(np.zeros_like(x._data)).requires_grad_() for x in inputs)
    transposed = _gradients(gradient, inputs, placeholders, create_graph=True)  # H^T u, linear in u
    products = _gradients(transposed, placeholders, v, create_graph)
    return _finish((out,), create_graph)[0], _unpacked(products, single_input)
