import numpy as np
import pytest

from nanorec.metrics import ranking_metrics


def test_metrics_match_hand_computation():
    topk = np.array(
        [
            [5, 1, 2, 3, 4, 6, 7, 8, 9, 10],  # target 5 at rank 1
            [1, 2, 3, 7, 4, 6, 5, 8, 9, 10],  # target 7 at rank 4
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],  # target 11 missed
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 12],  # target 12 at rank 10
        ]
    )
    targets = np.array([5, 7, 11, 12])
    result = ranking_metrics(topk, targets, k=10)
    assert result["map@10"] == pytest.approx((1 + 1 / 4 + 0 + 1 / 10) / 4)
    assert result["hr@10"] == pytest.approx(3 / 4)
    expected_ndcg = (1 + 1 / np.log2(5) + 0 + 1 / np.log2(11)) / 4
    assert result["ndcg@10"] == pytest.approx(expected_ndcg)
    assert result["n_users"] == 4


def test_metrics_cut_at_k():
    topk = np.array([[1, 2, 3, 9]])
    result = ranking_metrics(topk, np.array([9]), k=3)
    assert result["map@3"] == 0.0
    assert result["hr@3"] == 0.0


def test_metrics_reject_misaligned_targets():
    with pytest.raises(ValueError, match="2 ranked lists for 3 targets"):
        ranking_metrics(np.ones((2, 10), dtype=int), np.array([1, 2, 3]))
