"""Tiered compilation of the two interpreters: small sweeps run as Python while numba compiles.

The backward interpreter (``backward._run``) and the replay's (``forward._sweep``) are one
compiled function each, and on a fresh install numba takes 1.5-3 s to compile each one, with
the user's first ``backward()`` or replay waiting (issue 15). Their source is Python that numba
compiles, and it runs as Python too (the ``NUMBA_DISABLE_JIT`` test pass runs the op table's
gradient checks and the replay tests so). So, as a JVM or V8 interprets a method before its compiled code is ready, a sweep that finds
no machine code for its interpreter, in the process or in numba's cache:

- asks a background process (one per process, started then) to compile the interpreter, for
  the signature this process calls it with, and the kernel families the Python copy has used,
  into numba's cache;
- runs itself meanwhile as Python, from a second copy of this package imported with every
  kernel left as its source (``config.AS_PYTHON``), when the tape is small enough
  (``PYTHON_WORK`` elements) and the process has not yet spent ``PYTHON_BUDGET`` seconds so;
- otherwise waits for the background compile (it started first) or, with none, compiles in
  the process as before.

The first sweep after the background process has compiled its interpreter loads that machine
code from the cache. The background process outlives its parent if it must, so that a short
script's compile still lands in the cache for the next one. The results of the two tiers agree
to rounding: the compiled kernels reassociate some sums (``config.reduction``), the Python ones
add in order.

Off where it cannot pay or must not run: with ``TAPEGRAD_BACKGROUND_COMPILE=0`` (the test suite
sets it, so that no test depends on when a compile ends), on one core, while the kernels are
compiled for shipping, and in the Python copy itself.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import os
import pickle
import subprocess
import sys
import threading
import time
import warnings

import numba
import numpy as np

from . import config, families, shipped

PYTHON_WORK = 20_000  # elements a sweep walks as Python: about 20-60 ms here
PYTHON_BUDGET = 1.0  # seconds of Python sweeps a process spends before it waits for the compile
# interpreter -> (module, the compiled function's name)
INTERPRETERS = {"backward": ("backward", "_run"), "forward": ("forward", "_sweep")}

ENABLED = (
    os.environ.get("TAPEGRAD_BACKGROUND_COMPILE", "1").strip().lower() not in ("0", "false", "off", "no")
    and not config.AS_PYTHON
    and not shipped.SHIP_LEVEL
    and (os.cpu_count() or 1) > 1
    and "python" in os.path.basename(sys.executable or "").lower()  # not an embedding host's binary
    and os.name == "posix"  # (non-blocking reads of a pipe)
)

_lock = threading.RLock()
_server: list = [None]  # the background compile process (``_Server``); False if it could not start
_signatures: dict = {}  # interpreter -> the argument types the Python copy was first called with
_spent = [0.0]  # seconds of Python sweeps so far
_copy: list = []  # the package imported as Python, once


def python_copy():
    """This package imported a second time, its kernels left as Python (``config.AS_PYTHON``)."""
    with _lock:
        if not _copy:
            name = config.PYTHON_COPY
            directory = os.path.dirname(os.path.abspath(__file__))
            spec = importlib.util.spec_from_file_location(
                name, os.path.join(directory, "__init__.py"), submodule_search_locations=[directory]
            )
            package = importlib.util.module_from_spec(spec)
            sys.modules[name] = package
            spec.loader.exec_module(package)
            for interpreter, (module, function) in INTERPRETERS.items():
                _capture_signature(importlib.import_module(f"{name}.{module}"), function, interpreter)
            _copy.append(package)
        return _copy[0]


def _capture_signature(module, name: str, interpreter: str) -> None:
    """Wrap the copy's interpreter so that its first call records the numba types of its
    arguments: the signature the background process compiles (the compiled one is called with
    the same arguments)."""
    function = getattr(module, name)

    def recording(*arguments):
        if interpreter not in _signatures:
            _signatures[interpreter] = tuple(numba.typeof(argument) for argument in arguments)
        return function(*arguments)

    setattr(module, name, recording)


def sweep_work(rows, layouts, stop, start) -> int:
    """What sweeping rows ``start`` down to ``stop`` (exclusive) costs as Python, in elements
    (``PYTHON_WORK``): a row's Python costs about as much as 8 of its elements."""
    if start <= stop:
        return 0
    return int(layouts[rows[stop + 1 : start + 1, 4], 1].sum()) + 8 * (start - stop)


