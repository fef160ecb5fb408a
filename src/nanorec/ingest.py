"""Clean purchase histories into the pipeline's normalised tables.

The readers in `nanorec.formats` turn each input layout into raw tables; this
module repairs and counts what is dirty, orders every history and writes:

- interactions: user_id, item_id, item_idx, position (0 = oldest), plus rating
  (float, NaN when missing) and timestamp (datetime64[ms, UTC]) when the input has
  them; sorted by user, then position.
- items: item_idx (1..n_items; 0 is padding), item_id, parent_asin, raw_item_id,
  title, store, categories (list of str), price, description, image_url, has_text.
- split: user_id, item_idx, item_id of each user's validation item (the last
  interaction of every user with at least two).
- test_users: user_id of every user to write a submission row for.
- users: user_id and raw_user_id, for submissions with the input's own ids.

user_id and item_id are int64 everywhere: the input's own ids in the challenge
layout, or codes given in order of appearance when the input has string ids.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nanorec import data
from nanorec.formats import READERS, Fixes, InputError, RawInput, read_input
from nanorec.formats.challenge import read_challenge
from nanorec.formats.common import numeric_ids, parse_ratings, parse_timestamps
from nanorec.formats.items import clean_metadata
from nanorec.io import write_parquet
from nanorec.synthetic import RawTables

logger = logging.getLogger(__name__)

__all__ = [
    "READERS",
    "Dataset",
    "InputError",
    "normalise",
    "read_challenge",
    "read_input",
    "write_dataset",
]


@dataclass(frozen=True)
class Dataset:
    """The normalised tables (see the module docstring) and their statistics."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    split: pd.DataFrame
    test_users: pd.DataFrame
    users: pd.DataFrame
    stats: dict[str, Any]


def normalise(
    raw: RawTables,
    dedupe_pairs: bool = False,
    max_history: int = 0,
    rating_min: float = 1.0,
    rating_max: float = 5.0,
) -> Dataset:
    """Repair, order and index the raw tables, and cut the validation split.

    Args:
        raw: the output of a reader, or of the synthetic generator.
        dedupe_pairs: keep only the first purchase of each user-item pair.
        max_history: keep only each user's latest max_history interactions; 0
            keeps all.
        rating_min: lowest valid rating; ratings outside the range become NaN.
        rating_max: highest valid rating.

    Returns:
        The Dataset; stats["fixes"] counts every repair, zeros included.

    Raises:
        InputError: for an id, timestamp or table that cannot be repaired.
    """
    fixes = raw.fixes if isinstance(raw, RawInput) else Fixes()
    train = _clean_rows(raw.train, fixes, rating_min, rating_max)
    train = _order(train, fixes, dedupe_pairs, max_history)

    items = _build_items(train["item_id"], raw, fixes)
    index = pd.Series(items["item_idx"].to_numpy(), index=items["item_id"].to_numpy())
    train["item_idx"] = index.loc[train["item_id"].to_numpy()].to_numpy()
    columns = ["user_id", "item_id", "item_idx", "position"]
    columns += [c for c in ("rating", "timestamp") if c in train.columns]
    interactions = train[columns].reset_index(drop=True)

    # Validation: the last interaction of each user who has at least two.
    counts = interactions.groupby("user_id")["position"].transform("size")
    is_last = interactions["position"] == counts - 1
    split = interactions.loc[
        is_last & (counts >= 2), ["user_id", "item_idx", "item_id"]
    ].reset_index(drop=True)

    test_users = _test_users(raw.test, fixes)
    users = _users_table(interactions, test_users, raw)
    stats = _stats(interactions, items, split, test_users, fixes)
    fixes.log()
    logger.info("ingested %s", {k: v for k, v in stats.items() if k != "fixes"})
    return Dataset(interactions, items, split, test_users, users, stats)


