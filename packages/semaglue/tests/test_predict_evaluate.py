"""``semaglue predict`` and ``semaglue evaluate`` run for real on a checkpoint trained for one step, and their
bad-input paths (one line naming the file or option, exit 1, nothing partial left behind)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from semaglue.cli import main
from semaglue.config import SegNextConfig, SemaGlueConfig
from semaglue.data.synthetic import SyntheticConfig, SyntheticHomographies
from semaglue.match_pairs import load_matches
from semaglue.model import SegNext, SemaGlue, SuperPoint

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
    "features.max_keypoints=48",
    "--set",
    "matcher.n_layers=1",
    "--set",
    "matcher.descriptor_dim=32",
    "--set",
    "matcher.num_heads=2",
    "--set",
    "segnext.embed_dims=[8,8,8,16]",
    "--set",
    "segnext.depths=[1,1,1,1]",
    "--set",
    "val_pairs=0",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    assert main(["train", "--run-dir", str(run), "--max-steps", "1", *TINY]) == 0
    return run / "checkpoints" / "last.pt"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Three synthetic pairs written as PNG files (the third pair at another size) and a pair list."""
    root = tmp_path_factory.mktemp("images")
    data = SyntheticHomographies(SyntheticConfig(height=96, width=128, num_pairs=3, seed=3))
    lines = []
    for i in range(3):
        item = data[i]
        for k in (0, 1):
            image = (item[f"image{k}"][0].numpy() * 255).astype(np.uint8)
            if i == 2:
                image = cv2.resize(image, (100, 80))
            cv2.imwrite(str(root / f"p{i}_{k}.png"), image)
        lines.append(f"p{i}_0.png p{i}_1.png")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def test_predict_one_pair_and_a_pair_list(checkpoint, images, tmp_path, capsys) -> None:
    out = tmp_path / "one"
    args = ["predict", str(images / "p0_0.png"), str(images / "p0_1.png"), "--checkpoint", str(checkpoint)]
    assert main([*args, "--out", str(out), "--resize", "-1"]) == 0
    dump = load_matches(out / "p0_0_p0_1_matches.npz")  # the authors' format, validated
    assert 0 < len(dump["keypoints0"]) <= 48 and dump["matches"].dtype == np.int64
    with np.load(out / "p0_0_p0_1_matches.npz") as raw:
        assert raw["scale0"].tolist() == [1.0, 1.0]
    plot = cv2.imread(str(out / "p0_0_p0_1_matches.png"))
    assert plot.shape[:2] == (96, 128 + 10 + 128)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    many = tmp_path / "many"
    pairs = ["--pairs", str(images / "pairs.txt"), "--input_dir", str(images), "--checkpoint", str(checkpoint)]
    assert main(["predict", *pairs, "--out", str(many), "--resize", "64", "--batch_size", "3", "--no_viz"]) == 0
    assert sorted(p.name for p in many.iterdir()) == [f"p{i}_0_p{i}_1_matches.npz" for i in range(3)]
    with np.load(many / "p0_0_p0_1_matches.npz") as raw:
        assert raw["scale0"].tolist() == [2.0, 2.0] and raw["keypoints0"].max() < 64
    # batched (padded) matching equals matching each pair alone
    single = tmp_path / "single"
    assert main(["predict", *pairs, "--out", str(single), "--resize", "64", "--batch_size", "1", "--no_viz"]) == 0
    for i in range(3):
        a, b = load_matches(many / f"p{i}_0_p{i}_1_matches.npz"), load_matches(single / f"p{i}_0_p{i}_1_matches.npz")
        assert np.array_equal(a["matches"], b["matches"])
        np.testing.assert_allclose(a["match_confidence"], b["match_confidence"], atol=1e-5)


def test_predict_bad_inputs(checkpoint, images, tmp_path, capsys) -> None:
    ck = ["--checkpoint", str(checkpoint)]
    out = ["--out", str(tmp_path / "o")]
    assert main(["predict", str(images / "p0_0.png"), *ck, *out]) == 1
    assert "two images" in capsys.readouterr().err
    assert main(["predict", str(images / "p0_0.png"), str(tmp_path / "missing.png"), *ck, *out]) == 1
    assert "missing.png" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    assert main(["predict", str(images / "p0_0.png"), str(corrupt), *ck, *out]) == 1
    err = capsys.readouterr().err
    assert "corrupt.png" in err and not list((tmp_path / "o").glob("*.npz"))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    assert main(["predict", str(empty), str(images / "p0_1.png"), *ck, *out]) == 1
    assert "empty.jpg" in capsys.readouterr().err
    bad_list = tmp_path / "pairs.txt"
    bad_list.write_text("p0_0.png\n")
    assert main(["predict", "--pairs", str(bad_list), "--input_dir", str(images), *ck, *out]) == 1
    assert "pairs.txt:1" in capsys.readouterr().err
    assert main(["predict", str(images / "p0_0.png"), str(images / "p0_1.png"), *ck, *out, "--batch_size", "0"]) == 1
    assert "--batch_size" in capsys.readouterr().err
    other = tmp_path / "superpoint_v1.pth"
    torch.save(SuperPoint().state_dict(), other)
    assert main(["predict", str(images / "p0_0.png"), str(images / "p0_1.png"), "--checkpoint", str(other), *out]) == 1
    assert "--superpoint_weights" in capsys.readouterr().err
    args = ["predict", str(images / "p0_0.png"), str(images / "p0_1.png"), "--checkpoint", str(other), *out]
    assert main([*args, "--superpoint_weights", str(other), "--segnext_weights", str(other)]) == 1
    err = capsys.readouterr().err
    assert "superpoint_v1.pth" in err and len(err.strip().splitlines()) == 1
    assert (
        main(["predict", str(images / "p0_0.png"), str(images / "p0_1.png"), "--checkpoint", str(tmp_path / "x.pt")])
        == 1
    )
    assert "x.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["predict", "--resize", "many"])
    assert info.value.code == 2


