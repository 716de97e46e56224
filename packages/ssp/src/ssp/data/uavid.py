"""UAVid (video support) with the VDD label extension: ``ssp prepare-uavid`` (the authors' ``process_dataset.sh``:
``tools/extract_frames_uavid.py`` + ``tools/organize_uavid.py``) and the prepared dataset's loader.

Source layout read by :func:`prepare_uavid` (one folder per sequence, as unpacked from the official release)::

    <source>/<seq>/images.mp4            the sequence's video (every frame is decoded)
    <source>/<seq>/Labels/<NNNNNN>.png   official RGB labels; NNNNNN = the frame's index in the video
    <vdd>/<seq>/<NNNNNN>.png             optional VDD grey labels (5 = roof, 6 = water)

Steps: frames decoded (optionally resized bicubic, the authors use 2560x1440); the sequence's first frame dropped;
the rest cut into clips of 100 frames named ``{global}_{seq}_{local}`` (clips under 50 frames dropped); official
colours -> raw values (clutter 0, road 1, low vegetation 2, tree 3, human 4, moving/static car 5, building 7), VDD
water (6) where the value is 0 and roof (8) where it is 7; masks resized nearest to the frames; sequences seq16-20,
36, 37 -> ``val.txt``, the others -> ``train.txt``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from semcommon.io import read_image
from ssp.data.clips import DiskClips
from ssp.data.prepare import colour_to_values, cut_clips, decode_video, finish_output, start_output
from ssp.data.tables import UAVID

__all__ = ["OFFICIAL_COLOURS", "UAVidClips", "prepare_uavid", "uavid_label"]

OFFICIAL_COLOURS: dict[tuple[int, int, int], int] = {
    (0, 0, 0): 0, (128, 0, 0): 7, (128, 64, 128): 1, (0, 128, 0): 3, (128, 128, 0): 2, (64, 0, 128): 5,
    (192, 0, 192): 5, (64, 64, 0): 4,
}  # fmt: skip


def UAVidClips(root: str | Path, split: str = "train") -> DiskClips:
    """A prepared UAVid root (``<root>/data/<clip>/origin|mask``, ``<split>.txt``)."""
    return DiskClips(root, split, "uavid")


def uavid_label(official: Path, vdd: Path | None, size: tuple[int, int]) -> np.ndarray:
    """Raw mask values (uint8 ``H×W`` at ``size``) of one labelled frame: official colours merged with VDD."""
    values = colour_to_values(read_image(official, dtype=np.uint8, channels=3), OFFICIAL_COLOURS, official)
    if vdd is not None and vdd.is_file():
        grey = read_image(vdd, dtype=np.uint8)
        if grey.ndim != 2 or grey.shape != values.shape:
            raise ValueError(f"{vdd}: expected a grey VDD label of size {values.shape[1]}x{values.shape[0]}")
        values = np.where((grey == 6) & (values == 0), 6, values)
        values = np.where((grey == 5) & (values == 7), 8, values).astype(np.uint8)
    if values.shape != tuple(size):
        values = cv2.resize(values, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return values


def prepare_uavid(
    source: str | Path, out: str | Path, vdd: str | Path | None = None, resize: tuple[int, int] | None = (2560, 1440)
) -> Path:
    """Build the prepared layout from the UAVid videos and labels (module docstring); ``resize`` (W, H) or None."""
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise FileNotFoundError(f"UAVid source folder not found: {source}")
    sequences = sorted(p for p in source.iterdir() if (p / "images.mp4").is_file())
    if not sequences:
        raise ValueError(f"{source}: no <seq>/images.mp4 found")
    partial = start_output(out)
    splits: dict[str, list[str]] = {"train": [], "val": []}
    total = 0
    for seq_dir in sequences:
        seq = seq_dir.name

        def label_for(index: int, size: tuple[int, int], seq_dir: Path = seq_dir) -> np.ndarray | None:
            official = seq_dir / "Labels" / f"{index:06d}.png"
            if not official.is_file():
                return None
            vdd_path = Path(vdd) / seq_dir.name / f"{index:06d}.png" if vdd is not None else None
            return uavid_label(official, vdd_path, size)

        start = total
        clips = cut_clips(
            decode_video(seq_dir / "images.mp4", resize, keep=lambda i: i > 0),
            label_for,
            partial / "data",
            name_for=lambda local, start=start, seq=seq: f"{start + local}_{seq}_{local}",
            frame_name=lambda index: f"{index:06d}",
            clip_length=UAVID.clip_length,
            min_length=UAVID.min_clip_length,
        )
        total += len(clips)
        splits["val" if seq in UAVID.val_sequences else "train"].extend(clips)
    return finish_output(partial, out, splits)
