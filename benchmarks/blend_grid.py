"""Validation metrics of a trained model blended with co-occurrence, over a grid.

Loads one model folder (the train stage's output) and scores all validation
users with the model alone, with co-occurrence alone and with every blend of the
grid: weight x window x last_n, as `predict.blend_weight`, `predict.blend_window`
and `predict.blend_last_n` would. Training is not repeated, so a grid of blends
costs a few seconds per point. Prints one JSON line per point.

The co-occurrence counts come from the training histories without the
validation items, as in the predict stage's validation scoring.

Example (after a train stage on the Beauty data):

    python benchmarks/blend_grid.py --ingested data/ingest --model data/model \\
        --weight 0.3 --weight 0.4 --weight 0.5 --window 3 --last-n 3
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from nanorec import data
from nanorec.blend import BlendScorer, CooccurrenceScorer
from nanorec.metrics import ranking_metrics
from nanorec.recommend import Scorer, load_scorer, popularity, recommend

app = typer.Typer(add_completion=False)


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest output folder")],
    model: Annotated[Path, typer.Option(help="model folder of a transformer")],
    weight: Annotated[
        list[float], typer.Option(help="co-occurrence weight (repeatable)")
    ] = [0.3, 0.4, 0.5],  # noqa: B006 - Typer needs a literal default
    window: Annotated[
        list[int], typer.Option(help="co-occurrence window (repeatable)")
    ] = [3],  # noqa: B006
    last_n: Annotated[
        list[int], typer.Option(help="recent items that query (repeatable)")
    ] = [3],  # noqa: B006
) -> None:
    """Print validation MAP@10, HR@10 and NDCG@10 for each point of the grid."""
    artifacts = data.load(ingested)
    histories, targets = data.validation_histories(artifacts)
    popular = popularity(
        artifacts.interactions["item_idx"].to_numpy(), artifacts.n_items
    )
    sequences = data.training_sequences(artifacts, train_on_validation=False)
    transformer = load_scorer(model)

    def report(name: str, scorer: Scorer, **point: float) -> None:
        start = time.perf_counter()
        topk = recommend(scorer, histories.users, histories.sequences, 10, popular)
        metrics = ranking_metrics(topk, targets, 10)
        seconds = round(time.perf_counter() - start, 2)
        print(json.dumps({"scorer": name, **point, **metrics, "seconds": seconds}))

    report("model", transformer)
    for size in window:
        for n in last_n:
            counts = CooccurrenceScorer.fit(sequences, artifacts.n_items, size, n)
            report("cooccurrence", counts, window=size, last_n=n)
            for w in weight:
                blended = BlendScorer(transformer, counts, w)
                report("blend", blended, weight=w, window=size, last_n=n)


if __name__ == "__main__":
    app()
