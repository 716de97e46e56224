"""Global registration: one homography per frame pair, previous-frame pixels -> current-frame pixels.

Registrators take ``(last_frames, frames)`` (``B×3×H×W``, ImageNet-normalised) and return ``B×3×3``.

- :class:`OpenCVRegistrator` — the authors' CPU path (AKAZE default, SIFT + FLANN, ORB; Lowe ratio 0.8,
  ``findHomography`` RANSAC 2.5 px; identity with fewer than 4 matches).
- :class:`IdentityRegistrator` — the "no registration" ablation.
- :class:`LearnedRegistrator` — the authors' GPU path, DISK + LightGlue + RANSAC from kornia (optional extra
  ``ssp[learned]``), weights from the authors' checkpoint (``registrator.disk.*``, ``registrator.lg_matcher.*``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import cv2
import numpy as np
import torch
from torch import nn

__all__ = [
    "DiskUnet",
    "IdentityRegistrator",
    "LearnedRegistrator",
    "LightGlueLayout",
    "OpenCVRegistrator",
    "build_registrator",
    "denormalize_to_uint8",
    "homography_from_matches",
    "kornia_available",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def denormalize_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """ImageNet-normalised ``B×3×H×W`` -> uint8 RGB ``B×H×W×3``."""
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(1, 3, 1, 1)
    images = ((frames.detach().float() * std + mean) * 255.0).round().clamp(0, 255)
    return images.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()


def _check_frames(last_frames: torch.Tensor, frames: torch.Tensor) -> None:
    if last_frames.shape != frames.shape or frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(
            f"registration: last_frames and frames must be equal B×3×H×W, got {tuple(last_frames.shape)}, "
            f"{tuple(frames.shape)}"
        )


def homography_from_matches(last_points: np.ndarray, points: np.ndarray, threshold: float = 2.5) -> np.ndarray | None:
    """RANSAC homography ``last_points -> points`` (``N×2`` each); None if fewer than 4 matches or no fit."""
    if len(last_points) < 4:
        return None
    homography, _ = cv2.findHomography(
        np.asarray(last_points, np.float32).reshape(-1, 1, 2), np.asarray(points, np.float32).reshape(-1, 1, 2),
        cv2.RANSAC, threshold,
    )  # fmt: skip
    if homography is None or not np.isfinite(homography).all():
        return None
    return homography


class IdentityRegistrator(nn.Module):
    """``k_registrator_model: identity``: H = I."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def forward(self, last_frames: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(last_frames, frames)
        return torch.eye(3, device=frames.device).expand(frames.shape[0], 3, 3).clone()


