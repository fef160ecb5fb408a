"""Train stage: fit the model family of train.model on the ingested data."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pyarrow.parquet as pq
import typer

from dvclive import Live
from nanorec import checkpoint, data, distributed, fitting, packing, resume
from nanorec.io import write_json
from nanorec.logs import run, setup_logging
from nanorec.params import load_section, load_seed
from nanorec.training import MetricLogger

app = typer.Typer(add_completion=False)
logger = logging.getLogger("stages.train")


@contextlib.contextmanager
def metric_logger(live_dir: Path, enabled: bool) -> Iterator[MetricLogger | None]:
    """Log scalars to dvclive under live_dir, or nowhere when not enabled."""
    if not enabled:
        yield None
        return
    with Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None) as live:

        def log_metric(name: str, value: float, step: int) -> None:
            live.step = step
            live.log_metric(name, value)

        yield log_metric


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest output folder")] = Path(
        "data/ingest"
    ),
    packed: Annotated[Path, typer.Option(help="packed rows")] = Path(
        "data/pack/train.parquet"
    ),
    vectors: Annotated[Path, typer.Option(help="item content vectors")] = Path(
        "data/embed/item_vectors.parquet"
    ),
    out: Annotated[Path, typer.Option(help="model folder")] = Path("data/model"),
    metrics: Annotated[Path, typer.Option(help="JSON of training results")] = Path(
        "metrics/train.json"
    ),
    live_dir: Annotated[Path, typer.Option(help="dvclive folder")] = Path(
        "dvclive/train"
    ),
    checkpoints: Annotated[
        Path, typer.Option(help="resumable training checkpoints (kept across runs)")
    ] = Path("data/checkpoints/train"),
    params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml"),
) -> None:
    """Train the model family of train.model, scoring validation users."""
    setup_logging()
    cfg = load_section(params, "train")
    seed = load_seed(params)
    artifacts = data.load(ingested)
    evaluate = fitting.validation_evaluator(artifacts, cfg.eval_users, seed)
    # Under torchrun every rank trains, but only rank 0 logs and writes outputs.
    is_main = distributed.from_env().is_main
    with metric_logger(live_dir, is_main) as log_metric:
        fitted = fitting.fit_model(
            cfg,
            artifacts,
            packing.read_rows(pq.read_table(packed)),
            vectors,
            load_section(params, "pack").block_size,
            seed,
            load_section(params, "split").train_on_validation,
            evaluate,
            log_metric,
            checkpoints,
        )
    if not is_main:
        return
    checkpoint.save(out, fitted.family, fitted.tensors, fitted.meta)
    write_json(fitted.summary, metrics)
    # The model is saved, so the checkpoints are deleted. DVC expects the empty
    # folder to exist.
    resume.clear(checkpoints)
    logger.info("training summary %s", json.dumps(fitted.summary))


if __name__ == "__main__":
    run(app)
