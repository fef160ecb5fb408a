"""Readers of item files: Amazon 2023 meta JSON Lines, RecBole .item and CSV.

Each returns one row per kept item with the columns of `ITEM_COLUMNS`: the raw
item key (parent_asin), clean text, categories as a list of str, a float price and
the first image URL. Rows whose key is not in `keep` are dropped and counted, so
memory follows the catalog that was bought, not the size of the item file.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from nanorec.formats.common import (
    Fixes,
    InputError,
    check_columns,
    csv_columns,
    decode_line,
    decode_text,
    find_one,
    iter_csv,
    open_text,
    parse_json_line,
    parse_price,
)

logger = logging.getLogger(__name__)

ITEM_COLUMNS = (
    "parent_asin",
    "title",
    "store",
    "categories",
    "price",
    "description",
    "image_url",
)
TEXT_COLUMNS = ("title", "store", "description")


def empty_items() -> pd.DataFrame:
    """Return an item table with the standard columns and no rows."""
    return pd.DataFrame({column: [] for column in ITEM_COLUMNS})


def read_meta_jsonl(
    path: Path, keep: set[str] | None, fixes: Fixes, drop_fix: str
) -> pd.DataFrame:
    """Read an Amazon Reviews 2023 `meta_*.jsonl(.gz)` file.

    Args:
        path: one JSON object per line with parent_asin, title, store, categories
            (list), features (list), description (list), price and images (list of
            objects with hi_res / large / thumb URLs).
        keep: parent_asin values to keep; None keeps every row.
        fixes: receives the repair counts.
        drop_fix: the fix name under which dropped rows are counted.

    Returns:
        A DataFrame with ITEM_COLUMNS.
    """
    rows: list[dict] = []
    seen: set[str] = set()
    with open_text(path) as handle:
        lines = tqdm(handle, desc=f"reading {path.name}", unit=" lines", leave=False)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                fixes.add("blank_lines_skipped")
                continue
            record = parse_json_line(decode_line(line, fixes), path, number)
            asin = record.get("parent_asin")
            if not asin:
                raise InputError(
                    f"{path}: line {number} has no parent_asin; every item row needs "
                    "one"
                )
            asin = str(asin)
            if keep is not None and asin not in keep:
                fixes.add(drop_fix)
                continue
            if asin in seen:
                fixes.add("metadata_duplicate_rows_dropped")
                continue
            seen.add(asin)
            rows.append(_meta_row(asin, record, fixes))
    if not rows:
        return empty_items()
    return pd.DataFrame(rows, columns=list(ITEM_COLUMNS))


def _meta_row(asin: str, record: dict, fixes: Fixes) -> dict:
    texts = []
    for key in ("features", "description"):
        value = record.get(key) or []
        parts = value if isinstance(value, list) else [value]
        texts += [decode_text(part, fixes) for part in parts]
    return {
        "parent_asin": asin,
        "title": decode_text(record.get("title"), fixes),
        "store": decode_text(record.get("store"), fixes),
        "categories": parse_categories(record.get("categories"), fixes),
        "price": parse_price(record.get("price"), fixes),
        "description": " ".join(t for t in texts if t),
        "image_url": _first_image(record.get("images")),
    }


def _first_image(images: object) -> str:
    if not isinstance(images, list):
        return ""
    for image in images:
        if isinstance(image, dict):
            for key in ("large", "hi_res", "thumb"):
                if image.get(key):
                    return str(image[key])
    return ""


def read_recbole_items(
    path: Path, keep: set[str] | None, fixes: Fixes, drop_fix: str
) -> pd.DataFrame:
    """Read a RecBole atomic `.item` file (tab-separated, typed `name:type` header).

    The item key is the `item_id` field. title, store (or brand), categories and
    price are read when present, and `token_seq` fields split on spaces as RecBole
    does, so "All Beauty" in a categories:token_seq field gives ["All", "Beauty"].

    Args:
        path: the .item file.
        keep: raw item ids to keep; None keeps every row.
        fixes: receives the repair counts.
        drop_fix: the fix name under which dropped rows are counted.

    Returns:
        A DataFrame with ITEM_COLUMNS.
    """
    header = csv_columns(path, delimiter="\t", quote=False)
    field_of = {name.split(":")[0]: name for name in header}
    kind_of = {name.split(":")[0]: name.partition(":")[2] for name in header}
    check_columns(path, list(field_of), ["item_id"])
    # Source field of each output column. RecBole's Amazon files name the store
    # field brand.
    sources = {"parent_asin": "item_id", "title": "title", "store": "store"}
    sources |= {"categories": "categories", "price": "price"}
    sources |= {"description": "description"}
    if "store" not in field_of:
        sources["store"] = "brand"
    sources = {column: s for column, s in sources.items() if s in field_of}
    types = {field_of[s]: pa.binary() for s in sources.values()}
    types[field_of["item_id"]] = pa.string()
    split_categories = kind_of.get(sources.get("categories", ""), "") == "token_seq"

    frames = []
    seen: set[str] = set()
    for _, block in iter_csv(path, types, delimiter="\t", quote=False):
        block = block.rename(columns={field_of[s]: c for c, s in sources.items()})
        block = _keep_rows(block, "parent_asin", keep, seen, fixes, drop_fix)
        frame = _text_frame(block, fixes)
        if split_categories:
            frame["categories"] = [_token_seq(v, fixes) for v in block["categories"]]
        frames.append(frame[list(ITEM_COLUMNS)])
    return pd.concat(frames, ignore_index=True) if frames else empty_items()


def _text_frame(block: pd.DataFrame, fixes: Fixes) -> pd.DataFrame:
    """Clean every ITEM_COLUMNS column of a block that has parent_asin."""
    n = len(block)

    def column(name: str) -> pd.Series | list[None]:
        return block[name] if name in block else [None] * n

    frame = pd.DataFrame({"parent_asin": block["parent_asin"].astype(str)})
    for name in (*TEXT_COLUMNS, "image_url"):
        frame[name] = [decode_text(v, fixes) for v in column(name)]
    frame["categories"] = [parse_categories(v, fixes) for v in column("categories")]
    frame["price"] = [parse_price(v, fixes) for v in column("price")]
    return frame


def _token_seq(value: object, fixes: Fixes) -> list[str]:
    return [part for part in decode_text(value, fixes).split(" ") if part]


def read_metadata_csv(
    path: Path, keep: set[str] | None, fixes: Fixes, drop_fix: str
) -> pd.DataFrame:
    """Read an item_metadata.csv keyed by parent_asin (the challenge layout).

    Args:
        path: comma-separated with parent_asin and any of title, store,
            categories (a list-like string), price, description, image_url.
        keep: parent_asin values to keep; None keeps every row.
        fixes: receives the repair counts.
        drop_fix: the fix name under which dropped rows are counted.

    Returns:
        A DataFrame with ITEM_COLUMNS.
    """
    header = csv_columns(path)
    check_columns(path, header, ["parent_asin"])
    optional = ("title", "store", "categories", "price", "description", "image_url")
    types = {"parent_asin": pa.string()}
    types |= {c: pa.binary() for c in optional if c in header}

    frames = []
    seen: set[str] = set()
    for _, block in iter_csv(path, types, newlines_in_values=True):
        block = _keep_rows(block, "parent_asin", keep, seen, fixes, drop_fix)
        frames.append(_text_frame(block, fixes)[list(ITEM_COLUMNS)])
    return pd.concat(frames, ignore_index=True) if frames else empty_items()


def _keep_rows(
    block: pd.DataFrame,
    key: str,
    keep: set[str] | None,
    seen: set[str],
    fixes: Fixes,
    drop_fix: str,
) -> pd.DataFrame:
    """Drop rows whose key is not in `keep` or was already read, counting both."""
    keys = block[key].astype(str)
    if keep is not None:
        wanted = keys.isin(keep).to_numpy()
        fixes.add(drop_fix, int((~wanted).sum()))
        block, keys = block[wanted], keys[wanted]
    repeated = keys.duplicated().to_numpy() | keys.isin(seen).to_numpy()
    fixes.add("metadata_duplicate_rows_dropped", int(repeated.sum()))
    block = block[~repeated]
    seen.update(block[key].astype(str))
    return block.reset_index(drop=True)


def parse_categories(value: object, fixes: Fixes) -> list[str]:
    """Turn a list, "['A', 'B']" or "'A', 'B'" into a list of clean strings.

    A string that is not a Python-style list is split on commas.
    """
    if isinstance(value, list | tuple | np.ndarray):
        parts = list(value)
    else:
        text = decode_text(value, fixes)
        if not text:
            return []
        literal = text if text.startswith("[") else f"[{text}]"
        try:
            parsed = ast.literal_eval(literal)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed = [part.strip(" '\"") for part in text.split(",")]
        parts = parsed if isinstance(parsed, list | tuple) else [parsed]
    flat = []
    for part in parts:
        if isinstance(part, list | tuple):
            flat.extend(part)
        else:
            flat.append(part)
    cleaned = (decode_text(str(part), fixes) for part in flat)
    return [part for part in cleaned if part]


def find_item_file(folder: Path, stem: str) -> Path | None:
    """Find the item file beside an interaction file named `stem`, if any.

    Looks for, in order: meta_<stem>.jsonl(.gz), <stem>.item, then any single
    meta_*.jsonl(.gz), *.item or item_metadata.csv in the folder.
    """
    for name in (f"meta_{stem}.jsonl", f"meta_{stem}.jsonl.gz", f"{stem}.item"):
        if (folder / name).is_file():
            return folder / name
    patterns = ["meta_*.jsonl", "meta_*.jsonl.gz", "*.item", "item_metadata.csv"]
    return find_one(folder, patterns, "item")


def read_item_file(
    path: Path | None, keep: set[str] | None, fixes: Fixes, drop_fix: str
) -> pd.DataFrame:
    """Read an item file of any supported kind, chosen by its name."""
    if path is None:
        logger.warning("no item file found: items get no text")
        return empty_items()
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz")):
        return read_meta_jsonl(path, keep, fixes, drop_fix)
    if name.endswith(".item"):
        return read_recbole_items(path, keep, fixes, drop_fix)
    return read_metadata_csv(path, keep, fixes, drop_fix)


def clean_metadata(frame: pd.DataFrame, fixes: Fixes) -> pd.DataFrame:
    """Bring an item table built in memory (the synthetic shop) to ITEM_COLUMNS."""
    if "parent_asin" not in frame.columns:
        raise InputError(
            f"item metadata lacks column 'parent_asin'; found {list(frame.columns)}"
        )
    block = frame.drop_duplicates("parent_asin")
    fixes.add("metadata_duplicate_rows_dropped", len(frame) - len(block))
    return _text_frame(block.reset_index(drop=True), fixes)[list(ITEM_COLUMNS)]
