"""``nn.MultiheadAttention`` over ``functional.multi_head_attention_forward``, and the
Transformer layers built on it, with PyTorch's parameters, their names (``in_proj_weight``,
``out_proj.weight``, ``layers.0.linear1.weight``...) and their initialisation, so that a
state_dict moves between the two."""

from __future__ import annotations

import copy
import warnings

import numpy as np

from .. import _dtypes, _factories
from .._grad_mode import is_grad_enabled
from ..tensor import Tensor, _wrap, guard_reads
from . import functional as F  # noqa: N812 - the name PyTorch code uses
from . import init
from .modules import GELU, Dropout, LayerNorm, Linear, Module, ModuleList, Parameter, ReLU


class NonDynamicallyQuantizableLinear(Linear):
    """``Linear`` under the name PyTorch gives ``MultiheadAttention.out_proj`` (its repr shows it)."""


class MultiheadAttention(Module):
    """Attention from ``query`` to ``key``/``value`` over ``num_heads`` heads of
    ``embed_dim // num_heads`` features; follows ``torch.nn.MultiheadAttention``.

    Parameters as PyTorch's: ``in_proj_weight`` (3E, E), or ``q_proj_weight`` (E, E),
    ``k_proj_weight`` (E, kdim) and ``v_proj_weight`` (E, vdim) when ``kdim``/``vdim`` differ
    from ``embed_dim``; ``in_proj_bias`` (3E,) and ``out_proj`` (a Linear E -> E) with
    ``bias``; ``bias_k``/``bias_v`` (1, 1, E) with ``add_bias_kv``. Initialised as PyTorch's:
    Xavier-uniform projections, zero biases, Xavier-normal ``bias_k``/``bias_v``.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)``: inputs (L, N, E) (or (N, L, E) with
    ``batch_first``) or unbatched (L, E); returns ``(output, weights)`` as
    ``functional.multi_head_attention_forward`` does, ``weights`` None unless ``need_weights``.
    ``dropout`` applies to the attention weights in training mode only.

    Raises ``ValueError`` for ``embed_dim`` or ``num_heads`` not positive and
    ``AssertionError`` when ``num_heads`` does not divide ``embed_dim``, with PyTorch's messages.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device=None,
        dtype=None,
    ):
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                f"num_heads={num_heads} instead"
            )
        super().__init__()
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads, self.dropout, self.batch_first = num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise AssertionError("embed_dim must be divisible by num_heads")

        def empty(*shape):
            return Parameter(_factories.empty(*shape, dtype=dtype))

        if self._qkv_same_embed_dim:
            self.in_proj_weight = empty(3 * embed_dim, embed_dim)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = empty(embed_dim, embed_dim)
            self.k_proj_weight = empty(embed_dim, self.kdim)
            self.v_proj_weight = empty(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = empty(3 * embed_dim)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k, self.bias_v = empty(1, 1, embed_dim), empty(1, 1, embed_dim)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple:
        batched = query.dim() == 3
        if self.batch_first and batched:  # sequence first inside, as PyTorch's (one transpose when shared)
            if key is value:
                if query is key:
                    query = key = value = query.transpose(1, 0)
                else:
                    query, key = query.transpose(1, 0), key.transpose(1, 0)
                    value = key
            else:
                query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        separate = not self._qkv_same_embed_dim
        out, weights = F.multi_head_attention_forward(
            query,
            key,
            value,
            self.embed_dim,
            self.num_heads,
            self.in_proj_weight,
            self.in_proj_bias,
            self.bias_k,
            self.bias_v,
            self.add_zero_attn,
            self.dropout,
            self.out_proj.weight,
            self.out_proj.bias,
            training=self.training,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            use_separate_proj_weight=separate,
            q_proj_weight=self.q_proj_weight if separate else None,
            k_proj_weight=self.k_proj_weight if separate else None,
            v_proj_weight=self.v_proj_weight if separate else None,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
        )
        if self.batch_first and batched:
            out = out.transpose(1, 0)
        return out, weights


def _activation(activation):
    """The activation of a Transformer layer: "relu", "gelu" or a callable, as PyTorch's."""
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    if isinstance(activation, str):
        raise RuntimeError(f"activation should be relu/gelu, not {activation}")
    return activation


def _relu_or_gelu(activation) -> int:
    """PyTorch's ``activation_relu_or_gelu``: 1 for relu, 2 for gelu, 0 for anything else."""
    if activation is F.relu or isinstance(activation, ReLU):
        return 1
    if activation is F.gelu or isinstance(activation, GELU):
        return 2
    return 0


def generate_square_subsequent_mask(size: int, device=None, dtype=None) -> Tensor:
    """The (size, size) causal mask: 0 on and below the diagonal, -inf above (float32, or
    ``dtype``); follows ``torch.nn.Transformer.generate_square_subsequent_mask``."""
    numpy_type = (_dtypes.DEFAULT_FLOAT if dtype is None else _dtypes.as_dtype(dtype)).numpy
    return _wrap(np.triu(np.full((size, size), -np.inf, numpy_type), 1))


