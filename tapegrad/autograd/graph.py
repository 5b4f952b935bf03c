"""``grad_fn`` objects: views onto tape rows, made on demand, so the tape never holds them."""

from __future__ import annotations

import contextlib
import weakref

from .._indexing import refresh_view
from .._ops import CONSTANT_OPCODE, LEAF_OPCODE, NARY, OPCODE, OPS, VIEW
from .._tape import NO_GRAD, OPCODE_MASK, ROW_WIDTH, Tape, resolve, saved_hooks_open, saved_tensor_hooks
from ..tensor import install


class Node:
    """A node of the backward graph (PyTorch's ``torch.autograd.graph.Node``)."""

    __slots__ = ("_tape", "_row", "__weakref__")

    def __init__(self, tape: Tape, row: int):
        self._tape = tape
        self._row = row

    def name(self) -> str:
        return _CPP_NAMES.get(type(self).__name__, type(self).__name__)

    def _resolved(self):
        tape, row = self._tape, self._row
        while tape.merged_into is not None:
            row += tape.row_shift
            tape = tape.merged_into
        self._tape, self._row = tape, row
        return tape, row

    @property
    def next_functions(self) -> tuple:
        tape, row = self._resolved()
        opcode = tape.ints[row * ROW_WIDTH]
        sources = tape.sources(row)
        if OPS[opcode].family == NARY:  # stack/cat: one entry per listed input
            return tuple((_node_or_none(tape, _visible(tape, source)), 0) for source in sources)
        flags = tape.ints[row * ROW_WIDTH + 3] if opcode == _MM_OPCODE else 0
        through = tape.read_through
        if through and opcode != _MM_OPCODE:  # (a product's own flags say which operand)
            if row in through:  # computed on the sources of transposes (``_record._transposed_source``)
                flags = -1
            elif opcode == _T_OPCODE and sources[0] in through and row in (tape.node_names or ()):
                # ``_record.transposed``: the op PyTorch shows, whose inputs are the hidden row's
                return node_for(tape, sources[0]).next_functions
        entries = []
        for index, source in enumerate(sources[: OPS[opcode].arity]):
            if flags >> index & 1:  # a transpose read in place (``_linalg._mm_of_sources``)
                view = _transpose_read_in_place(tape, row, source)
                if view == source and tape.ints[source * ROW_WIDTH] == LEAF_OPCODE:
                    # the transpose of a leaf that never had a row (``_pending_views``)
                    entries.append((_LeafTranspose(tape, source), 0))
                    continue
                source = view
            entries.append((_node_or_none(tape, _visible(tape, source)), 0))
        while len(entries) < OPS[opcode].arity:
            entries.append((None, 0))
        return tuple(entries)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object at {hex(id(self))}>"  # (not name(): C++ nodes differ)


class AccumulateGrad(Node):
    __slots__ = ("variable",)


class _LeafTranspose(Node):
    """PyTorch's ``TBackward0`` of ``w.t()`` for a leaf ``w`` whose transpose an op read
    through ``w`` itself before the view had a row: its one input is ``w``'s node."""

    __slots__ = ()

    @property
    def next_functions(self) -> tuple:
        tape, row = self._resolved()
        return ((node_for(tape, row), 0),)


_LeafTranspose.__name__ = _LeafTranspose.__qualname__ = "TBackward0"


# Nodes PyTorch writes in C++, whose name() is their qualified C++ name (their repr is not).
_CPP_NAMES = {name: f"torch::autograd::{name}" for name in ("AccumulateGrad", "CopySlices", "CopyBackwards")}


_CLASSES = {op.grad_fn: type(op.grad_fn, (Node,), {"__slots__": ()}) for op in OPS if op.grad_fn}


def _named_class(name: str) -> type:
    """The node class of a composite PyTorch computes as one node (``MseLossBackward0``): its
    last row is named so (``_record.name_node``); its inputs are that row's."""
    node_class = _CLASSES.get(name)
    if node_class is None:
        node_class = _CLASSES[name] = type(name, (Node,), {"__slots__": ()})
    return node_class


