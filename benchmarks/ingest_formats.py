"""Time the ingest stage on generated files of each input format.

Writes one input per case into a work folder, runs stages/ingest.py on it as a
subprocess and reports wall time and peak resident memory as a Markdown table.
Two JSON Lines cases contain the same reviews with review texts of different
lengths, so their files differ several-fold in size while the rows kept are the
same. Their peak memory shows whether memory follows the file or the rows.

Example:

    python benchmarks/ingest_formats.py --work /tmp/ingest-bench --rows 500000
"""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
import yaml
from common import load_average, run_stage

app = typer.Typer(add_completion=False)


def draw_reviews(n_rows: int, seed: int) -> dict[str, np.ndarray]:
    """Random reviews: user and item ids, ratings and millisecond timestamps."""
    rng = np.random.default_rng(seed)
    n_users = max(1, n_rows // 10)
    n_items = max(1, n_rows // 25)
    return {
        "user": rng.integers(0, n_users, n_rows),
        "item": rng.integers(0, n_items, n_rows),
        "rating": rng.integers(1, 6, n_rows).astype(float),
        "ms": 1_500_000_000_000 + rng.integers(0, 10**11, n_rows),
    }


def user_name(user: int) -> str:
    return f"AF{user:026d}"


def item_name(item: int) -> str:
    return f"B{item:09d}"


def write_jsonl(folder: Path, reviews: dict, text_chars: int) -> Path:
    path = folder / "Bench.jsonl"
    text = "x" * text_chars
    with path.open("w") as handle:
        for user, item, rating, ms in zip(*reviews.values()):
            record = {
                "rating": rating,
                "title": "Review",
                "text": text,
                "images": [],
                "asin": item_name(item),
                "parent_asin": item_name(item),
                "user_id": user_name(user),
                "timestamp": int(ms),
                "helpful_vote": 0,
                "verified_purchase": True,
            }
            handle.write(json.dumps(record) + "\n")
    return path


def write_csv(folder: Path, reviews: dict) -> Path:
    path = folder / "Bench.csv"
    with path.open("w") as handle:
        handle.write("user_id,parent_asin,rating,timestamp\n")
        for user, item, rating, ms in zip(*reviews.values()):
            handle.write(f"{user_name(user)},{item_name(item)},{rating},{ms}\n")
    return path


def write_recbole(folder: Path, reviews: dict) -> Path:
    path = folder / "bench.inter"
    with path.open("w") as handle:
        handle.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for user, item, rating, ms in zip(*reviews.values()):
            handle.write(f"{user}\t{item}\t{rating}\t{ms / 1000:.3f}\n")
    return path


def write_sequences(folder: Path, reviews: dict) -> Path:
    path = folder / "bench.txt"
    order = np.argsort(reviews["user"], kind="stable")
    users, items = reviews["user"][order], reviews["item"][order]
    cuts = np.flatnonzero(users[1:] != users[:-1]) + 1
    with path.open("w") as handle:
        for user_items, user in zip(np.split(items, cuts), users[np.r_[0, cuts]]):
            handle.write(f"{user} " + " ".join(map(str, user_items)) + "\n")
    return path


def cases(reviews: dict) -> dict[str, tuple[str, Callable[[Path], Path]]]:
    """Case name -> (ingest.format, writer of its input into a folder)."""
    return {
        "amazon2023 JSON Lines, 100-char texts": (
            "amazon2023",
            lambda folder: write_jsonl(folder, reviews, 100),
        ),
        "amazon2023 JSON Lines, 1000-char texts": (
            "amazon2023",
            lambda folder: write_jsonl(folder, reviews, 1000),
        ),
        "amazon2023 benchmark CSV": ("amazon2023", lambda f: write_csv(f, reviews)),
        "recbole .inter": ("recbole", lambda f: write_recbole(f, reviews)),
        "sequences text": ("sequences", lambda f: write_sequences(f, reviews)),
    }


@app.command()
def main(
    work: Annotated[Path, typer.Option(help="folder for inputs and outputs")],
    rows: Annotated[int, typer.Option(help="reviews per generated file")] = 500_000,
    seed: Annotated[int, typer.Option(help="seed of the generated reviews")] = 0,
    append: Annotated[
        Path | None, typer.Option(help="Markdown file to append the report to")
    ] = None,
) -> None:
    """Run the ingest stage on each format and print a Markdown table."""
    reviews = draw_reviews(rows, seed)
    lines = [
        f"Ingest stage on generated inputs of {rows:,} reviews "
        f"({datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"load average {load_average()} at start).",
        "",
        "| input | file MiB | rows kept | seconds | peak MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (fmt, writer) in cases(reviews).items():
        folder = work / name.split(",")[0].replace(" ", "_") / str(len(lines))
        folder.mkdir(parents=True, exist_ok=True)
        source = writer(folder)
        params = folder / "params.yaml"
        settings = {"format": fmt, "path": str(source)}
        params.write_text(yaml.safe_dump({"seed": seed, "ingest": settings}))
        metrics = folder / "ingest.json"
        out = ["--out", str(folder / "ingest"), "--metrics", str(metrics)]
        timing = run_stage("ingest", params, *out)
        kept = json.loads(metrics.read_text())["n_interactions"]
        size = source.stat().st_size / 2**20
        lines.append(
            f"| {name} | {size:,.0f} | {kept:,} | {timing['seconds']} "
            f"| {timing['peak_mib']:,} |"
        )
        source.unlink()
    report = "\n".join(lines) + "\n"
    typer.echo(report)
    if append is not None:
        with append.open("a") as handle:
            handle.write("\n" + report)


if __name__ == "__main__":
    app()
