"""Stage 2: a tiny MegaDepth tree written in glue-factory's layout (COLMAP text model, HDF5 depth maps, split lists),
``prepare-megadepth``, the pair loader, depth-based ground truth with occlusion, and ``train`` on it."""

from __future__ import annotations

import json

import cv2
import h5py
import numpy as np
import pytest
import skimage.data
import torch

from semaglue.cli import main
from semaglue.data.megadepth import MegaDepthConfig, MegaDepthPairs, load_scene_info, read_depth
from semaglue.depth_matches import gt_matches_from_depth
from semaglue.train import SemaGlueTask, TrainConfig
from semcommon.training import load_config

F, Z, H, W = 60.0, 5.0, 72, 96  # focal (px), plane depth, image size
SHIFTS = (0.0, 0.5, 1.0)  # camera x positions: camera i sees the plane shifted by -F * x / Z px
K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])


def _write_scene(root, scene: str = "0001", occluder: bool = False) -> None:
    """Three cameras translating along x in front of a textured plane at depth Z (camera 2 optionally sees a
    near occluder in its left quarter); COLMAP ``sparse/{cameras,images}.txt`` with shared 3-D point ids."""
    texture = cv2.resize(skimage.data.camera(), (W + 40, H)).astype(np.float32) / 255.0
    (root / "Undistorted_SfM" / scene / "images").mkdir(parents=True)
    (root / "Undistorted_SfM" / scene / "sparse").mkdir()
    (root / "depth_undistorted" / scene).mkdir(parents=True)
    lines = []
    for i, x in enumerate(SHIFTS):
        offset = round(F * x / Z)
        image = texture[:, offset : offset + W]
        depth = np.full((H, W), Z, np.float32)
        if occluder and i == 2:
            depth[:, : W // 4] = 2.0
        depth[:4] = 0.0  # unknown depth band at the top
        cv2.imwrite(str(root / "Undistorted_SfM" / scene / "images" / f"im{i}.jpg"), (image * 255).astype(np.uint8))
        with h5py.File(root / "depth_undistorted" / scene / f"im{i}.h5", "w") as f:
            f.create_dataset("depth", data=depth)
        points = " ".join(f"{10 + k} {10 + k} {k}" for k in range(10 - 3 * i, 40))
        lines += [f"{i + 1} 1 0 0 0 {-x} 0 0 1 im{i}.jpg", points]
    sparse = root / "Undistorted_SfM" / scene / "sparse"
    (sparse / "cameras.txt").write_text(f"# camera\n1 PINHOLE {W} {H} {F} {F} {W / 2} {H / 2}\n")
    (sparse / "images.txt").write_text("# images\n" + "\n".join(lines) + "\n")
    (root / "train_scenes_clean.txt").write_text(f"{scene}\n")
    (root / "valid_scenes_clean.txt").write_text(f"{scene}\n")


def test_prepare_and_load_pairs(tmp_path, capsys) -> None:
    _write_scene(tmp_path)
    assert main(["prepare-megadepth", "--root", str(tmp_path), "--scene", "0001"]) == 0
    info = load_scene_info(tmp_path / "scene_info" / "0001.npz")
    assert list(info["image_paths"]) == [f"Undistorted_SfM/0001/images/im{i}.jpg" for i in range(3)]
    np.testing.assert_allclose(info["intrinsics"][1], K)
    np.testing.assert_allclose(info["poses"][2][:3, 3], [-1.0, 0, 0])
    assert info["overlap_matrix"][0, 1] == pytest.approx(30 / 33) and info["overlap_matrix"][0, 2] == pytest.approx(
        30 / 36
    )
    # a second run never overwrites
    assert main(["prepare-megadepth", "--root", str(tmp_path), "--scene", "0001"]) == 1
    assert "exists" in capsys.readouterr().err
    cfg = MegaDepthConfig(resize=48, min_overlap=0.5, max_overlap=1.0, num_overlap_bins=1, train_num_per_scene=5)
    pairs = MegaDepthPairs(tmp_path, cfg)
    assert len(pairs) == 3
    item = pairs[0]
    assert item["image0"].shape == (1, 48, 48) and item["depth0"].shape == (48, 48)
    assert float(item["depth0"][40:].abs().sum()) == 0.0  # square padding is unknown depth
    np.testing.assert_allclose(item["K0"].numpy(), np.diag([0.5, 0.5, 1]) @ K, rtol=1e-6)
    np.testing.assert_allclose(item["T_0to1"][:3, 3].numpy(), [-0.5, 0, 0], atol=1e-6)


def test_gt_from_depth_reprojection_and_occlusion(tmp_path) -> None:
    _write_scene(tmp_path, occluder=True)
    depth = [torch.from_numpy(read_depth(tmp_path / "depth_undistorted" / "0001" / f"im{i}.h5")) for i in range(3)]
    shift = F * SHIFTS[2] / Z  # image 2 sees everything shifted left by 12 px
    kpts0 = torch.tensor([[50.0, 30.0], [80.0, 40.0], [30.0, 2.0], [40.0, 50.0], [5.0, 30.0]])
    kpts1 = torch.tensor([[50.0 - shift, 30.0], [80.0 - shift + 1.0, 40.0], [30.0 - shift, 2.0], [60.0, 60.0]])
    T = torch.eye(4, dtype=torch.float64)
    T[0, 3] = -SHIFTS[2]
    Kt = torch.from_numpy(K)
    gt0, gt1 = gt_matches_from_depth(
        kpts0[None], kpts1[None], depth[0][None], depth[2][None], Kt[None], Kt[None], T[None], 3.0, 5.0, 0.1
    )
    # 0: exact; 1: 1 px off (< 3 px); 2: depth unknown (ignored); 3: no neighbour near its reprojection (28, 50);
    # 4: reprojects outside image 2 (x = -7)
    assert gt0[0].tolist() == [0, 1, -2, -1, -1]
    assert gt1[0].tolist() == [0, 1, -2, -1]
    # occlusion: (30, 50) in image 0 reprojects to (18, 50), where camera 2 sees the occluder at depth 2 != 5
    gt0, _ = gt_matches_from_depth(
        torch.tensor([[[30.0, 50.0]]]),
        torch.tensor([[[30.0 - shift, 50.0]]]),
        depth[0][None],
        depth[2][None],
        Kt[None],
        Kt[None],
        T[None],
    )
    assert gt0.tolist() == [[-1]]
    gt0, _ = gt_matches_from_depth(
        torch.tensor([[[40.0, 50.0]]]),
        torch.tensor([[[40.0 - shift, 50.0]]]),
        depth[0][None],
        depth[0][None],
        Kt[None],
        Kt[None],
        T[None],
    )
    assert gt0.tolist() == [[0]]


def test_bad_megadepth_files(tmp_path) -> None:
    _write_scene(tmp_path)
    with pytest.raises(FileNotFoundError, match="0001.npz"):
        MegaDepthPairs(tmp_path, MegaDepthConfig(resize=48))
    (tmp_path / "scene_info").mkdir()
    np.savez(tmp_path / "scene_info" / "0001.npz", image_paths=np.array(["a"], dtype=object))
    with pytest.raises(ValueError, match="0001.npz: missing key 'depth_paths'"):
        MegaDepthPairs(tmp_path, MegaDepthConfig(resize=48))
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("depth", data=np.full((4, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match="bad.h5"):
        read_depth(bad)
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="bad.h5: not a readable HDF5"):
        read_depth(bad)


def test_train_stage2_on_megadepth_layout(tmp_path) -> None:
    data = tmp_path / "megadepth"
    data.mkdir()
    _write_scene(data)
    assert main(["prepare-megadepth", "--root", str(data), "--scene", "0001"]) == 0
    run = tmp_path / "run"
    args = ["train", "--data", str(data), "--run-dir", str(run), "--max-steps", "2", "--device", "cpu", "--quiet"]
    args += ["--batch-size", "2"]
    for item in (
        "stage=megadepth",
        "megadepth.resize=64",
        "megadepth.min_overlap=0.5",
        "megadepth.max_overlap=1.0",
        "megadepth.num_overlap_bins=1",
        "megadepth.val_num_per_scene=2",
        "features.max_keypoints=32",
        "matcher.n_layers=2",
        "matcher.descriptor_dim=32",
        "matcher.num_heads=2",
        "segnext.embed_dims=[8,8,8,16]",
        "segnext.depths=[1,1,1,1]",
    ):
        args += ["--set", item]
    assert main(args) == 0
    task = SemaGlueTask(load_config(TrainConfig, None, [a for a in args[12:] if a != "--set"]), str(data))
    item = task.train_dataset()[0]  # SIFT keypoints of two views of one plane: most have a depth-based match
    assert int((item["gt_matches0"] >= 0).sum()) > 0.5 * int(item["mask0"].sum()) > 5
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("kind") == "eval"]
    assert evals and {"AUC@5", "AUC@20", "precision", "recall", "loss"} <= set(evals[-1])
    train_logs = [r for r in records if "loss" in r and r.get("kind") != "eval"]
    assert train_logs and all(np.isfinite(r["loss"]) for r in train_logs)
    assert main(["train", "--data", "synthetic", "--run-dir", str(tmp_path / "x"), "--set", "stage=megadepth"]) == 1
