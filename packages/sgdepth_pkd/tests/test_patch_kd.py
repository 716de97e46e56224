"""Unit tests of patch knowledge distillation: selection, edges and weights, masks, teachers, robustness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from semcommon.io import write_depth
from sgdepth_pkd.patch_kd.fusion import (
    BETWEEN,
    FAR,
    NEAR,
    PatchKDConfig,
    align_to_patch,
    build_distillation_target,
    distill_batch,
    distill_image,
    edge_distance,
    final_blend,
    fit_line,
    generate_mask,
    joint_minmax,
    laplacian_edges,
    overlap_mask,
    weight_classes,
)
from sgdepth_pkd.patch_kd.select import SelectionConfig, candidate_grid, grow_patch, integral_image, select_patches
from sgdepth_pkd.patch_kd.teachers import ModuleTeacher, PrecomputedTeacher, SelfTeacher


class TinyDepthNet(nn.Module):
    """A parametrised stand-in teacher: ``predict_disparity`` like SGDepth, ``forward`` like DPT (N×h×w)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 1, 3, padding=1)
        self.sizes: list[int] = []

    def predict_disparity(self, images: torch.Tensor) -> torch.Tensor:
        self.sizes.append(images.shape[-1])
        return torch.sigmoid(self.conv(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.sigmoid(self.conv(images))[:, 0] + 1.0


class ConstantNet(nn.Module):
    """Teacher predicting the same value everywhere."""

    def predict_disparity(self, images: torch.Tensor) -> torch.Tensor:
        return torch.full((images.shape[0], 1, *images.shape[-2:]), 0.3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.full((images.shape[0], *images.shape[-2:]), 7.0)


class FailingNet(nn.Module):
    def predict_disparity(self, images: torch.Tensor) -> torch.Tensor:
        raise AssertionError("teacher must not run")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise AssertionError("teacher must not run")


def textured_image(height: int, width: int, cols: slice, amplitude: float = 2.0, seed: int = 0) -> torch.Tensor:
    """1×3×H×W normalised image: flat except a block of random texture in the columns ``cols``."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.zeros(1, 3, height, width)
    block = image[..., cols]
    block.copy_((torch.rand(block.shape, generator=generator) * 2 - 1) * amplitude)
    return image


def smooth_disp(height: int, width: int, batch: int = 1) -> torch.Tensor:
    rows = torch.linspace(0.05, 0.3, height)[:, None]
    cols = torch.linspace(0.0, 0.05, width)[None, :]
    return (rows + cols).expand(batch, 1, height, width).clone()


def teachers(net: nn.Module) -> tuple[SelfTeacher, ModuleTeacher]:
    return SelfTeacher(net), ModuleTeacher(net)


# --- selection -------------------------------------------------------------------------------------------------------


def test_candidate_grid_at_192x640() -> None:
    rects = candidate_grid(192, 640, SelectionConfig())
    assert len(rects) == 22
    assert [r[0] for r in rects[:11]] == [0] * 11 and [r[0] for r in rects[11:]] == [48] * 11
    assert [r[1] for r in rects[:11]] == list(range(0, 481, 48))
    assert all(r[2:] == (128, 128) for r in rects)


def test_grow_patch_stops_at_border_and_density() -> None:
    table = integral_image(np.ones((256, 256)))
    assert grow_patch((64, 64, 128, 128), table, threshold=1.0, growth=32) == (0, 0, 256, 256)
    assert grow_patch((48, 64, 128, 128), table, threshold=1.0, growth=32) == (16, 32, 192, 192)
    assert grow_patch((64, 64, 128, 128), table, threshold=1.5, growth=32) == (64, 64, 128, 128)


def test_selection_grows_and_stably_sorts_by_size() -> None:
    image = textured_image(256, 832, slice(100, 420))[0]
    selection = select_patches(image)
    sizes = [r[2] for r in selection.rects]
    assert 192 in sizes and 128 in sizes
    assert sizes == sorted(sizes, reverse=True)
    assert sorted(selection.order) == list(range(len(selection.rects)))
    for row0, col0, height, width in selection.rects:
        assert height == width and row0 >= 0 and col0 >= 0 and row0 + height <= 256 and col0 + width <= 832
    same_size = [k for k, s in zip(selection.order, sizes, strict=True) if s == 128]
    assert same_size == sorted(same_size)


def test_selection_rejects_bad_image() -> None:
    with pytest.raises(ValueError, match="image"):
        select_patches(torch.zeros(1, 64, 64))
    with pytest.raises(ValueError, match="NaN"):
        select_patches(torch.full((3, 64, 64), float("nan")))


# --- edges, distances, weights ---------------------------------------------------------------------------------------


def test_laplacian_uint8_wrap_quirk() -> None:
    patch = np.full((3, 9, 9), -1.5, dtype=np.float32)  # gray −1.5 → uint8 255 (wraps)
    patch[:, 4, 4] = -0.2  # → 0: darker than its 255 neighbours
    patch[:, 0, 0] = -2.7  # → 254: darker than its neighbours too
    edges = laplacian_edges(patch, uint8_wrap=True)
    assert edges[4, 4] and edges[0, 0] and edges.sum() == 2
    assert not laplacian_edges(patch, uint8_wrap=False).any()  # saturation: everything 0


def test_edge_distance_is_exact_euclidean() -> None:
    edges = np.random.default_rng(0).random((20, 24)) > 0.97
    points = np.argwhere(edges)
    grid = np.indices(edges.shape).reshape(2, -1).T
    brute = np.sqrt(((grid[:, None, :] - points[None]) ** 2).sum(-1)).min(1).reshape(edges.shape)
    np.testing.assert_allclose(edge_distance(edges), brute, atol=1e-12)
    assert np.isinf(edge_distance(np.zeros((4, 4), dtype=bool))).all()


def test_weight_classes_use_dmin_dmax() -> None:
    edges = np.zeros((16, 16), dtype=bool)
    edges[8, 8] = True
    config = PatchKDConfig(dmin_factor=0.01, dmax_factor=0.02)  # dmin 2.56, dmax 5.12 for one edge pixel
    distance = edge_distance(edges)
    expected = np.where(distance < 2.56, NEAR, np.where(distance > 5.12, FAR, BETWEEN))
    classes = weight_classes(edges, config)
    np.testing.assert_array_equal(classes, expected)
    assert {NEAR, BETWEEN, FAR} <= set(np.unique(classes).tolist())
    np.testing.assert_array_equal(weight_classes(np.zeros((16, 16), dtype=bool), config), BETWEEN)


# --- alignment and masks ---------------------------------------------------------------------------------------------


def test_fit_line_matches_polyfit_and_handles_constant_x() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.random(500), rng.random(500)
    np.testing.assert_allclose(fit_line(x, y), np.polyfit(x, y, 1), rtol=1e-10)
    assert fit_line(np.ones(10), np.arange(10.0)) == (0.0, 4.5)


def test_align_to_patch_recovers_affine_teacher_and_constant_maps() -> None:
    target = np.random.default_rng(2).random((16, 16)) + 0.1
    np.testing.assert_allclose(align_to_patch(3.0 * target + 5.0, target), target, atol=1e-10)
    constant = align_to_patch(np.full((16, 16), 2.0), target)
    np.testing.assert_allclose(constant, target.mean())
    assert np.isfinite(align_to_patch(np.zeros((16, 16)), target)).all()


def test_joint_minmax_is_joint_and_safe() -> None:
    stack = np.stack([np.full((1, 4, 4), 2.0), np.full((1, 4, 4), 6.0)])
    normalised = joint_minmax(stack)
    assert normalised[0].max() == 0.0 and normalised[1].min() == 1.0
    np.testing.assert_array_equal(joint_minmax(np.full((2, 1, 4, 4), 3.0)), 0.0)


def test_generate_mask_shape_range_symmetry() -> None:
    for height, width in ((160, 160), (192, 640), (8, 12)):
        mask = generate_mask(height, width)
        assert mask.shape == (height, width) and mask.dtype == np.float32
        assert mask.min() == pytest.approx(0.0, abs=1e-6)
        assert mask.max() == pytest.approx(1.0)
        np.testing.assert_allclose(mask, mask[::-1, ::-1], atol=1e-6)
    assert generate_mask(160, 160)[80, 80] == pytest.approx(1.0)


def test_overlap_mask_ramp_and_gaussian() -> None:
    covered = np.zeros((128, 128))
    covered[:, 48:] = 1.0  # the previous patch overlaps the right 80 columns
    ramp = overlap_mask(covered, use_ramp=True, pad_factor=0.25)
    expected = np.where(np.arange(128) >= 48, (128.0 - np.arange(128)) / 80.0, 1.0)
    np.testing.assert_allclose(ramp, np.broadcast_to(expected, (128, 128)), atol=1e-12)
    corner = overlap_mask(covered, use_ramp=False, pad_factor=0.25)
    np.testing.assert_allclose(corner[:, 48:], generate_mask(160, 160)[32:, 80:], atol=1e-7)
    np.testing.assert_array_equal(corner[:, :48], 1.0)
    np.testing.assert_array_equal(overlap_mask(np.zeros((8, 8)), True, 0.25), 1.0)


def test_final_blend_keeps_uncovered_pixels_of_the_box() -> None:
    disp = np.full((32, 64), 0.2)
    fused = np.full((32, 64), 0.5)
    covered = np.zeros((32, 64), dtype=bool)
    covered[:8, :8] = covered[20:, 40:] = True
    blended = final_blend(disp, fused, covered, PatchKDConfig())
    np.testing.assert_array_equal(blended[~covered], 0.2)
    assert (blended[covered] > 0.2).all() and (blended[covered] < 0.2 + 0.6 * 0.51 * 0.3 + 1e-9).all()


# --- end to end --------------------------------------------------------------------------------------------------------


def test_no_patch_image_returns_disp_unchanged() -> None:
    image, disp = textured_image(96, 320, slice(0, 320)), smooth_disp(96, 320)
    disp_a, patchnums = build_distillation_target(image, disp, *teachers(FailingNet()))
    assert torch.equal(disp_a, disp) and patchnums.tolist() == [0]


@pytest.mark.parametrize(("height", "width", "patch"), [(256, 832, 128), (96, 320, 64), (192, 640, 128)])
def test_other_sizes_change_disp_only_inside_patches(height: int, width: int, patch: int) -> None:
    config = PatchKDConfig(selection=SelectionConfig(patch_size=patch))
    image, disp = textured_image(height, width, slice(width // 8, width // 2)), smooth_disp(height, width)
    result = distill_batch(image, disp, *teachers(TinyDepthNet()), config)
    details = result.details[0]
    assert result.patchnums.item() == len(details.rects) > 0
    assert details.fused_self.shape == (len(details.rects), 1, patch, patch)
    inside = torch.zeros(height, width, dtype=torch.bool)
    for row0, col0, h, w in details.rects.tolist():
        inside[row0 : row0 + h, col0 : col0 + w] = True
    changed = (result.disp_a[0, 0] - disp[0, 0]).abs() > 0
    assert changed.any() and not (changed & ~inside).any()
    assert torch.isfinite(result.disp_a).all()


def test_patch_without_edges_uses_between_weights() -> None:
    image, disp = textured_image(192, 640, slice(100, 400), amplitude=0.9), smooth_disp(192, 640)  # gray uint8 = 0
    net = TinyDepthNet()
    self_teacher = SelfTeacher(net)
    result = distill_batch(image, disp, self_teacher, ModuleTeacher(net))
    details = result.details[0]
    assert len(details.rects) > 0 and details.edge_counts.eq(0).all()
    assert details.weight_classes.eq(BETWEEN).all()
    stack = torch.cat([image[:, :, r : r + h, c : c + w] for r, c, h, w in details.rects.tolist()])
    hr, mr, lr = self_teacher.predict_scales(stack)
    torch.testing.assert_close(details.fused_self, 0.25 * hr + 0.7 * mr + 0.05 * lr, atol=1e-6, rtol=0)
    assert torch.isfinite(result.disp_a).all()


def test_constant_teachers_do_not_divide_by_zero() -> None:
    image, disp = textured_image(192, 640, slice(100, 400)), smooth_disp(192, 640)
    result = distill_batch(image, disp, *teachers(ConstantNet()))
    assert result.patchnums.item() > 0
    assert torch.isfinite(result.disp_a).all() and torch.isfinite(result.details[0].external_norm).all()
    assert not torch.equal(result.disp_a, disp)


def test_gradients_do_not_flow_into_teachers() -> None:
    image = textured_image(192, 640, slice(100, 400)).repeat(2, 1, 1, 1)
    disp = smooth_disp(192, 640, batch=2).requires_grad_(True)
    net = TinyDepthNet()
    net.train()
    disp_a, patchnums = build_distillation_target(image, disp, *teachers(net))
    assert not disp_a.requires_grad and patchnums.tolist() == [patchnums[0].item()] * 2
    loss = ((disp - disp_a) ** 2).mean()
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert not net.training
    torch.testing.assert_close(disp.grad, 2 * (disp - disp_a).detach() / disp.numel())


def test_batch_input_validation() -> None:
    image, disp = textured_image(192, 640, slice(100, 400)), smooth_disp(192, 640)
    self_teacher, external = teachers(TinyDepthNet())
    with pytest.raises(ValueError, match="disp"):
        build_distillation_target(image, disp[:, :, :100], self_teacher, external)
    with pytest.raises(ValueError, match="color_aug"):
        build_distillation_target(image[:, :2], disp, self_teacher, external)
    with pytest.raises(ValueError, match="disp"):
        build_distillation_target(image, disp * float("nan"), self_teacher, external)
    with pytest.raises(ValueError, match="disp must be 1×H×W"):
        distill_image(image[0], disp[0, :, :100], self_teacher, external)
    with pytest.raises(TypeError, match="self_teacher"):
        build_distillation_target(image, disp, external, external)
    bad_external = ModuleTeacher(lambda patches: torch.zeros(patches.shape[0], 2, 8, 8), name="dpt")
    with pytest.raises(ValueError, match="dpt returned shape"):
        build_distillation_target(image, disp, self_teacher, bad_external)


# --- teachers ----------------------------------------------------------------------------------------------------------


def test_self_teacher_runs_three_scales_frozen() -> None:
    net = TinyDepthNet()
    teacher = SelfTeacher(net)
    net.train()
    outputs = teacher.predict_scales(torch.randn(4, 3, 128, 128))
    assert net.sizes == [192, 128, 64]
    assert [tuple(o.shape) for o in outputs] == [(4, 1, 128, 128)] * 3
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    with pytest.raises(TypeError, match="predict_disparity"):
        SelfTeacher(nn.Conv2d(3, 1, 1))


def test_self_teacher_from_checkpoint_uses_load_pretrained(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import sgdepth_pkd.checkpoint as checkpoint

    seen = []
    monkeypatch.setattr(checkpoint, "load_pretrained", lambda path, **kwargs: seen.append(path) or TinyDepthNet())
    teacher = SelfTeacher.from_checkpoint(tmp_path / "model.pth")
    assert seen == [tmp_path / "model.pth"] and isinstance(teacher.model, TinyDepthNet)


def test_module_teacher_accepts_nxhxw_output() -> None:
    output = ModuleTeacher(TinyDepthNet())(torch.randn(2, 3, 16, 16))
    assert output.shape == (2, 1, 16, 16) and not output.requires_grad


def test_precomputed_teacher_crops_windows(tmp_path) -> None:
    inverse = np.random.default_rng(3).random((48, 80)).astype(np.float32) + 0.5
    np.save(tmp_path / "a.npy", inverse)
    depth = np.full((48, 80), 4.0)
    write_depth(tmp_path / "b.png", depth, scale=256.0)
    rects = [(0, 0, 16, 16), (8, 40, 32, 32)]

    crops = PrecomputedTeacher(tmp_path).predict_windows("a", rects, (48, 80), 16)
    assert crops.shape == (2, 1, 16, 16)
    np.testing.assert_array_equal(crops[0, 0].numpy(), inverse[:16, :16])
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(inverse[8:40, 40:72])[None, None], size=(16, 16), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(crops[1:], expected)

    from_depth = PrecomputedTeacher(tmp_path, kind="depth", png_scale=256.0).predict_windows("b", rects, (96, 160), 16)
    torch.testing.assert_close(from_depth, torch.full((2, 1, 16, 16), 0.25))
    with pytest.raises(FileNotFoundError, match="name"):
        PrecomputedTeacher(tmp_path).load_map("missing")


def test_precomputed_teacher_in_batch_needs_names(tmp_path) -> None:
    image, disp = textured_image(192, 640, slice(100, 400)), smooth_disp(192, 640)
    np.save(tmp_path / "img0.npy", np.random.default_rng(4).random((192, 640)).astype(np.float32))
    self_teacher, external = SelfTeacher(TinyDepthNet()), PrecomputedTeacher(tmp_path)
    with pytest.raises(ValueError, match="names"):
        build_distillation_target(image, disp, self_teacher, external)
    disp_a, patchnums = build_distillation_target(image, disp, self_teacher, external, names=["img0"])
    assert patchnums.item() > 0 and torch.isfinite(disp_a).all() and not torch.equal(disp_a, disp)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="patch_size"):
        SelectionConfig(patch_size=1)
    with pytest.raises(ValueError, match="dmin_factor"):
        PatchKDConfig(dmin_factor=3.0)
    with pytest.raises(ValueError, match="same length"):
        PatchKDConfig(far_weights=(0.5, 0.5))
    assert PatchKDConfig().class_weights.tolist() == [[0.3, 0.7, 0.0], [0.25, 0.7, 0.05], [0.15, 0.7, 0.15]]
