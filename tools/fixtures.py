"""``make fixtures FIXTURES_FROM=<dir|archive>``: install the parity fixtures into ``.fixtures/`` (git-ignored).

The source is a folder holding one sub-folder per package (``semstereo/``, ``semaglue/``, ...) or a ``.tar``,
``.tar.gz``/``.tgz`` or ``.zip`` archive of such a folder (a single top-level folder inside is unwrapped). The new
copy is assembled beside the destination and swapped in at the end, so a failed copy leaves the old one intact.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGES = ("semstereo", "semaglue", "clearscd", "ssp", "sgdepth_pkd")


def _unpack(source: Path, into: Path) -> Path:
    if source.is_dir():
        shutil.copytree(source, into / "src")
        return into / "src"
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            archive.extractall(into / "src")
    elif tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            archive.extractall(into / "src", filter="data")
    else:
        raise ValueError(f"FIXTURES_FROM={source}: neither a folder nor a .tar/.tar.gz/.zip archive")
    root = into / "src"
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in PACKAGES:
        root = entries[0]
    return root


def install(source: Path, destination: Path) -> list[str]:
    """Copy/unpack ``source`` into ``destination``; returns the package folders found."""
    if not source.exists():
        raise FileNotFoundError(f"FIXTURES_FROM={source}: no such file or folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent, prefix=".fixtures-tmp-") as tmp:
        root = _unpack(source, Path(tmp))
        found = [name for name in PACKAGES if (root / name).is_dir()]
        if not found:
            raise ValueError(f"FIXTURES_FROM={source}: holds none of the package folders {', '.join(PACKAGES)}")
        staged = Path(tmp) / "staged"
        root.rename(staged)
        old = Path(tmp) / "old"
        if destination.exists():
            destination.rename(old)
        staged.rename(destination)
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0]:
        print("usage: make fixtures FIXTURES_FROM=<dir|archive>", file=sys.stderr)
        return 2
    try:
        found = install(Path(argv[0]).expanduser(), Path(argv[1]))
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile) as exc:
        print(f"fixtures: {exc}", file=sys.stderr)
        return 1
    missing = sorted(set(PACKAGES) - set(found))
    print(
        f"fixtures: {', '.join(found)} installed in {argv[1]}"
        + (f" (missing: {', '.join(missing)})" if missing else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
