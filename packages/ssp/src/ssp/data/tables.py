"""Class tables of the two datasets (``shared/data/ssp/dataset_classes.json``, from the original repository).

Raw mask values on disk: 0 = unlabelled, ``v`` = train id ``v - 1`` (see :func:`ssp.metrics.convert_labels`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DATASETS", "IMAGENET_MEAN", "IMAGENET_STD", "DatasetInfo", "dataset_info"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset's classes (train ids 0..n-1), raw-value colours, validation sequences and clip cutting."""

    name: str
    class_names: tuple[str, ...]
    value_colors: tuple[tuple[int, int, int], ...]
    val_sequences: tuple[str, ...]
    clip_length: int
    min_clip_length: int
    fps: int

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def train_id_colors(self) -> tuple[tuple[int, int, int], ...]:
        """Colour of each train id (the raw value ``id + 1``'s colour)."""
        return self.value_colors[1:]


UAVID = DatasetInfo(
    name="uavid",
    class_names=("road", "vegetation", "tree", "person", "vehicle", "water", "building", "roof"),
    value_colors=(
        (0, 0, 0),
        (128, 0, 128),
        (112, 148, 32),
        (64, 64, 0),
        (255, 16, 255),
        (0, 128, 128),
        (0, 0, 255),
        (255, 0, 0),
        (64, 160, 120),
    ),
    val_sequences=("seq16", "seq17", "seq18", "seq19", "seq20", "seq36", "seq37"),
    clip_length=100,
    min_clip_length=50,
    fps=20,
)

RURALSCAPES = DatasetInfo(
    name="ruralscapes",
    class_names=(
        "residential",
        "land",
        "forest",
        "sky",
        "fence",
        "road",
        "hill",
        "church",
        "car",
        "person",
        "haystack",
        "water",
    ),
    value_colors=(
        (0, 0, 0),
        (255, 255, 0),
        (0, 255, 0),
        (0, 127, 0),
        (0, 255, 255),
        (127, 127, 0),
        (255, 255, 255),
        (127, 127, 63),
        (255, 0, 255),
        (127, 127, 127),
        (255, 0, 0),
        (255, 127, 0),
        (0, 0, 255),
    ),
    val_sequences=("DJI_0051", "DJI_0056", "DJI_0061", "DJI_0086", "DJI_0088", "DJI_0089", "DJI_0116"),
    clip_length=50,
    min_clip_length=10,
    fps=10,
)

DATASETS: dict[str, DatasetInfo] = {"uavid": UAVID, "ruralscapes": RURALSCAPES}


def dataset_info(name: str) -> DatasetInfo:
    """The table of ``uavid`` or ``ruralscapes``."""
    if name not in DATASETS:
        raise ValueError(f"dataset: expected one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name]
