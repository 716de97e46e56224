"""The fast path (``impl="fast"``) and the shared speed flags: the same results as the reference where exact,
the training-mode fallback, and ``--impl`` / ``--precision`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from semstereo import load_pretrained
from semstereo.cli import main
from semstereo.config import SemStereoConfig
from semstereo.model import SemStereo
from semstereo.model.fast import fold_conv_bn


def _tiny_model() -> SemStereo:
    torch.manual_seed(0)
    model = SemStereo(SemStereoConfig(backbone="mobilevitv2_025", hypothesis_range=(-16, 16), topk=8))
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
    return model


def _pair(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return torch.randn(batch, 3, 64, 64, generator=generator), torch.randn(batch, 3, 64, 64, generator=generator)


@pytest.mark.parametrize("conv_type", ["conv2d", "deconv2d", "conv3d", "deconv3d"])
def test_fold_conv_bn_equals_conv_then_bn(conv_type: str) -> None:
    torch.manual_seed(0)
    conv, bn, shape = {
        "conv2d": (torch.nn.Conv2d(4, 6, 3, padding=1, bias=True), torch.nn.BatchNorm2d(6), (2, 4, 9, 7)),
        "deconv2d": (torch.nn.ConvTranspose2d(4, 6, 4, 2, 1, bias=False), torch.nn.BatchNorm2d(6), (2, 4, 5, 6)),
        "conv3d": (torch.nn.Conv3d(4, 6, 3, 2, 1, bias=False), torch.nn.BatchNorm3d(6), (1, 4, 6, 8, 5)),
        "deconv3d": (
            torch.nn.ConvTranspose3d(4, 6, 3, 2, 1, output_padding=1, bias=False),
            torch.nn.BatchNorm3d(6),
            (1, 4, 3, 4, 5),
        ),
    }[conv_type]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(fold_conv_bn(conv, bn, x), bn(conv(x)), rtol=1e-5, atol=1e-5)
        # the folded parameters are reused without autograd, and refreshed when a statistic or weight changes
        bn.load_state_dict({**bn.state_dict(), "running_var": bn.running_var * 2})
        conv.weight.mul_(0.5)
        torch.testing.assert_close(fold_conv_bn(conv, bn, x), bn(conv(x)), rtol=1e-5, atol=1e-5)
        bn.train()  # a training-mode BatchNorm is not folded: batch statistics, running stats updated
        before = bn.running_mean.clone()
        fold_conv_bn(conv, bn, x)
        assert not torch.equal(before, bn.running_mean)


def test_fast_equals_reference_in_eval() -> None:
    model = _tiny_model().eval()
    left, right = _pair()
    with torch.no_grad():
        fast = model(left, right, return_intermediates=True, impl="fast")
        reference = model(left, right, return_intermediates=True, impl="reference")
    torch.testing.assert_close(fast.disparity, reference.disparity, rtol=0, atol=2e-3)
    torch.testing.assert_close(fast.label_left, reference.label_left, rtol=1e-4, atol=1e-4)
    for name, value in reference.intermediates.items():
        torch.testing.assert_close(fast.intermediates[name], value, rtol=1e-4, atol=1e-4, msg=name)


def test_fast_in_training_mode_keeps_per_view_batch_statistics() -> None:
    """Training-mode BatchNorm: the fast path must not batch the views (the statistics would mix them)."""
    left, right = _pair()
    outputs = []
    for impl in ("fast", "reference"):
        model = _tiny_model().train()
        out = model(left, right, impl=impl)
        loss = sum(d.mean() for d in out.disparities) + out.label_left.mean() + out.label_right.mean()
        loss.backward()
        outputs.append((out, model.feature.conv_stem.bn.running_mean.clone(), model.gamma.grad.clone()))
    (fast, fast_stats, fast_grad), (ref, ref_stats, ref_grad) = outputs
    for a, b in zip(fast.disparities, ref.disparities, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast_stats, ref_stats)
    torch.testing.assert_close(fast_grad, ref_grad, rtol=1e-3, atol=1e-6)


def test_unknown_impl_is_refused() -> None:
    model = _tiny_model().eval()
    with pytest.raises(ValueError, match="impl must be one of"):
        model(*_pair(1), impl="quick")


def test_cli_impl_and_precision(tiny_checkpoint: Path, tmp_path: Path) -> None:
    runs = {}
    for impl in ("reference", "fast"):
        out = tmp_path / impl
        assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--impl", impl, "--out", str(out)]) == 0
        runs[impl] = json.loads((out / "metrics.json").read_text())
    assert runs["fast"]["original"]["EPE"] == pytest.approx(runs["reference"]["original"]["EPE"], abs=1e-4)
    out = tmp_path / "bf16"
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--precision", "bf16", "--out", str(out)]) == 0
    bf16 = json.loads((out / "metrics.json").read_text())
    assert bf16["precision"] == "bf16" and bf16["original"]["EPE"] == pytest.approx(
        runs["reference"]["original"]["EPE"], rel=0.25
    )
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--impl", "slow", "--out", str(out)])
    assert info.value.code == 2
    assert load_pretrained(tiny_checkpoint).impl == "fast"


def test_export_onnx_matches_pytorch(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (semvision-common[export])")
    out = tmp_path / "semstereo.onnx"
    args = ["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--height", "64", "--width", "96"]
    assert main(args) == 0
    assert out.stat().st_size > 0 and "onnxruntime max abs diff" in capsys.readouterr().out
    assert main(args) == 1  # an existing file is not replaced without --overwrite
    assert "exists" in capsys.readouterr().err
    assert main([*args[:-4], "--height", "60", "--width", "96", "--overwrite"]) == 1
    assert "--height/--width must be positive multiples of 32" in capsys.readouterr().err
