"""``F.scaled_dot_product_attention``, ``F.multi_head_attention_forward`` and
``nn.MultiheadAttention``: against the closed form here, and values, gradients and errors
against PyTorch where it is installed (float64, weights copied across)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812

rng = np.random.default_rng(0)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_sdpa_closed_form_and_gradient():
    """softmax(q k^T / sqrt(E)) v, and its value gradient weights^T @ g."""
    q, k, v = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    tq, tk, tv = (tg.tensor(a, requires_grad=True) for a in (q, k, v))
    out = F.scaled_dot_product_attention(tq, tk, tv)
    weights = _softmax(q @ k.T / math.sqrt(4))
    np.testing.assert_allclose(out.detach().numpy(), weights @ v, rtol=1e-12)
    g = rng.standard_normal((3, 2))
    out.backward(tg.tensor(g))
    np.testing.assert_allclose(tv.grad.numpy(), weights.T @ g, rtol=1e-12)


def test_sdpa_fully_masked_query_is_zero_not_nan():
    q, k, v = (tg.tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 3)))
    mask = np.ones((3, 5), bool)
    mask[1] = False
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=tg.tensor(mask))
    assert np.all(out.detach().numpy()[:, 1] == 0)
    out.sum().backward()
    for x in (q, k, v):
        assert np.isfinite(x.grad.numpy()).all()
    assert np.all(q.grad.numpy()[:, 1] == 0)


def test_sdpa_errors():
    q, k, v = tg.randn(2, 4, 8), tg.randn(2, 5, 8), tg.randn(2, 5, 6)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tg.ones(4, 5, dtype=tg.bool), is_causal=True)
    with pytest.raises(RuntimeError, match="same dtype, but got query.dtype: double key.dtype: float"):
        F.scaled_dot_product_attention(q.double(), k, v)
    with pytest.raises(RuntimeError, match="attn_mask.dtype: long int and  query.dtype: float"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tg.zeros(4, 5, dtype=tg.int64))
    with pytest.raises(RuntimeError, match=r"doesn't match the broadcast shape \[3, 2, 4, 5\]"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=tg.zeros(3, 1, 4, 5))
    with pytest.raises(RuntimeError, match="at least 2 dimensional"):
        F.scaled_dot_product_attention(tg.randn(8), tg.randn(8), tg.randn(8))
    with pytest.raises(RuntimeError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.5)


def test_sdpa_dropout_drops_whole_weights():
    """p = 1 drops every weight (zeros); otherwise the kept weights are scaled by 1/(1-p)."""
    q, k, v = tg.randn(3, 4), tg.randn(5, 4), tg.randn(5, 2)
    assert np.all(F.scaled_dot_product_attention(q, k, v, dropout_p=1.0).numpy() == 0)
    tg.manual_seed(3)
    dropped = F.scaled_dot_product_attention(q, k, tg.eye(5), dropout_p=0.5).numpy()
    kept = _softmax(q.numpy() @ k.numpy().T / 2.0) * 2.0
    assert np.all(np.isclose(dropped, 0) | np.isclose(dropped, kept, rtol=1e-5))
    assert 0 < (dropped == 0).sum() < dropped.size


def test_sdpa_replays_at_new_inputs():
    mask = np.tril(np.ones((4, 6), bool))
    mask[0] = False  # a query with no key: zeros

    def f(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=tg.tensor(mask)).sum()

    arrays = [rng.standard_normal(s) for s in ((2, 4, 3), (2, 6, 3), (2, 6, 3))]
    tape = tg.record(f, *arrays)
    new = [a + 0.5 for a in arrays]
    value, grads = tape.value_and_grad(*new, argnums=(0, 1, 2))
    eager = [tg.tensor(a, requires_grad=True) for a in new]
    f(*eager).backward()
    np.testing.assert_allclose(value, f(*[tg.tensor(a) for a in new]).item(), rtol=1e-12)
    for got, x in zip(grads, eager):
        np.testing.assert_allclose(got, x.grad.numpy(), rtol=1e-10, atol=1e-14)


# -- against PyTorch --------------------------------------------------------------------------

SDPA_CASES = {
    "4-D": (((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6)), None, {}),
    "2-D": (((4, 8), (5, 8), (5, 6)), None, {}),
    "causal": (((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6)), None, {"is_causal": True}),
    "causal, more queries than keys": (((2, 5, 8), (2, 4, 8), (2, 4, 6)), None, {"is_causal": True}),
    "bool mask": (((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6)), ("bool", (4, 5)), {}),
    "float mask with -inf, learned": (((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6)), ("float", (2, 1, 4, 5)), {}),
    "a query with no key": (((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6)), ("empty", (3, 4, 5)), {}),
    "broadcast heads": (((2, 3, 4, 8), (2, 1, 5, 8), (2, 1, 5, 6)), None, {}),
    "grouped query": (((2, 4, 4, 8), (2, 2, 5, 8), (2, 2, 5, 6)), None, {"enable_gqa": True}),
    "scale": (((2, 3, 4, 8), (2, 3, 5, 8), (2, 3, 5, 6)), None, {"scale": 0.3}),
}


def _mask(kind_and_shape):
    if kind_and_shape is None:
        return None, False
    kind, shape = kind_and_shape
    if kind == "bool":
        return rng.random(shape) > 0.4, False
    if kind == "float":
        mask = rng.standard_normal(shape)
        mask[..., 0, :] = -np.inf
        return mask, True
    mask = np.ones(shape, bool)
    mask[..., 1, :] = False
    return mask, False


@pytest.mark.parametrize("name", list(SDPA_CASES))
def test_sdpa_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    shapes, mask_spec, kwargs = SDPA_CASES[name]
    arrays = [rng.standard_normal(s) for s in shapes]
    mask, learned = _mask(mask_spec)
    results = []
    for m in (tg, torch):
        q, k, v = (m.tensor(a, requires_grad=True) for a in arrays)
        attn_mask = None if mask is None else m.tensor(mask, requires_grad=learned)
        out = m.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, **kwargs)
        (out * m.tensor(np.arange(out.numel()).reshape(tuple(out.shape)) / 10.0)).sum().backward()
        results.append([out.detach().numpy(), q.grad.numpy(), k.grad.numpy(), v.grad.numpy()])
        if learned:
            results[-1].append(attn_mask.grad.numpy())
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def _copy_parameters(ours, theirs):
    ours.load_state_dict({name: tg.tensor(value.numpy().copy()) for name, value in theirs.state_dict().items()})


MHA_CASES = {
    "self-attention": ({}, {}, "self"),
    "batch_first": ({"batch_first": True}, {}, "self"),
    "cross, key is value": ({}, {}, "cross"),
    "separate key, value": ({}, {}, "separate"),
    "kdim and vdim": ({"kdim": 6, "vdim": 5}, {}, "dims"),
    "no bias": ({"bias": False}, {}, "self"),
    "add_bias_kv, add_zero_attn": ({"add_bias_kv": True, "add_zero_attn": True}, {}, "self"),
    "key_padding_mask (bool)": ({}, {"key_padding_mask": "bool"}, "self"),
    "attn_mask (bool), need_weights=False": ({}, {"attn_mask": "bool", "need_weights": False}, "self"),
    "attn_mask (float, 3-D), per head": ({}, {"attn_mask": "float3", "average_attn_weights": False}, "self"),
    "causal, need_weights=False": ({}, {"attn_mask": "causal", "is_causal": True, "need_weights": False}, "self"),
    "both masks": ({}, {"attn_mask": "float", "key_padding_mask": "float"}, "self"),
    "unbatched": ({}, {}, "unbatched"),
}


@pytest.mark.parametrize("name", list(MHA_CASES))
def test_multihead_attention_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    options, call, inputs = MHA_CASES[name]
    embed, heads, length, source, batch = 8, 2, 4, 5, 3
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(embed, heads, dtype=torch.float64, **options)
    ours = tg.nn.MultiheadAttention(embed, heads, dtype=tg.float64, **options)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    _copy_parameters(ours, theirs)
    first = options.get("batch_first", False)

    def shaped(sequence, features):
        if inputs == "unbatched":
            return rng.standard_normal((sequence, features))
        return rng.standard_normal((batch, sequence, features) if first else (sequence, batch, features))

    query = shaped(length, embed)
    key = shaped(source, options.get("kdim", embed)) if inputs != "self" else query
    value = key if inputs in ("self", "cross") else shaped(source, options.get("vdim", embed))
    if inputs == "self":
        source = length
    masks = {
        "bool": rng.random((length, source)) > 0.7,
        "float": rng.standard_normal((length, source)),
        "float3": rng.standard_normal((batch * heads, length, source)),
        "causal": np.triu(np.ones((length, source), bool), 1),
    }
    padding = {"bool": np.zeros((batch, source), bool), "float": rng.standard_normal((batch, source))}
    padding["bool"][0, -2:] = True
    results = []
    for m, module in ((tg, ours), (torch, theirs)):
        q = m.tensor(query, requires_grad=True)
        k = q if key is query else m.tensor(key, requires_grad=True)
        v = k if value is key else m.tensor(value, requires_grad=True)
        kwargs = {n: call[n] for n in ("need_weights", "average_attn_weights", "is_causal") if n in call}
        if "attn_mask" in call:
            kwargs["attn_mask"] = m.tensor(masks[call["attn_mask"]])
        if "key_padding_mask" in call:
            kwargs["key_padding_mask"] = m.tensor(padding[call["key_padding_mask"]])
        out, weights = module(q, k, v, **kwargs)
        (out * m.tensor(np.linspace(-1, 1, out.numel()).reshape(tuple(out.shape)))).sum().backward()
        found = [out.detach().numpy(), q.grad.numpy()]
        found += [None if weights is None else weights.detach().numpy()]
        found += [p.grad.numpy() for _, p in sorted(module.named_parameters())]
        results.append(found)
    for got, expected in zip(*results):
        if expected is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_multihead_attention_errors():
    with pytest.raises(ValueError, match="embed_dim and num_heads must be greater than 0"):
        tg.nn.MultiheadAttention(0, 2)
    with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
        tg.nn.MultiheadAttention(7, 2)
    mha = tg.nn.MultiheadAttention(8, 2)
    x = tg.randn(4, 3, 8)
    with pytest.raises(AssertionError, match="expected `key` and `value` to be 3-D but found 2-D"):
        mha(x, x[0], x[0])
    with pytest.raises(RuntimeError, match=r"The shape of the 2D attn_mask is .*\[4, 5\].*, but should be \(4, 4\)"):
        mha(x, x, x, attn_mask=tg.zeros(4, 5))
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        mha(x, x, x, is_causal=True)
    with pytest.raises(AssertionError, match="only bool and floating types of attn_mask are supported"):
        mha(x, x, x, attn_mask=tg.zeros(4, 4, dtype=tg.int64))


def test_multihead_attention_trains():
    """A few SGD steps on a fixed target lower the loss: gradients reach every parameter."""
    tg.manual_seed(0)
    mha = tg.nn.MultiheadAttention(8, 2, batch_first=True, add_bias_kv=True)
    x, target = tg.randn(2, 5, 8), tg.randn(2, 5, 8)
    optimizer = tg.optim.Adam(mha.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = ((mha(x, x, x, need_weights=False)[0] - target) ** 2).mean()
        loss.backward()
        assert all(p.grad is not None and np.abs(p.grad.numpy()).sum() > 0 for p in mha.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_gradients_match_central_differences():
    """float64 central differences through the masks, the heads and the projections."""
    mask = tg.tensor(rng.random((3, 4)) > 0.3)
    q, k, v = (tg.tensor(rng.standard_normal(s), requires_grad=True) for s in ((2, 3, 4), (2, 4, 4), (2, 4, 2)))
    assert tg.autograd.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), (q, k, v))
    mha = tg.nn.MultiheadAttention(4, 2, dtype=tg.float64, add_zero_attn=True)
    x = tg.tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    assert tg.autograd.gradcheck(lambda x: mha(x, x, x)[0], (x,))


# -- Transformer layers -----------------------------------------------------------------------


def _state(module, m):
    return {name: m.tensor(value.detach().numpy().copy()) for name, value in module.state_dict().items()}


TRANSFORMER_CASES = {
    "encoder layer": ("encoder_layer", {}, {}),
    "encoder layer, norm_first, gelu, batch_first": (
        "encoder_layer",
        {"norm_first": True, "activation": "gelu", "batch_first": True},
        {},
    ),
    "encoder layer, both masks": ("encoder_layer", {}, {"src_mask": "causal", "src_key_padding_mask": True}),
    "encoder of two layers and a norm, causal mask detected": ("encoder", {}, {"mask": "causal"}),
    "decoder layer": ("decoder_layer", {}, {"tgt_mask": "causal", "memory_key_padding_mask": True}),
    "transformer": ("transformer", {}, {"tgt_mask": "causal", "src_key_padding_mask": True}),
    "transformer, batch_first, norm_first": ("transformer", {"batch_first": True, "norm_first": True}, {}),
}


def _transformer(m, kind, options):
    layer = {"d_model": 8, "nhead": 2, "dim_feedforward": 12, "dropout": 0.0, "dtype": m.float64, **options}
    nn = m.nn
    if kind == "encoder_layer":
        return nn.TransformerEncoderLayer(**layer)
    if kind == "decoder_layer":
        return nn.TransformerDecoderLayer(**layer)
    if kind == "encoder":
        return nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), 2, nn.LayerNorm(8, dtype=m.float64))
    return nn.Transformer(num_encoder_layers=2, num_decoder_layers=2, **layer)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True", "ignore:Support for mismatched")
@pytest.mark.parametrize("name", list(TRANSFORMER_CASES))
def test_transformer_layers_match_pytorch(name):
    torch = pytest.importorskip("torch")
    kind, options, masks = TRANSFORMER_CASES[name]
    torch.manual_seed(0)
    theirs = _transformer(torch, kind, options)
    ours = _transformer(tg, kind, options)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert str(ours) == str(theirs)
    ours.load_state_dict(_state(theirs, tg))
    first = options.get("batch_first", False)
    batch, source, target = 3, 5, 4
    src = rng.standard_normal((batch, source, 8) if first else (source, batch, 8))
    tgt = rng.standard_normal((batch, target, 8) if first else (target, batch, 8))
    padding = np.zeros((batch, source), bool)
    padding[1, -2:] = True
    results = []
    for m, module in ((tg, ours), (torch, theirs)):
        x = m.tensor(src, requires_grad=True)
        kwargs = {}
        for mask_name, mask in masks.items():
            if mask == "causal":
                size = target if mask_name == "tgt_mask" or kind == "decoder_layer" else source
                kwargs[mask_name] = m.nn.Transformer.generate_square_subsequent_mask(size, dtype=m.float64)
            else:
                kwargs[mask_name] = m.tensor(padding)
        if kind in ("decoder_layer", "transformer"):
            y = m.tensor(tgt, requires_grad=True)
            out = module(x, y, **kwargs) if kind == "transformer" else module(y, x, **kwargs)
            inputs = (x, y)
        else:
            out = module(x, **kwargs)
            inputs = (x,)
        (out * m.tensor(np.linspace(-1, 1, out.numel()).reshape(tuple(out.shape)))).sum().backward()
        results.append(
            [out.detach().numpy()]
            + [i.grad.numpy() for i in inputs]
            + [p.grad.numpy() for _, p in module.named_parameters()]
        )
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-11)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_transformer_errors_and_warning():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        tg.nn.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.warns(UserWarning, match="enable_nested_tensor is True, but self.use_nested_tensor is False because"):
        tg.nn.TransformerEncoder(tg.nn.TransformerEncoderLayer(8, 2), 1)
    model = tg.nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8)
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        model(tg.randn(5, 2, 8), tg.randn(4, 3, 8))
    with pytest.raises(RuntimeError, match="the feature number of src and tgt must be equal to d_model"):
        model(tg.randn(5, 2, 8), tg.randn(4, 2, 6))
    mask = tg.nn.Transformer.generate_square_subsequent_mask(3)
    np.testing.assert_array_equal(mask.numpy(), np.triu(np.full((3, 3), -np.inf, np.float32), 1))


def test_a_learned_float_mask_replays_at_new_values():
    """A replay guards where a float mask is -inf (rows all masked), not its finite values: a
    learned bias (T5's, ALiBi's) changes at every step."""

    def f(q, bias):
        return F.scaled_dot_product_attention(q, q, q, attn_mask=bias).sum()

    q0, bias0 = rng.standard_normal((2, 4, 3)), rng.standard_normal((4, 4))
    bias0[1, 2] = -np.inf
    tape = tg.record(f, q0, bias0)
    bias1 = rng.standard_normal((4, 4))
    bias1[1, 2] = -np.inf
    value, (grad_q, grad_bias) = tape.value_and_grad(q0, bias1, argnums=(0, 1))
    q, bias = tg.tensor(q0, requires_grad=True), tg.tensor(bias1, requires_grad=True)
    f(q, bias).backward()
    np.testing.assert_allclose(value, f(tg.tensor(q0), tg.tensor(bias1)).item(), rtol=1e-12)
    np.testing.assert_allclose(grad_q, q.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(grad_bias, bias.grad.numpy(), rtol=1e-10, atol=1e-15)
    bias2 = bias1.copy()
    bias2[3] = -np.inf  # a row every key is masked from: another branch
    with pytest.raises(tg.GuardError):
        tape.value_and_grad(q0, bias2)


@pytest.mark.parametrize("need_weights", [True, False])
def test_empty_batch_and_empty_target(need_weights):
    mha = tg.nn.MultiheadAttention(6, 2)
    out, _ = mha(tg.randn(4, 0, 6), tg.randn(5, 0, 6), tg.randn(5, 0, 6), need_weights=need_weights)
    assert out.shape == (4, 0, 6)
    out, _ = mha(tg.randn(0, 2, 6), tg.randn(5, 2, 6), tg.randn(5, 2, 6), need_weights=need_weights)
    assert out.shape == (0, 2, 6)


def test_sdpa_argument_errors():
    q = tg.randn(2, 4, 6)
    with pytest.raises(TypeError, match="argument 'attn_mask' must be Tensor, not numpy.ndarray"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((4, 4), bool))
    with pytest.raises(TypeError, match=r"argument 'query' \(position 1\) must be Tensor, not list"):
        F.scaled_dot_product_attention([1.0], q, q)
    with pytest.raises(RuntimeError, match="The size of tensor a \\(4\\) must match the size of tensor b \\(5\\)"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=tg.zeros(4, 5))


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("aligned", [True, False])
def test_encoder_inference_zeroes_padded_positions_as_pytorch(aligned):
    """PyTorch's encoder runs an eval-mode, no-grad batch with a left-aligned padding mask as
    nested tensors: its padded positions come out as zeros (with a mask that is not left-aligned
    it takes the ordinary path, and the padded positions hold values)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    source = rng.standard_normal((2, 4, 8))
    padding = [[False, False, True, True] if aligned else [False, True, False, True], [False] * 4]
    theirs = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True, dtype=torch.float64), 2
    ).eval()
    ours = tg.nn.TransformerEncoder(
        tg.nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, batch_first=True, dtype=tg.float64), 2
    ).eval()
    ours.load_state_dict(_state(theirs, tg))
    outputs = []
    for m, encoder in ((tg, ours), (torch, theirs)):
        with m.no_grad():
            outputs.append(encoder(m.tensor(source), src_key_padding_mask=m.tensor(padding)).numpy())
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-8)
    assert (np.abs(outputs[0][0, 2:]).sum() == 0) == aligned
