"""Logging set-up and process figures shared by the stages and the command line."""

from __future__ import annotations

import logging
import resource
import sys

import typer

from nanorec.errors import NanorecError


def setup_logging(level: int = logging.INFO) -> None:
    """Send log records to stderr with a timestamp and the module name."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def peak_rss_mib() -> float:
    """Return this process's peak resident memory in MiB."""
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(app: typer.Typer) -> None:
    """Run a stage's Typer app; a NanorecError ends it with its message, exit 2."""
    try:
        app()
    except NanorecError as err:
        logging.getLogger("nanorec").error("%s", err)
        sys.exit(2)
