"""The exact fast path (issue 18) against the reference path beyond the fixture cases: padded batches with masks,
both branches of the semantic-query convolution, the batched keypoint selection, the two-image batched pipeline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from semaglue.config import MatchingConfig, SemaGlueConfig, SuperPointConfig
from semaglue.model import Matching, SemaGlue, SuperPoint, filter_matches, set_impl
from semaglue.model.superpoint import max_filter, max_pool_2x2


def _inputs(m: int, n: int, h: int, w: int, masked: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(m + n)
    data = {
        "keypoints0": torch.rand(2, m, 2, generator=g) * 300,
        "keypoints1": torch.rand(2, n, 2, generator=g) * 300,
        "descriptors0": F.normalize(torch.randn(2, 256, m, generator=g), dim=1),
        "descriptors1": F.normalize(torch.randn(2, 256, n, generator=g), dim=1),
        "feature_map0": torch.randn(2, 480, h, w, generator=g),
        "feature_map1": torch.randn(2, 480, w, h, generator=g),
        "image_size0": torch.tensor([240, 320]),
        "image_size1": torch.tensor([320, 240]),
    }
    if masked:
        data["mask0"] = torch.arange(m)[None] < torch.tensor([[m], [m - 7]])
        data["mask1"] = torch.arange(n)[None] < torch.tensor([[n - 3], [n]])
    return data


@pytest.mark.parametrize(("m", "n", "h", "w", "masked"), [(40, 30, 12, 16, True), (150, 120, 8, 10, False)])
def test_matcher_fast_equals_reference(m, n, h, w, masked) -> None:
    """Sparse (2·M < h·w) and dense semantic-query branches, with and without padding masks: every output within
    the parity tolerance (1e-4 of the scale), the same matches."""
    torch.manual_seed(0)
    model = SemaGlue(SemaGlueConfig(n_layers=2)).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    data = _inputs(m, n, h, w, masked)
    with torch.no_grad():
        ref = set_impl(model, "reference")(data)
        fast = set_impl(model, "fast")(data)
    for key in ("global_feature0", "global_feature1", "desc0", "desc1", "matching_scores0", "matching_scores1"):
        torch.testing.assert_close(fast[key], ref[key], rtol=0, atol=1e-4 * max(1.0, float(ref[key].abs().max())))
    finite = torch.isfinite(ref["scores"])
    assert torch.equal(finite, torch.isfinite(fast["scores"]))
    assert float((fast["scores"][finite] - ref["scores"][finite]).abs().max()) < 1e-4 * float(
        ref["scores"][finite].abs().max()
    )
    assert torch.equal(fast["matches0"], ref["matches0"]) and torch.equal(fast["matches1"], ref["matches1"])


def test_fast_max_filters_are_exact() -> None:
    x = torch.rand(2, 3, 37, 50) ** 4
    assert torch.equal(max_filter(x, 3), F.max_pool2d(x, 7, 1, 3))
    assert torch.equal(max_filter(x, 1), F.max_pool2d(x, 3, 1, 1))
    assert torch.equal(max_pool_2x2(x), F.max_pool2d(x, 2, 2))  # odd height: last row dropped in both


@pytest.mark.parametrize("max_keypoints", [-1, 50, 5000])
def test_superpoint_batched_selection_is_identical(max_keypoints) -> None:
    """Top-k, all candidates (row-major) and more slots than candidates: the same keypoints in the same order."""
    torch.manual_seed(0)
    model = SuperPoint(SuperPointConfig(max_keypoints=max_keypoints)).eval()
    image = torch.rand(2, 1, 64, 88)
    with torch.no_grad():
        ref = set_impl(model, "reference")({"image": image})
        fast = set_impl(model, "fast")({"image": image})
    for i in range(2):
        assert len(ref["keypoints"][i]) > 10
        assert torch.equal(fast["keypoints"][i], ref["keypoints"][i])
        torch.testing.assert_close(fast["scores"][i], ref["scores"][i], rtol=0, atol=1e-6)
        torch.testing.assert_close(fast["descriptors"][i], ref["descriptors"][i], rtol=0, atol=1e-5)


def test_pipeline_batches_both_images() -> None:
    """Same-size pair: one SuperPoint and one SegNeXt call for both images, the reference results."""
    torch.manual_seed(0)
    config = MatchingConfig()
    config.superpoint.max_keypoints = 64
    config.matcher.n_layers = 2
    model = Matching(config).eval()
    data = {"image0": torch.rand(1, 1, 64, 80), "image1": torch.rand(1, 1, 64, 80)}
    calls = []
    model.superpoint.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0]["image"].shape[0]))
    with torch.no_grad():
        ref = set_impl(model, "reference")(data)
        fast = set_impl(model, "fast")(data)
    assert calls == [1, 1, 2]
    for key in ("keypoints0", "keypoints1", "matches0", "matches1"):
        assert torch.equal(fast[key], ref[key]), key
    for key in ("descriptors0", "feature_map1", "matching_scores0"):
        torch.testing.assert_close(fast[key], ref[key], rtol=0, atol=1e-4 * max(1.0, float(ref[key].abs().max())))


def test_unknown_impl_is_named() -> None:
    with pytest.raises(ValueError, match="impl must be one of"):
        set_impl(SuperPoint(), "turbo")


def _adaptive_model(depth: float, width: float, confident: bool = False) -> SemaGlue:
    torch.manual_seed(0)
    model = SemaGlue(SemaGlueConfig(n_layers=3, depth_confidence=depth, width_confidence=width)).eval()
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    if confident:  # every token-confidence head says "confident" (sigmoid(10))
        for head in model.token_confidence:
            head.token[0].bias.data.fill_(10.0)
    return model


def test_adaptive_mode_limits() -> None:
    """LightGlue-style adaptive depth/width (approximate, opt-in): never stopping and never pruning gives the full
    model's matches; stopping after the first layer gives that layer's assignment head; padded batches are
    matched pair by pair."""
    data = _inputs(40, 30, 12, 16, False)
    with torch.no_grad():
        full = _adaptive_model(-1, -1)(data, all_layers=True)
        none_pruned = _adaptive_model(1.01, 1.0)(data)  # depth never reached; width 1.0 keeps every point
        kept = _adaptive_model(1.01, 0.5, confident=True)(data)  # points with matchability < 0.5 are dropped
        early = _adaptive_model(0.5, -1, confident=True)(data)
    assert torch.equal(none_pruned["matches0"], full["matches0"]) and int(none_pruned["stop_layer"].max()) == 2
    assert int(none_pruned["num_pruned0"].sum()) == 0
    assert 0 < int(kept["num_pruned0"].sum()) < 2 * 40 and 0 < int(kept["num_pruned1"].sum()) < 2 * 30
    with torch.no_grad():
        emptied = _adaptive_model(1.01, 1e-9, confident=True)(data)  # every point pruned after the first layer
    assert int(emptied["num_pruned0"].min()) == 40 and bool((emptied["matches0"] == -1).all())
    assert int(early["stop_layer"].max()) == 0
    layer0 = filter_matches(full["layer_scores"][0], 0.1)[0]
    assert torch.equal(early["matches0"], layer0)
    masked = _inputs(40, 30, 12, 16, True)
    model = _adaptive_model(0.5, 0.99)
    with torch.no_grad():
        batched = model(masked)
        for k in range(2):
            m, n = int(masked["mask0"][k].sum()), int(masked["mask1"][k].sum())
            single = {key: v[k : k + 1] for key, v in masked.items() if key.startswith(("key", "desc", "feat"))}
            single["keypoints0"], single["descriptors0"] = single["keypoints0"][:, :m], single["descriptors0"][..., :m]
            single["keypoints1"], single["descriptors1"] = single["keypoints1"][:, :n], single["descriptors1"][..., :n]
            single.update(image_size0=masked["image_size0"], image_size1=masked["image_size1"])
            alone = model(single)
            assert torch.equal(batched["matches0"][k, :m], alone["matches0"][0])
            assert bool((batched["matches0"][k, m:] == -1).all())
