"""Higher-order gradients (``create_graph=True``)."""

from __future__ import annotations


def run_create_graph(roots, gradients, retain_graph, *, collect=None):
    raise NotImplementedError("create_graph=True (higher-order gradients) is not supported yet")