def _is_causal(mask, is_causal, size) -> bool:
    """PyTorch's ``_detect_is_causal_mask``: the hint if given, else whether ``mask`` is the
    causal mask of ``size``."""
    if is_causal is not None or mask is None:
        return is_causal is True
    size = mask.shape[-2] if size is None else size
    causal = generate_square_subsequent_mask(size, dtype=mask.dtype)._data
    guard_reads("Transformer's causal-mask test", mask)
    return tuple(mask.shape) == causal.shape and bool((mask._data == causal).all())


def _sequence_length(x: Tensor, batch_first: bool) -> int:
    return x.shape[0] if x.dim() == 2 else x.shape[1 if batch_first else 0]


class _TransformerLayer(Module):
    """What the encoder and decoder layers share: their arguments, their modules (registered in
    PyTorch's order, which ``repr`` and ``named_parameters`` show), the self-attention block and
    the feed-forward block. ``_blocks``: the residual blocks, each with its norm and dropout (the
    decoder's second attends to the encoder's memory)."""

    _blocks = 2

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation="relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        blocks = self._blocks
        for name in ("self_attn", "multihead_attn")[: blocks - 1]:
            attention = MultiheadAttention(
                d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, dtype=dtype
            )
            setattr(self, name, attention)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        for index in range(1, blocks + 1):
            setattr(self, f"norm{index}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        for index in range(1, blocks + 1):
            setattr(self, f"dropout{index}", Dropout(dropout))
        self.activation = _activation(activation)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal) -> Tensor:
        x = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout1(x)

    def _ff_block(self, x: Tensor) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return getattr(self, f"dropout{self._blocks}")(x)


class TransformerEncoderLayer(_TransformerLayer):
    """Self-attention and a feed-forward block, each with a residual connection and a layer
    norm (after it, or before with ``norm_first``); follows ``torch.nn.TransformerEncoderLayer``
    (its parameters, their names and initialisation: ``self_attn``, ``linear1``, ``linear2``,
    ``norm1``, ``norm2``).

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``: ``src``
    (S, N, d_model), (N, S, d_model) with ``batch_first``, or unbatched (S, d_model); masks as
    ``MultiheadAttention``'s. Dropout in training mode only. Padded positions hold values, as
    PyTorch's layer gives them (its encoder's nested-tensor path zeroes them: ``TransformerEncoder``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.activation_relu_or_gelu = _relu_or_gelu(self.activation)

    def forward(self, src: Tensor, src_mask=None, src_key_padding_mask=None, is_causal: bool = False) -> Tensor:
        src_key_padding_mask = F._canonical_mask(
            src_key_padding_mask, "src_key_padding_mask", src_mask, "src_mask", src.dtype
        )
        src_mask = F._canonical_mask(src_mask, "src_mask", None, "", src.dtype)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))


class TransformerDecoderLayer(_TransformerLayer):
    """Self-attention, attention to the encoder's ``memory`` and a feed-forward block, each
    with a residual connection and a layer norm; follows ``torch.nn.TransformerDecoderLayer``
    (``self_attn``, ``multihead_attn``, ``linear1``, ``linear2``, ``norm1``-``norm3``).

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``: ``tgt``
    (T, N, d_model) and ``memory`` (S, N, d_model), batch first with ``batch_first``."""

    _blocks = 3

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> Tensor:
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(x + self._ff_block(x))

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal) -> Tensor:
        x = self.multihead_attn(
            x,
            memory,
            memory,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            is_causal=is_causal,
            need_weights=False,
        )[0]
        return self.dropout2(x)


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` (deep copies: parameters of their own), then
    ``norm`` if given; follows ``torch.nn.TransformerEncoder`` (``layers.0...``, its
    ``enable_nested_tensor`` warning). ``forward(src, mask=None, src_key_padding_mask=None,
    is_causal=None)``: ``is_causal`` None tests whether ``mask`` is the causal mask."""

    def __init__(self, encoder_layer, num_layers: int, norm=None, enable_nested_tensor: bool = True, mask_check=True):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers, self.norm = num_layers, norm
        self.enable_nested_tensor = self.use_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check
        why = _why_not_nested(encoder_layer)
        if enable_nested_tensor and why:
            # PyTorch's warning, for the same layers (its nested-tensor inference path, which
            # tapegrad does not have, is what it says is off)
            warnings.warn(
                f"enable_nested_tensor is True, but self.use_nested_tensor is False because {why}", stacklevel=2
            )
            self.use_nested_tensor = False

    def forward(self, src: Tensor, mask=None, src_key_padding_mask=None, is_causal=None) -> Tensor:
        src_key_padding_mask = F._canonical_mask(src_key_padding_mask, "src_key_padding_mask", mask, "mask", src.dtype)
        mask = F._canonical_mask(mask, "mask", None, "", src.dtype)
        batch_first = self.layers[0].self_attn.batch_first
        is_causal = _is_causal(mask, is_causal, _sequence_length(src, batch_first))
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        valid = self._nested_positions(src, mask, src_key_padding_mask)
        if valid is not None:  # PyTorch's nested-tensor path: padded positions come out as zeros
            output = output.masked_fill(valid.logical_not().unsqueeze(-1), 0.0)
        return output if self.norm is None else self.norm(output)

    def _nested_positions(self, src: Tensor, mask, padding_mask):
        """Where PyTorch's inference path (``use_nested_tensor``: eval mode, a batched input, a
        left-aligned padding mask and no attention mask, no gradient) runs the batch as nested
        tensors, the (B, T) positions that hold a token; else None. That path returns zeros at
        the padded positions, where the layers computed values: a mean over all positions
        differs, so tapegrad zeroes them as PyTorch's result has them."""
        first = self.layers[0]
        if not self.use_nested_tensor or first.training or src.dim() != 3 or padding_mask is None or mask is not None:
            return None
        attention = first.self_attn
        arguments = (src, attention.in_proj_weight, attention.in_proj_bias, attention.out_proj.weight,
                     attention.out_proj.bias, first.norm1.weight, first.norm1.bias, first.norm2.weight,
                     first.norm2.bias, first.linear1.weight, first.linear1.bias, first.linear2.weight,
                     first.linear2.bias)  # fmt: skip
        if is_grad_enabled() and any(t is not None and t.requires_grad for t in arguments):
            return None
        valid = padding_mask.logical_not()
        guard_reads("nested tensor mask", valid)
        flags = valid._data
        # left-aligned: each row's tokens a prefix (PyTorch's mask check, on by default)
        if self.mask_check and not (flags[:, 1:] <= flags[:, :-1]).all():
            return None
        return valid


