"""Bad input: one line naming the file or option on stderr, exit 1 (bad file/value) or 2 (bad command line), and
no partial outputs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from semcommon.io import write_image
from semstereo.cli import main


def _pair(folder: Path, left: np.ndarray, right: np.ndarray, suffix: str = ".png") -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"x_LEFT_RGB{suffix}", folder / f"x_RIGHT_RGB{suffix}"
    write_image(paths[0], left)
    write_image(paths[1], right)
    return str(paths[0]), str(paths[1])


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


RGB = np.zeros((40, 50, 3), np.uint8)


@pytest.mark.parametrize(
    ("left", "right", "suffix", "expected"),
    [
        (RGB, np.zeros((40, 52, 3), np.uint8), ".png", r"x_RIGHT_RGB.png: size 52x40 does not match"),
        (np.zeros((40, 50, 2), np.uint8), RGB, ".tif", r"x_LEFT_RGB.tif: 2 channel\(s\), expected an RGB image"),
        (
            np.zeros((40, 50, 3), np.int32),
            RGB.astype(np.int32),
            ".tif",
            r"x_LEFT_RGB.tif: left: unsupported dtype int32",
        ),
        (
            np.full((40, 50, 3), np.nan, np.float32),
            RGB.astype(np.float32),
            ".tif",
            r"x_LEFT_RGB.tif: left: contains NaN",
        ),
        (
            np.full((40, 50, 3), 7.0, np.float32),
            RGB.astype(np.float32),
            ".tif",
            r"float image values must lie in \[0, 1\]",
        ),
    ],
    ids=["mismatched_sizes", "channels", "dtype", "nan", "float_range"],
)
def test_predict_bad_images(tiny_checkpoint, tmp_path, capsys, left, right, suffix, expected) -> None:
    left_path, right_path = _pair(tmp_path / "in", left, right, suffix)
    out = tmp_path / "out"
    code, err = _run(
        ["predict", "--checkpoint", str(tiny_checkpoint), left_path, right_path, "--out", str(out)], capsys
    )
    assert code == 1 and len(err.splitlines()) == 1
    assert re.search(expected, err), err
    assert not out.exists() or not any(out.iterdir())


def test_predict_empty_and_corrupt_files(tiny_checkpoint, tmp_path, capsys) -> None:
    left_path, right_path = _pair(tmp_path / "in", RGB, RGB)
    Path(left_path).write_bytes(b"")
    code, err = _run(
        ["predict", "--checkpoint", str(tiny_checkpoint), left_path, right_path, "--out", str(tmp_path / "o")], capsys
    )
    assert code == 1 and "x_LEFT_RGB.png: file is empty" in err
    Path(left_path).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, err = _run(
        ["predict", "--checkpoint", str(tiny_checkpoint), left_path, right_path, "--out", str(tmp_path / "o")], capsys
    )
    assert code == 1 and "x_LEFT_RGB.png: cannot be decoded" in err
    code, err = _run(["predict", "--checkpoint", str(tiny_checkpoint), str(tmp_path / "none.png"), right_path], capsys)
    assert code == 1 and "none.png: not found" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_checkpoint_of_another_model(tmp_path, capsys) -> None:
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)}, foreign)
    code, err = _run(["evaluate", "--checkpoint", str(foreign), "--out", str(tmp_path / "e")], capsys)
    assert code == 1 and "resnet.pth: not a SemStereo checkpoint" in err
    missing = tmp_path / "missing.ckpt"
    code, err = _run(["evaluate", "--checkpoint", str(missing), "--out", str(tmp_path / "e")], capsys)
    assert code == 1 and "missing.ckpt" in err
    assert not (tmp_path / "e").exists()


def test_missing_dataset_and_bad_lists(tiny_checkpoint, tmp_path, capsys) -> None:
    base = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "e")]
    code, err = _run([*base, "--data", str(tmp_path / "nowhere")], capsys)
    assert code == 1 and "nowhere: dataset folder not found" in err
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "test.txt").write_text("a.tif b.tif\n")
    code, err = _run([*base, "--data", str(tmp_path / "data")], capsys)
    assert code == 1 and "test.txt:1: 2 path(s), expected 3 or 4" in err
    assert not (tmp_path / "e").exists()


def test_nan_disparity_file(tiny_checkpoint, tmp_path, capsys) -> None:
    root = tmp_path / "data"
    image = np.zeros((64, 64, 3), np.uint8)
    for sub, suffix, array in (
        ("left", "LEFT_RGB", image),
        ("right", "RIGHT_RGB", image),
        ("disp", "LEFT_DSP", np.full((64, 64), np.nan, np.float32)),
        ("label", "LEFT_CLS", np.zeros((64, 64), np.float32)),
    ):
        write_image(root / sub / f"JAX_1_{suffix}.tif", array)
    (root / "test.txt").write_text(
        " ".join(
            f"./{s}/JAX_1_{x}.tif"
            for s, x in (("left", "LEFT_RGB"), ("right", "RIGHT_RGB"), ("disp", "LEFT_DSP"), ("label", "LEFT_CLS"))
        )
        + "\n"
    )
    code, err = _run(
        ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(root), "--out", str(tmp_path / "e")], capsys
    )
    assert code == 1 and "JAX_1_LEFT_DSP.tif: disparity contains NaN" in err
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["predict", "--tile", "50", "a.png", "b.png"], "--tile must be 0 or a multiple of 32"),
        (["evaluate", "--batch-size", "0"], "--batch-size must be >= 1"),
        (["train", "--set", "lr=-1", "--max-steps", "1"], "lr must be > 0"),
        (["train", "--set", "no_such_key=1", "--max-steps", "1"], "unknown config key no_such_key"),
        (["train", "--set", "stage=second", "--max-steps", "1"], "stage"),
        (["demo", "--steps", "0"], "--steps must be >= 1"),
    ],
)
def test_out_of_range_options_exit_1(tiny_checkpoint, tmp_path, capsys, argv, expected) -> None:
    if argv[0] in ("predict", "evaluate"):
        argv = [argv[0], "--checkpoint", str(tiny_checkpoint), *argv[1:]]
    if argv[0] == "train":
        argv = [*argv, "--run-dir", str(tmp_path / "run")]
    if argv[0] == "demo":
        argv = [*argv, "--out", str(tmp_path / "demo")]
    code, err = _run(argv, capsys)
    assert code == 1 and expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "demo").exists()
