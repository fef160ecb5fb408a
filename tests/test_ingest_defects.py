"""Each defect of real input files, fed as a small bad file: a clear error or a
counted fix, never a traceback or a silently wrong table."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from nanorec import data, embed
from nanorec.ingest import InputError, normalise, read_input, write_dataset
from nanorec.models.gpt import GPT, GPTConfig
from nanorec.recommend import TransformerScorer, popularity, recommend

HEADER = "user_id,parent_asin,rating,timestamp\n"


def amazon_csv(tmp_path, body: str, header: str = HEADER):
    """Write an Amazon 2023 benchmark CSV and return its path."""
    path = tmp_path / "All_Test.csv"
    path.write_text(header + body)
    return path


def ingest_csv(tmp_path, body: str, **options):
    return normalise(read_input("amazon2023", amazon_csv(tmp_path, body)), **options)


def history(dataset, raw_user: str) -> list[str]:
    """Raw item ids of one user's history, in position order."""
    users = dataset.users.set_index("raw_user_id")["user_id"]
    raw_item = dict(zip(dataset.items["item_id"], dataset.items["raw_item_id"]))
    rows = dataset.interactions[dataset.interactions["user_id"] == users[raw_user]]
    return [raw_item[i] for i in rows.sort_values("position")["item_id"]]


# Missing files and columns, empty files.


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("challenge", r"train.csv does not exist"),
        ("amazon2023", r"contains no review file"),
        ("recbole", r"contains no .inter file"),
        ("sequences", r"contains no .txt or .txt.gz file"),
    ],
)
def test_missing_input_file_is_named(tmp_path, fmt, message):
    with pytest.raises(InputError, match=message):
        read_input(fmt, tmp_path)


def test_missing_path_is_named(tmp_path):
    with pytest.raises(InputError, match=r"ingest.path=.*nowhere.* does not exist"):
        read_input("amazon2023", tmp_path / "nowhere")


def test_missing_column_names_file_and_column(tmp_path):
    path = amazon_csv(tmp_path, "U1,5.0,1\n", header="user_id,rating,timestamp\n")
    with pytest.raises(InputError, match=r"All_Test.csv lacks column\(s\) \['parent"):
        read_input("amazon2023", path)


def test_recbole_missing_field_is_named(tmp_path):
    (tmp_path / "toy.inter").write_text("user_id:token\trating:float\nu1\t5\n")
    with pytest.raises(InputError, match=r"lacks column\(s\) \['item_id'\]"):
        read_input("recbole", tmp_path)


def test_zero_byte_file_is_empty(tmp_path):
    (tmp_path / "All_Test.csv").write_bytes(b"")
    with pytest.raises(InputError, match=r"All_Test.csv is empty"):
        read_input("amazon2023", tmp_path)


def test_header_only_file_has_no_rows(tmp_path):
    path = amazon_csv(tmp_path, "")
    with pytest.raises(InputError, match=r"All_Test.csv has no data rows"):
        read_input("amazon2023", path)


def test_challenge_empty_test_csv(tmp_path):
    (tmp_path / "train.csv").write_text("user_id,item_id\n0,1\n")
    (tmp_path / "test.csv").write_text("user_id,predictions\n")
    with pytest.raises(InputError, match=r"test.csv has no data rows"):
        read_input("challenge", tmp_path)


# Ids.


@pytest.mark.parametrize(("value", "row"), [("abc", 2), ("-4", 2), ("2.5", 2), ("", 2)])
def test_challenge_bad_id_names_row_and_value(tmp_path, value, row):
    (tmp_path / "train.csv").write_text(f"user_id,item_id\n0,1\n{value},2\n")
    (tmp_path / "test.csv").write_text("user_id\n0\n")
    with pytest.raises(
        InputError, match=rf"column user_id: value '{value}' at data row {row} is not"
    ):
        read_input("challenge", tmp_path)


