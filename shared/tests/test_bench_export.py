"""semcommon.bench (timing, memory, output comparison, results files), semcommon.export and the inference flags."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from semcommon.bench import (
    Variant,
    add_bench_arguments,
    machine_info,
    machine_slug,
    max_abs_diff,
    measure,
    run_bench,
    time_variants,
)
from semcommon.runtime import add_inference_arguments, autocast


def test_measure_reports_latency_and_cpu_peak_memory() -> None:
    def allocate() -> torch.Tensor:
        block = torch.ones(64, 2**20, dtype=torch.uint8)  # 64 MiB, touched
        return block.sum()

    timing = measure(allocate, device="cpu", warmup=1, repeats=3)
    assert timing.repeats == 3
    assert 0 < timing.min_ms <= timing.median_ms <= timing.max_ms
    assert timing.peak_mib > 32  # the 64 MiB block is resident while it is summed


def test_max_abs_diff_walks_nested_outputs_and_rejects_structure_changes() -> None:
    ref = {"disp": torch.zeros(2, 3), "extra": [np.ones(2), 3.0], "name": "x"}
    out = {"disp": torch.full((2, 3), 0.25), "extra": [np.ones(2) * 1.5, 3.0], "name": "x"}
    assert max_abs_diff(ref, out) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="structure"):
        max_abs_diff(ref, {"disp": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="disp: shape"):
        max_abs_diff({"disp": torch.zeros(2, 3)}, {"disp": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match="name"):
        max_abs_diff({"name": "a"}, {"name": "b"})
    assert max_abs_diff(torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0])) == 0.0
    assert max_abs_diff(torch.tensor([float("nan")]), torch.tensor([1.0])) == float("inf")


def test_time_variants_ratios_parity_and_results_file(tmp_path, capsys) -> None:
    x = torch.randn(64, 64)
    slow = Variant("reference", lambda: sum(x[i] * 2 for i in range(64)))
    fast = Variant("fast", lambda: (x * 2).sum(0))
    wrong = Variant("fast-but-wrong", lambda: (x * 2).sum(0) + 1)
    approx = Variant("bf16", lambda: (x.bfloat16() * 2).sum(0).float(), exact=False, accuracy={"dEPE": 0.01})
    rows = time_variants("pkg", "case", "64x64", 4096, [slow, fast, wrong, approx], device="cpu", repeats=2)
    assert [r.impl for r in rows] == ["reference", "fast", "fast-but-wrong", "bf16"]
    assert rows[0].speedup == 1.0 and rows[0].max_abs_diff == 0.0
    assert rows[1].parity_ok is True and rows[1].max_abs_diff < 1e-4
    assert rows[2].parity_ok is False and rows[2].max_abs_diff == pytest.approx(1.0, abs=1e-3)
    assert rows[3].parity_ok is None and rows[3].accuracy == {"dEPE": 0.01}
    assert rows[1].speedup == pytest.approx(rows[0].median_ms / rows[1].median_ms)

    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    args = parser.parse_args(["--results", str(tmp_path)])
    path = run_bench("pkg", rows, args)
    run_bench("pkg", rows[:1], args)
    data = json.loads(path.read_text())
    assert path.name == f"{machine_slug(machine_info('cpu'))}.json"
    assert data["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert [len(run["rows"]) for run in data["runs"]] == [4, 1]
    assert "OVER TOL" in capsys.readouterr().out

    render_path = Path(__file__).resolve().parents[2] / "bench" / "render.py"
    if render_path.is_file():  # the repository's renderer (absent from an installed wheel's tests)
        spec = importlib.util.spec_from_file_location("bench_render", render_path)
        render = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(render)
        assert render.main(["--results", str(tmp_path), "--out", str(tmp_path)]) == 0
        table = (tmp_path / "README.md").read_text()
        assert table.count("| pkg | case | 64x64 |") == 4  # latest row per (case, size, impl), not one per run
        assert (tmp_path / "latency.png").stat().st_size > 1000


def test_inference_flags_and_autocast() -> None:
    parser = argparse.ArgumentParser()
    add_inference_arguments(parser)
    assert vars(parser.parse_args([])) == {"impl": "fast", "precision": "fp32", "compile": False}
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "int8"])
    a = torch.ones(4, 4)
    with autocast("cpu", "fp32"):
        assert (a @ a).dtype == torch.float32
    with autocast("cpu", "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="--precision"):
        autocast("cpu", "fp8")


def test_onnx_export_round_trip_with_dynamic_size(tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (semvision-common[export])")
    from semcommon.export import check_onnx, export_onnx

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).eval()
    path = export_onnx(
        net,
        (torch.randn(1, 3, 16, 24),),
        tmp_path / "net.onnx",
        input_names=["image"],
        output_names=["features"],
        dynamic_axes={"image": {2: "H", 3: "W"}, "features": {2: "H", 3: "W"}},
    )
    assert path.is_file() and not list(tmp_path.glob(".*tmp"))
    assert check_onnx(path, net, (torch.randn(1, 3, 20, 36),), atol=1e-5) < 1e-5  # another size than exported
    shifted = nn.Sequential(net, nn.ConstantPad2d(0, 0.0))
    with torch.no_grad():
        shifted[0][0].bias += 1.0  # the graph on disk no longer matches the module
    with pytest.raises(AssertionError, match="features"):
        check_onnx(path, shifted, (torch.randn(1, 3, 16, 24),), atol=1e-5)
