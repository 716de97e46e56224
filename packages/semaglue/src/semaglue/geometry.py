"""Image preparation and two-view geometry of the YFCC evaluation (SuperGlue's ``models/utils.py`` semantics).

Conventions: keypoints ``N×2`` pixel ``(x, y)``; intrinsics ``K`` 3×3; ``T_0to1`` 4×4 maps camera-0 to camera-1
coordinates; EXIF rotations ``rot`` in multiples of 90 degrees (``np.rot90(image, k=rot)``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch

PoseEstimator = Literal["ransac", "magsac", "dlt"]
POSE_ESTIMATORS: tuple[str, ...] = ("ransac", "magsac", "dlt")


def process_resize(w: int, h: int, resize: Sequence[int]) -> tuple[int, int]:
    """Target ``(w, h)``: one value > 0 scales the longer side to it, ``-1`` keeps the size, two values are exact."""
    if not 0 < len(resize) <= 2:
        raise ValueError(f"resize must have 1 or 2 values, got {list(resize)}")
    if len(resize) == 1 and resize[0] > -1:
        scale = resize[0] / max(h, w)
        w_new, h_new = round(w * scale), round(h * scale)
    elif len(resize) == 1 and resize[0] == -1:
        w_new, h_new = w, h
    else:
        w_new, h_new = int(resize[0]), int(resize[1])
    if max(w_new, h_new) < 160:
        warnings.warn("input resolution is very small, results may vary", stacklevel=2)
    elif max(w_new, h_new) > 2000:
        warnings.warn("input resolution is very large, results may vary", stacklevel=2)
    return w_new, h_new


def read_gray_image(
    path: str | Path, resize: Sequence[int], rotation: int = 0, resize_float: bool = False
) -> tuple[np.ndarray, torch.Tensor, tuple[float, float]]:
    """Read a grey image, resize, apply the EXIF rotation.

    Returns the float32 image ``H×W`` (0..255), the tensor ``1×1×H×W`` in [0, 1] and the scales
    ``(w / w_new, h / h_new)`` (swapped for odd rotations).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot decode image: {path}")
    h, w = image.shape
    w_new, h_new = process_resize(w, h, resize)
    scales = (float(w) / float(w_new), float(h) / float(h_new))
    if resize_float:
        image = cv2.resize(image.astype("float32"), (w_new, h_new))
    else:
        image = cv2.resize(image, (w_new, h_new)).astype("float32")
    if rotation % 4:
        image = np.ascontiguousarray(np.rot90(image, k=rotation))
        if rotation % 2:
            scales = scales[::-1]
    tensor = torch.from_numpy(image / 255.0).float()[None, None]
    return image, tensor, scales


def scale_intrinsics(K: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """Intrinsics of the resized image: ``diag(1/sx, 1/sy, 1) @ K``."""
    return np.dot(np.diag([1.0 / scales[0], 1.0 / scales[1], 1.0]), K)


def rotate_intrinsics(K: np.ndarray, image_shape: Sequence[int], rot: int) -> np.ndarray:
    """Intrinsics after rotating the image by ``rot`` x 90 degrees; ``image_shape`` is the *rotated* ``(H, W)``."""
    if not 0 <= rot <= 3:
        raise ValueError(f"rot must be in 0..3, got {rot}")
    h, w = tuple(image_shape[:2])[:: -1 if rot % 2 else 1]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if rot == 0:
        return K.copy()
    if rot == 1:
        rows = [[fy, 0.0, cy], [0.0, fx, w - 1 - cx]]
    elif rot == 2:
        rows = [[fx, 0.0, w - 1 - cx], [0.0, fy, h - 1 - cy]]
    else:
        rows = [[fy, 0.0, h - 1 - cy], [0.0, fx, cx]]
    return np.array([*rows, [0.0, 0.0, 1.0]], dtype=K.dtype)


def _inplane_rotation(rot: int) -> np.ndarray:
    # float32, as in the original: cos/sin are rounded to single precision before the product
    angle = np.deg2rad((0, 270, 180, 90)[rot])
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)


def rotate_pose_inplane(i_T_w: np.ndarray, rot: int) -> np.ndarray:
    """Left-multiply a 4×4 pose by the in-plane rotation matching an image rotation of ``rot`` x 90 degrees."""
    if not 0 <= rot <= 3:
        raise ValueError(f"rot must be in 0..3, got {rot}")
    return np.dot(_inplane_rotation(rot), i_T_w)


def rotate_relative_pose(T_0to1: np.ndarray, rot0: int, rot1: int) -> np.ndarray:
    """``T_0to1`` of the rotated image pair (identity is image 0's pose before rotation)."""
    cam0_T_w = np.eye(4)
    cam1_T_w = T_0to1
    if rot0:
        cam0_T_w = rotate_pose_inplane(cam0_T_w, rot0)
    if rot1:
        cam1_T_w = rotate_pose_inplane(cam1_T_w, rot1)
    return cam1_T_w @ np.linalg.inv(cam0_T_w)


def normalize_points(kpts: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixel ``(x, y)`` -> normalised camera coordinates ``((x - cx) / fx, (y - cy) / fy)``."""
    return (kpts - K[[0, 1], [2, 2]][None]) / K[[0, 1], [0, 1]][None]


def estimate_pose(
    kpts0: np.ndarray,
    kpts1: np.ndarray,
    K0: np.ndarray,
    K1: np.ndarray,
    thresh: float = 1.0,
    conf: float = 0.99999,
    method: PoseEstimator = "ransac",
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Relative pose ``(R, t, inlier mask)`` from matched pixels, or ``None`` with fewer than 5 matches.

    ``ransac``: ``cv2.findEssentialMat`` with ``cv2.RANSAC`` (behind the published YFCC table);
    ``magsac``: ``cv2.USAC_MAGSAC`` (what the authors' committed code uses); ``dlt``: 8-point fundamental
    matrix on all matches in normalised coordinates, used as E (no robust estimation).
    The pixel threshold is normalised by ``mean(fx0, fy1, fx0, fy1)`` (SuperGlue's choice).
    """
    if method not in POSE_ESTIMATORS:
        raise ValueError(f"method must be one of {POSE_ESTIMATORS}, got {method!r}")
    if len(kpts0) != len(kpts1):
        raise ValueError(f"kpts0 has {len(kpts0)} points but kpts1 has {len(kpts1)}")
    if len(kpts0) < 5:
        return None
    f_mean = np.mean([K0[0, 0], K1[1, 1], K0[0, 0], K1[1, 1]])
    norm_thresh = thresh / f_mean
    p0, p1 = normalize_points(kpts0, K0), normalize_points(kpts1, K1)
    if method == "dlt":
        if len(p0) < 8:
            return None
        E, mask = cv2.findFundamentalMat(p0, p1, cv2.FM_8POINT)
    else:
        flag = cv2.RANSAC if method == "ransac" else cv2.USAC_MAGSAC
        E, mask = cv2.findEssentialMat(p0, p1, np.eye(3), threshold=norm_thresh, prob=conf, method=flag)
    if E is None or mask is None:
        return None
    best, ret = 0, None
    for candidate in np.split(E, len(E) // 3):
        n, R, t, _ = cv2.recoverPose(candidate, p0, p1, np.eye(3), 1e9, mask=mask)
        if n > best:
            best, ret = n, (R, t[:, 0], mask.ravel() > 0)
    return ret
