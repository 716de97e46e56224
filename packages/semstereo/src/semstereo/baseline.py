"""Classical baselines of the demo: OpenCV semi-global block matching for disparity and a per-pixel colour
k-nearest-neighbour classifier for the class map.

SGBM handles signed disparities through ``minDisparity``; both images are padded by replication on the left and
right by the search range so that every column gets a match, and pixels SGBM leaves invalid (uniqueness or
left-right check) are filled with the nearest valid value of their row (the usual background interpolation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SGBMConfig:
    """``cv2.StereoSGBM`` parameters (P1 = p1·channels·block², P2 = p2·channels·block²)."""

    block_size: int = 5
    p1: int = 8
    p2: int = 32
    uniqueness: int = 5
    disp12_max_diff: int = 1
    speckle_window: int = 0
    speckle_range: int = 2
    mode: int = cv2.STEREO_SGBM_MODE_SGBM_3WAY


def _fill_invalid_rows(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each invalid pixel takes the nearest valid value of its row (rows without any valid pixel: 0)."""
    height, width = disparity.shape
    cols = np.arange(width)
    out = np.zeros_like(disparity)
    for y in range(height):
        good = np.flatnonzero(valid[y])
        if good.size:
            nearest = good[np.clip(np.searchsorted(good, cols), 0, good.size - 1)]
            before = good[np.clip(np.searchsorted(good, cols) - 1, 0, good.size - 1)]
            pick = np.where(np.abs(before - cols) < np.abs(nearest - cols), before, nearest)
            out[y] = disparity[y, pick]
    return out


def sgbm_disparity(
    left: np.ndarray, right: np.ndarray, dmin: float, dmax: float, config: SGBMConfig | None = None
) -> np.ndarray:
    """Dense float32 disparity ``H×W`` (px, positive = left x ↔ right x - d) of an RGB uint8 pair in ``[dmin, dmax)``."""
    cfg = config or SGBMConfig()
    low = int(np.floor(dmin))
    span = int(np.ceil(dmax)) - low
    num = 16 * max(1, -(-span // 16))
    margin = num + abs(low) + cfg.block_size
    pad = ((0, 0), (margin, margin), (0, 0))
    left_p, right_p = np.pad(left, pad, mode="edge"), np.pad(right, pad, mode="edge")
    channels = left.shape[2]
    matcher = cv2.StereoSGBM_create(
        minDisparity=low,
        numDisparities=num,
        blockSize=cfg.block_size,
        P1=cfg.p1 * channels * cfg.block_size**2,
        P2=cfg.p2 * channels * cfg.block_size**2,
        disp12MaxDiff=cfg.disp12_max_diff,
        uniquenessRatio=cfg.uniqueness,
        speckleWindowSize=cfg.speckle_window,
        speckleRange=cfg.speckle_range,
        mode=cfg.mode,
    )
    raw = matcher.compute(left_p, right_p)[:, margin:-margin].astype(np.float32) / 16.0
    valid = raw >= low
    return _fill_invalid_rows(raw, valid).astype(np.float32)


def tune_sgbm(
    pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    dmin: float,
    dmax: float,
    block_sizes: Sequence[int] = (3, 5, 7, 9),
    smoothness: Sequence[tuple[int, int]] = ((4, 16), (8, 32), (8, 64), (16, 96)),
    uniqueness: Sequence[int] = (0, 5, 10),
) -> tuple[SGBMConfig, float]:
    """Grid search on training pairs ``(left, right, gt)``: the configuration with the lowest mean EPE."""
    best: tuple[float, SGBMConfig] | None = None
    for block in block_sizes:
        for p1, p2 in smoothness:
            for unique in uniqueness:
                cfg = SGBMConfig(block_size=block, p1=p1, p2=p2, uniqueness=unique)
                errors = [np.abs(sgbm_disparity(l, r, dmin, dmax, cfg) - gt).mean() for l, r, gt in pairs]
                score = float(np.mean(errors))
                if best is None or score < best[0]:
                    best = (score, cfg)
    assert best is not None
    return best[1], best[0]


class ColourKNN:
    """k-nearest-neighbour classifier on RGB (scaled to [0, 1]) fitted on subsampled training pixels."""

    def __init__(self, k: int = 5, samples: int = 4000, seed: int = 0) -> None:
        self.k = k
        self.samples = samples
        self.seed = seed
        self.points = np.zeros((0, 3), np.float32)
        self.labels = np.zeros(0, np.int64)

    def fit(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray], num_classes: int = 6) -> ColourKNN:
        rng = np.random.default_rng(self.seed)
        colours = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float32) / 255.0
        classes = np.concatenate([lab.reshape(-1) for lab in labels]).astype(np.int64)
        keep = classes < num_classes - 1  # the ignore class is not learnt
        colours, classes = colours[keep], classes[keep]
        pick = rng.choice(len(classes), size=min(self.samples, len(classes)), replace=False)
        self.points, self.labels = colours[pick], classes[pick]
        self.num_classes = num_classes
        return self

    def predict(self, image: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """Class map ``H×W`` (majority of the ``k`` nearest training colours)."""
        colours = image.reshape(-1, 3).astype(np.float32) / 255.0
        out = np.empty(len(colours), np.int64)
        norms = (self.points**2).sum(1)
        for start in range(0, len(colours), chunk):
            block = colours[start : start + chunk]
            dist = norms[None] - 2 * block @ self.points.T  # |a - b|² without the per-row constant |a|²
            nearest = np.argpartition(dist, self.k, axis=1)[:, : self.k]
            votes = np.zeros((len(block), self.num_classes), np.int64)
            np.add.at(votes, (np.arange(len(block))[:, None], self.labels[nearest]), 1)
            out[start : start + chunk] = votes.argmax(1)
        return out.reshape(image.shape[:2])
