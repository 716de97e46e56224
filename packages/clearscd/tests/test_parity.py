"""Parity with the authors' code: every ``<target>.case*.npz`` of the clearscd fixtures (README tolerances)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
import torch

from clearscd import SEGEvaluator, bcd_loss, bce_with_ignore, bscc_loss, dice_loss_binary, seg_ce
from clearscd.config import ClearSCDConfig
from clearscd.metrics import BCDEvaluator, SCDTestMetrics
from clearscd.model import ChangeDetectionHead, ClearSCD
from clearscd.model.sacl import (
    enqueue_keys,
    global_similarity_loss,
    local_infonce_loss,
    region_queries_hard,
    region_queries_mean,
)
from semcommon.testing import Case, assert_close, case_params, load_weights, run_case

NUM_CLASSES = 9


def _float(value: torch.Tensor | float) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value, dtype=np.float32)


def _scalar1(value: torch.Tensor) -> np.ndarray:
    """Losses are compared as shape [1], the fixtures' storage shape."""
    return _float(value).reshape(1)


def _assert_grad(actual: torch.Tensor | None, expected: np.ndarray, name: str) -> None:
    """Gradients are tiny: compare relative to their own scale (README), so zero/detached gradients fail."""
    assert actual is not None, f"{name}: no gradient"
    scale = float(np.max(np.abs(expected)))
    assert scale > 0, f"{name}: fixture gradient is all zero"
    assert_close(actual, expected, atol=1e-4 * scale, name=name)


def _weights_path(case: Case) -> str:
    """``<target>.weights.npz``, or the file the case's ``meta["weights"]`` names (targets sharing weights)."""
    named = case.meta.get("weights")
    if isinstance(named, str) and named.endswith(".npz"):
        return str(case.path.with_name(named.split()[0]))
    return str(case.weights_path)


@cache
def _weights(path: str) -> dict[str, torch.Tensor]:
    return load_weights(path)


def _full_model(case: Case) -> ClearSCD:
    config = ClearSCDConfig(size=int(case.meta.get("args.size", 512)))
    model = ClearSCD(config)
    model.load_state_dict({k: v.clone() for k, v in _weights(_weights_path(case)).items()})
    return model.eval()


def run_clearscd_full(case: Case) -> None:
    model = _full_model(case)
    imgs = case.tensor("imgs")
    with torch.no_grad():
        mid = model.forward_intermediates(imgs)
        out = model(imgs, test=True)
    for level in range(1, 6):
        assert_close(mid["enc_A"][level], case.outputs[f"enc_A.{level}"], name=f"enc_A.{level}")
    for name in ("dec_A", "dec_B", "seglow_A", "seglow_B", "bcd_low"):
        assert_close(mid[name], case.outputs[name], name=name)
    for name in ("seg_A", "seg_B", "BCD"):
        assert_close(out[name], case.outputs[name], name=name)


def run_clearscd_full_train_losses(case: Case) -> None:
    model = _full_model(case)
    out = model(
        case.tensor("imgs"), case.tensor("label_A"), case.tensor("label_B"), case.tensor("label_BCD"),
        test=False, warmup=False,
    )  # fmt: skip
    for name in ("contrast_loss", "contrast_loss_local", "contrast_loss_global", "bscc_loss"):
        assert_close(_scalar1(out[name]), case.outputs[name], atol=1e-5, name=name)
    for name in ("seg_A", "seg_B", "BCD"):
        assert_close(out[name], case.outputs[name], name=name)


def run_cvaps_head(case: Case) -> None:
    head = ChangeDetectionHead(num_segclass=9, num_convs=3, upsampling=4, fusion="diff")
    head.load_state_dict(_weights(_weights_path(case)))
    head.eval()
    fused = torch.abs(case.tensor("logits_A_low") - case.tensor("logits_B_low"))
    assert_close(fused, case.inputs["x"], name="x")
    with torch.no_grad():
        low, up = head(case.tensor("x"), with_bscc=True)
    assert_close(low, case.outputs["bcd_low"], name="bcd_low")
    assert_close(up, case.outputs["BCD"], name="BCD")


