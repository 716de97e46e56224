"""Parity with the authors' code: every ``<target>.case*.npz`` in the fixture folder, dispatched on its target."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from semcommon.testing import Case, assert_close, case_params, load_weights, run_case
from ssp.config import HieraConfig, ImageModelConfig, VideoModelConfig
from ssp.losses import consistency_loss, consistent_teacher_logits, kd_loss, kl_div_soft_label, ssp_loss
from ssp.metrics import (
    class_iou,
    convert_labels,
    mean_iou,
    temporal_consistency,
    temporal_consistency_forwardbackward,
)
from ssp.model import RAFT, ConstantSimBlock, ConvSimBlock, CosSimBlock, HieraUperNet, SSPVideoModel

REDUCED_IMAGE = ImageModelConfig(
    hiera=HieraConfig(embed_dim=32, num_heads=1, stages=(1, 2, 5, 2), global_att_blocks=(5, 7)), upernet_channels=64
)


def _check(case: Case, actual: dict[str, torch.Tensor], rtol: float) -> None:
    assert set(actual) == set(case.outputs), f"outputs produced {sorted(actual)} != expected {sorted(case.outputs)}"
    for name, value in actual.items():
        assert_close(value, case.outputs[name], rtol=rtol, name=name)


def run_image_model_reduced(case: Case) -> None:
    model = HieraUperNet(REDUCED_IMAGE).eval()
    model.load_state_dict(load_weights(case.weights_path))
    image = case.tensor("image")
    with torch.no_grad():
        feats = model.encoder(image)
        actual = {f"feat{i}": f for i, f in enumerate(feats)}
        actual["head_logits"] = model.decoder(feats)
        actual["head_lastfeat"] = model.decoder_lastfeat(feats)
        actual["logits"] = model(image)
    _check(case, actual, 1e-4)


def run_sim_conv(case: Case) -> None:
    block = ConvSimBlock(embed_dim=case.inputs["featmap"].shape[1]).eval()
    block.load_state_dict(load_weights(case.weights_path))
    last, cur = case.tensor("last_featmap_warped"), case.tensor("featmap")
    size = tuple(int(v) for v in case.inputs["size"])
    with torch.no_grad():
        actual = {"sim": block(last, cur, size)}
        actual["sim_trainmode"] = block.train()(last, cur, size)
        actual["sim_cossim"] = CosSimBlock()(last, cur, size)
        actual["sim_constant0"] = ConstantSimBlock(0.0)(last, cur, size)
        actual["sim_reuse1"] = ConstantSimBlock(1.0)(last, cur, size)
    _check(case, actual, 1e-5)


def run_ssp_reduced(case: Case) -> None:
    model = SSPVideoModel(VideoModelConfig(k_registrator_model=None), REDUCED_IMAGE, with_flow_model=False).eval()
    image_weights = load_weights(case.weights_path.with_name("image_model_reduced.weights.npz"))
    state = {f"base_model.{k}": v for k, v in image_weights.items()} | load_weights(case.weights_path)
    model.load_state_dict(state)
    with torch.no_grad():
        result = model(case.tensor("frames"), case.tensor("last_frames"), homos=case.tensor("homos"))
    _check(case, result, 1e-4)


def run_const_loss(case: Case) -> None:
    t = case.tensor
    const = consistency_loss(t("out"), t("last_out"), t("frame"), t("last_frame"), t("flow"))
    total = ssp_loss(t("out"), t("last_out"), t("labels"), t("frame"), t("last_frame"), t("flow"), const_loss_lb=0.5)
    actual = {
        "const_loss": const["loss"],
        "occlusion_mask": const["occlusion_mask"],
        "warped_last_out": const["warped_last_out"],
        "ce_loss": total["ce"],
        "ssp_total_loss": total["total"],
    }
    _check(case, actual, 1e-5)


def run_kd_loss(case: Case) -> None:
    t = case.tensor
    teacher = consistent_teacher_logits(
        t("teacher_logits"), t("teacher_last_logits"), t("flow_last2current"), t("flow_current2last")
    )
    kd = kd_loss(t("out"), t("last_out"), teacher["teacher_logits"], teacher["teacher_last_logits"], temperature=2.0)
    actual = {
        "kl_raw": kl_div_soft_label(t("out"), t("teacher_logits"), temperature=2.0),
        "teacher_logits_consistent": teacher["teacher_logits"],
        "teacher_last_logits_consistent": teacher["teacher_last_logits"],
        "occlusion_mask": teacher["occlusion_mask"],
        "kl_current": kd["kl_current"],
        "kl_last": kd["kl_last"],
        "kd_seg_loss": kd["total"],
    }
    _check(case, actual, 1e-5)


def run_metrics(case: Case) -> None:
    t = case.tensor
    n = int(case.meta["n_classes"])
    flows = t("video_flows")
    calls: list[int] = []

    def forward_flows(image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        calls.append(0)
        return flows[len(calls) - 1 : len(calls)]

    def forward_backward_flows(image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        calls.append(0)
        pair, second = divmod(len(calls) - 1, 2)
        return -flows[pair : pair + 1] + 0.1 if second else flows[pair : pair + 1]

    actual = {
        "miou": mean_iou(t("preds"), t("labels"), n),
        "class_iou": class_iou(t("preds"), t("labels"), n),
        "miou_first_image": mean_iou(t("preds")[0], t("labels")[0], n),
        "tc": temporal_consistency(t("video_preds"), t("video_frames"), forward_flows, n),
    }
    calls.clear()
    actual["tc_forwardbackward"] = temporal_consistency_forwardbackward(
        t("video_preds"), t("video_frames"), forward_backward_flows, n
    )
    actual["labels_uavid"] = convert_labels(t("raw_mask_uavid"), "uavid")
    actual["labels_ruralscapes"] = convert_labels(t("raw_mask_ruralscapes"), "ruralscapes")
    _check(case, actual, 1e-6)


def run_raft(case: Case) -> None:
    model = RAFT().eval()
    model.load_state_dict(load_weights(case.weights_path))
    iters = int(case.meta["iters"])
    with torch.no_grad():
        flow_low, flow_up = model(case.tensor("image1"), case.tensor("image2"), iters=iters, test_mode=True)
        predictions = torch.stack(model(case.tensor("image1"), case.tensor("image2"), iters=iters))
    _check(case, {"flow_low": flow_low, "flow_up": flow_up, "flow_predictions": predictions}, 1e-4)


RUNNERS: dict[str, Callable[[Case], None]] = {
    "image_model_reduced": run_image_model_reduced,
    "sim_conv": run_sim_conv,
    "ssp_reduced": run_ssp_reduced,
    "const_loss": run_const_loss,
    "kd_loss": run_kd_loss,
    "metrics": run_metrics,
    "raft": run_raft,
}


@pytest.mark.parametrize("path", case_params("ssp"))
def test_case(path) -> None:
    run_case(path, RUNNERS)
