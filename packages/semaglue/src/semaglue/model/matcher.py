"""The SemaGlue matcher: LightGlue-style layers with semantic CDA/SAF blocks and a dual-softmax assignment.

Inputs per image: keypoints ``B×M×2`` (pixels, x/y), descriptors ``B×256×M`` (SuperPoint layout), image size
``B×2`` or ``2`` as ``(H, W)``, semantic map ``B×480×h×w``, optional keypoint mask ``B×M`` (True = real keypoint;
pad a batch of pairs with different keypoint counts and pass the masks).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from semaglue.config import SemaGlueConfig
from semaglue.model.layers import (
    CrossBlock,
    LearnableFourierPositionalEncoding,
    SelfBlock,
    fusion_ffn,
    normalize_keypoints,
)
from semaglue.model.semantic import CDA, SAF, SegFeatureProcessor


def _pair_mask(
    mask0: torch.Tensor | None, mask1: torch.Tensor | None, m: int, n: int, ref: torch.Tensor
) -> torch.Tensor | None:
    if mask0 is None and mask1 is None:
        return None
    b = ref.shape[0]
    m0 = mask0 if mask0 is not None else torch.ones(b, m, dtype=torch.bool, device=ref.device)
    m1 = mask1 if mask1 is not None else torch.ones(b, n, dtype=torch.bool, device=ref.device)
    return m0[:, :, None] & m1[:, None, :]


def sigmoid_log_double_softmax(
    sim: torch.Tensor,
    z0: torch.Tensor,
    z1: torch.Tensor,
    mask0: torch.Tensor | None = None,
    mask1: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log assignment ``B×(M+1)×(N+1)``: row + column log-softmax of ``sim`` plus log-sigmoid matchability;
    the last row/column hold the unmatched (dustbin) log-probabilities. Padded entries are ``-inf``."""
    b, m, n = sim.shape
    pair = _pair_mask(mask0, mask1, m, n, sim)
    if pair is not None:
        sim = sim.masked_fill(~pair, torch.finfo(sim.dtype).min)
    certainties = F.logsigmoid(z0) + F.logsigmoid(z1).transpose(1, 2)
    scores = sim.new_zeros(b, m + 1, n + 1)
    scores[:, :m, :n] = F.log_softmax(sim, 2) + F.log_softmax(sim, 1) + certainties
    scores[:, :-1, -1] = F.logsigmoid(-z0.squeeze(-1))
    scores[:, -1, :-1] = F.logsigmoid(-z1.squeeze(-1))
    if pair is not None:
        scores[:, :m, :n] = scores[:, :m, :n].masked_fill(~pair, float("-inf"))
        if mask0 is not None:
            scores[:, :-1, -1] = scores[:, :-1, -1].masked_fill(~mask0, float("-inf"))
        if mask1 is not None:
            scores[:, -1, :-1] = scores[:, -1, :-1].masked_fill(~mask1, float("-inf"))
    return scores


class MatchAssignment(nn.Module):
    """Assignment head: ``desc0`` ``B×M×D``, ``desc1`` ``B×N×D`` -> (log assignment ``B×(M+1)×(N+1)``, sim ``B×M×N``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.matchability = nn.Linear(dim, 1, bias=True)
        self.final_proj = nn.Linear(dim, dim, bias=True)

    def forward(
        self,
        desc0: torch.Tensor,
        desc1: torch.Tensor,
        mask0: torch.Tensor | None = None,
        mask1: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        d = desc0.shape[-1]
        mdesc0, mdesc1 = self.final_proj(desc0) / d**0.25, self.final_proj(desc1) / d**0.25
        sim = torch.einsum("bmd,bnd->bmn", mdesc0, mdesc1)
        scores = sigmoid_log_double_softmax(sim, self.matchability(desc0), self.matchability(desc1), mask0, mask1)
        return scores, sim


def filter_matches(
    scores: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mutual-argmax matches from a log assignment ``B×(M+1)×(N+1)``.

    Returns ``matches0`` ``B×M``, ``matches1`` ``B×N`` (int64, -1 = unmatched) and ``matching_scores0/1``
    (probability of the mutual match, 0 otherwise); a match needs probability > ``threshold``.
    """
    inner = scores[:, :-1, :-1]
    max0, max1 = inner.max(2), inner.max(1)
    m0, m1 = max0.indices, max1.indices
    idx0 = torch.arange(m0.shape[1], device=m0.device)[None]
    idx1 = torch.arange(m1.shape[1], device=m1.device)[None]
    mutual0 = idx0 == m1.gather(1, m0)
    mutual1 = idx1 == m0.gather(1, m1)
    zero = inner.new_tensor(0.0)
    mscores0 = torch.where(mutual0, max0.values.exp(), zero)
    mscores1 = torch.where(mutual1, mscores0.gather(1, m1), zero)
    valid0 = mutual0 & (mscores0 > threshold)
    valid1 = mutual1 & valid0.gather(1, m1)
    minus_one = m0.new_tensor(-1)
    return torch.where(valid0, m0, minus_one), torch.where(valid1, m1, minus_one), mscores0, mscores1


