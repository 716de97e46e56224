"""``ssp evaluate``: mIoU, per-class IoU and temporal consistency over whole clips (spec section f).

Every frame of every clip is resized to the evaluation size (default 736x1280, no crop) and segmented in order
(SSP: recurrent fusion; image model: per frame). mIoU and per-class IoU come from one dataset-level confusion matrix
over the labelled frames (labels resized nearest); TC is the mean over clips of the mean over consecutive pairs of
mIoU(warp(pred_{t+1}, flow_{t->t+1}), pred_t), with the flow from RAFT (20 iterations) or, for data with known
camera motion (synthetic), from the exact homographies. Forward-backward TC is also reported.

Correction (labelled in the output): the authors report IoU 0 for a class absent from both prediction and labels
(``class_iou``); ``class_iou_corrected`` reports such classes as null (undefined), which is what the macro mIoU
already assumes by skipping them.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semcommon.runtime import autocast, progress
from ssp.data.clips import ClipSource
from ssp.data.datasets import ClipDataset
from ssp.geometry import flow_from_homography
from ssp.losses import raft_flow
from ssp.metrics import MeanIoU, mean_iou, temporal_consistency, temporal_consistency_forwardbackward
from ssp.model.ssp import SSPVideoModel
from ssp.predict import VideoPredictor, make_registrator

__all__ = ["evaluate_model", "format_table", "homography_flow_fn", "write_results"]


def homography_flow_fn(
    frames: torch.Tensor, homos: torch.Tensor
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A TC flow function over one clip's ``frames`` (``T×3×H×W``) from its known homographies ``(T-1)×3×3``
    (entry t maps frame t to t+1): called with two single-frame views of ``frames``, returns ``1×2×H×W``."""
    index = {frames[t : t + 1].data_ptr(): t for t in range(frames.shape[0])}
    size = tuple(frames.shape[-2:])

    def flow(image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        i, j = index[image1.data_ptr()], index[image2.data_ptr()]
        if j == i + 1:
            matrix = homos[i].double()
        elif j == i - 1:
            matrix = torch.linalg.inv(homos[j].double())
        else:
            raise ValueError(f"homography flow: frames {i} and {j} are not neighbours")
        return flow_from_homography(matrix[None], size).to(image1.device)

    return flow


def _predict_clip(
    model: nn.Module, clip: dict, registration: str, size: tuple[int, int], device: torch.device, precision: str
) -> tuple[torch.Tensor, int]:
    """Predictions ``T×H×W`` of one clip and the number of failed registrations."""
    impl = getattr(model, "impl", "fast")
    if isinstance(model, SSPVideoModel) and registration == "given":
        if clip["homos"] is None:
            raise ValueError("--registration given: the data has no known homographies (only synthetic data has)")
        with autocast(device, precision):
            _, logits = model.infer_video(clip["frames"].to(device), homos=clip["homos"].to(device))
        return logits.float().argmax(dim=1).cpu(), 0
    registrator = make_registrator("identity" if registration == "given" else registration, model)
    predictor = VideoPredictor(model, registrator, size, impl=impl, precision=precision)
    preds = [predictor.step(image).argmax(0).cpu() for image in clip["images"]]
    return torch.stack(preds), predictor.failures


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    source: ClipSource,
    size: tuple[int, int] = (736, 1280),
    registration: str = "akaze",
    flow: str = "raft",
    raft: nn.Module | None = None,
    keep_predictions: bool = False,
    show_progress: bool = True,
    precision: str = "fp32",
) -> dict[str, object]:
    """Metrics of ``model`` (SSP or image model) on every clip of ``source``.

    ``flow``: ``raft`` (``raft`` module, 20 iterations), ``homography`` (known homographies) or ``none`` (no TC).
    The implementation is the model's own (:func:`ssp.model.set_impl`, default fast); ``precision`` bf16/fp16
    runs the segmentation network under autocast (approximate; RAFT for TC stays float32).
    Returns ``{"metrics": {...}, "frames": [per labelled frame rows], "clips": [per clip rows],
    "predictions": {clip: T×H×W} (if ``keep_predictions``)}``.
    """
    if flow not in ("raft", "homography", "none"):
        raise ValueError(f"--flow: expected raft | homography | none, got {flow!r}")
    if flow == "raft" and raft is None:
        raise ValueError("--flow raft needs RAFT weights (--raft-weights FILE, e.g. raft-things.pth)")
    device = next(model.parameters()).device
    n_classes = model.base_model.config.n_classes if isinstance(model, SSPVideoModel) else model.config.n_classes
    if n_classes != source.info.n_classes:
        raise ValueError(f"the model has {n_classes} classes, the {source.info.name} data {source.info.n_classes}")
    dataset = ClipDataset(source, size)
    confusion = MeanIoU(n_classes)
    frame_rows, clip_rows, predictions = [], [], {}
    failures_total, tc_scores, fb_scores = 0, [], []
    for i in progress(range(len(dataset)), desc="ssp evaluate", total=len(dataset), enabled=show_progress):
        clip = dataset[i]
        preds, failures = _predict_clip(model, clip, registration, size, device, precision)
        failures_total += failures
        labelled = clip["labelled"].nonzero()[:, 0].tolist()
        for t in labelled:
            confusion.update(preds[t], clip["labels"][t])
            valid = clip["labels"][t] != 255
            accuracy = float((preds[t][valid] == clip["labels"][t][valid]).float().mean()) if valid.any() else None
            frame_rows.append({"clip": clip["clip"], "frame": clip["names"][t],
                               "miou": float(mean_iou(preds[t], clip["labels"][t], n_classes)),
                               "pixel_accuracy": accuracy})  # fmt: skip
        row = {"clip": clip["clip"], "frames": len(clip["names"]), "labelled_frames": len(labelled),
               "tc": None, "tc_forward_backward": None, "registration_failures": failures}  # fmt: skip
        if flow != "none" and len(clip["names"]) >= 2:
            if flow == "homography":
                if clip["homos"] is None:
                    raise ValueError("--flow homography: the data has no known homographies (only synthetic data)")
                flow_fn = homography_flow_fn(clip["frames"], clip["homos"])
            else:
                frames_device = clip["frames"].to(device)
                flow_fn = _raft_fn(raft)
            frames = clip["frames"] if flow == "homography" else frames_device
            row["tc"] = float(temporal_consistency(preds.to(frames.device), frames, flow_fn, n_classes))
            row["tc_forward_backward"] = float(temporal_consistency_forwardbackward(preds.to(frames.device), frames,
                                                                                     flow_fn))  # fmt: skip
            tc_scores.append(row["tc"])
            fb_scores.append(row["tc_forward_backward"])
        clip_rows.append(row)
        if keep_predictions:
            predictions[clip["clip"]] = preds
    if not frame_rows:
        raise ValueError("evaluation: the split has no labelled frame")
    iou = confusion.class_iou()
    present = confusion.confmat.sum(0) + confusion.confmat.sum(1) > 0
    names = source.info.class_names
    metrics = {
        "mIoU": float(confusion.miou()),
        "TC": float(np.mean(tc_scores)) if tc_scores else None,
        "TC_forward_backward": float(np.mean(fb_scores)) if fb_scores else None,
        "class_iou": {name: float(v) for name, v in zip(names, iou, strict=True)},
        "class_iou_corrected": {name: float(v) if p else None for name, v, p in zip(names, iou, present, strict=True)},
        "clips": len(clip_rows),
        "frames": sum(r["frames"] for r in clip_rows),
        "labelled_frames": len(frame_rows),
        "registration": registration,
        "registration_failures": failures_total,
        "flow": flow,
        "size": list(size),
    }
    return {"metrics": metrics, "frames": frame_rows, "clips": clip_rows, "predictions": predictions}


