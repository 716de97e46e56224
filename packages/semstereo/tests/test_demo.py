"""``semstereo demo`` runs for real (one training step) and writes the demo contract's files."""

from __future__ import annotations

import json

from semstereo.cli import main


def test_demo_writes_png_and_metrics(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "1"]) == 0
    printed = capsys.readouterr().out
    assert "SGBM" in printed and "reduced width" in printed and "EPE" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"model", "baseline", "primary", "config", "seconds"}
    assert metrics["primary"] == {"metric": "EPE", "higher_is_better": False}
    for side in ("model", "baseline"):
        assert set(metrics[side]) == {"EPE", "D1", "mIoU", "motorcycle_EPE"}
        assert all(isinstance(v, float) and v >= 0 for v in metrics[side].values())
    assert metrics["config"]["steps"] == 1 and "mobilevitv2_025" in metrics["config"]["model"]
    assert metrics["baseline"]["EPE"] < 5  # the tuned SGBM matches the generated pairs
    assert (out / "demo.png").stat().st_size > 1000 and not list(out.glob(".*"))
