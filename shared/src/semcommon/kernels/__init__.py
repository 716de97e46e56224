"""Cost-volume kernels: a stable API with vectorised PyTorch reference implementations.

- :func:`gwc_volume_norm`: normalised group-wise correlation over a signed disparity range (SemStereo).
- :func:`warp_by_disparity` / :func:`concat_volume`: feature warping at per-pixel disparity samples and the
  concatenation volume built from it (SemStereo).
- :func:`corr_pyramid` / :func:`corr_lookup`: RAFT's all-pairs correlation pyramid and its windowed lookup.

Faster GPU back-ends plug in behind these functions without changing their signatures.
"""

from semcommon.kernels.raft_corr import corr_lookup, corr_pyramid
from semcommon.kernels.stereo import concat_volume, gwc_volume_norm, warp_by_disparity

__all__ = ["concat_volume", "corr_lookup", "corr_pyramid", "gwc_volume_norm", "warp_by_disparity"]
