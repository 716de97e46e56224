"""SemaGlue networks: SuperPoint, SegNeXt MSCAN-Tiny, the SemaGlue matcher and the ``Matching`` pipeline."""

from semaglue.model.layers import (
    IMPLS,
    CrossBlock,
    LearnableFourierPositionalEncoding,
    SelfBlock,
    normalize_keypoints,
    set_impl,
)
from semaglue.model.matcher import MatchAssignment, SemaGlue, SemaGlueLayer, filter_matches, sigmoid_log_double_softmax
from semaglue.model.mscan import MSCAN
from semaglue.model.pipeline import FeatureMatcher, Matching, pad_keypoints
from semaglue.model.segnext import SegNext
from semaglue.model.semantic import CDA, SAF, SegFeatureProcessor, snake_flatten
from semaglue.model.superpoint import SuperPoint, simple_nms

__all__ = [
    "CDA",
    "IMPLS",
    "MSCAN",
    "SAF",
    "CrossBlock",
    "FeatureMatcher",
    "LearnableFourierPositionalEncoding",
    "MatchAssignment",
    "Matching",
    "SegFeatureProcessor",
    "SegNext",
    "SelfBlock",
    "SemaGlue",
    "SemaGlueLayer",
    "SuperPoint",
    "filter_matches",
    "normalize_keypoints",
    "pad_keypoints",
    "set_impl",
    "sigmoid_log_double_softmax",
    "simple_nms",
    "snake_flatten",
]
