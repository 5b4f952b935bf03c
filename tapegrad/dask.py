"""Data-parallel replay of a recorded tape on a Dask cluster (``pip install "tapegrad[dask]"``).

Record the loss on one chunk of data, the parameters first and the data after them, then hand the
tape and the chunks to ``DataParallel``: every call sends only the parameters, each worker replays
the tape over the chunks it holds, and the client adds up the chunk losses and gradients::

    tape = tg.record(loss_on_chunk, w0, X[:1000], y[:1000])
    dp = DataParallel(tape, chunks=[(X[i : i + 1000], y[i : i + 1000]) for i in range(0, len(X), 1000)])
    value, (grad_w,) = dp.value_and_grad(w)

How the pieces sit on the cluster (all of it is dask.distributed's machinery):

- The tape, and the function that recorded it (pickled with cloudpickle), travel once per worker,
  as a worker plugin (``Client.register_plugin``). The scheduler keeps the plugin and installs
  it on every worker that joins later, so a worker that replaces a lost one gets the tape too.
  Unpickling validates the tape's rows, as for every tape from another process.
- Each chunk is the result of a task (``Client.submit`` with the arrays as its arguments, placed
  to spread the rows over the workers), not a ``scatter``: the scheduler keeps the task, so a
  chunk lost with its worker is computed again on another one, and the call that needed it
  completes there. (Scattered data has no lineage: it is gone with its worker. The price is a copy
  of the data in the scheduler's memory; for data that should not pass through the client, pass
  futures of tasks that load it on the workers instead.) When workers join or leave (checked at
  most every 2 s), chunks move from the busiest workers to the idlest, by tasks that hold them
  again, so a worker started in place of a lost one takes its share.
- A call submits one task per worker holding chunks, restricted loosely (``workers=``,
  ``allow_other_workers=True``) to that worker, and gets back one value and one gradient per
  chunk; the client sums them in chunk order, so the result does not depend on which worker
  computed what. A call costs about 17-20 ms of Dask's scheduling on 2 local workers (16 tiny
  chunks, a shared 2-core machine); one task per chunk cost 40-50 ms.
- A worker keeps one tape per distinct chunk shape (the last chunk is usually shorter), recorded
  there from the function the first time it meets that shape, and re-records a chunk whose
  guards fail (Python control flow that took another branch on that chunk's data), keeping that
  tape for that chunk: a replay is never silently wrong.

Two of Dask's worker defaults cost replays: ``MALLOC_TRIM_THRESHOLD_=65536`` turns off glibc's
adaptive mmap threshold, so every large temporary of a replay is mapped and page-faulted anew (a
replay of 16 chunks of 62,500 rows took 2.9x as long with it), and the statistical profiler
cost 6-8% of a worker's CPU. For replay workloads set, before the workers start::

    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                     "distributed.worker.profile.enabled": False})
"""

from __future__ import annotations

import pickle
import threading
import time
import uuid
import warnings

import numpy as np

from .replay import GuardError, Tape, record
from .tensor import Tensor, _wrap

try:
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # the optional extra is missing: DataParallel says so when it is made
    _WorkerPlugin = object

__all__ = ["DataParallel"]

_INSTALL = 'tapegrad.dask needs dask.distributed: pip install "tapegrad[dask]"'
# How often a call asks the scheduler whether workers joined or left (to spread the chunks again).
_WORKER_CHECK_SECONDS = 2.0
# Times each DataParallel's tape was unpickled in this process (by plugin name): once per worker.
_TAPE_LOADS: dict = {}


