"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their cells; follows ``torch.nn``.

Each time step is a few recorded ops: one matrix product with the hidden state, and the gates'
elementwise maths, which for ``LSTM`` is one op (``lstm_cell``), for the cells and the other
layers the ops they are made of. An ``LSTM`` from zero initial states records every step of a
direction of a layer as one row instead (``lstm_sequence``), as PyTorch's CPU layer is one node.
The input's projection for all time steps is one matrix product before the loop, as cuDNN and
PyTorch's CPU kernels do it; the loop then adds one (N, H) x (H, G*H) product a step.

Parameters are PyTorch's, by name, shape, gate order (LSTM: input, forget, cell, output; GRU:
reset, update, new) and initialisation (uniform in +-1/sqrt(hidden_size)), so a state_dict
moves between the two.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import _factories
from .._frames import user_stacklevel
from .._kernels import load as load_kernels
from .._record import c_ordered, name_node, record
from .._reductions import lstm_cell as _lstm_cell
from .._views import cat, stack
from ..autograd.gradients import differentiated
from ..autograd.higher_order import VJP_RULES, one_computation
from ..tensor import Tensor
from . import functional as F  # noqa: N812 - the name PyTorch code uses
from . import init
from .modules import Module, Parameter
from .utils.rnn import PackedSequence

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _lstm_sequence(projected: Tensor, h0: Tensor | None, c0: Tensor | None, w_hh: Tensor, reverse: bool) -> Tensor:
    """Every step of one direction of an LSTM layer as one row (``lstm_sequence``; PyTorch's
    layer is one node, ``MkldnnRnnLayerBackward0``): ``projected`` (steps, N, 4H) the inputs'
    projections with both biases, ``h0``, ``c0`` (N, H), or both None for zero states,
    ``w_hh`` (4H, H), one floating dtype. Returns (steps, 2, N, H): each step's h, then its c.
    Row by row (a product, ``lstm_cell`` and views a step), a 20-step layer's training step was
    2.1x PyTorch's. Zero states are implied by the row (its first operand the projections
    alone), not joined to it: the join and its zeros were 40 us of a 20-step layer's forward."""
    steps, n, hidden = projected.shape[0], projected.shape[1], w_hh.shape[-1]
    if (h0 is None) != (c0 is None):
        raise RuntimeError("lstm_sequence: h0 and c0 are both given, or both None for zero states")
    states = () if h0 is None else (h0, c0)
    # (the layer passes these shapes by construction; the kernels read by them, unchecked)
    shapes = [tuple(t.shape) for t in (projected, *states, w_hh)]
    expected = [(steps, n, 4 * hidden), *[(n, hidden)] * len(states), (4 * hidden, hidden)]
    if shapes != expected:
        raise RuntimeError(f"lstm_sequence: projections, h0, c0 and w_hh of shapes {shapes} do not fit together")
    if len({t.dtype for t in (projected, *states, w_hh)}) != 1 or not projected.dtype.is_floating_point:
        raise RuntimeError("lstm_sequence: projections, h0, c0 and w_hh of one floating dtype")
    inputs = cat([projected.reshape(-1), h0.reshape(-1), c0.reshape(-1)]) if states else projected.reshape(-1)
    data, w = c_ordered(inputs._data), c_ordered(w_hh._data)
    out = np.empty((steps, 2, n, hidden), data.dtype)
    load_kernels("normalization").lstm_sequence(data, w.reshape(-1), out.reshape(-1), steps, n, hidden, int(reverse))
    return record("lstm_sequence", (inputs, w_hh), out, saved=(data, w), iparam=int(reverse))


