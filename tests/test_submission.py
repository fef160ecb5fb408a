"""`nanorec validate-submission`: good files pass, bad ones name their line."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from nanorec.cli import app
from nanorec.ingest import normalise, read_input, write_dataset
from nanorec.submission import (
    Reference,
    SubmissionError,
    load_reference,
    validate_submission,
)

runner = CliRunner()
REFERENCE = Reference(["0", "1", "2"], frozenset(str(i) for i in range(10, 20)))
GOOD = ["user_id,predictions", "0,10 11 12", "1,13 14 15", "2,16 17 18"]


def write(tmp_path, lines):
    path = tmp_path / "submission.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_valid_submission_passes(tmp_path):
    assert validate_submission(write(tmp_path, GOOD), REFERENCE, k=3) == 3


def test_rows_in_any_order_pass(tmp_path):
    lines = [GOOD[0], GOOD[3], GOOD[1], GOOD[2]]
    assert validate_submission(write(tmp_path, lines), REFERENCE, k=3) == 3


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["user,predictions", *GOOD[1:]], r"line 1: header is \['user'"),
        ([GOOD[0], "0,10 11", *GOOD[2:]], r"line 2: user_id '0' has 2 item id\(s\)"),
        (
            [GOOD[0], GOOD[1], "1,13 14 15 16", GOOD[3]],
            r"line 3: user_id '1' has 4 item id\(s\), expected 3",
        ),
        (
            [*GOOD[:3], "2,16 17 99"],
            r"line 4: user_id '2': unknown item id '99'",
        ),
        ([*GOOD[:3], "2,16 17 16"], r"line 4: user_id '2': item id '16' appears"),
        ([*GOOD[:3], "7,16 17 18"], r"line 4: user_id '7' is not a test user"),
        (
            [*GOOD, "1,13 14 15"],
            r"line 5: user_id '1' appears again \(first at line 3\)",
        ),
        (GOOD[:3], r"1 test user\(s\) have no row, the first is user_id '2'"),
        ([GOOD[0], "0,10 11 12,extra", *GOOD[2:]], r"line 2: has 3 field\(s\)"),
        ([GOOD[0], "0,a b c", *GOOD[2:]], r"line 2: user_id '0': unknown item id 'a'"),
    ],
)
def test_bad_submission_names_line(tmp_path, lines, message):
    with pytest.raises(SubmissionError, match=message):
        validate_submission(write(tmp_path, lines), REFERENCE, k=3)


def test_trailing_blank_lines_pass(tmp_path):
    path = write(tmp_path, [*GOOD, "", "  "])
    assert validate_submission(path, REFERENCE, k=3) == 3


def test_blank_line_between_rows_is_rejected(tmp_path):
    path = write(tmp_path, [GOOD[0], GOOD[1], "", GOOD[2], GOOD[3]])
    with pytest.raises(SubmissionError) as caught:
        validate_submission(path, REFERENCE, k=3)
    assert caught.value.line == 3
    assert "blank line before the row at line 4" in str(caught.value)


def test_non_numeric_item_id_hints_raw_ids(tmp_path):
    path = write(tmp_path, [GOOD[0], "0,S0001 11 12", *GOOD[2:]])
    with pytest.raises(SubmissionError) as caught:
        validate_submission(path, REFERENCE, k=3)
    message = str(caught.value)
    assert "line 2: user_id '0': unknown item id 'S0001'" in message
    assert "Pass --raw-ids if the file uses the input's raw ids" in message


def test_numeric_raw_item_id_hints_raw_ids(tmp_path):
    reference = Reference(
        REFERENCE.test_users, REFERENCE.item_ids, False, frozenset({"77"})
    )
    path = write(tmp_path, [GOOD[0], "0,77 11 12", *GOOD[2:]])
    with pytest.raises(SubmissionError, match="Pass --raw-ids"):
        validate_submission(path, reference, k=3)


def test_unknown_numeric_item_id_has_no_hint(tmp_path):
    path = write(tmp_path, [GOOD[0], "0,99 11 12", *GOOD[2:]])
    with pytest.raises(SubmissionError) as caught:
        validate_submission(path, REFERENCE, k=3)
    assert "--raw-ids" not in str(caught.value)


def test_encoded_id_hints_drop_raw_ids(tmp_path):
    reference = Reference(["alice"], frozenset("abc"), True, frozenset({"0", "1"}))
    path = write(tmp_path, ["user_id,predictions", "alice,0 b"])
    with pytest.raises(SubmissionError, match="drop --raw-ids"):
        validate_submission(path, reference, k=2)


def test_empty_submission(tmp_path):
    path = tmp_path / "submission.csv"
    path.write_text("")
    with pytest.raises(SubmissionError, match="is empty"):
        validate_submission(path, REFERENCE, k=3)


@pytest.fixture
def ingested(tmp_path):
    (tmp_path / "seq.txt").write_text("alice a b c\nbob b c d\ncarol e\n")
    write_dataset(normalise(read_input("sequences", tmp_path)), tmp_path / "ingest")
    return tmp_path / "ingest"


def test_reference_from_ingest_output(ingested):
    encoded = load_reference(ingested)
    assert encoded.test_users == ["0", "1", "2"]
    assert encoded.item_ids == frozenset({"0", "1", "2", "3", "4"})
    raw = load_reference(ingested, raw_ids=True)
    assert raw.test_users == ["alice", "bob", "carol"]
    assert raw.item_ids == frozenset("abcde")


def test_command_accepts_valid_file(ingested, tmp_path):
    path = write(tmp_path, ["user_id,predictions", "alice,d e", "bob,a e", "carol,a b"])
    args = ["validate-submission", str(path), "--data", str(ingested), "--k", "2"]
    result = runner.invoke(app, [*args, "--raw-ids"])
    assert result.exit_code == 0, result.output
    assert "valid, 3 rows of 2 item ids" in result.output


def test_command_rejects_and_names_row(ingested, tmp_path):
    frame = pd.DataFrame({"user_id": [0, 1, 2], "predictions": ["3 4", "0 9", "0 1"]})
    frame.to_csv(tmp_path / "submission.csv", index=False)
    args = ["validate-submission", str(tmp_path / "submission.csv"), "--k", "2"]
    result = runner.invoke(app, [*args, "--data", str(ingested)])
    assert result.exit_code == 1
    assert "line 3: user_id '1': unknown item id '9'" in result.output


def test_command_without_ingest_output(tmp_path):
    path = write(tmp_path, GOOD)
    args = ["validate-submission", str(path), "--data", str(tmp_path / "none")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "run the ingest stage first" in result.output


def test_command_hints_raw_ids_for_raw_users(ingested, tmp_path):
    path = write(tmp_path, ["user_id,predictions", "alice,d e", "bob,a e", "carol,a b"])
    args = ["validate-submission", str(path), "--data", str(ingested), "--k", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "line 2: user_id 'alice' is not a test user" in result.output
    assert "Pass --raw-ids if the file uses the input's raw ids" in result.output


def test_command_hints_raw_ids_for_raw_items(ingested, tmp_path):
    path = write(tmp_path, ["user_id,predictions", "0,d e", "1,a e", "2,a b"])
    args = ["validate-submission", str(path), "--data", str(ingested), "--k", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "line 2: user_id '0': unknown item id 'd'" in result.output
    assert "Pass --raw-ids if the file uses the input's raw ids" in result.output


def test_command_corrupt_items_table_one_line(ingested, tmp_path):
    (ingested / "items.parquet").write_bytes(b"junk!")
    path = write(tmp_path, GOOD)
    args = ["validate-submission", str(path), "--data", str(ingested), "--k", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert f"{ingested / 'items.parquet'} is not a valid Parquet file" in result.stderr
    assert "dvc repro ingest" in result.stderr
