"""Ingest stage: read the input (or generate the synthetic shop) into Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nanorec import data, ingest, synthetic
from nanorec.io import write_json, write_parquet
from nanorec.logs import setup_logging
from nanorec.params import load_section, load_seed

app = typer.Typer(add_completion=False)


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="folder for the Parquet tables")] = Path(
        "data/ingest"
    ),
    metrics: Annotated[Path, typer.Option(help="JSON of input statistics")] = Path(
        "metrics/ingest.json"
    ),
    params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml"),
) -> None:
    """Read train/test/item files, order histories and cut the validation split."""
    setup_logging()
    cfg = load_section(params, "ingest")
    if cfg.format == "synthetic":
        raw = synthetic.generate(
            cfg.synthetic_users, cfg.synthetic_items, seed=load_seed(params)
        )
    else:
        raw = ingest.read_challenge(Path(cfg.path))
    dataset = ingest.normalise(raw)

    write_parquet(dataset.interactions, out / data.INTERACTIONS)
    write_parquet(dataset.items, out / data.ITEMS)
    write_parquet(dataset.split, out / data.SPLIT)
    write_parquet(dataset.test_users, out / data.TEST_USERS)
    write_json(dataset.stats, metrics)


if __name__ == "__main__":
    app()
