"""SemaGlue (AAAI 2025): SuperPoint + LightGlue-style matcher with semantic amalgamation; YFCC pose evaluation."""

__version__ = "0.1.0"
