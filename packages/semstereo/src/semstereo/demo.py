"""``semstereo demo``: train a reduced-width SemStereo on generated city tiles on the CPU, compare it with OpenCV
SGBM (disparity) and a per-pixel colour k-NN (classes) on held-out tiles, and check it on the real Middlebury
"motorcycle" pair that scikit-image ships.

The model is the paper architecture (stage 2, the full network) with the MobileViTv2 backbone at width 0.25
(``mobilevitv2_025``; the paper uses 1.0 = 38M parameters, far too slow for two CPU minutes) and its 1/4-scale
hypotheses limited to [-16, 16) px with the top 8 kept (the paper: [-64, 64) and 24 for 1024-pixel tiles; the
demo's 64-pixel tiles span [-12, 12)), trained from scratch with the paper's losses (disparity smooth-L1
×1.0/0.6/0.5/0.3 + label CE+Dice ×2.4 + LRSC) and Adam, with a cosine LR decay over the short run instead of the
48-epoch step schedule. All metrics (EPE, D1, mIoU) are computed the
same way for model and baselines: over every valid pixel of the test set, one dataset-level confusion matrix.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import default_collate

from semcommon.runtime import resolve_device
from semcommon.viz import colorize, label_to_rgb, save_png, side_by_side
from semstereo.baseline import ColourKNN, sgbm_disparity, tune_sgbm
from semstereo.config import SemStereoConfig, TrainConfig
from semstereo.data.synthetic import SceneRenderer, SyntheticConfig, make_sample
from semstereo.predict import CLASS_COLOURS, predict_pair
from semstereo.train import SemStereoTask

TRAIN_SEED, TEST_SEED = 0, 1
MOTORCYCLE_MAX_DISPARITY = 64  # the quarter-size Middlebury pair's disparities lie in about [7, 60]


@dataclass(frozen=True)
class DemoRecipe:
    """What the demo trains (the model side is tuned here; the baselines are tuned on the training tiles)."""

    size: int = 64  # tile side (px)
    dmin: float = -12.0  # signed disparity range of the tiles
    dmax: float = 12.0
    train_tiles: int = 384
    test_tiles: int = 16
    steps: int = 800
    batch_size: int = 8
    lr: float = 2e-3  # peak of a cosine decay (Adam, PyTorch's fused implementation of the same update)
    backbone: str = "mobilevitv2_025"
    hypothesis_range: tuple[int, int] = (-16, 16)  # the model's 1/4 hypotheses (px), matched to the tiles' range
    topk: int = 8  # hypotheses kept for the sparse concatenation volume (of 8)
    sgbm_tune_tiles: int = 8
    seed: int = 0
    threads: int = 1  # intra-op threads while training: the tensors are tiny, so one thread is as fast and never spins


def _pixel_metrics(pred: list[np.ndarray], gt: list[np.ndarray]) -> dict[str, float]:
    """EPE and D1 (|err| > 3 px and > 5 %) over every pixel of the set."""
    err = np.concatenate([np.abs(p - g).ravel() for p, g in zip(pred, gt, strict=True)])
    ref = np.concatenate([np.abs(g).ravel() for g in gt])
    return {"EPE": float(err.mean()), "D1": float(((err > 3) & (err > 0.05 * ref)).mean())}


def _miou(pred: list[np.ndarray], gt: list[np.ndarray], classes: int = 5) -> float:
    confusion = np.zeros((classes, classes), np.int64)
    for p, g in zip(pred, gt, strict=True):
        keep = (g < classes) & (p < classes)
        np.add.at(confusion, (g[keep].astype(np.int64), p[keep].astype(np.int64)), 1)
    diag = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - diag
    present = confusion.sum(1) > 0
    return float(np.mean(diag[present] / np.maximum(union[present], 1)))


def _motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-image's Middlebury 2014 motorcycle pair (quarter size) and its disparity (non-finite = no gt)."""
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    return left, right, disparity.astype(np.float32)


