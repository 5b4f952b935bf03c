"""Module backward hooks (``register_full_backward_hook``, ``register_full_backward_pre_hook``),
as PyTorch's ``BackwardHook`` makes them: the module's tensor inputs, and its tensor outputs,
each pass through one identity node (``BackwardHookFunction``, a custom Function) whose backward
receives the gradients of all of them at once, None for those no gradient reached.

The outputs' node runs the pre-hooks on ``grad_output`` (which they may replace) and keeps it;
the inputs' node, reached after, runs the hooks on ``grad_input`` and that ``grad_output`` (a
tuple they return replaces ``grad_input``). One node per side, as PyTorch's: the hooks run once
a backward, whichever outputs took a gradient (tensor hooks on the outputs, one each, missed the
outputs a backward never reached, and their pre-hooks never ran).
"""

from __future__ import annotations

import warnings

from .._factories import zeros
from .._frames import user_stacklevel
from ..autograd.function import Function
from ..tensor import Tensor


class BackwardHookFunction(Function):
    """The identity on a module's tensors whose backward runs ``ctx.on_backward`` on the
    gradients of all of them (PyTorch's ``torch.nn.modules._functions.BackwardHookFunction``)."""

    @staticmethod
    def forward(ctx, on_backward, *tensors):
        ctx.on_backward = on_backward
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(*[t for t in tensors if not t.requires_grad])
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        return (None, *ctx.on_backward(grads))


class BackwardHooks:
    """The hooks of one call of a module: wraps its inputs and outputs, runs the hooks."""

    def __init__(self, module, hooks: list, pre_hooks: list):
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.grad_outputs = None  # of the backward under way, after the pre-hooks
        self.n_inputs = self.n_outputs = 0
        self.input_positions = self.output_positions = None  # where the tensors are

    def wrap_inputs(self, args: tuple) -> tuple:
        self.n_inputs = len(args)
        wrapped, self.input_positions = self._through_node(args, self._inputs_backward)
        # PyTorch's node materialises the gradient of an input that takes none (a loss's target)
        # as zeros: its hooks see a tensor there, not None.
        self.constant_inputs = {
            i: (args[i].shape, args[i].dtype) for i in self.input_positions or () if not args[i].requires_grad
        }
        return wrapped

    def wrap_outputs(self, result):
        single = not isinstance(result, tuple)
        values = (result,) if single else result
        self.n_outputs = len(values)
        wrapped, self.output_positions = self._through_node(values, self._outputs_backward)
        if single:
            return wrapped[0]
        return type(result)(*wrapped) if type(result) is not tuple else wrapped

    def _through_node(self, values: tuple, on_backward) -> tuple:
        """``(values with their tensors through one BackwardHookFunction, the tensors'
        positions)``; unchanged, positions None, when none requires grad."""
        positions = [i for i, value in enumerate(values) if isinstance(value, Tensor)]
        if not any(values[i].requires_grad for i in positions):
            return values, None
        outputs = BackwardHookFunction.apply(on_backward, *[values[i] for i in positions])
        wrapped = list(values)
        for i, output in zip(positions, outputs):
            wrapped[i] = output
        return tuple(wrapped), positions

    @staticmethod
    def _packed(positions, grads, size: int) -> tuple:
        packed = [None] * size
        for i, grad in zip(positions, grads):
            packed[i] = grad
        return tuple(packed)

    def _outputs_backward(self, grads: tuple) -> tuple:
        self.grad_outputs = self._packed(self.output_positions, grads, self.n_outputs)
        for hook in self.pre_hooks:
            changed = hook(self.module, self.grad_outputs)
            if changed is None:
                continue
            if len(changed) != len(self.grad_outputs):
                raise RuntimeError(
                    f"Backward pre hook returned an invalid number of grad_output, got {len(changed)}, but expected "
                    f"{len(self.grad_outputs)}"
                )
            self.grad_outputs = tuple(changed)
        passed = tuple(self.grad_outputs[i] for i in self.output_positions)
        if self.input_positions is None:  # no input takes a gradient: the hooks run now, with None
            warnings.warn(
                "Full backward hook is firing when gradients are computed with respect to module outputs since no "
                "inputs require gradients. See https://docs.pytorch.org/docs/main/generated/torch.nn.Module.html"
                "#torch.nn.Module.register_full_backward_hook for more details.",
                stacklevel=user_stacklevel(),
            )
            grad_inputs = (None,) * self.n_inputs
            for hook in self.hooks:
                result = hook(self.module, grad_inputs, self.grad_outputs)
                if result is not None and not (isinstance(result, tuple) and all(r is None for r in result)):
                    raise RuntimeError(
                        "Backward hook for Modules where no input requires gradient should always return None or None "
                        "for all gradients."
                    )
            self.grad_outputs = None
        return passed

    def _inputs_backward(self, grads: tuple) -> tuple:
        if self.grad_outputs is None:  # reached without passing the outputs (a double backward)
            return grads
        grad_inputs = list(self._packed(self.input_positions, grads, self.n_inputs))
        for i, (shape, dtype) in self.constant_inputs.items():
            if grad_inputs[i] is None:
                grad_inputs[i] = zeros(shape, dtype=dtype)
        grad_inputs = tuple(grad_inputs)
        for hook in self.hooks:
            changed = hook(self.module, grad_inputs, self.grad_outputs)
            if changed is None:
                continue
            if len(changed) != len(grad_inputs):
                raise RuntimeError(
                    f"Backward hook returned an invalid number of grad_input, got {len(changed)}, but expected "
                    f"{len(grad_inputs)}"
                )
            grad_inputs = tuple(changed)
        self.grad_outputs = None
        return tuple(grad_inputs[i] for i in self.input_positions)
