"""``semstereo train``: the recipe of ``main_us3d.py`` / ``main_whu.py`` as a :class:`semcommon.training.TrainTask`.

Stage 1 (``--stage attention``): the model without the concatenation branch, label loss ×1.6. Stage 2
(``--stage full --init STAGE1_CKPT``): the full model initialised from stage 1 (keys present in both), label loss
×2.4, fresh Adam and schedule. Adam (lr 1e-3, betas 0.9/0.999), LR halved at the start of epochs 12, 22, 30, 38, 44
(``lrepochs``), 48 epochs, batch 4, full tiles without augmentation, seed 1. US3D objective: disparity (signed mask,
weights 1.0/0.6/0.5/0.3) + label (CE + Dice) + LRSC; WHU: disparity (``0 < gt < M``) + LRSC on pseudo-labels.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

from semcommon.checkpoint import LoadReport, load_state_dict_into
from semcommon.training import FitResult, TrainTask, fit, load_config, trainer_config_from_args, unwrap_model
from semstereo.checkpoint import clean_state_dict
from semstereo.config import TrainConfig, parse_lrepochs
from semstereo.data.factory import dataset_kind, open_dataset
from semstereo.evaluate import evaluate_model
from semstereo.losses import train_losses
from semstereo.model import SemStereo
from semstereo.model.blocks import init_conv_bn


class SemStereoTask(TrainTask):
    """One training stage of SemStereo on ``data`` (``"synthetic"`` or a dataset root)."""

    def __init__(self, config: TrainConfig, data: str = "synthetic") -> None:
        self.config = config
        self.data = data
        self.kind = dataset_kind(data, config.data, "train")
        if self.kind == "whu" and config.model.variant != "whu":
            raise ValueError(
                "--data: a WHU dataset needs the WHU model (--set model.variant=whu --set model.maxdisp=128)"
            )
        # stage 1 leaves the concatenation branch without gradients (DDP must know)
        self.find_unused_parameters = config.stage == "attention"
        self._steps_per_epoch = 1

    # ------------------------------------------------------------------------------------------------- model
    def build_model(self) -> nn.Module:
        model = SemStereo(self.config.model_config(), backbone_weights=self.config.backbone_weights)
        for module in (model.feature_up, model.corr_feature_att_8, model.concat_feature_att_4):
            init_conv_bn(module)  # the original weight_init on FeatUp and channelAtt
        return model

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.config.lr, betas=self.config.betas)

    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """Per-step LambdaLR reproducing the per-epoch ``adjust_learning_rate`` (divide at each milestone epoch)."""
        milestones, divisor = parse_lrepochs(self.config.lrepochs)
        steps = self._steps_per_epoch

        def factor(step: int) -> float:
            epoch = step // steps
            return 1.0 / divisor ** sum(epoch >= m for m in milestones)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    # -------------------------------------------------------------------------------------------------- data
    def train_dataset(self) -> Dataset:
        dataset = open_dataset(self.data, self.config.data, "train")
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self._steps_per_epoch = max(1, len(dataset) // (self.config.batch_size * world))  # drop_last
        return dataset

    def val_dataset(self) -> Dataset:
        return open_dataset(self.data, self.config.data, "test")

    # ------------------------------------------------------------------------------------------------- steps
    def training_step(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, Mapping[str, Any]]:
        out = model(batch["left"], batch["right"])
        cfg = self.config
        objective = cfg.model.variant
        losses = train_losses(
            out.disparities,
            out.label_left,
            out.label_right,
            batch["disparity"],
            batch["disparity_4"],
            batch.get("label"),
            maxdisp=cfg.model.maxdisp,
            stage=1 if cfg.stage == "attention" else 2,
            objective=objective,
            lrsc=cfg.lrsc,
        )
        logs = {k: v.detach() for k, v in losses.items() if k != "total"}
        return losses["total"], logs

    def evaluate(self, model: nn.Module, loader: Any) -> dict[str, float]:
        result = evaluate_model(unwrap_model(model), loader, signed=self.config.model.variant == "us3d")
        out = {key: value for key, value in result.original.items()}
        out.update({f"corrected_{k}": v for k, v in result.corrected.items() if isinstance(v, float)})
        return out

    def on_init_checkpoint(self, model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport | None:
        """``--init``: the keys present in both (the authors' ``--loadckpt`` filter), ``module.`` prefixes removed."""
        return load_state_dict_into(model, clean_state_dict(dict(state_dict)), strict=False, source="--init checkpoint")


def task_from_args(args: argparse.Namespace) -> SemStereoTask:
    """The task of ``semstereo train``: ``--config`` (JSON/YAML of :class:`TrainConfig`) + ``--set`` + ``--stage``."""
    config = load_config(TrainConfig, args.config, args.set)
    if getattr(args, "stage", None):
        config = replace(config, stage=args.stage)
    return SemStereoTask(config, args.data)


def run_training(args: argparse.Namespace) -> FitResult:
    """``semstereo train``: the recipe's epochs (no step bound), batch size and seed unless flags override them;
    the stored config records the values used."""
    task = task_from_args(args)
    recipe = task.config
    cfg = trainer_config_from_args(
        args, epochs=recipe.epochs, max_steps=None, batch_size=recipe.batch_size, seed=recipe.seed
    )
    task.config = replace(recipe, epochs=cfg.epochs or recipe.epochs, batch_size=cfg.batch_size, seed=cfg.seed)
    return fit(task, cfg)
