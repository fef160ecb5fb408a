"""The challenge layout: train.csv, test.csv, item_metadata.csv, id_mappings.json.

train.csv has encoded integer user_id and item_id columns, optionally rating and
timestamp; test.csv lists the users to predict for. id_mappings.json maps the raw
reviewer ids and ASINs to the encoded ids, and item_metadata.csv is keyed by the
raw ASIN (parent_asin). The catalog is every mapped item plus every bought one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from nanorec.formats.common import (
    Fixes,
    InputError,
    RawInput,
    check_columns,
    csv_columns,
    iter_csv,
    numeric_ids,
    parse_ratings,
    parse_timestamps,
    require_rows,
)
from nanorec.formats.items import empty_items, read_metadata_csv
from nanorec.io import read_json

logger = logging.getLogger(__name__)


def read_challenge(folder: Path) -> RawInput:
    """Read the challenge layout from a folder.

    Args:
        folder: contains train.csv (user_id, item_id[, rating, timestamp]), test.csv
            (user_id, ...), and optionally item_metadata.csv and id_mappings.json.

    Returns:
        RawInput with the files' content; metadata is empty when absent.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            f"ingest.path={str(folder)!r} is not a folder: point it at the folder "
            "holding train.csv and test.csv"
        )
    fixes = Fixes()
    train = _read_train(folder / "train.csv", fixes)
    test_path = folder / "test.csv"
    check_columns(test_path, csv_columns(test_path), ["user_id"])
    test_ids = [
        numeric_ids(block["user_id"], f"{test_path} column user_id", row)
        for row, block in iter_csv(test_path, {"user_id": pa.string()})
    ]
    require_rows(test_path, sum(len(ids) for ids in test_ids))
    test = pd.DataFrame({"user_id": pd.concat(test_ids, ignore_index=True)})

    meta_path = folder / "item_metadata.csv"
    map_path = folder / "id_mappings.json"
    item_mapping: dict[str, int] = {}
    user_mapping: dict[str, int] = {}
    metadata = empty_items()
    if map_path.exists():
        item_mapping, user_mapping = _read_mappings(map_path)
    if meta_path.exists() and item_mapping:
        metadata = read_metadata_csv(
            meta_path, set(item_mapping), fixes, "metadata_rows_unmapped"
        )
    else:
        logger.warning(
            "no item_metadata.csv or no item_mapping in id_mappings.json in %s: "
            "items get no text",
            folder,
        )
    users = pd.DataFrame(
        {
            "user_id": np.fromiter(user_mapping.values(), dtype=np.int64),
            "raw_user_id": list(user_mapping),
        }
    )
    return RawInput(train, test, metadata, item_mapping, users=users, fixes=fixes)


def _read_train(path: Path, fixes: Fixes) -> pd.DataFrame:
    header = csv_columns(path)
    check_columns(path, header, ["user_id", "item_id"])
    columns = [c for c in ("user_id", "item_id", "rating", "timestamp") if c in header]
    frames = []
    blocks = iter_csv(path, dict.fromkeys(columns, pa.string()))
    for row, block in tqdm(blocks, desc=f"reading {path.name}", leave=False):
        frame = pd.DataFrame(
            {
                "user_id": numeric_ids(block["user_id"], f"{path} column user_id", row),
                "item_id": numeric_ids(block["item_id"], f"{path} column item_id", row),
            }
        )
        if "rating" in block:
            frame["rating"] = parse_ratings(block["rating"]).to_numpy()
        if "timestamp" in block:
            where = f"{path} column timestamp"
            stamps = parse_timestamps(block["timestamp"], fixes, where, row)
            frame["timestamp"] = stamps.to_numpy()
        frames.append(frame)
    train = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    require_rows(path, len(train))
    return train


def _read_mappings(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Read the item and user mappings (raw id -> encoded int) of id_mappings.json."""
    try:
        mappings = read_json(path)
    except ValueError as err:
        raise InputError(str(err)) from err
    if not isinstance(mappings, dict) or "item_mapping" not in mappings:
        raise InputError(
            f"{path} has no 'item_mapping' key; expected an object with "
            "item_mapping (ASIN -> encoded id) and user_mapping"
        )
    mapped = {}
    for key in ("item_mapping", "user_mapping"):
        table = mappings.get(key) or {}
        try:
            mapped[key] = {str(k): int(v) for k, v in table.items()}
        except (TypeError, ValueError, AttributeError) as err:
            raise InputError(
                f"{path}: {key} must map raw ids to integer ids ({err})"
            ) from err
    return mapped["item_mapping"], mapped["user_mapping"]
