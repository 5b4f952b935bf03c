"""``repr(tensor)`` exactly as PyTorch prints it (the rules of torch/_tensor_str.py)."""

from __future__ import annotations

import math

import numpy as np

from . import _dtypes

PRECISION = 4
THRESHOLD = 1000
EDGE_ITEMS = 3
LINE_WIDTH = 80
SCI_MODE = None  # None: chosen from the values; True/False: forced (set_printoptions(sci_mode=...))
_UNSHOWN_DTYPES = (np.dtype(np.int64), np.dtype(np.bool_))  # and the default float dtype


class _Formatter:
    """Chooses integer, fixed or scientific notation and the column width from all values."""

    def __init__(self, values: np.ndarray):
        self.floating = values.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        flat = values.reshape(-1)
        if not self.floating:
            for value in flat.tolist():
                self.max_width = max(self.max_width, len(self._plain(value)))
            return
        finite = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
        if finite.size == 0:
            return  # (no notation to choose: zeros, infinities and NaN print alike in all)
        magnitudes = np.abs(finite)
        smallest, largest = magnitudes.min(), magnitudes.max()
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        # The notation first (forced or chosen from the values), then the widths in it, as
        # PyTorch's: widths measured in the other notation padded (sci_mode=False) or cut
        # (True) the columns, and a forced mode applied to all-zero tensors.
        if SCI_MODE is None:
            self.sci_mode = bool(largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4)
        else:
            self.sci_mode = bool(SCI_MODE)
        for value in finite.tolist():
            if self.sci_mode:
                width = len(f"{value:.{PRECISION}e}")
            elif self.int_mode:
                width = len(f"{value:.0f}") + 1
            else:
                width = len(f"{value:.{PRECISION}f}")
            self.max_width = max(self.max_width, width)

    @staticmethod
    def _plain(value) -> str:
        return str(value)

    def format(self, value) -> str:
        if self.floating:
            if self.sci_mode:
                text = f"{value:{self.max_width}.{PRECISION}e}"
            elif self.int_mode:
                text = f"{value:.0f}"
                if not (math.isinf(value) or math.isnan(value)):
                    text += "."
            else:
                text = f"{value:.{PRECISION}f}"
        else:
            text = self._plain(value)
        return " " * (self.max_width - len(text)) + text


_PROFILES = {"default": (4, 1000, 3, 80), "short": (2, 1000, 2, 80), "full": (4, math.inf, 3, 80)}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """Set how tensors print: digits after the point (``precision``), the element count past which
    a tensor is summarized (``threshold``), the items kept at each edge of a summarized dimension
    (``edgeitems``), the characters per line (``linewidth``), a ``profile`` ("default", "short",
    "full") setting all four, and ``sci_mode`` (True/False forces scientific notation on or off,
    None chooses it from the values); follows ``torch.set_printoptions``."""
    global PRECISION, THRESHOLD, EDGE_ITEMS, LINE_WIDTH, SCI_MODE
    if profile in _PROFILES:  # (another name changes nothing, as in PyTorch)
        PRECISION, THRESHOLD, EDGE_ITEMS, LINE_WIDTH = _PROFILES[profile]
    if precision is not None:
        PRECISION = precision
    if threshold is not None:
        THRESHOLD = threshold
    if edgeitems is not None:
        EDGE_ITEMS = edgeitems
    if linewidth is not None:
        LINE_WIDTH = linewidth
    SCI_MODE = sci_mode


def _summarized(values: np.ndarray) -> np.ndarray:
    if values.ndim == 0:
        return values
    if values.ndim == 1:
        if values.shape[0] > 2 * EDGE_ITEMS:
            return np.concatenate((values[:EDGE_ITEMS], values[-EDGE_ITEMS:]))
        return values
    if not EDGE_ITEMS:  # nothing shown but "...": nothing to measure (PyTorch's new_empty)
        return np.empty((0,) * values.ndim, values.dtype)
    if values.shape[0] > 2 * EDGE_ITEMS:
        rows = [_summarized(values[i]) for i in range(EDGE_ITEMS)]
        rows += [_summarized(values[i]) for i in range(len(values) - EDGE_ITEMS, len(values))]
    else:
        rows = [_summarized(row) for row in values]
    return np.stack(rows)


def _vector(values: np.ndarray, indent: int, summarize: bool, formatter: _Formatter) -> str:
    element_length = formatter.max_width + 2
    per_line = max(1, math.floor((LINE_WIDTH - indent) / element_length))
    if summarize and not EDGE_ITEMS:
        items = ["..."]  # (values[-0:] would be all of them)
    elif summarize and values.shape[0] > 2 * EDGE_ITEMS:
        items = [formatter.format(v) for v in values[:EDGE_ITEMS].tolist()]
        items += [" ..."]
        items += [formatter.format(v) for v in values[-EDGE_ITEMS:].tolist()]
    else:
        items = [formatter.format(v) for v in values.tolist()]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(values: np.ndarray, indent: int, summarize: bool, formatter: _Formatter) -> str:
    if values.ndim == 0:
        return formatter.format(values.item())
    if values.ndim == 1:
        return _vector(values, indent, summarize, formatter)
    if summarize and values.shape[0] > 2 * EDGE_ITEMS:
        parts = [_nested(values[i], indent + 1, summarize, formatter) for i in range(EDGE_ITEMS)]
        parts += ["..."]
        parts += [
            _nested(values[i], indent + 1, summarize, formatter) for i in range(len(values) - EDGE_ITEMS, len(values))
        ]
    else:
        parts = [_nested(values[i], indent + 1, summarize, formatter) for i in range(values.shape[0])]
    return "[" + ("," + "\n" * (values.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _add_suffixes(text: str, suffixes: list, indent: int) -> str:
    pieces = [text]
    last_line_length = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_length + len(suffix) + 2 > LINE_WIDTH:
            pieces.append(",\n" + " " * indent + suffix)
            last_line_length = indent + len(suffix)
        else:
            pieces.append(", " + suffix)
            last_line_length += len(suffix) + 2
    pieces.append(")")
    return "".join(pieces)


def tensor_repr(tensor) -> str:
    values = tensor._data
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    if values.size == 0:
        if values.ndim != 1:
            suffixes.append(f"size={tuple(values.shape)}")
        if values.dtype != _dtypes.DEFAULT_FLOAT.numpy:  # (the default dtype, float32 or not)
            suffixes.append(f"dtype={tensor.dtype!r}")
        body = "[]"
    else:
        if not EDGE_ITEMS:  # PyTorch's: the shape, since "..." shows none of it
            suffixes.append(f"size={tuple(values.shape)}")
        if values.dtype not in _UNSHOWN_DTYPES and values.dtype != _dtypes.DEFAULT_FLOAT.numpy:
            suffixes.append(f"dtype={tensor.dtype!r}")
        summarize = values.size > THRESHOLD
        formatter = _Formatter(_summarized(values) if summarize else values)
        body = _nested(values, indent, summarize, formatter)
    if tensor._tape is not None:
        suffixes.append(f"grad_fn=<{type(tensor.grad_fn).__name__}>")  # (PyTorch's: the class, CopySlices)
    elif tensor._requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + body, suffixes, indent)
