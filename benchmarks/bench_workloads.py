"""asv suites for the workloads of shared/docs/performance.md, one class per workload, each
parametrized by backend so ``asv run --python=same`` prints tapegrad beside its peers.

Backends that are not installed (torch) or have no reference for a workload are skipped. JIT
compilation happens in ``setup`` (each workload runs once there), never in a timed body.
"""

from __future__ import annotations

import os

from .workloads import available, make

os.environ.setdefault("OMP_NUM_THREADS", "1")


class _Workload:
    backends = ("tapegrad", "torch")
    params = ["tapegrad", "torch", "numpy"]
    param_names = ["backend"]
    workload = ""

    def setup(self, backend):
        if backend not in self.backends or not available(backend):
            raise NotImplementedError(f"{self.workload} has no {backend} version here")
        self.run = make(self.workload, backend)
        self.run()


class ChainRecord(_Workload):
    """The tutorial's loop, recording only: 1001 ops on 3 elements."""

    workload = "chain_record"
    backends = ("tapegrad", "torch", "numpy")

    def time_chain_record(self, backend):
        self.run()


class ChainBackward(_Workload):
    """The backward of the recorded 1001-op chain."""

    workload = "chain_backward"

    def time_chain_backward(self, backend):
        self.run()


class ChainReplay(_Workload):
    """The chain recorded once and replayed (forward+backward) at a new input."""

    workload = "chain_replay"
    backends = ("tapegrad",)

    def time_chain_replay(self, backend):
        self.run()


class MlpReplay(_Workload):
    """The mlp step recorded once and replayed: loss and parameter gradients."""

    workload = "mlp_replay"
    backends = ("tapegrad",)

    def time_mlp_replay(self, backend):
        self.run()


class Mlp(_Workload):
    """One float32 training step of the 64-128-10 MLP on a batch of 32."""

    workload = "mlp"
    backends = ("tapegrad", "torch", "numpy")

    def time_mlp_step(self, backend):
        self.run()

    def peakmem_mlp_step(self, backend):
        self.run()


class Big(_Workload):
    """(x * y + sin(x)).sum().backward() over 10^6 float32 elements."""

    workload = "big"
    backends = ("tapegrad", "torch", "numpy")

    def time_big_step(self, backend):
        self.run()

    def peakmem_big_step(self, backend):
        self.run()


class BigReplay(_Workload):
    """The big step recorded once and replayed: value and both gradients."""

    workload = "big_replay"
    backends = ("tapegrad",)

    def time_big_replay(self, backend):
        self.run()


class GraphReplay(_Workload):
    """The 10,000-op scalar graph, forward+backward at new inputs: a replayed tape against a
    hand-written numba switch interpreter over the same op list (backend ``numpy``)."""

    workload = "graph_replay"
    backends = ("tapegrad", "numpy")
    timeout = 300

    def time_graph_replay(self, backend):
        self.run()


class GraphRecord(_Workload):
    """Recording the 10,000-op graph onto a tape."""

    workload = "graph_record"
    backends = ("tapegrad",)

    def time_graph_record(self, backend):
        self.run()


class GraphEager(_Workload):
    """Eager forward+backward of the 10,000-op graph (PyTorch's only option)."""

    workload = "graph_eager"
    timeout = 300

    def time_graph_eager(self, backend):
        self.run()


class Cold:
    """``import`` and the first backward, each in a fresh interpreter (numba cache warm)."""

    params = ["tapegrad", "torch"]
    param_names = ["backend"]
    repeat = 5

    def setup(self, backend):
        if not available(backend):
            raise NotImplementedError

    def timeraw_cold_import(self, backend):
        return f"import {backend}"

    def timeraw_cold_first_backward(self, backend):
        return f"import {backend} as m\nx = m.ones(3, requires_grad=True)\n(x * x).sum().backward()"


class ColdEmptyCache:
    """Issue 15's cold-start figures (``benchmarks/cold.py``): each sample a fresh interpreter with
    numba's cache in a new, empty directory, as on a fresh install from source. Compiled, never
    read from machine code shipped with the package (``TAPEGRAD_SHIPPED_KERNELS=0``): asv's wheels
    carry none, and a tree where ``python -m tapegrad._kernels.ship`` ran must give the same
    history."""

    repeat = 1
    number = 1
    timeout = 600

    _EMPTY_CACHE = (
        "import os, tempfile\nos.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp()\n"
        "os.environ['TAPEGRAD_SHIPPED_KERNELS'] = '0'\nimport tapegrad as tg\n"
    )

    # Every kernel compiled before it runs, as without tiered compilation (the others run small
    # sweeps as Python while the interpreters compile in the background: tapegrad/_kernels/tiers.py)
    _IN_PROCESS = "import os\nos.environ['TAPEGRAD_BACKGROUND_COMPILE'] = '0'\n"
    _TIERED = "import os\nos.environ['TAPEGRAD_BACKGROUND_COMPILE'] = '1'\n"

    def timeraw_tutorial_first_backward(self):
        from .cold import TUTORIAL_BACKWARD

        return TUTORIAL_BACKWARD, self._TIERED + self._EMPTY_CACHE

    def timeraw_first_replay_after_it(self):
        from .cold import TUTORIAL_BACKWARD, TUTORIAL_REPLAY

        return TUTORIAL_REPLAY, self._TIERED + self._EMPTY_CACHE + TUTORIAL_BACKWARD

    def timeraw_one_op_backward(self):
        from .cold import SINGLE_OP_BACKWARD

        return SINGLE_OP_BACKWARD, self._TIERED + self._EMPTY_CACHE

    def timeraw_one_op_replay(self):
        from .cold import SINGLE_OP_REPLAY

        return SINGLE_OP_REPLAY, self._TIERED + self._EMPTY_CACHE

    def timeraw_one_op_backward_compiled_in_process(self):
        from .cold import SINGLE_OP_BACKWARD

        return SINGLE_OP_BACKWARD, self._IN_PROCESS + self._EMPTY_CACHE

    def timeraw_one_op_replay_compiled_in_process(self):
        from .cold import SINGLE_OP_REPLAY

        return SINGLE_OP_REPLAY, self._IN_PROCESS + self._EMPTY_CACHE

    def timeraw_every_kernel(self):
        from .cold import EVERY_KERNEL

        return EVERY_KERNEL, self._IN_PROCESS + self._EMPTY_CACHE


class ClassifierStep(_Workload):
    """The digits example's step on synthetic data: nn.Linear 64-128-10 with ReLU,
    cross-entropy and Adam, batch 32."""

    workload = "classifier"

    def time_classifier_step(self, backend):
        self.run()


class CnnStep(_Workload):
    """A LeNet-like CNN's SGD step on 32 28x28 images (conv, batch norm, pooling, linear)."""

    workload = "cnn"

    def time_cnn_step(self, backend):
        self.run()


class LstmStep(_Workload):
    """An LSTM's SGD step over 20 time steps of a batch of 16."""

    workload = "lstm"

    def time_lstm_step(self, backend):
        self.run()


class PerSample(_Workload):
    """Per-sample gradients of the digits MLP, batch 256, one thread: vmap(grad(loss)) of
    tapegrad.func (recording the loss on every call) and torch.func."""

    workload = "per_sample"

    def time_per_sample(self, backend):
        self.run()


class PerSampleReplay(_Workload):
    """The same loss recorded once and its tape mapped: vmap(tape.value_and_grad)."""

    workload = "per_sample_replay"
    backends = ("tapegrad",)

    def time_per_sample_replay(self, backend):
        self.run()
