"""Datasets on tiny files written in the real layouts, the synthetic generator and the homography geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from semaglue.data.hpatches import HPatches
from semaglue.data.synthetic import HELD_OUT_PHOTOS, SyntheticConfig, SyntheticHomographies
from semaglue.data.yfcc import YFCCPairs
from semaglue.features import mutual_nn_ratio, sift_features
from semaglue.homography import corner_error, gt_matches_from_homography, homography_auc, warp_points


def test_synthetic_pairs_are_deterministic_and_consistent() -> None:
    cfg = SyntheticConfig(height=96, width=128, num_pairs=3, seed=4)
    a, b = SyntheticHomographies(cfg)[2], SyntheticHomographies(cfg)[2]
    assert torch.equal(a["image0"], b["image0"]) and torch.equal(a["H_0to1"], b["H_0to1"])
    assert a["image0"].shape == (1, 96, 128) and a["image0"].min() >= 0 and a["image0"].max() <= 1
    other = SyntheticHomographies(SyntheticConfig(height=96, width=128, num_pairs=3, seed=5))[2]
    assert not torch.equal(a["image0"], other["image0"])
    clean = SyntheticHomographies(SyntheticConfig(height=96, width=128, num_pairs=1, photometric=False))[0]
    warped = cv2.warpPerspective(clean["image0"][0].numpy(), clean["H_0to1"].numpy(), (128, 96))
    valid = cv2.warpPerspective(np.ones((96, 128), np.float32), clean["H_0to1"].numpy(), (128, 96)) > 0.99
    valid = cv2.erode(valid.astype(np.uint8), np.ones((5, 5))) > 0
    assert valid.mean() > 0.2
    assert np.abs(warped - clean["image1"][0].numpy())[valid].mean() < 0.03  # H_0to1 really maps image0 onto image1


def test_gt_matches_from_homography() -> None:
    H = torch.tensor([[1.0, 0, 10], [0, 1, 5], [0, 0, 1]], dtype=torch.float64)
    k0 = torch.tensor([[[20.0, 20], [50, 40], [90, 10], [30, 30]]])
    k1 = torch.tensor([[[60.0, 45], [30.0, 25], [5, 5], [41.5, 35]]])
    gt0, gt1 = gt_matches_from_homography(k0, k1, H, (60, 100), (60, 100))
    # (20,20)->(30,25): match 1; (50,40)->(60,45): match 0; (90,10)->(100,15) leaves image 1 -> unmatched;
    # (30,30)->(40,35) lies 1.5 px from (41.5,35): below the 3 px threshold and mutual -> match 3
    assert gt0.tolist() == [[1, 0, -1, 3]] and gt1.tolist() == [[1, 0, -1, 3]]
    mask1 = torch.tensor([[True, True, True, False]])
    gt0, gt1 = gt_matches_from_homography(k0, k1, H, (60, 100), (60, 100), mask1=mask1)
    assert gt0[0, 3] == -1 and gt1[0, 3] == -2  # the padded point is ignored; its partner is now unmatched
    k1[0, 3] = torch.tensor([44.0, 35])  # 4 px away: neither a match nor clearly unmatched -> ignored
    gt0, gt1 = gt_matches_from_homography(k0, k1, H, (60, 100), (60, 100))
    assert gt0[0, 3] == -2 and gt1[0, 3] == -2


def test_corner_error_and_auc() -> None:
    H = np.array([[1.0, 0, 2], [0, 1, 0], [0, 0, 1]])
    assert corner_error(np.eye(3), H, (10, 10)) == pytest.approx(2.0)
    assert corner_error(None, H, (10, 10)) == float("inf")
    assert np.allclose(warp_points([[1, 1]], H), [[3, 1]])
    aucs = homography_auc([0.5, float("inf")])
    assert aucs["H_AUC@1px"] == pytest.approx(100 * (0.5 * 0.5 / 2 + 0.5 * 0.5))  # ramp to 0.5 at 0.5 px, then flat


def test_sift_and_mutual_ratio_baseline() -> None:
    pair = SyntheticHomographies(SyntheticConfig(num_pairs=1, photos=HELD_OUT_PHOTOS[:1], photometric=False))[0]
    f0 = sift_features(pair["image0"][0].numpy(), 128)
    f1 = sift_features(pair["image1"][0].numpy(), 128)
    assert f0["descriptors"].shape == (128, len(f0["keypoints"])) and 20 < len(f0["keypoints"]) <= 128
    assert np.allclose(np.linalg.norm(f0["descriptors"], axis=0), 1, atol=1e-5)
    matches, conf = mutual_nn_ratio(f0["descriptors"], f1["descriptors"])
    valid = matches > -1
    err = np.linalg.norm(
        warp_points(f0["keypoints"][valid], pair["H_0to1"].numpy()) - f1["keypoints"][matches[valid]], axis=1
    )
    assert valid.sum() > 10 and np.mean(err < 3) > 0.8 and (conf[valid] > 0).all()
    assert np.unique(matches[valid]).size == valid.sum()  # one-to-one
    assert sift_features(np.zeros((64, 64)), 10)["keypoints"].shape == (0, 2)


def _write_hpatches(root, size=(48, 64)) -> None:
    rng = np.random.default_rng(0)
    for seq in ("i_a", "v_b"):
        (root / seq).mkdir(parents=True)
        for k in range(1, 7):
            cv2.imwrite(str(root / seq / f"{k}.ppm"), rng.integers(0, 255, (*size, 3), dtype=np.uint8))
            if k > 1:
                np.savetxt(root / seq / f"H_1_{k}", np.array([[1, 0, k], [0, 1, 0], [0, 0, 1.0]]))


def test_hpatches_layout(tmp_path) -> None:
    _write_hpatches(tmp_path)
    data = HPatches(tmp_path)
    assert len(data) == 10
    item = data[6]
    assert item["name"] == "v_b_1_3" and item["scene_type"] == "v" and item["image0"].shape == (1, 48, 64)
    assert item["H_0to1"][0, 2] == 3 and item["image1"].min() >= 0 and item["image1"].max() <= 1
    small = HPatches(tmp_path, max_size=32)[6]
    assert small["image0"].shape == (1, 24, 32) and small["H_0to1"][0, 2] == pytest.approx(1.5)


def test_hpatches_bad_files_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="HPatches root"):
        HPatches(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="i_\\*/v_\\*"):
        HPatches(tmp_path / "empty")
    _write_hpatches(tmp_path / "d")
    (tmp_path / "d" / "i_a" / "H_1_2").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match="H_1_2"):
        HPatches(tmp_path / "d")[0]
    (tmp_path / "d" / "i_a" / "3.ppm").write_bytes(b"P6 garbage")
    with pytest.raises(ValueError, match="3.ppm"):
        HPatches(tmp_path / "d")[1]


def test_yfcc_pairs_line_format(tmp_path) -> None:
    (tmp_path / "scene" / "test" / "images").mkdir(parents=True)
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / "scene" / "test" / "images" / f"{name}.jpg"), np.full((60, 80), 128, np.uint8))
    K = "500 0 39.5 0 500 29.5 0 0 1"
    T = " ".join(str(v) for v in np.eye(4).ravel())
    line = f"scene/test/images/a.jpg scene/test/images/b.jpg 0 1 {K} {K} {T}"
    (tmp_path / "pairs.txt").write_text(line + "\n")
    data = YFCCPairs(tmp_path / "pairs.txt", tmp_path, resize=[160])
    item = data[0]
    assert item["name"] == "a_b" and item["image0"].shape == (1, 120, 160) and item["image1"].shape == (1, 160, 120)
    assert item["pair"].rot1 == 1 and item["pair"].K0[0, 2] == 39.5
    (tmp_path / "bad.txt").write_text(line.rsplit(" ", 1)[0] + "\n")
    with pytest.raises(ValueError, match="bad.txt:1: --eval needs 38 fields"):
        YFCCPairs(tmp_path / "bad.txt", tmp_path)


def test_mutual_ratio_with_single_keypoints() -> None:
    """Regression: one keypoint on a side crashed np.partition; a lone candidate passes the ratio test."""
    desc = np.eye(4, dtype=np.float32)[:, :3]
    matches, _ = mutual_nn_ratio(desc[:, :1], desc)
    assert matches.tolist() == [0]
    matches, _ = mutual_nn_ratio(desc, desc[:, 1:2])
    assert matches.tolist() == [-1, 0, -1]
    assert mutual_nn_ratio(desc, desc[:, :0])[0].tolist() == [-1, -1, -1]
