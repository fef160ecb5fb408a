"""Sequence text files: one user per line, the user id then item ids, oldest first.

Tokens are separated by spaces or tabs, as in the SASRec and P5 data files. A user
may appear on several lines, because SASRec writes one `user item` pair per line.
The items of later lines are appended to that user's history, and each such line
is counted. A line with a user id and no items makes a test user without history.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from nanorec.formats.common import (
    ROWS_PER_CHUNK,
    Fixes,
    IdEncoder,
    InputError,
    RawInput,
    decode_line,
    encoded_input,
    find_one,
    open_text,
    require_file,
    require_rows,
)
from nanorec.formats.items import find_item_file, read_item_file

logger = logging.getLogger(__name__)


def read_sequences(path: Path) -> RawInput:
    """Read a sequences text file and the item file beside it, if any.

    Args:
        path: a .txt or .txt.gz file, or a folder holding exactly one.

    Returns:
        RawInput with encoded ids, in file order (there are no timestamps), every
        user as a test user.
    """
    source = _locate(Path(path))
    fixes = Fixes()
    users, items = IdEncoder(), IdEncoder()
    frames: list[pd.DataFrame] = []
    seen_users: set[str] = set()
    chunk_users: list[str] = []
    chunk_items: list[str] = []
    with open_text(source) as handle:
        lines = tqdm(handle, desc=f"reading {source.name}", unit=" lines", leave=False)
        for line in lines:
            tokens = decode_line(line, fixes).split()
            if not tokens:
                fixes.add("blank_lines_skipped")
                continue
            user, history = tokens[0], tokens[1:]
            if user in seen_users:
                fixes.add("sequence_lines_merged")
            else:
                seen_users.add(user)
                users.encode_one(user)  # users without items still get a code
            chunk_users += [user] * len(history)
            chunk_items += history
            if len(chunk_items) >= ROWS_PER_CHUNK:
                frames.append(_frame(chunk_users, chunk_items, users, items))
                chunk_users, chunk_items = [], []
    if chunk_items:
        frames.append(_frame(chunk_users, chunk_items, users, items))
    require_rows(source, len(users))
    logger.info("read %d users and %d items from %s", len(users), len(items), source)

    stem = source.name.split(".")[0]
    metadata = read_item_file(
        find_item_file(source.parent, stem),
        set(items.raw_ids()),
        fixes,
        "metadata_rows_never_bought",
    )
    return encoded_input(frames, users, items, metadata, fixes)


def _frame(
    user_tokens: list[str], item_tokens: list[str], users: IdEncoder, items: IdEncoder
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": users.encode(user_tokens).astype(np.int64),
            "item_id": items.encode(item_tokens).astype(np.int64),
        }
    )


def _locate(path: Path) -> Path:
    if path.is_dir():
        found = find_one(path, ["*.txt", "*.txt.gz"], "sequences text")
        if found is None:
            raise InputError(
                f"{path} contains no .txt or .txt.gz file; ingest.format=sequences "
                "reads one user per line from one"
            )
        path = found
    return require_file(path, "one line per user: a user id, then item ids")
