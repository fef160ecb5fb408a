"""Pack many short (input, target) sequences into rows of `block_size` tokens.

Most shoppers buy a handful of items, so padding each history to the block wastes
most of the compute. Packing places several histories in one row; a sequence id per
token lets attention stay inside each history, and position ids restart at 0 for
each one, as they do at prediction time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

logger = logging.getLogger(__name__)

PAD_TARGET = -1  # ignored by the loss
PAD_SEQ = -1  # sequence id of padding tokens


@dataclass(frozen=True)
class PackedRows:
    """Packed training rows, each array of shape (n_rows, block_size), int32 or int64.

    idx: input item_idx (0 on padding); targets: next item_idx (-1 on padding);
    pos: position within its own sequence; seq_id: sequence number within the row
    (-1 on padding).
    """

    idx: np.ndarray
    targets: np.ndarray
    pos: np.ndarray
    seq_id: np.ndarray

    @property
    def efficiency(self) -> float:
        """Share of tokens that carry a target (non-padding)."""
        return float((self.targets != PAD_TARGET).mean()) if self.targets.size else 0.0


def user_sequences(
    interactions: pd.DataFrame, drop: pd.DataFrame | None = None
) -> list[np.ndarray]:
    """Split interactions into one item_idx array per user, oldest first.

    Args:
        interactions: rows with user_id, item_idx, position.
        drop: optional validation rows (user_id, ...); the last interaction of
            each of their users is left out.

    Returns:
        A list of int64 arrays in user_id order.
    """
    frame = interactions.sort_values(["user_id", "position"], kind="stable")
    if drop is not None and len(drop):
        last = (
            frame.groupby("user_id")["position"].transform("max") == frame["position"]
        )
        frame = frame[~(last & frame["user_id"].isin(drop["user_id"]))]
    users = frame["user_id"].to_numpy()
    items = frame["item_idx"].to_numpy(dtype=np.int64)
    if len(users) == 0:
        return []
    cuts = np.flatnonzero(users[1:] != users[:-1]) + 1
    return np.split(items, cuts)


def windows(sequence: np.ndarray, block_size: int) -> list[np.ndarray]:
    """Cut one history into windows of at most block_size + 1 items.

    The newest window holds the latest items. Consecutive windows overlap by one
    item, so every item after the first is a target exactly once. A history of
    fewer than two items yields nothing.
    """
    windows_ = []
    end = len(sequence)
    while end > 1:
        start = max(0, end - block_size - 1)
        windows_.append(sequence[start:end])
        end = start + 1
    return windows_


def pack(sequences: list[np.ndarray], block_size: int) -> PackedRows:
    """Pack histories into rows with best-fit decreasing bin packing.

    Args:
        sequences: item_idx arrays, oldest first.
        block_size: tokens per row.

    Returns:
        PackedRows; every (input, target) pair of every window appears once.
    """
    pieces = [w for s in sequences for w in windows(s, block_size)]
    lengths = np.array([len(w) - 1 for w in pieces], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")

    # open_rows[s] lists the rows that have exactly s free tokens.
    open_rows: list[list[int]] = [[] for _ in range(block_size + 1)]
    row_of = np.empty(len(pieces), dtype=np.int64)
    offset_of = np.empty(len(pieces), dtype=np.int64)
    n_rows = 0
    for piece in order:
        need = lengths[piece]
        row, free = -1, block_size
        for space in range(need, block_size + 1):
            if open_rows[space]:
                row, free = open_rows[space].pop(), space
                break
        if row < 0:
            row, n_rows = n_rows, n_rows + 1
        row_of[piece] = row
        offset_of[piece] = block_size - free
        if free - need > 0:
            open_rows[free - need].append(row)

    return _fill(pieces, lengths, row_of, offset_of, n_rows, block_size)


def _fill(
    pieces: list[np.ndarray],
    lengths: np.ndarray,
    row_of: np.ndarray,
    offset_of: np.ndarray,
    n_rows: int,
    block_size: int,
) -> PackedRows:
    idx = np.zeros(n_rows * block_size, dtype=np.int64)
    targets = np.full(n_rows * block_size, PAD_TARGET, dtype=np.int64)
    pos = np.zeros(n_rows * block_size, dtype=np.int64)
    seq_id = np.full(n_rows * block_size, PAD_SEQ, dtype=np.int64)
    if pieces:
        starts = row_of * block_size + offset_of
        flat = np.repeat(starts, lengths) + _ranges(lengths)
        idx[flat] = np.concatenate([p[:-1] for p in pieces])
        targets[flat] = np.concatenate([p[1:] for p in pieces])
        pos[flat] = _ranges(lengths)
        # Number the sequences of each row 0, 1, 2... in order of placement.
        order = np.lexsort((offset_of, row_of))
        rank = np.empty(len(pieces), dtype=np.int64)
        row_sorted = row_of[order]
        first = np.r_[0, np.flatnonzero(row_sorted[1:] != row_sorted[:-1]) + 1]
        counts = np.diff(np.r_[first, len(order)])
        rank[order] = _ranges(counts)
        seq_id[flat] = np.repeat(rank, lengths)
    shape = (n_rows, block_size)
    return PackedRows(
        idx.reshape(shape),
        targets.reshape(shape),
        pos.reshape(shape),
        seq_id.reshape(shape),
    )


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """Concatenate arange(n) for each n in lengths, without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    resets = np.repeat(ends - lengths, lengths)
    return np.arange(total, dtype=np.int64) - resets


def rows_table(rows: PackedRows) -> pa.Table:
    """Arrow table with one fixed-size list column per array."""
    block = rows.idx.shape[1]
    columns = {}
    for name in ("idx", "targets", "pos", "seq_id"):
        flat = pa.array(getattr(rows, name).reshape(-1).astype(np.int32))
        columns[name] = pa.FixedSizeListArray.from_arrays(flat, block)
    return pa.table(columns)


def read_rows(table: pa.Table) -> PackedRows:
    """Inverse of rows_table."""
    arrays = {}
    for name in ("idx", "targets", "pos", "seq_id"):
        column = table.column(name).combine_chunks()
        block = column.type.list_size
        values = column.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
        arrays[name] = values.reshape(-1, block)
    return PackedRows(**arrays)