class OpenCVRegistrator(nn.Module):
    """Feature matching with OpenCV on uint8 RGB frames (``data_cfg.opencv_model_type``: akaze | sift | orb).

    Pairs without a homography (fewer than 4 matches, no RANSAC fit) get the identity; ``failures`` counts them.
    """

    def __init__(self, model_type: str = "akaze", ratio: float = 0.8, ransac_threshold: float = 2.5) -> None:
        super().__init__()
        self.failures = 0
        if model_type not in ("akaze", "sift", "orb"):
            raise ValueError(f"opencv_model_type: expected akaze | sift | orb, got {model_type!r}")
        self.model_type, self.ratio, self.ransac_threshold = model_type, ratio, ransac_threshold

    def _detector_and_matcher(self) -> tuple[object, object]:
        if self.model_type == "sift":
            flann = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 5}, {"checks": 50})
            return cv2.SIFT_create(nfeatures=8000), flann
        if self.model_type == "orb":
            return cv2.ORB_create(), cv2.BFMatcher(cv2.NORM_HAMMING)
        if not hasattr(cv2, "AKAZE_create"):
            raise ValueError(
                f"opencv_model_type 'akaze': this OpenCV ({cv2.__version__}) has no AKAZE (moved to contrib in 5.x); "
                "install opencv 4.x or choose 'sift' / 'orb'"
            )
        return cv2.AKAZE_create(), cv2.BFMatcher(cv2.NORM_HAMMING)

    def describe(self, image: np.ndarray) -> tuple[tuple, np.ndarray | None]:
        """Keypoints and descriptors of one uint8 RGB image ``H×W×3`` (what :meth:`match` consumes)."""
        detector, _ = self._detector_and_matcher()
        return detector.detectAndCompute(cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY), None)

    def match(self, last: tuple[tuple, np.ndarray | None], current: tuple[tuple, np.ndarray | None]) -> np.ndarray:
        """Homography (float64 ``3×3``) between two :meth:`describe` results, previous -> current pixels."""
        _, matcher = self._detector_and_matcher()
        (last_kp, last_desc), (kp, desc) = last, current
        if last_desc is None or desc is None or len(last_kp) < 2 or len(kp) < 2:
            self.failures += 1
            return np.eye(3)
        pairs = matcher.knnMatch(desc, last_desc, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < self.ratio * p[1].distance]
        last_points = np.array([last_kp[m.trainIdx].pt for m in good], np.float32).reshape(-1, 2)
        points = np.array([kp[m.queryIdx].pt for m in good], np.float32).reshape(-1, 2)
        homography = homography_from_matches(last_points, points, self.ransac_threshold)
        if homography is None:
            self.failures += 1
            return np.eye(3)
        return homography

    def estimate(self, last_image: np.ndarray, image: np.ndarray) -> np.ndarray:
        """Homography between two uint8 RGB images ``H×W×3`` (float64 ``3×3``)."""
        return self.match(self.describe(last_image), self.describe(image))

    def forward(self, last_frames: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(last_frames, frames)
        last_images, images = denormalize_to_uint8(last_frames), denormalize_to_uint8(frames)
        homos = [self.estimate(a, b) for a, b in zip(last_images, images, strict=True)]
        return torch.from_numpy(np.stack(homos)).float().to(frames.device)


def _conv_unit(in_channels: int, out_channels: int, first: bool) -> nn.Sequential:
    """DISK ``Conv`` unit layout: ``0`` norm, ``1`` PReLU, ``2`` dropout, ``3`` conv 5×5 (first unit: conv only)."""
    norm = nn.Identity() if first else nn.InstanceNorm2d(in_channels)
    act = nn.Identity() if first else nn.PReLU(in_channels)
    return nn.Sequential(norm, act, nn.Identity(), nn.Conv2d(in_channels, out_channels, 5, padding=2))


class _UpBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = _conv_unit(in_channels, out_channels, first=False)


class DiskUnet(nn.Module):
    """Parameter layout of kornia's DISK ("depth") U-Net: ``unet.path_down.*``, ``unet.path_up.*`` (1.09M)."""

    def __init__(self) -> None:
        super().__init__()
        down = [(3, 16), (16, 32), (32, 64), (64, 64), (64, 64)]
        up = [(128, 64), (128, 64), (96, 64), (80, 129)]
        self.unet = nn.Module()
        self.unet.path_down = nn.ModuleList(
            nn.Sequential(nn.Identity() if i == 0 else nn.AvgPool2d(2), _conv_unit(a, b, first=i == 0))
            for i, (a, b) in enumerate(down)
        )
        self.unet.path_up = nn.ModuleList(_UpBlock(a, b) for a, b in up)


class _SelfBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.Wqkv = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.LayerNorm(2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))


class _CrossBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.to_qk = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.LayerNorm(2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))


class _TransformerLayer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.self_attn = _SelfBlock(dim)
        self.cross_attn = _CrossBlock(dim)


