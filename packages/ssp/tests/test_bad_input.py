"""Bad input: one line naming the file or option, exit 1 (bad file / value) or 2 (bad command line), no output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from semcommon.io import write_image
from ssp.cli import main
from ssp.data import SyntheticClips, SyntheticConfig
from ssp.data.transforms import load_teacher_logits
from ssp.model import RAFT


@pytest.fixture
def frames(tmp_path):
    source = SyntheticClips(SyntheticConfig(num_clips=1, frames_per_clip=2, size=(64, 96), scene_size=320))
    folder = tmp_path / "frames"
    for t in range(2):
        write_image(folder / f"{t:03d}.png", source.read_frame(source.clips[0], t))
    return folder


def _predict(inputs, checkpoint, out, *extra):
    return main(["predict", str(inputs), "--checkpoint", str(checkpoint), "--out", str(out), "--size", "64", "96",
                 "--registration", "identity", *extra])  # fmt: skip


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_frames_of_different_sizes(tmp_path, frames, video_checkpoint, capsys) -> None:
    write_image(frames / "002.png", np.zeros((50, 96, 3), np.uint8))
    assert _predict(frames, video_checkpoint, tmp_path / "out") == 1
    assert "002.png" in _error(capsys) and not (tmp_path / "out").exists()
    assert not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n truncated"])
def test_empty_or_corrupt_frame(tmp_path, frames, video_checkpoint, capsys, content) -> None:
    (frames / "001.png").write_bytes(content)
    assert _predict(frames, video_checkpoint, tmp_path / "out") == 1
    assert "001.png" in _error(capsys) and not (tmp_path / "out").exists()


def test_wrong_channels_and_dtype(tmp_path, video_checkpoint, capsys) -> None:
    write_image(tmp_path / "grey.png", np.zeros((64, 96), np.uint8))
    assert _predict(tmp_path / "grey.png", video_checkpoint, tmp_path / "out") == 1
    assert "grey.png" in _error(capsys)
    write_image(tmp_path / "deep.png", np.zeros((64, 96, 3), np.uint16))
    assert _predict(tmp_path / "deep.png", video_checkpoint, tmp_path / "out") == 1
    assert "deep.png" in _error(capsys) and not (tmp_path / "out").exists()


def test_nan_teacher_logits_and_wrong_class_count(tmp_path) -> None:
    path = tmp_path / "000001.npz"
    np.savez_compressed(path, np.full((8, 4, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"000001.npz.*NaN"):
        load_teacher_logits(path, 8)
    np.savez_compressed(path, np.zeros((12, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"000001.npz.*C = 8"):
        load_teacher_logits(path, 8)


def test_out_of_range_options(tmp_path, frames, video_checkpoint, capsys) -> None:
    args = ["predict", str(frames), "--checkpoint", str(video_checkpoint), "--out", str(tmp_path / "out")]
    assert main([*args, "--size", "50", "96"]) == 1
    assert "--size" in _error(capsys)
    with pytest.raises(SystemExit) as info:
        main([*args, "--registration", "magic"])
    assert info.value.code == 2 and "--registration" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "demo"), "--threads", "0"]) == 1
    assert "--threads" in _error(capsys) and not (tmp_path / "demo").exists()
    assert main(["prepare-uavid", str(tmp_path), str(tmp_path / "p"), "--resize", "8", "8"]) == 1
    assert "--resize" in _error(capsys)


def test_checkpoint_of_another_model(tmp_path, frames, capsys) -> None:
    path = tmp_path / "raft-things.pth"
    torch.save({f"module.{k}": v for k, v in RAFT().state_dict().items()}, path)
    assert _predict(frames, path, tmp_path / "out") == 1
    assert "raft-things.pth" in _error(capsys) and not (tmp_path / "out").exists()


def test_missing_dataset_folder_and_existing_output(tmp_path, video_checkpoint, frames, capsys) -> None:
    args = ["evaluate", "--checkpoint", str(video_checkpoint), "--flow", "none", "--out", str(tmp_path / "e")]
    assert main([*args, "--data", str(tmp_path / "absent")]) == 1
    assert "absent" in _error(capsys) and not (tmp_path / "e").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert _predict(frames, video_checkpoint, tmp_path / "mine") == 1
    assert "mine" in _error(capsys) and (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_demo_runs_at_a_tiny_setting(tmp_path) -> None:
    out = tmp_path / "demo"
    tiny = ["--image-steps", "2", "--video-steps", "1", "--train-clips", "2", "--test-clips", "1"]
    assert main(["demo", "--out", str(out), *tiny]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"model", "baseline", "primary", "config", "seconds"}
    assert metrics["primary"] == {"metric": "TC", "higher_is_better": True}
    for side in ("model", "baseline"):
        assert 0.0 <= metrics[side]["TC"] <= 1.0 and 0.0 <= metrics[side]["mIoU"] <= 1.0
    assert metrics["config"]["image_steps"] == 2 and metrics["seconds"] > 0
    assert (out / "demo.png").stat().st_size > 0
    from ssp.checkpoint import load_pretrained
    from ssp.model import SSPVideoModel

    assert isinstance(load_pretrained(out / "ssp.pt"), SSPVideoModel)  # the trained SSP model, scored by the bench
