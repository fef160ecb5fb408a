"""PureSVD: a truncated SVD of the binary user-item matrix.

Cremonesi, Koren and Turrin, "Performance of Recommender Algorithms on Top-N
Recommendation Tasks" (RecSys 2010). With X = U S V^T truncated to f factors, a
user's scores are x V V^T, where x is the user's 0/1 row over the catalog. The
product x V equals the user's row of U S, so any history folds in without per-user
parameters. A validation user is scored from the history before the held-out item
and a test user from the whole history, both with the same item factors.

NOTE: a user who bought an item several times has a 1 in its cell, not the count.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds


def history_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Stack histories into a binary sparse matrix.

    Args:
        histories: B arrays of item_idx in 1..n_items.
        n_items: catalog size.

    Returns:
        (B, n_items + 1) float32 CSR matrix with 1.0 where a row's user has the item;
        column 0 (padding) is empty.
    """
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64)
    rows = np.repeat(np.arange(len(histories)), lengths)
    cols = (
        np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
        if lengths.sum()
        else np.zeros(0, dtype=np.int64)
    )
    matrix = sp.csr_matrix(
        (np.ones(len(cols), dtype=np.float32), (rows, cols)),
        shape=(len(histories), n_items + 1),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def fit_item_factors(matrix: sp.csr_matrix, n_factors: int, seed: int) -> np.ndarray:
    """Top right singular vectors of a user-item matrix.

    Args:
        matrix: (n_users, n_items + 1) binary matrix from `history_matrix`.
        n_factors: singular vectors to keep; must be below min(matrix.shape).
        seed: seeds ARPACK's start vector, so the factors are reproducible.

    Returns:
        (n_items + 1, n_factors) float32 item factors V, ordered by decreasing
        singular value; row 0 (padding) is zero.
    """
    limit = min(matrix.shape) - 1
    if not 0 < n_factors <= limit:
        raise ValueError(
            f"n_factors={n_factors} must be between 1 and {limit} for a "
            f"{matrix.shape[0]} x {matrix.shape[1]} user-item matrix"
        )
    _, singular, vt = svds(matrix.astype(np.float64), k=n_factors, random_state=seed)
    order = np.argsort(-singular)
    factors = vt[order].T.astype(np.float32)
    factors[0] = 0.0
    return factors


class SVDScorer:
    """Scores every item for a batch of histories with x V V^T.

    Args:
        item_factors: (n_items + 1, f) float32 item factors V.
    """

    def __init__(self, item_factors: torch.Tensor) -> None:
        self.item_factors = item_factors.float().contiguous()
        self.n_items = item_factors.shape[0] - 1
        self._factors_np = self.item_factors.numpy()

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Return (B, n_items + 1) scores; `users` is unused, histories fold in."""
        rows = history_matrix(histories, self.n_items)
        user_factors = torch.from_numpy(np.asarray(rows @ self._factors_np))  # (B, f)
        return user_factors @ self.item_factors.T
