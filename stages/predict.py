"""Predict stage: validation metrics and the challenge submission."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from nanorec import data
from nanorec.blend import BlendScorer, CooccurrenceScorer
from nanorec.io import atomic_path, write_json
from nanorec.logs import peak_rss_mib, run, setup_logging
from nanorec.metrics import ranking_metrics
from nanorec.params import PredictParams, load_section
from nanorec.recommend import (
    GenerativeScorer,
    Scorer,
    TransformerScorer,
    load_scorer,
    popularity,
    recommend,
)

app = typer.Typer(add_completion=False)
logger = logging.getLogger("stages.predict")


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest output folder")] = Path(
        "data/ingest"
    ),
    model_dir: Annotated[Path, typer.Option(help="model folder")] = Path("data/model"),
    submission: Annotated[Path, typer.Option(help="submission CSV")] = Path(
        "data/submission.csv"
    ),
    metrics: Annotated[Path, typer.Option(help="JSON of validation metrics")] = Path(
        "metrics/predict.json"
    ),
    params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml"),
    raw_ids: Annotated[
        bool,
        typer.Option(
            "--raw-ids",
            help="write the input's raw user and item ids (users.parquet, "
            "items.raw_item_id) instead of the encoded integer ids",
        ),
    ] = False,
) -> None:
    """Score every validation user and every test user; write metrics and CSV."""
    setup_logging()
    cfg = load_section(params, "predict")
    artifacts = data.load(ingested)
    popular = popularity(
        artifacts.interactions["item_idx"].to_numpy(), artifacts.n_items
    )
    scorer = load_scorer(model_dir)
    if cfg.strategy == "generative":
        if not isinstance(scorer, TransformerScorer):
            raise typer.BadParameter(
                "predict.strategy=generative needs a transformer model, "
                f"but {model_dir} holds another family"
            )
        scorer = GenerativeScorer(scorer, cfg.k, cfg.exclude_seen)

    def top(histories: data.Histories, split: str) -> np.ndarray:
        return recommend(
            blended(scorer, artifacts, cfg, split),
            histories.users,
            histories.sequences,
            cfg.k,
            popular,
            cfg.exclude_seen,
            cfg.batch_size,
            progress=True,
        )

    start = time.perf_counter()
    histories, targets = data.validation_histories(artifacts)
    results = ranking_metrics(top(histories, "validation"), targets, 10)
    results["predict_seconds"] = time.perf_counter() - start

    tests = data.test_histories(artifacts)
    raw_users = pd.read_parquet(ingested / data.USERS) if raw_ids else None
    frame = data.write_submission_frame(
        tests.users, top(tests, "test"), artifacts.items, raw_users
    )
    with atomic_path(submission) as tmp:
        frame.to_csv(tmp, index=False)
    results["n_test_users"] = len(frame)
    results["peak_rss_mib"] = peak_rss_mib()
    write_json(results, metrics)
    logger.info("validation %s", results)


def blended(
    scorer: Scorer, artifacts: data.Artifacts, cfg: PredictParams, split: str
) -> Scorer:
    """Blend the model with co-occurrence counts when predict.blend_weight > 0.

    Counts come from what each split may see: validation users from the rows
    before their held-out items, test users from every train.csv row.
    """
    if cfg.blend_weight <= 0:
        return scorer
    if not isinstance(scorer, TransformerScorer):
        raise typer.BadParameter(
            "predict.blend_weight > 0 needs the transformer's oneshot logits; set it "
            "to 0 for other families or for predict.strategy=generative"
        )
    sequences = data.training_sequences(artifacts, split == "test")
    counts = CooccurrenceScorer.fit(
        sequences, artifacts.n_items, cfg.blend_window, cfg.blend_last_n
    )
    return BlendScorer(scorer, counts, cfg.blend_weight)


if __name__ == "__main__":
    run(app)
