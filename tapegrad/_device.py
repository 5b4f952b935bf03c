"""Devices on a CPU-only library: ``torch.device`` and the checks behind every ``device=``.

tapegrad computes on the CPU. Programs written for PyTorch still name devices
(``device = "cuda" if torch.cuda.is_available() else "cpu"``, ``model.to(device)``); those run
unchanged. Asking for a device tapegrad does not have raises what a CPU-only PyTorch build
raises: ``AssertionError("Torch not compiled with CUDA enabled")`` for CUDA, and
``NotImplementedError`` for the other accelerators.
"""

from __future__ import annotations

# The device types PyTorch's parser knows (its error lists them in this order).
DEVICE_TYPES = (
    "cpu cuda ipu xpu mkldnn opengl opencl ideep hip ve fpga maia xla lazy vulkan mps meta hpu mtia privateuseone"
).split()
NO_CUDA = "Torch not compiled with CUDA enabled"


class device:  # noqa: N801 - PyTorch's name
    """A device type and optional index, as ``torch.device``: ``device("cpu")``,
    ``device("cuda:0")``, ``device("cuda", 0)``. Any device PyTorch knows can be *named*; only
    ``"cpu"`` can hold tensors here (see ``check``).

    Raises ``RuntimeError`` with PyTorch's message for a string that names no device type.

    >>> import tapegrad as tg
    >>> tg.device("cpu")
    device(type='cpu')
    >>> tg.ones(2).device == tg.device("cpu")
    True
    """

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):  # noqa: A002 - PyTorch's argument name
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): a device object takes no index")
            self.type, self.index = type.type, type.index
            return
        if not isinstance(type, str):
            raise TypeError(f"device() received an invalid combination of arguments - got ({_type_name(type)})")
        name, colon, number = type.partition(":")
        if name not in DEVICE_TYPES:
            raise RuntimeError(
                f"Expected one of {', '.join(DEVICE_TYPES)} device type at start of device string: {type}"
            )
        if colon:
            if index is not None or not number.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(number)
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index}")
        self.type, self.index = name, index

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other) -> bool:
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self):
        return (device, (self.type, self.index))


CPU = device("cpu")


def _type_name(value) -> str:
    return type(value).__name__


def check(spec) -> device:
    """The device ``spec`` names (``None``, a string, a ``device``, or an int: a CUDA index), if
    tapegrad can put tensors there: the CPU. Raises as a CPU-only PyTorch build does otherwise."""
    if spec is None or spec is CPU:
        return CPU
    if isinstance(spec, int) and not isinstance(spec, bool):
        raise AssertionError(NO_CUDA)  # PyTorch reads an int as a CUDA device index
    chosen = spec if isinstance(spec, device) else device(spec)
    if chosen.type == "cpu":
        return CPU
    if chosen.type == "cuda":
        raise AssertionError(NO_CUDA)
    raise NotImplementedError(f"tapegrad computes on the CPU only: it has no '{chosen.type}' device")


def get_default_device() -> device:
    """``device(type='cpu')``; follows ``torch.get_default_device``."""
    return CPU


def set_default_device(spec) -> None:
    """Accepts the CPU (and None); raises as ``check`` for any other device; follows
    ``torch.set_default_device``."""
    check(spec)
