"""``make dist``: build the wheel and the sdist of the six distributions into ``dist/`` (12 artifacts).

Each project is built in an isolated environment by ``python -m build`` (its build backend, poetry-core, comes
from the package index); the artifacts are listed with their sizes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = ["shared", *(f"packages/{name}" for name in ("semstereo", "semaglue", "clearscd", "ssp", "sgdepth_pkd"))]


def main() -> int:
    out = ROOT / "dist"
    out.mkdir(exist_ok=True)
    for project in PROJECTS:
        print(f"== {project}", flush=True)
        proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT / project)], cwd=ROOT)
        if proc.returncode != 0:
            print(f"dist: building {project} failed", file=sys.stderr)
            return 1
    artifacts = sorted(out.glob("semvision_*"))
    for path in artifacts:
        print(f"{path.stat().st_size / 1024:8.0f} KiB  {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
