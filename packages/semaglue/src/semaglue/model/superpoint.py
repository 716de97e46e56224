"""SuperPoint (DeTone et al. 2018) with SuperGlue's post-processing; parameter names of ``superpoint_v1.pth``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semaglue.config import SuperPointConfig
from semaglue.model.layers import Impl

CELL = 8  # the detector head predicts one 8x8 cell (+ dustbin) per output pixel


def max_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """``(2r+1)×(2r+1)`` sliding maximum of ``…×H×W`` (-inf outside), as ``F.max_pool2d(x, 2r+1, 1, r)`` computes
    it, but as a row pass then a column pass of elementwise maxima over shifted views (exact: max is order-free)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (radius, radius), value=float("-inf"))
    out = padded[..., :w]
    for shift in range(1, 2 * radius + 1):
        out = torch.maximum(out, padded[..., shift : shift + w])
    padded = F.pad(out, (0, 0, radius, radius), value=float("-inf"))
    out = padded[..., :h, :]
    for shift in range(1, 2 * radius + 1):
        out = torch.maximum(out, padded[..., shift : shift + h, :])
    return out


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``nn.MaxPool2d(2, 2)`` on ``B×C×H×W`` (odd last row/column dropped) as the maximum of the four strided
    sub-grids: the same values, without the index bookkeeping of the pooling kernel."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    top = torch.maximum(x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2])
    return torch.maximum(top, torch.maximum(x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]))


def simple_nms(scores: torch.Tensor, radius: int, fast: bool = False) -> torch.Tensor:
    """Non-maximum suppression on a ``B×H×W`` heat-map: keep local maxima within ``radius`` (two refinement passes).

    ``fast``: the window maxima through :func:`max_filter` instead of ``F.max_pool2d`` (identical values)."""
    if radius < 0:
        raise ValueError(f"nms_radius must be >= 0, got {radius}")

    def max_pool(x: torch.Tensor) -> torch.Tensor:
        if fast:
            return max_filter(x, radius)
        return F.max_pool2d(x, kernel_size=2 * radius + 1, stride=1, padding=radius)

    zeros = torch.zeros_like(scores)
    max_mask = scores == max_pool(scores)
    for _ in range(2):
        suppressed = max_pool(max_mask.float()) > 0
        suppressed_scores = torch.where(suppressed, zeros, scores)
        new_max = suppressed_scores == max_pool(suppressed_scores)
        max_mask = max_mask | (new_max & ~suppressed)
    return torch.where(max_mask, scores, zeros)