def _lstm_steps(inputs: Tensor, w_hh: Tensor, shape: tuple, reverse: bool) -> Tensor:
    """``lstm_sequence``'s result from its row's operands, step by step (``lstm_cell``): its
    create_graph formula differentiates this."""
    steps, _, n, hidden = shape
    width = steps * n * 4 * hidden
    projected = inputs[:width].reshape(steps, n, 4 * hidden)
    if inputs.shape[0] == width:  # zero states, implied by the row
        h = c = _factories.zeros(n, hidden, dtype=inputs.dtype)
    else:
        h, c = inputs[width : width + n * hidden].reshape(n, hidden), inputs[width + n * hidden :].reshape(n, hidden)
    w_hh_t = w_hh.t()
    states = [None] * steps
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        states[t] = _lstm_cell(projected[t] + h @ w_hh_t, c)
        h, c = states[t][0], states[t][1]
    return stack(states, 0)


def _lstm_sequence_vjp(row, g: Tensor) -> tuple:
    inputs, w_hh = row.a, row.b
    return differentiated(_lstm_steps(inputs, w_hh, row.shape, bool(row.iparam)), (inputs, w_hh), g)


VJP_RULES["lstm_sequence"] = one_computation(_lstm_sequence_vjp, 2)


def _cell(mode: str, x_part: Tensor, h: Tensor, c: Tensor | None, w_hh_t: Tensor, b_hh: Tensor | None):
    """One step: ``x_part`` is the input's projection (with its bias, and for LSTM and RNN the
    hidden bias too: ``_RNNBase.forward`` adds both once per sequence), (N, G*H); ``w_hh_t`` the
    transposed hidden weight (H, G*H), transposed once per sequence. Returns (h, c)."""
    hidden = h @ w_hh_t
    if b_hh is not None:
        hidden = hidden + b_hh
    if mode == "LSTM":
        gates = x_part + hidden
        size = gates.shape[1] // 4
        # One sigmoid over all four gates (the cell gate's quarter unused) and views of it: four
        # ops of one op's arithmetic were recorded three times over before.
        i, f, _, o = gates.sigmoid().chunk(4, 1)
        c = f * c + i * gates[:, 2 * size : 3 * size].tanh()
        return o * c.tanh(), c
    if mode == "GRU":
        x_r, x_z, x_n = x_part.chunk(3, 1)
        h_r, h_z, h_n = hidden.chunk(3, 1)
        r = (x_r + h_r).sigmoid()
        z = (x_z + h_z).sigmoid()
        n = (x_n + r * h_n).tanh()
        return n + z * (h - n), None  # (1 - z) * n + z * h
    total = x_part + hidden
    return (total.tanh() if mode == "RNN_TANH" else total.relu()), None


