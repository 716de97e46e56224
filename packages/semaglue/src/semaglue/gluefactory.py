"""The authors' training configs: glue-factory YAML files (``superpoint+semaglue_{homography,megadepth}.yaml``, the
format of glue-factory's ``superpoint+lightglue_*.yaml``) mapped onto :class:`semaglue.train.TrainConfig` and the
training frame's options.

A file is recognised as glue-factory's when its top level has ``model`` with a ``matcher`` section or a ``train``
section. Every key is either mapped (:data:`PACKAGE_KEYS`, :data:`TRAINER_KEYS`, the epoch-based LR schedule) or
listed in :data:`IGNORED` with the reason; any other key raises ``ValueError`` naming it, so nothing is dropped
silently. Epoch counts become optimizer steps with ``ceil(pairs per epoch / batch size)``; pairs per epoch are
``data.train_size`` (homographies) or scenes in the train split × ``train_num_per_scene`` (MegaDepth, read from
``--data``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from semaglue.data.megadepth import MegaDepthConfig, read_split

PACKAGE_KEYS: dict[str, str] = {
    "data.train_size": "data.num_pairs",
    "data.val_size": "val_pairs",
    "data.seed": "data.seed",
    "data.homography.max_angle": "data.max_rotation",
    "data.homography.patch_shape": "data.width,data.height",
    "data.photometric.name": "data.photometric",
    "data.train_split": "megadepth.train_split",
    "data.val_split": "megadepth.val_split",
    "data.train_num_per_scene": "megadepth.train_num_per_scene",
    "data.val_num_per_scene": "megadepth.val_num_per_scene",
    "data.min_overlap": "megadepth.min_overlap",
    "data.max_overlap": "megadepth.max_overlap",
    "data.num_overlap_bins": "megadepth.num_overlap_bins",
    "data.preprocessing.resize": "megadepth.resize",
    "data.preprocessing.square_pad": "megadepth.square_pad",
    "data.image_subpath": "megadepth.image_subpath",
    "data.depth_subpath": "megadepth.depth_subpath",
    "data.info_dir": "megadepth.info_dir",
    "model.extractor.max_num_keypoints": "features.max_keypoints",
    "model.extractor.nms_radius": "features.nms_radius",
    "model.extractor.detection_threshold": "features.keypoint_threshold",
    "model.matcher.filter_threshold": "matcher.filter_threshold",
    "model.matcher.n_layers": "matcher.n_layers",
    "model.matcher.num_heads": "matcher.num_heads",
    "model.matcher.descriptor_dim": "matcher.descriptor_dim",
    "model.matcher.add_scale_ori": "matcher.add_scale_ori",
    "model.matcher.loss.gamma": "loss.gamma",
    "model.matcher.loss.nll_balancing": "loss.nll_balancing",
    "model.ground_truth.th_positive": "loss.pos_th",
    "model.ground_truth.th_negative": "loss.neg_th",
    "train.lr": "optim.lr",
}
TRAINER_KEYS: dict[str, str] = {
    "data.batch_size": "batch_size",
    "data.num_workers": "num_workers",
    "train.seed": "seed",
    "train.epochs": "epochs",
    "train.log_every_iter": "log_every",
    "train.eval_every_iter": "eval_every",
    "train.save_every_iter": "save_every",
    "train.keep_last_checkpoints": "keep_last",
}
IGNORED: dict[str, str] = {
    "data.name": "selects `stage` (homographies -> homography, megadepth -> megadepth)",
    "data.data_dir": "the image folder is `--data DIR`",
    "data.homography.difficulty": "our warp strength is data.perturbation / data.scale_range",
    "data.homography.translation": "our warps are centred on a random crop",
    "data.homography.min_overlap": "ours keeps the crop inside the photo",
    "data.photometric.p": "photometric augmentation is on/off (data.photometric)",
    "data.preprocessing.side": "always the long side",
    "data.val_pairs": "validation pairs are sampled like training pairs (megadepth.val_num_per_scene)",
    "data.read_depth": "always read",
    "data.read_image": "always read",
    "data.load_features": "features are computed on the fly (no cached exports)",
    "data.views": "pairs only",
    "data.shuffle_seed": "the frame's sampler is seeded by --seed",
    "model.name": "always the two-view pipeline",
    "model.extractor.name": "SuperPoint with features.superpoint_weights, else SIFT (features.kind)",
    "model.extractor.force_num_keypoints": "batches are padded with masks instead",
    "model.extractor.trainable": "the extractor is always frozen",
    "model.matcher.name": "always SemaGlue",
    "model.matcher.flash": "attention backend is chosen at run time",
    "model.matcher.checkpointed": "gradient checkpointing does not change results",
    "model.matcher.mp": "use --amp",
    "model.matcher.weights": "use --init",
    "model.matcher.input_dim": "set from the keypoint kind",
    "model.ground_truth.name": "homography or depth matcher follows `stage`",
    "model.ground_truth.th_epi": "the depth matcher uses loss.depth_consistency instead of an epipolar test",
    "model.allow_no_extract": "features are always extracted",
    "model.run_gt_in_forward": "ground truth is computed in the data loader",
    "train.lr_schedule.type": "only `exp` (with exp_div_10) is implemented; other types raise",
    "train.lr_schedule.on_epoch": "converted to steps",
    "train.load_experiment": "use --init RUN_DIR/checkpoints/last.pt",
    "train.dataset_callback_fn": "pairs are sampled once per run (seeded)",
    "train.plot": "no training plots",
    "train.optimizer": "Adam (the only optimizer glue-factory's matcher configs use)",
    "train.median_metrics": "evaluate reports means",
    "train.best_key": "the frame keeps last.pt",
    "train.submodules": "only the matcher trains",
    "benchmarks": "use `semaglue evaluate`",
}
STAGES = {"homographies": "homography", "megadepth": "megadepth"}


def is_gluefactory(data: Mapping[str, Any]) -> bool:
    """Whether a parsed config file is in glue-factory's layout."""
    model = data.get("model")
    return (isinstance(model, Mapping) and "matcher" in model) or isinstance(data.get("train"), Mapping)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if name in IGNORED or name in PACKAGE_KEYS or name in TRAINER_KEYS or name == "train.lr_schedule":
            out[name] = value
        elif isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _pairs_per_epoch(flat: Mapping[str, Any], stage: str, data_root: str | None) -> int | None:
    if stage == "homography":
        return int(flat["data.train_size"]) if "data.train_size" in flat else None
    if not data_root or data_root == "synthetic":
        return None
    cfg = MegaDepthConfig()
    split = flat.get("data.train_split", cfg.train_split)
    per_scene = int(flat.get("data.train_num_per_scene", cfg.train_num_per_scene))
    return len(read_split(Path(data_root) / split)) * per_scene


