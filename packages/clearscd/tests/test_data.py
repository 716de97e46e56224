"""Data: synthetic generator, Hi-UCD layout/encodings/split lists/preparation, LsSCD tiles, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from clearscd.data import (
    DataError,
    HiUCDDataset,
    LsSCDDataset,
    PairAugment,
    SyntheticSCD,
    clip_tiles,
    deal_hiucd,
    prepare_hiucd,
    read_split_list,
    write_hiucd_layout,
)
from semcommon.io import read_image, write_image
from semcommon.testing import fixtures_dir

SIZE = 48


@pytest.fixture(scope="module")
def synthetic() -> SyntheticSCD:
    return SyntheticSCD(num_samples=4, size=SIZE, seed=3)


def test_synthetic_is_deterministic_and_has_real_changes(synthetic: SyntheticSCD) -> None:
    again = SyntheticSCD(num_samples=4, size=SIZE, seed=3)
    other = SyntheticSCD(num_samples=4, size=SIZE, seed=4)
    for i in range(4):
        a, b = synthetic[i], again[i]
        for key in ("img_A", "img_B", "label_SGA", "label_SGB", "label_BCD"):
            assert torch.equal(a[key], b[key]), key
    assert not torch.equal(synthetic[0]["img_A"], other[0]["img_A"])
    changed = 0
    for i in range(4):
        s = synthetic.sample(i)
        assert s["image_A"].dtype == np.uint8 and s["image_A"].std() > 10  # textured, not flat colours
        labelled = (s["sem_A"] < 9) & (s["sem_B"] < 9)
        np.testing.assert_array_equal(s["bcd"][labelled], (s["sem_A"] != s["sem_B"])[labelled])
        assert set(np.unique(s["bcd"])) <= {0, 1, 255}
        changed += int((s["bcd"] == 1).sum())
        # nuisance: unchanged pixels still differ between the dates (illumination, tint, shift, noise)
        same = s["bcd"] == 0
        diff = np.abs(s["image_A"].astype(int) - s["image_B"].astype(int))[same].mean()
        assert diff > 3
    assert changed > 0


def test_augment_is_paired_and_uses_the_fill_values() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    sem = rng.integers(0, 9, (40, 40))
    sample = {"image_A": image, "image_B": image.copy(), "sem_A": sem, "sem_B": sem.copy(), "bcd": sem % 2}
    augment = PairAugment(num_classes=9, size=40)
    fills = set()
    for seed in range(12):
        out = augment(sample, np.random.default_rng(seed))
        assert out["image_A"].shape == (40, 40, 3) and out["sem_A"].shape == (40, 40)
        np.testing.assert_array_equal(out["image_A"], out["image_B"])
        np.testing.assert_array_equal(out["sem_A"], out["sem_B"])
        valid = out["bcd"] != 255
        np.testing.assert_array_equal(out["bcd"][valid], out["sem_A"][valid] % 2)
        np.testing.assert_array_equal(out["sem_A"] == 9, out["bcd"] == 255)  # rotation fills: 9 and 255 together
        fills.add(bool((out["bcd"] == 255).any()))
    assert fills == {True, False}


def _authors_list(path: Path, rel_lines: list[str], prefix: str = "D:/CDDataset/hiucd_mini/") -> Path:
    """The shipped lists' exact format: absolute Windows paths, five fields, '/' separators."""
    lines = [" ".join(prefix + field for field in line.split()) for line in rel_lines]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_hiucd_loader_reads_authors_list_format(tmp_path, synthetic: SyntheticSCD) -> None:
    root = tmp_path / "hiucd_mini"
    ours = write_hiucd_layout(root, synthetic, split="test")
    authors = _authors_list(tmp_path / "test_HiUCD_mini.txt", ours.read_text().splitlines())
    assert authors.read_text().startswith("D:/CDDataset/hiucd_mini/test/2018_512/synthetic_3_00000.png ")
    for split_list in (ours, authors):
        dataset = HiUCDDataset(split_list, root)
        assert len(dataset) == 4
        item, expected = dataset[1], synthetic[1]
        for key in ("img_A", "img_B", "label_SGA", "label_SGB", "label_BCD"):
            assert torch.equal(item[key], expected[key]), key


def test_shipped_split_lists_parse() -> None:
    lists = fixtures_dir("clearscd").parent.parent / "data" / "clearscd"
    if not lists.is_dir():  # the line format itself is covered by test_hiucd_loader_reads_authors_list_format
        pytest.skip(f"{lists}: the shipped split lists are not next to this checkout")
    entries = read_split_list(lists / "val_HiUCD_mini.txt", "/data/hiucd_mini")
    assert len(entries) == 236
    assert str(entries[0].image_A).startswith("/data/hiucd_mini/val/2017_512/")
    assert entries[0].bcd == entries[0].sem_A == entries[0].sem_B


def test_deal_hiucd_and_raw_masks(tmp_path, synthetic: SyntheticSCD) -> None:
    raw = np.array([[[0, 1, 0], [9, 3, 1], [5, 0, 2]]], dtype=np.uint8)
    np.testing.assert_array_equal(deal_hiucd(raw), [[[9, 0, 255], [8, 2, 0], [4, 9, 1]]])
    root = tmp_path / "raw"
    list_path = write_hiucd_layout(root, synthetic, split="train")
    for line in list_path.read_text().splitlines():
        mask_path = root / line.split()[2]
        mask = read_image(mask_path).astype(np.int64)
        raw_mask = np.where(mask[..., :2] == 9, 0, mask[..., :2] + 1)
        change = np.where(mask[..., 2] == 255, 0, mask[..., 2] + 1)
        write_image(mask_path, np.dstack([raw_mask, change]).astype(np.uint8))
    dataset = HiUCDDataset(list_path, root, raw_masks=True)
    assert torch.equal(dataset[2]["label_SGB"], synthetic[2]["label_SGB"])
    assert torch.equal(dataset[2]["label_BCD"], synthetic[2]["label_BCD"])