def _predict_downscaled(
    model: torch.nn.Module, left: np.ndarray, right: np.ndarray, max_disparity: float, device: str
) -> np.ndarray:
    """Predict at ``1/f`` resolution so that ``max_disparity / f`` fits the model's hypothesis range, then resize
    back and multiply the disparities by ``f``."""
    factor = max(1, math.ceil(max_disparity / model.config.hypotheses[1]))
    height, width = left.shape[:2]
    size = (max(32, width // factor), max(32, height // factor))
    small = [cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in (left, right)]
    disparity = predict_pair(model, small[0], small[1], device=device).disparity
    return cv2.resize(disparity, (width, height), interpolation=cv2.INTER_LINEAR) * (width / size[0])


def _train(recipe: DemoRecipe, scenes: list, device: torch.device, log: bool) -> tuple[torch.nn.Module, float]:
    """The paper model's training step in a plain loop; returns the model and the process CPU seconds."""
    model_config = SemStereoConfig(backbone=recipe.backbone, hypothesis_range=recipe.hypothesis_range, topk=recipe.topk)
    config = TrainConfig(model=model_config, stage="full", lr=recipe.lr)
    task = SemStereoTask(config)
    torch.manual_seed(recipe.seed)
    model = task.build_model().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, recipe.steps) / recipe.steps))
    )
    samples = [make_sample(s.left, s.right, s.disparity, s.label) for s in scenes]
    start = time.process_time()
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, recipe.threads))
    try:
        _loop(recipe, task, model, optimizer, schedule, samples, device, log)
    finally:
        torch.set_num_threads(threads)
    return model.eval(), time.process_time() - start


