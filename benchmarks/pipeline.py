"""Time every stage of one pipeline run and print a Markdown report.

Runs ingest, siglip_embed, pack, train and predict as subprocesses, in that order,
into a work folder, recording each stage's wall time and peak resident memory,
then the packing efficiency and the validation metrics. The report goes to
stdout and, with --append, to the end of a Markdown file.

Example (the real Beauty data with the real-data recipe of variants.yaml):

    python benchmarks/pipeline.py --work /tmp/bench \\
        --set ingest.format=challenge \\
        --set ingest.path=../shared/data/amazon-beauty-2014-kaggle \\
        --set train.max_steps=3000
"""

from __future__ import annotations

import datetime
import json
import platform
import shlex
import sys
from pathlib import Path
from typing import Annotated

import torch
import typer
import yaml
from common import ROOT, apply_overrides, load_average, run_stage

app = typer.Typer(add_completion=False)


def stage_args(work: Path) -> dict[str, list[str]]:
    """Command-line paths of each stage inside the work folder."""
    w = {name: str(work / name) for name in ("ingest", "embed", "pack", "model")}
    return {
        "ingest": ["--out", w["ingest"], "--metrics", str(work / "ingest.json")],
        "siglip_embed": [
            "--ingested",
            w["ingest"],
            "--out",
            f"{w['embed']}/vectors.parquet",
            "--metrics",
            str(work / "embed.json"),
        ],
        "pack": [
            "--ingested",
            w["ingest"],
            "--out",
            f"{w['pack']}/train.parquet",
            "--metrics",
            str(work / "pack.json"),
        ],
        "train": [
            "--ingested",
            w["ingest"],
            "--packed",
            f"{w['pack']}/train.parquet",
            "--vectors",
            f"{w['embed']}/vectors.parquet",
            "--out",
            w["model"],
            "--metrics",
            str(work / "train.json"),
            "--live-dir",
            str(work / "live"),
            "--checkpoints",
            str(work / "checkpoints"),
        ],
        "predict": [
            "--ingested",
            w["ingest"],
            "--model-dir",
            w["model"],
            "--submission",
            str(work / "submission.csv"),
            "--metrics",
            str(work / "predict.json"),
        ],
    }


@app.command()
def main(
    work: Annotated[Path, typer.Option(help="folder for this run's outputs")],
    set_: Annotated[
        list[str], typer.Option("--set", help="params override, section.key=value")
    ] = [],  # noqa: B006 - Typer needs a literal default
    params: Annotated[Path, typer.Option(help="base params file")] = ROOT
    / "params.yaml",
    append: Annotated[
        Path | None, typer.Option(help="Markdown file to append the report to")
    ] = None,
) -> None:
    """Run the five stages once and report time, memory and metrics."""
    work.mkdir(parents=True, exist_ok=True)
    run_params = work / "params.yaml"
    merged = apply_overrides(yaml.safe_load(params.read_text()), set_)
    run_params.write_text(yaml.safe_dump(merged))

    rows = []
    for name, args in stage_args(work).items():
        load = load_average()
        result = run_stage(name, run_params, *args)
        rows.append((name, result["seconds"], result["peak_mib"], load))
        typer.echo(f"{name}: {result}", err=True)

    pack = json.loads((work / "pack.json").read_text())
    scored = json.loads((work / "predict.json").read_text())
    trained = json.loads((work / "train.json").read_text())
    command = "python benchmarks/pipeline.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}; "
        f"date {datetime.date.today().isoformat()}.",
        "",
        "| stage | wall time (s) | peak memory (MiB) | load average at start |",
        "|---|---|---|---|",
        *(f"| {n} | {s} | {m} | {la} |" for n, s, m, la in rows),
        "",
        f"Packing efficiency {pack['efficiency']:.4f} (padding each sequence to the "
        f"block: {pack['padded_efficiency']:.4f}); {pack['n_targets']} training "
        f"targets in {pack['n_rows']} rows of {pack['block_size']}.",
        "",
        f"Training: best step {trained['step']}, "
        f"{trained['target_tokens_per_second']:.0f} real target tokens/s.",
        "",
        f"Validation ({scored['n_users']} users): MAP@10 {scored['map@10']:.4f}, "
        f"HR@10 {scored['hr@10']:.4f}, NDCG@10 {scored['ndcg@10']:.4f}.",
        "",
    ]
    report = "\n".join(lines)
    typer.echo(report)
    if append is not None:
        with append.open("a") as handle:
            handle.write(report + "\n")


if __name__ == "__main__":
    app()
