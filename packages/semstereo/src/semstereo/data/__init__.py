"""Datasets: US3D (DFC2019 track 2), WHU aerial stereo, and the synthetic generator."""

from semstereo.data.splits import list_columns, read_split_list
from semstereo.data.synthetic import Scene, SceneRenderer, SyntheticConfig, SyntheticStereo, make_sample
from semstereo.data.us3d import LAS_TO_TRAIN, US3DDataset, map_las_codes, read_label
from semstereo.data.whu import WHUDataset, read_whu_disparity

__all__ = [
    "LAS_TO_TRAIN",
    "Scene",
    "SceneRenderer",
    "SyntheticConfig",
    "SyntheticStereo",
    "US3DDataset",
    "WHUDataset",
    "list_columns",
    "make_sample",
    "map_las_codes",
    "read_label",
    "read_split_list",
    "read_whu_disparity",
]
