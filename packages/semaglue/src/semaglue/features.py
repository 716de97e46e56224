"""Keypoint features for the matcher and the classical baseline.

Two sources, chosen by whether SuperPoint weights are given:

- ``superpoint``: the paper's features (``superpoint_v1.pth``), 256-D descriptors.
- ``sift``: OpenCV SIFT when no SuperPoint weights exist, so that training and the demo need no downloaded
  weights. Descriptor projection (documented deviation): RootSIFT (L1-normalise, square root) then L2-normalise,
  128-D; the matcher is built with ``input_dim=128`` and its ``input_proj`` (Linear 128->descriptor_dim) learns
  the projection into its descriptor space. Scores are the SIFT responses divided by their maximum.

The baseline (:func:`mutual_nn_ratio`) matches the *same* descriptors by mutual nearest neighbour with Lowe's
ratio test.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import torch

from semaglue.model import SuperPoint

FeatureKind = Literal["superpoint", "sift"]
SIFT_DIM = 128


def sift_features(image: np.ndarray, max_keypoints: int = 512) -> dict[str, np.ndarray]:
    """Grey ``H×W`` float image in [0, 1] -> ``keypoints`` K×2 float32, ``scores`` K, ``descriptors`` 128×K
    (RootSIFT, L2-normalised); the strongest ``max_keypoints`` (-1: all), one descriptor per location."""
    u8 = np.clip(np.asarray(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    sift = cv2.SIFT_create(nfeatures=max(max_keypoints, 0) * 2 if max_keypoints > 0 else 0)
    points, desc = sift.detectAndCompute(u8, None)
    if desc is None or not points:
        return {
            "keypoints": np.zeros((0, 2), np.float32),
            "scores": np.zeros(0, np.float32),
            "descriptors": np.zeros((SIFT_DIM, 0), np.float32),
        }
    kpts = np.array([p.pt for p in points], dtype=np.float32)
    scores = np.array([p.response for p in points], dtype=np.float32)
    _, unique = np.unique(np.round(kpts, 2), axis=0, return_index=True)  # SIFT repeats a point per orientation
    order = unique[np.argsort(-scores[unique], kind="stable")]
    if max_keypoints > 0:
        order = order[:max_keypoints]
    desc = desc[order].astype(np.float32)
    desc = np.sqrt(desc / np.maximum(desc.sum(1, keepdims=True), 1e-12))
    desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
    scores = scores[order]
    return {
        "keypoints": kpts[order],
        "scores": scores / max(float(scores.max()), 1e-12),
        "descriptors": np.ascontiguousarray(desc.T),
    }


def superpoint_features(model: SuperPoint, image: np.ndarray, device: torch.device) -> dict[str, np.ndarray]:
    """Grey ``H×W`` float image in [0, 1] -> SuperPoint ``keypoints`` K×2, ``scores`` K, ``descriptors`` 256×K."""
    with torch.no_grad():
        out = model({"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)})
    return {k: out[k][0].cpu().numpy().astype(np.float32) for k in ("keypoints", "scores", "descriptors")}


class FeatureExtractor:
    """Keypoints for one grey ``H×W`` float image in [0, 1]: SuperPoint when ``kind == "superpoint"`` (weights
    required), else SIFT. ``max_keypoints`` per image (-1: all); ``nms_radius``/``keypoint_threshold`` are
    SuperPoint's."""

    def __init__(
        self,
        kind: FeatureKind,
        max_keypoints: int = 512,
        superpoint_weights: str | None = None,
        nms_radius: int = 3,
        keypoint_threshold: float = 0.005,
        device: torch.device | str = "cpu",
    ) -> None:
        if kind not in ("superpoint", "sift"):
            raise ValueError(f"features: kind must be 'superpoint' or 'sift', got {kind!r}")
        self.kind, self.max_keypoints, self.device = kind, max_keypoints, torch.device(device)
        self.superpoint: SuperPoint | None = None
        if kind == "superpoint":
            if not superpoint_weights:
                raise ValueError("features: SuperPoint keypoints need superpoint_weights (superpoint_v1.pth)")
            from semaglue.checkpoint import load_pretrained
            from semaglue.config import SuperPointConfig

            config = SuperPointConfig(
                nms_radius=nms_radius, keypoint_threshold=keypoint_threshold, max_keypoints=max_keypoints
            )
            model = load_pretrained(superpoint_weights, "superpoint", config=config)
            self.superpoint = model.to(self.device)  # type: ignore[assignment]

    @property
    def dim(self) -> int:
        return 256 if self.kind == "superpoint" else SIFT_DIM

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        if self.superpoint is not None:
            return superpoint_features(self.superpoint, image, self.device)
        return sift_features(image, self.max_keypoints)


def mutual_nn_ratio(desc0: np.ndarray, desc1: np.ndarray, ratio: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours (L2 on ``D×M`` / ``D×N`` descriptors) passing Lowe's ratio test in both directions.

    Returns ``matches0`` (M,) int64 (-1 = unmatched) and a confidence ``1 - d1/d2`` (M,) float32.
    """
    m, n = desc0.shape[1], desc1.shape[1]
    matches0 = np.full(m, -1, np.int64)
    confidence = np.zeros(m, np.float32)
    if m == 0 or n == 0:
        return matches0, confidence
    d = np.sqrt(np.maximum(2 - 2 * desc0.T.astype(np.float64) @ desc1.astype(np.float64), 0))  # unit descriptors
    nn01 = d.argmin(1)
    nn10 = d.argmin(0)
    ratio0, ratio1 = _ratio(d), _ratio(d.T)
    idx = np.arange(m)
    keep = (nn10[nn01] == idx) & (ratio0 < ratio) & (ratio1[nn01] < ratio)
    matches0[keep] = nn01[keep]
    confidence[keep] = (1 - ratio0[keep]).astype(np.float32)
    return matches0, confidence


def _ratio(d: np.ndarray) -> np.ndarray:
    """Nearest / second-nearest distance per row of ``d`` (0 when a row has a single candidate)."""
    if d.shape[1] < 2:
        return np.zeros(d.shape[0])
    best = np.partition(d, 1, axis=1)[:, :2]
    return best[:, 0] / np.maximum(best[:, 1], 1e-12)
