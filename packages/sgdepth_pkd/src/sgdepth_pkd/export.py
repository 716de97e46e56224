"""``sgdepth-pkd export --format onnx``: the depth + segmentation network as ONNX with dynamic batch and image size.

The graph is the inference network — shared encoder with block self-attention, decoder, depth and segmentation
tails — B×3×H×W ImageNet-normalised images (H, W multiples of 32) → ``disp_0`` … ``disp_{R-1}`` (sigmoid
disparities, full resolution first) and ``segmentation_logits`` (B×C×H×W). The pose network (it needs two frames
and is not used at inference) is not exported; ``('segmentation_mask', 0)`` is the caller's one-line mapping of the
logits' argmax (see :meth:`sgdepth_pkd.model.sgdepth.SGDepth.segmentation_mask`), left out because an argmax at a
near-tie may flip between runtimes. BatchNorm stays a graph node: onnxruntime folds it itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from sgdepth_pkd.model.sgdepth import SGDepth

__all__ = ["InferenceGraph", "add_export_arguments", "export_model", "run_export"]

RTOL = 1e-4  # the fixture README tolerance: 1e-4 x max(1, max|reference|)


class InferenceGraph(nn.Module):
    """The exported function: B×3×H×W → (disp_0, …, disp_{R-1}, segmentation_logits), the reference operations."""

    def __init__(self, model: SGDepth) -> None:
        super().__init__()
        self.model = model

    def output_names(self) -> list[str]:
        return [*(f"disp_{r}" for r in range(self.model.config.resolutions_depth)), "segmentation_logits"]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        features = model.common.encoder(images)
        slots = model.common.decoder(tuple(reversed(features)))
        return (*model.depth(slots), model.seg(slots))


def export_model(model: SGDepth, path: str | Path, size: tuple[int, int] = (192, 640)) -> Path:
    """Export ``model`` (traced at 1×3×``size``) to ``path``; batch, height and width stay dynamic."""
    from semcommon.export import export_onnx

    if size[0] % 32 or size[1] % 32 or min(size) < 64:
        raise ValueError(f"--size: height and width must be multiples of 32 and >= 64, got {size}")
    graph = InferenceGraph(model.eval())
    device = next(model.parameters()).device
    example = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)
    names = graph.output_names()
    dynamic = {"images": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({name: {0: "batch", 2: f"{name}_height", 3: f"{name}_width"} for name in names})
    return export_onnx(graph, (example,), path, input_names=["images"], output_names=names, dynamic_axes=dynamic)


def check_export(path: str | Path, model: SGDepth, images: torch.Tensor) -> float:
    """onnxruntime vs PyTorch on ``images``, at the fixture tolerance; returns the max abs difference."""
    from semcommon.export import check_onnx

    graph = InferenceGraph(model.eval())
    with torch.no_grad():
        scale = max(1.0, max(float(out.abs().max()) for out in graph(images)))
    return check_onnx(path, graph, (images,), atol=RTOL * scale)


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    parser.add_argument("--checkpoint", required=True, help="our RUN_DIR/checkpoints/last.pt or the authors' model.pth")
    parser.add_argument("--out", required=True, help="output file, e.g. sgdepth.onnx (never overwritten)")
    parser.add_argument(
        "--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="tracing size (default: the model's)"
    )
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime check after the export")


def run_export(args: argparse.Namespace) -> int:
    from sgdepth_pkd.checkpoint import load_model

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"{out}: exists (choose another --out)")
    model = load_model(args.checkpoint)
    size = tuple(args.size) if args.size else (model.config.height, model.config.width)
    export_model(model, out, size)
    print(f"wrote {out} (inputs: images B×3×H×W, H and W multiples of 32; outputs: disparities and logits)")
    if not args.no_check:
        # a different batch and size than the tracing input: the dynamic axes are exercised
        images = torch.randn(2, 3, size[0] + 32, size[1] + 64, generator=torch.Generator().manual_seed(1))
        try:
            diff = check_export(out, model, images)
        except ImportError as exc:
            print(f"not checked: {exc}")
        else:
            print(f"onnxruntime vs PyTorch at 2×3×{size[0] + 32}×{size[1] + 64}: max abs diff {diff:.2e} (within 1e-4)")
    return 0