def _clean_rows(
    raw_train: pd.DataFrame, fixes: Fixes, rating_min: float, rating_max: float
) -> pd.DataFrame:
    """Check ids, and bring ratings and timestamps to one type and unit."""
    for column in ("user_id", "item_id"):
        if column not in raw_train.columns:
            raise InputError(
                f"train rows lack column {column!r}; found {list(raw_train.columns)}"
            )
    if len(raw_train) == 0:
        raise InputError("the input has no interactions: nothing to train on")
    train = pd.DataFrame(
        {
            column: numeric_ids(raw_train[column], f"train.csv column {column}")
            for column in ("user_id", "item_id")
        }
    )
    if "rating" in raw_train.columns:
        rating = parse_ratings(raw_train["rating"]).to_numpy(copy=True)
        fixes.add("ratings_missing", int(np.isnan(rating).sum()))
        outside = (rating < rating_min) | (rating > rating_max)
        fixes.add("ratings_out_of_range_cleared", int(outside.sum()))
        rating[outside] = np.nan
        train["rating"] = rating
    if "timestamp" in raw_train.columns:
        stamps = parse_timestamps(
            raw_train["timestamp"].reset_index(drop=True), fixes, "train timestamp"
        )
        train["timestamp"] = stamps.to_numpy()
    return train


def _order(
    train: pd.DataFrame, fixes: Fixes, dedupe_pairs: bool, max_history: int
) -> pd.DataFrame:
    """Sort each history oldest first, drop copies and number the positions.

    The sort is stable and falls back on file order, so rows with equal
    timestamps keep the order of the file and are never ordered by item id,
    which would leak the target.
    """
    train["file_row"] = np.arange(len(train))
    has_time = "timestamp" in train.columns
    keys = ["user_id", "timestamp", "file_row"] if has_time else ["user_id", "file_row"]
    train = train.sort_values(keys, kind="stable").reset_index(drop=True)

    # NOTE: without timestamps an exact copy of a row cannot be distinguished from a
    # second purchase of the same item, so such rows count as repeat pairs.
    if has_time:
        same = [c for c in ("user_id", "item_id", "timestamp", "rating") if c in train]
        copies = train.duplicated(subset=same).to_numpy()
        fixes.add("duplicate_rows_dropped", int(copies.sum()))
        train = train[~copies].reset_index(drop=True)
        users, stamps = train["user_id"].to_numpy(), train["timestamp"].to_numpy()
        ties = (users[1:] == users[:-1]) & (stamps[1:] == stamps[:-1])
        fixes.add("timestamp_ties", int(ties.sum()))

    repeats = train.duplicated(subset=["user_id", "item_id"]).to_numpy()
    if dedupe_pairs:
        fixes.add("repeat_pairs_dropped", int(repeats.sum()))
        train = train[~repeats].reset_index(drop=True)
    else:
        fixes.add("repeat_pairs_kept", int(repeats.sum()))

    if max_history > 0:
        age = train.groupby("user_id").cumcount(ascending=False).to_numpy()
        fixes.add("history_rows_truncated", int((age >= max_history).sum()))
        train = train[age < max_history].reset_index(drop=True)
    train["position"] = train.groupby("user_id").cumcount().astype(np.int32)
    return train.drop(columns="file_row")


def _build_items(bought: pd.Series, raw: RawTables, fixes: Fixes) -> pd.DataFrame:
    """Build the catalog: every mapped item plus every bought one, with metadata.

    item_idx follows the sorted item_id, so it does not depend on file order.
    """
    mapping = raw.item_mapping
    ids = np.union1d(np.fromiter(mapping.values(), dtype=np.int64), bought.unique())
    items = pd.DataFrame({"item_idx": np.arange(1, len(ids) + 1), "item_id": ids})
    asin_of = {code: asin for asin, code in mapping.items()}
    items["parent_asin"] = [asin_of.get(int(i), "") for i in ids]
    items["raw_item_id"] = [asin_of.get(int(i), str(i)) for i in ids]

    metadata = raw.item_metadata
    if not isinstance(raw, RawInput):
        metadata = clean_metadata(metadata, fixes)
        known = metadata["parent_asin"].isin(items["parent_asin"]).to_numpy()
        fixes.add("metadata_rows_unmapped", int((~known).sum()))
    meta = metadata.set_index("parent_asin")
    keys = items["parent_asin"]
    has_row = keys.isin(meta.index).to_numpy() & (keys != "").to_numpy()
    for column in ("title", "store", "description", "image_url"):
        items[column] = keys.map(meta[column]).astype(object).fillna("").astype(str)
    categories = keys.map(meta["categories"])
    items["categories"] = [c if isinstance(c, list) else [] for c in categories]
    items["price"] = pd.to_numeric(keys.map(meta["price"]), errors="coerce")
    items["price"] = items["price"].astype(np.float64)
    text = items[["title", "store", "description"]].ne("").any(axis=1)
    items["has_text"] = text.to_numpy() | (items["categories"].map(len) > 0)
    items["has_metadata"] = has_row
    return items


