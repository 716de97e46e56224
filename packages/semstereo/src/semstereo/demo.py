"""``semstereo demo``: train a reduced-width SemStereo on generated city tiles on the CPU, compare it with OpenCV
SGBM (disparity) and a per-pixel colour k-NN (classes) on held-out tiles, and check it on the real Middlebury
"motorcycle" pair that scikit-image ships.

The model is the paper architecture (stage 2, the full network) with the MobileViTv2 backbone at width 0.25
(``mobilevitv2_025``; the paper uses 1.0 = 38M parameters, far too slow for two CPU minutes) and its 1/4-scale
hypotheses limited to [-16, 16) px with the top 8 kept (the paper: [-64, 64) and 24 for 1024-pixel tiles; the
demo's 64-pixel tiles span [-12, 12)), trained from scratch with the paper's losses (disparity smooth-L1
×1.0/0.6/0.5/0.3 + label CE+Dice ×2.4 + LRSC) and Adam, with a cosine LR decay over the short run instead of the
48-epoch step schedule, data-parallel over two CPU processes (the authors split their batch over two GPUs). All
metrics (EPE, D1, mIoU) are computed the same way for model and baselines: over every valid pixel of the test set,
one dataset-level confusion matrix.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import default_collate

from semcommon.checkpoint import save_checkpoint
from semcommon.runtime import resolve_device
from semcommon.training import to_plain
from semcommon.viz import colorize, label_to_rgb, save_png, side_by_side
from semstereo.baseline import ColourKNN, sgbm_disparity, tune_sgbm
from semstereo.config import SemStereoConfig, TrainConfig
from semstereo.data.synthetic import SceneRenderer, SyntheticConfig, make_sample
from semstereo.predict import CLASS_COLOURS, predict_pair
from semstereo.train import SemStereoTask

TRAIN_SEED, TEST_SEED = 0, 1
KNN_TILES = 64  # training tiles whose pixels the colour k-NN samples
MOTORCYCLE_MAX_DISPARITY = 64  # the quarter-size Middlebury pair's disparities lie in about [7, 60]


@dataclass(frozen=True)
class DemoRecipe:
    """What the demo trains (the model side is tuned here; the baselines are tuned on the training tiles)."""

    size: int = 64  # tile side (px)
    dmin: float = -12.0  # signed disparity range of the tiles
    dmax: float = 12.0
    train_tiles: int = 1536
    test_tiles: int = 16
    steps: int = 600
    batch_size: int = 8
    lr: float = 2e-3  # peak of a cosine decay (Adam, PyTorch's fused implementation of the same update)
    backbone: str = "mobilevitv2_025"
    hypothesis_range: tuple[int, int] = (-16, 16)  # the model's 1/4 hypotheses (px), matched to the tiles' range
    topk: int = 8  # hypotheses kept for the sparse concatenation volume (of 8)
    sgbm_tune_tiles: int = 8
    seed: int = 0
    threads: int = 1  # intra-op threads per training process: the tensors are tiny, so one thread is as fast
    processes: int = 2  # data-parallel training processes on the CPU, each taking batch_size / processes


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


def demo_tiles(recipe: DemoRecipe, split: str, count: int | None = None) -> list:
    """The demo's generated tiles: ``split="train"`` (``recipe.train_tiles``) or the held-out ``"test"`` ones;
    ``count``: only the first ones."""
    seed, total = (TRAIN_SEED, recipe.train_tiles) if split == "train" else (TEST_SEED, recipe.test_tiles)
    return _render(recipe, seed, range(min(total, count or total)))


def _render(recipe: DemoRecipe, seed: int, indices: range) -> list:
    renderer = SceneRenderer(SyntheticConfig(recipe.size, recipe.size, recipe.dmin, recipe.dmax))
    return [renderer.render(seed * 1_000_003 + i) for i in indices]


def score_predictions(predictions: list, scenes: list) -> dict[str, float]:
    """The demo's EPE, D1 and mIoU of ``predict_pair`` outputs on ``scenes`` (dataset-level, every valid pixel)."""
    metrics = _pixel_metrics([p.disparity for p in predictions], [s.disparity for s in scenes])
    metrics["mIoU"] = _miou([p.classes for p in predictions], [s.label for s in scenes])
    return metrics


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


