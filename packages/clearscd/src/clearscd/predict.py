"""Prediction on user scenes of any size: sliding-window inference with overlap blending, in bounded memory.

For a pair (T1, T2) the outputs are written next to each other in the output folder, with the T1 file's stem:

- ``<stem>_sem_A`` / ``<stem>_sem_B``: class index per pixel (uint8, 0..C−1; Hi-UCD classes of ``classes.json``),
- ``<stem>_change``: binary change map (uint8, 0 unchanged / 1 changed; = round(sigmoid(BCD)) of the blended
  probability),
- ``<stem>_change_prob``: change probability, uint16, value = round(p · 65535) (scale 1/65535),
- ``<stem>_vis.png``: colour visualisation (T1 classes | T2 classes, both black where unchanged as in the authors'
  test.py | change map in white), downsampled so that its long side is at most ``vis_max`` pixels.

Raw outputs are GeoTIFF (georeferencing tags of the T1 file copied) when the T1 input is a TIFF, PNG otherwise.
Tiles of ``tile`` pixels with ``overlap`` pixels of overlap are blended with weights that ramp linearly over the
overlap; probabilities are accumulated in a band buffer of ``tile`` rows × scene width (memory ~ tile·W·(2C+1)·4
bytes), finished rows go straight to the outputs (memory-mapped for TIFF), so memory does not grow with the scene
height and an uncompressed TIFF scene of any size is only read window by window. All files are written under
temporary names and renamed at the end; existing outputs are never overwritten.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clearscd.data.common import DataError, class_colours, read_window
from clearscd.inference import IMPLS, Inference, images_to_input
from clearscd.model.clearscd import ClearSCD
from semcommon.io import ImageReadError, write_image
from semcommon.runtime import progress

__all__ = ["PredictOptions", "pair_files", "predict_pair", "tile_starts"]

_TIFF = (".tif", ".tiff")
_GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)
PROB_SCALE = 65535


@dataclass
class PredictOptions:
    """``tile``/``overlap`` in pixels (tile a multiple of 32 is fastest), ``batch`` tiles per forward pass;
    ``impl``/``precision``/``compile`` as :class:`clearscd.inference.Inference`."""

    tile: int = 512
    overlap: int = 128
    batch: int = 4
    vis_max: int = 2048
    progress: bool = True
    impl: str = "fast"
    precision: str = "fp32"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.tile < 32:
            raise ValueError(f"--tile must be >= 32, got {self.tile}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"--overlap must be in [0, tile), got {self.overlap} for tile {self.tile}")
        if self.batch < 1:
            raise ValueError(f"--batch must be >= 1, got {self.batch}")
        if self.impl not in IMPLS:
            raise ValueError(f"--impl must be one of {', '.join(IMPLS)}, got {self.impl!r}")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Window starts covering [0, length): stride tile − overlap, last window aligned to the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, tile - overlap))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _ramp(length: int, overlap: int) -> np.ndarray:
    if overlap == 0:
        return np.ones(length, np.float32)
    position = np.minimum(np.arange(length), np.arange(length)[::-1]) + 0.5
    return np.clip(position / overlap, 1.0 / overlap, 1.0).astype(np.float32)


def pair_files(t1: str | Path, t2: str | Path) -> list[tuple[Path, Path]]:
    """Two files, or two folders whose image files are matched by name (every T1 file needs its T2 file)."""
    t1, t2 = Path(t1), Path(t2)
    for path in (t1, t2):
        if not path.exists():
            raise DataError(f"{path}: not found")
    if t1.is_file() and t2.is_file():
        return [(t1, t2)]
    if t1.is_dir() and t2.is_dir():
        suffixes = (".png", ".jpg", ".jpeg", ".bmp", *_TIFF)
        files = sorted(p for p in t1.iterdir() if p.suffix.lower() in suffixes)
        if not files:
            raise DataError(f"{t1}: no image files")
        for path in files:
            if not (t2 / path.name).is_file():
                raise DataError(f"{t2 / path.name}: missing (T2 files are matched by name with {path})")
        return [(p, t2 / p.name) for p in files]
    raise DataError(f"{t1} and {t2} must both be files or both be folders")


class _Scene:
    """An RGB scene opened once: uncompressed TIFFs memory-mapped (windows read on demand), others decoded whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        array = None
        if path.suffix.lower() in _TIFF:
            import tifffile

            try:
                array = tifffile.memmap(str(path), mode="r")
            except (ValueError, OSError):
                array = None
            if array is not None and array.ndim == 3 and array.shape[0] <= 4 and array.shape[0] < array.shape[-1]:
                array = np.moveaxis(array, 0, -1)
        if array is None:
            try:
                array = read_window(path)
            except ImageReadError as exc:
                raise DataError(str(exc)) from exc
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise DataError(f"{path}: expected an RGB image, got shape {array.shape}")
        if array.dtype != np.uint8:
            raise DataError(f"{path}: expected 8-bit RGB, got dtype {array.dtype}")
        self.array = array
        self.shape = (int(array.shape[0]), int(array.shape[1]))

    def window(self, window: tuple[int, int, int, int]) -> np.ndarray:
        y0, y1, x0, x1 = window
        return np.ascontiguousarray(self.array[y0:y1, x0:x1, :3])


