"""SSP video model (original ``ConsistencyWrapper``, ``model_name: base``): Semantic Similarity Propagation.

The image model segments every frame; a homography (previous -> current pixels) warps the previous logits
(full resolution) and the previous stride-4 feature map; a similarity block weighs them per pixel:
``out = sim * last_out_warped + (1 - sim) * out``. Training fuses with the previous frame's raw logits,
:meth:`SSPVideoModel.infer_video` propagates the fused output recurrently (spec pitfall 5).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssp.config import ImageModelConfig, RaftConfig, VideoModelConfig
from ssp.geometry import scale_homography, warp_perspective
from ssp.model.image_model import HieraUperNet, upsample_logits
from ssp.model.raft import RAFT
from ssp.model.registration import build_registrator
from ssp.model.similarity import build_sim_block

__all__ = ["SSPVideoModel", "build_ssp_model"]


def _as_homographies(homos: torch.Tensor, batch: int) -> torch.Tensor:
    """Accept ``B×3×3`` or the original's ``B×1×3×3``."""
    if homos.dim() == 4 and homos.shape[1] == 1:
        homos = homos[:, 0]
    if homos.dim() != 3 or homos.shape != (batch, 3, 3):
        raise ValueError(f"homos: expected {batch}×3×3 (or {batch}×1×3×3), got {tuple(homos.shape)}")
    return homos


