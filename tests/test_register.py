"""Scalar tapes replayed as register programs (tapegrad/_register.py) agree with the general
interpreter, with eager evaluation and with central differences, and fall back whole where they
do not apply."""

from __future__ import annotations

import pickle

import numba
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention
from benchmarks import workloads


def test_a_softmax_row_fits_the_interpreters_scratch():
    from tapegrad import _register
    from tapegrad._kernels import register

    assert _register.MAX_ROW_ELEMENTS <= register.MAX_GROUP


def _general(tape):
    """The same tape, replayed by the general interpreter."""
    other = pickle.loads(pickle.dumps(tape))
    other._program = None
    return other


def _eager(fn, arrays, dtype, weights=None):
    inputs = [tg.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    (out * tg.tensor(weights, dtype=dtype) if weights is not None else out).sum().backward()
    return out.detach().numpy(), [x.grad.numpy() if x.grad is not None else np.zeros(x.shape) for x in inputs]


# Bit for bit: the sums in the order the compiled kernels make them. Run as Python
# (NUMBA_DISABLE_JIT=1), softmax's sums and libm's calls round otherwise.
_COMPILED_BITS = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="the compiled kernels' own rounding")


def test_eager_computes_the_rows_a_register_program_takes_with_its_formulas():
    """Rows a register program may hold are computed eagerly by numpy's formula (the program's),
    not by the compiled forward (the general replay's): else its bits would differ from eager's."""
    from tapegrad import _record, _register

    assert _record.COMPILED_FORWARD_SIZE > _register.MAX_ROW_ELEMENTS


@_COMPILED_BITS
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_graph_workload_replays_as_registers_bit_for_bit(dtype):
    graph = workloads.graph_function(tg, 403)
    tape = tg.record(graph, np.arange(100.0, dtype=dtype))
    general = _general(tape)
    x = (np.arange(100.0) / 50.0).astype(dtype)
    value, (grad,) = tape.value_and_grad(x)
    assert tape._program is not None  # the rewrite applied
    program = tape._program
    # At most one instruction per graph op (the rows are twice as many): selects and stacks are
    # renamed registers, and ops the output does not depend on are dropped.
    assert len(program.forward_ins) <= 403 < len(tape.rows) / 2
    # Bit for bit what eager evaluation gives. (The general replay's softmax sums its four
    # exponentials in another order than eager's, so it differs from both in the last bit.)
    eager_value, (eager_grad,) = _eager(graph, [x], tg.float64 if dtype == np.float64 else tg.float32)
    assert value.numpy().tobytes() == eager_value.tobytes()
    np.testing.assert_array_equal(grad.numpy(), eager_grad)
    expected_value, (expected_grad,) = general.value_and_grad(x)
    tolerance = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(value.numpy(), expected_value.numpy(), rtol=tolerance)
    np.testing.assert_allclose(grad.numpy(), expected_grad.numpy(), rtol=tolerance * 10, atol=tolerance)


