"""The ClearSCD network (spec b): Siamese EfficientNet-b0 + FPN, semantic head, deep CVAPS change head,
projection head and the SACL memory queues (buffers ``queue_{A,B}{c}``, ``ptr_{A,B}{c}``, first in the state_dict).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clearscd.config import ClearSCDConfig
from clearscd.losses import bscc_loss
from clearscd.model.decoder import FPNDecoder
from clearscd.model.encoder import EfficientNetEncoder
from clearscd.model.heads import ChangeDetectionHead, ProjectionHead, SegmentationHead
from clearscd.model.sacl import (
    enqueue_keys,
    global_similarity_loss,
    local_infonce_loss,
    region_queries_hard,
    region_queries_mean,
    sample_class_pixels,
    sample_confident_keys,
)

__all__ = ["ClearSCD", "build_clearscd", "check_imgs", "downsample_labels"]

PROJ_HIDDEN_CHANNELS = 32  # bottleneck of the SACL projection head (the original's ProjectionHead(proj_dim=32))


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest downsampling B×H×W → B×h×w (picks pixel (4i, 4j) for a factor 4), as float like the original."""
    return F.interpolate(labels.unsqueeze(1).float(), size=size, mode="nearest").squeeze(1)


def check_imgs(imgs: torch.Tensor) -> None:
    """Refuse anything but a float B×6×H×W tensor (T1 RGB then T2 RGB) with one clear line."""
    if not isinstance(imgs, torch.Tensor) or imgs.ndim != 4 or imgs.shape[1] != 6:
        shape = tuple(imgs.shape) if isinstance(imgs, torch.Tensor) else type(imgs).__name__
        raise ValueError(f"imgs must be B×6×H×W (T1 RGB then T2 RGB), got {shape}")
    if not imgs.is_floating_point():
        raise ValueError(
            f"imgs must be a float tensor (ImageNet-normalised, see images_to_input), got dtype {imgs.dtype}"
        )


