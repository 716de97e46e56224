"""``semaglue train``: supervised training of the matcher (ours; the authors released no training code).

The recipe follows glue-factory's LightGlue training, which the released model's heads imply (spec section c):

- **Loss**: negative log-likelihood of the ground-truth partial assignment (matches and unmatched keypoints
  against the dustbins, balanced 0.5/0.5) on every layer's assignment head (deep supervision, layer weights
  ``gamma ** (L-1-i)``, normalised), plus the token-confidence BCE of the first ``L-1`` layers
  (:func:`semaglue.losses.deep_supervision_loss`).
- **Semantic branch**: SegNeXt MSCAN-T stays frozen (no gradient, BatchNorm in eval mode); only the matcher learns.
- **Stage 1** (``stage: homography``): synthetic homographies (photometric + geometric augmentation) of
  scikit-image's photos (``--data synthetic``) or of any image folder (``--data DIR``); ground truth by
  reprojection (3 px positives, 5 px unmatched, the rest ignored).
- **Stage 2** (``stage: megadepth``, ``--data MEGADEPTH_ROOT``, usually ``--init`` the stage-1 run): pairs of the
  glue-factory MegaDepth layout (:mod:`semaglue.data.megadepth`); ground truth by reprojection through the depth
  maps and poses with a depth-consistency check (:mod:`semaglue.depth_matches`); validation reports pose AUC.
- **Optimiser**: Adam, lr 1e-4, constant, then exponential decay (÷10 every ``lr_decay_every`` steps) from
  ``lr_decay_start`` (glue-factory: ``exp`` schedule from epoch 20, ``exp_div_10`` = 10 epochs; converted to steps
  for 150k pairs at batch 64).
- **Keypoints**: SuperPoint when ``features.superpoint_weights`` is given (the paper), else OpenCV SIFT with the
  RootSIFT projection of :mod:`semaglue.features` (so training needs no downloaded weights).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from semaglue.config import SegNextConfig, SemaGlueConfig
from semaglue.data.megadepth import MegaDepthConfig, MegaDepthPairs
from semaglue.data.synthetic import HELD_OUT_PHOTOS, SyntheticConfig, SyntheticHomographies, list_images
from semaglue.depth_matches import gt_matches_from_depth
from semaglue.features import SIFT_DIM, FeatureExtractor
from semaglue.geometry import estimate_pose
from semaglue.gluefactory import convert, is_gluefactory
from semaglue.homography import (
    corner_error,
    estimate_homography,
    gt_matches_from_homography,
    homography_auc,
    match_precision_recall,
)
from semaglue.losses import deep_supervision_loss
from semaglue.metrics import aggregate_results, compute_pose_error
from semaglue.model import FeatureMatcher
from semcommon.checkpoint import load_state_dict_into
from semcommon.training import TrainTask, add_train_arguments, load_config, unwrap_model


@dataclass
class FeatureConfig:
    """Keypoints. ``kind``: ``auto`` (SuperPoint when ``superpoint_weights`` is set, else SIFT), ``superpoint``,
    ``sift``. glue-factory's homography stage uses 512 keypoints per image."""

    kind: str = "auto"
    superpoint_weights: str | None = None
    max_keypoints: int = 512
    nms_radius: int = 3
    keypoint_threshold: float = 0.005

    def resolved_kind(self) -> str:
        if self.kind == "auto":
            return "superpoint" if self.superpoint_weights else "sift"
        if self.kind not in ("superpoint", "sift"):
            raise ValueError(f"features.kind must be auto, superpoint or sift, got {self.kind!r}")
        return self.kind


@dataclass
class LossConfig:
    """glue-factory LightGlue loss settings; ``pos_th``/``neg_th`` (px) define the ground truth, and
    ``depth_consistency`` (relative depth difference) the occlusion check of stage 2."""

    gamma: float = 1.0
    nll_balancing: float = 0.5
    confidence_weight: float = 1.0
    pos_th: float = 3.0
    neg_th: float = 5.0
    depth_consistency: float = 0.1


