"""``semstereo demo``: build the paper model, run one forward pass on a generated input, time it."""

from __future__ import annotations

import torch

from semcommon.runtime import count_parameters, measure_latency, resolve_device
from semstereo.config import us3d_config
from semstereo.model import SemStereo


def run_demo(device: str = "cpu", size: int = 128) -> dict[str, object]:
    """Return one summary row: model, parameters, input/output shapes, latency (ms) of an eval forward."""
    dev = resolve_device(device)
    torch.manual_seed(0)
    model = SemStereo(us3d_config()).to(dev).eval()
    left = torch.randn(1, 3, size, size, device=dev)
    right = torch.roll(left, shifts=-4, dims=-1)  # a constant 4 px disparity
    with torch.no_grad():
        out = model(left, right)
        latency = measure_latency(lambda: model(left, right), warmup=0, repeats=1)
    outputs = f"disparity: {tuple(out.disparity.shape)}, label_left: {tuple(out.label_left.shape)}"
    return {
        "model": "SemStereo (US3D, mobilevitv2_100, maxdisp 64)",
        "params": count_parameters(model),
        "input": f"2 x {tuple(left.shape)}",
        "outputs": outputs,
        "latency_ms": round(latency, 1),
    }
