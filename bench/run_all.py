"""Run every ``bench/bench_*.py`` and each package's ``bench/bench_*.py`` in turn, then render the results.

Extra arguments (e.g. ``--sizes small --repeats 3``) are passed to every script built on
``semcommon.bench.add_bench_arguments``; each prints its own table and appends its rows to
``bench/results/<machine>.json``; ``bench/render.py`` then writes ``bench/README.md`` and ``bench/latency.png``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    scripts = sorted(ROOT.glob("bench/bench_*.py")) + sorted(ROOT.glob("packages/*/bench/bench_*.py"))
    failed = []
    for script in scripts:
        extra = argv if "add_bench_arguments" in script.read_text() else []
        print(f"== {script.relative_to(ROOT)} {' '.join(extra)}", flush=True)
        if subprocess.run([sys.executable, str(script), *extra], cwd=ROOT).returncode != 0:
            failed.append(script)
    render = subprocess.run([sys.executable, str(ROOT / "bench" / "render.py")], cwd=ROOT).returncode
    for script in failed:
        print(f"benchmark failed: {script.relative_to(ROOT)}", file=sys.stderr)
    return 1 if failed or render else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
