import json

import numpy as np
import pandas as pd
import pytest

from nanorec.ingest import InputError, normalise, read_challenge
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
