"""`nanorec leaderboard`: run the named variants as DVC experiments and compare them.

The variants file (variants.yaml) maps each name to params.yaml overrides. The
command queues one `dvc exp run --queue -n NAME -S key=value ...` per variant,
runs the queue with `dvc exp run --run-all`, reads `dvc exp show --json`, and
writes the comparison as a Markdown table, a JSON file and a bar chart.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from nanorec.io import atomic_path, write_json

logger = logging.getLogger(__name__)

TRAIN_METRICS = "metrics/train.json"
PREDICT_METRICS = "metrics/predict.json"
NOT_COMPARABLE = "not comparable: trained on the validation items"


class VariantsError(ValueError):
    """The variants file is missing, malformed or names an unknown group."""


@dataclass(frozen=True)
class Variant:
    """One named experiment: its overrides in the order they apply."""

    name: str
    overrides: dict[str, Any]
    description: str = ""
    comparable: bool = True


@dataclass
class Result:
    """Metrics of one variant's experiment, or why there are none."""

    name: str
    comparable: bool
    state: str  # the DVC executor state ("success", "failed", ...) or "missing"
    metrics: dict[str, float | None] = field(default_factory=dict)
    rank: int | None = None


# (column title, source file, key) of every number in the table.
COLUMNS = [
    ("MAP@10", PREDICT_METRICS, "map@10"),
    ("HR@10", PREDICT_METRICS, "hr@10"),
    ("NDCG@10", PREDICT_METRICS, "ndcg@10"),
    ("train s", TRAIN_METRICS, "train_seconds"),
    ("predict s", PREDICT_METRICS, "predict_seconds"),
    ("train peak MiB", TRAIN_METRICS, "peak_rss_mib"),
    ("predict peak MiB", PREDICT_METRICS, "peak_rss_mib"),
]


def load_variants(path: Path) -> list[Variant]:
    """Read a variants file into Variants, in file order.

    Raises:
        VariantsError: the file is missing or malformed, a variant uses an
            unknown group, or an override key is not of the form section.key.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise VariantsError(f"variants file {path} does not exist") from err
    except yaml.YAMLError as err:
        raise VariantsError(f"variants file {path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("variants"), dict):
        raise VariantsError(f"{path} must contain a 'variants' mapping")
    groups = raw.get("groups") or {}
    variants = []
    for name, spec in raw["variants"].items():
        spec = spec or {}
        overrides: dict[str, Any] = {}
        for group in spec.get("use") or []:
            if group not in groups:
                raise VariantsError(
                    f"{path}: variant '{name}' uses unknown group '{group}'; "
                    f"groups: {sorted(groups)}"
                )
            overrides.update(groups[group])
        overrides.update(spec.get("set") or {})
        for key in overrides:
            if "." not in str(key):
                raise VariantsError(
                    f"{path}: variant '{name}' sets '{key}'; keys must be "
                    "section.key, e.g. train.model"
                )
        variants.append(
            Variant(
                name=str(name),
                overrides=overrides,
                description=str(spec.get("description", "")),
                comparable=bool(spec.get("comparable", True)),
            )
        )
    return variants


def parse_sets(values: list[str]) -> dict[str, Any]:
    """Parse KEY=VALUE options; values are read as YAML (true, 3, 0.1, text)."""
    out: dict[str, Any] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or "." not in key:
            raise typer.BadParameter(
                f"--set {value!r} must look like section.key=value, e.g. "
                "--set ingest.format=challenge"
            )
        out[key.strip()] = yaml.safe_load(text) if text else ""
    return out


def select(variants: list[Variant], only: list[str]) -> list[Variant]:
    """Return the variants named in `only` (all when empty), in file order."""
    if not only:
        return variants
    wanted = [name for item in only for name in item.split(",") if name]
    known = {v.name for v in variants}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise typer.BadParameter(
            f"--only names unknown variant(s) {unknown}; known: {sorted(known)}"
        )
    return [v for v in variants if v.name in wanted]


def set_arguments(overrides: dict[str, Any]) -> list[str]:
    """Build `-S key=value` arguments for dvc exp run, values as YAML scalars."""
    args = []
    for key, value in overrides.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip()
        text = text.removesuffix("\n...").strip()
        args += ["-S", f"{key}={text}"]
    return args


def dvc(repo: Path, *args: str, capture: bool = False) -> str:
    """Run a dvc command in repo with this interpreter's DVC.

    The interpreter's folder goes first on PATH, so the `python` of the stage
    commands is the one that runs this command.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    cmd = [sys.executable, "-m", "dvc", *args]
    logger.info("running %s", " ".join(["dvc", *args]))
    result = subprocess.run(
        cmd, cwd=repo, env=env, text=True, capture_output=capture, check=False
    )
    if result.returncode:
        detail = f":\n{result.stderr[-3000:]}" if capture else ""
        raise RuntimeError(
            f"dvc {' '.join(args)} exited {result.returncode} in {repo}{detail}"
        )
    return result.stdout or ""


