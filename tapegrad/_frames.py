"""Where tapegrad's own code ends on the stack: the user's line, which guards, warnings and
anomaly detection's traces name (a tapegrad file is never what the user wrote)."""

from __future__ import annotations

import os
import sys

PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Code inside the package that stands for the user's: the functions ``python -m tapegrad``
# records as examples, whose lines a guard should name as it would name a user's.
user_code: set = set()


def in_package(filename: str) -> bool:
    """Whether ``filename`` is one of tapegrad's own modules."""
    return filename.startswith(PACKAGE)


def _users(code) -> bool:
    return not in_package(code.co_filename) or code in user_code


def user_frame(depth: int = 2):
    """The first frame outside tapegrad, from the caller's caller (``depth`` 2) up; None if none."""
    frame = sys._getframe(depth)
    while frame is not None and not _users(frame.f_code):
        frame = frame.f_back
    return frame


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by the caller of this function point at the
    first line outside tapegrad (the user's ``backward()`` or call), however deep the caller is."""
    frame, level = sys._getframe(2), 2
    while frame is not None and not _users(frame.f_code):
        frame, level = frame.f_back, level + 1
    return level
