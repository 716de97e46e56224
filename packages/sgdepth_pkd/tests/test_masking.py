"""Dynamic-class masking: movable classes, label warping, per-image IoU, mask rule and threshold schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.geometry import pixel_grid
from sgdepth_pkd.masking import DCMasking, DCMaskingConfig, movable, movable_ious, segment_frames, warp_labels
from sgdepth_pkd.model.sgdepth import SGDepth


def identity_grid(batch: int, height: int, width: int) -> torch.Tensor:
    """The authors' normalisation 2·p/(W−1, H−1) − 1 of the pixel grid (an identity pose)."""
    xy = pixel_grid(height, width)[:2].T.reshape(height, width, 2)
    return (xy / torch.tensor([width - 1, height - 1]) * 2 - 1).expand(batch, height, width, 2)


def test_movable_classes():
    labels = torch.arange(0, 21)
    assert movable(labels).nonzero().flatten().tolist() == list(range(11, 21))
    assert not movable(torch.tensor([255])).any()


def test_warp_labels_identity_and_shift():
    labels = torch.randint(0, 20, (2, 6, 9))
    grid = identity_grid(2, 6, 9)
    assert torch.equal(warp_labels(labels, grid, consistent_grid=True), labels)
    shifted = grid.clone()
    shifted[..., 0] += 2 * 2 / 8  # two pixels to the right
    warped = warp_labels(labels, shifted, consistent_grid=True)
    assert torch.equal(warped[..., :7], labels[..., 2:])
    assert torch.equal(warped[..., 7:], labels[..., 8:].expand(2, 6, 2))  # border padding
    assert warped.dtype == torch.int64
    with pytest.raises(ValueError, match="grid"):
        warp_labels(labels, grid[:, :5])


def test_movable_ious_by_hand():
    current = torch.tensor([[[13, 13, 0, 0]], [[0, 0, 0, 0]]])
    prev = torch.tensor([[[13, 0, 0, 0]], [[0, 0, 0, 0]]])
    nxt = torch.tensor([[[13, 13, 13, 0]], [[0, 0, 0, 0]]])
    ious = movable_ious(current, {-1: prev, 1: nxt})
    # image 0, over both frames: movable TP = 1 + 2, FP = 0 + 1, FN = 1 + 0 → 3/5; non-movable TP = 2 + 1, FP = 1, FN = 1
    np.testing.assert_allclose(ious[0], [3 / 5, 3 / 5])
    assert ious[1, 0] == 1.0 and np.isnan(ious[1, 1])  # no movable pixel anywhere: NaN, not logged


def test_moving_mask_rule_and_log():
    current = torch.tensor([[[13, 13, 0, 0]], [[11, 0, 0, 0]]])
    prev = torch.tensor([[[0, 0, 0, 14]], [[11, 0, 0, 0]]])
    masking = DCMasking()
    assert torch.equal(masking.moving_mask(current, {-1: prev}), torch.ones(2, 1, 4))  # threshold 0: nothing
    assert masking.log["moving"] == [0.0, 1.0]
    masking.thresholds["moving"] = 0.5
    mask = masking.moving_mask(current, {-1: prev})
    assert mask[0].tolist() == [[0.0, 0.0, 1.0, 0.0]]  # current movable pixels and the warped frame's
    assert mask[1].tolist() == [[1.0, 1.0, 1.0, 1.0]]  # IoU 1 ≥ threshold: kept


def test_threshold_schedule():
    masking = DCMasking(DCMaskingConfig(from_epoch=2, num_epochs=6, percent=0.5))
    masking.log["moving"] = [0.1, 0.2, 0.3, 0.9]
    assert masking.end_epoch(1) == {"non_moving": 0.0, "moving": 0.0}  # before from_epoch: unchanged
    assert masking.log["moving"] == []  # the log is per epoch
    masking.log["moving"] = [0.1, 0.2, 0.3, 0.9]
    assert masking.end_epoch(2)["moving"] == pytest.approx(0.25)  # median
    linear = DCMasking(DCMaskingConfig(from_epoch=2, num_epochs=6, linear_increase=True))
    assert [linear.percentile(e) for e in (2, 3, 4, 5)] == pytest.approx([2 / 3, 1 / 3, 0.0, -1 / 3])
    linear.log["moving"] = [0.1, 0.2, 0.3, 0.9]
    assert linear.end_epoch(5)["moving"] == 0.0  # negative percentile: nothing masked
    with pytest.raises(ValueError, match="percent"):
        DCMaskingConfig(percent=15)


def test_segment_frames_restores_training_mode():
    model = SGDepth(SGDepthConfig(num_layers=18)).train()
    frames = {f: torch.randn(1, 3, 64, 96) for f in (-1, 0, 1)}
    labels = segment_frames(model, frames)
    assert model.training and set(labels) == {-1, 0, 1}
    assert labels[0].shape == (1, 64, 96) and labels[0].dtype == torch.int64
    model.eval()
    with torch.no_grad():
        assert torch.equal(labels[1], model.predict_segmentation(frames[1]).argmax(1))
