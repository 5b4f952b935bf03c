"""``backward()`` and ``grad()``, as ``torch.autograd.backward`` and ``torch.autograd.grad``:
from the tensors a user passes to the engine and back."""

from __future__ import annotations

import numpy as np

from .._tape import check_gradient_reaches
from ..tensor import Tensor, _wrap, install
from .engine import accumulated, post_accumulate_registrations, run_backward


def _as_tuple(value):
    if value is None:
        return None
    return (value,) if isinstance(value, Tensor) else tuple(value)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
    """Accumulate gradients of ``tensors`` (weighted by ``grad_tensors``) into the leaves' ``.grad``,
    or, with ``inputs``, into those tensors' ``.grad`` only (leaves or not), as
    ``torch.autograd.backward``: hooks run only where the gradient flows towards them."""
    tensors = _as_tuple(tensors)
    grad_tensors = _as_tuple(grad_tensors) or (None,) * len(tensors)
    if len(grad_tensors) != len(tensors):  # (zip dropped the roots past the gradients, silently)
        raise RuntimeError(f"got {len(tensors)} tensors and {len(grad_tensors)} gradients")
    if inputs is None:
        run_backward(tensors, grad_tensors, retain_graph, create_graph)
        return
    inputs = _as_tuple(inputs)
    if not inputs:
        raise RuntimeError("`inputs` argument to `backward()` cannot be empty.")
    inputs = tuple({id(tensor): tensor for tensor in inputs}.values())  # each once, as PyTorch accumulates it
    for tensor in inputs:
        check_gradient_reaches(tensor, "backward(inputs=...)")
        if isinstance(tensor, Tensor) and not tensor._requires_grad:  # (PyTorch retains its gradient first)
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    # A non-leaf input's .grad is a retained gradient, as PyTorch makes it (retains_grad from
    # then on; each backward a new tensor, the sum with the last): the sweep fills it, once.
    for tensor in inputs:
        if tensor._tape is not None and tensor._requires_grad and not tensor._retains_grad:
            tensor.retain_grad()
    collector = _Collector(inputs, after_hooks=True)  # a non-leaf's .grad is its gradient after its hooks
    run_backward(tensors, grad_tensors, retain_graph, create_graph, collect=collector)
    for tensor, values in zip(inputs, collector.values):
        if values is None or tensor._retains_grad:
            continue
        if isinstance(values, Tensor):  # create_graph: the gradient is itself recorded
            tensor._grad = values if tensor._grad is None else tensor._grad + values
        elif tensor._grad is None:
            tensor._grad = _wrap(np.array(values, dtype=tensor._data.dtype))
        else:
            np.add(tensor._grad._data, values, out=tensor._grad._data, casting="unsafe")
        if post_accumulate_registrations[0] and tensor._tape is None:  # a leaf's, as a full backward calls them
            accumulated(tensor)


def _batched_grads(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused, materialize_grads):
    """``grad(..., is_grads_batched=True)``: the first dimension of each ``grad_outputs`` entry
    is a batch of them; each row's gradients, stacked (PyTorch vectorizes this with vmap; here
    a backward per row, over one graph)."""
    from .._views import stack

    if any(g is None for g in grad_outputs):
        raise RuntimeError("is_grads_batched=True requires every grad_outputs entry to be a tensor")
    count = grad_outputs[0].shape[0]
    rows = []
    for index in range(count):
        last = index == count - 1
        rows.append(
            grad(
                outputs,
                inputs,
                tuple(g[index] for g in grad_outputs),
                retain_graph=retain_graph or not last or None,
                create_graph=create_graph,
                allow_unused=allow_unused,
                materialize_grads=materialize_grads,
            )  # fmt: skip
        )
    return tuple(None if parts[0] is None else stack(list(parts)) for parts in zip(*rows))


class _Collector:
    """Gradients of ``inputs``, summed per input, for ``autograd.grad`` and ``backward(inputs=)``."""

    def __init__(self, inputs, after_hooks: bool = False):
        self.inputs = inputs
        self.values = [None] * len(inputs)
        # Whether a non-leaf's gradient is taken after its hooks however the backward goes on
        # below it (``backward(inputs=)``), or, as ``autograd.grad`` takes it, before them where
        # the backward runs on below (``engine._captured_before_hooks``).
        self.after_hooks = after_hooks

    def add(self, index, values):
        self.values[index] = values if self.values[index] is None else self.values[index] + values


