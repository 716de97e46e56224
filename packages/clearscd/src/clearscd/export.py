"""``clearscd export --format onnx``: the exact fast inference path as an ONNX graph with dynamic batch and size.

The exported network is :class:`clearscd.model.fast.FastClearSCD` (BatchNorms folded, both dates in one batch):
input ``imgs`` B×6×H×W float (T1 RGB then T2 RGB, ImageNet-normalised, any H×W: padded by edge replication to
multiples of 32 inside the graph and cropped back), outputs ``seg_A``/``seg_B`` B×K×H×W semantic logits and ``BCD``
B×1×H×W change logit, as ``ClearSCD(imgs, test=True)``. Configurations without the change head (``only_seg``) export
the two semantic outputs only.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from clearscd.model.clearscd import ClearSCD
from clearscd.model.fast import FastClearSCD, build_fast

__all__ = ["OnnxClearSCD", "check_export", "export_model", "output_names"]

PARITY_RTOL = 1e-4  # fixture README: max|a-b| <= 1e-4 * max(1, max|b|)


class OnnxClearSCD(nn.Module):
    """Tuple-output wrapper of the fast path for export: B×6×H×W → (seg_A, seg_B[, BCD]); pads to ×32 in-graph."""

    def __init__(self, fast: FastClearSCD) -> None:
        super().__init__()
        self.fast = fast

    def forward(self, imgs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        height, width = imgs.shape[2], imgs.shape[3]
        padded = F.pad(imgs, (0, (32 - width % 32) % 32, 0, (32 - height % 32) % 32), mode="replicate")
        mid = self.fast.forward_intermediates(padded)
        outputs: tuple[torch.Tensor, ...] = ()
        for seg in (mid["seglow_A"], mid["seglow_B"]):
            if self.fast.config.downsample_seg:
                seg = F.interpolate(seg, scale_factor=4.0, mode="bilinear", align_corners=True)
            outputs += (seg[:, :, :height, :width],)
        if mid["BCD"] is not None:
            outputs += (mid["BCD"][:, :, :height, :width],)
        return outputs


def output_names(model: ClearSCD) -> list[str]:
    return ["seg_A", "seg_B"] + ([] if model.config.only_seg else ["BCD"])


def export_model(model: ClearSCD, out: str | Path, size: int = 512) -> Path:
    """Write the ONNX graph of ``model``'s fast path to ``out`` (atomic; dynamic B, H, W; example input size²)."""
    from semcommon.export import export_onnx

    wrapper = OnnxClearSCD(build_fast(model.cpu().eval(), channels_last=False, batch_dates=True)).eval()
    example = (torch.zeros(1, 6, size, size),)
    names = output_names(model)
    axes = {"imgs": {0: "B", 2: "H", 3: "W"}} | {name: {0: "B", 2: "H", 3: "W"} for name in names}
    return export_onnx(wrapper, example, out, input_names=["imgs"], output_names=names, dynamic_axes=axes)


def check_export(path: str | Path, model: ClearSCD, size: int = 512, seed: int = 0) -> float:
    """Run the graph with onnxruntime on a random 1×6×size×(size+16) pair (a width not a multiple of 32) and compare
    with the PyTorch reference path (``model(imgs, test=True)``) within the parity tolerance, 1e-4 × max(1, max|ref|).
    Returns the largest abs difference; raises AssertionError when over."""
    from clearscd.inference import ReferenceNetwork
    from semcommon.export import check_onnx

    model = model.cpu().eval()
    imgs = torch.randn(1, 6, size, size + 16, generator=torch.Generator().manual_seed(seed))
    reference = ReferenceNetwork(model)
    with torch.no_grad():
        scale = max(1.0, max(float(v.abs().max()) for v in reference(imgs).values() if v is not None))
    return check_onnx(path, reference, (imgs,), atol=PARITY_RTOL * scale)
