"""``tapegrad.autograd.functional``: ``vjp``, ``jacobian`` and ``jvp`` with PyTorch's signatures.

The function is recorded once; a Jacobian is one reverse sweep per output element over that one
tape (``retain_graph``), never a re-recording per row. Second derivatives (``hessian``, ``hvp``,
``vhp``) need ``create_graph``, which tapegrad does not support yet: they raise saying so.
"""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor, _wrap
from . import grad as _grad


def _as_tuple(value):
    return ((value,), True) if isinstance(value, Tensor) else (tuple(value), False)


def _prepare(inputs):
    return tuple(x.detach().requires_grad_() if x.is_floating_point() else x.detach() for x in inputs)


def vjp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(*inputs), v^T J)``."""
    inputs, single_input = _as_tuple(inputs)
    inputs = _prepare(inputs)
    outputs = func(*inputs)
    outputs_tuple, single_output = _as_tuple(outputs)
    if v is not None:
        v = (v,) if isinstance(v, Tensor) else tuple(v)
    grads = _grad(outputs_tuple, inputs, v, allow_unused=True, materialize_grads=True)
    outputs = tuple(out.detach() for out in outputs_tuple)
    return (outputs[0] if single_output else outputs), (grads[0] if single_input else grads)


def jacobian(
    func,
    inputs,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    strategy: str = "reverse-mode",
):
    """d func / d inputs, shaped ``output.shape + input.shape`` (nested tuples for several)."""
    if create_graph:
        raise NotImplementedError("jacobian(create_graph=True) needs higher-order gradients, not supported yet")
    inputs, single_input = _as_tuple(inputs)
    inputs = _prepare(inputs)
    outputs, single_output = _as_tuple(func(*inputs))
    blocks = []
    for out in outputs:
        rows = []
        size = out.numel()
        for element in range(size):
            seed = np.zeros(size, out._data.dtype)
            seed[element] = 1.0
            grads = _grad(
                out,
                inputs,
                _wrap(seed.reshape(out._data.shape)),
                retain_graph=True,
                allow_unused=True,
                materialize_grads=True,
            )
            rows.append([g._data for g in grads])
        per_input = []
        for index, x in enumerate(inputs):
            stacked = np.stack([row[index] for row in rows]) if rows else np.zeros((0,) + x._data.shape, x._data.dtype)
            per_input.append(_wrap(stacked.reshape(out._data.shape + x._data.shape)))
        blocks.append(per_input[0] if single_input else tuple(per_input))
    return blocks[0] if single_output else tuple(blocks)


def jvp(func, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """``(func(*inputs), J v)``, from the Jacobian (reverse sweeps; no forward mode yet)."""
    inputs_tuple, single_input = _as_tuple(inputs)
    if v is None:
        v = tuple(_wrap(np.ones_like(x._data)) for x in inputs_tuple)
    v = (v,) if isinstance(v, Tensor) else tuple(v)
    outputs = func(*_prepare(inputs_tuple))
    outputs_tuple, single_output = _as_tuple(outputs)
    full = jacobian(func, inputs_tuple)
    if single_output:
        full = (full,)
    products = []
    for out, block in zip(outputs_tuple, full):
        block = (block,) if isinstance(block, Tensor) else block
        total = np.zeros(out._data.shape, out._data.dtype)
        for part, direction in zip(block, v):
            flat = part._data.reshape(out._data.size, -1)
            total += (flat @ direction._data.reshape(-1)).reshape(out._data.shape)
        products.append(_wrap(total))
    detached = tuple(out.detach() for out in outputs_tuple)
    return (detached[0] if single_output else detached), (products[0] if single_output else tuple(products))


def _second_order(*args, **kwargs):
    raise NotImplementedError("hessian, hvp and vhp need create_graph=True (higher-order gradients), not supported yet")


hessian = hvp = vhp = _second_order
