"""Pieces shared by the input readers: errors, fix counts, id encoding, streaming.

Every reader streams its files in blocks and keeps only the columns the pipeline
uses, so memory grows with the number of interactions kept rather than with the
size of the raw file. Every repair a reader or the ingest stage makes is counted in
a `Fixes` object, whose counts end up in the ingest metrics file.
"""

from __future__ import annotations

import gzip
import html
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from nanorec.errors import InputError
from nanorec.synthetic import RawTables

logger = logging.getLogger(__name__)

# Bytes per block of the streaming CSV reader: large enough for throughput, small
# enough that one block of raw text never dominates memory.
CSV_BLOCK_BYTES = 8 << 20
# Rows of a JSON Lines or sequences file collected before their ids are encoded.
ROWS_PER_CHUNK = 200_000

FIX_DESCRIPTIONS: dict[str, str] = {
    "duplicate_rows_dropped": "rows identical to an earlier row (same user, item, "
    "timestamp and rating); the later copy is dropped",
    "repeat_pairs_kept": "rows whose user bought the same item before; kept",
    "repeat_pairs_dropped": "rows whose user bought the same item before; dropped "
    "because ingest.dedupe_pairs is true",
    "ratings_missing": "empty or non-numeric ratings; the row is kept, rating NaN",
    "ratings_out_of_range_cleared": "ratings outside [ingest.rating_min, "
    "ingest.rating_max]; the row is kept, rating set to NaN",
    "timestamps_from_milliseconds": "numeric timestamps read as milliseconds",
    "timestamps_from_microseconds": "numeric timestamps read as microseconds",
    "timestamps_from_nanoseconds": "numeric timestamps read as nanoseconds",
    "timestamps_from_text": "timestamps parsed from date-time text",
    "timestamp_ties": "rows with the same user and timestamp as the row before; "
    "ordered as they appear in the file",
    "history_rows_truncated": "oldest rows of users with more than "
    "ingest.max_history interactions; dropped",
    "test_user_duplicates_dropped": "repeated user ids in the test user list",
    "blank_lines_skipped": "empty lines of a JSON Lines or sequences file",
    "sequence_lines_merged": "sequences-file lines for a user already seen; their "
    "items are appended to that user's history",
    "text_invalid_utf8": "text values or lines with bytes that are not UTF-8; the "
    "bytes are replaced by U+FFFD",
    "text_html_unescaped": "text values with HTML entities such as &amp;; unescaped",
    "prices_unparsed": "non-empty prices that are not a number; set to NaN",
    "metadata_duplicate_rows_dropped": "item-file rows for an item already read; "
    "the first row is kept",
    "metadata_rows_never_bought": "item-file rows for items that nobody bought; "
    "dropped",
    "metadata_rows_unmapped": "item_metadata.csv rows whose parent_asin is not in "
    "id_mappings.json; dropped",
}


class Fixes:
    """Counts of each repair applied to the input, keyed by FIX_DESCRIPTIONS names."""

    def __init__(self) -> None:
        self._counts = dict.fromkeys(FIX_DESCRIPTIONS, 0)

    def add(self, name: str, count: int = 1) -> None:
        """Add `count` to the fix `name`."""
        if name not in self._counts:
            raise KeyError(f"unknown fix {name!r}; add it to FIX_DESCRIPTIONS")
        self._counts[name] += int(count)

    def log(self) -> None:
        """Log each fix that was applied, with its count and meaning."""
        for name, count in self._counts.items():
            if count:
                logger.info("fix %s: %d (%s)", name, count, FIX_DESCRIPTIONS[name])

    def __getitem__(self, name: str) -> int:
        return self._counts[name]

    def as_dict(self) -> dict[str, int]:
        """Return every fix name with its count, zeros included, for the metrics."""
        return dict(self._counts)


@dataclass(frozen=True)
class RawInput(RawTables):
    """RawTables plus the raw ids and repair counts of a file reader.

    `users` has user_id (int64 encoding) and raw_user_id (str) for every user whose
    raw id is known; `fixes` carries the repairs the reader already made.
    """

    users: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"user_id": [], "raw_user_id": []})
    )
    fixes: Fixes = field(default_factory=Fixes)


