"""Regression tests for the defects listed in issue 16 ("Defects found by review")."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from skimage import data as skdata

from semcommon.io import read_image, write_image
from semcommon.testing import load_manifest, manifest_params
from ssp import CheckpointError, HieraUperNet, SSPVideoModel, VideoModelConfig, load_pretrained
from ssp.cli import main
from ssp.config import load_experiment_config
from ssp.model import RAFT
from ssp.model.registration import LearnedRegistrator, kornia_available
from ssp.predict import normalize, predict_pair


def _shape_only_checkpoint(path, shapes: dict[str, list[int]]) -> None:
    """A checkpoint with every manifest key at its shape, stored as expanded scalars (tiny files)."""
    state = {k: torch.zeros(1).expand(*shape) if shape else torch.zeros(()) for k, shape in shapes.items()}
    torch.save({"model": state, "epoch": 200}, path)


@pytest.mark.parametrize("manifest_path", manifest_params("ssp"))
def test_every_manifest_checkpoint_loads_without_model(tmp_path, manifest_path) -> None:
    manifest = load_manifest(manifest_path)
    path = tmp_path / f"{manifest['model']}.pth.tar"
    _shape_only_checkpoint(path, manifest["state_dict"])
    model = load_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) == manifest["num_params"]
    assert list(model.state_dict()) == list(manifest["state_dict"])
    expected = {"raft_things": RAFT, "ssp_uavid": SSPVideoModel}.get(manifest["model"], HieraUperNet)
    assert isinstance(model, expected)
    if manifest["model"] == "ssp_uavid":
        assert model.base_model.config.checkpoint_model == "small"
        assert model.config.k_registrator_model == "disk"
    elif expected is HieraUperNet:
        assert model.config.checkpoint_model == manifest["config"]["image_model_cfg"]["checkpoint_model"]


def test_nan_weights_are_refused(tmp_path, reduced_image_config) -> None:
    state = HieraUperNet(reduced_image_config).state_dict()
    state["head.classifier.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.pth.tar"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="head.classifier.weight.*NaN"):
        load_pretrained(path, model=HieraUperNet(reduced_image_config))


def _photo_pair(shift: tuple[int, int] = (6, 4), size: tuple[int, int] = (128, 160)) -> tuple[np.ndarray, np.ndarray]:
    """Two crops of a real photo: content at previous pixel p appears at p + shift (x, y) in the current crop."""
    photo = skdata.astronaut()
    y, x = 100, 150
    last = photo[y : y + size[0], x : x + size[1]]
    current = photo[y - shift[1] : y - shift[1] + size[0], x - shift[0] : x - shift[0] + size[1]]
    return np.ascontiguousarray(last), np.ascontiguousarray(current)


class _MutualNearestMatcher(torch.nn.Module):
    """LightGlueMatcher's call signature with mutual-nearest-descriptor matching (no trained weights needed)."""

    def forward(self, desc1, desc2, lafs1, lafs2, hw1, hw2):
        distances = torch.cdist(desc1, desc2)
        forward, backward = distances.argmin(1), distances.argmin(0)
        keep = backward[forward] == torch.arange(len(desc1))
        rows = torch.nonzero(keep)[:, 0]
        return distances[rows, forward[rows]], torch.stack([rows, forward[rows]], 1)


class _KnownKeypoints(torch.nn.Module):
    """DISK's call signature returning known correspondences: current = H(previous), in shuffled order."""

    def __init__(self, homography: torch.Tensor) -> None:
        super().__init__()
        self.homography = homography

    def forward(self, images, n=None, pad_if_not_divisible=False):
        from kornia.feature.disk.structs import DISKFeatures

        generator = torch.Generator().manual_seed(0)
        points = torch.rand(60, 2, generator=generator) * torch.tensor([150.0, 120.0])
        mapped = torch.cat([points, torch.ones(60, 1)], 1) @ self.homography.T
        mapped = mapped[:, :2] / mapped[:, 2:]
        descriptors = torch.randn(60, 128, generator=generator)
        order = torch.randperm(60, generator=generator)
        scores = torch.ones(60)
        return [DISKFeatures(points, descriptors, scores), DISKFeatures(mapped[order], descriptors[order], scores)]


