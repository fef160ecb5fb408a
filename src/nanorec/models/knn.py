"""Content nearest neighbours: the items most similar to what the user bought last.

Item content vectors are L2-normalised and held in a Faiss IndexFlatIP, so an inner
product search is an exact cosine search. A user's query is the normalised mean of
the vectors of the last `last_n` items of the history that have a content vector
(the last item alone when last_n is 1).

Only the `n_neighbours` nearest items get their cosine as a score. Every other
item gets a score below -1, ordered by training popularity, so a user whose
history has no content vector at all gets the most popular items.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np
import torch


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit L2 norm; all-zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def popularity_floor(counts: np.ndarray) -> np.ndarray:
    """Fallback scores in [-3, -2), higher for more training purchases.

    Args:
        counts: (n_items + 1,) purchase count of each item_idx.

    Returns:
        (n_items + 1,) float32 scores, strictly ordered by count (ties: lower
        item_idx first), all below any cosine similarity.
    """
    n = len(counts)
    order = np.argsort(-np.asarray(counts, dtype=np.float64), kind="stable")
    rank = np.empty(n, dtype=np.float64)
    rank[order] = np.arange(n)
    return (-2.0 - rank / n).astype(np.float32)


class ContentKnnScorer:
    """Cosine nearest neighbours of a history's last items, searched with Faiss.

    Args:
        vectors: (n_items + 1, dim) item content vectors; row 0 is padding. Rows
            are normalised here, and zero rows (items without content) are never
            a query but stay in the index with similarity 0.
        floor: (n_items + 1,) scores of items outside the neighbours, below -1
            (see `popularity_floor`).
        last_n: items at the end of the history averaged into the query.
        n_neighbours: items retrieved per user beyond the history's own items.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        floor: np.ndarray,
        last_n: int = 1,
        n_neighbours: int = 200,
    ) -> None:
        if last_n < 1 or n_neighbours < 1:
            raise ValueError(
                f"last_n={last_n} and n_neighbours={n_neighbours} must be >= 1"
            )
        self.vectors = normalise_rows(vectors)
        self.floor = torch.as_tensor(np.asarray(floor, dtype=np.float32))
        self.n_items = self.vectors.shape[0] - 1
        self.last_n = last_n
        self.n_neighbours = n_neighbours
        self.has_vector = np.linalg.norm(self.vectors, axis=1) > 0
        self.index = faiss.IndexFlatIP(self.vectors.shape[1])
        self.index.add(self.vectors[1:])  # faiss id i is item_idx i + 1

    def queries(self, histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Build one query per history.

        Returns:
            (B, dim) float32 unit queries and a (B,) bool mask of histories that
            have at least one item with a content vector (other rows are zero).
        """
        out = np.zeros((len(histories), self.vectors.shape[1]), dtype=np.float32)
        for row, history in enumerate(histories):
            history = np.asarray(history, dtype=np.int64)
            usable = history[self.has_vector[history]][-self.last_n :]
            if len(usable):
                out[row] = self.vectors[usable].mean(axis=0)
        out = normalise_rows(out)
        return out, np.linalg.norm(out, axis=1) > 0

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Return (B, n_items + 1) scores; `users` is unused.

        The search depth is n_neighbours plus the longest history in the batch,
        so after the caller masks seen items at least n_neighbours retrieved
        items remain for each user.
        """
        scores = self.floor.expand(len(histories), -1).clone()
        queries, found = self.queries(histories)
        rows = np.flatnonzero(found)
        if len(rows) == 0:
            return scores
        longest = max(len(h) for h in histories)
        depth = min(self.n_items, self.n_neighbours + longest)
        similarity, ids = self.index.search(queries[rows], depth)  # (R, depth)
        scores[
            torch.from_numpy(np.repeat(rows, depth)),
            torch.from_numpy(ids.reshape(-1).astype(np.int64) + 1),
        ] = torch.from_numpy(similarity.reshape(-1))
        return scores
