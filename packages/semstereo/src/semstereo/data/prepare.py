"""``semstereo prepare-us3d``: the preparation the authors' loader assumes but their repository does not contain.

The DFC2019 track-2 class maps hold LAS codes (2 ground, 5 trees, 6 building, 9 water, 17 bridge, 65 unlabelled);
the network is trained on ids 0..5. This copies every pair of the given split lists to a new root (same relative
paths, RGB and disparity files copied unchanged) with the ``*_LEFT_CLS.tif`` maps remapped (float32, as the
loader reads them), plus the split lists. The new root is built in a temporary folder and renamed at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semcommon.io import read_image, write_image
from semstereo.data.splits import read_split_list, resolve
from semstereo.data.us3d import map_las_codes


def prepare_us3d(root: str | Path, out: str | Path, lists: Sequence[str] = ("train.txt", "val.txt", "test.txt")) -> int:
    """Convert the pairs of ``lists`` under ``root`` into ``out`` (which must not exist); returns the pair count."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    if out.exists():
        raise FileExistsError(f"{out}: exists (choose a new folder)")
    rows_per_list = {name: read_split_list(root / name, 4) for name in lists}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    done: set[str] = set()
    try:
        for name, rows in rows_per_list.items():
            for row in rows:
                for relative in row[:3]:
                    if relative not in done:
                        target = resolve(staging, relative)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        source = resolve(root, relative)
                        if not source.is_file():
                            raise FileNotFoundError(f"{source}: not found (listed in {root / name})")
                        shutil.copyfile(source, target)
                        done.add(relative)
                if row[3] not in done:
                    source = resolve(root, row[3])
                    raw = read_image(source)
                    write_image(resolve(staging, row[3]), map_las_codes(raw, source).astype(np.float32))
                    done.add(row[3])
            shutil.copyfile(root / name, staging / name)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sum(len(rows) for rows in rows_per_list.values())
