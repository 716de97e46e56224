"""Hand-computed unit tests of geometry, losses and metrics (beyond fixture parity) and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgdepth_pkd.geometry import (
    backproject,
    disp_to_depth,
    pointcloud_normals,
    project_to_grid,
    rotation_from_axisangle,
    transformation_from_parameters,
    warp_frames,
    warp_image,
)
from sgdepth_pkd.losses import (
    SEG_CLASS_WEIGHTS,
    DepthLossConfig,
    binary_label_map,
    class_label_map,
    depth_branch_loss,
    depth_reprojection_losses,
    edge_aware_smoothness,
    patch_kd_loss,
    photometric_error,
    reprojection_loss_map,
    self_supervised_depth_loss,
    semantic_depth_consistency,
    ssim_dissimilarity,
    total_loss,
    weighted_segmentation_ce,
)
from sgdepth_pkd.metrics import (
    DepthRunningScore,
    SegmentationRunningScore,
    depth_image_metrics,
    evaluate_depth_batch,
    kitti_kitti_mask,
    kitti_zhou_mask,
    pose_ate,
    predicted_depth,
    ratio_summary,
    relative_poses,
    segmentation_prediction,
    snippet_ate,
    trajectory_positions,
)

C1, C2 = 0.01**2, 0.03**2


def _intrinsics(batch: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    K = torch.tensor(
        [[0.58 * width, 0, 0.5 * width, 0], [0, 1.92 * height, 0.5 * height, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    )
    K = K.expand(batch, 4, 4).clone()
    return K, torch.linalg.inv(K)


def _identity_pose(batch: int) -> torch.Tensor:
    return torch.eye(4).expand(batch, 1, 1, 4, 4).clone()


# ----------------------------------------------------------------------------------------------- geometry


def test_disp_to_depth_range_ends() -> None:
    scaled, depth = disp_to_depth(torch.tensor([0.0, 1.0]), min_depth=0.1, max_depth=100.0)
    torch.testing.assert_close(scaled, torch.tensor([0.01, 10.0]))
    torch.testing.assert_close(depth, torch.tensor([100.0, 0.1]))


def test_identity_pose_grid_hits_pixel_corners() -> None:
    K, inv_K = _intrinsics(1, 4, 6)
    points = backproject(torch.full((1, 1, 4, 6), 3.0), inv_K)
    grid = project_to_grid(points, K, _identity_pose(1), 4, 6)
    torch.testing.assert_close(grid[0, 0, 0], torch.tensor([-1.0, -1.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(grid[0, -1, -1], torch.tensor([1.0, 1.0]), atol=1e-5, rtol=0)


def test_identity_warp_reproduces_image_only_with_consistent_grid() -> None:
    torch.manual_seed(0)
    image = torch.rand(2, 3, 8, 12)
    K, inv_K = _intrinsics(2, 8, 12)
    disp = torch.rand(2, 1, 8, 12)
    consistent = warp_frames([disp], {1: image}, K, inv_K, {1: _identity_pose(2)}, consistent_grid=True)
    torch.testing.assert_close(consistent[("color", 1, 0)], image, atol=1e-4, rtol=0)
    authors = warp_frames([disp], {1: image}, K, inv_K, {1: _identity_pose(2)})
    # (W−1, H−1) normalisation sampled with align_corners=False: a sub-pixel shift (spec §i.3)
    assert (authors[("color", 1, 0)] - image).abs().max() > 1e-2


def test_warp_image_of_constant_image_is_constant_for_any_grid() -> None:
    image = torch.full((1, 2, 5, 5), 0.25)
    grid = torch.rand(1, 5, 5, 2) * 4 - 2
    torch.testing.assert_close(warp_image(image, grid), image)


def test_warp_frames_keys_and_shapes() -> None:
    K, inv_K = _intrinsics(1, 8, 16)
    disps = [torch.rand(1, 1, 8 >> r, 16 >> r) for r in range(3)]
    sources = {-1: torch.rand(1, 3, 8, 16), 1: torch.rand(1, 3, 8, 16)}
    out = warp_frames(disps, sources, K, inv_K, {f: _identity_pose(1) for f in (-1, 1)})
    for r in range(3):
        assert out[("depth", 0, r)].shape == (1, 1, 8, 16)
        assert out[("normals_pointcloud", r)].shape == (1, 7, 15, 3)
        for f in (-1, 1):
            assert out[("sample", f, r)].shape == (1, 8, 16, 2)
            assert out[("color", f, r)].shape == (1, 3, 8, 16)


def test_normals_of_fronto_parallel_plane_point_to_camera_axis() -> None:
    _, inv_K = _intrinsics(1, 5, 7)
    points = backproject(torch.full((1, 1, 5, 7), 2.0), inv_K)
    normals = pointcloud_normals(points, 5, 7)
    torch.testing.assert_close(normals, torch.tensor([0.0, 0.0, 1.0]).expand(1, 4, 6, 3), atol=1e-5, rtol=0)


def test_rotation_about_z_by_quarter_turn() -> None:
    matrix = rotation_from_axisangle(torch.tensor([0.0, 0.0, math.pi / 2]))
    torch.testing.assert_close(matrix[:3, :3] @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))
    assert matrix[3, 3] == 1 and (matrix[3, :3] == 0).all()


def test_inverted_transformation_is_matrix_inverse() -> None:
    axisangle, translation = torch.tensor([[0.1, -0.2, 0.3]]), torch.tensor([[0.5, 0.1, -0.4]])
    forward = transformation_from_parameters(axisangle, translation)
    inverse = transformation_from_parameters(axisangle, translation, invert=True)
    torch.testing.assert_close(inverse @ forward, torch.eye(4).expand(1, 4, 4), atol=1e-6, rtol=0)
    torch.testing.assert_close(forward[0, :3, 3], translation[0])


# ----------------------------------------------------------------------------------------------- photometric


def test_ssim_of_identical_images_is_zero() -> None:
    x = torch.rand(2, 3, 9, 11)
    assert ssim_dissimilarity(x, x).abs().max() < 1e-5


def test_ssim_and_photometric_error_of_constant_images() -> None:
    a, b = 0.2, 0.7
    x, y = torch.full((1, 3, 4, 5), a, dtype=torch.float64), torch.full((1, 3, 4, 5), b, dtype=torch.float64)
    ssim = (2 * a * b + C1) / (a * a + b * b + C1)  # variance terms cancel: (0 + C2) / (0 + C2)
    torch.testing.assert_close(ssim_dissimilarity(x, y), torch.full_like(x, (1 - ssim) / 2))
    expected_pe = 0.85 * (1 - ssim) / 2 + 0.15 * (b - a)
    torch.testing.assert_close(photometric_error(x, y), torch.full((1, 1, 4, 5), expected_pe, dtype=torch.float64))


def test_automasking_prefers_identity_when_the_source_already_matches() -> None:
    target = torch.rand(1, 3, 6, 6)
    wrong_warp = torch.rand(1, 3, 6, 6)
    masked = reprojection_loss_map(target, [target.clone()], [wrong_warp])
    assert masked.abs().max() < 1e-5
    unmasked = reprojection_loss_map(target, [target.clone()], [wrong_warp], automasking=False)
    torch.testing.assert_close(unmasked, photometric_error(wrong_warp, target)[:, 0])


def test_min_versus_average_reprojection() -> None:
    target = torch.full((1, 3, 4, 4), 0.5)
    near, far = torch.full_like(target, 0.6), torch.full_like(target, 0.9)
    pe_near, pe_far = photometric_error(near, target), photometric_error(far, target)
    minimum = reprojection_loss_map(target, [], [near, far], automasking=False)
    average = reprojection_loss_map(target, [], [near, far], automasking=False, min_reprojection=False)
    torch.testing.assert_close(minimum, pe_near[:, 0])
    torch.testing.assert_close(average, ((pe_near + pe_far) / 2)[:, 0])


def test_smoothness_zero_for_constant_disparity_and_hand_value_for_a_step() -> None:
    image = torch.rand(1, 3, 4, 4)
    assert edge_aware_smoothness(torch.full((1, 1, 4, 4), 0.3), image) == 0
    step = torch.tensor([[[[1.0, 3.0], [1.0, 3.0]]]])  # normalised by its mean 2 → 0.5 | 1.5
    flat = torch.zeros(1, 3, 2, 2)
    torch.testing.assert_close(edge_aware_smoothness(step, flat), torch.tensor(1.0), atol=1e-6, rtol=0)
    edge = torch.tensor([[0.0, 0.4], [0.0, 0.4]]).expand(1, 3, 2, 2)
    torch.testing.assert_close(edge_aware_smoothness(step, edge), torch.tensor(math.exp(-0.4)), atol=1e-6, rtol=0)


def test_reprojection_losses_with_perfect_warps_reduce_to_smoothness_and_backpropagate() -> None:
    images = {f: torch.rand(1, 3, 8, 8) for f in (0, -1, 1)}
    outputs: dict = {}
    for r in range(2):
        outputs[("disp", r)] = torch.rand(1, 1, 8 >> r, 8 >> r, requires_grad=True)
        for f in (-1, 1):
            outputs[("color", f, r)] = images[0].clone()
    losses = depth_reprojection_losses(images, outputs, DepthLossConfig(num_scales=2))
    for r in range(2):
        expected = 1e-3 * edge_aware_smoothness(outputs[("disp", r)], images[0]) / 2**r
        torch.testing.assert_close(losses[f"disp_smth_loss_{r}"], expected)
        torch.testing.assert_close(losses[f"loss_{r}"], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(losses["loss_depth_reprojection"], (losses["loss_0"] + losses["loss_1"]) / 2)
    losses["loss_depth_reprojection"].backward()
    assert outputs[("disp", 0)].grad is not None and outputs[("disp", 0)].grad.abs().sum() > 0


def test_self_supervised_loss_static_scene_identity_pose_is_smoothness_only() -> None:
    torch.manual_seed(2)
    frame = torch.rand(1, 3, 16, 16)
    images = {0: frame, -1: frame.clone(), 1: frame.clone()}
    disps = [torch.rand(1, 1, 16 >> r, 16 >> r) for r in range(4)]
    K, inv_K = _intrinsics(1, 16, 16)
    poses = {f: _identity_pose(1) for f in (-1, 1)}
    config = DepthLossConfig(automasking=False, consistent_grid=True)
    losses, outputs = self_supervised_depth_loss(images, disps, K, inv_K, poses, config)
    assert outputs[("disp", 3)] is disps[3]
    for r in range(4):
        assert 0 <= losses[f"loss_{r}"] - losses[f"disp_smth_loss_{r}"] < 1e-4
        assert losses[f"disp_smth_loss_{r}"] > 0


def test_moving_mask_zero_removes_photometric_term() -> None:
    images = {f: torch.rand(1, 3, 6, 6) for f in (0, 1)}
    outputs = {("disp", 0): torch.full((1, 1, 6, 6), 0.5), ("color", 1, 0): torch.rand(1, 3, 6, 6)}
    config = DepthLossConfig(num_scales=1)
    losses = depth_reprojection_losses(images, outputs, config, moving_mask=torch.zeros(1, 6, 6))
    assert losses["loss_0"] == 0


def test_loss_config_defaults_are_the_papers() -> None:
    config = DepthLossConfig()
    assert (config.disparity_smoothness, config.automasking, config.min_reprojection) == (1e-3, True, True)
    assert (config.min_depth, config.max_depth, config.num_scales, config.consistent_grid) == (0.1, 100.0, 4, False)


# ----------------------------------------------------------------------------------------------- l_SDcon


def _block_labels(cls: int = 13) -> torch.Tensor:
    labels = torch.zeros(1, 1, 7, 7, dtype=torch.long)
    labels[..., 1:6, 1:6] = cls  # 25 pixels, interior rows/cols 2..4 (9 pixels)
    return labels


def test_sdcon_hand_computed_vertical_gradient() -> None:
    rows = torch.arange(7, dtype=torch.float32)
    disp = rows[:, None].expand(7, 7).reshape(1, 1, 7, 7).clone()  # disparity = row index
    # interior rows 2, 3, 4: max(v+1 − 1.05 v, 0) = 0.9, 0.85, 0.8 (upper neighbours never exceed), 3 columns
    expected = 10 * 255 * (3 * (0.9 + 0.85 + 0.8) / 9) / 1 / 4
    for neighbours in ("vertical", "four"):
        loss = semantic_depth_consistency(_block_labels(), disp, neighbours=neighbours)
        torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-5, atol=0)


def test_sdcon_vertical_mode_ignores_horizontal_neighbours() -> None:
    cols = torch.arange(7, dtype=torch.float32)
    disp = cols[None, :].expand(7, 7).reshape(1, 1, 7, 7).clone()
    assert semantic_depth_consistency(_block_labels(), disp, neighbours="vertical") == 0
    expected = 10 * 255 * (3 * (0.9 + 0.85 + 0.8) / 9) / 4
    torch.testing.assert_close(
        semantic_depth_consistency(_block_labels(), disp, neighbours="four"), torch.tensor(expected), rtol=1e-5, atol=0
    )


def test_sdcon_counts_regions_without_interior_and_skips_small_ones() -> None:
    rows = torch.arange(7, dtype=torch.float32)
    disp = rows[:, None].expand(2, 1, 7, 7).clone()
    labels = torch.cat([_block_labels(), torch.zeros(1, 1, 7, 7, dtype=torch.long)])
    labels[1, 0, 3, :] = 13  # 7 pixels: not counted
    labels[1, 0, 5, :] = 8
    labels[1, 0, 6, :4] = 8  # 11 pixels, no interior: counted in n, adds nothing
    single = 10 * 255 * (3 * (0.9 + 0.85 + 0.8) / 9) / 4
    torch.testing.assert_close(semantic_depth_consistency(labels, disp), torch.tensor(single / 2), rtol=1e-5, atol=0)


def test_sdcon_zero_for_constant_disparity_and_for_binary_mask_with_gradient() -> None:
    disp = torch.full((1, 1, 7, 7), 0.4, requires_grad=True)
    assert semantic_depth_consistency(_block_labels(), disp) == 0
    binary = semantic_depth_consistency(_block_labels(cls=1), disp)
    assert isinstance(binary, torch.Tensor) and binary.ndim == 0 and binary == 0
    binary.backward()
    assert disp.grad is not None and (disp.grad == 0).all()


def test_label_maps_from_logits() -> None:
    classes = torch.tensor([[0, 5, 10, 13], [19, 8, 2, 18]])
    logits = torch.nn.functional.one_hot(classes, 20).permute(2, 0, 1)[None].float()
    torch.testing.assert_close(class_label_map(logits), torch.tensor([[[[0, 5, 0, 13], [0, 8, 0, 18]]]]))
    torch.testing.assert_close(binary_label_map(logits), torch.tensor([[[[0, 1, 0, 1], [0, 1, 0, 1]]]]))


# ----------------------------------------------------------------------------------------------- CE, patch KD, totals


def test_weighted_ce_uniform_logits_and_hand_weighted_mean() -> None:
    target = torch.tensor([[[0.0, 1.0], [255.0, 255.0]]])
    torch.testing.assert_close(weighted_segmentation_ce(torch.zeros(1, 20, 2, 2), target), torch.tensor(math.log(20)))
    logits = torch.zeros(1, 20, 2, 2)
    logits[0, 0, 0, 0] = 2.0  # pixel 0 (class 0) more confident, pixel 1 (class 1) uniform
    nll0 = -math.log(math.exp(2) / (math.exp(2) + 19))
    nll1 = math.log(20)
    w0, w1 = SEG_CLASS_WEIGHTS[0], SEG_CLASS_WEIGHTS[1]
    expected = (w0 * nll0 + w1 * nll1) / (w0 + w1)
    torch.testing.assert_close(weighted_segmentation_ce(logits, target[:, None]), torch.tensor(expected))


def test_patch_loss_hand_values() -> None:
    disp = torch.full((1, 1, 8, 8), 0.5)
    torch.testing.assert_close(patch_kd_loss(disp, disp.clone(), [3]), torch.tensor(0.0), atol=1e-7, rtol=0)
    disp, target = disp.double(), torch.full((1, 1, 8, 8), 0.3, dtype=torch.float64)
    ssim = (2 * 0.5 * 0.3 + C1) / (0.25 + 0.09 + C1)
    structure = 64 * (1 - ssim) / 2 / (2 * 1 * 128)
    expected = 2 * (0.2 * structure + 0.8 * 0.04)
    torch.testing.assert_close(patch_kd_loss(disp, target, [2]), torch.tensor(expected, dtype=torch.float64))
    no_patches = 2 * (0.2 * 1e-7 + 0.8 * 0.04)
    torch.testing.assert_close(patch_kd_loss(disp, target, [0]), torch.tensor(no_patches, dtype=torch.float64))


def test_patch_loss_mask_broadcast_modes() -> None:
    torch.manual_seed(1)
    disp, target = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    mask = (torch.rand(2, 8, 8) > 0.5).float()
    per_image = patch_kd_loss(disp, target, [1, 2], mask)
    torch.testing.assert_close(per_image, patch_kd_loss(disp * mask[:, None], target * mask[:, None], [1, 2]))
    assert not torch.isclose(per_image, patch_kd_loss(disp, target, [1, 2], mask, mask_broadcast="authors"))
    single = (disp[:1], target[:1], [3], mask[:1])
    torch.testing.assert_close(patch_kd_loss(*single), patch_kd_loss(*single, mask_broadcast="authors"))


def test_patch_loss_gradient_reaches_student_only() -> None:
    disp = torch.rand(1, 1, 8, 8, requires_grad=True)
    target = torch.rand(1, 1, 8, 8, requires_grad=True)
    patch_kd_loss(disp, target, [1]).backward()
    assert disp.grad is not None and target.grad is None


def test_totals() -> None:
    reprojection, sdcon, seg, patch = (torch.tensor(v) for v in (0.3, 0.1, 1.5, 0.2))
    torch.testing.assert_close(depth_branch_loss(reprojection, sdcon), torch.tensor(0.7))
    torch.testing.assert_close(total_loss(reprojection, sdcon, seg, patch), torch.tensor(2.4))
    torch.testing.assert_close(total_loss(reprojection, sdcon, seg), torch.tensor(2.2))


# ----------------------------------------------------------------------------------------------- metrics


def test_kitti_zhou_mask_crop_bounds() -> None:
    mask = kitti_zhou_mask(np.full((375, 1242), 10.0, dtype=np.float32))
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (153, 370, 44, 1196)
    gt = np.full((375, 1242), 80.0, dtype=np.float32)
    gt[200, 100] = 5.0
    assert kitti_zhou_mask(gt).sum() == 1
    assert kitti_kitti_mask(gt).sum() == gt.size


def test_depth_metrics_perfect_after_median_scaling_uses_numpy_median() -> None:
    gt = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    metrics, ratio = depth_image_metrics(2 * gt, gt, np.ones_like(gt, dtype=bool))
    assert ratio == pytest.approx(0.5)
    assert metrics["abs_rel"] == pytest.approx(0) and metrics["rmse"] == pytest.approx(0)
    assert metrics["delta1"] == 1.0
    _, even_ratio = depth_image_metrics(np.ones_like(gt), gt, np.ones_like(gt, dtype=bool))
    assert even_ratio == pytest.approx(2.5)  # mean of the two middle values, not the lower one


def test_depth_metrics_fixed_scaling_and_clamp() -> None:
    gt = np.array([[10.0, 20.0]], dtype=np.float32)
    pred = np.array([[5.0, 100.0]], dtype=np.float32)
    metrics, ratio = depth_image_metrics(pred, gt, np.ones_like(gt, dtype=bool), fixed_scaling=2.0)
    assert ratio == 2.0
    # scaled prediction [10, 200] clamps to [10, 80]
    assert metrics["abs_rel"] == pytest.approx((0 + 60 / 20) / 2)
    assert metrics["rmse"] == pytest.approx(math.sqrt(60**2 / 2))
    assert metrics["delta1"] == pytest.approx(0.5)


def test_evaluate_depth_batch_averages_over_images() -> None:
    disp = torch.full((2, 1, 4, 4), 0.5)
    gt = np.zeros((2, 1, 8, 8), dtype=np.float32)
    gt[0, 0, :, :4], gt[0, 0, :, 4:] = 2.0, 4.0
    gt[1, 0] = 3.0
    score = evaluate_depth_batch(disp, gt, mask="kitti_kitti")
    expected_pred = 1 / (0.01 + 9.99 * 0.5)
    assert score.ratios == pytest.approx([3.0 / expected_pred, 3.0 / expected_pred], rel=1e-6)
    # image 0 is scaled to 3 m (median of 2 and 4): abs_rel (1/2 + 1/4)/2; image 1 is exact: mean over images
    assert score.get_scores()["abs_rel"] == pytest.approx(0.375 / 2, rel=1e-5)
    assert ratio_summary(score.ratios) == pytest.approx((3.0 / expected_pred, 0.0), rel=1e-6)


def test_ratio_summary_first_quarter_option() -> None:
    ratios = [2.0, 2.0, 4.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert ratio_summary(ratios) == pytest.approx((6.0, np.std(np.array(ratios) / 6.0)))
    assert ratio_summary(ratios, first_quarter=True) == pytest.approx((2.0, 0.0))
    assert ratio_summary([5.0, 7.0], first_quarter=True) == pytest.approx((5.0, 0.0))


def test_predicted_depth_upsamples_scaled_disparity() -> None:
    depth = predicted_depth(torch.full((1, 1, 2, 3), 0.25), (5, 7))
    assert depth.shape == (1, 1, 5, 7)
    torch.testing.assert_close(depth, torch.full_like(depth, 1 / (0.01 + 9.99 * 0.25)))


def test_depth_running_score_requires_images() -> None:
    with pytest.raises(ValueError, match="no image"):
        DepthRunningScore().get_scores()


def test_segmentation_running_score_hand_example() -> None:
    score = SegmentationRunningScore(4)
    score.update(np.array([0, 0, 1, 255, 1]), np.array([0, 1, 1, 3, 7]))  # 255 and out-of-range predictions dropped
    np.testing.assert_array_equal(score.confusion_matrix[:2, :2], [[1, 1], [0, 1]])
    assert score.confusion_matrix.sum() == 3
    scores = score.get_scores()
    np.testing.assert_allclose(scores["iou"], [0.5, 0.5, np.nan, np.nan])
    np.testing.assert_allclose(scores["acc"], [0.5, 1.0, np.nan, np.nan])
    assert scores["meaniou"] == pytest.approx(0.5)
    assert scores["meanacc"] == pytest.approx(0.75)
    assert scores["meanprec"] == pytest.approx(0.75)
    assert scores["totalacc"] == pytest.approx(2 / 3)
    assert scores["freqwacc"] == pytest.approx(0.5)


def test_predicted_void_class_counts_in_mean_iou() -> None:
    score = SegmentationRunningScore(3)
    score.update(np.array([0, 0]), np.array([0, 2]))
    scores = score.get_scores()
    assert scores["iou"][2] == 0 and np.isnan(scores["iou"][1])
    assert scores["meaniou"] == pytest.approx(0.25)


def test_segmentation_prediction_nearest_then_argmax() -> None:
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 2, 0, 0] = logits[0, 1, 0, 1] = 1.0
    torch.testing.assert_close(segmentation_prediction(logits, (2, 4)), torch.tensor([[[2, 2, 1, 1], [2, 2, 1, 1]]]))


def _translations(points: list[list[float]]) -> np.ndarray:
    poses = np.tile(np.eye(4), (len(points), 1, 1))
    poses[:, :3, 3] = points
    return poses


def test_relative_poses_and_trajectory_of_pure_translations() -> None:
    relative = relative_poses(_translations([[0, 0, 0], [0, 0, 1], [0, 0, 3]]))
    np.testing.assert_allclose(relative[:, :3, 3], [[0, 0, -1], [0, 0, -2]])
    np.testing.assert_allclose(trajectory_positions(relative), [[0, 0, 0], [0, 0, -1], [0, 0, -3]])


def test_snippet_ate_hand_value_and_scale_invariance() -> None:
    gt = np.array([[0.0, 0, 0], [1, 0, 0]])
    assert snippet_ate(gt, np.array([[0.0, 0, 0], [0, 1, 0]])) == pytest.approx(0.5)  # best scale 0
    assert snippet_ate(gt, np.array([[5.0, 5, 5], [5.5, 5, 5]])) == pytest.approx(0.0)  # shift + scale 2


def test_pose_ate_zero_for_scaled_prediction_and_counts_snippets() -> None:
    gt = relative_poses(_translations([[0, 0, i * i] for i in range(7)]))
    pred = gt.copy()
    pred[:, :3, 3] *= 0.5
    assert pose_ate(pred, gt) == pytest.approx((0.0, 0.0), abs=1e-12)
    pred[2, :3, 3] += [0.3, 0.0, 0.0]  # disturbs the snippets starting at 0, 1, 2 (of 3)
    mean, std = pose_ate(pred, gt)
    assert mean > 0 and std >= 0


# ----------------------------------------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ssim_dissimilarity(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5)), "x/y"),
        (lambda: ssim_dissimilarity(torch.rand(3, 4, 4), torch.rand(3, 4, 4)), "x"),
        (lambda: disp_to_depth(torch.tensor([float("nan")])), "disp"),
        (lambda: backproject(torch.rand(1, 2, 4, 4), torch.eye(4)[None]), "depth/inv_K"),
        (lambda: project_to_grid(torch.rand(1, 4, 16), torch.eye(4)[None], torch.eye(3)[None], 4, 4), "cam_T_cam"),
        (lambda: semantic_depth_consistency(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)), "label_map"),
        (
            lambda: semantic_depth_consistency(torch.zeros(1, 1, 4, 4, dtype=torch.long), torch.rand(1, 1, 4, 5)),
            "label_map/disp",
        ),
        (
            lambda: semantic_depth_consistency(
                torch.zeros(1, 1, 4, 4, dtype=torch.long), torch.rand(1, 1, 4, 4), neighbours="eight"
            ),
            "neighbours",
        ),
        (lambda: weighted_segmentation_ce(torch.rand(1, 20, 4, 4), torch.zeros(1, 4, 5)), "target"),
        (lambda: weighted_segmentation_ce(torch.rand(1, 19, 4, 4), torch.zeros(1, 4, 4)), "class_weights"),
        (lambda: patch_kd_loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), [-1]), "patch_counts"),
        (
            lambda: patch_kd_loss(torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4), [1], torch.ones(1, 4, 4)),
            "moving_mask",
        ),
        (lambda: patch_kd_loss(torch.rand(1, 1, 4, 4), torch.full((1, 1, 4, 4), float("nan")), [1]), "disp_a"),
        (lambda: evaluate_depth_batch(torch.rand(1, 1, 4, 4), np.ones((2, 1, 8, 8))), "depth_gt"),
        (lambda: evaluate_depth_batch(torch.rand(1, 1, 4, 4), np.ones((1, 1, 8, 8)), mask="nyu"), "mask"),
        (lambda: SegmentationRunningScore(4).update(np.zeros(3), np.zeros(4)), "gt/pred"),
        (lambda: pose_ate(np.zeros((3, 4, 4)), np.zeros((3, 4, 4))), "pred_relative/gt_relative"),
        (lambda: relative_poses(np.zeros((3, 3, 3))), "global_poses"),
        (lambda: depth_reprojection_losses({0: torch.rand(1, 3, 4, 4), 1: torch.rand(1, 3, 4, 4)}, {}), "outputs"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, match) -> None:
    with pytest.raises((ValueError, TypeError, KeyError), match=match):
        call()