def _geo_tags(path: Path) -> list[tuple]:
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        tags = tif.pages[0].tags
        return [(t.code, t.dtype, t.count, t.value, True) for t in tags.values() if t.code in _GEO_TAGS]


class _Outputs:
    """The raw output arrays (memory-mapped TIFFs or in-memory arrays for PNG), written under temporary names."""

    def __init__(self, out_dir: Path, stem: str, shape: tuple[int, int], tiff_from: Path | None) -> None:
        suffix = ".tif" if tiff_from is not None else ".png"
        names = {"sem_A": np.uint8, "sem_B": np.uint8, "change": np.uint8, "change_prob": np.uint16}
        self.final = {k: out_dir / f"{stem}_{k}{suffix}" for k in names}
        self.final["vis"] = out_dir / f"{stem}_vis.png"
        for path in self.final.values():
            if path.exists():
                raise DataError(f"{path}: already exists (not overwritten; choose another --out)")
        self.temp = {k: p.with_name(f".{p.stem}.partial{p.suffix}") for k, p in self.final.items()}
        self.tiff = tiff_from is not None
        self.arrays: dict[str, np.ndarray] = {}
        if self.tiff:
            import tifffile

            tags = _geo_tags(tiff_from)
            for key, dtype in names.items():
                self.arrays[key] = tifffile.memmap(str(self.temp[key]), shape=shape, dtype=dtype, extratags=tags)
        else:
            self.arrays = {key: np.zeros(shape, dtype=dtype) for key, dtype in names.items()}

    def finish(self, vis: np.ndarray) -> None:
        for key, array in self.arrays.items():
            if self.tiff:
                array.flush()
            else:
                write_image(self.temp[key], array)
        write_image(self.temp["vis"], vis)
        self.arrays.clear()
        for key, path in self.temp.items():
            os.replace(path, self.final[key])

    def discard(self) -> None:
        self.arrays.clear()
        for path in self.temp.values():
            path.unlink(missing_ok=True)


@torch.no_grad()
def predict_pair(
    model: ClearSCD | Inference,
    path_A: str | Path,
    path_B: str | Path,
    out_dir: str | Path,
    opts: PredictOptions | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Path]:
    """Predict one scene pair and write its outputs (module docstring); returns the written paths.

    ``model``: a :class:`ClearSCD` (run as ``Inference(model, opts.impl, opts.precision, opts.compile)``) or a ready
    :class:`Inference` (build it once for many pairs)."""
    opts = opts or PredictOptions()
    path_A, path_B, out_dir = Path(path_A), Path(path_B), Path(out_dir)
    scene_A, scene_B = _Scene(path_A), _Scene(path_B)
    shape_A, shape_B = scene_A.shape, scene_B.shape
    if shape_A != shape_B:
        raise DataError(f"{path_B}: size {shape_B[0]}×{shape_B[1]} differs from {path_A} ({shape_A[0]}×{shape_A[1]})")
    height, width = shape_A
    num_classes = model.config.num_segclass
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = _Outputs(out_dir, path_A.stem, (height, width), path_A if path_A.suffix.lower() in _TIFF else None)
    runner = model if isinstance(model, Inference) else Inference(model, opts.impl, opts.precision, opts.compile)
    try:
        _run_windows(runner, scene_A, scene_B, outputs.arrays, num_classes, opts, device)
        outputs.finish(_visualise(outputs.arrays, num_classes, opts.vis_max))
    except BaseException:
        outputs.discard()
        raise
    return dict(outputs.final)


