"""Check a submission CSV against the ingested data before it is sent anywhere.

A valid submission has the header `user_id,predictions` and one row per test
user, each user once, whose predictions are exactly k distinct item ids of the
catalog, separated by spaces, best first. The ids are either the encoded integer
ids (the default) or the input's raw ids (users.parquet raw_user_id and
items.parquet raw_item_id), as `stages/predict.py --raw-ids` writes them.
`nanorec validate-submission` runs the check and names the first bad line.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from nanorec import data
from nanorec.errors import NanorecError
from nanorec.io import read_parquet

logger = logging.getLogger(__name__)

HEADER = ["user_id", "predictions"]


class SubmissionError(NanorecError, ValueError):
    """A submission breaks the format; `line` is its 1-based line, 0 for none."""

    def __init__(self, line: int, message: str) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(f"{where}{message}")
        self.line = line


@dataclass(frozen=True)
class Reference:
    """The test users and catalog item ids that a submission is checked against.

    Both are text in the form the submission must use, and `test_users` keeps
    the ingest order so that a missing user can be named.

    Attributes:
        raw_ids: whether the ids are the input's raw ids, not the encoded ones.
        other_item_ids: the catalog's item ids in the other form (encoded ids
            when raw_ids is true, raw ids otherwise). An unknown id found here
            gets a hint about --raw-ids.
    """

    test_users: list[str]
    item_ids: frozenset[str]
    raw_ids: bool = False
    other_item_ids: frozenset[str] = frozenset()


def load_reference(folder: Path, raw_ids: bool = False) -> Reference:
    """Read the test users and catalog from the ingest output folder.

    Args:
        folder: the ingest stage's output (data/ingest).
        raw_ids: expect the input's raw ids rather than the encoded integers.

    Returns:
        The Reference.

    Raises:
        FileNotFoundError: when a table is missing (run the ingest stage).
        InputError: when a table is not valid Parquet.
    """
    folder = Path(folder)
    names = [data.TEST_USERS, data.ITEMS] + ([data.USERS] if raw_ids else [])
    for name in names:
        if not (folder / name).exists():
            raise FileNotFoundError(
                f"{folder / name} does not exist: run the ingest stage first "
                "(dvc repro ingest) or pass --data with its output folder"
            )
    advice = "Rerun the ingest stage (dvc repro ingest) to rewrite it."
    test = read_parquet(folder / data.TEST_USERS, advice)["user_id"]
    items = read_parquet(folder / data.ITEMS, advice)
    encoded_items = frozenset(str(i) for i in items["item_id"])
    raw_items = frozenset(str(i) for i in items.get("raw_item_id", []))
    if not raw_ids:
        return Reference([str(u) for u in test], encoded_items, False, raw_items)
    users = read_parquet(folder / data.USERS, advice)
    raw_of = dict(zip(users["user_id"], users["raw_user_id"]))
    return Reference(
        [str(raw_of.get(u, u)) for u in test], raw_items, True, encoded_items
    )


def validate_submission(path: Path, reference: Reference, k: int) -> int:
    """Check a submission file row by row.

    Args:
        path: the submission CSV.
        reference: the test users and item ids it must use.
        k: item ids each row must have.

    Returns:
        The number of rows, when the file is valid.

    Raises:
        SubmissionError: at the first problem, naming its line and what is wrong.
    """
    expected = set(reference.test_users)
    first_line: dict[str, int] = {}
    try:
        with Path(path).open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise SubmissionError(
                    0, f"{path} is empty; expected the header {HEADER}"
                )
            if [h.strip().lstrip("\ufeff") for h in header] != HEADER:
                raise SubmissionError(1, f"header is {header}, expected {HEADER}")
            # Blank lines are accepted only at the end of the file, where an extra
            # newline is common and harmless.
            blank_line = 0
            for row in reader:
                if len(row) <= 1 and not "".join(row).strip():
                    blank_line = blank_line or reader.line_num
                    continue
                if blank_line:
                    raise SubmissionError(
                        blank_line,
                        f"blank line before the row at line {reader.line_num}: "
                        "remove it (blank lines are accepted only at the end)",
                    )
                user = _check_row(
                    row, reader.line_num, expected, first_line, reference.raw_ids
                )
                _check_items(row[1], reader.line_num, user, reference, k)
                first_line[user] = reader.line_num
    except UnicodeDecodeError as err:
        raise SubmissionError(0, f"{path} is not UTF-8 text ({err})") from err

    missing = [u for u in reference.test_users if u not in first_line]
    if missing:
        raise SubmissionError(
            0,
            f"{len(missing)} test user(s) have no row, the first is user_id "
            f"{missing[0]!r}; every test user needs exactly one row",
        )
    return len(first_line)


def _check_row(
    row: list[str],
    line: int,
    expected: set[str],
    first_line: dict[str, int],
    raw_ids: bool,
) -> str:
    """Check the shape and user of one row; return its user id."""
    if len(row) != 2:
        raise SubmissionError(
            line, f"has {len(row)} field(s), expected 2 (user_id,predictions)"
        )
    user = row[0].strip()
    if user not in expected:
        raise SubmissionError(
            line,
            f"user_id {user!r} is not a test user"
            + _id_form_hint(user, raw_ids, frozenset()),
        )
    if user in first_line:
        raise SubmissionError(
            line,
            f"user_id {user!r} appears again (first at line {first_line[user]}); "
            "each test user needs exactly one row",
        )
    return user


def _check_items(
    predictions: str, line: int, user: str, reference: Reference, k: int
) -> None:
    """Check that a predictions field has k distinct known item ids."""
    ids = predictions.split()
    if len(ids) != k:
        raise SubmissionError(
            line, f"user_id {user!r} has {len(ids)} item id(s), expected {k}"
        )
    seen: set[str] = set()
    for item in ids:
        if item not in reference.item_ids:
            raise SubmissionError(
                line,
                f"user_id {user!r}: unknown item id {item!r}, not in the catalog"
                + _id_form_hint(item, reference.raw_ids, reference.other_item_ids),
            )
        if item in seen:
            raise SubmissionError(
                line, f"user_id {user!r}: item id {item!r} appears twice"
            )
        seen.add(item)


def _id_form_hint(value: str, raw_ids: bool, other_ids: frozenset[str]) -> str:
    """Return a hint about --raw-ids for an unknown id that looks like the other form.

    Encoded ids are non-negative integers, so any other id suggests raw ids. An
    id found in `other_ids`, the catalog's ids in the other form, suggests it too.
    """
    if raw_ids:
        if value in other_ids:
            return (
                f". {value!r} is an encoded id: drop --raw-ids if the file uses "
                "the encoded integer ids"
            )
        return ""
    if not value.isdigit() or value in other_ids:
        return ". Pass --raw-ids if the file uses the input's raw ids"
    return ""


def main(
    submission: Annotated[
        Path, typer.Argument(help="submission CSV to check", dir_okay=False)
    ],
    data_dir: Annotated[
        Path, typer.Option("--data", help="ingest output folder", file_okay=False)
    ] = Path("data/ingest"),
    k: Annotated[int, typer.Option(help="item ids each row must have", min=1)] = 10,
    raw_ids: Annotated[
        bool,
        typer.Option(
            "--raw-ids",
            help="expect the input's raw user and item ids, as written by "
            "stages/predict.py --raw-ids",
        ),
    ] = False,
) -> None:
    """Check a submission: header, each test user once, k distinct known items.

    Exits with status 1 and names the first bad line when the file is invalid.
    """
    if not submission.is_file():
        typer.echo(f"Error: {submission} does not exist", err=True)
        raise typer.Exit(1)
    try:
        reference = load_reference(data_dir, raw_ids)
        n_rows = validate_submission(submission, reference, k)
    except FileNotFoundError as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(1) from err
    except SubmissionError as err:
        typer.echo(f"Invalid submission {submission}: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(f"{submission}: valid, {n_rows} rows of {k} item ids")
