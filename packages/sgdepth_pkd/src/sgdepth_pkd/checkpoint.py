"""Loading SGDepth-style checkpoints and local ImageNet ResNet weights (never downloads, always weights_only).

Accepted checkpoint formats (all read with ``torch.load(weights_only=True)`` or safetensors):

* the bare state dict SGDepth's state manager writes as ``checkpoints/epoch_N/model.pth``;
* the same with the ``module.`` prefix of ``nn.DataParallel``;
* wrapper dicts such as ``{'state_dict': ..., 'epoch': ...}`` or ``{'model': ...}`` (extra entries are ignored).

Without an explicit config the architecture is inferred from the keys (ResNet depths of both encoders, number of depth
resolutions, split position, classes, and whether the unused ``dilated_conv`` / ``convx`` parameters are present —
checkpoints of the original SGDepth lack them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from semcommon.checkpoint import (
    CheckpointError,
    LoadReport,
    extract_state_dict,
    load_checkpoint,
    load_state_dict_into,
    strip_prefix,
)
from sgdepth_pkd.config import SGDepthConfig
from sgdepth_pkd.model.sgdepth import SGDepth

__all__ = [
    "CheckpointError",
    "infer_config",
    "load_imagenet_backbones",
    "load_model",
    "load_pretrained",
    "load_pretrained_with_report",
    "read_state_dict",
    "repeat_conv1",
]

_MARKERS = ("common.encoder.encoder.conv1.weight", "depth.multires.convs.0.weight")
_UNUSED = ("common.encoder.dilated_conv.", "common.encoder.convx.", "pose.encoder.dilated_conv.", "pose.encoder.convx.")
# (blocks per stage, bottleneck) → torchvision ResNet depth
_RESNET_LAYOUTS = {
    ((2, 2, 2, 2), False): 18,
    ((3, 4, 6, 3), False): 34,
    ((3, 4, 6, 3), True): 50,
    ((3, 4, 23, 3), True): 101,
    ((3, 8, 36, 3), True): 152,
}


def _read_tensor_dict(path: str | Path, map_location: str | torch.device) -> dict[str, torch.Tensor]:
    obj = load_checkpoint(path, map_location=map_location)
    try:
        state = extract_state_dict(obj)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    state = strip_prefix(state, "module.")
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: tensor {key} contains NaN or infinite values")
    return state


def read_state_dict(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The SGDepth state dict inside ``path`` (wrappers and ``module.`` removed); refuses other models' files."""
    state = _read_tensor_dict(path, map_location)
    missing = [k for k in _MARKERS if k not in state]
    if missing:
        shown = ", ".join(list(state)[:3])
        raise CheckpointError(f"{path} is not an SGDepth checkpoint (no {missing[0]}; first keys: {shown})")
    return state


def _resnet_depth(state: Mapping[str, torch.Tensor], prefix: str, source: str) -> int:
    blocks = []
    for stage in range(1, 5):
        pattern = re.compile(rf"{re.escape(prefix)}layer{stage}\.(\d+)\.")
        indices = {int(m.group(1)) for k in state if (m := pattern.match(k))}
        blocks.append(len(indices))
    bottleneck = f"{prefix}layer1.0.conv3.weight" in state
    depth = _RESNET_LAYOUTS.get((tuple(blocks), bottleneck))
    if depth is None:
        raise CheckpointError(f"{source}: cannot infer the ResNet under {prefix!r} (blocks per stage {blocks})")
    return depth


