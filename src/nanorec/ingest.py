"""Read purchase histories into the pipeline's normalised tables.

Outputs (all keyed by the ids a submission uses):
- interactions: user_id, item_id, item_idx, position (0 = oldest), plus rating and
  timestamp when the input has them; sorted by user, then position.
- items: item_idx (1..n_items; 0 is padding), item_id, parent_asin, title, store,
  categories (list of str), price.
- split: user_id, item_idx, item_id of each user's validation item (the last
  interaction of every user with at least two).
- test_users: user_id of every row of test.csv.
"""

from __future__ import annotations

import ast
import html
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nanorec.io import read_json
from nanorec.synthetic import RawTables

logger = logging.getLogger(__name__)


class InputError(ValueError):
    """An input file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Dataset:
    interactions: pd.DataFrame
    items: pd.DataFrame
    split: pd.DataFrame
    test_users: pd.DataFrame
    stats: dict[str, int]


def read_challenge(folder: Path) -> RawTables:
    """Read the challenge layout from a folder.

    Args:
        folder: holds train.csv (user_id, item_id[, rating, timestamp]), test.csv
            (user_id, ...), and optionally item_metadata.csv and id_mappings.json.

    Returns:
        RawTables with the files' content; metadata is empty when absent.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"ingest.path={str(folder)!r} is not a folder: point it at the folder "
            "holding train.csv and test.csv"
        )
    train = _read_csv(folder / "train.csv", required=("user_id", "item_id"))
    test = _read_csv(folder / "test.csv", required=("user_id",))

    meta_path = folder / "item_metadata.csv"
    map_path = folder / "id_mappings.json"
    if meta_path.exists() and map_path.exists():
        metadata = _read_csv(meta_path, required=("parent_asin",), dtype=str)
        mappings = read_json(map_path)
        if "item_mapping" not in mappings:
            raise InputError(f"{map_path} has no 'item_mapping' key")
        item_mapping = {str(k): int(v) for k, v in mappings["item_mapping"].items()}
    else:
        logger.warning(
            "no item_metadata.csv or id_mappings.json in %s: items get no text", folder
        )
        metadata = pd.DataFrame(columns=["parent_asin"])
        item_mapping = {}
    return RawTables(train, test, metadata, item_mapping)


def normalise(raw: RawTables) -> Dataset:
    """Order histories, index items, attach metadata and cut the validation split."""
    train = raw.train.copy()
    for column in ("user_id", "item_id"):
        train[column] = _as_ids(train[column], f"train.csv column {column}")
    test_users = pd.DataFrame(
        {"user_id": _as_ids(raw.test["user_id"], "test.csv column user_id")}
    )

    # Chronological order: a stable sort keeps file order among equal timestamps,
    # so ties are never broken by item id (which would leak the target).
    train["file_row"] = np.arange(len(train))
    keys = ["user_id", "timestamp", "file_row"]
    if "timestamp" not in train.columns:
        keys = ["user_id", "file_row"]
    train = train.sort_values(keys, kind="stable").reset_index(drop=True)
    train["position"] = train.groupby("user_id").cumcount().astype(np.int32)

    items = _build_items(train["item_id"], raw.item_metadata, raw.item_mapping)
    index = pd.Series(items["item_idx"].to_numpy(), index=items["item_id"].to_numpy())
    train["item_idx"] = index.loc[train["item_id"].to_numpy()].to_numpy()
    columns = ["user_id", "item_id", "item_idx", "position"]
    columns += [c for c in ("rating", "timestamp") if c in train.columns]
    interactions = train[columns]

    # Validation: the last interaction of each user who has at least two.
    counts = interactions.groupby("user_id")["position"].transform("size")
    is_last = interactions["position"] == counts - 1
    split = interactions.loc[
        is_last & (counts >= 2), ["user_id", "item_idx", "item_id"]
    ]
    stats = {
        "n_users": int(interactions["user_id"].nunique()),
        "n_items": int(len(items)),
        "n_interactions": int(len(interactions)),
        "n_validation_users": int(len(split)),
        "n_test_users": int(len(test_users)),
        "n_test_users_without_history": int(
            (~test_users["user_id"].isin(interactions["user_id"])).sum()
        ),
        "n_items_without_text": int((items["title"] == "").sum()),
    }
    logger.info("ingested %s", stats)
    return Dataset(interactions, items, split.reset_index(drop=True), test_users, stats)


def _build_items(
    bought: pd.Series, metadata: pd.DataFrame, item_mapping: dict[str, int]
) -> pd.DataFrame:
    # The catalog is every mapped item plus every bought one; item_idx follows the
    # sorted item_id so that it does not depend on the order of the files.
    ids = np.union1d(
        np.fromiter(item_mapping.values(), dtype=np.int64), bought.unique()
    )
    items = pd.DataFrame({"item_id": ids, "item_idx": np.arange(1, len(ids) + 1)})
    asin_of = {v: k for k, v in item_mapping.items()}
    items["parent_asin"] = [asin_of.get(int(i), "") for i in ids]

    meta = metadata.drop_duplicates("parent_asin").set_index("parent_asin")
    for column in ("title", "store"):
        values = meta[column] if column in meta.columns else pd.Series(dtype=str)
        mapped = items["parent_asin"].map(values).astype(object).fillna("")
        items[column] = [html.unescape(str(v)).strip() for v in mapped]
    raw_categories = (
        meta["categories"] if "categories" in meta.columns else pd.Series(dtype=str)
    )
    items["categories"] = [
        _parse_categories(v) for v in items["parent_asin"].map(raw_categories)
    ]
    raw_price = meta["price"] if "price" in meta.columns else pd.Series(dtype=float)
    items["price"] = pd.to_numeric(
        items["parent_asin"].map(raw_price), errors="coerce"
    ).astype(float)
    return items


def _parse_categories(value: object) -> list[str]:
    """Turn "'Beauty', 'Makeup'" or "['Beauty']" into a list of unescaped strings."""
    if not isinstance(value, str) or not value.strip():
        return []
    text = value.strip()
    if not text.startswith("["):
        text = f"[{text}]"
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        parsed = [part.strip(" '\"") for part in value.split(",")]
    if isinstance(parsed, str):
        parsed = [parsed]
    return [html.unescape(str(p)).strip() for p in parsed if str(p).strip()]


def _read_csv(path: Path, required: tuple[str, ...], dtype=None) -> pd.DataFrame:
    if not path.exists():
        raise InputError(f"{path} does not exist; the challenge layout needs it")
    try:
        frame = pd.read_csv(path, dtype=dtype, keep_default_na=dtype is not str)
    except pd.errors.EmptyDataError as err:
        raise InputError(f"{path} is empty: expected a header row and data") from err
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path} lacks column(s) {missing}; found {list(frame.columns)}"
        )
    return frame


def _as_ids(column: pd.Series, where: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() | (values < 0) | (values != values.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{where}: value {str(column.iloc[row])!r} at data row {row + 1} is not a "
            "non-negative integer id"
        )
    return values.astype(np.int64)
