"""``torch.utils``: the data loading utilities (``tapegrad.utils.data``)."""

from __future__ import annotations

from . import data  # noqa: F401
