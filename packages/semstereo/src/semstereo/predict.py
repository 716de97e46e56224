"""Prediction on the user's own pairs of any size: padding to a multiple of 32, or overlapping tiles blended with
linear ramps for scenes larger than memory (e.g. 2048×2048 mosaics on CPU).

Outputs per pair (``STEM`` = the left file name without ``_LEFT_RGB`` / extension):

- ``STEM_disparity.tif``: float32 disparity in pixels (lossless; positive = left x ↔ right x - d),
- ``STEM_disparity.png``: 16-bit, ``value = 32768 + 64·d`` (1/64 px steps, d in [-512, 512)),
- ``STEM_class.png``: 8-bit class ids 0..5 (0 ground, 1 trees, 2 building, 3 water, 4 bridge, 5 unlabelled),
- ``STEM_disparity_color.png`` and ``STEM_class_overlay.png``: visualisations.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semcommon.io import ImageReadError, write_image
from semcommon.runtime import autocast, progress
from semcommon.viz import colorize, label_to_rgb, overlay
from semstereo.model import SemStereo
from semstereo.transforms import pad_to_multiple, read_pair, to_tensor

PNG_OFFSET = 32768
PNG_SCALE = 64.0
#: Colours of the authors' ``mask_vis``: 0 black, 1 red, 2 green, 3 blue, 4 yellow, 5 cyan.
CLASS_COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], np.uint8)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
OUTPUT_SUFFIXES = ("_disparity.tif", "_disparity.png", "_class.png", "_disparity_color.png", "_class_overlay.png")


@dataclass
class Prediction:
    """``disparity`` float32 H×W (px), ``probabilities`` float32 6×H×W (softmax of the left logits)."""

    disparity: np.ndarray
    probabilities: np.ndarray

    @property
    def classes(self) -> np.ndarray:
        return self.probabilities.argmax(0).astype(np.uint8)


def _run(
    model: SemStereo, left: torch.Tensor, right: torch.Tensor, precision: str = "fp32"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One padded forward (``model.impl``, ``precision`` autocast): ``1×3×h×w`` -> disparity ``h×w`` and class
    probabilities ``6×h×w`` (float32)."""
    padded_left, (height, width) = pad_to_multiple(left)
    padded_right, _ = pad_to_multiple(right)
    with autocast(left.device, precision):
        out = model(padded_left, padded_right)
    disparity = out.disparity[0, :height, :width].float()
    return disparity, torch.softmax(out.label_left[0, :, :height, :width].float(), dim=0)


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """Blend weights along one tile axis: linear ramps over ``overlap`` pixels except at the image border."""
    weight = torch.ones(length)
    ramp = torch.linspace(1.0 / (overlap + 1), 1.0, overlap) if overlap else torch.ones(0)
    if not at_start and overlap:
        weight[:overlap] = ramp
    if not at_end and overlap:
        weight[length - overlap :] = ramp.flip(0)
    return weight


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    return sorted({*range(0, size - tile, step), size - tile})


@torch.no_grad()
def predict_pair(
    model: SemStereo,
    left: np.ndarray,
    right: np.ndarray,
    tile: int = 0,
    overlap: int = 64,
    device: str = "cpu",
    precision: str = "fp32",
) -> Prediction:
    """Disparity and class probabilities of an RGB pair (``H×W×3`` uint8/uint16/float in [0, 1], any size).

    ``tile=0`` runs the whole (padded) pair at once; otherwise ``tile×tile`` windows (a multiple of 32) overlapping
    by ``overlap`` pixels are blended with linear ramps. The implementation is ``model.impl`` ("fast" | "reference");
    ``precision`` bf16/fp16 runs under autocast (approximate).
    """
    if left.shape != right.shape:
        raise ValueError(f"predict: left {left.shape} and right {right.shape} differ in size")
    if tile and (tile % 32 or tile < 64):
        raise ValueError(f"--tile must be 0 or a multiple of 32 of at least 64, got {tile}")
    if tile and not 0 <= overlap < tile // 2:
        raise ValueError(f"--overlap must lie in [0, tile/2), got {overlap} for tile {tile}")
    model.eval()
    x_left, x_right = to_tensor(left, "left").to(device), to_tensor(right, "right").to(device)
    height, width = left.shape[:2]
    if not tile or (height <= tile and width <= tile):
        disparity, probabilities = _run(model, x_left, x_right, precision)
        return Prediction(disparity.cpu().numpy(), probabilities.cpu().numpy())
    disparity_sum = torch.zeros(height, width)
    prob_sum = torch.zeros(model.config.num_classes, height, width)
    weight_sum = torch.zeros(height, width)
    ys, xs = _starts(height, tile, tile - overlap), _starts(width, tile, tile - overlap)
    for y in ys:
        for x in xs:
            window = (slice(None), slice(None), slice(y, y + tile), slice(x, x + tile))
            disparity, probabilities = _run(model, x_left[window], x_right[window], precision)
            h, w = disparity.shape
            weight = _ramp(h, overlap, y == 0, y + h >= height)[:, None] * _ramp(w, overlap, x == 0, x + w >= width)
            disparity_sum[y : y + h, x : x + w] += disparity.cpu() * weight
            prob_sum[:, y : y + h, x : x + w] += probabilities.cpu() * weight
            weight_sum[y : y + h, x : x + w] += weight
    return Prediction((disparity_sum / weight_sum).numpy(), (prob_sum / weight_sum).numpy())