def as_python(interpreter: str, dispatcher, work: int):
    """The Python copy's module of ``interpreter`` if this sweep of ``work`` elements is to run
    as Python, else None (the caller calls ``dispatcher``, which loads or compiles its machine
    code). The caller checks ``dispatcher.overloads`` first: once loaded, this is never asked."""
    if not ENABLED:
        return None
    with _lock:
        server = _server[0]
        asked = bool(server) and interpreter in server.sent
        if asked:
            if server.ready(interpreter) is not False:  # compiled, or the server ended without it
                return None
        elif families.has_machine_code(dispatcher):
            return None
        if work > PYTHON_WORK or _spent[0] > PYTHON_BUDGET:
            if asked:  # it started first: wait for it rather than compile again
                _say(f"waiting for the background compile of the {_description(interpreter)}")
                server.wait_for(interpreter)
            return None
    module, _ = INTERPRETERS[interpreter]
    try:
        return importlib.import_module(f"{python_copy().__name__}.{module}")
    except Exception:  # noqa: BLE001 - a copy that cannot load: compile, as without tiers
        _disable()
        return None


def _disable() -> None:
    global ENABLED
    ENABLED = False


def run(interpreter: str, sweep, arguments: tuple, written: tuple = ()):
    """``sweep(*arguments)``, the Python copy's entry point of ``interpreter`` (``as_python``);
    None where it raised, with the arrays in ``written`` as they were, so that the caller runs
    the compiled interpreter instead, which reports the error as a status, as always (an error
    of the Python tier, such as ``ZeroDivisionError`` on a Python float, must not reach the
    user). numpy's floating-point warnings are off, as compiled code raises none. Then asks the
    background process to compile the interpreter and the families the copy has used."""
    before = [array.copy() for array in written]
    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            return sweep(*arguments)
    except Exception:  # noqa: BLE001 - the compiled interpreter runs it again and reports
        for array, copy in zip(written, before):
            array[...] = copy
        return None
    finally:
        with _lock:
            _spent[0] += time.perf_counter() - start
            if interpreter in _signatures and _server[0] is not False:
                module, _ = INTERPRETERS[interpreter]
                table = importlib.import_module(f"{config.PYTHON_COPY}.{module}").FAMILIES
                if _server[0] is not None and _server[0].process.poll() is not None:
                    _server[0] = None  # it ended (idle: ``IDLE``): another starts for what is new
                if _server[0] is None:
                    _say("compiling in the background (once per install, a few seconds); small passes run as Python")
                    _server[0] = _Server.start()
                if _server[0]:
                    _server[0].ask(interpreter, _signatures[interpreter], set(np.flatnonzero(table.addresses).tolist()))


def wait() -> list:
    """Wait for the background process to compile everything this process asked of it: ``[0]``
    once it has, ``[exit code]`` if it ended first, ``[]`` if none was started. For a caller
    about to time compiled code (the demo)."""
    with _lock:
        server = _server[0]
    if not server:
        return []
    if not server.idle():
        _say("waiting for the background compile")
    return [server.drain()]


def finish() -> None:
    """End the background process once it has compiled what it was asked. For a caller about to
    remove the cache directory it writes to (the cold-start benchmark)."""
    with _lock:
        server, _server[0] = _server[0], None
    if server:
        server.finish()


def _forget_server() -> None:
    """In a child forked from this process: the server and its pipes are the parent's (reading
    its replies here would leave the parent waiting for them). The child starts its own."""
    server, _server[0] = _server[0], None
    if server:
        server.close_pipes()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_server)


