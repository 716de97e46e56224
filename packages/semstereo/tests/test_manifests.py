"""The paper, WHU and half configurations have exactly the original state_dict keys, shapes, order and size."""

from __future__ import annotations

import pytest

from semcommon.testing import compare_state_dict_shapes, load_manifest, manifest_params
from semstereo import SemStereo, SemStereoConfig, half_config, us3d_config, whu_config

CONFIGS = {"SemStereo": us3d_config, "SemStereo_WHU": whu_config, "SemStereo_half": half_config}


def config_for(manifest: dict) -> SemStereoConfig:
    """Our config for a manifest: model name picks the builder; maxdisp and stage flag come from its config."""
    builder = CONFIGS.get(manifest["model"])
    if builder is None:
        pytest.fail(f"no config for manifest model {manifest['model']!r}")
    cfg = manifest["config"]
    return builder(maxdisp=cfg["maxdisp"], att_weights_only=cfg["att_weights_only"])


@pytest.mark.parametrize("path", manifest_params("semstereo"))
def test_manifest(path) -> None:
    manifest = load_manifest(path)
    model = SemStereo(config_for(manifest))
    cfg = manifest["config"]
    if "chans2" in cfg:
        assert model.config.chans == cfg["chans"] and model.config.chans2 == cfg["chans2"]
        assert model.config.gwc_groups == cfg["gwc_groups"]
        assert model.config.hourglass_channels == cfg["hourglass_channels"]
    problems = compare_state_dict_shapes(manifest["state_dict"], model.state_dict(), check_order=True)
    assert not problems, "; ".join(problems[:10])
    assert sum(p.numel() for p in model.parameters()) == manifest["num_params"]
