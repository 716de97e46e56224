"""ClearSCD (ISPRS JPRS 2024): semantic change detection on bi-temporal imagery (Hi-UCD, LsSCD)."""

from clearscd.checkpoint import CheckpointError, load_encoder_weights, load_pretrained
from clearscd.config import ClearSCDConfig
from clearscd.inference import images_to_input, predict_maps, read_rgb
from clearscd.losses import bcd_loss, bce_with_ignore, bscc_loss, dice_loss_binary, seg_ce, total_loss
from clearscd.metrics import (
    BCDEvaluator,
    SCDChangeEvaluator,
    SCDNoChangeEvaluator,
    SCDTestMetrics,
    SEGEvaluator,
    scd_test_metrics,
)
from clearscd.model import ClearSCD, build_clearscd
from semcommon.runtime import package_version

__version__ = package_version("semvision-clearscd")

__all__ = [
    "BCDEvaluator",
    "CheckpointError",
    "ClearSCD",
    "ClearSCDConfig",
    "SCDChangeEvaluator",
    "SCDNoChangeEvaluator",
    "SCDTestMetrics",
    "SEGEvaluator",
    "bcd_loss",
    "bce_with_ignore",
    "bscc_loss",
    "build_clearscd",
    "dice_loss_binary",
    "images_to_input",
    "load_encoder_weights",
    "load_pretrained",
    "predict_maps",
    "read_rgb",
    "scd_test_metrics",
    "seg_ce",
    "total_loss",
]
