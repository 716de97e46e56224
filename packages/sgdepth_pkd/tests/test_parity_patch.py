"""Parity of the patch knowledge-distillation fusion with the authors' code (fixture target ``patch_kd_fusion``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from semcommon.testing import Case, assert_close, case_params, load_case
from sgdepth_pkd.patch_kd.fusion import distill_batch
from sgdepth_pkd.patch_kd.teachers import ModuleTeacher, SelfTeacher


class _StoredSelfTeacher(torch.nn.Module):
    """Stands for the frozen SGDepth: returns the stored disparities of the 1.5x / 1x / 0.5x stacks by input size."""

    def __init__(self, case: Case, image: int) -> None:
        super().__init__()
        stored = [case.tensor(f"teacher_{scale}_{image}") for scale in ("hr", "mr", "lr")]
        self.outputs = {tensor.shape[-1]: tensor for tensor in stored}

    def predict_disparity(self, images: torch.Tensor) -> torch.Tensor:
        stored = self.outputs[images.shape[-1]]
        assert images.shape == (stored.shape[0], 3, *stored.shape[-2:]), f"unexpected teacher input {images.shape}"
        return stored


def _stored_external(case: Case, image: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Stands for DPT-Hybrid: the stored raw output (N×128×128) of the patch stack."""
    stored = case.tensor(f"dpt_raw_{image}")

    def teacher(patches: torch.Tensor) -> torch.Tensor:
        assert patches.shape == (stored.shape[0], 3, *stored.shape[-2:]), f"unexpected teacher input {patches.shape}"
        return stored

    return teacher


def run_patch_kd_fusion(case: Case) -> None:
    color_aug, disp = case.tensor("color_aug"), case.tensor("disp")
    for i in range(color_aug.shape[0]):
        self_teacher = SelfTeacher(_StoredSelfTeacher(case, i))
        external = ModuleTeacher(_stored_external(case, i), name="dpt stub")
        result = distill_batch(color_aug[i : i + 1], disp[i : i + 1], self_teacher, external)
        details = result.details[0]
        assert_close(details.rects, case.expected(f"rects_{i}"), name=f"rects_{i}")
        assert_close(details.order, case.expected(f"patch_order_{i}"), name=f"patch_order_{i}")
        assert_close(details.edge_counts, case.expected(f"edge_counts_{i}"), name=f"edge_counts_{i}")
        assert_close(details.weight_classes, case.expected(f"weight_class_{i}"), name=f"weight_class_{i}")
        assert_close(details.fused_self, case.expected(f"fused_self_{i}"), atol=1e-4, name=f"fused_self_{i}")
        assert_close(details.external_norm, case.expected(f"dpt_norm_{i}"), atol=1e-4, name=f"dpt_norm_{i}")
        assert_close(result.disp_a, case.expected("disp_a")[i : i + 1], atol=1e-4, name="disp_a")
        assert_close(result.patchnums, case.expected("patchnums")[i : i + 1], name="patchnums")


RUNNERS: dict[str, Callable[[Case], None]] = {"patch_kd_fusion": run_patch_kd_fusion}


@pytest.mark.parametrize("target", sorted(RUNNERS))
def test_patch_targets_have_cases(target: str) -> None:
    """Each runner's fixture target exists (an absent fixture folder skips, or fails under CI)."""
    params = case_params("sgdepth_pkd", target=target)
    assert params, f"no fixture case for target {target!r}"


@pytest.mark.parametrize("path", case_params("sgdepth_pkd", target="patch_kd_fusion"))
def test_patch_kd_fusion(path) -> None:
    case = load_case(path)
    torch.manual_seed(0)
    RUNNERS[case.target](case)
