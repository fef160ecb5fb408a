"""Time to quality: wall time of the train stage until validation MAP@10 first
reaches a target.

Runs `stages/train.py` as a child process on existing ingest, embed and pack
outputs and reads its log as it runs. Every validation line gets the wall time
since the process started, so data loading and the evaluations count. The run
stops once MAP@10 reaches the target, or at max_steps.

Example (real Beauty data, after the ingest, siglip_embed and pack stages):

    python benchmarks/time_to_quality.py --ingested data/ingest \\
        --packed data/pack/train.parquet --vectors data/embed/item_vectors.parquet \\
        --work /tmp/ttq --set train.batch_size=128 --set train.max_steps=1500
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from common import ROOT, apply_overrides, load_average
from perf import append_json, machine

app = typer.Typer(add_completion=False)

# The train loop logs "step N loss L val {...'map@10': V...}" at each evaluation.
VALIDATION_LINE = re.compile(
    r"step (\d+) loss ([0-9.]+) val .*'map@10': (?:np\.float64\()?([0-9.e-]+)"
)


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest stage output folder")],
    packed: Annotated[Path, typer.Option(help="pack stage Parquet")],
    vectors: Annotated[Path, typer.Option(help="siglip_embed stage Parquet")],
    work: Annotated[Path, typer.Option(help="folder for this run's outputs")],
    set_: Annotated[
        list[str], typer.Option("--set", help="params override, section.key=value")
    ] = [],  # noqa: B006 - Typer needs a literal default
    target: Annotated[float, typer.Option(help="validation MAP@10 to reach")] = 0.026,
    eval_interval: Annotated[int, typer.Option(help="steps between evaluations")] = 50,
    eval_users: Annotated[
        int, typer.Option(help="validation users per evaluation; 0 means all")
    ] = 0,
    label: Annotated[str, typer.Option(help="name of this run in the results")] = "",
    threads: Annotated[
        int, typer.Option(help="OMP_NUM_THREADS of the stage; 0 keeps the default")
    ] = 0,
    results: Annotated[Path, typer.Option(help="JSON lines output")] = Path(
        "time_to_quality.jsonl"
    ),
) -> None:
    """Train until validation MAP@10 reaches the target; report the wall time."""
    work.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    overrides = [
        f"train.eval_interval={eval_interval}",
        f"train.eval_users={eval_users}",
        "train.checkpoint_interval=0",
        *set_,
    ]
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(apply_overrides(base, overrides)))
    command = [
        sys.executable,
        str(ROOT / "stages" / "train.py"),
        "--params",
        str(params),
        "--ingested",
        str(ingested),
        "--packed",
        str(packed),
        "--vectors",
        str(vectors),
        "--out",
        str(work / "model"),
        "--metrics",
        str(work / "train.json"),
        "--live-dir",
        str(work / "live"),
        "--checkpoints",
        str(work / "checkpoints"),
    ]

    load_before = load_average()
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    curve, reached = [], None
    assert child.stderr is not None
    for line in child.stderr:
        match = VALIDATION_LINE.search(line)
        if not match:
            continue
        step, loss, score = int(match[1]), float(match[2]), float(match[3])
        elapsed = round(time.perf_counter() - start, 1)
        curve.append({"step": step, "seconds": elapsed, "map@10": score})
        typer.echo(f"{elapsed:7.1f} s  step {step:5d}  loss {loss:.4f}  MAP@10 {score}")
        if score >= target:
            reached = curve[-1]
            child.terminate()
            break
    child.wait()
    if reached is None and child.returncode:
        raise SystemExit(f"train stage exited {child.returncode}; see its log above")

    row = {
        "benchmark": "time_to_quality",
        "label": label,
        "overrides": set_,
        "target": target,
        "eval_interval": eval_interval,
        "eval_users": eval_users,
        "stage_threads": threads or None,
        "reached": reached is not None,
        "seconds_to_target": reached["seconds"] if reached else None,
        "step_at_target": reached["step"] if reached else None,
        "curve": curve,
        "load_before": load_before,
        "load_after": load_average(),
        **machine(),
    }
    append_json(row, results)


if __name__ == "__main__":
    app()
