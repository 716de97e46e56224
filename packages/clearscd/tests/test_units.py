"""Unit tests beyond the fixtures: padding, label downsampling, SACL sampling/edge cases, losses, metrics, model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clearscd import ClearSCD, ClearSCDConfig, SCDTestMetrics, bscc_loss, dice_loss_binary, seg_ce, total_loss
from clearscd.metrics import change_type_codes, cohen_kappa, nochange_type_codes
from clearscd.model import downsample_labels
from clearscd.model.encoder import EfficientNetEncoder, StaticSameConv2d
from clearscd.model.sacl import enqueue_keys, local_infonce_loss, sample_class_pixels

# --------------------------------------------------------------------------------------------------- encoder


def test_static_same_padding_of_every_strided_conv() -> None:
    encoder = EfficientNetEncoder()
    assert encoder._conv_stem.static_padding == (0, 1, 0, 1)
    strided = {i: b._depthwise_conv.static_padding for i, b in enumerate(encoder._blocks) if b.spec.stride == 2}
    assert strided == {1: (0, 1, 0, 1), 3: (1, 2, 1, 2), 5: (0, 1, 0, 1), 11: (1, 2, 1, 2)}
    assert encoder._blocks[4]._depthwise_conv.static_padding == (2, 2, 2, 2)
    assert encoder._blocks[2]._depthwise_conv.static_padding == (1, 1, 1, 1)
    assert encoder._blocks[2]._project_conv.static_padding == (0, 0, 0, 0)


def test_static_same_conv_equals_explicit_asymmetric_pad() -> None:
    conv = StaticSameConv2d(4, 6, 5, stride=2, image_size=56)
    x = torch.randn(2, 4, 16, 16)
    expected = F.conv2d(F.pad(x, (1, 2, 1, 2)), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), expected)


def test_encoder_feature_shapes_and_eps() -> None:
    encoder = EfficientNetEncoder().eval()
    feats = encoder(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (3, 64, 64), (32, 32, 32), (24, 16, 16), (40, 8, 8), (112, 4, 4), (320, 2, 2),
    ]  # fmt: skip
    assert encoder._bn0.eps == 1e-3 and encoder._bn0.momentum == 0.01


# --------------------------------------------------------------------------------------------------- SACL


def test_label_downsampling_picks_pixel_4i_4j() -> None:
    labels = torch.arange(64 * 64).reshape(1, 64, 64)
    small = downsample_labels(labels, (16, 16))
    assert torch.equal(small.long(), labels[:, ::4, ::4])


def test_sample_class_pixels_order_cap_and_unlabelled() -> None:
    feats = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    labels = torch.tensor([[[1, 9], [0, 1]], [[1, 1], [9, 0]]])
    cols, vals = sample_class_pixels(feats, labels, num_classes=9, max_per_class=2, generator=torch.Generator())
    assert vals.tolist() == [0, 0, 1, 1]
    # every sampled column is a real pixel of its class
    flat = feats.permute(1, 0, 2, 3).reshape(3, -1)
    flat_labels = labels.reshape(-1)
    for j in range(cols.shape[1]):
        matches = (flat == cols[:, j : j + 1]).all(0)
        assert flat_labels[matches].item() == vals[j].item()


def test_local_infonce_subsampling_is_seeded() -> None:
    torch.manual_seed(0)
    proj, feat = torch.randn(2, 1, 128, 8, 8)
    labels = torch.randint(0, 3, (1, 8, 8))
    args = (proj, proj * 0.5, feat, feat + 0.1, labels, labels)
    one = local_infonce_loss(*args, sample_num=4, generator=torch.Generator().manual_seed(3))
    two = local_infonce_loss(*args, sample_num=4, generator=torch.Generator().manual_seed(3))
    full = local_infonce_loss(*args, sample_num=1024)
    assert torch.equal(one, two)
    assert not torch.allclose(one, full)


def test_sacl_degenerate_dates_do_not_crash() -> None:
    torch.manual_seed(0)
    proj, feat = torch.randn(2, 1, 128, 4, 4)
    single = torch.full((1, 4, 4), 3)
    empty = torch.full((1, 4, 4), 9)
    loss = local_infonce_loss(proj, proj, feat, feat, single, empty)
    assert loss.item() == 0.0  # one class, no negatives: −log softmax([s]) = 0
    assert local_infonce_loss(proj, proj, feat, feat, empty, empty).item() == 0.0


def test_enqueue_skips_small_classes_and_wraps() -> None:
    queues = [torch.zeros(4, 8) for _ in range(3)]
    pointers = [torch.tensor([6]), torch.tensor([0]), torch.tensor([0])]
    keys = torch.randn(4, 5)
    vals = torch.tensor([0, 0, 2, 1, 9])
    enqueue_keys(queues, pointers, keys, vals, enqueue_len=2)
    assert [int(p) for p in pointers] == [0, 0, 0]
    torch.testing.assert_close(queues[0][:, 6:8], F.normalize(keys, dim=0)[:, :2])
    assert queues[1].abs().sum() == 0 and queues[2].abs().sum() == 0


# --------------------------------------------------------------------------------------------------- losses


def test_bscc_channel_divisor_and_shape_errors() -> None:
    pred = torch.rand(1, 128, 4, 4)
    prob = torch.rand(1, 1, 4, 4)
    torch.testing.assert_close(
        bscc_loss(pred, prob, prob.round()), bscc_loss(pred, prob, prob.round(), channel_divisor=None)
    )
    with pytest.raises(ValueError, match="bscc_loss"):
        bscc_loss(pred, prob[0], prob.round())


def test_dice_zero_without_positives_and_ignores_255() -> None:
    logits = torch.randn(2, 1, 4, 4)
    assert dice_loss_binary(logits, torch.zeros(2, 4, 4, dtype=torch.long)).item() == 0.0
    target = torch.ones(2, 4, 4, dtype=torch.long)
    ignored = target.clone()
    ignored[:, 0] = 255
    masked = dice_loss_binary(logits, ignored)
    manual = 1 - 2 * torch.sigmoid(logits)[:, 0, 1:].sum() / (torch.sigmoid(logits)[:, 0, 1:].sum() + 24)
    torch.testing.assert_close(masked, manual)


def test_loss_shape_errors_name_the_function() -> None:
    with pytest.raises(ValueError, match="dice_loss_binary"):
        dice_loss_binary(torch.randn(2, 1, 4, 4), torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="seg_ce"):
        seg_ce(torch.randn(2, 9, 4, 4), torch.zeros(2, 4, 5))


# --------------------------------------------------------------------------------------------------- model


@pytest.fixture(scope="module")
def small_model() -> ClearSCD:
    torch.manual_seed(0)
    return ClearSCD(ClearSCDConfig(size=64))


def test_training_step_losses_and_queue_update(small_model: ClearSCD) -> None:
    model = small_model.train()
    torch.manual_seed(1)
    imgs = torch.randn(2, 6, 64, 64)
    label_A = torch.zeros(2, 64, 64, dtype=torch.long)
    label_A[:, :, 32:] = 4
    label_B = label_A.clone()
    label_B[:, :32] = 9
    label_BCD = (label_A != label_B).long()
    ptr_before = int(model.ptr_A4)
    queue_before = model.queue_A4.clone()
    out = model(imgs, label_A, label_B, label_BCD, test=False, warmup=False)
    parts = total_loss(out, label_A, label_B, label_BCD)
    assert set(parts) == {"bcd", "seg_A", "seg_B", "contrast", "bscc", "loss"}
    assert torch.isfinite(parts["loss"]) and parts["contrast"] > 0 and parts["bscc"] > 0
    model.zero_grad()
    out["bscc_loss"].backward(retain_graph=True)
    # BSCC reaches the CVAPS head through the (not detached) change probability
    assert model.head_bcd.convs[0][0].weight.grad.abs().sum() > 0
    parts["loss"].backward()
    assert model.encoder._conv_stem.weight.grad.abs().sum() > 0
    assert int(model.ptr_A4) == (ptr_before + 64) % 512
    assert not torch.equal(model.queue_A4, queue_before)
    torch.testing.assert_close(model.queue_A4.norm(dim=0), torch.ones(512))


def test_forward_input_errors(small_model: ClearSCD) -> None:
    model = small_model.eval()
    with pytest.raises(ValueError, match="imgs"):
        model(torch.randn(1, 3, 64, 64), test=True)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 6, 48, 48), torch.zeros(1, 48, 48), torch.zeros(1, 48, 48), test=False)
    with pytest.raises(ValueError, match="label_A"):
        model(torch.randn(1, 6, 64, 64), test=False)


# --------------------------------------------------------------------------------------------------- metrics


def test_change_and_nochange_codes() -> None:
    t1 = np.array([0, 0, 1, 8, 2, 3])
    t2 = np.array([1, 0, 0, 7, 2, 3])
    change = np.array([1, 0, 1, 1, 1, 1])
    bcd = np.array([1, 0, 1, 1, 1, 255])
    assert change_type_codes(t1, t2, change, bcd, 9).tolist() == [0, 72, 8, 71, 18, 73]
    assert nochange_type_codes(t1, t2, change, bcd, 9).tolist() == [9, 0, 9, 9, 9, 9]
    assert cohen_kappa(np.eye(3) * 5) == pytest.approx(1.0) and cohen_kappa(np.zeros((2, 2))) == 0.0


def test_corrected_protocol_ignores_absent_classes() -> None:
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (4, 16, 16))  # only 3 of the 9 classes occur
    args = (gt, np.roll(gt, 1, 0), np.ones_like(gt), gt, np.roll(gt, 1, 0), np.ones_like(gt))
    authors = SCDTestMetrics(9, "authors")
    corrected = SCDTestMetrics(9, "corrected")
    authors.update(*args)
    corrected.update(*args)
    a, c = authors.compute(), corrected.compute()
    assert c.protocol == "corrected" and c.summary["SEG_mIoU"] == 100.0
    assert a.summary["SEG_mIoU"] == pytest.approx(100 * 3 / 9, abs=0.01)
    assert np.isnan(a.summary["SEG_mF1"])  # plain mean over classes absent everywhere (quirk)
    with pytest.raises(ValueError, match="preds_A"):
        authors.update(gt, gt, gt, gt + 9, gt, gt * 0)


def test_image_pair_to_input_and_maps(tmp_path, small_model: ClearSCD) -> None:
    import cv2

    from clearscd import images_to_input, predict_maps, read_rgb
    from semcommon.io import ImageReadError

    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    cv2.imwrite(str(tmp_path / "a.png"), rgb[..., ::-1])
    image = read_rgb(tmp_path / "a.png")
    assert np.array_equal(image, rgb)
    imgs = images_to_input(image, image)
    assert imgs.shape == (1, 6, 64, 64)
    torch.testing.assert_close(imgs[0, 0], torch.full((64, 64), (1 - 0.485) / 0.229))
    torch.testing.assert_close(imgs[0, 4], torch.full((64, 64), -0.456 / 0.224))
    maps = predict_maps(small_model.eval(), imgs)
    assert maps["sem_A"].shape == (1, 64, 64) and set(maps["change"].unique().tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="same size"):
        images_to_input(image, image[:32])
    with pytest.raises(ImageReadError, match="b.png"):
        read_rgb(tmp_path / "b.png")


def test_confident_keys_most_confident_first_and_thresholded() -> None:
    from clearscd.model.sacl import sample_confident_keys

    feats = torch.arange(4, dtype=torch.float32).reshape(1, 1, 2, 2).repeat(1, 2, 1, 1)
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1] = torch.tensor([[9.0, 2.0], [12.0, 10.0]])  # class 1 predicted everywhere
    labels = torch.tensor([[[1, 1], [1, 0]]])
    keys, vals = sample_confident_keys(feats, logits, labels, num_classes=3, max_per_class=5, confidence=0.95)
    # pixel 3 is predicted 1 but labelled 0; pixel 1 is correct but not confident (softmax ≈ 0.79)
    assert vals.tolist() == [1, 1]
    assert keys[0].tolist() == [2.0, 0.0]


@pytest.mark.parametrize(
    "options",
    [
        {"representive_sample_key": True, "hard_sampling": False},
        {"bscc_with_label": True, "fusion": "concat"},
        {"with_bscc": False, "global_contrast": False},
    ],
)
def test_config_variants_run(options: dict) -> None:
    torch.manual_seed(0)
    model = ClearSCD(ClearSCDConfig(size=64, **options)).eval()
    imgs = torch.randn(1, 6, 64, 64)
    label = torch.randint(0, 10, (1, 64, 64))
    out = model(imgs, label, label.flip(-1), torch.randint(0, 2, (1, 64, 64)), test=False, warmup=False)
    assert out["BCD"].shape == (1, 1, 64, 64) and torch.isfinite(out["contrast_loss"]).all()
    if options.get("with_bscc", True):
        assert out["bscc_loss"] > 0
    else:
        assert out["bscc_loss"] == 0
