"""Attention kernels and torch.compile on a CUDA GPU, at the challenge's vocabulary.

Builds packed rows from the synthetic shop of the challenge's shape (77,833 items
by default), then for sdpa and flex attention, each eager and compiled:

1. checks that the four variants give the same logits as eager sdpa on one batch
   (float32, eval mode, same weights);
2. trains each for the same steps through `nanorec.training.train` (bfloat16
   autocast, fused AdamW) and measures real target tokens per second after the
   warm-up steps, which hold the compilation;

and prints a table. Without CUDA it prints why and exits with status 2. With
`--device cpu` it runs the same code on the CPU as a dry run, training sdpa only
because flex has no CPU backward pass.

Example:

    bash benchmarks/gpu.sh --steps 60 --size original
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer

from nanorec import packing, synthetic
from nanorec.models.gpt import GPT, GPTConfig
from nanorec.params import TrainParams
from nanorec.training import DataOrder, train

app = typer.Typer(add_completion=False)

SIZES = {
    "original": {"n_layer": 6, "n_head": 6, "n_embd": 192},
    "default": {"n_layer": 2, "n_head": 2, "n_embd": 64},
}
VARIANTS = [("sdpa", False), ("sdpa", True), ("flex", False), ("flex", True)]


def challenge_rows(
    n_users: int, n_items: int, block_size: int, seed: int
) -> packing.PackedRows:
    """Packed training rows of the synthetic challenge-shaped shop.

    Every user's train rows except the last (the validation item) are packed, as
    the pack stage does; item_idx is item_id + 1.
    """
    raw = synthetic.generate(n_users, n_items, seed, shape="challenge")
    users = raw.train["user_id"].to_numpy()
    items = raw.train["item_id"].to_numpy().astype(np.int64) + 1
    cuts = np.flatnonzero(users[1:] != users[:-1]) + 1
    sequences = [s[:-1] for s in np.split(items, cuts)]
    return packing.pack(sequences, block_size)


def compiled_graphs() -> int:
    """Graphs that torch.compile has built so far in this process."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def check_outputs(
    config: GPTConfig, rows: packing.PackedRows, device: torch.device
) -> dict[str, float]:
    """Max abs logit difference of each variant against eager sdpa (float32)."""
    torch.manual_seed(0)
    reference = GPT(config).to(device).eval()
    batch = [
        torch.from_numpy(getattr(rows, name)[:64]).to(device)
        for name in ("idx", "pos", "seq_id")
    ]
    real = batch[2] != -1
    with torch.no_grad():
        expected, _ = reference(*batch)
        differences = {}
        for attention, compiled in VARIANTS:
            model = GPT(replace(config, attention=attention)).to(device).eval()
            model.load_state_dict(reference.state_dict())
            forward = torch.compile(model) if compiled else model
            logits, _ = forward(*batch)
            name = f"{attention}-{'compiled' if compiled else 'eager'}"
            differences[name] = float((logits - expected)[real].abs().max())
    return differences


def measure(
    config: GPTConfig,
    rows: packing.PackedRows,
    params: TrainParams,
    warmup: int,
) -> dict:
    """Train for params.max_steps; tokens/s over the steps after warmup."""
    torch.manual_seed(0)
    model = GPT(config)
    stamps: dict[int, float] = {}
    losses: list[float] = []

    def stamp(name: str, value: float, step: int) -> None:
        if name == "train/loss":
            stamps[step] = time.perf_counter()
            losses.append(value)

    graphs_before = compiled_graphs()
    start = time.perf_counter()
    train(model, rows, params, seed=0, log_metric=stamp, progress=False)
    steps = params.max_steps
    order = DataOrder(len(rows.idx), params.batch_size, seed=0)
    tokens = sum(
        int((rows.targets[order.batch(s)] != -1).sum()) for s in range(warmup, steps)
    )
    seconds = stamps[steps - 1] - stamps[warmup - 1]
    return {
        "tokens_per_s": round(tokens / seconds),
        "step_ms": round(1000 * seconds / (steps - warmup), 2),
        "warmup_s": round(stamps[warmup - 1] - start, 1),
        "final_loss": round(float(np.mean(losses[-5:])), 4),
        "graphs_compiled": compiled_graphs() - graphs_before,
    }


