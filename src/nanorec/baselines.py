"""Fitting and loading of the model families other than the transformer.

`fit` turns the ingest artifacts into the tensors of one family (svd, siglip_knn or
lightgcn) and `load_scorer` rebuilds that family's scorer from a model folder's
tensors and config, so the predict stage scores every family the same way.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from nanorec import embed
from nanorec.data import Artifacts
from nanorec.models import knn, lightgcn, svd
from nanorec.params import ParamError, TrainParams
from nanorec.recommend import Scorer

logger = logging.getLogger(__name__)

FAMILIES = ("svd", "siglip_knn", "lightgcn")

# Called with a scorer; returns validation metrics including "map@10".
Evaluator = Callable[[Scorer], dict]
# Called with (name, value, step) for every logged scalar.
MetricLogger = Callable[[str, float, int], None]


@dataclass
class Fitted:
    """A fitted family: its tensors, config entries and training summary.

    meta holds only deterministic facts because it goes into config.json. summary
    adds the wall time and goes into the train stage's metrics file.
    """

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


def training_pairs(
    artifacts: Artifacts, train_on_validation: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Return the training interactions as aligned (user_id, item_idx) arrays.

    Each validation user's last interaction is its validation item, which is left
    out unless train_on_validation is true. data.training_sequences applies the
    same rule to the transformer's training rows.

    Returns:
        (user_id, item_idx) int64 arrays sorted by user_id, then position.
    """
    frame = artifacts.interactions.sort_values(["user_id", "position"], kind="stable")
    if not train_on_validation and len(artifacts.split):
        last = (
            frame.groupby("user_id")["position"].transform("max") == frame["position"]
        )
        frame = frame[~(last & frame["user_id"].isin(artifacts.split["user_id"]))]
    return (
        frame["user_id"].to_numpy(dtype=np.int64),
        frame["item_idx"].to_numpy(dtype=np.int64),
    )


def fit(
    params: TrainParams,
    artifacts: Artifacts,
    vectors: Path,
    seed: int,
    train_on_validation: bool,
    evaluate: Evaluator | None = None,
    log_metric: MetricLogger | None = None,
    progress: bool = True,
) -> Fitted:
    """Fit the family named by params.model.

    Args:
        params: the train section; params.model is one of FAMILIES.
        artifacts: the ingest stage's tables.
        vectors: the item content vectors Parquet (read by siglip_knn only).
        seed: seeds the SVD start vector and LightGCN's initialisation and batches.
        train_on_validation: also fit on each user's validation item.
        evaluate: validation scorer; its metrics land in the summary, and
            LightGCN uses it to keep its best step when params.keep_best.
        log_metric: receives the validation metrics, and LightGCN's loss.
        progress: show a progress bar while LightGCN trains.

    Returns:
        The fitted tensors, config entries and summary.
    """
    users, items = training_pairs(artifacts, train_on_validation)
    if len(users) == 0:
        raise ParamError(
            "no training interactions: every user has only a validation item; "
            "set split.train_on_validation=true or ingest more data"
        )
    log = log_metric or (lambda name, value, step: None)
    start = time.perf_counter()
    if params.model == "svd":
        fitted = fit_svd(users, items, artifacts.n_items, params, seed)
    elif params.model == "siglip_knn":
        fitted = fit_knn(items, artifacts.n_items, vectors, params)
    elif params.model == "lightgcn":
        fitted = fit_lightgcn(
            users, items, artifacts.n_items, params, seed, evaluate, log, progress
        )
    else:
        raise ParamError(f"train.model={params.model!r} is not one of {FAMILIES}")
    seconds = time.perf_counter() - start

    fitted.meta["train_on_validation"] = train_on_validation
    fitted.meta["n_train_interactions"] = len(users)
    if evaluate is not None and "val_map@10" not in fitted.summary:
        scorer = load_scorer(params.model, fitted.meta, fitted.tensors)
        metrics = evaluate(scorer)
        for name, value in metrics.items():
            if name != "n_users":
                log(f"val/{name}", value, 0)
        fitted.meta.update({f"val_{k}": v for k, v in metrics.items()})
        fitted.summary.update({f"val_{k}": v for k, v in metrics.items()})
    fitted.summary["train_seconds"] = seconds
    return fitted


def fit_svd(
    users: np.ndarray, items: np.ndarray, n_items: int, params: TrainParams, seed: int
) -> Fitted:
    """Compute PureSVD item factors of the pairs' binary user-item matrix."""
    cuts = np.flatnonzero(users[1:] != users[:-1]) + 1
    matrix = svd.history_matrix(np.split(items, cuts), n_items)
    n_factors = params.svd_factors
    limit = min(matrix.shape) - 1
    if n_factors > limit:
        logger.warning(
            "train.svd_factors=%d exceeds the rank limit %d of a %d x %d matrix; "
            "using %d",
            n_factors,
            limit,
            *matrix.shape,
            limit,
        )
        n_factors = limit
    factors = svd.fit_item_factors(matrix, n_factors, seed)
    logger.info("svd: %d factors of a %d x %d matrix", n_factors, *matrix.shape)
    return Fitted(
        {"item_factors": torch.from_numpy(factors)}, {"svd": {"n_factors": n_factors}}
    )