def _train_config(recipe: DemoRecipe) -> TrainConfig:
    model = SemStereoConfig(backbone=recipe.backbone, hypothesis_range=recipe.hypothesis_range, topk=recipe.topk)
    return TrainConfig(model=model, stage="full", lr=recipe.lr)


def _build(recipe: DemoRecipe, device: torch.device) -> tuple[SemStereoTask, nn.Module, torch.optim.Optimizer, Any]:
    """The paper model (seeded), fused Adam and the cosine schedule of the demo recipe."""
    config = _train_config(recipe)
    task = SemStereoTask(config)
    torch.manual_seed(recipe.seed)
    model = task.build_model().to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, recipe.steps) / recipe.steps))
    )
    return task, model, optimizer, schedule


def _training_samples(recipe: DemoRecipe, shard: tuple[int, int] = (0, 1)) -> list[dict]:
    """Training samples of the tiles ``rank, rank + world, ...`` (``shard = (rank, world)``)."""
    tiles = _render(recipe, TRAIN_SEED, range(shard[0], recipe.train_tiles, shard[1]))
    return [make_sample(s.left, s.right, s.disparity, s.label) for s in tiles]


def _gather_samples(recipe: DemoRecipe, rank: int, world: int, store: Path) -> list[dict]:
    """Every training sample, in tile order: each process renders its share and reads the others' from ``store``."""
    torch.save(_training_samples(recipe, (rank, world)), store / f"tiles{rank}.pt")
    dist.barrier()
    return _interleave([torch.load(store / f"tiles{r}.pt", weights_only=True) for r in range(world)])


def _interleave(shares: list[list[dict]]) -> list[dict]:
    """The shares of ``_training_samples(recipe, (rank, world))`` for every rank, back in tile order."""
    world = len(shares)
    return [shares[i % world][i // world] for i in range(sum(len(share) for share in shares))]


def _train(recipe: DemoRecipe, device: torch.device, log: bool) -> tuple[nn.Module, float]:
    """Train the paper model on the demo's training tiles; returns it (eval mode) and the CPU seconds its training
    (tile rendering included) took.

    On the CPU with ``recipe.processes > 1`` the work is split over that many one-thread worker processes (they
    share the rendering; each takes its ``batch_size / processes`` slice of every batch; DistributedDataParallel over
    gloo: gradients averaged, BatchNorm statistics per process, the way the authors split their batch over two GPUs
    with ``nn.DataParallel``); otherwise the loop runs in this process."""
    processes = recipe.processes if device.type == "cpu" else 1
    if processes > 1:
        return _train_processes(recipe, processes, log)
    start = time.process_time()
    samples = _training_samples(recipe)
    task, model, optimizer, schedule = _build(recipe, device)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, recipe.threads))
    try:
        _loop(recipe, task, model, optimizer, schedule, samples, device, (0, 1), log)
    finally:
        torch.set_num_threads(threads)
    return model.eval(), time.process_time() - start


def _train_processes(recipe: DemoRecipe, processes: int, log: bool) -> tuple[nn.Module, float]:
    if recipe.batch_size % processes:
        raise ValueError(f"batch size {recipe.batch_size} does not split over {processes} processes")
    with tempfile.TemporaryDirectory(prefix="semstereo-demo-") as tmp:
        folder = Path(tmp)
        torch.multiprocessing.spawn(_worker, args=(processes, recipe, str(folder), log), nprocs=processes)
        state = torch.load(folder / "model.pt", weights_only=True)
        cpu_seconds = sum(float((folder / f"cpu{rank}.txt").read_text()) for rank in range(processes))
    model = SemStereoTask(_train_config(recipe)).build_model()
    model.load_state_dict(state)
    return model.eval(), cpu_seconds