def _random_program(seed: int, stops_gradients: bool):
    """A random scalar program over the elements of two inputs, of the ops the register program
    covers; with ``stops_gradients``, some of its values are detached or computed under no_grad
    (central differences then see what the gradient does not)."""
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(int(rng.integers(10, 40))):
        kind = int(rng.integers(0, 17))
        if kind in (12, 15) and not stops_gradients:
            kind = 16
        steps.append((kind, rng.integers(0, 1 << 30, 4).tolist(), float(rng.uniform(-2, 2))))
    n_out = int(rng.integers(1, 4))

    def fn(x, w):
        nodes = list(x) + list(w)

        def pick(k):
            return nodes[-1 - k % min(len(nodes), 12)]

        for kind, (i, j, k, m), c in steps:
            a, b = pick(i), pick(j)
            if kind == 0:
                nodes.append(a + b)
            elif kind == 1:
                nodes.append(a - b * c)
            elif kind == 2:
                nodes.append((a * b).tanh())
            elif kind == 3:
                nodes.append(a / (b * b + 1.0))
            elif kind == 4:
                nodes.append(c - a)
            elif kind == 5:
                nodes.append(-a + c)
            elif kind == 6:
                nodes.append(F.softplus(a) / c if c else a)
            elif kind == 7:
                nodes.append(a.sigmoid() * b)
            elif kind == 8:
                nodes.append(sum(pick(t) for t in (i, j, k, m)))
            elif kind == 9:
                nodes.extend(F.softmax(tg.stack([a, b, pick(k)]), dim=0))
            elif kind == 10:
                nodes.append(tg.stack([a, b, pick(k)]).mean())
            elif kind == 11:
                nodes.append(a.tanh().exp() + (b * b + 1.0).log() + (b * b + 0.5).sqrt())
            elif kind == 12:
                nodes.append(a.detach() * b + a.relu())
            elif kind == 13:  # a vector row, elementwise, and picks of it
                v = (tg.stack([a, b]) * tg.stack([b, pick(k)])).tanh()
                nodes.extend([v[1], v.sum()])
            elif kind == 14:
                nodes.append(tg.cat([tg.stack([a, b]), pick(k).reshape(1)]).reshape(3, 1)[2, 0] * a)
            elif kind == 15:
                with tg.no_grad():
                    frozen = a * 2.0
                nodes.append(frozen * b + a / c)
            else:
                nodes.append(a * 0.5 - b / 3.0)
        tail = nodes[-n_out:]
        return tg.stack(tail) if len(tail) > 1 else tail[0]

    return fn


@pytest.mark.parametrize("seed", range(40))
def test_random_scalar_programs_agree_with_general_replay_eager_and_central_differences(seed):
    stops_gradients = seed % 3 == 0
    fn = _random_program(seed, stops_gradients)
    rng = np.random.default_rng(1000 + seed)
    for dtype, tolerance in ((np.float64, 1e-12), (np.float32, 2e-6)):
        recorded = [rng.uniform(-1.5, 1.5, 5).astype(dtype), rng.uniform(-1.5, 1.5, 3).astype(dtype)]
        replayed = [rng.uniform(-1.5, 1.5, 5).astype(dtype), rng.uniform(-1.5, 1.5, 3).astype(dtype)]
        tape = tg.record(fn, *recorded)
        general = _general(tape)
        shape = tape.outputs[0].shape
        weights = np.linspace(0.5, 1.5, max(1, int(np.prod(shape)))).reshape(shape).astype(dtype)
        value, grads = tape.value_and_grad(*replayed, grad_outputs=weights)
        assert tape._program is not None
        expected_value, expected_grads = general.value_and_grad(*replayed, grad_outputs=weights)
        np.testing.assert_allclose(value.numpy(), expected_value.numpy(), rtol=tolerance, atol=tolerance)
        for got, want in zip(grads, expected_grads):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=tolerance * 10, atol=tolerance * 10)
        eager_value, eager_grads = _eager(fn, replayed, tg.float64 if dtype == np.float64 else tg.float32, weights)
        np.testing.assert_allclose(value.numpy(), eager_value, rtol=tolerance * 10, atol=tolerance * 10)
        for got, want in zip(grads, eager_grads):
            np.testing.assert_allclose(got.numpy(), want, rtol=tolerance * 100, atol=tolerance * 100)
        if dtype == np.float64 and not stops_gradients:  # the gradient itself, by central differences
            step = 1e-6
            for index, (point, grad) in enumerate(zip(replayed, grads)):
                for element in range(point.size):
                    moved = [p.copy() for p in replayed]
                    moved[index].flat[element] += step
                    up = float((tape(*moved).numpy() * weights).sum())
                    moved[index].flat[element] -= 2 * step
                    down = float((tape(*moved).numpy() * weights).sum())
                    np.testing.assert_allclose(
                        grad.numpy().flat[element], (up - down) / (2 * step), rtol=1e-5, atol=1e-6
                    )


