"""``sgdepth-pkd prepare-kitti``: the preparation the authors' scripts do, without downloading anything.

1. ``--archives DIR --list kitti_archives_to_download.txt``: unzip the listed archives found in DIR into ``--root``
   (the KITTI raw layout; download them yourself from the URLs in the list).
2. ``--split FILE``: project the velodyne ground truth of every split line and write ``--out`` (gt_depths.npz).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sgdepth_pkd.data.kitti import export_gt_depths, extract_archives, read_split

__all__ = ["add_prepare_arguments", "run_prepare_kitti"]


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="KITTI raw root (created when unzipping)")
    parser.add_argument("--archives", help="folder holding the downloaded .zip archives")
    parser.add_argument("--list", help="archive list (one URL or file name per line)")
    parser.add_argument("--split", help="split list whose velodyne ground truth to export")
    parser.add_argument("--out", help="output gt_depths.npz (default ROOT/gt_depths.npz)")


def run_prepare_kitti(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not args.archives and not args.split:
        raise ValueError("give --archives/--list to unzip, --split to export ground truth, or both")
    if args.archives:
        if not args.list:
            raise ValueError("--list: required with --archives")
        list_path = Path(args.list)
        if not list_path.is_file():
            raise FileNotFoundError(f"{list_path}: archive list not found")
        names = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
        missing = extract_archives(args.archives, names, root)
        print(f"unzipped {len(names) - len(missing)} of {len(names)} archives into {root}")
        if missing:
            print(f"not found in {args.archives}: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    if args.split:
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: KITTI root folder not found")
        out = Path(args.out) if args.out else root / "gt_depths.npz"
        items = read_split(args.split)
        export_gt_depths(root, items, out)
        print(f"wrote {len(items)} ground-truth depth maps to {out}")
    return 0
