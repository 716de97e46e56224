"""``semaglue match-pairs`` end to end on pairs whose images and cached matches are synthesised from known geometry."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from semaglue.cli import main
from semaglue.config import SegNextConfig, SemaGlueConfig
from semaglue.model import SegNext, SemaGlue, SuperPoint
from semcommon.testing import repo_root

W, H = 640, 480  # original image size written by the test
RESIZE = 320  # --resize: keypoints live in the half-size images
OUTLIER_SHIFT = 40.0  # px, perpendicular to the epipolar line (far above the 5e-4 threshold)


def _rotation(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return cv2.Rodrigues((axis * np.deg2rad(angle_deg)).reshape(3, 1))[0]


def _project(K: np.ndarray, X: np.ndarray) -> np.ndarray:
    x = X @ K.T
    return x[:, :2] / x[:, 2:]


class Scene:
    """Two cameras looking at random 3D points; keypoints are given in the resized (and rotated) images."""

    def __init__(self, seed: int, rot0: int = 0, n_in: int = 60, n_out: int = 12, n_unmatched: int = 20):
        rng = np.random.default_rng(seed)
        self.K0 = np.array([[500.0, 0, (W - 1) / 2], [0, 500.0, (H - 1) / 2], [0, 0, 1]])
        self.K1 = np.array([[520.0, 0, (W - 1) / 2], [0, 520.0, (H - 1) / 2 + 3], [0, 0, 1]])
        R = _rotation(rng.normal(size=3), 8.0)
        t = np.array([1.0, 0.1, 0.05]) + rng.normal(scale=0.05, size=3)
        self.T = np.eye(4)
        self.T[:3, :3], self.T[:3, 3] = R, t
        X = np.c_[rng.uniform(-3, 3, n_in), rng.uniform(-2, 2, n_in), rng.uniform(6, 10, n_in)]
        p0, p1 = _project(self.K0, X), _project(self.K1, X @ R.T + t)
        # outliers: true points moved perpendicular to their epipolar line in image 1
        F = np.linalg.inv(self.K1).T @ _skew(t) @ R @ np.linalg.inv(self.K0)
        lines = np.c_[p0[:n_out], np.ones(n_out)] @ F.T
        normals = lines[:, :2] / np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
        p1_out = p1[:n_out] + OUTLIER_SHIFT * normals
        unmatched = np.c_[rng.uniform(0, W, n_unmatched), rng.uniform(0, H, n_unmatched)]
        kpts0 = np.r_[p0, p0[:n_out], unmatched] / 2  # resized coordinates
        kpts1 = np.r_[p1, p1_out] / 2
        matches = np.r_[np.arange(n_in), n_in + np.arange(n_out), -np.ones(n_unmatched, int)]
        if rot0 == 1:  # np.rot90(k=1): (x, y) -> (y, w - 1 - x) in the resized image
            kpts0 = np.c_[kpts0[:, 1], W / 2 - 1 - kpts0[:, 0]]
        self.rot0 = rot0
        self.matches = {
            "keypoints0": kpts0.astype(np.float32),
            "keypoints1": kpts1.astype(np.float32),
            "matches": matches.astype(np.int64),
            "match_confidence": np.where(matches > -1, 0.9, 0.0).astype(np.float32),
        }
        self.precision = n_in / (n_in + n_out)
        self.matching_score = n_in / (n_in + n_out + n_unmatched)

    def line(self, name0: str, name1: str) -> str:
        values = [*self.K0.ravel(), *self.K1.ravel(), *self.T.ravel()]
        return " ".join([name0, name1, str(self.rot0), "0", *(repr(float(v)) for v in values)])


def _skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])


def _write_image(path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 255, (H // 16, W // 16), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(path), image)


def _make_dataset(tmp_path, n_out: int = 12):
    """Three pairs: two with correct geometry (one with EXIF rotation), one whose matches are too few for a pose."""
    images, out = tmp_path / "images", tmp_path / "dump"
    images.mkdir()
    out.mkdir()
    scenes = [Scene(0, n_out=n_out), Scene(1, rot0=1, n_out=n_out), Scene(2, n_in=3, n_out=0)]
    lines = []
    for i, scene in enumerate(scenes):
        name0, name1 = f"scene/a{i}.jpg", f"scene/b{i}.png"
        (images / "scene").mkdir(exist_ok=True)
        _write_image(images / name0, 2 * i)
        _write_image(images / name1, 2 * i + 1)
        lines.append(scene.line(name0, name1))
        np.savez(out / f"a{i}_b{i}_matches.npz", **scene.matches)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    return pairs, images, out, scenes


@pytest.fixture
def dataset(tmp_path):
    return _make_dataset(tmp_path)


def _args(pairs, images, out, *extra: str) -> list[str]:
    return [
        "match-pairs",
        "--input_pairs",
        str(pairs),
        "--input_dir",
        str(images),
        "--output_dir",
        str(out),
        "--resize",
        str(RESIZE),
        "--eval",
        "--cache",
        *extra,
    ]


@pytest.mark.parametrize(("estimator", "n_out"), [("ransac", 12), ("magsac", 12), ("dlt", 0)])
def test_cached_matches_are_scored_without_network(tmp_path, estimator, n_out, capsys) -> None:
    """Robust estimators get outliers; the 8-point ``dlt`` (no RANSAC) gets inliers only."""
    pairs, images, out, scenes = _make_dataset(tmp_path, n_out)
    assert main(_args(pairs, images, out, "--pose_estimator", estimator)) == 0  # no weights given
    for i, scene in enumerate(scenes):
        with np.load(out / f"a{i}_b{i}_evaluation.npz") as ev:
            assert {"error_t", "error_R", "precision", "matching_score", "num_correct", "epipolar_errors"} <= set(
                ev.files
            )
            assert ev["precision"] == pytest.approx(scene.precision, abs=1e-12)
            assert ev["matching_score"] == pytest.approx(scene.matching_score, abs=1e-12)
            if i < 2:  # exact correspondences: the pose is recovered (rotated pair included)
                assert max(float(ev["error_t"]), float(ev["error_R"])) < 0.1
            else:
                assert np.isinf(ev["error_t"]) and np.isinf(ev["error_R"])
    table = json.loads((out / "evaluation_results.json").read_text())
    assert table["pose_estimator"] == estimator and table["num_pairs"] == 3
    for t in (5, 10, 20):  # two pairs with error < 0.1 deg, one failure
        assert 2 / 3 * (1 - 0.1 / t) - 1e-9 <= table[f"AUC@{t}"] / 100 <= 2 / 3
    assert table["Prec"] == pytest.approx(100 * np.mean([s.precision for s in scenes]))
    assert table["MScore"] == pytest.approx(100 * np.mean([s.matching_score for s in scenes]))
    printed = capsys.readouterr().out
    assert "Evaluation Results (mean over 3 pairs):" in printed
    assert "AUC@5\tAUC@10\tAUC@20\tPrec\tMScore" in printed
    assert "\t".join(f"{table[k]:.2f}" for k in ("AUC@5", "AUC@10", "AUC@20", "Prec", "MScore")) in printed


def test_rescoring_with_another_estimator_recomputes(dataset) -> None:
    pairs, images, out, _ = dataset
    assert main(_args(pairs, images, out, "--pose_estimator", "ransac")) == 0
    assert main(_args(pairs, images, out, "--pose_estimator", "dlt")) == 0
    with np.load(out / "a0_b0_evaluation.npz") as ev:
        assert str(ev["pose_estimator"]) == "dlt"
        assert max(float(ev["error_t"]), float(ev["error_R"])) > 1.0  # outliers break the non-robust 8-point pose
    assert json.loads((out / "evaluation_results.json").read_text())["pose_estimator"] == "dlt"


def test_viz_writes_plots(dataset) -> None:
    pairs, images, out, _ = dataset
    assert main(_args(pairs, images, out, "--viz", "--show_keypoints", "--max_length", "2")) == 0
    for i in range(2):
        for kind in ("matches", "evaluation"):
            plot = cv2.imread(str(out / f"a{i}_b{i}_{kind}.png"))
            h0, w0 = (RESIZE * H // W, RESIZE) if i == 0 else (RESIZE, RESIZE * H // W)  # pair 1: image 0 rotated
            assert plot is not None and plot.shape[:2] == (max(h0, RESIZE * H // W), w0 + 10 + RESIZE)
    assert main(_args(pairs, images, out, "--viz", "--viz_extension", "pdf", "--max_length", "1")) == 0
    assert (out / "a0_b0_matches.pdf").read_bytes().startswith(b"%PDF")


def test_uncached_pair_needs_weights(dataset, capsys) -> None:
    pairs, images, out, _ = dataset
    (out / "a1_b1_matches.npz").unlink()
    assert main(_args(pairs, images, out)) == 1
    assert "--superpoint_weights" in capsys.readouterr().err


def test_library_raises_exceptions_not_systemexit(dataset) -> None:
    """Regression: match_pairs.run/_build_network raised SystemExit; the library must stay usable from Python."""
    from semaglue import match_pairs
    from semaglue.cli import build_parser

    pairs, images, out, _ = dataset
    (out / "a1_b1_matches.npz").unlink()
    opt = build_parser().parse_args(_args(pairs, images, out))
    with pytest.raises(ValueError, match="--superpoint_weights"):
        match_pairs.run(opt)
    opt = build_parser().parse_args(_args(pairs, images, out, "--resize", "1", "2", "3"))
    with pytest.raises(ValueError, match="--resize"):
        match_pairs.run(opt)
    with pytest.raises(ValueError, match="no ground truth"):
        match_pairs.evaluate_pair(match_pairs.Pair("a.jpg", "b.jpg"), (1, 1), (1, 1), (4, 4), (4, 4), {}, "ransac")


def test_viz_of_a_pair_without_matches_and_a_failing_pair(dataset, capsys) -> None:
    """Regression: --viz crashed on zero matches (cv2.applyColorMap on an empty array) and aborted the run; now
    the empty pair is drawn and a pair whose image is corrupt is reported without stopping the others."""
    pairs, images, out, scenes = dataset
    empty = dict(scenes[0].matches, matches=np.full(len(scenes[0].matches["matches"]), -1, np.int64))
    np.savez(out / "a0_b0_matches.npz", **empty)
    (images / "scene" / "b2.png").write_bytes(b"corrupt")
    assert main(_args(pairs, images, out, "--viz")) == 1
    err = capsys.readouterr().err
    assert "a2_b2" in err and "b2.png" in err and len(err.strip().splitlines()) == 2
    assert (out / "a0_b0_matches.png").is_file() and (out / "a0_b0_evaluation.png").is_file()
    assert (out / "a1_b1_matches.png").is_file() and not (out / "a2_b2_matches.png").exists()
    assert json.loads((out / "evaluation_results.json").read_text())["num_pairs"] == 2


def test_empty_pair_list_is_named(tmp_path, capsys) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n")
    assert main(["match-pairs", "--input_pairs", str(pairs), "--output_dir", str(tmp_path), "--eval"]) == 1
    err = capsys.readouterr().err
    assert "lists no pairs" in err and "pose_auc" not in err


def test_bad_pair_list(tmp_path, capsys) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("a.jpg b.jpg 0 0 1 2 3\n")
    assert main(["match-pairs", "--input_pairs", str(pairs), "--output_dir", str(tmp_path), "--eval"]) == 1
    assert "38 fields" in capsys.readouterr().err
    assert main(["match-pairs", "--input_pairs", str(tmp_path / "none.txt"), "--output_dir", str(tmp_path)]) == 1


def test_network_path_on_sample_images(tmp_path) -> None:
    """Matching with random weights in the authors' formats: npz dumps with the authors' keys and dtypes."""
    root = repo_root()
    sample = root.parent / "shared" / "data" / "semaglue" if root is not None else None
    if sample is None or not (sample / "test_img1.jpg").is_file():
        pytest.skip("sample images ../shared/data/semaglue/test_img{1,2}.jpg not found")
    torch.manual_seed(0)
    torch.save(SuperPoint().state_dict(), tmp_path / "superpoint_v1.pth")
    torch.save({"meta": {}, "state_dict": SegNext(SegNextConfig()).state_dict()}, tmp_path / "segnext.pth")
    matcher = SemaGlue(SemaGlueConfig(n_layers=1))
    torch.save(
        {"model": {f"matcher.{k}": v for k, v in matcher.state_dict().items()}}, tmp_path / "checkpoint_best.tar"
    )
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("test_img1.jpg test_img2.jpg\n")
    args = [
        "match-pairs",
        "--input_pairs",
        str(pairs),
        "--input_dir",
        str(sample),
        "--output_dir",
        str(tmp_path / "o"),
        "--resize",
        "160",
        "--max_keypoints",
        "64",
        "--nms_radius",
        "3",
        "--resize_float",
        "--force_cpu",
        "--superpoint_weights",
        str(tmp_path / "superpoint_v1.pth"),
        "--segnext_weights",
        str(tmp_path / "segnext.pth"),
        "--matcher_weights",
        str(tmp_path / "checkpoint_best.tar"),
    ]
    assert main(args) == 0
    with np.load(tmp_path / "o" / "test_img1_test_img2_matches.npz") as dump:
        assert sorted(dump.files) == ["keypoints0", "keypoints1", "match_confidence", "matches"]
        assert dump["keypoints0"].dtype == np.float32 and dump["matches"].dtype == np.int64
        assert 0 < len(dump["keypoints0"]) <= 64 and len(dump["matches"]) == len(dump["keypoints0"])
        assert dump["matches"].max() < len(dump["keypoints1"])


def test_wrong_weights_file_is_reported(dataset, tmp_path, capsys) -> None:
    pairs, images, out, _ = dataset
    (out / "a0_b0_matches.npz").unlink()
    sp = tmp_path / "superpoint_v1.pth"
    torch.save(SuperPoint().state_dict(), sp)
    args = _args(
        pairs, images, out, "--superpoint_weights", str(sp), "--segnext_weights", str(sp), "--matcher_weights", str(sp)
    )
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "superpoint_v1.pth" in err and len(err.strip().splitlines()) == 1
