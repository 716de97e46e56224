import math

import numpy as np
import pytest
import torch

from semcommon.metrics import ConfusionMatrix, depth_metrics, disparity_metrics, pose_auc


def test_confusion_matrix_by_hand():
    gt = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    cm = ConfusionMatrix(3, ignore_index=255).update(pred, gt)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert cm.oa() == pytest.approx(3 / 5)
    np.testing.assert_allclose(cm.iou(), [1 / 3, 2 / 3, 0.0])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    np.testing.assert_allclose(cm.precision(), [1 / 2, 2 / 3, np.nan])
    np.testing.assert_allclose(cm.recall(), [1 / 2, 1.0, 0.0])
    np.testing.assert_allclose(cm.f1(), [1 / 2, 4 / 5, 0.0])
    p_e = (2 * 2 + 3 * 2 + 0 * 1) / 25
    assert cm.kappa() == pytest.approx((3 / 5 - p_e) / (1 - p_e))


def test_confusion_matrix_matches_sklearn_style_reference():
    rng = np.random.default_rng(0)
    gt, pred = rng.integers(0, 5, 1000), rng.integers(0, 5, 1000)
    cm = ConfusionMatrix(5).update(torch.from_numpy(pred), torch.from_numpy(gt))
    ref = np.zeros((5, 5), dtype=np.int64)
    np.add.at(ref, (gt, pred), 1)
    np.testing.assert_array_equal(cm.matrix, ref)
    iou = [np.sum((gt == c) & (pred == c)) / np.sum((gt == c) | (pred == c)) for c in range(5)]
    np.testing.assert_allclose(cm.iou(), iou)


def test_confusion_matrix_absent_class_is_nan_and_skipped():
    cm = ConfusionMatrix(3).update(np.array([0, 1]), np.array([0, 1]))
    assert math.isnan(cm.iou()[2])
    assert cm.miou() == 1.0


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(3).update(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="outside"):
        ConfusionMatrix(3).update(np.array([5]), np.array([0]))


def test_disparity_metrics_by_hand():
    gt = np.array([[10.0, 10.0], [-20.0, 100.0]])
    pred = np.array([[10.5, 14.0], [-21.5, 104.0]])
    valid = np.array([[True, True], [True, False]])
    m = disparity_metrics(pred, gt, valid)
    assert m["EPE"] == pytest.approx((0.5 + 4.0 + 1.5) / 3)
    assert m["D1"] == pytest.approx(1 / 3)  # only the 4 px error on |gt|=10 (> 3 px and > 5 %)
    assert m[">1px"] == pytest.approx(2 / 3)
    assert m[">2px"] == pytest.approx(1 / 3)
    assert m[">3px"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no valid"):
        disparity_metrics(pred, gt, np.zeros_like(valid))


def test_depth_metrics_by_hand_and_median_scaling():
    gt = np.array([2.0, 4.0, 8.0, 100.0, 0.0])
    pred = np.array([1.0, 2.0, 4.0, 7.0, 3.0])
    m = depth_metrics(pred, gt, max_depth=80.0)
    assert m["scale"] == pytest.approx(2.0)
    for key in ("abs_rel", "sq_rel", "rmse", "rmse_log"):
        assert m[key] == pytest.approx(0.0, abs=1e-12)
    assert m["a1"] == 1.0
    m = depth_metrics(np.array([2.0, 2.0]), np.array([1.0, 2.0]), median_scaling=False)
    assert m["abs_rel"] == pytest.approx(0.5)
    assert m["sq_rel"] == pytest.approx(0.5)
    assert m["rmse"] == pytest.approx(math.sqrt(0.5))
    assert m["rmse_log"] == pytest.approx(math.sqrt(math.log(2) ** 2 / 2))
    assert m["a1"] == 0.5 and m["a2"] == 0.5 and m["a3"] == 0.5  # ratio 2 > 1.25**3
    assert depth_metrics(np.array([1.9]), np.array([1.0]), median_scaling=False)["a3"] == 1.0


def test_depth_metrics_cap_clips_prediction():
    m = depth_metrics(np.array([200.0]), np.array([50.0]), max_depth=80.0, median_scaling=False)
    assert m["abs_rel"] == pytest.approx(30 / 50)


def test_pose_auc_by_hand():
    # errors 0 and 10 over threshold 20: curve (0,0)->(0,.5)->(10,1)->(20,1): area .75*10 + 10 = 17.5
    assert pose_auc([0.0, 10.0], [20.0])[0] == pytest.approx(17.5 / 20)
    assert pose_auc([np.inf, np.inf], [5.0])[0] == 0.0
    assert pose_auc([1.0], [2.0])[0] == pytest.approx((0.5 * 1 * 1 + 1) / 2)


def test_pose_auc_matches_numpy_trapezoid():
    errors = np.random.default_rng(1).uniform(0, 30, 50)
    s = np.sort(errors)
    xs, ys = np.r_[0, s], np.r_[0, np.arange(1, 51) / 50]
    for t in (5, 10, 20):
        x = np.r_[xs[xs < t], t]
        y = np.r_[ys[xs < t], ys[xs < t][-1]]
        assert pose_auc(errors, [t])[0] == pytest.approx(np.trapezoid(y, x) / t)
