"""Torch datasets over a :class:`~ssp.data.clips.ClipSource` (spec section e, "Sampling").

- :class:`FrameDataset` — image model: every labelled frame (KD image baseline: frames with teacher logits).
- :class:`PairDataset` — video model: labelled frame t with its previous frame t-1 (KD: frames 1, 3, 5, ... of each
  clip, all with teacher logits), plus the previous -> current homography when it is known or computed with OpenCV.
- :class:`ClipDataset` — evaluation: whole clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ssp.data.clips import ClipSource
from ssp.data.transforms import VideoSample, augment_image, augment_video, load_teacher_logits, normalize_frames

__all__ = ["ClipDataset", "FrameDataset", "PairDataset"]


def _label_tensor(label: np.ndarray | None, size: tuple[int, int]) -> torch.Tensor:
    if label is None:
        return torch.full(size, 255, dtype=torch.long)
    return torch.from_numpy(np.array(label, dtype=np.int64))


class _Base(Dataset):
    def __init__(
        self,
        source: ClipSource,
        crop_size: tuple[int, int],
        train: bool,
        square_crop: bool = False,
        logits_folder: str | Path | None = None,
        skip_frames: int | None = None,
    ) -> None:
        self.source, self.crop_size, self.train, self.square_crop = source, tuple(crop_size), train, square_crop
        self.logits_folder = Path(logits_folder) if logits_folder is not None else None
        self.skip_frames = skip_frames
        if self.logits_folder is not None and not self.logits_folder.is_dir():
            raise FileNotFoundError(f"logits folder not found: {self.logits_folder}")
        if square_crop and crop_size[0] > crop_size[1]:
            raise ValueError(f"crop_size: square crops need H <= W, got {crop_size}")

    def _logits(self, clip: str, index: int) -> torch.Tensor:
        name = self.source.frame_names(clip)[index]
        return load_teacher_logits(self.logits_folder / clip / f"{name}.npz", self.source.info.n_classes)

    def _label(self, clip: str, index: int) -> np.ndarray | None:
        return self.source.read_label(clip, index) if index in self._labelled[clip] else None

    def _index_labels(self) -> None:
        self._labelled = {clip: set(self.source.labelled(clip)) for clip in self.source.clips}


class FrameDataset(_Base):
    """``{"image": 3×H×W, "label": H×W long (255 = ignore), ["teacher": C×H×W]}`` per labelled frame."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._index_labels()
        if self.logits_folder is None:
            self.samples = [(c, i) for c in self.source.clips for i in sorted(self._labelled[c])]
        else:
            step = self.skip_frames or 1
            self.samples = [
                (c, i)
                for c in self.source.clips
                for i in range(len(self.source.frame_names(c)))
                if i % step == step - 1
            ]
        if not self.samples:
            raise ValueError("dataset: no labelled frames (no mask files) in the selected split")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        clip, index = self.samples[idx]
        logits = [self._logits(clip, index)] if self.logits_folder is not None else None
        sample = VideoSample([self.source.read_frame(clip, index)], self._label(clip, index), logits)
        sample.resize(self.crop_size)
        augment_image(sample, self.crop_size, self.square_crop, self.train)
        item = {"image": normalize_frames(sample.frames)[0], "label": _label_tensor(sample.label, sample.size)}
        if sample.logits is not None:
            item["teacher"] = sample.logits[0]
        return item


class PairDataset(_Base):
    """``{"frames", "last_frames": 3×H×W, "label": H×W, "homos": 3×3, "has_homos": bool, ["teacher",
    "last_teacher": C×H×W]}`` per (previous, current) pair.

    ``opencv_homos`` (akaze | sift | orb | None) computes the homography on the augmented uint8 frames as the
    authors' CPU path does; otherwise the source's known homography (synthetic data) is carried through the
    augmentation, and ``has_homos`` is False when neither exists (the model then registers the pair itself).
    """

    def __init__(self, *args, opencv_homos: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._index_labels()
        self.opencv = None
        if opencv_homos is not None:
            from ssp.model.registration import OpenCVRegistrator

            self.opencv = OpenCVRegistrator(opencv_homos)
        if self.logits_folder is None:
            self.samples = [(c, i) for c in self.source.clips for i in sorted(self._labelled[c]) if i >= 1]
        else:
            step = self.skip_frames or 1
            self.samples = [
                (c, i)
                for c in self.source.clips
                for i in range(1, len(self.source.frame_names(c)))
                if i % step == 1 % step
            ]
        if not self.samples:
            raise ValueError("dataset: no labelled frame with a previous frame in the selected split")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        clip, index = self.samples[idx]
        frames = [self.source.read_frame(clip, index - 1), self.source.read_frame(clip, index)]
        if frames[0].shape != frames[1].shape:
            raise ValueError(f"clip {clip}: frames {index - 1} and {index} differ in size")
        logits = None
        if self.logits_folder is not None:
            logits = [self._logits(clip, index - 1), self._logits(clip, index)]
        sample = VideoSample(frames, self._label(clip, index), logits)
        sample.resize(self.crop_size)
        augment_video(sample, self.crop_size, self.square_crop, self.train)
        normalised = normalize_frames(sample.frames)
        known = self.source.homography(clip, index)
        if self.opencv is not None:
            homos, has = self.opencv.estimate(sample.frames[0], sample.frames[1]), True
        elif known is not None:
            homos, has = sample.transform_homography(known), True
        else:
            homos, has = np.eye(3), False
        item = {
            "last_frames": normalised[0],
            "frames": normalised[1],
            "label": _label_tensor(sample.label, sample.size),
            "homos": torch.from_numpy(np.asarray(homos, np.float32)),
            "has_homos": torch.tensor(has),
        }
        if sample.logits is not None:
            item["last_teacher"], item["teacher"] = sample.logits
        return item


class ClipDataset(Dataset):
    """Whole clips resized to ``size``: ``{"frames": T×3×H×W, "images": T×H×W×3 uint8, "labels": T×H×W (255 where
    unlabelled), "labelled": T bool, "homos": (T-1)×3×3 or None, "clip": name, "names": frame ids}``."""

    def __init__(self, source: ClipSource, size: tuple[int, int]) -> None:
        self.source, self.size = source, tuple(size)

    def __len__(self) -> int:
        return len(self.source.clips)

    def __getitem__(self, idx: int) -> dict[str, object]:
        clip = self.source.clips[idx]
        names = self.source.frame_names(clip)
        labelled = set(self.source.labelled(clip))
        frames = [self.source.read_frame(clip, i) for i in range(len(names))]
        for i, frame in enumerate(frames[1:], 1):
            if frame.shape != frames[0].shape:
                raise ValueError(f"clip {clip}: frame {names[i]} is {frame.shape[1]}x{frame.shape[0]}, frame "
                                 f"{names[0]} {frames[0].shape[1]}x{frames[0].shape[0]}")  # fmt: skip
        labels, homos = [], []
        for i in range(len(names)):
            sample = VideoSample([frames[i]], self.source.read_label(clip, i) if i in labelled else None)
            sample.resize(self.size)
            frames[i] = sample.frames[0]
            labels.append(_label_tensor(sample.label, self.size))
            known = self.source.homography(clip, i) if i else None
            if known is not None:
                homos.append(torch.from_numpy(sample.transform_homography(known).astype(np.float32)))
        return {
            "clip": clip,
            "names": names,
            "frames": normalize_frames(frames),
            "images": np.stack(frames),
            "labels": torch.stack(labels),
            "labelled": torch.tensor([i in labelled for i in range(len(names))]),
            "homos": torch.stack(homos) if len(homos) == len(names) - 1 and homos else None,
        }
