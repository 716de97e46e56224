"""Regression tests for the defects found by review (issue 13)."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semcommon.io import ImageReadError, write_image
from semstereo import SemStereo, half_config, losses, metrics
from semstereo.transforms import read_pair, to_tensor


def _whu_inputs() -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    gt = torch.tensor([[[-4.0, 0.0, 3.0, 10.0, 127.0, 200.0, -999.0, 5.0]]]).expand(1, 4, 8).clone()
    estimates = [torch.randn(1, 4, 8) * 5, torch.randn(1, 1, 2) * 5, torch.randn(1, 4, 8) * 5, torch.randn(1, 1, 2)]
    return estimates, torch.randn(1, 6, 4, 8), torch.randn(1, 6, 4, 8), gt, gt[:, ::4, ::4]


def test_whu_objective_is_disparity_only_with_positive_mask_plus_lrsc() -> None:
    estimates, logits_l, logits_r, gt, gt_4 = _whu_inputs()
    out = losses.train_losses(estimates, logits_l, logits_r, gt, gt_4, None, maxdisp=128, objective="whu")
    valid, valid_4 = (gt > 0) & (gt < 128), (gt_4 > 0) & (gt_4 < 128)
    expected = sum(
        w * F.smooth_l1_loss(e[m], g[m])
        for w, e, g, m in zip((1.0, 0.6, 0.5, 0.3), estimates, (gt, gt_4, gt, gt_4), (valid, valid_4) * 2, strict=True)
    )
    assert float(out["disp_loss"]) == pytest.approx(float(expected))
    assert float(out["label_loss"]) == 0.0
    # LRSC without labels: the detached argmax of the left logits is the target
    lrsc = losses.lrsc_loss(logits_r, estimates[0], logits_l.argmax(1))
    assert float(out["lrsc_loss"]) == pytest.approx(float(lrsc)) and float(lrsc) > 0
    assert float(out["total"]) == pytest.approx(float(expected + lrsc))
    released = losses.train_losses(estimates, logits_l, None, gt, gt_4, None, maxdisp=128, objective="whu", lrsc=False)
    assert float(released["total"]) == pytest.approx(float(expected))
    # the US3D objective on the same data uses the signed mask, so it differs
    label = torch.zeros(1, 4, 8)
    us3d = losses.train_losses(estimates, logits_l, logits_r, gt, gt_4, label, maxdisp=128)
    assert float(us3d["disp_loss"]) != pytest.approx(float(expected))
    with pytest.raises(ValueError, match="objective"):
        losses.train_losses(estimates, logits_l, logits_r, gt, gt_4, label, objective="kitti")
    with pytest.raises(ValueError, match="label map"):
        losses.train_losses(estimates, logits_l, logits_r, gt, gt_4, None)


def test_to_tensor_converts_each_dtype_explicitly() -> None:
    rng = np.random.default_rng(0)
    image8 = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    reference = to_tensor(image8)
    assert torch.allclose(to_tensor(image8.astype(np.float64) / 255), reference, atol=1e-6)
    assert torch.allclose(to_tensor(image8.astype(np.uint16) * 257), reference, atol=1e-5)
    with pytest.raises(ValueError, match=r"in \[0, 1\], got \[255, 255\]"):
        to_tensor(np.full((2, 2, 3), 255.0))
    with pytest.raises(ValueError, match="unsupported dtype int32"):
        to_tensor(np.zeros((2, 2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="NaN"):
        to_tensor(np.full((2, 2, 3), np.nan, dtype=np.float32), name="left.png")


@cache
def _model() -> SemStereo:
    torch.manual_seed(0)
    return SemStereo(half_config()).eval()


def test_model_refuses_integer_and_casts_float64() -> None:
    torch.manual_seed(0)
    left = torch.randn(1, 3, 64, 64)
    right = torch.roll(left, 2, dims=-1)
    model = _model()
    with pytest.raises(ValueError, match="left has dtype torch.uint8"):
        model(left.to(torch.uint8), right)
    with torch.no_grad():
        reference = model(left, right).disparity
        doubled = model(left.double(), right.double()).disparity
    assert doubled.dtype == torch.float32 and torch.equal(doubled, reference)


def test_mismatched_pair_names_files_and_their_own_sizes(tmp_path) -> None:
    left, right = tmp_path / "a_left.png", tmp_path / "b_right.png"
    write_image(left, np.zeros((40, 50, 3), np.uint8))
    write_image(right, np.zeros((40, 52, 3), np.uint8))
    with pytest.raises(ImageReadError) as info:
        read_pair(left, right)
    message = str(info.value)
    assert "b_right.png" in message and "a_left.png" in message and "52x40" in message and "50x40" in message
    assert "64" not in message  # not the padded size


def _logits(pred: np.ndarray) -> torch.Tensor:
    return F.one_hot(torch.as_tensor(pred), 6).permute(0, 3, 1, 2).float()


def test_original_mode_first_batch_nan_poisons_the_average() -> None:
    evaluator = metrics.SegmentationEvaluator(mode="original")
    evaluator.update(_logits(np.array([[[0, 0]]])), torch.tensor([[[5.0, 5.0]]]))  # empty matrix first: NaN
    evaluator.update(_logits(np.array([[[0, 1]]])), torch.tensor([[[0.0, 1.0]]]))
    scores = evaluator.compute()
    assert math.isnan(scores["PA"]) and math.isnan(scores["mIoU"])
    assert scores["IoU"][0] == pytest.approx(1.0)  # per-class values still skip NaN
