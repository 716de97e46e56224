"""RuralScapes: ``ssp prepare-ruralscapes`` (the authors' ``tools/extract_frames_ruralscapes.py`` +
``tools/organize_ruralscapes.py``) and the prepared dataset's loader.

Source layout read by :func:`prepare_ruralscapes`::

    <source>/videos/<video>.MP4                      the videos (DJI_0043.MP4, ...)
    <source>/labels/<anything>_<video>_<NNNNNN>.png   manual RGB labels; NNNNNN = the frame's index in the video

Steps: every 5th frame of each video (plus the last) kept, optionally resized bicubic (the authors: 2560x1440),
named ``segfull_<video>_<NNNNNN>``; RGB labels -> raw values 0..12 (unlabelled, residential, land, forest, sky,
fence, road, hill, church, car, person, haystack, water); the first and last kept frame of each video dropped;
clips of 50 frames named ``{global}_{video}_{local}``, clips under 10 frames or without any mask dropped; videos
DJI_0051, 0056, 0061, 0086, 0088, 0089, 0116 -> ``val.txt``.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from semcommon.io import read_image
from ssp.data.clips import DiskClips
from ssp.data.prepare import VIDEO_SUFFIXES, colour_to_values, cut_clips, decode_video, finish_output, start_output
from ssp.data.tables import RURALSCAPES

__all__ = ["RuralScapesClips", "prepare_ruralscapes"]

FRAME_INTERVAL = 5
LABEL_NAME = re.compile(r"(?P<video>DJI_\d+)_(?P<frame>\d+)\.png$", re.IGNORECASE)


def RuralScapesClips(root: str | Path, split: str = "train") -> DiskClips:
    """A prepared RuralScapes root (``<root>/data/<clip>/origin|mask``, ``<split>.txt``)."""
    return DiskClips(root, split, "ruralscapes")


def _frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return count


def prepare_ruralscapes(source: str | Path, out: str | Path, resize: tuple[int, int] | None = (2560, 1440)) -> Path:
    """Build the prepared layout from the RuralScapes videos and labels (module docstring)."""
    source, out = Path(source), Path(out)
    videos_dir, labels_dir = source / "videos", source / "labels"
    for folder in (videos_dir, labels_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"RuralScapes folder not found: {folder}")
    videos = sorted(p for p in videos_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise ValueError(f"{videos_dir}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    labels: dict[tuple[str, int], Path] = {}
    for path in labels_dir.glob("*.png"):
        match = LABEL_NAME.search(path.name)
        if match:
            labels[(match["video"].upper(), int(match["frame"]))] = path
    table = {tuple(c): v for v, c in enumerate(RURALSCAPES.value_colors)}
    partial = start_output(out)
    splits: dict[str, list[str]] = {"train": [], "val": []}
    total = 0
    for video in videos:
        name = video.stem.upper()
        last = _frame_count(video) - 1

        def label_for(index: int, size: tuple[int, int], name: str = name) -> np.ndarray | None:
            path = labels.get((name, index))
            if path is None:
                return None
            values = colour_to_values(read_image(path, dtype=np.uint8, channels=3), table, path)
            return cv2.resize(values, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)

        start = total
        frames = decode_video(video, resize, keep=lambda i, last=last: i % FRAME_INTERVAL == 0 or i == last)
        next(frames, None)
        clips = cut_clips(
            frames,
            label_for,
            partial / "data",
            name_for=lambda local, start=start, name=name: f"{start + local}_{name}_{local}",
            frame_name=lambda index, name=name: f"segfull_{name}_{index:06d}",
            clip_length=RURALSCAPES.clip_length,
            min_length=RURALSCAPES.min_clip_length,
            drop_last=True,
            require_mask=True,
        )
        total += len(clips)
        splits["val" if name in RURALSCAPES.val_sequences else "train"].extend(clips)
    return finish_output(partial, out, splits)
