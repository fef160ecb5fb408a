"""The pipeline at the challenge's size: wall time and peak memory of each stage.

The ingest stage generates the synthetic shop of the challenge's shape and size:
868,218 users, 77,833 items, about 2.54 M train rows, 70 % of users with 2. Then
siglip_embed writes zero vectors (no encoder time), pack packs the histories,
and SVD and the transformer each train and predict. The transformer trains only a
few steps, to measure its tokens/s at this vocabulary. Each predict scores every
validation user and every test user. Each stage runs as a child process, and its
peak resident memory comes from wait4.

Example:

    python benchmarks/challenge_scale.py --work /tmp/challenge
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml
from common import ROOT, apply_overrides, load_average, run_stage
from perf import append_json, machine

from nanorec import synthetic

app = typer.Typer(add_completion=False)


def stage_args(work: Path, family: str) -> dict[str, list[str]]:
    """Command-line paths of each stage run inside the work folder."""
    ingest, pack = str(work / "ingest"), str(work / "pack" / "train.parquet")
    vectors = str(work / "embed" / "item_vectors.parquet")
    return {
        "ingest": ["--out", ingest, "--metrics", str(work / "ingest.json")],
        "siglip_embed": [
            *("--ingested", ingest, "--out", vectors),
            *("--metrics", str(work / "embed.json")),
        ],
        "pack": [
            *("--ingested", ingest, "--out", pack),
            *("--metrics", str(work / "pack.json")),
        ],
        "train": [
            *("--ingested", ingest, "--packed", pack, "--vectors", vectors),
            *("--out", str(work / f"model-{family}")),
            *("--metrics", str(work / f"train-{family}.json")),
            *("--live-dir", str(work / f"live-{family}")),
            *("--checkpoints", str(work / f"checkpoints-{family}")),
        ],
        "predict": [
            *("--ingested", ingest, "--model-dir", str(work / f"model-{family}")),
            *("--submission", str(work / f"submission-{family}.csv")),
            *("--metrics", str(work / f"predict-{family}.json")),
        ],
    }


@app.command()
def main(
    work: Annotated[Path, typer.Option(help="folder for this run's outputs")],
    n_users: Annotated[int, typer.Option(help="users")] = synthetic.CHALLENGE_USERS,
    n_items: Annotated[int, typer.Option(help="items")] = synthetic.CHALLENGE_ITEMS,
    train_steps: Annotated[
        int, typer.Option(help="transformer steps (a speed sample, not a fit)")
    ] = 100,
    set_: Annotated[
        list[str], typer.Option("--set", help="params override, section.key=value")
    ] = [],  # noqa: B006 - Typer needs a literal default
    results: Annotated[Path, typer.Option(help="JSON lines output")] = Path(
        "challenge_scale.jsonl"
    ),
) -> None:
    """Run every stage at challenge size; report seconds and peak MiB per stage."""
    work.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    common = [
        "ingest.format=synthetic",
        "ingest.synthetic_shape=challenge",
        f"ingest.synthetic_users={n_users}",
        f"ingest.synthetic_items={n_items}",
        "siglip_embed.encoder=none",
        "train.siglip=false",
        "train.checkpoint_interval=0",
        *set_,
    ]
    families = {
        "svd": ["train.model=svd"],
        "transformer": [
            "train.model=transformer",
            f"train.max_steps={train_steps}",
            f"train.eval_interval={train_steps}",
        ],
    }
    files = {}
    for family, extra in families.items():
        files[family] = work / f"params-{family}.yaml"
        merged = apply_overrides(base, [*common, *extra])
        files[family].write_text(yaml.safe_dump(merged))

    plan = [("ingest", "svd"), ("siglip_embed", "svd"), ("pack", "svd")]
    plan += [("train", "svd"), ("predict", "svd")]
    plan += [("train", "transformer"), ("predict", "transformer")]
    host = machine()
    table = []
    for stage, family in plan:
        load_before = load_average()
        timing = run_stage(stage, files[family], *stage_args(work, family)[stage])
        row = {
            "benchmark": "challenge_scale",
            "stage": stage,
            "family": family if stage in ("train", "predict") else "",
            **timing,
            "load_before": load_before,
            "load_after": load_average(),
            **host,
        }
        append_json(row, results)
        table.append(row)

    ingested = json.loads((work / "ingest.json").read_text())
    packed = json.loads((work / "pack.json").read_text())
    trained = json.loads((work / "train-transformer.json").read_text())
    lines = [
        f"{ingested['n_users']:,} users, {ingested['n_items']:,} items, "
        f"{ingested['n_interactions']:,} interactions; packing efficiency "
        f"{packed['efficiency']:.4f} (padded per sequence: "
        f"{packed['padded_efficiency']:.4f}); transformer training "
        f"{trained['target_tokens_per_second']:,.0f} target tokens/s.",
        "",
        "| stage | model | seconds | peak MiB | load average (before, after) |",
        "|---|---|---:|---:|---|",
    ]
    for row in table:
        lines.append(
            f"| {row['stage']} | {row['family']} | {row['seconds']} | "
            f"{row['peak_mib']:,.0f} | {row['load_before']}, {row['load_after']} |"
        )
    typer.echo("\n".join(lines))


if __name__ == "__main__":
    app()
