"""Cost-volume kernels: a stable API with PyTorch reference implementations and Triton GPU kernels.

- :func:`gwc_volume_norm`: normalised group-wise correlation over a signed disparity range (SemStereo).
- :func:`warp_by_disparity` / :func:`concat_volume`: feature warping at per-pixel disparity samples and the
  concatenation volume built from it (SemStereo).
- :func:`corr_pyramid` / :func:`corr_lookup`: RAFT's all-pairs correlation pyramid and its windowed lookup.
- :func:`feature_pyramid` / :func:`corr_lookup_windowed`: the same lookup from pooled features, without the all-pairs
  volume (memory O(H·W) instead of O(H²·W²)).

Back-end (:mod:`semcommon.kernels.backend`): Triton kernels (forward and backward, :mod:`semcommon.kernels.triton_ops`)
on CUDA tensors when ``triton`` is importable, the PyTorch reference otherwise; ``SEMVISION_KERNELS=torch|triton``
forces either (read at each call). All feature maps are ``B×C×H×W``.
"""

from semcommon.kernels.backend import select_backend
from semcommon.kernels.raft_corr import corr_lookup, corr_lookup_windowed, corr_pyramid, feature_pyramid
from semcommon.kernels.stereo import concat_volume, gwc_volume_norm, warp_by_disparity

__all__ = [
    "concat_volume",
    "corr_lookup",
    "corr_lookup_windowed",
    "corr_pyramid",
    "feature_pyramid",
    "gwc_volume_norm",
    "select_backend",
    "warp_by_disparity",
]
