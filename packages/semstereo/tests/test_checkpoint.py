"""load_pretrained reads the authors' checkpoint layouts and refuses foreign or broken files clearly."""

from __future__ import annotations

from functools import cache

import pytest
import timm
import torch

from semcommon.checkpoint import CheckpointError
from semstereo import SemStereo, half_config, load_pretrained, save_pretrained, us3d_config
from semstereo.model.backbone import Feature


@cache
def _reference_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    model = SemStereo(half_config())
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn_like(tensor) * 0.01)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_loaded(model: SemStereo) -> None:
    state = model.state_dict()
    reference = _reference_state()
    assert list(state) == list(reference)
    for key, value in reference.items():
        assert torch.equal(state[key], value), key


def _authors_checkpoint() -> dict:
    state = _reference_state()
    gamma = torch.nn.Parameter(state["gamma"].clone())
    optimizer = torch.optim.Adam([gamma], lr=1e-3)
    gamma.grad = torch.ones_like(gamma)
    optimizer.step()
    return {"epoch": 47, "model": {f"module.{k}": v for k, v in state.items()}, "optimizer": optimizer.state_dict()}


FORMATS = {
    "authors_dataparallel": _authors_checkpoint,
    "bare_state_dict": lambda: dict(_reference_state()),
    "bare_module_prefix": lambda: {f"module.{k}": v for k, v in _reference_state().items()},
    "state_dict_wrapper": lambda: {"state_dict": dict(_reference_state()), "epoch": 3, "note": "extra entry"},
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_load_formats(fmt: str, tmp_path) -> None:
    path = tmp_path / "checkpoint_000047.ckpt"
    torch.save(FORMATS[fmt](), path)
    model = load_pretrained(path)
    assert model.config.backbone == "mobilevitv2_050"  # inferred from the stem width
    assert not model.training and model.load_report is not None and model.load_report.ok
    _assert_loaded(model)


def test_whu_variant_and_save_roundtrip(tmp_path) -> None:
    path = tmp_path / "ours.ckpt"
    torch.save({"model": dict(_reference_state())}, path)
    model = load_pretrained(path, variant="whu")
    assert model.config.variant == "whu" and model.config.maxdisp == 128
    again = tmp_path / "again.ckpt"
    save_pretrained(model, again, epoch=1)
    _assert_loaded(load_pretrained(again))


def test_foreign_checkpoint_is_refused(tmp_path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3), "fc.weight": torch.zeros(2, 8)}, path)
    with pytest.raises(CheckpointError, match="not a SemStereo checkpoint.*conv1.weight") as info:
        load_pretrained(path)
    assert "\n" not in str(info.value)


def test_partial_checkpoint_names_missing_keys(tmp_path) -> None:
    state = {k: v for k, v in _reference_state().items() if not k.startswith("ssr_upsample.")}
    path = tmp_path / "partial.ckpt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match=r"missing: ssr_upsample\.conv\.0\.weight") as info:
        load_pretrained(path)
    assert "\n" not in str(info.value)
    model = load_pretrained(path, strict=False)
    assert model.load_report is not None and len(model.load_report.missing) == 28


def test_wrong_width_is_reported_by_shape(tmp_path) -> None:
    path = tmp_path / "half.ckpt"
    torch.save({"model": dict(_reference_state())}, path)
    with pytest.raises(CheckpointError, match="shape-mismatched: feature.conv_stem.conv.weight"):
        load_pretrained(path, config=us3d_config())


def test_missing_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found: .*nothing.ckpt"):
        load_pretrained(tmp_path / "nothing.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.ckpt"):
        load_pretrained(corrupt)


def test_local_imagenet_backbone(tmp_path) -> None:
    torch.manual_seed(5)
    timm_model = timm.create_model("mobilevitv2_050", pretrained=False)
    path = tmp_path / "mobilevitv2_050.pth"
    torch.save(timm_model.state_dict(), path)
    feature = Feature("mobilevitv2_050", pretrained=path)
    assert torch.equal(feature.conv_stem.conv.weight, timm_model.stem.conv.weight)
    assert torch.equal(feature.block4[1].conv_proj.bn.running_var, timm_model.stages[4][1].conv_proj.bn.running_var)
    with pytest.raises(CheckpointError, match="no MobileViTv2 backbone keys"):
        torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
        Feature("mobilevitv2_050", pretrained=tmp_path / "other.pth")
