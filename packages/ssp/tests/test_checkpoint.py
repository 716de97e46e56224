"""The authors' checkpoint formats, written from random weights and loaded with ``load_pretrained``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssp import CheckpointError, HieraUperNet, ImageModelConfig, SSPVideoModel, VideoModelConfig, load_pretrained
from ssp.checkpoint import detect_kind
from ssp.model import RAFT


def _randomize(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    return model


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_image_training_checkpoint(tmp_path, reduced_image_config) -> None:
    source = _randomize(HieraUperNet(reduced_image_config))
    path = tmp_path / "base_uavid.pth.tar"
    extras = {"optimizer": {"state": {}, "param_groups": []}, "scheduler": {"last_epoch": 3}, "epoch": 200}
    torch.save({"model": source.state_dict(), **extras, "train_loss": [1.0, 0.5]}, path)
    loaded = load_pretrained(path, model=HieraUperNet(reduced_image_config))
    _assert_same(source, loaded)
    assert not loaded.training


def test_image_checkpoint_builds_model_from_keys(tmp_path) -> None:
    source = _randomize(HieraUperNet(ImageModelConfig(checkpoint_model="tiny", n_classes=12)))
    path = tmp_path / "tiny_rural.pth.tar"
    torch.save({"model": source.state_dict(), "epoch": 1}, path)
    loaded = load_pretrained(path)
    assert loaded.config.checkpoint_model == "tiny" and loaded.config.n_classes == 12
    _assert_same(source, loaded)


def test_video_checkpoint_with_module_prefix(tmp_path, reduced_image_config) -> None:
    config = VideoModelConfig(k_registrator_model="identity")
    source = _randomize(SSPVideoModel(config, reduced_image_config))
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "ssp_uavid.pth.tar"
    torch.save({"model": state, "optimizer": {}, "epoch": 200, "val_miou": [0.5]}, path)
    loaded = load_pretrained(path, model=SSPVideoModel(config, reduced_image_config))
    _assert_same(source, loaded)


def test_sam2_checkpoint_initialises_backbone_only(tmp_path, reduced_image_config) -> None:
    trunk = _randomize(HieraUperNet(reduced_image_config)).backbone
    state = {f"image_encoder.trunk.{k}": v for k, v in trunk.state_dict().items()}
    state["image_encoder.neck.convs.0.conv.weight"] = torch.randn(4, 4, 1, 1)
    state["sam_mask_decoder.iou_token.weight"] = torch.randn(1, 8)
    path = tmp_path / "sam2_hiera_small.pt"
    torch.save({"model": state}, path)
    model = HieraUperNet(reduced_image_config)
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    load_pretrained(path, model=model)
    _assert_same(trunk, model.backbone)
    for key, value in model.head.state_dict().items():
        assert torch.equal(value, head_before[key]), key


def test_raft_things_checkpoint(tmp_path) -> None:
    source = _randomize(RAFT())
    path = tmp_path / "raft-things.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    loaded = load_pretrained(path)
    assert isinstance(loaded, RAFT)
    _assert_same(source, loaded)


def test_checkpoint_of_another_model_is_refused(tmp_path, reduced_image_config) -> None:
    path = tmp_path / "raft-things.pth"
    torch.save({f"module.{k}": v for k, v in RAFT().state_dict().items()}, path)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(path, model=HieraUperNet(reduced_image_config))
    message = str(info.value)
    assert "\n" not in message and "missing" in message and "backbone.pos_embed" in message and str(path) in message


def test_mis_shaped_keys_are_named(tmp_path, reduced_image_config) -> None:
    source = HieraUperNet(ImageModelConfig(hiera=reduced_image_config.hiera, upernet_channels=64, n_classes=12))
    path = tmp_path / "rural.pth.tar"
    torch.save({"model": source.state_dict()}, path)
    with pytest.raises(CheckpointError, match="head.classifier.weight"):
        load_pretrained(path, model=HieraUperNet(reduced_image_config))


def test_missing_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_pretrained(tmp_path / "absent.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pth"):
        load_pretrained(corrupt)


def test_unknown_keys_are_reported() -> None:
    with pytest.raises(CheckpointError, match="unrecognised"):
        detect_kind({"encoder.weight": torch.zeros(1)})
