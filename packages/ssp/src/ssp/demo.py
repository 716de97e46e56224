"""``ssp demo``: SSP against the per-frame image model on synthetic UAV video, trained from scratch on the CPU.

Data: synthetic clips (moving, slowly rotating camera over textured aerial scenes, sensor noise and flicker);
training clips have labels on every ``label_every``-th frame, held-out clips (new scenes) are labelled on every
frame. Model: a reduced Hiera + UperNet (``embed_dim`` 32, stages 1-2-5-2, UperNet 64 channels; the paper's
Hiera-S has 96 / 1-2-11-2 / 256) and the paper's SSP wrapper (conv similarity block). Recipe: stage 1 trains the
image model (cross-entropy); stage 2 trains SSP from it (CE + 0.5 L_tc, the consistency loss on the exact flow of
the known camera motion instead of RAFT, for which no weights can be downloaded here); the baseline — the same
image model, per frame — continues stage 1 for twice the stage-2 steps (a video step processes two frames, so both
get about the same training time). Evaluation on the held-out clips: mIoU over every frame and TC (the paper's
temporal consistency, flow from the known homographies); SSP registers consecutive frames with OpenCV AKAZE, as
``ssp predict`` does (failures fall back to the identity and are counted). Primary metric: TC.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from semcommon.runtime import resolve_device, seed_everything
from ssp.config import HieraConfig, OursCfg, TrainConfig, VideoModelConfig
from ssp.data import SyntheticClips, SyntheticConfig
from ssp.evaluate import evaluate_model
from ssp.train import SSPTrainTask

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """The demo recipe (data size, width, steps, LR)."""

    size: tuple[int, int] = (96, 128)
    train_clips: int = 12
    test_clips: int = 4
    frames: int = 8
    label_every: int = 2
    embed_dim: int = 32
    stages: tuple[int, ...] = (1, 2, 5, 2)
    global_att_blocks: tuple[int, ...] = (5, 7)
    upernet_channels: int = 64
    batch_size: int = 4
    image_steps: int = 380
    video_steps: int = 80
    lr: float = 1e-3
    video_lr: float = 1e-4
    const_loss_lb: float = 0.5
    registration: str = "sift"
    seed: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def _train_config(demo: DemoConfig, stage: str, lr: float, steps: int) -> TrainConfig:
    config = TrainConfig(
        video_model_cfg=VideoModelConfig(k_registrator_model="identity", const_loss_lb=demo.const_loss_lb),
        ours=OursCfg(
            stage=stage,
            flow="homography",
            hiera=HieraConfig(embed_dim=demo.embed_dim, stages=demo.stages, global_att_blocks=demo.global_att_blocks),
            upernet_channels=demo.upernet_channels,
            synthetic_clips=demo.train_clips,
            synthetic_frames=demo.frames,
            synthetic_size=list(demo.size),
            synthetic_label_every=demo.label_every,
        ),
    )
    config.data_cfg.crop_size = list(demo.size)
    config.data_cfg.square_crop = False
    config.training_cfg.lr = lr
    config.training_cfg.num_epochs = 1
    config.optim_cfg.warmup_epochs = 0
    config.optim_cfg.final_lr = 0.05
    config.training_cfg.num_epochs = max(steps, 1)
    return config


def _loop(task: SSPTrainTask, model: torch.nn.Module, steps: int, device: torch.device, seed: int) -> list[float]:
    """Plain training loop over the task's dataset with its optimizer, schedule and ``training_step``."""
    optimizer = task.build_optimizer(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * s / steps))
    )
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(task.train_dataset(), batch_size=task.batch_size, shuffle=True, drop_last=True,
                        generator=generator)  # fmt: skip
    losses, step = [], 0
    model.train()
    while step < steps:
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss, _ = task.training_step(model, batch, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            step += 1
            if step >= steps:
                break
    return losses


def _figure(source: SyntheticClips, predictions: dict[str, dict], path: Path) -> None:
    from semcommon.viz import label_to_rgb, save_png, side_by_side

    colors = np.array(source.info.train_id_colors, np.uint8)
    clip = source.clips[0]
    rows = []
    for t in (0, source.config.frames_per_clip // 2, source.config.frames_per_clip - 1):
        panels = [source.read_frame(clip, t), label_to_rgb(source.full_label(clip, t), colors)]
        panels += [label_to_rgb(predictions[name][clip][t].numpy(), colors) for name in ("model", "baseline")]
        rows.append(side_by_side(panels))
    save_png(path, np.concatenate(rows, axis=0))


def run_demo(device: str = "cpu", out: str | Path = "runs/demo-ssp", config: DemoConfig | None = None,
             verbose: bool = True) -> dict[str, object]:  # fmt: skip
    """Train SSP and the per-frame baseline, evaluate both, write ``demo.png``, ``metrics.json`` and the trained SSP
    model ``ssp.pt`` (our checkpoint format; ``bench/bench_speed.py --accuracy`` scores the approximate modes with
    it) into ``out``."""
    demo = config or DemoConfig()
    start, cpu_start = time.perf_counter(), time.process_time()
    log = print if verbose else (lambda *a, **k: None)
    target = resolve_device(device)
    seed_everything(demo.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    image_task = SSPTrainTask(_train_config(demo, "image", demo.lr, demo.image_steps), "synthetic", demo.batch_size)
    image_model = image_task.build_model().to(target)
    log(f"stage 1: image model ({sum(p.numel() for p in image_model.parameters()):,} parameters), "
        f"{demo.image_steps} steps on {len(image_task.train_dataset())} labelled frames")  # fmt: skip
    _loop(image_task, image_model, demo.image_steps, target, demo.seed)
    stage1 = {k: v.clone() for k, v in image_model.state_dict().items()}

    video_task = SSPTrainTask(_train_config(demo, "video", demo.video_lr, demo.video_steps), "synthetic",
                              demo.batch_size)  # fmt: skip
    video_model = video_task.build_model().to(target)
    video_model.base_model.load_state_dict(stage1)
    log(f"stage 2: SSP, {demo.video_steps} steps on {len(video_task.train_dataset())} frame pairs")
    _loop(video_task, video_model, demo.video_steps, target, demo.seed + 1)

    baseline_steps = demo.video_steps
    baseline_task = SSPTrainTask(_train_config(demo, "image", demo.video_lr, baseline_steps), "synthetic",
                                 demo.batch_size)  # fmt: skip
    log(f"baseline: the image model continues for {baseline_steps} steps")
    _loop(baseline_task, image_model, baseline_steps, target, demo.seed + 1)

    test = SyntheticClips(SyntheticConfig(num_clips=demo.test_clips, frames_per_clip=demo.frames, size=demo.size,
                                          label_every=1, seed=demo.seed + 1000))  # fmt: skip
    results = {}
    for name, model, registration in (("model", video_model, demo.registration), ("baseline", image_model, "given")):
        results[name] = evaluate_model(model.eval(), test, demo.size, registration, "homography",
                                       keep_predictions=True, show_progress=False)  # fmt: skip
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    def summary(metrics: dict[str, object]) -> dict[str, float]:
        return {"TC": metrics["TC"], "mIoU": metrics["mIoU"], "TC_forward_backward": metrics["TC_forward_backward"]}

    payload = {
        "model": summary(results["model"]["metrics"]),
        "baseline": summary(results["baseline"]["metrics"]),
        "primary": {"metric": "TC", "higher_is_better": True},
        "config": {
            **asdict(demo),
            "model": "SSP (reduced Hiera 32 / 1-2-5-2 + UperNet 64, conv similarity), from scratch",
            "baseline": "the same image model per frame (stage 1 continued for the SSP steps, same LR)",
            "registration_failures": results["model"]["metrics"]["registration_failures"],
            "device": str(target),
            "threads": torch.get_num_threads(),
            "cpu_seconds": round(cpu_seconds, 1),
        },
        "seconds": round(seconds, 1),
    }
    from semcommon.checkpoint import save_checkpoint
    from semcommon.training import to_plain

    save_checkpoint({"model": video_model.state_dict(), "config": to_plain(video_task.config),
                     "step": demo.video_steps}, out / "ssp.pt")  # fmt: skip
    tmp = out / ".metrics.json.partial"
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, out / "metrics.json")
    _figure(test, {name: r["predictions"] for name, r in results.items()}, out / "demo.png")
    log(f"{'':10s} {'TC':>8s} {'mIoU':>8s} {'TC fwd-bwd':>11s}")
    for name in ("model", "baseline"):
        row = payload[name]
        log(f"{name:10s} {row['TC']:8.4f} {row['mIoU']:8.4f} {row['TC_forward_backward']:11.4f}")
    log(f"primary metric TC (higher is better); {seconds:.0f} s wall, {cpu_seconds:.0f} s CPU on {target}; wrote {out / 'metrics.json'}, "
        f"{out / 'demo.png'}")  # fmt: skip
    return payload
