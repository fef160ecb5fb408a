"""Content-vector stage: one frozen vector per item, from its text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import typer

from nanorec import data, embed
from nanorec.io import atomic_path, write_json
from nanorec.logs import setup_logging
from nanorec.params import load_section

app = typer.Typer(add_completion=False)


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest output folder")] = Path(
        "data/ingest"
    ),
    out: Annotated[Path, typer.Option(help="Parquet of item vectors")] = Path(
        "data/embed/item_vectors.parquet"
    ),
    metrics: Annotated[Path, typer.Option(help="JSON of coverage counts")] = Path(
        "metrics/embed.json"
    ),
    params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml"),
) -> None:
    """Encode title + store + categories of every item; no text gives a zero row."""
    setup_logging()
    cfg = load_section(params, "siglip_embed")
    items = pd.read_parquet(ingested / data.ITEMS)
    texts = embed.item_texts(items)

    if cfg.encoder == "none":
        vectors = np.zeros((len(items), 1), dtype=np.float32)
        source = ["none"] * len(items)
        name = "none"
    else:
        vectors, name = embed.encode_texts(texts, cfg.batch_size)
        source = ["text" if t else "none" for t in texts]

    with atomic_path(out) as tmp:
        pq.write_table(embed.vectors_table(items, vectors, source), tmp)
    write_json(
        {
            "encoder": name,
            "dim": int(vectors.shape[1]),
            "n_items": len(items),
            "n_text": source.count("text"),
            "n_none": source.count("none"),
        },
        metrics,
    )


if __name__ == "__main__":
    app()
