import numpy as np
import pytest
import torch

from semcommon.io import read_image
from semcommon.runtime import count_parameters, measure_latency, resolve_device, seed_everything
from semcommon.viz import colorize, draw_matches, label_to_rgb, overlay, palette, save_png, side_by_side


def test_colorize_range_and_invalid():
    values = np.array([[0.0, 1.0], [np.nan, 0.5]])
    rgb = colorize(values, vmin=0, vmax=1, invalid=np.array([[False, False], [False, True]]))
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert (rgb[1] == 0).all()  # NaN and masked pixels are black
    assert not np.array_equal(rgb[0, 0], rgb[0, 1])
    with pytest.raises(ValueError, match="unknown cmap"):
        colorize(values, cmap="nope")


def test_palette_and_labels():
    colours = palette(6)
    assert colours.shape == (6, 3) and len({tuple(c) for c in colours}) == 6
    labels = np.array([[0, 1], [255, 5]])
    rgb = label_to_rgb(labels, colours)
    np.testing.assert_array_equal(rgb[0, 1], colours[1])
    np.testing.assert_array_equal(rgb[1, 0], [0, 0, 0])


def test_overlay_side_by_side_and_png(tmp_path):
    image = np.full((4, 5, 3), 100, dtype=np.uint8)
    blended = overlay(image, np.full((4, 5, 3), 200, dtype=np.uint8), alpha=0.5)
    assert (blended == 150).all()
    panel = side_by_side([image, np.zeros((2, 3), dtype=np.uint8)], gap=2)
    assert panel.shape == (4, 10, 3) and (panel[:, 5:7] == 255).all()
    np.testing.assert_array_equal(read_image(save_png(tmp_path / "p.png", panel)), panel)


def test_draw_matches_draws_lines():
    a, b = np.zeros((20, 20), dtype=np.uint8), np.zeros((20, 20), dtype=np.uint8)
    canvas = draw_matches(a, b, np.array([[5.0, 10.0]]), np.array([[5.0, 10.0]]), colors=np.array([1.0]), gap=0)
    assert canvas.shape == (20, 40, 3)
    assert canvas[10, 15, 1] > 0 and canvas[10, 15, 0] == 0  # green line across the gap
    with pytest.raises(ValueError, match="keypoints"):
        draw_matches(a, b, np.zeros((2, 2)), np.zeros((3, 2)))


def test_runtime_helpers():
    seed_everything(3)
    x = torch.rand(3)
    seed_everything(3)
    assert torch.equal(x, torch.rand(3))
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    layer = torch.nn.Linear(3, 2)
    layer.bias.requires_grad_(False)
    assert count_parameters(layer) == 8 and count_parameters(layer, trainable_only=True) == 6
    assert measure_latency(lambda: sum(range(100)), warmup=0, repeats=2) >= 0
