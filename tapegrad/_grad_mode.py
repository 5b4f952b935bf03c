"""Grad mode: whether ops record onto a tape. Per thread, as in PyTorch."""

from __future__ import annotations

import functools
import inspect
import sys
import threading


class _GradState(threading.local):
    enabled = True  # a class attribute, so every new thread starts with grad mode on
    recording = None  # the tape ``tapegrad.record`` is filling in this thread, if any
    transforms = 0  # ``tapegrad.func`` differentiating transforms (grad, vjp, jacrev...) active here
    jvp = 0  # ``tapegrad.func.jvp`` and ``jacfwd`` calls of the function active here
    vmaps = 0  # ``tapegrad.func.vmap`` calls of the function active here
    inference = 0  # ``inference_mode()`` blocks active here: grad mode stays off inside them


state = _GradState()
# How many threads have grad mode off right now. While it is zero, the recording hot path
# skips the thread-local lookup (a list index is ~10 ns, a threading.local attribute ~45 ns).
threads_disabled = [0]
# How many threads are inside ``tapegrad.record``; the hot path checks this before the
# thread-local ``state.recording``.
recordings_active = [0]
# Threads with grad off plus threads recording: while zero, every thread records eagerly and
# the scalar fast path needs one list read to know it.
special_modes = [0]
# Anomaly detection (``autograd.detect_anomaly``): [on, check for NaN]. For the whole process,
# as PyTorch's. While on it counts as a special mode: ops take the general paths, whose results
# note where the forward recorded them (``Tape.traces``).
anomaly = [False, True]


def set_anomaly_enabled(enabled: bool, check_nan: bool = True) -> None:
    """Turn anomaly detection on or off for the process (``check_nan``: a backward rule that
    returns NaN raises ``RuntimeError``); follows ``torch.set_anomaly_enabled``."""
    enabled = bool(enabled)
    if enabled != anomaly[0]:
        special_modes[0] += 1 if enabled else -1
    anomaly[0], anomaly[1] = enabled, bool(check_nan)


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on; follows ``torch.is_anomaly_enabled``."""
    return anomaly[0]


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly detection checks backward results for NaN; follows
    ``torch.is_anomaly_check_nan_enabled``."""
    return anomaly[1]


def active_recording():
    """The tape ``tapegrad.record`` is filling in this thread, or None (the list read first)."""
    return state.recording if recordings_active[0] else None


def _set(enabled: bool) -> None:
    # (inside inference_mode, enable_grad and set_grad_enabled(True) change nothing, as PyTorch's)
    enabled = bool(enabled) and not (enabled and state.inference)
    if state.enabled != enabled:
        change = -1 if enabled else 1
        threads_disabled[0] += change
        special_modes[0] += change
        state.enabled = enabled


def _from_user_code() -> bool:
    """Whether the grad mode being entered was asked for outside tapegrad (past this module's
    decorator wrappers): tapegrad's own uses (a custom Function's forward) compute nothing jvp
    needs a tangent of."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    name = frame.f_globals.get("__name__", "") if frame is not None else ""
    return not (name == "tapegrad" or name.startswith("tapegrad."))


def is_grad_enabled() -> bool:
    """Whether operations are recorded for differentiation in this thread."""
    return state.enabled


def refuses_gradient(value, in_transforms: bool = True) -> bool:
    """Whether ``value``, an argument PyTorch's autograd cannot differentiate (a loss's
    ``weight``, an integer tensor's fill value), is refused for requiring grad: with grad mode
    on, as PyTorch, and not inside ``tapegrad.record`` (and so ``func.vmap``), where every input
    requires grad whether a gradient is asked for or not (refused there, programs PyTorch runs
    raised). ``in_transforms`` False: not inside ``tapegrad.func``'s grad, vjp, jacrev... either,
    for arguments ``torch.func`` differentiates (its decompositions of some losses do)."""
    if not (getattr(value, "requires_grad", False) and state.enabled and active_recording() is None):
        return False
    return in_transforms or state.transforms == 0


class _Mode:
    """A context manager that is also a decorator, like ``torch.no_grad``."""

    mode = True

    def __enter__(self):
        if not self.mode and state.jvp and _from_user_code():
            # jvp and jacfwd run reverse sweeps, which grad mode off stops: the tangent (the
            # Jacobian, a Hessian) came out zero where PyTorch's forward mode goes through no_grad.
            raise NotImplementedError(
                "tapegrad.func.jvp, jacfwd or hessian of a function that turns grad mode off (no_grad, "
                "set_grad_enabled(False), inference_mode): tapegrad computes them by reverse sweeps, which that "
                "stops; PyTorch's forward-mode AD goes through it. Use .detach() for values that must carry no "
                "tangent, or jacrev, whose reverse mode PyTorch's no_grad stops too"
            )
        self._previous = state.enabled
        _set(self.mode)

    def __exit__(self, *exc_info):
        _set(self._previous)
        return False

    def __call__(self, function):
        return _decorated(function, self._fresh)

    def _fresh(self):
        """A new context manager of this one's mode, for each call of a decorated function."""
        return self.__class__()


