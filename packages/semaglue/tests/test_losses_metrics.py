"""Losses and evaluation maths on hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semaglue import geometry, losses, metrics


def test_nll_assignment_loss_by_hand() -> None:
    scores = torch.log(torch.tensor([[[0.5, 0.2, 0.3], [0.1, 0.6, 0.3], [0.4, 0.4, 0.0]]]))
    gt0, gt1 = torch.tensor([[0, -1]]), torch.tensor([[0, -1]])
    pos = -math.log(0.5)
    neg = -(math.log(0.3) + math.log(0.4)) / 2  # row 1 -> dustbin, column 1 -> dustbin
    assert losses.nll_assignment_loss(scores, gt0, gt1).item() == pytest.approx(0.5 * pos + 0.5 * neg, rel=1e-6)
    ignored = losses.nll_assignment_loss(scores, gt0, torch.tensor([[0, -2]])).item()
    assert ignored == pytest.approx(0.5 * pos + 0.5 * -math.log(0.3), rel=1e-6)
    with pytest.raises(ValueError, match="gt_matches0/1"):
        losses.nll_assignment_loss(scores, torch.tensor([[0]]), gt1)
    stacked = losses.semaglue_loss(torch.stack([scores, scores]), gt0, gt1)
    assert stacked.item() == pytest.approx(0.5 * pos + 0.5 * neg, rel=1e-6)


def test_token_confidence_loss() -> None:
    conf = torch.tensor([[0.9, 0.2]])
    loss = losses.token_confidence_loss(
        conf, conf, torch.tensor([[1, 0]]), torch.tensor([[1, 0]]), torch.tensor([[1, 1]]), torch.tensor([[1, 1]])
    )
    assert loss.item() == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, rel=1e-6)


def test_pose_auc_by_hand() -> None:
    # errors 1 and 3 of 4 pairs (others inf): recall curve (0,0)-(1,.25)-(3,.5)-(5,.5)
    aucs = metrics.pose_auc([3.0, np.inf, 1.0, np.inf], [5])
    assert aucs[0] == pytest.approx((0.5 * 1 * 0.25 + 2 * (0.25 + 0.5) / 2 + 2 * 0.5) / 5)
    assert metrics.pose_auc([0.0, 0.0], [5, 10]) == [1.0, 1.0]
    with pytest.raises(ValueError):
        metrics.pose_auc([])


def test_epipolar_error_and_pose_error_on_known_geometry() -> None:
    rng = np.random.default_rng(0)
    K = np.array([[400.0, 0, 160], [0, 410.0, 120], [0, 0, 1]])
    R = geometry.rotate_pose_inplane(np.eye(4), 0)[:3, :3] @ np.array(
        [[math.cos(0.1), 0, math.sin(0.1)], [0, 1, 0], [-math.sin(0.1), 0, math.cos(0.1)]]
    )
    t = np.array([0.5, 0.0, 0.1])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    X = np.c_[rng.uniform(-1, 1, (30, 2)), rng.uniform(4, 6, 30)]
    x0 = X @ K.T
    x1 = (X @ R.T + t) @ K.T
    k0, k1 = x0[:, :2] / x0[:, 2:], x1[:, :2] / x1[:, 2:]
    assert np.abs(metrics.compute_epipolar_error(k0, k1, T, K, K)).max() < 1e-20
    assert metrics.compute_epipolar_error(k0, k1 + np.array([0, 20.0]), T, K, K).min() > 5e-4
    assert metrics.compute_pose_error(T, R, -2 * t) == pytest.approx((0.0, 0.0), abs=1e-5)
    for method in geometry.POSE_ESTIMATORS:
        R_est, t_est, inliers = geometry.estimate_pose(k0, k1, K, K, method=method)
        assert inliers.all()
        assert max(metrics.compute_pose_error(T, R_est, t_est)) < 1e-3
    assert geometry.estimate_pose(k0[:4], k1[:4], K, K) is None
    with pytest.raises(ValueError, match="method"):
        geometry.estimate_pose(k0, k1, K, K, method="lmeds")  # type: ignore[arg-type]


def test_precision_matching_score_and_table() -> None:
    assert metrics.precision(np.array([], dtype=bool)) == 0.0
    assert metrics.matching_score(np.array([True, True, False]), 8) == 0.25
    table = metrics.aggregate_results([1.0, np.inf], [2.0, 0.0], [1.0, 0.5], [0.2, 0.4])
    assert list(table) == ["AUC@5", "AUC@10", "AUC@20", "Prec", "MScore"]
    assert table["Prec"] == 75.0 and table["MScore"] == pytest.approx(30.0)
    text = metrics.format_table(table, 2)
    assert text.splitlines()[0] == "Evaluation Results (mean over 2 pairs):"
    assert text.splitlines()[2].split("\t")[3] == "75.00"


def test_process_resize_and_rotation_consistency() -> None:
    assert geometry.process_resize(640, 480, [1600]) == (1600, 1200)
    assert geometry.process_resize(640, 480, [-1]) == (640, 480)
    assert geometry.process_resize(640, 480, [320, 200]) == (320, 200)
    with pytest.raises(ValueError, match="resize"):
        geometry.process_resize(640, 480, [])
    # rotating the image by k*90 deg maps pixels exactly like the rotated intrinsics/pose map 3D points
    K = np.array([[300.0, 0, 150.3], [0, 310.0, 99.7], [0, 0, 1]])
    h, w = 200, 300
    X = np.array([[0.3, -0.2, 4.0], [-0.5, 0.41, 5.0]])
    x = X @ K.T
    px = x[:, :2] / x[:, 2:]
    for rot in (1, 2, 3):
        image = np.zeros((h, w))
        for u, v in np.round(px).astype(int):
            image[v, u] = 1
        rotated = np.rot90(image, k=rot)
        K_rot = geometry.rotate_intrinsics(K, rotated.shape, rot)
        X_rot = X @ geometry.rotate_pose_inplane(np.eye(4), rot)[:3, :3].T
        y = X_rot @ K_rot.T
        proj = np.round(y[:, :2] / y[:, 2:]).astype(int)
        assert all(rotated[v, u] == 1 for u, v in proj), rot


def test_read_gray_image_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.png"):
        geometry.read_gray_image(tmp_path / "absent.png", [-1])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.png"):
        geometry.read_gray_image(bad, [-1])
