import pytest

from nanorec.params import ParamError, TrainParams, from_dict, load_section


def test_defaults_in_params_yaml_are_valid():
    from pathlib import Path

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
