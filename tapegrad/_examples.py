"""How the public API reaches each op of the table: the cases the tests and benchmarks share.

Every unary entry gets cases automatically; the other families list how the public API reaches
them. ``tests/test_op_table.py`` fails if some table entry is reached by no case, so a new op
cannot land without its gradient checks, parity tests, replay tests and benchmarks.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Callable

from ._ops import OPS, UNARY


def library(tensor):
    """The module a tensor comes from (tapegrad or torch), for calls like ``stack``."""
    return sys.modules[type(tensor).__module__.split(".")[0]]


def functional(tensor):
    """``nn.functional`` of the tensor's library (imported here: tapegrad's loads on first use)."""
    return importlib.import_module(f"{library(tensor).__name__}.nn.functional")


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable
    shapes: tuple
    domain: tuple = (-2.0, 2.0)
    # Central differences through a float32 step are only good to ~1e-3.
    rtol: float = 1e-5
    atol: float = 1e-6
    eps: float = 1e-6
    torch_call: Callable | None = None  # when PyTorch spells it differently
    tags: tuple = field(default_factory=tuple)

    def __str__(self) -> str:
        return self.name


def _lstm_sequence(projected, w_hh, h0=None, c0=None):
    """Every step of an LSTM layer's direction, (steps, 2, n, hidden): each step's h and c.
    tapegrad's one row (``nn._recurrent._lstm_sequence``, what ``nn.LSTM`` records: from zero
    states, h0 and c0 None), and in PyTorch the cell's formula step by step."""
    m = library(projected)
    if m.__name__ == "tapegrad":
        return m.nn._recurrent._lstm_sequence(projected, h0, c0, w_hh, False)
    if h0 is None:
        h0 = c0 = m.zeros(projected.shape[1], w_hh.shape[1], dtype=projected.dtype)
    h, c, states = h0, c0, []
    for t in range(projected.shape[0]):
        i, f, g, o = (projected[t] + h @ w_hh.t()).chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        states.append(m.stack([h, c]))
    return m.stack(states)


def _lstm_step(gates, c):
    """One LSTM step, (2, n, hidden): h then the new c. tapegrad's ``lstm_cell`` (what
    ``nn.LSTM`` records), and in PyTorch the cell's formula, which its layer computes."""
    m = library(gates)
    if m.__name__ == "tapegrad":
        from ._reductions import lstm_cell

        return lstm_cell(gates, c)
    i, f, g, o = gates.chunk(4, 1)
    state = i.sigmoid() * g.tanh() + f.sigmoid() * c
    return m.stack([o.sigmoid() * state.tanh(), state])


def _assigned(x, key, value):
    """``x`` after ``x[key] = value`` (a statement, so a helper for the cases' lambdas)."""
    x[key] = value
    return x


def _changed_through_view(x):
    """A row of ``y`` multiplied in place: the change must reach ``y``'s gradient."""
    y = x * 1.0
    y[1].mul_(2.0)
    return y


def _view_after_change(x):
    """A view taken before its base changed in place, used after: it reads the new values."""
    y = x * 1.0
    column = y[:, 0]
    y.mul_(3.0)
    return column * 2.0


def _method_or_functional(x, name):
    method = getattr(x, name, None)
    return method() if method is not None else getattr(functional(x), name)(x)


# Table ops whose public name is not their own (a Tensor method PyTorch does not have)
_UNARY_CALLS = {"_trigamma": lambda x: x.polygamma(1)}


def _unary_cases():
    for op in OPS:
        if op.family == UNARY:
            call = _UNARY_CALLS.get(op.name) or (lambda x, _n=op.name: _method_or_functional(x, _n))
            # (3, 4) has more elements than the kernels' call-free small-row path takes (8), so
            # both paths of every rule are checked.
            for shape in ((), (3,), (2, 3), (3, 4)):
                yield Case(f"{op.name}{list(shape)}", call, (shape,), op.domain)


POSITIVE = (0.5, 2.0)