class SSPVideoModel(nn.Module):
    """Submodules (state-dict prefixes): ``base_model``, ``flow_model`` (RAFT, losses only), ``registrator``, ``sim``.

    ``impl`` "fast" (eval only): :meth:`forward` runs both frames through one encoder/decoder call.
    """

    def __init__(
        self,
        config: VideoModelConfig | None = None,
        image_config: ImageModelConfig | None = None,
        with_flow_model: bool = True,
        opencv_model_type: str = "akaze",
    ) -> None:
        super().__init__()
        self.config = config or VideoModelConfig()
        if not self.config.upsample_before_mixing:
            raise ValueError("upsample_before_mixing: only true (every paper config) is implemented")
        if self.config.low_scale_homo:
            raise ValueError("low_scale_homo: only false (every paper config) is implemented")
        self.base_model = HieraUperNet(image_config)
        self.flow_model = RAFT(RaftConfig()) if with_flow_model else None
        self.registrator = build_registrator(self.config.k_registrator_model, opencv_model_type)
        embed_dim = self.base_model.config.hiera_config.channels[0]
        self.sim = build_sim_block(self.config.sim_op, embed_dim)
        self.impl = "fast"

    def homographies(self, last_frames: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """``B×3×3`` from the registrator (no gradient)."""
        if self.registrator is None:
            raise ValueError("homos: the model has no registrator (k_registrator_model null); pass homos explicitly")
        with torch.inference_mode():
            homos = self.registrator(last_frames, frames)
        return homos.clone().float()

    def _upsample(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return upsample_logits(logits, size, self.config.upsampling)

    def fuse(
        self,
        out: torch.Tensor,
        featmap: torch.Tensor,
        last_out: torch.Tensor,
        last_featmap: torch.Tensor,
        homos: torch.Tensor,
        size: tuple[int, int],
    ) -> dict[str, torch.Tensor]:
        """Warp and mix. ``out``/``last_out`` logits (any resolution, upsampled to ``size``), feature maps
        ``B×E×H/4×W/4``, ``homos`` ``B×3×3`` at full resolution. Returns the fused ``out`` ``B×n×H×W``, ``sim``
        ``B×1×H×W``, ``out_current_only``, ``last_out_warped`` and ``last_featmap_warped``."""
        out = self._upsample(out, size)
        last_out = self._upsample(last_out, size)
        last_out_warped = warp_perspective(last_out, homos, size)
        feature_homos = scale_homography(homos, featmap.shape[-1] / size[1])
        mode = self.config.features_interp_mode
        last_featmap_warped = warp_perspective(last_featmap, feature_homos, tuple(featmap.shape[-2:]), mode=mode)
        sim = self.sim(last_featmap_warped, featmap, size)
        fused = sim * last_out_warped + (1 - sim) * out
        return {
            "out": fused,
            "sim": sim,
            "out_current_only": out,
            "last_out_warped": last_out_warped,
            "last_featmap_warped": last_featmap_warped,
        }

    def forward(
        self, frames: torch.Tensor, last_frames: torch.Tensor, homos: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Training forward on (current, previous) frames ``B×3×H×W``.

        ``homos`` (``B×3×3`` or ``B×1×3×3``, previous -> current pixels) skips the registrator. Returns
        :meth:`fuse`'s dictionary plus ``last_out``: the previous frame's raw, unwarped logits at full resolution.
        """
        if frames.shape != last_frames.shape or frames.dim() != 4:
            raise ValueError(
                f"frames and last_frames must be equal B×3×H×W, got {tuple(frames.shape)}, {tuple(last_frames.shape)}"
            )
        if not (torch.isfinite(frames).all() and torch.isfinite(last_frames).all()):
            raise ValueError("frames: the input holds NaN or Inf values")
        size = (frames.shape[-2], frames.shape[-1])
        homos = self.homographies(last_frames, frames) if homos is None else _as_homographies(homos, frames.shape[0])
        if self.impl == "reference" or self.training:
            last_feats = self.base_model.encoder(last_frames)
            last_out = self.base_model.decoder(last_feats)
            feats = self.base_model.encoder(frames)
            out = self.base_model.decoder(feats)
        else:  # eval: both frames through one encoder/decoder call (every op is per sample)
            batch = frames.shape[0]
            both_feats = self.base_model.encoder(torch.cat([last_frames, frames]))
            both_out = self.base_model.decoder(both_feats)
            last_feats, feats = [f[:batch] for f in both_feats], [f[batch:] for f in both_feats]
            last_out, out = both_out[:batch], both_out[batch:]
        result = self.fuse(out, feats[0], last_out, last_feats[0], homos.to(frames.dtype), size)
        result["last_out"] = self._upsample(last_out, size)
        return result

    @torch.no_grad()
    def propagate(
        self,
        frame: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None,
        homography: torch.Tensor | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One step of recurrent inference: ``frame`` ``1×3×H×W``, ``state`` from the previous step (None at the
        first frame), ``homography`` ``1×3×3`` previous -> current. Returns (fused logits ``1×n×H×W``, new state =
        (previous fused output, the frame's raw stride-4 feature map))."""
        size = (frame.shape[-2], frame.shape[-1])
        feats = self.base_model.encoder(frame)
        out = self.base_model.decoder(feats)
        if state is None:
            return self._upsample(out, size), (out, feats[0])
        last_out, last_featmap = state
        fused = self.fuse(out, feats[0], last_out, last_featmap, homography.to(frame.dtype), size)["out"]
        return fused, (fused, feats[0])

    @torch.no_grad()
    def infer_video(
        self, frames: torch.Tensor | Sequence[torch.Tensor], homos: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Recurrent inference over one video, frames ``T×3×H×W`` (or a sequence of ``3×H×W``).

        ``homos`` ``(T-1)×3×3`` (entry t-1 maps frame t-1 to frame t) or None to use the registrator.
        Returns (predictions ``T×H×W`` int64, fused logits ``T×n×H×W``); the fused logits of frame t are the
        "previous output" warped into frame t+1.
        """
        video = torch.stack(list(frames)) if not isinstance(frames, torch.Tensor) else frames
        if video.dim() != 4 or video.shape[1] != 3:
            raise ValueError(f"frames: expected T×3×H×W, got {tuple(video.shape)}")
        if not torch.isfinite(video).all():
            raise ValueError("frames: the input holds NaN or Inf values")
        steps = video.shape[0]
        if homos is not None and (homos.dim() != 3 or homos.shape != (steps - 1, 3, 3)):
            raise ValueError(f"homos: expected {steps - 1}×3×3 for {steps} frames, got {tuple(homos.shape)}")
        state, outputs = None, []
        for t in range(steps):
            homo = None
            if t > 0:
                homo = self.homographies(video[t - 1 : t], video[t : t + 1]) if homos is None else homos[t - 1 : t]
            fused, state = self.propagate(video[t : t + 1], state, homo)
            outputs.append(fused)
        logits = torch.cat(outputs)
        return logits.argmax(dim=1), logits


def build_ssp_model(
    video_config: VideoModelConfig | None = None,
    image_config: ImageModelConfig | None = None,
    with_flow_model: bool = True,
) -> SSPVideoModel:
    """SSP / KD-SSP as configured by ``ssp_uavid.yaml`` (Hiera-S UperNet, RAFT, DISK+LightGlue slot, conv sim)."""
    return SSPVideoModel(video_config, image_config, with_flow_model=with_flow_model)