class TokenConfidence(nn.Module):
    """Per-token confidence head (used by LightGlue-style early stopping and its training loss)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())

    def forward(self, desc0: torch.Tensor, desc1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.token(desc0.detach()).squeeze(-1), self.token(desc1.detach()).squeeze(-1)


class SemaGlueLayer(nn.Module):
    """One layer (authors' ``Seg_Transformer``): per image CDA -> SAF -> self block -> fusion FFN with the layer
    input, then the cross block between the two images."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.self_attn = SelfBlock(dim, num_heads)
        self.cross_attn = CrossBlock(dim, num_heads)
        self.segment_attention = CDA(dim, num_heads)
        self.cross_sd_attn = SAF(dim, num_heads)
        self.ffn = fusion_ffn(dim)

    def single(
        self, desc: torch.Tensor, encoding: torch.Tensor, semantic: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Steps b-e for one image: ``B×M×D`` -> ``B×M×D``."""
        aligned = self.segment_attention(desc, semantic, mask)
        x = self.cross_sd_attn(desc, aligned, mask)
        x = self.self_attn(x, encoding, mask)
        return x + self.ffn(torch.cat([x, desc], -1))

    def forward(
        self,
        desc0: torch.Tensor,
        desc1: torch.Tensor,
        encoding0: torch.Tensor,
        encoding1: torch.Tensor,
        semantic0: torch.Tensor,
        semantic1: torch.Tensor,
        mask0: torch.Tensor | None = None,
        mask1: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        desc0 = self.single(desc0, encoding0, semantic0, mask0)
        desc1 = self.single(desc1, encoding1, semantic1, mask1)
        return self.cross_attn(desc0, desc1, mask0, mask1)


def _image_size(data: dict[str, torch.Tensor], i: int, batch: int) -> torch.Tensor:
    if f"image_size{i}" in data:
        size = torch.as_tensor(data[f"image_size{i}"])
    elif f"image{i}" in data:
        size = torch.tensor(data[f"image{i}"].shape[-2:])
    else:
        raise KeyError(f"SemaGlue needs 'image_size{i}' (H, W) or 'image{i}' in its input")
    if size.shape[-1] != 2 or size.ndim > 2:
        raise ValueError(f"image_size{i} must be (H, W) or B×2, got shape {tuple(size.shape)}")
    return size.reshape(-1, 2).expand(batch, 2).float()


class SemaGlue(nn.Module):
    """SemaGlue matcher (authors' key names: ``posenc``, ``seg_featureprocessor``, ``seg_tranformers``,
    ``log_assignment``, ``token_confidence``)."""

    def __init__(self, config: SemaGlueConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SemaGlueConfig()
        if cfg.descriptor_dim % cfg.num_heads:
            raise ValueError(f"descriptor_dim {cfg.descriptor_dim} not divisible by num_heads {cfg.num_heads}")
        if cfg.input_dim != cfg.descriptor_dim:
            self.input_proj: nn.Module = nn.Linear(cfg.input_dim, cfg.descriptor_dim, bias=True)
        else:
            self.input_proj = nn.Identity()
        self.posenc = LearnableFourierPositionalEncoding(2 + 2 * cfg.add_scale_ori, cfg.head_dim)
        self.seg_featureprocessor = SegFeatureProcessor(cfg.segment_dim, cfg.descriptor_dim, cfg.num_heads)
        self.seg_tranformers = nn.ModuleList(
            SemaGlueLayer(cfg.descriptor_dim, cfg.num_heads) for _ in range(cfg.n_layers)
        )
        self.log_assignment = nn.ModuleList(MatchAssignment(cfg.descriptor_dim) for _ in range(cfg.n_layers))
        self.token_confidence = nn.ModuleList(TokenConfidence(cfg.descriptor_dim) for _ in range(cfg.n_layers - 1))

    def encode_positions(self, keypoints: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        """Keypoints ``B×M×2`` and image size ``B×2`` as ``(H, W)`` -> rotary encoding ``2×B×1×M×head_dim``."""
        if not self.config.swap_image_size:
            size = size.flip(-1)
        return self.posenc(normalize_keypoints(keypoints, size))

    def forward(self, data: dict[str, torch.Tensor], all_layers: bool = False) -> dict[str, torch.Tensor]:
        """Match two sets of keypoints. With ``all_layers`` also return, for the training losses, ``layer_scores``
        ``L×B×(M+1)×(N+1)`` (one log assignment per layer) and ``token_confidence0/1`` ``(L-1)×B×M`` / ``(L-1)×B×N``
        (the confidence heads after every layer but the last; absent for a 1-layer model)."""
        kpts0, kpts1 = data["keypoints0"], data["keypoints1"]
        desc0, desc1 = data["descriptors0"], data["descriptors1"]
        mask0, mask1 = data.get("mask0"), data.get("mask1")
        _check_inputs(kpts0, desc0, mask0, data["feature_map0"], self.config, 0)
        _check_inputs(kpts1, desc1, mask1, data["feature_map1"], self.config, 1)
        b = kpts0.shape[0]
        desc0 = self.input_proj(desc0.transpose(-1, -2))
        desc1 = self.input_proj(desc1.transpose(-1, -2))
        enc0 = self.encode_positions(kpts0, _image_size(data, 0, b).to(kpts0.device))
        enc1 = self.encode_positions(kpts1, _image_size(data, 1, b).to(kpts1.device))
        sem0 = self.seg_featureprocessor(data["feature_map0"], desc0, mask0)
        sem1 = self.seg_featureprocessor(data["feature_map1"], desc1, mask1)
        if not all_layers and (self.config.depth_confidence > 0 or self.config.width_confidence > 0):
            return self._adaptive_batch(desc0, desc1, enc0, enc1, sem0, sem1, mask0, mask1)
        layer_scores, confidences0, confidences1 = [], [], []
        for i, layer in enumerate(self.seg_tranformers):
            desc0, desc1 = layer(desc0, desc1, enc0, enc1, sem0, sem1, mask0, mask1)
            if all_layers and i < len(self.seg_tranformers) - 1:
                layer_scores.append(self.log_assignment[i](desc0, desc1, mask0, mask1)[0])
                conf0, conf1 = self.token_confidence[i](desc0, desc1)
                confidences0.append(conf0)
                confidences1.append(conf1)
        scores, sim = self.log_assignment[-1](desc0, desc1, mask0, mask1)
        matches0, matches1, mscores0, mscores1 = filter_matches(scores, self.config.filter_threshold)
        pred = {
            "matches0": matches0,
            "matches1": matches1,
            "matching_scores0": mscores0,
            "matching_scores1": mscores1,
            "scores": scores,
            "sim": sim,
            "desc0": desc0,
            "desc1": desc1,
            "global_feature0": sem0,
            "global_feature1": sem1,
            "encoding0": enc0,
            "encoding1": enc1,
        }
        if all_layers:
            pred["layer_scores"] = torch.stack([*layer_scores, scores])
            if confidences0:
                pred["token_confidence0"] = torch.stack(confidences0)
                pred["token_confidence1"] = torch.stack(confidences1)
        return pred

    def confidence_threshold(self, layer: int) -> float:
        """LightGlue's per-layer token-confidence threshold ``0.8 + 0.1·exp(-4·layer / n_layers)``."""
        return float(min(max(0.8 + 0.1 * math.exp(-4.0 * layer / self.config.n_layers), 0.0), 1.0))

    def _adaptive_batch(
        self,
        desc0: torch.Tensor,
        desc1: torch.Tensor,
        enc0: torch.Tensor,
        enc1: torch.Tensor,
        sem0: torch.Tensor,
        sem1: torch.Tensor,
        mask0: torch.Tensor | None,
        mask1: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """The adaptive mode pair by pair (each pair stops and prunes on its own; padding is cut off first)."""
        b, m, n = desc0.shape[0], desc0.shape[1], desc1.shape[1]
        out = {
            "matches0": desc0.new_full((b, m), -1, dtype=torch.long),
            "matches1": desc1.new_full((b, n), -1, dtype=torch.long),
            "matching_scores0": desc0.new_zeros(b, m),
            "matching_scores1": desc1.new_zeros(b, n),
            "stop_layer": desc0.new_zeros(b, dtype=torch.long),
            "num_pruned0": desc0.new_zeros(b, dtype=torch.long),
            "num_pruned1": desc0.new_zeros(b, dtype=torch.long),
        }
        for k in range(b):
            m_k = int(mask0[k].sum()) if mask0 is not None else m
            n_k = int(mask1[k].sum()) if mask1 is not None else n
            pair = self._adaptive_pair(
                desc0[k : k + 1, :m_k],
                desc1[k : k + 1, :n_k],
                enc0[:, k : k + 1, :, :m_k],
                enc1[:, k : k + 1, :, :n_k],
                sem0[k : k + 1, :m_k],
                sem1[k : k + 1, :n_k],
            )
            for key in ("matches0", "matching_scores0"):
                out[key][k, :m_k] = pair[key][0]
            for key in ("matches1", "matching_scores1"):
                out[key][k, :n_k] = pair[key][0]
            for key in ("stop_layer", "num_pruned0", "num_pruned1"):
                out[key][k] = pair[key]
        return out

    def _adaptive_pair(
        self,
        desc0: torch.Tensor,
        desc1: torch.Tensor,
        enc0: torch.Tensor,
        enc1: torch.Tensor,
        sem0: torch.Tensor,
        sem1: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """One pair (batch 1, no padding) with early stopping and point pruning (LightGlue's rules)."""
        cfg = self.config
        m, n = desc0.shape[1], desc1.shape[1]
        ind0 = torch.arange(m, device=desc0.device)
        ind1 = torch.arange(n, device=desc1.device)
        last = len(self.seg_tranformers) - 1
        for i, layer in enumerate(self.seg_tranformers):
            desc0, desc1 = layer(desc0, desc1, enc0, enc1, sem0, sem1)
            if i == last:
                break
            conf0, conf1 = self.token_confidence[i](desc0, desc1)
            threshold = self.confidence_threshold(i)
            if cfg.depth_confidence > 0:
                confident = (torch.cat([conf0, conf1], -1) >= threshold).float().mean()
                if float(confident) > cfg.depth_confidence:
                    break
            if cfg.width_confidence > 0:
                head = self.log_assignment[i]
                keep0 = (torch.sigmoid(head.matchability(desc0)).squeeze(-1) > 1 - cfg.width_confidence) | (
                    conf0 <= threshold
                )
                keep1 = (torch.sigmoid(head.matchability(desc1)).squeeze(-1) > 1 - cfg.width_confidence) | (
                    conf1 <= threshold
                )
                k0, k1 = keep0[0].nonzero()[:, 0], keep1[0].nonzero()[:, 0]
                desc0, enc0, sem0, ind0 = desc0[:, k0], enc0[:, :, :, k0], sem0[:, k0], ind0[k0]
                desc1, enc1, sem1, ind1 = desc1[:, k1], enc1[:, :, :, k1], sem1[:, k1], ind1[k1]
                if len(k0) == 0 or len(k1) == 0:  # every point of an image pruned: nothing left to match
                    break
        matches0 = desc0.new_full((1, m), -1, dtype=torch.long)
        matches1 = desc1.new_full((1, n), -1, dtype=torch.long)
        scores0, scores1 = desc0.new_zeros(1, m), desc1.new_zeros(1, n)
        if len(ind0) and len(ind1):
            scores, _ = self.log_assignment[i](desc0, desc1)
            m0, m1, ms0, ms1 = filter_matches(scores, cfg.filter_threshold)
            matches0[0, ind0] = torch.where(m0[0] >= 0, ind1[m0[0].clamp_min(0)], -1)
            matches1[0, ind1] = torch.where(m1[0] >= 0, ind0[m1[0].clamp_min(0)], -1)
            scores0[0, ind0], scores1[0, ind1] = ms0[0], ms1[0]
        return {
            "matches0": matches0,
            "matches1": matches1,
            "matching_scores0": scores0,
            "matching_scores1": scores1,
            "stop_layer": ind0.new_tensor(i),
            "num_pruned0": ind0.new_tensor(m - len(ind0)),
            "num_pruned1": ind0.new_tensor(n - len(ind1)),
        }


def _check_inputs(
    kpts: torch.Tensor,
    desc: torch.Tensor,
    mask: torch.Tensor | None,
    feature_map: torch.Tensor,
    cfg: SemaGlueConfig,
    i: int,
) -> None:
    if kpts.ndim != 3 or kpts.shape[-1] != 2:
        raise ValueError(f"keypoints{i} must be B×M×2, got {tuple(kpts.shape)}")
    if desc.ndim != 3 or desc.shape[0] != kpts.shape[0] or desc.shape[1] != cfg.input_dim:
        raise ValueError(f"descriptors{i} must be B×{cfg.input_dim}×M, got {tuple(desc.shape)}")
    if desc.shape[2] != kpts.shape[1]:
        raise ValueError(f"descriptors{i} has {desc.shape[2]} keypoints but keypoints{i} has {kpts.shape[1]}")
    if feature_map.ndim != 4 or feature_map.shape[:2] != (kpts.shape[0], cfg.segment_dim):
        raise ValueError(f"feature_map{i} must be B×{cfg.segment_dim}×h×w, got {tuple(feature_map.shape)}")
    if mask is not None and (mask.shape != kpts.shape[:2] or mask.dtype != torch.bool):
        raise ValueError(f"mask{i} must be a bool tensor of shape {tuple(kpts.shape[:2])}, got {tuple(mask.shape)}")
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return  # the finiteness check needs the values; graphs (ONNX export, compile) skip it
    if not torch.isfinite(kpts).all() or not torch.isfinite(desc).all():
        raise ValueError(f"keypoints{i}/descriptors{i} contain NaN or inf")
