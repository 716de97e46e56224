"""The paper models' ``state_dict`` keys, shapes, order and parameter counts equal the authors' (manifests)."""

from __future__ import annotations

import pytest
from torch import nn

from semaglue.config import SegNextConfig, SemaGlueConfig, SuperPointConfig
from semaglue.model import SegNext, SemaGlue, SuperPoint
from semcommon.testing import compare_state_dict_shapes, load_manifest, manifest_params


def build_superpoint(config: dict) -> nn.Module:
    keys = ("descriptor_dim", "nms_radius", "keypoint_threshold", "max_keypoints", "remove_borders")
    return SuperPoint(SuperPointConfig(**{k: config[k] for k in keys}))


def build_segnext(config: dict) -> nn.Module:
    return SegNext(
        SegNextConfig(
            in_channels=config["in_channels"],
            embed_dims=tuple(config["embed_dims"]),
            mlp_ratios=tuple(config["ffn_ratios"]),
            depths=tuple(config["depths"]),
        )
    )


def build_matcher(config: dict) -> nn.Module:
    keys = ("input_dim", "descriptor_dim", "n_layers", "num_heads", "segment_dim", "filter_threshold", "add_scale_ori")
    return SemaGlue(SemaGlueConfig(**{k: config[k] for k in keys}))


BUILDERS = {"superpoint": build_superpoint, "segnext_mscan_tiny": build_segnext, "semaglue_matcher": build_matcher}


@pytest.mark.parametrize("path", manifest_params("semaglue"))
def test_manifest(path) -> None:
    manifest = load_manifest(path)
    builder = BUILDERS.get(manifest["model"])
    if builder is None:
        pytest.fail(f"no builder for manifest model {manifest['model']!r}; known: {sorted(BUILDERS)}")
    model = builder(manifest["config"])
    problems = compare_state_dict_shapes(manifest["state_dict"], model.state_dict(), check_order=True)
    assert not problems, "\n".join(problems)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_params"]
