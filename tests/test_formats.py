"""Round trips: a small shop written in each input format reads back unchanged."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from conftest import data_root

from nanorec import data
from nanorec.ingest import normalise, read_input, write_dataset
from nanorec.submission import load_reference, validate_submission

# The shop every format writes: per raw user, (raw item, rating, ms timestamp)
# oldest first.
HISTORIES = {
    "AGKHLEW2SOWHNMFQIJGBECAF7INQ": [
        ("B07J3GH1W1", 5.0, 1547589356557),
        ("B07W397QG4", 4.0, 1593352422858),
        ("B08JTNQFZY", 3.0, 1617904219785),
    ],
    "AFSKPY37N3C43SOI5IEXEK5JSIYA": [
        ("B07W397QG4", 2.0, 1500000000000),
        ("B0BTLTVR1X", 5.0, 1600000000000),
    ],
    "AHV6QCNBJNSGLATP56JAWJ3C4G2A": [("B08JTNQFZY", 1.0, 1650000000000)],
}
TITLES = {
    "B07J3GH1W1": "Rose Water Toner",
    "B07W397QG4": "Matte Lipstick",
    "B08JTNQFZY": "Hair Oil",
    "B0BTLTVR1X": "Nail File",
}


def review_rows() -> list[dict]:
    """The shop as review rows, shuffled so that file order differs from time."""
    rows = [
        {"user_id": user, "parent_asin": item, "rating": rating, "timestamp": ms}
        for user, history in HISTORIES.items()
        for item, rating, ms in history
    ]
    order = np.random.default_rng(0).permutation(len(rows))
    return [rows[i] for i in order]


def read_back(dataset) -> dict[str, list[str]]:
    """Per raw user id, the raw item ids of their history in position order."""
    raw_user = dict(zip(dataset.users["user_id"], dataset.users["raw_user_id"]))
    raw_item = dict(zip(dataset.items["item_id"], dataset.items["raw_item_id"]))
    frame = dataset.interactions.sort_values(["user_id", "position"])
    return {
        raw_user[user]: [raw_item[i] for i in group["item_id"]]
        for user, group in frame.groupby("user_id")
    }


def expected_histories() -> dict[str, list[str]]:
    return {u: [item for item, _, _ in h] for u, h in HISTORIES.items()}


def check_round_trip(dataset, with_time: bool = True) -> None:
    assert read_back(dataset) == expected_histories()
    assert dataset.stats["n_interactions"] == 6
    assert dataset.stats["n_items"] == 4
    titles = dict(zip(dataset.items["raw_item_id"], dataset.items["title"]))
    assert titles == TITLES
    if with_time:
        raw_user = dict(zip(dataset.users["user_id"], dataset.users["raw_user_id"]))
        frame = dataset.interactions.sort_values(["user_id", "position"])
        for user, group in frame.groupby("user_id"):
            history = HISTORIES[raw_user[user]]
            millis = group["timestamp"].astype("int64").tolist()
            assert millis == [ms for _, _, ms in history]
            assert group["rating"].tolist() == [r for _, r, _ in history]


def write_jsonl(path, rows) -> None:
    text = "".join(json.dumps(row) + "\n" for row in rows)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text)


def meta_rows() -> list[dict]:
    return [
        {
            "parent_asin": asin,
            "title": title,
            "store": "Glowa",
            "categories": ["Beauty", "Skin Care"],
            "features": ["Vegan"],
            "description": ["Gentle."],
            "price": 9.5,
            "images": [{"thumb": "t.jpg", "large": f"{asin}.jpg", "variant": "MAIN"}],
        }
        for asin, title in TITLES.items()
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_amazon2023_jsonl_round_trip(tmp_path, suffix):
    write_jsonl(tmp_path / f"All_Test{suffix}", review_rows())
    write_jsonl(tmp_path / f"meta_All_Test{suffix}", meta_rows())
    dataset = normalise(read_input("amazon2023", tmp_path))
    check_round_trip(dataset)
    items = dataset.items.set_index("raw_item_id")
    assert items.loc["B07J3GH1W1", "image_url"] == "B07J3GH1W1.jpg"
    assert items.loc["B07J3GH1W1", "description"] == "Vegan Gentle."
    assert list(items.loc["B07J3GH1W1", "categories"]) == ["Beauty", "Skin Care"]
    assert dataset.stats["fixes"]["timestamps_from_milliseconds"] == 6


def test_amazon2023_benchmark_csv_round_trip(tmp_path):
    pd.DataFrame(review_rows()).to_csv(tmp_path / "All_Test.csv", index=False)
    write_jsonl(tmp_path / "meta_All_Test.jsonl", meta_rows())
    check_round_trip(normalise(read_input("amazon2023", tmp_path / "All_Test.csv")))


def test_recbole_round_trip(tmp_path):
    rows = review_rows()
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    # RecBole files usually carry timestamps in seconds, as floats.
    lines += [
        f"{r['user_id']}\t{r['parent_asin']}\t{r['rating']}\t{r['timestamp'] / 1000}"
        for r in rows
    ]
    (tmp_path / "toy.inter").write_text("\n".join(lines) + "\n")
    item_lines = ["item_id:token\ttitle:token_seq\tcategories:token_seq\tprice:float"]
    item_lines += [f"{a}\t{t}\tBeauty Skincare\t9.5" for a, t in TITLES.items()]
    (tmp_path / "toy.item").write_text("\n".join(item_lines) + "\n")
    dataset = normalise(read_input("recbole", tmp_path))
    check_round_trip(dataset)
    first = dataset.items.set_index("raw_item_id").loc["B07J3GH1W1"]
    assert list(first["categories"]) == ["Beauty", "Skincare"]
    assert first["price"] == 9.5


def test_sequences_round_trip(tmp_path):
    lines = [" ".join([u] + items) for u, items in expected_histories().items()]
    (tmp_path / "toy.txt").write_text("\n".join(lines) + "\n")
    metadata = pd.DataFrame(
        {"parent_asin": list(TITLES), "title": list(TITLES.values())}
    )
    metadata.to_csv(tmp_path / "item_metadata.csv", index=False)
    dataset = normalise(read_input("sequences", tmp_path / "toy.txt"))
    check_round_trip(dataset, with_time=False)
    assert "timestamp" not in dataset.interactions.columns


def test_challenge_round_trip(tmp_path):
    user_mapping = {u: i for i, u in enumerate(HISTORIES)}
    item_mapping = {a: i for i, a in enumerate(TITLES)}
    rows = pd.DataFrame(review_rows())
    train = pd.DataFrame(
        {
            "user_id": rows["user_id"].map(user_mapping),
            "item_id": rows["parent_asin"].map(item_mapping),
            "rating": rows["rating"],
            "timestamp": rows["timestamp"],
        }
    )
    train.to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"user_id": range(3), "predictions": 0}).to_csv(
        tmp_path / "test.csv", index=False
    )
    pd.DataFrame({"parent_asin": list(TITLES), "title": list(TITLES.values())}).to_csv(
        tmp_path / "item_metadata.csv", index=False
    )
    mappings = {"user_mapping": user_mapping, "item_mapping": item_mapping}
    (tmp_path / "id_mappings.json").write_text(json.dumps(mappings))
    dataset = normalise(read_input("challenge", tmp_path))
    check_round_trip(dataset)
    # The challenge's own encoded ids are kept as they are.
    assert sorted(dataset.items["item_id"]) == [0, 1, 2, 3]


def test_raw_id_submission_round_trip(tmp_path):
    write_jsonl(tmp_path / "All_Test.jsonl", review_rows())
    dataset = normalise(read_input("amazon2023", tmp_path))
    write_dataset(dataset, tmp_path / "ingest")
    items = dataset.items
    n_users = len(dataset.test_users)
    top = np.tile(items["item_idx"].to_numpy()[:2], (n_users, 1))
    users = dataset.test_users["user_id"].to_numpy()
    frame = data.write_submission_frame(users, top, items, dataset.users)
    frame.to_csv(tmp_path / "raw.csv", index=False)
    assert set(frame["user_id"]) == set(HISTORIES)
    reference = load_reference(tmp_path / "ingest", raw_ids=True)
    assert validate_submission(tmp_path / "raw.csv", reference, k=2) == 3

    encoded = data.write_submission_frame(users, top, items)
    encoded.to_csv(tmp_path / "encoded.csv", index=False)
    reference = load_reference(tmp_path / "ingest", raw_ids=False)
    assert validate_submission(tmp_path / "encoded.csv", reference, k=2) == 3


@pytest.mark.skipif(data_root() is None, reason="NANOREC_DATA_DIR not set")
def test_amazon2023_real_sample_reads():
    folder = data_root() / "amazon-all-beauty-2023-5core"
    dataset = normalise(read_input("amazon2023", folder))
    stats = dataset.stats
    assert stats["n_users"] == 253
    assert stats["n_items"] == 356
    assert stats["n_interactions"] == 2535
    assert stats["n_items_without_metadata"] == 0
    assert stats["fixes"]["timestamps_from_milliseconds"] == 2535
    assert stats["fixes"]["metadata_rows_never_bought"] == 112565 - 356
    source = pd.read_csv(folder / "All_Beauty.csv")
    assert set(dataset.users["raw_user_id"]) == set(source["user_id"])
    assert set(dataset.items["parent_asin"]) == set(source["parent_asin"])