class DataParallel:
    """A recorded loss replayed over data chunks held on a Dask cluster, summed over the chunks.

    ``tape`` was recorded as ``tapegrad.record(fn, *params, *data)``: the parameters first, then
    the data arrays of one chunk. ``chunks`` is a sequence of tuples with one array per data
    input (or a bare array when there is one), each chunk of the recorded dtypes and number of
    dimensions; their lengths may differ. The tape must return one scalar (a single-element
    tensor): the loss on its chunk.

    ``value_and_grad(*params)`` returns ``(value, grads)``: ``value`` the sum over chunks of the
    chunk losses (a tensor of the output's shape and dtype) and ``grads`` a tuple with one tensor
    per parameter, of its shape and dtype, summed likewise. With ``reduction="mean"`` both are
    averaged instead, chunk ``i`` weighted by its length ``n_i / N`` (the length of its first data
    array): the full-data loss when the chunk loss is a mean over its rows. With a sum (or mean)
    over rows per chunk, the result is the loss over all the data, as one eager run would give it,
    to rounding (the chunks are added in order on the client). ``dp(*params)`` gives the value
    alone (a forward replay only).

    Args:
        tape: a ``tapegrad.Tape``.
        chunks: the data, as described; arrays or tensors, or ``distributed.Future`` objects that
            resolve to such a tuple (data loaded on the workers, never through the client).
        client: a ``distributed.Client`` or a scheduler address; default: the current default
            client (``distributed.default_client()``).
        fn: the function the tape recorded, for chunk shapes other than the recorded one and for
            re-recording a chunk whose guards fail; default: the tape's own (``tape._fn``; a tape
            loaded from a file or a pickle has none). Shipped to the workers with cloudpickle: it
            must be importable there or defined in ``__main__``/as a closure. The workers import
            tapegrad itself (the same version as the client's).
        reduction: ``"sum"`` or ``"mean"``.
        rerecord: re-record a chunk whose guards fail (needs ``fn``); when False, or with no
            function, a failing guard raises ``GuardError``.

    Raises:
        TypeError: ``tape`` is not a Tape, a chunk is not a tuple of arrays, a parameter has the
            wrong count. ValueError: no chunks, a chunk of another dtype or number of arrays or
            dimensions than recorded, a chunk of another shape when no function is available,
            the tape does not return one scalar, an unknown ``reduction``, a parameter of another
            shape or dtype than recorded (at the call). RuntimeError: no ``client`` and no
            default client. ImportError: dask.distributed is not installed. A call raises what a
            worker raised (``GuardError`` when a guard fails and cannot be re-recorded).

    >>> import numpy as np, tapegrad as tg
    >>> from dask.distributed import Client, LocalCluster  # doctest: +SKIP
    >>> from tapegrad.dask import DataParallel
    >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
    >>> X, y = np.random.rand(2500, 3), np.random.rand(2500)
    >>> def loss(w, X, y):
    ...     return ((X @ w - y) ** 2).sum()
    >>> tape = tg.record(loss, np.zeros(3), X[:1000], y[:1000])
    >>> chunks = [(X[i : i + 1000], y[i : i + 1000]) for i in range(0, len(X), 1000)]
    >>> with DataParallel(tape, chunks, client=client) as dp:  # doctest: +SKIP
    ...     value, (grad,) = dp.value_and_grad(np.ones(3))
    """

    def __init__(self, tape, chunks, *, client=None, fn=None, reduction: str = "sum", rerecord: bool = True):
        try:
            import distributed
        except ImportError as error:
            raise ImportError(_INSTALL) from error
        if not isinstance(tape, Tape):
            raise TypeError(f"DataParallel needs a tapegrad.Tape (tapegrad.record), got {type(tape).__name__}")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        if len(tape.output_rows) != 1 or int(np.prod(tape._shape(tape.output_rows[0]))) != 1:
            raise ValueError("DataParallel needs a tape that returns one scalar (the loss on its chunk)")
        if fn is None:
            fn = tape._fn
        if fn is not None and not callable(fn):
            raise TypeError(f"fn must be the recorded function, got {type(fn).__name__}")
        chunks = list(chunks)
        if not chunks:
            raise ValueError("DataParallel needs at least one chunk")
        self.client, self._owns_client = _client(distributed, client)
        try:
            self.reduction = reduction
            self._output_shape = tape._shape(tape.output_rows[0])
            self._output_dtype = tape._dtype(tape.output_rows[0])
            specs, arrays = self._specs(distributed, chunks)
            data_count = len(specs[0])
            self._param_specs = list(tape.input_specs[: len(tape.input_specs) - data_count])
            _check_chunks(tape, specs, fn, len(self._param_specs))
            futures = self._place(distributed, chunks, arrays)
            self._names = tape._names[: len(self._param_specs)]
            self._tape = tape  # checks the parameters of each call as a replay checks its inputs
            self.chunk_lengths = [int(spec[0][0][0]) if spec[0][0] else 1 for spec in specs]
            total = sum(self.chunk_lengths)
            self._weights = [n / total for n in self.chunk_lengths] if reduction == "mean" else None
            self._chunks = futures
            self._plugin = f"tapegrad-dataparallel-{uuid.uuid4().hex}"
            self.client.register_plugin(_TapePlugin(self._plugin, tape, fn, rerecord), name=self._plugin)
        except BaseException:
            if self._owns_client:
                self.client.close()
            raise
        self._groups = None
        self._workers, self._checked = set(), 0.0
        self._held = []
        self._closed = False

    # -- placement ---------------------------------------------------------------------------

    def _specs(self, distributed, chunks):
        """Each chunk's ``[(shape, dtype)]``, and its arrays (``None`` for a future)."""
        specs, arrays, remote = [], [], []
        for index, chunk in enumerate(chunks):
            if isinstance(chunk, distributed.Future):
                specs.append(None)
                arrays.append(None)
                remote.append(index)
            else:
                arrays.append(_chunk_arrays(index, chunk))
                specs.append([(a.shape, a.dtype) for a in arrays[-1]])
        if remote:
            # Through their own client first: futures of another client (one given by address
            # makes its own) may not have reached the scheduler when this client's tasks on them
            # do, which the scheduler cancelled ("lost dependencies").
            distributed.wait([chunks[i] for i in remote])
            found = self.client.gather([self.client.submit(_chunk_specs, chunks[i], i, pure=False) for i in remote])
            for index, spec in zip(remote, found):
                specs[index] = spec
        return specs, arrays

    def _place(self, distributed, chunks, arrays) -> list:
        """Futures holding the chunks on the cluster: a task per chunk given as arrays, placed
        (loosely: ``allow_other_workers``) to spread the rows evenly over the workers' threads.
        Left to itself the scheduler put 5 of 8 chunks on one of 2 workers."""
        threads = dict(self.client.nthreads())
        load = dict.fromkeys(threads, 0.0)
        futures = []
        for chunk, data in zip(chunks, arrays):
            if data is None:
                futures.append(chunk)
                continue
            target = min(load, key=lambda w: (load[w] + data[0].nbytes) / threads[w]) if load else None
            if target is not None:
                load[target] += sum(a.nbytes for a in data)
            with warnings.catch_warnings():
                # Dask advises against large graphs; this one is the chunk, in it for its lineage.
                warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
                futures.append(
                    self.client.submit(
                        _hold,
                        *data,
                        key=f"tapegrad-chunk-{uuid.uuid4().hex}",
                        workers=None if target is None else [target],
                        allow_other_workers=True,
                        pure=False,
                    )
                )
        distributed.wait(futures)
        return futures

    def _assign(self):
        """Group the chunks by the worker holding them (asked of the scheduler), first moving
        chunks from the most loaded workers to the least (rows per thread): after a worker is
        lost, the survivors hold its chunks, and the worker that replaces it would idle."""
        threads = dict(self.client.nthreads())
        holders = self.client.who_has(self._chunks)
        where = [(holders.get(future.key) or (None,))[0] for future in self._chunks]
        load = dict.fromkeys(threads, 0.0)
        for index, worker in enumerate(where):
            if worker in load:
                load[worker] += self.chunk_lengths[index] / threads[worker]
        while len(load) > 1:
            source = max(load, key=load.get)
            target = min(load, key=load.get)
            movable = [i for i, worker in enumerate(where) if worker == source]
            index = min(movable, key=lambda i: self.chunk_lengths[i], default=None)
            if index is None:
                break
            rows = self.chunk_lengths[index]
            if load[target] + rows / threads[target] >= load[source]:
                break  # moving would not lower the busiest worker's load
            # A task on the target that holds the chunk: its lineage reaches the original task,
            # so the scheduler can still recompute it.
            self._chunks[index] = self.client.submit(
                _same,
                self._chunks[index],
                key=f"tapegrad-chunk-{uuid.uuid4().hex}",
                workers=[target],
                allow_other_workers=True,
                pure=False,
            )
            where[index] = target
            load[source] -= rows / threads[source]
            load[target] += rows / threads[target]
        groups = {}
        for index, worker in enumerate(where):
            groups.setdefault(worker, []).append(index)
        self._groups = list(groups.items())
        self._workers = set(threads)
        self._checked = time.monotonic()

    def _workers_changed(self) -> bool:
        """Whether workers joined or left since the chunks were grouped (asked at most every
        ``_WORKER_CHECK_SECONDS``: it is a round trip to the scheduler)."""
        if time.monotonic() - self._checked < _WORKER_CHECK_SECONDS:
            return False
        self._checked = time.monotonic()
        return set(self.client.nthreads()) != self._workers

    # -- calls -------------------------------------------------------------------------------

    def _check_params(self, params) -> list:
        checked = self._tape._checked(params, len(self._param_specs), "parameter")
        return [np.ascontiguousarray(data) for data in checked]

    def _run(self, params, want_grad: bool) -> list:
        """One task per group; per-chunk ``(value, grads)`` in chunk order."""
        if self._closed:
            raise RuntimeError("this DataParallel is closed")
        params = self._check_params(params)
        if self._groups is None or self._workers_changed():
            self._assign()
        call = uuid.uuid4().hex
        futures = [
            self.client.submit(
                _evaluate,
                self._plugin,
                indices,
                params,
                want_grad,
                *[self._chunks[i] for i in indices],
                key=f"tapegrad-replay-{call}-{number}",
                workers=None if where is None else [where],
                allow_other_workers=True,
                pure=False,
            )
            for number, (where, indices) in enumerate(self._groups)
        ]
        # Drop the last call's futures only now: the client sends its messages to the scheduler
        # at most every 10 ms, so releasing them before submitting delayed every call by that.
        self._held = futures
        try:
            answers = self.client.gather(futures)
        except BaseException:
            self._groups = None  # a worker may have gone: ask where the chunks are next time
            raise
        results = [None] * len(self._chunks)
        for (where, indices), (ran_on, per_chunk) in zip(self._groups, answers):
            if ran_on != where:
                self._groups = None  # the chunks moved (a worker was lost): regroup next call
            for index, result in zip(indices, per_chunk):
                results[index] = result
        return results

    def _total(self, values):
        if self._weights is None:
            total = values[0]
            for value in values[1:]:
                total = total + value
            return total
        total = values[0] * self._weights[0]
        for value, weight in zip(values[1:], self._weights[1:]):
            total = total + value * weight
        return total

    def value_and_grad(self, *params):
        """``(value, grads)`` at ``params``: the loss and its gradient with respect to each
        parameter, summed (or averaged, ``reduction="mean"``) over the chunks.

        ``params`` are arrays or tensors of the recorded shapes and dtypes. ``value`` is a tensor
        of the tape output's shape and dtype; ``grads`` a tuple of tensors, one per parameter.
        Raises ``TypeError``/``ValueError`` naming a parameter of the wrong count, shape or dtype,
        and what a worker raised (``GuardError`` when a guard fails with no function to
        re-record). Blocks until every chunk is done; a worker lost meanwhile costs time, not
        data. Example: see the class."""
        results = self._run(params, want_grad=True)
        value = self._total([value for value, _ in results])
        grads = []
        for position, (shape, dtype) in enumerate(self._param_specs):
            grads.append(_wrap(np.asarray(self._total([g[position] for _, g in results]), dtype).reshape(shape)))
        return _wrap(np.asarray(value, self._output_dtype).reshape(self._output_shape)), tuple(grads)

    def __call__(self, *params):
        """The loss at ``params`` (forward replays only), summed or averaged over the chunks: a
        tensor of the output's shape and dtype. Raises as ``value_and_grad`` does."""
        results = self._run(params, want_grad=False)
        value = self._total([value for value, _ in results])
        return _wrap(np.asarray(value, self._output_dtype).reshape(self._output_shape))

    def scipy_objective(self):
        """A function of one float64 vector for ``scipy.optimize.minimize(..., jac=True)``: the
        parameters packed in order (each flattened, C order), returning ``(float, gradient)`` with
        the gradient packed the same way (float64). Raises ``ValueError`` for a vector of another
        length than the parameters' total size.

        >>> result = scipy.optimize.minimize(dp.scipy_objective(), w0, jac=True)  # doctest: +SKIP
        """
        sizes = [int(np.prod(shape)) for shape, _ in self._param_specs]
        ends = np.cumsum(sizes)

        def objective(theta):
            theta = np.asarray(theta, np.float64)
            if theta.shape != (int(ends[-1]),):
                raise ValueError(f"expected a vector of {int(ends[-1])} parameters, got shape {theta.shape}")
            params = [
                theta[end - size : end].reshape(shape).astype(dtype)
                for end, size, (shape, dtype) in zip(ends, sizes, self._param_specs)
            ]
            value, grads = self.value_and_grad(*params)
            return float(value._data.reshape(-1)[0]), np.concatenate([g._data.reshape(-1) for g in grads]).astype(
                np.float64
            )

        return objective

    # -- the workers' side, for inspection ------------------------------------------------------

    def worker_stats(self) -> dict:
        """``{worker address: counts}`` from every worker: ``tape_loads`` (times the tape arrived
        there: 1), ``recordings`` (tapes recorded there, for chunk shapes other than the tape's),
        ``guard_rerecords`` (chunks re-recorded because a guard failed), ``chunks`` (chunk
        replays run). Raises ``RuntimeError`` once closed."""
        if self._closed:
            raise RuntimeError("this DataParallel is closed")
        return self.client.run(_worker_stats, self._plugin)

    def close(self) -> None:
        """Remove the tape from the workers and release the chunks (and close the client if
        this object made it from an address). Idempotent; a closed object raises on calls."""
        if self._closed:
            return
        self._closed = True
        self._held = []
        try:
            self.client.unregister_worker_plugin(self._plugin)
        finally:
            self._chunks = []
            if self._owns_client:
                self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __len__(self) -> int:
        return len(self._chunks)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._chunks)} chunks, {sum(self.chunk_lengths)} rows"
        return f"<tapegrad.dask.DataParallel: {state}, reduction={self.reduction!r}>"


