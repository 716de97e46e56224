"""Issue 18: the fast path's pieces outside the parity fixtures, ONNX export, and the speed flags of the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ssp.cli import main
from ssp.model import RAFT, HieraUperNet, SSPVideoModel, set_impl
from ssp.model.upernet import adaptive_avg_pool_matmul


@pytest.mark.parametrize("size", [(23, 40), (6, 6), (5, 13)])
def test_adaptive_pool_as_matrix_products_equals_adaptive_pooling(size) -> None:
    x = torch.randn(2, 4, *size)
    for bins in (1, 2, 3, 6):
        expected = torch.nn.functional.adaptive_avg_pool2d(x, bins)
        torch.testing.assert_close(adaptive_avg_pool_matmul(x, bins), expected, atol=1e-6, rtol=1e-6)


def test_set_impl_reaches_every_switch_and_rejects_unknown(reduced_image_config) -> None:
    model = SSPVideoModel(image_config=reduced_image_config, with_flow_model=True)
    set_impl(model, "reference")
    switches = [m for m in model.modules() if hasattr(m, "impl")]
    assert len(switches) > 20 and all(m.impl == "reference" for m in switches)
    with pytest.raises(ValueError, match="--impl"):
        set_impl(model, "turbo")


def test_position_embedding_reuse_follows_weight_changes(reduced_image_config) -> None:
    """Fast path: the per-size embedding is reused across frames, never after the parameters change."""
    model = HieraUperNet(reduced_image_config).eval()
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        first = model(image)
        assert torch.equal(model(image), first)
        model.backbone.pos_embed.add_(0.5)
        changed = model(image)
        reference = set_impl(model, "reference")(image)
    assert not torch.allclose(changed, first)
    torch.testing.assert_close(changed, reference, atol=1e-5, rtol=0)


def test_raft_fast_test_mode_equals_reference_and_windowed_lookup() -> None:
    torch.manual_seed(0)
    model = RAFT().eval()
    image1, image2 = torch.randn(1, 3, 128, 136), torch.randn(1, 3, 128, 136)
    with torch.no_grad():
        reference = set_impl(model, "reference")(image1, image2, iters=3, test_mode=True)
        fast = set_impl(model, "fast")(image1, image2, iters=3, test_mode=True)
        model.max_corr_mib = 0.0
        windowed = model(image1, image2, iters=3, test_mode=True)
    for out in (fast, windowed):
        for got, want in zip(out, reference, strict=True):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert RAFT.corr_volume_mib((1, 3, 2160, 3840)) > 60 * 1024  # why 4K needs the windowed lookup


def _frames(count: int = 3, size: tuple[int, int] = (96, 128)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    scene = (rng.random((size[0] // 8, size[1] // 8 + count, 3)) * 255).astype(np.uint8)
    scene = np.kron(scene, np.ones((8, 8, 1), np.uint8))
    return [np.ascontiguousarray(scene[:, 8 * t : 8 * t + size[1]]) for t in range(count)]


@pytest.mark.parametrize("registration", ["orb", "disk"])
def test_video_predictor_fast_describes_each_frame_once_with_the_same_result(
    registration, reduced_image_config
) -> None:
    from ssp.model.registration import LearnedRegistrator, OpenCVRegistrator, kornia_available
    from ssp.predict import VideoPredictor

    if registration == "disk" and not kornia_available():
        pytest.skip("kornia (ssp[learned]) is not installed")
    torch.manual_seed(0)
    model = SSPVideoModel(image_config=reduced_image_config, with_flow_model=False).eval()
    registrator = OpenCVRegistrator("orb") if registration == "orb" else LearnedRegistrator().eval()
    calls = []
    describe = registrator.describe
    registrator.describe = lambda x: calls.append(1) or describe(x)
    outputs = {}
    for impl in ("reference", "fast"):
        calls.clear()
        predictor = VideoPredictor(model, registrator, size=(64, 96), impl=impl)
        outputs[impl] = [predictor.step(frame) for frame in _frames()]
        outputs[impl + "_describe_calls"] = len(calls)
    for fast, reference in zip(outputs["fast"], outputs["reference"], strict=True):
        torch.testing.assert_close(fast, reference, atol=1e-4, rtol=0)
    # reference: both frames of each of the 2 pairs; fast: each of the 3 frames once
    assert outputs["fast_describe_calls"] == 3
    assert outputs["reference_describe_calls"] == (4 if registration == "orb" else 2)  # DISK: one batched call a pair


def test_predict_and_evaluate_speed_flags(tmp_path, video_checkpoint) -> None:
    from semcommon.io import write_image

    folder = tmp_path / "frames"
    for t, frame in enumerate(_frames()):
        write_image(folder / f"f{t}.png", frame)
    base = ["predict", str(folder), "--checkpoint", str(video_checkpoint), "--size", "64", "96"]
    masks = {}
    for name, flags in (("ref", ["--impl", "reference"]), ("fast", []), ("bf16", ["--precision", "bf16"])):
        assert main([*base, "--out", str(tmp_path / name), "--registration", "orb", "--no-preview", *flags]) == 0
        masks[name] = [np.asarray(_read(tmp_path / name / "masks" / f"f{t}.png")) for t in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(masks["ref"], masks["fast"], strict=True))
    assert all(m.shape == (96, 128) for m in masks["bf16"])
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(video_checkpoint), "--data", "synthetic", "--out", str(out)]
    assert main([*args, "--impl", "reference", "--precision", "bf16"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["mIoU"] <= 1.0


def _read(path):
    from semcommon.io import read_image

    return read_image(path)


def test_export_segmenter_onnx_any_size(tmp_path, image_checkpoint, capsys) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime (semvision-common[export]) is not installed")
    from semcommon.export import check_onnx
    from ssp.checkpoint import load_pretrained

    out = tmp_path / "seg.onnx"
    args = ["export", "--format", "onnx", "--checkpoint", str(image_checkpoint), "--out", str(out)]
    assert main([*args, "--size", "64", "96", "--check"]) == 0
    assert "onnxruntime vs PyTorch max abs diff" in capsys.readouterr().out
    model = load_pretrained(image_checkpoint)
    for size in ((96, 160), (128, 64)):  # other sizes than the traced one, window padding included
        assert check_onnx(out, model, (torch.randn(2, 3, *size),), atol=1e-4) < 1e-4
    assert main([*args, "--size", "64", "96"]) == 1  # never overwrites


def test_export_raft_onnx_any_size(tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime (semvision-common[export]) is not installed")
    from semcommon.export import check_onnx
    from ssp.export import RaftGraph

    torch.manual_seed(0)
    raft = RAFT().eval()
    checkpoint = tmp_path / "raft.pth"
    torch.save(raft.state_dict(), checkpoint)
    out = tmp_path / "raft.onnx"
    args = ["export", "--format", "onnx", "--model", "raft", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main([*args, "--size", "128", "128", "--iters", "2"]) == 0
    image = torch.randn(1, 3, 128, 160)
    assert check_onnx(out, RaftGraph(raft, 2), (image, image.roll(2, dims=-1)), atol=1e-4) < 1e-4


def test_export_refuses_a_model_without_a_segmenter(tmp_path, capsys) -> None:
    checkpoint = tmp_path / "raft.pth"
    torch.save(RAFT().state_dict(), checkpoint)
    args = ["export", "--format", "onnx", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "x.onnx")]
    assert main(args) == 1
    assert "expected an SSP or image segmentation model" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_predict_compile_flag_compiles_the_networks(tmp_path, image_checkpoint, monkeypatch) -> None:
    """``--compile`` runs the networks through torch.compile (TorchDynamo). Inductor's C++ code generation takes
    minutes on this CPU, so the test compiles with the "eager" backend: the same capture, no code generation."""
    import torch._dynamo

    from semcommon.io import write_image

    compiled = []
    original = torch.nn.Module.compile

    def compile_eager(module, *args, **kwargs):
        compiled.append(type(module).__name__)
        return original(module, *args, backend="eager", **kwargs)

    monkeypatch.setattr(torch.nn.Module, "compile", compile_eager)
    torch._dynamo.reset()
    write_image(tmp_path / "f.png", _frames(1)[0])
    outs = {}
    for name, flags in (("eager", []), ("compiled", ["--compile"])):
        args = ["predict", str(tmp_path / "f.png"), "--checkpoint", str(image_checkpoint), "--size", "64", "96"]
        assert main([*args, "--out", str(tmp_path / name), "--no-preview", *flags]) == 0
        outs[name] = np.asarray(_read(tmp_path / name / "masks" / "f.png"))
    assert compiled == ["Hiera", "UperNetHead"]
    assert np.array_equal(outs["eager"], outs["compiled"])
    torch._dynamo.reset()


def test_lightglue_cross_attention_through_sdpa_equals_kornia() -> None:
    pytest.importorskip("kornia", reason="kornia (ssp[learned]) is not installed")
    from kornia.feature.lightglue import CrossBlock

    from ssp.model.registration import _cross_attention_sdpa

    torch.manual_seed(0)
    block = CrossBlock(256, 4).eval()
    x0, x1 = torch.randn(1, 300, 256), torch.randn(1, 211, 256)
    with torch.no_grad():
        expected = block(x0, x1)
        got = _cross_attention_sdpa(block, x0, x1)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