@dataclass
class OptimConfig:
    """Adam with glue-factory's ``exp`` schedule (in optimizer steps)."""

    lr: float = 1e-4
    lr_decay_start: int = 46875
    lr_decay_every: int = 23437
    weight_decay: float = 0.0


@dataclass
class TrainConfig:
    """Everything ``semaglue train`` builds (``--config`` JSON/YAML and ``--set key.sub=value`` address these)."""

    stage: str = "homography"
    matcher: SemaGlueConfig = field(default_factory=SemaGlueConfig)
    segnext: SegNextConfig = field(default_factory=SegNextConfig)
    segnext_weights: str | None = None
    features: FeatureConfig = field(default_factory=FeatureConfig)
    data: SyntheticConfig = field(default_factory=lambda: SyntheticConfig(height=480, width=640, num_pairs=150000))
    megadepth: MegaDepthConfig = field(default_factory=MegaDepthConfig)
    val_pairs: int = 64
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        if self.features.max_keypoints < 1:
            raise ValueError(f"features.max_keypoints must be >= 1 for training, got {self.features.max_keypoints}")
        if self.optim.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {self.optim.lr}")
        if self.stage not in ("homography", "megadepth"):
            raise ValueError(f"stage must be homography or megadepth, got {self.stage!r}")
        self.features.resolved_kind()


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Set the matcher's ``input_dim`` from the keypoint kind (SIFT: 128, projected by ``input_proj``) and its
    ``segment_dim`` from the SegNeXt stages (480 for MSCAN-T)."""
    dim = SIFT_DIM if config.features.resolved_kind() == "sift" else 256
    matcher = replace(config.matcher, input_dim=dim, segment_dim=config.segnext.out_channels)
    return replace(config, matcher=matcher)


PASSED_THROUGH = ("image0", "image1", "H_0to1", "feature_map0", "feature_map1", "K0", "K1", "T_0to1", "T_1to0")


class MatchingPairs(Dataset):
    """Pairs with keypoints and ground truth, padded to ``K = max_keypoints`` (mask False = padding).

    Items: ``image0/1`` ``1×H×W``, ``keypoints0/1`` ``K×2``, ``descriptors0/1`` ``D×K``, ``mask0/1`` ``K``,
    ``gt_matches0/1`` ``K`` (-1 unmatched, -2 ignored), and the geometry: ``H_0to1`` 3×3 (homography pairs) or
    ``K0/1``, ``T_0to1``/``T_1to0`` (depth pairs, whose ``depth0/1`` give the ground truth). Precomputed
    ``feature_map0/1`` are passed through when the wrapped dataset has them.
    """

    def __init__(self, pairs: Dataset, extractor: FeatureExtractor, max_keypoints: int, loss: LossConfig) -> None:
        self.pairs, self.extractor, self.k, self.loss = pairs, extractor, max_keypoints, loss

    def __len__(self) -> int:
        return len(self.pairs)  # type: ignore[arg-type]

    def _features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.extractor(image[0].numpy())
        n = min(len(feats["keypoints"]), self.k)
        kpts = torch.zeros(self.k, 2)
        desc = torch.zeros(self.extractor.dim, self.k)
        mask = torch.zeros(self.k, dtype=torch.bool)
        kpts[:n] = torch.from_numpy(feats["keypoints"][:n])
        desc[:, :n] = torch.from_numpy(feats["descriptors"][:, :n])
        mask[:n] = True
        return {"keypoints": kpts, "descriptors": desc, "mask": mask}

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.pairs[index]
        out = {k: v for k, v in item.items() if k in PASSED_THROUGH}
        for i in (0, 1):
            for key, value in self._features(item[f"image{i}"]).items():
                out[f"{key}{i}"] = value
        if "depth0" in item:
            gt0, gt1 = gt_matches_from_depth(
                *(x[None] for x in (out["keypoints0"], out["keypoints1"], item["depth0"], item["depth1"])),
                *(x[None] for x in (item["K0"], item["K1"], item["T_0to1"])),
                self.loss.pos_th,
                self.loss.neg_th,
                self.loss.depth_consistency,
                out["mask0"][None],
                out["mask1"][None],
            )
            out["gt_matches0"], out["gt_matches1"] = gt0[0], gt1[0]
            return out
        gt0, gt1 = gt_matches_from_homography(
            out["keypoints0"][None],
            out["keypoints1"][None],
            item["H_0to1"][None],
            tuple(item["image0"].shape[-2:]),
            tuple(item["image1"].shape[-2:]),
            self.loss.pos_th,
            self.loss.neg_th,
            out["mask0"][None],
            out["mask1"][None],
        )
        out["gt_matches0"], out["gt_matches1"] = gt0[0], gt1[0]
        return out


def drop_empty_pairs(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch without pairs where an image has no keypoint at all (attention over nothing is undefined); when
    every pair is empty, one is kept and its loss is zero-weighted by the all-ignored ground truth."""
    keep = batch["mask0"].any(1) & batch["mask1"].any(1)
    if bool(keep.all()):
        return batch
    if not bool(keep.any()):
        keep = keep.clone()
        keep[0] = True
        batch = {**batch, "mask0": batch["mask0"].clone(), "mask1": batch["mask1"].clone()}
        batch["mask0"][0, 0] = batch["mask1"][0, 0] = True
        batch["gt_matches0"] = torch.full_like(batch["gt_matches0"], -2)
        batch["gt_matches1"] = torch.full_like(batch["gt_matches1"], -2)
    size = keep.shape[0]
    return {
        k: v[keep] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == size else v for k, v in batch.items()
    }


