"""Model fitting for the train stage, between reading its inputs and saving.

`validation_evaluator` scores a fixed sample of validation users, the same way
for every model family. `fit_transformer` builds the packed GPT from the train
params and trains it, resuming a checkpoint of the same run if one exists.
`fit_model` dispatches on train.model and returns what the model folder and the
metrics file should hold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from nanorec import baselines, checkpoint, data, embed, resume
from nanorec.logs import peak_rss_mib
from nanorec.metrics import ranking_metrics
from nanorec.models.gpt import GPT, GPTConfig
from nanorec.packing import PackedRows
from nanorec.params import TrainParams, as_dict
from nanorec.recommend import Scorer, TransformerScorer, popularity, recommend
from nanorec.training import (
    Checkpointing,
    MetricLogger,
    TrainResult,
    seed_everything,
    train,
)

logger = logging.getLogger(__name__)

# Takes a scorer and returns its validation MAP@10, HR@10 and NDCG@10.
ScorerEvaluator = Callable[[Scorer], dict]


@dataclass
class FitOutput:
    """A fitted model as the train stage writes it."""

    family: str
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]  # config entries, deterministic for fixed params and data
    summary: dict[str, Any]  # metrics file: wall times, throughput, best scores


def validation_evaluator(
    artifacts: data.Artifacts, eval_users: int, seed: int
) -> ScorerEvaluator:
    """Return a function that scores a fixed sample of validation users.

    The sample (eval_users users, 0 for all) depends on the seed alone, so every
    evaluation of a run, and every run with the same seed, scores the same users.
    Recommendations are oneshot top-10 with seen items excluded.
    """
    histories, targets = data.validation_histories(artifacts)
    histories, targets = data.sample_histories(histories, targets, eval_users, seed)
    popular = popularity(
        artifacts.interactions["item_idx"].to_numpy(), artifacts.n_items
    )

    def evaluate(scorer: Scorer) -> dict:
        topk = recommend(scorer, histories.users, histories.sequences, 10, popular)
        return ranking_metrics(topk, targets, 10)

    return evaluate


def build_transformer(
    params: TrainParams,
    n_items: int,
    block_size: int,
    content: torch.Tensor | None,
    seed: int,
) -> GPT:
    """Build the GPT that the train params describe, seeded."""
    config = GPTConfig(
        n_items=n_items,
        block_size=block_size,
        n_layer=params.n_layer,
        n_head=params.n_head,
        n_embd=params.n_embd,
        dropout=params.dropout,
        content_dim=0 if content is None else content.shape[1],
        attention=params.attention,
    )
    seed_everything(seed)
    return GPT(config, content)


def fit_transformer(
    params: TrainParams,
    artifacts: data.Artifacts,
    rows: PackedRows,
    vectors: Path,
    block_size: int,
    seed: int,
    evaluate: ScorerEvaluator | None,
    log_metric: MetricLogger | None,
    checkpoints: Path,
) -> tuple[GPT, TrainResult]:
    """Train the packed transformer and return it (best weights loaded) and the run.

    A checkpoint under `checkpoints` is resumed only when it was written by a run
    with the same params, seed, packed rows and content vectors.
    """
    content = None
    if params.siglip:
        content = torch.from_numpy(
            embed.read_vectors(pq.read_table(vectors), artifacts.n_items)
        )
    model = build_transformer(params, artifacts.n_items, block_size, content, seed)
    run_id = resume.fingerprint(
        as_dict(params),
        seed,
        asdict(model.config),
        rows.idx,
        rows.targets,
        np.zeros(0) if content is None else content.numpy(),
    )
    saving = Checkpointing(checkpoints, params.checkpoint_interval, run_id)
    dtype = torch.bfloat16 if params.dtype == "bfloat16" else torch.float32

    def evaluate_model(trained: GPT) -> dict:
        return evaluate(TransformerScorer(trained, dtype))

    result = train(
        model,
        rows,
        params,
        seed,
        evaluate_model if evaluate is not None else None,
        log_metric,
        checkpointing=saving,
    )
    return model, result


def fit_model(
    params: TrainParams,
    artifacts: data.Artifacts,
    rows: PackedRows,
    vectors: Path,
    block_size: int,
    seed: int,
    train_on_validation: bool,
    evaluate: ScorerEvaluator | None,
    log_metric: MetricLogger | None,
    checkpoints: Path,
) -> FitOutput:
    """Fit the family of params.model and describe it for the model folder."""
    logger.info(
        "fitting %s on %d interactions", params.model, len(artifacts.interactions)
    )
    meta = {
        "train": as_dict(params),
        "seed": seed,
        "items_hash": checkpoint.items_hash(artifacts.items["item_id"].to_numpy()),
    }
    if params.model != "transformer":
        fitted = baselines.fit(
            params,
            artifacts,
            vectors,
            seed,
            train_on_validation,
            evaluate,
            log_metric,
        )
        summary = {**fitted.summary, "peak_rss_mib": peak_rss_mib()}
        return FitOutput(params.model, fitted.tensors, {**meta, **fitted.meta}, summary)

    model, result = fit_transformer(
        params,
        artifacts,
        rows,
        vectors,
        block_size,
        seed,
        evaluate,
        log_metric,
        checkpoints,
    )
    best = {f"val_{k}": v for k, v in result.best_metrics.items()}
    # Wall times go to the summary only, so that two runs of the same params
    # write identical model folders.
    meta = {**meta, "step": result.step, **best, "gpt": asdict(model.config)}
    summary = {
        "step": result.step,
        "final_loss": result.losses[-1],
        "train_seconds": result.seconds,
        "target_tokens_per_second": result.target_tokens / max(result.seconds, 1e-9),
        "resumed_from_step": result.resumed_from,
        "peak_rss_mib": peak_rss_mib(),
        **best,
    }
    return FitOutput("transformer", model.state_dict(), meta, summary)
