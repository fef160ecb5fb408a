"""The synthetic shop of the challenge's shape, and the small shape left unchanged."""

import hashlib

import numpy as np
import pytest

from nanorec import ingest, packing, synthetic
from nanorec.params import IngestParams, ParamError, from_dict


def train_lengths(raw: synthetic.RawTables) -> np.ndarray:
    return raw.train.groupby("user_id").size().to_numpy()


@pytest.fixture(scope="module")
def challenge_shop() -> synthetic.RawTables:
    return synthetic.generate(20_000, 3_000, seed=5, shape="challenge")


def test_challenge_shape_lengths(challenge_shop):
    lengths = train_lengths(challenge_shop)
    assert len(lengths) == 20_000
    assert lengths.min() == 2
    assert abs((lengths == 2).mean() - 0.70) < 0.02
    # The challenge: 2.54 M train rows over 868,218 users, 2.93 per user.
    assert abs(lengths.mean() - 2.93) < 0.1


def test_challenge_walks_never_repeat_an_item(challenge_shop):
    train = challenge_shop.train
    assert not train.duplicated(["user_id", "item_id"]).any()
    assert train["item_id"].between(0, 2_999).all()


def test_challenge_timestamps_grow_within_each_user(challenge_shop):
    train = challenge_shop.train
    same_user = train["user_id"].diff() == 0
    assert (train["timestamp"].diff()[same_user] >= 0).all()


def test_challenge_shape_is_deterministic():
    a = synthetic.generate(2_000, 300, seed=9, shape="challenge")
    b = synthetic.generate(2_000, 300, seed=9, shape="challenge")
    assert a.train.equals(b.train)
    assert a.item_metadata.equals(b.item_metadata)


def test_challenge_shape_ingests_and_packs(challenge_shop):
    dataset = ingest.normalise(challenge_shop)
    assert dataset.stats["n_users"] == 20_000
    assert dataset.stats["n_interactions"] == len(challenge_shop.train)
    sequences = packing.user_sequences(dataset.interactions, drop=dataset.split)
    rows = packing.pack(sequences, block_size=32)
    assert rows.efficiency > 0.99


def test_small_shape_output_is_unchanged():
    # The default pipeline and its tests rely on these exact tables.
    raw = synthetic.generate(3000, 600, seed=1337)
    digest = hashlib.sha256()
    for column in ("user_id", "item_id", "timestamp", "rating"):
        digest.update(np.ascontiguousarray(raw.train[column].to_numpy()).tobytes())
    digest.update("|".join(raw.item_metadata["title"]).encode())
    assert digest.hexdigest()[:16] == "d88505330f605d46"


def test_unknown_shape_is_rejected():
    with pytest.raises(ParamError, match="ingest.synthetic_shape='huge' is not one"):
        from_dict(IngestParams, {"synthetic_shape": "huge"}, "ingest")
    with pytest.raises(ValueError, match="synthetic shape 'huge'"):
        synthetic.generate(100, 50, seed=0, shape="huge")
