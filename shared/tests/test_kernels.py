import pytest
import torch
import torch.nn.functional as F

from semcommon.kernels import concat_volume, corr_lookup, corr_pyramid, gwc_volume_norm, warp_by_disparity
from semcommon.kernels.stereo import shifted_windows


def naive_gwc_norm(left, right, disp_min, disp_max, groups, eps=1e-5):
    b, c, h, w = left.shape
    g = c // groups
    ln = left.view(b, groups, g, h, w)
    rn = right.view(b, groups, g, h, w)
    ln = ln / (ln.norm(dim=2, keepdim=True) + eps)
    rn = rn / (rn.norm(dim=2, keepdim=True) + eps)
    out = torch.zeros(b, groups, disp_max - disp_min, h, w)
    for j, d in enumerate(range(disp_min, disp_max)):
        for x in range(w):
            if 0 <= x - d < w:
                out[:, :, j, :, x] = (ln[..., x] * rn[..., x - d]).mean(2)
    return out


@pytest.mark.parametrize("disp_min,disp_max", [(-6, 6), (0, 8), (-3, 0), (2, 5), (-12, 12)])
def test_gwc_volume_norm_matches_loop(disp_min, disp_max):
    torch.manual_seed(0)
    left, right = torch.randn(2, 16, 5, 9), torch.randn(2, 16, 5, 9)
    got = gwc_volume_norm(left, right, disp_min, disp_max, 4)
    torch.testing.assert_close(got, naive_gwc_norm(left, right, disp_min, disp_max, 4), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("disp_min,disp_max", [(-4, 4), (0, 3), (-20, 20), (5, 7)])
def test_shifted_windows_match_slicing(disp_min, disp_max):
    right = torch.randn(2, 3, 4, 9)
    got = shifted_windows(right, disp_min, disp_max)
    assert got.shape == (2, 3, disp_max - disp_min, 4, 9)
    for k in range(disp_max - disp_min):
        d = disp_max - 1 - k  # windows run in descending disparity order
        expected = torch.zeros_like(right)
        for x in range(9):
            if 0 <= x - d < 9:
                expected[..., x] = right[..., x - d]
        torch.testing.assert_close(got[:, :, k], expected, rtol=0, atol=0)


def test_gwc_volume_norm_gradients():
    """The overlapping strided windows back-propagate like the explicit loop (float64 gradcheck)."""
    torch.manual_seed(2)
    left = torch.randn(1, 8, 3, 6, dtype=torch.float64, requires_grad=True)
    right = torch.randn(1, 8, 3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: gwc_volume_norm(a, b, -3, 4, 2), (left, right))


def test_gwc_errors():
    with pytest.raises(ValueError, match="divisible"):
        gwc_volume_norm(torch.zeros(1, 6, 4, 4), torch.zeros(1, 6, 4, 4), 0, 2, 4)
    with pytest.raises(ValueError, match="differ in shape"):
        gwc_volume_norm(torch.zeros(1, 8, 4, 4), torch.zeros(1, 8, 4, 5), 0, 2, 4)


def test_warp_by_disparity_matches_loop():
    torch.manual_seed(1)
    right = torch.randn(1, 3, 4, 7)
    disp = torch.rand(1, 2, 4, 7) * 6 - 2
    got = warp_by_disparity(right, disp)
    expected = torch.zeros(1, 3, 2, 4, 7)
    for k in range(2):
        for y in range(4):
            for x in range(7):
                src = x - disp[0, k, y, x].item()
                x0 = int(torch.floor(torch.tensor(src)))
                frac = src - x0
                for xi, wt in ((x0, 1 - frac), (x0 + 1, frac)):
                    if 0 <= xi < 7:
                        expected[0, :, k, y, x] += wt * right[0, :, y, xi]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_integer_warp_equals_shift_and_concat_layout():
    left, right = torch.randn(1, 2, 3, 6), torch.randn(1, 2, 3, 6)
    disp = torch.full((1, 1, 3, 6), 2.0)
    vol = concat_volume(left, right, disp)
    assert vol.shape == (1, 4, 1, 3, 6)
    torch.testing.assert_close(vol[:, :2, 0], left)
    torch.testing.assert_close(vol[:, 2:, 0, :, 2:], right[..., :-2])
    assert vol[:, 2:, 0, :, :2].abs().max() < 1e-6  # out of the image (up to grid_sample rounding)


def naive_corr_lookup(f1, f2, coords, levels, radius):
    b, c, h, w = f1.shape
    corr = torch.einsum("bchw,bcij->bhwij", f1, f2) / c**0.5
    outs = []
    for lvl in range(levels):
        vol = corr.reshape(b * h * w, 1, h, w)
        for _ in range(lvl):
            vol = F.avg_pool2d(vol, 2, 2)
        vol = vol.view(b, h, w, vol.shape[-2], vol.shape[-1])
        hl, wl = vol.shape[-2:]
        out = torch.zeros(b, (2 * radius + 1) ** 2, h, w)
        for bi in range(b):
            for y in range(h):
                for x in range(w):
                    cx, cy = coords[bi, 0, y, x] / 2**lvl, coords[bi, 1, y, x] / 2**lvl
                    for i, dx in enumerate(range(-radius, radius + 1)):
                        for j, dy in enumerate(range(-radius, radius + 1)):
                            px, py = cx + dx, cy + dy
                            x0, y0 = int(torch.floor(px)), int(torch.floor(py))
                            fx, fy = px - x0, py - y0
                            val = 0.0
                            for xi, wx in ((x0, 1 - fx), (x0 + 1, fx)):
                                for yi, wy in ((y0, 1 - fy), (y0 + 1, fy)):
                                    if 0 <= xi < wl and 0 <= yi < hl:
                                        val += wx * wy * vol[bi, y, x, yi, xi]
                            out[bi, i * (2 * radius + 1) + j, y, x] = val
        outs.append(out)
    return torch.cat(outs, 1)


def test_corr_lookup_matches_loop():
    torch.manual_seed(2)
    f1, f2 = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    coords = torch.stack((xs, ys))[None] + torch.rand(1, 2, 8, 8) * 2 - 1
    got = corr_lookup(corr_pyramid(f1, f2, num_levels=2), coords, radius=1)
    torch.testing.assert_close(got, naive_corr_lookup(f1, f2, coords, 2, 1), rtol=1e-4, atol=1e-5)