class IdEncoder:
    """Incremental encoder of raw string ids to 0, 1, 2... in order of appearance."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._codes)

    def encode(self, values: Iterable[str]) -> np.ndarray:
        """Return the int64 code of each value, giving new values the next codes."""
        local, uniques = pd.factorize(pd.Series(values, dtype=object))
        codes = self._codes
        mapped = np.fromiter(
            (codes.setdefault(str(u), len(codes)) for u in uniques),
            dtype=np.int64,
            count=len(uniques),
        )
        return mapped[local]

    def encode_one(self, value: str) -> int:
        """Return the code of one raw id, giving it the next code when new."""
        return self._codes.setdefault(value, len(self._codes))

    def raw_ids(self) -> list[str]:
        """Raw ids in code order: raw_ids()[code] is the id that got `code`."""
        return list(self._codes)

    def mapping(self) -> dict[str, int]:
        """Return a copy of the raw id -> code dictionary."""
        return dict(self._codes)


def open_text(path: Path) -> IO[bytes]:
    """Open a file for binary reading, decompressing it when it ends in .gz."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def require_file(path: Path, expected: str) -> Path:
    """Return `path` when it is a non-empty file, else raise InputError.

    `expected` describes the content, for the message: "a header row".
    """
    if not path.is_file():
        raise InputError(f"{path} does not exist: expected a file with {expected}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty: expected {expected}")
    return path


def find_one(folder: Path, patterns: list[str], kind: str) -> Path | None:
    """Find the single file in `folder` matching any pattern; None when none does."""
    found = sorted({p for pattern in patterns for p in folder.glob(pattern)})
    found = [p for p in found if p.is_file()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InputError(
            f"{folder} contains several {kind} files ({names}); set ingest.path to the "
            "one to read"
        )
    return found[0] if found else None


def csv_columns(path: Path, delimiter: str = ",", quote: bool = True) -> list[str]:
    """Read the column names from the header of a CSV file (plain or .gz)."""
    require_file(path, "a header row and data rows")
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 16),
            parse_options=_parse_options(delimiter, quote),
            convert_options=pacsv.ConvertOptions(column_types={}),
        )
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{path} could not be read as CSV: {err}") from err
    names = reader.schema.names
    reader.close()
    return names


