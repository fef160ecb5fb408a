"""`nanorec recommend`: the top-k items for a user of the data or for a given history.

The ranking is the predict stage's: the scorer that `load_scorer` rebuilds from the
model folder, the `predict` params, the popularity fallback for an empty history
and the same `recommend` call. A user of the data is scored from the full history in
the ingested interactions, which is how the predict stage scores test users.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from nanorec import data
from nanorec.params import ParamError, PredictParams, load_section

logger = logging.getLogger(__name__)

SCORE_MEANINGS = {
    "model": "the model's score for the item (higher ranks first)",
    "rank": (
        "k for the first item down to 1, because the generative strategy decodes "
        "one item at a time and has no per-item model score"
    ),
    "purchases": "the item's number of interactions in the ingested data",
}

# Users of the data have non-negative ids, so -1 marks an ad-hoc history. A scorer
# that looks users up (LightGCN) must score it from the history alone.
NO_USER = -1


class IdType(str, Enum):
    """Column in which the ids of an ad-hoc history are looked up."""

    auto = "auto"
    asin = "asin"
    item_id = "item-id"


class RequestError(ValueError):
    """A user or item of the request is not in the data, or an option is invalid.

    Attributes:
        option: the command-line option at fault, e.g. "--history".
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


class ArtifactError(ValueError):
    """The model folder does not match the ingested data."""


@dataclass(frozen=True)
class Recommendation:
    """Ranked items for one request, and how they were chosen.

    Attributes:
        user_id: the user of the data, or None for an ad-hoc history.
        history: item_idx of the history the model saw, oldest first.
        source: "model", or "popularity" when the history is empty.
        score_kind: a key of SCORE_MEANINGS.
        model: the model family named in the model folder's config.json.
        params: the predict params of this answer, after command-line overrides.
        rows: rank, item_idx, item_id, parent_asin, title and score, best first.
    """

    user_id: int | None
    history: np.ndarray
    source: str
    score_kind: str
    model: str
    params: PredictParams
    rows: pd.DataFrame


def split_history(text: str) -> list[str]:
    """Split a history such as "B001, B002 17" into its ids, oldest first."""
    return [token for token in re.split(r"[,\s]+", text.strip()) if token]


