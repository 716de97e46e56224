"""Loss and metric behaviour beyond the fixtures (options, aggregation modes, errors)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semstereo import losses, metrics


def test_whu_mask_excludes_non_positive() -> None:
    gt = torch.tensor([-3.0, 0.0, 5.0, 127.0, 128.0, -999.0])
    assert losses.disparity_mask(gt, 128, signed=False).tolist() == [False, False, True, True, False, False]
    assert losses.disparity_mask(gt, 128).tolist() == [True, True, True, True, False, False]


def test_lrsc_has_no_gradient_through_disparity() -> None:
    logits = torch.randn(1, 6, 4, 8, requires_grad=True)
    disp = torch.full((1, 4, 8), 2.5, requires_grad=True)
    label = torch.randint(0, 6, (1, 4, 8)).float()
    losses.lrsc_loss(logits, disp, label).backward()
    assert disp.grad is None and logits.grad is not None
    warped = losses.warp_label_to_right(label, disp)
    assert torch.equal(warped[..., 3:], label.long()[..., 0:5])  # x - 2.5 floors to x - 3
    assert torch.equal(warped[..., :3], label.long()[..., :1].expand(1, 4, 3))  # clamped to the border


def test_dice_is_one_global_dice() -> None:
    label = torch.zeros(2, 3, 3)
    perfect = torch.full((2, 6, 3, 3), -50.0)
    perfect[:, 0] = 50.0
    assert losses.dice_loss(perfect, label) == pytest.approx(0.0, abs=1e-6)
    assert losses.label_loss(perfect, label, stage=1) == pytest.approx(0.0, abs=1e-5)


def test_label_loss_shape_error() -> None:
    with pytest.raises(ValueError, match="do not match label"):
        losses.label_loss(torch.zeros(1, 6, 4, 4), torch.zeros(1, 4, 5))


def test_disparity_metric_skip_rule_and_all_skipped() -> None:
    gt = torch.full((1, 4, 4), 100.0)  # every pixel out of range -> mask empty -> ratio 0 -> skipped
    assert float(metrics.epe_metric(torch.zeros_like(gt), gt, gt < 64)) == 0.0
    negative = torch.full((1, 4, 4), -5.0)  # no positive gt -> ratio inf -> kept
    assert float(metrics.epe_metric(torch.zeros_like(negative), negative, negative < 64)) == pytest.approx(5.0)


def _logits(pred: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(pred), 6).permute(0, 3, 1, 2).float()


def test_original_confusion_class5_quirk_and_dataset_mode() -> None:
    label = torch.tensor([[[0, 1, 4, 5]]]).float()
    pred = np.array([[[5, 1, 5, 2]]])  # gt 0 -> pred 5 shifts into confusion[1, 0]; gt 4 -> 5 dropped
    confusion = metrics.original_confusion(_logits(pred), label)
    expected = np.zeros((5, 5))
    expected[1, 0] = 1
    expected[1, 1] = 1
    assert np.array_equal(confusion, expected)

    evaluator = metrics.SegmentationEvaluator(mode="dataset")
    evaluator.update(_logits(pred), label)
    scores = evaluator.compute()
    assert scores["PA"] == pytest.approx(1 / 3)  # gt 5 ignored; predicted 5 is a miss
    assert scores["IoU"][0] == 0 and scores["IoU"][1] == 1 and scores["IoU"][4] == 0
    assert math.isnan(scores["IoU"][2]) and scores["mIoU"] == pytest.approx(1 / 3)


def test_original_mode_averages_batches_with_nan_as_zero() -> None:
    evaluator = metrics.SegmentationEvaluator(mode="original")
    good = torch.tensor([[[0, 1]]]).float()
    evaluator.update(_logits(np.array([[[0, 1]]])), good)
    only_ignored = torch.tensor([[[5, 5]]]).float()
    evaluator.update(_logits(np.array([[[0, 0]]])), only_ignored)  # empty matrix: PA is NaN, counted as 0
    scores = evaluator.compute()
    assert scores["PA"] == pytest.approx(0.5) and scores["mIoU"] == pytest.approx(0.5)
    assert scores["IoU"][0] == pytest.approx(1.0)  # per-class values skip NaN


def test_evaluator_errors() -> None:
    with pytest.raises(ValueError, match="mode"):
        metrics.SegmentationEvaluator(mode="clean")
    with pytest.raises(ValueError, match="no batch"):
        metrics.SegmentationEvaluator().compute()
    with pytest.raises(ValueError, match="do not match label"):
        metrics.original_confusion(torch.zeros(1, 6, 2, 2), torch.zeros(1, 3, 2))
