"""RecBole atomic files: `<name>.inter` interactions and an optional `<name>.item`.

Both are tab-separated with a typed header such as `user_id:token` and
`timestamp:float`, and no quoting. The user_id and item_id fields are tokens, so
they are encoded to integers whatever they look like. The raw tokens are kept in
the users table and in items.raw_item_id.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from nanorec.formats.common import (
    Fixes,
    IdEncoder,
    InputError,
    RawInput,
    check_columns,
    csv_columns,
    encode_ids,
    encoded_input,
    find_one,
    iter_csv,
    parse_ratings,
    parse_timestamps,
    require_file,
    require_rows,
)
from nanorec.formats.items import find_item_file, read_item_file

logger = logging.getLogger(__name__)


def read_recbole(path: Path) -> RawInput:
    """Read a RecBole `.inter` file and the `.item` file beside it.

    Args:
        path: the .inter file, or a folder holding exactly one.

    Returns:
        RawInput with encoded ids, every user as a test user, and the item rows of
        the bought items only.
    """
    inter = _locate_inter(Path(path))
    fixes = Fixes()
    users, items = IdEncoder(), IdEncoder()
    train = _read_inter(inter, users, items, fixes)
    logger.info("read %d users and %d items from %s", len(users), len(items), inter)
    item_file = find_item_file(inter.parent, inter.name.removesuffix(".inter"))
    metadata = read_item_file(
        item_file, set(items.raw_ids()), fixes, "metadata_rows_never_bought"
    )
    return encoded_input(train, users, items, metadata, fixes)


def _locate_inter(path: Path) -> Path:
    if path.is_dir():
        found = find_one(path, ["*.inter"], "RecBole .inter")
        if found is None:
            raise InputError(
                f"{path} contains no .inter file; ingest.format=recbole reads RecBole "
                "atomic files"
            )
        path = found
    return require_file(path, "a typed header such as user_id:token")


def _read_inter(
    path: Path, users: IdEncoder, items: IdEncoder, fixes: Fixes
) -> list[pd.DataFrame]:
    header = csv_columns(path, delimiter="\t", quote=False)
    field_of = {name.split(":")[0]: name for name in header}
    check_columns(path, list(field_of), ["user_id", "item_id"])
    fields = [f for f in ("user_id", "item_id", "rating", "timestamp") if f in field_of]
    types = {field_of[f]: pa.string() for f in fields}

    frames = []
    blocks = iter_csv(path, types, delimiter="\t", quote=False)
    for first_row, block in tqdm(blocks, desc=f"reading {path.name}", leave=False):
        block = block.rename(columns={field_of[f]: f for f in fields})
        frame = pd.DataFrame(
            {
                "user_id": encode_ids(users, block["user_id"], str(path), first_row),
                "item_id": encode_ids(items, block["item_id"], str(path), first_row),
            }
        )
        if "rating" in block:
            frame["rating"] = parse_ratings(block["rating"]).to_numpy()
        if "timestamp" in block:
            where = f"{path} field {field_of['timestamp']}"
            stamps = parse_timestamps(block["timestamp"], fixes, where, first_row)
            frame["timestamp"] = stamps.to_numpy()
        frames.append(frame)
    require_rows(path, sum(len(f) for f in frames))
    return frames
