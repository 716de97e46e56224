"""``sgdepth-pkd export --format onnx``: the ONNX graph matches PyTorch in onnxruntime at another batch and size."""

from __future__ import annotations

import pytest
import torch

from sgdepth_pkd.cli import main
from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.model.sgdepth import SGDepth

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime (semvision-common[export]) is not installed")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = SGDepth(SGDepthConfig(num_layers=18, height=64, width=96))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():  # non-trivial BatchNorm statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2, generator=generator)
                module.running_var.uniform_(0.3, 2.0, generator=generator)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save({"model": model.state_dict()}, path)
    return path, model.eval()


def test_export_onnx_dynamic_size_matches_pytorch(checkpoint, tmp_path, capsys) -> None:
    path, model = checkpoint
    out = tmp_path / "sgdepth.onnx"
    assert main(["export", "--format", "onnx", "--checkpoint", str(path), "--out", str(out), "--size", "64", "96"]) == 0
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and out.stat().st_size > 1e6
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["disp_0", "disp_1", "disp_2", "disp_3", "segmentation_logits"]
    images = torch.randn(1, 3, 128, 64, generator=torch.Generator().manual_seed(2))  # another size than traced
    got = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        disps, logits = model.predict(images, impl="reference")
    for ours, reference in zip(got, (*disps, logits), strict=True):
        assert ours.shape == tuple(reference.shape)
        tol = 1e-4 * max(1.0, float(reference.abs().max()))
        torch.testing.assert_close(torch.from_numpy(ours), reference, rtol=0, atol=tol)
    # never overwrites
    assert main(["export", "--checkpoint", str(path), "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err


def test_export_refuses_bad_size(checkpoint, tmp_path, capsys) -> None:
    path, _ = checkpoint
    out = tmp_path / "bad.onnx"
    assert main(["export", "--checkpoint", str(path), "--out", str(out), "--size", "50", "96"]) == 1
    assert "--size" in capsys.readouterr().err and not out.exists()
