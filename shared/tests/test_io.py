import numpy as np
import pytest

from semcommon.io import (
    ImageReadError,
    read_disparity,
    read_image,
    read_pfm,
    read_video_frames,
    write_disparity,
    write_image,
    write_pfm,
)


@pytest.mark.parametrize("suffix,dtype", [(".png", np.uint8), (".png", np.uint16), (".tif", np.float32)])
def test_single_band_round_trip(tmp_path, suffix, dtype):
    data = (np.random.default_rng(0).random((7, 9)) * 1000).astype(dtype)
    path = write_image(tmp_path / f"a{suffix}", data)
    back = read_image(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, data)


def test_rgb_png_keeps_channel_order(tmp_path):
    data = np.zeros((4, 5, 3), dtype=np.uint8)
    data[..., 0] = 200  # red
    back = read_image(write_image(tmp_path / "rgb.png", data), dtype=np.uint8, channels=3)
    np.testing.assert_array_equal(back, data)


def test_jpeg_reads_close(tmp_path):
    data = np.full((16, 16, 3), 120, dtype=np.uint8)
    back = read_image(write_image(tmp_path / "a.jpg", data))
    assert back.shape == (16, 16, 3) and np.abs(back.astype(int) - 120).max() <= 2


def test_multiband_float_tiff(tmp_path):
    data = np.random.default_rng(1).random((6, 8, 5)).astype(np.float32)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "m.tif", data)), data)


def test_pfm_round_trip(tmp_path):
    grey = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32)
    colour = np.random.default_rng(3).standard_normal((5, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(read_pfm(write_pfm(tmp_path / "g.pfm", grey)), grey)
    np.testing.assert_array_equal(read_pfm(write_pfm(tmp_path / "c.pfm", colour)), colour)


def test_disparity_png_scale_and_invalid(tmp_path):
    disp = np.array([[1.5, np.nan], [100.25, 0.5]])
    path = write_disparity(tmp_path / "d.png", disp, scale=256.0, invalid_value=0)
    values, valid = read_disparity(path, scale=256.0, invalid_value=0)
    np.testing.assert_array_equal(valid, [[True, False], [True, True]])
    np.testing.assert_allclose(values[valid], [1.5, 100.25, 0.5])
    assert values[0, 1] == 0


def test_signed_disparity_tiff(tmp_path):
    disp = np.array([[-3.25, 2.0], [-999.0, 7.0]], dtype=np.float32)
    values, valid = read_disparity(write_disparity(tmp_path / "d.tif", disp), invalid_value=-999.0)
    np.testing.assert_array_equal(valid, [[True, True], [False, True]])
    assert values[0, 0] == pytest.approx(-3.25)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png: file not found"):
        read_image(tmp_path / "nope.png")


def test_truncated_png_names_it(tmp_path):
    path = write_image(tmp_path / "t.png", np.zeros((32, 32), dtype=np.uint8) + 7)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ImageReadError, match="t.png"):
        read_image(path)


def test_truncated_pfm_and_garbage(tmp_path):
    path = write_pfm(tmp_path / "t.pfm", np.ones((4, 4), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ImageReadError, match="truncated"):
        read_pfm(path)
    bad = tmp_path / "bad.pfm"
    bad.write_bytes(b"P6\n1 1\n255\n\x00\x00\x00")
    with pytest.raises(ImageReadError, match="not a PFM"):
        read_pfm(bad)


def test_unexpected_dtype_and_shape(tmp_path):
    path = write_image(tmp_path / "u.png", np.zeros((4, 4), dtype=np.uint16))
    with pytest.raises(ImageReadError, match="dtype uint16"):
        read_image(path, dtype=np.uint8)
    with pytest.raises(ImageReadError, match="1 channel"):
        read_image(path, channels=3)
    rgb = write_image(tmp_path / "rgb.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ImageReadError, match="single-band"):
        read_disparity(rgb)


def test_writer_rejects_float_png(tmp_path):
    with pytest.raises(ValueError, match="uint8 or uint16"):
        write_image(tmp_path / "f.png", np.zeros((2, 2), dtype=np.float32))


def test_read_video_frames(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 24))
    for value in (40, 200):
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[..., 2] = value  # BGR: red channel
        writer.write(frame)
    writer.release()
    frames = list(read_video_frames(path))
    assert [index for index, _ in frames] == [0, 1]
    assert frames[1][1].shape == (24, 32, 3) and frames[1][1][..., 0].mean() > 150  # RGB order
    with pytest.raises(ImageReadError, match="missing.avi: file not found"):
        read_video_frames(tmp_path / "missing.avi")
    (tmp_path / "junk.avi").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="junk.avi"):
        list(read_video_frames(tmp_path / "junk.avi"))
