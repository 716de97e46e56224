"""Patch knowledge distillation: gradient-density patch selection, frozen teachers, dual-teacher fusion."""

from sgdepth_pkd.patch_kd.fusion import (
    DistillationResult,
    PatchDetails,
    PatchKDConfig,
    build_distillation_target,
    distill_batch,
)
from sgdepth_pkd.patch_kd.select import SelectionConfig, select_patches
from sgdepth_pkd.patch_kd.teachers import (
    DisparityTeacher,
    ModuleTeacher,
    MultiScaleTeacher,
    PrecomputedTeacher,
    SelfTeacher,
    WindowTeacher,
)

__all__ = [
    "DisparityTeacher",
    "DistillationResult",
    "ModuleTeacher",
    "MultiScaleTeacher",
    "PatchDetails",
    "PatchKDConfig",
    "PrecomputedTeacher",
    "SelectionConfig",
    "SelfTeacher",
    "WindowTeacher",
    "build_distillation_target",
    "distill_batch",
    "select_patches",
]
