"""Measurements behind the explanations in docs/leaderboard.md.

Prints one JSON line per measurement, on an ingest folder and its content vectors:

- popularity: validation MAP@10, HR@10, NDCG@10 of the most popular items;
- store_continuity: share of validation items sold by the store of the user's
  previous item, against the share expected for two items drawn independently
  by popularity;
- knn_last_n: siglip_knn validation metrics when the query averages the last n
  items of the history (n = 1, 3 and the whole history);
- experiment: with --repo, each leaderboard experiment's MAP@10 (its model
  folder is read from the DVC cache of the repo), the share of users hit at each
  rank, and MAP@10 split by whether the validation item comes from the store of
  the user's last item;
- paired: for each pair of consecutive --compare names, the MAP@10 difference
  with a 95% paired bootstrap interval over users.

Example (after a leaderboard run in /tmp/board/repo on the Beauty data):

    python benchmarks/leaderboard_evidence.py --ingested /tmp/board/repo/data/ingest \\
        --vectors /tmp/board/repo/data/embed/item_vectors.parquet \\
        --repo /tmp/board/repo --compare svd,siglip_knn,lightgcn,transformer
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
import yaml

from nanorec import baselines, data
from nanorec.metrics import ranking_metrics
from nanorec.params import TrainParams
from nanorec.recommend import GenerativeScorer, load_scorer, popularity, recommend

app = typer.Typer(add_completion=False)


def emit(kind: str, **values: object) -> None:
    print(json.dumps({"measurement": kind, **values}))


def item_stores(artifacts: data.Artifacts) -> np.ndarray:
    """Return the store of each item_idx (index 0 is padding), None where unknown."""
    store = artifacts.items.set_index("item_idx")["store"]
    return store.reindex(np.arange(artifacts.n_items + 1)).to_numpy(dtype=object)


def same_store(
    artifacts: data.Artifacts, histories: data.Histories, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flag, per validation user, known stores and a target from the last store.

    Returns:
        (both stores known, validation item sold by the store of the last item).
    """
    store = item_stores(artifacts)
    last = np.array([h[-1] if len(h) else 0 for h in histories.sequences])
    before, after = store[last], store[targets]
    known = pd.notna(before) & pd.notna(after) & (before != "") & (after != "")
    return known, known & (before == after)


def store_continuity(artifacts: data.Artifacts, histories: data.Histories) -> dict:
    """Share of validation items whose store is the store of the previous item."""
    _, targets = data.validation_histories(artifacts)
    known, same_mask = same_store(artifacts, histories, targets)
    same = float(same_mask[known].mean())

    # Two items drawn independently with probability proportional to purchases.
    store = item_stores(artifacts)
    counts = artifacts.interactions["item_idx"].value_counts()
    weights = pd.Series(counts.to_numpy() / counts.sum(), index=store[counts.index])
    weights = weights[pd.notna(weights.index) & (weights.index != "")]
    weights = weights / weights.sum()
    chance = float((weights.groupby(level=0).sum() ** 2).sum())
    return {"pairs": int(known.sum()), "same_store": same, "chance": chance}


def experiment_model(repo: Path, name: str, folder: Path) -> dict:
    """Copy an experiment's data/model folder out of the DVC cache into folder.

    Returns:
        The experiment's params.yaml as a dict.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True
        ).stdout

    refs = git("for-each-ref", "--format=%(refname)", "refs/exps").split()
    matches = [ref for ref in refs if ref.endswith("/" + name)]
    if not matches:
        raise typer.BadParameter(f"no experiment named {name!r} in {repo}")
    lock = yaml.safe_load(git("show", f"{matches[-1]}:dvc.lock"))
    (model,) = [o for o in lock["stages"]["train"]["outs"] if o["path"] == "data/model"]
    cache = repo / ".dvc" / "cache" / "files" / "md5"
    digest = model["md5"].removesuffix(".dir")
    listing = json.loads((cache / digest[:2] / f"{digest[2:]}.dir").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for entry in listing:
        blob = entry["md5"]
        shutil.copy(cache / blob[:2] / blob[2:], folder / entry["relpath"])
    return yaml.safe_load(git("show", f"{matches[-1]}:params.yaml"))


def average_precision(topk: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-user AP@10 with one relevant item: 1 / rank, or 0 when missed."""
    hits = topk[:, :10] == targets[:, None]
    rank = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    return np.where(rank > 0, 1.0 / np.maximum(rank, 1), 0.0)


@app.command()
def main(
    ingested: Annotated[Path, typer.Option(help="ingest output folder")],
    vectors: Annotated[Path, typer.Option(help="item content vectors Parquet")],
    repo: Annotated[
        Path | None, typer.Option(help="leaderboard repository with experiments")
    ] = None,
    compare: Annotated[
        str, typer.Option(help="comma-separated experiment names, in table order")
    ] = "",
    resamples: Annotated[int, typer.Option(help="bootstrap resamples")] = 2000,
) -> None:
    """Print the measurements as JSON lines."""
    artifacts = data.load(ingested)
    histories, targets = data.validation_histories(artifacts)
    popular = popularity(
        artifacts.interactions["item_idx"].to_numpy(), artifacts.n_items
    )

    fallback = np.tile(popular[:10], (len(targets), 1))
    emit("popularity", **ranking_metrics(fallback, targets, 10))
    emit("store_continuity", **store_continuity(artifacts, histories))

    longest = max(len(h) for h in histories.sequences)
    for last_n in (1, 3, longest):
        params = TrainParams(model="siglip_knn", knn_last_n=last_n)
        fitted = baselines.fit(params, artifacts, vectors, 0, False, progress=False)
        scorer = baselines.load_scorer("siglip_knn", fitted.meta, fitted.tensors)
        topk = recommend(scorer, histories.users, histories.sequences, 10, popular)
        emit("knn_last_n", last_n=last_n, **ranking_metrics(topk, targets, 10))

    if repo is None or not compare:
        return
    names = compare.split(",")
    known, same_mask = same_store(artifacts, histories, targets)
    per_user = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            params = experiment_model(repo, name, Path(tmp) / name)
            scorer = load_scorer(Path(tmp) / name)
            if params["predict"]["strategy"] == "generative":
                scorer = GenerativeScorer(scorer, 10, params["predict"]["exclude_seen"])
            topk = recommend(scorer, histories.users, histories.sequences, 10, popular)
            per_user[name] = average_precision(topk, targets)
            hits = topk[:, :10] == targets[:, None]
            emit(
                "experiment",
                name=name,
                map_at_10=float(per_user[name].mean()),
                # Share of users whose validation item is at rank 1, 2, ..., 10.
                hit_share_by_rank=[float(share) for share in hits.mean(axis=0)],
                # MAP@10 of users whose validation item comes from the store of
                # their last item, and of the other users with both stores known.
                map_same_store=float(per_user[name][same_mask].mean()),
                map_other_store=float(per_user[name][known & ~same_mask].mean()),
            )
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(targets), size=(resamples, len(targets)))
    for before, after in zip(names, names[1:]):
        diff = per_user[after] - per_user[before]
        means = diff[picks].mean(axis=1)
        emit(
            "paired",
            pair=f"{after} - {before}",
            difference=float(diff.mean()),
            low=float(np.percentile(means, 2.5)),
            high=float(np.percentile(means, 97.5)),
        )


if __name__ == "__main__":
    app()
