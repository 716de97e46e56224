"""``semaglue train`` on tiny synthetic data: the loss decreases, resume continues exactly, a folder of images works."""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch

from semaglue.checkpoint import load_pretrained
from semaglue.cli import main
from semaglue.losses import deep_supervision_loss
from semaglue.model import SemaGlue

TINY = [
    "--device",
    "cpu",
    "--batch-size",
    "2",
    "--quiet",
    "--set",
    "data.height=64",
    "--set",
    "data.width=80",
    "--set",
    "features.max_keypoints=32",
    "--set",
    "matcher.n_layers=2",
    "--set",
    "matcher.descriptor_dim=32",
    "--set",
    "matcher.num_heads=2",
    "--set",
    "segnext.embed_dims=[8,8,8,16]",
    "--set",
    "segnext.depths=[1,1,1,1]",
    "--set",
    "val_pairs=2",
]


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_resume_continues_to_the_same_weights(tmp_path, capsys) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", "--run-dir", str(full), "--max-steps", "4", "--save-every", "2", *TINY]) == 0
    assert main(["train", "--run-dir", str(part), "--max-steps", "2", "--save-every", "2", *TINY]) == 0
    assert main(["train", "--run-dir", str(part), "--max-steps", "4", "--save-every", "2", "--resume", *TINY]) == 0
    a, b = _weights(full), _weights(part)
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    first = _weights(tmp_path / "full")
    assert any(k.startswith("matcher.seg_tranformers.1.") for k in first) and any(
        k.startswith("segment.") for k in first
    )
    records = [json.loads(line) for line in (full / "log.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("kind") == "eval"]
    assert evals and {"H_AUC@5px", "precision", "recall", "loss"} <= set(evals[-1])
    matcher = load_pretrained(full / "checkpoints" / "last.pt")  # our checkpoint loads as the authors' matcher
    assert isinstance(matcher, SemaGlue) and matcher.config.n_layers == 2


def test_frozen_segnext_and_loss_terms(tmp_path) -> None:
    from semaglue.train import SemaGlueTask, TrainConfig
    from semcommon.training import load_config

    overrides = [a for a in TINY[TINY.index("--set") :] if a != "--set"]
    task = SemaGlueTask(load_config(TrainConfig, None, overrides))
    model = task.build_model().train()
    assert not model.segment.training and not any(p.requires_grad for p in model.segment.parameters())
    batch = torch.utils.data.default_collate([task.train_dataset()[i] for i in range(2)])
    assert (batch["gt_matches0"] >= 0).sum() > 5 and (batch["gt_matches0"][~batch["mask0"]] == -2).all()
    pred = model(batch, all_layers=True)
    loss, logs = deep_supervision_loss(pred, batch["gt_matches0"], batch["gt_matches1"])
    assert torch.isfinite(loss) and logs["confidence"] > 0
    optimizer = task.build_optimizer(model)
    for _ in range(8):
        optimizer.zero_grad()
        loss, _ = task.training_step(model, batch, 0)
        loss.backward()
        optimizer.step()
    assert task.training_step(model, batch, 0)[0].item() < logs["nll"].item() + logs["confidence"].item()
    scheduler = task.build_scheduler(torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0))
    assert scheduler.lr_lambdas[0](0) == 1.0 and np.isclose(scheduler.lr_lambdas[0](46875 + 23437), 0.1)


def test_train_on_an_image_folder(tmp_path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        image = cv2.resize(rng.integers(0, 255, (12, 16), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"p{i}.png"), image)
    assert main(["train", "--data", str(folder), "--run-dir", str(tmp_path / "r"), "--max-steps", "1", *TINY]) == 0
    assert (tmp_path / "r" / "checkpoints" / "last.pt").is_file()
    assert main(["train", "--data", str(tmp_path / "none"), "--run-dir", str(tmp_path / "r2"), *TINY]) == 1
    assert "image folder not found" in capsys.readouterr().err
