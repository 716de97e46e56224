"""``semstereo train`` runs the recipe through semcommon.training.fit: resume, two stages, WHU, LR schedule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from semcommon.io import write_image
from semstereo.cli import main
from semstereo.config import SemStereoConfig, TrainConfig
from semstereo.data import SceneRenderer, SyntheticConfig
from semstereo.train import SemStereoTask

FAST = [
    "--set",
    "model.backbone=mobilevitv2_050",
    "--set",
    "data.synthetic_train=4",
    "--set",
    "data.synthetic_test=1",
    "--batch-size",
    "1",
    "--quiet",
]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_resume_continues_to_the_same_weights(tmp_path: Path) -> None:
    full, split = tmp_path / "full", tmp_path / "split"
    assert main(["train", "--run-dir", str(full), "--max-steps", "2", *FAST]) == 0
    assert main(["train", "--run-dir", str(split), "--max-steps", "1", *FAST]) == 0
    assert main(["train", "--run-dir", str(split), "--max-steps", "2", "--resume", *FAST]) == 0
    a, b = _weights(full), _weights(split)
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    stored = json.loads((full / "config.json").read_text())["config"]
    assert stored["stage"] == "full" and stored["batch_size"] == 1 and stored["seed"] == 1
    records = [json.loads(line) for line in (full / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert train and {"disp_loss", "label_loss", "lrsc_loss"} <= set(train[-1])
    assert any(r["kind"] == "eval" and "EPE" in r and "corrected_mIoU" in r for r in records)


def test_stage_two_initialises_from_stage_one(tmp_path: Path) -> None:
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    assert main(["train", "--stage", "attention", "--run-dir", str(stage1), "--max-steps", "1", *FAST]) == 0
    assert json.loads((stage1 / "config.json").read_text())["config"]["stage"] == "attention"
    ckpt = stage1 / "checkpoints" / "last.pt"
    args = ["train", "--stage", "full", "--init", str(ckpt), "--run-dir", str(stage2), "--max-steps", "1", *FAST]
    assert main(args) == 0
    assert json.loads((stage2 / "config.json").read_text())["config"]["stage"] == "full"
    # how --init loads: every key of the stage-1 file (authors' DataParallel prefix removed)
    first = _weights(stage1)
    task = SemStereoTask(TrainConfig(stage="full", model=SemStereoConfig(backbone="mobilevitv2_050")))
    model = task.build_model()
    report = task.on_init_checkpoint(model, {f"module.{k}": v for k, v in first.items()})
    assert report is not None and report.ok
    state = model.state_dict()
    assert all(torch.equal(state[k], first[k]) for k in first)


def test_lr_schedule_halves_at_epoch_starts() -> None:
    task = SemStereoTask(TrainConfig(lrepochs="1,2:2", batch_size=2))
    task._steps_per_epoch = 3
    optimizer = task.build_optimizer(torch.nn.Linear(1, 1))
    scheduler = task.build_scheduler(optimizer)
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([1e-3] * 3 + [5e-4] * 3 + [2.5e-4] * 2)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="lrepochs"):
        TrainConfig(lrepochs="12,22")


def test_whu_training_on_the_whu_layout(tmp_path: Path) -> None:
    renderer = SceneRenderer(SyntheticConfig(height=64, width=64, dmin=1, dmax=30))
    lines = []
    for i in range(2):
        scene = renderer.render(i)
        for sub, array in (("left", scene.left), ("right", scene.right)):
            write_image(tmp_path / "data" / sub / f"{i:03d}.png", array)
        write_image(tmp_path / "data" / "disp" / f"{i:03d}.png", np.round(scene.disparity * 256).astype(np.uint16))
        lines.append(f"left/{i:03d}.png right/{i:03d}.png disp/{i:03d}.png")
    for name in ("train.txt", "test.txt"):
        (tmp_path / "data" / name).write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    base = ["train", "--data", str(tmp_path / "data"), "--run-dir", str(run), "--max-steps", "1", *FAST]
    assert main(base) == 1  # the US3D model on WHU data is refused
    whu = ["--set", "model.variant=whu", "--set", "model.maxdisp=128"]
    assert main([*base, *whu]) == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train = next(r for r in records if r["kind"] == "train")
    assert train["label_loss"] == 0 and train["lrsc_loss"] > 0
    assert "mIoU" not in next(r for r in records if r["kind"] == "eval")