class _BareDecorator(_Mode):
    """A mode that also decorates without parentheses (``@no_grad``), as PyTorch's do."""

    def __new__(cls, function=None, *args, **kwargs):
        if callable(function):
            return cls()(function)
        return super().__new__(cls)


def _decorated(function, fresh):
    """``function`` run inside ``fresh()``; a generator function's body inside it at each step,
    and outside it between steps, as PyTorch's decorators do (``@no_grad()`` on a generator of
    batches ran its body with grad mode on: the context was left when the generator object was
    returned)."""
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def generator(*args, **kwargs):
            steps = function(*args, **kwargs)
            try:
                with fresh():
                    response = steps.send(None)
                while True:
                    try:
                        request = yield response
                    except GeneratorExit:
                        with fresh():
                            steps.close()
                        raise
                    except BaseException as error:  # noqa: BLE001 - passed on into the body
                        with fresh():
                            response = steps.throw(error)
                    else:
                        with fresh():
                            response = steps.send(request)
            except StopIteration as stop:
                return stop.value

        return generator

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with fresh():
            return function(*args, **kwargs)

    return wrapper


class no_grad(_BareDecorator):  # noqa: N801 - PyTorch's name
    """Stop recording inside a ``with`` block or a decorated function.

    >>> import tapegrad as tg
    >>> x = tg.ones(2, requires_grad=True)
    >>> with tg.no_grad():
    ...     (x * 2).requires_grad
    False
    """

    mode = False


class inference_mode(no_grad):  # noqa: N801
    """``no_grad`` under PyTorch's newer name (``mode=False``: recording on, also inside
    ``no_grad``); follows ``torch.inference_mode``. Tensors made inside are ordinary tensors
    here."""

    def __init__(self, mode: bool = True):
        self._active = mode

    def __enter__(self):
        # ``inference_mode(False)`` turns recording on, also inside ``no_grad``, as PyTorch's
        # does (it kept the surrounding mode).
        self._previous, self._inference = state.enabled, state.inference
        state.inference = self._inference + 1 if self._active else 0
        _set(not self._active)

    def __exit__(self, *exc_info):
        state.inference = self._inference
        _set(self._previous)
        return False

    def __call__(self, function):
        if not callable(function) or isinstance(function, bool):
            raise TypeError("inference_mode() takes a function")
        return super().__call__(function)

    def _fresh(self):
        return inference_mode(self._active)


class differentiating:  # noqa: N801 - a context manager, as the modes above
    """Grad mode on for tapegrad's own differentiation (``tapegrad.func``'s transforms,
    ``tapegrad.record``), also inside ``inference_mode``, whose blocks are suspended meanwhile:
    ``torch.func.grad`` differentiates there, where ``enable_grad`` changes nothing, and every
    transform returned zero gradients."""

    def __enter__(self):
        self._inference = state.inference
        state.inference = 0
        self._grad = enable_grad()
        self._grad.__enter__()

    def __exit__(self, *exc_info):
        self._grad.__exit__(*exc_info)
        state.inference = self._inference
        return False


def is_inference_mode_enabled() -> bool:
    """Whether an ``inference_mode()`` block is active in this thread; follows
    ``torch.is_inference_mode_enabled``."""
    return state.inference > 0


class enable_grad(_BareDecorator):  # noqa: N801
    """Record again inside a ``no_grad`` region."""

    mode = True


class set_grad_enabled(_Mode):  # noqa: N801
    """``set_grad_enabled(False)`` switches recording off now; as a context manager, until exit."""

    def __init__(self, mode: bool):
        if not isinstance(mode, bool):  # (0 and "" were taken for False)
            raise TypeError(
                f"set_grad_enabled(): argument 'enabled' (position 1) must be bool, not {type(mode).__name__}"
            )
        self._previous = state.enabled
        self.mode = mode
        _set(self.mode)

    def __enter__(self):
        pass

    def __call__(self, function):
        _set(self._previous)
        mode = self.mode
        return _decorated(function, lambda: set_grad_enabled(mode))
