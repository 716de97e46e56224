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


def test_demo_runs_paper_model(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "params: 30491226" in out  # SuperPoint + MSCAN-T + 9-layer matcher, as in the manifests
    assert "matches0: (1, 512)" in out and "latency_ms" in out