def test_clip_tiles_edge_aligned() -> None:
    assert clip_tiles(1024, 1024) == [(0, 0), (0, 512), (512, 0), (512, 512)]
    assert clip_tiles(1100, 600) == [(0, 0), (0, 88), (512, 0), (512, 88), (588, 0), (588, 88)]
    with pytest.raises(ValueError, match="smaller"):
        clip_tiles(100, 600)


def test_prepare_hiucd_clips_relabels_and_lists(tmp_path) -> None:
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    for name in ("a.png", "b.png"):
        write_image(src / "2017" / name, rng.integers(0, 255, (80, 70, 3), dtype=np.uint8))
        write_image(src / "2018" / name, rng.integers(0, 255, (80, 70, 3), dtype=np.uint8))
        mask = np.dstack([rng.integers(0, 10, (80, 70)), rng.integers(0, 10, (80, 70)), rng.integers(0, 3, (80, 70))])
        write_image(src / "mask" / name, mask.astype(np.uint8))
    out = tmp_path / "out"
    list_path = prepare_hiucd(src / "2017", src / "2018", src / "mask", out, split="train", size=32)
    lines = list_path.read_text().splitlines()
    assert len(lines) == 2 * 9 and all(len(line.split()) == 5 for line in lines)
    assert lines[0].split()[0] == "train/2017_32/0_a.png"
    tile = read_image(out / "train/mask_32/4_b.png")  # tile 4 = row 1 (y 32), column 1 (x 32)
    raw = read_image(src / "mask/b.png")[32:64, 32:64]
    np.testing.assert_array_equal(tile, deal_hiucd(raw))
    np.testing.assert_array_equal(read_image(out / "train/2018_32/8_a.png"), read_image(src / "2018/a.png")[48:, 38:])
    assert len(HiUCDDataset(list_path, out)) == 18
    with pytest.raises(DataError, match="already exists"):
        prepare_hiucd(src / "2017", src / "2018", src / "mask", out, split="train", size=32)
    (src / "mask" / "b.png").unlink()
    with pytest.raises(DataError, match=r"mask/b.png: missing"):
        prepare_hiucd(src / "2017", src / "2018", src / "mask", tmp_path / "out2", size=32)


def test_hiucd_validation_names_the_file(tmp_path, synthetic: SyntheticSCD) -> None:
    root = tmp_path / "d"
    list_path = write_hiucd_layout(root, synthetic, split="val")
    first = list_path.read_text().splitlines()[0].split()
    mask = read_image(root / first[2])
    mask[0, 0, 0] = 12
    write_image(root / first[2], mask)
    with pytest.raises(DataError, match=rf"{first[2]}: semantic label values must be 0..9"):
        HiUCDDataset(list_path, root)[0]
    write_image(root / first[1], np.zeros((SIZE, SIZE + 8, 3), np.uint8))
    with pytest.raises(DataError, match=rf"{first[1]}: size"):
        HiUCDDataset(list_path, root).sample(0)
    (root / first[0]).unlink()
    with pytest.raises(DataError, match=rf"{first[0]}: file not found"):
        HiUCDDataset(list_path, root).sample(0)
    bad = tmp_path / "bad.txt"
    bad.write_text("a.png b.png c.png d.png\n")
    with pytest.raises(DataError, match=r"bad.txt:1: expected 5"):
        HiUCDDataset(bad, root)
    with pytest.raises(DataError, match="dataset folder not found"):
        HiUCDDataset(list_path, tmp_path / "nowhere")


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_lsscd_scenes_as_tiles(tmp_path, suffix) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "LsSCD"
    scene = {
        "t1": rng.integers(0, 255, (96, 80, 3), dtype=np.uint8),
        "t2": rng.integers(0, 255, (96, 80, 3), dtype=np.uint8),
        "cd": rng.integers(0, 2, (96, 80)).astype(np.uint8),
        "s1": rng.integers(0, 8, (96, 80)).astype(np.uint8),
        "s2": rng.integers(0, 8, (96, 80)).astype(np.uint8),
    }
    for name, array in scene.items():
        path = root / "scenes" / f"{name}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".tif":
            tifffile.imwrite(path, array)
        else:
            write_image(path, array)
    list_path = tmp_path / "train_LsSCD.txt"
    list_path.write_text(" ".join(f"E:/data/LsSCD/scenes/{n}{suffix}" for n in scene) + "\n")
    dataset = LsSCDDataset(list_path, root, tile=32)
    assert len(dataset) == 9  # rows 0, 32, 64; columns 0, 32, 48 (edge-aligned)
    sample = dataset.sample(5)  # row 1, column 2: y 32, x 48
    np.testing.assert_array_equal(sample["image_B"], scene["t2"][32:64, 48:80])
    np.testing.assert_array_equal(sample["sem_A"], scene["s1"][32:64, 48:80])
    np.testing.assert_array_equal(sample["bcd"], scene["cd"][32:64, 48:80])
    assert dataset[8]["label_SGB"].shape == (32, 32)
    scene["s2"][70, 70] = 9
    path = root / "scenes" / f"s2{suffix}"
    tifffile.imwrite(path, scene["s2"]) if suffix == ".tif" else write_image(path, scene["s2"])
    with pytest.raises(DataError, match=r"s2.*0..7"):
        LsSCDDataset(list_path, root, tile=32).sample(8)
