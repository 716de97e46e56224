"""``ssp train`` (both stages, KD), ``ssp save-logits``, the authors' configs and the LR schedule, run for real."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from ssp import HieraUperNet, SSPVideoModel, load_pretrained
from ssp.cli import main
from ssp.config import load_train_config
from ssp.train import cosine_multiplier

TINY = [
    "ours.hiera={'embed_dim': 32, 'stages': [1, 2, 5, 2], 'global_att_blocks': [5, 7]}",
    "ours.upernet_channels=64",
    "data_cfg.crop_size=[64,96]",
    "ours.synthetic_clips=2",
    "ours.synthetic_frames=4",
    "ours.synthetic_size=[64,96]",
    "ours.synthetic_label_every=2",
]
VIDEO = [
    "ours.stage=video",
    "ours.flow=homography",
    "data_cfg.square_crop=true",
    "video_model_cfg.k_registrator_model=identity",
]


def _train(run_dir, steps: int, extra: list[str] = (), flags: list[str] = ()) -> int:
    sets = [arg for item in [*TINY, *extra] for arg in ("--set", item)]
    args = ["train", "--data", "synthetic", *sets, "--run-dir", str(run_dir), "--max-steps", str(steps)]
    return main([*args, "--batch-size", "2", "--device", "cpu", "--quiet", *flags])


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("image") / "run"
    assert _train(run_dir, 4) == 0
    return run_dir


def test_image_stage_trains_and_checkpoint_loads(image_run) -> None:
    records = [json.loads(line) for line in (image_run / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r.get("kind") == "train"]
    assert train and all(math.isfinite(r["ce"]) for r in train)
    assert any("val_mIoU" in r for r in records)
    model = load_pretrained(image_run / "checkpoints" / "last.pt")
    assert isinstance(model, HieraUperNet) and model.config.hiera.embed_dim == 32


def test_resume_ends_with_the_uninterrupted_weights(tmp_path, image_run) -> None:
    assert _train(tmp_path / "resumed", 2) == 0
    assert _train(tmp_path / "resumed", 4, flags=["--resume"]) == 0
    uninterrupted, resumed = _weights(image_run), _weights(tmp_path / "resumed")
    assert uninterrupted.keys() == resumed.keys()
    for key in uninterrupted:
        assert torch.equal(uninterrupted[key], resumed[key]), key


def test_video_stage_ssp_and_kd_ssp(tmp_path, image_run) -> None:
    init = f"ours.image_checkpoint='{image_run / 'checkpoints' / 'last.pt'}'"
    assert _train(tmp_path / "ssp", 2, [*VIDEO, init]) == 0
    model = load_pretrained(tmp_path / "ssp" / "checkpoints" / "last.pt")
    assert isinstance(model, SSPVideoModel) and model.config.const_loss_lb == 0.5
    records = [json.loads(line) for line in (tmp_path / "ssp" / "log.jsonl").read_text().splitlines()]
    assert any("const" in r for r in records)
    teacher_logits = tmp_path / "teacher_logits"
    assert main(["save-logits", "--checkpoint", str(image_run / "checkpoints" / "last.pt"), "--data", "synthetic",
                 "--size", "64", "96", "--out", str(teacher_logits)]) == 0  # fmt: skip
    assert len(list(teacher_logits.glob("*/*.npz"))) == 4 * 8  # synthetic defaults: 4 clips x 8 frames
    kd = [*VIDEO, init, "loss_cfg.loss_func=kldiv", "loss_cfg.temperature=2", "loss_cfg.softmax_on_target=true",
          "video_model_cfg.const_loss_lb=135000", f"data_cfg.logits_folder='{teacher_logits}'",
          "data_cfg.train_skip_frames=2", "ours.synthetic_clips=4", "ours.synthetic_frames=8",
          "ours.synthetic_size=[128,160]"]  # fmt: skip
    assert _train(tmp_path / "kd", 1, kd) == 0
    records = [json.loads(line) for line in (tmp_path / "kd" / "log.jsonl").read_text().splitlines()]
    assert any("kd_seg_loss" in r and math.isfinite(r["kd_seg_loss"]) for r in records)


def test_init_from_an_image_checkpoint_fills_the_video_base_model(tmp_path, image_run) -> None:
    image = image_run / "checkpoints" / "last.pt"
    assert _train(tmp_path / "ssp", 1, [*VIDEO, "training_cfg.lr=0.0"], flags=["--init", str(image)]) == 0
    video, source = _weights(tmp_path / "ssp"), _weights(image_run)
    weights = [k for k in source if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(video[f"base_model.{k}"], source[k]) for k in weights)


def test_no_training_saves_the_initialised_model(tmp_path) -> None:
    assert _train(tmp_path / "untrained", 1, ["no_training=true"]) == 0
    model = load_pretrained(tmp_path / "untrained" / "checkpoints" / "last.pt")
    assert isinstance(model, HieraUperNet)
    assert _train(tmp_path / "untrained", 1, ["no_training=true"]) == 1


def test_authors_yaml_configs_are_accepted(tmp_path) -> None:
    ssp = {
        "save_dir": "checkpoints/video", "pretrained_checkpoint": None, "resume_training": None,
        "data_cfg": {"dataset": "uavid", "path": None, "adjacent_frames": [-1], "crop_size": [736, 1280],
                     "square_crop": True, "data_augmentation": True, "min_vid_len": 0, "labeled_frames_per_vid": None,
                     "train_skip_frames": None, "val_skip_frames": 1, "opencv_homos": False,
                     "opencv_model_type": "akaze"},
        "image_model_cfg": {"image_save_dir": "checkpoints/image", "checkpoint_folder": "base_uavid",
                            "checkpoint_name": "base_uavid", "best_model": False},
        "video_model_cfg": {"model_name": "base", "const_loss_lb": 0.5, "kd_consistent_labels": True,
                            "last_out_loss_lb": 1.0, "pred_mixing_op": "id", "sim_op": "conv",
                            "upsample_before_mixing": True, "upsampling": "bicubic", "k_registrator_model": "disk",
                            "train_flow": True, "flow_iters": 8, "k_interval": 8, "flow_mode": "bilinear",
                            "tcb_module": "ocr"},
        "training_cfg": {"num_epochs": 250, "early_stopping": 200, "batch_size": 4, "num_workers": 4, "lr": 5e-5,
                         "trained_layer": None, "secondary_lr": 1e-4},
        "optim_cfg": {"optimizer": "adamw", "scheduler": "cosine", "weight_decay": 0.05, "momentum": 0.9,
                      "warmup_epochs": 2, "scheduler_power": 0.9, "start_lr": 1e-4, "final_lr": 1e-4},
        "loss_cfg": {"loss_func": "crossentropy", "class_weights": None, "softmax_on_target": False},
    }  # fmt: skip
    path = tmp_path / "ssp_uavid.yaml"
    path.write_text(yaml.safe_dump(ssp))
    config = load_train_config(path)
    assert config.ours.stage == "video" and config.video_model_cfg.const_loss_lb == 0.5
    assert config.image_checkpoint == "checkpoints/image/base_uavid/base_uavid.pth.tar"
    config = load_train_config(path, ["video_model_cfg.const_loss_lb=135000", "loss_cfg.loss_func=kldiv"])
    assert config.video_model_cfg.const_loss_lb == 135000 and config.loss_cfg.loss_func == "kldiv"
    with pytest.raises(ValueError, match="adjacent_frames"):
        load_train_config(path, ["data_cfg.adjacent_frames=[-1,-2,-3]"])
    ssp["data_cfg"]["crop_sise"] = [1, 2]
    path.write_text(yaml.safe_dump(ssp))
    with pytest.raises(ValueError, match="data_cfg.*crop_sise"):
        load_train_config(path)


def test_cosine_schedule_with_warmup() -> None:
    args = {"steps_per_epoch": 10, "num_epochs": 250, "warmup_epochs": 2, "start": 1e-4, "final": 1e-4}
    assert cosine_multiplier(0, **args) == pytest.approx(1e-4)
    assert cosine_multiplier(10, **args) == pytest.approx(0.5 + 0.5e-4)
    assert cosine_multiplier(20, **args) == pytest.approx(1.0)
    stop = cosine_multiplier(200 * 10, **args)
    assert 1e-4 < stop < 0.2 and cosine_multiplier(2500, **args) == pytest.approx(1e-4)


def test_train_refuses_bad_input(tmp_path, capsys) -> None:
    args = ["train", "--run-dir", str(tmp_path / "r"), "--max-steps", "1", "--quiet"]
    assert main([*args, "--data", str(tmp_path / "absent")]) == 1
    assert "dataset folder not found" in capsys.readouterr().err
    assert main([*args, "--set", "ours.stage=video"]) == 1
    assert "raft_weights" in capsys.readouterr().err
    assert main([*args, "--set", "training_cfg.lrr=1"]) == 1
    assert "lrr" in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoints").exists()
