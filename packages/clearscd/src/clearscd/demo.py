"""``clearscd demo``: ClearSCD vs post-classification comparison (PCC) on synthetic bi-temporal scenes.

Both models are trained from scratch on the same generated pairs for the same number of steps (CPU):

- **ClearSCD**: the paper's network and losses (semantic CE, BCD BCE + Dice, SACL local + global with memory
  queues and warm-up, BSCC) through :class:`clearscd.train.ClearSCDTask`, with a reduced FPN width (pyramid 64,
  segmentation 32 instead of 256 / 128; stated in the output) so that it trains in about two minutes on 2 cores.
- **Baseline, post-classification comparison**: the same encoder-decoder and semantic head trained on the semantic
  labels only (CE at both dates, no change branch, no SACL/BSCC); change = the two predicted classes differ.

Held-out synthetic pairs (another seed) are scored with the authors' test.py protocol; primary metric SeK (higher
is better), also BCD F1/IoU and semantic mIoU (authors' aggregation; classes absent from the synthetic scenes count
as 0 there, as in test.py). Writes ``OUT/demo.png`` (T1, T2, GT T1/T2 classes and change, model, baseline),
``OUT/metrics.json`` and the trained ClearSCD as ``OUT/clearscd.pt`` (our checkpoint layout: ``clearscd evaluate
--checkpoint OUT/clearscd.pt``; the speed bench scores its approximate modes with it).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from clearscd.config import ClearSCDConfig
from clearscd.data.common import class_colours
from clearscd.data.synthetic import SyntheticSCD
from clearscd.evaluate import SYNTHETIC_EVAL_SEED
from clearscd.inference import Inference
from clearscd.losses import seg_ce
from clearscd.metrics import SCDTestMetrics
from clearscd.model.clearscd import ClearSCD
from clearscd.train import ClearSCDTask, TrainConfig
from semcommon.io import write_image
from semcommon.runtime import resolve_device
from semcommon.viz import side_by_side

__all__ = ["DemoRecipe", "run_demo"]

METRICS = ("SCD_Sek", "BCD_F1", "BCD_IoU", "SEG_mIoU", "Kappa")


@dataclass
class DemoRecipe:
    """The demo's data, width and schedule (tuned so that ClearSCD beats PCC on SeK in ~2 minutes on 2 cores)."""

    size: int = 64
    train_samples: int = 96
    test_samples: int = 24
    steps: int = 300
    batch_size: int = 4
    learning_rate: float = 2e-3
    pyramid_channels: int = 64
    segmentation_channels: int = 32
    warmup_steps: int = 20
    seed: int = 0


def _clearscd_config(recipe: DemoRecipe, baseline: bool) -> ClearSCDConfig:
    width = recipe.segmentation_channels
    common = {
        "size": recipe.size,
        "learning_rate": recipe.learning_rate,
        "batch_size": recipe.batch_size,
        "decoder_pyramid_channels": recipe.pyramid_channels,
        "decoder_segmentation_channels": width,
        "proj_dim": width,
        "sample_num": 256,
        "queue_len": 128,
        "enqueue_len": 16,
    }
    if baseline:
        return ClearSCDConfig(**common, only_seg=True, with_bscc=False, with_sacl=False)
    return ClearSCDConfig(**common)


def _batches(dataset: SyntheticSCD, batch_size: int, generator: torch.Generator):
    while True:
        yield from DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)


