"""Summaries and plots of the ingested data, for `nanorec inspect`.

`summarize` counts users, items and interactions, the history length of each user,
the interactions of each item and how many items carry each metadata field and a
content vector. `format_summary` renders those numbers as text and `write_plots`
draws them as PNG files with matplotlib's Agg canvas, so no display is needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from nanorec import data
from nanorec.io import atomic_path, read_parquet_table, write_json

logger = logging.getLogger(__name__)

METADATA_FIELDS = ("parent_asin", "title", "store", "categories", "price")
PLOT_FILES = (
    "overview.png",
    "sequence_lengths.png",
    "item_popularity.png",
    "coverage.png",
)


@dataclass(frozen=True)
class VectorCoverage:
    """Content vectors of the catalog, from the siglip_embed stage's Parquet file.

    Attributes:
        path: the file read.
        n_rows: items in the file.
        sources: number of items per value of the "source" column, such as
            "text" or "none". It is empty when the file has no such column.
        zero_rows: number of all-zero rows per vector column.
        dims: width of each vector column.
    """

    path: str
    n_rows: int
    sources: dict[str, int]
    zero_rows: dict[str, int]
    dims: dict[str, int]


@dataclass(frozen=True)
class DataSummary:
    """Counts and distributions of one ingest folder.

    Attributes:
        folder: the ingest folder summarized.
        n_users: users with at least one interaction.
        n_items: items in the catalog, bought or not.
        n_interactions: rows of the interactions table.
        n_validation_users: users whose last item is held out for validation.
        n_test_users: rows of test.csv.
        n_test_users_without_history: test users with no interaction.
        sequence_lengths: (n_users,) interactions per user.
        item_counts: (n_items,) interactions per item, in item_idx order.
        metadata: items with a non-empty value, per column of METADATA_FIELDS
            present in the items table.
        vectors: content-vector coverage, or None when no vector file was read.
    """

    folder: str
    n_users: int
    n_items: int
    n_interactions: int
    n_validation_users: int
    n_test_users: int
    n_test_users_without_history: int
    sequence_lengths: np.ndarray
    item_counts: np.ndarray
    metadata: dict[str, int]
    vectors: VectorCoverage | None


def summarize(folder: Path, vectors_path: Path | None = None) -> DataSummary:
    """Summarize an ingest folder and, when given and present, its vector file.

    Args:
        folder: the ingest stage's output folder.
        vectors_path: the siglip_embed stage's Parquet file. A missing file is
            logged and skipped, because the rest of the summary does not need it.

    Returns:
        The summary.
    """
    artifacts = data.load(folder)
    interactions = artifacts.interactions
    items = artifacts.items.sort_values("item_idx")
    lengths = interactions.groupby("user_id").size().to_numpy()
    counts = np.bincount(interactions["item_idx"].to_numpy(), minlength=len(items) + 1)[
        1:
    ]
    test_ids = artifacts.test_users["user_id"]
    without_history = int((~test_ids.isin(interactions["user_id"])).sum())
    metadata = {
        column: int(items[column].map(_has_value).sum())
        for column in METADATA_FIELDS
        if column in items.columns
    }

    vectors = None
    if vectors_path is not None and Path(vectors_path).exists():
        vectors = vector_coverage(Path(vectors_path))
    elif vectors_path is not None:
        logger.warning("%s does not exist: no content-vector coverage", vectors_path)

    return DataSummary(
        folder=str(folder),
        n_users=int(len(lengths)),
        n_items=int(len(items)),
        n_interactions=int(len(interactions)),
        n_validation_users=int(len(artifacts.split)),
        n_test_users=int(len(test_ids)),
        n_test_users_without_history=without_history,
        sequence_lengths=lengths,
        item_counts=counts,
        metadata=metadata,
        vectors=vectors,
    )


def vector_coverage(path: Path) -> VectorCoverage:
    """Count the items per vector source and the all-zero rows of each vector column.

    Every fixed-size list column of the file counts as a vector column, so files
    with several vectors per item are covered too.

    Raises:
        InputError: the file is not valid Parquet.
    """
    table = read_parquet_table(
        path,
        "Rerun the siglip_embed stage (dvc repro siglip_embed) or pass --vectors "
        "with another file.",
    )
    sources: dict[str, int] = {}
    if "source" in table.column_names:
        counted = table.column("source").to_pandas().value_counts()
        sources = {str(name): int(n) for name, n in counted.items()}
    zero_rows, dims = {}, {}
    for field in table.schema:
        if not pa.types.is_fixed_size_list(field.type):
            continue
        dim = field.type.list_size
        flat = table.column(field.name).combine_chunks().flatten()
        values = flat.to_numpy(zero_copy_only=False).reshape(-1, dim)
        zero_rows[field.name] = int((~values.any(axis=1)).sum())
        dims[field.name] = dim
    return VectorCoverage(str(path), table.num_rows, sources, zero_rows, dims)


def _has_value(value: Any) -> bool:
    """Return True for a non-empty string or list and a number that is not NaN."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) > 0
    return not pd.isna(value)