def test_missing_raw_id_names_row(tmp_path):
    path = amazon_csv(tmp_path, "U1,B1,5,1\n,B2,5,2\n")
    with pytest.raises(InputError, match=r"id at data row 2 is missing"):
        read_input("amazon2023", path)


def test_jsonl_bad_line_is_named(tmp_path):
    good = json.dumps({"user_id": "U1", "parent_asin": "B1", "timestamp": 1})
    (tmp_path / "All_Test.jsonl").write_text(f"{good}\n{{not json\n")
    with pytest.raises(InputError, match=r"line 2 is not valid JSON"):
        read_input("amazon2023", tmp_path)


# Ratings.


def test_nan_and_out_of_range_ratings_are_counted(tmp_path):
    body = "U1,B1,5.0,10\nU1,B2,,20\nU1,B3,nope,30\nU1,B4,7.5,40\nU1,B5,-1,50\n"
    dataset = ingest_csv(tmp_path, body)
    fixes = dataset.stats["fixes"]
    assert fixes["ratings_missing"] == 2
    assert fixes["ratings_out_of_range_cleared"] == 2
    assert dataset.stats["n_interactions"] == 5
    ratings = dataset.interactions.sort_values("position")["rating"].tolist()
    assert ratings[0] == 5.0
    assert np.isnan(ratings[1:]).all()


def test_rating_range_is_a_param(tmp_path):
    dataset = ingest_csv(tmp_path, "U1,B1,7.5,10\n", rating_min=0, rating_max=10)
    assert dataset.interactions["rating"].tolist() == [7.5]
    assert dataset.stats["fixes"]["ratings_out_of_range_cleared"] == 0


# Timestamps.


def test_seconds_milliseconds_and_text_agree(tmp_path):
    # The same three instants written three ways; the order must follow them.
    body = "U1,B3,5,2021-01-01T00:00:02Z\nU1,B1,5,1609459200\nU1,B2,5,1609459201000\n"
    dataset = ingest_csv(tmp_path, body)
    assert history(dataset, "U1") == ["B1", "B2", "B3"]
    stamps = dataset.interactions.sort_values("position")["timestamp"]
    assert stamps.astype("int64").tolist() == [
        1609459200000,
        1609459201000,
        1609459202000,
    ]
    fixes = dataset.stats["fixes"]
    assert fixes["timestamps_from_milliseconds"] == 1
    assert fixes["timestamps_from_text"] == 1


def test_unreadable_timestamp_names_row(tmp_path):
    path = amazon_csv(tmp_path, "U1,B1,5,1609459200\nU1,B2,5,yesterday\n")
    with pytest.raises(InputError, match=r"timestamp 'yesterday' at data row 2"):
        read_input("amazon2023", path)


def test_missing_timestamp_names_row(tmp_path):
    path = amazon_csv(tmp_path, "U1,B1,5,1609459200\nU1,B2,5,\n")
    with pytest.raises(InputError, match=r"at data row 2 is missing"):
        read_input("amazon2023", path)


def test_timestamp_ties_keep_file_order(tmp_path):
    # B9 precedes B1 in the file at the same time: sorting by item id would
    # swap them and put the target first.
    dataset = ingest_csv(tmp_path, "U1,B9,5,100\nU1,B1,5,100\nU1,B5,5,50\n")
    assert history(dataset, "U1") == ["B5", "B9", "B1"]
    assert dataset.stats["fixes"]["timestamp_ties"] == 1
    reversed_file = ingest_csv(tmp_path, "U1,B1,5,100\nU1,B9,5,100\nU1,B5,5,50\n")
    assert history(reversed_file, "U1") == ["B5", "B1", "B9"]


# Duplicates and repeat purchases.


def test_duplicate_rows_are_dropped_and_counted(tmp_path):
    body = "U1,B1,5,10\nU1,B2,4,20\nU1,B1,5,10\nU1,B2,4,20\nU2,B1,5,10\n"
    dataset = ingest_csv(tmp_path, body)
    assert dataset.stats["fixes"]["duplicate_rows_dropped"] == 2
    assert history(dataset, "U1") == ["B1", "B2"]
    assert dataset.stats["n_interactions"] == 3