def run_bscc_loss(case: Case) -> None:
    margin, eps, weight = case.meta["margin"], case.meta["eps"], case.meta["bscc_weight"]
    pred = case.tensor("pred").requires_grad_(True)
    tar = case.tensor("tar").requires_grad_(True)
    loss = bscc_loss(pred, tar, case.tensor("tar_true"), margin=margin, eps=eps)
    loss.backward()
    assert_close(_scalar1(loss), case.outputs["loss"], name="loss")
    _assert_grad(pred.grad, case.outputs["grad_pred"], "grad_pred")
    _assert_grad(tar.grad, case.outputs["grad_tar"], "grad_tar")

    logits = case.tensor("bcd_low_logits").requires_grad_(True)
    prob = torch.sigmoid(logits)
    weighted = weight * bscc_loss(case.tensor("pred"), prob, torch.round(prob), margin=margin, eps=eps)
    weighted.backward()
    assert_close(_scalar1(weighted), case.outputs["loss_weighted_from_logits"], name="loss_weighted_from_logits")
    _assert_grad(logits.grad, case.outputs["grad_bcd_low_logits"], "grad_bcd_low_logits")


def run_sacl_local(case: Case) -> None:
    meta = case.meta
    loss = local_infonce_loss(
        case.tensor("proj_feat_A"), case.tensor("proj_feat_B"), case.tensor("seg_A"), case.tensor("seg_B"),
        case.tensor("label_A"), case.tensor("label_B"), num_classes=meta["num_segclass"],
        temperature=meta["temperature"], weight=meta["contrast_weight"], sample_num=meta["sample_num"],
    )  # fmt: skip
    assert_close(_scalar1(loss), case.outputs["loss"], name="loss")


def _queues(state: dict[str, torch.Tensor], date: str) -> list[torch.Tensor]:
    return [state[f"queue_{date}{c}"].clone() for c in range(NUM_CLASSES)]


def run_sacl_global(case: Case) -> None:
    state = _weights(_weights_path(case))
    queues_A, queues_B = _queues(state, "A"), _queues(state, "B")
    t = case.tensor
    hard_A, vals_A = region_queries_hard(t("proj_feat_A"), t("logits_A"), t("label_A"), NUM_CLASSES)
    hard_B, vals_B = region_queries_hard(t("proj_feat_B"), t("logits_B"), t("label_B"), NUM_CLASSES)
    mean_A, mvals_A = region_queries_mean(t("proj_feat_A"), t("label_A"), NUM_CLASSES)
    mean_B, mvals_B = region_queries_mean(t("proj_feat_B"), t("label_B"), NUM_CLASSES)
    assert_close(vals_A, case.outputs["vals_A"], name="vals_A")
    assert_close(mvals_A, case.outputs["vals_A"], name="vals_A (mean)")
    assert_close(hard_A, case.outputs["queries_hard_A"], name="queries_hard_A")
    assert_close(mean_A, case.outputs["queries_mean_A"], name="queries_mean_A")
    loss_hard = global_similarity_loss(hard_A, vals_A, hard_B, vals_B, queues_A, queues_B)
    loss_mean = global_similarity_loss(mean_A, mvals_A, mean_B, mvals_B, queues_A, queues_B)
    assert_close(_scalar1(loss_hard), case.outputs["loss_hard"], name="loss_hard")
    assert_close(_scalar1(loss_mean), case.outputs["loss_mean"], name="loss_mean")


def run_sacl_enqueue(case: Case) -> None:
    state = load_weights(case.path.with_name(case.meta["queues_before"]))
    queues = _queues(state, "A")
    before = [q.clone() for q in queues]
    pointers = [case.tensor(f"ptr_before.ptr_A{c}").clone() for c in range(NUM_CLASSES)]
    enqueue_keys(queues, pointers, case.tensor("keys"), case.tensor("class_vals"), case.meta["enqueue_len"])
    for c in range(NUM_CLASSES):
        assert_close(pointers[c], case.outputs[f"ptr_A{c}"], name=f"ptr_A{c}")
        expected = case.outputs.get(f"queue_A{c}", before[c].numpy())
        assert_close(queues[c], expected, name=f"queue_A{c}")
    assert any(f"queue_A{c}" in case.outputs for c in range(NUM_CLASSES)), "case changes no queue"


