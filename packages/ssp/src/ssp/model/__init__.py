"""SSP networks: Hiera + UperNet image model, similarity blocks, RAFT, registration and the SSP video wrapper."""

from ssp.model.hiera import Hiera
from ssp.model.image_model import HieraUperNet, build_image_model
from ssp.model.raft import RAFT
from ssp.model.registration import IdentityRegistrator, LearnedRegistrator, OpenCVRegistrator, build_registrator
from ssp.model.similarity import ConstantSimBlock, ConvSimBlock, CosSimBlock, build_sim_block
from ssp.model.ssp import SSPVideoModel, build_ssp_model
from ssp.model.upernet import UperNetHead

__all__ = [
    "RAFT",
    "ConstantSimBlock",
    "ConvSimBlock",
    "CosSimBlock",
    "Hiera",
    "HieraUperNet",
    "IdentityRegistrator",
    "LearnedRegistrator",
    "OpenCVRegistrator",
    "SSPVideoModel",
    "UperNetHead",
    "build_image_model",
    "build_registrator",
    "build_sim_block",
    "build_ssp_model",
]
