"""Data: Hi-UCD / Hi-UCD mini, LsSCD (large scenes as tiles), synthetic bi-temporal scenes, paired augmentation."""

from clearscd.data.common import DataError, SplitEntry, read_split_list, reroot
from clearscd.data.hiucd import HiUCDDataset, clip_tiles, deal_hiucd, prepare_hiucd
from clearscd.data.lsscd import LsSCDDataset
from clearscd.data.synthetic import SyntheticSCD, make_scene, write_hiucd_layout
from clearscd.data.transforms import PairAugment

__all__ = [
    "DataError",
    "HiUCDDataset",
    "LsSCDDataset",
    "PairAugment",
    "SplitEntry",
    "SyntheticSCD",
    "clip_tiles",
    "deal_hiucd",
    "make_scene",
    "prepare_hiucd",
    "read_split_list",
    "reroot",
    "write_hiucd_layout",
]