class ClearSCD(nn.Module):
    """ClearSCD (Tang et al., ISPRS JPRS 2024).

    ``forward(imgs, label_A, label_B, label_BCD, test, warmup)`` with imgs B×6×H×W (T1 RGB, T2 RGB, ImageNet-
    normalised; H, W multiples of 32) returns ``seg_A``/``seg_B`` B×K×H×W logits, ``BCD`` B×1×H×W change logit,
    ``bscc_loss`` (weighted, zero when not computed) and, when SACL is on and ``test`` is false,
    ``contrast_loss`` (shape [1]) with its parts ``contrast_loss_local`` / ``contrast_loss_global``. In inference
    (``test=True``) any H×W works: the input is padded to multiples of 32 and the outputs cropped back.
    """

    def __init__(self, config: ClearSCDConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ClearSCDConfig()
        for cls in range(config.num_segclass):
            for date in ("A", "B"):
                queue = F.normalize(torch.randn(config.proj_dim, config.queue_len), dim=0)
                self.register_buffer(f"queue_{date}{cls}", queue)
                self.register_buffer(f"ptr_{date}{cls}", torch.zeros(1, dtype=torch.long))
        self.encoder = EfficientNetEncoder()
        width = config.decoder_segmentation_channels
        self.decoder = FPNDecoder(self.encoder.out_channels, config.decoder_pyramid_channels, width, dropout=0.2)
        self.head_seg = SegmentationHead(width, config.num_segclass, upsampling=1 if config.downsample_seg else 4)
        self.head_bcd = ChangeDetectionHead(
            config.num_segclass,
            config.bcd_convs_num,
            upsampling=4 if config.downsample_seg else 1,
            fusion=config.fusion,
        )
        self.proj_head = ProjectionHead(in_channels=config.proj_dim, hidden_channels=PROJ_HIDDEN_CHANNELS)
        if not config.pretrained:
            self.init_weights_kaiming()

    # ----------------------------------------------------------------------------------------------- queues
    def queues(self, date: str) -> list[torch.Tensor]:
        """The per-class memory queues of date ``"A"`` or ``"B"`` (proj_dim × queue_len each)."""
        return [getattr(self, f"queue_{date}{c}") for c in range(self.config.num_segclass)]

    def pointers(self, date: str) -> list[torch.Tensor]:
        return [getattr(self, f"ptr_{date}{c}") for c in range(self.config.num_segclass)]

    def init_weights_kaiming(self) -> None:
        """The authors' init for ``pretrained: false``: Kaiming-normal conv weights, zero biases, BN (1, 0)."""
        for part in (self.encoder, self.decoder, self.head_bcd, self.head_seg, self.proj_head):
            for module in part.modules():
                if isinstance(module, nn.Conv2d | nn.Linear):
                    nn.init.kaiming_normal_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)

    # ----------------------------------------------------------------------------------------------- forward
    def forward_intermediates(self, imgs: torch.Tensor) -> dict[str, object]:
        """Shared trunk: encoder features, decoder outputs, low-resolution logits and change logits.

        Returns ``enc_A``/``enc_B`` (6 features each), ``dec_A``/``dec_B`` B×128×h×w, ``seglow_A``/``seglow_B``
        (head_seg outputs), ``bcd_low`` B×1×h×w (or a 0-d zero without BSCC) and ``BCD`` (None with only_seg).
        """
        check_imgs(imgs)
        if imgs.shape[2] % 32 or imgs.shape[3] % 32:
            raise ValueError(f"imgs height and width must be multiples of 32, got {tuple(imgs.shape[2:])}")
        enc_A = self.encoder(imgs[:, 0:3])
        enc_B = self.encoder(imgs[:, 3:6])
        dec_A = self.decoder(*enc_A)
        dec_B = self.decoder(*enc_B)
        seglow_A = self.head_seg(dec_A)
        seglow_B = self.head_seg(dec_B)
        out: dict[str, object] = {
            "enc_A": enc_A, "enc_B": enc_B, "dec_A": dec_A, "dec_B": dec_B,
            "seglow_A": seglow_A, "seglow_B": seglow_B, "bcd_low": None, "BCD": None,
        }  # fmt: skip
        if not self.config.only_seg:
            if self.config.fusion == "diff":
                fused = torch.abs(seglow_A - seglow_B)
            else:
                fused = torch.cat([seglow_A, seglow_B], dim=1)
            out["bcd_low"], out["BCD"] = self.head_bcd(fused, with_bscc=self.config.with_bscc)
        return out

    def forward(
        self,
        imgs: torch.Tensor,
        label_A: torch.Tensor | None = None,
        label_B: torch.Tensor | None = None,
        label_BCD: torch.Tensor | None = None,
        test: bool = False,
        warmup: bool = True,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """See the class docstring. ``generator``: optional CPU generator for SACL's pixel shuffling.

        With ``test`` true, inputs whose H or W is not a multiple of 32 are padded (edge replication) and the outputs
        cropped back to H×W; training inputs must be multiples of 32 (the labels would need padding too).
        """
        cfg = self.config
        check_imgs(imgs)
        height, width = imgs.shape[-2:]
        if test and (height % 32 or width % 32):
            padded = F.pad(imgs, (0, -width % 32, 0, -height % 32), mode="replicate")
            out = self.forward(padded, test=True)
            return {k: v[..., :height, :width] if v is not None and v.ndim == 4 else v for k, v in out.items()}
        mid = self.forward_intermediates(imgs)
        dec_A, dec_B = mid["dec_A"], mid["dec_B"]
        logits_A, logits_B = mid["seglow_A"], mid["seglow_B"]
        outputs: dict[str, torch.Tensor] = {}
        low_size = tuple(dec_A.shape[2:])
        if not test and (cfg.with_sacl or (cfg.with_bscc and cfg.bscc_with_label)):
            self._check_labels(imgs, label_A, label_B, label_BCD)
        if cfg.with_sacl and not test:
            lab_A = downsample_labels(label_A, low_size)
            lab_B = downsample_labels(label_B, low_size)
            proj_A = self.proj_head(dec_A)
            proj_B = self.proj_head(dec_B)
            local = dec_A.new_zeros(())
            if cfg.local_contrast:
                local = local_infonce_loss(
                    proj_A, proj_B, dec_A, dec_B, lab_A, lab_B, cfg.num_segclass,
                    cfg.temperature, cfg.contrast_weight, cfg.sample_num, generator,
                )  # fmt: skip
            glob = dec_A.new_zeros(1)
            if cfg.global_contrast:
                glob = self._global_contrast(
                    dec_A, dec_B, logits_A, logits_B, lab_A, lab_B, proj_A, proj_B, warmup, generator
                )
            outputs["contrast_loss"] = local + glob
            outputs["contrast_loss_local"] = local
            outputs["contrast_loss_global"] = glob
        if cfg.downsample_seg:
            logits_A = F.interpolate(logits_A, scale_factor=4, mode="bilinear", align_corners=True)
            logits_B = F.interpolate(logits_B, scale_factor=4, mode="bilinear", align_corners=True)
        if cfg.with_bscc and not test:
            diff = torch.abs(dec_A - dec_B)
            if cfg.bscc_with_label:
                mask = downsample_labels(label_BCD, low_size).unsqueeze(1)
                outputs["bscc_loss"] = bscc_loss(diff, mask, mask) * cfg.bscc_weight
            else:
                prob = torch.sigmoid(mid["bcd_low"])
                outputs["bscc_loss"] = bscc_loss(diff, prob, torch.round(prob)) * cfg.bscc_weight
        else:
            outputs["bscc_loss"] = dec_A.new_zeros(())
        outputs["seg_A"] = logits_A
        outputs["seg_B"] = logits_B
        outputs["BCD"] = mid["BCD"]
        return outputs

    def _check_labels(
        self,
        imgs: torch.Tensor,
        label_A: torch.Tensor | None,
        label_B: torch.Tensor | None,
        label_BCD: torch.Tensor | None,
    ) -> None:
        want = (imgs.shape[0], *imgs.shape[2:])
        needed = {"label_A": label_A, "label_B": label_B}
        if self.config.with_bscc and self.config.bscc_with_label:
            needed["label_BCD"] = label_BCD
        for name, label in needed.items():
            if label is None:
                raise ValueError(f"{name} is required when test=False (SACL/BSCC need labels)")
            if tuple(label.shape) != want:
                raise ValueError(f"{name} must have shape {list(want)} (B×H×W), got {list(label.shape)}")

    def _global_contrast(
        self,
        dec_A: torch.Tensor,
        dec_B: torch.Tensor,
        logits_A: torch.Tensor,
        logits_B: torch.Tensor,
        lab_A: torch.Tensor,
        lab_B: torch.Tensor,
        proj_A: torch.Tensor,
        proj_B: torch.Tensor,
        warmup: bool,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Global SACL: loss against the queues (state before the call), then enqueue this batch's keys."""
        cfg = self.config
        if logits_A.shape[2:] != proj_A.shape[2:]:  # downsample_seg false: full-resolution logits, pooled ×4
            logits_A, logits_B = F.avg_pool2d(logits_A, 4, 4), F.avg_pool2d(logits_B, 4, 4)
        with torch.no_grad():
            if cfg.representive_sample_key:
                keys_A, vals_A = sample_confident_keys(
                    dec_A, logits_A, lab_A, cfg.num_segclass, cfg.enqueue_len, cfg.confidence
                )
                keys_B, vals_B = sample_confident_keys(
                    dec_B, logits_B, lab_B, cfg.num_segclass, cfg.enqueue_len, cfg.confidence
                )
            else:
                keys_A, vals_A = sample_class_pixels(dec_A, lab_A, cfg.num_segclass, cfg.enqueue_len, generator)
                keys_B, vals_B = sample_class_pixels(dec_B, lab_B, cfg.num_segclass, cfg.enqueue_len, generator)
        loss = dec_A.new_zeros(1)
        if not warmup:
            if cfg.hard_sampling:
                q_A, qv_A = region_queries_hard(proj_A, logits_A, lab_A, cfg.num_segclass)
                q_B, qv_B = region_queries_hard(proj_B, logits_B, lab_B, cfg.num_segclass)
            else:
                q_A, qv_A = region_queries_mean(proj_A, lab_A, cfg.num_segclass)
                q_B, qv_B = region_queries_mean(proj_B, lab_B, cfg.num_segclass)
            loss = global_similarity_loss(q_A, qv_A, q_B, qv_B, self.queues("A"), self.queues("B"))
        enqueue_keys(self.queues("A"), self.pointers("A"), keys_A, vals_A, cfg.enqueue_len)
        enqueue_keys(self.queues("B"), self.pointers("B"), keys_B, vals_B, cfg.enqueue_len)
        return loss


def build_clearscd(config: ClearSCDConfig | dict | str | None = None) -> ClearSCD:
    """Build ClearSCD from a config object, a dict of ``ours.json`` keys, or the path of such a JSON file."""
    if isinstance(config, dict):
        config = ClearSCDConfig.from_dict(config)
    elif isinstance(config, str):
        config = ClearSCDConfig.from_json(config)
    return ClearSCD(config)
