"""Train stage: fit the next-item model on the packed rows."""

from __future__ import annotations

import contextlib
import json
import logging
import resource
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow.parquet as pq
import torch
import typer

from dvclive import Live
from nanorec import baselines, checkpoint, data, distributed, embed, packing, resume
from nanorec.io import write_json
from nanorec.logs import run, setup_logging
from nanorec.metrics import ranking_metrics
from nanorec.models.gpt import GPT, GPTConfig
from nanorec.params import as_dict, load_section, load_seed
from nanorec.recommend import Scorer, TransformerScorer, popularity, recommend
from nanorec.training import Checkpointing, seed_everything, train

app = typer.Typer(add_completion=False)
logger = logging.getLogger("stages.train")


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
    block_size = load_section(params, "pack").block_size
    seed = load_seed(params)
    artifacts = data.load(ingested)
    rows = packing.read_rows(pq.read_table(packed))

    # Validation during training: a fixed sample of users, oneshot, seen excluded.
    histories, targets = data.validation_histories(artifacts)
    histories, targets = data.sample_histories(histories, targets, cfg.eval_users, seed)
    popular = popularity(
        artifacts.interactions["item_idx"].to_numpy(), artifacts.n_items
    )
    dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32

    if cfg.model != "transformer":

        def evaluate_scorer(scorer: Scorer) -> dict:
            topk = recommend(scorer, histories.users, histories.sequences, 10, popular)
            return ranking_metrics(topk, targets, 10)

        split = load_section(params, "split")
        with Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None) as live:

            def log_scalar(name: str, value: float, step: int) -> None:
                live.step = step
                live.log_metric(name, value)

            fitted = baselines.fit(
                cfg,
                artifacts,
                vectors,
                seed,
                split.train_on_validation,
                evaluate_scorer,
                log_scalar,
            )
        items_hash = checkpoint.items_hash(artifacts.items["item_id"].to_numpy())
        meta = {"train": as_dict(cfg), "seed": seed, "items_hash": items_hash}
        checkpoint.save(out, cfg.model, fitted.tensors, {**meta, **fitted.meta})
        summary = {**fitted.summary, "peak_rss_mib": _peak_rss_mib()}
        write_json(summary, metrics)
        resume.clear(checkpoints)  # DVC expects the (empty) checkpoint folder
        logger.info("training summary %s", json.dumps(summary))
        return

    def evaluate(model: GPT) -> dict:
        topk = recommend(
            TransformerScorer(model, dtype),
            histories.users,
            histories.sequences,
            10,
            popular,
        )
        return ranking_metrics(topk, targets, 10)

    content = None
    if cfg.siglip:
        content = torch.from_numpy(
            embed.read_vectors(pq.read_table(vectors), artifacts.n_items)
        )
    config = GPTConfig(
        n_items=artifacts.n_items,
        block_size=block_size,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        dropout=cfg.dropout,
        content_dim=0 if content is None else content.shape[1],
        attention=cfg.attention,
    )
    seed_everything(seed)
    model = GPT(config, content)

    # A checkpoint is resumed only by the run that wrote it: same params and data.
    run_id = resume.fingerprint(
        as_dict(cfg),
        seed,
        asdict(config),
        rows.idx,
        rows.targets,
        np.zeros(0) if content is None else content.numpy(),
    )
    saving = Checkpointing(checkpoints, cfg.checkpoint_interval, run_id)
    # Under torchrun every rank trains, but only rank 0 logs and writes outputs.
    is_main = distributed.from_env().is_main
    live = (
        Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
        if is_main
        else contextlib.nullcontext()
    )
    with live:

        def log_metric(name: str, value: float, step: int) -> None:
            live.step = step
            live.log_metric(name, value)

        result = train(
            model, rows, cfg, seed, evaluate, log_metric, checkpointing=saving
        )
    if not is_main:
        return

    # The model folder holds only deterministic facts, so two runs of the same
    # params give identical files; wall times go to the metrics file alone.
    best = {f"val_{k}": v for k, v in result.best_metrics.items()}
    checkpoint.save_transformer(
        out,
        model,
        {
            "train": as_dict(cfg),
            "seed": seed,
            "items_hash": checkpoint.items_hash(artifacts.items["item_id"].to_numpy()),
            "step": result.step,
            **best,
        },
    )
    summary = {
        "step": result.step,
        "final_loss": result.losses[-1],
        "train_seconds": result.seconds,
        "target_tokens_per_second": result.target_tokens / max(result.seconds, 1e-9),
        "resumed_from_step": result.resumed_from,
        "peak_rss_mib": _peak_rss_mib(),
        **best,
    }
    write_json(summary, metrics)
    resume.clear(checkpoints)
    logger.info("training summary %s", json.dumps(summary))


def _peak_rss_mib() -> float:
    # Peak resident memory of this process; Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    run(app)