def test_predict_with_the_authors_three_files(images, tmp_path) -> None:
    """The authors' layout: checkpoint_best.tar (matcher.* keys) + superpoint_v1.pth + the mmseg SegNeXt file."""
    torch.manual_seed(0)
    sp = SuperPoint()
    for module in sp.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
    torch.save(sp.state_dict(), tmp_path / "superpoint_v1.pth")
    torch.save({"meta": {}, "state_dict": SegNext(SegNextConfig()).state_dict()}, tmp_path / "segnext.pth")
    matcher = SemaGlue(SemaGlueConfig(n_layers=1))
    torch.save({"model": {f"matcher.{k}": v for k, v in matcher.state_dict().items()}}, tmp_path / "best.tar")
    args = [
        "predict",
        str(images / "p0_0.png"),
        str(images / "p0_1.png"),
        "--checkpoint",
        str(tmp_path / "best.tar"),
        "--superpoint_weights",
        str(tmp_path / "superpoint_v1.pth"),
        "--segnext_weights",
        str(tmp_path / "segnext.pth"),
        "--max_keypoints",
        "32",
        "--resize",
        "160",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) == 0
    dump = load_matches(tmp_path / "o" / "p0_0_p0_1_matches.npz")
    assert 0 < len(dump["keypoints0"]) <= 32 and (tmp_path / "o" / "p0_0_p0_1_matches.png").is_file()
    # --impl reference (the authors' operations) writes the same keypoints and matches as the default fast path
    assert main([*args[:-1], str(tmp_path / "ref"), "--impl", "reference", "--no_viz"]) == 0
    ref = load_matches(tmp_path / "ref" / "p0_0_p0_1_matches.npz")
    assert np.array_equal(ref["keypoints0"], dump["keypoints0"]) and np.array_equal(ref["matches"], dump["matches"])
    np.testing.assert_allclose(ref["match_confidence"], dump["match_confidence"], atol=1e-5)
    assert main([*args[:-1], str(tmp_path / "bf"), "--precision", "bf16", "--no_viz"]) == 0  # approximate, runs
    adaptive = ["--depth_confidence", "0.95", "--width_confidence", "0.99", "--no_viz"]
    assert main([*args[:-1], str(tmp_path / "ad"), *adaptive]) == 0  # approximate, runs
    assert len(load_matches(tmp_path / "ad" / "p0_0_p0_1_matches.npz")["matches"]) == len(dump["matches"])
    assert main([*args[:-1], str(tmp_path / "bad"), "--depth_confidence", "2"]) == 1
    with pytest.raises(SystemExit) as exc:
        main([*args[:-1], str(tmp_path / "x"), "--impl", "turbo"])
    assert exc.value.code == 2


def test_evaluate_synthetic_and_hpatches(checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "syn"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--num_pairs", "3", "--size", "64", "80", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Evaluation Results (mean over 3 pairs):" in printed and "H_AUC@5px" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_pairs"] == 3 and 0 <= metrics["H_AUC@5px"] <= 100 and "recall" in metrics
    assert len((out / "pairs.csv").read_text().splitlines()) == 4
    root = tmp_path / "hpatches"
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (12, 16), dtype=np.uint8), (96, 72), interpolation=cv2.INTER_CUBIC)
    (root / "v_x").mkdir(parents=True)
    for k in range(1, 7):
        H = np.array([[1, 0, 2.0 * (k - 1)], [0, 1, 0], [0, 0, 1]])
        warped = cv2.cvtColor(cv2.warpPerspective(base, H, (96, 72)), cv2.COLOR_GRAY2BGR)
        assert cv2.imwrite(str(root / "v_x" / f"{k}.ppm"), warped)
        if k > 1:
            np.savetxt(root / "v_x" / f"H_1_{k}", H)
    out = tmp_path / "hp"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_pairs"] == 5 and "v_H_AUC@5px" in metrics and metrics["protocol"] == "homography (HPatches)"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(tmp_path / "nope"), "--out", str(out)]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--num_pairs", "0"]) == 1
    assert "--num_pairs" in capsys.readouterr().err


def test_evaluate_yfcc_protocol(checkpoint, images, tmp_path, capsys) -> None:
    """The YFCC pair-list format (38 fields) through match-pairs --eval semantics, with our checkpoint."""
    K = "100 0 63.5 0 100 47.5 0 0 1"
    T = " ".join(str(v) for v in [1, 0, 0, 0.5, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
    pairs = tmp_path / "yfcc.txt"
    pairs.write_text(f"p0_0.png p0_1.png 0 0 {K} {K} {T}\np1_0.png p1_1.png 0 0 {K} {K} {T}\n")
    out = tmp_path / "y"
    args = [
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--data",
        str(images),
        "--pairs",
        str(pairs),
        "--out",
        str(out),
    ]
    assert main([*args, "--resize", "-1"]) == 0
    assert "AUC@5\tAUC@10\tAUC@20\tPrec\tMScore" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_pairs"] == 2 and metrics["pose_estimator"] == "ransac"
    assert (out / "p0_0_p0_1_matches.npz").is_file() and len((out / "pairs.csv").read_text().splitlines()) == 3
