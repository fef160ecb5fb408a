"""Errors that the user can fix; their messages name the culprit and the fix."""

from __future__ import annotations


class NanorecError(Exception):
    """Base of the errors a stage reports as one clear line instead of a traceback."""


class InputError(NanorecError, ValueError):
    """An input file is missing, malformed or inconsistent."""


class OutputError(NanorecError, OSError):
    """An artifact could not be written (disk full, read-only folder, permissions)."""
