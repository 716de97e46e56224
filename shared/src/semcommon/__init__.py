"""semcommon: the code the five semvision packages share.

Modules: ``io`` (images, PFM, disparity/depth maps), ``metrics`` (confusion matrix, disparity, depth, pose AUC),
``checkpoint`` (safe load, atomic save, key remapping and reports), ``viz`` (colour maps, panels, match drawings),
``runtime`` (seeding, device choice, progress, logging), ``cli`` (the shared command-line frame), ``kernels`` (cost
volumes, RAFT correlation), ``training`` (the training frame: DDP, exact resume, checkpoints, logs) and ``testing``
(parity fixtures, near-tie rules, device-neutral checks).
"""

from semcommon.runtime import package_version

__version__ = package_version("semvision-common")
