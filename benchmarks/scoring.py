"""Scoring throughput: oneshot top-10 over the whole catalog for every test user.

Scores the test users of an ingest folder from their full histories, with seen
items excluded, through `nanorec.recommend.recommend` as the predict stage does.
It times the transformer at each size in bfloat16 and float32 autocast, and SVD.
Speed does not depend on the weights, so the transformers are freshly
initialised. SVD is fitted on the training pairs first, and the fit time is
reported apart.

Example (real Beauty data after the ingest stage):

    python benchmarks/scoring.py --ingested data/ingest
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from common import load_average
from perf import (
    SIZES,
    append_json,
    build_model,
    machine,
    peak_rss_mib,
)

from nanorec import baselines, data
from nanorec.params import TrainParams
from nanorec.recommend import Scorer, TransformerScorer, popularity, recommend

app = typer.Typer(add_completion=False)


def score_all(
    scorer: Scorer, histories: data.Histories, popular: np.ndarray, batch_size: int
) -> dict:
    """Top-10 of every user; wall time, users/s and the load around it."""
    load_before = load_average()
    start = time.perf_counter()
    top = recommend(
        scorer, histories.users, histories.sequences, 10, popular, True, batch_size
    )
    seconds = time.perf_counter() - start
    assert top.shape == (len(histories), 10)
    return {
        "n_users": len(histories),
        "seconds": round(seconds, 2),
        "users_per_s": round(len(histories) / seconds),
        "load_before": load_before,
        "load_after": load_average(),
    }


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest stage output folder")],
    size: Annotated[
        list[str], typer.Option(help=f"transformer size, one of {sorted(SIZES)}")
    ] = ["default", "original"],  # noqa: B006 - Typer needs a literal default
    dtype: Annotated[
        list[str], typer.Option(help="transformer autocast: bfloat16 or float32")
    ] = ["bfloat16", "float32"],  # noqa: B006
    svd: Annotated[bool, typer.Option(help="also fit and score SVD")] = True,
    svd_factors: Annotated[int, typer.Option(help="SVD factors")] = 64,
    block_size: Annotated[int, typer.Option(help="transformer context")] = 32,
    batch_size: Annotated[int, typer.Option(help="users per scorer call")] = 1024,
    threads: Annotated[
        int, typer.Option(help="torch threads; 0 keeps torch's default")
    ] = 0,
    results: Annotated[Path, typer.Option(help="JSON lines output")] = Path(
        "scoring.jsonl"
    ),
) -> None:
    """Time top-10 scoring of every test user for each model."""
    if threads:
        torch.set_num_threads(threads)
    artifacts = data.load(ingested)
    histories = data.test_histories(artifacts)
    popular = popularity(
        artifacts.interactions["item_idx"].to_numpy(), artifacts.n_items
    )
    host = machine()
    common = {
        "benchmark": "scoring",
        "n_items": artifacts.n_items,
        "batch_size": batch_size,
    }

    for model_size in size:
        model = build_model(artifacts.n_items, model_size, block_size, None).eval()
        for name in dtype:
            scorer = TransformerScorer(model, getattr(torch, name))
            row = {"model": f"transformer-{model_size}", "dtype": name}
            row.update(score_all(scorer, histories, popular, batch_size))
            append_json(
                {**common, **row, "peak_rss_mib": peak_rss_mib(), **host}, results
            )

    if svd:
        users, items = baselines.training_pairs(artifacts, train_on_validation=False)
        params = replace(TrainParams(), model="svd", svd_factors=svd_factors)
        start = time.perf_counter()
        fitted = baselines.fit_svd(users, items, artifacts.n_items, params, seed=0)
        fit_seconds = round(time.perf_counter() - start, 2)
        scorer = baselines.load_scorer("svd", fitted.meta, fitted.tensors)
        row = {"model": f"svd-{svd_factors}", "dtype": "float32"}
        row.update(score_all(scorer, histories, popular, batch_size))
        row["fit_seconds"] = fit_seconds
        append_json({**common, **row, "peak_rss_mib": peak_rss_mib(), **host}, results)


if __name__ == "__main__":
    app()