def _test_users(test: pd.DataFrame, fixes: Fixes) -> pd.DataFrame:
    if "user_id" not in test.columns:
        raise InputError(f"test users lack column 'user_id'; found {list(test)}")
    users = numeric_ids(test["user_id"].reset_index(drop=True), "test.csv user_id")
    repeated = users.duplicated().to_numpy()
    fixes.add("test_user_duplicates_dropped", int(repeated.sum()))
    return pd.DataFrame({"user_id": users[~repeated].to_numpy()})


def _users_table(
    interactions: pd.DataFrame, test_users: pd.DataFrame, raw: RawTables
) -> pd.DataFrame:
    """user_id and raw_user_id of every user with history or in the test list."""
    ids = np.union1d(interactions["user_id"].unique(), test_users["user_id"])
    raw_of: dict[int, str] = {}
    if isinstance(raw, RawInput) and len(raw.users):
        raw_of = dict(zip(raw.users["user_id"].astype(int), raw.users["raw_user_id"]))
    raw_ids = [str(raw_of.get(int(u), u)) for u in ids]
    return pd.DataFrame({"user_id": ids.astype(np.int64), "raw_user_id": raw_ids})


def _stats(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    split: pd.DataFrame,
    test_users: pd.DataFrame,
    fixes: Fixes,
) -> dict[str, Any]:
    per_user = interactions.groupby("user_id").size()
    bought = items["item_idx"].isin(interactions["item_idx"])
    without_history = ~test_users["user_id"].isin(interactions["user_id"])
    return {
        "n_users": int(len(per_user)),
        "n_items": int(len(items)),
        "n_interactions": int(len(interactions)),
        "n_validation_users": int(len(split)),
        "n_test_users": int(len(test_users)),
        "n_test_users_without_history": int(without_history.sum()),
        "n_users_with_one_interaction": int((per_user == 1).sum()),
        "max_user_interactions": int(per_user.max()),
        "n_items_without_text": int((~items["has_text"]).sum()),
        "n_items_without_metadata": int((~items["has_metadata"]).sum()),
        "n_items_never_bought": int((~bought).sum()),
        "fixes": fixes.as_dict(),
    }


def write_dataset(
    dataset: Dataset,
    out: Path,
    extra: Callable[[Path], None] | None = None,
) -> None:
    """Write all tables of a Dataset into `out`, all or nothing.

    The tables go to a hidden temporary folder beside `out`, which replaces `out`
    only once every file is written. `extra`, when given, is called with that
    folder to add more files (such as images) under the same guarantee. A failure
    or an interrupt (KeyboardInterrupt included) removes the temporary folder, so
    `out` keeps its previous content and never contains a mix of old and new tables.
    A temporary folder left by a killed process is removed by the next call.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}.tmp-"
    for stale in out.parent.glob(f"{prefix}*"):
        logger.warning("removing %s, left by an interrupted ingest", stale)
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
    try:
        tables = {
            data.INTERACTIONS: dataset.interactions,
            data.ITEMS: dataset.items,
            data.SPLIT: dataset.split,
            data.TEST_USERS: dataset.test_users,
            data.USERS: dataset.users,
        }
        for name, table in tables.items():
            write_parquet(table, staging / name)
        if extra is not None:
            extra(staging)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
