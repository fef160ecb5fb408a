"""Predict stage: validation metrics and the challenge submission."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from nanorec import data
from nanorec.io import atomic_path, write_json
from nanorec.logs import setup_logging
from nanorec.metrics import ranking_metrics
from nanorec.params import load_section
from nanorec.recommend import (
    GenerativeScorer,
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

    def top(histories: data.Histories) -> np.ndarray:
        return recommend(
            scorer,
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
    results = ranking_metrics(top(histories), targets, 10)
    results["predict_seconds"] = time.perf_counter() - start

    tests = data.test_histories(artifacts)
    frame = data.write_submission_frame(tests.users, top(tests), artifacts.items)
    with atomic_path(submission) as tmp:
        frame.to_csv(tmp, index=False)
    results["n_test_users"] = len(frame)
    write_json(results, metrics)
    logger.info("validation %s", results)


if __name__ == "__main__":
    app()
