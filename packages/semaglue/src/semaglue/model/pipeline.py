"""``Matching``: SuperPoint + SegNext + SemaGlue on a pair of grey images (the authors' ``Matching`` module)."""

from __future__ import annotations

import torch
from torch import nn

from semaglue.config import MatchingConfig, SegNextConfig, SemaGlueConfig
from semaglue.model.layers import Impl
from semaglue.model.matcher import SemaGlue
from semaglue.model.segnext import SegNext
from semaglue.model.superpoint import SuperPoint, check_image


def pad_keypoints(
    keypoints: list[torch.Tensor], scores: list[torch.Tensor], descriptors: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack per-image keypoints (K_i×2), scores (K_i) and descriptors (D×K_i) into padded batches.

    Returns ``B×K×2``, ``B×K``, ``B×D×K`` and the mask ``B×K`` (True = real keypoint), K = max K_i.
    """
    size = max(len(k) for k in keypoints)
    batch, dim = len(keypoints), descriptors[0].shape[0]
    kpts = keypoints[0].new_zeros(batch, size, 2)
    kscores = scores[0].new_zeros(batch, size)
    desc = descriptors[0].new_zeros(batch, dim, size)
    mask = torch.zeros(batch, size, dtype=torch.bool, device=kpts.device)
    for i, (k, s, d) in enumerate(zip(keypoints, scores, descriptors, strict=True)):
        kpts[i, : len(k)], kscores[i, : len(k)], desc[i, :, : len(k)], mask[i, : len(k)] = k, s, d, True
    return kpts, kscores, desc, mask


class Matching(nn.Module):
    """Full pipeline. Input ``{"image0": B×1×H0×W0, "image1": B×1×H1×W1}`` grey in [0, 1].

    Output (batched, padded with mask when the keypoint counts differ): ``keypoints0/1`` ``B×K×2``, ``scores0/1``,
    ``descriptors0/1`` ``B×256×K``, ``mask0/1`` ``B×K``, ``matches0/1``, ``matching_scores0/1`` and the semantic
    ``feature_map0/1``. Keypoints from a previous run may be passed in as ``keypoints0`` etc. (with
    ``descriptors0``/``scores0``) to skip SuperPoint for that image.
    """

    def __init__(self, config: MatchingConfig | None = None) -> None:
        super().__init__()
        self.config = config or MatchingConfig()
        self.superpoint = SuperPoint(self.config.superpoint)
        self.segment = SegNext(self.config.segnext)
        self.matcher = SemaGlue(self.config.matcher)
        self.segment.requires_grad_(False)
        self.superpoint.requires_grad_(False)
        self.impl: Impl = "fast"

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred: dict[str, torch.Tensor] = {}
        for i in (0, 1):
            image = data[f"image{i}"]
            if image.ndim != 4 or image.shape[1] != 1:
                raise ValueError(f"image{i} must be B×1×H×W grey in [0, 1], got shape {tuple(image.shape)}")
            check_image(image, f"image{i}")
        if data["image0"].shape[0] != data["image1"].shape[0]:
            raise ValueError(
                f"image0 and image1 batch sizes differ: {data['image0'].shape[0]} vs {data['image1'].shape[0]}"
            )
        if self.impl == "fast" and _batchable(data):  # both images through each network in one call
            return self._match(data, self._extract_both(data))
        for i in (0, 1):
            image = data[f"image{i}"]
            if f"keypoints{i}" in data:
                pred[f"keypoints{i}"] = data[f"keypoints{i}"]
                pred[f"scores{i}"] = data[f"scores{i}"]
                pred[f"descriptors{i}"] = data[f"descriptors{i}"]
                pred[f"mask{i}"] = data.get(f"mask{i}", torch.ones_like(data[f"scores{i}"], dtype=torch.bool))
            else:
                with torch.no_grad():
                    sp = self.superpoint({"image": image})
                kpts, scores, desc, mask = pad_keypoints(sp["keypoints"], sp["scores"], sp["descriptors"])
                pred.update({f"keypoints{i}": kpts, f"scores{i}": scores, f"descriptors{i}": desc, f"mask{i}": mask})
            with torch.no_grad():
                pred[f"feature_map{i}"] = self.segment(image)["feature_map"]
        return self._match(data, pred)

    def _extract_both(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """SuperPoint and SegNeXt on ``cat[image0, image1]`` (one batched call each), split back per image."""
        images = torch.cat([data["image0"], data["image1"]])
        b = data["image0"].shape[0]
        with torch.no_grad():
            sp = self.superpoint({"image": images})
            fmaps = self.segment(images)["feature_map"]
        pred: dict[str, torch.Tensor] = {}
        for i, part in ((0, slice(0, b)), (1, slice(b, 2 * b))):
            kpts, scores, desc, mask = pad_keypoints(sp["keypoints"][part], sp["scores"][part], sp["descriptors"][part])
            pred.update({f"keypoints{i}": kpts, f"scores{i}": scores, f"descriptors{i}": desc, f"mask{i}": mask})
            pred[f"feature_map{i}"] = fmaps[part]
        return pred

    def _match(self, data: dict[str, torch.Tensor], pred: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The matcher on the extracted features (``pred``), its outputs added to ``pred``."""
        batch = {k: v for k, v in pred.items() if not k.startswith("scores")}
        for i in (0, 1):
            batch[f"image_size{i}"] = torch.tensor(data[f"image{i}"].shape[-2:])
            if bool(pred[f"mask{i}"].all()):
                batch.pop(f"mask{i}")
        if pred["keypoints0"].shape[1] == 0 or pred["keypoints1"].shape[1] == 0:
            pred.update(_no_matches(pred))
            return pred
        out = self.matcher(batch)
        pred.update({k: out[k] for k in ("matches0", "matches1", "matching_scores0", "matching_scores1")})
        return pred


def _batchable(data: dict[str, torch.Tensor]) -> bool:
    """Both images need SuperPoint (no keypoints given) and have the same size."""
    return "keypoints0" not in data and "keypoints1" not in data and data["image0"].shape == data["image1"].shape


def _no_matches(pred: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for i in (0, 1):
        shape = pred[f"keypoints{i}"].shape[:2]
        device = pred[f"keypoints{i}"].device
        out[f"matches{i}"] = torch.full(shape, -1, dtype=torch.long, device=device)
        out[f"matching_scores{i}"] = torch.zeros(shape, device=device)
    return out


class FeatureMatcher(nn.Module):
    """The trainable part: frozen SegNext (``segment.*``) + SemaGlue (``matcher.*``, the authors' checkpoint prefix)
    on keypoints computed elsewhere (SuperPoint or SIFT).

    Input: ``image0/1`` ``B×1×H×W`` in [0, 1], ``keypoints0/1`` ``B×K×2``, ``descriptors0/1`` ``B×D×K``, optional
    ``mask0/1`` ``B×K`` and precomputed ``feature_map0/1``. Output: the matcher's prediction (with ``all_layers``
    the per-layer assignments and token confidences for the losses).
    """

    def __init__(self, segnext: SegNextConfig | None = None, matcher: SemaGlueConfig | None = None) -> None:
        super().__init__()
        self.segment = SegNext(segnext)
        self.matcher = SemaGlue(matcher)
        self.segment.requires_grad_(False)
        self.segment.eval()

    def train(self, mode: bool = True) -> FeatureMatcher:
        super().train(mode)
        self.segment.eval()  # frozen: BatchNorm statistics stay fixed
        return self

    def feature_maps(self, image: torch.Tensor) -> torch.Tensor:
        """``B×1×H×W`` -> the semantic map ``B×480×h×w`` (no gradient)."""
        with torch.no_grad():
            return self.segment(image)["feature_map"]

    def forward(self, data: dict[str, torch.Tensor], all_layers: bool = False) -> dict[str, torch.Tensor]:
        batch = {}
        for i in (0, 1):
            image = data[f"image{i}"]
            check_image(image, f"image{i}")
            fmap = data.get(f"feature_map{i}")
            batch[f"feature_map{i}"] = self.feature_maps(image) if fmap is None else fmap
            batch[f"image_size{i}"] = torch.tensor(image.shape[-2:])
            for key in ("keypoints", "descriptors", "mask"):
                if f"{key}{i}" in data:
                    batch[f"{key}{i}"] = data[f"{key}{i}"]
        return self.matcher(batch, all_layers=all_layers)
