"""``ssp train``: the paper's two stages on :func:`semcommon.training.fit` (spec sections c and d).

Stage ``image`` (``config/image/*.yaml``): Hiera + UperNet from SAM2 weights, cross-entropy on labelled frames
(``loss_func: crossentropy``; the image baseline, and the KD teacher with ``checkpoint_model: base_plus``) or the
temperature KL on teacher logits (``kldiv``: the KD image baseline). Stage ``video`` (``config/video/*.yaml``): the
SSP model initialised from a trained image checkpoint, trained on (previous, labelled current) pairs with
``CE + lambda * L_tc`` (SSP, lambda 0.5) or, with ``kldiv``, on every second frame with
``KL(out) + KL(last_out) + lambda * L_tc`` on flow-consistent teacher logits (KD-SSP, lambda 135000, T = 2).
AdamW (weight decay 0.05), per-iteration cosine schedule with a linear warmup of ``warmup_epochs`` from
``start_lr`` to the base LR and a floor ``final_lr``, progress measured against ``num_epochs`` (training stops at
``early_stopping`` epochs, so the LR never reaches its floor). RAFT, DISK and LightGlue are frozen.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from semcommon.checkpoint import LoadReport, load_state_dict_into
from semcommon.training import TrainTask, unwrap_model
from ssp.checkpoint import load_pretrained, load_sam2_backbone
from ssp.config import TrainConfig
from ssp.data import ClipSource, FrameDataset, PairDataset, SyntheticConfig, open_source
from ssp.geometry import flow_from_homography
from ssp.losses import cross_entropy_loss, kd_ssp_loss, kl_div_soft_label, raft_flow, ssp_loss
from ssp.metrics import MeanIoU
from ssp.model.image_model import HieraUperNet
from ssp.model.ssp import SSPVideoModel

__all__ = ["SSPTrainTask", "cosine_multiplier"]


def cosine_multiplier(step: int, steps_per_epoch: int, num_epochs: float, warmup_epochs: float, start: float,
                      final: float) -> float:  # fmt: skip
    """The authors' per-iteration LR multiplier: linear warmup ``start -> 1`` over ``warmup_epochs``, then
    ``max(final, final + (1 - final) * 0.5 * (1 + cos(pi * progress)))`` with progress over ``num_epochs``."""
    warmup = warmup_epochs * steps_per_epoch
    if step < warmup:
        return start + (1.0 - start) * step / warmup
    total = max(num_epochs * steps_per_epoch - warmup, 1.0)
    progress = min((step - warmup) / total, 1.0)
    return max(final, final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class SSPTrainTask(TrainTask):
    """The :class:`~semcommon.training.TrainTask` of both stages; ``data`` = ``synthetic`` or a prepared root."""

    def __init__(self, config: TrainConfig, data: str = "synthetic", batch_size: int | None = None) -> None:
        self.config, self.data = config, data
        self.batch_size = batch_size or config.training_cfg.batch_size
        if self.batch_size < 2:
            raise ValueError(
                f"--batch-size {self.batch_size}: UperNet's BatchNorm on the 1×1 pooled map needs >= 2 samples per process"
            )
        if config.ours.flow == "homography" and data != "synthetic" and not config.data_cfg.opencv_homos:
            raise ValueError("ours.flow homography needs known homographies: --data synthetic or data_cfg.opencv_homos")
        if config.ours.stage == "video" and config.ours.flow == "raft" and config.ours.raft_weights is None:
            raise ValueError(
                "ours.raft_weights: the consistency loss needs RAFT 'things' weights (or ours.flow homography)"
            )
        if config.loss_cfg.loss_func == "kldiv" and config.data_cfg.logits_folder is None:
            raise ValueError("data_cfg.logits_folder: KD (loss_func kldiv) needs teacher logits (ssp save-logits)")

    @property
    def kd(self) -> bool:
        return self.config.loss_cfg.loss_func == "kldiv"

    @property
    def video(self) -> bool:
        return self.config.ours.stage == "video"

    def _source(self, split: str) -> ClipSource:
        ours = self.config.ours
        synthetic = SyntheticConfig(
            num_clips=ours.synthetic_clips,
            frames_per_clip=ours.synthetic_frames,
            size=tuple(ours.synthetic_size),
            label_every=ours.synthetic_label_every,
            seed=0,
        )
        return open_source(self.data, split, self.config.data_cfg.dataset, synthetic)

    def _dataset(self, split: str, train: bool) -> Dataset:
        data = self.config.data_cfg
        common = {
            "crop_size": tuple(data.crop_size),
            "train": train and data.data_augmentation,
            "square_crop": data.square_crop,
            "logits_folder": data.logits_folder if self.kd and split == "train" else None,
            "skip_frames": data.train_skip_frames if split == "train" else None,
        }
        source = self._source(split)
        if not self.video:
            return FrameDataset(source, **common)
        return PairDataset(source, **common, opencv_homos=data.opencv_model_type if data.opencv_homos else None)

    @cached_property
    def _train_set(self) -> Dataset:
        return self._dataset("train", train=True)

    def train_dataset(self) -> Dataset:
        return self._train_set

    def val_dataset(self) -> Dataset | None:
        return self._dataset("val", train=False)

    def build_model(self) -> nn.Module:
        config, ours = self.config, self.config.ours
        if not self.video:
            model = HieraUperNet(config.image_model)
            if ours.sam2_checkpoint:
                load_sam2_backbone(ours.sam2_checkpoint, model.backbone)
            return model
        model = SSPVideoModel(config.video_model_cfg, config.image_model, with_flow_model=ours.flow == "raft",
                              opencv_model_type=config.data_cfg.opencv_model_type)  # fmt: skip
        if config.image_checkpoint:
            load_pretrained(config.image_checkpoint, model=model.base_model)
        if model.flow_model is not None:
            load_pretrained(ours.raft_weights, model=model.flow_model, kind="raft")
        for frozen in (model.flow_model, model.registrator):
            if frozen is not None:
                frozen.requires_grad_(False)
        return model

    def on_init_checkpoint(self, model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
        """``--init``: matching keys load (strict=False, as the authors' ``pretrained_checkpoint``); an image-model
        checkpoint given to a video run initialises its ``base_model``."""
        if isinstance(model, SSPVideoModel) and not any(k.startswith("base_model.") for k in state_dict):
            state_dict = {f"base_model.{k}": v for k, v in state_dict.items()}
        return load_state_dict_into(model, state_dict, strict=False, source="--init checkpoint")

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.AdamW(
            params, lr=self.config.training_cfg.lr, weight_decay=self.config.optim_cfg.weight_decay
        )

    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        optim, training = self.config.optim_cfg, self.config.training_cfg
        world = int(os.environ.get("WORLD_SIZE", "1"))
        steps_per_epoch = max(len(self._train_set) // (self.batch_size * world), 1)

        def multiplier(step: int) -> float:
            return cosine_multiplier(step, steps_per_epoch, training.num_epochs, optim.warmup_epochs,
                                     optim.start_lr, optim.final_lr)  # fmt: skip

        return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)

    def _flows(self, model: nn.Module, batch: Mapping[str, torch.Tensor], iters: int) -> tuple[torch.Tensor, ...]:
        """(current -> previous, previous -> current) flows, ``B×2×H×W``."""
        frames, last_frames = batch["frames"], batch["last_frames"]
        if self.config.ours.flow == "homography":
            homos = batch["homos"].double()
            size = tuple(frames.shape[-2:])
            return flow_from_homography(torch.linalg.inv(homos), size), flow_from_homography(homos, size)
        raft = unwrap_model(model).flow_model
        with torch.no_grad():
            backward = raft_flow(raft, frames, last_frames, iters)
            forward = raft_flow(raft, last_frames, frames, iters) if self.kd else backward
        return backward, forward

    def training_step(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, Mapping[str, Any]]:
        loss_cfg, video_cfg = self.config.loss_cfg, self.config.video_model_cfg
        if not self.video:
            logits = model(batch["image"])
            if self.kd:
                loss = kl_div_soft_label(logits, batch["teacher"], loss_cfg.temperature, loss_cfg.softmax_on_target)
                return loss, {"kl": loss.detach()}
            loss = cross_entropy_loss(logits, batch["label"])
            return loss, {"ce": loss.detach()}
        homos = batch["homos"] if bool(batch["has_homos"].all()) else None
        result = model(batch["frames"], batch["last_frames"], homos=homos)
        out, last_out = result["out"], result["last_out"]
        if self.kd:
            backward, forward = self._flows(model, batch, iters=15)
            consistency = self._flows(model, batch, iters=20)[0] if self.config.ours.flow == "raft" else backward
            losses = kd_ssp_loss(out, last_out, batch["teacher"], batch["last_teacher"], batch["frames"],
                                 batch["last_frames"], backward, forward, video_cfg.const_loss_lb,
                                 video_cfg.last_out_loss_lb, loss_cfg.temperature, video_cfg.kd_consistent_labels,
                                 flow_consistency=consistency)  # fmt: skip
            logs = {"kd_seg_loss": losses["kd_seg_loss"], "const": video_cfg.const_loss_lb * losses["const_loss"]}
        else:
            backward = self._flows(model, batch, iters=20)[0]
            losses = ssp_loss(out, last_out, batch["label"], batch["frames"], batch["last_frames"], backward,
                              video_cfg.const_loss_lb)  # fmt: skip
            logs = {"ce": losses["ce"], "const": losses["const"]}
        return losses["total"], {k: v.detach() for k, v in logs.items()}

    def evaluate(self, model: nn.Module, loader: Any) -> dict[str, float]:
        """Validation mIoU over the labelled validation frames (centre crops), as logged by the authors."""
        confusion = MeanIoU(self.config.n_classes)
        for batch in loader:
            if self.video:
                homos = batch["homos"] if bool(batch["has_homos"].all()) else None
                logits = model(batch["frames"], batch["last_frames"], homos=homos)["out"]
            else:
                logits = model(batch["image"])
            confusion.update(logits.argmax(1), batch["label"])
        return {"val_mIoU": float(confusion.miou())}
