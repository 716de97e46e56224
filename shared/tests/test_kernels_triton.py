"""Triton kernels of semcommon.kernels against the PyTorch references, run by Triton's CPU interpreter.

The kernels are (re)built with ``TRITON_INTERPRET=1`` for this module only; every comparison forces the Triton
back-end through ``SEMVISION_KERNELS=triton`` and asserts that the Triton entry point really ran. A second copy of
the module is compiled for sm_90 (H100) by Triton's real compiler, which needs no GPU, so compile errors that the
interpreter would let through fail here too.
"""

import importlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
import torch

from semcommon import kernels
from semcommon.kernels import (
    backend,
    concat_volume,
    corr_lookup,
    corr_lookup_windowed,
    corr_pyramid,
    feature_pyramid,
    gwc_volume_norm,
    raft_corr,
    warp_by_disparity,
)

pytestmark = pytest.mark.skipif(not backend.triton_available(), reason="triton not installed")
OPS_MODULE = "semcommon.kernels.triton_ops"


@pytest.fixture(scope="module")
def ops() -> Iterator[ModuleType]:
    """``triton_ops`` imported afresh with the interpreter on; the previous module (if any) is restored after.

    ``triton`` itself is imported first, before the interpreter is switched on, as when another test module of the
    session has imported it: the kernels must still run.
    """
    importlib.import_module("triton")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        patch.delitem(sys.modules, OPS_MODULE, raising=False)
        module = importlib.import_module(OPS_MODULE)
        patch.setattr(kernels, "triton_ops", module, raising=False)
        assert module.interpreted()
        yield module


@pytest.fixture
def triton_calls(ops: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts the calls of each Triton entry point."""
    calls: Counter = Counter()
    for name in ("group_correlation", "warp_by_disparity", "concat_volume", "window_correlation"):
        original = getattr(ops, name)

        def spy(*args: object, _name: str = name, _original: Callable = original) -> torch.Tensor:
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(ops, name, spy)
    return calls


def run_both(
    monkeypatch: pytest.MonkeyPatch, fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``[output, *grads]`` of ``fn(*inputs)`` under Triton, then under the reference, for one random output grad."""
    results = []
    grad_out = None
    for mode in ("triton", "torch"):
        monkeypatch.setenv(backend.ENV_VAR, mode)
        leaves = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
        out = fn(*leaves)
        if grad_out is None:
            grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
        wanted = [x for x in leaves if x.requires_grad]
        results.append([out.detach(), *torch.autograd.grad(out, wanted, grad_out)])
    return results[0], results[1]


def assert_all_close(got: list[torch.Tensor], expected: list[torch.Tensor], atol: float = 1e-5) -> None:
    assert len(got) == len(expected)
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=atol, msg=lambda m, i=index: f"item {i}: {m}")


@pytest.mark.parametrize("disp_min,disp_max", [(-5, 13), (3, 7), (-9, -2)])
def test_gwc_volume_norm_triton(disp_min, disp_max, triton_calls, monkeypatch):
    """Odd W over two x-blocks, D over two disparity blocks, negative ranges, batch 2, 3 groups of 4 channels."""
    torch.manual_seed(0)
    left = torch.randn(2, 12, 2, 67, requires_grad=True)
    right = torch.randn(2, 12, 2, 67, requires_grad=True)
    got, expected = run_both(monkeypatch, lambda a, b: gwc_volume_norm(a, b, disp_min, disp_max, 3), (left, right))
    assert triton_calls["group_correlation"] == 1
    assert got[0].shape == (2, 3, disp_max - disp_min, 2, 67)
    assert_all_close(got, expected)


# grid_sample normalises x to [-1, 1] and back: ~W·6e-8 px of rounding, times a feature slope of a few units.
WARP_ATOL = 5e-5


def fractional_disparities(shape: tuple[int, ...]) -> torch.Tensor:
    """Disparities in [-9, 14) px (many samples fall outside the image), never within 1e-3 of an integer."""
    torch.manual_seed(1)
    disp = torch.rand(shape) * 23 - 9
    near = (disp - disp.round()).abs() < 1e-3
    return torch.where(near, disp + 0.01, disp)