def grad(
    outputs,
    inputs,
    grad_outputs=None,
    retain_graph=None,
    create_graph: bool = False,
    only_inputs=True,
    allow_unused=None,
    is_grads_batched=False,
    materialize_grads=False,
):
    """The gradients of ``outputs`` with respect to ``inputs``, without touching ``.grad``.

    >>> import tapegrad as tg
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> tg.autograd.grad((x * x).sum(), x)
    (tensor([2., 4.]),)
    """
    if materialize_grads and allow_unused is False:
        raise ValueError(
            "Expected allow_unused to be True or not passed when materialize_grads=True, but got: allow_unused=False."
        )
    outputs = _as_tuple(outputs)
    inputs = _as_tuple(inputs)
    if not inputs:  # (an empty tuple of gradients, where PyTorch refuses)
        raise RuntimeError("`inputs` argument to `grad()` cannot be empty.")
    for tensor in inputs:
        if not isinstance(tensor, Tensor):
            raise RuntimeError(f"all inputs have to be Tensors or GradientEdges, but got {type(tensor).__name__}")
    grad_outputs = (None,) * len(outputs) if grad_outputs is None else _as_tuple(grad_outputs)
    if is_grads_batched:  # one vector-Jacobian product per row of grad_outputs, stacked
        return _batched_grads(
            outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused, materialize_grads
        )
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"got {len(outputs)} tensors and {len(grad_outputs)} gradients")
    for tensor in inputs:
        if not tensor.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
        check_gradient_reaches(tensor, "autograd.grad")
    collector = _Collector(inputs)
    run_backward(outputs, grad_outputs, retain_graph, create_graph, collect=collector)
    results = []
    for index, values in enumerate(collector.values):
        if values is None:
            if not (allow_unused or materialize_grads):
                raise RuntimeError(
                    f"The differentiated Tensor at index {index} appears to not have been used in the graph. "
                    "Set allow_unused=True if this is the desired behavior."
                )
            # (zeros, not x * 0: NaN at inf; with create_graph they require grad, as PyTorch's
            # zeros_like(input, requires_grad=True), so that a loss made of them differentiates)
            zeros = _wrap(np.zeros_like(inputs[index]._data)) if materialize_grads else None
            if zeros is not None and create_graph:
                zeros.requires_grad_()
            results.append(zeros)
        else:
            results.append(values if isinstance(values, Tensor) else _wrap(values))
    return tuple(results)


def _tensor_backward(self, gradient=None, retain_graph=None, create_graph: bool = False, inputs=None) -> None:
    """Accumulate d(self)/d(leaf), times ``gradient``, into every leaf's ``.grad`` (or only into
    ``inputs``'); follows ``torch.Tensor.backward``."""
    if gradient is not None and not isinstance(gradient, Tensor):
        # PyTorch iterates a number as a sequence of gradients and fails so
        raise TypeError(f"'{type(gradient).__name__}' object is not iterable")
    if inputs is None:
        run_backward((self,), (gradient,), retain_graph, create_graph)
    else:
        backward((self,), (gradient,), retain_graph, create_graph, inputs)


install({"backward": _tensor_backward})


def differentiated(result: Tensor, operands: tuple, g: Tensor) -> tuple:
    """The gradients of ``result`` (weighted by ``g``) with respect to ``operands``, on a graph of
    their own (create_graph): a fused row's formula, by the composite it stands for
    (``nn._convolution``, ``nn._recurrent``). Zeros for an operand that does not require grad
    (a frozen weight), which nothing reads."""
    from .._factories import zeros_like

    wanted = [operand for operand in operands if operand.requires_grad]
    found = iter(
        grad(result, wanted, g, create_graph=True, allow_unused=True, materialize_grads=True) if wanted else ()
    )
    return tuple(next(found) if operand.requires_grad else zeros_like(operand) for operand in operands)
