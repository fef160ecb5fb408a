import dataclasses
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml
from conftest import ROOT, data_root, edit_params, run

from nanorec.ingest import InputError, normalise, read_challenge, write_dataset
from nanorec.synthetic import generate


def write_challenge(folder, train: pd.DataFrame, metadata: pd.DataFrame | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    users = sorted(train["user_id"].unique())
    pd.DataFrame({"user_id": users, "predictions": 0}).to_csv(
        folder / "test.csv", index=False
    )
    if metadata is not None:
        metadata.to_csv(folder / "item_metadata.csv", index=False)
        mapping = {asin: i for i, asin in enumerate(metadata["parent_asin"])}
        (folder / "id_mappings.json").write_text(
            json.dumps({"user_mapping": {}, "item_mapping": mapping})
        )


def test_timestamp_order_is_stable_on_ties(tmp_path):
    # Item 9 comes before item 1 in the file at the same second: the tie keeps
    # file order, never item-id order (which would leak the target).
    train = pd.DataFrame(
        {"user_id": [0, 0, 0, 0], "item_id": [5, 9, 1, 2], "timestamp": [30, 10, 10, 5]}
    )
    write_challenge(tmp_path, train)
    data = normalise(read_challenge(tmp_path))
    ordered = data.interactions.sort_values("position")["item_id"].tolist()
    assert ordered == [2, 9, 1, 5]
    assert data.split["item_id"].tolist() == [5]


def test_file_order_without_timestamp(tmp_path):
    train = pd.DataFrame({"user_id": [1, 0, 1, 0], "item_id": [4, 3, 2, 1]})
    write_challenge(tmp_path, train)
    data = normalise(read_challenge(tmp_path))
    user1 = data.interactions[data.interactions.user_id == 1]
    assert user1.sort_values("position")["item_id"].tolist() == [4, 2]


def test_single_interaction_user_has_no_validation_row(tmp_path):
    train = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [1, 2, 3]})
    write_challenge(tmp_path, train)
    data = normalise(read_challenge(tmp_path))
    assert data.split["user_id"].tolist() == [0]
    assert data.stats["n_validation_users"] == 1


def test_metadata_is_unescaped_and_parsed(tmp_path):
    train = pd.DataFrame({"user_id": [0, 0], "item_id": [0, 1]})
    metadata = pd.DataFrame(
        {
            "parent_asin": ["A1", "B2"],
            "title": ["Soap &amp; Water", ""],
            "store": ["Brand", ""],
            "categories": ["'Beauty', \"Men's\"", ""],
            "price": ["3.5", ""],
        }
    )
    write_challenge(tmp_path, train, metadata)
    items = normalise(read_challenge(tmp_path)).items.set_index("parent_asin")
    assert items.loc["A1", "title"] == "Soap & Water"
    assert list(items.loc["A1", "categories"]) == ["Beauty", "Men's"]
    assert items.loc["A1", "price"] == 3.5
    assert items.loc["B2", "title"] == ""
    assert np.isnan(items.loc["B2", "price"])


def test_missing_column_names_the_file(tmp_path):
    tmp_path.joinpath("train.csv").write_text("user,item\n1,2\n")
    tmp_path.joinpath("test.csv").write_text("user_id\n1\n")
    with pytest.raises(InputError, match=r"train.csv lacks column\(s\) \['user_id'"):
        read_challenge(tmp_path)


def test_negative_id_names_the_row(tmp_path):
    train = pd.DataFrame({"user_id": [0, 0, -3], "item_id": [1, 2, 3]})
    write_challenge(tmp_path, train.abs())
    train.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(InputError, match="value .-3. at data row 3"):
        normalise(read_challenge(tmp_path))


def test_synthetic_is_deterministic_and_held_out():
    a = generate(50, 40, seed=3)
    b = generate(50, 40, seed=3)
    pd.testing.assert_frame_equal(a.train, b.train)
    assert a.train.groupby("user_id").size().min() >= 3
    assert set(a.test["user_id"]) == set(range(50))
    data = normalise(a)
    assert data.stats["n_items_without_text"] == 0
    assert "&amp;" not in data.items["title"].iloc[0]


def small_dataset(tmp_path):
    train = pd.DataFrame({"user_id": [0, 0, 1, 1], "item_id": [1, 2, 2, 3]})
    write_challenge(tmp_path / "input", train)
    return normalise(read_challenge(tmp_path / "input"))


def parquet_names(folder):
    return sorted(p.name for p in folder.glob("*.parquet"))


