"""``torch.backends``: the accelerator back ends a program may ask about (none is present)."""

from __future__ import annotations

from . import cudnn, mps  # noqa: F401