def homography_metrics(pred: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]) -> list[dict[str, float]]:
    """Per pair of a batch: corner error (px), match precision and recall, number of matches."""
    rows = []
    for b in range(batch["keypoints0"].shape[0]):
        kpts0, kpts1 = batch["keypoints0"][b].cpu().numpy(), batch["keypoints1"][b].cpu().numpy()
        matches = pred["matches0"][b].cpu().numpy()
        if "mask0" in batch:
            valid1 = batch["mask1"][b].cpu().numpy()
            matches = np.where(batch["mask0"][b].cpu().numpy() & valid1[np.maximum(matches, 0)], matches, -1)
        valid = matches > -1
        H_gt = batch["H_0to1"][b].cpu().numpy()
        num_gt = int((batch["gt_matches0"][b] >= 0).sum()) if "gt_matches0" in batch else 0
        rows.append(pair_metrics(kpts0[valid], kpts1[matches[valid]], H_gt, num_gt, tuple(batch["image0"].shape[-2:])))
    return rows


def pose_metrics(pred: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]) -> list[dict[str, float]]:
    """Per depth pair of a batch: relative-pose errors (degrees; RANSAC essential matrix, 1 px), ``precision``
    (predicted matches that are ground-truth positives, among those with a label) and ``recall`` (ground-truth
    positives found)."""
    rows = []
    for b in range(batch["keypoints0"].shape[0]):
        matches = pred["matches0"][b].cpu()
        gt = batch["gt_matches0"][b].cpu()
        valid = (matches > -1) & batch["mask0"][b].cpu()
        labelled = valid & (gt != -2)
        correct = labelled & (gt == matches)
        kpts0 = batch["keypoints0"][b].cpu().numpy()[valid.numpy()]
        kpts1 = batch["keypoints1"][b].cpu().numpy()[matches[valid].numpy()]
        K0, K1 = batch["K0"][b].cpu().double().numpy(), batch["K1"][b].cpu().double().numpy()
        T = batch["T_0to1"][b].cpu().double().numpy()
        estimate = estimate_pose(kpts0, kpts1, K0, K1, 1.0)
        error_t, error_R = (math.inf, math.inf) if estimate is None else compute_pose_error(T, *estimate[:2])
        num_gt = int((gt >= 0).sum())
        rows.append(
            {
                "error_t": error_t,
                "error_R": error_R,
                "precision": float(correct.sum()) / max(int(labelled.sum()), 1),
                "recall": float(correct.sum()) / num_gt if num_gt else 0.0,
                "num_matches": float(valid.sum()),
            }
        )
    return rows