def _why_not_nested(layer) -> str:
    """PyTorch's reason for not using nested tensors with this encoder layer, or ""."""
    name = "encoder_layer"
    if not isinstance(layer, TransformerEncoderLayer):
        return f"{name} was not TransformerEncoderLayer"
    if layer.norm_first:
        return f"{name}.norm_first was True"
    if not layer.self_attn.batch_first:
        return f"{name}.self_attn.batch_first was not True(use batch_first for better inference performance)"
    if not layer.self_attn._qkv_same_embed_dim:
        return f"{name}.self_attn._qkv_same_embed_dim was not True"
    if layer.self_attn.in_proj_bias is None:
        return f"{name}.self_attn was passed bias=False"
    if not layer.activation_relu_or_gelu:
        return f"{name}.activation_relu_or_gelu was not True"
    if layer.norm1.eps != layer.norm2.eps:
        return f"{name}.norm1.eps was not equal to {name}.norm2.eps"
    if layer.self_attn.num_heads % 2 == 1:
        return f"{name}.self_attn.num_heads is odd"
    return ""


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer``, then ``norm`` if given; follows
    ``torch.nn.TransformerDecoder``. ``forward(tgt, memory, tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=None,
    memory_is_causal=False)``."""

    def __init__(self, decoder_layer, num_layers: int, norm=None):
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers, self.norm = num_layers, norm

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        tgt_is_causal=None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        batch_first = self.layers[0].self_attn.batch_first
        tgt_is_causal = _is_causal(tgt_mask, tgt_is_causal, _sequence_length(tgt, batch_first))
        output = tgt
        for layer in self.layers:
            output = layer(
                output,
                memory,
                tgt_mask=tgt_mask,
                memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=tgt_is_causal,
                memory_is_causal=memory_is_causal,
            )
        return output if self.norm is None else self.norm(output)


class Transformer(Module):
    """An encoder-decoder Transformer; follows ``torch.nn.Transformer``: ``num_encoder_layers``
    ``TransformerEncoderLayer``s and ``num_decoder_layers`` ``TransformerDecoderLayer``s, each
    stack ending in a ``LayerNorm``, every matrix Xavier-uniform initialised.

    ``forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None,
    tgt_is_causal=None, memory_is_causal=False)``: ``src`` (S, N, d_model), ``tgt`` (T, N,
    d_model) (batch first with ``batch_first``); returns (T, N, d_model). Raises PyTorch's
    ``RuntimeError`` when the batch sizes differ or a feature size is not ``d_model``."""

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation="relu",
        custom_encoder=None,
        custom_decoder=None,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        layer = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first, bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.encoder = TransformerEncoder(TransformerEncoderLayer(*layer, dtype=dtype), num_encoder_layers, norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.decoder = TransformerDecoder(TransformerDecoderLayer(*layer, dtype=dtype), num_decoder_layers, norm)
        for parameter in self.parameters():
            if parameter.dim() > 1:
                init.xavier_uniform_(parameter)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        src_mask=None,
        tgt_mask=None,
        memory_mask=None,
        src_key_padding_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        src_is_causal=None,
        tgt_is_causal=None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        batch = 0 if self.batch_first else 1
        if src.dim() == 3 and src.shape[batch] != tgt.shape[batch]:
            raise RuntimeError("the batch number of src and tgt must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(
            tgt,
            memory,
            tgt_mask=tgt_mask,
            memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            tgt_is_causal=tgt_is_causal,
            memory_is_causal=memory_is_causal,
        )