def iter_csv(
    path: Path,
    columns: dict[str, pa.DataType],
    delimiter: str = ",",
    quote: bool = True,
    newlines_in_values: bool = False,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Stream the given columns of a CSV file as DataFrames of one block each.

    Args:
        path: the file; `.gz` files are decompressed on the fly.
        columns: name -> Arrow type of each column to keep; other columns are
            skipped without conversion. Read text as pa.binary() to accept
            invalid UTF-8, which `decode_text` then repairs.
        delimiter: field separator.
        quote: whether double quotes enclose fields (RecBole files use none).
        newlines_in_values: allow line breaks inside quoted fields (slower).

    Yields:
        (first data row number, 1-based, of the block; the block as a DataFrame).
    """
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    parse = _parse_options(delimiter, quote, newlines_in_values)
    convert = pacsv.ConvertOptions(
        include_columns=list(columns),
        column_types=columns,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    row = 1
    try:
        reader = pacsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=convert
        )
        for batch in reader:
            frame = batch.to_pandas()
            yield row, frame
            row += len(frame)
    except pa.ArrowInvalid as err:
        raise InputError(
            f"{path}: could not parse the block starting at data row {row}: {err}. "
            "Fix or remove the malformed line"
        ) from err


def _parse_options(
    delimiter: str, quote: bool, newlines_in_values: bool = False
) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char='"' if quote else False,
        newlines_in_values=newlines_in_values,
    )


def check_columns(path: Path, found: list[str], required: Iterable[str]) -> None:
    """Raise InputError naming the file when a required column is missing."""
    missing = [c for c in required if c not in found]
    if missing:
        raise InputError(
            f"{path} lacks column(s) {missing}; found {found}. Rename the columns or "
            "pick the ingest.format that matches the file"
        )


def require_rows(path: Path, n_rows: int) -> None:
    """Raise InputError when a file had a header but no data rows."""
    if n_rows == 0:
        raise InputError(f"{path} has no data rows: expected at least one")


def decode_text(value: object, fixes: Fixes) -> str:
    """Turn a raw text value into clean str: UTF-8, HTML-unescaped, trimmed.

    Invalid UTF-8 bytes become U+FFFD and entities such as `&amp;` are unescaped;
    each is counted once per value. None and NaN become "".
    """
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("utf-8", errors="replace")
            fixes.add("text_invalid_utf8")
    elif isinstance(value, float) and np.isnan(value):
        return ""
    else:
        text = str(value)
    if "&" in text:
        unescaped = html.unescape(text)
        if unescaped != text:
            fixes.add("text_html_unescaped")
            text = unescaped
    return _SPACES.sub(" ", text).strip()


_SPACES = re.compile(r"\s+")


def decode_line(line: bytes, fixes: Fixes) -> str:
    """Decode one line of a text file, replacing invalid UTF-8 and counting it."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        fixes.add("text_invalid_utf8")
        return line.decode("utf-8", errors="replace")


def parse_json_line(text: str, path: Path, number: int) -> dict:
    """Parse one line of a JSON Lines file into a dict, naming the line on error."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"{path}: line {number} is not valid JSON ({err.msg} at column "
            f"{err.colno}); fix or remove that line"
        ) from err
    if not isinstance(record, dict):
        raise InputError(f"{path}: line {number} is not a JSON object")
    return record


def parse_price(value: object, fixes: Fixes) -> float:
    """Read "$12.99", "12.99" or 12.99 as a float; NaN for empty or unparseable."""
    if value is None:
        return float("nan")
    if isinstance(value, int | float):
        return float(value)
    text = decode_text(value, fixes).replace("$", "").replace(",", "")
    if text in ("", "None", "none", "null", "NaN", "nan", "-"):
        return float("nan")
    try:
        return float(text)
    except ValueError:
        fixes.add("prices_unparsed")
        return float("nan")


def users_frame(encoder: IdEncoder) -> pd.DataFrame:
    """Return user_id and raw_user_id of every user an encoder has seen."""
    raw = encoder.raw_ids()
    return pd.DataFrame(
        {"user_id": np.arange(len(raw), dtype=np.int64), "raw_user_id": raw}
    )


# Upper bounds of the absolute value of a numeric timestamp in each unit. Seconds
# stop at 1e11 (the year 5138); 1e11 milliseconds is only March 1973, so a value
# above it is read as milliseconds, and so on.
_UNIT_BOUNDS = (
    (1e11, "s", None),
    (1e14, "ms", "timestamps_from_milliseconds"),
    (1e17, "us", "timestamps_from_microseconds"),
    (np.inf, "ns", "timestamps_from_nanoseconds"),
)
_TO_MS = {"s": 1e3, "ms": 1.0, "us": 1e-3, "ns": 1e-6}


def parse_timestamps(
    values: pd.Series, fixes: Fixes, where: str, rows: np.ndarray | int = 1
) -> pd.Series:
    """Convert timestamps to datetime64[ms, UTC], whatever their unit or form.

    Numbers are read per value as seconds, milliseconds, microseconds or
    nanoseconds since 1970 by their magnitude, so one file may mix units. Other
    text is parsed as a date-time (ISO 8601 or any form pandas reads). Values that
    are already datetimes pass through.

    Args:
        values: one timestamp per row.
        fixes: receives the count of each conversion.
        where: the file and column, for error messages.
        rows: data row number of each value, or of the first value, for error
            messages.

    Returns:
        The timestamps as datetime64[ms, UTC], with the index of `values`.

    Raises:
        InputError: naming the first row whose timestamp is missing or unreadable.
    """
    if _is_datetime(values):
        if values.isna().any():
            _bad_timestamp(values, values.isna().to_numpy(), where, rows)
        stamps = values if values.dt.tz is not None else values.dt.tz_localize("UTC")
        return stamps.astype("datetime64[ms, UTC]")

    numbers = pd.to_numeric(values, errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    millis = _numbers_to_millis(numbers, fixes)
    is_text = np.isnan(numbers) & _present(values)
    if is_text.any():
        parsed = _parse_datetime_text(values[is_text].astype(str))
        unreadable = parsed.isna().to_numpy()
        if unreadable.any():
            bad = np.zeros(len(values), dtype=bool)
            bad[np.flatnonzero(is_text)[unreadable]] = True
            _bad_timestamp(values, bad, where, rows)
        millis[is_text] = parsed.to_numpy(dtype="datetime64[ms]").astype(np.int64)
        fixes.add("timestamps_from_text", int(is_text.sum()))

    missing = np.isnan(millis)
    if missing.any():
        _bad_timestamp(values, missing, where, rows)
    stamps = pd.to_datetime(np.round(millis).astype(np.int64), unit="ms", utc=True)
    return pd.Series(stamps, index=values.index).astype("datetime64[ms, UTC]")


def _is_datetime(values: pd.Series) -> bool:
    dtype = values.dtype
    return isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(
        dtype
    )


def _numbers_to_millis(numbers: np.ndarray, fixes: Fixes) -> np.ndarray:
    """Convert numeric timestamps to milliseconds, the unit chosen by magnitude."""
    millis = np.full(len(numbers), np.nan)
    magnitude = np.abs(numbers)
    lower = 0.0
    for upper, unit, fix in _UNIT_BOUNDS:
        in_unit = (magnitude >= lower) & (magnitude < upper)
        millis[in_unit] = numbers[in_unit] * _TO_MS[unit]
        if fix:
            fixes.add(fix, int(in_unit.sum()))
        lower = upper
    return millis


def _present(values: pd.Series) -> np.ndarray:
    """Return True where a value is neither missing nor blank text."""
    present = values.notna().to_numpy(copy=True)
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        blank = values.astype(str).str.strip().eq("").to_numpy()
        present &= ~blank
    return present


def _parse_datetime_text(text: pd.Series) -> pd.Series:
    try:
        return pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return pd.to_datetime(text, utc=True, format="mixed", errors="coerce")


def _bad_timestamp(
    values: pd.Series, bad: np.ndarray, where: str, rows: np.ndarray | int
) -> None:
    position = int(np.flatnonzero(bad)[0])
    raise InputError(
        f"{where}: timestamp {str(values.iloc[position])!r} at data row "
        f"{row_number(rows, position)} is missing or not a date-time. Fill it in, or "
        "drop the timestamp column to keep the file order"
    )


def row_number(rows: np.ndarray | int, position: int) -> int:
    """Return the data row number of the value at `position` of a block."""
    if isinstance(rows, np.ndarray):
        return int(rows[position])
    return int(rows) + position


def encode_ids(
    encoder: IdEncoder, values: pd.Series, where: str, rows: np.ndarray | int
) -> np.ndarray:
    """Encode raw id tokens, raising InputError at the first missing or blank one."""
    present = _present(values)
    if not present.all():
        position = int(np.flatnonzero(~present)[0])
        raise InputError(
            f"{where}: id at data row {row_number(rows, position)} is missing; every "
            "row needs a user id and an item id"
        )
    return encoder.encode(values.astype(str).str.strip())


def parse_ratings(values: pd.Series) -> pd.Series:
    """Parse ratings as float64; empty or non-numeric text becomes NaN."""
    return pd.to_numeric(values, errors="coerce").astype(np.float64)


def encoded_input(
    train: list[pd.DataFrame],
    users: IdEncoder,
    items: IdEncoder,
    metadata: pd.DataFrame,
    fixes: Fixes,
) -> RawInput:
    """Assemble the RawInput of a reader whose raw ids are strings.

    Every user of the file is a test user, so each gets a submission row; the
    catalog is every bought item.
    """
    frame = pd.concat(train, ignore_index=True) if train else pd.DataFrame()
    user_table = users_frame(users)
    return RawInput(
        train=frame,
        test=user_table[["user_id"]].copy(),
        item_metadata=metadata,
        item_mapping=items.mapping(),
        users=user_table,
        fixes=fixes,
    )


def numeric_ids(values: pd.Series, where: str, rows: np.ndarray | int = 1) -> pd.Series:
    """Convert integer ids to int64, raising InputError at the first invalid one.

    Args:
        values: ids as numbers or text.
        where: the file and column, for error messages.
        rows: data row number of each value, or of the first value.

    Raises:
        InputError: naming the row and value of the first missing, non-numeric,
            fractional or negative id.
    """
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() | (numbers < 0) | (numbers != numbers.round())).to_numpy()
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{where}: value {str(values.iloc[position])!r} at data row "
            f"{row_number(rows, position)} is not a non-negative integer id. This "
            "format needs encoded integer ids; use ingest.format=amazon2023, recbole "
            "or sequences for raw string ids"
        )
    return numbers.astype(np.int64)
