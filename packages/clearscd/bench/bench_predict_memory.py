"""Peak memory and speed of ``clearscd predict`` on a large GeoTIFF pair (bounded-memory check, not a test).

Writes an uncompressed ``--size``×``--size`` RGB TIFF pair (memory-mapped, never held in memory), predicts it with
the paper model (random weights) in a child-free loop, and prints the peak resident memory next to the size of one
scene, e.g. ``python packages/clearscd/bench/bench_predict_memory.py --size 20000 --device cuda``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from clearscd.model import ClearSCD
from clearscd.predict import PredictOptions, predict_pair


def _scene(path: Path, size: int, seed: int) -> None:
    image = tifffile.memmap(str(path), shape=(size, size, 3), dtype=np.uint8, photometric="rgb")
    rng = np.random.default_rng(seed)
    for y in range(0, size, 1024):
        image[y : y + 1024] = rng.integers(0, 255, (min(1024, size - y), size, 3), dtype=np.uint8)
    image.flush()
    del image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model = ClearSCD().eval().to(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _scene(folder / "t1.tif", args.size, 0)
        _scene(folder / "t2.tif", args.size, 1)
        start = time.perf_counter()
        opts = PredictOptions(tile=args.tile, overlap=args.overlap, progress=False)
        predict_pair(model, folder / "t1.tif", folder / "t2.tif", folder / "out", opts, args.device)
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    scene_mb = args.size * args.size * 3 / 2**20
    band_mb = args.tile * args.size * 19 * 4 * 2 / 2**20
    print(f"scene {args.size}x{args.size}: one RGB image {scene_mb:.0f} MB, band buffers ~{band_mb:.0f} MB")
    print(f"peak RSS {peak_mb:.0f} MB, {seconds:.1f} s on {args.device} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