def test_warp_by_disparity_triton(triton_calls, monkeypatch):
    """Values and gradients w.r.t. features and disparity; 20 channels (two channel blocks), W = 67."""
    torch.manual_seed(5)
    right = torch.randn(2, 20, 3, 67, requires_grad=True)
    disp = fractional_disparities((2, 3, 3, 67)).requires_grad_()
    got, expected = run_both(monkeypatch, warp_by_disparity, (right, disp))
    assert triton_calls["warp_by_disparity"] == 1
    assert_all_close(got, expected, atol=WARP_ATOL)
    assert got[0][:, :, :, :, :1].abs().sum() > 0 and (got[0] == 0).any()  # samples inside and outside the image


def test_concat_volume_triton(triton_calls, monkeypatch):
    """Fractional disparities with gradients for left, right and disparity."""
    torch.manual_seed(6)
    left = torch.randn(2, 5, 4, 9, requires_grad=True)
    right = torch.randn(2, 5, 4, 9, requires_grad=True)
    disp = fractional_disparities((2, 3, 4, 9)).requires_grad_()
    got, expected = run_both(monkeypatch, concat_volume, (left, right, disp))
    assert triton_calls["concat_volume"] == 1
    assert got[0].shape == (2, 10, 3, 4, 9)
    assert_all_close(got, expected, atol=WARP_ATOL)


def test_concat_volume_integer_hypotheses_triton(triton_calls, monkeypatch):
    """SemStereo's use: integer hypotheses (no disparity gradient), signed, partly outside the image."""
    torch.manual_seed(7)
    left = torch.randn(1, 6, 3, 11, requires_grad=True)
    right = torch.randn(1, 6, 3, 11, requires_grad=True)
    disp = torch.randint(-12, 12, (1, 4, 3, 11)).float()
    got, expected = run_both(monkeypatch, concat_volume, (left, right, disp))
    assert triton_calls["concat_volume"] == 1
    assert_all_close(got, expected, atol=WARP_ATOL)


def flow_coords(batch: int, height: int, width: int, spread: float) -> torch.Tensor:
    """Pixel grid ``B×2×H×W`` plus random displacements up to ``spread`` px (some windows leave the image)."""
    torch.manual_seed(3)
    ys, xs = torch.meshgrid(torch.arange(height * 1.0), torch.arange(width * 1.0), indexing="ij")
    return torch.stack((xs, ys)).expand(batch, -1, -1, -1) + (torch.rand(batch, 2, height, width) * 2 - 1) * spread


def all_pairs_lookup(f1: torch.Tensor, f2: torch.Tensor, coords: torch.Tensor, levels: int, radius: int):
    return corr_lookup(corr_pyramid(f1, f2, num_levels=levels), coords, radius=radius)


@pytest.mark.parametrize("radius,channels", [(1, 33), (2, 5)])
def test_corr_lookup_windowed_triton_matches_all_pairs(radius, channels, triton_calls, monkeypatch):
    """Windowed Triton lookup = all-pairs pyramid + lookup: values, fmap1/fmap2/coords gradients; 3 levels, 315 pixels
    (10 pixel blocks, the last partial), 33 channels (two channel blocks in the backward)."""
    torch.manual_seed(2)
    f1 = torch.randn(2, channels, 9, 35, requires_grad=True)
    f2 = torch.randn(2, channels, 9, 35, requires_grad=True)
    coords = flow_coords(2, 9, 35, spread=6.0).requires_grad_()
    got, windowed = run_both(
        monkeypatch, lambda a, b, c: corr_lookup_windowed(a, feature_pyramid(b, 3), c, radius), (f1, f2, coords)
    )
    assert triton_calls["window_correlation"] == 3
    _, expected = run_both(monkeypatch, lambda a, b, c: all_pairs_lookup(a, b, c, 3, radius), (f1, f2, coords))
    assert got[0].shape == (2, 3 * (2 * radius + 1) ** 2, 9, 35)
    assert_all_close(got, expected, atol=2e-5)
    assert_all_close(windowed, expected, atol=2e-5)


