"""SSP / KD-SSP (CVPR 2025): temporally consistent video semantic segmentation for UAVs (UAVid, RuralScapes)."""

from semcommon.runtime import package_version
from ssp.checkpoint import CheckpointError, load_pretrained, load_sam2_backbone
from ssp.config import (
    ExperimentConfig,
    HieraConfig,
    ImageModelConfig,
    RaftConfig,
    UperNetConfig,
    VideoModelConfig,
    load_experiment_config,
)
from ssp.geometry import flow_warp, scale_homography, warp_perspective
from ssp.model import (
    RAFT,
    Hiera,
    HieraUperNet,
    IdentityRegistrator,
    LearnedRegistrator,
    OpenCVRegistrator,
    SSPVideoModel,
    build_image_model,
    build_ssp_model,
)

__version__ = package_version("semvision-ssp")

__all__ = [
    "RAFT",
    "CheckpointError",
    "ExperimentConfig",
    "Hiera",
    "HieraConfig",
    "HieraUperNet",
    "IdentityRegistrator",
    "ImageModelConfig",
    "LearnedRegistrator",
    "OpenCVRegistrator",
    "RaftConfig",
    "SSPVideoModel",
    "UperNetConfig",
    "VideoModelConfig",
    "build_image_model",
    "build_ssp_model",
    "flow_warp",
    "load_experiment_config",
    "load_pretrained",
    "load_sam2_backbone",
    "scale_homography",
    "warp_perspective",
]