def summarise_pose(rows: list[dict[str, float]]) -> dict[str, float]:
    """Pose ``AUC@5/10/20`` (percent, of max(error_t, error_R)), mean ``precision``/``recall`` (percent),
    ``num_matches``."""
    if not rows:
        raise ValueError("no pairs to summarise")
    zeros = [0.0] * len(rows)
    table = aggregate_results([r["error_t"] for r in rows], [r["error_R"] for r in rows], zeros, zeros)
    out = {k: v for k, v in table.items() if k.startswith("AUC")}
    out["precision"] = 100.0 * float(np.mean([r["precision"] for r in rows]))
    out["recall"] = 100.0 * float(np.mean([r["recall"] for r in rows]))
    out["num_matches"] = float(np.mean([r["num_matches"] for r in rows]))
    return out


def pair_metrics(
    mkpts0: np.ndarray, mkpts1: np.ndarray, H_gt: np.ndarray, num_gt: int, size0: tuple[int, int]
) -> dict[str, float]:
    """The homography protocol for one pair: ``corner_error`` (px, inf on failure), ``precision``, ``recall``,
    ``num_matches``."""
    H_est = estimate_homography(mkpts0, mkpts1)
    precision, recall, _ = match_precision_recall(mkpts0, mkpts1, H_gt, num_gt)
    return {
        "corner_error": corner_error(H_est, H_gt, size0),
        "precision": precision,
        "recall": recall,
        "num_matches": float(len(mkpts0)),
    }


def summarise_homography(rows: list[dict[str, float]]) -> dict[str, float]:
    """``H_AUC@1/3/5px`` (percent), mean ``precision``/``recall`` (percent) and ``num_matches`` over pairs."""
    if not rows:
        raise ValueError("no pairs to summarise")
    out = homography_auc([r["corner_error"] for r in rows])
    out["precision"] = 100.0 * float(np.mean([r["precision"] for r in rows]))
    out["recall"] = 100.0 * float(np.mean([r["recall"] for r in rows]))
    out["num_matches"] = float(np.mean([r["num_matches"] for r in rows]))
    return out


