"""Configuration of ClearSCD: a dataclass mirroring the authors' ``configs/hiucd*/ours.json`` (paper defaults).

Every key of the authors' JSON is a field here, with the value of ``configs/hiucd_mini/ours.json`` as default, so a
config file of theirs loads unchanged with :meth:`ClearSCDConfig.from_json`. Their decorative separator keys (made
only of ``/`` or ``*`` characters) are skipped; any other unknown key is an error naming the key.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ClearSCDConfig"]

_BACKBONES = ("efficientnet-b0",)
_FUSIONS = ("diff", "concat")


def is_separator(key: str) -> bool:
    """The authors' JSON files contain decorative keys such as ``"//////"`` or ``"*****"``."""
    stripped = key.strip()
    return bool(stripped) and set(stripped) <= {"/", "*", "-", "=", "#", " "}


@dataclass
class ClearSCDConfig:
    """All options of ``ours.json`` (paper configuration by default).

    Model-relevant options: ``backbone``, ``num_segclass``, ``downsample_seg``, ``bcd_convs_num``, ``fusion``,
    ``proj_dim`` (channel count of the SACL queues; must equal the decoder width ``decoder_segmentation_channels``,
    128), ``queue_len``,
    ``enqueue_len``, ``with_sacl``, ``local_contrast``, ``global_contrast``, ``contrast_weight``, ``temperature``,
    ``sample_num``, ``hard_sampling``, ``representive_sample_key``, ``confidence``, ``with_bscc``,
    ``bscc_with_label``, ``bscc_weight``, ``only_bcd``, ``only_seg``. The rest describe training and data and are kept
    so that a configuration round-trips.
    """

    only_bcd: bool = False
    only_seg: bool = False
    model: str = "ClearSCD"
    backbone: str = "efficientnet-b0"
    pretrained: bool = True
    num_channel: int = 3
    num_segclass: int = 9
    downsample_seg: bool = True
    bcd_convs_num: int = 3
    fusion: str = "diff"
    seg_pretrain: bool = False
    separate_val_seg: bool = False
    with_sacl: bool = True
    with_bscc: bool = True
    bscc_with_label: bool = False
    bscc_weight: float = 0.1
    with_colorjit: bool = False
    warmup_epoch: int = 1
    proj_dim: int = 128
    local_contrast: bool = True
    contrast_weight: float = 0.1
    temperature: float = 0.1
    sample_num: int = 1024
    global_contrast: bool = True
    queue_len: int = 512
    enqueue_len: int = 64
    hard_sampling: bool = True
    representive_sample_key: bool = False
    confidence: float = 0.95
    num_workers: int = 2
    val_num_workers: int = 2
    batch_size: int = 8
    val_batch_size: int = 8
    epochs: int = 100
    learning_rate: float = 0.00025
    momentum: float = 0.9
    weight_decay: float = 0.0005
    lr_scheduler: str = "step"
    size: int = 512
    dataset: str = "HiUCD"
    train_txt_path: str = "./txt/train_HiUCD_mini.txt"
    val_txt_path: str = "./txt/val_HiUCD_mini.txt"
    test_txt_path: str = "./txt/test_HiUCD_mini.txt"
    result_dir: str = "./results/hiucd_mini"
    resume: str | None = None
    print_step: int = 50
    # test.py reads these two from its config; they are absent from ours.json (spec i.8).
    with_cl: bool = True
    with_bcl: bool = False
    # Ours (not in ours.json): FPN widths; the paper uses 256 / 128. Smaller widths serve the CPU demo only.
    decoder_pyramid_channels: int = 256
    decoder_segmentation_channels: int = 128

    def __post_init__(self) -> None:
        if self.model != "ClearSCD":
            raise ValueError(f"config 'model': only 'ClearSCD' is implemented, got {self.model!r}")
        if self.backbone not in _BACKBONES:
            raise ValueError(f"config 'backbone': only {_BACKBONES} is implemented, got {self.backbone!r}")
        if self.fusion not in _FUSIONS:
            raise ValueError(f"config 'fusion' must be one of {_FUSIONS}, got {self.fusion!r}")
        if self.num_segclass < 2:
            raise ValueError(f"config 'num_segclass' must be >= 2, got {self.num_segclass}")
        for key in ("decoder_pyramid_channels", "decoder_segmentation_channels"):
            if getattr(self, key) < 32 or getattr(self, key) % 32:
                raise ValueError(
                    f"config '{key}' must be a positive multiple of 32 (GroupNorm(32)), got {getattr(self, key)}"
                )
        if self.proj_dim != self.decoder_segmentation_channels:
            raise ValueError(
                f"config 'proj_dim' must equal the decoder width {self.decoder_segmentation_channels} (the SACL keys "
                f"are decoder features), got {self.proj_dim}"
            )
        if self.queue_len % self.enqueue_len:
            raise ValueError(
                f"config 'queue_len' ({self.queue_len}) must be a multiple of 'enqueue_len' ({self.enqueue_len})"
            )
        if self.only_bcd:
            raise ValueError(
                "config 'only_bcd': the deep CVAPS change head needs the semantic logits (the original crashes)"
            )
        if self.only_seg and self.with_bscc:
            raise ValueError("config 'only_seg' needs 'with_bscc': false (BSCC uses the change head's output)")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> ClearSCDConfig:
        """Build from a dict of ``ours.json`` keys; separator keys are skipped, other unknown keys raise."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in values if k not in names and not is_separator(k) and k != "congfig_name"]
        if unknown:
            raise ValueError(f"{source}: unknown config key(s) {unknown}")
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_json(cls, path: str | Path) -> ClearSCDConfig:
        """Read one of the authors' JSON configs (e.g. ``configs/hiucd_mini/ours.json``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of config keys")
        return cls.from_dict(values, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
