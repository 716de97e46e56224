"""Parity with the authors' code: every ``<target>.case*.npz`` of the sgdepth_pkd fixtures (README tolerances).

Networks (sgdepth_r18, bsa, gla), geometry/losses/metrics (ssim, warp_loss, sdcon, seg_ce, patch_loss, depth_eval,
seg_eval) and the patch knowledge-distillation fusion (patch_kd_fusion). A new case file is picked up without code
changes; a case of an unknown target fails.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from semcommon.testing import (
    Case,
    assert_close,
    case_files,
    case_params,
    load_weights,
    require_fixtures,
    run_case,
)
from sgdepth_pkd.config import SGDepthConfig
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
from sgdepth_pkd.model.attention import block_self_attention
from sgdepth_pkd.model.gla import GlobalLocalAttentionModule
from sgdepth_pkd.model.sgdepth import SGDepth
from sgdepth_pkd.patch_kd.fusion import distill_batch
from sgdepth_pkd.patch_kd.teachers import ModuleTeacher, SelfTeacher

PACKAGE = "sgdepth_pkd"


def run_sgdepth_r18(case: Case) -> None:
    """Full model, one dataset with depth and segmentation purposes; every output, the binary mask exactly."""
    model = SGDepth(SGDepthConfig(**case.meta["model_kwargs"]))
    model.load_state_dict(load_weights(case.weights_path))
    model.eval()
    current = case.tensor("color_aug_0")
    batch = {
        ("color_aug", 0, 0): current,
        ("color_aug", -1, 0): case.tensor("color_aug_prev"),
        ("color_aug", 1, 0): case.tensor("color_aug_next"),
        "purposes": [["depth"], ["segmentation"]],
    }
    with torch.no_grad():
        outputs = model((batch,))[0]
        features = model.common.encoder(current)
    for res in range(4):
        assert_close(outputs["disp", res], case.expected(f"disp_{res}"), name=f"disp_{res}")
    assert_close(outputs["segmentation_logits", 0], case.expected("segmentation_logits"), name="segmentation_logits")
    assert outputs["segmentation_mask", 0].dtype == torch.int64
    assert_close(outputs["segmentation_mask", 0], case.expected("segmentation_mask"), name="segmentation_mask")
    assert_close(outputs["cam_T_cam", 0, -1], case.expected("cam_T_cam_prev"), name="cam_T_cam_prev")
    assert_close(outputs["cam_T_cam", 0, 1], case.expected("cam_T_cam_next"), name="cam_T_cam_next")
    for level in range(1, 5):
        assert_close(features[level], case.expected(f"encoder_feat_{level}"), name=f"encoder_feat_{level}")


def run_bsa(case: Case) -> None:
    """Block self-attention with the authors' block argument 1 (whole map)."""
    assert_close(block_self_attention(case.tensor("x"), 1), case.expected("y"), name="y")


def run_gla(case: Case) -> None:
    """GLAM(C=64, 8 instances, 4 heads, reduction 4) in eval mode: output and both branches."""
    module = GlobalLocalAttentionModule(in_channels=64, num_instances=8, num_heads=4, reduction=4)
    module.load_state_dict(load_weights(case.weights_path))
    module.eval()
    x = case.tensor("x")
    with torch.no_grad():
        assert_close(module(x), case.expected("y"), name="y")
        assert_close(module.global_attention(x), case.expected("global"), name="global")
        assert_close(module.local_attention(x), case.expected("local"), name="local")


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


class _StoredSelfTeacher(torch.nn.Module):
    """Stands for the frozen SGDepth: returns the stored disparities of the 1.5x / 1x / 0.5x stacks by input size."""

    def __init__(self, case: Case, image: int) -> None:
        super().__init__()
        stored = [case.tensor(f"teacher_{scale}_{image}") for scale in ("hr", "mr", "lr")]
        self.outputs = {tensor.shape[-1]: tensor for tensor in stored}

    def predict_disparity(self, images: torch.Tensor) -> torch.Tensor:
        stored = self.outputs[images.shape[-1]]
        assert images.shape == (stored.shape[0], 3, *stored.shape[-2:]), f"unexpected teacher input {images.shape}"
        return stored


def _stored_external(case: Case, image: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Stands for DPT-Hybrid: the stored raw output (N×128×128) of the patch stack."""
    stored = case.tensor(f"dpt_raw_{image}")

    def teacher(patches: torch.Tensor) -> torch.Tensor:
        assert patches.shape == (stored.shape[0], 3, *stored.shape[-2:]), f"unexpected teacher input {patches.shape}"
        return stored

    return teacher


def run_patch_kd_fusion(case: Case) -> None:
    color_aug, disp = case.tensor("color_aug"), case.tensor("disp")
    for i in range(color_aug.shape[0]):
        self_teacher = SelfTeacher(_StoredSelfTeacher(case, i))
        external = ModuleTeacher(_stored_external(case, i), name="dpt stub")
        result = distill_batch(color_aug[i : i + 1], disp[i : i + 1], self_teacher, external)
        details = result.details[0]
        assert_close(details.rects, case.expected(f"rects_{i}"), name=f"rects_{i}")
        assert_close(details.order, case.expected(f"patch_order_{i}"), name=f"patch_order_{i}")
        assert_close(details.edge_counts, case.expected(f"edge_counts_{i}"), name=f"edge_counts_{i}")
        assert_close(details.weight_classes, case.expected(f"weight_class_{i}"), name=f"weight_class_{i}")
        assert_close(details.fused_self, case.expected(f"fused_self_{i}"), atol=1e-4, name=f"fused_self_{i}")
        assert_close(details.external_norm, case.expected(f"dpt_norm_{i}"), atol=1e-4, name=f"dpt_norm_{i}")
        assert_close(result.disp_a, case.expected("disp_a")[i : i + 1], atol=1e-4, name="disp_a")
        assert_close(result.patchnums, case.expected("patchnums")[i : i + 1], name="patchnums")


RUNNERS: dict[str, Callable[[Case], None]] = {
    "sgdepth_r18": run_sgdepth_r18,
    "bsa": run_bsa,
    "gla": run_gla,
    "ssim": run_ssim,
    "warp_loss": run_warp_loss,
    "sdcon": run_sdcon,
    "seg_ce": run_seg_ce,
    "patch_loss": run_patch_loss,
    "depth_eval": run_depth_eval,
    "seg_eval": run_seg_eval,
    "patch_kd_fusion": run_patch_kd_fusion,
}


@pytest.mark.parametrize("path", case_params(PACKAGE))
def test_case(path) -> None:
    run_case(path, RUNNERS)


@pytest.mark.parametrize("target", sorted(RUNNERS))
def test_every_runner_has_a_case(target: str) -> None:
    """A runner whose fixture target disappeared is dead code (an absent fixture folder skips, or fails under CI)."""
    require_fixtures(PACKAGE)
    assert case_files(PACKAGE, target=target), f"no fixture case for target {target!r}"
