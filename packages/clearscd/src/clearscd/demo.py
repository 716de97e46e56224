"""``clearscd demo``: build the paper model, run one forward pass on a generated input, time it."""

from __future__ import annotations


def run_demo(device: str = "cpu") -> dict[str, object]:
    """Return one summary row: package, parameters, output shapes, latency (ms)."""
    raise NotImplementedError("clearscd: the paper model is not implemented yet")
