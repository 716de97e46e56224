"""Run one pytest process per package and print one line each, then an overall line.

The overall line names the torch version, the CPU capability (``torch.backends.cpu.get_cpu_capability()``) and the
parity device, so a failure report says which backend it came from; skipped tests are grouped by reason. Exit
status is non-zero when any package fails, errors, or runs no test (pytest exit code 5).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch

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
SKIPPED = re.compile(r"^SKIPPED \[(\d+)\] [^:]+(?::\d+)?: (.*)$")
PACKAGE_NAME = re.compile(r"\b(semstereo|semaglue|clearscd|ssp|sgdepth_pkd)\b")


def backend() -> str:
    device = os.environ.get("SEMVISION_DEVICE", "cpu") or "cpu"
    return f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, device {device}"


def main() -> int:
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    skip_reasons: Counter[str] = Counter()
    skip_packages: dict[str, set[str]] = {}
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
        for line in lines:
            match = SKIPPED.match(line)
            if match:
                reason = PACKAGE_NAME.sub("<package>", match.group(2))
                skip_reasons[reason] += int(match.group(1))
                skip_packages.setdefault(reason, set()).add(name)
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
    for reason, count in skip_reasons.most_common():
        print(f"skipped {count} ({', '.join(sorted(skip_packages[reason]))}): {reason}")
    if any("parity" in reason for reason in skip_reasons):
        print("PARITY NOT CHECKED for the packages above: see `make fixtures` in the README")
    print(f"semvision: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped [{backend()}]")
    if bad:
        print(f"failing suites: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
