"""Memory is part of correctness: loops hold resident memory flat, tapes die with their graphs,
deep graphs backward without recursion, threads get exactly their own gradients."""

from __future__ import annotations

import gc
import os
import threading
import weakref

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _tape as tape_module


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _growth(step, iterations: int, warmup: int = 200) -> int:
    for _ in range(warmup):
        step()
    gc.collect()
    before = _rss_bytes()
    for _ in range(iterations):
        step()
    gc.collect()
    return _rss_bytes() - before


W = tg.randn(64, 32, requires_grad=True)
X = tg.randn(16, 64)


def test_training_loop_holds_memory_flat():
    def step():
        loss = ((X @ W).tanh() ** 2).mean()
        loss.backward()
        with tg.no_grad():
            W.sub_(0.01 * W.grad)
        W.grad = None

    assert _growth(step, 3000) < 4 * 2**20


def test_evaluation_without_no_grad_holds_memory_flat():
    outputs = []

    def step():
        outputs[:] = [((X @ W).relu() * 2.0).sum()]

    assert _growth(step, 3000) < 4 * 2**20


def test_state_carried_with_detach_holds_memory_flat():
    state = {"h": tg.zeros(16, 32)}

    def step():
        state["h"] = (state["h"].detach() * 0.5 + X @ W).tanh()

    assert _growth(step, 3000) < 4 * 2**20


def test_in_place_changes_through_views_hold_memory_flat():
    def step():
        h = (X @ W) * 1.0
        h[0].mul_(2.0)  # rebases h (CopySlices) and the view (AsStridedBackward0)
        column = h[:, 1]
        h.add_(1.0)  # the column is re-derived from h when next used
        (column.sum() + h.sum()).backward()
        with tg.no_grad():
            W.grad = None

    assert _growth(step, 3000) < 4 * 2**20


def test_a_rebased_view_does_not_keep_its_tape_alive():
    x = tg.ones(100, requires_grad=True)
    y = x * 2.0
    y[:10].mul_(3.0)
    tape = weakref.ref(y._tape)
    y.sum().backward()
    del y
    gc.collect()
    assert tape() is None
    assert x.grad[:10].tolist() == [6.0] * 10 and x.grad[10:].tolist() == [2.0] * 90


def test_tape_is_released_when_no_tensor_reaches_it():
    x = tg.ones(1000, requires_grad=True)
    y = (x * 2.0).exp().sum()
    tape = weakref.ref(y._tape)
    y.backward()
    del y
    gc.collect()
    assert tape() is None
    assert x.grad is not None  # the leaf and its gradient outlive the graph


