"""The demo command end to end at a tiny setting, and the CLI frame (unknown command)."""

from __future__ import annotations

import json

import pytest

from clearscd.cli import main
from semcommon.io import read_image


def test_demo_writes_metrics_and_figure(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "reduced FPN width" in printed and "SCD_Sek" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"model", "baseline", "primary", "config", "seconds"}
    assert metrics["primary"] == {"metric": "SCD_Sek", "higher_is_better": True}
    for side in ("model", "baseline"):
        assert set(metrics[side]) == {"SCD_Sek", "BCD_F1", "BCD_IoU", "SEG_mIoU", "Kappa"}
    assert metrics["config"]["steps"] == 2 and metrics["seconds"] > 0
    figure = read_image(out / "demo.png")
    assert figure.ndim == 3 and figure.shape[0] == 3 * 64 and figure.shape[1] > 9 * 64


def test_unknown_command_and_missing_arguments_exit_2() -> None:
    for argv in (["no-such-command"], ["demo", "--steps", "0"], []):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