# -- the client's side helpers ---------------------------------------------------------------


def _client(distributed, client):
    if client is None:
        try:
            return distributed.default_client(), False
        except ValueError:
            raise RuntimeError(
                "DataParallel needs a dask.distributed Client: pass client=, or start one first "
                "(Client(LocalCluster()) or Client('scheduler-address:8786')) to be the default"
            ) from None
    if isinstance(client, str):
        return distributed.Client(client), True
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client or a scheduler address, got {type(client).__name__}")
    return client, False


def _chunk_arrays(index: int, chunk) -> list:
    if isinstance(chunk, (np.ndarray, Tensor)):
        chunk = (chunk,)
    if not isinstance(chunk, (tuple, list)) or not chunk:
        raise TypeError(f"chunk {index} must be a tuple of arrays (one per data input), got {type(chunk).__name__}")
    arrays = []
    for value in chunk:
        data = value._data if isinstance(value, Tensor) else value
        if not isinstance(data, np.ndarray):
            raise TypeError(f"chunk {index} holds a {type(value).__name__}; expected numpy arrays or tensors")
        arrays.append(np.ascontiguousarray(data))
    return arrays


def _check_chunks(tape, specs, fn, param_count: int) -> None:
    data_count = len(specs[0])
    if param_count < 1:
        raise ValueError(
            f"the tape has {len(tape.input_specs)} inputs and the chunks {data_count} arrays: record it as "
            "tapegrad.record(fn, *params, *data), with at least one parameter before the data"
        )
    recorded = tape.input_specs[param_count:]
    for index, spec in enumerate(specs):
        if len(spec) != data_count:
            raise ValueError(f"chunk {index} has {len(spec)} arrays, chunk 0 has {data_count}")
        for position, ((shape, dtype), (want_shape, want_dtype)) in enumerate(zip(spec, recorded)):
            name = tape._names[param_count + position]
            if dtype != want_dtype or len(shape) != len(want_shape):
                raise ValueError(
                    f"chunk {index}, array {position} ({name!r}): recorded as {len(want_shape)}-d {want_dtype}, "
                    f"got shape {shape} {dtype}"
                )
        if fn is None and [shape for shape, _ in spec] != [shape for shape, _ in recorded]:
            raise ValueError(
                f"chunk {index} has shapes {[s for s, _ in spec]}, the tape was recorded with "
                f"{[s for s, _ in recorded]}, and there is no function to record it again: pass fn= "
                "(a tape loaded from a file or unpickled does not carry its function)"
            )


