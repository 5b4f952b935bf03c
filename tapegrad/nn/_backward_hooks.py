"""Module backward hooks (``register_full_backward_hook``, ``register_full_backward_pre_hook``),
as PyTorch's ``BackwardHook`` makes them: the module's tensor inputs and outputs pass through an
identity (a view) whose tensor hooks see the gradients with respect to them.

For one call: each output's hook collects ``grad_output`` (the pre-hooks may replace it, once
all of it has arrived); the inputs' hooks collect ``grad_input``, and the hooks run when the
last input's gradient arrives (the input recorded first: the sweep reaches it last), with
``grad_input`` (None for an input that takes no gradient) and ``grad_output``. A tuple a hook
returns replaces ``grad_input``; with several inputs that take a gradient, the earlier ones'
have gone on by then, so only the last may be replaced (``NotImplementedError`` otherwise).
"""

from __future__ import annotations

import warnings

from .._record import CUSTOM_FUNCTION
from ..tensor import Tensor


def _hook_view(tensor: Tensor, number: int) -> Tensor:
    """The identity view a hook watches; an in-place change of it raises, as of PyTorch's (an
    output of its ``BackwardHookFunction``): the hooks would see the gradient of the change,
    not of the module (``ReLU(inplace=True)`` after a hooked layer gave its hook None)."""
    view = tensor.view_as(tensor)
    view._view_meta = (CUSTOM_FUNCTION, number, "BackwardHookFunction")
    return view


class BackwardHooks:
    """The gradients of one call of a module with backward hooks."""

    def __init__(self, module, hooks: list, pre_hooks: list):
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.grad_outputs: list = []
        self.outputs_waiting = 0
        self.grad_inputs: list = []
        self.inputs_waiting = self.inputs_taking = 0
        self._output_slots: list = []  # the outputs that take a gradient
        self.arrived_outputs: list = []  # grad_output of the backward under way (after the pre-hooks)

    def wrap_inputs(self, args: tuple) -> tuple:
        positions = [i for i, arg in enumerate(args) if isinstance(arg, Tensor)]
        self.grad_inputs = [None] * len(positions)
        wrapped = list(args)
        for slot, i in enumerate(positions):
            if args[i].requires_grad:
                wrapped[i] = _hook_view(args[i], slot)
                wrapped[i].register_hook(lambda grad, slot=slot: self._input_arrived(slot, grad))
                self.inputs_waiting += 1
        self.inputs_taking = self.inputs_waiting
        return tuple(wrapped)

    def wrap_outputs(self, result):
        single = isinstance(result, Tensor)
        outputs = [result] if single else list(result) if isinstance(result, (tuple, list)) else None
        if outputs is None:
            return result
        self.grad_outputs = [None] * len(outputs)
        for index, output in enumerate(outputs):
            if isinstance(output, Tensor) and output.requires_grad:
                outputs[index] = _hook_view(output, index)
                outputs[index].register_hook(lambda grad, index=index: self._output_arrived(index, grad))
                self.outputs_waiting += 1
                self._output_slots.append(index)
        if single:
            return outputs[0]
        if isinstance(result, tuple) and type(result) is not tuple:  # a named tuple
            return type(result)(*outputs)
        return type(result)(outputs)

    def _output_arrived(self, index: int, grad):
        self.grad_outputs[index] = grad
        self.outputs_waiting -= 1
        if self.outputs_waiting:  # another output's gradient is still to come: this one goes on
            return grad
        if self.outputs_waiting == 0:
            for hook in self.pre_hooks:
                changed = hook(self.module, tuple(self.grad_outputs))
                if changed is not None:
                    changed = list(changed)
                    # The other outputs' gradients went on when they arrived: a replacement of
                    # one of them would be lost, silently
                    if any(changed[i] is not self.grad_outputs[i] for i in self._output_slots if i != index):
                        raise NotImplementedError(
                            "a full backward pre-hook replacing the gradient of a module output other than the one "
                            "whose gradient arrives last: tapegrad passes the others on as they arrive"
                        )
                    self.grad_outputs = changed
            # Counted again for the next backward through this call (a retained graph): the
            # hooks run on each, as PyTorch's (the counts stayed at 0, and they ran once).
            self.outputs_waiting = len(self._output_slots)
            self.arrived_outputs = self.grad_outputs
            self.grad_outputs = [None] * len(self.grad_outputs)
            if self.inputs_waiting == 0:  # no input takes a gradient: the hooks run now, with None
                warnings.warn(
                    "Full backward hook is firing when gradients are computed with respect to module outputs since no "
                    "inputs require gradients. See https://docs.pytorch.org/docs/main/generated/torch.nn.Module.html"
                    "#torch.nn.Module.register_full_backward_hook for more details.",
                    stacklevel=2,
                )
                self._run_hooks()
        return self.arrived_outputs[index]

    def _input_arrived(self, slot: int, grad):
        self.grad_inputs[slot] = grad
        self.inputs_waiting -= 1
        if self.inputs_waiting:
            return None
        replaced = self._run_hooks()
        self.inputs_waiting = self.inputs_taking  # (for the next backward through this call)
        self.grad_inputs = [None] * len(self.grad_inputs)
        return replaced[slot] if replaced is not None else None

    def _run_hooks(self):
        replaced = None
        for hook in self.hooks:
            changed = hook(self.module, tuple(self.grad_inputs), tuple(self.arrived_outputs))
            if changed is not None:
                changed = tuple(changed)
                taking = [i for i, grad in enumerate(self.grad_inputs) if grad is not None]
                if len(taking) > 1 and any(changed[i] is not self.grad_inputs[i] for i in taking[1:]):
                    raise NotImplementedError(
                        "a full backward hook replacing the gradients of several inputs: only the one passed "
                        "last can be replaced here"
                    )
                self.grad_inputs = list(changed)
                replaced = changed
        return replaced
