"""The comparison workloads (``benchmarks/workloads.py``) compute the same thing in each backend:
a ratio of two timings means something only then."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import workloads


@pytest.mark.parametrize("workload", ["classifier", "cnn"])
def test_a_training_workload_takes_pytorchs_steps(workload):
    pytest.importorskip("torch")
    ours, theirs = workloads.make(workload, "tapegrad"), workloads.make(workload, "torch")
    for _ in range(3):  # (each already took one step: the losses of steps 2 to 4, after updates)
        np.testing.assert_allclose(float(ours()), float(theirs()), rtol=1e-4)
