import json

import cv2
import pytest

from semaglue.cli import main
from semcommon.testing import check_cli


def test_subcommands_have_help_and_unknown_fails(capsys):
    check_cli(main, ["train", "evaluate", "predict", "demo", "match-pairs"], capsys)


def test_match_pairs_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["match-pairs", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    flags = (
        "--input_pairs --input_dir --output_dir --max_length --resize --resize_float --weight_type --max_keypoints "
        "--keypoint_threshold --nms_radius --sinkhorn_iterations --match_threshold --filter_threshold --use_ransac "
        "--viz --eval --fast_viz --cache --show_keypoints --viz_extension --opencv_display --shuffle --force_cpu "
        "--pose_estimator --superpoint_weights --segnext_weights --matcher_weights --results_json"
    )
    missing = [flag for flag in flags.split() if flag not in text]
    assert not missing


def test_demo_command_at_a_tiny_setting(tmp_path, monkeypatch, capsys):
    """``semaglue demo --out DIR`` for real, with the recipe shrunk (few steps, tiny images and width)."""
    from semaglue import demo
    from semaglue.config import SegNextConfig, SemaGlueConfig

    original = demo.DemoConfig

    def tiny() -> demo.DemoConfig:
        return original(
            height=64,
            width=80,
            train_pairs=4,
            val_pairs=3,
            max_keypoints=32,
            steps=2,
            batch_size=2,
            matcher=SemaGlueConfig(descriptor_dim=32, num_heads=2, n_layers=2),
            segnext=SegNextConfig(embed_dims=(8, 8, 8, 16), depths=(1, 1, 1, 1)),
        )

    monkeypatch.setattr(demo, "DemoConfig", tiny)
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SemaGlue (demo)" in out and "MNN + ratio" in out and "H_AUC@5px" in out
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert set(payload) == {"model", "baseline", "primary", "config", "seconds"}
    assert payload["primary"] == {"metric": "H_AUC@5px", "higher_is_better": True}
    assert set(payload["model"]) == set(payload["baseline"]) >= {"H_AUC@5px", "precision", "recall"}
    assert "stereo_epipolar_precision" in payload["model"] and payload["config"]["steps"] == 2
    image = cv2.imread(str(tmp_path / "demo.png"))
    assert image is not None and image.shape[0] > 3 * 64
