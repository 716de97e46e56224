"""YFCC100M test pairs (OANet/SuperGlue version): the pair list ``yfcc_test_pairs_with_gt.txt`` (38 fields per
line: ``path0 path1 rot0 rot1 K0(9) K1(9) T_0to1(16)``, paths relative to the image root, e.g.
``buckingham_palace/test/images/<id>.jpg``). Images are read, resized and rotated as the authors' ``match_pairs.py``
does; the evaluation itself is :mod:`semaglue.match_pairs`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset

from semaglue.geometry import read_gray_image
from semaglue.match_pairs import Pair, read_pairs


class YFCCPairs(Dataset):
    """Items: ``image0``/``image1`` ``1×H×W`` in [0, 1] (resized, EXIF-rotated), ``pair`` (:class:`Pair`),
    ``scales0``/``scales1`` (original / resized size), ``name``."""

    def __init__(
        self, pairs_file: str | Path, root: str | Path, resize: Sequence[int] = (1600,), resize_float: bool = True
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"YFCC image root not found: {self.root}")
        self.pairs: list[Pair] = read_pairs(pairs_file, require_gt=True)
        if not self.pairs:
            raise ValueError(f"{pairs_file}: lists no pairs")
        self.resize, self.resize_float = list(resize), resize_float

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, object]:
        pair = self.pairs[index]
        _, image0, scales0 = read_gray_image(self.root / pair.name0, self.resize, pair.rot0, self.resize_float)
        _, image1, scales1 = read_gray_image(self.root / pair.name1, self.resize, pair.rot1, self.resize_float)
        return {
            "image0": image0[0],
            "image1": image1[0],
            "pair": pair,
            "scales0": scales0,
            "scales1": scales1,
            "name": pair.stem,
        }
