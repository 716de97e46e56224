"""Render ``bench/results/*.json`` as ``bench/README.md`` (tables) and ``bench/latency.png`` (latency vs size).

For every machine file, the latest row of each (package, case, impl, device) is shown. The plot has one panel per
(package, device): median latency (log scale) against input megapixels, one line per implementation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from semcommon.bench import TABLE_HEADER, BenchRow, format_row
from semcommon.viz import save_png

ROOT = Path(__file__).resolve().parent.parent
COLOURS = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def latest_rows(data: dict[str, Any]) -> list[BenchRow]:
    """The most recent row of each (package, case, size, impl, device) in one machine's results."""
    rows: dict[tuple[str, str, str, str, str], BenchRow] = {}
    for run in data["runs"]:
        for raw in run["rows"]:
            row = BenchRow(**raw)
            key = (row.package, row.case, row.size, row.impl, row.device)
            rows.pop(key, None)
            rows[key] = row
    return sorted(rows.values(), key=lambda r: (r.package, r.device, r.pixels, r.case))


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`bench/render.py` from `bench/results/*.json`). Speed-up = the reference path's median",
        "over this row's median, measured in the same process on the same inputs; 'max abs diff' is against the",
        "reference path's outputs (exact rows must be within the package's parity tolerance: 'ok').",
        "",
    ]
    for name, data in sorted(results.items()):
        info = data["machine"]
        lines += [
            f"## {name}",
            "",
            f"CPU {info['cpu']} ({info['cpu_capability']}, {info['cores']} cores, {info['threads']} threads), "
            f"GPU {info['gpu'] or 'none'}, torch {info['torch']}, Python {info['python']}. "
            f"Last run {data['runs'][-1]['time']}.",
            "",
            TABLE_HEADER,
            *(format_row(row) for row in latest_rows(data)),
            "",
        ]
    lines.append("![latency vs input size](latency.png)")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, Any]], width: int = 480, height: int = 360) -> np.ndarray:
    """One log-log panel per (machine, package, device): median ms vs megapixels, a line per (case, impl)."""
    panels: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for name, data in sorted(results.items()):
        for row in latest_rows(data):
            title = f"{row.package} {row.device} ({name[:28]})"
            panels[title][f"{row.case}: {row.impl}"].append((row.pixels / 1e6, row.median_ms))
    if not panels:
        raise SystemExit("bench/render.py: no results in bench/results (run make bench first)")
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    canvas = np.full((rows * height, columns * width, 3), 255, np.uint8)
    for index, (title, lines) in enumerate(panels.items()):
        top, left = (index // columns) * height, (index % columns) * width
        points = [p for line in lines.values() for p in line]
        xs = np.log10([max(p[0], 1e-4) for p in points])
        ys = np.log10([max(p[1], 1e-3) for p in points])
        x0, x1 = xs.min() - 0.1, xs.max() + 0.1
        y0, y1 = ys.min() - 0.1, ys.max() + 0.1
        box = (left + 50, top + 30, left + width - 15, top + height - 40)
        legend_top = box[1] + 14

        def to_px(
            point: tuple[float, float], box: tuple[int, int, int, int], span: tuple[float, ...]
        ) -> tuple[int, int]:
            u = (math.log10(max(point[0], 1e-4)) - span[0]) / (span[1] - span[0])
            v = (math.log10(max(point[1], 1e-3)) - span[2]) / (span[3] - span[2])
            return int(box[0] + u * (box[2] - box[0])), int(box[3] - v * (box[3] - box[1]))

        cv2.rectangle(canvas, box[:2], box[2:], (0, 0, 0), 1)
        cv2.putText(canvas, title, (left + 8, top + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        for label, pos in (
            (f"{10**y0:.3g} ms", (left + 2, box[3])),
            (f"{10**y1:.3g} ms", (left + 2, box[1] + 10)),
            (f"{10**x0:.2g} MP", (box[0], box[3] + 16)),
            (f"{10**x1:.2g} MP", (box[2] - 50, box[3] + 16)),
        ):
            cv2.putText(canvas, label, pos, cv2.FONT_HERSHEY_SIMPLEX, 0.33, (60, 60, 60), 1, cv2.LINE_AA)
        for number, (impl, line) in enumerate(sorted(lines.items())):
            colour = COLOURS[number % len(COLOURS)][::-1]
            pts = [to_px(p, box, (x0, x1, y0, y1)) for p in sorted(line)]
            for a, b in itertools.pairwise(pts):
                cv2.line(canvas, a, b, colour, 2, cv2.LINE_AA)
            for p in pts:
                cv2.circle(canvas, p, 3, colour, -1, cv2.LINE_AA)
            cv2.putText(canvas, impl, (box[0] + 6, legend_top + 12 * number), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1)
    return canvas[..., ::-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args(argv)
    results = {path.stem: json.loads(path.read_text()) for path in sorted(args.results.glob("*.json"))}
    if not results:
        print(f"bench/render.py: no results in {args.results} (run make bench first)")
        return 1
    (args.out / "README.md").write_text(markdown(results))
    save_png(args.out / "latency.png", plot(results))
    print(f"wrote {args.out / 'README.md'} and {args.out / 'latency.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
