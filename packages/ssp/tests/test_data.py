"""Datasets: the prepared on-disk layout, split lists, synthetic video, augmentations, preparation commands."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from semcommon.io import read_image, write_image
from ssp.cli import main
from ssp.data import (
    DiskClips,
    FrameDataset,
    PairDataset,
    SyntheticClips,
    SyntheticConfig,
    read_split_list,
    write_synthetic_dataset,
)
from ssp.data.transforms import VideoSample, augment_video

TINY = SyntheticConfig(num_clips=2, frames_per_clip=4, size=(64, 96), scene_size=320, label_every=2)


def _write_clip(root, clip: str, frames: int, labelled: dict[int, np.ndarray], size=(40, 56)) -> None:
    rng = np.random.default_rng(0)
    for i in range(frames):
        write_image(root / "data" / clip / "origin" / f"{i + 1:06d}.png", rng.integers(0, 255, (*size, 3), np.uint8))
        if i in labelled:
            write_image(root / "data" / clip / "mask" / f"{i + 1:06d}.png", labelled[i])


def test_split_list_line_format(tmp_path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("0_seq1_0\n1_seq1_1\r\n\n0_seq1_0\n2_seq2_0")
    assert read_split_list(path) == ["0_seq1_0", "1_seq1_1", "2_seq2_0"]
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="empty split list"):
        read_split_list(path)


def test_disk_clips_read_the_prepared_layout(tmp_path) -> None:
    mask = np.array([[0, 1, 8], [9, 2, 7]], np.uint8).repeat(20, 0).repeat(8, 1)[:40, :56]
    mask = np.pad(mask, ((0, 0), (0, 56 - mask.shape[1])))
    _write_clip(tmp_path, "0_seq1_0", 5, {4: mask})
    _write_clip(tmp_path, "1_seq16_0", 3, {})
    (tmp_path / "train.txt").write_text("0_seq1_0\n0_seq1_0\n")
    (tmp_path / "val.txt").write_text("1_seq16_0\n")
    source = DiskClips(tmp_path, "train", "uavid")
    assert source.clips == ["0_seq1_0"]
    assert source.frame_names("0_seq1_0") == [f"{i:06d}" for i in range(1, 6)]
    assert source.labelled("0_seq1_0") == [4]
    label = source.read_label("0_seq1_0", 4)
    expected = np.where((mask == 0) | (mask > 8), 255, mask.astype(np.int64) - 1)
    np.testing.assert_array_equal(label, expected)
    assert DiskClips(tmp_path, "val", "uavid").labelled("1_seq16_0") == []
    dataset = FrameDataset(source, (32, 64), train=False)
    item = dataset[0]
    assert item["image"].shape == (3, 32, 64) and item["label"].shape == (32, 64)
    assert set(item["label"].unique().tolist()) <= {0, 1, 6, 7, 255}


def test_bad_dataset_files_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        DiskClips(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="train.txt"):
        DiskClips(tmp_path)
    (tmp_path / "train.txt").write_text("0_seq1_0\n")
    with pytest.raises(FileNotFoundError, match="0_seq1_0"):
        DiskClips(tmp_path)
    _write_clip(tmp_path, "0_seq1_0", 2, {1: np.zeros((30, 56), np.uint8)})
    source = DiskClips(tmp_path)
    with pytest.raises(ValueError, match=r"mask/000002.png.*does not match"):
        source.read_label("0_seq1_0", 1)
    write_image(tmp_path / "data" / "0_seq1_0" / "mask" / "000002.png", np.zeros((40, 56, 3), np.uint8))
    with pytest.raises(ValueError, match=r"000002.png.*single-channel"):
        source.read_label("0_seq1_0", 1)
    (tmp_path / "data" / "0_seq1_0" / "origin" / "000001.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="000001.png"):
        source.read_frame("0_seq1_0", 0)


def test_synthetic_clips_are_deterministic_and_consistent() -> None:
    a, b = SyntheticClips(TINY), SyntheticClips(TINY)
    other = SyntheticClips(SyntheticConfig(**{**TINY.__dict__, "seed": 1}))
    assert np.array_equal(a.read_frame(a.clips[1], 2), b.read_frame(b.clips[1], 2))
    assert not np.array_equal(a.read_frame(a.clips[0], 0), other.read_frame(other.clips[0], 0))
    assert a.labelled(a.clips[0]) == [1, 3]
    for clip in a.clips:
        for t in range(1, 4):
            warped = cv2.warpPerspective(a.full_label(clip, t - 1), a.homography(clip, t), (96, 64),
                                         flags=cv2.INTER_NEAREST)  # fmt: skip
            assert (warped == a.full_label(clip, t)).mean() > 0.9
    frame = a.read_frame(a.clips[0], 0)
    assert frame.dtype == np.uint8 and frame.shape == (64, 96, 3) and frame.std() > 10


def test_joint_augmentation_keeps_the_homography_valid() -> None:
    source = SyntheticClips(TINY)
    clip = source.clips[0]
    labels = [source.full_label(clip, 0), source.full_label(clip, 1)]
    onehots = [torch.nn.functional.one_hot(torch.from_numpy(x).long(), 8).permute(2, 0, 1).float() for x in labels]
    for seed in range(6):
        torch.manual_seed(seed)
        sample = VideoSample([source.read_frame(clip, 0), source.read_frame(clip, 1)], labels[1], onehots)
        augment_video(sample, (64, 96), square_crop=True, train=True)
        assert sample.size == (64, 64)
        homography = sample.transform_homography(source.homography(clip, 1))
        previous = sample.logits[0].argmax(0).numpy().astype(np.uint8)
        warped = cv2.warpPerspective(previous, homography, (64, 64), flags=cv2.INTER_NEAREST)
        assert (warped == sample.logits[1].argmax(0).numpy()).mean() > 0.85
        assert np.array_equal(sample.logits[1].argmax(0).numpy(), sample.label)


def test_pair_dataset_on_synthetic_and_written_layout(tmp_path) -> None:
    source = SyntheticClips(TINY)
    pairs = PairDataset(source, (64, 96), train=True, square_crop=True)
    assert len(pairs) == 4
    item = pairs[0]
    assert item["frames"].shape == item["last_frames"].shape == (3, 64, 64)
    assert bool(item["has_homos"]) and item["homos"].shape == (3, 3)
    root = write_synthetic_dataset(tmp_path / "syn", {"train": TINY})
    disk = DiskClips(root, "train")
    assert disk.clips == source.clips and disk.labelled(disk.clips[0]) == [1, 3]
    np.testing.assert_array_equal(disk.read_label(disk.clips[0], 1), source.read_label(source.clips[0], 1))
    opencv = PairDataset(disk, (64, 96), train=False, opencv_homos="orb")
    assert bool(opencv[0]["has_homos"])
    assert not bool(PairDataset(disk, (64, 96), train=False)[0]["has_homos"])


def _write_video(path, frames: int, size=(48, 64)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (size[1], size[0]))
    for i in range(frames):
        writer.write(np.full((*size, 3), (i * 2) % 255, np.uint8))
    writer.release()


def test_prepare_uavid_command(tmp_path) -> None:
    source = tmp_path / "uavid"
    label = np.zeros((48, 64, 3), np.uint8)
    label[:, :16] = (128, 64, 128)  # road -> 1
    label[:, 16:32] = (128, 0, 0)  # building -> 7
    label[:, 32:48] = (64, 0, 128)  # moving car -> 5
    for seq in ("seq1", "seq16"):
        _write_video(source / seq / "images.mp4", 160)
        write_image(source / seq / "Labels" / "000100.png", label)
    vdd = np.zeros((48, 64), np.uint8)
    vdd[:, 20:24] = 5  # roof on building
    vdd[:, 50:] = 6  # water on clutter
    vdd[:, 0:4] = 6  # water on road: ignored
    write_image(tmp_path / "vdd" / "seq1" / "000100.png", vdd)
    out = tmp_path / "prepared"
    assert main(["prepare-uavid", str(source), str(out), "--vdd", str(tmp_path / "vdd"), "--no-resize"]) == 0
    assert (out / "train.txt").read_text() == "0_seq1_0\n1_seq1_1\n"
    assert (out / "val.txt").read_text() == "2_seq16_0\n3_seq16_1\n"
    frames = sorted(p.name for p in (out / "data" / "0_seq1_0" / "origin").iterdir())
    assert len(frames) == 100 and frames[0] == "000001.png" and frames[-1] == "000100.png"
    assert len(list((out / "data" / "1_seq1_1" / "origin").iterdir())) == 59
    mask = read_image(out / "data" / "0_seq1_0" / "mask" / "000100.png")
    assert mask[0, 0] == 1 and mask[0, 18] == 7 and mask[0, 21] == 8 and mask[0, 40] == 5
    assert mask[0, 55] == 6 and mask[0, 2] == 1 and mask[0, 49] == 0
    assert main(["prepare-uavid", str(source), str(out), "--no-resize"]) == 1


def test_prepare_ruralscapes_command(tmp_path) -> None:
    source = tmp_path / "rural"
    _write_video(source / "videos" / "DJI_0043.MP4", 121)
    _write_video(source / "videos" / "DJI_0051.MP4", 121)
    label = np.zeros((48, 64, 3), np.uint8)
    label[:, :32] = (0, 127, 0)  # forest -> 3
    label[:, 32:] = (0, 0, 255)  # water -> 12
    write_image(source / "labels" / "segprop_DJI_0043_000050.png", label)
    write_image(source / "labels" / "segprop_DJI_0051_000050.png", label)
    out = tmp_path / "prepared"
    assert main(["prepare-ruralscapes", str(source), str(out), "--resize", "96", "64"]) == 0
    assert (out / "train.txt").read_text() == "0_DJI_0043_0\n"
    assert (out / "val.txt").read_text() == "1_DJI_0051_0\n"
    frames = sorted(p.name for p in (out / "data" / "0_DJI_0043_0" / "origin").iterdir())
    assert len(frames) == 23 and frames[0] == "segfull_DJI_0043_000005.png" and frames[-1].endswith("000115.png")
    mask = read_image(out / "data" / "0_DJI_0043_0" / "mask" / "segfull_DJI_0043_000050.png")
    assert mask.shape == (64, 96) and mask[0, 0] == 3 and mask[0, -1] == 12
    assert read_image(out / "data" / "0_DJI_0043_0" / "origin" / frames[0]).shape == (64, 96, 3)
    source_clips = DiskClips(out, "val", "ruralscapes")
    assert source_clips.read_label(source_clips.clips[0], 9)[0, -1] == 11
