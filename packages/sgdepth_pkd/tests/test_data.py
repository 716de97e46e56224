"""Datasets: synthetic sequences (deterministic, geometrically consistent), KITTI raw and Cityscapes layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semcommon.io import write_image
from sgdepth_pkd.data.cityscapes import CityscapesDataset
from sgdepth_pkd.data.kitti import KittiRawDataset, export_gt_depths, load_gt_depths, read_split, velodyne_depth_map
from sgdepth_pkd.data.synthetic import SyntheticConfig, SyntheticDrivingDataset, generate_sequence
from sgdepth_pkd.geometry import warp_frames

TINY = SyntheticConfig(height=32, width=96, frames=3, cars=2, poles=1)


def test_synthetic_is_deterministic_and_labelled() -> None:
    a, b = generate_sequence(3, TINY), generate_sequence(3, TINY)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, generate_sequence(4, TINY).images)
    assert set(np.unique(a.labels)) <= {0, 1, 2, 5, 10, 13}
    assert ((a.depths > 0) == (a.labels != 10)).all() and a.depths.max() < 80


def test_synthetic_frames_are_reprojections_of_each_other() -> None:
    """Warping the neighbours with the true depth and pose reproduces the frame far better than not warping."""
    sample = SyntheticDrivingDataset(1, SyntheticConfig(height=64, width=192, frames=3))[0]
    gt = sample["depth", 0, 0][None]
    disp = (1 / torch.where(gt > 0, gt, torch.tensor(100.0)) - 0.01) / (10 - 0.01)
    sources = {f: sample["color", f, 0][None] for f in (-1, 1)}
    poses = {f: sample["pose_gt", f][None] for f in (-1, 1)}
    warped = warp_frames([disp], sources, sample["K"][None], sample["inv_K"][None], poses)
    valid = gt[0, 0] > 0
    for f in (-1, 1):
        warp_error = (warped["color", f, 0][0] - sample["color", 0, 0]).abs().mean(0)[valid].mean()
        identity_error = (sources[f][0] - sample["color", 0, 0]).abs().mean(0)[valid].mean()
        assert warp_error < 0.5 * identity_error


def _write_kitti(root, frames=(0, 1, 2)) -> None:
    date = root / "2011_09_26"
    drive = date / "2011_09_26_drive_0001_sync"
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for frame in frames:
        write_image(drive / "image_02" / "data" / f"{frame:010d}.png", rng.integers(0, 255, (20, 40, 3), np.uint8))
    (date / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\nS_rect_02: 4.0e+01 2.0e+01\nR_rect_00: 1 0 0 0 1 0 0 0 1\n"
        "P_rect_02: 30 0 20 0 0 30 10 0 0 0 1 0\n"
    )
    (date / "calib_velo_to_cam.txt").write_text("R: 0 -1 0 0 0 -1 1 0 0\nT: 0 0 0\n")
    # two points on the optical axis (10 m and 5 m: the nearer wins), one behind the sensor, one off to the left
    points = np.array([[10, 0, 0, 1], [5, 0, 0, 1], [-3, 0, 0, 1], [8, 2, 0, 1]], dtype=np.float32)
    points.tofile(drive / "velodyne_points" / "data" / "0000000001.bin")


def test_kitti_split_formats_velodyne_gt_and_samples(tmp_path) -> None:
    _write_kitti(tmp_path)
    split = tmp_path / "test.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0001_sync 1 l\n# comment\n")
    eigen = tmp_path / "eigen.txt"
    eigen.write_text("2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000001.png\n")
    assert read_split(split) == read_split(eigen)
    depth = velodyne_depth_map(tmp_path / "2011_09_26", read_split(split)[0].velodyne_path(tmp_path))
    assert depth.shape == (20, 40) and depth[9, 19] == 5.0
    assert depth[9, round(20 - 30 * 2 / 8) - 1] == 8.0 and np.count_nonzero(depth) == 2
    npz = export_gt_depths(tmp_path, read_split(split), tmp_path / "gt_depths.npz")
    np.testing.assert_array_equal(load_gt_depths(npz, 1)[0], depth)
    sample = KittiRawDataset(tmp_path, split, size=(32, 64), gt=npz)[0]
    assert sample["color_aug", -1, 0].shape == (3, 32, 64) and sample["depth", 0, 0].shape == (1, 20, 40)
    torch.testing.assert_close(sample["K"][0, 0], torch.tensor(30 / 40 * 64))


def test_kitti_bad_inputs_name_the_file(tmp_path) -> None:
    _write_kitti(tmp_path, frames=(0, 1))
    split = tmp_path / "split.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0001_sync 1 l\n")
    with pytest.raises(ValueError, match="0000000002.png"):
        KittiRawDataset(tmp_path, split)[0]
    split.write_text("2011_09_26/2011_09_26_drive_0001_sync one x\n")
    with pytest.raises(ValueError, match="split.txt:1"):
        read_split(split)
    with pytest.raises(FileNotFoundError, match="missing"):
        KittiRawDataset(tmp_path / "missing", split)
    split.write_text("2011_09_26/2011_09_26_drive_0001_sync 1 l\n")
    np.savez(tmp_path / "gt.npz", data=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="2 depth maps, the split has 1"):
        KittiRawDataset(tmp_path, split, gt=tmp_path / "gt.npz")


def test_cityscapes_layout_and_train_ids(tmp_path) -> None:
    image_dir, label_dir = tmp_path / "leftImg8bit" / "val" / "aachen", tmp_path / "gtFine" / "val" / "aachen"
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    write_image(image_dir / "aachen_000000_000019_leftImg8bit.png", np.zeros((16, 32, 3), np.uint8))
    ids = np.zeros((16, 32), np.uint8)
    ids[:, :8], ids[:, 8:16], ids[:, 16:24], ids[:, 24:] = 7, 26, 23, 4  # road, car, sky, void
    write_image(label_dir / "aachen_000000_000019_gtFine_labelIds.png", ids)
    sample = CityscapesDataset(tmp_path, "val", size=(16, 32))[0]
    assert sample["segmentation", 0, 0][0, 0].tolist() == [0] * 8 + [13] * 8 + [10] * 8 + [255] * 8
    write_image(label_dir / "aachen_000000_000019_gtFine_labelIds.png", ids[:8])
    with pytest.raises(ValueError, match="gtFine_labelIds.png: size"):
        CityscapesDataset(tmp_path, "val", size=(16, 32))[0]


def test_prepare_kitti_unzips_listed_archives_and_exports_gt(tmp_path, capsys) -> None:
    import zipfile

    from sgdepth_pkd.cli import main

    source = tmp_path / "source"
    _write_kitti(source)
    archives = tmp_path / "zips"
    archives.mkdir()
    with zipfile.ZipFile(archives / "2011_09_26_drive_0001_sync.zip", "w") as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(source).as_posix())
    listing = tmp_path / "archives.txt"
    listing.write_text(
        "https://example.org/raw_data/2011_09_26_drive_0001/2011_09_26_drive_0001_sync.zip\n"
        "https://example.org/raw_data/2011_09_26_drive_0002/2011_09_26_drive_0002_sync.zip\n"
    )
    split = tmp_path / "split.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0001_sync 1 l\n")
    root = tmp_path / "kitti"
    args = ["prepare-kitti", "--root", str(root), "--archives", str(archives), "--list", str(listing)]
    assert main([*args, "--split", str(split)]) == 0
    assert "unzipped 1 of 2" in capsys.readouterr().out
    np.testing.assert_array_equal(load_gt_depths(root / "gt_depths.npz", 1)[0][9, 19], 5.0)
    assert main(["prepare-kitti", "--root", str(root)]) == 1
