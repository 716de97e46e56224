"""Datasets: KITTI raw (Eigen/Zhou splits, velodyne ground truth), Cityscapes, and synthetic driving sequences."""

from sgdepth_pkd.data.cityscapes import CityscapesDataset, label_ids_to_train_ids
from sgdepth_pkd.data.common import AugmentConfig
from sgdepth_pkd.data.kitti import KittiRawDataset, read_split, velodyne_depth_map
from sgdepth_pkd.data.synthetic import SyntheticConfig, SyntheticDrivingDataset, generate_sequence

__all__ = [
    "AugmentConfig",
    "CityscapesDataset",
    "KittiRawDataset",
    "SyntheticConfig",
    "SyntheticDrivingDataset",
    "generate_sequence",
    "label_ids_to_train_ids",
    "read_split",
    "velodyne_depth_map",
]
