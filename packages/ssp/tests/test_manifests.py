"""State-dict keys, shapes, order and parameter counts of the paper models against the fixture manifests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from torch import nn

from semcommon.testing import compare_state_dict_shapes, load_manifest, manifest_params
from ssp.config import ImageModelConfig, RaftConfig, VideoModelConfig
from ssp.model import RAFT, HieraUperNet, SSPVideoModel


def _image(config: dict[str, Any]) -> nn.Module:
    return HieraUperNet(ImageModelConfig.from_dict(config["image_model_cfg"], n_classes=config["n_classes"]))


def _video(config: dict[str, Any]) -> nn.Module:
    image = ImageModelConfig.from_dict(config["image_model_cfg"], n_classes=config["n_classes"])
    return SSPVideoModel(VideoModelConfig.from_dict(config["video_model_cfg"]), image)


BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "hiera_small_upernet_uavid": _image,
    "hiera_base_plus_upernet_teacher_uavid": _image,
    "raft_things": lambda config: RAFT(RaftConfig(**config)),
    "ssp_uavid": _video,
}


@pytest.mark.parametrize("path", manifest_params("ssp"))
def test_manifest(path) -> None:
    manifest = load_manifest(path)
    builder = BUILDERS.get(manifest["model"])
    if builder is None:
        pytest.fail(f"no builder for manifest model {manifest['model']!r}; known: {sorted(BUILDERS)}")
    model = builder(manifest["config"])
    problems = compare_state_dict_shapes(manifest["state_dict"], model.state_dict(), check_order=True)
    assert not problems, "; ".join(problems[:10])
    assert sum(p.numel() for p in model.parameters()) == manifest["num_params"]