def test_write_dataset_writes_every_table(tmp_path):
    write_dataset(small_dataset(tmp_path), tmp_path / "out")
    assert parquet_names(tmp_path / "out") == [
        "interactions.parquet",
        "items.parquet",
        "split.parquet",
        "test_users.parquet",
        "users.parquet",
    ]
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_failed_write_leaves_no_partial_tables(tmp_path):
    good = small_dataset(tmp_path)
    # users.parquet is written last; a column Arrow cannot convert fails it after
    # the other four tables are already written.
    broken_users = pd.DataFrame({"user_id": [0, 1], "raw_user_id": [1, "b"]})
    broken = dataclasses.replace(good, users=broken_users)
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        write_dataset(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))

    # With an earlier output in place, a failure keeps it whole and unchanged.
    write_dataset(good, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        write_dataset(broken, tmp_path / "out")
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert after == before


def test_interrupted_write_leaves_no_partial_tables(tmp_path):
    def interrupt(folder):
        assert len(parquet_names(folder)) == 5
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dataset(small_dataset(tmp_path), tmp_path / "out", extra=interrupt)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_stale_temporary_folder_is_removed(tmp_path):
    stale = tmp_path / ".out.tmp-killed"
    stale.mkdir()
    (stale / "interactions.parquet").write_bytes(b"half a file")
    write_dataset(small_dataset(tmp_path), tmp_path / "out")
    assert not stale.exists()


def run_ingest_stage(tmp_path, settings, **sections):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 1, "ingest": settings, **sections}))
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "stages/ingest.py"),
            "--params",
            str(params),
            "--out",
            str(tmp_path / "out"),
            "--metrics",
            str(tmp_path / "ingest.json"),
        ],
        capture_output=True,
        text=True,
    )


def test_stage_counts_fixes_in_metrics(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "All_Test.csv").write_text(
        "user_id,parent_asin,rating,timestamp\n"
        "U1,B1,5,1600000000000\nU1,B1,5,1600000000000\nU1,B2,9,1600000001000\n"
    )
    result = run_ingest_stage(tmp_path, {"format": "amazon2023", "path": str(folder)})
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "ingest.json").read_text())
    assert metrics["fixes"]["duplicate_rows_dropped"] == 1
    assert metrics["fixes"]["ratings_out_of_range_cleared"] == 1
    assert metrics["n_interactions"] == 2
    assert len(parquet_names(tmp_path / "out")) == 5


def test_stage_bad_input_writes_nothing(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "train.csv").write_text("user_id,item_id\n0,1\nx,2\n")
    (folder / "test.csv").write_text("user_id\n0\n")
    result = run_ingest_stage(tmp_path, {"format": "challenge", "path": str(folder)})
    assert result.returncode == 2
    assert "value 'x' at data row 2 is not a non-negative integer id" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "ingest.json").exists()


def test_stage_rejects_train_typo_before_work(tmp_path):
    result = run_ingest_stage(
        tmp_path, {"synthetic_users": 50}, train={"max_stpes": 60}
    )
    assert result.returncode == 2
    assert "unknown key(s) ['max_stpes'] in params section 'train'" in result.stderr
    assert str(tmp_path / "params.yaml") in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_stage_names_missing_ingest_path(tmp_path):
    missing = tmp_path / "no-such-input"
    result = run_ingest_stage(tmp_path, {"format": "challenge", "path": str(missing)})
    assert result.returncode == 2
    assert f"ingest.path='{missing}' does not exist" in result.stderr
    assert f"Set ingest.path in {tmp_path / 'params.yaml'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.skipif(data_root() is None, reason="NANOREC_DATA_DIR not set")
def test_dvc_repro_on_amazon_2023_sample(project):
    sample = data_root() / "amazon-all-beauty-2023-5core"
    edit_params(
        project,
        ingest={"format": "amazon2023", "path": str(sample)},
        train={"max_steps": 40, "eval_interval": 20, "eval_users": 0},
    )
    run(["dvc", "repro"], project)
    ingest_metrics = json.loads((project / "metrics/ingest.json").read_text())
    assert ingest_metrics["n_users"] == 253
    assert ingest_metrics["n_items"] == 356
    assert ingest_metrics["fixes"]["timestamps_from_milliseconds"] == 2535
    predict = json.loads((project / "metrics/predict.json").read_text())
    assert 0.0 <= predict["map@10"] <= 1.0

    shown = run(["dvc", "metrics", "show", "--json"], project).stdout
    assert "metadata_rows_never_bought" in shown

    nanorec = [sys.executable, "-m", "nanorec.cli", "validate-submission"]
    checked = run([*nanorec, "data/submission.csv", "--data", "data/ingest"], project)
    assert "valid, 253 rows" in checked.stdout

    # The same predictions with the raw Amazon ids.
    run(
        [
            sys.executable,
            "stages/predict.py",
            "--submission",
            "raw.csv",
            "--metrics",
            "raw.json",
            "--raw-ids",
        ],
        project,
    )
    raw = pd.read_csv(project / "raw.csv")
    source = pd.read_csv(sample / "All_Beauty.csv")
    assert set(raw["user_id"]) == set(source["user_id"])
    assert set(" ".join(raw["predictions"]).split()) <= set(source["parent_asin"])
    run([*nanorec, "raw.csv", "--data", "data/ingest", "--raw-ids"], project)
