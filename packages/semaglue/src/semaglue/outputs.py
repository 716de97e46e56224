"""Atomic output files: everything is written to a temporary name in the target folder, then renamed, so an
interrupted or failed run never leaves a partial ``.npz``/``.png``/``.json``/``.csv`` behind."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path`` (same suffix), then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """``np.savez`` (uncompressed, lossless) written atomically."""
    return atomic_write(path, lambda tmp: np.savez(str(tmp), **arrays))


def save_json(path: str | Path, payload: Any) -> Path:
    """Indented JSON written atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n"))


def save_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """One row per dict (columns from the first row), written atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, write)