def fit_knn(
    items: np.ndarray, n_items: int, vectors: Path, params: TrainParams
) -> Fitted:
    """Read and normalise the content vectors, and rank the popularity fallback."""
    if not Path(vectors).exists():
        raise FileNotFoundError(
            f"{vectors} does not exist: run the siglip_embed stage first"
        )
    matrix = embed.read_vectors(pq.read_table(vectors), n_items)
    covered = int((np.linalg.norm(matrix[1:], axis=1) > 0).sum())
    if covered == 0:
        raise ParamError(
            f"train.model=siglip_knn needs item content vectors, but every vector "
            f"in {vectors} is zero (siglip_embed.encoder=none?): set "
            "siglip_embed.encoder to an encoder"
        )
    logger.info("siglip_knn: %d of %d items have a content vector", covered, n_items)
    counts = np.bincount(items, minlength=n_items + 1)
    counts[0] = -1
    tensors = {
        "vectors": torch.from_numpy(knn.normalise_rows(matrix)),
        "floor": torch.from_numpy(knn.popularity_floor(counts)),
    }
    meta = {
        "knn": {
            "last_n": params.knn_last_n,
            "n_neighbours": params.knn_neighbours,
            "n_with_vector": covered,
        }
    }
    return Fitted(tensors, meta)


def fit_lightgcn(
    users: np.ndarray,
    items: np.ndarray,
    n_items: int,
    params: TrainParams,
    seed: int,
    evaluate: Evaluator | None = None,
    log_metric: MetricLogger | None = None,
    progress: bool = True,
) -> Fitted:
    """Train LightGCN with BPR on the pairs' graph; keep the best step if asked.

    Each step propagates the whole graph, draws lightgcn_batch_size training
    pairs (a fresh permutation each epoch) with one uniform negative item each,
    and takes an Adam step on the BPR loss. The validation evaluator runs every
    eval_interval steps and at the end.
    """
    user_ids, user_rows = np.unique(users, return_inverse=True)
    graph = lightgcn.build_graph(user_rows, items, len(user_ids), n_items)
    torch.manual_seed(seed)
    model = lightgcn.LightGCN(
        graph.n_nodes, params.lightgcn_dim, params.lightgcn_layers
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lightgcn_lr)
    generator = torch.Generator().manual_seed(seed)
    n_pairs = len(graph.users)
    log = log_metric or (lambda name, value, step: None)
    logger.info(
        "lightgcn: %d users, %d items, %d edges", len(user_ids), n_items, n_pairs
    )

    best_map, best_step, best_tables, best_metrics = -1.0, 0, {}, {}
    losses: list[float] = []
    order = torch.randperm(n_pairs, generator=generator)
    cursor = 0
    bar = tqdm(range(params.lightgcn_steps), desc="lightgcn", disable=not progress)
    for step in bar:
        if cursor >= n_pairs:
            order, cursor = torch.randperm(n_pairs, generator=generator), 0
        batch = order[cursor : cursor + params.lightgcn_batch_size]
        cursor += params.lightgcn_batch_size
        negatives = lightgcn.sample_negatives(graph, batch, generator)

        model.train()
        loss = lightgcn.bpr_loss(
            model, graph, batch, negatives, params.lightgcn_lambda_reg
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        log("train/loss", losses[-1], step)

        last = step + 1 == params.lightgcn_steps
        due = params.eval_interval and (step + 1) % params.eval_interval == 0
        if evaluate is None or not (last or due):
            continue
        model.eval()
        tables = lightgcn.fold_in_tables(model, graph)
        metrics = evaluate(_lightgcn_scorer(user_ids, tables))
        for name, value in metrics.items():
            if name != "n_users":
                log(f"val/{name}", value, step)
        logger.info("lightgcn step %d loss %.4f val %s", step + 1, losses[-1], metrics)
        if not params.keep_best or metrics["map@10"] > best_map:
            best_map, best_step = metrics["map@10"], step + 1
            best_tables, best_metrics = copy.deepcopy(tables), metrics

    if not best_tables:
        model.eval()
        best_tables, best_step = lightgcn.fold_in_tables(model, graph), len(losses)
    tensors = {"user_ids": torch.from_numpy(user_ids), **best_tables}
    meta = {
        "lightgcn": {
            "dim": params.lightgcn_dim,
            "layers": params.lightgcn_layers,
            "n_edges": n_pairs,
        },
        "step": best_step,
        **{f"val_{k}": v for k, v in best_metrics.items()},
    }
    summary = {
        "step": best_step,
        "final_loss": losses[-1],
        **{f"val_{k}": v for k, v in best_metrics.items()},
    }
    return Fitted(tensors, meta, summary)


def load_scorer(
    family: str, config: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> Scorer:
    """Rebuild the scorer of a fitted family from its config and tensors."""
    if family == "svd":
        return svd.SVDScorer(tensors["item_factors"])
    if family == "siglip_knn":
        return knn.ContentKnnScorer(
            tensors["vectors"].numpy(),
            tensors["floor"].numpy(),
            last_n=config["knn"]["last_n"],
            n_neighbours=config["knn"]["n_neighbours"],
        )
    if family == "lightgcn":
        return _lightgcn_scorer(tensors["user_ids"], tensors)
    raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def _lightgcn_scorer(
    user_ids: np.ndarray | torch.Tensor, tables: dict[str, torch.Tensor]
) -> lightgcn.LightGCNScorer:
    return lightgcn.LightGCNScorer(
        torch.as_tensor(user_ids),
        tables["user_base"],
        tables["item_fold"],
        tables["item_final"],
    )
