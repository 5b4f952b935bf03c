"""What a list of calls gives, to compare between tapegrad and PyTorch: each call's result, or
its exception's class and message."""

from __future__ import annotations


def outcomes(calls, present=lambda value: value) -> list:
    """``present(call())`` for each call, or ``(class name, message)`` of what it raised."""
    results = []
    for call in calls:
        try:
            results.append(present(call()))
        except Exception as error:  # noqa: BLE001 - the class and message are what is compared
            results.append((type(error).__name__, str(error)))
    return results


def values_and_dtype(tensor) -> tuple:
    """A tensor as its values and its dtype's short name (``float32``), either library's."""
    return tensor.tolist(), str(tensor.dtype).split(".")[-1]
