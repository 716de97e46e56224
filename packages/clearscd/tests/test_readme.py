"""The README's command block runs as written (tiny sizes), in an empty folder with raw Hi-UCD tiles and a pair."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from clearscd.cli import main
from clearscd.data import SyntheticSCD
from semcommon.io import read_image, write_image

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[list[str]]:
    text = README.read_text()
    block = text.split("<!-- readme-test -->", 1)[1].split("```", 2)[1]
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    assert lines and all(line.startswith("clearscd ") for line in lines)
    return [shlex.split(line)[1:] for line in lines]


def test_readme_commands_run_as_written(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    scene = SyntheticSCD(1, 64, seed=9).sample(0)
    write_image(tmp_path / "t1.png", scene["image_A"])
    write_image(tmp_path / "t2.png", scene["image_B"])
    for folder in ("2018", "2019"):
        write_image(tmp_path / "raw" / folder / "583536_18.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    raw_mask = np.dstack([rng.integers(0, 10, (64, 64)), rng.integers(0, 10, (64, 64)), rng.integers(0, 3, (64, 64))])
    write_image(tmp_path / "raw" / "mask" / "583536_18.png", raw_mask.astype(np.uint8))

    commands = _commands()
    assert {c[0] for c in commands} == {"prepare-hiucd", "train", "evaluate", "predict", "demo", "export"}
    for argv in commands:
        assert main(argv) == 0, f"clearscd {shlex.join(argv)} failed: {capsys.readouterr().err}"

    assert len((tmp_path / "hiucd_ready" / "test.txt").read_text().splitlines()) == 4
    log = [json.loads(line) for line in (tmp_path / "runs/tiny/log.jsonl").read_text().splitlines()]
    assert max(r.get("step", 0) for r in log) == 3  # resumed from step 2 to 3
    assert json.loads((tmp_path / "runs/tiny-eval-hiucd/metrics.json").read_text())["num_items"] == 4
    assert (tmp_path / "runs/tiny-eval/per_item.csv").is_file()
    assert read_image(tmp_path / "runs/tiny-pred/t1_sem_B.png").shape == (64, 64)
    assert read_image(tmp_path / "runs/tiny-pred-ref/t1_sem_B.png").shape == (64, 64)
    assert (tmp_path / "runs/tiny.onnx").stat().st_size > 0

    metrics = json.loads((tmp_path / "runs/demo-tiny/metrics.json").read_text())
    assert set(metrics) == {"model", "baseline", "primary", "config", "seconds"}
    assert metrics["primary"] == {"metric": "SCD_Sek", "higher_is_better": True}
    for side in ("model", "baseline"):
        assert set(metrics[side]) == {"SCD_Sek", "BCD_F1", "BCD_IoU", "SEG_mIoU", "Kappa"}
    assert metrics["config"]["steps"] == 2 and metrics["seconds"] > 0
    figure = read_image(tmp_path / "runs/demo-tiny/demo.png")
    assert figure.ndim == 3 and figure.shape[0] == 3 * 64 and figure.shape[1] > 9 * 64
    from clearscd.checkpoint import load_pretrained

    demo_model = load_pretrained(tmp_path / "runs/demo-tiny/clearscd.pt")  # the demo's trained model, strict keys
    assert demo_model.config.decoder_segmentation_channels == metrics["config"]["segmentation_channels"]
