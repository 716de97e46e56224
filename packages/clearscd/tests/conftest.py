"""Shared fixtures: a small ClearSCD (reduced FPN width, as the demo) saved in our and the authors' layouts."""

from __future__ import annotations

import json

import pytest
import torch

from clearscd.config import ClearSCDConfig
from clearscd.model import ClearSCD

# One intra-op thread: the suite's tensors are tiny, and on a shared 2-core machine a second OpenMP thread mostly
# spins (measured: 39 s of CPU for the suite with one thread, 155 s with two).
torch.set_num_threads(1)

SMALL = {
    "decoder_pyramid_channels": 32,
    "decoder_segmentation_channels": 32,
    "proj_dim": 32,
    "queue_len": 64,
    "enqueue_len": 16,
    "sample_num": 64,
    "size": 64,
}


@pytest.fixture(scope="session")
def small_config() -> ClearSCDConfig:
    return ClearSCDConfig(**SMALL)


@pytest.fixture(scope="session")
def small_checkpoints(tmp_path_factory, small_config: ClearSCDConfig) -> dict[str, str]:
    """``ours``: RUN_DIR/checkpoints/last.pt layout ({"model", "config"}); ``authors``: {"state_dict"} + a JSON
    config file (``config``)."""
    torch.manual_seed(0)
    model = ClearSCD(small_config)
    folder = tmp_path_factory.mktemp("ckpt")
    (folder / "checkpoints").mkdir()
    ours = folder / "checkpoints" / "last.pt"
    torch.save({"model": model.state_dict(), "config": {"clearscd": small_config.to_dict()}, "step": 0}, ours)
    authors = folder / "checkpoint.pth.tar"
    torch.save({"state_dict": model.state_dict()}, authors)
    config = folder / "ours.json"
    config.write_text(json.dumps({"//////": "", **small_config.to_dict()}))
    return {"ours": str(ours), "authors": str(authors), "config": str(config)}
