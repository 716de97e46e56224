"""Shared steps of ``ssp prepare-uavid`` / ``prepare-ruralscapes``: decode videos, convert colour labels, cut clips.

Everything is written under ``<out>.partial`` and renamed to ``<out>`` at the end, so an interrupted run leaves no
half-prepared dataset; an existing non-empty ``<out>`` is never overwritten.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from semcommon.io import read_video_frames, write_image

__all__ = ["colour_to_values", "cut_clips", "decode_video", "finish_output", "start_output"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv")


def decode_video(
    path: Path, resize: tuple[int, int] | None, keep: Callable[[int], bool]
) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, uint8 RGB frame) for every frame of a video with ``keep(index)``; ``resize`` (W, H) bicubic."""
    for index, frame in read_video_frames(path):
        if keep(index):
            if resize is not None and (frame.shape[1], frame.shape[0]) != resize:
                frame = cv2.resize(frame, resize, interpolation=cv2.INTER_CUBIC)
            yield index, frame


def colour_to_values(label: np.ndarray, table: dict[tuple[int, int, int], int], path: Path) -> np.ndarray:
    """RGB label image -> uint8 raw values by exact colour (colours not in ``table`` -> 0, unlabelled)."""
    if label.ndim != 3 or label.shape[2] != 3:
        raise ValueError(f"{path}: expected an RGB colour label, got shape {label.shape}")
    codes = (label[..., 0].astype(np.int64) << 16) | (label[..., 1].astype(np.int64) << 8) | label[..., 2]
    values = np.zeros(label.shape[:2], np.uint8)
    for (r, g, b), value in table.items():
        values[codes == ((r << 16) | (g << 8) | b)] = value
    return values


def start_output(out: Path) -> Path:
    """The temporary folder to write into; refuses an existing non-empty ``out``."""
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: output folder exists and is not empty (choose a new folder)")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    (partial / "data").mkdir(parents=True)
    return partial


def finish_output(partial: Path, out: Path, splits: dict[str, list[str]]) -> Path:
    """Write the split lists and move the prepared dataset into place."""
    if not any(splits.values()):
        shutil.rmtree(partial)
        raise ValueError(f"{out}: no clip could be cut (too few frames or no labels)")
    for split, clips in splits.items():
        (partial / f"{split}.txt").write_text("".join(f"{clip}\n" for clip in clips))
    if out.exists():
        out.rmdir()
    partial.rename(out)
    return out


def cut_clips(
    frames: Iterator[tuple[int, np.ndarray]],
    label_for: Callable[[int, tuple[int, int]], np.ndarray | None],
    data_dir: Path,
    name_for: Callable[[int], str],
    frame_name: Callable[[int], str],
    clip_length: int,
    min_length: int,
    drop_last: bool = False,
    require_mask: bool = False,
) -> list[str]:
    """Stream frames into clips of ``clip_length`` (``data_dir/<clip>/origin|mask``); clips shorter than
    ``min_length`` (or without any mask when ``require_mask``) are removed. ``drop_last`` drops the sequence's last
    frame. ``label_for(index, (H, W))`` returns raw mask values at the frame size or None. Returns the kept clips."""
    kept: list[str] = []
    local, count, has_mask, clip_dir = 0, 0, False, None

    def close() -> None:
        if clip_dir is None:
            return
        if count < min_length or (require_mask and not has_mask):
            shutil.rmtree(clip_dir)
        else:
            kept.append(clip_dir.name)

    pending: tuple[int, np.ndarray] | None = None
    stream = iter(frames)
    while True:
        item = next(stream, None)
        if item is None:
            break
        if drop_last:
            item, pending = pending, item
            if item is None:
                continue
        index, frame = item
        if clip_dir is None or count == clip_length:
            close()
            clip_dir, count, has_mask = data_dir / name_for(local), 0, False
            local += 1
        write_image(clip_dir / "origin" / f"{frame_name(index)}.png", frame)
        mask = label_for(index, frame.shape[:2])
        if mask is not None:
            write_image(clip_dir / "mask" / f"{frame_name(index)}.png", mask)
            has_mask = True
        count += 1
    close()
    return kept
