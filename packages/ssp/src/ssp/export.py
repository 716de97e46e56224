"""``ssp export --format onnx``: the image segmenter (Hiera + UperNet) and RAFT as ONNX graphs.

- ``segmenter`` (of an image-model or SSP checkpoint): ``image`` ``B×3×H×W`` (ImageNet-normalised; B, H, W dynamic,
  H and W multiples of 32) -> ``logits`` ``B×n×H×W`` (incl. the bicubic upsampling). UperNet's adaptive pooling is
  written as products with bin-averaging matrices while exporting (ONNX has no adaptive pooling).
- ``raft`` (of a RAFT or SSP checkpoint): ``image1``, ``image2`` ``B×3×H×W`` -> ``flow_low`` ``B×2×H/8×W/8``,
  ``flow_up`` ``B×2×H×W``; the iteration count is fixed at export (the loop is unrolled) and the graph holds the
  all-pairs correlation volume (memory O(H²W²)): the windowed lookup (a chunked autograd function / Triton kernel)
  has no ONNX form.
The SSP video step is not exported: its registration (OpenCV / DISK + LightGlue + RANSAC) is data-dependent
host code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ssp.model import RAFT, HieraUperNet, SSPVideoModel, set_impl

__all__ = ["RaftGraph", "export_raft", "export_segmenter", "segmenter_of"]


def segmenter_of(model: nn.Module) -> HieraUperNet:
    """The image segmenter of an image-model or SSP checkpoint's model."""
    if isinstance(model, SSPVideoModel):
        return model.base_model
    if isinstance(model, HieraUperNet):
        return model
    raise ValueError(f"export: a {type(model).__name__} checkpoint; expected an SSP or image segmentation model")


def export_segmenter(model: nn.Module, out: str | Path, size: tuple[int, int], opset: int = 18) -> Path:
    """Write the segmenter of ``model`` to ``out`` (ONNX, dynamic batch/height/width; traced at ``size``).

    The reference implementation is traced (the fast path's per-size position-embedding reuse would freeze the
    traced size); onnxruntime applies its own BN folding.
    """
    from semcommon.export import export_onnx

    if size[0] % 32 or size[1] % 32 or min(size) < 32:
        raise ValueError(f"--size: height and width must be positive multiples of 32, got {list(size)}")
    segmenter = set_impl(segmenter_of(model).eval(), "reference")
    device = next(segmenter.parameters()).device
    example = torch.zeros(1, 3, *size, device=device)
    return export_onnx(
        segmenter, (example,), out, input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "B", 2: "H", 3: "W"}, "logits": {0: "B", 2: "H", 3: "W"}}, opset=opset,
    )  # fmt: skip


class RaftGraph(nn.Module):
    """RAFT in test mode with a fixed iteration count: ``(image1, image2)`` -> ``(flow_low, flow_up)``."""

    def __init__(self, raft: RAFT, iters: int = 20) -> None:
        super().__init__()
        self.raft, self.iters = raft, iters

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.raft(image1, image2, iters=self.iters, test_mode=True)


def export_raft(model: nn.Module, out: str | Path, size: tuple[int, int], iters: int = 20, opset: int = 18) -> Path:
    """Write RAFT (a :class:`RAFT` or an SSP model's ``flow_model``) to ``out``: dynamic batch/height/width, traced at
    ``size`` with the fast path's all-pairs lookup, ``iters`` iterations unrolled."""
    from semcommon.export import export_onnx

    raft = model.flow_model if isinstance(model, SSPVideoModel) else model
    if not isinstance(raft, RAFT):
        raise ValueError(f"export --model raft: a {type(model).__name__} checkpoint holds no RAFT")
    if size[0] % 8 or size[1] % 8 or min(size) < 128:
        raise ValueError(f"--size: RAFT needs height and width >= 128 and multiples of 8, got {list(size)}")
    if iters < 1:
        raise ValueError(f"--iters: expected >= 1, got {iters}")
    graph = RaftGraph(set_impl(raft.eval(), "fast"), iters)
    graph.raft.max_corr_mib = float("inf")  # the traced graph holds the all-pairs volume (see the module docstring)
    device = next(raft.parameters()).device
    example = torch.zeros(1, 3, *size, device=device)
    axes = {0: "B", 2: "H", 3: "W"}
    return export_onnx(
        graph, (example, example.clone()), out, input_names=["image1", "image2"],
        output_names=["flow_low", "flow_up"], opset=opset,
        dynamic_axes={"image1": axes, "image2": axes, "flow_low": {0: "B", 2: "h", 3: "w"}, "flow_up": axes},
    )  # fmt: skip
