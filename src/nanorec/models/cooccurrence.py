"""Item-item co-occurrence within a window of positions, as a sparse matrix.

A training-free sequential baseline: item j scores for a user by how often it was
bought within `window` positions of the user's latest items, in other users'
histories. `blend_scores` mixes these counts, turned into a distribution, with a
transformer's softmax.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch


def cooccurrence_matrix(
    sequences: Sequence[np.ndarray], n_items: int, window: int
) -> sp.csr_matrix:
    """Count pairs (a, b) bought within `window` positions of each other.

    Args:
        sequences: item_idx arrays, oldest first.
        n_items: catalog size; the matrix is (n_items + 1) square, row 0 empty.
        window: largest position gap that counts; pairs in both orders count.

    Returns:
        float32 CSR matrix C with C[a, b] = number of such pairs, zero diagonal.
    """
    if not sequences:
        return sp.csr_matrix((n_items + 1, n_items + 1), dtype=np.float32)
    items = np.concatenate(sequences).astype(np.int64)
    lengths = np.array([len(s) for s in sequences])
    user = np.repeat(np.arange(len(sequences)), lengths)
    rows, cols = [], []
    for gap in range(1, window + 1):
        same_user = user[gap:] == user[:-gap]
        rows.append(items[:-gap][same_user])
        cols.append(items[gap:][same_user])
    a, b = np.concatenate(rows), np.concatenate(cols)
    data = np.ones(2 * len(a), dtype=np.float32)
    matrix = sp.coo_matrix(
        (data, (np.r_[a, b], np.r_[b, a])), shape=(n_items + 1, n_items + 1)
    ).tocsr()
    matrix.setdiag(0)
    matrix.eliminate_zeros()
    return matrix


def recent_item_scores(
    matrix: sp.csr_matrix, histories: Sequence[np.ndarray], last_n: int
) -> torch.Tensor:
    """Sum the co-occurrence rows of each history's last_n items.

    Returns:
        (len(histories), n_items + 1) float32 dense scores.
    """
    n_rows = len(histories)
    recent = [np.asarray(h[-last_n:], dtype=np.int64) for h in histories]
    lengths = np.array([len(r) for r in recent])
    picks = sp.csr_matrix(
        (
            np.ones(int(lengths.sum()), dtype=np.float32),
            (np.repeat(np.arange(n_rows), lengths), np.concatenate(recent)),
        ),
        shape=(n_rows, matrix.shape[0]),
    )
    return torch.from_numpy(np.asarray((picks @ matrix).todense(), dtype=np.float32))


def blend_scores(
    logits: torch.Tensor, counts: torch.Tensor, weight: float
) -> torch.Tensor:
    """(1 - weight) * softmax(logits) + weight * counts / row sum of counts.

    Rows whose counts are all zero keep the model's distribution alone. Column 0
    (padding) should be masked by the caller.
    """
    probs = torch.softmax(logits.float(), dim=-1)
    totals = counts.sum(dim=-1, keepdim=True)
    shares = torch.where(totals > 0, counts / totals.clamp_min(1e-12), probs)
    return (1.0 - weight) * probs + weight * shares
