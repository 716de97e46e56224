"""Behaviour of the networks beyond the fixtures: gradient scaling, batch packing, masks, pose maths, validation."""

from __future__ import annotations

import math

import pytest
import torch

from sgdepth_pkd.config import GLAEncoderConfig, SGDepthConfig
from sgdepth_pkd.geometry import rotation_from_axisangle, transformation_from_parameters
from sgdepth_pkd.model.attention import block_self_attention, channel_self_attention
from sgdepth_pkd.model.decoder import decoder_plan
from sgdepth_pkd.model.encoder import ResnetEncoder
from sgdepth_pkd.model.gla import GLAResNetEncoder
from sgdepth_pkd.model.sgdepth import ScaledSplit, SGDepth, has_purpose, segmentation_mask

SMALL = SGDepthConfig(num_layers=18, num_layers_pose=18)
H, W = 64, 96


def _images(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, H, W, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def small_model() -> SGDepth:
    torch.manual_seed(0)
    return SGDepth(SMALL).eval()


# --------------------------------------------------------------------------------------------- gradient scaling
def test_scaled_split_scales_each_copy() -> None:
    x = torch.randn(2, 3, requires_grad=True)
    y = torch.randn(2, 3, requires_grad=True)
    depth, seg = ScaledSplit(0.9, 0.1)((x, y))
    assert torch.equal(depth[0], x) and torch.equal(seg[1], y)
    weights = torch.randn(2, 3)
    ((depth[0] * weights).sum() + (seg[0] * weights).sum() + seg[1].sum()).backward()
    torch.testing.assert_close(x.grad, weights * 0.9 + weights * 0.1)
    torch.testing.assert_close(y.grad, torch.full_like(y, 0.1))


@pytest.mark.parametrize(("branch", "scale"), [("depth", 0.9), ("seg", 0.1)])
def test_branch_gradients_into_shared_part_are_scaled(small_model: SGDepth, branch: str, scale: float) -> None:
    """Same weights with scales 1/1: shared-part gradients differ by exactly the branch scale, tails do not."""
    unscaled = SGDepth(SGDepthConfig(num_layers=18, num_layers_pose=18, grad_scale_depth=1.0, grad_scale_seg=1.0))
    unscaled.load_state_dict(small_model.state_dict())
    unscaled.eval()
    grads = []
    for model in (small_model, unscaled):
        model.zero_grad()
        images = _images()
        out = model.predict_disparity(images) if branch == "depth" else model.predict_segmentation(images)
        (out * torch.linspace(0, 1, out.numel()).reshape(out.shape)).sum().backward()
        tail = getattr(model, branch).decoder.blocks.step_1.conv.weight.grad.clone()
        shared = [model.common.decoder.blocks.step_0.conv.weight, model.common.encoder.encoder.conv1.weight]
        grads.append((tail, [p.grad.clone() for p in shared]))
    (tail_s, shared_s), (tail_u, shared_u) = grads
    torch.testing.assert_close(tail_s, tail_u)
    for g_s, g_u in zip(shared_s, shared_u, strict=True):
        assert g_u.abs().max() > 0
        torch.testing.assert_close(g_s, scale * g_u, rtol=0, atol=1e-4 * float(g_u.abs().max()))
    small_model.zero_grad()


# ------------------------------------------------------------------------------------- batch-dict forward
def test_batch_packing_matches_separate_calls(small_model: SGDepth) -> None:
    kitti = {
        ("color_aug", 0, 0): _images(2, 1),
        ("color_aug", -1, 0): _images(2, 2),
        ("color_aug", 1, 0): _images(2, 3),
        "purposes": [["depth", "depth"]],
    }
    cityscapes = {("color_aug", 0, 0): _images(3, 4), "purposes": [["segmentation"] * 3]}
    with torch.no_grad():
        out_kitti, out_city = small_model((kitti, cityscapes))
        disps = small_model.predict_disparities(kitti["color_aug", 0, 0])
        logits = small_model.predict_segmentation(cityscapes["color_aug", 0, 0])
        pose_prev = small_model.predict_pose(kitti["color_aug", -1, 0], kitti["color_aug", 0, 0], invert=True)
    assert set(out_kitti) == {("disp", r) for r in range(4)} | {
        ("segmentation_mask", 0),
        ("cam_T_cam", 0, -1),
        ("cam_T_cam", 0, 1),
    }
    assert set(out_city) == {("segmentation_logits", 0)}
    for res in range(4):
        assert out_kitti["disp", res].shape == (2, 1, H >> res, W >> res)
        torch.testing.assert_close(out_kitti["disp", res], disps[res], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_city["segmentation_logits", 0], logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_kitti["cam_T_cam", 0, -1], pose_prev)
    assert out_kitti["cam_T_cam", 0, 1].shape == (2, 1, 1, 4, 4)
    mask = out_kitti["segmentation_mask", 0]
    assert mask.dtype == torch.int64 and mask.shape == (2, 1, H, W) and set(mask.unique().tolist()) <= {0, 1}


def test_batch_frames_of_different_sizes_are_named(small_model: SGDepth) -> None:
    kitti = {("color_aug", 0, 0): _images(2), ("color_aug", -1, 0): torch.zeros(2, 3, 32, 96), "purposes": ["depth"]}
    with pytest.raises(ValueError, match=r"batch\[0\]\[\('color_aug', -1, 0\)\].*differs"):
        small_model((kitti,))
    city = {("color_aug", 0, 0): torch.zeros(1, 3, 32, 64), "purposes": ["segmentation"]}
    with pytest.raises(ValueError, match=r"batch\[1\].*differs from batch\[0\]"):
        small_model(({("color_aug", 0, 0): _images(1), "purposes": ["depth"]}, city))


def test_predict_runs_both_tasks_from_one_shared_pass(small_model: SGDepth) -> None:
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        disps, logits = small_model.predict(images)
        for ours, separate in zip(disps, small_model.predict_disparities(images), strict=True):
            torch.testing.assert_close(ours, separate, rtol=0, atol=0)
        torch.testing.assert_close(logits, small_model.predict_segmentation(images), rtol=0, atol=0)


def test_label_map_option_exposes_classes(small_model: SGDepth) -> None:
    config = SGDepthConfig(num_layers=18, num_layers_pose=18, sdcon_label_map="classes")
    model = SGDepth(config).eval()
    model.load_state_dict(small_model.state_dict())
    images = _images()
    with torch.no_grad():
        mask = model(({("color_aug", 0, 0): images, "purposes": [["depth"]]},))[0]["segmentation_mask", 0]
        labels = small_model.predict_segmentation(images).argmax(1, keepdim=True)
    expected = labels.clone()
    expected[torch.isin(labels, torch.tensor(config.seg_mask_static_classes))] = 0
    assert torch.equal(mask, expected)


def test_segmentation_mask_modes() -> None:
    classes = torch.tensor([0, 4, 5, 10, 11, 18, 19])
    logits = torch.nn.functional.one_hot(classes, 20).float().T.reshape(1, 20, 1, 7)
    static = (0, 1, 2, 3, 4, 10, 19)
    assert segmentation_mask(logits, static, "binary").flatten().tolist() == [0, 0, 1, 0, 1, 1, 0]
    assert segmentation_mask(logits, static, "classes").flatten().tolist() == [0, 0, 5, 0, 11, 18, 0]
    with pytest.raises(ValueError, match="mode"):
        segmentation_mask(logits, static, "soft")


def test_has_purpose_accepts_collated_and_plain_entries() -> None:
    assert has_purpose({"purposes": [("depth", "depth"), ("segmentation", "segmentation")]}, "segmentation")
    assert has_purpose({"purposes": ["depth"]}, "depth")
    assert not has_purpose({"purposes": [["segmentation"]]}, "depth")
    assert not has_purpose({}, "depth")


# ----------------------------------------------------------------------------------------- architecture pieces
def test_decoder_plan_matches_spec_table() -> None:
    plan = decoder_plan((2048, 1024, 512, 256, 64), (256, 128, 64, 32, 16))
    table = [(s.upsample, s.src, s.dst, s.skip, s.ch_in, s.ch_out) for s in plan]
    assert table == [
        (False, 0, 0, None, 2048, 256),
        (True, 0, 0, 1, 1280, 256),
        (False, 0, 1, None, 256, 128),
        (True, 1, 1, 2, 640, 128),
        (False, 1, 2, None, 128, 64),
        (True, 2, 2, 3, 320, 64),
        (False, 2, 3, None, 64, 32),
        (True, 3, 3, 4, 96, 32),
        (False, 3, 4, None, 32, 16),
        (True, 4, 4, None, 16, 16),
    ]


def test_split_position_moves_decoder_steps_into_common() -> None:
    model = SGDepth(SGDepthConfig(num_layers=18, num_layers_pose=18, split_pos=2, resolutions_depth=2))
    assert sorted(model.common.decoder.blocks) == ["step_0", "step_1", "step_2"]
    assert sorted(model.depth.decoder.blocks) == [f"step_{k}" for k in range(3, 10)]
    assert len(model.depth.multires.convs) == 2
    with torch.no_grad():
        disps = model.eval().predict_disparities(_images(1))
    assert [tuple(d.shape) for d in disps] == [(1, 1, H, W), (1, 1, H // 2, W // 2)]


def test_encoder_applies_attention_after_the_chain() -> None:
    encoder = ResnetEncoder(18).eval()
    x = _images(1)
    with torch.no_grad():
        feats = encoder(x)
        net = encoder.encoder
        l0 = net.relu(net.bn1(net.conv1(x)))
        l1 = net.layer1(net.maxpool(l0))
        l2 = net.layer2(l1)
    assert torch.equal(feats[0], l0)
    torch.testing.assert_close(feats[1], channel_self_attention(l1))
    torch.testing.assert_close(feats[2], channel_self_attention(l2))
    assert [f.shape[1] for f in feats] == [64, 64, 128, 256, 512]


def test_pose_encoder_takes_two_images_and_keeps_dead_params() -> None:
    model = SGDepth(SMALL)
    assert model.pose.encoder.encoder.conv1.weight.shape == (64, 6, 7, 7)
    assert model.common.encoder.dilated_conv.conv.dilation == (2, 2)
    lean = SGDepth(SGDepthConfig(num_layers=18, num_layers_pose=18, keep_unused_params=False))
    dead = [k for k in lean.state_dict() if "dilated_conv" in k or "convx" in k]
    assert not dead
    assert len(model.state_dict()) - len(lean.state_dict()) == 8


def test_depth_heads_start_near_one() -> None:
    model = SGDepth(SMALL)
    assert all(float(conv.bias.detach()) == 5.0 for conv in model.depth.multires.convs)


def test_block_self_attention_blocks() -> None:
    x = torch.rand(2, 8, 4, 12)
    left, right = x[..., :6], x[..., 6:]
    expected = torch.cat((channel_self_attention(left), channel_self_attention(right)), dim=-1)
    torch.testing.assert_close(block_self_attention(x, 2), expected)
    assert not torch.allclose(block_self_attention(x, 2), block_self_attention(x, 1))
    with pytest.raises(ValueError, match="num_blocks"):
        block_self_attention(x, 0)
    with pytest.raises(ValueError, match="x:"):
        block_self_attention(x[0], 1)


def test_block_self_attention_formula() -> None:
    x = torch.rand(1, 3, 2, 2, dtype=torch.float64)
    flat = x.reshape(3, 4)
    energy = flat @ flat.T
    attention = torch.softmax(energy.max(dim=1, keepdim=True).values - energy, dim=1)
    torch.testing.assert_close(block_self_attention(x), (attention @ flat + flat).reshape(1, 3, 2, 2))


def test_gla_encoder_feeds_glam_output_to_next_stage() -> None:
    encoder = GLAResNetEncoder(GLAEncoderConfig(backbone="resnet18", glam_after=("layer3",))).eval()
    x = _images(1)
    with torch.no_grad():
        feats = encoder(x)
        expected_l4 = encoder.layer4(encoder.glam3(encoder.layer3(feats[2])))
    assert [f.shape[1] for f in feats] == [64, 64, 128, 256, 512]
    torch.testing.assert_close(feats[4], expected_l4)
    assert not hasattr(encoder, "glam4")


# ------------------------------------------------------------------------------------------------- pose maths
def test_axis_angle_rodrigues() -> None:
    axis_angle = torch.tensor([0.0, 0.0, math.pi / 2])
    rotation = rotation_from_axisangle(axis_angle)
    expected = torch.tensor([[0.0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    torch.testing.assert_close(rotation, expected, atol=1e-6, rtol=0)
    random = rotation_from_axisangle(torch.randn(5, 3, dtype=torch.float64))[..., :3, :3]
    identity = torch.eye(3, dtype=torch.float64).expand(5, 3, 3)
    torch.testing.assert_close(random @ random.transpose(-1, -2), identity, atol=1e-6, rtol=0)


def test_inverted_transform_is_the_inverse() -> None:
    axis_angle, translation = torch.randn(4, 1, 1, 3) * 0.3, torch.randn(4, 1, 1, 3)
    forward = transformation_from_parameters(axis_angle, translation, invert=False)
    inverse = transformation_from_parameters(axis_angle, translation, invert=True)
    assert forward.shape == (4, 1, 1, 4, 4)
    torch.testing.assert_close(forward @ inverse, torch.eye(4).expand_as(forward), atol=1e-5, rtol=0)
    torch.testing.assert_close(forward[..., :3, 3], translation)


# -------------------------------------------------------------------------------------------- input checking
def test_bad_inputs_raise_one_line_errors(small_model: SGDepth) -> None:
    with pytest.raises(ValueError, match=r"images: expected a B×3×H×W"):
        small_model.predict_disparity(torch.zeros(1, 4, H, W))
    with pytest.raises(ValueError, match="multiples of 32"):
        small_model.predict_segmentation(torch.zeros(1, 3, 50, W))
    nan = _images(1)
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"images: contains NaN"):
        small_model.predict_disparity(nan)
    with pytest.raises(ValueError, match=r"missing key \('color_aug', 0, 0\)"):
        small_model(({"purposes": [["depth"]]},))
    with pytest.raises(ValueError, match=r"\('color_aug', -1, 0\)"):
        small_model(({("color_aug", 0, 0): _images(1), ("color_aug", -1, 0): torch.zeros(1, 3, 32), "purposes": []},))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_layers": 20}, "num_layers"),
        ({"split_pos": 5}, "split_pos"),
        ({"resolutions_depth": 0}, "resolutions_depth"),
        ({"sdcon_label_map": "soft"}, "sdcon_label_map"),
        ({"min_depth": 0.0}, "min_depth"),
    ],
)
def test_config_validation(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SGDepthConfig(**kwargs)


def test_config_round_trip_and_unknown_keys() -> None:
    config = SGDepthConfig(num_layers=34, split_pos=2)
    assert SGDepthConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="encoder"):
        SGDepthConfig.from_dict({"encoder": "x"})
    assert config.shared_decoder_steps == 3 and SGDepthConfig(split_pos=0).shared_decoder_steps == 0
