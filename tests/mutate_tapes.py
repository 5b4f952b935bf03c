"""Mutation test of tape files: damaged and hostile files must raise a clear error or replay, and
never kill the process.

    python -m tests.mutate_tapes --count 5000 [--seed 0]

Saved tapes of several programs (elementwise, matrix products, views, joins, picks, reductions,
guards, an MLP step) are mutated: random bytes flipped, the file truncated, and single fields of
the rows, layouts, dims, aux, input and output ids set to random and boundary values, then
written back with a recomputed checksum, so that they reach the validator rather than stopping at
the checksum; header fields too. Each load-and-replay runs in a worker process; a worker that
dies by a signal is a crash, counted, and a new worker goes on after it. Prints the counts.
``tests/test_tape_file.py`` runs a seeded, shorter version.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

# Exceptions a user can read and act on; anything else is counted as unclear.
CLEAR = ("ValueError", "TypeError", "RuntimeError", "GuardError", "NotImplementedError", "FileNotFoundError")
BOUNDARY = (0, 1, -1, 2, -2, 7, 255, 1 << 16, (1 << 16) + 1, 1 << 31, -(1 << 31), 1 << 40, (1 << 62), -(1 << 63))


def programs() -> list:
    import tapegrad as tg
    import tapegrad.nn.functional as F  # noqa: N812 - PyTorch's convention

    lstm = tg.nn.LSTM(2, 3, dtype=tg.float64)  # (made outside the recordings: its draws)
    for index, parameter in enumerate(lstm.parameters()):  # the same values at every call
        parameter.data = tg.tensor(np.linspace(-0.5, 0.5, parameter.numel()).reshape(tuple(parameter.shape)) * index)
    return [
        ("elementwise", lambda a: (a.sin() * a + a.exp().sqrt() - 2**a).sum(), np.arange(5.0)),
        ("matmul", lambda a: (a @ a.t()).softmax(1).sum(), np.ones((3, 4), np.float32)),
        ("views", lambda a: (a.t()[1:, ::2] * 3).reshape(-1).sum(), np.arange(12.0).reshape(3, 4)),
        ("joins", lambda a: tg.cat([a[1:], a[:2] * 2]).cumsum(0).max(), np.arange(6.0)),
        ("gathers", lambda a: a[tg.tensor([0, 2, 2])].sum() + a.gather(0, tg.tensor([1, 1])).sum(), np.arange(4.0) + 1),
        (
            "reductions",
            lambda a: a.var(1).sum() + a.norm() + a.logsumexp(0).sum() + a.prod(),
            np.arange(1.0, 7.0).reshape(2, 3),
        ),
        ("guards", lambda a: a.sum() * 2 if a.sum() > 0 else a.sum(), np.arange(4.0)),
        ("mlp", lambda a: F.cross_entropy((a @ tg.ones(4, 3)).tanh(), tg.tensor([0, 2])), np.ones((2, 4), np.float32)),
        (  # labels computed on the tape: an nll_targets row reading them at each replay
            "labels",
            lambda a: F.cross_entropy(a[:, :3] * 2, (a[:, 3] > 0.5).long() + (a[:, 0] > 0.5).long()),
            np.array([[0.1, 0.2, 0.3, 0.9], [0.7, 0.1, 0.2, 0.1]], np.float32),
        ),
        # the fused rows: conv2d (its parameters in aux), batch_norm, an LSTM direction
        (
            "convolution",
            lambda a: (
                F.conv2d(a.reshape(1, 2, 3, 3), tg.ones(3, 2, 2, 2, dtype=a.dtype), padding=1, stride=(2, 1))
                .tanh()
                .sum()
            ),
            np.arange(18.0) / 10,
        ),
        (
            "batch_norm",
            lambda a: (
                F.batch_norm(a.reshape(3, 2, 2), None, None, tg.ones(2, dtype=a.dtype), None, training=True).sin().sum()
            ),
            np.arange(12.0) / 7,
        ),
        ("lstm", lambda a: lstm(a.reshape(4, 1, 2))[0].sum(), np.arange(8.0) / 5),
    ]


def saved_tapes(directory: str) -> list:
    """(path, example input) of each program's saved tape."""
    import tapegrad as tg

    saved = []
    for name, function, example in programs():
        path = os.path.join(directory, f"{name}.npz")
        tg.record(function, example).save(path)
        saved.append((path, example))
    return saved


def _rewrite(arrays: dict, header: dict) -> bytes:
    from tapegrad import _tape_file

    header = dict(header, sha256=_tape_file._digest(arrays))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, header=np.frombuffer(json.dumps(header).encode(), np.uint8))
    return buffer.getvalue()


