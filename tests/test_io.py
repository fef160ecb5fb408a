"""Readers and atomic writers of nanorec.io: errors name the file and the fix."""

import re

import pytest

from nanorec.errors import InputError, OutputError
from nanorec.io import read_json, read_parquet, read_parquet_table, write_json


def test_output_under_a_plain_file_names_it(tmp_path):
    plain = tmp_path / "report"
    plain.write_text("not a folder")
    with pytest.raises(OutputError) as caught:
        write_json({"a": 1}, plain / "deeper" / "summary.json")
    message = str(caught.value)
    assert f"{plain} is a file, not a folder" in message
    assert "Free disk space" not in message
    assert plain.read_text() == "not a folder"


def test_output_directly_in_a_plain_file_names_it(tmp_path):
    plain = tmp_path / "report"
    plain.write_text("not a folder")
    with pytest.raises(
        OutputError, match=re.escape(f"{plain} is a file, not a folder")
    ):
        write_json({"a": 1}, plain / "summary.json")


def test_output_onto_a_folder_says_so(tmp_path):
    folder = tmp_path / "summary.json"
    folder.mkdir()
    with pytest.raises(OutputError) as caught:
        write_json({"a": 1}, folder)
    message = str(caught.value)
    assert "it is a folder, not a file" in message
    assert "Free disk space" not in message
    assert list(tmp_path.iterdir()) == [folder]


def test_corrupt_parquet_names_file_and_advice(tmp_path):
    path = tmp_path / "items.parquet"
    path.write_bytes(b"junk!")
    for reader in (read_parquet, read_parquet_table):
        with pytest.raises(InputError) as caught:
            reader(path, "Rerun the ingest stage.")
        message = str(caught.value)
        assert message.startswith(f"{path} is not a valid Parquet file")
        assert message.endswith("Rerun the ingest stage.")


def test_truncated_json_is_input_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model": ')
    with pytest.raises(InputError, match=re.escape(f"{path} is not valid JSON")):
        read_json(path)
