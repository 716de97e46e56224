"""The commands run for real on tiny synthetic data: train (+ resume), evaluate, predict, demo, prepare-kitti."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from semcommon.io import read_image, write_image
from semcommon.testing import check_cli
from sgdepth_pkd.cli import main
from sgdepth_pkd.demo import DemoConfig, run_demo

TINY = [
    "--set", "model.num_layers=18", "--set", "model.height=64", "--set", "model.width=64",
    "--set", "model.decoder_channels=[16,16,8,8,8]", "--set", "model.keep_unused_params=false",
    "--set", "synthetic_sequences=1", "--set", "synthetic_frames=3", "--set", "val_sequences=1",
    "--batch-size", "1", "--device", "cpu", "--quiet", "--seed", "3",
]  # fmt: skip


def _train(run_dir, *extra: str) -> int:
    return main(["train", "--run-dir", str(run_dir), *TINY, *extra])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("train") / "run"
    assert _train(run, "--max-steps", "2") == 0
    return run / "checkpoints" / "last.pt"


def test_subcommands_have_help_and_unknown_fails(capsys) -> None:
    check_cli(main, ["train", "evaluate", "predict", "demo", "prepare-kitti"], capsys)


def test_train_writes_run_and_resume_continues_exactly(checkpoint, tmp_path) -> None:
    run_dir = checkpoint.parent.parent
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert any("loss_seg" in r and "loss_depth_reprojection" in r for r in log)
    assert any("abs_rel" in r and "miou" in r for r in log)  # the end-of-run evaluation
    state = torch.load(checkpoint, weights_only=True)
    assert state["step"] == 2 and state["config"]["model"]["height"] == 64
    resumed = tmp_path / "resumed"
    assert _train(resumed, "--max-steps", "1") == 0
    assert _train(resumed, "--max-steps", "2", "--resume") == 0
    final = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key, value in state["model"].items():
        torch.testing.assert_close(final[key], value, rtol=0, atol=0, msg=key)


def test_train_scheduler_and_quirk_option(tmp_path) -> None:
    from sgdepth_pkd.config import TrainingConfig
    from sgdepth_pkd.train import SGDepthTask, TaskConfig

    for quirk, expected in ((False, 1e-5), (True, 1e-8)):
        task = SGDepthTask(
            TaskConfig(optim=TrainingConfig(batches_per_epoch=2, scheduler_step_size=1, scheduler_gamma_is_lr=quirk))
        )
        optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-4)
        scheduler = task.build_scheduler(optimizer)
        for _ in range(2):
            optimizer.step()
            scheduler.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)


def test_evaluate_writes_metrics_and_csv(checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--sequences", "1", "--out", str(out)]
    assert main([*args, "--ratio-first-quarter"]) == 0
    printed = capsys.readouterr().out
    assert "Scaling ratios" in printed and "abs_rel" in printed and "miou_19_corrected" in printed
    metrics = json.loads((out / "metrics.json").read_text())["synthetic"]
    assert 0 < metrics["abs_rel"] < 5 and 0 <= metrics["miou"] <= 1
    rows = (out / "per_image.csv").read_text().splitlines()
    assert rows[0].startswith("dataset,name,abs_rel") and len(rows) == 1 + 6  # one held-out sequence of 8 frames


def test_evaluate_impls_agree_and_bf16_is_close(checkpoint, tmp_path) -> None:
    """--impl reference / fast give the same metrics; --precision bf16 (approximate) stays near them."""
    metrics = {}
    for flags in (["--impl", "reference"], ["--impl", "fast"], ["--precision", "bf16"]):
        out = tmp_path / "-".join(flags)
        args = ["evaluate", "--checkpoint", str(checkpoint), "--sequences", "1", "--out", str(out), *flags]
        assert main(args) == 0
        metrics[flags[-1]] = json.loads((out / "metrics.json").read_text())["synthetic"]
    for name in ("abs_rel", "rmse", "miou"):
        assert metrics["fast"][name] == pytest.approx(metrics["reference"][name], rel=1e-4, abs=1e-6)
        assert metrics["bf16"][name] == pytest.approx(metrics["reference"][name], rel=0.1, abs=0.02)


def test_predict_folder_of_odd_sized_images(checkpoint, tmp_path, capsys) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        write_image(folder / f"frame_{index}.png", rng.integers(0, 255, (37, 83, 3), dtype=np.uint8))
    out = tmp_path / "pred"
    assert main(["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(out), "--poses"]) == 0
    reference = tmp_path / "pred_reference"
    assert (
        main(["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(reference), "--impl", "reference"])
        == 0
    )
    np.testing.assert_allclose(np.load(out / "frame_1_disp.npy"), np.load(reference / "frame_1_disp.npy"), atol=1e-4)
    depth_png = read_image(out / "frame_1_depth.png")
    depth = np.load(out / "frame_1_depth.npy")
    assert depth_png.dtype == np.uint16 and depth_png.shape == depth.shape == (37, 83)
    np.testing.assert_allclose(depth_png / 256.0, depth, atol=1 / 512 + 1e-6)
    assert read_image(out / "frame_0_seg.png").max() < 20
    assert np.load(out / "poses.npy").shape == (1, 4, 4)
    capsys.readouterr()
    assert main(["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err


def test_demo_tiny_setting_writes_metrics_and_png(tmp_path) -> None:
    demo = DemoConfig(
        height=64, width=128, train_sequences=1, test_sequences=1, frames=3, stage1_steps=1, stage2_steps=1,
        batch_size=1, patch_size=64, decoder_channels=(16, 16, 8, 8, 8),
    )  # fmt: skip
    result = run_demo(tmp_path / "demo", "cpu", demo)
    written = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert set(written) == {"model", "baseline", "primary", "config", "seconds"}
    assert written["primary"] == {"metric": "abs_rel", "higher_is_better": False}
    assert set(written["model"]) == set(written["baseline"]) and "abs_rel" in written["model"]
    assert written == json.loads(json.dumps(result))
    assert read_image(tmp_path / "demo" / "demo.png").shape[1] > 6 * 128