def test_repeat_purchase_is_kept_by_default(tmp_path):
    body = "U1,B1,5,10\nU1,B2,4,20\nU1,B1,5,30\n"
    dataset = ingest_csv(tmp_path, body)
    assert history(dataset, "U1") == ["B1", "B2", "B1"]
    assert dataset.stats["fixes"]["repeat_pairs_kept"] == 1
    assert dataset.stats["fixes"]["repeat_pairs_dropped"] == 0


def test_repeat_purchase_dedupe_option(tmp_path):
    body = "U1,B1,5,10\nU1,B2,4,20\nU1,B1,5,30\n"
    dataset = ingest_csv(tmp_path, body, dedupe_pairs=True)
    assert history(dataset, "U1") == ["B1", "B2"]
    assert dataset.stats["fixes"]["repeat_pairs_dropped"] == 1
    assert (
        dataset.split["item_id"].tolist()
        == dataset.interactions[dataset.interactions["position"] == 1][
            "item_id"
        ].tolist()
    )


# Short histories and cold start.


def test_one_interaction_user_is_trained_and_predicted(tmp_path):
    body = "U1,B1,5,10\nU1,B2,4,20\nSOLO,B2,5,10\n"
    dataset = ingest_csv(tmp_path, body)
    assert dataset.stats["n_users_with_one_interaction"] == 1
    users = dataset.users.set_index("raw_user_id")["user_id"]
    assert users["SOLO"] not in set(dataset.split["user_id"])

    write_dataset(dataset, tmp_path / "ingest")
    artifacts = data.load(tmp_path / "ingest")
    sequences = data.training_sequences(artifacts, train_on_validation=False)
    assert any(list(s) == [2] for s in sequences)  # SOLO's item stays in training
    tests = data.test_histories(artifacts)
    solo = list(tests.users).index(users["SOLO"])
    assert len(tests.sequences[solo]) == 1


def tiny_scorer(n_items: int) -> TransformerScorer:
    torch.manual_seed(0)
    config = GPTConfig(block_size=8, n_items=n_items, n_layer=1, n_head=1, n_embd=8)
    return TransformerScorer(GPT(config))


def test_test_user_without_history_gets_popular_items(tmp_path):
    (tmp_path / "train.csv").write_text("user_id,item_id\n0,1\n0,2\n1,2\n1,3\n")
    (tmp_path / "test.csv").write_text("user_id\n0\n1\n7\n")
    dataset = normalise(read_input("challenge", tmp_path))
    assert dataset.stats["n_test_users_without_history"] == 1
    write_dataset(dataset, tmp_path / "ingest")
    artifacts = data.load(tmp_path / "ingest")
    tests = data.test_histories(artifacts)
    assert len(tests.sequences[2]) == 0
    popular = popularity(artifacts.interactions["item_idx"].to_numpy(), 3)
    top = recommend(tiny_scorer(3), tests.users, tests.sequences, 2, popular)
    assert list(top[2]) == list(popular[:2])


def test_duplicate_test_users_are_dropped(tmp_path):
    (tmp_path / "train.csv").write_text("user_id,item_id\n0,1\n0,2\n")
    (tmp_path / "test.csv").write_text("user_id\n0\n0\n")
    dataset = normalise(read_input("challenge", tmp_path))
    assert dataset.test_users["user_id"].tolist() == [0]
    assert dataset.stats["fixes"]["test_user_duplicates_dropped"] == 1


# Items and their text.


def meta_line(asin: str, **fields) -> str:
    return json.dumps({"parent_asin": asin, **fields}) + "\n"


