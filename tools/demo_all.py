"""``make demo``: run the five package demos one after another, then one summary table.

Each ``<pkg> demo --out runs/demo-<pkg>`` generates synthetic data, trains its paper model briefly on the CPU,
evaluates it next to a classical baseline on held-out data and writes ``metrics.json`` (model, baseline, primary
metric) and ``demo.png``. The table shows the primary metric of both and whether the model wins.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["semstereo", "semaglue", "clearscd", "ssp", "sgdepth_pkd"]
COLUMNS = ["package", "primary metric", "model", "baseline", "model wins", "seconds"]


def summary_row(name: str, metrics_file: Path) -> list[str]:
    """One table row from a demo's ``metrics.json``."""
    data = json.loads(metrics_file.read_text())
    metric, higher = data["primary"]["metric"], bool(data["primary"]["higher_is_better"])
    model, baseline = float(data["model"][metric]), float(data["baseline"][metric])
    wins = model > baseline if higher else model < baseline
    arrow = "higher" if higher else "lower"
    return [
        name,
        f"{metric} ({arrow} is better)",
        f"{model:.4g}",
        f"{baseline:.4g}",
        "yes" if wins else "NO",
        f"{float(data['seconds']):.0f}",
    ]


def main() -> int:
    rows, failed = [], []
    for index, name in enumerate(PACKAGES, 1):
        out = ROOT / "runs" / f"demo-{name}"
        print(f"== [{index}/{len(PACKAGES)}] {name} demo -> {out.relative_to(ROOT)}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", name, "demo", "--out", str(out)], cwd=ROOT)
        metrics_file = out / "metrics.json"
        if proc.returncode != 0 or not metrics_file.is_file():
            failed.append(name)
            rows.append([name, "FAILED", "", "", "", f"{time.perf_counter() - start:.0f}"])
            continue
        rows.append(summary_row(name, metrics_file))
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(COLUMNS)]
    print()
    print(" | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    if failed:
        print(f"\ndemo failed for: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
