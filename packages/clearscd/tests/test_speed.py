"""Issue 18: the fast path equals the reference for every model configuration, the speed flags reach the commands,
and ``clearscd export --format onnx`` writes a graph that onnxruntime runs within the parity tolerance (dynamic
batch and size)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clearscd.cli import main
from clearscd.config import ClearSCDConfig
from clearscd.data import SyntheticSCD
from clearscd.inference import Inference, predict_maps
from clearscd.model import ClearSCD
from clearscd.model.fast import build_fast
from semcommon.io import read_image, write_image

RTOL = 1e-4  # fixture README: max|a-b| <= 1e-4 * max(1, max|b|)


def _randomised(config: ClearSCDConfig) -> ClearSCD:
    """A model with non-trivial BatchNorm statistics (so folding them is checked)."""
    torch.manual_seed(0)
    model = ClearSCD(config)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.normal_(1, 0.2)
            module.bias.data.normal_(0, 0.2)
    return model.eval()


def _assert_parity(reference: dict, fast: dict) -> None:
    assert set(reference) == set(fast)
    for name, expected in reference.items():
        scale = max(1.0, float(expected.abs().max()))
        diff = float((fast[name] - expected).abs().max())
        assert fast[name].shape == expected.shape and diff <= RTOL * scale, f"{name}: {diff:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize(
    "options",
    [{}, {"fusion": "concat"}, {"downsample_seg": False}, {"only_seg": True, "with_bscc": False}],
    ids=["paper", "concat", "full-res-seg", "only-seg"],
)
@pytest.mark.parametrize("shape", [(1, 64, 64), (2, 70, 45)], ids=["64", "2x70x45"])
def test_fast_equals_reference(options, shape, small_config) -> None:
    config = ClearSCDConfig(**{**small_config.to_dict(), **options})
    model = _randomised(config)
    imgs = torch.randn(shape[0], 6, *shape[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = Inference(model, "reference")(imgs)
        for channels_last in (False, True):
            for batch_dates in (False, True):
                fast = Inference(model, "fast", channels_last=channels_last, batch_dates=batch_dates)
                _assert_parity(reference, fast(imgs))
    assert all(p.is_contiguous() for p in model.parameters())  # building the fast path leaves the model untouched


@pytest.mark.parametrize("with_bscc", [True, False])
def test_fast_intermediates_equal_reference(with_bscc, small_config) -> None:
    """Every trunk output of the fast path, ``bcd_low`` included (a 0-d zero without BSCC, as the reference)."""
    config = ClearSCDConfig(**{**small_config.to_dict(), "with_bscc": with_bscc})
    model = _randomised(config)
    imgs = torch.randn(1, 6, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model.forward_intermediates(imgs)
        fast = build_fast(model).forward_intermediates(imgs)
    reference["enc_A"] = reference["enc_A"][1:]  # the reference lists the input image as level 0
    for name in ("dec_A", "dec_B", "seglow_A", "seglow_B", "bcd_low", "BCD"):
        _assert_parity({name: reference[name]}, {name: fast[name]})
    for level, (expected, actual) in enumerate(zip(reference["enc_A"], fast["enc_A"], strict=True), 1):
        _assert_parity({f"enc_A.{level}": expected}, {f"enc_A.{level}": actual})
    assert (reference["bcd_low"].ndim == 0) is not with_bscc


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device (bench/gpu_check.sh)")
def test_cuda_graph_replay_equals_reference(small_config) -> None:
    model = _randomised(small_config).cuda()
    runner = Inference(model, "fast", cuda_graphs=True)
    reference = Inference(model, "reference")
    for shape in ((1, 64, 64), (2, 70, 45), (1, 64, 64)):  # a new shape captures, a known one replays
        imgs = torch.randn(shape[0], 6, *shape[1:], generator=torch.Generator().manual_seed(5)).cuda()
        _assert_parity(reference(imgs), runner(imgs))
    assert len(runner.graphs.graphs) == 2


def test_bad_impl_and_precision_are_refused(small_config) -> None:
    model = ClearSCD(small_config).eval()
    with pytest.raises(ValueError, match="--impl"):
        Inference(model, "fastest")
    with pytest.raises(ValueError, match="--precision"):
        predict_maps(model, torch.zeros(1, 6, 32, 32), precision="fp8")
    with pytest.raises(ValueError, match="cuda_graphs"):
        Inference(model, "reference", cuda_graphs=True)


def test_bf16_is_close_but_labelled_approximate(small_config) -> None:
    model = _randomised(small_config)
    imgs = torch.randn(1, 6, 64, 64, generator=torch.Generator().manual_seed(2))
    exact = Inference(model, "reference")(imgs)
    approx = Inference(model, "fast", precision="bf16")(imgs)
    assert all(v.dtype == torch.float32 for v in approx.values())
    diff = max(float((approx[k] - exact[k]).abs().max()) for k in exact)
    assert 0 < diff < 0.2 * max(float(v.abs().max()) for v in exact.values())


def test_commands_take_the_speed_flags(tmp_path, small_checkpoints) -> None:
    scene = SyntheticSCD(1, 64, seed=3).sample(0)
    write_image(tmp_path / "a.png", scene["image_A"])
    write_image(tmp_path / "b.png", scene["image_B"])
    common = ["--checkpoint", small_checkpoints["ours"]]
    maps = {}
    for impl in ("reference", "fast"):
        out = tmp_path / f"pred-{impl}"
        assert main(["predict", *common, str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(out),
                     "--tile", "64", "--overlap", "16", "--impl", impl]) == 0  # fmt: skip
        maps[impl] = read_image(out / "a_change_prob.png").astype(np.int64)
    assert np.abs(maps["fast"] - maps["reference"]).max() <= 1  # probabilities in 1/65535 units
    args = ["evaluate", *common, "--num-samples", "2", "--size", "64", "--impl", "reference", "--precision", "bf16"]
    assert main([*args, "--out", str(tmp_path / "eval")]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", *common, "a", "b", "--impl", "slow"])
    assert exit_info.value.code == 2


def test_export_onnx_dynamic_sizes_match_pytorch(tmp_path, small_checkpoints, capsys) -> None:
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is optional (semvision-common[export])")
    from clearscd.checkpoint import load_pretrained

    out = tmp_path / "clearscd.onnx"
    args = ["export", "--format", "onnx", "--checkpoint", small_checkpoints["ours"], "--out", str(out)]
    assert main([*args, "--size", "64", "--check"]) == 0
    assert "within the parity tolerance" in capsys.readouterr().out
    model = load_pretrained(small_checkpoints["ours"])
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["seg_A", "seg_B", "BCD"]
    imgs = torch.randn(2, 6, 96, 70, generator=torch.Generator().manual_seed(4))  # other batch, size, not ×32
    got = dict(zip(["seg_A", "seg_B", "BCD"], session.run(None, {"imgs": imgs.numpy()}), strict=True))
    _assert_parity(Inference(model, "reference")(imgs), {k: torch.from_numpy(v) for k, v in got.items()})
    assert main(args) == 1  # never overwritten
    assert "already exists" in capsys.readouterr().err
