"""``sgdepth-pkd train``: the two-stage recipe on :func:`semcommon.training.fit` (spec §c, §d).

Stage ``sgdepth`` (stage 1): every step takes one depth batch (frames −1/0/+1, self-supervised view synthesis with
minimum reprojection, automasking and smoothness, l_SDcon on the label map) and one segmentation batch (weighted
cross entropy); both go through the shared encoder in one pass, with gradient scaling 0.9 / 0.1 into it.
Loss = (2·reprojection + l_SDcon) + CE (§c.9). Optional dynamic-class masking (``masking_enable``, from
``masking.from_epoch``).

Stage ``patch_kd`` (stage 2): the same plus l_patch against D_a, the patch-refined target built by the frozen
self-teacher (a stage-1 checkpoint, ``teacher``) at 1.5×/1×/0.5× and an external teacher: a folder of precomputed
depth / inverse-depth maps named like the samples (``external_teacher``; DPT / Depth Anything outputs), or, when
not given, the self-teacher at 1× (a stand-in, stated in the log). l_patch is added on every
``patch_kd_every``-th step.

Data: ``--data synthetic`` (generated sequences; their labels play Cityscapes) or ``--data KITTI_ROOT`` with
``kitti_split`` (a split list) and optionally ``cityscapes`` (root; without it no segmentation loss).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from semcommon.training import TrainTask, load_config, unwrap_model
from sgdepth_pkd.config import SGDepthConfig, TrainingConfig
from sgdepth_pkd.data.common import AugmentConfig
from sgdepth_pkd.data.synthetic import SyntheticConfig, SyntheticDrivingDataset
from sgdepth_pkd.losses import (
    DepthLossConfig,
    depth_reprojection_losses,
    patch_kd_loss,
    self_supervised_depth_loss,
    semantic_depth_consistency,
    total_loss,
    weighted_segmentation_ce,
)
from sgdepth_pkd.masking import DCMasking, DCMaskingConfig, segment_frames, warp_labels
from sgdepth_pkd.model.sgdepth import SGDepth

__all__ = ["PairedDataset", "SGDepthTask", "TaskConfig", "build_task"]

STAGES = ("sgdepth", "patch_kd")


@dataclass(frozen=True)
class TaskConfig:
    """Everything ``train`` reads (``--config FILE`` / ``--set key.sub=value``); paper defaults.

    ``model``: the network (paper: ResNet50, l_SDcon on the class label map); ``loss``: view-synthesis options;
    ``optim``: optimiser and schedule; ``masking``: DC masking schedule (used when ``masking_enable``);
    ``augment``: flips and colour jitter; ``stage``/``teacher``/``external_teacher``/``external_kind``/
    ``patch_size``/``patch_kd_every``: stage 2; ``synthetic_sequences``/``synthetic_frames``/``val_sequences``:
    generated data; ``kitti_split``/``kitti_val_split``/``cityscapes``: real data under ``--data``.
    """

    model: SGDepthConfig = field(default_factory=lambda: SGDepthConfig(sdcon_label_map="classes"))
    loss: DepthLossConfig = field(default_factory=DepthLossConfig)
    optim: TrainingConfig = field(default_factory=TrainingConfig)
    masking: DCMaskingConfig = field(default_factory=DCMaskingConfig)
    masking_enable: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    stage: str = "sgdepth"
    teacher: str | None = None
    external_teacher: str | None = None
    external_kind: str = "inverse_depth"
    patch_size: int = 128
    patch_kd_every: int = 1
    synthetic_sequences: int = 16
    synthetic_frames: int = 8
    val_sequences: int = 2
    kitti_split: str | None = None
    kitti_val_split: str | None = None
    cityscapes: str | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage: {self.stage!r} is not one of {STAGES}")
        if self.stage == "patch_kd" and not self.teacher:
            raise ValueError("teacher: stage 'patch_kd' needs a stage-1 checkpoint (--set teacher=PATH)")
        if self.patch_kd_every < 1 or self.patch_size < 8:
            raise ValueError("patch_kd_every must be >= 1 and patch_size >= 8")
        if self.loss.num_scales > self.model.resolutions_depth:
            raise ValueError(
                f"loss.num_scales: {self.loss.num_scales} exceeds model.resolutions_depth {self.model.resolutions_depth}"
            )


class PairedDataset(Dataset):
    """Item i = {"depth": depth[i], "seg": seg[i mod len(seg)]} (the original's independently cycled loaders)."""

    def __init__(self, depth: Dataset, seg: Dataset | None) -> None:
        self.depth, self.seg = depth, seg

    def __len__(self) -> int:
        return len(self.depth)

    def __getitem__(self, index: int) -> dict:
        item = {"depth": self.depth[index]}
        if self.seg is not None:
            item["seg"] = self.seg[index % len(self.seg)]
        return item


class SGDepthTask(TrainTask):
    """The SGDepth(-PKD) training task; ``data`` = "synthetic" or a KITTI raw root."""

    def __init__(self, config: TaskConfig, data: str = "synthetic") -> None:
        self.config = config
        self.data = data
        # the dead dilated_conv / convx parameters of the authors' encoder never get gradients (DDP must know)
        self.find_unused_parameters = config.model.keep_unused_params
        self.masking = DCMasking(config.masking) if config.masking_enable else None
        self._masking_epoch = 0
        self._teachers: tuple[Any, Any] | None = None
        self.external_is_self = False
        if config.stage == "patch_kd":
            self._teachers = self._build_teachers()

    # ------------------------------------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        return SGDepth(self.config.model)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        optim = self.config.optim
        return torch.optim.Adam(model.parameters(), lr=optim.learning_rate, weight_decay=optim.weight_decay)

    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        optim = self.config.optim
        step_size = optim.scheduler_step_size * optim.batches_per_epoch
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=optim.scheduler_gamma)

    # ------------------------------------------------------------------------------------------------- data
    def _synthetic(self, sequences: int, seed: int, purpose: str, augment: AugmentConfig | None) -> Dataset:
        model = self.config.model
        config = SyntheticConfig(height=model.height, width=model.width, frames=self.config.synthetic_frames)
        return SyntheticDrivingDataset(sequences, config, seed=seed, purpose=purpose, augment=augment)

    def train_dataset(self) -> Dataset:
        from sgdepth_pkd.data.cityscapes import CityscapesDataset
        from sgdepth_pkd.data.kitti import KittiRawDataset

        config, size = self.config, (self.config.model.height, self.config.model.width)
        if self.data == "synthetic":
            depth = self._synthetic(config.synthetic_sequences, 0, "depth", config.augment)
            seg = self._synthetic(config.synthetic_sequences, 0, "segmentation", config.augment)
            return PairedDataset(depth, seg)
        if not config.kitti_split:
            raise ValueError("kitti_split: --data DIR needs a KITTI split list (--set kitti_split=FILE)")
        depth = KittiRawDataset(self.data, config.kitti_split, size, augment=config.augment)
        seg = CityscapesDataset(config.cityscapes, "train", size, config.augment) if config.cityscapes else None
        return PairedDataset(depth, seg)

    def val_dataset(self) -> Dataset | None:
        from sgdepth_pkd.data.kitti import KittiRawDataset
        from sgdepth_pkd.evaluate import SYNTHETIC_EVAL_SEED

        config = self.config
        if self.data == "synthetic":
            if config.val_sequences < 1:
                return None
            return self._synthetic(config.val_sequences, SYNTHETIC_EVAL_SEED, "depth", None)
        if config.kitti_val_split:
            size = (config.model.height, config.model.width)
            return KittiRawDataset(self.data, config.kitti_val_split, size, gt="velodyne")
        return None

    # ---------------------------------------------------------------------------------------------- teachers
    def _build_teachers(self) -> tuple[Any, Any]:
        from sgdepth_pkd.checkpoint import load_model
        from sgdepth_pkd.patch_kd import ModuleTeacher, PrecomputedTeacher, SelfTeacher

        teacher = SelfTeacher(load_model(self.config.teacher))
        if self.config.external_teacher:
            return teacher, PrecomputedTeacher(self.config.external_teacher, kind=self.config.external_kind)
        self.external_is_self = True
        return teacher, ModuleTeacher(teacher.model.predict_disparity, name="self teacher (1x)")

    def _distillation_target(self, color_aug: torch.Tensor, disp: torch.Tensor, names: list[str]) -> tuple:
        from sgdepth_pkd.patch_kd import PatchKDConfig, build_distillation_target
        from sgdepth_pkd.patch_kd.select import SelectionConfig

        self_teacher, external = self._teachers
        self_teacher.model.to(color_aug.device)
        config = PatchKDConfig(selection=SelectionConfig(patch_size=self.config.patch_size))
        return build_distillation_target(color_aug, disp.detach(), self_teacher, external, config, names)

    # -------------------------------------------------------------------------------------------------- step
    def _moving_mask(self, model: SGDepth, depth: dict, warps: dict, step: int) -> torch.Tensor | None:
        if self.masking is None:
            return None
        epoch = step // self.config.optim.batches_per_epoch
        while self._masking_epoch < epoch:
            self.masking.end_epoch(self._masking_epoch)
            self._masking_epoch += 1
        if not self.masking.active(epoch):
            return None
        labels = segment_frames(model, {f: depth["color_aug", f, 0] for f in (0, -1, 1)})
        warped = {f: warp_labels(labels[f], warps["sample", f, 0].detach()) for f in (-1, 1)}
        return self.masking.moving_mask(labels[0], warped)

    def training_step(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, Any]]:
        config = self.config
        depth, seg = batch["depth"], batch.get("seg")
        datasets = [{**{("color_aug", f, 0): depth["color_aug", f, 0] for f in (0, -1, 1)}, "purposes": ["depth"]}]
        if seg is not None:
            datasets.append({("color_aug", 0, 0): seg["color_aug", 0, 0], "purposes": ["segmentation"]})
        outputs = model(datasets)
        out = outputs[0]
        images = {f: depth["color", f, 0] for f in (0, -1, 1)}
        disps = [out["disp", r] for r in range(config.model.resolutions_depth)]
        poses = {f: out["cam_T_cam", 0, f] for f in (-1, 1)}
        losses, warps = self_supervised_depth_loss(images, disps, depth["K"], depth["inv_K"], poses, config.loss)
        mask = self._moving_mask(unwrap_model(model), depth, warps, step)
        if mask is not None:
            losses = depth_reprojection_losses(images, warps, config.loss, mask)
        reprojection = losses["loss_depth_reprojection"]
        sdcon = semantic_depth_consistency(out["segmentation_mask", 0], out["disp", 0])
        loss_seg = (
            weighted_segmentation_ce(outputs[1]["segmentation_logits", 0], seg["segmentation", 0, 0])
            if seg is not None
            else reprojection.new_zeros(())
        )
        loss_patch = None
        logs: dict[str, Any] = {"loss_depth_reprojection": reprojection.detach(), "loss_sdcon": sdcon.detach()}
        if config.stage == "patch_kd" and step % config.patch_kd_every == 0:
            disp_a, patchnums = self._distillation_target(depth["color_aug", 0, 0], out["disp", 0], depth["name"])
            loss_patch = patch_kd_loss(out["disp", 0], disp_a, patchnums.cpu(), mask)
            logs["loss_patch"] = loss_patch.detach()
            logs["patches"] = float(patchnums.sum())
        logs["loss_seg"] = loss_seg.detach()
        return total_loss(reprojection, sdcon, loss_seg, loss_patch), logs

    def evaluate(self, model: nn.Module, loader: Any) -> dict[str, float]:
        from sgdepth_pkd.evaluate import evaluate_loader

        mask = "range" if self.data == "synthetic" else "kitti_zhou"
        metrics = evaluate_loader(unwrap_model(model), loader, mask).metrics()
        return {k: float(v) for k, v in metrics.items()}


def build_task(args: argparse.Namespace) -> SGDepthTask:
    """``train``'s task from ``--config`` (JSON/YAML, nested keys) and ``--set`` overrides."""
    config = load_config(TaskConfig, args.config, args.set)
    return SGDepthTask(config, args.data)
