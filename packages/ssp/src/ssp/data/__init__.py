"""Datasets: UAVid (+VDD) and RuralScapes in the prepared layout, synthetic UAV video, torch datasets."""

from dataclasses import replace

from ssp.data.clips import ClipSource, DiskClips, read_split_list
from ssp.data.datasets import ClipDataset, FrameDataset, PairDataset
from ssp.data.ruralscapes import RuralScapesClips, prepare_ruralscapes
from ssp.data.synthetic import SyntheticClips, SyntheticConfig, write_synthetic_dataset
from ssp.data.tables import DATASETS, RURALSCAPES, UAVID, DatasetInfo, dataset_info
from ssp.data.uavid import UAVidClips, prepare_uavid


def open_source(
    data: str, split: str = "train", dataset: str = "uavid", synthetic: SyntheticConfig | None = None
) -> ClipSource:
    """``data`` = ``synthetic`` (generated clips; the val / test splits use held-out scenes, every frame labelled)
    or a prepared dataset root (``dataset``: uavid | ruralscapes)."""
    if data != "synthetic":
        return DiskClips(data, split, dataset)
    if dataset != "uavid":
        raise ValueError("--data synthetic generates UAVid classes; use --dataset uavid")
    config = synthetic or SyntheticConfig()
    if split != "train":
        config = replace(config, seed=config.seed + 1000, label_every=1)
    return SyntheticClips(config)


__all__ = [
    "DATASETS",
    "RURALSCAPES",
    "UAVID",
    "ClipDataset",
    "ClipSource",
    "DatasetInfo",
    "DiskClips",
    "FrameDataset",
    "PairDataset",
    "RuralScapesClips",
    "SyntheticClips",
    "SyntheticConfig",
    "UAVidClips",
    "dataset_info",
    "open_source",
    "prepare_ruralscapes",
    "prepare_uavid",
    "read_split_list",
    "write_synthetic_dataset",
]