def test_rows_it_does_not_cover_keep_the_whole_tape_on_the_general_interpreter():
    x = np.array([0.3, -0.7, 1.1])

    def with_sin(x):
        a, b, c = x
        return (a * b).sin() + c * a + (b - c) * (a + c) + a * a * b

    def with_guard(x):
        a, b, c = x
        y = a * b + c * a + (b - c) * (a + c)
        return y * 2 if y > 0 else -y

    for fn in (with_sin, with_guard):
        tape = tg.record(fn, x)
        value, (grad,) = tape.value_and_grad(x)
        assert tape._program is None
        eager_value, (eager_grad,) = _eager(fn, [x], tg.float64)
        np.testing.assert_allclose(value.numpy(), eager_value, rtol=1e-12)
        np.testing.assert_allclose(grad.numpy(), eager_grad, rtol=1e-12)


def test_inputs_outputs_and_seeds_are_checked_as_the_general_replay_checks_them():
    tape = tg.record(workloads.graph_function(tg, 40), np.arange(100.0))
    tape(np.ones(100))
    assert tape._program is not None
    with pytest.raises(ValueError, match=r"input 0 \('x'\) was recorded as shape \(100,\) float64"):
        tape(np.ones(99))
    with pytest.raises(ValueError, match="float32"):
        tape.value_and_grad(np.ones(100, np.float32))
    with pytest.raises(TypeError, match="recorded with 1 inputs, got 2"):
        tape(np.ones(100), np.ones(100))
    vector = tg.record(lambda x: tg.stack([x[0] * x[1], x[1] + x[2], x[0] - x[2], x[1] * 2.0]), np.ones(3))
    vector(np.ones(3))
    assert vector._program is not None
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        vector.backward()
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        vector.backward(np.ones(3))
    with pytest.raises(IndexError, match="names no input"):
        vector.backward(np.ones(4), argnums=1)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_a_row_no_gradient_reaches_is_not_differentiated():
    """Only element 0 of ``v`` is used: the general backward still runs ``v``'s row, whose other
    element's ``0 * inf`` is NaN (as PyTorch gives), and so must the register program."""

    def fn(x):
        v = tg.stack([x[0], x[1] * 800.0]).exp()
        return v[0] * x[2] + x[0] * x[1] + x[2] - x[1] + x[0] * 3.0

    x = np.array([0.5, 1.0, -0.25])
    tape = tg.record(fn, x)
    value, (grad,) = tape.value_and_grad(x)
    assert tape._program is not None
    expected_value, (expected_grad,) = _general(tape).value_and_grad(x)
    np.testing.assert_array_equal(value.numpy(), expected_value.numpy())
    np.testing.assert_array_equal(grad.numpy(), expected_grad.numpy())
    assert np.isnan(grad.numpy()[1])


def test_several_outputs_jacobian_argnums_and_a_saved_tape(tmp_path):
    def fn(x, w):
        a, b, c = x
        h = F.softmax(tg.stack([a * w[0], b * w[1], c]), dim=0)
        return h.sum() * a + (h[0] - h[2]) * b, h

    x, w = np.array([0.3, -0.2, 0.9]), np.array([1.5, -0.5])
    tape = tg.record(fn, x, w)
    general = _general(tape)
    seeds = (np.array(1.0), np.array([0.5, -1.0, 2.0]))
    (value, h), grads = tape.value_and_grad(x, w, grad_outputs=seeds)
    assert tape._program is not None
    (expected, expected_h), expected_grads = general.value_and_grad(x, w, grad_outputs=seeds)
    np.testing.assert_array_equal(value.numpy(), expected.numpy())
    np.testing.assert_array_equal(h.numpy(), expected_h.numpy())
    for got, want in zip(grads, expected_grads):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    only_w = tape.value_and_grad(x, w, grad_outputs=seeds, argnums=1)[1]
    np.testing.assert_array_equal(only_w.numpy(), grads[1].numpy())
    for got, want in zip(tape.jacobian(x, w), general.jacobian(x, w)):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    path = tmp_path / "scalar.tape"
    tape.save(path)
    loaded = tg.load_tape(path)
    (again, _), again_grads = loaded.value_and_grad(x, w, grad_outputs=seeds)
    assert loaded._program is not None
    np.testing.assert_array_equal(again.numpy(), value.numpy())
    np.testing.assert_array_equal(again_grads[0].numpy(), grads[0].numpy())