CASES = [
    *_unary_cases(),
    Case("neg-operator", lambda x: -x, ((2, 3),)),
    Case("x+2.5", lambda x: x + 2.5, ((3,),)),
    Case("1.5+x", lambda x: 1.5 + x, ((3,),)),
    Case("x-2.5", lambda x: x - 2.5, ((2, 2),)),
    Case("2.5-x", lambda x: 2.5 - x, ((3,),)),
    Case("x*1.7", lambda x: x * 1.7, ((3,),)),
    Case("3*x", lambda x: 3 * x, ((),)),
    Case("x/1.7", lambda x: x / 1.7, ((3,),)),
    Case("2/x", lambda x: 2 / x, ((3,),), POSITIVE),
    Case("x**2", lambda x: x**2, ((3,),)),
    Case("x**1.5", lambda x: x**1.5, ((2, 3),), POSITIVE),
    Case("2.0**x", lambda x: 2.0**x, ((3,),)),
    *[
        Case(f"{name}{list(sa)}{list(sb)}", fn, (sa, sb), domain)
        for name, fn, domain in (
            ("add", lambda a, b: a + b, (-2.0, 2.0)),
            ("sub", lambda a, b: a - b, (-2.0, 2.0)),
            ("mul", lambda a, b: a * b, (-2.0, 2.0)),
            ("div", lambda a, b: a / b, POSITIVE),
            ("pow", lambda a, b: a**b, POSITIVE),
        )
        for sa, sb in (((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((3, 4), (4,)))
    ],
    Case("x*x", lambda x: x * x, ((3,),)),
    Case("sum", lambda x: x.sum(), ((2, 3),)),
    Case("mean", lambda x: x.mean(), ((2, 3),)),
    Case("sum(1)", lambda x: x.sum(1), ((2, 3, 4),)),
    Case(
        "sum((0,2),keepdim)",
        lambda x: x.sum((0, 2), keepdim=True),
        ((2, 3, 4),),
        torch_call=lambda x: x.sum((0, 2), keepdim=True),
    ),
    Case("sum(-1)", lambda x: x.sum(-1), ((2, 3),)),
    Case("mean(0)", lambda x: x.mean(0), ((2, 3),)),
    Case("mean(1,keepdim)", lambda x: x.mean(1, keepdim=True), ((2, 3),)),
    Case("norm", lambda x: x.norm(), ((2, 3),)),
    Case("reshape", lambda x: x.reshape(3, 2) * 1.5, ((2, 3),)),
    Case("view(-1)", lambda x: x.view(-1) * 1.5, ((2, 3),)),
    Case("reshape-copy", lambda x: x.t().reshape(6) * 1.5, ((2, 3),)),
    Case("reshape-alias", lambda x: x.transpose(0, 1).reshape(3, 2, 2, 2).exp(), ((2, 3, 4),)),
    Case("transpose", lambda x, y: x.transpose(0, 1) * y, ((2, 3), (3, 2))),
    Case("t", lambda x, y: x.t() * y, ((2, 3), (3, 2))),
    Case("T", lambda x, y: x.T * y, ((2, 3), (3, 2))),
    Case("permute", lambda x: x.permute(2, 0, 1).sin(), ((2, 3, 4),)),
    Case("unsqueeze", lambda x, y: x.unsqueeze(1) * y, ((2, 3), (2, 4, 3))),
    Case("squeeze", lambda x: x.squeeze().exp(), ((2, 1, 3),)),
    Case("squeeze(1)", lambda x: x.squeeze(1).exp(), ((2, 1, 3),)),
    Case("squeeze((0,2))", lambda x: x.squeeze((0, 2)).exp(), ((1, 3, 1),)),
    Case("select", lambda x: x[1] * 2.0, ((3, 4),)),
    Case("slice-step", lambda x: x[:, ::2].exp(), ((3, 5),)),
    Case("slice", lambda x: x[1:].exp(), ((4,),)),
    Case("index-none", lambda x: x[None, 1:] * 2.0, ((3,),)),
    Case("ellipsis", lambda x: x[...] * 2.0, ((3,),)),
    Case("select-slice", lambda x: x[1, 1:3].exp(), ((3, 4),)),
    Case("expand", lambda x: x.expand(4, 3).sin(), ((1, 3),)),
    Case("dot", lambda a, b: a @ b, ((3,), (3,))),
    Case("mv", lambda a, b: a @ b, ((2, 3), (3,))),
    Case("vm", lambda a, b: a @ b, ((3,), (3, 4))),
    Case("mm", lambda a, b: a @ b, ((2, 3), (3, 4))),
    Case("bmm", lambda a, b: a @ b, ((2, 2, 3), (2, 3, 4))),
    Case("batched-broadcast", lambda a, b: a @ b, ((2, 2, 3), (3, 4))),
    Case("batched-vector", lambda a, b: a @ b, ((2, 2, 3), (3,))),
    Case("vector-batched", lambda a, b: a @ b, ((3,), (2, 3, 4))),
    Case("transposed-mm", lambda a, b: a.t() @ b, ((3, 2), (3, 4))),
    Case("clone", lambda x: x.clone() * x, ((3,),)),
    # x * 2.0 and x.exp() each start a graph; * joins them, and x's second row becomes shared_leaf.
    Case("shared_leaf", lambda x: (x * 2.0) * x.exp(), ((2, 3),)),
    # Linear through a float32 rounding: a wide step keeps central differences exact.
    Case(
        "cast-roundtrip",
        lambda x: x.float().double() * 1.5,
        ((3,),),
        rtol=1e-4,
        atol=1e-4,
        eps=1e-2,
        tags=("changes-dtype",),
    ),
    Case("promote", lambda x, y: x.float() * y, ((3,), (3,)), rtol=1e-4, atol=1e-4, eps=1e-2, tags=("changes-dtype",)),
    Case("softmax(0)", lambda x: functional(x).softmax(x, dim=0), ((4,),)),
    Case("softmax(1)", lambda x: x.softmax(1), ((2, 3),)),
    Case("log_softmax(1)", lambda x: functional(x).log_softmax(x, 1), ((3, 4),)),
    Case("log_softmax(0)", lambda x: x.log_softmax(0), ((5,),)),
    Case("layer_norm", lambda x: functional(x).layer_norm(x, (4,)), ((3, 4),)),
    Case("layer_norm(2 dims)", lambda x: functional(x).layer_norm(x, (3, 4), eps=0.1), ((2, 3, 4),)),
    Case("softmax(0)-2d", lambda x: functional(x).softmax(x * 2.0, 0), ((3, 2),)),
    Case("F.softplus", lambda x: functional(x).softplus(x), ((5,),), (-4.0, 4.0)),
    Case("stack(0)", lambda a, b: library(a).stack([a, b.exp(), a * b], dim=0), ((3,), (3,))),
    Case("stack(1)", lambda a, b: library(a).stack([a, b], 1), ((2, 3), (2, 3))),
    Case("stack-scalars", lambda x: library(x).stack([x[0], x[2] * x[1], x[1]]), ((3,),)),
    Case("iterate", lambda x: sum(row.exp() for row in x), ((3, 2),)),
    Case("embedding", lambda w: functional(w).embedding(library(w).tensor([[0, 2], [3, 0]]), w), ((4, 3),)),
    Case("index-repeated", lambda x: x[library(x).tensor([2, 0, 2])].exp(), ((3, 2),)),
    Case("index-negative", lambda x: x[library(x).tensor([-1, 0])] * 2.0, ((4,),)),
    Case("mask", lambda x: x[library(x).tensor([[True, False, True], [False, True, True]])] * 3.0, ((2, 3),)),
    Case("F.gelu", lambda x: functional(x).gelu(x), ((6,),), (-3.0, 3.0)),
    Case("layer_norm", lambda x, w, b: functional(x).layer_norm(x, (3,), w, b), ((4, 3), (3,), (3,))),
    Case("rms_norm", lambda x, w: functional(x).rms_norm(x, (2, 3), w), ((4, 2, 3), (2, 3))),
    Case("index_copy", lambda x, s: x.index_copy(0, library(x).tensor([2, 0]), s), ((3, 4), (2, 4))),
    Case(
        "masked_scatter",
        lambda x, s: x.masked_scatter(library(x).tensor([[True, False, True], [False, True, False]]), s),
        ((2, 3), (6,)),
    ),
    Case("diag_embed", lambda x: library(x).diag_embed(x, 1), ((2, 3),)),
    Case("unfold", lambda x: functional(x).unfold(x, (2, 2), padding=1, stride=2), ((2, 3, 4, 5),)),
    Case("fold", lambda x: functional(x).fold(x, (3, 4), 2), ((2, 8, 6),)),
    Case(
        "embedding_bag",
        lambda w: functional(w).embedding_bag(
            library(w).tensor([1, 2, 0, 3, 1]), w, library(w).tensor([0, 2]), mode="mean"
        ),
        ((4, 3),),
    ),
    Case("local_response_norm", lambda x: functional(x).local_response_norm(x, 3, 0.1, 0.6, 1.5), ((2, 5, 3),)),
    Case("quantile", lambda x: library(x).quantile(x, 0.3, dim=1), ((3, 5),), tags=("reads-values",)),
    Case("F.silu", lambda x: functional(x).silu(x), ((5,),)),
    # nn.LSTM's step: tapegrad's one op, PyTorch's cell maths (tests/test_recurrent.py checks layers)
    Case("lstm_cell", lambda gates, c: _lstm_step(gates, c), ((3, 8), (3, 2)), (-3.0, 3.0)),
    Case(
        "lstm_sequence", lambda p, w, h, c: _lstm_sequence(p, w, h, c), ((4, 2, 8), (8, 2), (2, 2), (2, 2)), (-2.0, 2.0)
    ),
    Case("lstm_sequence(zero states)", lambda p, w: _lstm_sequence(p, w), ((4, 2, 8), (8, 2)), (-2.0, 2.0)),
    # Convolution (one fused row, _kernels/convolution.py) and pooling (composites: nn/_convolution.py).
    Case("conv2d", lambda x, w, b: functional(x).conv2d(x, w, b), ((2, 3, 5, 5), (4, 3, 3, 3), (4,))),
    Case(
        "conv2d-strided",
        lambda x, w: functional(x).conv2d(x, w, None, stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
        ((1, 2, 7, 6), (3, 2, 2, 3)),
    ),
    Case(
        "conv2d-groups-same",
        lambda x, w: functional(x).conv2d(x, w, padding="same", groups=2),
        ((2, 4, 5, 5), (6, 2, 2, 3)),
    ),
    Case("conv2d-unbatched", lambda x, w: functional(x).conv2d(x, w, padding=1), ((3, 4, 4), (2, 3, 3, 3))),
    # (rows of the window as far apart as the input's: the kernels copy them as one block)
    Case(
        "conv2d-row-strided",
        lambda x, w: functional(x).conv2d(x, w, padding=1, stride=(2, 1)),
        ((2, 3, 7, 6), (4, 3, 3, 3)),
    ),
    Case("conv1d", lambda x, w, b: functional(x).conv1d(x, w, b, stride=2, padding=1), ((2, 3, 7), (4, 3, 3), (4,))),
    Case(
        "conv_transpose2d",
        lambda x, w, b: functional(x).conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
        ((2, 4, 3, 3), (4, 3, 3, 3), (3,)),
    ),
    Case(
        "conv_transpose2d-groups-dilated",
        lambda x, w: functional(x).conv_transpose2d(x, w, stride=(1, 2), dilation=(2, 1), groups=2),
        ((1, 4, 3, 4), (4, 2, 2, 3)),
    ),
    Case("max_pool2d", lambda x: functional(x).max_pool2d(x, 2), ((2, 3, 4, 6),)),
    Case(
        "max_pool2d-padded-ceil",
        lambda x: functional(x).max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
        ((1, 2, 6, 5),),
    ),
    Case("avg_pool2d", lambda x: functional(x).avg_pool2d(x, (2, 3), stride=1), ((2, 2, 4, 5),)),
    Case(
        "avg_pool2d-padded",
        lambda x: functional(x).avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        ((1, 2, 6, 5),),
    ),
    Case("adaptive_avg_pool2d", lambda x: functional(x).adaptive_avg_pool2d(x, (3, 2)), ((2, 2, 7, 5),)),
    Case(
        "batch_norm-training",
        lambda x, w, b: functional(x).batch_norm(x, None, None, w, b, training=True),
        ((4, 3, 2, 2), (3,), (3,)),
    ),
    Case("batch_norm(2d)", lambda x: functional(x).batch_norm(x, None, None, training=True, eps=0.1), ((5, 3),)),
    Case("group_norm", lambda x, w, b: functional(x).group_norm(x, 2, w, b), ((2, 4, 3), (4,), (4,))),
    Case("instance_norm", lambda x: functional(x).instance_norm(x), ((2, 3, 2, 3),)),
    Case(
        "batch_norm-eval",
        lambda x, w: functional(x).batch_norm(
            x, library(x).tensor([0.1, -0.2, 0.3], dtype=x.dtype), library(x).tensor([1.5, 0.5, 2.0], dtype=x.dtype), w
        ),
        ((4, 3), (3,)),
    ),
    Case("F.leaky_relu", lambda x: functional(x).leaky_relu(x, 0.2), ((6,),)),
    Case("F.elu", lambda x: functional(x).elu(x, 0.7), ((6,),)),
    Case("maximum", lambda a, b: library(a).maximum(a, b), ((2, 3), (3,))),
    Case("minimum", lambda a, b: a.minimum(b * 1.5), ((3, 4), (3, 4))),
    Case("clamp", lambda x: x.clamp(-0.5, 0.7), ((3, 4),)),
    Case("clamp(min)", lambda x: x.clamp(min=-0.3) * 2.0, ((5,),)),
    Case("clip(max)", lambda x: library(x).clip(x, max=0.4), ((2, 3),)),
    Case("clamp(tensor)", lambda x, lo: x.clamp(min=lo), ((2, 3), (3,)), torch_call=lambda x, lo: x.clamp(min=lo)),
    Case("where(x>0)", lambda a, b: library(a).where(a > 0, a.exp(), b), ((3, 4), (4,))),
    Case("where(scalar)", lambda x: library(x).where(x < 0.5, x * 2.0, 0.0), ((2, 3),)),
    Case("max", lambda x: x.max() * 2.0, ((3, 4),)),
    Case("min", lambda x: library(x).min(x), ((5,),)),
    Case("max(1)", lambda x: x.max(1).values, ((3, 4),)),
    Case("min(0,keepdim)", lambda x: x.min(0, keepdim=True)[0], ((3, 4),)),
    Case("amax(1)", lambda x: x.amax(1), ((3, 4),)),
    Case("amin((0,2))", lambda x: x.amin((0, 2)), ((2, 3, 4),)),
    Case(
        "argmax-one-hot",
        lambda x: x * (x.argmax(1, keepdim=True) == library(x).arange(4)).to(x.dtype),
        ((3, 4),),
    ),
    Case("argmin-flat", lambda x: x * (x.argmin() == library(x).arange(5)).to(x.dtype), ((5,),)),
    Case("cumsum(1)", lambda x: x.cumsum(1), ((3, 4),)),
    Case("cumsum(0)", lambda x: library(x).cumsum(x, 0), ((5,),)),
    Case("prod", lambda x: x.prod(), ((2, 3),)),
    Case("prod(1)", lambda x: x.prod(1), ((3, 4),)),
    Case("prod-with-zero", lambda x: (x * library(x).tensor([1.0, 0.0, 1.0], dtype=x.dtype)).prod(), ((3,),)),
    Case("logsumexp(1)", lambda x: x.logsumexp(1), ((3, 4),)),
    Case("logsumexp((0,1))", lambda x: library(x).logsumexp(x, (0, 1)), ((2, 3),)),
    Case("var", lambda x: x.var(), ((3, 4),)),
    Case("var(1,unbiased=False)", lambda x: x.var(1, unbiased=False), ((3, 4),)),
    Case("std(0)", lambda x: x.std(0), ((4, 3),)),
    Case("std(keepdim)", lambda x: x.std(1, keepdim=True), ((2, 5),)),
    Case("norm(1,dim)", lambda x: x.norm(p=1, dim=1), ((3, 4),)),
    Case("norm(3)", lambda x: x.norm(p=3), ((2, 3),)),
    Case("norm(inf,0)", lambda x: x.norm(p=float("inf"), dim=0), ((3, 4),)),
    Case("norm(2,(0,1))", lambda x: x.norm(dim=(0, 1)), ((2, 3),)),
    Case("cat(0)", lambda a, b: library(a).cat([a, b.exp(), a * 2.0], 0), ((2, 3), (1, 3))),
    Case("cat(1)", lambda a, b: library(a).cat([a, b], dim=1), ((2, 3), (2, 5))),
    Case("split", lambda x: sum(p.sum() * (k + 1) for k, p in enumerate(x.split(2, 1))), ((3, 5),)),
    Case("split-sizes", lambda x: x.split([1, 3], 0)[1].exp(), ((4, 2),)),
    Case("chunk", lambda x: x.chunk(3, 0)[2] * 2.0, ((5, 2),)),
    Case("unbind", lambda x: x.unbind(1)[1] * x.unbind(1)[0], ((3, 2),)),
    Case("gather", lambda x: x.gather(1, library(x).tensor([[0, 0], [2, 1], [1, 2]])), ((3, 3),)),
    Case("index_select", lambda x: x.index_select(1, library(x).tensor([2, 0, 2])).sin(), ((2, 3),)),
    Case("repeat", lambda x: x.repeat(2, 3).exp(), ((2, 2),)),
    Case("flip", lambda x: x.flip(0) * library(x).arange(3, dtype=x.dtype).reshape(3, 1), ((3, 2),)),
    Case("outer", lambda a, b: library(a).outer(a, b), ((3,), (4,))),
    Case("einsum-mm", lambda a, b: library(a).einsum("ij,jk->ik", a, b), ((2, 3), (3, 4))),
    Case("einsum-batch", lambda a, b: library(a).einsum("bij,bjk->bki", a, b), ((2, 2, 3), (2, 3, 2))),
    Case("einsum-trace-free", lambda a, b: library(a).einsum("ij,ij->", a, b), ((2, 3), (2, 3))),
    Case("einsum-sum", lambda a: library(a).einsum("ijk->ki", a), ((2, 3, 2),)),
    Case("einsum-diagonal", lambda a, b: library(a).einsum("ii,ij->j", a, b), ((3, 3), (3, 2))),
    Case("diagonal", lambda x: x.diagonal(1, 0, 2).exp(), ((3, 2, 4),)),
    Case(
        "nll_loss",
        lambda x: functional(x).nll_loss(x.log_softmax(1), library(x).tensor([1, 0, 3])),
        ((3, 4),),
    ),
    Case(
        "cross_entropy-ignore",
        lambda x: functional(x).cross_entropy(x, library(x).tensor([1, -100, 3]), reduction="sum"),
        ((3, 4),),
    ),
    Case(
        "cross_entropy-weight",
        lambda x: functional(x).cross_entropy(
            x, library(x).tensor([1, 0, 3]), weight=library(x).tensor([0.5, 1.0, 2.0, 1.5], dtype=x.dtype)
        ),
        ((3, 4),),
    ),
    Case(
        "binary_cross_entropy",
        lambda x, t: functional(x).binary_cross_entropy(x.sigmoid(), t.sigmoid()),
        ((2, 3), (2, 3)),
    ),
    Case(
        "bce_with_logits",
        lambda x, t: functional(x).binary_cross_entropy_with_logits(
            x, t.sigmoid(), pos_weight=library(x).tensor([0.5, 1.0, 3.0], dtype=x.dtype)
        ),
        ((2, 3), (2, 3)),
    ),
    Case("exp_", lambda x: (x * 1.0).exp_() * 2.0, ((3,),)),
    Case("setitem", lambda x, v: _assigned(x * 1.0, (slice(None), 1), v.sin()), ((3, 4), (3,))),
    Case("setitem-broadcast", lambda x, v: _assigned(x * 2.0, (0,), v), ((2, 3), (1,))),
    Case("in-place-through-view", _changed_through_view, ((3, 2),)),
    Case("view-after-in-place", _view_after_change, ((3, 2),)),
    Case("setitem-mask", lambda x: _assigned(x * 2.0, x > 0.5, 0.25), ((2, 3),)),
    Case("masked_fill", lambda x: x.masked_fill(x > 0.5, 0.25) * 2.0, ((2, 3),)),
    Case("clamp_", lambda x: (x * 1.0).clamp_(-0.5, 0.5).sin(), ((2, 3),)),
    Case("remainder", lambda a, b: a % b, ((2, 3), (3,)), POSITIVE),
    Case("remainder(number)", lambda x: (x - 1.25) % 0.7, ((2, 3),), POSITIVE),
    Case("fmod", lambda a, b: (a - 1.25).fmod(b), ((2, 3), (3,)), POSITIVE),
    # (PyTorch's floor_divide has no derivative: its rounding_mode="floor" division, which has)
    Case(
        "floor_divide",
        lambda a, b: (a // b) * a,
        ((2, 3), (2, 3)),
        POSITIVE,
        torch_call=lambda a, b: library(a).div(a, b, rounding_mode="floor") * a,
    ),
    Case("div(trunc)", lambda a, b: (a - 1.25).div(b, rounding_mode="trunc") * b, ((3,), (3,)), POSITIVE),
    Case("trunc", lambda x: (x * 1.5).trunc() * x, ((2, 3),)),
    Case(
        "scatter_add",
        lambda x, src: x.scatter_add(1, library(x).tensor([[0, 2, 0], [1, 1, 3]]), src) ** 2,
        ((2, 4), (2, 3)),
    ),
    Case(
        "index_add",
        lambda x, src: library(x).index_add(x, 0, library(x).tensor([2, 0, 2]), src, alpha=1.5) ** 2,
        ((3, 2), (3, 2)),
    ),
    Case("baddbmm", lambda i, a, b: library(i).baddbmm(i, a, b, beta=0.5, alpha=2.0), ((3, 2), (2, 3, 4), (2, 4, 2))),
    Case("baddbmm(beta=0)", lambda i, a, b: i.baddbmm(a, b, beta=0) * i, ((2, 3, 2), (2, 3, 4), (2, 4, 2))),
    Case("addbmm", lambda i, a, b: library(i).addbmm(i, a, b, alpha=-1.5), ((2,), (3, 2, 4), (3, 4, 2))),
    Case("addmv", lambda i, m, v: library(i).addmv(i, m, v, beta=2.0), ((3,), (3, 4), (4,))),
    Case(
        "tensor_split",
        lambda x: (lambda a, b, c: a.exp().sum(1, keepdim=True) * c.sum() + b.sin().sum())(*x.tensor_split(3, dim=1)),
        ((2, 7),),
    ),
    Case("atan2", lambda y, x: library(y).atan2(y, x), ((4, 3), (3,))),
    Case("atan2-quadrants", lambda y, x: (y - 1.0).atan2(x - 1.0) * y, ((3, 4), (3, 4)), (0.2, 1.8)),
    Case("hypot", lambda a, b: library(a).hypot(a, b), ((2, 3), (3,))),
    Case("logit", lambda x: library(x).logit(x * 0.4, eps=0.1), ((2, 3),), POSITIVE),
    Case("xlogy", lambda a, b: library(a).xlogy(a, b), ((2, 3), (2, 3)), POSITIVE),
    Case("special.xlog1py", lambda a, b: library(a).special.xlog1py(a, b), ((2, 3), (2, 3)), POSITIVE),
    Case("polygamma(0)", lambda a: library(a).polygamma(0, a), ((2, 3),), POSITIVE),
    Case("polygamma(1)", lambda a: a.polygamma(1), ((2, 3),), POSITIVE),
    Case("mvlgamma", lambda a: library(a).mvlgamma(a, 3), ((2, 3),), (1.5, 3.0)),
    Case("special.ndtr", lambda a: library(a).special.ndtr(a), ((2, 3),), (-2.0, 2.0)),
    Case("sinc", lambda x: library(x).sinc(x), ((2, 3),)),
    Case("nan_to_num", lambda x: library(x).nan_to_num(x.log(), neginf=-5.0), ((2, 3),)),
    Case("frac", lambda x: library(x).frac(x * 3.0) * x, ((2, 3),)),
    Case("cumprod", lambda x: library(x).cumprod(x, 1), ((2, 4),)),
    Case("logcumsumexp", lambda x: library(x).logcumsumexp(x * 3.0, 0), ((4, 2),)),
    Case("nansum", lambda x: library(x).nansum(library(x).where(x > 0, x * x, float("nan")), 1), ((2, 3),)),
    Case("nanmean", lambda x: library(x).nanmean(library(x).where(x > 0, x * x, float("nan"))), ((2, 3),)),
    Case("var_mean", lambda x: library(x).stack(library(x).var_mean(x, 1)), ((2, 3),)),
    Case("aminmax", lambda x: library(x).stack(tuple(library(x).aminmax(x, dim=0))), ((3, 2),)),
    Case("take", lambda x: library(x).take(x, library(x).tensor([[0, 5], [4, 5]])), ((2, 3),)),
    Case("take_along_dim", lambda x: library(x).take_along_dim(x, library(x).tensor([[0], [2]]), 1), ((2, 3),)),
    Case("rot90", lambda x: library(x).rot90(x, 1, (0, 1)) * library(x).arange(6.0).reshape(3, 2), ((2, 3),)),
    Case("kron", lambda a, b: library(a).kron(a, b), ((2, 2), (2, 3))),
    # (reads-values: positions picked from the values, a replay at other values is refused)
    Case("median", lambda x: x.median(), ((3, 3),), tags=("reads-values",)),
    Case("median(dim)", lambda x: x.median(1).values * 2.0, ((3, 4),), tags=("reads-values",)),
    Case("kthvalue", lambda x: x.kthvalue(2, 0, keepdim=True).values, ((3, 2),), tags=("reads-values",)),
    Case("round(decimals)", lambda x: x.round(decimals=1) * x, ((2, 3),)),
    Case("index_fill", lambda x: x.index_fill(1, library(x).tensor([0, 2]), -1.0) * x, ((2, 3),)),
    Case("lerp_", lambda a, b: (a * 1.0).lerp_(b, 0.3), ((2, 3), (2, 3))),
    Case("addcmul_", lambda a, b: (a * 1.0).addcmul_(a, b, value=2.0), ((2, 3), (2, 3))),
    Case("addcdiv_", lambda a, b: (a * 1.0).addcdiv_(a, b, value=-1.0), ((2, 3), (2, 3)), POSITIVE),
    Case("diff", lambda x: library(x).diff(x, n=2, dim=1, prepend=x[:, :1] * 2.0) * x[:, :3], ((2, 4),)),
    Case("trapezoid", lambda y, x: library(y).trapezoid(y * y, x.cumsum(1)), ((2, 4), (2, 4))),
    Case("cdist", lambda a, b: library(a).cdist(a, b), ((3, 2), (4, 2))),
    Case("cdist(p=1)", lambda a, b: library(a).cdist(a, b, p=1.0), ((2, 3), (2, 3))),
    Case("tensordot", lambda a, b: library(a).tensordot(a, b, dims=([1, 0], [0, 2])), ((3, 2, 4), (2, 5, 3))),
    Case("inner", lambda a, b: library(a).inner(a, b), ((2, 3), (4, 3))),
    Case("cummax", lambda x: library(x).cummax(x, 1).values * x, ((2, 4),), tags=("reads-values",)),
    Case("cummin", lambda x: x.cummin(0).values, ((4, 2),), tags=("reads-values",)),
    Case("block_diag", lambda a, b: library(a).block_diag(a, b) * library(a).block_diag(b, a), ((2, 2), (1, 2))),
    Case("cartesian_prod", lambda a, b: library(a).cartesian_prod(a, b) ** 2, ((3,), (2,))),
    Case("copysign", lambda a, b: library(a).copysign(a, b), ((2, 3), (2, 3))),
    Case("fmax", lambda a, b: library(a).fmax(a, b) * a, ((2, 3), (2, 3))),
    Case("cov", lambda x: library(x).cov(x), ((3, 5),)),
    Case("corrcoef", lambda x: library(x).corrcoef(x), ((2, 5),)),
    Case("unfold", lambda x: x.unfold(1, 3, 2) * 2.0, ((2, 7),)),
    Case("unflatten", lambda x: x.unflatten(1, (2, -1)).sum(1), ((2, 6),)),
    Case("max_pool1d", lambda x: functional(x).max_pool1d(x, 3, stride=2, padding=1), ((2, 3, 7),)),
    Case("avg_pool1d", lambda x: functional(x).avg_pool1d(x, 2, ceil_mode=True), ((2, 5),)),
    Case("adaptive_avg_pool1d", lambda x: functional(x).adaptive_avg_pool1d(x, 3), ((2, 2, 7),)),
    Case("adaptive_max_pool2d", lambda x: functional(x).adaptive_max_pool2d(x, (2, 3)), ((2, 5, 7),)),
    Case("adaptive_max_pool1d", lambda x: functional(x).adaptive_max_pool1d(x, 2), ((1, 2, 5),)),
    Case(
        "conv_transpose1d",
        lambda x, w: functional(x).conv_transpose1d(x, w, stride=2, padding=1),
        ((2, 3, 4), (3, 2, 3)),
    ),
    Case("interpolate(nearest)", lambda x: functional(x).interpolate(x, scale_factor=2.5) * 1.0, ((1, 2, 3, 2),)),
    Case("interpolate(linear)", lambda x: functional(x).interpolate(x, size=7, mode="linear"), ((2, 1, 4),)),
    Case(
        "interpolate(bilinear)",
        lambda x: functional(x).interpolate(x, size=(5, 3), mode="bilinear", align_corners=True),
        ((1, 2, 3, 4),),
    ),
    Case(
        "interpolate(bilinear, down)",
        lambda x: functional(x).interpolate(x, scale_factor=0.5, mode="bilinear"),
        ((1, 1, 5, 4),),
    ),
    Case(
        "pixel_shuffle",
        lambda x: functional(x).pixel_shuffle(x, 2) * library(x).arange(48.0).reshape(1, 3, 4, 4),
        ((1, 12, 2, 2),),
    ),
    Case("pixel_unshuffle", lambda x: functional(x).pixel_unshuffle(x, 2) ** 2, ((2, 1, 4, 2),)),
    Case("prelu", lambda x, w: functional(x).prelu(x, w), ((2, 3, 2), (3,))),
    Case("bilinear", lambda a, b, w, c: functional(a).bilinear(a, b, w, c), ((2, 3), (2, 4), (5, 3, 4), (5,))),
    Case("hardshrink", lambda x: functional(x).hardshrink(x, 0.7), ((2, 3),)),
    Case("softshrink", lambda x: functional(x).softshrink(x, 0.7), ((2, 3),)),
    Case("tanhshrink", lambda x: functional(x).tanhshrink(x), ((2, 3),)),
    Case("threshold", lambda x: functional(x).threshold(x, 0.3, -2.0), ((2, 3),)),
    Case(
        "poisson_nll_loss",
        lambda x, t: functional(x).poisson_nll_loss(x, t * 3.0, full=True),
        ((2, 3), (2, 3)),
        POSITIVE,
    ),
    Case(
        "poisson_nll_loss(rates)",
        lambda x, t: functional(x).poisson_nll_loss(x, t, log_input=False, reduction="sum"),
        ((2, 3), (2, 3)),
        POSITIVE,
    ),
    Case(
        "gaussian_nll_loss",
        lambda x, t, v: functional(x).gaussian_nll_loss(x, t, v, full=True),
        ((3, 2), (3, 2), (3,)),
        POSITIVE,
    ),
    Case(
        "multi_margin_loss",
        lambda x: functional(x).multi_margin_loss(x * 2.0, library(x).tensor([2, 0, 1]), p=2, margin=1.5),
        ((3, 4),),
    ),
    Case(
        "multilabel_soft_margin_loss",
        lambda x: functional(x).multilabel_soft_margin_loss(x, library(x).tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])),
        ((2, 3),),
    ),
    Case("reuse", lambda x: (x * 2.0) * (x + 1.0) - x.exp(), ((2, 3),)),
    Case("diamond", lambda x: (lambda h: h.sin() + h.cos())(x * 3.0), ((3,),)),
]
