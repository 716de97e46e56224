"""``sgdepth-pkd demo``: build the paper model, run one forward pass on a generated input, time it."""

from __future__ import annotations

import torch

from semcommon.runtime import count_parameters, measure_latency, resolve_device
from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.model.sgdepth import build_sgdepth

__all__ = ["run_demo"]


def run_demo(device: str = "cpu") -> dict[str, object]:
    """Return one summary row: model, parameters, input/output shapes, latency (ms) of a depth+seg+pose pass.

    The paper model (ResNet50 / ResNet18 pose) is randomly initialised; the input is 3 generated 1×3×192×640
    frames (previous, current, next) in one dataset dict with both purposes.
    """
    dev = resolve_device(device)
    config = SGDepthConfig()
    generator = torch.Generator().manual_seed(0)
    frames = {
        offset: torch.randn(1, 3, config.height, config.width, generator=generator).to(dev) for offset in (-1, 0, 1)
    }
    batch = ({**{("color_aug", f, 0): x for f, x in frames.items()}, "purposes": [["depth"], ["segmentation"]]},)
    model = build_sgdepth(config).to(dev).eval()
    with torch.no_grad():
        outputs = model(batch)[0]
        latency = measure_latency(lambda: model(batch), warmup=1, repeats=3)
    shapes = ", ".join(f"{key}: {list(value.shape)}" for key, value in outputs.items())
    return {
        "model": "SGDepth + block self-attention (ResNet50, ResNet18 pose, split 1, 4 scales; paper config)",
        "params": count_parameters(model),
        "input": str(list(frames[0].shape)),
        "outputs": shapes,
        "latency_ms": round(latency, 2),
    }
