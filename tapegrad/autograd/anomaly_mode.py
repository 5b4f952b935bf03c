"""Anomaly detection, as ``torch.autograd.anomaly_mode``: ``detect_anomaly`` and
``set_detect_anomaly``.

While it is on, each recorded result notes where the forward made it (``Tape.note_trace``), and
a backward stops after every row, in Python, to look at what the row's rule added to its
inputs' gradients: the first rule that made one NaN raises PyTorch's ``RuntimeError``, after a
warning that shows where the forward recorded that op. This costs a Python step per row, as
PyTorch warns; the engine takes its one-call sweep again once the mode is off.
"""

from __future__ import annotations

import traceback
import warnings

import numpy as np

from .._frames import user_stacklevel
from .._grad_mode import anomaly, is_anomaly_check_nan_enabled, is_anomaly_enabled, set_anomaly_enabled
from .graph import node_for

__all__ = ["detect_anomaly", "set_detect_anomaly"]


class detect_anomaly:  # noqa: N801 - PyTorch's name
    """Context manager turning anomaly detection on (``check_nan``: a backward rule returning
    NaN raises ``RuntimeError``), and back to what it was on exit; follows
    ``torch.autograd.detect_anomaly``, with its ``UserWarning`` that the mode is slow.

    >>> import tapegrad as tg
    >>> x = tg.tensor([-1.0, 1.0], requires_grad=True)
    >>> with tg.autograd.detect_anomaly():  # doctest: +SKIP
    ...     x.sqrt().sum().backward()
    Traceback (most recent call last):
    RuntimeError: Function 'SqrtBackward0' returned nan values in its 0th output.
    """

    def __init__(self, check_nan: bool = True) -> None:
        self.prev = is_anomaly_enabled()
        self.check_nan = check_nan
        self.prev_check_nan = is_anomaly_check_nan_enabled()
        warnings.warn(
            "Anomaly Detection has been enabled. This mode will increase the runtime and should only be enabled "
            "for debugging.",
            stacklevel=2,
        )

    def __enter__(self) -> None:
        set_anomaly_enabled(True, self.check_nan)

    def __exit__(self, *exc_info) -> None:
        set_anomaly_enabled(self.prev, self.prev_check_nan)


class set_detect_anomaly:  # noqa: N801 - PyTorch's name
    """Turn anomaly detection on or off (``mode``) as a call, or for a ``with`` block, after
    which it is what it was; follows ``torch.autograd.set_detect_anomaly``."""

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self.prev = is_anomaly_enabled()
        self.prev_check_nan = is_anomaly_check_nan_enabled()
        set_anomaly_enabled(mode, check_nan)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc_info) -> None:
        set_anomaly_enabled(self.prev, self.prev_check_nan)


def checking_nan() -> bool:
    """Whether a backward must look at each rule's results (the mode on, with ``check_nan``)."""
    return anomaly[0] and anomaly[1]


def check_rule(tape, row: int, sources, gradient_of, touched) -> None:
    """After the backward rule of ``row`` ran: ``RuntimeError`` (and the warning with the
    forward's trace) if it left NaN in the gradient of one of its ``sources`` (operand rows;
    -1 for none). Earlier rules were checked as they ran, so a NaN there is this rule's."""
    for index, source in enumerate(sources):
        if source >= 0 and touched[source]:
            check_gradient(tape, row, index, gradient_of(source))


def check_gradient(tape, row: int, index: int, gradient) -> None:
    """``RuntimeError`` (after the warning) if ``gradient``, what the rule of ``row`` gave its
    input ``index`` (an array, or None), holds NaN."""
    if gradient is not None and gradient.dtype.kind in "fc" and np.isnan(gradient).any():
        name = node_for(tape, row).name()
        warn_failed(tape, row, name)
        raise RuntimeError(f"Function '{name}' returned nan values in its {index}th output.")


def warn_failed(tape, row: int, name: str | None = None) -> None:
    """PyTorch's warning for a backward rule that failed: where the forward recorded its op,
    when the forward ran in anomaly mode."""
    if name is None:
        name = node_for(tape, row).name()
    frames = tape.traces.get(row) if tape.traces else None
    if frames:
        where = "".join(traceback.format_list(frames))
        message = f"Error detected in {name}. Traceback of forward call that caused the error:\n{where}"
    else:
        message = (
            f"Error detected in {name}. No forward pass information available. Enable detect anomaly during forward "
            "pass for more information."
        )
    warnings.warn(message, stacklevel=user_stacklevel())
