"""Batched top-k recommendation over the full catalog, for any scorer.

A scorer maps a batch of users and their histories to a score for every item_idx.
This module adds what all models share: the padding column and (optionally) the
user's own items are masked to -inf, users with no history get the most popular
items, and the work is done in fixed-size batches so memory stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from nanorec.models.gpt import GPT

logger = logging.getLogger(__name__)


class Scorer(Protocol):
    n_items: int

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Return (len(users), n_items + 1) float scores; column 0 is ignored."""
        ...


def popularity(item_idx: np.ndarray, n_items: int) -> np.ndarray:
    """Item_idx ordered by purchase count, most popular first (ties: lower idx)."""
    counts = np.bincount(item_idx, minlength=n_items + 1).astype(np.float64)
    counts[0] = -1.0
    return np.argsort(-counts, kind="stable")[:n_items]


def mask_seen(scores: torch.Tensor, histories: Sequence[np.ndarray]) -> None:
    """Set scores[b, item] = -inf in place for every item in histories[b]."""
    lengths = [len(h) for h in histories]
    if sum(lengths) == 0:
        return
    rows = torch.from_numpy(np.repeat(np.arange(len(histories)), lengths))
    cols = torch.from_numpy(np.concatenate(histories).astype(np.int64))
    scores[rows, cols] = float("-inf")


def recommend(
    scorer: Scorer,
    users: np.ndarray,
    histories: Sequence[np.ndarray],
    k: int,
    popular: np.ndarray,
    exclude_seen: bool = True,
    batch_size: int = 1024,
    progress: bool = False,
) -> np.ndarray:
    """Top-k item_idx for each user.

    Args:
        scorer: the model.
        users: (n,) user ids, passed to the scorer.
        histories: n arrays of item_idx, oldest first (may be empty).
        k: items per user.
        popular: item_idx by popularity, the fallback for empty histories.
        exclude_seen: never return an item of the user's own history.
        batch_size: users per scorer call.
        progress: show a progress bar.

    Returns:
        (n, k) int64 item_idx, best first, distinct within each row.
    """
    if k > scorer.n_items:
        raise ValueError(f"k={k} exceeds the catalog size {scorer.n_items}")
    out = np.zeros((len(users), k), dtype=np.int64)
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64)
    has_history = lengths > 0
    out[~has_history] = popular[:k]
    # Users in order of history length, so that each batch pads its histories
    # to a similar length and a transformer spends little work on padding.
    todo = np.flatnonzero(has_history)
    todo = todo[np.argsort(lengths[todo], kind="stable")]
    starts = range(0, len(todo), batch_size)
    for start in tqdm(starts, desc="scoring", disable=not progress, unit="batch"):
        batch = todo[start : start + batch_size]
        batch_histories = [histories[i] for i in batch]
        with torch.no_grad():
            scores = scorer.score(users[batch], batch_histories).float()
        scores[:, 0] = float("-inf")
        if exclude_seen:
            mask_seen(scores, batch_histories)
        out[batch] = torch.topk(scores, k, dim=1).indices.numpy()
    return out


class TransformerScorer:
    """Scores items with the logits of a GPT at each history's last position."""

    def __init__(self, model: GPT, dtype: torch.dtype = torch.float32) -> None:
        self.model = model.eval()
        self.n_items = model.config.n_items
        self.block_size = model.config.block_size
        self.dtype = dtype

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Return (len(histories), n_items + 1) float32 scores on the CPU."""
        device = self.model.wte.weight.device
        batch = right_padded(histories, self.block_size)
        idx, pos, seq_id, last = (tensor.to(device) for tensor in batch)
        with torch.no_grad(), _autocast(self.dtype, device.type):
            h = self.model.hidden(idx, pos, seq_id)
            h_last = h[torch.arange(len(histories), device=device), last]
            return self.model.logits(h_last).float().cpu()

    def generate(
        self, histories: Sequence[np.ndarray], k: int, exclude_seen: bool
    ) -> np.ndarray:
        """Greedy decoding of k new distinct items, each appended before the next.

        Returns (len(histories), k) item_idx. Items already generated are never
        generated again; with exclude_seen the history's items are masked too.
        """
        current = [np.asarray(h, dtype=np.int64) for h in histories]
        out = np.zeros((len(histories), k), dtype=np.int64)
        dummy_users = np.zeros(len(histories), dtype=np.int64)
        for step in range(k):
            scores = self.score(dummy_users, current)
            scores[:, 0] = float("-inf")
            banned = [out[:, :step][b] for b in range(len(current))]
            if exclude_seen:
                banned = [np.concatenate([h, g]) for h, g in zip(histories, banned)]
            mask_seen(scores, banned)
            out[:, step] = scores.argmax(dim=1).numpy()
            current = [np.append(h, out[b, step]) for b, h in enumerate(current)]
        return out


class GenerativeScorer:
    """Adapter that lets `recommend` batch greedy decoding like any scorer.

    Its scores are k, k-1, ..., 1 on the decoded items and -inf elsewhere, so the
    top-k of those scores is the decoded order.
    """

    def __init__(self, scorer: TransformerScorer, k: int, exclude_seen: bool) -> None:
        self.inner = scorer
        self.n_items = scorer.n_items
        self.k = k
        self.exclude_seen = exclude_seen

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> torch.Tensor:
        decoded = torch.from_numpy(
            self.inner.generate(histories, self.k, self.exclude_seen)
        )
        scores = torch.full((len(histories), self.n_items + 1), float("-inf"))
        ranks = torch.arange(self.k, 0, -1, dtype=torch.float32).expand_as(decoded)
        scores.scatter_(1, decoded, ranks)
        return scores


def right_padded(
    histories: Sequence[np.ndarray], block_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch the latest block_size items of each non-empty history.

    Returns idx, pos, seq_id (each (B, T) int64, T = longest kept history) and
    last, the (B,) index of each row's last real token. Padding tokens have
    item 0 and sequence id -1, so real tokens never attend to them.
    """
    kept = [np.asarray(h[-block_size:], dtype=np.int64) for h in histories]
    lengths = np.array([len(h) for h in kept])
    if (lengths == 0).any():
        raise ValueError("right_padded needs non-empty histories")
    t = int(lengths.max())
    idx = np.zeros((len(kept), t), dtype=np.int64)
    seq_id = np.full((len(kept), t), -1, dtype=np.int64)
    for row, h in enumerate(kept):
        idx[row, : len(h)] = h
        seq_id[row, : len(h)] = 0
    pos = np.broadcast_to(np.arange(t), idx.shape).copy()
    return (
        torch.from_numpy(idx),
        torch.from_numpy(pos),
        torch.from_numpy(seq_id),
        torch.from_numpy(lengths - 1),
    )


def load_scorer(folder: Path, dtype: torch.dtype = torch.float32) -> Scorer:
    """Rebuild the scorer of any trained model folder from its config.json.

    The config's "model" field names the family; each family stores its tensors in
    the folder's safetensors file.
    """
    from nanorec import baselines, checkpoint

    config = checkpoint.load_config(folder)
    family = config.get("model")
    if family == "transformer":
        return TransformerScorer(checkpoint.load_transformer(folder), dtype)
    if family in baselines.FAMILIES:
        return baselines.load_scorer(family, config, checkpoint.load_tensors(folder))
    raise ValueError(f"{folder}: unknown model family {family!r} in config.json")


def _autocast(dtype: torch.dtype, device_type: str = "cpu") -> torch.autocast:
    return torch.autocast(
        device_type, dtype=torch.bfloat16, enabled=dtype == torch.bfloat16
    )