class SemaGlueTask(TrainTask):
    """Training of :class:`FeatureMatcher` (contract of :mod:`semcommon.training`): stage 1 on homography pairs,
    stage 2 on MegaDepth depth pairs (``stage``)."""

    def __init__(self, config: TrainConfig, data: str = "synthetic") -> None:
        self.config = resolve_config(config)
        self.data = data
        cfg = self.config.features
        self.extractor = FeatureExtractor(
            cfg.resolved_kind(),  # type: ignore[arg-type]
            cfg.max_keypoints,
            cfg.superpoint_weights,
            cfg.nms_radius,
            cfg.keypoint_threshold,
        )
        self.megadepth = self.config.stage == "megadepth"
        if self.megadepth and data == "synthetic":
            raise ValueError("--data: stage megadepth needs the MegaDepth root folder, not 'synthetic'")
        self.images = None if data == "synthetic" or self.megadepth else list_images(data)

    def build_model(self) -> nn.Module:
        model = FeatureMatcher(self.config.segnext, self.config.matcher)
        if self.config.segnext_weights:
            from semaglue.checkpoint import load_pretrained

            load_pretrained(self.config.segnext_weights, model.segment)
        return model

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.config.optim.lr, weight_decay=self.config.optim.weight_decay)

    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        start, every = self.config.optim.lr_decay_start, max(self.config.optim.lr_decay_every, 1)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 1.0 if step < start else 10.0 ** (-(step - start) / every)
        )

    def _pairs(self, config: SyntheticConfig) -> MatchingPairs:
        pairs = SyntheticHomographies(config, self.images)
        return MatchingPairs(pairs, self.extractor, self.config.features.max_keypoints, self.config.loss)

    def _depth_pairs(self, split: str) -> MatchingPairs:
        pairs = MegaDepthPairs(self.data, self.config.megadepth, split)
        return MatchingPairs(pairs, self.extractor, self.config.features.max_keypoints, self.config.loss)

    def train_dataset(self) -> Dataset:
        if self.megadepth:
            return self._depth_pairs("train")
        return self._pairs(self.config.data)

    def val_dataset(self) -> Dataset | None:
        if self.megadepth:
            return self._depth_pairs("val") if self.config.megadepth.val_num_per_scene > 0 else None
        if self.config.val_pairs < 1:
            return None
        photos = HELD_OUT_PHOTOS if self.images is None else self.config.data.photos
        val = replace(self.config.data, num_pairs=self.config.val_pairs, seed=self.config.data.seed + 1, photos=photos)
        return self._pairs(val)

    def training_step(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, Mapping[str, Any]]:
        batch = drop_empty_pairs(batch)
        pred = model(batch, all_layers=True)
        cfg = self.config.loss
        loss, logs = deep_supervision_loss(
            pred,
            batch["gt_matches0"],
            batch["gt_matches1"],
            cfg.gamma,
            cfg.nll_balancing,
            cfg.confidence_weight,
        )
        return loss, logs

    def evaluate(self, model: nn.Module, loader: Any) -> dict[str, float]:
        rows, losses = [], []
        for batch in loader:
            batch = drop_empty_pairs(batch)
            pred = unwrap_model(model)(batch, all_layers=True)
            cfg = self.config.loss
            loss, _ = deep_supervision_loss(
                pred, batch["gt_matches0"], batch["gt_matches1"], cfg.gamma, cfg.nll_balancing, cfg.confidence_weight
            )
            losses.append(float(loss))
            rows.extend(pose_metrics(pred, batch) if self.megadepth else homography_metrics(pred, batch))
        out = summarise_pose(rows) if self.megadepth else summarise_homography(rows)
        out["loss"] = float(np.mean(losses)) if losses else math.nan
        return out

    def on_init_checkpoint(self, model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> Any:
        """``--init``: our run checkpoints, or the authors' ``checkpoint_best.tar`` (``matcher.*`` keys only)."""
        return load_state_dict_into(model, dict(state_dict), strict=False, source="--init checkpoint")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The shared training flags (``--data synthetic|DIR`` = the image folder for stage 1)."""
    add_train_arguments(parser, run_dir="runs/semaglue")


def read_config(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any]]:
    """``--config`` (ours, JSON/YAML, or the authors' glue-factory YAML) + ``--set`` -> the :class:`TrainConfig` and
    the training-frame defaults a glue-factory file sets (batch size, epochs, seed, logging)."""
    if args.config and Path(args.config).suffix in (".yaml", ".yml") and Path(args.config).is_file():
        import yaml

        try:
            raw = yaml.safe_load(Path(args.config).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{args.config}: not valid YAML ({str(exc).splitlines()[0]})") from exc
        if isinstance(raw, dict) and is_gluefactory(raw):
            overrides, trainer = convert(raw, args.config, args.data)
            return load_config(TrainConfig, None, [*overrides, *args.set]), trainer
    return load_config(TrainConfig, args.config, args.set), {}


def make_task(args: argparse.Namespace) -> SemaGlueTask:
    """``--config``/``--set`` -> :class:`TrainConfig` -> task."""
    return SemaGlueTask(read_config(args)[0], args.data)
