"""``torch.backends``: the accelerator back ends a program may ask about (none is present)."""

from __future__ import annotations

import warnings

from . import cuda, cudnn, mps  # noqa: F401

_PRECISIONS = ("highest", "high", "medium")
_float32_matmul_precision = ["highest"]


def set_float32_matmul_precision(precision: str) -> None:
    """Record the precision float32 matrix products may use (``"highest"``, ``"high"`` or
    ``"medium"``); tapegrad's always compute in float32, as PyTorch's do on a CPU. Another value
    changes nothing, with PyTorch's ``UserWarning``. Follows ``torch.set_float32_matmul_precision``."""
    if precision not in _PRECISIONS:
        warnings.warn(
            f"{precision} is not one of 'highest', 'high', or 'medium'; the currentsetFloat32MatmulPrecision call "
            "has no effect.",
            stacklevel=2,
        )
        return
    _float32_matmul_precision[0] = precision


def get_float32_matmul_precision() -> str:
    """What ``set_float32_matmul_precision`` set; follows ``torch.get_float32_matmul_precision``."""
    return _float32_matmul_precision[0]


_deterministic = [False, False]  # [on, warn only]


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Record whether programs ask for deterministic algorithms; tapegrad's are (its sums and
    products run in a fixed order on the CPU), so this changes nothing. Follows
    ``torch.use_deterministic_algorithms``."""
    _deterministic[0], _deterministic[1] = bool(mode), bool(warn_only)


def are_deterministic_algorithms_enabled() -> bool:
    """What ``use_deterministic_algorithms`` set; follows ``torch.are_deterministic_algorithms_enabled``."""
    return _deterministic[0]


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    """Its ``warn_only``; follows ``torch.is_deterministic_algorithms_warn_only_enabled``."""
    return _deterministic[1]
