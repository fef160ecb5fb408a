"""Logging set-up shared by the stage scripts and the command line."""

from __future__ import annotations

import logging


def setup_logging(level: int = logging.INFO) -> None:
    """Send log records to stderr with a timestamp and the module name."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
