"""Typed configurations with the paper's defaults, and the authors' YAML experiment files.

The authors' configs (``config/image/*.yaml``, ``config/video/*.yaml``) are read by :func:`load_experiment_config`;
every section is checked against the keys the original code reads, so a typo is an error instead of a silent default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from semcommon.training import apply_override

__all__ = [
    "BASELINE_KEYS",
    "DATASET_NUM_CLASSES",
    "HIERA_SIZES",
    "ExperimentConfig",
    "HieraConfig",
    "ImageModelConfig",
    "RaftConfig",
    "UperNetConfig",
    "VideoModelConfig",
    "load_experiment_config",
]

DATASET_NUM_CLASSES: dict[str, int] = {"uavid": 8, "ruralscapes": 12}


@dataclass(frozen=True)
class HieraConfig:
    """SAM2 Hiera trunk (``image_encoder.trunk`` of a SAM2 checkpoint). Defaults: Hiera-S ("small")."""

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (1, 2, 11, 2)
    global_att_blocks: tuple[int, ...] = (7, 10, 13)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    dim_mul: float = 2.0
    head_mul: float = 2.0
    drop_path_rate: float = 0.0

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of the four stage outputs, fine -> coarse."""
        return tuple(int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages)))


@dataclass(frozen=True)
class UperNetConfig:
    """UperNet head (PPM + FPN) on the four Hiera stages."""

    in_channels: tuple[int, ...] = (96, 192, 384, 768)
    channels: int = 256
    num_classes: int = 8
    pool_scales: tuple[int, ...] = (1, 2, 3, 6)


HIERA_SIZES: dict[str, tuple[HieraConfig, int]] = {
    "tiny": (HieraConfig(stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9)), 128),
    "small": (HieraConfig(), 256),
    "base_plus": (
        HieraConfig(
            embed_dim=112,
            num_heads=2,
            stages=(2, 3, 16, 3),
            global_att_blocks=(12, 16, 20),
            window_pos_embed_bkg_spatial_size=(14, 14),
        ),
        512,
    ),
}
"""``checkpoint_model`` -> (Hiera config, UperNet channels), the original's hard-coded size table."""


