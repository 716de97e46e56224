"""Datasets: UAVid (+VDD) and RuralScapes in the prepared layout, synthetic UAV video, torch datasets."""

from ssp.data.clips import ClipSource, DiskClips, read_split_list
from ssp.data.datasets import ClipDataset, FrameDataset, PairDataset
from ssp.data.ruralscapes import RuralScapesClips, prepare_ruralscapes
from ssp.data.synthetic import SyntheticClips, SyntheticConfig, homography_flow, write_synthetic_dataset
from ssp.data.tables import DATASETS, RURALSCAPES, UAVID, DatasetInfo, dataset_info
from ssp.data.uavid import UAVidClips, prepare_uavid

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
    "homography_flow",
    "prepare_ruralscapes",
    "prepare_uavid",
    "read_split_list",
    "write_synthetic_dataset",
]