def infer_config(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> SGDepthConfig:
    """SGDepthConfig matching the keys and shapes of an SGDepth state dict (other options keep their defaults)."""
    shared_steps = sum(1 for k in state if re.fullmatch(r"common\.decoder\.blocks\.step_\d+\.conv\.weight", k))
    resolutions = sum(1 for k in state if re.fullmatch(r"depth\.multires\.convs\.\d+\.weight", k))
    if "seg.multires.convs.0.weight" not in state:
        raise CheckpointError(f"{source}: no seg.multires.convs.0.weight (segmentation head)")
    try:
        return SGDepthConfig(
            num_layers=_resnet_depth(state, "common.encoder.encoder.", source),
            num_layers_pose=_resnet_depth(state, "pose.encoder.encoder.", source),
            split_pos=(shared_steps + 1) // 2,
            resolutions_depth=resolutions,
            num_classes=state["seg.multires.convs.0.weight"].shape[0],
            keep_unused_params=any(k.startswith(_UNUSED) for k in state),
        )
    except ValueError as exc:
        raise CheckpointError(f"{source}: unsupported architecture ({exc})") from exc


def load_pretrained_with_report(
    path: str | Path,
    config: SGDepthConfig | None = None,
    strict: bool = True,
    map_location: str | torch.device = "cpu",
) -> tuple[SGDepth, LoadReport]:
    """Like :func:`load_pretrained`, also returning the :class:`LoadReport` (missing / unexpected / mis-shaped keys)."""
    state = read_state_dict(path, map_location)
    model = SGDepth(config if config is not None else infer_config(state, str(path)))
    report = load_state_dict_into(model, state, strict=strict, source=str(path))
    return model.eval(), report


def load_pretrained(
    path: str | Path,
    config: SGDepthConfig | None = None,
    strict: bool = True,
    map_location: str | torch.device = "cpu",
) -> SGDepth:
    """Build SGDepth (``config``, or inferred from the keys when None) and load the checkpoint at ``path``.

    With ``strict`` any missing, unexpected or mis-shaped key raises a one-line :class:`CheckpointError` naming the
    file and the keys; otherwise matching entries are loaded. A file of another model is always refused. Returns the
    model in eval mode.
    """
    return load_pretrained_with_report(path, config, strict, map_location)[0]


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> SGDepth:
    """Any accepted checkpoint → SGDepth in eval mode. Our run checkpoints (``RUN_DIR/checkpoints/last.pt``: a dict
    with ``model`` and the task ``config`` whose ``model`` entry is the SGDepthConfig) are rebuilt with their exact
    configuration (e.g. reduced decoder widths); the authors' files with the configuration inferred from the keys."""
    obj = load_checkpoint(path, map_location=map_location)
    config = obj.get("config") if isinstance(obj, dict) else None
    if isinstance(config, dict) and isinstance(config.get("model"), dict):
        try:
            model_config = SGDepthConfig.from_dict(config["model"], ignore_unknown=True)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad model configuration in the checkpoint ({exc})") from exc
        return load_pretrained(path, model_config, map_location=map_location)
    return load_pretrained(path, map_location=map_location)


def repeat_conv1(weight: torch.Tensor, num_images: int) -> torch.Tensor:
    """ImageNet conv1 64×3×7×7 → 64×3n×7×7 for n stacked images: repeated along input channels and divided by n."""
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError(f"weight: expected a 64×3×k×k conv1 weight, got shape {tuple(weight.shape)}")
    return weight.repeat(1, num_images, 1, 1) / num_images


def _imagenet_state(path: str | Path, num_images: int) -> dict[str, torch.Tensor]:
    state = _read_tensor_dict(path, "cpu")
    if "conv1.weight" not in state or "layer1.0.conv1.weight" not in state:
        raise CheckpointError(f"{path} is not a torchvision ResNet state dict (no conv1.weight / layer1.* keys)")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if num_images > 1:
        state["conv1.weight"] = repeat_conv1(state["conv1.weight"], num_images)
    return state


def load_imagenet_backbones(
    model: SGDepth,
    encoder_path: str | Path | None = None,
    pose_path: str | Path | None = None,
    strict: bool = True,
) -> dict[str, LoadReport]:
    """Load local torchvision ResNet ImageNet weights (``fc`` ignored) into the encoders; nothing is downloaded.

    ``encoder_path`` goes to ``common.encoder.encoder`` (e.g. resnet50 for the paper config), ``pose_path`` to
    ``pose.encoder.encoder`` with conv1 repeated over the 2 input images and halved (resnet18). Returns one report
    per loaded part; with ``strict`` a key or shape mismatch raises :class:`CheckpointError` naming the file.
    """
    reports = {}
    if encoder_path is not None:
        state = _imagenet_state(encoder_path, 1)
        reports["encoder"] = load_state_dict_into(model.common.encoder.encoder, state, strict, str(encoder_path))
    if pose_path is not None:
        state = _imagenet_state(pose_path, model.pose.encoder.num_input_images)
        reports["pose"] = load_state_dict_into(model.pose.encoder.encoder, state, strict, str(pose_path))
    return reports
