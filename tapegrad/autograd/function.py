"""Custom differentiable operations: ``tapegrad.autograd.Function``, as in PyTorch.

``MyOp.apply(x)`` runs the user's ``forward`` with grad mode off, then appends one tape row (op
"function") per differentiable output; the tape's ``functions`` table maps the call's first output
row to a ``FunctionCall`` holding the context and the rows of the inputs. The jitted sweep gives
those rows gradient slots and otherwise skips them; the engine stops at the call's first output
row, when all its outputs' gradients are complete, and calls ``FunctionCall.backward``, which runs
the user's ``backward`` and checks what it returns the way PyTorch does.

With ``create_graph=True`` the backward walk of ``higher_order`` calls ``FunctionCall.backward``
with recorded gradients and grad mode on, as PyTorch does: what the user's ``backward`` computes
with tapegrad ops is recorded, so it can be differentiated again. The saved inputs and outputs
then come back standing at their rows of the tape (``FunctionCtx._sources``), so that a second
derivative also flows through what ``backward`` read, not only through its gradient argument.
"""

from __future__ import annotations

import functools

import numpy as np

from .._grad_mode import anomaly, enable_grad, is_grad_enabled, no_grad
from .._grad_mode import state as _grad_state
from .._ops import OPCODE
from .._record import CUSTOM_FUNCTION, _bump_version, _input_row, _tape_for
from .._tape import Tape, exclusive, saved_hooks_open, saved_tensor_hooks
from ..tensor import Tensor, _wrap
from .engine import SECOND_BACKWARD

_FUNCTION_OPCODE = OPCODE["function"]


