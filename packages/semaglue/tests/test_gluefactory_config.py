"""The authors' glue-factory YAML configs: every key mapped or explicitly ignored, epochs converted to steps, a run
trains from such a file, unknown keys are named; the README's mapping table lists every key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from semaglue.cli import main
from semaglue.gluefactory import IGNORED, PACKAGE_KEYS, TRAINER_KEYS
from semaglue.train import read_config

HOMOGRAPHY = {
    "data": {
        "name": "homographies",
        "data_dir": "revisitop1m",
        "train_size": 150000,
        "val_size": 2000,
        "batch_size": 128,
        "num_workers": 14,
        "homography": {"difficulty": 0.7, "max_angle": 45},
        "photometric": {"name": "lg"},
    },
    "model": {
        "name": "two_view_pipeline",
        "extractor": {
            "name": "gluefactory_nonfree.superpoint",
            "max_num_keypoints": 512,
            "force_num_keypoints": True,
            "detection_threshold": 0.0,
            "nms_radius": 3,
            "trainable": False,
        },
        "ground_truth": {"name": "matchers.homography_matcher", "th_positive": 3, "th_negative": 3},
        "matcher": {"name": "matchers.semaglue", "filter_threshold": 0.1, "flash": False, "checkpointed": True},
    },
    "train": {
        "seed": 0,
        "epochs": 40,
        "log_every_iter": 100,
        "eval_every_iter": 500,
        "lr": 1e-4,
        "lr_schedule": {"start": 20, "type": "exp", "on_epoch": True, "exp_div_10": 10},
        "plot": [5, "gluefactory.visualization.visualize_batch.make_match_figures"],
    },
    "benchmarks": {"hpatches": {"eval": {"estimator": "opencv", "ransac_th": 0.5}}},
}
MEGADEPTH = {
    "data": {
        "name": "megadepth",
        "preprocessing": {"resize": 1024, "side": "long", "square_pad": True},
        "train_split": "train_scenes_clean.txt",
        "train_num_per_scene": 300,
        "val_split": "valid_scenes_clean.txt",
        "val_pairs": "valid_pairs.txt",
        "min_overlap": 0.1,
        "max_overlap": 0.7,
        "num_overlap_bins": 3,
        "read_depth": True,
        "read_image": True,
        "batch_size": 32,
        "num_workers": 14,
    },
    "model": {
        "name": "two_view_pipeline",
        "extractor": {"name": "gluefactory_nonfree.superpoint", "max_num_keypoints": 2048, "nms_radius": 3},
        "matcher": {"name": "matchers.semaglue", "flash": False, "checkpointed": True},
        "ground_truth": {"name": "matchers.depth_matcher", "th_positive": 3, "th_negative": 5, "th_epi": 5},
        "allow_no_extract": True,
    },
    "train": {
        "seed": 0,
        "epochs": 50,
        "lr": 1e-4,
        "lr_schedule": {"start": 30, "type": "exp", "on_epoch": True, "exp_div_10": 10},
        "dataset_callback_fn": "sample_new_items",
        "load_experiment": "superpoint+semaglue_homography",
    },
}


class Args:
    def __init__(self, config: Path, data: str = "synthetic", overrides: tuple[str, ...] = ()) -> None:
        self.config, self.data, self.set = str(config), data, list(overrides)


def test_homography_config_maps_every_key(tmp_path) -> None:
    path = tmp_path / "superpoint+semaglue_homography.yaml"
    path.write_text(yaml.safe_dump(HOMOGRAPHY))
    config, trainer = read_config(Args(path))
    assert config.stage == "homography" and config.data.num_pairs == 150000 and config.val_pairs == 2000
    assert config.data.max_rotation == 45 and config.data.photometric is True
    assert config.features.max_keypoints == 512 and config.features.nms_radius == 3
    assert config.features.keypoint_threshold == 0.0 and config.loss.pos_th == 3 and config.loss.neg_th == 3
    steps_per_epoch = 1172  # ceil(150000 / 128)
    assert config.optim.lr_decay_start == 20 * steps_per_epoch and config.optim.lr_decay_every == 10 * steps_per_epoch
    assert trainer == {
        "batch_size": 128,
        "num_workers": 14,
        "seed": 0,
        "epochs": 40,
        "log_every": 100,
        "eval_every": 500,
        "max_steps": None,
    }
    overridden, _ = read_config(Args(path, overrides=("optim.lr=3e-4",)))
    assert overridden.optim.lr == 3e-4


def test_megadepth_config_counts_scenes_for_the_schedule(tmp_path) -> None:
    path = tmp_path / "superpoint+semaglue_megadepth.yaml"
    path.write_text(yaml.safe_dump(MEGADEPTH))
    (tmp_path / "md").mkdir()
    (tmp_path / "md" / "train_scenes_clean.txt").write_text("0001\n0002\n0003\n")
    config, trainer = read_config(Args(path, str(tmp_path / "md")))
    assert config.stage == "megadepth" and config.megadepth.resize == 1024 and config.megadepth.num_overlap_bins == 3
    assert config.features.max_keypoints == 2048 and config.loss.neg_th == 5
    assert config.optim.lr_decay_start == 30 * 29  # ceil(3 scenes * 300 / 32) = 29 steps per epoch
    assert trainer["epochs"] == 50 and trainer["batch_size"] == 32
    with pytest.raises(ValueError, match="--data MEGADEPTH_ROOT"):
        read_config(Args(path))


def test_unknown_key_is_named(tmp_path, capsys) -> None:
    bad = json.loads(json.dumps(HOMOGRAPHY))
    bad["model"]["matcher"]["depth_confidence"] = 0.95
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    assert main(["train", "--config", str(path), "--run-dir", str(tmp_path / "run")]) == 1
    assert "model.matcher.depth_confidence" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_runs_from_an_authors_config(tmp_path) -> None:
    small = json.loads(json.dumps(HOMOGRAPHY))
    small["data"].update(
        train_size=4, val_size=2, batch_size=2, num_workers=0, homography={"max_angle": 20, "patch_shape": [80, 64]}
    )
    small["model"]["extractor"]["max_num_keypoints"] = 32
    small["model"]["matcher"].update(n_layers=2, descriptor_dim=32, num_heads=2)
    small["train"].update(epochs=1, log_every_iter=1, eval_every_iter=2)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(small))
    run = tmp_path / "run"
    args = ["train", "--config", str(path), "--run-dir", str(run), "--device", "cpu", "--quiet"]
    args += ["--set", "segnext.embed_dims=[8,8,8,16]", "--set", "segnext.depths=[1,1,1,1]"]
    assert main(args) == 0
    saved = json.loads((run / "config.json").read_text())
    text = json.dumps(saved)
    assert '"n_layers": 2' in text and '"max_keypoints": 32' in text and '"width": 80' in text
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert max(r.get("step", 0) for r in records) == 2  # 1 epoch of 4 pairs at batch size 2


def test_readme_maps_every_key() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    missing = [k for k in (*PACKAGE_KEYS, *TRAINER_KEYS, *IGNORED) if f"`{k}`" not in readme]
    assert not missing, f"README flag-mapping table lacks {missing}"