def _loop(
    recipe: DemoRecipe,
    task: SemStereoTask,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LambdaLR,
    samples: list[dict],
    device: torch.device,
    log: bool,
) -> None:
    generator = torch.Generator().manual_seed(recipe.seed)
    for step in range(recipe.steps):
        index = torch.randint(0, len(samples), (recipe.batch_size,), generator=generator)
        batch = {k: v.to(device) for k, v in default_collate([samples[int(i)] for i in index]).items()}
        loss, logs = task.training_step(model, batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if log and (step % 50 == 0 or step == recipe.steps - 1):
            parts = ", ".join(f"{k} {float(v.detach()):.3f}" for k, v in logs.items())
            print(f"  step {step + 1}/{recipe.steps}: loss {float(loss.detach()):.3f} ({parts})", flush=True)


def _write_atomic(path: Path, write: object) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(handle)
    try:
        write(Path(temp))  # type: ignore[operator]
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def run_demo(
    out_dir: str | Path = "runs/demo-semstereo",
    device: str = "cpu",
    steps: int | None = None,
    recipe: DemoRecipe | None = None,
    log: bool = True,
) -> dict[str, object]:
    """Run the demo; writes ``out_dir/demo.png`` and ``out_dir/metrics.json`` and returns the metrics dict."""
    recipe = recipe or DemoRecipe()
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps must be >= 1, got {steps}")
        recipe = DemoRecipe(**{**asdict(recipe), "steps": steps})
    dev = resolve_device(device)
    wall = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    renderer = SceneRenderer(SyntheticConfig(recipe.size, recipe.size, recipe.dmin, recipe.dmax))
    train = [renderer.render(TRAIN_SEED * 1_000_003 + i) for i in range(recipe.train_tiles)]
    test = [renderer.render(TEST_SEED * 1_000_003 + i) for i in range(recipe.test_tiles)]
    if log:
        print(
            f"semstereo demo: {recipe.train_tiles} training / {recipe.test_tiles} test tiles of {recipe.size}px, "
            f"disparities in [{recipe.dmin:g}, {recipe.dmax:g})"
        )
        print(
            f"training SemStereo (stage 2, backbone {recipe.backbone}: reduced width) for {recipe.steps} steps, "
            f"batch {recipe.batch_size}"
        )
    model, cpu_seconds = _train(recipe, train, dev, log)
    parameters = sum(p.numel() for p in model.parameters())

    predictions = [predict_pair(model, s.left, s.right, device=str(dev)) for s in test]
    gts = [s.disparity for s in test]
    model_metrics = _pixel_metrics([p.disparity for p in predictions], gts)
    model_metrics["mIoU"] = _miou([p.classes for p in predictions], [s.label for s in test])

    tune = [(s.left, s.right, s.disparity) for s in train[: recipe.sgbm_tune_tiles]]
    sgbm_config, _ = tune_sgbm(tune, recipe.dmin, recipe.dmax)
    sgbm = [sgbm_disparity(s.left, s.right, recipe.dmin, recipe.dmax, sgbm_config) for s in test]
    knn = ColourKNN(seed=recipe.seed).fit([s.left for s in train[:64]], [s.label for s in train[:64]])
    knn_classes = [knn.predict(s.left) for s in test]
    baseline_metrics = _pixel_metrics(sgbm, gts)
    baseline_metrics["mIoU"] = _miou(knn_classes, [s.label for s in test])

    left, right, moto_gt = _motorcycle()
    valid = np.isfinite(moto_gt)
    moto_model = _predict_downscaled(model, left, right, MOTORCYCLE_MAX_DISPARITY, str(dev))
    moto_sgbm = sgbm_disparity(left, right, 0, MOTORCYCLE_MAX_DISPARITY, sgbm_config)
    model_metrics["motorcycle_EPE"] = float(np.abs(moto_model - moto_gt)[valid].mean())
    baseline_metrics["motorcycle_EPE"] = float(np.abs(moto_sgbm - moto_gt)[valid].mean())

    rows = []
    for scene, pred, base, classes in list(zip(test, predictions, sgbm, knn_classes, strict=True))[:3]:
        lo, hi = recipe.dmin, recipe.dmax
        rows.append(
            side_by_side(
                [
                    scene.left,
                    scene.right,
                    colorize(scene.disparity, lo, hi),
                    colorize(pred.disparity, lo, hi),
                    colorize(base, lo, hi),
                    label_to_rgb(scene.label, CLASS_COLOURS),
                    label_to_rgb(pred.classes, CLASS_COLOURS),
                    label_to_rgb(classes, CLASS_COLOURS),
                ]
            )
        )
    third = (left.shape[1] // 3, left.shape[0] // 3)
    moto_panels = [left, colorize(np.where(valid, moto_gt, np.nan), 0, 64), colorize(moto_model, 0, 64)]
    moto_panels.append(colorize(moto_sgbm, 0, 64))
    rows.append(side_by_side([cv2.resize(p, third, interpolation=cv2.INTER_AREA) for p in moto_panels]))
    width = max(r.shape[1] for r in rows)
    canvas = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])

    seconds = round(time.perf_counter() - wall, 1)
    metrics = {
        "model": {k: round(v, 4) for k, v in model_metrics.items()},
        "baseline": {k: round(v, 4) for k, v in baseline_metrics.items()},
        "primary": {"metric": "EPE", "higher_is_better": False},
        "config": {
            **asdict(recipe),
            "model": f"SemStereo stage 2, {recipe.backbone} (reduced width), {parameters} parameters",
            "baseline": f"OpenCV StereoSGBM tuned on {recipe.sgbm_tune_tiles} training tiles {asdict(sgbm_config)}; "
            "colour 5-NN on RGB (64 training tiles) for mIoU",
            "train_cpu_seconds": round(cpu_seconds, 1),
            "panels": "rows: test tiles (left, right, GT, model, SGBM disparity; GT, model, k-NN classes); "
            "motorcycle (left, GT, model, SGBM)",
        },
        "seconds": seconds,
    }
    _write_atomic(out / "demo.png", lambda p: save_png(p, canvas))
    _write_atomic(out / "metrics.json", lambda p: p.write_text(json.dumps(metrics, indent=2) + "\n"))
    if log:
        print(f"\n{'metric':<16} {'SemStereo':>10} {'baseline':>10}")
        for key in model_metrics:
            print(f"{key:<16} {model_metrics[key]:>10.4f} {baseline_metrics[key]:>10.4f}")
        print("(EPE/D1: lower is better, baseline SGBM; mIoU: higher is better, baseline colour k-NN)")
        print(f"{seconds} s in all, training {cpu_seconds:.1f} CPU s; wrote {out / 'demo.png'}, {out / 'metrics.json'}")
    return metrics