def _train(recipe: DemoRecipe, baseline: bool, train_set: SyntheticSCD, device: torch.device) -> tuple[ClearSCD, float]:
    torch.manual_seed(recipe.seed)
    config = TrainConfig(clearscd=_clearscd_config(recipe, baseline), synthetic_samples=recipe.train_samples)
    task = ClearSCDTask(config, batch_per_step=recipe.batch_size)
    model = task.build_model().to(device).train()
    optimizer = task.build_optimizer(model)
    steps_per_epoch = max(1, recipe.train_samples // recipe.batch_size)
    warmup_epochs = recipe.warmup_steps / steps_per_epoch
    config.clearscd.warmup_epoch = int(np.ceil(warmup_epochs))
    batches = _batches(train_set, recipe.batch_size, torch.Generator().manual_seed(recipe.seed))
    start = time.perf_counter()
    for step in range(recipe.steps):
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in next(batches).items()}
        lr = recipe.learning_rate * (0.1 if step >= 0.8 * recipe.steps else 1.0)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if baseline:
            imgs = torch.cat([batch["img_A"], batch["img_B"]], dim=1)
            out = model(imgs, test=True)
            loss = seg_ce(out["seg_A"], batch["label_SGA"]) + seg_ce(out["seg_B"], batch["label_SGB"])
        else:
            loss, _ = task.training_step(model, batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval(), time.perf_counter() - start


@torch.no_grad()
def _predict(model: ClearSCD, test_set: SyntheticSCD, device: torch.device, pcc: bool) -> dict[str, np.ndarray]:
    preds: dict[str, list[np.ndarray]] = {"sem_A": [], "sem_B": [], "change": []}
    runner = Inference(model.eval(), impl="fast")
    for batch in DataLoader(test_set, batch_size=8):
        imgs = torch.cat([batch["img_A"], batch["img_B"]], dim=1).to(device)
        out = runner(imgs)
        sem_A, sem_B = out["seg_A"].argmax(1), out["seg_B"].argmax(1)
        change = (sem_A != sem_B).long() if pcc else torch.sigmoid(out["BCD"][:, 0]).round().long()
        for key, value in (("sem_A", sem_A), ("sem_B", sem_B), ("change", change)):
            preds[key].append(value.cpu().numpy())
    return {k: np.concatenate(v) for k, v in preds.items()}


def _score(preds: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
    metrics = SCDTestMetrics(9, protocol="authors")
    metrics.update(labels["sem_A"], labels["sem_B"], labels["bcd"], preds["sem_A"], preds["sem_B"], preds["change"])
    summary = metrics.compute().summary
    return {k: summary[k] for k in METRICS}


def _figure(test_set: SyntheticSCD, labels: dict[str, np.ndarray], model: dict, baseline: dict, rows: int = 3):
    colours = np.vstack([class_colours(9), [[0, 0, 0]]]).astype(np.uint8)

    def change_rgb(change: np.ndarray) -> np.ndarray:
        rgb = np.repeat(np.where(change == 1, 255, 0).astype(np.uint8)[..., None], 3, axis=-1)
        rgb[change == 255] = (128, 128, 128)
        return rgb

    lines = []
    for i in range(min(rows, len(test_set))):
        raw = test_set.sample(i)
        panels = [raw["image_A"], raw["image_B"], colours[labels["sem_A"][i]], colours[labels["sem_B"][i]]]
        panels.append(change_rgb(labels["bcd"][i]))
        for pred in (model, baseline):
            panels += [colours[pred["sem_B"][i]], change_rgb(pred["change"][i])]
        lines.append(side_by_side(panels))
    return np.concatenate(lines, axis=0)


def _atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def run_demo(out: str | Path = "runs/demo-clearscd", device: str = "cpu", steps: int | None = None) -> dict[str, Any]:
    """Train both models, evaluate, print the comparison table, write demo.png and metrics.json."""
    start, cpu_start = time.perf_counter(), time.process_time()
    recipe = DemoRecipe(steps=steps) if steps is not None else DemoRecipe()
    dev = resolve_device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_set = SyntheticSCD(recipe.train_samples, recipe.size, seed=recipe.seed, augment=True)
    test_set = SyntheticSCD(recipe.test_samples, recipe.size, seed=SYNTHETIC_EVAL_SEED)
    raw = [test_set.sample(i) for i in range(len(test_set))]
    labels = {k: np.stack([r[k] for r in raw]) for k in ("sem_A", "sem_B", "bcd")}
    print(
        f"ClearSCD demo: {recipe.train_samples} synthetic training pairs of {recipe.size}x{recipe.size}, "
        f"{recipe.steps} steps of batch {recipe.batch_size} per model on {dev}; reduced FPN width "
        f"(pyramid {recipe.pyramid_channels}, segmentation {recipe.segmentation_channels}; paper: 256, 128)"
    )
    model, model_seconds = _train(recipe, baseline=False, train_set=train_set, device=dev)
    baseline, baseline_seconds = _train(recipe, baseline=True, train_set=train_set, device=dev)
    preds_model = _predict(model, test_set, dev, pcc=False)
    preds_base = _predict(baseline, test_set, dev, pcc=True)
    scores = {"model": _score(preds_model, labels), "baseline": _score(preds_base, labels)}
    print(f"{'metric (%)':<12}{'ClearSCD':>10}{'PCC':>10}   (held-out: {recipe.test_samples} pairs)")
    for key in METRICS:
        print(f"{key:<12}{scores['model'][key]:>10.2f}{scores['baseline'][key]:>10.2f}")
    seconds = time.perf_counter() - start
    payload = {
        "model": scores["model"],
        "baseline": scores["baseline"],
        "primary": {"metric": "SCD_Sek", "higher_is_better": True},
        "config": {
            **asdict(recipe),
            "model": "ClearSCD (EfficientNet-b0 + FPN, reduced FPN width), SACL + BSCC",
            "baseline": "post-classification comparison (same encoder-decoder, semantics only, change = classes differ)",
            "train_seconds": {"model": round(model_seconds, 1), "baseline": round(baseline_seconds, 1)},
            "device": str(dev),
            "torch_threads": torch.get_num_threads(),
            "cpu_seconds": round(time.process_time() - cpu_start, 1),
        },
        "seconds": round(seconds, 1),
    }
    _atomic_write_json(out / "metrics.json", payload)
    tmp = out / ".clearscd.partial.pt"
    torch.save({"model": model.state_dict(), "config": {"clearscd": model.config.to_dict()}}, tmp)
    os.replace(tmp, out / "clearscd.pt")
    figure = _figure(test_set, labels, preds_model, preds_base)
    tmp = out / ".demo.partial.png"
    write_image(tmp, figure)
    os.replace(tmp, out / "demo.png")
    cpu = payload["config"]["cpu_seconds"]
    print(
        f"wrote {out / 'demo.png'}, {out / 'metrics.json'} and {out / 'clearscd.pt'} ({seconds:.0f} s wall, {cpu:.0f} s CPU)"
    )
    return payload
