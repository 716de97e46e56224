"""Typed configurations with the paper's defaults (YFCC setting of the SemaGlue repository)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SuperPointConfig:
    """SuperPoint detector/descriptor (Magic Leap ``superpoint_v1.pth``).

    Defaults are SuperGlue's; the YFCC evaluation overrides ``nms_radius=3`` and ``max_keypoints=2048``
    (see :func:`yfcc_superpoint_config`).
    """

    descriptor_dim: int = 256
    nms_radius: int = 4
    keypoint_threshold: float = 0.005
    max_keypoints: int = -1
    remove_borders: int = 4


@dataclass
class SegNextConfig:
    """SegNeXt MSCAN-Tiny backbone (ADE20K checkpoint ``segnext_tiny_512x512_ade_160k.pth``)."""

    in_channels: int = 3
    embed_dims: tuple[int, ...] = (32, 64, 160, 256)
    mlp_ratios: tuple[int, ...] = (8, 8, 4, 4)
    depths: tuple[int, ...] = (3, 3, 5, 2)
    drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    bn_eps: float = 1e-5

    @property
    def out_channels(self) -> int:
        """Channels of the concatenated stage-2..4 feature map (480 for MSCAN-T)."""
        return sum(self.embed_dims[1:])


@dataclass
class SemaGlueConfig:
    """The SemaGlue matcher as configured by the authors' pipeline (9 layers, d=256, 4 heads, semantic dim 480).

    ``swap_image_size`` reproduces the authors' keypoint normalisation, which passes the image tensor's
    ``(H, W)`` where LightGlue expects ``(W, H)`` (x is centred by H/2, y by W/2). The released checkpoint was
    produced by that code, so ``True`` is the default; ``False`` gives LightGlue's normalisation.

    ``depth_confidence`` / ``width_confidence`` (LightGlue's names; -1 = off, the authors' behaviour): the
    APPROXIMATE adaptive mode: stop after the layer where more than ``depth_confidence`` of the points are confident
    (token-confidence heads), and drop points that are confidently unmatchable (matchability below
    ``1 - width_confidence``) from the following layers. LightGlue's defaults are 0.95 / 0.99.
    """

    input_dim: int = 256
    descriptor_dim: int = 256
    n_layers: int = 9
    num_heads: int = 4
    segment_dim: int = 480
    filter_threshold: float = 0.1
    add_scale_ori: bool = False
    swap_image_size: bool = True
    depth_confidence: float = -1.0
    width_confidence: float = -1.0

    @property
    def head_dim(self) -> int:
        return self.descriptor_dim // self.num_heads


@dataclass
class MatchingConfig:
    """SuperPoint + SegNeXt + SemaGlue (the authors' ``Matching`` pipeline), YFCC settings by default."""

    superpoint: SuperPointConfig = field(default_factory=lambda: yfcc_superpoint_config())
    segnext: SegNextConfig = field(default_factory=SegNextConfig)
    matcher: SemaGlueConfig = field(default_factory=SemaGlueConfig)


def yfcc_superpoint_config(**overrides: object) -> SuperPointConfig:
    """SuperPoint as used for the published YFCC numbers: nms 3, 2048 keypoints, threshold 0.005."""
    values: dict[str, object] = {"nms_radius": 3, "max_keypoints": 2048, "keypoint_threshold": 0.005}
    values.update(overrides)
    return SuperPointConfig(**values)  # type: ignore[arg-type]
