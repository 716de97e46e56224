"""Open the dataset a command names: ``--data synthetic`` or a dataset root (US3D or WHU, told by the split list)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch.utils.data import Dataset

from semstereo.config import DataConfig
from semstereo.data.splits import list_columns
from semstereo.data.synthetic import SyntheticConfig, SyntheticStereo
from semstereo.data.us3d import US3DDataset
from semstereo.data.whu import WHUDataset

Split = Literal["train", "test"]
#: Seeds of the generated splits (train and test tiles never coincide).
SYNTHETIC_SEEDS = {"train": 0, "test": 1}


def dataset_kind(data: str, config: DataConfig, split: Split = "train") -> str:
    """``"synthetic"``, ``"us3d"`` or ``"whu"`` for ``--data`` (``config.dataset="auto"`` reads the split list)."""
    if data == "synthetic":
        return "synthetic"
    if config.dataset != "auto":
        return config.dataset
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found (or use --data synthetic)")
    list_file = config.train_list if split == "train" else config.test_list
    return "us3d" if list_columns(root / list_file) == 4 else "whu"


def open_dataset(data: str, config: DataConfig, split: Split, list_file: str | None = None) -> Dataset:
    """The samples of ``split`` (training crops apply to the train split only; test tiles are read whole)."""
    kind = dataset_kind(data, config, split)
    if kind == "synthetic":
        height, width = config.synthetic_size
        synthetic = SyntheticConfig(height=height, width=width, dmin=config.dmin, dmax=config.dmax)
        length = config.synthetic_train if split == "train" else config.synthetic_test
        return SyntheticStereo(synthetic, length=length, seed=SYNTHETIC_SEEDS[split])
    if list_file is None:
        list_file = config.train_list if split == "train" else config.test_list
    crop = config.crop if split == "train" else None
    random_crop = config.random_crop and split == "train"
    if kind == "us3d":
        return US3DDataset(data, list_file, label_codes=config.label_codes, crop=crop, random_crop=random_crop)
    return WHUDataset(data, list_file, crop=crop, random_crop=random_crop)