class AddmmBackward0(Node):
    """The node of ``addmm`` and of ``F.linear`` with a bias: PyTorch's one node for
    ``input + mat1 @ mat2``, which the tape writes as a product and the sum named so
    (``_record.name_node``). Its inputs are PyTorch's, in its order: the added input, then the
    product's two (the weight's ``TBackward0`` for a layer), not the sum's (the product's node
    and the bias). A sum of a scaled product (``addmm``'s ``beta``, ``alpha``) shows the sum's."""

    __slots__ = ()

    @property
    def next_functions(self) -> tuple:
        tape, row = self._resolved()
        sources = [_visible(tape, source) for source in tape.sources(row)[:2]]
        for index, source in enumerate(sources):
            if source >= 0 and tape.ints[source * ROW_WIDTH] & OPCODE_MASK == _MM_OPCODE:
                added = sources[1 - index]
                return ((_node_or_none(tape, added), 0), *node_for(tape, source).next_functions)
        return super().next_functions


_CLASSES["AddmmBackward0"] = AddmmBackward0


FUNCTION_OPCODE = OPCODE["function"]


class FunctionNode(Node):
    """The ``grad_fn`` of a custom ``autograd.Function``'s outputs: one per call, whichever output
    asks, and (as in PyTorch, where the node is the ctx) it reads the ctx's attributes:
    ``y.grad_fn.saved_tensors``, ``y.grad_fn.needs_input_grad``."""

    __slots__ = ()

    @property
    def next_functions(self) -> tuple:
        tape, row = self._resolved()
        rows = tape.functions[row].tensor_input_rows
        return tuple((_node_or_none(tape, _visible(tape, source)), 0) for source in rows)

    def __getattr__(self, name):
        tape, row = self._resolved()
        return getattr(tape.functions[row].ctx, name)

    def __repr__(self) -> str:
        return f"<tapegrad.autograd.function.{self.name()} object at {hex(id(self))}>"


# A user's Function class -> its node class, named as PyTorch names it (``MyExpBackward``).
_FUNCTION_CLASSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _function_node_class(function: type) -> type:
    node_class = _FUNCTION_CLASSES.get(function)
    if node_class is None:
        name = getattr(function, "_node_name", None) or f"{function.__name__}Backward"  # (tapegrad's own: PyTorch's)
        node_class = type(name, (FunctionNode,), {"__slots__": ()})
        _FUNCTION_CLASSES[function] = node_class
    return node_class


def _first_output_row(tape: Tape, row: int) -> int:
    """The row a Function call is registered at: its outputs' rows are consecutive from there."""
    while row not in tape.functions:
        row -= 1
    return row


_MM_OPCODE, _T_OPCODE = OPCODE["mm"], OPCODE["t"]


def _transpose_read_in_place(tape: Tape, row: int, source: int) -> int:
    """The transposed view of ``source`` that product ``row`` reads through its source: the
    last one before it that ops bypass (``Tape.bypassed``), as PyTorch's graph has its
    ``TBackward0`` there; ``source`` itself where there is none (a replay's tape)."""
    ints = tape.ints
    for view in sorted(tape.bypassed or (), reverse=True):
        if (
            view < row
            and ints[view * ROW_WIDTH + 1] == source
            and OPS[ints[view * ROW_WIDTH] & OPCODE_MASK].family == VIEW
        ):
            return view
    return source


def _visible(tape: Tape, row: int) -> int:
    """Look through hidden rows (implicit broadcast and promotion), as PyTorch's graph does."""
    while row >= 0 and OPS[tape.ints[row * ROW_WIDTH] & OPCODE_MASK].hidden:
        row = tape.ints[row * ROW_WIDTH + 1]
    return row


def _node_or_none(tape: Tape, row: int):
    opcode = tape.ints[row * ROW_WIDTH] if row >= 0 else -1
    if row < 0 or opcode == CONSTANT_OPCODE or opcode >= NO_GRAD:
        return None
    return node_for(tape, row)


