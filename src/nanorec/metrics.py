"""Ranking metrics with one relevant item per user.

With a single hidden item, average precision at k is 1/rank when the item is ranked
within the top k and 0 otherwise, so MAP@k equals MRR@k.
"""

from __future__ import annotations

import numpy as np


def ranking_metrics(topk: np.ndarray, targets: np.ndarray, k: int = 10) -> dict:
    """MAP@k, HR@k and NDCG@k of ranked lists against one target each.

    Args:
        topk: (n_users, >= k) item ids, best first.
        targets: (n_users,) the hidden item id of each user.
        k: cut-off.

    Returns:
        {"map@k", "hr@k", "ndcg@k", "n_users"}; the metrics are means over users,
        and 0.0 each when there are no users.
    """
    topk = np.asarray(topk)[:, :k]
    targets = np.asarray(targets).reshape(-1, 1)
    if len(topk) != len(targets):
        raise ValueError(f"{len(topk)} ranked lists for {len(targets)} targets")
    hits = topk == targets  # (n_users, k), at most one True per row
    found = hits.any(axis=1)
    rank = np.where(found, hits.argmax(axis=1) + 1, 0)  # 1-based; 0 = missed
    safe = np.maximum(rank, 1)
    n = len(topk)
    return {
        f"map@{k}": float(np.where(found, 1.0 / safe, 0.0).mean()) if n else 0.0,
        f"hr@{k}": float(found.mean()) if n else 0.0,
        f"ndcg@{k}": float(np.where(found, 1.0 / np.log2(safe + 1), 0.0).mean())
        if n
        else 0.0,
        "n_users": int(n),
    }