class _MatchAssignment(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.matchability = nn.Linear(dim, 1)
        self.final_proj = nn.Linear(dim, dim)


class _TokenConfidence(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())


class _LightGlue(nn.Module):
    def __init__(self, input_dim: int = 128, dim: int = 256, heads: int = 4, layers: int = 9) -> None:
        super().__init__()
        self.register_buffer("confidence_thresholds", torch.zeros(layers))
        self.input_proj = nn.Linear(input_dim, dim)
        self.posenc = nn.Module()
        self.posenc.Wr = nn.Linear(2, dim // heads // 2, bias=False)
        self.transformers = nn.ModuleList(_TransformerLayer(dim) for _ in range(layers))
        self.log_assignment = nn.ModuleList(_MatchAssignment(dim) for _ in range(layers))
        self.token_confidence = nn.ModuleList(_TokenConfidence(dim) for _ in range(layers - 1))


class LightGlueLayout(nn.Module):
    """Parameter layout of kornia's ``LightGlueMatcher("disk")``: ``matcher.*`` (11.9M)."""

    def __init__(self) -> None:
        super().__init__()
        self.matcher = _LightGlue()


def _cross_attention_sdpa(
    block: nn.Module, x0: torch.Tensor, x1: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """LightGlue's bidirectional cross-attention block (kornia ``CrossBlock``: shared q/k projection ``to_qk``,
    ``to_v``, ``to_out``, ``ffn`` on ``[x | message]``) with both directions through ``scaled_dot_product_attention``
    instead of the explicit ``N0×N1`` similarity and its two softmaxes: ``m0 = softmax(qk0 qk1ᵀ/√d) v1``,
    ``m1 = softmax(qk1 qk0ᵀ/√d) v0``. ``x0`` ``B×N0×D``, ``x1`` ``B×N1×D``; ``mask`` ``B×h×N0×N1`` (True = allowed)."""
    qk0, qk1 = block.to_qk(x0), block.to_qk(x1)
    v0, v1 = block.to_v(x0), block.to_v(x1)
    qk0, qk1, v0, v1 = (t.unflatten(-1, (block.heads, -1)).transpose(1, 2) for t in (qk0, qk1, v0, v1))
    m0 = torch.nn.functional.scaled_dot_product_attention(qk0, qk1, v1, attn_mask=mask)
    m1 = torch.nn.functional.scaled_dot_product_attention(
        qk1, qk0, v0, attn_mask=mask.transpose(-1, -2) if mask is not None else None
    )
    if mask is not None:
        m0, m1 = m0.nan_to_num(), m1.nan_to_num()
    m0, m1 = (block.to_out(m.transpose(1, 2).flatten(start_dim=-2)) for m in (m0, m1))
    return x0 + block.ffn(torch.cat([x0, m0], -1)), x1 + block.ffn(torch.cat([x1, m1], -1))


def kornia_available() -> bool:
    """True when kornia (the ``ssp[learned]`` extra) is importable."""
    try:
        import kornia.feature  # noqa: F401
    except ImportError:
        return False
    return True


class LearnedRegistrator(nn.Module):
    """``k_registrator_model: disk``: DISK keypoints + LightGlue matching + RANSAC, all from kornia (``ssp[learned]``).

    Submodules ``disk`` (kornia ``DISK``) and ``lg_matcher`` (kornia ``LightGlueMatcher("disk")``) are built without
    downloading anything; their weights come from the authors' video checkpoint (``registrator.disk.*``,
    ``registrator.lg_matcher.*``) or :meth:`load_weights`. Without kornia the same parameter layout is held by
    plain modules so checkpoints still load, and calling the registrator raises a one-line error.
    Per sample: DISK on the normalised (previous, current) pair (``num_features`` keypoints, padded to a multiple of
    16), unit-scale LAFs, LightGlue matches, kornia RANSAC homography (``inl_th`` 2.5 px); identity with fewer than
    4 matches (``failures`` counts those).
    """

    def __init__(self, num_features: int = 2048, ransac_threshold: float = 2.5) -> None:
        super().__init__()
        self.num_features, self.ransac_threshold = num_features, ransac_threshold
        self.failures = 0
        self.impl = "fast"
        if kornia_available():
            from kornia.feature import DISK, LightGlue, LightGlueMatcher
            from kornia.feature.integrated import GeometryAwareDescriptorMatcher

            self.disk = DISK()
            matcher = LightGlueMatcher.__new__(LightGlueMatcher)
            GeometryAwareDescriptorMatcher.__init__(matcher, "disk")
            matcher.feature_name, matcher.params = "disk", {}
            matcher.matcher = LightGlue(None, input_dim=128)
            self.lg_matcher = matcher
            self.functional = True
        else:
            self.disk = DiskUnet()
            self.lg_matcher = LightGlueLayout()
            self.functional = False

    def describe(self, frames: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """DISK on ``B×3×H×W`` frames: per frame (keypoints ``N×2``, descriptors ``N×128``, unit-scale LAFs)."""
        from kornia.feature import laf_from_center_scale_ori

        if not self.functional:
            raise ValueError(
                "registration 'disk' needs kornia (pip install 'ssp[learned]'); choose akaze, sift, orb or identity"
            )
        with torch.inference_mode():
            features = self.disk(frames, n=self.num_features, pad_if_not_divisible=True)
        result = []
        for f in features:
            k = f.keypoints
            scale = torch.ones(1, len(k), 1, 1, device=k.device, dtype=k.dtype)
            result.append((k, f.descriptors, laf_from_center_scale_ori(k[None], scale)))
        return result

    def match(self, last: tuple, current: tuple, size: tuple[int, int]) -> torch.Tensor:
        """LightGlue + RANSAC between two :meth:`describe` results of frames of ``size`` (H, W) -> ``3×3``."""
        from kornia.geometry import RANSAC

        with torch.inference_mode(), self._cross_attention():
            _, indices = self.lg_matcher(last[1], current[1], last[2], current[2], size, size)
        with torch.inference_mode():
            if len(indices) < 4:
                self.failures += 1
                return torch.eye(3, device=current[0].device)
            ransac = RANSAC(model_type="homography", inl_th=self.ransac_threshold)
            homography, _ = ransac(last[0][indices[:, 0]], current[0][indices[:, 1]])
        return homography.reshape(3, 3)

    @contextlib.contextmanager
    def _cross_attention(self) -> Iterator[None]:
        """``impl`` "fast": LightGlue's cross-attention blocks run :func:`_cross_attention_sdpa` for the duration
        (kornia computes the full similarity matrix and two softmaxes on the CPU; same values within rounding)."""
        layers = getattr(getattr(self.lg_matcher, "matcher", None), "transformers", [])  # kornia's LightGlue layers
        blocks = [layer.cross_attn for layer in layers] if self.impl == "fast" else []
        try:
            for block in blocks:
                block.forward = functools.partial(_cross_attention_sdpa, block)
            yield
        finally:
            for block in blocks:
                del block.forward

    def _pair(self, last_frame: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        last, current = self.describe(torch.stack([last_frame, frame]))
        return self.match(last, current, tuple(frame.shape[-2:]))

    def forward(self, last_frames: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        _check_frames(last_frames, frames)
        if not self.functional:
            raise ValueError(
                "registration 'disk' needs kornia (pip install 'ssp[learned]'); choose akaze, sift, orb or identity"
            )
        with torch.inference_mode():
            homos = [self._pair(a, b) for a, b in zip(last_frames, frames, strict=True)]
        return torch.stack(homos).float()


def build_registrator(name: str | None, opencv_model_type: str = "akaze") -> nn.Module | None:
    """``k_registrator_model`` -> module: disk (learned slot) | opencv | identity | None."""
    if name is None:
        return None
    if name == "disk":
        return LearnedRegistrator()
    if name == "opencv":
        return OpenCVRegistrator(opencv_model_type)
    if name == "identity":
        return IdentityRegistrator()
    raise ValueError(f"k_registrator_model: expected disk | opencv | identity | null, got {name!r}")
