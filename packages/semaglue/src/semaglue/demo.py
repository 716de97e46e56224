"""``semaglue demo``: train a reduced-width SemaGlue from scratch on synthetic homographies (CPU, about two
minutes), then compare it with the classical baseline (mutual nearest neighbour + Lowe's ratio test on the same
SIFT descriptors) on held-out pairs made from other scikit-image photos, and on the real stereo pair
``skimage.data.stereo_motorcycle()``.

Writes ``OUT/metrics.json`` (``{"model", "baseline", "primary", "config", "seconds"}``) and ``OUT/demo.png``.
No weights are downloaded: keypoints are SIFT (the documented fallback) and the frozen SegNeXt is randomly
initialised (its released ADE20K weights cannot be fetched here), so the semantic branch sees random-feature maps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from torch.utils.data import default_collate

from semaglue.config import SegNextConfig, SemaGlueConfig
from semaglue.data.synthetic import HELD_OUT_PHOTOS, SyntheticConfig
from semaglue.features import mutual_nn_ratio, sift_features
from semaglue.homography import warp_points
from semaglue.model import FeatureMatcher
from semaglue.outputs import save_json
from semaglue.train import (
    FeatureConfig,
    LossConfig,
    MatchingPairs,
    OptimConfig,
    SemaGlueTask,
    TrainConfig,
    homography_metrics,
    pair_metrics,
    summarise_homography,
)
from semaglue.viz import error_colormap, make_matching_plot
from semcommon.runtime import resolve_device, seed_everything
from semcommon.viz import save_png

PRIMARY = "H_AUC@5px"


@dataclass
class DemoConfig:
    """The demo recipe (reduced width: d=64, 2 heads, 2 layers; MSCAN with one block per stage and half widths;
    128 SIFT keypoints per 160×160 image; Adam 1e-3 decayed ÷10 per third of the run after 60% of it)."""

    height: int = 160
    width: int = 160
    train_pairs: int = 256
    val_pairs: int = 48
    max_keypoints: int = 128
    steps: int = 400
    batch_size: int = 8
    lr: float = 1e-3
    ratio: float = 0.8
    seed: int = 0
    matcher: SemaGlueConfig = field(
        default_factory=lambda: SemaGlueConfig(descriptor_dim=64, num_heads=2, n_layers=2, filter_threshold=0.1)
    )
    segnext: SegNextConfig = field(
        default_factory=lambda: SegNextConfig(embed_dims=(16, 32, 64, 128), depths=(1, 1, 1, 1))
    )


def _train_config(cfg: DemoConfig) -> TrainConfig:
    data = SyntheticConfig(height=cfg.height, width=cfg.width, num_pairs=cfg.train_pairs, seed=cfg.seed)
    return TrainConfig(
        matcher=cfg.matcher,
        segnext=cfg.segnext,
        features=FeatureConfig(kind="sift", max_keypoints=cfg.max_keypoints),
        data=data,
        val_pairs=cfg.val_pairs,
        loss=LossConfig(),
        optim=OptimConfig(lr=cfg.lr, lr_decay_start=int(cfg.steps * 0.6), lr_decay_every=max(cfg.steps // 3, 1)),
    )


def _cache(pairs: MatchingPairs, model: torch.nn.Module, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """Every item with its (frozen) semantic feature maps precomputed once."""
    items = [pairs[i] for i in range(len(pairs))]
    for start in range(0, len(items), 32):
        chunk = items[start : start + 32]
        for i in (0, 1):
            images = torch.stack([it[f"image{i}"] for it in chunk]).to(device)
            maps = model.feature_maps(images).cpu()
            for it, fmap in zip(chunk, maps, strict=True):
                it[f"feature_map{i}"] = fmap
    return items


def _baseline_rows(items: list[dict[str, torch.Tensor]], ratio: float) -> list[dict[str, float]]:
    rows = []
    for it in items:
        n0, n1 = int(it["mask0"].sum()), int(it["mask1"].sum())
        desc0, desc1 = it["descriptors0"][:, :n0].numpy(), it["descriptors1"][:, :n1].numpy()
        matches, _ = mutual_nn_ratio(desc0, desc1, ratio)
        valid = matches > -1
        kpts0, kpts1 = it["keypoints0"][:n0].numpy(), it["keypoints1"][:n1].numpy()
        num_gt = int((it["gt_matches0"] >= 0).sum())
        size = tuple(it["image0"].shape[-2:])
        rows.append(pair_metrics(kpts0[valid], kpts1[matches[valid]], it["H_0to1"].numpy(), num_gt, size))
    return rows


def _model_rows(
    model: torch.nn.Module, items: list[dict[str, torch.Tensor]], device: torch.device
) -> tuple[list[dict[str, float]], list[np.ndarray]]:
    rows, all_matches = [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(items), 16):
            batch = {k: v.to(device) for k, v in default_collate(items[start : start + 16]).items()}
            pred = model(batch)
            rows.extend(homography_metrics(pred, batch))
            valid1 = torch.gather(batch["mask1"], 1, pred["matches0"].clamp_min(0))
            masked = torch.where(batch["mask0"] & valid1, pred["matches0"], -1)
            all_matches.extend(m.cpu().numpy() for m in masked)
    return rows, all_matches


def _stereo(model: torch.nn.Module, cfg: DemoConfig, device: torch.device) -> dict[str, object]:
    """Match the rectified ``stereo_motorcycle`` pair (grey, longer side 320 px): a match is correct when it lies
    on the same row (|dy| < 2 px) with a non-negative disparity (the epipolar constraint of a rectified pair)."""
    left, right, _ = skimage.data.stereo_motorcycle()
    scale = 320 / max(left.shape[:2])
    size = (round(left.shape[1] * scale), round(left.shape[0] * scale))
    images = [
        cv2.resize(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        for im in (left, right)
    ]
    feats = [sift_features(im, cfg.max_keypoints * 2) for im in images]
    base, _ = mutual_nn_ratio(feats[0]["descriptors"], feats[1]["descriptors"], cfg.ratio)
    batch = {}
    for i in (0, 1):
        batch[f"image{i}"] = torch.from_numpy(images[i])[None, None].to(device)
        batch[f"keypoints{i}"] = torch.from_numpy(feats[i]["keypoints"])[None].to(device)
        batch[f"descriptors{i}"] = torch.from_numpy(feats[i]["descriptors"])[None].to(device)
    with torch.no_grad():
        ours = model(batch)["matches0"][0].cpu().numpy()

    def precision(matches: np.ndarray) -> tuple[float, int, np.ndarray]:
        valid = matches > -1
        p0, p1 = feats[0]["keypoints"][valid], feats[1]["keypoints"][matches[valid]]
        correct = (np.abs(p0[:, 1] - p1[:, 1]) < 2.0) & (p0[:, 0] - p1[:, 0] >= -1.0)
        return (float(correct.mean()) if len(correct) else 0.0), int(valid.sum()), correct

    return {"images": images, "feats": feats, "model": ours, "baseline": base, "precision": precision}


def _panel(
    image0: np.ndarray,
    image1: np.ndarray,
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    matches: np.ndarray,
    correct: np.ndarray,
    title: str,
) -> np.ndarray:
    valid = matches > -1
    canvas = make_matching_plot(
        image0 * 255,
        image1 * 255,
        kpts0,
        kpts1,
        kpts0[valid],
        kpts1[matches[valid]],
        error_colormap(correct.astype(np.float64)),
        [title],
        margin=6,
    )
    return canvas


def _correct_h(kpts0: np.ndarray, kpts1: np.ndarray, matches: np.ndarray, H: np.ndarray) -> np.ndarray:
    valid = matches > -1
    err = np.linalg.norm(warp_points(kpts0[valid], H) - kpts1[matches[valid]], axis=1)
    return err < 3.0


def _figure(item: dict[str, torch.Tensor], ours: np.ndarray, base: np.ndarray, stereo: dict[str, object]) -> np.ndarray:
    """Rows: GT matches, model, baseline on one held-out pair; then model and baseline on the stereo pair."""
    n0, n1 = int(item["mask0"].sum()), int(item["mask1"].sum())
    k0, k1 = item["keypoints0"][:n0].numpy(), item["keypoints1"][:n1].numpy()
    i0, i1, H = item["image0"][0].numpy(), item["image1"][0].numpy(), item["H_0to1"].numpy()
    gt = item["gt_matches0"][:n0].numpy()
    gt = np.where(gt >= 0, gt, -1)
    rows = [
        _panel(i0, i1, k0, k1, gt, np.ones(int((gt > -1).sum()), bool), f"ground truth ({int((gt > -1).sum())})"),
    ]
    for name, m in (("SemaGlue (demo)", ours[:n0]), ("MNN + ratio", base)):
        correct = _correct_h(k0, k1, m, H)
        rows.append(_panel(i0, i1, k0, k1, m, correct, f"{name}: {int(correct.sum())}/{len(correct)} correct"))
    images, feats, precision = stereo["images"], stereo["feats"], stereo["precision"]  # type: ignore[misc]
    for name in ("model", "baseline"):
        prec, count, correct = precision(stereo[name])  # type: ignore[operator]
        label = "SemaGlue (demo)" if name == "model" else "MNN + ratio"
        rows.append(
            _panel(
                images[0],  # type: ignore[index]
                images[1],  # type: ignore[index]
                feats[0]["keypoints"],  # type: ignore[index]
                feats[1]["keypoints"],  # type: ignore[index]
                stereo[name],  # type: ignore[arg-type]
                correct,
                f"stereo {label}: {count} matches, {100 * prec:.0f}% epipolar",
            )
        )
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded, 0)


def train_demo_model(
    cfg: DemoConfig, dev: torch.device, log: Callable[[str], None]
) -> tuple[FeatureMatcher, list[dict[str, torch.Tensor]]]:
    """Generate the data, train the reduced model with the package's training step; returns the model (eval mode)
    and the held-out items (with keypoints, ground truth and feature maps)."""
    seed_everything(cfg.seed)
    task = SemaGlueTask(_train_config(cfg))
    model = task.build_model().to(dev)
    train_items = _cache(task.train_dataset(), model, dev)  # type: ignore[arg-type]
    val = replace(task.config.data, num_pairs=cfg.val_pairs, seed=cfg.seed + 1000, photos=HELD_OUT_PHOTOS)
    val_items = _cache(task._pairs(val), model, dev)
    log(f"data: {len(train_items)} training pairs, {len(val_items)} held-out pairs ({cfg.height}x{cfg.width}, SIFT)")
    log(
        f"training SemaGlue (reduced width: d={cfg.matcher.descriptor_dim}, {cfg.matcher.n_layers} layers, "
        f"{cfg.matcher.num_heads} heads) for {cfg.steps} steps of {cfg.batch_size} pairs"
    )
    optimizer = task.build_optimizer(model)
    scheduler = task.build_scheduler(optimizer)
    generator = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for step in range(cfg.steps):
        index = torch.randint(len(train_items), (cfg.batch_size,), generator=generator).tolist()
        batch = {k: v.to(dev) for k, v in default_collate([train_items[i] for i in index]).items()}
        loss, _ = task.training_step(model, batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if (step + 1) % max(cfg.steps // 5, 1) == 0:
            log(f"step {step + 1}/{cfg.steps} loss {loss.item():.3f}")
    return model.eval(), val_items


def run_demo(
    device: str = "cpu", out: str | Path = "runs/demo-semaglue", config: DemoConfig | None = None, quiet: bool = False
) -> dict:
    """Train, evaluate, write ``metrics.json`` and ``demo.png``; return the metrics payload."""
    start = time.perf_counter()

    def log(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {message}", flush=True)

    cfg = config or DemoConfig()
    model, val_items = train_demo_model(cfg, resolve_device(device), log)
    dev = next(model.parameters()).device
    train_seconds = time.perf_counter() - start
    model_rows, model_matches = _model_rows(model, val_items, dev)
    base_rows = _baseline_rows(val_items, cfg.ratio)
    stereo = _stereo(model, cfg, dev)
    metrics_model = summarise_homography(model_rows)
    metrics_base = summarise_homography(base_rows)
    metrics_model["stereo_epipolar_precision"] = 100 * stereo["precision"](stereo["model"])[0]  # type: ignore[operator]
    metrics_base["stereo_epipolar_precision"] = 100 * stereo["precision"](stereo["baseline"])[0]  # type: ignore[operator]
    best = int(np.argmax([int((it["gt_matches0"] >= 0).sum()) for it in val_items]))  # the richest held-out pair
    n0 = int(val_items[best]["mask0"].sum())
    desc = val_items[best]
    base_best, _ = mutual_nn_ratio(
        desc["descriptors0"][:, :n0].numpy(), desc["descriptors1"][:, : int(desc["mask1"].sum())].numpy(), cfg.ratio
    )
    figure = _figure(val_items[best], model_matches[best], base_best, stereo)
    out = Path(out)
    seconds = time.perf_counter() - start
    payload = {
        "model": metrics_model,
        "baseline": metrics_base,
        "primary": {"metric": PRIMARY, "higher_is_better": True},
        "config": {
            **asdict(cfg),
            "device": str(dev),
            "keypoints": "SIFT (RootSIFT 128-D), frozen SegNeXt randomly initialised",
            "train_seconds": round(train_seconds, 1),
        },
        "seconds": round(seconds, 1),
    }
    save_png(out / "demo.png", figure)
    save_json(out / "metrics.json", payload)
    return payload


def format_table(payload: dict) -> str:
    """The comparison table printed by the demo."""
    names = list(payload["model"])
    lines = [f"{'metric':<28}{'SemaGlue (demo)':>16}{'MNN + ratio':>14}"]
    for name in names:
        lines.append(f"{name:<28}{payload['model'][name]:>16.2f}{payload['baseline'][name]:>14.2f}")
    return "\n".join(lines)
