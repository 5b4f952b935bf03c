"""Packed sequences (torch.nn.utils.rnn) and the recurrent layers on them, against PyTorch:
packing and padding, and RNN/LSTM/GRU outputs, final states and every gradient (float64)."""

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.nn.utils.rnn import PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence

torch = pytest.importorskip("torch")
trnn = pytest.importorskip("torch.nn.utils.rnn")

LENGTHS = [3, 5, 1, 4]  # unsorted: the layers must sort and put back
STEPS, BATCH, FEATURES, HIDDEN = 5, 4, 3, 6


def padded_input(rng, batch_first=False):
    x = rng.standard_normal((BATCH, STEPS, FEATURES) if batch_first else (STEPS, BATCH, FEATURES))
    return tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


def test_packing_and_padding_match_pytorch():
    rng = np.random.default_rng(0)
    for batch_first in (False, True):
        x, tx = padded_input(rng, batch_first)
        packed = pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False)
        tpacked = trnn.pack_padded_sequence(tx, LENGTHS, batch_first=batch_first, enforce_sorted=False)
        assert isinstance(packed, PackedSequence)
        np.testing.assert_array_equal(packed.data.detach().numpy(), tpacked.data.detach().numpy())
        for ours, theirs in zip(packed[1:], tpacked[1:]):
            assert ours.tolist() == theirs.tolist()
        padded, lengths = pad_packed_sequence(packed, batch_first=batch_first, padding_value=-1.0, total_length=6)
        tpadded, tlengths = trnn.pad_packed_sequence(
            tpacked, batch_first=batch_first, padding_value=-1.0, total_length=6
        )
        np.testing.assert_array_equal(padded.detach().numpy(), tpadded.detach().numpy())
        assert lengths.tolist() == tlengths.tolist() and lengths.dtype == tg.int64
        weights = rng.standard_normal(padded.shape)
        (padded * tg.tensor(weights)).sum().backward()
        (tpadded * torch.tensor(weights)).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())  # zero where padded
    sequences = [rng.standard_normal((n, 2)) for n in (4, 2, 2)]
    ours = pack_sequence([tg.tensor(s) for s in sequences])
    theirs = trnn.pack_sequence([torch.tensor(s) for s in sequences])
    np.testing.assert_array_equal(ours.data.numpy(), theirs.data.numpy())
    for side in ("right", "left"):
        ours = pad_sequence([tg.tensor(s) for s in sequences], batch_first=True, padding_value=9.0, padding_side=side)
        theirs = trnn.pad_sequence([torch.tensor(s) for s in sequences], True, 9.0, side)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("with_state", [False, True])
def test_recurrent_layers_on_packed_sequences_match_pytorch(kind, layers, bidirectional, with_state):
    rng = np.random.default_rng(1)
    theirs = getattr(torch.nn, kind)(FEATURES, HIDDEN, layers, bidirectional=bidirectional, batch_first=True).double()
    ours = getattr(tg.nn, kind)(FEATURES, HIDDEN, layers, bidirectional=bidirectional, batch_first=True).double()
    ours.load_state_dict({k: tg.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    x, tx = padded_input(rng, batch_first=True)
    count = layers * (2 if bidirectional else 1)
    states = [rng.standard_normal((count, BATCH, HIDDEN)) for _ in range(2 if kind == "LSTM" else 1)]
    ours_hx = [tg.tensor(s, requires_grad=True) for s in states]
    theirs_hx = [torch.tensor(s, requires_grad=True) for s in states]
    hx = (tuple(ours_hx) if kind == "LSTM" else ours_hx[0]) if with_state else None
    thx = (tuple(theirs_hx) if kind == "LSTM" else theirs_hx[0]) if with_state else None
    out, finals = ours(pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False), hx)
    tout, tfinals = theirs(trnn.pack_padded_sequence(tx, LENGTHS, batch_first=True, enforce_sorted=False), thx)
    assert isinstance(out, PackedSequence) and out.batch_sizes.tolist() == tout.batch_sizes.tolist()
    finals = finals if kind == "LSTM" else (finals,)
    tfinals = tfinals if kind == "LSTM" else (tfinals,)
    np.testing.assert_allclose(out.data.detach().numpy(), tout.data.detach().numpy(), rtol=1e-12, atol=1e-14)
    for a, b in zip(finals, tfinals):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-14)
    padded, _ = pad_packed_sequence(out, batch_first=True)
    tpadded, _ = trnn.pad_packed_sequence(tout, batch_first=True)
    weights = rng.standard_normal(padded.shape)
    loss = (padded * tg.tensor(weights)).sum() + sum((f * f).sum() for f in finals)
    tloss = (tpadded * torch.tensor(weights)).sum() + sum((f * f).sum() for f in tfinals)
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    if with_state:
        for a, b in zip(ours_hx, theirs_hx):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, r: r.pack_padded_sequence(m.zeros(5, 3, 2), [2, 4, 1]),
        lambda m, r: r.pack_padded_sequence(m.zeros(5, 3, 2), [4, 0, 1], enforce_sorted=False),
        lambda m, r: r.pad_packed_sequence(r.pack_padded_sequence(m.zeros(5, 3, 2), [4, 2, 1]), total_length=2),
    ],
    ids=["unsorted", "empty", "total-length"],
)
def test_bad_lengths_raise_pytorchs_errors(call):
    with pytest.raises((RuntimeError, ValueError)) as theirs:
        call(torch, trnn)
    with pytest.raises(type(theirs.value), match="^" + __import__("re").escape(str(theirs.value)) + "$"):
        call(tg, tg.nn.utils.rnn)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, r: r.pack_padded_sequence(m.zeros(4, 3, 2), [4, 2]),
        lambda m, r: r.pack_padded_sequence(m.zeros(4, 3, 2), [4, 3, 2, 1]),
        lambda m, r: r.pack_padded_sequence(m.zeros(4, 3, 2), m.tensor([[4, 2, 1]])),
        lambda m, r: r.pad_sequence([]),
        lambda m, r: r.pad_sequence([m.ones(2)], padding_side="up"),
    ],
    ids=["fewer-lengths", "more-lengths", "2d-lengths", "no-sequences", "padding-side"],
)
def test_lengths_and_sequences_are_checked_as_pytorch_checks_them(call):
    # (fewer lengths than sequences dropped the rest silently; more built data and batch sizes
    # that disagreed)
    with pytest.raises(RuntimeError) as theirs:
        call(torch, trnn)
    with pytest.raises(RuntimeError, match="^" + __import__("re").escape(str(theirs.value)) + "$"):
        call(tg, tg.nn.utils.rnn)


def test_a_packed_sequence_built_with_sorted_indices_computes_their_inverse():
    data, sizes = tg.zeros(3, 1), tg.tensor([2, 1])
    ours = PackedSequence(data, sizes, tg.tensor([1, 0, 2]))
    theirs = trnn.PackedSequence(torch.zeros(3, 1), torch.tensor([2, 1]), torch.tensor([1, 0, 2]))
    assert ours.unsorted_indices.tolist() == theirs.unsorted_indices.tolist()
    assert PackedSequence(data, sizes).unsorted_indices is None
    assert repr(PackedSequence(data, sizes)).startswith("PackedSequence(data=tensor(")
