"""Parity of geometry, losses and metrics with the authors' code (fixture README tolerances).

Targets: ssim, warp_loss, sdcon, seg_ce, patch_loss, depth_eval, seg_eval.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from semcommon.testing import Case, assert_close, case_params, load_case
from sgdepth_pkd.geometry import transformation_from_parameters, warp_frames
from sgdepth_pkd.losses import (
    DepthLossConfig,
    depth_reprojection_losses,
    patch_kd_loss,
    semantic_depth_consistency,
    ssim_dissimilarity,
    weighted_segmentation_ce,
)
from sgdepth_pkd.metrics import SegmentationRunningScore, evaluate_depth_batch, segmentation_prediction

PACKAGE = "sgdepth_pkd"
LOSS_NAMES = (
    *(f"{term}_{scale}" for scale in range(4) for term in ("loss", "disp_smth_loss")),
    "loss_depth_reprojection",
)


def _assert_relative(actual: torch.Tensor | float, expected: np.ndarray, rtol: float, name: str) -> None:
    """Scalar comparison relative to the expected value itself (README: 1e-5 / 1e-4 relative for scalars)."""
    value = float(actual)
    reference = float(expected)
    assert abs(value - reference) <= rtol * abs(reference), f"{name}: {value} vs expected {reference} (rtol {rtol})"


def run_ssim(case: Case) -> None:
    assert_close(ssim_dissimilarity(case.tensor("x"), case.tensor("y")), case.expected("ssim"), name="ssim")


def run_warp_loss(case: Case) -> None:
    images = {frame: case.tensor(f"color_{frame}") for frame in (0, -1, 1)}
    disps = [case.tensor(f"disp_{scale}") for scale in range(4)]
    poses = {frame: case.tensor(f"cam_T_cam_{frame}") for frame in (-1, 1)}
    for frame in (-1, 1):
        rebuilt = transformation_from_parameters(
            case.tensor(f"axisangle_{frame}"), case.tensor(f"translation_{frame}"), invert=frame == -1
        )
        assert_close(rebuilt, case.inputs[f"cam_T_cam_{frame}"], atol=1e-6, name=f"cam_T_cam_{frame}")
    outputs = warp_frames(disps, {f: images[f] for f in (-1, 1)}, case.tensor("K"), case.tensor("inv_K"), poses)
    for scale in range(4):
        assert_close(outputs[("depth", 0, scale)], case.expected(f"depth_{scale}"), name=f"depth_{scale}")
        outputs[("disp", scale)] = disps[scale]
    for frame in (-1, 1):
        assert_close(outputs[("sample", frame, 0)], case.expected(f"sample_{frame}_0"), name=f"sample_{frame}_0")
        for scale in (0, 3):
            name = f"color_pred_{frame}_{scale}"
            assert_close(outputs[("color", frame, scale)], case.expected(name), name=name)
    assert_close(outputs[("normals_pointcloud", 0)], case.expected("normals_0"), name="normals_0")
    variants = {
        "": (DepthLossConfig(), None),
        "masked.": (DepthLossConfig(), case.tensor("moving_mask")),
        "avg_noauto.": (DepthLossConfig(automasking=False, min_reprojection=False), None),
    }
    for prefix, (config, moving_mask) in variants.items():
        losses = depth_reprojection_losses(images, outputs, config, moving_mask)
        for name in LOSS_NAMES:
            _assert_relative(losses[name], case.expected(prefix + name), 1e-5, prefix + name)


def run_sdcon(case: Case) -> None:
    disp = case.tensor("disp")
    _assert_relative(semantic_depth_consistency(case.tensor("label_map"), disp), case.expected("loss"), 1e-4, "loss")
    binary = semantic_depth_consistency(case.tensor("binary_mask"), disp)
    assert isinstance(binary, torch.Tensor)
    assert float(binary) == float(case.expected("loss_binary_mask")) == 0.0


def run_seg_ce(case: Case) -> None:
    loss = weighted_segmentation_ce(case.tensor("logits"), case.tensor("target"))
    assert_close(loss, case.expected("loss_seg"), name="loss_seg")


def run_patch_loss(case: Case) -> None:
    args = (case.tensor("disp"), case.tensor("disp_a"), case.tensor("patchnums"))
    assert_close(patch_kd_loss(*args), case.expected("loss"), name="loss")
    masked = patch_kd_loss(*args, moving_mask=case.tensor("moving_mask"), mask_broadcast="authors")
    assert_close(masked, case.expected("loss_masked"), name="loss_masked")


def run_depth_eval(case: Case) -> None:
    score = evaluate_depth_batch(case.tensor("disp"), case.inputs["depth_gt"], mask="kitti_zhou")
    for name, value in score.get_scores().items():
        _assert_relative(value, case.expected(name), 1e-5, name)
    ratios = case.expected("ratios")
    assert len(score.ratios) == len(ratios)
    for index, (value, reference) in enumerate(zip(score.ratios, ratios, strict=True)):
        _assert_relative(value, reference, 1e-5, f"ratios[{index}]")


def run_seg_eval(case: Case) -> None:
    gt = case.inputs["gt"]
    pred = segmentation_prediction(case.tensor("logits"), gt.shape[-2:])
    assert_close(pred, case.expected("pred"), name="pred")
    score = SegmentationRunningScore(20)
    score.update(gt, pred)
    np.testing.assert_array_equal(score.confusion_matrix, case.expected("confusion_matrix"))
    for name, value in score.get_scores().items():
        assert_close(np.asarray(value, dtype=np.float64), case.expected(name).astype(np.float64), name=name)


RUNNERS: dict[str, Callable[[Case], None]] = {
    "ssim": run_ssim,
    "warp_loss": run_warp_loss,
    "sdcon": run_sdcon,
    "seg_ce": run_seg_ce,
    "patch_loss": run_patch_loss,
    "depth_eval": run_depth_eval,
    "seg_eval": run_seg_eval,
}


@pytest.mark.parametrize("path", case_params(PACKAGE, target="ssim"))
def test_ssim(path) -> None:
    RUNNERS["ssim"](load_case(path))


@pytest.mark.parametrize("path", case_params(PACKAGE, target="warp_loss"))
def test_warp_loss(path) -> None:
    RUNNERS["warp_loss"](load_case(path))


@pytest.mark.parametrize("path", case_params(PACKAGE, target="sdcon"))
def test_sdcon(path) -> None:
    RUNNERS["sdcon"](load_case(path))


@pytest.mark.parametrize("path", case_params(PACKAGE, target="seg_ce"))
def test_seg_ce(path) -> None:
    RUNNERS["seg_ce"](load_case(path))


@pytest.mark.parametrize("path", case_params(PACKAGE, target="patch_loss"))
def test_patch_loss(path) -> None:
    RUNNERS["patch_loss"](load_case(path))


@pytest.mark.parametrize("path", case_params(PACKAGE, target="depth_eval"))
def test_depth_eval(path) -> None:
    RUNNERS["depth_eval"](load_case(path))


@pytest.mark.parametrize("path", case_params(PACKAGE, target="seg_eval"))
def test_seg_eval(path) -> None:
    RUNNERS["seg_eval"](load_case(path))
