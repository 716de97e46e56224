"""ONNX export of SemStereo at a fixed input size (``semstereo export``).

The traced graph fixes the pair size: timm's MobileViTv2 blocks compute their patch grid, and this model its
1/4-scale hypothesis grids and volume shapes, from the input size in Python, and the exported file keeps them, so a
file runs only at the ``H×W`` it was exported for (any batch size is not supported either); export one file per tile
size. (The ``torch.export``-based exporter does not get through either: README, Speed.) Every op of the network
(3-D convolutions, window attention, ``grid_sample``, ``sort``/``gather`` top-k, trilinear resizing) has an ONNX
equivalent (opset 18).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from semcommon.export import check_onnx, export_onnx
from semstereo.model import SemStereo

DISP_ATOL = 2e-3  # fixture README: disparities within 2e-3 px
LOGIT_RTOL = 1e-4


class ExportWrapper(nn.Module):
    """``(left, right)`` ``1×3×H×W`` ImageNet-normalised -> ``(disparity 1×H×W, class logits 1×6×H×W)``."""

    def __init__(self, model: SemStereo) -> None:
        super().__init__()
        self.model = model

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(left, right)
        return out.disparity, out.label_left


def export_model(model: SemStereo, path: str | Path, height: int, width: int, check: bool = True) -> float | None:
    """Export ``model`` (eval) for ``height×width`` pairs to ``path``; with ``check`` compare onnxruntime with
    PyTorch on a random pair and return the largest abs difference (AssertionError beyond the parity tolerances)."""
    wrapper = ExportWrapper(model.eval()).eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    left, right = torch.randn(2, 1, 3, height, width, generator=generator).to(device).unbind(0)
    export_onnx(wrapper, (left, right), path, input_names=["left", "right"], output_names=["disparity", "label"])
    if not check:
        return None
    return check_onnx(path, wrapper, (left, right), atol=DISP_ATOL, rtol=LOGIT_RTOL)
