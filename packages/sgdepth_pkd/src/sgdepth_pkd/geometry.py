"""Camera geometry of SGDepth's view synthesis (spec §c.1): disparity → depth, back-projection, projection,
image warping, point-cloud normals, and axis-angle/translation → 4×4 pose helpers.

Shapes: images B×C×H×W, disparities/depths B×1×H×W, intrinsics K / inv_K B×4×4, camera transforms B×4×4
(``cam_T_cam`` outputs of the model, B×1×1×4×4, are accepted as well), sampling grids B×H×W×2 in [−1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "NORMALS_EPS",
    "PROJECTION_EPS",
    "backproject",
    "check_tensor",
    "disp_to_depth",
    "pixel_grid",
    "pointcloud_normals",
    "project_to_grid",
    "rotation_from_axisangle",
    "transformation_from_parameters",
    "translation_matrix",
    "warp_frames",
    "warp_image",
]

PROJECTION_EPS = 1e-7
"""Added to the projected depth before the perspective division (authors' value)."""

NORMALS_EPS = 1e-8
"""Added to the cross-product norm when normalising point-cloud normals (authors' value)."""


def check_tensor(value: Any, name: str, ndim: int | None = None) -> torch.Tensor:
    """Return ``value``; raise a one-line error naming ``name`` unless it is a tensor (with ``ndim`` dimensions)
    whose floating values are all finite. Shared input validation of the geometry, loss and metric functions."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(value.shape)}")
    if value.is_floating_point() and not torch.isfinite(value).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return value


def _as_matrix(transform: torch.Tensor, name: str) -> torch.Tensor:
    """B×4×4 (or the model's B×1×1×4×4) → B×4×4."""
    check_tensor(transform, name)
    if transform.shape[-2:] != (4, 4) or transform.ndim not in (3, 5):
        raise ValueError(f"{name}: expected B×4×4 or B×1×1×4×4, got shape {tuple(transform.shape)}")
    return transform.reshape(-1, 4, 4)


def disp_to_depth(
    disp: torch.Tensor, min_depth: float = 0.1, max_depth: float = 100.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid disparity D (any shape) → (scaled disparity s, depth 1/s) with s = 1/max + (1/min − 1/max)·D."""
    check_tensor(disp, "disp")
    if not 0 < min_depth < max_depth:
        raise ValueError(f"min_depth/max_depth: need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    scaled = min_disp + (max_disp - min_disp) * disp
    return scaled, 1.0 / scaled


def pixel_grid(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Homogeneous pixel coordinates (x = 0..W−1, y = 0..H−1, 1) as a 3×(H·W) float32 tensor, row-major."""
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device),
        torch.arange(width, dtype=torch.float32, device=device),
        indexing="ij",
    )
    return torch.stack([xs, ys, torch.ones_like(xs)]).reshape(3, -1)


def backproject(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """Depth B×1×H×W and inverse intrinsics B×4×4 → homogeneous camera points B×4×(H·W)."""
    check_tensor(depth, "depth", ndim=4)
    check_tensor(inv_K, "inv_K", ndim=3)
    batch, _, height, width = depth.shape
    if depth.shape[1] != 1 or inv_K.shape != (batch, 4, 4):
        raise ValueError(f"depth/inv_K: expected B×1×H×W and B×4×4, got {tuple(depth.shape)}, {tuple(inv_K.shape)}")
    rays = inv_K[:, :3, :3] @ pixel_grid(height, width, depth.device).to(depth.dtype)
    points = depth.reshape(batch, 1, -1) * rays
    return torch.cat([points, torch.ones_like(points[:, :1])], dim=1)


def project_to_grid(
    points: torch.Tensor,
    K: torch.Tensor,
    cam_T_cam: torch.Tensor,
    height: int,
    width: int,
) -> torch.Tensor:
    """Homogeneous points B×4×(H·W) seen from the target camera → grid_sample coordinates B×H×W×2.

    Points are moved by ``cam_T_cam`` and projected with ``K[:, :3, :]``; pixel = xy / (z + 1e-7), normalised as
    2·p/(W−1, H−1) − 1 (pixel centres at ±1 when sampled with ``align_corners=True``, see :func:`warp_image`).
    """
    check_tensor(points, "points", ndim=3)
    check_tensor(K, "K", ndim=3)
    transform = _as_matrix(cam_T_cam, "cam_T_cam")
    batch = points.shape[0]
    if points.shape != (batch, 4, height * width) or K.shape != (batch, 4, 4) or transform.shape[0] != batch:
        raise ValueError(
            f"points/K/cam_T_cam: expected B×4×{height * width}, B×4×4, B×4×4, got "
            f"{tuple(points.shape)}, {tuple(K.shape)}, {tuple(transform.shape)}"
        )
    camera = (K @ transform)[:, :3, :] @ points
    pixels = camera[:, :2] / (camera[:, 2:3] + PROJECTION_EPS)
    pixels = pixels.reshape(batch, 2, height, width).permute(0, 2, 3, 1)
    scale = pixels.new_tensor([width - 1, height - 1])
    return (pixels / scale - 0.5) * 2


def warp_image(image: torch.Tensor, grid: torch.Tensor, consistent_grid: bool = False) -> torch.Tensor:
    """Bilinear, border-padded sampling of ``image`` B×C×H×W at ``grid`` B×H'×W'×2 → B×C×H'×W'.

    ``consistent_grid=False`` (default, authors' quirk kept for parity, spec §i.3): the grid is normalised with
    (W−1, H−1) but sampled with ``align_corners=False`` (SGDepth targeted PyTorch 1.1, where the default was True),
    which shifts the sample by up to half a pixel. ``consistent_grid=True`` samples with ``align_corners=True``,
    matching the normalisation, so an identity pose reproduces the source image exactly.
    """
    check_tensor(image, "image", ndim=4)
    check_tensor(grid, "grid", ndim=4)
    if grid.shape[0] != image.shape[0] or grid.shape[-1] != 2:
        raise ValueError(f"grid: expected {image.shape[0]}×H×W×2, got {tuple(grid.shape)}")
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=consistent_grid)


def pointcloud_normals(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Unit normals of the back-projected point cloud B×4×(H·W) (or B×3×(H·W)) → B×(H−1)×(W−1)×3.

    n = (P[y, x+1] − P[y, x]) × (P[y+1, x] − P[y, x]) / (|·| + 1e-8).
    """
    check_tensor(points, "points", ndim=3)
    if points.shape[1] not in (3, 4) or points.shape[2] != height * width:
        raise ValueError(f"points: expected B×4×{height * width}, got {tuple(points.shape)}")
    cloud = points[:, :3].reshape(-1, 3, height, width).permute(0, 2, 3, 1)
    origin = cloud[:, :-1, :-1]
    along_x = cloud[:, :-1, 1:] - origin
    along_y = cloud[:, 1:, :-1] - origin
    normals = torch.linalg.cross(along_x, along_y, dim=-1)
    return normals / (normals.norm(dim=-1, keepdim=True) + NORMALS_EPS)


def warp_frames(
    disps: Sequence[torch.Tensor],
    sources: Mapping[int, torch.Tensor],
    K: torch.Tensor,
    inv_K: torch.Tensor,
    cam_T_cams: Mapping[int, torch.Tensor],
    min_depth: float = 0.1,
    max_depth: float = 100.0,
    consistent_grid: bool = False,
) -> dict[tuple, torch.Tensor]:
    """SGDepth's ``PerspectiveResampler.warp_images``: synthesise the target frame from every source frame.

    ``disps[r]``: B×1×(H/2^r)×(W/2^r) disparity of scale r; ``sources[f]``: source image B×C×H×W for frame f (±1);
    ``cam_T_cams[f]``: target→source transform. Each disparity is upsampled bilinearly (align_corners=False) to
    H×W before conversion to depth. Returns the original output keys: ``('depth', 0, r)`` B×1×H×W,
    ``('sample', f, r)`` B×H×W×2, ``('color', f, r)`` B×C×H×W and ``('normals_pointcloud', r)`` B×(H−1)×(W−1)×3.
    """
    if not disps:
        raise ValueError("disps: need at least one resolution")
    if not sources or set(sources) != set(cam_T_cams):
        raise ValueError(
            f"sources/cam_T_cams: need the same non-empty frame ids, got {list(sources)}, {list(cam_T_cams)}"
        )
    first = check_tensor(next(iter(sources.values())), "sources", ndim=4)
    height, width = first.shape[-2:]
    outputs: dict[tuple, torch.Tensor] = {}
    for scale, disp in enumerate(disps):
        check_tensor(disp, f"disps[{scale}]", ndim=4)
        full = F.interpolate(disp, size=(height, width), mode="bilinear", align_corners=False)
        _, depth = disp_to_depth(full, min_depth, max_depth)
        points = backproject(depth, inv_K)
        outputs[("depth", 0, scale)] = depth
        outputs[("normals_pointcloud", scale)] = pointcloud_normals(points, height, width)
        for frame, source in sources.items():
            grid = project_to_grid(points, K, cam_T_cams[frame], height, width)
            outputs[("sample", frame, scale)] = grid
            outputs[("color", frame, scale)] = warp_image(source, grid, consistent_grid)
    return outputs


def rotation_from_axisangle(axisangle: torch.Tensor) -> torch.Tensor:
    """Axis-angle (..., 3) → 4×4 rotation (..., 4, 4) by Rodrigues: θ = |a|, u = a/(θ + 1e-7),
    R = cosθ·I + (1 − cosθ)·uuᵀ + sinθ·[u]ₓ.
    """
    check_tensor(axisangle, "axisangle")
    if axisangle.shape[-1] != 3:
        raise ValueError(f"axisangle: last dimension must be 3, got shape {tuple(axisangle.shape)}")
    angle = axisangle.norm(dim=-1, keepdim=True)
    axis = axisangle / (angle + 1e-7)
    cos, sin = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    rotation = cos * eye + (1 - cos) * axis[..., :, None] * axis[..., None, :] + sin * skew
    matrix = torch.zeros(*axis.shape[:-1], 4, 4, dtype=axis.dtype, device=axis.device)
    matrix[..., :3, :3] = rotation
    matrix[..., 3, 3] = 1
    return matrix


def translation_matrix(translation: torch.Tensor) -> torch.Tensor:
    """Translation (..., 3) → 4×4 homogeneous translation (..., 4, 4)."""
    check_tensor(translation, "translation")
    if translation.shape[-1] != 3:
        raise ValueError(f"translation: last dimension must be 3, got shape {tuple(translation.shape)}")
    matrix = torch.eye(4, dtype=translation.dtype, device=translation.device).expand(*translation.shape[:-1], 4, 4)
    matrix = matrix.clone()
    matrix[..., :3, 3] = translation
    return matrix


def transformation_from_parameters(
    axisangle: torch.Tensor, translation: torch.Tensor, invert: bool = False
) -> torch.Tensor:
    """Pose-net output (..., 3) + (..., 3) → (..., 4, 4): T(t)·R, or Rᵀ·T(−t) with ``invert`` (the (prev, cur) pair)."""
    rotation = rotation_from_axisangle(axisangle)
    if invert:
        return rotation.transpose(-1, -2) @ translation_matrix(-translation)
    return translation_matrix(translation) @ rotation
