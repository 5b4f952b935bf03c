"""``gradcheck`` and ``gradgradcheck``: a function's gradients (and their gradients) against
central differences, as ``torch.autograd.gradcheck`` checks them. Meant for custom Functions and
tests; the inputs should be float64."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor, _wrap


class GradcheckError(RuntimeError):
    """A gradient that disagrees with its numerical estimate (PyTorch's class of the same name)."""


def _outputs(func, inputs) -> tuple:
    out = func(*inputs)
    return (out,) if isinstance(out, Tensor) else tuple(out)


def _numerical(func, inputs, wanted, output_index, eps) -> list:
    """d output / d input by central differences, one (output numel, input numel) block per input."""
    blocks = []
    size = _outputs(func, inputs)[output_index].numel()
    for index in wanted:
        data = inputs[index]._data
        block = np.zeros((size, data.size))
        flat = data.reshape(-1)  # a view: the inputs are contiguous (checked by the caller)
        for k in range(data.size):
            # Grad mode stays on: gradgradcheck's function takes a gradient itself.
            original = flat[k]
            flat[k] = original + eps
            up = _outputs(func, inputs)[output_index]._data.astype(np.float64).reshape(-1)
            flat[k] = original - eps
            down = _outputs(func, inputs)[output_index]._data.astype(np.float64).reshape(-1)
            flat[k] = original
            block[:, k] = (up - down) / (2 * eps)
        blocks.append(block)
    return blocks


def _analytical(func, inputs, wanted, output_index) -> list:
    """d output / d input by reverse sweeps, one output element at a time."""
    from . import grad

    output = _outputs(func, inputs)[output_index]
    blocks = [np.zeros((output.numel(), inputs[index].numel())) for index in wanted]
    for row in range(output.numel()):
        seed = np.zeros(output.numel(), output._data.dtype)
        seed[row] = 1.0
        grads = grad(
            output,
            [inputs[index] for index in wanted],
            _wrap(seed.reshape(output._data.shape)),
            retain_graph=True,
            allow_unused=True,
        )
        for block, gradient in zip(blocks, grads):
            if gradient is not None:
                block[row] = gradient._data.reshape(-1)
    return blocks


def gradcheck(
    func,
    inputs,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    **_ignored,
) -> bool:
    """True if the Jacobian of ``func`` at ``inputs`` (those that require grad) agrees with
    central differences within ``atol + rtol * |numerical|``, as ``torch.autograd.gradcheck``.

    ``inputs`` is a tensor or a tuple (of tensors and other arguments), of any shape; use float64,
    since central differences in float32 are too coarse for the default tolerances. ``func``
    returns a tensor or a tuple of tensors. ``eps`` is the step of the differences.

    Raises ``GradcheckError`` (a ``RuntimeError``) naming the output and input whose Jacobians
    differ, with both printed; with ``raise_exception=False`` returns False instead. Raises
    ``ValueError`` when no input requires grad.

    >>> import tapegrad as tg
    >>> x = tg.tensor([0.5, 1.5], dtype=tg.float64, requires_grad=True)
    >>> tg.autograd.gradcheck(lambda a: (a * a.sin()).sum(), (x,))
    True
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    wanted = [k for k, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not wanted:
        raise ValueError(
            "gradcheck expects at least one input tensor to require gradient, but none of the them have "
            "requires_grad=True."
        )
    for index in wanted:
        if not inputs[index]._data.flags.c_contiguous:
            raise NotImplementedError("gradcheck needs contiguous inputs; call .contiguous() on them")
    for output_index in range(len(_outputs(func, inputs))):
        numerical = _numerical(func, inputs, wanted, output_index, eps)
        analytical = _analytical(func, inputs, wanted, output_index)
        for index, n, a in zip(wanted, numerical, analytical):
            if not np.allclose(a, n, rtol=rtol, atol=atol):
                if not raise_exception:
                    return False
                raise GradcheckError(
                    f"Jacobian mismatch for output {output_index} with respect to input {index},\n"
                    f"numerical:{_wrap(n)}\nanalytical:{_wrap(a)}\n"
                )
    return True


def gradgradcheck(func, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  raise_exception: bool = True, **_ignored) -> bool:  # fmt: skip
    """``gradcheck`` of the function's vector-Jacobian product (``create_graph=True``), so second
    derivatives are checked against central differences of first ones, as
    ``torch.autograd.gradgradcheck``. ``grad_outputs`` (tensors of the outputs' shapes) default to
    fixed random vectors, treated as further inputs.

    Raises ``GradcheckError`` as ``gradcheck`` does, and ``NotImplementedError`` naming an op whose
    second derivative tapegrad cannot record yet.

    >>> import tapegrad as tg
    >>> x = tg.tensor([0.5, 1.5], dtype=tg.float64, requires_grad=True)
    >>> tg.autograd.gradgradcheck(lambda a: a.tanh() * a, (x,))
    True
    """
    from . import grad

    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    outputs = _outputs(func, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(
            Tensor(rng.standard_normal(out._data.shape), dtype=out._data.dtype, requires_grad=True) for out in outputs
        )
    grad_outputs = (grad_outputs,) if isinstance(grad_outputs, Tensor) else tuple(grad_outputs)
    wanted = [k for k, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]

    def vjp(*values):
        given, seeds = values[: len(inputs)], values[len(inputs) :]
        results = _outputs(func, given)
        grads = grad(results, [given[k] for k in wanted], seeds, create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(vjp, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)
