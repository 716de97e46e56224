"""The authors' split lists: one sample per line, whitespace-separated paths relative to the dataset root.

US3D lines have 4 paths (``left right disp label``), WHU lines 3 (``left right disp``); blank lines are skipped.
"""

from __future__ import annotations

from pathlib import Path


def read_split_list(path: str | Path, columns: int | tuple[int, ...]) -> list[list[str]]:
    """Parse a split list; a line with another number of paths raises ``ValueError`` naming ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split list not found")
    allowed = (columns,) if isinstance(columns, int) else columns
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in allowed:
            expected = " or ".join(str(c) for c in allowed)
            raise ValueError(f"{path}:{number}: {len(fields)} path(s), expected {expected}")
        rows.append(fields)
    if not rows:
        raise ValueError(f"{path}: the split list is empty")
    return rows


def list_columns(path: str | Path) -> int:
    """The number of paths on the first non-empty line (4: US3D, 3: WHU)."""
    return len(read_split_list(path, (3, 4))[0])


def resolve(root: Path, relative: str) -> Path:
    """A list entry joined to the dataset root (as the original ``os.path.join(datapath, x)``)."""
    return root / relative
