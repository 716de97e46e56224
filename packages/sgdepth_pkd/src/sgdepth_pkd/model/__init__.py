"""Networks of sgdepth_pkd: encoder + block self-attention, partial decoder and heads, pose net, SGDepth, GLA."""

from sgdepth_pkd.model.attention import BlockSelfAttention, block_self_attention
from sgdepth_pkd.model.decoder import MultiResDepth, MultiResSeg, PartialDecoder, decoder_plan
from sgdepth_pkd.model.encoder import ResnetEncoder
from sgdepth_pkd.model.gla import GLAResNetEncoder, GlobalLocalAttentionModule
from sgdepth_pkd.model.pose import PoseDecoder, PoseNet
from sgdepth_pkd.model.sgdepth import ScaledSplit, SGDepth, build_sgdepth, has_purpose, segmentation_mask

__all__ = [
    "BlockSelfAttention",
    "GLAResNetEncoder",
    "GlobalLocalAttentionModule",
    "MultiResDepth",
    "MultiResSeg",
    "PartialDecoder",
    "PoseDecoder",
    "PoseNet",
    "ResnetEncoder",
    "SGDepth",
    "ScaledSplit",
    "block_self_attention",
    "build_sgdepth",
    "decoder_plan",
    "has_purpose",
    "segmentation_mask",
]
