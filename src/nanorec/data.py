"""Read the ingest artifacts back and derive the histories each stage needs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nanorec.io import read_parquet, relative_to_cwd
from nanorec.packing import user_sequences

logger = logging.getLogger(__name__)

INTERACTIONS = "interactions.parquet"
ITEMS = "items.parquet"
SPLIT = "split.parquet"
TEST_USERS = "test_users.parquet"
USERS = "users.parquet"  # user_id -> raw_user_id, for submissions with raw ids


@dataclass(frozen=True)
class Histories:
    """Users and their item_idx histories, oldest first, aligned by position."""

    users: np.ndarray
    sequences: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Artifacts:
    interactions: pd.DataFrame
    items: pd.DataFrame
    split: pd.DataFrame
    test_users: pd.DataFrame

    @property
    def n_items(self) -> int:
        return len(self.items)


def load(folder: Path) -> Artifacts:
    """Read the Parquet files written by the ingest stage.

    Raises:
        FileNotFoundError: a file is missing.
        InputError: a file is not valid Parquet.
    """
    folder = Path(folder)
    frames = {}
    for name in (INTERACTIONS, ITEMS, SPLIT, TEST_USERS):
        path = folder / name
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist{relative_to_cwd(path)}: run the ingest "
                "stage first (dvc repro ingest), or run from the project folder "
                "or pass --ingested with the ingest output folder"
            )
        frames[name] = read_parquet(
            path, "Rerun the ingest stage (dvc repro ingest) to rewrite it."
        )
    return Artifacts(
        frames[INTERACTIONS], frames[ITEMS], frames[SPLIT], frames[TEST_USERS]
    )


def training_sequences(data: Artifacts, train_on_validation: bool) -> list[np.ndarray]:
    """Training histories: without the validation items unless asked to keep them."""
    drop = None if train_on_validation else data.split
    return user_sequences(data.interactions, drop=drop)


def validation_histories(data: Artifacts) -> tuple[Histories, np.ndarray]:
    """Histories of the validation users before their held-out item, and the items.

    Returns (histories, targets) with targets as item_idx aligned with the users.
    """
    users = data.split["user_id"].to_numpy()
    subset = data.interactions[data.interactions["user_id"].isin(users)]
    sequences = user_sequences(subset, drop=data.split)
    ordered_users = np.sort(np.unique(subset["user_id"].to_numpy()))
    target_of = dict(zip(data.split["user_id"], data.split["item_idx"]))
    targets = np.array([target_of[u] for u in ordered_users], dtype=np.int64)
    return Histories(ordered_users, sequences), targets


def test_histories(data: Artifacts) -> Histories:
    """Full train.csv histories of the test users, in test.csv order.

    A test user absent from train.csv gets an empty history.
    """
    frame = data.interactions.sort_values(["user_id", "position"], kind="stable")
    users = frame["user_id"].to_numpy()
    items = frame["item_idx"].to_numpy(dtype=np.int64)
    unique, starts = np.unique(users, return_index=True)
    ends = np.r_[starts[1:], len(users)]
    where = {u: (s, e) for u, s, e in zip(unique, starts, ends)}
    empty = np.zeros(0, dtype=np.int64)
    test_users = data.test_users["user_id"].to_numpy()
    sequences = []
    for user in test_users:
        span = where.get(user)
        sequences.append(items[span[0] : span[1]] if span else empty)
    missing = sum(1 for u in test_users if u not in where)
    if missing:
        logger.warning("%d test users have no history: popularity fallback", missing)
    return Histories(test_users, sequences)


def sample_histories(
    histories: Histories, targets: np.ndarray, n: int, seed: int
) -> tuple[Histories, np.ndarray]:
    """A fixed random subset of n users (all when n is 0 or too large)."""
    if n <= 0 or n >= len(histories):
        return histories, targets
    pick = np.sort(np.random.default_rng(seed).choice(len(histories), n, replace=False))
    return (
        Histories(histories.users[pick], [histories.sequences[i] for i in pick]),
        targets[pick],
    )


def write_submission_frame(
    users: np.ndarray,
    topk_idx: np.ndarray,
    items: pd.DataFrame,
    raw_users: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Challenge submission: user_id and k space-separated item ids, best first.

    With `raw_users` (the ingest users table: user_id, raw_user_id), the frame
    contains the input's raw ids instead: raw_user_id and items.raw_item_id.
    """
    if raw_users is not None:
        names = np.empty(len(items) + 1, dtype=object)
        names[items["item_idx"].to_numpy()] = items["raw_item_id"].to_numpy()
        raw_of = dict(zip(raw_users["user_id"], raw_users["raw_user_id"]))
        predictions = [" ".join(row) for row in names[topk_idx]]
        return pd.DataFrame(
            {"user_id": [raw_of[u] for u in users], "predictions": predictions}
        )
    item_ids = np.zeros(len(items) + 1, dtype=np.int64)
    item_ids[items["item_idx"].to_numpy()] = items["item_id"].to_numpy()
    ids = item_ids[topk_idx]
    predictions = [" ".join(map(str, row)) for row in ids]
    return pd.DataFrame({"user_id": users, "predictions": predictions})
