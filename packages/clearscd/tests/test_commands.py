"""Every command run for real on tiny synthetic data: evaluate, predict, prepare-hiucd (train and demo have their
own files)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile

from clearscd.cli import main
from clearscd.data import SyntheticSCD, write_hiucd_layout
from semcommon.io import read_image, write_image


def test_evaluate_synthetic_writes_metrics_and_items(tmp_path, small_checkpoints, capsys) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", small_checkpoints["ours"], "--data", "synthetic"]
    args += ["--num-samples", "3", "--size", "64", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "SCD_Sek" in printed and "corrected" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["metrics"]) == [
        "BCD_IoU", "BCD_F1", "BCD_IoU_mod", "BCD_F1_mod", "SEG_mIoU", "SEG_mF1", "SCD_Sek", "SCD_Sek_mod", "Kappa",
        "Overall_Score", "Overall_Score_mod", "binary_consistency", "change_consistency", "nochange_consistency",
    ]  # fmt: skip
    assert set(metrics["corrected"]) == set(metrics["metrics"]) and metrics["num_items"] == 3
    rows = list(csv.DictReader((out / "per_item.csv").open()))
    assert [r["name"] for r in rows] == [f"synthetic_1000_{i:05d}" for i in range(3)]
    assert main(args) == 1  # never overwrites
    assert "already exists" in capsys.readouterr().err


def test_evaluate_dataset_folder_with_authors_list_and_checkpoint(tmp_path, small_checkpoints) -> None:
    root = tmp_path / "hiucd_mini"
    ours_list = write_hiucd_layout(root, SyntheticSCD(2, 64, seed=7), split="test")
    authors_list = tmp_path / "test_HiUCD_mini.txt"
    lines = [
        " ".join(f"D:/CDDataset/hiucd_mini/{p}" for p in line.split()) for line in ours_list.read_text().split("\n")
    ]
    authors_list.write_text("\n".join(lines))
    results = []
    for checkpoint, extra in (
        (small_checkpoints["ours"], []),
        (small_checkpoints["authors"], ["--config", small_checkpoints["config"]]),
    ):
        out = tmp_path / f"eval{len(results)}"
        args = ["evaluate", "--checkpoint", checkpoint, *extra, "--data", str(root), "--list", str(authors_list)]
        assert main([*args, "--out", str(out)]) == 0
        results.append(json.loads((out / "metrics.json").read_text())["metrics"])
    assert results[0] == results[1]  # same weights, two checkpoint layouts


def test_predict_png_pair_tiles_and_outputs(tmp_path, small_checkpoints) -> None:
    scene = SyntheticSCD(1, 96, seed=2).sample(0)
    write_image(tmp_path / "t1" / "scene.png", scene["image_A"][:90, :70])
    write_image(tmp_path / "t2" / "scene.png", scene["image_B"][:90, :70])
    out = tmp_path / "pred"
    args = ["predict", "--checkpoint", small_checkpoints["ours"], str(tmp_path / "t1" / "scene.png")]
    args += [str(tmp_path / "t2" / "scene.png"), "--out", str(out), "--tile", "64", "--overlap", "16"]
    assert main(args) == 0
    sem_A = read_image(out / "scene_sem_A.png")
    change = read_image(out / "scene_change.png")
    prob = read_image(out / "scene_change_prob.png")
    assert sem_A.shape == (90, 70) and sem_A.dtype == np.uint8 and sem_A.max() < 9
    assert prob.dtype == np.uint16 and set(np.unique(change)) <= {0, 1}
    np.testing.assert_array_equal(change, (prob.astype(np.float64) / 65535 > 0.5).astype(np.uint8))
    assert read_image(out / "scene_vis.png").shape[:2] == (90, 3 * 70 + 8)
    assert main(args) == 1  # outputs exist: refused, nothing partial left
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_predict_folder_of_geotiffs_keeps_georeferencing(tmp_path, small_checkpoints) -> None:
    tags = [(33550, "d", 3, (0.5, 0.5, 0.0), True), (33922, "d", 6, (0, 0, 0, 350000.0, 5800000.0, 0), True)]
    for i in range(2):
        scene = SyntheticSCD(2, 64, seed=5).sample(i)
        for date, key in (("t1", "image_A"), ("t2", "image_B")):
            (tmp_path / date).mkdir(exist_ok=True)
            tifffile.imwrite(tmp_path / date / f"tile{i}.tif", scene[key], extratags=tags)
    out = tmp_path / "pred"
    args = ["predict", "--checkpoint", small_checkpoints["ours"], str(tmp_path / "t1"), str(tmp_path / "t2")]
    assert main([*args, "--out", str(out)]) == 0
    for i in range(2):
        with tifffile.TiffFile(out / f"tile{i}_change.tif") as tif:
            page = tif.pages[0]
            assert page.tags[33550].value == (0.5, 0.5, 0.0)
            assert page.tags[33922].value[3:5] == (350000.0, 5800000.0)
            assert page.asarray().shape == (64, 64)


def test_prepare_hiucd_command(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    for folder in ("2018", "2019"):
        write_image(tmp_path / "raw" / folder / "x.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    write_image(tmp_path / "raw" / "mask" / "x.png", rng.integers(0, 3, (64, 64, 3)).astype(np.uint8))
    args = ["prepare-hiucd", "--image-a", str(tmp_path / "raw/2018"), "--image-b", str(tmp_path / "raw/2019")]
    args += ["--masks", str(tmp_path / "raw/mask"), "--out", str(tmp_path / "ready"), "--split", "test"]
    assert main([*args, "--size", "32"]) == 0
    assert "wrote 4 pairs" in capsys.readouterr().out
    assert (tmp_path / "ready" / "test" / "2019_32" / "3_x.png").is_file()


@pytest.mark.parametrize("argv", [["predict", "a.png"], ["evaluate"], ["prepare-hiucd", "--out", "x"]])
def test_bad_command_lines_exit_2(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_evaluate_lsscd_scenes_as_tiles(tmp_path) -> None:
    import torch

    from clearscd.config import ClearSCDConfig
    from clearscd.model import ClearSCD

    from .conftest import SMALL

    config = ClearSCDConfig(**SMALL, num_segclass=7)
    torch.save({"model": ClearSCD(config).state_dict(), "config": {"clearscd": config.to_dict()}}, tmp_path / "m.pt")
    rng = np.random.default_rng(0)
    root = tmp_path / "LsSCD"
    scene = SyntheticSCD(1, 64, seed=4).sample(0)
    root.mkdir()
    tifffile.imwrite(root / "2018.tif", scene["image_A"])
    tifffile.imwrite(root / "2020.tif", scene["image_B"])
    for name in ("cd", "s1", "s2"):
        high = 2 if name == "cd" else 8
        tifffile.imwrite(root / f"{name}.tif", rng.integers(0, high, (64, 64)).astype(np.uint8))
    (root / "test.txt").write_text(
        "E:/LsSCD/2018.tif E:/LsSCD/2020.tif E:/LsSCD/cd.tif E:/LsSCD/s1.tif E:/LsSCD/s2.tif\n"
    )
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(tmp_path / "m.pt"), "--data", str(root), "--dataset", "lsscd"]
    assert main([*args, "--tile", "32", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_items"] == 4
    rows = list(csv.DictReader((out / "per_item.csv").open()))
    assert rows[3]["name"].endswith("2018.tif@32,32")
