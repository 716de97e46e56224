"""load_pretrained in every SGDepth checkpoint format, config inference, refusals; local ImageNet backbones."""

from __future__ import annotations

import pytest
import torch
import torchvision

from semcommon.checkpoint import CheckpointError
from sgdepth_pkd.checkpoint import (
    infer_config,
    load_imagenet_backbones,
    load_pretrained,
    load_pretrained_with_report,
    repeat_conv1,
)
from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.model.sgdepth import SGDepth

CONFIG = SGDepthConfig(num_layers=18, num_layers_pose=18)


@pytest.fixture(scope="module")
def random_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    state = SGDepth(CONFIG).state_dict()
    return {
        k: (torch.randn_like(v) if v.is_floating_point() else torch.randint_like(v, 0, 9)) for k, v in state.items()
    }


def _assert_loaded(model: SGDepth, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


FORMATS = {
    "bare_state_dict_epoch_model_pth": lambda s: dict(s),
    "dataparallel_module_prefix": lambda s: {f"module.{k}": v for k, v in s.items()},
    "state_dict_entry_with_extras": lambda s: {"state_dict": s, "epoch": 19, "lr": 1e-4, "note": "last"},
    "model_entry_with_module_prefix": lambda s: {"model": {f"module.{k}": v for k, v in s.items()}, "step": 7},
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_load_formats_inferring_the_config(tmp_path, random_state, fmt) -> None:
    path = tmp_path / "epoch_19" / "model.pth"
    path.parent.mkdir()
    torch.save(FORMATS[fmt](random_state), path)
    model = load_pretrained(path)
    assert not model.training
    assert (model.config.num_layers, model.config.num_layers_pose, model.config.resolutions_depth) == (18, 18, 4)
    _assert_loaded(model, random_state)


def test_load_safetensors(tmp_path, random_state) -> None:
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in random_state.items()}, str(path))
    _assert_loaded(load_pretrained(path), random_state)


@pytest.mark.parametrize(
    "config",
    [
        SGDepthConfig(),
        SGDepthConfig(num_layers=34, num_layers_pose=50, split_pos=2, resolutions_depth=2, num_classes=19),
        SGDepthConfig(num_layers=18, num_layers_pose=34, split_pos=0, resolutions_depth=1, keep_unused_params=False),
    ],
    ids=["paper_r50", "r34_pose50_split2", "r18_split0_without_dead_params"],
)
def test_infer_config_from_keys(config: SGDepthConfig) -> None:
    assert infer_config(SGDepth(config).state_dict()) == config


def test_original_sgdepth_checkpoint_without_dead_params(tmp_path, random_state) -> None:
    """The dead dilated_conv / convx parameters are optional: original SGDepth checkpoints lack them."""
    state = {k: v for k, v in random_state.items() if "dilated_conv" not in k and "convx" not in k}
    torch.save(state, tmp_path / "model.pth")
    model = load_pretrained(tmp_path / "model.pth")
    assert not model.config.keep_unused_params
    _assert_loaded(model, state)


def test_explicit_config_that_does_not_fit_is_refused(tmp_path, random_state) -> None:
    torch.save(random_state, tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match=r"model\.pth does not fit SGDepth: .*shape-mismatched"):
        load_pretrained(tmp_path / "model.pth", config=SGDepthConfig(num_layers=50))


def test_missing_and_unexpected_keys_are_named(tmp_path, random_state) -> None:
    state = dict(random_state)
    del state["depth.decoder.blocks.step_4.conv.bias"]
    state["depth.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "ck.pth")
    with pytest.raises(CheckpointError, match=r"missing: depth\.decoder\.blocks\.step_4\.conv\.bias.*depth\.extra"):
        load_pretrained(tmp_path / "ck.pth", config=CONFIG)
    model, report = load_pretrained_with_report(tmp_path / "ck.pth", config=CONFIG, strict=False)
    assert report.missing == ["depth.decoder.blocks.step_4.conv.bias"]
    assert report.unexpected == ["depth.extra.weight"]
    assert torch.equal(model.state_dict()["seg.multires.convs.0.weight"], random_state["seg.multires.convs.0.weight"])


def test_mis_shaped_key_is_named(tmp_path, random_state) -> None:
    state = dict(random_state)
    state["pose.decoder.conv_3.weight"] = torch.zeros(7, 256, 1, 1)
    torch.save(state, tmp_path / "ck.pth")
    with pytest.raises(CheckpointError, match=r"pose\.decoder\.conv_3\.weight \[7, 256, 1, 1\] vs model \[6, 256"):
        load_pretrained(tmp_path / "ck.pth", config=CONFIG)


def test_other_model_is_refused(tmp_path) -> None:
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(CheckpointError, match=r"resnet18\.pth is not an SGDepth checkpoint"):
        load_pretrained(tmp_path / "resnet18.pth")


def test_unreadable_files_are_refused(tmp_path, random_state) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_pretrained(tmp_path / "absent.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage\.pth"):
        load_pretrained(tmp_path / "garbage.pth")
    torch.save({"state_dict": random_state, "opt": SGDepthConfig()}, tmp_path / "pickled.pth")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_pretrained(tmp_path / "pickled.pth")
    state = dict(random_state)
    state["depth.multires.convs.0.bias"] = torch.tensor([float("nan")])
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match=r"depth\.multires\.convs\.0\.bias contains NaN"):
        load_pretrained(tmp_path / "nan.pth")


def test_imagenet_backbones_from_local_files(tmp_path) -> None:
    torch.manual_seed(5)
    resnet = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for buffer in (resnet.bn1.running_mean, resnet.layer4[1].bn2.running_var):
            buffer.uniform_(0.5, 1.5)
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    model = SGDepth(CONFIG)
    reports = load_imagenet_backbones(model, tmp_path / "resnet18.pth", tmp_path / "resnet18.pth")
    assert reports["encoder"].ok and reports["pose"].ok
    encoder, pose = model.common.encoder.encoder, model.pose.encoder.encoder
    assert torch.equal(encoder.conv1.weight, resnet.conv1.weight)
    assert torch.equal(encoder.layer4[1].bn2.running_var, resnet.layer4[1].bn2.running_var)
    torch.testing.assert_close(pose.conv1.weight, torch.cat([resnet.conv1.weight] * 2, dim=1) / 2)
    assert torch.equal(pose.bn1.running_mean, resnet.bn1.running_mean)


def test_imagenet_backbone_of_wrong_depth_is_refused(tmp_path) -> None:
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "resnet34.pth")
    with pytest.raises(CheckpointError, match=r"resnet34\.pth does not fit ResNet: .*unexpected: layer1\.2"):
        load_imagenet_backbones(SGDepth(CONFIG), pose_path=tmp_path / "resnet34.pth")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth is not a torchvision ResNet"):
        load_imagenet_backbones(SGDepth(CONFIG), encoder_path=tmp_path / "other.pth")


def test_repeat_conv1() -> None:
    weight = torch.randn(64, 3, 7, 7)
    repeated = repeat_conv1(weight, 3)
    assert repeated.shape == (64, 9, 7, 7)
    torch.testing.assert_close(repeated[:, 6:9], weight / 3)
    with pytest.raises(ValueError, match="weight"):
        repeat_conv1(torch.zeros(64, 6, 7, 7), 2)
