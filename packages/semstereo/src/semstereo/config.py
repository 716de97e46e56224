"""Typed configuration of SemStereo; the defaults are the paper's US3D model.

All channel numbers derive from the backbone's five stage widths, so the width-0.5 fixture configuration
(``mobilevitv2_050``) is just another config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

#: Stage widths (1/2 .. 1/32) of the timm MobileViTv2 backbones used by SemStereo.
BACKBONE_WIDTHS: dict[str, tuple[int, int, int, int, int]] = {
    "mobilevitv2_025": (16, 32, 64, 96, 128),  # not a timm name: timm's recipe at width 0.25 (the demo's model)
    "mobilevitv2_050": (32, 64, 128, 192, 256),
    "mobilevitv2_075": (48, 96, 192, 288, 384),
    "mobilevitv2_100": (64, 128, 256, 384, 512),
    "mobilevitv2_125": (80, 160, 320, 480, 640),
    "mobilevitv2_150": (96, 192, 384, 576, 768),
    "mobilevitv2_175": (112, 224, 448, 672, 896),
    "mobilevitv2_200": (128, 256, 512, 768, 1024),
}

Variant = Literal["us3d", "whu"]


@dataclass(frozen=True)
class SemStereoConfig:
    """Configuration of :class:`semstereo.model.SemStereo`.

    Disparities are in full-resolution pixels; positive ``d`` pairs left column ``x`` with right column ``x - d``.
    """

    variant: Variant = "us3d"  # "us3d" (SemStereo) or "whu" (SemStereo_WHU: non-negative hypotheses)
    maxdisp: int = 64  # M: 64 for US3D, 128 for WHU
    num_classes: int = 6  # segmentation classes incl. the ignore class 5 (SSR hard-wires 6)
    backbone: str = "mobilevitv2_100"  # timm MobileViTv2 name (features_only)
    att_weights_only: bool = False  # stage 1 of training: no concatenation-volume branch
    topk: int = 24  # hypotheses kept for the sparse 1/4 concatenation volume
    final_topk: int = 2  # hypotheses in the final soft regression
    # Signed range [min, max) of the 1/8 group-wise correlation volume; None -> (-maxdisp, maxdisp) (both variants).
    cost_volume_range: tuple[int, int] | None = None
    # Range [min, max) of the 1/4 disparity hypotheses (attention planes); None -> (-maxdisp, maxdisp) for US3D and
    # (0, maxdisp) for WHU (the fixture's reconstruction of the released WHU forward, which crashes).
    hypothesis_range: tuple[int, int] | None = None
    widths: tuple[int, int, int, int, int] = field(default=(0, 0, 0, 0, 0))  # (0,...) -> from BACKBONE_WIDTHS

    def __post_init__(self) -> None:
        if self.variant not in ("us3d", "whu"):
            raise ValueError(f"SemStereoConfig.variant must be 'us3d' or 'whu', got {self.variant!r}")
        if self.backbone not in BACKBONE_WIDTHS and not all(self.widths):
            raise ValueError(
                f"SemStereoConfig.backbone {self.backbone!r} is unknown; use one of {sorted(BACKBONE_WIDTHS)} "
                "or pass its stage widths"
            )
        if self.num_classes != 6:
            raise ValueError(
                f"SemStereoConfig.num_classes must be 6 (SSR hard-wires 6 channels), got {self.num_classes}"
            )
        low8, high8 = self.volume_range
        if low8 % 8 or high8 % 8 or (high8 - low8) % 128:
            raise ValueError(
                f"SemStereoConfig.cost_volume_range {self.volume_range} must be multiples of 8 spanning a multiple of "
                "128 px (the 1/8 attention hourglass needs a plane count divisible by 16)"
            )
        low4, high4 = self.hypotheses
        if low4 % 4 or high4 % 4 or high4 <= low4:
            raise ValueError(f"SemStereoConfig.hypothesis_range {self.hypotheses} must be increasing multiples of 4")
        if not 0 < self.topk <= (high4 - low4) // 4 or self.topk % 4:
            raise ValueError(
                f"SemStereoConfig.topk={self.topk} must be a positive multiple of 4 and at most the "
                f"{(high4 - low4) // 4} hypothesis planes"
            )
        if not 0 < self.final_topk <= self.topk:
            raise ValueError(f"SemStereoConfig.final_topk={self.final_topk} must be in [1, topk={self.topk}]")

    # Derived quantities -------------------------------------------------------------------------------------------
    @property
    def stage_widths(self) -> tuple[int, int, int, int, int]:
        """Backbone outputs at 1/2 .. 1/32."""
        return self.widths if all(self.widths) else BACKBONE_WIDTHS[self.backbone]

    @property
    def volume_range(self) -> tuple[int, int]:
        return self.cost_volume_range if self.cost_volume_range is not None else (-self.maxdisp, self.maxdisp)

    @property
    def hypotheses(self) -> tuple[int, int]:
        if self.hypothesis_range is not None:
            return self.hypothesis_range
        return (0, self.maxdisp) if self.variant == "whu" else (-self.maxdisp, self.maxdisp)

    @property
    def chans(self) -> list[int]:
        """Decoder outputs per level (1/2 .. 1/32): doubled widths (concat), the coarsest level unchanged."""
        w = self.stage_widths
        return [2 * c for c in w[:4]] + [w[4]]

    @property
    def chans2(self) -> list[int]:
        """Channel-reduced features L0..L4."""
        return [c // 2 for c in self.chans[:4]] + [self.stage_widths[4] // 2]

    @property
    def gwc_groups(self) -> int:
        return self.chans2[2] // 8

    @property
    def hourglass_channels(self) -> int:
        return self.gwc_groups


def us3d_config(**overrides: object) -> SemStereoConfig:
    """The paper's US3D model: ``SemStereo(maxdisp=64)`` with a ``mobilevitv2_100`` backbone."""
    return SemStereoConfig(**overrides)  # type: ignore[arg-type]


