"""SSP networks: Hiera + UperNet image model, similarity blocks, RAFT, registration and the SSP video wrapper."""

from torch import nn

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
    "compile_networks",
    "set_impl",
]

IMPLS = ("fast", "reference")


def set_impl(module: nn.Module, impl: str) -> nn.Module:
    """Select the implementation of every submodule that has one (an ``impl`` attribute): "fast", the exact fast
    path (outputs equal the reference within the parity tolerances), or "reference", the authors' eager operations
    in their order. Returns ``module``."""
    if impl not in IMPLS:
        raise ValueError(f"--impl: expected fast | reference, got {impl!r}")
    for sub in module.modules():
        if hasattr(sub, "impl"):
            sub.impl = impl
    return module


def compile_networks(model: nn.Module) -> nn.Module:
    """``torch.compile`` the image model's backbone and head and RAFT (``--compile``: opt-in; compiled kernels may
    differ from eager in the last bits, see the README's Speed section). Returns ``model``."""
    networks = [model] if isinstance(model, (HieraUperNet, RAFT)) else [getattr(model, "base_model", None)]
    networks.append(getattr(model, "flow_model", None))
    for network in networks:
        if isinstance(network, HieraUperNet):
            network.backbone.compile()
            network.head.compile()
        elif isinstance(network, RAFT):
            network.compile()
    return model
