from __future__ import annotations

import pytest
import torch

from ssp.config import HieraConfig, ImageModelConfig

REDUCED_HIERA = HieraConfig(embed_dim=32, num_heads=1, stages=(1, 2, 5, 2), global_att_blocks=(5, 7))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def reduced_image_config() -> ImageModelConfig:
    """The fixture's reduced Hiera (embed 32, stages 1,2,5,2) + UperNet(64), 8 classes."""
    return ImageModelConfig(hiera=REDUCED_HIERA, upernet_channels=64)