# -- the workers' side -------------------------------------------------------------------------


def _hold(*arrays):
    """The task that holds a chunk on a worker: its result is the chunk."""
    return tuple(arrays)


def _same(chunk):
    """A chunk held again on another worker (``DataParallel._assign``)."""
    return chunk


def _chunk_specs(chunk, index: int) -> list:
    arrays = _chunk_arrays(index, chunk)
    return [(a.shape, a.dtype) for a in arrays]


def _evaluate(plugin: str, indices, params, want_grad: bool, *chunks):
    """One group's task: ``(worker address, [(value, grads) per chunk])``."""
    from distributed import get_worker

    worker = get_worker()
    installed = worker.plugins.get(plugin)
    if installed is None:
        raise RuntimeError(f"the tape {plugin} is not installed on worker {worker.address} (DataParallel closed?)")
    replayer = installed.replayer
    return worker.address, [
        replayer.evaluate(index, params, _chunk_arrays(index, chunk), want_grad)
        for index, chunk in zip(indices, chunks)
    ]


def _worker_stats(plugin: str, dask_worker=None) -> dict:
    installed = dask_worker.plugins.get(plugin)
    if installed is None or installed.replayer is None:
        return {}
    return {"tape_loads": _TAPE_LOADS.get(plugin, 0), **installed.replayer.stats}


