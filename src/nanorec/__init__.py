"""nanorec: a reproducible DVC pipeline for next-item recommendation."""

__version__ = "0.1.0"