def mutate(original: bytes, rng: np.random.Generator) -> bytes:
    """One mutation of a tape file's bytes."""
    kind = rng.integers(6)
    if kind == 0:  # flip bytes
        data = bytearray(original)
        for _ in range(rng.integers(1, 9)):
            data[rng.integers(len(data))] ^= int(rng.integers(1, 256))
        return bytes(data)
    if kind == 1:  # truncate
        return original[: rng.integers(len(original))]
    with np.load(io.BytesIO(original), allow_pickle=False) as archive:
        arrays = {name: archive[name].copy() for name in archive.files}
    header = json.loads(arrays.pop("header").tobytes())
    if kind == 5:  # a header field
        field = rng.choice(["op_names", "input_specs", "guards", "names", "format_version", "single_output"])
        if field == "op_names":
            names = header["op_names"]
            i, j = rng.integers(len(names), size=2)
            names[i], names[j] = names[j], names[i]
        elif field == "input_specs" and header["input_specs"]:
            spec = header["input_specs"][0]
            spec[0] = [int(rng.choice(BOUNDARY)) for _ in range(rng.integers(0, 3))]
        elif field == "guards":
            header["guards"].append({"row": int(rng.integers(-2, 40)), "kind": "x", "where": "y", "truth": True})
        elif field == "format_version":
            header["format_version"] = int(rng.choice(BOUNDARY))
        else:
            header[field] = None
        return _rewrite(arrays, header)
    # one integer field of the rows or tables, to a random or boundary value
    name = rng.choice(["rows", "rows", "rows", "layouts", "dims", "aux", "input_rows", "output_rows"])
    target = arrays[name]
    if target.size == 0:
        return _rewrite(arrays, header)
    flat = target.reshape(-1)
    index = rng.integers(flat.size)
    if rng.random() < 0.5:
        flat[index] = int(rng.choice(BOUNDARY))
    else:
        flat[index] = int(flat[index]) + int(rng.integers(-3, 4))
    return _rewrite(arrays, header)


_WORKER = """
import sys, traceback
import numpy as np
import tapegrad as tg
for line in sys.stdin:
    path, example = line.split()
    print("start", flush=True)
    try:
        tape = tg.load_tape(path)
        x = np.load(example)
        tape.value_and_grad(x)
        tape(x * 0.5)
        print("replayed", flush=True)
    except Exception as error:
        print("raised", type(error).__name__, flush=True)
"""


def run(count: int, seed: int, keep: str | None = None) -> collections.Counter:
    """Counts of ``replayed``, ``raised`` (clear errors), ``unclear`` (other exceptions, by class)
    and ``crashed`` over ``count`` mutated files."""
    rng = np.random.default_rng(seed)
    counts = collections.Counter()
    with tempfile.TemporaryDirectory() as directory:
        tapes = saved_tapes(directory)
        originals = []
        for k, (path, example) in enumerate(tapes):
            example_path = os.path.join(directory, f"example{k}.npy")
            np.save(example_path, example)
            with open(path, "rb") as handle:
                originals.append((handle.read(), example_path))
        jobs = []
        for number in range(count):
            original, example_path = originals[rng.integers(len(originals))]
            path = os.path.join(directory, f"mutant{number}.npz")
            with open(path, "wb") as handle:
                handle.write(mutate(original, rng))
            jobs.append(f"{path} {example_path}\n")
        done = 0
        while done < len(jobs):
            worker = subprocess.run(
                [sys.executable, "-c", _WORKER], input="".join(jobs[done:]), capture_output=True, text=True
            )
            lines = worker.stdout.splitlines()
            for line in lines:
                if line.startswith("replayed"):
                    counts["replayed"] += 1
                elif line.startswith("raised"):
                    kind = line.split()[1]
                    counts["raised" if kind in CLEAR else f"unclear {kind}"] += 1
            done += sum(line == "start" for line in lines)
            if worker.returncode != 0:  # died on the job it had started
                counts["crashed"] += 1
                crashed = jobs[max(done - 1, 0)].split()[0]
                print(f"crash (exit {worker.returncode}) on {os.path.basename(crashed)}", file=sys.stderr)
                if keep:
                    os.makedirs(keep, exist_ok=True)
                    shutil.copy(crashed, keep)
                if not lines:
                    done += 1
    counts["files"] = count
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="copy the files that crashed a worker into this directory")
    arguments = parser.parse_args()
    counts = run(arguments.count, arguments.seed, arguments.keep)
    for key in sorted(counts):
        print(f"{key:24s} {counts[key]}")


if __name__ == "__main__":
    main()