def node_for(tape: Tape, row: int) -> Node:
    if tape.nodes is None:
        tape.nodes = weakref.WeakValueDictionary()
    opcode = tape.ints[row * ROW_WIDTH]
    if opcode == FUNCTION_OPCODE:
        row = _first_output_row(tape, row)
    node = tape.nodes.get(row)
    if node is None:
        if opcode == LEAF_OPCODE:
            node = AccumulateGrad(tape, row)
            node.variable = next(tensor for leaf_row, tensor in tape.leaves if leaf_row == row)
        elif opcode == FUNCTION_OPCODE:
            node = _function_node_class(tape.functions[row].function)(tape, row)
        elif tape.node_names and row in tape.node_names:
            node = _named_class(tape.node_names[row])(tape, row)
        else:
            node = _CLASSES[OPS[opcode].grad_fn](tape, row)
        tape.nodes[row] = node
    return node


def _grad_fn(self):
    """The node that computed this tensor (None for leaves and tensors that need no grad), as
    ``torch.Tensor.grad_fn``; built on first access and kept."""
    if self._base is not None and self._version_counter[0] != self._seen_version:
        refresh_view(self, by_an_op=False)  # its storage changed in place: as PyTorch, a new node
    if self._tape is None or not self._requires_grad:
        return None
    if self._grad_fn is None:
        self._grad_fn = node_for(resolve(self), self._row)
    return self._grad_fn


install({"grad_fn": property(_grad_fn)})


class saved_tensors_hooks:  # noqa: N801 - PyTorch's name
    """Inside, each tensor an op saves for its backward goes through ``pack_hook(tensor)``
    (any object), and the backward reads ``unpack_hook(packed)`` (a tensor of the saved one's
    shape; cast to its dtype) in its place, as ``torch.autograd.graph.saved_tensors_hooks``.
    Hooks nest (the innermost applies), are per thread, and are off inside a pack hook. As in
    PyTorch, a saved tensor changed in place is not reported: the unpacked value is used.
    Differences: tapegrad saves a tensor once per op that reads it (``x * x`` packs ``x``
    once, PyTorch twice), the tape keeps its own reference to the saved value (packing into
    another place frees no memory), and ``tapegrad.record`` raises ``NotImplementedError``."""

    def __init__(self, pack_hook, unpack_hook):
        self.pack_hook = pack_hook
        self.unpack_hook = unpack_hook

    def __enter__(self):
        message = getattr(saved_tensor_hooks, "disabled", None)
        if message is not None:
            raise RuntimeError(message)
        stack = getattr(saved_tensor_hooks, "stack", None)
        if stack is None:
            stack = saved_tensor_hooks.stack = []
        stack.append((self.pack_hook, self.unpack_hook))
        saved_hooks_open[0] += 1
        return self

    def __exit__(self, *exc_info):
        saved_tensor_hooks.stack.pop()
        saved_hooks_open[0] -= 1
        return False


class save_on_cpu(saved_tensors_hooks):  # noqa: N801
    """Saved tensors kept in CPU memory: every tapegrad tensor is already there, so the hooks
    pass them through; follows ``torch.autograd.graph.save_on_cpu`` (``pin_memory`` and
    ``device_type`` accepted, changing nothing)."""

    def __init__(self, pin_memory: bool = False, device_type: str = "cuda"):
        super().__init__(lambda tensor: tensor, lambda tensor: tensor)


@contextlib.contextmanager
def disable_saved_tensors_hooks(error_message: str):
    """Inside, entering ``saved_tensors_hooks`` raises ``RuntimeError(error_message)``; follows
    ``torch.autograd.graph.disable_saved_tensors_hooks``."""
    before = getattr(saved_tensor_hooks, "disabled", None)
    saved_tensor_hooks.disabled = error_message
    try:
        yield
    finally:
        saved_tensor_hooks.disabled = before