@app.command()
def main(
    size: Annotated[str, typer.Option(help=f"model size, one of {sorted(SIZES)}")] = (
        "original"
    ),
    n_users: Annotated[int, typer.Option(help="synthetic users")] = 200_000,
    n_items: Annotated[
        int, typer.Option(help="catalog size; the challenge's by default")
    ] = synthetic.CHALLENGE_ITEMS,
    batch_size: Annotated[int, typer.Option(help="packed rows per step")] = 256,
    block_size: Annotated[int, typer.Option(help="tokens per row")] = 32,
    steps: Annotated[int, typer.Option(help="optimizer steps per variant")] = 60,
    warmup: Annotated[int, typer.Option(help="first steps left out of timing")] = 15,
    device: Annotated[
        str, typer.Option(help="cuda, cuda:N, or cpu for a dry run (sdpa only)")
    ] = "cuda",
    results: Annotated[Path | None, typer.Option(help="JSON lines output")] = None,
) -> None:
    """Compare sdpa/flex x eager/compiled: agreement of outputs, then tokens/s."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        typer.echo(
            "benchmarks/gpu.py needs a CUDA GPU, and torch.cuda.is_available() is "
            f"False here (torch {torch.__version__}). Run it on a CUDA machine, or "
            "pass --device cpu for a dry run of the script.",
            err=True,
        )
        raise typer.Exit(2)
    if not 0 < warmup < steps:
        raise typer.BadParameter(f"--warmup={warmup} must be in [1, --steps)")
    target = torch.device(device)
    name = torch.cuda.get_device_name(target) if target.type == "cuda" else "cpu"
    rows = challenge_rows(n_users, n_items, block_size, seed=1337)
    config = GPTConfig(
        n_items=n_items, block_size=block_size, dropout=0.0, **SIZES[size]
    )
    typer.echo(
        f"{name}, torch {torch.__version__}: {size} model, {n_items} items, "
        f"{len(rows.idx)} packed rows (efficiency {rows.efficiency:.4f}), "
        f"batch {batch_size} rows, {steps} steps ({warmup} warm-up)"
    )

    differences = check_outputs(config, rows, target)
    table = []
    for attention, compiled in VARIANTS:
        label = f"{attention}-{'compiled' if compiled else 'eager'}"
        if attention == "flex" and target.type == "cpu":
            table.append({"variant": label, "skipped": "flex has no CPU backward"})
            continue
        params = TrainParams(
            **SIZES[size],
            dropout=0.0,
            batch_size=batch_size,
            max_steps=steps,
            eval_interval=0,
            checkpoint_interval=0,
            attention=attention,
            compile=compiled,
            device=device,
        )
        row = {"variant": label, **measure(config, rows, params, warmup)}
        if compiled and row["graphs_compiled"] == 0:
            row["warning"] = "torch.compile built no graph: this ran eagerly"
        table.append(row)

    typer.echo("")
    typer.echo("| variant | max abs logit diff vs sdpa-eager | tokens/s | ms/step |")
    typer.echo("|---|---|---|---|")
    for row in table:
        diff = f"{differences[row['variant']]:.2e}"
        speed = row.get("tokens_per_s", row.get("skipped"))
        typer.echo(
            f"| {row['variant']} | {diff} | {speed} | {row.get('step_ms', '')} |"
        )
    worst = max(differences.values())
    agree = worst < 1e-3
    typer.echo(f"\noutputs agree (max abs diff {worst:.2e} < 1e-3): {agree}")
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        record = {"device": name, "size": size, "n_items": n_items, "table": table}
        record["logit_differences"] = differences
        with results.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
    if not agree:
        sys.exit(1)


if __name__ == "__main__":
    app()
