"""The prepared on-disk layout both datasets share, read as a :class:`ClipSource`.

::

    <root>/train.txt, val.txt, test.txt     clip folder names, one per line (duplicates removed)
    <root>/data/<clip>/origin/<frame>.png   RGB frames (uint8)
    <root>/data/<clip>/mask/<frame>.png     single-channel uint8 raw mask values (0 unlabelled, v = train id v-1);
                                            a frame is labelled iff its mask file exists

A :class:`ClipSource` hands out frames (uint8 ``H×W×3``) and labels (train ids, 255 = ignore) by clip and index;
the synthetic generator implements the same interface (plus the true homographies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semcommon.io import read_image
from ssp.data.tables import DatasetInfo, dataset_info
from ssp.metrics import convert_labels

__all__ = ["ClipSource", "DiskClips", "read_split_list"]


class ClipSource:
    """Clips of frames with sparse labels. Subclasses fill ``info``, ``clips`` and the three readers."""

    info: DatasetInfo
    clips: list[str]

    def frame_names(self, clip: str) -> list[str]:
        """Frame ids (file stems) of a clip in temporal order."""
        raise NotImplementedError

    def read_frame(self, clip: str, index: int) -> np.ndarray:
        """uint8 RGB ``H×W×3``."""
        raise NotImplementedError

    def labelled(self, clip: str) -> list[int]:
        """Indices of the labelled frames of a clip."""
        raise NotImplementedError

    def read_label(self, clip: str, index: int) -> np.ndarray:
        """uint8 train ids ``H×W`` (255 = ignore) of a labelled frame."""
        raise NotImplementedError

    def homography(self, clip: str, index: int) -> np.ndarray | None:
        """Known homography frame ``index-1`` -> ``index`` pixels (``3×3``), None when unknown (real data)."""
        return None


def read_split_list(path: Path) -> list[str]:
    """Clip names of a split list: one per line, trailing newline removed, blank lines skipped, duplicates removed
    (first occurrence kept)."""
    if not path.is_file():
        raise FileNotFoundError(f"split list not found: {path}")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text split list ({exc.reason})") from exc
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise ValueError(f"{path}: empty split list")
    for name in names:
        if "/" in name or name in (".", ".."):
            raise ValueError(f"{path}: bad clip name {name!r} (expected a folder name under data/)")
    return list(dict.fromkeys(names))


class DiskClips(ClipSource):
    """A prepared UAVid / RuralScapes root (layout in the module docstring); ``split``: train | val | test."""

    def __init__(self, root: str | Path, split: str = "train", dataset: str = "uavid") -> None:
        self.root = Path(root)
        self.info = dataset_info(dataset)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {self.root}")
        if split not in ("train", "val", "test"):
            raise ValueError(f"split: expected train | val | test, got {split!r}")
        self.clips = read_split_list(self.root / f"{split}.txt")
        self._frames: dict[str, list[str]] = {}
        for clip in self.clips:
            origin = self.root / "data" / clip / "origin"
            if not origin.is_dir():
                raise FileNotFoundError(f"clip folder not found: {origin} (listed in {split}.txt)")
            names = sorted(p.stem for p in origin.glob("*.png"))
            if not names:
                raise ValueError(f"{origin}: no .png frames")
            self._frames[clip] = names

    def frame_names(self, clip: str) -> list[str]:
        return self._frames[clip]

    def _frame_path(self, clip: str, index: int) -> Path:
        return self.root / "data" / clip / "origin" / f"{self._frames[clip][index]}.png"

    def _mask_path(self, clip: str, index: int) -> Path:
        return self.root / "data" / clip / "mask" / f"{self._frames[clip][index]}.png"

    def read_frame(self, clip: str, index: int) -> np.ndarray:
        return read_image(self._frame_path(clip, index), dtype=np.uint8, channels=3)

    def labelled(self, clip: str) -> list[int]:
        return [i for i in range(len(self._frames[clip])) if self._mask_path(clip, i).is_file()]

    def read_label(self, clip: str, index: int) -> np.ndarray:
        path = self._mask_path(clip, index)
        mask = read_image(path)
        if mask.ndim != 2 or mask.dtype != np.uint8:
            raise ValueError(
                f"{path}: expected a single-channel uint8 raw mask, got {mask.dtype} {mask.shape} "
                "(colour labels must be converted first: ssp prepare-uavid / prepare-ruralscapes)"
            )
        frame_path = self._frame_path(clip, index)
        frame = read_image(frame_path, dtype=np.uint8, channels=3)
        if frame.shape[:2] != mask.shape:
            raise ValueError(f"{path}: mask {mask.shape[1]}x{mask.shape[0]} does not match its frame {frame_path} "
                             f"({frame.shape[1]}x{frame.shape[0]})")  # fmt: skip
        return convert_labels(mask, self.info.name).astype(np.uint8)
