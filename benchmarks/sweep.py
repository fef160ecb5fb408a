"""Run the train and predict stages for a list of param overrides; tabulate results.

Each experiment reuses one ingest, embed and pack output (prepared on first use
in the work folder) and gets its own model folder, so only train and predict
run per experiment. Results are appended as JSON lines, one per experiment,
with full-validation MAP@10, HR@10, NDCG@10 and the train stage's wall time.

Example (real Beauty data):

    python benchmarks/sweep.py --work /tmp/sweep \\
        --set ingest.format=challenge \\
        --set ingest.path=../shared/data/amazon-beauty-2014-kaggle \\
        --experiment "base:" \\
        --experiment "wide:train.n_embd=128"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml
from common import ROOT, apply_overrides, load_average, run_stage

app = typer.Typer(add_completion=False)


@app.command()
def main(
    work: Annotated[Path, typer.Option(help="folder for shared and per-run outputs")],
    experiment: Annotated[
        list[str], typer.Option(help="NAME:key=value,key=value (empty for base)")
    ],
    set_: Annotated[
        list[str], typer.Option("--set", help="override applied to every run")
    ] = [],  # noqa: B006 - Typer needs a literal default
    params: Annotated[Path, typer.Option(help="base params file")] = ROOT
    / "params.yaml",
    results: Annotated[Path, typer.Option(help="JSON lines output")] = Path(
        "sweep.jsonl"
    ),
) -> None:
    """Train and score each experiment; append one JSON line per run."""
    base = apply_overrides(yaml.safe_load(params.read_text()), set_)
    work.mkdir(parents=True, exist_ok=True)
    shared = work / "shared"
    base_file = work / "base-params.yaml"
    base_file.write_text(yaml.safe_dump(base))
    if not (shared / "pack.parquet").exists():
        run_stage(
            "ingest",
            base_file,
            "--out",
            str(shared / "ingest"),
            "--metrics",
            str(shared / "ingest.json"),
        )
        run_stage(
            "siglip_embed",
            base_file,
            "--ingested",
            str(shared / "ingest"),
            "--out",
            str(shared / "vectors.parquet"),
            "--metrics",
            str(shared / "embed.json"),
        )
        run_stage(
            "pack",
            base_file,
            "--ingested",
            str(shared / "ingest"),
            "--out",
            str(shared / "pack.parquet"),
            "--metrics",
            str(shared / "pack.json"),
        )

    for spec in experiment:
        name, _, rest = spec.partition(":")
        overrides = [item for item in rest.split(",") if item]
        run_dir = work / name
        run_file = run_dir / "params.yaml"
        run_dir.mkdir(parents=True, exist_ok=True)
        run_file.write_text(yaml.safe_dump(apply_overrides(base, overrides)))
        if any(o.startswith(("pack.", "split.")) for o in overrides):
            run_stage(
                "pack",
                run_file,
                "--ingested",
                str(shared / "ingest"),
                "--out",
                str(run_dir / "pack.parquet"),
                "--metrics",
                str(run_dir / "pack.json"),
            )
            packed = run_dir / "pack.parquet"
        else:
            packed = shared / "pack.parquet"
        trained_run = run_stage(
            "train",
            run_file,
            "--ingested",
            str(shared / "ingest"),
            "--packed",
            str(packed),
            "--vectors",
            str(shared / "vectors.parquet"),
            "--out",
            str(run_dir / "model"),
            "--metrics",
            str(run_dir / "train.json"),
            "--live-dir",
            str(run_dir / "live"),
            "--checkpoints",
            str(run_dir / "checkpoints"),
        )
        predicted_run = run_stage(
            "predict",
            run_file,
            "--ingested",
            str(shared / "ingest"),
            "--model-dir",
            str(run_dir / "model"),
            "--submission",
            str(run_dir / "submission.csv"),
            "--metrics",
            str(run_dir / "predict.json"),
        )
        scored = json.loads((run_dir / "predict.json").read_text())
        trained = json.loads((run_dir / "train.json").read_text())
        row = {
            "name": name,
            "overrides": overrides,
            "map@10": scored["map@10"],
            "hr@10": scored["hr@10"],
            "ndcg@10": scored["ndcg@10"],
            "best_step": trained["step"],
            "train_seconds": trained_run["seconds"],
            "train_peak_mib": trained_run["peak_mib"],
            "predict_seconds": predicted_run["seconds"],
            "load_average": load_average(),
        }
        with results.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        typer.echo(json.dumps(row))


if __name__ == "__main__":
    app()