class _RNNBase(Module):
    """What RNN, LSTM and GRU share: PyTorch's parameters and the layer/direction loop."""

    _rank_noun = ""  # PyTorch's rank error says "got 4D instead" for LSTM and GRU, "4D tensor" for RNN

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):  # fmt: skip
        super().__init__()
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                stacklevel=user_stacklevel(),
            )
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size:
            raise NotImplementedError("proj_size: tapegrad's LSTM has no projections")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        self.proj_size = 0
        gates = _GATES[mode] * hidden_size
        self._flat_weights_names = []
        for layer in range(num_layers):
            for suffix in ("", "_reverse") if bidirectional else ("",):
                width = input_size if layer == 0 else hidden_size * (2 if bidirectional else 1)
                shapes = {"weight_ih": (gates, width), "weight_hh": (gates, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gates,), bias_hh=(gates,))
                for kind, shape in shapes.items():
                    name = f"{kind}_l{layer}{suffix}"
                    setattr(self, name, Parameter(_factories.empty(*shape, dtype=dtype)))
                    self._flat_weights_names.append(name)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name in self._flat_weights_names:
            init.uniform_(getattr(self, name), -bound, bound)

    def flatten_parameters(self) -> None:
        """Nothing to do: PyTorch packs the weights for cuDNN here."""

    @property
    def all_weights(self) -> list:
        per = 4 if self.bias else 2
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[i : i + per]] for i in range(0, len(names), per)]

    def _weights(self, layer: int, reverse: bool) -> tuple:
        suffix = f"_l{layer}{'_reverse' if reverse else ''}"
        get = lambda kind: getattr(self, kind + suffix) if self.bias or kind.startswith("weight") else None  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _initial(self, hx, batch: int, unbatched: bool, like: Tensor):
        """The initial states, (layers * directions, N, H) each: zeros when ``hx`` is None."""
        count = self.num_layers * (2 if self.bidirectional else 1)
        expected = (count, self.hidden_size) if unbatched else (count, batch, self.hidden_size)
        states = (hx,) if self.mode != "LSTM" or hx is None else tuple(hx)
        if hx is None:
            zeros = _factories.zeros(count, batch, self.hidden_size, dtype=like.dtype)
            return [zeros, zeros] if self.mode == "LSTM" else [zeros]
        result = []
        for index, state in enumerate(states):
            if state.dim() != len(expected):
                kind = "unbatched 2-D" if unbatched else "batched 3-D"
                raise RuntimeError(
                    f"For {kind} input, hx should also be {len(expected)}-D but got {state.dim()}-D tensor"
                )
            if tuple(state.shape) != expected:
                name = f"hidden[{index}]" if self.mode == "LSTM" else "hidden"
                raise RuntimeError(f"Expected {name} size {expected}, got {list(state.shape)}")
            result.append(state.unsqueeze(1) if unbatched else state)
        return result

    def _direction(self, x: Tensor, layer: int, direction: int, h0: Tensor, c0):
        """``(projected, step)`` for one direction of one layer: every step's input projection in
        one product, and ``step(x_t, h, c) -> (h, c)``. The biases are added to the projection
        once, not per step (GRU's hidden bias excepted: its new gate reads it inside r * (...))."""
        w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction == 1)
        projected = x @ w_ih.t()
        if b_ih is not None:
            projected = projected + b_ih
        if b_hh is not None and self.mode != "GRU":
            projected, b_hh = projected + b_hh, None
        w_hh_t = w_hh.t()  # once: a view per step joined a new tape to the sequence's each time
        # (states or weights of another dtype take the composite, which promotes as before)
        fused = self.mode == "LSTM" and projected.dtype == h0.dtype == c0.dtype == w_hh.dtype
        mode = self.mode

        def step(x_t: Tensor, h: Tensor, c):
            if fused:  # one row a step (``lstm_cell``): the composite recorded eleven
                state = _lstm_cell(x_t + h @ w_hh_t, c)
                return state[0], state[1]
            return _cell(mode, x_t, h, c, w_hh_t, b_hh)

        step.w_hh = w_hh if fused else None  # (a whole sequence in one row: ``_lstm_sequence``)
        return projected, step

    def _check_dtype(self, dtype) -> None:
        weight = self.weight_ih_l0
        if dtype != weight.dtype:
            raise ValueError(
                f"RNN input dtype ({dtype}) does not match weight dtype ({weight.dtype}). Convert input: "
                f"input.to({weight.dtype}), or convert model: model.to({dtype})"
            )

    def _layers(self, x: Tensor, states: list, run, join_dim: int) -> tuple:
        """``(outputs, final hs, final cs)`` of the layers and directions, each direction's steps
        run by ``run(projected, step, h0, c0, reverse) -> (outputs, h, c)``: a layer reads the
        last one's outputs (both directions joined on ``join_dim``), through dropout in training."""
        directions = 2 if self.bidirectional else 1
        finals_h, finals_c = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                h0 = states[0][index]
                c0 = states[1][index] if self.mode == "LSTM" else None
                projected, step = self._direction(x, layer, direction, h0, c0)
                out, h, c = run(projected, step, h0, c0, direction == 1)
                outputs.append(out)
                finals_h.append(h)
                finals_c.append(c)
            x = outputs[0] if directions == 1 else cat(outputs, join_dim)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, finals_h, finals_c

    def forward(self, input: Tensor, hx=None):  # noqa: A002 - PyTorch's names
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D{self._rank_noun} instead"
            )
        self._check_dtype(input.dtype)
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        if x.shape[2] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.shape[2]}"
            )
        steps, batch = x.shape[0], x.shape[1]
        if steps == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")

        def run(projected, step, h, c, reverse: bool):
            # An LSTM from zero states: every step in one row. (Given states are read by the
            # per-step rows, by reference, as PyTorch's: a c0 changed through .data after the
            # forward changes its backward; the one row reads a copy.)
            if step.w_hh is not None and hx is None:
                states = _lstm_sequence(projected, None, None, step.w_hh, reverse)
                last = 0 if reverse else steps - 1
                # (PyTorch's float32 layer is oneDNN's node; its float64 one stacks the steps)
                node = "MkldnnRnnLayerBackward0" if projected.dtype.itemsize == 4 else "StackBackward0"
                return name_node(states[:, 0], node), states[last, 0], states[last, 1]
            per_step = [None] * steps
            for t in range(steps - 1, -1, -1) if reverse else range(steps):
                h, c = step(projected[t], h, c)
                per_step[t] = h
            return stack(per_step, 0), h, c

        x, finals_h, finals_c = self._layers(x, self._initial(hx, batch, unbatched, x), run, 2)
        output = x.squeeze(1) if unbatched else (x.transpose(0, 1) if self.batch_first else x)
        h_n = stack(finals_h, 0)
        h_n = h_n.squeeze(1) if unbatched else h_n
        if self.mode != "LSTM":
            return output, h_n
        c_n = stack(finals_c, 0)
        return output, (h_n, c_n.squeeze(1) if unbatched else c_n)

    def _forward_packed(self, packed: PackedSequence, hx):
        """``forward`` of a ``PackedSequence``: at step ``t`` only the first ``batch_sizes[t]``
        sequences (sorted longest first) take a step; the others keep their states, so each
        one's final state is the one at its own last step. Reversed, a sequence starts from the
        initial state at its own last step. Returns a ``PackedSequence`` of the same batch
        sizes and the final states in the batch's original order, as PyTorch's."""
        data, sizes = packed.data, packed.batch_sizes._data.astype(int).tolist()
        if data.dim() != 2:
            raise RuntimeError(f"packed input must have 2 dimensions, got {data.dim()}")
        if data.shape[1] != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {data.shape[1]}"
            )
        self._check_dtype(data.dtype)
        batch = sizes[0]
        if hx is not None and packed.sorted_indices is not None:  # the states follow the sorted batch
            order = packed.sorted_indices
            hx = tuple(h.index_select(1, order) for h in hx) if self.mode == "LSTM" else hx.index_select(1, order)
        starts = [0]
        for size in sizes:
            starts.append(starts[-1] + size)

        def run(projected, step, h0, c0, reverse: bool):
            per_step = [None] * len(sizes)
            h, c = (None, None) if reverse else (h0, c0)
            running = 0 if reverse else batch  # rows of h (reversed: more as sequences start)
            for t in range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes)):
                size = sizes[t]
                if size > running:  # reversed: the sequences whose last step is t start here
                    h = h0[running:size] if h is None else cat([h, h0[running:size]])
                    if c0 is not None:
                        c = c0[running:size] if c is None else cat([c, c0[running:size]])
                    running = size
                h_new, c_new = step(projected[starts[t] : starts[t + 1]], h[:size], c[:size] if c is not None else None)
                per_step[t] = h_new
                if size < running:  # the sequences that ended keep their states
                    h = cat([h_new, h[size:]])
                    c = cat([c_new, c[size:]]) if c is not None else None
                else:
                    h, c = h_new, c_new
            return cat(per_step), h, c

        x, finals_h, finals_c = self._layers(data, self._initial(hx, batch, False, data), run, 1)
        output = PackedSequence(x, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        h_n = stack(finals_h, 0)
        c_n = stack(finals_c, 0) if self.mode == "LSTM" else None
        if packed.unsorted_indices is not None:
            h_n = h_n.index_select(1, packed.unsorted_indices)
            c_n = c_n.index_select(1, packed.unsorted_indices) if c_n is not None else None
        return (output, h_n) if self.mode != "LSTM" else (output, (h_n, c_n))

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(_RNNBase):
    """Elman RNN, ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or relu), as
    ``torch.nn.RNN``: input (L, N, H_in) ((N, L, H_in) with ``batch_first``; (L, H_in)
    unbatched), optional ``hx`` (layers * directions, N, H); returns (output (L, N, D * H),
    h_n). Raises ``ValueError`` for an unknown ``nonlinearity``."""

    _rank_noun = " tensor"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)  # fmt: skip
        self.nonlinearity = nonlinearity


