"""Time of one AdamW step, fused kernel against the default (foreach) kernel.

Builds the GPT of each size at a catalog size, gives every parameter a random
gradient and times `optimizer.step()` alone, alternating the two kernels round
by round so that a change in machine load hits both alike.

Example (the Beauty catalog and the challenge's):

    python benchmarks/optimizer_step.py --n-items 12101 --n-items 77833
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import torch
import typer
from common import load_average
from perf import SIZES, append_json, build_model, machine

from nanorec.params import TrainParams
from nanorec.training import make_optimizer

app = typer.Typer(add_completion=False)


@app.command()
def main(
    n_items: Annotated[list[int], typer.Option(help="catalog sizes")] = [12_101],  # noqa: B006 - Typer needs a literal default
    size: Annotated[
        list[str], typer.Option(help=f"model size, one of {sorted(SIZES)}")
    ] = ["default", "original"],  # noqa: B006
    rounds: Annotated[int, typer.Option(help="timed steps per kernel")] = 30,
    results: Annotated[Path, typer.Option(help="JSON lines output")] = Path(
        "optimizer_step.jsonl"
    ),
) -> None:
    """Median milliseconds per AdamW step for each kernel."""
    host = machine()
    for items in n_items:
        for model_size in size:
            model = build_model(items, model_size, 32, None)
            for param in model.parameters():
                param.grad = torch.randn_like(param)
            kernels = {
                fused: make_optimizer(model, replace(TrainParams(), fused_adamw=fused))
                for fused in (True, False)
            }
            times: dict[bool, list[float]] = {True: [], False: []}
            load_before = load_average()
            for round_ in range(rounds + 3):
                for fused, optimizer in kernels.items():
                    start = time.perf_counter()
                    optimizer.step()
                    if round_ >= 3:  # the first steps allocate the state
                        times[fused].append(time.perf_counter() - start)
            row = {
                "benchmark": "optimizer_step",
                "size": model_size,
                "n_items": items,
                "n_params": sum(p.numel() for p in model.parameters()),
                "fused_ms": round(1000 * statistics.median(times[True]), 2),
                "foreach_ms": round(1000 * statistics.median(times[False]), 2),
                "load_before": load_before,
                "load_after": load_average(),
                **host,
            }
            append_json(row, results)


if __name__ == "__main__":
    app()
