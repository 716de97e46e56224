"""Patch knowledge distillation: gradient-density patch selection, frozen teachers, dual-teacher fusion."""

from .fusion import DistillationResult, PatchDetails, PatchKDConfig, build_distillation_target, distill_batch
from .select import SelectionConfig, select_patches
from .teachers import DisparityTeacher, ModuleTeacher, MultiScaleTeacher, PrecomputedTeacher, SelfTeacher, WindowTeacher

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
