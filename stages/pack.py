"""Pack stage: training histories as packed rows of block_size tokens."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from nanorec import data, packing
from nanorec.io import write_json, write_parquet
from nanorec.logs import run, setup_logging
from nanorec.params import load_section

app = typer.Typer(add_completion=False)
logger = logging.getLogger("stages.pack")


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest output folder")] = Path(
        "data/ingest"
    ),
    out: Annotated[Path, typer.Option(help="Parquet of packed rows")] = Path(
        "data/pack/train.parquet"
    ),
    metrics: Annotated[Path, typer.Option(help="JSON of packing statistics")] = Path(
        "metrics/pack.json"
    ),
    params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml"),
) -> None:
    """Shift histories by one into (input, target) pairs and pack them."""
    setup_logging()
    cfg = load_section(params, "pack")
    split = load_section(params, "split")
    artifacts = data.load(ingested)
    sequences = data.training_sequences(artifacts, split.train_on_validation)
    rows = packing.pack(sequences, cfg.block_size)

    n_targets = int((rows.targets != packing.PAD_TARGET).sum())
    padded_rows = sum(len(packing.windows(s, cfg.block_size)) for s in sequences)
    stats = {
        "block_size": cfg.block_size,
        "n_sequences": len(sequences),
        "n_rows": int(len(rows.idx)),
        "n_targets": n_targets,
        "efficiency": rows.efficiency,
        "padded_efficiency": n_targets / max(1, padded_rows * cfg.block_size),
    }
    logger.info(
        "packed %d targets into %d rows: efficiency %.4f (padding per sequence: %.4f)",
        n_targets,
        stats["n_rows"],
        stats["efficiency"],
        stats["padded_efficiency"],
    )
    write_parquet(packing.rows_table(rows), out)
    write_json(stats, metrics)


if __name__ == "__main__":
    run(app)
