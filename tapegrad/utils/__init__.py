"""``torch.utils``: the data loading utilities (``tapegrad.utils.data``) and activation
checkpointing (``tapegrad.utils.checkpoint``)."""

from __future__ import annotations

from . import checkpoint, data  # noqa: F401
