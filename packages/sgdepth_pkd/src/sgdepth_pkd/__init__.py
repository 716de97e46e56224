"""SGDepth-PKD: semantic-guided monocular depth with patch knowledge distillation (SGDepth-based, KITTI).

Networks (``SGDepth``, GLA), checkpoints (``load_pretrained``), losses, KITTI / Cityscapes metrics, the patch
knowledge-distillation target (``build_distillation_target``) and inference on image files.
"""

from semcommon.runtime import package_version
from sgdepth_pkd.checkpoint import CheckpointError, load_imagenet_backbones, load_pretrained
from sgdepth_pkd.config import GLAEncoderConfig, SGDepthConfig, TrainingConfig
from sgdepth_pkd.inference import Prediction, predict_image, preprocess, relative_pose
from sgdepth_pkd.losses import (
    DepthLossConfig,
    class_label_map,
    depth_reprojection_losses,
    patch_kd_loss,
    self_supervised_depth_loss,
    semantic_depth_consistency,
    total_loss,
    weighted_segmentation_ce,
)
from sgdepth_pkd.metrics import DepthRunningScore, SegmentationRunningScore, evaluate_depth_batch
from sgdepth_pkd.model import GLAResNetEncoder, GlobalLocalAttentionModule, SGDepth, build_sgdepth
from sgdepth_pkd.patch_kd import (
    ModuleTeacher,
    PatchKDConfig,
    PrecomputedTeacher,
    SelfTeacher,
    build_distillation_target,
)

__version__ = package_version("semvision-sgdepth-pkd")

__all__ = [
    "CheckpointError",
    "DepthLossConfig",
    "DepthRunningScore",
    "GLAEncoderConfig",
    "GLAResNetEncoder",
    "GlobalLocalAttentionModule",
    "ModuleTeacher",
    "PatchKDConfig",
    "PrecomputedTeacher",
    "Prediction",
    "SGDepth",
    "SGDepthConfig",
    "SegmentationRunningScore",
    "SelfTeacher",
    "TrainingConfig",
    "build_distillation_target",
    "build_sgdepth",
    "class_label_map",
    "depth_reprojection_losses",
    "evaluate_depth_batch",
    "load_imagenet_backbones",
    "load_pretrained",
    "patch_kd_loss",
    "predict_image",
    "preprocess",
    "relative_pose",
    "self_supervised_depth_loss",
    "semantic_depth_consistency",
    "total_loss",
    "weighted_segmentation_ce",
]
