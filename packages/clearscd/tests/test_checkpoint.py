"""load_pretrained with the authors' checkpoint formats, refusals and file errors; config loading."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from clearscd import CheckpointError, ClearSCD, ClearSCDConfig, load_encoder_weights, load_pretrained


@pytest.fixture(scope="module")
def random_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    model = ClearSCD()
    state = model.state_dict()
    return {
        k: (torch.randn_like(v) if v.is_floating_point() else torch.randint_like(v, 0, 8)) for k, v in state.items()
    }


def _assert_loaded(model: ClearSCD, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


FORMATS = {
    "authors_state_dict_entry": lambda s: {"state_dict": s},
    "authors_with_extra_entries": lambda s: {"state_dict": s, "epoch": 37, "metric": 0.912, "note": "best"},
    "dataparallel_module_prefix": lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
    "bare_state_dict": lambda s: dict(s),
    "model_entry_model_prefix": lambda s: {"model": {f"model.{k}": v for k, v in s.items()}},
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_load_formats(tmp_path, random_state, fmt) -> None:
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(FORMATS[fmt](random_state), path)
    model = load_pretrained(path)
    assert not model.training
    _assert_loaded(model, random_state)


def test_load_with_authors_json_config(tmp_path, random_state) -> None:
    config = ClearSCDConfig().to_dict()
    config = {"//////////": "", **config, "**********": "", "congfig_name": "ours"}
    (tmp_path / "ours.json").write_text(json.dumps(config))
    torch.save({"state_dict": random_state}, tmp_path / "ck.pth.tar")
    _assert_loaded(load_pretrained(tmp_path / "ck.pth.tar", config=str(tmp_path / "ours.json")), random_state)


def test_unknown_config_key_is_an_error(tmp_path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"num_segclass": 9, "with_cll": True}))
    with pytest.raises(ValueError, match="with_cll"):
        ClearSCDConfig.from_json(tmp_path / "bad.json")


def test_other_model_refused(tmp_path) -> None:
    other = {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}
    torch.save({"state_dict": other}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="not a ClearSCD checkpoint.*conv1.weight") as exc:
        load_pretrained(tmp_path / "resnet.pth")
    assert "\n" not in str(exc.value)


def test_mismatched_checkpoint_names_keys(tmp_path, random_state) -> None:
    state = dict(random_state)
    state["head_seg.0.weight"] = torch.zeros(7, 128, 3, 3)  # a 7-class (LsSCD-like) head
    del state["proj_head.proj.3.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "ck.pth.tar")
    with pytest.raises(CheckpointError) as exc:
        load_pretrained(tmp_path / "ck.pth.tar")
    message = str(exc.value)
    assert "\n" not in message
    for key in ("proj_head.proj.3.bias", "extra.weight", "head_seg.0.weight"):
        assert key in message


def test_non_strict_reports_and_loads_the_rest(tmp_path, random_state) -> None:
    state = {k: v for k, v in random_state.items() if not k.startswith("proj_head.")}
    torch.save({"state_dict": state}, tmp_path / "ck.pth.tar")
    model = load_pretrained(tmp_path / "ck.pth.tar", strict=False)
    assert torch.equal(model.state_dict()["head_seg.0.weight"], random_state["head_seg.0.weight"])


def test_missing_and_corrupt_files(tmp_path, random_state) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_pretrained(tmp_path / "absent.pth.tar")
    corrupt = tmp_path / "corrupt.pth.tar"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt.pth.tar"):
        load_pretrained(corrupt)
    state = dict(random_state)
    state["head_seg.0.bias"] = torch.full((9,), float("nan"))
    torch.save({"state_dict": state}, tmp_path / "nan.pth.tar")
    with pytest.raises(CheckpointError, match="head_seg.0.bias"):
        load_pretrained(tmp_path / "nan.pth.tar")


def test_checkpoint_with_code_is_refused(tmp_path) -> None:
    torch.save({"state_dict": {}, "args": argparse.Namespace(size=512)}, tmp_path / "pickle.pth.tar")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_pretrained(tmp_path / "pickle.pth.tar")


def test_load_encoder_imagenet_weights(tmp_path, random_state) -> None:
    encoder = {k.removeprefix("encoder."): v for k, v in random_state.items() if k.startswith("encoder.")}
    encoder["_fc.weight"] = torch.zeros(1000, 1280)
    encoder["_fc.bias"] = torch.zeros(1000)
    torch.save(encoder, tmp_path / "efficientnet-b0.pth")
    model = ClearSCD()
    load_encoder_weights(model, tmp_path / "efficientnet-b0.pth")
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, random_state[f"encoder.{key}"]), key