def top_share(counts: np.ndarray, fraction: float) -> float:
    """Return the share of interactions on the most popular `fraction` of items."""
    total = counts.sum()
    if total == 0:
        return 0.0
    n_top = max(1, int(round(fraction * len(counts))))
    return float(np.sort(counts)[::-1][:n_top].sum() / total)


def summary_dict(summary: DataSummary) -> dict[str, Any]:
    """Reduce a summary to JSON-ready numbers, distributions to statistics."""
    lengths = summary.sequence_lengths
    counts = summary.item_counts
    result: dict[str, Any] = {
        "folder": summary.folder,
        "n_users": summary.n_users,
        "n_items": summary.n_items,
        "n_items_bought": int((counts > 0).sum()),
        "n_interactions": summary.n_interactions,
        "n_validation_users": summary.n_validation_users,
        "n_test_users": summary.n_test_users,
        "n_test_users_without_history": summary.n_test_users_without_history,
        "density": summary.n_interactions / max(1, summary.n_users * summary.n_items),
        "history_length": _stats(lengths),
        "item_interactions": _stats(counts),
        "n_items_with_at_most_5_interactions": int((counts <= 5).sum()),
        "top_1pct_items_share": top_share(counts, 0.01),
        "top_10pct_items_share": top_share(counts, 0.10),
        "metadata_items": summary.metadata,
        "vectors": None,
    }
    if summary.vectors is not None:
        v = summary.vectors
        result["vectors"] = {
            "path": v.path,
            "n_rows": v.n_rows,
            "sources": v.sources,
            "zero_rows": v.zero_rows,
            "dims": v.dims,
        }
    return result


def _stats(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"min": 0, "median": 0, "mean": 0.0, "p90": 0, "max": 0}
    return {
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": float(values.mean()),
        "p90": float(np.percentile(values, 90)),
        "max": int(values.max()),
    }


def format_summary(summary: DataSummary) -> str:
    """Render a summary as aligned plain text, one section per topic."""
    numbers = summary_dict(summary)
    n_items = max(1, summary.n_items)
    length = numbers["history_length"]
    per_item = numbers["item_interactions"]
    lines = [
        f"Ingested data in {summary.folder}",
        f"  users         {summary.n_users:>10,}",
        f"  items         {summary.n_items:>10,}  "
        f"({numbers['n_items_bought']:,} bought at least once)",
        f"  interactions  {summary.n_interactions:>10,}  "
        f"(density {100 * numbers['density']:.3f} % of user x item pairs)",
        f"  validation users {summary.n_validation_users:,}, test users "
        f"{summary.n_test_users:,}, of which "
        f"{summary.n_test_users_without_history:,} have no history",
        "History length (interactions per user)",
        f"  min {length['min']}  median {length['median']:g}  "
        f"mean {length['mean']:.1f}  p90 {length['p90']:g}  max {length['max']}",
        "Item popularity (interactions per item)",
        f"  min {per_item['min']}  median {per_item['median']:g}  "
        f"mean {per_item['mean']:.1f}  p90 {per_item['p90']:g}  "
        f"max {per_item['max']}",
        f"  top 1 % of items take {100 * numbers['top_1pct_items_share']:.1f} % "
        f"of interactions, top 10 % take "
        f"{100 * numbers['top_10pct_items_share']:.1f} %",
        f"  {numbers['n_items_with_at_most_5_interactions']:,} items have at most "
        "5 interactions",
        "Metadata coverage (items with a value)",
    ]
    for column, n in summary.metadata.items():
        lines.append(f"  {column:<12} {n:>10,}  {100 * n / n_items:5.1f} %")
    lines.extend(_vector_lines(summary.vectors))
    return "\n".join(lines)


