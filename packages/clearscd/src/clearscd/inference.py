"""Inference helpers: image pair → model input, model output → maps (as the authors' test.py derives them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from clearscd.model.clearscd import ClearSCD, check_imgs
from clearscd.model.fast import CudaGraphRunner, build_fast
from semcommon.io import read_image
from semcommon.runtime import PRECISIONS, autocast

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMPLS",
    "Inference",
    "ReferenceNetwork",
    "check_finite",
    "images_to_input",
    "predict_maps",
    "read_rgb",
]

IMPLS = ("fast", "reference")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an 8-bit RGB image file (PNG/JPEG/TIFF) as H×W×3 uint8 via :func:`semcommon.io.read_image`.

    Raises :class:`semcommon.io.ImageReadError` (a ``ValueError``) naming the file when it is missing, empty,
    undecodable, not 8-bit or not 3-channel.
    """
    return read_image(path, dtype=np.uint8, channels=3)


def images_to_input(image_A: np.ndarray, image_B: np.ndarray) -> torch.Tensor:
    """Two H×W×3 uint8 RGB images (T1, T2) of the same size → 1×6×H×W float tensor, each ImageNet-normalised
    ((u8/255 − mean)/std). Any H×W: the model pads to multiples of 32 in inference."""
    for name, image in (("image_A", image_A), ("image_B", image_B)):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name} must be H×W×3 RGB, got shape {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8 RGB, got dtype {image.dtype}")
    if image_A.shape != image_B.shape:
        raise ValueError(f"image_A {image_A.shape} and image_B {image_B.shape} must have the same size")
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    pair = [(image.astype(np.float32) / 255.0 - mean) / std for image in (image_A, image_B)]
    return torch.from_numpy(np.concatenate(pair, axis=2)).permute(2, 0, 1).unsqueeze(0).contiguous()


def check_finite(imgs: torch.Tensor, name: str = "imgs") -> None:
    """Refuse NaN/Inf values with one line (NaN inputs would give NaN logits and garbage maps)."""
    if not torch.isfinite(imgs).all():
        raise ValueError(f"{name} contains NaN or infinite values")


class Inference:
    """The inference entry point every command uses: ``Inference(model, impl, precision, compile)(imgs)`` →
    {"seg_A", "seg_B" B×K×H×W, "BCD" B×1×H×W} float32 logits of a float B×6×H×W input (any H×W), eval semantics.

    ``impl``: "fast" (default; :mod:`clearscd.model.fast`, equal to the reference within the parity tolerances) or
    "reference" (``model(imgs, test=True)``, the authors' operations in their order; uses the model in its current
    mode, so call ``model.eval()`` first). ``precision``: "fp32" (exact), "bf16"/"fp16" autocast (approximate).
    ``compile``: ``torch.compile`` the network (approximate, opt-in). ``cuda_graphs``: replay the fast path as CUDA
    graphs (exact: the same kernels, no per-kernel launch cost; opt-in until measured on a GPU, needs impl "fast",
    fp32, no compile and a CUDA model). ``channels_last``,
    ``batch_dates``: layout choices of the fast path (None = what measured faster, see :func:`build_fast`). The fast module is
    built once here from the model's current weights: build a new :class:`Inference` after changing them.
    """

    def __init__(
        self,
        model: ClearSCD,
        impl: str = "fast",
        precision: str = "fp32",
        compile: bool = False,
        cuda_graphs: bool = False,
        channels_last: bool | None = None,
        batch_dates: bool | None = None,
    ) -> None:
        if impl not in IMPLS:
            raise ValueError(f"--impl: unknown implementation {impl!r} (use one of {', '.join(IMPLS)})")
        if precision not in PRECISIONS:
            raise ValueError(f"--precision: unknown precision {precision!r} (use one of {', '.join(PRECISIONS)})")
        self.model, self.impl, self.precision = model, impl, precision
        self.config = model.config
        if impl == "fast":
            network: torch.nn.Module = build_fast(model, channels_last, batch_dates)
        else:
            network = ReferenceNetwork(model)
        self.network = torch.compile(network) if compile else network
        on_cuda = next(model.parameters()).device.type == "cuda"
        if cuda_graphs and (impl != "fast" or precision != "fp32" or compile or not on_cuda):
            raise ValueError("cuda_graphs needs impl 'fast', precision 'fp32', no compile and a model on a CUDA device")
        self.graphs = CudaGraphRunner(self.network) if cuda_graphs else None

    @torch.no_grad()
    def __call__(self, imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.graphs is not None and imgs.is_cuda:
            check_imgs(imgs)
            return self.graphs(imgs)
        with autocast(imgs.device, self.precision):
            out = self.network(imgs)
        return {k: v.float() for k, v in out.items() if v is not None}


class ReferenceNetwork(torch.nn.Module):
    """``model(imgs, test=True)`` restricted to the three inference outputs."""

    def __init__(self, model: ClearSCD) -> None:
        super().__init__()
        self.model = model

    def forward(self, imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(imgs, test=True)
        names = ("seg_A", "seg_B") if out["BCD"] is None else ("seg_A", "seg_B", "BCD")
        return {name: out[name] for name in names}


@torch.no_grad()
def predict_maps(
    model: ClearSCD | Inference, imgs: torch.Tensor, impl: str = "fast", precision: str = "fp32"
) -> dict[str, torch.Tensor]:
    """Run the model in inference mode on a float B×6×H×W tensor (any H×W; finite values).

    ``model``: a :class:`ClearSCD` (run through ``Inference(model, impl, precision)``) or a ready
    :class:`Inference`. Returns ``sem_A``/``sem_B`` = argmax classes B×H×W, ``change`` = round(sigmoid(BCD))
    B×H×W (0/1), plus the raw logits ``seg_A``, ``seg_B`` (B×K×H×W) and ``BCD`` (B×1×H×W).
    """
    check_imgs(imgs)
    check_finite(imgs)
    runner = model if isinstance(model, Inference) else Inference(model, impl, precision)
    out = runner(imgs)
    return {
        "sem_A": out["seg_A"].argmax(1),
        "sem_B": out["seg_B"].argmax(1),
        "change": torch.sigmoid(out["BCD"][:, 0]).round().long(),
        "seg_A": out["seg_A"],
        "seg_B": out["seg_B"],
        "BCD": out["BCD"],
    }
