"""``ssp evaluate`` (mIoU, class IoU, TC) and ``ssp predict`` (videos, frame folders, images), run for real."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from semcommon.io import read_image, write_image
from ssp.cli import main
from ssp.data import SyntheticClips, SyntheticConfig, write_synthetic_dataset
from ssp.data.transforms import normalize_frames
from ssp.evaluate import homography_flow_fn
from ssp.metrics import temporal_consistency
from ssp.model.registration import LearnedRegistrator, kornia_available

SMALL = SyntheticConfig(num_clips=2, frames_per_clip=4, size=(64, 96), scene_size=320, label_every=2)


def test_homography_flow_gives_tc_near_one_for_consistent_labels() -> None:
    source = SyntheticClips(SMALL)
    clip = source.clips[0]
    frames = normalize_frames([source.read_frame(clip, t) for t in range(4)])
    labels = torch.stack([torch.from_numpy(source.full_label(clip, t).astype(np.int64)) for t in range(4)])
    homos = torch.stack([torch.from_numpy(source.homography(clip, t)).float() for t in range(1, 4)])
    flow_fn = homography_flow_fn(frames, homos)
    assert float(temporal_consistency(labels, frames, flow_fn, 8)) > 0.8
    shuffled = labels[:, torch.randperm(64)]
    assert float(temporal_consistency(shuffled, frames, flow_fn, 8)) < 0.6


def _rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_evaluate_synthetic_video_and_image_checkpoints(tmp_path, video_checkpoint, image_checkpoint) -> None:
    root = write_synthetic_dataset(tmp_path / "syn", {"val": SMALL})
    for checkpoint in (video_checkpoint, image_checkpoint):
        out = tmp_path / f"eval_{checkpoint.stem}"
        args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--size", "64", "96"]
        assert main([*args, "--registration", "orb", "--flow", "none", "--out", str(out)]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert 0.0 <= metrics["mIoU"] <= 1.0 and metrics["TC"] is None
        assert metrics["labelled_frames"] == 4 and metrics["clips"] == 2 and metrics["frames"] == 8
        assert len(_rows(out / "per_frame.csv")) == 4 and len(_rows(out / "per_clip.csv")) == 2
        for name, value in metrics["class_iou"].items():
            corrected = metrics["class_iou_corrected"][name]
            assert corrected == value or (corrected is None and value == 0.0)
    out = tmp_path / "eval_synthetic"
    assert main(["evaluate", "--checkpoint", str(video_checkpoint), "--data", "synthetic", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 < metrics["TC"] <= 1.0 and 0.0 < metrics["TC_forward_backward"] <= 1.0
    assert metrics["registration"] == "given" and metrics["flow"] == "homography"
    assert all(0.0 <= float(r["tc"]) <= 1.0 for r in _rows(out / "per_clip.csv"))


def test_evaluate_refuses_raft_without_weights_and_wrong_classes(tmp_path, video_checkpoint, capsys) -> None:
    root = write_synthetic_dataset(tmp_path / "syn", {"val": SMALL})
    args = ["evaluate", "--checkpoint", str(video_checkpoint), "--data", str(root), "--size", "64", "96"]
    assert main([*args, "--out", str(tmp_path / "e")]) == 1
    assert "--raft-weights" in capsys.readouterr().err
    assert main([*args, "--dataset", "ruralscapes", "--flow", "none", "--out", str(tmp_path / "e")]) == 1
    assert "8 classes" in capsys.readouterr().err
    assert not (tmp_path / "e" / "metrics.json").exists()


def _frames_folder(path, count=3, size=(70, 100)):
    source = SyntheticClips(SyntheticConfig(num_clips=1, frames_per_clip=count, size=(96, 128), scene_size=320))
    for t in range(count):
        frame = cv2.resize(source.read_frame(source.clips[0], t), (size[1], size[0]))
        write_image(path / f"frame_{t:03d}.png", frame)
    return path


def test_predict_streams_a_frame_folder(tmp_path, video_checkpoint) -> None:
    folder = _frames_folder(tmp_path / "frames")
    out = tmp_path / "pred"
    args = ["predict", str(folder), "--checkpoint", str(video_checkpoint), "--out", str(out), "--size", "64", "96"]
    assert main([*args, "--registration", "orb"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["registered_pairs"] == 2 and summary["fps"] > 0
    for t in range(3):
        mask = read_image(out / "masks" / f"frame_{t:03d}.png")
        assert mask.shape == (70, 100) and mask.dtype == np.uint8 and mask.min() >= 1 and mask.max() <= 8
        assert read_image(out / "colour" / f"frame_{t:03d}.png").shape == (70, 100, 3)
        assert read_image(out / "overlay" / f"frame_{t:03d}.png").shape == (70, 100, 3)
    capture = cv2.VideoCapture(str(out / "preview.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()
    assert not (tmp_path / "pred.partial").exists()
    assert main([*args, "--registration", "orb"]) == 1


def test_predict_video_file_counts_registration_failures(tmp_path, video_checkpoint, image_checkpoint) -> None:
    video = tmp_path / "flat.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for _ in range(4):
        writer.write(np.full((64, 96, 3), 128, np.uint8))
    writer.release()
    out = tmp_path / "pred"
    args = ["predict", str(video), "--checkpoint", str(video_checkpoint), "--out", str(out), "--size", "64", "96"]
    assert main([*args, "--registration", "akaze", "--no-preview"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 4 and summary["registration_failures"] == 3
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    assert not (out / "preview.mp4").exists()
    image = _frames_folder(tmp_path / "one", count=2) / "frame_000.png"
    out = tmp_path / "pred_image"
    args = ["predict", str(image), "--checkpoint", str(image_checkpoint), "--out", str(out), "--size", "64", "96"]
    assert main(args) == 0
    assert read_image(out / "masks" / "frame_000.png").shape == (70, 100)


def test_predict_command_line_forms(tmp_path, video_checkpoint) -> None:
    with pytest.raises(SystemExit) as info:
        main(["predict", "a.png", "b.png", "--checkpoint", str(video_checkpoint), "--out", str(tmp_path / "o")])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["predict", "video.mp4", "--out", str(tmp_path / "o")])
    assert info.value.code == 2


@pytest.mark.skipif(not kornia_available(), reason="the learned registrator needs the ssp[learned] extra (kornia)")
def test_predict_with_learned_registration_weights(tmp_path, video_checkpoint, capsys) -> None:
    weights = tmp_path / "disk_lightglue.pt"
    torch.save(LearnedRegistrator().state_dict(), weights)
    folder = _frames_folder(tmp_path / "frames", size=(64, 96))
    args = [
        "predict",
        str(folder),
        "--checkpoint",
        str(video_checkpoint),
        "--size",
        "64",
        "96",
        "--registration",
        "disk",
    ]
    assert main([*args, "--out", str(tmp_path / "no_weights")]) == 1
    assert "--registration-weights" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "pred"), "--registration-weights", str(weights)]) == 0
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert summary["registered_pairs"] == 2 and 0 <= summary["registration_failures"] <= 2