def run_losses(case: Case) -> None:
    logits, target = case.tensor("bcd_logits"), case.tensor("bcd_target")
    assert_close(_scalar1(bce_with_ignore(logits, target)), case.outputs["bce"], name="bce")
    assert_close(_scalar1(dice_loss_binary(logits, target)), case.outputs["dice"], name="dice")
    assert_close(_scalar1(bcd_loss(logits, target)), case.outputs["bcd_loss"], name="bcd_loss")
    ce = seg_ce(case.tensor("seg_logits"), case.tensor("seg_target"), ignore_index=NUM_CLASSES)
    assert_close(_scalar1(ce), case.outputs["seg_ce"], name="seg_ce")


def run_evaluators(case: Case) -> None:
    seg, bcd = SEGEvaluator(NUM_CLASSES), BCDEvaluator()
    for i in range(case.inputs["seg_gt"].shape[0]):
        seg.add_batch(case.inputs["seg_gt"][i], case.inputs["seg_pred"][i])
        bcd.add_batch(case.inputs["bcd_gt"][i], case.inputs["bcd_pred"][i])
    actual = {
        "seg_confusion": seg.confusion_matrix, "seg_OA": seg.overall_accuracy(),
        "seg_mIoU": seg.mean_intersection_over_union(), "seg_IoU": seg.intersection_over_union(),
        "seg_F1": seg.f1_score(), "seg_mF1": seg.f1_score().mean(), "seg_precision": seg.precision(),
        "seg_recall": seg.recall(), "bcd_confusion": bcd.confusion_matrix, "bcd_OA": bcd.overall_accuracy(),
        "bcd_IoU": bcd.intersection_over_union(), "bcd_F1": bcd.f1_score(), "bcd_precision": bcd.precision(),
        "bcd_recall": bcd.recall(),
    }  # fmt: skip
    assert set(case.outputs) <= set(actual), f"unhandled outputs {set(case.outputs) - set(actual)}"
    for name, expected in case.outputs.items():
        # Rounded to 5 decimals by the original: must match to float32 storage precision.
        assert_close(_float(actual[name]), expected, atol=1e-6, name=name)


def run_scd_test_metrics(case: Case) -> None:
    names = ("labels_A", "labels_B", "labels_BCD", "preds_A", "preds_B", "change_mask")
    metrics = SCDTestMetrics(NUM_CLASSES, protocol="authors", dataset="HiUCD")
    total = case.inputs["labels_A"].shape[0]
    for start in range(0, total, 16):  # test.py's batches of 16
        metrics.update(*(case.inputs[n][start : start + 16] for n in names))
    result = metrics.compute()
    assert list(result.summary) == case.meta["res_dict_keys"]
    for name, expected in case.outputs.items():
        if name.startswith("raw."):
            assert_close(_float(result.raw[name[4:]]), expected, atol=1e-6, name=name)
        else:
            assert _float(result.summary[name]) == expected, f"{name}: {result.summary[name]} != {expected}"


RUNNERS: dict[str, Callable[[Case], None]] = {
    "clearscd_full": run_clearscd_full,
    "clearscd_full_train_losses": run_clearscd_full_train_losses,
    "cvaps_head": run_cvaps_head,
    "bscc_loss": run_bscc_loss,
    "sacl_local": run_sacl_local,
    "sacl_global": run_sacl_global,
    "sacl_enqueue": run_sacl_enqueue,
    "losses": run_losses,
    "evaluators": run_evaluators,
    "scd_test_metrics": run_scd_test_metrics,
}


@pytest.mark.parametrize("path", case_params("clearscd"))
def test_case(path) -> None:
    run_case(path, RUNNERS)
