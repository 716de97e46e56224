"""ClearSCD network modules: encoder, decoder, heads, SACL and the full model."""

from clearscd.model.clearscd import ClearSCD, build_clearscd, downsample_labels
from clearscd.model.decoder import FPNDecoder
from clearscd.model.encoder import EfficientNetEncoder
from clearscd.model.heads import ChangeDetectionHead, ProjectionHead, SegmentationHead

__all__ = [
    "ChangeDetectionHead",
    "ClearSCD",
    "EfficientNetEncoder",
    "FPNDecoder",
    "ProjectionHead",
    "SegmentationHead",
    "build_clearscd",
    "downsample_labels",
]