def _exit_with_parent(parent: int) -> None:
    """End this worker once the process that spawned it is gone (e.g. killed), instead of training on as an orphan."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker(rank: int, world: int, recipe: DemoRecipe, folder: str, log: bool) -> None:
    """One data-parallel training process: ``batch_size / world`` of every batch, one intra-op thread."""
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    start = time.process_time()
    torch.set_num_threads(recipe.threads)
    store = Path(folder)
    dist.init_process_group("gloo", init_method=(store / "rendezvous").as_uri(), rank=rank, world_size=world)
    try:
        samples = _gather_samples(recipe, rank, world, store)
        cpu = torch.device("cpu")
        task, model, optimizer, schedule = _build(recipe, cpu)
        parallel = DistributedDataParallel(model)
        _loop(recipe, task, parallel, optimizer, schedule, samples, cpu, (rank, world), log and not rank)
        (store / f"cpu{rank}.txt").write_text(str(time.process_time() - start))
        if rank == 0:
            torch.save(model.state_dict(), store / "model.pt")
    finally:
        dist.destroy_process_group()


def _loop(
    recipe: DemoRecipe,
    task: SemStereoTask,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    samples: list[dict],
    device: torch.device,
    shard: tuple[int, int],
    log: bool,
) -> None:
    """``recipe.steps`` optimiser steps on batches drawn with the recipe's seed; this process takes the
    ``shard = (rank, world)`` slice of each batch."""
    rank, world = shard
    per_process = recipe.batch_size // world
    generator = torch.Generator().manual_seed(recipe.seed)
    for step in range(recipe.steps):
        index = torch.randint(0, len(samples), (recipe.batch_size,), generator=generator)
        mine = index[rank * per_process : (rank + 1) * per_process]
        batch = {k: v.to(device) for k, v in default_collate([samples[int(i)] for i in mine]).items()}
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
    """Run the demo; writes ``out_dir/demo.png``, ``out_dir/metrics.json`` and the trained model
    ``out_dir/semstereo.pt`` (loadable by ``load_pretrained`` and ``--checkpoint``); returns the metrics dict."""
    recipe = recipe or DemoRecipe()
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps must be >= 1, got {steps}")
        recipe = DemoRecipe(**{**asdict(recipe), "steps": steps})
    dev = resolve_device(device)
    wall = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = demo_tiles(recipe, "train", count=max(recipe.sgbm_tune_tiles, KNN_TILES))  # the baselines' share
    test = demo_tiles(recipe, "test")
    if log:
        print(
            f"semstereo demo: {recipe.train_tiles} training / {recipe.test_tiles} test tiles of {recipe.size}px, "
            f"disparities in [{recipe.dmin:g}, {recipe.dmax:g})"
        )
        print(
            f"training SemStereo (stage 2, backbone {recipe.backbone}: reduced width) for {recipe.steps} steps, "
            f"batch {recipe.batch_size}"
        )
    model, cpu_seconds = _train(recipe, dev, log)
    parameters = sum(p.numel() for p in model.parameters())
    checkpoint = {"model": model.state_dict(), "config": to_plain(_train_config(recipe)), "step": recipe.steps}
    save_checkpoint(checkpoint, out / "semstereo.pt")

    predictions = [predict_pair(model, s.left, s.right, device=str(dev)) for s in test]
    gts = [s.disparity for s in test]
    model_metrics = score_predictions(predictions, test)

    tune = [(s.left, s.right, s.disparity) for s in train[: recipe.sgbm_tune_tiles]]
    sgbm_config, _ = tune_sgbm(tune, recipe.dmin, recipe.dmax)
    sgbm = [sgbm_disparity(s.left, s.right, recipe.dmin, recipe.dmax, sgbm_config) for s in test]
    knn = ColourKNN(seed=recipe.seed).fit([s.left for s in train[:KNN_TILES]], [s.label for s in train[:KNN_TILES]])
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
            f"colour 5-NN on RGB ({KNN_TILES} training tiles) for mIoU",
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
        written = ", ".join(str(out / name) for name in ("demo.png", "metrics.json", "semstereo.pt"))
        print(f"{seconds} s in all, training {cpu_seconds:.1f} CPU s; wrote {written}")
    return metrics