class _TapePlugin(_WorkerPlugin):
    """Carries the tape and its function to each worker once; the worker's ``_Replayer``."""

    idempotent = False

    def __init__(self, name: str, tape: Tape, fn, rerecord: bool):
        self.name = name
        self.tape = tape
        self.fn = fn
        self.rerecord = rerecord
        self.replayer = None

    def __getstate__(self):
        import cloudpickle

        return {
            "name": self.name,
            "tape": pickle.dumps(self.tape),
            "fn": cloudpickle.dumps(self.fn),
            "rerecord": self.rerecord,
        }

    def __setstate__(self, state):
        self.name = state["name"]
        self.tape = pickle.loads(state["tape"])  # Tape.__setstate__ validates every row
        _TAPE_LOADS[self.name] = _TAPE_LOADS.get(self.name, 0) + 1
        self.fn = pickle.loads(state["fn"])
        self.rerecord = state["rerecord"]
        self.replayer = None

    def setup(self, worker=None):
        self.replayer = _Replayer(self.tape, self.fn, self.rerecord)

    def teardown(self, worker=None):
        self.replayer = None
        _TAPE_LOADS.pop(self.name, None)


class _Replayer:
    """The tapes of one worker: one per chunk shape (a free list of copies per shape, for workers
    running several tasks at once), and the tapes re-recorded for chunks whose guards failed."""

    def __init__(self, tape: Tape, fn, rerecord: bool):
        self.fn = fn
        self.rerecord = rerecord and fn is not None
        self.free = {_signature(tape.input_specs): [tape]}
        self.prototypes = {_signature(tape.input_specs): tape}
        self.by_chunk = {}
        self.lock = threading.Lock()
        self.stats = {"recordings": 0, "guard_rerecords": 0, "chunks": 0}

    def _acquire(self, signature, inputs) -> Tape:
        with self.lock:
            free = self.free.setdefault(signature, [])
            if free:
                return free.pop()
            prototype = self.prototypes.get(signature)
        if prototype is not None:  # another task is replaying it: a copy, through pickle's validation
            return pickle.loads(pickle.dumps(prototype))
        if self.fn is None:
            raise ValueError(f"no tape for inputs of shapes {[s for s, _ in signature]} and no function to record one")
        tape = record(self.fn, *inputs)
        with self.lock:
            self.stats["recordings"] += 1
            self.prototypes.setdefault(signature, tape)
        return tape

    def _release(self, signature, tape: Tape) -> None:
        with self.lock:
            self.free[signature].append(tape)

    def evaluate(self, index: int, params, chunk, want_grad: bool):
        inputs = (*params, *chunk)
        signature = _signature([(a.shape, a.dtype) for a in inputs])
        with self.lock:
            self.stats["chunks"] += 1
            own = self.by_chunk.pop(index, None)
        if own is not None:
            try:
                result = _replay(own, inputs, len(params), want_grad)
            except GuardError:
                pass  # its branch no longer applies: try the shape's tape, then record again
            else:
                with self.lock:
                    self.by_chunk[index] = own
                return result
        tape = self._acquire(signature, inputs)
        try:
            return _replay(tape, inputs, len(params), want_grad)
        except GuardError:
            if not self.rerecord:
                raise
        finally:
            self._release(signature, tape)
        own = record(self.fn, *inputs)
        result = _replay(own, inputs, len(params), want_grad)
        with self.lock:
            self.stats["guard_rerecords"] += 1
            self.by_chunk[index] = own
        return result


def _signature(specs) -> tuple:
    return tuple((tuple(shape), np.dtype(dtype).str) for shape, dtype in specs)


def _replay(tape: Tape, inputs, param_count: int, want_grad: bool):
    if len(tape.output_rows) != 1 or int(np.prod(tape._shape(tape.output_rows[0]))) != 1:
        raise ValueError("the recorded function must return one scalar (the loss on its chunk)")
    if not want_grad:
        return np.asarray(tape(*inputs)._data, np.float64).reshape(-1)[0], ()
    value, grads = tape.value_and_grad(*inputs, argnums=tuple(range(param_count)))  # not the data's
    return np.asarray(value._data, np.float64).reshape(-1)[0], [g._data for g in grads]
