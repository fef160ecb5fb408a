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

import pandas as pd
import typer

from nanorec import data
from nanorec.errors import NanorecError

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
    """

    test_users: list[str]
    item_ids: frozenset[str]


def load_reference(folder: Path, raw_ids: bool = False) -> Reference:
    """Read the test users and catalog from the ingest output folder.

    Args:
        folder: the ingest stage's output (data/ingest).
        raw_ids: expect the input's raw ids rather than the encoded integers.

    Returns:
        The Reference.

    Raises:
        FileNotFoundError: when a table is missing (run the ingest stage).
    """
    folder = Path(folder)
    names = [data.TEST_USERS, data.ITEMS] + ([data.USERS] if raw_ids else [])
    for name in names:
        if not (folder / name).exists():
            raise FileNotFoundError(
                f"{folder / name} does not exist: run the ingest stage first "
                "(dvc repro ingest) or pass --data with its output folder"
            )
    test = pd.read_parquet(folder / data.TEST_USERS)["user_id"]
    items = pd.read_parquet(folder / data.ITEMS)
    if not raw_ids:
        return Reference(
            [str(u) for u in test], frozenset(str(i) for i in items["item_id"])
        )
    users = pd.read_parquet(folder / data.USERS)
    raw_of = dict(zip(users["user_id"], users["raw_user_id"]))
    return Reference(
        [str(raw_of.get(u, u)) for u in test],
        frozenset(str(i) for i in items["raw_item_id"]),
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
            for row in reader:
                user = _check_row(row, reader.line_num, expected, first_line)
                _check_items(row[1], reader.line_num, user, reference.item_ids, k)
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
    row: list[str], line: int, expected: set[str], first_line: dict[str, int]
) -> str:
    """Check the shape and user of one row; return its user id."""
    if len(row) != 2:
        raise SubmissionError(
            line, f"has {len(row)} field(s), expected 2 (user_id,predictions)"
        )
    user = row[0].strip()
    if user not in expected:
        raise SubmissionError(line, f"user_id {user!r} is not a test user")
    if user in first_line:
        raise SubmissionError(
            line,
            f"user_id {user!r} appears again (first at line {first_line[user]}); "
            "each test user needs exactly one row",
        )
    return user


def _check_items(
    predictions: str, line: int, user: str, known: frozenset[str], k: int
) -> None:
    """Check that a predictions field has k distinct known item ids."""
    ids = predictions.split()
    if len(ids) != k:
        raise SubmissionError(
            line, f"user_id {user!r} has {len(ids)} item id(s), expected {k}"
        )
    seen: set[str] = set()
    for item in ids:
        if item not in known:
            raise SubmissionError(
                line, f"user_id {user!r}: unknown item id {item!r}, not in the catalog"
            )
        if item in seen:
            raise SubmissionError(
                line, f"user_id {user!r}: item id {item!r} appears twice"
            )
        seen.add(item)


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