def _vector_lines(vectors: VectorCoverage | None) -> list[str]:
    if vectors is None:
        return ["Content vectors: no vector file read"]
    n_rows = max(1, vectors.n_rows)
    lines = [f"Content vectors ({vectors.path}, {vectors.n_rows:,} items)"]
    for source, n in vectors.sources.items():
        lines.append(f"  source {source:<10} {n:>8,}  {100 * n / n_rows:5.1f} %")
    for column, n in vectors.zero_rows.items():
        dim = vectors.dims[column]
        lines.append(f"  {column} (dim {dim}): {n:,} all-zero rows")
    return lines


def write_report(
    summary: DataSummary, out: Path, title: str | None = None
) -> list[Path]:
    """Write summary.txt, summary.json and the PNG plots into a folder.

    Args:
        summary: the numbers to write.
        out: the output folder, created when missing.
        title: name of the data set in the overview's title; the ingest folder
            when None.

    Returns:
        The paths written, text files first.
    """
    out = Path(out)
    text_path = out / "summary.txt"
    with atomic_path(text_path) as tmp:
        tmp.write_text(format_summary(summary) + "\n")
    json_path = out / "summary.json"
    write_json(summary_dict(summary), json_path)
    return [text_path, json_path, *write_plots(summary, out, title)]


def write_plots(
    summary: DataSummary, out: Path, title: str | None = None
) -> list[Path]:
    """Draw the overview and one PNG per topic into a folder (see PLOT_FILES).

    The overview's title names the data set: `title`, or the ingest folder.

    Returns:
        The PNG paths, in PLOT_FILES order.
    """
    from matplotlib.figure import Figure

    out = Path(out)
    paths = []

    overview = Figure(figsize=(12, 8.5), layout="constrained")
    axes = overview.subplots(2, 2)
    plot_lengths(axes[0, 0], summary.sequence_lengths)
    plot_popularity(axes[0, 1], summary.item_counts)
    plot_concentration(axes[1, 0], summary.item_counts)
    plot_coverage(axes[1, 1], summary)
    overview.suptitle(
        f"{title or summary.folder}: {summary.n_users:,} users, "
        f"{summary.n_items:,} items, {summary.n_interactions:,} interactions",
        fontsize=14,
    )
    paths.append(_save(overview, out / PLOT_FILES[0]))

    lengths = Figure(figsize=(6.5, 4.5), layout="constrained")
    plot_lengths(lengths.subplots(), summary.sequence_lengths)
    paths.append(_save(lengths, out / PLOT_FILES[1]))

    popularity = Figure(figsize=(12, 4.5), layout="constrained")
    left, right = popularity.subplots(1, 2)
    plot_popularity(left, summary.item_counts)
    plot_concentration(right, summary.item_counts)
    paths.append(_save(popularity, out / PLOT_FILES[2]))

    coverage = Figure(figsize=(6.5, 4.5), layout="constrained")
    plot_coverage(coverage.subplots(), summary)
    paths.append(_save(coverage, out / PLOT_FILES[3]))
    return paths


