"""``semaglue export --format onnx``: SuperPoint (dense) and SegNeXt with dynamic image sizes, the matcher with a
fixed keypoint count, each checked against PyTorch with onnxruntime; existing files are never overwritten."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semaglue.cli import main
from semaglue.config import SemaGlueConfig
from semaglue.model import SegNext, SemaGlue, SuperPoint

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (semvision-common[export])")


def _run(path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_export_three_models(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    superpoint, segnext = SuperPoint().eval(), SegNext().eval()
    torch.save(superpoint.state_dict(), tmp_path / "superpoint_v1.pth")
    torch.save({"state_dict": segnext.state_dict()}, tmp_path / "segnext.pth")
    matcher = SemaGlue(SemaGlueConfig(n_layers=1))
    torch.save({"model": {f"matcher.{k}": v for k, v in matcher.state_dict().items()}}, tmp_path / "best.tar")
    size = ["--height", "64", "--width", "96"]
    for model, checkpoint, extra in (
        ("superpoint", "superpoint_v1.pth", []),
        ("segnext", "segnext.pth", []),
        ("matcher", "best.tar", ["--keypoints", "16"]),
    ):
        out = tmp_path / f"{model}.onnx"
        args = ["export", "--format", "onnx", "--model", model, "--checkpoint", str(tmp_path / checkpoint)]
        assert main([*args, "--out", str(out), *size, *extra]) == 0
        assert "onnxruntime max abs diff" in capsys.readouterr().out
        assert main([*args, "--out", str(out), *size, *extra]) == 1  # never overwritten
        assert "exists" in capsys.readouterr().err
    # dynamic image size: another size than the exported example, against PyTorch
    image = torch.rand(2, 1, 48, 80)
    scores, desc = _run(tmp_path / "superpoint.onnx", {"image": image.numpy()})
    with torch.no_grad():
        ref_scores, ref_desc = superpoint.dense(image)
        ref_map = segnext(image)["feature_map"]
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-5)
    np.testing.assert_allclose(desc, ref_desc.numpy(), atol=1e-4)
    (fmap,) = _run(tmp_path / "segnext.onnx", {"image": image.numpy()})
    np.testing.assert_allclose(fmap, ref_map.numpy(), atol=1e-4 * max(1.0, float(ref_map.abs().max())))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_bad_options(tmp_path, capsys) -> None:
    torch.save(SuperPoint().state_dict(), tmp_path / "sp.pth")
    args = ["export", "--model", "superpoint", "--checkpoint", str(tmp_path / "sp.pth"), "--out", str(tmp_path / "x")]
    assert main([*args, "--height", "60"]) == 1
    assert "multiples of 8" in capsys.readouterr().err
    assert (
        main(["export", "--model", "matcher", "--checkpoint", str(tmp_path / "sp.pth"), "--out", str(tmp_path / "y")])
        == 1
    )
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
