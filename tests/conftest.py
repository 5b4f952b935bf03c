"""Every tape the suite records also passes the validator that guards loaded tapes: a rule the
validator does not know, or checks too strictly, fails here rather than on a user's file. And
every backward starts its gradient slots as NaN (below), and every test's tapes track their
tensors as a fresh process's would."""

from __future__ import annotations

import os

import pytest

# Gradient slots start as NaN instead of as whatever memory they get (tapegrad/_kernels/config.py):
# a kernel that adds into a slot it never claimed fails the gradient checks instead of passing by
# luck. Set before tapegrad is imported, here and in the subprocesses the tests start.
os.environ.setdefault("TAPEGRAD_POISON_GRADIENTS", "1")  # a subprocess may ask for "0"
# Every sweep compiled, never run as Python while a background process compiles it
# (tapegrad/_kernels/tiers.py): which tier a test ran must not depend on when a compile ends.
# tests/test_tiers.py turns it on in the subprocesses it starts.
os.environ.setdefault("TAPEGRAD_BACKGROUND_COMPILE", "0")


@pytest.fixture(autouse=True, scope="session")
def _validate_every_recorded_tape():
    from tapegrad import _tape_file, replay

    build = replay.Tape._build

    def build_and_validate(self, example_inputs):
        build(self, example_inputs)
        _tape_file.validate(self)

    replay.Tape._build = build_and_validate
    yield
    replay.Tape._build = build


@pytest.fixture(autouse=True)
def _new_tapes_track_as_a_fresh_process():
    """A test whose kept graph absorbs new ones turns tracking on for every later tape of the
    process (``_tape.track_new_tapes``): each test starts as a fresh process would."""
    from tapegrad import _tape

    _tape.track_new_tapes[0] = False
    yield
