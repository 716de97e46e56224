"""``clearscd demo``: build the paper model, run one forward pass on a generated input, time it."""

from __future__ import annotations

import torch

from clearscd.model import build_clearscd
from semcommon.runtime import count_parameters, measure_latency, resolve_device

DEMO_SIZE = 256


def run_demo(device: str = "cpu") -> dict[str, object]:
    """Return one summary row: model, parameters, input/output shapes, latency (ms) of an inference pass."""
    dev = resolve_device(device)
    generator = torch.Generator().manual_seed(0)
    model = build_clearscd().to(dev).eval()
    imgs = torch.randn(1, 6, DEMO_SIZE, DEMO_SIZE, generator=generator).to(dev)
    with torch.no_grad():
        outputs = model(imgs, test=True)
        latency = measure_latency(lambda: model(imgs, test=True), warmup=1, repeats=3)
    shapes = ", ".join(f"{k}: {list(outputs[k].shape)}" for k in ("seg_A", "seg_B", "BCD"))
    return {
        "model": "ClearSCD (efficientnet-b0, FPN, deep CVAPS; paper config)",
        "params": count_parameters(model),
        "input": str(list(imgs.shape)),
        "outputs": shapes,
        "latency_ms": round(latency, 2),
    }
