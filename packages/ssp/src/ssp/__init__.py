"""SSP / KD-SSP (CVPR 2025): temporally consistent video semantic segmentation for UAVs (UAVid, RuralScapes)."""

__version__ = "0.1.0"
