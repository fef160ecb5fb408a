"""Training throughput in real (non-padding) target tokens per second.

Trains each model size through `nanorec.training.train` on the same histories in
two layouts: packed rows, as the pack stage writes them, and one padded window
per row. Both layouts run the same number of steps with the same rows per step.
Variants change train params (dtype, compile, fused_adamw, attention) to measure
each switch. Throughput counts only the steps after the warm-up steps, so that
compilation and first calls are left out; their time is reported as warmup_s.

Example (real Beauty data, after the ingest, siglip_embed and pack stages):

    python benchmarks/train_speed.py --ingested data/ingest \\
        --vectors data/embed/item_vectors.parquet --size original --size default \\
        --variant bf16: --variant fp32:dtype=float32
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
import yaml
from common import load_average
from perf import (
    SIZES,
    append_json,
    build_model,
    machine,
    padded_rows,
    peak_rss_mib,
    read_content,
    train_params,
    training_sequences,
)

from nanorec import packing
from nanorec.params import TrainParams
from nanorec.training import DataOrder, train

app = typer.Typer(add_completion=False)


def parse_variant(spec: str) -> tuple[str, dict]:
    """Read NAME:key=value,key=value into a name and TrainParams overrides."""
    name, _, rest = spec.partition(":")
    known = {f.name for f in fields(TrainParams)}
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in known:
            raise typer.BadParameter(f"variant {name}: {key} is not a train param")
        overrides[key] = yaml.safe_load(value)
    return name, overrides


def measure(
    rows: packing.PackedRows,
    content: torch.Tensor | None,
    n_items: int,
    size: str,
    overrides: dict,
    steps: int,
    warmup: int,
    batch_size: int,
) -> dict:
    """Train for steps and return throughput over the steps after warmup."""
    params = train_params(size, max_steps=steps, batch_size=batch_size, **overrides)
    model = build_model(
        n_items,
        size,
        rows.idx.shape[1],
        content,
        params.dropout,
        params.attention,
    )
    stamps: dict[int, float] = {}

    def stamp(name: str, value: float, step: int) -> None:
        if name == "train/loss":
            stamps[step] = time.perf_counter()

    start = time.perf_counter()
    load_before = load_average()
    train(model, rows, params, seed=0, log_metric=stamp, progress=False)
    load_after = load_average()

    order = DataOrder(len(rows.idx), batch_size, seed=0)
    tokens = np.array(
        [int((rows.targets[order.batch(s)] != -1).sum()) for s in range(steps)]
    )
    timed_seconds = stamps[steps - 1] - stamps[warmup - 1]
    timed_tokens = int(tokens[warmup:].sum())
    return {
        "tokens_per_s": round(timed_tokens / timed_seconds),
        "step_ms": round(1000 * timed_seconds / (steps - warmup), 1),
        "targets_per_step": round(float(tokens.mean()), 1),
        "warmup_s": round(stamps[warmup - 1] - start, 2),
        "load_before": load_before,
        "load_after": load_after,
    }


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest stage output folder")],
    vectors: Annotated[
        Path | None, typer.Option(help="item vectors Parquet; none: no content")
    ] = None,
    size: Annotated[
        list[str], typer.Option(help=f"model size, one of {sorted(SIZES)}")
    ] = ["original", "default"],  # noqa: B006 - Typer needs a literal default
    layout: Annotated[
        list[str], typer.Option(help="row layout: packed (pack stage) or padded")
    ] = ["packed", "padded"],  # noqa: B006
    variant: Annotated[
        list[str], typer.Option(help="NAME:key=value,... train param overrides")
    ] = ["bf16:"],  # noqa: B006
    steps: Annotated[int, typer.Option(help="optimizer steps per case")] = 40,
    warmup: Annotated[int, typer.Option(help="first steps left out of timing")] = 5,
    batch_size: Annotated[int, typer.Option(help="rows per step")] = 128,
    block_size: Annotated[int, typer.Option(help="tokens per row")] = 32,
    threads: Annotated[
        int, typer.Option(help="torch threads; 0 keeps torch's default")
    ] = 0,
    results: Annotated[Path, typer.Option(help="JSON lines output")] = Path(
        "train_speed.jsonl"
    ),
) -> None:
    """Measure training tokens/s for every size x layout x variant."""
    if not 0 < warmup < steps:
        raise typer.BadParameter(f"--warmup={warmup} must be in [1, --steps)")
    if threads:
        torch.set_num_threads(threads)
    artifacts, sequences = training_sequences(ingested)
    content = read_content(vectors, artifacts.n_items)
    layouts = {
        "packed": lambda: packing.pack(sequences, block_size),
        "padded": lambda: padded_rows(sequences, block_size),
    }
    host = machine()
    for name in layout:
        rows = layouts[name]()
        for model_size in size:
            for spec in variant:
                label, overrides = parse_variant(spec)
                result = measure(
                    rows,
                    content,
                    artifacts.n_items,
                    model_size,
                    overrides,
                    steps,
                    warmup,
                    batch_size,
                )
                row = {
                    "benchmark": "train_speed",
                    "size": model_size,
                    "layout": name,
                    "variant": label,
                    "overrides": overrides,
                    "n_items": artifacts.n_items,
                    "batch_size": batch_size,
                    "steps": steps,
                    "warmup": warmup,
                    "efficiency": round(rows.efficiency, 4),
                    **result,
                    "peak_rss_mib": peak_rss_mib(),
                    **host,
                }
                append_json(row, results)


if __name__ == "__main__":
    app()
