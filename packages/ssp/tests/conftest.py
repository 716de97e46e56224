from __future__ import annotations

import pytest
import torch

from ssp.config import HieraConfig, ImageModelConfig

torch.set_num_threads(1)  # tiny tensors: one thread avoids oversubscription on the shared 2-core test machine

REDUCED_HIERA = HieraConfig(embed_dim=32, num_heads=1, stages=(1, 2, 5, 2), global_att_blocks=(5, 7))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def reduced_image_config() -> ImageModelConfig:
    """The fixture's reduced Hiera (embed 32, stages 1,2,5,2) + UperNet(64), 8 classes."""
    return ImageModelConfig(hiera=REDUCED_HIERA, upernet_channels=64)


def _save(model: torch.nn.Module, path, image_config: ImageModelConfig, stage: str):
    """Our checkpoint format: ``{"model": state dict, "config": plain TrainConfig}``."""
    from semcommon.training import to_plain
    from ssp.config import OursCfg, TrainConfig, VideoModelConfig

    ours = OursCfg(stage=stage, hiera=image_config.hiera, upernet_channels=image_config.upernet_channels)
    config = TrainConfig(video_model_cfg=VideoModelConfig(k_registrator_model="identity"), ours=ours)
    torch.save({"model": model.state_dict(), "config": to_plain(config)}, path)
    return path


@pytest.fixture
def video_checkpoint(tmp_path, reduced_image_config):
    """Our checkpoint format for a reduced SSP model (identity registrator, no RAFT), random weights."""
    from ssp.config import VideoModelConfig
    from ssp.model import SSPVideoModel

    model = SSPVideoModel(VideoModelConfig(k_registrator_model="identity"), reduced_image_config, False)
    return _save(model, tmp_path / "video.pt", reduced_image_config, "video")


@pytest.fixture
def image_checkpoint(tmp_path, reduced_image_config):
    """Our checkpoint format for the reduced image model, random weights."""
    from ssp.model import HieraUperNet

    return _save(HieraUperNet(reduced_image_config), tmp_path / "image.pt", reduced_image_config, "image")
