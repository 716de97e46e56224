"""Model behaviour beyond the fixtures: batched matching with padding masks, pipeline, input validation."""

from __future__ import annotations

import pytest
import torch

from semaglue.config import MatchingConfig, SegNextConfig, SemaGlueConfig, SuperPointConfig
from semaglue.model import Matching, SegNext, SemaGlue, SuperPoint, pad_keypoints, snake_flatten
from semaglue.model.semantic import resample_sequence


def _matcher(n_layers: int = 2) -> SemaGlue:
    torch.manual_seed(0)
    model = SemaGlue(SemaGlueConfig(n_layers=n_layers)).eval()
    with torch.no_grad():  # make matches exist, as the fixtures do
        model.log_assignment[-1].final_proj.weight.mul_(3)
        model.log_assignment[-1].matchability.bias.fill_(2.0)
    return model


def _pair_inputs(m: int, n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    desc0 = torch.nn.functional.normalize(torch.randn(1, 256, m, generator=g), dim=1)
    desc1 = desc0[:, :, torch.randint(0, m, (n,), generator=g)] + 0.3 * torch.randn(1, 256, n, generator=g)
    return {
        "keypoints0": torch.rand(1, m, 2, generator=g) * 120,
        "keypoints1": torch.rand(1, n, 2, generator=g) * 120,
        "descriptors0": desc0,
        "descriptors1": torch.nn.functional.normalize(desc1, dim=1),
        "feature_map0": torch.randn(1, 480, 12, 16, generator=g),
        "feature_map1": torch.randn(1, 480, 12, 16, generator=g),
        "image_size0": torch.tensor([96, 128]),
        "image_size1": torch.tensor([96, 128]),
    }


def _pad(t: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    shape = list(t.shape)
    shape[dim] = size - t.shape[dim]
    return torch.cat([t, t.new_zeros(shape) + 7.0], dim)  # padding filled with junk on purpose


def test_batched_padded_matching_equals_single_pairs() -> None:
    model = _matcher()
    pairs = [_pair_inputs(40, 50, 1), _pair_inputs(64, 33, 2)]
    with torch.no_grad():
        single = [model(p) for p in pairs]
        m, n = 64, 50
        batch = {
            "keypoints0": torch.cat([_pad(p["keypoints0"], m, 1) for p in pairs]),
            "keypoints1": torch.cat([_pad(p["keypoints1"], n, 1) for p in pairs]),
            "descriptors0": torch.cat([_pad(p["descriptors0"], m, 2) for p in pairs]),
            "descriptors1": torch.cat([_pad(p["descriptors1"], n, 2) for p in pairs]),
            "feature_map0": torch.cat([p["feature_map0"] for p in pairs]),
            "feature_map1": torch.cat([p["feature_map1"] for p in pairs]),
            "image_size0": torch.tensor([[96, 128], [96, 128]]),
            "image_size1": torch.tensor([[96, 128], [96, 128]]),
            "mask0": torch.tensor([[True] * 40 + [False] * 24, [True] * 64]),
            "mask1": torch.tensor([[True] * 50, [True] * 33 + [False] * 17]),
        }
        batched = model(batch)
    for b, (ref, p) in enumerate(zip(single, pairs, strict=True)):
        k0, k1 = p["keypoints0"].shape[1], p["keypoints1"].shape[1]
        assert (ref["matches0"] > -1).sum() > 3
        assert torch.equal(batched["matches0"][b, :k0], ref["matches0"][0])
        assert torch.equal(batched["matches1"][b, :k1], ref["matches1"][0])
        assert (batched["matches0"][b, k0:] == -1).all() and (batched["matches1"][b, k1:] == -1).all()
        torch.testing.assert_close(batched["desc0"][b, :k0], ref["desc0"][0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(batched["scores"][b, :k0, :k1], ref["scores"][0, :-1, :-1], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(batched["matching_scores0"][b, :k0], ref["matching_scores0"][0], atol=1e-5, rtol=0)


def test_all_layers_returns_one_assignment_per_layer() -> None:
    with torch.no_grad():
        pred = _matcher(3)(_pair_inputs(10, 12, 3), all_layers=True)
    assert pred["layer_scores"].shape == (3, 1, 11, 13)
    torch.testing.assert_close(pred["layer_scores"][-1], pred["scores"])
    # the token-confidence heads after layers 0 and 1 (regression: they were never returned)
    assert pred["token_confidence0"].shape == (2, 1, 10) and pred["token_confidence1"].shape == (2, 1, 12)
    assert ((pred["token_confidence0"] > 0) & (pred["token_confidence0"] < 1)).all()
    model = _matcher(3)
    model.token_confidence[1].token[0].bias.data.fill_(50.0)
    with torch.no_grad():
        saturated = model(_pair_inputs(10, 12, 3), all_layers=True)["token_confidence0"]
    assert torch.allclose(saturated[1], torch.ones(1, 10)) and not torch.allclose(saturated[0], torch.ones(1, 10))


def test_image_size_quirk_option() -> None:
    model = _matcher(1)
    kpts = torch.tensor([[[10.0, 20.0]]])
    size = torch.tensor([[96.0, 128.0]])  # (H, W)
    authors = model.posenc.Wr(torch.tensor([[[(10 - 48) / 64, (20 - 64) / 64]]]))
    torch.testing.assert_close(model.encode_positions(kpts, size)[0, :, :, :, ::2], torch.cos(authors)[:, None])
    model.config.swap_image_size = False
    lightglue = model.posenc.Wr(torch.tensor([[[(10 - 64) / 64, (20 - 48) / 64]]]))
    torch.testing.assert_close(model.encode_positions(kpts, size)[0, :, :, :, ::2], torch.cos(lightglue)[:, None])


def test_snake_flatten_order_and_masked_resampling() -> None:
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert snake_flatten(x).tolist() == [[[0.0, 1.0, 2.0, 5.0, 4.0, 3.0]]]
    seq = torch.arange(6.0).reshape(1, 1, 6)
    mask = torch.tensor([[True, False, True, True]])
    out = resample_sequence(seq, mask, 4)
    expected = torch.nn.functional.interpolate(seq, size=3, mode="linear", align_corners=False)[0, 0]
    assert out[0, 0, 1] == 0 and torch.equal(out[0, 0, mask[0]], expected)


def test_pipeline_batch_with_different_keypoint_counts() -> None:
    torch.manual_seed(0)
    config = MatchingConfig(
        superpoint=SuperPointConfig(nms_radius=3, max_keypoints=-1),
        segnext=SegNextConfig(depths=(1, 1, 1, 1)),
        matcher=SemaGlueConfig(n_layers=1),
    )
    model = Matching(config).eval()
    for module in model.superpoint.modules():  # He-normal weights: a heat-map with distinct peaks
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
    g = torch.Generator().manual_seed(0)
    images = torch.nn.functional.interpolate(torch.rand(2, 1, 12, 16, generator=g), size=(96, 128), mode="bicubic")
    images = images.clamp(0, 1)
    with torch.no_grad():
        pred = model({"image0": images, "image1": images.flip(-1)})
        single = model({"image0": images[1:], "image1": images[1:].flip(-1)})
    counts = pred["mask0"].sum(1)
    assert counts[0] != counts[1]
    k = int(counts[1])
    assert pred["feature_map0"].shape == (2, 480, 12, 16)
    assert torch.equal(pred["keypoints0"][1, :k], single["keypoints0"][0])
    assert torch.equal(pred["matches0"][1, :k], single["matches0"][0])
    assert (pred["matches0"][1, k:] == -1).all()


def test_pad_keypoints() -> None:
    kpts, scores, desc, mask = pad_keypoints(
        [torch.ones(2, 2), torch.ones(3, 2)], [torch.ones(2), torch.ones(3)], [torch.ones(4, 2), torch.ones(4, 3)]
    )
    assert kpts.shape == (2, 3, 2) and desc.shape == (2, 4, 3)
    assert mask.tolist() == [[True, True, False], [True, True, True]] and scores[0, 2] == 0


def test_superpoint_rgb_matches_gray_and_topk_order() -> None:
    torch.manual_seed(0)
    model = SuperPoint(SuperPointConfig(max_keypoints=10)).eval()
    rgb = torch.rand(1, 3, 64, 80)
    gray = (rgb * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    with torch.no_grad():
        a, b = model({"image": rgb}), model({"image": gray})
    torch.testing.assert_close(a["keypoints"][0], b["keypoints"][0])
    assert len(a["scores"][0]) == 10 and (a["scores"][0][:-1] >= a["scores"][0][1:]).all()
    assert a["descriptors"][0].shape == (256, 10)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("descriptors0", torch.zeros(1, 128, 10), "descriptors0"),
        ("descriptors1", torch.zeros(1, 256, 9), "descriptors1 has 9 keypoints"),
        ("keypoints0", torch.full((1, 10, 2), float("nan")), "NaN"),
        ("feature_map1", torch.zeros(1, 64, 12, 16), "feature_map1"),
        ("mask0", torch.ones(1, 10), "mask0"),
    ],
)
def test_matcher_input_validation(key: str, value: torch.Tensor, message: str) -> None:
    data = _pair_inputs(10, 12, 0)
    data[key] = value
    with pytest.raises(ValueError, match=message):
        _matcher(1)(data)


def test_image_shape_validation() -> None:
    with pytest.raises(ValueError, match="image"):
        SuperPoint()({"image": torch.zeros(1, 2, 32, 32)})
    with pytest.raises(ValueError, match="image"):
        SegNext(SegNextConfig(depths=(1, 1, 1, 1)))(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="image1"):
        Matching(MatchingConfig(segnext=SegNextConfig(depths=(1, 1, 1, 1)), matcher=SemaGlueConfig(n_layers=1)))(
            {"image0": torch.zeros(1, 1, 32, 32), "image1": torch.zeros(1, 3, 32, 32)}
        )


@pytest.mark.parametrize(
    ("fill", "message"),
    [("nan", "image0 has 4096 NaN/inf"), ("partial_nan", "image0 has 1 NaN/inf"), ("u8", "looks like 0..255")],
)
def test_bad_image_values_are_refused(fill: str, message: str) -> None:
    """Regression: all-NaN images gave zero keypoints silently, partly-NaN ones blamed the keypoints and 0..255 floats
    gave garbage; SuperPoint and the pipeline now name the image."""
    image = torch.rand(1, 1, 64, 64)
    if fill == "nan":
        image[:] = float("nan")
    elif fill == "partial_nan":
        image[0, 0, 5, 5] = float("nan")
    else:
        image = image * 255
    pipeline = Matching(MatchingConfig(segnext=SegNextConfig(depths=(1, 1, 1, 1)), matcher=SemaGlueConfig(n_layers=1)))
    with pytest.raises(ValueError, match=message):
        pipeline({"image0": image, "image1": torch.rand(1, 1, 64, 64)})
    with pytest.raises(ValueError, match=message.replace("image0", "image")):
        SuperPoint()({"image": image})


def test_integer_and_wrong_channel_images_are_refused() -> None:
    with pytest.raises(ValueError, match="float tensor"):
        SuperPoint()({"image": torch.zeros(1, 1, 32, 32, dtype=torch.uint8)})
    with pytest.raises(ValueError, match="B×1×H×W or B×3×H×W"):
        SuperPoint()({"image": torch.zeros(1, 4, 32, 32)})
