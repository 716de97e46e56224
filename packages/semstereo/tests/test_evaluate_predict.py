"""``semstereo evaluate`` and ``semstereo predict`` run for real on a tiny trained checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from semcommon.io import read_image, write_image
from semstereo import load_pretrained
from semstereo.cli import main
from semstereo.data import SceneRenderer, SyntheticConfig
from semstereo.predict import _ramp, _starts, png_to_disparity, predict_pair


def test_evaluate_synthetic_writes_metrics_and_items(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", "synthetic", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "avg_test_scalars {" in printed and "mIoU" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"original", "original_per_class", "corrected", "notes"} and metrics["images"] == 2
    assert set(metrics["original"]) >= {"EPE", "D1", "Thres1", "Thres2", "Thres3", "PA", "MPA", "mIoU", "loss"}
    assert len(metrics["original_per_class"]["IoU"]) == 5 and len(metrics["corrected"]["IoU"]) == 5
    rows = list(csv.DictReader((out / "items.csv").open()))
    assert [r["name"] for r in rows] == ["synthetic_1_00000", "synthetic_1_00001"]
    # batch size 1: the original EPE is the mean of the per-image values
    assert np.mean([float(r["EPE"]) for r in rows]) == pytest.approx(metrics["original"]["EPE"], rel=1e-5)
    # existing results are not overwritten without --overwrite
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 1
    assert "metrics.json: exists" in capsys.readouterr().err


def test_evaluate_us3d_folder(tiny_checkpoint: Path, tmp_path: Path) -> None:
    renderer = SceneRenderer(SyntheticConfig(height=64, width=64))
    lines = []
    for i in range(2):
        scene = renderer.render(i)
        name = f"JAX_000_000_{i:03d}"
        disparity = scene.disparity.copy()
        disparity[:2] = -999
        for sub, suffix, array in (
            ("left", "LEFT_RGB", scene.left),
            ("right", "RIGHT_RGB", scene.right),
            ("disp", "LEFT_DSP", disparity),
            ("label", "LEFT_CLS", scene.label.astype(np.float32)),
        ):
            write_image(tmp_path / "data" / "test" / sub / f"{name}_{suffix}.tif", array)
        lines.append(
            " ".join(
                f"./test/{s}/{name}_{x}.tif"
                for s, x in zip(
                    ("left", "right", "disp", "label"), ("LEFT_RGB", "RIGHT_RGB", "LEFT_DSP", "LEFT_CLS"), strict=True
                )
            )
        )
    (tmp_path / "data" / "test.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(tmp_path / "data"), "--out", str(out)]
    assert main(args) == 0
    rows = list(csv.DictReader((out / "items.csv").open()))
    assert [r["name"] for r in rows] == ["JAX_000_000_000", "JAX_000_000_001"]


def _write_pair(folder: Path, stem: str, height: int, width: int, seed: int = 0) -> None:
    scene = SceneRenderer(SyntheticConfig(height=96, width=160)).render(seed)
    write_image(folder / f"{stem}_LEFT_RGB.png", scene.left[:height, :width])
    write_image(folder / f"{stem}_RIGHT_RGB.png", scene.right[:height, :width])


def test_predict_any_size_outputs(tiny_checkpoint: Path, tmp_path: Path) -> None:
    _write_pair(tmp_path / "in", "tile", 90, 150)
    out = tmp_path / "out"
    left, right = tmp_path / "in" / "tile_LEFT_RGB.png", tmp_path / "in" / "tile_RIGHT_RGB.png"
    args = ["predict", "--checkpoint", str(tiny_checkpoint), str(left), str(right), "--out", str(out)]
    assert main(args) == 0
    disparity = read_image(out / "tile_disparity.tif")
    assert disparity.shape == (90, 150) and disparity.dtype == np.float32 and np.isfinite(disparity).all()
    assert np.abs(png_to_disparity(read_image(out / "tile_disparity.png")) - disparity).max() <= 1 / 128 + 1e-4
    classes = read_image(out / "tile_class.png")
    assert classes.shape == (90, 150) and classes.max() <= 5
    assert read_image(out / "tile_class_overlay.png").shape == (90, 150, 3)
    assert read_image(out / "tile_disparity_color.png").shape == (90, 150, 3)
    assert main(args) == 1  # outputs exist: refused
    assert main([*args, "--overwrite", "--tile", "64", "--overlap", "16"]) == 0
    assert read_image(out / "tile_disparity.tif").shape == (90, 150)


def test_tiles_cover_and_blend(tiny_checkpoint: Path) -> None:
    assert _starts(150, 64, 48) == [0, 48, 86] and _starts(60, 64, 48) == [0]
    ramp = _ramp(64, 16, at_start=False, at_end=True)
    assert ramp[0] > 0 and ramp[15] == 1 and ramp[-1] == 1
    model = load_pretrained(tiny_checkpoint)
    scene = SceneRenderer(SyntheticConfig(height=64, width=96)).render(2)
    whole = predict_pair(model, scene.left, scene.right)
    tiled = predict_pair(model, scene.left, scene.right, tile=96, overlap=16)  # one tile covering the image = no tiling
    assert np.array_equal(whole.disparity, tiled.disparity)
    blended = predict_pair(model, scene.left, scene.right, tile=64, overlap=16)
    assert blended.disparity.shape == (64, 96) and np.allclose(blended.probabilities.sum(0), 1, atol=1e-5)
    # the first tile alone covers columns 0..31 with full weight: there the blend equals that tile's prediction
    first = predict_pair(model, scene.left[:, :64], scene.right[:, :64])
    assert np.allclose(blended.disparity[:, :32], first.disparity[:, :32], atol=1e-5)


def test_predict_folders_and_no_partial_outputs(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    left_dir, right_dir = tmp_path / "left", tmp_path / "right"
    left_dir.mkdir()
    right_dir.mkdir()
    scene = SceneRenderer(SyntheticConfig(height=64, width=64)).render(0)
    for name in ("a", "b"):
        write_image(left_dir / f"{name}_LEFT_RGB.png", scene.left)
        write_image(right_dir / f"{name}_RIGHT_RGB.png", scene.right)
    (right_dir / "b_RIGHT_RGB.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    args = ["predict", "--checkpoint", str(tiny_checkpoint), str(left_dir), str(right_dir), "--out", str(out)]
    assert main(args) == 1
    assert "b_RIGHT_RGB.png" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())  # nothing left behind, not even pair "a"
    write_image(right_dir / "b_RIGHT_RGB.png", scene.right)
    assert main(args) == 0
    assert sorted(p.name for p in out.glob("*_disparity.tif")) == ["a_disparity.tif", "b_disparity.tif"]