def queue_and_run(
    repo: Path, variants: list[Variant], extra: dict[str, Any], jobs: int
) -> None:
    """Queue every variant as an experiment, then run the queue.

    Experiments that already carry one of the names are removed first, so the
    table always shows this run. Each variant's overrides apply before `extra`.
    """
    existing = set(dvc(repo, "exp", "list", "--name-only", capture=True).split())
    stale = [v.name for v in variants if v.name in existing]
    if stale:
        logger.info("removing earlier experiments %s", stale)
        dvc(repo, "exp", "remove", *stale, capture=True)
    for variant in variants:
        overrides = {**variant.overrides, **extra}
        dvc(
            repo,
            "exp",
            "run",
            "--queue",
            "-n",
            variant.name,
            *set_arguments(overrides),
            capture=True,
        )
    dvc(repo, "exp", "run", "--run-all", "--jobs", str(jobs))


def collect(shown: list[dict], variants: list[Variant]) -> list[Result]:
    """Pick each variant's metrics out of the `dvc exp show --json` output.

    Args:
        shown: the parsed JSON, a list of baseline commits with experiments.
        variants: the variants to report, in table order.

    Returns:
        One Result per variant; state "missing" when no experiment has its name.
        When several experiments share a name, the latest by timestamp wins.
    """
    found: dict[str, tuple[str, str, dict]] = {}
    for baseline in shown:
        for experiment in baseline.get("experiments") or []:
            executor = experiment.get("executor") or {}
            for rev in experiment.get("revs") or []:
                name = rev.get("name") or experiment.get("name")
                data = rev.get("data") or {}
                stamp = data.get("timestamp") or ""
                state = executor.get("state") or "success"
                if name not in found or stamp >= found[name][0]:
                    found[name] = (stamp, state, data.get("metrics") or {})
    results = []
    for variant in variants:
        if variant.name not in found:
            results.append(Result(variant.name, variant.comparable, "missing"))
            continue
        _, state, files = found[variant.name]
        metrics: dict[str, float | None] = {}
        for title, path, key in COLUMNS:
            values = (files.get(path) or {}).get("data") or {}
            metrics[title] = values.get(key)
        if metrics["MAP@10"] is None and state == "success":
            state = "no metrics"
        results.append(Result(variant.name, variant.comparable, state, metrics))
    _rank(results)
    return results


def _rank(results: list[Result]) -> None:
    ranked = [
        r for r in results if r.comparable and r.metrics.get("MAP@10") is not None
    ]
    ranked.sort(key=lambda r: -r.metrics["MAP@10"])
    for rank, result in enumerate(ranked, start=1):
        result.rank = rank


