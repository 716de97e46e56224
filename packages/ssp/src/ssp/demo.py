"""``ssp demo``: build the paper's SSP model (random init), fuse one frame pair, time it."""

from __future__ import annotations

import torch

from semcommon.runtime import count_parameters, measure_latency, resolve_device
from ssp.model.ssp import build_ssp_model


def run_demo(device: str = "cpu", size: tuple[int, int] = (224, 288)) -> dict[str, object]:
    """One SSP forward (Hiera-S UperNet, conv similarity; RAFT/DISK/LightGlue weights present but unused here)
    on a generated frame pair with a given homography (a 3-px shift). Returns one summary row."""
    torch.manual_seed(0)
    target = resolve_device(device)
    model = build_ssp_model().to(target).eval()
    frames = torch.randn(1, 3, *size, device=target)
    last_frames = torch.roll(frames, shifts=3, dims=-1)
    homos = torch.tensor([[[1.0, 0.0, -3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], device=target)
    result: dict[str, torch.Tensor] = {}

    def step() -> None:
        with torch.no_grad():
            result.update(model(frames, last_frames, homos=homos))

    latency = measure_latency(step, warmup=1, repeats=2)
    shown = ("out", "sim", "last_out", "last_featmap_warped")
    return {
        "model": "ssp_uavid (SSP / KD-SSP: Hiera-S + UperNet, conv similarity, RAFT, DISK+LightGlue slot)",
        "params": count_parameters(model),
        "input": f"frames, last_frames {tuple(frames.shape)}, homos {tuple(homos.shape)}",
        "outputs": ", ".join(f"{name}: {tuple(result[name].shape)}" for name in shown),
        "latency_ms": round(latency, 1),
    }