def test_corr_lookup_windowed_reference_chunks(monkeypatch):
    """The chunked PyTorch windowed lookup (many chunks) equals the all-pairs lookup, values and gradients."""
    monkeypatch.setenv(backend.ENV_VAR, "torch")
    monkeypatch.setattr(raft_corr, "_CHUNK_ELEMENTS", 500)
    torch.manual_seed(4)
    f1 = torch.randn(2, 6, 12, 17, dtype=torch.float64, requires_grad=True)
    f2 = torch.randn(2, 6, 12, 17, dtype=torch.float64, requires_grad=True)
    coords = flow_coords(2, 12, 17, spread=9.0).double().requires_grad_()
    grad_out = torch.randn(2, 2 * 25, 12, 17, dtype=torch.float64)
    outs = []
    for fn in (
        lambda: corr_lookup_windowed(f1, feature_pyramid(f2, 2), coords, 2),
        lambda: all_pairs_lookup(f1, f2, coords, 2, 2),
    ):
        out = fn()
        outs.append([out, *torch.autograd.grad(out, (f1, f2, coords), grad_out)])
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_corr_lookup_windowed_bad_input():
    f1 = torch.zeros(1, 4, 6, 6)
    with pytest.raises(ValueError, match="coords"):
        corr_lookup_windowed(f1, feature_pyramid(f1, 2), torch.zeros(1, 2, 6, 5))
    with pytest.raises(ValueError, match="pyramid level 1"):
        corr_lookup_windowed(f1, [f1, torch.zeros(1, 3, 3, 3)], torch.zeros(1, 2, 6, 6))


def test_dispatch(ops, triton_calls, monkeypatch):
    """auto and torch keep CPU tensors on the reference; bad values and impossible requests raise one clear line."""
    left, right = torch.randn(1, 4, 3, 5), torch.randn(1, 4, 3, 5)
    for mode in ("auto", "torch", ""):
        monkeypatch.setenv(backend.ENV_VAR, mode)
        gwc_volume_norm(left, right, -1, 2, 2)
    assert not triton_calls
    monkeypatch.setenv(backend.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match="SEMVISION_KERNELS='fastest'"):
        gwc_volume_norm(left, right, -1, 2, 2)
    monkeypatch.setenv(backend.ENV_VAR, "triton")
    monkeypatch.setattr(ops, "interpreted", lambda: False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        warp_by_disparity(right, torch.zeros(1, 2, 3, 5))
    monkeypatch.setattr(backend, "triton_available", lambda: False)
    with pytest.raises(RuntimeError, match="triton is not installed"):
        concat_volume(left, right, torch.zeros(1, 2, 3, 5))
    assert not triton_calls


@pytest.fixture(scope="module")
def compiled_ops() -> Iterator[ModuleType]:
    """A private copy of ``triton_ops`` built for the compiler (interpreter off), not registered in ``sys.modules``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TRITON_INTERPRET", raising=False)
        spec = importlib.util.find_spec(OPS_MODULE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    assert not module.interpreted()
    yield module


KERNELS = {  # case -> (kernel, constexpr arguments, float32 pointer arguments whatever the input dtype)
    "gwc_fwd": ("_gwc_fwd_kernel", {"BLOCK_D": 16, "BLOCK_X": 64}, ()),
    "gwc_bwd": ("_gwc_bwd_kernel", {"BLOCK_X": 64}, ()),
    "warp_fwd": ("_warp_fwd_kernel", {"WITH_LEFT": False, "BLOCK_C": 16, "BLOCK_X": 64}, ()),
    "concat_fwd": ("_warp_fwd_kernel", {"WITH_LEFT": True, "BLOCK_C": 16, "BLOCK_X": 64}, ()),
    "warp_bwd": ("_warp_bwd_kernel", {"BLOCK_X": 64}, ("grad_right_ptr", "grad_disp_ptr")),
    "window_fwd": ("_window_fwd_kernel", {"SIDE": 10, "BLOCK_P": 32, "BLOCK_K": 128}, ()),
    "window_bwd": ("_window_bwd_kernel", {"SIDE": 10, "BLOCK_C": 32, "BLOCK_P": 32}, ("grad_f1_ptr", "grad_f2_ptr")),
}


@pytest.mark.parametrize("case", sorted(KERNELS))
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_kernels_compile_for_hopper(case, dtype, compiled_ops):
    """The real compiler (Triton frontend, LLVM, ptxas; no GPU needed) builds every kernel for sm_90, which the
    interpreter alone would not prove."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    name, constexprs, fp32_pointers = KERNELS[case]
    fn = getattr(compiled_ops, name)
    params = [p.name for p in fn.params]
    signature = {}
    for param in params:
        if param in constexprs:
            signature[param] = "constexpr"
        elif param == "corner_ptr":
            signature[param] = "*i32"
        elif param in fp32_pointers:
            signature[param] = "*fp32"
        elif param.endswith("_ptr"):
            signature[param] = f"*{dtype}"
        else:
            signature[param] = "fp32" if param == "scale" else "i32"
    source = ASTSource(fn=fn, signature=signature, constexprs={(params.index(k),): v for k, v in constexprs.items()})
    kernel = triton.compile(source, target=GPUTarget("cuda", 90, 32))
    assert kernel.asm["cubin"]
