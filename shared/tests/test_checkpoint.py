import pytest
import torch
from torch import nn

from semcommon.checkpoint import (
    CheckpointError,
    extract_state_dict,
    load_checkpoint,
    load_state_dict_into,
    remap_keys,
    save_checkpoint,
    strip_prefix,
)


def small_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_round_trip_wrapped_and_prefixed(tmp_path):
    model = small_model()
    wrapped = {"model": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}
    path = save_checkpoint(wrapped, tmp_path / "ckpt.pth")
    state = strip_prefix(extract_state_dict(load_checkpoint(path)), "module.")
    other = small_model()
    report = load_state_dict_into(other, state)
    assert report.ok
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)


def test_safetensors(tmp_path):
    from safetensors.torch import save_file

    model = small_model()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    state = load_checkpoint(tmp_path / "w.safetensors")
    assert set(state) == set(model.state_dict())


def test_report_names_keys_and_strict_raises():
    model = small_model()
    state = dict(model.state_dict())
    state.pop("0.bias")
    state["extra.weight"] = torch.zeros(1)
    state["1.weight"] = torch.zeros(5)
    with pytest.raises(CheckpointError) as exc:
        load_state_dict_into(small_model(), state, source="x.pth")
    message = str(exc.value)
    assert "\n" not in message
    assert "x.pth" in message and "0.bias" in message and "extra.weight" in message and "1.weight [5]" in message
    report = load_state_dict_into(small_model(), state, strict=False)
    assert report.missing == ["0.bias"] and report.unexpected == ["extra.weight"]
    assert report.mismatched == [("1.weight", (5,), (4,))]


def test_remap_keys():
    state = {"a.x": torch.zeros(1), "b.y": torch.ones(1)}
    assert set(remap_keys(state, [("a.", "alpha.")])) == {"alpha.x", "b.y"}
    assert set(remap_keys(state, lambda k: None if k.startswith("b") else k.upper())) == {"A.X"}


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_checkpoint(bad)


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"obj": nn.Linear(1, 1)}, path)  # a full module needs unpickling of arbitrary classes
    with pytest.raises(CheckpointError, match="evil.pth"):
        load_checkpoint(path)


def test_extract_state_dict_errors():
    with pytest.raises(CheckpointError):
        extract_state_dict({"epoch": 1})


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    path = save_checkpoint({"w": torch.ones(2)}, tmp_path / "keep.pth")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint({"w": Unpicklable()}, path)
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["keep.pth"]