def resolve_items(
    tokens: Sequence[str], items: pd.DataFrame, id_type: IdType = IdType.auto
) -> np.ndarray:
    """Map raw item ids (parent_asin) or encoded item ids (item_id) to item_idx.

    With IdType.auto a token that is a known ASIN is read as one, and any other
    integer token as an encoded item id.

    Args:
        tokens: the ids, oldest first.
        items: the ingested items table.
        id_type: how to read the tokens.

    Returns:
        (len(tokens),) int64 item_idx.

    Raises:
        RequestError: some tokens are in neither column, or a token is the ASIN of
            one item and the item_id of another while id_type is auto.
    """
    by_asin = {
        asin: idx for asin, idx in zip(items["parent_asin"], items["item_idx"]) if asin
    }
    by_item_id = dict(zip(items["item_id"].astype(np.int64), items["item_idx"]))
    resolved, unknown, ambiguous = [], [], []
    for token in tokens:
        as_asin = by_asin.get(token) if id_type != IdType.item_id else None
        as_item_id = None
        if id_type != IdType.asin and token.isdigit():
            as_item_id = by_item_id.get(int(token))
        if as_asin is not None and as_item_id is not None and as_asin != as_item_id:
            ambiguous.append(token)
        match = as_asin if as_asin is not None else as_item_id
        if match is None:
            unknown.append(token)
        else:
            resolved.append(int(match))

    if unknown:
        columns = {
            IdType.auto: "parent_asin or item_id",
            IdType.asin: "parent_asin",
            IdType.item_id: "item_id",
        }[id_type]
        shown = ", ".join(repr(t) for t in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise RequestError(
            "--history",
            f"item id(s) {shown}{more} not found in the catalog's {columns}. "
            "Give ASINs or encoded item ids of items.parquet in the ingest folder",
        )
    if ambiguous and id_type == IdType.auto:
        raise RequestError(
            "--history",
            f"item id(s) {', '.join(map(repr, ambiguous))} are the ASIN of one item "
            "and the encoded item_id of another: pass --id-type asin or "
            "--id-type item-id",
        )
    return np.asarray(resolved, dtype=np.int64)


def user_history(artifacts: data.Artifacts, user_id: int) -> np.ndarray:
    """Return the full history of a user of the data as item_idx, oldest first.

    A test user without interactions gets an empty history.

    Raises:
        RequestError: the user is neither in the interactions nor a test user.
    """
    interactions = artifacts.interactions
    rows = interactions[interactions["user_id"] == user_id]
    is_test_user = (artifacts.test_users["user_id"] == user_id).any()
    if rows.empty and not is_test_user:
        raise RequestError(
            "--user",
            f"user_id {user_id} not found in the ingested interactions nor among "
            "the test users. Pick a user_id from train.csv or test.csv, or give "
            "a history with --history",
        )
    ordered = rows.sort_values("position", kind="stable")
    return ordered["item_idx"].to_numpy(dtype=np.int64)


def load_model(model_dir: Path, items: pd.DataFrame, cfg: PredictParams) -> tuple:
    """Rebuild the scorer of a model folder, wrapped for cfg.strategy.

    Returns:
        (scorer, family), with family the "model" field of config.json.

    Raises:
        ArtifactError: the model was trained on another catalog, or the strategy
            does not apply to its family.
    """
    from nanorec import checkpoint
    from nanorec.recommend import GenerativeScorer, TransformerScorer, load_scorer

    config = checkpoint.load_config(model_dir)
    expected = config.get("items_hash")
    actual = checkpoint.items_hash(items["item_id"].to_numpy())
    if expected is not None and expected != actual:
        raise ArtifactError(
            f"{model_dir} was trained on another catalog (items_hash {expected}, "
            f"ingested items give {actual}): rerun the pipeline (dvc repro) or "
            "point --model-dir and --ingested at folders from the same run"
        )
    scorer = load_scorer(model_dir)
    if scorer.n_items != len(items):
        raise ArtifactError(
            f"{model_dir} scores {scorer.n_items} items but the ingested catalog "
            f"has {len(items)}: rerun the pipeline (dvc repro)"
        )
    if cfg.strategy == "generative":
        if not isinstance(scorer, TransformerScorer):
            raise ArtifactError(
                f"predict.strategy=generative needs a transformer model, but "
                f"{model_dir} holds a {config.get('model')!r} model: use "
                "--strategy oneshot"
            )
        scorer = GenerativeScorer(scorer, cfg.k, cfg.exclude_seen)
    return scorer, str(config.get("model", "unknown"))


def rank_with_model(
    scorer: Any,
    user_id: int,
    history: np.ndarray,
    popular: np.ndarray,
    cfg: PredictParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank the items for one non-empty history: top-k item_idx and their scores."""
    import torch

    from nanorec.recommend import recommend

    users = np.array([user_id], dtype=np.int64)
    # The ranking comes from `recommend`, as in the predict stage. The scores
    # come from a second scorer call on the same input.
    top = recommend(scorer, users, [history], cfg.k, popular, cfg.exclude_seen, 1)[0]
    with torch.no_grad():
        scores = scorer.score(users, [history]).float()[0].numpy()
    return top, scores[top].astype(np.float64)


# Command-line flag of each predict param that `nanorec recommend` can override.
OVERRIDE_FLAGS = {
    "k": "--k",
    "strategy": "--strategy",
    "exclude_seen": "--exclude-seen",
}


def apply_overrides(cfg: PredictParams, overrides: dict[str, Any]) -> PredictParams:
    """Replace predict params with command-line values and validate the result.

    Raises:
        RequestError: an override is invalid. The error names its flag.
    """
    for name, value in overrides.items():
        try:
            dataclasses.replace(cfg, **{name: value}).validate()
        except ParamError as err:
            raise RequestError(OVERRIDE_FLAGS.get(name, f"--{name}"), str(err)) from err
    updated = dataclasses.replace(cfg, **overrides)
    updated.validate()
    return updated


def recommend_items(
    ingested: Path,
    model_dir: Path,
    params: Path,
    user_id: int | None = None,
    history: Sequence[str] | None = None,
    id_type: IdType = IdType.auto,
    overrides: dict[str, Any] | None = None,
) -> Recommendation:
    """Rank the items for one request: a user of the data, or an ad-hoc history.

    Args:
        ingested: the ingest stage's output folder.
        model_dir: the train stage's output folder.
        params: the params file whose `predict` section sets k, strategy and
            exclude_seen.
        user_id: a user of the data; exactly one of user_id and history is given.
        history: item ids, oldest first; an empty list gets popularity.
        id_type: how to read the history's ids.
        overrides: predict params that replace those of the file, e.g. {"k": 5}.

    Returns:
        The ranked items with their scores.

    Raises:
        RequestError: an invalid user, item or option.
        ArtifactError: the model folder does not match the ingested data.
        ParamError: invalid predict params.
        FileNotFoundError: a missing artifact.
    """
    from nanorec.recommend import popularity

    if (user_id is None) == (history is None):
        raise RequestError("--user", "give exactly one of --user and --history")
    cfg = apply_overrides(load_section(params, "predict"), overrides or {})
    artifacts = data.load(ingested)
    items = artifacts.items.sort_values("item_idx").reset_index(drop=True)
    if cfg.k > len(items):
        raise RequestError(
            "--k", f"k={cfg.k} exceeds the {len(items)} items of the catalog"
        )

    if user_id is not None:
        sequence = user_history(artifacts, user_id)
    else:
        sequence = resolve_items(history or [], items, id_type)
    scorer, family = load_model(model_dir, items, cfg)
    bought = artifacts.interactions["item_idx"].to_numpy()
    popular = popularity(bought, len(items))

    if len(sequence):
        user = NO_USER if user_id is None else user_id
        top, scores = rank_with_model(scorer, user, sequence, popular, cfg)
        source = "model"
        kind = "rank" if cfg.strategy == "generative" else "model"
    else:
        top = popular[: cfg.k]
        scores = np.bincount(bought, minlength=len(items) + 1)[top].astype(float)
        source, kind = "popularity", "purchases"
        logger.warning("empty history: returning the most popular items")

    chosen = items.set_index("item_idx").loc[top]
    rows = pd.DataFrame(
        {
            "rank": np.arange(1, len(top) + 1),
            "item_idx": top,
            "item_id": chosen["item_id"].to_numpy(),
            "parent_asin": chosen["parent_asin"].to_numpy(),
            "title": chosen["title"].to_numpy(),
            "score": scores,
        }
    )
    return Recommendation(user_id, sequence, source, kind, family, cfg, rows)


def headline(rec: Recommendation) -> str:
    """Return the line above the table: whose items these are, how chosen."""
    if rec.source == "popularity":
        who = "history" if rec.user_id is None else f"user {rec.user_id}'s history"
        return (
            f"empty {who}: the {len(rec.rows)} most popular items "
            "(popularity fallback, not a model ranking)"
        )
    n = len(rec.history)
    items = f"{n} item" if n == 1 else f"{n} items"
    if rec.user_id is None:
        who = f"given history of {items}"
    else:
        who = f"user {rec.user_id} ({items} of history)"
    seen = "excluded" if rec.params.exclude_seen else "allowed"
    return (
        f"{who}: {rec.model} model, {rec.params.strategy} strategy, "
        f"items of the history {seen}"
    )


def format_score(score: float, kind: str) -> str:
    """Show counts and ranks as integers and model scores with 3 decimals."""
    if not math.isfinite(score):
        return str(score)
    return str(int(score)) if kind in ("rank", "purchases") else f"{score:.3f}"


def to_json(rec: Recommendation) -> dict[str, Any]:
    """Convert a recommendation to JSON types, with null for a non-finite score."""
    items = [
        {
            "rank": int(row.rank),
            "item_id": int(row.item_id),
            "parent_asin": row.parent_asin,
            "title": row.title,
            "score": float(row.score) if math.isfinite(row.score) else None,
        }
        for row in rec.rows.itertuples(index=False)
    ]
    return {
        "user_id": rec.user_id,
        "n_history": len(rec.history),
        "source": rec.source,
        "model": rec.model,
        "strategy": rec.params.strategy,
        "exclude_seen": rec.params.exclude_seen,
        "k": rec.params.k,
        "score": rec.score_kind,
        "score_meaning": SCORE_MEANINGS[rec.score_kind],
        "items": items,
    }


def render_plain(rec: Recommendation) -> str:
    """Render a recommendation as plain text: headline, table and score legend."""
    header = ["rank", "item_id", "parent_asin", "title", "score"]
    right_aligned = {0, 1, 4}
    cells = [
        [
            str(row.rank),
            str(row.item_id),
            row.parent_asin,
            row.title,
            format_score(row.score, rec.score_kind),
        ]
        for row in rec.rows.itertuples(index=False)
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(5)]

    def join(line: list[str]) -> str:
        padded = [
            cell.rjust(width) if i in right_aligned else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths))
        ]
        return "  ".join(padded).rstrip()

    lines = [headline(rec), join(header), *map(join, cells)]
    lines.append(f"score: {SCORE_MEANINGS[rec.score_kind]}")
    return "\n".join(lines)


def render_rich(rec: Recommendation, console: Console) -> None:
    """Print the recommendation as a rich table."""
    table = Table(
        title=headline(rec), caption=f"score: {SCORE_MEANINGS[rec.score_kind]}"
    )
    table.add_column("rank", justify="right")
    table.add_column("item id", justify="right")
    table.add_column("ASIN")
    table.add_column("title", overflow="fold")
    table.add_column("score", justify="right")
    for row in rec.rows.itertuples(index=False):
        table.add_row(
            str(row.rank),
            str(row.item_id),
            row.parent_asin,
            row.title,
            format_score(row.score, rec.score_kind),
        )
    console.print(table)


def main(
    user: Annotated[
        int | None,
        typer.Option(
            help="user_id from the data, scored from the user's full history "
            "(as the predict stage scores test users)"
        ),
    ] = None,
    history: Annotated[
        str | None,
        typer.Option(
            help="ad-hoc history instead of --user: item ids, oldest first, "
            'separated by commas or spaces. An empty "" gets the most popular items'
        ),
    ] = None,
    id_type: Annotated[
        IdType,
        typer.Option(
            help="how to read --history: auto tries parent_asin (raw ASIN) first, "
            "then the encoded item_id"
        ),
    ] = IdType.auto,
    k: Annotated[
        int | None, typer.Option(help="number of items [default: predict.k]")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="oneshot | generative [default: predict.strategy]"),
    ] = None,
    exclude_seen: Annotated[
        bool | None,
        typer.Option(
            "--exclude-seen/--include-seen",
            help="keep the history's items out of the list "
            "[default: predict.exclude_seen]",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="print JSON instead of a table")
    ] = False,
    ingested: Annotated[Path, typer.Option(help="ingest output folder")] = Path(
        "data/ingest"
    ),
    model_dir: Annotated[Path, typer.Option(help="trained model folder")] = Path(
        "data/model"
    ),
    params: Annotated[
        Path, typer.Option(help="params file with the predict section")
    ] = Path("params.yaml"),
) -> None:
    """Recommend the top-k items for a user of the data or for a history of items.

    Example: nanorec recommend --user 42, or nanorec recommend --history
    B00ABC123,B00XYZ789. An empty history gets the most popular items, flagged
    as such.
    """
    overrides = {
        name: value
        for name, value in (
            ("k", k),
            ("strategy", strategy),
            ("exclude_seen", exclude_seen),
        )
        if value is not None
    }
    tokens = None if history is None else split_history(history)
    try:
        rec = recommend_items(
            ingested, model_dir, params, user, tokens, id_type, overrides
        )
    except RequestError as err:
        raise typer.BadParameter(str(err), param_hint=err.option) from err
    except (ArtifactError, FileNotFoundError, ParamError) as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(1) from err

    console = Console()
    if json_output:
        typer.echo(json.dumps(to_json(rec), indent=2))
    elif console.is_terminal:
        render_rich(rec, console)
    else:
        typer.echo(render_plain(rec))
