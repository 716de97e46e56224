"""ClearSCD (ISPRS JPRS 2024): semantic change detection on bi-temporal imagery (Hi-UCD, LsSCD)."""

__version__ = "0.1.0"
