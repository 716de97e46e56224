"""``make dist-check``: every package's wheel, installed alone, works.

For each of the five packages in turn: a new virtual environment gets only ``semvision-common`` and that package's
wheel from ``dist/`` plus their declared dependencies from the package index, then runs the package's CLI
``--help`` and one real command on generated input. A missing dependency or package-data file shows here.

torch and torchvision (several GB) are installed once into ``.dist-check/base`` and made visible to each package
environment through a ``.pth`` file, so pip sees them as installed; nothing else of the base is visible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".dist-check"
PACKAGES = {  # distribution -> (CLI, a real command on generated data, run in an empty folder)
    "semvision-semstereo": ("semstereo", ["demo", "--steps", "2", "--out", "demo"]),
    "semvision-semaglue": (
        "semaglue",
        [
            *("train", "--data", "synthetic", "--max-steps", "1", "--batch-size", "1", "--run-dir", "run"),
            *("--quiet", "--set", "matcher.n_layers=1", "--set", "data.height=96", "--set", "data.width=128"),
            *("--set", "features.max_keypoints=64", "--set", "data.num_pairs=4"),
        ],
    ),
    "semvision-clearscd": ("clearscd", ["demo", "--steps", "2", "--out", "demo"]),
    "semvision-ssp": ("ssp", ["demo", "--image-steps", "2", "--video-steps", "2", "--out", "demo"]),
    "semvision-sgdepth-pkd": ("sgdepth-pkd", ["demo", "--steps", "2", "--stage2-steps", "1", "--out", "demo"]),
}


def run(command: list[str], cwd: Path | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def site_packages(venv: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.check_output([str(venv / "bin" / "python"), "-c", code], text=True).strip())


def base_environment() -> Path:
    base = WORK / "base"
    python = base / "bin" / "python"
    ready = python.is_file() and subprocess.run([str(python), "-c", "import torch, torchvision"]).returncode == 0
    if not ready:
        shutil.rmtree(base, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(base)])
        run([str(base / "bin" / "python"), "-m", "pip", "install", "-q", "torch>=2.1", "torchvision>=0.16"])
    return base


def wheel(distribution: str) -> Path:
    found = sorted((ROOT / "dist").glob(f"{distribution.replace('-', '_')}-*.whl"))
    if not found:
        raise FileNotFoundError(f"no wheel of {distribution} in dist/ (run `make dist`)")
    return found[-1]


def check(distribution: str, cli: str, command: list[str], base: Path) -> float:
    venv = WORK / cli
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)])
    (site_packages(venv) / "_semvision_torch.pth").write_text(f"{site_packages(base)}\n")
    start = time.perf_counter()
    run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            str(wheel("semvision-common")),
            str(wheel(distribution)),
        ]
    )
    seconds = time.perf_counter() - start
    scratch = venv / "scratch"
    scratch.mkdir()
    run([str(venv / "bin" / cli), "--help"], cwd=scratch)
    run([str(venv / "bin" / cli), *command], cwd=scratch)
    if not any(scratch.rglob("*.json")):
        raise RuntimeError(f"{cli} {' '.join(command)} wrote no JSON output")
    return seconds


def main() -> int:
    WORK.mkdir(exist_ok=True)
    base = base_environment()
    failed = []
    for distribution, (cli, command) in PACKAGES.items():
        try:
            seconds = check(distribution, cli, command, base)
            print(
                f"{distribution}: installed alone in {seconds:.0f} s; `{cli} --help` and `{cli} {' '.join(command)}` ok"
            )
        except (RuntimeError, FileNotFoundError) as exc:
            failed.append(distribution)
            print(f"{distribution}: FAILED: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