def _save(figure: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    logger.info("wrote %s", path)
    return path


def plot_lengths(ax: Any, lengths: np.ndarray) -> None:
    """Draw a histogram of interactions per user, log-spaced for long tails."""
    if len(lengths) == 0:
        _empty(ax, "no interactions")
        return
    shortest, longest = int(lengths.min()), int(lengths.max())
    if longest - shortest <= 60:
        bins = np.arange(shortest - 0.5, longest + 1.5)
    else:
        edges = np.geomspace(shortest, longest + 1, 40).round()
        bins = np.unique(edges) - 0.5
        ax.set_xscale("log")
    ax.hist(lengths, bins=bins, color="tab:blue", edgecolor="white", linewidth=0.5)
    median = float(np.median(lengths))
    ax.axvline(median, color="tab:red", linestyle="--", label=f"median {median:g}")
    ax.set_yscale("log")
    ax.set_xlabel("interactions per user (history length)")
    ax.set_ylabel("users (log scale)")
    ax.set_title("History length per user")
    ax.legend()
    ax.grid(alpha=0.3)


def plot_popularity(ax: Any, counts: np.ndarray) -> None:
    """Plot interactions per item against popularity rank, on log-log axes."""
    ranked = np.sort(counts)[::-1]
    ranked = ranked[ranked > 0]
    if len(ranked) == 0:
        _empty(ax, "no interactions")
        return
    ax.loglog(np.arange(1, len(ranked) + 1), ranked, color="tab:blue")
    ax.set_xlabel("item rank by popularity")
    ax.set_ylabel("interactions per item")
    unbought = len(counts) - len(ranked)
    note = f", {unbought:,} never bought" if unbought else ""
    ax.set_title(f"Item popularity ({len(ranked):,} bought items{note})")
    ax.grid(alpha=0.3, which="both")


def plot_concentration(ax: Any, counts: np.ndarray) -> None:
    """Plot the cumulative share of interactions on the most popular items."""
    if counts.sum() == 0:
        _empty(ax, "no interactions")
        return
    ranked = np.sort(counts)[::-1]
    share_items = np.arange(1, len(ranked) + 1) / len(ranked)
    share_interactions = np.cumsum(ranked) / ranked.sum()
    ax.plot(100 * share_items, 100 * share_interactions, color="tab:blue")
    ax.plot([0, 100], [0, 100], color="grey", linestyle=":", label="uniform")
    for fraction, color in ((0.01, "tab:red"), (0.10, "tab:orange")):
        share = 100 * top_share(counts, fraction)
        label = f"top {100 * fraction:g} % of items: {share:.0f} % of interactions"
        ax.plot([100 * fraction], [share], "o", color=color, label=label)
    ax.set_xlabel("most popular items (% of catalog)")
    ax.set_ylabel("interactions covered (%)")
    ax.set_title("Concentration of interactions")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 101)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)


def plot_coverage(ax: Any, summary: DataSummary) -> None:
    """Draw bars of the share of items with each metadata field and vector."""
    labels, shares = [], []
    n_items = max(1, summary.n_items)
    for column, n in summary.metadata.items():
        labels.append(column)
        shares.append(100 * n / n_items)
    if summary.vectors is not None:
        for column, zeros in summary.vectors.zero_rows.items():
            labels.append(f"{column} (non-zero)")
            shares.append(100 * (summary.vectors.n_rows - zeros) / n_items)
    if not labels:
        _empty(ax, "no metadata columns")
        return
    positions = np.arange(len(labels))[::-1]
    bars = ax.barh(positions, shares, color="tab:green")
    ax.bar_label(bars, labels=[f"{s:.1f} %" for s in shares], padding=3)
    ax.set_yticks(positions, labels)
    ax.set_xlim(0, 118)
    ax.set_xlabel("items with a value (%)")
    title = "Metadata and content-vector coverage"
    if summary.vectors is None:
        title = "Metadata coverage (no vector file)"
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x")


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
