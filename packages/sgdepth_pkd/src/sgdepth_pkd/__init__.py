"""Semantic-guided monocular depth with patch knowledge distillation (SGDepth-based, KITTI)."""

__version__ = "0.1.0"
