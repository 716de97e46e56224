"""``clearscd evaluate``: the authors' test.py metric set on a dataset split, plus corrected values, labelled.

The published numbers come from test.py's aggregation (``protocol="authors"``: absent classes count 0 in mIoU,
plain mean of rounded F1, consistency means ÷ (distinct gt codes − 1), Overall_Score from rounded percentages);
``corrected`` fixes those aggregation bugs (see :mod:`clearscd.metrics`). Both are computed over the whole split
(dataset-level confusion matrices); the per-item CSV holds each pair's own values (corrected protocol).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from clearscd.data import HiUCDDataset, LsSCDDataset, SyntheticSCD
from clearscd.data.common import DataError
from clearscd.inference import Inference, check_finite
from clearscd.metrics import RES_DICT_KEYS, SCDTestMetrics
from clearscd.model.clearscd import ClearSCD
from semcommon.runtime import progress

__all__ = ["EvalResult", "evaluate_model", "format_table", "load_eval_dataset", "write_eval_outputs"]

ITEM_KEYS = ("BCD_IoU", "BCD_F1", "SEG_mIoU", "SCD_Sek")
SYNTHETIC_EVAL_SEED = 1000  # held out: training on synthetic data uses seeds < 1000


@dataclass
class EvalResult:
    """``authors`` / ``corrected``: the 14 printed numbers (%, 2 decimals) in test.py's order; ``rows``: per item."""

    authors: dict[str, float]
    corrected: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)


def load_eval_dataset(
    data: str,
    split_list: str | None = None,
    dataset: str = "hiucd",
    num_samples: int = 16,
    size: int = 128,
    tile: int | None = 512,
    raw_masks: bool = False,
) -> Dataset:
    """``data`` = "synthetic" (held-out generated pairs) or a dataset folder with a split list (default
    ``DIR/test.txt``); ``dataset`` = "hiucd" (Hi-UCD / Hi-UCD mini) or "lsscd" (scenes read as ``tile`` tiles)."""
    if data == "synthetic":
        return SyntheticSCD(num_samples=num_samples, size=size, seed=SYNTHETIC_EVAL_SEED)
    root = Path(data)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    list_path = Path(split_list) if split_list else root / "test.txt"
    if dataset == "hiucd":
        return HiUCDDataset(list_path, root, raw_masks=raw_masks)
    if dataset == "lsscd":
        return LsSCDDataset(list_path, root, tile=tile)
    raise ValueError(f"--dataset must be 'hiucd' or 'lsscd', got {dataset!r}")


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    batch = {k: torch.stack([item[k] for item in items]) for k in items[0] if k != "name"}
    batch["name"] = [item["name"] for item in items]
    return batch


@torch.no_grad()
def evaluate_model(
    model: ClearSCD,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    batch_size: int = 4,
    per_item: bool = True,
    show_progress: bool = True,
    impl: str = "fast",
    precision: str = "fp32",
    compile: bool = False,
) -> EvalResult:
    """Run the model over ``dataset`` (items of equal size per batch) and aggregate the test.py metrics.

    ``impl`` / ``precision`` / ``compile``: see :class:`clearscd.inference.Inference`."""
    num_classes = model.config.num_segclass
    kind = "Nanjing" if isinstance(dataset, LsSCDDataset) else "HiUCD"
    authors = SCDTestMetrics(num_classes, protocol="authors", dataset=kind)
    corrected = SCDTestMetrics(num_classes, protocol="corrected", dataset=kind)
    rows: list[dict[str, Any]] = []
    model.eval()
    runner = Inference(model, impl, precision, compile)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=_collate)
    for batch in progress(loader, desc="evaluate", total=len(loader), enabled=show_progress):
        imgs = torch.cat([batch["img_A"], batch["img_B"]], dim=1).to(device)
        check_finite(imgs, f"inputs {batch['name'][0]}")
        out = runner(imgs)
        arrays = (
            batch["label_SGA"].numpy(),
            batch["label_SGB"].numpy(),
            batch["label_BCD"].numpy(),
            out["seg_A"].argmax(1).cpu().numpy(),
            out["seg_B"].argmax(1).cpu().numpy(),
            torch.sigmoid(out["BCD"][:, 0]).round().long().cpu().numpy(),
        )
        authors.update(*arrays)
        corrected.update(*arrays)
        if per_item:
            for i, name in enumerate(batch["name"]):
                single = SCDTestMetrics(num_classes, protocol="corrected", dataset=kind)
                single.update(*(a[i] for a in arrays))
                summary = single.compute().summary
                rows.append({"name": name, **{k: summary[k] for k in ITEM_KEYS}})
    return EvalResult(authors.compute().summary, corrected.compute().summary, rows)


def format_table(result: EvalResult) -> str:
    """The 14 test.py numbers, authors' aggregation next to the corrected one."""
    lines = [f"{'metric (%)':<22}{'authors':>10}{'corrected':>11}"]
    for key in RES_DICT_KEYS:
        lines.append(f"{key:<22}{result.authors[key]:>10.2f}{result.corrected[key]:>11.2f}")
    return "\n".join(lines)


def _json_safe(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_eval_outputs(out_dir: str | Path, result: EvalResult, info: dict[str, Any]) -> dict[str, Path]:
    """``metrics.json`` (``metrics`` = authors' aggregation, ``corrected`` labelled, plus ``info``) and
    ``per_item.csv``; written atomically, existing files are refused."""
    out_dir = Path(out_dir)
    paths = {"metrics": out_dir / "metrics.json", "per_item": out_dir / "per_item.csv"}
    for path in paths.values():
        if path.exists():
            raise DataError(f"{path}: already exists (not overwritten; choose another --out)")
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "metrics": _json_safe(result.authors),
        "corrected": _json_safe(result.corrected),
        "note": "metrics: the authors' test.py aggregation (published protocol); corrected: absent classes "
        "excluded from means, consistency means over labelled codes seen, Overall_Score from unrounded values",
        **info,
    }
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["name", *ITEM_KEYS])
    writer.writeheader()
    writer.writerows(result.rows)
    _atomic_text(paths["metrics"], json.dumps(payload, indent=2) + "\n")
    _atomic_text(paths["per_item"], buffer.getvalue())
    return paths