class FunctionCtx:
    """The ``ctx`` that ``forward`` fills and ``backward`` reads; it takes any other attribute too."""

    def __init__(self, needs_input_grad: tuple):
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self._saved = ()  # (tensor or None, its version counter, its version when saved)
        # Which input or output of the call each saved tensor is (``("input", i)``, ``("output",
        # j)`` or None): ``_record_call`` works it out from ``_saved_objects``, the tensors as
        # passed, which it then drops (holding the outputs here would close a reference cycle).
        self._saved_objects = ()
        self._sources = ()
        self._graph_saved = None  # the saved tensors at their rows, during a create_graph backward
        self._packed = None  # ((unpack hook, packed) or None, ...) under saved_tensors_hooks
        self._freed = False
        self._non_differentiable = ()
        self._dirty = ()

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors for ``backward``; ``saved_tensors`` checks they were not changed in place.

        Leaves come back as themselves; any other tensor as a tensor without a graph sharing its
        storage. PyTorch rebuilds those with their ``grad_fn``; here a saved output or recorded
        input holding its tape would close a reference cycle (tape -> ctx -> tensor -> tape), and a
        graph nobody can reach would then wait for the garbage collector instead of being freed."""
        saved = []
        for index, tensor in enumerate(tensors):
            if tensor is None:
                saved.append((None, None, 0))
                continue
            if not isinstance(tensor, Tensor):
                raise TypeError(
                    f"save_for_backward can only save variables, but argument {index} is of type "
                    f"{type(tensor).__name__}"
                )
            counter = tensor._version_counter
            if counter is None:
                counter = tensor._version_counter = [0]
            is_leaf = tensor._tape is None and tensor._requires_grad
            saved.append((tensor if is_leaf else _alias(tensor), counter, counter[0]))
        self._saved = tuple(saved)
        self._saved_objects = tensors
        self._packed = None
        stack = getattr(saved_tensor_hooks, "stack", None) if saved_hooks_open[0] else None
        if stack:  # saved_tensors_hooks: each tensor through the pack hook, versions unchecked
            pack, unpack = stack[-1]
            saved_tensor_hooks.stack = []  # (off inside the hook, as Tape._pack)
            try:
                self._packed = tuple(None if t is None else (unpack, pack(t)) for t in tensors)
            finally:
                saved_tensor_hooks.stack = stack

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise RuntimeError(SECOND_BACKWARD)
        if self._packed is not None:
            return tuple(None if entry is None else entry[0](entry[1]) for entry in self._packed)
        for tensor, counter, version in self._saved:
            if counter is not None and counter[0] != version:
                raise RuntimeError(_modified_message(tensor, counter, version))
        if self._graph_saved is not None:
            return self._graph_saved
        return tuple(tensor for tensor, _, _ in self._saved)

    def mark_non_differentiable(self, *tensors) -> None:
        """These outputs will not require grad; ``backward`` still receives (zero) gradients for them."""
        self._non_differentiable = tensors

    def save_for_forward(self, *tensors) -> None:
        """Tensors for the Function's ``jvp`` (forward mode), kept as PyTorch keeps them. tapegrad
        has no forward mode (its ``jacfwd`` and ``jvp`` run reverse sweeps) and never calls
        ``jvp``: a Function that saves for it runs its reverse mode as in PyTorch, where this
        was an ``AttributeError``. Follows ``FunctionCtx.save_for_forward``."""
        self.saved_for_forward = tensors

    def mark_dirty(self, *tensors) -> None:
        """These inputs were changed in place by ``forward``, which returns them: each output
        is then that tensor itself, its history now this call (PyTorch's ``mark_dirty``)."""
        self._dirty = tensors

    def set_materialize_grads(self, value: bool) -> None:
        """With False, ``backward`` receives None instead of zeros for outputs no gradient reached."""
        self.materialize_grads = bool(value)

    def _free(self) -> None:
        """What a backward without ``retain_graph`` does: drop the saved tensors, as PyTorch does."""
        self._saved = ()
        self._packed = None
        self._freed = True


def _modified_message(tensor: Tensor, counter: list, expected: int) -> str:
    kind = "Double" if tensor._data.dtype == np.float64 else "Float"
    # The in-place op that produced the current value, as PyTorch names it.
    producer = f", which is output 0 of {counter[1]}," if len(counter) > 1 else ""
    return (
        "one of the variables needed for gradient computation has been modified by an inplace operation: "
        f"[tapegrad.{kind}Tensor {list(tensor._data.shape)}]{producer} is at version {counter[0]}; expected "
        f"version {expected} instead. Hint: the variable was changed in place after the operation that "
        "saved it; clone it before changing it, or change it after the backward."
    )


class Function:
    """Base class of a differentiable operation with a hand-written backward.

    >>> import tapegrad as tg
    >>> class Exp(tg.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         y = x.exp()
    ...         ctx.save_for_backward(y)
    ...         return y
    ...
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         (y,) = ctx.saved_tensors
    ...         return grad * y
    >>> x = tg.tensor([0.0, 1.0], requires_grad=True)
    >>> Exp.apply(x).sum().backward()
    >>> x.grad
    tensor([1.0000, 2.7183])
    """

    @staticmethod
    def forward(*args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        """Override this (and write ``forward`` without ``ctx``) for PyTorch's newer style."""
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError(
            "You must implement either the backward or vjp method for your custom autograd.Function "
            "to use it with backward mode AD."
        )

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run ``forward`` on the arguments and record the call, so that ``backward`` gets used."""
        _refuse_inside_record(cls)
        separate_setup = cls.setup_context is not Function.setup_context
        if separate_setup:
            import inspect  # here: importing it costs ~7 ms of every ``import tapegrad``

            bound = inspect.signature(cls.forward).bind(*args, **kwargs)
            bound.apply_defaults()
            args, kwargs = bound.args, bound.kwargs
        # PyTorch counts keyword arguments as inputs too, after the positional ones.
        inputs = args + tuple(kwargs.values())
        ctx = FunctionCtx(tuple(isinstance(value, Tensor) and value._requires_grad for value in inputs))
        with no_grad():
            if separate_setup:
                output = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, output)
            else:
                output = cls.forward(ctx, *args, **kwargs)
        if ctx._dirty:
            _check_dirty(ctx, output if isinstance(output, tuple) else (output,))
        if not (is_grad_enabled() and any(ctx.needs_input_grad)):
            ctx._saved_objects = ()
            return output
        is_tuple = isinstance(output, tuple)
        outputs = _record_call(cls, ctx, inputs, output if is_tuple else (output,))
        return outputs if is_tuple else outputs[0]


def once_differentiable(backward):
    """PyTorch's marker for a ``backward`` that cannot itself be differentiated: it runs with grad
    mode off, and under ``create_graph`` its gradients come out requiring grad through a node
    whose own backward raises (PyTorch's ``DelayedError``), so that differentiating them again is
    an error rather than a silently missing term."""

    @functools.wraps(backward)
    def wrapper(ctx, *grad_outputs):
        with no_grad():
            outputs = backward(ctx, *grad_outputs)
        if not is_grad_enabled() or not any(isinstance(g, Tensor) and g._requires_grad for g in grad_outputs):
            return outputs
        single = not isinstance(outputs, tuple)
        outputs = (outputs,) if single else outputs
        tensors = [output for output in outputs if isinstance(output, Tensor)]
        if not tensors:
            return outputs[0] if single else outputs
        delayed = _DelayedError.apply(*[tensor.detach().requires_grad_() for tensor in tensors])
        delayed = iter(delayed if isinstance(delayed, tuple) else (delayed,))
        outputs = tuple(next(delayed) if isinstance(output, Tensor) else output for output in outputs)
        return outputs[0] if single else outputs

    return wrapper


class _DelayedError(Function):
    """The node ``once_differentiable`` puts after its gradients: differentiating through it raises."""

    @staticmethod
    def forward(ctx, *tensors):
        return tuple(_alias(tensor) for tensor in tensors) if len(tensors) > 1 else _alias(tensors[0])

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("trying to differentiate twice a function that was marked with @once_differentiable")


def _check_dirty(ctx: FunctionCtx, outputs: tuple) -> None:
    """PyTorch's checks of ``mark_dirty``: each dirty input is returned, and a leaf that requires
    grad is not changed in place under grad mode; then each counts one more change (what saved
    it earlier sees it changed)."""
    for tensor in ctx._dirty:
        if not any(tensor is output for output in outputs):
            raise RuntimeError(
                "Some elements marked as dirty during the forward method were not returned as output. The inputs "
                "that are modified inplace must all be outputs of the Function."
            )
        if is_grad_enabled() and tensor._requires_grad and tensor._tape is None:
            raise RuntimeError("a leaf Variable that requires grad has been used in an in-place operation.")
    for tensor in ctx._dirty:
        _bump_version(tensor)
    # What forward saved of a dirty tensor is the output, at its new version (PyTorch saves it
    # after the change is counted): the in-place activation that saves its result works.
    counters = [tensor._version_counter for tensor in ctx._dirty]
    ctx._saved = tuple(
        (saved, counter, counter[0]) if any(counter is dirty for dirty in counters) else (saved, counter, version)
        for saved, counter, version in ctx._saved
    )


def _refuse_inside_record(function: type) -> None:
    # The replay's forward is jitted code, which cannot call the user's Python forward: replaying
    # without it would silently reuse the recorded outputs.
    if _grad_state.recording is not None:
        raise NotImplementedError(
            f"custom autograd.Function {function.__name__} cannot be recorded by tapegrad.record yet"
        )


@exclusive
def _record_call(function: type, ctx: FunctionCtx, inputs: tuple, outputs: tuple) -> tuple:
    """Append one row per differentiable output and register the call; the outputs, now recorded."""
    tape = _tape_for(*[value for value, needed in zip(inputs, ctx.needs_input_grad) if needed])
    input_specs = tuple(
        (_input_row(tape, value) if needed else -1, value._data.shape) if isinstance(value, Tensor) else None
        for value, needed in zip(inputs, ctx.needs_input_grad)
    )
    output_specs = []
    recorded = []
    for number, value in enumerate(outputs):
        if not isinstance(value, Tensor):
            output_specs.append(None)
            recorded.append(value)
            continue
        data = value._data
        differentiable = data.dtype.kind == "f" and all(value is not marked for marked in ctx._non_differentiable)
        row = (
            tape.append(_FUNCTION_OPCODE, -1, -1, 0, tape.layout(data.dtype, data.shape), 0.0) if differentiable else -1
        )
        output_specs.append((row, data.shape, data.dtype))
        if not differentiable and any(value is dirty for dirty in ctx._dirty):
            # changed in place and not differentiable: its old history no longer describes it
            value._tape, value._row, value._requires_grad, value._grad_fn = None, -1, False, None
        recorded.append(
            _as_output(value, inputs, tape, row, (number, function.__name__), ctx._dirty) if differentiable else value
        )
    ctx._sources = tuple(_source(saved, inputs, outputs, ctx._dirty) for saved in ctx._saved_objects)
    ctx._saved_objects = ()
    rows = [spec[0] for spec in output_specs if spec is not None and spec[0] >= 0]
    if rows:
        tape.functions[rows[0]] = FunctionCall(function, ctx, input_specs, tuple(output_specs))
        if anomaly[0]:
            tape.note_trace(rows[0])
    return tuple(recorded)


def _source(saved, inputs: tuple, outputs: tuple, dirty: tuple = ()):
    """Which input or output of the call a saved tensor is, or None (an intermediate, a constant).
    A tensor ``forward`` changed in place and marked dirty is both: what it saved of it is the
    output, the value after the change (found as the input, a double backward differentiated
    the history before the change)."""
    order = (("input", inputs), ("output", outputs))
    if any(saved is tensor for tensor in dirty):
        order = order[::-1]
    for kind, values in order:
        for index, value in enumerate(values):
            if value is saved and saved is not None:
                return kind, index
    return None


def _as_output(value: Tensor, inputs: tuple, tape: Tape, row: int, name: tuple, dirty_inputs: tuple = ()) -> Tensor:
    """``value`` made the recorded output at ``row``: the tensor ``forward`` created becomes it, as
    in PyTorch; an input (or another graph's tensor) returned as is gets a new tensor instead.
    An input returned as is, or a view made in ``forward``, is a view whose in-place change
    PyTorch refuses (its custom backward would not follow it): ``name`` is (the output's
    number, the Function's name) for that message."""
    as_is = any(value is other for other in inputs)
    if as_is and any(value is dirty for dirty in dirty_inputs):  # changed in place: it is the output
        if value._base is not None:
            raise NotImplementedError("mark_dirty of a view is not supported yet: mark its base, or return a clone")
        value._tape, value._row, value._requires_grad, value._grad_fn = tape, row, True, None
        tape.hold(row, value)
        return value
    root = value._base if value._base is not None else value if as_is else None
    if value._tape is not None or value._requires_grad or as_is:
        value = _alias(value)
    if root is not None:
        value._base = root
        if value._version_counter is None:
            value._version_counter = root._version_counter = root._version_counter or [0]
        value._seen_version = value._version_counter[0]
        value._view_meta = (CUSTOM_FUNCTION, *name)
    value._tape, value._row, value._requires_grad, value._grad_fn = tape, row, True, None
    tape.hold(row, value)
    return value


def _alias(tensor: Tensor) -> Tensor:
    """A tensor without a graph on ``tensor``'s storage, sharing its version counter."""
    alias = _wrap(tensor._data)
    if tensor._version_counter is None:
        tensor._version_counter = [0]
    alias._version_counter = tensor._version_counter
    return alias


class FunctionCall:
    """One recorded ``apply``: what its backward needs, and where its rows are on the tape.

    ``inputs`` has one entry per forward argument: None for a non-tensor, else ``(row, shape)``
    with row -1 when the tensor needs no gradient. ``outputs`` has one per forward output: None for
    a non-tensor, else ``(row, shape, dtype)`` with row -1 when the output is not differentiable.
    """

    __slots__ = ("function", "ctx", "inputs", "outputs")

    def __init__(self, function: type, ctx: FunctionCtx, inputs: tuple, outputs: tuple):
        self.function = function
        self.ctx = ctx
        self.inputs = inputs
        self.outputs = outputs

    @property
    def name(self) -> str:
        return getattr(self.function, "_node_name", None) or f"{self.function.__name__}Backward"

    @property
    def output_rows(self) -> tuple:
        """One row per forward output, -1 where no gradient slot exists."""
        return tuple(-1 if spec is None else spec[0] for spec in self.outputs)

    @property
    def tensor_input_rows(self) -> tuple:
        """The rows of the tensor inputs (what ``next_functions`` lists), -1 where no gradient flows."""
        return tuple(spec[0] for spec in self.inputs if spec is not None)

    def shifted(self, shift: int) -> FunctionCall:
        """This call on a tape whose rows moved up by ``shift`` (``Tape.absorb``)."""

        def moved(spec):
            return spec if spec is None or spec[0] < 0 else (spec[0] + shift, *spec[1:])

        inputs = tuple(moved(spec) for spec in self.inputs)
        return FunctionCall(self.function, self.ctx, inputs, tuple(moved(spec) for spec in self.outputs))

    def renumbered(self, new: list) -> FunctionCall:
        """This call on a tape ``Tape.collect`` compacted (``new``: each old row's new number)."""

        def moved(spec):
            return spec if spec is None or spec[0] < 0 else (new[spec[0]], *spec[1:])

        inputs = tuple(moved(spec) for spec in self.inputs)
        return FunctionCall(self.function, self.ctx, inputs, tuple(moved(spec) for spec in self.outputs))

    def backward(self, gradients: list, retain_graph: bool) -> list:
        """Run the user's backward on the outputs' gradients (arrays, None where none arrived).

        Returns ``[(input row, gradient array in the input's shape)]`` for the inputs that need one.
        """
        grad_outputs = [self._grad_output(spec, values) for spec, values in zip(self.outputs, gradients)]
        with no_grad():
            result = self.function.backward(self.ctx, *grad_outputs)
        if not retain_graph:
            self.ctx._free()
        return [
            (row, self._fitted(grad._data, shape, index))
            for row, grad, shape, index in self._input_gradients(result if isinstance(result, tuple) else (result,))
        ]

    def recorded_backward(self, gradients: list, saved: tuple) -> list:
        """The backward under ``create_graph``: ``gradients`` are tensors (None where none
        arrived), ``saved`` the saved tensors standing at their rows, the user's ``backward`` runs
        with grad mode on. Returns ``[(input row, gradient tensor in the input's shape and
        dtype)]``, each as recorded as the ops that made it. The caller frees the context."""
        grad_outputs = [
            (self._grad_output(spec, None) if values is None else values) if spec is not None else None
            for spec, values in zip(self.outputs, gradients)
        ]
        self.ctx._graph_saved = saved
        try:
            with enable_grad():
                result = self.function.backward(self.ctx, *grad_outputs)
        finally:
            self.ctx._graph_saved = None
        pairs = []
        for row, grad, shape, index in self._input_gradients(result if isinstance(result, tuple) else (result,)):
            grad = self._fitted(grad, shape, index)
            pairs.append((row, grad))
        return pairs

    def _grad_output(self, spec, values):
        if spec is None:  # PyTorch passes None for an output that is not a tensor
            return None
        if values is None:
            return _wrap(np.zeros(spec[1], spec[2])) if self.ctx.materialize_grads else None
        return _wrap(values)

    def _input_gradients(self, grads: tuple) -> list:
        """What ``backward`` returned, checked as PyTorch checks it: ``[(input row, gradient,
        the input's shape, its index among the tensor inputs)]`` for the inputs that need one."""
        expected = len(self.inputs)
        if len(grads) > expected and all(grad is None for grad in grads[expected:]):
            grads = grads[:expected]  # PyTorch accepts extra trailing Nones
        if len(grads) != expected:
            raise RuntimeError(
                f"function {self.name} returned an incorrect number of gradients (expected {expected}, got {len(grads)})"
            )
        pairs = []
        tensor_index = 0  # PyTorch numbers the tensor inputs alone in its shape message
        for position, (spec, grad) in enumerate(zip(self.inputs, grads)):
            if spec is None:
                if grad is not None:
                    raise RuntimeError(
                        f"function {self.name} returned a gradient different than None at position {position + 1}, "
                        "but the corresponding forward input was not a Variable"
                    )
                continue
            if grad is not None and not isinstance(grad, Tensor):
                raise RuntimeError(f"expected Variable or None (got {_type_name(grad)})")
            row, shape = spec
            if grad is not None and row >= 0:
                pairs.append((row, grad, shape, tensor_index))
            tensor_index += 1
        return pairs

    def _fitted(self, values, shape: tuple, index: int):
        """``values`` (an array, or a recorded tensor under ``create_graph``) in the input's
        ``shape``: summed over broadcast dimensions if it was broadcast from that shape (as
        PyTorch accepts), else PyTorch's error."""
        if tuple(values.shape) == shape:
            return values
        try:
            broadcastable = np.broadcast_shapes(shape, tuple(values.shape)) == tuple(values.shape)
        except ValueError:
            broadcastable = False
        if not broadcastable:
            raise RuntimeError(
                f"Function {self.name} returned an invalid gradient at index {index} - got {list(values.shape)} "
                f"but expected shape compatible with {list(shape)}"
            )
        leading = tuple(range(values.ndim - len(shape)))
        recorded = isinstance(values, Tensor)
        if leading:
            values = values.sum(dim=leading) if recorded else values.sum(axis=leading)
        stretched = tuple(axis for axis, extent in enumerate(shape) if extent == 1 and values.shape[axis] != 1)
        if not stretched:
            return values
        return values.sum(dim=stretched, keepdim=True) if recorded else values.sum(axis=stretched, keepdims=True)


def _type_name(value) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
