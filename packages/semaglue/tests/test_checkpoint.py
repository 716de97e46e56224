"""``load_pretrained`` / ``load_matching`` on checkpoints written in each of the authors' formats."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from semaglue import load_matching, load_pretrained
from semaglue.config import MatchingConfig, SegNextConfig, SemaGlueConfig, SuperPointConfig, yfcc_superpoint_config
from semaglue.model import SegNext, SemaGlue, SuperPoint
from semcommon.checkpoint import CheckpointError

SMALL_SEGNEXT = SegNextConfig(depths=(1, 1, 1, 1))


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
    return model


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_superpoint_v1_plain_state_dict(tmp_path) -> None:
    source = _randomised(SuperPoint(), 0)
    path = tmp_path / "superpoint_v1.pth"
    torch.save(source.state_dict(), path)
    loaded = load_pretrained(path)  # kind detected from the keys
    assert isinstance(loaded, SuperPoint) and not loaded.training
    _assert_same(loaded, source)


def test_superpoint_dataparallel_prefix(tmp_path) -> None:
    source = _randomised(SuperPoint(), 1)
    path = tmp_path / "sp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    _assert_same(load_pretrained(path, "superpoint", config=yfcc_superpoint_config()), source)


def test_segnext_mmseg_checkpoint_keeps_backbone(tmp_path) -> None:
    source = _randomised(SegNext(SMALL_SEGNEXT), 2)
    state = dict(source.state_dict())
    state["decode_head.conv_seg.weight"] = torch.randn(150, 256, 1, 1)
    state["decode_head.conv_seg.bias"] = torch.randn(150)
    meta = {"mmseg_version": "0.24.1", "CLASSES": ("wall", "building"), "PALETTE": [[120, 120, 120]], "iter": 160000}
    path = tmp_path / "segnext_tiny_512x512_ade_160k.pth"
    torch.save({"meta": meta, "state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 6e-5}]}}, path)
    loaded = load_pretrained(path, "segnext", config=SMALL_SEGNEXT)
    _assert_same(loaded, source)
    assert not any(k.startswith("decode_head") for k in loaded.state_dict())


def test_matcher_gluefactory_checkpoint(tmp_path) -> None:
    source = _randomised(SemaGlue(SemaGlueConfig(n_layers=2)), 3)
    model_state = {f"matcher.{k}": v for k, v in source.state_dict().items()}
    model_state["extractor.conv1a.weight"] = torch.randn(64, 1, 3, 3)  # other pipeline parts are ignored
    checkpoint = {
        "model": model_state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
        "lr_scheduler": {"last_epoch": 5},
        "conf": {"model": {"name": "two_view_pipeline", "matcher": {"name": "semaglue.semaglue", "n_layers": 2}}},
        "epoch": 5,
        "losses": {"total": 0.5},
        "eval": {"loss/total": 0.4},
    }
    path = tmp_path / "checkpoint_best.tar"
    torch.save(checkpoint, path)
    loaded = load_pretrained(path)  # detected as the matcher; 2 layers read from the keys
    assert isinstance(loaded, SemaGlue) and loaded.config.n_layers == 2
    _assert_same(loaded, source)
    into = SemaGlue(SemaGlueConfig(n_layers=2))
    assert load_pretrained(path, into) is into
    _assert_same(into, source)


def test_load_matching_three_files(tmp_path) -> None:
    sp, seg, matcher = (
        _randomised(SuperPoint(), 4),
        _randomised(SegNext(SMALL_SEGNEXT), 5),
        _randomised(SemaGlue(SemaGlueConfig(n_layers=1)), 6),
    )
    torch.save(sp.state_dict(), tmp_path / "sp.pth")
    torch.save({"meta": {}, "state_dict": seg.state_dict()}, tmp_path / "seg.pth")
    torch.save({"model": {f"matcher.{k}": v for k, v in matcher.state_dict().items()}}, tmp_path / "m.tar")
    config = MatchingConfig(superpoint=SuperPointConfig(max_keypoints=32), segnext=SMALL_SEGNEXT)
    pipeline = load_matching(tmp_path / "sp.pth", tmp_path / "seg.pth", tmp_path / "m.tar", config)
    _assert_same(pipeline.superpoint, sp)
    _assert_same(pipeline.segment, seg)
    _assert_same(pipeline.matcher, matcher)
    assert pipeline.matcher.config.n_layers == 1 and pipeline.superpoint.config.max_keypoints == 32


def test_checkpoint_of_another_model_is_refused(tmp_path) -> None:
    path = tmp_path / "superpoint_v1.pth"
    torch.save(SuperPoint().state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(path, "matcher", config=SemaGlueConfig(n_layers=1), infer_layers=False)
    message = str(info.value)
    assert "\n" not in message and "posenc.Wr.weight" in message and "conv1a.weight" in message


def test_mis_shaped_keys_are_named(tmp_path) -> None:
    state = SuperPoint().state_dict()
    state["convDb.weight"] = torch.randn(128, 256, 1, 1)
    path = tmp_path / "sp.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="convDb.weight"):
        load_pretrained(path, "superpoint")


def test_missing_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_pretrained(tmp_path / "absent.tar")
    corrupt = tmp_path / "checkpoint_best.tar"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="checkpoint_best.tar"):
        load_pretrained(corrupt)


def test_unknown_checkpoint_kind(tmp_path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="encoder.weight") as info:
        load_pretrained(path)
    assert "other.pth" in str(info.value)  # auto-detection names the file
    with pytest.raises(ValueError, match="model must be one of"):
        load_pretrained(path, "lightglue")  # type: ignore[arg-type]
