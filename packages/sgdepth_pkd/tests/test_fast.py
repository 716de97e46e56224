"""The exact fast path (impl="fast") against the reference path beyond the fixture: random BN statistics, every
tensor method, batch dicts of each purpose, both mask modes, cache invalidation, fall-back in training / autograd."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.model.fast import argmax_channels, check_impl, fold_conv_bn
from sgdepth_pkd.model.sgdepth import SGDepth

H, W = 64, 64
RTOL = 1e-4  # the fixture README: 1e-4 x max(1, max|reference|)


def _randomize_norms(model: torch.nn.Module, seed: int = 1) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2, generator=g)
                module.running_var.uniform_(0.3, 2.0, generator=g)
                module.weight.uniform_(0.5, 1.5, generator=g)
                module.bias.normal_(0.0, 0.2, generator=g)


def _model(mode: str = "binary") -> SGDepth:
    torch.manual_seed(0)
    model = SGDepth(SGDepthConfig(num_layers=18, num_layers_pose=18, sdcon_label_map=mode))
    _randomize_norms(model)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> SGDepth:
    return _model()


def _images(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, H, W, generator=torch.Generator().manual_seed(seed))


def _close(a, b) -> None:
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _close(x, y)
    else:
        assert a.shape == b.shape and a.dtype == b.dtype
        atol = RTOL * max(1.0, float(b.abs().max())) if a.is_floating_point() else 0
        torch.testing.assert_close(a, b, rtol=0, atol=atol)


@torch.no_grad()
def test_tensor_methods_match_reference(model: SGDepth) -> None:
    x = _images()
    for method in ("predict", "predict_disparities", "predict_segmentation", "encoder_features"):
        fast, ref = getattr(model, method)(x, impl="fast"), getattr(model, method)(x, impl="reference")
        _close(fast, ref)
    # the fast path is really taken: the folded encoder is cached on the model
    assert model._fast_cache.fast is not None


@pytest.mark.parametrize("mode", ["binary", "classes"])
@torch.no_grad()
def test_batch_forward_matches_reference_for_every_purpose(mode: str) -> None:
    net = _model(mode)
    kitti = {("color_aug", 0, 0): _images(2, 1), ("color_aug", -1, 0): _images(2, 2), "purposes": [["depth"]]}
    both = {("color_aug", 0, 0): _images(1, 3), "purposes": [["depth"], ["segmentation"]]}
    city = {("color_aug", 0, 0): _images(3, 4), "purposes": [["segmentation"]]}
    for batch in ((kitti, city), (both,), (city,), (kitti,)):
        fast, ref = net(batch, impl="fast"), net(batch, impl="reference")
        for f, r in zip(fast, ref, strict=True):
            assert f.keys() == r.keys()
            for key in r:
                _close(f[key], r[key])


def test_fast_falls_back_with_autograd_and_in_training(model: SGDepth) -> None:
    x = _images(1)
    disp = model.predict_disparity(x, impl="fast")  # autograd on: reference ops, gradients reach the encoder
    disp.sum().backward()
    assert model.common.encoder.encoder.conv1.weight.grad is not None
    model.zero_grad()
    model.train()
    try:
        with torch.no_grad():
            train_fast = model.predict_disparity(x, impl="fast")
            train_ref = model.predict_disparity(x, impl="reference")
        _close(train_fast, train_ref)  # batch statistics, not folded running statistics
    finally:
        model.eval()


@torch.no_grad()
def test_cache_follows_weight_changes() -> None:
    net = _model()
    x = _images(1)
    before = net.predict_disparity(x, impl="fast")
    net.common.encoder.encoder.bn1.running_mean.add_(0.5)  # in place: the version counter changes
    after = net.predict_disparity(x, impl="fast")
    assert not torch.allclose(before, after)
    _close(after, net.predict_disparity(x, impl="reference"))
    other = _model()
    _randomize_norms(other, seed=7)
    net.load_state_dict(other.state_dict())
    _close(net.predict_disparity(x, impl="fast"), other.predict_disparity(x, impl="reference"))
    clone = copy.deepcopy(net)  # copies and pickles drop the cache
    assert clone._fast_cache.fast is None
    assert pickle.loads(pickle.dumps(net))._fast_cache.fast is None
    _close(clone.predict_disparity(x, impl="fast"), other.predict_disparity(x, impl="reference"))


def test_fold_conv_bn_matches_conv_then_bn() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=True)
    bn = torch.nn.BatchNorm2d(6).eval()
    _randomize_norms(bn)
    x = torch.randn(2, 4, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(fold_conv_bn(conv, bn)(x), bn(conv(x)), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="fold_conv_bn"):
        fold_conv_bn(torch.nn.Conv2d(4, 4, 3, groups=2), torch.nn.BatchNorm2d(4))


def test_argmax_channels_takes_the_first_maximum() -> None:
    logits = torch.randn(2, 7, 5, 6)
    logits[0, 3, 0, 0] = logits[0, 5, 0, 0] = 50.0  # tie: first index wins, as argmax
    assert torch.equal(argmax_channels(logits), logits.argmax(1, keepdim=True))
    assert argmax_channels(logits)[0, 0, 0, 0] == 3


def test_bad_impl_is_named(model: SGDepth) -> None:
    with pytest.raises(ValueError, match="impl"):
        check_impl("quick")
    with pytest.raises(ValueError, match="impl"):
        model.predict(_images(1), impl="quick")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@torch.no_grad()
def test_cuda_graph_replays_match_reference_and_do_not_alias() -> None:
    net = _model().cuda()
    torch.backends.cudnn.allow_tf32 = False
    first, second = _images(2, 5).cuda(), _images(2, 6).cuda()
    net.predict(first, impl="fast")  # first call of the shape: eager
    out_first = net.predict(first, impl="fast")  # second: captured
    out_second = net.predict(second, impl="fast")  # replay of the same graph: must not overwrite out_first
    assert len(net.fast_path()._graphs) == 1
    _close(out_first, net.predict(first, impl="reference"))
    _close(out_second, net.predict(second, impl="reference"))
    batch = {("color_aug", 0, 0): first, "purposes": [["depth"], ["segmentation"]]}
    fast, ref = net((batch,), impl="fast")[0], net((batch,), impl="reference")[0]
    for key in ref:
        _close(fast[key], ref[key])
