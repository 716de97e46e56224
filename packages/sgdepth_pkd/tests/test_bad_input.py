"""Bad input through the commands: one line naming the file or option, exit 1 (bad file/value) or 2 (command
line), and no output files left behind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semcommon.io import write_image
from sgdepth_pkd.cli import main
from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.model.sgdepth import SGDepth


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    torch.manual_seed(0)
    config = SGDepthConfig(num_layers=18, height=64, width=64, keep_unused_params=False)
    torch.save({"model": SGDepth(config).state_dict(), "config": {"model": config.to_dict()}}, path)
    return path


def _predict(checkpoint, inputs, out, *extra):
    return main(["predict", *map(str, inputs), "--checkpoint", str(checkpoint), "--out", str(out), *extra])


def _one_line_error(capsys, *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def _empty(folder) -> bool:
    return not folder.exists() or not any(folder.iterdir())


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("corrupt.png", b"\x89PNG\r\n\x1a\nbroken", "corrupt.png"),
        ("empty.png", b"", "empty"),
    ],
)
def test_unreadable_images(checkpoint, tmp_path, capsys, name, content, message) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert _predict(checkpoint, [path], tmp_path / "out") == 1
    _one_line_error(capsys, message)
    assert _empty(tmp_path / "out")


@pytest.mark.parametrize(
    ("name", "image", "message"),
    [
        ("bad.tif", np.zeros((20, 30, 2), np.uint8), "2 channels"),
        ("bad.png", np.zeros((20, 30, 3), np.uint16), "uint16"),
    ],
)
def test_wrong_channels_or_dtype(checkpoint, tmp_path, capsys, name, image, message) -> None:
    write_image(tmp_path / name, image)
    assert _predict(checkpoint, [tmp_path / name], tmp_path / "out") == 1
    _one_line_error(capsys, name, message)
    assert _empty(tmp_path / "out")


def test_mismatched_sequence_sizes(checkpoint, tmp_path, capsys) -> None:
    write_image(tmp_path / "a.png", np.zeros((20, 30, 3), np.uint8))
    write_image(tmp_path / "b.png", np.zeros((21, 30, 3), np.uint8))
    assert _predict(checkpoint, [tmp_path / "a.png", tmp_path / "b.png"], tmp_path / "out", "--poses") == 1
    _one_line_error(capsys, "b.png", "differs")
    assert _empty(tmp_path / "out")


def test_checkpoint_of_another_model_and_nan_weights(tmp_path, capsys) -> None:
    write_image(tmp_path / "a.png", np.zeros((20, 30, 3), np.uint8))
    other = tmp_path / "other.pth"
    torch.save({"model": {"backbone.weight": torch.zeros(3)}}, other)
    assert _predict(other, [tmp_path / "a.png"], tmp_path / "out") == 1
    _one_line_error(capsys, "other.pth", "not an SGDepth checkpoint")
    config = SGDepthConfig(num_layers=18, height=64, width=64, keep_unused_params=False)
    state = SGDepth(config).state_dict()
    state["depth.multires.convs.0.weight"].fill_(float("nan"))
    nan = tmp_path / "nan.pth"
    torch.save({"model": state, "config": {"model": config.to_dict()}}, nan)
    assert _predict(nan, [tmp_path / "a.png"], tmp_path / "out") == 1
    _one_line_error(capsys, "nan.pth", "NaN")
    assert _empty(tmp_path / "out")


def test_missing_dataset_folder_and_bad_values(checkpoint, tmp_path, capsys) -> None:
    base = ["evaluate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]
    assert main([*base, "--data", str(tmp_path / "no_kitti"), "--split", str(tmp_path / "s.txt")]) == 1
    _one_line_error(capsys, "no_kitti")
    assert main([*base, "--fixed-scaling", "nan"]) == 1
    _one_line_error(capsys, "--fixed-scaling")
    assert _empty(tmp_path / "out")
    with pytest.raises(SystemExit) as exc:
        main([*base, "--mask", "nowhere"])
    assert exc.value.code == 2
    capsys.readouterr()
    assert _predict(checkpoint, [tmp_path / "missing.png"], tmp_path / "out") == 1
    _one_line_error(capsys, "missing.png")


def test_train_bad_config_key_and_value(tmp_path, capsys) -> None:
    run = ["train", "--run-dir", str(tmp_path / "run"), "--quiet"]
    assert main([*run, "--set", "model.no_such_key=1"]) == 1
    _one_line_error(capsys, "no_such_key")
    assert main([*run, "--set", "stage=patch_kd"]) == 1
    _one_line_error(capsys, "teacher")
    assert _empty(tmp_path / "run")
