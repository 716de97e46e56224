"""``clearscd train``: the authors' recipe (main.py + ours.json) as a :class:`semcommon.training.TrainTask`.

Loss per batch: BCD (BCE-with-ignore + Dice) + CE(seg_A) + CE(seg_B) + SACL (0.1·local InfoNCE + global memory-queue
term, the global term only filling the queues during the ``warmup_epoch`` first epochs) + 0.1·BSCC. Adam (lr
2.5e-4, weight decay 5e-4), StepLR ×0.9 every 10 epochs (applied per optimizer step as ``0.9 ** (step // (10 ·
steps_per_epoch))``, the same schedule), batch 8, 100 epochs, crop 512 with the paired augmentation of the recipe.
Validation as main.py: BCD IoU/F1 (change class) and semantic mIoU/mF1 with both dates pooled; the authors'
selection metric ``selection`` = BCD IoU + mIoU; SeK also reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from clearscd.config import ClearSCDConfig, is_separator
from clearscd.data import HiUCDDataset, LsSCDDataset, SyntheticSCD
from clearscd.data.common import DataError
from clearscd.losses import total_loss
from clearscd.metrics import BCDEvaluator, SCDTestMetrics, SEGEvaluator
from clearscd.model.clearscd import ClearSCD
from semcommon.training import TrainerConfig, TrainTask, load_config, unwrap_model

__all__ = ["ClearSCDTask", "TrainConfig", "load_train_config", "trainer_defaults", "without_best_metric"]

SYNTHETIC_VAL_SEED = 500


@dataclass
class TrainConfig:
    """Everything ``clearscd train`` needs besides the frame's mechanics.

    ``clearscd``: the authors' ``ours.json`` keys (model, losses, optimiser, schedule); ``data``: "synthetic" or a
    dataset folder; ``train_list`` / ``val_list``: split lists (default ``DATA/train.txt`` and ``DATA/val.txt``
    when present; the authors' absolute paths are re-rooted on ``DATA``); ``raw_masks``: Hi-UCD masks not yet
    converted by deal_hiucd; ``tile``: LsSCD scene tile size; ``synthetic_*``: the generated data set.
    """

    clearscd: ClearSCDConfig = field(default_factory=ClearSCDConfig)
    data: str = "synthetic"
    train_list: str | None = None
    val_list: str | None = None
    raw_masks: bool = False
    tile: int = 512
    synthetic_samples: int = 64
    synthetic_val_samples: int = 8
    synthetic_size: int = 128


def load_train_config(path: str | None, overrides: list[str], data: str = "synthetic") -> TrainConfig:
    """A :class:`TrainConfig` from the authors' ``ours.json`` (its keys go to ``clearscd``; separator keys are
    skipped) or from our own JSON/YAML (``{"clearscd": {...}, "data": ...}``), plus ``--set`` overrides. Override
    keys naming an ``ours.json`` key may omit the ``clearscd.`` prefix."""
    items: list[str] = [f"data={json.dumps(data)}"]
    if path is not None:
        file = Path(path)
        if file.suffix == ".json" and file.is_file():
            try:
                raw = json.loads(file.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{file}: not valid JSON ({exc})") from exc
            authors = {f.name for f in fields(ClearSCDConfig)}
            if isinstance(raw, dict) and "clearscd" not in raw and any(k in authors or is_separator(k) for k in raw):
                model = ClearSCDConfig.from_dict(raw, source=str(file))
                items = [f"clearscd.{k}={json.dumps(v)}" for k, v in model.to_dict().items()] + items
                path = None
    own = {f.name for f in fields(TrainConfig)}
    for item in overrides:
        key = item.partition("=")[0].strip()
        items.append(item if key.split(".")[0] in own else f"clearscd.{item}")
    return load_config(TrainConfig, path, items)


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class ClearSCDTask(TrainTask):
    """The training task. ``batch_per_step`` = batch size × gradient accumulation (per process), used to turn the
    recipe's epoch-based warm-up and LR steps into optimizer steps. DDP runs with ``find_unused_parameters``: the
    encoder's ``_conv_head``/``_bn1`` are in the state dict but never used (as in the authors' model)."""

    find_unused_parameters = True

    def __init__(self, config: TrainConfig, batch_per_step: int = 8) -> None:
        self.config = config
        self.batch_per_step = batch_per_step
        self._train: Dataset | None = None

    # ------------------------------------------------------------------------------------------------ data
    def train_dataset(self) -> Dataset:
        if self._train is None:
            self._train = self._dataset(train=True)
        return self._train

    def val_dataset(self) -> Dataset | None:
        return self._dataset(train=False)

    def _dataset(self, train: bool) -> Dataset | None:
        cfg, scd = self.config, self.config.clearscd
        if cfg.data == "synthetic":
            if train:
                return SyntheticSCD(cfg.synthetic_samples, cfg.synthetic_size, seed=0, augment=True)
            return SyntheticSCD(cfg.synthetic_val_samples, cfg.synthetic_size, seed=SYNTHETIC_VAL_SEED)
        root = Path(cfg.data)
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder not found (--data)")
        listed = cfg.train_list if train else cfg.val_list
        list_path = Path(listed) if listed else root / ("train.txt" if train else "val.txt")
        if not train and listed is None and not list_path.is_file():
            return None
        if scd.dataset == "HiUCD":
            return HiUCDDataset(list_path, root, augment=train, size=scd.size, raw_masks=cfg.raw_masks)
        if scd.dataset == "Nanjing":
            return LsSCDDataset(
                list_path, root, tile=cfg.tile, augment=train, size=scd.size, num_classes=scd.num_segclass
            )
        raise ValueError(f"config 'dataset': training reads 'HiUCD' or 'Nanjing' (LsSCD), got {scd.dataset!r}")

    def steps_per_epoch(self) -> int:
        per_process = len(self.train_dataset()) // _world_size()
        return max(1, per_process // self.batch_per_step)

    # ------------------------------------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        return ClearSCD(self.config.clearscd)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        scd = self.config.clearscd
        return torch.optim.Adam(model.parameters(), lr=scd.learning_rate, weight_decay=scd.weight_decay)

    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        period = 10 * self.steps_per_epoch()
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.9 ** (step // period))

    def training_step(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        """One batch of main.py: epoch = step // steps_per_epoch + 1, warm-up while epoch <= warmup_epoch."""
        scd = self.config.clearscd
        epoch = step // self.steps_per_epoch() + 1
        imgs = torch.cat([batch["img_A"], batch["img_B"]], dim=1)
        labels = batch["label_SGA"], batch["label_SGB"], batch["label_BCD"]
        out = model(imgs, *labels, test=False, warmup=epoch <= scd.warmup_epoch)
        parts = total_loss(out, *labels, num_segclass=scd.num_segclass)
        logs = {k: v.detach() for k, v in parts.items() if k != "loss"}
        return parts["loss"], logs

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: Any) -> dict[str, float]:
        """main.py's validation (BCD IoU/F1, pooled semantic mIoU/mF1, selection = IoU + mIoU) plus SeK; mF1 is
        taken over the classes that occur (the original's plain mean is NaN when a class is absent)."""
        model = unwrap_model(model)
        num_classes = self.config.clearscd.num_segclass
        device = next(model.parameters()).device
        bcd, seg = BCDEvaluator(), SEGEvaluator(num_classes)
        scd = SCDTestMetrics(num_classes, protocol="authors")
        for batch in loader:
            imgs = torch.cat([batch["img_A"], batch["img_B"]], dim=1).to(device)
            out = model(imgs, test=True)
            pred_A, pred_B = out["seg_A"].argmax(1).cpu().numpy(), out["seg_B"].argmax(1).cpu().numpy()
            change = torch.sigmoid(out["BCD"][:, 0]).round().long().cpu().numpy()
            gt_A, gt_B, gt_bcd = (batch[k].cpu().numpy() for k in ("label_SGA", "label_SGB", "label_BCD"))
            bcd.add_batch(gt_bcd, change)
            seg.add_batch(gt_A, pred_A)
            seg.add_batch(gt_B, pred_B)
            scd.update(gt_A, gt_B, gt_bcd, pred_A, pred_B, change)
        iou, miou = bcd.intersection_over_union(), seg.mean_intersection_over_union()
        return {
            "BCD_IoU": iou,
            "BCD_F1": bcd.f1_score(),
            "SEG_mIoU": miou,
            "SEG_mF1": float(np.nanmean(seg.f1_score())) if np.isfinite(seg.f1_score()).any() else 0.0,
            "SeK": scd.compute().raw["Sek"],
            "selection": iou + miou,
        }


def trainer_defaults(config: TrainConfig) -> dict[str, Any]:
    """The frame defaults the recipe implies (command-line flags win): ``batch_size``, ``epochs``, ``print_step``
    (→ log_every) and ``resume`` (a weights file → ``--init``, which is what the authors' resume does) of ours.json;
    the best checkpoint by the authors' selection metric (BCD IoU + mIoU)."""
    scd = config.clearscd
    defaults = {"batch_size": scd.batch_size, "epochs": scd.epochs, "max_steps": None, "best_metric": "selection"}
    defaults["log_every"] = scd.print_step
    if scd.resume:
        defaults["init"] = scd.resume
    return defaults


def without_best_metric(base: TrainerConfig) -> TrainerConfig:
    """The same frame config without ``best_metric`` (a data set without a validation split)."""
    return replace(base, best_metric=None)
