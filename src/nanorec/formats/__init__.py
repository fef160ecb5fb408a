"""Readers of the supported input layouts, selected by `ingest.format`.

Each reader returns a RawInput: train rows with int64 user_id and item_id (raw
string ids encoded in order of appearance), optional float rating and
datetime64[ms, UTC] timestamp, the test users, the item rows, the raw -> encoded
mappings and the repairs already made.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nanorec.formats.amazon2023 import read_amazon2023
from nanorec.formats.challenge import read_challenge
from nanorec.formats.common import FIX_DESCRIPTIONS, Fixes, InputError, RawInput
from nanorec.formats.recbole import read_recbole
from nanorec.formats.sequences import read_sequences

READERS: dict[str, Callable[[Path], RawInput]] = {
    "challenge": read_challenge,
    "amazon2023": read_amazon2023,
    "recbole": read_recbole,
    "sequences": read_sequences,
}

__all__ = [
    "FIX_DESCRIPTIONS",
    "READERS",
    "Fixes",
    "InputError",
    "RawInput",
    "read_input",
]


def read_input(format: str, path: Path) -> RawInput:
    """Read the input at `path` with the reader of `format` (a READERS key)."""
    if format not in READERS:
        raise InputError(
            f"ingest.format={format!r} has no reader; choose one of {sorted(READERS)}"
        )
    return READERS[format](Path(path))
