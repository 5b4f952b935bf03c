"""How many threads tapegrad may use: ``get_num_threads``/``set_num_threads``, as PyTorch's."""

from __future__ import annotations

import os
import threading

_num_threads = [None]  # None: NUMBA_NUM_THREADS, else the number of CPUs


def get_num_threads() -> int:
    """How many threads ``tapegrad.func.vmap`` spreads its replays over (an int >= 1): the last
    ``set_num_threads``, else ``NUMBA_NUM_THREADS``, else the number of CPUs; follows
    ``torch.get_num_threads``. One sweep (``backward()``, one replay) runs on one thread."""
    if _num_threads[0] is None:
        configured = os.environ.get("NUMBA_NUM_THREADS", "")
        _num_threads[0] = int(configured) if configured.strip().isdigit() else (os.cpu_count() or 1)
        _num_threads[0] = max(1, _num_threads[0])
    return _num_threads[0]


def set_num_threads(count: int) -> None:
    """Use ``count`` threads for ``tapegrad.func.vmap``'s replays (``get_num_threads``); follows
    ``torch.set_num_threads``. Raises ``RuntimeError`` as PyTorch does for a count below 1."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise RuntimeError("set_num_threads expects a positive integer")
    _num_threads[0] = count


_pools: dict = {}
# How many of the pools' threads have started. They run compiled replays and record nothing, so
# ``_tape``'s lock does not count them among the threads that may record: counted, one vmap
# made every later op of the process take the lock.
pool_threads = [0]


def _started() -> None:
    pool_threads[0] += 1  # (one bytecode store under the GIL: threads start one at a time here)


def _forgotten() -> None:
    """In a forked child: the pools' threads did not come along (a fork copies one thread), so
    a pool of the parent's waited for ever on work none of its threads would run."""
    _pools.clear()
    pool_threads[0] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forgotten)


def pool(count: int):
    """A thread pool of ``count`` workers, kept for the process: starting threads per call cost
    ~3 ms, more than a batch of small replays."""
    executor = _pools.get(count)
    if executor is None:
        from concurrent.futures import ThreadPoolExecutor

        executor = _pools[count] = ThreadPoolExecutor(count, thread_name_prefix="tapegrad", initializer=_started)
    return executor


def background():
    """A worker of its own (one thread, kept for the process) for work that overlaps the
    calling thread's Python: ``vmap``'s replay by the last call's tape while the function is
    recorded again (``func._Speculation``). Apart from ``pool``'s, so that a batch split over
    the pool's workers meanwhile does not queue behind it."""
    executor = _pools.get("background")
    if executor is None:
        from concurrent.futures import ThreadPoolExecutor

        executor = _pools["background"] = ThreadPoolExecutor(
            1, thread_name_prefix="tapegrad-background", initializer=_started
        )
    return executor


_local = threading.local()


def entering_kernel() -> None:
    """Called by a batch replay just before its long compiled call, which holds no GIL: wakes
    the thread that waits for this one to get there (``waking``)."""
    event = getattr(_local, "waking", None)
    if event is not None:
        _local.waking = None
        event.set()


def waking(event: threading.Event, call, *args):
    """``call(*args)``, setting ``event`` once it reaches its compiled kernel
    (``entering_kernel``) or ends. A thread that runs Python meanwhile and calls small nogil
    kernels (a recording's) gives the GIL up and takes it back so often that CPython never
    forces it to hand it over: a thread waiting for the GIL waited until the recording ended
    (``func._Speculation`` waits for ``event`` instead, the GIL released)."""
    _local.waking = event
    try:
        return call(*args)
    finally:
        _local.waking = None
        event.set()


def run_parts(run, bounds) -> None:
    """``run(lo, hi)`` for each pair of consecutive ``bounds``, at once: the pool's threads take
    all parts but the last, which the calling thread runs itself (waking a worker to run it
    while the caller only waited cost more than a small batch's part: a per-sample vmap ran
    slower on two threads than on one). ``run`` must release the GIL to run in parallel (the
    jitted kernels do); the first exception raised is re-raised once every part has ended."""
    parts = list(zip(bounds[:-1], bounds[1:]))
    if len(parts) == 1:
        run(*parts[0])
        return
    from concurrent.futures import wait

    executor = pool(len(parts) - 1)
    futures = [executor.submit(run, lo, hi) for lo, hi in parts[:-1]]
    try:
        run(*parts[-1])
    finally:
        wait(futures)  # every part ends before anything is raised: they write the caller's arrays
    for future in futures:
        future.result()