def disparity_to_png(disparity: np.ndarray) -> np.ndarray:
    """``32768 + 64·d`` as uint16 (clipped); invert with :func:`png_to_disparity`."""
    return np.clip(np.round(PNG_OFFSET + PNG_SCALE * disparity), 0, 65535).astype(np.uint16)


def png_to_disparity(stored: np.ndarray) -> np.ndarray:
    return ((stored.astype(np.float32) - PNG_OFFSET) / PNG_SCALE).astype(np.float32)


def output_stem(left: Path) -> str:
    stem = left.stem
    for marker in ("_LEFT_RGB", "_left", "_LEFT"):
        if stem.endswith(marker):
            return stem[: -len(marker)]
    return stem


def find_pairs(left: str | Path, right: str | Path) -> list[tuple[Path, Path]]:
    """Pairs from two files, or two folders matched by name (same name, or ``LEFT``/``left`` -> ``RIGHT``/``right``)."""
    left, right = Path(left), Path(right)
    if left.is_file() and right.is_file():
        return [(left, right)]
    for path in (left, right):
        if not path.exists():
            raise FileNotFoundError(f"{path}: not found")
    if not (left.is_dir() and right.is_dir()):
        raise ValueError(f"{left}, {right}: give two image files or two folders")
    pairs = []
    for path in sorted(p for p in left.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        candidates = [
            right / path.name,
            right / path.name.replace("LEFT", "RIGHT"),
            right / path.name.replace("left", "right"),
        ]
        match = next((c for c in candidates if c.is_file()), None)
        if match is None:
            raise FileNotFoundError(f"{path}: no right image for it in {right}")
        pairs.append((path, match))
    if not pairs:
        raise FileNotFoundError(f"{left}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return pairs


def write_prediction(prediction: Prediction, left_image: np.ndarray, folder: Path, stem: str) -> None:
    disparity = prediction.disparity.astype(np.float32)
    write_image(folder / f"{stem}_disparity.tif", disparity)
    write_image(folder / f"{stem}_disparity.png", disparity_to_png(disparity))
    write_image(folder / f"{stem}_class.png", prediction.classes)
    write_image(folder / f"{stem}_disparity_color.png", colorize(disparity))
    rgb = (
        left_image
        if left_image.dtype == np.uint8
        else (left_image.astype(np.float64) / left_image.max() * 255).astype(np.uint8)
    )
    write_image(folder / f"{stem}_class_overlay.png", overlay(rgb, label_to_rgb(prediction.classes, CLASS_COLOURS)))


def predict_files(
    model: SemStereo,
    left: str | Path,
    right: str | Path,
    out_dir: str | Path,
    tile: int = 0,
    overlap: int = 64,
    device: str = "cpu",
    overwrite: bool = False,
    show_progress: bool = True,
    precision: str = "fp32",
) -> list[Path]:
    """Predict every pair; outputs are staged in a temporary folder and moved into ``out_dir`` only when every
    pair succeeded (no partial outputs). Existing outputs are refused unless ``overwrite``."""
    pairs = find_pairs(left, right)
    out = Path(out_dir)
    stems = [output_stem(pair[0]) for pair in pairs]
    if len(set(stems)) != len(stems):
        raise ValueError(f"{left}: several left images share an output name; rename them")
    if not overwrite:
        for stem in stems:
            for suffix in OUTPUT_SUFFIXES:
                if (out / f"{stem}{suffix}").exists():
                    raise FileExistsError(f"{out / (stem + suffix)}: exists (choose another --out or pass --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".semstereo-predict-", dir=out))
    written = []
    try:
        for (left_path, right_path), stem in progress(
            list(zip(pairs, stems, strict=True)), "predict", enabled=show_progress
        ):
            left_image, right_image = read_pair(left_path, right_path)
            try:
                prediction = predict_pair(model, left_image, right_image, tile, overlap, device, precision)
            except ValueError as exc:
                raise ImageReadError(f"{left_path}: {exc}") from None
            write_prediction(prediction, left_image, staging, stem)
        for item in sorted(staging.iterdir()):
            target = out / item.name
            item.replace(target)
            written.append(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