def _run_windows(
    runner: Inference,
    scene_A: _Scene,
    scene_B: _Scene,
    arrays: dict[str, np.ndarray],
    num_classes: int,
    opts: PredictOptions,
    device: torch.device | str,
) -> None:
    height, width = scene_A.shape
    channels = 2 * num_classes + 1
    tile_h, tile_w = min(opts.tile, height), min(opts.tile, width)
    weight_tile = _ramp(tile_h, opts.overlap)[:, None] * _ramp(tile_w, opts.overlap)[None, :]
    band = np.zeros((tile_h, width, channels), np.float32)
    band_weight = np.zeros((tile_h, width), np.float32)
    xs_all = tile_starts(width, opts.tile, opts.overlap)
    rows = [(y, xs_all) for y in tile_starts(height, opts.tile, opts.overlap)]
    total = sum(len(xs) for _, xs in rows)
    bar = iter(progress(range(total), desc=scene_A.path.name, total=total, enabled=opts.progress))
    band_top = 0
    for index, (y, xs) in enumerate(rows):
        if y > band_top:  # shift the band: rows above y are final
            shift = y - band_top
            band = np.concatenate([band[shift:], np.zeros((shift, width, channels), np.float32)])
            band_weight = np.concatenate([band_weight[shift:], np.zeros((shift, width), np.float32)])
            band_top = y
        for start in range(0, len(xs), opts.batch):
            chunk = xs[start : start + opts.batch]
            windows = [(y, y + tile_h, x, x + tile_w) for x in chunk]
            imgs = torch.cat([images_to_input(scene_A.window(w), scene_B.window(w)) for w in windows])
            out = runner(imgs.to(device))
            probs = torch.cat(
                [out["seg_A"].softmax(1), out["seg_B"].softmax(1), torch.sigmoid(out["BCD"])], dim=1
            ).float()
            probs = probs.permute(0, 2, 3, 1).cpu().numpy()
            if not np.isfinite(probs).all():
                raise ValueError(f"{scene_A.path}: the model produced NaN/Inf outputs (bad checkpoint?)")
            for (_, _, x0, x1), prob in zip(windows, probs, strict=True):
                band[:, x0:x1] += prob * weight_tile[..., None]
                band_weight[:, x0:x1] += weight_tile
                next(bar, None)
        last = index == len(rows) - 1
        done = tile_h if last else rows[index + 1][0] - y
        _write_rows(arrays, band[:done], band_weight[:done], y, num_classes)


def _write_rows(arrays: dict[str, np.ndarray], band: np.ndarray, weight: np.ndarray, y: int, num_classes: int) -> None:
    prob = band / weight[..., None]
    rows = slice(y, y + band.shape[0])
    arrays["sem_A"][rows] = prob[..., :num_classes].argmax(-1)
    arrays["sem_B"][rows] = prob[..., num_classes : 2 * num_classes].argmax(-1)
    change = prob[..., -1]
    arrays["change"][rows] = change > 0.5  # round(): exactly 0.5 rounds to 0, as torch.round
    arrays["change_prob"][rows] = np.round(change * PROB_SCALE).astype(np.uint16)


def _visualise(arrays: dict[str, np.ndarray], num_classes: int, vis_max: int) -> np.ndarray:
    """T1 classes | T2 classes (both black where unchanged, as test.py) | change map; at most ``vis_max`` px long."""
    height, width = arrays["change"].shape
    step = max(1, int(np.ceil(max(height, width) / vis_max)))
    sem_A, sem_B = arrays["sem_A"][::step, ::step], arrays["sem_B"][::step, ::step]
    change = np.asarray(arrays["change"][::step, ::step])
    colours = class_colours(num_classes)
    vis_A = colours[sem_A] * change[..., None]
    vis_B = colours[sem_B] * change[..., None]
    vis_change = np.repeat((change * 255)[..., None], 3, axis=-1).astype(np.uint8)
    gap = np.full((sem_A.shape[0], 4, 3), 255, np.uint8)
    vis = np.concatenate([vis_A, gap, vis_B, gap, vis_change], axis=1)
    return vis.astype(np.uint8)
