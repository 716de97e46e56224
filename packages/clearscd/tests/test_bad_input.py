"""Bad input: one line naming the file or option, exit 1 (bad file/value) or 2 (bad command line), nothing partial."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from clearscd.cli import main
from clearscd.data import SyntheticSCD, write_hiucd_layout
from semcommon.io import write_image


@pytest.fixture()
def pair(tmp_path):
    scene = SyntheticSCD(1, 64, seed=1).sample(0)
    write_image(tmp_path / "a.png", scene["image_A"])
    write_image(tmp_path / "b.png", scene["image_B"])
    return tmp_path / "a.png", tmp_path / "b.png"


def _predict(checkpoint, t1, t2, out, *extra) -> int:
    return main(["predict", "--checkpoint", checkpoint, str(t1), str(t2), "--out", str(out), *extra])


def _one_line_error(capsys, *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_mismatched_pair_sizes(tmp_path, pair, small_checkpoints, capsys) -> None:
    write_image(tmp_path / "small.png", np.zeros((32, 64, 3), np.uint8))
    assert _predict(small_checkpoints["ours"], pair[0], tmp_path / "small.png", tmp_path / "out") == 1
    _one_line_error(capsys, "small.png", "differs")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"", "file is empty"), (b"\x89PNG\r\n\x1a\n garbage", "cannot be decoded")],
)
def test_corrupt_and_empty_files(tmp_path, pair, small_checkpoints, capsys, content, needle) -> None:
    (tmp_path / "bad.png").write_bytes(content)
    assert _predict(small_checkpoints["ours"], pair[0], tmp_path / "bad.png", tmp_path / "out") == 1
    _one_line_error(capsys, "bad.png", needle)


def test_missing_input_file(tmp_path, pair, small_checkpoints, capsys) -> None:
    assert _predict(small_checkpoints["ours"], pair[0], tmp_path / "nope.png", tmp_path / "out") == 1
    _one_line_error(capsys, "nope.png", "not found")


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((64, 64), np.uint8), "expected an RGB image"),
        (np.zeros((64, 64, 3), np.uint16), "expected 8-bit RGB"),
        (np.full((64, 64, 3), np.nan, np.float32), "expected 8-bit RGB"),
    ],
    ids=["grey", "16-bit", "float-nan"],
)
def test_wrong_channels_dtypes_and_nan(tmp_path, small_checkpoints, capsys, array, needle) -> None:
    suffix = ".tif" if array.dtype == np.float32 else ".png"
    for name in ("a", "b"):
        if suffix == ".tif":
            tifffile.imwrite(tmp_path / f"{name}{suffix}", array, photometric="rgb")
        else:
            write_image(tmp_path / f"{name}{suffix}", array)
    assert _predict(small_checkpoints["ours"], tmp_path / f"a{suffix}", tmp_path / f"b{suffix}", tmp_path / "o") == 1
    _one_line_error(capsys, f"a{suffix}", needle)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # temporaries removed


@pytest.mark.parametrize(
    "extra",
    [["--overlap", "64", "--tile", "64"], ["--overlap", "-1"], ["--tile", "16"], ["--batch", "0"]],
    ids=["overlap>=tile", "negative-overlap", "tiny-tile", "zero-batch"],
)
def test_out_of_range_options_exit_2(tmp_path, pair, small_checkpoints, capsys, extra) -> None:
    with pytest.raises(SystemExit) as exc:
        _predict(small_checkpoints["ours"], pair[0], pair[1], tmp_path / "out", *extra)
    assert exc.value.code == 2
    assert extra[0] in capsys.readouterr().err


def test_checkpoint_of_another_model(tmp_path, pair, capsys) -> None:
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(3)}}, tmp_path / "other.pth")
    assert _predict(str(tmp_path / "other.pth"), pair[0], pair[1], tmp_path / "out") == 1
    _one_line_error(capsys, "other.pth", "not a ClearSCD checkpoint")


def test_checkpoint_with_nan_weights(tmp_path, pair, small_checkpoints, capsys) -> None:
    state = torch.load(small_checkpoints["ours"], weights_only=True)
    state["model"]["head_seg.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    assert _predict(str(tmp_path / "nan.pt"), pair[0], pair[1], tmp_path / "out") == 1
    _one_line_error(capsys, "nan.pt", "head_seg.0.weight", "NaN")


def test_missing_dataset_folder(tmp_path, small_checkpoints, capsys) -> None:
    args = ["evaluate", "--checkpoint", small_checkpoints["ours"], "--data", str(tmp_path / "nowhere")]
    assert main([*args, "--out", str(tmp_path / "eval")]) == 1
    _one_line_error(capsys, "nowhere", "dataset folder not found")
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "run"), "--quiet"]) == 1
    _one_line_error(capsys, "nowhere", "not found")
    assert not (tmp_path / "run").exists()


def test_corrupt_dataset_file_leaves_no_metrics(tmp_path, small_checkpoints, capsys) -> None:
    root = tmp_path / "data"
    list_path = write_hiucd_layout(root, SyntheticSCD(2, 64, seed=0), split="test")
    mask = root / list_path.read_text().split()[7]  # second pair's mask
    mask.write_bytes(b"")
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", small_checkpoints["ours"], "--data", str(root), "--out", str(out)]) == 1
    _one_line_error(capsys, mask.name, "empty")
    assert not (out / "metrics.json").exists() and not (out / "per_item.csv").exists()


def test_folder_with_a_corrupt_second_pair_keeps_the_first_complete(tmp_path, small_checkpoints, capsys) -> None:
    for i in range(2):
        scene = SyntheticSCD(2, 64, seed=3).sample(i)
        write_image(tmp_path / "t1" / f"p{i}.png", scene["image_A"])
        write_image(tmp_path / "t2" / f"p{i}.png", scene["image_B"])
    (tmp_path / "t2" / "p1.png").write_bytes(b"broken")
    assert _predict(small_checkpoints["ours"], tmp_path / "t1", tmp_path / "t2", tmp_path / "out") == 1
    assert "p1.png" in capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(f"p0_{k}.png" for k in ("sem_A", "sem_B", "change", "change_prob", "vis"))


def test_class_count_mismatch_between_model_and_dataset(tmp_path, small_checkpoints, capsys) -> None:
    root = tmp_path / "LsSCD"
    rng = np.random.default_rng(0)
    names = ("t1.png", "t2.png", "cd.png", "s1.png", "s2.png")
    for name in names:
        shape = (64, 64, 3) if name.startswith("t") else (64, 64)
        write_image(root / name, rng.integers(0, 2, shape).astype(np.uint8))
    (root / "test.txt").write_text(" ".join(names) + "\n")
    args = ["evaluate", "--checkpoint", small_checkpoints["ours"], "--data", str(root), "--dataset", "lsscd"]
    assert main([*args, "--tile", "32", "--out", str(tmp_path / "eval")]) == 1
    _one_line_error(capsys, "predicts 9 classes", "--dataset lsscd has 7")
    assert not (tmp_path / "eval").exists()