class LSTM(_RNNBase):
    """Long short-term memory, as ``torch.nn.LSTM`` (gates input, forget, cell, output): input
    as ``RNN``'s, optional ``(h_0, c_0)``; returns (output, (h_n, c_n)). ``proj_size`` raises
    ``NotImplementedError``."""

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)


class GRU(_RNNBase):
    """Gated recurrent unit, as ``torch.nn.GRU`` (gates reset, update, new): input and result as
    ``RNN``'s."""

    def __init__(self, *args, **kwargs):
        super().__init__("GRU", *args, **kwargs)


class _CellBase(Module):
    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        gates = _GATES[mode] * hidden_size
        self.weight_ih = Parameter(_factories.empty(gates, input_size, dtype=dtype))
        self.weight_hh = Parameter(_factories.empty(gates, hidden_size, dtype=dtype))
        self.bias_ih = Parameter(_factories.empty(gates, dtype=dtype)) if bias else None
        self.bias_hh = Parameter(_factories.empty(gates, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias drawn again from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)),
        as PyTorch's cells."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            init.uniform_(parameter, -bound, bound)

    def forward(self, input: Tensor, hx=None):  # noqa: A002
        if input.dim() not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        if x.shape[1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {x.shape[1]} expected {self.input_size}")
        for index, state in enumerate((() if hx is None else hx if self.mode == "LSTM" else (hx,))):
            if state.dim() != input.dim() or state.shape[-1] != self.hidden_size:
                got = state.shape[-1] if state.dim() == input.dim() else state.shape[0]
                raise RuntimeError(
                    f"hidden{index} has inconsistent hidden_size: got {got}, expected {self.hidden_size}"
                )
            if not unbatched and state.shape[0] != x.shape[0]:
                raise RuntimeError(
                    f"Input batch size {x.shape[0]} doesn't match hidden{index} batch size {state.shape[0]}"
                )
        if hx is None:  # (batched already: x's batch of 1 for an unbatched input)
            zeros = _factories.zeros(x.shape[0], self.hidden_size, dtype=x.dtype)
            h, c = (zeros, zeros) if self.mode == "LSTM" else (zeros, None)
        else:
            h, c = hx if self.mode == "LSTM" else (hx, None)
            if unbatched:
                h, c = h.unsqueeze(0), (c.unsqueeze(0) if c is not None else None)
        projected = x @ self.weight_ih.t()
        if self.bias_ih is not None:
            projected = projected + self.bias_ih
        h, c = _cell(self.mode, projected, h, c, self.weight_hh.t(), self.bias_hh)
        if unbatched:
            h, c = h.squeeze(0), (c.squeeze(0) if c is not None else None)
        return (h, c) if self.mode == "LSTM" else h

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity=relu"
        return text


class RNNCell(_CellBase):
    """One step of ``RNN``, as ``torch.nn.RNNCell``: input (N, H_in) or (H_in,), hx (N, H)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", device=None,
                 dtype=None):  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(
            "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, bias, device, dtype
        )
        self.nonlinearity = nonlinearity


class LSTMCell(_CellBase):
    """One step of ``LSTM``, as ``torch.nn.LSTMCell``: returns (h, c)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)


class GRUCell(_CellBase):
    """One step of ``GRU``, as ``torch.nn.GRUCell``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)
