"""Data: the synthetic generator and the US3D / WHU loaders on tiny files written in the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semcommon.io import ImageReadError, write_image
from semstereo.data import (
    SceneRenderer,
    SyntheticConfig,
    SyntheticStereo,
    US3DDataset,
    WHUDataset,
    list_columns,
    read_split_list,
)


@pytest.fixture(scope="module")
def renderer() -> SceneRenderer:
    return SceneRenderer(SyntheticConfig(height=64, width=96))


def test_synthetic_is_deterministic_signed_and_in_range(renderer: SceneRenderer) -> None:
    a, b = renderer.render(3), renderer.render(3)
    assert np.array_equal(a.left, b.left) and np.array_equal(a.right, b.right)
    assert np.array_equal(a.disparity, b.disparity) and a.left.shape == (64, 96, 3) and a.left.dtype == np.uint8
    scenes = [renderer.render(seed) for seed in range(6)]
    values = np.concatenate([s.disparity.ravel() for s in scenes])
    assert values.min() >= -12 and values.max() < 12
    assert (values < -1).any() and (values > 1).any()  # both directions
    classes = np.unique(np.concatenate([s.label.ravel() for s in scenes]))
    assert set(classes.tolist()) >= {0, 1, 2} and classes.max() <= 4
    assert not np.array_equal(scenes[0].left, scenes[1].left)


def test_synthetic_right_view_matches_left_through_the_disparity() -> None:
    same_date = SyntheticConfig(height=64, width=96, noise=0, radiometric=0, sun_change=0, blur=0)
    scene = SceneRenderer(same_date).render(1)
    h, w = scene.disparity.shape
    cols = np.arange(w)[None, :] - np.round(scene.disparity).astype(int)  # right column of each left pixel
    inside = (cols >= 0) & (cols < w)
    rows = np.broadcast_to(np.arange(h)[:, None], cols.shape)
    warped = scene.right[rows[inside], cols[inside]].astype(float)
    error_gt = np.abs(warped - scene.left[inside].astype(float)).mean()
    error_zero = np.abs(scene.right.astype(float) - scene.left.astype(float)).mean()
    assert error_gt < 0.5 * error_zero


def test_synthetic_dataset_samples_and_size_check() -> None:
    dataset = SyntheticStereo(SyntheticConfig(height=64, width=64), length=2, seed=5)
    sample = dataset[1]
    assert sample["left"].shape == (3, 64, 64) and sample["disparity"].shape == (64, 64)
    assert torch.equal(sample["disparity_4"], sample["disparity"][::4, ::4]) and sample["label"].max() <= 4
    with pytest.raises(IndexError):
        dataset[2]
    with pytest.raises(ValueError, match="multiples of 32"):
        SyntheticConfig(height=60)


def _write_us3d(root: Path, name: str = "JAX_004_010_007", size: tuple[int, int] = (64, 64), las: bool = False) -> str:
    rng = np.random.default_rng(0)
    h, w = size
    for sub in ("left", "right", "disp", "label"):
        (root / "train" / sub).mkdir(parents=True, exist_ok=True)
    write_image(root / f"train/left/{name}_LEFT_RGB.tif", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    write_image(root / f"train/right/{name}_RIGHT_RGB.tif", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    disparity = rng.uniform(-20, 20, (h, w)).astype(np.float32)
    disparity[:4] = -999
    write_image(root / f"train/disp/{name}_LEFT_DSP.tif", disparity)
    codes = np.array([2, 5, 6, 9, 17, 65]) if las else np.arange(6)
    write_image(root / f"train/label/{name}_LEFT_CLS.tif", codes[rng.integers(0, 6, (h, w))].astype(np.float32))
    return (
        f"./train/left/{name}_LEFT_RGB.tif ./train/right/{name}_RIGHT_RGB.tif "
        f"./train/disp/{name}_LEFT_DSP.tif ./train/label/{name}_LEFT_CLS.tif\n"
    )


def test_us3d_reads_the_real_layout(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text(_write_us3d(tmp_path) + "\n")
    assert list_columns(tmp_path / "train.txt") == 4
    dataset = US3DDataset(tmp_path, "train.txt")
    sample = dataset[0]
    assert sample["name"] == "JAX_004_010_007" and sample["left"].shape == (3, 64, 64)
    assert (sample["disparity"][:4] == -999).all() and sample["disparity"][4:].abs().max() <= 20
    assert set(sample["label"].unique().tolist()) == {0, 1, 2, 3, 4, 5}
    cropped = US3DDataset(tmp_path, "train.txt", crop=(32, 32))[0]
    assert torch.equal(cropped["disparity"], sample["disparity"][16:48, 16:48])


def test_us3d_las_codes(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text(_write_us3d(tmp_path, las=True))
    with pytest.raises(ImageReadError, match=r"LEFT_CLS.tif: class ids must be integers 0..5.*65"):
        US3DDataset(tmp_path, "train.txt")[0]
    label = US3DDataset(tmp_path, "train.txt", label_codes="las")[0]["label"]
    assert set(label.unique().tolist()) == {0, 1, 2, 3, 4, 5}


def test_us3d_bad_samples_name_the_file(tmp_path: Path) -> None:
    line = _write_us3d(tmp_path)
    (tmp_path / "bad_columns.txt").write_text(line + "a b c\n")
    with pytest.raises(ValueError, match=r"bad_columns.txt:2: 3 path\(s\), expected 4"):
        read_split_list(tmp_path / "bad_columns.txt", 4)
    (tmp_path / "train.txt").write_text(line)
    write_image(tmp_path / "train/disp/JAX_004_010_007_LEFT_DSP.tif", np.zeros((32, 64), np.float32))
    with pytest.raises(ImageReadError, match=r"LEFT_DSP.tif: size 64x32 does not match .*LEFT_RGB.tif \(64x64\)"):
        US3DDataset(tmp_path, "train.txt")[0]
    (tmp_path / "train/right/JAX_004_010_007_RIGHT_RGB.tif").write_bytes(b"")
    with pytest.raises(ImageReadError, match="RIGHT_RGB.tif: file is empty"):
        US3DDataset(tmp_path, "train.txt")[0]
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        US3DDataset(tmp_path / "missing", "train.txt")
    with pytest.raises(FileNotFoundError, match="test.txt: split list not found"):
        US3DDataset(tmp_path, "test.txt")


def test_whu_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for sub in ("left", "right", "disp"):
        (tmp_path / "train" / sub).mkdir(parents=True)
    write_image(tmp_path / "train/left/000001.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))  # grey
    write_image(tmp_path / "train/right/000001.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
    write_image(tmp_path / "train/disp/000001.png", np.full((64, 64), 10 * 256 + 128, np.uint16))
    (tmp_path / "train.txt").write_text("train/left/000001.png train/right/000001.png train/disp/000001.png\n")
    assert list_columns(tmp_path / "train.txt") == 3
    sample = WHUDataset(tmp_path, "train.txt")[0]
    assert sample["left"].shape == (3, 64, 64) and "label" not in sample
    assert torch.allclose(sample["disparity"], torch.full((64, 64), 10.5))
    write_image(tmp_path / "train/disp/000001.png", np.zeros((64, 64), np.uint8))
    with pytest.raises(ImageReadError, match="000001.png: expected a single-band 16-bit PNG"):
        WHUDataset(tmp_path, "train.txt")[0]


def test_prepare_us3d_remaps_las_codes(tmp_path: Path, capsys) -> None:
    from semcommon.io import read_image
    from semstereo.cli import main

    root, out = tmp_path / "raw", tmp_path / "prepared"
    (root / "train.txt").parent.mkdir(parents=True)
    (root / "train.txt").write_text(_write_us3d(root, las=True))
    assert main(["prepare-us3d", str(root), str(out), "--lists", "train.txt"]) == 0
    label = read_image(out / "train/label/JAX_004_010_007_LEFT_CLS.tif")
    raw = read_image(root / "train/label/JAX_004_010_007_LEFT_CLS.tif")
    assert label.dtype == np.float32 and np.array_equal(label == 5, raw == 65) and np.array_equal(label == 1, raw == 5)
    assert (out / "train.txt").read_text() == (root / "train.txt").read_text()
    assert US3DDataset(out, "train.txt")[0]["label"].max() == 5
    assert main(["prepare-us3d", str(root), str(out), "--lists", "train.txt"]) == 1  # never overwrites
    assert "prepared: exists" in capsys.readouterr().err
    assert main(["prepare-us3d", str(root), str(tmp_path / "other"), "--lists", "val.txt"]) == 1
    assert not (tmp_path / "other").exists() and not list(tmp_path.glob(".other*"))
