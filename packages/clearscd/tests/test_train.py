"""``clearscd train`` on tiny synthetic data through semcommon.training.fit: checkpoints, authors' config, resume."""

from __future__ import annotations

import json

import torch

from clearscd import load_pretrained
from clearscd.cli import main
from clearscd.config import ClearSCDConfig
from clearscd.train import ClearSCDTask, TrainConfig, load_train_config

from .conftest import SMALL

TINY = [f"--set={k}={v}" for k, v in SMALL.items()]
TINY += ["--set=synthetic_samples=4", "--set=synthetic_val_samples=2", "--set=synthetic_size=64", "--batch-size=2"]


def _run(run_dir, *extra: str) -> int:
    return main(["train", "--data", "synthetic", "--run-dir", str(run_dir), "--quiet", *TINY, *extra])


def test_train_writes_loadable_checkpoint_and_logs(tmp_path) -> None:
    run = tmp_path / "run"
    assert _run(run, "--max-steps", "3") == 0
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["config"]["clearscd"]["decoder_segmentation_channels"] == 32
    model = load_pretrained(run / "checkpoints" / "last.pt")  # rebuilds the reduced-width model from the config
    assert model.decoder.p5.out_channels == 32
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("kind") == "train"]
    assert train and {"bcd", "seg_A", "seg_B", "contrast", "bscc"} <= set(train[-1])
    evals = [r for r in records if r.get("kind") == "eval"]
    assert evals and {"BCD_IoU", "SEG_mIoU", "SeK", "selection"} <= set(evals[-1])
    assert (run / "checkpoints" / "best.pt").is_file()  # best by the authors' selection metric


def test_resume_continues_to_the_uninterrupted_weights(tmp_path) -> None:
    assert _run(tmp_path / "full", "--max-steps", "4") == 0
    assert _run(tmp_path / "split", "--max-steps", "2") == 0
    assert _run(tmp_path / "split", "--max-steps", "4", "--resume") == 0
    full = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)["model"]
    split = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert full.keys() == split.keys()
    for key in full:  # includes the SACL queues and pointers
        torch.testing.assert_close(split[key], full[key], rtol=0, atol=0, msg=key)


def test_authors_config_file_is_accepted_as_is(tmp_path) -> None:
    ours_json = tmp_path / "ours.json"
    ours_json.write_text(json.dumps({"//////////": "", "model": "ClearSCD", "learning_rate": 0.001, "epochs": 7}))
    config = load_train_config(str(ours_json), ["decoder_segmentation_channels=64", "proj_dim=64", "tile=256"])
    assert config.clearscd.learning_rate == 0.001 and config.clearscd.epochs == 7
    assert config.clearscd.decoder_segmentation_channels == 64 and config.tile == 256
    ours_json.write_text(json.dumps({"model": "ClearSCD", "no_such_key": 1}))
    try:
        load_train_config(str(ours_json), [])
    except ValueError as exc:
        assert "no_such_key" in str(exc)
    else:
        raise AssertionError("unknown key accepted")


def test_recipe_schedule_and_warmup() -> None:
    config = TrainConfig(clearscd=ClearSCDConfig(**SMALL), synthetic_samples=8, synthetic_size=64)
    task = ClearSCDTask(config, batch_per_step=2)  # 4 steps per epoch
    model = task.build_model()
    optimizer = task.build_optimizer(model)
    assert optimizer.defaults["lr"] == 2.5e-4 and optimizer.defaults["weight_decay"] == 5e-4
    scheduler = task.build_scheduler(optimizer)
    lrs = []
    for _ in range(81):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[39] == 2.5e-4 and abs(lrs[40] - 2.5e-4 * 0.9) < 1e-12 and abs(lrs[80] - 2.5e-4 * 0.81) < 1e-12
    batch = next(iter(torch.utils.data.DataLoader(task.train_dataset(), batch_size=2)))
    queue = model.queue_A1.clone()
    _, logs = task.training_step(model.train(), batch, step=3)  # epoch 1: warm-up, global term only enqueues
    assert float(logs["contrast"]) > 0
    assert not torch.equal(model.queue_A1, queue) or int(model.ptr_A1) == 0
