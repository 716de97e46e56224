"""``semaglue demo``: build the paper model, run one forward pass on a generated input, time it."""

from __future__ import annotations

import time

import numpy as np
import torch

from semaglue.config import MatchingConfig, yfcc_superpoint_config
from semaglue.model import Matching
from semcommon.runtime import count_parameters, resolve_device, seed_everything


def _generated_pair(height: int = 192, width: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random grey image and a shifted copy (``1×1×H×W`` in [0, 1])."""
    rng = np.random.default_rng(0)
    coarse = rng.random((height // 16 + 2, width // 16 + 2)).astype(np.float32)
    image = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None, None], scale_factor=16, mode="bicubic")
    image = image.clamp(0, 1)
    return image[..., :height, :width].contiguous(), image[..., 8 : height + 8, 12 : width + 12].contiguous()


def run_demo(device: str = "cpu") -> dict[str, object]:
    """Return one summary row: model, parameters, input, output shapes, latency (ms)."""
    seed_everything(0)
    dev = resolve_device(device)
    # paper networks; 512 keypoints per image (YFCC uses 2048) keep the CPU pass at a few seconds
    model = Matching(MatchingConfig(superpoint=yfcc_superpoint_config(max_keypoints=512))).to(dev).eval()
    image0, image1 = _generated_pair()
    data = {"image0": image0.to(dev), "image1": image1.to(dev)}
    with torch.no_grad():
        start = time.perf_counter()
        pred = model(data)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        latency = (time.perf_counter() - start) * 1000
    names = ("keypoints0", "keypoints1", "descriptors0", "feature_map0", "matches0", "matching_scores0")
    return {
        "model": "SemaGlue Matching (SuperPoint + SegNeXt MSCAN-T + 9-layer SemaGlue), 512 keypoints",
        "params": count_parameters(model),
        "input": f"image0/image1: {tuple(image0.shape)}",
        "outputs": ", ".join(f"{k}: {tuple(pred[k].shape)}" for k in names),
        "latency_ms": latency,
    }
