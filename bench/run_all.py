"""Run every ``bench/bench_*.py`` (and each package's ``bench/`` scripts) in turn; each prints its own table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    scripts = sorted(ROOT.glob("bench/bench_*.py")) + sorted(ROOT.glob("packages/*/bench/bench_*.py"))
    failed = [s for s in scripts if subprocess.run([sys.executable, str(s)], cwd=ROOT).returncode != 0]
    for script in failed:
        print(f"benchmark failed: {script.relative_to(ROOT)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