def test_never_bought_and_textless_items(tmp_path):
    amazon_csv(tmp_path, "U1,B1,5,10\nU1,B2,5,20\n")
    (tmp_path / "meta_All_Test.jsonl").write_text(
        meta_line("B1", title="Soap") + meta_line("UNSOLD", title="Never bought")
    )
    dataset = normalise(read_input("amazon2023", tmp_path))
    items = dataset.items.set_index("raw_item_id")
    assert "UNSOLD" not in items.index
    assert dataset.stats["fixes"]["metadata_rows_never_bought"] == 1
    assert not items.loc["B2", "has_text"]
    assert not items.loc["B2", "has_metadata"]
    assert dataset.stats["n_items_without_text"] == 1
    assert embed.item_texts(dataset.items.set_index("raw_item_id").loc[["B2"]]) == [""]


def test_challenge_keeps_mapped_items_never_bought(tmp_path):
    (tmp_path / "train.csv").write_text("user_id,item_id\n0,0\n0,1\n")
    (tmp_path / "test.csv").write_text("user_id\n0\n")
    mapping = {"item_mapping": {"A0": 0, "A1": 1, "A2": 2}, "user_mapping": {}}
    (tmp_path / "id_mappings.json").write_text(json.dumps(mapping))
    (tmp_path / "item_metadata.csv").write_text(
        "parent_asin,title\nA0,Soap\nA2,Unsold\nZZ,Unmapped\n"
    )
    dataset = normalise(read_input("challenge", tmp_path))
    assert dataset.stats["n_items"] == 3
    assert dataset.stats["n_items_never_bought"] == 1
    assert dataset.stats["n_items_without_text"] == 1  # A1 has no row
    assert dataset.stats["fixes"]["metadata_rows_unmapped"] == 1


def test_html_entities_and_invalid_utf8_in_text(tmp_path):
    (tmp_path / "train.csv").write_text("user_id,item_id\n0,0\n0,1\n")
    (tmp_path / "test.csv").write_text("user_id\n0\n")
    mapping = {"item_mapping": {"A0": 0, "A1": 1}}
    (tmp_path / "id_mappings.json").write_text(json.dumps(mapping))
    (tmp_path / "item_metadata.csv").write_bytes(
        b"parent_asin,title,store\n"
        b"A0,Soap &amp; Water &#39;Fresh&#39;,Caf\xe9 Brand\n"
        b'A1,"Line one\nline two",Ok\n'
    )
    dataset = normalise(read_input("challenge", tmp_path))
    items = dataset.items.set_index("raw_item_id")
    assert items.loc["A0", "title"] == "Soap & Water 'Fresh'"
    assert items.loc["A0", "store"] == "Caf\ufffd Brand"
    assert items.loc["A1", "title"] == "Line one line two"
    fixes = dataset.stats["fixes"]
    assert fixes["text_html_unescaped"] == 1
    assert fixes["text_invalid_utf8"] == 1


def test_invalid_utf8_line_in_jsonl(tmp_path):
    amazon_csv(tmp_path, "U1,B1,5,10\nU1,B2,5,20\n")
    (tmp_path / "meta_All_Test.jsonl").write_bytes(
        b'{"parent_asin": "B1", "title": "Cr\xe8me"}\n'
    )
    dataset = normalise(read_input("amazon2023", tmp_path))
    title = dataset.items.set_index("raw_item_id").loc["B1", "title"]
    assert title == "Cr\ufffdme"
    assert dataset.stats["fixes"]["text_invalid_utf8"] == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("['Beauty', 'Skin Care']", ["Beauty", "Skin Care"]),
        ("'Beauty', \"Men's\"", ["Beauty", "Men's"]),
        ("Beauty", ["Beauty"]),
        ("[['Beauty', 'Nails'], ['Tools']]", ["Beauty", "Nails", "Tools"]),
        ("['Bath &amp; Body']", ["Bath & Body"]),
        ("[]", []),
        ("", []),
    ],
)
def test_list_like_categories(tmp_path, raw, expected):
    (tmp_path / "train.csv").write_text("user_id,item_id\n0,0\n")
    (tmp_path / "test.csv").write_text("user_id\n0\n")
    (tmp_path / "id_mappings.json").write_text(json.dumps({"item_mapping": {"A": 0}}))
    pd.DataFrame({"parent_asin": ["A"], "categories": [raw]}).to_csv(
        tmp_path / "item_metadata.csv", index=False
    )
    items = normalise(read_input("challenge", tmp_path)).items
    assert list(items["categories"].iloc[0]) == expected


