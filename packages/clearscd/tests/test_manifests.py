"""State-dict keys, shapes, order and parameter counts of the paper model equal the authors' (manifest)."""

from __future__ import annotations

import pytest

from clearscd import ClearSCDConfig, build_clearscd
from semcommon.testing import compare_state_dict_shapes, load_manifest, manifest_params


@pytest.mark.parametrize("path", manifest_params("clearscd"))
def test_manifest(path) -> None:
    manifest = load_manifest(path)
    model = build_clearscd(ClearSCDConfig.from_dict(manifest["config"]))
    state = model.state_dict()
    expected = manifest.get("state_dict") or manifest["keys"]
    problems = compare_state_dict_shapes(expected, state, check_order=True)
    assert not problems, "; ".join(problems[:10])
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == manifest["num_params"]
    assert sum(v.numel() for v in state.values()) == manifest["num_state_dict_elements"]
