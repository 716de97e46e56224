"""State-dict keys, shapes, order and parameter counts equal the authors' (every manifest of the fixtures)."""

from __future__ import annotations

import pytest
from torch import nn

from semcommon.runtime import count_parameters
from semcommon.testing import compare_state_dict_shapes, load_manifest, manifest_params
from sgdepth_pkd.config import GLAEncoderConfig, SGDepthConfig
from sgdepth_pkd.model.gla import GLAResNetEncoder
from sgdepth_pkd.model.sgdepth import SGDepth

EXPECTED_SIZES = {"sgdepth_r50": 502, "sgdepth_r18": 304, "gla_encoder_r50": 382}


def _build(manifest: dict) -> nn.Module:
    name = manifest["model"]
    if name.startswith("sgdepth_"):
        return SGDepth(SGDepthConfig.from_dict(manifest["config"], ignore_unknown=True))
    if name.startswith("gla_encoder"):
        return GLAResNetEncoder(GLAEncoderConfig.from_dict(manifest["config"]))
    raise AssertionError(f"unknown manifest model {name!r}")


@pytest.mark.parametrize("path", manifest_params("sgdepth_pkd"))
def test_manifest(path) -> None:
    manifest = load_manifest(path)
    model = _build(manifest)
    state = model.state_dict()
    problems = compare_state_dict_shapes(manifest["state_dict"], state, check_order=True)
    assert not problems, "; ".join(problems[:10])
    assert len(state) == EXPECTED_SIZES[manifest["model"]]
    assert count_parameters(model) == manifest["num_params"]


def test_default_config_builds_the_paper_model() -> None:
    """SGDepth() with no arguments is the paper configuration of manifest_sgdepth_r50.json."""
    path = next((p.values[0] for p in manifest_params("sgdepth_pkd") if "sgdepth_r50" in str(p.values[0])), None)
    if path is None:
        pytest.skip("manifest_sgdepth_r50.json not available")
    manifest = load_manifest(path)
    model = SGDepth()
    assert not compare_state_dict_shapes(manifest["state_dict"], model.state_dict(), check_order=True)
    assert count_parameters(model) == manifest["num_params"] == 89_821_390
