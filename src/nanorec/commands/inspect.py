"""`nanorec inspect`: what the ingested data looks like, as text and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def main(
    ingested: Annotated[Path, typer.Option(help="ingest output folder")] = Path(
        "data/ingest"
    ),
    vectors: Annotated[
        Path,
        typer.Option(
            help="content-vector Parquet file of the siglip_embed stage; "
            "skipped when missing"
        ),
    ] = Path("data/embed/item_vectors.parquet"),
    out: Annotated[
        Path, typer.Option(help="folder for summary.txt, summary.json and the PNGs")
    ] = Path("plots/inspect"),
    title: Annotated[
        str | None,
        typer.Option(help="data set name for the overview plot [default: --ingested]"),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="print the summary as JSON instead of text")
    ] = False,
) -> None:
    """Summarize the ingested data as text and PNG plots.

    Counts users, items and interactions, and shows history lengths, item
    popularity, and metadata and content-vector coverage. Prints the summary and
    writes it with overview.png, sequence_lengths.png, item_popularity.png and
    coverage.png into --out.
    """
    from nanorec import inspect

    try:
        summary = inspect.summarize(ingested, vectors)
    except FileNotFoundError as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(1) from err
    written = inspect.write_report(summary, out, title)

    if json_output:
        typer.echo(json.dumps(inspect.summary_dict(summary), indent=2))
    else:
        typer.echo(inspect.format_summary(summary))
        typer.echo(f"Wrote {', '.join(p.name for p in written)} to {out}")