def remove_borders(
    keypoints: torch.Tensor, scores: torch.Tensor, border: int, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop ``(row, col)`` keypoints closer than ``border`` pixels to the image edge."""
    rows, cols = keypoints[:, 0], keypoints[:, 1]
    keep = (rows >= border) & (rows < height - border) & (cols >= border) & (cols < width - border)
    return keypoints[keep], scores[keep]


def top_k_keypoints(keypoints: torch.Tensor, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``k`` highest-scoring keypoints (descending order); unchanged when there are at most ``k``."""
    if k >= len(keypoints):
        return keypoints, scores
    scores, indices = torch.topk(scores, k, dim=0)
    return keypoints[indices], scores


def sample_descriptors(keypoints: torch.Tensor, descriptors: torch.Tensor, cell: int = CELL) -> torch.Tensor:
    """Bilinearly sample ``B×C×h×w`` descriptors at ``B×K×2`` pixel keypoints ``(x, y)`` -> L2-normalised ``B×C×K``."""
    b, c, h, w = descriptors.shape
    scale = keypoints.new_tensor([w * cell - cell / 2 - 0.5, h * cell - cell / 2 - 0.5])
    grid = (keypoints - cell / 2 + 0.5) / scale * 2 - 1
    sampled = F.grid_sample(descriptors, grid.view(b, 1, -1, 2), mode="bilinear", align_corners=True)
    return F.normalize(sampled.reshape(b, c, -1), p=2, dim=1)


def select_keypoints(
    heat: torch.Tensor, threshold: float, border: int, max_keypoints: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The keypoint selection of SuperPoint's forward for a whole batch at once: above ``threshold``, not within
    ``border`` px of the edge, then the ``max_keypoints`` best (descending score; row-major order when an image
    has no more candidates than that). One thresholding, border and ``nonzero`` pass for the batch.
    ``heat`` ``B×H×W`` (after NMS) -> per image ``(row, col)`` keypoints ``K×2`` (int64) and scores ``K``."""
    h, w = heat.shape[-2:]
    valid = heat > threshold
    if border > 0:
        inner = torch.zeros_like(valid)
        inner[:, border : h - border, border : w - border] = True
        valid &= inner
    counts = valid.sum((1, 2)).tolist()
    flat = heat.flatten(1)
    index = list(torch.nonzero(valid.flatten(1))[:, 1].split(counts))  # row-major candidates of each image
    if max_keypoints >= 0:  # the same top-k call on the same candidate list as the per-image path (same tie order)
        index = [
            idx[torch.topk(flat[i, idx], max_keypoints).indices] if len(idx) > max_keypoints else idx
            for i, idx in enumerate(index)
        ]
    keypoints = [torch.stack([idx // w, idx % w], 1) for idx in index]
    scores = [flat[i, idx] for i, idx in enumerate(index)]
    return keypoints, scores


def _conv(cin: int, cout: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=kernel, stride=1, padding=kernel // 2)


class SuperPoint(nn.Module):
    """SuperPoint network and keypoint extraction.

    Input ``{"image": B×1×H×W}`` (or B×3×H×W RGB, converted to grey) in [0, 1]. Output lists (one entry per
    image): ``keypoints`` K×2 ``(x, y)``, ``scores`` K, ``descriptors`` 256×K.
    """

    def __init__(self, config: SuperPointConfig | None = None) -> None:
        super().__init__()
        self.config = config or SuperPointConfig()
        c1, c2, c3, c4, c5 = 64, 64, 128, 128, 256
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv1a, self.conv1b = _conv(1, c1), _conv(c1, c1)
        self.conv2a, self.conv2b = _conv(c1, c2), _conv(c2, c2)
        self.conv3a, self.conv3b = _conv(c2, c3), _conv(c3, c3)
        self.conv4a, self.conv4b = _conv(c3, c4), _conv(c4, c4)
        self.convPa, self.convPb = _conv(c4, c5), _conv(c5, CELL * CELL + 1, kernel=1)
        self.convDa, self.convDb = _conv(c4, c5), _conv(c5, self.config.descriptor_dim, kernel=1)
        self.impl: Impl = "fast"

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Shared VGG-style encoder: ``B×1×H×W`` -> ``B×128×H/8×W/8``."""
        x = image
        pool = max_pool_2x2 if self.impl == "fast" else self.pool
        for a, b in ((self.conv1a, self.conv1b), (self.conv2a, self.conv2b), (self.conv3a, self.conv3b)):
            x = pool(self.relu(b(self.relu(a(x)))))
        return self.relu(self.conv4b(self.relu(self.conv4a(x))))

    def dense(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense outputs: heat-map ``B×H×W`` (softmax, dustbin dropped, depth-to-space) and L2-normalised
        descriptor map ``B×256×H/8×W/8``."""
        image = _to_gray(image)
        if self.impl == "fast":  # oneDNN's channels-last convolutions (the same sums, faster kernels on CPU)
            image = image.contiguous(memory_format=torch.channels_last)
        x = self.encode(image)
        scores = F.softmax(self.convPb(self.relu(self.convPa(x))), dim=1)[:, :-1]
        b, _, h, w = scores.shape
        scores = scores.permute(0, 2, 3, 1).reshape(b, h, w, CELL, CELL)
        scores = scores.permute(0, 1, 3, 2, 4).reshape(b, h * CELL, w * CELL)
        descriptors = F.normalize(self.convDb(self.relu(self.convDa(x))), p=2, dim=1)
        return scores, descriptors

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        cfg = self.config
        check_image(data["image"])
        scores_dense, descriptors_dense = self.dense(data["image"])
        if self.impl == "fast":
            scores_nms = simple_nms(scores_dense, cfg.nms_radius, fast=True)
            rowcol, scores = select_keypoints(scores_nms, cfg.keypoint_threshold, cfg.remove_borders, cfg.max_keypoints)
            keypoints = [torch.flip(k, [1]).float() for k in rowcol]
            size = max(len(k) for k in keypoints)
            padded = torch.stack([F.pad(k, (0, 0, 0, size - len(k))) for k in keypoints])
            sampled = sample_descriptors(padded, descriptors_dense)
            descriptors = [d[:, : len(k)] for d, k in zip(sampled, keypoints, strict=True)]
            return {"keypoints": keypoints, "scores": scores, "descriptors": descriptors}
        scores_nms = simple_nms(scores_dense, cfg.nms_radius)
        height, width = scores_nms.shape[-2:]
        keypoints, scores, descriptors = [], [], []
        for heat, desc in zip(scores_nms, descriptors_dense, strict=True):
            kpts = torch.nonzero(heat > cfg.keypoint_threshold)
            kscores = heat[kpts[:, 0], kpts[:, 1]]
            kpts, kscores = remove_borders(kpts, kscores, cfg.remove_borders, height, width)
            if cfg.max_keypoints >= 0:
                kpts, kscores = top_k_keypoints(kpts, kscores, cfg.max_keypoints)
            kpts = torch.flip(kpts, [1]).float()
            keypoints.append(kpts)
            scores.append(kscores)
            descriptors.append(sample_descriptors(kpts[None], desc[None])[0])
        return {"keypoints": keypoints, "scores": scores, "descriptors": descriptors}


def check_image(image: torch.Tensor, name: str = "image") -> None:
    """Reject images that cannot be what the networks expect: ``B×1×H×W`` or ``B×3×H×W``, finite, in [0, 1]
    (a 0..255 image is named as such; 1% slack allows for interpolation overshoot)."""
    if image.ndim != 4 or image.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be B×1×H×W or B×3×H×W, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {image.dtype}")
    finite = torch.isfinite(image)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"{name} has {bad} NaN/inf value(s) of {image.numel()}")
    low, high = float(image.min()), float(image.max())
    if low < -0.01 or high > 1.01:
        hint = " (looks like 0..255: divide by 255)" if high > 2 else ""
        raise ValueError(f"{name} values must be in [0, 1], got [{low:.3g}, {high:.3g}]{hint}")


def _to_gray(image: torch.Tensor) -> torch.Tensor:
    if image.ndim != 4 or image.shape[1] not in (1, 3):
        raise ValueError(f"image must be B×1×H×W or B×3×H×W, got shape {tuple(image.shape)}")
    if image.shape[1] == 3:
        weights = image.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        image = (image * weights).sum(1, keepdim=True)
    return image