def _check_keys(section: str, given: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ValueError(f"{section}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _from_dict(cls: type, section: str, data: dict[str, Any] | None, **extra: Any) -> Any:
    data = dict(data or {})
    _check_keys(section, data, {f.name for f in fields(cls)})
    data.update(extra)
    return cls(**data)


@dataclass(frozen=True)
class ImageModelConfig:
    """Image model (``model_cfg`` of an image config). Default: SSP's student, Hiera-S + UperNet(256), UAVid.

    ``hiera`` / ``upernet_channels`` override the size table (used for reduced test models).
    """

    checkpoint_model: str = "small"
    model_architecture: str = "hierasam_upernet"
    frozen_encoder: bool = False
    upsampling: str = "bicubic"
    n_classes: int = 8
    hiera: HieraConfig | None = None
    upernet_channels: int | None = None

    def __post_init__(self) -> None:
        if self.model_architecture != "hierasam_upernet":
            raise ValueError(
                f"model_architecture: only 'hierasam_upernet' is implemented, got {self.model_architecture!r}"
            )
        if self.hiera is None and self.checkpoint_model not in HIERA_SIZES:
            raise ValueError(f"checkpoint_model: expected one of {sorted(HIERA_SIZES)}, got {self.checkpoint_model!r}")
        if self.upsampling not in ("bicubic", "bilinear", "nearest"):
            raise ValueError(f"upsampling: expected bicubic | bilinear | nearest, got {self.upsampling!r}")

    @property
    def hiera_config(self) -> HieraConfig:
        return self.hiera if self.hiera is not None else HIERA_SIZES[self.checkpoint_model][0]

    @property
    def upernet_config(self) -> UperNetConfig:
        channels = self.upernet_channels or HIERA_SIZES[self.checkpoint_model][1]
        return UperNetConfig(in_channels=self.hiera_config.channels, channels=channels, num_classes=self.n_classes)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, n_classes: int = 8) -> ImageModelConfig:
        """From a YAML ``model_cfg`` / manifest ``image_model_cfg`` section; unknown keys raise."""
        data = dict(data or {})
        _check_keys("model_cfg", data, {"checkpoint_model", "model_architecture", "frozen_encoder", "upsampling"})
        return cls(**data, n_classes=n_classes)


@dataclass(frozen=True)
class RaftConfig:
    """Standard RAFT ("things"), used by the consistency loss, the KD label consistency and the TC metric."""

    small: bool = False
    hidden_dim: int = 128
    context_dim: int = 128
    corr_levels: int = 4
    corr_radius: int = 4

    def __post_init__(self) -> None:
        if self.small:
            raise ValueError("small: RAFT-small is not used by SSP and not implemented")


@dataclass(frozen=True)
class VideoModelConfig:
    """``video_model_cfg`` of a video config. Defaults: SSP (``ssp_uavid.yaml``).

    Only ``model_name: base`` (SSP / KD-SSP and its ablations) exists here; the DFF / NetWarp / TCB keys of the
    authors' files (:data:`BASELINE_KEYS`) are accepted by :meth:`from_dict` and dropped, since nothing reads them.
    """

    model_name: str = "base"
    const_loss_lb: float = 0.5
    kd_consistent_labels: bool = True
    last_out_loss_lb: float = 1.0
    pred_mixing_op: str = "id"
    sim_op: str = "conv"
    upsample_before_mixing: bool = True
    upsampling: str = "bicubic"
    k_registrator_model: str | None = "disk"
    features_interp_mode: str = "bilinear"
    low_scale_homo: bool = False

    def __post_init__(self) -> None:
        if self.model_name != "base":
            raise ValueError(
                f"model_name: only 'base' (SSP / KD-SSP) is implemented, got {self.model_name!r} "
                "(the DFF / NetWarp / TCB baselines are not)"
            )
        if self.sim_op not in ("conv", "cossim", "constant", "reuse"):
            raise ValueError(f"sim_op: expected conv | cossim | constant | reuse, got {self.sim_op!r}")
        if self.k_registrator_model not in (None, "disk", "identity", "opencv"):
            raise ValueError(
                f"k_registrator_model: expected disk | identity | opencv | null, got {self.k_registrator_model!r}"
            )
        if self.pred_mixing_op != "id":
            raise ValueError(f"pred_mixing_op: only 'id' (the paper's) is implemented, got {self.pred_mixing_op!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> VideoModelConfig:
        """From a YAML ``video_model_cfg``: unknown keys raise, the baselines' keys are dropped."""
        data = {k: v for k, v in (data or {}).items() if k not in BASELINE_KEYS}
        return _from_dict(cls, "video_model_cfg", data)


BASELINE_KEYS = frozenset({"train_flow", "flow_iters", "k_interval", "flow_mode", "tcb_module"})
"""``video_model_cfg`` keys read only by the DFF / NetWarp / TCB baselines."""


_DATA_KEYS = {
    "dataset", "path", "adjacent_frames", "crop_size", "square_crop", "data_augmentation", "soft_labels",
    "logit_distillation", "logits_folder", "min_vid_len", "labeled_frames_per_vid", "train_skip_frames",
    "val_skip_frames", "opencv_homos", "opencv_model_type",
}  # fmt: skip
_IMAGE_CKPT_KEYS = {"image_save_dir", "checkpoint_folder", "checkpoint_name", "best_model"}
_TRAINING_KEYS = {
    "num_epochs", "early_stopping", "batch_size", "num_workers", "lr", "trained_layer", "secondary_lr",
}  # fmt: skip
_OPTIM_KEYS = {
    "optimizer", "scheduler", "weight_decay", "momentum", "warmup_epochs", "scheduler_power", "start_lr", "final_lr",
}  # fmt: skip
_LOSS_KEYS = {"loss_func", "class_weights", "softmax_on_target", "temperature"}
_TOP_KEYS = {
    "save_dir", "pretrained_checkpoint", "resume_training", "no_training", "data_cfg", "model_cfg",
    "image_model_cfg", "video_model_cfg", "training_cfg", "optim_cfg", "loss_cfg",
}  # fmt: skip


@dataclass
class ExperimentConfig:
    """One authors' YAML file: the model configs it implies plus the other sections as checked dicts."""

    kind: str
    image_model: ImageModelConfig
    video_model: VideoModelConfig | None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.image_model.n_classes


def load_experiment_config(
    source: str | Path | dict[str, Any], image_model_cfg: dict[str, Any] | None = None
) -> ExperimentConfig:
    """Parse an authors' image or video YAML config (path or already-loaded dict).

    A video config names its image model through a checkpoint (``image_model_cfg``); its architecture comes from
    that checkpoint's saved image config, which can be passed as ``image_model_cfg`` (default: Hiera-S UperNet).
    Unknown keys in any section raise ``ValueError`` naming the section and key.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    else:
        data = source
    if not isinstance(data, dict):
        raise ValueError("config: expected a mapping at the top level")
    _check_keys("config", data, _TOP_KEYS)
    for section, keys in (
        ("data_cfg", _DATA_KEYS),
        ("training_cfg", _TRAINING_KEYS),
        ("optim_cfg", _OPTIM_KEYS),
        ("loss_cfg", _LOSS_KEYS),
    ):
        _check_keys(section, data.get(section) or {}, keys)
    dataset = (data.get("data_cfg") or {}).get("dataset", "uavid")
    if dataset not in DATASET_NUM_CLASSES:
        raise ValueError(f"data_cfg.dataset: expected one of {sorted(DATASET_NUM_CLASSES)}, got {dataset!r}")
    n_classes = DATASET_NUM_CLASSES[dataset]
    if "video_model_cfg" in data:
        _check_keys("image_model_cfg", data.get("image_model_cfg") or {}, _IMAGE_CKPT_KEYS)
        if "model_cfg" in data:
            raise ValueError("config: a video config has image_model_cfg, not model_cfg")
        return ExperimentConfig(
            kind="video",
            image_model=ImageModelConfig.from_dict(image_model_cfg, n_classes=n_classes),
            video_model=VideoModelConfig.from_dict(data["video_model_cfg"]),
            raw=data,
        )
    if "model_cfg" not in data:
        raise ValueError("config: expected model_cfg (image config) or video_model_cfg (video config)")
    if "image_model_cfg" in data:
        raise ValueError("config: image_model_cfg belongs to video configs")
    return ExperimentConfig(
        kind="image",
        image_model=ImageModelConfig.from_dict(data["model_cfg"], n_classes=n_classes),
        video_model=None,
        raw=data,
    )


# ------------------------------------------------------------------------------------------- training configuration
# Sections and keys mirror the authors' YAML files (config/image/*.yaml, config/video/*.yaml), so those load as they
# are; ``ours`` holds what the re-implementation adds (stage, weight files, reduced sizes, synthetic data).


@dataclass
class DataCfg:
    """``data_cfg``. Defaults: ``image/base_uavid.yaml``."""

    dataset: str = "uavid"
    path: str | None = None
    adjacent_frames: list[int] = field(default_factory=lambda: [-1])
    crop_size: list[int] = field(default_factory=lambda: [736, 1280])
    square_crop: bool = False
    data_augmentation: bool = True
    soft_labels: bool = False
    logit_distillation: bool = False
    logits_folder: str | None = None
    min_vid_len: int = 0
    labeled_frames_per_vid: int | None = None
    train_skip_frames: int | None = None
    val_skip_frames: int = 1
    opencv_homos: bool = False
    opencv_model_type: str = "akaze"


@dataclass
class ModelCfg:
    """``model_cfg`` of an image config."""

    checkpoint_model: str = "small"
    model_architecture: str = "hierasam_upernet"
    frozen_encoder: bool = False
    upsampling: str = "bicubic"


@dataclass
class ImageCheckpointCfg:
    """``image_model_cfg`` of a video config: the trained image checkpoint that initialises the video model."""

    image_save_dir: str | None = None
    checkpoint_folder: str | None = None
    checkpoint_name: str | None = None
    best_model: bool = False


@dataclass
class TrainingCfg:
    """``training_cfg``: epochs for the LR schedule (``num_epochs``) and for stopping (``early_stopping``)."""

    num_epochs: int = 250
    early_stopping: int | None = 200
    batch_size: int = 4
    num_workers: int = 4
    lr: float = 2.5e-5
    trained_layer: str | None = None
    secondary_lr: float = 1e-4


@dataclass
class OptimCfg:
    """``optim_cfg``: AdamW and the per-iteration cosine schedule with linear warmup."""

    optimizer: str = "adamw"
    scheduler: str = "cosine"
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_epochs: float = 2
    scheduler_power: float = 0.9
    start_lr: float = 1e-4
    final_lr: float = 1e-4


@dataclass
class LossCfg:
    """``loss_cfg``: ``crossentropy`` (labels) or ``kldiv`` (teacher logits, temperature ``T``)."""

    loss_func: str = "crossentropy"
    class_weights: list[float] | None = None
    softmax_on_target: bool = False
    temperature: float = 1.0


@dataclass
class OursCfg:
    """What the re-implementation adds.

    ``stage``: ``image`` (image model / teacher / KD image baseline) or ``video`` (SSP / KD-SSP); set automatically
    for a file with ``video_model_cfg``. ``sam2_checkpoint``: SAM2 weights for the Hiera trunk (the authors'
    ``base_checkpoints/sam2_hiera_<size>.pt``; random init when null). ``image_checkpoint``: the trained image model
    for the video stage (default: built from ``image_model_cfg``). ``raft_weights``: RAFT "things" for the losses.
    ``flow``: ``raft`` or ``homography`` (exact flow from known homographies, synthetic data). ``hiera`` /
    ``upernet_channels``: a reduced model (demo, tests). ``synthetic_*``: the ``--data synthetic`` clips.
    """

    stage: str = "image"
    sam2_checkpoint: str | None = None
    image_checkpoint: str | None = None
    raft_weights: str | None = None
    flow: str = "raft"
    hiera: HieraConfig | None = None
    upernet_channels: int | None = None
    synthetic_clips: int = 8
    synthetic_frames: int = 8
    synthetic_size: list[int] = field(default_factory=lambda: [128, 160])
    synthetic_label_every: int = 4

    def __post_init__(self) -> None:
        if self.stage not in ("image", "video"):
            raise ValueError(f"ours.stage: expected image | video, got {self.stage!r}")
        if self.flow not in ("raft", "homography"):
            raise ValueError(f"ours.flow: expected raft | homography, got {self.flow!r}")


@dataclass
class TrainConfig:
    """Everything ``ssp train`` reads: the authors' sections plus ``ours``."""

    save_dir: str | None = None
    pretrained_checkpoint: str | None = None
    resume_training: str | None = None
    no_training: bool = False
    data_cfg: DataCfg = field(default_factory=DataCfg)
    model_cfg: ModelCfg = field(default_factory=ModelCfg)
    image_model_cfg: ImageCheckpointCfg = field(default_factory=ImageCheckpointCfg)
    video_model_cfg: VideoModelConfig = field(default_factory=VideoModelConfig)
    training_cfg: TrainingCfg = field(default_factory=TrainingCfg)
    optim_cfg: OptimCfg = field(default_factory=OptimCfg)
    loss_cfg: LossCfg = field(default_factory=LossCfg)
    ours: OursCfg = field(default_factory=OursCfg)

    def __post_init__(self) -> None:
        if self.data_cfg.dataset not in DATASET_NUM_CLASSES:
            raise ValueError(f"data_cfg.dataset: expected one of {sorted(DATASET_NUM_CLASSES)}")
        if self.loss_cfg.loss_func not in ("crossentropy", "kldiv"):
            raise ValueError(f"loss_cfg.loss_func: expected crossentropy | kldiv, got {self.loss_cfg.loss_func!r}")
        if self.optim_cfg.optimizer != "adamw" or self.optim_cfg.scheduler != "cosine":
            raise ValueError("optim_cfg: only optimizer adamw with scheduler cosine (every SSP config) is implemented")
        if self.training_cfg.trained_layer is not None:
            raise ValueError(
                "training_cfg.trained_layer: only null (train everything, every SSP config) is implemented"
            )
        if self.loss_cfg.class_weights is not None:
            raise ValueError("loss_cfg.class_weights: only null (every SSP config) is implemented")
        data = self.data_cfg
        if data.adjacent_frames != [-1] or data.min_vid_len or data.labeled_frames_per_vid or data.val_skip_frames != 1:
            raise ValueError(
                "data_cfg: only adjacent_frames [-1], min_vid_len 0, labeled_frames_per_vid null and val_skip_frames 1 "
                "(every SSP / KD-SSP config) are implemented"
            )
        if len(self.data_cfg.crop_size) != 2 or any(v % 32 for v in self.data_cfg.crop_size):
            raise ValueError(f"data_cfg.crop_size: expected [H, W], multiples of 32, got {self.data_cfg.crop_size}")
        ImageModelConfig(**asdict(self.model_cfg))

    @property
    def n_classes(self) -> int:
        return DATASET_NUM_CLASSES[self.data_cfg.dataset]

    @property
    def image_model(self) -> ImageModelConfig:
        return ImageModelConfig(
            **asdict(self.model_cfg),
            n_classes=self.n_classes,
            hiera=self.ours.hiera,
            upernet_channels=self.ours.upernet_channels,
        )

    @property
    def image_checkpoint(self) -> str | None:
        """``ours.image_checkpoint``, else ``<image_save_dir>/<checkpoint_folder>/<checkpoint_name>.pth.tar``."""
        if self.ours.image_checkpoint:
            return self.ours.image_checkpoint
        section = self.image_model_cfg
        if section.checkpoint_name is None:
            return None
        prefix = "best_model_" if section.best_model else ""
        parts = [section.image_save_dir or "checkpoints", section.checkpoint_folder or ""]
        return str(Path(*parts, f"{prefix}{section.checkpoint_name}.pth.tar"))


_SECTIONS = {
    "data_cfg": DataCfg, "model_cfg": ModelCfg, "image_model_cfg": ImageCheckpointCfg,
    "video_model_cfg": VideoModelConfig, "training_cfg": TrainingCfg, "optim_cfg": OptimCfg, "loss_cfg": LossCfg,
    "ours": OursCfg,
}  # fmt: skip


def _section_from_plain(name: str, cls: type, data: dict[str, Any]) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected a mapping, got {type(data).__name__}")
    if cls is VideoModelConfig:
        data = {k: v for k, v in data.items() if k not in BASELINE_KEYS}
    _check_keys(name, data, {f.name for f in fields(cls)})
    data = dict(data)
    if cls is OursCfg and isinstance(data.get("hiera"), dict):
        hiera = data["hiera"]
        _check_keys("ours.hiera", hiera, {f.name for f in fields(HieraConfig)})
        data["hiera"] = HieraConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in hiera.items()})
    try:
        return cls(**data)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def train_config_from_plain(data: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from nested plain data (an authors' YAML file, or a checkpoint's saved config).

    Unknown keys raise ``ValueError`` naming section and key; the baselines' video keys are dropped; a mapping
    with ``video_model_cfg`` but no ``ours.stage`` is a video (stage 2) config.
    """
    if not isinstance(data, dict):
        raise ValueError("config: expected a mapping at the top level")
    _check_keys("config", data, {f.name for f in fields(TrainConfig)})
    values = {k: v for k, v in data.items() if k not in _SECTIONS}
    ours = dict(data.get("ours") or {})
    if "video_model_cfg" in data and "stage" not in ours:
        ours["stage"] = "video"
    sections = {**data, "ours": ours}
    for name, cls in _SECTIONS.items():
        if name in sections and sections[name] is not None:
            values[name] = _section_from_plain(name, cls, sections[name])
    return TrainConfig(**values)


def load_train_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """The training config: defaults, then an authors' YAML (or our JSON) file, then ``--set`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from exc
    for item in overrides:
        apply_override(data, item)
    return train_config_from_plain(data)
