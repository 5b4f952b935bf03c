"""Tape files are data: saving never pickles, loading never runs code from the file, and no
damaged or hostile file gets past the validator to crash the interpreter."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import _tape_file

from . import mutate_tapes


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return mutate_tapes.saved_tapes(str(tmp_path_factory.mktemp("tapes")))


def test_a_saved_tape_replays_as_the_original(saved, tmp_path):
    for (name, function, example), (path, _) in zip(mutate_tapes.programs(), saved):
        original = tg.record(function, example)
        loaded = tg.load_tape(path)
        value, grads = loaded.value_and_grad(example * 0.9)
        want_value, want_grads = original.value_and_grad(example * 0.9)
        np.testing.assert_array_equal(np.asarray(value), np.asarray(want_value), err_msg=name)
        for got, want in zip(grads, want_grads):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=name)


def test_the_file_holds_no_pickle(saved):
    for path, _ in saved:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                data = archive.read(member)
                assert data[:6] == b"\x93NUMPY", member  # every member is a plain .npy array
                assert b"|O" not in data[:128], member  # and none holds Python objects


def _arrays_and_header(path):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name].copy() for name in archive.files}
    return arrays, json.loads(arrays.pop("header").tobytes())


def _write(path, arrays, header, checksum=True):
    if checksum:
        header = dict(header, sha256=_tape_file._digest(arrays))
    np.savez(path, **arrays, header=np.frombuffer(json.dumps(header).encode(), np.uint8))


def test_a_pickle_is_not_a_tape_file(tmp_path):
    path = tmp_path / "evil.tape"
    path.write_bytes(pickle.dumps(tg.record(lambda a: a.sum(), np.zeros(2))))
    with pytest.raises(ValueError, match="is not a tapegrad tape file"):
        tg.load_tape(path)


def test_another_format_version_names_both(saved, tmp_path):
    arrays, header = _arrays_and_header(saved[0][0])
    _write(tmp_path / "new.npz", arrays, dict(header, format_version=99, tapegrad_version="9.0"))
    with pytest.raises(ValueError, match=r"format version 99 \(tapegrad '9.0'\); this tapegrad reads version 1"):
        tg.load_tape(tmp_path / "new.npz")


def test_an_edited_array_fails_the_checksum(saved, tmp_path):
    arrays, header = _arrays_and_header(saved[0][0])
    arrays["values64"][0] += 1
    _write(tmp_path / "edited.npz", arrays, header, checksum=False)
    with pytest.raises(ValueError, match="do not match its checksum"):
        tg.load_tape(tmp_path / "edited.npz")


# The two reported in the issue: an input id of 10^6 crashed the process; a changed opcode
# silently gave another value. Now: the validator names the row and field; the opcode, stored
# with the op names, is checked against the shapes of what it reads.
def test_an_input_id_out_of_range_names_the_row_and_field(saved, tmp_path):
    arrays, header = _arrays_and_header(saved[0][0])
    arrays["rows"][2, 1] = 10**6
    _write(tmp_path / "bad.npz", arrays, header)
    with pytest.raises(ValueError, match=r"row 2, in0: 1000000 is not an earlier row"):
        tg.load_tape(tmp_path / "bad.npz")


@pytest.mark.parametrize("flags, message", [(4, r"iparam: mm flags 4 are not 0 to 3"), (0, r"layout: mm of")])
def test_a_products_transpose_flags_are_checked(saved, tmp_path, flags, message):
    """``a @ a.t()`` replays with the transpose read in place (the mm row's iparam bit 2); a file
    whose flags are out of range, or no longer fit the operands' shapes, is refused."""
    path = dict(zip([name for name, _, _ in mutate_tapes.programs()], [p for p, _ in saved]))["matmul"]
    arrays, header = _arrays_and_header(path)
    products = np.flatnonzero(arrays["rows"][:, 3] == 2)
    assert len(products) == 1
    arrays["rows"][products[0], 3] = flags
    _write(tmp_path / "bad.npz", arrays, header)
    with pytest.raises(ValueError, match=rf"row {products[0]}, {message}"):
        tg.load_tape(tmp_path / "bad.npz")


def test_a_guard_row_missing_from_the_header_is_refused(tmp_path):
    """A failing replay reports a guard by its header entry: a file whose header lost one (its
    checksum recomputed) raised KeyError at the replay that failed it."""
    tape = tg.record(lambda x: x * 2 if x.sum() > 0 else -x, np.ones(2))
    tape.save(tmp_path / "guarded.tape")
    arrays, header = _arrays_and_header(tmp_path / "guarded.tape")
    assert header["guards"]
    _write(tmp_path / "unguarded.npz", arrays, dict(header, guards=[]))
    with pytest.raises(ValueError, match=r"invalid tape: the guard row \d+ has no guard in the header"):
        tg.load_tape(tmp_path / "unguarded.npz")


def test_opcodes_are_mapped_by_name(saved, tmp_path):
    """A file written when the table numbered ops differently loads to the same ops."""
    path, example = saved[0]
    arrays, header = _arrays_and_header(path)
    names = header["op_names"]
    order = list(reversed(range(len(names))))  # renumber every op
    renumbered = [names[k] for k in order]
    position = {name: k for k, name in enumerate(renumbered)}
    codes = arrays["rows"][:, 0]
    arrays["rows"][:, 0] = [position[names[c & 0xFFFF]] | (c & 0x10000) for c in codes]
    _write(tmp_path / "renumbered.npz", arrays, dict(header, op_names=renumbered))
    np.testing.assert_array_equal(
        np.asarray(tg.load_tape(tmp_path / "renumbered.npz")(example)), np.asarray(tg.load_tape(path)(example))
    )


def test_unpickling_validates_too():
    tape = tg.record(lambda a: (a * 2).sum(), np.arange(3.0))
    state = tape.__getstate__()
    state["rows"] = state["rows"].copy()
    state["rows"][1, 1] = 5  # an input that is not an earlier row
    broken = tg.Tape.__new__(tg.Tape)
    with pytest.raises(ValueError, match="row 1, in0"):
        broken.__setstate__(state)
    assert float(pickle.loads(pickle.dumps(tape))(np.ones(3))) == 6.0


def test_mutated_files_raise_or_replay_and_never_crash():
    """The seeded, short form of ``python -m tests.mutate_tapes`` (the long one: thousands)."""
    counts = mutate_tapes.run(count=300, seed=12)
    assert counts["crashed"] == 0, counts
    assert not [key for key in counts if key.startswith("unclear")], counts
    assert counts["raised"] > 100 and counts["replayed"] > 10, counts  # both outcomes exercised


def test_a_loaded_tape_checks_its_integer_arithmetic_as_the_recorded_one(tmp_path):
    tape = tg.record(lambda x, i: x * (i * i).double(), np.ones(2), np.array([3, 4], np.int32))
    tape.save(tmp_path / "squares.tape")
    loaded = tg.load_tape(tmp_path / "squares.tape")
    assert loaded.integer_rows == tape.integer_rows
    np.testing.assert_array_equal(loaded(np.ones(2), np.array([5, 6], np.int32)).numpy(), [25.0, 36.0])
    with pytest.raises(tg.GuardError, match="mul of int32 values"):
        loaded(np.ones(2), np.array([65536, 2], np.int32))
    arrays, header = _arrays_and_header(tmp_path / "squares.tape")
    _write(tmp_path / "bad.npz", arrays, dict(header, integer_rows=[[0, "float64"]]))
    with pytest.raises(ValueError, match="integer row 0"):
        tg.load_tape(tmp_path / "bad.npz")


def test_a_products_operand_periods_are_refused_in_a_file(tmp_path):
    """An eager product by a broadcast row reads the row repeated (its iparam holds the period,
    ``_record._repeated_operand``); a recorded tape never does, so a file whose product claims a
    period is refused rather than read by that rule."""
    tape = tg.record(lambda x, w: (x * w).sum(), np.ones((4, 8)), np.ones(8))
    tape.save(tmp_path / "product.tape")
    arrays, header = _arrays_and_header(tmp_path / "product.tape")
    names = header["op_names"]
    products = [r for r, code in enumerate(arrays["rows"][:, 0]) if names[code & 0xFFFF] == "mul"]
    assert len(products) == 1 and arrays["rows"][products[0], 3] == 0
    arrays["rows"][products[0], 3] = 8
    _write(tmp_path / "bad.npz", arrays, header)
    with pytest.raises(ValueError, match=rf"row {products[0]}, iparam: a mul in a recorded tape"):
        tg.load_tape(tmp_path / "bad.npz")


def _relabelled(tmp_path, function, example, name, change):
    path = tmp_path / "original.tape"
    tg.record(function, example).save(str(path))
    arrays, header = _arrays_and_header(path)
    names = header["op_names"]
    row = next(r for r, code in enumerate(arrays["rows"][:, 0]) if names[code & 0xFFFF] == name)
    change(arrays, header, row)
    mutated = tmp_path / "mutated.tape"
    with open(mutated, "wb") as handle:  # (a path without .npz gets one from numpy)
        _write(handle, arrays, header)
    return mutated


def test_a_cast_between_rows_of_one_arena_never_writes_past_it(tmp_path):
    """A float64 row relabelled a cast of a float64 one passed the loader (casts between
    integer rows, held in float64 alike, are legitimate); the backward's cast added numel values
    into the other, empty, arena: a heap overflow that killed the process."""
    n = 200_000

    def to_cast(arrays, header, row):
        arrays["rows"][row, 0] = (arrays["rows"][row, 0] & 0x10000) | header["op_names"].index("cast")

    mutated = _relabelled(tmp_path, lambda x: (x.sin() * 2).sum(), np.ones(n), "sin", to_cast)
    child = (
        "import numpy as np, tapegrad as tg\n"
        f"t = tg.load_tape({str(mutated)!r})\n"
        f"value, (grad,) = t.value_and_grad(np.ones({n}))\n"
        "print(float(value), float(grad[:3].sum()))\n"
        "import gc; gc.collect()\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["400000.0", "6.0"]  # the cast passes the gradient on as it is


def test_a_comparison_row_of_another_dtype_is_refused(tmp_path):
    # Its kernel writes the float64 arena: held in float32, it overwrote another row (replay: 0.0)
    n = 64

    def to_float32(arrays, header, row):
        arrays["rows"][row, 4] = arrays["rows"][0, 4]  # the float32 input's layout (same shape)
        arrays["values32"] = np.zeros(len(arrays["values32"]) + n, np.float32)  # arenas that fit it
        arrays["values64"] = np.zeros(len(arrays["values64"]) - n, np.float64)

    x = np.linspace(-1, 1, n, dtype=np.float32)
    mutated = _relabelled(tmp_path, lambda a: ((a > 0).float() * a).sum(), x, "gt", to_float32)
    with pytest.raises(ValueError, match="a comparison's result is held in float64"):
        tg.load_tape(str(mutated))


def test_a_truth_guard_on_more_than_one_element_is_refused(tmp_path):
    """``bool()`` reads one element. A file whose truth guard read a whole (m, 1) comparison
    passed the loader, and the replay's check of the comparison's rounding walked to its matrix
    product and read m * k elements of a k-element operand: far past the arena (a crash at
    m = k = 2000)."""

    def f(x, w):
        y = x @ w
        return y.sum() if (y > 0)[0] else y.sum() * 2

    path = tmp_path / "guarded.tape"
    tg.record(f, np.ones((3, 4)), np.ones((4, 1))).save(str(path))
    arrays, header = _arrays_and_header(path)
    names = header["op_names"]
    rows = arrays["rows"]
    guard = next(r for r, code in enumerate(rows[:, 0]) if names[code & 0xFFFF] == "guard")
    comparison = next(r for r, code in enumerate(rows[:, 0]) if names[code & 0xFFFF] == "gt")
    rows[guard, 1] = comparison  # the whole comparison instead of its first element
    _write(tmp_path / "bad.npz", arrays, header)
    with pytest.raises(ValueError, match=rf"row {guard}, in0: a truth guard reads one element"):
        tg.load_tape(tmp_path / "bad.npz")


def test_a_loaded_tape_gives_integer_and_bool_outputs_in_their_dtypes(tmp_path):
    """The file did not keep the outputs' dtypes (a pickle did): argmax came back as 1.0 and a
    mask as 0.0/1.0 in float64."""
    x = np.array([1.0, 3.0, 2.0], np.float32)
    tape = tg.record(lambda x: (x.argmax(), x > 1.5, x * 2), x)
    tape.save(tmp_path / "t.tape")
    loaded = tg.load_tape(tmp_path / "t.tape")
    for replayed in (loaded(x), pickle.loads(pickle.dumps(loaded))(x)):
        assert [o.dtype for o in replayed] == [tg.int64, tg.bool, tg.float32]
        assert [o.tolist() for o in replayed] == [1, [False, True, True], [2.0, 6.0, 4.0]]
    arrays, header = _arrays_and_header(tmp_path / "t.tape")
    _write(tmp_path / "bad.npz", arrays, dict(header, output_dtypes=["int64", "object", None]))
    with pytest.raises(ValueError, match="an output dtype 'object'"):
        tg.load_tape(tmp_path / "bad.npz")


def test_a_loaded_tape_keeps_the_refusal_of_a_value_changed_in_place(tmp_path):
    """Eager, and the recorded tape, refuse the backward of a row whose saved value was changed
    in place; pickled or loaded from a file, the tape returned gradients of other values."""

    def f(x):
        y = x.exp()
        z = y * y
        y.mul_(2)  # changes the value z's backward saved
        return z.sum() + y.sum()

    x = np.array([0.5, 1.0, 2.0], np.float32)
    tape = tg.record(f, x)
    tape.save(tmp_path / "t.tape")
    for copy in (tape, pickle.loads(pickle.dumps(tape)), tg.load_tape(tmp_path / "t.tape")):
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            copy.value_and_grad(x)


def test_a_row_over_an_input_marked_without_gradient_sends_it_none(tmp_path):
    """A file marking an input "no gradient" while the strided view reading it still wanted one:
    the view's rule wrote its gradient into the input's missing slot, that is over the arena's
    start (other rows' gradients; 4 million elements past a 4,001-element arena killed the
    process). Rows reading no row that takes a gradient are marked on loading, as recorded."""
    n = 4_000

    def no_gradient_for_the_input(arrays, header, row):
        arrays["rows"][0, 0] |= 0x10000  # the input row (0); ``row`` is the slice reading it

    mutated = _relabelled(tmp_path, lambda a: (a[::1000] * 2).sum(), np.ones(n), "slice", no_gradient_for_the_input)
    child = (
        "import numpy as np, tapegrad as tg\n"
        f"t = tg.load_tape({str(mutated)!r})\n"
        f"value, (grad,) = t.value_and_grad(np.arange({n}, dtype=np.float64))\n"
        "print(float(value), float(np.abs(grad).sum()))\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(2.0 * (0 + 1000 + 2000 + 3000)), "0.0"]
