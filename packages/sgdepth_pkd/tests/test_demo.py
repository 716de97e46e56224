"""The demo's recipe: disparity heads out of sigmoid saturation, ground-truth or learned camera motion."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from sgdepth_pkd.demo import DemoConfig, DemoTask, _task_config

TINY = DemoConfig(
    height=64, width=64, train_sequences=1, frames=3, batch_size=1, decoder_channels=(16, 16, 8, 8, 8),
)  # fmt: skip


def _step(demo: DemoConfig) -> tuple[torch.nn.Module, dict, torch.Tensor]:
    task = DemoTask(_task_config(demo, "sgdepth", None), demo)
    torch.manual_seed(0)
    model = task.build_model()
    batch = next(iter(DataLoader(task.train_dataset(), batch_size=1)))
    loss, _ = task.training_step(model, batch, 0)
    loss.backward()
    return model, batch, loss


def test_disparity_heads_start_at_the_demo_bias_and_the_depth_range_is_the_scene_range() -> None:
    demo = TINY
    task = DemoTask(_task_config(demo, "sgdepth", None), demo)
    model = task.build_model()
    assert all(bool((conv.bias.detach() == demo.head_bias).all()) for conv in model.depth.multires.convs)
    with torch.no_grad():
        disp = model.predict_disparity(torch.zeros(1, 3, 64, 64))
    assert 0.05 < float(disp.mean()) < 0.95  # not saturated (the paper's +5 bias starts at 0.993)
    assert (model.config.min_depth, model.config.max_depth) == (demo.min_depth, demo.max_depth)
    assert (task.config.loss.min_depth, task.config.loss.max_depth) == (demo.min_depth, demo.max_depth)


def test_ground_truth_pose_feeds_the_view_synthesis_and_the_pose_net_stays_unused() -> None:
    model, batch, loss = _step(TINY)
    assert torch.isfinite(loss)
    frames = {("color_aug", f, 0): batch["depth"]["color_aug", f, 0] for f in (0, -1, 1)}
    out = model([{**frames, "purposes": ["depth"]}])[0]
    for f in (-1, 1):
        assert torch.equal(out["cam_T_cam", 0, f][:, 0, 0], batch["depth"]["pose_gt", f])
    assert all(p.grad is None for p in model.pose.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.depth.parameters())


def test_learned_pose_trains_the_pose_net_with_its_own_learning_rate() -> None:
    demo = DemoConfig(**{**TINY.__dict__, "pose": "learned", "pose_learning_rate": 3e-3})
    model, _, _ = _step(demo)
    assert model.given_poses is None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.pose.parameters())
    task = DemoTask(_task_config(demo, "sgdepth", None), demo)
    groups = task.build_optimizer(model).param_groups
    assert [g["lr"] for g in groups] == [demo.learning_rate, 3e-3]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.pose.parameters()}


def test_unknown_pose_source_is_rejected() -> None:
    with pytest.raises(ValueError, match="pose"):
        DemoConfig(pose="oracle")