def _raft_fn(raft: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def flow(image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        return raft_flow(raft, image1, image2, iters=20)

    return flow


def format_table(metrics: dict[str, object]) -> str:
    """The authors' printout: ``mIoU = x | Temporal Consistency = y`` and the per-class dictionary."""
    tc = metrics["TC"]
    lines = [f"mIoU = {metrics['mIoU']:.4f} | Temporal Consistency = {'n/a' if tc is None else f'{tc:.4f}'}"]
    lines.append(str({name: round(v, 4) for name, v in metrics["class_iou"].items()}))
    corrected = {name: None if v is None else round(v, 4) for name, v in metrics["class_iou_corrected"].items()}
    lines.append(f"class IoU, corrected (absent classes undefined instead of 0): {corrected}")
    if metrics["TC_forward_backward"] is not None:
        lines.append(f"forward-backward TC = {metrics['TC_forward_backward']:.4f}")
    lines.append(f"registration failures (identity used): {metrics['registration_failures']}")
    return "\n".join(lines)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def _csv(rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def write_results(result: dict[str, object], out: str | Path, extra: dict[str, object] | None = None) -> Path:
    """``metrics.json``, ``per_frame.csv`` (labelled frames) and ``per_clip.csv`` (TC per clip) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_text(out / "per_frame.csv", _csv(result["frames"]))
    _atomic_text(out / "per_clip.csv", _csv(result["clips"]))
    _atomic_text(out / "metrics.json", json.dumps({**result["metrics"], **(extra or {})}, indent=1) + "\n")
    return out
