"""Regression tests for the defects found by review (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clearscd import SEGEvaluator, predict_maps, read_rgb
from clearscd.config import ClearSCDConfig
from clearscd.metrics import cohen_kappa
from clearscd.model import ClearSCD, ProjectionHead
from semcommon.io import ImageReadError, write_image
from semcommon.metrics import ConfusionMatrix


@pytest.fixture(scope="module")
def model() -> ClearSCD:
    torch.manual_seed(0)
    return ClearSCD(ClearSCDConfig(size=64)).eval()


def test_nan_input_is_refused(model: ClearSCD) -> None:
    imgs = torch.zeros(1, 6, 32, 32)
    imgs[0, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        predict_maps(model, imgs)
    imgs[0, 2, 3, 4] = float("inf")
    with pytest.raises(ValueError, match="infinite"):
        predict_maps(model, imgs)


def test_uint8_tensor_is_refused_clearly(model: ClearSCD) -> None:
    with pytest.raises(ValueError, match="float tensor.*uint8"):
        predict_maps(model, torch.zeros(1, 6, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="float tensor"):
        model(torch.zeros(1, 6, 32, 32, dtype=torch.uint8), test=True)


def test_read_rgb_uses_common_reader_errors(tmp_path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_rgb(tmp_path / "broken.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png: file is empty"):
        read_rgb(tmp_path / "empty.png")
    write_image(tmp_path / "grey.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ImageReadError, match="grey.png: 1 channel"):
        read_rgb(tmp_path / "grey.png")
    write_image(tmp_path / "deep.png", np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(ImageReadError, match="deep.png: dtype uint16"):
        read_rgb(tmp_path / "deep.png")


def test_evaluator_accumulates_with_the_common_confusion_matrix() -> None:
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, (3, 16, 16))  # 4 = out of range for 4 classes: dropped
    pred = rng.integers(0, 4, (3, 16, 16))
    evaluator = SEGEvaluator(4)
    for g, p in zip(gt, pred, strict=True):
        evaluator.add_batch(g, p)
    common = ConfusionMatrix(4).update(pred, gt)
    np.testing.assert_array_equal(evaluator.confusion_matrix, common.matrix)
    np.testing.assert_allclose(evaluator.intersection_over_union(), np.nan_to_num(common.iou()))
    with pytest.raises(ValueError, match="predictions outside"):
        evaluator.add_batch(gt[0] * 0, pred[0] + 4)


def test_kappa_does_not_overflow_on_large_counts() -> None:
    hist = np.array([[4_000_000_000, 1_000_000_000], [1_000_000_000, 4_000_000_000]], dtype=np.int64)
    assert cohen_kappa(hist) == pytest.approx(0.6)


def test_projection_head_hidden_width_is_not_the_queue_width() -> None:
    head = ProjectionHead(in_channels=128, hidden_channels=16)
    assert head.proj[0].out_channels == 16 and head.proj[3].out_channels == 128
    assert head(torch.randn(2, 128, 4, 4)).shape == (2, 128, 4, 4)
    with pytest.raises(TypeError):
        ProjectionHead(128, proj_dim=32)  # the old, misleading name is gone
    assert ClearSCD(ClearSCDConfig()).proj_head.proj[0].out_channels == 32


def test_sizes_not_multiple_of_32_are_padded_and_cropped(model: ClearSCD) -> None:
    torch.manual_seed(3)
    imgs = torch.randn(1, 6, 40, 70)
    maps = predict_maps(model, imgs)
    assert maps["sem_A"].shape == (1, 40, 70) and maps["BCD"].shape == (1, 1, 40, 70)
    padded = torch.nn.functional.pad(imgs, (0, 26, 0, 24), mode="replicate")
    with torch.no_grad():
        reference = model(padded, test=True)
    torch.testing.assert_close(maps["seg_A"], reference["seg_A"][..., :40, :70])
    torch.testing.assert_close(maps["BCD"], reference["BCD"][..., :40, :70])
