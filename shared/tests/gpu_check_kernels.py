"""GPU check of the Triton kernels against the PyTorch references at the models' sizes (needs a CUDA GPU).

    PYTHONPATH=shared/src python -m pytest shared/tests/gpu_check_kernels.py -q -s

SemStereo at a 1024×1024 input (US3D ``maxdisp=64``, WHU ``maxdisp=128``): the 1/8 normalised group-wise correlation
(C=256, 32 groups, 128×128, [-8, 8) and [-16, 16)), the 1/4 warp of the propagation step (C=128, 5 samples, 256×256,
disparity gradient) and the 1/4 concatenation volume (C=32, top-24 integer hypotheses); RAFT's lookup at 1/8 of
736×1280 (92×160, C=256, 4 levels, r=4). Each case asserts values and gradients (max error relative to the reference's
largest magnitude) and prints median latencies (forward; forward + backward) of Triton vs the reference.
"""

import statistics
from collections.abc import Callable

import pytest
import torch

from semcommon.kernels import (
    backend,
    concat_volume,
    corr_lookup,
    corr_lookup_windowed,
    corr_pyramid,
    feature_pyramid,
    gwc_volume_norm,
    warp_by_disparity,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
RELATIVE_TOLERANCE = 1e-4


def median_ms(fn: Callable[[], object], repeats: int = 20) -> float:
    """Median CUDA-event time of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def forward_backward(fn: Callable[..., torch.Tensor], inputs: list[torch.Tensor], grad: torch.Tensor) -> list:
    out = fn(*inputs)
    return [out.detach(), *torch.autograd.grad(out, [x for x in inputs if x.requires_grad], grad)]


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got.float() - expected.float()).abs().max() / expected.float().abs().max().clamp_min(1e-12)).item()


def compare(
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    triton_fn: Callable[..., torch.Tensor],
    reference_fn: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor],
) -> None:
    """Check values and gradients of ``triton_fn`` (forced Triton) against ``reference_fn`` (forced PyTorch); time both."""
    results, timings = {}, {}
    grad = None
    for label, mode, fn in (("triton", "triton", triton_fn), ("reference", "torch", reference_fn)):
        monkeypatch.setenv(backend.ENV_VAR, mode)
        if grad is None:
            with torch.no_grad():
                grad = torch.randn_like(fn(*inputs))
        results[label] = forward_backward(fn, inputs, grad)
        with torch.no_grad():
            forward = median_ms(lambda fn=fn: fn(*inputs))
        both = median_ms(lambda fn=fn, grad=grad: forward_backward(fn, inputs, grad))
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        forward_backward(fn, inputs, grad)
        timings[label] = (forward, both, (torch.cuda.max_memory_allocated() - base) / 2**20)
    errors = [relative_error(a, b) for a, b in zip(results["triton"], results["reference"], strict=True)]
    (tf, tb, tm), (rf, rb, rm) = timings["triton"], timings["reference"]
    print(
        f"\n{name}: triton fwd {tf:.3f} ms, fwd+bwd {tb:.3f} ms, peak {tm:.0f} MiB | reference fwd {rf:.3f} ms, "
        f"fwd+bwd {rb:.3f} ms, peak {rm:.0f} MiB | speed-up fwd {rf / tf:.2f}x, fwd+bwd {rb / tb:.2f}x | "
        f"relative errors (value, grads) {', '.join(f'{e:.1e}' for e in errors)}"
    )
    assert max(errors) < RELATIVE_TOLERANCE, f"{name}: relative errors {errors}"


@pytest.mark.parametrize("disp_range", [(-8, 8), (-16, 16)])
def test_gwc_volume_norm_semstereo(disp_range, monkeypatch):
    torch.manual_seed(0)
    inputs = [torch.randn(1, 256, 128, 128, device="cuda", requires_grad=True) for _ in range(2)]

    def fn(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return gwc_volume_norm(left, right, *disp_range, 32)

    compare(f"gwc_volume_norm 256ch/32g 128x128 {disp_range}", monkeypatch, fn, fn, inputs)


def test_warp_by_disparity_semstereo(monkeypatch):
    torch.manual_seed(1)
    right = torch.randn(1, 128, 256, 256, device="cuda", requires_grad=True)
    disparity = torch.rand(1, 5, 256, 256, device="cuda") * 32 - 16
    # grid_sample's coordinate normalisation moves samples by ~1e-5 px: keep them off integers, where the
    # disparity gradient (a one-sided slope) would jump.
    disparity = torch.where((disparity - disparity.round()).abs() < 1e-3, disparity + 0.01, disparity).requires_grad_()
    compare("warp_by_disparity 128ch D5 256x256", monkeypatch, warp_by_disparity, warp_by_disparity, [right, disparity])


def test_concat_volume_semstereo(monkeypatch):
    torch.manual_seed(2)
    left = torch.randn(1, 32, 256, 256, device="cuda", requires_grad=True)
    right = torch.randn(1, 32, 256, 256, device="cuda", requires_grad=True)
    hypotheses = torch.randint(-16, 16, (1, 24, 256, 256), device="cuda").float()
    compare("concat_volume 32ch k24 256x256", monkeypatch, concat_volume, concat_volume, [left, right, hypotheses])


@pytest.mark.parametrize("batch", [1, 2])
def test_corr_lookup_windowed_raft(batch, monkeypatch):
    """Windowed Triton lookup vs RAFT's all-pairs pyramid + lookup (built once per call here, as in one iteration)."""
    torch.manual_seed(3)
    f1 = torch.randn(batch, 256, 92, 160, device="cuda", requires_grad=True)
    f2 = torch.randn(batch, 256, 92, 160, device="cuda", requires_grad=True)
    ys, xs = torch.meshgrid(torch.arange(92.0, device="cuda"), torch.arange(160.0, device="cuda"), indexing="ij")
    coords = torch.stack((xs, ys)).expand(batch, -1, -1, -1) + torch.randn(batch, 2, 92, 160, device="cuda") * 8

    def windowed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return corr_lookup_windowed(a, feature_pyramid(b, 4), coords, 4)

    def all_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return corr_lookup(corr_pyramid(a, b, 4), coords, 4)

    compare(
        f"corr_lookup_windowed B{batch} 256ch 92x160 L4 r4 (vs all-pairs)", monkeypatch, windowed, all_pairs, [f1, f2]
    )
    with torch.no_grad():
        pyramid, levels = corr_pyramid(f1, f2, 4), feature_pyramid(f2, 4)
        monkeypatch.setenv(backend.ENV_VAR, "triton")
        lookup_triton = median_ms(lambda: corr_lookup_windowed(f1, levels, coords, 4))
        monkeypatch.setenv(backend.ENV_VAR, "torch")
        lookup_chunked = median_ms(lambda: corr_lookup_windowed(f1, levels, coords, 4), repeats=5)
        lookup_all_pairs = median_ms(lambda: corr_lookup(pyramid, coords, 4))
    print(
        f"per-iteration lookup only: triton windowed {lookup_triton:.3f} ms, chunked PyTorch windowed "
        f"{lookup_chunked:.3f} ms, all-pairs grid_sample {lookup_all_pairs:.3f} ms (pyramid built once)"
    )
