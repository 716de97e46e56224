"""Parity of the networks with the authors' code: fixtures ``sgdepth_r18``, ``bsa`` and ``gla`` (README tolerances)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from semcommon.testing import Case, assert_close, case_params, load_case, load_weights
from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.model.attention import block_self_attention
from sgdepth_pkd.model.gla import GlobalLocalAttentionModule
from sgdepth_pkd.model.sgdepth import SGDepth

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


RUNNERS: dict[str, Callable[[Case], None]] = {
    "sgdepth_r18": run_sgdepth_r18,
    "bsa": run_bsa,
    "gla": run_gla,
}


@pytest.mark.parametrize("path", case_params(PACKAGE, target="sgdepth_r18"))
def test_sgdepth_r18(path) -> None:
    RUNNERS["sgdepth_r18"](load_case(path))


@pytest.mark.parametrize("path", case_params(PACKAGE, target="bsa"))
def test_bsa(path) -> None:
    RUNNERS["bsa"](load_case(path))


@pytest.mark.parametrize("path", case_params(PACKAGE, target="gla"))
def test_gla(path) -> None:
    RUNNERS["gla"](load_case(path))
