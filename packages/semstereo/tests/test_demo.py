"""``semstereo demo`` runs for real (one data-parallel training step) and writes the demo contract's files and
its trained model."""

from __future__ import annotations

import json

import pytest
import torch

from semstereo import load_pretrained
from semstereo.cli import main
from semstereo.demo import DemoRecipe, _build, _interleave, _train, _training_samples, demo_tiles, score_predictions
from semstereo.predict import predict_pair


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
    # the trained model is saved, loads with load_pretrained and reproduces the model's numbers on the test tiles
    model = load_pretrained(out / "semstereo.pt")
    recipe = DemoRecipe(steps=1)
    tiles = demo_tiles(recipe, "test")
    scores = score_predictions([predict_pair(model, t.left, t.right) for t in tiles], tiles)
    assert abs(scores["EPE"] - metrics["model"]["EPE"]) < 1e-4 and abs(scores["mIoU"] - metrics["model"]["mIoU"]) < 1e-4
    # ... and holds the weights after the data-parallel training step, not the seeded initial ones
    _, initial, _, _ = _build(recipe, torch.device("cpu"))
    trained = model.state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in initial.state_dict().items() if v.is_floating_point())


def test_demo_batch_must_split_over_the_processes() -> None:
    with pytest.raises(ValueError, match="does not split over 3 processes"):
        _train(DemoRecipe(processes=3), torch.device("cpu"), log=False)


def test_worker_shares_of_the_tiles_interleave_back_in_order() -> None:
    recipe = DemoRecipe(train_tiles=7)
    whole = _training_samples(recipe)
    shares = [_training_samples(recipe, (rank, 3)) for rank in range(3)]
    assert [len(share) for share in shares] == [3, 2, 2]
    merged = _interleave(shares)
    assert len(merged) == 7
    for mine, reference in zip(merged, whole, strict=True):
        assert all(torch.equal(mine[key], reference[key]) for key in reference)
