import os
import re
from pathlib import Path

import pytest

from nanorec.params import (
    ParamError,
    TrainParams,
    from_dict,
    load_section,
    load_seed,
    validate_file,
)


def test_defaults_in_params_yaml_are_valid():
    root = Path(__file__).resolve().parents[1]
    for section in ("ingest", "split", "siglip_embed", "pack", "train", "predict"):
        load_section(root / "params.yaml", section)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"n_embd": 64, "n_head": 5}, "not divisible by train.n_head=5"),
        ({"dropout": 1.5}, r"train.dropout=1.5 must be in \[0, 1\)"),
        ({"max_steps": 0}, "train.max_steps=0 must be greater than 0"),
        ({"dtype": "fp8"}, "train.dtype='fp8' is not one of"),
        ({"n_layers": 2}, r"unknown key\(s\) \['n_layers'\]"),
        ({"decay": "yes"}, "train.decay='yes' must be true or false"),
    ],
)
def test_bad_train_params_name_the_key(raw, message):
    with pytest.raises(ParamError, match=message):
        from_dict(TrainParams, raw, "train")


def test_negative_block_size_is_rejected(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("pack:\n  block_size: -4\n")
    with pytest.raises(ParamError, match="pack.block_size=-4 must be greater than 0"):
        load_section(path, "pack")


def test_float_written_as_string_is_read():
    params = from_dict(TrainParams, {"lr": "3e-3"}, "train")
    assert params.lr == 0.003


def test_bad_value_names_params_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("predict:\n  k: ten\n")
    with pytest.raises(ParamError) as caught:
        load_section(path, "predict")
    message = str(caught.value)
    assert f"params file {path}" in message
    assert "predict.k='ten' must be an integer" in message


def test_bad_seed_names_params_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: one\n")
    with pytest.raises(ParamError, match=re.escape(f"params file {path}: seed='one'")):
        load_seed(path)


def test_missing_relative_params_file_says_where(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamError) as caught:
        load_section(Path("params.yaml"), "predict")
    message = str(caught.value)
    assert f"relative to the current folder {os.getcwd()}" in message
    assert "run from the project folder or pass --params PATH" in message


def test_validate_file_rejects_typo_in_any_section(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("ingest:\n  synthetic_users: 50\ntrain:\n  max_stpes: 60\n")
    with pytest.raises(ParamError) as caught:
        validate_file(path)
    message = str(caught.value)
    assert f"params file {path}" in message
    assert "unknown key(s) ['max_stpes'] in params section 'train'" in message


def test_validate_file_accepts_project_params():
    validate_file(Path(__file__).resolve().parents[1] / "params.yaml")
