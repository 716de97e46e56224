"""Model behaviour beyond the fixtures: return structure per mode/stage, input sizes, clear errors."""

from __future__ import annotations

from functools import cache

import pytest
import torch

from semstereo import SemStereo, SemStereoConfig, half_config


@cache
def _model(att_weights_only: bool) -> SemStereo:
    torch.manual_seed(0)
    return SemStereo(half_config(att_weights_only=att_weights_only)).eval()


def _pair(height: int = 64, width: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    left = torch.randn(1, 3, height, width)
    return left, torch.roll(left, shifts=-2, dims=-1)


@pytest.mark.parametrize("att_weights_only", [False, True])
def test_eval_return_is_first_of_training_return(att_weights_only: bool) -> None:
    model, (left, right) = _model(att_weights_only), _pair()
    with torch.no_grad():
        model.training = False
        disps_eval, label_eval = model(left, right).to_tuple()
        model.training = True  # training-style return, BN still in eval mode
        disps_train, label_train, label_right = model(left, right).to_tuple()
        model.training = False
    assert len(disps_eval) == 1 and len(disps_train) == (2 if att_weights_only else 4)
    assert torch.equal(disps_eval[0], disps_train[0]) and torch.equal(label_eval, label_train)
    shapes = [tuple(d.shape) for d in disps_train]
    assert shapes[:2] == [(1, 64, 64), (1, 16, 16)] and label_right.shape == (1, 6, 64, 64)


def test_non_square_multiple_of_32() -> None:
    model, (left, right) = _model(False), _pair(64, 96)
    with torch.no_grad():
        out = model(left, right, return_intermediates=True)
    assert out.disparity.shape == (1, 64, 96) and out.label_left.shape == (1, 6, 64, 96)
    assert out.intermediates["cost_att"].shape == (1, 1, 16, 8, 12)
    assert out.intermediates["cost"].shape == (1, 1, 24, 16, 24)
    assert torch.isfinite(out.disparity).all()
    # disparities are weighted sums of hypotheses in [-M, M)
    assert out.disparity.abs().max() < 64 * 1.5


def test_whu_hypotheses_are_non_negative() -> None:
    torch.manual_seed(0)
    model = SemStereo(half_config(variant="whu", maxdisp=128)).eval()
    left, right = _pair()
    model.training = True
    with torch.no_grad():
        out = model(left, right, return_intermediates=True)
    model.training = False
    assert out.intermediates["cost_att"].shape[2] == 32  # 1/8 volume still spans [-M/8, M/8)
    assert out.disparities[3].min() >= 0 and out.disparities[3].max() < 128


@pytest.mark.parametrize(
    ("left_shape", "right_shape", "message"),
    [
        ((1, 3, 64, 60), (1, 3, 64, 60), "multiples of 32"),
        ((1, 3, 64, 64), (1, 3, 64, 96), "does not match left"),
        ((1, 1, 64, 64), (1, 1, 64, 64), "B×3×H×W"),
    ],
)
def test_bad_shapes(left_shape, right_shape, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _model(False)(torch.zeros(left_shape), torch.zeros(right_shape))


def test_nan_input() -> None:
    left, right = _pair()
    right[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="right contains NaN"):
        _model(False)(left, right)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"variant": "kitti"}, "variant"),
        ({"num_classes": 5}, "num_classes must be 6"),
        ({"maxdisp": 48}, "cost_volume_range"),
        ({"topk": 40}, "topk=40"),
        ({"backbone": "resnet50"}, "backbone"),
    ],
)
def test_config_validation(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SemStereoConfig(**changes)


def test_signed_range_is_configurable() -> None:
    cfg = half_config(cost_volume_range=(-128, 0), hypothesis_range=(-128, 0))
    assert cfg.volume_range == (-128, 0) and cfg.hypotheses == (-128, 0)
    model = SemStereo(cfg).eval()
    left, right = _pair()
    model.training = True
    with torch.no_grad():
        out = model(left, right, return_intermediates=True)
    model.training = False
    assert out.intermediates["corr_volume"].shape[2] == 16
    assert out.disparities[3].max() <= 0


def test_image_to_input_and_padding() -> None:
    import numpy as np

    from semstereo.transforms import pad_to_multiple, to_tensor

    image = np.full((40, 50, 3), 255, dtype=np.uint8)
    x = to_tensor(image)
    assert x.shape == (1, 3, 40, 50)
    assert torch.allclose(
        x[0, :, 0, 0], (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    )
    padded, size = pad_to_multiple(x)
    assert padded.shape == (1, 3, 64, 64) and size == (40, 50) and padded[..., 40:, :].abs().sum() == 0
    with pytest.raises(ValueError, match="H×W×3"):
        to_tensor(np.zeros((4, 4)))
