import numpy as np
import pytest
import torch

from nanorec.blend import BlendScorer, CooccurrenceScorer
from nanorec.models.cooccurrence import blend_scores, cooccurrence_matrix
from nanorec.recommend import recommend


def test_cooccurrence_counts_pairs_within_window():
    sequences = [np.array([1, 2, 3, 4]), np.array([2, 1])]
    matrix = cooccurrence_matrix(sequences, n_items=5, window=2).toarray()
    # (1,2) twice in the first history's window and once in the second.
    assert matrix[1, 2] == 2 and matrix[2, 1] == 2
    assert matrix[1, 3] == 1  # gap 2
    assert matrix[1, 4] == 0  # gap 3 is outside the window
    assert np.all(np.diag(matrix) == 0)
    assert matrix[0].sum() == 0


def test_cooccurrence_scorer_matches_dense_reference():
    rng = np.random.default_rng(0)
    sequences = [rng.choice(np.arange(1, 21), size=8, replace=False) for _ in range(30)]
    scorer = CooccurrenceScorer.fit(sequences, n_items=20, window=3, last_n=2)
    dense = cooccurrence_matrix(sequences, 20, 3).toarray()
    histories = [np.array([3, 5, 7]), np.array([9])]
    scores = scorer.score(np.arange(2), histories).numpy()
    assert np.allclose(scores[0], dense[5] + dense[7])
    assert np.allclose(scores[1], dense[9])


def test_blend_is_a_convex_mix_of_distributions():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    counts = torch.tensor([[0.0, 3.0, 1.0, 0.0]])
    mixed = blend_scores(logits, counts, weight=0.25)
    expected = 0.75 * torch.softmax(logits, -1) + 0.25 * torch.tensor(
        [[0.0, 0.75, 0.25, 0.0]]
    )
    assert torch.allclose(mixed, expected)
    assert mixed.sum().item() == pytest.approx(1.0)


def test_blend_without_counts_keeps_model_ranking():
    logits = torch.tensor([[0.0, 5.0, 1.0, 2.0]])
    mixed = blend_scores(logits, torch.zeros(1, 4), weight=0.9)
    assert torch.equal(mixed.argsort(), torch.softmax(logits, -1).argsort())


class Uniform:
    n_items = 20

    def score(self, users, histories):
        return torch.zeros(len(histories), 21)


def test_blend_scorer_follows_cooccurrence_on_planted_pattern():
    # Item i is always followed by i + 1: co-occurrence alone recovers it.
    sequences = [np.arange(s, s + 5) for s in range(1, 16) for _ in range(3)]
    counts = CooccurrenceScorer.fit(sequences, 20, window=1, last_n=1)
    scorer = BlendScorer(Uniform(), counts, weight=0.5)
    top = recommend(
        scorer, np.arange(2), [np.array([4]), np.array([10])], 2, np.arange(1, 21)
    )
    assert set(top[0]) == {3, 5}
    assert set(top[1]) == {9, 11}


def test_blend_scorer_rejects_mismatched_catalogs():
    counts = CooccurrenceScorer.fit([np.array([1, 2])], 5)
    with pytest.raises(ValueError, match="model scores 20 items"):
        BlendScorer(Uniform(), counts, 0.5)