def convert(data: Mapping[str, Any], source: str, data_root: str | None = None) -> tuple[list[str], dict[str, Any]]:
    """A glue-factory config -> (``key=value`` overrides of :class:`TrainConfig`, :class:`TrainerConfig` defaults).
    ``source`` names the file in errors."""
    flat = _flatten(data)
    overrides: list[str] = []
    trainer: dict[str, Any] = {}
    stage = STAGES.get(str(flat.get("data.name", "homographies")))
    if stage is None:
        raise ValueError(f"{source}: data.name {flat['data.name']!r} is not one of {sorted(STAGES)}")
    overrides.append(f"stage={stage}")
    for key, value in flat.items():
        if key in IGNORED or key == "train.lr_schedule":
            continue
        if key in PACKAGE_KEYS:
            target = PACKAGE_KEYS[key]
            if key == "data.homography.patch_shape":
                overrides += [f"data.width={int(value[0])}", f"data.height={int(value[1])}"]
            elif key == "data.photometric.name":
                overrides.append(f"data.photometric={json.dumps(value not in (None, 'identity'))}")
            else:
                overrides.append(f"{target}={json.dumps(value)}")
        elif key in TRAINER_KEYS:
            trainer[TRAINER_KEYS[key]] = value
        elif not any(key.startswith(f"{ignored}.") for ignored in IGNORED):
            raise ValueError(f"{source}: glue-factory key {key!r} has no equivalent (see the README's mapping table)")
    if "epochs" in trainer:
        trainer["max_steps"] = None
    schedule = flat.get("train.lr_schedule")
    if isinstance(schedule, Mapping) and schedule.get("type") not in (None, "exp"):
        raise ValueError(f"{source}: train.lr_schedule.type {schedule['type']!r} is not implemented (only 'exp')")
    if isinstance(schedule, Mapping) and schedule.get("type") == "exp":
        per_epoch = _pairs_per_epoch(flat, stage, data_root)
        batch = int(flat.get("data.batch_size", 1))
        if per_epoch is None:
            raise ValueError(
                f"{source}: cannot convert train.lr_schedule from epochs to steps without "
                "data.train_size (homographies) or --data MEGADEPTH_ROOT"
            )
        steps = math.ceil(per_epoch / batch)
        on_epoch = bool(schedule.get("on_epoch", False))
        unit = steps if on_epoch else 1
        overrides.append(f"optim.lr_decay_start={int(schedule.get('start', 0)) * unit}")
        overrides.append(f"optim.lr_decay_every={int(schedule.get('exp_div_10', 0)) * unit}")
    return overrides, trainer
