"""SemStereo network modules (one file per paper module)."""

from semstereo.model.attention3d import AttentionBlock
from semstereo.model.backbone import Feature
from semstereo.model.blocks import BasicConv, ChannelAtt, Conv2x, SegmentHead
from semstereo.model.decoder import FeatUp
from semstereo.model.hourglass import Hourglass
from semstereo.model.semstereo import SemStereo, SemStereoOutput, build_model
from semstereo.model.ssr import SSRUpsample

__all__ = [
    "AttentionBlock",
    "BasicConv",
    "ChannelAtt",
    "Conv2x",
    "FeatUp",
    "Feature",
    "Hourglass",
    "SSRUpsample",
    "SegmentHead",
    "SemStereo",
    "SemStereoOutput",
    "build_model",
]
