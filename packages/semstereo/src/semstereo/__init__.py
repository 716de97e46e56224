"""SemStereo (AAAI 2025): semantic-constrained stereo matching for remote-sensing epipolar pairs (US3D, WHU)."""

__version__ = "0.1.0"