def markdown_table(results: list[Result]) -> str:
    """Format the comparison as a Markdown table, in variants-file order."""
    header = ["rank", "variant", *[title for title, _, _ in COLUMNS], "note"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * len(COLUMNS) + ["---"]) + "|",
    ]
    for result in results:
        notes = []
        if not result.comparable:
            notes.append(NOT_COMPARABLE)
        if result.state == "missing":
            notes.append(
                "experiment not found: run it first with `nanorec leaderboard "
                f"--only {result.name}` (without --no-run)"
            )
        elif result.state != "success":
            notes.append(
                f"experiment {result.state}, see `dvc queue logs {result.name}`"
            )
        note = "; ".join(notes)
        cells = [
            "n/c" if not result.comparable else str(result.rank or "-"),
            result.name,
            *[_format(title, result.metrics.get(title)) for title, _, _ in COLUMNS],
            note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _format(title: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if title.endswith("@10"):
        return f"{value:.4f}"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def plot(results: list[Result], path: Path) -> None:
    """Draw MAP@10, HR@10 and NDCG@10 per variant as bars and save a PNG.

    Variants that are not comparable are drawn grey and hatched.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.metrics.get("MAP@10") is not None]
    names = [r.name for r in shown]
    colours = ["#4c72b0" if r.comparable else "#b0b0b0" for r in shown]
    hatches = ["" if r.comparable else "//" for r in shown]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.45 * max(len(shown), 3) + 1.4))
    for ax, title in zip(axes, ("MAP@10", "HR@10", "NDCG@10")):
        values = [r.metrics[title] for r in shown]
        bars = ax.barh(names, values, color=colours)
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
        ax.set_title(f"validation {title}")
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
        for bar, value in zip(bars, values):
            ax.text(
                value,
                bar.get_y() + bar.get_height() / 2,
                f" {value:.4f}",
                va="center",
                fontsize=8,
            )
        ax.set_xlim(0, max(values, default=1.0) * 1.3 or 1.0)
    for ax in axes[1:]:
        ax.set_yticklabels([])
    if any(not r.comparable for r in shown):
        fig.text(0.01, 0.01, f"grey, hatched: {NOT_COMPARABLE}", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_outputs(results: list[Result], out: Path) -> tuple[Path, Path, Path]:
    """Write leaderboard.md, leaderboard.json and leaderboard.png into out."""
    out = Path(out)
    table, chart, raw = (
        out / "leaderboard.md",
        out / "leaderboard.png",
        out / "leaderboard.json",
    )
    with atomic_path(table) as tmp:
        tmp.write_text(markdown_table(results))
    write_json([asdict(r) for r in results], raw)
    plot(results, chart)
    return table, chart, raw


def main(
    variants_file: Annotated[
        Path, typer.Option("--variants", help="YAML file of named variants")
    ] = Path("variants.yaml"),
    only: Annotated[
        list[str] | None,
        typer.Option(help="run only these variants (repeat or comma-separate)"),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="section.key=value applied to every variant after its own "
            "overrides (repeatable), e.g. --set ingest.format=challenge",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="folder for leaderboard.md, .json and .png")
    ] = Path("leaderboard"),
    jobs: Annotated[int, typer.Option(min=1, help="experiments run at a time")] = 1,
    run: Annotated[
        bool,
        typer.Option(
            "--run/--no-run",
            help="--no-run rebuilds the table from the existing experiments",
        ),
    ] = True,
    repo: Annotated[
        Path, typer.Option(help="git repository holding dvc.yaml and params.yaml")
    ] = Path("."),
) -> None:
    """Run every named variant as a DVC experiment and compare their metrics.

    Needs a git repository with at least one commit; the experiments run from the
    committed params.yaml plus each variant's overrides.
    """
    path = variants_file if variants_file.is_absolute() else repo / variants_file
    try:
        chosen = select(load_variants(path), only or [])
    except VariantsError as err:
        raise typer.BadParameter(str(err)) from err
    extra = parse_sets(set_ or [])

    if run:
        queue_and_run(repo, chosen, extra, jobs)
    shown = json.loads(dvc(repo, "exp", "show", "--json", capture=True))
    results = collect(shown, chosen)
    table, chart, raw = write_outputs(results, out)

    typer.echo(markdown_table(results))
    typer.echo(f"wrote {table}, {chart} and {raw}")
    missing = [r.name for r in results if r.state == "missing"]
    failed = [r.name for r in results if r.state not in ("success", "missing")]
    if missing:
        typer.echo(
            f"no experiment found for {missing}: run them first with "
            "`nanorec leaderboard` without --no-run",
            err=True,
        )
    if failed:
        typer.echo(
            f"no metrics for {failed}: see `dvc queue logs NAME` or "
            "`dvc exp show` for the reason",
            err=True,
        )
    if missing or failed:
        raise typer.Exit(code=1)
