"""``semaglue export --format onnx``: the parts of the pipeline whose operations ONNX can express, checked against
PyTorch with onnxruntime.

- ``superpoint``: the dense network (``image`` ``B×1×H×W`` -> ``scores`` ``B×H×W`` heat-map after the softmax and
  depth-to-space, ``descriptors`` ``B×256×H/8×W/8``), dynamic batch and image size (H, W multiples of 8). The
  keypoint selection (NMS, threshold, border, top-k) returns a different number of keypoints per image: run
  :func:`semaglue.model.superpoint.simple_nms` / ``select_keypoints`` on the heat-map outside the graph.
- ``segnext``: MSCAN-T + the stride-8 concatenation (``image`` ``B×1×H×W`` -> ``feature_map`` ``B×480×H/8×W/8``),
  dynamic batch and image size.
- ``matcher``: SemaGlue for a FIXED number of keypoints per image (``--keypoints``) and a fixed semantic-map size
  (``--height/--width`` of the image it was computed from): the semantic processor resamples the snake-flattened map
  to the keypoint count and the query convolution is evaluated at positions computed from both sizes, so they are
  constants of the graph. Inputs ``keypoints0/1`` ``1×K×2``, ``descriptors0/1`` ``1×256×K``, ``feature_map0/1``;
  outputs ``matches0/1``, ``matching_scores0/1``. Pad or subsample keypoints to ``K``. The adaptive mode
  (data-dependent early stop and pruning) and padding masks are not exportable.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch
from torch import nn

from semaglue.checkpoint import load_pretrained
from semaglue.model import SegNext, SemaGlue, SuperPoint, set_impl
from semcommon.export import check_onnx, export_onnx

MODELS = ("superpoint", "segnext", "matcher")


class SuperPointDense(nn.Module):
    """``image`` ``B×1×H×W`` -> (``scores`` ``B×H×W``, ``descriptors`` ``B×256×H/8×W/8``)."""

    def __init__(self, model: SuperPoint) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.dense(image)


class SegNextMap(nn.Module):
    """``image`` ``B×1×H×W`` -> ``feature_map`` ``B×480×H/8×W/8``."""

    def __init__(self, model: SegNext) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)["feature_map"]


class MatcherFixed(nn.Module):
    """SemaGlue on one pair with a fixed keypoint count and image size ``(H, W)`` (see the module docstring)."""

    def __init__(self, model: SemaGlue, height: int, width: int) -> None:
        super().__init__()
        self.model, self.size = model, (height, width)

    def forward(
        self,
        keypoints0: torch.Tensor,
        keypoints1: torch.Tensor,
        descriptors0: torch.Tensor,
        descriptors1: torch.Tensor,
        feature_map0: torch.Tensor,
        feature_map1: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        size = torch.tensor(self.size)
        out = self.model(
            {
                "keypoints0": keypoints0,
                "keypoints1": keypoints1,
                "descriptors0": descriptors0,
                "descriptors1": descriptors1,
                "feature_map0": feature_map0,
                "feature_map1": feature_map1,
                "image_size0": size,
                "image_size1": size,
            }
        )
        return out["matches0"], out["matches1"], out["matching_scores0"], out["matching_scores1"]


def build(
    kind: str, checkpoint: str | Path, height: int, width: int, keypoints: int, impl: str = "fast"
) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str], list[str], dict[str, dict[int, str]]]:
    """The exportable module with its weights, example inputs, input/output names and dynamic axes."""
    if height % 8 or width % 8 or min(height, width) < 16:
        raise ValueError(f"--height/--width must be multiples of 8 and >= 16, got {height}x{width}")
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 1, height, width, generator=generator)
    if kind == "superpoint":
        model = set_impl(load_pretrained(checkpoint, "superpoint"), "fast")
        module: nn.Module = SuperPointDense(model)  # type: ignore[arg-type]
        axes = {"image": {0: "B", 2: "H", 3: "W"}, "scores": {0: "B", 1: "H", 2: "W"}}
        axes["descriptors"] = {0: "B", 2: "H8", 3: "W8"}
        return module, (image,), ["image"], ["scores", "descriptors"], axes
    if kind == "segnext":
        model = set_impl(load_pretrained(checkpoint, "segnext"), "fast")
        axes = {"image": {0: "B", 2: "H", 3: "W"}, "feature_map": {0: "B", 2: "H8", 3: "W8"}}
        return SegNextMap(model), (image,), ["image"], ["feature_map"], axes  # type: ignore[arg-type]
    if kind != "matcher":
        raise ValueError(f"--model must be one of {MODELS}, got {kind!r}")
    if keypoints < 1:
        raise ValueError(f"--keypoints must be >= 1, got {keypoints}")
    matcher = load_pretrained(checkpoint, "matcher")
    if not isinstance(matcher, SemaGlue):  # pragma: no cover - load_pretrained("matcher") builds SemaGlue
        raise ValueError(f"{checkpoint}: not a SemaGlue matcher")
    if matcher.config.depth_confidence > 0 or matcher.config.width_confidence > 0:
        raise ValueError(
            "the adaptive mode (depth/width confidence) cannot be exported: its control flow is data-dependent"
        )
    set_impl(matcher, impl)
    cfg = matcher.config
    inputs = (
        torch.rand(1, keypoints, 2, generator=generator) * torch.tensor([width - 1, height - 1]),
        torch.rand(1, keypoints, 2, generator=generator) * torch.tensor([width - 1, height - 1]),
        nn.functional.normalize(torch.randn(1, cfg.input_dim, keypoints, generator=generator), dim=1),
        nn.functional.normalize(torch.randn(1, cfg.input_dim, keypoints, generator=generator), dim=1),
        torch.randn(1, cfg.segment_dim, height // 8, width // 8, generator=generator),
        torch.randn(1, cfg.segment_dim, height // 8, width // 8, generator=generator),
    )
    names = ["keypoints0", "keypoints1", "descriptors0", "descriptors1", "feature_map0", "feature_map1"]
    outputs = ["matches0", "matches1", "matching_scores0", "matching_scores1"]
    return MatcherFixed(matcher, height, width), inputs, names, outputs, {}


def export_graph(
    module: nn.Module, inputs: tuple[torch.Tensor, ...], out: Path, names: list[str], outputs: list[str]
) -> None:
    """The matcher through ``torch.export`` (the TorchScript-based exporter of :func:`semcommon.export.export_onnx`
    fails on its graph), written atomically."""
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                inputs,
                str(tmp),
                input_names=names,
                output_names=outputs,
                dynamo=True,
                external_data=False,
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    add("--model", choices=MODELS, required=True, help="which network (see the description)")
    add("--checkpoint", required=True, help="superpoint_v1.pth, the SegNeXt .pth, or a matcher checkpoint")
    add("--out", required=True, help="the .onnx file to write (never overwritten)")
    add("--height", type=int, default=480, help="example/fixed image height (default: 480)")
    add("--width", type=int, default=640, help="example/fixed image width (default: 640)")
    add("--keypoints", type=int, default=1024, help="matcher: fixed keypoints per image (default: 1024)")
    add("--no-check", action="store_true", help="skip the onnxruntime comparison")


def run(args: argparse.Namespace) -> float | None:
    """Export (and check, unless ``--no-check``); returns the max abs difference from PyTorch."""
    out = Path(args.out)
    if out.exists():
        raise ValueError(f"--out {out} exists; remove it first (export never overwrites)")
    module, inputs, names, outputs, axes = build(args.model, args.checkpoint, args.height, args.width, args.keypoints)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.model == "matcher":
        export_graph(module, inputs, out, names, outputs)
    else:
        export_onnx(module, inputs, out, input_names=names, output_names=outputs, dynamic_axes=axes)
    if args.no_check:
        return None
    with torch.no_grad():
        expected = module(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    scale = max(1.0, max(float(x.abs().max()) for x in expected if x.numel()))
    try:
        return check_onnx(out, module, inputs, atol=1e-4 * scale)
    except AssertionError:
        out.unlink(missing_ok=True)
        raise
