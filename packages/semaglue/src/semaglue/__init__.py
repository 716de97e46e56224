"""SemaGlue (AAAI 2025): SuperPoint + LightGlue-style matcher with semantic amalgamation; YFCC pose evaluation."""

from torch import nn

from semaglue.checkpoint import load_matching, load_pretrained
from semaglue.config import MatchingConfig, SegNextConfig, SemaGlueConfig, SuperPointConfig, yfcc_superpoint_config
from semaglue.model import MSCAN, Matching, SegNext, SemaGlue, SuperPoint
from semcommon.runtime import package_version

__version__ = package_version("semvision-semaglue")

__all__ = [
    "MSCAN",
    "Matching",
    "MatchingConfig",
    "SegNext",
    "SegNextConfig",
    "SemaGlue",
    "SemaGlueConfig",
    "SuperPoint",
    "SuperPointConfig",
    "build_model",
    "load_matching",
    "load_pretrained",
    "yfcc_superpoint_config",
]


def build_model(name: str, **config: object) -> nn.Module:
    """Build ``"superpoint" | "segnext" | "matcher" | "matching"`` with config overrides (random weights)."""
    builders = {
        "superpoint": (SuperPoint, SuperPointConfig),
        "segnext": (SegNext, SegNextConfig),
        "matcher": (SemaGlue, SemaGlueConfig),
    }
    if name == "matching":
        return Matching(MatchingConfig(**config))  # type: ignore[arg-type]
    if name not in builders:
        raise ValueError(f"unknown model {name!r}; choose from {[*builders, 'matching']}")
    model_cls, config_cls = builders[name]
    return model_cls(config_cls(**config))  # type: ignore[arg-type]
