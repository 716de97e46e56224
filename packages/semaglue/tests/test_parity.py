"""Parity with the authors' code: every ``<target>.case*.npz`` in the semaglue fixture folder."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from semaglue import geometry, metrics
from semaglue.config import SegNextConfig, SemaGlueConfig, SuperPointConfig
from semaglue.model import CDA, SAF, MatchAssignment, SegNext, SemaGlue, SuperPoint, filter_matches, simple_nms
from semcommon.testing import Case, assert_close, case_params, load_weights, run_case

CLOSED_FORM_RTOL = 1e-9  # README: closed-form metrics outputs
ESTIMATOR_RT_ATOL = 1e-6  # README: R/t of the robust estimators
ESTIMATOR_DEG_ATOL = 1e-3  # README: error_R / error_t in degrees


def _module(module: nn.Module, case: Case) -> nn.Module:
    module.load_state_dict(load_weights(case.weights_path), strict=True)
    return module.eval()


def _check(case: Case, actual: dict[str, object], **tolerances: dict[str, float]) -> None:
    assert set(actual) == set(case.outputs), f"outputs {sorted(actual)} != expected {sorted(case.outputs)}"
    for name, value in actual.items():
        assert_close(value, case.outputs[name], name=name, **tolerances.get(name, {"rtol": 1e-4}))


def run_superpoint(case: Case) -> None:
    model = _module(SuperPoint(SuperPointConfig(**case.meta["config"])), case)
    image = case.tensor("image")
    with torch.no_grad():
        scores_dense, descriptors_dense = model.dense(image)
        out = model({"image": image})
    dense = {"atol": 1e-5}
    _check(
        case,
        {
            "scores_dense": scores_dense,
            "scores_nms": simple_nms(scores_dense, model.config.nms_radius),
            "descriptors_dense": descriptors_dense,
            "keypoints": out["keypoints"][0],
            "scores": out["scores"][0],
            "descriptors": out["descriptors"][0],
        },
        scores_dense=dense,
        scores_nms=dense,
        descriptors_dense=dense,
        keypoints={"atol": 0.0},
    )


def run_segnext(case: Case) -> None:
    cfg = case.meta["config"]
    config = SegNextConfig(
        embed_dims=tuple(cfg["embed_dims"]), mlp_ratios=tuple(cfg["ffn_ratios"]), depths=tuple(cfg["depths"])
    )
    model = _module(SegNext(config), case)
    with torch.no_grad():
        stages = model.stages(case.tensor("image"))
        feature_map = model(case.tensor("image"))["feature_map"]
    _check(case, {**{f"stage{i + 1}": s for i, s in enumerate(stages)}, "feature_map": feature_map})


def run_saf(case: Case) -> None:
    model = _module(SAF(256, 4), case)
    with torch.no_grad():
        _check(case, {"desc_out": model(case.tensor("desc"), case.tensor("feature"))})


def run_cda(case: Case) -> None:
    model = _module(CDA(256, 4), case)
    with torch.no_grad():
        _check(case, {"feature_out": model(case.tensor("desc"), case.tensor("feature"))})


def run_assignment(case: Case) -> None:
    model = _module(MatchAssignment(256), case)
    with torch.no_grad():
        scores, sim = model(case.tensor("desc0"), case.tensor("desc1"))
    m0, m1, ms0, ms1 = filter_matches(scores, case.meta["filter_threshold"])
    _check(
        case,
        {
            "scores": scores,
            "sim": sim,
            "matches0": m0,
            "matches1": m1,
            "matching_scores0": ms0,
            "matching_scores1": ms1,
        },
    )


def run_matcher(case: Case) -> None:
    cfg = case.meta["config"]
    config = SemaGlueConfig(
        input_dim=cfg["input_dim"],
        descriptor_dim=cfg["descriptor_dim"],
        n_layers=cfg["n_layers"],
        num_heads=cfg["num_heads"],
        segment_dim=cfg["segment_dim"],
        filter_threshold=cfg["filter_threshold"],
        add_scale_ori=cfg["add_scale_ori"],
    )
    model = _module(SemaGlue(config), case)
    layer0: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = model.seg_tranformers[0].register_forward_hook(lambda _m, _i, out: layer0.append(out))
    data = {name: case.tensor(name) for name in case.inputs}
    with torch.no_grad():
        pred = model(data)
    hook.remove()
    names = ["global_feature0", "global_feature1", "encoding0", "desc0", "desc1", "scores", "sim"]
    names += ["matches0", "matches1", "matching_scores0", "matching_scores1"]
    _check(case, {**{k: pred[k] for k in names}, "layer0_desc0": layer0[0][0], "layer0_desc1": layer0[0][1]})


def run_metrics(case: Case) -> None:
    x = case.inputs
    exact = {"rtol": CLOSED_FORM_RTOL}
    actual: dict[str, object] = {}
    tol: dict[str, dict[str, float]] = {}
    scaled = {}
    for i in (0, 1):
        w, h = (int(v) for v in x[f"orig_size{i}"])
        w_new, h_new = geometry.process_resize(w, h, [1600])
        actual[f"resized_size{i}"] = np.array([w_new, h_new])
        scales = np.array([w / w_new, h / h_new])
        actual[f"scales{i}"] = scales
        scaled[i] = geometry.scale_intrinsics(x[f"K{i}_orig"], scales)
        actual[f"K{i}"] = scaled[i]
    K0, K1, T = scaled[0], scaled[1], x["T_0to1"]
    errors = metrics.compute_epipolar_error(x["mkpts0"], x["mkpts1"], T, K0, K1)
    correct = errors < metrics.EPIPOLAR_THRESHOLD
    actual.update(
        epipolar_errors=errors,
        correct=correct.astype(np.int64),
        num_correct=np.int64(correct.sum()),
        precision=metrics.precision(correct),
        matching_score=metrics.matching_score(correct, int(x["num_keypoints0"])),
    )
    for method, (k0, k1) in {
        "ransac": (x["est_kpts0"], x["est_kpts1"]),
        "magsac": (x["est_kpts0"], x["est_kpts1"]),
        "dlt": (x["dlt_kpts0"], x["dlt_kpts1"]),
    }.items():
        ret = geometry.estimate_pose(k0, k1, K0, K1, thresh=1.0, conf=0.99999, method=method)
        assert ret is not None, f"{method}: pose estimation failed"
        R, t, inliers = ret
        err_t, err_R = metrics.compute_pose_error(T, R, t)
        actual.update(
            {
                f"{method}_R": R,
                f"{method}_t": t,
                f"{method}_inliers": inliers.astype(np.int64),
                f"{method}_error_t": err_t,
                f"{method}_error_R": err_R,
            }
        )
        tol.update({f"{method}_R": {"atol": ESTIMATOR_RT_ATOL}, f"{method}_t": {"atol": ESTIMATOR_RT_ATOL}})
        tol.update(
            {f"{method}_error_t": {"atol": ESTIMATOR_DEG_ATOL}, f"{method}_error_R": {"atol": ESTIMATOR_DEG_ATOL}}
        )
    actual["error_t"], actual["error_R"] = metrics.compute_pose_error(T, x["R_test"], x["t_test"])
    actual["error_t_flipped"], actual["error_R_flipped"] = metrics.compute_pose_error(T, x["R_test"], -x["t_test"])
    actual["auc_5_10_20"] = np.array(metrics.pose_auc(x["auc_errors"], [5, 10, 20]))
    table = metrics.aggregate_results(x["agg_error_t"], x["agg_error_R"], x["agg_precision"], x["agg_matching_score"])
    actual["agg_table"] = np.array([table["AUC@5"], table["AUC@10"], table["AUC@20"], table["Prec"], table["MScore"]])
    # rotated pair: the full per-pair preparation of the evaluation loop
    rot0, rot1 = (int(r) for r in x["rot_pair"])
    shapes = {}
    rot_K = {}
    for i, rot in ((0, rot0), (1, rot1)):
        w, h = (int(v) for v in x[f"rot_orig_size{i}"])
        w_new, h_new = geometry.process_resize(w, h, [1600])
        scales = (w / w_new, h / h_new)
        shape = (h_new, w_new) if rot % 2 == 0 else (w_new, h_new)
        shapes[i] = np.array(shape)
        rot_K[i] = geometry.rotate_intrinsics(geometry.scale_intrinsics(x[f"rot_K{i}_orig"], scales), shape, rot)
    actual["rot_rotated_image_shape0"], actual["rot_rotated_image_shape1"] = shapes[0], shapes[1]
    actual["rot_K0"], actual["rot_K1"] = rot_K[0], rot_K[1]
    actual["rot_T_0to1"] = geometry.rotate_relative_pose(x["rot_T_0to1_orig"], rot0, rot1)
    hn0, wn0 = (int(v) for v in actual["resized_size0"][::-1])
    for rot in range(4):
        actual[f"rotate_pose_inplane_{rot}"] = geometry.rotate_pose_inplane(T, rot)
        if rot:
            shape = (hn0, wn0) if rot % 2 == 0 else (wn0, hn0)
            actual[f"rotate_intrinsics_{rot}"] = geometry.rotate_intrinsics(K0, shape, rot)
    for name in actual:
        tol.setdefault(name, exact)
    _check(case, actual, **tol)


RUNNERS: dict[str, Callable[[Case], None]] = {
    "superpoint": run_superpoint,
    "segnext": run_segnext,
    "saf": run_saf,
    "cda": run_cda,
    "assignment": run_assignment,
    "matcher": run_matcher,
    "metrics": run_metrics,
}


@pytest.mark.parametrize("path", case_params("semaglue"))
def test_case(path) -> None:
    run_case(path, RUNNERS)