def test_unparsed_price_is_counted(tmp_path):
    amazon_csv(tmp_path, "U1,B1,5,10\nU1,B2,5,20\n")
    (tmp_path / "meta_All_Test.jsonl").write_text(
        meta_line("B1", price="$1,299.50") + meta_line("B2", price="from 3 to 5")
    )
    dataset = normalise(read_input("amazon2023", tmp_path))
    prices = dataset.items.set_index("raw_item_id")["price"]
    assert prices["B1"] == 1299.5
    assert np.isnan(prices["B2"])
    assert dataset.stats["fixes"]["prices_unparsed"] == 1


# Very long histories.


def heavy_user_csv(tmp_path, n: int):
    items = np.arange(n) % 5000
    frame = pd.DataFrame(
        {
            "user_id": "HEAVY",
            "parent_asin": [f"B{i:05d}" for i in items],
            "rating": 5.0,
            "timestamp": 1_600_000_000_000 + np.arange(n) * 1000,
        }
    )
    light = pd.DataFrame(
        {
            "user_id": ["LIGHT", "LIGHT"],
            "parent_asin": ["B00001", "B00002"],
            "rating": 4.0,
            "timestamp": [1_600_000_000_000, 1_600_000_001_000],
        }
    )
    path = tmp_path / "All_Test.csv"
    pd.concat([frame, light]).to_csv(path, index=False)
    return path


def test_user_with_100k_interactions(tmp_path):
    path = heavy_user_csv(tmp_path, 100_000)
    dataset = normalise(read_input("amazon2023", path))
    assert dataset.stats["max_user_interactions"] == 100_000
    heavy = dataset.users.set_index("raw_user_id")["user_id"]["HEAVY"]
    rows = dataset.interactions[dataset.interactions["user_id"] == heavy]
    assert rows["position"].tolist() == list(range(100_000))
    assert rows["timestamp"].is_monotonic_increasing
    assert dataset.stats["fixes"]["repeat_pairs_kept"] == 95_000
    last = dataset.split.set_index("user_id").loc[heavy, "item_id"]
    assert last == rows["item_id"].iloc[-1]


def test_max_history_keeps_latest(tmp_path):
    path = heavy_user_csv(tmp_path, 100_000)
    dataset = normalise(read_input("amazon2023", path), max_history=1000)
    assert dataset.stats["max_user_interactions"] == 1000
    assert dataset.stats["fixes"]["history_rows_truncated"] == 99_000
    heavy = dataset.users.set_index("raw_user_id")["user_id"]["HEAVY"]
    rows = dataset.interactions[dataset.interactions["user_id"] == heavy]
    first = rows.sort_values("position")["timestamp"].iloc[0]
    assert first.value // 10**6 == 1_600_000_000_000 + 99_000 * 1000


# Sequences-file quirks.


def test_sequences_blank_and_repeated_lines(tmp_path):
    (tmp_path / "seq.txt").write_text("u1 a b\n\nu2 c\nu1 d\nu3\n")
    dataset = normalise(read_input("sequences", tmp_path))
    assert history(dataset, "u1") == ["a", "b", "d"]
    fixes = dataset.stats["fixes"]
    assert fixes["blank_lines_skipped"] == 1
    assert fixes["sequence_lines_merged"] == 1
    # u3 has no items: a test user who gets the popularity fallback.
    assert dataset.stats["n_test_users_without_history"] == 1
    assert dataset.stats["n_test_users"] == 3
