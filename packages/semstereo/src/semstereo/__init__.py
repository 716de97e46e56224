"""SemStereo (AAAI 2025): semantic-constrained stereo matching for remote-sensing epipolar pairs (US3D, WHU).

Quick start::

    import torch
    from semstereo import SemStereo, us3d_config, load_pretrained

    model = SemStereo(us3d_config()).eval()          # or load_pretrained("checkpoint_000047.ckpt")
    out = model(left, right)                         # B×3×H×W ImageNet-normalised, H, W multiples of 32
    out.disparity                                    # B×H×W signed disparity (px), out.label_left: B×6×H×W logits
"""

from semcommon.runtime import package_version
from semstereo.checkpoint import load_pretrained, read_state_dict, save_pretrained
from semstereo.config import SemStereoConfig, half_config, us3d_config, whu_config
from semstereo.losses import disparity_loss_train, label_loss, lrsc_loss, train_losses
from semstereo.metrics import SegmentationEvaluator, disparity_metrics
from semstereo.model import SemStereo, SemStereoOutput, build_model

__version__ = package_version("semvision-semstereo")

__all__ = [
    "SegmentationEvaluator",
    "SemStereo",
    "SemStereoConfig",
    "SemStereoOutput",
    "build_model",
    "disparity_loss_train",
    "disparity_metrics",
    "half_config",
    "label_loss",
    "load_pretrained",
    "lrsc_loss",
    "read_state_dict",
    "save_pretrained",
    "train_losses",
    "us3d_config",
    "whu_config",
]