def test_a_long_chain_backwards_in_linear_memory():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    before = _rss_bytes()
    y = x * 1.0
    for _ in range(200_000):
        y = y * 1.0
    y.backward(tg.ones(3))
    used = _rss_bytes() - before
    # 48 bytes a row, three float32 gradients a row, plus headroom: far below 1 kB per op.
    assert used < 200_000 * 1000
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_threads_get_exactly_their_own_gradients():
    def work(seed, results):
        rng = np.random.default_rng(seed)
        w = tg.tensor(rng.standard_normal((8, 4)), requires_grad=True)
        data = tg.tensor(rng.standard_normal((5, 8)))
        for _ in range(50):
            w.grad = None
            ((data @ w).sigmoid() * 3.0).sum().backward()
        results[seed] = w.grad.numpy().copy()

    alone = {}
    for seed in range(4):
        work(seed, alone)
    together = {}
    threads = [threading.Thread(target=work, args=(seed, together)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed in range(4):
        np.testing.assert_array_equal(together[seed], alone[seed])


def test_a_reused_gradient_arena_never_overwrites_a_gradient_someone_holds():
    from tapegrad.autograd import engine

    x = tg.ones(4_000_000, requires_grad=True)  # arenas above engine._REUSE_BYTES
    (x * 2.0).sum().backward()
    held = x.grad  # a view of the backward's arena
    x.grad = None
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(held.numpy(), 2.0)
    np.testing.assert_array_equal(x.grad.numpy(), 3.0)
    saved = []
    y = x * 1.0
    y.register_hook(lambda g: saved.append(g))
    (y * 4.0).sum().backward()
    for factor in (5.0, 6.0):
        x.grad = None
        (x * factor).exp().sum().backward()
    np.testing.assert_array_equal(saved[0].numpy(), 4.0)
    # and with nothing held, the next backward takes the last one's arena: no fresh pages
    x.grad = None
    (x * 7.0).sin().sum().backward()
    x.grad = None
    arena = weakref.ref(engine._kept.arenas[0])  # not a reference: one would keep it from reuse
    (x * 8.0).sin().sum().backward()
    assert engine._kept.arenas[0] is arena()
    np.testing.assert_allclose(x.grad.numpy(), 8.0 * np.cos(8.0), rtol=1e-6)


@pytest.mark.parametrize("expression", ["relu(a.t())", "a * b[0]"])
def test_a_large_gradient_is_a_view_when_the_rest_of_the_arena_holds_one_number(expression):
    """A sum's gradient, one number, reaches a slot of its own and stays there (a UNIFORM slot):
    such slots do not count against handing the leaves' gradients over as views of the arena,
    which made ``relu(a.t()).sum()`` and ``(a * b[0]).sum()`` at 512x1024 copy 2 MB gradients.
    Held, a view is never written by a later backward."""
    rng = np.random.default_rng(0)
    a = tg.tensor(rng.standard_normal((512, 1024)).astype(np.float32), requires_grad=True)
    b = tg.tensor(rng.standard_normal((512, 1024)).astype(np.float32), requires_grad=True)
    namespace = {"a": a, "b": b, "relu": tg.relu}
    eval(expression, namespace).sum().backward()  # noqa: S307 - the two expressions above
    held = a.grad
    assert held._data.base is not None  # a view of the arena, not a copy
    if expression == "a * b[0]":
        expected = np.broadcast_to(b.detach().numpy()[0], a.shape)
    else:
        expected = (a.detach().numpy() > 0).astype(np.float32)
    np.testing.assert_array_equal(held.numpy(), expected)
    before = held.numpy().copy()
    a.grad = b.grad = None
    (eval(expression, namespace) * 3.0).sum().backward()  # noqa: S307
    np.testing.assert_array_equal(held.numpy(), before)
    np.testing.assert_array_equal(a.grad.numpy(), 3.0 * expected)


def test_idle_elements_counts_each_idle_slot_once():
    """The count behind ``views_suffice``: slots holding a UNIFORM number, and slots no reached
    row holds, each once however many rows share it; a slot a reached row writes is not idle."""
    from tapegrad._kernels import backward

    # layouts: (dtype code, numel); rows' column 4 is the layout
    layouts = np.array([[0, 100, 1, 0], [1, 7, 1, 0], [0, 30, 1, 0]], np.int64)
    rows = np.zeros((7, 6), np.int64)
    rows[:, 4] = [0, 0, 1, 2, 2, 0, 1]
    offsets = np.array([0, 0, 0, 100, 100, 130, -1], np.int64)
    uniform = np.array([backward.UNIFORM, backward.UNIFORM, 0, 0, 0, 0, 0], np.int64)
    touched = np.array([True, True, True, False, False, False, False])
    # rows 0 and 1 share the float32 slot at 0 (UNIFORM): 100; rows 3 and 4 share an unreached
    # slot at 100: 30; row 5's unreached slot at 130: 100; row 2's float64 slot is written
    assert backward.idle_elements(rows, layouts, offsets, uniform, touched) == 230
    touched[4] = True  # a reached row writes the slot at 100
    assert backward.idle_elements(rows, layouts, offsets, uniform, touched) == 200
    assert backward.idle_elements(rows, layouts, offsets, uniform, np.zeros(0, np.bool_)) == 100
    assert backward.idle_elements(rows, layouts, offsets, np.zeros(0, np.int64), touched) == 100


def test_a_transpose_read_through_its_source_holds_no_arena_nor_saved_value():
    """``h.t() @ c`` of a result ``h`` reads ``h`` in place (the view row stays on the tape,
    never reached: ``Tape.bypassed``). Its unused slot does not count against handing the
    leaves' gradients over as views of the arena, and the pending view, whose rule reads no
    value, keeps no saved value alive after the backward: PyTorch frees them all."""
    rng = np.random.default_rng(1)
    # (arenas above engine._RELEASE_BYTES without the view's slot too: the stress pass collects
    # the view, a temporary, before the product reads its source)
    a = tg.tensor(rng.standard_normal((256, 512)).astype(np.float32), requires_grad=True)
    b = tg.tensor(rng.standard_normal((256, 512)).astype(np.float32), requires_grad=True)
    c = tg.tensor(rng.standard_normal((256, 64)).astype(np.float32), requires_grad=True)
    h = a * b
    loss = (h.t() @ c).sum()
    tape = tape_module.resolve(loss)
    loss.backward()
    assert a.grad._data.base is not None and a.grad._data.base is b.grad._data.base  # views of one arena
    assert not tape.saved and not tape.keepalive
    # Sums that may cancel: compared within float32 rounding of their terms' magnitudes (a
    # relative tolerance failed where a row of c nearly sums to zero, with another BLAS's order).
    ones, c_, h_ = np.ones((512, 64)), c.detach().numpy().astype(np.float64), h.detach().numpy().astype(np.float64)
    b_ = b.detach().numpy().astype(np.float64)
    row_sums, row_magnitudes = ones @ c_.T, ones @ np.abs(c_).T  # d loss / d h.t(), and its terms'
    assert np.all(np.abs(a.grad.numpy() - row_sums.T * b_) <= 1e-5 * row_magnitudes.T * np.abs(b_))
    assert np.all(np.abs(c.grad.numpy() - h_ @ ones) <= 1e-5 * np.abs(h_) @ ones)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        h.t().sum().backward()  # through the freed product, as PyTorch's


def test_a_gradient_a_hook_keeps_holds_its_own_memory_only():
    """A hook's gradient is its own copy: kept across steps it must not keep each backward's
    whole gradient arena alive (a view of it held a large parameter's arena per step)."""
    weights = tg.zeros(1000, 1000, requires_grad=True)
    bias = tg.zeros(1000, requires_grad=True)
    kept = []
    bias.register_hook(lambda g: kept.append(g))
    x = tg.ones(4, 1000)
    for _ in range(3):
        weights.grad = bias.grad = None
        (x @ weights + bias).sum().backward()
    for gradient in kept:
        array = gradient.numpy()
        assert array.base is None or array.base.nbytes <= array.nbytes


# -- rows nobody can reach, on a tape somebody can (Tape.collect) ------------------------------

COLLECT_ROWS = tape_module.COLLECT_ROWS


def _tape_stays_bounded(step, iterations: int = 6 * COLLECT_ROWS) -> int:
    """The most rows a tape kept over ``iterations`` calls of ``step()`` (which returns the tape)."""
    most = 0
    for _ in range(iterations):
        most = max(most, len(step()))
    return most


def test_results_dropped_from_a_kept_result_hold_memory_flat():
    # PyTorch frees each tanh's node with its result; a tape that kept the rows of results
    # nobody can reach grew by the 16 KB each saved, for ever (455 MB in 20,000 iterations).
    a = tg.randn(32, 64, requires_grad=True) * 2.0  # a result, kept alive across the loop
    outputs = []

    def step():
        outputs[:] = [a.tanh()]
        return a._tape

    assert _tape_stays_bounded(step) <= 3 * COLLECT_ROWS + 64
    # 8 KB a result: 48 MB over these iterations if kept, at most one collection's worth not
    assert _growth(step, 6 * COLLECT_ROWS, warmup=4 * COLLECT_ROWS) < 12 * 2**20


@pytest.mark.parametrize(
    "expression",
    [
        lambda a, w: (a * 3.0 + a).sum(),  # the scalar operator path and the short paths
        lambda a, w: (a[:, 1:3].sum(1, keepdim=True) * (a @ w)).relu().mean(),  # a view, a product
        lambda a, w: tg.where(a > 0, a, a * a).sum(),  # where reads a mask row above it
        lambda a, w: tg.cat([a, a.t().t()]).exp().sum(),  # cat lists its inputs in aux
        lambda a, w: a[tg.tensor([0, 2, 2])].sum(),  # a gather keeps its indices in aux
    ],
)
def test_rows_a_retained_graph_loop_drops_are_collected(expression):
    x = tg.randn(6, 4, requires_grad=True)
    w = tg.randn(4, 3, requires_grad=True)
    a = x * 2.0

    def step():
        expression(a, w).backward(retain_graph=True)
        return a._tape

    # (cat is recorded where the tape does not collect: the backward after it does)
    assert _tape_stays_bounded(step) <= 3 * COLLECT_ROWS + 64
    # The kept rows still differentiate: one more backward through a, after the collections.
    x.grad = w.grad = None
    loss = expression(a, w)
    loss.backward(retain_graph=True)
    got = (x.grad.clone(), None if w.grad is None else w.grad.clone())
    x2 = x.detach().requires_grad_()
    w2 = w.detach().requires_grad_()
    expression(x2 * 2.0, w2).backward()
    assert np.allclose(got[0].numpy(), x2.grad.numpy(), rtol=1e-6, atol=1e-7)
    if got[1] is not None:
        assert np.allclose(got[1].numpy(), w2.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_a_collection_keeps_what_live_tensors_reach_and_renumbers_them(monkeypatch):
    monkeypatch.setattr(tape_module, "_HOLD_FROM", 0)  # tapes track their tensors from the start
    x = tg.randn(5, 3, requires_grad=True)
    h = (x * 2.0).tanh()
    kept_view = h[1:, :2]
    seen = []
    handle_tensor = h * 1.5
    handle_tensor.register_hook(lambda g: seen.append(g.clone()))
    node = (h.sigmoid() * 3.0).grad_fn  # a grad_fn held without its tensor
    for _ in range(50):
        (h * 4.0).exp()  # garbage
    tape = h._tape
    before = len(tape)
    assert tape.collect()
    assert len(tape) < before
    assert node.name() == "MulBackward0" and node.next_functions[0][0].name() == "SigmoidBackward0"
    loss = kept_view.sum() + handle_tensor.sum() * 2.0
    loss.backward()
    t = np.tanh(2.0 * x.detach().numpy())
    expected = 2.0 * (1 - t**2) * 3.0  # through handle_tensor: 1.5 * 2
    expected[1:, :2] += 2.0 * (1 - t[1:, :2] ** 2)
    assert np.allclose(x.grad.numpy(), expected, rtol=1e-5)
    assert len(seen) == 1 and np.allclose(seen[0].numpy(), 2.0)


def test_no_collection_while_a_hook_runs_on_the_same_tape():
    x = tg.randn(8, requires_grad=True)
    a = x * 2.0
    made = []

    def hook(gradient):
        with tg.enable_grad():  # (a backward runs its hooks without grad mode, as PyTorch's)
            for _ in range(3 * COLLECT_ROWS):
                made.append(len((a * 3.0).tanh()._tape))  # records on a's tape mid-backward
        return gradient

    b = a * 5.0
    b.register_hook(hook)
    (b.sum() + a.sum()).backward()
    assert np.allclose(x.grad.numpy(), 12.0)
    assert max(made) > 2 * COLLECT_ROWS  # nothing was collected under the sweep


def test_results_of_a_module_on_a_kept_result_are_collected():
    features = tg.randn(4, 8, requires_grad=True) * 2.0  # a backbone's output, kept
    head = tg.nn.Sequential(tg.nn.Linear(8, 3), tg.nn.Tanh())
    outputs = []

    def step():
        outputs[:] = [head(features)]  # evaluation without no_grad
        return features._tape

    assert _tape_stays_bounded(step) <= 3 * COLLECT_ROWS + 64


@pytest.mark.parametrize(
    "expression",
    [
        lambda kept, lin: lin(kept),  # a linear layer alone: its weight's view lands on a full tape
        lambda kept, lin: kept @ lin.weight.t(),  # the view of a leaf, settled on the kept result's tape
        lambda kept, lin: kept @ tg.randn(512, 8).requires_grad_().t(),  # a transpose read in place (4,096 elements)
        lambda kept, lin: kept.softmax(-1),
        lambda kept, lin: kept.clamp(0, 1),
        lambda kept, lin: 1 - kept,
        lambda kept, lin: kept.exp() * kept,
        # Ops recorded under composites the collection did not know to hold no row number: the
        # tape never collected (128 KB a step for max(dim=1) of a 1000x32 table)
        lambda kept, lin: kept.max(dim=1),
        lambda kept, lin: kept.min(dim=1).values,
        lambda kept, lin: kept.index_select(0, tg.tensor([0, 2])),
        lambda kept, lin: kept[kept > 0],
        lambda kept, lin: kept[tg.tensor([1, 3])],
        lambda kept, lin: tg.nn.functional.embedding(tg.tensor([1, 3]), kept),
        lambda kept, lin: kept.gather(1, tg.zeros(4, 2, dtype=tg.int64)),
        lambda kept, lin: tg.einsum("ij,j->i", kept, kept[0]),
        lambda kept, lin: kept.var(1) + kept.std(0).sum(),
        lambda kept, lin: kept.cumsum(1),
        lambda kept, lin: kept.norm(dim=1),
        lambda kept, lin: kept.topk(3, dim=1).values + kept.sort(dim=1).values[:, :3],
        lambda kept, lin: kept.masked_fill(kept > 0, 0.0),
        lambda kept, lin: tg.stack([kept, kept]).sum() + tg.cat([kept, kept]).sum(),
    ],
)
def test_evaluations_on_kept_features_are_collected(expression):
    kept = (tg.randn(4, 8, requires_grad=True) * 2.0).tanh()
    lin = tg.nn.Linear(8, 3)
    outputs = []

    def step():
        outputs[:] = [expression(kept, lin)]
        return kept._tape

    assert _tape_stays_bounded(step) <= 3 * COLLECT_ROWS + 64


def test_a_copy_of_a_result_is_a_leaf_as_in_pytorch():
    # A slot-by-slot copy named the result's row behind the tape's back: after a collection the
    # result moved and the copy's gradient went through another row, silently.
    import copy

    x = tg.tensor(np.linspace(-1.0, 1.0, 6), requires_grad=True)
    base = x * 1.0
    junk = [base.exp() for _ in range(50)]
    a = (base * 3.0).sin()
    b = copy.copy(a)
    del junk
    for _ in range(3 * COLLECT_ROWS):
        a.tanh()
    assert b.is_leaf and b.requires_grad and b.grad_fn is None
    assert np.shares_memory(b.detach().numpy(), a.detach().numpy())
    (b * 2.0).sum().backward()
    assert x.grad is None and np.allclose(b.grad.numpy(), 2.0)
    a.sum().backward()
    assert np.allclose(x.grad.numpy(), 3.0 * np.cos(3.0 * np.linspace(-1.0, 1.0, 6)))


def test_a_tape_without_garbage_tracks_no_tensor():
    # Tracking costs a weak reference an op (and garbage-collector passes): a long chain, or a
    # graph whose results all live, never starts it.
    x = tg.ones(3, requires_grad=True)
    y = x * 1.0
    for _ in range(4 * COLLECT_ROWS):
        y = y * 1.0001
    nodes = [x * 1.0]
    for index in range(4 * COLLECT_ROWS):
        nodes.append(nodes[index // 2] + nodes[-1])
    if COLLECT_ROWS >= 32:  # (the stress mode tracks everything)
        assert not y._tape.refs and y._tape.hold_from > len(y._tape)
        assert not nodes[-1]._tape.refs
    y.sum().backward()
    assert np.allclose(x.grad.numpy(), float(np.float32(1.0001)) ** (4 * COLLECT_ROWS), rtol=1e-4)


def test_rerecords_keep_no_earlier_inputs():
    """A tape recorded again at each guard failure (``rerecord=True``) held every earlier
    recording's input tensor among its constants: memory grew with the replays."""
    import gc

    def f(x):
        return (x * int(x.sum() * 100)).sum()  # a guard most new inputs fail

    tape = tg.record(f, tg.tensor(np.ones(4)), rerecord=True)
    rng = np.random.default_rng(0)
    for _ in range(200):
        tape.value_and_grad(rng.standard_normal(4))
    gc.collect()
    assert not getattr(tape, "_constants", {})
    # (by type: ``isinstance`` asks a dead weakref.proxy another test left for its class, and raises)
    assert sum(issubclass(type(o), tg.Tensor) for o in gc.get_objects()) < 50


def _saved_bytes(tensor) -> int:
    return sum(array.nbytes for array in tape_module.resolve(tensor).keepalive)


def test_a_backward_frees_the_values_its_graph_saved_as_pytorchs_does():
    # A loss kept after its backward (a list of losses, a loop's last step) kept every
    # activation its step saved until the loss itself died: 2 MB a step of a small loop.
    x = tg.randn(256, 512)
    w1 = tg.randn(512, 512, requires_grad=True)
    w2 = tg.randn(512, 64, requires_grad=True)
    loss = ((x @ w1).tanh() @ w2).relu().sum()
    before = _saved_bytes(loss)
    assert before > 2**20
    loss.backward()
    assert _saved_bytes(loss) < before / 4  # what is left: the leaves' own arrays, held anyway
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()


@pytest.mark.parametrize("keep", ["list", "running_loss"])
def test_small_steps_whose_losses_are_kept_free_what_their_graphs_saved(keep):
    """A loss kept for logging (in a list, or summed: ``running_loss += loss``) after each small
    step's backward kept the activations its step saved, 150 KB a step of this MLP; PyTorch
    frees them, and keeps about 10 KB of graph nodes. A small backward's release waits for the
    next backward, or for a merge into another tape."""
    w1 = tg.randn(64, 256, requires_grad=True)
    w2 = tg.randn(256, 10, requires_grad=True)
    x = tg.randn(128, 64)
    losses = []
    total = 0.0
    for _ in range(20):
        loss = ((x @ w1).tanh() @ w2).pow(2).mean()
        loss.backward()
        if keep == "list":
            losses.append(loss)
        else:
            total = total + loss
    # (the last step's are released by the next backward: tapes that nothing holds die first)
    tapes = {id(t): t for t in map(tape_module.resolve, losses[:-1] if keep == "list" else [total])}
    assert tapes and all(not t.saved for t in tapes.values())
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        (losses[0] if keep == "list" else total).backward()


def test_a_second_loss_on_the_same_graph_keeps_what_its_pending_rows_read():
    x = tg.randn(256, 1024, requires_grad=True)
    hidden = (x * 2.0).tanh()
    first, second = hidden.sum(), (hidden * hidden).sum()
    first.backward()
    tape = tape_module.resolve(hidden)
    assert hidden._row in tape.saved  # the square, still to run, reads it
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        second.backward()  # its mul runs, then tanh's freed node: PyTorch's error, not garbage


def test_a_linear_layer_on_a_batch_of_sequences_saves_its_weight_once():
    # (B, T, k) @ (k, n) broadcast the weight to B copies and saved them: 258 MB for B = 64
    layer = tg.nn.Linear(256, 256)
    out = layer(tg.randn(64, 8, 256))
    assert _saved_bytes(out) <= layer.weight.numel() * 4 + 64 * 8 * 256 * 4 + 4096
    assert type(out.grad_fn).__name__ == "ViewBackward0"


def test_the_window_tables_kept_are_bounded_in_bytes():
    # an lru_cache of 128 tables, whatever their size: 4.7 GB over 64 image sizes. (The tables of
    # a 32-channel 3x3 convolution's windows, as its create_graph formula makes them.)
    from tapegrad.nn import _convolution

    for size in range(60, 100, 2):
        _convolution._windows(32, size, size, (3, 3), (1, 1), (1, 1), (1, 1), (size, size))
    assert _convolution._windows.bytes_held() <= _convolution._TABLE_BYTES
    assert _convolution._windows.bytes_held() > _convolution._TABLE_BYTES // 4  # (it does keep some)


def test_a_dropped_recording_frees_its_tape_without_the_garbage_collector():
    # its storage table and detached aliases pointed back at it: 15 dead recordings held 375 MB
    w = np.ones((8, 8), np.float32)

    def f(w):
        h = (tg.ones(4, 8) @ w).tanh()
        return (h.sin() * h.detach()).sum()

    gc.collect()
    gc.disable()
    try:
        tape = tg.record(f, w)
        tape.value_and_grad(w)
        recording = weakref.ref(tape_module.resolve(tape.outputs[0]))
        del tape
        assert recording() is None
    finally:
        gc.enable()


def test_backward_plans_are_not_kept_for_data_dependent_aux_tables():
    # a max pooling's argmax changes every step: each step's plan, with its aux, was kept
    from tapegrad.autograd import engine

    engine._PLANS.clear()
    conv = tg.nn.Conv2d(3, 8, 3, padding=1)
    for _ in range(5):
        x = tg.randn(4, 3, 32, 32)
        tg.nn.functional.max_pool2d(conv(x), 2).sum().backward()
    assert sum(plan["structure"][4].nbytes for plan in engine._PLANS.values()) < 1 << 16


def test_retain_grad_leaves_no_cycle_through_the_tape():
    x = tg.randn(16, requires_grad=True)
    gc.collect()
    gc.disable()
    try:
        hidden = x * 2.0
        hidden.retain_grad()
        hidden.sin().sum().backward()
        np.testing.assert_allclose(hidden.grad.numpy(), np.cos(2.0 * x.detach().numpy()), rtol=1e-6)
        tape = weakref.ref(tape_module.resolve(hidden))
        del hidden
        assert tape() is None
    finally:
        gc.enable()


def test_a_merged_tape_keeps_no_copy_of_its_aux_table():
    a = tg.randn(1, 1, 64, 64, requires_grad=True)
    pooled = tg.nn.functional.max_pool2d(a * 1.0, 2)  # its indices: in the aux table
    other = tg.randn(1, 1, 32, 32, requires_grad=True) * 1.0
    for _ in range(40):  # a longer tape: it absorbs the pooling's
        other = other * 1.0
    first = pooled._tape
    assert len(first.aux) > 0
    (pooled + other).sum()  # joins the two tapes
    assert first.merged_into is not None
    assert len(first.aux) == 0 and not first.versions and len(tape_module.resolve(pooled).aux) > 0


class _Doubled(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * 2.0

    @staticmethod
    def backward(ctx, grad):
        return grad * 2.0


def test_a_kept_graph_with_custom_function_calls_is_collected():
    # collect refused any tape holding a Function call (every linalg op is one): a loop on a
    # kept result grew without bound (1.5 GB in 6,000 iterations)
    x = tg.randn(32, 64, requires_grad=True)
    a = x * 2.0
    outputs = []

    def step():
        outputs[:] = [_Doubled.apply(a).tanh()]
        return a._tape

    assert _tape_stays_bounded(step) <= 3 * COLLECT_ROWS + 64
    outputs[0].sum().backward()  # the call kept, renumbered, still differentiates
    expected = 4.0 * (1 - np.tanh(4.0 * x.detach().numpy()) ** 2)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_retained_gradients_of_dropped_results_are_forgotten():
    """``retain_grad()`` on a result dropped each step of an evaluation loop over a kept tape
    kept a dead weak reference a step (100 B) until a backward, which such a loop never runs."""
    kept = (tg.randn(16, 32, requires_grad=True) * 2.0).tanh()
    outputs = []
    for _ in range(3000):
        y = kept * 2.0
        y.retain_grad()
        outputs[:] = [y]
    assert len(tape_module.resolve(kept).retained) < 128


def test_a_graph_kept_across_backwards_that_absorbs_each_steps_graph_stays_bounded():
    """``scale = log_s.exp()`` computed once, then ``(model(x) * scale)...backward(retain_graph=
    True)`` each step: each step's new tape joined the kept one, whose rows from it (their
    tensors unknown) were never collected, and each backward swept them all (2.3 ms a step
    rising to 10 ms over 2,000 steps). New tapes now track their tensors once that happens."""
    log_s = tg.zeros(1, dtype=tg.float64, requires_grad=True)
    scale = log_s.exp()
    model = tg.nn.Sequential(tg.nn.Linear(8, 16), tg.nn.Tanh(), tg.nn.Linear(16, 2)).double()
    x = tg.randn(4, 8, dtype=tg.float64)

    def step():
        (model(x) * scale).pow(2).mean().backward(retain_graph=True)
        return tape_module.resolve(scale)

    assert _tape_stays_bounded(step) <= 3 * COLLECT_ROWS + 64
    log_s.grad = None
    out = model(x)
    (out * scale).pow(2).mean().backward(retain_graph=True)
    expected = 2.0 * (out.detach().numpy() ** 2).mean()  # d/d log_s of mean((out e^s)^2) at s = 0
    np.testing.assert_allclose(log_s.grad.numpy(), [expected], rtol=1e-12)


def test_a_backward_in_a_hook_leaves_the_saved_values_of_the_one_running():
    """A small backward's saved values are released at the thread's next backward
    (``engine._release_earlier``); one run inside a hook of a later ``create_graph`` pass over
    the same graph must not release what that pass still reads: it read ``cosh`` of released
    values (0.07 off)."""
    x = tg.tensor(np.linspace(-1.0, 1.0, 8192), requires_grad=True)
    a3 = (x.exp() * 1.0) * 1.0
    a4 = a3 * 1.0
    c = a4.sinh()
    (a3 * 2.0).sum().backward()  # leaves the graph's tape to be released at the next backward
    del a3  # (nothing holds the rows under a4 now)
    gc.collect()

    def hook(gradient):
        z = tg.ones(3, requires_grad=True)
        (z * 2.0).sum().backward()  # the next backward
        return gradient

    c.register_hook(hook)
    (gradient,) = tg.autograd.grad(c.sum(), a4, create_graph=True)
    np.testing.assert_allclose(gradient.detach().numpy(), np.cosh(a4.detach().numpy()), rtol=1e-14)
