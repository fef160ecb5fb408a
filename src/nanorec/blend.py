"""Scorers built on item-item co-occurrence: alone, or blended with a model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from nanorec.models.cooccurrence import (
    blend_scores,
    cooccurrence_matrix,
    recent_item_scores,
)
from nanorec.recommend import Scorer


class CooccurrenceScorer:
    """Scores items by co-occurrence with the user's last `last_n` items."""

    def __init__(self, matrix: sp.csr_matrix, last_n: int) -> None:
        self.matrix = matrix
        self.n_items = matrix.shape[0] - 1
        self.last_n = last_n

    @classmethod
    def fit(
        cls,
        sequences: Sequence[np.ndarray],
        n_items: int,
        window: int = 3,
        last_n: int = 3,
    ) -> CooccurrenceScorer:
        """Count co-occurrences within `window` positions in the sequences."""
        return cls(cooccurrence_matrix(sequences, n_items, window), last_n)

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        return recent_item_scores(self.matrix, histories, self.last_n)


class BlendScorer:
    """(1 - weight) * softmax(model logits) + weight * co-occurrence shares.

    The model must score with logits (the transformer does); users whose recent
    items never co-occur with anything keep the model's ranking.
    """

    def __init__(
        self, model: Scorer, cooccurrence: CooccurrenceScorer, weight: float
    ) -> None:
        if model.n_items != cooccurrence.n_items:
            raise ValueError(
                f"model scores {model.n_items} items but the co-occurrence matrix "
                f"has {cooccurrence.n_items}"
            )
        self.model = model
        self.cooccurrence = cooccurrence
        self.weight = weight
        self.n_items = model.n_items

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        logits = self.model.score(users, histories)
        counts = self.cooccurrence.score(users, histories)
        return blend_scores(logits, counts, self.weight)