class _Server:
    """The background process: compiles, in the order asked, each interpreter (its signature)
    and the families the Python copy used, into numba's cache, and says on its stdout which
    interpreters are done and which requests are complete (numba writes a cache's index before
    its data, so the index alone would say so too early). A process that waits for it compiles
    the requests it has not started yet itself (``help``): two cores compile, and the server
    finds those in the cache when it gets there. Ends when its stdin closes (``finish``, or this
    process's exit, after which it still completes what it was asked, for the next process)."""

    def __init__(self, process):
        self.process = process
        self.sent: dict = {}  # interpreter -> the families asked for
        self.queue: list = []  # the requests sent, in order: (interpreter, signature or None, slots)
        self.taken: set = set()  # the indices of those compiled here
        self.done: set = set()  # interpreters it has compiled
        self.completed = 0  # requests it has completed (it works on them in order)
        os.set_blocking(process.stdout.fileno(), False)

    @classmethod
    def start(cls):
        """A running server, or False where none could start (everything then compiles here)."""
        # The parent of this package first on its path: it compiles this tree's kernels,
        # whatever its working directory or PYTHONPATH would import.
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        # Not the working directory (``-c`` puts it first): a user's ``numbers.py`` there would run.
        code = (
            f"import sys; sys.path[:] = [{root!r}] + [p for p in sys.path if p not in ('', '.')]; "
            "from tapegrad._kernels import tiers; tiers.serve()"
        )
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # not stopped by the terminal's Ctrl-C meant for this process
            )
        except OSError:
            return False
        server = cls(process)
        atexit.register(server._let_go)
        # Reaps it when it ends (idle, or done after this process let go): no zombie meanwhile.
        threading.Thread(target=process.wait, name="tapegrad-compile-reaper", daemon=True).start()
        return server

    def _let_go(self) -> None:
        """At this process's exit: close the pipes (it completes what it was asked, then ends on
        its own) and drop the handle without ``Popen``'s "still running" ResourceWarning, which
        ``-W error`` prints as an ignored exception."""
        self.close_pipes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            self.process = None

    def close_pipes(self) -> None:
        """Close this process's ends of its pipes: it completes what it was asked, then ends."""
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError, ValueError):
                pipe.close()

    def ask(self, interpreter: str, signature: tuple, slots: set) -> None:
        known = self.sent.get(interpreter)
        new = slots - (known or set())
        if known is not None and not new:
            return
        request = (interpreter, None if known is not None else signature, sorted(new))
        self.sent[interpreter] = (known or set()) | new
        self.queue.append(request)
        payload = pickle.dumps(request)
        try:
            self.process.stdin.write(len(payload).to_bytes(4, "little") + payload)
            self.process.stdin.flush()
        except (OSError, ValueError):  # it ended: what it did not compile compiles here, when used
            self.taken.add(len(self.queue) - 1)

    def ready(self, interpreter: str):
        """True once ``interpreter`` is compiled, False while it may still be, None if the
        server ended without it."""
        self._read()
        if interpreter in self.done:
            return True
        if self.process.poll() is None:
            return False
        self._read()
        return True if interpreter in self.done else None

    def help(self) -> None:
        """Compile here every request it has not started yet."""
        self._read()
        for index in range(self.completed + 1, len(self.queue)):
            if index not in self.taken:
                self.taken.add(index)
                _compile(*self.queue[index])

    def wait_for(self, interpreter: str) -> None:
        """Until ``interpreter`` is compiled, here or there (or the server ended)."""
        self.help()
        asked = next(i for i, (name, signature, _) in enumerate(self.queue) if name == interpreter and signature)
        while asked not in self.taken and self.ready(interpreter) is False:
            time.sleep(0.005)

    def idle(self) -> bool:
        """Whether it has nothing left to compile that is not compiled here (or it ended)."""
        self._read()
        needed = max((i + 1 for i in range(len(self.queue)) if i not in self.taken), default=0)
        return self.completed >= needed or self.process.poll() is not None

    def drain(self) -> int:
        """Until every request is compiled, here or there: 0, or its exit code if it ended first."""
        self.help()
        while not self.idle():
            time.sleep(0.005)
        return self.process.poll() or 0

    def finish(self) -> int:
        """No more requests: wait until it has done all it was asked; its exit code."""
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.close()
        code = self.process.wait()
        self._read()
        return code

    def _read(self) -> None:
        try:
            data = self.process.stdout.read()
        except (OSError, ValueError):
            return
        if data:
            for word in data.decode().split():
                if word == "completed":
                    self.completed += 1
                else:
                    self.done.add(word)


def _compile(interpreter: str, signature, slots) -> None:
    """Compile (or load from numba's cache) ``interpreter`` for ``signature`` (None: not asked)
    and the families in ``slots``."""
    module_name, function = INTERPRETERS[interpreter]
    module = importlib.import_module(f"{__package__}.{module_name}")
    if signature is not None:
        getattr(module, function).compile(signature)
        if _serving[0]:  # (the background process tells its parent)
            _tell(interpreter)
    for slot in slots:
        module.FAMILIES.load(slot)


_serving = [False]
IDLE = 10.0  # seconds the background process waits for a request before it ends (225 MB idle)


def serve() -> None:
    """The background process (``_Server``): compile each request read from stdin; end at its
    end, or after ``IDLE`` seconds without one (its parent starts another if it needs one)."""
    import select

    _serving[0] = True
    while True:
        # (read from the descriptor, no Python buffer: a request read ahead into one would be
        # invisible to select)
        readable, _, _ = select.select([0], [], [], IDLE)
        header = _read(4) if readable else b""
        if len(header) < 4:  # idle, or the parent closed the pipe
            return
        _compile(*pickle.loads(_read(int.from_bytes(header, "little"))))
        _tell("completed")


def _read(count: int) -> bytes:
    """``count`` bytes of stdin, fewer only at its end."""
    data = b""
    while len(data) < count:
        chunk = os.read(0, count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _tell(word: str) -> None:
    """One word to the parent, if it still listens: once it has exited, the rest is still
    compiled (for the next process), with nobody told."""
    try:
        print(word, flush=True)
    except (BrokenPipeError, OSError, ValueError):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of this process's life


def _description(interpreter: str) -> str:
    return {"backward": "backward interpreter", "forward": "replay interpreter"}[interpreter]


def _say(message: str) -> None:
    print(f"tapegrad: {message}...", file=sys.stderr, flush=True)