def whu_config(**overrides: object) -> SemStereoConfig:
    """The WHU model: ``SemStereo_WHU(maxdisp=128)``."""
    return SemStereoConfig(**{"variant": "whu", "maxdisp": 128, **overrides})  # type: ignore[arg-type]


def half_config(**overrides: object) -> SemStereoConfig:
    """The width-0.5 configuration of the parity fixtures (``mobilevitv2_050``)."""
    return SemStereoConfig(**{"backbone": "mobilevitv2_050", **overrides})  # type: ignore[arg-type]


Stage = Literal["attention", "full"]
DatasetKind = Literal["auto", "synthetic", "us3d", "whu"]


@dataclass
class DataConfig:
    """Where the samples come from. ``dataset="auto"``: ``--data synthetic`` -> generator, a folder -> US3D when its
    split list has 4 paths per line, WHU when 3."""

    dataset: DatasetKind = "auto"
    train_list: str = "train.txt"  # relative to the dataset root (authors' --trainlist)
    test_list: str = "test.txt"  # authors' --testlist (evaluated after training; no val selection, as the original)
    label_codes: Literal["train", "las"] = "train"  # US3D CLS files: training ids 0..5, or raw DFC2019 LAS codes
    crop: tuple[int, int] | None = None  # None = full tiles (the authors' recipe: no crop, no augmentation)
    random_crop: bool = False
    synthetic_size: tuple[int, int] = (64, 64)  # generated tile H×W (multiples of 32)
    synthetic_train: int = 256  # generated training tiles
    synthetic_test: int = 16  # generated test tiles (another seed)
    dmin: float = -12.0  # signed disparity range of the generated tiles (px)
    dmax: float = 12.0


@dataclass
class TrainConfig:
    """The training recipe of ``main_us3d.py`` / ``main_whu.py`` (defaults: US3D stage 2). The objective follows
    ``model.variant``: us3d = disparity (signed mask) + label + LRSC; whu = disparity (``0 < gt < M``) + LRSC."""

    model: SemStereoConfig = field(default_factory=SemStereoConfig)
    stage: Stage = "full"  # "attention" = stage 1 (att_weights_only, label loss ×1.6), "full" = stage 2 (×2.4)
    lrsc: bool = True  # add LRSC (WHU: on pseudo-labels; False = the released main_whu.py, disparity only)
    lr: float = 1e-3  # Adam, betas (0.9, 0.999), no weight decay
    betas: tuple[float, float] = (0.9, 0.999)
    lrepochs: str = "12,22,30,38,44:2"  # LR divided by 2 at the start of these epochs
    epochs: int = 48  # per stage
    batch_size: int = 4  # train batch (drop_last), per process
    seed: int = 1  # torch.manual_seed(1)
    backbone_weights: str | None = None  # local timm ImageNet checkpoint of the backbone (the original loads one)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        parse_lrepochs(self.lrepochs)
        if self.lr <= 0 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("TrainConfig: lr must be > 0 and epochs, batch_size >= 1")

    def model_config(self) -> SemStereoConfig:
        """The model of this stage (``att_weights_only`` follows ``stage``; a real boolean, see README)."""
        return replace(self.model, att_weights_only=self.stage == "attention")


def parse_lrepochs(text: str) -> tuple[list[int], float]:
    """``"12,22,30,38,44:2"`` -> ``([12, 22, 30, 38, 44], 2.0)``; malformed strings raise ``ValueError``."""
    epochs, sep, divisor = text.partition(":")
    try:
        milestones = [int(e) for e in epochs.split(",") if e.strip()]
        factor = float(divisor)
    except ValueError:
        raise ValueError(f"lrepochs {text!r}: expected 'E1,E2,...:DIVISOR', e.g. '12,22,30,38,44:2'") from None
    if not sep or factor <= 0:
        raise ValueError(f"lrepochs {text!r}: expected 'E1,E2,...:DIVISOR' with a positive divisor")
    return milestones, factor