@pytest.mark.skipif(not kornia_available(), reason="the learned registrator needs the ssp[learned] extra (kornia)")
def test_disk_registrator_estimates_previous_to_current_homography() -> None:
    torch.manual_seed(0)
    truth = torch.tensor([[1.02, 0.03, 6.0], [-0.02, 0.99, 4.0], [1e-4, 0.0, 1.0]])
    registrator = LearnedRegistrator().eval()
    registrator.disk = _KnownKeypoints(truth)
    registrator.lg_matcher = _MutualNearestMatcher()
    frames = torch.zeros(1, 3, 128, 160)
    homos = registrator(frames, frames)
    assert homos.shape == (1, 3, 3) and registrator.failures == 0
    torch.testing.assert_close(homos[0] / homos[0, 2, 2], truth, atol=1e-3, rtol=1e-3)


@pytest.mark.skipif(not kornia_available(), reason="the learned registrator needs the ssp[learned] extra (kornia)")
def test_disk_registrator_runs_with_lightglue_and_falls_back_to_identity() -> None:
    torch.manual_seed(0)
    registrator = LearnedRegistrator(num_features=256).eval()
    last, current = _photo_pair()
    homos = registrator(normalize(last), normalize(current))
    assert homos.shape == (1, 3, 3) and torch.isfinite(homos).all()
    if registrator.failures:
        assert torch.equal(homos[0], torch.eye(3))


def test_nan_frames_are_refused(reduced_image_config) -> None:
    model = SSPVideoModel(VideoModelConfig(k_registrator_model="identity"), reduced_image_config, False).eval()
    video = torch.zeros(2, 3, 64, 64)
    video[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.infer_video(video)
    with pytest.raises(ValueError, match="NaN"):
        model(video[1:], video[:1], homos=torch.eye(3)[None])


def test_pairs_of_different_sizes_are_refused(tmp_path, video_checkpoint) -> None:
    last, current = _photo_pair()
    write_image(tmp_path / "a.png", last)
    write_image(tmp_path / "b.png", current[:100])
    model = load_pretrained(video_checkpoint)
    with pytest.raises(ValueError, match=r"a\.png.*b\.png.*same size"):
        predict_pair(model, tmp_path / "a.png", tmp_path / "b.png", size=(64, 96))


def test_prediction_is_written_at_the_input_size(tmp_path, video_checkpoint) -> None:
    last, current = _photo_pair(size=(70, 90))
    write_image(tmp_path / "a.png", last)
    write_image(tmp_path / "b.png", current)
    checkpoint = video_checkpoint
    out = tmp_path / "pred.png"
    frames = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    code = main(
        ["predict", str(checkpoint), *frames, "--out", str(out), "--size", "64", "96", "--registration", "identity"]
    )
    assert code == 0
    pred = read_image(out)
    assert pred.shape == (70, 90) and pred.min() >= 1 and pred.max() <= 8


def test_internal_errors_keep_their_traceback(tmp_path, video_checkpoint, monkeypatch) -> None:
    last, current = _photo_pair(size=(64, 64))
    write_image(tmp_path / "a.png", last)
    write_image(tmp_path / "b.png", current)

    def broken(*args, **kwargs):
        raise RuntimeError("internal bug")

    monkeypatch.setattr("ssp.predict.predict_pair", broken)
    checkpoint = video_checkpoint
    with pytest.raises(RuntimeError, match="internal bug"):
        main(["predict", str(checkpoint), str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", "x.png"])


def test_baseline_keys_are_not_configuration() -> None:
    names = {f.name for f in dataclasses.fields(VideoModelConfig)}
    assert not names & {"train_flow", "flow_iters", "k_interval", "flow_mode", "tcb_module"}
    section = {"model_name": "base", "sim_op": "conv", "train_flow": True, "flow_iters": 8, "tcb_module": "ocr"}
    config = load_experiment_config({"data_cfg": {"dataset": "uavid"}, "video_model_cfg": section})
    assert config.video_model == VideoModelConfig(sim_op="conv")
    with pytest.raises(ValueError, match="model_name.*dff2"):
        load_experiment_config({"video_model_cfg": {"model_name": "dff2", "k_interval": 8}})
    with pytest.raises(ValueError, match="typo_key"):
        load_experiment_config({"video_model_cfg": {"typo_key": 1}})
