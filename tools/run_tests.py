"""Run one pytest process per package and print one line each, then an overall line.

Exit status is non-zero when any package fails, errors, or runs no test (pytest exit code 5).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITES = [
    ("semcommon", "shared/tests"),
    ("semstereo", "packages/semstereo/tests"),
    ("semaglue", "packages/semaglue/tests"),
    ("clearscd", "packages/clearscd/tests"),
    ("ssp", "packages/ssp/tests"),
    ("sgdepth_pkd", "packages/sgdepth_pkd/tests"),
]
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def main() -> int:
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    bad = []
    for name, path in SUITES:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", path, "-q", "-p", "no:cacheprovider", "-rfEs"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        lines = [line for line in proc.stdout.strip().splitlines() if line.strip()]
        counts: dict[str, int] = {}
        for number, kind in COUNT.findall(lines[-1] if lines else ""):
            kind = "errors" if kind.startswith("error") else kind
            counts[kind] = counts.get(kind, 0) + int(number)
        totals["passed"] += counts.get("passed", 0)
        totals["failed"] += counts.get("failed", 0) + counts.get("errors", 0)
        totals["skipped"] += counts.get("skipped", 0)
        summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no tests ran"
        if proc.returncode != 0:
            bad.append(name)
            sys.stdout.write(proc.stdout[-20000:] + proc.stderr[-5000:] + "\n")
            if proc.returncode == 5:
                summary = "no tests ran (pytest exit 5)"
        print(f"{name}: {summary} ({seconds:.0f} s)", flush=True)
    print(f"semvision: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    if bad:
        print(f"failing suites: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
