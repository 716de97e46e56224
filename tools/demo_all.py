"""Run every package's ``demo`` (paper model, one forward pass on a generated input) and print one table."""

from __future__ import annotations

import importlib
import sys
import traceback

PACKAGES = ["semstereo", "semaglue", "clearscd", "ssp", "sgdepth_pkd"]
COLUMNS = ["package", "model", "params", "input", "outputs", "latency_ms"]


def main() -> int:
    rows, failed = [], []
    for name in PACKAGES:
        print(f"== {name} demo", flush=True)
        try:
            row = importlib.import_module(f"{name}.demo").run_demo(device="cpu")
        except Exception:
            traceback.print_exc()
            failed.append(name)
            row = {"model": "FAILED"}
        rows.append({"package": name, **row})
    cells = [[str(r.get(c, "")) if c != "params" or not r.get(c) else f"{int(r[c]):,}" for c in COLUMNS] for r in rows]
    for row in cells:
        if row[-1] and row[-1][0].isdigit():
            row[-1] = f"{float(row[-1]):.0f}"
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    print()
    print(" | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    if failed:
        print(f"\ndemo failed for: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
