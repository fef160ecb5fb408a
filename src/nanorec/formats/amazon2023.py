"""Amazon Reviews 2023: review JSON Lines or benchmark CSV, plus an item file.

The reviews are either `<Category>.jsonl(.gz)` (one review object per line with
user_id, parent_asin, rating and timestamp in milliseconds) or a benchmark CSV
(`user_id,parent_asin,rating,timestamp`). The item file beside them is the
matching `meta_<Category>.jsonl(.gz)`, or a RecBole `.item` file. The raw user ids
and ASINs are encoded to integers; the raw ids are kept in the users table and in
items.parent_asin.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from nanorec.formats.common import (
    ROWS_PER_CHUNK,
    Fixes,
    IdEncoder,
    InputError,
    RawInput,
    check_columns,
    csv_columns,
    decode_line,
    encode_ids,
    encoded_input,
    find_one,
    iter_csv,
    open_text,
    parse_json_line,
    parse_ratings,
    parse_timestamps,
    require_file,
    require_rows,
)
from nanorec.formats.items import find_item_file, read_item_file

logger = logging.getLogger(__name__)

REVIEW_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz")


def read_amazon2023(path: Path) -> RawInput:
    """Read Amazon Reviews 2023 files.

    Args:
        path: a review file (.jsonl, .jsonl.gz, .csv or .csv.gz), or a folder
            holding exactly one, with its item file beside it.

    Returns:
        RawInput with encoded ids, every user as a test user, and the item rows of
        the bought items only.
    """
    reviews = _locate_reviews(Path(path))
    stem = reviews.name.split(".")[0]
    item_file = find_item_file(reviews.parent, stem)
    fixes = Fixes()
    users, items = IdEncoder(), IdEncoder()
    if reviews.name.endswith((".csv", ".csv.gz")):
        train = _read_benchmark_csv(reviews, users, items, fixes)
    else:
        train = _read_reviews_jsonl(reviews, users, items, fixes)
    logger.info("read %d users and %d items from %s", len(users), len(items), reviews)
    metadata = read_item_file(
        item_file, set(items.raw_ids()), fixes, "metadata_rows_never_bought"
    )
    return encoded_input(train, users, items, metadata, fixes)


def _locate_reviews(path: Path) -> Path:
    if path.is_file():
        return require_file(path, "Amazon review rows")
    if not path.is_dir():
        raise InputError(
            f"ingest.path={str(path)!r} does not exist: point it at an Amazon "
            "Reviews 2023 review file or the folder holding one"
        )
    patterns = [f"*{suffix}" for suffix in REVIEW_SUFFIXES]
    candidates = [
        p
        for pattern in patterns
        for p in path.glob(pattern)
        if not p.name.startswith("meta_") and p.name != "item_metadata.csv"
    ]
    if not candidates:
        raise InputError(
            f"{path} contains no review file ({', '.join(REVIEW_SUFFIXES)}); add "
            "one or set ingest.path to the file"
        )
    if len(candidates) > 1:
        return find_one(path, [c.name for c in candidates], "review")
    return require_file(candidates[0], "Amazon review rows")


def _read_benchmark_csv(
    path: Path, users: IdEncoder, items: IdEncoder, fixes: Fixes
) -> list[pd.DataFrame]:
    header = csv_columns(path)
    check_columns(path, header, ["user_id", "parent_asin"])
    types = {"user_id": pa.string(), "parent_asin": pa.string()}
    types |= {c: pa.string() for c in ("rating", "timestamp") if c in header}
    frames = []
    n_rows = 0
    blocks = iter_csv(path, types)
    for first_row, block in tqdm(blocks, desc=f"reading {path.name}", leave=False):
        frame = pd.DataFrame(
            {
                "user_id": encode_ids(users, block["user_id"], str(path), first_row),
                "item_id": encode_ids(
                    items, block["parent_asin"], str(path), first_row
                ),
            }
        )
        if "rating" in block:
            frame["rating"] = parse_ratings(block["rating"]).to_numpy()
        if "timestamp" in block:
            where = f"{path} column timestamp"
            stamps = parse_timestamps(block["timestamp"], fixes, where, first_row)
            frame["timestamp"] = stamps.to_numpy()
        frames.append(frame)
        n_rows += len(frame)
    require_rows(path, n_rows)
    return frames


def _read_reviews_jsonl(
    path: Path, users: IdEncoder, items: IdEncoder, fixes: Fixes
) -> list[pd.DataFrame]:
    frames: list[pd.DataFrame] = []
    keys = ("line", "user", "item", "rating", "timestamp")
    chunk: dict[str, list] = {key: [] for key in keys}
    with open_text(path) as handle:
        lines = tqdm(handle, desc=f"reading {path.name}", unit=" lines", leave=False)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                fixes.add("blank_lines_skipped")
                continue
            record = parse_json_line(decode_line(line, fixes), path, number)
            item = record.get("parent_asin") or record.get("asin")
            chunk["line"].append(number)
            chunk["user"].append(record.get("user_id"))
            chunk["item"].append(item)
            chunk["rating"].append(record.get("rating"))
            chunk["timestamp"].append(record.get("timestamp"))
            if len(chunk["line"]) >= ROWS_PER_CHUNK:
                frames.append(_review_frame(chunk, path, users, items, fixes))
                chunk = {key: [] for key in chunk}
    if chunk["line"]:
        frames.append(_review_frame(chunk, path, users, items, fixes))
    require_rows(path, sum(len(f) for f in frames))
    return frames


def _review_frame(
    chunk: dict[str, list],
    path: Path,
    users: IdEncoder,
    items: IdEncoder,
    fixes: Fixes,
) -> pd.DataFrame:
    lines = np.asarray(chunk["line"], dtype=np.int64)
    where = f"{path} (rows numbered by line)"
    frame = pd.DataFrame(
        {
            "user_id": encode_ids(users, pd.Series(chunk["user"]), where, lines),
            "item_id": encode_ids(items, pd.Series(chunk["item"]), where, lines),
        }
    )
    ratings = pd.Series(chunk["rating"], dtype=object)
    if ratings.notna().any():
        frame["rating"] = parse_ratings(ratings).to_numpy()
    stamps = pd.Series(chunk["timestamp"], dtype=object)
    if stamps.notna().any():
        frame["timestamp"] = parse_timestamps(stamps, fixes, where, lines).to_numpy()
    return frame
