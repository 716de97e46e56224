"""Inference on image files: preprocessing, output sizes and ranges, pose between two files, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from semcommon.io import ImageReadError, write_image
from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.geometry import disp_to_depth
from sgdepth_pkd.inference import IMAGENET_MEAN, IMAGENET_STD, predict_image, preprocess, read_rgb, relative_pose
from sgdepth_pkd.model.sgdepth import SGDepth


@pytest.fixture(scope="module")
def model() -> SGDepth:
    torch.manual_seed(0)
    return SGDepth(SGDepthConfig(num_layers=18, height=64, width=128)).eval()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> tuple[np.ndarray, str]:
    image = data.chelsea()  # 300×451 RGB photo shipped with scikit-image
    path = tmp_path_factory.mktemp("img") / "chelsea.png"
    write_image(path, image)
    return image, str(path)


def test_preprocess_normalises_a_constant_image():
    image = np.full((50, 70, 3), (255, 0, 128), dtype=np.uint8)
    x = preprocess(image, (64, 96))
    assert x.shape == (1, 3, 64, 96)
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x[0, :, 10, 10], expected)


def test_predict_image_from_file_matches_tensor_api(model, photo):
    image, path = photo
    result = predict_image(model, path)
    assert result.depth.shape == result.disparity.shape == result.segmentation.shape == image.shape[:2]
    assert result.segmentation.dtype == np.int64 and result.segmentation.max() < 20
    assert np.all((result.depth >= 0.1 - 1e-5) & (result.depth <= 100 + 1e-3))
    with torch.no_grad():
        disp = model.predict_disparity(preprocess(image, (64, 128)))
    _, depth = disp_to_depth(disp)
    # a pixel at the centre of the network grid maps onto the image: same depth order of magnitude and exact range
    assert np.isclose(np.median(result.depth), float(depth.median()), rtol=0.05)
    array_result = predict_image(model, image)
    np.testing.assert_array_equal(array_result.depth, result.depth)


def test_relative_pose_between_two_files(model, photo, tmp_path):
    image, path = photo
    shifted = np.roll(image, 8, axis=1)
    other = tmp_path / "shifted.png"
    write_image(other, shifted)
    pose = relative_pose(model, path, str(other))
    assert pose.shape == (4, 4)
    np.testing.assert_allclose(pose[3], [0, 0, 0, 1])
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5)


def test_bad_inputs_name_the_problem(model, photo, tmp_path):
    image, _ = photo
    with pytest.raises(ImageReadError, match="missing.png"):
        predict_image(model, tmp_path / "missing.png")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageReadError, match="corrupt.png"):
        read_rgb(corrupt)
    with pytest.raises(ValueError, match="image"):
        preprocess(image.astype(np.float32))
    with pytest.raises(ValueError, match="multiples of 32"):
        preprocess(image, (100, 200))
    with pytest.raises(ValueError, match="same size"):
        relative_pose(model, image, image[:100])