@pytest.mark.parametrize("threads", [1, 2])
def test_a_batch_replay_of_a_scalar_tape_equals_one_replay_per_slice(threads):
    graph = workloads.graph_function(tg, 120)
    tape = tg.record(graph, np.arange(100.0))
    xs = np.random.default_rng(0).uniform(-2, 2, (7, 100))
    outputs, grads, failed = tape._replay_batch([xs], [True], np.ones(1), threads)
    assert tape._program is not None and failed == []
    for s in range(7):
        value, (grad,) = tape.value_and_grad(xs[s])
        np.testing.assert_array_equal(outputs[0][s], value.numpy())
        np.testing.assert_array_equal(grads[0][s], grad.numpy())


def test_vmap_of_grad_on_a_scalar_graph_equals_a_loop(monkeypatch):
    from tapegrad import _register
    from tapegrad.func import grad, vmap, vmap_stats

    built = []
    build = _register.build
    monkeypatch.setattr(_register, "build", lambda tape: built.append(build(tape)) or built[-1])
    graph = workloads.graph_function(tg, 60)
    xs = tg.tensor(np.random.default_rng(1).uniform(-2, 2, (5, 100)))
    batched = vmap(grad(graph))(xs)
    assert vmap_stats()["path"] != "eager"
    # vmap's recording also picks the slice out of the whole batch (a constant nothing reads):
    # the tape is still a register program.
    assert built and all(program is not None for program in built)
    for s in range(5):
        np.testing.assert_allclose(batched[s].numpy(), grad(graph)(xs[s]).numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_tutorial_chain_of_vectors_replays_to_eagers_bits(dtype):
    """Rows of three elements, each times a number: products whose number takes no gradient."""

    def chain(x):
        y = x * 2
        for _ in range(50):
            y = y * 1.001 - x / 3.0
        return y

    tape = tg.record(chain, np.array([0.1, 0.2, 0.3], dtype))
    x, v = np.array([0.3, -0.2, 0.1], dtype), np.array([0.1, 1.0, 0.0001], dtype)
    value, (grad,) = tape.value_and_grad(x, grad_outputs=v)
    assert tape._program is not None
    eager = tg.tensor(x, requires_grad=True)
    out = chain(eager)
    out.backward(tg.tensor(v))
    np.testing.assert_array_equal(value.numpy(), out.detach().numpy())
    np.testing.assert_array_equal(grad.numpy(), eager.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_runs_of_elementwise_instructions_replay_to_eagers_bits(dtype):
    """Rows of a few elements become runs (one instruction for a row's elements, and for rows
    chained register after register): products and quotients by a number, by another row, by
    one element that takes a gradient, forward and backward."""

    def program(x, w):
        y = x * 2.0
        y = y * w  # b steps, both take a gradient
        y = y / w
        y = y / 3.0
        y = y * w[0]  # one register with a gradient slot for every element
        for _ in range(20):
            y = y * 1.001  # runs across rows
        return y

    x, w = np.array([0.3, -0.2, 0.1, 0.7], dtype), np.array([1.5, -0.5, 2.0, 0.25], dtype)
    tape = tg.record(program, x, w)
    v = np.array([0.1, 1.0, 0.0001, -2.0], dtype)
    value, grads = tape.value_and_grad(x, w, grad_outputs=v)
    runs = tape._program
    assert runs is not None and len(runs.forward_runs) < len(runs.forward_ins) / 4
    assert len(runs.backward_runs) < len(runs.backward_ins) / 4
    inputs = [tg.tensor(a, requires_grad=True) for a in (x, w)]
    out = program(*inputs)
    out.backward(tg.tensor(v))
    np.testing.assert_array_equal(value.numpy(), out.detach().numpy())
    for grad, eager in zip(grads, inputs):
        np.testing.assert_array_equal(grad.numpy(), eager.grad.numpy())


def test_a_run_splits_where_its_strides_change_and_means_its_instructions():
    from tapegrad import _register
    from tapegrad._kernels import register

    mul, div = _register.MUL, _register.DIV
    plain = np.array(
        [
            [mul, 10, 0, 5], [mul, 11, 1, 5],  # b fixed
            [mul, 12, 2, 6], [mul, 13, 3, 7],  # then stepping: a new run
            [div, 14, 10, 4], [div, 15, 11, 4],  # another code
            [mul, 19, 13, 4], [mul, 18, 12, 4], [mul, 17, 11, 4],  # counting down
            [mul, 16, 17, 4],  # reads the run before it
        ],
        np.int64,
    )  # fmt: skip
    params = np.arange(len(plain), dtype=np.float64)
    merged, merged_params = _register.runs(plain, params, (mul, div))
    count = merged[:, 0] >> register.COUNT_SHIFT
    two, three = 1 << register.COUNT_SHIFT, 2 << register.COUNT_SHIFT  # (count - 1) in the high bits
    assert merged[:, 0].tolist() == [
        mul | register.RUN | register.FIXED_B | two,
        mul | register.RUN | two,
        div | register.RUN | register.FIXED_B | two,
        mul | register.RUN | register.DESCENDING | register.FIXED_B | three,
        mul,
    ] and (count + 1).sum() == len(plain)
    assert merged_params.tolist() == [0.0, 2.0, 4.0, 6.0, 9.0]
    rng = np.random.default_rng(0)
    start = rng.uniform(0.5, 2.0, 20)
    one_by_one, by_runs = start.copy(), start.copy()
    empty, scratch = np.zeros(0, np.int64), np.zeros(register.MAX_GROUP)
    register.forward(plain, empty, np.zeros(0), params, one_by_one, scratch)
    register.forward(merged, empty, np.zeros(0), merged_params, by_runs, scratch)
    np.testing.assert_array_equal(by_runs, one_by_one)


def test_an_output_that_takes_no_gradient_is_seeded_harmlessly():
    """A second output computed from detached values (or from constants): its seed reaches no
    input. (The general interpreter's backward writes such a seed at a slot index of -1.)"""

    def fn(x, w):
        a, b, c = x
        return (a * w[0] + b * w[1]) * c - a / w[0], (x.detach() * 3.0).sum() + tg.ones(2, dtype=tg.float64)

    x, w = np.array([0.3, -0.5, 1.2]), np.array([1.5, 0.7])
    tape = tg.record(fn, x, w)
    (value, other), grads = tape.value_and_grad(x, w, grad_outputs=(np.array(1.0), np.ones(2)))
    assert tape._program is not None
    inputs = [tg.tensor(x, requires_grad=True), tg.tensor(w, requires_grad=True)]
    fn(*inputs)[0].backward()
    for got, eager in zip(grads, inputs):
        np.testing.assert_array_equal(got.numpy(), eager.grad.numpy())
    np.testing.assert_allclose(other.numpy(), np.full(2, 3.0 * x.sum() + 1.0), rtol=1e-15)


# -- the batch replay by blocks of lanes ---------------------------------------------------------


def _mixed(x, w):
    """Every instruction kind, softmaxes of 9 (normalization.largest's eight maxima, then one
    more) and 3 elements, a softplus past its threshold, two outputs."""
    a = list(x)
    h = F.softmax(tg.stack(a[:9]) * w[0], dim=0)
    g = F.softmax(tg.stack([a[9] * w[1], a[10], a[11]]), dim=0)
    s = F.softplus(h[0] * 30.0 - g[1]) + F.softplus(a[0] * 40.0)
    t = (a[1] / (a[2] * a[2] + 1.0)).tanh() + (a[3] * w[2]).sigmoid() + (a[4] * a[4] + 0.5).sqrt().log() + a[5].exp()
    r = (a[6] - a[7]).relu() + a[8].detach() * a[0] + (a[2] / w[1]) * 2.0
    m = tg.stack([s, t, r]).mean()
    return m * g.sum() + h[8] - w[2] / 3.0, tg.stack([m, g[0] * h[1], tg.stack(a[3:7]).sum()])


def _assert_same(got, want, exact_nan=True):
    got, want = np.asarray(got), np.asarray(want)
    if exact_nan:
        assert got.tobytes() == want.tobytes()
    else:  # NaN where the slice gives NaN, the same bits elsewhere
        np.testing.assert_array_equal(got, want)


def _per_slice_results(tape, xs, w, seeds, argnums):
    values, grads = [], []
    for x in xs:
        outs, slice_grads = tape.value_and_grad(x, w, grad_outputs=seeds, argnums=argnums)
        values.append([out.numpy() for out in outs])
        grads.append([g.numpy() for g in (slice_grads if isinstance(slice_grads, tuple) else (slice_grads,))])
    return values, grads


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", [1, 3, 17, 1024])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_blocks_of_lanes_give_each_slice_the_bits_of_its_own_replay(dtype, size, threads):
    rng = np.random.default_rng(size)
    w = np.array([1.3, -0.8, 0.6], dtype)
    tape = tg.record(_mixed, rng.uniform(-1, 1, 12).astype(dtype), w)
    xs = rng.uniform(-1.5, 1.5, (size, 12)).astype(dtype)
    seeds = (np.array(1.0), np.array([0.5, -2.0, 0.25]))
    flat_seeds = np.concatenate([np.ravel(seed) for seed in seeds])
    for argnums, wanted in ((None, (0, 1)), (0, (0,)), (1, (1,))):
        outputs, grads, failed = tape._replay_batch([xs, w], [True, False], flat_seeds, threads, argnums)
        assert tape._program is not None and failed == []
        values, slice_grads = _per_slice_results(tape, xs, w, seeds, argnums)
        for position in range(2):
            _assert_same(outputs[position], np.stack([v[position] for v in values]))
        for position in range(2):
            if position in wanted:  # gradients of inputs not asked for are not made
                _assert_same(grads[position], np.stack([g[wanted.index(position)] for g in slice_grads]))
            else:
                assert grads[position] is None
        forward_only, no_grads, _ = tape._replay_batch([xs, w], [True, False], None, threads)
        assert no_grads == []
        for got, want in zip(forward_only, outputs):
            _assert_same(got, want)


@_COMPILED_BITS
@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value", "ignore:divide by zero")
@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_random_programs_by_lanes_equal_one_replay_per_slice(seed):
    fn = _random_program(seed, seed % 2 == 0)
    rng = np.random.default_rng(2000 + seed)
    for dtype in (np.float64, np.float32):
        tape = tg.record(fn, rng.uniform(-1.5, 1.5, 5).astype(dtype), rng.uniform(-1.5, 1.5, 3).astype(dtype))
        shape = tape.outputs[0].shape
        weights = np.linspace(0.5, 1.5, max(1, int(np.prod(shape)))).reshape(shape)
        xs = rng.uniform(-1.5, 1.5, (19, 5)).astype(dtype)
        ws = rng.uniform(-1.5, 1.5, (19, 3)).astype(dtype)
        # Slices of special values: overflows, NaN and signed zeros take the same path per lane.
        xs[3] = [np.inf, -np.inf, np.nan, 0.0, -0.0]
        ws[4] = [-0.0, 1e30, -1e30]
        xs[5, :2] = [700.0, -700.0]
        outputs, grads, _ = tape._replay_batch([xs, ws], [True, True], weights.reshape(-1), 2)
        assert tape._program is not None
        for s in range(19):
            value, slice_grads = tape.value_and_grad(xs[s], ws[s], grad_outputs=weights.astype(dtype))
            _assert_same(outputs[0][s], value.numpy(), exact_nan=False)
            for got, want in zip(grads, slice_grads):
                _assert_same(got[s], want.numpy(), exact_nan=False)


def test_vmap_of_grad_with_argnums_and_aux_by_lanes_equals_it_slice_by_slice(monkeypatch):
    from tapegrad import _register
    from tapegrad.func import grad, vmap, vmap_stats

    rng = np.random.default_rng(5)
    xs = tg.tensor(rng.uniform(-1.5, 1.5, (37, 12)))
    w = tg.tensor([1.3, -0.8, 0.6])
    per_sample = vmap(grad(_mixed, argnums=(0, 1), has_aux=True), in_dims=(0, None))
    (gx, gw), aux = per_sample(xs, w)
    assert vmap_stats()["path"] == "grad-replay"
    monkeypatch.setattr(_register, "_sum_plans", lambda program: None)
    (sx, sw), saux = per_sample(xs, w)
    for got, want in ((gx, sx), (gw, sw), (aux, saux)):
        _assert_same(got.numpy(), want.numpy())
    for s in range(0, 37, 6):  # and what eager evaluation gives, to rounding
        (ex, ew), eaux = grad(_mixed, argnums=(0, 1), has_aux=True)(xs[s], w)
        np.testing.assert_allclose(gx[s].numpy(), ex.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gw[s].numpy(), ew.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(aux[s].numpy(), eaux.numpy(), rtol=1e-12, atol=1e-14)


def test_without_sum_plans_the_batch_runs_slice_by_slice_to_the_same_bits(monkeypatch):
    from tapegrad import _register

    tape = tg.record(_mixed, np.linspace(-1, 1, 12), np.array([1.3, -0.8, 0.6]))
    xs = np.random.default_rng(3).uniform(-1.5, 1.5, (21, 12))
    w = np.array([1.3, -0.8, 0.6])
    seeds = np.array([1.0, 0.5, -2.0, 0.25])
    by_lanes = tape._replay_batch([xs, w], [True, False], seeds, 2)
    blocks = []
    monkeypatch.setattr(_register, "_sum_plans", lambda program: None)
    monkeypatch.setattr(_register, "_blocking", lambda *args: blocks.append(args))
    by_slices = tape._replay_batch([xs, w], [True, False], seeds, 2)
    assert blocks == []  # the slice-by-slice kernel ran
    for got, want in zip(by_lanes[0] + by_lanes[1], by_slices[0] + by_slices[1]):
        _assert_same(got, want)


@_COMPILED_BITS
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_sum_plan_is_found_for_every_softmax_width(dtype):
    """On this machine's LLVM some candidate reproduces the one-slice kernels' sums for every
    width a register program's softmax can have; where none did, vmap would fall back to the
    slow slice-by-slice kernel."""
    from tapegrad import _register

    tg.record(lambda x: F.softmax(x, dim=0).sum() * x[0], np.ones(9, dtype)).value_and_grad(np.ones(9, dtype))
    for n in range(1, _register.MAX_ROW_ELEMENTS + 1):
        plans = _register._find_plans(np.dtype(dtype), n)
        assert plans is not None, n
        for plan in plans:  # a tree: every term and the start read once, every step's row once
            assert plan.shape == (n, 3)
            read = plan[:, 1:].reshape(-1).tolist()
            assert sorted(read) == list(range(2 * n))  # the last step's row is the sum
            assert plan[:, 0].tolist() == list(range(n + 1, 2 * n + 1))


def test_vectorized_orders_are_left_to_right_or_strided_lanes_folded_by_halves():
    from tapegrad import _register

    assert _register._vectorized_order(3, 1, 1)[:, 1:].tolist() == [[3, 0], [4, 1], [5, 2]]
    # Four lanes over 0..3 (the zero start in lane 0), folded 0+2, 1+3, then the two.
    assert _register._vectorized_order(4, 4, 1)[:, 1:].tolist() == [[4, 0], [5, 2], [1, 3], [6, 7]]
    # Two parts of two lanes over 0..7, and a tail term 8 added last.
    order = _register._vectorized_order(9, 2, 2)
    assert order[-1, 1:].tolist() == [order[-2, 0], 8]


@pytest.mark.parametrize("most", [64, 7, 5, 1])
@pytest.mark.parametrize(
    ("size", "threads"), [(0, 2), (1, 1), (1, 2), (3, 2), (17, 2), (100, 2), (1024, 2), (1024, 1), (5000, 3)]
)
def test_blocks_cover_the_batch_with_at_most_max_lanes_each(size, threads, most):
    from tapegrad import _register

    lanes, blocks = _register._blocking(size, threads, most)
    assert 1 <= lanes <= min(most, _register.MAX_LANES)
    if size == 0:
        assert blocks == 0
        return
    assert (blocks - 1) * lanes < size <= blocks * lanes  # no block empty
    assert blocks >= min(threads, size)  # work for every thread


def test_a_recording_of_the_same_structure_reuses_the_rewrite_with_its_own_values(monkeypatch):
    """vmap records its function on every call; the rewrite of an identical structure is kept,
    but the values of the tensors the function closes over are the new recording's."""
    from tapegrad import _register
    from tapegrad.func import grad, vmap

    rewrites = []
    rewrite = _register._Rewrite
    monkeypatch.setattr(_register, "_Rewrite", lambda *args: rewrites.append(1) or rewrite(*args))
    monkeypatch.setattr(_register, "_REWRITES", type(_register._REWRITES)())
    closed = [tg.tensor([0.5, -1.5, 2.0], dtype=tg.float64)]

    def fn(x):
        c = closed[0]
        h = F.softmax(tg.stack([x[0] * c[0], x[1], x[2] * c[1]]), dim=0)
        return (h[0] * c[2] + F.softplus(x[3] - c[1])) * x[4] / (x[5] * x[5] + 1.0)

    xs = tg.tensor(np.random.default_rng(0).uniform(-1, 1, (6, 6)))
    first = vmap(grad(fn))(xs)
    closed[0] = tg.tensor([-0.25, 3.0, 0.75], dtype=tg.float64)  # the same graph, other constants
    second = vmap(grad(fn))(xs)
    assert len(rewrites) == 1
    for s in range(6):
        tape = tg.record(fn, xs[s].numpy())
        _, (expected,) = tape.value_and_grad(xs[s].numpy())
        _assert_same(second[s].numpy(), expected.numpy())
    assert not np.array_equal(first.numpy(), second.numpy())
    vmap(grad(lambda x: fn(x) * 2.0))(xs)  # another structure: rewritten
    assert len(rewrites) == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_selects_its_gradient_in_the_register_program(dtype):
    """relu's gradient is a select, as PyTorch's threshold_backward and the general rule
    (``gate``): an infinite incoming gradient where the result is 0 gives 0, not NaN, one slice
    at a time and by blocks of lanes."""
    weights = np.array([np.inf, np.inf, 1.0, -np.inf], dtype)

    def f(x):
        y = tg.relu(x) * tg.tensor(weights)
        for _ in range(6):  # enough rows for a register program
            y = y + x * 0.0
        return y.sum()

    x = np.array([-1.0, 0.0, 2.0, 3.0], dtype)
    tape = tg.record(f, x)
    _, (gradient,) = tape.value_and_grad(x)
    assert tape._scalar_program() is not None
    expected = np.array([0.0, 0.0, 1.0, -np.inf], dtype)
    np.testing.assert_array_equal(gradient.numpy(), expected)
    batch = np.stack([x, -x, x])
    per_slice = tg.func.vmap(tg.func.grad(f))(tg.tensor(batch))
    np.testing.assert_array_equal(per_slice.numpy()[0], expected)
    np.testing.assert_array_equal(per_slice.numpy()[1], np.array([np.inf, 0.0, 0.0, 0.0], dtype))
