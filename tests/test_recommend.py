import numpy as np
import pandas as pd
import torch

from nanorec.data import write_submission_frame
from nanorec.models.gpt import GPT, GPTConfig
from nanorec.recommend import (
    GenerativeScorer,
    TransformerScorer,
    popularity,
    recommend,
)


class FixedScorer:
    """Scores that prefer low item_idx; enough to test masking and fallback."""

    n_items = 20

    def score(self, users, histories):
        return -torch.arange(21, dtype=torch.float32).expand(len(histories), 21).clone()


def test_recommend_excludes_seen_and_padding():
    histories = [np.array([1, 2, 3]), np.array([5])]
    top = recommend(FixedScorer(), np.arange(2), histories, 5, np.arange(1, 21))
    assert list(top[0]) == [4, 5, 6, 7, 8]
    assert list(top[1]) == [1, 2, 3, 4, 6]


def test_recommend_keeps_seen_when_asked():
    top = recommend(
        FixedScorer(),
        np.arange(1),
        [np.array([1, 2])],
        3,
        np.arange(1, 21),
        exclude_seen=False,
    )
    assert list(top[0]) == [1, 2, 3]


def test_empty_history_gets_popular_items():
    popular = popularity(np.array([7, 7, 7, 3, 3, 9]), n_items=20)
    assert list(popular[:3]) == [7, 3, 9]
    top = recommend(FixedScorer(), np.arange(1), [np.array([], dtype=int)], 3, popular)
    assert list(top[0]) == [7, 3, 9]


def make_model() -> GPT:
    torch.manual_seed(1)
    return GPT(GPTConfig(n_items=40, block_size=8, n_layer=1, n_head=2, n_embd=16))


def test_generative_never_repeats_or_emits_seen():
    scorer = TransformerScorer(make_model())
    rng = np.random.default_rng(0)
    histories = [
        rng.choice(np.arange(1, 41), size=n, replace=False) for n in (1, 5, 12)
    ]
    decoded = scorer.generate(histories, k=10, exclude_seen=True)
    for row, history in zip(decoded, histories):
        assert len(set(row)) == 10
        assert not set(row) & set(history)
        assert 0 not in row


def test_generative_scorer_ranks_in_decoding_order():
    inner = TransformerScorer(make_model())
    histories = [np.array([3, 4, 5])]
    decoded = inner.generate(histories, k=10, exclude_seen=True)
    top = recommend(
        GenerativeScorer(inner, 10, True),
        np.arange(1),
        histories,
        10,
        np.arange(1, 41),
    )
    assert list(top[0]) == list(decoded[0])


def test_oneshot_scores_use_last_real_position():
    model = make_model().eval()
    scorer = TransformerScorer(model)
    short, long_ = np.array([2, 3]), np.array([5, 6, 7, 8])
    batched = scorer.score(np.arange(2), [short, long_])
    alone = scorer.score(np.arange(1), [short])
    assert torch.allclose(batched[0], alone[0], atol=1e-5)


def test_submission_rows_have_ten_distinct_item_ids():
    items = pd.DataFrame({"item_idx": np.arange(1, 41), "item_id": np.arange(100, 140)})
    histories = [np.array([1, 2]), np.array([], dtype=int), np.array([40])]
    top = recommend(
        TransformerScorer(make_model()),
        np.arange(3),
        histories,
        10,
        popularity(np.array([1, 1, 2]), 40),
    )
    frame = write_submission_frame(np.array([10, 11, 12]), top, items)
    for line in frame["predictions"]:
        ids = [int(x) for x in line.split(" ")]
        assert len(ids) == 10
        assert len(set(ids)) == 10
        assert all(100 <= i < 140 for i in ids)
    assert list(frame["user_id"]) == [10, 11, 12]
